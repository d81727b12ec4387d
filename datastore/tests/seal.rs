//! Sealing: private key material never reaches a backend, a log line, a
//! Debug string or an error message in the clear.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use datastore::{
    Config, Datastore, Error, Instrumented, Key, KeyId, Precondition, PrivateKey, Profile, Sealed,
    SealingKey,
};

const MATERIAL: &str = "ed25519-private-TOP-SECRET-4f9a1c";

/// A key of profile `owner-1` with this public key (its id follows from it).
fn key(public: &str) -> Key {
    let mut k = Key::new("owner-1", public);
    k.private_key = Some(PrivateKey::new(MATERIAL));
    k
}

fn id(public: &str) -> KeyId {
    KeyId::for_public_key(public)
}

/// The profiles keys belong to.
async fn owners(ds: &Arc<dyn Datastore>) {
    for owner in ["owner-1", "owner-2"] {
        let mut p = Profile::new(owner);
        p.id = owner.into();
        ds.profiles().put(p, Precondition::Any).await.unwrap();
    }
}

/// Whether any file under `dir` contains `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

async fn open(url: &str, sealing_key: Option<&SealingKey>) -> Arc<dyn Datastore> {
    let mut config = Config::with_url(url);
    config.cache.enabled = false;
    let backend = datastore::open(&config).await.unwrap();
    match sealing_key {
        Some(k) => Sealed::wrap(backend, k.clone()).into_dyn(),
        None => backend,
    }
}

async fn write_and_read_back(url: &str, sealing_key: Option<&SealingKey>) {
    let ds = open(url, sealing_key).await;
    owners(&ds).await;
    ds.keys()
        .put(key("k1"), Precondition::MustNotExist)
        .await
        .unwrap();
    ds.apply(datastore::Batch::new().put(key("k2"), Precondition::MustNotExist))
        .await
        .unwrap();
    for public in ["k1", "k2"] {
        let read = ds.keys().get(&id(public)).await.unwrap();
        assert_eq!(read.value.private_key.as_ref().unwrap().expose(), MATERIAL);
    }
    ds.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_files_never_hold_sealed_material() {
    let sealing_key = SealingKey::generate();
    let sealed_dir = tempfile::tempdir().unwrap();
    write_and_read_back(
        &format!("rocksdb://{}", sealed_dir.path().display()),
        Some(&sealing_key),
    )
    .await;
    assert!(!files_contain(sealed_dir.path(), MATERIAL.as_bytes()));

    // The control: without sealing the same bytes are there to be found,
    // so the search above can fail.
    let plain_dir = tempfile::tempdir().unwrap();
    write_and_read_back(&format!("rocksdb://{}", plain_dir.path().display()), None).await;
    assert!(files_contain(plain_dir.path(), MATERIAL.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_never_hold_sealed_material() {
    let sealing_key = SealingKey::generate();
    let sealed_dir = tempfile::tempdir().unwrap();
    write_and_read_back(
        &format!("sqlite://{}/k.db", sealed_dir.path().display()),
        Some(&sealing_key),
    )
    .await;
    assert!(!files_contain(sealed_dir.path(), MATERIAL.as_bytes()));

    let plain_dir = tempfile::tempdir().unwrap();
    write_and_read_back(
        &format!("sqlite://{}/k.db", plain_dir.path().display()),
        None,
    )
    .await;
    assert!(files_contain(plain_dir.path(), MATERIAL.as_bytes()));
}

#[tokio::test]
async fn a_wrong_sealing_key_is_a_clear_error_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/k.db", dir.path().display());
    write_and_read_back(&url, Some(&SealingKey::generate())).await;
    let ds = open(&url, Some(&SealingKey::generate())).await;
    let err = ds.keys().get(&id("k1")).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("sealing key is wrong"), "{text}");
    assert!(text.contains(id("k1").as_str()), "{text}");
    assert!(!text.contains(MATERIAL));
    // Reading without any sealing key shows the sealed text, never the material.
    let raw = open(&url, None).await;
    let read = raw.keys().get(&id("k1")).await.unwrap();
    let stored = read.value.private_key.unwrap();
    assert!(stored.expose().starts_with(datastore::SEALED_PREFIX));
    assert!(!stored.expose().contains(MATERIAL));
}

#[tokio::test]
async fn sealed_text_moved_to_another_profile_does_not_open() {
    let sealing_key = SealingKey::generate();
    let backend = datastore::memory::open();
    owners(&backend).await;
    let sealed = Sealed::wrap(backend.clone(), sealing_key);
    sealed
        .keys()
        .put(key("k1"), Precondition::MustNotExist)
        .await
        .unwrap();
    // Someone with write access to the raw store copies the sealed text
    // onto a key of another profile.
    let stolen = backend
        .keys()
        .get(&id("k1"))
        .await
        .unwrap()
        .value
        .private_key;
    let mut other = Key::new("owner-2", "pub");
    other.private_key = stolen;
    backend
        .keys()
        .put(other, Precondition::MustNotExist)
        .await
        .unwrap();
    let err = sealed.keys().get(&id("pub")).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
}

/// A writer the tracing subscriber logs into, for reading the logs back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_log_line_debug_string_or_error_shows_key_material() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sealing_key = SealingKey::generate();
    let instrumented = Instrumented::wrap(datastore::memory::open());
    let ds = Sealed::wrap(instrumented.into_dyn(), sealing_key.clone()).into_dyn();
    owners(&ds).await;
    let written = ds
        .keys()
        .put(key("k1"), Precondition::MustNotExist)
        .await
        .unwrap();
    let read = ds.keys().get(&id("k1")).await.unwrap();
    let conflict = ds
        .keys()
        .put(key("k1"), Precondition::MustNotExist)
        .await
        .unwrap_err();
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("keys"),
        "the instrumentation logged nothing: {logs}"
    );

    let key_text = sealing_key.to_base64();
    let shown =
        format!("{logs}\n{written:?}\n{read:?}\n{conflict}\n{conflict:?}\n{sealing_key:?}\n{ds:?}");
    assert!(!shown.contains(MATERIAL), "{shown}");
    assert!(
        !shown.contains(&key_text),
        "the sealing key leaked: {shown}"
    );
}

