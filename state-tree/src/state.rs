//! The root state, its slices, the actions, and the reducers. Every slice
//! is owned by one reducer; a reducer that changes nothing returns the same
//! `Arc`, so change detection is a pointer comparison. Effects (loads,
//! saves) come back as data: `reduce` does no I/O.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use datastore_core::{
    Change, ChangeOp, CollectionEntry, InitId, Kind, Precondition, ProfileId, Revision, Run, RunId,
    Versioned, Workflow, WorkflowId,
};

use crate::entity::{EntityTable, Upsert};
use crate::one_of_many::{LoadStatus, Scope, Selection};

/// Who is signed in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Session {
    /// The signed-in profile.
    pub profile: Option<ProfileId>,
}

/// The signed-in profile's collection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CollectionSlice {
    /// Entries by init id.
    pub entries: EntityTable<CollectionEntry>,
    /// Their load status.
    pub status: LoadStatus,
}

/// The workflow of the selected dataset, being edited.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkflowSlice {
    /// Which dataset's workflow, and its load status.
    pub selection: Selection<InitId>,
    /// The copy last loaded or saved (the clean base).
    pub base: Option<Versioned<Workflow>>,
    /// The edited copy, when it differs from the base.
    pub draft: Option<Workflow>,
}

impl WorkflowSlice {
    /// True when there are unsaved edits.
    pub fn dirty(&self) -> bool {
        self.draft.is_some()
    }
}

/// The runs of the shown workflow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunsSlice {
    /// Which workflow, and the load status.
    pub selection: Selection<WorkflowId>,
    /// Runs by id.
    pub runs: EntityTable<Run>,
    /// Where the next, older page of runs starts, when only the newest
    /// pages are loaded ([`Action::RunsPageLoaded`]); `None` when every run
    /// is.
    pub next: Option<String>,
    /// True while an older page is being loaded ([`Action::MoreRuns`]).
    pub loading_more: bool,
}

/// The workflows to pick from: the first page of every workflow, by id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkflowList {
    /// Workflows by id.
    pub workflows: EntityTable<Workflow>,
    /// Their load status.
    pub status: LoadStatus,
    /// Where the next page starts, when there are more than were loaded.
    pub next: Option<String>,
}

/// The root state: one `Arc` per slice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Who is signed in.
    pub session: Arc<Session>,
    /// The signed-in profile's collection.
    pub collection: Arc<CollectionSlice>,
    /// The one selected dataset (one of the collection).
    pub dataset: Arc<Selection<InitId>>,
    /// Its workflow, being edited.
    pub workflow: Arc<WorkflowSlice>,
    /// That workflow's runs.
    pub runs: Arc<RunsSlice>,
    /// The one run whose log is shown.
    pub run_log: Arc<Selection<RunId>>,
    /// The workflows to pick from.
    pub workflow_list: Arc<WorkflowList>,
}

