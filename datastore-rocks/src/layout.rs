//! How records, indexes, the feed and metadata are laid out in RocksDB.
//!
//! Five column families, one per concern:
//!
//! | family | key | value |
//! |---|---|---|
//! | `records` | kind tag, record key | [`Envelope`]: revision, times, index keys, JSON body |
//! | `indexes` | `i`, kind tag, index name, 0, order-preserving (values, key) | record key |
//! |           | `u`, kind tag, index name, 0, order-preserving values (unique) | record key |
//! | `feed` | sequence number, big-endian | JSON `Change` |
//! | `history` | kind tag, key length (u32), key, revision (u64), big-endian | [`VersionValue`]: op, time, actor, JSON body |
//! | `meta` | name | schema version, head, compaction point, counters, index fingerprint |
//!
//! Index keys use `datastore_core::keycodec`, so every list is a range scan
//! bounded by `iterate_lower_bound` / `iterate_upper_bound`.

use chrono::{DateTime, Utc};
use datastore_core::keycodec::{append_entry_key, append_values, entry_key_len, values_len};
use datastore_core::{IndexEntry, IndexValue, Kind, Revision};

/// The column family of records.
pub const RECORDS: &str = "records";
/// The column family of index entries.
pub const INDEXES: &str = "indexes";
/// The column family of the change feed.
pub const FEED: &str = "feed";
/// The column family of metadata.
pub const META: &str = "meta";
/// The column family of record versions (history).
pub const HISTORY: &str = "history";
/// Every column family.
pub const FAMILIES: [&str; 5] = [RECORDS, INDEXES, FEED, META, HISTORY];

/// Meta key: the schema version (u32, big-endian).
pub const SCHEMA_VERSION: &[u8] = b"schema_version";
/// Meta key: the last sequence number handed out (u64).
pub const HEAD: &[u8] = b"head";
/// Meta key: the highest sequence number removed by compaction (u64).
pub const COMPACTED_THROUGH: &[u8] = b"compacted_through";
/// Meta key: the index definitions the indexes were built with.
pub const INDEX_FINGERPRINT: &[u8] = b"index_fingerprint";

/// The envelope format of schema versions 1 and 2 (no actor).
const ENVELOPE_V1: u8 = 1;
/// The envelope format written today: V1 plus the last writer's actor.
const ENVELOPE_V2: u8 = 2;

/// One byte per kind, so each kind's records are one contiguous range
/// (the tags are declared with the kinds: [`Kind::tag`]).
pub fn kind_tag(kind: Kind) -> u8 {
    kind.tag()
}

/// The kind of a tag.
pub fn tag_kind(tag: u8) -> Option<Kind> {
    Kind::from_tag(tag)
}

/// The key of a record.
pub fn record_key(kind: Kind, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(kind_tag(kind));
    out.extend_from_slice(key.as_bytes());
    out
}

/// The start of a kind's range of records.
pub fn records_start(kind: Kind) -> Vec<u8> {
    vec![kind_tag(kind)]
}

/// The end (exclusive) of a kind's range of records.
pub fn records_end(kind: Kind) -> Vec<u8> {
    vec![kind_tag(kind) + 1]
}

/// The common start of every entry of one index.
pub fn index_base(kind: Kind, index: &str, unique: bool) -> Vec<u8> {
    index_base_with(kind, index, unique, 0)
}

/// [`index_base`] in a buffer with room for `extra` bytes more.
fn index_base_with(kind: Kind, index: &str, unique: bool, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() + 3 + extra);
    out.push(if unique { b'u' } else { b'i' });
    out.push(kind_tag(kind));
    out.extend_from_slice(index.as_bytes());
    out.push(0);
    out
}

/// The key of an ordered index entry.
pub fn index_key(kind: Kind, index: &str, values: &[IndexValue], key: &str) -> Vec<u8> {
    let mut out = index_base_with(kind, index, false, entry_key_len(values, key));
    append_entry_key(values, key, &mut out);
    out
}

/// The key of a unique index claim.
pub fn unique_key(kind: Kind, index: &str, values: &[IndexValue]) -> Vec<u8> {
    let mut out = index_base_with(kind, index, true, values_len(values));
    append_values(values, &mut out);
    out
}

/// Every key in the indexes family a record with these entries owns: its
/// ordered entries, and its unique claims.
pub fn owned_index_keys(kind: Kind, key: &str, entries: &[IndexEntry]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len() * 2);
    for e in entries {
        out.push(index_key(kind, e.index, &e.values, key));
        if e.unique {
            out.push(unique_key(kind, e.index, &e.values));
        }
    }
    out
}

/// The key of a feed entry.
pub fn feed_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The common start of every version of one record (its history range).
pub fn history_prefix(kind: Kind, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 13);
    out.push(kind_tag(kind));
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// The key of one version of a record.
pub fn history_key(kind: Kind, key: &str, revision: Revision) -> Vec<u8> {
    let mut out = history_prefix(kind, key);
    out.extend_from_slice(&revision.get().to_be_bytes());
    out
}

