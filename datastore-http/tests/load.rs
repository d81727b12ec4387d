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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// GETs one after another from a client of their own (a thread and runtime
/// apart from the writers' clients, so they do not queue behind them),
/// timing each; sorted.
fn reader(base: &str, n: usize) -> Vec<Duration> {
    let base = base.to_string();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(timed_gets(&reqwest::Client::new(), &base, n))
    })
    .join()
    .unwrap()
}

/// GETs one after another, timing each.
async fn timed_gets(http: &reqwest::Client, base: &str, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let r = http
            .get(format!("{base}/v1/profiles/seed-{}", i % 200))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        r.bytes().await.unwrap();
        took.push(started.elapsed());
    }
    took.sort_unstable();
    took
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
        let http = reqwest::Client::new();
        let base = server.url("");
        for i in 0..200 {
            let id = format!("seed-{i}");
            let r = http
                .put(format!("{base}/v1/profiles/{id}"))
                .json(&json!({"id": id, "username": id}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
        }
        let idle = reader(&base, GETS);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writing = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("w{w}-{n}");
                        let r = http
                            .put(format!("{base}/v1/profiles/{id}"))
                            .header("if-none-match", "*")
                            .json(&json!({"id": id, "username": id}))
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // Let the writers get going before measuring.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let loaded = reader(&base, GETS);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut written = 0;
        for w in writers {
            written += w.await.unwrap();
        }
        let elapsed = writing.elapsed();
        let (idle_p99, loaded_p99) = (percentile(&idle, 0.99), percentile(&loaded, 0.99));
        println!(
            "serve on RocksDB: GET p50 {:.2?} p99 {:.2?} idle; p50 {:.2?} p99 {:.2?} while {WRITERS} clients wrote {written} profiles ({:.0}/s): loaded p99 / idle p99 = {:.1}",
            percentile(&idle, 0.5),
            idle_p99,
            percentile(&loaded, 0.5),
            loaded_p99,
            written as f64 / elapsed.as_secs_f64(),
            loaded_p99.as_secs_f64() / idle_p99.as_secs_f64()
        );
        assert!(written > 0, "the writers wrote");
    });
    server_runtime.block_on(server.stop());
}