/// Something that happened: a user's intent or a store's answer. Its JSON
/// form (serde's, snake case: `{"select_dataset": "ds-1"}`,
/// `"more_runs"`) is what a browser page dispatches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// A profile signed in.
    SignedIn(ProfileId),
    /// The profile signed out: everything is forgotten.
    SignedOut,
    /// The collection arrived.
    CollectionLoaded(Vec<Versioned<CollectionEntry>>),
    /// The user opened a dataset.
    SelectDataset(InitId),
    /// The user left the dataset.
    CloseDataset,
    /// The dataset's workflow arrived (or it has none).
    WorkflowLoaded {
        /// The navigation it answers.
        scope: Scope,
        /// The dataset.
        init_id: InitId,
        /// Its workflow.
        workflow: Option<Versioned<Workflow>>,
    },
    /// The user edited the workflow.
    EditWorkflow(Workflow),
    /// The user saves the edits.
    SaveWorkflow,
    /// The store stored the workflow.
    WorkflowSaved(Versioned<Workflow>),
    /// A workflow's runs arrived.
    RunsLoaded {
        /// The navigation it answers.
        scope: Scope,
        /// The workflow.
        workflow_id: WorkflowId,
        /// Its runs.
        runs: Vec<Versioned<Run>>,
    },
    /// The newest page of a workflow's runs arrived (an answer to
    /// [`Effect::LoadRuns`] that loads a page rather than every run): like
    /// `RunsLoaded`, and `next` says where the older runs start.
    RunsPageLoaded {
        /// The navigation it answers.
        scope: Scope,
        /// The workflow.
        workflow_id: WorkflowId,
        /// Its newest runs.
        runs: Vec<Versioned<Run>>,
        /// Where the next, older page starts; `None` when that was all.
        next: Option<String>,
    },
    /// The user wants older runs (scrolled to the end of the list).
    MoreRuns,
    /// An older page of runs arrived (the answer to
    /// [`Effect::LoadMoreRuns`]).
    MoreRunsLoaded {
        /// The navigation it answers.
        scope: Scope,
        /// The workflow.
        workflow_id: WorkflowId,
        /// The runs of that page.
        runs: Vec<Versioned<Run>>,
        /// Where the page after it starts; `None` when that was the last.
        next: Option<String>,
    },
    /// The user wants the list of workflows to pick from.
    ListWorkflows,
    /// The list of workflows arrived.
    WorkflowListLoaded {
        /// The first page of workflows.
        workflows: Vec<Versioned<Workflow>>,
        /// Where the next page starts, if there are more.
        next: Option<String>,
    },
    /// The list of workflows could not be loaded: this is why.
    WorkflowListFailed(String),
    /// The user opened a run's log.
    SelectRun(RunId),
    /// A load failed.
    LoadFailed {
        /// The navigation it answers.
        scope: Scope,
        /// What failed.
        message: String,
    },
    /// A record arrived (a reload after a change): upserted if newer.
    RunArrived(Versioned<Run>),
    /// The feed reported a change.
    Changed(Change),
}

/// Work for the driver: reads, writes and follows, as data. Its JSON form
/// (serde's, snake case: `{"load_runs": {"scope": 2, "workflow_id": "w1"}}`)
/// is what a browser page performs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Load a profile's collection.
    LoadCollection(ProfileId),
    /// Load a dataset's workflow.
    LoadWorkflow {
        /// The navigation this answers.
        scope: Scope,
        /// The dataset.
        init_id: InitId,
    },
    /// Load a workflow's runs, newest first: every run (answer with
    /// [`Action::RunsLoaded`]) or the newest page (answer with
    /// [`Action::RunsPageLoaded`]).
    LoadRuns {
        /// The navigation this answers.
        scope: Scope,
        /// The workflow.
        workflow_id: WorkflowId,
    },
    /// Load the next, older page of a workflow's runs (answer with
    /// [`Action::MoreRunsLoaded`]).
    LoadMoreRuns {
        /// The navigation this answers.
        scope: Scope,
        /// The workflow.
        workflow_id: WorkflowId,
        /// Where the page starts.
        cursor: String,
    },
    /// Load the list of workflows to pick from (answer with
    /// [`Action::WorkflowListLoaded`]).
    LoadWorkflowList,
    /// Save a workflow with a precondition.
    SaveWorkflow {
        /// The edited workflow.
        workflow: Workflow,
        /// The revision the edit was made on.
        expect: Precondition,
    },
    /// Read one loaded record again (it changed in the store).
    Reload {
        /// Its kind.
        kind: Kind,
        /// Its id.
        id: String,
        /// The revision the change announced: a read answering with an
        /// older one (a cache or replica not caught up yet) is tried again.
        at_least: Revision,
    },
}

/// Applies an action: the new state and the effects it asks for. Each
/// slice's reducer writes only its slice; it may read the others as they
/// were before the action.
pub fn reduce(state: &State, action: &Action) -> (State, Vec<Effect>) {
    let mut effects = Vec::new();
    if matches!(action, Action::SignedOut) {
        return (State::default(), effects);
    }
    let session = session(&state.session, action, &mut effects);
    let collection = collection(&state.collection, action);
    let dataset = dataset(&state.dataset, action);
    let workflow = workflow(&state.workflow, action, &mut effects);
    let runs = runs(&state.runs, &state.workflow, action, &mut effects);
    let run_log = run_log(&state.run_log, action);
    let workflow_list = workflow_list(&state.workflow_list, action, &mut effects);
    let next = State {
        session,
        collection,
        dataset,
        workflow,
        runs,
        run_log,
        workflow_list,
    };
    (next, effects)
}

