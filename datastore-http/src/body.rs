//! Request bodies: size-limited, strict JSON (an unknown field is an error).

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::Serialize;
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
    T: DeserializeOwned + Serialize,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = Limits::from_ref(state);
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|ct| ct.to_str().unwrap_or_default())
            .unwrap_or_default();
        if !is_json(ct) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!("the body must be application/json (or a +json type), not {ct:?}"),
            )
            .field("content-type"));
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

/// Parses strict JSON: a syntax error, a wrong type, an array where an
/// object belongs or an unknown field is a 400 naming where (the same
/// strict reading `datastore import` uses).
pub fn parse<T: DeserializeOwned + Serialize>(bytes: &[u8]) -> Result<T, Problem> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Problem::bad_request("body", "the body is not UTF-8"))?;
    datastore_core::strict::from_str_strict(text).map_err(|e| {
        let field = if e.path == "." {
            "body".to_string()
        } else {
            e.path
        };
        let reason = if e.reason == "unknown field" {
            format!("unknown field {field:?}")
        } else {
            format!("malformed JSON at {field}: {}", e.reason)
        };
        Problem::bad_request(&field, reason)
    })
}

/// True for `application/json` and `application/*+json` media types, any
/// parameters (`; charset=utf-8`) aside, in any letter case.
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn only_json_media_types_are_json() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "application/jsonx",
            "text/json",
            "application/x-json-ish",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
