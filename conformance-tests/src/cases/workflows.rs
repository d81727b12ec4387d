//! The workflow substore.

use std::sync::Arc;

use datastore_core::{
    Datastore, InitId, Kind, PageRequest, Precondition, Step, StoreName, Trigger, Workflow,
};

use crate::support::*;

/// A workflow with triggers and steps reads back equal.
pub async fn put_then_get(ds: Arc<dyn Datastore>) {
    let mut w = Workflow::new("init-1", "owner-1");
    w.active = true;
    w.triggers.push(Trigger {
        kind: "cron".into(),
        active: true,
        config: serde_json::json!({"every": "1h"}),
    });
    w.steps.push(Step {
        name: "transform".into(),
        category: "transform".into(),
        syntax: "starlark".into(),
        script: "def transform(ds): pass".into(),
    });
    let put = ds
        .workflows()
        .put(w.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    w.id = put.value.id.clone();
    assert_eq!(ds.workflows().get(&w.id).await.unwrap().value, w);
}

/// A workflow is found by the dataset it automates.
pub async fn get_by_init_id(ds: Arc<dyn Datastore>) {
    workflow(&ds, "init-1", "o").await;
    let w2 = workflow(&ds, "init-2", "o").await;
    let got = ds
        .workflows()
        .get_by_init_id(&InitId::new("init-2"))
        .await
        .unwrap();
    assert_eq!(got.value, w2.value);
}

/// An init id without a workflow is NotFound.
pub async fn get_by_init_id_missing_is_not_found(ds: Arc<dyn Datastore>) {
    assert_not_found(
        ds.workflows().get_by_init_id(&InitId::new("nope")).await,
        StoreName::Kind(Kind::Workflow),
        "nope",
    );
}

/// A second workflow for one dataset is AlreadyExists and writes nothing.
pub async fn second_for_init_id_already_exists(ds: Arc<dyn Datastore>) {
    workflow(&ds, "init-1", "o").await;
    let before = snapshot(&ds).await;
    let result = ds
        .workflows()
        .put(Workflow::new("init-1", "other"), Precondition::Any)
        .await;
    assert_already_exists(result, StoreName::Kind(Kind::Workflow), "init-1");
    assert_unchanged(&ds, &before).await;
}

/// One owner's workflows, oldest first, and no one else's.
pub async fn list_by_owner(ds: Arc<dyn Datastore>) {
    for (i, owner) in ["a", "b", "a", "a"].iter().enumerate() {
        let mut w = Workflow::new(format!("init-{i}"), *owner);
        w.created = ts(100 - i as i64);
        ds.workflows()
            .put(w, Precondition::MustNotExist)
            .await
            .unwrap();
    }
    let page = ds
        .workflows()
        .list_by_owner(&"a".into(), PageRequest::default())
        .await
        .unwrap();
    let inits: Vec<_> = page
        .items
        .iter()
        .map(|w| w.value.init_id.as_str())
        .collect();
    assert_eq!(inits, ["init-3", "init-2", "init-0"]);
}

/// Only active workflows are listed as active; deactivating removes one.
pub async fn list_active(ds: Arc<dyn Datastore>) {
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut w = Workflow::new(format!("init-{i}"), "o");
        w.active = i != 1;
        w.created = ts(i);
        ids.push(
            ds.workflows()
                .put(w, Precondition::MustNotExist)
                .await
                .unwrap(),
        );
    }
    let active = ds
        .workflows()
        .list_active(PageRequest::default())
        .await
        .unwrap();
    let inits: Vec<_> = active
        .items
        .iter()
        .map(|w| w.value.init_id.as_str())
        .collect();
    assert_eq!(inits, ["init-0", "init-2"]);
    let mut w0 = ids[0].value.clone();
    w0.active = false;
    ds.workflows().put(w0, ids[0].expect()).await.unwrap();
    let active = ds
        .workflows()
        .list_active(PageRequest::default())
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
    assert_eq!(active.items[0].value.init_id.as_str(), "init-2");
}

/// A put at an old revision is Conflict naming the revision found.
pub async fn stale_put_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = workflow(&ds, "init-1", "o").await;
    let mut edit = v1.value.clone();
    edit.active = true;
    let v2 = ds.workflows().put(edit.clone(), v1.expect()).await.unwrap();
    assert_conflict(
        ds.workflows().put(edit, v1.expect()).await,
        Some(v2.revision),
    );
}

/// A delete at an old revision is Conflict naming the revision found.
pub async fn stale_delete_is_conflict(ds: Arc<dyn Datastore>) {
    let v1 = workflow(&ds, "init-1", "o").await;
    let v2 = ds
        .workflows()
        .put(v1.value.clone(), v1.expect())
        .await
        .unwrap();
    assert_conflict(
        ds.workflows().delete(&v1.value.id, v1.expect()).await,
        Some(v2.revision),
    );
    ds.workflows()
        .delete(&v1.value.id, v2.expect())
        .await
        .unwrap();
    assert_not_found(
        ds.workflows().get(&v1.value.id).await,
        StoreName::Kind(Kind::Workflow),
        v1.value.id.as_str(),
    );
}

/// A workflow without an owner or dataset is Invalid and writes nothing.
pub async fn empty_owner_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.workflows()
            .put(Workflow::new("init-1", ""), Precondition::Any)
            .await,
        "owner_id",
    );
    assert_invalid(
        ds.workflows()
            .put(Workflow::new("", "o"), Precondition::Any)
            .await,
        "init_id",
    );
    let mut unnamed_step = Workflow::new("init-1", "o");
    unnamed_step.steps.push(Step::default());
    assert_invalid(
        ds.workflows().put(unnamed_step, Precondition::Any).await,
        "steps[0].name",
    );
    assert_unchanged(&ds, &before).await;
}

/// Moving a workflow to another dataset frees the old one.
pub async fn moving_init_id_frees_old(ds: Arc<dyn Datastore>) {
    let v = workflow(&ds, "init-1", "o").await;
    let mut moved = v.value.clone();
    moved.init_id = InitId::new("init-2");
    ds.workflows().put(moved, v.expect()).await.unwrap();
    assert_not_found(
        ds.workflows().get_by_init_id(&InitId::new("init-1")).await,
        StoreName::Kind(Kind::Workflow),
        "init-1",
    );
    let other = workflow(&ds, "init-1", "o").await;
    let found = ds
        .workflows()
        .get_by_init_id(&InitId::new("init-1"))
        .await
        .unwrap();
    assert_eq!(found.value.id, other.value.id);
    assert_eq!(
        ds.workflows()
            .get_by_init_id(&InitId::new("init-2"))
            .await
            .unwrap()
            .value
            .id,
        v.value.id
    );
}

/// A workflow keeps its owner (its runs copy it): Invalid naming
/// `owner_id`; an empty owner in `list_by_owner` is Invalid.
pub async fn owner_is_fixed(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o1").await;
    let before = snapshot(&ds).await;
    let mut moved = w.value.clone();
    moved.owner_id = "o2".into();
    assert_invalid(
        ds.workflows().put(moved, Precondition::Any).await,
        "owner_id",
    );
    assert_invalid(
        ds.workflows()
            .list_by_owner(&"".into(), PageRequest::default())
            .await,
        "owner_id",
    );
    assert_unchanged(&ds, &before).await;
}
