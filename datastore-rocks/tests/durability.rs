//! What survives a close and reopen, and how bad bytes and bad directories fail.

mod common;

use std::sync::Arc;

use datastore_core::{
    Datastore, Error, FeedCursor, Kind, LogId, LogOp, Precondition, Profile, ProfileId,
    ProfileKind, Run, StoreName, Workflow,
};
use datastore_rocks::{RocksConfig, layout, migrations};

fn open(path: &std::path::Path) -> Arc<dyn Datastore> {
    datastore_rocks::open(RocksConfig::new(path)).expect("open")
}

async fn close(ds: Arc<dyn Datastore>) {
    ds.close().await.unwrap();
    drop(ds);
}

#[tokio::test]
async fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    let alice = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    let w = ds
        .workflows()
        .put(
            Workflow::new("i1", alice.value.id.clone()),
            Precondition::Any,
        )
        .await
        .unwrap();
    let r1 = ds
        .runs()
        .create(Run::new(w.value.id.clone(), vec![]))
        .await
        .unwrap();
    ds.logs()
        .append(&LogId::new("l"), 0, vec![LogOp::default(); 3])
        .await
        .unwrap();
    let head = ds.changes().head().await.unwrap();
    let changes = ds.changes().since(FeedCursor::START, 100).await.unwrap();
    close(ds).await;

    let ds = open(&path);
    let got = ds.profiles().get_by_username("alice").await.unwrap();
    assert_eq!(got, alice, "value, revision and times survive");
    assert_eq!(ds.runs().latest(&w.value.id).await.unwrap(), r1);
    assert_eq!(ds.logs().length(&LogId::new("l")).await.unwrap(), 3);
    assert_eq!(
        ds.changes().head().await.unwrap(),
        head,
        "the feed cursor survives"
    );
    assert_eq!(
        ds.changes().since(FeedCursor::START, 100).await.unwrap(),
        changes
    );
    // Numbering and revisions continue where they stopped.
    let r2 = ds
        .runs()
        .create(Run::new(w.value.id.clone(), vec![]))
        .await
        .unwrap();
    assert_eq!(r2.value.number, 2);
    assert!(r2.revision.get() > head.0);
    assert_eq!(ds.changes().since(head, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn garbage_bytes_are_corrupt_naming_the_key_and_others_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    for name in ["a", "b", "c"] {
        let mut p = Profile::new(name);
        p.id = ProfileId::new(format!("id-{name}"));
        ds.profiles().put(p, Precondition::Any).await.unwrap();
    }
    close(ds).await;
    {
        let db =
            rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
        let cf = db.cf_handle(layout::RECORDS).unwrap();
        db.put_cf(
            cf,
            layout::record_key(datastore_core::Kind::Profile, "id-b"),
            b"\x07garbage!",
        )
        .unwrap();
    }
    let ds = open(&path);
    match ds.profiles().get(&ProfileId::new("id-b")).await {
        Err(Error::Corrupt { store, key, .. }) => {
            assert_eq!(store, StoreName::Kind(Kind::Profile));
            assert_eq!(key, "id-b");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        ds.profiles()
            .get(&ProfileId::new("id-a"))
            .await
            .unwrap()
            .value
            .username,
        "a"
    );
    assert_eq!(
        ds.profiles()
            .get_by_username("c")
            .await
            .unwrap()
            .value
            .username,
        "c"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_a_profile_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    let mut p = Profile::new("a");
    p.id = ProfileId::new("id-a");
    ds.profiles().put(p, Precondition::Any).await.unwrap();
    close(ds).await;
    rewrite_body(&path, "id-a", br#"{"username": 42}"#);
    let ds = open(&path);
    let err = ds
        .profiles()
        .get(&ProfileId::new("id-a"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { key, .. } if key == "id-a"),
        "{err}"
    );
}

/// Replaces a profile's JSON body, keeping its envelope header.
fn rewrite_body(path: &std::path::Path, id: &str, body: &[u8]) {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, layout::FAMILIES).unwrap();
    let cf = db.cf_handle(layout::RECORDS).unwrap();
    let key = layout::record_key(datastore_core::Kind::Profile, id);
    let value = db.get_cf(cf, &key).unwrap().unwrap();
    let (header, _) = layout::Envelope::decode(&value).unwrap();
    db.put_cf(cf, &key, layout::Envelope::encode(&header, body))
        .unwrap();
}

#[tokio::test]
async fn records_written_before_a_field_existed_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    let mut p = Profile::new("old");
    p.id = ProfileId::new("id-old");
    ds.profiles().put(p, Precondition::Any).await.unwrap();
    close(ds).await;
    // As an older build wrote it: no email, home_url or kind; and a field a
    // newer build added that this one does not know.
    rewrite_body(
        &path,
        "id-old",
        br#"{"id":"id-old","username":"old","name":"Old","created":"2024-01-01T00:00:00Z","updated":"2024-01-01T00:00:00Z","from_the_future":true}"#,
    );
    let ds = open(&path);
    let got = ds.profiles().get(&ProfileId::new("id-old")).await.unwrap();
    assert_eq!(got.value.name, "Old");
    assert_eq!(got.value.email, "");
    assert_eq!(got.value.kind, ProfileKind::User);
    ds.profiles()
        .put(got.value.clone(), got.expect())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_file_or_a_foreign_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "hello").unwrap();
    let err = datastore_rocks::open(RocksConfig::new(&file)).unwrap_err();
    assert!(
        err.is_invalid() && err.to_string().contains("is a file"),
        "{err}"
    );

    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), "meow").unwrap();
    let err = datastore_rocks::open(RocksConfig::new(&foreign)).unwrap_err();
    assert!(
        err.to_string().contains("holds no RocksDB database"),
        "{err}"
    );
    assert!(
        !foreign.join("CURRENT").exists(),
        "nothing was written into it"
    );

    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("CURRENT"), "not a manifest name").unwrap();
    let err = datastore_rocks::open(RocksConfig::new(&fake)).unwrap_err();
    assert!(
        err.to_string().contains(&fake.display().to_string()),
        "names the path: {err}"
    );

    let mut config = RocksConfig::new(dir.path().join("missing"));
    config.create_if_missing = false;
    let err = datastore_rocks::open(config).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn a_locked_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let first = open(&path);
    let err = datastore_rocks::open(RocksConfig::new(&path)).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("locked"), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    close(first).await;
    assert!(
        datastore_rocks::open(RocksConfig::new(&path)).is_ok(),
        "free again once closed and dropped"
    );
}

