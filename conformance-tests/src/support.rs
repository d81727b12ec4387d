//! Helpers the cases share: seeding, snapshots and error assertions.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use datastore_core::{
    CollectionEntry, Datastore, Editable, Error, FeedCursor, LogOp, Page, PageRequest,
    Precondition, Profile, Query, RecordStore, Result, Run, StepRun, StoreName, Versioned,
    Workflow,
};
use futures::StreamExt;

/// A fixed timestamp `secs` seconds after 2024-01-01T00:00:00Z, so orderings
/// in cases never depend on the clock.
pub fn ts(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_704_067_200 + secs, 0)
        .single()
        .expect("valid timestamp")
}

/// How long a case waits for a live change before failing.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates a profile with that username.
pub async fn profile(ds: &Arc<dyn Datastore>, username: &str) -> Versioned<Profile> {
    ds.profiles()
        .put(Profile::new(username), Precondition::MustNotExist)
        .await
        .expect("create profile")
}

/// Creates profiles with these ids (keys must name one that exists).
pub async fn profiles_with_ids(ds: &Arc<dyn Datastore>, ids: &[&str]) {
    for id in ids {
        let mut p = Profile::new(format!("user-{id}"));
        p.id = datastore_core::ProfileId::new(*id);
        ds.profiles()
            .put(p, Precondition::MustNotExist)
            .await
            .expect("create profile");
    }
}

/// Creates a workflow for a dataset.
pub async fn workflow(ds: &Arc<dyn Datastore>, init_id: &str, owner: &str) -> Versioned<Workflow> {
    ds.workflows()
        .put(Workflow::new(init_id, owner), Precondition::MustNotExist)
        .await
        .expect("create workflow")
}

/// Creates a run of a workflow with two steps.
pub async fn run(ds: &Arc<dyn Datastore>, workflow: &Versioned<Workflow>) -> Versioned<Run> {
    let steps = vec![
        StepRun::new("fetch", "download"),
        StepRun::new("save", "save"),
    ];
    ds.runs()
        .create(Run::new(workflow.value.id.clone(), steps))
        .await
        .expect("create run")
}

/// A collection entry of a dataset owned by `owner`.
pub fn entry(profile: &str, init: &str, name: &str) -> CollectionEntry {
    CollectionEntry::new(profile, init, "owner", name)
}

/// A log op with that name.
pub fn op(name: &str) -> LogOp {
    LogOp {
        name: name.to_string(),
        author_id: "author".into(),
        timestamp: ts(0),
        ..LogOp::default()
    }
}

/// Everything a case can see of a store: the feed head and every record of
/// every listable kind, as JSON.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    head: FeedCursor,
    records: Vec<String>,
}

async fn dump<R: Editable>(store: &dyn RecordStore<R>, out: &mut Vec<String>)
where
    R::Filter: Default,
{
    let items = walk(store, Query::<R>::default().limit(1000)).await;
    out.extend(items.into_iter().map(|v| {
        format!(
            "{} {}",
            v.revision,
            serde_json::to_string(&v.value).expect("serialize")
        )
    }));
}

/// Takes a [`Snapshot`].
pub async fn snapshot(ds: &Arc<dyn Datastore>) -> Snapshot {
    let mut records = Vec::new();
    dump(ds.profiles(), &mut records).await;
    dump(ds.workflows(), &mut records).await;
    dump(ds.runs(), &mut records).await;
    dump(ds.keys(), &mut records).await;
    dump(ds.collections(), &mut records).await;
    dump(ds.tokens(), &mut records).await;
    Snapshot {
        head: ds.changes().head().await.expect("head"),
        records,
    }
}

/// Asserts nothing was written since `before`.
pub async fn assert_unchanged(ds: &Arc<dyn Datastore>, before: &Snapshot) {
    let after = snapshot(ds).await;
    assert_eq!(&after, before, "the store changed after a rejected write");
}

/// Walks every page of a query, asserting each page but the last is full.
pub async fn walk<R: Editable>(store: &dyn RecordStore<R>, query: Query<R>) -> Vec<Versioned<R>> {
    let limit = query.limit as usize;
    let mut query = query;
    let mut all = Vec::new();
    loop {
        let page = store.list(query.clone()).await.expect("list page");
        let full = page.items.len() == limit;
        all.extend(page.items);
        match page.next {
            Some(c) => {
                assert!(full, "a page with a next cursor must be full");
                query = query.after(Some(c));
            }
            None => return all,
        }
    }
}

/// Walks every page of a paged call (`PageRequest` in, `Page` out).
pub async fn walk_with<T, F, Fut>(limit: u32, mut call: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let mut cursor = None;
    let mut all = Vec::new();
    loop {
        let page = call(PageRequest::after(limit, cursor))
            .await
            .expect("list page");
        all.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            return all;
        }
    }
}

/// Asserts an `Invalid` error naming `field`.
#[track_caller]
pub fn assert_invalid<T: Debug>(result: Result<T>, field: &str) {
    match result {
        Err(Error::Invalid {
            field: f, reason, ..
        }) => {
            assert!(
                f.contains(field),
                "expected Invalid naming {field:?}, got field {f:?} ({reason})"
            );
            assert!(
                !reason.is_empty(),
                "an Invalid error must say what is wrong"
            );
        }
        other => panic!("expected Invalid naming {field:?}, got {other:?}"),
    }
}

/// Asserts a `NotFound` error from `store` naming `key`.
#[track_caller]
pub fn assert_not_found<T: Debug>(result: Result<T>, store: StoreName, key: &str) {
    match result {
        Err(Error::NotFound { store: s, key: k }) => {
            assert_eq!(s, store, "NotFound from the wrong store");
            assert_eq!(k, key, "NotFound naming the wrong key");
        }
        other => panic!("expected NotFound for {store} {key:?}, got {other:?}"),
    }
}

/// Asserts an `AlreadyExists` error from `store` whose key contains `key`.
#[track_caller]
pub fn assert_already_exists<T: Debug>(result: Result<T>, store: StoreName, key: &str) {
    match result {
        Err(Error::AlreadyExists { store: s, key: k }) => {
            assert_eq!(s, store, "AlreadyExists from the wrong store");
            assert!(
                k.contains(key),
                "AlreadyExists key {k:?} should name {key:?}"
            );
        }
        other => panic!("expected AlreadyExists for {store} {key:?}, got {other:?}"),
    }
}

/// Asserts a `Conflict` that found revision `found`.
#[track_caller]
pub fn assert_conflict<T: Debug>(result: Result<T>, found: Option<datastore_core::Revision>) {
    match result {
        Err(Error::Conflict { found: f, .. }) => {
            assert_eq!(f, found, "Conflict names the revision found")
        }
        other => panic!("expected Conflict finding {found:?}, got {other:?}"),
    }
}

/// Reads `n` changes from a subscription, failing on `Lagged`, an error or a timeout.
pub async fn next_changes(
    stream: &mut datastore_core::ChangeStream,
    n: usize,
) -> Vec<datastore_core::Change> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let item = tokio::time::timeout(LIVE_TIMEOUT, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} changes", out.len()));
        match item {
            Some(Ok(datastore_core::FeedEvent::Change(c))) => out.push(c),
            other => panic!("expected a change, got {other:?}"),
        }
    }
    out
}
