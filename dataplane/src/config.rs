//! Command-line and environment configuration of a dataplane process.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::spend::FailurePolicy;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "switchyard-dataplane",
    version,
    about = "Switchyard gateway dataplane"
)]
pub struct Config {
    /// Address the gateway listens on.
    #[arg(long, env = "SWITCHYARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Control plane gRPC endpoint (snapshots and usage).
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub control_plane: String,

    /// Token for the control plane's gRPC port. Defaults to the one a control plane sharing
    /// the data dir generated (`<data dir>/controlplane/dataplane.token`).
    #[arg(long, env = "SWITCHYARD_CONTROL_PLANE_TOKEN", hide_env_values = true)]
    pub control_plane_token: Option<String>,

    /// Bearer token for the operational endpoints (`/metrics`, `/health/providers`), which show
    /// traffic and provider figures to no one else. Without it they are not served.
    #[arg(long, env = "SWITCHYARD_OPS_TOKEN", hide_env_values = true)]
    pub ops_token: Option<String>,

    /// Origins whose pages may call the management API from a browser (comma-separated, or
    /// `*`); inference is open to every origin. None by default.
    #[arg(
        long,
        env = "SWITCHYARD_CORS_MANAGEMENT_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_management_origins: Vec<String>,

    /// Key sealing the persisted snapshot, which holds provider credentials (base64, 32 bytes).
    /// Without it or a key file, one is generated into the state directory.
    #[arg(long, env = "SWITCHYARD_SNAPSHOT_KEY", hide_env_values = true)]
    pub snapshot_key: Option<String>,

    /// A file holding the snapshot key (a mounted secret, say).
    #[arg(long, env = "SWITCHYARD_SNAPSHOT_KEY_FILE")]
    pub snapshot_key_file: Option<PathBuf>,

    /// PEM CA certificate that signed the control plane's gRPC certificate, for an `https://`
    /// `--control-plane` (the system's roots otherwise).
    #[arg(long, env = "SWITCHYARD_CONTROL_PLANE_CA")]
    pub control_plane_ca: Option<PathBuf>,

