//! Reducers return effects as data and keep untouched slices' pointers.

use std::sync::Arc;

use chrono::Utc;
use datastore_core::{
    Change, ChangeOp, InitId, Kind, Precondition, ProfileId, Revision, Run, RunId, Versioned,
    Workflow, WorkflowId,
};
use state_tree::{Action, Effect, LoadStatus, State, reduce};

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

/// Opens dataset `init` whose workflow is `w1` with runs r1 and r2.
fn opened() -> State {
    let (s, effects) = reduce(
        &State::default(),
        &Action::SelectDataset(InitId::new("init-1")),
    );
    let scope = match &effects[..] {
        [Effect::LoadWorkflow { scope, init_id }] if init_id.as_str() == "init-1" => *scope,
        other => panic!("expected one workflow load, got {other:?}"),
    };
    let (s, effects) = reduce(
        &s,
        &Action::WorkflowLoaded {
            scope,
            init_id: InitId::new("init-1"),
            workflow: Some(workflow("w1", "init-1")),
        },
    );
    let scope = match &effects[..] {
        [Effect::LoadRuns { scope, workflow_id }] if workflow_id.as_str() == "w1" => *scope,
        other => panic!("expected one runs load, got {other:?}"),
    };
    let (s, effects) = reduce(
        &s,
        &Action::RunsLoaded {
            scope,
            workflow_id: WorkflowId::new("w1"),
            runs: vec![run("r1", "w1", 1, 10), run("r2", "w1", 2, 11)],
        },
    );
    assert!(effects.is_empty());
    s
}

#[test]
fn signing_in_loads_that_profiles_collection_only() {
    let (s, effects) = reduce(
        &State::default(),
        &Action::SignedIn(ProfileId::new("alice")),
    );
    assert_eq!(effects, [Effect::LoadCollection(ProfileId::new("alice"))]);
    assert_eq!(s.collection.status, LoadStatus::Loading);
    let (again, effects) = reduce(&s, &Action::SignedIn(ProfileId::new("alice")));
    assert!(effects.is_empty(), "already signed in: nothing to load");
    assert!(Arc::ptr_eq(&again.session, &s.session));
}

#[test]
fn opening_a_dataset_loads_its_workflow_then_its_runs() {
    let s = opened();
    assert_eq!(s.workflow.selection.status, LoadStatus::Loaded);
    assert_eq!(s.runs.runs.len(), 2);
    assert_eq!(s.runs.selection.status, LoadStatus::Loaded);
}

#[test]
fn untouched_slices_keep_their_pointers() {
    let s = opened();
    let (next, _) = reduce(&s, &Action::SelectRun(RunId::new("r2")));
    assert!(
        !Arc::ptr_eq(&next.run_log, &s.run_log),
        "the run log slice changed"
    );
    assert!(Arc::ptr_eq(&next.session, &s.session));
    assert!(Arc::ptr_eq(&next.collection, &s.collection));
    assert!(Arc::ptr_eq(&next.dataset, &s.dataset));
    assert!(Arc::ptr_eq(&next.workflow, &s.workflow));
    assert!(Arc::ptr_eq(&next.runs, &s.runs));
    let (same, effects) = reduce(&next, &Action::SelectRun(RunId::new("r2")));
    assert!(effects.is_empty());
    assert!(
        Arc::ptr_eq(&same.run_log, &next.run_log),
        "an action that changes nothing keeps the pointer"
    );
}

#[test]
fn a_late_answer_for_an_older_navigation_never_lands() {
    let (s, effects) = reduce(&State::default(), &Action::SelectDataset(InitId::new("a")));
    let Effect::LoadWorkflow { scope: old, .. } = effects[0].clone() else {
        panic!()
    };
    let (s, _) = reduce(&s, &Action::SelectDataset(InitId::new("b")));
    let (late, effects) = reduce(
        &s,
        &Action::WorkflowLoaded {
            scope: old,
            init_id: InitId::new("a"),
            workflow: Some(workflow("wa", "a")),
        },
    );
    assert!(effects.is_empty(), "no runs load for the stale answer");
    assert!(late.workflow.base.is_none());
    assert!(Arc::ptr_eq(&late.workflow, &s.workflow));
}

#[test]
fn changes_to_loaded_runs_reload_them_and_the_rest_are_ignored() {
    let s = opened();
    let change = |id: &str, rev: u64, op| {
        Action::Changed(Change {
            seq: rev,
            kind: Kind::Run,
            id: id.into(),
            op,
            revision: Revision::new(rev),
            at: Utc::now(),
            parent: Some(if id.starts_with('r') { "w1" } else { "w9" }.into()),
            actor: None,
        })
    };
    let (_, effects) = reduce(&s, &change("r1", 20, ChangeOp::Put));
    assert_eq!(
        effects,
        [Effect::Reload {
            kind: Kind::Run,
            id: "r1".into(),
            at_least: Revision::new(20),
        }]
    );
    let (same, effects) = reduce(&s, &change("someone-elses-run", 21, ChangeOp::Put));
    assert!(effects.is_empty(), "a run of another workflow is not read");
    assert_eq!(same, s);
    let (_, effects) = reduce(&s, &change("r3", 23, ChangeOp::Put));
    assert_eq!(
        effects,
        [Effect::Reload {
            kind: Kind::Run,
            id: "r3".into(),
            at_least: Revision::new(23),
        }],
        "a new run of the shown workflow is read"
    );
    let (_, effects) = reduce(&s, &change("r1", 10, ChangeOp::Put));
    assert!(
        effects.is_empty(),
        "a change already held is not read again"
    );
    let (gone, _) = reduce(&s, &change("r2", 22, ChangeOp::Delete));
    assert!(!gone.runs.runs.contains("r2"));
    let (newer, _) = reduce(&s, &Action::RunArrived(run("r1", "w1", 1, 20)));
    assert_eq!(newer.runs.runs.revision("r1"), Some(Revision::new(20)));
    let (older, _) = reduce(&newer, &Action::RunArrived(run("r1", "w1", 1, 15)));
    assert!(
        Arc::ptr_eq(&older.runs, &newer.runs),
        "an older copy never replaces a newer one"
    );
}

#[test]
fn editing_marks_dirty_and_saving_asks_with_the_base_revision() {
    let s = opened();
    let mut edit = s.workflow.base.as_ref().unwrap().value.clone();
    edit.active = true;
    let (s, effects) = reduce(&s, &Action::EditWorkflow(edit.clone()));
    assert!(effects.is_empty());
    assert!(s.workflow.dirty());
    let (s, effects) = reduce(&s, &Action::SaveWorkflow);
    assert_eq!(
        effects,
        [Effect::SaveWorkflow {
            workflow: edit.clone(),
            expect: Precondition::MustBeAt(Revision::new(5)),
        }]
    );
    let (s, _) = reduce(&s, &Action::WorkflowSaved(versioned(edit, 6)));
    assert!(!s.workflow.dirty());
    assert_eq!(s.workflow.base.as_ref().unwrap().revision, Revision::new(6));
    let (_, effects) = reduce(&s, &Action::SaveWorkflow);
    assert!(effects.is_empty(), "nothing to save");
}

#[test]
fn closing_the_dataset_expires_everything_under_it_and_signing_out_forgets_all() {
    let s = opened();
    let (closed, _) = reduce(&s, &Action::CloseDataset);
    assert_eq!(closed.dataset.id, None);
    assert!(closed.workflow.base.is_none());
    assert!(closed.runs.runs.is_empty());
    let (out, _) = reduce(&s, &Action::SignedOut);
    assert_eq!(out, State::default());
}
