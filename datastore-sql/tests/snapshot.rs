//! `Datastore::snapshot` on a real SQLite file and a real PostgreSQL schema:
//! one moment of a store that writers go on changing.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datastore_core::{Datastore, Error, FeedCursor, Precondition, Profile, ProfileId, Query};

async fn snapshot_is_one_moment(ds: Arc<dyn Datastore>) {
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (ds, acked, stop) = (ds.clone(), acked.clone(), stop.clone());
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let mut p = Profile::new(format!("user{n}"));
                p.id = ProfileId::new(format!("p{n:05}"));
                let v = ds
                    .profiles()
                    .put(p, Precondition::MustNotExist)
                    .await
                    .unwrap();
                acked
                    .lock()
                    .unwrap()
                    .insert(format!("p{n:05}"), v.revision.get());
                n += 1;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let snap = ds.snapshot().await.unwrap();
    let head = snap.changes().head().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    assert_eq!(snap.changes().head().await.unwrap(), head, "its head stays");
    let live_head = ds.changes().head().await.unwrap();
    assert!(
        live_head > head,
        "writes went on after it ({live_head} > {head})"
    );
    let mut seen = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = snap
            .profiles()
            .list(Query::new(Default::default()).limit(100).after(cursor))
            .await
            .unwrap();
        for v in page.items {
            seen.insert(v.value.id.to_string(), v.revision.get());
        }
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let expected: BTreeMap<String, u64> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, r)| **r <= head.0)
        .map(|(k, r)| (k.clone(), *r))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(seen, expected, "exactly the writes through its head");
    assert_eq!(
        snap.count(datastore_core::Kind::Profile).await.unwrap(),
        expected.len() as u64
    );
    let mut last = FeedCursor::START;
    loop {
        let page = snap.changes().since(last, 10_000).await.unwrap();
        match page.last() {
            Some(c) => last = c.cursor(),
            None => break,
        }
    }
    assert_eq!(last, head, "its feed ends at its head");
    match snap
        .profiles()
        .put(Profile::new("late"), Precondition::MustNotExist)
        .await
    {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("a snapshot is read-only: got {other:?}"),
    }
    snap.close().await.unwrap();
    assert!(snap.changes().head().await.is_err(), "closed");
    // The store itself goes on.
    ds.profiles()
        .put(Profile::new("after"), Precondition::MustNotExist)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_snapshot_is_one_moment() {
    let f = common::SqliteFixture::new().await;
    snapshot_is_one_moment(f.ds.clone()).await;
    f.ds.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_snapshot_is_one_moment() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    let ds = schema.open().await;
    snapshot_is_one_moment(ds.clone()).await;
    ds.close().await.unwrap();
    schema.drop_schema().await;
}
