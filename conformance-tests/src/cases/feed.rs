//! The change feed: one change per write, in commit order, resumable.

use std::collections::HashSet;
use std::sync::Arc;

use datastore_core::{
    Batch, Change, ChangeOp, Datastore, Error, FeedCursor, FeedEvent, Kind, LogId, Precondition,
    Profile, Retention,
};
use futures::StreamExt;

use crate::support::*;

async fn all_since(ds: &Arc<dyn Datastore>, from: FeedCursor) -> Vec<Change> {
    let mut out = Vec::new();
    let mut cursor = from;
    loop {
        let page = ds.changes().since(cursor, 7).await.unwrap();
        match page.last() {
            Some(last) => cursor = last.cursor(),
            None => return out,
        }
        out.extend(page);
    }
}

#[track_caller]
fn assert_strictly_increasing(changes: &[Change]) {
    for w in changes.windows(2) {
        assert!(
            w[0].seq < w[1].seq,
            "changes out of order: {} then {}",
            w[0].seq,
            w[1].seq
        );
    }
}

/// Every committed write yields exactly one change with its revision.
pub async fn one_change_per_write(ds: Arc<dyn Datastore>) {
    let v1 = profile(&ds, "alice").await;
    let v2 = ds
        .profiles()
        .put(v1.value.clone(), v1.expect())
        .await
        .unwrap();
    let deleted = ds
        .profiles()
        .delete(&v1.value.id, v2.expect())
        .await
        .unwrap();
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    assert_eq!(changes.len(), 3);
    let id = v1.value.id.as_str();
    assert!(
        changes
            .iter()
            .all(|c| c.kind == Kind::Profile && c.id == id)
    );
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.op, c.revision))
            .collect::<Vec<_>>(),
        [
            (ChangeOp::Put, v1.revision),
            (ChangeOp::Put, v2.revision),
            (ChangeOp::Delete, deleted)
        ]
    );
    assert_strictly_increasing(&changes);
}

