//! The operator CLI against a real control plane: `swctl` over the admin gRPC API, imperative
//! commands, the declarative apply/diff pair on the example file, and the token check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Process, TempDir, bin, client, eventually, free_port};

const TOKEN: &str = "e2e-operator-token";

struct ControlPlane {
    _process: Process,
    admin_url: String,
    /// The control plane's REST API (`.../api/v1`).
    api_url: String,
    _dir: TempDir,
}

async fn start_control_plane() -> ControlPlane {
    let dir = TempDir::new("swctl");
    let admin = free_port();
    let http = free_port();
    let args = vec![
        "--data-dir".into(),
        dir.0.display().to_string(),
        "--http-listen".into(),
        format!("127.0.0.1:{http}"),
        "--grpc-listen".into(),
        format!("127.0.0.1:{}", free_port()),
        "--admin-listen".into(),
        format!("127.0.0.1:{admin}"),
        "--operator-token".into(),
        TOKEN.into(),
    ];
    let process = Process::spawn(
        "controlplane",
        "switchyard-controlplane",
        &args,
        &[],
        &dir.0,
    );
    eventually("admin API up", Duration::from_secs(20), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let health = format!("http://127.0.0.1:{http}/health");
    eventually("REST API up", Duration::from_secs(20), || {
        let health = health.clone();
        async move {
            client()
                .get(health)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
    ControlPlane {
        _process: process,
        admin_url: format!("http://127.0.0.1:{admin}"),
        api_url: format!("http://127.0.0.1:{http}/api/v1"),
        _dir: dir,
    }
}

impl ControlPlane {
    /// Runs `swctl` with the operator token in its environment, as an operator would.
    fn swctl(&self, args: &[&str]) -> Output {
        self.swctl_with_token(Some(TOKEN), args)
    }

    fn swctl_with_token(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("swctl"));
        cmd.args(args)
            .env("SWITCHYARD_ADMIN_URL", &self.admin_url)
            .env_remove("SWITCHYARD_OPERATOR_TOKEN")
            .env_remove("SWITCHYARD_OPERATOR_TOKEN_FILE");
        if let Some(token) = token {
            cmd.env("SWITCHYARD_OPERATOR_TOKEN", token);
        }
        cmd.output().expect("run swctl")
    }

    /// Runs `swctl`, expects success, and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.swctl(args);
        assert!(
            out.status.success(),
            "swctl {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

fn example_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/switchyard.example.yaml")
}

#[tokio::test]
async fn operator_cli_manages_tenancy_and_converges_a_declared_file() {
    let cp = start_control_plane().await;

    // Imperative: an organization, a user, a membership, credits.
    let org = cp.json(&["create", "org", "E2E Org", "--member-cap", "0"]);
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert_eq!(org["member_cap"], 0);
    let user = cp.json(&["create", "user", "E2E@Example.com", "--name", "E2E User"]);
    assert_eq!(user["email"], "e2e@example.com");
    let member = cp.json(&[
        "create",
        "member",
        "e2e@example.com",
        "--org",
        "E2E Org",
        "--role",
        "admin",
    ]);
    assert_eq!(member["role"], "admin");
    let members = cp.json(&["get", "members", "--org", &org_id]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    let grant = cp.json(&[
        "create", "grant", "--org", "E2E Org", "--amount", "12.5", "--reason", "e2e",
    ]);
    assert_eq!(grant["amount_usd"], 12.5);
    let credits = cp.json(&["get", "credits", "--org", "E2E Org"]);
    assert_eq!(credits[0]["total_credits_usd"], 12.5);

    // A key: its secret once at creation, never in a listing.
    let key = cp.json(&["create", "key", "ci", "--org", "E2E Org", "--limit", "5"]);
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk-sy-v1-"));
    let listing = cp.ok(&["get", "keys", "--org", "E2E Org", "-o", "json"]);
    assert!(listing.contains(key["hash"].as_str().unwrap()));
    assert!(!listing.contains(&secret));

    // Declarative: the example file, planned, applied, then converged.
    let file = example_file();
    let file = file.to_str().unwrap();
    let diff = cp.swctl(&["diff", "-f", file]);
    assert_eq!(diff.status.code(), Some(2), "diff before apply: changes");
    let plan = String::from_utf8_lossy(&diff.stdout);
    assert!(plan.contains("+ organization Acme Research"), "{plan}");

    let first = cp.ok(&["apply", "-f", file]);
    assert!(first.contains("applied"), "{first}");
    assert_eq!(
        first.matches("shown once").count(),
        3,
        "each new key's secret is printed once:\n{first}"
    );

    let second = cp.ok(&["apply", "-f", file]);
    assert_eq!(second.trim(), "no changes");
    let diff = cp.swctl(&["diff", "-f", file]);
    assert_eq!(diff.status.code(), Some(0), "diff after apply: converged");
    assert_eq!(String::from_utf8_lossy(&diff.stdout).trim(), "no changes");

    // What the file declared is there.
    let orgs = cp.json(&["get", "orgs"]);
    let acme = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Acme Research")
        .unwrap();
    assert_eq!(
        (&acme["enforce_zdr"], &acme["deny_data_collection"]),
        (&json!(false), &json!(true)),
        "the privacy settings: {acme}"
    );
    let workspaces = cp.json(&["get", "workspaces", "--org", "Acme Research"]);
    let slugs: Vec<&str> = workspaces
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default", "research"]);
    let keys = cp.json(&[
        "get",
        "keys",
        "--org",
        "Acme Research",
        "--include-disabled",
    ]);
    assert_eq!(keys.as_array().unwrap().len(), 3);
    let presets = cp.json(&["get", "presets", "--org", "Acme Research"]);
    assert_eq!(presets[0]["designated_version"], 2);
    let research = cp.json(&[
        "get",
        "members",
        "--org",
        "Acme Research",
        "--workspace",
        "research",
    ]);
    assert_eq!(research.as_array().unwrap().len(), 1, "{research}");
    // Pruning would delete nothing: the server holds exactly what the file declares.
    let diff = cp.swctl(&["diff", "--prune", "-f", file]);
    assert_eq!(diff.status.code(), Some(0), "{diff:?}");

    // Rotation: a new secret, the old key kept for the grace period.
    let hash = key["hash"].as_str().unwrap();
    let rotated = cp.json(&["rotate", "key", hash, "--grace", "1h"]);
    assert_eq!(rotated["rotated_from"], hash);
    assert_ne!(rotated["secret"], secret);
    let keys = cp.json(&["get", "keys", "--org", "E2E Org"]);
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["hash"] == hash)
        .unwrap();
    assert!(old["expires_at"].is_string(), "{old}");

    // Every call needs the operator token.
    for token in [Some("not-the-token"), None] {
        let refused = cp.swctl_with_token(token, &["get", "orgs"]);
        assert_eq!(refused.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        let expected = if token.is_some() {
            "Unauthenticated"
        } else {
            "no operator token"
        };
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[tokio::test]
async fn operator_cli_manages_guardrails_seen_by_the_rest_api() {
    let cp = start_control_plane().await;
    cp.ok(&["create", "org", "Guard Org"]);
    cp.ok(&["create", "user", "gina@example.com", "--name", "Gina"]);
    cp.ok(&[
        "create",
        "member",
        "gina@example.com",
        "--org",
        "Guard Org",
        "--role",
        "admin",
    ]);
    let key = cp.json(&["create", "key", "ci", "--org", "Guard Org"]);
    let hash = key["hash"].as_str().unwrap().to_owned();
    // The REST API needs a management key; it acts as Gina, an admin.
    let management = cp.json(&[
        "create",
        "key",
        "admin",
        "--org",
        "Guard Org",
        "--kind",
        "management",
    ]);
    let management = management["secret"].as_str().unwrap().to_owned();

    let created = cp.json(&[
        "create",
        "guardrail",
        "Team cap",
        "--org",
        "Guard Org",
        "--limit-usd",
        "10",
        "--reset",
        "monthly",
        "--allow-model",
        "mock/fast",
        "--allow-model",
        "mock/smart",
        "--ignore-provider",
        "mock-b",
    ]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Team cap");
    assert_eq!(created["limit_usd"], 10.0);
    assert_eq!(created["reset"], "monthly");
    assert_eq!(created["default"], false);
    assert_eq!(
        created["allowed_models"],
        serde_json::json!(["mock/fast", "mock/smart"])
    );
    assert_eq!(created["ignored_providers"], serde_json::json!(["mock-b"]));

    // A budget needs its period; the server checks models against the catalogue.
    let refused = cp.swctl(&[
        "create",
        "guardrail",
        "x",
        "--org",
        "Guard Org",
        "--limit-usd",
        "1",
    ]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "clap refuses it: {refused:?}"
    );
    let refused = cp.swctl(&[
        "create",
        "guardrail",
        "x",
        "--org",
        "Guard Org",
        "--allow-model",
        "nope/none",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("InvalidArgument"), "{stderr}");

    // Listed with the default workspace's own guardrail, which comes first.
    let listed = cp.json(&["get", "guardrails", "--org", "Guard Org"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["default"], true);
    assert_eq!(listed[1]["id"], id.as_str());
    let by_slug = cp.json(&[
        "get",
        "guardrails",
        "--org",
        "Guard Org",
        "--workspace",
        "default",
    ]);
    assert_eq!(by_slug.as_array().unwrap().len(), 2);
    let table = cp.ok(&["get", "guardrails", "--org", "Guard Org"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("Team cap"), "{table}");

    // Assigned to a key and a member; the REST API sees the key's assignment.
    let assigned = cp.ok(&[
        "assign",
        "guardrail",
        &id,
        "--key",
        &hash,
        "--user",
        "gina@example.com",
    ]);
    assert!(assigned.contains("to 1 of 1 keys"), "{assigned}");
    assert!(assigned.contains("to 1 of 1 members"), "{assigned}");
    let url = format!("{}/guardrails/{id}/assignments/keys", cp.api_url);
    let response = client()
        .get(&url)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["total_count"], 1, "{body}");
    assert_eq!(body["data"][0]["key_hash"], hash.as_str(), "{body}");
    assert_eq!(body["data"][0]["guardrail_id"], id.as_str(), "{body}");

    // A workspace's default guardrail is neither assigned nor deleted.
    let default_id = listed[0]["id"].as_str().unwrap();
    let refused = cp.swctl(&["delete", "guardrail", default_id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("InvalidArgument"),
        "{refused:?}"
    );

    // Deleted with its assignments.
    let deleted = cp.ok(&["delete", "guardrail", &id]);
    assert_eq!(deleted.trim(), format!("deleted guardrail {id}"));
    let listed = cp.json(&["get", "guardrails", "--org", "Guard Org"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let response = client()
        .get(&url)
        .bearer_auth(&management)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let gone = cp.swctl(&["delete", "guardrail", &id]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
}

#[tokio::test]
async fn the_admin_api_refuses_calls_without_the_operator_token() {
    use switchyard_proto::admin::v1::ListOrganizationsRequest;
    use switchyard_proto::admin::v1::admin_service_client::AdminServiceClient;

    let cp = start_control_plane().await;
    let mut client = AdminServiceClient::connect(cp.admin_url.clone())
        .await
        .unwrap();
    let status = client
        .list_organizations(ListOrganizationsRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let mut request = tonic::Request::new(ListOrganizationsRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let orgs = client
        .list_organizations(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!orgs.organizations.is_empty(), "the seeded organization");
}
