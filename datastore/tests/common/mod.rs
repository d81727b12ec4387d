//! Real stores for the datastore crate's tests: SQLite and RocksDB in
//! temporary folders, PostgreSQL in a schema of its own (dropped after).

#![allow(dead_code)]

use std::sync::Arc;

use datastore::{Config, Datastore};

/// The PostgreSQL server tests use (`DATASTORE_TEST_POSTGRES_URL`).
pub fn postgres_url() -> String {
    std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh PostgreSQL schema, or `None` (after a notice) when no server
/// answers and `DATASTORE_REQUIRE_POSTGRES` is not `1`.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create() -> Option<PgSchema> {
        let url = postgres_url();
        let name = format!(
            "ds_cli_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        match datastore::sql::create_schema(&url, &name).await {
            Ok(()) => Some(PgSchema { url, name }),
            Err(e) => {
                if std::env::var("DATASTORE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("PostgreSQL is required (DATASTORE_REQUIRE_POSTGRES=1) but: {e}");
                }
                eprintln!("skipping a PostgreSQL test: {e}");
                None
            }
        }
    }

    /// A configuration for this schema.
    pub fn config(&self) -> Config {
        let mut config = Config::with_url(self.url.clone());
        config.sql.schema = Some(self.name.clone());
        config.sql.pool_size = 4;
        config
    }

    pub async fn open_uncached(&self) -> Arc<dyn Datastore> {
        let mut config = self.config();
        config.cache.enabled = false;
        datastore::open(&config).await.expect("open postgres")
    }

    pub async fn drop(self) {
        let _ = datastore::sql::drop_schema(&self.url, &self.name).await;
    }
}

/// Every change in the feed, counted.
pub async fn feed_len(ds: &dyn Datastore) -> u64 {
    let mut cursor = datastore::FeedCursor::START;
    let mut n = 0;
    loop {
        let changes = ds.changes().since(cursor, 1000).await.unwrap();
        let Some(last) = changes.last() else { break };
        cursor = last.cursor();
        n += changes.len() as u64;
    }
    n
}
