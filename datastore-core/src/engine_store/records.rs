//! The generic record path: validate, index, commit, read and list any
//! kind, and `RecordStore` for every editable one.

use async_trait::async_trait;

use crate::engine::{
    Committed, Engine, Mutation, PutRecord, Scan, StoredRecord, StoredRef, VersionScan,
};
use crate::error::{Error, FieldError, Result, StoreName};
use crate::feed::ChangeOp;
use crate::history::{StoredVersion, Version};
use crate::ids::RecordId;
use crate::query::{
    Direction, Page, PageRequest, Position, Query, check_limit, decode_cursor, encode_cursor,
    history_fingerprint, query_fingerprint,
};
use crate::record::{Editable, IndexValue, Kind, Record, Reference};
use crate::revision::{Precondition, Revision, Versioned};
use crate::stores::RecordStore;

use super::{
    EngineStore, MAX_GET_MANY, Pinned, PreparedPut, lost_race, retry_on_contention,
    set_precondition,
};

impl<E: Engine> EngineStore<E> {
    pub(super) fn decode<R: Record>(stored: StoredRecord) -> Result<Versioned<R>> {
        Self::decode_ref(stored.as_ref())
    }

    /// A record borrowed from the engine, decoded.
    pub(super) fn decode_ref<R: Record>(stored: StoredRef<'_>) -> Result<Versioned<R>> {
        // Checked as UTF-8 once, whole, then parsed as text: parsed from
        // bytes, serde_json checks each string of the record on its own.
        let parsed = match std::str::from_utf8(stored.body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(stored.body),
        };
        let value: R = parsed.map_err(|e| Error::Corrupt {
            store: R::KIND.store(),
            key: stored.key.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Versioned {
            value,
            revision: stored.revision,
            created: stored.created,
            updated: stored.updated,
            actor: stored.actor.cloned(),
        })
    }

    pub(super) fn check_id<R: Record>(id: &R::Id) -> Result<String> {
        Ok(Self::check_key::<R>(id)?.into_owned())
    }

    /// [`Self::check_id`] with the key lent where the id holds it.
    fn check_key<R: Record>(id: &R::Id) -> Result<std::borrow::Cow<'_, str>> {
        let key = id.key_ref();
        id.check("id")
            .map_err(|e| e.into_error(R::KIND.store(), key.to_string()))?;
        Ok(key)
    }

    /// Validates a record and turns it into the mutations that store it.
    pub(super) fn prepare_put<R: Record>(
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
            if let Some(id) = record.new_id() {
                record.set_id(id);
            }
        }
        let key = record.id().key();
        // Read the clock only when a put leaves a time to the store.
        let mut now = None;
        for time in record.write_times_mut() {
            if *time == chrono::DateTime::<chrono::Utc>::UNIX_EPOCH {
                *time = *now.get_or_insert_with(crate::engine::commit_time);
            }
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
        let mut mutations = vec![Mutation::Put(PutRecord {
            kind: R::KIND,
            key: key.clone(),
            body,
            index,
            precondition,
            parent: record.parent(),
            actor: None,
            history: false,
        })];
        mutations.extend(
            references
                .iter()
                .map(|r| Mutation::require(r.kind, r.key.clone(), Precondition::MustExist)),
        );
        mutations.extend(
            record
                .counters()
                .into_iter()
                .map(|(name, to)| Mutation::raise_counter(name, to)),
        );
        Ok(PreparedPut {
            key,
            mutations,
            references,
        })
    }

