//! The RocksDB [`Engine`].
//!
//! Writes go through one writer thread (see [`crate::writer`]): it reads
//! what each commit's preconditions and unique indexes need, builds one
//! `WriteBatch` for a group of commits holding records, index entries, feed
//! entries and metadata, and writes it atomically with one sync. Nothing
//! else writes in between, so the checks cannot race. Reads run on the
//! caller's task, take a snapshot where they read more than one key, and
//! never wait for the writer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use async_trait::async_trait;
use datastore_core::group_commit::{CommitQueue, GroupStats, commit_queue};
use datastore_core::keycodec::{encode_values, prefix_end};
use datastore_core::{
    Actor, Capabilities, Change, ChangeOp, Committed, Compaction, Direction, Engine, Error,
    FeedFilter, HistoryRetention, IndexValue, Kind, LiveChanges, LiveReceiver, Mutation, ReadMark,
    Result, Retention, Scan, StoreName, StoredRecord, StoredRef, StoredVersion, VersionScan,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBRawIteratorWithThreadMode, ErrorKind,
    Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::config::RocksConfig;
use crate::layout::{self, Envelope};
use crate::migrations;
use crate::writer::{MAX_GROUP, Writer};

/// The RocksDB engine. Open it with [`RocksEngine::open`].
pub struct RocksEngine {
    inner: Arc<Inner>,
    /// Commits go to the writer thread through this queue (`None` only
    /// while dropping, so the thread sees the queue close).
    queue: Option<CommitQueue>,
    writer: Option<JoinHandle<()>>,
    /// Without `sync_on_commit` there is no fsync to share, and handing a
    /// commit to the writer thread and back costs more than the write
    /// itself: the committing task applies it, one at a time.
    inline: Option<std::sync::Mutex<Writer>>,
}

/// What the engine and its writer thread share.
pub(crate) struct Inner {
    pub(crate) db: DB,
    pub(crate) config: RocksConfig,
    pub(crate) live: LiveChanges,
    /// The newest durable sequence number, for `head` without a read.
    pub(crate) head: AtomicU64,
    /// Batches written since open: the engine's read mark (see
    /// [`Inner::write`]).
    writes: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.inner.config.path)
            .field("head", &self.inner.head.load(Ordering::Relaxed))
            .finish()
    }
}

/// Maps a RocksDB error to the datastore's, naming the store and key.
pub(crate) fn db_error(store: StoreName, key: impl Into<String>, e: rocksdb::Error) -> Error {
    let key = key.into();
    match e.kind() {
        ErrorKind::Busy | ErrorKind::TimedOut | ErrorKind::TryAgain | ErrorKind::Aborted => {
            Error::Unavailable {
                store,
                key,
                source: Box::new(e),
            }
        }
        ErrorKind::Corruption => Error::Corrupt {
            store,
            key,
            reason: e.into_string(),
        },
        _ => Error::Backend {
            store,
            key,
            source: Box::new(e),
        },
    }
}

pub(crate) fn corrupt(kind: Kind, key: &[u8], reason: impl Into<String>) -> Error {
    Error::Corrupt {
        store: kind.store(),
        key: String::from_utf8_lossy(&key[1.min(key.len())..]).into_owned(),
        reason: reason.into(),
    }
}

