//! The operations that are not plain record writes: run events, logs,
//! batches, profile renames, collection patches and the latest runs by
//! status.

use std::collections::HashMap;

use axum::extract::{Path, Query as Params, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datastore_core::{
    Batch, CollectionEntry, CollectionPatch, Cursor, Direction, InitId, Kind, LogEntry, LogFilter,
    LogId, LogOp, Page, PageRequest, Profile, ProfileId, Query, Revision, Run, RunEvent, RunId,
    RunStatus, Versioned,
};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::body::Strict;
use crate::gate::{Gate, WRITE_ATTEMPTS, not_found};
use crate::policy::Access;
use crate::problem::Problem;
use crate::records::{etag, limit, precondition};
use crate::resources::Resource;
use crate::resources::param;

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
    /// When it happened (default: when the server receives it).
    #[serde(default)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn append_event(
    gate: Gate,
    Path(id): Path<String>,
    Strict(body): Strict<AppendEvent>,
) -> Result<Response, Problem> {
    if !gate.unrestricted() {
        // A run stays in its workflow, with its owner, for good.
        let found = gate.store().runs().get(&RunId::new(id.as_str())).await?;
        gate.check_written(&found)?;
    }
    let mut run = gate
        .store()
        .runs()
        .append_event(
            &RunId::new(id),
            body.step,
            RunEvent {
                at: body.at.unwrap_or_else(chrono::Utc::now),
                ..RunEvent::new(body.kind, body.payload)
            },
        )
        .await?;
    run.value.redact_for(&gate.who);
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
    gate: Gate,
    Path(id): Path<String>,
    Strict(body): Strict<AppendLog>,
) -> Result<Response, Problem> {
    let log = LogId::new(id);
    gate.check_log(&log, Access::Write).await?;
    let items = gate
        .store()
        .logs()
        .append(&log, body.expected_len, body.ops)
        .await?;
    let length = body.expected_len + items.len() as u64;
    Ok((StatusCode::CREATED, Json(Entries { items, length })).into_response())
}

async fn range_log(
    State(state): State<AppState>,
    gate: Gate,
    Path(id): Path<String>,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Entries>, Problem> {
    let log = LogId::new(id);
    gate.check_log(&log, Access::Read).await?;
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
    let items = gate.store().logs().range(&log, start, limit as u32).await?;
    let length = gate.store().logs().length(&log).await?;
    Ok(Json(Entries { items, length }))
}

/// The revisions a batch produced, one per op.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// One revision per op (a log append's last entry's).
    pub revisions: Vec<Revision>,
}

async fn apply(gate: Gate, Strict(batch): Strict<Batch>) -> Result<Json<Applied>, Problem> {
    let mut attempt = 0;
    let revisions = loop {
        // Every op is checked before anything is written; one refused op
        // refuses the batch.
        let mut ops = batch.ops.clone();
        let pinned = gate.check_batch(&mut ops).await?;
        attempt += 1;
        match gate.store().apply(Batch { ops }).await {
            Err(
                datastore_core::Error::Conflict { .. }
                | datastore_core::Error::AlreadyExists { .. }
                | datastore_core::Error::NotFound { .. },
            ) if pinned && attempt < WRITE_ATTEMPTS => {}
            other => break other?,
        }
    };
    Ok(Json(Applied { revisions }))
}

/// `POST /v1/profiles/{id}/rename`
#[derive(Debug, Deserialize, Serialize)]
pub struct Rename {
    /// The new username.
    pub username: String,
}

/// What a rename wrote: the profile, and the collection entries that now
/// carry its username.
#[derive(Debug, Serialize)]
pub struct RenameAnswer {
    /// The profile with its new username (its revision is the ETag).
    pub profile: Versioned<Profile>,
    /// The collection entries renamed with it, in the same write.
    pub entries: Vec<Versioned<CollectionEntry>>,
}

async fn rename(
    gate: Gate,
    Path(id): Path<String>,
    headers: HeaderMap,
    Strict(body): Strict<Rename>,
) -> Result<Response, Problem> {
    let (precondition, preconditioned) = precondition(&headers)?;
    if !gate.unrestricted() {
        let found = gate
            .store()
            .profiles()
            .get(&ProfileId::new(id.as_str()))
            .await?;
        gate.check_written(&found)?;
    }
    let renamed = gate
        .store()
        .profiles()
        .rename(&ProfileId::new(id), &body.username, precondition)
        .await
        // A failed If-Match is 412, as for a put.
        .map_err(|e| Problem::from_error(&e, preconditioned))?;
    let tag = etag(renamed.profile.revision);
    let mut response = Json(RenameAnswer {
        profile: renamed.profile,
        // Entries in other profiles' collections carry the name too.
        entries: gate
            .filter_many(renamed.entries.into_iter().map(Some).collect())
            .into_iter()
            .flatten()
            .collect(),
    })
    .into_response();
    response.headers_mut().insert(axum::http::header::ETAG, tag);
    Ok(response)
}

