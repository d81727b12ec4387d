//! The run substore.

use std::sync::Arc;

use datastore_core::{
    Datastore, Error, Kind, PageRequest, Precondition, ProfileId, Run, RunEvent, RunId, RunStatus,
    StepRun, StoreName, WorkflowId,
};

use crate::support::*;

/// Create assigns 1, 2, 3 per workflow, a generated id, and the workflow's owner.
pub async fn create_assigns_numbers_and_owner(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "owner-1").await;
    let mut numbers = Vec::new();
    for _ in 0..3 {
        let r = run(&ds, &w).await;
        assert!(!r.value.id.is_empty());
        assert_eq!(r.value.owner_id, ProfileId::new("owner-1"));
        assert_eq!(ds.runs().get(&r.value.id).await.unwrap().value, r.value);
        numbers.push(r.value.number);
    }
    assert_eq!(numbers, [1, 2, 3]);
}

/// Each workflow counts its own runs from 1.
pub async fn numbers_are_per_workflow(ds: Arc<dyn Datastore>) {
    let a = workflow(&ds, "init-a", "o").await;
    let b = workflow(&ds, "init-b", "o").await;
    run(&ds, &a).await;
    run(&ds, &a).await;
    assert_eq!(run(&ds, &b).await.value.number, 1);
    assert_eq!(run(&ds, &a).await.value.number, 3);
}

/// A run without a workflow id is Invalid and writes nothing.
pub async fn create_without_workflow_id_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(ds.runs().create(Run::new("", vec![])).await, "workflow_id");
    assert_unchanged(&ds, &before).await;
}

/// A run of a workflow that does not exist is Invalid and writes nothing,
/// by create or by put.
pub async fn create_for_unknown_workflow_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.runs().create(Run::new("no-such-workflow", vec![])).await,
        "workflow_id",
    );
    let mut r = Run::new("no-such-workflow", vec![]);
    r.owner_id = ProfileId::new("o");
    r.number = 1;
    assert_invalid(ds.runs().put(r, Precondition::Any).await, "workflow_id");
    assert_unchanged(&ds, &before).await;
}

/// A put of a run without a number is Invalid (create assigns numbers).
pub async fn put_without_number_is_invalid(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let before = snapshot(&ds).await;
    let mut r = Run::new(w.value.id.clone(), vec![]);
    r.owner_id = ProfileId::new("o");
    assert_invalid(ds.runs().put(r, Precondition::Any).await, "number");
    assert_unchanged(&ds, &before).await;
}

/// A workflow's runs are listed newest first.
pub async fn list_by_workflow_newest_first(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let other = workflow(&ds, "init-2", "o").await;
    for _ in 0..5 {
        run(&ds, &w).await;
    }
    run(&ds, &other).await;
    let page = ds
        .runs()
        .list_by_workflow(&w.value.id, PageRequest::default())
        .await
        .unwrap();
    let numbers: Vec<_> = page.items.iter().map(|r| r.value.number).collect();
    assert_eq!(numbers, [5, 4, 3, 2, 1]);
}

/// Latest is the highest-numbered run.
pub async fn latest(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    run(&ds, &w).await;
    run(&ds, &w).await;
    let third = run(&ds, &w).await;
    assert_eq!(
        ds.runs().latest(&w.value.id).await.unwrap().value,
        third.value
    );
}

/// Latest of a workflow without runs is NotFound.
pub async fn latest_without_runs_is_not_found(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    assert_not_found(
        ds.runs().latest(&w.value.id).await,
        StoreName::Kind(Kind::Run),
        w.value.id.as_str(),
    );
}

/// Count counts one workflow's runs.
pub async fn count(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let other = workflow(&ds, "init-2", "o").await;
    for _ in 0..4 {
        run(&ds, &w).await;
    }
    run(&ds, &other).await;
    assert_eq!(ds.runs().count(&w.value.id).await.unwrap(), 4);
    assert_eq!(ds.runs().count(&other.value.id).await.unwrap(), 1);
    assert_eq!(
        ds.runs().count(&WorkflowId::new("unknown")).await.unwrap(),
        0
    );
}

