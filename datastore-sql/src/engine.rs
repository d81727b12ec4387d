//! The SQL [`Engine`] for SQLite and PostgreSQL.
//!
//! Commits go to a writer task (see `writer.rs`) that makes every commit
//! waiting at that moment durable in one transaction (group commit), each
//! failing alone (with a savepoint per commit when a failure left writes
//! behind). The transaction holds the store's write lock for its whole
//! length: `BEGIN IMMEDIATE` on SQLite's single writer connection, the row
//! lock of the head in `ds_meta` on PostgreSQL. Feed sequence numbers are handed out inside that lock, so
//! sequence order is commit order on both databases and a reader of
//! `seq > cursor` can never miss a change that commits later with a smaller
//! number (serialized append; the proof is in docs/architecture.md). On
//! PostgreSQL the transaction also sends
//! `pg_notify`, delivered at commit to every process listening; a listener
//! task per store reads the table from its last sequence number on each
//! wake-up (and every second, in case a notification was lost) and feeds
//! local subscribers. The table is the truth, the notification a wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use datastore_core::{
    Actor, Capabilities, Change, ChangeOp, Committed, Compaction, Engine, Error, FeedFilter,
    HistoryRetention, IndexValue, Kind, LiveChanges, LiveReceiver, Mutation, ReadMark, Result,
    Retention, Revision, Scan, StoreName, StoredRecord, StoredRef, StoredVersion, VersionScan,
};
use tokio::sync::Notify;

use crate::config::SqlConfig;
use crate::driver::{Dialect, Pools, Row, Value, db_error};
use crate::schema::{changes_sql, encode, record_columns, scan_sql, table};
use datastore_core::group_commit::{CommitQueue, GroupStats, commit_queue};
use datastore_core::redact_url;

use crate::follow::{Published, connect_listener, follow_postgres, follow_sqlite};
use crate::writer::{MAX_GROUP_POSTGRES, MAX_GROUP_SQLITE, Writer};

/// The SQL engine. Open it with [`SqlEngine::open`].
pub struct SqlEngine {
    pools: Pools,
    dialect: Dialect,
    config: SqlConfig,
    shown_url: String,
    /// Commits go to the writer task through this queue (`None` when the
    /// store was opened read-only).
    queue: Option<CommitQueue>,
    live: Arc<LiveChanges>,
    shutdown: Arc<Notify>,
    closed: AtomicBool,
    /// What the feed follower has published, and whether it is listening.
    published: Arc<Published>,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("url", &self.shown_url)
            .finish()
    }
}

fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn time(
    store: StoreName,
    key: &str,
    micros: i64,
) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| Error::Corrupt {
        store,
        key: key.to_string(),
        reason: format!("timestamp {micros} out of range"),
    })
}

/// Makes the pools and brings the schema to this build's: migrates, or
/// (read-only, `migrate = false`) only checks that it is current.
async fn connect(config: &SqlConfig, shown: &str) -> Result<Pools> {
    let pools = crate::connect::pools(config, shown).await?;
    if config.read_only || !config.migrate {
        crate::migrate::require_current(&pools, shown).await?;
    } else {
        crate::migrate::run(&pools, shown).await?;
    }
    Ok(pools)
}

/// The notification channel of this store: one per PostgreSQL database and
/// schema (per SQLite file), so stores sharing a server do not wake each
/// other.
async fn channel_of(pools: &Pools, config: &SqlConfig, shown: &str) -> Result<String> {
    let namespace = match pools {
        Pools::Postgres(_) => {
            let mut names = Vec::new();
            for sql in [
                "SELECT current_database()::text",
                "SELECT current_schema()::text",
            ] {
                let name = pools
                    .fetch_optional(sql, &[])
                    .await
                    .map_err(|e| db_error(StoreName::Datastore, shown, e))?
                    .and_then(|r| r.opt_text(0).ok().flatten())
                    .unwrap_or_default();
                names.push(name);
            }
            names.join(".")
        }
        Pools::Sqlite { .. } => config.url.clone(),
    };
    Ok(format!("datastore_{:016x}", fnv(&namespace)))
}

