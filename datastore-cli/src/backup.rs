//! `datastore backup URL --to DEST` and `datastore restore BACKUP [URL]`.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use datastore::FeedCursor;
use datastore::transfer::{self, TransferError};

use crate::transfer::{copy_into, import_into, private_file};
use crate::{Access, CliError, open_tool, progress, say, store_url};

/// `datastore backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The store to copy (else DATASTORE_URL, else `url` in --config).
    url: Option<String>,
    /// Where the copy goes (a new path). `FILE.jsonl`: a JSON Lines backup
    /// read from one snapshot (PostgreSQL, SQLite); otherwise a RocksDB
    /// checkpoint folder or an SQLite database file, opened as
    /// `rocksdb://DEST` or `sqlite://DEST`.
    #[arg(long)]
    to: PathBuf,
}

/// `datastore restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a JSON Lines file `backup` wrote, or the store a file
    /// backup made (`rocksdb://DIR`, `sqlite://FILE`, or the bare path).
    backup: String,
    /// The store to restore into (else DATASTORE_URL, else `url` in
    /// --config); created if missing. It must be empty unless
    /// --allow-non-empty.
    url: Option<String>,
    /// Write into a store that already holds records: identical ones are
    /// skipped, different ones refused (how an interrupted restore resumes).
    #[arg(long)]
    allow_non_empty: bool,
}

/// True when `to` names a JSON Lines backup.
fn is_lines(to: &Path) -> bool {
    to.extension().is_some_and(|e| e == "jsonl")
}

/// Writes the copy and says which feed position it reflects.
pub async fn run(config: Option<&PathBuf>, args: &BackupArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let shown = datastore::redact_url(&url);
    let lines = is_lines(&args.to);
    if url.starts_with("postgres") && !lines {
        return Err(format!(
            "{shown}: a PostgreSQL backup is a JSON Lines snapshot: give --to FILE.jsonl"
        )
        .into());
    }
    // A RocksDB checkpoint needs a writable handle (it flushes first); the
    // store must already be there, as for any command that only reads.
    let access = match url.strip_prefix("rocksdb://") {
        Some(path) if !Path::new(path).join("CURRENT").exists() => {
            return Err(format!("{url}: no RocksDB store there").into());
        }
        Some(_) if !lines => Access::Write,
        _ => Access::Read,
    };
    let ds = open_tool(config, &url, access).await?;
    let started = Instant::now();
    let at = if lines {
        let file = private_file(&args.to, true)
            .map_err(|e| format!("cannot create {}: {e}", args.to.display()))?;
        let mut out = BufWriter::new(file);
        let bar = progress::bar("backed up", transfer::count_items(&*ds).await?, false);
        let written =
            transfer::export_snapshot(&*ds, &mut out, |s| bar.set_position(s.written)).await;
        bar.finish_and_clear();
        match written {
            Ok((header, stats)) => {
                eprintln!("wrote {} items ({} bytes)", stats.written, stats.bytes);
                FeedCursor(header.feed_position)
            }
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&args.to);
                ds.close().await?;
                return Err(format!("backup of {shown} to {}: {e}", args.to.display()).into());
            }
        }
    } else {
        ds.backup(&args.to)
            .await
            .map_err(|e| format!("backup of {shown} to {}: {e}", args.to.display()))?
    };
    ds.close().await?;
    say!(
        "backed up {shown} to {} in {:.1?}: it holds every change through feed position {at}",
        args.to.display(),
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where a restore reads from.
enum Source {
    /// A JSON Lines backup.
    Lines(PathBuf),
    /// A store (a file backup).
    Store(String),
}

fn source_of(backup: &str) -> Source {
    if backup.contains("://") {
        return Source::Store(backup.to_string());
    }
    let path = Path::new(backup);
    if path.join("CURRENT").exists() {
        return Source::Store(format!("rocksdb://{backup}"));
    }
    let mut magic = [0u8; 16];
    let is_sqlite = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"SQLite format 3\0";
    if is_sqlite {
        Source::Store(format!("sqlite://{backup}"))
    } else {
        Source::Lines(path.to_path_buf())
    }
}

/// Restores a backup into an empty store whose feed continues after the
/// backup's position.
pub async fn restore(config: Option<&PathBuf>, args: &RestoreArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let shown = datastore::redact_url(&url);
    let source = source_of(&args.backup);
    // The position first: a file that is no backup writes nothing.
    let (position, store) = match &source {
        Source::Lines(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let header = transfer::read_header(std::io::BufReader::new(file))?.ok_or_else(|| {
                format!(
                    "{}: not a backup (its first line names no feed position); import an export with `datastore import`",
                    path.display()
                )
            })?;
            (FeedCursor(header.feed_position), None)
        }
        Source::Store(from) => {
            let store = open_tool(config, from, Access::Read).await?;
            (store.changes().head().await?, Some(store))
        }
    };
    let dest = open_tool(config, &url, Access::Write).await?;
    let items = transfer::count_items(&*dest).await?;
    if items > 0 && !args.allow_non_empty {
        dest.close().await?;
        if let Some(store) = store {
            store.close().await?;
        }
        return Err(format!("{shown}: {}", TransferError::NotEmpty { items }).into());
    }
    let allow = args.allow_non_empty;
    let start = async |dest: &dyn datastore::Datastore| -> Result<(), CliError> {
        transfer::start_restore(dest, position, allow).await?;
        Ok(())
    };
    let done = match (&source, &store) {
        (Source::Lines(path), _) => import_into(&*dest, path, async |_| start(&*dest).await).await,
        (Source::Store(from), Some(store)) => match start(&*dest).await {
            Ok(()) => copy_into(&**store, &*dest, from, &url).await,
            Err(e) => Err(e),
        },
        (Source::Store(_), None) => unreachable!("a store source is opened above"),
    };
    let head = dest.changes().head().await;
    dest.close().await?;
    if let Some(store) = store {
        store.close().await?;
    }
    let code = done?;
    if code == ExitCode::SUCCESS {
        say!(
            "restored {} into {shown}: its feed continues after position {position} (a subscriber with an older cursor gets CursorExpired and reloads; the restored records are the changes after it, through {})",
            args.backup,
            head?
        );
    }
    Ok(code)
}
