//! Atomic batches across substores.

use std::sync::Arc;

use datastore_core::{
    Batch, CollectionKey, Datastore, Error, Key, Kind, LogId, Precondition, Profile, ProfileId,
    Revision, Run, StoreName, Workflow,
};

use crate::support::*;

fn profile_named(username: &str) -> Profile {
    let mut p = Profile::new(username);
    p.id = ProfileId::new(username);
    p
}

fn run_numbered(workflow: &str, owner: &str, number: u64) -> Run {
    let mut r = Run::new(workflow, vec![]);
    r.owner_id = ProfileId::new(owner);
    r.number = number;
    r
}

/// A batch writes across every substore at once, one revision per op.
pub async fn applies_across_substores(ds: Arc<dyn Datastore>) {
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("p1");
    let mut w = Workflow::new("i1", "p1");
    w.id = "w1".into();
    let mut r = run_numbered("w1", "p1", 1);
    r.id = "r1".into();
    let batch = Batch::new()
        .put(p, Precondition::MustNotExist)
        .put(w, Precondition::MustNotExist)
        .put(r, Precondition::MustNotExist)
        .put(Key::new("p1", "pub"), Precondition::Any)
        .put(entry("p1", "i1", "data"), Precondition::Any)
        .append_log("log-1", 0, vec![op("a"), op("b")]);
    let revisions = ds.apply(batch).await.unwrap();
    assert_eq!(revisions.len(), 6);
    assert_eq!(
        ds.profiles().get(&"p1".into()).await.unwrap().revision,
        revisions[0]
    );
    assert_eq!(
        ds.workflows().get(&"w1".into()).await.unwrap().revision,
        revisions[1]
    );
    assert_eq!(
        ds.runs().get(&"r1".into()).await.unwrap().revision,
        revisions[2]
    );
    assert!(
        ds.collections()
            .get(&CollectionKey::new("p1", "i1"))
            .await
            .is_ok()
    );
    assert_eq!(
        ds.logs().head(&LogId::new("log-1")).await.unwrap().revision,
        revisions[5]
    );
    let changes = ds
        .changes()
        .since(datastore_core::FeedCursor::START, 100)
        .await
        .unwrap();
    assert_eq!(changes.len(), 7, "one change per record written");
}

/// A batch whose last op fails its precondition leaves nothing behind, feed included.
pub async fn failing_last_op_leaves_nothing(ds: Arc<dyn Datastore>) {
    let existing = profile(&ds, "existing").await;
    let before = snapshot(&ds).await;
    let mut stale = existing.value.clone();
    stale.name = "late".into();
    let batch = Batch::new()
        .put(Profile::new("new-one"), Precondition::MustNotExist)
        .put(Workflow::new("i1", "o"), Precondition::Any)
        .append_log("log-1", 0, vec![op("a")])
        .put(
            stale,
            Precondition::MustBeAt(Revision::new(existing.revision.get() + 1000)),
        );
    let err = ds.apply(batch).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { found: Some(r), .. } if r == existing.revision),
        "{err}"
    );
    assert_unchanged(&ds, &before).await;
    assert_eq!(ds.logs().length(&LogId::new("log-1")).await.unwrap(), 0);
}

/// A batch with an invalid record anywhere writes nothing.
pub async fn invalid_record_writes_nothing(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let batch = Batch::new()
        .put(Profile::new("good"), Precondition::Any)
        .put(Profile::new("bad name"), Precondition::Any);
    assert_invalid(ds.apply(batch).await, "username");
    assert_unchanged(&ds, &before).await;
}

/// Deletes in a batch check their preconditions and apply.
pub async fn delete_in_batch(ds: Arc<dyn Datastore>) {
    let a = profile(&ds, "a").await;
    let b = profile(&ds, "b").await;
    let batch = Batch::new()
        .delete(Kind::Profile, a.value.id.clone(), a.expect())
        .delete(Kind::Profile, b.value.id.clone(), Precondition::Any);
    ds.apply(batch).await.unwrap();
    assert_not_found(
        ds.profiles().get(&a.value.id).await,
        StoreName::Kind(Kind::Profile),
        a.value.id.as_str(),
    );
    assert_not_found(
        ds.profiles().get(&b.value.id).await,
        StoreName::Kind(Kind::Profile),
        b.value.id.as_str(),
    );
}

/// Later ops see earlier ones: a run may reference a workflow of the same
/// batch, and its number is never handed out again.
pub async fn later_ops_see_earlier_ones(ds: Arc<dyn Datastore>) {
    let mut w = Workflow::new("i1", "o");
    w.id = "w1".into();
    let batch = Batch::new()
        .put(w.clone(), Precondition::MustNotExist)
        .put(run_numbered("w1", "o", 7), Precondition::MustNotExist);
    ds.apply(batch).await.unwrap();
    let next = ds.runs().create(Run::new("w1", vec![])).await.unwrap();
    assert_eq!(next.value.number, 8);
}

/// Two records claiming one username in a batch: AlreadyExists, nothing written.
pub async fn unique_conflict_within_batch(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let batch = Batch::new()
        .put(Profile::new("twin"), Precondition::Any)
        .put(Profile::new("twin"), Precondition::Any);
    let err = ds.apply(batch).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_unchanged(&ds, &before).await;
}

/// Records in a large batch (more than one statement's worth on SQL
/// backends, which insert many rows per statement).
const LARGE: usize = 2_500;

fn numbered_profile(i: usize) -> Profile {
    let mut p = Profile::new(format!("bulk{i:05}"));
    p.id = ProfileId::new(format!("bulk-{i:05}"));
    p
}

