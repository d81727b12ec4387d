//! The contract a backend implements: keyed records with index entries,
//! counters and the feed, committed atomically. [`crate::EngineStore`]
//! builds every typed substore, batches and subscriptions on top of it, so a
//! backend writes storage once for every kind.
//!
//! # Commit semantics
//!
//! [`Engine::commit`] applies its mutations in order, each seeing the ones
//! before it, and either all of them or none (feed included). For each:
//!
//! - `Put` / `Delete` check the precondition against the current record:
//!   `MustNotExist` on an existing key gives `AlreadyExists`, `MustExist` on a
//!   missing one `NotFound`, `MustBeAt(r)` on another revision (or a missing
//!   key) `Conflict` with the revision found; a `Delete` of a missing key is
//!   `NotFound`. A put then replaces the record and its index entries; a
//!   unique index entry held by another key gives `AlreadyExists` with the key
//!   `index=value,...`.
//! - `Require` checks a precondition and writes nothing.
//! - `RaiseCounter` sets a counter to `max(current, to)`.
//!
//! Every put and delete appends one [`Change`] with the next sequence number;
//! the revision of the written key must be greater than every earlier
//! revision of that key (using the change's sequence number does that).
//! Changes are published to [`Engine::live`] receivers in sequence order,
//! after the commit is durable.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::actor::Actor;
use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::feed::{Change, ChangeOp, Compaction, FeedFilter, LiveReceiver, Retention};
use crate::history::{HistoryRetention, StoredVersion};
use crate::query::{Direction, Position};
use crate::record::{IndexValue, Kind};
use crate::revision::{Precondition, Revision};

/// A record as a backend stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its key.
    pub key: String,
    /// The record, JSON-encoded.
    pub body: Vec<u8>,
    /// Its revision.
    pub revision: Revision,
    /// When the key was first written.
    pub created: DateTime<Utc>,
    /// When it was last written.
    pub updated: DateTime<Utc>,
    /// Who made the last write, when it named someone.
    pub actor: Option<Actor>,
}

impl StoredRecord {
    /// The record borrowed, as [`Engine::get_now`] hands it over.
    pub fn as_ref(&self) -> StoredRef<'_> {
        StoredRef {
            key: &self.key,
            body: &self.body,
            revision: self.revision,
            created: self.created,
            updated: self.updated,
            actor: self.actor.as_ref(),
        }
    }
}

/// A record as a backend holds it, borrowed from the engine: what
/// [`Engine::get_now`] hands its reader, without the body copied out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRef<'a> {
    /// Its key.
    pub key: &'a str,
    /// The record, JSON-encoded.
    pub body: &'a [u8],
    /// Its revision.
    pub revision: Revision,
    /// When the key was first written.
    pub created: DateTime<Utc>,
    /// When it was last written.
    pub updated: DateTime<Utc>,
    /// Who made the last write, when it named someone.
    pub actor: Option<&'a Actor>,
}

impl StoredRef<'_> {
    /// The record copied out of the engine.
    pub fn to_record(&self) -> StoredRecord {
        StoredRecord {
            key: self.key.to_owned(),
            body: self.body.to_vec(),
            revision: self.revision,
            created: self.created,
            updated: self.updated,
            actor: self.actor.cloned(),
        }
    }
}

/// One index entry a record declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index name (see `Kind::indexes`).
    pub index: &'static str,
    /// The values of its fields.
    pub values: Vec<IndexValue>,
    /// True for a unique index.
    pub unique: bool,
}

/// One step of an atomic commit. Each variant holds its own struct, so an
/// engine applies a commit as one `match` that hands each step to one
/// function per variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// Create or replace a record with these index entries.
    Put(PutRecord),
    /// Delete a record and its index entries.
    Delete(DeleteRecord),
    /// Fail the commit unless the precondition holds; writes nothing.
    Require(Requirement),
    /// Raise a named counter to at least `to`.
    RaiseCounter(CounterRaise),
}

/// Create or replace a record (see [`Mutation::Put`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PutRecord {
    /// The kind.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// The JSON-encoded record.
    pub body: Vec<u8>,
    /// Its index entries (replacing the old record's).
    pub index: Vec<IndexEntry>,
    /// What the put requires.
    pub precondition: Precondition,
    /// The key of the record this one belongs to, for the feed entry.
    pub parent: Option<String>,
    /// Who makes the write (kept with the record, its version and its
    /// feed entry).
    pub actor: Option<Actor>,
    /// Write a version of the record to its history in the same commit.
    pub history: bool,
}

