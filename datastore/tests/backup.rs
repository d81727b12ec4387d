//! `Datastore::backup` under a running writer: the copy opens, its feed
//! head is the position the backup returned, every write acknowledged up
//! to it is in the copy and none after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datastore::{Error, FeedCursor, Precondition, Profile, ProfileId};

async fn backup_under_writes(
    url: &str,
    copy_url: impl Fn(&std::path::Path) -> String,
    dest: &std::path::Path,
) {
    let ds = datastore::open_url(url).await.unwrap();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (ds, acked, stop) = (ds.clone(), acked.clone(), stop.clone());
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut p = Profile::new(format!("user{n}"));
                p.id = ProfileId::new(format!("p{n}"));
                let v = ds
                    .profiles()
                    .put(p, Precondition::MustNotExist)
                    .await
                    .unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push((format!("p{n}"), v.revision.get()));
                n += 1;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let at = ds.backup(dest).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    // A second backup to the same place is refused, and writes nothing.
    match ds.backup(dest).await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "destination"),
        other => panic!("expected Invalid naming the destination, got {other:?}"),
    }
    ds.close().await.unwrap();

    let acked = acked.lock().unwrap().clone();
    let before = acked.iter().filter(|(_, r)| *r <= at.0).count();
    assert!(
        before > 0 && before < acked.len(),
        "the backup ran while writes went on: {before} of {}",
        acked.len()
    );
    let copy = datastore::open_url(&copy_url(dest)).await.unwrap();
    assert_eq!(
        copy.changes().head().await.unwrap(),
        at,
        "the copy's head is the position it claims"
    );
    for (id, revision) in &acked {
        let found = copy.profiles().get(&ProfileId::new(id.clone())).await;
        if *revision <= at.0 {
            assert_eq!(
                found.unwrap().revision.get(),
                *revision,
                "{id} acknowledged before the backup"
            );
        } else {
            assert!(
                matches!(found, Err(Error::NotFound { .. })),
                "{id} came after the backup"
            );
        }
    }
    let feed = copy
        .changes()
        .since(FeedCursor::START, 10_000)
        .await
        .unwrap();
    assert_eq!(feed.last().map(|c| c.cursor()), Some(at));
    copy.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_backup_is_a_consistent_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}", dir.path().join("live").display());
    let dest = dir.path().join("backup");
    backup_under_writes(&url, |d| format!("rocksdb://{}", d.display()), &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_is_a_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let dest = dir.path().join("backup.db");
    backup_under_writes(&url, |d| format!("sqlite://{}", d.display()), &dest).await;
}

#[tokio::test]
async fn memory_has_no_file_backup() {
    let ds = datastore::open_url("memory://").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    match ds.backup(&dir.path().join("x")).await {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
