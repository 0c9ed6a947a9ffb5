//! `switchyard-controlplane`: store, management API, snapshot push and usage ingest.
//!
//! ```sh
//! switchyard-controlplane --data-dir /tmp/sy
//! curl -s http://127.0.0.1:8081/api/v1/models
//! ```

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use switchyard_controlplane::api::{self, ApiState};
use switchyard_controlplane::catalogue::{Catalogue, DEV_CATALOGUE};
use switchyard_controlplane::config::Config;
use switchyard_controlplane::grpc::{ConfigApi, UsageApi};
use switchyard_controlplane::publisher::Publisher;
use switchyard_controlplane::seed;
use switchyard_controlplane::store::Store;
use switchyard_proto::config::v1::config_service_server::ConfigServiceServer;
use switchyard_proto::usage::v1::usage_service_server::UsageServiceServer;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let config = Config::parse();
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

    let publisher = Publisher::start(store.clone()).await?;
    tokio::spawn(publisher.clone().retry_unpublished());
    let grpc = tonic::transport::Server::builder()
        .add_service(ConfigServiceServer::new(ConfigApi {
            publisher: publisher.clone(),
        }))
        .add_service(UsageServiceServer::new(UsageApi {
            store: store.clone(),
        }))
        .serve_with_shutdown(config.grpc_listen, shutdown_signal());
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_listen))?;
    let app = api::router(ApiState { store, publisher });
    tracing::info!(http = %config.http_listen, grpc = %config.grpc_listen, "control plane ready");
    let http = axum::serve(http, app).with_graceful_shutdown(shutdown_signal());
    let (grpc, http) = tokio::join!(grpc, http);
    grpc.context("gRPC server failed")?;
    http.context("HTTP server failed")?;
    Ok(())
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
