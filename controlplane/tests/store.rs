//! The store's portable SQL, run unchanged against SQLite and a throwaway PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use switchyard_controlplane::catalogue::{Catalogue, DEV_CATALOGUE};
use switchyard_controlplane::keys::KeyKind;
use switchyard_controlplane::seed;
use switchyard_controlplane::store::{Generation, KeyPatch, NewKey, Store};
use switchyard_controlplane::testing::Database;
use switchyard_policy::Window;

async fn exercise(url: &str) {
    let store = Store::open(url).await.unwrap();
    assert!(store.is_empty().await.unwrap());
    store
        .replace_catalogue(
            &Catalogue::parse(DEV_CATALOGUE)
                .unwrap()
                .rows(&HashMap::new()),
        )
        .await
        .unwrap();
    // Loading twice replaces, it does not duplicate.
    store
        .replace_catalogue(
            &Catalogue::parse(DEV_CATALOGUE)
                .unwrap()
                .rows(&HashMap::new()),
        )
        .await
        .unwrap();
    let catalogue = store.catalogue().await.unwrap();
    let fast = catalogue
        .models
        .iter()
        .find(|m| m.id == "mock/fast")
        .unwrap();
    assert_eq!(fast.endpoints.len(), 2);
    assert_eq!(fast.endpoints[0].price_prompt, "0.00000015");

    let seeded = seed::seed_if_empty(&store)
        .await
        .unwrap()
        .expect("seeded on an empty store");
    assert!(
        seed::seed_if_empty(&store).await.unwrap().is_none(),
        "seeds once"
    );
    let keys = store.all_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let org = keys[0].organization_id.clone();
    let workspace = store.default_workspace(&org).await.unwrap().unwrap();
    assert!(workspace.is_default);
    let management = store
        .key(&switchyard_controlplane::keys::hash(&seeded.management_key))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(management.kind, KeyKind::Management);

    let generated = switchyard_controlplane::keys::generate();
    let key = NewKey {
        hash: generated.hash.clone(),
        kind: KeyKind::Inference,
        name: "portable".into(),
        label: generated.label,
        organization_id: org.clone(),
        workspace_id: workspace.id.clone(),
        creator_user_id: management.creator_user_id.clone(),
        disabled: false,
        limit_usd: Some("12.5".into()),
        limit_reset: Some(Window::Weekly),
        include_byok_in_limit: true,
        expires_at: None,
        created_at: 1,
        updated_at: None,
        rotated_from: None,
        limit_lineage: None,
    };
    store.insert_key(&key).await.unwrap();
    let listed = store
        .keys_of_organization(&org, Some(&workspace.id), None, false, 0, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    let patch = KeyPatch {
        disabled: Some(true),
        limit_usd: Some(None),
        limit_reset: Some(None),
        ..KeyPatch::default()
    };
    let updated = store
        .update_key(&key.hash, &patch, 2)
        .await
        .unwrap()
        .unwrap();
    assert!(updated.disabled && updated.limit_usd.is_none() && updated.limit_reset.is_none());
    assert_eq!(updated.updated_at, Some(2));
    let active = store
        .keys_of_organization(&org, None, None, false, 0, 100)
        .await
        .unwrap();
    assert_eq!(active.len(), 2, "disabled keys are hidden unless asked for");
    let page = store
        .keys_of_organization(&org, None, None, true, 1, 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "offset and limit page");

    let generation = Generation {
        id: "gen-1-portable".into(),
        key_hash: key.hash.clone(),
        organization_id: org.clone(),
        workspace_id: workspace.id.clone(),
        model: "mock/fast".into(),
        cost_usd: None,
        prompt_tokens: 7,
        ..Generation::default()
    };
    assert_eq!(
        store
            .insert_generations(std::slice::from_ref(&generation))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.insert_generations(&[generation]).await.unwrap(),
        0,
        "idempotent by id"
    );
    let back = store.generation("gen-1-portable").await.unwrap().unwrap();
    assert_eq!(back.prompt_tokens, 7);
    assert!(back.cost_usd.is_none(), "an unknown cost stays unknown");
    // A batch larger than one statement, overlapping what is already stored.
    let batch: Vec<Generation> = (0..450)
        .map(|i| Generation {
            id: if i == 0 {
                "gen-1-portable".into()
            } else {
                format!("gen-batch-{i}")
            },
            key_hash: key.hash.clone(),
            cost_usd: Some("0.000001".into()),
            ..Generation::default()
        })
        .collect();
    assert_eq!(store.insert_generations(&batch).await.unwrap(), 449);
    assert_eq!(
        store
            .generation("gen-batch-449")
            .await
            .unwrap()
            .unwrap()
            .cost_usd
            .as_deref(),
        Some("0.000001")
    );

    assert!(store.delete_key(&key.hash).await.unwrap());
    assert!(!store.delete_key(&key.hash).await.unwrap());
}

#[tokio::test]
async fn sqlite() {
    let db = Database::sqlite();
    exercise(&db.url).await;
    db.drop().await;
}

/// Needs a PostgreSQL server: `SWITCHYARD_TEST_POSTGRES` (default: the local one, as `.ci/run`
/// ensures). The test creates and drops its own database.
#[tokio::test]
async fn postgres() {
    let db = Database::postgres().await;
    exercise(&db.url).await;
    db.drop().await;
}
