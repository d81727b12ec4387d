//! Typed keyed state: naming rules, clearing, update semantics, storage,
//! and migrations.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use state_tree::{
    AnyKey, ClearOn, FileStorage, KeyDefinition, KeyedState, Location, MemoryStorage, Migration,
    MigrationError, Migrator, StateDefinition, Storage, check_definitions,
};

const SETTINGS: StateDefinition = StateDefinition {
    name: "settings",
    location: Location::Disk,
};
const SESSION: StateDefinition = StateDefinition {
    name: "session",
    location: Location::Memory,
};

const THEME: KeyDefinition<String> =
    KeyDefinition::new(SETTINGS, "theme", Duration::from_secs(1), &[]);
const DRAFTS: KeyDefinition<Vec<String>> = KeyDefinition::new(
    SETTINGS,
    "draftWorkflows",
    Duration::from_secs(1),
    &[ClearOn::Logout],
);
const PINNED: KeyDefinition<u32> = KeyDefinition::new(
    SETTINGS,
    "pinnedRun",
    Duration::ZERO,
    &[ClearOn::Logout, ClearOn::Lock],
);
const TOKEN: KeyDefinition<String> = KeyDefinition::new(
    SESSION,
    "accessToken",
    Duration::ZERO,
    &[ClearOn::Logout, ClearOn::Lock],
);

fn registry() -> Vec<&'static dyn AnyKey> {
    vec![&THEME, &DRAFTS, &PINNED, &TOKEN]
}

fn keyed(dir: &std::path::Path) -> KeyedState {
    KeyedState::new(
        Arc::new(MemoryStorage::default()),
        Arc::new(FileStorage::new(dir).unwrap()),
    )
}

#[test]
fn the_registry_follows_the_naming_rules() {
    check_definitions(&registry()).unwrap();
    const BAD_STATE: StateDefinition = StateDefinition {
        name: "Bad-State",
        location: Location::Disk,
    };
    const BAD: KeyDefinition<u8> = KeyDefinition::new(BAD_STATE, "snake_key", Duration::ZERO, &[]);
    const TWICE: KeyDefinition<u8> = KeyDefinition::new(SETTINGS, "theme", Duration::ZERO, &[]);
    const MOVED: StateDefinition = StateDefinition {
        name: "settings",
        location: Location::Memory,
    };
    const ELSEWHERE: KeyDefinition<u8> = KeyDefinition::new(MOVED, "other", Duration::ZERO, &[]);
    let problems = check_definitions(&[&THEME, &BAD, &TWICE, &ELSEWHERE]).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("\"Bad-State\"")));
    assert!(problems.iter().any(|p| p.contains("\"snake_key\"")));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("defined twice in state"))
    );
    assert!(problems.iter().any(|p| p.contains("in Disk and Memory")));
}

#[test]
fn update_returns_the_stored_value_and_should_update_false_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = keyed(dir.path());
    let heard = Arc::new(AtomicUsize::new(0));
    let h = heard.clone();
    let _subscription = state
        .subscribe("alice", &THEME, move |_| {
            h.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let stored = state
        .update("alice", &THEME, |_| "dark".to_string(), |_| true)
        .unwrap();
    assert_eq!(stored.as_deref(), Some("dark"));
    assert_eq!(heard.load(Ordering::SeqCst), 1);
    let file = dir.path().join("user_alice_settings_theme.json");
    let before = std::fs::read(&file).unwrap();
    let kept = state
        .update(
            "alice",
            &THEME,
            |_| "light".to_string(),
            |current| current.map(String::as_str) != Some("dark"),
        )
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("dark"),
        "the value stored is returned"
    );
    assert_eq!(heard.load(Ordering::SeqCst), 1, "nobody is told");
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing is written");
    assert_eq!(state.get("alice", &THEME).unwrap().as_deref(), Some("dark"));
}

#[test]
fn logout_clears_the_users_keys_even_ones_never_loaded_here() {
    let dir = tempfile::tempdir().unwrap();
    {
        // An earlier process wrote them.
        let earlier = keyed(dir.path());
        earlier
            .update("alice", &DRAFTS, |_| vec!["w1".into()], |_| true)
            .unwrap();
        earlier.update("alice", &PINNED, |_| 7, |_| true).unwrap();
        earlier
            .update("alice", &THEME, |_| "dark".into(), |_| true)
            .unwrap();
        earlier
            .update("bob", &DRAFTS, |_| vec!["w2".into()], |_| true)
            .unwrap();
    }
    let now = keyed(dir.path());
    now.update("alice", &TOKEN, |_| "secret".into(), |_| true)
        .unwrap();
    assert_eq!(now.clear("alice", ClearOn::Logout, &registry()).unwrap(), 3);
    assert_eq!(now.get("alice", &DRAFTS).unwrap(), None);
    assert_eq!(now.get("alice", &PINNED).unwrap(), None);
    assert_eq!(now.get("alice", &TOKEN).unwrap(), None);
    assert_eq!(
        now.get("alice", &THEME).unwrap().as_deref(),
        Some("dark"),
        "not a logout key"
    );
    assert_eq!(
        now.get("bob", &DRAFTS).unwrap(),
        Some(vec!["w2".to_string()]),
        "another user's keys stay"
    );
}

