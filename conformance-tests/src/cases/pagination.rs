//! Keyset pagination: every order, walked page by page.

use std::collections::HashSet;
use std::sync::Arc;

use datastore_core::{
    CollectionEntry, CollectionFilter, CollectionOrder, Datastore, Key, PageRequest, Precondition,
    Profile, ProfileFilter, ProfileId, ProfileOrder, Query, Run, RunStatus, Workflow,
};

use crate::support::*;

async fn profiles(ds: &Arc<dyn Datastore>, n: usize) -> Vec<Profile> {
    let mut out = Vec::new();
    for i in 0..n {
        // ids and usernames sort differently, so the orders really differ
        let mut p = Profile::new(format!("user{:02}", (i * 7) % n));
        p.id = ProfileId::new(format!("id{i:02}"));
        p.created = ts(((i * 3) % n) as i64);
        out.push(
            ds.profiles()
                .put(p, Precondition::MustNotExist)
                .await
                .unwrap()
                .value,
        );
    }
    out
}

/// Asserts `got` is `expected`: every item exactly once, in order.
#[track_caller]
fn assert_walk<T: PartialEq + std::fmt::Debug, K: std::hash::Hash + Eq>(
    got: &[T],
    expected: &[T],
    key: impl Fn(&T) -> K,
) {
    let unique: HashSet<K> = got.iter().map(&key).collect();
    assert_eq!(unique.len(), got.len(), "an item came twice");
    assert_eq!(got, expected);
}

/// Profiles by id, page by page.
pub async fn profiles_by_id(ds: Arc<dyn Datastore>) {
    let mut expected = profiles(&ds, 25).await;
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<_> = walk(ds.profiles(), Query::new(ProfileFilter::All).limit(7))
        .await
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_walk(&got, &expected, |p| p.id.clone());
}

/// Profiles by username, descending, page by page.
pub async fn profiles_by_username_descending(ds: Arc<dyn Datastore>) {
    let mut expected = profiles(&ds, 25).await;
    expected.sort_by(|a, b| b.username.cmp(&a.username));
    let q = Query::new(ProfileFilter::All)
        .order(ProfileOrder::Username)
        .descending()
        .limit(4);
    let got: Vec<_> = walk(ds.profiles(), q)
        .await
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_walk(&got, &expected, |p| p.id.clone());
}

/// Profiles by creation time, ties broken by id, page by page.
pub async fn profiles_by_created(ds: Arc<dyn Datastore>) {
    let mut expected = profiles(&ds, 20).await;
    for p in expected.iter_mut().take(5) {
        p.created = ts(100);
        ds.profiles()
            .put(p.clone(), Precondition::MustExist)
            .await
            .unwrap();
    }
    expected.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let q = Query::new(ProfileFilter::All)
        .order(ProfileOrder::Created)
        .limit(3);
    let got: Vec<_> = walk(ds.profiles(), q)
        .await
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_walk(&got, &expected, |p| p.id.clone());
}

/// A workflow's runs, newest first, page by page.
pub async fn runs_by_workflow_newest_first(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    for _ in 0..23 {
        run(&ds, &w).await;
    }
    let runs = walk_with(5, |page| ds.runs().list_by_workflow(&w.value.id, page)).await;
    let numbers: Vec<u64> = runs.iter().map(|r| r.value.number).collect();
    assert_eq!(numbers, (1..=23).rev().collect::<Vec<_>>());
}

/// A workflow's runs, oldest first, page by page.
pub async fn runs_by_workflow_ascending(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "o").await;
    for _ in 0..12 {
        run(&ds, &w).await;
    }
    let q = Query::<Run>::new(datastore_core::RunFilter::Workflow(w.value.id.clone())).limit(5);
    let numbers: Vec<u64> = walk(ds.runs(), q)
        .await
        .iter()
        .map(|r| r.value.number)
        .collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
}

/// One owner's runs in one status, newest first, page by page.
pub async fn runs_by_owner_and_status(ds: Arc<dyn Datastore>) {
    let w = workflow(&ds, "init-1", "alice").await;
    for i in 0..15 {
        let mut r = Run::new(w.value.id.clone(), vec![]);
        r.created = ts(i % 4);
        r.status = if i % 3 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Running
        };
        ds.runs().create(r).await.unwrap();
    }
    let alice = ProfileId::new("alice");
    let got = walk_with(2, |page| {
        ds.runs()
            .list_by_owner_and_status(&alice, RunStatus::Running, page)
    })
    .await;
    let mut expected: Vec<_> = walk(
        ds.runs(),
        Query::new(datastore_core::RunFilter::All).limit(100),
    )
    .await
    .into_iter()
    .filter(|r| r.value.status == RunStatus::Running)
    .collect();
    expected.sort_by(|a, b| (b.value.created, &b.value.id).cmp(&(a.value.created, &a.value.id)));
    assert_eq!(got.len(), 10);
    assert_walk(&got, &expected, |r| r.value.id.clone());
}

/// Entries by name, equal names ordered by key, page by page.
pub async fn collections_by_name_with_ties(ds: Arc<dyn Datastore>) {
    let mut expected = Vec::new();
    for i in 0..17 {
        let e = entry("p1", &format!("i{i:02}"), &format!("name{}", i % 5));
        expected.push(
            ds.collections()
                .put(e, Precondition::Any)
                .await
                .unwrap()
                .value,
        );
    }
    ds.collections()
        .put(entry("p2", "i99", "name0"), Precondition::Any)
        .await
        .unwrap();
    expected.sort_by(|a, b| (&a.name, a.key()).cmp(&(&b.name, b.key())));
    let p1 = ProfileId::new("p1");
    let got: Vec<CollectionEntry> = walk_with(4, |page| {
        ds.collections()
            .list_by_profile(&p1, CollectionOrder::Name, page)
    })
    .await
    .into_iter()
    .map(|v| v.value)
    .collect();
    assert_walk(&got, &expected, |e| e.key());
}

