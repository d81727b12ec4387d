//! `datastore backup URL DEST`: a consistent copy of a live store.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use crate::{Access, CliError, open_tool, say, store_url};

/// `datastore backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The store to copy (else DATASTORE_URL, else `url` in --config): a
    /// RocksDB folder or an SQLite file; export other stores instead.
    url: Option<String>,
    /// Where the copy goes (a new path: a folder for RocksDB, a file for
    /// SQLite); open it as `rocksdb://DEST` or `sqlite://DEST`.
    #[arg(long)]
    to: PathBuf,
}

/// Writes the copy and says which feed position it reflects.
pub async fn run(config: Option<&PathBuf>, args: &BackupArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    // A RocksDB checkpoint needs a writable handle (it flushes first); the
    // store must already be there, as for any command that only reads.
    let access = match url.strip_prefix("rocksdb://") {
        Some(path) if !std::path::Path::new(path).join("CURRENT").exists() => {
            return Err(format!("{url}: no RocksDB store there").into());
        }
        Some(_) => Access::Write,
        None => Access::Read,
    };
    let ds = open_tool(config, &url, access).await?;
    let started = Instant::now();
    let at = ds
        .backup(&args.to)
        .await
        .map_err(|e| format!("backup of {url} to {}: {e}", args.to.display()))?;
    ds.close().await?;
    say!(
        "backed up {} to {} in {:.1?}: it holds every change through feed position {at}",
        datastore::redact_url(&url),
        args.to.display(),
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}
