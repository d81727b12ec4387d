//! Layers: wrappers that are themselves [`Datastore`](crate::Datastore)s and compose.
//!
//! A layer is a [`Layer`] (a few hooks, each with a pass-through default)
//! inside [`Layered`], which implements every substore trait once,
//! generically, and routes each call through the hooks. The four layers this
//! crate ships are [`Cached`](crate::Cached), [`Instrumented`](crate::Instrumented),
//! [`Faulty`](crate::Faulty) and [`Sealed`](crate::Sealed); stack them in any order:
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use datastore::{Cached, CacheConfig, Instrumented};
//! let backend = datastore::open_url("memory://").await?;
//! let instrumented = Instrumented::wrap(backend);
//! let stats = instrumented.layer().clone(); // per-operation counts and latencies
//! let ds = Cached::wrap(instrumented.into_dyn(), CacheConfig::default()).await?;
//! # let _ = (ds, stats);
//! # Ok(()) }
//! ```

pub(crate) mod cache;
pub(crate) mod faulty;
pub(crate) mod instrument;
mod layer;
mod layered;
pub(crate) mod seal;

pub use layer::{Call, Layer, Loader};
pub use layered::Layered;
