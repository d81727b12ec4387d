//! Batches larger than one statement holds: PostgreSQL writes many rows as
//! one array a column (`UNNEST`), 10,000 rows a statement, SQLite 1,000
//! rows a multi-row `INSERT`. Each case runs on a real SQLite file and a
//! real PostgreSQL schema, with a batch that spills into a second
//! statement on both.

mod common;

use std::sync::Arc;

use datastore_core::{
    Actor, Batch, ChangeOp, Datastore, Error, FeedCursor, Kind, PageRequest, Precondition, Profile,
    ProfileId, Revision,
};
use datastore_sql::SqlConfig;

/// Records in a batch: more than one PostgreSQL array statement's worth
/// (10,000 rows) and ten SQLite statements'.
const ROWS: usize = 10_007;

fn numbered(i: usize) -> Profile {
    let mut p = Profile::new(format!("user{i:05}"));
    p.id = ProfileId::new(format!("p-{i:05}"));
    p.created = chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap();
    p.updated = p.created;
    // Every third one without a name: the columns hold NULLs and values.
    if !i.is_multiple_of(3) {
        p.name = format!("Person {i}");
    }
    p
}

/// Runs `case` on a fresh SQLite file, then on a fresh PostgreSQL schema.
async fn on_both_databases<F, Fut>(case: F)
where
    F: Fn(Arc<dyn Datastore>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let ds = datastore_sql::open(SqlConfig::new(url)).await.unwrap();
    case(ds.clone()).await;
    ds.close().await.unwrap();
    let Some(server) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&server).await;
    let ds = datastore_sql::open(schema.config()).await.unwrap();
    case(ds.clone()).await;
    ds.close().await.unwrap();
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_one_statement_writes_every_row_version_and_change() {
    on_both_databases(|ds| async move {
        let start = ds.changes().head().await.unwrap().0;
        let actor = Actor::service("loader");
        let batch = (0..ROWS).fold(Batch::new(), |b, i| {
            b.put(numbered(i), Precondition::MustNotExist)
        });
        let written = ds.with_actor(actor.clone()).apply(batch).await.unwrap();
        assert_eq!(written.len(), ROWS);
        assert_eq!(ds.count(Kind::Profile).await.unwrap(), ROWS as u64);
        // The rows on both sides of the statement boundary, as written.
        for i in [0, 9_999, 10_000, ROWS - 1] {
            let want = numbered(i);
            let got = ds.profiles().get(&want.id).await.unwrap();
            assert_eq!(got.value, want, "record {i}");
            assert_eq!(got.revision, Revision::new(start + 1 + i as u64));
            assert_eq!(got.actor.as_ref(), Some(&actor), "record {i}");
            let by_name = ds.profiles().get_by_username(&want.username).await;
            assert_eq!(by_name.unwrap().value.id, want.id, "index column of {i}");
            let versions = ds
                .profiles()
                .history(&want.id, PageRequest::first(10))
                .await
                .unwrap()
                .items;
            assert_eq!(versions.len(), 1, "history of {i}");
            assert_eq!(versions[0].value.as_ref(), Some(&want));
            assert_eq!(versions[0].actor.as_ref(), Some(&actor));
            assert_eq!(versions[0].op, ChangeOp::Put);
        }
        let mut changes = Vec::new();
        let mut after = start;
        while changes.len() < ROWS {
            let page = ds.changes().since(FeedCursor(after), 5_000).await.unwrap();
            assert!(!page.is_empty(), "the feed ends at {after}");
            after = page.last().unwrap().seq;
            changes.extend(page);
        }
        assert_eq!(changes.len(), ROWS);
        for (i, c) in changes.iter().enumerate() {
            assert_eq!(c.seq, start + 1 + i as u64, "change {i}");
            assert_eq!(c.id, numbered(i).id.as_str(), "change {i}");
            assert_eq!(c.kind, Kind::Profile);
            assert_eq!(c.actor.as_ref(), Some(&actor));
        }
        assert_eq!(ds.changes().head().await.unwrap().0, start + ROWS as u64);
    })
    .await;
}

/// A row a unique index refuses, in the first statement of a batch (on
/// PostgreSQL, the array one) or in its last, fails the whole batch with
/// `AlreadyExists` naming the index and value, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_refused_in_either_statement_fails_the_batch_and_writes_nothing() {
    on_both_databases(|ds| async move {
        let mut taken = Profile::new("taken");
        taken.id = ProfileId::new("holder");
        ds.profiles()
            .put(taken, Precondition::MustNotExist)
            .await
            .unwrap();
        let head = ds.changes().head().await.unwrap();
        for refused in [9_000, ROWS - 3] {
            let batch = (0..ROWS).fold(Batch::new(), |b, i| {
                let mut p = numbered(i);
                if i == refused {
                    p.username = "taken".into();
                }
                b.put(p, Precondition::MustNotExist)
            });
            let err = ds.apply(batch).await.unwrap_err();
            assert!(
                matches!(&err, Error::AlreadyExists { key, .. } if key == "username=taken"),
                "row {refused}: {err}"
            );
            assert_eq!(ds.count(Kind::Profile).await.unwrap(), 1, "row {refused}");
            assert_eq!(ds.changes().head().await.unwrap(), head, "row {refused}");
            let first = ds.profiles().get(&numbered(0).id).await;
            assert!(matches!(first, Err(Error::NotFound { .. })), "{first:?}");
        }
    })
    .await;
}
