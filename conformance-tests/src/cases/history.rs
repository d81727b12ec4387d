//! Record history and attribution: every put and delete leaves a version
//! naming its actor, in the same commit; pages are keyset pages; retention
//! compacts; restore writes an old version back as a new revision.

use std::sync::Arc;

use datastore_core::{
    Actor, Batch, ChangeOp, Datastore, Error, HistoryPolicy, HistoryRetention, Kind, PageRequest,
    Precondition, Profile, ProfileFilter, ProfileId, Query, Revision, StoreName, Version, Workflow,
};

use crate::support::*;

/// Every version of profile `id`, newest first, walked `limit` at a time.
async fn versions(ds: &Arc<dyn Datastore>, id: &str, limit: u32) -> Vec<Version<Profile>> {
    let id = ProfileId::new(id);
    walk_with(limit, |page| {
        let ds = ds.clone();
        let id = id.clone();
        async move { ds.profiles().history(&id, page).await }
    })
    .await
}

/// A profile `id` with display name `name`.
fn named(id: &str, name: &str) -> Profile {
    let mut p = Profile::new(format!("user-{id}"));
    p.id = ProfileId::new(id);
    p.name = name.into();
    p
}

/// Creates profile `id` and edits it until it has `n` versions; their
/// revisions, oldest first.
async fn edited(ds: &Arc<dyn Datastore>, id: &str, n: usize) -> Vec<Revision> {
    let mut last = ds
        .profiles()
        .put(named(id, "v0"), Precondition::MustNotExist)
        .await
        .unwrap();
    let mut written = vec![last.revision];
    for i in 1..n {
        last = ds
            .profiles()
            .put(named(id, &format!("v{i}")), last.expect())
            .await
            .unwrap();
        written.push(last.revision);
    }
    written
}

