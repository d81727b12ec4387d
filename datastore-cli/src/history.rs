//! `history`: a record's versions, newest first, as JSON Lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use datastore::{Datastore, Kind, PageRequest, RecordId, Revision, Substore, Version};

use crate::{Access, CliError, open_tool, store_url};

/// `datastore history [URL] STORE ID`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// `[URL] STORE ID`: the store (else DATASTORE_URL, else `url` in
    /// --config; opened read-only), the substore (`workflows` or
    /// `workflow`, ...) and the record's id (a collection entry's is
    /// `PROFILE/INIT_ID`).
    #[arg(num_args = 2..=3, required = true, value_names = ["URL", "STORE", "ID"])]
    args: Vec<String>,
    /// Print only this version.
    #[arg(long)]
    at: Option<u64>,
    /// Print at most this many versions.
    #[arg(long)]
    limit: Option<u64>,
}

/// Prints the versions of one record of kind `R`; returns how many.
async fn print<R: Substore>(
    ds: &dyn Datastore,
    id: &str,
    args: &HistoryArgs,
    out: &mut impl Write,
) -> Result<u64, CliError> {
    let kind = R::KIND;
    let id =
        R::Id::from_key(id).ok_or_else(|| format!("{id:?} is not the id of a {}", kind.noun()))?;
    let store = R::of(ds);
    if let Some(rev) = args.at {
        if rev == 0 {
            return Err("--at: revisions start at 1".into());
        }
        let version: Version<R> = store.get_at(&id, Revision::new(rev)).await?;
        writeln!(out, "{}", serde_json::to_string(&version)?)?;
        return Ok(1);
    }
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let mut cursor = None;
    while printed < limit {
        let want = (limit - printed).min(u64::from(datastore::MAX_PAGE_LIMIT)) as u32;
        let page = store.history(&id, PageRequest::after(want, cursor)).await?;
        for version in &page.items {
            writeln!(out, "{}", serde_json::to_string(version)?)?;
            printed += 1;
        }
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    Ok(printed)
}

pub async fn run(config: Option<&PathBuf>, args: &HistoryArgs) -> Result<ExitCode, CliError> {
    let (url, store_name, id) = match args.args.as_slice() {
        [url, store, id] => (Some(url.as_str()), store, id),
        [store, id] => (None, store, id),
        _ => return Err("give [URL] STORE ID".into()),
    };
    let kind = Kind::from_name(store_name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL
            .iter()
            .filter(|k| k.is_editable())
            .map(|k| k.as_str())
            .collect();
        format!("{store_name:?} is not a store: one of {}", names.join(", "))
    })?;
    let url = store_url(url, config.map(PathBuf::as_path), None)?;
    let ds = open_tool(config, &url, Access::Read).await?;
    let mut out = std::io::stdout().lock();
    let printed = datastore::dispatch_editable!(
        kind,
        R => print::<R>(&*ds, id, args, &mut out).await,
        _ => Err(format!(
            "{} have no history: a log is append-only (read it with its range)",
            kind.as_str()
        )
        .into())
    );
    out.flush()?;
    ds.close().await?;
    let printed = printed?;
    let noun = if printed == 1 { "version" } else { "versions" };
    eprintln!("{printed} {noun} of {}/{id}, newest first", kind.as_str());
    Ok(ExitCode::SUCCESS)
}
