//! `import` of a JSON Lines file against the same file loaded by hand with
//! the engine's bulk mechanism.
//!
//! ```text
//! cargo bench -p datastore --bench import_vs_raw
//! # records in the file, rounds, backends:
//! BULK_RECORDS=1000000 BULK_ROUNDS=3 BULK_BACKENDS=rocksdb,sqlite cargo bench -p datastore --bench import_vs_raw
//! ```
//!
//! The file holds `BULK_RECORDS` profiles of about 300 bytes of JSON (the
//! bulk benches' profiles) as `export` writes them, one
//! `{"kind":"profile","record":{...}}` a line. Each round loads it into an
//! empty store twice:
//!
//! - **import**: what `datastore import URL FILE` does: the whole file
//!   checked ([`transfer::check`]: every line parsed strictly and
//!   validated, repeats and unique values within the file, the
//!   destination), then written ([`transfer::import_checked`]) in batches of 5,000,
//!   each an atomic, synced commit with index, history and feed entries;
//! - **raw**: the file read once, each line parsed plainly into a profile
//!   (serde_json, unknown fields ignored) and validated, then written by
//!   hand, 5,000 a batch, as the bulk benches' raw sides write (RocksDB:
//!   the two point reads and one synced `WriteBatch` of record, index
//!   entries, claim, history version, feed entry and head; SQLite: one
//!   `BEGIN IMMEDIATE` transaction of multi-row `INSERT`s of the records,
//!   history versions and feed rows, and the head).
//!
//! A third side, **strict write**, is the import as the program ran it
//! before `import_checked`: the check, then a write that reads every line
//! strictly again and looks each batch up in the destination.
//!
//! Rounds alternate the sides; the table gives each side's median and its
//! ratio to raw. The time includes opening the store and reading the file.
//! The process runs on the program's allocator (mimalloc), both sides alike.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use datastore::transfer::{self, Item};
use datastore::{AnyRecord, Config, Profile, Record};
use serde::Deserialize;

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{env, median};
#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
use facade_ops::bulk_profile;
#[path = "../../benches/common/rocks_raw.rs"]
mod rocks_raw;
#[path = "../../benches/common/sql_raw.rs"]
mod sql_raw;

/// The program's allocator: `import` is the program's command.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per batch on both sides (the program's batch).
const BATCH: usize = transfer::BATCH_SIZE;

/// Writes the file: `records` bulk profiles as export lines.
fn write_file(path: &Path, records: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..records {
        let item = Item::Record(AnyRecord::Profile(bulk_profile(i)));
        serde_json::to_writer(&mut out, &item).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

/// `datastore import URL FILE` without the terminal: check, then import;
/// with `strict_write`, the write reads every line strictly again and
/// looks each batch up in the destination (the program before 2026-12-04's
/// `import_checked`).
async fn import_round(url: &str, file: &Path, records: usize, strict_write: bool) -> Duration {
    let start = Instant::now();
    let mut config = Config::with_url(url);
    config.cache.enabled = false;
    let ds = datastore::open(&config).await.unwrap();
    let open = || BufReader::new(std::fs::File::open(file).unwrap());
    let checked = transfer::check(&*ds, open(), |_| {}).await.unwrap();
    assert_eq!(checked.items as usize, records);
    let stats = if strict_write {
        transfer::import(&*ds, open(), |_| {}).await.unwrap()
    } else {
        transfer::import_checked(&*ds, open(), &checked, |_| {})
            .await
            .unwrap()
    };
    assert_eq!(stats.written as usize, records);
    ds.close().await.unwrap();
    start.elapsed()
}

/// One line as the raw side reads it: plainly, unknown fields ignored.
#[derive(Deserialize)]
struct Line {
    kind: String,
    record: Profile,
}

/// The file's profiles, read and parsed plainly, each validated.
fn profiles(file: &Path) -> impl Iterator<Item = Profile> {
    BufReader::new(std::fs::File::open(file).unwrap())
        .lines()
        .map(|line| {
            let line: Line = serde_json::from_str(&line.unwrap()).unwrap();
            assert_eq!(line.kind, "profile");
            line.record.validate().unwrap();
            line.record
        })
}

/// The file loaded by hand into a RocksDB store opened as `import` opens it.
fn raw_rocks_round(dir: &Path, file: &Path) -> Duration {
    let start = Instant::now();
    let engine =
        datastore::rocks::RocksEngine::open(datastore::rocks::RocksConfig::new(dir)).unwrap();
    let db = engine.db();
    let mut batch = rocksdb::WriteBatch::default();
    let (mut seq, mut in_batch) = (0u64, 0);
    for p in profiles(file) {
        seq += 1;
        rocks_raw::add_put(db, &mut batch, seq, &p);
        in_batch += 1;
        if in_batch == BATCH {
            rocks_raw::write(db, std::mem::take(&mut batch), seq, true);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        rocks_raw::write(db, batch, seq, true);
    }
    drop(engine);
    start.elapsed()
}

fn main() {
    let records = env("BULK_RECORDS", 100_000);
    let rounds = env("BULK_ROUNDS", 3).max(1);
    let only = std::env::var("BULK_BACKENDS").unwrap_or_else(|_| "rocksdb,sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("profiles.jsonl");
    write_file(&file, records);
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!(
        "{records} profiles per round ({} bytes a line), {BATCH} per batch, {rounds} rounds",
        bytes / records as u64
    );
    println!(
        "{:<10} {:>14} {:>14} {:>14} {:>12} {:>12}",
        "backend", "import rec/s", "strict rec/s", "raw rec/s", "import/raw", "strict/raw"
    );
    for backend in ["rocksdb", "sqlite"] {
        if !only.contains(backend) {
            continue;
        }
        let (mut import, mut strict, mut raw) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let dir = tempfile::tempdir_in(work.path()).unwrap();
            let url = |name: &str| match backend {
                "rocksdb" => format!("rocksdb://{}", dir.path().join(name).display()),
                _ => format!("sqlite://{}", dir.path().join(name).display()),
            };
            let took = rt.block_on(import_round(&url("import"), &file, records, false));
            import.push(records as f64 / took.as_secs_f64());
            let took = rt.block_on(import_round(&url("strict"), &file, records, true));
            strict.push(records as f64 / took.as_secs_f64());
            let took = match backend {
                "rocksdb" => raw_rocks_round(&dir.path().join("r"), &file),
                _ => rt.block_on(async {
                    let target = sql_raw::Target::Sqlite(tempfile::tempdir_in(dir.path()).unwrap());
                    sql_raw::timed_load(&target, BATCH, profiles(&file)).await
                }),
            };
            raw.push(records as f64 / took.as_secs_f64());
            eprintln!(
                "{backend} round {round}: import {:.0}/s, strict write {:.0}/s, raw {:.0}/s",
                import[round], strict[round], raw[round]
            );
        }
        let (i, s, r) = (median(import), median(strict), median(raw));
        println!(
            "{backend:<10} {i:>14.0} {s:>14.0} {r:>14.0} {:>12.2} {:>12.2}",
            i / r,
            s / r
        );
    }
}
