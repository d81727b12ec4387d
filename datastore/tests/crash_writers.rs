//! SIGKILL a process in which 32 writers commit at once (so commits are made
//! durable in groups): after reopening, every acknowledged write is there,
//! the feed has no gap, every change in it names a write that exists, and
//! each record's history holds exactly the versions the feed names (one
//! per write, written in the same commit).
//! On RocksDB and on SQLite, through `open_url` as a service would.
//!
//! The test re-runs its own binary as the writer (`group_writer`, ignored
//! unless started by name with `GROUP_WRITER_URL` set), reads the writes it
//! acknowledges on stdout, and kills it at a random moment.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use datastore::{Batch, ChangeOp, FeedCursor, Kind, LogId, Precondition, Profile, ProfileId};

const WRITERS: usize = 32;
const ROUNDS: u32 = 8;

/// The writer: 32 tasks, each creating profiles and, every fourth write, a
/// batch of a profile and an entry of its own log. Prints `ack` lines after
/// each write returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by sigkill_during_group_commits_*"]
async fn group_writer() {
    let Ok(url) = std::env::var("GROUP_WRITER_URL") else {
        return;
    };
    let round: u32 = std::env::var("GROUP_WRITER_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let ds = datastore::open_url(&url).await.expect("the writer opens");
    println!("ready");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            let log = LogId::new(format!("r{round}-log{w}"));
            let mut log_len = 0;
            for i in 0u64.. {
                let mut p = Profile::new(format!("r{round}w{w}n{i}"));
                p.id = ProfileId::new(format!("r{round}-w{w}-{i}"));
                let id = p.id.clone();
                if i % 4 == 3 {
                    let batch = Batch::new().put(p, Precondition::MustNotExist).append_log(
                        log.clone(),
                        log_len,
                        vec![datastore::LogOp {
                            name: format!("op{i}"),
                            ..Default::default()
                        }],
                    );
                    let revs = ds.apply(batch).await.unwrap();
                    log_len += 1;
                    println!("ack profile {id} {}", revs[0].get());
                    println!("ack log {log} {log_len} {}", revs[1].get());
                } else {
                    let v = ds
                        .profiles()
                        .put(p, Precondition::MustNotExist)
                        .await
                        .unwrap();
                    println!("ack profile {id} {}", v.revision.get());
                    if i % 4 == 1 {
                        // A second version, so history holds more than the
                        // record's current state.
                        let mut edit = v.value.clone();
                        edit.name = format!("edited {i}");
                        let v2 = ds.profiles().put(edit, v.expect()).await.unwrap();
                        println!("ack profile {id} {}", v2.revision.get());
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn pseudo_random(round: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 500
}

/// Starts the writer on `url`, kills it after a random moment, and returns
/// what it acknowledged.
fn kill_round(url: &str, round: u32) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "group_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GROUP_WRITER_URL", url)
        .env("GROUP_WRITER_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let acks = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let acks = acks.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ack) = line.strip_prefix("ack ") {
                    acks.lock().unwrap().push(ack.to_string());
                }
            }
        })
    };
    let start = Instant::now();
    while acks.lock().unwrap().len() < WRITERS {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "round {round}: the writers never got going"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50 + pseudo_random(round)));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    Arc::try_unwrap(acks)
        .expect("the reader thread is done")
        .into_inner()
        .unwrap()
}