/// Writes through `with_actor` name their actor on the record, its
/// versions and its feed entries; the store itself writes with none.
pub async fn actor_is_kept_on_record_version_and_feed(ds: Arc<dyn Datastore>) {
    let start = ds.changes().head().await.unwrap();
    let alice = Actor::profile("alice");
    let scheduler = Actor::service("scheduler");
    let as_alice = ds.with_actor(alice.clone());
    assert_eq!(as_alice.actor(), Some(alice.clone()));
    let first = as_alice
        .profiles()
        .put(named("p1", "one"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(first.actor, Some(alice.clone()));
    let second = ds
        .with_actor(scheduler.clone())
        .profiles()
        .put(named("p1", "two"), first.expect())
        .await
        .unwrap();
    assert_eq!(second.actor, Some(scheduler.clone()));
    let got = ds.profiles().get(&"p1".into()).await.unwrap();
    assert_eq!(
        got.actor,
        Some(scheduler.clone()),
        "get reads the last writer"
    );
    let page = ds
        .profiles()
        .list(Query::new(ProfileFilter::All))
        .await
        .unwrap();
    assert_eq!(page.items, vec![got], "a page reads what a get reads");
    let third = ds
        .profiles()
        .put(named("p1", "three"), second.expect())
        .await
        .unwrap();
    assert_eq!(third.actor, None, "the store itself names no actor");

    let all = versions(&ds, "p1", 10).await;
    let seen: Vec<_> = all
        .iter()
        .map(|v| {
            (
                v.revision,
                v.actor.clone(),
                v.value.as_ref().unwrap().name.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (third.revision, None, "three".to_string()),
            (second.revision, Some(scheduler.clone()), "two".to_string()),
            (first.revision, Some(alice.clone()), "one".to_string()),
        ]
    );
    assert!(all.iter().all(|v| v.op == ChangeOp::Put));
    assert_eq!(all[0].at, third.updated);

    let feed = ds.changes().since(start, 10).await.unwrap();
    let actors: Vec<_> = feed.iter().map(|c| c.actor.clone()).collect();
    assert_eq!(actors, vec![Some(alice), Some(scheduler), None]);
}

/// A delete is a version too (with no body), and history goes on across a
/// re-create; `get_at` reads each, and a revision that never was one of
/// the record's is `NotFound`.
pub async fn history_survives_delete_and_recreate(ds: Arc<dyn Datastore>) {
    let id = ProfileId::new("p1");
    let made = ds
        .profiles()
        .put(named("p1", "first"), Precondition::MustNotExist)
        .await
        .unwrap();
    let gone = ds.profiles().delete(&id, made.expect()).await.unwrap();
    let again = ds
        .profiles()
        .put(named("p1", "second"), Precondition::MustNotExist)
        .await
        .unwrap();
    let other = ds
        .profiles()
        .put(named("p2", "other"), Precondition::MustNotExist)
        .await
        .unwrap();
    let all = versions(&ds, "p1", 2).await;
    let ops: Vec<_> = all.iter().map(|v| (v.revision, v.op)).collect();
    assert_eq!(
        ops,
        vec![
            (again.revision, ChangeOp::Put),
            (gone, ChangeOp::Delete),
            (made.revision, ChangeOp::Put),
        ]
    );
    assert!(all[1].value.is_none(), "a delete version has no body");

    let old = ds.profiles().get_at(&id, made.revision).await.unwrap();
    assert_eq!(old.value.unwrap().name, "first");
    let deleted = ds.profiles().get_at(&id, gone).await.unwrap();
    assert_eq!((deleted.op, deleted.value), (ChangeOp::Delete, None));
    match ds.profiles().get_at(&id, other.revision).await {
        Err(Error::NotFound { store, key }) => {
            assert_eq!(store, StoreName::Kind(Kind::Profile));
            assert!(
                key.contains("p1") && key.contains(&other.revision.to_string()),
                "{key}"
            );
        }
        other => panic!("expected NotFound for another record's revision, got {other:?}"),
    }
    assert_not_found(
        ds.profiles()
            .history(&"nobody".into(), PageRequest::first(10))
            .await,
        StoreName::Kind(Kind::Profile),
        "nobody",
    );
    assert_invalid(
        ds.profiles()
            .history(&"bad id".into(), PageRequest::first(10))
            .await,
        "id",
    );
}

/// Restore writes an old version back as a new revision under the usual
/// precondition; history stays append-only; a delete version can't be
/// restored.
pub async fn restore_writes_an_old_version_as_new(ds: Arc<dyn Datastore>) {
    let id = ProfileId::new("p1");
    let v1 = ds
        .profiles()
        .put(named("p1", "good"), Precondition::MustNotExist)
        .await
        .unwrap();
    let v2 = ds
        .profiles()
        .put(named("p1", "bad"), v1.expect())
        .await
        .unwrap();
    assert_conflict(
        ds.profiles().restore(&id, v1.revision, v1.expect()).await,
        Some(v2.revision),
    );
    let restored = ds
        .with_actor(Actor::service("undo"))
        .profiles()
        .restore(&id, v1.revision, v2.expect())
        .await
        .unwrap();
    assert!(restored.revision > v2.revision);
    assert_eq!(restored.value.name, "good");
    assert_eq!(restored.actor, Some(Actor::service("undo")));
    let revisions: Vec<_> = versions(&ds, "p1", 10)
        .await
        .iter()
        .map(|v| v.revision)
        .collect();
    assert_eq!(revisions, vec![restored.revision, v2.revision, v1.revision]);

    let gone = ds.profiles().delete(&id, restored.expect()).await.unwrap();
    assert_invalid(
        ds.profiles().restore(&id, gone, Precondition::Any).await,
        "revision",
    );
    let back = ds
        .profiles()
        .restore(&id, v2.revision, Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(back.value.name, "bad");
}

/// A batch writes one version per op, and a batch that fails writes none.
pub async fn batches_write_one_version_per_op_or_none(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["owner"]).await;
    let batch = Batch::new()
        .put(named("p1", "a"), Precondition::MustNotExist)
        .put(named("p2", "b"), Precondition::MustNotExist)
        .put(Workflow::new("ds1", "owner"), Precondition::MustNotExist);
    let revisions = ds.apply(batch).await.unwrap();
    assert_eq!(versions(&ds, "p1", 10).await.len(), 1);
    assert_eq!(versions(&ds, "p2", 10).await[0].revision, revisions[1]);

    let failing = Batch::new()
        .put(named("p1", "changed"), Precondition::MustBeAt(revisions[0]))
        .put(named("p2", "changed"), Precondition::MustNotExist);
    assert!(ds.apply(failing).await.is_err());
    let p1 = versions(&ds, "p1", 10).await;
    assert_eq!(p1.len(), 1, "a failed batch writes no version: {p1:?}");
    assert_eq!(p1[0].value.as_ref().unwrap().name, "a");
}

/// History pages are keyset pages: walked at any size they give every
/// version once, newest first; a cursor belongs to its record.
pub async fn history_pages_are_keyset_pages(ds: Arc<dyn Datastore>) {
    let mut written = edited(&ds, "p1", 9).await;
    ds.profiles()
        .put(named("p2", "x"), Precondition::MustNotExist)
        .await
        .unwrap();
    written.reverse();
    for limit in [1, 2, 4, 9, 100] {
        let seen: Vec<_> = versions(&ds, "p1", limit)
            .await
            .iter()
            .map(|v| v.revision)
            .collect();
        assert_eq!(seen, written, "pages of {limit}");
    }
    let first = ds
        .profiles()
        .history(&"p1".into(), PageRequest::first(3))
        .await
        .unwrap();
    let cursor = first.next.expect("more versions");
    assert_invalid(
        ds.profiles()
            .history(&"p2".into(), PageRequest::after(3, Some(cursor)))
            .await,
        "cursor",
    );
    assert_invalid(
        ds.profiles()
            .history(&"p1".into(), PageRequest::first(0))
            .await,
        "limit",
    );
}

/// Compaction keeps what the retention says; a version compacted away is
/// `VersionExpired` naming the oldest kept, for `get_at` and for a cursor
/// into it.
pub async fn retention_compacts_and_expired_versions_say_so(ds: Arc<dyn Datastore>) {
    let id = ProfileId::new("p1");
    let written = edited(&ds, "p1", 5).await;
    let w = workflow(&ds, "ds1", "p1").await;
    let page = ds
        .profiles()
        .history(&id, PageRequest::first(4))
        .await
        .unwrap();
    let deep_cursor = page.next.expect("a fifth version");

    let policy = HistoryPolicy::default().with(Kind::Profile, HistoryRetention::keep_last(2));
    let done = ds.compact_history(&policy).await.unwrap();
    assert_eq!(done.removed, 3);
    let kept: Vec<_> = versions(&ds, "p1", 10)
        .await
        .iter()
        .map(|v| v.revision)
        .collect();
    assert_eq!(kept, vec![written[4], written[3]]);
    match ds.profiles().get_at(&id, written[0]).await {
        Err(Error::VersionExpired {
            revision,
            oldest_kept,
            ..
        }) => {
            assert_eq!(revision, written[0]);
            assert_eq!(oldest_kept, Some(written[3]));
        }
        other => panic!("expected VersionExpired, got {other:?}"),
    }
    assert!(matches!(
        ds.profiles()
            .history(&id, PageRequest::after(4, Some(deep_cursor)))
            .await,
        Err(Error::VersionExpired { .. })
    ));
    assert_eq!(
        ds.workflows()
            .history(&w.value.id, PageRequest::first(5))
            .await
            .unwrap()
            .items
            .len(),
        1,
        "another kind's history is kept"
    );
    let again = ds.compact_history(&policy).await.unwrap();
    assert_eq!(again.removed, 0);
}

/// Every kind with history keeps it: a workflow, a run and a collection
/// entry list their versions.
pub async fn every_editable_kind_keeps_versions(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1"]).await;
    let w = workflow(&ds, "ds1", "p1").await;
    let mut edit = w.value.clone();
    edit.active = !edit.active;
    let w2 = ds.workflows().put(edit, w.expect()).await.unwrap();
    let h = ds
        .workflows()
        .history(&w.value.id, PageRequest::first(10))
        .await
        .unwrap();
    let revs: Vec<_> = h.items.iter().map(|v| v.revision).collect();
    assert_eq!(revs, vec![w2.revision, w.revision]);
    assert_eq!(h.items[1].value.as_ref().unwrap().active, w.value.active);
    let r = run(&ds, &w2).await;
    let rh = ds
        .runs()
        .history(&r.value.id, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(rh.items[0].revision, r.revision);
    let e = ds
        .collections()
        .put(entry("p1", "ds1", "one"), Precondition::MustNotExist)
        .await
        .unwrap();
    let eh = ds
        .collections()
        .history(&e.value.key(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(eh.items.len(), 1);
    assert_eq!(eh.items[0].value.as_ref().unwrap().name, "one");
}
