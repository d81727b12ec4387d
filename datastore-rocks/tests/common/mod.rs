//! A RocksDB store in a fresh temporary directory, removed after the test.

#![allow(dead_code)]

use std::sync::Arc;

use conformance_tests::Fixture;
use datastore_core::Datastore;
use datastore_rocks::RocksConfig;

/// A store and the directory it lives in.
pub struct TempRocks {
    pub ds: Arc<dyn Datastore>,
    pub dir: tempfile::TempDir,
}

impl TempRocks {
    /// A new store with default options in a new directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ds = datastore_rocks::open(RocksConfig::new(dir.path().join("db"))).expect("open");
        TempRocks { ds, dir }
    }

    /// A new store that does not sync commits (`sync_on_commit = false`:
    /// commits are applied by the committing task, not the writer thread).
    pub fn unsynced() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = RocksConfig::new(dir.path().join("db"));
        config.sync_on_commit = false;
        let ds = datastore_rocks::open(config).expect("open");
        TempRocks { ds, dir }
    }

    /// The database path.
    pub fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("db")
    }
}

impl Fixture for TempRocks {
    fn store(&self) -> Arc<dyn Datastore> {
        self.ds.clone()
    }

    async fn teardown(self) {
        let _ = self.ds.close().await;
    }
}
