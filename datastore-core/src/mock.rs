//! mockall mocks of the typed substores (feature `mock`). They are written
//! with `mock!` because each typed trait extends [`RecordStore`], which
//! `automock` can't follow; each mock spells out both traits. (Generating
//! the `RecordStore` half with a `macro_rules!` trips `async_trait`'s
//! hygiene for `self`, so it stays written out.) Methods that are only a
//! `list` with a filter are provided methods: a mock answers them through
//! `expect_list`.

use async_trait::async_trait;

use crate::error::Result;
use crate::history::Version;
use crate::ids::{CollectionKey, InitId, KeyId, ProfileId, RunId, WorkflowId};
use crate::query::{Page, PageRequest, Query};
use crate::records::{
    CollectionEntry, CollectionPatch, Key, Profile, Run, RunEvent, RunStatus, Workflow,
};
use crate::revision::{Precondition, Revision, Versioned};
use crate::stores::{
    CollectionStore, KeyStore, ProfileStore, RecordStore, Renamed, RunStore, WorkflowStore,
};

mockall::mock! {
    /// A mock [`ProfileStore`].
    pub ProfileStore {}

    #[async_trait]
    impl RecordStore<Profile> for ProfileStore {
        async fn get(&self, id: &ProfileId) -> Result<Versioned<Profile>>;
        async fn get_many(&self, ids: &[ProfileId]) -> Result<Vec<Option<Versioned<Profile>>>>;
        async fn put(&self, record: Profile, precondition: Precondition) -> Result<Versioned<Profile>>;
        async fn delete(&self, id: &ProfileId, precondition: Precondition) -> Result<Revision>;
        async fn list(&self, query: Query<Profile>) -> Result<Page<Versioned<Profile>>>;
        async fn history(&self, id: &ProfileId, page: PageRequest) -> Result<Page<Version<Profile>>>;
        async fn get_at(&self, id: &ProfileId, revision: Revision) -> Result<Version<Profile>>;
    }

    #[async_trait]
    impl ProfileStore for ProfileStore {
        async fn get_by_username(&self, username: &str) -> Result<Versioned<Profile>>;
        async fn rename(&self, id: &ProfileId, username: &str, precondition: Precondition) -> Result<Renamed>;
    }
}

mockall::mock! {
    /// A mock [`WorkflowStore`].
    pub WorkflowStore {}

    #[async_trait]
    impl RecordStore<Workflow> for WorkflowStore {
        async fn get(&self, id: &WorkflowId) -> Result<Versioned<Workflow>>;
        async fn get_many(&self, ids: &[WorkflowId]) -> Result<Vec<Option<Versioned<Workflow>>>>;
        async fn put(&self, record: Workflow, precondition: Precondition) -> Result<Versioned<Workflow>>;
        async fn delete(&self, id: &WorkflowId, precondition: Precondition) -> Result<Revision>;
        async fn list(&self, query: Query<Workflow>) -> Result<Page<Versioned<Workflow>>>;
        async fn history(&self, id: &WorkflowId, page: PageRequest) -> Result<Page<Version<Workflow>>>;
        async fn get_at(&self, id: &WorkflowId, revision: Revision) -> Result<Version<Workflow>>;
    }

    #[async_trait]
    impl WorkflowStore for WorkflowStore {
        async fn get_by_init_id(&self, init_id: &InitId) -> Result<Versioned<Workflow>>;
    }
}

mockall::mock! {
    /// A mock [`RunStore`].
    pub RunStore {}

    #[async_trait]
    impl RecordStore<Run> for RunStore {
        async fn get(&self, id: &RunId) -> Result<Versioned<Run>>;
        async fn get_many(&self, ids: &[RunId]) -> Result<Vec<Option<Versioned<Run>>>>;
        async fn put(&self, record: Run, precondition: Precondition) -> Result<Versioned<Run>>;
        async fn delete(&self, id: &RunId, precondition: Precondition) -> Result<Revision>;
        async fn list(&self, query: Query<Run>) -> Result<Page<Versioned<Run>>>;
        async fn history(&self, id: &RunId, page: PageRequest) -> Result<Page<Version<Run>>>;
        async fn get_at(&self, id: &RunId, revision: Revision) -> Result<Version<Run>>;
    }

    #[async_trait]
    impl RunStore for RunStore {
        async fn create(&self, run: Run) -> Result<Versioned<Run>>;
        async fn latest(&self, workflow: &WorkflowId) -> Result<Versioned<Run>>;
        async fn count(&self, workflow: &WorkflowId) -> Result<u64>;
        async fn list_latest_by_status(&self, status: RunStatus, page: PageRequest) -> Result<Page<Versioned<Run>>>;
        async fn append_event(&self, run: &RunId, step: usize, event: RunEvent) -> Result<Versioned<Run>>;
    }
}

mockall::mock! {
    /// A mock [`KeyStore`].
    pub KeyStore {}

    #[async_trait]
    impl RecordStore<Key> for KeyStore {
        async fn get(&self, id: &KeyId) -> Result<Versioned<Key>>;
        async fn get_many(&self, ids: &[KeyId]) -> Result<Vec<Option<Versioned<Key>>>>;
        async fn put(&self, record: Key, precondition: Precondition) -> Result<Versioned<Key>>;
        async fn delete(&self, id: &KeyId, precondition: Precondition) -> Result<Revision>;
        async fn list(&self, query: Query<Key>) -> Result<Page<Versioned<Key>>>;
        async fn history(&self, id: &KeyId, page: PageRequest) -> Result<Page<Version<Key>>>;
        async fn get_at(&self, id: &KeyId, revision: Revision) -> Result<Version<Key>>;
    }

    #[async_trait]
    impl KeyStore for KeyStore {
    }
}

mockall::mock! {
    /// A mock [`CollectionStore`].
    pub CollectionStore {}

    #[async_trait]
    impl RecordStore<CollectionEntry> for CollectionStore {
        async fn get(&self, id: &CollectionKey) -> Result<Versioned<CollectionEntry>>;
        async fn get_many(&self, ids: &[CollectionKey]) -> Result<Vec<Option<Versioned<CollectionEntry>>>>;
        async fn put(&self, record: CollectionEntry, precondition: Precondition) -> Result<Versioned<CollectionEntry>>;
        async fn delete(&self, id: &CollectionKey, precondition: Precondition) -> Result<Revision>;
        async fn list(&self, query: Query<CollectionEntry>) -> Result<Page<Versioned<CollectionEntry>>>;
        async fn history(&self, id: &CollectionKey, page: PageRequest) -> Result<Page<Version<CollectionEntry>>>;
        async fn get_at(&self, id: &CollectionKey, revision: Revision) -> Result<Version<CollectionEntry>>;
    }

    #[async_trait]
    impl CollectionStore for CollectionStore {
        async fn update_by_init_id(&self, init_id: &InitId, patch: CollectionPatch) -> Result<Vec<Versioned<CollectionEntry>>>;
    }
}
