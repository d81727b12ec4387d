//! Records, substore traits, the [`Datastore`] facade, errors, queries,
//! revisions and preconditions, batches and the change feed.
//!
//! Backend authors depend on this crate alone: implement [`Engine`] (keyed
//! records with index entries, counters and a feed, committed atomically) and
//! wrap it in [`EngineStore`], which provides every typed substore, batch and
//! subscription on top. Services program against `Arc<dyn Datastore>`.
//!
//! ```
//! # async fn demo(ds: std::sync::Arc<dyn datastore_core::Datastore>) -> datastore_core::Result<()> {
//! use datastore_core::{Precondition, Profile};
//! let alice = ds.profiles().put(Profile::new("alice"), Precondition::MustNotExist).await?;
//! let mut edit = alice.value.clone();
//! edit.name = "Alice".into();
//! ds.profiles().put(edit, alice.expect()).await?; // fails with Conflict if someone wrote first
//! # Ok(()) }
//! ```

#[macro_use]
mod kinds;
mod actor;
mod batch;
mod capabilities;
mod dates;
mod engine;
mod engine_store;
mod error;
mod feed;
pub mod group_commit;
mod history;
mod ids;
pub mod keycodec;
#[cfg(feature = "mock")]
mod mock;
mod query;
mod record;
mod records;
mod redact;
mod revision;
mod stores;
pub mod strict;
mod subscription;

pub use actor::Actor;
pub use batch::{AnyRecord, Batch, BatchOp};
pub use capabilities::{Capabilities, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SUBSCRIBER_BUFFER};
pub use engine::{
    Committed, CounterRaise, DeleteRecord, Engine, IndexEntry, Mutation, PutRecord, ReadMark,
    Requirement, Scan, StoredRecord, StoredRef, VersionScan, check_precondition, commit_time,
    get_through_each, unique_violation,
};
pub use engine_store::{EngineStore, MAX_APPEND_OPS, MAX_GET_MANY};
pub use error::{BoxError, Error, FieldError, Result, StoreName};
pub use feed::{
    Change, ChangeFeed, ChangeOp, ChangeStream, Compaction, FeedCursor, FeedEvent, FeedFilter,
    LiveChanges, LiveError, LiveReceiver, MAX_FEED_LIMIT, Retention,
};
pub use history::{HistoryCompaction, HistoryPolicy, HistoryRetention, StoredVersion, Version};
pub use ids::{
    CollectionKey, InitId, KeyId, LogEntryKey, LogId, MAX_ID_LEN, ProfileId, RecordId, RunId,
    TokenId, WorkflowId, check_id, generate_id,
};
pub use query::{
    Cursor, DEFAULT_PAGE_LIMIT, Direction, MAX_PAGE_LIMIT, Page, PageRequest, Position, Query,
};
pub use record::{
    Editable, FieldType, IndexDef, IndexField, IndexValue, Kind, Plan, Record, Reference,
    index_entries_of,
};
pub use records::*;
pub use redact::redact_url;
pub use revision::{Precondition, Revision, Versioned};
pub use stores::{
    CollectionStore, Datastore, KeyStore, LogStore, ProfileStore, RecordStore, Renamed, RunStore,
    Substore, WorkflowStore,
};

#[cfg(feature = "mock")]
pub use feed::MockChangeFeed;
#[cfg(feature = "mock")]
pub use mock::{
    MockCollectionStore, MockKeyStore, MockProfileStore, MockRunStore, MockWorkflowStore,
};
#[cfg(feature = "mock")]
pub use stores::{MockDatastore, MockLogStore, MockRecordStore};
