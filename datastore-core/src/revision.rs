//! Revisions, write preconditions and versioned records.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of one stored record. It grows with every write to that key
/// and is never reused for the key, not even after a delete and re-create,
/// so comparing two revisions of one key tells which is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(u64);

impl Revision {
    /// A revision from its number.
    pub const fn new(n: u64) -> Self {
        Revision(n)
    }

    /// The revision's number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Revision {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Revision)
    }
}

/// What a write requires of the record it replaces or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "revision")]
pub enum Precondition {
    /// Write whatever is there.
    #[default]
    Any,
    /// Only create: fails with `AlreadyExists` if the key exists.
    MustNotExist,
    /// Only replace: fails with `NotFound` if the key is missing.
    MustExist,
    /// Only if the record is at exactly this revision: fails with `Conflict`
    /// naming the revision found.
    MustBeAt(Revision),
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::Any => f.write_str("any"),
            Precondition::MustNotExist => f.write_str("must-not-exist"),
            Precondition::MustExist => f.write_str("must-exist"),
            Precondition::MustBeAt(r) => write!(f, "must-be-at-revision {r}"),
        }
    }
}

/// A stored record with its revision and store-kept timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its current revision.
    pub revision: Revision,
    /// When the key was first written (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub created: DateTime<Utc>,
    /// When the key was last written (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub updated: DateTime<Utc>,
    /// Who made the last write, when it named someone (see
    /// `Datastore::with_actor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<crate::Actor>,
}

impl<T> Versioned<T> {
    /// The precondition that a write made on top of this read must carry.
    pub fn expect(&self) -> Precondition {
        Precondition::MustBeAt(self.revision)
    }

    /// A value as one of a commit's writes left it.
    pub fn from_committed(value: T, committed: &crate::engine::Committed) -> Self {
        Versioned {
            value,
            revision: committed.revision,
            created: committed.created,
            updated: committed.updated,
            actor: committed.actor.clone(),
        }
    }

    /// Maps the value, keeping revision and timestamps.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Versioned<U> {
        Versioned {
            value: f(self.value),
            revision: self.revision,
            created: self.created,
            updated: self.updated,
            actor: self.actor,
        }
    }
}
