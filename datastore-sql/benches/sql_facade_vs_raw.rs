//! The facade against hand-written sqlx queries doing the same work, on
//! SQLite and PostgreSQL, in one process over one database each.
//!
//! ```text
//! cargo bench -p datastore-sql --bench sql_facade_vs_raw
//! ```
//!
//! A last group reads pages of 100 runs at depths 0, 10,000, 300,000 and
//! 900,000 (`DEEP_PAGE_DEPTH` sets the deepest) of one workflow.
//!
//! Operations: a point get of a run by id; a put of a new profile (the raw
//! side runs the same transaction: lock, head, insert the row with its index
//! columns, the feed row, the head update); a page of 100 runs of one
//! workflow, newest first. PostgreSQL comes from
//! `DATASTORE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and is skipped if none answers. Each operation runs in rounds that
//! alternate facade and raw (`BENCH_ROUNDS`, default 7; `BENCH_ROUND_MS`,
//! default 300); the table gives each side's median round and the facade's
//! throughput as a fraction of raw.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datastore_core::{Datastore, Profile, Record, Revision, Run, Versioned, WorkflowId};
use datastore_sql::SqlConfig;
use sqlx::{Connection, Row};

const RUNS: usize = 5_000;

#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
#[path = "../../benches/common/rounds.rs"]
mod rounds;
use facade_ops::{deep_pages, gets, new_profiles, pages, puts, seed_runs};
use rounds::{Measured, compare, env, print_table, time_n};

/// What the raw side needs: a pool of either kind.
#[derive(Clone)]
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Decodes a row as the facade does: the revision, both times and the
/// JSON body into a `Versioned` run.
fn decode_row(revision: i64, created: i64, updated: i64, body: &str) -> Versioned<Run> {
    let time = |t| chrono::DateTime::from_timestamp_micros(t).unwrap();
    Versioned {
        value: serde_json::from_str(body).unwrap(),
        revision: Revision::new(revision as u64),
        created: time(created),
        updated: time(updated),
        actor: None,
    }
}

