//! The schema version in the meta family, migrations between versions, and
//! index rebuilds when the code's index definitions change.
//!
//! Version history:
//!
//! - **1**: records, indexes, feed and meta families as in [`crate::layout`].
//! - **2**: the meta family records a fingerprint of the index definitions
//!   the indexes were built with (`index_fingerprint`); migrating from 1
//!   rebuilds every index from the record bodies and records it.
//! - **3**: the `history` family holds record versions, and record
//!   envelopes name their last writer; migrating from 2 starts each
//!   record's history at the version it has (envelopes of version 1 read
//!   on as "no actor").
//!
//! A database with a version newer than [`CURRENT`] is refused: this build
//! cannot know what a newer one wrote. Whenever the stored fingerprint differs
//! from the code's (an index was added, removed or redefined), every index is
//! rebuilt at open.

use datastore_core::{Error, Kind, Result, StoreName};
use rocksdb::{DB, WriteBatch, WriteOptions};

use crate::engine::db_error;
use crate::layout::{self, Envelope, Header};

/// The schema version this build writes.
pub const CURRENT: u32 = 3;

/// One step of the migration chain.
pub struct Migration {
    /// The version it migrates from.
    pub from: u32,
    /// What it does.
    pub description: &'static str,
    /// The work.
    pub apply: fn(&DB, &str) -> Result<()>,
}

/// Every step, in order; step `n` takes version `from` to `from + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        description: "rebuild every index from record bodies and record the index fingerprint",
        apply: |db, path| reindex(db, path).map(|_| ()),
    },
    Migration {
        from: 2,
        description: "start each record's history at the version it has now",
        apply: |db, path| start_history(db, path).map(|_| ()),
    },
];

/// Writes each record of a kind with history as its first version (see
/// schema version 3). Safe to interrupt: it writes the same versions again
/// at the next open, and the version is stamped only after it finishes.
pub fn start_history(db: &DB, path: &str) -> Result<u64> {
    let records = db.cf_handle(layout::RECORDS).expect("records family");
    let history = db.cf_handle(layout::HISTORY).expect("history family");
    let err = |e| db_error(StoreName::Datastore, path, e);
    let mut batch = WriteBatch::default();
    let mut count = 0u64;
    let mut it = db.raw_iterator_cf(records);
    it.seek_to_first();
    while it.valid() {
        let raw = it.key().unwrap_or_default();
        if let Some(kind) =
            layout::tag_kind(raw[0]).filter(|k| datastore_core::HistoryPolicy::keeps_history(*k))
        {
            let key = String::from_utf8_lossy(&raw[1..]).into_owned();
            let (header, body) =
                Envelope::decode(it.value().unwrap_or_default()).map_err(|reason| {
                    Error::Corrupt {
                        store: kind.store(),
                        key: key.clone(),
                        reason,
                    }
                })?;
            batch.put_cf(
                history,
                layout::history_key(kind, &key, header.revision),
                layout::VersionValue::encode(
                    false,
                    header.updated,
                    header.actor.as_deref(),
                    Some(body),
                ),
            );
            count += 1;
            if batch.len() > 10_000 {
                db.write_opt(std::mem::take(&mut batch), &sync())
                    .map_err(err)?;
            }
        }
        it.next();
    }
    it.status().map_err(err)?;
    db.write_opt(batch, &sync()).map_err(err)?;
    Ok(count)
}

fn meta(db: &DB) -> &rocksdb::ColumnFamily {
    db.cf_handle(layout::META).expect("meta family")
}

fn sync() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

/// Reads the stored schema version (`None` for a database never stamped).
pub fn stored_version(db: &DB, path: &str) -> Result<Option<u32>> {
    let v = db
        .get_cf(meta(db), layout::SCHEMA_VERSION)
        .map_err(|e| db_error(StoreName::Datastore, path, e))?;
    match v {
        None => Ok(None),
        Some(bytes) => match <[u8; 4]>::try_from(bytes.as_slice()) {
            Ok(b) => Ok(Some(u32::from_be_bytes(b))),
            Err(_) => Err(Error::Corrupt {
                store: StoreName::Datastore,
                key: path.to_string(),
                reason: format!("schema version is {} bytes, not 4", bytes.len()),
            }),
        },
    }
}

