//! Opening a store by [`Config`] or URL.

use std::path::PathBuf;
use std::sync::Arc;

use datastore_core::{Datastore, HistoryPolicy, redact_url};

use crate::config::Config;
use crate::error::OpenError;
use crate::layers::cache::Cached;
use crate::layers::instrument::Instrumented;
use crate::layers::seal::{Sealed, SealingKey};

/// The backends a URL can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `memory://`: nothing kept after the process ends.
    Memory,
    /// `rocksdb://PATH`: an embedded RocksDB database in the folder PATH.
    Rocks {
        /// The database folder.
        path: PathBuf,
        /// `?sync_on_commit=`: overrides the configured value.
        sync_on_commit: Option<bool>,
        /// `?create_if_missing=`: overrides the configured value.
        create_if_missing: Option<bool>,
    },
    /// `sqlite://PATH`: an embedded SQLite file.
    Sqlite {
        /// The URL as sqlx reads it.
        url: String,
    },
    /// `postgres://…` or `postgresql://…`: a PostgreSQL server.
    Postgres {
        /// The URL as sqlx reads it.
        url: String,
    },
    /// `http://HOST:PORT`: a remote `datastore serve`, through its HTTP API.
    Remote {
        /// The server's base URL.
        url: String,
    },
}

impl Backend {
    /// Reads a store URL, checking the parts this crate interprets.
    pub fn parse(url: &str) -> Result<Backend, OpenError> {
        let shown = redact_url(url);
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(OpenError::UnknownScheme {
                scheme: url.to_string(),
                url: shown,
            });
        };
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let bad = |option: &str, reason: String| OpenError::BadOption {
            url: shown.clone(),
            option: option.to_string(),
            reason,
        };
        match scheme {
            "memory" | "mem" => {
                if !path.is_empty() {
                    return Err(bad("path", "memory:// takes no path".into()));
                }
                if let Some(q) = query {
                    return Err(bad(q, "memory:// takes no options".into()));
                }
                Ok(Backend::Memory)
            }
            "rocksdb" | "rocks" => {
                if path.is_empty() {
                    return Err(bad(
                        "path",
                        "must not be empty; write rocksdb://./data or rocksdb:///var/lib/app"
                            .into(),
                    ));
                }
                let mut sync_on_commit = None;
                let mut create_if_missing = None;
                for pair in query
                    .unwrap_or_default()
                    .split('&')
                    .filter(|p| !p.is_empty())
                {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let flag = || match value {
                        "true" | "1" | "yes" => Ok(true),
                        "false" | "0" | "no" => Ok(false),
                        other => Err(bad(name, format!("{other:?} is not true or false"))),
                    };
                    match name {
                        "sync_on_commit" => sync_on_commit = Some(flag()?),
                        "create_if_missing" => create_if_missing = Some(flag()?),
                        _ => {
                            return Err(bad(
                                name,
                                "unknown option; rocksdb:// takes sync_on_commit and create_if_missing".into(),
                            ));
                        }
                    }
                }
                Ok(Backend::Rocks {
                    path: PathBuf::from(path),
                    sync_on_commit,
                    create_if_missing,
                })
            }
            "sqlite" => {
                if path.is_empty() {
                    return Err(bad(
                        "path",
                        "must not be empty; write sqlite://./app.db or sqlite:///var/lib/app.db"
                            .into(),
                    ));
                }
                Ok(Backend::Sqlite {
                    url: url.to_string(),
                })
            }
            "postgres" | "postgresql" => {
                if path.is_empty() {
                    return Err(bad(
                        "host",
                        "must not be empty; write postgres://USER@HOST/DB".into(),
                    ));
                }
                Ok(Backend::Postgres {
                    url: url.to_string(),
                })
            }
            "http" | "https" => {
                if path.is_empty() {
                    return Err(bad(
                        "host",
                        "must not be empty; write http://HOST:PORT".into(),
                    ));
                }
                Ok(Backend::Remote {
                    url: url.to_string(),
                })
            }
            other => Err(OpenError::UnknownScheme {
                url: shown,
                scheme: other.to_string(),
            }),
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Rocks { .. } => "RocksDB",
            Backend::Sqlite { .. } => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
            Backend::Remote { .. } => "remote",
        }
    }
}

