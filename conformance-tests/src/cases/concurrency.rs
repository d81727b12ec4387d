//! Concurrent writers: no lost update, no fork, no gap.

use std::sync::Arc;

use datastore_core::{
    CollectionKey, Datastore, Error, LogId, Precondition, Profile, ProfileId, Run,
};
use tokio::sync::Barrier;

use crate::support::*;

/// 16 tasks × 50 read-modify-write increments, retrying on Conflict, end
/// with the exact count.
pub async fn read_modify_write_increments(ds: Arc<dyn Datastore>) {
    const TASKS: u64 = 16;
    const INCREMENTS: u64 = 50;
    ds.collections()
        .put(entry("p1", "i1", "counter"), Precondition::MustNotExist)
        .await
        .unwrap();
    let key = CollectionKey::new("p1", "i1");
    let barrier = Arc::new(Barrier::new(TASKS as usize));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (ds, key, barrier) = (ds.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let current = ds.collections().get(&key).await.unwrap();
                    let mut next = current.value.clone();
                    next.counts.commits += 1;
                    match ds.collections().put(next, current.expect()).await {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let done = ds.collections().get(&key).await.unwrap();
    assert_eq!(done.value.counts.commits, TASKS * INCREMENTS);
    let changes = ds
        .changes()
        .since(datastore_core::FeedCursor::START, 10_000)
        .await
        .unwrap();
    let writes = changes.iter().filter(|c| c.id == key.to_string()).count() as u64;
    assert_eq!(
        writes,
        TASKS * INCREMENTS + 1,
        "one change per successful write"
    );
}

/// Two appenders with the same expected length: exactly one wins, every round.
pub async fn log_appenders_exactly_one_wins(ds: Arc<dyn Datastore>) {
    let log = LogId::new("contended");
    for round in 0..20u64 {
        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for writer in 0..2 {
            let (ds, log, barrier) = (ds.clone(), log.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                ds.logs()
                    .append(&log, round, vec![op(&format!("r{round}w{writer}"))])
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(entries) => {
                    assert_eq!(entries[0].value.seq, round);
                    wins += 1;
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one appender wins");
    }
    assert_eq!(ds.logs().length(&log).await.unwrap(), 20);
}

/// 8 tasks creating runs of one workflow at once get 1..N, no gap, no repeat.
pub async fn run_numbers_without_gap(ds: Arc<dyn Datastore>) {
    const TASKS: usize = 8;
    const EACH: usize = 5;
    let w = workflow(&ds, "init-1", "o").await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (ds, wid, barrier) = (ds.clone(), w.value.id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut numbers = Vec::new();
            for _ in 0..EACH {
                numbers.push(
                    ds.runs()
                        .create(Run::new(wid.clone(), vec![]))
                        .await
                        .unwrap()
                        .value
                        .number,
                );
            }
            numbers
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=(TASKS * EACH) as u64).collect::<Vec<_>>());
    assert_eq!(
        ds.runs().count(&w.value.id).await.unwrap(),
        (TASKS * EACH) as u64
    );
}

/// 8 tasks claiming one username: exactly one gets it.
pub async fn unique_username_race(ds: Arc<dyn Datastore>) {
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (ds, barrier) = (ds.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = Profile::new("popular");
            p.id = ProfileId::new(format!("claimant-{i}"));
            barrier.wait().await;
            ds.profiles().put(p, Precondition::Any).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let owner = ds.profiles().get_by_username("popular").await.unwrap();
    assert!(owner.value.id.as_str().starts_with("claimant-"));
}

/// 8 tasks creating one id with must-not-exist: exactly one succeeds.
pub async fn must_not_exist_race(ds: Arc<dyn Datastore>) {
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (ds, barrier) = (ds.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = Profile::new(format!("user{i}"));
            p.id = ProfileId::new("the-one");
            barrier.wait().await;
            ds.profiles().put(p, Precondition::MustNotExist).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let head = ds.changes().head().await.unwrap();
    assert_eq!(
        ds.changes()
            .since(datastore_core::FeedCursor::START, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(head.0 >= 1);
}
