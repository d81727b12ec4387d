//! `export`, `import`, `copy` and `migrate`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use datastore::transfer::{self, TransferStats};

use crate::{Access, CliError, config_for, open_tool, progress, say, store_url};

/// `datastore export [URL]`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store to read (else DATASTORE_URL, else `url` in --config).
    url: Option<String>,
    /// Where to write (standard output if not given or `-`). A file is
    /// created readable by its owner only (mode 0600).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Write private keys in plaintext, opened with the configured sealing
    /// key. Without it they are written as stored: sealed where the store
    /// seals them, importable into a store with the same sealing key.
    #[arg(long)]
    decrypt_keys: bool,
}

/// `datastore import [URL] FILE`
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// `[URL] FILE`: the store to write (else DATASTORE_URL, else `url` in
    /// --config) and the JSON Lines file (`-` for standard input). Every
    /// line is checked, against the file and the store, before anything is
    /// written.
    #[arg(num_args = 1..=2, value_names = ["URL", "FILE"], required = true)]
    args: Vec<String>,
}

/// `datastore copy FROM TO`
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to read (opened read-only).
    from: String,
    /// The store to write (created if missing).
    to: String,
}

/// `datastore migrate [URL]`
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to migrate (else DATASTORE_URL, else `url` in --config).
    url: Option<String>,
    /// Show what is applied and what would be, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Go ahead in a database that holds tables of others.
    #[arg(long)]
    yes: bool,
}

fn interrupted(stats: &TransferStats) -> ExitCode {
    eprintln!(
        "interrupted after {} items ({} written, {} already there); every finished batch is kept: run the same command again to resume",
        stats.read, stats.written, stats.skipped
    );
    ExitCode::from(130)
}

