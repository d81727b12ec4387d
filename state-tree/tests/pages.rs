//! Paged runs, the workflow list, the view selectors and the JSON forms a
//! browser page exchanges with the tree.

use chrono::Utc;
use datastore_core::{
    InitId, Revision, Run, RunId, RunStatus, StepRun, Versioned, Workflow, WorkflowId,
};
use state_tree::{
    Action, Effect, LoadStatus, Scope, State, feed_query, reduce, run_rows, workflow_rows,
};

fn versioned<T>(value: T, rev: u64) -> Versioned<T> {
    let now = Utc::now();
    Versioned {
        value,
        revision: Revision::new(rev),
        created: now,
        updated: now,
        actor: None,
    }
}

fn workflow(id: &str, init: &str) -> Versioned<Workflow> {
    let mut w = Workflow::new(init, "owner");
    w.id = WorkflowId::new(id);
    versioned(w, 5)
}

fn run(id: &str, workflow: &str, number: u64, rev: u64) -> Versioned<Run> {
    let mut r = Run::new(workflow, vec![]);
    r.id = RunId::new(id);
    r.number = number;
    versioned(r, rev)
}

/// Selects `init` and answers its workflow load; returns the runs load's scope.
fn open(s: &State, init: &str, wf: &str) -> (State, Scope) {
    let (s, effects) = reduce(s, &Action::SelectDataset(InitId::new(init)));
    let [Effect::LoadWorkflow { scope, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    let (s, effects) = reduce(
        &s,
        &Action::WorkflowLoaded {
            scope: *scope,
            init_id: InitId::new(init),
            workflow: Some(workflow(wf, init)),
        },
    );
    let [Effect::LoadRuns { scope, .. }] = &effects[..] else {
        panic!("{effects:?}")
    };
    (s, *scope)
}

#[test]
fn runs_load_a_page_at_a_time_newest_first() {
    let (s, scope) = open(&State::default(), "i1", "w1");
    let (s, _) = reduce(
        &s,
        &Action::RunsPageLoaded {
            scope,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("r3", "w1", 3, 3), run("r2", "w1", 2, 2)],
            next: Some("c2".into()),
        },
    );
    assert_eq!(s.runs.selection.status, LoadStatus::Loaded);
    let numbers: Vec<u64> = run_rows(&s.runs).iter().map(|r| r.number).collect();
    assert_eq!(numbers, [3, 2]);

    // A change to an older, unloaded run is not shown before its page.
    let (same, _) = reduce(&s, &Action::RunArrived(run("r1", "w1", 1, 9)));
    assert!(std::sync::Arc::ptr_eq(&same.runs, &s.runs));

    let (s, effects) = reduce(&s, &Action::MoreRuns);
    assert_eq!(
        effects,
        [Effect::LoadMoreRuns {
            scope,
            workflow_id: WorkflowId::new("w1"),
            cursor: "c2".into()
        }]
    );
    let (again, effects) = reduce(&s, &Action::MoreRuns);
    assert!(effects.is_empty(), "one page at a time");
    assert!(std::sync::Arc::ptr_eq(&again.runs, &s.runs));
    let (s, _) = reduce(
        &s,
        &Action::MoreRunsLoaded {
            scope,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("r1", "w1", 1, 1)],
            next: None,
        },
    );
    let numbers: Vec<u64> = run_rows(&s.runs).iter().map(|r| r.number).collect();
    assert_eq!(numbers, [3, 2, 1]);
    let (_, effects) = reduce(&s, &Action::MoreRuns);
    assert!(effects.is_empty(), "nothing older is left");
}

