//! Feed filters: kinds, ids and parents, matched by the store (in the query
//! or before a change is queued), resumable from the one feed's cursor.

use std::sync::Arc;

use datastore_core::{
    Change, ChangeOp, Datastore, Error, FeedCursor, FeedEvent, FeedFilter, Kind, LogId,
    Precondition, Run, Versioned, Workflow,
};
use futures::StreamExt;

use crate::support::*;

/// Every change after `from` matching `filter`, read in small pages.
async fn matching_since(
    ds: &Arc<dyn Datastore>,
    from: FeedCursor,
    filter: &FeedFilter,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut cursor = from;
    loop {
        let page = ds
            .changes()
            .since_matching(cursor, 3, filter)
            .await
            .unwrap();
        match page.last() {
            Some(last) => cursor = last.cursor(),
            None => return out,
        }
        out.extend(page);
    }
}

/// Every change after `from`, filtered here: what the store must match.
async fn expected(ds: &Arc<dyn Datastore>, from: FeedCursor, filter: &FeedFilter) -> Vec<Change> {
    let all = matching_since(ds, from, &FeedFilter::all()).await;
    all.into_iter().filter(|c| filter.matches(c)).collect()
}

/// Two workflows with two runs each, a log, a collection entry and a
/// profile: one change of every kind with and without parents.
async fn mixed(ds: &Arc<dyn Datastore>) -> (Vec<Versioned<Workflow>>, Vec<Versioned<Run>>) {
    profile(ds, "alice").await;
    let w1 = workflow(ds, "init-1", "o").await;
    let w2 = workflow(ds, "init-2", "o").await;
    let mut runs = Vec::new();
    for w in [&w1, &w2, &w1, &w2] {
        runs.push(run(ds, w).await);
    }
    ds.logs()
        .append(&LogId::new("log-1"), 0, vec![op("a")])
        .await
        .unwrap();
    ds.collections()
        .put(entry("p1", "init-1", "n"), Precondition::Any)
        .await
        .unwrap();
    (vec![w1, w2], runs)
}

/// `since_matching` and a replaying `subscribe_matching` both give exactly
/// the matching changes, in order.
async fn assert_filter_gives(ds: &Arc<dyn Datastore>, filter: FeedFilter, want: &[Change]) {
    let got = matching_since(ds, FeedCursor::START, &filter).await;
    assert_eq!(got, want, "since_matching with {filter:?}");
    assert_eq!(got, expected(ds, FeedCursor::START, &filter).await);
    let mut stream = ds
        .changes()
        .subscribe_matching(FeedCursor::START, filter.clone());
    let streamed = next_changes(&mut stream, want.len()).await;
    assert_eq!(streamed, want, "subscribe_matching with {filter:?}");
}

/// A kind filter gives that kind's changes only.
pub async fn filter_by_kind(ds: Arc<dyn Datastore>) {
    let (_, runs) = mixed(&ds).await;
    let all = matching_since(&ds, FeedCursor::START, &FeedFilter::all()).await;
    let want: Vec<Change> = all
        .iter()
        .filter(|c| c.kind == Kind::Run)
        .cloned()
        .collect();
    assert_eq!(want.len(), runs.len());
    assert_filter_gives(&ds, FeedFilter::all().kind(Kind::Run), &want).await;
    let want: Vec<Change> = all
        .iter()
        .filter(|c| matches!(c.kind, Kind::Log | Kind::Collection))
        .cloned()
        .collect();
    assert_eq!(want.len(), 2);
    let filter = FeedFilter::all().kind(Kind::Log).kind(Kind::Collection);
    assert_filter_gives(&ds, filter, &want).await;
}

/// An id filter gives the changes to those records, every kind.
pub async fn filter_by_id(ds: Arc<dyn Datastore>) {
    let (workflows, runs) = mixed(&ds).await;
    let r = &runs[1];
    let updated = ds.runs().put(r.value.clone(), r.expect()).await.unwrap();
    let all = matching_since(&ds, FeedCursor::START, &FeedFilter::all()).await;
    let ids = [workflows[0].value.id.to_string(), r.value.id.to_string()];
    let want: Vec<Change> = all
        .iter()
        .filter(|c| ids.contains(&c.id))
        .cloned()
        .collect();
    assert_eq!(
        want.iter().map(|c| c.revision).collect::<Vec<_>>(),
        [workflows[0].revision, r.revision, updated.revision]
    );
    let filter = FeedFilter::all().id(ids[0].clone()).id(ids[1].clone());
    assert_filter_gives(&ds, filter, &want).await;
}

