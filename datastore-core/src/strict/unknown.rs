//! Finding a document's unknown fields by serializing the value read from
//! it alongside the document, without building the value's JSON.
//!
//! The value is serialized into a [`Walk`], a `Serializer` that produces
//! nothing: it follows the document as the value's fields come out, notes
//! which of the document's keys each object of the value has, and at the end
//! of each object names the document's first key (in the document's map
//! order) that the value did not write, or the first error found under one
//! it did. A field the document does not hold is not serialized at all, and
//! text (dates, ids) is never formatted: only the shape is compared.
//!
//! This gives the same answer as writing the value out with
//! `serde_json::to_value` and comparing the two trees, which is what the
//! tests check it against.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Value};

use super::{Step, StrictError, path_of};

/// The first field of `input` that `value`, written out, does not have, or
/// an array where `value` writes an object.
pub(super) fn first_unknown<T: Serialize + ?Sized>(
    input: &Value,
    value: &T,
) -> Option<StrictError> {
    let mut steps = Vec::new();
    match value.serialize(Walk {
        input,
        steps: &mut steps,
    }) {
        Ok(()) => None,
        Err(Stop::Refused(e)) => Some(e),
        Err(Stop::Serialize(reason)) => Some(StrictError {
            path: ".".into(),
            reason,
        }),
    }
}

/// Why a walk stopped: a field of the document the value does not have, or
/// the value failing to serialize at all.
#[derive(Debug)]
enum Stop {
    Refused(StrictError),
    Serialize(String),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Refused(e) => e.fmt(f),
            Stop::Serialize(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Stop::Serialize(msg.to_string())
    }
}

/// Runs `serialize` on the part of the document at `step`, with the step on
/// the path meanwhile.
fn walk_into<'a, T: Serialize + ?Sized>(
    steps: &mut Vec<Step<'a>>,
    step: Step<'a>,
    input: &'a Value,
    value: &T,
) -> Result<(), Stop> {
    steps.push(step);
    let walked = value.serialize(Walk {
        input,
        steps: &mut *steps,
    });
    steps.pop();
    walked
}

/// A serializer that follows the document `input` (at the path `steps`).
struct Walk<'a, 's> {
    input: &'a Value,
    steps: &'s mut Vec<Step<'a>>,
}

impl<'a, 's> Walk<'a, 's> {
    /// The value writes an object here.
    fn object(self) -> Result<Object<'a, 's>, Stop> {
        Object::new(self.input, self.steps)
    }

    /// The value writes an array here.
    fn array(self) -> Array<'a, 's> {
        Array {
            given: match self.input {
                Value::Array(given) => Some(given),
                _ => None,
            },
            next: 0,
            steps: self.steps,
        }
    }
}

/// An object the value writes, against the document's object there (if it
/// is one).
struct Object<'a, 's> {
    given: Option<&'a Map<String, Value>>,
    steps: &'s mut Vec<Step<'a>>,
    /// The document's keys the value wrote.
    seen: Vec<&'a str>,
    /// Errors found under those keys.
    deeper: Vec<(&'a str, StrictError)>,
    /// The key of the map entry being written (`serialize_key` first).
    key: Option<String>,
}

impl<'a, 's> Object<'a, 's> {
    fn new(input: &'a Value, steps: &'s mut Vec<Step<'a>>) -> Result<Self, Stop> {
        let given = match input {
            Value::Object(given) => Some(given),
            // serde reads a struct from an array of its fields in order;
            // people mean no such thing.
            Value::Array(_) => {
                return Err(Stop::Refused(StrictError {
                    path: path_of(steps),
                    reason: "expected an object, found an array".into(),
                }));
            }
            _ => None,
        };
        Ok(Object {
            given,
            steps,
            seen: Vec::new(),
            deeper: Vec::new(),
            key: None,
        })
    }

    /// The value writes `key: value`.
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Stop> {
        let Some((key, input)) = self.given.and_then(|g| g.get_key_value(key)) else {
            return Ok(());
        };
        // A value can write a key twice (a flattened field named like its
        // neighbour); counted once, the count below stays a proof.
        if !self.seen.contains(&key.as_str()) {
            self.seen.push(key);
        }
        let walked = walk_into(self.steps, Step::Key(key), input, value);
        self.under(key, walked)
    }

