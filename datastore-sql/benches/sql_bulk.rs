//! Bulk load through the facade against the engine's own bulk mechanism,
//! on SQLite and PostgreSQL.
//!
//! ```text
//! cargo bench -p datastore-sql --bench sql_bulk
//! # records per round, records per batch, rounds:
//! BULK_RECORDS=1000000 BULK_BATCH=5000 BULK_ROUNDS=3 cargo bench -p datastore-sql --bench sql_bulk
//! # one backend:
//! BULK_BACKENDS=sqlite cargo bench -p datastore-sql --bench sql_bulk
//! ```
//!
//! Each round loads `BULK_RECORDS` new profiles of about 300 bytes of JSON
//! into an empty store, `BULK_BATCH` at a time, once through the facade
//! (`Datastore::apply` of a batch of `MustNotExist` puts: what `import` and
//! `copy` write) and once by hand (the raw side): per batch one
//! transaction that takes the store's lock and head, validates and encodes
//! each profile, inserts the rows with their index columns in multi-row
//! `INSERT`s, inserts one history version (the record's body again: every
//! editable kind keeps history by default) and one feed row per record the
//! same way, and stores the new head. Rounds alternate facade and raw so a busy machine slows both
//! alike; the table gives the median of each and their ratio.

use std::time::{Duration, Instant};

use datastore_core::Record;
use datastore_sql::SqlConfig;
use sqlx::Connection;

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{env, median};
#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
use facade_ops::{bulk_load, bulk_profile};

/// Rows per multi-row `INSERT` on the raw side (7 parameters each).
const ROWS_PER_INSERT: usize = 1_000;

/// Where a round writes: a fresh SQLite file or a fresh PostgreSQL schema.
enum Target {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

impl Target {
    fn config(&self) -> SqlConfig {
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

    async fn drop_schema(&self) {
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

async fn fresh(backend: &str, pg_url: &str, tag: &str) -> Target {
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

/// Loads through the facade; returns the time the writes took.
async fn facade_round(target: &Target, records: usize, batch: usize) -> Duration {
    let ds = datastore_sql::open(target.config()).await.unwrap();
    bulk_load(&*ds, records, batch).await
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

/// Loads by hand; returns the time the writes took.
async fn raw_round(target: &Target, records: usize, batch: usize) -> Duration {
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
    let start = Instant::now();
    let mut head: i64 = 0;
    let mut i = 0;
    while i < records {
        let now = datastore_core::commit_time().timestamp_micros();
        let mut rows = Vec::new();
        let mut feed = Vec::new();
        let mut history = Vec::new();
        for n in i..(i + batch).min(records) {
            let p = bulk_profile(n);
            p.validate().unwrap();
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
        for (table, cols, rows) in [
            ("ds_profiles", record_cols, rows),
            ("ds_history", history_cols, history),
            ("ds_changes", feed_cols, feed),
        ] {
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
            write_batch!(tx);
        }
        i += batch;
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

fn main() {
    let records = env("BULK_RECORDS", 100_000);
    let batch = env("BULK_BATCH", 5_000);
    let rounds = env("BULK_ROUNDS", 3).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg_url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let only = std::env::var("BULK_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let mut backends = vec!["sqlite"];
    backends.retain(|b| only.contains(b));
    if only.contains("postgres") && rt.block_on(sqlx::PgConnection::connect(&pg_url)).is_ok() {
        backends.push("postgres");
    } else {
        eprintln!(
            "no PostgreSQL at {}: SQLite only",
            datastore_sql::redact_url(&pg_url)
        );
    }
    println!("{records} profiles per round, {batch} per batch, {rounds} rounds");
    println!(
        "{:<10} {:>14} {:>14} {:>12}",
        "backend", "facade rec/s", "raw rec/s", "facade/raw"
    );
    for backend in backends {
        let (mut facade, mut raw) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            rt.block_on(async {
                let t = fresh(backend, &pg_url, &format!("f{round}")).await;
                let took = facade_round(&t, records, batch).await;
                facade.push(records as f64 / took.as_secs_f64());
                t.drop_schema().await;
                let t = fresh(backend, &pg_url, &format!("r{round}")).await;
                let took = raw_round(&t, records, batch).await;
                raw.push(records as f64 / took.as_secs_f64());
                t.drop_schema().await;
            });
            eprintln!(
                "{backend} round {round}: facade {:.0}/s, raw {:.0}/s",
                facade[round], raw[round]
            );
        }
        let (f, r) = (median(facade), median(raw));
        println!("{backend:<10} {f:>14.0} {r:>14.0} {:>12.2}", f / r);
    }
}