/// Splits a history key into its record prefix and revision.
pub fn split_history_key(raw: &[u8]) -> Option<(&[u8], Revision)> {
    if raw.len() < 13 {
        return None;
    }
    let (prefix, rev) = raw.split_at(raw.len() - 8);
    Some((prefix, Revision::new(read_u64(rev)?)))
}

/// The meta key of a counter.
pub fn counter_key(name: &str) -> Vec<u8> {
    let mut out = b"counter/".to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// Reads a big-endian u64 value.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// What a record's value holds besides its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The record's revision.
    pub revision: Revision,
    /// When the key was first written.
    pub created: DateTime<Utc>,
    /// When it was last written.
    pub updated: DateTime<Utc>,
    /// The keys it owns in the indexes family, so a replace or delete can
    /// remove them without decoding the body.
    pub index_keys: Vec<Vec<u8>>,
    /// Who made the last write (its text form), if it named someone.
    pub actor: Option<String>,
}

/// A record's stored value: a versioned binary header, then the JSON body
/// (self-describing, so a field added to a record reads back from old bytes).
pub struct Envelope;

impl Envelope {
    /// Encodes a header and body.
    pub fn encode(header: &Header, body: &[u8]) -> Vec<u8> {
        let keys_len: usize = header.index_keys.iter().map(|k| k.len() + 4).sum();
        let mut out = Vec::with_capacity(1 + 24 + 2 + keys_len + body.len());
        out.push(ENVELOPE_V2);
        out.extend_from_slice(&header.revision.get().to_be_bytes());
        out.extend_from_slice(&header.created.timestamp_micros().to_be_bytes());
        out.extend_from_slice(&header.updated.timestamp_micros().to_be_bytes());
        put_actor(&mut out, header.actor.as_deref());
        out.extend_from_slice(&(header.index_keys.len() as u16).to_be_bytes());
        for k in &header.index_keys {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
        }
        out.extend_from_slice(body);
        out
    }

    /// Decodes a value into its header and body, or says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
        let (read, mut r) = Self::head(bytes)?;
        let n = r.u16()?;
        let mut index_keys = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = r.u32()? as usize;
            index_keys.push(r.take(len)?.to_vec());
        }
        let header = Header {
            revision: read.revision,
            created: read.created,
            updated: read.updated,
            index_keys,
            actor: read.actor.map(str::to_owned),
        };
        Ok((header, r.0))
    }

    /// Decodes what a read needs: the header without its index keys
    /// (skipped, not copied) and the body, both borrowed from `bytes`.
    pub fn decode_read(bytes: &[u8]) -> Result<(ReadHeader<'_>, &[u8]), String> {
        let (read, mut r) = Self::head(bytes)?;
        for _ in 0..r.u16()? {
            let len = r.u32()? as usize;
            r.take(len)?;
        }
        Ok((read, r.0))
    }

    /// The header up to its index keys, and the reader at them.
    fn head(bytes: &[u8]) -> Result<(ReadHeader<'_>, Reader<'_>), String> {
        let mut r = Reader(bytes);
        let version = r.take(1)?[0];
        if version != ENVELOPE_V1 && version != ENVELOPE_V2 {
            return Err(format!("unknown envelope version {version}"));
        }
        let revision = Revision::new(r.u64()?);
        let created = r.time()?;
        let updated = r.time()?;
        let actor = if version == ENVELOPE_V2 {
            r.actor()?
        } else {
            None
        };
        let read = ReadHeader {
            revision,
            created,
            updated,
            actor,
        };
        Ok((read, r))
    }
}

/// What [`Envelope::decode_read`] gives of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadHeader<'a> {
    /// The record's revision.
    pub revision: Revision,
    /// When the key was first written.
    pub created: DateTime<Utc>,
    /// When it was last written.
    pub updated: DateTime<Utc>,
    /// Who made the last write, as stored.
    pub actor: Option<&'a str>,
}

/// Appends an actor: its length (u16, 0 for none) and its text.
fn put_actor(out: &mut Vec<u8>, actor: Option<&str>) {
    let actor = actor.unwrap_or("").as_bytes();
    out.extend_from_slice(&(actor.len() as u16).to_be_bytes());
    out.extend_from_slice(actor);
}

/// A version's stored value: the operation (0 put, 1 delete), its time
/// (microseconds), its actor, then the JSON body (empty for a delete).
pub struct VersionValue;

impl VersionValue {
    /// Encodes a version.
    pub fn encode(
        delete: bool,
        at: DateTime<Utc>,
        actor: Option<&str>,
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        let body = body.unwrap_or_default();
        let mut out = Vec::with_capacity(11 + actor.map_or(0, str::len) + body.len());
        out.push(u8::from(delete));
        out.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        put_actor(&mut out, actor);
        out.extend_from_slice(body);
        out
    }

