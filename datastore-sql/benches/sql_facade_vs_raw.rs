//! The facade against hand-written sqlx queries doing the same work, on
//! SQLite and PostgreSQL, in one process over one database each.
//!
//! ```text
//! cargo bench -p datastore-sql --bench sql_facade_vs_raw
//! ```
//!
//! Operations: a point get of a run by id; a put of a new profile (the raw
//! side runs the same transaction: lock, head, insert the row with its index
//! columns, the feed row, the head update); a page of 100 runs of one
//! workflow, newest first. PostgreSQL comes from
//! `DATASTORE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and is skipped if none answers. The table at the end gives facade
//! throughput as a fraction of raw throughput.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use datastore_core::{
    Datastore, PageRequest, Precondition, Profile, ProfileId, Record, Run, RunId, Workflow,
    WorkflowId,
};
use datastore_sql::SqlConfig;
use sqlx::{Connection, Row};

const RUNS: usize = 5_000;

#[path = "../../benches/common/timings.rs"]
mod timings;
use timings::{Timings, finish, print_ratios};

/// What the raw side needs: a pool of either kind.
#[derive(Clone)]
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

async fn raw_get(raw: &Raw, id: &str) -> Run {
    let body: String = match raw {
        Raw::Sqlite(p) => sqlx::query("SELECT key, revision, stored_created, stored_updated, body FROM ds_runs WHERE key IN (?)")
            .bind(id)
            .fetch_one(p)
            .await
            .unwrap()
            .get(4),
        Raw::Postgres(p) => sqlx::query("SELECT key, revision, stored_created, stored_updated, body::text FROM ds_runs WHERE key IN ($1)")
            .bind(id)
            .fetch_one(p)
            .await
            .unwrap()
            .get(4),
    };
    serde_json::from_str(&body).unwrap()
}

async fn raw_page(raw: &Raw, workflow: &str) -> Vec<Run> {
    let bodies: Vec<String> = match raw {
        Raw::Sqlite(p) => sqlx::query("SELECT key, revision, stored_created, stored_updated, body FROM ds_runs WHERE workflow_id = ? ORDER BY number DESC, key DESC LIMIT ?")
            .bind(workflow)
            .bind(101i64)
            .fetch_all(p)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(4))
            .collect(),
        Raw::Postgres(p) => sqlx::query("SELECT key, revision, stored_created, stored_updated, body::text FROM ds_runs WHERE workflow_id = $1 ORDER BY number DESC, key DESC LIMIT $2")
            .bind(workflow)
            .bind(101i64)
            .fetch_all(p)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(4))
            .collect(),
    };
    bodies
        .iter()
        .take(100)
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

