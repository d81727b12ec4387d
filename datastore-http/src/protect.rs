//! Limits that protect the server: a cap on open event streams (503) and a
//! request rate per bearer token (429), both with `Retry-After`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::problem::Problem;

/// A request rate: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per second each token may make on average.
    pub per_second: u32,
    /// Requests a token may make at once after being idle.
    pub burst: u32,
}

/// The state behind the limits, shared by every request.
#[derive(Debug, Default)]
pub(crate) struct Guards {
    streams: AtomicUsize,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The most buckets kept; beyond it, full ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// One open event stream's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct OwnedPermit(std::sync::Arc<Guards>);

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Guards {
    /// A place for one more event stream, or, when `max` are open, how
    /// many are (see [`too_many_streams`]).
    pub(crate) fn stream(self: &std::sync::Arc<Self>, max: usize) -> Result<OwnedPermit, usize> {
        let open = self.streams.fetch_add(1, Ordering::AcqRel);
        if open >= max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return Err(open);
        }
        Ok(OwnedPermit(self.clone()))
    }

    /// Open event streams now.
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// Takes one request from `key`'s bucket; `Err(seconds)` to wait when empty.
    fn take(&self, key: u64, rate: Rate) -> Result<(), u64> {
        let now = Instant::now();
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * f64::from(rate.per_second)
                    < burst
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * f64::from(rate.per_second);
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / f64::from(rate.per_second.max(1));
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The 503 answer to an event stream beyond the cap, `open` being open.
pub(crate) fn too_many_streams(open: usize) -> Response {
    let problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-streams",
        format!("{open} event streams are open, the most this server allows; try again later"),
    );
    ([(header::RETRY_AFTER, "5")], problem).into_response()
}

/// Answers 429 with `Retry-After` when the request's bearer token (or, on a
/// server without one, every caller together) has used up its rate. The
/// probes (`/healthz`, `/readyz`) are never limited.
pub(crate) async fn limit_rate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(rate) = state.limits.rate else {
        return next.run(request).await;
    };
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let mut hasher = DefaultHasher::new();
    request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default()
        .hash(&mut hasher);
    match state.guards.take(hasher.finish(), rate) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-requests",
                format!(
                    "more than {} requests a second (bursts of {}); try again in {wait} s",
                    rate.per_second, rate.burst
                ),
            );
            ([(header::RETRY_AFTER, wait.to_string())], problem).into_response()
        }
    }
}
