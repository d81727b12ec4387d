//! Following the feed table: every commit, from this process or another,
//! reaches this process's live subscribers once, in sequence order.
//!
//! The table is the truth; what wakes a follower differs. PostgreSQL sends a
//! `pg_notify` with every group (and the follower looks once a second in
//! case one was lost). SQLite has no notifications between processes: the
//! follower asks `PRAGMA data_version` on a connection of its own, which
//! changes whenever another connection commits, a few times a second.
//! This process's own writer also publishes its groups at once, so they do
//! not wait for the next look (and on PostgreSQL the notification of a
//! group already published reads nothing); [`Published`] keeps the two
//! from publishing a change twice or out of order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use datastore_core::{Change, LiveChanges, StoreName};
use sqlx::Connection;
use sqlx::postgres::PgListener;
use tokio::sync::{Mutex, Notify};

use crate::driver::{Pools, Value, db_error};
use crate::engine::SqlEngine;

/// Feed rows read per statement while catching up.
const ROWS_PER_READ: i64 = 500;

/// The sequence number published so far, shared by the follower and (on
/// SQLite) the writer; publication happens under its lock.
#[derive(Debug)]
pub(crate) struct Published {
    through: Mutex<u64>,
    live: Arc<LiveChanges>,
    pub(crate) pools: Pools,
    /// Whether the follower hears other processes' commits (PostgreSQL:
    /// its LISTEN connection is up; SQLite: always).
    pub(crate) listening: AtomicBool,
    /// The head of the last group this process's writer sent to commit;
    /// the writer publishes it (and what other processes committed before
    /// it), so a notification at or below it reads nothing.
    committing: AtomicU64,
    /// `through`, readable without its lock: every write at or below it
    /// is committed (see [`Published::visible`]).
    visible: AtomicU64,
}

impl Published {
    pub(crate) fn new(through: u64, live: Arc<LiveChanges>, pools: Pools) -> Arc<Self> {
        Arc::new(Published {
            through: Mutex::new(through),
            live,
            pools,
            listening: AtomicBool::new(true),
            committing: AtomicU64::new(0),
            visible: AtomicU64::new(through),
        })
    }

    /// The head published so far. Every write at or below it is committed
    /// and seen by any read that starts later, so it serves as the engine's
    /// read mark: a writer that finds the head still here when it takes the
    /// lock knows nothing was written since (see
    /// [`datastore_core::Engine::read_mark`]).
    pub(crate) fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Moves `through` (and its lock-free copy) to `seq`.
    fn advance(&self, through: &mut u64, seq: u64) {
        *through = seq;
        self.visible.store(seq, Ordering::Release);
    }

    /// Publishes every change in the table after the last published.
    /// Returns false when the table could not be read.
    pub(crate) async fn catch_up(&self) -> bool {
        let mut through = self.through.lock().await;
        self.read_after(&mut through, None).await
    }

    /// Marks a group of this process's writer as about to commit at
    /// `head`: its notification need not be read (see [`Published::covers`]).
    pub(crate) fn committing(&self, head: u64) {
        self.committing.store(head, Ordering::Release);
    }

    /// Whether every change through `head` is published already, or will
    /// be by this process's writer: a group it is committing, with what
    /// other processes committed before it. (Should that commit fail, the
    /// writer marks its start again; the follower's look once a second
    /// reads the table in any case.) Without this, the notification of
    /// the writer's own group often arrived before the writer published
    /// it, and the follower read the table, holding the lock the writer
    /// then waited on before answering.
    pub(crate) async fn covers(&self, head: u64) -> bool {
        head <= self.committing.load(Ordering::Acquire) || *self.through.lock().await >= head
    }

