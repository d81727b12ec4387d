//! The facade against hand-written RocksDB calls doing the same reads and
//! writes, in one process over one database.
//!
//! ```text
//! cargo bench -p datastore-rocks --bench facade_vs_raw
//! ```
//!
//! Operations: a point get of a run by id, a put of a new profile, and a page
//! of 100 runs of one workflow (newest first). A last group reads pages of
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
    Batch, Cursor, Datastore, EngineStore, IndexValue, Kind, PageRequest, Precondition, ProfileId,
    Record, Run, RunId, Versioned, Workflow, WorkflowId,
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
use facade_ops::{gets, new_profiles, pages, puts, seed_runs};
use rocks_raw::raw_rocks_put;
use rounds::{compare, env, measure, print_table, time_n};

/// Decodes a stored value as the facade does: the envelope's header and
/// the JSON body into a `Versioned` run.
fn decode(bytes: &[u8]) -> Versioned<Run> {
    let (header, body) = Envelope::decode(bytes).unwrap();
    Versioned {
        value: serde_json::from_slice(body).unwrap(),
        revision: header.revision,
        created: header.created,
        updated: header.updated,
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

/// Raw page: scan the (workflow, number) index backwards, multi-get, decode.
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
    db.multi_get_cf(keys.iter().map(|k| (records, k.as_slice())))
        .into_iter()
        .map(|v| decode(&v.unwrap().unwrap()))
        .collect()
}

/// Writes `depth + 100` runs of one workflow in batches and returns the
/// cursor at each of `depths` runs into its newest-first list.
async fn seed_deep(
    ds: &Arc<dyn Datastore>,
    workflow: &WorkflowId,
    depth: usize,
    depths: &[usize],
) -> Vec<Option<Cursor>> {
    let mut w = Workflow::new("deep-init", "owner");
    w.id = workflow.clone();
    ds.workflows().put(w, Precondition::Any).await.unwrap();
    let total = depth + 100;
    let mut number = 0;
    while number < total {
        let mut batch = Batch::new();
        for _ in 0..1000.min(total - number) {
            number += 1;
            let mut r = Run::new(workflow.clone(), vec![]);
            r.id = RunId::new(format!("deep-{number}"));
            r.owner_id = ProfileId::new("owner");
            r.number = number as u64;
            batch = batch.put(r, Precondition::MustNotExist);
        }
        ds.apply(batch).await.unwrap();
    }
    let mut cursors = Vec::new();
    let mut cursor = None;
    let mut skipped = 0;
    for &target in depths {
        while skipped < target {
            let take = 1000.min(target - skipped) as u32;
            let page = ds
                .runs()
                .list_by_workflow(workflow, PageRequest::after(take, cursor))
                .await
                .unwrap();
            skipped += page.items.len();
            cursor = page.next;
        }
        cursors.push(cursor.clone());
    }
    cursors
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
        &mut |n| gets(&rt, &*ds, &run_ids, &mut fi, n),
        &mut |n| {
            time_n(n, || {
                ri += 1;
                black_box(raw_get(db, run_ids[ri % RUNS].as_str()));
            })
        },
    ));

    let mut seq = 1u64 << 60;
    measured.push(compare("put", &mut |n| puts(&rt, &*ds, n), &mut |n| {
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
        &mut |n| pages(&rt, &*ds, &workflow, n),
        &mut |n| time_n(n, || drop(black_box(raw_page(db, workflow.as_str(), 100)))),
    ));

    // Keyset depth: the same page size at several depths.
    let depth: usize = env("DEEP_PAGE_DEPTH", 900_000);
    let deep = WorkflowId::new("deep-workflow");
    // Clamped to the deepest depth asked for, without repeats.
    let mut depths = vec![0, 10_000.min(depth), 300_000.min(depth), depth];
    depths.dedup();
    let cursors = rt.block_on(seed_deep(&ds, &deep, depth, &depths));
    let mut deep_pages = Vec::new();
    for (at_depth, at) in depths.iter().zip(cursors) {
        deep_pages.push(measure(&format!("{at_depth} deep"), &mut |n| {
            time_n(n, || {
                let page = PageRequest::after(100, at.clone());
                black_box(
                    rt.block_on(ds.runs().list_by_workflow(&deep, page))
                        .unwrap(),
                );
            })
        }));
    }

    print_table(
        "median of interleaved rounds; facade/raw is throughput (1.00 = no overhead)",
        &measured,
    );
    print_table(
        &format!(
            "page of 100 runs of a workflow with {} runs, newest first, by depth:",
            depth + 100
        ),
        &deep_pages,
    );
}
