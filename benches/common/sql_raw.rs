//! The raw SQL bulk load the SQL bulk benches measure the facade against:
//! per batch one transaction that takes the store's lock and head, encodes
//! each profile, inserts the rows with their index columns, one history
//! version and one feed row per record (SQLite: multi-row `INSERT`s of
//! 1,000 rows; PostgreSQL: one `INSERT ... SELECT FROM UNNEST` of one array
//! a column per table, or multi-row `INSERT`s with `BULK_PG_VALUES` set),
//! and stores the new head. Included by path (`#[path]`) from the bulk
//! benches.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use datastore_core::Profile;
use datastore_sql::SqlConfig;
use sqlx::Connection;

/// Rows per multi-row `INSERT` on the raw side (7 parameters each).
const ROWS_PER_INSERT: usize = 1_000;

/// Where a round writes: a fresh SQLite file or a fresh PostgreSQL schema.
pub enum Target {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl Target {
    pub fn config(&self) -> SqlConfig {
        match self {
            Target::Sqlite(dir) => {
                SqlConfig::new(format!("sqlite://{}", dir.path().join("bulk.db").display()))
            }
            Target::Postgres { url, schema } => {
                let mut c = SqlConfig::new(url);
                c.schema = Some(schema.clone());
                c
            }
        }
    }

    pub async fn drop_schema(&self) {
        if let Target::Postgres { url, schema } = self {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

pub async fn fresh(backend: &str, pg_url: &str, tag: &str) -> Target {
    match backend {
        "sqlite" => Target::Sqlite(tempfile::tempdir().unwrap()),
        _ => {
            let schema = format!("ds_bulk_{}_{tag}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(pg_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            Target::Postgres {
                url: pg_url.to_string(),
                schema,
            }
        }
    }
}

/// Binds one value of either database's query.
macro_rules! bind_all {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                Val::Int(i) => q.bind(i),
                Val::Text(s) => q.bind(Some(s)),
                Val::Null => q.bind(None::<String>),
            };
        }
        q
    }};
}

enum Val {
    Int(i64),
    Text(String),
    Null,
}

/// `INSERT INTO table (cols) VALUES (...), (...)` with `?` or `$n`; on
/// PostgreSQL the `body` column (the fifth of a record table) is `jsonb`.
fn multi_insert(postgres: bool, table: &str, cols: &str, width: usize, rows: usize) -> String {
    let mut n = 0;
    let tuples: Vec<String> = (0..rows)
        .map(|_| {
            let params: Vec<String> = (0..width)
                .map(|col| {
                    n += 1;
                    match (postgres, col == 4 && table.starts_with("ds_profiles")) {
                        (true, true) => format!("${n}::jsonb"),
                        (true, false) => format!("${n}"),
                        _ => "?".to_string(),
                    }
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!("INSERT INTO {table} ({cols}) VALUES {}", tuples.join(", "))
}

/// Loads `profiles` by hand, `batch` to a transaction; returns the time
/// the writes took (the profiles' making or reading included, the schema's
/// creation not).
pub async fn timed_load(
    target: &Target,
    batch: usize,
    mut profiles: impl Iterator<Item = Profile>,
) -> Duration {
    // The facade creates the schema (migrations); the raw side writes into it.
    datastore_sql::open(target.config())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let postgres = matches!(target, Target::Postgres { .. });
    let sqlite = match target {
        Target::Sqlite(dir) => Some(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(dir.path().join("bulk.db"))
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
                )
                .await
                .unwrap(),
        ),
        Target::Postgres { .. } => None,
    };
    let pg = match target {
        Target::Postgres { url, schema } => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_with(
                    url.parse::<sqlx::postgres::PgConnectOptions>()
                        .unwrap()
                        .options([("search_path", schema.as_str())]),
                )
                .await
                .unwrap(),
        ),
        Target::Sqlite(_) => None,
    };
    let record_cols = "key, revision, stored_created, stored_updated, body, username, created";
    let feed_cols = "seq, kind, key, op, revision, at, parent";
    let history_cols = "kind, key, revision, op, at, actor, body";
    let unnest = std::env::var("BULK_PG_VALUES").is_err();
    let start = Instant::now();
    let mut head: i64 = 0;
    loop {
        let chunk: Vec<Profile> = profiles.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let now = datastore_core::commit_time().timestamp_micros();
        let mut rows = Vec::new();
        let mut feed = Vec::new();
        let mut history = Vec::new();
        for p in chunk {
            let body = serde_json::to_string(&p).unwrap();
            head += 1;
            history.push([
                Val::Text("profiles".into()),
                Val::Text(p.id.as_str().to_string()),
                Val::Int(head),
                Val::Text("put".into()),
                Val::Int(now),
                Val::Null,
                Val::Text(body.clone()),
            ]);
            rows.push([
                Val::Text(p.id.as_str().to_string()),
                Val::Int(head),
                Val::Int(now),
                Val::Int(now),
                Val::Text(body),
                Val::Text(p.username.clone()),
                Val::Int(p.created.timestamp_micros()),
            ]);
            feed.push([
                Val::Int(head),
                Val::Text("profiles".into()),
                Val::Text(p.id.as_str().to_string()),
                Val::Text("put".into()),
                Val::Int(head),
                Val::Int(now),
                Val::Null,
            ]);
        }
        let mut statements: Vec<(String, Vec<Val>)> = Vec::new();
        let mut arrays: Vec<(String, Vec<Column>)> = Vec::new();
        for (table, cols, rows) in [
            ("ds_profiles", record_cols, rows),
            ("ds_history", history_cols, history),
            ("ds_changes", feed_cols, feed),
        ] {
            if postgres && unnest {
                arrays.push((unnest_insert(table, cols), columns_of(rows)));
                continue;
            }
            for chunk in drain_chunks(rows, ROWS_PER_INSERT) {
                let sql = multi_insert(postgres, table, cols, 7, chunk.len() / 7);
                statements.push((sql, chunk));
            }
        }
        let set_head = if postgres {
            "UPDATE ds_meta SET value = $1 WHERE name = 'head'"
        } else {
            "UPDATE ds_meta SET value = ? WHERE name = 'head'"
        };
        // The batch's statements and the head, then the commit.
        macro_rules! write_batch {
            ($tx:ident) => {{
                for (sql, vals) in statements {
                    bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), vals)
                        .execute(&mut *$tx)
                        .await
                        .unwrap();
                }
                sqlx::query(set_head)
                    .bind(head)
                    .execute(&mut *$tx)
                    .await
                    .unwrap();
                $tx.commit().await.unwrap();
            }};
        }
        if let Some(pool) = &sqlite {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            write_batch!(tx);
        } else if let Some(pool) = &pg {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT value FROM ds_meta WHERE name = 'head' FOR UPDATE")
                .execute(&mut *tx)
                .await
                .unwrap();
            for (sql, columns) in arrays {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for c in columns {
                    q = match c {
                        Column::Ints(v) => q.bind(v),
                        Column::Texts(v) => q.bind(v),
                    };
                }
                q.execute(&mut *tx).await.unwrap();
            }
            write_batch!(tx);
        }
    }
    start.elapsed()
}

