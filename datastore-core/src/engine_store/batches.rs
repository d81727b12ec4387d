//! Atomic batches: every op validated, fixed fields checked and pinned,
//! one commit.

use std::collections::HashMap;

use super::{
    EngineStore, Pinned, PreparedBatch, PreparedPut, check_fixed, lost_race, retry_on_contention,
    set_precondition,
};
use crate::batch::{Batch, BatchOp};
use crate::engine::Engine;
use crate::error::{Error, Result, StoreName};
use crate::record::{Kind, Record};
use crate::revision::{Precondition, Revision};

impl<E: Engine> EngineStore<E> {
    /// Validates every op of a batch and turns it into one commit's
    /// mutations. A put of a kind with fixed fields is checked against the
    /// same record put earlier in the batch, or else the stored one (and
    /// pinned to the revision checked).
    pub(super) async fn prepare_batch(&self, batch: Batch) -> Result<PreparedBatch> {
        let mut out = PreparedBatch {
            mutations: Vec::new(),
            references: Vec::new(),
            writes_per_op: Vec::with_capacity(batch.ops.len()),
            pinned: Vec::new(),
        };
        // Fixed fields of records put earlier in this batch.
        let mut earlier: HashMap<(Kind, String), Vec<(&'static str, String)>> = HashMap::new();
        for op in batch.ops {
            match op {
                BatchOp::Put {
                    record,
                    precondition,
                } => {
                    let kind = record.kind();
                    let (mut prepared, fixed) = dispatch_any!(record, r => {
                        let mut r = r;
                        self.prepare_fixed(&mut r, precondition)?
                    });
                    if !fixed.is_empty() {
                        let slot = (kind, prepared.key.clone());
                        match earlier.get(&slot) {
                            Some(before) => check_fixed(kind, &prepared.key, before, &fixed)?,
                            None => {
                                let pinned = self
                                    .pin_stored(kind, &prepared.key, &fixed, precondition)
                                    .await?;
                                set_precondition(&mut prepared.mutations[0], pinned.precondition);
                                if pinned.strengthened {
                                    out.pinned.push(slot.clone());
                                }
                            }
                        }
                        earlier.insert(slot, fixed);
                    }
                    out.mutations.append(&mut prepared.mutations);
                    out.references.extend(
                        prepared
                            .references
                            .into_iter()
                            .map(|r| (kind.store(), prepared.key.clone(), r)),
                    );
                    out.writes_per_op.push(1);
                }
                BatchOp::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    if kind == Kind::Log {
                        return Err(Error::invalid(
                            StoreName::Batch,
                            key,
                            "kind",
                            "log entries are never deleted one by one; remove the whole log",
                        ));
                    }
                    crate::ids::check_id("key", key.split('/').next().unwrap_or_default())
                        .map_err(|e| e.into_error(kind.store(), key.clone()))?;
                    earlier.remove(&(kind, key.clone()));
                    out.mutations
                        .push(Self::delete_mutation(kind, key, precondition)?);
                    out.writes_per_op.push(1);
                }
                BatchOp::AppendLog {
                    log_id,
                    expected_len,
                    ops,
                } => {
                    let (mut m, entries) = self.prepare_append(&log_id, expected_len, ops)?;
                    out.mutations.append(&mut m);
                    out.writes_per_op.push(entries.len());
                }
            }
        }
        Ok(out)
    }

    /// [`EngineStore::prepare_put`], plus the record's fixed fields.
    pub(super) fn prepare_fixed<R: Record>(
        &self,
        record: &mut R,
        precondition: Precondition,
    ) -> Result<(PreparedPut, Vec<(&'static str, String)>)> {
        let prepared = self.prepare_put(record, precondition)?;
        Ok((prepared, record.fixed_fields()))
    }

    /// [`EngineStore::pin_fixed`] for a record known by kind, key and fixed
    /// fields (a batch's records are not typed).
    pub(super) async fn pin_stored(
        &self,
        kind: Kind,
        key: &str,
        fixed: &[(&'static str, String)],
        precondition: Precondition,
    ) -> Result<Pinned> {
        fn stored_fixed<R: Record>(body: &[u8]) -> Option<Vec<(&'static str, String)>> {
            serde_json::from_slice::<R>(body)
                .ok()
                .map(|r| r.fixed_fields())
        }
        let unchanged = Pinned {
            precondition,
            strengthened: false,
        };
        if precondition == Precondition::MustNotExist {
            return Ok(unchanged);
        }
        let Some(stored) = self
            .engine
            .get(kind, &[key.to_string()])
            .await?
            .pop()
            .flatten()
        else {
            return Ok(match precondition {
                Precondition::Any => Pinned {
                    precondition: Precondition::MustNotExist,
                    strengthened: true,
                },
                _ => unchanged,
            });
        };
        let before =
            dispatch_kind!(kind, R => stored_fixed::<R>(&stored.body)).ok_or_else(|| {
                Error::Corrupt {
                    store: kind.store(),
                    key: key.to_string(),
                    reason: "the stored record does not decode".into(),
                }
            })?;
        check_fixed(kind, key, &before, fixed)?;
        Ok(match precondition {
            Precondition::Any | Precondition::MustExist => Pinned {
                precondition: Precondition::MustBeAt(stored.revision),
                strengthened: true,
            },
            _ => unchanged,
        })
    }

    /// Commits a batch, checking again when a pinned record moved.
    pub(super) async fn apply_batch(&self, batch: Batch) -> Result<Vec<Revision>> {
        // Only a put that may find the record stored is pinned and can lose
        // a race; a batch of creates (what `import` and `copy` write) is
        // prepared once, without a copy kept for another try.
        let may_retry = batch.ops.iter().any(|op| {
            matches!(op, BatchOp::Put { precondition, .. }
                if *precondition != Precondition::MustNotExist)
        });
        let mut next = Some(batch);
        Ok(retry_on_contention!(
            StoreName::Batch,
            "",
            "writing the batch",
            {
                let batch = next.take().expect("a batch is retried only when kept");
                if may_retry {
                    next = Some(batch.clone());
                }
                let prepared = self.prepare_batch(batch).await?;
                let committed = match self.commit(prepared.mutations, &prepared.references).await {
                    Err(e)
                        if prepared
                            .pinned
                            .iter()
                            .any(|(kind, key)| lost_race(&e, *kind, key)) =>
                    {
                        continue;
                    }
                    other => other?,
                };
                let mut revisions = Vec::with_capacity(prepared.writes_per_op.len());
                let mut at = 0;
                for n in prepared.writes_per_op {
                    at += n;
                    revisions.push(committed[at - 1].revision);
                }
                Some(revisions)
            }
        ))
    }
}
