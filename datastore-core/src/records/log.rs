use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_LEN, check_len};
use crate::error::FieldError;
use crate::ids::{LogEntryKey, LogId, RecordId};
use crate::record::{FieldType, IndexDef, IndexValue, Kind, Plan, Record, field};

/// What a log operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Created something.
    #[default]
    Init,
    /// Changed something.
    Amend,
    /// Removed something.
    Remove,
}

/// One operation of a dataset's log (Qri's oplog op).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogOp {
    /// Init, amend or remove.
    pub kind: OpKind,
    /// What model the op applies to (user, dataset, branch, commit, ...).
    pub model: u32,
    /// The content reference (a path or hash).
    pub reference: String,
    /// The previous reference.
    pub prev: String,
    /// A name.
    pub name: String,
    /// Who did it.
    pub author_id: String,
    /// When (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub timestamp: DateTime<Utc>,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// A free-text note.
    pub note: String,
}

/// One entry of an append-only log: an op at a sequence number.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogEntry {
    /// The log.
    pub log_id: LogId,
    /// The entry's position, from 0; assigned at append.
    pub seq: u64,
    /// The op.
    pub op: LogOp,
}

/// What a log-entry list is filtered by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogFilter {
    /// The entries of one log.
    Log(LogId),
    /// Every entry of every log, by log then sequence number (for export).
    #[default]
    All,
}

/// How log entries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOrder {
    /// By sequence number.
    #[default]
    Seq,
}

impl Record for LogEntry {
    type Id = LogEntryKey;
    type Filter = LogFilter;
    type Order = LogOrder;
    const KIND: Kind = Kind::Log;
    const INDEXES: &'static [IndexDef] = &[IndexDef::new(
        "log_seq",
        &[
            field("log_id", FieldType::Str),
            field("seq", FieldType::Int),
        ],
    )
    .unique()];

    fn id(&self) -> LogEntryKey {
        LogEntryKey {
            log_id: self.log_id.clone(),
            seq: self.seq,
        }
    }

    fn set_id(&mut self, id: LogEntryKey) {
        self.log_id = id.log_id;
        self.seq = id.seq;
    }

    fn validate(&self) -> Result<(), FieldError> {
        self.log_id.check("log_id")?;
        if self.seq > i64::MAX as u64 {
            return Err(FieldError::new("seq", "is too large"));
        }
        check_len("op.name", &self.op.name, MAX_TEXT_LEN)?;
        check_len("op.note", &self.op.note, MAX_TEXT_LEN)?;
        check_len("op.reference", &self.op.reference, MAX_TEXT_LEN)
    }

    fn index_values(&self, index: &str) -> Option<Vec<IndexValue>> {
        match index {
            "log_seq" => Some(vec![
                IndexValue::str(self.log_id.as_str()),
                IndexValue::Int(self.seq as i64),
            ]),
            _ => None,
        }
    }

    fn parent(&self) -> Option<String> {
        Some(self.log_id.key())
    }

    fn plan(filter: &LogFilter, _order: LogOrder) -> Result<Plan, FieldError> {
        Ok(match filter {
            LogFilter::Log(l) => {
                l.check("log_id")?;
                Plan::index("log_seq", vec![IndexValue::str(l.as_str())])
            }
            LogFilter::All => Plan::index("log_seq", Vec::new()),
        })
    }
}
