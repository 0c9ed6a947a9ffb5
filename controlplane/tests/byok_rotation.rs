//! BYOK master-key rotation end to end on a real SQLite store: credentials sealed under master
//! key A stay intact after the control plane restarts with B current (A retired), re-wraps, and
//! restarts again with A gone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row;
use switchyard_controlplane::catalogue::{Catalogue, DEV_CATALOGUE};
use switchyard_controlplane::manage::byok::{ByokPatch, ByokSettings, NewByok};
use switchyard_controlplane::manage::{Actor, Manage, ManageError, Role};
use switchyard_controlplane::publisher::Publisher;
use switchyard_controlplane::seed;
use switchyard_controlplane::store::Store;
use switchyard_controlplane::testing::Database;
use switchyard_controlplane::vault::Vault;

async fn manage(store: &Store, current: &str, retired: &[String]) -> Manage {
    let vault = Arc::new(Vault::new(current, retired).unwrap());
    let publisher = Publisher::start(store.clone(), vault.clone())
        .await
        .unwrap();
    Manage::new(store.clone(), publisher, vault)
}

/// Every text column of every stored credential, and of the audit log.
async fn stored_text(store: &Store) -> Vec<String> {
    let mut text = Vec::new();
    for row in sqlx::query(
        "SELECT id, provider, name, label, ciphertext, wrapped_key, master_key_id, settings \
         FROM byok_credentials",
    )
    .fetch_all(store.pool())
    .await
    .unwrap()
    {
        for column in [
            "id",
            "provider",
            "label",
            "ciphertext",
            "wrapped_key",
            "master_key_id",
            "settings",
        ] {
            text.push(row.try_get::<String, _>(column).unwrap());
        }
        text.extend(row.try_get::<Option<String>, _>("name").unwrap());
    }
    for row in sqlx::query("SELECT action, target, before_state, after_state FROM audit_log")
        .fetch_all(store.pool())
        .await
        .unwrap()
    {
        text.push(row.try_get::<String, _>("action").unwrap());
        text.push(row.try_get::<String, _>("target").unwrap());
        text.extend(row.try_get::<Option<String>, _>("before_state").unwrap());
        text.extend(row.try_get::<Option<String>, _>("after_state").unwrap());
    }
    text
}

fn new_credential(provider: &str, key: &str) -> NewByok {
    NewByok {
        provider: provider.into(),
        key: key.into(),
        workspace_id: None,
        name: Some(format!("{provider} production")),
        disabled: false,
        settings: ByokSettings::default(),
    }
}

