//! The limits that protect the server: a cap on open event streams (503
//! with `Retry-After`) and a request rate per token (429 with `Retry-After`).

use std::net::SocketAddr;
use std::time::Duration;

use datastore_http::{Limits, Rate, Server, ServerConfig};

async fn serve_with(limits: Limits) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        limits,
        ..ServerConfig::default()
    };
    let server = Server::bind(datastore_memory::open(), config)
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (base, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_the_cap_get_503_until_one_closes() {
    let (base, stop) = serve_with(Limits {
        max_streams: 2,
        ..Limits::default()
    })
    .await;
    let c = reqwest::Client::new();
    let first = c.get(format!("{base}/v1/changes")).send().await.unwrap();
    let second = c.get(format!("{base}/v1/changes")).send().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = c.get(format!("{base}/v1/changes")).send().await.unwrap();
    assert_eq!(third.status(), 503);
    assert_eq!(third.headers()["retry-after"], "5");
    let body = third.text().await.unwrap();
    assert!(body.contains("too-many-streams"), "{body}");
    // Other requests are not affected.
    let head = c
        .get(format!("{base}/v1/changes/head"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    drop(first);
    // The server notices the closed stream on its next write to it (a
    // keep-alive comment at the latest); a change makes that immediate.
    let mut opened = None;
    for i in 0..100 {
        c.put(format!("{base}/v1/profiles/p{i}"))
            .json(&serde_json::json!({"id": format!("p{i}"), "username": format!("u{i}")}))
            .send()
            .await
            .unwrap();
        let r = c.get(format!("{base}/v1/changes")).send().await.unwrap();
        if r.status() == 200 {
            opened = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(opened.is_some(), "a closed stream's place is given back");
    drop(second);
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_rate_get_429_with_retry_after() {
    let (base, stop) = serve_with(Limits {
        rate: Some(Rate {
            per_second: 1,
            burst: 5,
        }),
        ..Limits::default()
    })
    .await;
    let c = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = c
            .get(format!("{base}/v1/changes/head"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let wait: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&wait), "Retry-After {wait}");
            let body = r.text().await.unwrap();
            assert!(body.contains("too-many-requests"), "{body}");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "the burst passes: {statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Probes are never limited.
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A second later there is room for one more.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = c
        .get(format!("{base}/v1/changes/head"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = stop.send(());
}