/// Splits rows of 7 values into flat chunks of `rows` rows.
fn drain_chunks(rows: Vec<[Val; 7]>, per: usize) -> Vec<Vec<Val>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for row in rows {
        cur.extend(row);
        if cur.len() == per * 7 {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One column of a batch, bound as one PostgreSQL array.
enum Column {
    Ints(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
}

/// Rows of 7 values as 7 columns.
fn columns_of(rows: Vec<[Val; 7]>) -> Vec<Column> {
    let mut columns: Vec<Column> = match rows.first() {
        Some(first) => first
            .iter()
            .map(|v| match v {
                Val::Int(_) => Column::Ints(Vec::with_capacity(rows.len())),
                _ => Column::Texts(Vec::with_capacity(rows.len())),
            })
            .collect(),
        None => return Vec::new(),
    };
    for row in rows {
        for (column, v) in columns.iter_mut().zip(row) {
            match (column, v) {
                (Column::Ints(c), Val::Int(i)) => c.push(Some(i)),
                (Column::Texts(c), Val::Text(s)) => c.push(Some(s)),
                (Column::Texts(c), Val::Null) => c.push(None),
                _ => unreachable!("a column holds one type"),
            }
        }
    }
    columns
}

/// `INSERT INTO table (cols) SELECT ... FROM UNNEST($1::type[], ...)`: a
/// whole batch in one statement of one array a column, PostgreSQL's bulk
/// insert short of `COPY`.
fn unnest_insert(table: &str, cols: &str) -> String {
    let names: Vec<&str> = cols.split(", ").collect();
    let types: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = match *c {
                "revision" | "stored_created" | "stored_updated" | "created" | "seq" | "at" => {
                    "int8"
                }
                _ => "text",
            };
            format!("${}::{ty}[]", i + 1)
        })
        .collect();
    let select: Vec<String> = names
        .iter()
        .map(|c| {
            if *c == "body" && table == "ds_profiles" {
                "body::jsonb".to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    format!(
        "INSERT INTO {table} ({cols}) SELECT {} FROM UNNEST({}) AS u({cols})",
        select.join(", "),
        types.join(", ")
    )
}
