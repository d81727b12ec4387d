//! `open_url("http://...")`: a remote `datastore serve` opened like any
//! store, with the token from the configuration, the cache kept fresh by
//! the remote feed, and a wrong token refused at open.

use std::sync::Arc;
use std::time::Duration;

use datastore::{Config, Datastore, Error, OpenError, Precondition, Profile, ProfileId};
use datastore_http::{Server, ServerConfig, Token};

const TOKEN: &str = "remote-test-token-0123456789";

async fn serve(ds: Arc<dyn Datastore>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = ServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        token: Some(Token::new(TOKEN).unwrap()),
        ..ServerConfig::default()
    };
    let server = Server::bind(ds, config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_url_opens_the_server_store_with_cache_and_feed() {
    let dir = tempfile::tempdir().unwrap();
    let local = datastore::open_url(&format!("sqlite://{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let (url, stop) = serve(local.clone()).await;
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut config = Config::with_url(&url);
    config.remote.token_file = Some(token_file);
    let remote = datastore::open(&config).await.unwrap();
    let caps = remote.capabilities();
    assert_eq!(caps.backend, "remote");
    assert!(caps.durable, "the server's SQLite store is durable");

    let mut p = Profile::new("alice");
    p.id = ProfileId::new("p1");
    let put = remote
        .profiles()
        .put(p.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    let there = local.profiles().get(&ProfileId::new("p1")).await.unwrap();
    assert_eq!(
        (there.value.username.as_str(), there.revision),
        ("alice", put.revision)
    );
    assert_eq!(
        remote
            .profiles()
            .get_by_username("alice")
            .await
            .unwrap()
            .revision,
        put.revision
    );
    // A write on the server's side reaches the remote reader (the cache
    // in front of it follows the remote feed).
    assert_eq!(
        remote.profiles().get(&p.id).await.unwrap().revision,
        put.revision
    );
    let mut renamed = there.value.clone();
    renamed.username = "alice2".into();
    let newer = local
        .profiles()
        .put(renamed, Precondition::MustBeAt(put.revision))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = remote.profiles().get(&p.id).await.unwrap();
        if seen.revision == newer.revision {
            assert_eq!(seen.value.username, "alice2");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never saw the server's write"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same errors as locally.
    match remote
        .profiles()
        .put(p, Precondition::MustBeAt(put.revision))
        .await
    {
        Err(Error::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
    remote.close().await.unwrap();

    // A wrong token: refused at open, naming the token.
    let mut wrong = Config::with_url(&url);
    wrong.remote.token_env = Some("DATASTORE_REMOTE_TEST_WRONG_TOKEN".into());
    match datastore::open(&wrong).await {
        Err(OpenError::Config { source_name, .. }) => {
            assert_eq!(source_name, "$DATASTORE_REMOTE_TEST_WRONG_TOKEN")
        }
        other => panic!("an unset variable: {other:?}"),
    }
    let other_file = dir.path().join("other");
    std::fs::write(&other_file, "not-the-token-at-all-000").unwrap();
    wrong.remote.token_env = None;
    wrong.remote.token_file = Some(other_file);
    match datastore::open(&wrong).await {
        Err(OpenError::Store(Error::Invalid { field, .. })) => assert_eq!(field, "token"),
        other => panic!("expected Invalid naming the token, got {other:?}"),
    }
    let _ = stop.send(());
    local.close().await.unwrap();
}

#[tokio::test]
async fn unreachable_and_bad_urls_are_refused_by_name() {
    match datastore::open_url("https://127.0.0.1:1").await {
        Err(OpenError::Store(Error::Unavailable { .. })) => {}
        other => panic!("nothing listens there: {other:?}"),
    }
    let mut config = Config::with_url("https://127.0.0.1:1");
    config.remote.ca_file = Some("/nonexistent/ca.pem".into());
    match datastore::open(&config).await {
        Err(OpenError::Config { source_name, .. }) => {
            assert_eq!(source_name, "/nonexistent/ca.pem")
        }
        other => panic!("a CA file that is not there: {other:?}"),
    }
    match datastore::open_url("http://").await {
        Err(OpenError::BadOption { option, .. }) => assert_eq!(option, "host"),
        other => panic!("{other:?}"),
    }
    match datastore::open_url("http://127.0.0.1:1").await {
        Err(OpenError::Store(Error::Unavailable { .. })) => {}
        other => panic!("nothing listens there: {other:?}"),
    }
}
