//! The main job on the embedded default: write and read records while a
//! follower tails the change feed live.
//!
//! ```text
//! cargo run -p datastore-memory --example quickstart
//! ```

use std::sync::Arc;
use std::time::Duration;

use datastore_core::{
    CollectionEntry, CollectionOrder, CollectionPatch, Datastore, FeedCursor, FeedEvent, LogOp,
    PageRequest, Patch, Precondition, Profile, Result, Run, RunEvent, RunStatus, StepRun, Workflow,
};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<()> {
    let ds: Arc<dyn Datastore> = datastore_memory::open();

    // A follower, as a cache or a client would run: replay from the start, then live.
    let mut feed = ds.changes().subscribe(FeedCursor::START);
    let follower = tokio::spawn(async move {
        let mut seen = 0u64;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(500), feed.next()).await
        {
            match event? {
                FeedEvent::Change(c) => {
                    seen += 1;
                    println!(
                        "  feed #{:<3} {:?} {} {} (revision {})",
                        c.seq, c.op, c.kind, c.id, c.revision
                    );
                }
                FeedEvent::Lagged { resume_from } => {
                    println!("  feed lagged; resume from {resume_from}")
                }
            }
        }
        Ok::<u64, datastore_core::Error>(seen)
    });

    println!("writing a profile, a workflow and its dataset entry");
    let alice = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await?;
    let mut workflow = Workflow::new("weather-init", alice.value.id.clone());
    workflow.active = true;
    let workflow = ds
        .workflows()
        .put(workflow, Precondition::MustNotExist)
        .await?;
    let entry = CollectionEntry::new(alice.value.id.clone(), "weather-init", "alice", "weather");
    ds.collections().put(entry, Precondition::Any).await?;

    println!("running the workflow three times");
    for attempt in 1..=3 {
        let steps = vec![
            StepRun::new("fetch", "download"),
            StepRun::new("save", "save"),
        ];
        let run = ds
            .runs()
            .create(Run::new(workflow.value.id.clone(), steps))
            .await?;
        let mut running = run.value.clone();
        running.status = RunStatus::Running;
        let run = ds.runs().put(running, run.expect()).await?;
        for step in 0..2 {
            let event = RunEvent::new(
                "print",
                serde_json::json!({ "step": step, "attempt": attempt }),
            );
            ds.runs().append_event(&run.value.id, step, event).await?;
        }
        let mut done = ds.runs().get(&run.value.id).await?;
        done.value.status = if attempt == 2 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let expect = done.expect();
        let done = ds.runs().put(done.value, expect).await?;
        ds.collections()
            .update_by_init_id(
                &"weather-init".into(),
                CollectionPatch {
                    run_id: Patch::Set(done.value.id.clone()),
                    run_status: Patch::Set(done.value.status),
                    ..CollectionPatch::default()
                },
            )
            .await?;
    }
    ds.logs()
        .append(
            &"weather-log".into(),
            0,
            vec![LogOp {
                name: "init".into(),
                ..LogOp::default()
            }],
        )
        .await?;

    println!("reading back");
    let latest = ds.runs().latest(&workflow.value.id).await?;
    println!(
        "  latest run: #{} {:?}",
        latest.value.number, latest.value.status
    );
    let runs = ds
        .runs()
        .list_by_workflow(&workflow.value.id, PageRequest::first(10))
        .await?;
    let numbers: Vec<_> = runs.items.iter().map(|r| r.value.number).collect();
    println!("  runs newest first: {numbers:?}");
    let collection = ds
        .collections()
        .list_by_profile(
            &alice.value.id,
            CollectionOrder::Name,
            PageRequest::default(),
        )
        .await?;
    for e in &collection.items {
        println!(
            "  alice's collection: {} (latest run {:?})",
            e.value.name, e.value.run_status
        );
    }
    let head = ds.changes().head().await?;
    let seen = follower.await.expect("follower task")?;
    println!(
        "done: {} changes committed, the follower saw {seen}",
        head.0
    );
    Ok(())
}
