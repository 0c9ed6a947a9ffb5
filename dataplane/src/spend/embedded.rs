//! The in-process backend, for single-node use and `make dev`: the same semantics as the Redis
//! scripts, each step under one short critical section (as a script runs alone in Redis).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use switchyard_policy::Money;

use super::{Admission, ReserveRequest, SETTLED_MARKER_MS, SettleRequest};

#[derive(Default)]
struct CounterState {
    spent: Money,
    held: Money,
    /// Outstanding reservations: generation → (amount, expires at).
    holds: HashMap<String, (Money, i64)>,
    expire_at_ms: Option<i64>,
}

impl CounterState {
    /// Releases reservations whose time ran out (their dataplane never settled them).
    fn expire_holds(&mut self, now_ms: i64) {
        let mut released = Money::ZERO;
        self.holds.retain(|_, (amount, until)| {
            let keep = *until > now_ms;
            if !keep {
                released = released.saturating_add(*amount);
            }
            keep
        });
        self.held = self.held.saturating_sub(released);
    }
}

#[derive(Default)]
struct State {
    counters: HashMap<String, CounterState>,
    /// Settled generations → when the marker may be forgotten.
    settled: HashMap<String, i64>,
    operations: u64,
}

/// Sweep expired counters and markers every this many operations.
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
pub struct Embedded {
    state: Mutex<State>,
}

impl Embedded {
    pub fn reserve(&self, r: &ReserveRequest) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        sweep(&mut state, r.now_ms);
        for (index, c) in r.counters.iter().enumerate() {
            let counter = state.counters.entry(c.key.clone()).or_default();
            counter.expire_holds(r.now_ms);
            let total = counter
                .spent
                .saturating_add(counter.held)
                .saturating_add(c.amount);
            if total > c.limit {
                return Admission::Refused {
                    index,
                    spent: counter.spent,
                    held: counter.held,
                };
            }
        }
        let until = r
            .now_ms
            .saturating_add(i64::try_from(r.hold_ms).unwrap_or(i64::MAX));
        for c in &r.counters {
            let counter = state.counters.entry(c.key.clone()).or_default();
            counter.held = counter.held.saturating_add(c.amount);
            counter
                .holds
                .insert(r.generation_id.clone(), (c.amount, until));
            counter.expire_at_ms = c.expire_at_ms;
        }
        Admission::Granted
    }

    pub fn settle(&self, s: &SettleRequest) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        sweep(&mut state, s.now_ms);
        if state.settled.contains_key(&s.settled_key) {
            return false;
        }
        state.settled.insert(
            s.settled_key.clone(),
            s.now_ms.saturating_add(SETTLED_MARKER_MS as i64),
        );
        for c in &s.counters {
            let counter = state.counters.entry(c.key.clone()).or_default();
            // Only a reservation still held is released; an expired one already was.
            if let Some((amount, _)) = counter.holds.remove(&s.generation_id) {
                counter.held = counter.held.saturating_sub(amount);
            }
            counter.spent = counter.spent.saturating_add(c.charge);
            counter.expire_at_ms = c.expire_at_ms;
        }
        true
    }

    pub fn read(&self, key: &str, now_ms: i64) -> (Money, Money) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.counters.get_mut(key) {
            Some(c) => {
                c.expire_holds(now_ms);
                (c.spent, c.held)
            }
            None => (Money::ZERO, Money::ZERO),
        }
    }
}

/// One counter's settled spend, as persisted across restarts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedCounter {
    pub key: String,
    /// Picodollars.
    pub spent: u128,
    pub expire_at_ms: Option<i64>,
}

impl Embedded {
    /// Every counter's settled spend (reservations are not kept: they die with the process).
    pub fn save(&self) -> Vec<SavedCounter> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .counters
            .iter()
            .filter(|(_, c)| c.spent > Money::ZERO)
            .map(|(key, c)| SavedCounter {
                key: key.clone(),
                spent: c.spent.pico(),
                expire_at_ms: c.expire_at_ms,
            })
            .collect()
    }

    /// A backend that starts from saved spend, dropping counters whose window has ended.
    pub fn restore(saved: Vec<SavedCounter>, now_ms: i64) -> Embedded {
        let mut state = State::default();
        for c in saved {
            if c.expire_at_ms.is_some_and(|t| t <= now_ms) {
                continue;
            }
            state.counters.insert(
                c.key,
                CounterState {
                    spent: Money::from_pico(c.spent),
                    expire_at_ms: c.expire_at_ms,
                    ..CounterState::default()
                },
            );
        }
        Embedded {
            state: Mutex::new(state),
        }
    }
}

