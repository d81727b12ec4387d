//! The facade's side of the facade-against-raw benches, the same for every
//! engine: `n` gets, puts or pages through a `Datastore`, timed. Included by
//! path (`#[path]`) from the RocksDB and SQL benches.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datastore_core::{
    Batch, BatchOp, Datastore, PageRequest, Precondition, Profile, ProfileId, Run, RunId, Workflow,
    WorkflowId,
};
use tokio::runtime::Runtime;

/// `n` new profiles, named after the side that writes them, never the same
/// id twice in a process.
pub fn new_profiles(side: &str, n: u64) -> Vec<Profile> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    (0..n)
        .map(|_| {
            let i = MADE.fetch_add(1, Ordering::Relaxed);
            let mut p = Profile::new(format!("{side}{i}"));
            p.id = ProfileId::new(format!("{side}-{i}"));
            p
        })
        .collect()
}

/// The `i`th profile of a bulk load: about 300 bytes of JSON.
pub fn bulk_profile(i: usize) -> Profile {
    let mut p = Profile::new(format!("user{i:08}"));
    p.id = ProfileId::new(format!("p{i:010}"));
    p.email = format!("user{i:08}@example.com");
    p.name = format!("User number {i}");
    p.description = "x".repeat(120);
    p
}

/// Loads `records` new [`bulk_profile`]s into an empty store through the
/// facade, `batch` to a `Datastore::apply`, checks that every one reached
/// the feed, closes the store, and returns the time the writes took.
pub async fn bulk_load(ds: &dyn Datastore, records: usize, batch: usize) -> Duration {
    let start = Instant::now();
    let mut i = 0;
    while i < records {
        let ops = (i..(i + batch).min(records))
            .map(|n| BatchOp::Put {
                record: bulk_profile(n).into(),
                precondition: Precondition::MustNotExist,
            })
            .collect();
        ds.apply(Batch { ops }).await.unwrap();
        i += batch;
    }
    let took = start.elapsed();
    assert_eq!(ds.changes().head().await.unwrap().0, records as u64);
    ds.close().await.unwrap();
    took
}

/// `n` point gets of runs, cycling over `ids` from `*next`.
pub fn gets(rt: &Runtime, ds: &dyn Datastore, ids: &[RunId], next: &mut usize, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        *next += 1;
        black_box(rt.block_on(ds.runs().get(&ids[*next % ids.len()])).unwrap());
    }
    start.elapsed()
}

/// `n` puts of new profiles (made before the clock starts).
pub fn puts(rt: &Runtime, ds: &dyn Datastore, n: u64) -> Duration {
    let profiles = new_profiles("facade", n);
    let start = Instant::now();
    for p in profiles {
        black_box(
            rt.block_on(ds.profiles().put(p, Precondition::MustNotExist))
                .unwrap(),
        );
    }
    start.elapsed()
}

/// `n` first pages of 100 runs of `workflow`, newest first.
pub fn pages(rt: &Runtime, ds: &dyn Datastore, workflow: &WorkflowId, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            rt.block_on(
                ds.runs()
                    .list_by_workflow(workflow, PageRequest::first(100)),
            )
            .unwrap(),
        );
    }
    start.elapsed()
}

/// Puts `workflow` and creates `count` runs of it; returns their ids.
pub fn seed_runs(
    rt: &Runtime,
    ds: &dyn Datastore,
    workflow: &WorkflowId,
    count: usize,
) -> Vec<RunId> {
    rt.block_on(async {
        let mut w = Workflow::new("bench-init", "owner");
        w.id = workflow.clone();
        ds.workflows().put(w, Precondition::Any).await.unwrap();
        let mut ids = Vec::with_capacity(count);
        for _ in 0..count {
            let run = ds
                .runs()
                .create(Run::new(workflow.clone(), vec![]))
                .await
                .unwrap();
            ids.push(run.value.id);
        }
        ids
    })
}

/// Writes `depth + 100` runs of one workflow in batches, then measures a
/// page of 100 of them, newest first, from a cursor at depths 0, 10,000,
/// 300,000 and `depth` (clamped, without repeats). Returns the number of
/// runs and one measurement per depth.
pub fn deep_pages(
    rt: &Runtime,
    ds: &dyn Datastore,
    depth: usize,
) -> (usize, Vec<super::rounds::Measured>) {
    let workflow = WorkflowId::new("deep-workflow");
    let mut depths = vec![0, 10_000.min(depth), 300_000.min(depth), depth];
    depths.dedup();
    let total = depth + 100;
    let cursors = rt.block_on(async {
        let mut w = Workflow::new("deep-init", "owner");
        w.id = workflow.clone();
        ds.workflows().put(w, Precondition::Any).await.unwrap();
        let mut number = 0;
        while number < total {
            let mut batch = Batch::new();
            for _ in 0..5000.min(total - number) {
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
        for &target in &depths {
            while skipped < target {
                let take = 1000.min(target - skipped) as u32;
                let page = ds
                    .runs()
                    .list_by_workflow(&workflow, PageRequest::after(take, cursor))
                    .await
                    .unwrap();
                skipped += page.items.len();
                cursor = page.next;
            }
            cursors.push(cursor.clone());
        }
        cursors
    });
    let measured = depths
        .iter()
        .zip(cursors)
        .map(|(at_depth, at)| {
            super::rounds::measure(&format!("{at_depth} deep"), &mut |n| {
                super::rounds::time_n(n, || {
                    let page = PageRequest::after(100, at.clone());
                    black_box(
                        rt.block_on(ds.runs().list_by_workflow(&workflow, page))
                            .unwrap(),
                    );
                })
            })
        })
        .collect();
    (total, measured)
}
