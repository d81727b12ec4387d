//! The whole conformance suite on a real PostgreSQL, each case in its own schema.

mod common;

conformance_tests::datastore_conformance!(common::PgFixture::new);
