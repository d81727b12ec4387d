//! [`Layered`]: every substore trait implemented once, forwarding each call
//! to the inner datastore through a [`Layer`]'s hooks.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datastore_core::{
    Actor, AnyRecord, Batch, BatchOp, Capabilities, Change, ChangeFeed, ChangeStream,
    CollectionEntry, CollectionPatch, CollectionStore, Compaction, Datastore, Editable, FeedCursor,
    FeedFilter, InitId, KeyStore, Kind, LogEntry, LogId, LogOp, LogStore, Page, PageRequest,
    Precondition, Profile, ProfileId, ProfileStore, Query, Record, RecordId, RecordStore, Renamed,
    Result, Retention, Revision, Run, RunEvent, RunId, RunStatus, RunStore, StoreName, Substore,
    Version, Versioned, Workflow, WorkflowId, WorkflowStore,
};
use datastore_core::{HistoryCompaction, HistoryPolicy};
use futures::future::BoxFuture;

use super::layer::{Call, Layer, Loader};

/// A [`Datastore`] that routes every call to an inner datastore through a
/// [`Layer`]'s hooks.
pub struct Layered<L> {
    inner: Arc<dyn Datastore>,
    layer: Arc<L>,
}

impl<L: Layer> Layered<L> {
    /// Wraps `inner` in `layer`.
    pub fn new(inner: Arc<dyn Datastore>, layer: L) -> Self {
        Layered {
            inner,
            layer: Arc::new(layer),
        }
    }

    /// The layer (its statistics and settings).
    pub fn layer(&self) -> &Arc<L> {
        &self.layer
    }

    /// The wrapped datastore.
    pub fn inner(&self) -> &Arc<dyn Datastore> {
        &self.inner
    }

    /// This layer as a shared `dyn Datastore`.
    pub fn into_dyn(self) -> Arc<dyn Datastore> {
        Arc::new(self)
    }

    fn call<'a, T: Send + 'a>(
        &'a self,
        store: StoreName,
        op: &'static str,
        key: &'a str,
        inner: impl Future<Output = Result<T>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T>> {
        self.layer.around(Call { store, op, key }, Box::pin(inner))
    }

    fn outbound_page<R: Editable>(&self, page: Page<Versioned<R>>) -> Result<Page<Versioned<R>>> {
        let Page { items, next } = page;
        let items = items
            .into_iter()
            .map(|v| self.layer.outbound(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn outbound_written<R: Editable>(&self, written: Versioned<R>) -> Result<Versioned<R>> {
        let out = self.layer.outbound(written)?;
        self.layer.wrote(&out).await;
        Ok(out)
    }

    /// [`Layer::outbound`] for a version's record (unsealing it as a read would).
    fn outbound_version<R: Editable>(&self, version: Version<R>) -> Result<Version<R>> {
        let Version {
            revision,
            at,
            actor,
            op,
            value,
        } = version;
        let value = match value {
            Some(value) => {
                let read = Versioned {
                    value,
                    revision,
                    created: at,
                    updated: at,
                    actor: actor.clone(),
                };
                Some(self.layer.outbound(read)?.value)
            }
            None => None,
        };
        Ok(Version {
            revision,
            at,
            actor,
            op,
            value,
        })
    }

    /// [`Layer::inbound`] for a record of any kind (a batch's puts).
    fn inbound_any(&self, record: AnyRecord) -> Result<AnyRecord> {
        Ok(datastore_core::map_any!(record, r => self.layer.inbound(r)?))
    }
}

impl<L> fmt::Debug for Layered<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("layer", &std::any::type_name::<L>())
            .field("inner", &self.inner)
            .finish()
    }
}

#[async_trait]
impl<L: Layer, R: Substore> RecordStore<R> for Layered<L> {
    async fn get(&self, id: &R::Id) -> Result<Versioned<R>> {
        let key = id.key();
        // Built only when the layer asks for it (a cache miss).
        let load = move || -> BoxFuture<'_, Result<Versioned<R>>> {
            Box::pin(async move {
                let key = id.key();
                let call = Call {
                    store: R::KIND.store(),
                    op: "get",
                    key: &key,
                };
                self.layer.around(call, R::of(&*self.inner).get(id)).await
            })
        };
        let found = self.layer.read(key, load).await?;
        self.layer.outbound(found)
    }

    async fn get_many(&self, ids: &[R::Id]) -> Result<Vec<Option<Versioned<R>>>> {
        let load: Loader<'_, R> = Box::new(move |ids: Vec<R::Id>| {
            Box::pin(async move {
                let store = R::of(&*self.inner);
                self.call(R::KIND.store(), "get_many", "", store.get_many(&ids))
                    .await
            })
        });
        let found = self.layer.read_many(ids, load).await?;
        found
            .into_iter()
            .map(|v| v.map(|v| self.layer.outbound(v)).transpose())
            .collect()
    }

    async fn put(&self, record: R, precondition: Precondition) -> Result<Versioned<R>> {
        let key = record.id().key();
        let sealed = self.layer.inbound(record)?;
        let store = R::of(&*self.inner);
        let written = self
            .call(
                R::KIND.store(),
                "put",
                &key,
                store.put(sealed, precondition),
            )
            .await?;
        self.outbound_written(written).await
    }

    async fn delete(&self, id: &R::Id, precondition: Precondition) -> Result<Revision> {
        let key = id.key();
        let store = R::of(&*self.inner);
        let revision = self
            .call(
                R::KIND.store(),
                "delete",
                &key,
                store.delete(id, precondition),
            )
            .await?;
        self.layer.touched(R::KIND, key, revision).await;
        Ok(revision)
    }

    async fn list(&self, query: Query<R>) -> Result<Page<Versioned<R>>> {
        let store = R::of(&*self.inner);
        let page = self
            .call(R::KIND.store(), "list", "", store.list(query))
            .await?;
        self.outbound_page(page)
    }

    async fn history(&self, id: &R::Id, page: PageRequest) -> Result<Page<Version<R>>> {
        let key = id.key();
        let store = R::of(&*self.inner);
        let Page { items, next } = self
            .call(R::KIND.store(), "history", &key, store.history(id, page))
            .await?;
        let items = items
            .into_iter()
            .map(|v| self.outbound_version(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, next })
    }

    async fn get_at(&self, id: &R::Id, revision: Revision) -> Result<Version<R>> {
        let key = id.key();
        let store = R::of(&*self.inner);
        let version = self
            .call(R::KIND.store(), "get_at", &key, store.get_at(id, revision))
            .await?;
        self.outbound_version(version)
    }
}

