//! The facade's side of the facade-against-raw benches, the same for every
//! engine: `n` gets, puts or pages through a `Datastore`, timed on a
//! runtime worker ([`on_worker`]). Included by
//! path (`#[path]`) from the RocksDB and SQL benches.

#![allow(dead_code)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datastore_core::{
    Batch, BatchOp, Datastore, LogId, LogOp, PageRequest, Precondition, Profile, ProfileId, Run,
    RunId, Workflow, WorkflowId,
};
use tokio::runtime::Runtime;

/// Runs one side's timed loop as a task on the runtime's workers, as a
/// service's request handlers run, and returns the time it measured. Both
/// sides of an async comparison go through this: a future driven by
/// `block_on` from the main thread instead waits for a worker to pass on
/// every socket wake-up, which costs a side with several round trips more
/// than one whose writer already runs as a task.
pub fn on_worker<F>(rt: &Runtime, timed: F) -> Duration
where
    F: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(rt.spawn(timed)).expect("a bench task panicked")
}

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

/// `n` point gets of runs, cycling over `ids` from `*next` (on a worker,
/// see [`on_worker`]).
pub fn gets(
    rt: &Runtime,
    ds: &Arc<dyn Datastore>,
    ids: &[RunId],
    next: &mut usize,
    n: u64,
) -> Duration {
    let list = cycle(ids, next, n);
    let ds = ds.clone();
    on_worker(rt, async move {
        let start = Instant::now();
        for id in &list {
            black_box(ds.runs().get(id).await.unwrap());
        }
        start.elapsed()
    })
}

/// The next `n` of `ids` from `*next`, cycling (made before a clock starts).
pub fn cycle(ids: &[RunId], next: &mut usize, n: u64) -> Vec<RunId> {
    (0..n)
        .map(|_| {
            *next += 1;
            ids[*next % ids.len()].clone()
        })
        .collect()
}

/// `n` puts of new profiles (made before the clock starts).
pub fn puts(rt: &Runtime, ds: &Arc<dyn Datastore>, n: u64) -> Duration {
    let profiles = new_profiles("facade", n);
    let ds = ds.clone();
    on_worker(rt, async move {
        let start = Instant::now();
        for p in profiles {
            black_box(
                ds.profiles()
                    .put(p, Precondition::MustNotExist)
                    .await
                    .unwrap(),
            );
        }
        start.elapsed()
    })
}

/// How many runs one `get_many` reads.
pub const GET_MANY: usize = 20;

/// The ids the `k`th `get_many` of a bench reads: [`GET_MANY`] runs spread
/// over `ids` (not neighbours, so not one block).
pub fn many_ids(ids: &[RunId], k: usize) -> Vec<RunId> {
    (0..GET_MANY)
        .map(|j| ids[(k * 7 + j * 499) % ids.len()].clone())
        .collect()
}

/// `n` awaited calls of `read` (on a worker, see [`on_worker`]) with
/// [`GET_MANY`] run ids each, cycling from `*next`; the id lists are made
/// before the clock starts. Both sides of a get-many comparison time their
/// reads through this.
pub fn many_reads<F, Fut>(
    rt: &Runtime,
    ids: &[RunId],
    next: &mut usize,
    n: u64,
    read: F,
) -> Duration
where
    F: Fn(Vec<RunId>) -> Fut + Send + 'static,
    Fut: Future + Send,
{
    let lists: Vec<Vec<RunId>> = (0..n)
        .map(|_| {
            *next += 1;
            many_ids(ids, *next)
        })
        .collect();
    on_worker(rt, async move {
        let start = Instant::now();
        for list in lists {
            black_box(read(list).await);
        }
        start.elapsed()
    })
}

/// `n` reads of [`GET_MANY`] runs at once through the facade ([`many_reads`]).
pub fn get_manys(
    rt: &Runtime,
    ds: &Arc<dyn Datastore>,
    ids: &[RunId],
    next: &mut usize,
    n: u64,
) -> Duration {
    let ds = ds.clone();
    many_reads(rt, ids, next, n, move |list| {
        let ds = ds.clone();
        async move { ds.runs().get_many(&list).await.unwrap() }
    })
}

/// `n` new runs of `workflow` (`RunStore::create`: the store reads the
/// workflow and its run count and assigns the next number), with ids made
/// before the clock starts.
pub fn run_creates(
    rt: &Runtime,
    ds: &Arc<dyn Datastore>,
    workflow: &WorkflowId,
    n: u64,
) -> Duration {
    let runs = new_runs("facade", workflow, n);
    let ds = ds.clone();
    on_worker(rt, async move {
        let start = Instant::now();
        for run in runs {
            black_box(ds.runs().create(run).await.unwrap());
        }
        start.elapsed()
    })
}

/// `n` new runs of `workflow` with ids of their own, named after the side
/// that creates them.
pub fn new_runs(side: &str, workflow: &WorkflowId, n: u64) -> Vec<Run> {
    static MADE: AtomicU64 = AtomicU64::new(0);
    (0..n)
        .map(|_| {
            let mut run = Run::new(workflow.clone(), vec![]);
            run.id = RunId::new(format!(
                "{side}-run-{}",
                MADE.fetch_add(1, Ordering::Relaxed)
            ));
            run
        })
        .collect()
}

/// The `seq`th op of a bench log: about 200 bytes of JSON.
pub fn log_op(seq: u64) -> LogOp {
    LogOp {
        model: 1,
        reference: format!("/ipfs/Qm{seq:044}"),
        prev: format!("/ipfs/Qm{:044}", seq.saturating_sub(1)),
        name: "bench/dataset".into(),
        author_id: "owner".into(),
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + seq as i64, 0).unwrap(),
        size: 4096,
        ..LogOp::default()
    }
}

/// `n` appends of one op each to `log`, whose length is `*len`.
pub fn log_appends(
    rt: &Runtime,
    ds: &Arc<dyn Datastore>,
    log: &LogId,
    len: &mut u64,
    n: u64,
) -> Duration {
    let ops: Vec<LogOp> = (*len..*len + n).map(log_op).collect();
    let (ds, log, first) = (ds.clone(), log.clone(), *len);
    *len += n;
    on_worker(rt, async move {
        let start = Instant::now();
        for (at, op) in (first..).zip(ops) {
            black_box(ds.logs().append(&log, at, vec![op]).await.unwrap());
        }
        start.elapsed()
    })
}

/// `n` first pages of 100 runs of `workflow`, newest first.
pub fn pages(rt: &Runtime, ds: &Arc<dyn Datastore>, workflow: &WorkflowId, n: u64) -> Duration {
    let (ds, workflow) = (ds.clone(), workflow.clone());
    on_worker(rt, async move {
        let start = Instant::now();
        for _ in 0..n {
            black_box(
                ds.runs()
                    .list_by_workflow(&workflow, PageRequest::first(100))
                    .await
                    .unwrap(),
            );
        }
        start.elapsed()
    })
}

/// Puts `workflow` and creates `count` runs of it; returns their ids.
pub fn seed_runs(
    rt: &Runtime,
    ds: &dyn Datastore,
    workflow: &WorkflowId,
    count: usize,
) -> Vec<RunId> {
    rt.block_on(async {
        let mut w = Workflow::new(format!("{workflow}-init"), "owner");
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
