//! The RocksDB [`Engine`].
//!
//! Writes are serialized by one commit lock: a commit reads what its
//! preconditions and unique indexes need, builds one `WriteBatch` holding
//! records, index entries, feed entries and metadata, and writes it
//! atomically. Nothing else writes in between, so the checks cannot race.
//! Reads take a snapshot and never wait for the lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use chrono::Utc;
use datastore_core::keycodec::{encode_values, prefix_end};
use datastore_core::{
    Capabilities, Change, ChangeOp, Committed, Compaction, Direction, Engine, Error, IndexValue,
    Kind, LiveChanges, Mutation, Result, Retention, Revision, Scan, StoreName, StoredRecord,
    check_precondition, unique_violation,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBRawIteratorWithThreadMode, ErrorKind,
    Options, ReadOptions, WriteBatch, WriteOptions,
};
use tokio::sync::broadcast;

use crate::config::RocksConfig;
use crate::layout::{self, Envelope, Header};
use crate::migrations;

/// The RocksDB engine. Open it with [`RocksEngine::open`].
pub struct RocksEngine {
    db: DB,
    config: RocksConfig,
    writer: Mutex<Writer>,
    live: LiveChanges,
    head: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.config.path)
            .field("head", &self.head.load(Ordering::Relaxed))
            .finish()
    }
}

/// State only the committer touches.
struct Writer {
    head: u64,
    compacted_through: u64,
}

/// What a commit has written so far, so later mutations see earlier ones.
#[derive(Default)]
struct Overlay {
    records: HashMap<Vec<u8>, Option<Header>>,
    claims: HashMap<Vec<u8>, Option<Vec<u8>>>,
    counters: HashMap<String, u64>,
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

fn corrupt(kind: Kind, key: &[u8], reason: impl Into<String>) -> Error {
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
        let db = Self::open_db(&config).map_err(|e| open_error(&path, e))?;
        migrations::prepare(&db, &shown)?;
        let head =
            get_u64(&db, layout::HEAD).map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
        let compacted_through = get_u64(&db, layout::COMPACTED_THROUGH)
            .map_err(|e| db_error(StoreName::Datastore, &shown, e))?;
        Ok(RocksEngine {
            db,
            writer: Mutex::new(Writer {
                head,
                compacted_through,
            }),
            live: LiveChanges::new(config.subscriber_buffer),
            head: AtomicU64::new(head),
            closed: AtomicBool::new(false),
            config,
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
        let families = layout::FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        DB::open_cf_descriptors(&opts, &config.path, families)
    }

    /// The raw database, for benchmarks and tools. Writing to it bypasses
    /// every check and the feed.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> u32 {
        migrations::CURRENT
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family opened at start")
    }

    fn check_open(&self) -> Result<()> {
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

    fn decode_record(kind: Kind, raw_key: &[u8], value: &[u8]) -> Result<StoredRecord> {
        let (header, body) =
            Envelope::decode(value).map_err(|reason| corrupt(kind, raw_key, reason))?;
        Ok(StoredRecord {
            key: String::from_utf8_lossy(&raw_key[1..]).into_owned(),
            body: body.to_vec(),
            revision: header.revision,
            created: header.created,
            updated: header.updated,
        })
    }

    fn header_at(&self, overlay: &Overlay, kind: Kind, raw: &[u8]) -> Result<Option<Header>> {
        if let Some(h) = overlay.records.get(raw) {
            return Ok(h.clone());
        }
        match self
            .db
            .get_pinned_cf(self.cf(layout::RECORDS), raw)
            .map_err(|e| db_error(kind.store(), String::from_utf8_lossy(&raw[1..]), e))?
        {
            Some(v) => Envelope::decode(&v)
                .map(|(h, _)| Some(h))
                .map_err(|reason| corrupt(kind, raw, reason)),
            None => Ok(None),
        }
    }

    fn claim_at(&self, overlay: &Overlay, kind: Kind, ukey: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(c) = overlay.claims.get(ukey) {
            return Ok(c.clone());
        }
        self.db
            .get_cf(self.cf(layout::INDEXES), ukey)
            .map_err(|e| db_error(kind.store(), "", e))
    }

    fn counter_at(&self, overlay: &Overlay, name: &str) -> Result<u64> {
        if let Some(v) = overlay.counters.get(name) {
            return Ok(*v);
        }
        Ok(self
            .db
            .get_cf(self.cf(layout::META), layout::counter_key(name))
            .map_err(|e| db_error(StoreName::Runs, name, e))?
            .and_then(|v| layout::read_u64(&v))
            .unwrap_or(0))
    }

    /// Removes a record's index keys from the batch and the overlay.
    fn drop_index_keys(&self, batch: &mut WriteBatch, overlay: &mut Overlay, keys: &[Vec<u8>]) {
        let cf = self.cf(layout::INDEXES);
        for k in keys {
            batch.delete_cf(cf, k);
            if k.first() == Some(&b'u') {
                overlay.claims.insert(k.clone(), None);
            }
        }
    }

    /// Feed entries outside the retention window, as a range to delete:
    /// (first kept seq after compaction, removed count).
    fn retention_cut(&self, writer: &Writer, head: u64, retention: &Retention) -> Result<u64> {
        let mut cut = writer.compacted_through;
        if let Some(max) = retention.max_changes {
            cut = cut.max(head.saturating_sub(max));
        }
        if let Some(age) = retention
            .max_age
            .and_then(|a| chrono::Duration::from_std(a).ok())
        {
            let oldest_kept = Utc::now() - age;
            let mut ro = ReadOptions::default();
            ro.set_iterate_lower_bound(layout::feed_key(cut + 1).to_vec());
            let mut it = self.db.raw_iterator_cf_opt(self.cf(layout::FEED), ro);
            it.seek_to_first();
            while it.valid() {
                let change: Change = decode_change(it.value().unwrap_or_default())?;
                if change.at >= oldest_kept {
                    break;
                }
                cut = change.seq;
                it.next();
            }
        }
        Ok(cut.min(head))
    }

    fn apply_cut(&self, batch: &mut WriteBatch, writer: &Writer, cut: u64) {
        if cut > writer.compacted_through {
            batch.delete_range_cf(
                self.cf(layout::FEED),
                layout::feed_key(writer.compacted_through + 1),
                layout::feed_key(cut + 1),
            );
            batch.put_cf(
                self.cf(layout::META),
                layout::COMPACTED_THROUGH,
                cut.to_be_bytes(),
            );
        }
    }

    fn write_opts(&self) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.config.sync_on_commit);
        wo
    }

