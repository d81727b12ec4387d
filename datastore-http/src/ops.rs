//! The operations that are not plain record writes: run events, logs and
//! batches.

use std::collections::HashMap;

use axum::extract::{Path, Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use datastore_core::{Batch, LogEntry, LogId, LogOp, Revision, RunEvent, RunId, Versioned};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::body::Strict;
use crate::problem::Problem;
use crate::records::etag;

/// `POST /v1/runs/{id}/events`
#[derive(Debug, Deserialize, Serialize)]
pub struct AppendEvent {
    /// The step the event belongs to.
    pub step: usize,
    /// What happened (`print`, `error`, ...).
    pub kind: String,
    /// Its details.
    #[serde(default)]
    pub payload: serde_json::Value,
}

async fn append_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Strict(body): Strict<AppendEvent>,
) -> Result<Response, Problem> {
    let run = state
        .ds
        .runs()
        .append_event(
            &RunId::new(id),
            body.step,
            RunEvent::new(body.kind, body.payload),
        )
        .await?;
    let tag = etag(run.revision);
    let mut response = Json(run).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, tag);
    Ok(response)
}

/// `POST /v1/logs/{id}/entries`
#[derive(Debug, Deserialize, Serialize)]
pub struct AppendLog {
    /// The log's length before the append (409 if it is not).
    pub expected_len: u64,
    /// The ops, in order.
    pub ops: Vec<LogOp>,
}

/// Log entries, and the log's length.
#[derive(Debug, Serialize)]
pub struct Entries {
    /// The entries.
    pub items: Vec<Versioned<LogEntry>>,
    /// The log's length now.
    pub length: u64,
}

async fn append_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Strict(body): Strict<AppendLog>,
) -> Result<Response, Problem> {
    let log = LogId::new(id);
    let items = state
        .ds
        .logs()
        .append(&log, body.expected_len, body.ops)
        .await?;
    let length = body.expected_len + items.len() as u64;
    Ok((StatusCode::CREATED, Json(Entries { items, length })).into_response())
}

async fn range_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Entries>, Problem> {
    let log = LogId::new(id);
    for name in params.keys() {
        if name != "start" && name != "limit" {
            return Err(Problem::bad_request(
                name,
                format!("unknown parameter {name:?}; expected start, limit"),
            ));
        }
    }
    let number = |name: &str, default: u64| -> Result<u64, Problem> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| Problem::bad_request(name, format!("{v:?} is not a number")))
        })
    };
    let start = number("start", 0)?;
    let limit = number("limit", u64::from(datastore_core::DEFAULT_PAGE_LIMIT))?;
    let max = state.limits.max_page_limit;
    if limit == 0 || limit > u64::from(max) {
        return Err(Problem::bad_request(
            "limit",
            format!("{limit} is not between 1 and {max}"),
        ));
    }
    let items = state.ds.logs().range(&log, start, limit as u32).await?;
    let length = state.ds.logs().length(&log).await?;
    Ok(Json(Entries { items, length }))
}

/// The revisions a batch produced, one per op.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// One revision per op (a log append's last entry's).
    pub revisions: Vec<Revision>,
}

async fn apply(
    State(state): State<AppState>,
    Strict(batch): Strict<Batch>,
) -> Result<Json<Applied>, Problem> {
    let revisions = state.ds.apply(batch).await?;
    Ok(Json(Applied { revisions }))
}

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs/{id}/events", post(append_event))
        .route("/v1/logs/{id}/entries", post(append_log).get(range_log))
        .route("/v1/batch", post(apply))
}
