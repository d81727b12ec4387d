//! Backups as JSON Lines (a consistent snapshot of a live store), restore,
//! and checking a store's own data.
//!
//! A backup file is an export with a first line naming the feed position it
//! reflects: `{"backup": {"feed_position": 1234, "backend": "postgres",
//! "taken": "2026-12-03T10:00:00Z"}}`. Import and check read it as an
//! export and skip that line.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use datastore_core::{ChangeOp, Datastore, Error, FeedCursor, Kind, LogId, Revision};
use serde::{Deserialize, Serialize};

use super::{Item, TransferError, TransferStats, count_items, export, for_each_versioned};

/// The most problems [`verify`] lists (it counts them all).
const MAX_LISTED: usize = 100;

/// The first line of a backup in JSON Lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// The feed position the backup reflects: every change through it is
    /// in the backup, none after it.
    pub feed_position: u64,
    /// The backend it was taken from (`postgres`, `sqlite`, ...).
    pub backend: String,
    /// When it was taken (UTC).
    pub taken: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderLine {
    backup: BackupHeader,
}

/// True when a line is a backup header (`{"backup": ...}`).
pub(crate) fn is_header(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with('{') && text[1..].trim_start().starts_with("\"backup\"")
}

/// Reads a header line strictly.
pub(crate) fn parse_header(text: &str) -> Result<BackupHeader, String> {
    serde_json::from_str::<HeaderLine>(text)
        .map(|h| h.backup)
        .map_err(|e| format!("backup header: {e}"))
}

/// The header of a backup file (its first line); `None` for an export
/// without one.
pub fn read_header(mut input: impl BufRead) -> Result<Option<BackupHeader>, TransferError> {
    let mut first = String::new();
    input
        .read_line(&mut first)
        .map_err(|source| TransferError::Io {
            context: "reading line 1".into(),
            source,
        })?;
    if !is_header(&first) {
        return Ok(None);
    }
    parse_header(&first)
        .map(Some)
        .map_err(|reason| TransferError::Malformed { line: 1, reason })
}

fn store_err(context: &str) -> impl Fn(Error) -> TransferError {
    let context = context.to_string();
    move |source| TransferError::Store {
        context: context.clone(),
        source,
    }
}

