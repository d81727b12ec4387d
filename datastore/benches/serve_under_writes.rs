//! `datastore serve` on RocksDB (the program's defaults: durable commits,
//! the cache on) on a runtime of its own with two workers, as on a 2-core
//! machine: GET latency idle, then while 32 clients write as fast as they
//! can. The reader is a client of its own (a thread and runtime apart from
//! the writers' clients). The release-build figure beside `datastore-http`'s
//! load test, which prints the same two figures from the debug build.
//!
//! ```text
//! cargo bench -p datastore --bench serve_under_writes
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datastore_http::{Server, ServerConfig};
use serde_json::json;

const WRITERS: usize = 32;
const GETS: usize = 5000;

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

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("rocksdb://{}", dir.path().join("db").display());
    let (addr, stop) = server_runtime.block_on(async {
        let ds = datastore::open_url(&url).await.unwrap();
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerConfig::default()
        };
        let server = Server::bind(ds, config).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    });
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    clients.block_on(async {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        for i in 0..200 {
            let id = format!("seed-{i}");
            http.put(format!("{base}/v1/profiles/{id}"))
                .json(&json!({"id": id, "username": id}))
                .send()
                .await
                .unwrap();
        }
        let idle = reader(&base, GETS);
        let stop_writers = Arc::new(AtomicBool::new(false));
        let writing = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (http, base, stop) = (http.clone(), base.clone(), stop_writers.clone());
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
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
        tokio::time::sleep(Duration::from_millis(500)).await;
        let loaded = reader(&base, GETS);
        stop_writers.store(true, Ordering::Relaxed);
        let mut written = 0;
        for w in writers {
            written += w.await.unwrap();
        }
        let elapsed = writing.elapsed();
        let (idle_p99, loaded_p99) = (percentile(&idle, 0.99), percentile(&loaded, 0.99));
        println!(
            "serve on RocksDB, release: GET p50 {:.2?} p99 {:.2?} idle; p50 {:.2?} p99 {:.2?} while {WRITERS} clients wrote {written} profiles ({:.0}/s); loaded p99 / idle p99 = {:.1}",
            percentile(&idle, 0.5),
            idle_p99,
            percentile(&loaded, 0.5),
            loaded_p99,
            written as f64 / elapsed.as_secs_f64(),
            loaded_p99.as_secs_f64() / idle_p99.as_secs_f64()
        );
    });
    let _ = stop.send(());
    drop(server_runtime);
}
