//! Record history: every version of a record, who wrote it, and how long
//! versions are kept.
//!
//! Engines write a version in the same atomic commit as each put and
//! delete of a kind whose [`HistoryRetention`] keeps history, so a version
//! is never missing or extra after a crash. Reads ([`RecordStore::history`],
//! [`RecordStore::get_at`]) are keyset pages over (record, revision); a
//! record written before history was kept (or while its kind kept none)
//! shows its current state as its one version.
//!
//! [`RecordStore::history`]: crate::RecordStore::history
//! [`RecordStore::get_at`]: crate::RecordStore::get_at

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::feed::ChangeOp;
use crate::kinds::Kind;
use crate::revision::Revision;

/// One version of a record: what a write left (its body, or `None` for a
/// delete), when, and who wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version<T> {
    /// The revision the write gave the record.
    pub revision: Revision,
    /// When it was committed (UTC).
    #[serde(serialize_with = "crate::dates::write")]
    pub at: DateTime<Utc>,
    /// Who wrote it, when the write named someone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Put or delete.
    pub op: ChangeOp,
    /// The record as written; `None` for a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<T>,
}

impl<T> Version<T> {
    /// Maps the value, keeping the rest.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Version<U> {
        Version {
            revision: self.revision,
            at: self.at,
            actor: self.actor,
            op: self.op,
            value: self.value.map(f),
        }
    }
}

/// A version as an engine stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// The revision the write gave the record.
    pub revision: Revision,
    /// Put or delete.
    pub op: ChangeOp,
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// Who wrote it.
    pub actor: Option<Actor>,
    /// The JSON body written; `None` for a delete.
    pub body: Option<Vec<u8>>,
}

/// How much of one kind's history is kept. Versions are written only when
/// `enabled`; compaction (`Datastore::compact_history`) then removes, per
/// record, versions beyond the newest `max_versions` and versions older
/// than `max_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRetention {
    /// Write a version for every put and delete.
    pub enabled: bool,
    /// Keep at most this many of each record's newest versions.
    #[serde(default)]
    pub max_versions: Option<u32>,
    /// Keep versions at most this old.
    #[serde(default, with = "opt_secs")]
    pub max_age: Option<Duration>,
}

impl HistoryRetention {
    /// Keep every version.
    pub const ALL: HistoryRetention = HistoryRetention {
        enabled: true,
        max_versions: None,
        max_age: None,
    };

    /// Keep no history: a record's history is its current state.
    pub const NONE: HistoryRetention = HistoryRetention {
        enabled: false,
        max_versions: None,
        max_age: None,
    };

    /// Keep each record's newest `n` versions.
    pub fn keep_last(n: u32) -> Self {
        HistoryRetention {
            enabled: true,
            max_versions: Some(n),
            max_age: None,
        }
    }

    /// Keep versions younger than `age`.
    pub fn max_age(age: Duration) -> Self {
        HistoryRetention {
            enabled: true,
            max_versions: None,
            max_age: Some(age),
        }
    }

    /// True when compaction has something to remove by this policy.
    pub fn compacts(&self) -> bool {
        self.enabled && (self.max_versions.is_some() || self.max_age.is_some())
    }

    /// The oldest time a version may have (by `max_age`), at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.max_age
            .and_then(|a| chrono::Duration::from_std(a).ok())
            .map(|a| now - a)
    }
}

/// The history retention of every kind. By default every editable kind
/// keeps every version except access tokens (their versions would keep
/// revoked hashes); log entries are append-only and have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPolicy {
    kinds: BTreeMap<Kind, HistoryRetention>,
}

impl Default for HistoryPolicy {
    fn default() -> Self {
        let mut kinds = BTreeMap::new();
        for kind in Kind::ALL {
            let keep = if Self::keeps_history(kind) {
                HistoryRetention::ALL
            } else {
                HistoryRetention::NONE
            };
            kinds.insert(kind, keep);
        }
        HistoryPolicy { kinds }
    }
}

impl HistoryPolicy {
    /// No history for any kind.
    pub fn off() -> Self {
        HistoryPolicy {
            kinds: Kind::ALL
                .into_iter()
                .map(|k| (k, HistoryRetention::NONE))
                .collect(),
        }
    }

    /// True for the kinds that can have history: the editable kinds but
    /// access tokens.
    pub fn keeps_history(kind: Kind) -> bool {
        kind.is_editable() && kind != Kind::Token
    }

    /// Sets one kind's retention (ignored for kinds without history).
    pub fn with(mut self, kind: Kind, retention: HistoryRetention) -> Self {
        if Self::keeps_history(kind) {
            self.kinds.insert(kind, retention);
        }
        self
    }

    /// One kind's retention.
    pub fn get(&self, kind: Kind) -> HistoryRetention {
        self.kinds
            .get(&kind)
            .copied()
            .unwrap_or(HistoryRetention::NONE)
    }

    /// True when writes of `kind` write a version.
    pub fn records(&self, kind: Kind) -> bool {
        self.get(kind).enabled
    }

    /// Each kind's retention.
    pub fn iter(&self) -> impl Iterator<Item = (Kind, HistoryRetention)> + '_ {
        self.kinds.iter().map(|(k, r)| (*k, *r))
    }
}

/// What one history compaction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HistoryCompaction {
    /// Versions removed.
    pub removed: u64,
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_keeps_editable_kinds_but_tokens() {
        let p = HistoryPolicy::default();
        assert!(p.records(Kind::Workflow));
        assert!(p.records(Kind::Run));
        assert!(!p.records(Kind::Token));
        assert!(!p.records(Kind::Log));
        let p = p.with(Kind::Token, HistoryRetention::ALL);
        assert!(!p.records(Kind::Token), "tokens never keep history");
        assert!(!HistoryPolicy::off().records(Kind::Profile));
        assert!(HistoryRetention::keep_last(3).compacts());
        assert!(!HistoryRetention::ALL.compacts());
    }
}