impl RocksEngine {
    /// Opens (or creates) the database at `config.path`: checks the schema
    /// version, runs migrations, rebuilds indexes whose definitions changed.
    ///
    /// Refuses, with an error naming the path: a path that is a file, a
    /// non-empty directory holding no RocksDB database, a database locked by
    /// another process, and a database written by a newer schema.
    pub fn open(config: RocksConfig) -> Result<Self> {
        let path = config.path.clone();
        let shown = path.display().to_string();
        let refuse = |field: &str, reason: String| {
            Error::invalid(StoreName::Datastore, &shown, field, reason)
        };
        if path.as_os_str().is_empty() {
            return Err(refuse("path", "must not be empty".into()));
        }
        if path.is_file() {
            return Err(refuse("path", "is a file, not a database directory".into()));
        }
        if path.is_dir() && !path.join("CURRENT").exists() {
            let non_empty = std::fs::read_dir(&path)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if non_empty {
                return Err(refuse(
                    "path",
                    "is a non-empty directory that holds no RocksDB database".into(),
                ));
            }
        }
        // Nothing is created unless asked for: not even an empty folder.
        if (config.read_only || !config.create_if_missing) && !path.join("CURRENT").exists() {
            let why = if config.read_only {
                "a read-only open never creates one"
            } else {
                "create_if_missing is off"
            };
            return Err(Error::NotFound {
                store: StoreName::Datastore,
                key: format!("rocksdb://{shown} (no RocksDB database there; {why})"),
            });
        }
        let db = Self::open_db(&config).map_err(|e| open_error(&path, e))?;
        if config.read_only || !config.migrate {
            let plan = migrations::plan(&db, &shown)?;
            if !plan.is_current() {
                return Err(Error::Unsupported {
                    store: StoreName::Datastore,
                    key: shown,
                    operation: format!(
                        "opening without migrating a database that needs it ({}); run `datastore migrate` on it first",
                        plan.describe().join("; ")
                    ),
                });
            }
        } else {
            migrations::prepare(&db, &shown)?;
        }
        let head =
            get_u64(&db, layout::HEAD).map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
        let compacted_through = get_u64(&db, layout::COMPACTED_THROUGH)
            .map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
        let inner = Arc::new(Inner {
            db,
            live: LiveChanges::new(config.subscriber_buffer),
            head: AtomicU64::new(head),
            writes: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            config,
        });
        if inner.config.read_only {
            return Ok(RocksEngine {
                inner,
                queue: None,
                writer: None,
                inline: None,
            });
        }
        let writer = Writer::new(inner.clone(), head, compacted_through);
        if !inner.config.sync_on_commit {
            return Ok(RocksEngine {
                inner,
                queue: None,
                writer: None,
                inline: Some(std::sync::Mutex::new(writer)),
            });
        }
        let (queue, jobs) = commit_queue(shown.clone(), MAX_GROUP);
        let thread = std::thread::Builder::new()
            .name("datastore-rocks-writer".into())
            .spawn(move || writer.run(jobs))
            .map_err(|e| Error::Backend {
                store: StoreName::Datastore,
                key: shown.clone(),
                source: format!("cannot start the writer thread: {e}").into(),
            })?;
        Ok(RocksEngine {
            inner,
            queue: Some(queue),
            writer: Some(thread),
            inline: None,
        })
    }

    fn open_db(config: &RocksConfig) -> std::result::Result<DB, rocksdb::Error> {
        let cache = Cache::new_lru_cache(config.block_cache_bytes);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Preconditions and unique claims look up keys that mostly do not
        // exist; a bloom filter answers those without reading data blocks.
        table.set_bloom_filter(10.0, false);
        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        let mut opts = cf_opts.clone();
        opts.create_if_missing(config.create_if_missing);
        opts.create_missing_column_families(true);
        opts.set_db_write_buffer_size(config.write_buffer_bytes);
        opts.set_keep_log_file_num(4);
        // A read-only open of an older database opens the families it has
        // (the migration plan then says what it lacks).
        let existing = if config.read_only {
            DB::list_cf(&opts, &config.path).unwrap_or_default()
        } else {
            Vec::new()
        };
        let families = layout::FAMILIES
            .iter()
            .filter(|name| !config.read_only || existing.iter().any(|e| e == *name))
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        if config.read_only {
            opts.create_if_missing(false);
            opts.create_missing_column_families(false);
            return DB::open_cf_descriptors_read_only(&opts, &config.path, families, false);
        }
        DB::open_cf_descriptors(&opts, &config.path, families)
    }

