//! Group commit on RocksDB: concurrent durable commits share WAL syncs, and
//! a committing task never holds its runtime thread while the writer
//! thread makes its group durable.

use std::sync::Arc;
use std::task::Poll;

use datastore_core::{
    Batch, Datastore, EngineStore, Error, FeedCursor, Precondition, Profile, ProfileId,
};
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

/// A batch creating `n` profiles, `{prefix}-0` on.
fn creates(prefix: &str, n: usize) -> Batch {
    (0..n).fold(Batch::new(), |batch, i| {
        batch.put(profile(format!("{prefix}-{i}")), Precondition::MustNotExist)
    })
}

/// A large batch (a bulk load's) is checked against the store as single
/// puts are: a replaced record's old index entries go, a username held by a
/// record outside the batch is refused, a `MustNotExist` on a stored record
/// fails, and a refused batch writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_replaces_frees_and_refuses_as_single_puts_do() {
    const N: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let ds: Arc<dyn Datastore> = store.clone();
    ds.apply(creates("a", N)).await.unwrap();

    // Replaces a-0 under a new username, adds N new records.
    let mut renamed = profile("a-0".into());
    renamed.username = "renamed".into();
    ds.apply(creates("b", N).put(renamed, Precondition::Any))
        .await
        .unwrap();
    assert_eq!(
        ds.profiles()
            .get_by_username("renamed")
            .await
            .unwrap()
            .value
            .id,
        ProfileId::new("a-0")
    );
    assert!(
        ds.profiles().get_by_username("ax0").await.is_err(),
        "the replaced record's old username is freed"
    );
    let head = ds.changes().head().await.unwrap();

    // b-0's username claimed by a new record: the whole batch is refused.
    let clash = creates("c", N);
    let mut thief = profile("c-thief".into());
    thief.username = "bx0".into();
    let err = ds.apply(clash.put(thief, Precondition::MustNotExist)).await;
    assert!(
        matches!(&err, Err(Error::AlreadyExists { key, .. }) if key == "username=bx0"),
        "{err:?}"
    );

    // A stored record under MustNotExist: refused.
    let exists = creates("d", N);
    let err = ds
        .apply(exists.put(profile("b-7".into()), Precondition::MustNotExist))
        .await;
    assert!(
        matches!(&err, Err(Error::AlreadyExists { key, .. }) if key == "b-7"),
        "{err:?}"
    );

    // The old username is free again for a large batch to take.
    let reuse = creates("e", N);
    let mut taker = profile("e-taker".into());
    taker.username = "ax0".into();
    ds.apply(reuse.put(taker, Precondition::MustNotExist))
        .await
        .unwrap();
    assert_eq!(
        ds.profiles().get_by_username("ax0").await.unwrap().value.id,
        ProfileId::new("e-taker")
    );
    assert_eq!(
        ds.changes().head().await.unwrap().0,
        head.0 + N as u64 + 1,
        "the refused batches wrote nothing"
    );
    assert!(ds.profiles().get(&ProfileId::new("c-0")).await.is_err());
    assert!(ds.profiles().get(&ProfileId::new("d-0")).await.is_err());
}