fn set_meta(path: &std::path::Path, key: &[u8], value: Option<&[u8]>) {
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), path, layout::FAMILIES).unwrap();
    let cf = db.cf_handle(layout::META).unwrap();
    match value {
        Some(v) => db.put_cf(cf, key, v).unwrap(),
        None => db.delete_cf(cf, key).unwrap(),
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    close(open(&path)).await;
    set_meta(
        &path,
        layout::SCHEMA_VERSION,
        Some(&(migrations::CURRENT + 1).to_be_bytes()),
    );
    let err = datastore_rocks::open(RocksConfig::new(&path)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn migrating_from_version_1_rebuilds_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    let w = ds
        .workflows()
        .put(Workflow::new("i1", "o"), Precondition::Any)
        .await
        .unwrap();
    for _ in 0..3 {
        ds.runs()
            .create(Run::new(w.value.id.clone(), vec![]))
            .await
            .unwrap();
    }
    ds.profiles()
        .put(Profile::new("alice"), Precondition::Any)
        .await
        .unwrap();
    close(ds).await;
    {
        // A version-1 database: no fingerprint, and (to prove the rebuild) no index entries.
        let db =
            rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
        let meta = db.cf_handle(layout::META).unwrap();
        db.put_cf(meta, layout::SCHEMA_VERSION, 1u32.to_be_bytes())
            .unwrap();
        db.delete_cf(meta, layout::INDEX_FINGERPRINT).unwrap();
        let indexes = db.cf_handle(layout::INDEXES).unwrap();
        db.delete_range_cf(indexes, [0u8].as_slice(), [0xFFu8].as_slice())
            .unwrap();
    }
    let ds = open(&path);
    assert_eq!(
        ds.profiles()
            .get_by_username("alice")
            .await
            .unwrap()
            .value
            .username,
        "alice"
    );
    assert_eq!(ds.runs().count(&w.value.id).await.unwrap(), 3);
    assert_eq!(ds.runs().latest(&w.value.id).await.unwrap().value.number, 3);
    close(ds).await;
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
    let version = db
        .get_cf(db.cf_handle(layout::META).unwrap(), layout::SCHEMA_VERSION)
        .unwrap()
        .unwrap();
    assert_eq!(version, migrations::CURRENT.to_be_bytes());
}

#[tokio::test]
async fn a_changed_index_definition_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    ds.profiles()
        .put(Profile::new("bob"), Precondition::Any)
        .await
        .unwrap();
    close(ds).await;
    set_meta(
        &path,
        layout::INDEX_FINGERPRINT,
        Some(b"an older set of indexes"),
    );
    {
        // Drop the username index behind the store's back.
        let db =
            rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
        let indexes = db.cf_handle(layout::INDEXES).unwrap();
        db.delete_range_cf(indexes, [0u8].as_slice(), [0xFFu8].as_slice())
            .unwrap();
    }
    let store = datastore_core::EngineStore::new(
        datastore_rocks::RocksEngine::open(RocksConfig::new(&path)).unwrap(),
    );
    assert!(
        store.engine().check_indexes().unwrap().is_empty(),
        "rebuilt at open"
    );
    let ds: Arc<dyn Datastore> = Arc::new(store);
    assert!(ds.profiles().get_by_username("bob").await.is_ok());
}