    /// The raw database, for benchmarks and tools. Writing to it bypasses
    /// every check and the feed.
    pub fn db(&self) -> &DB {
        &self.inner.db
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// How commits have been grouped since the database was opened (one
    /// WAL write and sync per group).
    pub fn commit_stats(&self) -> GroupStats {
        self.queue().map(|q| q.stats()).unwrap_or_default()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> u32 {
        migrations::CURRENT
    }

    /// Checks that every index entry points at a record that owns it, and
    /// every record's index entries exist. Returns the problems found.
    pub fn check_indexes(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let snapshot = self.inner.db.snapshot();
        let records = self.inner.cf(layout::RECORDS);
        let indexes = self.inner.cf(layout::INDEXES);
        let mut owned: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(records, Inner::read_opts(&snapshot));
        it.seek_to_first();
        while it.valid() {
            let raw = it.key().unwrap_or_default().to_vec();
            match Envelope::decode(it.value().unwrap_or_default()) {
                Ok((header, _)) => {
                    for k in header.index_keys {
                        owned.insert(k, raw.clone());
                    }
                }
                Err(reason) => problems.push(format!(
                    "record {:?}: {reason}",
                    String::from_utf8_lossy(&raw)
                )),
            }
            it.next();
        }
        it.status()
            .map_err(|e| db_error(StoreName::Datastore, "", e))?;
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(indexes, Inner::read_opts(&snapshot));
        it.seek_to_first();
        let mut seen = 0usize;
        while it.valid() {
            let k = it.key().unwrap_or_default();
            let target = it.value().unwrap_or_default();
            match owned.get(k) {
                None => problems.push(format!("index entry {k:?} has no record owning it")),
                Some(raw) if raw[1..] != *target => problems.push(format!(
                    "index entry {k:?} points at {target:?}, owned by {raw:?}"
                )),
                Some(_) => seen += 1,
            }
            it.next();
        }
        it.status()
            .map_err(|e| db_error(StoreName::Datastore, "", e))?;
        if seen != owned.len() {
            problems.push(format!("{} index entries are missing", owned.len() - seen));
        }
        Ok(problems)
    }

    /// The inline writer, locked, when commits are applied by the
    /// committing task (`sync_on_commit` off).
    fn inline_writer(&self) -> Option<Result<std::sync::MutexGuard<'_, Writer>>> {
        self.inline.as_ref().map(|w| {
            w.lock().map_err(|_| Error::Backend {
                store: StoreName::Datastore,
                key: self.inner.config.path.display().to_string(),
                source: "a commit panicked while writing".into(),
            })
        })
    }

    /// The records of a scan, in order, each handed to `f` as its raw key
    /// and its value where RocksDB holds them (the iterator's block, or a
    /// pinned value of the index scan's one batched read), read from one
    /// snapshot. An error from `f` stops the scan and is returned.
    fn scan_raw(&self, kind: Kind, scan: &Scan, f: &mut RawRead<'_>) -> Result<()> {
        self.inner.check_open()?;
        let snapshot = self.inner.db.snapshot();
        let records = self.inner.cf(layout::RECORDS);
        let store = kind.store();
        let mut failure = None;
        match scan.index {
            None => {
                let after = scan.after.as_ref().map(|p| layout::record_key(kind, &p.id));
                let (lo, hi) = scan_bounds(
                    layout::records_start(kind),
                    layout::records_end(kind),
                    after,
                    scan.direction,
                );
                let mut ro = Inner::read_opts(&snapshot);
                ro.set_iterate_lower_bound(lo);
                ro.set_iterate_upper_bound(hi);
                collect(
                    self.inner.db.raw_iterator_cf_opt(records, ro),
                    scan.direction,
                    scan.limit,
                    |k, v| {
                        if failure.is_none() {
                            failure = f(k, v).err();
                        }
                        failure.is_none()
                    },
                )
                .map_err(|e| db_error(store, "", e))?;
            }
            Some(index) => {
                let mut base = layout::index_base(kind, index, false);
                base.extend_from_slice(&encode_values(&scan.prefix));
                let end = prefix_end(&base);
                let after = scan
                    .after
                    .as_ref()
                    .map(|p| layout::index_key(kind, index, &p.values, &p.id));
                let (lo, hi) = scan_bounds(base, end, after, scan.direction);
                let mut ro = Inner::read_opts(&snapshot);
                ro.set_iterate_lower_bound(lo);
                ro.set_iterate_upper_bound(hi);
                let mut keys = Vec::new();
                collect(
                    self.inner
                        .db
                        .raw_iterator_cf_opt(self.inner.cf(layout::INDEXES), ro),
                    scan.direction,
                    scan.limit,
                    |_, v| {
                        keys.push(layout::record_key(kind, &String::from_utf8_lossy(v)));
                        true
                    },
                )
                .map_err(|e| db_error(store, "", e))?;
                let values = self.inner.db.batched_multi_get_cf_opt(
                    records,
                    &keys,
                    false,
                    &Inner::read_opts(&snapshot),
                );
                for (k, v) in keys.iter().zip(values) {
                    let v = v.map_err(|e| db_error(store, String::from_utf8_lossy(&k[1..]), e))?;
                    let v = v.ok_or_else(|| {
                        corrupt(kind, k, format!("index {index} names a missing record"))
                    })?;
                    f(k, &v)?;
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The writer's queue; `Unsupported` on a database opened read-only.
    fn queue(&self) -> Result<&CommitQueue> {
        self.queue.as_ref().ok_or_else(|| Error::Unsupported {
            store: StoreName::Datastore,
            key: self.inner.config.path.display().to_string(),
            operation: "writing to a database opened read-only".into(),
        })
    }
}

impl Drop for RocksEngine {
    /// Closes the queue and waits for the writer thread to finish what was
    /// queued and let go of the database, so the directory can be opened
    /// again as soon as the engine is gone.
    fn drop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.writer.take() {
            let _ = thread.join();
        }
    }
}

impl Inner {
    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened at start")
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Unavailable {
                store: StoreName::Datastore,
                key: self.config.path.display().to_string(),
                source: "the store is closed".into(),
            });
        }
        Ok(())
    }

    fn read_opts(snapshot: &rocksdb::SnapshotWithThreadMode<'_, DB>) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_snapshot(snapshot);
        ro
    }

    /// Hands a stored record to `read`, borrowed from `value` (RocksDB's
    /// pinned block or iterator), nothing copied out.
    fn lend(
        kind: Kind,
        key: &str,
        raw_key: &[u8],
        value: &[u8],
        read: impl FnOnce(StoredRef<'_>) -> Result<()>,
    ) -> Result<()> {
        let (header, body) =
            Envelope::decode_read(value).map_err(|reason| corrupt(kind, raw_key, reason))?;
        let actor = parse_actor(kind, raw_key, header.actor)?;
        read(StoredRef {
            key,
            body,
            revision: header.revision,
            created: header.created,
            updated: header.updated,
            actor: actor.as_ref(),
        })
    }

    fn write_opts(&self) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.config.sync_on_commit);
        wo
    }

