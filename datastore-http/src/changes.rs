//! `GET /v1/changes`: the change feed as server-sent events. Each event's id
//! is its feed cursor, so a browser reconnecting with `Last-Event-ID`
//! resumes without a gap; a cursor whose changes were compacted away gets a
//! `reload` event (the client must reload what it shows, then follow again).
//!
//! `?kind=`, `?parent=` and `?id=` (each repeatable) filter the stream on the
//! server: only matching changes are sent (see [`FeedFilter`] for how they
//! combine), and an event's id is still its position in the one feed.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query as Params, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use datastore_core::{
    Change, ChangeStream, Compaction, Datastore, Error, FeedCursor, FeedEvent, FeedFilter,
    Retention,
};
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::sync::Arc;

use crate::AppState;
use crate::gate::{FeedGate, Gate};
use crate::problem::Problem;

/// The most changes one `changes:page` request looks at for a caller who
/// may not see them all.
const PAGE_LOOK_LIMIT: usize = 10_000;

/// `GET /v1/changes/head`
#[derive(Debug, Serialize)]
pub struct Head {
    /// The cursor of the newest change (0 if none): follow from here to see
    /// only what happens next.
    pub cursor: u64,
}

async fn head(State(state): State<AppState>) -> Result<Json<Head>, Problem> {
    Ok(Json(Head {
        cursor: state.ds.changes().head().await?.0,
    }))
}

/// `GET /v1/changes:page?from=N&limit=L&kind=&parent=&id=`: up to `limit`
/// changes after `from` that match the filter, in commit order.
#[derive(Debug, Serialize)]
pub struct ChangePage {
    /// The changes.
    pub items: Vec<Change>,
    /// How far the page looked: continue from here. Past the last item
    /// when changes the caller may not see came after it.
    pub through: u64,
}

async fn page(
    State(state): State<AppState>,
    gate: Gate,
    Params(params): Params<Vec<(String, String)>>,
) -> Result<Json<ChangePage>, Problem> {
    let mut limit = 100u32;
    let mut rest = Vec::new();
    for (name, value) in params {
        if name == "limit" {
            limit = value
                .parse()
                .map_err(|_| Problem::bad_request("limit", format!("{value:?} is not a number")))?;
        } else {
            rest.push((name, value));
        }
    }
    let (from, filter) = request(&HeaderMap::new(), &rest)?;
    let mut through = from.unwrap_or(FeedCursor::START);
    if gate.unrestricted() {
        let items = state
            .ds
            .changes()
            .since_matching(through, limit, &filter)
            .await?;
        let through = items.last().map_or(through, Change::cursor).0;
        return Ok(Json(ChangePage { items, through }));
    }
    // Read on past changes the caller may not see until the page is full,
    // the feed ends, or this request has looked at enough.
    let mut seen = FeedGate::new(gate);
    let mut items = Vec::new();
    let mut looked = 0usize;
    while items.len() < limit as usize && looked < PAGE_LOOK_LIMIT {
        let batch = state
            .ds
            .changes()
            .since_matching(through, limit.max(100), &filter)
            .await?;
        let Some(last) = batch.last() else { break };
        let mut last_cursor = last.cursor();
        for change in batch {
            looked += 1;
            if seen.sees(&change).await? {
                let cursor = change.cursor();
                items.push(change);
                if items.len() == limit as usize {
                    last_cursor = cursor;
                    break;
                }
            }
        }
        through = last_cursor;
    }
    Ok(Json(ChangePage {
        items,
        through: through.0,
    }))
}

/// `POST /v1/changes:compact` with a retention (`{"max_changes": N,
/// "max_age": SECONDS}`, either may be null): removes the changes outside it.
async fn compact(
    State(state): State<AppState>,
    gate: Gate,
    crate::body::Strict(retention): crate::body::Strict<Retention>,
) -> Result<Json<Compaction>, Problem> {
    gate.require_all_owners("compacting the feed")?;
    Ok(Json(state.ds.changes().compact(retention).await?))
}

/// `POST /v1/changes:start-after` with `{"position": N}`: the feed continues
/// after N (a restored store; see `Datastore::start_feed_after`) →
/// `{"cursor": HEAD}`.
async fn start_after(
    State(state): State<AppState>,
    gate: Gate,
    crate::body::Strict(body): crate::body::Strict<StartAfter>,
) -> Result<Json<Head>, Problem> {
    gate.require_all_owners("moving the feed's start")?;
    let head = state.ds.start_feed_after(FeedCursor(body.position)).await?;
    Ok(Json(Head { cursor: head.0 }))
}

/// The body of `POST /v1/changes:start-after`.
#[derive(Debug, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StartAfter {
    /// The position the feed continues after.
    pub position: u64,
}

