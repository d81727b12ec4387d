//! A small adapter over the two sqlx drivers, so the engine's SQL and logic
//! are written once: statements use `?` markers (numbered `$n` for
//! PostgreSQL here), values are [`Value`]s, rows are read by position.

use datastore_core::{BoxError, Error, StoreName};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Postgres, Row as _, Sqlite, Transaction};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
    NullInt,
    NullText,
}

/// Many rows' values of one column, bound on PostgreSQL as one array
/// (`UNNEST`): a batch's rows in one statement with a parameter a column,
/// however many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Ints(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
}

impl Column {
    /// The array type PostgreSQL binds it as.
    pub(crate) fn pg_type(&self) -> &'static str {
        match self {
            Column::Ints(_) => "int8[]",
            Column::Texts(_) => "text[]",
        }
    }

    /// The value of row `i`.
    fn value(&self, i: usize) -> Value {
        match self {
            Column::Ints(v) => v[i].map_or(Value::NullInt, Value::Int),
            Column::Texts(v) => v[i].clone().map_or(Value::NullText, Value::Text),
        }
    }
}

/// Rows of equal width, held column by column (see [`Column`]). A value
/// of another type than its column's is not bound: the statement is
/// refused instead (see [`Tx::fetch_columns`]).
#[derive(Debug, Default)]
pub(crate) struct Columns(Vec<Column>, Option<String>);

impl Columns {
    /// Columns for rows shaped like `first` (each value's type decides its
    /// column's), with room for `rows`.
    pub(crate) fn shaped_like(first: &[Value], rows: usize) -> Self {
        Columns(
            first
                .iter()
                .map(|v| match v {
                    Value::Int(_) | Value::NullInt => Column::Ints(Vec::with_capacity(rows)),
                    Value::Text(_) | Value::NullText => Column::Texts(Vec::with_capacity(rows)),
                })
                .collect(),
            None,
        )
    }

    /// Appends a row; a value not of its column's type is remembered as
    /// the columns' error.
    pub(crate) fn push(&mut self, row: impl IntoIterator<Item = Value>) {
        for (i, (column, value)) in self.0.iter_mut().zip(row).enumerate() {
            match (column, value) {
                (Column::Ints(c), Value::Int(v)) => c.push(Some(v)),
                (Column::Ints(c), Value::NullInt) => c.push(None),
                (Column::Texts(c), Value::Text(v)) => c.push(Some(v)),
                (Column::Texts(c), Value::NullText) => c.push(None),
                // Named by position and type only: a value may be a body.
                (column, _) => {
                    self.1.get_or_insert_with(|| {
                        format!(
                            "column {} is {} but a row gave another type",
                            i + 1,
                            column.pg_type()
                        )
                    });
                }
            }
        }
    }

    /// Whether it has no columns yet.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of row `i`.
    pub(crate) fn row(&self, i: usize) -> Vec<Value> {
        self.0.iter().map(|c| c.value(i)).collect()
    }

