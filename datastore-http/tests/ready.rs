//! `/readyz`: ready when the store answers and its feed listener is up; 503
//! with the reason when PostgreSQL goes away (a proxy port the test
//! closes), and 200 again once it is back.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, serve, serve_store};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` that can be taken down (every connection cut,
/// new ones refused) and brought back.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn({
            let (up, connections) = (up.clone(), connections.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: refused
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Proxy {
            addr,
            up,
            connections,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by `addr`, and the host and port it had.
fn through(url: &str, addr: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = match rest.split_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let (host, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:5432")
    };
    (format!("{scheme}://{auth}{addr}{path}"), host)
}

async fn readiness(c: &reqwest::Client, server: &common::Running) -> (u16, String) {
    let r = c.get(server.url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Polls `/readyz` until it answers `status`, for up to 30 seconds.
async fn until(c: &reqwest::Client, server: &common::Running, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, body) = readiness(c, server).await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got} ({body}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_on_every_backend_and_open_without_a_token() {
    for backend in common::BACKENDS {
        let server = serve(backend).await;
        let c = reqwest::Client::new();
        assert_eq!(
            readiness(&c, &server).await,
            (200, "ready".into()),
            "{backend:?}"
        );
        server.stop().await;
    }
    let (ds, dir) = common::store(Backend::Memory).await;
    let server = serve_store(ds, Some("s3cret-token-for-tests"), dir).await;
    let c = reqwest::Client::new();
    assert_eq!(readiness(&c, &server).await.0, 200, "probes need no token");
    let r = c.get(server.url("/v1/changes/head")).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API still does");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_postgres_going_away_and_coming_back() {
    let Ok(url) = std::env::var("DATASTORE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("DATASTORE_REQUIRE_POSTGRES").is_none(),
            "DATASTORE_REQUIRE_POSTGRES is set but DATASTORE_TEST_POSTGRES_URL is not"
        );
        eprintln!("skipped: DATASTORE_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("http_ready_{}", std::process::id());
    datastore_sql::create_schema(&url, &schema).await.unwrap();
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_, upstream) = through(&url, probe.local_addr().unwrap());
    drop(probe);
    let proxy = Proxy::start(upstream).await;
    let (proxied, _) = through(&url, proxy.addr);
    let mut config = datastore_sql::SqlConfig::new(proxied);
    config.schema = Some(schema.clone());
    config.connect_timeout = Duration::from_secs(2);
    let ds = datastore_sql::open(config).await.unwrap();
    let server = serve_store(ds, None, None).await;
    let c = reqwest::Client::new();
    assert_eq!(readiness(&c, &server).await, (200, "ready".into()));

    proxy.down();
    let reason = until(&c, &server, 503).await;
    assert!(reason.starts_with("not ready: "), "{reason}");

    // Ready again once reads work and the LISTEN connection is back.
    proxy.up();
    assert_eq!(until(&c, &server, 200).await, "ready");
    server.stop().await;
    datastore_sql::drop_schema(&url, &schema).await.unwrap();
}

/// Once a graceful shutdown began (the router's shutdown signal is true),
/// `/readyz` answers 503 so a load balancer stops sending work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_once_shutdown_began() {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let router = datastore_http::router(
        datastore_memory::open(),
        &datastore_http::ServerConfig::default(),
        shutdown,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/readyz");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    stop.send(true).unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "not ready: shutting down");
    // The process itself still answers.
    let r = c
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