#[async_trait]
impl<L: Layer> ProfileStore for Layered<L> {
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>> {
        let inner = self.inner.profiles();
        let found = self
            .call(
                StoreName::Kind(Kind::Profile),
                "get_by_username",
                username,
                inner.get_by_username(username),
            )
            .await?;
        self.layer.outbound(found)
    }

    async fn rename(
        &self,
        id: &ProfileId,
        username: &str,
        precondition: Precondition,
    ) -> Result<Renamed> {
        let key = id.key();
        let inner = self.inner.profiles();
        let renamed = self
            .call(
                StoreName::Kind(Kind::Profile),
                "rename",
                &key,
                inner.rename(id, username, precondition),
            )
            .await?;
        let profile = self.outbound_written(renamed.profile).await?;
        let mut entries = Vec::with_capacity(renamed.entries.len());
        for entry in renamed.entries {
            entries.push(self.outbound_written(entry).await?);
        }
        Ok(Renamed { profile, entries })
    }
}

#[async_trait]
impl<L: Layer> WorkflowStore for Layered<L> {
    async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>> {
        let key = init_id.key();
        let inner = self.inner.workflows();
        let found = self
            .call(
                StoreName::Kind(Kind::Workflow),
                "get_by_init_id",
                &key,
                inner.get_by_init_id(init_id),
            )
            .await?;
        self.layer.outbound(found)
    }
}

#[async_trait]
impl<L: Layer> RunStore for Layered<L> {
    async fn create(&self, run: Run) -> Result<Versioned<Run>> {
        let key = run.id().key();
        let run = self.layer.inbound(run)?;
        let inner = self.inner.runs();
        let written = self
            .call(
                StoreName::Kind(Kind::Run),
                "create",
                &key,
                inner.create(run),
            )
            .await?;
        self.outbound_written(written).await
    }

    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>> {
        let key = workflow.key();
        let inner = self.inner.runs();
        let found = self
            .call(
                StoreName::Kind(Kind::Run),
                "latest",
                &key,
                inner.latest(workflow),
            )
            .await?;
        self.layer.outbound(found)
    }

    async fn count(&self, workflow: &WorkflowId) -> Result<u64> {
        let key = workflow.key();
        let inner = self.inner.runs();
        self.call(
            StoreName::Kind(Kind::Run),
            "count",
            &key,
            inner.count(workflow),
        )
        .await
    }

    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        let inner = self.inner.runs();
        let page = self
            .call(
                StoreName::Kind(Kind::Run),
                "list_latest_by_status",
                status.as_str(),
                inner.list_latest_by_status(status, page),
            )
            .await?;
        self.outbound_page(page)
    }

    async fn append_event(
        &self,
        run: &RunId,
        step: usize,
        event: RunEvent,
    ) -> Result<Versioned<Run>> {
        let key = run.key();
        let inner = self.inner.runs();
        let written = self
            .call(
                StoreName::Kind(Kind::Run),
                "append_event",
                &key,
                inner.append_event(run, step, event),
            )
            .await?;
        self.outbound_written(written).await
    }
}

#[async_trait]
impl<L: Layer> KeyStore for Layered<L> {}

