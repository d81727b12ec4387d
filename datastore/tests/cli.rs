//! The `datastore` program end to end, as a user runs it.

mod common;

use std::path::Path;

use assert_cmd::Command;
use datastore::transfer;

fn datastore() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_datastore"));
    cmd.env_remove("DATASTORE_URL")
        .env_remove("DATASTORE_CONFIG");
    cmd
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A JSON Lines file of `profiles` profiles, each with a workflow, two runs,
/// a key, a collection entry and a three-entry log.
fn seed_file(path: &Path, profiles: usize) -> usize {
    use datastore::*;
    use transfer::Item;
    let mut items = Vec::new();
    for p in 0..profiles {
        let mut profile = Profile::new(format!("user{p}"));
        profile.id = ProfileId::new(format!("p{p}"));
        items.push(Item::Profile(profile));
        let mut workflow = Workflow::new(format!("ds{p}"), format!("p{p}"));
        workflow.id = WorkflowId::new(format!("w{p}"));
        items.push(Item::Workflow(workflow));
        for n in 1..=2u64 {
            let mut run = Run::new(format!("w{p}"), vec![StepRun::new("s", "transform")]);
            run.id = RunId::new(format!("w{p}-r{n}"));
            run.number = n;
            run.owner_id = ProfileId::new(format!("p{p}"));
            run.status = RunStatus::Succeeded;
            items.push(Item::Run(run));
        }
        let mut key = Key::new(format!("p{p}"), format!("pub-{p}"));
        key.id = KeyId::for_public_key(&key.public_key);
        key.private_key = Some(PrivateKey::new(format!("secret-{p}")));
        items.push(Item::Key(key));
        items.push(Item::Collection(CollectionEntry::new(
            format!("p{p}"),
            format!("ds{p}"),
            format!("user{p}"),
            "a dataset",
        )));
        for seq in 0..3 {
            items.push(Item::LogEntry(LogEntry {
                log_id: LogId::new(format!("log-{p}")),
                seq,
                op: LogOp {
                    name: format!("op-{seq}"),
                    ..LogOp::default()
                },
            }));
        }
    }
    // Kind by kind, as an export lists them.
    let rank = |i: &Item| match i {
        Item::Profile(_) => 0,
        Item::Workflow(_) => 1,
        Item::Run(_) => 2,
        Item::Key(_) => 3,
        Item::Collection(_) => 4,
        Item::LogEntry(_) => 5,
    };
    let id = |i: &Item| match i {
        Item::Profile(r) => r.id().key(),
        Item::Workflow(r) => r.id().key(),
        Item::Run(r) => r.id().key(),
        Item::Key(r) => r.id().key(),
        Item::Collection(r) => r.id().key(),
        Item::LogEntry(r) => r.id().key(),
    };
    items.sort_by_key(|i| (rank(i), id(i)));
    let text: String = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
    items.len()
}

