//! The substore traits and the `Datastore` facade.
//!
//! Every trait is dyn-compatible (`Arc<dyn Datastore>`), `Send + Sync`, and
//! mocked with mockall behind the `mock` feature. Operations that are only
//! a `list` with a particular filter are provided methods, so backends,
//! layers and mocks implement (and forward) `list` alone.

use async_trait::async_trait;

use crate::batch::Batch;
use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::feed::ChangeFeed;
use crate::history::{HistoryCompaction, Version};
use crate::ids::RecordId;
use crate::ids::{InitId, LogId, ProfileId, RunId, WorkflowId};
use crate::query::{Page, PageRequest, Query};
use crate::record::Editable;
use crate::records::{
    CollectionEntry, CollectionFilter, CollectionOrder, CollectionPatch, Key, KeyFilter, LogEntry,
    LogOp, Profile, Run, RunEvent, RunFilter, RunStatus, Workflow, WorkflowFilter,
};
use crate::revision::{Precondition, Revision, Versioned};

/// The operations every editable kind shares.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RecordStore<R: Editable>: Send + Sync {
    /// The record with that id, or `NotFound`.
    async fn get(&self, id: &R::Id) -> Result<Versioned<R>>;

    /// The records with these ids, in the same order; `None` where missing.
    async fn get_many(&self, ids: &[R::Id]) -> Result<Vec<Option<Versioned<R>>>>;

    /// Creates or replaces a record if the precondition holds. A record with
    /// an empty id gets a generated one (with `Any` or `MustNotExist`).
    async fn put(&self, record: R, precondition: Precondition) -> Result<Versioned<R>>;

    /// Deletes a record if the precondition holds; returns the delete's revision.
    async fn delete(&self, id: &R::Id, precondition: Precondition) -> Result<Revision>;

    /// One page of a list query.
    async fn list(&self, query: Query<R>) -> Result<Page<Versioned<R>>>;

    /// A page of the record's versions, newest first: each with its
    /// revision, time, actor, operation and body (none for a delete).
    /// History survives delete and re-create. A record written while its
    /// kind kept no history shows its current state as its one version; a
    /// cursor into versions compacted away since gives `VersionExpired`;
    /// an id with no record and no history `NotFound`.
    async fn history(&self, id: &R::Id, page: PageRequest) -> Result<Page<Version<R>>>;

    /// One version of the record: `NotFound` for a revision that was never
    /// one of its versions, `VersionExpired` for one no longer kept.
    async fn get_at(&self, id: &R::Id, revision: Revision) -> Result<Version<R>>;

    /// Writes version `revision` of the record back as a new revision (so
    /// history stays append-only), if `precondition` holds for the record
    /// as it is now; a delete version cannot be restored (`Invalid`).
    async fn restore(
        &self,
        id: &R::Id,
        revision: Revision,
        precondition: Precondition,
    ) -> Result<Versioned<R>> {
        let version = self.get_at(id, revision).await?;
        match version.value {
            Some(value) => self.put(value, precondition).await,
            None => Err(crate::Error::invalid(
                R::KIND.store(),
                id.key(),
                "revision",
                format!("{revision} is a delete; restore a revision that put the record"),
            )),
        }
    }
}

/// Profiles: users and organizations, unique by username.
#[async_trait]
pub trait ProfileStore: RecordStore<Profile> {
    /// The profile with that username, or `NotFound`.
    async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>>;

    /// Changes a profile's username and, in the same atomic write, the
    /// username of every collection entry that copies it (entries of
    /// datasets it owns, in any profile's collection). The precondition
    /// applies to the profile.
    async fn rename(
        &self,
        id: &ProfileId,
        username: &str,
        precondition: Precondition,
    ) -> Result<Renamed>;
}

/// What [`ProfileStore::rename`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Renamed {
    /// The profile with its new username.
    pub profile: Versioned<Profile>,
    /// The collection entries that now carry it.
    pub entries: Vec<Versioned<CollectionEntry>>,
}

/// Workflows: at most one per dataset (init id).
#[async_trait]
pub trait WorkflowStore: RecordStore<Workflow> {
    /// The workflow of a dataset, or `NotFound`.
    async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>>;

    /// One owner's workflows, oldest first (a `list` with
    /// [`WorkflowFilter::Owner`]).
    async fn list_by_owner(
        &self,
        owner: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Workflow>>> {
        self.list(Query::new(WorkflowFilter::Owner(owner.clone())).page(page))
            .await
    }

    /// The active workflows, oldest first (a `list` with
    /// [`WorkflowFilter::Active`]).
    async fn list_active(&self, page: PageRequest) -> Result<Page<Versioned<Workflow>>> {
        self.list(Query::new(WorkflowFilter::Active).page(page))
            .await
    }
}

/// Runs of workflows, numbered per workflow by the store.
#[async_trait]
pub trait RunStore: RecordStore<Run> {
    /// Creates a run: assigns an id if empty, the next number of its workflow
    /// (atomically, never reused) and the workflow's owner. The workflow must
    /// exist.
    async fn create(&self, run: Run) -> Result<Versioned<Run>>;

