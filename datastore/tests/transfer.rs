//! Export, import and copy of more than one batch, into a real SQLite file:
//! every record arrives once, logs longer than one append arrive whole,
//! and a second run writes nothing.

use std::io::Cursor;

use datastore::transfer::{self, BATCH_SIZE};
use datastore::{Batch, Datastore, LogId, LogOp, Precondition, Profile, ProfileId};

const PROFILES: usize = BATCH_SIZE + 1_200;
const LOG_ENTRIES: usize = 2_500;

async fn seeded() -> std::sync::Arc<dyn Datastore> {
    let ds = datastore::open_url("memory://").await.unwrap();
    for start in (0..PROFILES).step_by(1_000) {
        let batch = (start..(start + 1_000).min(PROFILES)).fold(Batch::new(), |b, i| {
            let mut p = Profile::new(format!("user{i:05}"));
            p.id = ProfileId::new(format!("p{i:05}"));
            b.put(p, Precondition::MustNotExist)
        });
        ds.apply(batch).await.unwrap();
    }
    let log = LogId::new("log-1");
    for start in (0..LOG_ENTRIES).step_by(1_000) {
        let ops = (start..(start + 1_000).min(LOG_ENTRIES))
            .map(|i| LogOp {
                name: format!("op{i}"),
                author_id: "author".into(),
                ..LogOp::default()
            })
            .collect();
        ds.logs().append(&log, start as u64, ops).await.unwrap();
    }
    ds
}

async fn assert_same(dest: &dyn Datastore) {
    let mut ids = Vec::new();
    for i in 0..PROFILES {
        ids.push(ProfileId::new(format!("p{i:05}")));
    }
    for chunk in ids.chunks(datastore::MAX_GET_MANY) {
        let found = dest.profiles().get_many(chunk).await.unwrap();
        for (id, f) in chunk.iter().zip(found) {
            let f = f.unwrap_or_else(|| panic!("{id} did not arrive"));
            assert_eq!(f.value.username, format!("user{}", &id.as_str()[1..]));
        }
    }
    let log = LogId::new("log-1");
    assert_eq!(dest.logs().length(&log).await.unwrap(), LOG_ENTRIES as u64);
    let last = dest.logs().head(&log).await.unwrap();
    assert_eq!(last.value.op.name, format!("op{}", LOG_ENTRIES - 1));
}

#[tokio::test]
async fn copy_of_several_batches_arrives_whole_and_once() {
    let source = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("copy.db").display());
    let dest = datastore::open_url(&url).await.unwrap();
    let items = (PROFILES + LOG_ENTRIES) as u64;
    assert_eq!(transfer::count_items(&*source).await.unwrap(), items);
    assert_eq!(transfer::count_items(&*dest).await.unwrap(), 0);
    let stats = transfer::copy(&*source, &*dest, |_| {}).await.unwrap();
    assert_eq!(
        (stats.read, stats.written, stats.skipped),
        (items, items, 0)
    );
    assert_same(&*dest).await;
    assert_eq!(
        transfer::count_items(&*dest).await.unwrap(),
        items,
        "the total a copy's progress shows"
    );
    let head = dest.changes().head().await.unwrap();
    assert_eq!(head.0, items, "one change per record written");

    // Again: everything is there already, nothing is written.
    let again = transfer::copy(&*source, &*dest, |_| {}).await.unwrap();
    assert_eq!((again.written, again.skipped), (0, items));
    assert_eq!(dest.changes().head().await.unwrap(), head);
}

#[tokio::test]
async fn export_then_import_of_several_batches_round_trips() {
    let source = seeded().await;
    let mut out = Vec::new();
    let exported = transfer::export(&*source, &mut out, |_| {}).await.unwrap();
    assert_eq!(exported.read, (PROFILES + LOG_ENTRIES) as u64);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("import.db").display());
    let dest = datastore::open_url(&url).await.unwrap();
    let imported = transfer::import(&*dest, Cursor::new(out), |_| {})
        .await
        .unwrap();
    assert_eq!(imported.written, exported.read);
    assert_same(&*dest).await;
}

