//! One subscriber following 1 of 1,000 busy workflows: filtered (only that
//! workflow's runs) against unfiltered (every change, thrown away by the
//! client as it did before feed filters) and against no subscriber, on each
//! backend.
//!
//! ```text
//! cargo bench -p datastore --bench feed_filter
//! # runs written per measurement (default 3000), rounds (default 3), backends:
//! FEED_FILTER_RUNS=6000 FEED_FILTER_ROUNDS=5 FEED_FILTER_BACKENDS=memory,rocksdb cargo bench -p datastore --bench feed_filter
//! ```
//!
//! Four writers create runs round-robin over 1,000 workflows; every 1,000th
//! run is of the followed workflow. For each subscriber mode the table gives
//! the events it was delivered, the changes that matched its filter, the
//! writers' rate and the process CPU time per committed change (user +
//! system, all threads, from `/proc/self/stat`). Modes run interleaved,
//! round by round, and each figure is the median of its rounds.
//!
//! PostgreSQL comes from `DATASTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, and is
//! skipped with a notice if no server answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use datastore_core::{
    Batch, Datastore, FeedEvent, FeedFilter, Kind, Precondition, Run, Workflow, WorkflowId,
};
use futures::StreamExt;

const WORKFLOWS: usize = 1_000;
const WRITERS: usize = 4;
const FOLLOWED: &str = "w7";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Unfiltered,
    Filtered,
}

struct Sample {
    delivered: u64,
    matching: u64,
    rate: f64,
    cpu_us_per_change: f64,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Process CPU time (user + system, every thread), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // Linux reports clock ticks of 1/100 s.
    Duration::from_millis(ticks * 10)
}

async fn seed(ds: &Arc<dyn Datastore>) {
    let mut batch = Batch::new();
    for i in 0..WORKFLOWS {
        let mut w = Workflow::new(format!("init-{i}"), "owner");
        w.id = WorkflowId::new(format!("w{i}"));
        batch = batch.put(w, Precondition::MustNotExist);
    }
    ds.apply(batch).await.unwrap();
}

/// Writes `runs` runs with a subscriber in `mode` listening; what it got.
async fn measure(ds: &Arc<dyn Datastore>, mode: Mode, runs: usize, round: usize) -> Sample {
    let start = ds.changes().head().await.unwrap();
    let filter = FeedFilter::all().kind(Kind::Run).parent(FOLLOWED);
    let delivered = Arc::new(AtomicU64::new(0));
    let listener = (mode != Mode::None).then(|| {
        let (ds, delivered, filter) = (ds.clone(), delivered.clone(), filter.clone());
        tokio::spawn(async move {
            let wanted = match mode {
                Mode::Filtered => filter.clone(),
                _ => FeedFilter::all(),
            };
            let mut cursor = start;
            let mut seen_matching = 0u64;
            let target = (runs / WORKFLOWS).max(1) as u64;
            while seen_matching < target {
                let mut stream = ds.changes().subscribe_matching(cursor, wanted.clone());
                while let Some(event) = stream.next().await {
                    match event.unwrap() {
                        FeedEvent::Change(c) => {
                            cursor = c.cursor();
                            delivered.fetch_add(1, Ordering::Relaxed);
                            // The client keeps what is its own, as before filters.
                            if filter.matches(&c) {
                                seen_matching += 1;
                                if seen_matching >= target {
                                    break;
                                }
                            }
                        }
                        FeedEvent::Lagged { resume_from } => {
                            cursor = resume_from;
                            break;
                        }
                    }
                }
            }
        })
    });
    // Let the subscription open before the writes begin.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_time();
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (ds, next) = (ds.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if n >= runs {
                        return;
                    }
                    // Every 1,000th run goes to the followed workflow.
                    let w = (n * 7 + round) % WORKFLOWS;
                    ds.runs()
                        .create(Run::new(format!("w{w}"), vec![]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    if let Some(listener) = listener {
        tokio::time::timeout(Duration::from_secs(60), listener)
            .await
            .expect("the subscriber receives the followed workflow's runs")
            .unwrap();
    }
    let cpu = cpu_time() - cpu_before;
    let all = ds.changes().since(start, 10_000).await.unwrap();
    let mut matching = all.iter().filter(|c| filter.matches(c)).count() as u64;
    let mut cursor = all.last().map(|c| c.cursor());
    while let Some(from) = cursor {
        let page = ds.changes().since(from, 10_000).await.unwrap();
        matching += page.iter().filter(|c| filter.matches(c)).count() as u64;
        cursor = page.last().map(|c| c.cursor());
    }
    Sample {
        delivered: delivered.load(Ordering::Relaxed),
        matching,
        rate: runs as f64 / elapsed.as_secs_f64(),
        cpu_us_per_change: cpu.as_secs_f64() * 1e6 / runs as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn bench(name: &str, ds: Arc<dyn Datastore>) {
    let runs: usize = env_or("FEED_FILTER_RUNS", 3_000);
    let rounds: usize = env_or("FEED_FILTER_ROUNDS", 3);
    seed(&ds).await;
    let modes = [Mode::None, Mode::Unfiltered, Mode::Filtered];
    let mut samples: Vec<Vec<Sample>> = modes.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            samples[i].push(measure(&ds, *mode, runs, round).await);
        }
    }
    ds.close().await.unwrap();
    for (mode, s) in modes.iter().zip(samples) {
        let delivered = median(s.iter().map(|s| s.delivered as f64).collect());
        let matching = median(s.iter().map(|s| s.matching as f64).collect());
        let rate = median(s.iter().map(|s| s.rate).collect());
        let cpu = median(s.iter().map(|s| s.cpu_us_per_change).collect());
        let ratio = if matching > 0.0 && *mode != Mode::None {
            format!("{:.2}", delivered / matching)
        } else {
            "-".into()
        };
        println!(
            "| {name} | {mode:?} | {delivered:.0} | {matching:.0} | {ratio} | {rate:.0} | {cpu:.1} |"
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let backends = std::env::var("FEED_FILTER_BACKENDS")
        .unwrap_or_else(|_| "memory,rocksdb,sqlite,postgres".into());
    println!(
        "{} runs over {WORKFLOWS} workflows by {WRITERS} writers; one subscriber following {FOLLOWED}",
        env_or("FEED_FILTER_RUNS", 3_000usize)
    );
    println!(
        "| backend | subscriber | events delivered | changes matching | delivered / matching | runs/s | CPU µs per change |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    for backend in backends.split(',') {
        match backend {
            "memory" => bench("memory", datastore_memory::open()).await,
            "rocksdb" => {
                let path = dir.path().join("rocks");
                let ds = datastore_rocks::open(datastore_rocks::RocksConfig::new(&path)).unwrap();
                bench("RocksDB", ds).await
            }
            "sqlite" => {
                let url = format!("sqlite://{}", dir.path().join("data.db").display());
                let ds = datastore_sql::open(datastore_sql::SqlConfig::new(url))
                    .await
                    .unwrap();
                bench("SQLite", ds).await
            }
            "postgres" => {
                let url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let schema = format!("bench_ff_{}", std::process::id());
                if let Err(e) = datastore_sql::create_schema(&url, &schema).await {
                    eprintln!("PostgreSQL skipped: {e}");
                    continue;
                }
                let mut config = datastore_sql::SqlConfig::new(url.clone());
                config.schema = Some(schema.clone());
                let ds = datastore_sql::open(config).await.unwrap();
                bench("PostgreSQL", ds).await;
                datastore_sql::drop_schema(&url, &schema).await.unwrap();
            }
            other => eprintln!("unknown backend {other:?}"),
        }
    }
}
