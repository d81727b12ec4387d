//! Revisions as HTTP headers: ETags, and the preconditions `If-Match` /
//! `If-None-Match` ask for.

use axum::http::{HeaderMap, HeaderValue, header};
use datastore_core::{Precondition, Revision};

use crate::problem::Problem;

/// The ETag of a revision.
pub fn etag(revision: Revision) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header")
}

/// The precondition the request's `If-Match` / `If-None-Match` headers ask
/// for, and whether there was one.
pub fn precondition(headers: &HeaderMap) -> Result<(Precondition, bool), Problem> {
    let text = |name: header::HeaderName| -> Result<Option<String>, Problem> {
        headers
            .get(&name)
            .map(|v| {
                v.to_str()
                    .map(|s| s.trim().to_string())
                    .map_err(|_| Problem::bad_request(name.as_str(), "not ASCII"))
            })
            .transpose()
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "if-none-match",
            "send If-Match or If-None-Match, not both",
        )),
        (Some(m), None) if m == "*" => Ok((Precondition::MustExist, true)),
        (Some(m), None) => {
            let revision = m
                .strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .unwrap_or(&m)
                .parse::<Revision>()
                .map_err(|_| {
                    Problem::bad_request(
                        "if-match",
                        format!("{m:?} is not an ETag this server gave (\"<revision>\")"),
                    )
                })?;
            Ok((Precondition::MustBeAt(revision), true))
        }
        (None, Some(n)) if n == "*" => Ok((Precondition::MustNotExist, true)),
        (None, Some(n)) => Err(Problem::bad_request(
            "if-none-match",
            format!("{n:?}: only If-None-Match: * is a write precondition"),
        )),
        (None, None) => Ok((Precondition::Any, false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_come_from_the_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(precondition(&h).unwrap(), (Precondition::Any, false));
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"7\""));
        assert_eq!(
            precondition(&h).unwrap(),
            (Precondition::MustBeAt(Revision::new(7)), true)
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(precondition(&h).unwrap().0, Precondition::MustExist);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(
            precondition(&h).unwrap_err().field.as_deref(),
            Some("if-match")
        );
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(precondition(&h).unwrap().0, Precondition::MustNotExist);
    }
}
