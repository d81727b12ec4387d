//! The facade's side of the facade-against-raw benches, the same for every
//! engine: `n` gets, puts or pages through a `Datastore`, timed. Included by
//! path (`#[path]`) from the RocksDB and SQL benches.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datastore_core::{
    Datastore, PageRequest, Precondition, Profile, ProfileId, Run, RunId, Workflow, WorkflowId,
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