    /// PEM client certificate presented to the control plane (mutual TLS), with its key.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE_TLS_CERT",
        requires = "control_plane_tls_key"
    )]
    pub control_plane_tls_cert: Option<PathBuf>,

    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE_TLS_KEY",
        requires = "control_plane_tls_cert"
    )]
    pub control_plane_tls_key: Option<PathBuf>,

    /// Control plane REST API, to which `/api/v1/` management calls are passed.
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE_HTTP",
        default_value = "http://127.0.0.1:8081"
    )]
    pub control_plane_http: String,

    /// Where the last good snapshot and the usage spool are kept.
    /// Defaults to `$HOME/.local/share/switchyard`.
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Identity reported to the control plane; defaults to `dataplane-<listen port>`.
    #[arg(long, env = "SWITCHYARD_DATAPLANE_ID")]
    pub dataplane_id: Option<String>,

    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "SWITCHYARD_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest non-streamed provider response relayed.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Worker threads serving requests; defaults to the number of cores.
    #[arg(long, env = "SWITCHYARD_THREADS")]
    pub threads: Option<usize>,

    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SWITCHYARD_GRACE_PERIOD_SECS", default_value_t = 5)]
    pub grace_period_secs: u64,

    /// Take over the listening sockets of the dataplane running with the same state directory
    /// (a graceful upgrade): start this process, then, once `--upgrade-sock` exists and within
    /// five seconds, send the running one SIGQUIT. Needs `--spend-backend redis`, whose
    /// counters both processes share (README, "Upgrading a dataplane").
    #[arg(long)]
    pub upgrade: bool,

    /// Unix socket the running dataplane hands its listeners over on (default
    /// `<state dir>/upgrade.sock`).
    #[arg(long, env = "SWITCHYARD_UPGRADE_SOCK")]
    pub upgrade_sock: Option<PathBuf>,

    /// Longest a write to a client may wait, seconds: a client that stops reading is cut off
    /// after it, and its request settled (the provider bills it all the same).
    #[arg(
        long,
        env = "SWITCHYARD_CLIENT_WRITE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub client_write_timeout_secs: u64,

    /// Longest wait for a client's request body between reads, seconds.
    #[arg(
        long,
        env = "SWITCHYARD_CLIENT_READ_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub client_read_timeout_secs: u64,

    /// Longest a whole exchange may take, seconds, from the request to the last byte of the
    /// response (a stream included); past it the response ends with an error and is settled.
    #[arg(long, env = "SWITCHYARD_REQUEST_DEADLINE_SECS", default_value_t = 1800)]
    pub request_deadline_secs: u64,

    /// How often every provider host is looked up again, seconds (hosts with no address, or
    /// whose connection failed, are looked up within a second).
    #[arg(long, env = "SWITCHYARD_DNS_REFRESH_SECS", default_value_t = 30)]
    pub dns_refresh_secs: u64,

    /// PEM CA certificates trusted for `https://` providers besides the system's (a provider
    /// behind a private CA, a self-hosted model server).
    #[arg(long, env = "SWITCHYARD_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// Provider connect timeout, milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub connect_timeout_ms: u64,

    /// Longest wait for any single read from a provider, seconds (first token included).
    #[arg(long, default_value_t = 300)]
    pub read_timeout_secs: u64,

    /// Longest wait from sending a request to a provider to its response header, seconds; past
    /// it the next endpoint is tried.
    #[arg(
        long,
        env = "SWITCHYARD_FIRST_BYTE_TIMEOUT_SECS",
        default_value_t = 120
    )]
    pub first_byte_timeout_secs: u64,

    /// Retry budget: retries allowed per request (on top of the floor below).
    #[arg(long, env = "SWITCHYARD_RETRY_BUDGET_RATIO", default_value_t = 0.2)]
    pub retry_budget_ratio: f64,

    /// Retry budget floor: retries allowed per second whatever the request rate.
    #[arg(
        long,
        env = "SWITCHYARD_RETRY_BUDGET_MIN_PER_SEC",
        default_value_t = 10
    )]
    pub retry_budget_min_per_sec: u32,

    /// Also retry a request whose connection was lost after it was sent, before any answer
    /// (the provider may have started, and may bill, a generation).
    #[arg(long, env = "SWITCHYARD_RETRY_UNANSWERED")]
    pub retry_unanswered: bool,

    /// Route without consulting provider health (breakers and the fleet's view are still kept
    /// and reported), so that every request tries a failing endpoint first: for measuring the
    /// cost of a failover (`make bench`), never for production.
    #[arg(long, env = "SWITCHYARD_IGNORE_PROVIDER_HEALTH")]
    pub ignore_provider_health: bool,

    /// Consecutive failures that open an endpoint's circuit breaker.
    #[arg(long, env = "SWITCHYARD_BREAKER_FAILURES", default_value_t = 5)]
    pub breaker_failures: u32,

    /// First cool-down of an open breaker before a probe, milliseconds (doubling per failed
    /// probe, up to a minute).
    #[arg(long, env = "SWITCHYARD_BREAKER_COOLDOWN_MS", default_value_t = 5_000)]
    pub breaker_cooldown_ms: u64,

    /// How often provider health is reported to the control plane, milliseconds (failures are
    /// reported within 20 ms).
    #[arg(long, env = "SWITCHYARD_HEALTH_REPORT_MS", default_value_t = 1_000)]
    pub health_report_ms: u64,

    /// How long a session sticks to the endpoint that served it without coming back, seconds.
    #[arg(long, env = "SWITCHYARD_STICKY_IDLE_SECS", default_value_t = 300)]
    pub sticky_idle_secs: u64,

    /// Capacity of the queue between requests and the usage sender, in events.
    #[arg(long, default_value_t = 65_536)]
    pub usage_queue: usize,

    /// Largest usage spool file on disk, bytes.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub usage_spool_max_bytes: u64,

    /// Where spend counters live: in this process (`embedded`, single node) or in Redis
    /// (`redis`, shared by every dataplane).
    #[arg(
        long,
        env = "SWITCHYARD_SPEND_BACKEND",
        value_enum,
        default_value = "embedded"
    )]
    pub spend_backend: SpendBackendKind,

    /// Redis URL(s) for `--spend-backend redis`: one for standalone Redis, several seed nodes
    /// (comma-separated or repeated) for a Redis Cluster.
    #[arg(long, env = "SWITCHYARD_REDIS_URL", value_delimiter = ',')]
    pub redis_url: Vec<String>,

    /// What to do when Redis cannot be reached: refuse with 503 (`fail-closed`) or serve and
    /// count for reconciliation (`fail-open`).
    #[arg(
        long,
        env = "SWITCHYARD_SPEND_FAILURE_POLICY",
        value_enum,
        default_value = "fail-closed"
    )]
    pub spend_failure_policy: FailurePolicy,

    /// Longest wait for a spend-store answer, milliseconds.
    #[arg(long, env = "SWITCHYARD_SPEND_TIMEOUT_MS", default_value_t = 100)]
    pub spend_timeout_ms: u64,

    /// With Redis counters, reserve and settle from budget leases held in this process
    /// (`true`), touching Redis only to move budget in batches; `false` reserves per request.
    #[arg(
        long,
        env = "SWITCHYARD_SPEND_LEASES",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub spend_leases: bool,

    /// How often leases flush charges to Redis and are resized, milliseconds.
    #[arg(long, env = "SWITCHYARD_LEASE_TICK_MS", default_value_t = 50)]
    pub lease_tick_ms: u64,

    /// How long a lease is used here without being renewed, seconds. Redis keeps an unrenewed
    /// lease for the reservation hold period, so what was reserved or charged from it stays
    /// counted while its dataplane is away.
    #[arg(long, env = "SWITCHYARD_LEASE_TTL_SECS", default_value_t = 10)]
    pub lease_ttl_secs: u64,

    /// How long an unsettled reservation, or an unrenewed budget lease, holds budget (a crashed
    /// dataplane's reservations and leases free themselves after this), seconds. Longer than
    /// the slowest stream.
    #[arg(long, env = "SWITCHYARD_RESERVATION_HOLD_SECS", default_value_t = 900)]
    pub reservation_hold_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpendBackendKind {
    Embedded,
    Redis,
}

