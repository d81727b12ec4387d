//! Migrations on SQLite and PostgreSQL: fresh, reopen, newer refused,
//! concurrent open, and tables that match the index definitions.

mod common;

use datastore_core::{Error, Kind, Precondition, Profile};
use datastore_sql::{MIGRATIONS_TABLE, SqlConfig, schema};
use sqlx::{AssertSqlSafe, Connection, Row};

async fn sqlite_count(path: &std::path::Path, sql: &str) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn sqlite_fresh_reopen_and_newer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}", path.display());
    let ds = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    ds.profiles()
        .put(Profile::new("kept"), Precondition::Any)
        .await
        .unwrap();
    ds.close().await.unwrap();
    let applied = sqlite_count(&path, &format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}")).await;
    assert!(applied >= 1);
    assert_eq!(
        sqlite_count(
            &path,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'"
        )
        .await,
        0,
        "the host service's migrations table is left alone"
    );
    // Reopen: nothing to do, data intact.
    let ds = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    assert!(ds.profiles().get_by_username("kept").await.is_ok());
    ds.close().await.unwrap();
    assert_eq!(
        sqlite_count(&path, &format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}")).await,
        applied
    );
    // A migration this build does not know: refused.
    {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {MIGRATIONS_TABLE} (version, description, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', 1, x'00', 0)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let err = datastore_sql::open(SqlConfig::new(&url)).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn sqlite_tables_match_the_index_definitions() {
    let fixture = common::SqliteFixture::new().await;
    let path = fixture.dir.path().join("data.db");
    for kind in Kind::ALL {
        for (column, _) in schema::columns(kind) {
            let n = sqlite_count(
                &path,
                &format!(
                    "SELECT COUNT(*) FROM pragma_table_info('{}') WHERE name = '{column}'",
                    schema::table(kind)
                ),
            )
            .await;
            assert_eq!(n, 1, "{} has column {column}", schema::table(kind));
        }
        for def in kind.indexes() {
            let index = format!("{}_{}", schema::table(kind), def.name);
            let n = sqlite_count(
                &path,
                &format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{index}'"
                ),
            )
            .await;
            assert_eq!(n, 1, "index {index} exists");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_fresh_concurrent_reopen_and_newer() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    // Two stores opening an empty schema at once: the migration lock serializes them.
    let (a, b) = tokio::join!(
        datastore_sql::open(schema.config()),
        datastore_sql::open(schema.config())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    a.profiles()
        .put(Profile::new("kept"), Precondition::Any)
        .await
        .unwrap();
    assert!(b.profiles().get_by_username("kept").await.is_ok());
    a.close().await.unwrap();
    b.close().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let count = |sql: String| sqlx::query(AssertSqlSafe(sql));
    let applied: i64 = count(format!(
        "SELECT COUNT(*) FROM {}.{MIGRATIONS_TABLE}",
        schema.name
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert!(applied >= 1);
    let foreign: i64 = count(format!(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}' AND table_name = '_sqlx_migrations'",
        schema.name
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(foreign, 0);
    for kind in Kind::ALL {
        for def in kind.indexes() {
            let index = format!("{}_{}", schema::table(kind), def.name);
            let n: i64 = count(format!(
                "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = '{}' AND indexname = '{index}'",
                schema.name
            ))
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get(0);
            assert_eq!(n, 1, "index {index} exists");
        }
    }
    // Reopen: a no-op.
    let again = schema.open().await;
    assert!(again.profiles().get_by_username("kept").await.is_ok());
    again.close().await.unwrap();
    let after: i64 = count(format!(
        "SELECT COUNT(*) FROM {}.{MIGRATIONS_TABLE}",
        schema.name
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get(0);
    assert_eq!(after, applied);
    // Newer: refused.
    count(format!(
        "INSERT INTO {}.{MIGRATIONS_TABLE} (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, '\\x00', 0)",
        schema.name
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let err = datastore_sql::open(schema.config()).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    schema.drop_schema().await;
}

/// Index columns a migration added are filled from the record bodies at the
/// next open: rows written before (simulated by clearing the columns and
/// the recorded index definitions) list in the new order, and a rename
/// reaches them.
async fn columns_added_by_a_migration_are_filled(
    open: impl AsyncFn() -> std::sync::Arc<dyn datastore_core::Datastore>,
    run_sql: impl AsyncFn(&str),
) {
    use datastore_core::{CollectionEntry, CollectionOrder, PageRequest, ProfileId};
    let ds = open().await;
    let alice = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    for (init, commit) in [("late", 50), ("early", 10)] {
        let mut e = CollectionEntry::new("p1", init, "alice", init);
        e.commit_time = Some(chrono::DateTime::from_timestamp(1_700_000_000 + commit, 0).unwrap());
        ds.collections().put(e, Precondition::Any).await.unwrap();
    }
    ds.close().await.unwrap();
    drop(ds);
    run_sql("UPDATE ds_collections SET updated = NULL, username = NULL").await;
    run_sql("DELETE FROM ds_index_fingerprint").await;

    let ds = open().await;
    let names: Vec<String> = ds
        .collections()
        .list_by_profile(
            &ProfileId::new("p1"),
            CollectionOrder::Updated,
            PageRequest::default(),
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.value.name)
        .collect();
    assert_eq!(names, ["early", "late"]);
    let renamed = ds
        .profiles()
        .rename(&alice.value.id, "alicia", Precondition::Any)
        .await
        .unwrap();
    assert_eq!(
        renamed.entries.len(),
        2,
        "found through the refilled column"
    );
    ds.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_fills_columns_a_migration_added() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}", path.display());
    columns_added_by_a_migration_are_filled(
        async || datastore_sql::open(SqlConfig::new(&url)).await.unwrap(),
        async |sql| {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_fills_columns_a_migration_added() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    columns_added_by_a_migration_are_filled(
        async || schema.open().await,
        async |sql| {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET search_path TO {}; {sql}",
                schema.name
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        },
    )
    .await;
    schema.drop_schema().await;
}

/// A database from before history (migration 6 undone: no `ds_history`, no
/// `actor` columns) gets both at the next open, and each record's history
/// starts at the version it has: older revisions are `VersionExpired`,
/// later writes add versions.
async fn history_starts_at_the_migrated_version(
    open: impl AsyncFn() -> std::sync::Arc<dyn datastore_core::Datastore>,
    run_sql: impl AsyncFn(&str),
) {
    use datastore_core::{Error, PageRequest};
    let ds = open().await;
    let v1 = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    let mut edit = v1.value.clone();
    edit.name = "Alice".into();
    let v2 = ds.profiles().put(edit.clone(), v1.expect()).await.unwrap();
    ds.close().await.unwrap();
    drop(ds);
    let mut undo = String::from("DROP TABLE ds_history;");
    for t in [
        "profiles",
        "workflows",
        "runs",
        "keys",
        "collections",
        "logs",
        "tokens",
        "changes",
    ] {
        undo.push_str(&format!(" ALTER TABLE ds_{t} DROP COLUMN actor;"));
    }
    undo.push_str(&format!(
        " DELETE FROM {MIGRATIONS_TABLE} WHERE version = 6;"
    ));
    for statement in undo.split_inclusive(';') {
        run_sql(statement.trim()).await;
    }

    let ds = open().await;
    let id = &v1.value.id;
    let history = ds
        .profiles()
        .history(id, PageRequest::first(10))
        .await
        .unwrap();
    let revisions: Vec<_> = history.items.iter().map(|v| v.revision).collect();
    assert_eq!(
        revisions,
        vec![v2.revision],
        "history starts at the current version"
    );
    assert_eq!(history.items[0].value.as_ref().unwrap().name, "Alice");
    assert!(matches!(
        ds.profiles().get_at(id, v1.revision).await,
        Err(Error::VersionExpired { .. })
    ));
    edit.name = "Alicia".into();
    let v3 = ds.profiles().put(edit, v2.expect()).await.unwrap();
    let revisions: Vec<_> = ds
        .profiles()
        .history(id, PageRequest::first(10))
        .await
        .unwrap()
        .items
        .iter()
        .map(|v| v.revision)
        .collect();
    assert_eq!(revisions, vec![v3.revision, v2.revision]);
    ds.close().await.unwrap();
}

#[tokio::test]
async fn sqlite_history_starts_at_the_migrated_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}", path.display());
    history_starts_at_the_migrated_version(
        async || datastore_sql::open(SqlConfig::new(&url)).await.unwrap(),
        async |sql| {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(AssertSqlSafe(sql.to_string()))
                .execute(&mut conn)
                .await
                .unwrap();
        },
    )
    .await;
}

#[tokio::test]
async fn postgres_history_starts_at_the_migrated_version() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let schema = common::PgSchema::create(&url).await;
    history_starts_at_the_migrated_version(
        async || schema.open().await,
        async |sql| {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET search_path TO {}; {sql}",
                schema.name
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        },
    )
    .await;
    schema.drop_schema().await;
}
