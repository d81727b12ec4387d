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
//! with its depth. The raw side decodes the same
//! envelope and JSON, and writes the same record, index entries, feed entry
//! and head. Commits are not fsynced on either side (`sync_on_commit =
//! false`), so the figures show what the facade adds, not the disk. The table
//! at the end gives facade throughput as a fraction of raw throughput.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use datastore_core::keycodec::{encode_values, prefix_end};
use datastore_core::{
    Batch, Cursor, Datastore, EngineStore, IndexValue, Kind, PageRequest, Precondition, Profile,
    ProfileId, Record, Revision, Run, RunId, Workflow, WorkflowId, index_entries_of,
};
use datastore_rocks::layout::{self, Envelope, Header};
use datastore_rocks::{RocksConfig, RocksEngine};
use rocksdb::{DB, ReadOptions, WriteBatch, WriteOptions};

const RUNS: usize = 10_000;

#[path = "../../benches/common/timings.rs"]
mod timings;
use timings::{Timings, finish, per_op, print_ratios};

/// Raw point get: read, decode the envelope and the JSON body.
fn raw_get(db: &DB, id: &str) -> Run {
    let cf = db.cf_handle(layout::RECORDS).unwrap();
    let bytes = db
        .get_pinned_cf(cf, layout::record_key(Kind::Run, id))
        .unwrap()
        .unwrap();
    let (_, body) = Envelope::decode(&bytes).unwrap();
    serde_json::from_slice(body).unwrap()
}

/// Raw put of a new profile: record, index entries, unique claim, feed
/// entry and head in one batch.
fn raw_put(db: &DB, seq: u64, profile: &Profile) {
    let key = profile.id.as_str();
    let entries = index_entries_of(profile);
    let index_keys = layout::owned_index_keys(Kind::Profile, key, &entries);
    let mut batch = WriteBatch::default();
    let indexes = db.cf_handle(layout::INDEXES).unwrap();
    for k in &index_keys {
        batch.put_cf(indexes, k, key.as_bytes());
    }
    let now = Utc::now();
    let header = Header {
        revision: Revision::new(seq),
        created: now,
        updated: now,
        index_keys,
    };
    let body = serde_json::to_vec(profile).unwrap();
    batch.put_cf(
        db.cf_handle(layout::RECORDS).unwrap(),
        layout::record_key(Kind::Profile, key),
        Envelope::encode(&header, &body),
    );
    let change = serde_json::json!({"seq": seq, "kind": "profile", "id": key, "op": "put", "revision": seq, "at": now});
    batch.put_cf(
        db.cf_handle(layout::FEED).unwrap(),
        layout::feed_key(seq),
        serde_json::to_vec(&change).unwrap(),
    );
    batch.put_cf(
        db.cf_handle(layout::META).unwrap(),
        b"bench_head",
        seq.to_be_bytes(),
    );
    let mut wo = WriteOptions::default();
    wo.set_sync(false);
    db.write_opt(batch, &wo).unwrap();
}

/// Raw page: scan the (workflow, number) index backwards, multi-get, decode.
fn raw_page(db: &DB, workflow: &str, limit: usize) -> Vec<Run> {
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
        .map(|v| {
            let v = v.unwrap().unwrap();
            let (_, body) = Envelope::decode(&v).unwrap();
            serde_json::from_slice(body).unwrap()
        })
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
    let mut run_ids: Vec<RunId> = Vec::with_capacity(RUNS);
    rt.block_on(async {
        let mut w = Workflow::new("bench-init", "owner");
        w.id = workflow.clone();
        ds.workflows().put(w, Precondition::Any).await.unwrap();
        for _ in 0..RUNS {
            let run = ds
                .runs()
                .create(Run::new(workflow.clone(), vec![]))
                .await
                .unwrap();
            run_ids.push(run.value.id);
        }
    });
    assert_eq!(raw_page(db, workflow.as_str(), 100).len(), 100);

    let timings: Timings = Arc::default();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));

    let mut group = c.benchmark_group("get");
    group.bench_function("facade", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let id = &run_ids[i % RUNS];
                i += 1;
                black_box(rt.block_on(ds.runs().get(id)).unwrap());
            }
            finish(&timings, "get/facade", iters, start)
        })
    });
    group.bench_function("raw", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let id = &run_ids[i % RUNS];
                i += 1;
                black_box(raw_get(db, id.as_str()));
            }
            finish(&timings, "get/raw", iters, start)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("put");
    let mut n = 0u64;
    group.bench_function("facade", |b| {
        b.iter_custom(|iters| {
            let profiles: Vec<Profile> = (0..iters)
                .map(|_| {
                    n += 1;
                    let mut p = Profile::new(format!("facade{n}"));
                    p.id = ProfileId::new(format!("facade-{n}"));
                    p
                })
                .collect();
            let start = Instant::now();
            for p in profiles {
                black_box(
                    rt.block_on(ds.profiles().put(p, Precondition::MustNotExist))
                        .unwrap(),
                );
            }
            finish(&timings, "put/facade", iters, start)
        })
    });
    let mut seq = 1u64 << 60;
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            let profiles: Vec<Profile> = (0..iters)
                .map(|_| {
                    seq += 1;
                    let mut p = Profile::new(format!("raw{seq}"));
                    p.id = ProfileId::new(format!("raw-{seq}"));
                    p
                })
                .collect();
            let start = Instant::now();
            for p in &profiles {
                p.validate().unwrap();
                raw_put(db, seq, p);
            }
            finish(&timings, "put/raw", iters, start)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("page_of_100_runs");
    group.bench_function("facade", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let page = rt
                    .block_on(
                        ds.runs()
                            .list_by_workflow(&workflow, PageRequest::first(100)),
                    )
                    .unwrap();
                black_box(page);
            }
            finish(&timings, "page_of_100_runs/facade", iters, start)
        })
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(raw_page(db, workflow.as_str(), 100));
            }
            finish(&timings, "page_of_100_runs/raw", iters, start)
        })
    });
    group.finish();

    // Keyset depth: the same page size at several depths.
    let depth: usize = std::env::var("DEEP_PAGE_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(900_000);
    let deep = WorkflowId::new("deep-workflow");
    // Clamped to the deepest depth asked for, without repeats.
    let mut depths = vec![0, 10_000.min(depth), 300_000.min(depth), depth];
    depths.dedup();
    let cursors = rt.block_on(seed_deep(&ds, &deep, depth, &depths));
    let mut group = c.benchmark_group("page_depth");
    for (at_depth, at) in depths.iter().zip(cursors) {
        let name = format!("at_{at_depth}");
        let key = format!("page_depth/{name}");
        group.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let page = PageRequest::after(100, at.clone());
                    black_box(
                        rt.block_on(ds.runs().list_by_workflow(&deep, page))
                            .unwrap(),
                    );
                }
                finish(&timings, &key, iters, start)
            })
        });
    }
    group.finish();
    c.final_summary();

    println!(
        "\npage of 100 runs of a workflow with {} runs, newest first:",
        depth + 100
    );
    for d in depths {
        if let Some(t) = per_op(&timings, &format!("page_depth/at_{d}")) {
            println!("  {d:>9} deep: {:>8.2}µs", t * 1e6);
        }
    }
    print_ratios(&timings, "", &["get", "put", "page_of_100_runs"]);
}
