//! The whole conformance suite on a real SQLite file per case.

mod common;

conformance_tests::datastore_conformance!(common::SqliteFixture::new);
