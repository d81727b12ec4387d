//! The `datastore` program end to end, as a user runs it.

// The same real-store helpers as the datastore crate's tests.
#[path = "../../datastore/tests/common/mod.rs"]
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
        items.push(Item::from(AnyRecord::from(profile)));
        let mut workflow = Workflow::new(format!("ds{p}"), format!("p{p}"));
        workflow.id = WorkflowId::new(format!("w{p}"));
        items.push(Item::from(AnyRecord::from(workflow)));
        for n in 1..=2u64 {
            let mut run = Run::new(format!("w{p}"), vec![StepRun::new("s", "transform")]);
            run.id = RunId::new(format!("w{p}-r{n}"));
            run.number = n;
            run.owner_id = ProfileId::new(format!("p{p}"));
            run.status = RunStatus::Succeeded;
            items.push(Item::from(AnyRecord::from(run)));
        }
        let mut key = Key::new(format!("p{p}"), format!("pub-{p}"));
        key.id = KeyId::for_public_key(&key.public_key);
        key.private_key = Some(PrivateKey::new(format!("secret-{p}")));
        items.push(Item::from(AnyRecord::from(key)));
        items.push(Item::from(AnyRecord::from(CollectionEntry::new(
            format!("p{p}"),
            format!("ds{p}"),
            format!("user{p}"),
            "a dataset",
        ))));
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
    items.sort_by_key(|i| (i.kind(), i.key()));
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
    // Filtered: only the log entries of the profile's log.
    let out = datastore()
        .args(["tail", &url, "--kind", "logs"])
        .output()
        .unwrap();
    let kinds: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(kinds.len(), 3, "{}", stdout(&out));
    assert!(kinds.iter().all(|k| k == "\"log\""), "{kinds:?}");
    let out = datastore()
        .args(["tail", &url, "--kind", "runz"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("runz"), "{}", stderr(&out));
}

