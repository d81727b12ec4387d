//! [`EngineStore`]: the typed substores, batches and the feed, built once
//! over any [`Engine`]. Backends construct it around their engine.
//!
//! - [`records`]: the generic record path (validate, index, commit, read,
//!   list) and `RecordStore` for every editable kind;
//! - [`typed`]: what each typed substore adds on top (usernames, run
//!   numbers and events, collection patches);
//! - [`logs`]: append-only logs; [`batches`]: atomic batches;
//!   [`feed`]: the change feed.

mod batches;
mod feed;
mod logs;
mod records;
mod typed;

use std::sync::Arc;

use async_trait::async_trait;

use crate::actor::Actor;
use crate::batch::Batch;
use crate::capabilities::Capabilities;
use crate::engine::{Engine, Mutation};
use crate::error::{Error, Result, StoreName};
use crate::history::{HistoryCompaction, HistoryPolicy};
use crate::record::{Kind, Reference};
use crate::revision::{Precondition, Revision};
use crate::stores::Datastore;

/// The most ids one `get_many` takes.
pub const MAX_GET_MANY: usize = 1000;
/// The most ops one log append takes.
pub const MAX_APPEND_OPS: usize = 1000;
/// How often a store-internal read-modify-write (run numbers, run events,
/// collection patches, log removal) retries after losing a race.
const RMW_ATTEMPTS: usize = 1000;

/// A [`Datastore`] over an [`Engine`]: validation, index entries, cursors,
/// run numbers, log appends, batches and subscriptions, the same for every
/// backend.
pub struct EngineStore<E: Engine> {
    engine: Arc<E>,
    /// Who this view's writes are made by (see [`Datastore::with_actor`]).
    actor: Option<Actor>,
    /// Which kinds write versions, and how long they are kept.
    history: Arc<HistoryPolicy>,
}

impl<E: Engine> std::fmt::Debug for EngineStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineStore")
            .field("backend", &self.engine.capabilities().backend)
            .finish()
    }
}

/// A put ready to commit: its key and mutations, plus the references the
/// commit checks (to turn a missing reference into an `Invalid` error).
struct PreparedPut {
    key: String,
    mutations: Vec<Mutation>,
    references: Vec<Reference>,
}

/// A batch ready to commit.
struct PreparedBatch {
    mutations: Vec<Mutation>,
    references: Vec<(StoreName, String, Reference)>,
    /// How many committed writes each op produces, to find its revision.
    writes_per_op: Vec<usize>,
    /// Records whose precondition was strengthened by a fixed-field check.
    pinned: Vec<(Kind, String)>,
}

/// The precondition a put commits with after its fixed fields were checked.
struct Pinned {
    precondition: Precondition,
    /// True when it is stricter than the caller's, so losing a race against
    /// another write means checking again, not failing.
    strengthened: bool,
}

/// Sets the precondition of a prepared put (its first mutation).
fn set_precondition(m: &mut Mutation, to: Precondition) {
    if let Mutation::Put(put) = m {
        put.precondition = to;
    }
}

/// True when a commit failed on the precondition of this record.
fn lost_race(e: &Error, kind: Kind, key: &str) -> bool {
    match e {
        Error::Conflict { store, key: k, .. }
        | Error::AlreadyExists { store, key: k }
        | Error::NotFound { store, key: k } => *store == kind.store() && k == key,
        _ => false,
    }
}

/// Runs a store-internal read-modify-write (run numbers, events, patches,
/// renames, log removal, batches with pinned records) until it holds.
///
/// `$attempt` is a block evaluating to `Some(result)`; `continue` (or
/// `None`) in it means it lost a race to a concurrent write, and it runs
/// again after a yield, up to [`RMW_ATTEMPTS`] times in all; after that the
/// enclosing function returns `Unavailable`: "too much contention {what}".
/// `?` and `return` in the block act on the enclosing function. (A macro,
/// not an async closure: the closure's future would not be `Send` for
/// every lifetime, which `async_trait` needs.)
macro_rules! retry_on_contention {
    ($store:expr, $key:expr, $what:expr, $attempt:block $(,)?) => {{
        let mut attempts = 0usize;
        loop {
            attempts += 1;
            if attempts > 1 {
                if attempts > $crate::engine_store::RMW_ATTEMPTS {
                    return Err($crate::engine_store::contention($store, $key, $what));
                }
                tokio::task::yield_now().await;
            }
            if let Some(done) = $attempt {
                break done;
            }
        }
    }};
}
use retry_on_contention;

