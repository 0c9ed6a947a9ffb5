//! The deployment files in `deploy/` and the Dockerfile stay true to the binaries: every
//! `SWITCHYARD_*` variable they set is one a binary reads, every command is a binary the
//! workspace builds, and every HTTP probe path answers 200 on a running stack.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;
use support::{Stack, bin, client};

const BINARIES: &[&str] = &[
    "switchyard-controlplane",
    "switchyard-dataplane",
    "swctl",
    "switchyard-mock",
    "switchyard-loadtest",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every YAML document under `deploy/`, with its file name.
fn documents() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("deploy")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            docs.push((path.display().to_string(), value));
        }
    }
    assert!(docs.len() >= 8, "deploy/ documents found: {}", docs.len());
    docs
}

/// Every string in `value`, recursively (keys included).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Mapping(map) => {
            for (k, v) in map {
                strings(k, out);
                strings(v, out);
            }
        }
        Value::Tagged(t) => strings(&t.value, out),
        _ => {}
    }
}

/// The first word of every container command: compose services' and Kubernetes pod templates'.
fn commands(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let first = |command: &Value| match command {
        Value::String(s) => s.split_whitespace().next().map(str::to_owned),
        Value::Sequence(items) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    if let Some(services) = doc.get("services").and_then(Value::as_mapping) {
        found.extend(
            services
                .values()
                .filter_map(|s| s.get("command").and_then(first)),
        );
    }
    let containers = doc
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"))
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_sequence);
    for c in containers.into_iter().flatten() {
        found.extend(c.get("command").and_then(first));
    }
    found
}

fn words(text: &str, prefix: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
        .map(str::to_owned)
        .collect()
}

fn help(binary: &str) -> String {
    let out = Command::new(bin(binary)).arg("--help").output().unwrap();
    assert!(out.status.success(), "{binary} --help");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn deploy_files_use_only_variables_and_binaries_that_exist() {
    let mut known = words(&help("switchyard-controlplane"), "SWITCHYARD_");
    known.extend(words(&help("switchyard-dataplane"), "SWITCHYARD_"));
    // Read by the development catalogue (`base_url_env`), not by a flag.
    let dev_catalogue =
        std::fs::read_to_string(repo().join("controlplane/catalogue/dev.json")).unwrap();
    known.extend(words(&dev_catalogue, "SWITCHYARD_"));
    let mut used = Vec::new();
    for (file, doc) in documents() {
        let mut all = Vec::new();
        strings(&doc, &mut all);
        for s in &all {
            for var in words(s, "SWITCHYARD_") {
                used.push(var.clone());
                assert!(known.contains(&var), "{file}: {var} is read by no binary");
            }
        }
        // Our containers run a binary this workspace builds.
        for command in commands(&doc) {
            if command.starts_with("switchyard") || command.starts_with("swctl") {
                assert!(
                    BINARIES.contains(&command.as_str()),
                    "{file}: unknown binary {command}"
                );
            }
        }
    }
    assert!(used.len() > 20, "deploy files set the gateway's variables");
    let all: Vec<String> = documents().iter().flat_map(|(_, d)| commands(d)).collect();
    for binary in [
        "switchyard-controlplane",
        "switchyard-dataplane",
        "switchyard-mock",
    ] {
        assert!(
            all.iter().any(|c| c == binary),
            "some container runs {binary}"
        );
    }

    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for binary in BINARIES {
        assert!(
            dockerfile.contains(&format!("target/release/{binary}")),
            "the image ships {binary}"
        );
        bin(binary);
    }
}

/// The probes Kubernetes runs answer 200 on the processes they are aimed at.
#[tokio::test]
async fn kubernetes_probe_paths_answer() {
    let stack = Stack::start().await;
    let mut checked = 0;
    for (file, doc) in documents() {
        let Some(containers) = doc
            .get("spec")
            .and_then(|s| s.get("template"))
            .and_then(|t| t.get("spec"))
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_sequence)
        else {
            continue;
        };
        for container in containers {
            let command = container["command"][0].as_str().unwrap_or("");
            let port = match command {
                "switchyard-dataplane" => stack.dp_port,
                "switchyard-controlplane" => stack.cp_http,
                _ => continue,
            };
            for probe in ["readinessProbe", "livenessProbe"] {
                let Some(path) = container[probe]["httpGet"]["path"].as_str() else {
                    continue;
                };
                let r = client()
                    .get(format!("http://127.0.0.1:{port}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{file}: {command} {probe} {path}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4, "two probes on each of the two workloads");
}
