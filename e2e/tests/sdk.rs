//! Conformance: the official `openai` and `openrouter` Python SDKs against a running gateway,
//! with nothing changed but the base URL. `make test` installs them into `.venv`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;

use support::Stack;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("SWITCHYARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: `make test` creates it (python3 -m venv .venv && .venv/bin/pip install -r e2e/sdk/requirements.txt)",
        python.display()
    );
    python
}

#[tokio::test]
async fn official_sdks_work_unchanged_against_the_gateway() {
    let stack = Stack::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/conformance.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .env("SWITCHYARD_BASE_URL", stack.api())
        .env("SWITCHYARD_INFERENCE_KEY", &stack.inference_key)
        .env("SWITCHYARD_MANAGEMENT_KEY", &stack.management_key)
        .env("SWITCHYARD_MOCK_A_URL", &stack.mock_a.url)
        .env("SWITCHYARD_MOCK_B_URL", &stack.mock_b.url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "SDK conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}
