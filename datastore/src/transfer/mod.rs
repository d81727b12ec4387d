//! Moving records between stores: JSON Lines export and import, and copy.
//!
//! An export holds one [`Item`] per line: every profile, workflow, run, key,
//! collection entry and log entry, kind by kind in id order, without
//! revisions (a revision belongs to the store that assigned it). Import and
//! copy write in atomic batches and skip records the destination already
//! holds with the same content, so an interrupted run can simply be started
//! again: nothing is written twice. A record present with *different*
//! content is a conflict, reported with its line, and nothing of its batch
//! is written.

use std::collections::HashMap;
use std::io::BufRead;

use datastore_core::{
    AnyRecord, Batch, BatchOp, Datastore, Error, Kind, LogEntry, LogFilter, LogId, Precondition,
    Query, Record, RecordId, Revision, Substore, dispatch_any, dispatch_editable,
};
use serde::{Deserialize, Serialize};

mod backup;
mod check;
mod parsed;
mod spill;
pub use backup::{BackupHeader, Verified, export_snapshot, read_header, start_restore, verify};
pub use check::{Checked, check};

/// How many records one page read holds (the largest page a store gives).
pub const PAGE_SIZE: usize = datastore_core::MAX_PAGE_LIMIT as usize;

/// How many records one atomic batch write holds: large enough that a
/// backend's bulk path (multi-row statements, `UNNEST` arrays, one
/// `WriteBatch`) and one sync carry thousands of records, small enough to
/// keep memory flat.
pub const BATCH_SIZE: usize = 5_000;

/// One exported record: a record of an editable kind, or a log entry.
///
/// In JSON it is `{"kind": KIND, "record": RECORD}`, the form a batch's
/// put uses, with `"kind": "log_entry"` for log entries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Wire")]
pub enum Item {
    /// A profile, workflow, run, key (private key material as the source
    /// holds it) or collection entry.
    Record(AnyRecord),
    /// A log entry.
    LogEntry(LogEntry),
}

/// How an item is read: one variant per kind, generated from the kinds
/// list, so a line's errors name its fields (`record.emial`).
macro_rules! wire {
    (
        editable [ $( $ev:ident($ety:ty) $es:ident tag $et:literal $ewire:literal $en:literal; )* ]
        appended [ $( $av:ident($aty:ty) $as:ident tag $at:literal $awire:literal $an:literal; )* ]
    ) => {
        #[derive(Deserialize)]
        #[serde(tag = "kind", content = "record", deny_unknown_fields)]
        #[allow(clippy::large_enum_variant)]
        enum Wire {
            $( #[serde(rename = $ewire)] $ev($ety), )*
            $( #[serde(rename = $awire)] $av($aty), )*
        }

        impl From<Wire> for Item {
            fn from(wire: Wire) -> Item {
                match wire {
                    $( Wire::$ev(r) => Item::Record(AnyRecord::$ev(r)), )*
                    $( Wire::$av(e) => Item::LogEntry(e), )*
                }
            }
        }
    };
}
datastore_core::with_kinds!(wire);

impl Serialize for Item {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct LogLine<'a> {
            kind: &'static str,
            record: &'a LogEntry,
        }
        match self {
            Item::Record(r) => r.serialize(s),
            Item::LogEntry(e) => LogLine {
                kind: "log_entry",
                record: e,
            }
            .serialize(s),
        }
    }
}

impl From<AnyRecord> for Item {
    fn from(r: AnyRecord) -> Item {
        Item::Record(r)
    }
}

impl From<LogEntry> for Item {
    fn from(e: LogEntry) -> Item {
        Item::LogEntry(e)
    }
}

