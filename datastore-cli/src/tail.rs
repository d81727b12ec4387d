//! `tail`: print the change feed from a cursor; follow it live.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use datastore::{FeedCursor, FeedEvent, FeedFilter, MAX_FEED_LIMIT};
use futures::StreamExt;

use crate::{Access, CliError, open_tool, store_url};

/// `datastore tail [URL]`
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The store to follow (else DATASTORE_URL, else `url` in --config);
    /// opened read-only.
    url: Option<String>,
    /// Start after this cursor (0: from the oldest change kept). Each
    /// printed change carries its `seq`, the cursor to resume from.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Keep following live changes until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// Stop after this many changes.
    #[arg(long)]
    limit: Option<u64>,
    /// Only changes of this kind (`runs` or `run`, ...); repeatable.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// Only changes to children of this record (a run's workflow, a log
    /// entry's log, a collection entry's profile); repeatable, and either
    /// it or an `--id` matches.
    #[arg(long = "parent")]
    parents: Vec<String>,
    /// Only changes to this record; repeatable.
    #[arg(long = "id")]
    ids: Vec<String>,
}

/// The filter the flags name, checked (an unknown kind names itself).
fn filter(args: &TailArgs) -> Result<FeedFilter, CliError> {
    let mut filter = FeedFilter::all();
    for kind in &args.kinds {
        filter = filter.kind_named(kind)?;
    }
    for parent in &args.parents {
        filter = filter.parent(parent.clone());
    }
    for id in &args.ids {
        filter = filter.id(id.clone());
    }
    filter.validate()?;
    Ok(filter)
}

pub async fn run(config: Option<&PathBuf>, args: &TailArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let filter = filter(args)?;
    let store = open_tool(config, &url, Access::Read).await?;
    let mut out = std::io::stdout().lock();
    let mut cursor = FeedCursor(args.from);
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    if !args.follow {
        while printed < limit {
            let want = (limit - printed).min(u64::from(MAX_FEED_LIMIT)) as u32;
            let changes = store
                .changes()
                .since_matching(cursor, want, &filter)
                .await?;
            if changes.is_empty() {
                break;
            }
            for change in changes {
                writeln!(out, "{}", serde_json::to_string(&change)?)?;
                cursor = change.cursor();
                printed += 1;
            }
        }
        out.flush()?;
        eprintln!("{printed} changes; resume with --from {}", cursor.0);
        store.close().await?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stream = store.changes().subscribe_matching(cursor, filter.clone());
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        match event {
            None => break,
            Some(Ok(FeedEvent::Change(change))) => {
                writeln!(out, "{}", serde_json::to_string(&change)?)?;
                out.flush()?;
                cursor = change.cursor();
                printed += 1;
                if printed >= limit {
                    break;
                }
            }
            Some(Ok(FeedEvent::Lagged { resume_from })) => {
                cursor = resume_from;
                stream = store.changes().subscribe_matching(cursor, filter.clone());
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
    eprintln!("{printed} changes; resume with --from {}", cursor.0);
    store.close().await?;
    Ok(ExitCode::SUCCESS)
}
