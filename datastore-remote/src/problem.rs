//! Problem details (RFC 9457) and transport failures mapped back onto the
//! one [`Error`] enum, so a remote store fails exactly like a local one.

use datastore_core::{Error, Precondition, Revision, StoreName};
use reqwest::StatusCode;
use serde::Deserialize;

/// How an `Unsupported` from a server without the endpoint begins.
const NO_ENDPOINT: &str = "this server has no endpoint for it";

/// What a call was working on, for errors the answer does not name.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The substore addressed.
    pub store: StoreName,
    /// The key addressed (may be empty).
    pub key: String,
    /// The precondition the request carried.
    pub precondition: Precondition,
}

impl Ctx {
    /// A call on `key` of `store`, without a precondition.
    pub fn new(store: StoreName, key: impl Into<String>) -> Self {
        Ctx {
            store,
            key: key.into(),
            precondition: Precondition::Any,
        }
    }

    /// The same call, carrying `precondition`.
    pub fn with(mut self, precondition: Precondition) -> Self {
        self.precondition = precondition;
        self
    }

    /// `Unavailable` for this call.
    pub fn unavailable(&self, why: impl Into<datastore_core::BoxError>) -> Error {
        Error::Unavailable {
            store: self.store,
            key: self.key.clone(),
            source: why.into(),
        }
    }

    /// `Backend` for this call.
    pub fn backend(&self, why: impl Into<datastore_core::BoxError>) -> Error {
        Error::Backend {
            store: self.store,
            key: self.key.clone(),
            source: why.into(),
        }
    }
}

/// The body of a problem answer (`application/problem+json`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProblemBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    expected: Option<String>,
    /// Present (`Some`) even when `null` (no record).
    #[serde(default, deserialize_with = "present")]
    found: Option<Option<u64>>,
    #[serde(default)]
    compacted_through: Option<u64>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    revision: Option<u64>,
    #[serde(default)]
    oldest_kept: Option<u64>,
}

/// A member that may be `null`: `Some(None)` when it is, `None` (by
/// `default`) when it is absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    <Option<u64> as serde::Deserialize>::deserialize(d).map(Some)
}

/// A failed request (no answer): `Unavailable` when the server could not
/// be reached or did not answer in time (retrying may succeed), `Backend`
/// otherwise.
pub(crate) fn transport(e: reqwest::Error, ctx: &Ctx) -> Error {
    if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() {
        ctx.unavailable(e)
    } else if e.is_decode() {
        ctx.backend(format!("the server's answer did not decode: {e}"))
    } else {
        ctx.backend(e)
    }
}

/// The error an answer that is not a success stands for.
pub(crate) async fn from_response(response: reqwest::Response, ctx: &Ctx) -> Error {
    let status = response.status();
    let etag = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_etag);
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return transport(e, ctx),
    };
    map(status, etag, &text, ctx)
}

/// A revision from an ETag (`"7"`, or `W/"7"`).
pub(crate) fn parse_etag(tag: &str) -> Option<Revision> {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"').parse().ok()
}

