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
//! columns, its history version, the feed row, the head update); a page of
//! 100 runs of one workflow, newest first; a `get_many` of 20 runs; a run
//! create (the workflow read for its owner, the run count read, the run and
//! the new count written); a log append of one op. On SQLite the raw side
//! reads on a pool and writes on one connection of its own, as the facade
//! does. PostgreSQL comes from
//! `DATASTORE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and is skipped if none answers. Each operation runs in rounds that
//! alternate facade and raw (`BENCH_ROUNDS`, default 7; `BENCH_ROUND_MS`,
//! default 300); the table gives each side's median round and the facade's
//! throughput as a fraction of raw. `BENCH_PG_POOL` sets the facade's
//! PostgreSQL `pool_size` (default 8, `SqlConfig`'s).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datastore_core::{
    Datastore, Kind, LogEntry, LogEntryKey, LogId, LogOp, Profile, Record, RecordId, Revision, Run,
    RunId, Versioned, Workflow, WorkflowId,
};
use datastore_sql::SqlConfig;
use sqlx::{Connection, Row};

const RUNS: usize = 5_000;

#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
#[path = "../../benches/common/rounds.rs"]
mod rounds;
use facade_ops::{
    cycle, deep_pages, get_manys, gets, log_appends, log_op, many_reads, new_profiles, new_runs,
    on_worker, pages, puts, run_creates, seed_runs,
};
use rounds::{Measured, compare, env, print_table};

/// What the raw side needs: on SQLite, as the facade has, a pool of
/// readers and one writer connection of its own (so the writer's page cache
/// survives its own commits); on PostgreSQL one pool.
#[derive(Clone)]
enum Raw {
    Sqlite {
        reader: sqlx::SqlitePool,
        writer: sqlx::SqlitePool,
    },
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
        Raw::Sqlite { reader: p, .. } => select_runs!(
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
        Raw::Sqlite { reader: p, .. } => select_runs!(
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

/// A statement parameter of the raw side.
enum Arg {
    Int(i64),
    Text(String),
    Null,
}

/// A statement in one database's dialect: `?` placeholders become `$1, $2,
/// …` on PostgreSQL, `{json}` is a JSON-body parameter (`CAST(? AS JSONB)`
/// there) and `{body}` the body column read as text.
fn dialect_sql(postgres: bool, sql: &str) -> String {
    if !postgres {
        return sql.replace("{json}", "?").replace("{body}", "body");
    }
    let sql = sql
        .replace("{json}", "CAST(? AS JSONB)")
        .replace("{body}", "body::text");
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Binds [`Arg`]s to a query of this text.
macro_rules! bind {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query(sqlx::AssertSqlSafe($sql));
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(t) => q.bind(t),
                Arg::Null => q.bind(None::<String>),
            };
        }
        q
    }};
}

/// The raw side's write transaction.
enum RawTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl RawTx {
    /// Runs a statement.
    async fn exec(&mut self, sql: &str, args: Vec<Arg>) {
        match self {
            RawTx::Sqlite(tx) => {
                bind!(dialect_sql(false, sql), args)
                    .execute(&mut **tx)
                    .await
                    .unwrap();
            }
            RawTx::Postgres(tx) => {
                bind!(dialect_sql(true, sql), args)
                    .execute(&mut **tx)
                    .await
                    .unwrap();
            }
        }
    }

    /// The first column of the row a select returns, if any.
    async fn one<T>(&mut self, sql: &str, args: Vec<Arg>) -> Option<T>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>,
    {
        match self {
            RawTx::Sqlite(tx) => bind!(dialect_sql(false, sql), args)
                .fetch_optional(&mut **tx)
                .await
                .unwrap()
                .map(|r| r.get(0)),
            RawTx::Postgres(tx) => bind!(dialect_sql(true, sql), args)
                .fetch_optional(&mut **tx)
                .await
                .unwrap()
                .map(|r| r.get(0)),
        }
    }

    fn postgres(&self) -> bool {
        matches!(self, RawTx::Postgres(_))
    }

