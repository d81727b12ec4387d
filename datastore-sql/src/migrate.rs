//! The embedded migrations: running them, and reading where a database
//! stands without changing it (for read-only opens, `migrate = false`, and
//! `datastore migrate --dry-run`).

use datastore_core::{Error, Result, StoreName};

use crate::driver::{Pools, db_error};

/// The table recording this project's migrations (never `_sqlx_migrations`,
/// so a host service's own migrations cannot collide).
pub const MIGRATIONS_TABLE: &str = "datastore_migrations";

pub(crate) fn migrator(pools: &Pools) -> sqlx::migrate::Migrator {
    migrator_for(matches!(pools, Pools::Sqlite { .. }))
}

fn migrator_for(sqlite: bool) -> sqlx::migrate::Migrator {
    let mut migrator = if sqlite {
        sqlx::migrate!("./migrations/sqlite")
    } else {
        sqlx::migrate!("./migrations/postgres")
    };
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.set_locking(true);
    migrator
}

/// One migration this build knows, and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// Its version (a date-like number).
    pub version: i64,
    /// What it does.
    pub description: String,
    /// True when the database has it.
    pub applied: bool,
}

/// Where a database stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaStatus {
    /// Every migration this build knows, in order.
    pub migrations: Vec<MigrationState>,
    /// False when the database has no `datastore_migrations` table: it is
    /// new, or not a datastore's.
    pub ours: bool,
    /// Tables in the database (its current schema, on PostgreSQL) that are
    /// not this project's: a migration there shares the database.
    pub other_tables: Vec<String>,
}

impl SchemaStatus {
    /// The migrations the database does not have yet.
    pub fn pending(&self) -> impl Iterator<Item = &MigrationState> {
        self.migrations.iter().filter(|m| !m.applied)
    }
}

/// Every migration this build knows, none applied (a database not made yet).
pub(crate) fn known(sqlite: bool) -> Vec<MigrationState> {
    migrator_for(sqlite)
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| MigrationState {
            version: m.version,
            description: m.description.to_string(),
            applied: false,
        })
        .collect()
}

/// Runs pending migrations under sqlx's migration lock (an advisory lock on
/// PostgreSQL, so two processes opening at once is safe).
pub(crate) async fn run(pools: &Pools, shown: &str) -> Result<()> {
    let migrator = migrator(pools);
    let result = match pools {
        Pools::Sqlite { writer, .. } => migrator.run(writer).await,
        Pools::Postgres(pool) => migrator.run(pool).await,
    };
    result.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => newer(shown, v),
        sqlx::migrate::MigrateError::Execute(e) => db_error(StoreName::Datastore, shown, e),
        other => Error::Backend {
            store: StoreName::Datastore,
            key: shown.to_string(),
            source: Box::new(other),
        },
    })
}

fn newer(shown: &str, version: i64) -> Error {
    Error::Unsupported {
        store: StoreName::Datastore,
        key: shown.to_string(),
        operation: format!(
            "opening a database with schema migration {version}, which this build does not know: \
             it was migrated by a newer version of datastore-sql"
        ),
    }
}

/// Reads where a database stands, changing nothing.
pub(crate) async fn status(pools: &Pools, shown: &str) -> Result<SchemaStatus> {
    let err = |e| db_error(StoreName::Datastore, shown, e);
    let tables_sql = match pools {
        Pools::Sqlite { .. } => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Pools::Postgres(_) => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()"
        }
    };
    let tables: Vec<String> = pools
        .fetch_all(tables_sql, &[])
        .await
        .map_err(err)?
        .iter()
        .map(|r| r.text(0))
        .collect::<std::result::Result<_, _>>()
        .map_err(err)?;
    let ours = tables.iter().any(|t| t == MIGRATIONS_TABLE);
    let other_tables = tables
        .iter()
        .filter(|t| *t != MIGRATIONS_TABLE && !t.starts_with("ds_"))
        .cloned()
        .collect();
    let mut applied = Vec::new();
    if ours {
        let rows = pools
            .fetch_all(
                &format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version"),
                &[],
            )
            .await
            .map_err(err)?;
        for r in rows {
            applied.push(r.int(0).map_err(err)?);
        }
    }
    let migrator = migrator(pools);
    if let Some(v) = applied.iter().find(|v| !migrator.version_exists(**v)) {
        return Err(newer(shown, *v));
    }
    let migrations = known(matches!(pools, Pools::Sqlite { .. }))
        .into_iter()
        .map(|m| MigrationState {
            applied: applied.contains(&m.version),
            ..m
        })
        .collect();
    Ok(SchemaStatus {
        migrations,
        ours,
        other_tables,
    })
}

/// For a store opened without migrating: refuses a database that is not a
/// datastore's, or that needs migrations, naming them.
pub(crate) async fn require_current(pools: &Pools, shown: &str) -> Result<()> {
    let status = status(pools, shown).await?;
    if !status.ours {
        return Err(Error::NotFound {
            store: StoreName::Datastore,
            key: format!(
                "{shown} (no datastore here: the database has no {MIGRATIONS_TABLE} table)"
            ),
        });
    }
    let pending: Vec<String> = status
        .pending()
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if !pending.is_empty() {
        return Err(Error::Unsupported {
            store: StoreName::Datastore,
            key: shown.to_string(),
            operation: format!(
                "opening without migrating a database that needs migrations ({}); run `datastore migrate` on it first",
                pending.join(", ")
            ),
        });
    }
    Ok(())
}
