//! `check`: run the conformance suite against fresh stores beside a live one.
//!
//! Each case needs an empty store, so the live store's data is never
//! touched: RocksDB and SQLite cases run in temporary folders next to it (the
//! same disk), PostgreSQL cases in schemas of their own in the same database
//! (dropped afterwards), memory cases in fresh memory stores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use datastore::{Backend, Datastore};
use futures::FutureExt;

use crate::{CliError, config_for, progress, say, store_url};

/// `datastore check [URL]`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The store whose backend (and disk, or server) to check (else
    /// DATASTORE_URL, else `url` in --config). The store itself is not
    /// touched: cases run on fresh stores beside it.
    url: Option<String>,
    /// Only cases whose name contains this (e.g. `feed::`).
    #[arg(long)]
    filter: Option<String>,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// Check the store's own data instead (reads only): every record and
    /// log entry valid, revisions within the feed head, the retained feed
    /// in order and naming each record's revision, counts and logs whole.
    /// URL may also be a JSON Lines backup or export file.
    #[arg(long, conflicts_with_all = ["filter", "list"])]
    data: bool,
}

/// A fresh store for one case, and how to clean it up.
struct Scratch {
    ds: Arc<dyn Datastore>,
    dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Scratch {
    async fn open(
        config: &datastore::Config,
        backend: &Backend,
        n: usize,
    ) -> Result<Self, CliError> {
        let mut config = config.clone();
        config.cache.enabled = false;
        match backend {
            Backend::Memory => Ok(Scratch {
                ds: datastore::open(&config).await?,
                dir: None,
                pg_schema: None,
            }),
            Backend::Rocks { path, .. } => {
                let dir = scratch_dir(path)?;
                config.url = format!("rocksdb://{}", dir.path().join("db").display());
                Ok(Scratch {
                    ds: datastore::open(&config).await?,
                    dir: Some(dir),
                    pg_schema: None,
                })
            }
            Backend::Sqlite { url } => {
                let path = url.trim_start_matches("sqlite://");
                let path = path.split('?').next().unwrap_or(path);
                let dir = scratch_dir(Path::new(path))?;
                config.url = format!("sqlite://{}", dir.path().join("check.db").display());
                Ok(Scratch {
                    ds: datastore::open(&config).await?,
                    dir: Some(dir),
                    pg_schema: None,
                })
            }
            Backend::Postgres { url } => {
                let schema = format!("datastore_check_{}_{n}", std::process::id());
                datastore::sql::drop_schema(url, &schema).await?;
                datastore::sql::create_schema(url, &schema).await?;
                config.sql.schema = Some(schema.clone());
                config.sql.pool_size = config.sql.pool_size.min(4);
                let ds = match datastore::open(&config).await {
                    Ok(ds) => ds,
                    Err(e) => {
                        let _ = datastore::sql::drop_schema(url, &schema).await;
                        return Err(e.into());
                    }
                };
                Ok(Scratch {
                    ds,
                    dir: None,
                    pg_schema: Some((url.clone(), schema)),
                })
            }
            Backend::Remote { .. } => Err(
                "the conformance suite needs fresh stores; a remote server has one store (run check on the server's own store URL, or use --data)".into(),
            ),
        }
    }

    async fn remove(self) {
        let _ = self.ds.close().await;
        drop(self.ds);
        if let Some((url, schema)) = &self.pg_schema {
            let _ = datastore::sql::drop_schema(url, schema).await;
        }
        drop(self.dir);
    }
}

/// A temporary folder beside `path` (which may not exist yet).
fn scratch_dir(path: &Path) -> Result<tempfile::TempDir, CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(format!(
            "{} does not exist: check runs its cases in scratch folders beside the store",
            parent.display()
        )
        .into());
    }
    tempfile::Builder::new()
        .prefix(".datastore-check-")
        .tempdir_in(&parent)
        .map_err(|e| {
            format!(
                "cannot create a scratch folder in {}: {e}",
                parent.display()
            )
            .into()
        })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "the case panicked".into()
    }
}

