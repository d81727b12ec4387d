//! The datastore facade crate: what services depend on.
//!
//! - Everything from [`datastore_core`] (records, substore traits, the
//!   [`Datastore`] facade, errors, queries, the change feed), re-exported.
//! - [`open`] a store by [`Config`] (TOML plus environment overrides) or
//!   [`open_url`]: `memory://`, `rocksdb://PATH`, `sqlite://PATH`,
//!   `postgres://USER@HOST/DB`. Each backend is a cargo feature (`rocksdb`,
//!   `sqlite`, `postgres`, all on by default); one left out answers with a
//!   "not built in" error.
//! - Layers that are themselves `Datastore`s and compose: [`Cached`],
//!   [`Instrumented`], [`Faulty`], [`Sealed`] (see [`layers`]).
//! - Optional features: `http` (the HTTP API, as `datastore::http`) and
//!   `state-tree` (the client state tree, as `datastore::state_tree`). The
//!   `datastore` program is the `datastore-cli` crate.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use datastore::{Precondition, Profile};
//! let ds = datastore::open_url("memory://").await?;
//! let alice = ds.profiles().put(Profile::new("alice"), Precondition::MustNotExist).await?;
//! assert_eq!(ds.profiles().get(&alice.value.id).await?.value.username, "alice");
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod layers;
mod open;
mod schema;
pub mod transfer;

pub use config::{
    Config, ENV_OVERRIDES, FeedConfig, HistoryConfig, HistoryKindConfig, RemoteSettings,
    RocksSettings, SealingConfig, SqlSettings,
};
pub use datastore_core::*;
pub use error::OpenError;
pub use layers::cache::{Cache, CacheConfig, CacheStats, Cached};
pub use layers::faulty::{Fault, FaultAction, Faults, Faulty};
pub use layers::instrument::{Instrumentation, Instrumented, OpStats};
pub use layers::seal::{SEALED_PREFIX, Sealed, Sealer, SealingKey, SealingKeyError};
pub use layers::{Call, Layer, Layered};
pub use open::{Backend, open, open_url, sealing_key};
pub use schema::{SchemaReport, schema_report};

/// The HTTP API over any store.
#[cfg(feature = "http")]
pub use datastore_http as http;
/// The in-memory backend.
pub use datastore_memory as memory;
/// The client of a remote store (`http://`).
#[cfg(feature = "remote")]
pub use datastore_remote as remote;
/// The RocksDB backend.
#[cfg(feature = "rocksdb")]
pub use datastore_rocks as rocks;
/// The SQL backend (SQLite and PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use datastore_sql as sql;
/// The client state tree.
#[cfg(feature = "state-tree")]
pub use state_tree;
