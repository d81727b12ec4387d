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

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.push(STR);
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The encoding of a tuple of values.
pub fn encode_values(values: &[IndexValue]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 10);
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

/// The full key of an index entry: the values, then the record id as a
/// tiebreak, so entries with equal values are ordered by id.
pub fn entry_key(values: &[IndexValue], id: &str) -> Vec<u8> {
    let mut out = encode_values(values);
    encode_str(id, &mut out);
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
    fn prefix_encodings_bound_their_tuples() {
        let p = encode_values(&[Str("owner".into())]);
        let inside = entry_key(&[Str("owner".into()), Int(5)], "id");
        let after = entry_key(&[Str("owner0".into())], "id");
        assert!(inside.starts_with(&p));
        assert!(inside < prefix_end(&p));
        assert!(after > prefix_end(&p));
    }
}
