//! A bounded load test on loopback: a fixed number of requests from
//! concurrent client tasks; reports requests per second and checks that
//! every request succeeded. (The rate is printed, never asserted.)

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_load_completes_without_a_failed_request() {
    for backend in common::BACKENDS {
        let server = common::serve(backend).await;
        let http = reqwest::Client::new();
        let started = Instant::now();
        let clients = (0..CLIENTS).map(|c| {
            let (http, base) = (http.clone(), server.url(""));
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for i in 0..PER_CLIENT {
                    let id = format!("c{c}-p{i}");
                    // A write, a read of it, and a page: three requests.
                    let put = http
                        .put(format!("{base}/v1/profiles/{id}"))
                        .header("if-none-match", "*")
                        .json(&json!({"id": id, "username": id}))
                        .send()
                        .await;
                    let get = http.get(format!("{base}/v1/profiles/{id}")).send().await;
                    let list = http
                        .get(format!("{base}/v1/profiles?limit=20"))
                        .send()
                        .await;
                    for r in [put, get, list] {
                        match r {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) => failures.push(format!("{id}: {}", r.status())),
                            Err(e) => failures.push(format!("{id}: {e}")),
                        }
                    }
                }
                failures
            })
        });
        let failures: Vec<String> = futures::future::join_all(clients)
            .await
            .into_iter()
            .flat_map(Result::unwrap)
            .collect();
        let elapsed = started.elapsed();
        let requests = CLIENTS * PER_CLIENT * 3;
        println!(
            "load {backend:?}: {requests} requests from {CLIENTS} clients in {elapsed:.2?}: {:.0} requests/s",
            requests as f64 / elapsed.as_secs_f64()
        );
        assert!(
            failures.is_empty(),
            "{} failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        let stored = server.ds.changes().head().await.unwrap().0;
        assert_eq!(
            stored as usize,
            CLIENTS * PER_CLIENT,
            "every write is in the feed once"
        );
        server.stop().await;
    }
}

/// `datastore serve` on RocksDB (the program's defaults, durable commits)
/// on a runtime of its own with two workers, as on a 2-core machine: GET
/// latency idle, then while 32 clients write as fast as they can. Durable
/// commits wait on a writer thread, never on a runtime worker, so reads go
/// on. Both p99 figures are printed (never asserted); every request must
/// succeed.
#[test]
fn get_latency_while_32_clients_write_on_rocksdb() {
    const WRITERS: usize = 32;
    const GETS: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("rocksdb://{}", dir.path().join("db").display());
    let server = server_runtime.block_on(async {
        let ds = datastore::open_url(&url).await.unwrap();
        common::serve_store(ds, None, None).await
    });
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    clients.block_on(async {
        let seen = common::under_writes::measure(
            &server.url(""),
            WRITERS,
            GETS,
            Duration::from_millis(300),
        )
        .await;
        println!("{}", seen.report("serve on RocksDB", WRITERS));
        assert!(seen.written > 0, "the writers wrote");
    });
    server_runtime.block_on(server.stop());
}