    /// Keeps an error found under `key` for [`Object::end`].
    fn under(&mut self, key: &'a str, walked: Result<(), Stop>) -> Result<(), Stop> {
        match walked {
            Err(Stop::Refused(e)) => {
                self.deeper.push((key, e));
                Ok(())
            }
            other => other,
        }
    }

    /// The document's first key, in its order, that the value did not
    /// write or under which something was refused.
    fn end(self) -> Result<(), Stop> {
        self.finish().0
    }

    /// [`Object::end`], handing back the path.
    fn finish(mut self) -> (Result<(), Stop>, &'s mut Vec<Step<'a>>) {
        let Some(given) = self.given else {
            return (Ok(()), self.steps);
        };
        if self.seen.len() == given.len() && self.deeper.is_empty() {
            return (Ok(()), self.steps);
        }
        // A large map is looked up by hash, a small one by a glance.
        let many: Option<std::collections::HashSet<&str>> =
            (self.seen.len() > 32).then(|| self.seen.iter().copied().collect());
        for key in given.keys() {
            let key = key.as_str();
            let seen = match &many {
                Some(many) => many.contains(key),
                None => self.seen.contains(&key),
            };
            if !seen {
                return (Err(unknown(self.steps, key)), self.steps);
            }
            if let Some(at) = self.deeper.iter().position(|(k, _)| *k == key) {
                let (_, e) = self.deeper.swap_remove(at);
                return (Err(Stop::Refused(e)), self.steps);
            }
        }
        (Ok(()), self.steps)
    }
}

/// An array the value writes, against the document's array there (if it is
/// one): items are compared in order, as far as both go.
struct Array<'a, 's> {
    given: Option<&'a Vec<Value>>,
    next: usize,
    steps: &'s mut Vec<Step<'a>>,
}

impl Array<'_, '_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let at = self.next;
        self.next += 1;
        match self.given.and_then(|g| g.get(at)) {
            Some(input) => walk_into(self.steps, Step::Index(at), input, value),
            None => Ok(()),
        }
    }
}

/// What a variant's `{variant: ...}` holds, being walked.
enum Inner<'a, 's> {
    Object(Object<'a, 's>),
    Array(Array<'a, 's>),
    /// The document holds an array where the variant writes an object.
    Refused(StrictError, &'s mut Vec<Step<'a>>),
    /// The document does not hold the variant's key (nothing to compare).
    Absent(&'s mut Vec<Step<'a>>),
}

/// `{variant: [...]}` or `{variant: {...}}` (an externally tagged enum's
/// tuple or struct variant): the inner array or object is walked under the
/// variant's key, then the outer object's keys are checked.
struct Variant<'a, 's> {
    /// The document's object around the variant, if it is one.
    outer: Option<&'a Map<String, Value>>,
    variant: &'static str,
    inner: Inner<'a, 's>,
}

impl<'a, 's> Variant<'a, 's> {
    fn new(walk: Walk<'a, 's>, variant: &'static str, object: bool) -> Result<Self, Stop> {
        let outer = match walk.input {
            Value::Object(given) => Some(given),
            Value::Array(_) => {
                return Err(Stop::Refused(StrictError {
                    path: path_of(walk.steps),
                    reason: "expected an object, found an array".into(),
                }));
            }
            _ => None,
        };
        let steps = walk.steps;
        let inner = match outer.and_then(|g| g.get_key_value(variant)) {
            None => Inner::Absent(steps),
            Some((key, input)) => {
                // The variant's key stays on the path until `end`.
                steps.push(Step::Key(key));
                if !object {
                    Inner::Array(Walk { input, steps }.array())
                } else if let Value::Array(_) = input {
                    let refused = StrictError {
                        path: path_of(steps),
                        reason: "expected an object, found an array".into(),
                    };
                    Inner::Refused(refused, steps)
                } else {
                    Inner::Object(Object::new(input, steps)?)
                }
            }
        };
        Ok(Variant {
            outer,
            variant,
            inner,
        })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Stop> {
        match &mut self.inner {
            Inner::Object(inner) => inner.field(key, value),
            _ => Ok(()),
        }
    }

    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        match &mut self.inner {
            Inner::Array(inner) => inner.item(value),
            _ => Ok(()),
        }
    }

