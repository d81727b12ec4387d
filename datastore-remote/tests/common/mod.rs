//! A `datastore-http` server on a loopback port over a fresh store, and a
//! `RemoteStore` pointed at it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datastore_core::Datastore;
use datastore_http::{Server, ServerConfig, Token};
use datastore_remote::{RemoteConfig, RemoteStore};

/// The store behind the server.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
}

/// A running server; `stop` shuts it down gracefully.
pub struct Running {
    pub addr: SocketAddr,
    pub ds: Arc<dyn Datastore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server (streams end, requests in flight finish), then
    /// closes its store.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("the server task")
            .expect("the server ran");
        let _ = self.ds.close().await;
    }
}

/// Serves `ds` on `addr` (port 0 for any), with `token` if given.
pub async fn serve_at(ds: Arc<dyn Datastore>, addr: SocketAddr, token: Option<&str>) -> Running {
    let config = ServerConfig {
        listen: addr,
        token: token.map(|t| Token::new(t).expect("a valid token")),
        ..ServerConfig::default()
    };
    let server = Server::bind(ds.clone(), config).await.expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        ds,
        stop: Some(stop),
        task,
    }
}

/// Serves `ds` on a free loopback port.
pub async fn serve(ds: Arc<dyn Datastore>, token: Option<&str>) -> Running {
    serve_at(ds, SocketAddr::from(([127, 0, 0, 1], 0)), token).await
}

/// Opens a SQLite store in `dir`.
pub async fn sqlite(dir: &std::path::Path) -> Arc<dyn Datastore> {
    let url = format!("sqlite://{}", dir.join("remote.db").display());
    datastore_sql::open(datastore_sql::SqlConfig::new(url))
        .await
        .expect("open sqlite")
}

/// A client of `server` with test-friendly timeouts.
pub fn config(server: &Running) -> RemoteConfig {
    RemoteConfig::new(server.url())
        .timeout(Duration::from_secs(30))
        .reconnect_for(Duration::from_secs(30))
}

/// A server over a fresh store of `backend`, and a remote store pointed
/// at it: what each conformance case gets.
pub struct Remote {
    pub remote: Arc<dyn Datastore>,
    server: Option<Running>,
    _dir: Option<tempfile::TempDir>,
}

impl Remote {
    pub async fn start(backend: Backend) -> Remote {
        let (ds, dir) = match backend {
            Backend::Memory => (datastore_memory::open(), None),
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                (sqlite(dir.path()).await, Some(dir))
            }
        };
        let server = serve(ds, None).await;
        let remote = RemoteStore::open(config(&server))
            .await
            .expect("open the remote store");
        Remote {
            remote,
            server: Some(server),
            _dir: dir,
        }
    }
}

impl conformance_tests::Fixture for Remote {
    fn store(&self) -> Arc<dyn Datastore> {
        self.remote.clone()
    }

    async fn teardown(mut self) {
        let _ = self.remote.close().await;
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