/// `POST /v1/collections:update-by-init-id`
#[derive(Debug, Deserialize, Serialize)]
pub struct UpdateByInitId {
    /// The dataset whose entries to patch, in every profile's collection.
    pub init_id: InitId,
    /// The fields to set or clear (a field left out is kept, `null` clears it).
    pub patch: CollectionPatch,
}

/// The entries a patch changed.
#[derive(Debug, Serialize)]
pub struct Patched {
    /// Each changed entry as written.
    pub items: Vec<Versioned<CollectionEntry>>,
}

async fn update_by_init_id(
    gate: Gate,
    Strict(body): Strict<UpdateByInitId>,
) -> Result<Json<Patched>, Problem> {
    gate.require_all_owners("patching a dataset's collection entries")?;
    let items = gate
        .store()
        .collections()
        .update_by_init_id(&body.init_id, body.patch)
        .await?;
    Ok(Json(Patched { items }))
}

async fn latest_runs(
    State(state): State<AppState>,
    gate: Gate,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Page<Versioned<Run>>>, Problem> {
    gate.require_all_owners("the latest run of every workflow")?;
    for name in params.keys() {
        if !["status", "limit", "cursor"].contains(&name.as_str()) {
            return Err(Problem::bad_request(
                name,
                format!("unknown parameter {name:?}; expected status, limit, cursor"),
            ));
        }
    }
    let text = param(&params, "status")
        .ok_or_else(|| Problem::bad_request("status", "required: the status to look for"))?;
    let status: RunStatus = serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| Problem::bad_request("status", format!("unknown run status {text:?}")))?;
    let page = PageRequest::after(
        limit(&params, state.limits.max_page_limit)?,
        param(&params, "cursor").map(Cursor::from_text),
    );
    Ok(Json(
        gate.store()
            .runs()
            .list_latest_by_status(status, page)
            .await?,
    ))
}

/// `DELETE /v1/logs/{id}`: how many entries the log had.
#[derive(Debug, Serialize)]
pub struct Removed {
    /// The number of entries removed.
    pub removed: u64,
}

async fn remove_log(gate: Gate, Path(id): Path<String>) -> Result<Json<Removed>, Problem> {
    let log = LogId::new(id);
    gate.check_log(&log, Access::Write).await?;
    let removed = gate.store().logs().remove(&log).await?;
    Ok(Json(Removed { removed }))
}

/// `GET /v1/logs?log=&limit=&cursor=&direction=`: log entries a page at a
/// time, of one log (`log=ID`) or of every log by id, then sequence number.
async fn list_logs(
    State(state): State<AppState>,
    gate: Gate,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Page<Versioned<LogEntry>>>, Problem> {
    for name in params.keys() {
        if !["log", "limit", "cursor", "direction"].contains(&name.as_str()) {
            return Err(Problem::bad_request(
                name,
                format!("unknown parameter {name:?}; expected log, limit, cursor, direction"),
            ));
        }
    }
    let filter = match param(&params, "log") {
        Some(log) => {
            let log = LogId::new(log);
            match gate.check_log(&log, Access::Read).await {
                Ok(()) => LogFilter::Log(log),
                Err(p) if p.status == 404 => {
                    return Ok(Json(Page {
                        items: Vec::new(),
                        next: None,
                    }));
                }
                Err(p) => return Err(p),
            }
        }
        None => {
            gate.require_all_owners("every log")?;
            LogFilter::All
        }
    };
    let direction = match param(&params, "direction") {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(Problem::bad_request(
                "direction",
                format!("{other:?}: expected asc or desc"),
            ));
        }
    };
    let query = Query::<LogEntry>::new(filter)
        .direction(direction)
        .limit(limit(&params, state.limits.max_page_limit)?)
        .after(param(&params, "cursor").map(Cursor::from_text));
    Ok(Json(gate.store().logs().list(query).await?))
}

/// `GET /v1/count?kind=K`: how many records of a kind the store holds.
#[derive(Debug, Serialize)]
pub struct Counted {
    /// The kind counted.
    pub kind: Kind,
    /// How many records (log entries, for `log`).
    pub count: u64,
}

