//! Opening stores by URL and configuration.

use datastore::{Config, OpenError, Precondition, Profile, ProfileId};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_embedded_backend_opens_by_url_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("rocksdb://{}/rocks", dir.path().display()),
        format!("sqlite://{}/app.db", dir.path().display()),
    ] {
        let ds = datastore::open_url(&url).await.unwrap();
        let mut p = Profile::new("a");
        p.id = ProfileId::new("a");
        ds.profiles()
            .put(p, Precondition::MustNotExist)
            .await
            .unwrap();
        ds.close().await.unwrap();
        drop(ds);
        let again = datastore::open_url(&url).await.unwrap();
        assert_eq!(
            again
                .profiles()
                .get(&ProfileId::new("a"))
                .await
                .unwrap()
                .value
                .username,
            "a",
            "{url}"
        );
        again.close().await.unwrap();
    }
}

#[tokio::test]
async fn bad_urls_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let err = datastore::open_url("mysql://root@127.0.0.1/test")
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::UnknownScheme { .. }), "{err}");
    let url = format!("rocksdb://{}/x?sync=false", dir.path().display());
    let err = datastore::open_url(&url).await.unwrap_err();
    assert!(err.to_string().contains("sync: unknown option"), "{err}");
    assert!(
        !dir.path().join("x").exists(),
        "a refused URL created its folder"
    );
}

#[tokio::test]
async fn a_config_file_with_environment_overrides_opens_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datastore.toml");
    std::fs::write(
        &file,
        format!(
            "url = \"sqlite://{}/from-file.db\"\ninstrument = true\n[cache]\ncapacity = 10\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut config = Config::from_file(&file).unwrap();
    let other = format!("sqlite://{}/from-env.db", dir.path().display());
    config
        .apply_env(|name| (name == "DATASTORE_URL").then(|| other.clone()))
        .unwrap();
    let ds = datastore::open(&config).await.unwrap();
    ds.close().await.unwrap();
    assert!(dir.path().join("from-env.db").exists());
    assert!(!dir.path().join("from-file.db").exists());
}

/// Closing a cached RocksDB store lets go of the database at once: the
/// cache's feed follower must not keep its lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_cached_rocksdb_store_can_be_opened_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}/again", dir.path().display());
    for round in 0..20 {
        let ds = datastore::open_url(&url)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        ds.close().await.unwrap();
        drop(ds);
    }
}
