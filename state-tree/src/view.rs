//! Selectors for a view: what a list of runs or of workflows shows, derived
//! from the tree's slices. Each is a plain function of one slice, so it fits
//! [`Memo`](crate::Memo), and its rows serialize to JSON for a browser page.

use datastore_core::{FeedFilter, Kind, Revision, RunStatus};
use serde::Serialize;

use crate::one_of_many::LoadStatus;
use crate::state::{Effect, RunsSlice, State, WorkflowList};

/// An id cut for display: ids up to 12 characters whole, longer ones (a
/// generated UUIDv7) as `…` and their last 8 characters, which are random
/// (the first ones are the creation time, shared by runs made together).
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 12 {
        return id.to_string();
    }
    let tail: String = chars[chars.len() - 8..].iter().collect();
    format!("…{tail}")
}

/// One row of a run list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// The run's id.
    pub id: String,
    /// The id for display ([`short_id`]).
    pub short_id: String,
    /// Its number within its workflow.
    pub number: u64,
    /// Where it stands.
    pub status: RunStatus,
    /// How many of its steps are finished ([`RunStatus::is_finished`]).
    pub steps_done: usize,
    /// How many steps it has.
    pub steps: usize,
    /// The revision held.
    pub revision: Revision,
}

/// The runs held, newest (highest number) first.
pub fn run_rows(slice: &RunsSlice) -> Vec<RunRow> {
    let mut rows: Vec<RunRow> = slice
        .runs
        .values()
        .map(|r| RunRow {
            id: r.value.id.to_string(),
            short_id: short_id(r.value.id.as_str()),
            number: r.value.number,
            status: r.value.status,
            steps_done: r
                .value
                .steps
                .iter()
                .filter(|s| s.status.is_finished())
                .count(),
            steps: r.value.steps.len(),
            revision: r.revision,
        })
        .collect();
    rows.sort_by(|a, b| b.number.cmp(&a.number).then_with(|| a.id.cmp(&b.id)));
    rows
}

/// One row of the list of workflows to pick from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowRow {
    /// The workflow's id.
    pub id: String,
    /// The id for display ([`short_id`]).
    pub short_id: String,
    /// The dataset it automates (what selecting it opens).
    pub init_id: String,
    /// Its owner.
    pub owner_id: String,
    /// Whether it is active.
    pub active: bool,
}

/// The workflows listed, by id.
pub fn workflow_rows(list: &WorkflowList) -> Vec<WorkflowRow> {
    list.workflows
        .values()
        .map(|w| WorkflowRow {
            id: w.value.id.to_string(),
            short_id: short_id(w.value.id.as_str()),
            init_id: w.value.init_id.to_string(),
            owner_id: w.value.owner_id.to_string(),
            active: w.value.active,
        })
        .collect()
}

/// A load status as a word: `empty`, `loading`, `loaded`, or `failed: WHY`.
pub fn status_text(status: &LoadStatus) -> String {
    match status {
        LoadStatus::Empty => "empty".into(),
        LoadStatus::Loading => "loading".into(),
        LoadStatus::Loaded => "loaded".into(),
        LoadStatus::Failed(why) => format!("failed: {why}"),
    }
}

/// The changes a tree needs to stay live: the signed-in profile's collection
/// entries, the loaded workflow, the runs of the workflow shown and the run
/// whose log is shown. `None` when it holds nothing that changes.
pub fn feed_filter(state: &State) -> Option<FeedFilter> {
    let mut filter = FeedFilter::all();
    if let Some(profile) = &state.session.profile {
        filter = filter.kind(Kind::Collection).parent(profile.as_str());
    }
    if let Some(base) = &state.workflow.base {
        filter = filter.kind(Kind::Workflow).id(base.value.id.as_str());
    }
    if let Some(workflow) = &state.runs.selection.id {
        filter = filter.kind(Kind::Run).parent(workflow.as_str());
    }
    if let Some(run) = &state.run_log.id {
        filter = filter.kind(Kind::Run).id(run.as_str());
    }
    (!filter.is_all()).then_some(filter)
}

/// [`feed_filter`] as the query of `GET /v1/changes` (`kind=workflows&
/// kind=runs&id=w1&parent=w1`, values percent-encoded); `None` when the tree
/// holds nothing that changes.
pub fn feed_query(state: &State) -> Option<String> {
    let filter = feed_filter(state)?;
    let mut terms = Vec::new();
    terms.extend(filter.kinds.iter().map(|k| format!("kind={}", k.as_str())));
    terms.extend(filter.ids.iter().map(|i| format!("id={}", encode(i))));
    terms.extend(
        filter
            .parents
            .iter()
            .map(|p| format!("parent={}", encode(p))),
    );
    Some(terms.join("&"))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The loads that bring back what the tree holds, under its current scopes
/// (and nothing else): the answer to a lost feed, after which the client
/// follows from the head.
pub fn resync_effects(state: &State) -> Vec<Effect> {
    let mut effects = Vec::new();
    if let Some(profile) = &state.session.profile {
        effects.push(Effect::LoadCollection(profile.clone()));
    }
    let workflow = &state.workflow.selection;
    if let Some(init_id) = &workflow.id {
        effects.push(Effect::LoadWorkflow {
            scope: workflow.scope,
            init_id: init_id.clone(),
        });
    }
    let runs = &state.runs.selection;
    if let Some(workflow_id) = &runs.id {
        effects.push(Effect::LoadRuns {
            scope: runs.scope,
            workflow_id: workflow_id.clone(),
        });
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids() {
        assert_eq!(short_id("r-first"), "r-first");
        assert_eq!(
            short_id("0190a5c2-7e1b-7c3d-9f00-1234abcd5678"),
            "…abcd5678"
        );
    }
}
