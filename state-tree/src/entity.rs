//! Entity tables: records normalized by id, with upsert rules.

use datastore_core::{Revision, Versioned};
use imbl::OrdMap;

/// How an incoming copy of a record is merged into the table.
#[derive(Debug, Clone, Copy)]
pub enum Upsert<T> {
    /// Take the incoming copy.
    Replace,
    /// Take it only if its revision is newer than the one held (a late
    /// answer to an old load can never put an older copy back).
    IfNewerRevision,
    /// Combine the held copy with the incoming one (held first).
    Merge(fn(&T, &T) -> T),
}

/// Records of one kind by id. Cloning is cheap (a persistent map), and a
/// table an action did not change keeps its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityTable<T: Clone> {
    rows: OrdMap<String, Versioned<T>>,
}

impl<T: Clone> Default for EntityTable<T> {
    fn default() -> Self {
        EntityTable {
            rows: OrdMap::new(),
        }
    }
}

impl<T: Clone + PartialEq> EntityTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record with that id.
    pub fn get(&self, id: &str) -> Option<&Versioned<T>> {
        self.rows.get(id)
    }

    /// The revision held for an id.
    pub fn revision(&self, id: &str) -> Option<Revision> {
        self.rows.get(id).map(|v| v.revision)
    }

    /// How many records the table holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// True when the table holds that id.
    pub fn contains(&self, id: &str) -> bool {
        self.rows.contains_key(id)
    }

    /// The ids held, in order.
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.rows.keys()
    }

    /// The records held, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Versioned<T>> {
        self.rows.values()
    }

    /// Merges an incoming copy under a rule; returns the new table, or `None`
    /// when nothing changed (so the caller keeps the old one).
    pub fn upsert(&self, id: &str, incoming: Versioned<T>, rule: Upsert<T>) -> Option<Self> {
        let next = match (self.rows.get(id), rule) {
            (Some(held), Upsert::IfNewerRevision) if incoming.revision <= held.revision => {
                return None;
            }
            (Some(held), Upsert::Merge(merge)) => Versioned {
                value: merge(&held.value, &incoming.value),
                ..incoming
            },
            _ => incoming,
        };
        if self.rows.get(id) == Some(&next) {
            return None;
        }
        Some(EntityTable {
            rows: self.rows.update(id.to_string(), next),
        })
    }

    /// Removes an id; `None` when it was not there.
    pub fn remove(&self, id: &str) -> Option<Self> {
        if !self.rows.contains_key(id) {
            return None;
        }
        Some(EntityTable {
            rows: self.rows.without(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: &str, rev: u64) -> Versioned<String> {
        let t = chrono_epoch();
        Versioned {
            value: value.to_string(),
            revision: Revision::new(rev),
            created: t,
            updated: t,
            actor: None,
        }
    }

    fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::default()
    }

    #[test]
    fn upsert_rules() {
        let t = EntityTable::new()
            .upsert("a", v("one", 2), Upsert::Replace)
            .unwrap();
        assert!(
            t.upsert("a", v("old", 1), Upsert::IfNewerRevision)
                .is_none(),
            "an older copy never lands"
        );
        assert!(
            t.upsert("a", v("one", 2), Upsert::Replace).is_none(),
            "an identical copy changes nothing"
        );
        let newer = t.upsert("a", v("two", 3), Upsert::IfNewerRevision).unwrap();
        assert_eq!(newer.get("a").unwrap().value, "two");
        let merged = t
            .upsert(
                "a",
                v("+x", 4),
                Upsert::Merge(|held, new| format!("{held}{new}")),
            )
            .unwrap();
        assert_eq!(merged.get("a").unwrap().value, "one+x");
        assert_eq!(merged.revision("a"), Some(Revision::new(4)));
        assert!(t.remove("b").is_none());
        assert!(t.remove("a").unwrap().is_empty());
    }
}