async fn count(
    gate: Gate,
    Params(params): Params<HashMap<String, String>>,
) -> Result<Json<Counted>, Problem> {
    gate.require_all_owners("counting a kind")?;
    for name in params.keys() {
        if name != "kind" {
            return Err(Problem::bad_request(
                name,
                format!("unknown parameter {name:?}; expected kind"),
            ));
        }
    }
    let text = param(&params, "kind")
        .ok_or_else(|| Problem::bad_request("kind", "required: the kind to count"))?;
    let kind = Kind::from_name(text)
        .ok_or_else(|| Problem::bad_request("kind", format!("{text:?} is not a kind")))?;
    let count = gate.store().count(kind).await?;
    Ok(Json(Counted { kind, count }))
}

/// `GET /v1/profiles:by-username/{username}`: the profile holding it.
async fn profile_by_username(
    gate: Gate,
    Path(username): Path<String>,
) -> Result<Response, Problem> {
    let found = gate.store().profiles().get_by_username(&username).await?;
    // Refused as the store refuses a username no one holds.
    let found = gate
        .readable(found)
        .map_err(|_| not_found(Kind::Profile, &username))?;
    Ok(with_etag(found))
}

/// `GET /v1/workflows:by-init-id/{init_id}`: the workflow of a dataset.
async fn workflow_by_init_id(gate: Gate, Path(init_id): Path<String>) -> Result<Response, Problem> {
    let found = gate
        .store()
        .workflows()
        .get_by_init_id(&InitId::new(init_id.as_str()))
        .await?;
    let found = gate
        .readable(found)
        .map_err(|_| not_found(Kind::Workflow, &init_id))?;
    Ok(with_etag(found))
}

/// `GET /v1/workflows/{id}/runs:count`: how many runs a workflow has.
async fn count_runs(gate: Gate, Path(id): Path<String>) -> Result<Json<RunCount>, Problem> {
    gate.check_workflow(&datastore_core::WorkflowId::new(id.as_str()), Access::Read)
        .await?;
    let count = gate
        .store()
        .runs()
        .count(&datastore_core::WorkflowId::new(id))
        .await?;
    Ok(Json(RunCount { count }))
}

/// The answer of `runs:count`.
#[derive(Debug, Serialize)]
pub struct RunCount {
    /// How many runs.
    pub count: u64,
}

/// `GET /v1/capabilities`: what the store behind the server supports, and
/// its feed retention.
async fn capabilities(State(state): State<AppState>) -> Json<ServerCapabilities> {
    Json(ServerCapabilities {
        capabilities: state.ds.capabilities(),
        retention: state.ds.changes().retention(),
    })
}

/// The answer of `GET /v1/capabilities`.
#[derive(Debug, Serialize)]
pub struct ServerCapabilities {
    /// The store's capabilities.
    pub capabilities: datastore_core::Capabilities,
    /// Its feed retention.
    pub retention: datastore_core::Retention,
}

fn with_etag<R: Serialize>(found: Versioned<R>) -> Response {
    let tag = etag(found.revision);
    let mut response = Json(found).into_response();
    response.headers_mut().insert(axum::http::header::ETAG, tag);
    response
}

/// `POST /v1/history:compact` with a `HistoryPolicy` (`{"kinds":
/// {"profile": {"enabled": true, "max_versions": 10, "max_age": null}}}`;
/// kinds left out are not compacted): removes the record versions outside
/// it. Admin tokens only.
async fn compact_history(
    gate: Gate,
    Strict(policy): Strict<datastore_core::HistoryPolicy>,
) -> Result<Json<datastore_core::HistoryCompaction>, Problem> {
    gate.require_all_owners("compacting history")?;
    Ok(Json(gate.store().compact_history(&policy).await?))
}

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/profiles:by-username/{username}",
            get(profile_by_username),
        )
        .route(
            "/v1/workflows:by-init-id/{init_id}",
            get(workflow_by_init_id),
        )
        .route("/v1/workflows/{id}/runs:count", get(count_runs))
        .route("/v1/capabilities", get(capabilities))
        .route("/v1/runs/{id}/events", post(append_event))
        .route("/v1/runs:latest", get(latest_runs))
        .route("/v1/profiles/{id}/rename", post(rename))
        .route("/v1/collections:update-by-init-id", post(update_by_init_id))
        .route("/v1/logs/{id}/entries", post(append_log).get(range_log))
        .route("/v1/logs/{id}", axum::routing::delete(remove_log))
        .route("/v1/logs", get(list_logs))
        .route("/v1/count", get(count))
        .route("/v1/batch", post(apply))
        .route("/v1/history:compact", post(compact_history))
}
