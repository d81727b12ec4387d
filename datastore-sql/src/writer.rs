//! The SQL writer task: group commit on one transaction.
//!
//! Every commit is queued for one writer task per store (per process). The
//! task takes every commit waiting at that moment as one group and makes
//! it durable in one transaction: `BEGIN IMMEDIATE` on SQLite's writer
//! connection, or `BEGIN` and the row lock of the store's head on
//! PostgreSQL. A commit whose precondition fails fails alone and the others
//! land; one that fails after writing sends the group round again with a
//! `SAVEPOINT` per commit (see [`Writer::run_group`]). The feed rows of the
//! group, the head and the retention cut are written once, at the end, and
//! the transaction commits with one sync. Only then is each committer
//! answered (and, on SQLite, the changes published in order).
//!
//! Sequence numbers are handed out inside the lock, so sequence order is
//! commit order across every process (serialized append, see
//! docs/architecture.md); what changed is that one lock holder now carries
//! a whole group of commits instead of one.

use std::sync::Arc;

use datastore_core::group_commit::{PendingCommit, WriteJob, WriteJobs, group_failure};
use datastore_core::{
    Change, Committed, Compaction, Error, Mutation, Result, Retention, StoreName, commit_time,
};

use crate::apply::{ROWS_PER_UNNEST, UNNEST_FROM, actor_value, op_name};
use crate::driver::{Columns, Dialect, Pools, Tx, Value, db_error};
use crate::engine::micros;
use crate::follow::Published;

/// The most commits in one PostgreSQL group. Each savepoint that writes is
/// a subtransaction; PostgreSQL caches 64 per transaction before other
/// sessions' snapshots must look them up on disk.
pub(crate) const MAX_GROUP_POSTGRES: usize = 48;
/// The most commits in one SQLite group.
pub(crate) const MAX_GROUP_SQLITE: usize = 512;
/// Feed rows per multi-row insert (8 parameters each).
const FEED_ROWS_PER_INSERT: usize = 500;

/// Each commit's result, the changes of those that landed, and the head
/// the group started from.
type GroupOutcome = (Vec<Result<Vec<Committed>>>, Vec<Change>, u64);