#[tokio::test]
async fn check_indexes_finds_a_dangling_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    ds.profiles()
        .put(Profile::new("carol"), Precondition::Any)
        .await
        .unwrap();
    close(ds).await;
    {
        let db =
            rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
        let indexes = db.cf_handle(layout::INDEXES).unwrap();
        let key = layout::index_key(
            datastore_core::Kind::Profile,
            "username",
            &[datastore_core::IndexValue::str("ghost")],
            "nobody",
        );
        db.put_cf(indexes, key, b"nobody").unwrap();
    }
    let engine = datastore_rocks::RocksEngine::open(RocksConfig::new(&path)).unwrap();
    let problems = engine.check_indexes().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("no record owning it"), "{problems:?}");
}

/// A version-2 database (no history family, envelopes without an actor)
/// is refused read-only with the migration named, and migrated at a
/// writable open: each record's history starts at the version it has.
#[tokio::test]
async fn migrating_from_version_2_starts_history_at_the_current_version() {
    use datastore_core::{Actor, PageRequest};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ds = open(&path);
    let v1 = ds
        .profiles()
        .put(Profile::new("alice"), Precondition::MustNotExist)
        .await
        .unwrap();
    let mut edit = v1.value.clone();
    edit.name = "Alice".into();
    let v2 = ds
        .with_actor(Actor::service("editor"))
        .profiles()
        .put(edit, v1.expect())
        .await
        .unwrap();
    close(ds).await;
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let mut db = rocksdb::DB::open_cf(&opts, &path, layout::FAMILIES).unwrap();
        // Envelope version 1: no actor field after the three times.
        let records = db.cf_handle(layout::RECORDS).unwrap();
        let old: Vec<(Vec<u8>, Vec<u8>)> = db
            .iterator_cf(records, rocksdb::IteratorMode::Start)
            .map(|kv| {
                let (k, v) = kv.unwrap();
                let actor_len = u16::from_be_bytes([v[25], v[26]]) as usize;
                let mut v1 = vec![1u8];
                v1.extend_from_slice(&v[1..25]);
                v1.extend_from_slice(&v[27 + actor_len..]);
                (k.to_vec(), v1)
            })
            .collect();
        for (k, v) in old {
            db.put_cf(records, k, v).unwrap();
        }
        let meta = db.cf_handle(layout::META).unwrap();
        db.put_cf(meta, layout::SCHEMA_VERSION, 2u32.to_be_bytes())
            .unwrap();
        db.drop_cf(layout::HISTORY).unwrap();
    }
    let mut read_only = RocksConfig::new(&path);
    read_only.read_only = true;
    let err = datastore_rocks::open(read_only).unwrap_err();
    assert!(
        err.to_string().contains("datastore migrate") && err.to_string().contains("history"),
        "{err}"
    );

    let ds = open(&path);
    let got = ds.profiles().get(&v1.value.id).await.unwrap();
    assert_eq!((got.revision, got.actor), (v2.revision, None));
    let history = ds
        .profiles()
        .history(&v1.value.id, PageRequest::first(10))
        .await
        .unwrap();
    let revisions: Vec<_> = history.items.iter().map(|v| v.revision).collect();
    assert_eq!(revisions, vec![v2.revision]);
    assert!(matches!(
        ds.profiles().get_at(&v1.value.id, v1.revision).await,
        Err(Error::VersionExpired { .. })
    ));
    close(ds).await;
    let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &path, layout::FAMILIES).unwrap();
    let version = db
        .get_cf(db.cf_handle(layout::META).unwrap(), layout::SCHEMA_VERSION)
        .unwrap()
        .unwrap();
    assert_eq!(version, migrations::CURRENT.to_be_bytes());
}
