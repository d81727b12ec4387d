//! Bad input: a clear Invalid error naming what is wrong, and nothing written.

use std::sync::Arc;

use datastore_core::{
    CollectionEntry, CollectionFilter, CollectionOrder, Cursor, Datastore, FeedCursor, Kind,
    MAX_FEED_LIMIT, MAX_GET_MANY, MAX_PAGE_LIMIT, Precondition, Profile, ProfileFilter, ProfileId,
    ProfileOrder, Query, Trigger, Workflow, WorkflowFilter, WorkflowOrder,
};

use crate::support::*;

async fn two_pages(ds: &Arc<dyn Datastore>) -> Cursor {
    for i in 0..5 {
        profile(ds, &format!("user{i}")).await;
    }
    let q = Query::new(ProfileFilter::All)
        .order(ProfileOrder::Username)
        .limit(2);
    ds.profiles()
        .list(q)
        .await
        .unwrap()
        .next
        .expect("a second page")
}

/// A record over the size limit is Invalid and writes nothing.
pub async fn oversize_record_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let mut w = Workflow::new("init-1", "o");
    let big = "x".repeat(ds.capabilities().max_record_bytes + 1);
    w.triggers.push(Trigger {
        kind: "cron".into(),
        active: true,
        config: serde_json::json!({ "blob": big }),
    });
    assert_invalid(ds.workflows().put(w, Precondition::Any).await, "record");
    let mut p = Profile::new("alice");
    p.description = "y".repeat(ds.capabilities().max_record_bytes + 1);
    assert_invalid(ds.profiles().put(p, Precondition::Any).await, "description");
    assert_unchanged(&ds, &before).await;
}

/// A cursor used with another query (order, direction or filter) is Invalid.
pub async fn cursor_from_another_query_is_invalid(ds: Arc<dyn Datastore>) {
    let cursor = two_pages(&ds).await;
    let by_id = Query::new(ProfileFilter::All)
        .limit(2)
        .after(Some(cursor.clone()));
    assert_invalid(ds.profiles().list(by_id).await, "cursor");
    let desc = Query::new(ProfileFilter::All)
        .order(ProfileOrder::Username)
        .descending()
        .after(Some(cursor.clone()));
    assert_invalid(ds.profiles().list(desc).await, "cursor");
    let other_kind = Query::<Workflow>::new(WorkflowFilter::All).after(Some(cursor));
    assert_invalid(ds.workflows().list(other_kind).await, "cursor");
    for i in 0..3 {
        ds.collections()
            .put(entry("p1", &format!("i{i}"), "n"), Precondition::Any)
            .await
            .unwrap();
    }
    let q = |p: &str| {
        Query::<CollectionEntry>::new(CollectionFilter::Profile(ProfileId::new(p)))
            .order(CollectionOrder::Name)
            .limit(1)
    };
    let c = ds.collections().list(q("p1")).await.unwrap().next.unwrap();
    assert_invalid(
        ds.collections().list(q("p2").after(Some(c))).await,
        "cursor",
    );
}

/// A cursor with altered bytes is Invalid.
pub async fn tampered_cursor_is_invalid(ds: Arc<dyn Datastore>) {
    let cursor = two_pages(&ds).await;
    let q = || {
        Query::new(ProfileFilter::All)
            .order(ProfileOrder::Username)
            .limit(2)
    };
    let text = cursor.as_str();
    let mid = text.len() / 2;
    let flipped = if &text[mid..mid + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{}{}", &text[..mid], flipped, &text[mid + 1..]);
    assert_invalid(
        ds.profiles()
            .list(q().after(Some(Cursor::from_text(tampered))))
            .await,
        "cursor",
    );
    assert_invalid(
        ds.profiles()
            .list(q().after(Some(Cursor::from_text("not a cursor"))))
            .await,
        "cursor",
    );
    assert_invalid(
        ds.profiles()
            .list(q().after(Some(Cursor::from_text(""))))
            .await,
        "cursor",
    );
    assert!(ds.profiles().list(q().after(Some(cursor))).await.is_ok());
}

/// A limit of 0 is Invalid.
pub async fn limit_zero_is_invalid(ds: Arc<dyn Datastore>) {
    assert_invalid(
        ds.profiles()
            .list(Query::new(ProfileFilter::All).limit(0))
            .await,
        "limit",
    );
    let page = datastore_core::PageRequest::first(0);
    assert_invalid(ds.workflows().list_active(page).await, "limit");
}

/// A limit over the documented maximum is Invalid; the maximum itself works.
pub async fn limit_over_maximum_is_invalid(ds: Arc<dyn Datastore>) {
    let q = Query::new(ProfileFilter::All).limit(MAX_PAGE_LIMIT + 1);
    assert_invalid(ds.profiles().list(q).await, "limit");
    assert!(
        ds.profiles()
            .list(Query::new(ProfileFilter::All).limit(MAX_PAGE_LIMIT))
            .await
            .is_ok()
    );
}

/// Ids with a slash or a space are Invalid and write nothing.
pub async fn id_with_slash_or_space_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    for bad in ["a/b", "a b", "tab\there"] {
        let mut p = Profile::new("alice");
        p.id = ProfileId::new(bad);
        assert_invalid(ds.profiles().put(p, Precondition::Any).await, "id");
        assert_invalid(ds.profiles().get(&ProfileId::new(bad)).await, "id");
    }
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("x".repeat(datastore_core::MAX_ID_LEN + 1));
    assert_invalid(ds.profiles().put(p, Precondition::Any).await, "id");
    assert_unchanged(&ds, &before).await;
}

