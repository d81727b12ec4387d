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
pub mod transfer;

pub use config::{Config, ENV_OVERRIDES, FeedConfig, RocksSettings, SealingConfig, SqlSettings};
pub use datastore_core::*;
pub use error::OpenError;
pub use layers::cache::{Cache, CacheConfig, CacheStats, Cached};
pub use layers::faulty::{Fault, FaultAction, Faults, Faulty};
pub use layers::instrument::{Instrumentation, Instrumented, OpStats};
pub use layers::seal::{SEALED_PREFIX, Sealed, Sealer, SealingKey, SealingKeyError};
pub use layers::{Call, Layer, Layered};
pub use open::{Backend, open, open_url, sealing_key};

/// The in-memory backend.
pub use datastore_memory as memory;
/// The RocksDB backend.
#[cfg(feature = "rocksdb")]
pub use datastore_rocks as rocks;
/// The SQL backend (SQLite and PostgreSQL).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use datastore_sql as sql;
/// The client state tree.
pub use state_tree;