/// Starts following the changes other processes commit, so they reach this
/// process's subscribers: LISTEN on PostgreSQL, `PRAGMA data_version` polls
/// on SQLite (see `follow.rs`).
async fn listen(
    pools: &Pools,
    channel: &str,
    published: Arc<Published>,
    shutdown: Arc<Notify>,
    config: &SqlConfig,
    shown: &str,
) -> Result<()> {
    match pools {
        Pools::Postgres(pool) => {
            let listener = connect_listener(pool, channel)
                .await
                .map_err(|e| db_error(StoreName::Changes, shown, e))?;
            tokio::spawn(follow_postgres(
                listener,
                pool.clone(),
                channel.to_string(),
                published,
                shutdown,
                shown.to_string(),
            ));
        }
        Pools::Sqlite { reader, .. } => {
            let conn = reader
                .acquire()
                .await
                .map_err(|e| db_error(StoreName::Changes, shown, e))?
                .detach();
            tokio::spawn(follow_sqlite(
                conn,
                published,
                shutdown,
                config.poll_interval,
                shown.to_string(),
            ));
        }
    }
    Ok(())
}

impl SqlEngine {
    /// Connects, applies migrations (under a lock, so two processes opening
    /// at once is safe), and on PostgreSQL starts the feed listener.
    ///
    /// A malformed URL is `Invalid` and an unreachable server `Unavailable`;
    /// both name the URL without its password. A database migrated by a
    /// newer build is refused with `Unsupported`.
    pub async fn open(config: SqlConfig) -> Result<Self> {
        let shown = redact_url(&config.url);
        let pools = connect(&config, &shown).await?;
        let dialect = pools.dialect();
        let live = Arc::new(LiveChanges::new(config.subscriber_buffer));
        let channel = channel_of(&pools, &config, &shown).await?;
        let head = head_of(&pools, &shown).await?;
        let published = Published::new(head, live.clone(), pools.clone());
        let (queue, jobs) = commit_queue(
            shown.clone(),
            match dialect {
                Dialect::Sqlite => MAX_GROUP_SQLITE,
                Dialect::Postgres => MAX_GROUP_POSTGRES,
            },
        );
        let writer = Writer {
            pools: pools.clone(),
            dialect,
            retention: config.retention,
            shown_url: shown.clone(),
            channel: channel.clone(),
            published: published.clone(),
        };
        let queue = if config.read_only {
            drop(jobs);
            None
        } else {
            writer.reindex().await?;
            tokio::spawn(writer.run(jobs));
            Some(queue)
        };
        let shutdown = Arc::new(Notify::new());
        listen(
            &pools,
            &channel,
            published.clone(),
            shutdown.clone(),
            &config,
            &shown,
        )
        .await?;
        let engine = SqlEngine {
            published,
            dialect,
            pools,
            shown_url: shown,
            queue,
            live,
            shutdown,
            closed: AtomicBool::new(false),
            config,
        };
        Ok(engine)
    }

    /// How commits have been grouped since the store was opened (one
    /// transaction per group).
    pub fn commit_stats(&self) -> GroupStats {
        self.queue.as_ref().map(|q| q.stats()).unwrap_or_default()
    }

    /// The writer's queue; `Unsupported` on a store opened read-only.
    fn queue(&self) -> Result<&CommitQueue> {
        self.queue.as_ref().ok_or_else(|| Error::Unsupported {
            store: StoreName::Datastore,
            key: self.shown_url.clone(),
            operation: "writing to a store opened read-only".into(),
        })
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.shown_url
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Unavailable {
                store: StoreName::Datastore,
                key: self.shown_url.clone(),
                source: "the store is closed".into(),
            });
        }
        Ok(())
    }

    /// The rows of a scan.
    async fn scan_rows(&self, kind: Kind, scan: &Scan) -> Result<Vec<Row>> {
        self.check_open()?;
        let (sql, args) = scan_sql(self.dialect, kind, scan);
        self.pools
            .fetch_all(&sql, &args)
            .await
            .map_err(|e| db_error(kind.store(), "", e))
    }

    /// A record row lent to `read` as it stands in the row: key, body and
    /// actor borrowed, nothing copied out.
    fn lend<T>(kind: Kind, row: &Row, read: impl FnOnce(StoredRef<'_>) -> Result<T>) -> Result<T> {
        let store = kind.store();
        let key = row.str(0).map_err(|e| db_error(store, "", e))?;
        let decode = |e| db_error(store, key, e);
        let actor = row.opt_str(5).map_err(decode)?;
        let actor = actor_of(store, key, actor.map(str::to_owned))?;
        read(StoredRef {
            key,
            body: row.str(4).map_err(decode)?.as_bytes(),
            revision: Revision::new(row.int(1).map_err(decode)? as u64),
            created: time(store, key, row.int(2).map_err(decode)?)?,
            updated: time(store, key, row.int(3).map_err(decode)?)?,
            actor: actor.as_ref(),
        })
    }

    fn record(kind: Kind, row: &Row) -> Result<StoredRecord> {
        Self::lend(kind, row, |r| Ok(r.to_record()))
    }

    pub(crate) fn change(row: &Row, offset: usize) -> Result<Change> {
        let bad = |e| db_error(StoreName::Changes, "", e);
        let kind_name = row.text(offset + 1).map_err(bad)?;
        let seq = row.int(offset).map_err(bad)? as u64;
        Ok(Change {
            seq,
            kind: Kind::from_name(&kind_name).ok_or_else(|| Error::Corrupt {
                store: StoreName::Changes,
                key: seq.to_string(),
                reason: format!("unknown kind {kind_name:?}"),
            })?,
            id: row.text(offset + 2).map_err(bad)?,
            op: if row.text(offset + 3).map_err(bad)? == "delete" {
                ChangeOp::Delete
            } else {
                ChangeOp::Put
            },
            revision: Revision::new(row.int(offset + 4).map_err(bad)? as u64),
            at: time(
                StoreName::Changes,
                &seq.to_string(),
                row.int(offset + 5).map_err(bad)?,
            )?,
            parent: row.opt_text(offset + 6).map_err(bad)?,
            actor: actor_of(
                StoreName::Changes,
                &seq.to_string(),
                row.opt_text(offset + 7).map_err(bad)?,
            )?,
        })
    }
}

