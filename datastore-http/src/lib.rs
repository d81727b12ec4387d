//! An HTTP API over any [`Datastore`]: JSON endpoints for every substore
//! operation, revisions as ETags (`If-Match`, `If-None-Match: *`), errors as
//! RFC 9457 problem details, and the change feed as server-sent events.
//! docs/http-api.md documents every endpoint.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let ds = datastore_memory::open();
//! let server = datastore_http::Server::bind(ds, datastore_http::ServerConfig::default()).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod access;
mod body;
mod changes;
mod gate;
mod headers;
mod ops;
mod policy;
mod problem;
mod prometheus;
mod protect;
mod records;
mod resources;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use datastore_core::Datastore;

/// The record endpoints of every editable kind (each has a
/// [`records::Resource`] impl), from the kinds list.
macro_rules! record_routes {
    (
        editable [ $( $ev:ident($ety:ty) $es:ident tag $et:literal $ew:literal $en:literal; )* ]
        appended [ $( $rest:tt )* ]
    ) => {
        Router::new() $( .merge(records::routes::<$ety>()) )*
    };
}
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use access::Token;
pub use gate::{ACTOR_HEADER, Gate};
pub use policy::{Access, ListScope, OwnerPolicy, Policy, Principal, Target};
pub use problem::{Problem, ProblemDetails};
pub use protect::Rate;
pub use records::Resource;

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// The largest `limit` a list accepts (400 above it).
    pub max_page_limit: u32,
    /// The most event streams (`/v1/changes`) open at once (503 with
    /// `Retry-After` above it).
    pub max_streams: usize,
    /// The request rate each bearer token may use (429 with `Retry-After`
    /// beyond it); `None` for no limit.
    pub rate: Option<Rate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_page_limit: datastore_core::MAX_PAGE_LIMIT,
            max_streams: 1_000,
            rate: None,
        }
    }
}

/// How the server listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The bearer token every request must carry. Required when `listen`
    /// is not a loopback address.
    pub token: Option<Token>,
    /// Request limits.
    pub limits: Limits,
    /// Who may read and write which records (default [`OwnerPolicy`]).
    pub policy: Arc<dyn Policy>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            limits: Limits::default(),
            policy: Arc::new(OwnerPolicy),
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    ds: Arc<dyn Datastore>,
    limits: Limits,
    token: Option<Token>,
    policy: Arc<dyn Policy>,
    shutdown: watch::Receiver<bool>,
    guards: Arc<protect::Guards>,
}

impl FromRef<AppState> for Limits {
    fn from_ref(state: &AppState) -> Limits {
        state.limits
    }
}

/// Why a server would not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Listening beyond loopback without a token.
    #[error("{0} is not a loopback address: a token is required (--token-file or DATASTORE_TOKEN)")]
    TokenRequired(SocketAddr),
}

/// The page at `/`: a workflow's runs, live.
const INDEX: &str = include_str!("../static/index.html");
/// The page's state tree (state-tree-wasm, built by scripts/build-wasm.sh).
const TREE_WASM: &[u8] = include_bytes!("../static/wasm/state_tree_wasm_bg.wasm");
/// Its JavaScript glue (wasm-bindgen's, an ES module).
const TREE_JS: &str = include_str!("../static/wasm/state_tree_wasm.js");

/// A static file of the page.
fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The whole API over `ds`. `shutdown` turning true ends open event streams.
pub fn router(
    ds: Arc<dyn Datastore>,
    config: &ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> Router {
    prometheus::handle();
    let state = AppState {
        ds,
        limits: config.limits,
        token: config.token.clone(),
        policy: config.policy.clone(),
        shutdown,
        guards: Arc::default(),
    };
    Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route(
            "/wasm/state_tree_wasm.js",
            get(|| async { asset("text/javascript", TREE_JS) }),
        )
        .route(
            "/wasm/state_tree_wasm_bg.wasm",
            get(|| async { asset("application/wasm", TREE_WASM) }),
        )
        .route(
            "/healthz",
            get(|| async {
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
            }),
        )
        .route("/readyz", get(ready))
        .route("/v1/login", axum::routing::post(access::login))
        .route("/v1/logout", axum::routing::post(access::logout))
        .route("/metrics", get(prometheus::render))
        .merge(datastore_core::with_kinds!(record_routes))
        .merge(ops::routes())
        .merge(changes::routes())
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no-such-endpoint",
                "no endpoint here; see docs/http-api.md",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            protect::limit_rate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::authenticate,
        ))
        .layer(axum::middleware::from_fn(access::log))
        // Bodies are limited by the handlers (with a problem answer); this
        // only lifts axum's own default so it never answers first.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// How long `/readyz` waits for the store.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /readyz`: 200 `ready` when the store answers a cheap read and its
/// feed follower is connected; 503 with the reason otherwise, and during a
/// graceful shutdown.
async fn ready(State(state): State<AppState>) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain")];
    if *state.shutdown.borrow() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            text,
            "not ready: shutting down",
        )
            .into_response();
    }
    let reason = match tokio::time::timeout(READY_WAIT, state.ds.ready()).await {
        Ok(Ok(())) => return (StatusCode::OK, text, "ready").into_response(),
        Ok(Err(e)) => format!("not ready: {e}"),
        Err(_) => format!("not ready: the store did not answer within {READY_WAIT:?}"),
    };
    (StatusCode::SERVICE_UNAVAILABLE, text, reason).into_response()
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    router: Router,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Binds `config.listen`. Refuses a non-loopback address without a token.
    pub async fn bind(ds: Arc<dyn Datastore>, config: ServerConfig) -> std::io::Result<Server> {
        if !config.listen.ip().is_loopback() && config.token.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                ServeError::TokenRequired(config.listen),
            ));
        }
        let listener = TcpListener::bind(config.listen).await?;
        let (stop, shutdown) = watch::channel(false);
        let router = router(ds, &config, shutdown);
        Ok(Server {
            listener,
            router,
            stop,
        })
    }

    /// Where it listens (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `signal` completes, then stops accepting connections,
    /// ends event streams and lets requests in flight (writes included)
    /// finish before returning.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = self.stop;
        use axum::serve::ListenerExt;
        // Answers are small: send each at once rather than wait for more
        // to coalesce (Nagle), which costs a small request its latency.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY could not be set");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: finishing requests in flight");
                let _ = stop.send(true);
            })
            .await
    }
}
