//! Provider quotas: the limits a provider account enforces on its own callers (requests and
//! tokens per minute), declared in the catalogue for the gateway's own account with a provider
//! and on a BYOK credential for an organization's. Dataplanes count them in one shared counter
//! per account and minute, and route to the next endpoint or credential before the provider
//! would answer 429.

/// A provider account's limits per minute; zero means no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests_per_minute: u32,
    pub tokens_per_minute: u64,
}

impl Quota {
    pub fn is_set(&self) -> bool {
        self.requests_per_minute > 0 || self.tokens_per_minute > 0
    }
}

/// Whose account an attempt draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Account<'a> {
    /// The gateway's own credential with a provider.
    Gateway { provider_id: &'a str },
    /// An organization's BYOK credential.
    Byok { credential_id: &'a str },
}

/// The counter of an account's quota in the minute containing `now_ms`:
/// `{quota:<account>}:<minute>`, one hash (fields `r` and `t`) per account and minute.
pub fn quota_key(account: Account<'_>, now_ms: i64) -> String {
    let minute = now_ms.div_euclid(60_000);
    match account {
        Account::Gateway { provider_id } => format!("{{quota:gw:{provider_id}}}:{minute}"),
        Account::Byok { credential_id } => format!("{{quota:byok:{credential_id}}}:{minute}"),
    }
}

/// How long a minute's counter is kept: the minute left, and one more for late adjustments.
pub fn quota_ttl_ms(now_ms: i64) -> i64 {
    60_000 - now_ms.rem_euclid(60_000) + 60_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_per_account_and_minute() {
        let t = 1_800_000_030_000; // 30 s into a minute
        assert_eq!(
            quota_key(
                Account::Gateway {
                    provider_id: "openai"
                },
                t
            ),
            "{quota:gw:openai}:30000000"
        );
        assert_eq!(
            quota_key(
                Account::Byok {
                    credential_id: "byok_1"
                },
                t + 30_000
            ),
            "{quota:byok:byok_1}:30000001"
        );
        assert_eq!(quota_ttl_ms(t), 90_000);
        assert!(!Quota::default().is_set());
    }
}
