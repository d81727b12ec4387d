//! The one error type every store returns.

use std::fmt;

use crate::kinds::Kind;
use crate::revision::{Precondition, Revision};

/// A boxed error from a backend's own library (sqlx, rocksdb, io).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names the part of the datastore an error came from: a record kind's
/// store, or one of the parts that are not a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreName {
    /// The store of one record kind (`profiles`, `runs`, ...).
    Kind(Kind),
    /// The change feed.
    Changes,
    /// A batch spanning substores.
    Batch,
    /// The datastore as a whole (opening, closing, configuration).
    Datastore,
}

impl StoreName {
    /// The lower-case name used in messages, tables and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreName::Kind(kind) => kind.as_str(),
            StoreName::Changes => "changes",
            StoreName::Batch => "batch",
            StoreName::Datastore => "datastore",
        }
    }

    /// The store named `name` (as [`StoreName::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<StoreName> {
        match name {
            "changes" => Some(StoreName::Changes),
            "batch" => Some(StoreName::Batch),
            "datastore" => Some(StoreName::Datastore),
            other => Kind::ALL
                .into_iter()
                .find(|k| k.as_str() == other)
                .map(StoreName::Kind),
        }
    }
}

impl From<Kind> for StoreName {
    fn from(kind: Kind) -> Self {
        StoreName::Kind(kind)
    }
}

