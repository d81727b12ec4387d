//! `GET /metrics`: the process's `metrics` in the Prometheus text format.
//!
//! The first router built installs a Prometheus recorder as the process's
//! global `metrics` recorder (unless the host installed one first: then
//! `/metrics` says so with a 404). Durations are histograms with buckets from
//! 50 µs to 10 s.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;
use crate::problem::Problem;

/// Bucket bounds of the `_seconds` histograms.
const SECONDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// Bucket bounds of the commit group size histogram.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// The handle of the recorder this crate installed, if it could.
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("datastore_commit_group_size".into()),
                        GROUP_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            let recorder = match recorder {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: no Prometheus recorder");
                    return None;
                }
            };
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(_) => {
                    tracing::info!("metrics: the host installed its own recorder; /metrics is off");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`: for admin tokens (the figures span every profile).
pub(crate) async fn render(State(state): State<AppState>, gate: crate::Gate) -> Response {
    if let Err(refused) = gate.require_all_owners("the process's metrics") {
        return refused.into_response();
    }
    let Some(handle) = handle() else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "no-metrics",
            "this process's metrics go to a recorder its host installed",
        )
        .into_response();
    };
    // The feed head is kept by the store as it publishes; the open
    // streams are this server's.
    metrics::gauge!("datastore_http_event_streams").set(state.guards.open_streams() as f64);
    handle.run_upkeep();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