impl Item {
    /// The item's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Item::Record(r) => r.kind(),
            Item::LogEntry(_) => Kind::Log,
        }
    }

    /// The item's key.
    pub fn key(&self) -> String {
        match self {
            Item::Record(r) => r.key(),
            Item::LogEntry(e) => e.id().key(),
        }
    }

    /// The kind and key, for messages.
    pub fn describe(&self) -> String {
        format!("{} {:?}", self.kind().noun(), self.key())
    }

    /// The item with the times the store fills on write (`created`, a
    /// profile's `updated`) left out (the Unix epoch), as a line that does
    /// not give them has them: a record imported from such a line differs
    /// from the line only there.
    pub(crate) fn write_times_left_out(&self) -> Item {
        let mut item = self.clone();
        let times = match &mut item {
            Item::Record(r) => dispatch_any!(r, r => r.write_times_mut()),
            Item::LogEntry(e) => e.write_times_mut(),
        };
        for time in times {
            *time = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        }
        item
    }

    /// True when the line leaves all of those times to the store.
    pub(crate) fn leaves_write_times_out(&self) -> bool {
        self.write_times_left_out() == *self
    }

    /// True when `held` (what the destination holds) is what this line
    /// would write: the same content, the write times aside when the line
    /// leaves them to the store.
    fn same_as_held(&self, held: &Item) -> bool {
        held == self || (self.leaves_write_times_out() && held.write_times_left_out() == *self)
    }

    fn validate(&self) -> Result<(), String> {
        let (checked, id_empty) = match self {
            Item::Record(r) => dispatch_any!(r, r => (r.validate(), r.id_is_empty())),
            Item::LogEntry(e) => (e.validate(), e.id_is_empty()),
        };
        checked.map_err(|e| format!("{}: {}", e.field, e.reason))?;
        if id_empty {
            return Err("id: must not be empty in an import".into());
        }
        Ok(())
    }
}

/// Counts of a transfer so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Items read from the source.
    pub read: u64,
    /// Items written to the destination.
    pub written: u64,
    /// Items the destination already held with the same content.
    pub skipped: u64,
    /// Bytes of input consumed (imports).
    pub bytes: u64,
}

/// Why a transfer stopped. An import is checked whole first ([`check`]), so
/// its errors come before anything is written; a failure while writing
/// (another writer got in between) leaves every batch before the failing
/// one written and nothing of that one, and says which lines those are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A line is not a valid item.
    #[error("line {line}: {reason}")]
    Malformed {
        /// The 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The destination holds this record with other content.
    #[error("line {line}: {what} already exists in the destination with different content")]
    Conflict {
        /// The 1-based line (or item) number.
        line: u64,
        /// The record.
        what: String,
    },
    /// The same record twice in one file, with different content.
    #[error("line {line}: {what} is also on line {earlier}, with different content")]
    Duplicate {
        /// The 1-based line.
        line: u64,
        /// The record.
        what: String,
        /// The line it was first on.
        earlier: u64,
    },
    /// A unique value (a username, a workflow's dataset, a run's number in
    /// its workflow) another record holds.
    #[error("line {line}: {what}: {claim} is already taken by {holder}")]
    Clash {
        /// The 1-based line.
        line: u64,
        /// The record.
        what: String,
        /// The index and value claimed.
        claim: String,
        /// Who holds it: an earlier line, or a record in the destination.
        holder: String,
    },
    /// A record names one that is neither earlier in the file nor in the
    /// destination.
    #[error(
        "line {line}: {what}: its {field} names {target}, which is neither earlier in the file nor in the destination"
    )]
    MissingReference {
        /// The 1-based line.
        line: u64,
        /// The record.
        what: String,
        /// The field holding the reference.
        field: &'static str,
        /// The record named.
        target: String,
    },
    /// The input is not what [`check`] read (it was changed, cut short or
    /// added to since): the write stops before the batch holding the
    /// change.
    #[error(
        "{lines}: the input changed after it was checked; nothing from the batch holding the change on is written (run the import again: it checks the input anew and skips what is written)"
    )]
    Changed {
        /// Which lines differ, or where the input now ends.
        lines: String,
    },
    /// A log entry cannot be appended where it belongs.
    #[error(
        "line {line}: {what}: the destination log has {has} entries, so entry {seq} cannot be appended"
    )]
    LogGap {
        /// The 1-based line (or item) number.
        line: u64,
        /// The entry.
        what: String,
        /// The destination log's length.
        has: u64,
        /// The entry's sequence number.
        seq: u64,
    },
    /// Reading the source or writing the destination failed.
    #[error("{context}: {source}")]
    Store {
        /// Where (lines, or what was being read).
        context: String,
        /// The store's error.
        #[source]
        source: Error,
    },
    /// A copy's reading stopped because its writing had stopped (a copy
    /// reports the writer's error, so this one is only seen by a sink of
    /// [`for_each_item`] that uses it the same way).
    #[error("the destination stopped taking records")]
    Stopped,
    /// A restore's destination already holds records.
    #[error(
        "the destination holds {items} items; a restore writes into an empty store (pass --allow-non-empty to write into it anyway: identical records are skipped, different ones refused; an interrupted restore resumes this way)"
    )]
    NotEmpty {
        /// How many items it holds.
        items: u64,
    },
    /// Reading the input or writing the output failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read or written.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How many items [`for_each_item`] would read from `source` now (records