impl serde::Serialize for StoreName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for StoreName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        StoreName::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown store {name:?}")))
    }
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure a store reports. Each variant names the substore and the key
/// it was working on, so a message alone says what went wrong where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No record at that key.
    #[error("{store}: {key:?} not found")]
    NotFound {
        /// The substore.
        store: StoreName,
        /// The key looked up.
        key: String,
    },
    /// A record, or a unique index value, already exists.
    #[error("{store}: {key:?} already exists")]
    AlreadyExists {
        /// The substore.
        store: StoreName,
        /// The id, or `index=value` for a unique index.
        key: String,
    },
    /// A precondition failed: the record is at another revision than required.
    #[error("{store}: {key:?}: precondition {expected} failed, found {}", found.map_or_else(|| "no record".to_string(), |r| format!("revision {r}")))]
    Conflict {
        /// The substore.
        store: StoreName,
        /// The key written.
        key: String,
        /// What the write required.
        expected: Precondition,
        /// The revision found, `None` when there was no record.
        found: Option<Revision>,
    },
    /// Bad input: nothing was written.
    #[error("{store}: {key:?}: invalid {field}: {reason}")]
    Invalid {
        /// The substore.
        store: StoreName,
        /// The key of the record or request at fault (may be empty for a new record).
        key: String,
        /// The field that is wrong.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A feed cursor points before the retained window: reload, then follow from `head`.
    #[error(
        "{store}: cursor {key} has expired: changes through {compacted_through} were compacted"
    )]
    CursorExpired {
        /// The substore (the change feed).
        store: StoreName,
        /// The cursor given.
        key: String,
        /// The highest sequence number no longer retained.
        compacted_through: u64,
    },
    /// A version of a record's history that is no longer kept: retention
    /// compacted it away, or it predates the history (records written
    /// before history was kept start at the version they had then).
    #[error("{store}: {key:?}: version {revision} is not kept in its history{}", oldest_kept.map_or_else(|| " (no version is)".to_string(), |r| format!(" (versions from revision {r} on are)")))]
    VersionExpired {
        /// The substore.
        store: StoreName,
        /// The record's key.
        key: String,
        /// The version asked for (or the page cursor's).
        revision: Revision,
        /// The oldest version still kept, if any.
        oldest_kept: Option<Revision>,
    },
    /// The backend does not support this operation.
    #[error("{store}: {key:?}: unsupported: {operation}")]
    Unsupported {
        /// The substore.
        store: StoreName,
        /// The key involved, if any.
        key: String,
        /// What was asked for.
        operation: String,
    },
    /// Stored bytes could not be decoded.
    #[error("{store}: {key:?}: stored data is corrupt: {reason}")]
    Corrupt {
        /// The substore.
        store: StoreName,
        /// The key whose bytes are bad.
        key: String,
        /// What failed to decode.
        reason: String,
    },
    /// The backend cannot be reached right now; retrying may succeed.
    #[error("{store}: {key:?}: backend unavailable: {source}")]
    Unavailable {
        /// The substore.
        store: StoreName,
        /// The key involved, if any.
        key: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Any other backend failure.
    #[error("{store}: {key:?}: backend error: {source}")]
    Backend {
        /// The substore.
        store: StoreName,
        /// The key involved, if any.
        key: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// The variant's name in snake case (`not_found`, `conflict`, ...): a
    /// label for metrics, never holding a key or a value.
    pub fn variant(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Conflict { .. } => "conflict",
            Error::Invalid { .. } => "invalid",
            Error::CursorExpired { .. } => "cursor_expired",
            Error::VersionExpired { .. } => "version_expired",
            Error::Unsupported { .. } => "unsupported",
            Error::Corrupt { .. } => "corrupt",
            Error::Unavailable { .. } => "unavailable",
            Error::Backend { .. } => "backend",
        }
    }

    /// True when the same call may succeed if made again later (the backend
    /// was unreachable or busy). A [`Error::Conflict`] is not retryable as is:
    /// re-read the record and write again with the new revision.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// True for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Invalid`].
    pub fn is_invalid(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }

    /// The substore the error came from.
    pub fn store(&self) -> StoreName {
        match self {
            Error::NotFound { store, .. }
            | Error::AlreadyExists { store, .. }
            | Error::Conflict { store, .. }
            | Error::Invalid { store, .. }
            | Error::CursorExpired { store, .. }
            | Error::VersionExpired { store, .. }
            | Error::Unsupported { store, .. }
            | Error::Corrupt { store, .. }
            | Error::Unavailable { store, .. }
            | Error::Backend { store, .. } => *store,
        }
    }

    /// The key the error names.
    pub fn key(&self) -> &str {
        match self {
            Error::NotFound { key, .. }
            | Error::AlreadyExists { key, .. }
            | Error::Conflict { key, .. }
            | Error::Invalid { key, .. }
            | Error::CursorExpired { key, .. }
            | Error::VersionExpired { key, .. }
            | Error::Unsupported { key, .. }
            | Error::Corrupt { key, .. }
            | Error::Unavailable { key, .. }
            | Error::Backend { key, .. } => key,
        }
    }

    /// Shorthand for an [`Error::Invalid`].
    pub fn invalid(
        store: StoreName,
        key: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            store,
            key: key.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::NotFound`].
    pub fn not_found(store: StoreName, key: impl Into<String>) -> Self {
        Error::NotFound {
            store,
            key: key.into(),
        }
    }
}

/// A validation failure of one field, before the store and key are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field that is wrong, as a path (`steps[2].name`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.reason)
    }
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Turns it into an [`Error::Invalid`] naming the store and key.
    pub fn into_error(self, store: StoreName, key: impl Into<String>) -> Error {
        Error::invalid(store, key, self.field, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_store_and_key() {
        let e = Error::Conflict {
            store: StoreName::Kind(Kind::Run),
            key: "r1".into(),
            expected: Precondition::MustBeAt(Revision::new(3)),
            found: Some(Revision::new(5)),
        };
        let text = e.to_string();
        assert!(text.contains("runs"), "{text}");
        assert!(text.contains("r1"), "{text}");
        assert!(text.contains("revision 5"), "{text}");
        assert!(!e.is_retryable());
        let u = Error::Unavailable {
            store: StoreName::Kind(Kind::Profile),
            key: String::new(),
            source: "connection refused".into(),
        };
        assert!(u.is_retryable());
    }
}
