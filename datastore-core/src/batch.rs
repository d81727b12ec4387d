//! Atomic batches of writes across substores.

use serde::{Deserialize, Serialize};

use crate::ids::{LogId, RecordId};
use crate::record::Kind;
use crate::records::LogOp;
use crate::revision::Precondition;

pub use crate::kinds::AnyRecord;

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum BatchOp {
    /// Create or replace a record.
    Put {
        /// The record.
        record: AnyRecord,
        /// What the write requires.
        precondition: Precondition,
    },
    /// Delete a record.
    Delete {
        /// Its kind.
        kind: Kind,
        /// Its key.
        key: String,
        /// What the delete requires.
        precondition: Precondition,
    },
    /// Append ops to a log that must have exactly `expected_len` entries.
    AppendLog {
        /// The log.
        log_id: LogId,
        /// Its length before the append.
        expected_len: u64,
        /// The ops, in order.
        ops: Vec<LogOp>,
    },
}

/// Writes across substores that apply all together or not at all, feed
/// entries included. `Datastore::apply` returns one revision per op (for a
/// log append, the revision of its last entry).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    /// The ops, applied in order; each sees the ones before it.
    pub ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a put.
    pub fn put(mut self, record: impl Into<AnyRecord>, precondition: Precondition) -> Self {
        self.ops.push(BatchOp::Put {
            record: record.into(),
            precondition,
        });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, kind: Kind, key: impl RecordId, precondition: Precondition) -> Self {
        self.ops.push(BatchOp::Delete {
            kind,
            key: key.key(),
            precondition,
        });
        self
    }

    /// Adds a log append.
    pub fn append_log(
        mut self,
        log_id: impl Into<LogId>,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Self {
        self.ops.push(BatchOp::AppendLog {
            log_id: log_id.into(),
            expected_len,
            ops,
        });
        self
    }

    /// The number of ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there are no ops.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}
