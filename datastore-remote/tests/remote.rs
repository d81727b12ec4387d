//! What only a remote store has: a token, a URL, a server that goes away
//! and comes back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use datastore_core::{
    Change, ChangeStream, Error, FeedCursor, FeedEvent, Precondition, Profile, ProfileId,
};
use datastore_remote::{RemoteConfig, RemoteStore};
use futures::StreamExt;

use common::*;

const TOKEN: &str = "a-test-token-of-some-length";

#[track_caller]
fn assert_refused_token<T: std::fmt::Debug>(result: datastore_core::Result<T>) {
    match result {
        Err(e @ Error::Invalid { .. }) => {
            let Error::Invalid { field, reason, .. } = &e else {
                unreachable!()
            };
            assert_eq!(field, "token", "{e}");
            assert!(reason.contains("401"), "{reason}");
            assert!(!e.is_retryable(), "a refused token is not worth retrying");
        }
        other => panic!("expected Invalid naming the token, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_a_clear_error() {
    let server = serve(datastore_memory::open(), Some(TOKEN)).await;
    // open checks the token.
    assert_refused_token(RemoteStore::open(config(&server).token("not-the-token-at-all")).await);
    assert_refused_token(RemoteStore::open(config(&server)).await);
    // So does every call, and a subscription's first item.
    let wrong = RemoteStore::connect(config(&server).token("not-the-token-at-all")).unwrap();
    let wrong: &dyn datastore_core::Datastore = &wrong;
    assert_refused_token(wrong.profiles().get(&ProfileId::new("p1")).await);
    let mut stream = wrong.changes().subscribe(FeedCursor::START);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the subscription answers");
    assert_refused_token(first.expect("an item"));
    // The right token works.
    let right = RemoteStore::open(config(&server).token(TOKEN))
        .await
        .unwrap();
    let p = right
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(right.profiles().get(&p.value.id).await.unwrap(), p);
    server.stop().await;
}

#[tokio::test]
async fn urls_other_than_http_are_invalid() {
    for url in ["ftp://x", "not a url", "http://h/?q=1"] {
        match RemoteStore::connect(RemoteConfig::new(url)) {
            Err(Error::Invalid { field, reason, .. }) => {
                assert_eq!(field, "url");
                assert!(!reason.is_empty());
            }
            other => panic!("{url}: expected Invalid naming the url, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_unavailable() {
    // Bind then drop, so nothing listens on the port.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = RemoteConfig::new(format!("http://{addr}")).timeout(Duration::from_secs(5));
    match RemoteStore::open(config).await {
        Err(e) => assert!(e.is_retryable(), "expected Unavailable, got {e:?}"),
        Ok(_) => panic!("nothing listens there"),
    }
}

async fn next_change(stream: &mut ChangeStream) -> Change {
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        Ok(Some(Ok(FeedEvent::Change(c)))) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

async fn put(ds: &dyn datastore_core::Datastore, name: &str) {
    ds.profiles()
        .put(Profile::new(name), Precondition::MustNotExist)
        .await
        .unwrap();
}

/// A subscriber follows a server that stops and starts again on the same
/// port over the same SQLite file: it reconnects with `Last-Event-ID` and
/// receives every change once, those committed while it was away included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_after_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(sqlite(dir.path()).await, None).await;
    let addr: SocketAddr = server.addr;
    let remote = RemoteStore::open(config(&server)).await.unwrap();
    for name in ["a1", "a2", "a3"] {
        put(&*remote, name).await;
    }
    let mut stream = remote.changes().subscribe(FeedCursor::START);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next_change(&mut stream).await);
    }

    server.stop().await;
    // Down: calls are Unavailable, the subscription waits.
    let down = remote.profiles().get(&ProfileId::new("x")).await;
    assert!(
        matches!(&down, Err(e) if e.is_retryable()),
        "expected Unavailable while the server is down, got {down:?}"
    );
    // Written while no server runs: the subscriber must still get these.
    let ds = sqlite(dir.path()).await;
    for name in ["b1", "b2"] {
        put(&*ds, name).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = serve_at(ds, addr, None).await;
    for name in ["c1", "c2"] {
        put(&*remote, name).await;
    }
    for _ in 0..4 {
        got.push(next_change(&mut stream).await);
    }
    let all = remote
        .changes()
        .since(FeedCursor::START, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(got, all, "every change once, in order");
    // And nothing after.
    let extra = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(extra.is_err(), "nothing repeated: {extra:?}");

    remote.close().await.unwrap();
    server.stop().await;
}
