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
