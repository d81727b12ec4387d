//! Hot point reads through `Cached` against the same reads on the uncached
//! store, per backend, in one process.
//!
//! ```text
//! cargo bench -p datastore --bench cache_vs_uncached
//! ```
//!
//! Each backend holds 10,000 runs; the reads cycle over a hot set of 1,000
//! of them (all cached after the first pass). RocksDB and SQLite run on
//! temporary files; PostgreSQL on `DATASTORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, skipped
//! with a notice if no server answers. Cached and uncached reads run in
//! alternating rounds (`BENCH_ROUNDS`, `BENCH_ROUND_MS`); the table gives
//! each side's median round and cached throughput as a multiple of
//! uncached.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datastore::{
    Batch, CacheConfig, Cached, Config, Datastore, Precondition, Profile, ProfileId, Run, RunId,
    StepRun, Workflow, WorkflowId,
};

const RUNS: usize = 10_000;
const HOT: usize = 1_000;

#[path = "../../benches/common/rounds.rs"]
mod rounds;
use rounds::{compare, print_table_as};

async fn seed(ds: &dyn Datastore) -> Vec<RunId> {
    // Runs refer to their workflow and owner, which must exist.
    let mut owner = Profile::new("owner");
    owner.id = ProfileId::new("owner");
    let mut batch = Batch::new().put(owner, Precondition::MustNotExist);
    for w in 0..10 {
        let mut workflow = Workflow::new(format!("ds{w}"), "owner");
        workflow.id = WorkflowId::new(format!("w{w}"));
        batch = batch.put(workflow, Precondition::MustNotExist);
    }
    ds.apply(batch).await.unwrap();
    let mut ids = Vec::with_capacity(RUNS);
    for chunk in 0..RUNS / 500 {
        let mut batch = Batch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            let mut run = Run::new(format!("w{}", i % 10), vec![StepRun::new("s", "transform")]);
            run.id = RunId::new(format!("run-{i:05}"));
            run.number = i as u64 / 10 + 1;
            run.owner_id = ProfileId::new("owner");
            ids.push(run.id.clone());
            batch = batch.put(run, Precondition::MustNotExist);
        }
        ds.apply(batch).await.unwrap();
    }
    ids
}

struct Backend {
    name: &'static str,
    uncached: Arc<dyn Datastore>,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

async fn backends() -> Vec<Backend> {
    let mut out = Vec::new();
    let uncached = |url: String| {
        let mut c = Config::with_url(url);
        c.cache.enabled = false;
        c.rocksdb.sync_on_commit = false;
        c
    };
    for (name, file) in [
        ("rocksdb", "rocksdb://{}/r"),
        ("sqlite", "sqlite://{}/s.db"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let url = file.replace("{}", &dir.path().display().to_string());
        match datastore::open(&uncached(url)).await {
            Ok(ds) => out.push(Backend {
                name,
                uncached: ds,
                cleanup: None,
                _dir: Some(dir),
            }),
            Err(e) => eprintln!("skipping {name}: {e}"),
        }
    }
    let url = std::env::var("DATASTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("ds_bench_cache_{}", std::process::id());
    match datastore::sql::create_schema(&url, &schema).await {
        Ok(()) => {
            let mut c = uncached(url.clone());
            c.sql.schema = Some(schema.clone());
            let pg = datastore::open(&c).await.unwrap();
            out.push(Backend {
                name: "postgres",
                uncached: pg,
                cleanup: Some((url, schema)),
                _dir: None,
            });
        }
        Err(e) => eprintln!("skipping PostgreSQL: {e}"),
    }
    out
}

fn main() {
    let rt = rounds::runtime();
    let backends = rt.block_on(backends());
    let mut measured = Vec::new();
    for backend in &backends {
        let ids = rt.block_on(seed(&*backend.uncached));
        let hot: Vec<RunId> = ids.iter().step_by(RUNS / HOT).cloned().collect();
        let cached = rt
            .block_on(Cached::wrap(
                backend.uncached.clone(),
                CacheConfig::default(),
            ))
            .unwrap()
            .into_dyn();
        // Warm the cache.
        rt.block_on(async {
            for id in &hot {
                cached.runs().get(id).await.unwrap();
            }
        });
        let hot_reads = |ds: &Arc<dyn Datastore>, n: u64| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..n as usize {
                    black_box(ds.runs().get(&hot[i % hot.len()]).await.unwrap());
                }
                start.elapsed()
            })
        };
        measured.push(compare(
            backend.name,
            &mut |n| hot_reads(&cached, n),
            &mut |n| hot_reads(&backend.uncached, n),
        ));
        rt.block_on(async {
            let _ = cached.close().await;
        });
    }
    for backend in backends {
        rt.block_on(async {
            let _ = backend.uncached.close().await;
            if let Some((url, schema)) = &backend.cleanup {
                let _ = datastore::sql::drop_schema(url, schema).await;
            }
        });
    }
    print_table_as(
        "hot point reads, median of interleaved rounds; cached/uncached is throughput \
         (aim: rocksdb >= 4, sqlite and postgres >= 20)",
        ["cached", "uncached"],
        &measured,
    );
}
