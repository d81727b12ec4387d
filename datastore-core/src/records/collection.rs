use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_LEN, check_len, unsupported_order};
use crate::error::FieldError;
use crate::ids::{CollectionKey, InitId, ProfileId, RecordId, RunId, WorkflowId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, field};
use crate::records::RunStatus;

/// Activity counts shown beside a collection entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Versions committed.
    pub commits: u64,
    /// Workflow runs.
    pub runs: u64,
    /// Downloads.
    pub downloads: u64,
    /// Followers.
    pub followers: u64,
    /// Open issues.
    pub open_issues: u64,
}

/// One dataset as it appears in one profile's collection (Qri's VersionInfo),
/// keyed by (profile id, init id).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionEntry {
    /// The profile whose collection this is.
    pub profile_id: ProfileId,
    /// The dataset.
    pub init_id: InitId,
    /// The dataset owner's username.
    pub username: String,
    /// The dataset name.
    pub name: String,
    /// The path of the version shown.
    pub path: String,
    /// When that version was committed.
    pub commit_time: Option<DateTime<Utc>>,
    /// Its commit title.
    pub commit_title: String,
    /// Its commit message.
    pub commit_message: String,
    /// Body size in bytes.
    pub body_size: u64,
    /// Body rows.
    pub body_rows: u64,
    /// Body format (`csv`, `json`, ...).
    pub body_format: String,
    /// Validation errors in the body.
    pub num_errors: u64,
    /// The workflow automating the dataset.
    pub workflow_id: Option<WorkflowId>,
    /// The latest run.
    pub run_id: Option<RunId>,
    /// The latest run's status.
    pub run_status: Option<RunStatus>,
    /// When the latest run started.
    pub run_start: Option<DateTime<Utc>>,
    /// How long the latest run took, in milliseconds.
    pub run_duration_ms: Option<u64>,
    /// Activity counts.
    pub counts: Counts,
}

impl CollectionEntry {
    /// An entry for a dataset in a profile's collection.
    pub fn new(
        profile_id: impl Into<ProfileId>,
        init_id: impl Into<InitId>,
        name: impl Into<String>,
    ) -> Self {
        CollectionEntry {
            profile_id: profile_id.into(),
            init_id: init_id.into(),
            name: name.into(),
            ..CollectionEntry::default()
        }
    }

    /// The entry's key.
    pub fn key(&self) -> CollectionKey {
        CollectionKey {
            profile_id: self.profile_id.clone(),
            init_id: self.init_id.clone(),
        }
    }
}

/// Fields to set on every entry of one dataset, across profiles
/// (see `CollectionStore::update_by_init_id`). `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionPatch {
    /// New dataset name.
    pub name: Option<String>,
    /// New owner username.
    pub username: Option<String>,
    /// New version path.
    pub path: Option<String>,
    /// New commit time.
    pub commit_time: Option<DateTime<Utc>>,
    /// New commit title.
    pub commit_title: Option<String>,
    /// New workflow.
    pub workflow_id: Option<WorkflowId>,
    /// New latest run.
    pub run_id: Option<RunId>,
    /// New latest run status.
    pub run_status: Option<RunStatus>,
    /// New latest run start.
    pub run_start: Option<DateTime<Utc>>,
    /// New latest run duration.
    pub run_duration_ms: Option<u64>,
    /// New counts.
    pub counts: Option<Counts>,
}

impl CollectionPatch {
    /// Applies the patch; returns true when anything changed.
    pub fn apply(&self, e: &mut CollectionEntry) -> bool {
        let before = e.clone();
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        fn set_opt<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if src.is_some() {
                *dst = src.clone();
            }
        }
        set(&mut e.name, &self.name);
        set(&mut e.username, &self.username);
        set(&mut e.path, &self.path);
        set_opt(&mut e.commit_time, &self.commit_time);
        set(&mut e.commit_title, &self.commit_title);
        set_opt(&mut e.workflow_id, &self.workflow_id);
        set_opt(&mut e.run_id, &self.run_id);
        set_opt(&mut e.run_status, &self.run_status);
        set_opt(&mut e.run_start, &self.run_start);
        set_opt(&mut e.run_duration_ms, &self.run_duration_ms);
        set(&mut e.counts, &self.counts);
        *e != before
    }
}

