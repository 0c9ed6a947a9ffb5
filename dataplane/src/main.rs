//! `switchyard-dataplane`: serves the gateway on Pingora.
//!
//! ```sh
//! switchyard-dataplane --listen 127.0.0.1:8080 --control-plane http://127.0.0.1:50051
//! curl -s http://127.0.0.1:8080/health/ready
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora_core::services::background::{BackgroundService, background_service};
use pingora_core::services::listening::Service;
use switchyard_dataplane::config::Config;
use switchyard_dataplane::config::SpendBackendKind;
use switchyard_dataplane::dns::Dns;
use switchyard_dataplane::health::{self, Health};
use switchyard_dataplane::http::cors::ManagementOrigins;
use switchyard_dataplane::http::{Gateway, Limits, OpsToken, Timeouts, upstream};
use switchyard_dataplane::link::{ControlPlaneAuth, LinkTls};
use switchyard_dataplane::now_ms;
use switchyard_dataplane::snapshot::seal::Seal;
use switchyard_dataplane::snapshot::watch::Watcher;
use switchyard_dataplane::snapshot::{SnapshotStore, Upstream};
use switchyard_dataplane::spend::{
    LeaseConfig, Leases, RedisSpend, Spend, SpendBackend, SpendMetrics, persist,
};
use switchyard_dataplane::stages::forward::RetryBudget;
use switchyard_dataplane::sticky::Sticky;
use switchyard_dataplane::usage::{SenderConfig, UsageSender, UsageSink};
use tokio::sync::Mutex;

// `--features system-allocator` leaves malloc to libc, so heap profilers that hook it
// (heaptrack, valgrind's massif) see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The embedded spend backend's counters, under the dataplane's state dir.
const SPEND_FILE: &str = "spend.json";

/// Bytes of L4 read buffer per client connection (Pingora defaults to 64 KiB).
const DOWNSTREAM_READ_BUFFER: usize = 4096;

/// mimalloc commits each arena it reserves up front, which held 20 KiB more resident memory per
/// open stream than the same heap under glibc (74 vs 54 KiB, 1,000 held SSE streams; the same
/// req/s either way, `switchyard-bench --scenario compare` side by side). mimalloc reads its
/// options once, from the environment, before `main`: so the process starts itself again with
/// the option set, unless the operator set it (or it cannot, and then runs as it is).
#[cfg(not(feature = "system-allocator"))]
fn commit_arenas_on_demand() {
    use std::os::unix::process::CommandExt;
    const OPTION: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(OPTION).is_some() {
        return;
    }
    if let Ok(exe) = std::env::current_exe() {
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(OPTION, "0")
            .exec();
        eprintln!("running with {OPTION} unset: could not restart with it: {error}");
    }
}

