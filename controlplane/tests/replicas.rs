//! Two control planes on one database, raced: each has its own connection pool, publisher and
//! no shared memory, as two replicas behind a load balancer. The check-then-write rules (member
//! cap, last admin, credit balance) hold across them, and each publishes the other's changes.
//! On a throwaway PostgreSQL database (the production setup for replicas) and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_controlplane::manage::organizations::OrganizationPatch;
use switchyard_controlplane::manage::{Actor, Manage, ManageError, Role};
use switchyard_controlplane::testing::{
    Database, Fixture, fixture, published_through, second_replica,
};

/// The fixture's control plane, and a second one on the same database.
async fn two_replicas(url: &str) -> (Fixture, Manage) {
    let first = fixture(url).await;
    (first, second_replica(url).await)
}

/// The replica that runs the `i`th racer.
fn replica<'a>(f: &'a Fixture, second: &'a Manage, i: usize) -> &'a Manage {
    if i.is_multiple_of(2) {
        &f.manage
    } else {
        second
    }
}

async fn member_cap_holds(f: &Fixture, second: &Manage) {
    let op = Actor::Operator;
    // Two members now (the admin and the fixture's member): room for three more.
    f.manage
        .update_organization(
            &op,
            Some(&f.organization_id),
            OrganizationPatch {
                member_cap: Some(5),
                ..OrganizationPatch::default()
            },
        )
        .await
        .unwrap();
    let mut users = Vec::new();
    for i in 0..12 {
        let u = f
            .manage
            .create_user(&op, &format!("racer{i}@example.com"), "Racer")
            .await
            .unwrap();
        users.push(u.id);
    }
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let m = replica(f, second, i).clone();
            let (org, user) = (f.organization_id.clone(), user.clone());
            tokio::spawn(async move {
                m.add_member(&Actor::Operator, Some(&org), &user, Role::Member)
                    .await
            })
        })
        .collect();
    let mut added = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => added += 1,
            Err(ManageError::Invalid(m)) => assert!(m.contains("member cap"), "{m}"),
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }
    let (_, total) = f.store.members(&f.organization_id, 0, 100).await.unwrap();
    assert_eq!(added, 3, "exactly the room left");
    assert_eq!(total, 5, "the cap holds across replicas");
    f.manage
        .update_organization(
            &op,
            Some(&f.organization_id),
            OrganizationPatch {
                member_cap: Some(0),
                ..OrganizationPatch::default()
            },
        )
        .await
        .unwrap();
}

async fn an_admin_always_remains(f: &Fixture, second: &Manage) {
    let op = Actor::Operator;
    let other = f
        .manage
        .create_user(&op, "second-admin@example.com", "Second")
        .await
        .unwrap();
    f.manage
        .add_member(&op, Some(&f.organization_id), &other.id, Role::Admin)
        .await
        .unwrap();
    let admins = [f.admin_user.clone(), other.id.clone()];
    for round in 0..10 {
        // Both admins demoted at once, one on each replica: at most one demotion may win.
        let tasks: Vec<_> = admins
            .iter()
            .enumerate()
            .map(|(i, user)| {
                let m = replica(f, second, i).clone();
                let (org, user) = (f.organization_id.clone(), user.clone());
                tokio::spawn(async move {
                    m.set_member_role(&Actor::Operator, Some(&org), &user, Role::Member)
                        .await
                })
            })
            .collect();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                assert!(matches!(e, ManageError::Invalid(_)), "round {round}: {e:?}");
            }
        }
        let (members, _) = f.store.members(&f.organization_id, 0, 100).await.unwrap();
        let remaining: Vec<_> = members
            .iter()
            .filter(|m| m.role == Role::Admin.as_str())
            .collect();
        assert_eq!(remaining.len(), 1, "round {round}: one admin remains");
        // Promote both back for the next round.
        for user in &admins {
            f.manage
                .set_member_role(&op, Some(&f.organization_id), user, Role::Admin)
                .await
                .unwrap();
        }
    }
}

async fn credits_cannot_be_spent_twice(f: &Fixture, second: &Manage) {
    let op = Actor::Operator;
    let personal = f
        .store
        .personal_account(&f.member_user)
        .await
        .unwrap()
        .unwrap();
    f.manage
        .grant_credits(&op, Some(&personal.id), 10.0, "to move")
        .await
        .unwrap();
    let before = f.store.credits_micros(&f.organization_id).await.unwrap();
    // Ten transfers of 3 USD from a balance of 10, across both replicas: three can succeed.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let m = replica(f, second, i).clone();
            let (user, org) = (f.member_user.clone(), f.organization_id.clone());
            tokio::spawn(async move {
                m.transfer_personal_credits(&Actor::Operator, &user, &org, 3.0, "race")
                    .await
            })
        })
        .collect();
    let mut moved = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => moved += 1,
            Err(ManageError::InsufficientCredits(_)) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }
    assert_eq!(moved, 3);
    assert_eq!(
        f.store.credits_micros(&personal.id).await.unwrap(),
        1_000_000,
        "never overdrawn"
    );
    assert_eq!(
        f.store.credits_micros(&f.organization_id).await.unwrap() - before,
        9_000_000
    );
}

async fn each_replica_publishes_the_others_changes(f: &Fixture, second: &Manage) {
    // A change committed on the second replica reaches dataplanes watching the first.
    let key = second
        .create_key(
            &Actor::Operator,
            switchyard_controlplane::manage::keys::NewKeyInput {
                name: "made on the second replica".into(),
                kind: switchyard_controlplane::keys::KeyKind::Inference,
                workspace: None,
                organization_id: Some(f.organization_id.clone()),
                owner_user_id: Some(f.admin_user.clone()),
                limit_usd: None,
                limit_reset: None,
                include_byok_in_limit: false,
                expires_at: None,
            },
        )
        .await
        .unwrap()
        .0;
    let version = second.publisher.current_version();
    assert_eq!(
        f.publisher.current().epoch,
        second.publisher.current().epoch
    );
    tokio::spawn(f.publisher.clone().follow());
    published_through(&f.publisher, version).await;
    assert!(f.publisher.current().keys.get_hex(&key.hash).is_some());
}

async fn race(f: Fixture, second: Manage) {
    member_cap_holds(&f, &second).await;
    an_admin_always_remains(&f, &second).await;
    credits_cannot_be_spent_twice(&f, &second).await;
    each_replica_publishes_the_others_changes(&f, &second).await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_postgres_keep_the_rules() {
    let db = Database::postgres().await;
    let (f, second) = two_replicas(&db.url).await;
    race(f, second).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_sqlite_keep_the_rules() {
    let db = Database::sqlite();
    let (f, second) = two_replicas(&db.url).await;
    race(f, second).await;
    db.drop().await;
}
