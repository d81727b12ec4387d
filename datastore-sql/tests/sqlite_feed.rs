//! SQLite is a multi-process database: a store's feed follows commits from
//! other processes on the same file, in order and without a gap, and a
//! read-only open follows them too.

use std::time::Duration;

use datastore_core::{Change, FeedCursor, FeedEvent, Precondition, Profile};
use datastore_sql::SqlConfig;
use futures::StreamExt;

const WRITES: usize = 40;

/// The other process: writes profiles into the file it is given.
#[tokio::test]
#[ignore = "started by a_subscriber_sees_commits_from_another_process"]
async fn sqlite_writer_process() {
    let Ok(url) = std::env::var("SQLITE_FEED_WRITER_URL") else {
        return;
    };
    let ds = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    for i in 0..WRITES {
        ds.profiles()
            .put(
                Profile::new(format!("elsewhere{i}")),
                Precondition::MustNotExist,
            )
            .await
            .unwrap();
    }
    ds.close().await.unwrap();
}

async fn follow(ds: &std::sync::Arc<dyn datastore_core::Datastore>, n: usize) -> Vec<Change> {
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(20), stream.next()).await {
            Ok(Some(Ok(FeedEvent::Change(c)))) => got.push(c),
            other => panic!("after {} of {n} changes: {other:?}", got.len()),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_commits_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let local = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    local
        .profiles()
        .put(Profile::new("here"), Precondition::MustNotExist)
        .await
        .unwrap();
    let mut read_only = SqlConfig::new(&url);
    read_only.read_only = true;
    let watcher = datastore_sql::open(read_only).await.unwrap();
    assert!(watcher.capabilities().read_only);
    let local_follow = {
        let local = local.clone();
        tokio::spawn(async move { follow(&local, WRITES + 1).await })
    };
    let watcher_follow = {
        let watcher = watcher.clone();
        tokio::spawn(async move { follow(&watcher, WRITES + 1).await })
    };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sqlite_writer_process", "--ignored"])
        .env("SQLITE_FEED_WRITER_URL", &url)
        .status()
        .unwrap();
    assert!(status.success(), "the writer process failed");
    let seen = local_follow.await.unwrap();
    let watched = watcher_follow.await.unwrap();
    let durable = local
        .changes()
        .since(FeedCursor::START, 1000)
        .await
        .unwrap();
    assert_eq!(durable.len(), WRITES + 1);
    assert_eq!(seen, durable, "the writing store's own subscriber");
    assert_eq!(watched, durable, "a read-only store on the file");
    // The read-only store refuses writes, and never wrote anything.
    let err = watcher
        .profiles()
        .put(Profile::new("nope"), Precondition::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(err, datastore_core::Error::Unsupported { .. }),
        "{err}"
    );
    local.close().await.unwrap();
    watcher.close().await.unwrap();
}
