//! A server on a loopback port over a real store, and an SSE reader.

#![allow(dead_code)]

pub mod under_writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datastore_core::Datastore;
use datastore_http::{Server, ServerConfig, Token};
use futures::StreamExt;

/// A running server; dropping it does not stop it, `stop` does.
pub struct Running {
    pub addr: SocketAddr,
    pub ds: Arc<dyn Datastore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks for a graceful shutdown and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

/// The backends the end-to-end tests run on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Sqlite,
}

pub const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::Sqlite];

pub async fn store(backend: Backend) -> (Arc<dyn Datastore>, Option<tempfile::TempDir>) {
    match backend {
        Backend::Memory => (datastore_memory::open(), None),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("http.db").display());
            let ds = datastore_sql::open(datastore_sql::SqlConfig::new(url))
                .await
                .unwrap();
            (ds, Some(dir))
        }
    }
}

pub async fn serve_store(
    ds: Arc<dyn Datastore>,
    token: Option<&str>,
    dir: Option<tempfile::TempDir>,
) -> Running {
    let config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        token: token.map(|t| Token::new(t).unwrap()),
        ..ServerConfig::default()
    };
    let server = Server::bind(ds.clone(), config).await.unwrap();
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
        _dir: dir,
    }
}

pub async fn serve(backend: Backend) -> Running {
    let (ds, dir) = store(backend).await;
    serve_store(ds, None, dir).await
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads events from an open `text/event-stream` response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream",
            "not an event stream"
        );
        SseReader {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), or `None` when the
    /// stream ends or nothing comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = Some(v.trim().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }
}

/// A profile `p1` and workflows `w1`, `w2` that runs can refer to.
pub async fn owners(server: &Running) {
    let c = reqwest::Client::new();
    let r = c
        .put(server.url("/v1/profiles/p1"))
        .json(&serde_json::json!({"id": "p1", "username": "owner"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    for w in ["w1", "w2"] {
        let r = c
            .put(server.url(&format!("/v1/workflows/{w}")))
            .json(&serde_json::json!({"id": w, "init_id": format!("ds-{w}"), "owner_id": "p1"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{:?}", r.text().await);
    }
}

/// A profile `who` (id and username) and its workflow `wf-WHO` of dataset
/// `ds-WHO`, in one batch, for the access tests.
pub async fn profile_with_workflow(ds: &Arc<dyn Datastore>, who: &str) {
    use datastore_core::{Batch, Precondition, Profile, ProfileId, Workflow, WorkflowId};
    let mut profile = Profile::new(who);
    profile.id = ProfileId::new(who);
    let mut workflow = Workflow::new(format!("ds-{who}"), who);
    workflow.id = WorkflowId::new(format!("wf-{who}"));
    ds.apply(
        Batch::new()
            .put(profile, Precondition::MustNotExist)
            .put(workflow, Precondition::MustNotExist),
    )
    .await
    .unwrap();
}
