//! The log substore.

use std::sync::Arc;

use datastore_core::{Datastore, Kind, LogFilter, LogId, Query, Revision, StoreName};

use crate::support::*;

fn ops(names: &[&str]) -> Vec<datastore_core::LogOp> {
    names.iter().map(|n| op(n)).collect()
}

/// Appended ops get sequence numbers from 0 and read back in order.
pub async fn append_and_range(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    let written = ds
        .logs()
        .append(&log, 0, ops(&["a", "b", "c"]))
        .await
        .unwrap();
    let seqs: Vec<_> = written.iter().map(|e| e.value.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    let read = ds.logs().range(&log, 0, 100).await.unwrap();
    let names: Vec<_> = read.iter().map(|e| e.value.op.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(read[1].value, written[1].value);
    assert_eq!(read[1].revision, written[1].revision);
}

/// An append at the current length continues the log.
pub async fn append_continues_at_expected_length(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    ds.logs().append(&log, 0, ops(&["a", "b"])).await.unwrap();
    let more = ds.logs().append(&log, 2, ops(&["c", "d"])).await.unwrap();
    assert_eq!(more[0].value.seq, 2);
    assert_eq!(ds.logs().length(&log).await.unwrap(), 4);
}

/// Head is the last entry.
pub async fn head(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    ds.logs()
        .append(&log, 0, ops(&["a", "b", "c"]))
        .await
        .unwrap();
    let head = ds.logs().head(&log).await.unwrap();
    assert_eq!(head.value.seq, 2);
    assert_eq!(head.value.op.name, "c");
}

/// Head of an empty log is NotFound, and its length is 0.
pub async fn head_of_empty_log_is_not_found(ds: Arc<dyn Datastore>) {
    let log = LogId::new("empty");
    assert_not_found(
        ds.logs().head(&log).await,
        StoreName::Kind(Kind::Log),
        "empty",
    );
    assert_eq!(ds.logs().length(&log).await.unwrap(), 0);
    assert!(ds.logs().range(&log, 0, 10).await.unwrap().is_empty());
}

/// An append with a stale or future length is Conflict naming the length found.
pub async fn wrong_expected_length_is_conflict(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    ds.logs()
        .append(&log, 0, ops(&["a", "b", "c"]))
        .await
        .unwrap();
    let before = snapshot(&ds).await;
    assert_conflict(
        ds.logs().append(&log, 2, ops(&["x"])).await,
        Some(Revision::new(3)),
    );
    assert_conflict(
        ds.logs().append(&log, 5, ops(&["x"])).await,
        Some(Revision::new(3)),
    );
    assert_conflict(
        ds.logs().append(&log, 0, ops(&["x"])).await,
        Some(Revision::new(3)),
    );
    assert_unchanged(&ds, &before).await;
    assert_eq!(ds.logs().length(&log).await.unwrap(), 3);
}

/// A range can start in the middle and is bounded by its limit.
pub async fn range_from_the_middle(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    ds.logs()
        .append(&log, 0, ops(&["a", "b", "c", "d", "e"]))
        .await
        .unwrap();
    let read = ds.logs().range(&log, 2, 2).await.unwrap();
    let seqs: Vec<_> = read.iter().map(|e| e.value.seq).collect();
    assert_eq!(seqs, [2, 3]);
    assert!(ds.logs().range(&log, 5, 10).await.unwrap().is_empty());
}

/// Removing a log deletes every entry; a new log can start at 0.
pub async fn remove(ds: Arc<dyn Datastore>) {
    let log = LogId::new("log-1");
    ds.logs()
        .append(&log, 0, ops(&["a", "b", "c", "d"]))
        .await
        .unwrap();
    assert_eq!(ds.logs().remove(&log).await.unwrap(), 4);
    assert_eq!(ds.logs().length(&log).await.unwrap(), 0);
    assert!(ds.logs().range(&log, 0, 10).await.unwrap().is_empty());
    assert_not_found(
        ds.logs().head(&log).await,
        StoreName::Kind(Kind::Log),
        "log-1",
    );
    let again = ds.logs().append(&log, 0, ops(&["new"])).await.unwrap();
    assert_eq!(again[0].value.seq, 0);
}

/// Removing a log that has no entries is NotFound.
pub async fn remove_missing_is_not_found(ds: Arc<dyn Datastore>) {
    assert_not_found(
        ds.logs().remove(&LogId::new("nope")).await,
        StoreName::Kind(Kind::Log),
        "nope",
    );
}

/// An append without ops, or to an empty log id, is Invalid and writes nothing.
pub async fn empty_ops_or_id_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(ds.logs().append(&LogId::new("l"), 0, vec![]).await, "ops");
    assert_invalid(
        ds.logs().append(&LogId::new(""), 0, ops(&["a"])).await,
        "log_id",
    );
    assert_invalid(
        ds.logs().append(&LogId::new("a b"), 0, ops(&["a"])).await,
        "log_id",
    );
    assert_invalid(ds.logs().range(&LogId::new("l"), 0, 0).await, "limit");
    assert_unchanged(&ds, &before).await;
}

/// Two logs do not see each other's entries.
pub async fn logs_are_independent(ds: Arc<dyn Datastore>) {
    let (a, b) = (LogId::new("a"), LogId::new("b"));
    ds.logs().append(&a, 0, ops(&["a0", "a1"])).await.unwrap();
    ds.logs().append(&b, 0, ops(&["b0"])).await.unwrap();
    assert_eq!(ds.logs().length(&a).await.unwrap(), 2);
    assert_eq!(ds.logs().length(&b).await.unwrap(), 1);
    ds.logs().remove(&a).await.unwrap();
    assert_eq!(ds.logs().head(&b).await.unwrap().value.op.name, "b0");
}

/// `LogFilter::All` pages through every entry of every log, by log id then
/// sequence number (numerically: entry 10 after entry 9), without repeats.
pub async fn list_all_walks_every_log(ds: Arc<dyn Datastore>) {
    let names: Vec<String> = (0..12).map(|i| format!("op-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ds.logs()
        .append(&LogId::new("log-b"), 0, ops(&names))
        .await
        .unwrap();
    ds.logs()
        .append(&LogId::new("log-a"), 0, ops(&["x", "y"]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = ds
            .logs()
            .list(Query::new(LogFilter::All).limit(5).after(cursor))
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(
            page.items
                .into_iter()
                .map(|e| (e.value.log_id.as_str().to_string(), e.value.seq)),
        );
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let mut expected = vec![("log-a".to_string(), 0), ("log-a".to_string(), 1)];
    expected.extend((0..12).map(|i| ("log-b".to_string(), i)));
    assert_eq!(seen, expected);
}
