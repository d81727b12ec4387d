//! The SQL writer task: group commit on one transaction.
//!
//! Every commit is queued for one writer task per store (per process). The
//! task takes every commit waiting at that moment as one group and makes
//! it durable in one transaction: `BEGIN IMMEDIATE` on SQLite's writer
//! connection, or `BEGIN` and the store's advisory lock on PostgreSQL. Each
//! commit of a group runs under a `SAVEPOINT`, so a commit whose
//! precondition fails is rolled back alone and the others land. The feed
//! rows of the group, the head and the retention cut are written once, at
//! the end, and the transaction commits with one sync. Only then is each
//! committer answered (and, on SQLite, the changes published in order).
//!
//! Sequence numbers are handed out inside the lock, so sequence order is
//! commit order across every process (serialized append, see
//! docs/architecture.md); what changed is that one lock holder now carries
//! a whole group of commits instead of one.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use datastore_core::group_commit::{PendingCommit, WriteJob, WriteJobs, group_failure};
use datastore_core::{
    Change, ChangeOp, Committed, Compaction, Error, LiveChanges, Mutation, Precondition, Result,
    Retention, Revision, StoreName, check_precondition, commit_time, unique_violation,
};

use crate::driver::{Dialect, Pools, Tx, Value, db_error};
use crate::engine::{micros, time};
use crate::schema::{self, column_values, encode, table};
use datastore_core::Kind;

/// The most commits in one PostgreSQL group. Each savepoint that writes is
/// a subtransaction; PostgreSQL caches 64 per transaction before other
/// sessions' snapshots must look them up on disk.
pub(crate) const MAX_GROUP_POSTGRES: usize = 48;
/// The most commits in one SQLite group.
pub(crate) const MAX_GROUP_SQLITE: usize = 512;
/// Feed rows per multi-row insert (7 parameters each).
const FEED_ROWS_PER_INSERT: usize = 500;

/// What the writer task owns: the pools, and how to lock and notify.
pub(crate) struct Writer {
    pub(crate) pools: Pools,
    pub(crate) dialect: Dialect,
    pub(crate) retention: Retention,
    pub(crate) shown_url: String,
    pub(crate) lock_key: i64,
    pub(crate) channel: String,
    pub(crate) live: Arc<LiveChanges>,
}

impl Writer {
    /// Runs jobs until the engine drops its queue.
    pub(crate) async fn run(self, mut jobs: WriteJobs) {
        while let Some(job) = jobs.next().await {
            match job {
                WriteJob::Group(commits) => self.commit_group(commits).await,
                WriteJob::Compact { retention, reply } => {
                    let _ = reply.send(self.compact(&retention).await);
                }
                WriteJob::Flush { reply } => {
                    let _ = reply.send(());
                }
            }
        }
    }

    async fn commit_group(&self, mut commits: Vec<PendingCommit>) {
        let batches: Vec<Vec<Mutation>> = commits
            .iter_mut()
            .map(|c| std::mem::take(&mut c.mutations))
            .collect();
        let results = match self.run_group(batches).await {
            Ok((results, changes)) => {
                // PostgreSQL publishes from the listener, for every process
                // alike; SQLite here, in commit order.
                if self.dialect == Dialect::Sqlite {
                    self.live.publish(changes);
                }
                results
            }
            Err(e) => commits.iter().map(|_| Err(group_failure(&e))).collect(),
        };
        for (commit, result) in commits.into_iter().zip(results) {
            commit.finish(result);
        }
    }