impl Config {
    pub fn dataplane_id(&self) -> String {
        self.dataplane_id.clone().unwrap_or_else(|| {
            let port = self.listen.rsplit(':').next().unwrap_or("0");
            format!("dataplane-{port}")
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/switchyard"))
                .unwrap_or_else(|| PathBuf::from(".switchyard"))
        })
    }

    /// This dataplane's own directory under the data dir, so several can share one.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join(self.dataplane_id())
    }

    pub fn upgrade_sock(&self) -> PathBuf {
        self.upgrade_sock
            .clone()
            .unwrap_or_else(|| self.state_dir().join("upgrade.sock"))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }

    pub fn health(&self) -> crate::health::HealthConfig {
        let cooldown = Duration::from_millis(self.breaker_cooldown_ms.max(1));
        crate::health::HealthConfig {
            breaker_failures: self.breaker_failures.max(1),
            breaker_cooldown: cooldown,
            breaker_max_cooldown: cooldown.max(Duration::from_secs(60)),
            report_every: Duration::from_millis(self.health_report_ms.max(10)),
            ..crate::health::HealthConfig::default()
        }
    }
}

#[cfg(test)]
mod command_line_tests {
    use super::*;
    use switchyard_policy::cli;

    #[test]
    fn help_never_shows_an_environment_value() {
        use clap::CommandFactory;
        let plain = Config::command();
        assert!(!cli::shown_env_values(&plain).is_empty());
        let command = cli::command::<Config>();
        assert_eq!(cli::shown_env_values(&command), Vec::<String>::new());
    }
}
