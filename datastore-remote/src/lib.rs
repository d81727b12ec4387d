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
//! # What is not the same as local
//!
//! [`LogStore::head`](datastore_core::LogStore::head) and `length` read
//! the entries endpoint (two requests, not one atomic read).
//! [`Datastore::backup`] is `Unsupported` (back up on the server).
//! [`RemoteStore::open`] asks the server (`GET /v1/capabilities`) whether
//! its store is durable or read-only, its limits and its feed retention.
//!
//! `https://` URLs use rustls with Mozilla's root certificates built in;
//! [`RemoteConfig::ca_certificate`] adds a private CA to trust (for a TLS
//! proxy in front of `serve`, which speaks plain HTTP itself).
//! Capabilities report `remote`, shared across processes, and what the
//! server said of its store.

mod feed;
mod http;
mod logs;
mod problem;
mod records;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datastore_core::{
    Batch, Capabilities, Datastore, Error, Kind, Result, Retention, Revision, StoreName,
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
    /// A PEM CA certificate to trust for `https://` besides the usual roots
    /// (Mozilla's, built in): a private CA that signed the server's
    /// certificate.
    pub ca_certificate: Option<Vec<u8>>,
    /// The feed retention to report until [`RemoteStore::open`] asks the
    /// server for its own.
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
            ca_certificate: None,
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
            .field(
                "ca_certificate",
                &self.ca_certificate.as_ref().map(|_| "<pem>"),
            )
            .finish()
    }
}

/// The limits a store reports, from its config.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub durable: bool,
    pub read_only: bool,
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
    /// Who this view's writes name (see [`RemoteStore::with_actor`]).
    actor: Option<datastore_core::Actor>,
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
        let mut store = RemoteStore::connect(config)?;
        let server = store.server_capabilities().await?;
        if let Some(inner) = Arc::get_mut(&mut store.inner) {
            let s = &mut inner.settings;
            s.durable = server.capabilities.durable;
            s.read_only = server.capabilities.read_only;
            s.max_record_bytes = s.max_record_bytes.min(server.capabilities.max_record_bytes);
            s.max_page_limit = s.max_page_limit.min(server.capabilities.max_page_limit);
            s.retention = server.retention;
        }
        Ok(Arc::new(store))
    }

    /// A store for `config.url` without contacting the server (the first
    /// call does). `Invalid` naming `url` for a URL that is not `http://`.
    pub fn connect(config: RemoteConfig) -> Result<RemoteStore> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| invalid_url(&config.url, format!("is not a URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(invalid_url(
                    &config.url,
                    format!("scheme {other:?} is not supported; use http:// or https://"),
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
        let http = Http::new(
            base,
            config.token.clone(),
            config.timeout,
            config.ca_certificate.as_deref(),
        )?;
        Ok(RemoteStore {
            inner: Arc::new(Inner {
                http,
                settings: Settings {
                    durable: false,
                    read_only: false,
                    subscriber_buffer: config.subscriber_buffer.max(1),
                    max_record_bytes: config.max_record_bytes,
                    max_page_limit: config
                        .max_page_limit
                        .clamp(1, datastore_core::MAX_PAGE_LIMIT),
                    retention: config.retention,
                    reconnect_for: config.reconnect_for,
                },
            }),
            actor: None,
        })
    }

    /// `GET /v1/capabilities` (behind the token, so it checks it too).
    async fn server_capabilities(&self) -> Result<ServerCapabilities> {
        let rb = self.inner.http.get("/v1/capabilities");
        self.inner
            .http
            .json(rb, &Ctx::new(StoreName::Datastore, ""))
            .await
    }
}

/// What `GET /v1/capabilities` answers (the fields this client uses).
#[derive(Deserialize)]
struct ServerCapabilities {
    capabilities: ServerLimits,
    retention: Retention,
}

#[derive(Deserialize)]
struct ServerLimits {
    durable: bool,
    read_only: bool,
    max_record_bytes: usize,
    max_page_limit: u32,
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

    /// `POST /v1/changes:start-after`.
    async fn start_feed_after(
        &self,
        position: datastore_core::FeedCursor,
    ) -> Result<datastore_core::FeedCursor> {
        let rb = self
            .inner
            .http
            .request(reqwest::Method::POST, "/v1/changes:start-after", false)
            .json(&serde_json::json!({ "position": position.0 }));
        let head: feed::Head = self
            .inner
            .http
            .json(rb, &Ctx::new(StoreName::Changes, position.0.to_string()))
            .await?;
        Ok(datastore_core::FeedCursor(head.cursor))
    }

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

    /// `GET /v1/count`.
    async fn count(&self, kind: Kind) -> Result<u64> {
        let rb = self
            .inner
            .http
            .get("/v1/count")
            .query(&[("kind", kind.as_str())]);
        let counted: Counted = self
            .inner
            .http
            .json(rb, &Ctx::new(StoreName::Kind(kind), ""))
            .await?;
        Ok(counted.count)
    }

    /// `remote`; shared across processes (every client of the server sees
    /// every other's writes and feed); durable and read-only as the
    /// server's store is; the smaller of the server's limits and
    /// [`RemoteConfig`]'s.
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new("remote");
        caps.shared_across_processes = true;
        caps.durable = self.inner.settings.durable;
        caps.read_only = self.inner.settings.read_only;
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

    /// The same client, its requests naming `actor` in
    /// `x-datastore-actor` (honoured for an admin token; a profile's token
    /// always writes as its profile).
    fn with_actor(&self, actor: datastore_core::Actor) -> Arc<dyn Datastore> {
        Arc::new(RemoteStore {
            inner: Arc::new(Inner {
                http: self.inner.http.with_actor(&actor),
                settings: self.inner.settings.clone(),
            }),
            actor: Some(actor),
        })
    }

    fn actor(&self) -> Option<datastore_core::Actor> {
        self.actor.clone()
    }

    /// `POST /v1/history:compact` (an admin token).
    async fn compact_history(
        &self,
        policy: &datastore_core::HistoryPolicy,
    ) -> Result<datastore_core::HistoryCompaction> {
        let rb = self
            .inner
            .http
            .request(reqwest::Method::POST, "/v1/history:compact", false)
            .json(policy);
        self.inner
            .http
            .json(rb, &Ctx::new(StoreName::Datastore, ""))
            .await
    }

    /// Ends every subscription of this client; later calls fail with
    /// `Unavailable`. The server and its store stay up.
    async fn close(&self) -> Result<()> {
        self.inner.http.closed.send_replace(true);
        Ok(())
    }
}