/// Maps a status and its body (a problem, or anything else) to an error.
pub(crate) fn map(status: StatusCode, etag: Option<Revision>, text: &str, ctx: &Ctx) -> Error {
    let problem: Option<ProblemBody> = serde_json::from_str(text).ok();
    let Some(p) = problem.filter(|p| p.kind.starts_with("urn:datastore:problem:")) else {
        let snippet: String = text.chars().take(200).collect();
        let why = format!("HTTP {status} from the server: {snippet}");
        return match status {
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT => ctx.unavailable(why),
            _ => ctx.backend(why),
        };
    };
    let kind = p.kind.trim_start_matches("urn:datastore:problem:");
    let store = p
        .store
        .as_deref()
        .and_then(StoreName::from_name)
        .unwrap_or(ctx.store);
    let key = p.key.clone().unwrap_or_default();
    let field = p.field.clone().unwrap_or_default();
    // The detail is the server's `Error` message: `{store}: {key:?}: ...`.
    let after = |marker: &str| -> Option<String> {
        let prefix = format!("{store}: {key:?}: {marker}");
        p.detail.strip_prefix(&prefix).map(str::to_string)
    };
    match kind {
        "not-found" => Error::NotFound { store, key },
        "already-exists" => Error::AlreadyExists { store, key },
        "conflict" | "precondition-failed" => {
            // A put with `If-None-Match: *` on a key that exists is a 412 on
            // the wire; locally it is `AlreadyExists`.
            if kind == "precondition-failed"
                && ctx.precondition == Precondition::MustNotExist
                && store == ctx.store
                && key == ctx.key
            {
                return Error::AlreadyExists { store, key };
            }
            // The problem's own members; the detail's text from a server
            // that does not send them; else what was sent and the ETag.
            let members = match (&p.expected, p.found) {
                (Some(expected), Some(found)) => parse_precondition(expected)
                    .map(|expected| (expected, found.map(Revision::new))),
                _ => None,
            };
            let (expected, found) = members
                .or_else(|| parse_conflict(&p.detail))
                .unwrap_or((ctx.precondition, etag));
            Error::Conflict {
                store,
                key,
                expected,
                found,
            }
        }
        "invalid" => {
            let reason = p
                .reason
                .clone()
                .or_else(|| after(&format!("invalid {field}: ")))
                .unwrap_or_else(|| p.detail.clone());
            Error::Invalid {
                store,
                key,
                field,
                reason,
            }
        }
        "bad-request" | "body-too-large" | "unsupported-media-type" => Error::Invalid {
            store,
            key: if key.is_empty() { ctx.key.clone() } else { key },
            field: if field.is_empty() {
                "request".into()
            } else {
                field
            },
            reason: p.detail,
        },
        "unauthorized" => Error::Invalid {
            store: ctx.store,
            key: ctx.key.clone(),
            field: "token".into(),
            reason: format!(
                "the server refused the request (401 Unauthorized: {}); set RemoteConfig::token to the server's bearer token",
                p.detail
            ),
        },
        "cursor-expired" => Error::CursorExpired {
            store,
            compacted_through: p
                .compacted_through
                .or_else(|| parse_compacted(&p.detail))
                .unwrap_or(0),
            key,
        },
        "version-expired" => Error::VersionExpired {
            store,
            key,
            revision: Revision::new(p.revision.unwrap_or(0)),
            oldest_kept: p.oldest_kept.map(Revision::new),
        },
        "unsupported" => Error::Unsupported {
            store,
            operation: p
                .operation
                .clone()
                .or_else(|| after("unsupported: "))
                .unwrap_or_else(|| p.detail.clone()),
            key,
        },
        "no-such-endpoint" => Error::Unsupported {
            store: ctx.store,
            key: ctx.key.clone(),
            operation: format!("{NO_ENDPOINT} ({})", p.detail),
        },
        "unavailable" | "too-many-requests" | "too-many-streams" => Error::Unavailable {
            store,
            key,
            source: p.detail.into(),
        },
        _ if status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS =>
        {
            Error::Unavailable {
                store,
                key,
                source: p.detail.into(),
            }
        }
        _ => match after("stored data is corrupt: ") {
            Some(reason) => Error::Corrupt { store, key, reason },
            None => Error::Backend {
                store,
                key,
                source: format!("HTTP {status}: {}", p.detail).into(),
            },
        },
    }
}

/// `(expected, found)` from `... precondition EXPECTED failed, found FOUND`.
fn parse_conflict(detail: &str) -> Option<(Precondition, Option<Revision>)> {
    let (head, found) = detail.rsplit_once(" failed, found ")?;
    let (_, expected) = head.rsplit_once(": precondition ")?;
    let expected = parse_precondition(expected)?;
    let found = match found.trim() {
        "no record" => None,
        other => Some(other.strip_prefix("revision ")?.trim().parse().ok()?),
    };
    Some((expected, found))
}

/// A precondition in its display form (`must-be-at-revision 3`).
fn parse_precondition(text: &str) -> Option<Precondition> {
    Some(match text {
        "any" => Precondition::Any,
        "must-not-exist" => Precondition::MustNotExist,
        "must-exist" => Precondition::MustExist,
        other => Precondition::MustBeAt(
            other
                .strip_prefix("must-be-at-revision ")?
                .trim()
                .parse()
                .ok()?,
        ),
    })
}

