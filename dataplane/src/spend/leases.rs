//! Budget leases: most requests reserve and settle in this process, and Redis is touched only to
//! move budget between a shared counter and this dataplane's escrow, off the request path.
//!
//! A lease is budget taken from a counter into one dataplane's escrow. In Redis it is part of
//! the counter's `held` (`lease.lua`), so `spent + held <= limit` still covers everything any
//! dataplane may charge: overshoot stays exactly zero. Here it is a [`Slot`]: `available`
//! escrow that admission takes a request's worst case from with one compare-and-swap per
//! counter (all or nothing across a request's counters), and that settling gives back less the
//! charge. Charges are flushed to Redis in batches (one script call per organization per tick),
//! and a generation's usage event leaves only after its charge is in Redis, so the ledger never
//! holds a charge that the counters lack (reconciliation, which only raises counters to the
//! ledger, then cannot count one twice). An event waits at most `EVENT_WAIT`: if Redis stays
//! away longer, it goes anyway (usage is never held back for long), and a reconciliation pass
//! before the charge lands may leave that counter above the ledger by it: never below, so never
//! an overshoot.
//!
//! Sizes follow demand: every tick a slot is refilled to about four ticks of what it admitted,
//! and a grant takes at most `1/share` of the counter's free budget beyond what a request needs.
//! When the free budget falls below a slot's size the slot is *scarce*: its escrow goes back at
//! the next tick and every admission asks Redis for exactly its own worst case — per-request
//! reservation, as without leases. Idle slots give their escrow back and end.
//!
//! Failures: a lease is used here only until `ttl` after the call that last renewed it was sent,
//! but Redis keeps an unrenewed lease for the reservation hold period (as long as a per-request
//! reservation: longer than the slowest stream), so what a dataplane that died or lost Redis had
//! reserved or charged from it stays counted until its requests are over and its charges have
//! landed. A dataplane that died never sends the usage events of charges it had not flushed, so
//! the ledger never holds what the counter lacks. A call whose answer was lost may have run: its
//! charges and releases are resent with the same sequence number (applied once), and a slot
//! whose grant is unknown is ended whole (`release = all`).
//!
//! The stranded-budget bound: a request can be refused while other dataplanes hold unused
//! escrow on its counter only until their next tick after the counter turned scarce (their
//! grants report what is left), and by at most what those slots held: about four ticks of their
//! admissions, and never more than `1/share` of the free budget beyond one request each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use switchyard_policy::Money;
use switchyard_proto::usage::v1::UsageEvent;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::redis_store::RedisSpend;
use super::{Counter, SpendError, SpendMetrics};
use crate::usage::UsageSink;

/// Lease amounts stay below 2^52 picodollars (about 4,500 USD) so `lease.lua` handles them as
/// exact Lua numbers; a request whose worst case is larger reserves per request.
pub const MAX_LEASE: u64 = 1 << 52;

/// How long a usage event may wait for its charge to reach Redis before it is sent anyway
/// (reconciliation then raises the counter to the ledger).
const EVENT_WAIT: Duration = Duration::from_secs(2);

/// Ticks without admissions after which a slot gives its escrow back and ends.
const IDLE_TICKS: u32 = 4;

#[derive(Clone, Copy, Debug)]
pub struct LeaseConfig {
    /// How long a lease is used here after the call that last renewed it was sent.
    pub ttl: Duration,
    /// How much longer Redis keeps it at least (clock skew, a call in flight).
    pub grace: Duration,
    /// How long Redis keeps an unrenewed lease: the reservation hold period, so that requests
    /// reserved from it and charges not yet flushed stay counted while their dataplane is away.
    pub hold: Duration,
    /// How often charges are flushed and leases resized.
    pub tick: Duration,
    /// A grant takes at most 1/share of a counter's free budget beyond what is needed.
    pub share: u32,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl: Duration::from_secs(10),
            grace: Duration::from_secs(5),
            hold: Duration::from_secs(900),
            tick: Duration::from_millis(50),
            share: 4,
        }
    }
}

