//! The in-file half of an import's check, in bounded memory: what each
//! line declares (its record, its unique claims, the records it names) is
//! written out as an [`Entry`], partitioned by a hash of what it is about,
//! and each partition is then checked on its own, in line order.
//!
//! Every check within the file is about one thing: a record key (is it on
//! an earlier line with other content? is the record a line names on an
//! earlier line?) or one unique value (does an earlier line claim it for
//! another key?). Entries about one thing land in one partition, so a
//! partition holds all a check needs, and the first failing line over all
//! partitions is the one a line-by-line check meets first. Partitions stay
//! in memory until they pass [`SPILL_BYTES`], then go to temporary files;
//! memory is then one partition at a time, whatever the file's size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::TransferError;

/// How many partitions (the top bits of a slot pick one).
const PARTITIONS: usize = 64;
/// Buffered entries, over all partitions, before they are written out.
const SPILL_BYTES: usize = 4 << 20;

/// Where a failing check stands among the checks of its line, in the order
/// a line is checked: repeat, destination, references, then each claim
/// (within the file, then against the destination).
pub(super) type Stage = u32;
/// A record repeated with other content.
pub(super) const STAGE_REPEAT: Stage = 0;
/// A record the destination holds with other content.
pub(super) const STAGE_CONFLICT: Stage = 1;
/// The `i`th record a line names.
pub(super) fn stage_reference(i: usize) -> Stage {
    2 + i as Stage
}
/// The `i`th unique claim of a line, within the file (`dest` false) or
/// against the destination.
pub(super) fn stage_claim(i: usize, dest: bool) -> Stage {
    1_000 + 2 * i as Stage + Stage::from(dest)
}

/// The first failing check found: its line, its stage, the error.
pub(super) type Failure = (u64, Stage, TransferError);

/// Keeps the failure a line-by-line check would meet first.
pub(super) fn earliest(a: Option<Failure>, b: Option<Failure>) -> Option<Failure> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if (b.0, b.1) < (a.0, a.1) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// What one line declares about one thing (its `slot`, a hash).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    /// The line holds this record.
    Record {
        line: u64,
        slot: u64,
        /// A hash of its content.
        content: u64,
        /// The destination holds it with this content.
        present: bool,
        /// The record, for messages.
        what: String,
    },
    /// The line's record claims a unique value.
    Claim {
        line: u64,
        slot: u64,
        /// A hash of the claiming record's key.
        key: u64,
        /// Which of the line's claims.
        order: u32,
        /// The index and value, for messages.
        claim: String,
        what: String,
    },
    /// The line's record names a record the destination does not hold.
    Reference {
        line: u64,
        slot: u64,
        /// Which of the line's references.
        order: u32,
        field: &'static str,
        /// The record named, for messages.
        target: String,
        what: String,
    },
}

impl Entry {
    fn slot(&self) -> u64 {
        match self {
            Entry::Record { slot, .. }
            | Entry::Claim { slot, .. }
            | Entry::Reference { slot, .. } => *slot,
        }
    }

    /// The line, and where the entry's check stands among its line's.
    fn position(&self) -> (u64, Stage) {
        match self {
            Entry::Record { line, .. } => (*line, STAGE_REPEAT),
            Entry::Reference { line, order, .. } => (*line, stage_reference(*order as usize)),
            Entry::Claim { line, order, .. } => (*line, stage_claim(*order as usize, false)),
        }
    }