/// of every kind and log entries): the total for an export's or a copy's
/// progress. Writes during the transfer can make the real number differ.
pub async fn count_items(source: &dyn Datastore) -> Result<u64, TransferError> {
    let mut total = 0;
    for kind in Kind::ALL {
        total += source
            .count(kind)
            .await
            .map_err(|source| TransferError::Store {
                context: format!("counting {} in the source", kind.as_str()),
                source,
            })?;
    }
    Ok(total)
}

/// Reads every record of `source`, kind by kind, in pages, passing each to
/// `sink` (a write of one line, or a batch writer).
pub async fn for_each_item(
    source: &dyn Datastore,
    mut sink: impl AsyncFnMut(Item) -> Result<(), TransferError>,
) -> Result<u64, TransferError> {
    for_each_versioned(source, async |item, _| sink(item).await).await
}

/// [`for_each_item`], with each item's revision in `source`.
pub(crate) async fn for_each_versioned(
    source: &dyn Datastore,
    mut sink: impl AsyncFnMut(Item, Revision) -> Result<(), TransferError>,
) -> Result<u64, TransferError> {
    let mut count = 0;
    let read_err = |what: &str| {
        let what = what.to_string();
        move |source: Error| TransferError::Store {
            context: format!("reading {what} from the source"),
            source,
        }
    };
    for kind in Kind::ALL {
        let what = kind.as_str();
        let mut cursor = None;
        loop {
            let page: Vec<(Item, Revision)> = dispatch_editable!(kind, R => {
                let page = R::of(source)
                    .list(Query::<R>::new(Default::default()).limit(PAGE_SIZE as u32).after(cursor))
                    .await
                    .map_err(read_err(what))?;
                cursor = page.next;
                page.items.into_iter().map(|v| (Item::Record(v.value.into()), v.revision)).collect()
            }, _ => {
                let page = source
                    .logs()
                    .list(Query::new(LogFilter::All).limit(PAGE_SIZE as u32).after(cursor))
                    .await
                    .map_err(read_err(what))?;
                cursor = page.next;
                page.items.into_iter().map(|v| (Item::LogEntry(v.value), v.revision)).collect()
            });
            for (item, revision) in page {
                count += 1;
                sink(item, revision).await?;
            }
            if cursor.is_none() {
                break;
            }
        }
    }
    Ok(count)
}