/// One lease on one counter, held by this process.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    key: String,
    /// The lease's field in the counter's leases hash: `<process>:<slot id>`.
    field: String,
    /// The organization's hash tag, which groups calls (one slot in a Cluster).
    org: String,
    rebuilt_key: Option<String>,
    /// The limit and window the lease was granted under; a request seeing another one asks
    /// Redis (a lowered limit must not be spent from an older, larger escrow).
    limit: Money,
    expire_at_ms: Option<i64>,
    /// Escrow admission may take, picodollars.
    available: AtomicU64,
    /// Reserved by requests in flight.
    inflight: AtomicU64,
    /// Taken since the last tick (the demand that sizes the lease).
    admitted: AtomicU64,
    /// Charged by settled requests, not yet flushed to Redis.
    unflushed: AtomicU64,
    /// The size the last tick aimed for.
    target: AtomicU64,
    /// Usable until then (caller's clock); `NEVER` before the first grant.
    valid_until_ms: AtomicI64,
    scarce: AtomicBool,
    /// No longer taken from: its escrow goes back and, once nothing is in flight, it ends.
    retired: AtomicBool,
    /// Redis may hold more for it than is known here: it ends with `release = all`.
    tainted: AtomicBool,
}

const NEVER: i64 = i64::MIN;

impl Slot {
    fn new(id: u64, owner: &str, counter: &Counter, rebuilt_key: Option<String>) -> Slot {
        let org = counter
            .key
            .find('}')
            .map_or(counter.key.as_str(), |end| &counter.key[..=end])
            .to_owned();
        Slot {
            id,
            key: counter.key.clone(),
            field: format!("{owner}:{id}"),
            org,
            rebuilt_key,
            limit: counter.limit,
            expire_at_ms: counter.expire_at_ms,
            available: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
            unflushed: AtomicU64::new(0),
            target: AtomicU64::new(0),
            valid_until_ms: AtomicI64::new(NEVER),
            scarce: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            tainted: AtomicBool::new(false),
        }
    }

    /// Whether this slot's lease stands for `counter` (same limit and window), retired or not.
    fn matches(&self, counter: &Counter) -> bool {
        self.limit == counter.limit && self.expire_at_ms == counter.expire_at_ms
    }

    fn expired(&self, now_ms: i64) -> bool {
        let until = self.valid_until_ms.load(Ordering::Acquire);
        until != NEVER && now_ms >= until
    }

    /// Takes `amount` from the escrow. In flight first, then the retired check: the tick that
    /// retires a slot sets the flag before it reads what is in flight (both sequentially
    /// consistent), so either it sees this request or this request sees the flag and backs out.
    fn take(&self, amount: u64, now_ms: i64) -> bool {
        let until = self.valid_until_ms.load(Ordering::Acquire);
        if until == NEVER || now_ms >= until {
            return false;
        }
        self.inflight.fetch_add(amount, Ordering::SeqCst);
        let taken = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                a.checked_sub(amount)
            })
            .is_ok();
        if taken && !self.retired.load(Ordering::SeqCst) {
            self.admitted.fetch_add(amount, Ordering::Relaxed);
            return true;
        }
        if taken {
            self.available.fetch_add(amount, Ordering::AcqRel);
        }
        self.inflight.fetch_sub(amount, Ordering::SeqCst);
        false
    }

    /// Ends a reservation of `reserved` that cost `charge` (≤ `reserved`): the rest is escrow
    /// again. The charge is recorded before the reservation ends, so a tick that finds nothing
    /// in flight also finds every charge (and never ends the lease without one).
    fn finish(&self, reserved: u64, charge: u64) {
        self.unflushed.fetch_add(charge, Ordering::SeqCst);
        self.available
            .fetch_add(reserved.saturating_sub(charge), Ordering::AcqRel);
        self.inflight.fetch_sub(reserved, Ordering::SeqCst);
    }

    /// Takes up to `amount` of escrow back, for release.
    fn withdraw(&self, amount: u64) -> u64 {
        let mut taken = 0;
        let _ = self
            .available
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| {
                taken = a.min(amount);
                Some(a - taken)
            });
        taken
    }

    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }
}

