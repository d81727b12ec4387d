//! The raw RocksDB writes the RocksDB benches measure the facade against:
//! the same reads and writes as a facade create of a record, by hand.
//! Included by path (`#[path]`) from the RocksDB and concurrent-writes
//! benches.

#![allow(dead_code)]

use chrono::Utc;
use datastore_core::{Profile, Record, RecordId, Revision, index_entries_of};
use datastore_rocks::layout::{self, Envelope, Header};
use rocksdb::{DB, WriteBatch, WriteOptions};

/// Adds a new profile at feed position `seq` to `batch`: checks that the
/// record key and the username claim are free (two point reads, as the
/// facade's precondition and unique check), then adds the record, its index
/// entries, the claim, its history version and the feed entry.
pub fn add_put(db: &DB, batch: &mut WriteBatch, seq: u64, p: &Profile) {
    add_new(db, batch, seq, p, true);
}

/// Adds a new record of any kind at feed position `seq` to `batch`: checks
/// that its key and each of its unique claims are free (a point read each,
/// as the facade's precondition and unique checks), then adds the record,
/// its index entries and claims, its history version when `history`, and
/// the feed entry (with the record's parent).
pub fn add_new<R: Record>(db: &DB, batch: &mut WriteBatch, seq: u64, r: &R, history: bool) {
    let key = r.id().key();
    let entries = index_entries_of(r);
    let records = db.cf_handle(layout::RECORDS).unwrap();
    let indexes = db.cf_handle(layout::INDEXES).unwrap();
    let raw_key = layout::record_key(R::KIND, &key);
    assert!(db.get_pinned_cf(records, &raw_key).unwrap().is_none());
    for e in entries.iter().filter(|e| e.unique) {
        let claim = layout::unique_key(R::KIND, e.index, &e.values);
        assert!(db.get_pinned_cf(indexes, claim).unwrap().is_none());
    }
    let index_keys = layout::owned_index_keys(R::KIND, &key, &entries);
    for k in &index_keys {
        batch.put_cf(indexes, k, key.as_bytes());
    }
    let now = Utc::now();
    let header = Header {
        revision: Revision::new(seq),
        created: now,
        updated: now,
        index_keys,
        actor: None,
    };
    let body = serde_json::to_vec(r).unwrap();
    batch.put_cf(records, raw_key, Envelope::encode(&header, &body));
    if history {
        batch.put_cf(
            db.cf_handle(layout::HISTORY).unwrap(),
            layout::history_key(R::KIND, &key, header.revision),
            layout::VersionValue::encode(false, now, None, Some(&body)),
        );
    }
    let change = serde_json::json!({"seq": seq, "kind": R::KIND, "id": key, "op": "put", "revision": seq, "at": now, "parent": r.parent()});
    batch.put_cf(
        db.cf_handle(layout::FEED).unwrap(),
        layout::feed_key(seq),
        serde_json::to_vec(&change).unwrap(),
    );
}

/// Stores the head `seq` in `batch` and writes it, synced when `sync`.
pub fn write(db: &DB, mut batch: WriteBatch, seq: u64, sync: bool) {
    batch.put_cf(
        db.cf_handle(layout::META).unwrap(),
        b"bench_head",
        seq.to_be_bytes(),
    );
    let mut wo = WriteOptions::default();
    wo.set_sync(sync);
    db.write_opt(batch, &wo).unwrap();
}

/// Puts one new profile at feed position `seq` ([`add_put`] and [`write`]
/// in one `WriteBatch`).
pub fn raw_rocks_put(db: &DB, seq: u64, p: &Profile, sync: bool) {
    let mut batch = WriteBatch::default();
    add_put(db, &mut batch, seq, p);
    write(db, batch, seq, sync);
}
