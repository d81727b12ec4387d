//! The `datastore` program: a demo of the whole workspace, and the tools to
//! move, follow and check stores. `datastore --help` lists the commands.

/// The program's allocator. With glibc's, memory a thread frees that
/// another thread allocated (an import's lines, parsed on one thread and
/// checked or written on others; a commit's records, built on a runtime
/// thread and freed by the store's writer thread) took the allocating
/// arena's lock, and freeing alone was a fifth of an import's main thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod backup;
mod check;
mod demo;
mod history;
mod progress;
mod serve;
mod tail;
mod token;
mod transfer;
mod watch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use datastore::{Config, Datastore, OpenError};

/// A typed datastore: demo, import/export, copy between backends, follow the
/// change feed, check a store against the conformance suite, serve it over HTTP.
///
/// Store URLs: memory://, rocksdb://PATH, sqlite://PATH, postgres://USER@HOST/DB.
/// Every command takes its store as its first argument; without one, from
/// DATASTORE_URL, then from `url` in the --config file.
#[derive(Debug, Parser)]
#[command(name = "datastore", version)]
struct Cli {
    /// A TOML configuration file (see docs/configuration.md); environment
    /// variables override it.
    #[arg(long, global = true, env = "DATASTORE_CONFIG")]
    config: Option<PathBuf>,
    /// What to log, to stderr: a tracing filter such as `info` or
    /// `datastore=debug` (default: RUST_LOG if set, else `warn`).
    #[arg(long, global = true, env = "DATASTORE_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seed a store, run simulated workflows, and show a client state tree
    /// following them live (the main job; embedded RocksDB by default).
    Demo(demo::DemoArgs),
    /// Write every record of a store as JSON Lines (reads only; private
    /// keys stay sealed unless --decrypt-keys).
    Export(transfer::ExportArgs),
    /// Read JSON Lines into a store (checks every line against the file and
    /// the store first; resumable).
    Import(transfer::ImportArgs),
    /// Copy every record from one store into another (resumable).
    Copy(transfer::CopyArgs),
    /// Apply pending schema migrations, or show them (--dry-run).
    Migrate(transfer::MigrateArgs),
    /// Print the change feed from a cursor, and optionally follow it (reads only).
    Tail(tail::TailArgs),
    /// Follow one workflow's runs live through the client state tree, on
    /// any store (`http://` included), redrawing the terminal (reads only).
    Watch(watch::WatchArgs),
    /// Run the conformance suite against fresh stores beside a live one, or
    /// (--data) check a store's or backup's own data.
    Check(check::CheckArgs),
    /// Serve the HTTP API (JSON, ETags, server-sent events) over a store.
    Serve(serve::ServeArgs),
    /// Write a consistent copy of a live store: a RocksDB checkpoint, an
    /// SQLite file, or a JSON Lines snapshot (PostgreSQL, SQLite).
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty store, whose feed then continues after
    /// the backup's position.
    Restore(backup::RestoreArgs),
    /// Create, list and revoke the access tokens `serve` accepts (each acts
    /// as one profile with a scope; only its hash is kept).
    Token(token::TokenArgs),
    /// Print a record's versions, newest first, as JSON Lines: revision,
    /// time, actor, operation and body (reads only).
    History(history::HistoryArgs),
}

/// What a command failed with, printed as `error: ...` with its causes.
type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Writes a line to standard output, returning the error (a closed pipe
/// included) instead of panicking as `println!` does.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// How a command uses its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Reads only: the store must exist and be current; nothing is created,
    /// migrated or written.
    Read,
    /// Writes: the store is created and migrated as needed.
    Write,
}

/// The store URL: the command's argument, else DATASTORE_URL, else `url` in
/// the configuration file, else `default`.
fn store_url(
    arg: Option<&str>,
    cli_config: Option<&Path>,
    default: Option<&str>,
) -> Result<String, CliError> {
    if let Some(url) = arg {
        return Ok(url.to_string());
    }
    if let Ok(url) = std::env::var("DATASTORE_URL")
        && !url.trim().is_empty()
    {
        return Ok(url);
    }
    if let Some(path) = cli_config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the configuration {}: {e}", path.display()))?;
        let value: toml::Table = text
            .parse()
            .map_err(|e| format!("configuration {}: {e}", path.display()))?;
        if let Some(url) = value.get("url").and_then(|v| v.as_str()) {
            return Ok(url.to_string());
        }
    }
    default.map(str::to_string).ok_or_else(|| {
        "no store given: pass its URL, set DATASTORE_URL, or put `url` in the --config file".into()
    })
}

/// The configuration for one store URL: the file and environment, with the
/// URL resolved.
fn config_for(cli_config: Option<&PathBuf>, url: &str) -> Result<Config, OpenError> {
    let mut config = Config::load(cli_config.map(PathBuf::as_path))?;
    config.url = url.to_string();
    Ok(config)
}

/// Opens `url` for a tool: without the cache (tools read each record once)
/// and without sealing (private keys move as stored: sealed stays sealed),
/// read-only for `Access::Read`.
async fn open_tool(
    cli_config: Option<&PathBuf>,
    url: &str,
    access: Access,
) -> Result<Arc<dyn Datastore>, CliError> {
    let mut config = config_for(cli_config, url)?;
    config.cache.enabled = false;
    config.read_only = access == Access::Read;
    if access == Access::Read {
        config.sealing = datastore::SealingConfig::default();
    }
    datastore::open(&config)
        .await
        .map_err(|e| opened(url, access, e))
}

/// Names the URL and what was asked when a store does not open.
fn opened(url: &str, access: Access, e: OpenError) -> CliError {
    let shown = datastore::redact_url(url);
    match (&e, access) {
        (OpenError::Store(datastore::Error::NotFound { .. }), Access::Read) => {
            format!("{shown}: no store there ({e}); commands that only read never create one")
                .into()
        }
        _ => Box::new(e),
    }
}

/// The tracing filter: --log / DATASTORE_LOG, else RUST_LOG, else `warn`.
/// An invalid one is an error, never silently `warn`.
fn log_filter(arg: Option<&str>) -> Result<tracing_subscriber::EnvFilter, String> {
    let (source, text) = match arg {
        Some(text) => ("--log", text.to_string()),
        None => match std::env::var("RUST_LOG") {
            Ok(text) if !text.trim().is_empty() => ("RUST_LOG", text),
            _ => ("default", "warn".to_string()),
        },
    };
    tracing_subscriber::EnvFilter::builder()
        .parse(&text)
        .map_err(|e| format!("{source}: {text:?} is not a log filter: {e}"))
}

/// True when the error (or a cause) is a write to a closed pipe, as when
/// the output goes to `head`.
fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cause = c.source();
    }
    false
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match log_filter(cli.log.as_deref()) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
            Command::Watch(args) => watch::run(config, args).await,
            Command::Check(args) => check::run(config, args).await,
            Command::Serve(args) => serve::run(config, args).await,
            Command::Backup(args) => backup::run(config, args).await,
            Command::Restore(args) => backup::restore(config, args).await,
            Command::Token(args) => token::run(config, args).await,
            Command::History(args) => history::run(config, args).await,
        }
    });
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): stop quietly.
        Err(e) if is_broken_pipe(&*e) => ExitCode::SUCCESS,
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
