//! `demo`: the main job. Seeds a store, runs simulated workflow runs that
//! append step events, and shows a client state tree following one dataset
//! live, loading only what it shows.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use datastore::state_tree::{Action, Driver};
use datastore::{
    Batch, CollectionEntry, Datastore, InitId, Key, PageRequest, Precondition, PrivateKey, Profile,
    ProfileId, RecordId, Run, RunEvent, RunStatus, Step, StepRun, Workflow, WorkflowId,
};
use indicatif::MultiProgress;

use crate::{CliError, config_for, progress, say, store_url};

/// `datastore demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The store (else DATASTORE_URL, else `url` in --config, else an
    /// embedded RocksDB folder `./datastore-demo`).
    url: Option<String>,
    /// Profiles to seed (each gets a key and its datasets).
    #[arg(long, default_value_t = 3)]
    profiles: usize,
    /// Datasets (each with a workflow) per profile.
    #[arg(long, default_value_t = 4)]
    datasets: usize,
    /// Simulated runs, spread over all workflows.
    #[arg(long, default_value_t = 24)]
    runs: usize,
    /// Steps per run (each appends a few events).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Time a step takes, in milliseconds.
    #[arg(long, default_value_t = 25)]
    step_ms: u64,
    /// Runs in flight at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
}

const NAMES: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];

fn profile_id(p: usize) -> ProfileId {
    ProfileId::new(format!("demo-{}", username(p)))
}

fn username(p: usize) -> String {
    match p / NAMES.len() {
        0 => NAMES[p].to_string(),
        n => format!("{}{n}", NAMES[p % NAMES.len()]),
    }
}

fn init_id(p: usize, d: usize) -> InitId {
    InitId::new(format!("ds-{p}-{d}"))
}

fn workflow_id(p: usize, d: usize) -> WorkflowId {
    WorkflowId::new(format!("wf-{p}-{d}"))
}

#[derive(Debug, Default)]
struct Written {
    profiles: u64,
    keys: u64,
    datasets: u64,
    workflows: u64,
    events: AtomicU64,
}

