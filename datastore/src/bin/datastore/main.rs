//! The `datastore` program: a demo of the whole workspace, and the tools to
//! move, follow and check stores. `datastore --help` lists the commands.

mod check;
mod demo;
mod progress;
mod serve;
mod tail;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use datastore::{Config, Datastore, OpenError};

/// A typed datastore: demo, import/export, copy between backends, follow the
/// change feed, check a store against the conformance suite, serve it over HTTP.
///
/// Store URLs: memory://, rocksdb://PATH, sqlite://PATH, postgres://USER@HOST/DB.
#[derive(Debug, Parser)]
#[command(name = "datastore", version)]
struct Cli {
    /// A TOML configuration file (see docs/configuration.md); environment
    /// variables override it.
    #[arg(long, global = true, env = "DATASTORE_CONFIG")]
    config: Option<PathBuf>,
    /// What to log (a tracing filter such as `info` or `datastore=debug`), to stderr.
    #[arg(long, global = true, env = "DATASTORE_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seed a store, run simulated workflows, and show a client state tree
    /// following them live (the main job; embedded RocksDB by default).
    Demo(demo::DemoArgs),
    /// Write every record of a store as JSON Lines.
    Export(transfer::ExportArgs),
    /// Read JSON Lines into a store (checks every line first; resumable).
    Import(transfer::ImportArgs),
    /// Copy every record from one store into another (resumable).
    Copy(transfer::CopyArgs),
    /// Open a store, applying any pending schema migrations, and report it.
    Migrate(transfer::MigrateArgs),
    /// Print the change feed from a cursor, and optionally follow it.
    Tail(tail::TailArgs),
    /// Run the conformance suite against fresh stores beside a live one.
    Check(check::CheckArgs),
    /// Serve the HTTP API (JSON, ETags, server-sent events) over a store.
    Serve(serve::ServeArgs),
}

/// What a command failed with, printed as `error: ...` with its causes.
type CliError = Box<dyn std::error::Error + Send + Sync>;

/// The configuration for one store URL: the file and environment, with the
/// URL given on the command line.
fn config_for(cli_config: Option<&PathBuf>, url: &str) -> Result<Config, OpenError> {
    let mut config = Config::load(cli_config.map(PathBuf::as_path))?;
    config.url = url.to_string();
    Ok(config)
}

/// Opens `url` without the cache: the tools read each record once.
async fn open_uncached(
    cli_config: Option<&PathBuf>,
    url: &str,
) -> Result<Arc<dyn Datastore>, OpenError> {
    let mut config = config_for(cli_config, url)?;
    config.cache.enabled = false;
    datastore::open(&config).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = cli.config.as_ref();
    let result: Result<ExitCode, CliError> = runtime.block_on(async {
        match &cli.command {
            Command::Demo(args) => demo::run(config, args).await,
            Command::Export(args) => transfer::export(config, args).await,
            Command::Import(args) => transfer::import(config, args).await,
            Command::Copy(args) => transfer::copy(config, args).await,
            Command::Migrate(args) => transfer::migrate(config, args).await,
            Command::Tail(args) => tail::run(config, args).await,
            Command::Check(args) => check::run(config, args).await,
            Command::Serve(args) => serve::run(config, args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            let mut message = format!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(&format!("\n  caused by: {text}"));
                }
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
