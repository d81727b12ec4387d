//! The same operations through `http://` (`datastore-remote` against an
//! in-process `datastore serve` on loopback) and in-process on the store
//! the server holds: what a network hop and the HTTP API cost.
//!
//! ```text
//! cargo bench -p datastore-remote --bench remote_vs_local
//! ```
//!
//! Stores: memory (the HTTP cost alone) and an SQLite file (`synchronous =
//! FULL`, each put fsynced). Operations: a point get of a run, a put of a
//! new profile, a page of 100 runs of one workflow, newest first. Rounds
//! alternate the two sides (`BENCH_ROUNDS`, default 7; `BENCH_ROUND_MS`,
//! default 300); the table gives each side's median round and the remote
//! side's throughput as a fraction of in-process.

use std::sync::Arc;

use datastore_core::{Datastore, WorkflowId};
use datastore_http::{Server, ServerConfig};
use datastore_remote::{RemoteConfig, RemoteStore};

#[path = "../../benches/common/facade_ops.rs"]
mod facade_ops;
#[path = "../../benches/common/rounds.rs"]
mod rounds;
use facade_ops::{gets, pages, puts, seed_runs};
use rounds::{Measured, compare, print_table_as, runtime};

const RUNS: usize = 2_000;

fn bench_store(rt: &tokio::runtime::Runtime, local: Arc<dyn Datastore>) -> Vec<Measured> {
    let (remote, _stop) = rt.block_on(async {
        let config = ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        let server = Server::bind(local.clone(), config).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let remote = RemoteStore::open(RemoteConfig::new(url)).await.unwrap();
        (remote, stop)
    });
    let workflow = WorkflowId::new("bench-workflow");
    let ids = seed_runs(rt, &*local, &workflow, RUNS);
    let (mut a, mut b) = (0, 0);
    vec![
        compare(
            "point get of a run",
            &mut |n| gets(rt, &remote, &ids, &mut a, n),
            &mut |n| gets(rt, &local, &ids, &mut b, n),
        ),
        compare(
            "put of a new profile",
            &mut |n| puts(rt, &remote, n),
            &mut |n| puts(rt, &local, n),
        ),
        compare(
            "page of 100 runs",
            &mut |n| pages(rt, &remote, &workflow, n),
            &mut |n| pages(rt, &local, &workflow, n),
        ),
    ]
}

fn main() {
    let rt = runtime();
    let memory = datastore_memory::open();
    let measured = bench_store(&rt, memory);
    print_table_as("memory store", ["http", "in-process"], &measured);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = rt
        .block_on(datastore_sql::open(datastore_sql::SqlConfig::new(url)))
        .unwrap();
    let measured = bench_store(&rt, sqlite);
    print_table_as("SQLite store", ["http", "in-process"], &measured);
}
