//! Layers compose and stay `Datastore`s: the whole conformance suite runs
//! on a stack of all four over real SQLite files, and each layer does its job.

use std::sync::Arc;
use std::time::Duration;

use datastore::{
    CacheConfig, Cached, Datastore, Fault, FaultAction, Faulty, Instrumented, Kind, Precondition,
    Profile, ProfileId, Sealed, SealingKey, StoreName,
};

/// A stack of every layer over a fresh SQLite file.
struct Stack {
    ds: Arc<dyn Datastore>,
    _dir: tempfile::TempDir,
}

impl conformance_tests::Fixture for Stack {
    fn store(&self) -> Arc<dyn Datastore> {
        self.ds.clone()
    }

    async fn teardown(self) {
        let _ = self.ds.close().await;
    }
}

async fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let mut config = datastore::Config::with_url(format!("sqlite://{}/s.db", dir.path().display()));
    config.cache.enabled = false;
    let backend = datastore::open(&config).await.unwrap();
    let ds = Instrumented::wrap(backend).into_dyn();
    let ds = Faulty::wrap(ds).into_dyn();
    let ds = Sealed::wrap(ds, SealingKey::generate()).into_dyn();
    let ds = Cached::wrap(ds, CacheConfig::default())
        .await
        .unwrap()
        .into_dyn();
    Stack { ds, _dir: dir }
}

mod stacked {
    conformance_tests::datastore_conformance!(crate::stack);
}

#[tokio::test]
async fn an_injected_failure_writes_nothing_and_is_retryable() {
    let faulty = Faulty::wrap(datastore::memory::open());
    faulty
        .layer()
        .inject(Fault::on(StoreName::Kind(Kind::Profile), "put", FaultAction::Fail).times(1));
    let err = faulty
        .profiles()
        .put(Profile::new("a"), Precondition::MustNotExist)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("injected fault on put"), "{err}");
    assert_eq!(
        faulty.changes().head().await.unwrap().0,
        0,
        "nothing was written"
    );
    // The fault was used up: the retry goes through.
    let mut p = Profile::new("a");
    p.id = ProfileId::new("a");
    faulty
        .profiles()
        .put(p, Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(faulty.layer().injected(), 1);
}

#[tokio::test]
async fn a_delay_before_holds_the_call_back() {
    let faulty = Faulty::wrap(datastore::memory::open());
    faulty.layer().inject(Fault::on(
        StoreName::Changes,
        "head",
        FaultAction::DelayBefore(Duration::from_millis(300)),
    ));
    let quick = tokio::time::timeout(Duration::from_millis(50), faulty.changes().head()).await;
    assert!(quick.is_err(), "the delayed call returned at once");
}

#[tokio::test]
async fn instrumentation_counts_calls_and_errors_per_operation() {
    let ds = Instrumented::wrap(datastore::memory::open());
    let mut p = Profile::new("a");
    p.id = ProfileId::new("a");
    ds.profiles()
        .put(p.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    ds.profiles()
        .put(p, Precondition::MustNotExist)
        .await
        .unwrap_err();
    ds.profiles().get(&ProfileId::new("a")).await.unwrap();
    let put = ds.layer().stats(StoreName::Kind(Kind::Profile), "put");
    assert_eq!((put.calls, put.errors), (2, 1));
    assert!(put.max >= put.mean());
    assert_eq!(
        ds.layer()
            .stats(StoreName::Kind(Kind::Profile), "get")
            .calls,
        1
    );
    assert_eq!(ds.layer().stats(StoreName::Kind(Kind::Run), "get").calls, 0);
    let ops: Vec<_> = ds
        .layer()
        .snapshot()
        .into_iter()
        .map(|(s, o, _)| format!("{s}.{o}"))
        .collect();
    assert_eq!(ops, ["profiles.get", "profiles.put"]);
}

#[tokio::test]
async fn open_url_caches_a_disk_backend_transparently() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let cached = datastore::open_url(&url).await.unwrap();
    let mut p = Profile::new("a");
    p.id = ProfileId::new("a");
    cached
        .profiles()
        .put(p, Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(
        cached
            .profiles()
            .get(&ProfileId::new("a"))
            .await
            .unwrap()
            .value
            .username,
        "a"
    );
    cached.close().await.unwrap();
}