fn stamp(db: &DB, path: &str, version: u32) -> Result<()> {
    let mut batch = WriteBatch::default();
    batch.put_cf(meta(db), layout::SCHEMA_VERSION, version.to_be_bytes());
    if version >= 2 {
        batch.put_cf(
            meta(db),
            layout::INDEX_FINGERPRINT,
            Kind::index_fingerprint(),
        );
    }
    db.write_opt(batch, &sync())
        .map_err(|e| db_error(StoreName::Datastore, path, e))
}

fn is_empty(db: &DB, family: &str) -> bool {
    // A family an older database lacks (opened read-only) holds nothing.
    let Some(cf) = db.cf_handle(family) else {
        return true;
    };
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_first();
    !it.valid()
}

/// What [`prepare`] would do to a database, read without writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The stored schema version (`None`: a new, empty database).
    pub found: Option<u32>,
    /// The migration steps it would run, in order.
    pub steps: Vec<&'static str>,
    /// Whether every index would be rebuilt (the index definitions changed).
    pub reindex: bool,
}

impl Plan {
    /// True when opening would change nothing.
    pub fn is_current(&self) -> bool {
        self.found == Some(CURRENT) && self.steps.is_empty() && !self.reindex
    }

    /// What would be done, one line per step.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.found {
            None => out.push(format!(
                "stamp a new database with schema version {CURRENT}"
            )),
            Some(v) => {
                for (i, step) in self.steps.iter().enumerate() {
                    out.push(format!(
                        "schema version {} to {}: {step}",
                        v + i as u32,
                        v + i as u32 + 1
                    ));
                }
            }
        }
        if self.reindex && self.steps.is_empty() {
            out.push("rebuild every index (the index definitions changed)".into());
        }
        out
    }
}

/// What [`prepare`] would do, read without writing anything. A database
/// of a newer version, or holding data without a version, is an error as
/// in [`prepare`].
pub fn plan(db: &DB, path: &str) -> Result<Plan> {
    let Some(found) = found_version(db, path)? else {
        return Ok(Plan {
            found: None,
            steps: Vec::new(),
            reindex: false,
        });
    };
    let steps: Vec<&'static str> = MIGRATIONS
        .iter()
        .filter(|m| m.from >= found)
        .map(|m| m.description)
        .collect();
    let fingerprint = db
        .get_cf(meta(db), layout::INDEX_FINGERPRINT)
        .map_err(|e| db_error(StoreName::Datastore, path, e))?;
    let reindex =
        !steps.is_empty() || fingerprint.as_deref() != Some(Kind::index_fingerprint().as_bytes());
    Ok(Plan {
        found: Some(found),
        steps,
        reindex,
    })
}

/// The schema version of an opened database: `None` for a new (empty)
/// one; an error for one holding data without a version, or of a version
/// newer than this build's.
fn found_version(db: &DB, path: &str) -> Result<Option<u32>> {
    match stored_version(db, path)? {
        Some(v) if v > CURRENT => Err(newer(path, v)),
        Some(v) => Ok(Some(v)),
        None if layout::FAMILIES.iter().all(|f| is_empty(db, f)) => Ok(None),
        None => Err(Error::Corrupt {
            store: StoreName::Datastore,
            key: path.to_string(),
            reason: "the database holds data but no schema version".into(),
        }),
    }
}

fn newer(path: &str, found: u32) -> Error {
    Error::Unsupported {
        store: StoreName::Datastore,
        key: path.to_string(),
        operation: format!(
            "opening a database of schema version {found}: it was written by a newer \
             version of datastore-rocks; this build reads versions up to {CURRENT}"
        ),
    }
}

