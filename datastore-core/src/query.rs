//! Keyset-paginated list queries and opaque cursors.
//!
//! A list applies, in this fixed order: the filter, the order, the cursor
//! (start strictly after the last item of the previous page), then the limit.
//! The cursor holds the position of the last item, not an offset, so a page
//! costs the same however deep it is and stays valid while records are
//! inserted before or after it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::record::{IndexValue, Kind, Plan, Record};

/// The page size used when none is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// The largest page size accepted.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest (newest) first.
    Desc,
}

/// An opaque position in a list, handed out as `Page::next`. It only works
/// with the query that produced it; a changed or foreign cursor is rejected
/// with an `Invalid` error naming the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// A cursor from its text form (as sent by a client).
    pub fn from_text(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A page size and the cursor to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (1 to [`MAX_PAGE_LIMIT`]).
    pub limit: u32,
    /// Continue after this position; `None` starts at the beginning.
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: DEFAULT_PAGE_LIMIT,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// The first page of that size.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            limit,
            cursor: None,
        }
    }

    /// The page of that size after a cursor.
    pub fn after(limit: u32, cursor: Option<Cursor>) -> Self {
        PageRequest { limit, cursor }
    }
}

/// One page of a list and the cursor of the next, `None` at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this is the last.
    pub next: Option<Cursor>,
}

/// A list query over one kind: filter, order, direction, limit, cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Query<R: Record> {
    /// Which records.
    pub filter: R::Filter,
    /// By what they are ordered.
    pub order: R::Order,
    /// Ascending or descending.
    pub direction: Direction,
    /// At most this many items (1 to [`MAX_PAGE_LIMIT`]).
    pub limit: u32,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
}

impl<R: Record> Query<R> {
    /// A query with that filter, the default order, ascending, the default limit.
    pub fn new(filter: R::Filter) -> Self {
        Query {
            filter,
            order: R::Order::default(),
            direction: Direction::Asc,
            limit: DEFAULT_PAGE_LIMIT,
            cursor: None,
        }
    }

    /// Sets the order.
    pub fn order(mut self, order: R::Order) -> Self {
        self.order = order;
        self
    }

    /// Sets the direction.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Descending (newest first).
    pub fn descending(self) -> Self {
        self.direction(Direction::Desc)
    }

    /// Sets the limit.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after a cursor.
    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Takes limit and cursor from a page request.
    pub fn page(self, page: PageRequest) -> Self {
        self.limit(page.limit).after(page.cursor)
    }
}

impl<R: Record> Default for Query<R>
where
    R::Filter: Default,
{
    fn default() -> Self {
        Query::new(R::Filter::default())
    }
}

/// Checks a page size.
pub fn check_limit(limit: u32) -> Result<(), FieldError> {
    if limit == 0 {
        return Err(FieldError::new("limit", "must be at least 1"));
    }
    if limit > MAX_PAGE_LIMIT {
        return Err(FieldError::new(
            "limit",
            format!("{limit} is over the maximum of {MAX_PAGE_LIMIT}"),
        ));
    }
    Ok(())
}

/// Where a scan resumes: the full index values of the last item and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The last item's values for the scanned index (empty for the primary order).
    pub values: Vec<IndexValue>,
    /// The last item's key.
    pub id: String,
}

#[derive(Serialize, Deserialize)]
struct CursorBody {
    q: u64,
    v: Vec<IndexValue>,
    id: String,
}

const CURSOR_SALT: &[u8] = b"datastore-cursor-v1";

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Identifies the query a cursor belongs to: kind, index, filter values, direction.
pub fn query_fingerprint(kind: Kind, plan: &Plan, direction: Direction) -> u64 {
    let prefix = serde_json::to_vec(&plan.prefix).unwrap_or_default();
    let dir: &[u8] = match direction {
        Direction::Asc => b"asc",
        Direction::Desc => b"desc",
    };
    fnv1a(&[
        kind.as_str().as_bytes(),
        plan.index.unwrap_or("").as_bytes(),
        &prefix,
        dir,
    ])
}

/// Makes the cursor for a position in a query.
pub fn encode_cursor(fingerprint: u64, position: &Position) -> Cursor {
    let body = CursorBody {
        q: fingerprint,
        v: position.values.clone(),
        id: position.id.clone(),
    };
    let mut bytes = serde_json::to_vec(&body).expect("cursor body serializes");
    let check = fnv1a(&[CURSOR_SALT, &bytes]);
    bytes.extend_from_slice(&check.to_be_bytes());
    Cursor(URL_SAFE_NO_PAD.encode(bytes))
}

/// The fingerprint of one record's history pages (their cursors belong
/// to that record).
pub fn history_fingerprint(kind: Kind, key: &str) -> u64 {
    fnv1a(&[b"history", kind.as_str().as_bytes(), key.as_bytes()])
}

/// Reads a cursor back, checking it is intact and belongs to this query.
pub fn decode_cursor(cursor: &Cursor, fingerprint: u64) -> Result<Position, FieldError> {
    let tampered = || FieldError::new("cursor", "is malformed or has been altered");
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.0.as_bytes())
        .map_err(|_| tampered())?;
    if bytes.len() < 9 {
        return Err(tampered());
    }
    let (body, check) = bytes.split_at(bytes.len() - 8);
    if fnv1a(&[CURSOR_SALT, body]).to_be_bytes() != check {
        return Err(tampered());
    }
    let body: CursorBody = serde_json::from_slice(body).map_err(|_| tampered())?;
    if body.q != fingerprint {
        return Err(FieldError::new(
            "cursor",
            "was issued for a different query (filter, order or direction changed)",
        ));
    }
    Ok(Position {
        values: body.v,
        id: body.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_tamper() {
        let plan = Plan::index("username", vec![]);
        let q = query_fingerprint(Kind::Profile, &plan, Direction::Asc);
        let pos = Position {
            values: vec![
                IndexValue::str("bob"),
                IndexValue::Int(-4),
                IndexValue::Null,
            ],
            id: "p1".into(),
        };
        let c = encode_cursor(q, &pos);
        assert_eq!(decode_cursor(&c, q).unwrap(), pos);
        let other = query_fingerprint(Kind::Profile, &plan, Direction::Desc);
        assert!(
            decode_cursor(&c, other)
                .unwrap_err()
                .reason
                .contains("different query")
        );
        let mut text = c.as_str().to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(decode_cursor(&Cursor(text), q).unwrap_err().field, "cursor");
        assert!(decode_cursor(&Cursor("!!".into()), q).is_err());
    }
}