    /// Checks that every index entry points at a record that owns it, and
    /// every record's index entries exist. Returns the problems found.
    pub fn check_indexes(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let snapshot = self.db.snapshot();
        let records = self.cf(layout::RECORDS);
        let indexes = self.cf(layout::INDEXES);
        let mut owned: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut it = self
            .db
            .raw_iterator_cf_opt(records, Self::read_opts(&snapshot));
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
            .db
            .raw_iterator_cf_opt(indexes, Self::read_opts(&snapshot));
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
}

fn decode_change(bytes: &[u8]) -> Result<Change> {
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
    mut f: impl FnMut(&[u8], &[u8]),
) -> std::result::Result<(), rocksdb::Error> {
    match direction {
        Direction::Asc => it.seek_to_first(),
        Direction::Desc => it.seek_to_last(),
    }
    let mut n = 0;
    while it.valid() && n < limit {
        f(it.key().unwrap_or_default(), it.value().unwrap_or_default());
        n += 1;
        match direction {
            Direction::Asc => it.next(),
            Direction::Desc => it.prev(),
        }
    }
    it.status()
}

#[async_trait]
impl Engine for RocksEngine {
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>> {
        self.check_open()?;
        let cf = self.cf(layout::RECORDS);
        if let [key] = keys {
            let raw = layout::record_key(kind, key);
            let value = self
                .db
                .get_pinned_cf(cf, &raw)
                .map_err(|e| db_error(kind.store(), key.clone(), e))?;
            return Ok(vec![
                value
                    .map(|v| Self::decode_record(kind, &raw, &v))
                    .transpose()?,
            ]);
        }
        let raw: Vec<Vec<u8>> = keys.iter().map(|k| layout::record_key(kind, k)).collect();
        let values = self.db.multi_get_cf(raw.iter().map(|k| (cf, k.as_slice())));
        raw.iter()
            .zip(values)
            .map(|(k, v)| {
                match v.map_err(|e| db_error(kind.store(), String::from_utf8_lossy(&k[1..]), e))? {
                    Some(bytes) => Self::decode_record(kind, k, &bytes).map(Some),
                    None => Ok(None),
                }
            })
            .collect()
    }

    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>> {
        self.check_open()?;
        let snapshot = self.db.snapshot();
        let records = self.cf(layout::RECORDS);
        let store = kind.store();
        match scan.index {
            None => {
                let after = scan.after.as_ref().map(|p| layout::record_key(kind, &p.id));
                let (lo, hi) = scan_bounds(
                    layout::records_start(kind),
                    layout::records_end(kind),
                    after,
                    scan.direction,
                );
                let mut ro = Self::read_opts(&snapshot);
                ro.set_iterate_lower_bound(lo);
                ro.set_iterate_upper_bound(hi);
                let mut out = Vec::new();
                let mut failure = None;
                collect(
                    self.db.raw_iterator_cf_opt(records, ro),
                    scan.direction,
                    scan.limit,
                    |k, v| match Self::decode_record(kind, k, v) {
                        Ok(r) => out.push(r),
                        Err(e) => failure = failure.take().or(Some(e)),
                    },
                )
                .map_err(|e| db_error(store, "", e))?;
                match failure {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
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
                let mut ro = Self::read_opts(&snapshot);
                ro.set_iterate_lower_bound(lo);
                ro.set_iterate_upper_bound(hi);
                let mut keys = Vec::new();
                collect(
                    self.db.raw_iterator_cf_opt(self.cf(layout::INDEXES), ro),
                    scan.direction,
                    scan.limit,
                    |_, v| {
                        keys.push(layout::record_key(kind, &String::from_utf8_lossy(v)));
                    },
                )
                .map_err(|e| db_error(store, "", e))?;
                let values = self.db.multi_get_cf_opt(
                    keys.iter().map(|k| (records, k.as_slice())),
                    &Self::read_opts(&snapshot),
                );
                let mut out = Vec::with_capacity(keys.len());
                for (k, v) in keys.iter().zip(values) {
                    let v = v.map_err(|e| db_error(store, String::from_utf8_lossy(&k[1..]), e))?;
                    let v = v.ok_or_else(|| {
                        corrupt(kind, k, format!("index {index} names a missing record"))
                    })?;
                    out.push(Self::decode_record(kind, k, &v)?);
                }
                Ok(out)
            }
        }
    }

    async fn count(&self, kind: Kind, index: &'static str, prefix: &[IndexValue]) -> Result<u64> {
        self.check_open()?;
        let mut base = layout::index_base(kind, index, false);
        base.extend_from_slice(&encode_values(prefix));
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(prefix_end(&base));
        ro.set_iterate_lower_bound(base);
        let mut it = self.db.raw_iterator_cf_opt(self.cf(layout::INDEXES), ro);
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
        self.check_open()?;
        self.counter_at(&Overlay::default(), name)
    }

    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        self.check_open()?;
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        let now = datastore_core::commit_time();
        let mut head = writer.head;
        let mut batch = WriteBatch::default();
        let mut overlay = Overlay::default();
        let mut committed = Vec::new();
        let (records, indexes, meta) = (
            self.cf(layout::RECORDS),
            self.cf(layout::INDEXES),
            self.cf(layout::META),
        );
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
                    let raw = layout::record_key(kind, &key);
                    let current = self.header_at(&overlay, kind, &raw)?;
                    check_precondition(
                        kind,
                        &key,
                        precondition,
                        current.as_ref().map(|h| h.revision),
                        false,
                    )?;
                    if let Some(old) = &current {
                        self.drop_index_keys(&mut batch, &mut overlay, &old.index_keys);
                    }
                    for e in index.iter().filter(|e| e.unique) {
                        let ukey = layout::unique_key(kind, e.index, &e.values);
                        let holder = self.claim_at(&overlay, kind, &ukey)?;
                        if holder.is_some_and(|h| h != key.as_bytes()) {
                            return Err(unique_violation(kind, e));
                        }
                        overlay.claims.insert(ukey, Some(key.as_bytes().to_vec()));
                    }
                    let index_keys = layout::owned_index_keys(kind, &key, &index);
                    for k in &index_keys {
                        batch.put_cf(indexes, k, key.as_bytes());
                    }
                    head += 1;
                    let header = Header {
                        revision: Revision::new(head),
                        created: current.as_ref().map_or(now, |h| h.created),
                        updated: now,
                        index_keys,
                    };
                    batch.put_cf(records, &raw, Envelope::encode(&header, &body));
                    committed.push(Committed {
                        kind,
                        key: key.clone(),
                        op: ChangeOp::Put,
                        revision: header.revision,
                        created: header.created,
                        updated: now,
                        parent: parent.clone(),
                    });
                    overlay.records.insert(raw, Some(header));
                }
                Mutation::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    let raw = layout::record_key(kind, &key);
                    let current = self.header_at(&overlay, kind, &raw)?;
                    check_precondition(
                        kind,
                        &key,
                        precondition,
                        current.as_ref().map(|h| h.revision),
                        true,
                    )?;
                    let old = current.expect("checked: the record exists");
                    self.drop_index_keys(&mut batch, &mut overlay, &old.index_keys);
                    batch.delete_cf(records, &raw);
                    head += 1;
                    committed.push(Committed {
                        kind,
                        key: key.clone(),
                        op: ChangeOp::Delete,
                        revision: Revision::new(head),
                        created: old.created,
                        updated: now,
                        parent: None,
                    });
                    overlay.records.insert(raw, None);
                }
                Mutation::Require {
                    kind,
                    key,
                    precondition,
                } => {
                    let raw = layout::record_key(kind, &key);
                    let current = self.header_at(&overlay, kind, &raw)?;
                    check_precondition(
                        kind,
                        &key,
                        precondition,
                        current.map(|h| h.revision),
                        false,
                    )?;
                }
                Mutation::RaiseCounter { name, to } => {
                    if self.counter_at(&overlay, &name)? < to {
                        batch.put_cf(meta, layout::counter_key(&name), to.to_be_bytes());
                        overlay.counters.insert(name, to);
                    }
                }
            }
        }
        let changes: Vec<Change> = committed.iter().map(Committed::change).collect();
        let feed = self.cf(layout::FEED);
        for c in &changes {
            let json = serde_json::to_vec(c).expect("a change serializes");
            batch.put_cf(feed, layout::feed_key(c.seq), json);
        }
        if head != writer.head {
            batch.put_cf(meta, layout::HEAD, head.to_be_bytes());
        }
        let cut = self.retention_cut(&writer, head, &self.config.retention)?;
        self.apply_cut(&mut batch, &writer, cut);
        self.db
            .write_opt(batch, &self.write_opts())
            .map_err(|e| db_error(StoreName::Datastore, "", e))?;
        writer.head = head;
        writer.compacted_through = writer.compacted_through.max(cut);
        self.head.store(head, Ordering::Release);
        // Still under the commit lock, so published in commit order.
        self.live.publish(changes);
        drop(writer);
        Ok(committed)
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        self.check_open()?;
        let snapshot = self.db.snapshot();
        let compacted = snapshot
            .get_cf(self.cf(layout::META), layout::COMPACTED_THROUGH)
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
        let mut ro = Self::read_opts(&snapshot);
        ro.set_iterate_lower_bound(layout::feed_key(after + 1).to_vec());
        let mut out = Vec::new();
        let mut failure = None;
        collect(
            self.db.raw_iterator_cf_opt(self.cf(layout::FEED), ro),
            Direction::Asc,
            limit,
            |_, v| match decode_change(v) {
                Ok(c) => out.push(c),
                Err(e) => failure = failure.take().or(Some(e)),
            },
        )
        .map_err(|e| db_error(StoreName::Changes, "", e))?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    async fn head(&self) -> Result<u64> {
        self.check_open()?;
        Ok(self.head.load(Ordering::Acquire))
    }

    async fn compact(&self, retention: &Retention) -> Result<Compaction> {
        self.check_open()?;
        let mut writer = self.writer.lock().map_err(|_| poisoned())?;
        let cut = self.retention_cut(&writer, writer.head, retention)?;
        let removed = cut.saturating_sub(writer.compacted_through);
        if removed > 0 {
            let mut batch = WriteBatch::default();
            self.apply_cut(&mut batch, &writer, cut);
            self.db
                .write_opt(batch, &self.write_opts())
                .map_err(|e| db_error(StoreName::Changes, "", e))?;
            writer.compacted_through = cut;
        }
        Ok(Compaction {
            removed,
            compacted_through: writer.compacted_through,
        })
    }

    fn live(&self) -> broadcast::Receiver<Change> {
        self.live.subscribe()
    }

    fn retention(&self) -> Retention {
        self.config.retention
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new("rocksdb");
        caps.durable = true;
        caps.subscriber_buffer = self.config.subscriber_buffer;
        caps.max_record_bytes = self.config.max_record_bytes;
        caps
    }

    async fn close(&self) -> Result<()> {
        let _writer = self.writer.lock().map_err(|_| poisoned())?;
        self.live.close();
        self.closed.store(true, Ordering::Release);
        self.db.flush_wal(true).map_err(|e| {
            db_error(
                StoreName::Datastore,
                self.config.path.display().to_string(),
                e,
            )
        })
    }
}

fn poisoned() -> Error {
    Error::Backend {
        store: StoreName::Datastore,
        key: String::new(),
        source: "a writer panicked while holding the commit lock".into(),
    }
}
