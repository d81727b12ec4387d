//! Durable commits from 1, 8 and 32 concurrent writers, through the facade
//! and on the raw engine doing the same writes at the same concurrency.
//!
//! ```text
//! cargo bench -p datastore --bench concurrent_writes
//! # seconds per measurement (default 3), and which backends:
//! CONCURRENT_WRITES_SECS=5 CONCURRENT_WRITES_BACKENDS=rocksdb,sqlite cargo bench -p datastore --bench concurrent_writes
//! ```
//!
//! Every write creates a new profile (`MustNotExist`), durable before it
//! returns: `sync_on_commit` on RocksDB, `synchronous = FULL` on SQLite,
//! `synchronous_commit = on` on PostgreSQL. The raw sides:
//!
//! - RocksDB: one OS thread per writer, each checking the record key and the
//!   username claim (two point reads, as the facade's precondition and
//!   unique check) and writing a synced `WriteBatch` of the record, its index
//!   entries, the claim, the history version, the feed entry and the head; sequence numbers from
//!   an atomic counter. RocksDB groups concurrent synced writes itself.
//! - PostgreSQL: one connection per writer, each transaction inserting the
//!   row (with its index columns), its history version and a feed row; sequence numbers from an
//!   atomic counter; no lock.
//! - SQLite: writers hand their rows to one writer connection that inserts
//!   every row waiting at that moment, with its feed row, in one
//!   `BEGIN IMMEDIATE` transaction (grouped by hand, no savepoints).
//!
//! PostgreSQL comes from `DATASTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, and is
//! skipped with a notice if no server answers. The table at the end gives
//! writes per second on each side, their ratio, and the facade's mean
//! commits per group.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datastore_core::group_commit::GroupStats;
use datastore_core::{Datastore, EngineStore, Kind, Precondition, Profile, ProfileId, Record};
use datastore_rocks::layout::{self, Envelope};
use datastore_rocks::{RocksConfig, RocksEngine};
use datastore_sql::{SqlConfig, SqlEngine};
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

#[path = "../../benches/common/rocks_raw.rs"]
mod rocks_raw;
use rocks_raw::raw_rocks_put;

const WRITERS: [usize; 3] = [1, 8, 32];

