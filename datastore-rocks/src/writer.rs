//! The writer thread: group commit off the async runtime.
//!
//! Every commit is queued for one thread per database. The thread takes
//! every commit waiting in the queue as one group, applies them in order
//! (each sees the ones before it; each keeps its own preconditions), writes
//! the writes of the commits that succeeded as one `WriteBatch` with one WAL
//! sync, then publishes their changes and answers each committer. A commit
//! that fails leaves nothing: its writes are kept aside and only join the
//! group's batch once all of its mutations succeeded. No tokio worker ever
//! waits on an fsync; it awaits its answer instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use datastore_core::group_commit::{PendingCommit, WriteJob, WriteJobs, group_failure};
use datastore_core::{
    Change, Committed, Compaction, DeleteRecord, Kind, Mutation, Precondition, PutRecord, ReadMark,
    Result, Retention, Revision, StoreName, check_precondition, unique_violation,
};
use foldhash::HashMap;
use rocksdb::{ReadOptions, WriteBatch};

use crate::engine::{Inner, corrupt, db_error, decode_change};
use crate::layout::{self, Envelope, Header, VersionValue};

/// The most commits one group takes (a bound on one `WriteBatch`).
pub(crate) const MAX_GROUP: usize = 1024;

/// One write of a commit, kept aside until the whole commit succeeded.
enum Op {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
}

/// What writes so far have changed, so later mutations see earlier ones:
/// records (their header and the parent the put named, for a later delete's
/// feed entry), unique claims and counters (`None`: deleted or freed).
/// Hashed with foldhash (seeded per map): a group of thousands of records
/// looks each key up several times, and SipHash was a tenth of the writer's
/// time in a bulk load.
#[derive(Default)]
struct Overlay {
    records: HashMap<Vec<u8>, Option<Written>>,
    claims: HashMap<Vec<u8>, Option<Vec<u8>>>,
    counters: HashMap<String, u64>,
}

/// A record as a put earlier in the group left it.
struct Written {
    header: Header,
    parent: Option<String>,
}

impl Overlay {
    fn absorb(&mut self, later: Overlay) {
        if self.is_empty() {
            // The first commit of a group (a bulk load's only one): taken
            // whole instead of rehashed entry by entry.
            *self = later;
            return;
        }
        self.records.extend(later.records);
        self.claims.extend(later.claims);
        self.counters.extend(later.counters);
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.claims.is_empty() && self.counters.is_empty()
    }
}

/// A commit applied on top of its group so far, not yet part of it.
struct Applied {
    ops: Vec<Op>,
    overlay: Overlay,
    committed: Vec<Committed>,
}

/// The writer's state: only the writer thread touches it.
pub(crate) struct Writer {
    inner: Arc<Inner>,
    head: u64,
    compacted_through: u64,
}

impl Writer {
    pub(crate) fn new(inner: Arc<Inner>, head: u64, compacted_through: u64) -> Self {
        Writer {
            inner,
            head,
            compacted_through,
        }
    }

    /// Runs jobs until every queue handle is dropped.
    pub(crate) fn run(mut self, mut jobs: WriteJobs) {
        while let Some(job) = jobs.blocking_next() {
            match job {
                WriteJob::Group(commits) => self.commit_group(commits),
                WriteJob::Compact { retention, reply } => {
                    let _ = reply.send(self.compact(&retention));
                }
                WriteJob::StartFeedAfter { position, reply } => {
                    let _ = reply.send(self.start_feed_after(position));
                }
                WriteJob::CompactHistory {
                    kind,
                    retention,
                    reply,
                } => {
                    let _ = reply.send(self.compact_history(kind, &retention));
                }
                WriteJob::Flush { reply } => {
                    let _ = reply.send(());
                }
            }
        }
    }

    /// Applies and writes one commit on its own (the inline writer's
    /// path): what [`Writer::commit_group`] does for a group of one, without
    /// the group's lists and the answer's channel.
    pub(crate) fn commit_one(&mut self, mutations: Vec<Mutation>) -> Result<Vec<Committed>> {
        let now = datastore_core::commit_time();
        let mut head = self.head;
        let applied = self.apply(&Overlay::default(), &mut head, now, mutations)?;
        self.write(applied.ops, head)
            .map_err(|e| group_failure(&e))?;
        self.inner
            .live
            .publish(applied.committed.iter().map(Committed::change));
        Ok(applied.committed)
    }

