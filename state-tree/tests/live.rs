//! The driver against a real store (the memory backend): sparse loads,
//! live changes, and a resync after the feed lagged.

use std::sync::Arc;
use std::time::Duration;

use datastore_core::{
    Batch, Datastore, InitId, Precondition, Run, RunStatus, Workflow, WorkflowId,
};
use datastore_memory::MemoryConfig;
use state_tree::{Action, Driver, Effect, State, feed_filter, reduce};

/// A store with `n` datasets, each with a workflow `w{i}` for `init-{i}`,
/// and three runs of `w0` and of `w1`.
async fn seeded(n: usize, config: MemoryConfig) -> Arc<dyn Datastore> {
    let ds = datastore_memory::open_with(config);
    let mut i = 0;
    while i < n {
        let mut batch = Batch::new();
        for _ in 0..1000.min(n - i) {
            let mut w = Workflow::new(format!("init-{i}"), "owner");
            w.id = WorkflowId::new(format!("w{i}"));
            batch = batch.put(w, Precondition::MustNotExist);
            i += 1;
        }
        ds.apply(batch).await.unwrap();
    }
    for w in ["w0", "w1"] {
        for _ in 0..3 {
            ds.runs().create(Run::new(w, vec![])).await.unwrap();
        }
    }
    ds
}

#[tokio::test]
async fn selecting_one_dataset_of_ten_thousand_loads_that_one() {
    let ds = seeded(10_000, MemoryConfig::default()).await;
    let (_, effects) = reduce(
        &State::default(),
        &Action::SelectDataset(InitId::new("init-1")),
    );
    assert_eq!(effects.len(), 1, "one load: {effects:?}");
    assert!(
        matches!(&effects[0], Effect::LoadWorkflow { init_id, .. } if init_id.as_str() == "init-1")
    );

    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    assert_eq!(
        driver.reads(),
        2,
        "the workflow, then its runs; nothing else"
    );
    assert_eq!(
        driver
            .state()
            .workflow
            .base
            .as_ref()
            .unwrap()
            .value
            .id
            .as_str(),
        "w1"
    );
    assert_eq!(driver.state().runs.runs.len(), 3);

    // Changes to records the tree does not hold cause no read.
    let other = ds.runs().latest(&WorkflowId::new("w0")).await.unwrap();
    let mut done = other.value.clone();
    done.status = RunStatus::Succeeded;
    ds.runs().put(done, other.expect()).await.unwrap();
    let w5 = ds.workflows().get(&WorkflowId::new("w5")).await.unwrap();
    ds.workflows()
        .put(w5.value.clone(), w5.expect())
        .await
        .unwrap();
    assert_eq!(
        driver.catch_up().await.unwrap(),
        0,
        "changes to records the tree does not hold are not even received"
    );
    assert_eq!(driver.reads(), 2, "no read for records nothing loaded");
}

#[tokio::test]
async fn writes_through_the_store_reach_the_tree() {
    let ds = seeded(3, MemoryConfig::default()).await;
    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    let run = ds.runs().latest(&WorkflowId::new("w1")).await.unwrap();
    let writer = {
        let ds = ds.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut running = run.value.clone();
            running.status = RunStatus::Running;
            ds.runs().put(running, run.expect()).await.unwrap()
        })
    };
    driver.follow_for(Duration::from_millis(500)).await.unwrap();
    let written = writer.await.unwrap();
    let held = driver
        .state()
        .runs
        .runs
        .get(written.value.id.as_str())
        .unwrap();
    assert_eq!(held.value.status, RunStatus::Running);
    assert_eq!(held.revision, written.revision);
}

#[tokio::test]
async fn a_new_run_of_the_followed_workflow_appears_and_others_cost_nothing() {
    let ds = seeded(3, MemoryConfig::default()).await;
    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    let reads = driver.reads();
    let new_run = ds.runs().create(Run::new("w1", vec![])).await.unwrap();
    ds.runs().create(Run::new("w2", vec![])).await.unwrap();
    driver.catch_up().await.unwrap();
    assert_eq!(
        driver.reads(),
        reads + 1,
        "one read: the new run of w1; none for w2's"
    );
    let held = driver
        .state()
        .runs
        .runs
        .get(new_run.value.id.as_str())
        .unwrap();
    assert_eq!(held.value.number, 4);
}

