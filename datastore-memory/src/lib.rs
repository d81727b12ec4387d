//! The in-memory datastore backend.
//!
//! Lock-protected ordered maps with the same semantics as every other
//! backend (it passes the same conformance suite), so it is the fake that
//! service tests use. Nothing survives the process.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> datastore_core::Result<()> {
//! use datastore_core::{Precondition, Profile};
//! let ds = datastore_memory::open();
//! let alice = ds.profiles().put(Profile::new("alice"), Precondition::MustNotExist).await?;
//! assert_eq!(ds.profiles().get_by_username("alice").await?.value.id, alice.value.id);
//! # Ok(()) }
//! ```

mod engine;

use std::sync::Arc;

pub use engine::{MemoryConfig, MemoryEngine};

use datastore_core::{Datastore, EngineStore};

/// The in-memory datastore.
pub type MemoryDatastore = EngineStore<MemoryEngine>;

/// A new empty in-memory datastore with the default configuration.
pub fn open() -> Arc<dyn Datastore> {
    open_with(MemoryConfig::default())
}

/// A new empty in-memory datastore.
pub fn open_with(config: MemoryConfig) -> Arc<dyn Datastore> {
    let history = config.history.clone();
    Arc::new(EngineStore::new(MemoryEngine::new(config)).with_history(history))
}
