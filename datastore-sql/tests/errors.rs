//! URLs and connections that fail: clear errors, never a password.

mod common;

use std::time::Duration;

use datastore_core::Error;
use datastore_sql::SqlConfig;

#[tokio::test]
async fn an_unknown_scheme_is_invalid() {
    let err = datastore_sql::open(SqlConfig::new("mysql://u:pw@host/db"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "url"),
        "{err}"
    );
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[tokio::test]
async fn a_malformed_url_is_invalid_without_its_password() {
    let err = datastore_sql::open(SqlConfig::new("postgres://user:topsecret@host:notaport/db"))
        .await
        .unwrap_err();
    assert!(err.is_invalid(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(text.contains("user:***@host"), "{text}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_retryable() {
    let mut config = SqlConfig::new("postgres://user:topsecret@127.0.0.1:1/db");
    config.connect_timeout = Duration::from_secs(2);
    let err = datastore_sql::open(config).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("topsecret"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "names the server: {text}");
    // Said as what happened, not as a pool timing out.
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
}

#[tokio::test]
async fn a_missing_database_is_invalid_and_not_retryable() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let (server, _) = url.rsplit_once('/').unwrap();
    let missing = format!("{server}/ds_no_such_database");
    let err = datastore_sql::open(SqlConfig::new(missing))
        .await
        .unwrap_err();
    assert!(err.is_invalid(), "{err}");
    assert!(!err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("ds_no_such_database"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // PostgreSQL's own source position is no help to a user.
    assert!(!text.contains("line "), "{text}");
}

#[tokio::test]
async fn an_unknown_postgres_url_option_is_refused_by_name() {
    let err = datastore_sql::open(SqlConfig::new(
        "postgres://u:pw@127.0.0.1:5432/test?sslmode=disable&bogus=1",
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "bogus"),
        "{err}"
    );
    assert!(!err.to_string().contains(":pw@"), "{err}");
}

#[tokio::test]
async fn a_bad_schema_name_is_invalid() {
    let Some(url) = common::postgres().await else {
        return;
    };
    let mut config = SqlConfig::new(url);
    config.schema = Some("x; DROP TABLE y".into());
    let err = datastore_sql::open(config).await.unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "schema"),
        "{err}"
    );
}
