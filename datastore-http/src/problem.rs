//! Problem details (RFC 9457): every error answer, as
//! `application/problem+json`, naming the store, key or field at fault.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datastore_core::Error;
use serde::Serialize;

/// An error answer (boxed, so results that carry one stay small).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(Box<ProblemDetails>);

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;
    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

/// The body of a problem answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemDetails {
    /// A URI naming the kind of problem (`urn:datastore:problem:not-found`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The store concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The record key concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The field (or header, or parameter) at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong with the field (an `invalid` problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the write required (`conflict`, `precondition-failed`):
    /// `any`, `must-not-exist`, `must-exist` or `must-be-at-revision N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The revision found (`conflict`, `precondition-failed`; `null`: no
    /// record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<Option<u64>>,
    /// The changes through this position were compacted
    /// (`cursor-expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compacted_through: Option<u64>,
    /// The operation the store does not support (`unsupported`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The version asked for (`version-expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The oldest version kept, if any (`version-expired`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_kept: Option<Option<u64>>,
}

impl Problem {
    /// A problem of `status` with a short kind name (`bad-request`).
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Problem(Box::new(ProblemDetails {
            kind: format!("urn:datastore:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            store: None,
            key: None,
            field: None,
            reason: None,
            expected: None,
            found: None,
            compacted_through: None,
            operation: None,
            revision: None,
            oldest_kept: None,
        }))
    }

    /// 400, naming the field (or parameter, or header) at fault.
    pub fn bad_request(field: &str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail).field(field)
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Maps a store error. `preconditioned` says the request carried
    /// `If-Match` or `If-None-Match`, so a failed precondition is 412 rather
    /// than 409.
    pub fn from_error(e: &Error, preconditioned: bool) -> Self {
        use StatusCode as S;
        let (status, kind, store, key, field) = match e {
            Error::NotFound { store, key } => {
                (S::NOT_FOUND, "not-found", Some(*store), Some(key), None)
            }
            Error::AlreadyExists { store, key } => {
                (S::CONFLICT, "already-exists", Some(*store), Some(key), None)
            }
            Error::Conflict { store, key, .. } if preconditioned => (
                S::PRECONDITION_FAILED,
                "precondition-failed",
                Some(*store),
                Some(key),
                None,
            ),
            Error::Conflict { store, key, .. } => {
                (S::CONFLICT, "conflict", Some(*store), Some(key), None)
            }
            Error::Invalid {
                store, key, field, ..
            } => (
                S::BAD_REQUEST,
                "invalid",
                Some(*store),
                Some(key),
                Some(field.clone()),
            ),
            Error::CursorExpired { store, key, .. } => (
                S::GONE,
                "cursor-expired",
                Some(*store),
                Some(key),
                Some("cursor".to_string()),
            ),
            Error::VersionExpired { store, key, .. } => (
                S::GONE,
                "version-expired",
                Some(*store),
                Some(key),
                Some("revision".to_string()),
            ),
            Error::Unsupported { store, key, .. } => (
                S::NOT_IMPLEMENTED,
                "unsupported",
                Some(*store),
                Some(key),
                None,
            ),
            Error::Unavailable { store, key, .. } => (
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                Some(*store),
                Some(key),
                None,
            ),
            Error::Corrupt { store, key, .. } | Error::Backend { store, key, .. } => (
                S::INTERNAL_SERVER_ERROR,
                "internal",
                Some(*store),
                Some(key),
                None,
            ),
            _ => (S::INTERNAL_SERVER_ERROR, "internal", None, None, None),
        };
        let mut problem = Problem::new(status, kind, e.to_string());
        problem.0.store = store.map(|s| s.as_str().to_string());
        problem.0.key = key.filter(|k| !k.is_empty()).cloned();
        problem.0.field = field;
        match e {
            Error::Conflict {
                expected, found, ..
            } => {
                problem.0.expected = Some(expected.to_string());
                problem.0.found = Some(found.map(|r| r.get()));
            }
            Error::Invalid { reason, .. } => problem.0.reason = Some(reason.clone()),
            Error::CursorExpired {
                compacted_through, ..
            } => problem.0.compacted_through = Some(*compacted_through),
            Error::Unsupported { operation, .. } => problem.0.operation = Some(operation.clone()),
            Error::VersionExpired {
                revision,
                oldest_kept,
                ..
            } => {
                problem.0.revision = Some(revision.get());
                problem.0.oldest_kept = Some(oldest_kept.map(|r| r.get()));
            }
            _ => {}
        }
        problem
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        Problem::from_error(&e, false)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