    fn end(self) -> Result<(), Stop> {
        let (inner, steps) = match self.inner {
            Inner::Object(inner) => {
                let (walked, steps) = inner.finish();
                steps.pop();
                (walked, steps)
            }
            Inner::Array(Array { steps, .. }) => {
                steps.pop();
                (Ok(()), steps)
            }
            Inner::Refused(e, steps) => {
                steps.pop();
                (Err(Stop::Refused(e)), steps)
            }
            Inner::Absent(steps) => (Ok(()), steps),
        };
        let (Some(given), Ok(()) | Err(Stop::Refused(_))) = (self.outer, &inner) else {
            return inner;
        };
        // The outer object's only known key is the variant's: the first
        // other key is unknown, unless the variant's comes first and
        // something under it was refused.
        let Some((at, key)) = given.keys().enumerate().find(|(_, k)| *k != self.variant) else {
            return inner;
        };
        if inner.is_err() && given.keys().take(at).any(|k| k == self.variant) {
            return inner;
        }
        Err(unknown(steps, key))
    }
}

/// The error for `key`, a field of the object at `steps` that the value
/// does not have.
fn unknown<'a>(steps: &mut Vec<Step<'a>>, key: &'a str) -> Stop {
    steps.push(Step::Key(key));
    let path = path_of(steps);
    steps.pop();
    Stop::Refused(StrictError {
        path,
        reason: "unknown field".into(),
    })
}

impl<'a, 's> ser::Serializer for Walk<'a, 's> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Array<'a, 's>;
    type SerializeTuple = Array<'a, 's>;
    type SerializeTupleStruct = Array<'a, 's>;
    type SerializeTupleVariant = Variant<'a, 's>;
    type SerializeMap = Object<'a, 's>;
    type SerializeStruct = Object<'a, 's>;
    type SerializeStructVariant = Variant<'a, 's>;

    fn serialize_bool(self, _: bool) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_f64(self, _: f64) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), Stop> {
        Ok(())
    }
    /// Text is not compared, so it is not formatted (a date's `Display`
    /// is most of what writing a record out costs).
    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Result<(), Stop> {
        Ok(())
    }
    /// Bytes are written as an array of numbers: nothing under them.
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        let mut outer = self.object()?;
        outer.field(variant, value)?;
        outer.end()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a, 's>, Stop> {
        Ok(self.array())
    }
    fn serialize_tuple(self, _: usize) -> Result<Array<'a, 's>, Stop> {
        Ok(self.array())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Array<'a, 's>, Stop> {
        Ok(self.array())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Variant<'a, 's>, Stop> {
        Variant::new(self, variant, false)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a, 's>, Stop> {
        self.object()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Object<'a, 's>, Stop> {
        self.object()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Variant<'a, 's>, Stop> {
        Variant::new(self, variant, true)
    }
}

impl ser::SerializeSeq for Array<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.item(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTuple for Array<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.item(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Array<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.item(value)
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Variant<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        self.item(value)
    }
    fn end(self) -> Result<(), Stop> {
        Variant::end(self)
    }
}

impl ser::SerializeStructVariant for Variant<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Stop> {
        Variant::end(self)
    }
}

impl ser::SerializeStruct for Object<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Stop> {
        Object::end(self)
    }
}

impl ser::SerializeMap for Object<'_, '_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        self.key = Some(key.serialize(MapKey)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Stop::Serialize("a map value without its key".into()))?;
        self.field(&key, value)
    }
    fn end(self) -> Result<(), Stop> {
        Object::end(self)
    }
}

/// A map's key as JSON writes it: text as it is, numbers as their digits.
struct MapKey;

fn key_must_be_a_string() -> Stop {
    Stop::Serialize("key must be a string".into())
}

