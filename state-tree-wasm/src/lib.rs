//! The state tree in a browser. [`Tree`] holds a `state_tree::State`; the
//! page dispatches actions into it as JSON (user intents, the answers to the
//! loads it asked for, feed changes), performs the effects it gets back with
//! `fetch`, and renders from its selectors. Everything but the JavaScript
//! boundary is [`Page`], plain Rust that native tests drive.
//!
//! Built by `scripts/build-wasm.sh` into `datastore-http/static/wasm/`.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use state_tree::{
    Action, Memo, RunRow, RunsSlice, State, WorkflowList, WorkflowRow, feed_query, reduce,
    resync_effects, run_rows, status_text, workflow_rows,
};
use wasm_bindgen::prelude::*;

/// The runs view: the selected workflow, its load status, its runs newest
/// first, and whether older ones remain to load.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct RunsView {
    workflow: Option<String>,
    status: String,
    rows: Vec<RunRow>,
    more: bool,
    loading_more: bool,
}

fn runs_view(slice: &RunsSlice) -> Arc<String> {
    let view = RunsView {
        workflow: slice.selection.id.as_ref().map(|w| w.to_string()),
        status: status_text(&slice.selection.status),
        rows: run_rows(slice),
        more: slice.next.is_some(),
        loading_more: slice.loading_more,
    };
    Arc::new(serde_json::to_string(&view).expect("a view serializes"))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct WorkflowsView {
    status: String,
    rows: Vec<WorkflowRow>,
    more: bool,
}

fn workflows_view(list: &WorkflowList) -> Arc<String> {
    let view = WorkflowsView {
        status: status_text(&list.status),
        rows: workflow_rows(list),
        more: list.next.is_some(),
    };
    Arc::new(serde_json::to_string(&view).expect("a view serializes"))
}

/// The tree and its memoized views, without the JavaScript boundary.
pub struct Page {
    state: State,
    runs: Memo<RunsSlice, Arc<String>>,
    workflows: Memo<WorkflowList, Arc<String>>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            state: State::default(),
            runs: Memo::new(runs_view),
            workflows: Memo::new(workflows_view),
        }
    }
}

impl Page {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Reduces an action given in its JSON form. Answers
    /// `{"effects": [EFFECT, ...], "changed": ["runs", "workflows", "feed"]}`:
    /// the effects to perform, and which views changed (`feed`: the feed
    /// query, so the page follows a new filter).
    pub fn dispatch(&mut self, action: &str) -> Result<String, String> {
        let action: Action =
            serde_json::from_str(action).map_err(|e| format!("not an action: {e}"))?;
        Ok(self.reduce(&action))
    }

    /// Applies a change from the feed (the `data` of an SSE `change` event).
    pub fn apply_change(&mut self, change: &str) -> Result<String, String> {
        let change = serde_json::from_str(change).map_err(|e| format!("not a change: {e}"))?;
        Ok(self.reduce(&Action::Changed(change)))
    }

    fn reduce(&mut self, action: &Action) -> String {
        let before = feed_query(&self.state);
        let (next, effects) = reduce(&self.state, action);
        let mut changed = Vec::new();
        if !Arc::ptr_eq(&next.runs, &self.state.runs) {
            changed.push("runs");
        }
        if !Arc::ptr_eq(&next.workflow_list, &self.state.workflow_list) {
            changed.push("workflows");
        }
        self.state = next;
        if feed_query(&self.state) != before {
            changed.push("feed");
        }
        json!({"effects": effects, "changed": changed}).to_string()
    }

    /// The runs view as JSON: `{"workflow", "status", "rows": [{"id",
    /// "short_id", "number", "status", "steps_done", "steps", "revision"}],
    /// "more", "loading_more"}`, rows newest first. Recomputed only when
    /// the runs slice changed.
    pub fn runs(&mut self) -> String {
        self.runs.get(&self.state.runs).to_string()
    }

    /// The workflows to pick from as JSON: `{"status", "rows": [{"id",
    /// "short_id", "init_id", "owner_id", "active"}], "more"}`.
    pub fn workflows(&mut self) -> String {
        self.workflows.get(&self.state.workflow_list).to_string()
    }

    /// The query of `GET /v1/changes` for what the tree holds, or `None`.
    pub fn feed_query(&self) -> Option<String> {
        feed_query(&self.state)
    }