async fn raw_put(raw: &Raw, profile: &Profile) {
    profile.validate().unwrap();
    let body = serde_json::to_string(profile).unwrap();
    let now = datastore_core::commit_time().timestamp_micros();
    let created = profile.created.timestamp_micros();
    let key = profile.id.as_str();
    match raw {
        Raw::Sqlite(p) => {
            let mut tx = p.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let head: i64 = sqlx::query("SELECT value FROM ds_meta WHERE name = 'head'")
                .fetch_one(&mut *tx)
                .await
                .unwrap()
                .get(0);
            let seq = head + 1;
            sqlx::query("INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(key).bind(seq).bind(now).bind(now).bind(&body).bind(&profile.username).bind(created)
                .execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES (?, 'profiles', ?, 'put', ?, ?)")
                .bind(seq).bind(key).bind(seq).bind(now).execute(&mut *tx).await.unwrap();
            sqlx::query("UPDATE ds_meta SET value = ? WHERE name = 'head'")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        Raw::Postgres(p) => {
            let mut tx = p.begin().await.unwrap();
            sqlx::query("SELECT pg_advisory_xact_lock(42)")
                .execute(&mut *tx)
                .await
                .unwrap();
            let head: i64 = sqlx::query("SELECT value FROM ds_meta WHERE name = 'head'")
                .fetch_one(&mut *tx)
                .await
                .unwrap()
                .get(0);
            let seq = head + 1;
            sqlx::query("INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES ($1, $2, $3, $4, CAST($5 AS JSONB), $6, $7)")
                .bind(key).bind(seq).bind(now).bind(now).bind(&body).bind(&profile.username).bind(created)
                .execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES ($1, 'profiles', $2, 'put', $3, $4)")
                .bind(seq).bind(key).bind(seq).bind(now).execute(&mut *tx).await.unwrap();
            sqlx::query("UPDATE ds_meta SET value = $1 WHERE name = 'head'")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("SELECT pg_notify('bench', $1)")
                .bind(seq.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}

fn bench_backend(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    ds: Arc<dyn Datastore>,
    raw: Raw,
    timings: &Timings,
) {
    let workflow = WorkflowId::new("bench-workflow");
    let mut run_ids: Vec<RunId> = Vec::with_capacity(RUNS);
    rt.block_on(async {
        let mut w = Workflow::new("bench-init", "owner");
        w.id = workflow.clone();
        ds.workflows().put(w, Precondition::Any).await.unwrap();
        for _ in 0..RUNS {
            run_ids.push(
                ds.runs()
                    .create(Run::new(workflow.clone(), vec![]))
                    .await
                    .unwrap()
                    .value
                    .id,
            );
        }
    });
    let mut group = c.benchmark_group(format!("{name}/get"));
    for side in ["facade", "raw"] {
        let key = format!("{name}/get/{side}");
        group.bench_function(side, |b| {
            let mut i = 0;
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let id = &run_ids[i % RUNS];
                    i += 1;
                    if side == "facade" {
                        black_box(rt.block_on(ds.runs().get(id)).unwrap());
                    } else {
                        black_box(rt.block_on(raw_get(&raw, id.as_str())));
                    }
                }
                finish(timings, &key, iters, start)
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group(format!("{name}/put"));
    let mut n = 0u64;
    for side in ["facade", "raw"] {
        let key = format!("{name}/put/{side}");
        group.bench_function(side, |b| {
            b.iter_custom(|iters| {
                let profiles: Vec<Profile> = (0..iters)
                    .map(|_| {
                        n += 1;
                        let mut p = Profile::new(format!("{side}{n}"));
                        p.id = ProfileId::new(format!("{side}-{n}"));
                        p
                    })
                    .collect();
                let start = Instant::now();
                for p in profiles {
                    if side == "facade" {
                        black_box(
                            rt.block_on(ds.profiles().put(p, Precondition::MustNotExist))
                                .unwrap(),
                        );
                    } else {
                        rt.block_on(raw_put(&raw, &p));
                    }
                }
                finish(timings, &key, iters, start)
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group(format!("{name}/page_of_100_runs"));
    for side in ["facade", "raw"] {
        let key = format!("{name}/page_of_100_runs/{side}");
        group.bench_function(side, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    if side == "facade" {
                        black_box(
                            rt.block_on(
                                ds.runs()
                                    .list_by_workflow(&workflow, PageRequest::first(100)),
                            )
                            .unwrap(),
                        );
                    } else {
                        black_box(rt.block_on(raw_page(&raw, workflow.as_str())));
                    }
                }
                finish(timings, &key, iters, start)
            })
        });
    }
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let timings: Timings = Arc::default();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let mut backends = Vec::new();

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
    bench_backend(
        &mut c,
        &rt,
        "sqlite",
        ds.clone(),
        Raw::Sqlite(raw),
        &timings,
    );
    backends.push("sqlite");

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
        bench_backend(&mut c, &rt, "postgres", ds, Raw::Postgres(raw), &timings);
        backends.push("postgres");
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
    c.final_summary();

    for backend in backends {
        print_ratios(
            &timings,
            &format!("{backend}/"),
            &["get", "put", "page_of_100_runs"],
        );
    }
}