#[tokio::test]
async fn after_a_forced_lag_the_tree_equals_a_fresh_load() {
    let config = MemoryConfig {
        subscriber_buffer: 4,
        ..MemoryConfig::default()
    };
    let ds = seeded(3, config).await;
    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    // The driver's subscription is open but not read while ten writes commit.
    let stream = driver.subscribe();
    assert!(stream.is_some(), "the tree holds w1 and its runs");
    for _ in 0..10 {
        let latest = ds.runs().latest(&WorkflowId::new("w1")).await.unwrap();
        let mut next = latest.value.clone();
        next.message.push('.');
        ds.runs().put(next, latest.expect()).await.unwrap();
    }
    ds.runs().create(Run::new("w1", vec![])).await.unwrap();
    driver
        .follow(stream, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        driver.resyncs(),
        1,
        "the lag was noticed and answered with a resync"
    );

    let mut fresh = Driver::new(ds.clone()).await.unwrap();
    fresh
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    assert_eq!(driver.state().runs.runs, fresh.state().runs.runs);
    assert_eq!(driver.state().workflow.base, fresh.state().workflow.base);
    assert_eq!(
        driver.state().runs.runs.len(),
        4,
        "the resync also picked up the new run"
    );
}

/// A client following one workflow of a thousand busy ones receives the
/// changes to what it holds and nothing else, and reads what it always did:
/// the workflow and its runs once, then each change to one of its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_one_workflow_of_a_thousand_receives_only_its_changes() {
    let ds = seeded(1_000, MemoryConfig::default()).await;
    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-7")))
        .await
        .unwrap();
    assert_eq!(driver.reads(), 2, "the workflow, then its runs");
    let start = driver.cursor();
    let filter = feed_filter(driver.state()).expect("it holds w7 and its runs");
    let writer = tokio::spawn({
        let ds = ds.clone();
        async move {
            for round in 0..20 {
                for w in (0..1_000).step_by(50) {
                    ds.runs()
                        .create(Run::new(format!("w{w}"), vec![]))
                        .await
                        .unwrap();
                }
                let run = ds.runs().create(Run::new("w7", vec![])).await.unwrap();
                if round % 2 == 0 {
                    let mut done = run.value.clone();
                    done.status = RunStatus::Succeeded;
                    ds.runs().put(done, run.expect()).await.unwrap();
                }
            }
        }
    });
    while !writer.is_finished() {
        driver.follow_for(Duration::from_millis(20)).await.unwrap();
    }
    writer.await.unwrap();
    driver.catch_up().await.unwrap();
    let everything = ds.changes().since(start, 10_000).await.unwrap();
    let matching = everything.iter().filter(|c| filter.matches(c)).count();
    assert_eq!(matching, 30, "20 new runs of w7, 10 of them finished");
    assert!(
        everything.len() > 400,
        "{} changes in all",
        everything.len()
    );
    assert_eq!(
        driver.events(),
        matching as u64,
        "the client received the changes to what it holds, no more"
    );
    // Each new run of w7 is read once; a finish is read unless the read of
    // its run already returned it.
    let reads = driver.reads() - 2;
    assert!(
        (20..=matching as u64).contains(&reads),
        "{reads} reads for {matching} changes to held runs"
    );
    let mut fresh = Driver::new(ds.clone()).await.unwrap();
    fresh
        .dispatch(Action::SelectDataset(InitId::new("init-7")))
        .await
        .unwrap();
    assert_eq!(driver.state().runs.runs, fresh.state().runs.runs);
    assert_eq!(driver.state().runs.runs.len(), 20);
}

/// Moving to another workflow moves the subscription from the cursor: the
/// new workflow's changes arrive, the old one's no longer do, and the tree
/// equals a fresh load of the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_navigation_moves_the_subscription_without_a_gap() {
    let ds = seeded(3, MemoryConfig::default()).await;
    let mut driver = Driver::new(ds.clone()).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-0")))
        .await
        .unwrap();
    ds.runs().create(Run::new("w0", vec![])).await.unwrap();
    driver.follow_for(Duration::from_millis(100)).await.unwrap();
    assert_eq!(driver.events(), 1);
    assert_eq!(driver.state().runs.runs.len(), 4);
    // A run of w1 commits before the client opens init-1, one after.
    ds.runs().create(Run::new("w1", vec![])).await.unwrap();
    driver
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    assert_eq!(
        feed_filter(driver.state())
            .unwrap()
            .parents
            .first()
            .map(String::as_str),
        Some("w1")
    );
    let late = ds.runs().create(Run::new("w1", vec![])).await.unwrap();
    ds.runs().create(Run::new("w0", vec![])).await.unwrap();
    driver.follow_for(Duration::from_millis(200)).await.unwrap();
    assert!(
        driver
            .state()
            .runs
            .runs
            .get(late.value.id.as_str())
            .is_some()
    );
    let mut fresh = Driver::new(ds.clone()).await.unwrap();
    fresh
        .dispatch(Action::SelectDataset(InitId::new("init-1")))
        .await
        .unwrap();
    assert_eq!(driver.state().runs.runs, fresh.state().runs.runs);
    assert_eq!(driver.state().runs.runs.len(), 5);
    // w1's two new runs since the cursor (one already loaded), none of w0's.
    assert_eq!(driver.events(), 3);
}
