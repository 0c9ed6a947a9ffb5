//! The processes a bench run compares: the mock provider, nginx in front of it, and Switchyard
//! (control plane + dataplane) in front of it, each on a free port.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process stopped on drop: asked with SIGTERM first, so that a master process (nginx)
/// takes its workers with it, then killed if it has not exited within two seconds. (A bare
/// SIGKILL orphans nginx's workers, which then skew every later run.)
pub struct Proc(Child);

impl Proc {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU pinning: proxies (nginx, the dataplane) on one core, everything else on the others, so
/// that both proxies get the same core and never compete with the load generator.
#[derive(Clone, Debug)]
pub struct Pinning {
    pub proxy_cpus: Option<String>,
    pub other_cpus: Option<String>,
}

fn spawn(
    binary: &Path,
    args: &[String],
    env: &[(&str, String)],
    cpus: Option<&str>,
    log: &Path,
) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let mut cmd = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Proc(child))
}

pub async fn wait_http(url: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = reqwest::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{what} did not come up at {url}")
}

pub struct Mock {
    _proc: Proc,
    pub port: u16,
}

pub async fn mock(bin_dir: &Path, dir: &Path, name: &str, pin: &Pinning) -> anyhow::Result<Mock> {
    let port = free_port()?;
    let proc = spawn(
        &bin_dir.join("switchyard-mock"),
        &[
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--threads".into(),
            "1".into(),
        ],
        &[],
        pin.other_cpus.as_deref(),
        &dir.join(format!("{name}.log")),
    )?;
    wait_http(&format!("http://127.0.0.1:{port}/__mock/stats"), name).await?;
    Ok(Mock { _proc: proc, port })
}

impl Mock {
    /// Replaces the mock's script (`switchyard_loadtest::mock::Script` as JSON).
    pub async fn script(&self, script: &str) -> anyhow::Result<()> {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/__mock/script", self.port))
            .body(script.to_owned())
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "mock refused script {script}");
        Ok(())
    }
}

pub struct Nginx {
    _proc: Proc,
    pub port: u16,
    pid_file: PathBuf,
}

impl Nginx {
    /// The worker processes (children of the master), whose memory holds the connections.
    pub fn worker_pids(&self) -> Vec<u32> {
        let master = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
        let master = master.trim();
        std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// Debian's nginx with upstream keepalive, as a plain `proxy_pass`.
pub async fn nginx(
    dir: &Path,
    upstream: u16,
    workers: usize,
    pin: &Pinning,
) -> anyhow::Result<Nginx> {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .context("nginx is not installed (apt-get install nginx-light)")?;
    let port = free_port()?;
    let root = dir.join("nginx");
    std::fs::create_dir_all(&root)?;
    let conf = root.join("nginx.conf");
    let r = root.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\nuser root;\npid {r}/nginx.pid;\n\
             error_log {r}/error.log warn;\nworker_rlimit_nofile 20000;\nevents {{ worker_connections 20000; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n\
               fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n\
               client_max_body_size 32m;\n  client_body_buffer_size 1m;\n  keepalive_requests 1000000;\n\
               upstream mock {{ server 127.0.0.1:{upstream}; keepalive 256; keepalive_requests 1000000; }}\n\
               server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location / {{\n\
                   proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
                   proxy_buffering off;\n    }}\n  }}\n}}\n"
        ),
    )?;
    let proc = spawn(
        &binary,
        &[
            "-c".into(),
            conf.display().to_string(),
            "-p".into(),
            r.to_string(),
        ],
        &[],
        pin.proxy_cpus.as_deref(),
        &root.join("stdout.log"),
    )?;
    wait_http(&format!("http://127.0.0.1:{port}/__mock/stats"), "nginx").await?;
    Ok(Nginx {
        _proc: proc,
        port,
        pid_file: root.join("nginx.pid"),
    })
}

pub struct Switchyard {
    _cp: Proc,
    dp: Proc,
    _redis: Option<Proc>,
    pub port: u16,
    pub inference_key: String,
    pub management_key: String,
    pub cp_http: u16,
    /// The dataplane's flags, for another dataplane of the same deployment.
    dp_args: Vec<String>,
    bin_dir: PathBuf,
    dir: PathBuf,
}