fn sweep(state: &mut State, now_ms: i64) {
    state.operations += 1;
    if !state.operations.is_multiple_of(SWEEP_EVERY) {
        return;
    }
    state
        .counters
        .retain(|_, c| c.expire_at_ms.is_none_or(|t| t > now_ms) || !c.holds.is_empty());
    state.settled.retain(|_, until| *until > now_ms);
}

#[cfg(test)]
mod tests {
    use super::super::{Counter, Settlement};
    use super::*;

    fn pico(n: u128) -> Money {
        Money::from_pico(n)
    }

    fn reserve(e: &Embedded, generation: &str, now: i64, amount: u128, limit: u128) -> Admission {
        e.reserve(&ReserveRequest {
            generation_id: generation.into(),
            rebuilt_key: None,
            now_ms: now,
            hold_ms: 1000,
            counters: vec![
                Counter {
                    key: "k".into(),
                    limit: pico(limit),
                    amount: pico(amount),
                    expire_at_ms: None,
                },
                Counter {
                    key: "credits".into(),
                    limit: pico(1_000),
                    amount: pico(amount),
                    expire_at_ms: None,
                },
            ],
        })
    }

    fn settle(e: &Embedded, generation: &str, now: i64, reserved: u128, charge: u128) -> bool {
        e.settle(&SettleRequest {
            generation_id: generation.into(),
            settled_key: format!("settled:{generation}"),
            now_ms: now,
            counters: ["k", "credits"]
                .into_iter()
                .map(|key| Settlement {
                    key: key.into(),
                    reserved: pico(reserved),
                    charge: pico(charge),
                    expire_at_ms: None,
                })
                .collect(),
        })
    }

    fn read(e: &Embedded, key: &str, now: i64) -> (u128, u128) {
        let (spent, held) = e.read(key, now);
        (spent.pico(), held.pico())
    }

    #[test]
    fn reserves_all_or_nothing_and_settles_once() {
        let e = Embedded::default();
        assert_eq!(reserve(&e, "g1", 0, 60, 100), Admission::Granted);
        // 60 held + 60 > 100: refused by the first counter, and nothing reserved anywhere.
        assert_eq!(
            reserve(&e, "g2", 0, 60, 100),
            Admission::Refused {
                index: 0,
                spent: Money::ZERO,
                held: pico(60)
            }
        );
        assert_eq!(read(&e, "credits", 0), (0, 60));
        assert!(settle(&e, "g1", 1, 60, 25));
        assert!(
            !settle(&e, "g1", 2, 60, 25),
            "a second settle changes nothing"
        );
        assert_eq!(read(&e, "k", 2), (25, 0));
        assert_eq!(read(&e, "credits", 2), (25, 0));
        assert_eq!(reserve(&e, "g3", 3, 75, 100), Admission::Granted);
    }

    #[test]
    fn saved_spend_survives_a_restart_and_windows_still_end() {
        let e = Embedded::default();
        assert_eq!(reserve(&e, "g1", 0, 60, 100), Admission::Granted);
        assert!(settle(&e, "g1", 1, 60, 70));
        let mut saved = e.save();
        saved.push(SavedCounter {
            key: "yesterday".into(),
            spent: 5,
            expire_at_ms: Some(2),
        });
        let restarted = Embedded::restore(saved, 10);
        assert_eq!(read(&restarted, "k", 10), (70, 0));
        assert_eq!(read(&restarted, "yesterday", 10), (0, 0));
        // 70 spent + 40 > 100: the limit still holds after the restart.
        assert!(matches!(
            reserve(&restarted, "g2", 11, 40, 100),
            Admission::Refused { .. }
        ));
    }

    #[test]
    fn an_unsettled_reservation_expires() {
        let e = Embedded::default();
        assert_eq!(reserve(&e, "crashed", 0, 90, 100), Admission::Granted);
        assert!(matches!(
            reserve(&e, "g2", 500, 90, 100),
            Admission::Refused { .. }
        ));
        // After the hold time the budget is free again; a late settle still charges.
        assert_eq!(reserve(&e, "g3", 1001, 90, 100), Admission::Granted);
        assert!(settle(&e, "crashed", 1002, 90, 5));
        assert_eq!(read(&e, "k", 1002), (5, 90));
    }
}
