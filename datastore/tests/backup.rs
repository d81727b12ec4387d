//! `Datastore::backup` under a running writer: the copy opens, its feed
//! head is the position the backup returned, every write acknowledged up
//! to it is in the copy and none after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use datastore::{Error, FeedCursor, Precondition, Profile, ProfileId};

async fn backup_under_writes(
    url: &str,
    copy_url: impl Fn(&std::path::Path) -> String,
    dest: &std::path::Path,
) {
    let ds = datastore::open_url(url).await.unwrap();
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (ds, acked, stop) = (ds.clone(), acked.clone(), stop.clone());
        async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut p = Profile::new(format!("user{n}"));
                p.id = ProfileId::new(format!("p{n}"));
                let v = ds
                    .profiles()
                    .put(p, Precondition::MustNotExist)
                    .await
                    .unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push((format!("p{n}"), v.revision.get()));
                n += 1;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let at = ds.backup(dest).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    // A second backup to the same place is refused, and writes nothing.
    match ds.backup(dest).await {
        Err(Error::Invalid { field, .. }) => assert_eq!(field, "destination"),
        other => panic!("expected Invalid naming the destination, got {other:?}"),
    }
    ds.close().await.unwrap();

    let acked = acked.lock().unwrap().clone();
    let before = acked.iter().filter(|(_, r)| *r <= at.0).count();
    assert!(
        before > 0 && before < acked.len(),
        "the backup ran while writes went on: {before} of {}",
        acked.len()
    );
    let copy = datastore::open_url(&copy_url(dest)).await.unwrap();
    assert_eq!(
        copy.changes().head().await.unwrap(),
        at,
        "the copy's head is the position it claims"
    );
    for (id, revision) in &acked {
        let found = copy.profiles().get(&ProfileId::new(id.clone())).await;
        if *revision <= at.0 {
            assert_eq!(
                found.unwrap().revision.get(),
                *revision,
                "{id} acknowledged before the backup"
            );
        } else {
            assert!(
                matches!(found, Err(Error::NotFound { .. })),
                "{id} came after the backup"
            );
        }
    }
    let feed = copy
        .changes()
        .since(FeedCursor::START, 10_000)
        .await
        .unwrap();
    assert_eq!(feed.last().map(|c| c.cursor()), Some(at));
    copy.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_backup_is_a_consistent_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}", dir.path().join("live").display());
    let dest = dir.path().join("backup");
    backup_under_writes(&url, |d| format!("rocksdb://{}", d.display()), &dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_is_a_consistent_copy() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let dest = dir.path().join("backup.db");
    backup_under_writes(&url, |d| format!("sqlite://{}", d.display()), &dest).await;
}

#[tokio::test]
async fn memory_has_no_file_backup() {
    let ds = datastore::open_url("memory://").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    match ds.backup(&dir.path().join("x")).await {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

mod common;

/// A writer of new profiles, until stopped; what it was acknowledged.
struct Writer {
    acked: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(ds: &Arc<dyn datastore::Datastore>) -> Writer {
        let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (ds, acked, stop) = (ds.clone(), acked.clone(), stop.clone());
            async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut p = Profile::new(format!("user{n}"));
                    p.id = ProfileId::new(format!("p{n}"));
                    let v = ds
                        .profiles()
                        .put(p, Precondition::MustNotExist)
                        .await
                        .unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push((format!("p{n}"), v.revision.get()));
                    n += 1;
                }
            }
        });
        Writer { acked, stop, task }
    }

    async fn stop(self) -> Vec<(String, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// Restores `backup` (JSON Lines) into the empty `dest` and checks the
/// cursor rules: the feed continues after the backup's position, older
/// cursors are expired, a subscriber at the position gets every restored
/// record and then new writes; a second restore is refused.
async fn restore_lines_and_resume(
    backup: &[u8],
    acked: &[(String, u64)],
    dest: Arc<dyn datastore::Datastore>,
) {
    use datastore::transfer;
    let header = transfer::read_header(backup).unwrap().expect("a header");
    let at = FeedCursor(header.feed_position);
    let items = transfer::validate(backup).unwrap();
    let before: Vec<&(String, u64)> = acked.iter().filter(|(_, r)| *r <= at.0).collect();
    assert!(
        !before.is_empty() && before.len() < acked.len(),
        "the backup ran while writes went on: {} of {}",
        before.len(),
        acked.len()
    );
    assert_eq!(
        items,
        before.len() as u64,
        "every acknowledged write, none after"
    );

    assert_eq!(
        transfer::start_restore(&*dest, at, false).await.unwrap(),
        at
    );
    let stats = transfer::import(&*dest, backup, |_| {}).await.unwrap();
    assert_eq!(stats.written, items);
    for (id, revision) in acked {
        let found = dest.profiles().get(&ProfileId::new(id.clone())).await;
        if *revision <= at.0 {
            assert!(
                found.unwrap().revision.get() > at.0,
                "{id} restored after the position"
            );
        } else {
            assert!(
                matches!(found, Err(Error::NotFound { .. })),
                "{id} came after the backup"
            );
        }
    }
    let head = dest.changes().head().await.unwrap();
    assert_eq!(head.0, at.0 + items);
    let verified = transfer::verify(&*dest, |_| {}).await.unwrap();
    assert_eq!(verified.problems, Vec::<String>::new());
    assert_eq!((verified.items, verified.head), (items, head));

    // An older cursor: expired, not a silent gap.
    match dest.changes().since(FeedCursor(at.0 - 1), 10).await {
        Err(Error::CursorExpired {
            compacted_through, ..
        }) => assert_eq!(compacted_through, at.0),
        other => panic!("expected CursorExpired, got {other:?}"),
    }
    // A subscriber at the position: every restored record, then new writes.
    let mut stream = dest.changes().subscribe(at);
    let late = dest
        .profiles()
        .put(Profile::new("late"), Precondition::MustNotExist)
        .await
        .unwrap();
    let mut seqs = Vec::new();
    while seqs.len() < items as usize + 1 {
        match tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut stream),
        )
        .await
        .expect("the subscriber follows")
        {
            Some(Ok(datastore::FeedEvent::Change(c))) => seqs.push(c.seq),
            other => panic!("expected a change, got {other:?}"),
        }
    }
    let expected: Vec<u64> = (at.0 + 1..=late.revision.get()).collect();
    assert_eq!(seqs, expected, "no gap, nothing twice");

    match transfer::start_restore(&*dest, at, false).await {
        Err(transfer::TransferError::NotEmpty { items: n }) => assert_eq!(n, items + 1),
        other => panic!("a second restore is refused: {other:?}"),
    }
    dest.close().await.unwrap();
}