/// What the writer task owns: the pools, and how to lock and notify.
pub(crate) struct Writer {
    pub(crate) pools: Pools,
    pub(crate) dialect: Dialect,
    pub(crate) retention: Retention,
    pub(crate) shown_url: String,
    pub(crate) channel: String,
    pub(crate) published: Arc<Published>,
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
                WriteJob::StartFeedAfter { position, reply } => {
                    let _ = reply.send(self.start_feed_after(position).await);
                }
                WriteJob::CompactHistory {
                    kind,
                    retention,
                    reply,
                } => {
                    let _ = reply.send(self.compact_history(kind, &retention).await);
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
            Ok((results, changes, start)) => {
                // Published here at once, before anyone is answered, in
                // commit order after what other processes committed before
                // the group; the follower then skips the notification of
                // this group (PostgreSQL) or finds nothing new (SQLite).
                self.published.group(start, changes).await;
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
    ///
    /// A group of several commits is first tried without savepoints (each
    /// one a round trip to PostgreSQL): a commit that fails before writing
    /// anything (a precondition, most often) just fails. Only when a commit
    /// fails after writing, or the database refuses a statement (which on
    /// PostgreSQL aborts the whole transaction), is the group rolled back
    /// and run again with a savepoint per commit.
    async fn run_group(&self, batches: Vec<Vec<Mutation>>) -> Result<GroupOutcome> {
        if batches.len() > 1
            && let Some(outcome) = self.try_group(batches.clone(), false).await?
        {
            return Ok(outcome);
        }
        let outcome = self.try_group(batches, true).await?;
        Ok(outcome.expect("with savepoints a group never needs running again"))
    }

    /// One attempt at a group; `None` when it must run again with
    /// savepoints (`savepoints` false only).
    async fn try_group(
        &self,
        batches: Vec<Vec<Mutation>>,
        savepoints: bool,
    ) -> Result<Option<GroupOutcome>> {
        let group_error = |e| db_error(StoreName::Datastore, &self.shown_url, e);
        let mut tx = self.begin().await?;
        let start = self.lock_head(&mut tx).await?;
        let mut head = start;
        let now = commit_time();
        let single = batches.len() == 1;
        let mut results = Vec::with_capacity(batches.len());
        for mutations in batches {
            let savepoint = savepoints && !single;
            if savepoint {
                tx.execute("SAVEPOINT ds_commit", &[])
                    .await
                    .map_err(group_error)?;
            }
            let before = head;
            let mut wrote = false;
            match self
                .apply(&mut tx, &mut head, now, mutations, &mut wrote)
                .await
            {
                Ok(committed) => results.push(Ok(committed)),
                Err(e) if single => return Ok(Some((vec![Err(e)], Vec::new(), start))),
                Err(e) if savepoint => {
                    head = before;
                    tx.execute("ROLLBACK TO SAVEPOINT ds_commit", &[])
                        .await
                        .map_err(group_error)?;
                    results.push(Err(e));
                }
                // Nothing of it was written, and the transaction is fine
                // (a precondition failed, not a statement): it fails alone.
                Err(e)
                    if !wrote
                        && !matches!(
                            e,
                            Error::Unavailable { .. }
                                | Error::Backend { .. }
                                | Error::Corrupt { .. }
                        ) =>
                {
                    head = before;
                    results.push(Err(e));
                }
                // Part of it is in the transaction: start over, carefully.
                Err(_) => return Ok(None),
            }
        }
        if results.iter().all(|r| r.is_err()) {
            return Ok(Some((results, Vec::new(), start)));
        }
        let changes: Vec<Change> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .map(Committed::change)
            .collect();
        if head != start {
            if self.retention != Retention::FOREVER {
                Self::cut_feed(&mut tx, head, &self.retention).await?;
            }
            self.finish_group(&mut tx, &changes, head).await?;
            self.published.committing(head);
        }
        if let Err(e) = tx.commit().await {
            self.published.committing(start);
            return Err(group_error(e));
        }
        Ok(Some((results, changes, start)))
    }

    /// Takes the store's write lock (held to the end of the transaction)
    /// and reads the head. On SQLite `BEGIN IMMEDIATE` took the lock already.
    /// On PostgreSQL the lock is the row lock of the head: an `UPDATE`
    /// waits for the transaction holding it to end, then reads the head it
    /// committed, so every writer of the store, in any process, takes its
    /// turn (and an older build's writers, which update the same row first,
    /// take theirs alike).
    pub(crate) async fn lock_head(&self, tx: &mut Tx) -> Result<u64> {
        if self.dialect == Dialect::Sqlite {
            return Self::meta(tx, "head").await;
        }
        let row = tx
            .fetch_optional(
                "UPDATE ds_meta SET value = value WHERE name = 'head' RETURNING value",
                &[],
            )
            .await
            .map_err(|e| db_error(StoreName::Datastore, &self.shown_url, e))?;
        row.map(|r| r.int(0))
            .transpose()
            .map_err(|e| db_error(StoreName::Changes, "head", e))
            .map(|v| v.unwrap_or(0) as u64)
    }

    /// Writes the group's feed rows and the new head, and on PostgreSQL
    /// sends the notification: one statement there (data-modifying CTEs),
    /// since every statement is a round trip to the server.
    async fn finish_group(&self, tx: &mut Tx, changes: &[Change], head: u64) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            Self::insert_changes(tx, changes, None).await?;
            return Self::set_meta(tx, "head", head).await;
        }
        // The head goes in as a parameter, so the statement's text is the
        // same every commit and stays prepared on the connection.
        let finish = (
            "head AS (UPDATE ds_meta SET value = ? WHERE name = 'head') SELECT pg_notify(?, ?)",
            [
                Value::Int(head as i64),
                Value::Text(self.channel.clone()),
                Value::Text(head.to_string()),
            ],
        );
        Self::insert_changes(tx, changes, Some(finish)).await
    }

    /// The group's feed rows, in multi-row inserts; `then` (PostgreSQL)
    /// joins the last insert as a CTE with a final statement and its
    /// parameters.
    async fn insert_changes(
        tx: &mut Tx,
        changes: &[Change],
        then: Option<(&str, [Value; 3])>,
    ) -> Result<()> {
        // PostgreSQL: many rows as one array a column.
        if tx.dialect() == Dialect::Postgres && changes.len() >= UNNEST_FROM {
            return Self::insert_changes_unnest(tx, changes, then).await;
        }
        let chunks: Vec<&[Change]> = changes.chunks(FEED_ROWS_PER_INSERT).collect();
        let last = chunks.len().saturating_sub(1);
        if let (true, Some((finish, finish_args))) = (chunks.is_empty(), &then) {
            let sql = format!("WITH {finish}");
            tx.execute(&sql, finish_args)
                .await
                .map_err(|e| db_error(StoreName::Changes, "", e))?;
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let insert = format!(
                "INSERT INTO ds_changes (seq, kind, key, op, revision, at, parent, actor) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let sql = match &then {
                Some((finish, _)) if i == last => format!("WITH feed AS ({insert}), {finish}"),
                _ => insert,
            };
            let mut args = Vec::with_capacity(chunk.len() * 8);
            for c in chunk {
                args.extend(feed_row(c));
            }
            if let (Some((_, finish_args)), true) = (&then, i == last) {
                args.extend(finish_args.iter().cloned());
            }
            tx.execute(&sql, &args)
                .await
                .map_err(|e| db_error(StoreName::Changes, &chunk[0].id, e))?;
        }
        Ok(())
    }