/// Runs a select of run rows on one pool and decodes every row.
macro_rules! select_runs {
    ($pool:expr, $sql:literal $(, $arg:expr)*) => {
        sqlx::query($sql)
            $(.bind($arg))*
            .fetch_all($pool)
            .await
            .unwrap()
            .iter()
            .map(|r| decode_row(r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect::<Vec<_>>()
    };
}

async fn raw_get(raw: &Raw, id: &str) -> Versioned<Run> {
    let mut rows = match raw {
        Raw::Sqlite(p) => select_runs!(
            p,
            "SELECT key, revision, stored_created, stored_updated, body FROM ds_runs WHERE key IN (?)",
            id
        ),
        Raw::Postgres(p) => select_runs!(
            p,
            "SELECT key, revision, stored_created, stored_updated, body::text FROM ds_runs WHERE key IN ($1)",
            id
        ),
    };
    rows.pop().unwrap()
}

/// A keyset page of 100: 101 rows, so the 101st tells there is a next page.
async fn raw_page(raw: &Raw, workflow: &str) -> Vec<Versioned<Run>> {
    let mut rows = match raw {
        Raw::Sqlite(p) => select_runs!(
            p,
            "SELECT key, revision, stored_created, stored_updated, body FROM ds_runs WHERE workflow_id = ? ORDER BY number DESC, key DESC LIMIT ?",
            workflow,
            101i64
        ),
        Raw::Postgres(p) => select_runs!(
            p,
            "SELECT key, revision, stored_created, stored_updated, body::text FROM ds_runs WHERE workflow_id = $1 ORDER BY number DESC, key DESC LIMIT $2",
            workflow,
            101i64
        ),
    };
    rows.truncate(100);
    rows
}

/// The statements of a put inside a write transaction, on either database
/// (the SQL text carries the database's placeholders): read the head,
/// insert the row with its index columns, its history version and the
/// feed row, store the new head. Evaluates to the new head.
macro_rules! put_statements {
    ($tx:ident, $profile:expr, $body:expr, $now:expr, $insert:literal, $version:literal, $feed:literal, $head:literal) => {{
        let p: &Profile = $profile;
        let head: i64 = sqlx::query("SELECT value FROM ds_meta WHERE name = 'head'")
            .fetch_one(&mut *$tx)
            .await
            .unwrap()
            .get(0);
        let seq = head + 1;
        sqlx::query($insert)
            .bind(p.id.as_str())
            .bind(seq)
            .bind($now)
            .bind($now)
            .bind($body)
            .bind(&p.username)
            .bind(p.created.timestamp_micros())
            .execute(&mut *$tx)
            .await
            .unwrap();
        sqlx::query($version)
            .bind(p.id.as_str())
            .bind(seq)
            .bind($now)
            .bind($body)
            .execute(&mut *$tx)
            .await
            .unwrap();
        sqlx::query($feed)
            .bind(seq)
            .bind(p.id.as_str())
            .bind(seq)
            .bind($now)
            .execute(&mut *$tx)
            .await
            .unwrap();
        sqlx::query($head)
            .bind(seq)
            .execute(&mut *$tx)
            .await
            .unwrap();
        seq
    }};
}

async fn raw_put(raw: &Raw, profile: &Profile) {
    profile.validate().unwrap();
    let body = serde_json::to_string(profile).unwrap();
    let now = datastore_core::commit_time().timestamp_micros();
    match raw {
        Raw::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await.unwrap();
            put_statements!(
                tx,
                profile,
                &body,
                now,
                "INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                "INSERT INTO ds_history (kind, key, revision, op, at, body) VALUES ('profiles', ?, ?, 'put', ?, ?)",
                "INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES (?, 'profiles', ?, 'put', ?, ?)",
                "UPDATE ds_meta SET value = ? WHERE name = 'head'"
            );
            tx.commit().await.unwrap();
        }
        Raw::Postgres(p) => {
            let mut tx = p.begin().await.unwrap();
            sqlx::query("SELECT pg_advisory_xact_lock(42)")
                .execute(&mut *tx)
                .await
                .unwrap();
            let seq = put_statements!(
                tx,
                profile,
                &body,
                now,
                "INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES ($1, $2, $3, $4, CAST($5 AS JSONB), $6, $7)",
                "INSERT INTO ds_history (kind, key, revision, op, at, body) VALUES ('profiles', $1, $2, 'put', $3, $4)",
                "INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES ($1, 'profiles', $2, 'put', $3, $4)",
                "UPDATE ds_meta SET value = $1 WHERE name = 'head'"
            );
            sqlx::query("SELECT pg_notify('bench', $1)")
                .bind(seq.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

/// Measures get, put and page on one backend, facade and raw in
/// interleaved rounds.
fn bench_backend(
    rt: &tokio::runtime::Runtime,
    name: &str,
    ds: Arc<dyn Datastore>,
    raw: Raw,
) -> Vec<Measured> {
    let workflow = WorkflowId::new("bench-workflow");
    let run_ids = seed_runs(rt, &*ds, &workflow, RUNS);
    let mut measured = Vec::new();
    let (mut fi, mut ri) = (0, 0);
    measured.push(compare(
        &format!("{name} get"),
        &mut |n| gets(rt, &*ds, &run_ids, &mut fi, n),
        &mut |n| {
            time_n(n, || {
                ri += 1;
                black_box(rt.block_on(raw_get(&raw, run_ids[ri % RUNS].as_str())));
            })
        },
    ));
    measured.push(compare(
        &format!("{name} put"),
        &mut |n| puts(rt, &*ds, n),
        &mut |n| {
            let batch = new_profiles("raw", n);
            let start = Instant::now();
            for p in &batch {
                rt.block_on(raw_put(&raw, p));
            }
            start.elapsed()
        },
    ));
    measured.push(compare(
        &format!("{name} page of 100 runs"),
        &mut |n| pages(rt, &*ds, &workflow, n),
        &mut |n| {
            time_n(n, || {
                drop(black_box(rt.block_on(raw_page(&raw, workflow.as_str()))))
            })
        },
    ));
    // Keyset pages at depth, on a workflow of their own.
    let (total, deep) = deep_pages(rt, &*ds, env("DEEP_PAGE_DEPTH", 900_000));
    print_table(
        &format!(
            "{name}: page of 100 runs of a workflow with {total} runs, newest first, by depth:"
        ),
        &deep,
    );
    measured
}

fn main() {
    let rt = rounds::runtime();
    let mut measured = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let ds = rt
        .block_on(datastore_sql::open(SqlConfig::new(&url)))
        .unwrap();
    // The raw pools get the facade's settings: no ping before each acquire,
    // WAL with a synced commit.
    let raw = rt
        .block_on(
            sqlx::sqlite::SqlitePoolOptions::new()
                .test_before_acquire(false)
                .connect_with(
                    url.parse::<sqlx::sqlite::SqliteConnectOptions>()
                        .unwrap()
                        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
                ),
        )
        .unwrap();
    measured.extend(bench_backend(&rt, "sqlite", ds.clone(), Raw::Sqlite(raw)));

    let pg_url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("ds_bench_{}", std::process::id());
    let reachable = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&pg_url).await.ok()?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .ok()?;
        Some(())
    });
    if reachable.is_some() {
        let mut config = SqlConfig::new(&pg_url);
        config.schema = Some(schema.clone());
        let ds = rt.block_on(datastore_sql::open(config)).unwrap();
        let raw = rt
            .block_on(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .test_before_acquire(false)
                    .connect_with(
                        pg_url
                            .parse::<sqlx::postgres::PgConnectOptions>()
                            .unwrap()
                            .options([("search_path", schema.as_str())]),
                    ),
            )
            .unwrap();
        measured.extend(bench_backend(&rt, "postgres", ds, Raw::Postgres(raw)));
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&pg_url).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await;
        });
    } else {
        eprintln!(
            "no PostgreSQL at {}: benchmarking SQLite only",
            datastore_sql::redact_url(&pg_url)
        );
    }
    print_table(
        "median of interleaved rounds; facade/raw is throughput (1.00 = no overhead)",
        &measured,
    );
}
