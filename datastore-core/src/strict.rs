//! Strict JSON: a document becomes a value only if every field it holds is
//! one the value's type knows. Records read their JSON leniently (missing
//! fields take defaults, unknown ones are ignored, so stored records from
//! older or newer builds still load); input from people and other programs
//! (an HTTP body, an import line) is read strictly, so a misspelt field is
//! an error naming it instead of a silently empty value.

mod unknown;

use std::fmt::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a document was refused: where (a path such as `record.emial`, `.`
/// for the whole document) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct StrictError {
    /// The field, as a dotted path (`[i]` for array items); `.` for the document.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads `text` as a `T`, refusing malformed JSON, values of the wrong
/// shape (naming the path) and fields `T` does not know (naming the first).
///
/// Unknown fields are found by writing the value back out and looking for
/// the input's fields in it, so the check holds however `T` is built
/// (tagged enums included, whatever the order of their keys). The value is
/// written out alongside the input, not into a second JSON tree: only the
/// fields' names are compared.
pub fn from_str_strict<T: DeserializeOwned + Serialize>(text: &str) -> Result<T, StrictError> {
    let input: Value = serde_json::from_str(text).map_err(|e| StrictError {
        path: ".".into(),
        reason: format!("not JSON: {e}"),
    })?;
    from_value_strict(input)
}

/// [`from_str_strict`] for a document already parsed.
pub fn from_value_strict<T: DeserializeOwned + Serialize>(input: Value) -> Result<T, StrictError> {
    // Most input is well formed: read it plainly, and only when that fails
    // read it again tracking the path, to name where.
    let value: T = match T::deserialize(&input) {
        Ok(value) => value,
        Err(_) => serde_path_to_error::deserialize(&input).map_err(|e| StrictError {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?,
    };
    match unknown::first_unknown(&input, &value) {
        Some(refused) => Err(refused),
        None => Ok(value),
    }
}

/// Whether `text` is exactly the compact JSON `value` writes (what
/// `serde_json::to_string` gives). A text read into a `T` that writes back
/// byte for byte holds no field `T` does not know and no array where `T`
/// has an object, so it reads strictly as it reads plainly: a reader of
/// many such texts (an export's lines) can read each plainly, check it
/// with this, and skip [`from_str_strict`]'s JSON tree. Compared as it is
/// written, stopping at the first byte that differs; nothing is built.
pub fn writes_exactly<T: Serialize + ?Sized>(value: &T, text: &str) -> bool {
    /// The text not yet matched.
    struct Same<'t>(&'t [u8]);
    impl std::io::Write for Same<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let n = bytes.len();
            let same = self.0.len() >= n && {
                let head = &self.0[..n];
                // Most writes are a byte or a few (a quote, a colon, a
                // key): a loop, not a call to `memcmp`.
                if n <= 16 {
                    head.iter().zip(bytes).all(|(a, b)| a == b)
                } else {
                    head == bytes
                }
            };
            if !same {
                return Err(std::io::Error::other("differs"));
            }
            self.0 = &self.0[n..];
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut same = Same(text.as_bytes());
    serde_json::to_writer(&mut same, value).is_ok() && same.0.is_empty()
}

/// One step of the path to a field: an object's key or an array's index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `steps` as a dotted path (`record.steps[0].colour`), `.` when empty.
/// Built only for an error, so a good document allocates no paths.
fn path_of(steps: &[Step]) -> String {
    let mut path = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Step::Index(i) => {
                let _ = write!(path, "[{i}]");
            }
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

/// The first field of `input` that `known` (the value written back out)
/// does not have, or an array where `known` has an object (serde reads a
/// struct from an array of its fields in order; people mean no such thing).
/// What [`unknown::first_unknown`] finds without writing `known`; the
/// tests compare the two.
#[cfg(test)]
fn first_unknown<'a>(
    input: &'a Value,
    known: &Value,
    steps: &mut Vec<Step<'a>>,
) -> Option<StrictError> {
    match (input, known) {
        (Value::Object(given), Value::Object(kept)) => given.iter().find_map(|(key, v)| {
            steps.push(Step::Key(key));
            let found = match kept.get(key) {
                Some(k) => first_unknown(v, k, steps),
                None => Some(StrictError {
                    path: path_of(steps),
                    reason: "unknown field".into(),
                }),
            };
            steps.pop();
            found
        }),
        (Value::Array(_), Value::Object(_)) => Some(StrictError {
            path: path_of(steps),
            reason: "expected an object, found an array".into(),
        }),
        (Value::Array(given), Value::Array(kept)) => {
            given.iter().zip(kept).enumerate().find_map(|(i, (v, k))| {
                steps.push(Step::Index(i));
                let found = first_unknown(v, k, steps);
                steps.pop();
                found
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnyRecord, Profile};

    #[test]
    fn a_misspelt_field_is_named() {
        let err =
            from_str_strict::<Profile>(r#"{"id":"p1","username":"u1","emial":"x@y"}"#).unwrap_err();
        assert_eq!(err.path, "emial");
        assert_eq!(err.reason, "unknown field");
    }

    #[test]
    fn unknown_fields_inside_tagged_enums_are_found_in_any_key_order() {
        for text in [
            r#"{"kind":"profile","record":{"id":"p1","username":"u1","emial":"x"}}"#,
            r#"{"record":{"id":"p1","username":"u1","emial":"x"},"kind":"profile"}"#,
        ] {
            let err = from_str_strict::<AnyRecord>(text).unwrap_err();
            assert_eq!(err.path, "record.emial", "{text}");
        }
        let nested = r#"{"kind":"run","record":{"id":"r","workflow_id":"w","number":1,"steps":[{"name":"s","colour":1}]}}"#;
        assert_eq!(
            from_str_strict::<AnyRecord>(nested).unwrap_err().path,
            "record.steps[0].colour"
        );
    }

    #[test]
    fn a_text_writes_exactly_only_when_every_byte_is_what_the_value_writes() {
        let text = r#"{"id":"p1","username":"u1"}"#;
        let p: Profile = serde_json::from_str(text).unwrap();
        let written = serde_json::to_string(&p).unwrap();
        assert!(writes_exactly(&p, &written));
        // Fewer fields than the value writes, a space, another key order,
        // a field the value does not know, more text after it.
        assert!(!writes_exactly(&p, text));
        assert!(!writes_exactly(&p, &written.replacen(':', ": ", 1)));
        let reordered = serde_json::to_value(&p).unwrap().to_string();
        assert_ne!(reordered, written, "sorted keys are another order");
        assert!(!writes_exactly(&p, &reordered));
        let unknown = written.replacen('{', r#"{"emial":"x","#, 1);
        assert!(!writes_exactly(&p, &unknown));
        assert!(!writes_exactly(&p, &format!("{written} ")));
        assert!(!writes_exactly(&p, &written[..written.len() - 1]));
    }

    #[test]
    fn known_fields_pass_and_wrong_shapes_name_their_path() {
        let p: Profile = from_str_strict(r#"{"id":"p1","username":"u1"}"#).unwrap();
        assert_eq!(p.username, "u1");
        let err = from_str_strict::<Profile>(r#"{"id":"p1","username":5}"#).unwrap_err();
        assert_eq!(err.path, "username");
        let err = from_str_strict::<Profile>(r#"["p1","u1"]"#).unwrap_err();
        assert_eq!(err.path, ".");
        assert!(err.reason.contains("expected an object"), "{err}");
        let err = from_str_strict::<Profile>("{").unwrap_err();
        assert!(err.reason.starts_with("not JSON"), "{err}");
    }
}
