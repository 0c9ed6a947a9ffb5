//! `switchyard-controlplane`: store, management API, snapshot push and usage ingest.
//!
//! ```sh
//! switchyard-controlplane --data-dir /tmp/sy
//! curl -s http://127.0.0.1:8081/api/v1/models
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchyard_controlplane::admin::{self, AdminServer, OperatorToken, TlsFiles};
use switchyard_controlplane::api::{self, ApiState};
use switchyard_controlplane::catalogue::{Catalogue, DEV_CATALOGUE};
use switchyard_controlplane::config::Config;
use switchyard_controlplane::grpc::{ConfigApi, UsageApi};
use switchyard_controlplane::manage::Manage;
use switchyard_controlplane::publisher::Publisher;
use switchyard_controlplane::reconcile::Reconciler;
use switchyard_controlplane::seed;
use switchyard_controlplane::store::Store;
use switchyard_controlplane::token::{self, BearerToken};
use switchyard_controlplane::vault::Vault;
use switchyard_proto::config::v1::config_service_server::ConfigServiceServer;
use switchyard_proto::usage::v1::usage_service_server::UsageServiceServer;

/// Where a generated dataplane token is kept, under the state dir.
const DATAPLANE_TOKEN_FILE: &str = "dataplane.token";

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let config: Config = switchyard_policy::cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| Store::sqlite_url(&state_dir));
    let store = Store::open(&url).await.context("cannot open the store")?;

    let catalogue_text = match &config.catalogue {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read catalogue {}", path.display()))?,
        None => DEV_CATALOGUE.to_owned(),
    };
    let catalogue = Catalogue::parse(&catalogue_text).context("invalid catalogue")?;
    let env: HashMap<String, String> = std::env::vars().collect();
    store
        .replace_catalogue(&catalogue.rows(&env))
        .await
        .context("cannot load the catalogue")?;

    if let Some(seeded) = seed::seed_if_empty(&store).await? {
        let path = state_dir.join("credentials.env");
        seed::write_credentials(&path, &seeded)
            .with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(path = %path.display(), "first start: bootstrap keys written (shown once)");
    }

    // The catalogue may have changed with this start: what dataplanes serve must be renumbered.
    store
        .bump_config_version()
        .await
        .context("cannot number the configuration")?;
    let vault = Arc::new(load_vault(&config, &state_dir)?);
    let reconciles = !config.redis_url.is_empty();
    let publisher = Publisher::start_with(store.clone(), vault.clone(), reconciles).await?;
    // Publishes whatever committed and is not yet published: another replica's changes, a
    // build that failed, a writer that went away.
    tokio::spawn(publisher.clone().follow());
    tokio::spawn(
        publisher
            .health
            .clone()
            .refresh(Duration::from_millis(config.health_push_ms.max(10))),
    );
    if reconciles {
        let reconciler = Reconciler::new(
            store.clone(),
            publisher.clone(),
            config.redis_url.clone(),
            Duration::from_secs(config.reconcile_interval_secs.max(1)),
        );
        // Before any dataplane is served: the marks it will need are there from the start.
        match tokio::time::timeout(Duration::from_secs(10), reconciler.first_pass()).await {
            Ok(Ok(raised)) => tracing::info!(raised, "spend counters reconciled and marked"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "first reconciliation failed; retrying in the background")
            }
            Err(_) => tracing::warn!("first reconciliation timed out; retrying in the background"),
        }
        tokio::spawn(reconciler.run());
    }
    let manage = Manage::new(store.clone(), publisher.clone(), vault);
    // Re-wrap BYOK data keys under the current master key before serving, so a retired master
    // key is needed for one start only.
    let rewrapped = manage
        .rewrap_byok()
        .await
        .context("cannot re-wrap BYOK credentials")?;
    tracing::info!(
        rewrapped,
        "BYOK credentials re-wrapped under the current master key"
    );
    let operator_token = load_operator_token(&config, &state_dir)?;
    let admin_tls = match (&config.admin_tls_cert, &config.admin_tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let admin = AdminServer::new(
        manage.clone(),
        config.admin_listen,
        admin_tls.as_ref(),
        operator_token,
    )?;
    // A control plane without its operator API (a taken port, say) must not pass for a healthy
    // one: any listener failing stops the process.
    let admin = async move {
        admin
            .serve(shutdown_signal())
            .await
            .context("operator API failed")
    };
    // Snapshots carry provider credentials and usage events bill: only dataplanes holding the
    // dataplane token may watch or report.
    let dataplane_token = load_dataplane_token(&config, &state_dir)?;
    let mut grpc = tonic::transport::Server::builder();
    if let Some(tls) = grpc_tls(&config)? {
        grpc = grpc
            .tls_config(tls)
            .context("TLS on the dataplanes' gRPC port")?;
    }
    let grpc = grpc
        .add_service(ConfigServiceServer::with_interceptor(
            ConfigApi {
                publisher: publisher.clone(),
            },
            dataplane_token.clone(),
        ))
        .add_service(UsageServiceServer::with_interceptor(
            UsageApi::new(store.clone()),
            dataplane_token,
        ))
        .serve_with_shutdown(config.grpc_listen, shutdown_signal());
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    let app = api::router(ApiState { manage });
    tracing::info!(http = %config.http_listen, grpc = %config.grpc_listen, "control plane ready");
    let http = axum::serve(http, app).with_graceful_shutdown(shutdown_signal());
    tokio::try_join!(
        async { grpc.await.context("gRPC server failed") },
        async { http.await.context("HTTP server failed") },
        admin,
    )?;
    Ok(())
}