/// Runs are listed by owner and status, newest first; a status change moves a run.
pub async fn list_by_owner_and_status(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "alice").await;
    let other = workflow(&ds, "init-2", "bob").await;
    let mut runs = Vec::new();
    for i in 0..4 {
        let mut r = Run::new(w.value.id.clone(), vec![]);
        r.created = ts(i);
        r.status = if i % 2 == 0 {
            RunStatus::Running
        } else {
            RunStatus::Succeeded
        };
        runs.push(ds.runs().create(r).await.unwrap());
    }
    let mut bobs = Run::new(other.value.id.clone(), vec![]);
    bobs.status = RunStatus::Running;
    ds.runs().create(bobs).await.unwrap();
    let alice = ProfileId::new("alice");
    let running = ds
        .runs()
        .list_by_owner_and_status(&alice, RunStatus::Running, PageRequest::default())
        .await
        .unwrap();
    let numbers: Vec<_> = running.items.iter().map(|r| r.value.number).collect();
    assert_eq!(numbers, [3, 1]);
    let mut done = runs[2].value.clone();
    done.status = RunStatus::Failed;
    ds.runs().put(done, runs[2].expect()).await.unwrap();
    let running = ds
        .runs()
        .list_by_owner_and_status(&alice, RunStatus::Running, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(running.items.len(), 1);
    let failed = ds
        .runs()
        .list_by_owner_and_status(&alice, RunStatus::Failed, PageRequest::default())
        .await
        .unwrap();
    assert_eq!(failed.items[0].value.number, 3);
}

/// Appending events adds them to the step, in order, one write each.
pub async fn append_event(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let r = run(&ds, &w).await;
    let first = ds
        .runs()
        .append_event(
            &r.value.id,
            1,
            RunEvent::new("print", serde_json::json!({"line": 1})),
        )
        .await
        .unwrap();
    let second = ds
        .runs()
        .append_event(
            &r.value.id,
            1,
            RunEvent::new("print", serde_json::json!({"line": 2})),
        )
        .await
        .unwrap();
    assert!(second.revision > first.revision && first.revision > r.revision);
    let got = ds.runs().get(&r.value.id).await.unwrap();
    let lines: Vec<_> = got.value.steps[1]
        .output
        .iter()
        .map(|e| e.payload["line"].as_i64())
        .collect();
    assert_eq!(lines, [Some(1), Some(2)]);
    assert!(got.value.steps[0].output.is_empty());
    assert_eq!(got.revision, second.revision);
}

/// Appending to a missing run is NotFound.
pub async fn append_event_missing_run_is_not_found(ds: Arc<dyn Datastore>) {
    let result = ds
        .runs()
        .append_event(&RunId::new("nope"), 0, RunEvent::default())
        .await;
    assert_not_found(result, StoreName::Kind(Kind::Run), "nope");
}

/// Appending to a step that does not exist is Invalid and writes nothing.
pub async fn append_event_bad_step_is_invalid(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let r = run(&ds, &w).await;
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.runs()
            .append_event(&r.value.id, 2, RunEvent::default())
            .await,
        "step",
    );
    assert_unchanged(&ds, &before).await;
}

/// Appending to a finished run is Invalid and writes nothing.
pub async fn append_event_to_finished_run_is_invalid(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let r = run(&ds, &w).await;
    let mut done = r.value.clone();
    done.status = RunStatus::Succeeded;
    ds.runs().put(done, r.expect()).await.unwrap();
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.runs()
            .append_event(&r.value.id, 0, RunEvent::default())
            .await,
        "status",
    );
    assert_unchanged(&ds, &before).await;
}

/// A deleted run's number is not handed out again.
pub async fn numbers_not_reused_after_delete(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    run(&ds, &w).await;
    let second = run(&ds, &w).await;
    ds.runs()
        .delete(&second.value.id, second.expect())
        .await
        .unwrap();
    assert_eq!(run(&ds, &w).await.value.number, 3);
}

/// A put at an old revision is Conflict naming the revision found.
pub async fn stale_put_is_conflict(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let v1 = run(&ds, &w).await;
    let mut edit = v1.value.clone();
    edit.status = RunStatus::Running;
    let v2 = ds.runs().put(edit.clone(), v1.expect()).await.unwrap();
    edit.message = "late".into();
    assert_conflict(ds.runs().put(edit, v1.expect()).await, Some(v2.revision));
}

/// A delete at an old revision is Conflict naming the revision found.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let v1 = run(&ds, &w).await;
    let v2 = ds
        .runs()
        .append_event(&v1.value.id, 0, RunEvent::default())
        .await
        .unwrap();
    assert_conflict(
        ds.runs().delete(&v1.value.id, v1.expect()).await,
        Some(v2.revision),
    );
}

/// Getting a missing run is NotFound; steps survive a round trip.
pub async fn get_missing_is_not_found(ds: Arc<dyn Datastore>) {
    assert_not_found(
        ds.runs().get(&RunId::new("nope")).await,
        StoreName::Kind(Kind::Run),
        "nope",
    );
    let w = workflow(&ds, "init-1", "o").await;
    let mut r = Run::new(w.value.id.clone(), vec![StepRun::new("a", "b")]);
    r.steps[0].status = RunStatus::Running;
    r.steps[0].start = Some(ts(5));
    let created = ds.runs().create(r).await.unwrap();
    let got = ds.runs().get(&created.value.id).await.unwrap();
    assert_eq!(got.value.steps[0].start, Some(ts(5)));
    assert!(matches!(
        ds.runs().create(created.value.clone()).await,
        Err(Error::AlreadyExists { .. })
    ));
}

