//! The web console's Activity page in headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from `e2e/console`, which `make test` installs), over a real stack with
//! traffic from two end users on two models; and `swctl export` of the same usage. Set
//! SWITCHYARD_SCREENSHOTS to a directory to keep the page's screenshots (docs/ has them).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use support::Stack;

/// Yesterday to tomorrow (UTC): today's traffic, whenever the test runs.
fn around_today() -> (String, String) {
    let today = chrono::Utc::now().date_naive();
    let day = chrono::Days::new(1);
    (
        (today - day).format("%Y-%m-%d").to_string(),
        (today + day).format("%Y-%m-%d").to_string(),
    )
}

/// Sends traffic and waits until its usage is recorded.
async fn traffic(stack: &Stack) -> i64 {
    let mut sent = 0;
    for (user, model) in [
        ("alice", "mock/fast"),
        ("alice", "mock/fast"),
        ("bob", "mock/smart"),
        ("bob", "mock/fast"),
        ("carol", "mock/smart"),
    ] {
        let body = json!({"model": model, "user": user,
                          "messages": [{"role": "user", "content": "hello"}]});
        let response = stack.chat(&stack.inference_key, body).await;
        assert_eq!(response.status(), 200);
        sent += 1;
    }
    let (start, end) = around_today();
    let url = format!(
        "http://127.0.0.1:{}/api/v1/activity/export?format=json&group_by=user&start={start}&end={end}",
        stack.cp_http
    );
    // Usage arrives in batches: wait for all of it.
    support::eventually("the traffic's usage", Duration::from_secs(10), || async {
        let export: Value = support::client()
            .get(&url)
            .bearer_auth(&stack.management_key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (export["data"]["total"]["requests"] == sent).then_some(sent)
    })
    .await
}

#[tokio::test]
async fn the_activity_page_works_in_a_browser() {
    let stack = Stack::start().await;
    traffic(&stack).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("console");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: `make test` installs it (npm ci in {})",
        dir.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is required (.ci/run installs it)"
    );
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("console.mjs"))
        .current_dir(&dir)
        .env(
            "SWITCHYARD_CONSOLE_URL",
            format!("http://127.0.0.1:{}/console", stack.cp_http),
        )
        .env(
            "SWITCHYARD_API",
            format!("http://127.0.0.1:{}", stack.cp_http),
        )
        .env("SWITCHYARD_MANAGEMENT_KEY", &stack.management_key);
    let output = command.output().await.expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the console test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("console: all passed"), "{stdout}");
}

/// `swctl export` writes the same numbers the API gives, as CSV and as a PDF.
#[tokio::test]
async fn swctl_exports_usage_as_csv_and_pdf() {
    let stack = Stack::start().await;
    traffic(&stack).await;
    let token = std::fs::read_to_string(stack.dir.0.join("controlplane/operator.token")).unwrap();
    let organization = stack.swctl(&["get", "orgs"]);
    let org = organization
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "organization")
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{organization}"));
    let (start, end) = around_today();
    let export = |format: &str, out: &PathBuf| {
        let status = std::process::Command::new(support::bin("swctl"))
            .args([
                "export",
                "--org",
                &org,
                "--group-by",
                "user",
                "--format",
                format,
            ])
            .args(["--start", &start, "--end", &end, "--out"])
            .arg(out)
            .env(
                "SWITCHYARD_ADMIN_URL",
                format!("http://127.0.0.1:{}", stack.cp_admin),
            )
            .env("SWITCHYARD_OPERATOR_TOKEN", token.trim())
            .env_remove("SWITCHYARD_OPERATOR_TOKEN_FILE")
            .status()
            .unwrap();
        assert!(status.success(), "swctl export --format {format}");
    };
    let csv_path = stack.dir.0.join("usage.csv");
    export("csv", &csv_path);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let users: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob", "carol", "total"], "{csv}");
    let total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
    assert_eq!(total[2], "5");
    let pdf_path = stack.dir.0.join("usage.pdf");
    export("pdf", &pdf_path);
    assert!(std::fs::read(&pdf_path).unwrap().starts_with(b"%PDF-"));
}
