//! authenticate: `Authorization: Bearer <secret>` → the key it names, by SHA-256 lookup. A key
//! that depends on a record this dataplane set aside (see `Quarantine`) is refused here, with a
//! reason, before it can spend.

use serde_json::json;
use sha2::{Digest, Sha256};
use switchyard_policy::bearer::bearer;

use crate::reject::{Kind, Reject};
use crate::snapshot::{ApiKey, KeyKind, Snapshot};

/// What the caller means to do with the key: a key only works for its own kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Inference,
}

pub fn authenticate<'s>(
    snapshot: &'s Snapshot,
    authorization: Option<&[u8]>,
    purpose: Purpose,
    now_ms: i64,
) -> Result<&'s ApiKey, Reject> {
    let secret = authorization
        .and_then(bearer)
        .ok_or_else(|| Reject::new(Kind::Unauthenticated, "No auth credentials found"))?;
    let hash: [u8; 32] = Sha256::digest(secret).into();
    // Unknown, disabled and expired keys get one message so a caller cannot probe which.
    let invalid = || Reject::new(Kind::Unauthenticated, "User not found.");
    let key = snapshot.keys.get(&hash).ok_or_else(invalid)?;
    if key.disabled || key.expires_at_ms.is_some_and(|t| t <= now_ms) {
        return Err(invalid());
    }
    if let Some(blocked) = snapshot.quarantine.blocking(key) {
        return Err(Reject::new(
            Kind::KeyQuarantined,
            format!(
                "This key cannot be used: the gateway could not apply its configuration ({} {}). \
                 Ask an organization admin to correct it.",
                blocked.kind.label(),
                blocked.id
            ),
        )
        .with_metadata(json!({
            "reason": "configuration_quarantined",
            "record": blocked.kind.label(),
            "id": &*blocked.id,
        })));
    }
    match (purpose, key.kind) {
        (Purpose::Inference, KeyKind::Inference) => Ok(key),
        (Purpose::Inference, KeyKind::Management) => Err(Reject::new(
            Kind::Forbidden,
            "Management keys cannot be used for inference; use an inference key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_policy::testing::SnapshotBuilder;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn accepts_a_live_inference_key() {
        let (snapshot, secret) = SnapshotBuilder::new()
            .with_inference_key()
            .build_with_secret();
        let header = format!("Bearer {secret}");
        let key =
            authenticate(&snapshot, Some(header.as_bytes()), Purpose::Inference, NOW).unwrap();
        assert_eq!(key.kind, KeyKind::Inference);
    }

    #[test]
    fn refuses_missing_unknown_disabled_expired_and_management_keys() {
        let check = |snapshot: &Snapshot, header: Option<&str>| {
            authenticate(snapshot, header.map(str::as_bytes), Purpose::Inference, NOW)
                .unwrap_err()
                .status()
        };
        let (snapshot, _) = SnapshotBuilder::new()
            .with_inference_key()
            .build_with_secret();
        assert_eq!(check(&snapshot, None), 401);
        assert_eq!(check(&snapshot, Some("Bearer ")), 401);
        assert_eq!(check(&snapshot, Some("Basic abc")), 401);
        assert_eq!(check(&snapshot, Some("Bearer sk-sy-v1-unknown")), 401);

        let (snapshot, secret) = SnapshotBuilder::new()
            .with_disabled_key()
            .build_with_secret();
        assert_eq!(check(&snapshot, Some(&format!("Bearer {secret}"))), 401);

        let (snapshot, secret) = SnapshotBuilder::new()
            .with_key_expiring_at(NOW - 1)
            .build_with_secret();
        assert_eq!(check(&snapshot, Some(&format!("Bearer {secret}"))), 401);

        let (snapshot, secret) = SnapshotBuilder::new()
            .with_management_key()
            .build_with_secret();
        assert_eq!(check(&snapshot, Some(&format!("Bearer {secret}"))), 403);
    }

    #[test]
    fn a_key_whose_record_was_set_aside_is_refused_with_its_reason() {
        let (snapshot, secret) = SnapshotBuilder::new()
            .with_inference_key_where(|k| k.limit_usd = "2000000000".into())
            .build_with_secret();
        let header = format!("Bearer {secret}");
        let reject =
            authenticate(&snapshot, Some(header.as_bytes()), Purpose::Inference, NOW).unwrap_err();
        assert_eq!(reject.kind, Kind::KeyQuarantined);
        assert_eq!(reject.status(), 403);
        let metadata = reject.metadata.unwrap();
        assert_eq!(metadata["reason"], "configuration_quarantined");
        assert_eq!(metadata["record"], "key");
    }
}
