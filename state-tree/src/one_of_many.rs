//! One-of-many: a slice holds the id of the one element of a many-store it
//! shows, and its load status. Navigating elsewhere expires it; an answer
//! for an older navigation can never land after a newer one.

use serde::{Deserialize, Serialize};

/// Where a selection's load stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoadStatus {
    /// Nothing selected.
    #[default]
    Empty,
    /// Selected; the load is under way.
    Loading,
    /// Selected and loaded.
    Loaded,
    /// Selected; the load failed with this message.
    Failed(String),
}

/// The navigation scope a load belongs to. Each navigation gets a new one.
/// In JSON it is the bare number.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Scope(pub u64);

/// The one selected element of a many-store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<Id> {
    /// The selected id.
    pub id: Option<Id>,
    /// Its load status.
    pub status: LoadStatus,
    /// The current navigation scope.
    pub scope: Scope,
}

impl<Id> Default for Selection<Id> {
    fn default() -> Self {
        Selection {
            id: None,
            status: LoadStatus::Empty,
            scope: Scope(0),
        }
    }
}

impl<Id: Clone + PartialEq> Selection<Id> {
    /// Selects an id: a new scope, status Loading. Returns the new selection
    /// and the scope its load must answer with; `None` when it is already
    /// selected and not failed (nothing to do).
    pub fn select(&self, id: Id) -> Option<(Self, Scope)> {
        if self.id.as_ref() == Some(&id)
            && !matches!(self.status, LoadStatus::Failed(_) | LoadStatus::Empty)
        {
            return None;
        }
        let scope = Scope(self.scope.0 + 1);
        Some((
            Selection {
                id: Some(id),
                status: LoadStatus::Loading,
                scope,
            },
            scope,
        ))
    }

    /// Navigates away: nothing selected, and any load under way expires.
    pub fn clear(&self) -> Option<Self> {
        if self.id.is_none() && self.status == LoadStatus::Empty {
            return None;
        }
        Some(Selection {
            id: None,
            status: LoadStatus::Empty,
            scope: Scope(self.scope.0 + 1),
        })
    }

    /// True when an answer for `scope` and `id` belongs to this selection.
    pub fn accepts(&self, scope: Scope, id: &Id) -> bool {
        self.scope == scope && self.id.as_ref() == Some(id)
    }

    /// Marks the load done (or failed), if the answer is current.
    pub fn finish(&self, scope: Scope, id: &Id, outcome: Result<(), String>) -> Option<Self> {
        if !self.accepts(scope, id) {
            return None;
        }
        let status = match outcome {
            Ok(()) => LoadStatus::Loaded,
            Err(e) => LoadStatus::Failed(e),
        };
        if status == self.status {
            return None;
        }
        Some(Selection {
            status,
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_navigation_cannot_land_after_a_newer_one() {
        let s = Selection::default();
        let (s, first) = s.select("a").unwrap();
        let (s, second) = s.select("b").unwrap();
        assert!(
            s.finish(first, &"a", Ok(())).is_none(),
            "the answer for a comes too late"
        );
        let done = s.finish(second, &"b", Ok(())).unwrap();
        assert_eq!(done.status, LoadStatus::Loaded);
        assert!(
            done.select("b").is_none(),
            "selecting what is shown does nothing"
        );
        let cleared = done.clear().unwrap();
        assert!(
            cleared.finish(second, &"b", Ok(())).is_none(),
            "navigating away expires it"
        );
    }
}
