use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_LEN, check_len, unsupported_order};
use crate::error::FieldError;
use crate::ids::{ProfileId, RecordId, RunId, WorkflowId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, Reference, field};

/// Where a run, or one step of it, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, not started.
    #[default]
    Waiting,
    /// Started, not finished.
    Running,
    /// Finished and changed the dataset.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Finished without changing anything.
    Unchanged,
    /// Not run.
    Skipped,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Waiting,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Unchanged,
        RunStatus::Skipped,
    ];

    /// The status name as stored and indexed.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Waiting => "waiting",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Unchanged => "unchanged",
            RunStatus::Skipped => "skipped",
        }
    }

    /// True once the run can change no more (not waiting or running).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Waiting | RunStatus::Running)
    }
}

/// One event a running step emitted (a log line, a progress report).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunEvent {
    /// The event type (`print`, `progress`, `error`, ...).
    pub kind: String,
    /// When it happened (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub at: DateTime<Utc>,
    /// Type-specific data.
    pub payload: serde_json::Value,
}

impl RunEvent {
    /// An event of that type, now.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        RunEvent {
            kind: kind.into(),
            at: Utc::now(),
            payload,
        }
    }
}

/// The state of one step of a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StepRun {
    /// The step name.
    pub name: String,
    /// Its category.
    pub category: String,
    /// Where it stands.
    pub status: RunStatus,
    /// When it started.
    #[serde(serialize_with = "crate::dates::write_option")]
    pub start: Option<DateTime<Utc>>,
    /// When it stopped.
    #[serde(serialize_with = "crate::dates::write_option")]
    pub stop: Option<DateTime<Utc>>,
    /// The events it emitted, in order.
    pub output: Vec<RunEvent>,
}

impl StepRun {
    /// A waiting step.
    pub fn new(name: impl Into<String>, category: impl Into<String>) -> Self {
        StepRun {
            name: name.into(),
            category: category.into(),
            ..StepRun::default()
        }
    }
}

/// One execution of a workflow. Its number (1, 2, ...) is assigned by the
/// store at create, per workflow, and never reused.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    /// The id; empty at create to have one generated.
    pub id: RunId,
    /// The workflow run (must exist).
    pub workflow_id: WorkflowId,
    /// The workflow's owner; filled in by the store at create.
    pub owner_id: ProfileId,
    /// The run's number within its workflow; assigned at create.
    pub number: u64,
    /// Where the run stands.
    pub status: RunStatus,
    /// A summary message.
    pub message: String,
    /// When it started.
    #[serde(serialize_with = "crate::dates::write_option")]
    pub start: Option<DateTime<Utc>>,
    /// When it stopped.
    #[serde(serialize_with = "crate::dates::write_option")]
    pub stop: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<u64>,
    /// Its steps.
    pub steps: Vec<StepRun>,
    /// When it was created (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
}

impl Run {
    /// A waiting run of a workflow with these steps, created now.
    pub fn new(workflow_id: impl Into<WorkflowId>, steps: Vec<StepRun>) -> Self {
        Run {
            workflow_id: workflow_id.into(),
            steps,
            created: Utc::now(),
            ..Run::default()
        }
    }

    /// The counter that hands out this workflow's run numbers.
    pub fn counter_name(workflow_id: &WorkflowId) -> String {
        format!("runs/{workflow_id}")
    }
}

/// What a run list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunFilter {
    /// Every run.
    #[default]
    All,
    /// The runs of one workflow.
    Workflow(WorkflowId),
    /// One owner's runs in one status.
    OwnerStatus(ProfileId, RunStatus),
}

/// How a run list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunOrder {
    /// The filter's own order: by number for one workflow, by creation time otherwise.
    #[default]
    Natural,
    /// By number (only for [`RunFilter::Workflow`]).
    Number,
    /// By creation time (not for [`RunFilter::Workflow`]).
    Created,
}

impl Record for Run {
    type Id = RunId;
    type Filter = RunFilter;
    type Order = RunOrder;
    const KIND: Kind = Kind::Run;
    const INDEXES: &'static [IndexDef] = &[
        IndexDef::new(
            "workflow_number",
            &[
                field("workflow_id", FieldType::Str),
                field("number", FieldType::Int),
            ],
        )
        .unique(),
        IndexDef::new(
            "owner_status",
            &[
                field("owner_id", FieldType::Str),
                field("status", FieldType::Str),
                field("created", FieldType::Time),
            ],
        ),
        IndexDef::new("created", &[field("created", FieldType::Time)]),
    ];

    fn id(&self) -> RunId {
        self.id.clone()
    }

    fn set_id(&mut self, id: RunId) {
        self.id = id;
    }

    fn write_times_mut(&mut self) -> Vec<&mut DateTime<Utc>> {
        vec![&mut self.created]
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.id.check("id")?;
        self.workflow_id.check("workflow_id")?;
        self.owner_id.check("owner_id")?;
        if self.number == 0 {
            return Err(FieldError::new(
                "number",
                "must be 1 or more; runs().create() assigns it",
            ));
        }
        if self.number > i64::MAX as u64 {
            return Err(FieldError::new("number", "is too large"));
        }
        check_len("message", &self.message, MAX_TEXT_LEN)?;
        for (i, step) in self.steps.iter().enumerate() {
            if step.name.is_empty() {
                return Err(FieldError::new(
                    format!("steps[{i}].name"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "workflow_number" => Some(vec![
                IndexValue::str(self.workflow_id.as_str()),
                IndexValue::Int(self.number as i64),
            ]),
            "owner_status" => Some(vec![
                IndexValue::str(self.owner_id.as_str()),
                IndexValue::str(self.status.as_str()),
                IndexValue::time(self.created),
            ]),
            "created" => Some(vec![IndexValue::time(self.created)]),
            _ => None,
        }
    }

    fn plan(filter: &RunFilter, order: RunOrder) -> Result<Plan, FieldError> {
        match (filter, order) {
            (RunFilter::All, RunOrder::Natural | RunOrder::Created) => {
                Ok(Plan::index("created", vec![]))
            }
            (RunFilter::Workflow(w), RunOrder::Natural | RunOrder::Number) => {
                w.check("workflow_id")?;
                Ok(Plan::index(
                    "workflow_number",
                    vec![IndexValue::str(w.as_str())],
                ))
            }
            (RunFilter::OwnerStatus(o, s), RunOrder::Natural | RunOrder::Created) => {
                o.check("owner_id")?;
                Ok(Plan::index(
                    "owner_status",
                    vec![IndexValue::str(o.as_str()), IndexValue::str(s.as_str())],
                ))
            }
            (f, o) => Err(unsupported_order(f, &o)),
        }
    }

    fn parent(&self) -> Option<String> {
        Some(self.workflow_id.key())
    }

    fn references(&self) -> Vec<Reference> {
        vec![Reference {
            field: "workflow_id",
            kind: Kind::Workflow,
            key: self.workflow_id.key(),
        }]
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![(Run::counter_name(&self.workflow_id), self.number)]
    }

    /// A run's identity: its workflow, its number there and its owner (the
    /// workflow's, copied at create) never change, so a put never moves a
    /// run or changes a workflow's count.
    fn fixed_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("workflow_id", self.workflow_id.to_string()),
            ("number", self.number.to_string()),
            ("owner_id", self.owner_id.to_string()),
        ]
    }
}

impl crate::record::Editable for Run {}
