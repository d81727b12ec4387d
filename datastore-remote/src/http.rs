//! The HTTP client: requests with the token and a timeout, answers checked
//! and decoded, failures mapped to [`Error`]; and a reader of
//! `text/event-stream` bodies.

use std::time::Duration;

use datastore_core::{Error, Precondition, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::{Method, RequestBuilder, Response, header};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::problem::{self, Ctx};

/// The connection to one server.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    /// The base URL without a trailing slash.
    base: String,
    token: Option<String>,
    timeout: Duration,
    /// The `x-datastore-actor` every request names (see
    /// `Datastore::with_actor`).
    actor: Option<header::HeaderValue>,
    /// True once the store was closed (shared by every actor's view).
    pub closed: std::sync::Arc<watch::Sender<bool>>,
}

impl Http {
    pub fn new(
        base: String,
        token: Option<String>,
        timeout: Duration,
        ca_certificate: Option<&[u8]>,
    ) -> Result<Http> {
        let mut builder = reqwest::Client::builder().connect_timeout(timeout);
        if let Some(pem) = ca_certificate {
            let invalid = |reason: String| {
                Error::invalid(
                    datastore_core::StoreName::Datastore,
                    "",
                    "ca_certificate",
                    reason,
                )
            };
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("is not PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(invalid(
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|e| Error::Backend {
            store: datastore_core::StoreName::Datastore,
            key: String::new(),
            source: e.into(),
        })?;
        Ok(Http {
            client,
            base,
            token,
            timeout,
            actor: None,
            closed: std::sync::Arc::new(watch::channel(false).0),
        })
    }

    /// The same connection, its requests naming `actor`.
    pub fn with_actor(&self, actor: &datastore_core::Actor) -> Http {
        let mut http = self.clone();
        // An actor's text is ASCII letters, digits and `-_.:@+`.
        http.actor = header::HeaderValue::from_str(&actor.to_string()).ok();
        http
    }

    /// A request to `path` (starting with `/`), carrying the token; with the
    /// per-request timeout unless `streaming`.
    pub fn request(&self, method: Method, path: &str, streaming: bool) -> RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if !streaming {
            rb = rb.timeout(self.timeout);
        }
        if let Some(token) = &self.token {
            rb = rb.bearer_auth(token);
        }
        if let Some(actor) = &self.actor {
            rb = rb.header("x-datastore-actor", actor.clone());
        }
        rb
    }

    /// A `GET` of `path`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path, false)
    }

    /// Sends a request; any answer but a success is mapped to its error.
    pub async fn send(&self, rb: RequestBuilder, ctx: &Ctx) -> Result<Response> {
        if *self.closed.borrow() {
            return Err(ctx.unavailable("the remote store was closed"));
        }
        let response = rb.send().await.map_err(|e| problem::transport(e, ctx))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(problem::from_response(response, ctx).await)
        }
    }

    /// Sends a request and decodes its JSON answer.
    pub async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder, ctx: &Ctx) -> Result<T> {
        let response = self.send(rb, ctx).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| problem::transport(e, ctx))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ctx.backend(format!("the server's answer did not decode: {e}")))
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Adds the headers that carry a write precondition: `If-Match: "N"`,
/// `If-Match: *` or `If-None-Match: *`.
pub(crate) fn with_precondition(rb: RequestBuilder, precondition: Precondition) -> RequestBuilder {
    match precondition {
        Precondition::Any => rb,
        Precondition::MustNotExist => rb.header(header::IF_NONE_MATCH, "*"),
        Precondition::MustExist => rb.header(header::IF_MATCH, "*"),
        Precondition::MustBeAt(r) => rb.header(header::IF_MATCH, format!("\"{r}\"")),
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SseEvent {
    /// `id:`, the feed position.
    pub id: Option<String>,
    /// `event:` (`change`, `reload`, `error`).
    pub event: Option<String>,
    /// `data:`, lines joined with `\n`.
    pub data: String,
}

/// Reads events from a `text/event-stream` body.
pub(crate) struct SseReader {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl SseReader {
    /// Reads `response`, which must be an event stream.
    pub fn new(response: Response, ctx: &Ctx) -> Result<SseReader> {
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if !ct.starts_with("text/event-stream") {
            return Err(ctx.backend(format!(
                "expected an event stream from the server, got {ct:?}"
            )));
        }
        Ok(SseReader {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| b.to_vec()))
                .boxed(),
            buffer: Vec::new(),
        })
    }

    /// The next event (comments and keep-alives skipped); `None` when the
    /// stream ends, an error when the connection breaks.
    pub async fn next(&mut self) -> Option<reqwest::Result<SseEvent>> {
        loop {
            if let Some(end) = find_blank_line(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                    return Some(Ok(event));
                }
                continue;
            }
            match self.body.next().await? {
                // CR never appears inside JSON data; dropping it reads CRLF
                // line ends as LF.
                Ok(chunk) => self
                    .buffer
                    .extend(chunk.into_iter().filter(|b| *b != b'\r')),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n")
}

/// An event from one block of lines; `None` for a block of comments only.
fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut any = false;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => data.push(value),
            _ => continue,
        }
        any = true;
    }
    event.data = data.join("\n");
    any.then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_into_events() {
        let e = parse_block("id: 5\nevent: change\ndata: {\"a\":1}\n\n").unwrap();
        assert_eq!(e.id.as_deref(), Some("5"));
        assert_eq!(e.event.as_deref(), Some("change"));
        assert_eq!(e.data, "{\"a\":1}");
        assert_eq!(parse_block(": keep-alive\n\n"), None);
        let e = parse_block("data:a\ndata: b\n\n").unwrap();
        assert_eq!(e.data, "a\nb");
    }
}