    /// Writes a batch (synced when the config says so) and moves the read
    /// mark past it. Every write after open goes through here, so a mark
    /// that has not moved means the database holds what it held when the
    /// mark was taken.
    pub(crate) fn write(&self, batch: WriteBatch) -> std::result::Result<(), rocksdb::Error> {
        let written = self.db.write_opt(batch, &self.write_opts());
        // Moved after the write is visible, and after a failed one too (it
        // may have reached the memtable before the WAL sync failed).
        self.writes.fetch_add(1, Ordering::Release);
        written
    }

    /// The read mark now (see [`Engine::read_mark`]).
    pub(crate) fn read_mark(&self) -> ReadMark {
        ReadMark(self.writes.load(Ordering::Acquire))
    }

    /// A counter's durable value (0 when never raised).
    pub(crate) fn counter(&self, name: &str) -> Result<u64> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(layout::META), layout::counter_key(name))
            .map_err(|e| db_error(StoreName::Kind(Kind::Run), name, e))?
            .and_then(|v| layout::read_u64(&v))
            .unwrap_or(0))
    }
}

/// A stored actor's text, read back (`Corrupt` if it is not one).
fn parse_actor(kind: Kind, raw_key: &[u8], actor: Option<&str>) -> Result<Option<Actor>> {
    actor
        .map(|a| {
            a.parse()
                .map_err(|e: datastore_core::FieldError| corrupt(kind, raw_key, e.to_string()))
        })
        .transpose()
}

pub(crate) fn decode_change(bytes: &[u8]) -> Result<Change> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        store: StoreName::Changes,
        key: String::new(),
        reason: e.to_string(),
    })
}

fn get_u64(db: &DB, key: &[u8]) -> std::result::Result<u64, rocksdb::Error> {
    let cf = db.cf_handle(layout::META).expect("meta family");
    Ok(db
        .get_cf(cf, key)?
        .and_then(|v| layout::read_u64(&v))
        .unwrap_or(0))
}