impl Switchyard {
    pub fn dataplane_pid(&self) -> u32 {
        self.dp.0.id()
    }

    /// Runs `sql` on the control plane's SQLite store with the `sqlite3` shell, beside the
    /// running control plane (WAL; waits up to 60 s for its lock); returns what it printed.
    pub fn store_sql(&self, sql: &str) -> anyhow::Result<String> {
        let db = self.dir.join("switchyard/controlplane/switchyard.db");
        let out = std::process::Command::new("sqlite3")
            .args(["-cmd", ".timeout 60000"])
            .arg(&db)
            .arg(sql)
            .output()
            .map_err(|e| anyhow::anyhow!("sqlite3 (apt-get install sqlite3): {e}"))?;
        anyhow::ensure!(
            out.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Another dataplane of this deployment (same control plane and spend store) on its own
    /// port, with `extra` flags, pinned like the first.
    pub async fn extra_dataplane(
        &self,
        id: &str,
        extra: &[&str],
        pin: &Pinning,
    ) -> anyhow::Result<(Proc, u16)> {
        self.extra_dataplane_without(id, &[], extra, pin).await
    }

    /// `extra_dataplane` without the first dataplane's flags named in `drop` (each with its
    /// value), e.g. to keep counters in process instead of Redis.
    pub async fn extra_dataplane_without(
        &self,
        id: &str,
        drop: &[&str],
        extra: &[&str],
        pin: &Pinning,
    ) -> anyhow::Result<(Proc, u16)> {
        self.extra_dataplane_from(&self.bin_dir, id, drop, extra, pin)
            .await
    }

    /// `extra_dataplane_without` with the dataplane binary in `bin_dir` (another build).
    pub async fn extra_dataplane_from(
        &self,
        bin_dir: &Path,
        id: &str,
        drop: &[&str],
        extra: &[&str],
        pin: &Pinning,
    ) -> anyhow::Result<(Proc, u16)> {
        let port = free_port()?;
        let mut args = Vec::with_capacity(self.dp_args.len());
        let mut flags = self.dp_args.iter();
        while let Some(flag) = flags.next() {
            if drop.contains(&flag.as_str()) {
                flags.next();
            } else {
                args.push(flag.clone());
            }
        }
        if let Some(i) = args.iter().position(|a| a == "--listen") {
            args[i + 1] = format!("127.0.0.1:{port}");
        }
        args.extend(["--dataplane-id".into(), id.into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = spawn(
            &bin_dir.join("switchyard-dataplane"),
            &args,
            &[("RUST_LOG", "warn".into())],
            pin.proxy_cpus.as_deref(),
            &self.dir.join(format!("{id}.log")),
        )?;
        wait_http(&format!("http://127.0.0.1:{port}/health/ready"), id).await?;
        Ok((proc, port))
    }
}

/// The full pipeline: control plane (SQLite), dataplane with authentication, metering and usage
/// events to the control plane.
/// Where Switchyard keeps its spend counters in the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpendStore {
    /// A redis-server of the bench's own, on the proxy's core: its cost is Switchyard's.
    Redis,
    /// The dataplane's in-process counters.
    Embedded,
}

/// Mock A (`mock_port`) serves `mock/fast` first; Mock B (`mock_b_port`) is its second provider.
pub async fn switchyard(
    bin_dir: &Path,
    dir: &Path,
    (mock_port, mock_b_port): (u16, u16),
    threads: usize,
    pin: &Pinning,
    spend: SpendStore,
) -> anyhow::Result<Switchyard> {
    let (cp_http, cp_grpc, port) = (free_port()?, free_port()?, free_port()?);
    let cp_admin = free_port()?;
    let data = dir.join("switchyard");
    let mock_url = format!("http://127.0.0.1:{mock_port}/v1");
    let mock_b_url = format!("http://127.0.0.1:{mock_b_port}/v1");
    let cp = spawn(
        &bin_dir.join("switchyard-controlplane"),
        &[
            "--data-dir".into(),
            data.display().to_string(),
            "--http-listen".into(),
            format!("127.0.0.1:{cp_http}"),
            "--grpc-listen".into(),
            format!("127.0.0.1:{cp_grpc}"),
            "--admin-listen".into(),
            format!("127.0.0.1:{cp_admin}"),
        ],
        &[
            ("SWITCHYARD_MOCK_URL", mock_url),
            ("SWITCHYARD_MOCK_URL_B", mock_b_url),
            ("RUST_LOG", "warn".into()),
        ],
        pin.other_cpus.as_deref(),
        &dir.join("controlplane.log"),
    )?;
    wait_http(
        &format!("http://127.0.0.1:{cp_http}/health"),
        "control plane",
    )
    .await?;
    let mut dp_args: Vec<String> = vec![
        "--data-dir".into(),
        data.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--control-plane".into(),
        format!("http://127.0.0.1:{cp_grpc}"),
        "--control-plane-http".into(),
        format!("http://127.0.0.1:{cp_http}"),
        "--threads".into(),
        threads.to_string(),
        "--grace-period-secs".into(),
        "0".into(),
    ];
    let redis = match spend {
        SpendStore::Embedded => None,
        SpendStore::Redis => {
            let redis_port = free_port()?;
            let proc = spawn(
                Path::new("redis-server"),
                &[
                    "--port".into(),
                    redis_port.to_string(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                ],
                &[],
                pin.proxy_cpus.as_deref(),
                &dir.join("redis.log"),
            )?;
            wait_tcp(redis_port, "redis-server").await?;
            dp_args.extend([
                "--spend-backend".into(),
                "redis".into(),
                "--redis-url".into(),
                format!("redis://127.0.0.1:{redis_port}"),
            ]);
            Some(proc)
        }
    };
    let dp = spawn(
        &bin_dir.join("switchyard-dataplane"),
        &dp_args,
        &[("RUST_LOG", "warn".into())],
        pin.proxy_cpus.as_deref(),
        &dir.join("dataplane.log"),
    )?;
    wait_http(
        &format!("http://127.0.0.1:{port}/health/ready"),
        "dataplane",
    )
    .await?;
    let credentials = std::fs::read_to_string(data.join("controlplane/credentials.env"))?;
    let value = |name: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    Ok(Switchyard {
        _cp: cp,
        dp,
        _redis: redis,
        port,
        inference_key: value("SWITCHYARD_INFERENCE_KEY="),
        management_key: value("SWITCHYARD_MANAGEMENT_KEY="),
        cp_http,
        dp_args,
        bin_dir: bin_dir.to_owned(),
        dir: dir.to_owned(),
    })
}

/// Waits until something accepts TCP connections on `port`.
async fn wait_tcp(port: u16, what: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{what} did not come up on port {port}")
}

/// LiteLLM's proxy (`litellm` from its own virtualenv, `make bench` installs it pinned) in front
/// of the same mock, one worker, pinned like the other proxies, no database (stateless).
pub struct LiteLlm {
    _proc: Proc,
    pub port: u16,
}

pub async fn litellm(
    binary: &Path,
    dir: &Path,
    mock_port: u16,
    pin: &Pinning,
) -> anyhow::Result<LiteLlm> {
    let port = free_port()?;
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: mock/fast\n    litellm_params:\n      model: openai/mock/fast\n      \
             api_base: http://127.0.0.1:{mock_port}/v1\n      api_key: sk-mock\n\
             litellm_settings:\n  drop_params: true\n  telemetry: false\n"
        ),
    )?;
    let proc = spawn(
        binary,
        &[
            "--config".into(),
            config.display().to_string(),
            "--port".into(),
            port.to_string(),
            "--host".into(),
            "127.0.0.1".into(),
            "--num_workers".into(),
            "1".into(),
        ],
        &[
            ("LITELLM_LOG", "ERROR".into()),
            ("LITELLM_TELEMETRY", "False".into()),
            ("NO_DOCS", "True".into()),
        ],
        pin.proxy_cpus.as_deref(),
        &dir.join("litellm.log"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let url = format!("http://127.0.0.1:{port}/health/liveliness");
    let client = reqwest::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = client.get(&url).send().await
            && r.status().is_success()
        {
            return Ok(LiteLlm { _proc: proc, port });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "LiteLLM did not come up at {url} (see {})",
        dir.join("litellm.log").display()
    )
}