/// A reservation on one counter taken from a lease.
#[derive(Debug)]
pub struct Leased {
    pub slot: Arc<Slot>,
    pub amount: u64,
}

/// What admission on leases decided.
#[derive(Debug)]
pub enum LeaseVerdict {
    /// Reserved: one entry per counter (`None` where it reserves nothing).
    Granted(Vec<Option<Leased>>),
    Refused {
        index: usize,
        spent: Money,
        held: Money,
    },
    /// A worst case too large to lease, or leases have stopped (shutdown): reserve per request.
    TooLarge,
}

/// One counter's part of a `lease.lua` call.
#[derive(Clone, Debug)]
pub struct LeaseOp {
    pub key: String,
    pub field: String,
    pub limit: Money,
    pub charge: u64,
    pub release: Release,
    pub need: u64,
    pub want: u64,
    pub expire_at_ms: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    Amount(u64),
    /// Whatever the lease still holds: the slot ends.
    All,
}

#[derive(Clone, Debug)]
pub struct LeaseCall {
    pub ops: Vec<LeaseOp>,
    pub rebuilt_key: Option<String>,
    pub now_ms: i64,
    pub lease_ms: u64,
    /// Charges and releases of a call are applied once per sequence number; 0 carries none.
    pub seq: u64,
    pub share: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LeaseReply {
    /// Per op: the grant and the counter's free budget after it.
    Granted(Vec<(u64, Money)>),
    Refused {
        index: usize,
        spent: Money,
        held: Money,
    },
}

enum Message {
    /// A usage event, with the organization whose charges it waits for (none: it goes at once).
    Settled {
        org: Option<String>,
        event: Box<UsageEvent>,
    },
    Retired(Arc<Slot>),
}

/// Lease state shared by the request path and the background task.
pub struct Leases {
    redis: Arc<RedisSpend>,
    /// This process's name in lease fields: dataplane id, pid and start time, so two processes
    /// (a graceful upgrade) never share a lease.
    owner: String,
    config: LeaseConfig,
    slots: DashMap<String, Arc<Slot>>,
    next_slot: AtomicU64,
    next_seq: AtomicU64,
    tx: mpsc::UnboundedSender<Message>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Message>>>,
    metrics: Arc<SpendMetrics>,
    /// Set when the background task has ended (shutdown): admissions reserve per request and
    /// events go at once.
    closed: AtomicBool,
}

impl Leases {
    pub fn new(
        redis: Arc<RedisSpend>,
        dataplane_id: &str,
        config: LeaseConfig,
        metrics: Arc<SpendMetrics>,
        now_ms: i64,
    ) -> Leases {
        let (tx, rx) = mpsc::unbounded_channel();
        Leases {
            redis,
            owner: format!("{dataplane_id}:{}:{now_ms}", std::process::id()),
            config,
            slots: DashMap::new(),
            next_slot: AtomicU64::new(1),
            next_seq: AtomicU64::new(1),
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    fn lease_ms(&self) -> u64 {
        let keep = (self.config.ttl + self.config.grace).max(self.config.hold);
        u64::try_from(keep.as_millis()).unwrap_or(u64::MAX)
    }

    /// Reserves every counter's amount from this process's leases, or asks Redis to grow them
    /// by what this request needs (one call, as a per-request reservation would).
    pub async fn admit(
        &self,
        counters: &[Counter],
        rebuilt_key: Option<&String>,
        now_ms: i64,
    ) -> Result<LeaseVerdict, SpendError> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(LeaseVerdict::TooLarge);
        }
        let mut amounts = Vec::with_capacity(counters.len());
        for c in counters {
            match u64::try_from(c.amount.pico()) {
                Ok(a) if a < MAX_LEASE => amounts.push(a),
                _ => return Ok(LeaseVerdict::TooLarge),
            }
        }
        if let Some(taken) = self.take(counters, &amounts, now_ms) {
            SpendMetrics::bump(&self.metrics.lease_local);
            return Ok(LeaseVerdict::Granted(taken));
        }
        SpendMetrics::bump(&self.metrics.lease_remote);
        self.grow(counters, &amounts, rebuilt_key, now_ms).await
    }

