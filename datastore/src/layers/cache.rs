//! `Cached`: a moka cache for point reads, kept fresh by the change feed.
//!
//! Correctness rests on two rules:
//!
//! - Every change to a cached key goes through moka's per-key compute
//!   (`and_try_compute_with`): a miss's load runs inside it (so a hundred
//!   concurrent gets of one key make one backend read), and so do the
//!   invalidations from the change feed and the updates from writes made
//!   through this layer. A slow load therefore finishes before an
//!   invalidation of its key is applied, never after.
//! - Each entry remembers the highest revision seen for its key, and an
//!   invalidation leaves a *stale* marker at that revision rather than
//!   removing the entry, so a value older than one already seen is never put
//!   back. Batched loads (`get_many`), which cannot hold every key's lock,
//!   check a per-shard generation instead: if any key of the shard was
//!   invalidated while they loaded, they serve what they read but cache
//!   nothing.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use datastore_core::{
    Change, Datastore, Editable, Error, FeedCursor, FeedEvent, Kind, Record, RecordId, Result,
    Revision, Versioned,
};
use futures::StreamExt;
use futures::future::BoxFuture;
use moka::future::Cache as Moka;
use moka::ops::compute::{CompResult, Op};
use serde::{Deserialize, Serialize};

use super::{Layer, Layered, Loader};

/// A datastore whose point reads are served from a cache.
pub type Cached = Layered<Cache>;

impl Cached {
    /// Caches `inner`'s point reads. Subscribes to `inner`'s change feed
    /// from its head before returning, and spawns the task that follows it
    /// (so call it inside a tokio runtime).
    pub async fn wrap(inner: Arc<dyn Datastore>, config: CacheConfig) -> Result<Self> {
        let head = inner.changes().head().await?;
        let cached = Layered::new(inner.clone(), Cache::new(config));
        let task = tokio::spawn(follow(Arc::downgrade(cached.layer()), inner, head));
        *cached
            .layer()
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(cached)
    }
}

/// Cache settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Whether to cache at all (`open` wraps the store only if set).
    pub enabled: bool,
    /// How many records the cache holds at most.
    pub capacity: u64,
    /// How long an entry lives after it was loaded or written, in seconds
    /// (`None`: until evicted or invalidated).
    pub ttl_secs: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            capacity: 100_000,
            ttl_secs: Some(300),
        }
    }
}

/// Hit and miss counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the backend.
    pub misses: u64,
    /// Entries marked stale by the change feed.
    pub invalidations: u64,
    /// Times the feed lagged and the whole cache was dropped.
    pub resets: u64,
    /// Entries held now (approximate).
    pub entries: u64,
}

/// What the cache knows about one key.
#[derive(Clone)]
enum Slot {
    /// The key's value at `revision` (a `Versioned<R>` behind `Any`).
    Present {
        revision: Revision,
        value: Arc<dyn Any + Send + Sync>,
    },
    /// The key did not exist when read; `seen` is the highest revision seen
    /// for it (a deletion's), if any.
    Absent { seen: Option<Revision> },
    /// The key changed at `seen`; the next read must load it again, and a
    /// load older than `seen` is never cached.
    Stale { seen: Revision },
}

impl Slot {
    fn seen(&self) -> Option<Revision> {
        match self {
            Slot::Present { revision, .. } => Some(*revision),
            Slot::Absent { seen } => *seen,
            Slot::Stale { seen } => Some(*seen),
        }
    }

    fn present<R: Record>(found: &Versioned<R>) -> Slot {
        Slot::Present {
            revision: found.revision,
            value: Arc::new(found.clone()),
        }
    }

    /// The answer this slot gives a read, or `None` if it must load.
    fn answer<R: Record>(&self, kind: Kind, key: &str) -> Option<Result<Versioned<R>>> {
        match self {
            Slot::Present { value, .. } => {
                value.downcast_ref::<Versioned<R>>().map(|v| Ok(v.clone()))
            }
            Slot::Absent { .. } => Some(Err(Error::NotFound {
                store: kind.store(),
                key: key.to_string(),
            })),
            Slot::Stale { .. } => None,
        }
    }
}

const SHARDS: usize = 256;