/// A filter and order that no index serves is Invalid naming the order.
pub async fn order_no_index_serves_is_invalid(ds: Arc<dyn Datastore>) {
    let q = Query::<Workflow>::new(WorkflowFilter::Active).order(WorkflowOrder::Id);
    assert_invalid(ds.workflows().list(q).await, "order");
    let q = Query::<CollectionEntry>::new(CollectionFilter::All).order(CollectionOrder::Name);
    assert_invalid(ds.collections().list(q).await, "order");
}

/// get_many of more ids than allowed is Invalid.
pub async fn too_many_ids_is_invalid(ds: Arc<dyn Datastore>) {
    let ids: Vec<_> = (0..=MAX_GET_MANY)
        .map(|i| ProfileId::new(format!("p{i}")))
        .collect();
    assert_invalid(ds.profiles().get_many(&ids).await, "ids");
    let bad = [ProfileId::new("ok"), ProfileId::new("not ok")];
    assert_invalid(ds.profiles().get_many(&bad).await, "id");
}

/// An empty id with a precondition that needs an existing record is Invalid.
pub async fn empty_id_with_revision_precondition_is_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    let p = Profile::new("alice");
    let rev = datastore_core::Revision::new(1);
    assert_invalid(
        ds.profiles()
            .put(p.clone(), Precondition::MustBeAt(rev))
            .await,
        "id",
    );
    assert_invalid(ds.profiles().put(p, Precondition::MustExist).await, "id");
    assert_unchanged(&ds, &before).await;
}

/// A delete with must-not-exist is Invalid and deletes nothing.
pub async fn delete_must_not_exist_is_invalid(ds: Arc<dyn Datastore>) {
    let v = profile(&ds, "alice").await;
    let before = snapshot(&ds).await;
    assert_invalid(
        ds.profiles()
            .delete(&v.value.id, Precondition::MustNotExist)
            .await,
        "precondition",
    );
    let batch = datastore_core::Batch::new().delete(
        Kind::Profile,
        v.value.id.clone(),
        Precondition::MustNotExist,
    );
    assert_invalid(ds.apply(batch).await, "precondition");
    assert_unchanged(&ds, &before).await;
}

/// A feed read with a limit of 0 or over the maximum is Invalid.
pub async fn feed_limit_out_of_range_is_invalid(ds: Arc<dyn Datastore>) {
    assert_invalid(ds.changes().since(FeedCursor::START, 0).await, "limit");
    assert_invalid(
        ds.changes()
            .since(FeedCursor::START, MAX_FEED_LIMIT + 1)
            .await,
        "limit",
    );
}

/// A feed cursor ahead of the head is Invalid, by since and by subscribe.
pub async fn feed_cursor_ahead_of_head_is_invalid(ds: Arc<dyn Datastore>) {
    profile(&ds, "alice").await;
    let head = ds.changes().head().await.unwrap();
    let ahead = FeedCursor(head.0 + 1000);
    assert_invalid(ds.changes().since(ahead, 10).await, "cursor");
    let mut stream = ds.changes().subscribe(ahead);
    let first = tokio::time::timeout(LIVE_TIMEOUT, futures::StreamExt::next(&mut stream))
        .await
        .expect("the subscription answers");
    match first {
        Some(Err(e)) => assert!(e.is_invalid(), "{e}"),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

/// `.` and `..` are not ids (they name paths, not records): Invalid in
/// a put and a get alike, and nothing is written.
pub async fn dot_ids_are_invalid(ds: Arc<dyn Datastore>) {
    let before = snapshot(&ds).await;
    for id in [".", ".."] {
        let mut p = Profile::new("dots");
        p.id = ProfileId::new(id);
        assert_invalid(ds.profiles().put(p, Precondition::Any).await, "id");
        assert_invalid(ds.profiles().get(&ProfileId::new(id)).await, "id");
        assert_invalid(
            ds.workflows()
                .put(Workflow::new(id, "owner"), Precondition::Any)
                .await,
            "init_id",
        );
    }
    assert_unchanged(&ds, &before).await;
}
