//! The whole conformance suite on the in-memory backend.

conformance_tests::datastore_conformance!(|| async { datastore_memory::open() });
