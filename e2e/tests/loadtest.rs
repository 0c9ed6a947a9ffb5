//! The load generator CLI against the mock: its counts add up and its outputs parse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{Mock, TempDir, bin};

fn run_loadtest(url: &str, extra: &[&str], dir: &std::path::Path) -> Value {
    let json = dir.join("out.json");
    let svg = dir.join("out.svg");
    let output = std::process::Command::new(bin("switchyard-loadtest"))
        .args([
            "--url",
            url,
            "--key",
            "sk-test",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--quiet",
        ])
        .args([
            "--json",
            json.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("latency"),
        "an SVG plot"
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn assert_counts_add_up(doc: &Value) {
    let requests = doc["requests"].as_u64().unwrap();
    let by_status: u64 = doc["statuses"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let transport: u64 = doc["transport_errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(requests > 0);
    assert_eq!(requests, by_status + transport, "{doc}");
    assert_eq!(
        doc["ok"].as_u64().unwrap(),
        doc["statuses"]["200"].as_u64().unwrap_or(0)
    );
    let l = &doc["latency_ms"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
}

#[tokio::test]
async fn open_and_closed_loop_runs_add_up() {
    let dir = TempDir::new("loadtest");
    let mock = Mock::start("mock", &dir.0).await;
    let url = format!("{}/v1", mock.url);

    let open = run_loadtest(
        &url,
        &["--mode", "open", "--rate", "200", "--connections", "4"],
        &dir.0,
    );
    assert_counts_add_up(&open);
    assert_eq!(open["mode"], "open");
    // The open loop never sends more than its schedule (200 req/s for 1 s, plus each
    // connection's first request at the edge); how many fit is the machine's business.
    let n = open["requests"].as_u64().unwrap();
    assert!(n > 0 && n <= 200 + 4, "{n} requests");
    assert_eq!(open["ok"].as_u64().unwrap(), n);

    let closed = run_loadtest(
        &url,
        &["--mode", "closed", "--connections", "2", "--stream"],
        &dir.0,
    );
    assert_counts_add_up(&closed);
    let s = &closed["stream_stats"];
    assert!(s["tokens"].as_u64().unwrap() >= 16 * closed["ok"].as_u64().unwrap());
    assert!(s["time_to_first_token_ms"]["p50"].as_f64().unwrap() > 0.0);

    // Errors are counted by status, not hidden.
    mock.script(serde_json::json!({"error_rate": 1.0, "error_status": 429}))
        .await;
    let failing = run_loadtest(&url, &["--mode", "open", "--rate", "50"], &dir.0);
    assert_counts_add_up(&failing);
    assert_eq!(failing["ok"], 0);
    assert!(failing["statuses"]["429"].as_u64().unwrap() > 0);
}