/// A parent filter gives its children's changes, deletes included: a
/// delete names the deleted record's parent.
pub async fn filter_by_parent_includes_deletes(ds: Arc<dyn Datastore>) {
    let (workflows, runs) = mixed(&ds).await;
    let w1 = workflows[0].value.id.to_string();
    let gone = &runs[2];
    ds.runs()
        .delete(&gone.value.id, gone.expect())
        .await
        .unwrap();
    let entry = ds
        .collections()
        .get(&datastore_core::CollectionKey::new("p1", "init-1"))
        .await
        .unwrap();
    ds.collections()
        .delete(&entry.value.key(), entry.expect())
        .await
        .unwrap();
    let all = matching_since(&ds, FeedCursor::START, &FeedFilter::all()).await;
    let deletes: Vec<&Change> = all.iter().filter(|c| c.op == ChangeOp::Delete).collect();
    assert_eq!(deletes.len(), 2);
    assert_eq!(
        deletes[0].parent.as_deref(),
        Some(w1.as_str()),
        "a run's delete"
    );
    assert_eq!(
        deletes[1].parent.as_deref(),
        Some("p1"),
        "an entry's delete"
    );
    let want: Vec<Change> = all
        .iter()
        .filter(|c| c.parent.as_deref() == Some(w1.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        want.iter()
            .map(|c| (c.id.as_str(), c.op))
            .collect::<Vec<_>>(),
        [
            (runs[0].value.id.as_str(), ChangeOp::Put),
            (runs[2].value.id.as_str(), ChangeOp::Put),
            (runs[2].value.id.as_str(), ChangeOp::Delete),
        ]
    );
    assert_filter_gives(&ds, FeedFilter::all().parent(w1), &want).await;
}

/// Kinds narrow; ids and parents widen: one workflow and its runs, not the
/// other workflow's, nor records of other kinds under the same names.
pub async fn filters_combine_kinds_with_ids_or_parents(ds: Arc<dyn Datastore>) {
    let (workflows, runs) = mixed(&ds).await;
    let w1 = workflows[0].value.id.to_string();
    let filter = FeedFilter::all()
        .kind(Kind::Workflow)
        .kind(Kind::Run)
        .id(w1.clone())
        .parent(w1.clone());
    let want: Vec<Change> = matching_since(&ds, FeedCursor::START, &FeedFilter::all())
        .await
        .into_iter()
        .filter(|c| c.id == w1 || c.parent.as_deref() == Some(w1.as_str()))
        .collect();
    assert_eq!(
        want.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [
            w1.as_str(),
            runs[0].value.id.as_str(),
            runs[2].value.id.as_str()
        ]
    );
    assert_filter_gives(&ds, filter, &want).await;
    // The same ids under a kind that has none of them: nothing.
    let none = FeedFilter::all()
        .kind(Kind::Profile)
        .id(w1.clone())
        .parent(w1);
    assert_filter_gives(&ds, none, &[]).await;
}

/// A filtered subscription follows live changes and is never sent the
/// others, however many there are.
pub async fn filtered_subscription_follows_live(ds: Arc<dyn Datastore>) {
    let w1 = workflow(&ds, "init-1", "o").await;
    let w2 = workflow(&ds, "init-2", "o").await;
    let start = ds.changes().head().await.unwrap();
    let filter = FeedFilter::all().parent(w1.value.id.to_string());
    let mut stream = ds.changes().subscribe_matching(start, filter.clone());
    let mut mine = Vec::new();
    for i in 0..40 {
        let w = if i % 10 == 9 { &w1 } else { &w2 };
        let r = run(&ds, w).await;
        if w.value.id == w1.value.id {
            mine.push(r.value.id.to_string());
        }
    }
    let got = next_changes(&mut stream, mine.len()).await;
    assert_eq!(got.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), mine);
    assert_eq!(got, expected(&ds, start, &filter).await);
    // Nothing else is waiting: the next event is the next match.
    run(&ds, &w2).await;
    let last = run(&ds, &w1).await;
    let next = next_changes(&mut stream, 1).await;
    assert_eq!(next[0].id, last.value.id.as_str());
}