    /// The request path without I/O: every counter from escrow, or none.
    fn take(
        &self,
        counters: &[Counter],
        amounts: &[u64],
        now_ms: i64,
    ) -> Option<Vec<Option<Leased>>> {
        let mut taken: Vec<Option<Leased>> = Vec::with_capacity(counters.len());
        for (c, &amount) in counters.iter().zip(amounts) {
            if amount == 0 {
                taken.push(None);
                continue;
            }
            let slot = self
                .slots
                .get(&c.key)
                .map(|s| s.value().clone())
                .filter(|s| s.matches(c));
            match slot {
                Some(slot) if slot.take(amount, now_ms) => {
                    taken.push(Some(Leased { slot, amount }));
                }
                _ => {
                    for l in taken.into_iter().flatten() {
                        l.slot.finish(l.amount, 0);
                    }
                    return None;
                }
            }
        }
        Some(taken)
    }

    /// The slot a request grows: the current one, or a new one where there is none, or where
    /// the current one was granted under another limit or has lapsed (its escrow may be gone
    /// from Redis).
    fn slot_for(&self, c: &Counter, rebuilt_key: Option<&String>, now_ms: i64) -> Arc<Slot> {
        let mut entry = self.slots.entry(c.key.clone()).or_insert_with(|| {
            Arc::new(Slot::new(
                self.next_slot.fetch_add(1, Ordering::Relaxed),
                &self.owner,
                c,
                rebuilt_key.cloned(),
            ))
        });
        let current = entry.value();
        if current.matches(c) && !current.expired(now_ms) && !current.retired.load(Ordering::SeqCst)
        {
            return current.clone();
        }
        let fresh = Arc::new(Slot::new(
            self.next_slot.fetch_add(1, Ordering::Relaxed),
            &self.owner,
            c,
            rebuilt_key.cloned(),
        ));
        let old = std::mem::replace(entry.value_mut(), fresh.clone());
        drop(entry);
        old.retire();
        let _ = self.tx.send(Message::Retired(old));
        fresh
    }

    /// The slot a request grows, already counting `need` in flight: the tick ends a lease only
    /// with nothing in flight (and sets `retired` before it looks), so it cannot end this one
    /// while the grant is on its way; a slot found retired is given up for a fresh one.
    fn claim(
        &self,
        c: &Counter,
        need: u64,
        rebuilt_key: Option<&String>,
        now_ms: i64,
    ) -> Arc<Slot> {
        loop {
            let slot = self.slot_for(c, rebuilt_key, now_ms);
            slot.inflight.fetch_add(need, Ordering::SeqCst);
            if !slot.retired.load(Ordering::SeqCst) {
                return slot;
            }
            slot.inflight.fetch_sub(need, Ordering::SeqCst);
        }
    }

    /// Gives back what `claim` counted in flight, for a grow that was not granted.
    fn unclaim(slots: &[Option<Arc<Slot>>], amounts: &[u64]) {
        for (slot, &need) in slots.iter().zip(amounts) {
            if let Some(slot) = slot {
                slot.inflight.fetch_sub(need, Ordering::SeqCst);
            }
        }
    }