/// A put cannot move a run to another workflow, renumber it or give it
/// another owner: Invalid naming the field, nothing written, counts and
/// owner lists unchanged; in a batch too.
pub async fn identity_is_fixed(ds: Arc<dyn Datastore>) {
    let w1 = workflow(&ds, "init-1", "o1").await;
    let w2 = workflow(&ds, "init-2", "o2").await;
    let r = run(&ds, &w1).await;
    run(&ds, &w2).await;
    let before = snapshot(&ds).await;
    let mut moved = r.value.clone();
    moved.workflow_id = w2.value.id.clone();
    assert_invalid(
        ds.runs().put(moved.clone(), Precondition::Any).await,
        "workflow_id",
    );
    assert_invalid(
        ds.runs().put(moved.clone(), r.expect()).await,
        "workflow_id",
    );
    assert_invalid(
        ds.apply(datastore_core::Batch::new().put(moved, Precondition::Any))
            .await,
        "workflow_id",
    );
    let mut renumbered = r.value.clone();
    renumbered.number = 7;
    assert_invalid(ds.runs().put(renumbered, Precondition::Any).await, "number");
    let mut reowned = r.value.clone();
    reowned.owner_id = ProfileId::new("o2");
    assert_invalid(ds.runs().put(reowned, Precondition::Any).await, "owner_id");
    assert_unchanged(&ds, &before).await;
    assert_eq!(ds.runs().count(&w1.value.id).await.unwrap(), 1);
    assert_eq!(ds.runs().count(&w2.value.id).await.unwrap(), 1);
    // Everything else of a run may change.
    let mut edit = r.value.clone();
    edit.status = RunStatus::Running;
    edit.message = "going".into();
    let put = ds.runs().put(edit, Precondition::Any).await.unwrap();
    assert_eq!(put.value.workflow_id, w1.value.id);
    assert_eq!(ds.runs().count(&w1.value.id).await.unwrap(), 1);
}

/// The latest run of each workflow, where it is in the status asked for
/// (Qri's ListByStatus); earlier runs in that status do not count.
pub async fn list_latest_by_status(ds: Arc<dyn Datastore>) {
    let mut expected = Vec::new();
    for i in 0..5 {
        let w = workflow(&ds, &format!("init-{i}"), "o").await;
        let first = run(&ds, &w).await;
        let mut failed = first.value.clone();
        failed.status = RunStatus::Failed;
        ds.runs().put(failed, first.expect()).await.unwrap();
        // Workflows 0, 2 and 4 end with a failed run; 1 and 3 recovered.
        let mut last = run(&ds, &w).await.value;
        last.status = if i % 2 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let last = ds.runs().put(last, Precondition::Any).await.unwrap();
        if i % 2 == 0 {
            expected.push(last.value.id.clone());
        }
    }
    // A workflow without runs is simply skipped.
    workflow(&ds, "init-empty", "o").await;
    expected.sort_by_key(|id| id.to_string());
    let mut got: Vec<RunId> = walk_with(2, |page| {
        ds.runs().list_latest_by_status(RunStatus::Failed, page)
    })
    .await
    .into_iter()
    .map(|r| r.value.id)
    .collect();
    got.sort_by_key(|id| id.to_string());
    assert_eq!(got, expected);
    let waiting = ds
        .runs()
        .list_latest_by_status(RunStatus::Waiting, PageRequest::default())
        .await
        .unwrap();
    assert!(waiting.items.is_empty() && waiting.next.is_none());
}

/// An empty workflow or owner id in a run list is Invalid, like `count`.
pub async fn empty_ids_in_lists_are_invalid(ds: Arc<dyn Datastore>) {
    assert_invalid(
        ds.runs()
            .list_by_workflow(&WorkflowId::new(""), PageRequest::default())
            .await,
        "workflow_id",
    );
    assert_invalid(ds.runs().latest(&WorkflowId::new("")).await, "workflow_id");
    assert_invalid(ds.runs().count(&WorkflowId::new("")).await, "workflow_id");
    assert_invalid(
        ds.runs()
            .list_by_owner_and_status(
                &ProfileId::new(""),
                RunStatus::Running,
                PageRequest::default(),
            )
            .await,
        "owner_id",
    );
}
