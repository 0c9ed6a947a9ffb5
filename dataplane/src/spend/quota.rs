//! Provider quotas on the spend store: one counter per provider account and minute
//! (`switchyard_policy::routing::quota::quota_key`), shared by every dataplane through Redis (one
//! script call, all or nothing) or kept in process by the embedded backend. An attempt takes a
//! request and its token estimate before it is sent; settle corrects the tokens to what was used.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use redis::Script;
use switchyard_policy::routing::Quota;

/// What the quota says of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaVerdict {
    /// Counted: the attempt may go.
    Taken,
    /// The account's limit for this minute is reached: try the next endpoint or credential.
    Exhausted,
    /// The store could not say: the attempt goes (the provider enforces its own limit).
    Unknown,
}

pub(super) static TAKE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("quota.lua")));

/// The embedded backend's quota counters: `key → (requests, tokens, expires at)`.
#[derive(Default)]
pub struct EmbeddedQuotas {
    counters: Mutex<HashMap<String, (u64, u64, i64)>>,
}

impl EmbeddedQuotas {
    pub fn take(&self, key: &str, quota: Quota, tokens: u64, ttl_ms: i64, now_ms: i64) -> bool {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if counters.len() > 4096 {
            counters.retain(|_, (_, _, expires)| *expires > now_ms);
        }
        let entry = counters
            .entry(key.to_owned())
            .or_insert((0, 0, now_ms + ttl_ms));
        let rpm = u64::from(quota.requests_per_minute);
        let tpm = quota.tokens_per_minute;
        if (rpm > 0 && entry.0 + 1 > rpm) || (tpm > 0 && entry.1 + tokens > tpm) {
            return false;
        }
        entry.0 += 1;
        entry.1 += tokens;
        true
    }

    pub fn adjust_tokens(&self, key: &str, delta: i64) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = counters.get_mut(key) {
            entry.1 = entry.1.saturating_add_signed(delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_tokens_per_minute_are_both_limits() {
        let q = EmbeddedQuotas::default();
        let quota = Quota {
            requests_per_minute: 2,
            tokens_per_minute: 100,
        };
        assert!(q.take("k", quota, 40, 60_000, 0));
        assert!(q.take("k", quota, 40, 60_000, 1));
        assert!(
            !q.take("k", quota, 1, 60_000, 2),
            "third request in the minute"
        );
        let tokens_only = Quota {
            requests_per_minute: 0,
            tokens_per_minute: 100,
        };
        assert!(q.take("t", tokens_only, 60, 60_000, 0));
        assert!(!q.take("t", tokens_only, 60, 60_000, 0), "160 tokens > 100");
        q.adjust_tokens("t", -50);
        assert!(
            q.take("t", tokens_only, 60, 60_000, 0),
            "the estimate corrected down"
        );
    }
}
