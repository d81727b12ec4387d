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
    #[serde(serialize_with = "crate::dates::write_option")]
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
    #[serde(serialize_with = "crate::dates::write_option")]
    pub run_start: Option<DateTime<Utc>>,
    /// How long the latest run took, in milliseconds.
    pub run_duration_ms: Option<u64>,
    /// Activity counts.
    pub counts: Counts,
}

impl CollectionEntry {
    /// An entry for dataset `username/name` in a profile's collection.
    pub fn new(
        profile_id: impl Into<ProfileId>,
        init_id: impl Into<InitId>,
        username: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        CollectionEntry {
            profile_id: profile_id.into(),
            init_id: init_id.into(),
            username: username.into(),
            name: name.into(),
            ..CollectionEntry::default()
        }
    }

    /// When the entry last changed as its owner sees it: the later of its
    /// commit time and the end of its latest run (start plus duration);
    /// `None` when it has neither.
    pub fn updated(&self) -> Option<DateTime<Utc>> {
        let run_end = match (self.run_start, self.run_duration_ms) {
            (Some(start), Some(ms)) => i64::try_from(ms)
                .ok()
                .and_then(chrono::Duration::try_milliseconds)
                .and_then(|d| start.checked_add_signed(d))
                .or(Some(start)),
            (start, None) => start,
            (None, Some(_)) => None,
        };
        self.commit_time.max(run_end)
    }

    /// The entry's key.
    pub fn key(&self) -> CollectionKey {
        CollectionKey {
            profile_id: self.profile_id.clone(),
            init_id: self.init_id.clone(),
        }
    }
}

/// A change to an optional field: leave it, set it, or clear it.
///
/// In JSON a field left out is [`Patch::Keep`], `null` is [`Patch::Clear`]
/// and a value is [`Patch::Set`] (as in JSON Merge Patch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// Leave the field as it is.
    #[default]
    Keep,
    /// Set the field to this value.
    Set(T),
    /// Clear the field (set it to `None`).
    Clear,
}

impl<T: Clone> Patch<T> {
    /// True for [`Patch::Keep`].
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }

    /// Applies the change to a field.
    pub fn apply_to(&self, field: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Set(v) => *field = Some(v.clone()),
            Patch::Clear => *field = None,
        }
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Set(v) => v.serialize(s),
            Patch::Keep | Patch::Clear => s.serialize_none(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Patch::Set(v),
            None => Patch::Clear,
        })
    }
}

/// Amounts to add to an entry's [`Counts`] (negative to take away); a count
/// never goes below zero. Applied inside the atomic update, so concurrent
/// increments all count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountsDelta {
    /// Added to `commits`.
    pub commits: i64,
    /// Added to `runs`.
    pub runs: i64,
    /// Added to `downloads`.
    pub downloads: i64,
    /// Added to `followers`.
    pub followers: i64,
    /// Added to `open_issues`.
    pub open_issues: i64,
}

impl CountsDelta {
    /// True when it adds nothing.
    pub fn is_zero(&self) -> bool {
        *self == CountsDelta::default()
    }

    /// Adds the amounts to `counts`, never below zero.
    pub fn apply_to(&self, counts: &mut Counts) {
        fn add(count: &mut u64, delta: i64) {
            *count = if delta >= 0 {
                count.saturating_add(delta as u64)
            } else {
                count.saturating_sub(delta.unsigned_abs())
            };
        }
        add(&mut counts.commits, self.commits);
        add(&mut counts.runs, self.runs);
        add(&mut counts.downloads, self.downloads);
        add(&mut counts.followers, self.followers);
        add(&mut counts.open_issues, self.open_issues);
    }
}