/// What a request asks for: where to start (`Last-Event-ID`, a reconnecting
/// browser; else `?from=`; else `None`, the head: only what happens next)
/// and which changes (`?kind=`, `?parent=`, `?id=`, each repeatable).
fn request(
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<(Option<FeedCursor>, FeedFilter), Problem> {
    let mut filter = FeedFilter::all();
    let mut from = None;
    for (name, value) in params {
        match name.as_str() {
            "from" => {
                let cursor = value.parse::<u64>().map_err(|_| {
                    Problem::bad_request("from", format!("{value:?} is not a cursor"))
                })?;
                from = Some(FeedCursor(cursor));
            }
            "kind" => filter = filter.kind_named(value)?,
            "parent" => filter = filter.parent(value.clone()),
            "id" => filter = filter.id(value.clone()),
            _ => {
                return Err(Problem::bad_request(
                    name,
                    format!("unknown parameter {name:?}; expected from, kind, parent or id"),
                ));
            }
        }
    }
    filter.validate()?;
    if let Some(id) = headers.get("last-event-id") {
        let text = id.to_str().unwrap_or_default();
        let cursor = text.trim().parse::<u64>().map_err(|_| {
            Problem::bad_request(
                "last-event-id",
                format!("{text:?} is not a cursor this server gave"),
            )
        })?;
        return Ok((Some(FeedCursor(cursor)), filter));
    }
    Ok((from, filter))
}

async fn changes(
    State(state): State<AppState>,
    gate: Gate,
    headers: HeaderMap,
    Params(params): Params<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let (from, filter) = request(&headers, &params)?;
    let permit = match state.guards.stream(state.limits.max_streams) {
        Ok(permit) => permit,
        Err(open) => return Ok(crate::protect::too_many_streams(open)),
    };
    let from = match from {
        Some(cursor) => cursor,
        None => state.ds.changes().head().await?,
    };
    // Check the cursor before answering 200: one ahead of the feed is a 400;
    // one compacted away gets the `reload` event.
    let events: futures::stream::BoxStream<'static, Result<Event, Infallible>> =
        match state.ds.changes().since(from, 1).await {
            Err(Error::CursorExpired {
                compacted_through, ..
            }) => futures::stream::once(async move { Ok(reload(compacted_through)) }).boxed(),
            Err(e) => return Err(e.into()),
            Ok(_) => follow(state.ds.clone(), from, filter, FeedGate::new(gate)).boxed(),
        };
    let mut shutdown = state.shutdown.clone();
    let events = events
        .take_until(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        // The stream holds its place until it ends.
        .map(move |event| {
            let _ = &permit;
            event
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn reload(compacted_through: u64) -> Event {
    Event::default()
        .event("reload")
        .data(serde_json::json!({ "compacted_through": compacted_through }).to_string())
}

/// The feed from `from` as events, resubscribing after a lag, ending with a
/// `reload` if the cursor expires on the way.
fn follow(
    ds: Arc<dyn Datastore>,
    from: FeedCursor,
    filter: FeedFilter,
    gate: FeedGate,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Follow {
        ds: Arc<dyn Datastore>,
        stream: Option<ChangeStream>,
        cursor: FeedCursor,
        filter: FeedFilter,
        gate: FeedGate,
    }
    let first = Follow {
        stream: Some(ds.changes().subscribe_matching(from, filter.clone())),
        ds,
        cursor: from,
        filter,
        gate,
    };
    futures::stream::unfold(first, |mut f| async move {
        loop {
            let stream = f.stream.as_mut()?;
            match stream.next().await {
                None => return None,
                Some(Ok(FeedEvent::Change(change))) => {
                    f.cursor = change.cursor();
                    // Only changes to records the caller may read, decided
                    // as each is sent.
                    match f.gate.sees(&change).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(problem) => {
                            f.stream = None;
                            let event =
                                Event::default().event("error").data(problem.detail.clone());
                            return Some((Ok(event), f));
                        }
                    }
                    let event = Event::default()
                        .id(change.seq.to_string())
                        .event("change")
                        .json_data(&change)
                        .unwrap_or_else(|_| Event::default().comment("unencodable change"));
                    return Some((Ok(event), f));
                }
                Some(Ok(FeedEvent::Lagged { resume_from })) => {
                    f.cursor = resume_from;
                    let filter = f.filter.clone();
                    f.stream = Some(f.ds.changes().subscribe_matching(resume_from, filter));
                }
                Some(Err(Error::CursorExpired {
                    compacted_through, ..
                })) => {
                    f.stream = None;
                    return Some((Ok(reload(compacted_through)), f));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "change feed failed; ending the event stream");
                    f.stream = None;
                    let event = Event::default().event("error").data(e.to_string());
                    return Some((Ok(event), f));
                }
            }
        }
    })
}

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/changes", get(changes))
        .route("/v1/changes/head", get(head))
        .route("/v1/changes:page", get(page))
        .route("/v1/changes:compact", axum::routing::post(compact))
        .route("/v1/changes:start-after", axum::routing::post(start_after))
}
