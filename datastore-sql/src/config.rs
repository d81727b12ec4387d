//! Options of a SQL store, and URLs shown without their password.

use std::time::Duration;

use datastore_core::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SUBSCRIBER_BUFFER, HistoryPolicy, Retention, redact_url,
};

/// Options of a SQL store. `SqlConfig::new(url)` gives the defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct SqlConfig {
    /// `sqlite://PATH` (`sqlite::memory:` too) or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    pub url: String,
    /// PostgreSQL: the schema holding the tables (default: the connection's
    /// `search_path`, usually `public`).
    pub schema: Option<String>,
    /// Connections in the pool (the reader pool on SQLite; SQLite has one
    /// writer). On PostgreSQL the feed's LISTEN connection is one of them
    /// for as long as the store is open, and the writer takes another while
    /// it commits: below 4, reads wait for each other (docs/PERFORMANCE.md
    /// measured 2 against the default 8).
    pub pool_size: u32,
    /// How long a statement may run before the server cancels it (PostgreSQL).
    pub statement_timeout: Option<Duration>,
    /// How long to wait for a connection, and (SQLite) for a lock.
    pub connect_timeout: Duration,
    /// How much of the change feed is kept (applied at every commit).
    pub retention: Retention,
    /// Live changes buffered per subscriber before it gets `Lagged`.
    pub subscriber_buffer: usize,
    /// The largest JSON-encoded record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Which kinds keep record history, and for how long.
    pub history: HistoryPolicy,
    /// Open an existing store read-only (default false): an SQLite file is
    /// never created, no migration runs, PostgreSQL sessions are read-only,
    /// and every write is refused. A database that is not a datastore's (no
    /// `datastore_migrations` table) is refused.
    pub read_only: bool,
    /// Apply pending migrations at open (default true); when false, a
    /// database that needs them is refused, naming them.
    pub migrate: bool,
    /// SQLite: how often the feed looks for commits by other processes
    /// (`PRAGMA data_version`); their changes reach this process's
    /// subscribers (and its cache) within about this long (default 100 ms).
    pub poll_interval: Duration,
}

impl SqlConfig {
    /// The defaults for a database URL.
    pub fn new(url: impl Into<String>) -> Self {
        SqlConfig {
            url: url.into(),
            schema: None,
            pool_size: 8,
            statement_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(10),
            retention: Retention::FOREVER,
            subscriber_buffer: DEFAULT_SUBSCRIBER_BUFFER,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            read_only: false,
            migrate: true,
            poll_interval: Duration::from_millis(100),
            history: HistoryPolicy::default(),
        }
    }
}

impl std::fmt::Debug for SqlConfig {
    /// Shows the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retention", &self.retention)
            .field("subscriber_buffer", &self.subscriber_buffer)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("read_only", &self.read_only)
            .field("migrate", &self.migrate)
            .field("poll_interval", &self.poll_interval)
            .field("history", &self.history)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::SqlConfig;
    use datastore_core::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://alice:s3cret@db:5432/app?sslmode=disable"),
            "postgres://alice:***@db:5432/app?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://alice@db/app"),
            "postgres://alice@db/app"
        );
        assert_eq!(
            redact_url("postgres://a:p@ss@db/app"),
            "postgres://a:***@db/app"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        let config = SqlConfig::new("postgres://u:hunter2@h/d");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