    /// A workflow's runs, newest (highest number) first (a `list` with
    /// [`RunFilter::Workflow`], descending).
    async fn list_by_workflow(
        &self,
        workflow: &WorkflowId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        self.list(
            Query::new(RunFilter::Workflow(workflow.clone()))
                .descending()
                .page(page),
        )
        .await
    }

    /// A workflow's newest run, or `NotFound`.
    async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>>;

    /// How many runs a workflow has.
    async fn count(&self, workflow: &WorkflowId) -> Result<u64>;

    /// One owner's runs in one status, newest first (a `list` with
    /// [`RunFilter::OwnerStatus`], descending).
    async fn list_by_owner_and_status(
        &self,
        owner: &ProfileId,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>> {
        self.list(
            Query::new(RunFilter::OwnerStatus(owner.clone(), status))
                .descending()
                .page(page),
        )
        .await
    }

    /// The latest run of each workflow, where that run is in `status`
    /// (Qri's `ListByStatus`), in workflow id order. A page looks at
    /// workflows until it holds `limit` runs; `next` is set while workflows
    /// remain to look at, so the last page can be empty.
    async fn list_latest_by_status(
        &self,
        status: RunStatus,
        page: PageRequest,
    ) -> Result<Page<Versioned<Run>>>;

    /// Appends one event to the output of step `step` of a waiting or running
    /// run, as its own write; returns the updated run.
    async fn append_event(
        &self,
        run: &RunId,
        step: usize,
        event: RunEvent,
    ) -> Result<Versioned<Run>>;
}

/// Key pairs of profiles.
#[async_trait]
pub trait KeyStore: RecordStore<Key> {
    /// One profile's keys, by id (a `list` with [`KeyFilter::Profile`]).
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        page: PageRequest,
    ) -> Result<Page<Versioned<Key>>> {
        self.list(Query::new(KeyFilter::Profile(profile.clone())).page(page))
            .await
    }
}

/// Collection entries: datasets as they appear in each profile's collection.
#[async_trait]
pub trait CollectionStore: RecordStore<CollectionEntry> {
    /// One profile's entries by name or by commit time (a `list` with
    /// [`CollectionFilter::Profile`]).
    async fn list_by_profile(
        &self,
        profile: &ProfileId,
        order: CollectionOrder,
        page: PageRequest,
    ) -> Result<Page<Versioned<CollectionEntry>>> {
        self.list(
            Query::new(CollectionFilter::Profile(profile.clone()))
                .order(order)
                .page(page),
        )
        .await
    }

    /// Applies a patch to every entry of one dataset, across profiles, in
    /// one atomic write; returns the entries it changed.
    async fn update_by_init_id(
        &self,
        init_id: &InitId,
        patch: CollectionPatch,
    ) -> Result<Vec<Versioned<CollectionEntry>>>;
}

/// Append-only operation logs, one per dataset.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Appends ops to a log that has exactly `expected_len` entries, so two
    /// writers can't fork it: otherwise `Conflict` with the length found (as
    /// its revision). Returns the new entries.
    async fn append(
        &self,
        log: &LogId,
        expected_len: u64,
        ops: Vec<LogOp>,
    ) -> Result<Vec<Versioned<LogEntry>>>;

    /// Up to `limit` entries from sequence number `start` on.
    async fn range(&self, log: &LogId, start: u64, limit: u32) -> Result<Vec<Versioned<LogEntry>>>;

    /// The last entry, or `NotFound` for an empty log.
    async fn head(&self, log: &LogId) -> Result<Versioned<LogEntry>>;

    /// The number of entries (0 for a log never written).
    async fn length(&self, log: &LogId) -> Result<u64>;

    /// Removes a whole log; returns how many entries it had (`NotFound` if none).
    async fn remove(&self, log: &LogId) -> Result<u64>;

    /// Entries across logs, a page at a time (`LogFilter::All` walks every
    /// log by id, then sequence number).
    async fn list(&self, query: Query<LogEntry>) -> Result<Page<Versioned<LogEntry>>>;
}

/// Inside `impl Datastore for T`, where `T` implements every substore trait
/// and the feed itself (as `EngineStore` and the layers do): the eight
/// accessors, each returning `self`.
#[macro_export]
macro_rules! substores_are_self {
    () => {
        fn profiles(&self) -> &dyn $crate::ProfileStore {
            self
        }

        fn workflows(&self) -> &dyn $crate::WorkflowStore {
            self
        }

        fn runs(&self) -> &dyn $crate::RunStore {
            self
        }

        fn keys(&self) -> &dyn $crate::KeyStore {
            self
        }

        fn collections(&self) -> &dyn $crate::CollectionStore {
            self
        }

        fn logs(&self) -> &dyn $crate::LogStore {
            self
        }

        fn tokens(&self) -> &dyn $crate::RecordStore<$crate::AccessToken> {
            self
        }

        fn changes(&self) -> &dyn $crate::ChangeFeed {
            self
        }
    };
}