    /// The group's feed rows on PostgreSQL, [`ROWS_PER_UNNEST`] a statement
    /// as arrays, the last joined with `then` as [`Self::insert_changes`]
    /// does.
    async fn insert_changes_unnest(
        tx: &mut Tx,
        changes: &[Change],
        then: Option<(&str, [Value; 3])>,
    ) -> Result<()> {
        let chunks: Vec<&[Change]> = changes.chunks(ROWS_PER_UNNEST).collect();
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut columns = Columns::shaped_like(&feed_row(&chunk[0]), chunk.len());
            for c in chunk {
                columns.push(feed_row(c));
            }
            let insert = format!(
                "INSERT INTO ds_changes (seq, kind, key, op, revision, at, parent, actor) SELECT * FROM {}",
                columns.unnest()
            );
            let (sql, tail) = match &then {
                Some((finish, args)) if i == last => {
                    (format!("WITH feed AS ({insert}), {finish}"), &args[..])
                }
                _ => (insert, &[][..]),
            };
            tx.fetch_columns(&sql, &columns, tail)
                .await
                .map_err(|e| db_error(StoreName::Changes, &chunk[0].id, e))?;
        }
        Ok(())
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        let mut tx = self.begin().await?;
        let head = self.lock_head(&mut tx).await?;
        let (removed, compacted_through) = Self::cut_feed(&mut tx, head, retention).await?;
        tx.commit()
            .await
            .map_err(|e| db_error(StoreName::Changes, "", e))?;
        Ok(Compaction {
            removed,
            compacted_through,
        })
    }

    /// Removes versions of `kind` beyond each record's newest
    /// `max_versions` and older than `max_age`, in one transaction.
    async fn compact_history(
        &self,
        kind: datastore_core::Kind,
        retention: &datastore_core::HistoryRetention,
    ) -> Result<u64> {
        let bad = |e| {
            db_error(
                StoreName::Datastore,
                format!("history of {}", kind.as_str()),
                e,
            )
        };
        let mut tx = self.begin().await?;
        let mut removed = 0;
        if let Some(max) = retention.max_versions {
            // Versions with `max` or more newer versions of the same record.
            let sql = "DELETE FROM ds_history WHERE kind = ? AND revision <= (\
                 SELECT n.revision FROM ds_history n WHERE n.kind = ds_history.kind \
                 AND n.key = ds_history.key ORDER BY n.revision DESC LIMIT 1 OFFSET ?)";
            removed += tx
                .execute(
                    sql,
                    &[
                        Value::Text(kind.as_str().into()),
                        Value::Int(i64::from(max)),
                    ],
                )
                .await
                .map_err(bad)?;
        }
        if let Some(cutoff) = retention.cutoff(commit_time()) {
            removed += tx
                .execute(
                    "DELETE FROM ds_history WHERE kind = ? AND at < ?",
                    &[
                        Value::Text(kind.as_str().into()),
                        Value::Int(micros(cutoff)),
                    ],
                )
                .await
                .map_err(bad)?;
        }
        tx.commit().await.map_err(bad)?;
        Ok(removed)
    }

    /// Raises the head to `position` and drops the feed through it, in one
    /// transaction under the write lock.
    async fn start_feed_after(&self, position: u64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let head = self.lock_head(&mut tx).await?;
        if position > head {
            Self::set_meta(&mut tx, "head", position).await?;
        }
        if position > Self::meta(&mut tx, "compacted_through").await? {
            tx.execute(
                "DELETE FROM ds_changes WHERE seq <= ?",
                &[Value::Int(position as i64)],
            )
            .await
            .map_err(|e| db_error(StoreName::Changes, position.to_string(), e))?;
            Self::set_meta(&mut tx, "compacted_through", position).await?;
        }
        tx.commit()
            .await
            .map_err(|e| db_error(StoreName::Changes, position.to_string(), e))?;
        Ok(head.max(position))
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

    /// Begins a write transaction; [`Writer::lock_head`] then takes the
    /// store's write lock.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        self.pools
            .begin_write()
            .await
            .map_err(|e| db_error(StoreName::Datastore, &self.shown_url, e))
    }
}

/// A feed row's values: seq, kind, key, op, revision, at, parent, actor.
fn feed_row(c: &Change) -> [Value; 8] {
    [
        Value::Int(c.seq as i64),
        Value::Text(c.kind.as_str().into()),
        Value::Text(c.id.clone()),
        Value::Text(op_name(c.op).into()),
        Value::Int(c.revision.get() as i64),
        Value::Int(micros(c.at)),
        c.parent.clone().map_or(Value::NullText, Value::Text),
        actor_value(c.actor.as_ref()),
    ]
}