    /// Decodes a version.
    pub fn decode(bytes: &[u8]) -> Result<StoredVersionValue<'_>, String> {
        let mut r = Reader(bytes);
        let delete = match r.take(1)?[0] {
            0 => false,
            1 => true,
            other => return Err(format!("unknown version operation {other}")),
        };
        let at = r.time()?;
        let actor = r.actor()?.map(str::to_owned);
        Ok(StoredVersionValue {
            delete,
            at,
            actor,
            body: r.0,
        })
    }
}

/// A version's value, decoded ([`VersionValue::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersionValue<'a> {
    /// True for a delete.
    pub delete: bool,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// Who wrote it (its text form).
    pub actor: Option<String>,
    /// The JSON body (empty for a delete).
    pub body: &'a [u8],
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "value ends early: wanted {n} more bytes, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn actor(&mut self) -> Result<Option<&'a str>, String> {
        let len = self.u16()? as usize;
        if len == 0 {
            return Ok(None);
        }
        std::str::from_utf8(self.take(len)?)
            .map(Some)
            .map_err(|_| "actor is not UTF-8".to_string())
    }

    fn time(&mut self) -> Result<DateTime<Utc>, String> {
        let micros = self.u64()? as i64;
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| format!("timestamp {micros} out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_garbage() {
        let header = Header {
            revision: Revision::new(42),
            created: DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap(),
            updated: DateTime::from_timestamp_micros(1_700_000_000_000_002).unwrap(),
            index_keys: vec![b"abc".to_vec(), vec![]],
            actor: Some("service:scheduler".into()),
        };
        let bytes = Envelope::encode(&header, b"{\"x\":1}");
        let (back, body) = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, header);
        assert_eq!(body, b"{\"x\":1}");
        assert!(Envelope::decode(b"garbage").is_err());
        assert!(Envelope::decode(&bytes[..10]).is_err());
        assert!(Envelope::decode(&[]).is_err());
        let mut v1 = vec![ENVELOPE_V1];
        v1.extend_from_slice(&bytes[1..25]);
        v1.extend_from_slice(&0u16.to_be_bytes());
        v1.extend_from_slice(b"{}");
        let (old, body) = Envelope::decode(&v1).unwrap();
        assert_eq!((old.actor, body), (None, &b"{}"[..]));
    }

    #[test]
    fn a_read_decodes_what_the_full_decode_does_without_the_index_keys() {
        for actor in [Some("service:scheduler".to_string()), None] {
            let header = Header {
                revision: Revision::new(7),
                created: DateTime::from_timestamp_micros(1_700_000_000_000_003).unwrap(),
                updated: DateTime::from_timestamp_micros(1_700_000_000_000_004).unwrap(),
                index_keys: vec![b"one".to_vec(), b"two keys".to_vec(), vec![]],
                actor: actor.clone(),
            };
            let bytes = Envelope::encode(&header, b"{\"y\":2}");
            let (read, body) = Envelope::decode_read(&bytes).unwrap();
            assert_eq!(
                (read.revision, read.created, read.updated, read.actor),
                (
                    header.revision,
                    header.created,
                    header.updated,
                    actor.as_deref()
                )
            );
            assert_eq!(body, b"{\"y\":2}");
            // Cut inside the index keys: both refuse it.
            let cut = &bytes[..bytes.len() - 12];
            assert!(Envelope::decode(cut).is_err());
            assert!(Envelope::decode_read(cut).is_err());
        }
        assert!(Envelope::decode_read(b"garbage").is_err());
        assert!(Envelope::decode_read(&[]).is_err());
    }

    #[test]
    fn versions_sort_by_record_then_revision() {
        let a1 = history_key(Kind::Profile, "a", Revision::new(9));
        let a2 = history_key(Kind::Profile, "a", Revision::new(10));
        let ab = history_key(Kind::Profile, "ab", Revision::new(1));
        assert!(a1 < a2 && a2 < ab);
        assert!(a2.starts_with(&history_prefix(Kind::Profile, "a")));
        assert!(!ab.starts_with(&history_prefix(Kind::Profile, "a")));
        assert_eq!(split_history_key(&a2).unwrap().1, Revision::new(10));
        let at = DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap();
        let v = VersionValue::encode(false, at, Some("profile:p1"), Some(b"{}"));
        let back = VersionValue::decode(&v).unwrap();
        assert_eq!(
            (back.delete, back.at, back.actor, back.body),
            (false, at, Some("profile:p1".into()), &b"{}"[..])
        );
        assert!(VersionValue::decode(&[7]).is_err());
    }

    #[test]
    fn kinds_have_distinct_ranges() {
        for k in Kind::ALL {
            assert_eq!(tag_kind(kind_tag(k)), Some(k));
            assert!(record_key(k, "zzz") < records_end(k));
            assert!(record_key(k, "") >= records_start(k));
        }
        assert!(index_key(Kind::Run, "a", &[], "x") < index_base(Kind::Run, "a", true));
    }
}
