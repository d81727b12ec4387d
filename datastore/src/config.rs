//! [`Config`]: which backend, and how it is tuned, read from TOML with
//! environment overrides. Every option is documented in docs/configuration.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datastore_core::{HistoryPolicy, HistoryRetention, Kind, Retention};
use serde::{Deserialize, Serialize};

use crate::error::OpenError;
use crate::layers::cache::CacheConfig;

/// Everything [`open`](crate::open) needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The store: `memory://`, `rocksdb://PATH`, `sqlite://PATH` or
    /// `postgres://USER@HOST/DB`.
    pub url: String,
    /// The point-read cache.
    pub cache: CacheConfig,
    /// The change feed.
    pub feed: FeedConfig,
    /// RocksDB tuning (for `rocksdb://`).
    pub rocksdb: RocksSettings,
    /// Connection settings (for `sqlite://` and `postgres://`).
    pub sql: SqlSettings,
    /// Sealing of private key material at rest.
    pub sealing: SealingConfig,
    /// Client settings (for `http://`: a remote `datastore serve`).
    pub remote: RemoteSettings,
    /// Record history: which kinds keep versions, for how long, and how
    /// often compaction runs.
    pub history: HistoryConfig,
    /// Emit tracing spans and keep per-operation statistics.
    pub instrument: bool,
    /// The largest JSON-encoded record accepted, in bytes.
    pub max_record_bytes: usize,
    /// Open an existing store read-only: nothing is created, migrated or
    /// written, and a store that is not there, or not a datastore's, is an
    /// error naming the URL. Writes through it are `Unsupported`.
    pub read_only: bool,
    /// Apply pending schema migrations when opening (RocksDB, SQLite,
    /// PostgreSQL). When false, a store that needs them is refused with a
    /// message naming them; run `datastore migrate URL` to apply them.
    pub migrate_on_open: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "memory://".into(),
            cache: CacheConfig::default(),
            feed: FeedConfig::default(),
            rocksdb: RocksSettings::default(),
            sql: SqlSettings::default(),
            sealing: SealingConfig::default(),
            remote: RemoteSettings::default(),
            history: HistoryConfig::default(),
            instrument: false,
            max_record_bytes: datastore_core::DEFAULT_MAX_RECORD_BYTES,
            read_only: false,
            migrate_on_open: true,
        }
    }
}

/// Change feed settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// Keep at most this many changes (`None`: no limit).
    pub max_changes: Option<u64>,
    /// Keep changes at most this many seconds old (`None`: no limit).
    pub max_age_secs: Option<u64>,
    /// Live changes buffered per subscriber before it is told it lagged.
    pub subscriber_buffer: usize,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            max_changes: None,
            max_age_secs: None,
            subscriber_buffer: datastore_core::DEFAULT_SUBSCRIBER_BUFFER,
        }
    }
}

impl FeedConfig {
    /// The retention these settings describe.
    pub fn retention(&self) -> Retention {
        Retention {
            max_changes: self.max_changes,
            max_age: self.max_age_secs.map(Duration::from_secs),
        }
    }
}

/// Record history settings: by default every kind with history keeps
/// every version (see `HistoryPolicy`); a kind named here keeps what its
/// entry says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Per kind, by store name (`workflows`, `runs`, ...).
    pub kinds: std::collections::BTreeMap<String, HistoryKindConfig>,
    /// How often background compaction applies the retention, in seconds
    /// (only when some kind has `max_versions` or `max_age_secs`).
    pub compact_every_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            kinds: std::collections::BTreeMap::new(),
            compact_every_secs: 300,
        }
    }
}

/// One kind's history retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryKindConfig {
    /// Write a version for every put and delete (false: the record's
    /// history is its current state).
    pub enabled: bool,
    /// Keep at most this many of each record's newest versions.
    pub max_versions: Option<u32>,
    /// Keep versions at most this many seconds old.
    pub max_age_secs: Option<u64>,
}

impl Default for HistoryKindConfig {
    fn default() -> Self {
        HistoryKindConfig {
            enabled: true,
            max_versions: None,
            max_age_secs: None,
        }
    }
}

