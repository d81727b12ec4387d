//! [`EngineStore`]: the typed substores, batches and the feed, built once
//! over any [`Engine`]. Backends construct it around their engine.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::batch::{AnyRecord, Batch, BatchOp};
use crate::capabilities::Capabilities;
use crate::engine::{Committed, Engine, Mutation, Scan, StoredRecord};
use crate::error::{Error, FieldError, Result, StoreName};
use crate::feed::{
    Change, ChangeFeed, ChangeStream, Compaction, FeedCursor, MAX_FEED_LIMIT, Retention,
};
use crate::ids::{InitId, LogEntryKey, LogId, ProfileId, RecordId, RunId, WorkflowId};
use crate::query::{
    Direction, Page, PageRequest, Position, Query, check_limit, decode_cursor, encode_cursor,
    query_fingerprint,
};
use crate::record::{Editable, IndexValue, Kind, Record, Reference};
use crate::records::{
    CollectionEntry, CollectionFilter, CollectionOrder, CollectionPatch, Key, KeyFilter, LogEntry,
    LogOp, Profile, Run, RunEvent, RunFilter, RunStatus, Workflow, WorkflowFilter,
};
use crate::revision::{Precondition, Revision, Versioned};
use crate::stores::{
    CollectionStore, Datastore, KeyStore, LogStore, ProfileStore, RecordStore, Renamed, RunStore,
    WorkflowStore,
};

/// The most ids one `get_many` takes.
pub const MAX_GET_MANY: usize = 1000;
/// The most ops one log append takes.
pub const MAX_APPEND_OPS: usize = 1000;
/// How often a store-internal read-modify-write (run numbers, run events,
/// collection patches, log removal) retries after losing a race.
const RMW_ATTEMPTS: usize = 1000;

/// A [`Datastore`] over an [`Engine`]: validation, index entries, cursors,
/// run numbers, log appends, batches and subscriptions, the same for every
/// backend.
pub struct EngineStore<E: Engine> {
    engine: Arc<E>,
}

impl<E: Engine> std::fmt::Debug for EngineStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineStore")
            .field("backend", &self.engine.capabilities().backend)
            .finish()
    }
}

/// A put ready to commit: its key and mutations, plus the references the
/// commit checks (to turn a missing reference into an `Invalid` error).
struct PreparedPut {
    key: String,
    mutations: Vec<Mutation>,
    references: Vec<Reference>,
}

/// A batch ready to commit.
struct PreparedBatch {
    mutations: Vec<Mutation>,
    references: Vec<(StoreName, String, Reference)>,
    /// How many committed writes each op produces, to find its revision.
    writes_per_op: Vec<usize>,
    /// Records whose precondition was strengthened by a fixed-field check.
    pinned: Vec<(Kind, String)>,
}

/// The precondition a put commits with after its fixed fields were checked.
struct Pinned {
    precondition: Precondition,
    /// True when it is stricter than the caller's, so losing a race against
    /// another write means checking again, not failing.
    strengthened: bool,
}

/// Sets the precondition of a prepared put (its first mutation).
fn set_precondition(m: &mut Mutation, to: Precondition) {
    if let Mutation::Put { precondition, .. } = m {
        *precondition = to;
    }
}

/// True when a commit failed on the precondition of this record.
fn lost_race(e: &Error, kind: Kind, key: &str) -> bool {
    match e {
        Error::Conflict { store, key: k, .. }
        | Error::AlreadyExists { store, key: k }
        | Error::NotFound { store, key: k } => *store == kind.store() && k == key,
        _ => false,
    }
}