    /// Appends the entry to `out`; a reference's field is written as its
    /// place in `fields` (added there when new).
    fn encode(&self, out: &mut Vec<u8>, fields: &mut Vec<&'static str>) {
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        match self {
            Entry::Record {
                line,
                slot,
                content,
                present,
                what,
            } => {
                out.push(0);
                for v in [line, slot, content] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.push(u8::from(*present));
                text(out, what);
            }
            Entry::Claim {
                line,
                slot,
                key,
                order,
                claim,
                what,
            } => {
                out.push(1);
                for v in [line, slot, key] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&order.to_le_bytes());
                text(out, claim);
                text(out, what);
            }
            Entry::Reference {
                line,
                slot,
                order,
                field,
                target,
                what,
            } => {
                out.push(2);
                for v in [line, slot] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&order.to_le_bytes());
                let at = match fields.iter().position(|f| f == field) {
                    Some(at) => at,
                    None => {
                        fields.push(field);
                        fields.len() - 1
                    }
                };
                out.extend_from_slice(&(at as u32).to_le_bytes());
                text(out, target);
                text(out, what);
            }
        }
    }

    /// Reads the entries [`Entry::encode`] wrote, one after another.
    fn decode_all(mut bytes: &[u8], fields: &[&'static str]) -> io::Result<Vec<Entry>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a truncated import check file");
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = bytes.split_at_checked(n)?;
            *bytes = rest;
            Some(head)
        }
        let u64_of = |b: &mut &[u8]| take(b, 8).map(|v| u64::from_le_bytes(v.try_into().unwrap()));
        let u32_of = |b: &mut &[u8]| take(b, 4).map(|v| u32::from_le_bytes(v.try_into().unwrap()));
        let text_of = |b: &mut &[u8]| {
            let n = u32_of(b)? as usize;
            take(b, n).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let mut out = Vec::new();
        while let Some(tag) = take(&mut bytes, 1) {
            let entry = (|| {
                let b = &mut bytes;
                Some(match tag[0] {
                    0 => Entry::Record {
                        line: u64_of(b)?,
                        slot: u64_of(b)?,
                        content: u64_of(b)?,
                        present: take(b, 1)?[0] == 1,
                        what: text_of(b)?,
                    },
                    1 => Entry::Claim {
                        line: u64_of(b)?,
                        slot: u64_of(b)?,
                        key: u64_of(b)?,
                        order: u32_of(b)?,
                        claim: text_of(b)?,
                        what: text_of(b)?,
                    },
                    2 => Entry::Reference {
                        line: u64_of(b)?,
                        slot: u64_of(b)?,
                        order: u32_of(b)?,
                        field: fields.get(u32_of(b)? as usize)?,
                        target: text_of(b)?,
                        what: text_of(b)?,
                    },
                    _ => return None,
                })
            })()
            .ok_or_else(bad)?;
            out.push(entry);
        }
        Ok(out)
    }
}

/// The entries of a whole file, partitioned; in memory, then in temporary
/// files once they grow past [`SPILL_BYTES`].
pub(super) struct Spill {
    buffers: Vec<Vec<u8>>,
    /// The reference fields entries name, by their place here.
    fields: Vec<&'static str>,
    buffered: usize,
    files: Option<Vec<File>>,
}

impl Spill {
    pub(super) fn new() -> Self {
        Spill {
            buffers: vec![Vec::new(); PARTITIONS],
            fields: Vec::new(),
            buffered: 0,
            files: None,
        }
    }