#[test]
fn backup_copies_rocksdb_and_sqlite_stores_and_names_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 2);
    for (url, dest) in [
        (
            format!("rocksdb://{}/live", dir.path().display()),
            dir.path().join("rocks-backup"),
        ),
        (
            format!("sqlite://{}/live.db", dir.path().display()),
            dir.path().join("sqlite-backup.db"),
        ),
    ] {
        datastore()
            .args(["import", &url, seed.to_str().unwrap()])
            .assert()
            .success();
        let out = datastore()
            .args(["backup", &url, "--to", dest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("through feed position {items}")),
            "{}",
            stdout(&out)
        );
        let scheme = url.split("://").next().unwrap();
        let copy = format!("{scheme}://{}", dest.display());
        let out = datastore()
            .args(["tail", &copy, "--from", "0", "--limit", "10000"])
            .output()
            .unwrap();
        assert_eq!(stdout(&out).lines().count(), items, "{copy}");
        // The copy's own data is whole.
        let out = datastore()
            .args(["check", "--data", &copy])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("{items} items, feed head {items}"))
                && stdout(&out).contains("no problems"),
            "{}",
            stdout(&out)
        );
        // Restored into an empty store (the bare path works too), whose
        // feed continues after the backup's position.
        let restored = format!("sqlite://{}/restored-{scheme}.db", dir.path().display());
        let out = datastore()
            .args(["restore", dest.to_str().unwrap(), &restored])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("continues after position {items}")),
            "{}",
            stdout(&out)
        );
        let out = datastore()
            .args([
                "tail",
                &restored,
                "--from",
                &items.to_string(),
                "--limit",
                "10000",
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&out).lines().count(), items, "{}", stderr(&out));
        let out = datastore()
            .args(["tail", &restored, "--from", "0"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
        // Not into a store that holds records, unless told.
        let out = datastore()
            .args(["restore", &copy, &restored])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("--allow-non-empty"),
            "{}",
            stderr(&out)
        );
        let out = datastore()
            .args(["restore", &copy, &restored, "--allow-non-empty"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("0 written, {items} already there")),
            "{}",
            stderr(&out)
        );
        // Never over an existing path.
        let out = datastore()
            .args(["backup", &url, "--to", dest.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    }
    let out = datastore()
        .args(["backup", "memory://", "--to", "x"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("export the store instead"),
        "{}",
        stderr(&out)
    );
}

/// PostgreSQL's backup is a JSON Lines snapshot; `check --data` reads it
/// and `restore` writes it into another backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_is_a_lines_snapshot_that_restores() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 3);
    let pg = common::postgres_url();
    let run = |args: &[&str]| {
        datastore()
            .args(args)
            .env("DATASTORE_SQL_SCHEMA", &schema.name)
            .output()
            .unwrap()
    };
    let out = run(&["import", &pg, seed.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&[
        "backup",
        &pg,
        "--to",
        dir.path().join("pg.db").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("FILE.jsonl"), "{}", stderr(&out));
    let backup = dir.path().join("pg.jsonl");
    let out = run(&["backup", &pg, "--to", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("through feed position {items}")),
        "{}",
        stdout(&out)
    );
    let out = run(&["check", "--data", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("a backup of a postgres store")
            && stdout(&out).contains(&format!("through feed position {items}: {items} items")),
        "{}",
        stdout(&out)
    );
    schema.drop().await;

    let rocks = format!("rocksdb://{}/restored", dir.path().display());
    let out = datastore()
        .args(["restore", backup.to_str().unwrap(), &rocks])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("through {}", 2 * items)),
        "{}",
        stdout(&out)
    );
    let out = datastore()
        .args(["check", "--data", &rocks])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    // An export is no backup: restore says so and writes nothing.
    let empty = format!("rocksdb://{}/other", dir.path().display());
    let out = datastore()
        .args(["restore", seed.to_str().unwrap(), &empty])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a backup"), "{}", stderr(&out));
    assert!(!dir.path().join("other").exists(), "nothing created");
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

/// `datastore serve URL` on a free loopback port (with `token` as its
/// own, if given): the process, its address, and the rest of its output.
fn spawn_serve(
    url: &str,
    token: Option<&str>,
) -> (
    std::process::Child,
    String,
    std::io::BufReader<std::process::ChildStdout>,
) {
    use std::io::BufRead;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_datastore"));
    command
        .args(["serve", url, "--listen", "127.0.0.1:0"])
        .env_remove("DATASTORE_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(token) = token {
        command.env("DATASTORE_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr, out)
}

#[test]
fn serve_answers_over_http_and_stops_gracefully() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/served.db", dir.path().display());
    let (mut child, addr, mut out) = spawn_serve(&url, None);
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
        .args(["serve", "memory://", "--listen", "0.0.0.0:0"])
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

/// Imports `file` into `url`, returning the output.
fn import(url: &str, file: &Path) -> std::process::Output {
    datastore()
        .args(["import", url, file.to_str().unwrap()])
        .output()
        .unwrap()
}

/// The store's export, which must succeed.
fn exported(url: &str) -> String {
    let out = datastore().args(["export", url]).output().unwrap();
    assert!(out.status.success(), "export {url}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn import_refuses_an_unknown_field_by_line_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"kind":"profile","record":{"id":"p0","username":"u0"}}"#,
            "\n",
            r#"{"kind":"profile","record":{"id":"p1","username":"u1","emial":"x@y"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let out = import(&url, &file);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 2") && err.contains("emial"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(exported(&url), "", "the good line 1 was written");
    // An unknown field beside `record` is refused the same way.
    std::fs::write(
        &file,
        r#"{"kind":"profile","recrod":{},"record":{"id":"p0","username":"u0"}}"#,
    )
    .unwrap();
    let err = stderr(&import(&url, &file));
    assert!(err.contains("line 1") && err.contains("recrod"), "{err}");
    assert_eq!(exported(&url), "");
}

/// A bad line 600-odd lines in is found before the first write: a run
/// naming a missing workflow, a username taken in the file, a username
/// taken in the store.
#[test]
fn a_bad_line_after_hundreds_of_good_ones_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 70);
    assert!(items > 600, "{items}");
    let good = std::fs::read_to_string(&seed).unwrap();
    let bad_lines = [
        (
            r#"{"kind":"run","record":{"id":"stray","workflow_id":"nope","number":1,"owner_id":"p0","steps":[]}}"#,
            "nope",
        ),
        (
            r#"{"kind":"profile","record":{"id":"other","username":"user0"}}"#,
            "user0",
        ),
    ];
    for (n, (line, named)) in bad_lines.iter().enumerate() {
        let url = format!("rocksdb://{}/r{n}", dir.path().display());
        let file = dir.path().join(format!("bad{n}.jsonl"));
        std::fs::write(&file, format!("{good}{line}\n")).unwrap();
        let out = import(&url, &file);
        assert!(!out.status.success(), "{line}");
        let err = stderr(&out);
        assert!(err.contains(&format!("line {}", items + 1)), "{err}");
        assert!(err.contains(named), "{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(exported(&url), "", "{line}: part of the file was written");
    }

    // A username already taken in the store, not in the file.
    let url = format!("sqlite://{}/taken.db", dir.path().display());
    let first = dir.path().join("first.jsonl");
    std::fs::write(
        &first,
        r#"{"kind":"profile","record":{"id":"holder","username":"user69"}}"#,
    )
    .unwrap();
    assert!(import(&url, &first).status.success());
    let out = import(&url, &seed);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("user69") && err.contains("holder"), "{err}");
    assert_eq!(exported(&url).lines().count(), 1, "only the first import");
}

/// `export`, `tail` and `check` only read: a store that is not there is an
/// error naming the URL, and nothing is created.
#[test]
fn commands_that_only_read_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let urls = [
        format!("sqlite://{d}/typo.db"),
        format!("rocksdb://{d}/missing"),
        format!("rocksdb://{d}/nocreate?create_if_missing=false"),
    ];
    for url in &urls {
        for args in [vec!["export", url.as_str()], vec!["tail", url.as_str()]] {
            let out = datastore().args(&args).output().unwrap();
            assert!(!out.status.success(), "{args:?}");
            let err = stderr(&out);
            assert!(err.contains("no store there"), "{args:?}: {err}");
            assert!(err.contains(&d.to_string()), "names the URL: {err}");
        }
    }
    let out = datastore()
        .args(["import", &urls[2], "/dev/null"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `export` keeps private keys sealed and its file private; plaintext
/// only when asked, with a warning.
#[test]
fn export_keeps_keys_sealed_in_a_private_file() {
    const KEY: &str = "3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a3f9a";
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    seed_file(&seed, 2);
    let sealed = |cmd: &mut Command| {
        cmd.env("DATASTORE_SEALING_KEY_ENV", "TEST_SEALING_KEY")
            .env("TEST_SEALING_KEY", KEY);
    };
    let a = format!("sqlite://{}/a.db", dir.path().display());
    let mut cmd = datastore();
    sealed(&mut cmd);
    let out = cmd
        .args(["import", &a, seed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let file = dir.path().join("out.jsonl");
    let mut cmd = datastore();
    sealed(&mut cmd);
    let out = cmd
        .args(["export", &a, "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("secret-0"), "a private key in plaintext");
    assert!(text.contains(datastore::SEALED_PREFIX), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // The sealed export imports into a store with the same key, which
    // opens it.
    let b = format!("rocksdb://{}/b", dir.path().display());
    let mut cmd = datastore();
    sealed(&mut cmd);
    let out = cmd
        .args(["import", &b, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut cmd = datastore();
    sealed(&mut cmd);
    let out = cmd.args(["export", &b, "--decrypt-keys"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("secret-0"), "{}", stdout(&out));
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    // Without the key, --decrypt-keys is refused.
    let out = datastore()
        .args(["export", &b, "--decrypt-keys"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sealing key"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

/// Ctrl-C during an import reports what was really written, which is in
/// the store.
#[test]
fn an_interrupted_import_reports_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.jsonl");
    let text: String = (0..60_000)
        .map(|n| {
            format!(
                "{{\"kind\":\"profile\",\"record\":{{\"id\":\"p{n}\",\"username\":\"user{n}\"}}}}\n"
            )
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    let url = format!("sqlite://{}/i.db", dir.path().display());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_datastore"))
        .args(["import", &url, file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some of it is in the store, then interrupt.
    let probe = datastore::sql::SqlConfig::new(url.clone());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = std::time::Instant::now();
    loop {
        let mut config = probe.clone();
        config.read_only = true;
        let head = runtime.block_on(async {
            match datastore::sql::open(config).await {
                Ok(ds) => {
                    let head = ds.changes().head().await.map(|c| c.0).unwrap_or(0);
                    let _ = ds.close().await;
                    head
                }
                Err(_) => 0,
            }
        });
        if head > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "the import wrote nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    if out.status.success() {
        // It finished first: everything is there.
        assert!(err.contains("60000 written"), "{err}");
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    let written: u64 = err
        .split("items (")
        .nth(1)
        .and_then(|rest| rest.split(" written").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {err}"));
    assert!(written > 0, "{err}");
    let stored = exported(&url).lines().count() as u64;
    assert!(
        stored >= written,
        "reported {written} written, the store has {stored}"
    );
    // Rerunning resumes: the rest is written, nothing twice.
    let out = import(&url, &file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{} written, {stored} already there",
            60_000 - stored
        )),
        "{}",
        stderr(&out)
    );
}

/// Every command takes its store from its argument, else DATASTORE_URL,
/// else `url` in the --config file.
#[test]
fn the_store_comes_from_the_argument_the_environment_or_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.jsonl");
    let items = seed_file(&seed, 1);
    let url = format!("sqlite://{}/env.db", dir.path().display());
    let out = datastore()
        .args(["import", seed.to_str().unwrap()])
        .env("DATASTORE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = datastore()
        .arg("export")
        .env("DATASTORE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), items, "{}", stderr(&out));
    let config = dir.path().join("datastore.toml");
    std::fs::write(&config, format!("url = \"{url}\"\n")).unwrap();
    let out = datastore()
        .args(["tail", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), items, "{}", stderr(&out));
    let out = datastore().arg("export").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no store given"), "{}", stderr(&out));
}

/// A closed pipe (`| head`) ends a command quietly; an invalid log filter
/// is an error, not a silent default.
#[test]
fn a_closed_pipe_is_quiet_and_a_bad_log_filter_is_an_error() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_datastore"))
        .args(["check", "memory://", "--list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    let out = datastore()
        .args(["--log", "nonsense[[", "export", "memory://"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nonsense[[") && stderr(&out).contains("not a log filter"),
        "{}",
        stderr(&out)
    );
}

/// How many tables a PostgreSQL schema holds.
async fn table_count(conn: &mut sqlx::PgConnection, schema: &str) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM information_schema.tables WHERE table_schema = $1")
            .bind(schema)
            .fetch_one(conn)
            .await
            .unwrap();
    n
}

/// `migrate --dry-run` shows what it would apply and applies nothing; a
/// database with tables of others needs --yes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_shows_before_it_applies() {
    let Some(schema) = common::PgSchema::create().await else {
        return;
    };
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {}.invoices (id int primary key)",
        schema.name
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let migrate = |extra: &[&str]| {
        datastore()
            .arg("migrate")
            .arg(&schema.url)
            .args(extra)
            .env("DATASTORE_SQL_SCHEMA", &schema.name)
            .output()
            .unwrap()
    };
    let out = migrate(&["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("pending") && text.contains("invoices"),
        "{text}"
    );
    assert!(text.contains("dry run: nothing applied"), "{text}");
    assert_eq!(table_count(&mut conn, &schema.name).await, 1);

    let out = migrate(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(table_count(&mut conn, &schema.name).await, 1);

    let out = migrate(&["--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("schema up to date"),
        "{}",
        stdout(&out)
    );
    assert!(table_count(&mut conn, &schema.name).await > 1);
    let out = migrate(&["--dry-run"]);
    assert!(stdout(&out).contains("applied"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("pending"), "{}", stdout(&out));
    drop(conn);
    schema.drop().await;
}

/// `watch` over `http://`: the state tree in the program follows one
/// workflow's runs as another writer creates and finishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_workflow_through_a_remote_server() {
    use datastore::*;
    let dir = tempfile::tempdir().unwrap();
    let local = datastore::open_url(&format!("sqlite://{}", dir.path().join("w.db").display()))
        .await
        .unwrap();
    let mut owner = Profile::new("owner");
    owner.id = ProfileId::new("owner");
    let mut wf = Workflow::new("ds-w", "owner");
    wf.id = WorkflowId::new("wf-watched");
    local
        .apply(
            Batch::new()
                .put(owner, Precondition::Any)
                .put(wf, Precondition::Any),
        )
        .await
        .unwrap();
    let server = datastore_http::Server::bind(
        local.clone(),
        datastore_http::ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let watcher = tokio::process::Command::new(env!("CARGO_BIN_EXE_datastore"))
        .args(["watch", &url, "--workflow", "wf-watched", "--seconds", "5"])
        .env_remove("DATASTORE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let steps = vec![StepRun::new("a", "x"), StepRun::new("b", "x")];
    for _ in 0..2 {
        let run = local
            .runs()
            .create(Run::new("wf-watched", steps.clone()))
            .await
            .unwrap();
        let mut done = run.value.clone();
        done.status = RunStatus::Succeeded;
        for s in &mut done.steps {
            s.status = RunStatus::Succeeded;
        }
        local.runs().put(done, run.expect()).await.unwrap();
    }
    let out = watcher.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames: Vec<&str> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .collect();
    assert!(
        frames[0].contains("workflow wf-watched (dataset ds-w)")
            && frames[0].contains("no runs yet"),
        "{text}"
    );
    let last = frames.last().unwrap();
    assert!(
        last.contains("2 runs held")
            && last.contains("#2     succeeded  2/2 steps")
            && last.contains("#1     succeeded  2/2 steps"),
        "{text}"
    );
    assert!(
        last.find("#2").unwrap() < last.find("#1").unwrap(),
        "newest first: {last}"
    );
    assert!(last.contains("feed events"), "{last}");
    let _ = stop.send(());
    local.close().await.unwrap();
}

/// The demo against a remote server: its client (the state tree) follows
/// the runs over `http://` and ends matching the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_against_a_remote_server() {
    let dir = tempfile::tempdir().unwrap();
    let local = datastore::open_url(&format!("sqlite://{}", dir.path().join("d.db").display()))
        .await
        .unwrap();
    let server = datastore_http::Server::bind(
        local.clone(),
        datastore_http::ServerConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_datastore"))
        .args(["demo", &url, "--runs", "6", "--step-ms", "5"])
        .env_remove("DATASTORE_URL")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("(remote backend"), "{text}");
    assert!(text.contains("matches the store: yes"), "{text}");
    // What the demo wrote is in the server's store.
    let runs = local.count(datastore::Kind::Run).await.unwrap();
    assert_eq!(runs, 6);
    let _ = stop.send(());
    local.close().await.unwrap();
}

/// `watch` on a terminal (a pseudo-terminal from util-linux's `script`):
/// each frame is drawn from the top of a cleared screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_redraws_a_terminal() {
    use datastore::*;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let ds = datastore::open_url(&url).await.unwrap();
    let mut wf = Workflow::new("ds-t", "owner");
    wf.id = WorkflowId::new("wf-t");
    let mut owner = Profile::new("owner");
    owner.id = ProfileId::new("owner");
    ds.apply(
        Batch::new()
            .put(owner, Precondition::Any)
            .put(wf, Precondition::Any),
    )
    .await
    .unwrap();
    ds.runs()
        .create(Run::new("wf-t", vec![StepRun::new("a", "x")]))
        .await
        .unwrap();
    ds.close().await.unwrap();
    let command = format!(
        "{} watch {url} --workflow wf-t --seconds 1",
        env!("CARGO_BIN_EXE_datastore")
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("DATASTORE_URL")
        .output()
        .await
        .expect("util-linux's script runs the program on a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\u{1b}[H\u{1b}[2J"),
        "home and clear: {text:?}"
    );
    assert!(
        text.contains("workflow wf-t (dataset ds-t)")
            && text.contains("#1     waiting    0/1 steps"),
        "{text}"
    );
}

/// `token create|list|revoke` on an SQLite store, and the token against
/// `serve` on that store: it reads its profile's records, not another's,
/// and stops working once revoked.
#[test]
fn tokens_are_issued_listed_used_and_revoked() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tokens.db", dir.path().display());
    // Two profiles, by import.
    let lines = dir.path().join("profiles.jsonl");
    std::fs::write(
        &lines,
        "{\"kind\":\"profile\",\"record\":{\"id\":\"alice\",\"username\":\"alice\"}}\n\
         {\"kind\":\"profile\",\"record\":{\"id\":\"bob\",\"username\":\"bob\"}}\n",
    )
    .unwrap();
    let out = import(&url, &lines);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = datastore()
        .args(["token", "create", &url, "--profile", "nobody"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no profile with the id or username \"nobody\""),
        "{}",
        stderr(&out)
    );

    let out = datastore()
        .args([
            "token",
            "create",
            &url,
            "--profile",
            "alice",
            "--scope",
            "read",
            "--name",
            "laptop",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("dst_"), "{token}");
    assert!(stderr(&out).contains("acts as alice"), "{}", stderr(&out));
    let id = token.split('_').nth(1).unwrap().to_string();
    let secret = token.split('_').nth(2).unwrap().to_string();

    let out = datastore().args(["token", "list", &url]).output().unwrap();
    let listed = stdout(&out);
    assert!(
        listed.contains(&id)
            && listed.contains("alice")
            && listed.contains("read")
            && listed.contains("laptop"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "{listed}");

    // serve with an admin token of its own; alice's token reads alice only.
    let (mut child, addr, _out) = spawn_serve(&url, Some("the-servers-admin-token"));
    let get = |path: &str, token: &str| -> String {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let mine = get("/v1/profiles/alice", &token);
    assert!(mine.starts_with("HTTP/1.1 200"), "{mine}");
    let theirs = get("/v1/profiles/bob", &token);
    assert!(theirs.starts_with("HTTP/1.1 404"), "{theirs}");

    let out = datastore()
        .args(["token", "revoke", &id, &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Revoked from another process: refused as soon as the server hears
    // the change on the feed (its cache drops the token then).
    let mut revoked = String::new();
    for _ in 0..100 {
        revoked = get("/v1/profiles/alice", &token);
        if revoked.starts_with("HTTP/1.1 401") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(revoked.starts_with("HTTP/1.1 401"), "{revoked}");
    let again = datastore()
        .args(["token", "revoke", &token, &url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already revoked"),
        "{}",
        stderr(&again)
    );

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// `history` prints a record's versions newest first, each with its actor;
/// `--at` one version, `--limit` the newest few; a store name that is not
/// one, a log and a missing record are errors that say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_prints_a_records_versions() {
    use datastore::{Actor, Precondition, Profile, ProfileId};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("h.db").display());
    let ds = datastore::open_url(&url).await.unwrap();
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("p1");
    let v1 = ds
        .profiles()
        .put(p.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    p.name = "Alice".into();
    let v2 = ds
        .with_actor(Actor::service("cli-test"))
        .profiles()
        .put(p, v1.expect())
        .await
        .unwrap();
    let gone = ds
        .profiles()
        .delete(&"p1".into(), v2.expect())
        .await
        .unwrap();
    ds.close().await.unwrap();
    drop(ds);

    let out = datastore()
        .args(["history", &url, "profiles", "p1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(u64, &str)> = lines
        .iter()
        .map(|v| (v["revision"].as_u64().unwrap(), v["op"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (gone.get(), "delete"),
            (v2.revision.get(), "put"),
            (v1.revision.get(), "put")
        ]
    );
    assert_eq!(lines[1]["actor"], "service:cli-test");
    assert_eq!(lines[1]["value"]["name"], "Alice");
    assert!(
        stderr(&out).contains("3 versions of profiles/p1"),
        "{}",
        stderr(&out)
    );

    let out = datastore()
        .args([
            "history",
            &url,
            "profile",
            "p1",
            "--at",
            &v1.revision.to_string(),
        ])
        .output()
        .unwrap();
    let one: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(one["revision"], v1.revision.get());
    assert_ne!(one["value"]["name"], "Alice");
    let out = datastore()
        .args(["history", &url, "profiles", "p1", "--limit", "1"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 1);
    // The store from DATASTORE_URL.
    let out = datastore()
        .env("DATASTORE_URL", &url)
        .args(["history", "profiles", "p1"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stderr(&out));

    for (args, named) in [
        (vec!["history", &url, "profilez", "p1"], "profilez"),
        (vec!["history", &url, "logs", "l1"], "no history"),
        (vec!["history", &url, "profiles", "nobody"], "nobody"),
        (vec!["history", &url, "profiles", "p1", "--at", "0"], "--at"),
    ] {
        let out = datastore().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
    }
}
