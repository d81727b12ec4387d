//! The change feed over `/v1/changes`: the head, pages of the feed read
//! from the event stream, and subscriptions that reconnect with
//! `Last-Event-ID` and buffer like a local subscriber.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datastore_core::{
    Change, ChangeFeed, ChangeStream, Compaction, Error, FeedCursor, FeedEvent, FeedFilter, Result,
    Retention, StoreName,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::http::{SseEvent, SseReader};
use crate::problem::{Ctx, parse_compacted};
use crate::{Inner, RemoteStore};

const STORE: StoreName = StoreName::Changes;

/// The longest an event stream may stay silent before it is taken for
/// dead and reopened (the server sends a keep-alive every 15 seconds).
const IDLE: Duration = Duration::from_secs(45);

/// The first and the longest wait between reconnection attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

#[derive(Deserialize)]
pub(crate) struct Head {
    pub(crate) cursor: u64,
}

#[derive(Deserialize)]
struct ChangePage {
    items: Vec<Change>,
}

#[derive(Deserialize)]
struct Reload {
    compacted_through: u64,
}

/// The query parameters of a filter.
fn filter_params(filter: &FeedFilter) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    params.extend(
        filter
            .kinds
            .iter()
            .map(|k| ("kind", k.as_str().to_string())),
    );
    params.extend(filter.parents.iter().map(|p| ("parent", p.clone())));
    params.extend(filter.ids.iter().map(|i| ("id", i.clone())));
    params
}

/// Opens `/v1/changes` after `from` (with `Last-Event-ID` when resuming).
async fn open(
    inner: &Inner,
    from: FeedCursor,
    filter: &FeedFilter,
    resuming: bool,
) -> Result<SseReader> {
    let ctx = Ctx::new(STORE, from.to_string());
    let mut params = filter_params(filter);
    params.push(("from", from.to_string()));
    let mut rb = inner
        .http
        .request(reqwest::Method::GET, "/v1/changes", true)
        .query(&params)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if resuming {
        rb = rb.header("last-event-id", from.to_string());
    }
    let response = tokio::time::timeout(inner.http.timeout(), inner.http.send(rb, &ctx))
        .await
        .map_err(|_| ctx.unavailable("the event stream did not open in time"))??;
    SseReader::new(response, &ctx)
}

/// What one event of the stream means.
enum Step {
    Change(Change),
    Fail(Error),
    Skip,
}

fn interpret(event: SseEvent, cursor: FeedCursor) -> Step {
    let ctx = Ctx::new(STORE, cursor.to_string());
    match event.event.as_deref() {
        Some("change") => match serde_json::from_str::<Change>(&event.data) {
            Ok(change) => Step::Change(change),
            Err(e) => Step::Fail(ctx.backend(format!("a change did not decode: {e}"))),
        },
        Some("reload") => {
            let compacted_through = serde_json::from_str::<Reload>(&event.data)
                .map(|r| r.compacted_through)
                .ok()
                .or_else(|| parse_compacted(&event.data))
                .unwrap_or(0);
            Step::Fail(Error::CursorExpired {
                store: STORE,
                key: cursor.to_string(),
                compacted_through,
            })
        }
        Some("error") => {
            Step::Fail(ctx.backend(format!("the server's feed failed: {}", event.data)))
        }
        _ => Step::Skip,
    }
}

impl RemoteStore {
    /// The newest change's cursor.
    async fn read_head(&self) -> Result<FeedCursor> {
        let rb = self.inner.http.get("/v1/changes/head");
        let head: Head = self.inner.http.json(rb, &Ctx::new(STORE, "")).await?;
        Ok(FeedCursor(head.cursor))
    }
}

#[async_trait]
impl ChangeFeed for RemoteStore {
    /// `GET /v1/changes:page` (on a server without it, read from the event
    /// stream up to the head).
    async fn since_matching(
        &self,
        cursor: FeedCursor,
        limit: u32,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        let mut params = filter_params(filter);
        params.push(("from", cursor.to_string()));
        params.push(("limit", limit.to_string()));
        let rb = self.inner.http.get("/v1/changes:page").query(&params);
        let page: ChangePage = self
            .inner
            .http
            .json(rb, &Ctx::new(STORE, cursor.to_string()))
            .await?;
        Ok(page.items)
    }

    async fn head(&self) -> Result<FeedCursor> {
        self.read_head().await
    }