/// Head is the cursor of the newest change.
pub async fn head_tracks_latest(ds: Arc<dyn Datastore>) {
    assert_eq!(ds.changes().head().await.unwrap(), FeedCursor::START);
    profile(&ds, "a").await;
    profile(&ds, "b").await;
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    assert_eq!(
        ds.changes().head().await.unwrap(),
        changes.last().unwrap().cursor()
    );
    assert!(
        ds.changes()
            .since(ds.changes().head().await.unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A rejected write adds no change.
pub async fn failed_write_adds_no_change(ds: Arc<dyn Datastore>) {
    let v = profile(&ds, "alice").await;
    let head = ds.changes().head().await.unwrap();
    let _ = ds
        .profiles()
        .put(v.value.clone(), Precondition::MustNotExist)
        .await
        .unwrap_err();
    let _ = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::Any)
        .await
        .unwrap_err();
    let _ = ds
        .profiles()
        .delete(&"missing".into(), Precondition::Any)
        .await
        .unwrap_err();
    assert_eq!(ds.changes().head().await.unwrap(), head);
    assert!(ds.changes().since(head, 10).await.unwrap().is_empty());
}

/// Paging through `since` returns every change once, in order.
pub async fn since_pages_in_order(ds: Arc<dyn Datastore>) {
    for i in 0..30 {
        profile(&ds, &format!("u{i}")).await;
    }
    let changes = all_since(&ds, FeedCursor::START).await;
    assert_eq!(changes.len(), 30);
    assert_strictly_increasing(&changes);
    let names: HashSet<_> = changes.iter().map(|c| c.id.clone()).collect();
    assert_eq!(names.len(), 30);
}

/// A subscription replays what was committed, then follows live writes.
pub async fn subscribe_replays_then_follows(ds: Arc<dyn Datastore>) {
    for i in 0..5 {
        profile(&ds, &format!("before{i}")).await;
    }
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    let replayed = next_changes(&mut stream, 5).await;
    for i in 0..3 {
        profile(&ds, &format!("after{i}")).await;
    }
    let live = next_changes(&mut stream, 3).await;
    let all: Vec<_> = replayed.into_iter().chain(live).collect();
    assert_eq!(all, all_since(&ds, FeedCursor::START).await);
}

/// A subscription from a cursor starts right after it.
pub async fn subscribe_from_cursor(ds: Arc<dyn Datastore>) {
    for i in 0..5 {
        profile(&ds, &format!("u{i}")).await;
    }
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    let mut stream = ds.changes().subscribe(changes[2].cursor());
    assert_eq!(next_changes(&mut stream, 2).await, changes[3..].to_vec());
}

/// With 8 concurrent writers, `since` and `subscribe` both see every change
/// exactly once, in commit order.
pub async fn concurrent_writers_no_gap_or_duplicate(ds: Arc<dyn Datastore>) {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let start = ds.changes().head().await.unwrap();
    let mut stream = ds.changes().subscribe(start);
    let subscriber = tokio::spawn(async move { next_changes(&mut stream, WRITERS * EACH).await });
    let poller = {
        let ds = ds.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = start;
            let deadline = tokio::time::Instant::now() + LIVE_TIMEOUT;
            while seen.len() < WRITERS * EACH {
                assert!(tokio::time::Instant::now() < deadline, "poller timed out");
                let page = ds.changes().since(cursor, 7).await.unwrap();
                if let Some(last) = page.last() {
                    cursor = last.cursor();
                } else {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                seen.extend(page);
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let ds = ds.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                profile(&ds, &format!("w{w}-{i}")).await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let subscribed = subscriber.await.unwrap();
    let polled = poller.await.unwrap();
    let committed = all_since(&ds, start).await;
    assert_eq!(committed.len(), WRITERS * EACH);
    assert_strictly_increasing(&committed);
    assert_eq!(
        subscribed, committed,
        "the subscription saw every change once, in order"
    );
    assert_eq!(polled, committed, "since saw every change once, in order");
}

/// A subscriber that drops its stream halfway and subscribes again from its
/// cursor, while 8 writers run, misses nothing and sees nothing twice.
pub async fn resume_while_writers_run(ds: Arc<dyn Datastore>) {
    const WRITERS: usize = 8;
    const EACH: usize = 20;
    let start = ds.changes().head().await.unwrap();
    let reader = {
        let ds = ds.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut cursor = start;
            // Three separate subscriptions, each dropped after a share of the changes.
            for share in [WRITERS * EACH / 3, WRITERS * EACH / 3] {
                let mut stream = ds.changes().subscribe(cursor);
                let part = next_changes(&mut stream, share).await;
                cursor = part.last().unwrap().cursor();
                got.extend(part);
            }
            let mut stream = ds.changes().subscribe(cursor);
            got.extend(next_changes(&mut stream, WRITERS * EACH - got.len()).await);
            got
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let ds = ds.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                profile(&ds, &format!("w{w}-{i}")).await;
                tokio::task::yield_now().await;
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let got = reader.await.unwrap();
    assert_eq!(got, all_since(&ds, start).await);
}

/// A subscriber that stops reading gets Lagged, then resumes from its cursor
/// without a gap or a duplicate.
pub async fn lagged_then_resume(ds: Arc<dyn Datastore>) {
    let buffer = ds.capabilities().subscriber_buffer;
    let start = ds.changes().head().await.unwrap();
    let mut stream = ds.changes().subscribe(start);
    profile(&ds, "first").await;
    let mut received = next_changes(&mut stream, 1).await;
    // Stop reading while more changes commit than the buffer holds.
    let total = buffer + 50;
    let mut written = 0;
    while written < total {
        let mut batch = Batch::new();
        for _ in 0..100.min(total - written) {
            batch = batch.put(Profile::new(format!("p{written}")), Precondition::Any);
            written += 1;
        }
        ds.apply(batch).await.unwrap();
    }
    // Stay stopped while the live channel delivers: on servers shared by
    // processes it is fed asynchronously (a listener reads the feed table
    // after each notification, or at the latest each second).
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut resume_from = None;
    while resume_from.is_none() {
        let item = tokio::time::timeout(LIVE_TIMEOUT, stream.next())
            .await
            .expect("the lagging subscriber hears of it");
        match item {
            Some(Ok(FeedEvent::Change(c))) => received.push(c),
            Some(Ok(FeedEvent::Lagged { resume_from: r })) => resume_from = Some(r),
            other => panic!("expected changes then Lagged, got {other:?}"),
        }
    }
    let resume_from = resume_from.unwrap();
    assert_eq!(
        resume_from,
        received.last().unwrap().cursor(),
        "Lagged names the last change delivered"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after Lagged"
    );
    let mut resumed = ds.changes().subscribe(resume_from);
    let remaining = total + 1 - received.len();
    received.extend(next_changes(&mut resumed, remaining).await);
    assert_eq!(received, all_since(&ds, start).await);
}

/// A cursor older than the retained window gets CursorExpired; newer ones work.
pub async fn cursor_expired_after_compaction(ds: Arc<dyn Datastore>) {
    for i in 0..10 {
        profile(&ds, &format!("u{i}")).await;
    }
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    let compaction = ds.changes().compact(Retention::keep_last(3)).await.unwrap();
    assert_eq!(compaction.removed, 7);
    assert_eq!(compaction.compacted_through, changes[6].seq);
    match ds.changes().since(FeedCursor::START, 10).await {
        Err(Error::CursorExpired { .. }) => {}
        other => panic!("expected CursorExpired, got {other:?}"),
    }
    match ds.changes().since(changes[5].cursor(), 10).await {
        Err(Error::CursorExpired { .. }) => {}
        other => panic!("expected CursorExpired, got {other:?}"),
    }
    assert_eq!(
        ds.changes().since(changes[6].cursor(), 10).await.unwrap(),
        changes[7..].to_vec()
    );
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    match tokio::time::timeout(LIVE_TIMEOUT, stream.next())
        .await
        .unwrap()
    {
        Some(Err(Error::CursorExpired { .. })) => {}
        other => panic!("expected CursorExpired from subscribe, got {other:?}"),
    }
    let again = ds.changes().compact(Retention::keep_last(3)).await.unwrap();
    assert_eq!(again.removed, 0);
}

/// A feed moved after a position (as a restore does): the head rises to
/// it, older cursors are expired, the next write is numbered after it, and
/// a position at or below the head drops the changes through it without
/// lowering the head.
pub async fn start_feed_after_a_position(ds: Arc<dyn Datastore>) {
    for i in 0..3 {
        profile(&ds, &format!("u{i}")).await;
    }
    let head = ds.changes().head().await.unwrap();
    let position = FeedCursor(head.0 + 100);
    assert_eq!(ds.changes().head().await.unwrap(), head);
    assert_eq!(ds.start_feed_after(position).await.unwrap(), position);
    assert_eq!(ds.changes().head().await.unwrap(), position);
    for cursor in [FeedCursor::START, head] {
        match ds.changes().since(cursor, 10).await {
            Err(Error::CursorExpired {
                compacted_through, ..
            }) => assert_eq!(compacted_through, position.0),
            other => panic!("a cursor before the position: expected CursorExpired, got {other:?}"),
        }
    }
    assert_eq!(ds.changes().since(position, 10).await.unwrap(), Vec::new());
    let mut live = ds.changes().subscribe(position);
    let written = profile(&ds, "after").await;
    assert_eq!(written.revision.get(), position.0 + 1, "numbered after it");
    let changes = ds.changes().since(position, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].seq, changes[0].id.as_str()),
        (position.0 + 1, written.value.id.as_str())
    );
    assert_eq!(next_changes(&mut live, 1).await, changes);
    // Records written before it are still there.
    assert!(ds.profiles().get_by_username("u0").await.is_ok());
    // A lower position never lowers the head.
    assert_eq!(
        ds.start_feed_after(FeedCursor(3)).await.unwrap(),
        FeedCursor(position.0 + 1)
    );
    assert_eq!(ds.changes().since(position, 10).await.unwrap(), changes);
    // At the head: the feed is emptied, the head stays.
    let top = FeedCursor(position.0 + 1);
    assert_eq!(ds.start_feed_after(top).await.unwrap(), top);
    assert!(matches!(
        ds.changes().since(position, 10).await,
        Err(Error::CursorExpired { .. })
    ));
    assert_eq!(ds.changes().since(top, 10).await.unwrap(), Vec::new());
}

/// A batch's changes are consecutive and in op order.
pub async fn batch_changes_are_consecutive(ds: Arc<dyn Datastore>) {
    profile(&ds, "before").await;
    let head = ds.changes().head().await.unwrap();
    let names = ["b1", "b2", "b3"];
    let mut batch = Batch::new();
    for n in names {
        let mut p = Profile::new(n);
        p.id = n.into();
        batch = batch.put(p, Precondition::Any);
    }
    let revisions = ds.apply(batch).await.unwrap();
    let changes = ds.changes().since(head, 100).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        names
    );
    assert_eq!(
        changes.iter().map(|c| c.revision).collect::<Vec<_>>(),
        revisions
    );
}

/// A log append is a change per entry, in the log substore.
pub async fn log_append_is_a_change(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    let entries = ds
        .logs()
        .append(&log, 0, vec![op("a"), op("b")])
        .await
        .unwrap();
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| c.kind == Kind::Log && c.op == ChangeOp::Put)
    );
    assert_eq!(changes[1].revision, entries[1].revision);
}

/// A change names the record it belongs to: a run its workflow, a log
/// entry its log, a workflow, key or collection entry its profile; a
/// profile has none.
pub async fn changes_name_their_parent(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    let r = run(&ds, &w).await;
    ds.logs()
        .append(&LogId::new("log-1"), 0, vec![op("a")])
        .await
        .unwrap();
    ds.collections()
        .put(entry("p1", "init-1", "n"), Precondition::Any)
        .await
        .unwrap();
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    let parent_of = |id: &str| changes.iter().find(|c| c.id == id).unwrap().parent.clone();
    assert_eq!(parent_of(r.value.id.as_str()), Some(w.value.id.to_string()));
    assert_eq!(parent_of(w.value.id.as_str()), Some("o".to_string()));
    assert_eq!(
        parent_of("log-1/00000000000000000000"),
        Some("log-1".to_string())
    );
    assert_eq!(parent_of("p1/init-1"), Some("p1".to_string()));
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    let streamed = next_changes(&mut stream, changes.len()).await;
    assert_eq!(streamed, changes, "subscriptions carry the parent too");
}

/// Closing the store ends its subscriptions.
pub async fn close_ends_subscriptions(ds: Arc<dyn Datastore>) {
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    profile(&ds, "alice").await;
    next_changes(&mut stream, 1).await;
    ds.close().await.unwrap();
    let end = tokio::time::timeout(LIVE_TIMEOUT, stream.next())
        .await
        .expect("a closed store ends its subscriptions");
    assert!(
        !matches!(end, Some(Ok(FeedEvent::Change(_)))),
        "no change after close: {end:?}"
    );
}
