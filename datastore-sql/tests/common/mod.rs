//! Stores on a real SQLite file and a real PostgreSQL schema, removed after use.
//!
//! PostgreSQL comes from `DATASTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where none answers the tests
//! are skipped with a notice, unless `DATASTORE_REQUIRE_POSTGRES=1`, which
//! makes that a failure.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use conformance_tests::Fixture;
use datastore_core::Datastore;
use datastore_sql::SqlConfig;
use sqlx::Connection;

/// The PostgreSQL server tests use.
pub fn postgres_url() -> String {
    std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The server URL if one answers; `None` (after a notice) if it does not and
/// PostgreSQL is not required; a panic if it is required.
pub async fn postgres() -> Option<String> {
    let url = postgres_url();
    let attempt =
        tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await;
    match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(url)
        }
        failure => {
            let why = match failure {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            let shown = datastore_sql::redact_url(&url);
            if std::env::var("DATASTORE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL at {shown} is required (DATASTORE_REQUIRE_POSTGRES=1) but: {why}"
                );
            }
            eprintln!("skipping a PostgreSQL test: no server at {shown} ({why})");
            None
        }
    }
}

/// A store in a fresh SQLite file.
pub struct SqliteFixture {
    pub ds: Arc<dyn Datastore>,
    pub dir: tempfile::TempDir,
}

impl SqliteFixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("data.db").display());
        let ds = datastore_sql::open(SqlConfig::new(url))
            .await
            .expect("open sqlite");
        SqliteFixture { ds, dir }
    }
}

impl Fixture for SqliteFixture {
    fn store(&self) -> Arc<dyn Datastore> {
        self.ds.clone()
    }

    async fn teardown(self) {
        let _ = self.ds.close().await;
    }
}

/// A fresh PostgreSQL schema, dropped afterwards.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create(url: &str) -> Self {
        let name = format!("ds_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        PgSchema {
            url: url.to_string(),
            name,
        }
    }

    pub fn config(&self) -> SqlConfig {
        let mut config = SqlConfig::new(self.url.clone());
        config.schema = Some(self.name.clone());
        config.pool_size = 4;
        config
    }

    pub async fn open(&self) -> Arc<dyn Datastore> {
        datastore_sql::open(self.config())
            .await
            .expect("open postgres")
    }

    pub async fn drop_schema(&self) {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A store in its own PostgreSQL schema, or a skip notice.
pub enum PgFixture {
    Ready {
        ds: Arc<dyn Datastore>,
        schema: PgSchema,
    },
    Skipped(String),
}

impl PgFixture {
    pub async fn new() -> Self {
        match postgres().await {
            Some(url) => {
                let schema = PgSchema::create(&url).await;
                let ds = schema.open().await;
                PgFixture::Ready { ds, schema }
            }
            None => PgFixture::Skipped(format!(
                "no PostgreSQL at {}",
                datastore_sql::redact_url(&postgres_url())
            )),
        }
    }
}

impl Fixture for PgFixture {
    fn store(&self) -> Arc<dyn Datastore> {
        match self {
            PgFixture::Ready { ds, .. } => ds.clone(),
            PgFixture::Skipped(why) => panic!("skipped: {why}"),
        }
    }

    fn skipped(&self) -> Option<String> {
        match self {
            PgFixture::Skipped(why) => Some(why.clone()),
            PgFixture::Ready { .. } => None,
        }
    }

    async fn teardown(self) {
        if let PgFixture::Ready { ds, schema } = self {
            let _ = ds.close().await;
            drop(ds);
            schema.drop_schema().await;
        }
    }
}

/// Runs `case` with two engines on one fresh database (as two processes
/// would have), first a SQLite file, then a PostgreSQL schema (skipped
/// with a notice when no server answers and none is required).
pub async fn on_both_databases<F, Fut>(case: F)
where
    F: Fn(datastore_sql::SqlEngine, datastore_sql::SqlEngine) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let (a, b) = (
        datastore_sql::SqlEngine::open(SqlConfig::new(&url))
            .await
            .unwrap(),
        datastore_sql::SqlEngine::open(SqlConfig::new(&url))
            .await
            .unwrap(),
    );
    case(a, b).await;
    let Some(server) = postgres().await else {
        return;
    };
    let schema = PgSchema::create(&server).await;
    let (a, b) = (
        datastore_sql::SqlEngine::open(schema.config())
            .await
            .unwrap(),
        datastore_sql::SqlEngine::open(schema.config())
            .await
            .unwrap(),
    );
    case(a, b).await;
    schema.drop_schema().await;
}
