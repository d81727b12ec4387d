//! Bulk load through the facade against RocksDB's own bulk mechanism (one
//! large `WriteBatch` per batch, written by hand).
//!
//! ```text
//! cargo bench -p datastore-rocks --bench rocks_bulk
//! # records per round, records per batch, rounds:
//! BULK_RECORDS=1000000 BULK_BATCH=5000 BULK_ROUNDS=3 cargo bench -p datastore-rocks --bench rocks_bulk
//! ```
//!
//! Each round loads `BULK_RECORDS` new profiles of about 300 bytes of JSON
//! into an empty store, `BULK_BATCH` at a time, once through the facade
//! (`Datastore::apply` of a batch of `MustNotExist` puts: what `import` and
//! `copy` write) and once by hand: per batch, for each profile, the two
//! reads the facade makes (is the key free, is the username free), then the
//! record, its index entries, the claim and the feed entry into one
//! `WriteBatch` with the new head, written synced. Both sides run with the
//! store's default options (`sync_on_commit` on). Rounds alternate facade
//! and raw; the table gives the median of each and their ratio.

use std::time::{Duration, Instant};

use datastore_core::{EngineStore, Record};
use datastore_rocks::{RocksConfig, RocksEngine};
use rocksdb::WriteBatch;

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{env, median};
#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
use facade_ops::{bulk_load, bulk_profile};
#[path = "../../benches/common/rocks_raw.rs"]
mod rocks_raw;

/// Loads through the facade; returns the time the writes took.
async fn facade_round(dir: &std::path::Path, records: usize, batch: usize) -> Duration {
    let ds = EngineStore::new(RocksEngine::open(RocksConfig::new(dir)).unwrap());
    bulk_load(&ds, records, batch).await
}

/// Loads by hand into a store opened the same way; returns the time the
/// writes took.
fn raw_round(dir: &std::path::Path, records: usize, batch: usize) -> Duration {
    let engine = RocksEngine::open(RocksConfig::new(dir)).unwrap();
    let db = engine.db();
    let start = Instant::now();
    let mut i = 0;
    while i < records {
        let end = (i + batch).min(records);
        let mut wb = WriteBatch::default();
        for n in i..end {
            let p = bulk_profile(n);
            p.validate().unwrap();
            rocks_raw::add_put(db, &mut wb, n as u64 + 1, &p);
        }
        rocks_raw::write(db, wb, end as u64, true);
        i = end;
    }
    start.elapsed()
}

fn main() {
    let records = env("BULK_RECORDS", 100_000);
    let batch = env("BULK_BATCH", 5_000);
    let rounds = env("BULK_ROUNDS", 3).max(1);
    let rt = rounds::runtime();
    println!("{records} profiles per round, {batch} per batch, {rounds} rounds");
    let (mut facade, mut raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let took = rt.block_on(facade_round(&dir.path().join("f"), records, batch));
        facade.push(records as f64 / took.as_secs_f64());
        let took = raw_round(&dir.path().join("r"), records, batch);
        raw.push(records as f64 / took.as_secs_f64());
        eprintln!(
            "round {round}: facade {:.0}/s, raw {:.0}/s",
            facade[round], raw[round]
        );
    }
    let (f, r) = (median(facade), median(raw));
    println!(
        "{:<10} {:>14} {:>14} {:>12}",
        "backend", "facade rec/s", "raw rec/s", "facade/raw"
    );
    println!("{:<10} {f:>14.0} {r:>14.0} {:>12.2}", "rocksdb", f / r);
}