    /// `UNNEST(?::type[], ...)` over these columns.
    pub(crate) fn unnest(&self) -> String {
        let arrays: Vec<String> = self
            .0
            .iter()
            .map(|c| format!("CAST(? AS {})", c.pg_type()))
            .collect();
        format!("UNNEST({})", arrays.join(", "))
    }
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// How the JSON body is bound in an insert or update.
    pub(crate) fn body_param(self) -> &'static str {
        match self {
            Dialect::Sqlite => "?",
            Dialect::Postgres => "CAST(? AS JSONB)",
        }
    }

    /// How the JSON body is selected (as text).
    pub(crate) fn body_column(self) -> &'static str {
        match self {
            Dialect::Sqlite => "body",
            Dialect::Postgres => "body::text",
        }
    }

    fn sql(self, sql: &str) -> String {
        match self {
            Dialect::Sqlite => sql.to_string(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

macro_rules! bound {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query(AssertSqlSafe($sql));
        for a in $args {
            q = match a {
                Value::Int(v) => q.bind(*v),
                Value::Text(s) => q.bind(s.as_str()),
                Value::NullInt => q.bind(None::<i64>),
                Value::NullText => q.bind(None::<String>),
            };
        }
        q
    }};
}

/// The connection pools.
#[derive(Debug, Clone)]
pub(crate) enum Pools {
    /// SQLite: one writer connection, a pool of readers.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    /// PostgreSQL: one pool.
    Postgres(PgPool),
}

/// A row, read by position.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    pub(crate) fn int(&self, i: usize) -> Result<i64, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }

    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }

    pub(crate) fn text(&self, i: usize) -> Result<String, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }

    /// A text column borrowed from the row.
    pub(crate) fn str(&self, i: usize) -> Result<&str, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }

    /// A nullable text column borrowed from the row.
    pub(crate) fn opt_str(&self, i: usize) -> Result<Option<&str>, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }

    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, sqlx::Error> {
        match self {
            Row::Sqlite(r) => r.try_get(i),
            Row::Postgres(r) => r.try_get(i),
        }
    }
}

