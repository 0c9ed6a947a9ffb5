//! A description of the machine a bench ran on, stored with its results.

use serde_json::{Value, json};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub fn describe() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let rustc = command("rustc", &["--version"]);
    let nginx = command("sh", &["-c", "nginx -v 2>&1"]);
    let commit = command("git", &["rev-parse", "--short", "HEAD"]);
    json!({
        "summary": format!("{cores} cores ({cpu}), {:.1} GiB, Linux {kernel}, {rustc}, {nginx}, commit {commit}", mem_kib as f64 / 1048576.0),
        "cpu": cpu,
        "cores": cores,
        "memory_kib": mem_kib,
        "kernel": kernel,
        "rustc": rustc,
        "nginx": nginx,
        "commit": commit,
    })
}
