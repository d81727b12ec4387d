//! A client that follows one workflow's runs live, holding only that
//! workflow and its runs, while a simulated runner works on many workflows.
//! Its subscription is filtered to what it holds, so it receives only the
//! changes to w7 and its runs, and it counts them.
//!
//! ```text
//! cargo run -p state-tree --example follow_runs
//! ```

use std::sync::Arc;
use std::time::Duration;

use datastore_core::{
    Batch, Datastore, InitId, Precondition, Result, Run, RunEvent, RunStatus, StepRun, Workflow,
    WorkflowId,
};
use state_tree::{Action, Driver};

const WORKFLOWS: usize = 1_000;

#[tokio::main]
async fn main() -> Result<()> {
    let ds: Arc<dyn Datastore> = datastore_memory::open();
    let mut batch = Batch::new();
    for i in 0..WORKFLOWS {
        let mut w = Workflow::new(format!("init-{i}"), "owner");
        w.id = WorkflowId::new(format!("w{i}"));
        batch = batch.put(w, Precondition::MustNotExist);
    }
    ds.apply(batch).await?;
    println!("seeded {WORKFLOWS} workflows");

    // The client opens one dataset: its workflow and runs are all it loads.
    let mut client = Driver::new(ds.clone()).await?;
    client
        .dispatch(Action::SelectDataset(InitId::new("init-7")))
        .await?;
    println!("client opened init-7 with {} store reads", client.reads());
    let opened_at = ds.changes().head().await?;

    // A runner works on w7 and, in between, on other workflows.
    let runner = tokio::spawn({
        let ds = ds.clone();
        async move {
            for attempt in 0..3u64 {
                for other in [3, 500, 999] {
                    ds.runs()
                        .create(Run::new(format!("w{other}"), vec![]))
                        .await?;
                }
                let steps = vec![
                    StepRun::new("fetch", "download"),
                    StepRun::new("save", "save"),
                ];
                let run = ds.runs().create(Run::new("w7", steps)).await?;
                let mut running = run.value.clone();
                running.status = RunStatus::Running;
                let run = ds.runs().put(running, run.expect()).await?;
                for step in 0..2 {
                    let event = RunEvent::new(
                        "print",
                        serde_json::json!({ "attempt": attempt, "step": step }),
                    );
                    ds.runs().append_event(&run.value.id, step, event).await?;
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let latest = ds.runs().get(&run.value.id).await?;
                let mut done = latest.value.clone();
                done.status = if attempt == 1 {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                };
                ds.runs().put(done, latest.expect()).await?;
            }
            Ok::<(), datastore_core::Error>(())
        }
    });

    // Follow the feed, printing the client's copy of w7's runs as it changes.
    let mut shown = String::new();
    for _ in 0..20 {
        client.follow_for(Duration::from_millis(50)).await?;
        let mut runs: Vec<_> = client
            .state()
            .runs
            .runs
            .ids()
            .filter_map(|id| client.state().runs.runs.get(id))
            .collect();
        runs.sort_by_key(|r| r.value.number);
        let line = runs
            .iter()
            .map(|r| {
                let events: usize = r.value.steps.iter().map(|s| s.output.len()).sum();
                format!("#{} {:?} ({events} events)", r.value.number, r.value.status)
            })
            .collect::<Vec<_>>()
            .join(", ");
        if line != shown {
            println!("  w7 runs: {line}");
            shown = line;
        }
        if runner.is_finished() && client.catch_up().await? == 0 {
            break;
        }
    }
    runner.await.expect("runner task")?;
    let head = ds.changes().head().await?;
    println!(
        "done: the store committed {} changes over {WORKFLOWS} workflows; the client holds {} runs of w7 and made {} reads",
        head.0,
        client.state().runs.runs.len(),
        client.reads()
    );
    let filter = state_tree::feed_filter(client.state()).expect("it holds w7");
    println!(
        "while it followed, the store committed {} changes and the client received {} of them (the changes to what it holds, filtered by the store: {:?})",
        head.0 - opened_at.0,
        client.events(),
        filter
    );
    Ok(())
}
