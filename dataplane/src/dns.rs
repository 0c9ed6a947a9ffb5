//! Provider addresses, kept fresh. A snapshot names hosts; each `host:port` gets one shared
//! [`Addresses`] cell, resolved when first named (while a snapshot is prepared, off the request
//! path) and then looked up again in the background: all of them every `--dns-refresh-secs`,
//! and within a second any that has no address (a start with DNS down, a restored snapshot) or
//! whose connection just failed. A failed lookup keeps the addresses known. The request path
//! only loads a cell (lock-free) and takes the next address in turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use switchyard_policy::snapshot::{Addresses, lookup};

/// How a host is looked up: the system's resolver, or a test's script. Blocking.
pub type Lookup = Arc<dyn Fn(&str, u16) -> Vec<SocketAddr> + Send + Sync>;

pub struct Dns {
    cells: DashMap<(Box<str>, u16), Arc<Addresses>>,
    lookup: Lookup,
}

impl Dns {
    pub fn new(lookup: Lookup) -> Dns {
        Dns {
            cells: DashMap::new(),
            lookup,
        }
    }

    /// With the system's resolver.
    pub fn system() -> Dns {
        Dns::new(Arc::new(lookup))
    }

    /// The cell for `host:port`, looked up now if this is the first time it is named (blocking:
    /// call it off the async executor, as snapshot preparation is).
    pub fn resolve(&self, host: &str, port: u16) -> Arc<Addresses> {
        let key = (Box::from(host), port);
        if let Some(cell) = self.cells.get(&key) {
            return cell.clone();
        }
        let cell = Arc::new(Addresses::new(host, port, (self.lookup)(host, port)));
        self.cells.entry(key).or_insert(cell).clone()
    }

    /// Looks hosts up again: every one, or only those that need it. Returns how many were.
    pub fn refresh(&self, every_host: bool) -> usize {
        let due: Vec<Arc<Addresses>> = self
            .cells
            .iter()
            .filter(|c| every_host || c.needs_lookup())
            .map(|c| c.value().clone())
            .collect();
        for cell in &due {
            let found = (self.lookup)(cell.host(), cell.port());
            if found.is_empty() {
                tracing::warn!(
                    host = cell.host(),
                    "provider host did not resolve; keeping what was known"
                );
            }
            cell.update(found);
        }
        due.len()
    }

    /// Refreshes until shutdown: hosts that need it every second, all of them every `every`.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let tick = Duration::from_secs(1);
        let per_full = every.as_secs().max(1);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            ticks += 1;
            let every_host = ticks.is_multiple_of(per_full);
            let dns = self.clone();
            // Lookups block: on the blocking pool, never on the executor.
            let _ = tokio::task::spawn_blocking(move || dns.refresh(every_host)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_host_that_did_not_resolve_at_first_serves_once_it_does() {
        let answers: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let script = answers.clone();
        let dns = Dns::new(Arc::new(move |_, _| script.lock().unwrap().clone()));
        // Started while DNS is down: the snapshot's endpoint has no address.
        let cell = dns.resolve("provider.example", 443);
        assert!(cell.pick().is_none());
        assert_eq!(dns.refresh(false), 1);
        assert!(cell.pick().is_none());
        // DNS is back: the next refresh fills the same cell the snapshot holds.
        let a: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:443".parse().unwrap();
        *answers.lock().unwrap() = vec![a, b];
        dns.refresh(false);
        assert_eq!(cell.all(), [a, b]);
        // Every address serves, in turn.
        assert_eq!([cell.pick(), cell.pick()], [Some(a), Some(b)]);
        // Resolved and healthy: only the periodic refresh looks again.
        assert_eq!(dns.refresh(false), 0);
        assert_eq!(dns.refresh(true), 1);
        // A later snapshot naming the host gets the same cell.
        assert!(Arc::ptr_eq(&cell, &dns.resolve("provider.example", 443)));
        // A failed connection asks for a lookup; a resolver outage keeps the addresses.
        cell.mark_failed();
        answers.lock().unwrap().clear();
        assert_eq!(dns.refresh(false), 1);
        assert_eq!(cell.all(), [a, b]);
    }
}