fn main() -> ExitCode {
    #[cfg(not(feature = "system-allocator"))]
    commit_arenas_on_demand();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn".into()),
        )
        .init();
    let config: Config = switchyard_policy::cli::parse();
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    if config.upgrade && matches!(config.spend_backend, SpendBackendKind::Embedded) {
        // Both processes serve during the hand-over; counters in each would admit twice.
        anyhow::bail!(
            "--upgrade needs counters both processes share: run with --spend-backend redis \
             (the embedded counters belong to one process; restart it instead)"
        );
    }
    let dataplane_id = config.dataplane_id();
    let state_dir = config.state_dir();
    let dns = Arc::new(Dns::system());
    let seal = Seal::from_config(
        config.snapshot_key.as_deref(),
        config.snapshot_key_file.as_deref(),
        &state_dir,
    )?;
    let snapshots = Arc::new(SnapshotStore::new(
        Some(state_dir.join("snapshot.pb")),
        dns.clone(),
        seal,
    ));
    match snapshots.restore() {
        Ok(Some(version)) => tracing::info!(
            version,
            "serving the persisted snapshot until the control plane answers"
        ),
        Ok(None) => {
            tracing::info!("no persisted snapshot; not ready until the control plane answers")
        }
        Err(e) => tracing::warn!(error = %e, "ignoring the persisted snapshot"),
    }

    let control_plane_http = match Upstream::parse(&config.control_plane_http, &|host, port| {
        dns.resolve(host, port)
    }) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(error = %e, "management passthrough disabled");
            None
        }
    };

    let auth = ControlPlaneAuth::resolve(config.control_plane_token.as_deref(), &config.data_dir())
        .and_then(|auth| {
            auth.with_tls(&LinkTls {
                ca: config.control_plane_ca.clone(),
                cert: config.control_plane_tls_cert.clone(),
                key: config.control_plane_tls_key.clone(),
            })
        })
        .map_err(anyhow::Error::msg)?;
    if !auth.is_set() {
        tracing::warn!(
            "no control plane token (--control-plane-token); the control plane will refuse this dataplane"
        );
    }
    let (usage, usage_rx) = UsageSink::new(config.usage_queue, &dataplane_id);
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    let sender = UsageSender::new(
        SenderConfig {
            control_plane: config.control_plane.clone(),
            auth: auth.clone(),
            dataplane_id: dataplane_id.clone(),
            batch_size: 512,
            flush_interval: Duration::from_millis(50),
            spool_dir: state_dir.join("usage-spool"),
            spool_max_bytes: config.usage_spool_max_bytes,
            // A little inside the grace period, so the final spool write happens before pingora
            // shuts the background runtime down.
            drain_period: Duration::from_secs(config.grace_period_secs)
                .saturating_sub(Duration::from_millis(250)),
        },
        usage_rx,
        usage.counters.clone(),
    );
    let health = Arc::new(Health::new(config.health()));
    let watcher = Watcher {
        store: snapshots.clone(),
        control_plane: config.control_plane.clone(),
        auth: auth.clone(),
        dataplane_id: dataplane_id.clone(),
        health: health.clone(),
    };
    let reporter_auth = auth;

    let threads = config
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let server_conf = ServerConf {
        threads,
        grace_period_seconds: Some(config.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(2),
        upgrade_sock: config.upgrade_sock().display().to_string(),
        ..ServerConf::default()
    };
    if config.upgrade
        && let Some(dir) = config.upgrade_sock().parent()
    {
        std::fs::create_dir_all(dir)?;
    }
    let opt = Opt {
        upgrade: config.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    // With --upgrade, blocks until the running dataplane (sent SIGQUIT) hands its listening
    // sockets over: not one connection is refused in between.
    server.bootstrap();

    let spend = build_spend(&config, &dataplane_id)?;
    let spend_backend = spend.backend.clone();
    let leases = spend.leases.clone();
    let lease_usage = usage.clone();
    let upstream_client = Arc::new(upstream::Client::new(
        Timeouts {
            connect: config.connect_timeout(),
            read: config.read_timeout(),
            first_byte: Duration::from_secs(config.first_byte_timeout_secs.max(1)),
            // Shorter than providers' own keep-alive, so a pooled connection is rarely one they
            // have just closed.
            idle_pool: Duration::from_secs(30),
        },
        config.upstream_ca_file.as_deref(),
    )?);
    let gateway = Gateway {
        snapshots,
        usage,
        upstream: upstream_client.clone(),
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_response_bytes: config.max_response_bytes,
            client_write_timeout: Duration::from_secs(config.client_write_timeout_secs.max(1)),
            client_read_timeout: Duration::from_secs(config.client_read_timeout_secs.max(1)),
            request_deadline: Duration::from_secs(config.request_deadline_secs.max(1)),
        },
        control_plane_http,
        spend,
        health: health.clone(),
        sticky: Sticky::new(
            1_000_000,
            Duration::from_secs(config.sticky_idle_secs.max(1)),
        ),
        retry_budget: RetryBudget::new(config.retry_budget_ratio, config.retry_budget_min_per_sec),
        retry_unanswered: config.retry_unanswered,
        ignore_provider_health: config.ignore_provider_health,
        ops: OpsToken::new(config.ops_token.as_deref())?,
        cut: cut_rx,
        cors: ManagementOrigins::parse(&config.cors_management_origins),
    };
    let mut service = Service::new("switchyard gateway".into(), gateway);
    // Pingora's default 64 KiB read buffer per client connection would dominate the memory of a
    // held-open stream; header reads fit in 4 KiB and body reads bypass it with their own buffer.
    service.add_listener(
        ListenerConfig::tcp(config.listen.clone())
            .l4_buffer(L4BufferSettings::default().read(DOWNSTREAM_READ_BUFFER)),
    );
    server.add_service(service);
    server.add_service(background_service(
        "control plane link",
        ControlPlaneLink {
            parts: Mutex::new(Some((watcher, sender))),
            health: HealthReporter {
                health,
                control_plane: config.control_plane.clone(),
                auth: reporter_auth,
                dataplane_id: dataplane_id.clone(),
            },
            spend_backend,
            leases: leases.map(|l| (l, lease_usage)),
            spend_file: state_dir.join(SPEND_FILE),
            cut,
            dns,
            upstream: upstream_client,
            dns_refresh: Duration::from_secs(config.dns_refresh_secs.max(1)),
            drain: Duration::from_secs(config.grace_period_secs)
                .saturating_sub(Duration::from_millis(250)),
        },
    ));
    tracing::info!(listen = %config.listen, %dataplane_id, threads, "dataplane starting");
    server.run(RunArgs {
        shutdown_signal: Box::new(GracefulOnSignal),
    });
    tracing::info!("dataplane stopped");
    Ok(())
}

/// What the health reporter needs to reach the control plane.
struct HealthReporter {
    health: Arc<Health>,
    control_plane: String,
    auth: ControlPlaneAuth,
    dataplane_id: String,
}