/// A JSON Lines snapshot of a live store: its header names the position.
async fn lines_backup_under_writes(
    ds: Arc<dyn datastore::Datastore>,
) -> (Vec<u8>, Vec<(String, u64)>) {
    let writer = Writer::start(&ds);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut out = Vec::new();
    let (header, stats) = datastore::transfer::export_snapshot(&*ds, &mut out, |_| {})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let acked = writer.stop().await;
    assert_eq!(header.backend, ds.capabilities().backend);
    assert!(stats.written > 0);
    ds.close().await.unwrap();
    (out, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_is_a_consistent_snapshot_and_restores() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let (backup, acked) = lines_backup_under_writes(schema.open_uncached().await).await;
    schema.drop().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = datastore::open_url(&format!(
        "sqlite://{}",
        dir.path().join("restored.db").display()
    ))
    .await
    .unwrap();
    restore_lines_and_resume(&backup, &acked, dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lines_backup_restores_into_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore::open_url(&format!(
        "sqlite://{}",
        dir.path().join("live.db").display()
    ))
    .await
    .unwrap();
    let (backup, acked) = lines_backup_under_writes(ds).await;
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    restore_lines_and_resume(&backup, &acked, schema.open_uncached().await).await;
    schema.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_checkpoint_restores_into_memory() {
    use datastore::transfer;
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore::open_url(&format!("rocksdb://{}", dir.path().join("live").display()))
        .await
        .unwrap();
    let writer = Writer::start(&ds);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at = ds.backup(&dir.path().join("backup")).await.unwrap();
    let acked = writer.stop().await;
    ds.close().await.unwrap();
    let backup = datastore::open_url(&format!(
        "rocksdb://{}",
        dir.path().join("backup").display()
    ))
    .await
    .unwrap();
    let verified = transfer::verify(&*backup, |_| {}).await.unwrap();
    assert_eq!(
        verified.problems,
        Vec::<String>::new(),
        "the checkpoint is whole"
    );
    assert_eq!(verified.head, at);

    let dest = datastore::open_url("memory://").await.unwrap();
    transfer::start_restore(&*dest, at, false).await.unwrap();
    let stats = transfer::copy(&*backup, &*dest, |_| {}).await.unwrap();
    let before = acked.iter().filter(|(_, r)| *r <= at.0).count() as u64;
    assert_eq!(stats.written, before);
    assert_eq!(dest.changes().head().await.unwrap().0, at.0 + before);
    assert_eq!(
        transfer::verify(&*dest, |_| {}).await.unwrap().problems,
        Vec::<String>::new()
    );
    assert!(matches!(
        dest.changes().since(FeedCursor::START, 1).await,
        Err(Error::CursorExpired { .. })
    ));
    backup.close().await.unwrap();
}

/// `verify` finds what is wrong in a damaged SQLite file: a revision
/// beyond the head, a record whose change is gone, a put whose record is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_damaged_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let url = format!("sqlite://{}", path.display());
    let ds = datastore::open_url(&url).await.unwrap();
    for n in 0..5 {
        let mut p = Profile::new(format!("user{n}"));
        p.id = ProfileId::new(format!("p{n}"));
        ds.profiles()
            .put(p, Precondition::MustNotExist)
            .await
            .unwrap();
    }
    let clean = datastore::transfer::verify(&*ds, |_| {}).await.unwrap();
    assert_eq!((clean.items, clean.problems_total), (5, 0));
    ds.close().await.unwrap();

    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    for sql in [
        "UPDATE ds_profiles SET revision = 999 WHERE key = 'p1'",
        "DELETE FROM ds_profiles WHERE key = 'p3'",
        "DELETE FROM ds_changes WHERE key = 'p4'",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    sqlx::Connection::close(conn).await.unwrap();

    let ds = datastore::open_url(&url).await.unwrap();
    let found = datastore::transfer::verify(&*ds, |_| {}).await.unwrap();
    ds.close().await.unwrap();
    let text = found.problems.join("\n");
    for expected in [
        "profile \"p1\" has revision 999 beyond the feed head 5",
        "profile \"p4\" holds revision 5, which no change in the feed names",
        "change 4 wrote profile \"p3\", which the store does not hold",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
}
