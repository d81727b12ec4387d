//! Opening stores by URL and configuration.

mod common;

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

fn read_only(url: &str) -> Config {
    let mut config = Config::with_url(url);
    config.read_only = true;
    config.cache.enabled = false;
    config
}

/// Every file and folder under `dir`, for "nothing was created".
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A read-only open of a store that is not there is an error naming the
/// URL, and creates nothing: no SQLite file, no RocksDB folder.
#[tokio::test]
async fn read_only_opens_of_missing_stores_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("sqlite://{}/typo.db", dir.path().display()),
        format!("rocksdb://{}/missing", dir.path().display()),
    ] {
        let err = datastore::open(&read_only(&url)).await.unwrap_err();
        assert!(
            matches!(&err, OpenError::Store(e) if e.is_not_found()),
            "{url}: {err}"
        );
        assert!(err.to_string().contains(&url), "names the URL: {err}");
        assert_eq!(listing(dir.path()), Vec::<String>::new(), "{url}");
    }
    // Writable, but told not to create: refused, and no folder left.
    let url = format!(
        "rocksdb://{}/nocreate?create_if_missing=false",
        dir.path().display()
    );
    let err = datastore::open_url(&url).await.unwrap_err();
    assert!(err.to_string().contains("nocreate"), "{err}");
    assert_eq!(listing(dir.path()), Vec::<String>::new());
}

/// A read-only store reads what is there and refuses writes as
/// `Unsupported`, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_stores_read_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("rocksdb://{}/ro", dir.path().display()),
        format!("sqlite://{}/ro.db", dir.path().display()),
    ] {
        let ds = datastore::open_url(&url).await.unwrap();
        let mut p = Profile::new("alice");
        p.id = ProfileId::new("a");
        ds.profiles()
            .put(p.clone(), Precondition::MustNotExist)
            .await
            .unwrap();
        ds.close().await.unwrap();
        drop(ds);

        let ro = datastore::open(&read_only(&url)).await.unwrap();
        assert!(ro.capabilities().read_only, "{url}");
        let got = ro.profiles().get(&ProfileId::new("a")).await.unwrap();
        assert_eq!(got.value.username, "alice");
        p.id = ProfileId::new("b");
        p.username = "bob".into();
        let err = ro
            .profiles()
            .put(p, Precondition::MustNotExist)
            .await
            .unwrap_err();
        assert!(
            matches!(err, datastore::Error::Unsupported { .. }),
            "{url}: {err}"
        );
        assert_eq!(ro.changes().head().await.unwrap().0, 1, "{url}");
        ro.close().await.unwrap();
    }
}

/// Someone else's SQLite file: a read-only open is refused and leaves the
/// file byte for byte as it was; a writable open without migrating is
/// refused too.
#[tokio::test]
async fn a_foreign_sqlite_file_is_refused_and_left_alone() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs.db");
    let mut conn =
        sqlx::sqlite::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
    sqlx::query("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let before = std::fs::read(&path).unwrap();
    let url = format!("sqlite://{}", path.display());

    let err = datastore::open(&read_only(&url)).await.unwrap_err();
    assert!(err.to_string().contains("no datastore here"), "{err}");
    let mut no_migrate = Config::with_url(&url);
    no_migrate.migrate_on_open = false;
    let err = datastore::open(&no_migrate).await.unwrap_err();
    assert!(err.to_string().contains("no datastore here"), "{err}");

    assert!(std::fs::read(&path).unwrap() == before, "the file changed");
    assert_eq!(listing(dir.path()), ["theirs.db"]);
}

/// A PostgreSQL schema without this project's tables: a read-only open is
/// refused and creates no table.
#[tokio::test]
async fn a_read_only_open_of_an_empty_postgres_schema_creates_no_table() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let mut config = schema.config();
    config.read_only = true;
    config.cache.enabled = false;
    let err = datastore::open(&config).await.unwrap_err();
    assert!(
        matches!(&err, OpenError::Store(e) if e.is_not_found()),
        "{err}"
    );
    assert!(!err.to_string().contains("password"), "{err}");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url)
        .await
        .unwrap();
    let (tables,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM information_schema.tables WHERE table_schema = $1")
            .bind(&schema.name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(tables, 0, "a read-only open created tables");
    schema.drop().await;
}
