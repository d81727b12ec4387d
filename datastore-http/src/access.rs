//! Who may call, and the access log.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use datastore_core::{AccessToken, Error};

use crate::AppState;
use crate::policy::Principal;
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

/// Paths open without a token: the page (which asks for one), its state
/// tree under `/wasm/`, and the health probes.
fn open_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/healthz"
            | "/readyz"
            | "/wasm/state_tree_wasm.js"
            | "/wasm/state_tree_wasm_bg.wasm"
            | "/v1/login"
            | "/v1/logout"
    )
}

/// The cookie `POST /v1/login` sets: the token, `HttpOnly` (no script
/// reads it) and `SameSite=Strict` (no other site's request carries it).
pub const COOKIE: &str = "datastore_token";

/// The header a request authenticated by the cookie must carry to write
/// (and to log in): another site cannot send a custom header without the
/// CORS preflight this server never approves.
pub const CSRF_HEADER: &str = "x-datastore-csrf";

/// The token in the request's `Cookie` header, if any.
fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn safe_method(method: &axum::http::Method) -> bool {
    matches!(
        *method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    )
}

fn csrf_refused() -> Response {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "a login, and a write authenticated by the login cookie, must carry the {CSRF_HEADER} header (the page sends it)"
        ),
    )
    .field(CSRF_HEADER)
    .into_response()
}

fn unauthorized(detail: &str) -> Response {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        .field("authorization")
        .into_response()
}

/// Who a presented token is: the configured token is admin; an issued
/// token (`dst_<id>_<secret>`) is looked up in the store and must match
/// its hash and not have expired. `Err` is the answer to give.
async fn principal_of(state: &AppState, presented: &str) -> Result<Principal, Response> {
    if state.token.as_ref().is_some_and(|t| t.matches(presented)) {
        return Ok(Principal::admin());
    }
    const INVALID: &str = "the bearer token is not valid (unknown, revoked or wrong)";
    let Some((id, secret)) = AccessToken::parse(presented) else {
        return Err(unauthorized(INVALID));
    };
    let token = match state.ds.tokens().get(&id).await {
        Ok(found) => found.value,
        Err(Error::NotFound { .. }) => return Err(unauthorized(INVALID)),
        Err(e) => return Err(Problem::from(e).into_response()),
    };
    if !token.matches(secret) {
        return Err(unauthorized(INVALID));
    }
    if token.expired(chrono::Utc::now()) {
        return Err(unauthorized("the bearer token has expired"));
    }
    Ok(Principal {
        token: Some(token.id),
        ..Principal::of(token.profile_id, token.scope)
    })
}

/// Finds who calls (see [`principal_of`]) and puts the [`Principal`] in the
/// request for the handlers, before any handler runs. A server with a
/// configured token refuses a request without a valid one with 401 (the
/// open paths aside); a server without one lets anyone in as admin, and a
/// presented token still acts as its profile.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_string);
    let open = open_path(request.uri().path());
    // The page's login cookie, where no header is sent; a write with it
    // needs the CSRF header.
    if presented.is_none()
        && let Some(cookie) = cookie_token(request.headers())
    {
        if !safe_method(request.method()) && !request.headers().contains_key(CSRF_HEADER) {
            return csrf_refused();
        }
        presented = Some(cookie);
    }
    let principal = match presented {
        Some(text) => match principal_of(&state, &text).await {
            Ok(p) => p,
            Err(_) if open => return next.run(request).await,
            Err(answer) => return answer,
        },
        None if state.token.is_none() => Principal::admin(),
        None if open => return next.run(request).await,
        None => return unauthorized("this server needs Authorization: Bearer <token>"),
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The body of `POST /v1/login`. Its `Debug` never shows the token.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The token to keep in the cookie.
    pub token: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Login { token: <redacted> }")
    }
}

/// Who a login acts as.
#[derive(Debug, serde::Serialize)]
pub struct LoggedIn {
    /// The profile (`null` for the server's own token).
    pub profile: Option<datastore_core::ProfileId>,
    /// The scope.
    pub scope: datastore_core::TokenScope,
}

/// `POST /v1/login` with `{"token": TOKEN}` and the CSRF header: checks the
/// token as a request would and keeps it in an `HttpOnly`, `SameSite=Strict`
/// cookie (until the token expires, else for the browser session), so the
/// page and `EventSource` need no header. 401 for a token that is not valid.
pub async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    crate::body::Strict(body): crate::body::Strict<Login>,
) -> Response {
    if !headers.contains_key(CSRF_HEADER) {
        return csrf_refused();
    }
    let token = body.token.trim();
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'))
    {
        return Problem::bad_request(
            "token",
            "this token cannot be kept in a cookie (empty, or holding ; , \" or \\): send it as Authorization: Bearer",
        )
        .into_response();
    }
    let principal = match principal_of(&state, token).await {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    let mut cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    if let Some((id, _)) = AccessToken::parse(token)
        && let Ok(found) = state.ds.tokens().get(&id).await
        && let Some(at) = found.value.expires
    {
        let left = (at - chrono::Utc::now()).num_seconds().max(0);
        cookie.push_str(&format!("; Max-Age={left}"));
    }
    let mut response = axum::Json(LoggedIn {
        profile: principal.profile,
        scope: principal.scope,
    })
    .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /v1/logout`: forgets the login cookie (204).
pub async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "datastore_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    response
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