pub async fn run(config: Option<&PathBuf>, args: &DemoArgs) -> Result<ExitCode, CliError> {
    if args.profiles == 0 || args.datasets == 0 || args.steps == 0 || args.parallel == 0 {
        return Err("--profiles, --datasets, --steps and --parallel must be at least 1".into());
    }
    let started = Instant::now();
    let url = store_url(
        args.url.as_deref(),
        config.map(PathBuf::as_path),
        Some("rocksdb://./datastore-demo"),
    )?;
    let config = config_for(config, &url)?;
    let ds = datastore::open(&config).await?;
    let caps = ds.capabilities();
    say!(
        "datastore demo on {} ({} backend{})",
        datastore::redact_url(&url),
        caps.backend,
        if config.cache.enabled && caps.backend != "memory" {
            ", cached"
        } else {
            ""
        }
    );
    let head_before = ds.changes().head().await?;

    // 1. Seed profiles, their keys, datasets (collection entries) and workflows.
    let mut written = Written::default();
    let mut batch = Batch::new();
    for p in 0..args.profiles {
        let mut profile = Profile::new(username(p));
        profile.id = profile_id(p);
        profile.email = format!("{}@example.com", profile.username);
        batch = batch.put(profile, Precondition::Any);
        let mut key = Key::new(profile_id(p), format!("ed25519:pub-{p}"));
        key.private_key = Some(PrivateKey::new(format!("ed25519:demo-private-{p}")));
        batch = batch.put(key, Precondition::Any);
        written.profiles += 1;
        written.keys += 1;
        for d in 0..args.datasets {
            let mut entry = CollectionEntry::new(
                profile_id(p),
                init_id(p, d),
                username(p),
                format!("dataset {d} of {}", username(p)),
            );
            entry.workflow_id = Some(workflow_id(p, d));
            batch = batch.put(entry, Precondition::Any);
            let mut workflow = Workflow::new(init_id(p, d), profile_id(p));
            workflow.id = workflow_id(p, d);
            workflow.active = true;
            workflow.steps = (0..args.steps)
                .map(|s| Step {
                    name: format!("step-{s}"),
                    category: "transform".into(),
                    syntax: "starlark".into(),
                    script: format!("def transform(ds):\n    ds.step({s})"),
                })
                .collect();
            batch = batch.put(workflow, Precondition::Any);
            written.datasets += 1;
            written.workflows += 1;
        }
    }
    ds.apply(batch).await?;
    say!(
        "seeded {} profiles, {} keys, {} datasets with a workflow each",
        written.profiles,
        written.keys,
        written.datasets
    );

    // 2. A client signs in as the first profile and opens its first dataset:
    //    it loads that collection, that workflow and its runs, nothing else.
    let mut client = Driver::new(ds.clone()).await?;
    let signed_in_at = client.cursor();
    client.dispatch(Action::SignedIn(profile_id(0))).await?;
    client
        .dispatch(Action::SelectDataset(init_id(0, 0)))
        .await?;
    let followed = workflow_id(0, 0);
    say!(
        "client signed in as {}, opened {} (workflow {}): {} store reads",
        profile_id(0),
        init_id(0, 0),
        followed,
        client.reads()
    );

    // 3. Runners work through the runs, a few at a time.
    let workflows: Vec<WorkflowId> = (0..args.profiles)
        .flat_map(|p| (0..args.datasets).map(move |d| workflow_id(p, d)))
        .collect();
    let written = Arc::new(written);
    let multi = MultiProgress::new();
    // Added to the multi-progress before it is styled, so it never draws
    // on its own (which left a stale line behind).
    let bar = multi.add(indicatif::ProgressBar::new(args.runs as u64));
    progress::style(&bar, "runs", false);
    let queue = Arc::new(std::sync::Mutex::new((0..args.runs).collect::<Vec<_>>()));
    let mut runners = tokio::task::JoinSet::new();
    for _ in 0..args.parallel {
        let (ds, queue, workflows, written, bar) = (
            ds.clone(),
            queue.clone(),
            workflows.clone(),
            written.clone(),
            bar.clone(),
        );
        let (steps, step_ms) = (args.steps, args.step_ms);
        runners.spawn(async move {
            loop {
                let Some(n) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                    return Ok::<(), datastore::Error>(());
                };
                // Every third run goes to the followed workflow, the rest spread out.
                let workflow = if n % 3 == 0 {
                    workflows[0].clone()
                } else {
                    workflows[n % workflows.len()].clone()
                };
                simulate_run(&*ds, workflow, n, steps, step_ms, &written.events).await?;
                bar.inc(1);
            }
        });
    }

    // 4. The client follows the feed live, printing its view when it changes.
    let mut shown = String::new();
    let mut stream = client.subscribe();
    loop {
        client
            .follow_on(&mut stream, Duration::from_millis(60))
            .await?;
        if stream.is_none() {
            stream = client.subscribe();
        }
        let line = view(&client);
        if line != shown {
            let _ = multi.println(format!("  client sees {followed}: {line}"));
            if multi.is_hidden() {
                say!("  client sees {followed}: {line}");
            }
            shown = line;
        }
        if runners.is_empty() {
            break;
        }
        while let Some(done) = runners.try_join_next() {
            done??;
        }
    }
    // Whatever the last follow missed.
    client.catch_up().await?;
    bar.finish_and_clear();
    let line = view(&client);
    if line != shown {
        say!("  client sees {followed}: {line}");
    }

    // 5. Summary: what was written, and what the client loaded.
    let runs_written = args.runs as u64;
    let head_after = ds.changes().head().await?;
    let held = client.state().runs.runs.len();
    let mut store_runs = Vec::new();
    let mut cursor = None;
    loop {
        let page = ds
            .runs()
            .list_by_workflow(&followed, PageRequest::after(500, cursor))
            .await?;
        store_runs.extend(
            page.items
                .into_iter()
                .map(|r| (r.value.id.key(), r.revision)),
        );
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let client_runs: BTreeMap<_, _> = client
        .state()
        .runs
        .runs
        .ids()
        .filter_map(|id| {
            client
                .state()
                .runs
                .runs
                .get(id)
                .map(|r| (id.clone(), r.revision))
        })
        .collect();
    let matches = store_runs.len() == client_runs.len()
        && store_runs
            .iter()
            .all(|(id, rev)| client_runs.get(id) == Some(rev));
    say!("");
    say!("summary");
    say!(
        "  written: {} profiles, {} keys, {} datasets, {} workflows, {} runs, {} step events",
        written.profiles,
        written.keys,
        written.datasets,
        written.workflows,
        runs_written,
        written.events.load(Ordering::Relaxed)
    );
    say!(
        "  change feed: {} changes this session (head {})",
        head_after.0 - head_before.0,
        head_after
    );
    say!(
        "  client: holds 1 dataset, 1 workflow and {held} of its runs (of {} workflows in the store), made {} store reads, resynced {} times",
        workflows.len(),
        client.reads(),
        client.resyncs()
    );
    say!(
        "  client feed: received {} of the {} changes committed since it signed in (the store sends only changes to what it holds)",
        client.events(),
        head_after.0 - signed_in_at.0
    );
    say!(
        "  client copy of {followed} matches the store: {}",
        if matches { "yes" } else { "NO" }
    );
    say!("  took {:.1?}", started.elapsed());
    ds.close().await?;
    Ok(if matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The client's view of the followed workflow's runs, one line.
fn view(client: &Driver) -> String {
    let runs = &client.state().runs.runs;
    let mut held: Vec<_> = runs.ids().filter_map(|id| runs.get(id)).collect();
    held.sort_by_key(|r| r.value.number);
    if held.is_empty() {
        return "no runs yet".into();
    }
    held.iter()
        .map(|r| {
            let done = r
                .value
                .steps
                .iter()
                .filter(|s| s.status.is_finished())
                .count();
            let status = format!("{:?}", r.value.status).to_lowercase();
            format!(
                "#{} {status} {done}/{}",
                r.value.number,
                r.value.steps.len()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One run: created, started, a few events per step, finished.
async fn simulate_run(
    ds: &dyn Datastore,
    workflow: WorkflowId,
    n: usize,
    steps: usize,
    step_ms: u64,
    events: &AtomicU64,
) -> datastore::Result<()> {
    let plan = (0..steps)
        .map(|s| StepRun::new(format!("step-{s}"), "transform"))
        .collect();
    let run = ds.runs().create(Run::new(workflow, plan)).await?;
    let mut running = run.value.clone();
    running.status = RunStatus::Running;
    let mut run = ds.runs().put(running, run.expect()).await?;
    let fails = n % 7 == 5;
    for step in 0..steps {
        let mut starting = run.value.clone();
        starting.steps[step].status = RunStatus::Running;
        starting.steps[step].start = Some(datastore::commit_time());
        run = ds.runs().put(starting, run.expect()).await?;
        for event in ["started", "progress", "finished"] {
            let payload = serde_json::json!({ "run": n, "step": step, "event": event });
            run = ds
                .runs()
                .append_event(&run.value.id, step, RunEvent::new(event, payload))
                .await?;
            events.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(step_ms)).await;
        let mut stopped = run.value.clone();
        stopped.steps[step].status = if fails && step + 1 == steps {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        stopped.steps[step].stop = Some(datastore::commit_time());
        run = ds.runs().put(stopped, run.expect()).await?;
    }
    let mut done = run.value.clone();
    done.status = if fails {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    ds.runs().put(done, run.expect()).await?;
    Ok(())
}