/// Opens the store `config` names, wrapped in the layers it asks for:
/// instrumentation innermost, then sealing, then the cache (never over
/// `memory://`, where the cache would be slower than the store).
pub async fn open(config: &Config) -> Result<Arc<dyn Datastore>, OpenError> {
    let backend = Backend::parse(&config.url)?;
    let is_memory = backend == Backend::Memory;
    let sealing_key = sealing_key(config)?;
    let history = config.history.policy()?;
    let is_remote = matches!(backend, Backend::Remote { .. });
    let mut ds = open_backend(config, backend).await?;
    if !config.read_only && !is_remote {
        compact_history_in_background(&ds, history, config.history.compact_every_secs);
    }
    if config.instrument {
        ds = Instrumented::wrap(ds).into_dyn();
    }
    if let Some(key) = sealing_key {
        ds = Sealed::wrap(ds, key).into_dyn();
    }
    if config.cache.enabled && !is_memory {
        ds = Cached::wrap(ds, config.cache.clone()).await?.into_dyn();
    }
    Ok(ds)
}

/// Applies `policy`'s history retention every `every_secs` seconds while
/// the store is open (when some kind's retention compacts): a task holding
/// only a weak reference, so it ends when the store is dropped or closed.
fn compact_history_in_background(ds: &Arc<dyn Datastore>, policy: HistoryPolicy, every_secs: u64) {
    if !policy.iter().any(|(_, r)| r.compacts()) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(ds);
    let every = std::time::Duration::from_secs(every_secs.max(1));
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(ds) = weak.upgrade() else { return };
            match ds.compact_history(&policy).await {
                Ok(done) if done.removed > 0 => {
                    tracing::debug!(removed = done.removed, "history compacted")
                }
                Ok(_) => {}
                Err(e @ datastore_core::Error::Unavailable { .. }) => {
                    tracing::debug!(error = %e, "history compaction stops");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "history compaction failed"),
            }
        }
    });
}

/// Opens `url` with every other setting at its default (see [`Config`]).
pub async fn open_url(url: &str) -> Result<Arc<dyn Datastore>, OpenError> {
    open(&Config::with_url(url)).await
}

/// The sealing key the configuration names, if any.
pub fn sealing_key(config: &Config) -> Result<Option<SealingKey>, OpenError> {
    let (source_name, text) = match (&config.sealing.key_file, &config.sealing.key_env) {
        (Some(_), Some(_)) => {
            return Err(OpenError::Config {
                source_name: "sealing".into(),
                reason: "set key_file or key_env, not both".into(),
            });
        }
        (Some(path), None) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|e| OpenError::SealingKey {
                source_name: path.display().to_string(),
                reason: e.to_string(),
            })?,
        ),
        (None, Some(var)) => (
            format!("${var}"),
            std::env::var(var).map_err(|_| OpenError::SealingKey {
                source_name: format!("${var}"),
                reason: "the variable is not set".into(),
            })?,
        ),
        (None, None) => return Ok(None),
    };
    text.parse()
        .map(Some)
        .map_err(
            |e: crate::layers::seal::SealingKeyError| OpenError::SealingKey {
                source_name,
                reason: e.to_string(),
            },
        )
}

