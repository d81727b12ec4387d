//! Checking a whole import before its first write: every line against the
//! file and against the destination, so a file that would fail part way
//! through is refused before anything of it is written.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;

use datastore_core::{
    AnyRecord, Datastore, Error, Kind, LogId, PageRequest, Record, RecordId, Substore, WorkflowId,
    dispatch_any, dispatch_editable, index_entries_of,
};

use super::parsed::{Fingerprints, parsed_lines};
use super::spill::{Entry, Failure, STAGE_CONFLICT, STAGE_REPEAT, Spill, earliest, stage_claim};
use super::{Item, PAGE_SIZE, TransferError};

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Items in the file.
    pub items: u64,
    /// Of those, items the destination already holds with the same content
    /// (an import skips them).
    pub present: u64,
    /// Of those, items repeating an earlier line's record with the same
    /// content (an import skips them too).
    pub repeated: u64,
    /// What was read, for [`super::import_checked`]: a hash of each chunk
    /// of lines.
    pub(super) input: Arc<Fingerprints>,
}

/// The hashes a check keeps of what it has seen, keyed once per check.
///
/// A keyed hash (foldhash's quality variant) instead of the standard
/// library's SipHash: the check hashes every line's key, claims and JSON,
/// and SipHash was a seventh of the check's own time. The keys are the
/// lines' fingerprints': the parser hashes a line that is exactly its
/// item's JSON as it reads it, and that hash is the item's content hash.
struct Hashes {
    keys: Fingerprints,
    /// The JSON of the item being hashed, reused line after line.
    json: Vec<u8>,
}

impl Hashes {
    fn new(keys: Fingerprints) -> Self {
        Hashes {
            keys,
            json: Vec::with_capacity(1024),
        }
    }

    /// Where the checker keeps a record it has seen: one hash of its kind
    /// and key (8 bytes a slot, not a kind, a key and padding).
    fn record_slot(&self, kind: Kind, key: &str) -> u64 {
        self.keys.hash((kind, key))
    }

    /// Where the checker keeps a unique claim it has seen: one hash of its
    /// kind, index and values.
    fn claim_slot(&self, kind: Kind, index: &str, values: &str) -> u64 {
        self.keys.hash((kind, index, values))
    }

    /// A hash of a record's key, to tell claimants apart.
    fn key(&self, key: &str) -> u64 {
        self.keys.hash(key)
    }

    /// A hash of an item's JSON: two items hash alike when they serialize
    /// alike.
    fn content(&mut self, item: &Item) -> u64 {
        self.json.clear();
        // Writing to a Vec cannot fail, and an item always serializes.
        let _ = serde_json::to_writer(&mut self.json, item);
        self.keys.json(&self.json)
    }
}

/// A line to check: its number, its item, and the item's content hash when
/// the parser could take it from the line's text.
type Line = (u64, Item, Option<u64>);

