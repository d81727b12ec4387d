//! A [`Datastore`] that speaks the HTTP API of `datastore-http`
//! (`datastore serve`), so a program uses a remote store exactly like a
//! local one: the same traits, the same [`Error`] variants.
//!
//! ```no_run
//! # async fn demo() -> datastore_core::Result<()> {
//! use datastore_remote::{RemoteConfig, RemoteStore};
//! let ds = RemoteStore::open(RemoteConfig::new("http://127.0.0.1:8080")).await?;
//! let head = ds.changes().head().await?;
//! # Ok(()) }
//! ```
//!
//! # How it maps
//!
//! - Records are `/v1/STORE/ID`; preconditions travel as `If-Match: "N"`,
//!   `If-Match: *` and `If-None-Match: *`; batches are `POST /v1/batch`.
//! - Problem answers become the [`Error`] the server's store returned:
//!   `store`, `key` and `field` come from the problem, a `Conflict`'s
//!   expected and found revisions from its detail. A put with
//!   [`Precondition::MustNotExist`](datastore_core::Precondition) on a key
//!   that exists is `AlreadyExists`, as locally (the wire says 412).
//! - No answer (connection refused, a timeout), 503 and 429 are
//!   [`Error::Unavailable`]: retrying may succeed.
//! - **A refused token (401)** is [`Error::Invalid`] with `field: "token"`.
//!   Not `Unavailable`: retrying cannot succeed and `is_retryable()` must
//!   say so; nothing was read or written, and the field names what to fix.
//!   [`RemoteStore::open`] checks the token, so a wrong one fails there.
//! - Records are validated here before they are sent (the store's own
//!   checks, from `datastore-core`), so a record too large for a request
//!   body is `Invalid` naming its field rather than a 413.
//!
//! # What the HTTP API does not serve directly
//!
//! Emulated with the endpoints there are, at a cost (one request per page
//! of `max_page_limit` records):
//! [`ProfileStore::get_by_username`](datastore_core::ProfileStore::get_by_username)
//! and [`WorkflowStore::get_by_init_id`](datastore_core::WorkflowStore::get_by_init_id)
//! scan the list; [`RunStore::count`](datastore_core::RunStore::count)
//! counts pages; [`LogStore::head`](datastore_core::LogStore::head) and
//! `length` read the entries endpoint. A run event's time (`at`) is the
//! server's. [`Datastore::backup`] is `Unsupported` (back up on the server).
//!
//! `GET /v1/changes:page`, `POST /v1/changes:compact`, `GET /v1/logs`,
//! `DELETE /v1/logs/ID` and `GET /v1/count` are used when the server has
//! them; against an older server without them,
//! [`ChangeFeed::since`](datastore_core::ChangeFeed::since) reads the event
//! stream up to the head, `Datastore::count` counts list pages, one log's
//! list pages through its entries, and the rest (`compact`, `remove`, every
//! log's entries, `count(Kind::Log)`) is `Unsupported`.
//!
//! Only `http://` URLs are supported: this build has no TLS (put a
//! TLS-terminating proxy in front, or keep the server on loopback).
//! Capabilities report `remote`, shared across processes, not durable (the
//! API does not say what the server stores in), and the limits of
//! [`RemoteConfig`].

mod feed;
mod http;
mod logs;
mod problem;
mod records;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datastore_core::{
    Batch, Capabilities, CollectionFilter, Datastore, Error, KeyFilter, Kind, Profile,
    ProfileFilter, Query, Result, Retention, Revision, Run, RunFilter, StoreName, Workflow,
    WorkflowFilter,
};
use serde::Deserialize;

use crate::http::Http;
use crate::problem::Ctx;