#[allow(unused_variables)]
async fn open_backend(config: &Config, backend: Backend) -> Result<Arc<dyn Datastore>, OpenError> {
    let shown = redact_url(&config.url);
    let retention = config.feed.retention();
    match backend {
        Backend::Memory => Ok(datastore_memory::open_with(
            datastore_memory::MemoryConfig {
                retention,
                subscriber_buffer: config.feed.subscriber_buffer,
                max_record_bytes: config.max_record_bytes,
                history: config.history.policy()?,
            },
        )),
        Backend::Rocks {
            path,
            sync_on_commit,
            create_if_missing,
        } => {
            #[cfg(feature = "rocksdb")]
            {
                let mut rocks = datastore_rocks::RocksConfig::new(path);
                rocks.create_if_missing =
                    create_if_missing.unwrap_or(config.rocksdb.create_if_missing);
                rocks.read_only = config.read_only;
                rocks.migrate = config.migrate_on_open;
                rocks.sync_on_commit = sync_on_commit.unwrap_or(config.rocksdb.sync_on_commit);
                rocks.block_cache_bytes = config.rocksdb.block_cache_mib << 20;
                rocks.write_buffer_bytes = config.rocksdb.write_buffer_mib << 20;
                rocks.retention = retention;
                rocks.subscriber_buffer = config.feed.subscriber_buffer;
                rocks.max_record_bytes = config.max_record_bytes;
                rocks.history = config.history.policy()?;
                // Opening takes a file lock and may replay the log: off the
                // async threads.
                off_thread(&shown, move || datastore_rocks::open(rocks)).await
            }
            #[cfg(not(feature = "rocksdb"))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "RocksDB",
                feature: "rocksdb",
            })
        }
        Backend::Sqlite { url } => {
            #[cfg(feature = "sqlite")]
            {
                Ok(datastore_sql::open(sql_config(config, url)).await?)
            }
            #[cfg(not(feature = "sqlite"))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "SQLite",
                feature: "sqlite",
            })
        }
        Backend::Postgres { url } => {
            #[cfg(feature = "postgres")]
            {
                Ok(datastore_sql::open(sql_config(config, url)).await?)
            }
            #[cfg(not(feature = "postgres"))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "PostgreSQL",
                feature: "postgres",
            })
        }
        Backend::Remote { url } => {
            #[cfg(feature = "remote")]
            {
                let mut remote = datastore_remote::RemoteConfig::new(url)
                    .timeout(std::time::Duration::from_millis(config.remote.timeout_ms));
                remote.token = remote_token(&config.remote)?;
                if let Some(path) = &config.remote.ca_file {
                    remote.ca_certificate =
                        Some(std::fs::read(path).map_err(|e| OpenError::Config {
                            source_name: path.display().to_string(),
                            reason: format!("cannot read the CA certificate: {e}"),
                        })?);
                }
                remote.subscriber_buffer = config.feed.subscriber_buffer;
                remote.max_record_bytes = config.max_record_bytes;
                Ok(datastore_remote::RemoteStore::open(remote).await?)
            }
            #[cfg(not(feature = "remote"))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "remote (http://)",
                feature: "remote",
            })
        }
    }
}

/// The bearer token for a remote store: `token_file`, else the variable
/// `token_env` names, else `DATASTORE_TOKEN` when set, else none.
#[cfg(feature = "remote")]
fn remote_token(settings: &crate::config::RemoteSettings) -> Result<Option<String>, OpenError> {
    let bad = |source_name: String, reason: String| OpenError::Config {
        source_name,
        reason,
    };
    let text = match (&settings.token_file, &settings.token_env) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "remote".into(),
                "set token_file or token_env, not both".into(),
            ));
        }
        (Some(path), None) => std::fs::read_to_string(path).map_err(|e| {
            bad(
                path.display().to_string(),
                format!("cannot read the token: {e}"),
            )
        })?,
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| bad(format!("${var}"), "the variable is not set".into()))?,
        (None, None) => match std::env::var("DATASTORE_TOKEN") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(text.trim().to_string()))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn sql_config(config: &Config, url: String) -> datastore_sql::SqlConfig {
    use std::time::Duration;
    let mut sql = datastore_sql::SqlConfig::new(url);
    sql.schema = config.sql.schema.clone();
    sql.pool_size = config.sql.pool_size;
    sql.statement_timeout = config.sql.statement_timeout_ms.map(Duration::from_millis);
    sql.connect_timeout = Duration::from_millis(config.sql.connect_timeout_ms);
    sql.retention = config.feed.retention();
    sql.subscriber_buffer = config.feed.subscriber_buffer;
    sql.max_record_bytes = config.max_record_bytes;
    sql.read_only = config.read_only;
    sql.migrate = config.migrate_on_open;
    // Checked by `open` before any store is opened.
    sql.history = config.history.policy().unwrap_or_default();
    sql
}