    pub(crate) fn commit_group(&mut self, commits: Vec<PendingCommit>) {
        let now = datastore_core::commit_time();
        let mut head = self.head;
        let mut group = Overlay::default();
        let mut ops = Vec::new();
        let mut results = Vec::with_capacity(commits.len());
        let mut waiting = Vec::with_capacity(commits.len());
        for mut commit in commits {
            let mutations = std::mem::take(&mut commit.mutations);
            let before = head;
            match self.apply(&group, &mut head, now, mutations) {
                Ok(applied) => {
                    ops.extend(applied.ops);
                    group.absorb(applied.overlay);
                    results.push(Ok(applied.committed));
                }
                Err(e) => {
                    head = before;
                    results.push(Err(e));
                }
            }
            waiting.push(commit);
        }
        if let Err(e) = self.write(ops, head) {
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(group_failure(&e));
            }
        }
        let changes = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .map(Committed::change);
        // Published before anyone is answered, in commit order.
        self.inner.live.publish(changes);
        for (commit, result) in waiting.into_iter().zip(results) {
            commit.finish(result);
        }
    }

    /// Writes the group's batch (plus head and retention) with one sync.
    fn write(&mut self, ops: Vec<Op>, head: u64) -> Result<()> {
        // Sized up front: grown by doubling, a large group's batch was
        // copied over and over (RocksDB's record framing is a few bytes
        // per op plus the column family and lengths).
        let bytes: usize = ops
            .iter()
            .map(|op| match op {
                Op::Put(_, k, v) => k.len() + v.len() + 16,
                Op::Delete(_, k) => k.len() + 12,
            })
            .sum();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + 64);
        for op in ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(self.inner.cf(cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(self.inner.cf(cf), k),
            }
        }
        if head != self.head {
            batch.put_cf(
                self.inner.cf(layout::META),
                layout::HEAD,
                head.to_be_bytes(),
            );
        }
        let cut = self.retention_cut(head, &self.inner.config.retention)?;
        self.apply_cut(&mut batch, cut);
        if batch.is_empty() {
            return Ok(());
        }
        self.inner
            .write(batch)
            .map_err(|e| db_error(StoreName::Datastore, "", e))?;
        self.head = head;
        self.compacted_through = self.compacted_through.max(cut);
        self.inner.head.store(head, Ordering::Release);
        Ok(())
    }

    /// A record as the group so far left it, `None` when absent: taken by
    /// `written` from a put earlier in the group, else by `stored` from its
    /// stored bytes, read pinned (nothing copied out of RocksDB).
    fn record_at<T>(
        &self,
        overlays: [&Overlay; 2],
        kind: Kind,
        raw: &[u8],
        written: impl FnOnce(&Written) -> T,
        stored: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        for o in overlays {
            if let Some(w) = o.records.get(raw) {
                return Ok(w.as_ref().map(written));
            }
        }
        match self
            .inner
            .db
            .get_pinned_cf(self.inner.cf(layout::RECORDS), raw)
            .map_err(|e| db_error(kind.store(), String::from_utf8_lossy(&raw[1..]), e))?
        {
            Some(v) => stored(&v)
                .map(Some)
                .map_err(|reason| corrupt(kind, raw, reason)),
            None => Ok(None),
        }
    }

    /// A record's header (with its index keys), what a put or delete needs.
    fn header_at(&self, overlays: [&Overlay; 2], kind: Kind, raw: &[u8]) -> Result<Option<Header>> {
        self.record_at(
            overlays,
            kind,
            raw,
            |w| w.header.clone(),
            |v| Envelope::decode(v).map(|(h, _)| h),
        )
    }

    /// A record's revision: what a `Require` checks, read without copying
    /// the header's index keys.
    fn revision_at(
        &self,
        overlays: [&Overlay; 2],
        kind: Kind,
        raw: &[u8],
    ) -> Result<Option<Revision>> {
        self.record_at(
            overlays,
            kind,
            raw,
            |w| w.header.revision,
            |v| Envelope::decode_read(v).map(|(h, _)| h.revision),
        )
    }

    /// The parent of an existing record: the one a put earlier in the group
    /// named, else the one its stored body names.
    fn parent_at(&self, overlays: [&Overlay; 2], kind: Kind, raw: &[u8]) -> Result<Option<String>> {
        let parent = self.record_at(
            overlays,
            kind,
            raw,
            |w| w.parent.clone(),
            |v| Envelope::decode_read(v).map(|(_, body)| kind.parent_of(body)),
        )?;
        Ok(parent.flatten())
    }

    /// Whether the unique claim `ukey` is held, as the group so far left
    /// it, by a record other than `key`.
    fn claimed_by_other(
        &self,
        overlays: [&Overlay; 2],
        kind: Kind,
        ukey: &[u8],
        key: &[u8],
    ) -> Result<bool> {
        for o in overlays {
            if let Some(c) = o.claims.get(ukey) {
                return Ok(c.as_deref().is_some_and(|h| h != key));
            }
        }
        Ok(self
            .inner
            .db
            .get_pinned_cf(self.inner.cf(layout::INDEXES), ukey)
            .map_err(|e| db_error(kind.store(), "", e))?
            .is_some_and(|h| h.as_ref() != key))
    }

    /// Whether what a caller read at `mark` still holds: nothing was
    /// written since (see [`datastore_core::Engine::read_mark`]), and no
    /// overlay (this commit or its group so far) has `touched` it.
    fn still_as_seen(
        &self,
        mark: Option<ReadMark>,
        overlays: [&Overlay; 2],
        touched: impl Fn(&Overlay) -> bool,
    ) -> bool {
        mark.is_some_and(|m| m == self.inner.read_mark()) && !overlays.into_iter().any(touched)
    }

    fn counter_at(&self, overlays: [&Overlay; 2], name: &str) -> Result<u64> {
        for o in overlays {
            if let Some(v) = o.counters.get(name) {
                return Ok(*v);
            }
        }
        self.inner.counter(name)
    }

    /// Applies one commit's mutations on top of the group so far; its
    /// writes are returned, not yet written.
    fn apply(
        &self,
        group: &Overlay,
        head: &mut u64,
        now: DateTime<Utc>,
        mutations: Vec<Mutation>,
    ) -> Result<Applied> {
        let mut out = Applied {
            ops: Vec::new(),
            overlay: Overlay::default(),
            committed: Vec::new(),
        };
        for m in mutations {
            match m {
                Mutation::Put(put) => self.put(group, &mut out, head, now, put)?,
                Mutation::Delete(delete) => self.delete(group, &mut out, head, now, delete)?,
                Mutation::Require(require) => {
                    let raw = layout::record_key(require.kind, &require.key);
                    let overlays = [&out.overlay, group];
                    // Seen to hold by the caller with nothing written since:
                    // no second read.
                    let as_seen = self
                        .still_as_seen(require.seen_at, overlays, |o| o.records.contains_key(&raw));
                    if !as_seen {
                        let found = self.revision_at(overlays, require.kind, &raw)?;
                        require.check(found)?;
                    }
                }
                Mutation::RaiseCounter(raise) => {
                    let overlays = [&out.overlay, group];
                    // Seen below `to` by the caller with nothing written
                    // since: raised without a second read.
                    let as_seen = self.still_as_seen(raise.seen_at, overlays, |o| {
                        o.counters.contains_key(&raise.name)
                    });
                    if as_seen || self.counter_at(overlays, &raise.name)? < raise.to {
                        let value = raise.to.to_be_bytes().to_vec();
                        out.ops.push(Op::Put(
                            layout::META,
                            layout::counter_key(&raise.name),
                            value,
                        ));
                        out.overlay.counters.insert(raise.name, raise.to);
                    }
                }
            }
        }
        for c in &out.committed {
            let change = c.change();
            let json = serde_json::to_vec(&change).expect("a change serializes");
            out.ops.push(Op::Put(
                layout::FEED,
                layout::feed_key(change.seq).to_vec(),
                json,
            ));
        }
        Ok(out)
    }

    /// A put: its precondition and unique claims checked against the group
    /// and this commit so far, then its record, index keys and claims.
    fn put(
        &self,
        group: &Overlay,
        out: &mut Applied,
        head: &mut u64,
        now: DateTime<Utc>,
        put: PutRecord,
    ) -> Result<()> {
        let (kind, key) = (put.kind, &put.key);
        let (raw, current) = self.checked(group, out, kind, key, put.precondition, false)?;
        if let Some(old) = &current {
            drop_index_keys(&mut out.ops, &mut out.overlay, &old.index_keys);
        }
        for e in put.index.iter().filter(|e| e.unique) {
            let ukey = layout::unique_key(kind, e.index, &e.values);
            if self.claimed_by_other([&out.overlay, group], kind, &ukey, key.as_bytes())? {
                return Err(unique_violation(kind, e));
            }
            out.overlay
                .claims
                .insert(ukey, Some(key.as_bytes().to_vec()));
        }
        let index_keys = layout::owned_index_keys(kind, key, &put.index);
        for k in &index_keys {
            out.ops
                .push(Op::Put(layout::INDEXES, k.clone(), key.as_bytes().to_vec()));
        }
        *head += 1;
        let header = Header {
            revision: Revision::new(*head),
            created: current.as_ref().map_or(now, |h| h.created),
            updated: now,
            index_keys,
            actor: put.actor.as_ref().map(|a| a.to_string()),
        };
        let record = Envelope::encode(&header, &put.body);
        if put.history {
            out.ops.push(Op::Put(
                layout::HISTORY,
                layout::history_key(kind, key, header.revision),
                VersionValue::encode(false, now, header.actor.as_deref(), Some(&put.body)),
            ));
        }
        out.ops.push(Op::Put(layout::RECORDS, raw.clone(), record));
        out.committed
            .push(Committed::put(&put, header.revision, header.created, now));
        out.overlay.records.insert(
            raw,
            Some(Written {
                header,
                parent: put.parent,
            }),
        );
        Ok(())
    }

    /// A record's raw key and its header as the group and this commit so
    /// far left it, once the write's precondition holds for it.
    fn checked(
        &self,
        group: &Overlay,
        out: &Applied,
        kind: Kind,
        key: &str,
        precondition: Precondition,
        deleting: bool,
    ) -> Result<(Vec<u8>, Option<Header>)> {
        let raw = layout::record_key(kind, key);
        let current = self.header_at([&out.overlay, group], kind, &raw)?;
        let found = current.as_ref().map(|h| h.revision);
        check_precondition(kind, key, precondition, found, deleting)?;
        Ok((raw, current))
    }

    /// A delete: its precondition, then the record and its index keys.
    fn delete(
        &self,
        group: &Overlay,
        out: &mut Applied,
        head: &mut u64,
        now: DateTime<Utc>,
        delete: DeleteRecord,
    ) -> Result<()> {
        let (kind, key) = (delete.kind, &delete.key);
        let (raw, current) = self.checked(group, out, kind, key, delete.precondition, true)?;
        let old = current.expect("checked: the record exists");
        let parent = self.parent_at([&out.overlay, group], kind, &raw)?;
        drop_index_keys(&mut out.ops, &mut out.overlay, &old.index_keys);
        out.ops.push(Op::Delete(layout::RECORDS, raw.clone()));
        *head += 1;
        let revision = Revision::new(*head);
        if delete.history {
            let actor = delete.actor.as_ref().map(|a| a.to_string());
            out.ops.push(Op::Put(
                layout::HISTORY,
                layout::history_key(kind, key, revision),
                VersionValue::encode(true, now, actor.as_deref(), None),
            ));
        }
        out.committed.push(Committed::delete(
            &delete,
            revision,
            old.created,
            now,
            parent,
        ));
        out.overlay.records.insert(raw, None);
        Ok(())
    }

    /// Removes versions of `kind` outside `retention`: per record, beyond
    /// the newest `max_versions` and older than `max_age`; one synced
    /// batch per ten thousand removals.
    pub(crate) fn compact_history(
        &mut self,
        kind: Kind,
        retention: &datastore_core::HistoryRetention,
    ) -> Result<u64> {
        let cf = self.inner.cf(layout::HISTORY);
        let err = |e| {
            db_error(
                StoreName::Datastore,
                format!("history of {}", kind.as_str()),
                e,
            )
        };
        let cutoff = retention.cutoff(Utc::now());
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(layout::records_start(kind));
        ro.set_iterate_upper_bound(layout::records_end(kind));
        let mut it = self.inner.db.raw_iterator_cf_opt(cf, ro);
        // Newest first, so each record's versions are counted from its newest.
        it.seek_to_last();
        let mut batch = WriteBatch::default();
        let mut removed = 0u64;
        let mut record: Vec<u8> = Vec::new();
        let mut seen = 0u32;
        while it.valid() {
            let raw = it.key().unwrap_or_default();
            let (prefix, _) = layout::split_history_key(raw)
                .ok_or_else(|| corrupt(kind, raw, "history key too short"))?;
            if prefix != record.as_slice() {
                record = prefix.to_vec();
                seen = 0;
            }
            seen += 1;
            let too_many = retention.max_versions.is_some_and(|max| seen > max);
            let too_old = match cutoff {
                Some(t) => {
                    let v = VersionValue::decode(it.value().unwrap_or_default())
                        .map_err(|reason| corrupt(kind, raw, reason))?;
                    v.at < t
                }
                None => false,
            };
            if too_many || too_old {
                batch.delete_cf(cf, raw);
                removed += 1;
                if batch.len() >= 10_000 {
                    self.inner.write(std::mem::take(&mut batch)).map_err(err)?;
                }
            }
            it.prev();
        }
        it.status().map_err(err)?;
        if !batch.is_empty() {
            self.inner.write(batch).map_err(err)?;
        }
        Ok(removed)
    }

    /// The last sequence number outside the retention window (the feed is
    /// cut through it).
    fn retention_cut(&self, head: u64, retention: &Retention) -> Result<u64> {
        let mut cut = self.compacted_through;
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
            let db = &self.inner.db;
            let mut it = db.raw_iterator_cf_opt(self.inner.cf(layout::FEED), ro);
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

    fn apply_cut(&self, batch: &mut WriteBatch, cut: u64) {
        if cut > self.compacted_through {
            batch.delete_range_cf(
                self.inner.cf(layout::FEED),
                layout::feed_key(self.compacted_through + 1),
                layout::feed_key(cut + 1),
            );
            batch.put_cf(
                self.inner.cf(layout::META),
                layout::COMPACTED_THROUGH,
                cut.to_be_bytes(),
            );
        }
    }

    /// Raises the head to `position` and drops the feed through it, in one
    /// synced write.
    pub(crate) fn start_feed_after(&mut self, position: u64) -> Result<u64> {
        let head = self.head.max(position);
        let mut batch = WriteBatch::default();
        if head != self.head {
            batch.put_cf(
                self.inner.cf(layout::META),
                layout::HEAD,
                head.to_be_bytes(),
            );
        }
        self.apply_cut(&mut batch, position);
        if !batch.is_empty() {
            self.inner
                .write(batch)
                .map_err(|e| db_error(StoreName::Changes, position.to_string(), e))?;
        }
        self.head = head;
        self.compacted_through = self.compacted_through.max(position);
        self.inner.head.store(head, Ordering::Release);
        Ok(head)
    }

    pub(crate) fn compact(&mut self, retention: &Retention) -> Result<Compaction> {
        let cut = self.retention_cut(self.head, retention)?;
        let removed = cut.saturating_sub(self.compacted_through);
        if removed > 0 {
            let mut batch = WriteBatch::default();
            self.apply_cut(&mut batch, cut);
            self.inner
                .write(batch)
                .map_err(|e| db_error(StoreName::Changes, "", e))?;
            self.compacted_through = cut;
        }
        Ok(Compaction {
            removed,
            compacted_through: self.compacted_through,
        })
    }
}

/// Removes a record's index keys: deletes in the batch, freed unique claims
/// in the overlay.
fn drop_index_keys(ops: &mut Vec<Op>, overlay: &mut Overlay, keys: &[Vec<u8>]) {
    for k in keys {
        ops.push(Op::Delete(layout::INDEXES, k.clone()));
        if k.first() == Some(&b'u') {
            overlay.claims.insert(k.clone(), None);
        }
    }
}