    /// Commits, turning a failed reference check into `Invalid` on the record.
    pub(super) async fn commit(
        &self,
        mutations: Vec<Mutation>,
        references: &[(StoreName, String, Reference)],
    ) -> Result<Vec<Committed>> {
        self.commit_stamped(mutations).await.map_err(|e| match &e {
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
    pub(super) async fn put_record<R: Record>(
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
        let key = prepared.key.clone();
        let committed = retry_on_contention!(R::KIND.store(), &key, "writing the record", {
            let pinned = self.pin_fixed(&record, &key, precondition).await?;
            set_precondition(&mut prepared.mutations[0], pinned.precondition);
            // Only a strengthened precondition can lose a race and try
            // again; otherwise this is the one attempt and the mutations
            // (the encoded body among them) are handed over, not copied.
            let mutations = if pinned.strengthened {
                prepared.mutations.clone()
            } else {
                std::mem::take(&mut prepared.mutations)
            };
            match self.commit(mutations, &refs).await {
                Err(e) if pinned.strengthened && lost_race(&e, R::KIND, &key) => None,
                result => Some(result?),
            }
        });
        Self::versioned(record, key, committed)
    }

    /// A put of a record derived from the stored one (run numbers, events,
    /// patches): its fixed fields are the stored ones by construction.
    pub(super) async fn write_derived<R: Record>(
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

    pub(super) fn versioned<R: Record>(
        value: R,
        key: String,
        committed: Vec<Committed>,
    ) -> Result<Versioned<R>> {
        let c = committed.into_iter().next().ok_or_else(|| Error::Backend {
            store: R::KIND.store(),
            key,
            source: "commit reported no write".into(),
        })?;
        Ok(Versioned::from_committed(value, &c))
    }

    /// Checks that a put keeps the fixed fields of the stored record (see
    /// [`Record::fixed_fields`]) and returns the precondition that makes the
    /// commit fail if the record changes after the check: the revision
    /// checked (or must-not-exist when there was none), marked
    /// `strengthened` when that is stricter than the caller's. Kinds without
    /// fixed fields read nothing.
    pub(super) async fn pin_fixed<R: Record>(
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

    pub(super) async fn get_record<R: Record>(&self, id: &R::Id) -> Result<Versioned<R>> {
        let key = Self::check_key::<R>(id)?;
        // An embedded engine reads without waiting, and the record is
        // decoded from the engine's own copy. (In a block of its own, so
        // the record read is not part of the future's state across the
        // wait below: a smaller future for every caller.)
        {
            let mut found = None;
            let mut decode = |stored: StoredRef<'_>| {
                found = Some(Self::decode_ref::<R>(stored)?);
                Ok(())
            };
            if let Some(read) = self.engine.get_now(R::KIND, &key, &mut decode) {
                read?;
                return found.ok_or_else(|| Error::not_found(R::KIND.store(), key.into_owned()));
            }
        }
        // A server's row is decoded where the driver holds it.
        let key = key.into_owned();
        let mut found = None;
        self.engine
            .get_each(R::KIND, std::slice::from_ref(&key), &mut |_, stored| {
                found = Some(Self::decode_ref::<R>(stored)?);
                Ok(())
            })
            .await?;
        found.ok_or_else(|| Error::not_found(R::KIND.store(), key))
    }

    pub(super) async fn get_many_records<R: Record>(
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
        // Decoded as the engine lends them, each into its id's place.
        let mut found: Vec<Option<Versioned<R>>> =
            std::iter::repeat_with(|| None).take(keys.len()).collect();
        self.engine
            .get_each(R::KIND, &keys, &mut |at, stored| {
                found[at] = Some(Self::decode_ref(stored)?);
                Ok(())
            })
            .await?;
        Ok(found)
    }

    pub(super) async fn delete_record<R: Record>(
        &self,
        id: &R::Id,
        precondition: Precondition,
    ) -> Result<Revision> {
        let key = Self::check_id::<R>(id)?;
        let mutation = Self::delete_mutation(R::KIND, key, precondition)?;
        let committed = self.commit(vec![mutation], &[]).await?;
        Ok(committed[0].revision)
    }

    pub(super) fn delete_mutation(
        kind: Kind,
        key: String,
        precondition: Precondition,
    ) -> Result<Mutation> {
        if precondition == Precondition::MustNotExist {
            return Err(Error::invalid(
                kind.store(),
                key,
                "precondition",
                "must-not-exist makes no sense for a delete",
            ));
        }
        Ok(Mutation::delete(kind, key, precondition))
    }

    pub(super) async fn list_records<R: Record>(
        &self,
        query: Query<R>,
    ) -> Result<Page<Versioned<R>>> {
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
        // Decoded as the engine lends them; the one past the limit only
        // tells that there is a next page.
        let mut items: Vec<Versioned<R>> = Vec::with_capacity(limit);
        let mut more = false;
        self.engine
            .scan_each(R::KIND, &scan, &mut |stored| {
                if items.len() == limit {
                    more = true;
                } else {
                    items.push(Self::decode_ref(stored)?);
                }
                Ok(())
            })
            .await?;
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

    /// A stored version as a typed one.
    fn decode_version<R: Record>(key: &str, v: StoredVersion) -> Result<Version<R>> {
        let value = match &v.body {
            Some(body) => Some(serde_json::from_slice(body).map_err(|e| Error::Corrupt {
                store: R::KIND.store(),
                key: format!("{key} version {}", v.revision),
                reason: e.to_string(),
            })?),
            None => None,
        };
        Ok(Version {
            revision: v.revision,
            at: v.at,
            actor: v.actor,
            op: v.op,
            value,
        })
    }

    /// The current record as a version (for records whose history does
    /// not hold it: written before history was kept, or with it off).
    fn current_version(stored: StoredRecord) -> StoredVersion {
        StoredVersion {
            revision: stored.revision,
            op: ChangeOp::Put,
            at: stored.updated,
            actor: stored.actor,
            body: Some(stored.body),
        }
    }

    /// The oldest version kept of a record.
    async fn oldest_version(&self, kind: Kind, key: &str) -> Result<Option<Revision>> {
        let scan = VersionScan {
            after: None,
            direction: Direction::Asc,
            limit: 1,
        };
        let oldest = self.engine.history(kind, key, &scan).await?;
        Ok(oldest.first().map(|v| v.revision))
    }

    pub(super) async fn history_of<R: Record>(
        &self,
        id: &R::Id,
        page: PageRequest,
    ) -> Result<Page<Version<R>>> {
        let key = Self::check_id::<R>(id)?;
        let store = R::KIND.store();
        let cursor_key = page.cursor.as_ref().map(|c| c.to_string());
        let invalid = |e: FieldError| e.into_error(store, cursor_key.clone().unwrap_or_default());
        check_limit(page.limit).map_err(invalid)?;
        let fingerprint = history_fingerprint(R::KIND, &key);
        let after = match &page.cursor {
            Some(c) => {
                let position = decode_cursor(c, fingerprint).map_err(invalid)?;
                match position.values.first() {
                    Some(IndexValue::Int(r)) if *r > 0 => Some(Revision::new(*r as u64)),
                    _ => {
                        return Err(invalid(FieldError::new(
                            "cursor",
                            "is malformed or has been altered",
                        )));
                    }
                }
            }
            None => None,
        };
        let limit = page.limit as usize;
        let scan = VersionScan {
            after,
            direction: Direction::Desc,
            limit: limit + 1,
        };
        let mut versions = self.engine.history(R::KIND, &key, &scan).await?;
        match after {
            None => {
                let current = self
                    .engine
                    .get(R::KIND, std::slice::from_ref(&key))
                    .await?
                    .pop()
                    .flatten();
                match current {
                    Some(c) if versions.first().map(|v| v.revision) != Some(c.revision) => {
                        versions.insert(0, Self::current_version(c))
                    }
                    None if versions.is_empty() => return Err(Error::not_found(store, &key)),
                    _ => {}
                }
            }
            Some(r) if versions.is_empty() => {
                if let Some(oldest) = self.oldest_version(R::KIND, &key).await?
                    && oldest > r
                {
                    return Err(Error::VersionExpired {
                        store,
                        key,
                        revision: r,
                        oldest_kept: Some(oldest),
                    });
                }
            }
            Some(_) => {}
        }
        let more = versions.len() > limit;
        versions.truncate(limit);
        let next = match (more, versions.last()) {
            (true, Some(last)) => Some(encode_cursor(
                fingerprint,
                &Position {
                    values: vec![IndexValue::Int(last.revision.get() as i64)],
                    id: key.clone(),
                },
            )),
            _ => None,
        };
        let items = versions
            .into_iter()
            .map(|v| Self::decode_version(&key, v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    pub(super) async fn version_of<R: Record>(
        &self,
        id: &R::Id,
        revision: Revision,
    ) -> Result<Version<R>> {
        let key = Self::check_id::<R>(id)?;
        let store = R::KIND.store();
        let scan = VersionScan {
            after: Some(Revision::new(revision.get().saturating_add(1))),
            direction: Direction::Desc,
            limit: 1,
        };
        let found = self.engine.history(R::KIND, &key, &scan).await?.pop();
        if let Some(v) = found.filter(|v| v.revision == revision) {
            return Self::decode_version(&key, v);
        }
        let current = self
            .engine
            .get(R::KIND, std::slice::from_ref(&key))
            .await?
            .pop()
            .flatten();
        let current_revision = current.as_ref().map(|c| c.revision);
        if let Some(c) = current.filter(|c| c.revision == revision) {
            return Self::decode_version(&key, Self::current_version(c));
        }
        let oldest = self
            .oldest_version(R::KIND, &key)
            .await?
            .or(current_revision);
        if oldest.is_some_and(|o| revision < o) {
            return Err(Error::VersionExpired {
                store,
                key,
                revision,
                oldest_kept: oldest,
            });
        }
        Err(Error::not_found(store, format!("{key} version {revision}")))
    }

    /// Every record a filter selects, read page by page.
    pub(super) async fn all_records<R: Record>(
        &self,
        filter: R::Filter,
    ) -> Result<Vec<Versioned<R>>> {
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
    pub(super) async fn first_by_index<R: Record>(
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

    async fn history(&self, id: &R::Id, page: PageRequest) -> Result<Page<Version<R>>> {
        self.history_of(id, page).await
    }

    async fn get_at(&self, id: &R::Id, revision: Revision) -> Result<Version<R>> {
        self.version_of(id, revision).await
    }
}
