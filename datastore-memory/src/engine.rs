//! The in-memory [`Engine`]: ordered maps behind one lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datastore_core::keycodec::{encode_values, entry_key, prefix_end};
use datastore_core::{
    Actor, Capabilities, Change, Committed, Compaction, CounterRaise, DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_SUBSCRIBER_BUFFER, DeleteRecord, Direction, Engine, Error, FeedFilter, HistoryPolicy,
    HistoryRetention, IndexEntry, IndexValue, Kind, LiveChanges, LiveReceiver, Mutation, PutRecord,
    Requirement, Result, Retention, Revision, Scan, StoreName, StoredRecord, StoredRef,
    StoredVersion, VersionScan, check_precondition, unique_violation,
};

/// Settings of an in-memory store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// How much of the change feed is kept (applied at every commit).
    pub retention: Retention,
    /// Live changes buffered per subscriber before it gets `Lagged`.
    pub subscriber_buffer: usize,
    /// The largest JSON-encoded record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Which kinds keep record history, and for how long.
    pub history: HistoryPolicy,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            retention: Retention::FOREVER,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            history: HistoryPolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Slot {
    body: Vec<u8>,
    revision: Revision,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    actor: Option<Actor>,
    index: Vec<IndexEntry>,
}

/// One kind's records and index maps.
#[derive(Debug, Default)]
struct Table {
    records: BTreeMap<String, Slot>,
    /// index name -> encoded (values, key) -> key
    indexes: HashMap<&'static str, BTreeMap<Vec<u8>, String>>,
    /// unique index name -> encoded values -> key holding them
    unique: HashMap<&'static str, HashMap<Vec<u8>, String>>,
}

impl Table {
    /// Replaces (or removes) the record at `key`, keeping indexes in step;
    /// returns what was there.
    fn swap(&mut self, key: &str, new: Option<Slot>) -> Option<Slot> {
        let prev = match new {
            Some(slot) => self.records.insert(key.to_string(), slot),
            None => self.records.remove(key),
        };
        if let Some(p) = &prev {
            for e in &p.index {
                if let Some(map) = self.indexes.get_mut(e.index) {
                    map.remove(&entry_key(&e.values, key));
                }
                if let Some(map) = self.unique.get_mut(e.index).filter(|_| e.unique) {
                    map.remove(&encode_values(&e.values));
                }
            }
        }
        if let Some(n) = self.records.get(key) {
            for e in &n.index {
                self.indexes
                    .entry(e.index)
                    .or_default()
                    .insert(entry_key(&e.values, key), key.to_string());
                if e.unique {
                    self.unique
                        .entry(e.index)
                        .or_default()
                        .insert(encode_values(&e.values), key.to_string());
                }
            }
        }
        prev
    }

    fn stored(&self, key: &str) -> Option<StoredRecord> {
        self.records.get(key).map(|s| StoredRecord {
            key: key.to_string(),
            body: s.body.clone(),
            revision: s.revision,
            created: s.created,
            updated: s.updated,
            actor: s.actor.clone(),
        })
    }
}

enum Undo {
    Record {
        kind: Kind,
        key: String,
        prev: Option<Slot>,
    },
    Counter {
        name: String,
        prev: Option<u64>,
    },
    /// A version appended to a record's history.
    Version {
        kind: Kind,
        key: String,
    },
}

#[derive(Debug)]
struct Inner {
    tables: HashMap<Kind, Table>,
    counters: HashMap<String, u64>,
    feed: VecDeque<Change>,
    /// Each record's versions, oldest first.
    history: HashMap<(Kind, String), Vec<StoredVersion>>,
    seq: u64,
    compacted_through: u64,
    closed: bool,
}

impl Inner {
    fn table(&mut self, kind: Kind) -> &mut Table {
        self.tables.entry(kind).or_default()
    }

    fn apply(
        &mut self,
        mutation: Mutation,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
        committed: &mut Vec<Committed>,
    ) -> Result<()> {
        match mutation {
            Mutation::Put(put) => committed.push(self.put(put, now, undo)?),
            Mutation::Delete(delete) => committed.push(self.delete(delete, now, undo)?),
            Mutation::Require(require) => self.require(&require)?,
            Mutation::RaiseCounter(raise) => self.raise_counter(raise, undo),
        }
        Ok(())
    }

