//! The facade against hand-written RocksDB calls doing the same reads and
//! writes, in one process over one database.
//!
//! ```text
//! cargo bench -p datastore-rocks --bench facade_vs_raw
//! ```
//!
//! Operations: a point get of a run by id, a put of a new profile, a page
//! of 100 runs of one workflow (newest first), a `get_many` of 20 runs, a
//! run create (the workflow read for its owner, the run count read, the
//! run written with the new count) and a log append of one op. A last group reads pages of
//! 100 runs at depths 0, 10,000, 300,000 and 900,000 (`DEEP_PAGE_DEPTH` sets
//! the deepest) of one workflow, to show a keyset page's cost does not grow
//! with its depth. The raw side decodes the same envelope and JSON; for a
//! put it makes the facade's two reads (is the key free, is the username
//! free) and writes the same record, index entries, claim, feed entry and
//! head in one `WriteBatch`. Commits are not fsynced on either side (`sync_on_commit =
//! false`), so the figures show what the facade adds, not the disk. Each
//! operation runs in rounds that alternate facade and raw (`BENCH_ROUNDS`,
//! default 7; `BENCH_ROUND_MS`, default 300); the table gives each side's
//! median round and the facade's throughput as a fraction of raw.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datastore_core::keycodec::{encode_values, prefix_end};
use datastore_core::{
    Datastore, EngineStore, IndexValue, Kind, LogEntry, LogEntryKey, LogId, LogOp, Record,
    RecordId, Run, RunId, Versioned, Workflow, WorkflowId,
};
use datastore_rocks::layout::{self, Envelope};
use datastore_rocks::{RocksConfig, RocksEngine};
use rocksdb::{DB, ReadOptions};

const RUNS: usize = 10_000;

#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
#[path = "../../benches/common/rocks_raw.rs"]
mod rocks_raw;
#[path = "../../benches/common/rounds.rs"]
mod rounds;
use facade_ops::{
    deep_pages, get_manys, gets, log_appends, log_op, many_reads, new_profiles, new_runs, pages,
    puts, run_creates, seed_runs,
};
use rocks_raw::{add_new, raw_rocks_put, write};
use rounds::{compare, env, print_table, time_n};

/// Decodes a stored value as the facade does: what a read needs of the
/// envelope's header (index keys skipped) and the JSON body into a
/// `Versioned` run (checked as UTF-8 once, then parsed as text).
fn decode(bytes: &[u8]) -> Versioned<Run> {
    let (header, body) = Envelope::decode_read(bytes).unwrap();
    Versioned {
        value: serde_json::from_str(std::str::from_utf8(body).unwrap()).unwrap(),
        revision: header.revision,
        created: header.created,
        updated: header.updated,
        actor: header.actor.map(|a| a.parse().unwrap()),
    }
}

/// Raw point get: read and decode.
fn raw_get(db: &DB, id: &str) -> Versioned<Run> {
    let cf = db.cf_handle(layout::RECORDS).unwrap();
    let bytes = db
        .get_pinned_cf(cf, layout::record_key(Kind::Run, id))
        .unwrap()
        .unwrap();
    decode(&bytes)
}

/// Raw get-many: one batched `multi_get` of the records (pinned, as the
/// engine reads them) and their decodes, in the ids' order.
fn raw_get_many(db: &DB, ids: &[RunId]) -> Vec<Option<Versioned<Run>>> {
    let cf = db.cf_handle(layout::RECORDS).unwrap();
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| layout::record_key(Kind::Run, id.as_str()))
        .collect();
    db.batched_multi_get_cf(&cf, &keys, false)
        .into_iter()
        .map(|v| v.unwrap().map(|bytes| decode(&bytes)))
        .collect()
}

/// Raw run create: read and decode the workflow (for its owner), read its
/// run count, then, as a put, check the run's key and its
/// (workflow, number) claim are free and write the record, index entries,
/// claim, history version, the new count, the feed entry and the head in
/// one `WriteBatch`.
fn raw_run_create(db: &DB, seq: u64, mut run: Run) {
    let records = db.cf_handle(layout::RECORDS).unwrap();
    let stored = db
        .get_pinned_cf(
            records,
            layout::record_key(Kind::Workflow, run.workflow_id.as_str()),
        )
        .unwrap()
        .unwrap();
    let (_, body) = Envelope::decode_read(&stored).unwrap();
    let workflow: Workflow = serde_json::from_str(std::str::from_utf8(body).unwrap()).unwrap();
    let meta = db.cf_handle(layout::META).unwrap();
    let counter = layout::counter_key(&Run::counter_name(&run.workflow_id));
    let count = db
        .get_cf(meta, &counter)
        .unwrap()
        .and_then(|v| layout::read_u64(&v))
        .unwrap_or(0);
    run.owner_id = workflow.owner_id;
    run.number = count + 1;
    run.created = chrono::Utc::now();
    run.validate().unwrap();
    let mut batch = rocksdb::WriteBatch::default();
    add_new(db, &mut batch, seq, &run, true);
    batch.put_cf(meta, counter, run.number.to_be_bytes());
    write(db, batch, seq, false);
}