    /// One transaction for the group: each commit's own result, and the
    /// changes of those that landed. `Err` when the group as a whole failed.
    async fn run_group(
        &self,
        batches: Vec<Vec<Mutation>>,
    ) -> Result<(Vec<Result<Vec<Committed>>>, Vec<Change>)> {
        let group_error = |e| db_error(StoreName::Datastore, &self.shown_url, e);
        let mut tx = self.begin().await?;
        let start = Self::meta(&mut tx, "head").await?;
        let mut head = start;
        let now = commit_time();
        let single = batches.len() == 1;
        let mut results = Vec::with_capacity(batches.len());
        for mutations in batches {
            if !single {
                tx.execute("SAVEPOINT ds_commit", &[])
                    .await
                    .map_err(group_error)?;
            }
            let before = head;
            match self.apply(&mut tx, &mut head, now, mutations).await {
                Ok(committed) => results.push(Ok(committed)),
                Err(e) if single => return Ok((vec![Err(e)], Vec::new())),
                Err(e) => {
                    head = before;
                    tx.execute("ROLLBACK TO SAVEPOINT ds_commit", &[])
                        .await
                        .map_err(group_error)?;
                    results.push(Err(e));
                }
            }
        }
        if results.iter().all(|r| r.is_err()) {
            return Ok((results, Vec::new()));
        }
        let changes: Vec<Change> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .map(Committed::change)
            .collect();
        Self::insert_changes(&mut tx, &changes).await?;
        if head != start {
            Self::set_meta(&mut tx, "head", head).await?;
            if self.retention != Retention::FOREVER {
                Self::cut_feed(&mut tx, head, &self.retention).await?;
            }
            if self.dialect == Dialect::Postgres {
                tx.execute(
                    "SELECT pg_notify(?, ?)",
                    &[
                        Value::Text(self.channel.clone()),
                        Value::Text(head.to_string()),
                    ],
                )
                .await
                .map_err(|e| db_error(StoreName::Changes, "", e))?;
            }
        }
        tx.commit().await.map_err(group_error)?;
        Ok((results, changes))
    }

    /// The group's feed rows, in multi-row inserts.
    async fn insert_changes(tx: &mut Tx, changes: &[Change]) -> Result<()> {
        for chunk in changes.chunks(FEED_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO ds_changes (seq, kind, key, op, revision, at, parent) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut args = Vec::with_capacity(chunk.len() * 7);
            for c in chunk {
                args.extend([
                    Value::Int(c.seq as i64),
                    Value::Text(c.store.as_str().into()),
                    Value::Text(c.id.clone()),
                    Value::Text(
                        if c.op == ChangeOp::Delete {
                            "delete"
                        } else {
                            "put"
                        }
                        .into(),
                    ),
                    Value::Int(c.revision.get() as i64),
                    Value::Int(micros(c.at)),
                    c.parent.clone().map_or(Value::NullText, Value::Text),
                ]);
            }
            tx.execute(&sql, &args)
                .await
                .map_err(|e| db_error(StoreName::Changes, &chunk[0].id, e))?;
        }
        Ok(())
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        let mut tx = self.begin().await?;
        let head = Self::meta(&mut tx, "head").await?;
        let (removed, compacted_through) = Self::cut_feed(&mut tx, head, retention).await?;
        tx.commit()
            .await
            .map_err(|e| db_error(StoreName::Changes, "", e))?;
        Ok(Compaction {
            removed,
            compacted_through,
        })
    }

    /// Revision and first-write time of a record inside the transaction.
    async fn current(tx: &mut Tx, kind: Kind, key: &str) -> Result<Option<(Revision, i64)>> {
        let sql = format!(
            "SELECT revision, stored_created FROM {} WHERE key = ?",
            table(kind)
        );
        let row = tx
            .fetch_optional(&sql, &[Value::Text(key.to_string())])
            .await
            .map_err(|e| db_error(kind.store(), key, e))?;
        match row {
            Some(r) => {
                let bad = |e| db_error(kind.store(), key, e);
                Ok(Some((
                    Revision::new(r.int(0).map_err(bad)? as u64),
                    r.int(1).map_err(bad)?,
                )))
            }
            None => Ok(None),
        }
    }

