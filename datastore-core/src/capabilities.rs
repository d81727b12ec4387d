//! What a backend supports and its limits.

use serde::Serialize;

/// The largest JSON-encoded record accepted by default, in bytes.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
/// The default number of live changes buffered per subscriber before it lags.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;

/// What a backend supports and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend's name (`memory`, `rocksdb`, `sqlite`, `postgres`).
    pub backend: &'static str,
    /// Acknowledged writes survive a crash.
    pub durable: bool,
    /// Several processes can share the store and see each other's feed.
    pub shared_across_processes: bool,
    /// The largest JSON-encoded record accepted, in bytes.
    pub max_record_bytes: usize,
    /// The largest page size accepted.
    pub max_page_limit: u32,
    /// Live changes buffered per subscriber before it gets `Lagged`.
    pub subscriber_buffer: usize,
    /// The store was opened read-only: every write is `Unsupported`.
    pub read_only: bool,
}

impl Capabilities {
    /// The defaults for a backend of that name: not durable, one process.
    pub fn new(backend: &'static str) -> Self {
        Capabilities {
            backend,
            durable: false,
            shared_across_processes: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_page_limit: crate::query::MAX_PAGE_LIMIT,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            read_only: false,
        }
    }
}