    async fn grow(
        &self,
        counters: &[Counter],
        amounts: &[u64],
        rebuilt_key: Option<&String>,
        now_ms: i64,
    ) -> Result<LeaseVerdict, SpendError> {
        let mut slots = Vec::with_capacity(counters.len());
        let mut ops = Vec::with_capacity(counters.len());
        for (c, &need) in counters.iter().zip(amounts) {
            if need == 0 {
                slots.push(None);
                continue;
            }
            let slot = self.claim(c, need, rebuilt_key, now_ms);
            // Beyond the need, only what measured demand asks for: a burst of first requests
            // reserves exactly, as without leases, instead of parking escrow nobody uses yet.
            let extra = if slot.scarce.load(Ordering::Acquire) {
                0
            } else {
                slot.target.load(Ordering::Relaxed)
            };
            ops.push(LeaseOp {
                key: c.key.clone(),
                field: slot.field.clone(),
                limit: c.limit,
                charge: 0,
                release: Release::Amount(0),
                need,
                want: need.saturating_add(extra).min(MAX_LEASE),
                expire_at_ms: c.expire_at_ms,
            });
            slots.push(Some(slot));
        }
        if ops.is_empty() {
            return Ok(LeaseVerdict::Granted(
                slots.into_iter().map(|_| None).collect(),
            ));
        }
        let call = LeaseCall {
            ops,
            rebuilt_key: rebuilt_key.cloned(),
            now_ms,
            lease_ms: self.lease_ms(),
            seq: 0,
            share: self.config.share,
        };
        match self.redis.lease(&call).await {
            Ok(LeaseReply::Granted(grants)) => {
                let mut grants = grants.into_iter();
                let mut out = Vec::with_capacity(slots.len());
                for (slot, &need) in slots.into_iter().zip(amounts) {
                    let Some(slot) = slot else {
                        out.push(None);
                        continue;
                    };
                    let (grant, free) = grants.next().unwrap_or((0, Money::ZERO));
                    slot.admitted.fetch_add(need, Ordering::Relaxed);
                    slot.available
                        .fetch_add(grant.saturating_sub(need), Ordering::AcqRel);
                    slot.valid_until_ms
                        .fetch_max(now_ms.saturating_add(self.ttl_ms()), Ordering::AcqRel);
                    let target = Money::from_pico(u128::from(slot.target.load(Ordering::Relaxed)));
                    slot.scarce.store(free < target, Ordering::Release);
                    out.push(Some(Leased { slot, amount: need }));
                }
                Ok(LeaseVerdict::Granted(out))
            }
            Ok(LeaseReply::Refused { index, spent, held }) => {
                Self::unclaim(&slots, amounts);
                // Escrow a concurrent grow of this process brought in may cover it after all.
                if let Some(taken) = self.take(counters, amounts, now_ms) {
                    return Ok(LeaseVerdict::Granted(taken));
                }
                // Budget is short: leases shrink (escrow goes back at the next tick) and
                // admissions reserve exactly what they need.
                for slot in slots.iter().flatten() {
                    slot.scarce.store(true, Ordering::Release);
                }
                // `index` counts the ops sent; map it back to the request's counters.
                let counter = slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_some())
                    .nth(index)
                    .map_or(index, |(i, _)| i);
                Ok(LeaseVerdict::Refused {
                    index: counter,
                    spent,
                    held,
                })
            }
            Err(e) => {
                Self::unclaim(&slots, amounts);
                if e.may_have_run() {
                    // The grant may stand in Redis without being known here: end those leases
                    // whole (the slots' own escrow goes with them).
                    for slot in slots.into_iter().flatten() {
                        slot.tainted.store(true, Ordering::SeqCst);
                        self.slots
                            .remove_if(&slot.key, |_, s| Arc::ptr_eq(s, &slot));
                        slot.retire();
                        let _ = self.tx.send(Message::Retired(slot));
                    }
                }
                Err(e)
            }
        }
    }

    /// Ends leased reservations: escrow is back at once, the charges reach Redis at the next
    /// tick and `event` leaves after them. Once leases have stopped (shutdown) the event is
    /// handed back to go at once; reconciliation raises the counters to the ledger.
    #[must_use]
    pub fn settle(
        &self,
        leased: Vec<(Leased, u64)>,
        event: Option<UsageEvent>,
    ) -> Option<UsageEvent> {
        let mut org = None;
        for (l, charge) in leased {
            l.slot.finish(l.amount, charge.min(l.amount));
            if charge > 0 && org.is_none() {
                org = Some(l.slot.org.clone());
            }
        }
        let event = event?;
        if self.closed.load(Ordering::Acquire) {
            return Some(event);
        }
        match self.tx.send(Message::Settled {
            org,
            event: Box::new(event),
        }) {
            Ok(()) => None,
            Err(mpsc::error::SendError(Message::Settled { event, .. })) => Some(*event),
            Err(_) => None,
        }
    }