/// Writes `source` as JSON Lines to `out`; returns how many items.
pub async fn export(
    source: &dyn Datastore,
    out: &mut (dyn std::io::Write + Send),
    mut progress: impl FnMut(&TransferStats),
) -> Result<TransferStats, TransferError> {
    let mut stats = TransferStats::default();
    for_each_item(source, async |item| {
        let mut line = serde_json::to_vec(&item).map_err(|e| TransferError::Malformed {
            line: stats.read + 1,
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        out.write_all(&line).map_err(|source| TransferError::Io {
            context: "writing the export".into(),
            source,
        })?;
        stats.read += 1;
        stats.written += 1;
        stats.bytes += line.len() as u64;
        progress(&stats);
        Ok(())
    })
    .await?;
    out.flush().map_err(|source| TransferError::Io {
        context: "writing the export".into(),
        source,
    })?;
    Ok(stats)
}

/// Parses one line (1-based `line` for messages) strictly, as the HTTP API
/// reads a body: malformed JSON, a value of the wrong shape or a field the
/// record does not have is an error naming the line and the field. Blank
/// lines are `None`.
pub fn parse_line(line: u64, text: &str) -> Result<Option<Item>, TransferError> {
    parse_line_trying(line, text, &mut false)
}

/// [`parse_line`], first trying, while `exact` holds, whether the line is
/// exactly the JSON its item writes (as an export's lines are): such a
/// line is read once, plainly, and checked byte for byte against its item
/// written back ([`datastore_core::strict::writes_exactly`]), which proves
/// what the strict read's walk would. The answer is the same either way. A
/// line that is not turns `exact` false: the lines after it, likely from
/// the same writer, are read strictly without trying.
pub(crate) fn parse_line_trying(
    line: u64,
    text: &str,
    exact: &mut bool,
) -> Result<Option<Item>, TransferError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    if line == 1 && backup::is_header(text) {
        // A backup's first line names the feed position it reflects.
        backup::parse_header(text).map_err(|reason| TransferError::Malformed { line, reason })?;
        return Ok(None);
    }
    let plain = (*exact)
        .then(|| serde_json::from_str::<Item>(text).ok())
        .flatten()
        .filter(|item| datastore_core::strict::writes_exactly(item, text));
    *exact = plain.is_some();
    let item = match plain {
        Some(item) => item,
        None => {
            datastore_core::strict::from_str_strict(text).map_err(|e| TransferError::Malformed {
                line,
                reason: match e.path.as_str() {
                    "." => e.reason,
                    path if e.reason == "unknown field" => format!("unknown field {path:?}"),
                    path => format!("{path}: {}", e.reason),
                },
            })?
        }
    };
    item.validate().map_err(|reason| TransferError::Malformed {
        line,
        reason: format!("{}: {reason}", item.describe()),
    })?;
    Ok(Some(item))
}

/// The lines of `input`, numbered from 1; a read error names its line.
fn numbered_lines(
    input: impl BufRead,
) -> impl Iterator<Item = Result<(u64, String), TransferError>> {
    input.lines().enumerate().map(|(i, text)| {
        let line = i as u64 + 1;
        text.map(|text| (line, text))
            .map_err(|source| TransferError::Io {
                context: format!("reading line {line}"),
                source,
            })
    })
}

/// Checks every line of an export without writing anything; returns how
/// many items it holds.
pub fn validate(input: impl BufRead) -> Result<u64, TransferError> {
    let mut items = 0;
    for numbered in numbered_lines(input) {
        let (line, text) = numbered?;
        if parse_line(line, &text)?.is_some() {
            items += 1;
        }
    }
    Ok(items)
}

/// Imports JSON Lines into `dest`, a batch at a time. A malformed line stops
/// the import before its batch is written. Lines are parsed on a helper
/// thread, a batch ahead of the one being written. Run [`check`] first to
/// refuse a file with any line that would fail before anything is written,
/// then [`import_checked`] (the program does).
pub async fn import(
    dest: &dyn Datastore,
    input: impl BufRead,
    progress: impl FnMut(&TransferStats),
) -> Result<TransferStats, TransferError> {
    let lines = parsed::parsed_lines(input, Default::default());
    write_lines(BatchWriter::new(dest), lines, progress).await
}

/// Imports JSON Lines that [`check`] passed (`checked` is its answer), as
/// [`import`] does, without checking each line again: each chunk of lines
/// is compared with what the check read (a hash of its text) and then read
/// plainly. A line changed since the check stops the import before its
/// batch is written ([`TransferError::Changed`]); so does an input that now
/// ends sooner.
pub async fn import_checked(
    dest: &dyn Datastore,
    input: impl BufRead,
    checked: &Checked,
    progress: impl FnMut(&TransferStats),
) -> Result<TransferStats, TransferError> {
    let lines = parsed::checked_lines(input, checked.input.clone());
    let mut writer = BatchWriter::new(dest);
    writer.lookups = checked.present > 0 || checked.repeated > 0;
    write_lines(writer, lines, progress).await
}

/// Writes parsed lines in batches.
async fn write_lines(
    mut writer: BatchWriter<'_>,
    mut lines: parsed::ParsedLines<impl Iterator<Item = parsed::Read>>,
    mut progress: impl FnMut(&TransferStats),
) -> Result<TransferStats, TransferError> {
    // The next lines are parsed while a batch is written.
    while let Some(chunk) = lines.next_chunk().await {
        for (line, bytes, parsed) in chunk.lines {
            writer.stats.bytes += bytes;
            if let Some(item) = parsed? {
                writer.push(line, item).await?;
                progress(&writer.stats);
            }
        }
    }
    writer.flush().await?;
    progress(&writer.stats);
    Ok(writer.stats)
}

/// Copies every record of `source` into `dest` (see the module docs for
/// what happens to records `dest` already holds). Reading and writing
/// overlap: the next pages are read while a batch is written, with at most
/// two pages waiting, so memory stays flat whatever the size of the source.
pub async fn copy(
    source: &dyn Datastore,
    dest: &dyn Datastore,
    mut progress: impl FnMut(&TransferStats),
) -> Result<TransferStats, TransferError> {
    let (items, mut arriving) = tokio::sync::mpsc::channel::<Item>(2 * PAGE_SIZE);
    let read = async move {
        for_each_item(source, async |item| {
            // The writer stopped (its error is the one reported).
            items.send(item).await.map_err(|_| TransferError::Stopped)
        })
        .await
    };
    let write = async {
        let mut writer = BatchWriter::new(dest);
        let mut n = 0;
        while let Some(item) = arriving.recv().await {
            n += 1;
            writer.push(n, item).await?;
            progress(&writer.stats);
        }
        Ok::<_, TransferError>(writer)
    };
    let (read, write) = futures::join!(read, write);
    let mut writer = write?;
    // A failed read writes nothing more: what is written is whole batches.
    read?;
    writer.flush().await?;
    progress(&writer.stats);
    Ok(writer.stats)
}

/// Collects items and writes them in atomic batches, skipping what the
/// destination already holds.
struct BatchWriter<'a> {
    dest: &'a dyn Datastore,
    pending: Vec<(u64, Item)>,
    stats: TransferStats,
    /// Whether each batch's records are looked up in the destination (to
    /// skip the ones there): off when a check found none of the input's
    /// records there and none repeated (a record another writer adds since
    /// then is refused by the write's `MustNotExist`).
    lookups: bool,
}

