//! An order-preserving byte encoding of index values, for backends whose
//! indexes are byte-ordered maps (memory, RocksDB).
//!
//! `encode(a) < encode(b)` exactly when `a < b`, and the encoding of a prefix
//! of values is a byte prefix of the encoding of the whole tuple, so a prefix
//! filter is a byte range scan from [`encode_values`] to [`prefix_end`].

use crate::record::IndexValue;

const NULL: u8 = 0x01;
const FALSE: u8 = 0x02;
const TRUE: u8 = 0x03;
const INT: u8 = 0x04;
const STR: u8 = 0x05;

/// Appends one value's encoding.
pub fn encode_value(value: &IndexValue, out: &mut Vec<u8>) {
    match value {
        IndexValue::Null => out.push(NULL),
        IndexValue::Bool(false) => out.push(FALSE),
        IndexValue::Bool(true) => out.push(TRUE),
        IndexValue::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&((*i as u64) ^ (1 << 63)).to_be_bytes());
        }
        IndexValue::Str(s) => encode_str(s, out),
    }
}

/// A string: its bytes with each zero byte escaped as `0 0xFF`, then `0 0`.
/// The runs between zero bytes are copied whole (keys are built for every
/// index entry of every write, so a byte-at-a-time copy showed in bulk loads).
fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 3);
    out.push(STR);
    let mut parts = s.as_bytes().split(|&b| b == 0);
    if let Some(first) = parts.next() {
        out.extend_from_slice(first);
    }
    for part in parts {
        out.extend_from_slice(&[0, 0xFF]);
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&[0, 0]);
}

/// The bytes one value's encoding takes, but for the escapes of zero bytes
/// in a string (rare; the buffer then grows).
fn size_hint(value: &IndexValue) -> usize {
    match value {
        IndexValue::Null | IndexValue::Bool(_) => 1,
        IndexValue::Int(_) => 9,
        IndexValue::Str(s) => s.len() + 3,
    }
}

/// About the bytes [`append_values`] adds (exact unless a string holds
/// zero bytes), for sizing a buffer up front.
pub fn values_len(values: &[IndexValue]) -> usize {
    values.iter().map(size_hint).sum()
}

/// About the bytes [`append_entry_key`] adds, as [`values_len`].
pub fn entry_key_len(values: &[IndexValue], id: &str) -> usize {
    values_len(values) + id.len() + 3
}

/// Appends the encoding of a tuple of values (size `out` with
/// [`values_len`]).
pub fn append_values(values: &[IndexValue], out: &mut Vec<u8>) {
    for v in values {
        encode_value(v, out);
    }
}

/// The encoding of a tuple of values.
pub fn encode_values(values: &[IndexValue]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values_len(values));
    append_values(values, &mut out);
    out
}

/// Appends the full key of an index entry (see [`entry_key`]; size `out`
/// with [`entry_key_len`]).
pub fn append_entry_key(values: &[IndexValue], id: &str, out: &mut Vec<u8>) {
    append_values(values, out);
    encode_str(id, out);
}

/// The full key of an index entry: the values, then the record id as a
/// tiebreak, so entries with equal values are ordered by id.
pub fn entry_key(values: &[IndexValue], id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry_key_len(values, id));
    append_entry_key(values, id, &mut out);
    out
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xFF);
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndexValue::*;

    #[test]
    fn order_is_preserved() {
        let tuples = vec![
            vec![Null],
            vec![Bool(false)],
            vec![Bool(true)],
            vec![Int(i64::MIN)],
            vec![Int(-1)],
            vec![Int(0)],
            vec![Int(1), Str("a".into())],
            vec![Int(1), Str("ab".into())],
            vec![Int(i64::MAX)],
            vec![Str(String::new())],
            vec![Str("a".into())],
            vec![Str("a\0".into())],
            vec![Str("a\0b".into())],
            vec![Str("ab".into())],
            vec![Str("b".into())],
        ];
        for w in tuples.windows(2) {
            assert!(w[0] < w[1], "{:?} < {:?}", w[0], w[1]);
            assert!(
                encode_values(&w[0]) < encode_values(&w[1]),
                "{:?} < {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn zero_bytes_are_escaped() {
        let key = entry_key(&[Str("\0a\0\0".into()), Int(0)], "i\0d");
        let mut expected = vec![STR, 0, 0xFF, b'a', 0, 0xFF, 0, 0xFF, 0, 0, INT];
        expected.extend_from_slice(&(1u64 << 63).to_be_bytes());
        expected.extend_from_slice(&[STR, b'i', 0, 0xFF, b'd', 0, 0]);
        assert_eq!(key, expected);
        assert_eq!(encode_values(&[Str(String::new())]), vec![STR, 0, 0]);
    }

    #[test]
    fn prefix_encodings_bound_their_tuples() {
        let p = encode_values(&[Str("owner".into())]);
        let inside = entry_key(&[Str("owner".into()), Int(5)], "id");
        let after = entry_key(&[Str("owner0".into())], "id");
        assert!(inside.starts_with(&p));
        assert!(inside < prefix_end(&p));
        assert!(after > prefix_end(&p));
    }
}
