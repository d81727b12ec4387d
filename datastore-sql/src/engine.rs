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

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use datastore_core::{
    Capabilities, Change, ChangeOp, Committed, Compaction, Engine, Error, IndexValue, Kind,
    LiveChanges, Mutation, Result, Retention, Revision, Scan, StoreName, StoredRecord,
};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{Notify, broadcast};

use crate::config::SqlConfig;
use crate::driver::{Dialect, Pools, Row, Value, db_error};
use crate::schema::{encode, record_columns, scan_sql, table};
use datastore_core::group_commit::{CommitQueue, GroupStats, commit_queue};
use datastore_core::redact_url;

use crate::writer::{MAX_GROUP_POSTGRES, MAX_GROUP_SQLITE, Writer};

/// The table recording this project's migrations (never `_sqlx_migrations`,
/// so a host service's own migrations cannot collide).
pub const MIGRATIONS_TABLE: &str = "datastore_migrations";

fn sqlite_migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

fn postgres_migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/postgres")
}

/// The SQL engine. Open it with [`SqlEngine::open`].
pub struct SqlEngine {
    pools: Pools,
    dialect: Dialect,
    config: SqlConfig,
    shown_url: String,
    /// PostgreSQL: the notification channel of this schema.
    channel: String,
    /// Commits go to the writer task through this queue.
    queue: CommitQueue,
    live: Arc<LiveChanges>,
    shutdown: Arc<Notify>,
    closed: AtomicBool,
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

fn kind_named(name: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| k.as_str() == name)
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

impl SqlEngine {
    /// Connects, applies migrations (under a lock, so two processes opening
    /// at once is safe), and on PostgreSQL starts the feed listener.
    ///
    /// A malformed URL is `Invalid` and an unreachable server `Unavailable`;
    /// both name the URL without its password. A database migrated by a
    /// newer build is refused with `Unsupported`.
    pub async fn open(config: SqlConfig) -> Result<Self> {
        let shown = redact_url(&config.url);
        let bad_url = |reason: String| Error::invalid(StoreName::Datastore, &shown, "url", reason);
        let unreachable = |e: sqlx::Error| Error::Unavailable {
            store: StoreName::Datastore,
            key: shown.clone(),
            source: format!("cannot connect: {e}").into(),
        };
        let (pools, migrator) = if config.url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(&config.url)
                .map_err(|e| bad_url(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(config.connect_timeout);
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(config.connect_timeout)
                .connect_with(opts.clone())
                .await
                .map_err(unreachable)?;
            let reader = SqlitePoolOptions::new()
                .max_connections(config.pool_size.max(1))
                .test_before_acquire(false)
                .acquire_timeout(config.connect_timeout)
                .connect_with(opts)
                .await
                .map_err(unreachable)?;
            (Pools::Sqlite { writer, reader }, sqlite_migrations())
        } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
            let mut opts =
                PgConnectOptions::from_str(&config.url).map_err(|e| bad_url(e.to_string()))?;
            if let Some(schema) = &config.schema {
                if schema.is_empty()
                    || !schema
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(Error::invalid(
                        StoreName::Datastore,
                        &shown,
                        "schema",
                        format!("{schema:?} is not a plain identifier (letters, digits, _)"),
                    ));
                }
                opts = opts.options([("search_path", schema.as_str())]);
            }
            if let Some(t) = config.statement_timeout {
                opts = opts.options([("statement_timeout", format!("{}", t.as_millis()))]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(config.pool_size.max(2))
                .test_before_acquire(false)
                .acquire_timeout(config.connect_timeout)
                .connect_with(opts)
                .await
                .map_err(unreachable)?;
            (Pools::Postgres(pool), postgres_migrations())
        } else {
            return Err(bad_url(
                "unknown scheme; expected sqlite://PATH or postgres://HOST/DB".into(),
            ));
        };
        migrate(&pools, migrator, &shown).await?;
        let dialect = pools.dialect();
        let namespace = match &pools {
            Pools::Postgres(_) => {
                let row = pools
                    .fetch_optional("SELECT current_schema()::text", &[])
                    .await
                    .map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
                let schema = row
                    .and_then(|r| r.opt_text(0).ok().flatten())
                    .unwrap_or_default();
                let db = pools
                    .fetch_optional("SELECT current_database()::text", &[])
                    .await
                    .map_err(|e| db_error(StoreName::Datastore, &shown, e))?
                    .and_then(|r| r.opt_text(0).ok().flatten())
                    .unwrap_or_default();
                format!("{db}.{schema}")
            }
            Pools::Sqlite { .. } => config.url.clone(),
        };
        let live = Arc::new(LiveChanges::new(config.subscriber_buffer));
        let channel = format!("datastore_{:016x}", fnv(&namespace));
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
            live: live.clone(),
        };
        writer.reindex().await?;
        tokio::spawn(writer.run(jobs));
        let engine = SqlEngine {
            dialect,
            channel,
            pools,
            shown_url: shown,
            queue,
            live: live.clone(),
            shutdown: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            config,
        };
        if let Pools::Postgres(pool) = &engine.pools {
            let head = engine.head().await?;
            let mut listener = PgListener::connect_with(pool)
                .await
                .map_err(|e| db_error(StoreName::Changes, &engine.shown_url, e))?;
            listener
                .listen(&engine.channel)
                .await
                .map_err(|e| db_error(StoreName::Changes, &engine.shown_url, e))?;
            tokio::spawn(follow(
                engine.pools.clone(),
                listener,
                live,
                head,
                engine.shutdown.clone(),
            ));
        }
        Ok(engine)
    }