    /// Ends a write at head `seq`: the feed row of `key` (with its parent)
    /// and the head, on PostgreSQL with the notification, in one statement
    /// there as the facade's writer does (two on SQLite); then commits.
    async fn finish(mut self, kind: Kind, key: &str, parent: Option<String>, seq: i64, now: i64) {
        let feed = "INSERT INTO ds_changes (seq, kind, key, op, revision, at, parent) VALUES (?, ?, ?, 'put', ?, ?, ?)";
        let mut args = vec![
            Arg::Int(seq),
            Arg::Text(kind.as_str().into()),
            Arg::Text(key.into()),
            Arg::Int(seq),
            Arg::Int(now),
            parent.map_or(Arg::Null, Arg::Text),
        ];
        if self.postgres() {
            let sql = format!(
                "WITH feed AS ({feed}), head AS (UPDATE ds_meta SET value = ? WHERE name = 'head') SELECT pg_notify('bench', ?)"
            );
            args.extend([Arg::Int(seq), Arg::Text(seq.to_string())]);
            self.exec(&sql, args).await;
        } else {
            self.exec(feed, args).await;
            self.exec(
                "UPDATE ds_meta SET value = ? WHERE name = 'head'",
                vec![Arg::Int(seq)],
            )
            .await;
        }
        match self {
            RawTx::Sqlite(tx) => tx.commit().await.unwrap(),
            RawTx::Postgres(tx) => tx.commit().await.unwrap(),
        }
    }

    /// Inserts a new record's row, with its index columns (`columns`, set
    /// to `values`), and its history version when `history`.
    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &mut self,
        kind: Kind,
        key: &str,
        seq: i64,
        now: i64,
        body: &str,
        columns: &str,
        values: Vec<Arg>,
        history: bool,
    ) {
        let marks = vec!["?"; values.len()].join(", ");
        let sql = format!(
            "INSERT INTO ds_{} (key, revision, stored_created, stored_updated, body, {columns}) VALUES (?, ?, ?, ?, {{json}}, {marks})",
            kind.as_str()
        );
        let mut args = vec![
            Arg::Text(key.into()),
            Arg::Int(seq),
            Arg::Int(now),
            Arg::Int(now),
            Arg::Text(body.into()),
        ];
        args.extend(values);
        self.exec(&sql, args).await;
        if history {
            self.exec(
                "INSERT INTO ds_history (kind, key, revision, op, at, body) VALUES (?, ?, ?, 'put', ?, ?)",
                vec![
                    Arg::Text(kind.as_str().into()),
                    Arg::Text(key.into()),
                    Arg::Int(seq),
                    Arg::Int(now),
                    Arg::Text(body.into()),
                ],
            )
            .await;
        }
    }
}

impl Raw {
    /// Begins a write transaction holding the store's lock, as the
    /// facade's writer does (`BEGIN IMMEDIATE`; on PostgreSQL `BEGIN` and
    /// the head row's lock, which reads the head), and reads the head.
    async fn begin(&self) -> (RawTx, i64) {
        let (mut tx, head) = match self {
            Raw::Sqlite { writer, .. } => (
                RawTx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await.unwrap()),
                "SELECT value FROM ds_meta WHERE name = 'head'",
            ),
            Raw::Postgres(p) => (
                RawTx::Postgres(p.begin().await.unwrap()),
                "UPDATE ds_meta SET value = value WHERE name = 'head' RETURNING value",
            ),
        };
        let head = tx.one(head, Vec::new()).await.unwrap();
        (tx, head)
    }
}

/// Raw put of a new profile: one write transaction (lock and head, the row
/// with its index columns, its history version, the feed row and head),
/// without the facade's unique-username read (the unique index refuses a
/// taken one).
async fn raw_put(raw: &Raw, profile: &Profile) {
    profile.validate().unwrap();
    let body = serde_json::to_string(profile).unwrap();
    let now = datastore_core::commit_time().timestamp_micros();
    let (mut tx, head) = raw.begin().await;
    let seq = head + 1;
    let key = profile.id.as_str();
    tx.insert(
        Kind::Profile,
        key,
        seq,
        now,
        &body,
        "username, created",
        vec![
            Arg::Text(profile.username.clone()),
            Arg::Int(profile.created.timestamp_micros()),
        ],
        true,
    )
    .await;
    tx.finish(Kind::Profile, key, None, seq, now).await;
}

