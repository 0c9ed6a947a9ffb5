//! `make dev` (deploy/dev.sh) on a fresh data directory, as on a new machine: it comes up,
//! prints the banner with the keys, serves chat and `/messages` on the dev catalogue, and stops
//! every process it started when told to.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::{TempDir, client, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn make_dev_comes_up_on_a_fresh_data_dir() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = TempDir::new("dev");
    let port = free_port();
    let mut dev = tokio::process::Command::new("bash")
        .arg("deploy/dev.sh")
        .current_dir(&root)
        .env("SWITCHYARD_DATA_DIR", &data.0)
        .env("SWITCHYARD_PORT", port.to_string())
        // `make test` built the binaries; a build here would redo it under the runner's env.
        .env("SWITCHYARD_DEV_NO_BUILD", "1")
        .envs(
            [
                "SWITCHYARD_DEV_CP_HTTP_PORT",
                "SWITCHYARD_DEV_CP_GRPC_PORT",
                "SWITCHYARD_DEV_CP_ADMIN_PORT",
                "SWITCHYARD_DEV_MOCK_PORT",
                "SWITCHYARD_DEV_MOCK_B_PORT",
            ]
            .map(|var| (var, free_port().to_string())),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("bash runs deploy/dev.sh");
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    // The banner names the console; its last export line carries the inference key.
    let (console, key) = tokio::time::timeout(Duration::from_secs(60), async {
        let mut console = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.trim().strip_prefix("console") {
                console = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(key) = line.strip_prefix("export OPENAI_API_KEY=") {
                return (
                    console.expect("the banner names the console"),
                    key.to_owned(),
                );
            }
        }
        panic!("deploy/dev.sh ended before its banner");
    })
    .await
    .expect("make dev came up");
    let page = client().get(&console).send().await.unwrap();
    assert_eq!(page.status(), 200, "{console}");
    assert!(page.text().await.unwrap().contains("Activity"), "{console}");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let chat: Value = client()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "mock/fast", "max_tokens": 3,
                      "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        chat["choices"][0]["message"]["content"], "tok tok tok",
        "{chat}"
    );
    let message = client()
        .post(format!("{base}/messages"))
        .header("x-api-key", &key)
        .json(&json!({"model": "mock/claude", "max_tokens": 3,
                      "messages": [{"role": "user", "content": "Hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(message.status(), 200);
    // The ops token was made on the fresh data dir, and guards /metrics.
    let token = std::fs::read_to_string(data.0.join("ops.token")).unwrap();
    assert_eq!(token.trim().len(), 32, "{token:?}");
    let metrics = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);

    // Ctrl-C: every process it started stops.
    let pid = dev.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), dev.wait())
        .await
        .expect("make dev stopped")
        .unwrap();
    let gone = client()
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .send()
        .await;
    assert!(gone.is_err(), "the dataplane still answers after Ctrl-C");
}
