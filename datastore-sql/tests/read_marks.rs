//! Read marks on SQLite and PostgreSQL: the mark is the head this process
//! has published, and a `Require` carrying the mark its caller read at is
//! taken at its word only when the writer's lock finds the head unmoved.
//! A write since, by this engine or by another process on the same
//! database (a second engine here), or earlier in the same commit, makes
//! the commit read the record again. The reads a run create makes before
//! its mark is checked (a record and a counter in one statement) are here
//! too. Each case runs on a real SQLite file and a real PostgreSQL schema.

mod common;

use datastore_core::{
    CounterRaise, Engine, Error, Kind, Mutation, Precondition, PutRecord, ReadMark, Requirement,
};
use datastore_sql::{SqlConfig, SqlEngine};

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

fn require(key: &str, seen_at: Option<ReadMark>) -> Mutation {
    Mutation::Require(Requirement {
        kind: Kind::Workflow,
        key: key.to_string(),
        precondition: Precondition::MustExist,
        seen_at,
    })
}

fn raise(to: u64, seen_at: Option<ReadMark>) -> Mutation {
    Mutation::RaiseCounter(CounterRaise {
        name: "runs:wf".to_string(),
        to,
        seen_at,
    })
}

async fn exists(engine: &SqlEngine, kind: Kind, key: &str) -> bool {
    engine.get(kind, &[key.to_string()]).await.unwrap()[0].is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_moves_the_mark_and_a_refused_commit_does_not() {
    common::on_both_databases(|a, _| async move {
        let before = a.read_mark().expect("a writable SQL engine keeps a mark");
        a.commit(vec![put(Kind::Workflow, "wf")]).await.unwrap();
        let after = a.read_mark().unwrap();
        assert_ne!(before, after, "a commit moves the mark");
        let refused = a
            .commit(vec![put(Kind::Run, "r"), require("missing", None)])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert_eq!(a.read_mark().unwrap(), after, "nothing was written");
        a.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_engine_has_no_mark() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let writable = SqlEngine::open(SqlConfig::new(&url)).await.unwrap();
    let mut config = SqlConfig::new(&url);
    config.read_only = true;
    let read_only = SqlEngine::open(config).await.unwrap();
    assert!(writable.read_mark().is_some());
    assert_eq!(read_only.read_mark(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_seen_before_a_delete_here_or_elsewhere_is_read_again() {
    // The mark is this process's published head, but the writer compares
    // it with the head under the database's lock, which every process's
    // commit moves: a delete by this engine or by another process (the
    // second engine) makes the commit read, and refuse.
    common::on_both_databases(|a, b| async move {
        for (wf, deleter) in [("wf-here", &a), ("wf-elsewhere", &b)] {
            a.commit(vec![put(Kind::Workflow, wf)]).await.unwrap();
            let seen = a.read_mark();
            assert!(exists(&a, Kind::Workflow, wf).await);
            deleter
                .commit(vec![Mutation::delete(
                    Kind::Workflow,
                    wf,
                    Precondition::Any,
                )])
                .await
                .unwrap();
            let run = format!("run-of-{wf}");
            let refused = a
                .commit(vec![put(Kind::Run, &run), require(wf, seen)])
                .await;
            assert!(
                matches!(&refused, Err(Error::NotFound { key, .. }) if key == wf),
                "{wf}: {refused:?}"
            );
            assert!(!exists(&a, Kind::Run, &run).await, "{wf}: nothing written");
        }
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_after_a_delete_in_its_own_commit_is_read_again() {
    common::on_both_databases(|a, _| async move {
        a.commit(vec![put(Kind::Workflow, "wf")]).await.unwrap();
        let seen = a.read_mark();
        let refused = a
            .commit(vec![
                Mutation::delete(Kind::Workflow, "wf", Precondition::Any),
                require("wf", seen),
            ])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        assert!(exists(&a, Kind::Workflow, "wf").await, "delete undone");
        a.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmoved_mark_is_taken_at_its_word() {
    // What saves the read: with nothing written since the caller's read,
    // the commit does not look again. (A caller only sends a mark with a
    // requirement it saw hold; here the word is false on purpose, to show
    // it is the word and not a read that lets the commit through.)
    common::on_both_databases(|a, _| async move {
        let seen = a.read_mark();
        a.commit(vec![put(Kind::Run, "r"), require("never-written", seen)])
            .await
            .unwrap();
        assert!(exists(&a, Kind::Run, "r").await);
        // The same word once anything was written since is checked.
        let refused = a
            .commit(vec![put(Kind::Run, "r2"), require("never-written", seen)])
            .await;
        assert!(
            matches!(refused, Err(Error::NotFound { .. })),
            "{refused:?}"
        );
        a.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_seen_before_a_raise_is_not_lowered() {
    common::on_both_databases(|a, b| async move {
        let seen = a.read_mark();
        assert_eq!(a.counter("runs:wf").await.unwrap(), 0);
        b.commit(vec![raise(5, None)]).await.unwrap();
        a.commit(vec![raise(3, seen)]).await.unwrap();
        assert_eq!(a.counter("runs:wf").await.unwrap(), 5);
        a.commit(vec![raise(7, None), raise(6, seen)])
            .await
            .unwrap();
        assert_eq!(a.counter("runs:wf").await.unwrap(), 7);
        a.close().await.unwrap();
        b.close().await.unwrap();
    })
    .await;
}

/// A run create's two reads, the workflow and its run count, made as one
/// statement: the record is lent when it is there, and the counter is
/// read either way (a counter with no record, a record with no counter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_and_a_counter_are_read_together() {
    async fn read(engine: &SqlEngine) -> (Option<(String, Vec<u8>, u64)>, u64) {
        let mut lent = None;
        let count = engine
            .get_with_counter(Kind::Workflow, "wf", "runs:wf", &mut |stored| {
                lent = Some((
                    stored.key.to_string(),
                    stored.body.to_vec(),
                    stored.revision.get(),
                ));
                Ok(())
            })
            .await
            .unwrap();
        (lent, count)
    }
    common::on_both_databases(|a, _| async move {
        assert_eq!(read(&a).await, (None, 0));
        a.commit(vec![raise(3, None)]).await.unwrap();
        assert_eq!(read(&a).await, (None, 3), "a counter with no record");
        a.commit(vec![put(Kind::Workflow, "other")]).await.unwrap();
        assert_eq!(read(&a).await, (None, 3), "another key is not lent");
        let committed = a.commit(vec![put(Kind::Workflow, "wf")]).await.unwrap();
        let (lent, count) = read(&a).await;
        let (key, body, revision) = lent.expect("the record is lent");
        assert_eq!(key, "wf");
        // As a plain get reads it (PostgreSQL's JSONB spaces it its way).
        let stored = a.get(Kind::Workflow, &["wf".to_string()]).await.unwrap();
        assert_eq!(body, stored[0].as_ref().unwrap().body);
        assert_eq!(revision, committed[0].revision.get());
        assert_eq!(count, 3);
        a.commit(vec![raise(4, None)]).await.unwrap();
        assert_eq!(read(&a).await.1, 4);
        a.close().await.unwrap();
    })
    .await;
}
