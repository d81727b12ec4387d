//! The PostgreSQL feed across instances: commit order with concurrent
//! writers, and LISTEN/NOTIFY reaching another instance.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use datastore_core::{Change, Datastore, FeedCursor, FeedEvent, Precondition, Profile};
use futures::StreamExt;

async fn all_since(ds: &Arc<dyn Datastore>, from: FeedCursor) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    let mut cursor = from;
    loop {
        let page = ds.changes().since(cursor, 500).await.unwrap();
        match page.last() {
            Some(last) => cursor = last.cursor(),
            None => return out,
        }
        out.extend(page);
    }
}

/// Reads `n` changes from a stream, resubscribing from its cursor after a
/// `Lagged`, and checks each is new and later than the one before.
async fn follow(ds: Arc<dyn Datastore>, from: FeedCursor, n: usize) -> Vec<Change> {
    let mut got: Vec<Change> = Vec::new();
    let mut cursor = from;
    let mut stream = ds.changes().subscribe(cursor);
    while got.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} changes", got.len()));
        match item {
            Some(Ok(FeedEvent::Change(c))) => {
                assert!(
                    c.seq > cursor.0,
                    "change {} after {}: out of order or repeated",
                    c.seq,
                    cursor.0
                );
                cursor = c.cursor();
                got.push(c);
            }
            Some(Ok(FeedEvent::Lagged { resume_from })) => {
                stream = ds.changes().subscribe(resume_from)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

/// A subscriber that drops and resumes halfway through `n` changes.
fn resuming_subscriber(
    ds: Arc<dyn Datastore>,
    start: FeedCursor,
    n: usize,
) -> tokio::task::JoinHandle<Vec<Change>> {
    tokio::spawn(async move {
        let mut first = follow(ds.clone(), start, n / 2).await;
        let resume = first.last().unwrap().cursor();
        first.extend(follow(ds, resume, n - first.len()).await);
        first
    })
}

/// 32 writers, half on each of two instances (so each instance commits in
/// groups, and groups of the two interleave under the lock): a subscriber
/// on each instance, each dropping and resuming halfway, sees the same
/// gapless order, equal to the durable feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_on_two_instances_no_gap_or_duplicate() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    let a = schema.open().await;
    let b = schema.open().await;
    const WRITERS: usize = 32;
    const EACH: usize = 25;
    let start = b.changes().head().await.unwrap();
    let on_a = resuming_subscriber(a.clone(), start, WRITERS * EACH);
    let on_b = resuming_subscriber(b.clone(), start, WRITERS * EACH);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let ds = if w % 2 == 0 { a.clone() } else { b.clone() };
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                ds.profiles()
                    .put(
                        Profile::new(format!("w{w}-{i}")),
                        Precondition::MustNotExist,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let seen_a = on_a.await.unwrap();
    let seen_b = on_b.await.unwrap();
    let committed = all_since(&a, start).await;
    assert_eq!(committed.len(), WRITERS * EACH);
    for pair in committed.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "the durable feed has no gap");
    }
    let ids: HashSet<_> = seen_b.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), WRITERS * EACH, "no duplicates");
    assert_eq!(
        seen_a, committed,
        "A: every committed change exactly once, in commit order"
    );
    assert_eq!(
        seen_b, committed,
        "B: every committed change exactly once, in commit order"
    );
    a.close().await.unwrap();
    b.close().await.unwrap();
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_reaches_a_subscriber_on_another() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    let writer = schema.open().await;
    let reader = schema.open().await;
    let mut stream = reader
        .changes()
        .subscribe(reader.changes().head().await.unwrap());
    // Let the subscription reach its live phase before writing.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let put = writer
        .profiles()
        .put(Profile::new("remote"), Precondition::Any)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the other instance hears of the write");
    match event {
        Some(Ok(FeedEvent::Change(c))) => {
            assert_eq!(c.id, put.value.id.as_str());
            assert_eq!(c.revision, put.revision);
        }
        other => panic!("expected the change, got {other:?}"),
    }
    eprintln!("cross-instance delivery took {:?}", started.elapsed());
    writer.close().await.unwrap();
    reader.close().await.unwrap();
    schema.drop_schema().await;
}