/// The root: hands out the typed substores, the feed and atomic batches.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Datastore: Send + Sync {
    /// Profiles.
    fn profiles(&self) -> &dyn ProfileStore;
    /// Workflows.
    fn workflows(&self) -> &dyn WorkflowStore;
    /// Runs.
    fn runs(&self) -> &dyn RunStore;
    /// Keys.
    fn keys(&self) -> &dyn KeyStore;
    /// Collection entries.
    fn collections(&self) -> &dyn CollectionStore;
    /// Operation logs.
    fn logs(&self) -> &dyn LogStore;
    /// Access tokens (stored hashed), for servers that check who calls.
    fn tokens(&self) -> &dyn RecordStore<crate::records::AccessToken>;
    /// The change feed.
    fn changes(&self) -> &dyn ChangeFeed;
    /// Applies a batch across substores, all or nothing; one revision per op.
    async fn apply(&self, batch: Batch) -> Result<Vec<Revision>>;
    /// How many records of `kind` the store holds (log entries, for
    /// [`Kind::Log`](crate::Kind::Log)): exact, for progress totals and
    /// checks. SQL counts the table; RocksDB and memory count one index's
    /// keys, so this reads a key per record there.
    async fn count(&self, kind: crate::Kind) -> Result<u64>;
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;
    /// Whether the store can serve now: it answers a cheap read, and its
    /// feed follower hears other writers (on PostgreSQL, its LISTEN
    /// connection is up). The error says what is not ready.
    async fn ready(&self) -> Result<()> {
        self.changes().head().await.map(|_| ())
    }
    /// Writes a consistent copy of the store to the path `dest` (which must
    /// not exist) while it stays live, and returns the feed position the
    /// copy reflects: every change up to it is in the copy, none after it.
    /// RocksDB writes a checkpoint folder (hard links), SQLite a database
    /// file (`VACUUM INTO`); other backends are `Unsupported` (export them).
    async fn backup(&self, dest: &std::path::Path) -> Result<crate::FeedCursor> {
        Err(crate::Error::Unsupported {
            store: crate::StoreName::Datastore,
            key: dest.display().to_string(),
            operation: "a file backup (export the store instead)".into(),
        })
    }
    /// Makes the feed continue after `position`, for a store restored from
    /// a backup that reflects that position: the head rises to it (never
    /// falls), every change at or before it is dropped, so a subscriber
    /// with an older cursor gets `CursorExpired` instead of a silent gap,
    /// and the next write is numbered after it. Returns the head. Memory,
    /// RocksDB and SQL support it; a read-only store is refused.
    async fn start_feed_after(&self, position: crate::FeedCursor) -> Result<crate::FeedCursor> {
        Err(crate::Error::Unsupported {
            store: crate::StoreName::Changes,
            key: position.0.to_string(),
            operation: "moving the feed's start".into(),
        })
    }
    /// A read-only view of the store as it is now, for a consistent export
    /// of a live store: every read through it sees that one moment, and
    /// its feed head is the position it reflects. SQLite and PostgreSQL
    /// support it (one read transaction; on PostgreSQL `REPEATABLE READ`);
    /// layers are not applied to it. Close it when done: it holds the
    /// transaction (and on SQLite, the write-ahead log from being reset).
    async fn snapshot(&self) -> Result<std::sync::Arc<dyn Datastore>> {
        Err(crate::Error::Unsupported {
            store: crate::StoreName::Datastore,
            key: String::new(),
            operation: "a snapshot (export the store instead)".into(),
        })
    }
    /// A view of this store whose puts and deletes are made by `actor`:
    /// records, their versions and their feed entries name it. The view
    /// shares everything else with this store (connections, caches, the
    /// feed); callers that don't name an actor write with none.
    fn with_actor(&self, actor: crate::Actor) -> std::sync::Arc<dyn Datastore>;
    /// The actor this view's writes carry (see [`Datastore::with_actor`]).
    fn actor(&self) -> Option<crate::Actor> {
        None
    }
    /// Removes record versions outside each kind's retention in `policy`
    /// (stores opened with a policy that compacts run this in the
    /// background with their own); a version removed is gone for good.
    async fn compact_history(&self, policy: &crate::HistoryPolicy) -> Result<HistoryCompaction> {
        let _ = policy;
        Err(crate::Error::Unsupported {
            store: crate::StoreName::Datastore,
            key: String::new(),
            operation: "history compaction".into(),
        })
    }
    /// Flushes and releases resources; subscriptions end.
    async fn close(&self) -> Result<()>;
}

impl std::fmt::Debug for dyn Datastore {
    /// Names the backend, so structs holding an `Arc<dyn Datastore>` can derive `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datastore")
            .field("backend", &self.capabilities().backend)
            .finish()
    }
}

/// The record kinds with a typed substore, mapped to it, so code generic
/// over the kind (layers, an HTTP API) can reach the right substore (the
/// impls are generated from the kinds list, [`with_kinds!`](crate::with_kinds)).
pub trait Substore: Editable {
    /// This kind's substore in `ds`.
    fn of(ds: &dyn Datastore) -> &dyn RecordStore<Self>;
}