    async fn meta(tx: &mut Tx, name: &str) -> Result<u64> {
        let row = tx
            .fetch_optional(
                "SELECT value FROM ds_meta WHERE name = ?",
                &[Value::Text(name.into())],
            )
            .await
            .map_err(|e| db_error(StoreName::Datastore, name, e))?;
        Ok(match row {
            Some(r) => {
                r.int(0)
                    .map_err(|e| db_error(StoreName::Datastore, name, e))? as u64
            }
            None => 0,
        })
    }

    async fn set_meta(tx: &mut Tx, name: &str, value: u64) -> Result<()> {
        tx.execute(
            "UPDATE ds_meta SET value = ? WHERE name = ?",
            &[Value::Int(value as i64), Value::Text(name.into())],
        )
        .await
        .map_err(|e| db_error(StoreName::Datastore, name, e))?;
        Ok(())
    }

    /// Deletes feed entries outside `retention`; returns (removed, compacted_through).
    async fn cut_feed(tx: &mut Tx, head: u64, retention: &Retention) -> Result<(u64, u64)> {
        let compacted = Self::meta(tx, "compacted_through").await?;
        let mut cut = compacted;
        if let Some(max) = retention.max_changes {
            cut = cut.max(head.saturating_sub(max));
        }
        if let Some(age) = retention
            .max_age
            .and_then(|a| chrono::Duration::from_std(a).ok())
        {
            let oldest_kept = micros(commit_time() - age);
            let row = tx
                .fetch_optional(
                    "SELECT MAX(seq) FROM ds_changes WHERE at < ?",
                    &[Value::Int(oldest_kept)],
                )
                .await
                .map_err(|e| db_error(StoreName::Changes, "", e))?;
            if let Some(seq) = row.and_then(|r| r.opt_int(0).ok().flatten()) {
                cut = cut.max(seq as u64);
            }
        }
        let cut = cut.min(head);
        if cut > compacted {
            tx.execute(
                "DELETE FROM ds_changes WHERE seq <= ?",
                &[Value::Int(cut as i64)],
            )
            .await
            .map_err(|e| db_error(StoreName::Changes, "", e))?;
            Self::set_meta(tx, "compacted_through", cut).await?;
        }
        Ok((cut - compacted, cut))
    }

    async fn begin(&self) -> Result<Tx> {
        let mut tx = self
            .pools
            .begin_write()
            .await
            .map_err(|e| db_error(StoreName::Datastore, &self.shown_url, e))?;
        if self.dialect == Dialect::Postgres {
            tx.execute(
                "SELECT pg_advisory_xact_lock(?)",
                &[Value::Int(self.lock_key)],
            )
            .await
            .map_err(|e| db_error(StoreName::Datastore, &self.shown_url, e))?;
        }
        Ok(tx)
    }

