//! `export`, `import`, `copy` and `migrate`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use datastore::transfer::{self, TransferStats};

use crate::progress;
use crate::{CliError, open_uncached};

/// `datastore export URL`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store to read.
    url: String,
    /// Where to write (standard output if not given or `-`).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// `datastore import URL FILE`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store to write.
    url: String,
    /// The JSON Lines file (`-` for standard input). Every line is checked
    /// before anything is written.
    file: PathBuf,
}

/// `datastore copy FROM TO`
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to read.
    from: String,
    /// The store to write.
    to: String,
}

/// `datastore migrate URL`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to open and migrate.
    url: String,
}

fn interrupted(stats: &TransferStats) -> ExitCode {
    eprintln!(
        "interrupted after {} items ({} written, {} already there); every finished batch is kept: run the same command again to resume",
        stats.read, stats.written, stats.skipped
    );
    ExitCode::from(130)
}

pub async fn export(config: Option<&PathBuf>, args: &ExportArgs) -> Result<ExitCode, CliError> {
    let source = open_uncached(config, &args.url).await?;
    let mut out: Box<dyn Write + Send> = match args.out.as_deref() {
        None => Box::new(BufWriter::new(std::io::stdout())),
        Some(p) if p.as_os_str() == "-" => Box::new(BufWriter::new(std::io::stdout())),
        Some(path) => Box::new(BufWriter::new(
            File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )),
    };
    let bar = progress::counter("exported");
    let stats = transfer::export(&*source, &mut *out, |s| bar.set_position(s.written)).await?;
    bar.finish_and_clear();
    eprintln!("exported {} items ({} bytes)", stats.written, stats.bytes);
    source.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn import(config: Option<&PathBuf>, args: &ImportArgs) -> Result<ExitCode, CliError> {
    let dest = open_uncached(config, &args.url).await?;
    let from_stdin = args.file.as_os_str() == "-";
    let bar;
    let work = if from_stdin {
        bar = progress::counter("imported");
        // Standard input can be read once: hold it, check every line, then write.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)?;
        transfer::validate(text.as_bytes())?;
        run_interruptible(transfer::import(&*dest, text.as_bytes(), |s| {
            bar.set_position(s.read)
        }))
        .await
    } else {
        let path = &args.file;
        let open = || File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()));
        // Check every line before writing anything.
        let items = transfer::validate(BufReader::new(open()?))?;
        let size = open()?.metadata().map(|m| m.len()).unwrap_or(0);
        bar = progress::bar("importing", size, true);
        bar.set_message(format!("{items} items"));
        run_interruptible(transfer::import(&*dest, BufReader::new(open()?), |s| {
            bar.set_position(s.bytes)
        }))
        .await
    };
    bar.finish_and_clear();
    let result = match work {
        Some(Ok(stats)) => {
            eprintln!(
                "imported {} items: {} written, {} already there",
                stats.read, stats.written, stats.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e.into()),
        None => Ok(interrupted(&TransferStats::default())),
    };
    dest.close().await?;
    result
}

pub async fn copy(config: Option<&PathBuf>, args: &CopyArgs) -> Result<ExitCode, CliError> {
    let source = open_uncached(config, &args.from).await?;
    let dest = open_uncached(config, &args.to).await?;
    let bar = progress::counter("copied");
    let mut last = TransferStats::default();
    let work = run_interruptible(transfer::copy(&*source, &*dest, |s| {
        last = *s;
        bar.set_position(s.read);
        bar.set_message(format!(
            "({} written, {} already there)",
            s.written, s.skipped
        ));
    }))
    .await;
    bar.finish_and_clear();
    let result = match work {
        Some(Ok(stats)) => {
            eprintln!(
                "copied {} items from {} to {}: {} written, {} already there",
                stats.read,
                datastore::redact_url(&args.from),
                datastore::redact_url(&args.to),
                stats.written,
                stats.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e.into()),
        None => Ok(interrupted(&last)),
    };
    source.close().await?;
    dest.close().await?;
    result
}

pub async fn migrate(config: Option<&PathBuf>, args: &MigrateArgs) -> Result<ExitCode, CliError> {
    let store = open_uncached(config, &args.url).await?;
    let caps = store.capabilities();
    let head = datastore::ChangeFeed::head(store.changes()).await?;
    println!(
        "{}: {} store, schema up to date, feed at {}",
        datastore::redact_url(&args.url),
        caps.backend,
        head
    );
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` until it ends or Ctrl-C (`None`).
async fn run_interruptible<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        _ = tokio::signal::ctrl_c() => None,
    }
}