    /// Publishes a group this process just committed, after publishing
    /// any changes other processes committed before it (`after` is the head
    /// the group started from).
    pub(crate) async fn group(&self, after: u64, changes: Vec<Change>) {
        let Some(last) = changes.last().map(|c| c.seq) else {
            return;
        };
        let mut through = self.through.lock().await;
        if *through < after {
            self.read_after(&mut through, Some(after)).await;
        }
        let fresh: Vec<Change> = changes.into_iter().filter(|c| c.seq > *through).collect();
        self.live.publish(fresh);
        let last = (*through).max(last);
        self.advance(&mut through, last);
    }

    /// Reads and publishes the rows after `through` (up to `until`, if
    /// given), advancing it.
    async fn read_after(&self, through: &mut u64, until: Option<u64>) -> bool {
        loop {
            let rows = match self
                .pools
                .fetch_all(
                    "SELECT seq, kind, key, op, revision, at, parent, actor FROM ds_changes WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    &[
                        Value::Int(*through as i64),
                        Value::Int(until.map_or(i64::MAX, |u| u as i64)),
                        Value::Int(ROWS_PER_READ),
                    ],
                )
                .await
            {
                Ok(rows) => rows,
                Err(_) => return false,
            };
            let n = rows.len() as i64;
            for row in rows {
                let Ok(change) = SqlEngine::change(&row, 0) else {
                    return false;
                };
                self.advance(through, change.seq);
                self.live.publish([change]);
            }
            if n < ROWS_PER_READ {
                return true;
            }
        }
    }
}

/// PostgreSQL: a notification (or a second's wait) means read the table,
/// unless the notification's head (its payload) is published already, as
/// this process's own groups are. When the LISTEN connection is lost, the
/// follower says so (readiness reports it) and connects again every second
/// until it is back; the feed table is read after each attempt, so nothing
/// committed meanwhile is missed.
pub(crate) async fn follow_postgres(
    mut listener: PgListener,
    pool: sqlx::PgPool,
    channel: String,
    published: Arc<Published>,
    shutdown: Arc<Notify>,
    shown: String,
) {
    loop {
        let (lost, head) = tokio::select! {
            _ = shutdown.notified() => return,
            r = listener.try_recv() => match r {
                Ok(Some(n)) => (false, n.payload().parse::<u64>().ok()),
                _ => (true, None),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => (false, None),
        };
        published.pools.sample_metrics();
        if let Some(head) = head
            && published.covers(head).await
        {
            continue;
        }
        if lost {
            published.listening.store(false, Ordering::Release);
            tracing::warn!(url = %shown, "the feed listener lost its connection; connecting again");
            loop {
                tokio::select! {
                    _ = shutdown.notified() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                match connect_listener(&pool, &channel).await {
                    Ok(fresh) => {
                        listener = fresh;
                        published.listening.store(true, Ordering::Release);
                        tracing::info!(url = %shown, "the feed listener is connected again");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(url = %shown, error = %e, "the feed listener cannot connect yet")
                    }
                }
            }
        }
        published.catch_up().await;
    }
}

/// A LISTEN connection on `channel`.
pub(crate) async fn connect_listener(
    pool: &sqlx::PgPool,
    channel: &str,
) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// SQLite: `PRAGMA data_version` changes when another connection commits;
/// ask it every `interval` on a connection of the follower's own.
pub(crate) async fn follow_sqlite(
    mut conn: sqlx::SqliteConnection,
    published: Arc<Published>,
    shutdown: Arc<Notify>,
    interval: Duration,
    shown: String,
) {
    let mut seen: Option<i64> = None;
    loop {
        tokio::select! {
            _ = shutdown.notified() => {
                let _ = conn.close().await;
                return;
            }
            _ = tokio::time::sleep(interval) => {}
        }
        published.pools.sample_metrics();
        let version: i64 = match sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(url = %shown, error = %db_error(StoreName::Changes, &shown, e), "the feed follower cannot read data_version");
                continue;
            }
        };
        if seen != Some(version) {
            seen = Some(version);
            published.catch_up().await;
        }
    }
}
