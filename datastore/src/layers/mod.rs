//! Layers: wrappers that are themselves [`Datastore`]s and compose.
//!
//! A layer is a [`Layer`] (a few hooks, each with a pass-through default)
//! inside [`Layered`], which implements every substore trait once,
//! generically, and routes each call through the hooks. The four layers this
//! crate ships are [`Cached`](crate::Cached), [`Instrumented`](crate::Instrumented),
//! [`Faulty`](crate::Faulty) and [`Sealed`](crate::Sealed); stack them in any order:
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use datastore::{Cached, CacheConfig, Instrumented};
//! let backend = datastore::open_url("memory://").await?;
//! let instrumented = Instrumented::wrap(backend);
//! let stats = instrumented.layer().clone(); // per-operation counts and latencies
//! let ds = Cached::wrap(instrumented.into_dyn(), CacheConfig::default()).await?;
//! # let _ = (ds, stats);
//! # Ok(()) }
//! ```

pub(crate) mod cache;
pub(crate) mod faulty;
pub(crate) mod instrument;
pub(crate) mod seal;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datastore_core::{
    AnyRecord, Batch, BatchOp, Capabilities, Change, ChangeFeed, ChangeStream, CollectionEntry,
    CollectionOrder, CollectionPatch, CollectionStore, Compaction, Datastore, Editable, FeedCursor,
    InitId, Key, KeyStore, Kind, LogEntry, LogId, LogOp, LogStore, Page, PageRequest, Precondition,
    Profile, ProfileId, ProfileStore, Query, Record, RecordId, RecordStore, Renamed, Result,
    Retention, Revision, Run, RunEvent, RunId, RunStatus, RunStore, StoreName, Substore, Versioned,
    Workflow, WorkflowId, WorkflowStore,
};
use futures::future::BoxFuture;

/// One call through a layer: which store, which operation, which key
/// (empty where the call has none).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The substore.
    pub store: StoreName,
    /// The operation (`get`, `put`, `list`, `append_event`, ...).
    pub op: &'static str,
    /// The record or log key, or `""`.
    pub key: &'a str,
}

impl fmt::Display for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}.{}", self.store, self.op)
        } else {
            write!(f, "{}.{}({:?})", self.store, self.op, self.key)
        }
    }
}

/// The hooks a layer can implement. Every hook has a pass-through default, so
/// a layer implements only what it changes.
pub trait Layer: Send + Sync + 'static {
    /// Wraps every call to the inner datastore (instrumentation, faults).
    fn around<'a, T: Send + 'a>(
        &'a self,
        call: Call<'a>,
        inner: BoxFuture<'a, Result<T>>,
    ) -> BoxFuture<'a, Result<T>> {
        let _ = call;
        inner
    }

    /// Transforms a record on its way into the inner datastore (sealing).
    fn inbound<R: Editable>(&self, record: R) -> Result<R> {
        Ok(record)
    }

    /// Transforms a record read from the inner datastore (unsealing).
    fn outbound<R: Editable>(&self, record: Versioned<R>) -> Result<Versioned<R>> {
        Ok(record)
    }

    /// A point read by id (`key`, moved in); `load` starts the read from
    /// the inner datastore, and is only called if the layer needs it
    /// (caching), so a hit costs no inner call at all.
    fn read<'a, R: Editable>(
        &'a self,
        key: String,
        load: impl FnOnce() -> BoxFuture<'a, Result<Versioned<R>>> + Send + 'a,
    ) -> impl Future<Output = Result<Versioned<R>>> + Send + 'a {
        let _ = key;
        load()
    }

    /// Several point reads; `load` reads the given keys from the inner
    /// datastore, one answer per key, in order.
    fn read_many<'a, R: Editable>(
        &'a self,
        ids: &'a [R::Id],
        load: Loader<'a, R>,
    ) -> BoxFuture<'a, Result<Vec<Option<Versioned<R>>>>> {
        load(ids.to_vec())
    }

    /// A record was written through this layer (the value as the caller sees it).
    fn wrote<'a, R: Editable>(&'a self, written: &'a Versioned<R>) -> BoxFuture<'a, ()> {
        let _ = written;
        Box::pin(async {})
    }

    /// A key was deleted, or changed by a write whose value this layer did
    /// not see (batches, patches); `revision` is the write's revision.
    fn touched(&self, kind: Kind, key: String, revision: Revision) -> BoxFuture<'_, ()> {
        let _ = (kind, key, revision);
        Box::pin(async {})
    }

    /// The datastore is closing: stop background work (and let go of the
    /// inner store) before the inner store closes.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Reads a list of ids from the inner datastore (see [`Layer::read_many`]).
pub type Loader<'a, R> = Box<
    dyn FnOnce(Vec<<R as Record>::Id>) -> BoxFuture<'a, Result<Vec<Option<Versioned<R>>>>>
        + Send
        + 'a,
>;

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

    fn seal_any(&self, record: AnyRecord) -> Result<AnyRecord> {
        Ok(match record {
            AnyRecord::Profile(r) => AnyRecord::Profile(self.layer.inbound(r)?),
            AnyRecord::Workflow(r) => AnyRecord::Workflow(self.layer.inbound(r)?),
            AnyRecord::Run(r) => AnyRecord::Run(self.layer.inbound(r)?),
            AnyRecord::Key(r) => AnyRecord::Key(self.layer.inbound(r)?),
            AnyRecord::Collection(r) => AnyRecord::Collection(self.layer.inbound(r)?),
        })
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
}

