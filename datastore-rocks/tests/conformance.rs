//! The whole conformance suite on RocksDB, each case in its own directory.

mod common;

conformance_tests::datastore_conformance!(|| async { common::TempRocks::new() });