fn keep<T>(old: &Arc<T>, new: Option<T>) -> Arc<T> {
    new.map(Arc::new).unwrap_or_else(|| old.clone())
}

fn session(slice: &Arc<Session>, action: &Action, effects: &mut Vec<Effect>) -> Arc<Session> {
    match action {
        Action::SignedIn(p) if slice.profile.as_ref() != Some(p) => {
            effects.push(Effect::LoadCollection(p.clone()));
            Arc::new(Session {
                profile: Some(p.clone()),
            })
        }
        _ => slice.clone(),
    }
}

fn collection(slice: &Arc<CollectionSlice>, action: &Action) -> Arc<CollectionSlice> {
    match action {
        Action::SignedIn(_) => keep(
            slice,
            (slice.status != LoadStatus::Loading).then(|| CollectionSlice {
                entries: EntityTable::new(),
                status: LoadStatus::Loading,
            }),
        ),
        Action::CollectionLoaded(entries) => {
            let mut table = EntityTable::new();
            for e in entries {
                table = table
                    .upsert(e.value.init_id.as_str(), e.clone(), Upsert::Replace)
                    .unwrap_or(table);
            }
            Arc::new(CollectionSlice {
                entries: table,
                status: LoadStatus::Loaded,
            })
        }
        _ => slice.clone(),
    }
}

fn dataset(slice: &Arc<Selection<InitId>>, action: &Action) -> Arc<Selection<InitId>> {
    match action {
        Action::SelectDataset(id) => keep(slice, slice.select(id.clone()).map(|(s, _)| s)),
        Action::CloseDataset => keep(slice, slice.clear()),
        _ => slice.clone(),
    }
}

fn workflow(
    slice: &Arc<WorkflowSlice>,
    action: &Action,
    effects: &mut Vec<Effect>,
) -> Arc<WorkflowSlice> {
    match action {
        Action::SelectDataset(init_id) => match slice.selection.select(init_id.clone()) {
            Some((selection, scope)) => {
                effects.push(Effect::LoadWorkflow {
                    scope,
                    init_id: init_id.clone(),
                });
                Arc::new(WorkflowSlice {
                    selection,
                    base: None,
                    draft: None,
                })
            }
            None => slice.clone(),
        },
        Action::CloseDataset => keep(
            slice,
            slice.selection.clear().map(|selection| WorkflowSlice {
                selection,
                base: None,
                draft: None,
            }),
        ),
        Action::WorkflowLoaded {
            scope,
            init_id,
            workflow,
        } if slice.selection.accepts(*scope, init_id) => {
            // A reload for the current navigation refreshes the base too.
            let selection = slice
                .selection
                .finish(*scope, init_id, Ok(()))
                .unwrap_or_else(|| slice.selection.clone());
            let draft = slice
                .draft
                .clone()
                .filter(|d| workflow.as_ref().is_none_or(|w| &w.value != d));
            let next = WorkflowSlice {
                selection,
                base: workflow.clone(),
                draft,
            };
            keep(slice, (next != **slice).then_some(next))
        }
        Action::LoadFailed { scope, message } if slice.selection.scope == *scope => {
            let id = slice.selection.id.clone();
            match id.and_then(|id| slice.selection.finish(*scope, &id, Err(message.clone()))) {
                Some(selection) => Arc::new(WorkflowSlice {
                    selection,
                    ..(**slice).clone()
                }),
                None => slice.clone(),
            }
        }
        Action::EditWorkflow(w) => {
            let unchanged = slice.base.as_ref().is_some_and(|b| &b.value == w);
            let draft = (!unchanged).then(|| w.clone());
            if draft == slice.draft {
                return slice.clone();
            }
            Arc::new(WorkflowSlice {
                draft,
                ..(**slice).clone()
            })
        }
        Action::SaveWorkflow => {
            if let Some(draft) = &slice.draft {
                let expect = slice
                    .base
                    .as_ref()
                    .map_or(Precondition::MustNotExist, |b| b.expect());
                effects.push(Effect::SaveWorkflow {
                    workflow: draft.clone(),
                    expect,
                });
            }
            slice.clone()
        }
        Action::WorkflowSaved(saved)
            if slice.selection.id.as_ref() == Some(&saved.value.init_id) =>
        {
            let draft = slice.draft.clone().filter(|d| d != &saved.value);
            Arc::new(WorkflowSlice {
                base: Some(saved.clone()),
                draft,
                ..(**slice).clone()
            })
        }
        Action::Changed(c) if c.kind == Kind::Workflow => {
            let loaded = slice
                .base
                .as_ref()
                .is_some_and(|b| b.value.id.as_str() == c.id);
            if loaded && slice.base.as_ref().is_some_and(|b| b.revision < c.revision) {
                effects.push(Effect::Reload {
                    kind: Kind::Workflow,
                    id: c.id.clone(),
                    at_least: c.revision,
                });
            }
            slice.clone()
        }
        _ => slice.clone(),
    }
}