impl Pools {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs a read on the reader pool.
    pub(crate) async fn fetch_all(
        &self,
        sql: &str,
        args: &[Value],
    ) -> Result<Vec<Row>, sqlx::Error> {
        let sql = self.dialect().sql(sql);
        Ok(match self {
            Pools::Sqlite { reader, .. } => bound!(sql, args)
                .fetch_all(reader)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Pools::Postgres(pool) => bound!(sql, args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    /// Runs a read expecting at most one row.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on the SQLite writer
    /// (so it never upgrades from a read lock and fails busy).
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Pools over one read transaction, opened now: a single connection
    /// that begins a transaction as it connects (`REPEATABLE READ READ
    /// ONLY` on PostgreSQL, a deferred read on SQLite) and reads the head
    /// at once, which fixes the transaction's snapshot. Every read through
    /// the pools sees that moment. Should the connection be lost, a new
    /// one is refused rather than given a later snapshot.
    pub(crate) async fn snapshot(&self) -> Result<Pools, sqlx::Error> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        const LOST: &str = "the snapshot's connection was lost; its moment cannot be read again (take a new snapshot)";
        const HEAD: &str = "SELECT value FROM ds_meta WHERE name = 'head'";
        let opened = Arc::new(AtomicBool::new(false));
        Ok(match self {
            Pools::Postgres(pool) => {
                let options = (*pool.connect_options()).clone();
                let snapshot = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        let opened = opened.clone();
                        Box::pin(async move {
                            if opened.swap(true, Ordering::AcqRel) {
                                return Err(sqlx::Error::Protocol(LOST.into()));
                            }
                            sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query(HEAD).execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                Pools::Postgres(snapshot)
            }
            Pools::Sqlite { reader, .. } => {
                let options = (*reader.connect_options()).clone().read_only(true);
                let snapshot = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        let opened = opened.clone();
                        Box::pin(async move {
                            if opened.swap(true, Ordering::AcqRel) {
                                return Err(sqlx::Error::Protocol(LOST.into()));
                            }
                            sqlx::raw_sql("BEGIN").execute(&mut *conn).await?;
                            sqlx::query(HEAD).execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                Pools::Sqlite {
                    writer: snapshot.clone(),
                    reader: snapshot,
                }
            }
        })
    }

    /// Sets the `datastore_pool_connections` gauges: connections open and
    /// in use, and open and idle, per pool.
    pub(crate) fn sample_metrics(&self) {
        let sample = |pool: &'static str, size: u32, idle: usize| {
            let idle = idle as f64;
            metrics::gauge!("datastore_pool_connections", "pool" => pool, "state" => "in_use")
                .set((size as f64 - idle).max(0.0));
            metrics::gauge!("datastore_pool_connections", "pool" => pool, "state" => "idle")
                .set(idle);
        };
        match self {
            Pools::Sqlite { writer, reader } => {
                sample("sqlite_reader", reader.size(), reader.num_idle());
                sample("sqlite_writer", writer.size(), writer.num_idle());
            }
            Pools::Postgres(pool) => sample("postgres", pool.size(), pool.num_idle()),
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// A write transaction; dropped without `commit` it rolls back.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// The database this transaction is on.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Vec<Row>, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => bound!(Dialect::Sqlite.sql(sql), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Tx::Postgres(tx) => bound!(Dialect::Postgres.sql(sql), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<Row>, sqlx::Error> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// Runs a PostgreSQL statement whose first parameters are `columns`,
    /// each one array, then `tail`'s values.
    pub(crate) async fn fetch_columns(
        &mut self,
        sql: &str,
        columns: &Columns,
        tail: &[Value],
    ) -> Result<Vec<Row>, sqlx::Error> {
        let Tx::Postgres(tx) = self else {
            return Err(sqlx::Error::InvalidArgument(
                "array parameters are PostgreSQL's".into(),
            ));
        };
        if let Some(mismatch) = &columns.1 {
            return Err(sqlx::Error::InvalidArgument(mismatch.clone()));
        }
        let mut q = sqlx::query(AssertSqlSafe(Dialect::Postgres.sql(sql)));
        for c in &columns.0 {
            q = match c {
                Column::Ints(v) => q.bind(v.as_slice()),
                Column::Texts(v) => q.bind(v.as_slice()),
            };
        }
        for a in tail {
            q = match a {
                Value::Int(v) => q.bind(*v),
                Value::Text(s) => q.bind(s.as_str()),
                Value::NullInt => q.bind(None::<i64>),
                Value::NullText => q.bind(None::<String>),
            };
        }
        Ok(q.fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(Row::Postgres)
            .collect())
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => bound!(Dialect::Sqlite.sql(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => bound!(Dialect::Postgres.sql(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// Maps a driver error to the datastore's, naming the store and key.
/// Lost connections, pool timeouts, lock timeouts, cancelled statements and
/// serialization failures are `Unavailable` (retryable).
pub(crate) fn db_error(store: StoreName, key: impl Into<String>, e: sqlx::Error) -> Error {
    let key = key.into();
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // 40001 serialization, 40P01 deadlock, 55P03 lock, 57014 cancelled,
            // 57P0x shutdown; SQLite 5 / 6 busy / locked.
            matches!(
                code.as_str(),
                "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "5" | "6"
            ) || db.message().contains("database is locked")
        }
        _ => false,
    };
    if transient {
        return Error::Unavailable {
            store,
            key,
            source: Box::new(e),
        };
    }
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::AlreadyExists { store, key }
        }
        e @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => Error::Corrupt {
            store,
            key,
            reason: e.to_string(),
        },
        e => Error::Backend {
            store,
            key,
            source: Box::new(e) as BoxError,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_hold_rows_and_refuse_a_value_of_another_type_without_showing_it() {
        let first = [Value::Int(1), Value::Text("a".into()), Value::NullText];
        let mut columns = Columns::shaped_like(&first, 2);
        columns.push(first.clone());
        columns.push([
            Value::NullInt,
            Value::Text("b".into()),
            Value::Text("c".into()),
        ]);
        assert_eq!(
            columns.row(1),
            vec![
                Value::NullInt,
                Value::Text("b".into()),
                Value::Text("c".into())
            ]
        );
        assert_eq!(
            columns.unnest(),
            "UNNEST(CAST(? AS int8[]), CAST(? AS text[]), CAST(? AS text[]))"
        );
        assert!(columns.1.is_none());
        columns.push([
            Value::Text("secret body".into()),
            Value::Text("d".into()),
            Value::NullText,
        ]);
        let refused = columns
            .1
            .as_deref()
            .expect("a text in an int8 column is refused");
        assert!(refused.contains("column 1 is int8[]"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }
}