/// Delete a record (see [`Mutation::Delete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRecord {
    /// The kind.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// What the delete requires.
    pub precondition: Precondition,
    /// Who makes the delete.
    pub actor: Option<Actor>,
    /// Write the delete to the record's history in the same commit.
    pub history: bool,
}

/// A check that writes nothing (see [`Mutation::Require`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The kind.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// What must hold.
    pub precondition: Precondition,
    /// The [`Engine::read_mark`] taken before the caller read the record
    /// and saw the precondition hold: an engine whose mark has not moved
    /// since (and which holds no write to the key earlier in the commit or
    /// its group) may trust it instead of reading the record again.
    pub seen_at: Option<ReadMark>,
}

/// Raise a counter (see [`Mutation::RaiseCounter`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterRaise {
    /// The counter.
    pub name: String,
    /// Its new minimum.
    pub to: u64,
    /// The [`Engine::read_mark`] taken before the caller read the counter
    /// below `to`: an engine whose mark has not moved since (and which holds
    /// no raise of it earlier in the commit or its group) may write `to`
    /// without reading the counter again.
    pub seen_at: Option<ReadMark>,
}

/// A mark of an engine's writes (see [`Engine::read_mark`]): two equal
/// marks mean nothing was written between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadMark(pub u64);

impl Requirement {
    /// Checks the requirement against the revision found at the key.
    pub fn check(&self, found: Option<Revision>) -> Result<()> {
        check_precondition(self.kind, &self.key, self.precondition, found, false)
    }
}

impl Mutation {
    /// A delete (by no one in particular, with no version written).
    pub fn delete(kind: Kind, key: impl Into<String>, precondition: Precondition) -> Self {
        Mutation::Delete(DeleteRecord {
            kind,
            key: key.into(),
            precondition,
            actor: None,
            history: false,
        })
    }

    /// A check that writes nothing.
    pub fn require(kind: Kind, key: impl Into<String>, precondition: Precondition) -> Self {
        Mutation::Require(Requirement {
            kind,
            key: key.into(),
            precondition,
            seen_at: None,
        })
    }

    /// Raise counter `name` to at least `to`.
    pub fn raise_counter(name: impl Into<String>, to: u64) -> Self {
        Mutation::RaiseCounter(CounterRaise {
            name: name.into(),
            to,
            seen_at: None,
        })
    }
}

/// The outcome of one put or delete of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The kind.
    pub kind: Kind,
    /// The key.
    pub key: String,
    /// Put or delete.
    pub op: ChangeOp,
    /// The new revision.
    pub revision: Revision,
    /// When the key was first written.
    pub created: DateTime<Utc>,
    /// This write's time.
    pub updated: DateTime<Utc>,
    /// The parent named in the feed entry.
    pub parent: Option<String>,
    /// Who made the write.
    pub actor: Option<Actor>,
}

impl Committed {
    /// The outcome of a put.
    pub fn put(
        put: &PutRecord,
        revision: Revision,
        created: DateTime<Utc>,
        updated: DateTime<Utc>,
    ) -> Self {
        Committed {
            kind: put.kind,
            key: put.key.clone(),
            op: ChangeOp::Put,
            revision,
            created,
            updated,
            parent: put.parent.clone(),
            actor: put.actor.clone(),
        }
    }

    /// The outcome of a delete; `parent` is the deleted record's (see
    /// [`Kind::parent_of`]), so followers of the parent see the child go.
    pub fn delete(
        delete: &DeleteRecord,
        revision: Revision,
        created: DateTime<Utc>,
        updated: DateTime<Utc>,
        parent: Option<String>,
    ) -> Self {
        Committed {
            kind: delete.kind,
            key: delete.key.clone(),
            op: ChangeOp::Delete,
            revision,
            created,
            updated,
            parent,
            actor: delete.actor.clone(),
        }
    }

    /// The feed entry of this write: its sequence number is its revision,
    /// its time the write's.
    pub fn change(&self) -> Change {
        Change {
            seq: self.revision.get(),
            kind: self.kind,
            id: self.key.clone(),
            op: self.op,
            revision: self.revision,
            at: self.updated,
            parent: self.parent.clone(),
            actor: self.actor.clone(),
        }
    }
}

/// A range read of one kind, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The index, or `None` for key order.
    pub index: Option<&'static str>,
    /// Values the leading index fields must equal.
    pub prefix: Vec<IndexValue>,
    /// Start strictly after this entry (in `direction`).
    pub after: Option<Position>,
    /// Ascending or descending over (index values, key).
    pub direction: Direction,
    /// At most this many records.
    pub limit: usize,
}

/// A range read of one record's history, by revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionScan {
    /// Start strictly after this revision (in `direction`).
    pub after: Option<Revision>,
    /// `Desc` for newest first.
    pub direction: Direction,
    /// At most this many versions.
    pub limit: usize,
}