/// Reads the workflow slice (before this action) to know whether a loaded
/// workflow answers the current navigation; writes only its own slice.
fn runs(
    slice: &Arc<RunsSlice>,
    workflow: &WorkflowSlice,
    action: &Action,
    effects: &mut Vec<Effect>,
) -> Arc<RunsSlice> {
    match action {
        Action::WorkflowLoaded {
            workflow: Some(w),
            scope,
            init_id,
        } if workflow.selection.accepts(*scope, init_id) => {
            match slice.selection.select(w.value.id.clone()) {
                Some((selection, scope)) => {
                    effects.push(Effect::LoadRuns {
                        scope,
                        workflow_id: w.value.id.clone(),
                    });
                    Arc::new(RunsSlice {
                        selection,
                        ..RunsSlice::default()
                    })
                }
                None => slice.clone(),
            }
        }
        Action::CloseDataset | Action::SelectDataset(_) => keep(
            slice,
            slice.selection.clear().map(|selection| RunsSlice {
                selection,
                ..RunsSlice::default()
            }),
        ),
        Action::RunsLoaded {
            scope,
            workflow_id,
            runs,
        } if slice.selection.accepts(*scope, workflow_id) => {
            runs_loaded(slice, *scope, workflow_id, runs, None)
        }
        Action::RunsPageLoaded {
            scope,
            workflow_id,
            runs,
            next,
        } if slice.selection.accepts(*scope, workflow_id) => {
            runs_loaded(slice, *scope, workflow_id, runs, next.clone())
        }
        Action::MoreRuns => match (&slice.selection.id, &slice.next) {
            (Some(workflow_id), Some(cursor))
                if slice.selection.status == LoadStatus::Loaded && !slice.loading_more =>
            {
                effects.push(Effect::LoadMoreRuns {
                    scope: slice.selection.scope,
                    workflow_id: workflow_id.clone(),
                    cursor: cursor.clone(),
                });
                Arc::new(RunsSlice {
                    loading_more: true,
                    ..(**slice).clone()
                })
            }
            _ => slice.clone(),
        },
        Action::MoreRunsLoaded {
            scope,
            workflow_id,
            runs,
            next,
        } if slice.selection.accepts(*scope, workflow_id) && slice.loading_more => {
            let mut table = slice.runs.clone();
            for r in runs {
                table = table
                    .upsert(r.value.id.as_str(), r.clone(), Upsert::IfNewerRevision)
                    .unwrap_or(table);
            }
            Arc::new(RunsSlice {
                selection: slice.selection.clone(),
                runs: table,
                next: next.clone(),
                loading_more: false,
            })
        }
        Action::RunArrived(run) if slice.selection.id.as_ref() == Some(&run.value.workflow_id) => {
            // While older pages are not loaded, a run older than every one
            // held belongs to them: it comes with its page.
            let older_than_loaded = slice.next.is_some()
                && !slice.runs.contains(run.value.id.as_str())
                && slice
                    .runs
                    .values()
                    .map(|r| r.value.number)
                    .min()
                    .is_some_and(|lowest| run.value.number < lowest);
            if older_than_loaded {
                return slice.clone();
            }
            match slice
                .runs
                .upsert(run.value.id.as_str(), run.clone(), Upsert::IfNewerRevision)
            {
                Some(table) => Arc::new(RunsSlice {
                    runs: table,
                    ..(**slice).clone()
                }),
                None => slice.clone(),
            }
        }
        Action::Changed(c) if c.kind == Kind::Run => match (c.op, slice.runs.revision(&c.id)) {
            // Only runs this client loaded are read again, and only if newer.
            (ChangeOp::Put, Some(held)) if held < c.revision => {
                effects.push(Effect::Reload {
                    kind: Kind::Run,
                    id: c.id.clone(),
                    at_least: c.revision,
                });
                slice.clone()
            }
            // A new run of the workflow shown: its parent says it is ours.
            (ChangeOp::Put, None)
                if slice.selection.id.as_ref().map(|w| w.as_str()) == c.parent.as_deref() =>
            {
                effects.push(Effect::Reload {
                    kind: Kind::Run,
                    id: c.id.clone(),
                    at_least: c.revision,
                });
                slice.clone()
            }
            (ChangeOp::Delete, Some(held)) if held < c.revision => match slice.runs.remove(&c.id) {
                Some(table) => Arc::new(RunsSlice {
                    runs: table,
                    ..(**slice).clone()
                }),
                None => slice.clone(),
            },
            _ => slice.clone(),
        },
        _ => slice.clone(),
    }
}