#[test]
fn switching_workflow_drops_the_old_runs_and_ignores_late_answers() {
    let (s, old) = open(&State::default(), "i1", "w1");
    let (s, _) = reduce(
        &s,
        &Action::RunsPageLoaded {
            scope: old,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("a1", "w1", 1, 1)],
            next: Some("c".into()),
        },
    );
    let (s, _) = reduce(&s, &Action::MoreRuns);
    let (s, new) = open(&s, "i2", "w2");
    assert!(
        s.runs.runs.is_empty(),
        "the old workflow's runs are dropped"
    );
    for late in [
        Action::RunsPageLoaded {
            scope: old,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("a2", "w1", 2, 2)],
            next: None,
        },
        Action::MoreRunsLoaded {
            scope: old,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("a0", "w1", 0, 2)],
            next: None,
        },
        Action::RunArrived(run("a3", "w1", 3, 3)),
    ] {
        let (after, _) = reduce(&s, &late);
        assert!(std::sync::Arc::ptr_eq(&after.runs, &s.runs), "{late:?}");
    }
    let (s, _) = reduce(
        &s,
        &Action::RunsPageLoaded {
            scope: new,
            workflow_id: WorkflowId::new("w2"),
            runs: vec![run("b1", "w2", 1, 1)],
            next: None,
        },
    );
    let ids: Vec<String> = run_rows(&s.runs).into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["b1"]);
    assert_eq!(
        feed_query(&s).as_deref(),
        Some("kind=workflows&kind=runs&id=w2&parent=w2")
    );
}

#[test]
fn steps_done_counts_finished_steps() {
    let (s, scope) = open(&State::default(), "i1", "w1");
    let mut r = run("r1", "w1", 1, 1);
    r.value.steps = vec![
        StepRun::new("fetch", "download"),
        StepRun::new("build", "compute"),
        StepRun::new("skip", "compute"),
    ];
    r.value.steps[0].status = RunStatus::Succeeded;
    r.value.steps[1].status = RunStatus::Running;
    r.value.steps[1].output = vec![datastore_core::RunEvent::new("print", "x".into())];
    r.value.steps[2].status = RunStatus::Skipped;
    let (s, _) = reduce(
        &s,
        &Action::RunsLoaded {
            scope,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![r],
        },
    );
    let row = &run_rows(&s.runs)[0];
    assert_eq!((row.steps_done, row.steps), (2, 3), "output is not done");
}

#[test]
fn the_workflow_list_loads_once() {
    let (s, effects) = reduce(&State::default(), &Action::ListWorkflows);
    assert_eq!(effects, [Effect::LoadWorkflowList]);
    let (s2, effects) = reduce(&s, &Action::ListWorkflows);
    assert!(effects.is_empty(), "already loading");
    assert!(std::sync::Arc::ptr_eq(&s.workflow_list, &s2.workflow_list));
    let (s, _) = reduce(
        &s,
        &Action::WorkflowListLoaded {
            workflows: vec![workflow("w2", "i2"), workflow("w1", "i1")],
            next: None,
        },
    );
    let rows = workflow_rows(&s.workflow_list);
    let ids: Vec<&str> = rows.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w1", "w2"]);
    assert_eq!(rows[0].init_id, "i1");
}

#[test]
fn actions_and_effects_have_a_json_form() {
    let action: Action = serde_json::from_value(serde_json::json!({
        "runs_page_loaded": {
            "scope": 2,
            "workflow_id": "w1",
            "runs": [{"value": {"id": "r1", "workflow_id": "w1", "number": 1},
                      "revision": 4, "created": "2024-01-01T00:00:00Z",
                      "updated": "2024-01-01T00:00:00Z"}],
            "next": null
        }
    }))
    .unwrap();
    assert!(matches!(
        action,
        Action::RunsPageLoaded {
            scope: Scope(2),
            ..
        }
    ));
    let unit: Action = serde_json::from_value(serde_json::json!("more_runs")).unwrap();
    assert_eq!(unit, Action::MoreRuns);
    let change: Action = serde_json::from_value(serde_json::json!({"changed": {
        "seq": 7, "kind": "run", "id": "r1", "op": "put", "revision": 5,
        "at": "2024-01-01T00:00:00Z", "parent": "w1"}}))
    .unwrap();
    assert!(matches!(change, Action::Changed(_)));
    let effect = serde_json::to_value(Effect::LoadRuns {
        scope: Scope(3),
        workflow_id: WorkflowId::new("w1"),
    })
    .unwrap();
    assert_eq!(
        effect,
        serde_json::json!({"load_runs": {"scope": 3, "workflow_id": "w1"}})
    );
}
