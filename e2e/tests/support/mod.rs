//! Test support for end-to-end tests: free ports, the workspace's binaries as child processes,
//! a whole gateway stack (mock providers, control plane, dataplane), and a scriptable mock
//! control plane for feeding a dataplane snapshots by hand.
//!
//! Binaries come from the same target directory as the test executable, so run
//! `cargo build --workspace --bins` first (`make test` does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod controller;
pub mod faults;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A port on 127.0.0.1 that was free when bound, never handed out twice by this process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        let mut given = GIVEN.lock().unwrap();
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Path of a workspace binary next to the test executable (`target/<profile>/<name>`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Process {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub fn spawn(
        name: &str,
        binary: &str,
        args: &[String],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Process {
        std::fs::create_dir_all(log_dir).unwrap();
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(bin(binary));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
        Process {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (e.g. "TERM", "INT", "KILL").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// Waits for the process to exit on its own, up to `limit`; `None` if it did not.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-e2e-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The dataplanes' `--ops-token`: `/metrics` and `/health/providers` need it.
pub const OPS_TOKEN: &str = "e2e-ops-token";

/// GET an operational endpoint (`/metrics`, `/health/providers`) of the dataplane on `port`.
pub async fn ops_get(port: u16, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(OPS_TOKEN)
        .send()
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A mock provider process and its URL.
pub struct Mock {
    pub process: Process,
    pub url: String,
}

impl Mock {
    pub async fn start(name: &str, dir: &Path) -> Mock {
        let port = free_port();
        let process = Process::spawn(
            name,
            "switchyard-mock",
            &["--listen".into(), format!("127.0.0.1:{port}")],
            &[],
            dir,
        );
        let url = format!("http://127.0.0.1:{port}");
        let c = client();
        eventually(&format!("{name} up"), Duration::from_secs(10), || {
            let c = c.clone();
            let url = url.clone();
            async move {
                c.get(format!("{url}/__mock/stats"))
                    .send()
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        Mock { process, url }
    }

    /// Replaces the mock's script (see `switchyard_loadtest::mock::Script`).
    pub async fn script(&self, script: Value) {
        let r = client()
            .post(format!("{}/__mock/script", self.url))
            .json(&script)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "mock script refused");
    }

    pub async fn last_request(&self) -> Value {
        client()
            .get(format!("{}/__mock/last-request", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /__mock/stats`: requests received, and those refused for an unrecognized member.
    pub async fn stats(&self) -> Value {
        client()
            .get(format!("{}/__mock/stats", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn requests(&self) -> u64 {
        self.stats().await["requests"].as_u64().unwrap()
    }
}

/// The whole gateway: two mock providers, a control plane and a dataplane, on free ports.
pub struct Stack {
    pub dir: TempDir,
    pub mock_a: Mock,
    pub mock_b: Mock,
    pub control_plane: Option<Process>,
    pub dataplane: Option<Process>,
    pub cp_http: u16,
    pub cp_grpc: u16,
    pub cp_admin: u16,
    pub dp_port: u16,
    pub management_key: String,
    pub inference_key: String,
    /// Where dataplanes reach the control plane's gRPC port, when not directly (through a
    /// fault-injecting proxy, say); set before (re)starting the dataplane.
    pub dp_control_plane: Option<String>,
    dp_args: Vec<String>,
    cp_args: Vec<String>,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(&[]).await
    }

    /// Starts the stack; `dp_args` are extra dataplane flags.
    pub async fn start_with(dp_args: &[&str]) -> Stack {
        Self::start_with_both(dp_args, &[]).await
    }

    /// Starts the stack with extra dataplane and control plane flags.
    pub async fn start_with_both(dp_args: &[&str], cp_args: &[&str]) -> Stack {
        let dir = TempDir::new("stack");
        let mock_a = Mock::start("mock-a", &dir.0).await;
        let mock_b = Mock::start("mock-b", &dir.0).await;
        let mut stack = Stack {
            mock_a,
            mock_b,
            control_plane: None,
            dataplane: None,
            cp_http: free_port(),
            cp_grpc: free_port(),
            cp_admin: free_port(),
            dp_port: free_port(),
            management_key: String::new(),
            inference_key: String::new(),
            dp_control_plane: None,
            dp_args: dp_args.iter().map(|s| s.to_string()).collect(),
            cp_args: cp_args.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        stack.start_control_plane().await;
        let credentials =
            std::fs::read_to_string(stack.dir.0.join("controlplane/credentials.env")).unwrap();
        for line in credentials.lines() {
            if let Some(v) = line.strip_prefix("SWITCHYARD_MANAGEMENT_KEY=") {
                stack.management_key = v.into();
            }
            if let Some(v) = line.strip_prefix("SWITCHYARD_INFERENCE_KEY=") {
                stack.inference_key = v.into();
            }
        }
        stack.start_dataplane().await;
        stack.wait_ready().await;
        stack
    }

    pub async fn start_control_plane(&mut self) {
        self.start_control_plane_with_env(&[]).await;
    }

    /// Starts the control plane with extra environment variables (a faked clock, say).
    pub async fn start_control_plane_with_env(&mut self, extra_env: &[(&str, String)]) {
        let mut args = vec![
            "--data-dir".into(),
            self.dir.0.display().to_string(),
            "--http-listen".into(),
            format!("127.0.0.1:{}", self.cp_http),
            "--grpc-listen".into(),
            format!("127.0.0.1:{}", self.cp_grpc),
            "--admin-listen".into(),
            format!("127.0.0.1:{}", self.cp_admin),
        ];
        args.extend(self.cp_args.iter().cloned());
        let mut env = vec![
            ("SWITCHYARD_MOCK_URL", format!("{}/v1", self.mock_a.url)),
            ("SWITCHYARD_MOCK_URL_B", format!("{}/v1", self.mock_b.url)),
        ];
        env.extend(extra_env.iter().cloned());
        self.control_plane = Some(Process::spawn(
            "controlplane",
            "switchyard-controlplane",
            &args,
            &env,
            &self.dir.0,
        ));
        let url = format!("http://127.0.0.1:{}/health", self.cp_http);
        eventually("control plane up", Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                client()
                    .get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    /// A dataplane's flags: listening on `port`, against this stack's control plane and data dir.
    fn dataplane_args(&self, port: u16) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            self.dir.0.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--control-plane".into(),
            // TLS to the control plane is asked for by naming its CA; the certificate is for
            // `localhost`.
            if let Some(url) = &self.dp_control_plane {
                url.clone()
            } else if self.dp_args.iter().any(|a| a == "--control-plane-ca") {
                format!("https://localhost:{}", self.cp_grpc)
            } else {
                format!("http://127.0.0.1:{}", self.cp_grpc)
            },
            "--control-plane-http".into(),
            format!("http://127.0.0.1:{}", self.cp_http),
            "--threads".into(),
            "2".into(),
            "--ops-token".into(),
            OPS_TOKEN.into(),
        ];
        // A short drain keeps stopping quick, unless the test chose its own.
        if !self.dp_args.iter().any(|a| a == "--grace-period-secs") {
            args.extend(["--grace-period-secs".into(), "1".into()]);
        }
        args
    }

    pub async fn start_dataplane(&mut self) {
        self.start_dataplane_with(&[]);
    }

    /// Starts the dataplane with `extra` flags beside the stack's (without waiting for it).
    pub fn start_dataplane_with(&mut self, extra: &[&str]) {
        let mut args = self.dataplane_args(self.dp_port);
        args.extend(self.dp_args.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        self.dataplane = Some(Process::spawn(
            "dataplane",
            "switchyard-dataplane",
            &args,
            &[],
            &self.dir.0,
        ));
    }

    /// Another dataplane against this stack's control plane (same data dir, so it finds the
    /// dataplane token), on a free port, as `id`, with `dp_args` as extra flags; returns once
    /// it is ready. The process is the caller's: dropping it kills it.
    pub async fn start_extra_dataplane(&self, id: &str, dp_args: &[&str]) -> (Process, u16) {
        let port = free_port();
        let mut args = self.dataplane_args(port);
        args.extend(["--dataplane-id".into(), id.into()]);
        args.extend(dp_args.iter().map(|s| s.to_string()));
        let process = Process::spawn(id, "switchyard-dataplane", &args, &[], &self.dir.0);
        wait_dataplane_ready(port).await;
        (process, port)
    }

    pub async fn wait_ready(&self) {
        wait_dataplane_ready(self.dp_port).await;
    }

    /// Runs `swctl -o json` against this stack's operator API with the operator token the
    /// control plane generated; expects success and returns what it printed.
    pub fn swctl(&self, args: &[&str]) -> Value {
        let token = std::fs::read_to_string(self.dir.0.join("controlplane/operator.token"))
            .expect("the control plane wrote its operator token");
        let out = Command::new(bin("swctl"))
            .args(args)
            .args(["-o", "json"])
            .env(
                "SWITCHYARD_ADMIN_URL",
                format!("http://127.0.0.1:{}", self.cp_admin),
            )
            .env("SWITCHYARD_OPERATOR_TOKEN", token.trim())
            .env_remove("SWITCHYARD_OPERATOR_TOKEN_FILE")
            .output()
            .expect("run swctl");
        assert!(
            out.status.success(),
            "swctl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("swctl printed JSON")
    }

    /// The gateway's single base URL, as a client configures it.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.dp_port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.dp_port)
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        client()
            .post(format!("{}/chat/completions", self.api()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a key with `limit` USD and waits until the dataplane knows it: (secret, hash).
    pub async fn limited_key(&self, limit: f64) -> (String, String) {
        let created: Value = client()
            .post(format!("{}/keys", self.api()))
            .bearer_auth(&self.management_key)
            .json(&json!({ "name": "limited", "limit": limit }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = created["key"].as_str().unwrap().to_owned();
        let hash = created["data"]["hash"].as_str().unwrap().to_owned();
        self.wait_key_live(&secret).await;
        (secret, hash)
    }

    /// Waits until the dataplane knows the key `secret` (a request for a model that does not
    /// exist proves it without charging it).
    pub async fn wait_key_live(&self, secret: &str) {
        eventually(
            "key live at the dataplane",
            Duration::from_secs(10),
            || async move {
                let r = self
                    .chat(secret, json!({"model": "nope/nope", "messages": []}))
                    .await;
                (r.status() != 401).then_some(())
            },
        )
        .await;
    }

    /// The control plane's `/metrics` page.
    pub async fn control_plane_metrics(&self) -> String {
        client()
            .get(format!("http://127.0.0.1:{}/metrics", self.cp_http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A series' value on the control plane's `/metrics` (fails the test when it is missing).
    pub async fn control_plane_metric(&self, series: &str) -> u64 {
        let text = self.control_plane_metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    /// Polls `GET /generation?id=` until the control plane has recorded it.
    pub async fn generation(&self, id: &str) -> Value {
        let url = format!("{}/generation?id={id}", self.api());
        let key = self.inference_key.clone();
        eventually(
            &format!("generation {id} recorded"),
            Duration::from_secs(15),
            || {
                let url = url.clone();
                let key = key.clone();
                async move {
                    let r = client().get(url).bearer_auth(key).send().await.ok()?;
                    if r.status().is_success() {
                        r.json::<Value>().await.ok()
                    } else {
                        None
                    }
                }
            },
        )
        .await
    }

    /// Runs `sql` on the control plane's SQLite store with the `sqlite3` shell (waiting up to
    /// 5 s for its write lock) and returns what it printed; a failure fails the test.
    pub fn store_sql(&self, sql: &str) -> String {
        let db = self.dir.0.join("controlplane/switchyard.db");
        let out = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 is installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a stream of `body` on this dataplane with key `key` over a socket with a small
    /// receive buffer, reads until its generation id, and returns the id with the socket, left
    /// open and never read again: a client that stops reading.
    pub async fn stalled_stream(&self, key: &str, body: &Value) -> (String, tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.to_string();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut conn = socket
            .connect(format!("127.0.0.1:{}", self.dp_port).parse().unwrap())
            .await
            .unwrap();
        let request = format!(
            "POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("\"id\":\"gen-") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            seen.extend_from_slice(&buf[..n]);
        }
        (stream_id(&String::from_utf8_lossy(&seen)), conn)
    }

    /// The Redis counter of key `hash`'s lifetime limit, named as the dataplane names it.
    pub async fn key_counter(&self, hash: &str) -> String {
        let me: Value = client()
            .get(format!("{}/key", self.api()))
            .bearer_auth(&self.management_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let org = me["data"]["organization_id"].as_str().unwrap();
        format!("{{org:{org}}}:sp:key:{hash}:l")
    }

    pub fn kill_control_plane(&mut self) {
        if let Some(mut p) = self.control_plane.take() {
            p.kill();
        }
    }

    /// Waits for the dataplane, already signalled, to exit cleanly, then starts it again on
    /// the same port and data dir.
    pub async fn restart_dataplane_after_its_exit(&mut self) {
        let status = self
            .dataplane
            .as_mut()
            .unwrap()
            .wait_exit(Duration::from_secs(60));
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        self.dataplane = None;
        self.start_dataplane().await;
    }

    /// Stops the dataplane the way an orchestrator does: SIGTERM, then wait.
    pub fn stop_dataplane(&mut self) {
        if let Some(mut p) = self.dataplane.take() {
            p.signal("TERM");
            assert!(
                p.wait_exit(Duration::from_secs(30)).is_some(),
                "dataplane stops on SIGTERM"
            );
        }
    }

    pub fn kill_dataplane(&mut self) {
        if let Some(mut p) = self.dataplane.take() {
            p.kill();
        }
    }
}

/// A series' value in a dataplane's `/metrics` (fails the test when it is missing).
pub async fn metric(port: u16, series: &str) -> u64 {
    let text = ops_get(port, "/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// The snapshot version a dataplane serves (`GET /health/ready`); `None` before it is ready.
pub async fn served_version(port: u16) -> Option<u64> {
    let ready: Value = client()
        .get(format!("http://127.0.0.1:{port}/health/ready"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    ready["snapshot_version"].as_u64()
}

/// `libfaketime` (Debian's `faketime` package), to start a process with its clock moved.
pub fn libfaketime() -> String {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libfaketime is required (apt-get install faketime; .ci/run installs it)")
    .to_owned()
}

/// Waits until the dataplane on `port` answers `/health/ready` with success.
pub async fn wait_dataplane_ready(port: u16) {
    let url = format!("http://127.0.0.1:{port}/health/ready");
    eventually("dataplane ready", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            client()
                .get(url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
}

/// A minimal valid chat body.
/// The generation id of a stream, from its text (the first event's `id`).
pub fn stream_id(text: &str) -> String {
    text.split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

pub fn chat_body(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "Hello" }] })
}

/// Asserts OpenRouter's error shape and returns the message.
pub async fn expect_error(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "status");
    let body: Value = response.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], status, "error.code in {body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message in {body}"))
        .to_owned()
}

/// A `redis-server` of the test's own, on a free port (never the shared 6379), so the test can
/// kill and restart it.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Where a durable server keeps its append-only file; `None` keeps nothing.
    durable: Option<TempDir>,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            durable: None,
        };
        redis.restart();
        redis
    }

    /// A server that writes every change to its append-only file before answering, as a
    /// production one is configured, so a restart after a kill keeps its data.
    pub fn start_durable() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            durable: Some(TempDir::new("redis-aof")),
        };
        redis.restart();
        redis
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the server: its connections stay open, unanswered.
    pub fn pause(&self, paused: bool) {
        if let Some(child) = &self.child {
            let signal = if paused { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port: empty, unless it is durable.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut args = vec!["--port", &port, "--save", ""];
        let dir;
        match &self.durable {
            Some(d) => {
                dir = d.0.display().to_string();
                args.extend([
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--dir",
                    &dir,
                ]);
            }
            None => args.extend(["--appendonly", "no"]),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required (apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on {}", self.port);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `HGET key field` through redis-cli: `None` when the key or field does not exist; any
    /// failure, or an answer that is not a number, fails the test (never a silent 0).
    pub fn hget(&self, key: &str, field: &str) -> Option<u64> {
        hget_answer(
            Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "--raw", "HGET", key, field])
                .output(),
            key,
            field,
        )
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What `redis-cli --raw HGET` printed: a number, or nothing for a missing key or field. A failed
/// command, an error reply or anything else fails the test.
fn hget_answer(
    output: std::io::Result<std::process::Output>,
    key: &str,
    field: &str,
) -> Option<u64> {
    let out = output.expect("redis-cli runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "redis-cli HGET {key} {field} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if text.is_empty() {
        return None;
    }
    Some(
        text.parse()
            .unwrap_or_else(|_| panic!("HGET {key} {field} answered {text:?}")),
    )
}

/// A Redis Cluster of the test's own: `masters` `redis-server --cluster-enabled yes` nodes on
/// free ports (their bus ports free too), no replicas, all slots assigned, killed on drop.
pub struct RedisCluster {
    nodes: Vec<Child>,
    pub ports: Vec<u16>,
    dir: TempDir,
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        let dir = TempDir::new("redis-cluster");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..masters {
            let port = free_port();
            let config = cluster.dir.0.join(format!("nodes-{port}.conf"));
            let child = Command::new("redis-server")
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config.display().to_string(),
                    "--port",
                    &port.to_string(),
                    // An explicit bus port: the default (port + 10000) may be taken or > 65535.
                    "--cluster-port",
                    &free_port().to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(&cluster.dir.0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is required (apt-get install redis-server)");
            cluster.nodes.push(child);
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            let up = (0..250).any(|_| {
                let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            });
            assert!(up, "redis-server (cluster node) did not start on {port}");
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is required");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Every node, not only the first, must see the whole cluster before clients seed from it.
        for &port in &cluster.ports {
            let ok = (0..500).any(|_| {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli");
                let ok = String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok");
                if !ok {
                    std::thread::sleep(Duration::from_millis(20));
                }
                ok
            });
            assert!(ok, "cluster node {port} never reported cluster_state:ok");
        }
        cluster
    }

    /// The seed URLs, comma-separated, as `--redis-url` takes them.
    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `HGET key field` through `redis-cli -c` (following redirects to the slot's owner), as
    /// `Redis::hget` answers.
    pub fn hget(&self, key: &str, field: &str) -> Option<u64> {
        hget_answer(
            Command::new("redis-cli")
                .args([
                    "-c",
                    "-p",
                    &self.ports[0].to_string(),
                    "--raw",
                    "HGET",
                    key,
                    field,
                ])
                .output(),
            key,
            field,
        )
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for mut node in self.nodes.drain(..) {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}