/// Raw get-many: one select of the rows by key, decoded, in the ids' order.
async fn raw_get_many(raw: &Raw, ids: &[RunId]) -> Vec<Option<Versioned<Run>>> {
    let sql = format!(
        "SELECT key, revision, stored_created, stored_updated, {{body}} FROM ds_runs WHERE key IN ({})",
        vec!["?"; ids.len()].join(", ")
    );
    let args = ids.iter().map(|id| Arg::Text(id.to_string()));
    let rows: Vec<(String, Versioned<Run>)> = match raw {
        Raw::Sqlite { reader: p, .. } => bind!(dialect_sql(false, &sql), args)
            .fetch_all(p)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), decode_row(r.get(1), r.get(2), r.get(3), r.get(4))))
            .collect(),
        Raw::Postgres(p) => bind!(dialect_sql(true, &sql), args)
            .fetch_all(p)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), decode_row(r.get(1), r.get(2), r.get(3), r.get(4))))
            .collect(),
    };
    let mut found: HashMap<String, Versioned<Run>> = rows.into_iter().collect();
    ids.iter().map(|id| found.remove(id.as_str())).collect()
}

/// Raw run create, in one write transaction: read the workflow (for its
/// owner) and its run count, insert the run's row with its index columns
/// and its history version, raise the count, the feed row and head.
async fn raw_run_create(raw: &Raw, mut run: Run) {
    let (mut tx, head) = raw.begin().await;
    let workflow: String = tx
        .one(
            "SELECT {body} FROM ds_workflows WHERE key = ?",
            vec![Arg::Text(run.workflow_id.to_string())],
        )
        .await
        .unwrap();
    let workflow: Workflow = serde_json::from_str(&workflow).unwrap();
    let counter = Run::counter_name(&run.workflow_id);
    let count: i64 = tx
        .one(
            "SELECT value FROM ds_counters WHERE name = ?",
            vec![Arg::Text(counter.clone())],
        )
        .await
        .unwrap_or(0);
    let now = datastore_core::commit_time();
    run.owner_id = workflow.owner_id;
    run.number = count as u64 + 1;
    run.created = now;
    run.validate().unwrap();
    let body = serde_json::to_string(&run).unwrap();
    let (seq, now) = (head + 1, now.timestamp_micros());
    let key = run.id.as_str();
    tx.insert(
        Kind::Run,
        key,
        seq,
        now,
        &body,
        "workflow_id, number, owner_id, status, created",
        vec![
            Arg::Text(run.workflow_id.to_string()),
            Arg::Int(run.number as i64),
            Arg::Text(run.owner_id.to_string()),
            Arg::Text(run.status.as_str().into()),
            Arg::Int(now),
        ],
        true,
    )
    .await;
    tx.exec(
        "INSERT INTO ds_counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        vec![Arg::Text(counter), Arg::Int(run.number as i64)],
    )
    .await;
    tx.finish(Kind::Run, key, Some(run.workflow_id.to_string()), seq, now)
        .await;
}