    /// Adds an entry to its partition.
    pub(super) fn push(&mut self, entry: &Entry) -> io::Result<()> {
        let buffer = &mut self.buffers[partition(entry.slot())];
        let before = buffer.len();
        entry.encode(buffer, &mut self.fields);
        self.buffered += buffer.len() - before;
        if self.buffered > SPILL_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    /// Whether any entries went to files.
    #[cfg(test)]
    fn spilled(&self) -> bool {
        self.files.is_some()
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.files.is_none() {
            let files = (0..PARTITIONS)
                .map(|_| tempfile::tempfile())
                .collect::<io::Result<_>>()?;
            self.files = Some(files);
        }
        let files = self.files.as_mut().expect("created above");
        for (buffer, file) in self.buffers.iter_mut().zip(files) {
            file.write_all(buffer)?;
            buffer.clear();
            buffer.shrink_to(64 << 10);
        }
        self.buffered = 0;
        Ok(())
    }

    /// Checks every partition and returns the earliest failure, with the
    /// number of distinct records the destination already holds and the
    /// number of lines repeating an earlier one's record (same content).
    pub(super) fn resolve(mut self) -> io::Result<(Option<Failure>, u64, u64)> {
        let mut failure = None;
        let mut present = 0;
        let mut repeated = 0;
        for p in 0..PARTITIONS {
            let mut bytes = Vec::new();
            if let Some(files) = &mut self.files {
                let file = &mut files[p];
                file.seek(SeekFrom::Start(0))?;
                file.read_to_end(&mut bytes)?;
            }
            bytes.append(&mut self.buffers[p]);
            let entries = Entry::decode_all(&bytes, &self.fields)?;
            drop(bytes);
            let (found, held, again) = check_partition(entries);
            present += held;
            repeated += again;
            failure = earliest(failure, found);
        }
        Ok((failure, present, repeated))
    }
}

fn partition(slot: u64) -> usize {
    (slot >> (64 - PARTITIONS.trailing_zeros())) as usize
}

/// Checks one partition's entries line by line; the first failure, how
/// many distinct records of it the destination holds, and how many lines
/// repeat an earlier line's record with the same content.
fn check_partition(mut entries: Vec<Entry>) -> (Option<Failure>, u64, u64) {
    entries.sort_by_key(Entry::position);
    // Record slot → (first line, content hash); claim slot → (first line, key hash).
    let mut records: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut claims: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut present = 0;
    let mut repeated = 0;
    for entry in entries {
        let (line, stage) = entry.position();
        let error = match entry {
            Entry::Record {
                slot,
                content,
                present: held,
                what,
                ..
            } => match records.get(&slot) {
                Some(&(earlier, c)) if c != content => Some(TransferError::Duplicate {
                    line,
                    what,
                    earlier,
                }),
                Some(_) => {
                    repeated += 1;
                    None
                }
                None => {
                    records.insert(slot, (line, content));
                    present += u64::from(held);
                    None
                }
            },
            Entry::Reference {
                slot,
                field,
                target,
                what,
                ..
            } => match records.get(&slot) {
                Some(&(first, _)) if first < line => None,
                _ => Some(TransferError::MissingReference {
                    line,
                    what,
                    field,
                    target,
                }),
            },
            Entry::Claim {
                slot,
                key,
                claim,
                what,
                ..
            } => match claims.get(&slot) {
                Some(&(earlier, k)) if k != key => Some(TransferError::Clash {
                    line,
                    what,
                    claim,
                    holder: format!("line {earlier}"),
                }),
                Some(_) => None,
                None => {
                    claims.insert(slot, (line, key));
                    None
                }
            },
        };
        if let Some(error) = error {
            return (Some((line, stage, error)), present, repeated);
        }
    }
    (None, present, repeated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: u64, slot: u64, content: u64) -> Entry {
        Entry::Record {
            line,
            slot,
            content,
            present: false,
            what: format!("profile \"p{slot}\""),
        }
    }

    #[test]
    fn entries_round_trip_through_their_encoding() {
        let entries = vec![
            record(1, u64::MAX, 7),
            Entry::Claim {
                line: 2,
                slot: 3,
                key: 4,
                order: 1,
                claim: "username \"alice\"".into(),
                what: "profile \"a\"".into(),
            },
            Entry::Reference {
                line: 5,
                slot: 6,
                order: 0,
                field: "workflow_id",
                target: "workflow \"w1\"".into(),
                what: "run \"r1\"".into(),
            },
        ];
        let (mut bytes, mut fields) = (Vec::new(), Vec::new());
        for e in &entries {
            e.encode(&mut bytes, &mut fields);
        }
        assert_eq!(Entry::decode_all(&bytes, &fields).unwrap(), entries);
        assert!(Entry::decode_all(&bytes[..bytes.len() - 1], &fields).is_err());
    }

    /// Past the memory limit the entries go to files, and the check finds
    /// the same first failure: the earliest line, not the first partition's.
    #[test]
    fn a_spilled_check_finds_the_earliest_failure() {
        let mut spill = Spill::new();
        let records = 200_000u64;
        // Line 1's record in the first partition, the last line's in the
        // last; the rest spread over all.
        let slot = |line: u64| match line {
            1 => 1,
            l if l == records => u64::MAX,
            l => l.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        for line in 1..=records {
            spill.push(&record(line, slot(line), 1)).unwrap();
        }
        // Both repeated with other content: the later repeat is in the
        // partition checked first.
        spill.push(&record(records + 1, u64::MAX, 2)).unwrap();
        spill.push(&record(records + 2, 1, 2)).unwrap();
        assert!(spill.spilled());
        let (failure, ..) = spill.resolve().unwrap();
        let (line, stage, error) = failure.unwrap();
        assert_eq!((line, stage), (records + 1, STAGE_REPEAT));
        assert!(
            matches!(error, TransferError::Duplicate { earlier, .. } if earlier == records),
            "{error}"
        );
    }

    /// A record on a later line with the same content is a repeat, counted
    /// once per line; the first line of each record is not.
    #[test]
    fn repeats_with_the_same_content_are_counted() {
        let entries = vec![
            record(1, 5, 1),
            record(2, 6, 1),
            record(3, 5, 1),
            record(4, 5, 1),
        ];
        let (failure, present, repeated) = check_partition(entries);
        assert!(failure.is_none());
        assert_eq!((present, repeated), (0, 2));
    }

    /// A reference is met only by a record on an earlier line; a claim
    /// clashes only with another key's.
    #[test]
    fn references_need_an_earlier_line_and_claims_another_key() {
        let reference = |line| Entry::Reference {
            line,
            slot: 9,
            order: 0,
            field: "workflow_id",
            target: "workflow \"w1\"".into(),
            what: "run \"r1\"".into(),
        };
        let (failure, ..) = check_partition(vec![reference(3), record(3, 9, 1)]);
        assert!(matches!(
            failure,
            Some((3, _, TransferError::MissingReference { .. }))
        ));
        let (failure, ..) = check_partition(vec![reference(4), record(3, 9, 1)]);
        assert!(failure.is_none());
        let claim = |line, key| Entry::Claim {
            line,
            slot: 5,
            key,
            order: 0,
            claim: "username \"alice\"".into(),
            what: "profile".into(),
        };
        assert!(check_partition(vec![claim(1, 1), claim(2, 1)]).0.is_none());
        let (failure, ..) = check_partition(vec![claim(1, 1), claim(2, 2)]);
        assert!(matches!(
            failure,
            Some((2, _, TransferError::Clash { ref holder, .. })) if holder == "line 1"
        ));
    }
}
