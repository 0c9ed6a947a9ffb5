//! The operator gRPC API's service over the shared fixture: guardrails and the other
//! resources round-trip through it as `swctl` drives them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_controlplane::admin::AdminApi;
use switchyard_controlplane::testing::{Database, fixture};
use switchyard_proto::admin::v1 as pb;
use switchyard_proto::admin::v1::admin_service_server::AdminService;
use tonic::{Code, Request};

/// The operator API over the shared fixture on SQLite: also the seeded organization, its
/// inference key's hash, and the database (the caller drops it).
async fn api() -> (AdminApi, String, String, Database) {
    let db = Database::sqlite();
    let f = fixture(&db.url).await;
    let hash = switchyard_controlplane::keys::hash(&f.inference_secret);
    let org = f.organization_id.clone();
    (AdminApi::new(f.manage), org, hash, db)
}

#[tokio::test]
async fn guardrails_round_trip_through_the_operator_api() {
    let (api, org, hash, db) = api().await;
    let team = api
        .create_workspace(Request::new(pb::CreateWorkspaceRequest {
            organization_id: org.clone(),
            slug: "team".into(),
            name: "Team".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();

    // Created in a workspace named by slug; the default workspace when none is named.
    let g = api
        .create_guardrail(Request::new(pb::CreateGuardrailRequest {
            organization_id: org.clone(),
            workspace: "team".into(),
            name: "Team cap".into(),
            limit_usd: Some(2.5),
            reset_interval: "weekly".into(),
            allowed_models: vec!["mock/fast".into()],
            enforce_zdr_openai: Some(true),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.workspace_id, team.id);
    assert_eq!(
        (g.limit_usd, g.reset_interval.as_str()),
        (Some(2.5), "weekly")
    );
    assert_eq!(g.enforce_zdr_openai, Some(true));
    assert_eq!(g.enforce_zdr_xai, None);
    let plain = api
        .create_guardrail(Request::new(pb::CreateGuardrailRequest {
            organization_id: org.clone(),
            name: "Plain".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(plain.workspace_id, team.id);

    // Each workspace lists its default guardrail first.
    let list = |workspace: &str| pb::ListGuardrailsRequest {
        organization_id: org.clone(),
        workspace: workspace.into(),
    };
    let all = api
        .list_guardrails(Request::new(list("")))
        .await
        .unwrap()
        .into_inner()
        .guardrails;
    assert_eq!(all.len(), 4);
    let team_only = api
        .list_guardrails(Request::new(list("team")))
        .await
        .unwrap()
        .into_inner()
        .guardrails;
    assert_eq!(team_only.len(), 2);
    assert!(team_only[0].is_default && team_only[1].id == g.id);

    // Updates leave absent fields alone; lists are replaced whole; clear_limit clears both.
    let updated = api
        .update_guardrail(Request::new(pb::UpdateGuardrailRequest {
            id: g.id.clone(),
            description: Some("weekly cap".into()),
            clear_limit: true,
            allowed_models: Some(pb::StringList { values: vec![] }),
            ignored_providers: Some(pb::StringList {
                values: vec!["mock-b".into()],
            }),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "Team cap");
    assert_eq!(updated.description, "weekly cap");
    assert_eq!(
        (updated.limit_usd, updated.reset_interval.as_str()),
        (None, "")
    );
    assert!(updated.allowed_models.is_empty());
    assert_eq!(updated.ignored_providers, ["mock-b"]);
    assert_eq!(updated.enforce_zdr_openai, Some(true));
    assert!(updated.updated_at_ms > 0);
    let half = api
        .update_guardrail(Request::new(pb::UpdateGuardrailRequest {
            id: g.id.clone(),
            limit_usd: Some(1.0),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(half.code(), Code::InvalidArgument);

    // Assignments: counted, and validated by the manage layer.
    let assign = |id: &str, keys: Vec<String>| pb::AssignGuardrailKeysRequest {
        id: id.into(),
        key_hashes: keys,
    };
    let n = api
        .assign_guardrail_keys(Request::new(assign(&plain.id, vec![hash.clone()])))
        .await
        .unwrap()
        .into_inner()
        .assigned_count;
    assert_eq!(n, 1);
    let unknown = api
        .assign_guardrail_keys(Request::new(assign(&plain.id, vec!["nope".into()])))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    let default = api
        .assign_guardrail_keys(Request::new(assign(&team_only[0].id, vec![hash.clone()])))
        .await
        .unwrap_err();
    assert_eq!(default.code(), Code::InvalidArgument);
    let n = api
        .unassign_guardrail_keys(Request::new(pb::UnassignGuardrailKeysRequest {
            id: plain.id.clone(),
            key_hashes: vec![hash.clone()],
        }))
        .await
        .unwrap()
        .into_inner()
        .unassigned_count;
    assert_eq!(n, 1);

    // Deleted, then gone.
    api.delete_guardrail(Request::new(pb::DeleteGuardrailRequest {
        id: g.id.clone(),
    }))
    .await
    .unwrap();
    let gone = api
        .get_guardrail(Request::new(pb::GetGuardrailRequest { id: g.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let missing = api
        .list_guardrails(Request::new(list("nowhere")))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    db.drop().await;
}