/// Writes a consistent backup of a live `source` as JSON Lines: a header
/// naming the feed position, then every item as [`export`] writes them, all
/// read from one [`Datastore::snapshot`] (writers go on meanwhile). Returns
/// the header and the counts. `Unsupported` where the backend has no
/// snapshot (RocksDB and SQLite have file backups, `Datastore::backup`).
pub async fn export_snapshot(
    source: &dyn Datastore,
    out: &mut (dyn Write + Send),
    progress: impl FnMut(&TransferStats),
) -> Result<(BackupHeader, TransferStats), TransferError> {
    let snapshot = source
        .snapshot()
        .await
        .map_err(store_err("taking a snapshot of the source"))?;
    let written = async {
        let position = snapshot
            .changes()
            .head()
            .await
            .map_err(store_err("reading the snapshot's feed head"))?;
        let header = BackupHeader {
            feed_position: position.0,
            backend: snapshot.capabilities().backend.to_string(),
            taken: Utc::now(),
        };
        let mut line = serde_json::to_vec(&HeaderLine {
            backup: header.clone(),
        })
        .map_err(|e| TransferError::Malformed {
            line: 1,
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        out.write_all(&line).map_err(|source| TransferError::Io {
            context: "writing the backup".into(),
            source,
        })?;
        let mut stats = export(&*snapshot, out, progress).await?;
        stats.bytes += line.len() as u64;
        Ok((header, stats))
    }
    .await;
    // The snapshot holds a read transaction until it is closed.
    let closed = snapshot
        .close()
        .await
        .map_err(store_err("closing the snapshot"));
    let written = written?;
    closed?;
    Ok(written)
}

/// Makes `dest` ready for a backup that reflects feed `position`: refuses
/// a destination holding any item (unless `allow_non_empty`), then makes
/// its feed continue after `position` ([`Datastore::start_feed_after`]),
/// so a subscriber holding an older cursor gets `CursorExpired` rather
/// than a gap, and every record written next is a change after it. Write
/// the backup's items next ([`import`](super::import) or
/// [`copy`](super::copy)). Returns the destination's head.
pub async fn start_restore(
    dest: &dyn Datastore,
    position: FeedCursor,
    allow_non_empty: bool,
) -> Result<FeedCursor, TransferError> {
    let items = count_items(dest).await?;
    if items > 0 && !allow_non_empty {
        return Err(TransferError::NotEmpty { items });
    }
    dest.start_feed_after(position).await.map_err(store_err(
        "moving the destination's feed after the backup's position",
    ))
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    /// Items read (records of every kind and log entries).
    pub items: u64,
    /// The feed head.
    pub head: FeedCursor,
    /// Changes the feed retains.
    pub changes: u64,
    /// What is wrong, a sentence each (the first 100).
    pub problems: Vec<String>,
    /// How many problems there were in all.
    pub problems_total: u64,
}

impl Verified {
    fn problem(&mut self, text: String) {
        self.problems_total += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }
}

fn key_hash(kind: Kind, key: &str) -> (Kind, u64) {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (kind, h.finish())
}

/// Checks a store's own data, reading everything and writing nothing:
/// every record and log entry decodes and is valid; no revision is beyond
/// the feed head; the feed's retained changes are in order and not beyond
/// the head, and for every record written within them the newest change
/// names the revision it holds (and no retained put names a record that is
/// missing); each kind's count agrees with its records; every log runs
/// from entry 0 without a gap. For a backup or a store no one writes:
/// writes made while it reads show as problems. `progress` gets the items
/// read so far.
pub async fn verify(
    ds: &dyn Datastore,
    mut progress: impl FnMut(u64),
) -> Result<Verified, TransferError> {
    let mut found = Verified {
        head: ds
            .changes()
            .head()
            .await
            .map_err(store_err("reading the feed head"))?,
        ..Verified::default()
    };
    let head = found.head.0;

    // The retained feed: the newest change of each record.
    let start = match ds.changes().since(FeedCursor::START, 1).await {
        Ok(_) => 0,
        Err(Error::CursorExpired {
            compacted_through, ..
        }) => compacted_through,
        Err(e) => return Err(store_err("reading the feed")(e)),
    };
    let mut newest: HashMap<(Kind, u64), (u64, ChangeOp, Revision, String)> = HashMap::new();
    let mut cursor = FeedCursor(start);
    loop {
        let page = ds
            .changes()
            .since(cursor, datastore_core::MAX_PAGE_LIMIT)
            .await
            .map_err(store_err("reading the feed"))?;
        if page.is_empty() {
            break;
        }
        for change in page {
            found.changes += 1;
            if change.seq <= cursor.0 {
                found.problem(format!(
                    "the feed holds change {} after change {}: out of order",
                    change.seq, cursor.0
                ));
            }
            if change.seq > head {
                found.problem(format!(
                    "the feed holds change {} beyond its head {head}",
                    change.seq
                ));
            }
            cursor = FeedCursor(change.seq);
            if change.kind != Kind::Log {
                newest.insert(
                    key_hash(change.kind, &change.id),
                    (change.seq, change.op, change.revision, change.id),
                );
            }
        }
    }

    // Every item.
    let mut listed: HashMap<Kind, u64> = HashMap::new();
    let mut log: Option<(LogId, u64)> = None;
    for_each_versioned(ds, async |item, revision| {
        found.items += 1;
        *listed.entry(item.kind()).or_default() += 1;
        let what = item.describe();
        if let Err(reason) = item.validate() {
            found.problem(format!("{what} is not valid: {reason}"));
        }
        if revision.get() > head {
            found.problem(format!(
                "{what} has revision {} beyond the feed head {head}",
                revision.get()
            ));
        }
        match &item {
            Item::LogEntry(entry) => {
                let expected = match &log {
                    Some((id, len)) if *id == entry.log_id => *len,
                    _ => 0,
                };
                if entry.seq != expected {
                    found.problem(format!(
                        "{what}: entry {} where entry {expected} belongs (a gap in the log)",
                        entry.seq
                    ));
                }
                log = Some((entry.log_id.clone(), entry.seq + 1));
            }
            Item::Record(_) if revision.get() > start => {
                match newest.remove(&key_hash(item.kind(), &item.key())) {
                    Some((_, ChangeOp::Put, named, _)) if named == revision => {}
                    Some((seq, op, named, _)) => found.problem(format!(
                        "{what} holds revision {}, but its newest change ({seq}, a {}) names revision {}",
                        revision.get(),
                        if op == ChangeOp::Put { "put" } else { "delete" },
                        named.get()
                    )),
                    None => found.problem(format!(
                        "{what} holds revision {}, which no change in the feed names",
                        revision.get()
                    )),
                }
            }
            Item::Record(_) => {}
        }
        progress(found.items);
        Ok(())
    })
    .await?;
    let mut missing: Vec<_> = newest
        .into_iter()
        .filter(|(_, (_, op, ..))| *op == ChangeOp::Put)
        .map(|((kind, _), (seq, _, _, id))| (seq, kind, id))
        .collect();
    missing.sort();
    for (seq, kind, id) in missing {
        found.problem(format!(
            "change {seq} wrote {} {id:?}, which the store does not hold",
            kind.noun()
        ));
    }

    for kind in Kind::ALL {
        let counted = ds
            .count(kind)
            .await
            .map_err(store_err(&format!("counting {}", kind.as_str())))?;
        let read = listed.get(&kind).copied().unwrap_or(0);
        if counted != read {
            found.problem(format!(
                "{}: the count says {counted}, but {read} were read",
                kind.as_str()
            ));
        }
    }
    Ok(found)
}