    /// Applies one commit's mutations in the transaction, numbering its
    /// writes after `head`.
    async fn apply(
        &self,
        tx: &mut Tx,
        head: &mut u64,
        now: DateTime<Utc>,
        mutations: Vec<Mutation>,
    ) -> Result<Vec<Committed>> {
        let mut committed = Vec::new();
        for m in mutations {
            match m {
                Mutation::Put {
                    kind,
                    key,
                    body,
                    index,
                    precondition,
                    parent,
                } => {
                    let store = kind.store();
                    // A create needs no read: the primary key refuses an
                    // existing key (AlreadyExists) and the commit rolls back.
                    let current = match precondition {
                        Precondition::MustNotExist => None,
                        _ => Self::current(tx, kind, &key).await?,
                    };
                    check_precondition(kind, &key, precondition, current.map(|c| c.0), false)?;
                    for e in index.iter().filter(|e| e.unique) {
                        let def = kind.index(e.index).expect("declared index");
                        let mut conditions: Vec<String> = def
                            .fields
                            .iter()
                            .map(|f| format!("{} = ?", f.name))
                            .collect();
                        conditions.push("key <> ?".into());
                        let mut args: Vec<Value> = def
                            .fields
                            .iter()
                            .zip(&e.values)
                            .map(|(f, v)| encode(v, f.ty))
                            .collect();
                        args.push(Value::Text(key.clone()));
                        let sql = format!(
                            "SELECT key FROM {} WHERE {} LIMIT 1",
                            table(kind),
                            conditions.join(" AND ")
                        );
                        if tx
                            .fetch_optional(&sql, &args)
                            .await
                            .map_err(|e| db_error(store, &key, e))?
                            .is_some()
                        {
                            return Err(unique_violation(kind, e));
                        }
                    }
                    *head += 1;
                    let body = String::from_utf8(body)
                        .map_err(|e| Error::invalid(store, &key, "record", e.to_string()))?;
                    let cols = schema::columns(kind);
                    let values = column_values(kind, &index);
                    let created = current.map_or(micros(now), |c| c.1);
                    if current.is_some() {
                        let sets: Vec<String> =
                            cols.iter().map(|(c, _)| format!("{c} = ?")).collect();
                        let sql = format!(
                            "UPDATE {} SET revision = ?, stored_updated = ?, body = {}{}{} WHERE key = ?",
                            table(kind),
                            self.dialect.body_param(),
                            if sets.is_empty() { "" } else { ", " },
                            sets.join(", ")
                        );
                        let mut args = vec![
                            Value::Int(*head as i64),
                            Value::Int(micros(now)),
                            Value::Text(body),
                        ];
                        args.extend(values);
                        args.push(Value::Text(key.clone()));
                        tx.execute(&sql, &args)
                            .await
                            .map_err(|e| db_error(store, &key, e))?;
                    } else {
                        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
                        let sql = format!(
                            "INSERT INTO {} (key, revision, stored_created, stored_updated, body{}{}) VALUES (?, ?, ?, ?, {}{})",
                            table(kind),
                            if names.is_empty() { "" } else { ", " },
                            names.join(", "),
                            self.dialect.body_param(),
                            ", ?".repeat(names.len())
                        );
                        let mut args = vec![
                            Value::Text(key.clone()),
                            Value::Int(*head as i64),
                            Value::Int(created),
                            Value::Int(micros(now)),
                            Value::Text(body),
                        ];
                        args.extend(values);
                        tx.execute(&sql, &args)
                            .await
                            .map_err(|e| db_error(store, &key, e))?;
                    }
                    committed.push(Committed {
                        kind,
                        key: key.clone(),
                        op: ChangeOp::Put,
                        revision: Revision::new(*head),
                        created: time(store, &key, created)?,
                        updated: now,
                        parent: parent.clone(),
                    });
                }
                Mutation::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    let store = kind.store();
                    let current = Self::current(tx, kind, &key).await?;
                    check_precondition(kind, &key, precondition, current.map(|c| c.0), true)?;
                    let created = current.map_or(micros(now), |c| c.1);
                    tx.execute(
                        &format!("DELETE FROM {} WHERE key = ?", table(kind)),
                        &[Value::Text(key.clone())],
                    )
                    .await
                    .map_err(|e| db_error(store, &key, e))?;
                    *head += 1;
                    committed.push(Committed {
                        kind,
                        key: key.clone(),
                        op: ChangeOp::Delete,
                        revision: Revision::new(*head),
                        created: time(store, &key, created)?,
                        updated: now,
                        parent: None,
                    });
                }
                Mutation::Require {
                    kind,
                    key,
                    precondition,
                } => {
                    let current = Self::current(tx, kind, &key).await?;
                    check_precondition(kind, &key, precondition, current.map(|c| c.0), false)?;
                }
                Mutation::RaiseCounter { name, to } => {
                    tx.execute(
                        "INSERT INTO ds_counters (name, value) VALUES (?, ?) \
                         ON CONFLICT (name) DO UPDATE SET value = CASE WHEN excluded.value > ds_counters.value \
                         THEN excluded.value ELSE ds_counters.value END",
                        &[Value::Text(name.clone()), Value::Int(to as i64)],
                    )
                    .await
                    .map_err(|e| db_error(StoreName::Runs, &name, e))?;
                }
            }
        }
        Ok(committed)
    }
}