#[async_trait]
impl<L: Layer> CollectionStore for Layered<L> {
    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>> {
        let key = init_id.key();
        let inner = self.inner.collections();
        let written = self
            .call(
                StoreName::Kind(Kind::Collection),
                "update_by_init_id",
                &key,
                inner.update_by_init_id(init_id, patch),
            )
            .await?;
        let mut out = Vec::with_capacity(written.len());
        for entry in written {
            out.push(self.outbound_written(entry).await?);
        }
        Ok(out)
    }
}

#[async_trait]
impl<L: Layer> LogStore for Layered<L> {
    async fn append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<Vec<Versioned<LogEntry>>> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(
            StoreName::Kind(Kind::Log),
            "append",
            &key,
            inner.append(log, expected_len, ops),
        )
        .await
    }

    async fn range(&self, log: &LogId, start: u64, limit: u32) -> Result<Vec<Versioned<LogEntry>>> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(
            StoreName::Kind(Kind::Log),
            "range",
            &key,
            inner.range(log, start, limit),
        )
        .await
    }

    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(StoreName::Kind(Kind::Log), "head", &key, inner.head(log))
            .await
    }

    async fn length(&self, log: &LogId) -> Result<u64> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(
            StoreName::Kind(Kind::Log),
            "length",
            &key,
            inner.length(log),
        )
        .await
    }

    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>> {
        let inner = self.inner.logs();
        self.call(StoreName::Kind(Kind::Log), "list", "", inner.list(query))
            .await
    }

    async fn remove(&self, log: &LogId) -> Result<u64> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(
            StoreName::Kind(Kind::Log),
            "remove",
            &key,
            inner.remove(log),
        )
        .await
    }
}

#[async_trait]
impl<L: Layer> ChangeFeed for Layered<L> {
    async fn since_matching(
        &self,
        cursor: FeedCursor,
        limit: u32,
        filter: &FeedFilter,
    ) -> Result<Vec<Change>> {
        let inner = self.inner.changes();
        let read = inner.since_matching(cursor, limit, filter);
        self.call(StoreName::Changes, "since", "", read).await
    }

    async fn head(&self) -> Result<FeedCursor> {
        let inner = self.inner.changes();
        self.call(StoreName::Changes, "head", "", inner.head())
            .await
    }

    fn subscribe_matching(&self, from: FeedCursor, filter: FeedFilter) -> ChangeStream {
        self.inner.changes().subscribe_matching(from, filter)
    }

    async fn compact(&self, retention: Retention) -> Result<Compaction> {
        let inner = self.inner.changes();
        self.call(StoreName::Changes, "compact", "", inner.compact(retention))
            .await
    }

    fn retention(&self) -> Retention {
        self.inner.changes().retention()
    }
}

#[async_trait]
impl<L: Layer> Datastore for Layered<L> {
    datastore_core::substores_are_self!();

    async fn apply(&self, batch: Batch) -> Result<Vec<Revision>> {
        let mut touched = Vec::with_capacity(batch.ops.len());
        let mut ops = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            ops.push(match op {
                BatchOp::Put {
                    record,
                    precondition,
                } => {
                    touched.push(Some((record.kind(), record.key())));
                    BatchOp::Put {
                        record: self.inbound_any(record)?,
                        precondition,
                    }
                }
                BatchOp::Delete {
                    kind,
                    key,
                    precondition,
                } => {
                    touched.push(Some((kind, key.clone())));
                    BatchOp::Delete {
                        kind,
                        key,
                        precondition,
                    }
                }
                append @ BatchOp::AppendLog { .. } => {
                    touched.push(None);
                    append
                }
            });
        }
        let batch = Batch { ops };
        let revisions = self
            .call(StoreName::Batch, "apply", "", self.inner.apply(batch))
            .await?;
        for (touched, revision) in touched.into_iter().zip(&revisions) {
            if let Some((kind, key)) = touched {
                self.layer.touched(kind, key, *revision).await;
            }
        }
        Ok(revisions)
    }

    async fn count(&self, kind: Kind) -> Result<u64> {
        self.call(kind.store(), "count", "", self.inner.count(kind))
            .await
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }

    async fn backup(&self, dest: &std::path::Path) -> Result<FeedCursor> {
        self.inner.backup(dest).await
    }

    async fn start_feed_after(&self, position: FeedCursor) -> Result<FeedCursor> {
        self.inner.start_feed_after(position).await
    }

    async fn snapshot(&self) -> Result<std::sync::Arc<dyn Datastore>> {
        self.inner.snapshot().await
    }

    fn with_actor(&self, actor: Actor) -> Arc<dyn Datastore> {
        Arc::new(Layered {
            inner: self.inner.with_actor(actor),
            layer: self.layer.clone(),
        })
    }

    fn actor(&self) -> Option<Actor> {
        self.inner.actor()
    }

    async fn compact_history(&self, policy: &HistoryPolicy) -> Result<HistoryCompaction> {
        self.call(
            StoreName::Datastore,
            "compact_history",
            "",
            self.inner.compact_history(policy),
        )
        .await
    }

    async fn close(&self) -> Result<()> {
        self.layer.close().await;
        self.inner.close().await
    }
}