impl HistoryConfig {
    /// The policy these settings describe; a name that is not a kind with
    /// history is an error naming it.
    pub fn policy(&self) -> Result<HistoryPolicy, OpenError> {
        let mut policy = HistoryPolicy::default();
        for (name, kind_config) in &self.kinds {
            let bad = |reason: String| OpenError::Config {
                source_name: format!("history.kinds.{name}"),
                reason,
            };
            let kind = Kind::from_name(name).ok_or_else(|| {
                bad(format!(
                    "{name:?} is not a store (profiles, workflows, runs, keys, collections)"
                ))
            })?;
            if !HistoryPolicy::keeps_history(kind) {
                return Err(bad(format!("{} keep no history", kind.as_str())));
            }
            if kind_config.max_versions == Some(0) {
                return Err(bad(
                    "max_versions must be at least 1 (set enabled = false to keep none)".into(),
                ));
            }
            policy = policy.with(
                kind,
                HistoryRetention {
                    enabled: kind_config.enabled,
                    max_versions: kind_config.max_versions,
                    max_age: kind_config.max_age_secs.map(Duration::from_secs),
                },
            );
        }
        if self.compact_every_secs == 0 && policy.iter().any(|(_, r)| r.compacts()) {
            return Err(OpenError::Config {
                source_name: "history.compact_every_secs".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(policy)
    }
}

/// Settings of the client of a remote store (`http://HOST:PORT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSettings {
    /// A file holding the server's bearer token.
    pub token_file: Option<PathBuf>,
    /// An environment variable holding it (without either: `DATASTORE_TOKEN`
    /// when set).
    pub token_env: Option<String>,
    /// How long one request may take, in milliseconds.
    pub timeout_ms: u64,
    /// A PEM file of a CA to trust for `https://` besides Mozilla's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            token_file: None,
            token_env: None,
            timeout_ms: 30_000,
            ca_file: None,
        }
    }
}

/// RocksDB settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RocksSettings {
    /// Create the database folder if it does not exist.
    pub create_if_missing: bool,
    /// fsync the write-ahead log before a write is acknowledged.
    pub sync_on_commit: bool,
    /// Block cache size in MiB.
    pub block_cache_mib: usize,
    /// Write buffer (memtable) size in MiB.
    pub write_buffer_mib: usize,
}

impl Default for RocksSettings {
    fn default() -> Self {
        RocksSettings {
            create_if_missing: true,
            sync_on_commit: true,
            block_cache_mib: 64,
            write_buffer_mib: 64,
        }
    }
}

/// SQL connection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlSettings {
    /// PostgreSQL schema to keep the tables in (`None`: the connection's default).
    pub schema: Option<String>,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Longest a statement may run, in milliseconds (`None`: no limit).
    pub statement_timeout_ms: Option<u64>,
    /// Longest to wait for a connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for SqlSettings {
    fn default() -> Self {
        SqlSettings {
            schema: None,
            pool_size: 8,
            statement_timeout_ms: Some(30_000),
            connect_timeout_ms: 10_000,
        }
    }
}

/// Where the sealing key comes from. With neither set, private keys are
/// stored as given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealingConfig {
    /// A file holding the key (32 bytes as base64 or hex).
    pub key_file: Option<PathBuf>,
    /// The name of an environment variable holding the key.
    pub key_env: Option<String>,
}

/// The environment variables [`Config::apply_env`] reads, with the option
/// each one overrides.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("DATASTORE_URL", "url"),
    ("DATASTORE_CACHE", "cache.enabled"),
    ("DATASTORE_CACHE_CAPACITY", "cache.capacity"),
    ("DATASTORE_CACHE_TTL_SECS", "cache.ttl_secs"),
    ("DATASTORE_FEED_MAX_CHANGES", "feed.max_changes"),
    ("DATASTORE_FEED_MAX_AGE_SECS", "feed.max_age_secs"),
    ("DATASTORE_ROCKSDB_SYNC", "rocksdb.sync_on_commit"),
    ("DATASTORE_SQL_SCHEMA", "sql.schema"),
    ("DATASTORE_SQL_POOL_SIZE", "sql.pool_size"),
    ("DATASTORE_SEALING_KEY_FILE", "sealing.key_file"),
    ("DATASTORE_SEALING_KEY_ENV", "sealing.key_env"),
    ("DATASTORE_INSTRUMENT", "instrument"),
    ("DATASTORE_READ_ONLY", "read_only"),
    ("DATASTORE_MIGRATE_ON_OPEN", "migrate_on_open"),
];