/// The [`Layer`] behind [`Cached`]: the cache and its statistics.
pub struct Cache {
    entries: Moka<(Kind, String), Slot>,
    /// Per-shard invalidation generations, for batched loads.
    generations: Box<[AtomicU64]>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    resets: AtomicU64,
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    /// An empty cache with these settings (not following any feed yet).
    pub fn new(config: CacheConfig) -> Self {
        let mut builder = Moka::builder()
            .max_capacity(config.capacity)
            .eviction_listener(|_, _, cause| {
                // Size and age only: invalidations by the feed are counted
                // as such, not as evictions.
                let cause = match cause {
                    moka::notification::RemovalCause::Size => "size",
                    moka::notification::RemovalCause::Expired => "expired",
                    _ => return,
                };
                metrics::counter!("datastore_cache_evictions_total", "cause" => cause).increment(1);
            });
        if let Some(ttl) = config.ttl_secs {
            builder = builder.time_to_live(Duration::from_secs(ttl));
        }
        Cache {
            entries: builder.build(),
            generations: (0..SHARDS).map(|_| AtomicU64::new(0)).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            follower: std::sync::Mutex::new(None),
        }
    }

    /// Hit and miss counts so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            entries: self.entries.entry_count(),
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        for g in self.generations.iter() {
            g.fetch_add(1, Ordering::AcqRel);
        }
        self.entries.invalidate_all();
    }

    fn shard(kind: Kind, key: &str) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (kind, key).hash(&mut h);
        (h.finish() as usize) % SHARDS
    }

    /// Applies one change from the feed.
    async fn invalidate(&self, change: &Change) {
        let Some(kind) = cached_kind(change.kind) else {
            return;
        };
        let revision = change.revision;
        let shard = Self::shard(kind, &change.id);
        let entry = self.entries.entry((kind, change.id.clone()));
        let result = entry
            .and_compute_with(|existing| async move {
                match existing.map(|e| e.into_value()) {
                    Some(slot) if slot.seen().is_some_and(|s| s >= revision) => Op::Nop,
                    Some(_) => Op::Put(Slot::Stale { seen: revision }),
                    None => Op::Nop,
                }
            })
            .await;
        match result {
            CompResult::ReplacedWith(_) => {
                self.invalidations.fetch_add(1, Ordering::Relaxed);
            }
            CompResult::StillNone(_) => {
                self.generations[shard].fetch_add(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }

    /// Records what a write through this layer returned.
    async fn remember(&self, kind: Kind, key: String, slot: Slot) {
        let revision = slot.seen();
        self.entries
            .entry((kind, key))
            .and_compute_with(|existing| async move {
                match existing.map(|e| e.into_value()).and_then(|s| s.seen()) {
                    Some(seen) if revision.is_none_or(|r| r < seen) => Op::Nop,
                    _ => Op::Put(slot),
                }
            })
            .await;
    }
}

/// The kinds this cache holds (log entries are read by range, not by id).
fn cached_kind(kind: Kind) -> Option<Kind> {
    (kind != Kind::Log).then_some(kind)
}

/// Follows the feed from `from`, marking changed keys stale, until the
/// store closes or the cache is dropped. After a lag it resumes where it
/// left off; if that part of the feed was compacted away, it drops every
/// entry and starts again from the head.
async fn follow(cache: Weak<Cache>, inner: Arc<dyn Datastore>, mut from: FeedCursor) {
    let mut stream = inner.changes().subscribe(from);
    loop {
        let Some(event) = stream.next().await else {
            return; // the store closed
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        match event {
            Ok(FeedEvent::Change(change)) => {
                cache.invalidate(&change).await;
                from = change.cursor();
            }
            Ok(FeedEvent::Lagged { resume_from }) => {
                from = resume_from;
                stream = inner.changes().subscribe(from);
            }
            Err(Error::CursorExpired { .. }) => {
                cache.resets.fetch_add(1, Ordering::Relaxed);
                cache.clear();
                from = match inner.changes().head().await {
                    Ok(head) => head,
                    Err(_) => from,
                };
                stream = inner.changes().subscribe(from);
            }
            Err(e) => {
                // The store may be closing, or briefly unreachable: drop
                // everything (changes may be missed meanwhile) and retry.
                tracing::warn!(error = %e, "cache: change feed failed; clearing and resubscribing");
                cache.resets.fetch_add(1, Ordering::Relaxed);
                cache.clear();
                drop(cache);
                tokio::time::sleep(Duration::from_millis(200)).await;
                stream = inner.changes().subscribe(from);
            }
        }
    }
}

impl Layer for Cache {
    // Spelled out rather than `async fn`: the trait promises a `Send` future.
    #[allow(clippy::manual_async_fn)]
    fn read<'a, R: Editable>(
        &'a self,
        key: String,
        load: impl FnOnce() -> BoxFuture<'a, Result<Versioned<R>>> + Send + 'a,
    ) -> impl Future<Output = Result<Versioned<R>>> + Send + 'a {
        async move {
            let kind = R::KIND;
            let cache_key = (kind, key);
            let key = cache_key.1.as_str();
            if let Some(found) = self
                .entries
                .get(&cache_key)
                .await
                .and_then(|slot| slot.answer::<R>(kind, key))
            {
                self.hits.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("datastore_cache_hits_total").increment(1);
                return found;
            }
            // Load under the key's compute lock: concurrent readers of this
            // key wait for this load and are answered by it; invalidations
            // of this key wait too.
            let owned_key = cache_key.1.clone();
            let key = owned_key.as_str();
            let mut load = Some(load);
            let mut loaded: Option<Result<Versioned<R>>> = None;
            let result = self
                .entries
                .entry(cache_key)
                .and_try_compute_with(|existing| {
                    let existing = existing.map(|e| e.into_value());
                    let hit = existing.as_ref().and_then(|s| s.answer::<R>(kind, key));
                    let load = load.take();
                    let loaded = &mut loaded;
                    async move {
                        if let Some(hit) = hit {
                            // Another reader's load answered this one.
                            self.hits.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("datastore_cache_hits_total").increment(1);
                            *loaded = Some(hit);
                            return Ok::<_, Error>(Op::Nop);
                        }
                        self.misses.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("datastore_cache_misses_total").increment(1);
                        let seen = existing.as_ref().and_then(Slot::seen);
                        let Some(load) = load else {
                            return Ok(Op::Nop);
                        };
                        let result = load().await;
                        let op = match &result {
                            Ok(found) if seen.is_none_or(|s| found.revision >= s) => {
                                Op::Put(Slot::present(found))
                            }
                            Ok(_) => Op::Nop,
                            Err(e) if e.is_not_found() => Op::Put(Slot::Absent { seen }),
                            Err(_) => Op::Nop,
                        };
                        *loaded = Some(result);
                        Ok(op)
                    }
                })
                .await;
            result?;
            loaded.unwrap_or_else(|| {
                Err(Error::Backend {
                    store: kind.store(),
                    key: key.to_string(),
                    source: "cache: the load did not run".into(),
                })
            })
        }
    }

    fn read_many<'a, R: Editable>(
        &'a self,
        ids: &'a [R::Id],
        load: Loader<'a, R>,
    ) -> BoxFuture<'a, Result<Vec<Option<Versioned<R>>>>> {
        Box::pin(async move {
            let kind = R::KIND;
            let mut out: Vec<Option<Option<Versioned<R>>>> = Vec::with_capacity(ids.len());
            let mut missing = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let key = id.key();
                match self
                    .entries
                    .get(&(kind, key.clone()))
                    .await
                    .and_then(|slot| slot.answer::<R>(kind, &key))
                {
                    Some(Ok(found)) => out.push(Some(Some(found))),
                    Some(Err(_)) => out.push(Some(None)),
                    None => {
                        out.push(None);
                        missing.push(i);
                    }
                }
            }
            self.hits
                .fetch_add((ids.len() - missing.len()) as u64, Ordering::Relaxed);
            if missing.is_empty() {
                return Ok(out.into_iter().map(|o| o.flatten()).collect());
            }
            self.misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let keys: Vec<String> = missing.iter().map(|&i| ids[i].key()).collect();
            let before: Vec<u64> = keys
                .iter()
                .map(|k| self.generations[Self::shard(kind, k)].load(Ordering::Acquire))
                .collect();
            let loaded = load(missing.iter().map(|&i| ids[i].clone()).collect()).await?;
            for (((i, key), generation), found) in missing.iter().zip(keys).zip(before).zip(loaded)
            {
                let shard = Self::shard(kind, &key);
                let quiet = self.generations[shard].load(Ordering::Acquire) == generation;
                let slot = match &found {
                    Some(v) => Slot::present(v),
                    None => Slot::Absent { seen: None },
                };
                if quiet {
                    self.remember(kind, key, slot).await;
                }
                out[*i] = Some(found);
            }
            Ok(out.into_iter().map(|o| o.flatten()).collect())
        })
    }

    fn wrote<'a, R: Editable>(&'a self, written: &'a Versioned<R>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let key = written.value.id().key();
            self.remember(R::KIND, key, Slot::present(written)).await;
        })
    }

    fn touched(&self, kind: Kind, key: String, revision: Revision) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.remember(kind, key, Slot::Stale { seen: revision })
                .await;
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let task = self
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        Box::pin(async move {
            if let Some(task) = task {
                task.abort();
                // Wait until the follower is gone, with its handle on the
                // inner store (RocksDB's lock is released with the last one).
                let _ = task.await;
            }
        })
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(task) = self
            .follower
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}