/// [`migrations::plan`] of the database `config` names, opened read-only.
pub(crate) fn plan_at(config: &RocksConfig) -> Result<migrations::Plan> {
    let shown = config.path.display().to_string();
    let db = RocksEngine::open_db(config).map_err(|e| open_error(&config.path, e))?;
    migrations::plan(&db, &shown)
}

fn open_error(path: &Path, e: rocksdb::Error) -> Error {
    let text = e.to_string();
    let key = path.display().to_string();
    if text.contains("lock") || text.contains("LOCK") {
        Error::Unavailable {
            store: StoreName::Datastore,
            key,
            source: format!("the database is locked by another process or store ({text})").into(),
        }
    } else if text.contains("does not exist") {
        Error::NotFound {
            store: StoreName::Datastore,
            key,
        }
    } else {
        match e.kind() {
            ErrorKind::Corruption => Error::Corrupt {
                store: StoreName::Datastore,
                key,
                reason: format!("not a readable RocksDB database: {text}"),
            },
            _ => Error::Backend {
                store: StoreName::Datastore,
                key,
                source: format!("cannot open the database: {text}").into(),
            },
        }
    }
}

fn scan_bounds(
    base: Vec<u8>,
    end: Vec<u8>,
    after: Option<Vec<u8>>,
    direction: Direction,
) -> (Vec<u8>, Vec<u8>) {
    match (direction, after) {
        (Direction::Asc, Some(mut a)) => {
            a.push(0); // the first key after `a`
            (a, end)
        }
        (Direction::Desc, Some(a)) => (base, a),
        (_, None) => (base, end),
    }
}

fn collect<'a>(
    mut it: DBRawIteratorWithThreadMode<'a, DB>,
    direction: Direction,
    limit: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> bool,
) -> std::result::Result<(), rocksdb::Error> {
    match direction {
        Direction::Asc => it.seek_to_first(),
        Direction::Desc => it.seek_to_last(),
    }
    let mut n = 0;
    while it.valid() && n < limit {
        if !f(it.key().unwrap_or_default(), it.value().unwrap_or_default()) {
            break;
        }
        n += 1;
        match direction {
            Direction::Asc => it.next(),
            Direction::Desc => it.prev(),
        }
    }
    it.status()
}

/// What [`RocksEngine::scan_raw`] hands each record to: its raw key and
/// its value.
type RawRead<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

#[async_trait]
impl Engine for RocksEngine {
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>> {
        datastore_core::get_through_each(self, kind, keys).await
    }

    fn get_now(
        &self,
        kind: Kind,
        key: &str,
        read: &mut dyn FnMut(StoredRef<'_>) -> Result<()>,
    ) -> Option<Result<bool>> {
        // Decoded from RocksDB's pinned block: the body is not copied.
        let mut get = || {
            self.inner.check_open()?;
            let raw = layout::record_key(kind, key);
            let Some(value) = self
                .inner
                .db
                .get_pinned_cf(self.inner.cf(layout::RECORDS), &raw)
                .map_err(|e| db_error(kind.store(), key, e))?
            else {
                return Ok(false);
            };
            Inner::lend(kind, key, &raw, &value, &mut *read)?;
            Ok(true)
        };
        Some(get())
    }

    async fn get_each(
        &self,
        kind: Kind,
        keys: &[String],
        read: &mut (dyn for<'r> FnMut(usize, StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        self.inner.check_open()?;
        if let [key] = keys {
            self.get_now(kind, key, &mut |stored| read(0, stored))
                .unwrap_or(Ok(false))?;
            return Ok(());
        }
        // One batched read of pinned values, each decoded where RocksDB
        // holds it.
        let raw: Vec<Vec<u8>> = keys.iter().map(|k| layout::record_key(kind, k)).collect();
        let values =
            self.inner
                .db
                .batched_multi_get_cf(self.inner.cf(layout::RECORDS), &raw, false);
        for (at, value) in values.into_iter().enumerate() {
            let value = value.map_err(|e| db_error(kind.store(), keys[at].as_str(), e))?;
            if let Some(value) = value {
                Inner::lend(kind, &keys[at], &raw[at], &value, |stored| read(at, stored))?;
            }
        }
        Ok(())
    }

    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        self.scan_each(kind, scan, &mut |stored| {
            out.push(stored.to_record());
            Ok(())
        })
        .await?;
        Ok(out)
    }

    async fn scan_each(
        &self,
        kind: Kind,
        scan: &Scan,
        read: &mut (dyn for<'r> FnMut(StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        self.scan_raw(kind, scan, &mut |raw_key, value| {
            let key = std::str::from_utf8(&raw_key[1..])
                .map_err(|_| corrupt(kind, raw_key, "a key that is not UTF-8"))?;
            Inner::lend(kind, key, raw_key, value, &mut *read)
        })
    }

