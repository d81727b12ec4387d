//! `/metrics`: Prometheus text whose counters move with the operations a
//! test makes, behind the token, and with no record id in any label.

mod common;

use std::collections::BTreeMap;

use common::serve_store;
use serde_json::json;

/// One sample: the metric name with its sorted labels, and its value.
type Samples = BTreeMap<String, f64>;

/// Parses the text format strictly: every line is a comment, blank, or
/// `name{label="value",...} number`.
fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split_whitespace().nth(1).unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "unknown type in {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
                (name, labels)
            }
            None => (series, ""),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut pairs: Vec<String> = Vec::new();
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label: {line:?}"));
            assert!(
                v.starts_with('"') && v.ends_with('"'),
                "unquoted label value: {line:?}"
            );
            pairs.push(format!("{k}={v}"));
        }
        pairs.sort();
        out.insert(format!("{name}{{{}}}", pairs.join(",")), value);
    }
    out
}

fn value(samples: &Samples, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_operations_and_never_name_a_record() {
    let ds = datastore::Instrumented::wrap(datastore_memory::open()).into_dyn();
    let token = "metrics-test-token";
    let server = serve_store(ds, Some(token), None).await;
    let c = reqwest::Client::new();
    let r = c.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401, "behind the token");
    let scrape = || async {
        let r = c
            .get(server.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        (parse(&text), text)
    };
    let (before, _) = scrape().await;
    let puts = r#"datastore_operations_total{op="put",store="profiles"}"#;
    let missing =
        r#"datastore_operation_errors_total{error="not_found",op="get",store="profiles"}"#;
    let ids: Vec<String> = (0..3).map(|i| format!("secret-profile-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let r = c
            .put(server.url(&format!("/v1/profiles/{id}")))
            .bearer_auth(token)
            .json(&json!({"id": id, "username": format!("hidden-user-{i}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let r = c
        .get(server.url("/v1/profiles/secret-missing-one"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (after, text) = scrape().await;
    assert_eq!(value(&after, puts) - value(&before, puts), 3.0, "{text}");
    assert_eq!(
        value(&after, missing) - value(&before, missing),
        1.0,
        "{text}"
    );
    let buckets = r#"datastore_operation_duration_seconds_count{op="put",store="profiles"}"#;
    assert!(value(&after, buckets) >= 3.0, "{text}");
    assert!(value(&after, "datastore_feed_head{}") >= 3.0, "{text}");
    for secret in ids
        .iter()
        .map(String::as_str)
        .chain(["hidden-user", "secret-missing-one"])
    {
        assert!(!text.contains(secret), "{secret} appears in /metrics");
    }
    server.stop().await;
}

/// The SQL pool gauges and the cache's evictions reach `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_pool_connections_and_cache_evictions() {
    let (inner, dir) = common::store(common::Backend::Sqlite).await;
    let config = datastore::CacheConfig {
        capacity: 4,
        ..Default::default()
    };
    let cached = datastore::Cached::wrap(inner, config).await.unwrap();
    let ds: std::sync::Arc<dyn datastore::Datastore> = std::sync::Arc::new(cached);
    let server = serve_store(ds, None, dir).await;
    let c = reqwest::Client::new();
    let scrape = || async {
        let text = c
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (parse(&text), text)
    };
    let evicted = r#"datastore_cache_evictions_total{cause="size"}"#;
    let (before, _) = scrape().await;
    for i in 0..40 {
        let id = format!("p{i}");
        let r = c
            .put(server.url(&format!("/v1/profiles/{id}")))
            .json(&json!({"id": id, "username": format!("u{i}")}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    // Reading 40 records through a cache of 4 evicts; the pool gauges are
    // sampled every second by the feed follower.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        for i in 0..40 {
            let r = c
                .get(server.url(&format!("/v1/profiles/p{i}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let (after, text) = scrape().await;
        let reader_open = value(
            &after,
            r#"datastore_pool_connections{pool="sqlite_reader",state="idle"}"#,
        ) + value(
            &after,
            r#"datastore_pool_connections{pool="sqlite_reader",state="in_use"}"#,
        );
        if value(&after, evicted) > value(&before, evicted) && reader_open >= 1.0 {
            assert!(
                text.contains(r#"datastore_pool_connections{pool="sqlite_writer""#),
                "{text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no evictions or pool gauges after 10 s:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    server.stop().await;
}
