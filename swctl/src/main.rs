//! `swctl`: operate a Switchyard control plane over its operator gRPC API
//! (`switchyard.admin.v1`).
//!
//! ```sh
//! export SWITCHYARD_OPERATOR_TOKEN_FILE=~/.local/share/switchyard/controlplane/operator.token
//! swctl create org "Acme Research" --member-cap 25
//! swctl get orgs
//! swctl create guardrail "Team cap" --org "Acme Research" --limit-usd 50 --reset monthly
//! swctl assign guardrail gr_... --key <hash> --user alice@example.com
//! swctl diff -f deploy/switchyard.example.yaml    # exit 2: changes pending
//! swctl apply -f deploy/switchyard.example.yaml
//! swctl export --org "Acme Research" --group-by day --format pdf
//! ```

mod apply;
mod client;
mod commands;
mod output;
mod plan;
mod spec;
mod state;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::TokenSource;
use crate::commands::{
    Assign, Create, Delete, ExportArgs, GetArgs, Rotate, TransferArgs, Unassign,
};
use crate::output::Format;

#[derive(Debug, Parser)]
#[command(name = "swctl", version, about = "Operate a Switchyard control plane")]
struct Cli {
    /// The control plane's operator API.
    #[arg(
        long,
        env = "SWITCHYARD_ADMIN_URL",
        default_value = "http://127.0.0.1:50052",
        global = true
    )]
    server: String,

    /// The operator token. Prefer --token-file: a command line is visible to other users.
    #[arg(
        long,
        env = "SWITCHYARD_OPERATOR_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,

    /// File holding the operator token (the control plane generates
    /// `<data dir>/controlplane/operator.token`). Wins over SWITCHYARD_OPERATOR_TOKEN, not over
    /// a --token on the command line.
    #[arg(long, env = "SWITCHYARD_OPERATOR_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,

    /// CA certificate (PEM) to trust for an https:// server; the system's roots otherwise.
    #[arg(long, env = "SWITCHYARD_ADMIN_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    output: Format,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists objects.
    Get(GetArgs),
    /// Creates an object.
    #[command(subcommand)]
    Create(Create),
    /// Deletes an object.
    #[command(subcommand)]
    Delete(Delete),
    /// Rotates a key's secret.
    #[command(subcommand)]
    Rotate(Rotate),
    /// Moves credits from a user's personal account to an organization.
    Transfer(TransferArgs),
    /// Applies a guardrail to keys or members.
    #[command(subcommand)]
    Assign(Assign),
    /// Stops applying a guardrail to keys or members.
    #[command(subcommand)]
    Unassign(Unassign),
    /// Writes an organization's usage over whole UTC days as CSV or a PDF report.
    Export(ExportArgs),
    /// Makes the server match a declarative file (see deploy/switchyard.example.yaml).
    Apply(FileArgs),
    /// Prints what `apply` would change; exits 0 when nothing, 2 when something.
    Diff(FileArgs),
}

#[derive(Debug, Args)]
struct FileArgs {
    /// The declarative file (YAML).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Also delete what the file does not declare, within the organizations it declares.
    #[arg(long)]
    prune: bool,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // A --token typed on the command line beats a token file from the environment.
    let token_typed = matches.value_source("token") == Some(ValueSource::CommandLine);
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if token_typed {
        cli.token_file = None;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let token = match (&cli.token_file, &cli.token) {
        (Some(file), _) => Some(TokenSource::File(file.clone())),
        (None, Some(token)) => Some(TokenSource::Value(token.clone())),
        (None, None) => None,
    };
    let mut admin = client::connect(&cli.server, token.as_ref(), cli.ca_cert.as_ref()).await?;
    let format = cli.output;
    match cli.command {
        Command::Get(args) => commands::get(&mut admin, format, args).await?,
        Command::Create(what) => commands::create(&mut admin, format, what).await?,
        Command::Delete(what) => commands::delete(&mut admin, what).await?,
        Command::Rotate(what) => commands::rotate(&mut admin, format, what).await?,
        Command::Transfer(args) => commands::transfer(&mut admin, args).await?,
        Command::Assign(what) => commands::assign(&mut admin, what).await?,
        Command::Unassign(what) => commands::unassign(&mut admin, what).await?,
        Command::Export(args) => commands::export(&mut admin, args).await?,
        Command::Apply(f) => return apply::apply(&mut admin, &f.file, f.prune).await,
        Command::Diff(f) => return apply::diff(&mut admin, &f.file, f.prune).await,
    }
    Ok(0)
}

/// An error chain on one line, with gRPC statuses as `message (Code)` rather than tonic's
/// debug dump.
fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let part = match cause.downcast_ref::<tonic::Status>() {
            Some(s) => format!("{} ({:?})", s.message(), s.code()),
            None => cause.to_string(),
        };
        // Transport errors repeat their source in their own message; say it once.
        if !parts.last().is_some_and(|last| last.contains(&part)) {
            parts.push(part);
        }
    }
    parts.join(": ")
}