    async fn count(&self, kind: Kind, index: &'static str, prefix: &[IndexValue]) -> Result<u64> {
        self.inner.check_open()?;
        let mut base = layout::index_base(kind, index, false);
        base.extend_from_slice(&encode_values(prefix));
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(prefix_end(&base));
        ro.set_iterate_lower_bound(base);
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(self.inner.cf(layout::INDEXES), ro);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().map_err(|e| db_error(kind.store(), "", e))?;
        Ok(n)
    }

    async fn counter(&self, name: &str) -> Result<u64> {
        self.inner.check_open()?;
        self.inner.counter(name)
    }

    fn read_mark(&self) -> Option<ReadMark> {
        Some(self.inner.read_mark())
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        self.inner.check_open()?;
        if let Some(writer) = self.inline_writer() {
            return writer?.commit_one(mutations);
        }
        self.queue()?.commit(mutations).await
    }

    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        self.inner.check_open()?;
        let snapshot = self.inner.db.snapshot();
        let compacted = snapshot
            .get_cf(self.inner.cf(layout::META), layout::COMPACTED_THROUGH)
            .map_err(|e| db_error(StoreName::Changes, "", e))?
            .and_then(|v| layout::read_u64(&v))
            .unwrap_or(0);
        if after < compacted {
            return Err(Error::CursorExpired {
                store: StoreName::Changes,
                key: after.to_string(),
                compacted_through: compacted,
            });
        }
        let mut ro = Inner::read_opts(&snapshot);
        ro.set_iterate_lower_bound(layout::feed_key(after + 1).to_vec());
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(self.inner.cf(layout::FEED), ro);
        it.seek_to_first();
        let mut out = Vec::new();
        // A filtered read walks the feed from the cursor and keeps what
        // matches: the walk stops at `limit` matches or the head.
        while it.valid() && out.len() < limit {
            let change = decode_change(it.value().unwrap_or_default())?;
            if filter.matches(&change) {
                out.push(change);
            }
            it.next();
        }
        it.status()
            .map_err(|e| db_error(StoreName::Changes, "", e))?;
        Ok(out)
    }

    async fn head(&self) -> Result<u64> {
        self.inner.check_open()?;
        // The stored head is written in the same batch as the feed entries,
        // so it is visible exactly when they are; the writer's counter is
        // raised only after the write returns, so a reader that already saw
        // a change could otherwise be told its cursor is ahead of the head.
        let stored = get_u64(&self.inner.db, layout::HEAD)
            .map_err(|e| db_error(StoreName::Changes, "head", e))?;
        Ok(stored.max(self.inner.head.load(Ordering::Acquire)))
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        self.inner.check_open()?;
        if let Some(writer) = self.inline_writer() {
            return writer?.compact(retention);
        }
        self.queue()?.compact(*retention).await
    }

    async fn history(
        &self,
        kind: Kind,
        key: &str,
        scan: &VersionScan,
    ) -> Result<Vec<StoredVersion>> {
        self.inner.check_open()?;
        let prefix = layout::history_prefix(kind, key);
        let mut lower = prefix.clone();
        let mut upper = prefix.clone();
        match (scan.direction, scan.after) {
            (_, None) => {
                upper.extend_from_slice(&[0xFF; 9]);
            }
            (Direction::Asc, Some(r)) => {
                lower.extend_from_slice(&r.get().saturating_add(1).to_be_bytes());
                upper.extend_from_slice(&[0xFF; 9]);
            }
            (Direction::Desc, Some(r)) => {
                upper.extend_from_slice(&r.get().to_be_bytes());
            }
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lower);
        ro.set_iterate_upper_bound(upper);
        let mut it = self
            .inner
            .db
            .raw_iterator_cf_opt(self.inner.cf(layout::HISTORY), ro);
        match scan.direction {
            Direction::Asc => it.seek_to_first(),
            Direction::Desc => it.seek_to_last(),
        }
        let mut out = Vec::new();
        while it.valid() && out.len() < scan.limit {
            let raw = it.key().unwrap_or_default();
            let (_, revision) = layout::split_history_key(raw)
                .ok_or_else(|| corrupt(kind, raw, "history key too short"))?;
            let v = layout::VersionValue::decode(it.value().unwrap_or_default())
                .map_err(|reason| corrupt(kind, raw, reason))?;
            out.push(StoredVersion {
                revision,
                op: if v.delete {
                    ChangeOp::Delete
                } else {
                    ChangeOp::Put
                },
                at: v.at,
                actor: parse_actor(kind, raw, v.actor.as_deref())?,
                body: (!v.delete).then(|| v.body.to_vec()),
            });
            match scan.direction {
                Direction::Asc => it.next(),
                Direction::Desc => it.prev(),
            }
        }
        it.status()
            .map_err(|e| db_error(kind.store(), key.to_string(), e))?;
        Ok(out)
    }

    async fn compact_history(&self, kind: Kind, retention: &HistoryRetention) -> Result<u64> {
        self.inner.check_open()?;
        if let Some(writer) = self.inline_writer() {
            return writer?.compact_history(kind, retention);
        }
        self.queue()?.compact_history(kind, *retention).await
    }

    async fn start_feed_after(&self, position: u64) -> Result<u64> {
        self.inner.check_open()?;
        if let Some(writer) = self.inline_writer() {
            return writer?.start_feed_after(position);
        }
        self.queue()?.start_feed_after(position).await
    }

    fn live(&self, filter: FeedFilter) -> LiveReceiver {
        self.inner.live.subscribe(filter)
    }

    fn retention(&self) -> Retention {
        self.inner.config.retention
    }

    async fn backup(&self, dest: &Path) -> Result<u64> {
        self.inner.check_open()?;
        if self.inner.config.read_only {
            // A read-only handle cannot flush: the copy would miss what is
            // still only in the write-ahead log.
            return Err(Error::Unsupported {
                store: StoreName::Datastore,
                key: dest.display().to_string(),
                operation: "a checkpoint of a store opened read-only (open it writable)".into(),
            });
        }
        let inner = self.inner.clone();
        let dest = dest.to_path_buf();
        // A checkpoint is one point in time across every column family:
        // hard links to the SST files plus the memtables flushed.
        tokio::task::spawn_blocking(move || {
            let shown = dest.display().to_string();
            rocksdb::checkpoint::Checkpoint::new(&inner.db)
                .and_then(|c| c.create_checkpoint(&dest))
                .map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
            // The head the copy holds is the position it reflects.
            let copy = DB::open_cf_for_read_only(
                &rocksdb::Options::default(),
                &dest,
                layout::FAMILIES,
                false,
            )
            .map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
            get_u64(&copy, layout::HEAD).map_err(|e| db_error(StoreName::Datastore, &shown, e))
        })
        .await
        .map_err(|e| Error::Backend {
            store: StoreName::Datastore,
            key: String::new(),
            source: e.into(),
        })?
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new("rocksdb");
        caps.durable = true;
        caps.subscriber_buffer = self.inner.config.subscriber_buffer;
        caps.max_record_bytes = self.inner.config.max_record_bytes;
        caps.read_only = self.inner.config.read_only;
        caps
    }

    async fn close(&self) -> Result<()> {
        // Commits already queued finish; later ones are refused.
        self.inner.closed.store(true, Ordering::Release);
        self.inner.live.close();
        if self.inner.config.read_only {
            return Ok(()); // nothing to flush
        }
        if let Ok(queue) = self.queue() {
            let _ = queue.flush().await;
        }
        self.inner.db.flush_wal(true).map_err(|e| {
            db_error(
                StoreName::Datastore,
                self.inner.config.path.display().to_string(),
                e,
            )
        })
    }
}
