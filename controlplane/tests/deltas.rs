//! Key deltas: a change that touched only keys is published as a delta of those keys, anything
//! else as the whole snapshot; what a subscriber is sent (whole once, then deltas) always adds
//! up to what the control plane decoded; the whole snapshot is brought forward in the
//! background; a second replica publishes the first's key changes as deltas too. On SQLite and
//! on a throwaway PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::manage::Actor;
use switchyard_controlplane::manage::keys::{KeyUpdate, NewKeyInput};
use switchyard_controlplane::manage::organizations::OrganizationPatch;
use switchyard_controlplane::publisher::{Published, Publisher};
use switchyard_controlplane::testing::{
    Database, Fixture, fixture, published_through, second_replica,
};
use switchyard_policy::Snapshot;
use switchyard_policy::snapshot::no_resolver;
use switchyard_proto::config::v1::config_update::Update;

fn new_key(f: &Fixture, name: &str) -> NewKeyInput {
    NewKeyInput {
        name: name.into(),
        kind: KeyKind::Inference,
        workspace: None,
        organization_id: Some(f.organization_id.clone()),
        owner_user_id: Some(f.member_user.clone()),
        limit_usd: None,
        limit_reset: None,
        include_byok_in_limit: false,
        expires_at: None,
    }
}

fn published(p: &Publisher) -> Arc<Published> {
    p.subscribe().borrow().clone()
}

/// What a dataplane ends up serving after `updates`, starting from `from` (or nothing).
fn replay(from: Option<Snapshot>, updates: Vec<Update>) -> Snapshot {
    let mut served = from;
    for update in updates {
        served = Some(match (update, served) {
            (Update::Snapshot(whole), _) => Snapshot::decode(*whole, &no_resolver).unwrap(),
            (Update::KeyDelta(delta), Some(s)) => s.apply_key_delta(delta).unwrap(),
            (other, served) => panic!("unexpected update {other:?} over {served:?}"),
        });
    }
    served.expect("something was sent")
}

/// Every key of a snapshot as its debug form, sorted: two snapshots serve the same keys.
fn keys(s: &Snapshot) -> Vec<String> {
    let mut keys: Vec<String> = s.keys.iter().map(|k| format!("{k:?}")).collect();
    keys.sort();
    keys
}

fn count(p: &Publisher) -> (u64, u64) {
    (
        p.metrics.builds.load(Ordering::Relaxed),
        p.metrics.deltas.load(Ordering::Relaxed),
    )
}

async fn key_changes_are_deltas_and_the_rest_whole(f: &Fixture) {
    let m = &f.manage;
    let p = &f.publisher;
    let start = published(p);
    let (builds, deltas) = count(p);

    let (key, _) = m
        .create_key(&Actor::Operator, new_key(f, "delta"))
        .await
        .unwrap();
    let after_create = published(p);
    assert_eq!(count(p), (builds, deltas + 1), "a new key is a delta");
    let last = after_create.deltas.back().unwrap();
    assert_eq!(last.from_version, start.version());
    assert_eq!(last.version, after_create.version());
    assert_eq!(
        last.upserted
            .iter()
            .map(|k| k.hash.as_str())
            .collect::<Vec<_>>(),
        [key.hash.as_str()]
    );
    assert!(after_create.decoded.keys.get_hex(&key.hash).is_some());

    m.update_key(
        &Actor::Operator,
        &key.hash,
        KeyUpdate {
            disabled: Some(true),
            ..KeyUpdate::default()
        },
    )
    .await
    .unwrap();
    let after_disable = published(p);
    assert_eq!(count(p), (builds, deltas + 2));
    assert!(
        after_disable
            .decoded
            .keys
            .get_hex(&key.hash)
            .unwrap()
            .disabled
    );

    m.delete_key(&Actor::Operator, &key.hash).await.unwrap();
    let after_delete = published(p);
    assert_eq!(count(p), (builds, deltas + 3));
    assert_eq!(
        after_delete.deltas.back().unwrap().removed,
        [key.hash.as_str()]
    );
    assert!(after_delete.decoded.keys.get_hex(&key.hash).is_none());

    // A subscriber that was sent the start version gets the three deltas, one that was sent
    // the one before the last gets the last only, a new one the whole snapshot and the deltas
    // after it; each ends up serving what the control plane decoded.
    let from_start = after_delete.updates_since(Some((start.epoch(), start.version())));
    assert_eq!(from_start.len(), 3);
    assert!(from_start.iter().all(|u| matches!(u, Update::KeyDelta(_))));
    let served = replay(
        Some(Snapshot::decode(start.as_whole(), &no_resolver).unwrap()),
        from_start,
    );
    assert_eq!(keys(&served), keys(&after_delete.decoded));
    assert_eq!(served.version, after_delete.version());
    let last_only = after_delete.updates_since(Some((start.epoch(), after_disable.version())));
    assert_eq!(last_only.len(), 1);
    assert!(
        after_delete
            .updates_since(Some((start.epoch(), after_delete.version())))
            .is_empty()
    );
    let fresh = after_delete.updates_since(None);
    assert_eq!(fresh.len(), 1);
    assert!(matches!(&fresh[0], Update::Snapshot(s) if s.version == after_delete.version()));
    assert_eq!(keys(&replay(None, fresh)), keys(&after_delete.decoded));
    // Another epoch's version is no base for deltas.
    let elsewhere = after_delete.updates_since(Some(("another-store", start.version())));
    assert!(matches!(elsewhere[0], Update::Snapshot(_)));
    // The whole form of a version (for subscribers that know no deltas) is the same.
    let whole = Snapshot::decode(after_delete.as_whole(), &no_resolver).unwrap();
    assert_eq!(keys(&whole), keys(&after_delete.decoded));

    // Anything else is the whole snapshot, and no delta bridges to it.
    m.update_organization(
        &Actor::Operator,
        Some(&f.organization_id),
        OrganizationPatch {
            name: Some("Renamed".into()),
            ..OrganizationPatch::default()
        },
    )
    .await
    .unwrap();
    let renamed = published(p);
    assert_eq!(count(p), (builds + 1, deltas + 3), "not a key: whole");
    assert!(renamed.deltas.is_empty());
    let updates = renamed.updates_since(Some((start.epoch(), after_delete.version())));
    assert_eq!(updates.len(), 1);
    assert!(matches!(updates[0], Update::Snapshot(_)));

    // Rotation changes two keys: one delta of both.
    let (old, _) = m
        .create_key(&Actor::Operator, new_key(f, "to rotate"))
        .await
        .unwrap();
    let (new, _) = m.rotate_key(&Actor::Operator, &old.hash, 60).await.unwrap();
    let rotated = published(p);
    assert_eq!(count(p), (builds + 1, deltas + 5));
    let mut changed: Vec<&str> = rotated
        .deltas
        .back()
        .unwrap()
        .upserted
        .iter()
        .map(|k| k.hash.as_str())
        .collect();
    changed.sort();
    let mut expected = [old.hash.as_str(), new.hash.as_str()];
    expected.sort();
    assert_eq!(changed, expected);
    assert!(
        rotated
            .decoded
            .keys
            .get_hex(&old.hash)
            .unwrap()
            .expires_at_ms
            .is_some()
    );
}

