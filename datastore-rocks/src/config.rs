//! Options of a RocksDB store.

use std::path::PathBuf;

use datastore_core::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SUBSCRIBER_BUFFER, HistoryPolicy, Retention,
};

/// Options of a RocksDB store. `RocksConfig::new(path)` gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksConfig {
    /// The database directory.
    pub path: PathBuf,
    /// Create the directory and database if missing (default true).
    pub create_if_missing: bool,
    /// Open an existing database read-only (default false): nothing is
    /// created, migrated or written, commits are refused, and another
    /// process may hold the database open for writing meanwhile (this one
    /// sees the data as it was at open).
    pub read_only: bool,
    /// Bring an older schema up to date at open (default true); when false,
    /// a database that needs a migration is refused, naming it.
    pub migrate: bool,
    /// fsync the write-ahead log before a commit returns (default true): an
    /// acknowledged write then survives power loss, not only a crash.
    pub sync_on_commit: bool,
    /// The block cache shared by all column families, in bytes (default 64 MiB).
    pub block_cache_bytes: usize,
    /// The total memtable budget across column families, in bytes (default
    /// 64 MiB); without it each family would reserve its own buffers.
    pub write_buffer_bytes: usize,
    /// How much of the change feed is kept (applied at every commit).
    pub retention: Retention,
    /// Live changes buffered per subscriber before it gets `Lagged`.
    pub subscriber_buffer: usize,
    /// The largest JSON-encoded record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Which kinds keep record history, and for how long.
    pub history: HistoryPolicy,
}

impl RocksConfig {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RocksConfig {
            path: path.into(),
            create_if_missing: true,
            read_only: false,
            migrate: true,
            sync_on_commit: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            retention: Retention::FOREVER,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            history: HistoryPolicy::default(),
        }
    }
}