/// `count` gives every kind's number of records (log entries for logs),
/// following puts, appends and deletes, and unchanged by a failed batch.
pub async fn count_follows_every_kind(ds: Arc<dyn Datastore>) {
    for kind in Kind::ALL {
        assert_eq!(ds.count(kind).await.unwrap(), 0, "{kind} of an empty store");
    }
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("p1");
    let mut w = Workflow::new("i1", "p1");
    w.id = "w1".into();
    let batch = Batch::new()
        .put(p, Precondition::MustNotExist)
        .put(w, Precondition::MustNotExist)
        .put(run_numbered("w1", "p1", 1), Precondition::MustNotExist)
        .put(run_numbered("w1", "p1", 2), Precondition::MustNotExist)
        .put(Key::new("p1", "pub"), Precondition::Any)
        .put(entry("p1", "i1", "data"), Precondition::Any)
        .append_log("log-1", 0, vec![op("a"), op("b"), op("c")]);
    ds.apply(batch).await.unwrap();
    let counts = [
        (Kind::Profile, 1),
        (Kind::Workflow, 1),
        (Kind::Run, 2),
        (Kind::Key, 1),
        (Kind::Collection, 1),
        (Kind::Log, 3),
    ];
    for (kind, n) in counts {
        assert_eq!(ds.count(kind).await.unwrap(), n, "{kind} after the batch");
    }
    let failing = Batch::new()
        .put(profile_named("bob"), Precondition::MustNotExist)
        .delete(
            Kind::Profile,
            ProfileId::new("nobody"),
            Precondition::MustExist,
        );
    assert!(ds.apply(failing).await.is_err());
    assert_eq!(ds.count(Kind::Profile).await.unwrap(), 1, "a failed batch");
    let latest = ds.runs().latest(&"w1".into()).await.unwrap();
    ds.runs()
        .delete(&latest.value.id, Precondition::MustExist)
        .await
        .unwrap();
    assert_eq!(ds.count(Kind::Run).await.unwrap(), 1, "after a delete");
}

/// A large batch writes every record, with revisions and feed changes in
/// op order.
pub async fn large_batch_writes_every_record(ds: Arc<dyn Datastore>) {
    let start = ds.changes().head().await.unwrap();
    let batch = (0..LARGE).fold(Batch::new(), |b, i| {
        b.put(numbered_profile(i), Precondition::MustNotExist)
    });
    let written = ds.apply(batch).await.unwrap();
    assert_eq!(written.len(), LARGE);
    let ids: Vec<ProfileId> = (0..LARGE).map(|i| numbered_profile(i).id).collect();
    let mut stored = Vec::new();
    for chunk in ids.chunks(datastore_core::MAX_GET_MANY) {
        stored.extend(ds.profiles().get_many(chunk).await.unwrap());
    }
    let mut last = Revision::new(0);
    for (i, found) in stored.into_iter().enumerate() {
        let found = found.unwrap_or_else(|| panic!("record {i} of the batch is missing"));
        assert_eq!(found.value.username, format!("bulk{i:05}"));
        assert!(found.revision > last, "revisions follow op order");
        last = found.revision;
    }
    let changes = ds.changes().since(start, LARGE as u32 + 10).await.unwrap();
    let keys: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    let expected: Vec<String> = ids.iter().map(|id| id.as_str().to_string()).collect();
    assert_eq!(keys, expected, "one change per record, in op order");
    let batch = ids.iter().fold(Batch::new(), |b, id| {
        b.delete(Kind::Profile, id.clone(), Precondition::MustExist)
    });
    ds.apply(batch).await.unwrap();
    for chunk in ids.chunks(datastore_core::MAX_GET_MANY) {
        let left = ds.profiles().get_many(chunk).await.unwrap();
        assert!(
            left.iter().all(Option::is_none),
            "the batch deleted every record"
        );
    }
}

/// A large batch with one row a unique index refuses, deep inside it:
/// `AlreadyExists` naming that index and value, and nothing written.
pub async fn large_batch_with_one_refused_row_writes_nothing(ds: Arc<dyn Datastore>) {
    profile(&ds, "taken").await;
    let before = snapshot(&ds).await;
    let batch = (0..LARGE).fold(Batch::new(), |b, i| {
        let mut p = numbered_profile(i);
        if i == LARGE - 700 {
            p.username = "taken".into();
        }
        b.put(p, Precondition::MustNotExist)
    });
    let err = ds.apply(batch).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { key, .. } if key == "username=taken"),
        "{err}"
    );
    assert_unchanged(&ds, &before).await;
}

/// A large batch of creates, one of them an existing record (same id, same
/// username) deep inside: `AlreadyExists` naming the id, as for a single
/// create, and nothing written.
pub async fn large_batch_recreating_one_record_writes_nothing(ds: Arc<dyn Datastore>) {
    let existing = numbered_profile(LARGE - 300);
    ds.profiles()
        .put(existing.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let before = snapshot(&ds).await;
    let batch = (0..LARGE).fold(Batch::new(), |b, i| {
        b.put(numbered_profile(i), Precondition::MustNotExist)
    });
    let err = ds.apply(batch).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { key, .. } if key == existing.id.as_str()),
        "{err}"
    );
    assert_unchanged(&ds, &before).await;
}

/// An empty batch succeeds and writes nothing.
pub async fn empty_batch_writes_nothing(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert!(ds.apply(Batch::new()).await.unwrap().is_empty());
    assert_unchanged(&ds, &before).await;
}

/// A run whose workflow is neither stored nor in the batch is Invalid.
pub async fn run_with_missing_workflow_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let batch = Batch::new()
        .put(Profile::new("x"), Precondition::Any)
        .put(run_numbered("ghost", "o", 1), Precondition::Any);
    assert_invalid(ds.apply(batch).await, "workflow_id");
    assert_unchanged(&ds, &before).await;
}
