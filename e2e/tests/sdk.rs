//! Conformance: the official `openai`, `openrouter` and `anthropic` Python SDKs against a
//! running gateway, with nothing changed but the base URL. `make test` installs them into `.venv`.

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

/// The official TypeScript SDKs: `@openrouter/sdk`, and `@openrouter/ai-sdk-provider` with the
/// `ai` package, whose strict response schemas reject what the gateway must never send (a
/// `null` cost, a missing field). `make test` installs them into `e2e/sdk/node/node_modules`.
#[tokio::test]
async fn official_typescript_sdks_work_unchanged_against_the_gateway() {
    let stack = Stack::start().await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sdk/node");
    assert!(
        dir.join("node_modules/@openrouter/ai-sdk-provider")
            .exists(),
        "the TypeScript SDKs are missing: `make test` installs them (npm ci in {})",
        dir.display()
    );
    let output = tokio::process::Command::new("node")
        .arg(dir.join("conformance.mjs"))
        .current_dir(&dir)
        .env("SWITCHYARD_BASE_URL", stack.api())
        .env("SWITCHYARD_INFERENCE_KEY", &stack.inference_key)
        .output()
        .await
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "TypeScript SDK conformance failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
