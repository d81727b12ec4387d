use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_LEN, check_len, unsupported_order};
use crate::error::FieldError;
use crate::ids::{InitId, ProfileId, RecordId, WorkflowId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, field};

/// What starts a workflow (a schedule, a dataset change).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Trigger {
    /// The trigger type (`cron`, `dataset`, ...).
    pub kind: String,
    /// Whether it fires.
    pub active: bool,
    /// Type-specific settings.
    pub config: serde_json::Value,
}

/// One step of a workflow's script.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    /// The step name, unique within the workflow.
    pub name: String,
    /// Its category (`download`, `transform`, `save`, ...).
    pub category: String,
    /// The script's language.
    pub syntax: String,
    /// The script.
    pub script: String,
}

/// What runs after a workflow (a notification, a publish).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hook {
    /// The hook type.
    pub kind: String,
    /// Type-specific settings.
    pub config: serde_json::Value,
}

/// The automation of one dataset: at most one workflow per init id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Workflow {
    /// The id; empty on put to have one generated.
    pub id: WorkflowId,
    /// The dataset this workflow automates (unique across workflows).
    pub init_id: InitId,
    /// The owning profile.
    pub owner_id: ProfileId,
    /// Whether triggers fire.
    pub active: bool,
    /// What starts it.
    pub triggers: Vec<Trigger>,
    /// What it runs.
    pub steps: Vec<Step>,
    /// What runs after it.
    pub hooks: Vec<Hook>,
    /// When it was created (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
}

impl Workflow {
    /// A new inactive workflow for a dataset, created now.
    pub fn new(init_id: impl Into<InitId>, owner_id: impl Into<ProfileId>) -> Self {
        Workflow {
            init_id: init_id.into(),
            owner_id: owner_id.into(),
            created: Utc::now(),
            ..Workflow::default()
        }
    }
}

/// What a workflow list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkflowFilter {
    /// Every workflow.
    #[default]
    All,
    /// The workflows of one owner.
    Owner(ProfileId),
    /// The active workflows.
    Active,
}

/// How a workflow list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkflowOrder {
    /// By id (only for [`WorkflowFilter::All`]).
    Id,
    /// By creation time.
    #[default]
    Created,
}

impl Record for Workflow {
    type Id = WorkflowId;
    type Filter = WorkflowFilter;
    type Order = WorkflowOrder;
    const KIND: Kind = Kind::Workflow;
    const INDEXES: &'static [IndexDef] = &[
        IndexDef::new("init_id", &[field("init_id", FieldType::Str)]).unique(),
        IndexDef::new(
            "owner",
            &[
                field("owner_id", FieldType::Str),
                field("created", FieldType::Time),
            ],
        ),
        IndexDef::new("active", &[field("active_created", FieldType::Time)]).sparse(),
        IndexDef::new("created", &[field("created", FieldType::Time)]),
    ];

    fn id(&self) -> WorkflowId {
        self.id.clone()
    }

    fn set_id(&mut self, id: WorkflowId) {
        self.id = id;
    }

    fn write_times_mut(&mut self) -> Vec<&mut DateTime<Utc>> {
        vec![&mut self.created]
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.id.check("id")?;
        self.init_id.check("init_id")?;
        self.owner_id.check("owner_id")?;
        for (i, step) in self.steps.iter().enumerate() {
            if step.name.is_empty() {
                return Err(FieldError::new(
                    format!("steps[{i}].name"),
                    "must not be empty",
                ));
            }
            check_len(&format!("steps[{i}].script"), &step.script, MAX_TEXT_LEN)?;
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if t.kind.is_empty() {
                return Err(FieldError::new(
                    format!("triggers[{i}].kind"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "init_id" => Some(vec![IndexValue::str(self.init_id.as_str())]),
            "owner" => Some(vec![
                IndexValue::str(self.owner_id.as_str()),
                IndexValue::time(self.created),
            ]),
            "active" => self.active.then(|| vec![IndexValue::time(self.created)]),
            "created" => Some(vec![IndexValue::time(self.created)]),
            _ => None,
        }
    }

    fn plan(filter: &WorkflowFilter, order: WorkflowOrder) -> Result<Plan, FieldError> {
        match (filter, order) {
            (WorkflowFilter::All, WorkflowOrder::Id) => Ok(Plan::primary()),
            (WorkflowFilter::All, WorkflowOrder::Created) => Ok(Plan::index("created", vec![])),
            (WorkflowFilter::Owner(o), WorkflowOrder::Created) => {
                o.check("owner_id")?;
                Ok(Plan::index("owner", vec![IndexValue::str(o.as_str())]))
            }
            (WorkflowFilter::Active, WorkflowOrder::Created) => Ok(Plan::index("active", vec![])),
            (f, o) => Err(unsupported_order(f, &o)),
        }
    }

    /// A workflow's feed entries name its owner.
    fn parent(&self) -> Option<String> {
        Some(self.owner_id.key())
    }

    /// A workflow keeps its owner: its runs copy the owner at create, so a
    /// new owner would leave them listed under the old one. To hand a
    /// dataset's automation to someone else, create a new workflow.
    fn fixed_fields(&self) -> Vec<(&'static str, String)> {
        vec![("owner_id", self.owner_id.to_string())]
    }
}

impl crate::record::Editable for Workflow {}
