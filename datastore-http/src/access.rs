//! Who may call, and the access log.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::problem::Problem;

/// A bearer token. Its Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token; leading and trailing whitespace (a file's newline) is dropped.
    /// Refuses an empty or short token.
    pub fn new(text: &str) -> Result<Token, &'static str> {
        let text = text.trim();
        if text.len() < 16 {
            return Err("a token must be at least 16 characters");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token must be printable ASCII without spaces");
        }
        Ok(Token(text.to_string()))
    }

    /// Whether `presented` is this token, in time independent of where
    /// they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme is
/// case-insensitive (RFC 9110).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Refuses a request without the server's token (when it has one) with 401,
/// before any handler runs. `/` (the page, which asks for the token), its
/// state tree under `/wasm/`, and `/healthz` and `/readyz` stay open.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    // The page (which asks for the token), its code and the health probe
    // are open.
    if matches!(
        request.uri().path(),
        "/" | "/healthz" | "/readyz" | "/wasm/state_tree_wasm.js" | "/wasm/state_tree_wasm_bg.wasm"
    ) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match presented {
        Some(p) if token.matches(p) => next.run(request).await,
        Some(_) => Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is wrong",
        )
        .field("authorization")
        .into_response(),
        None => Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs Authorization: Bearer <token>",
        )
        .field("authorization")
        .into_response(),
    }
}

/// One structured line per request: method, path (no query, no headers, so
/// never a token or a cursor), status and latency.
pub async fn log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "datastore_http::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", "BeArEr abc"] {
            assert_eq!(bearer(value), Some("abc"), "{value}");
        }
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer   "), None);
    }
}