impl Config {
    /// The defaults with this URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            ..Config::default()
        }
    }

    /// Reads a TOML configuration; unknown options are errors naming them.
    pub fn from_toml(text: &str) -> Result<Self, OpenError> {
        toml::from_str(text).map_err(|e| OpenError::Config {
            source_name: "TOML".into(),
            reason: e.to_string(),
        })
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, OpenError> {
        let text = std::fs::read_to_string(path).map_err(|e| OpenError::Config {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| OpenError::Config {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Reads `path` if given (defaults otherwise), then applies the
    /// environment overrides in [`ENV_OVERRIDES`].
    pub fn load(path: Option<&Path>) -> Result<Self, OpenError> {
        let mut config = match path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Applies overrides from `var` (the environment, or a map in tests).
    /// A value that does not parse is an error naming the variable.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), OpenError> {
        fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, OpenError>
        where
            T::Err: std::fmt::Display,
        {
            value.trim().parse().map_err(|e: T::Err| OpenError::Config {
                source_name: name.to_string(),
                reason: format!("{value:?}: {e}"),
            })
        }
        let optional = |v: &str| !matches!(v.trim(), "" | "none" | "off");
        for (name, _) in ENV_OVERRIDES {
            let Some(value) = var(name) else { continue };
            let v = value.as_str();
            match *name {
                "DATASTORE_URL" => self.url = value.clone(),
                "DATASTORE_CACHE" => self.cache.enabled = parse(name, v)?,
                "DATASTORE_CACHE_CAPACITY" => self.cache.capacity = parse(name, v)?,
                "DATASTORE_CACHE_TTL_SECS" => {
                    self.cache.ttl_secs = optional(v).then(|| parse(name, v)).transpose()?
                }
                "DATASTORE_FEED_MAX_CHANGES" => {
                    self.feed.max_changes = optional(v).then(|| parse(name, v)).transpose()?
                }
                "DATASTORE_FEED_MAX_AGE_SECS" => {
                    self.feed.max_age_secs = optional(v).then(|| parse(name, v)).transpose()?
                }
                "DATASTORE_ROCKSDB_SYNC" => self.rocksdb.sync_on_commit = parse(name, v)?,
                "DATASTORE_SQL_SCHEMA" => self.sql.schema = optional(v).then(|| value.clone()),
                "DATASTORE_SQL_POOL_SIZE" => self.sql.pool_size = parse(name, v)?,
                "DATASTORE_SEALING_KEY_FILE" => {
                    self.sealing.key_file = optional(v).then(|| PathBuf::from(v))
                }
                "DATASTORE_SEALING_KEY_ENV" => {
                    self.sealing.key_env = optional(v).then(|| value.clone())
                }
                "DATASTORE_INSTRUMENT" => self.instrument = parse(name, v)?,
                "DATASTORE_READ_ONLY" => self.read_only = parse(name, v)?,
                "DATASTORE_MIGRATE_ON_OPEN" => self.migrate_on_open = parse(name, v)?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_with_every_section_reads() {
        let config = Config::from_toml(
            r#"
            url = "sqlite://data/app.db"
            instrument = true
            [cache]
            capacity = 10
            ttl_secs = 5
            [feed]
            max_changes = 1000
            [sql]
            pool_size = 2
            [sealing]
            key_env = "APP_SEALING_KEY"
            "#,
        )
        .unwrap();
        assert_eq!(config.url, "sqlite://data/app.db");
        assert!(config.instrument);
        assert_eq!(config.cache.capacity, 10);
        assert_eq!(config.cache.ttl_secs, Some(5));
        assert_eq!(config.feed.retention(), Retention::keep_last(1000));
        assert_eq!(config.sql.pool_size, 2);
        assert_eq!(config.sealing.key_env.as_deref(), Some("APP_SEALING_KEY"));
        // Unset options keep their defaults.
        assert_eq!(config.rocksdb, RocksSettings::default());
    }

    #[test]
    fn unknown_options_are_named() {
        let err = Config::from_toml("url = \"memory://\"\n[cache]\ncapacty = 3\n").unwrap_err();
        assert!(err.to_string().contains("capacty"), "{err}");
        let err = Config::from_toml("urll = \"memory://\"").unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::from_toml("url = \"memory://\"\n[cache]\ncapacity = 3\n").unwrap();
        let env = |name: &str| match name {
            "DATASTORE_URL" => Some("rocksdb:///tmp/x".to_string()),
            "DATASTORE_CACHE_CAPACITY" => Some("42".to_string()),
            "DATASTORE_CACHE_TTL_SECS" => Some("none".to_string()),
            _ => None,
        };
        config.apply_env(env).unwrap();
        assert_eq!(config.url, "rocksdb:///tmp/x");
        assert_eq!(config.cache.capacity, 42);
        assert_eq!(config.cache.ttl_secs, None);
    }

    #[test]
    fn a_bad_environment_value_names_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|name| (name == "DATASTORE_SQL_POOL_SIZE").then(|| "many".to_string()))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("DATASTORE_SQL_POOL_SIZE") && text.contains("many"),
            "{text}"
        );
        assert_eq!(config.sql.pool_size, SqlSettings::default().pool_size);
    }

    #[test]
    fn history_settings_read_from_toml_as_documented() {
        let config = Config::from_toml(
            "[history]\ncompact_every_secs = 60\n[history.kinds.runs]\nmax_versions = 20\n\
             [history.kinds.keys]\nenabled = false\n",
        )
        .unwrap();
        let policy = config.history.policy().unwrap();
        assert_eq!(policy.get(Kind::Run), HistoryRetention::keep_last(20));
        assert!(!policy.records(Kind::Key));
        assert!(policy.records(Kind::Workflow), "kinds left out keep all");
        let err = Config::from_toml("[history.kinds.runs]\nmax_version = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_version"), "{err}");
    }

    #[test]
    fn every_override_is_documented() {
        let doc = include_str!("../../docs/configuration.md");
        for (name, option) in ENV_OVERRIDES {
            assert!(doc.contains(name), "docs/configuration.md lacks {name}");
            assert!(doc.contains(option), "docs/configuration.md lacks {option}");
        }
    }
}
