//! The whole conformance suite on RocksDB without `sync_on_commit`, where
//! commits skip the writer thread and are applied by the committing task.

mod common;

conformance_tests::datastore_conformance!(|| async { common::TempRocks::unsynced() });