/// Runs the snapshot watcher, the usage sender and the health reporter on the background
/// runtime.
struct ControlPlaneLink {
    /// Ends the exchanges still running a second before the usage sender's drain ends.
    cut: tokio::sync::watch::Sender<bool>,
    parts: Mutex<Option<(Watcher, UsageSender)>>,
    health: HealthReporter,
    spend_backend: SpendBackend,
    /// Budget leases and where their usage events go once their charges have landed.
    leases: Option<(Arc<Leases>, UsageSink)>,
    /// Where the embedded spend backend keeps its counters across restarts.
    spend_file: std::path::PathBuf,
    /// Provider addresses, looked up again in the background.
    dns: Arc<Dns>,
    /// Its idle connections, swept in the background.
    upstream: Arc<upstream::Client>,
    dns_refresh: Duration,
    /// How long requests may still settle after shutdown begins (the usage sender's drain).
    drain: Duration,
}

#[async_trait]
impl BackgroundService for ControlPlaneLink {
    async fn start(&self, shutdown: ShutdownWatch) {
        let cut = self.cut.clone();
        let cut_after = self.drain.saturating_sub(Duration::from_secs(1));
        let mut signalled = shutdown.clone();
        tokio::spawn(async move {
            if signalled.changed().await.is_ok() {
                tokio::time::sleep(cut_after).await;
                let _ = cut.send(true);
            }
        });
        let Some((watcher, sender)) = self.parts.lock().await.take() else {
            return;
        };
        let watch = tokio::spawn(watcher.run(shutdown.clone()));
        if let SpendBackend::Embedded(embedded) = &self.spend_backend {
            tokio::spawn(persist::run(
                embedded.clone(),
                self.spend_file.clone(),
                Duration::from_secs(1),
                self.drain,
                shutdown.clone(),
            ));
        }
        if let Some((leases, usage)) = &self.leases {
            tokio::spawn(
                leases
                    .clone()
                    .run(usage.clone(), now_ms, self.drain, shutdown.clone()),
            );
        }
        tokio::spawn(self.dns.clone().run(self.dns_refresh, shutdown.clone()));
        tokio::spawn(self.upstream.clone().run_sweeper(shutdown.clone()));
        let r = &self.health;
        tokio::spawn(health::report(
            r.health.clone(),
            r.control_plane.clone(),
            r.auth.clone(),
            r.dataplane_id.clone(),
            shutdown.clone(),
        ));
        // The sender drains and spools on shutdown; wait for it so no event is lost.
        sender.run(shutdown).await;
        let _ = watch.await;
    }
}

/// SIGINT and SIGTERM both drain gracefully within the configured grace period (pingora's
/// default would make SIGINT drop in-flight requests and usage events). SIGQUIT hands the
/// listening sockets to a dataplane started with `--upgrade`, then drains the same way.
struct GracefulOnSignal;

#[async_trait]
impl ShutdownSignalWatch for GracefulOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; shutting down");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; draining"),
            _ = int.recv() => tracing::info!("SIGINT received; draining"),
            _ = quit.recv() => {
                tracing::info!("SIGQUIT received; handing the listeners over, then draining");
                return ShutdownSignal::GracefulUpgrade;
            }
        }
        ShutdownSignal::GracefulTerminate
    }
}

/// The spend backend the configuration asks for. Redis connects on first use, so a dataplane
/// starts (and serves from its persisted snapshot) even while Redis is down.
fn build_spend(config: &Config, dataplane_id: &str) -> anyhow::Result<Spend> {
    let timeout = Duration::from_millis(config.spend_timeout_ms);
    let backend = match config.spend_backend {
        SpendBackendKind::Embedded => SpendBackend::Embedded(Arc::new(persist::load(
            &config.state_dir().join(SPEND_FILE),
            now_ms(),
        )?)),
        SpendBackendKind::Redis => SpendBackend::Redis(Arc::new(
            RedisSpend::new(&config.redis_url, timeout)
                .map_err(|e| anyhow::anyhow!("--redis-url: {e}"))?,
        )),
    };
    let metrics = Arc::new(SpendMetrics::default());
    let leases = match &backend {
        SpendBackend::Redis(redis) if config.spend_leases => Some(Arc::new(Leases::new(
            redis.clone(),
            dataplane_id,
            LeaseConfig {
                ttl: Duration::from_secs(config.lease_ttl_secs.max(1)),
                tick: Duration::from_millis(config.lease_tick_ms.max(1)),
                hold: Duration::from_secs(config.reservation_hold_secs),
                ..LeaseConfig::default()
            },
            metrics.clone(),
            now_ms(),
        ))),
        _ => None,
    };
    tracing::info!(
        backend = ?config.spend_backend,
        leases = leases.is_some(),
        policy = ?config.spend_failure_policy,
        "spend counters"
    );
    Ok(Spend {
        quotas: Arc::default(),
        leases,
        backend,
        policy: config.spend_failure_policy,
        metrics,
        hold_ms: config.reservation_hold_secs.saturating_mul(1000),
    })
}