/// What a line declares about itself, whatever its kind.
struct Facts {
    kind: Kind,
    key: String,
    /// (index, its values as text) of each unique index entry.
    claims: Vec<(&'static str, String)>,
    /// (field, kind, key) of each record it names.
    references: Vec<(&'static str, Kind, String)>,
}

fn facts_of<R: Record>(r: &R) -> Facts {
    Facts {
        kind: R::KIND,
        key: r.id().key(),
        claims: index_entries_of(r)
            .into_iter()
            .filter(|e| e.unique)
            .map(|e| {
                let values: Vec<String> = e.values.iter().map(|v| v.to_string()).collect();
                (e.index, values.join(","))
            })
            .collect(),
        references: r
            .references()
            .into_iter()
            .map(|r| (r.field, r.kind, r.key))
            .collect(),
    }
}

fn facts(item: &Item) -> Facts {
    match item {
        Item::Record(r) => dispatch_any!(r, r => facts_of(r)),
        Item::LogEntry(e) => facts_of(e),
    }
}

/// What the destination holds that a chunk of lines touches.
#[derive(Default)]
struct Held {
    /// Content hashes of records the destination has, by (kind, key): in
    /// full, and with the write times left out.
    records: HashMap<(Kind, String), (u64, u64)>,
    /// Keys of records the chunk refers to that the destination has.
    referenced: HashSet<(Kind, String)>,
    /// The key holding a unique claim in the destination, by (kind, index, values).
    claims: HashMap<(Kind, &'static str, String), String>,
    /// Log lengths in the destination.
    log_lengths: HashMap<LogId, u64>,
}

struct Checker<'a> {
    dest: &'a dyn Datastore,
    /// Nothing to look up when the destination holds nothing.
    dest_empty: bool,
    /// What each line declares, for the checks within the file.
    spill: Spill,
    /// The next sequence number each log must continue with.
    logs: HashMap<LogId, u64>,
    /// Run numbers the destination holds per workflow (loaded once each).
    run_numbers: HashMap<WorkflowId, HashMap<u64, String>>,
    hashes: Hashes,
    checked: Checked,
}

fn store_err(first: u64, last: u64) -> impl Fn(Error) -> TransferError {
    move |source| TransferError::Store {
        context: format!("lines {first}-{last}: reading the destination to check them"),
        source,
    }
}

impl Checker<'_> {
    /// Looks up what the destination holds for a chunk of lines.
    async fn held(&mut self, chunk: &[Line]) -> Result<Held, TransferError> {
        let mut held = Held::default();
        if self.dest_empty || chunk.is_empty() {
            return Ok(held);
        }
        let err = store_err(chunk[0].0, chunk[chunk.len() - 1].0);
        // The records themselves, and the records they name.
        let mut wanted: HashMap<Kind, HashSet<String>> = HashMap::new();
        let mut referenced: HashMap<Kind, HashSet<String>> = HashMap::new();
        for (_, item, _) in chunk {
            let f = facts(item);
            if f.kind != Kind::Log {
                wanted.entry(f.kind).or_default().insert(f.key.clone());
            }
            for (_, kind, key) in f.references {
                referenced.entry(kind).or_default().insert(key);
            }
            if let Item::LogEntry(e) = item
                && !self.logs.contains_key(&e.log_id)
                && !held.log_lengths.contains_key(&e.log_id)
            {
                let len = self.dest.logs().length(&e.log_id).await.map_err(&err)?;
                held.log_lengths.insert(e.log_id.clone(), len);
            }
        }
        for (kind, keys) in &wanted {
            let keys: Vec<String> = keys.iter().cloned().collect();
            for (key, found) in keys
                .iter()
                .zip(self.fetch(*kind, &keys).await.map_err(&err)?)
            {
                if let Some(item) = found {
                    let hashes = (
                        self.hashes.content(&item),
                        self.hashes.content(&item.write_times_left_out()),
                    );
                    held.records.insert((*kind, key.clone()), hashes);
                }
            }
        }
        for (kind, keys) in &referenced {
            let keys: Vec<String> = keys.iter().cloned().collect();
            for (key, found) in keys
                .iter()
                .zip(self.fetch(*kind, &keys).await.map_err(&err)?)
            {
                if found.is_some() {
                    held.referenced.insert((*kind, key.clone()));
                }
            }
        }
        // Unique claims: who holds them in the destination.
        for (_, item, _) in chunk {
            match item {
                Item::Record(AnyRecord::Profile(p)) => {
                    match self.dest.profiles().get_by_username(&p.username).await {
                        Ok(v) => {
                            held.claims.insert(
                                (Kind::Profile, "username", p.username.clone()),
                                v.value.id.key(),
                            );
                        }
                        Err(Error::NotFound { .. } | Error::Invalid { .. }) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                Item::Record(AnyRecord::Workflow(w)) => {
                    match self.dest.workflows().get_by_init_id(&w.init_id).await {
                        Ok(v) => {
                            held.claims.insert(
                                (Kind::Workflow, "init_id", w.init_id.to_string()),
                                v.value.id.key(),
                            );
                        }
                        Err(Error::NotFound { .. } | Error::Invalid { .. }) => {}
                        Err(e) => return Err(err(e)),
                    }
                }
                Item::Record(AnyRecord::Run(r))
                    if !self.run_numbers.contains_key(&r.workflow_id) =>
                {
                    let numbers = self.dest_run_numbers(&r.workflow_id).await.map_err(&err)?;
                    self.run_numbers.insert(r.workflow_id.clone(), numbers);
                }
                _ => {}
            }
        }
        Ok(held)
    }

    /// Reads records of one kind by key, as items.
    async fn fetch(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<Item>>, Error> {
        Ok(dispatch_editable!(kind, R => {
            let ids: Vec<<R as Record>::Id> = keys
                .iter()
                .map(|k| RecordId::from_key(k).unwrap_or_default())
                .collect();
            R::of(self.dest)
                .get_many(&ids)
                .await?
                .into_iter()
                .map(|v| v.map(|v| Item::Record(v.value.into())))
                .collect()
        }, _ => keys.iter().map(|_| None).collect()))
    }

    /// The run numbers the destination holds for a workflow.
    async fn dest_run_numbers(&self, workflow: &WorkflowId) -> Result<HashMap<u64, String>, Error> {
        let mut numbers = HashMap::new();
        let mut cursor = None;
        loop {
            let page = match self
                .dest
                .runs()
                .list_by_workflow(workflow, PageRequest::after(1000, cursor))
                .await
            {
                Ok(page) => page,
                Err(Error::Invalid { .. }) => return Ok(numbers),
                Err(e) => return Err(e),
            };
            for r in page.items {
                numbers.insert(r.value.number, r.value.id.key());
            }
            cursor = page.next;
            if cursor.is_none() {
                return Ok(numbers);
            }
        }
    }

    /// Checks a chunk of lines against the destination, in order, and
    /// empties it; the first line that fails.
    async fn chunk(&mut self, chunk: &mut Vec<Line>) -> Result<Option<Failure>, TransferError> {
        let held = self.held(chunk).await?;
        for (line, item, json) in chunk.drain(..) {
            // Returning drops the drain, which empties the chunk.
            if let Some(failure) = self.line(line, &item, json, &held)? {
                return Ok(Some(failure));
            }
        }
        Ok(None)
    }

    /// Checks one line against the destination, and hands what it declares
    /// to the spill for the checks within the file.
    fn line(
        &mut self,
        line: u64,
        item: &Item,
        json: Option<u64>,
        held: &Held,
    ) -> Result<Option<Failure>, TransferError> {
        let what = item.describe();
        self.checked.items += 1;
        if let Item::LogEntry(entry) = item {
            let next = match self.logs.get(&entry.log_id) {
                Some(next) => *next,
                None => held.log_lengths.get(&entry.log_id).copied().unwrap_or(0),
            };
            // Entries the destination has are skipped by the import.
            let has = held.log_lengths.get(&entry.log_id).copied().unwrap_or(0);
            if entry.seq < has && !self.logs.contains_key(&entry.log_id) {
                self.checked.present += 1;
                return Ok(None);
            }
            if entry.seq != next {
                let gap = TransferError::LogGap {
                    line,
                    what,
                    has: next,
                    seq: entry.seq,
                };
                return Ok(Some((line, STAGE_REPEAT, gap)));
            }
            self.logs.insert(entry.log_id.clone(), next + 1);
            return Ok(None);
        }
        let spill_err = |source| TransferError::Io {
            context: format!("line {line}: writing the import's check to a temporary file"),
            source,
        };
        let f = facts(item);
        let content = json.unwrap_or_else(|| self.hashes.content(item));
        // A line that leaves the write times out matches a record the
        // store filled them in for.
        let same = |(full, created_left_out): &(u64, u64)| {
            *full == content || (item.leaves_write_times_out() && *created_left_out == content)
        };
        let (present, mut failure) = match held.records.get(&(f.kind, f.key.clone())) {
            Some(h) if same(h) => (true, None),
            Some(_) => (
                false,
                Some((
                    line,
                    STAGE_CONFLICT,
                    TransferError::Conflict {
                        line,
                        what: what.clone(),
                    },
                )),
            ),
            None => (false, None),
        };
        self.spill
            .push(&Entry::Record {
                line,
                slot: self.hashes.record_slot(f.kind, &f.key),
                content,
                present,
                what: what.clone(),
            })
            .map_err(spill_err)?;
        for (order, (field, kind, key)) in f.references.iter().enumerate() {
            if !held.referenced.contains(&(*kind, key.clone())) {
                self.spill
                    .push(&Entry::Reference {
                        line,
                        slot: self.hashes.record_slot(*kind, key),
                        order: order as u32,
                        field,
                        target: format!("{} {key:?}", Kind::noun(*kind)),
                        what: what.clone(),
                    })
                    .map_err(spill_err)?;
            }
        }
        let key_hash = self.hashes.key(&f.key);
        for (order, (index, values)) in f.claims.iter().enumerate() {
            let claim = format!("{index} {values:?}");
            self.spill
                .push(&Entry::Claim {
                    line,
                    slot: self.hashes.claim_slot(f.kind, index, values),
                    key: key_hash,
                    order: order as u32,
                    claim: claim.clone(),
                    what: what.clone(),
                })
                .map_err(spill_err)?;
            let holder = match item {
                Item::Record(AnyRecord::Run(r)) => self
                    .run_numbers
                    .get(&r.workflow_id)
                    .and_then(|n| n.get(&r.number))
                    .cloned(),
                _ => held.claims.get(&(f.kind, *index, values.clone())).cloned(),
            };
            if failure.is_none()
                && let Some(holder) = holder
                && holder != f.key
            {
                let clash = TransferError::Clash {
                    line,
                    what: what.clone(),
                    claim,
                    holder: format!("{} {holder:?} in the destination", Kind::noun(f.kind)),
                };
                failure = Some((line, stage_claim(order, true), clash));
            }
        }
        Ok(failure)
    }
}

/// Checks every line of an import before anything is written: each line
/// parses strictly and validates; a record appears at most once (or again
/// with the same content); no two records claim one unique value (a
/// username, a workflow's dataset, a run's number in its workflow), in the
/// file or against the destination; every record a line names (a run's
/// workflow, a key's profile) is earlier in the file or in the
/// destination; log entries continue their log without a gap; a record the
/// destination holds with other content is a conflict. `progress` gets the
/// bytes read so far.
///
/// Memory stays flat in the file's size: what each line declares (its
/// record, unique values and references, by hash, with its line) goes to
/// temporary files past a few MiB, and the checks within the file then run
/// one of 64 partitions at a time. The destination is read a chunk of
/// lines at a time. Lines are parsed on a helper thread, ahead of the
/// line being checked.
pub async fn check(
    dest: &dyn Datastore,
    input: impl BufRead,
    mut progress: impl FnMut(u64),
) -> Result<Checked, TransferError> {
    let head = dest
        .changes()
        .head()
        .await
        .map_err(|source| TransferError::Store {
            context: "reading the destination's feed head".into(),
            source,
        })?;
    let mut read = Fingerprints::default();
    let mut checker = Checker {
        dest,
        dest_empty: head.0 == 0,
        spill: Spill::new(),
        logs: HashMap::new(),
        run_numbers: HashMap::new(),
        hashes: Hashes::new(read.clone()),
        checked: Checked::default(),
    };
    let mut chunk: Vec<Line> = Vec::with_capacity(PAGE_SIZE);
    let mut bytes = 0;
    let mut failure = None;
    // Lines are parsed on a helper thread while the ones before them are
    // checked here.
    let mut lines = parsed_lines(input, read.clone());
    'read: while let Some(parsed) = lines.next_chunk().await {
        read.chunks.push(parsed.fingerprint);
        let mut json = parsed.json.into_iter();
        for (line, len, parsed) in parsed.lines {
            bytes += len;
            let json = json.next().flatten();
            if let Some(item) = parsed? {
                chunk.push((line, item, json));
            }
            if chunk.len() >= PAGE_SIZE {
                failure = checker.chunk(&mut chunk).await?;
                progress(bytes);
                if failure.is_some() {
                    break 'read;
                }
            }
        }
    }
    if failure.is_none() {
        failure = checker.chunk(&mut chunk).await?;
    }
    progress(bytes);
    // The checks within the file, over the lines read: a line that failed
    // against the destination may come after one that fails within the file.
    let (within, present, repeated) =
        checker
            .spill
            .resolve()
            .map_err(|source| TransferError::Io {
                context: "reading back the import's check from its temporary files".into(),
                source,
            })?;
    match earliest(failure, within) {
        Some((_, _, error)) => Err(error),
        None => {
            checker.checked.present += present;
            checker.checked.repeated = repeated;
            checker.checked.input = Arc::new(read);
            Ok(checker.checked)
        }
    }
}