pub async fn run(config: Option<&PathBuf>, args: &CheckArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    if args.data {
        return check_data(config, &url).await;
    }
    let config = config_for(config, &url)?;
    let backend = Backend::parse(&url)?;
    let cases: Vec<_> = conformance_tests::CASES
        .iter()
        .filter(|(name, _)| args.filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    if args.list {
        for (name, _) in &cases {
            say!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cases.is_empty() {
        return Err(format!("no case matches {:?}", args.filter.as_deref().unwrap_or("")).into());
    }
    // Failed expectations are reported below, not by the panic hook.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let bar = progress::bar("conformance", cases.len() as u64, false);
    let mut failed = Vec::new();
    for (n, (name, case)) in cases.iter().enumerate() {
        bar.set_message(name.to_string());
        let scratch = match Scratch::open(&config, &backend, n).await {
            Ok(s) => s,
            Err(e) => {
                std::panic::set_hook(hook);
                bar.finish_and_clear();
                return Err(format!("cannot open a scratch store for {name}: {e}").into());
            }
        };
        let outcome = std::panic::AssertUnwindSafe(case(scratch.ds.clone()))
            .catch_unwind()
            .await;
        scratch.remove().await;
        let line = match outcome {
            Ok(()) => format!("ok      {name}"),
            Err(panic) => {
                let message = panic_message(&*panic);
                failed.push((name.to_string(), message.clone()));
                format!("FAILED  {name}: {message}")
            }
        };
        bar.suspend(|| -> std::io::Result<()> {
            use std::io::Write as _;
            writeln!(std::io::stdout().lock(), "{line}")
        })?;
        bar.inc(1);
    }
    std::panic::set_hook(hook);
    bar.finish_and_clear();
    say!(
        "{} cases on {}: {} passed, {} failed",
        cases.len(),
        backend.name(),
        cases.len() - failed.len(),
        failed.len()
    );
    for (name, message) in &failed {
        say!("  {name}: {message}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check --data`: a store's own data, or a JSON Lines file's lines.
async fn check_data(config: Option<&PathBuf>, url: &str) -> Result<ExitCode, CliError> {
    let path = Path::new(url);
    if !url.contains("://") && path.is_file() {
        let open = || -> Result<std::io::BufReader<std::fs::File>, CliError> {
            Ok(std::io::BufReader::new(std::fs::File::open(path).map_err(
                |e| format!("cannot open {}: {e}", path.display()),
            )?))
        };
        let header = datastore::transfer::read_header(open()?)?;
        let items = datastore::transfer::validate(open()?)?;
        match header {
            Some(h) => say!(
                "{}: a backup of a {} store taken {}, through feed position {}: {items} items, every line valid",
                path.display(),
                h.backend,
                h.taken,
                h.feed_position
            ),
            None => say!(
                "{}: an export of {items} items, every line valid",
                path.display()
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ds = crate::open_tool(config, url, crate::Access::Read).await?;
    let bar = progress::bar(
        "checked",
        datastore::transfer::count_items(&*ds).await?,
        false,
    );
    let verified = datastore::transfer::verify(&*ds, |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    ds.close().await?;
    let verified = verified?;
    let shown = datastore::redact_url(url);
    for problem in &verified.problems {
        say!("problem: {problem}");
    }
    if verified.problems_total > verified.problems.len() as u64 {
        say!(
            "... and {} more",
            verified.problems_total - verified.problems.len() as u64
        );
    }
    say!(
        "{shown}: {} items, feed head {}, {} changes retained: {}",
        verified.items,
        verified.head,
        verified.changes,
        match verified.problems_total {
            0 => "no problems".to_string(),
            n => format!("{n} problems"),
        }
    );
    Ok(if verified.problems_total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
