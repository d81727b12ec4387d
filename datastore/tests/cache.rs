//! The cache layer: single flight, revision-aware invalidation, and
//! invalidation by another process's writes.

mod common;

use std::sync::Arc;
use std::time::Duration;

use datastore::{
    Batch, CacheConfig, Cached, Datastore, Fault, FaultAction, Faulty, Instrumented, Kind,
    Precondition, Profile, ProfileId, RecordStore, Revision, StoreName, Versioned,
};

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Datastore>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let mut config = datastore::Config::with_url(url);
    config.cache.enabled = false;
    let ds = datastore::open(&config).await.unwrap();
    (dir, ds)
}

fn profile(id: &str, name: &str) -> Profile {
    let mut p = Profile::new(id);
    p.id = ProfileId::new(id);
    p.name = name.into();
    p
}

/// Waits (bounded) until `check` holds; false if it never did.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// A cache over a slow SQLite store (every profile get takes 200 ms more),
/// with the backend's reads counted underneath.
async fn slow_counted_cache(
    seed: Option<Profile>,
) -> (
    tempfile::TempDir,
    Arc<Cached>,
    Arc<datastore::Instrumentation>,
) {
    let (dir, backend) = sqlite().await;
    if let Some(p) = seed {
        backend
            .profiles()
            .put(p, Precondition::MustNotExist)
            .await
            .unwrap();
    }
    let counted = Instrumented::wrap(backend);
    let stats = counted.layer().clone();
    let slow = Faulty::wrap(counted.into_dyn());
    slow.layer().inject(Fault::on(
        StoreName::Kind(Kind::Profile),
        "get",
        FaultAction::DelayAfter(Duration::from_millis(200)),
    ));
    let cached = Arc::new(
        Cached::wrap(slow.into_dyn(), CacheConfig::default())
            .await
            .unwrap(),
    );
    (dir, cached, stats)
}

