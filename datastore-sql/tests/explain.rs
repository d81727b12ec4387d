//! Keyset pages read the index from the cursor on, whatever the depth: the
//! query plans of a first and a deep page use the (workflow, number) index.

mod common;

use datastore_core::{Direction, IndexValue, Kind, Position, Scan};
use sqlx::{AssertSqlSafe, Connection, Row};

/// The parameters of [`deep_scan`]'s SQL.
const DEEP_SCAN_VALUES: [&str; 4] = ["'w1'", "100000", "'r100000'", "101"];

fn deep_scan() -> Scan {
    Scan {
        index: Some("workflow_number"),
        prefix: vec![IndexValue::str("w1")],
        after: Some(Position {
            values: vec![IndexValue::str("w1"), IndexValue::Int(100_000)],
            id: "r100000".into(),
        }),
        direction: Direction::Desc,
        limit: 101,
    }
}

/// SQL with its `?` parameters written in, in order, for EXPLAIN.
fn inline(sql: &str, values: &[&str]) -> String {
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            out.push_str(values[n]);
            n += 1;
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn sqlite_deep_pages_search_the_index() {
    let fixture = common::SqliteFixture::new().await;
    let path = fixture.dir.path().join("data.db");
    let (sql, _) = datastore_sql::schema::scan_statement(false, Kind::Run, &deep_scan());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {}",
        inline(&sql, &DEEP_SCAN_VALUES)
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
    let plan = plan.join("\n");
    eprintln!("{plan}");
    assert!(
        plan.contains("ds_runs_workflow_number"),
        "the index is used: {plan}"
    );
    assert!(
        plan.contains("SEARCH"),
        "a search from the cursor, not a scan: {plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}

#[tokio::test]
async fn postgres_deep_pages_search_the_index() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    let ds = schema.open().await;
    ds.close().await.unwrap();
    let (sql, _) = datastore_sql::schema::scan_statement(true, Kind::Run, &deep_scan());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("SET search_path = {}", schema.name)))
        .execute(&mut conn)
        .await
        .unwrap();
    // An empty table would make a sequential scan cheapest; plan as if it were large.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(format!(
        "EXPLAIN {}",
        inline(&sql, &DEEP_SCAN_VALUES)
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let plan = plan.join("\n");
    eprintln!("{plan}");
    assert!(
        plan.contains("ds_runs_workflow_number"),
        "the index is used: {plan}"
    );
    assert!(
        plan.contains("Index Cond"),
        "the cursor is an index condition: {plan}"
    );
    assert!(!plan.contains("Sort"), "no sort: {plan}");
    schema.drop_schema().await;
}

/// A filter on one workflow and its runs: the read a client following one
/// workflow among many makes.
fn one_workflow() -> datastore_core::FeedFilter {
    datastore_core::FeedFilter::all()
        .kind(Kind::Workflow)
        .kind(Kind::Run)
        .id("w1")
        .parent("w1")
}

/// The filtered reads the plan tests check, with the indexes each must search.
fn filtered_reads() -> [(datastore_core::FeedFilter, &'static [&'static str]); 2] {
    [
        (one_workflow(), &["ds_changes_key", "ds_changes_parent"]),
        (
            datastore_core::FeedFilter::all().parent("w1"),
            &["ds_changes_parent"],
        ),
    ]
}

/// The filtered feed read with its parameters written in.
fn changes_inline(filter: &datastore_core::FeedFilter) -> String {
    let (sql, values) = datastore_sql::schema::changes_statement(filter);
    let mut values: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    values.insert(0, "100000".into());
    values.push("500".into());
    let mut values = values.into_iter();
    sql.chars()
        .map(|c| match c {
            '?' => values.next().expect("a value per marker"),
            c => c.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn sqlite_filtered_feed_reads_search_the_key_and_parent_indexes() {
    let fixture = common::SqliteFixture::new().await;
    let path = fixture.dir.path().join("data.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for (filter, indexes) in filtered_reads() {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            changes_inline(&filter)
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
        let plan = plan.join("\n");
        eprintln!("{plan}");
        for index in indexes {
            assert!(plan.contains(index), "{index} is searched: {plan}");
        }
        assert!(
            !plan.lines().any(|l| l.contains("SCAN c")),
            "the feed is not scanned: {plan}"
        );
    }
}

#[tokio::test]
async fn postgres_filtered_feed_reads_search_the_key_and_parent_indexes() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    let ds = schema.open().await;
    ds.close().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("SET search_path = {}", schema.name)))
        .execute(&mut conn)
        .await
        .unwrap();
    // An empty table would make a sequential scan cheapest; plan as if it were large.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    for (filter, indexes) in filtered_reads() {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN {}",
            changes_inline(&filter)
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
        let plan = plan.join("\n");
        eprintln!("{plan}");
        for index in indexes {
            assert!(plan.contains(index), "{index} is searched: {plan}");
        }
        assert!(
            !plan.contains("Seq Scan on ds_changes"),
            "the feed is not scanned: {plan}"
        );
    }
    schema.drop_schema().await;
}

/// A deep page of a record's history searches the primary key from the
/// cursor, newest first, without a sort.
#[tokio::test]
async fn sqlite_deep_history_pages_search_the_key() {
    let fixture = common::SqliteFixture::new().await;
    let path = fixture.dir.path().join("data.db");
    let sql = datastore_sql::schema::history_sql(Direction::Desc, true);
    let inlined = inline(&sql, &["'profiles'", "'p1'", "100000", "101"]);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {inlined}")))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>(3)).collect();
    let plan = plan.join("\n");
    eprintln!("{plan}");
    assert!(
        plan.contains("SEARCH") && plan.contains("ds_history"),
        "{plan}"
    );
    assert!(
        plan.contains("revision<?"),
        "the cursor bounds the search: {plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
}
