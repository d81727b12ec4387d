//! GET latency of a running server, idle and while clients write: shared by
//! `datastore-http`'s load test (debug) and `datastore`'s
//! `serve_under_writes` bench (release), which includes this file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// Profiles seeded before measuring; the GETs cycle through them.
const SEEDED: usize = 200;

/// What one measurement saw.
pub struct UnderWrites {
    /// GET latencies with no writers, sorted.
    pub idle: Vec<Duration>,
    /// GET latencies while the writers ran, sorted.
    pub loaded: Vec<Duration>,
    /// Profiles the writers created.
    pub written: u64,
    /// How long the writers ran.
    pub elapsed: Duration,
}

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

impl UnderWrites {
    /// Loaded p99 over idle p99.
    pub fn p99_ratio(&self) -> f64 {
        percentile(&self.loaded, 0.99).as_secs_f64() / percentile(&self.idle, 0.99).as_secs_f64()
    }

    /// One line with both p50s and p99s, the write rate and the ratio.
    pub fn report(&self, label: &str, writers: usize) -> String {
        format!(
            "{label}: GET p50 {:.2?} p99 {:.2?} idle; p50 {:.2?} p99 {:.2?} while {writers} clients wrote {} profiles ({:.0}/s); loaded p99 / idle p99 = {:.1}",
            percentile(&self.idle, 0.5),
            percentile(&self.idle, 0.99),
            percentile(&self.loaded, 0.5),
            percentile(&self.loaded, 0.99),
            self.written,
            self.written as f64 / self.elapsed.as_secs_f64(),
            self.p99_ratio()
        )
    }
}

/// Seeds profiles through `base`, times `gets` GETs idle, starts `writers`
/// clients creating profiles as fast as they can, waits `warmup`, times
/// `gets` GETs again, and stops the writers. Every request must succeed.
pub async fn measure(base: &str, writers: usize, gets: usize, warmup: Duration) -> UnderWrites {
    let http = reqwest::Client::new();
    for i in 0..SEEDED {
        let id = format!("seed-{i}");
        let r = http
            .put(format!("{base}/v1/profiles/{id}"))
            .json(&json!({"id": id, "username": id}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let idle = reader(base, gets);
    let stop = Arc::new(AtomicBool::new(false));
    let writing = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (http, base, stop) = (http.clone(), base.to_string(), stop.clone());
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
    // Let the writers get going before measuring.
    tokio::time::sleep(warmup).await;
    let loaded = reader(base, gets);
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for t in tasks {
        written += t.await.unwrap();
    }
    UnderWrites {
        idle,
        loaded,
        written,
        elapsed: writing.elapsed(),
    }
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
            .get(format!("{base}/v1/profiles/seed-{}", i % SEEDED))
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