    /// The background task: every tick, flushes charges, resizes and renews leases, ends idle
    /// and retired ones, and sends usage events whose charges landed. After shutdown it goes on
    /// for `drain` (requests finishing meanwhile still settle), then ends every lease.
    pub async fn run(
        self: Arc<Self>,
        usage: UsageSink,
        clock: fn() -> i64,
        drain: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut rx) = rx else {
            return;
        };
        let mut book = Book::default();
        let mut stop_at: Option<Instant> = None;
        let mut interval = tokio::time::interval(self.config.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed(), if stop_at.is_none() => {
                    stop_at = Some(Instant::now() + drain.saturating_sub(Duration::from_millis(500)));
                }
            }
            let stopping = stop_at.is_some_and(|t| Instant::now() >= t);
            if stopping {
                self.closed.store(true, Ordering::Release);
                for entry in self.slots.iter() {
                    entry.value().retire();
                    book.retired.insert(entry.value().id, entry.value().clone());
                }
                self.slots.clear();
            }
            while let Ok(message) = rx.try_recv() {
                book.take(message);
            }
            self.tick(&mut book, &usage, clock()).await;
            if stopping {
                // From here on a settle's event is handed back to go at once; those already
                // queued are taken in, their charges flushed, and every event sent.
                rx.close();
                while let Some(message) = rx.recv().await {
                    book.take(message);
                }
                self.tick(&mut book, &usage, clock()).await;
                book.emit_all(&usage);
                return;
            }
        }
    }

    async fn tick(&self, book: &mut Book, usage: &UsageSink, now_ms: i64) {
        book.failed.clear();
        let mut slots: Vec<Arc<Slot>> = self.slots.iter().map(|e| e.value().clone()).collect();
        slots.extend(book.retired.values().cloned());
        // Per organization: its rebuilt mark and its slots' ops.
        let mut calls: HashMap<String, (Option<String>, Ops)> = HashMap::new();
        for slot in &slots {
            if let Some(op) = self.plan(book, slot, now_ms) {
                calls
                    .entry(slot.org.clone())
                    .or_insert_with(|| (slot.rebuilt_key.clone(), Vec::new()))
                    .1
                    .push((slot.clone(), op));
            }
        }
        // A call that may have run goes again as it was, before anything new for its org.
        // Events go once every charge of their organization taken in so far has landed.
        let unconfirmed: Vec<(String, Unconfirmed)> = book.unconfirmed.drain().collect();
        for (org, call) in unconfirmed {
            if !self
                .send(book, &org, call.rebuilt_key, call.ops, call.seq, now_ms)
                .await
            {
                // Still unconfirmed (kept by `send`); nothing new for this org this tick.
                if let Some((_, ops)) = calls.remove(&org) {
                    book.undo(ops);
                }
            } else if !calls.contains_key(&org) {
                book.flushed(&org);
            }
        }
        for (org, (rebuilt_key, ops)) in calls {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            if self.send(book, &org, rebuilt_key, ops, seq, now_ms).await {
                book.flushed(&org);
            }
        }
        book.emit_ready(usage, Instant::now());
    }

    /// What one slot needs this tick, if anything.
    fn plan(&self, book: &mut Book, slot: &Arc<Slot>, now_ms: i64) -> Option<LeaseOp> {
        if !slot.retired.load(Ordering::SeqCst) && slot.expired(now_ms) {
            // Lapsed (renewals failed): Redis may have released it, so it is never renewed,
            // only ended; a request grows a new one.
            slot.retire();
            self.slots.remove_if(&slot.key, |_, s| Arc::ptr_eq(s, slot));
            book.retired.insert(slot.id, slot.clone());
        }
        let admitted = slot.admitted.swap(0, Ordering::Relaxed);
        let demand = book.demand.entry(slot.id).or_default();
        demand.ewma = (demand.ewma + admitted) / 2;
        demand.idle = if admitted == 0 { demand.idle + 1 } else { 0 };
        let idle = demand.idle >= IDLE_TICKS;
        let target = demand.ewma.saturating_mul(4).min(MAX_LEASE);
        slot.target.store(target, Ordering::Relaxed);
        let retired = slot.retired.load(Ordering::SeqCst);
        if !retired && idle && slot.inflight.load(Ordering::SeqCst) == 0 {
            // Idle: end it (a request finding it gone grows a new one).
            slot.retire();
            self.slots.remove_if(&slot.key, |_, s| Arc::ptr_eq(s, slot));
            book.retired.insert(slot.id, slot.clone());
        }
        let retired = slot.retired.load(Ordering::SeqCst);
        let (release, want) = if retired {
            if slot.inflight.load(Ordering::SeqCst) == 0 {
                slot.available.store(0, Ordering::SeqCst);
                (Release::All, 0)
            } else {
                (Release::Amount(slot.withdraw(u64::MAX)), 0)
            }
        } else if slot.scarce.load(Ordering::Acquire) {
            (Release::Amount(slot.withdraw(u64::MAX)), 0)
        } else {
            let available = slot.available.load(Ordering::Acquire);
            if available > target.saturating_mul(2) {
                (Release::Amount(slot.withdraw(available - target)), 0)
            } else if available < target / 2 {
                (Release::Amount(0), target - available)
            } else {
                (Release::Amount(0), 0)
            }
        };
        // After the in-flight check above: every charge of a request no longer in flight.
        let charge = slot.unflushed.swap(0, Ordering::SeqCst);
        let until = slot.valid_until_ms.load(Ordering::Acquire);
        let renew = !retired && until != NEVER && until - now_ms < self.ttl_ms() / 2;
        let busy = charge > 0 || release != Release::Amount(0) || want > 0;
        if !busy && !renew {
            return None;
        }
        Some(LeaseOp {
            key: slot.key.clone(),
            field: slot.field.clone(),
            limit: slot.limit,
            charge,
            release,
            need: 0,
            want,
            expire_at_ms: slot.expire_at_ms,
        })
    }

    /// Sends one organization's call; `false` when it is left unconfirmed.
    async fn send(
        &self,
        book: &mut Book,
        org: &str,
        rebuilt_key: Option<String>,
        ops: Ops,
        seq: u64,
        now_ms: i64,
    ) -> bool {
        let call = LeaseCall {
            ops: ops.iter().map(|(_, op)| op.clone()).collect(),
            rebuilt_key: rebuilt_key.clone(),
            now_ms,
            lease_ms: self.lease_ms(),
            seq,
            share: self.config.share,
        };
        SpendMetrics::bump(&self.metrics.lease_flushes);
        match self.redis.lease(&call).await {
            Ok(reply) => {
                let grants = match reply {
                    LeaseReply::Granted(g) => g,
                    // Only a need can be refused, and ticks need nothing.
                    LeaseReply::Refused { .. } => Vec::new(),
                };
                let until = now_ms.saturating_add(self.ttl_ms());
                for (i, (slot, op)) in ops.iter().enumerate() {
                    let (grant, free) = grants.get(i).copied().unwrap_or((0, Money::ZERO));
                    slot.valid_until_ms.fetch_max(until, Ordering::AcqRel);
                    if slot.retired.load(Ordering::SeqCst) {
                        // Granted nothing (want 0); ended once `All` went through.
                        if op.release == Release::All {
                            book.retired.remove(&slot.id);
                            book.demand.remove(&slot.id);
                        }
                        continue;
                    }
                    slot.available.fetch_add(grant, Ordering::AcqRel);
                    let target = slot.target.load(Ordering::Relaxed);
                    slot.scarce.store(
                        free < Money::from_pico(u128::from(target)),
                        Ordering::Release,
                    );
                }
                true
            }
            Err(SpendError::NotRebuilt) => {
                // Redis lost these counters: the leases are gone with them, and reconciliation
                // rebuilds the counters from the ledger (the events go now).
                for (slot, _) in &ops {
                    slot.retire();
                    self.slots.remove_if(&slot.key, |_, s| Arc::ptr_eq(s, slot));
                    book.retired.remove(&slot.id);
                    book.demand.remove(&slot.id);
                }
                true
            }
            Err(e) => {
                SpendMetrics::bump(&self.metrics.lease_flush_failed);
                tracing::warn!(error = %e, "lease flush failed; retrying next tick");
                if e.may_have_run() {
                    // Charges and releases go again under the same number; grants are unknown.
                    let mut again = Vec::with_capacity(ops.len());
                    for (slot, mut op) in ops {
                        if op.want > 0 {
                            slot.tainted.store(true, Ordering::SeqCst);
                            slot.retire();
                            self.slots
                                .remove_if(&slot.key, |_, s| Arc::ptr_eq(s, &slot));
                            book.retired.insert(slot.id, slot.clone());
                        }
                        op.want = 0;
                        again.push((slot, op));
                    }
                    book.unconfirmed.insert(
                        org.to_owned(),
                        Unconfirmed {
                            rebuilt_key,
                            ops: again,
                            seq,
                        },
                    );
                } else {
                    book.undo(ops);
                    book.failed.insert(org.to_owned());
                }
                false
            }
        }
    }
}

