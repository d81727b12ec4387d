//! Atomic batches across substores.

use std::sync::Arc;

use datastore_core::{
    Batch, CollectionKey, Datastore, Error, Key, Kind, LogId, Precondition, Profile, ProfileId,
    Revision, Run, StoreName, Workflow,
};

use crate::support::*;

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