/// Raw log append of one op at `len`: check the entry before it exists and
/// (as a put) that the entry's key and its (log, seq) claim are free, then
/// write the entry, its index entries, claim, feed entry and head in one
/// `WriteBatch` (logs keep no history).
fn raw_log_append(db: &DB, seq: u64, log: &LogId, len: u64, op: LogOp) {
    let entry = LogEntry {
        log_id: log.clone(),
        seq: len,
        op,
    };
    entry.validate().unwrap();
    if len > 0 {
        let prev = LogEntryKey {
            log_id: log.clone(),
            seq: len - 1,
        };
        let records = db.cf_handle(layout::RECORDS).unwrap();
        assert!(
            db.get_pinned_cf(records, layout::record_key(Kind::Log, &prev.key()))
                .unwrap()
                .is_some()
        );
    }
    let mut batch = rocksdb::WriteBatch::default();
    add_new(db, &mut batch, seq, &entry, false);
    write(db, batch, seq, false);
}

/// Raw page: scan the (workflow, number) index backwards, one batched
/// multi-get (pinned), decode.
fn raw_page(db: &DB, workflow: &str, limit: usize) -> Vec<Versioned<Run>> {
    let mut base = layout::index_base(Kind::Run, "workflow_number", false);
    base.extend_from_slice(&encode_values(&[IndexValue::str(workflow)]));
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(prefix_end(&base));
    ro.set_iterate_lower_bound(base);
    let mut it = db.raw_iterator_cf_opt(db.cf_handle(layout::INDEXES).unwrap(), ro);
    it.seek_to_last();
    let mut keys = Vec::with_capacity(limit);
    while it.valid() && keys.len() < limit {
        keys.push(layout::record_key(
            Kind::Run,
            std::str::from_utf8(it.value().unwrap()).unwrap(),
        ));
        it.prev();
    }
    let records = db.cf_handle(layout::RECORDS).unwrap();
    db.batched_multi_get_cf(&records, &keys, false)
        .into_iter()
        .map(|v| decode(&v.unwrap().unwrap()))
        .collect()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = RocksConfig::new(dir.path().join("db"));
    config.sync_on_commit = false;
    let store = Arc::new(EngineStore::new(RocksEngine::open(config).unwrap()));
    let ds: Arc<dyn Datastore> = store.clone();
    let db = store.engine().db();

    let workflow = WorkflowId::new("bench-workflow");
    let run_ids = seed_runs(&rt, &*ds, &workflow, RUNS);
    assert_eq!(raw_page(db, workflow.as_str(), 100).len(), 100);

    let mut measured = Vec::new();
    let (mut fi, mut ri) = (0, 0);
    measured.push(compare(
        "get",
        &mut |n| gets(&rt, &ds, &run_ids, &mut fi, n),
        &mut |n| {
            time_n(n, || {
                ri += 1;
                black_box(raw_get(db, run_ids[ri % RUNS].as_str()));
            })
        },
    ));

    let mut seq = 1u64 << 60;
    measured.push(compare("put", &mut |n| puts(&rt, &ds, n), &mut |n| {
        let batch = new_profiles("raw", n);
        let start = Instant::now();
        for p in &batch {
            seq += 1;
            p.validate().unwrap();
            raw_rocks_put(db, seq, p, false);
        }
        start.elapsed()
    }));

    measured.push(compare(
        "page of 100 runs",
        &mut |n| pages(&rt, &ds, &workflow, n),
        &mut |n| time_n(n, || drop(black_box(raw_page(db, workflow.as_str(), 100)))),
    ));

    let (mut fi, mut ri) = (0, 0);
    measured.push(compare(
        &format!("get_many of {} runs", facade_ops::GET_MANY),
        &mut |n| get_manys(&rt, &ds, &run_ids, &mut fi, n),
        &mut |n| {
            // The same loop as the facade's, on the same (one) thread.
            let store = store.clone();
            many_reads(&rt, &run_ids, &mut ri, n, move |list| {
                let store = store.clone();
                async move { raw_get_many(store.engine().db(), &list) }
            })
        },
    ));

    // Each side creates runs of a workflow of its own.
    let facade_workflow = WorkflowId::new("create-facade");
    let raw_workflow = WorkflowId::new("create-raw");
    seed_runs(&rt, &*ds, &facade_workflow, 0);
    seed_runs(&rt, &*ds, &raw_workflow, 0);
    measured.push(compare(
        "run create",
        &mut |n| run_creates(&rt, &ds, &facade_workflow, n),
        &mut |n| {
            let runs = new_runs("raw", &raw_workflow, n);
            let start = Instant::now();
            for run in runs {
                seq += 1;
                raw_run_create(db, seq, run);
            }
            start.elapsed()
        },
    ));

    let (facade_log, raw_log) = (LogId::new("append-facade"), LogId::new("append-raw"));
    let (mut facade_len, mut raw_len) = (0, 0);
    measured.push(compare(
        "log append of one op",
        &mut |n| log_appends(&rt, &ds, &facade_log, &mut facade_len, n),
        &mut |n| {
            let ops: Vec<LogOp> = (raw_len..raw_len + n).map(log_op).collect();
            let start = Instant::now();
            for op in ops {
                seq += 1;
                raw_log_append(db, seq, &raw_log, raw_len, op);
                raw_len += 1;
            }
            start.elapsed()
        },
    ));

    let (total, deep_pages) = deep_pages(&rt, &*ds, env("DEEP_PAGE_DEPTH", 900_000));

    print_table(
        "median of interleaved rounds; facade/raw is throughput (1.00 = no overhead)",
        &measured,
    );
    print_table(
        &format!("page of 100 runs of a workflow with {total} runs, newest first, by depth:"),
        &deep_pages,
    );
}