/// Fields to change on every entry of one dataset, across profiles (see
/// `CollectionStore::update_by_init_id`): what a new version, a new run or
/// new activity changes. `None` and [`Patch::Keep`] leave a field alone;
/// [`Patch::Clear`] clears an optional one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionPatch {
    /// New dataset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New owner username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// New version path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// New commit time.
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub commit_time: Patch<DateTime<Utc>>,
    /// New commit title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_title: Option<String>,
    /// New commit message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    /// New body size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size: Option<u64>,
    /// New body row count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_rows: Option<u64>,
    /// New body format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_format: Option<String>,
    /// New count of validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_errors: Option<u64>,
    /// New workflow (clear it when the workflow is removed).
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub workflow_id: Patch<WorkflowId>,
    /// New latest run.
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub run_id: Patch<RunId>,
    /// New latest run status.
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub run_status: Patch<RunStatus>,
    /// New latest run start.
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub run_start: Patch<DateTime<Utc>>,
    /// New latest run duration.
    #[serde(skip_serializing_if = "Patch::is_keep")]
    pub run_duration_ms: Patch<u64>,
    /// New counts (replacing them; applied before `add_counts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Amounts added to the counts, atomically.
    #[serde(skip_serializing_if = "CountsDelta::is_zero")]
    pub add_counts: CountsDelta,
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
        set(&mut e.name, &self.name);
        set(&mut e.username, &self.username);
        set(&mut e.path, &self.path);
        self.commit_time.apply_to(&mut e.commit_time);
        set(&mut e.commit_title, &self.commit_title);
        set(&mut e.commit_message, &self.commit_message);
        set(&mut e.body_size, &self.body_size);
        set(&mut e.body_rows, &self.body_rows);
        set(&mut e.body_format, &self.body_format);
        set(&mut e.num_errors, &self.num_errors);
        self.workflow_id.apply_to(&mut e.workflow_id);
        self.run_id.apply_to(&mut e.run_id);
        self.run_status.apply_to(&mut e.run_status);
        self.run_start.apply_to(&mut e.run_start);
        self.run_duration_ms.apply_to(&mut e.run_duration_ms);
        set(&mut e.counts, &self.counts);
        self.add_counts.apply_to(&mut e.counts);
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
    /// Every entry of datasets owned by one username (in any profile's
    /// collection), by key.
    Username(String),
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
    /// By [`CollectionEntry::updated`], the later of commit time and the
    /// latest run's end; entries with neither first (one profile).
    Updated,
}

impl Record for CollectionEntry {
    type Id = CollectionKey;
    type Filter = CollectionFilter;
    type Order = CollectionOrder;
    const KIND: Kind = Kind::Collection;
    const INDEXES: &'static [IndexDef] = &[
        IndexDef::new(
            "profile_name",
            &[
                field("profile_id", FieldType::Str),
                field("name", FieldType::Str),
            ],
        ),
        IndexDef::new(
            "profile_commit_time",
            &[
                field("profile_id", FieldType::Str),
                field("commit_time", FieldType::Time),
            ],
        ),
        IndexDef::new("init_id", &[field("init_id", FieldType::Str)]),
        IndexDef::new(
            "profile_updated",
            &[
                field("profile_id", FieldType::Str),
                field("updated", FieldType::Time),
            ],
        ),
        IndexDef::new("username", &[field("username", FieldType::Str)]),
    ];

    fn id(&self) -> CollectionKey {
        self.key()
    }

    fn set_id(&mut self, id: CollectionKey) {
        self.profile_id = id.profile_id;
        self.init_id = id.init_id;
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.profile_id.check("profile_id")?;
        self.init_id.check("init_id")?;
        // An entry names its dataset as `username/name`, as Qri's refs do.
        if self.username.is_empty() {
            return Err(FieldError::new(
                "username",
                "must not be empty: the dataset owner's username",
            ));
        }
        check_len("username", &self.username, MAX_TEXT_LEN)?;
        if self.name.is_empty() {
            return Err(FieldError::new(
                "name",
                "must not be empty: the dataset's name",
            ));
        }
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
            "profile_updated" => Some(vec![
                IndexValue::str(self.profile_id.as_str()),
                IndexValue::opt_time(self.updated()),
            ]),
            "username" => Some(vec![IndexValue::str(&self.username)]),
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
                i.check("init_id")?;
                Ok(Plan::index("init_id", vec![IndexValue::str(i.as_str())]))
            }
            (CollectionFilter::Profile(p), CollectionOrder::Name) => {
                p.check("profile_id")?;
                Ok(Plan::index(
                    "profile_name",
                    vec![IndexValue::str(p.as_str())],
                ))
            }
            (CollectionFilter::Profile(p), CollectionOrder::CommitTime) => {
                p.check("profile_id")?;
                Ok(Plan::index(
                    "profile_commit_time",
                    vec![IndexValue::str(p.as_str())],
                ))
            }
            (CollectionFilter::Profile(p), CollectionOrder::Updated) => {
                p.check("profile_id")?;
                Ok(Plan::index(
                    "profile_updated",
                    vec![IndexValue::str(p.as_str())],
                ))
            }
            (CollectionFilter::Username(u), CollectionOrder::Key) => {
                if u.is_empty() {
                    return Err(FieldError::new("username", "must not be empty"));
                }
                Ok(Plan::index("username", vec![IndexValue::str(u)]))
            }
            (f, o) => Err(unsupported_order(f, &o)),
        }
    }
}

impl crate::record::Editable for CollectionEntry {}