/// Where the server is and how to talk to it.
#[derive(Clone)]
#[non_exhaustive]
pub struct RemoteConfig {
    /// The server's base URL (`http://127.0.0.1:8080`); a path prefix is
    /// kept (`http://host/datastore`).
    pub url: String,
    /// The bearer token, when the server has one.
    pub token: Option<String>,
    /// How long one request may take (and a connection to open).
    pub timeout: Duration,
    /// How long a subscription keeps reconnecting to a server that went
    /// away before it ends with `Unavailable`.
    pub reconnect_for: Duration,
    /// Changes buffered per subscriber before it gets `Lagged`.
    pub subscriber_buffer: usize,
    /// The largest record accepted: keep it at or under the server's
    /// `--max-body-bytes`.
    pub max_record_bytes: usize,
    /// The largest page the server accepts (its `--max-page`).
    pub max_page_limit: u32,
    /// The feed retention to report (the API does not tell it).
    pub retention: Retention,
}

impl RemoteConfig {
    /// The defaults for a server at `url`: no token, 30 s requests, one
    /// minute of reconnecting, the server defaults' limits.
    pub fn new(url: impl Into<String>) -> Self {
        RemoteConfig {
            url: url.into(),
            token: None,
            timeout: Duration::from_secs(30),
            reconnect_for: Duration::from_secs(60),
            subscriber_buffer: datastore_core::DEFAULT_SUBSCRIBER_BUFFER,
            max_record_bytes: datastore_core::DEFAULT_MAX_RECORD_BYTES,
            max_page_limit: datastore_core::MAX_PAGE_LIMIT,
            retention: Retention::FOREVER,
        }
    }

    /// Sends `token` as `Authorization: Bearer`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the per-request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long subscriptions keep reconnecting.
    pub fn reconnect_for(mut self, window: Duration) -> Self {
        self.reconnect_for = window;
        self
    }
}

impl std::fmt::Debug for RemoteConfig {
    /// Never shows the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &datastore_core::redact_url(&self.url))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("reconnect_for", &self.reconnect_for)
            .field("subscriber_buffer", &self.subscriber_buffer)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_page_limit", &self.max_page_limit)
            .field("retention", &self.retention)
            .finish()
    }
}

/// The limits a store reports, from its config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub subscriber_buffer: usize,
    pub max_record_bytes: usize,
    pub max_page_limit: u32,
    pub retention: Retention,
    pub reconnect_for: Duration,
}

/// What subscriptions share with the store.
#[derive(Debug)]
pub(crate) struct Inner {
    pub http: Http,
    pub settings: Settings,
}

/// A [`Datastore`] over HTTP. Open one with [`RemoteStore::open`].
#[derive(Debug, Clone)]
pub struct RemoteStore {
    pub(crate) inner: Arc<Inner>,
}

fn invalid_url(url: &str, reason: impl Into<String>) -> Error {
    Error::invalid(
        StoreName::Datastore,
        datastore_core::redact_url(url),
        "url",
        reason,
    )
}

impl RemoteStore {
    /// Connects to the server at `config.url` and checks that it answers
    /// and takes the token (a wrong one is `Invalid` naming `token`; a
    /// server that does not answer is `Unavailable`).
    pub async fn open(config: RemoteConfig) -> Result<Arc<dyn Datastore>> {
        let store = RemoteStore::connect(config)?;
        store.ready_for_requests().await?;
        Ok(Arc::new(store))
    }

    /// A store for `config.url` without contacting the server (the first
    /// call does). `Invalid` naming `url` for a URL that is not `http://`.
    pub fn connect(config: RemoteConfig) -> Result<RemoteStore> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| invalid_url(&config.url, format!("is not a URL: {e}")))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid_url(
                    &config.url,
                    "https is not supported yet: this build of datastore-remote has no TLS; use http:// (on loopback, or behind a TLS-terminating proxy)",
                ));
            }
            other => {
                return Err(invalid_url(
                    &config.url,
                    format!("scheme {other:?} is not supported; use http://"),
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid_url(
                &config.url,
                "must not carry a query or a fragment",
            ));
        }
        let base = url.as_str().trim_end_matches('/').to_string();
        let http = Http::new(base, config.token.clone(), config.timeout)?;
        Ok(RemoteStore {
            inner: Arc::new(Inner {
                http,
                settings: Settings {
                    subscriber_buffer: config.subscriber_buffer.max(1),
                    max_record_bytes: config.max_record_bytes,
                    max_page_limit: config
                        .max_page_limit
                        .clamp(1, datastore_core::MAX_PAGE_LIMIT),
                    retention: config.retention,
                    reconnect_for: config.reconnect_for,
                },
            }),
        })
    }

    /// A call that needs the token: the feed head.
    async fn ready_for_requests(&self) -> Result<()> {
        let rb = self.inner.http.get("/v1/changes/head");
        let _: serde_json::Value = self
            .inner
            .http
            .json(rb, &Ctx::new(StoreName::Datastore, ""))
            .await?;
        Ok(())
    }
}