#[test]
fn demo_runs_to_its_summary_in_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    // The README's command, with its defaults: RocksDB under the current folder.
    let out = datastore()
        .current_dir(dir.path())
        .arg("demo")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        dir.path().join("datastore-demo").is_dir(),
        "no RocksDB folder was made"
    );
    assert!(
        text.contains("RocksDB backend") || text.contains("rocksdb backend"),
        "{text}"
    );
    assert!(text.contains("summary"), "{text}");
    assert!(text.contains("24 runs"), "{text}");
    assert!(
        text.contains("client sees wf-0-0"),
        "the client showed nothing live: {text}"
    );
    assert!(text.contains("matches the store: yes"), "{text}");
    // A second demo on the same folder works on top of the first.
    let again = datastore()
        .current_dir(dir.path())
        .args(["demo", "--runs", "3"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn export_then_import_round_trips_and_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 5);
    let a = format!("sqlite://{}/a.db", dir.path().display());
    let b = format!("rocksdb://{}/b", dir.path().display());

    let out = datastore()
        .args(["import", &a, seed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{items} written")),
        "{}",
        stderr(&out)
    );

    let exported = dir.path().join("a.jsonl");
    let out = datastore()
        .args(["export", &a, "--out", exported.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&exported).unwrap() == std::fs::read_to_string(&seed).unwrap(),
        "the export differs from what was imported"
    );

    // An import cut short (the first half), then run again in full.
    let text = std::fs::read_to_string(&exported).unwrap();
    let half: String = text
        .lines()
        .take(items / 2)
        .map(|l| format!("{l}\n"))
        .collect();
    let half_file = dir.path().join("half.jsonl");
    std::fs::write(&half_file, half).unwrap();
    let out = datastore()
        .args(["import", &b, half_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = datastore()
        .args(["import", &b, exported.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stderr(&out);
    assert!(
        summary.contains(&format!(
            "{} written, {} already there",
            items - items / 2,
            items / 2
        )),
        "{summary}"
    );
    let out = datastore().args(["export", &b]).output().unwrap();
    assert!(stdout(&out) == text, "the resumed import's export differs");
    // One change per item: nothing was written twice.
    let out = datastore().args(["tail", &b]).output().unwrap();
    assert_eq!(stdout(&out).lines().count(), items, "{}", stderr(&out));
}

#[test]
fn a_malformed_line_names_its_number_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    seed_file(&seed, 2);
    let mut lines: Vec<String> = std::fs::read_to_string(&seed)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[2] = r#"{"kind":"run","record":{"id":"x","number":"seven"}}"#.into();
    lines[5] = "not json at all".into();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let url = format!("sqlite://{}/m.db", dir.path().display());
    let out = datastore()
        .args(["import", &url, bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("number"), "{err}");
    let out = datastore().args(["export", &url]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "an import with a bad line wrote something"
    );

    // An unknown kind and an invalid id are refused the same way.
    std::fs::write(&bad, "{\"kind\":\"planet\",\"record\":{}}\n").unwrap();
    let out = datastore()
        .args(["import", &url, bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("line 1") && stderr(&out).contains("planet"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &bad,
        "{\"kind\":\"profile\",\"record\":{\"id\":\"has space\",\"username\":\"u\"}}\n",
    )
    .unwrap();
    let out = datastore()
        .args(["import", &url, bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("line 1") && stderr(&out).contains("id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_urls_and_options_say_what_is_wrong() {
    let out = datastore()
        .args(["export", "mysql://root@localhost/test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown scheme \"mysql\""),
        "{}",
        stderr(&out)
    );
    let out = datastore().args(["export", "rocksdb://"]).output().unwrap();
    assert!(
        stderr(&out).contains("path: must not be empty"),
        "{}",
        stderr(&out)
    );
    let out = datastore()
        .args(["export", "memory://"])
        .env("DATASTORE_SQL_POOL_SIZE", "lots")
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("DATASTORE_SQL_POOL_SIZE"),
        "{}",
        stderr(&out)
    );
    let out = datastore()
        .args(["export", "postgres://u:hunter2@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        !stderr(&out).contains("hunter2"),
        "a password leaked: {}",
        stderr(&out)
    );
    let out = datastore().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// sqlite → postgres → rocksdb by the program, then rocksdb → memory and an
/// export of that: every record, its content and the feed count survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_moves_everything_from_sqlite_to_postgres_to_rocksdb_to_memory() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 8);
    let sqlite = format!("sqlite://{}/from.db", dir.path().display());
    let rocks = format!("rocksdb://{}/rocks", dir.path().display());
    let run = |args: &[&str]| {
        let out = datastore()
            .args(args)
            .env("DATASTORE_SQL_SCHEMA", &schema.name)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    };
    run(&["import", &sqlite, seed.to_str().unwrap()]);
    let out = run(&["copy", &sqlite, &schema.url]);
    assert!(
        stderr(&out).contains(&format!("{items} written, 0 already there")),
        "{}",
        stderr(&out)
    );
    // Copying again writes nothing: an interrupted copy can be rerun.
    let out = run(&["copy", &sqlite, &schema.url]);
    assert!(
        stderr(&out).contains(&format!("0 written, {items} already there")),
        "{}",
        stderr(&out)
    );
    run(&["copy", &schema.url, &rocks]);

    let mut config = datastore::Config::with_url(&rocks);
    config.cache.enabled = false;
    let from_rocks = datastore::open(&config).await.unwrap();
    let memory = datastore::open_url("memory://").await.unwrap();
    let stats = transfer::copy(&*from_rocks, &*memory, |_| {})
        .await
        .unwrap();
    assert_eq!(stats.written as usize, items);
    let mut exported = Vec::new();
    transfer::export(&*memory, &mut exported, |_| {})
        .await
        .unwrap();
    assert!(
        String::from_utf8(exported).unwrap() == std::fs::read_to_string(&seed).unwrap(),
        "the memory store's export differs from the seed"
    );

    let pg = schema.open_uncached().await;
    let sqlite_ds = datastore::open(&{
        let mut c = datastore::Config::with_url(&sqlite);
        c.cache.enabled = false;
        c
    })
    .await
    .unwrap();
    for (name, ds) in [
        ("sqlite", &sqlite_ds),
        ("postgres", &pg),
        ("rocksdb", &from_rocks),
        ("memory", &memory),
    ] {
        assert_eq!(common::feed_len(&**ds).await as usize, items, "{name}");
    }
    pg.close().await.unwrap();
    schema.drop().await;
}

#[test]
fn tail_prints_the_feed_from_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 1);
    let url = format!("sqlite://{}/t.db", dir.path().display());
    datastore()
        .args(["import", &url, seed.to_str().unwrap()])
        .assert()
        .success();
    let out = datastore()
        .args(["tail", &url, "--from", "2", "--limit", "3"])
        .output()
        .unwrap();
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert!(
        stderr(&out).contains("resume with --from 5"),
        "{}",
        stderr(&out)
    );
    let out = datastore()
        .args(["tail", &url, "--from", &items.to_string()])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "");
}

#[test]
fn migrate_reports_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rocksdb://{}/m", dir.path().display());
    let out = datastore().args(["migrate", &url]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("schema up to date"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_runs_the_conformance_suite_against_a_live_url() {
    let out = datastore().args(["check", "memory://"]).output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let cases = conformance_tests::CASES.len();
    assert!(
        text.contains(&format!(
            "{cases} cases on memory: {cases} passed, 0 failed"
        )),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let url = format!("sqlite://{}", live.display());
    let out = datastore()
        .args(["check", &url, "--filter", "feed::"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("0 failed"), "{}", stdout(&out));
    // The checks ran beside the live store and cleaned up after themselves.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_against_postgres_in_schemas_of_its_own() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let out = datastore()
        .args(["check", &schema.url, "--filter", "batches::"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("on PostgreSQL") && stdout(&out).contains("0 failed"),
        "{}",
        stdout(&out)
    );
    schema.drop().await;
}

#[test]
fn serve_answers_over_http_and_stops_gracefully() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/served.db", dir.path().display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_datastore"))
        .args(["serve", "--url", &url, "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    // A plain HTTP/1.1 request, as any client would send it.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    let body = r#"{"id": "p1", "username": "alice"}"#;
    write!(
        stream,
        "PUT /v1/profiles/p1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.to_lowercase().contains("etag: \""), "{answer}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("stopped"), "{rest}");
    // The write is in the store.
    let out = datastore().args(["export", &url]).output().unwrap();
    assert!(stdout(&out).contains("\"alice\""), "{}", stdout(&out));
}

#[test]
fn serve_refuses_to_listen_beyond_loopback_without_a_token() {
    let out = datastore()
        .args(["serve", "--url", "memory://", "--listen", "0.0.0.0:0"])
        .env_remove("DATASTORE_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("token is required"),
        "{}",
        stderr(&out)
    );
}
