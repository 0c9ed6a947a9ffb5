//! Command-line and environment configuration of the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "switchyard-controlplane",
    version,
    about = "Switchyard control plane"
)]
pub struct Config {
    /// Management REST API address.
    #[arg(long, env = "SWITCHYARD_HTTP_LISTEN", default_value = "127.0.0.1:8081")]
    pub http_listen: SocketAddr,

    /// gRPC address for dataplanes (snapshots and usage).
    #[arg(
        long,
        env = "SWITCHYARD_GRPC_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_listen: SocketAddr,

    /// Where the embedded database and bootstrap credentials live.
    /// Defaults to `$HOME/.local/share/switchyard`.
    #[arg(long, env = "SWITCHYARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL (`sqlite://…` or `postgres://…`); defaults to SQLite in the data dir.
    #[arg(long, env = "SWITCHYARD_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Model catalogue file; defaults to the built-in development catalogue (the mock provider).
    #[arg(long, env = "SWITCHYARD_CATALOGUE")]
    pub catalogue: Option<PathBuf>,

    /// BYOK master key (32 bytes, base64). Prefer `--master-key-file` in production.
    #[arg(long, env = "SWITCHYARD_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// File holding the BYOK master key. Without either option, a key is generated on first
    /// start at `<data dir>/controlplane/master.key` (mode 0600).
    #[arg(long, env = "SWITCHYARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Previous master keys (files), still able to unwrap until every record is re-wrapped
    /// under the current one, which happens at start.
    #[arg(
        long,
        env = "SWITCHYARD_RETIRED_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    pub retired_master_key_files: Vec<PathBuf>,

    /// Token the operator gRPC API (`switchyard.admin.v1`) requires. Without it, a token is
    /// generated on first start at `<data dir>/controlplane/operator.token` (mode 0600).
    #[arg(long, env = "SWITCHYARD_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// Token dataplanes must present on the gRPC port (snapshots and usage). Without it, a
    /// token is generated on first start at `<data dir>/controlplane/dataplane.token`
    /// (mode 0600); a dataplane with the same data dir reads it from there.
    #[arg(long, env = "SWITCHYARD_DATAPLANE_TOKEN", hide_env_values = true)]
    pub dataplane_token: Option<String>,

    /// The Redis (or Redis Cluster seed URLs, comma-separated) where dataplanes keep spend
    /// counters. When set, the control plane reconciles them with the usage ledger.
    #[arg(long, env = "SWITCHYARD_REDIS_URL", value_delimiter = ',')]
    pub redis_url: Vec<String>,

    /// Seconds between reconciliation passes.
    #[arg(long, env = "SWITCHYARD_RECONCILE_INTERVAL_SECS", default_value_t = 60)]
    pub reconcile_interval_secs: u64,

    /// Milliseconds between pushes of the fleet's provider health when no outage begins or ends
    /// (those are pushed at once).
    #[arg(long, env = "SWITCHYARD_HEALTH_PUSH_MS", default_value_t = 5_000)]
    pub health_push_ms: u64,

    /// Operator gRPC API address (`swctl`), apart from the dataplanes' port so that it can stay
    /// on loopback or behind its own firewall rule.
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub admin_listen: SocketAddr,

    /// PEM certificate chain for the dataplanes' gRPC port (snapshots carry provider
    /// credentials); with `--grpc-tls-key`, it serves TLS.
    #[arg(long, env = "SWITCHYARD_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,

    #[arg(long, env = "SWITCHYARD_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM CA whose client certificates dataplanes must present (mutual TLS) on the gRPC port.
    #[arg(
        long,
        env = "SWITCHYARD_GRPC_TLS_CLIENT_CA",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// PEM certificate chain for the operator API; with `--admin-tls-key`, it serves TLS.
    #[arg(long, env = "SWITCHYARD_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,

    /// PEM private key for the operator API's certificate.
    #[arg(long, env = "SWITCHYARD_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local/share/switchyard"))
                .unwrap_or_else(|| PathBuf::from(".switchyard"))
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join("controlplane")
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