#[derive(Deserialize)]
struct Counted {
    count: u64,
}

#[derive(Deserialize)]
struct Applied {
    revisions: Vec<Revision>,
}

#[async_trait]
impl Datastore for RemoteStore {
    datastore_core::substores_are_self!();

    async fn apply(&self, batch: Batch) -> Result<Vec<Revision>> {
        let n = batch.len();
        let rb = self
            .inner
            .http
            .request(reqwest::Method::POST, "/v1/batch", false)
            .json(&batch);
        let applied: Applied = self
            .inner
            .http
            .json(rb, &Ctx::new(StoreName::Batch, ""))
            .await?;
        if applied.revisions.len() != n {
            return Err(Ctx::new(StoreName::Batch, "").backend(format!(
                "a batch of {n} ops answered {} revisions",
                applied.revisions.len()
            )));
        }
        Ok(applied.revisions)
    }

    /// `GET /v1/count`; on a server without it, counts list pages (one
    /// request per `max_page_limit` records), and log entries are
    /// `Unsupported`.
    async fn count(&self, kind: Kind) -> Result<u64> {
        let rb = self
            .inner
            .http
            .get("/v1/count")
            .query(&[("kind", kind.as_str())]);
        match self
            .inner
            .http
            .json::<Counted>(rb, &Ctx::new(StoreName::Kind(kind), ""))
            .await
        {
            Ok(counted) => Ok(counted.count),
            Err(e) if problem::no_endpoint(&e) => match kind {
                Kind::Profile => {
                    self.count_all(Query::<Profile>::new(ProfileFilter::All))
                        .await
                }
                Kind::Workflow => {
                    self.count_all(Query::<Workflow>::new(WorkflowFilter::All))
                        .await
                }
                Kind::Run => self.count_all(Query::<Run>::new(RunFilter::All)).await,
                Kind::Key => {
                    self.count_all(Query::<datastore_core::Key>::new(KeyFilter::All))
                        .await
                }
                Kind::Collection => {
                    self.count_all(Query::<datastore_core::CollectionEntry>::new(
                        CollectionFilter::All,
                    ))
                    .await
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// `remote`; shared across processes (every client of the server sees
    /// every other's writes and feed); not claimed durable, since the API
    /// does not say what the server stores in.
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new("remote");
        caps.shared_across_processes = true;
        caps.max_record_bytes = self.inner.settings.max_record_bytes;
        caps.max_page_limit = self.inner.settings.max_page_limit;
        caps.subscriber_buffer = self.inner.settings.subscriber_buffer;
        caps
    }

    /// `GET /readyz`: the server's store answers and its feed follower is
    /// connected; otherwise `Unavailable` with the server's reason.
    async fn ready(&self) -> Result<()> {
        let ctx = Ctx::new(StoreName::Datastore, "");
        let rb = self.inner.http.get("/readyz");
        match self.inner.http.send(rb, &ctx).await {
            Ok(_) => Ok(()),
            Err(Error::Backend { source, .. }) => Err(ctx.unavailable(source)),
            Err(e) => Err(e),
        }
    }

    /// Ends every subscription of this client; later calls fail with
    /// `Unavailable`. The server and its store stay up.
    async fn close(&self) -> Result<()> {
        self.inner.http.closed.send_replace(true);
        Ok(())
    }
}