    /// The loads that bring back what the tree holds (after the feed
    /// reported `reload`), as a JSON array of effects.
    pub fn resync(&self) -> String {
        serde_json::to_string(&resync_effects(&self.state)).expect("effects serialize")
    }

    /// The scope of the current runs navigation (for tests and the
    /// console), as a JavaScript number (exact below 2^53).
    pub fn runs_scope(&self) -> f64 {
        self.state.runs.selection.scope.0 as f64
    }
}

/// The tree, for JavaScript: `new Tree()`, then `dispatch`, `apply_change`
/// and the views. Methods taking JSON throw on JSON that is not an action
/// or a change.
#[wasm_bindgen]
pub struct Tree {
    page: Page,
}

#[wasm_bindgen]
impl Tree {
    /// An empty tree.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Tree {
        Tree { page: Page::new() }
    }

    /// See [`Page::dispatch`].
    pub fn dispatch(&mut self, action: &str) -> Result<String, JsError> {
        self.page.dispatch(action).map_err(|e| JsError::new(&e))
    }

    /// See [`Page::apply_change`].
    pub fn apply_change(&mut self, change: &str) -> Result<String, JsError> {
        self.page.apply_change(change).map_err(|e| JsError::new(&e))
    }

    /// See [`Page::runs`].
    pub fn runs(&mut self) -> String {
        self.page.runs()
    }

    /// See [`Page::workflows`].
    pub fn workflows(&mut self) -> String {
        self.page.workflows()
    }

    /// See [`Page::feed_query`].
    pub fn feed_query(&self) -> Option<String> {
        self.page.feed_query()
    }

    /// See [`Page::resync`].
    pub fn resync(&self) -> String {
        self.page.resync()
    }

    /// See [`Page::runs_scope`].
    pub fn runs_scope(&self) -> f64 {
        self.page.runs_scope()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(answer: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(answer).unwrap()["effects"].clone()
    }

    #[test]
    fn a_page_opens_a_workflow_and_follows_it() {
        let mut page = Page::new();
        let a = page.dispatch(r#"{"select_dataset": "ds-1"}"#).unwrap();
        assert_eq!(
            effects(&a),
            json!([{"load_workflow": {"scope": 1, "init_id": "ds-1"}}])
        );
        let a = page
            .dispatch(
                &json!({"workflow_loaded": {"scope": 1, "init_id": "ds-1", "workflow": {
                    "value": {"id": "w1", "init_id": "ds-1", "owner_id": "p1"},
                    "revision": 3, "created": "2024-01-01T00:00:00Z",
                    "updated": "2024-01-01T00:00:00Z"}}})
                .to_string(),
            )
            .unwrap();
        assert_eq!(
            effects(&a),
            json!([{"load_runs": {"scope": 1, "workflow_id": "w1"}}])
        );
        assert!(a.contains("feed"), "{a}");
        assert_eq!(
            page.feed_query().as_deref(),
            Some("kind=workflows&kind=runs&id=w1&parent=w1")
        );
        let run = |id: &str, n: u64| {
            json!({"value": {"id": id, "workflow_id": "w1", "number": n,
                "steps": [{"status": "succeeded"}, {"status": "running"}]},
                "revision": n, "created": "2024-01-01T00:00:00Z",
                "updated": "2024-01-01T00:00:00Z"})
        };
        page.dispatch(
            &json!({"runs_page_loaded": {"scope": 1, "workflow_id": "w1",
                "runs": [run("r2", 2), run("r1", 1)], "next": "c1"}})
            .to_string(),
        )
        .unwrap();
        let view: serde_json::Value = serde_json::from_str(&page.runs()).unwrap();
        assert_eq!(view["rows"][0]["id"], "r2");
        assert_eq!(view["rows"][0]["steps_done"], 1);
        assert_eq!(view["more"], true);
        let a = page
            .apply_change(
                r#"{"seq": 9, "kind": "run", "id": "r3", "op": "put", "revision": 9,
                    "at": "2024-01-01T00:00:00Z", "parent": "w1"}"#,
            )
            .unwrap();
        assert_eq!(effects(&a)[0]["reload"]["id"], "r3");
        assert!(page.dispatch("{\"nonsense\": 1}").is_err());
    }
}