async fn the_whole_snapshot_is_brought_forward(f: &Fixture) {
    let p = &f.publisher;
    let before = p.metrics.compactions.load(Ordering::Relaxed);
    let mut hashes = Vec::new();
    for i in 0..300 {
        let (k, _) = f
            .manage
            .create_key(&Actor::Operator, new_key(f, &format!("bulk {i}")))
            .await
            .unwrap();
        hashes.push(k.hash);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.metrics.compactions.load(Ordering::Relaxed) == before {
        assert!(Instant::now() < deadline, "never compacted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next version carries the whole snapshot brought forward.
    f.manage
        .create_key(&Actor::Operator, new_key(f, "after compaction"))
        .await
        .unwrap();
    let now = published(p);
    assert!(
        now.whole.version > now.version() - 300,
        "whole at {} for version {}",
        now.whole.version,
        now.version()
    );
    // A new subscriber, or one whose version is on no delta kept here (another replica's),
    // gets this very version whole; one ahead of it gets nothing until there is more.
    let fresh = now.updates_since(None);
    assert_eq!(fresh.len(), 1, "one whole snapshot for a new subscriber");
    assert!(matches!(&fresh[0], Update::Snapshot(s) if s.version == now.version()));
    let elsewhere = now.updates_since(Some((now.epoch(), 0)));
    assert_eq!(elsewhere.len(), 1);
    assert!(matches!(&elsewhere[0], Update::Snapshot(s) if s.version == now.version()));
    assert!(
        now.updates_since(Some((now.epoch(), now.version() + 5)))
            .is_empty()
    );
    let served = replay(None, fresh);
    assert_eq!(keys(&served), keys(&now.decoded));
    for h in &hashes {
        assert!(served.keys.get_hex(h).is_some());
    }
}

async fn a_replica_publishes_the_others_key_changes_as_deltas(f: &Fixture, url: &str) {
    let second = second_replica(url).await;
    let (key, _) = second
        .create_key(&Actor::Operator, new_key(f, "on the second replica"))
        .await
        .unwrap();
    let version = second.publisher.current_version();
    let (_, deltas) = count(&f.publisher);
    tokio::spawn(f.publisher.clone().follow());
    published_through(&f.publisher, version).await;
    assert!(f.publisher.current().keys.get_hex(&key.hash).is_some());
    assert_eq!(count(&f.publisher).1, deltas + 1, "followed as a delta");
}

async fn all(url: &str) {
    let f = fixture(url).await;
    key_changes_are_deltas_and_the_rest_whole(&f).await;
    the_whole_snapshot_is_brought_forward(&f).await;
    a_replica_publishes_the_others_key_changes_as_deltas(&f, url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_deltas_on_sqlite() {
    let db = Database::sqlite();
    all(&db.url).await;
    db.drop().await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_deltas_on_postgres() {
    let db = Database::postgres().await;
    all(&db.url).await;
    db.drop().await;
}
