//! `Instrumented`: tracing spans, per-operation counts and latencies, and
//! the same as `metrics` counters and histograms.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datastore_core::{Datastore, Result, StoreName};
use futures::future::BoxFuture;
use tracing::Instrument as _;

use super::{Call, Layer, Layered};

/// A datastore that emits a tracing span per call and counts every
/// operation's calls, errors and latency.
pub type Instrumented = Layered<Instrumentation>;

impl Instrumented {
    /// Instruments `inner`.
    pub fn wrap(inner: std::sync::Arc<dyn Datastore>) -> Self {
        Layered::new(inner, Instrumentation::default())
    }
}

/// The statistics of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Time spent in all calls.
    pub total: Duration,
    /// The slowest call.
    pub max: Duration,
}

impl OpStats {
    /// The mean latency, or zero before the first call.
    pub fn mean(&self) -> Duration {
        if self.calls == 0 {
            Duration::ZERO
        } else {
            self.total / u32::try_from(self.calls).unwrap_or(u32::MAX)
        }
    }
}

/// The [`Layer`] behind [`Instrumented`]: its statistics.
#[derive(Debug, Default)]
pub struct Instrumentation {
    stats: Mutex<BTreeMap<(&'static str, &'static str), OpStats>>,
}

impl Instrumentation {
    /// The statistics of one operation (`store`, `op`), zero if never called.
    pub fn stats(&self, store: StoreName, op: &str) -> OpStats {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats
            .iter()
            .find(|((s, o), _)| *s == store.as_str() && *o == op)
            .map(|(_, v)| *v)
            .unwrap_or_default()
    }

    /// Every operation called so far (store name, operation, statistics),
    /// in a stable order.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, OpStats)> {
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.iter().map(|((s, o), v)| (*s, *o, *v)).collect()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn record(&self, store: StoreName, op: &'static str, elapsed: Duration, failed: bool) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let entry = stats.entry((store.as_str(), op)).or_default();
        entry.calls += 1;
        entry.errors += u64::from(failed);
        entry.total += elapsed;
        entry.max = entry.max.max(elapsed);
    }
}

impl Layer for Instrumentation {
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        inner: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        let span = tracing::debug_span!(
            "datastore",
            store = call.store.as_str(),
            op = call.op,
            key = call.key
        );
        Box::pin(
            async move {
                let started = Instant::now();
                let result = inner.await;
                let elapsed = started.elapsed();
                self.record(call.store, call.op, elapsed, result.is_err());
                record_metrics(call, elapsed, result.as_ref().err());
                match &result {
                    Ok(_) => tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "ok"),
                    Err(e) => tracing::debug!(elapsed_us = elapsed.as_micros() as u64, error = %e, "failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Records one call in the `metrics` facade (a no-op without a recorder):
/// `datastore_operations_total` and `datastore_operation_duration_seconds`
/// by store and operation, `datastore_operation_errors_total` by store,
/// operation and error variant. Labels never hold a key.
fn record_metrics(call: Call<'_>, elapsed: Duration, error: Option<&datastore_core::Error>) {
    let (store, op) = (call.store.as_str(), call.op);
    metrics::counter!("datastore_operations_total", "store" => store, "op" => op).increment(1);
    metrics::histogram!("datastore_operation_duration_seconds", "store" => store, "op" => op)
        .record(elapsed.as_secs_f64());
    if let Some(e) = error {
        metrics::counter!(
            "datastore_operation_errors_total",
            "store" => store,
            "op" => op,
            "error" => e.variant()
        )
        .increment(1);
    }
}