/// `Invalid` naming the first fixed field a put would change.
fn check_fixed(
    kind: Kind,
    key: &str,
    stored: &[(&'static str, String)],
    wanted: &[(&'static str, String)],
) -> Result<()> {
    for ((field, old), (_, new)) in stored.iter().zip(wanted) {
        if old != new {
            return Err(Error::invalid(
                kind.store(),
                key,
                *field,
                format!(
                    "is fixed when the record is created: stored {old:?}, this put has {new:?}"
                ),
            ));
        }
    }
    Ok(())
}

impl<E: Engine> EngineStore<E> {
    /// Wraps an engine.
    pub fn new(engine: E) -> Self {
        EngineStore {
            engine: Arc::new(engine),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Boxes the store as a shared `dyn Datastore`.
    pub fn into_dyn(self) -> Arc<dyn Datastore> {
        Arc::new(self)
    }

    fn decode<R: Record>(stored: StoredRecord) -> Result<Versioned<R>> {
        let value: R = serde_json::from_slice(&stored.body).map_err(|e| Error::Corrupt {
            store: R::KIND.store(),
            key: stored.key.clone(),
            reason: e.to_string(),
        })?;
        Ok(Versioned {
            value,
            revision: stored.revision,
            created: stored.created,
            updated: stored.updated,
        })
    }

    fn check_id<R: Record>(id: &R::Id) -> Result<String> {
        let key = id.key();
        id.check("id")
            .map_err(|e| e.into_error(R::KIND.store(), key.clone()))?;
        Ok(key)
    }

    /// Validates a record and turns it into the mutations that store it.
    fn prepare_put<R: Record>(
        &self,
        record: &mut R,
        precondition: Precondition,
    ) -> Result<PreparedPut> {
        let store = R::KIND.store();
        if record.id_is_empty() {
            if matches!(
                precondition,
                Precondition::MustExist | Precondition::MustBeAt(_)
            ) {
                return Err(Error::invalid(
                    store,
                    "",
                    "id",
                    format!("must not be empty with precondition {precondition}"),
                ));
            }
            record.generate_id();
        }
        let key = record.id().key();
        if let Some(created) = record.created_mut()
            && *created == chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
        {
            *created = crate::engine::commit_time();
        }
        record
            .validate()
            .map_err(|e| e.into_error(store, key.clone()))?;
        let body = serde_json::to_vec(record)
            .map_err(|e| Error::invalid(store, &key, "record", e.to_string()))?;
        let max = self.engine.capabilities().max_record_bytes;
        if body.len() > max {
            return Err(Error::invalid(
                store,
                &key,
                "record",
                format!("encodes to {} bytes, over the {max}-byte limit", body.len()),
            ));
        }
        let index = crate::record::index_entries_of(record);
        let references = record.references();
        let mut mutations = vec![Mutation::Put {
            kind: R::KIND,
            key: key.clone(),
            body,
            index,
            precondition,
            parent: record.parent(),
        }];
        mutations.extend(references.iter().map(|r| Mutation::Require {
            kind: r.kind,
            key: r.key.clone(),
            precondition: Precondition::MustExist,
        }));
        mutations.extend(
            record
                .counters()
                .into_iter()
                .map(|(name, to)| Mutation::RaiseCounter { name, to }),
        );
        Ok(PreparedPut {
            key,
            mutations,
            references,
        })
    }

    /// Commits, turning a failed reference check into `Invalid` on the record.
    async fn commit(
        &self,
        mutations: Vec<Mutation>,
        references: &[(StoreName, String, Reference)],
    ) -> Result<Vec<Committed>> {
        self.engine.commit(mutations).await.map_err(|e| match &e {
            Error::NotFound { store, key } => references
                .iter()
                .find(|(_, _, r)| r.kind.store() == *store && &r.key == key)
                .map(|(owner, owner_key, r)| {
                    Error::invalid(
                        *owner,
                        owner_key.clone(),
                        r.field,
                        format!("no {} record with id {:?}", r.kind, r.key),
                    )
                })
                .unwrap_or(e),
            _ => e,
        })
    }

    /// A put from a caller: keeps the record's fixed fields (see
    /// [`EngineStore::pin_fixed`]), retrying when a concurrent write moved
    /// the record between the check and the commit.
    async fn put_record<R: Record>(
        &self,
        mut record: R,
        precondition: Precondition,
    ) -> Result<Versioned<R>> {
        let mut prepared = self.prepare_put(&mut record, precondition)?;
        let refs: Vec<_> = prepared
            .references
            .iter()
            .map(|r| (R::KIND.store(), prepared.key.clone(), r.clone()))
            .collect();
        for _ in 0..RMW_ATTEMPTS {
            let pinned = self.pin_fixed(&record, &prepared.key, precondition).await?;
            set_precondition(&mut prepared.mutations[0], pinned.precondition);
            match self.commit(prepared.mutations.clone(), &refs).await {
                Err(e) if pinned.strengthened && lost_race(&e, R::KIND, &prepared.key) => {
                    tokio::task::yield_now().await;
                }
                result => return Self::versioned(record, prepared.key, result?),
            }
        }
        Err(Error::Unavailable {
            store: R::KIND.store(),
            key: prepared.key,
            source: "too much contention writing the record".into(),
        })
    }

    /// A put of a record derived from the stored one (run numbers, events,
    /// patches): its fixed fields are the stored ones by construction.
    async fn write_derived<R: Record>(
        &self,
        mut record: R,
        precondition: Precondition,
    ) -> Result<Versioned<R>> {
        let prepared = self.prepare_put(&mut record, precondition)?;
        let refs: Vec<_> = prepared
            .references
            .into_iter()
            .map(|r| (R::KIND.store(), prepared.key.clone(), r))
            .collect();
        let committed = self.commit(prepared.mutations, &refs).await;
        Self::versioned(record, prepared.key, committed?)
    }

    fn versioned<R: Record>(
        value: R,
        key: String,
        committed: Vec<Committed>,
    ) -> Result<Versioned<R>> {
        let c = committed.into_iter().next().ok_or_else(|| Error::Backend {
            store: R::KIND.store(),
            key,
            source: "commit reported no write".into(),
        })?;
        Ok(Versioned {
            value,
            revision: c.revision,
            created: c.created,
            updated: c.updated,
        })
    }

    /// Checks that a put keeps the fixed fields of the stored record (see
    /// [`Record::fixed_fields`]) and returns the precondition that makes the
    /// commit fail if the record changes after the check: the revision
    /// checked (or must-not-exist when there was none), marked
    /// `strengthened` when that is stricter than the caller's. Kinds without
    /// fixed fields read nothing.
    async fn pin_fixed<R: Record>(
        &self,
        record: &R,
        key: &str,
        precondition: Precondition,
    ) -> Result<Pinned> {
        let fixed = record.fixed_fields();
        if fixed.is_empty() {
            return Ok(Pinned {
                precondition,
                strengthened: false,
            });
        }
        self.pin_stored(R::KIND, key, &fixed, precondition).await
    }

    async fn get_record<R: Record>(&self, id: &R::Id) -> Result<Versioned<R>> {
        let key = Self::check_id::<R>(id)?;
        match self
            .engine
            .get(R::KIND, std::slice::from_ref(&key))
            .await?
            .pop()
            .flatten()
        {
            Some(stored) => Self::decode(stored),
            None => Err(Error::not_found(R::KIND.store(), key)),
        }
    }

    async fn get_many_records<R: Record>(
        &self,
        ids: &[R::Id],
    ) -> Result<Vec<Option<Versioned<R>>>> {
        if ids.len() > MAX_GET_MANY {
            return Err(Error::invalid(
                R::KIND.store(),
                "",
                "ids",
                format!("{} ids, over the maximum of {MAX_GET_MANY}", ids.len()),
            ));
        }
        let keys = ids
            .iter()
            .map(Self::check_id::<R>)
            .collect::<Result<Vec<_>>>()?;
        self.engine
            .get(R::KIND, &keys)
            .await?
            .into_iter()
            .map(|s| s.map(Self::decode).transpose())
            .collect()
    }

    async fn delete_record<R: Record>(
        &self,
        id: &R::Id,
        precondition: Precondition,
    ) -> Result<Revision> {
        let key = Self::check_id::<R>(id)?;
        let mutation = Self::delete_mutation(R::KIND, key, precondition)?;
        let committed = self.commit(vec![mutation], &[]).await?;
        Ok(committed[0].revision)
    }

    fn delete_mutation(kind: Kind, key: String, precondition: Precondition) -> Result<Mutation> {
        if precondition == Precondition::MustNotExist {
            return Err(Error::invalid(
                kind.store(),
                key,
                "precondition",
                "must-not-exist makes no sense for a delete",
            ));
        }
        Ok(Mutation::Delete {
            kind,
            key,
            precondition,
        })
    }

    async fn list_records<R: Record>(&self, query: Query<R>) -> Result<Page<Versioned<R>>> {
        let store = R::KIND.store();
        let cursor_key = query
            .cursor
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let invalid = |e: FieldError| e.into_error(store, cursor_key.clone());
        check_limit(query.limit).map_err(invalid)?;
        let plan = R::plan(&query.filter, query.order).map_err(invalid)?;
        let fingerprint = query_fingerprint(R::KIND, &plan, query.direction);
        let after = match &query.cursor {
            Some(c) => Some(decode_cursor(c, fingerprint).map_err(invalid)?),
            None => None,
        };
        let limit = query.limit as usize;
        let scan = Scan {
            index: plan.index,
            prefix: plan.prefix,
            after,
            direction: query.direction,
            limit: limit + 1,
        };
        let mut stored = self.engine.scan(R::KIND, &scan).await?;
        let more = stored.len() > limit;
        stored.truncate(limit);
        let items = stored
            .into_iter()
            .map(Self::decode)
            .collect::<Result<Vec<Versioned<R>>>>()?;
        let next = match (more, items.last()) {
            (true, Some(last)) => {
                let values = match plan.index {
                    Some(index) => last.value.index_values(index).unwrap_or_default(),
                    None => Vec::new(),
                };
                let position = Position {
                    values,
                    id: last.value.id().key(),
                };
                Some(encode_cursor(fingerprint, &position))
            }
            _ => None,
        };
        Ok(Page { items, next })
    }

    /// Every record a filter selects, read page by page.
    async fn all_records<R: Record>(&self, filter: R::Filter) -> Result<Vec<Versioned<R>>> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .list_records(
                    Query::<R>::new(filter.clone())
                        .limit(crate::query::MAX_PAGE_LIMIT)
                        .after(cursor),
                )
                .await?;
            out.extend(page.items);
            cursor = page.next;
            if cursor.is_none() {
                return Ok(out);
            }
        }
    }

    /// The first record of an index prefix, or `NotFound` naming `key`.
    async fn first_by_index<R: Record>(
        &self,
        index: &'static str,
        prefix: Vec<IndexValue>,
        direction: Direction,
        key: &str,
    ) -> Result<Versioned<R>> {
        let scan = Scan {
            index: Some(index),
            prefix,
            after: None,
            direction,
            limit: 1,
        };
        match self.engine.scan(R::KIND, &scan).await?.pop() {
            Some(s) => Self::decode(s),
            None => Err(Error::not_found(R::KIND.store(), key)),
        }
    }

    /// Validates every op of a batch and turns it into one commit's
    /// mutations. A put of a kind with fixed fields is checked against the
    /// same record put earlier in the batch, or else the stored one (and
    /// pinned to the revision checked).
    async fn prepare_batch(&self, batch: Batch) -> Result<PreparedBatch> {
        let mut out = PreparedBatch {
            mutations: Vec::new(),
            references: Vec::new(),
            writes_per_op: Vec::with_capacity(batch.ops.len()),
            pinned: Vec::new(),
        };
        // Fixed fields of records put earlier in this batch.
        let mut earlier: HashMap<(Kind, String), Vec<(&'static str, String)>> = HashMap::new();
        for op in batch.ops {
            match op {
                BatchOp::Put {
                    record,
                    precondition,
                } => {
                    let kind = record.kind();
                    let (mut prepared, fixed) = match record {
                        AnyRecord::Profile(mut r) => self.prepare_fixed(&mut r, precondition)?,
                        AnyRecord::Workflow(mut r) => self.prepare_fixed(&mut r, precondition)?,
                        AnyRecord::Run(mut r) => self.prepare_fixed(&mut r, precondition)?,
                        AnyRecord::Key(mut r) => self.prepare_fixed(&mut r, precondition)?,
                        AnyRecord::Collection(mut r) => self.prepare_fixed(&mut r, precondition)?,
                    };
                    if !fixed.is_empty() {
                        let slot = (kind, prepared.key.clone());
                        match earlier.get(&slot) {
                            Some(before) => check_fixed(kind, &prepared.key, before, &fixed)?,
                            None => {
                                let pinned = self
                                    .pin_stored(kind, &prepared.key, &fixed, precondition)
                                    .await?;
                                set_precondition(&mut prepared.mutations[0], pinned.precondition);
                                if pinned.strengthened {
                                    out.pinned.push(slot.clone());
                                }
                            }
                        }
                        earlier.insert(slot, fixed);
                    }
                    out.mutations.append(&mut prepared.mutations);
                    out.references.extend(
                        prepared
                            .references
                            .into_iter()
                            .map(|r| (kind.store(), prepared.key.clone(), r)),
                    );
                    out.writes_per_op.push(1);
                }
                BatchOp::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    if kind == Kind::Log {
                        return Err(Error::invalid(
                            StoreName::Batch,
                            key,
                            "kind",
                            "log entries are never deleted one by one; remove the whole log",
                        ));
                    }
                    crate::ids::check_id("key", key.split('/').next().unwrap_or_default())
                        .map_err(|e| e.into_error(kind.store(), key.clone()))?;
                    earlier.remove(&(kind, key.clone()));
                    out.mutations
                        .push(Self::delete_mutation(kind, key, precondition)?);
                    out.writes_per_op.push(1);
                }
                BatchOp::AppendLog {
                    log_id,
                    expected_len,
                    ops,
                } => {
                    let (mut m, entries) = self.prepare_append(&log_id, expected_len, ops)?;
                    out.mutations.append(&mut m);
                    out.writes_per_op.push(entries.len());
                }
            }
        }
        Ok(out)
    }

    /// [`EngineStore::prepare_put`], plus the record's fixed fields.
    fn prepare_fixed<R: Record>(
        &self,
        record: &mut R,
        precondition: Precondition,
    ) -> Result<(PreparedPut, Vec<(&'static str, String)>)> {
        let prepared = self.prepare_put(record, precondition)?;
        Ok((prepared, record.fixed_fields()))
    }

    /// [`EngineStore::pin_fixed`] for a record known by kind, key and fixed
    /// fields (a batch's records are not typed).
    async fn pin_stored(
        &self,
        kind: Kind,
        key: &str,
        fixed: &[(&'static str, String)],
        precondition: Precondition,
    ) -> Result<Pinned> {
        fn stored_fixed<R: Record>(body: &[u8]) -> Option<Vec<(&'static str, String)>> {
            serde_json::from_slice::<R>(body)
                .ok()
                .map(|r| r.fixed_fields())
        }
        let unchanged = Pinned {
            precondition,
            strengthened: false,
        };
        if precondition == Precondition::MustNotExist {
            return Ok(unchanged);
        }
        let Some(stored) = self
            .engine
            .get(kind, &[key.to_string()])
            .await?
            .pop()
            .flatten()
        else {
            return Ok(match precondition {
                Precondition::Any => Pinned {
                    precondition: Precondition::MustNotExist,
                    strengthened: true,
                },
                _ => unchanged,
            });
        };
        let before = match kind {
            Kind::Run => stored_fixed::<Run>(&stored.body),
            Kind::Workflow => stored_fixed::<Workflow>(&stored.body),
            Kind::Key => stored_fixed::<Key>(&stored.body),
            Kind::Profile => stored_fixed::<Profile>(&stored.body),
            Kind::Collection => stored_fixed::<CollectionEntry>(&stored.body),
            Kind::Log => stored_fixed::<LogEntry>(&stored.body),
        }
        .ok_or_else(|| Error::Corrupt {
            store: kind.store(),
            key: key.to_string(),
            reason: "the stored record does not decode".into(),
        })?;
        check_fixed(kind, key, &before, fixed)?;
        Ok(match precondition {
            Precondition::Any | Precondition::MustExist => Pinned {
                precondition: Precondition::MustBeAt(stored.revision),
                strengthened: true,
            },
            _ => unchanged,
        })
    }

    fn log_entry_key(log: &LogId, seq: u64) -> String {
        LogEntryKey {
            log_id: log.clone(),
            seq,
        }
        .key()
    }

    /// The mutations of a log append and the entries they write.
    fn prepare_append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<(Vec<Mutation>, Vec<LogEntry>)> {
        let store = StoreName::Logs;
        log.check("log_id")
            .map_err(|e| e.into_error(store, log.as_str()))?;
        if ops.is_empty() {
            return Err(Error::invalid(
                store,
                log.as_str(),
                "ops",
                "must not be empty",
            ));
        }
        if ops.len() > MAX_APPEND_OPS {
            return Err(Error::invalid(
                store,
                log.as_str(),
                "ops",
                format!(
                    "{} ops, over the maximum of {MAX_APPEND_OPS} per append",
                    ops.len()
                ),
            ));
        }
        let mut mutations = Vec::with_capacity(ops.len() + 1);
        let mut entries = Vec::with_capacity(ops.len());
        if expected_len > 0 {
            mutations.push(Mutation::Require {
                kind: Kind::Log,
                key: Self::log_entry_key(log, expected_len - 1),
                precondition: Precondition::MustExist,
            });
        }
        for (i, op) in ops.into_iter().enumerate() {
            let mut entry = LogEntry {
                log_id: log.clone(),
                seq: expected_len + i as u64,
                op,
            };
            let mut prepared = self.prepare_put(&mut entry, Precondition::MustNotExist)?;
            mutations.append(&mut prepared.mutations);
            entries.push(entry);
        }
        Ok((mutations, entries))
    }

    /// Turns the failure of an append's checks into a `Conflict` naming the
    /// length found.
    async fn append_conflict(&self, log: &LogId, expected_len: u64, err: Error) -> Error {
        let lost_race = match &err {
            Error::AlreadyExists { store, .. } | Error::NotFound { store, .. } => {
                *store == StoreName::Logs
            }
            _ => false,
        };
        if !lost_race {
            return err;
        }
        let found = match LogStore::length(self, log).await {
            Ok(n) => n,
            Err(e) => return e,
        };
        Error::Conflict {
            store: StoreName::Logs,
            key: log.to_string(),
            expected: Precondition::MustBeAt(Revision::new(expected_len)),
            found: Some(Revision::new(found)),
        }
    }
}

#[async_trait]
impl<E: Engine, R: Editable> RecordStore<R> for EngineStore<E> {
    async fn get(&self, id: &R::Id) -> Result<Versioned<R>> {
        self.get_record(id).await
    }

    async fn get_many(&self, ids: &[R::Id]) -> Result<Vec<Option<Versioned<R>>>> {
        self.get_many_records(ids).await
    }

    async fn put(&self, record: R, precondition: Precondition) -> Result<Versioned<R>> {
        self.put_record(record, precondition).await
    }

    async fn delete(&self, id: &R::Id, precondition: Precondition) -> Result<Revision> {
        self.delete_record::<R>(id, precondition).await
    }

    async fn list(&self, query: Query<R>) -> Result<Page<Versioned<R>>> {
        self.list_records(query).await
    }
}

#[async_trait]
impl<E: Engine> ProfileStore for EngineStore<E> {
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>> {
        if username.is_empty() {
            return Err(Error::invalid(
                StoreName::Profiles,
                username,
                "username",
                "must not be empty",
            ));
        }
        self.first_by_index(
            "username",
            vec![IndexValue::str(username)],
            Direction::Asc,
            username,
        )
        .await
    }

    async fn rename(
        &self,
        id: &ProfileId,
        username: &str,
        precondition: Precondition,
    ) -> Result<Renamed> {
        if precondition == Precondition::MustNotExist {
            return Err(Error::invalid(
                StoreName::Profiles,
                id.as_str(),
                "precondition",
                "must-not-exist makes no sense for a rename",
            ));
        }
        for _ in 0..RMW_ATTEMPTS {
            let current: Versioned<Profile> = self.get_record(id).await?;
            if let Precondition::MustBeAt(want) = precondition
                && current.revision != want
            {
                return Err(Error::Conflict {
                    store: StoreName::Profiles,
                    key: id.to_string(),
                    expected: precondition,
                    found: Some(current.revision),
                });
            }
            let old = current.value.username.clone();
            let mut renamed = current.value.clone();
            renamed.username = username.to_string();
            let mut prepared =
                self.prepare_put(&mut renamed, Precondition::MustBeAt(current.revision))?;
            let mut mutations = std::mem::take(&mut prepared.mutations);
            let mut entries = Vec::new();
            if old != username {
                entries = self
                    .all_records::<CollectionEntry>(CollectionFilter::Username(old))
                    .await?;
                for entry in &mut entries {
                    entry.value.username = username.to_string();
                    let expect = entry.expect();
                    mutations.append(&mut self.prepare_put(&mut entry.value, expect)?.mutations);
                }
            }
            let committed = match self.commit(mutations, &[]).await {
                Err(Error::Conflict { .. } | Error::NotFound { .. }) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                other => other?,
            };
            let mut written = committed.into_iter();
            let profile =
                Self::versioned(renamed, prepared.key, written.by_ref().take(1).collect())?;
            let entries = entries
                .into_iter()
                .zip(written)
                .map(|(e, c)| Versioned {
                    value: e.value,
                    revision: c.revision,
                    created: c.created,
                    updated: c.updated,
                })
                .collect();
            return Ok(Renamed { profile, entries });
        }
        Err(Error::Unavailable {
            store: StoreName::Profiles,
            key: id.to_string(),
            source: "too much contention renaming the profile".into(),
        })
    }
}

#[async_trait]
impl<E: Engine> WorkflowStore for EngineStore<E> {
    async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>> {
        init_id
            .check("init_id")
            .map_err(|e| e.into_error(StoreName::Workflows, init_id.as_str()))?;
        self.first_by_index(
            "init_id",
            vec![IndexValue::str(init_id.as_str())],
            Direction::Asc,
            init_id.as_str(),
        )
        .await
    }

    async fn list_by_owner(
        &self,
        owner: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Workflow>>> {
        self.list_records(Query::new(WorkflowFilter::Owner(owner.clone())).page(page))
            .await
    }

    async fn list_active(&self, page: PageRequest) -> Result<Page<Versioned<Workflow>>> {
        self.list_records(Query::new(WorkflowFilter::Active).page(page))
            .await
    }
}

#[async_trait]
impl<E: Engine> RunStore for EngineStore<E> {
    async fn create(&self, mut run: Run) -> Result<Versioned<Run>> {
        run.workflow_id
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Runs, run.id.as_str()))?;
        let workflow: Versioned<Workflow> = match self.get_record(&run.workflow_id).await {
            Ok(w) => w,
            Err(Error::NotFound { .. }) => {
                return Err(Error::invalid(
                    StoreName::Runs,
                    run.id.as_str(),
                    "workflow_id",
                    format!("no workflow record with id {:?}", run.workflow_id.as_str()),
                ));
            }
            Err(e) => return Err(e),
        };
        run.owner_id = workflow.value.owner_id;
        if run.id.is_empty() {
            run.generate_id();
        }
        let counter = Run::counter_name(&run.workflow_id);
        for _ in 0..RMW_ATTEMPTS {
            run.number = self.engine.counter(&counter).await? + 1;
            match self
                .write_derived(run.clone(), Precondition::MustNotExist)
                .await
            {
                // Another create took this number first: take the next one.
                Err(Error::AlreadyExists {
                    store: StoreName::Runs,
                    key,
                }) if key != run.id.as_str() => {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
        Err(Error::Unavailable {
            store: StoreName::Runs,
            key: run.workflow_id.to_string(),
            source: "too much contention assigning a run number".into(),
        })
    }

    async fn list_by_workflow(
        &self,
        workflow: &WorkflowId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        self.list_records(
            Query::new(RunFilter::Workflow(workflow.clone()))
                .descending()
                .page(page),
        )
        .await
    }

    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>> {
        workflow
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Runs, workflow.as_str()))?;
        self.first_by_index(
            "workflow_number",
            vec![IndexValue::str(workflow.as_str())],
            Direction::Desc,
            workflow.as_str(),
        )
        .await
    }

    async fn count(&self, workflow: &WorkflowId) -> Result<u64> {
        workflow
            .check("workflow_id")
            .map_err(|e| e.into_error(StoreName::Runs, workflow.as_str()))?;
        self.engine
            .count(
                Kind::Run,
                "workflow_number",
                &[IndexValue::str(workflow.as_str())],
            )
            .await
    }

    async fn list_by_owner_and_status(
        &self,
        owner: &ProfileId,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        self.list_records(
            Query::new(RunFilter::OwnerStatus(owner.clone(), status))
                .descending()
                .page(page),
        )
        .await
    }

    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        /// Workflows read per scan.
        const WORKFLOWS_PER_SCAN: usize = 100;
        let cursor_key = page
            .cursor
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        let invalid = |e: FieldError| e.into_error(StoreName::Runs, cursor_key.clone());
        check_limit(page.limit).map_err(invalid)?;
        // Cursors of this list are positions among workflows, told apart
        // from other lists' by a plan of their own.
        let plan =
            crate::record::Plan::index("latest_by_status", vec![IndexValue::str(status.as_str())]);
        let fingerprint = query_fingerprint(Kind::Run, &plan, Direction::Asc);
        let mut after = match &page.cursor {
            Some(c) => Some(decode_cursor(c, fingerprint).map_err(invalid)?),
            None => None,
        };
        let mut items = Vec::new();
        loop {
            let scan = Scan {
                index: None,
                prefix: Vec::new(),
                after: after.clone(),
                direction: Direction::Asc,
                limit: WORKFLOWS_PER_SCAN,
            };
            let workflows = self.engine.scan(Kind::Workflow, &scan).await?;
            let exhausted = workflows.len() < WORKFLOWS_PER_SCAN;
            for w in workflows {
                let latest = Scan {
                    index: Some("workflow_number"),
                    prefix: vec![IndexValue::str(w.key.as_str())],
                    after: None,
                    direction: Direction::Desc,
                    limit: 1,
                };
                after = Some(Position {
                    values: Vec::new(),
                    id: w.key,
                });
                if let Some(run) = self.engine.scan(Kind::Run, &latest).await?.pop() {
                    let run: Versioned<Run> = Self::decode(run)?;
                    if run.value.status == status {
                        items.push(run);
                        if items.len() == page.limit as usize {
                            let at = after.as_ref().expect("set above");
                            return Ok(Page {
                                items,
                                next: Some(encode_cursor(fingerprint, at)),
                            });
                        }
                    }
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
        }
    }

    async fn append_event(
        &self,
        run: &RunId,
        step: usize,
        event: RunEvent,
    ) -> Result<Versioned<Run>> {
        for _ in 0..RMW_ATTEMPTS {
            let mut current: Versioned<Run> = self.get_record(run).await?;
            if current.value.status.is_finished() {
                return Err(Error::invalid(
                    StoreName::Runs,
                    run.as_str(),
                    "status",
                    format!(
                        "run is {}; events go to waiting or running runs",
                        current.value.status.as_str()
                    ),
                ));
            }
            let steps = current.value.steps.len();
            let Some(target) = current.value.steps.get_mut(step) else {
                return Err(Error::invalid(
                    StoreName::Runs,
                    run.as_str(),
                    "step",
                    format!("step {step} does not exist; the run has {steps} steps"),
                ));
            };
            target.output.push(event.clone());
            match self
                .write_derived(current.value, Precondition::MustBeAt(current.revision))
                .await
            {
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                other => return other,
            }
        }
        Err(Error::Unavailable {
            store: StoreName::Runs,
            key: run.to_string(),
            source: "too much contention appending an event".into(),
        })
    }
}

#[async_trait]
impl<E: Engine> KeyStore for EngineStore<E> {
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Key>>> {
        self.list_records(Query::new(KeyFilter::Profile(profile.clone())).page(page))
            .await
    }
}

#[async_trait]
impl<E: Engine> CollectionStore for EngineStore<E> {
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        order: CollectionOrder,
        page: PageRequest,
    ) -> Result<Page<Versioned<CollectionEntry>>> {
        self.list_records(
            Query::new(CollectionFilter::Profile(profile.clone()))
                .order(order)
                .page(page),
        )
        .await
    }

    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>> {
        init_id
            .check("init_id")
            .map_err(|e| e.into_error(StoreName::Collections, init_id.as_str()))?;
        for _ in 0..RMW_ATTEMPTS {
            let mut changed = Vec::new();
            let mut mutations = Vec::new();
            let entries = self
                .all_records::<CollectionEntry>(CollectionFilter::InitId(init_id.clone()))
                .await?;
            for mut entry in entries {
                if patch.apply(&mut entry.value) {
                    let expect = entry.expect();
                    let mut prepared = self.prepare_put(&mut entry.value, expect)?;
                    mutations.append(&mut prepared.mutations);
                    changed.push(entry.value);
                }
            }
            if mutations.is_empty() {
                return Ok(Vec::new());
            }
            let committed = match self.commit(mutations, &[]).await {
                Err(Error::Conflict { .. } | Error::NotFound { .. }) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                other => other?,
            };
            return Ok(changed
                .into_iter()
                .zip(committed)
                .map(|(value, c)| Versioned {
                    value,
                    revision: c.revision,
                    created: c.created,
                    updated: c.updated,
                })
                .collect());
        }
        Err(Error::Unavailable {
            store: StoreName::Collections,
            key: init_id.to_string(),
            source: "too much contention updating entries".into(),
        })
    }
}

#[async_trait]
impl<E: Engine> LogStore for EngineStore<E> {
    async fn append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<Vec<Versioned<LogEntry>>> {
        let (mutations, entries) = self.prepare_append(log, expected_len, ops)?;
        let committed = match self.engine.commit(mutations).await {
            Ok(c) => c,
            Err(e) => return Err(self.append_conflict(log, expected_len, e).await),
        };
        Ok(entries
            .into_iter()
            .zip(committed)
            .map(|(value, c)| Versioned {
                value,
                revision: c.revision,
                created: c.created,
                updated: c.updated,
            })
            .collect())
    }

    async fn range(&self, log: &LogId, start: u64, limit: u32) -> Result<Vec<Versioned<LogEntry>>> {
        log.check("log_id")
            .map_err(|e| e.into_error(StoreName::Logs, log.as_str()))?;
        check_limit(limit).map_err(|e| e.into_error(StoreName::Logs, log.as_str()))?;
        let after = start.checked_sub(1).map(|prev| Position {
            values: vec![IndexValue::str(log.as_str()), IndexValue::Int(prev as i64)],
            id: Self::log_entry_key(log, prev),
        });
        let scan = Scan {
            index: Some("log_seq"),
            prefix: vec![IndexValue::str(log.as_str())],
            after,
            direction: Direction::Asc,
            limit: limit as usize,
        };
        self.engine
            .scan(Kind::Log, &scan)
            .await?
            .into_iter()
            .map(Self::decode)
            .collect()
    }

    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>> {
        log.check("log_id")
            .map_err(|e| e.into_error(StoreName::Logs, log.as_str()))?;
        self.first_by_index(
            "log_seq",
            vec![IndexValue::str(log.as_str())],
            Direction::Desc,
            log.as_str(),
        )
        .await
    }

    async fn length(&self, log: &LogId) -> Result<u64> {
        match LogStore::head(self, log).await {
            Ok(entry) => Ok(entry.value.seq + 1),
            Err(Error::NotFound { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>> {
        self.list_records(query).await
    }

    async fn remove(&self, log: &LogId) -> Result<u64> {
        for _ in 0..RMW_ATTEMPTS {
            let len = LogStore::length(self, log).await?;
            if len == 0 {
                return Err(Error::not_found(StoreName::Logs, log.as_str()));
            }
            // Nothing may be appended between reading the length and the delete.
            let mut mutations = vec![Mutation::Require {
                kind: Kind::Log,
                key: Self::log_entry_key(log, len),
                precondition: Precondition::MustNotExist,
            }];
            mutations.extend((0..len).map(|seq| Mutation::Delete {
                kind: Kind::Log,
                key: Self::log_entry_key(log, seq),
                precondition: Precondition::Any,
            }));
            match self.engine.commit(mutations).await {
                Ok(_) => return Ok(len),
                Err(Error::AlreadyExists { .. } | Error::NotFound { .. }) => {
                    tokio::task::yield_now().await
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable {
            store: StoreName::Logs,
            key: log.to_string(),
            source: "too much contention removing the log".into(),
        })
    }
}

#[async_trait]
impl<E: Engine> ChangeFeed for EngineStore<E> {
    async fn since(&self, cursor: FeedCursor, limit: u32) -> Result<Vec<Change>> {
        if limit == 0 || limit > MAX_FEED_LIMIT {
            return Err(Error::invalid(
                StoreName::Changes,
                cursor.to_string(),
                "limit",
                format!("{limit} is outside 1 to {MAX_FEED_LIMIT}"),
            ));
        }
        let head = self.engine.head().await?;
        if cursor.0 > head {
            return Err(Error::invalid(
                StoreName::Changes,
                cursor.to_string(),
                "cursor",
                format!("is ahead of the feed head {head}"),
            ));
        }
        self.engine.changes_since(cursor.0, limit as usize).await
    }

    async fn head(&self) -> Result<FeedCursor> {
        self.engine.head().await.map(FeedCursor)
    }

    fn subscribe(&self, from: FeedCursor) -> ChangeStream {
        crate::subscription::subscribe(self.engine.clone(), from)
    }

    async fn compact(&self, retention: Retention) -> Result<Compaction> {
        self.engine.compact(&retention).await
    }

    fn retention(&self) -> Retention {
        self.engine.retention()
    }
}

#[async_trait]
impl<E: Engine> Datastore for EngineStore<E> {
    fn profiles(&self) -> &dyn ProfileStore {
        self
    }

    fn workflows(&self) -> &dyn WorkflowStore {
        self
    }

    fn runs(&self) -> &dyn RunStore {
        self
    }

    fn keys(&self) -> &dyn KeyStore {
        self
    }

    fn collections(&self) -> &dyn CollectionStore {
        self
    }

    fn logs(&self) -> &dyn LogStore {
        self
    }

    fn changes(&self) -> &dyn ChangeFeed {
        self
    }

    async fn apply(&self, batch: Batch) -> Result<Vec<Revision>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        for _ in 0..RMW_ATTEMPTS {
            let prepared = self.prepare_batch(batch.clone()).await?;
            let committed = match self.commit(prepared.mutations, &prepared.references).await {
                Err(e)
                    if prepared
                        .pinned
                        .iter()
                        .any(|(kind, key)| lost_race(&e, *kind, key)) =>
                {
                    tokio::task::yield_now().await;
                    continue;
                }
                other => other?,
            };
            let mut revisions = Vec::with_capacity(prepared.writes_per_op.len());
            let mut at = 0;
            for n in prepared.writes_per_op {
                at += n;
                revisions.push(committed[at - 1].revision);
            }
            return Ok(revisions);
        }
        Err(Error::Unavailable {
            store: StoreName::Batch,
            key: String::new(),
            source: "too much contention writing the batch".into(),
        })
    }

    fn capabilities(&self) -> Capabilities {
        self.engine.capabilities()
    }

    async fn close(&self) -> Result<()> {
        self.engine.close().await
    }
}
