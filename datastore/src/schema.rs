//! Where a store's schema stands, read without changing anything: what
//! `datastore migrate --dry-run` shows, and what `migrate` does first.

use datastore_core::redact_url;

use crate::config::Config;
use crate::error::OpenError;
use crate::open::Backend;

/// Where a store's schema stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaReport {
    /// The backend's name.
    pub backend: &'static str,
    /// False when there is no store at the URL yet (opening would create
    /// it).
    pub exists: bool,
    /// False when something is there that is not a datastore's (an SQLite
    /// file or database without our migrations table).
    pub ours: bool,
    /// Migrations (or schema steps) already applied, oldest first.
    pub applied: Vec<String>,
    /// What opening or `datastore migrate` would do, in order.
    pub pending: Vec<String>,
    /// Tables beside ours that belong to someone else.
    pub other_tables: Vec<String>,
}

/// Reads where the store `config` names stands, changing nothing (an
/// embedded store is opened read-only; a missing one is reported, not
/// created).
#[allow(unused_variables)]
pub async fn schema_report(config: &Config) -> Result<SchemaReport, OpenError> {
    let shown = redact_url(&config.url);
    match Backend::parse(&config.url)? {
        Backend::Remote { .. } => Err(OpenError::Store(datastore_core::Error::Unsupported {
            store: datastore_core::StoreName::Datastore,
            key: shown,
            operation:
                "schema migrations through a remote server (migrate its own store on the server)"
                    .into(),
        })),
        Backend::Memory => Ok(SchemaReport {
            backend: "memory",
            exists: true,
            ours: true,
            ..SchemaReport::default()
        }),
        Backend::Rocks { path, .. } => {
            #[cfg(feature = "rocksdb")]
            {
                let plan =
                    crate::open::off_thread(&shown, move || datastore_rocks::schema_plan(&path))
                        .await?;
                let current = datastore_rocks::migrations::CURRENT;
                Ok(match plan {
                    None => SchemaReport {
                        backend: "rocksdb",
                        pending: vec![format!("create the database with schema version {current}")],
                        ..SchemaReport::default()
                    },
                    Some(plan) => SchemaReport {
                        backend: "rocksdb",
                        exists: true,
                        ours: true,
                        applied: plan
                            .found
                            .map(|v| vec![format!("schema version {v}")])
                            .unwrap_or_default(),
                        pending: plan.describe(),
                        other_tables: Vec::new(),
                    },
                })
            }
            #[cfg(not(feature = "rocksdb"))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "RocksDB",
                feature: "rocksdb",
            })
        }
        Backend::Sqlite { url } | Backend::Postgres { url } => {
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            {
                let sql = crate::open::sql_config(config, url);
                let status = datastore_sql::schema_status(&sql).await?;
                let line =
                    |m: &datastore_sql::MigrationState| format!("{} {}", m.version, m.description);
                Ok(SchemaReport {
                    backend: if config.url.starts_with("sqlite:") {
                        "sqlite"
                    } else {
                        "postgres"
                    },
                    exists: status.ours || !status.other_tables.is_empty(),
                    ours: status.ours,
                    applied: status
                        .migrations
                        .iter()
                        .filter(|m| m.applied)
                        .map(line)
                        .collect(),
                    pending: status.pending().map(line).collect(),
                    other_tables: status.other_tables,
                })
            }
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            Err(OpenError::NotBuiltIn {
                url: shown,
                backend: "SQL",
                feature: "sqlite",
            })
        }
    }
}