    fn put(
        &mut self,
        put: PutRecord,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> Result<Committed> {
        let PutRecord { kind, ref key, .. } = put;
        let table = self.table(kind);
        let current = table.records.get(key);
        check_precondition(
            kind,
            key,
            put.precondition,
            current.map(|s| s.revision),
            false,
        )?;
        let created = current.map_or(now, |s| s.created);
        for e in put.index.iter().filter(|e| e.unique) {
            let holder = table
                .unique
                .get(e.index)
                .and_then(|m| m.get(&encode_values(&e.values)));
            if holder.is_some_and(|h| h != key) {
                return Err(unique_violation(kind, e));
            }
        }
        self.seq += 1;
        let done = Committed::put(&put, Revision::new(self.seq), created, now);
        if put.history {
            self.push_version(&done, Some(put.body.clone()), undo);
        }
        let slot = Slot {
            body: put.body,
            revision: done.revision,
            created,
            updated: now,
            actor: put.actor,
            index: put.index,
        };
        let prev = self.table(kind).swap(&put.key, Some(slot));
        undo.push(Undo::Record {
            kind,
            key: put.key,
            prev,
        });
        Ok(done)
    }

    fn delete(
        &mut self,
        delete: DeleteRecord,
        now: DateTime<Utc>,
        undo: &mut Vec<Undo>,
    ) -> Result<Committed> {
        let DeleteRecord { kind, ref key, .. } = delete;
        let current = self.table(kind).records.get(key);
        check_precondition(
            kind,
            key,
            delete.precondition,
            current.map(|s| s.revision),
            true,
        )?;
        let created = current.map_or(now, |s| s.created);
        let parent = current.and_then(|s| kind.parent_of(&s.body));
        self.seq += 1;
        let done = Committed::delete(&delete, Revision::new(self.seq), created, now, parent);
        if delete.history {
            self.push_version(&done, None, undo);
        }
        let prev = self.table(kind).swap(key, None);
        undo.push(Undo::Record {
            kind,
            key: delete.key,
            prev,
        });
        Ok(done)
    }

    /// Appends a write's version to its record's history.
    fn push_version(&mut self, done: &Committed, body: Option<Vec<u8>>, undo: &mut Vec<Undo>) {
        self.history
            .entry((done.kind, done.key.clone()))
            .or_default()
            .push(StoredVersion {
                revision: done.revision,
                op: done.op,
                at: done.updated,
                actor: done.actor.clone(),
                body,
            });
        undo.push(Undo::Version {
            kind: done.kind,
            key: done.key.clone(),
        });
    }

    fn require(&mut self, require: &Requirement) -> Result<()> {
        let found = self
            .table(require.kind)
            .records
            .get(&require.key)
            .map(|s| s.revision);
        require.check(found)
    }

    fn raise_counter(&mut self, raise: CounterRaise, undo: &mut Vec<Undo>) {
        let prev = self.counters.get(&raise.name).copied();
        if prev.unwrap_or(0) < raise.to {
            self.counters.insert(raise.name.clone(), raise.to);
        }
        undo.push(Undo::Counter {
            name: raise.name,
            prev,
        });
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Record { kind, key, prev } => {
                    self.table(kind).swap(&key, prev);
                }
                Undo::Counter {
                    name,
                    prev: Some(v),
                } => {
                    self.counters.insert(name, v);
                }
                Undo::Counter { name, prev: None } => {
                    self.counters.remove(&name);
                }
                Undo::Version { kind, key } => {
                    let id = (kind, key);
                    if let Some(versions) = self.history.get_mut(&id) {
                        versions.pop();
                        if versions.is_empty() {
                            self.history.remove(&id);
                        }
                    }
                }
            }
        }
    }

    fn compact(&mut self, retention: &Retention, now: DateTime<Utc>) -> Compaction {
        let mut removed = 0;
        let oldest_kept = retention
            .max_age
            .and_then(|age| chrono::Duration::from_std(age).ok())
            .map(|age| now - age);
        while let Some(front) = self.feed.front() {
            let too_many = retention
                .max_changes
                .is_some_and(|max| self.feed.len() as u64 > max);
            let too_old = oldest_kept.is_some_and(|t| front.at < t);
            if !(too_many || too_old) {
                break;
            }
            self.compacted_through = front.seq;
            self.feed.pop_front();
            removed += 1;
        }
        Compaction {
            removed,
            compacted_through: self.compacted_through,
        }
    }
}