/// The answer to a runs load for the current navigation (a reload for it
/// too): the table is replaced, and `next` says whether older runs remain.
fn runs_loaded(
    slice: &Arc<RunsSlice>,
    scope: Scope,
    workflow_id: &WorkflowId,
    runs: &[Versioned<Run>],
    next: Option<String>,
) -> Arc<RunsSlice> {
    let selection = slice
        .selection
        .finish(scope, workflow_id, Ok(()))
        .unwrap_or_else(|| slice.selection.clone());
    let mut table = EntityTable::new();
    for r in runs {
        table = table
            .upsert(r.value.id.as_str(), r.clone(), Upsert::IfNewerRevision)
            .unwrap_or(table);
    }
    let next = RunsSlice {
        selection,
        runs: table,
        next,
        loading_more: false,
    };
    keep(slice, (next != **slice).then_some(next))
}

fn workflow_list(
    slice: &Arc<WorkflowList>,
    action: &Action,
    effects: &mut Vec<Effect>,
) -> Arc<WorkflowList> {
    match action {
        Action::ListWorkflows if slice.status != LoadStatus::Loading => {
            effects.push(Effect::LoadWorkflowList);
            Arc::new(WorkflowList {
                status: LoadStatus::Loading,
                ..(**slice).clone()
            })
        }
        Action::WorkflowListLoaded { workflows, next } => {
            let mut table = EntityTable::new();
            for w in workflows {
                table = table
                    .upsert(w.value.id.as_str(), w.clone(), Upsert::Replace)
                    .unwrap_or(table);
            }
            let list = WorkflowList {
                workflows: table,
                status: LoadStatus::Loaded,
                next: next.clone(),
            };
            keep(slice, (list != **slice).then_some(list))
        }
        Action::WorkflowListFailed(message) => Arc::new(WorkflowList {
            status: LoadStatus::Failed(message.clone()),
            ..(**slice).clone()
        }),
        // A workflow read after a change is newer than the listed copy.
        Action::WorkflowSaved(w) if slice.workflows.contains(w.value.id.as_str()) => keep(
            slice,
            slice
                .workflows
                .upsert(w.value.id.as_str(), w.clone(), Upsert::IfNewerRevision)
                .map(|workflows| WorkflowList {
                    workflows,
                    ..(**slice).clone()
                }),
        ),
        _ => slice.clone(),
    }
}

fn run_log(slice: &Arc<Selection<RunId>>, action: &Action) -> Arc<Selection<RunId>> {
    match action {
        Action::SelectRun(id) => keep(slice, slice.select(id.clone()).map(|(s, _)| s)),
        Action::CloseDataset | Action::SelectDataset(_) => keep(slice, slice.clear()),
        _ => slice.clone(),
    }
}