fn seconds() -> Duration {
    let secs = std::env::var("CONCURRENT_WRITES_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn profile(writer: usize, i: u64, side: &str) -> Profile {
    let mut p = Profile::new(format!("{side}{writer}x{i}"));
    p.id = ProfileId::new(format!("{side}-{writer}-{i}"));
    p
}

/// One measured cell: writes per second, and the facade's grouping.
struct Cell {
    rate: f64,
    groups: Option<GroupStats>,
}

/// Runs `writers` tasks writing through the facade for the measurement time.
async fn facade(ds: Arc<dyn Datastore>, writers: usize, side: &str) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (ds, stop, side) = (ds.clone(), stop.clone(), side.to_string());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    ds.profiles()
                        .put(profile(w, n, &side), Precondition::MustNotExist)
                        .await
                        .expect("a facade write");
                    n += 1;
                    // A store whose commit never yields (one that blocks
                    // on its fsync) would otherwise keep the timer from
                    // ever stopping the measurement.
                    tokio::task::yield_now().await;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

// --- RocksDB -------------------------------------------------------------

fn raw_rocks(engine: &RocksEngine, writers: usize) -> f64 {
    let seq = AtomicU64::new(1 << 40);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (seq, stop) = (&seq, &stop);
                s.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let p = profile(w, n, "raw");
                        raw_rocks_put(engine.db(), seq.fetch_add(1, Ordering::Relaxed), &p, true);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(seconds());
        stop.store(true, Ordering::Relaxed);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// Whether RocksDB reads should move to the blocking pool: the same point
/// read (a block-cache hit, then decoding) in place on the task, and handed
/// to `spawn_blocking`. Returns microseconds per read, (in place, moved).
async fn rocks_read_placement() -> (f64, f64) {
    const READS: u32 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(RocksConfig::new(dir.path().join("db"))).unwrap();
    let store = Arc::new(EngineStore::new(engine));
    let ds: Arc<dyn Datastore> = store.clone();
    for i in 0..1000 {
        ds.profiles()
            .put(profile(0, i, "read"), Precondition::MustNotExist)
            .await
            .unwrap();
    }
    let id = |i: u32| ProfileId::new(format!("read-0-{}", i % 1000));
    let started = Instant::now();
    for i in 0..READS {
        std::hint::black_box(ds.profiles().get(&id(i)).await.unwrap());
    }
    let in_place = started.elapsed().as_secs_f64() * 1e6 / f64::from(READS);
    let started = Instant::now();
    for i in 0..READS {
        let (store, key) = (store.clone(), id(i));
        let read = tokio::task::spawn_blocking(move || {
            let db = store.engine().db();
            let cf = db.cf_handle(layout::RECORDS).unwrap();
            let bytes = db
                .get_pinned_cf(cf, layout::record_key(Kind::Profile, key.as_str()))
                .unwrap()
                .unwrap();
            let (_, body) = Envelope::decode(&bytes).unwrap();
            serde_json::from_slice::<Profile>(body).unwrap()
        });
        std::hint::black_box(read.await.unwrap());
    }
    let moved = started.elapsed().as_secs_f64() * 1e6 / f64::from(READS);
    (in_place, moved)
}

async fn rocks(writers: usize) -> (Cell, Cell) {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(RocksConfig::new(dir.path().join("db"))).unwrap();
    let store = Arc::new(EngineStore::new(engine));
    let rate = facade(store.clone(), writers, "f").await;
    let groups = store.engine().commit_stats();
    let raw = raw_rocks(store.engine(), writers);
    (
        Cell {
            rate,
            groups: Some(groups),
        },
        Cell {
            rate: raw,
            groups: None,
        },
    )
}

// --- SQLite --------------------------------------------------------------

struct Row {
    profile: Profile,
    done: oneshot::Sender<()>,
}

/// The hand-grouped SQLite writer: every row waiting joins one transaction.
async fn sqlite_grouper(url: String, mut rows: mpsc::Receiver<Row>) {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use std::str::FromStr;
    let opts = SqliteConnectOptions::from_str(&url)
        .unwrap()
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let mut seq: i64 = 1 << 40;
    while let Some(first) = rows.recv().await {
        let mut group = vec![first];
        while let Ok(r) = rows.try_recv() {
            group.push(r);
        }
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let now = datastore_core::commit_time().timestamp_micros();
        for r in &group {
            seq += 1;
            let p = &r.profile;
            sqlx::query("INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(p.id.as_str()).bind(seq).bind(now).bind(now)
                .bind(serde_json::to_string(p).unwrap()).bind(&p.username).bind(p.created.timestamp_micros())
                .execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO ds_history (kind, key, revision, op, at, body) VALUES ('profiles', ?, ?, 'put', ?, ?)")
                .bind(p.id.as_str()).bind(seq).bind(now).bind(serde_json::to_string(p).unwrap())
                .execute(&mut *tx).await.unwrap();
            sqlx::query("INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES (?, 'profiles', ?, 'put', ?, ?)")
                .bind(seq).bind(p.id.as_str()).bind(seq).bind(now)
                .execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        for r in group {
            let _ = r.done.send(());
        }
    }
}

async fn raw_sqlite(url: &str, writers: usize) -> f64 {
    let (send, rows) = mpsc::channel(1024);
    let grouper = tokio::spawn(sqlite_grouper(url.to_string(), rows));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (send, stop) = (send.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = profile(w, n, "raw");
                    p.validate().unwrap();
                    let (done, wait) = oneshot::channel();
                    send.send(Row { profile: p, done }).await.unwrap();
                    wait.await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    drop(send);
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    grouper.await.unwrap();
    rate
}

async fn sqlite(writers: usize) -> (Cell, Cell) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let engine = SqlEngine::open(SqlConfig::new(&url)).await.unwrap();
    let store = Arc::new(EngineStore::new(engine));
    let rate = facade(store.clone(), writers, "f").await;
    let groups = store.engine().commit_stats();
    let raw = raw_sqlite(&url, writers).await;
    store.close().await.unwrap();
    (
        Cell {
            rate,
            groups: Some(groups),
        },
        Cell {
            rate: raw,
            groups: None,
        },
    )
}

// --- PostgreSQL ----------------------------------------------------------

async fn raw_postgres(url: &str, schema: &str, writers: usize) -> f64 {
    let seq = Arc::new(AtomicU64::new(1 << 40));
    let stop = Arc::new(AtomicBool::new(false));
    let mut conns = Vec::new();
    for _ in 0..writers {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
            .execute(&mut c)
            .await
            .unwrap();
        conns.push(c);
    }
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let (seq, stop) = (seq.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let p = profile(w, n, "raw");
                    p.validate().unwrap();
                    let s = seq.fetch_add(1, Ordering::Relaxed) as i64;
                    let now = datastore_core::commit_time().timestamp_micros();
                    let mut tx = conn.begin().await.unwrap();
                    sqlx::query("INSERT INTO ds_profiles (key, revision, stored_created, stored_updated, body, username, created) VALUES ($1, $2, $3, $4, CAST($5 AS JSONB), $6, $7)")
                        .bind(p.id.as_str()).bind(s).bind(now).bind(now)
                        .bind(serde_json::to_string(&p).unwrap()).bind(&p.username).bind(p.created.timestamp_micros())
                        .execute(&mut *tx).await.unwrap();
                    sqlx::query("INSERT INTO ds_history (kind, key, revision, op, at, body) VALUES ('profiles', $1, $2, 'put', $3, $4)")
                        .bind(p.id.as_str()).bind(s).bind(now).bind(serde_json::to_string(&p).unwrap())
                        .execute(&mut *tx).await.unwrap();
                    sqlx::query("INSERT INTO ds_changes (seq, kind, key, op, revision, at) VALUES ($1, 'profiles', $2, 'put', $3, $4)")
                        .bind(s).bind(p.id.as_str()).bind(s).bind(now)
                        .execute(&mut *tx).await.unwrap();
                    tx.commit().await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(seconds()).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn postgres(url: &str, writers: usize) -> Option<(Cell, Cell)> {
    let schema = format!("bench_cw_{}_{writers}", std::process::id());
    if let Err(e) = datastore_sql::create_schema(url, &schema).await {
        eprintln!("PostgreSQL skipped: {e}");
        return None;
    }
    let mut config = SqlConfig::new(url);
    config.schema = Some(schema.clone());
    config.pool_size = config.pool_size.max(writers as u32 + 2);
    let engine = SqlEngine::open(config).await.unwrap();
    let store = Arc::new(EngineStore::new(engine));
    let rate = facade(store.clone(), writers, "f").await;
    let groups = store.engine().commit_stats();
    let raw = raw_postgres(url, &schema, writers).await;
    store.close().await.unwrap();
    datastore_sql::drop_schema(url, &schema).await.unwrap();
    Some((
        Cell {
            rate,
            groups: Some(groups),
        },
        Cell {
            rate: raw,
            groups: None,
        },
    ))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let wanted = std::env::var("CONCURRENT_WRITES_BACKENDS")
        .unwrap_or_else(|_| "rocksdb,sqlite,postgres".into());
    let url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut rows = Vec::new();
    for backend in wanted.split(',').map(str::trim) {
        for writers in WRITERS {
            let cells = runtime.block_on(async {
                match backend {
                    "rocksdb" => Some(rocks(writers).await),
                    "sqlite" => Some(sqlite(writers).await),
                    "postgres" => postgres(&url, writers).await,
                    other => panic!("unknown backend {other:?}: rocksdb, sqlite or postgres"),
                }
            });
            let Some((f, r)) = cells else { break };
            let g = f.groups.unwrap_or_default();
            println!(
                "{backend} {writers:>2} writers: facade {:>7.0}/s  raw {:>7.0}/s  facade/raw {:.2}  commits per group {:.1} (largest {})",
                f.rate,
                r.rate,
                f.rate / r.rate,
                g.mean(),
                g.largest
            );
            rows.push((backend.to_string(), writers, f, r));
        }
    }
    println!();
    println!(
        "| backend | writers | facade writes/s | raw writes/s | facade/raw | commits per group |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (backend, writers, f, r) in &rows {
        let g = f.groups.unwrap_or_default();
        println!(
            "| {backend} | {writers} | {:.0} | {:.0} | {:.2} | {:.1} |",
            f.rate,
            r.rate,
            f.rate / r.rate,
            g.mean()
        );
    }
    if wanted.split(',').any(|b| b.trim() == "rocksdb") {
        let (in_place, moved) = runtime.block_on(rocks_read_placement());
        println!(
            "rocksdb point read: {in_place:.2} µs in place on the task, {moved:.2} µs through spawn_blocking"
        );
    }
    for backend in ["rocksdb", "sqlite", "postgres"] {
        let one = rows.iter().find(|r| r.0 == backend && r.1 == 1);
        let many = rows.iter().find(|r| r.0 == backend && r.1 == 32);
        if let (Some(one), Some(many)) = (one, many) {
            println!(
                "{backend}: 32 writers give {:.1}x the 1-writer facade rate",
                many.2.rate / one.2.rate
            );
        }
    }
}