/// Reopens and checks every acknowledged write and the whole feed.
async fn verify(url: &str, round: u32, acks: &[String]) {
    let ds = datastore::open_url(url).await.expect("reopen after kill");
    let head = ds.changes().head().await.unwrap();
    let mut feed = Vec::new();
    let mut cursor = FeedCursor::START;
    loop {
        let page = ds.changes().since(cursor, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = last.cursor();
        feed.extend(page);
    }
    let seqs: Vec<u64> = feed.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=head.0).collect::<Vec<_>>(),
        "round {round}: the feed runs from 1 to the head without a gap"
    );
    let by_seq: HashMap<u64, _> = feed.iter().map(|c| (c.seq, c)).collect();
    let mut log_lengths: BTreeMap<String, u64> = BTreeMap::new();
    for ack in acks {
        let parts: Vec<&str> = ack.split(' ').collect();
        match parts.as_slice() {
            ["profile", id, rev] => {
                let p = ds
                    .profiles()
                    .get(&ProfileId::new(*id))
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: acknowledged {ack} lost: {e}"));
                assert!(
                    p.revision.get() >= rev.parse::<u64>().unwrap(),
                    "round {round}: {ack}"
                );
                let change = by_seq
                    .get(&rev.parse().unwrap())
                    .unwrap_or_else(|| panic!("round {round}: no feed entry for {ack}"));
                assert_eq!((change.kind, change.id.as_str()), (Kind::Profile, *id));
            }
            ["log", log, len, rev] => {
                let len: u64 = len.parse().unwrap();
                let entry = log_lengths.entry(log.to_string()).or_default();
                *entry = (*entry).max(len);
                let change = by_seq
                    .get(&rev.parse().unwrap())
                    .unwrap_or_else(|| panic!("round {round}: no feed entry for {ack}"));
                assert_eq!(change.kind, Kind::Log, "round {round}: {ack}");
            }
            _ => panic!("unknown ack {ack:?}"),
        }
    }
    for (log, len) in log_lengths {
        let found = ds.logs().length(&LogId::new(log.clone())).await.unwrap();
        assert!(
            found >= len,
            "round {round}: log {log} has {found} of {len}"
        );
    }
    // Each profile's history is exactly its feed entries, newest first:
    // no version missing, none extra.
    let mut written: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let this_round = format!("r{round}-");
    for c in feed
        .iter()
        .filter(|c| c.kind == Kind::Profile && c.id.starts_with(&this_round))
    {
        written.entry(c.id.as_str()).or_default().push(c.seq);
    }
    for (id, mut seqs) in written {
        seqs.reverse();
        let mut versions = Vec::new();
        let mut cursor = None;
        loop {
            let page = ds
                .profiles()
                .history(
                    &ProfileId::new(id),
                    datastore::PageRequest::after(100, cursor),
                )
                .await
                .unwrap();
            versions.extend(page.items.iter().map(|v| v.revision.get()));
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(versions, seqs, "round {round}: history of {id}");
    }
    // Every change names a write that is there: no change without its data.
    for c in &feed {
        assert_eq!(c.op, ChangeOp::Put);
        if c.kind == Kind::Profile {
            let p = ds.profiles().get(&ProfileId::new(c.id.clone())).await;
            assert!(
                p.is_ok(),
                "round {round}: change {} names a missing record",
                c.seq
            );
        }
    }
    ds.close().await.unwrap();
}

fn rounds(url: &str) -> usize {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut total = 0;
    for round in 0..ROUNDS {
        let acks = kill_round(url, round);
        total += acks.len();
        runtime.block_on(verify(url, round, &acks));
        eprintln!(
            "round {round}: killed after {} acknowledged writes; all present, no gap",
            acks.len()
        );
    }
    total
}

#[test]
fn sigkill_during_group_commits_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}", dir.path().join("db").display());
    let total = rounds(&url);
    assert!(total > ROUNDS as usize * WRITERS, "too few writes: {total}");
    let engine = datastore::rocks::RocksEngine::open(datastore::rocks::RocksConfig::new(
        dir.path().join("db"),
    ))
    .unwrap();
    let problems = engine.check_indexes().unwrap();
    assert!(
        problems.is_empty(),
        "indexes and records disagree: {problems:?}"
    );
}

#[test]
fn sigkill_during_group_commits_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data.db").display());
    let total = rounds(&url);
    assert!(total > ROUNDS as usize * WRITERS, "too few writes: {total}");
}