/// One call's slots and what each asks.
type Ops = Vec<(Arc<Slot>, LeaseOp)>;

/// The background task's own records.
#[derive(Default)]
struct Book {
    retired: HashMap<u64, Arc<Slot>>,
    demand: HashMap<u64, Demand>,
    unconfirmed: HashMap<String, Unconfirmed>,
    /// Organizations whose call did not go through this tick (their charges wait again).
    failed: std::collections::HashSet<String>,
    /// Usage events waiting for their organization's charges to land, in arrival order.
    events: HashMap<String, Vec<(UsageEvent, Instant)>>,
    /// Events whose charges are in Redis.
    ready: Vec<UsageEvent>,
}

#[derive(Default)]
struct Demand {
    ewma: u64,
    idle: u32,
}

struct Unconfirmed {
    rebuilt_key: Option<String>,
    ops: Ops,
    seq: u64,
}

impl Book {
    fn take(&mut self, message: Message) {
        match message {
            Message::Settled { org, event } => match org {
                Some(org) => self
                    .events
                    .entry(org)
                    .or_default()
                    .push((*event, Instant::now())),
                None => self.ready.push(*event),
            },
            Message::Retired(slot) => {
                self.retired.insert(slot.id, slot);
            }
        }
    }

    /// A call that did not run: its charges are pending again and its releases escrow again.
    fn undo(&mut self, ops: Ops) {
        for (slot, op) in ops {
            slot.unflushed.fetch_add(op.charge, Ordering::SeqCst);
            if let Release::Amount(a) = op.release {
                slot.available.fetch_add(a, Ordering::AcqRel);
            }
        }
    }

    /// Every charge of `org` taken in before this tick is in Redis: its events may go.
    fn flushed(&mut self, org: &str) {
        if let Some(events) = self.events.remove(org) {
            self.ready.extend(events.into_iter().map(|(e, _)| e));
        }
    }

    /// Sends the events whose charges landed, those of organizations with nothing left to
    /// flush, and those that waited too long.
    fn emit_ready(&mut self, usage: &UsageSink, now: Instant) {
        for (org, events) in self.events.iter_mut() {
            let blocked = self.failed.contains(org) || self.unconfirmed.contains_key(org);
            events.retain(|(event, since)| {
                if !blocked || now.duration_since(*since) >= EVENT_WAIT {
                    self.ready.push(event.clone());
                    false
                } else {
                    true
                }
            });
        }
        self.events.retain(|_, e| !e.is_empty());
        for event in self.ready.drain(..) {
            usage.emit(event);
        }
    }

    fn emit_all(&mut self, usage: &UsageSink) {
        for (_, events) in self.events.drain() {
            self.ready.extend(events.into_iter().map(|(e, _)| e));
        }
        for event in self.ready.drain(..) {
            usage.emit(event);
        }
    }
}