    /// How commits have been grouped since the store was opened (one
    /// transaction per group).
    pub fn commit_stats(&self) -> GroupStats {
        self.queue.stats()
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

    fn record(kind: Kind, row: &Row) -> Result<StoredRecord> {
        let store = kind.store();
        let key = row.text(0).map_err(|e| db_error(store, "", e))?;
        let decode = |e| db_error(store, key.clone(), e);
        Ok(StoredRecord {
            revision: Revision::new(row.int(1).map_err(decode)? as u64),
            created: time(store, &key, row.int(2).map_err(decode)?)?,
            updated: time(store, &key, row.int(3).map_err(decode)?)?,
            body: row.text(4).map_err(decode)?.into_bytes(),
            key,
        })
    }

    fn change(row: &Row, offset: usize) -> Result<Change> {
        let bad = |e| db_error(StoreName::Changes, "", e);
        let kind_name = row.text(offset + 1).map_err(bad)?;
        let seq = row.int(offset).map_err(bad)? as u64;
        Ok(Change {
            seq,
            store: kind_named(&kind_name).ok_or_else(|| Error::Corrupt {
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
        })
    }
}

async fn migrate(pools: &Pools, mut migrator: sqlx::migrate::Migrator, shown: &str) -> Result<()> {
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.set_locking(true);
    let result = match pools {
        Pools::Sqlite { writer, .. } => migrator.run(writer).await,
        Pools::Postgres(pool) => migrator.run(pool).await,
    };
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => Error::Unsupported {
            store: StoreName::Datastore,
            key: shown.to_string(),
            operation: format!(
                "opening a database with schema migration {v}, which this build does not know: \
                 it was migrated by a newer version of datastore-sql"
            ),
        },
        sqlx::migrate::MigrateError::Execute(e) => db_error(StoreName::Datastore, shown, e),
        other => Error::Backend {
            store: StoreName::Datastore,
            key: shown.to_string(),
            source: Box::new(other),
        },
    })
}

/// PostgreSQL: turns notifications (and a one-second poll) into reads of the
/// feed table after the last sequence number delivered, published in order.
async fn follow(
    pools: Pools,
    mut listener: PgListener,
    live: Arc<LiveChanges>,
    mut delivered: u64,
    shutdown: Arc<Notify>,
) {
    loop {
        tokio::select! {
            _ = shutdown.notified() => return,
            _ = listener.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        loop {
            let rows = match pools
                .fetch_all(
                    "SELECT seq, kind, key, op, revision, at, parent FROM ds_changes WHERE seq > ? ORDER BY seq LIMIT 500",
                    &[Value::Int(delivered as i64)],
                )
                .await
            {
                Ok(rows) => rows,
                Err(_) => break,
            };
            let n = rows.len();
            for row in rows {
                let Ok(change) = SqlEngine::change(&row, 0) else {
                    return;
                };
                delivered = change.seq;
                live.publish([change]);
            }
            if n < 500 {
                break;
            }
        }
    }
}

#[async_trait]
impl Engine for SqlEngine {
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>> {
        self.check_open()?;
        if keys.is_empty() {
            return Ok(Vec::new());
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
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let r = Self::record(kind, row)?;
            found.insert(r.key.clone(), r);
        }
        Ok(keys.iter().map(|k| found.remove(k)).collect())
    }

    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>> {
        self.check_open()?;
        let (sql, args) = scan_sql(self.dialect, kind, scan);
        let rows = self
            .pools
            .fetch_all(&sql, &args)
            .await
            .map_err(|e| db_error(kind.store(), "", e))?;
        rows.iter().map(|r| Self::record(kind, r)).collect()
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
            .map_err(|e| db_error(StoreName::Runs, name, e))?;
        Ok(row
            .map(|r| r.int(0))
            .transpose()
            .map_err(|e| db_error(StoreName::Runs, name, e))?
            .unwrap_or(0) as u64)
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        self.check_open()?;
        self.queue.commit(mutations).await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        self.check_open()?;
        // One statement, so the compaction point and the rows come from one snapshot.
        let rows = self
            .pools
            .fetch_all(
                "SELECT m.value, c.seq, c.kind, c.key, c.op, c.revision, c.at, c.parent FROM ds_meta m \
                 LEFT JOIN ds_changes c ON c.seq > ? WHERE m.name = 'compacted_through' ORDER BY c.seq LIMIT ?",
                &[Value::Int(after as i64), Value::Int(limit as i64)],
            )
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
        self.queue.compact(*retention).await
    }

    fn live(&self) -> broadcast::Receiver<Change> {
        self.live.subscribe()
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
        caps.shared_across_processes = self.dialect == Dialect::Postgres;
        caps.subscriber_buffer = self.config.subscriber_buffer;
        caps.max_record_bytes = self.config.max_record_bytes;
        caps
    }

    async fn close(&self) -> Result<()> {
        // Commits already queued finish; later ones are refused.
        self.closed.store(true, Ordering::Release);
        let _ = self.queue.flush().await;
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
