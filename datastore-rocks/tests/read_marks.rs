//! Read marks: a `Require` or `RaiseCounter` carrying the mark its caller
//! read at skips the commit's second read only while nothing has been
//! written since, and never past a write earlier in its own commit. Each
//! case runs on both writers: the inline one (`sync_on_commit = false`)
//! and the group-commit thread.

use datastore_core::{
    CounterRaise, Engine, Error, Kind, Mutation, Precondition, PutRecord, Requirement,
};
use datastore_rocks::{RocksConfig, RocksEngine};

fn open(dir: &tempfile::TempDir, sync_on_commit: bool) -> RocksEngine {
    let mut config = RocksConfig::new(dir.path().join("db"));
    config.sync_on_commit = sync_on_commit;
    RocksEngine::open(config).unwrap()
}

fn put(kind: Kind, key: &str) -> Mutation {
    Mutation::Put(PutRecord {
        kind,
        key: key.to_string(),
        body: br#"{"note":"a test record"}"#.to_vec(),
        index: Vec::new(),
        precondition: Precondition::Any,
        parent: None,
        actor: None,
        history: false,
    })
}

fn require(key: &str, seen_at: Option<datastore_core::ReadMark>) -> Mutation {
    Mutation::Require(Requirement {
        kind: Kind::Workflow,
        key: key.to_string(),
        precondition: Precondition::MustExist,
        seen_at,
    })
}

fn raise(to: u64, seen_at: Option<datastore_core::ReadMark>) -> Mutation {
    Mutation::RaiseCounter(CounterRaise {
        name: "runs:wf".to_string(),
        to,
        seen_at,
    })
}

async fn exists(engine: &RocksEngine, kind: Kind, key: &str) -> bool {
    engine.get(kind, &[key.to_string()]).await.unwrap()[0].is_some()
}

/// Runs `case` on a fresh database with each writer.
async fn on_both_writers<F, Fut>(case: F)
where
    F: Fn(RocksEngine) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for sync_on_commit in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        case(open(&dir, sync_on_commit)).await;
    }
}

#[tokio::test]
async fn every_write_moves_the_mark_and_a_refused_commit_does_not() {
    on_both_writers(|engine| async move {
        let before = engine.read_mark().expect("RocksDB keeps a read mark");
        engine
            .commit(vec![put(Kind::Workflow, "wf")])
            .await
            .unwrap();
        let after = engine.read_mark().unwrap();
        assert_ne!(before, after, "a commit moves the mark");
        let refused = engine
            .commit(vec![put(Kind::Run, "r"), require("missing", None)])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert_eq!(engine.read_mark().unwrap(), after, "nothing was written");
    })
    .await;
}

#[tokio::test]
async fn a_requirement_seen_before_a_delete_is_read_again_and_refused() {
    on_both_writers(|engine| async move {
        engine
            .commit(vec![put(Kind::Workflow, "wf")])
            .await
            .unwrap();
        let seen = engine.read_mark();
        assert!(exists(&engine, Kind::Workflow, "wf").await);
        engine
            .commit(vec![Mutation::delete(
                Kind::Workflow,
                "wf",
                Precondition::Any,
            )])
            .await
            .unwrap();
        let refused = engine
            .commit(vec![put(Kind::Run, "r"), require("wf", seen)])
            .await;
        assert!(
            matches!(&refused, Err(Error::NotFound { key, .. }) if key == "wf"),
            "{refused:?}"
        );
        assert!(!exists(&engine, Kind::Run, "r").await, "nothing written");
    })
    .await;
}

#[tokio::test]
async fn a_requirement_after_a_delete_in_its_own_commit_is_read_again() {
    on_both_writers(|engine| async move {
        engine
            .commit(vec![put(Kind::Workflow, "wf")])
            .await
            .unwrap();
        let seen = engine.read_mark();
        let refused = engine
            .commit(vec![
                Mutation::delete(Kind::Workflow, "wf", Precondition::Any),
                require("wf", seen),
            ])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert!(exists(&engine, Kind::Workflow, "wf").await, "delete undone");
    })
    .await;
}

#[tokio::test]
async fn an_unmoved_mark_is_taken_at_its_word() {
    // What saves the read: with nothing written since the caller's read,
    // the commit does not look again. (A caller only sends a mark with a
    // requirement it saw hold; here the word is false on purpose, to show
    // it is the word and not a read that lets the commit through.)
    on_both_writers(|engine| async move {
        let seen = engine.read_mark();
        engine
            .commit(vec![put(Kind::Run, "r"), require("never-written", seen)])
            .await
            .unwrap();
        assert!(exists(&engine, Kind::Run, "r").await);
    })
    .await;
}

#[tokio::test]
async fn a_counter_seen_before_a_raise_is_not_lowered() {
    on_both_writers(|engine| async move {
        let seen = engine.read_mark();
        assert_eq!(engine.counter("runs:wf").await.unwrap(), 0);
        engine.commit(vec![raise(5, None)]).await.unwrap();
        engine.commit(vec![raise(3, seen)]).await.unwrap();
        assert_eq!(engine.counter("runs:wf").await.unwrap(), 5);
    })
    .await;
}

#[tokio::test]
async fn a_counter_raised_earlier_in_its_commit_is_not_lowered() {
    on_both_writers(|engine| async move {
        let seen = engine.read_mark();
        engine
            .commit(vec![raise(5, None), raise(3, seen)])
            .await
            .unwrap();
        assert_eq!(engine.counter("runs:wf").await.unwrap(), 5);
    })
    .await;
}

#[tokio::test]
async fn a_counter_seen_below_with_nothing_written_since_is_raised() {
    on_both_writers(|engine| async move {
        engine.commit(vec![raise(2, None)]).await.unwrap();
        let seen = engine.read_mark();
        assert_eq!(engine.counter("runs:wf").await.unwrap(), 2);
        engine.commit(vec![raise(3, seen)]).await.unwrap();
        assert_eq!(engine.counter("runs:wf").await.unwrap(), 3);
    })
    .await;
}