impl ser::Serializer for MapKey {
    type Ok = String;
    type Error = Stop;
    type SerializeSeq = Impossible<String, Stop>;
    type SerializeTuple = Impossible<String, Stop>;
    type SerializeTupleStruct = Impossible<String, Stop>;
    type SerializeTupleVariant = Impossible<String, Stop>;
    type SerializeMap = Impossible<String, Stop>;
    type SerializeStruct = Impossible<String, Stop>;
    type SerializeStructVariant = Impossible<String, Stop>;

    fn serialize_str(self, v: &str) -> Result<String, Stop> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_bool(self, v: bool) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_f64(self, v: f64) -> Result<String, Stop> {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit(self) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Stop> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, Stop> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Stop> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Stop> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::{AnyRecord, Batch};

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Leaf {
        x: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maybe: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    enum External {
        Unit,
        New(Leaf),
        Tuple(u8, Leaf),
        Struct { a: Leaf, b: Vec<Leaf> },
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Flattened {
        own: u8,
        #[serde(flatten)]
        leaf: Leaf,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Mixed {
        leaves: Vec<Leaf>,
        by_name: BTreeMap<String, Leaf>,
        by_number: BTreeMap<u32, Leaf>,
        pair: (Leaf, u8),
        externals: Vec<External>,
        flattened: Flattened,
        #[serde(default)]
        extra: Option<Box<Mixed>>,
    }

    /// Every document one edit away from `doc`, and some two away: a key
    /// added to an object (sorting first, last and between its keys), an
    /// object turned into an array of its values, a key removed.
    fn edits(doc: &Value) -> Vec<Value> {
        fn at<'v>(doc: &'v mut Value, path: &[PathStep]) -> &'v mut Value {
            path.iter().fold(doc, |v, step| match step {
                PathStep::Key(k) => &mut v[k.as_str()],
                PathStep::Index(i) => &mut v[*i],
            })
        }
        #[derive(Clone)]
        enum PathStep {
            Key(String),
            Index(usize),
        }
        fn nodes(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
            out.push(path.clone());
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        path.push(PathStep::Key(k.clone()));
                        nodes(v, path, out);
                        path.pop();
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        path.push(PathStep::Index(i));
                        nodes(v, path, out);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut paths = Vec::new();
        nodes(doc, &mut Vec::new(), &mut paths);
        let objects: Vec<&Vec<PathStep>> = paths
            .iter()
            .filter(|p| {
                let mut d = doc.clone();
                at(&mut d, p).is_object()
            })
            .collect();
        let mut out = Vec::new();
        for (n, path) in objects.iter().enumerate() {
            for extra in ["", "aaa", "m_extra", "zzz"] {
                let mut d = doc.clone();
                at(&mut d, path)[extra] = json!(1);
                out.push(d.clone());
                // And a second unknown key elsewhere: which one is named
                // depends on the order of the walk.
                if let Some(other) = objects.get((n * 7 + 3) % objects.len()) {
                    at(&mut d, other)["zz_second"] = json!({"q": 1});
                    out.push(d);
                }
            }
            let mut d = doc.clone();
            let node = at(&mut d, path);
            let values: Vec<Value> = node.as_object().unwrap().values().cloned().collect();
            *node = Value::Array(values);
            out.push(d);
            let mut d = doc.clone();
            let node = at(&mut d, path).as_object_mut().unwrap();
            if let Some(first) = node.keys().next().cloned() {
                node.remove(&first);
                out.push(d);
            }
        }
        out
    }

    /// For `doc` and every edit of it that still reads as a `T`, the walk
    /// names what comparing the written-out tree names.
    fn agrees<T: DeserializeOwned + Serialize>(doc: Value) -> usize {
        let mut compared = 0;
        for input in std::iter::once(doc.clone()).chain(edits(&doc)) {
            let Ok(value) = T::deserialize(&input) else {
                continue;
            };
            let known = serde_json::to_value(&value).unwrap();
            let expected = super::super::first_unknown(&input, &known, &mut Vec::new());
            assert_eq!(first_unknown(&input, &value), expected, "input: {input}");
            compared += 1;
        }
        compared
    }

    #[test]
    fn names_what_the_written_out_tree_names() {
        let leaf = json!({"x": 1, "maybe": "m"});
        let mixed = json!({
            "leaves": [leaf, {"x": 2}],
            "by_name": {"b": leaf, "a": {"x": 3}},
            "by_number": {"10": leaf, "2": {"x": 4}},
            "pair": [leaf, 7],
            "externals": [
                "Unit",
                {"New": leaf},
                {"Tuple": [1, leaf]},
                {"Struct": {"a": leaf, "b": [leaf, {"x": 5}]}}
            ],
            "flattened": {"own": 1, "x": 2, "maybe": "f"},
            "extra": {
                "leaves": [], "by_name": {}, "by_number": {}, "pair": [{"x": 0}, 0],
                "externals": [{"New": {"x": 9}}], "flattened": {"own": 0, "x": 0}
            }
        });
        let run = json!({"kind": "run", "record": {
            "id": "r1", "workflow_id": "w1", "number": 3, "message": "m",
            "start": "2026-12-04T05:00:00Z",
            "steps": [{"name": "s", "category": "c", "status": "running", "output": [
                {"kind": "log", "at": "2026-12-04T05:00:01Z", "payload": {"text": "hi", "n": [1, {"deep": true}]}}
            ]}]
        }});
        let profile = json!({"kind": "profile", "record": {
            "id": "p1", "username": "u1", "email": "u1@example.com",
            "created": "2026-12-04T05:00:00.123456Z", "kind": "user"
        }});
        let batch = json!({"ops": [
            {"op": "put", "record": profile, "precondition": {"kind": "must_be_at", "revision": 4}},
            {"op": "put", "record": run, "precondition": {"kind": "must_not_exist"}},
            {"op": "delete", "kind": "run", "key": "r1", "precondition": {"kind": "any"}}
        ]});
        let compared = agrees::<Mixed>(mixed)
            + agrees::<AnyRecord>(run)
            + agrees::<AnyRecord>(profile)
            + agrees::<Batch>(batch);
        // The edits must mostly still read, or the comparison says little.
        assert!(compared > 200, "only {compared} documents compared");
        eprintln!("{compared} documents compared");
    }

    /// Writes `x` twice, as a flattened field named like its neighbour does.
    struct Twice;

    impl Serialize for Twice {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use ser::SerializeMap;
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("x", &1)?;
            map.serialize_entry("x", &2)?;
            map.end()
        }
    }

    #[test]
    fn a_key_written_twice_does_not_hide_an_unknown_one() {
        let input = json!({"x": 1, "zz": 2});
        let known = serde_json::to_value(Twice).unwrap();
        let expected = super::super::first_unknown(&input, &known, &mut Vec::new());
        assert_eq!(expected.as_ref().map(|e| e.path.as_str()), Some("zz"));
        assert_eq!(first_unknown(&input, &Twice), expected);
    }

    #[test]
    fn refusals_name_their_path() {
        let err = |doc: Value| first_unknown(&doc, &Mixed::deserialize(&doc).unwrap()).unwrap();
        let mut doc = json!({
            "leaves": [{"x": 1}, {"x": 2, "colour": 3}], "by_name": {}, "by_number": {},
            "pair": [{"x": 0}, 0], "externals": [], "flattened": {"own": 0, "x": 0}
        });
        assert_eq!(err(doc.clone()).path, "leaves[1].colour");
        doc["leaves"][1] = json!({"x": 2});
        doc["externals"] = json!([{"Struct": {"a": {"x": 1, "nope": 0}, "b": []}}]);
        assert_eq!(err(doc.clone()).path, "externals[0].Struct.a.nope");
        doc["externals"] = json!([{"Tuple": [1, {"x": 1, "nope": 0}]}]);
        assert_eq!(err(doc.clone()).path, "externals[0].Tuple[1].nope");
        doc["externals"] = json!([]);
        doc["leaves"] = json!([{"x": 1}, [2]]);
        let refused = err(doc.clone());
        assert_eq!(refused.path, "leaves[1]");
        assert_eq!(refused.reason, "expected an object, found an array");
        doc["leaves"] = json!([]);
        doc["by_name"] = json!({"k": {"x": 1, "huh": 2}});
        assert_eq!(err(doc).path, "by_name.k.huh");
    }
}
