//! The conformance suite through a `RemoteStore`, over HTTP, against a
//! server in front of a SQLite file store.

mod common;

conformance_tests::datastore_conformance!(|| common::Remote::start(common::Backend::Sqlite));
