//! The operator CLI against a real control plane: `swctl` over the admin gRPC API, imperative
//! commands, the declarative apply/diff pair on the example file, and the token check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use support::{Process, TempDir, bin, eventually, free_port};

const TOKEN: &str = "e2e-operator-token";

struct ControlPlane {
    _process: Process,
    admin_url: String,
    _dir: TempDir,
}

async fn start_control_plane() -> ControlPlane {
    let dir = TempDir::new("swctl");
    let admin = free_port();
    let args = vec![
        "--data-dir".into(),
        dir.0.display().to_string(),
        "--http-listen".into(),
        format!("127.0.0.1:{}", free_port()),
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
    ControlPlane {
        _process: process,
        admin_url: format!("http://127.0.0.1:{admin}"),
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