/// The error of a read-modify-write that kept losing races.
fn contention(store: StoreName, key: &str, what: &str) -> Error {
    Error::Unavailable {
        store,
        key: key.to_string(),
        source: format!("too much contention {what}").into(),
    }
}

/// `Invalid` naming the first fixed field a put would change.
fn check_fixed(
    kind: Kind,
    key: &str,
    stored: &[(&'static str, String)],
    wanted: &[(&'static str, String)],
) -> Result<()> {
    for ((field, old), (_, new)) in stored.iter().zip(wanted) {
        if old != new {
            return Err(Error::invalid(
                kind.store(),
                key,
                *field,
                format!(
                    "is fixed when the record is created: stored {old:?}, this put has {new:?}"
                ),
            ));
        }
    }
    Ok(())
}

impl<E: Engine> EngineStore<E> {
    /// Wraps an engine.
    pub fn new(engine: E) -> Self {
        EngineStore {
            engine: Arc::new(engine),
            actor: None,
            history: Arc::new(HistoryPolicy::default()),
        }
    }

    /// Sets which kinds keep history and for how long (by default
    /// [`HistoryPolicy::default`]).
    pub fn with_history(mut self, policy: HistoryPolicy) -> Self {
        self.history = Arc::new(policy);
        self
    }

    /// The history policy.
    pub fn history_policy(&self) -> &HistoryPolicy {
        &self.history
    }

    /// Names this view's actor on every put and delete, and asks for a
    /// version where the kind keeps history.
    fn stamp(&self, mutations: &mut [Mutation]) {
        for m in mutations {
            match m {
                Mutation::Put(p) => {
                    p.actor.clone_from(&self.actor);
                    p.history = self.history.records(p.kind);
                }
                Mutation::Delete(d) => {
                    d.actor.clone_from(&self.actor);
                    d.history = self.history.records(d.kind);
                }
                Mutation::Require(_) | Mutation::RaiseCounter(_) => {}
            }
        }
    }

    /// Commits stamped mutations (see [`EngineStore::stamp`]).
    async fn commit_stamped(
        &self,
        mut mutations: Vec<Mutation>,
    ) -> Result<Vec<crate::engine::Committed>> {
        self.stamp(&mut mutations);
        self.engine.commit(mutations).await
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Boxes the store as a shared `dyn Datastore`.
    pub fn into_dyn(self) -> Arc<dyn Datastore> {
        Arc::new(self)
    }
}

#[async_trait]
impl<E: Engine> Datastore for EngineStore<E> {
    crate::substores_are_self!();

    async fn apply(&self, batch: Batch) -> Result<Vec<Revision>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.apply_batch(batch).await
    }

    async fn count(&self, kind: Kind) -> Result<u64> {
        // Every record has an entry in each non-sparse index.
        let index = kind.indexes().iter().find(|i| !i.sparse).ok_or_else(|| {
            Error::invalid(
                kind.store(),
                "",
                "kind",
                "has no index that holds every record",
            )
        })?;
        self.engine.count(kind, index.name, &[]).await
    }

    fn capabilities(&self) -> Capabilities {
        self.engine.capabilities()
    }

    async fn ready(&self) -> Result<()> {
        self.engine.ready().await
    }

    async fn backup(&self, dest: &std::path::Path) -> Result<crate::FeedCursor> {
        if dest.exists() {
            return Err(Error::invalid(
                StoreName::Datastore,
                dest.display().to_string(),
                "destination",
                "already exists; a backup goes to a new path",
            ));
        }
        self.engine.backup(dest).await.map(crate::FeedCursor)
    }

    async fn start_feed_after(&self, position: crate::FeedCursor) -> Result<crate::FeedCursor> {
        self.engine
            .start_feed_after(position.0)
            .await
            .map(crate::FeedCursor)
    }

    async fn snapshot(&self) -> Result<Arc<dyn Datastore>> {
        self.engine.snapshot().await
    }

    fn with_actor(&self, actor: Actor) -> Arc<dyn Datastore> {
        Arc::new(EngineStore {
            engine: self.engine.clone(),
            actor: Some(actor),
            history: self.history.clone(),
        })
    }

    fn actor(&self) -> Option<Actor> {
        self.actor.clone()
    }

    async fn compact_history(&self, policy: &HistoryPolicy) -> Result<HistoryCompaction> {
        let mut removed = 0;
        for (kind, retention) in policy.iter() {
            if retention.compacts() {
                removed += self.engine.compact_history(kind, &retention).await?;
            }
        }
        Ok(HistoryCompaction { removed })
    }

    async fn close(&self) -> Result<()> {
        self.engine.close().await
    }
}