/// The in-memory engine.
#[derive(Debug)]
pub struct MemoryEngine {
    inner: RwLock<Inner>,
    /// Published under the write lock, so in commit order.
    live: LiveChanges,
    config: MemoryConfig,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new(config: MemoryConfig) -> Self {
        let inner = Inner {
            tables: HashMap::new(),
            counters: HashMap::new(),
            feed: VecDeque::new(),
            history: HashMap::new(),
            seq: 0,
            compacted_through: 0,
            closed: false,
        };
        MemoryEngine {
            inner: RwLock::new(inner),
            live: LiveChanges::new(config.subscriber_buffer),
            config,
        }
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, Inner>> {
        let guard = self.inner.read().map_err(|_| poisoned())?;
        if guard.closed {
            return Err(closed());
        }
        Ok(guard)
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Inner>> {
        let guard = self.inner.write().map_err(|_| poisoned())?;
        if guard.closed {
            return Err(closed());
        }
        Ok(guard)
    }
}

fn poisoned() -> Error {
    Error::Backend {
        store: StoreName::Datastore,
        key: String::new(),
        source: "a writer panicked while holding the lock".into(),
    }
}

fn closed() -> Error {
    Error::Unavailable {
        store: StoreName::Datastore,
        key: String::new(),
        source: "the store is closed".into(),
    }
}

#[async_trait]
impl Engine for MemoryEngine {
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>> {
        let inner = self.read()?;
        let table = inner.tables.get(&kind);
        Ok(keys
            .iter()
            .map(|k| table.and_then(|t| t.stored(k)))
            .collect())
    }

    fn get_now(
        &self,
        kind: Kind,
        key: &str,
        read: &mut dyn FnMut(StoredRef<'_>) -> Result<()>,
    ) -> Option<Result<bool>> {
        let inner = match self.read() {
            Ok(inner) => inner,
            Err(e) => return Some(Err(e)),
        };
        let Some(s) = inner.tables.get(&kind).and_then(|t| t.records.get(key)) else {
            return Some(Ok(false));
        };
        Some(
            read(StoredRef {
                key,
                body: &s.body,
                revision: s.revision,
                created: s.created,
                updated: s.updated,
                actor: s.actor.as_ref(),
            })
            .map(|()| true),
        )
    }

    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>> {
        let inner = self.read()?;
        let Some(table) = inner.tables.get(&kind) else {
            return Ok(Vec::new());
        };
        let keys: Vec<&String> = match scan.index {
            None => {
                let after = scan.after.as_ref().map(|p| p.id.clone());
                let range = match (scan.direction, after) {
                    (Direction::Asc, Some(a)) => (Bound::Excluded(a), Bound::Unbounded),
                    (Direction::Desc, Some(a)) => (Bound::Unbounded, Bound::Excluded(a)),
                    (_, None) => (Bound::Unbounded, Bound::Unbounded),
                };
                let iter = table.records.range::<String, _>(range).map(|(k, _)| k);
                match scan.direction {
                    Direction::Asc => iter.take(scan.limit).collect(),
                    Direction::Desc => iter.rev().take(scan.limit).collect(),
                }
            }
            Some(index) => {
                let Some(map) = table.indexes.get(index) else {
                    return Ok(Vec::new());
                };
                let start = encode_values(&scan.prefix);
                let end = prefix_end(&start);
                let after = scan.after.as_ref().map(|p| entry_key(&p.values, &p.id));
                match scan.direction {
                    Direction::Asc => {
                        let lo = after.map_or(Bound::Included(start), Bound::Excluded);
                        map.range::<Vec<u8>, _>((lo, Bound::Excluded(end)))
                            .map(|(_, k)| k)
                            .take(scan.limit)
                            .collect()
                    }
                    Direction::Desc => {
                        let hi = after.map_or(Bound::Excluded(end), Bound::Excluded);
                        map.range::<Vec<u8>, _>((Bound::Included(start), hi))
                            .rev()
                            .map(|(_, k)| k)
                            .take(scan.limit)
                            .collect()
                    }
                }
            }
        };
        Ok(keys.into_iter().filter_map(|k| table.stored(k)).collect())
    }

    async fn count(&self, kind: Kind, index: &'static str, prefix: &[IndexValue]) -> Result<u64> {
        let inner = self.read()?;
        let Some(map) = inner.tables.get(&kind).and_then(|t| t.indexes.get(index)) else {
            return Ok(0);
        };
        let start = encode_values(prefix);
        let end = prefix_end(&start);
        Ok(map.range::<Vec<u8>, _>(start..end).count() as u64)
    }

    async fn counter(&self, name: &str) -> Result<u64> {
        Ok(self.read()?.counters.get(name).copied().unwrap_or(0))
    }

    async fn history(
        &self,
        kind: Kind,
        key: &str,
        scan: &VersionScan,
    ) -> Result<Vec<StoredVersion>> {
        let inner = self.read()?;
        let Some(versions) = inner.history.get(&(kind, key.to_string())) else {
            return Ok(Vec::new());
        };
        let after = scan.after;
        Ok(match scan.direction {
            Direction::Asc => versions
                .iter()
                .filter(|v| after.is_none_or(|a| v.revision > a))
                .take(scan.limit)
                .cloned()
                .collect(),
            Direction::Desc => versions
                .iter()
                .rev()
                .filter(|v| after.is_none_or(|a| v.revision < a))
                .take(scan.limit)
                .cloned()
                .collect(),
        })
    }

    async fn compact_history(&self, kind: Kind, retention: &HistoryRetention) -> Result<u64> {
        let mut inner = self.write()?;
        let cutoff = retention.cutoff(Utc::now());
        let mut removed = 0u64;
        inner.history.retain(|(k, _), versions| {
            if *k != kind {
                return true;
            }
            let before = versions.len();
            if let Some(max) = retention.max_versions {
                let extra = versions.len().saturating_sub(max as usize);
                versions.drain(..extra);
            }
            if let Some(t) = cutoff {
                versions.retain(|v| v.at >= t);
            }
            removed += (before - versions.len()) as u64;
            !versions.is_empty()
        });
        Ok(removed)
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        let mut inner = self.write()?;
        let now = datastore_core::commit_time();
        let start_seq = inner.seq;
        let mut undo = Vec::new();
        let mut committed = Vec::new();
        for m in mutations {
            if let Err(e) = inner.apply(m, now, &mut undo, &mut committed) {
                inner.rollback(undo);
                inner.seq = start_seq;
                return Err(e);
            }
        }
        let changes: Vec<Change> = committed.iter().map(Committed::change).collect();
        inner.feed.extend(changes.iter().cloned());
        self.live.publish(changes);
        inner.compact(&self.config.retention, now);
        Ok(committed)
    }

    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        let inner = self.read()?;
        if after < inner.compacted_through {
            return Err(Error::CursorExpired {
                store: StoreName::Changes,
                key: after.to_string(),
                compacted_through: inner.compacted_through,
            });
        }
        let start = inner.feed.partition_point(|c| c.seq <= after);
        Ok(inner
            .feed
            .range(start..)
            .filter(|c| filter.matches(c))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<u64> {
        Ok(self.read()?.seq)
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        Ok(self.write()?.compact(retention, Utc::now()))
    }

    async fn start_feed_after(&self, position: u64) -> Result<u64> {
        let mut inner = self.write()?;
        inner.seq = inner.seq.max(position);
        if position > inner.compacted_through {
            while inner.feed.front().is_some_and(|c| c.seq <= position) {
                inner.feed.pop_front();
            }
            inner.compacted_through = position;
        }
        Ok(inner.seq)
    }

    fn live(&self, filter: FeedFilter) -> LiveReceiver {
        self.live.subscribe(filter)
    }

    fn retention(&self) -> Retention {
        self.config.retention
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new("memory");
        caps.subscriber_buffer = self.config.subscriber_buffer;
        caps.max_record_bytes = self.config.max_record_bytes;
        caps
    }

    async fn close(&self) -> Result<()> {
        let mut inner = self.inner.write().map_err(|_| poisoned())?;
        inner.closed = true;
        self.live.close();
        Ok(())
    }
}