#[async_trait]
impl<L: Layer> ProfileStore for Layered<L> {
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>> {
        let inner = self.inner.profiles();
        let found = self
            .call(
                StoreName::Profiles,
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
                StoreName::Profiles,
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
                StoreName::Workflows,
                "get_by_init_id",
                &key,
                inner.get_by_init_id(init_id),
            )
            .await?;
        self.layer.outbound(found)
    }

    async fn list_by_owner(
        &self,
        owner: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Workflow>>> {
        let key = owner.key();
        let inner = self.inner.workflows();
        let page = self
            .call(
                StoreName::Workflows,
                "list_by_owner",
                &key,
                inner.list_by_owner(owner, page),
            )
            .await?;
        self.outbound_page(page)
    }

    async fn list_active(&self, page: PageRequest) -> Result<Page<Versioned<Workflow>>> {
        let inner = self.inner.workflows();
        let page = self
            .call(
                StoreName::Workflows,
                "list_active",
                "",
                inner.list_active(page),
            )
            .await?;
        self.outbound_page(page)
    }
}

#[async_trait]
impl<L: Layer> RunStore for Layered<L> {
    async fn create(&self, run: Run) -> Result<Versioned<Run>> {
        let key = run.id().key();
        let run = self.layer.inbound(run)?;
        let inner = self.inner.runs();
        let written = self
            .call(StoreName::Runs, "create", &key, inner.create(run))
            .await?;
        self.outbound_written(written).await
    }

    async fn list_by_workflow(
        &self,
        workflow: &WorkflowId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        let key = workflow.key();
        let inner = self.inner.runs();
        let page = self
            .call(
                StoreName::Runs,
                "list_by_workflow",
                &key,
                inner.list_by_workflow(workflow, page),
            )
            .await?;
        self.outbound_page(page)
    }

    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>> {
        let key = workflow.key();
        let inner = self.inner.runs();
        let found = self
            .call(StoreName::Runs, "latest", &key, inner.latest(workflow))
            .await?;
        self.layer.outbound(found)
    }

    async fn count(&self, workflow: &WorkflowId) -> Result<u64> {
        let key = workflow.key();
        let inner = self.inner.runs();
        self.call(StoreName::Runs, "count", &key, inner.count(workflow))
            .await
    }

    async fn list_by_owner_and_status(
        &self,
        owner: &ProfileId,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        let key = owner.key();
        let inner = self.inner.runs();
        let page = self
            .call(
                StoreName::Runs,
                "list_by_owner_and_status",
                &key,
                inner.list_by_owner_and_status(owner, status, page),
            )
            .await?;
        self.outbound_page(page)
    }

    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        let inner = self.inner.runs();
        let page = self
            .call(
                StoreName::Runs,
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
                StoreName::Runs,
                "append_event",
                &key,
                inner.append_event(run, step, event),
            )
            .await?;
        self.outbound_written(written).await
    }
}

#[async_trait]
impl<L: Layer> KeyStore for Layered<L> {
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Key>>> {
        let key = profile.key();
        let inner = self.inner.keys();
        let page = self
            .call(
                StoreName::Keys,
                "list_by_profile",
                &key,
                inner.list_by_profile(profile, page),
            )
            .await?;
        self.outbound_page(page)
    }
}

#[async_trait]
impl<L: Layer> CollectionStore for Layered<L> {
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        order: CollectionOrder,
        page: PageRequest,
    ) -> Result<Page<Versioned<CollectionEntry>>> {
        let key = profile.key();
        let inner = self.inner.collections();
        let page = self
            .call(
                StoreName::Collections,
                "list_by_profile",
                &key,
                inner.list_by_profile(profile, order, page),
            )
            .await?;
        self.outbound_page(page)
    }

    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>> {
        let key = init_id.key();
        let inner = self.inner.collections();
        let written = self
            .call(
                StoreName::Collections,
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
            StoreName::Logs,
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
            StoreName::Logs,
            "range",
            &key,
            inner.range(log, start, limit),
        )
        .await
    }

    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(StoreName::Logs, "head", &key, inner.head(log))
            .await
    }

    async fn length(&self, log: &LogId) -> Result<u64> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(StoreName::Logs, "length", &key, inner.length(log))
            .await
    }

    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>> {
        let inner = self.inner.logs();
        self.call(StoreName::Logs, "list", "", inner.list(query))
            .await
    }

    async fn remove(&self, log: &LogId) -> Result<u64> {
        let key = log.key();
        let inner = self.inner.logs();
        self.call(StoreName::Logs, "remove", &key, inner.remove(log))
            .await
    }
}

#[async_trait]
impl<L: Layer> ChangeFeed for Layered<L> {
    async fn since(&self, cursor: FeedCursor, limit: u32) -> Result<Vec<Change>> {
        let inner = self.inner.changes();
        self.call(StoreName::Changes, "since", "", inner.since(cursor, limit))
            .await
    }

    async fn head(&self) -> Result<FeedCursor> {
        let inner = self.inner.changes();
        self.call(StoreName::Changes, "head", "", inner.head())
            .await
    }

    fn subscribe(&self, from: FeedCursor) -> ChangeStream {
        self.inner.changes().subscribe(from)
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
                        record: self.seal_any(record)?,
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

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn close(&self) -> Result<()> {
        self.layer.close().await;
        self.inner.close().await
    }
}
