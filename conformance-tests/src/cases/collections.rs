//! The collection substore.

use std::sync::Arc;

use datastore_core::{
    CollectionKey, CollectionOrder, CollectionPatch, Counts, Datastore, InitId, PageRequest,
    Precondition, ProfileId, RunStatus, StoreName,
};

use crate::support::*;

/// An entry is keyed by (profile, dataset) and reads back equal.
pub async fn put_then_get(ds: Arc<dyn Datastore>) {
    let mut e = entry("p1", "i1", "weather");
    e.commit_time = Some(ts(10));
    e.body_rows = 42;
    e.counts = Counts {
        commits: 3,
        ..Counts::default()
    };
    ds.collections()
        .put(e.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let got = ds
        .collections()
        .get(&CollectionKey::new("p1", "i1"))
        .await
        .unwrap();
    assert_eq!(got.value, e);
    assert_not_found(
        ds.collections().get(&CollectionKey::new("p2", "i1")).await,
        StoreName::Collections,
        "p2/i1",
    );
}

/// One profile's entries by name, and no one else's.
pub async fn list_by_profile_by_name(ds: Arc<dyn Datastore>) {
    for (init, name) in [("i1", "cherry"), ("i2", "apple"), ("i3", "banana")] {
        ds.collections()
            .put(entry("p1", init, name), Precondition::Any)
            .await
            .unwrap();
    }
    ds.collections()
        .put(entry("p2", "i4", "aardvark"), Precondition::Any)
        .await
        .unwrap();
    let page = ds
        .collections()
        .list_by_profile(
            &ProfileId::new("p1"),
            CollectionOrder::Name,
            PageRequest::default(),
        )
        .await
        .unwrap();
    let names: Vec<_> = page.items.iter().map(|e| e.value.name.as_str()).collect();
    assert_eq!(names, ["apple", "banana", "cherry"]);
}

/// One profile's entries by commit time; never-committed entries first.
pub async fn list_by_profile_by_commit_time(ds: Arc<dyn Datastore>) {
    for (init, t) in [
        ("i1", Some(30)),
        ("i2", Some(10)),
        ("i3", None),
        ("i4", Some(20)),
    ] {
        let mut e = entry("p1", init, init);
        e.commit_time = t.map(ts);
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    let page = ds
        .collections()
        .list_by_profile(
            &ProfileId::new("p1"),
            CollectionOrder::CommitTime,
            PageRequest::default(),
        )
        .await
        .unwrap();
    let inits: Vec<_> = page
        .items
        .iter()
        .map(|e| e.value.init_id.as_str())
        .collect();
    assert_eq!(inits, ["i3", "i2", "i4", "i1"]);
}

/// A patch reaches every profile's entry of one dataset, and only those.
pub async fn update_by_init_id_across_profiles(ds: Arc<dyn Datastore>) {
    let mut before = Vec::new();
    for p in ["p1", "p2", "p3"] {
        before.push(
            ds.collections()
                .put(entry(p, "i1", "shared"), Precondition::Any)
                .await
                .unwrap(),
        );
    }
    let untouched = ds
        .collections()
        .put(entry("p1", "i2", "other"), Precondition::Any)
        .await
        .unwrap();
    let patch = CollectionPatch {
        run_status: Some(RunStatus::Succeeded),
        run_duration_ms: Some(1500),
        ..CollectionPatch::default()
    };
    let changed = ds
        .collections()
        .update_by_init_id(&InitId::new("i1"), patch)
        .await
        .unwrap();
    assert_eq!(changed.len(), 3);
    for (old, p) in before.iter().zip(["p1", "p2", "p3"]) {
        let got = ds
            .collections()
            .get(&CollectionKey::new(p, "i1"))
            .await
            .unwrap();
        assert_eq!(got.value.run_status, Some(RunStatus::Succeeded));
        assert_eq!(got.value.run_duration_ms, Some(1500));
        assert_eq!(got.value.name, "shared");
        assert!(got.revision > old.revision);
    }
    let other = ds
        .collections()
        .get(&CollectionKey::new("p1", "i2"))
        .await
        .unwrap();
    assert_eq!(other.revision, untouched.revision);
    assert_eq!(other.value.run_status, None);
}

/// A patch of a dataset nobody collects writes nothing.
pub async fn update_by_init_id_without_entries_writes_nothing(ds: Arc<dyn Datastore>) {
    ds.collections()
        .put(entry("p1", "i1", "x"), Precondition::Any)
        .await
        .unwrap();
    let before = snapshot(&ds).await;
    let patch = CollectionPatch {
        name: Some("renamed".into()),
        ..CollectionPatch::default()
    };
    let changed = ds
        .collections()
        .update_by_init_id(&InitId::new("i9"), patch)
        .await
        .unwrap();
    assert!(changed.is_empty());
    assert_unchanged(&ds, &before).await;
}

/// An entry without a dataset is Invalid and writes nothing.
pub async fn empty_init_id_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.collections()
            .put(entry("p1", "", "x"), Precondition::Any)
            .await,
        "init_id",
    );
    assert_invalid(
        ds.collections()
            .update_by_init_id(&InitId::new(""), CollectionPatch::default())
            .await,
        "init_id",
    );
    assert_unchanged(&ds, &before).await;
}

/// A put at an old revision is Conflict naming the revision found.
pub async fn stale_put_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = ds
        .collections()
        .put(entry("p1", "i1", "x"), Precondition::Any)
        .await
        .unwrap();
    let mut edit = v1.value.clone();
    edit.name = "y".into();
    let v2 = ds
        .collections()
        .put(edit.clone(), v1.expect())
        .await
        .unwrap();
    assert_conflict(
        ds.collections().put(edit, v1.expect()).await,
        Some(v2.revision),
    );
}

/// A delete at an old revision is Conflict naming the revision found.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = ds
        .collections()
        .put(entry("p1", "i1", "x"), Precondition::Any)
        .await
        .unwrap();
    let v2 = ds
        .collections()
        .put(v1.value.clone(), v1.expect())
        .await
        .unwrap();
    let key = CollectionKey::new("p1", "i1");
    assert_conflict(
        ds.collections().delete(&key, v1.expect()).await,
        Some(v2.revision),
    );
}

/// A deleted entry is gone from gets and lists.
pub async fn delete_then_get_is_not_found(ds: Arc<dyn Datastore>) {
    let v = ds
        .collections()
        .put(entry("p1", "i1", "x"), Precondition::Any)
        .await
        .unwrap();
    let key = CollectionKey::new("p1", "i1");
    ds.collections().delete(&key, v.expect()).await.unwrap();
    assert_not_found(
        ds.collections().get(&key).await,
        StoreName::Collections,
        "p1/i1",
    );
    let page = ds
        .collections()
        .list_by_profile(
            &ProfileId::new("p1"),
            CollectionOrder::Name,
            PageRequest::default(),
        )
        .await
        .unwrap();
    assert!(page.items.is_empty());
}
