//! Versioned migrations of persisted state. The chain must be contiguous
//! (checked when the migrator is built); rolling back reports a step that
//! cannot be undone; a document from a version the chain does not know is
//! refused, never silently dropped.

use serde_json::Value;

/// One step: version `from` to `from + 1`, and back if it can be undone.
#[derive(Clone, Copy)]
pub struct Migration {
    /// The version it starts from.
    pub from: u32,
    /// What it does.
    pub name: &'static str,
    /// Upgrades a document.
    pub up: fn(Value) -> Result<Value, String>,
    /// Downgrades a document; `None` when the step loses information.
    pub down: Option<fn(Value) -> Result<Value, String>>,
}

/// Why a migration could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrationError {
    /// The chain has a gap or an overlap.
    #[error("migration chain broken at version {at}: {reason}")]
    BrokenChain {
        /// Where.
        at: u32,
        /// What is wrong.
        reason: String,
    },
    /// The document is from a version this chain does not reach.
    #[error(
        "state version {found} is unknown here (this build knows 0 to {latest}); refusing rather than dropping it"
    )]
    UnknownVersion {
        /// The document's version.
        found: u32,
        /// The newest version the chain reaches.
        latest: u32,
    },
    /// A rollback would pass a step that cannot be undone.
    #[error("cannot roll back through step {from} -> {} ({name}): it is irreversible", from + 1)]
    Irreversible {
        /// The step's starting version.
        from: u32,
        /// The step's name.
        name: &'static str,
    },
    /// A step failed on this document.
    #[error("step {from} -> {to} failed: {reason}")]
    Step {
        /// From.
        from: u32,
        /// To.
        to: u32,
        /// Why.
        reason: String,
    },
}

/// A checked chain of migrations from version 0.
pub struct Migrator {
    steps: Vec<Migration>,
}

impl Migrator {
    /// Builds a migrator, checking the steps run 0 -> 1 -> 2 ... with no gap.
    pub fn new(mut steps: Vec<Migration>) -> Result<Self, MigrationError> {
        steps.sort_by_key(|s| s.from);
        for (i, step) in steps.iter().enumerate() {
            if step.from != i as u32 {
                return Err(MigrationError::BrokenChain {
                    at: i as u32,
                    reason: format!(
                        "expected a step from {i}, found one from {} ({})",
                        step.from, step.name
                    ),
                });
            }
        }
        Ok(Migrator { steps })
    }

    /// The newest version.
    pub fn latest(&self) -> u32 {
        self.steps.len() as u32
    }

    /// Upgrades a document at `version` to the newest version.
    pub fn up(&self, mut doc: Value, version: u32) -> Result<Value, MigrationError> {
        if version > self.latest() {
            return Err(MigrationError::UnknownVersion {
                found: version,
                latest: self.latest(),
            });
        }
        for step in &self.steps[version as usize..] {
            doc = (step.up)(doc).map_err(|reason| MigrationError::Step {
                from: step.from,
                to: step.from + 1,
                reason,
            })?;
        }
        Ok(doc)
    }

    /// Rolls a document at `version` back to `target`, refusing before it
    /// changes anything if a step on the way cannot be undone.
    pub fn down(&self, mut doc: Value, version: u32, target: u32) -> Result<Value, MigrationError> {
        if version > self.latest() {
            return Err(MigrationError::UnknownVersion {
                found: version,
                latest: self.latest(),
            });
        }
        let path = &self.steps[target as usize..version as usize];
        if let Some(step) = path.iter().rev().find(|s| s.down.is_none()) {
            return Err(MigrationError::Irreversible {
                from: step.from,
                name: step.name,
            });
        }
        for step in path.iter().rev() {
            let down = step.down.expect("checked above");
            doc = down(doc).map_err(|reason| MigrationError::Step {
                from: step.from + 1,
                to: step.from,
                reason,
            })?;
        }
        Ok(doc)
    }
}