    /// Follows `/v1/changes` from `from`. A task reads the stream into a
    /// buffer of [`Capabilities::subscriber_buffer`] changes; a subscriber
    /// that lets it fill gets [`FeedEvent::Lagged`], as locally. A broken
    /// or ended stream (the server restarting) is reopened with
    /// `Last-Event-ID` from the last change received, for up to
    /// `RemoteConfig::reconnect_for`; then the stream ends with `Unavailable`.
    ///
    /// [`Capabilities::subscriber_buffer`]: datastore_core::Capabilities::subscriber_buffer
    fn subscribe_matching(&self, from: FeedCursor, filter: FeedFilter) -> ChangeStream {
        enum State {
            Start(Arc<Inner>, FeedCursor, FeedFilter),
            Running(mpsc::Receiver<Result<Change>>, Arc<AtomicBool>, FeedCursor),
            Done,
        }
        let first = State::Start(self.inner.clone(), from, filter);
        futures::stream::unfold(first, |state| async move {
            let (mut rx, lagged, last) = match state {
                State::Done => return None,
                State::Start(inner, from, filter) => {
                    if let Err(e) = filter.validate() {
                        return Some((Err(e), State::Done));
                    }
                    let (tx, rx) = mpsc::channel(inner.settings.subscriber_buffer.max(1));
                    let lagged = Arc::new(AtomicBool::new(false));
                    tokio::spawn(follow(inner, from, filter, tx, lagged.clone()));
                    (rx, lagged, from)
                }
                State::Running(rx, lagged, last) => (rx, lagged, last),
            };
            match rx.recv().await {
                Some(Ok(change)) => {
                    let cursor = change.cursor();
                    Some((
                        Ok(FeedEvent::Change(change)),
                        State::Running(rx, lagged, cursor),
                    ))
                }
                Some(Err(e)) => Some((Err(e), State::Done)),
                None if lagged.load(Ordering::SeqCst) => {
                    Some((Ok(FeedEvent::Lagged { resume_from: last }), State::Done))
                }
                None => None,
            }
        })
        .boxed()
    }

    /// `POST /v1/changes:compact`.
    async fn compact(&self, retention: Retention) -> Result<Compaction> {
        let rb = self
            .inner
            .http
            .request(reqwest::Method::POST, "/v1/changes:compact", false)
            .json(&retention);
        self.inner.http.json(rb, &Ctx::new(STORE, "")).await
    }

    /// The server's retention, as `open` read it.
    fn retention(&self) -> Retention {
        self.inner.settings.retention
    }
}

/// Reads the event stream into `tx` until the subscriber goes, the store
/// closes, the buffer overflows (`lagged`), or an error ends it.
async fn follow(
    inner: Arc<Inner>,
    from: FeedCursor,
    filter: FeedFilter,
    tx: mpsc::Sender<Result<Change>>,
    lagged: Arc<AtomicBool>,
) {
    let mut closed = inner.http.closed.subscribe();
    let mut cursor = from;
    let mut resuming = false;
    let mut down_since: Option<Instant> = None;
    let mut backoff = BACKOFF.0;
    loop {
        if *closed.borrow() {
            return;
        }
        let opened = tokio::select! {
            _ = closed.wait_for(|c| *c) => return,
            _ = tx.closed() => return,
            opened = open(&inner, cursor, &filter, resuming) => opened,
        };
        match opened {
            Ok(mut reader) => {
                down_since = None;
                let opened_at = Instant::now();
                let mut got_any = false;
                loop {
                    let event = tokio::select! {
                        _ = closed.wait_for(|c| *c) => return,
                        _ = tx.closed() => return,
                        event = tokio::time::timeout(IDLE, reader.next()) => event,
                    };
                    let event = match event {
                        Ok(Some(Ok(event))) => event,
                        // Silent too long, broken, or ended (the server
                        // stopping): reopen from the last change.
                        Err(_) | Ok(Some(Err(_))) | Ok(None) => break,
                    };
                    match interpret(event, cursor) {
                        Step::Change(change) => {
                            let next = change.cursor();
                            match tx.try_send(Ok(change)) {
                                Ok(()) => {
                                    cursor = next;
                                    got_any = true;
                                }
                                Err(mpsc::error::TrySendError::Full(_)) => {
                                    lagged.store(true, Ordering::SeqCst);
                                    return;
                                }
                                Err(mpsc::error::TrySendError::Closed(_)) => return,
                            }
                        }
                        Step::Fail(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        Step::Skip => {}
                    }
                }
                resuming = true;
                // A stream that ended at once (a store closing under the
                // server) is reopened after a growing pause.
                if got_any || opened_at.elapsed() > BACKOFF.1 {
                    backoff = BACKOFF.0;
                } else {
                    tokio::select! {
                        _ = closed.wait_for(|c| *c) => return,
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF.1);
                }
            }
            Err(e) if e.is_retryable() => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= inner.settings.reconnect_for {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                tracing::debug!(error = %e, "change feed: reconnecting");
                tokio::select! {
                    _ = closed.wait_for(|c| *c) => return,
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF.1);
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}
