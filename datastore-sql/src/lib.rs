//! The SQL datastore backend: SQLite (embedded) and PostgreSQL (server,
//! scale-out) through sqlx, one backend type for both.
//!
//! Real tables per substore (`ds_profiles`, `ds_runs`, ...) with an indexed
//! column for every filter, order and unique field, the record body as JSONB
//! (TEXT on SQLite) and a revision column, so a DBA can read every table
//! with psql or sqlite3. Migrations are embedded and recorded in
//! `datastore_migrations`. See [`engine`] for how writes, the feed and
//! cross-process notifications work.
//!
//! ```no_run
//! # async fn demo() -> datastore_core::Result<()> {
//! use datastore_sql::SqlConfig;
//! let ds = datastore_sql::open(SqlConfig::new("postgres://app@127.0.0.1/app")).await?;
//! let local = datastore_sql::open(SqlConfig::new("sqlite:///var/lib/app/data.db")).await?;
//! # Ok(()) }
//! ```

mod apply;
mod config;
mod connect;
mod driver;
pub mod engine;
mod follow;
pub mod migrate;
mod reindex;
pub mod schema;
mod writer;

use std::sync::Arc;

pub use config::SqlConfig;
pub use datastore_core::redact_url;
pub use engine::SqlEngine;
pub use migrate::{MIGRATIONS_TABLE, MigrationState, SchemaStatus};

use datastore_core::{Datastore, EngineStore, Result};

/// A datastore on SQLite or PostgreSQL.
pub type SqlDatastore = EngineStore<SqlEngine>;

/// Opens a SQL datastore: connects, migrates, starts the feed listener.
pub async fn open(config: SqlConfig) -> Result<Arc<dyn Datastore>> {
    let history = config.history.clone();
    Ok(Arc::new(
        EngineStore::new(SqlEngine::open(config).await?).with_history(history),
    ))
}

/// Where the database at `config.url` stands, changing nothing: the
/// migrations this build knows and which of them it has, whether it is a
/// datastore's at all, and the tables of others beside ours. An SQLite
/// file that does not exist is reported as new (every migration pending).
pub async fn schema_status(config: &SqlConfig) -> Result<SchemaStatus> {
    let shown = redact_url(&config.url);
    let mut probe = config.clone();
    probe.read_only = true;
    let pools = match connect::pools(&probe, &shown).await {
        Ok(pools) => pools,
        Err(datastore_core::Error::NotFound { .. }) if config.url.starts_with("sqlite:") => {
            let migrations = migrate::known(config.url.starts_with("sqlite:"));
            return Ok(SchemaStatus {
                migrations,
                ours: false,
                other_tables: Vec::new(),
            });
        }
        Err(e) => return Err(e),
    };
    let status = migrate::status(&pools, &shown).await;
    pools.close().await;
    status
}

/// Creates a PostgreSQL schema (for a store of its own beside others in one
/// database, as `datastore check` does); `name` must be a plain identifier.
pub async fn create_schema(url: &str, name: &str) -> Result<()> {
    schema_statement(url, name, format!("CREATE SCHEMA {name}")).await
}

/// Drops a PostgreSQL schema and everything in it, if it exists.
pub async fn drop_schema(url: &str, name: &str) -> Result<()> {
    schema_statement(url, name, format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await
}

async fn schema_statement(url: &str, name: &str, sql: String) -> Result<()> {
    use datastore_core::{Error, StoreName};
    use sqlx::Connection;
    let shown = redact_url(url);
    connect::check_schema_name(&shown, name)?;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| Error::Unavailable {
            store: StoreName::Datastore,
            key: shown.clone(),
            source: format!("cannot connect: {e}").into(),
        })?;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| Error::Backend {
            store: StoreName::Datastore,
            key: shown.clone(),
            source: e.into(),
        })?;
    let _ = conn.close().await;
    Ok(())
}
