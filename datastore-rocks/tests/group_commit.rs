//! Group commit on RocksDB: concurrent durable commits share WAL syncs, and
//! a committing task never holds its runtime thread while the writer
//! thread makes its group durable.

use std::sync::Arc;
use std::task::Poll;

use datastore_core::{Datastore, EngineStore, FeedCursor, Precondition, Profile, ProfileId};
use datastore_rocks::{RocksConfig, RocksEngine};

fn store(dir: &tempfile::TempDir) -> Arc<EngineStore<RocksEngine>> {
    let engine = RocksEngine::open(RocksConfig::new(dir.path().join("db"))).unwrap();
    Arc::new(EngineStore::new(engine))
}

fn profile(id: String) -> Profile {
    let mut p = Profile::new(id.replace('-', "x"));
    p.id = ProfileId::new(id);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_durable_commits_share_groups() {
    const WRITERS: usize = 32;
    const EACH: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let ds: Arc<dyn Datastore> = store.clone();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let ds = ds.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    ds.profiles()
                        .put(profile(format!("w{w}-{i}")), Precondition::MustNotExist)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.engine().commit_stats();
    assert_eq!(stats.commits, (WRITERS * EACH) as u64);
    assert!(
        stats.largest > 1 && stats.groups < stats.commits,
        "32 writers waiting on syncs are grouped: {stats:?}"
    );
    let feed = ds.changes().since(FeedCursor::START, 5000).await.unwrap();
    assert_eq!(feed.len(), WRITERS * EACH, "one change per commit");
    for (i, c) in feed.iter().enumerate() {
        assert_eq!(c.seq, i as u64 + 1, "no gap");
    }
}

/// The first poll of a durable put only queues it: the task yields its
/// thread (the old design fsynced inside that poll, blocking the worker).
#[tokio::test(flavor = "current_thread")]
async fn a_durable_commit_yields_its_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    let ds: Arc<dyn Datastore> = store(&dir);
    let mut put = ds
        .profiles()
        .put(profile("p-1".into()), Precondition::MustNotExist);
    let first = futures::poll!(&mut put);
    assert!(
        matches!(first, Poll::Pending),
        "the commit waits for the writer thread instead of syncing on this one"
    );
    // Another task runs meanwhile on this single-threaded runtime.
    let other = tokio::spawn(async { 42 }).await.unwrap();
    assert_eq!(other, 42);
    let done = put.await.unwrap();
    assert_eq!(
        ds.profiles().get(&done.value.id).await.unwrap().revision,
        done.revision
    );
}

/// A closed store refuses new commits but finishes the ones queued before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_commits_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let ds: Arc<dyn Datastore> = store(&dir);
    let queued: Vec<_> = (0..16)
        .map(|i| {
            let ds = ds.clone();
            tokio::spawn(async move {
                ds.profiles()
                    .put(profile(format!("q-{i}")), Precondition::MustNotExist)
                    .await
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for t in queued {
        if let Ok(p) = t.await.unwrap() {
            acknowledged.push(p.value.id);
        }
    }
    ds.close().await.unwrap();
    let refused = ds
        .profiles()
        .put(profile("late-1".into()), Precondition::MustNotExist)
        .await
        .unwrap_err();
    assert!(refused.is_retryable(), "{refused}");
    drop(ds);
    let reopened = datastore_rocks::open(RocksConfig::new(dir.path().join("db"))).unwrap();
    for id in acknowledged {
        reopened.profiles().get(&id).await.unwrap();
    }
}
