//! What is particular to the in-memory backend: its configuration and close.

use datastore_core::{Error, FeedCursor, FeedEvent, Precondition, Profile, Retention};
use datastore_memory::{MemoryConfig, open_with};
use futures::StreamExt;

async fn write(ds: &std::sync::Arc<dyn datastore_core::Datastore>, n: usize) {
    for i in 0..n {
        ds.profiles()
            .put(Profile::new(format!("u{i}")), Precondition::MustNotExist)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn configured_retention_applies_at_every_commit() {
    let ds = open_with(MemoryConfig {
        retention: Retention::keep_last(5),
        ..MemoryConfig::default()
    });
    write(&ds, 12).await;
    let head = ds.changes().head().await.unwrap();
    assert_eq!(head, FeedCursor(12));
    assert!(matches!(
        ds.changes().since(FeedCursor(6), 10).await,
        Err(Error::CursorExpired {
            compacted_through: 7,
            ..
        })
    ));
    let kept = ds.changes().since(FeedCursor(7), 10).await.unwrap();
    assert_eq!(
        kept.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [8, 9, 10, 11, 12]
    );
    assert_eq!(ds.changes().retention(), Retention::keep_last(5));
}

#[tokio::test]
async fn age_retention_keeps_recent_changes() {
    let ds = open_with(MemoryConfig::default());
    write(&ds, 3).await;
    let c = ds
        .changes()
        .compact(Retention::max_age(std::time::Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(c.removed, 0);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let c = ds
        .changes()
        .compact(Retention::max_age(std::time::Duration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(c.removed, 3);
    assert_eq!(c.compacted_through, 3);
}

#[tokio::test]
async fn small_subscriber_buffer_lags_early() {
    let ds = open_with(MemoryConfig {
        subscriber_buffer: 4,
        ..MemoryConfig::default()
    });
    assert_eq!(ds.capabilities().subscriber_buffer, 4);
    let mut stream = ds.changes().subscribe(FeedCursor::START);
    write(&ds, 1).await;
    assert!(matches!(
        stream.next().await,
        Some(Ok(FeedEvent::Change(_)))
    ));
    // Six more changes than the reader takes overflow a buffer of four.
    for i in 0..6 {
        ds.profiles()
            .put(Profile::new(format!("late{i}")), Precondition::Any)
            .await
            .unwrap();
    }
    let mut seqs = Vec::new();
    let resume_from = loop {
        match stream.next().await {
            Some(Ok(FeedEvent::Change(c))) => seqs.push(c.seq),
            Some(Ok(FeedEvent::Lagged { resume_from })) => break resume_from,
            other => panic!("expected changes then Lagged, got {other:?}"),
        }
    };
    // What was already durable is delivered before the lag is reported.
    assert_eq!(seqs, [2, 3, 4, 5, 6, 7]);
    assert_eq!(resume_from, FeedCursor(7));
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_closed_store_refuses_work_with_a_retryable_error() {
    let ds = open_with(MemoryConfig::default());
    write(&ds, 1).await;
    ds.close().await.unwrap();
    let err = ds.profiles().get_by_username("u0").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
}
