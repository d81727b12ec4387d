//! History settings through `datastore::open`: a retention in the config is
//! applied in the background, and names that are not kinds with history are
//! refused naming the setting.

use datastore::{
    Config, HistoryKindConfig, OpenError, PageRequest, Precondition, Profile, ProfileId,
};

fn config(kinds: &[(&str, HistoryKindConfig)]) -> Config {
    let mut config = Config::with_url("memory://");
    for (name, kind) in kinds {
        config.history.kinds.insert(name.to_string(), kind.clone());
    }
    config.history.compact_every_secs = 1;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_retention_is_applied_in_the_background() {
    let keep_two = HistoryKindConfig {
        max_versions: Some(2),
        ..HistoryKindConfig::default()
    };
    let off = HistoryKindConfig {
        enabled: false,
        ..HistoryKindConfig::default()
    };
    let ds = datastore::open(&config(&[("profiles", keep_two), ("workflows", off)]))
        .await
        .unwrap();
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("p1");
    let mut last = ds
        .profiles()
        .put(p.clone(), Precondition::MustNotExist)
        .await
        .unwrap();
    for i in 0..4 {
        p.name = format!("v{i}");
        last = ds.profiles().put(p.clone(), last.expect()).await.unwrap();
    }
    let versions = || async {
        ds.profiles()
            .history(&"p1".into(), PageRequest::first(10))
            .await
            .unwrap()
            .items
            .len()
    };
    assert_eq!(versions().await, 5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while versions().await != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "never compacted to 2 versions"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Workflows keep none: a workflow's history is its current state.
    let w = ds
        .workflows()
        .put(datastore::Workflow::new("ds1", "p1"), Precondition::Any)
        .await
        .unwrap();
    let w2 = ds
        .workflows()
        .put(w.value.clone(), w.expect())
        .await
        .unwrap();
    let h = ds
        .workflows()
        .history(&w.value.id, PageRequest::first(10))
        .await
        .unwrap();
    let revisions: Vec<_> = h.items.iter().map(|v| v.revision).collect();
    assert_eq!(revisions, vec![w2.revision]);
    ds.close().await.unwrap();
}

#[tokio::test]
async fn history_settings_that_name_no_kind_with_history_are_refused() {
    for (name, why) in [
        ("profilez", "not a store"),
        ("tokens", "keep no history"),
        ("logs", "keep no history"),
    ] {
        let err = datastore::open(&config(&[(name, HistoryKindConfig::default())]))
            .await
            .unwrap_err();
        match &err {
            OpenError::Config {
                source_name,
                reason,
            } => {
                assert_eq!(source_name, &format!("history.kinds.{name}"));
                assert!(reason.contains(why), "{reason}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    let zero = HistoryKindConfig {
        max_versions: Some(0),
        ..HistoryKindConfig::default()
    };
    assert!(datastore::open(&config(&[("runs", zero)])).await.is_err());
}
