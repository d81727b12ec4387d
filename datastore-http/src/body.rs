//! Request bodies: size-limited, strict JSON (an unknown field is an error).

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::Limits;
use crate::problem::Problem;

/// A JSON body of `T`: at most the configured size, no unknown fields.
#[derive(Debug)]
pub struct Strict<T>(pub T);

impl<S, T> FromRequest<S> for Strict<T>
where
    S: Send + Sync,
    Limits: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = Limits::from_ref(state);
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            if !ct.starts_with("application/json") {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    format!("the body must be application/json, not {ct:?}"),
                )
                .field("content-type"));
            }
        }
        let body: Body = req.into_body();
        let bytes = axum::body::to_bytes(body, limits.max_body_bytes)
            .await
            .map_err(|_| {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    format!("the body is larger than {} bytes", limits.max_body_bytes),
                )
                .field("body")
            })?;
        parse(&bytes).map(Strict)
    }
}

/// Parses strict JSON: a syntax error, a wrong type or an unknown field is a
/// 400 naming where.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let value: T =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut de, &mut note))
            .map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "body".to_string()
                } else {
                    path
                };
                Problem::bad_request(&field, format!("malformed JSON at {field}: {}", e.inner()))
            })?;
    de.end()
        .map_err(|e| Problem::bad_request("body", format!("malformed JSON: {e}")))?;
    if let Some(field) = unknown.first() {
        return Err(Problem::bad_request(
            field,
            format!("unknown field {field:?}"),
        ));
    }
    Ok(value)
}
