//! The collection substore.

use std::sync::Arc;

use datastore_core::{
    CollectionKey, CollectionOrder, CollectionPatch, Counts, CountsDelta, Datastore, InitId, Kind,
    PageRequest, Patch, Precondition, ProfileId, RunStatus, StoreName, WorkflowId,
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
        StoreName::Kind(Kind::Collection),
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
        run_status: Patch::Set(RunStatus::Succeeded),
        run_duration_ms: Patch::Set(1500),
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
        StoreName::Kind(Kind::Collection),
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

/// A new version, carried to every profile's entry of a dataset in one
/// atomic write: body size, rows, format, errors, commit title and message;
/// fields left out stay as they were.
pub async fn update_by_init_id_sets_version_fields(ds: Arc<dyn Datastore>) {
    for p in ["p1", "p2"] {
        let mut e = entry(p, "i1", "data");
        e.path = "/v1".into();
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    let patch = CollectionPatch {
        path: Some("/v2".into()),
        commit_time: Patch::Set(ts(100)),
        commit_title: Some("second version".into()),
        commit_message: Some("more rows".into()),
        body_size: Some(2048),
        body_rows: Some(40),
        body_format: Some("csv".into()),
        num_errors: Some(2),
        ..CollectionPatch::default()
    };
    let changed = ds
        .collections()
        .update_by_init_id(&InitId::new("i1"), patch)
        .await
        .unwrap();
    assert_eq!(changed.len(), 2);
    for p in ["p1", "p2"] {
        let got = ds
            .collections()
            .get(&CollectionKey::new(p, "i1"))
            .await
            .unwrap()
            .value;
        assert_eq!(got.path, "/v2");
        assert_eq!(got.commit_time, Some(ts(100)));
        assert_eq!(
            (got.commit_title.as_str(), got.commit_message.as_str()),
            ("second version", "more rows")
        );
        assert_eq!(
            (got.body_size, got.body_rows, got.body_format.as_str()),
            (2048, 40, "csv")
        );
        assert_eq!(got.num_errors, 2);
        assert_eq!(got.name, "data", "a field left out stays");
    }
}

/// A patch clears optional fields: a removed workflow's id and its run
/// fields go from every entry that names them.
pub async fn update_by_init_id_clears_fields(ds: Arc<dyn Datastore>) {
    for p in ["p1", "p2"] {
        let mut e = entry(p, "i1", "data");
        e.workflow_id = Some(WorkflowId::new("w1"));
        e.run_status = Some(RunStatus::Failed);
        e.run_start = Some(ts(5));
        e.run_duration_ms = Some(10);
        e.commit_time = Some(ts(1));
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    let patch = CollectionPatch {
        workflow_id: Patch::Clear,
        run_id: Patch::Clear,
        run_status: Patch::Clear,
        run_start: Patch::Clear,
        run_duration_ms: Patch::Clear,
        ..CollectionPatch::default()
    };
    let changed = ds
        .collections()
        .update_by_init_id(&InitId::new("i1"), patch)
        .await
        .unwrap();
    assert_eq!(changed.len(), 2);
    for p in ["p1", "p2"] {
        let got = ds
            .collections()
            .get(&CollectionKey::new(p, "i1"))
            .await
            .unwrap()
            .value;
        assert_eq!(got.workflow_id, None);
        assert_eq!(got.run_status, None);
        assert_eq!(got.run_start, None);
        assert_eq!(got.run_duration_ms, None);
        assert_eq!(got.commit_time, Some(ts(1)), "kept: not in the patch");
    }
}

/// Counts are raised by increments that all count, even from concurrent
/// callers, and never go below zero.
pub async fn update_by_init_id_increments_counts(ds: Arc<dyn Datastore>) {
    for p in ["p1", "p2"] {
        ds.collections()
            .put(entry(p, "i1", "data"), Precondition::Any)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let patch = CollectionPatch {
                    add_counts: CountsDelta {
                        downloads: 1,
                        followers: 2,
                        ..CountsDelta::default()
                    },
                    ..CollectionPatch::default()
                };
                ds.collections()
                    .update_by_init_id(&InitId::new("i1"), patch)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let unfollow = CollectionPatch {
        add_counts: CountsDelta {
            followers: -100,
            ..CountsDelta::default()
        },
        ..CollectionPatch::default()
    };
    ds.collections()
        .update_by_init_id(&InitId::new("i1"), unfollow)
        .await
        .unwrap();
    for p in ["p1", "p2"] {
        let got = ds
            .collections()
            .get(&CollectionKey::new(p, "i1"))
            .await
            .unwrap()
            .value;
        assert_eq!(got.counts.downloads, 40, "every increment counts");
        assert_eq!(got.counts.followers, 0, "never below zero");
    }
}

/// One profile's entries by "updated": the later of the commit time and the
/// latest run's end (start plus duration); entries with neither first.
pub async fn list_by_profile_by_updated(ds: Arc<dyn Datastore>) {
    /// (name, commit time, latest run's (start, duration in ms))
    type Case<'a> = (&'a str, Option<i64>, Option<(i64, u64)>);
    let cases: [Case; 4] = [
        ("committed-late", Some(50), None),
        ("run-ends-latest", Some(10), Some((20, 60_000))), // ends at 80
        ("never", None, None),
        ("run-only", None, Some((30, 0))),
    ];
    for (init, commit, run) in cases {
        let mut e = entry("p1", init, init);
        e.commit_time = commit.map(ts);
        if let Some((start, ms)) = run {
            e.run_start = Some(ts(start));
            e.run_duration_ms = Some(ms);
        }
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    ds.collections()
        .put(entry("p2", "elsewhere", "x"), Precondition::Any)
        .await
        .unwrap();
    let p1 = ProfileId::new("p1");
    let names: Vec<String> = walk_with(3, |page| {
        ds.collections()
            .list_by_profile(&p1, CollectionOrder::Updated, page)
    })
    .await
    .into_iter()
    .map(|e| e.value.name)
    .collect();
    assert_eq!(
        names,
        ["never", "run-only", "committed-late", "run-ends-latest"]
    );
}

/// An entry names its dataset as `username/name`: both are required.
pub async fn empty_username_or_name_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let mut no_user = entry("p1", "i1", "data");
    no_user.username.clear();
    assert_invalid(
        ds.collections().put(no_user, Precondition::Any).await,
        "username",
    );
    let mut no_name = entry("p1", "i1", "data");
    no_name.name.clear();
    assert_invalid(
        ds.collections().put(no_name, Precondition::Any).await,
        "name",
    );
    assert_unchanged(&ds, &before).await;
}

/// An empty profile id in a collection list is Invalid.
pub async fn empty_profile_id_in_list_is_invalid(ds: Arc<dyn Datastore>) {
    for order in [
        CollectionOrder::Name,
        CollectionOrder::CommitTime,
        CollectionOrder::Updated,
    ] {
        assert_invalid(
            ds.collections()
                .list_by_profile(&ProfileId::new(""), order, PageRequest::default())
                .await,
            "profile_id",
        );
    }
}