/// Runs blocking `work` (a file lock, a log replay) on the blocking pool;
/// a panic there is a `Backend` error naming the store.
#[cfg(feature = "rocksdb")]
pub(crate) async fn off_thread<T: Send + 'static>(
    shown: &str,
    work: impl FnOnce() -> datastore_core::Result<T> + Send + 'static,
) -> Result<T, OpenError> {
    let done = tokio::task::spawn_blocking(work).await.map_err(|e| {
        OpenError::Store(datastore_core::Error::Backend {
            store: datastore_core::StoreName::Datastore,
            key: shown.to_string(),
            source: e.into(),
        })
    })?;
    Ok(done?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend() {
        assert_eq!(Backend::parse("memory://").unwrap(), Backend::Memory);
        assert_eq!(
            Backend::parse("rocksdb:///var/lib/x?sync_on_commit=false").unwrap(),
            Backend::Rocks {
                path: "/var/lib/x".into(),
                sync_on_commit: Some(false),
                create_if_missing: None
            }
        );
        assert_eq!(
            Backend::parse("rocksdb://./data").unwrap(),
            Backend::Rocks {
                path: "./data".into(),
                sync_on_commit: None,
                create_if_missing: None
            }
        );
        assert!(matches!(
            Backend::parse("sqlite://a.db").unwrap(),
            Backend::Sqlite { .. }
        ));
        assert!(matches!(
            Backend::parse("postgresql://u@h/db").unwrap(),
            Backend::Postgres { .. }
        ));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let err = Backend::parse("mysql://root@localhost/test").unwrap_err();
        assert!(
            matches!(&err, OpenError::UnknownScheme { scheme, .. } if scheme == "mysql"),
            "{err}"
        );
        assert!(err.to_string().contains("expected memory://"), "{err}");

        let err = Backend::parse("just-a-path").unwrap_err();
        assert!(matches!(err, OpenError::UnknownScheme { .. }), "{err}");

        let err = Backend::parse("rocksdb://").unwrap_err();
        assert!(err.to_string().contains("path: must not be empty"), "{err}");

        let err = Backend::parse("rocksdb://./d?sync=false").unwrap_err();
        assert!(
            matches!(&err, OpenError::BadOption { option, .. } if option == "sync"),
            "{err}"
        );

        let err = Backend::parse("rocksdb://./d?sync_on_commit=maybe").unwrap_err();
        assert!(
            err.to_string().contains("\"maybe\" is not true or false"),
            "{err}"
        );

        let err = Backend::parse("memory://?x=1").unwrap_err();
        assert!(err.to_string().contains("takes no options"), "{err}");
    }

    #[test]
    fn passwords_never_appear_in_errors() {
        let err = Backend::parse("mysql://root:hunter2@localhost/test").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[cfg(not(feature = "rocksdb"))]
    #[tokio::test]
    async fn a_backend_left_out_says_so() {
        let err = open_url("rocksdb://./never-created").await.unwrap_err();
        assert!(
            err.to_string().contains("not built in") && err.to_string().contains("\"rocksdb\""),
            "{err}"
        );
        assert!(!std::path::Path::new("./never-created").exists());
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn sqlite_left_out_says_so() {
        let err = open_url("sqlite://./never-created.db").await.unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::NotBuiltIn {
                    feature: "sqlite",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn postgres_left_out_says_so() {
        let err = open_url("postgres://u:secret@127.0.0.1/db")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                OpenError::NotBuiltIn {
                    feature: "postgres",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