/// Resuming from a filtered subscription's cursor with another filter
/// neither loses nor repeats a change that matches both.
pub async fn resume_with_a_changed_filter(ds: Arc<dyn Datastore>) {
    let w1 = workflow(&ds, "init-1", "o").await;
    let w2 = workflow(&ds, "init-2", "o").await;
    let start = ds.changes().head().await.unwrap();
    let first = FeedFilter::all()
        .kind(Kind::Run)
        .parent(w1.value.id.to_string());
    let mut stream = ds.changes().subscribe_matching(start, first.clone());
    for w in [&w1, &w2, &w1, &w2] {
        run(&ds, w).await;
    }
    let before = next_changes(&mut stream, 2).await;
    let cursor = before.last().unwrap().cursor();
    drop(stream);
    for w in [&w2, &w1, &w2] {
        run(&ds, w).await;
    }
    let second = FeedFilter::all()
        .kind(Kind::Run)
        .parent(w1.value.id.to_string())
        .parent(w2.value.id.to_string());
    let want = expected(&ds, cursor, &second).await;
    let mut stream = ds.changes().subscribe_matching(cursor, second);
    let after = next_changes(&mut stream, want.len()).await;
    assert_eq!(after, want);
    let mut seqs: Vec<u64> = before.iter().chain(&after).map(|c| c.seq).collect();
    let n = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "no change is delivered twice");
    // Every change matching the first filter after `start` was delivered once.
    let of_w1 = expected(&ds, start, &first).await;
    assert!(
        of_w1
            .iter()
            .all(|c| before.contains(c) || after.contains(c))
    );
}

/// A filter that matches nothing gives nothing, and its subscription waits
/// for a match rather than ending.
pub async fn filter_matching_nothing(ds: Arc<dyn Datastore>) {
    mixed(&ds).await;
    let filter = FeedFilter::all().id("no-such-record");
    assert!(
        ds.changes()
            .since_matching(FeedCursor::START, 100, &filter)
            .await
            .unwrap()
            .is_empty()
    );
    let mut stream = ds.changes().subscribe_matching(FeedCursor::START, filter);
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await;
    assert!(
        quiet.is_err(),
        "nothing matches, nothing arrives: {quiet:?}"
    );
}

/// An unknown kind and an oversized filter are `Invalid`, naming what is wrong.
pub async fn invalid_filters_are_refused(ds: Arc<dyn Datastore>) {
    assert_invalid(FeedFilter::all().kind_named("no_such_kind"), "kind");
    let mut big = FeedFilter::all();
    for n in 0..=FeedFilter::MAX_TERMS {
        big = big.parent(format!("w{n}"));
    }
    assert_invalid(
        ds.changes()
            .since_matching(FeedCursor::START, 10, &big)
            .await,
        "filter",
    );
    let mut stream = ds.changes().subscribe_matching(FeedCursor::START, big);
    match stream.next().await {
        Some(Err(Error::Invalid { field, .. })) => assert_eq!(field, "filter"),
        other => panic!("expected Invalid from subscribe_matching, got {other:?}"),
    }
    assert_invalid(
        ds.changes()
            .since_matching(FeedCursor::START, 10, &FeedFilter::all().id(""))
            .await,
        "id",
    );
}

/// A filtered subscriber's buffer holds only what it asked for: more
/// non-matching changes than the buffer holds do not make it lag.
pub async fn filtered_buffer_counts_only_matches(ds: Arc<dyn Datastore>) {
    let buffer = ds.capabilities().subscriber_buffer;
    let w1 = workflow(&ds, "init-1", "o").await;
    let start = ds.changes().head().await.unwrap();
    let filter = FeedFilter::all().parent(w1.value.id.to_string());
    let mut stream = ds.changes().subscribe_matching(start, filter);
    let first = run(&ds, &w1).await;
    assert_eq!(
        next_changes(&mut stream, 1).await[0].id,
        first.value.id.as_str()
    );
    // Stop reading while more non-matching changes commit than the buffer holds.
    let mut written = 0;
    while written < buffer + 50 {
        let mut batch = datastore_core::Batch::new();
        for _ in 0..100.min(buffer + 50 - written) {
            let p = datastore_core::Profile::new(format!("p{written}"));
            batch = batch.put(p, Precondition::Any);
            written += 1;
        }
        ds.apply(batch).await.unwrap();
    }
    let last = run(&ds, &w1).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    match tokio::time::timeout(LIVE_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(FeedEvent::Change(c)))) => assert_eq!(c.id, last.value.id.as_str()),
        other => panic!("expected the matching change, not Lagged: {other:?}"),
    }
}
