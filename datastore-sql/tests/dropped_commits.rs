//! Commits on SQLite and PostgreSQL whose callers stop waiting (their
//! futures dropped) right after queueing: each still lands whole, once,
//! and the store goes on taking commits. A writer must never tie a queued
//! commit's fate to its caller's future. Each case runs on a real SQLite
//! file and a real PostgreSQL schema.

mod common;

use std::time::Duration;

use datastore_core::{Engine, Kind, Mutation, Precondition, PutRecord};
use datastore_sql::SqlEngine;

fn put(key: &str) -> Mutation {
    Mutation::Put(PutRecord {
        kind: Kind::Profile,
        key: key.to_string(),
        body: br#"{"note":"a test record"}"#.to_vec(),
        index: Vec::new(),
        precondition: Precondition::MustNotExist,
        parent: None,
        actor: None,
        history: false,
    })
}

async fn exists(engine: &SqlEngine, key: &str) -> bool {
    engine.get(Kind::Profile, &[key.to_string()]).await.unwrap()[0].is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_whose_callers_stop_waiting_still_land() {
    common::on_both_databases(|a, _| async move {
        let mut dropped = 0;
        for i in 0..20 {
            // Polled once (queued), then dropped.
            let commit = a.commit(vec![put(&format!("left-{i}"))]);
            if tokio::time::timeout(Duration::ZERO, commit).await.is_err() {
                dropped += 1;
            }
        }
        assert!(dropped > 0, "every commit was answered at its first poll");
        // Queued behind the twenty: answered once they are written.
        a.commit(vec![put("last")]).await.unwrap();
        for i in 0..20 {
            assert!(exists(&a, &format!("left-{i}")).await, "left-{i} was lost");
        }
        assert!(exists(&a, "last").await);
        assert_eq!(a.commit_stats().commits, 21);
        // Each landed once: writing any of them again is refused.
        let again = a.commit(vec![put("left-0")]).await.unwrap_err();
        assert!(again.to_string().contains("left-0"), "{again}");
    })
    .await;
}