/// `N` from `... changes through N were compacted`.
pub(crate) fn parse_compacted(detail: &str) -> Option<u64> {
    let (_, rest) = detail.rsplit_once("changes through ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datastore_core::Kind;

    fn ctx() -> Ctx {
        Ctx::new(StoreName::Kind(Kind::Profile), "p1")
    }

    fn problem(kind: &str, status: u16, detail: &str, extra: serde_json::Value) -> String {
        let mut body = serde_json::json!({
            "type": format!("urn:datastore:problem:{kind}"),
            "title": "x", "status": status, "detail": detail,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body.to_string()
    }

    #[test]
    fn the_problem_members_win_over_the_prose() {
        let text = problem(
            "conflict",
            409,
            "worded some other way",
            serde_json::json!({"store": "profiles", "key": "p1",
                "expected": "must-be-at-revision 7", "found": null}),
        );
        match map(StatusCode::CONFLICT, Some(Revision::new(9)), &text, &ctx()) {
            Error::Conflict {
                expected, found, ..
            } => {
                assert_eq!(expected, Precondition::MustBeAt(Revision::new(7)));
                assert_eq!(found, None, "null: no record, not the ETag");
            }
            other => panic!("{other:?}"),
        }
        let text = problem(
            "cursor-expired",
            410,
            "worded some other way",
            serde_json::json!({"store": "changes", "compacted_through": 42}),
        );
        match map(StatusCode::GONE, None, &text, &ctx()) {
            Error::CursorExpired {
                compacted_through, ..
            } => assert_eq!(compacted_through, 42),
            other => panic!("{other:?}"),
        }
        let text = problem(
            "invalid",
            400,
            "worded some other way",
            serde_json::json!({"store": "profiles", "key": "p1", "field": "email",
                "reason": "is not an address"}),
        );
        match map(StatusCode::BAD_REQUEST, None, &text, &ctx()) {
            Error::Invalid { field, reason, .. } => {
                assert_eq!(
                    (field.as_str(), reason.as_str()),
                    ("email", "is not an address")
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conflicts_carry_the_revision_found() {
        let text = problem(
            "precondition-failed",
            412,
            "profiles: \"p1\": precondition must-be-at-revision 3 failed, found revision 4",
            serde_json::json!({"store": "profiles", "key": "p1"}),
        );
        let e = map(StatusCode::PRECONDITION_FAILED, None, &text, &ctx());
        match e {
            Error::Conflict {
                expected, found, ..
            } => {
                assert_eq!(expected, Precondition::MustBeAt(Revision::new(3)));
                assert_eq!(found, Some(Revision::new(4)));
            }
            other => panic!("{other:?}"),
        }
        let text = problem(
            "conflict",
            409,
            "logs: \"l1\": precondition must-be-at-revision 2 failed, found no record",
            serde_json::json!({"store": "logs", "key": "l1"}),
        );
        assert!(matches!(
            map(StatusCode::CONFLICT, None, &text, &ctx()),
            Error::Conflict { found: None, .. }
        ));
    }

    #[test]
    fn invalid_keeps_field_and_reason() {
        let text = problem(
            "invalid",
            400,
            "profiles: \"p1\": invalid username: must not contain spaces",
            serde_json::json!({"store": "profiles", "key": "p1", "field": "username"}),
        );
        match map(StatusCode::BAD_REQUEST, None, &text, &ctx()) {
            Error::Invalid { field, reason, .. } => {
                assert_eq!(field, "username");
                assert_eq!(reason, "must not contain spaces");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expired_cursors_and_refusals() {
        let text = problem(
            "cursor-expired",
            410,
            "changes: cursor 3 has expired: changes through 7 were compacted",
            serde_json::json!({"store": "changes", "key": "3", "field": "cursor"}),
        );
        assert!(matches!(
            map(StatusCode::GONE, None, &text, &ctx()),
            Error::CursorExpired {
                compacted_through: 7,
                ..
            }
        ));
        let text = problem(
            "unauthorized",
            401,
            "the bearer token is wrong",
            serde_json::json!({"field": "authorization"}),
        );
        let e = map(StatusCode::UNAUTHORIZED, None, &text, &ctx());
        assert!(matches!(&e, Error::Invalid { field, .. } if field == "token"));
        assert!(!e.is_retryable());
        let e = map(StatusCode::SERVICE_UNAVAILABLE, None, "busy", &ctx());
        assert!(e.is_retryable());
    }
}