#[test]
fn lock_clears_only_lock_keys_and_memory_state_never_touches_disk() {
    let dir = tempfile::tempdir().unwrap();
    let state = keyed(dir.path());
    state
        .update("alice", &TOKEN, |_| "secret".into(), |_| true)
        .unwrap();
    state
        .update("alice", &DRAFTS, |_| vec!["w1".into()], |_| true)
        .unwrap();
    let on_disk: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(on_disk.len(), 1, "only the disk key is a file: {on_disk:?}");
    state.clear("alice", ClearOn::Lock, &registry()).unwrap();
    assert_eq!(state.get("alice", &TOKEN).unwrap(), None);
    assert!(state.get("alice", &DRAFTS).unwrap().is_some());
}

#[test]
fn file_storage_replaces_whole_files_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileStorage::new(dir.path()).unwrap();
    files.put("k", b"first").unwrap();
    files.put("k", b"second, longer").unwrap();
    assert_eq!(
        files.get("k").unwrap().as_deref(),
        Some(&b"second, longer"[..])
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["k.json"]);
    files.remove("k").unwrap();
    files.remove("k").unwrap();
    assert_eq!(files.get("k").unwrap(), None);
}

/// Storage that counts reads, to see the cache at work.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    reads: AtomicUsize,
}

impl Storage for CountingStorage {
    fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> std::io::Result<()> {
        self.inner.put(key, value)
    }
    fn remove(&self, key: &str) -> std::io::Result<()> {
        self.inner.remove(key)
    }
}

#[test]
fn values_stay_cached_while_subscribed_and_for_their_cleanup_delay() {
    let disk = Arc::new(CountingStorage::default());
    let state = KeyedState::new(Arc::new(MemoryStorage::default()), disk.clone());
    state
        .update("alice", &THEME, |_| "dark".into(), |_| true)
        .unwrap();
    let sub = state.subscribe("alice", &THEME, |_| {}).unwrap();
    let reads = disk.reads.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(state.get("alice", &THEME).unwrap().as_deref(), Some("dark"));
    }
    assert_eq!(
        disk.reads.load(Ordering::SeqCst),
        reads,
        "served from the cache"
    );
    let far = std::time::Instant::now() + Duration::from_secs(3600);
    assert_eq!(state.sweep(far), 0, "a subscribed value is never evicted");
    drop(sub);
    // THEME's delay is one second: kept just after, gone once it has passed.
    assert_eq!(state.sweep(std::time::Instant::now()), 0);
    assert_eq!(state.cached(), ["user_alice_settings_theme"]);
    assert_eq!(state.sweep(far), 1);
    assert!(state.cached().is_empty());
    assert_eq!(state.get("alice", &THEME).unwrap().as_deref(), Some("dark"));
    assert_eq!(
        disk.reads.load(Ordering::SeqCst),
        reads + 1,
        "read again after eviction"
    );
}

#[test]
fn clearing_also_clears_the_cached_value() {
    let dir = tempfile::tempdir().unwrap();
    let state = keyed(dir.path());
    state
        .update("alice", &DRAFTS, |_| vec!["w1".into()], |_| true)
        .unwrap();
    let _sub = state.subscribe("alice", &DRAFTS, |_| {}).unwrap();
    state.clear("alice", ClearOn::Logout, &registry()).unwrap();
    assert_eq!(state.get("alice", &DRAFTS).unwrap(), None);
}

fn steps() -> Vec<Migration> {
    vec![
        Migration {
            from: 0,
            name: "rename theme",
            up: |mut d| {
                let v = d["colour"].take();
                d["theme"] = v;
                d.as_object_mut().unwrap().remove("colour");
                Ok(d)
            },
            down: Some(|mut d| {
                let v = d["theme"].take();
                d["colour"] = v;
                d.as_object_mut().unwrap().remove("theme");
                Ok(d)
            }),
        },
        Migration {
            from: 1,
            name: "add pins",
            up: |mut d| {
                d["pins"] = json!([]);
                Ok(d)
            },
            down: Some(|mut d| {
                d.as_object_mut().unwrap().remove("pins");
                Ok(d)
            }),
        },
        Migration {
            from: 2,
            name: "drop history",
            up: |mut d| {
                d.as_object_mut().unwrap().remove("history");
                Ok(d)
            },
            down: None,
        },
    ]
}

#[test]
fn migrations_go_up_and_down_and_refuse_what_they_cannot_do() {
    let m = Migrator::new(steps()).unwrap();
    assert_eq!(m.latest(), 3);
    let v0 = json!({"colour": "dark", "history": [1, 2]});
    let v3 = m.up(v0.clone(), 0).unwrap();
    assert_eq!(v3, json!({"theme": "dark", "pins": []}));
    let from_v1 = m.up(json!({"theme": "dark", "history": [3]}), 1).unwrap();
    assert_eq!(from_v1, json!({"theme": "dark", "pins": []}));
    assert_eq!(
        m.down(json!({"theme": "dark", "pins": []}), 2, 0).unwrap(),
        json!({"colour": "dark"})
    );
    match m.down(v3.clone(), 3, 1) {
        Err(MigrationError::Irreversible { from: 2, name }) => assert_eq!(name, "drop history"),
        other => panic!("expected an irreversible step, got {other:?}"),
    }
    match m.up(v3, 9) {
        Err(
            e @ MigrationError::UnknownVersion {
                found: 9,
                latest: 3,
            },
        ) => assert!(e.to_string().contains("refusing")),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_chain_with_a_gap_is_refused_when_built() {
    let mut gap = steps();
    gap.remove(1);
    match Migrator::new(gap) {
        Err(MigrationError::BrokenChain { at: 1, .. }) => {}
        other => panic!("expected a broken chain at 1, got {:?}", other.err()),
    }
}
