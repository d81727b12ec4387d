//! Connecting: the URL's options checked, one connection made first so a
//! refused connection, a missing database or a bad password is reported at
//! once and plainly (not as a pool timeout ten seconds later), then the
//! pools.

use std::str::FromStr;

use datastore_core::{Error, Result, StoreName};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::SqlConfig;
use crate::driver::Pools;

/// The query options a PostgreSQL URL may carry (those sqlx reads).
const POSTGRES_OPTIONS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Refuses query options sqlx would ignore (it only logs them), naming the
/// first.
fn check_postgres_options(url: &str, shown: &str) -> Result<()> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        if !POSTGRES_OPTIONS.contains(&name) && !name.starts_with("options[") {
            return Err(Error::invalid(
                StoreName::Datastore,
                shown,
                name,
                format!(
                    "unknown PostgreSQL URL option; known: {}",
                    POSTGRES_OPTIONS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Refuses a PostgreSQL schema name that is not a plain lower-case
/// identifier (letters, digits and `_`, not starting with a digit, at most
/// 63 bytes), so it can be written into SQL and `search_path` unquoted.
pub(crate) fn check_schema_name(shown: &str, name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if plain {
        return Ok(());
    }
    Err(Error::invalid(
        StoreName::Datastore,
        shown,
        "schema",
        format!("{name:?} is not a plain lower-case identifier (letters, digits, _)"),
    ))
}

/// The error for a first connection that failed: not retryable when the
/// database or the login is wrong, `Unavailable` when the server is not
/// there (yet).
fn connect_error(shown: &str, e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let reason = match code.as_str() {
            // invalid_catalog_name
            "3D000" => Some(format!("{} (create it, or name another)", db.message())),
            // invalid_password, invalid_authorization_specification
            "28P01" | "28000" => Some(db.message().to_string()),
            // invalid_schema_name
            "3F000" => Some(db.message().to_string()),
            _ => None,
        };
        if let Some(reason) = reason {
            return Error::invalid(StoreName::Datastore, shown, "url", reason);
        }
    }
    let reason = match &e {
        sqlx::Error::Io(io) => format!("cannot connect: {io}"),
        sqlx::Error::Database(db) => format!("cannot connect: {}", db.message()),
        other => format!("cannot connect: {other}"),
    };
    Error::Unavailable {
        store: StoreName::Datastore,
        key: shown.to_string(),
        source: reason.into(),
    }
}

/// Makes the pools a store of `config` uses.
pub(crate) async fn pools(config: &SqlConfig, shown: &str) -> Result<Pools> {
    let bad_url = |reason: String| Error::invalid(StoreName::Datastore, shown, "url", reason);
    let pool_error = |e: sqlx::Error| Error::Unavailable {
        store: StoreName::Datastore,
        key: shown.to_string(),
        source: format!("cannot connect: {e}").into(),
    };
    if config.url.starts_with("sqlite:") {
        let mut opts = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| bad_url(e.to_string()))?
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(config.connect_timeout);
        if config.read_only || !config.migrate {
            let file = opts.get_filename();
            if !file.exists() {
                return Err(Error::NotFound {
                    store: StoreName::Datastore,
                    key: format!("{shown} (no such file: {})", file.display()),
                });
            }
        }
        if !config.read_only && !config.migrate {
            // Look before touching: switching a file to WAL rewrites its
            // header, so a file that is not a current datastore is refused
            // through a read-only connection first, and left as it was.
            let look = opts.clone().read_only(true).create_if_missing(false);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(config.connect_timeout)
                .connect_with(look)
                .await
                .map_err(|e| connect_error(shown, e))?;
            let probe = Pools::Sqlite {
                writer: pool.clone(),
                reader: pool.clone(),
            };
            let current = crate::migrate::require_current(&probe, shown).await;
            pool.close().await;
            current?;
        }
        if config.read_only {
            opts = opts.read_only(true).create_if_missing(false);
        } else {
            opts = opts
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
        }
        // The first connection says plainly what is wrong with the file.
        let first = opts.connect().await.map_err(|e| connect_error(shown, e))?;
        let _ = sqlx::Connection::close(first).await;
        let reader = SqlitePoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .test_before_acquire(false)
            .acquire_timeout(config.connect_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(pool_error)?;
        let writer = if config.read_only {
            reader.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(config.connect_timeout)
                .connect_with(opts)
                .await
                .map_err(pool_error)?
        };
        return Ok(Pools::Sqlite { writer, reader });
    }
    if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
        check_postgres_options(&config.url, shown)?;
        let mut opts =
            PgConnectOptions::from_str(&config.url).map_err(|e| bad_url(e.to_string()))?;
        if let Some(schema) = &config.schema {
            check_schema_name(shown, schema)?;
            opts = opts.options([("search_path", schema.as_str())]);
        }
        if let Some(t) = config.statement_timeout {
            opts = opts.options([("statement_timeout", format!("{}", t.as_millis()))]);
        }
        if config.read_only {
            opts = opts.options([("default_transaction_read_only", "on")]);
        }
        let first = tokio::time::timeout(config.connect_timeout, opts.connect())
            .await
            .map_err(|_| Error::Unavailable {
                store: StoreName::Datastore,
                key: shown.to_string(),
                source: format!(
                    "cannot connect: no answer within {:?}",
                    config.connect_timeout
                )
                .into(),
            })?
            .map_err(|e| connect_error(shown, e))?;
        let _ = sqlx::Connection::close(first).await;
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(2))
            .test_before_acquire(false)
            .acquire_timeout(config.connect_timeout)
            .connect_with(opts)
            .await
            .map_err(pool_error)?;
        return Ok(Pools::Postgres(pool));
    }
    Err(bad_url(
        "unknown scheme; expected sqlite://PATH or postgres://HOST/DB".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::check_postgres_options;

    #[test]
    fn unknown_postgres_options_are_refused_by_name() {
        assert!(
            check_postgres_options("postgres://u@h/db?sslmode=require&application_name=x", "u")
                .is_ok()
        );
        assert!(check_postgres_options("postgres://u@h/db?options[search_path]=s", "u").is_ok());
        let err = check_postgres_options("postgres://u@h/db?bogus=1", "shown").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bogus") && text.contains("unknown"), "{text}");
    }
}
