//! `datastore watch [URL] --workflow WF | --dataset INIT`: the client state
//! tree and its driver against any store, remote included, showing one
//! workflow's runs live in the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use datastore::state_tree::{Action, Driver};
use datastore::{InitId, Versioned, Workflow, WorkflowId};

use crate::{Access, CliError, open_tool, store_url};

/// `datastore watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The store (else DATASTORE_URL, else `url` in --config): any store
    /// URL, `http://HOST:PORT` for a remote `datastore serve`.
    url: Option<String>,
    /// The workflow whose runs to show.
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    workflow: Option<String>,
    /// Or the dataset (init id) whose workflow to show.
    #[arg(long)]
    dataset: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// The most runs shown, newest first.
    #[arg(long, default_value_t = 20)]
    rows: usize,
}

/// What the terminal shows: the workflow, its runs newest first, and what
/// the client did to hold them.
fn frame(client: &Driver, workflow: &Versioned<Workflow>, shown: &str, rows: usize) -> String {
    let runs = &client.state().runs.runs;
    let mut held: Vec<_> = runs.ids().filter_map(|id| runs.get(id)).collect();
    held.sort_by_key(|r| std::cmp::Reverse(r.value.number));
    let mut out = format!(
        "workflow {} (dataset {}) on {shown}: {} runs held\n",
        workflow.value.id,
        workflow.value.init_id,
        held.len()
    );
    if held.is_empty() {
        out.push_str("  no runs yet\n");
    }
    for r in held.iter().take(rows) {
        let done = r
            .value
            .steps
            .iter()
            .filter(|s| s.status.is_finished())
            .count();
        let id = r.value.id.to_string();
        let short: String = id.chars().take(12).collect();
        out.push_str(&format!(
            "  #{:<5} {:<10} {done}/{} steps  {short}\n",
            r.value.number,
            format!("{:?}", r.value.status).to_lowercase(),
            r.value.steps.len()
        ));
    }
    if held.len() > rows {
        out.push_str(&format!("  ... and {} older\n", held.len() - rows));
    }
    out.push_str(&format!(
        "store reads {}, feed events {}, resyncs {}, at feed position {}\n",
        client.reads(),
        client.events(),
        client.resyncs(),
        client.cursor()
    ));
    out
}

/// Follows the workflow until `--seconds` pass or Ctrl-C, redrawing when
/// what it holds changes (the whole screen on a terminal; otherwise each
/// new frame, separated by a blank line).
pub async fn run(config: Option<&PathBuf>, args: &WatchArgs) -> Result<ExitCode, CliError> {
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let shown = datastore::redact_url(&url);
    let ds = open_tool(config, &url, Access::Read).await?;
    let workflow = match (&args.workflow, &args.dataset) {
        (Some(id), _) => ds.workflows().get(&WorkflowId::new(id.clone())).await,
        (None, Some(init)) => {
            ds.workflows()
                .get_by_init_id(&InitId::new(init.clone()))
                .await
        }
        (None, None) => unreachable!("clap requires one"),
    }
    .map_err(|e| format!("{shown}: {e}"))?;
    let mut client = Driver::new(ds.clone()).await?;
    client
        .dispatch(Action::SignedIn(workflow.value.owner_id.clone()))
        .await?;
    client
        .dispatch(Action::SelectDataset(workflow.value.init_id.clone()))
        .await?;
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    let mut stream = client.subscribe();
    loop {
        let now = frame(&client, &workflow, &shown, args.rows.max(1));
        if now != last {
            let mut out = std::io::stdout().lock();
            if terminal {
                // Home and clear, then the frame.
                write!(out, "\x1b[H\x1b[2J{now}")?;
            } else {
                writeln!(out, "{now}")?;
            }
            out.flush()?;
            last = now;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let step = Duration::from_millis(100);
        tokio::select! {
            followed = client.follow_on(&mut stream, step) => followed?,
            _ = tokio::signal::ctrl_c() => break,
        }
        if stream.is_none() {
            // It ended (the store closed, or a filter that holds nothing):
            // open a new one from the cursor.
            stream = client.subscribe();
        }
    }
    ds.close().await?;
    Ok(ExitCode::SUCCESS)
}