/// The pre-write check finds, within the file, a record repeated with
/// other content (naming both lines), a unique value claimed twice (naming
/// the first line), and accepts a record repeated with the same content
/// and a reference to a record earlier in the file.
#[tokio::test]
async fn check_finds_repeats_and_clashes_within_the_file() {
    let dest = datastore::open_url("memory://").await.unwrap();
    let p = |id: &str, user: &str, name: &str| {
        format!(
            r#"{{"kind":"profile","record":{{"id":"{id}","username":"{user}","name":"{name}","created":"2026-12-01T10:00:00Z","updated":"2026-12-01T10:00:00Z"}}}}"#
        )
    };
    let workflow = r#"{"kind":"workflow","record":{"id":"w1","init_id":"i1","owner_id":"a"}}"#;
    let good = [p("a", "alice", "A"), p("a", "alice", "A"), workflow.into()].join("\n");
    let checked = transfer::check(&*dest, Cursor::new(good), |_| {})
        .await
        .unwrap();
    assert_eq!(checked.items, 3);

    let refused = async |lines: [String; 3]| {
        transfer::check(&*dest, Cursor::new(lines.join("\n")), |_| {})
            .await
            .unwrap_err()
            .to_string()
    };
    let err = refused([
        p("a", "alice", "A"),
        p("b", "bob", "B"),
        p("a", "alice", "Z"),
    ])
    .await;
    assert!(err.contains("line 3") && err.contains("line 1"), "{err}");
    let err = refused([
        p("a", "alice", "A"),
        p("b", "bob", "B"),
        p("c", "alice", "C"),
    ])
    .await;
    assert!(
        err.contains("line 3") && err.contains("alice") && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(transfer::count_items(&*dest).await.unwrap(), 0);
}

/// A line written exactly as the record writes itself (an export's line,
/// which the check hashes as it reads it) and a line holding the same
/// record written otherwise (keys sorted, spaces) are the same record: a
/// repeat, not a conflict; and present, once the destination holds it.
/// A change to either is still a conflict.
#[tokio::test]
async fn a_record_written_exactly_or_otherwise_is_one_record() {
    let dest = datastore::open_url("memory://").await.unwrap();
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("a");
    p.name = "Zoë \"A\"".into();
    let item = transfer::Item::Record(p.clone().into());
    let exact = serde_json::to_string(&item).unwrap();
    let sorted = serde_json::to_value(&item).unwrap().to_string();
    let spaced = serde_json::to_string_pretty(&item)
        .unwrap()
        .replace('\n', "");
    assert_ne!(exact, sorted);
    assert_ne!(exact, spaced);
    let lines = |lines: &[&str]| Cursor::new(lines.join("\n"));

    for file in [
        [exact.as_str(), sorted.as_str(), spaced.as_str()],
        [sorted.as_str(), exact.as_str(), exact.as_str()],
    ] {
        let checked = transfer::check(&*dest, lines(&file), |_| {}).await.unwrap();
        assert_eq!((checked.items, checked.repeated), (3, 2), "{file:?}");
    }
    let changed = exact.replace("alice", "alicia");
    for file in [[sorted.as_str(), &changed], [&changed, sorted.as_str()]] {
        let err = transfer::check(&*dest, lines(&file), |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("line 1"), "{err}");
    }

    dest.apply(Batch::new().put(p, Precondition::MustNotExist))
        .await
        .unwrap();
    let stored = dest.profiles().get(&ProfileId::new("a")).await.unwrap();
    let item = transfer::Item::Record(stored.value.into());
    let exact = serde_json::to_string(&item).unwrap();
    let sorted = serde_json::to_value(&item).unwrap().to_string();
    for file in [[exact.as_str()], [sorted.as_str()]] {
        let checked = transfer::check(&*dest, lines(&file), |_| {}).await.unwrap();
        assert_eq!((checked.items, checked.present), (1, 1), "{file:?}");
    }
    let changed = exact.replace("alice", "alicia");
    let err = transfer::check(&*dest, lines(&[&changed]), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}

/// A file large enough that the check keeps what it has seen in temporary
/// files (over 4 MiB of it) finds the same first failure a line-by-line
/// check does: the earliest failing line, whichever check it fails, and
/// whether it fails within the file or against the destination.
#[tokio::test]
async fn a_check_too_big_for_memory_finds_the_earliest_failing_line() {
    const LINES: usize = 40_000;
    let profile = |i: usize, user: &str, name: &str| {
        format!(
            r#"{{"kind":"profile","record":{{"id":"p{i}","username":"{user}","name":"{name}","created":"2026-12-01T10:00:00Z","updated":"2026-12-01T10:00:00Z"}}}}"#
        )
    };
    let mut lines: Vec<String> = (0..LINES)
        .map(|i| profile(i, &format!("user{i}"), "N"))
        .collect();
    lines.push(r#"{"kind":"workflow","record":{"id":"w1","init_id":"i1","owner_id":"p0"}}"#.into());
    let dest = datastore::open_url("memory://").await.unwrap();
    let check = async |lines: &[String]| {
        transfer::check(&*dest, Cursor::new(lines.join("\n")), |_| {}).await
    };
    let checked = check(&lines).await.unwrap();
    assert_eq!(checked.items, LINES as u64 + 1);

    let with = |extra: &[String]| {
        let mut all = lines.clone();
        all.extend_from_slice(extra);
        all
    };
    let run = |id: &str, workflow: &str| {
        format!(
            r#"{{"kind":"run","record":{{"id":"{id}","workflow_id":"{workflow}","number":1,"owner_id":"p0","steps":[]}}}}"#
        )
    };
    let cases = [
        // Line 40,002 repeats line 2 with other content; line 40,003
        // claims line 40,000's username.
        (
            with(&[
                profile(1, "user1", "Z"),
                profile(LINES + 5, "user39999", "N"),
            ]),
            "line 40002",
            "line 2",
        ),
        (
            with(&[
                profile(LINES + 5, "user39999", "N"),
                profile(1, "user1", "Z"),
            ]),
            "line 40002",
            "line 40000",
        ),
        // A run naming a workflow on a later line, then that workflow.
        (
            with(&[
                run("r1", "w2"),
                r#"{"kind":"workflow","record":{"id":"w2","init_id":"i2","owner_id":"p0"}}"#.into(),
            ]),
            "line 40002",
            "w2",
        ),
        (with(&[run("r1", "w1")]), "", ""),
    ];
    for (file, line, named) in cases {
        match check(&file).await {
            Ok(_) => assert!(line.is_empty(), "{line} passed"),
            Err(e) => {
                let e = e.to_string();
                assert!(!line.is_empty(), "{e}");
                assert!(
                    e.starts_with(&format!("{line}:")) && e.contains(named),
                    "{e}"
                );
            }
        }
    }

    // Against the destination: a record it holds with other content on a
    // late line, after a repeat within the file on an earlier one.
    let mut held = Profile::new("user30000");
    held.id = ProfileId::new("p30000");
    held.name = "Other".into();
    dest.profiles()
        .put(held, Precondition::MustNotExist)
        .await
        .unwrap();
    let mut file = lines.clone();
    file[20_000] = profile(3, "user3", "Z");
    let e = check(&file).await.unwrap_err().to_string();
    assert!(e.starts_with("line 20001:") && e.contains("line 4"), "{e}");
    file[20_000] = profile(20_000, "user20000", "N");
    let e = check(&file).await.unwrap_err().to_string();
    assert!(
        e.starts_with("line 30001:") && e.contains("destination"),
        "{e}"
    );
}

/// A file the check passed with a record repeated (same content) in one
/// batch and again in a later one imports whole: each record once, the
/// repeats skipped.
#[tokio::test]
async fn a_repeated_record_imports_once_whichever_batch_repeats_it() {
    let profile = |i: usize| {
        format!(
            r#"{{"kind":"profile","record":{{"id":"p{i}","username":"user{i}","created":"2026-12-01T10:00:00Z","updated":"2026-12-01T10:00:00Z"}}}}"#
        )
    };
    let mut lines: Vec<String> = (0..BATCH_SIZE + 10).map(profile).collect();
    lines.insert(5, profile(2)); // again in the first batch
    lines.push(profile(3)); // again in the second
    let text = lines.join("\n");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("repeats.db").display());
    let dest = datastore::open_url(&url).await.unwrap();
    let checked = transfer::check(&*dest, Cursor::new(&text), |_| {})
        .await
        .unwrap();
    assert_eq!(checked.items, lines.len() as u64);
    let stats = transfer::import_checked(&*dest, Cursor::new(&text), &checked, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (stats.written, stats.skipped),
        ((BATCH_SIZE + 10) as u64, 2)
    );
    assert_eq!(
        transfer::count_items(&*dest).await.unwrap(),
        (BATCH_SIZE + 10) as u64
    );
}

/// A file changed between the check and the write: the batches before the
/// change are written, nothing of the batch holding it or after, and the
/// error says the input changed; run again, the import finishes.
#[tokio::test]
async fn a_file_changed_after_its_check_is_written_only_up_to_the_change() {
    let profile = |i: usize, name: &str| {
        format!(
            r#"{{"kind":"profile","record":{{"id":"p{i}","username":"user{i}","name":"{name}"}}}}"#
        )
    };
    let lines: Vec<String> = (0..2 * BATCH_SIZE + 500).map(|i| profile(i, "N")).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profiles.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let url = format!("sqlite://{}", dir.path().join("changed.db").display());
    let dest = datastore::open_url(&url).await.unwrap();
    let open = || std::io::BufReader::new(std::fs::File::open(&file).unwrap());
    let checked = transfer::check(&*dest, open(), |_| {}).await.unwrap();

    // A line of the second batch now names a username another line holds:
    // a file the check would refuse.
    let mut changed = lines.clone();
    changed[BATCH_SIZE + 7] =
        profile(BATCH_SIZE + 7, "N").replace(&format!("user{}", BATCH_SIZE + 7), "user0");
    std::fs::write(&file, changed.join("\n")).unwrap();
    let e = transfer::import_checked(&*dest, open(), &checked, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, transfer::TransferError::Changed { .. }), "{e}");
    assert!(
        e.to_string().contains("changed after it was checked"),
        "{e}"
    );
    assert_eq!(
        transfer::count_items(&*dest).await.unwrap(),
        BATCH_SIZE as u64,
        "the first batch, nothing of the second"
    );

    // Put back, checked anew, the rest goes in.
    std::fs::write(&file, lines.join("\n")).unwrap();
    let checked = transfer::check(&*dest, open(), |_| {}).await.unwrap();
    assert_eq!(checked.present, BATCH_SIZE as u64);
    let stats = transfer::import_checked(&*dest, open(), &checked, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (stats.written, stats.skipped),
        ((BATCH_SIZE + 500) as u64, BATCH_SIZE as u64)
    );
}