/// TLS (and, with a client CA, mutual TLS) for the dataplanes' gRPC port, if configured.
fn grpc_tls(config: &Config) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let (Some(cert), Some(key)) = (&config.grpc_tls_cert, &config.grpc_tls_key) else {
        return Ok(None);
    };
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &config.grpc_tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}

/// The BYOK vault: the configured master key, or one generated once under the state dir.
fn load_vault(config: &Config, state_dir: &Path) -> anyhow::Result<Vault> {
    let current = match (&config.master_key, &config.master_key_file) {
        (Some(key), _) => key.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read master key {}", path.display()))?,
        (None, None) => {
            let path = state_dir.join("master.key");
            read_or_create_secret(&path, Vault::generate_master_key)?
        }
    };
    let retired = config
        .retired_master_key_files
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read retired master key {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Vault::new(&current, &retired).context("invalid master key")
}

/// The operator API's token: the configured one, or one generated once under the state dir.
/// Only the file's path is logged, never the token.
fn load_operator_token(config: &Config, state_dir: &Path) -> anyhow::Result<OperatorToken> {
    let token = match &config.operator_token {
        Some(token) => token.clone(),
        None => {
            let path = state_dir.join("operator.token");
            let token = read_or_create_secret(&path, admin::generate_token)?;
            tracing::info!(path = %path.display(), "operator token (for swctl --token-file)");
            token
        }
    };
    OperatorToken::new("operator token", &token)
}

/// The token dataplanes present on the config and usage services: the configured one, or one
/// generated once at `<state dir>/dataplane.token`, where a dataplane sharing the data dir finds
/// it.
fn load_dataplane_token(config: &Config, state_dir: &Path) -> anyhow::Result<BearerToken> {
    let token = match &config.dataplane_token {
        Some(token) => token.clone(),
        None => read_or_create_secret(&state_dir.join(DATAPLANE_TOKEN_FILE), || {
            token::generate("sy-dataplane")
        })?,
    };
    BearerToken::new("dataplane token", &token)
}

/// Reads a secret file, or creates it (mode 0600) with a generated value.
fn read_or_create_secret(path: &Path, generate: fn() -> String) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().to_owned());
    }
    let value = generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{value}")?;
    tracing::info!(path = %path.display(), "generated a new secret");
    Ok(value)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