/// Raw log append of one op at `len`, in one write transaction: check the
/// entry before it exists, insert the entry's row with its index columns
/// (logs keep no history), the feed row and head.
async fn raw_log_append(raw: &Raw, log: &LogId, len: u64, op: LogOp) {
    let entry = LogEntry {
        log_id: log.clone(),
        seq: len,
        op,
    };
    entry.validate().unwrap();
    let body = serde_json::to_string(&entry).unwrap();
    let key = entry.id().key();
    let (mut tx, head) = raw.begin().await;
    if len > 0 {
        let prev = LogEntryKey {
            log_id: log.clone(),
            seq: len - 1,
        };
        let found: Option<i64> = tx
            .one(
                "SELECT revision FROM ds_logs WHERE key = ?",
                vec![Arg::Text(prev.key())],
            )
            .await;
        assert!(found.is_some());
    }
    let (seq, now) = (head + 1, datastore_core::commit_time().timestamp_micros());
    tx.insert(
        Kind::Log,
        &key,
        seq,
        now,
        &body,
        "log_id, seq",
        vec![Arg::Text(log.to_string()), Arg::Int(len as i64)],
        false,
    )
    .await;
    tx.finish(Kind::Log, &key, Some(log.key()), seq, now).await;
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
        &mut |n| gets(rt, &ds, &run_ids, &mut fi, n),
        &mut |n| {
            let (raw, list) = (raw.clone(), cycle(&run_ids, &mut ri, n));
            on_worker(rt, async move {
                let start = Instant::now();
                for id in &list {
                    black_box(raw_get(&raw, id.as_str()).await);
                }
                start.elapsed()
            })
        },
    ));
    measured.push(compare(
        &format!("{name} put"),
        &mut |n| puts(rt, &ds, n),
        &mut |n| {
            let (raw, batch) = (raw.clone(), new_profiles("raw", n));
            on_worker(rt, async move {
                let start = Instant::now();
                for p in &batch {
                    raw_put(&raw, p).await;
                }
                start.elapsed()
            })
        },
    ));
    measured.push(compare(
        &format!("{name} page of 100 runs"),
        &mut |n| pages(rt, &ds, &workflow, n),
        &mut |n| {
            let (raw, workflow) = (raw.clone(), workflow.clone());
            on_worker(rt, async move {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(raw_page(&raw, workflow.as_str()).await);
                }
                start.elapsed()
            })
        },
    ));
    let (mut fi, mut ri) = (0, 0);
    measured.push(compare(
        &format!("{name} get_many of {} runs", facade_ops::GET_MANY),
        &mut |n| get_manys(rt, &ds, &run_ids, &mut fi, n),
        &mut |n| {
            let raw = raw.clone();
            many_reads(rt, &run_ids, &mut ri, n, move |list| {
                let raw = raw.clone();
                async move { raw_get_many(&raw, &list).await }
            })
        },
    ));
    // Each side creates runs of a workflow, and appends to a log, of its own.
    let facade_workflow = WorkflowId::new("create-facade");
    let raw_workflow = WorkflowId::new("create-raw");
    seed_runs(rt, &*ds, &facade_workflow, 0);
    seed_runs(rt, &*ds, &raw_workflow, 0);
    measured.push(compare(
        &format!("{name} run create"),
        &mut |n| run_creates(rt, &ds, &facade_workflow, n),
        &mut |n| {
            let (raw, runs) = (raw.clone(), new_runs("raw", &raw_workflow, n));
            on_worker(rt, async move {
                let start = Instant::now();
                for run in runs {
                    raw_run_create(&raw, run).await;
                }
                start.elapsed()
            })
        },
    ));
    let (facade_log, raw_log) = (LogId::new("append-facade"), LogId::new("append-raw"));
    let (mut facade_len, mut raw_len) = (0, 0);
    measured.push(compare(
        &format!("{name} log append of one op"),
        &mut |n| log_appends(rt, &ds, &facade_log, &mut facade_len, n),
        &mut |n| {
            let ops: Vec<LogOp> = (raw_len..raw_len + n).map(log_op).collect();
            let (raw, log, first) = (raw.clone(), raw_log.clone(), raw_len);
            raw_len += n;
            on_worker(rt, async move {
                let start = Instant::now();
                for (at, op) in (first..).zip(ops) {
                    raw_log_append(&raw, &log, at, op).await;
                }
                start.elapsed()
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
    // The raw pools get the facade's settings: as many readers, one writer
    // connection, no ping before each acquire, WAL with a synced commit.
    let options = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .unwrap()
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
    let pool = |connections: u32| {
        rt.block_on(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(connections)
                .test_before_acquire(false)
                .connect_with(options.clone()),
        )
        .unwrap()
    };
    let raw = Raw::Sqlite {
        reader: pool(SqlConfig::new(&url).pool_size),
        writer: pool(1),
    };
    measured.extend(bench_backend(&rt, "sqlite", ds.clone(), raw));

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
        config.pool_size = env("BENCH_PG_POOL", config.pool_size as usize) as u32;
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
