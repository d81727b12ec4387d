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

mod config;
mod driver;
pub mod engine;
pub mod schema;

use std::sync::Arc;

pub use config::{SqlConfig, redact_url};
pub use engine::{MIGRATIONS_TABLE, SqlEngine};

use datastore_core::{Datastore, EngineStore, Result};

/// A datastore on SQLite or PostgreSQL.
pub type SqlDatastore = EngineStore<SqlEngine>;

/// Opens a SQL datastore: connects, migrates, starts the feed listener.
pub async fn open(config: SqlConfig) -> Result<Arc<dyn Datastore>> {
    Ok(Arc::new(EngineStore::new(SqlEngine::open(config).await?)))
}