impl<'a> BatchWriter<'a> {
    fn new(dest: &'a dyn Datastore) -> Self {
        BatchWriter {
            dest,
            pending: Vec::with_capacity(BATCH_SIZE),
            stats: TransferStats::default(),
            lookups: true,
        }
    }

    async fn push(&mut self, line: u64, item: Item) -> Result<(), TransferError> {
        self.stats.read += 1;
        self.pending.push((line, item));
        if self.pending.len() >= BATCH_SIZE {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransferError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        let first = items[0].0;
        let last = items[items.len() - 1].0;
        let context = |what: &str| format!("lines {first}-{last}: {what}");
        let store_err = |what: &'static str| {
            let context = context(what);
            move |source: Error| TransferError::Store {
                context: context.clone(),
                source,
            }
        };

        // What the destination already holds, kind by kind (nothing to
        // look up when a check found nothing of the file there).
        let mut existing: HashMap<(Kind, String), Item> = HashMap::new();
        for kind in Kind::ALL {
            if !self.lookups {
                break;
            }
            let keys: Vec<String> = items
                .iter()
                .filter(|(_, i)| matches!(i, Item::Record(r) if r.kind() == kind))
                .map(|(_, i)| i.key())
                .collect();
            if keys.is_empty() {
                continue;
            }
            let found: Vec<Item> = dispatch_editable!(kind, R => {
                let ids: Vec<<R as Record>::Id> =
                    keys.iter().filter_map(|k| RecordId::from_key(k)).collect();
                let mut found = Vec::new();
                for ids in ids.chunks(datastore_core::MAX_GET_MANY) {
                    let held = R::of(self.dest)
                        .get_many(ids)
                        .await
                        .map_err(store_err("reading the destination"))?;
                    found.extend(held.into_iter().flatten().map(|v| Item::Record(v.value.into())));
                }
                found
            }, _ => Vec::new());
            for item in found {
                existing.insert((item.kind(), item.key()), item);
            }
        }

        let mut ops = Vec::new();
        let mut lines = Vec::new();
        // Records put by this batch: (kind, key) → (line, place in `ops`).
        let mut batched: HashMap<(Kind, String), (u64, usize)> = HashMap::new();
        let mut skipped = 0;
        // Log appends: per log, its length in the destination and the ops
        // to append after it.
        let mut logs: Vec<(LogId, u64, Vec<datastore_core::LogOp>, u64)> = Vec::new();
        for (line, item) in items {
            if let Item::LogEntry(entry) = item {
                let at = match logs.iter().position(|(l, ..)| *l == entry.log_id) {
                    Some(at) => at,
                    None => {
                        let len = self
                            .dest
                            .logs()
                            .length(&entry.log_id)
                            .await
                            .map_err(store_err("reading the destination"))?;
                        logs.push((entry.log_id.clone(), len, Vec::new(), line));
                        logs.len() - 1
                    }
                };
                let (_, has, ops, _) = &mut logs[at];
                let next = *has + ops.len() as u64;
                if entry.seq < *has {
                    skipped += 1; // already there
                } else if entry.seq == next {
                    ops.push(entry.op);
                } else {
                    return Err(TransferError::LogGap {
                        line,
                        what: Item::LogEntry(entry.clone()).describe(),
                        has: next,
                        seq: entry.seq,
                    });
                }
                continue;
            }
            let slot = (item.kind(), item.key());
            match existing.get(&slot) {
                Some(held) if item.same_as_held(held) => {
                    skipped += 1;
                    continue;
                }
                Some(_) => {
                    let what = item.describe();
                    return Err(TransferError::Conflict { line, what });
                }
                None => {}
            }
            let Item::Record(record) = item else {
                unreachable!("log entries are handled above")
            };
            // The same record again in this batch: once is enough.
            if let Some(&(earlier, at)) = batched.get(&slot) {
                match &ops[at] {
                    BatchOp::Put { record: first, .. } if *first == record => {
                        skipped += 1;
                        continue;
                    }
                    _ => {
                        let what = Item::Record(record).describe();
                        return Err(TransferError::Duplicate {
                            line,
                            what,
                            earlier,
                        });
                    }
                }
            }
            batched.insert(slot.clone(), (line, ops.len()));
            lines.push((slot.1, line));
            ops.push(BatchOp::Put {
                record,
                precondition: Precondition::MustNotExist,
            });
        }
        for (log_id, expected_len, log_ops, _) in logs {
            // One append holds at most MAX_APPEND_OPS entries; a longer run
            // of a log is several appends, each after the one before.
            for (i, chunk) in log_ops.chunks(datastore_core::MAX_APPEND_OPS).enumerate() {
                ops.push(BatchOp::AppendLog {
                    log_id: log_id.clone(),
                    expected_len: expected_len + (i * datastore_core::MAX_APPEND_OPS) as u64,
                    ops: chunk.to_vec(),
                });
            }
        }
        let writes = ops
            .iter()
            .map(|op| match op {
                BatchOp::AppendLog { ops, .. } => ops.len() as u64,
                _ => 1,
            })
            .sum::<u64>();
        if !ops.is_empty() {
            let stats = self.stats;
            self.dest.apply(Batch { ops }).await.map_err(|source| {
                // Name the line of the record the store complained about,
                // and exactly what is written.
                let line = error_key(&source)
                    .and_then(|key| lines.iter().find(|(k, _)| *k == key).map(|(_, l)| *l));
                let at = match line {
                    Some(line) => format!("line {line}"),
                    None => format!("lines {first}-{last}"),
                };
                let before = if first > 1 {
                    format!(
                        "every item before line {first} is written ({} written, {} already there)",
                        stats.written, stats.skipped
                    )
                } else {
                    "nothing is written".to_string()
                };
                TransferError::Store {
                    context: format!(
                        "{at}: {before}; nothing of lines {first}-{last}; run the same command again to resume (what is there is skipped)"
                    ),
                    source,
                }
            })?;
        }
        self.stats.written += writes;
        self.stats.skipped += skipped;
        Ok(())
    }
}

fn error_key(e: &Error) -> Option<String> {
    match e {
        Error::NotFound { key, .. }
        | Error::AlreadyExists { key, .. }
        | Error::Conflict { key, .. }
        | Error::Invalid { key, .. }
        | Error::Corrupt { key, .. } => Some(key.clone()),
        _ => None,
    }
}