/// [`Engine::get`] answered through [`Engine::get_each`], each lent record
/// copied out: for an engine whose `get_each` is its own read.
pub async fn get_through_each<E: Engine + ?Sized>(
    engine: &E,
    kind: Kind,
    keys: &[String],
) -> Result<Vec<Option<StoredRecord>>> {
    let mut found: Vec<Option<StoredRecord>> =
        std::iter::repeat_with(|| None).take(keys.len()).collect();
    engine
        .get_each(kind, keys, &mut |at, stored| {
            found[at] = Some(stored.to_record());
            Ok(())
        })
        .await?;
    Ok(found)
}

/// Storage for records, index entries, counters and the feed.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The records at these keys, in the same order; `None` for a missing key.
    async fn get(&self, kind: Kind, keys: &[String]) -> Result<Vec<Option<StoredRecord>>>;

    /// Reads one record without waiting, where this engine's reads never
    /// wait (an embedded engine): hands it to `read` borrowed from the
    /// engine, nothing copied out, and returns whether the key was there.
    /// `None` (the default) where a read waits on a server; the caller
    /// then uses [`Engine::get`]. An error from `read` is returned as is.
    fn get_now(
        &self,
        kind: Kind,
        key: &str,
        read: &mut dyn FnMut(StoredRef<'_>) -> Result<()>,
    ) -> Option<Result<bool>> {
        let _ = (kind, key, read);
        None
    }

    /// The records of [`Engine::get`], each handed to `read` with its
    /// key's position in `keys`, borrowed from the engine instead of
    /// copied out into a [`StoredRecord`]; a missing key is not handed.
    /// The default runs `get` and lends each record. An error from `read`
    /// stops the reads and is returned as is.
    async fn get_each(
        &self,
        kind: Kind,
        keys: &[String],
        read: &mut (dyn for<'r> FnMut(usize, StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        for (at, record) in self.get(kind, keys).await?.into_iter().enumerate() {
            if let Some(record) = record {
                read(at, record.as_ref())?;
            }
        }
        Ok(())
    }

    /// A record, lent to `read` if it is there, and a counter's value,
    /// read together (a run create reads its workflow and the workflow's
    /// run count): one statement where a server engine can, one round
    /// trip's wait instead of two. The default reads the record with
    /// [`Engine::get_now`] where the engine has it, else side by side
    /// with the counter.
    async fn get_with_counter(
        &self,
        kind: Kind,
        key: &str,
        counter: &str,
        read: &mut (dyn for<'r> FnMut(StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<u64> {
        if let Some(found) = self.get_now(kind, key, &mut |stored| read(stored)) {
            found?;
            return self.counter(counter).await;
        }
        let keys = [key.to_owned()];
        let mut lend = |_, stored: StoredRef<'_>| read(stored);
        let (found, count) =
            futures::join!(self.get_each(kind, &keys, &mut lend), self.counter(counter));
        found?;
        count
    }

    /// The records of a range of an index (or the key order).
    async fn scan(&self, kind: Kind, scan: &Scan) -> Result<Vec<StoredRecord>>;

    /// The records of [`Engine::scan`], in order, each handed to `read`
    /// borrowed from the engine's own buffers instead of copied out into a
    /// [`StoredRecord`] (a page's bodies are decoded straight from the
    /// rows a server sent). The default runs `scan` and lends each record.
    /// An error from `read` stops the scan and is returned as is.
    async fn scan_each(
        &self,
        kind: Kind,
        scan: &Scan,
        read: &mut (dyn for<'r> FnMut(StoredRef<'r>) -> Result<()> + Send),
    ) -> Result<()> {
        for record in self.scan(kind, scan).await? {
            read(record.as_ref())?;
        }
        Ok(())
    }

    /// How many entries of an index start with `prefix`.
    async fn count(&self, kind: Kind, index: &'static str, prefix: &[IndexValue]) -> Result<u64>;

    /// Versions of one record from its history, in revision order
    /// (`scan.direction`); versions are written by puts and deletes with
    /// `history` set, in the same commit.
    async fn history(
        &self,
        kind: Kind,
        key: &str,
        scan: &VersionScan,
    ) -> Result<Vec<StoredVersion>>;

    /// Removes versions of `kind` outside `retention` (per record: beyond
    /// the newest `max_versions`, older than `max_age`); returns how many.
    async fn compact_history(&self, kind: Kind, retention: &HistoryRetention) -> Result<u64>;

    /// A counter's value (0 when never raised).
    async fn counter(&self, name: &str) -> Result<u64>;

    /// A mark of this engine's writes so far, taken before a read: a
    /// [`Requirement`] or [`CounterRaise`] carrying it lets the commit skip
    /// its re-read when the engine's mark has not moved since. `None` (the
    /// default) where the engine keeps no such mark; commits then read.
    fn read_mark(&self) -> Option<ReadMark> {
        None
    }

    /// Applies mutations atomically (see the module docs); one [`Committed`]
    /// per put and delete, in order.
    async fn commit(&self, mutations: Vec<Mutation>) -> Result<Vec<Committed>>;

    /// Up to `limit` changes with a sequence number above `after` that match
    /// `filter` (already validated), in order; `CursorExpired` when changes
    /// after `after` were compacted away.
    async fn changes_since(
        &self,
        after: u64,
        limit: usize,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>>;

    /// The newest sequence number (0 when there is none).
    async fn head(&self) -> Result<u64>;

    /// Removes changes outside the retention window.
    async fn compact(&self, retention: &Retention) -> Result<Compaction>;

    /// A receiver of the changes matching `filter` committed from now on,
    /// in sequence order (see [`crate::LiveChanges`]).
    fn live(&self, filter: FeedFilter) -> LiveReceiver;

    /// The configured feed retention.
    fn retention(&self) -> Retention;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Writes a consistent copy of the store to `dest` (which must not
    /// exist) while it stays live, and returns the feed position the copy
    /// reflects (see `Datastore::backup`). By default `Unsupported`.
    async fn backup(&self, dest: &std::path::Path) -> Result<u64> {
        Err(Error::Unsupported {
            store: crate::error::StoreName::Datastore,
            key: dest.display().to_string(),
            operation: "a file backup (export the store instead)".into(),
        })
    }

    /// Makes the feed continue after `position` (see
    /// `Datastore::start_feed_after`): the head rises to it (never falls)
    /// and every change at or before it is dropped, as compaction drops
    /// them; returns the head. By default `Unsupported`.
    async fn start_feed_after(&self, position: u64) -> Result<u64> {
        Err(Error::Unsupported {
            store: crate::error::StoreName::Changes,
            key: position.to_string(),
            operation: "moving the feed's start".into(),
        })
    }

    /// A read-only store over one moment of this one: every read sees the
    /// data as it was when the snapshot was taken, whatever is written
    /// since (see `Datastore::snapshot`). By default `Unsupported`.
    async fn snapshot(&self) -> Result<std::sync::Arc<dyn crate::Datastore>> {
        Err(Error::Unsupported {
            store: crate::error::StoreName::Datastore,
            key: String::new(),
            operation: "a snapshot (a consistent read view)".into(),
        })
    }

    /// Whether it can serve now (see `Datastore::ready`): by default, that
    /// it answers [`Engine::head`].
    async fn ready(&self) -> Result<()> {
        self.head().await.map(|_| ())
    }

    /// Flushes and releases resources; live receivers end.
    async fn close(&self) -> Result<()>;
}

/// Checks a precondition against the revision found at a key (`None` when
/// missing), giving the errors the commit contract names. `deleting` makes a
/// missing key an error under `Any` too.
pub fn check_precondition(
    kind: Kind,
    key: &str,
    precondition: Precondition,
    found: Option<Revision>,
    deleting: bool,
) -> Result<()> {
    let store = kind.store();
    match (precondition, found) {
        (Precondition::Any, None) if deleting => Err(Error::not_found(store, key)),
        (Precondition::Any, _) => Ok(()),
        (Precondition::MustNotExist, Some(_)) => Err(Error::AlreadyExists {
            store,
            key: key.to_string(),
        }),
        (Precondition::MustNotExist, None) => Ok(()),
        (Precondition::MustExist, None) => Err(Error::not_found(store, key)),
        (Precondition::MustExist, Some(_)) => Ok(()),
        (Precondition::MustBeAt(want), found) if found == Some(want) => Ok(()),
        (Precondition::MustBeAt(_), found) => Err(Error::Conflict {
            store,
            key: key.to_string(),
            expected: precondition,
            found,
        }),
    }
}

/// The error for a unique index entry already held by another key:
/// `AlreadyExists` with the key `index=value,...`.
pub fn unique_violation(kind: Kind, entry: &IndexEntry) -> Error {
    let values: Vec<String> = entry.values.iter().map(|v| v.to_string()).collect();
    Error::AlreadyExists {
        store: kind.store(),
        key: format!("{}={}", entry.index, values.join(",")),
    }
}

/// The current time as engines stamp writes: UTC, truncated to whole
/// microseconds, the precision every backend stores, so a write's returned
/// times equal those read back later.
pub fn commit_time() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