/// Entries by commit time with some never committed, descending, page by page.
pub async fn collections_by_commit_time_with_missing(ds: Arc<dyn Datastore>) {
    let mut expected = Vec::new();
    for i in 0..14 {
        let mut e = entry("p1", &format!("i{i:02}"), "n");
        e.commit_time = (i % 4 != 0).then(|| ts(i % 6));
        expected.push(
            ds.collections()
                .put(e, Precondition::Any)
                .await
                .unwrap()
                .value,
        );
    }
    expected.sort_by_key(|e| std::cmp::Reverse((e.commit_time, e.key())));
    let q = Query::<CollectionEntry>::new(CollectionFilter::Profile(ProfileId::new("p1")))
        .order(CollectionOrder::CommitTime)
        .descending()
        .limit(3);
    let got: Vec<_> = walk(ds.collections(), q)
        .await
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_walk(&got, &expected, |e| e.key());
}

/// One owner's workflows, page by page.
pub async fn workflows_by_owner(ds: Arc<dyn Datastore>) {
    let mut expected = Vec::new();
    for i in 0..11 {
        let mut w = Workflow::new(format!("init-{i}"), if i % 4 == 0 { "other" } else { "me" });
        w.created = ts(i % 3);
        let v = ds
            .workflows()
            .put(w, Precondition::MustNotExist)
            .await
            .unwrap()
            .value;
        if v.owner_id.as_str() == "me" {
            expected.push(v);
        }
    }
    expected.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let me = ProfileId::new("me");
    let got: Vec<_> = walk_with(2, |page| ds.workflows().list_by_owner(&me, page))
        .await
        .into_iter()
        .map(|v| v.value)
        .collect();
    assert_walk(&got, &expected, |w| w.id.clone());
}

/// One profile's keys, page by page.
pub async fn keys_by_profile(ds: Arc<dyn Datastore>) {
    profiles_with_ids(&ds, &["p1", "p2"]).await;
    let mut expected = Vec::new();
    for i in 0..9 {
        let k = Key::new(
            if i % 3 == 0 { "p2" } else { "p1" },
            format!("pub{}", (i * 5) % 9),
        );
        let v = ds
            .keys()
            .put(k, Precondition::MustNotExist)
            .await
            .unwrap()
            .value;
        if v.profile_id.as_str() == "p1" {
            expected.push(v.id);
        }
    }
    expected.sort();
    let p1 = ProfileId::new("p1");
    let got: Vec<_> = walk_with(2, |page| ds.keys().list_by_profile(&p1, page))
        .await
        .into_iter()
        .map(|v| v.value.id)
        .collect();
    assert_walk(&got, &expected, |k| k.clone());
}

/// A cursor stays valid while records are inserted before and after it.
pub async fn cursor_survives_inserts(ds: Arc<dyn Datastore>) {
    for i in 0..10 {
        profile(&ds, &format!("u{i:02}")).await;
    }
    let q = Query::new(ProfileFilter::All)
        .order(ProfileOrder::Username)
        .limit(4);
    let first = ds.profiles().list(q.clone()).await.unwrap();
    let names = |items: &[datastore_core::Versioned<Profile>]| -> Vec<String> {
        items.iter().map(|p| p.value.username.clone()).collect()
    };
    assert_eq!(names(&first.items), ["u00", "u01", "u02", "u03"]);
    for name in ["a-first", "u015", "u035", "zz-last"] {
        profile(&ds, name).await;
    }
    let mut rest = Vec::new();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let page = ds.profiles().list(q.clone().after(Some(c))).await.unwrap();
        rest.extend(names(&page.items));
        cursor = page.next;
    }
    assert_eq!(
        rest,
        ["u035", "u04", "u05", "u06", "u07", "u08", "u09", "zz-last"]
    );
}

/// When the items fill the last page exactly, it has no next cursor (or the
/// next page is empty and has none).
pub async fn exact_multiple_ends_without_cursor(ds: Arc<dyn Datastore>) {
    for i in 0..10 {
        profile(&ds, &format!("u{i}")).await;
    }
    let q = Query::new(ProfileFilter::All).limit(5);
    let first = ds.profiles().list(q.clone()).await.unwrap();
    assert_eq!(first.items.len(), 5);
    let second = ds
        .profiles()
        .list(q.clone().after(first.next.clone()))
        .await
        .unwrap();
    assert_eq!(second.items.len(), 5);
    if let Some(c) = second.next {
        let third = ds.profiles().list(q.after(Some(c))).await.unwrap();
        assert!(third.items.is_empty() && third.next.is_none());
    }
    assert_eq!(
        walk(ds.profiles(), Query::new(ProfileFilter::All).limit(5))
            .await
            .len(),
        10
    );
}

/// An empty list is one empty page without a cursor.
pub async fn empty_list_has_no_cursor(ds: Arc<dyn Datastore>) {
    let page = ds
        .profiles()
        .list(Query::new(ProfileFilter::All))
        .await
        .unwrap();
    assert!(page.items.is_empty());
    assert!(page.next.is_none());
    let page = ds
        .runs()
        .list_by_workflow(&"w".into(), PageRequest::default())
        .await
        .unwrap();
    assert!(page.items.is_empty() && page.next.is_none());
}