/// Creates a file readable and writable by its owner only (`new_only`:
/// refusing one that exists).
pub(crate) fn private_file(path: &Path, new_only: bool) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if new_only {
        options.write(true).create_new(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on open; tighten it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

pub async fn export(config: Option<&PathBuf>, args: &ExportArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let source = if args.decrypt_keys {
        let mut c = config_for(config, &url)?;
        c.cache.enabled = false;
        c.read_only = true;
        if datastore::sealing_key(&c)?.is_none() {
            return Err("--decrypt-keys needs the sealing key the store was written with (sealing.key_file or sealing.key_env in --config)".into());
        }
        eprintln!(
            "warning: the export holds private keys in plaintext; keep it as safe as the sealing key"
        );
        datastore::open(&c).await?
    } else {
        open_tool(config, &url, Access::Read).await?
    };
    let mut out: Box<dyn Write + Send> = match args.out.as_deref() {
        None => Box::new(BufWriter::new(std::io::stdout())),
        Some(p) if p.as_os_str() == "-" => Box::new(BufWriter::new(std::io::stdout())),
        Some(path) => Box::new(BufWriter::new(
            private_file(path, false)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        )),
    };
    let bar = progress::bar("exported", transfer::count_items(&*source).await?, false);
    let stats = transfer::export(&*source, &mut *out, |s| bar.set_position(s.written)).await?;
    bar.finish_and_clear();
    eprintln!("exported {} items ({} bytes)", stats.written, stats.bytes);
    source.close().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn import(config: Option<&PathBuf>, args: &ImportArgs) -> Result<ExitCode, CliError> {
    let (url, file) = match args.args.as_slice() {
        [url, file] => (Some(url.as_str()), PathBuf::from(file)),
        [file] => (None, PathBuf::from(file)),
        _ => return Err("import takes [URL] FILE".into()),
    };
    let url = store_url(url, config.map(PathBuf::as_path), None)?;
    let dest = open_tool(config, &url, Access::Write).await?;
    let result = import_into(&*dest, &file, async |_| Ok(())).await;
    dest.close().await?;
    result
}

/// Checks `file` (`-`: standard input) against `dest`, then runs `before`
/// (nothing is written before it) and imports the file, with progress.
pub(crate) async fn import_into(
    dest: &dyn datastore::Datastore,
    file: &Path,
    before: impl AsyncFnOnce(&transfer::Checked) -> Result<(), CliError>,
) -> Result<ExitCode, CliError> {
    let from_stdin = file.as_os_str() == "-";
    // Standard input can be read once: hold it.
    let text = if from_stdin {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)?;
        Some(text)
    } else {
        None
    };
    let open = || -> Result<Box<dyn std::io::BufRead>, CliError> {
        Ok(match &text {
            Some(text) => Box::new(text.as_bytes()),
            None => Box::new(BufReader::new(
                File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?,
            )),
        })
    };
    let size = match &text {
        Some(text) => text.len() as u64,
        None => std::fs::metadata(file).map(|m| m.len()).unwrap_or(0),
    };
    // Every line, against the file and the store, before the first write.
    let bar = progress::bar("checking", size, true);
    let checked = transfer::check(dest, open()?, |bytes| bar.set_position(bytes)).await;
    bar.finish_and_clear();
    let checked = checked.map_err(|e| format!("nothing was written: {e}"))?;
    before(&checked).await?;
    let bar = progress::bar("importing", size, true);
    bar.set_message(format!(
        "{} items, {} already there",
        checked.items, checked.present
    ));
    let mut last = TransferStats::default();
    // The lines the check passed are compared with what it read, not
    // checked again.
    let work = run_interruptible(transfer::import_checked(dest, open()?, &checked, |s| {
        last = *s;
        bar.set_position(s.bytes)
    }))
    .await;
    bar.finish_and_clear();
    match work {
        Some(Ok(stats)) => {
            eprintln!(
                "imported {} items: {} written, {} already there",
                stats.read, stats.written, stats.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e.into()),
        None => Ok(interrupted(&last)),
    }
}

pub async fn copy(config: Option<&PathBuf>, args: &CopyArgs) -> Result<ExitCode, CliError> {
    let source = open_tool(config, &args.from, Access::Read).await?;
    let dest = open_tool(config, &args.to, Access::Write).await?;
    let result = copy_into(&*source, &*dest, &args.from, &args.to).await;
    source.close().await?;
    dest.close().await?;
    result
}

/// Copies every item of `source` into `dest`, with progress.
pub(crate) async fn copy_into(
    source: &dyn datastore::Datastore,
    dest: &dyn datastore::Datastore,
    from: &str,
    to: &str,
) -> Result<ExitCode, CliError> {
    let bar = progress::bar("copied", transfer::count_items(source).await?, false);
    let mut last = TransferStats::default();
    let work = run_interruptible(transfer::copy(source, dest, |s| {
        last = *s;
        bar.set_position(s.read);
        bar.set_message(format!(
            "({} written, {} already there)",
            s.written, s.skipped
        ));
    }))
    .await;
    bar.finish_and_clear();
    match work {
        Some(Ok(stats)) => {
            eprintln!(
                "copied {} items from {} to {}: {} written, {} already there",
                stats.read,
                datastore::redact_url(from),
                datastore::redact_url(to),
                stats.written,
                stats.skipped
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e.into()),
        None => Ok(interrupted(&last)),
    }
}

pub async fn migrate(config: Option<&PathBuf>, args: &MigrateArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let shown = datastore::redact_url(&url);
    let settings = config_for(config, &url)?;
    let report = datastore::schema_report(&settings).await?;
    say!("{shown}: {} store", report.backend);
    for step in &report.applied {
        say!("  applied   {step}");
    }
    for step in &report.pending {
        say!("  pending   {step}");
    }
    if report.pending.is_empty() {
        say!("schema up to date");
        return Ok(ExitCode::SUCCESS);
    }
    let shared = !report.ours && !report.other_tables.is_empty();
    if shared {
        say!(
            "the database holds {} tables of others ({}); migrating adds this project's tables (ds_*, datastore_migrations) beside them",
            report.other_tables.len(),
            report.other_tables.join(", ")
        );
    }
    if args.dry_run {
        say!("dry run: nothing applied");
        return Ok(ExitCode::SUCCESS);
    }
    if shared && !args.yes {
        return Err(format!(
            "{shown}: not migrating a database that holds tables of others without --yes"
        )
        .into());
    }
    let mut open = settings.clone();
    open.cache.enabled = false;
    open.migrate_on_open = true;
    let store = datastore::open(&open).await?;
    let head = store.changes().head().await?;
    store.close().await?;
    say!(
        "applied {} step(s); schema up to date, feed at {head}",
        report.pending.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` until it ends or Ctrl-C (`None`).
async fn run_interruptible<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        _ = tokio::signal::ctrl_c() => None,
    }
}