/// A stored actor column, read back (`Corrupt` if it is not one).
fn actor_of(store: StoreName, key: &str, text: Option<String>) -> Result<Option<Actor>> {
    text.map(|t| {
        t.parse()
            .map_err(|e: datastore_core::FieldError| Error::Corrupt {
                store,
                key: key.to_string(),
                reason: e.to_string(),
            })
    })
    .transpose()
}

/// The feed head of a store.
async fn head_of(pools: &Pools, shown: &str) -> Result<u64> {
    let row = pools
        .fetch_optional("SELECT value FROM ds_meta WHERE name = 'head'", &[])
        .await
        .map_err(|e| db_error(StoreName::Changes, shown, e))?;
    Ok(row
        .map(|r| r.int(0))
        .transpose()
        .map_err(|e| db_error(StoreName::Changes, shown, e))?
        .unwrap_or(0) as u64)
}

#[async_trait]
impl Engine for SqlEngine {
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>> {
        datastore_core::get_through_each(self, kind, keys).await
    }

    async fn get_each(
        &self,
        kind: Kind,
        keys: &[String],
        read: &mut (dyn for<'r> FnMut(usize, StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        self.check_open()?;
        if keys.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; keys.len()].join(", ");
        let sql = format!(
            "SELECT {} FROM {} WHERE key IN ({marks})",
            record_columns(self.dialect),
            table(kind)
        );
        let args: Vec<Value> = keys.iter().map(|k| Value::Text(k.clone())).collect();
        let rows = self
            .pools
            .fetch_all(&sql, &args)
            .await
            .map_err(|e| db_error(kind.store(), keys[0].clone(), e))?;
        // Lent from the driver's rows, in the keys' order (a key asked
        // twice is handed twice).
        if let [_] = keys {
            for row in &rows {
                Self::lend(kind, row, |stored| read(0, stored))?;
            }
            return Ok(());
        }
        let mut by_key = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            by_key.insert(row.str(0).map_err(|e| db_error(kind.store(), "", e))?, row);
        }
        for (at, key) in keys.iter().enumerate() {
            if let Some(row) = by_key.get(key.as_str()) {
                Self::lend(kind, row, |stored| read(at, stored))?;
            }
        }
        Ok(())
    }

    async fn get_with_counter(
        &self,
        kind: Kind,
        key: &str,
        counter: &str,
        read: &mut (dyn for<'r> FnMut(StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<u64> {
        self.check_open()?;
        // One row whether the record is there or not: its columns (NULL
        // when it is not) and the counter's value.
        let sql = format!(
            "SELECT {}, (SELECT value FROM ds_counters WHERE name = ?) \
             FROM (SELECT 1 AS one) AS one LEFT JOIN {} ON key = ?",
            record_columns(self.dialect),
            table(kind)
        );
        let args = [Value::Text(counter.into()), Value::Text(key.into())];
        let row = self
            .pools
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| db_error(kind.store(), key, e))?
            .ok_or_else(|| Error::Backend {
                store: kind.store(),
                key: key.to_string(),
                source: "a read of a record and a counter returned no row".into(),
            })?;
        let bad = |e| db_error(kind.store(), key, e);
        if row.opt_str(0).map_err(bad)?.is_some() {
            Self::lend(kind, &row, read)?;
        }
        Ok(row.opt_int(6).map_err(bad)?.unwrap_or(0) as u64)
    }

    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>> {
        let rows = self.scan_rows(kind, scan).await?;
        rows.iter().map(|r| Self::record(kind, r)).collect()
    }

    async fn scan_each(
        &self,
        kind: Kind,
        scan: &Scan,
        read: &mut (dyn for<'r> FnMut(StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        for row in &self.scan_rows(kind, scan).await? {
            Self::lend(kind, row, &mut *read)?;
        }
        Ok(())
    }

    async fn count(&self, kind: Kind, index: &'static str, prefix: &[IndexValue]) -> Result<u64> {
        self.check_open()?;
        let def = kind.index(index).ok_or_else(|| {
            Error::invalid(kind.store(), "", "index", format!("no index {index}"))
        })?;
        let mut conditions: Vec<String> = def
            .fields
            .iter()
            .zip(prefix)
            .map(|(f, _)| format!("{} = ?", f.name))
            .collect();
        if def.sparse {
            conditions.push(format!("{} IS NOT NULL", def.fields[0].name));
        }
        let args: Vec<Value> = def
            .fields
            .iter()
            .zip(prefix)
            .map(|(f, v)| encode(v, f.ty))
            .collect();
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!("SELECT COUNT(*) FROM {}{where_clause}", table(kind));
        let row = self
            .pools
            .fetch_optional(&sql, &args)
            .await
            .map_err(|e| db_error(kind.store(), "", e))?;
        Ok(row
            .map(|r| r.int(0))
            .transpose()
            .map_err(|e| db_error(kind.store(), "", e))?
            .unwrap_or(0) as u64)
    }

    async fn counter(&self, name: &str) -> Result<u64> {
        self.check_open()?;
        let row = self
            .pools
            .fetch_optional(
                "SELECT value FROM ds_counters WHERE name = ?",
                &[Value::Text(name.into())],
            )
            .await
            .map_err(|e| db_error(StoreName::Kind(Kind::Run), name, e))?;
        Ok(row
            .map(|r| r.int(0))
            .transpose()
            .map_err(|e| db_error(StoreName::Kind(Kind::Run), name, e))?
            .unwrap_or(0) as u64)
    }

    /// The head this process has published (`None` when read-only): a
    /// commit whose lock finds the head unmoved since skips the reads its
    /// caller's marked requirements would take.
    fn read_mark(&self) -> Option<ReadMark> {
        self.queue.as_ref()?;
        Some(ReadMark(self.published.visible()))
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        self.check_open()?;
        self.queue()?.commit(mutations).await
    }

    async fn history(
        &self,
        kind: Kind,
        key: &str,
        scan: &VersionScan,
    ) -> Result<Vec<StoredVersion>> {
        self.check_open()?;
        let store = kind.store();
        let mut args = vec![Value::Text(kind.as_str().into()), Value::Text(key.into())];
        if let Some(r) = scan.after {
            args.push(Value::Int(r.get().min(i64::MAX as u64) as i64));
        }
        args.push(Value::Int(scan.limit.min(i64::MAX as usize) as i64));
        let sql = crate::schema::history_sql(scan.direction, scan.after.is_some());
        let rows = self
            .pools
            .fetch_all(&sql, &args)
            .await
            .map_err(|e| db_error(store, key, e))?;
        rows.iter()
            .map(|r| {
                let bad = |e| db_error(store, key, e);
                let revision = Revision::new(r.int(0).map_err(bad)? as u64);
                Ok(StoredVersion {
                    revision,
                    op: if r.text(1).map_err(bad)? == "delete" {
                        ChangeOp::Delete
                    } else {
                        ChangeOp::Put
                    },
                    at: time(store, key, r.int(2).map_err(bad)?)?,
                    actor: actor_of(store, key, r.opt_text(3).map_err(bad)?)?,
                    body: r.opt_text(4).map_err(bad)?.map(String::into_bytes),
                })
            })
            .collect()
    }

    async fn compact_history(&self, kind: Kind, retention: &HistoryRetention) -> Result<u64> {
        self.check_open()?;
        self.queue()?.compact_history(kind, *retention).await
    }

    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        self.check_open()?;
        let (sql, filter_args) = changes_sql(filter);
        let mut args = Vec::with_capacity(filter_args.len() + 2);
        args.push(Value::Int(after as i64));
        args.extend(filter_args);
        args.push(Value::Int(limit as i64));
        let rows = self
            .pools
            .fetch_all(&sql, &args)
            .await
            .map_err(|e| db_error(StoreName::Changes, after.to_string(), e))?;
        let compacted = match rows.first() {
            Some(r) => r.int(0).map_err(|e| db_error(StoreName::Changes, "", e))? as u64,
            None => 0,
        };
        if after < compacted {
            return Err(Error::CursorExpired {
                store: StoreName::Changes,
                key: after.to_string(),
                compacted_through: compacted,
            });
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if r.opt_int(1)
                .map_err(|e| db_error(StoreName::Changes, "", e))?
                .is_some()
            {
                out.push(Self::change(r, 1)?);
            }
        }
        Ok(out)
    }

    async fn head(&self) -> Result<u64> {
        self.check_open()?;
        let row = self
            .pools
            .fetch_optional("SELECT value FROM ds_meta WHERE name = 'head'", &[])
            .await
            .map_err(|e| db_error(StoreName::Changes, "head", e))?;
        Ok(row
            .map(|r| r.int(0))
            .transpose()
            .map_err(|e| db_error(StoreName::Changes, "head", e))?
            .unwrap_or(0) as u64)
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        self.check_open()?;
        self.queue()?.compact(*retention).await
    }

    async fn start_feed_after(&self, position: u64) -> Result<u64> {
        self.check_open()?;
        self.queue()?.start_feed_after(position).await
    }

    fn live(&self, filter: FeedFilter) -> LiveReceiver {
        self.live.subscribe(filter)
    }

    fn retention(&self) -> Retention {
        self.config.retention
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new(match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        });
        caps.durable = true;
        caps.shared_across_processes = true;
        caps.subscriber_buffer = self.config.subscriber_buffer;
        caps.max_record_bytes = self.config.max_record_bytes;
        caps.read_only = self.config.read_only;
        caps
    }

    async fn backup(&self, dest: &std::path::Path) -> Result<u64> {
        self.check_open()?;
        let shown = dest.display().to_string();
        let Pools::Sqlite { reader, .. } = &self.pools else {
            return Err(Error::Unsupported {
                store: StoreName::Datastore,
                key: shown,
                operation: "a file backup of PostgreSQL (export the store instead)".into(),
            });
        };
        let bad = |e| db_error(StoreName::Datastore, &shown, e);
        // VACUUM INTO reads in one transaction: a snapshot of the database,
        // written while writers go on.
        let dest_text = dest.to_str().ok_or_else(|| {
            Error::invalid(StoreName::Datastore, &shown, "destination", "is not UTF-8")
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest_text)
            .execute(reader)
            .await
            .map_err(bad)?;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dest)
            .read_only(true);
        let mut copy = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .map_err(bad)?;
        let head: i64 = sqlx::query_scalar("SELECT value FROM ds_meta WHERE name = 'head'")
            .fetch_one(&mut copy)
            .await
            .map_err(bad)?;
        let _ = sqlx::Connection::close(copy).await;
        Ok(head as u64)
    }

    async fn snapshot(&self) -> Result<Arc<dyn datastore_core::Datastore>> {
        self.check_open()?;
        let pools = self
            .pools
            .snapshot()
            .await
            .map_err(|e| db_error(StoreName::Datastore, &self.shown_url, e))?;
        let head = head_of(&pools, &self.shown_url).await?;
        let live = Arc::new(LiveChanges::new(self.config.subscriber_buffer));
        let mut config = self.config.clone();
        config.read_only = true;
        let engine = SqlEngine {
            published: Published::new(head, live.clone(), pools.clone()),
            dialect: self.dialect,
            pools,
            shown_url: self.shown_url.clone(),
            queue: None,
            live,
            shutdown: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            config,
        };
        Ok(datastore_core::EngineStore::new(engine).into_dyn())
    }

    async fn ready(&self) -> Result<()> {
        self.check_open()?;
        self.head().await?;
        if !self.published.listening.load(Ordering::Acquire) {
            return Err(Error::Unavailable {
                store: StoreName::Changes,
                key: String::new(),
                source: "the feed listener (LISTEN) is not connected; reconnecting".into(),
            });
        }
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        // Commits already queued finish; later ones are refused.
        self.closed.store(true, Ordering::Release);
        if let Ok(queue) = self.queue() {
            let _ = queue.flush().await;
        }
        self.live.close();
        self.shutdown.notify_waiters();
        self.shutdown.notify_one();
        self.pools.close().await;
        Ok(())
    }
}

impl Drop for SqlEngine {
    fn drop(&mut self) {
        self.shutdown.notify_one();
    }
}
