//! Concurrent writers: no lost update, no fork, no gap.

use std::sync::Arc;

use datastore_core::{
    Batch, CollectionKey, Datastore, Error, Kind, LogId, Precondition, Profile, ProfileId,
    RecordId, Revision, Run,
};
use tokio::sync::Barrier;

use crate::support::*;

/// 16 tasks × 50 read-modify-write increments, retrying on Conflict, end
/// with the exact count.
pub async fn read_modify_write_increments(ds: Arc<dyn Datastore>) {
    const TASKS: u64 = 16;
    const INCREMENTS: u64 = 50;
    ds.collections()
        .put(entry("p1", "i1", "counter"), Precondition::MustNotExist)
        .await
        .unwrap();
    let key = CollectionKey::new("p1", "i1");
    let barrier = Arc::new(Barrier::new(TASKS as usize));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (ds, key, barrier) = (ds.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let current = ds.collections().get(&key).await.unwrap();
                    let mut next = current.value.clone();
                    next.counts.commits += 1;
                    match ds.collections().put(next, current.expect()).await {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let done = ds.collections().get(&key).await.unwrap();
    assert_eq!(done.value.counts.commits, TASKS * INCREMENTS);
    let changes = ds
        .changes()
        .since(datastore_core::FeedCursor::START, 10_000)
        .await
        .unwrap();
    let writes = changes.iter().filter(|c| c.id == key.to_string()).count() as u64;
    assert_eq!(
        writes,
        TASKS * INCREMENTS + 1,
        "one change per successful write"
    );
}

/// Two appenders with the same expected length: exactly one wins, every round.
pub async fn log_appenders_exactly_one_wins(ds: Arc<dyn Datastore>) {
    let log = LogId::new("contended");
    for round in 0..20u64 {
        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for writer in 0..2 {
            let (ds, log, barrier) = (ds.clone(), log.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                ds.logs()
                    .append(&log, round, vec![op(&format!("r{round}w{writer}"))])
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(entries) => {
                    assert_eq!(entries[0].value.seq, round);
                    wins += 1;
                }
                Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one appender wins");
    }
    assert_eq!(ds.logs().length(&log).await.unwrap(), 20);
}

/// 8 tasks creating runs of one workflow at once get 1..N, no gap, no repeat.
pub async fn run_numbers_without_gap(ds: Arc<dyn Datastore>) {
    const TASKS: usize = 8;
    const EACH: usize = 5;
    let w = workflow(&ds, "init-1", "o").await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (ds, wid, barrier) = (ds.clone(), w.value.id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut numbers = Vec::new();
            for _ in 0..EACH {
                numbers.push(
                    ds.runs()
                        .create(Run::new(wid.clone(), vec![]))
                        .await
                        .unwrap()
                        .value
                        .number,
                );
            }
            numbers
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=(TASKS * EACH) as u64).collect::<Vec<_>>());
    assert_eq!(
        ds.runs().count(&w.value.id).await.unwrap(),
        (TASKS * EACH) as u64
    );
}

/// 8 tasks claiming one username: exactly one gets it.
pub async fn unique_username_race(ds: Arc<dyn Datastore>) {
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (ds, barrier) = (ds.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = Profile::new("popular");
            p.id = ProfileId::new(format!("claimant-{i}"));
            barrier.wait().await;
            ds.profiles().put(p, Precondition::Any).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let owner = ds.profiles().get_by_username("popular").await.unwrap();
    assert!(owner.value.id.as_str().starts_with("claimant-"));
}

/// 8 tasks × 10 batches each putting one workflow with `Any`: a batch
/// put of a kind with fixed fields is pinned to the revision it checked, and
/// when another task's write moves the record first, the batch is prepared
/// again and committed, never failing. Every batch succeeds with its own
/// revision and the record ends at the newest of them.
pub async fn pinned_batch_puts_retry(ds: Arc<dyn Datastore>) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let created = workflow(&ds, "init-pinned", "o1").await;
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (ds, barrier, mut w) = (ds.clone(), barrier.clone(), created.value.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut revisions = Vec::new();
            for r in 0..ROUNDS {
                w.active = (t + r) % 2 == 0;
                let revs = ds
                    .apply(Batch::new().put(w.clone(), Precondition::Any))
                    .await
                    .unwrap_or_else(|e| panic!("task {t} round {r}: {e}"));
                revisions.extend(revs);
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        TASKS * ROUNDS,
        "every batch has its own revision"
    );
    let stored = ds.workflows().get(&created.value.id).await.unwrap();
    assert_eq!(Some(&stored.revision), all.last());
    assert_eq!(stored.value.owner_id, created.value.owner_id);
}

/// 8 tasks creating one id with must-not-exist: exactly one succeeds.
pub async fn must_not_exist_race(ds: Arc<dyn Datastore>) {
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (ds, barrier) = (ds.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = Profile::new(format!("user{i}"));
            p.id = ProfileId::new("the-one");
            barrier.wait().await;
            ds.profiles().put(p, Precondition::MustNotExist).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(wins, 1);
    let head = ds.changes().head().await.unwrap();
    assert_eq!(
        ds.changes()
            .since(datastore_core::FeedCursor::START, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(head.0 >= 1);
}

/// What one writer expects of one of its commits.
struct Outcome {
    /// (kind, id, revision) of every write the commit acknowledged.
    written: Vec<(Kind, String, Revision)>,
    /// Profiles a failed commit tried to write: they must not exist.
    absent: Vec<String>,
}

/// 32 writers commit at once, round after round (so durable backends gather
/// them into groups): plain creates that succeed, creates of one contended
/// id of which exactly one wins, batches whose last op fails on a stale
/// revision, and batches of a profile and a log entry that succeed. Every
/// commit gets its own right result; every acknowledged write has exactly
/// one feed entry with its revision; a failed batch leaves nothing; a batch
/// is never half applied (its changes are consecutive).
pub async fn concurrent_commits_keep_their_own_results(ds: Arc<dyn Datastore>) {
    const WRITERS: usize = 32;
    const ROUNDS: usize = 8;
    for w in 0..WRITERS {
        let mut base = Profile::new(format!("base{w}"));
        base.id = ProfileId::new(format!("base-{w}"));
        ds.profiles()
            .put(base, Precondition::MustNotExist)
            .await
            .unwrap();
    }
    let start = ds.changes().head().await.unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (ds, barrier) = (ds.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut contended_wins = vec![0usize; ROUNDS];
            let log = LogId::new(format!("log-{w}"));
            let mut log_len = 0u64;
            for (r, wins) in contended_wins.iter_mut().enumerate() {
                barrier.wait().await;
                let named = |suffix: &str| {
                    let mut p = Profile::new(format!("r{r}w{w}{suffix}"));
                    p.id = ProfileId::new(format!("r{r}-w{w}{suffix}"));
                    p
                };
                match (w + r) % 4 {
                    0 => {
                        let p = ds
                            .profiles()
                            .put(named(""), Precondition::MustNotExist)
                            .await
                            .unwrap_or_else(|e| panic!("writer {w} round {r}: {e}"));
                        outcomes.push(Outcome {
                            written: vec![(Kind::Profile, p.value.id.key(), p.revision)],
                            absent: vec![],
                        });
                    }
                    1 => {
                        let mut p = named("-c");
                        p.id = ProfileId::new(format!("r{r}-contended"));
                        match ds.profiles().put(p, Precondition::MustNotExist).await {
                            Ok(p) => {
                                *wins += 1;
                                outcomes.push(Outcome {
                                    written: vec![(Kind::Profile, p.value.id.key(), p.revision)],
                                    absent: vec![],
                                });
                            }
                            Err(Error::AlreadyExists { .. }) => {}
                            Err(e) => panic!("writer {w} round {r}: unexpected {e}"),
                        }
                    }
                    2 => {
                        let fresh = named("-a");
                        let absent = vec![fresh.id.key()];
                        let mut base = Profile::new(format!("base{w}"));
                        base.id = ProfileId::new(format!("base-{w}"));
                        let batch = Batch::new()
                            .put(fresh, Precondition::MustNotExist)
                            .put(base, Precondition::MustBeAt(Revision::new(u64::MAX / 2)));
                        match ds.apply(batch).await {
                            Err(Error::Conflict { .. }) => {}
                            other => {
                                panic!("writer {w} round {r}: expected Conflict, got {other:?}")
                            }
                        }
                        outcomes.push(Outcome {
                            written: vec![],
                            absent,
                        });
                    }
                    _ => {
                        let fresh = named("-b");
                        let id = fresh.id.key();
                        let batch = Batch::new()
                            .put(fresh, Precondition::MustNotExist)
                            .append_log(log.clone(), log_len, vec![op(&format!("r{r}"))]);
                        let revs = ds
                            .apply(batch)
                            .await
                            .unwrap_or_else(|e| panic!("writer {w} round {r}: {e}"));
                        assert_eq!(revs.len(), 2);
                        assert_eq!(
                            revs[1].get(),
                            revs[0].get() + 1,
                            "a batch's writes are consecutive"
                        );
                        outcomes.push(Outcome {
                            written: vec![
                                (Kind::Profile, id, revs[0]),
                                (Kind::Log, log.to_string(), revs[1]),
                            ],
                            absent: vec![],
                        });
                        log_len += 1;
                    }
                }
            }
            (outcomes, contended_wins, log_len)
        }));
    }
    let mut outcomes = Vec::new();
    let mut wins = vec![0usize; ROUNDS];
    for (w, t) in tasks.into_iter().enumerate() {
        let (o, won, log_len) = t.await.unwrap();
        outcomes.extend(o);
        for (total, n) in wins.iter_mut().zip(won) {
            *total += n;
        }
        assert_eq!(
            ds.logs()
                .length(&LogId::new(format!("log-{w}")))
                .await
                .unwrap(),
            log_len,
            "writer {w}: every acknowledged append is there"
        );
    }
    assert!(
        wins.iter().all(|&n| n == 1),
        "exactly one create of the contended id wins each round: {wins:?}"
    );

    let mut feed = Vec::new();
    let mut cursor = start;
    loop {
        let page = ds.changes().since(cursor, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        feed.extend(page);
    }
    for pair in feed.windows(2) {
        assert!(pair[0].seq < pair[1].seq, "the feed is in sequence order");
    }
    let mut expected: Vec<(u64, Kind)> = outcomes
        .iter()
        .flat_map(|o| o.written.iter().map(|(k, _, r)| (r.get(), *k)))
        .collect();
    expected.sort_unstable_by_key(|(seq, _)| *seq);
    let found: Vec<(u64, Kind)> = feed.iter().map(|c| (c.revision.get(), c.kind)).collect();
    assert_eq!(
        found, expected,
        "exactly one feed entry per acknowledged write, with its revision, and nothing else"
    );
    for c in &feed {
        assert_eq!(c.seq, c.revision.get());
    }
    for o in &outcomes {
        for (kind, id, revision) in &o.written {
            if *kind == Kind::Profile {
                let got = ds
                    .profiles()
                    .get(&ProfileId::new(id.clone()))
                    .await
                    .unwrap();
                assert_eq!(got.revision, *revision, "{id} is as written");
            }
        }
        for id in &o.absent {
            let missing = ds.profiles().get(&ProfileId::new(id.clone())).await;
            assert!(
                matches!(missing, Err(Error::NotFound { .. })),
                "{id}: a failed batch writes nothing, got {missing:?}"
            );
        }
    }
    for w in 0..WRITERS {
        let base = ds
            .profiles()
            .get(&ProfileId::new(format!("base-{w}")))
            .await
            .unwrap();
        assert!(
            base.revision.get() <= start.0,
            "base-{w} was never rewritten"
        );
    }
}