#[test]
fn sealing_keys_read_from_hex_or_base64_and_name_what_is_wrong() {
    let key = SealingKey::generate();
    let again: SealingKey = key.to_base64().parse().unwrap();
    assert_eq!(again, key);
    let hex: SealingKey = "00".repeat(32).parse().unwrap();
    assert_eq!(hex, SealingKey::from_bytes([0; 32]));
    let err = "too-short".parse::<SealingKey>().unwrap_err().to_string();
    assert!(err.contains("expected 32 bytes"), "{err}");
    assert!(!format!("{key:?}").contains(&key.to_base64()));
}

#[tokio::test]
async fn the_configured_sealing_key_is_applied_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sealing.key");
    std::fs::write(&key_file, SealingKey::generate().to_base64()).unwrap();
    let url = format!("sqlite://{}/k.db", dir.path().display());
    let mut config = Config::with_url(&url);
    config.sealing.key_file = Some(key_file);
    let ds = datastore::open(&config).await.unwrap();
    owners(&ds).await;
    ds.keys()
        .put(key("k1"), Precondition::MustNotExist)
        .await
        .unwrap();
    assert_eq!(
        ds.keys()
            .get(&id("k1"))
            .await
            .unwrap()
            .value
            .private_key
            .unwrap()
            .expose(),
        MATERIAL
    );
    ds.close().await.unwrap();
    let raw = open(&url, None).await;
    let stored = raw
        .keys()
        .get(&id("k1"))
        .await
        .unwrap()
        .value
        .private_key
        .unwrap();
    assert!(stored.expose().starts_with(datastore::SEALED_PREFIX));

    let mut bad = Config::with_url(&url);
    bad.sealing.key_env = Some("DATASTORE_TEST_UNSET_SEALING_KEY".into());
    let err = datastore::open(&bad).await.unwrap_err().to_string();
    assert!(
        err.contains("DATASTORE_TEST_UNSET_SEALING_KEY") && err.contains("not set"),
        "{err}"
    );
}
