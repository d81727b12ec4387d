//! The RocksDB datastore backend: embedded, single node, crash-safe.
//!
//! Records, index entries, the feed entry and metadata of a write go into one
//! atomic `WriteBatch` made by one writer thread, so preconditions and unique
//! indexes cannot race, and a crash leaves either all of a write or none of
//! it. Every list is a range scan of an order-preserving index. See
//! [`layout`] for the column families and key encoding, and [`migrations`]
//! for schema versions.
//!
//! ```no_run
//! # async fn demo() -> datastore_core::Result<()> {
//! use datastore_rocks::RocksConfig;
//! let ds = datastore_rocks::open(RocksConfig::new("/var/lib/myservice/db"))?;
//! let page = ds.runs().list_by_workflow(&"w1".into(), Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! Reads run on the caller's task: they are short (a block-cache hit is a
//! few microseconds). Commits go to a writer thread that makes every commit
//! waiting at that moment durable together (group commit): one `WriteBatch`
//! and, with `sync_on_commit` (the default), one fsync of the write-ahead log
//! for the group. A committing task awaits its answer, so no async worker
//! thread ever blocks on an fsync.

mod config;
mod engine;
pub mod layout;
pub mod migrations;
mod writer;

use std::sync::Arc;

pub use config::RocksConfig;
pub use engine::RocksEngine;

use datastore_core::{Datastore, EngineStore, Result};

/// A datastore on RocksDB.
pub type RocksDatastore = EngineStore<RocksEngine>;

/// What opening the database at `path` would do to its schema, read
/// without writing (another process may have it open); `None` when there is
/// no database there.
pub fn schema_plan(path: &std::path::Path) -> Result<Option<migrations::Plan>> {
    if !path.join("CURRENT").exists() {
        return Ok(None);
    }
    let mut config = RocksConfig::new(path);
    config.read_only = true;
    engine::plan_at(&config).map(Some)
}

/// Opens (or creates) a RocksDB datastore.
pub fn open(config: RocksConfig) -> Result<Arc<dyn Datastore>> {
    let history = config.history.clone();
    Ok(Arc::new(
        EngineStore::new(RocksEngine::open(config)?).with_history(history),
    ))
}