/// What a collection list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CollectionFilter {
    /// Every entry of every profile.
    #[default]
    All,
    /// One profile's entries.
    Profile(ProfileId),
    /// Every profile's entry for one dataset.
    InitId(InitId),
}

/// How a collection list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CollectionOrder {
    /// By key (profile, then dataset); for [`CollectionFilter::All`] and
    /// [`CollectionFilter::InitId`].
    #[default]
    Key,
    /// By dataset name (one profile).
    Name,
    /// By commit time, entries never committed first (one profile).
    CommitTime,
}

impl Record for CollectionEntry {
    type Id = CollectionKey;
    type Filter = CollectionFilter;
    type Order = CollectionOrder;
    const KIND: Kind = Kind::Collection;
    const INDEXES: &'static [IndexDef] = &[
        IndexDef {
            name: "profile_name",
            fields: &[
                field("profile_id", FieldType::Str),
                field("name", FieldType::Str),
            ],
            unique: false,
            sparse: false,
        },
        IndexDef {
            name: "profile_commit_time",
            fields: &[
                field("profile_id", FieldType::Str),
                field("commit_time", FieldType::Time),
            ],
            unique: false,
            sparse: false,
        },
        IndexDef {
            name: "init_id",
            fields: &[field("init_id", FieldType::Str)],
            unique: false,
            sparse: false,
        },
    ];

    fn id(&self) -> CollectionKey {
        self.key()
    }

    fn id_is_empty(&self) -> bool {
        self.profile_id.is_empty() && self.init_id.is_empty()
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.profile_id.check("profile_id")?;
        self.init_id.check("init_id")?;
        check_len("name", &self.name, MAX_TEXT_LEN)?;
        check_len("commit_title", &self.commit_title, MAX_TEXT_LEN)?;
        check_len("commit_message", &self.commit_message, MAX_TEXT_LEN)?;
        if let Some(w) = &self.workflow_id {
            w.check("workflow_id")?;
        }
        if let Some(r) = &self.run_id {
            r.check("run_id")?;
        }
        Ok(())
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "profile_name" => Some(vec![
                IndexValue::str(self.profile_id.as_str()),
                IndexValue::str(&self.name),
            ]),
            "profile_commit_time" => Some(vec![
                IndexValue::str(self.profile_id.as_str()),
                IndexValue::opt_time(self.commit_time),
            ]),
            "init_id" => Some(vec![IndexValue::str(self.init_id.as_str())]),
            _ => None,
        }
    }

    fn parent(&self) -> Option<String> {
        Some(self.profile_id.key())
    }

    fn plan(filter: &CollectionFilter, order: CollectionOrder) -> Result<Plan, FieldError> {
        match (filter, order) {
            (CollectionFilter::All, CollectionOrder::Key) => Ok(Plan::primary()),
            (CollectionFilter::InitId(i), CollectionOrder::Key) => {
                Ok(Plan::index("init_id", vec![IndexValue::str(i.as_str())]))
            }
            (CollectionFilter::Profile(p), CollectionOrder::Name) => Ok(Plan::index(
                "profile_name",
                vec![IndexValue::str(p.as_str())],
            )),
            (CollectionFilter::Profile(p), CollectionOrder::CommitTime) => Ok(Plan::index(
                "profile_commit_time",
                vec![IndexValue::str(p.as_str())],
            )),
            (f, o) => Err(unsupported_order(f, &o)),
        }
    }
}

impl crate::record::Editable for CollectionEntry {}