/// A hundred concurrent gets of `id` through `cached`.
async fn hundred_gets(
    cached: &Arc<Cached>,
    id: &str,
) -> Vec<datastore::Result<Versioned<Profile>>> {
    let gets = (0..100).map(|_| {
        let (cached, id) = (cached.clone(), ProfileId::new(id));
        tokio::spawn(async move { RecordStore::<Profile>::get(&*cached, &id).await })
    });
    futures::future::join_all(gets)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_gets_of_one_record_make_one_backend_read() {
    let (_dir, cached, stats) = slow_counted_cache(Some(profile("p1", "one"))).await;
    for r in hundred_gets(&cached, "p1").await {
        assert_eq!(r.unwrap().value.name, "one");
    }
    assert_eq!(stats.stats(StoreName::Kind(Kind::Profile), "get").calls, 1);
    let cache = cached.layer().stats();
    assert_eq!((cache.misses, cache.hits), (1, 99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_gets_of_a_missing_record_make_one_backend_read() {
    let (_dir, cached, stats) = slow_counted_cache(None).await;
    for r in hundred_gets(&cached, "nobody").await {
        assert!(r.unwrap_err().is_not_found());
    }
    assert_eq!(stats.stats(StoreName::Kind(Kind::Profile), "get").calls, 1);
    // A write through the cache replaces the remembered absence.
    cached
        .profiles()
        .put(
            profile("nobody", "now somebody"),
            Precondition::MustNotExist,
        )
        .await
        .unwrap();
    let found = cached
        .profiles()
        .get(&ProfileId::new("nobody"))
        .await
        .unwrap();
    assert_eq!(found.value.name, "now somebody");
}

/// A profile at revision 1 in SQLite, and a cache over it whose inner calls
/// can be slowed down.
struct Race {
    _dir: tempfile::TempDir,
    backend: Arc<dyn Datastore>,
    first: Versioned<Profile>,
    faults: Arc<datastore::Faults>,
    cached: Arc<Cached>,
}

impl Race {
    async fn new() -> Race {
        let (_dir, backend) = sqlite().await;
        let first = backend
            .profiles()
            .put(profile("p1", "first"), Precondition::MustNotExist)
            .await
            .unwrap();
        let faulty = Faulty::wrap(backend.clone());
        let faults = faulty.layer().clone();
        let cached = Arc::new(
            Cached::wrap(faulty.into_dyn(), CacheConfig::default())
                .await
                .unwrap(),
        );
        Race {
            _dir,
            backend,
            first,
            faults,
            cached,
        }
    }
}

/// The race moka's `try_get_with` loses: a slow load of revision 1 finishes
/// after revision 2 was written by someone else and its invalidation
/// arrived. The cache must end up serving revision 2, and never 1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_load_never_puts_an_older_revision_back() {
    let Race {
        _dir,
        backend,
        first,
        faults,
        cached,
    } = Race::new().await;
    faults.inject(
        Fault::on(
            StoreName::Kind(Kind::Profile),
            "get",
            FaultAction::DelayAfter(Duration::from_millis(400)),
        )
        .times(1),
    );
    let slow_get = tokio::spawn({
        let cached = cached.clone();
        async move { cached.profiles().get(&ProfileId::new("p1")).await }
    });
    // While the load sleeps on revision 1, another writer (straight to the
    // backend, as another process would) writes revision 2.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = backend
        .profiles()
        .put(profile("p1", "second"), first.expect())
        .await
        .unwrap();
    let slow = slow_get.await.unwrap().unwrap();
    assert_eq!(
        slow.revision, first.revision,
        "the slow get read before the write"
    );
    assert_eq!(faults.injected(), 1);
    // Once the feed has told the cache, only revision 2 is served.
    let seen_second = eventually(async || {
        cached
            .profiles()
            .get(&ProfileId::new("p1"))
            .await
            .unwrap()
            .revision
            == second.revision
    })
    .await;
    assert!(seen_second, "the cache kept serving the older revision");
    for _ in 0..50 {
        let got = cached.profiles().get(&ProfileId::new("p1")).await.unwrap();
        assert_eq!(got.revision, second.revision);
        assert_eq!(got.value.name, "second");
    }
}

/// The same race with the newer write made through the cache: from the
/// moment that write returns, no read answers with the older revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_write_through_the_cache_returns_no_read_is_older() {
    let Race {
        _dir,
        backend: _,
        first,
        faults,
        cached,
    } = Race::new().await;
    for op in ["get", "get_many"] {
        faults.inject(
            Fault::on(
                StoreName::Kind(Kind::Profile),
                op,
                FaultAction::DelayAfter(Duration::from_millis(300)),
            )
            .times(1),
        );
    }
    let slow_get = tokio::spawn({
        let cached = cached.clone();
        async move { cached.profiles().get(&ProfileId::new("p1")).await }
    });
    let slow_many = tokio::spawn({
        let cached = cached.clone();
        async move { cached.profiles().get_many(&[ProfileId::new("p1")]).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = cached
        .profiles()
        .put(profile("p1", "second"), first.expect())
        .await
        .unwrap();
    // Reads racing the slow loads: never older than what the write returned.
    for _ in 0..20 {
        let got = cached.profiles().get(&ProfileId::new("p1")).await.unwrap();
        assert!(
            got.revision >= second.revision,
            "{:?} after {:?}",
            got.revision,
            second.revision
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slow_get.await.unwrap().unwrap();
    slow_many.await.unwrap().unwrap();
    for _ in 0..20 {
        let got = cached.profiles().get(&ProfileId::new("p1")).await.unwrap();
        assert_eq!(got.revision, second.revision);
        let many = cached
            .profiles()
            .get_many(&[ProfileId::new("p1")])
            .await
            .unwrap();
        assert_eq!(many[0].as_ref().unwrap().revision, second.revision);
    }
}

#[tokio::test]
async fn deletes_and_batches_through_the_cache_are_read_back() {
    let (_dir, backend) = sqlite().await;
    let cached = Cached::wrap(backend, CacheConfig::default()).await.unwrap();
    let a = cached
        .profiles()
        .put(profile("a", "A"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(
        cached
            .profiles()
            .get(&ProfileId::new("a"))
            .await
            .unwrap()
            .revision,
        a.revision
    );
    let mut edited = a.value.clone();
    edited.name = "A2".into();
    let revisions = cached
        .apply(
            Batch::new()
                .put(edited, a.expect())
                .put(profile("b", "B"), Precondition::MustNotExist),
        )
        .await
        .unwrap();
    let got = cached.profiles().get(&ProfileId::new("a")).await.unwrap();
    assert_eq!(
        (got.value.name.as_str(), got.revision),
        ("A2", revisions[0])
    );
    assert_eq!(
        cached
            .profiles()
            .get(&ProfileId::new("b"))
            .await
            .unwrap()
            .value
            .name,
        "B"
    );
    cached
        .profiles()
        .delete(&ProfileId::new("a"), Precondition::Any)
        .await
        .unwrap();
    assert!(
        cached
            .profiles()
            .get(&ProfileId::new("a"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let many = cached
        .profiles()
        .get_many(&[ProfileId::new("a"), ProfileId::new("b")])
        .await
        .unwrap();
    assert!(many[0].is_none());
    assert_eq!(many[1].as_ref().unwrap().value.name, "B");
}

#[tokio::test]
async fn hits_and_misses_are_counted() {
    let (_dir, backend) = sqlite().await;
    backend
        .profiles()
        .put(profile("a", "A"), Precondition::MustNotExist)
        .await
        .unwrap();
    let cached = Cached::wrap(backend, CacheConfig::default()).await.unwrap();
    for _ in 0..5 {
        cached.profiles().get(&ProfileId::new("a")).await.unwrap();
    }
    let stats = cached.layer().stats();
    assert_eq!((stats.misses, stats.hits), (1, 4));
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (_dir, backend) = sqlite().await;
    backend
        .profiles()
        .put(profile("a", "A"), Precondition::MustNotExist)
        .await
        .unwrap();
    let config = CacheConfig {
        ttl_secs: Some(1),
        ..CacheConfig::default()
    };
    let cached = Cached::wrap(backend, config).await.unwrap();
    cached.profiles().get(&ProfileId::new("a")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    cached.profiles().get(&ProfileId::new("a")).await.unwrap();
    assert_eq!(cached.layer().stats().misses, 2);
}

/// Another process writes to the same PostgreSQL database: the cache hears
/// of it through the feed (LISTEN/NOTIFY) and serves the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writing_to_postgres_invalidates_the_cache() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let mut config = schema.config();
    config.cache = CacheConfig::default();
    let cached = datastore::open(&config).await.unwrap();
    assert_eq!(cached.capabilities().backend, "postgres");

    // 1. A record this process has read (cached), changed by another process.
    let written = cached
        .profiles()
        .put(profile("p1", "before"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(
        cached
            .profiles()
            .get(&ProfileId::new("p1"))
            .await
            .unwrap()
            .value
            .name,
        "before"
    );
    // 2. A record this process found missing (remembered as absent).
    assert!(
        cached
            .profiles()
            .get(&ProfileId::new("p2"))
            .await
            .unwrap_err()
            .is_not_found()
    );

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_in_another_process", "--ignored"])
        .env("CACHE_TEST_WRITER_URL", &schema.url)
        .env("CACHE_TEST_WRITER_SCHEMA", &schema.name)
        .status()
        .unwrap();
    assert!(status.success());
    // And a second connection pool (another instance of a service) edits p1.
    let other = schema.open_uncached().await;
    let mut edit = written.value.clone();
    edit.name = "after".into();
    let after = other.profiles().put(edit, written.expect()).await.unwrap();

    let caught_up = eventually(async || {
        let p1: Versioned<Profile> = cached.profiles().get(&ProfileId::new("p1")).await.unwrap();
        let p2 = cached.profiles().get(&ProfileId::new("p2")).await;
        p1.revision == after.revision && p2.is_ok_and(|p| p.value.name == "from elsewhere")
    })
    .await;
    assert!(caught_up, "the cache never saw the other processes' writes");
    assert!(after.revision > Revision::new(0));
    cached.close().await.unwrap();
    other.close().await.unwrap();
    schema.drop().await;
}

/// The other process of `another_process_writing_to_postgres_invalidates_the_cache`:
/// writes profile p2 into the schema it is given, then exits.
#[tokio::test]
#[ignore = "started by another_process_writing_to_postgres_invalidates_the_cache"]
async fn writer_in_another_process() {
    let Ok(url) = std::env::var("CACHE_TEST_WRITER_URL") else {
        return;
    };
    let mut config = datastore::Config::with_url(url);
    config.sql.schema = std::env::var("CACHE_TEST_WRITER_SCHEMA").ok();
    config.cache.enabled = false;
    let ds = datastore::open(&config).await.unwrap();
    ds.profiles()
        .put(profile("p2", "from elsewhere"), Precondition::MustNotExist)
        .await
        .unwrap();
    ds.close().await.unwrap();
}

/// Two processes on one SQLite file with the cache on (the default): a
/// record this process remembered as missing, then written by another
/// process, is read back once the feed (which follows other processes'
/// commits) has invalidated it, within a moment, not after the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writing_to_sqlite_invalidates_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let cached = datastore::open_url(&url).await.unwrap();
    assert!(
        cached
            .profiles()
            .get(&ProfileId::new("p2"))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "writer_in_another_process", "--ignored"])
        .env("CACHE_TEST_WRITER_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let caught_up = eventually(async || {
        cached
            .profiles()
            .get(&ProfileId::new("p2"))
            .await
            .is_ok_and(|p| p.value.name == "from elsewhere")
    })
    .await;
    assert!(caught_up, "the cache never saw the other process's write");
    eprintln!("seen after {:?}", started.elapsed());
    cached.close().await.unwrap();
}
