//! SQLite with two handles on one file (as two processes would have), eight
//! writers each: busy waits, never "database is locked".

use std::sync::Arc;

use datastore_core::{Datastore, FeedCursor, Precondition, Profile};
use datastore_sql::SqlConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_on_two_handles_never_see_locked() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let a = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    let b = datastore_sql::open(SqlConfig::new(&url)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let ds: Arc<dyn Datastore> = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                ds.profiles()
                    .put(
                        Profile::new(format!("w{w}-{i}")),
                        Precondition::MustNotExist,
                    )
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let changes = a.changes().since(FeedCursor::START, 1000).await.unwrap();
    assert_eq!(changes.len(), 400);
    for w in changes.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "sequence numbers are contiguous");
    }
}