#[tokio::test]
async fn credentials_survive_master_key_rotation_on_sqlite() {
    let db = Database::sqlite();
    rotation(&db.url).await;
    db.drop().await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one, as `.ci/run`
/// ensures). The test creates and drops its own database.
#[tokio::test]
async fn credentials_survive_master_key_rotation_on_postgres() {
    let db = Database::postgres().await;
    rotation(&db.url).await;
    db.drop().await;
}

async fn rotation(url: &str) {
    let store = Store::open(url).await.unwrap();
    store
        .replace_catalogue(
            &Catalogue::parse(DEV_CATALOGUE)
                .unwrap()
                .rows(&HashMap::new()),
        )
        .await
        .unwrap();
    let seeded = seed::seed_if_empty(&store).await.unwrap().unwrap();
    let admin_key = store
        .key(&switchyard_controlplane::keys::hash(&seeded.management_key))
        .await
        .unwrap()
        .unwrap();
    let admin = Actor::Member {
        user_id: admin_key.creator_user_id.clone(),
        organization_id: admin_key.organization_id.clone(),
        role: Role::Admin,
        key_hash: admin_key.hash.clone(),
    };
    let key_a = Vault::generate_master_key();
    let key_b = Vault::generate_master_key();

    // Sealed under A, through the manage layer as the REST API would.
    let under_a = manage(&store, &key_a, &[]).await;
    let secrets = [
        ("openai", "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz"),
        ("anthropic", "sk-ant-api03-ZYXWVUTSRQPONMLKJIHGFEDCBA9876"),
        (
            "google-vertex",
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nMIIE"}"#,
        ),
        ("groq", "gsk_shortbutlongenough42"),
    ];
    let mut ids = HashMap::new();
    for (provider, secret) in secrets {
        let row = under_a
            .create_byok(&admin, None, new_credential(provider, secret))
            .await
            .unwrap();
        assert_eq!(row.sealed.master_key_id, under_a.vault.current_key_id());
        assert!(
            row.label.chars().count() <= "gsk_...".len() + 4 && !secret.contains(&row.label),
            "the label masks the key: {}",
            row.label
        );
        ids.insert(row.id, secret);
    }
    // A key replaced in place is sealed afresh, under A too.
    let rotated_id = ids
        .iter()
        .find(|(_, s)| s.starts_with("gsk_"))
        .map(|(id, _)| id.clone())
        .unwrap();
    let replacement = "gsk_replacement_key_after_leak_0001";
    under_a
        .update_byok(
            &admin,
            &rotated_id,
            ByokPatch {
                key: Some(replacement.into()),
                ..ByokPatch::default()
            },
        )
        .await
        .unwrap();
    ids.insert(rotated_id, replacement);

    // Restart with B current and A retired: everything is re-wrapped, once.
    let rotating = manage(&store, &key_b, std::slice::from_ref(&key_a)).await;
    assert_eq!(rotating.rewrap_byok().await.unwrap(), ids.len());
    assert_eq!(
        rotating.rewrap_byok().await.unwrap(),
        0,
        "nothing left to do"
    );

    // Restart with B alone: A is no longer needed to open any credential.
    let after = manage(&store, &key_b, &[]).await;
    let rows = store.all_byok().await.unwrap();
    assert_eq!(rows.len(), ids.len());
    for row in &rows {
        assert_eq!(row.sealed.master_key_id, after.vault.current_key_id());
        assert_eq!(
            after.vault.open(&row.sealed, &row.id).unwrap(),
            ids[&row.id]
        );
    }
    // The vault under A alone can no longer unwrap them.
    let only_a = Vault::new(&key_a, &[]).unwrap();
    assert!(only_a.open(&rows[0].sealed, &rows[0].id).is_err());

    // No plaintext anywhere in the stored rows or the audit log, including the replaced key.
    let text = stored_text(&store).await;
    for (_, secret) in secrets.iter().chain([("groq", replacement)].iter()) {
        assert!(
            text.iter().all(|t| !t.contains(secret)),
            "a stored column contains a plaintext key"
        );
    }
    assert!(text.iter().any(|t| t == "byok.create"), "creations audited");
    assert!(text.iter().any(|t| t == "byok.update"), "updates audited");
}

#[tokio::test]
async fn an_unknown_master_key_is_skipped_not_fatal() {
    let db = Database::sqlite();
    let store = Store::open(&db.url).await.unwrap();
    seed::seed_if_empty(&store).await.unwrap().unwrap();
    let org = store.all_keys().await.unwrap()[0].organization_id.clone();
    let operator = Actor::Operator;
    let key_a = Vault::generate_master_key();
    let under_a = manage(&store, &key_a, &[]).await;
    let row = under_a
        .create_byok(
            &operator,
            Some(&org),
            new_credential("openai", "sk-0123456789abcdef0123"),
        )
        .await
        .unwrap();

    // Started with a new master key but without listing A as retired.
    let forgot = manage(&store, &Vault::generate_master_key(), &[]).await;
    assert_eq!(forgot.rewrap_byok().await.unwrap(), 0);
    let unchanged = store.byok(&row.id).await.unwrap().unwrap();
    assert_eq!(
        unchanged.sealed, row.sealed,
        "the record is left for a later start"
    );
    assert_eq!(
        under_a
            .vault
            .open(&unchanged.sealed, &unchanged.id)
            .unwrap(),
        "sk-0123456789abcdef0123"
    );

    // Members read credentials but cannot create them.
    let members = store.members(&org, 0, 10).await.unwrap().0;
    let member = Actor::Member {
        user_id: members[0].user_id.clone(),
        organization_id: org.clone(),
        role: Role::Member,
        key_hash: "h".repeat(64),
    };
    assert!(matches!(
        under_a
            .create_byok(&member, None, new_credential("openai", "sk-abc"))
            .await,
        Err(ManageError::Forbidden(_))
    ));
    assert_eq!(
        under_a.byok_key(&member, &row.id).await.unwrap().label,
        "sk-...0123"
    );
    db.drop().await;
}