/// Brings an opened database to [`CURRENT`]: stamps a new one, refuses a
/// newer one, runs the migration chain from an older one, and rebuilds
/// indexes whose definitions changed. Returns the version found at open.
pub fn prepare(db: &DB, path: &str) -> Result<u32> {
    let Some(found) = found_version(db, path)? else {
        stamp(db, path, CURRENT)?;
        return Ok(CURRENT);
    };
    if found == 0 {
        return Err(Error::Corrupt {
            store: StoreName::Datastore,
            key: path.to_string(),
            reason: "schema version 0 does not exist".into(),
        });
    }
    for step in MIGRATIONS.iter().filter(|m| m.from >= found) {
        (step.apply)(db, path)?;
        stamp(db, path, step.from + 1)?;
    }
    let fingerprint = db
        .get_cf(meta(db), layout::INDEX_FINGERPRINT)
        .map_err(|e| db_error(StoreName::Datastore, path, e))?;
    if fingerprint.as_deref() != Some(Kind::index_fingerprint().as_bytes()) {
        reindex(db, path)?;
        stamp(db, path, CURRENT)?;
    }
    Ok(found)
}

/// Rebuilds every index entry from the record bodies, rewriting each
/// record's header with the keys it now owns. Returns the records indexed.
/// Safe to interrupt: the fingerprint is written only after it finishes,
/// so an interrupted rebuild runs again at the next open.
pub fn reindex(db: &DB, path: &str) -> Result<u64> {
    let records = db.cf_handle(layout::RECORDS).expect("records family");
    let indexes = db.cf_handle(layout::INDEXES).expect("indexes family");
    let err = |e| db_error(StoreName::Datastore, path, e);
    let mut clear = WriteBatch::default();
    clear.delete_range_cf(indexes, [0u8].as_slice(), [0xFFu8; 4].as_slice());
    db.write_opt(clear, &sync()).map_err(err)?;
    let mut claims: std::collections::HashMap<Vec<u8>, Vec<u8>> = std::collections::HashMap::new();
    let mut batch = WriteBatch::default();
    let mut count = 0u64;
    let mut it = db.raw_iterator_cf(records);
    it.seek_to_first();
    while it.valid() {
        let raw = it.key().unwrap_or_default().to_vec();
        let value = it.value().unwrap_or_default();
        let kind = layout::tag_kind(raw[0]).ok_or_else(|| Error::Corrupt {
            store: StoreName::Datastore,
            key: String::from_utf8_lossy(&raw).into_owned(),
            reason: format!("unknown kind tag {}", raw[0]),
        })?;
        let key = String::from_utf8_lossy(&raw[1..]).into_owned();
        let (header, body) = Envelope::decode(value).map_err(|reason| Error::Corrupt {
            store: kind.store(),
            key: key.clone(),
            reason,
        })?;
        let entries = kind.index_entries(body).map_err(|e| Error::Corrupt {
            store: kind.store(),
            key: key.clone(),
            reason: e.to_string(),
        })?;
        for e in entries.iter().filter(|e| e.unique) {
            let ukey = layout::unique_key(kind, e.index, &e.values);
            if let Some(holder) = claims.insert(ukey, key.as_bytes().to_vec()) {
                return Err(Error::Corrupt {
                    store: kind.store(),
                    key: key.clone(),
                    reason: format!(
                        "rebuilding unique index {} found {:?} and {key:?} with equal values",
                        e.index,
                        String::from_utf8_lossy(&holder)
                    ),
                });
            }
        }
        let index_keys = layout::owned_index_keys(kind, &key, &entries);
        for k in &index_keys {
            batch.put_cf(indexes, k, key.as_bytes());
        }
        let header = Header {
            index_keys,
            ..header
        };
        batch.put_cf(records, &raw, Envelope::encode(&header, body));
        count += 1;
        if batch.len() > 10_000 {
            db.write_opt(std::mem::take(&mut batch), &sync())
                .map_err(err)?;
        }
        it.next();
    }
    it.status().map_err(err)?;
    db.write_opt(batch, &sync()).map_err(err)?;
    Ok(count)
}
