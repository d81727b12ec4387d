//! A bounded load test on loopback: a fixed number of requests from
//! concurrent client tasks; reports requests per second and checks that
//! every request succeeded. (The rate is printed, never asserted.)

mod common;

use std::time::Instant;

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
