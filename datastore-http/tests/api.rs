//! The HTTP API end to end: a real server on a loopback port, a real HTTP
//! client, on the memory and SQLite backends.

mod common;

use std::time::Duration;

use common::{BACKENDS, Backend, SseReader, serve, serve_store};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_string()
}

async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:datastore:problem:"),
        "{body}"
    );
    body
}

async fn head(server: &common::Running) -> u64 {
    server.ds.changes().head().await.unwrap().0
}

fn profile(id: &str, username: &str) -> Value {
    json!({ "id": id, "username": username })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_maps_from_the_error_enum() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        let c = client();
        // 404
        let r = c
            .get(server.url("/v1/profiles/nobody"))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::NOT_FOUND).await;
        assert_eq!(
            (body["store"].as_str(), body["key"].as_str()),
            (Some("profiles"), Some("nobody"))
        );
        // 201, then 412 for If-None-Match: * on an existing key
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .header("if-none-match", "*")
            .json(&profile("p1", "alice"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "{backend:?}");
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .header("if-none-match", "*")
            .json(&profile("p1", "alice"))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::PRECONDITION_FAILED).await;
        assert_eq!(body["key"], "p1");
        assert!(
            body["detail"].as_str().unwrap().contains("found revision"),
            "names the revision there: {body}"
        );
        // 409: a unique field taken by another record
        let r = c
            .post(server.url("/v1/profiles"))
            .json(&profile("p2", "alice"))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::CONFLICT).await;
        assert!(
            body["detail"].as_str().unwrap().contains("username")
                || body["type"] == "urn:datastore:problem:already-exists",
            "{body}"
        );
        // 409: a log append at the wrong length
        let r = c
            .post(server.url("/v1/logs/l1/entries"))
            .json(&json!({"expected_len": 3, "ops": [{"name": "x"}]}))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::CONFLICT).await;
        // 400: an invalid record names its field
        let r = c
            .put(server.url("/v1/profiles/p3"))
            .json(&json!({"id": "p3", "username": ""}))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], "username", "{body}");
        // 400: the body's id is not the path's
        let r = c
            .put(server.url("/v1/profiles/p4"))
            .json(&profile("p5", "bob"))
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "id");
        // unknown endpoint: 404 problem
        let r = c.get(server.url("/v2/nothing")).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_is_503_with_retry_after() {
    let faulty = datastore::Faulty::wrap(datastore_memory::open());
    faulty.layer().inject(datastore::Fault::on(
        datastore::StoreName::Kind(datastore::Kind::Profile),
        "get",
        datastore::FaultAction::Fail,
    ));
    let server = serve_store(faulty.into_dyn(), None, None).await;
    let r = client()
        .get(server.url("/v1/profiles/p1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let body = problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["store"], "profiles");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_round_trip() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        let c = client();
        let created = c
            .put(server.url("/v1/profiles/p1"))
            .json(&profile("p1", "alice"))
            .send()
            .await
            .unwrap();
        let tag = etag(&created);
        let read = c.get(server.url("/v1/profiles/p1")).send().await.unwrap();
        assert_eq!(etag(&read), tag);
        let body: Value = read.json().await.unwrap();
        assert_eq!(format!("\"{}\"", body["revision"]), tag);
        assert_eq!(body["value"]["username"], "alice");
        // Unchanged: 304.
        let r = c
            .get(server.url("/v1/profiles/p1"))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        // A write on top of what was read, then the old tag is stale.
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .header("if-match", &tag)
            .json(&json!({"id": "p1", "username": "alice", "name": "Alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let newer = etag(&r);
        assert_ne!(newer, tag);
        let r = c
            .delete(server.url("/v1/profiles/p1"))
            .header("if-match", &tag)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::PRECONDITION_FAILED).await;
        let r = c
            .delete(server.url("/v1/profiles/p1"))
            .header("if-match", &newer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let r = c.get(server.url("/v1/profiles/p1")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_if_match_writers_exactly_one_wins() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        let c = client();
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .json(&profile("p1", "alice"))
            .send()
            .await
            .unwrap();
        let tag = etag(&r);
        let writers = (0..16).map(|i| {
            let (c, url, tag) = (c.clone(), server.url("/v1/profiles/p1"), tag.clone());
            tokio::spawn(async move {
                let body = json!({"id": "p1", "username": "alice", "name": format!("writer {i}")});
                c.put(url)
                    .header("if-match", tag)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        });
        let statuses: Vec<StatusCode> = futures::future::join_all(writers)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let lost = statuses
            .iter()
            .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
            .count();
        assert_eq!((won, lost), (1, 15), "{backend:?}: {statuses:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_cursors_and_filters() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        common::owners(&server).await;
        let c = client();
        for i in 0..7 {
            let run = json!({"id": format!("r{i}"), "workflow_id": if i % 2 == 0 { "w1" } else { "w2" }, "owner_id": "p1"});
            let r = c
                .post(server.url("/v1/runs"))
                .json(&run)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
        }
        let mut ids = Vec::new();
        let mut url = server.url("/v1/runs?workflow=w1&limit=2");
        loop {
            let page: Value = c.get(&url).send().await.unwrap().json().await.unwrap();
            ids.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["value"]["id"].as_str().unwrap().to_string()),
            );
            match page["next"].as_str() {
                Some(next) => {
                    url = server.url(&format!(
                        "/v1/runs?workflow=w1&limit=2&cursor={}",
                        urlencode(next)
                    ))
                }
                None => break,
            }
        }
        assert_eq!(ids, ["r0", "r2", "r4", "r6"], "{backend:?}");
        let many: Value = c
            .post(server.url("/v1/runs:get-many"))
            .json(&json!({"ids": ["r1", "zz"]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(many["items"][0]["value"]["id"], "r1");
        assert!(many["items"][1].is_null());
        // Run numbers are assigned by create.
        let r1: Value = c
            .get(server.url("/v1/runs/r1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(r1["value"]["number"].as_u64().unwrap() >= 1);
        server.stop().await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_events_logs_and_batches() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        common::owners(&server).await;
        let c = client();
        let run = json!({"id": "r1", "workflow_id": "w1", "owner_id": "p1", "steps": [{"name": "s", "category": "transform"}]});
        c.post(server.url("/v1/runs"))
            .json(&run)
            .send()
            .await
            .unwrap();
        let r = c
            .post(server.url("/v1/runs/r1/events"))
            .json(&json!({"step": 0, "kind": "print", "payload": {"line": "hi"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["value"]["steps"][0]["output"][0]["payload"]["line"],
            "hi"
        );

        let r = c
            .post(server.url("/v1/logs/l1/entries"))
            .json(&json!({"expected_len": 0, "ops": [{"name": "a"}, {"name": "b"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let got: Value = c
            .get(server.url("/v1/logs/l1/entries?start=1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["length"], 2);
        assert_eq!(got["items"][0]["value"]["op"]["name"], "b");

        let batch = json!({"ops": [
            {"op": "put", "record": {"kind": "profile", "record": {"id": "p9", "username": "zed"}}, "precondition": {"kind": "must_not_exist"}},
            {"op": "append_log", "log_id": "l1", "expected_len": 2, "ops": [{"name": "c"}]}
        ]});
        let r = c
            .post(server.url("/v1/batch"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
        let r = c.get(server.url("/v1/profiles/p9")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_400_and_writes_nothing() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        let c = client();
        let before = head(&server).await;
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .header("content-type", "application/json")
            .body("{\"id\": \"p1\", ")
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("malformed JSON"),
            "{body}"
        );
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .json(&json!({"id": "p1", "username": "a", "colour": "red"}))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], "colour", "{body}");
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .json(&json!({"id": "p1", "username": 7}))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], "username", "{body}");
        let huge = json!({"id": "p1", "username": "a", "description": "x".repeat(2 << 20)});
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .json(&huge)
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::PAYLOAD_TOO_LARGE).await;
        assert_eq!(body["field"], "body");
        // The server answers 413 without reading the rest of the body and
        // closes that connection; a new client does not race its close.
        let c = reqwest::Client::new();
        let r = c
            .get(server.url("/v1/runs?workflow=w1&cursor=not-a-cursor"))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], "cursor", "{body}");
        let r = c
            .get(server.url("/v1/runs?limit=5000"))
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "limit");
        let r = c
            .get(server.url("/v1/runs?colour=red"))
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "colour");
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .header("if-match", "yesterday")
            .json(&profile("p1", "a"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(r, StatusCode::BAD_REQUEST).await["field"],
            "if-match"
        );
        let r = c
            .get(server.url("/v1/changes"))
            .header("last-event-id", "abc")
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(r, StatusCode::BAD_REQUEST).await["field"],
            "last-event-id"
        );
        // A record is an object, not an array of its fields.
        let r = c
            .put(server.url("/v1/profiles/p1"))
            .json(&json!(["p1", "alice"]))
            .send()
            .await
            .unwrap();
        let body = problem(r, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("expected an object"),
            "{body}"
        );
        // Only JSON media types.
        for ct in ["application/jsonx", "text/plain"] {
            let r = c
                .put(server.url("/v1/profiles/p1"))
                .header("content-type", ct)
                .body(profile("p1", "a").to_string())
                .send()
                .await
                .unwrap();
            let body = problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
            assert_eq!(body["field"], "content-type", "{ct}");
        }
        // `.` and `..` are not ids.
        for id in [".", ".."] {
            let r = c
                .post(server.url("/v1/profiles"))
                .json(&json!({"id": id, "username": "dots"}))
                .send()
                .await
                .unwrap();
            assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "id");
        }
        assert_eq!(
            head(&server).await,
            before,
            "{backend:?}: bad input wrote something"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_server_answers_401_and_touches_nothing() {
    const TOKEN: &str = "s3cret-token-0123456789";
    let (ds, dir) = common::store(Backend::Sqlite).await;
    let server = serve_store(ds, Some(TOKEN), dir).await;
    let c = client();
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some("Basic abc"),
    ] {
        let mut req = c
            .put(server.url("/v1/profiles/p1"))
            .json(&profile("p1", "alice"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        problem(r, StatusCode::UNAUTHORIZED).await;
    }
    // The page (which asks for the token) and the health probe stay open;
    // the API does not.
    let r = c.get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("access token"));
    let r = c.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.get(server.url("/v1/changes/head")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(head(&server).await, 0, "an unauthorized request wrote");
    // The scheme is case-insensitive (RFC 9110).
    let r = c
        .get(server.url("/v1/changes/head"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .put(server.url("/v1/profiles/p1"))
        .bearer_auth(TOKEN)
        .json(&profile("p1", "alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    server.stop().await;
}

#[tokio::test]
async fn listening_beyond_loopback_needs_a_token() {
    let config = datastore_http::ServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    };
    let err = datastore_http::Server::bind(datastore_memory::open(), config)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("token is required"), "{err}");
    assert!(datastore_http::Token::new("short").is_err());
    assert!(
        !format!(
            "{:?}",
            datastore_http::Token::new("a-long-enough-token-xyz").unwrap()
        )
        .contains("long-enough")
    );
}

fn seqs(events: &[common::SseEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_resumes_with_last_event_id_without_gaps() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        let c = client();
        for i in 0..5 {
            c.put(server.url(&format!("/v1/profiles/p{i}")))
                .json(&profile(&format!("p{i}"), &format!("u{i}")))
                .send()
                .await
                .unwrap();
        }
        let r = c
            .get(server.url("/v1/changes?from=0"))
            .send()
            .await
            .unwrap();
        let mut events = SseReader::new(r);
        let mut seen = Vec::new();
        for _ in 0..3 {
            let e = events.next(Duration::from_secs(5)).await.expect("an event");
            assert_eq!(e.event.as_deref(), Some("change"));
            let change: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(change["kind"], "profile");
            assert_eq!(change["seq"].to_string(), *e.id.as_ref().unwrap());
            seen.push(e);
        }
        drop(events); // the connection drops
        for i in 5..9 {
            c.put(server.url(&format!("/v1/profiles/p{i}")))
                .json(&profile(&format!("p{i}"), &format!("u{i}")))
                .send()
                .await
                .unwrap();
        }
        let last = seen.last().unwrap().id.clone().unwrap();
        let r = c
            .get(server.url("/v1/changes"))
            .header("last-event-id", last)
            .send()
            .await
            .unwrap();
        let mut events = SseReader::new(r);
        // And a change made while the stream is open arrives live.
        let live = tokio::spawn({
            let (c, url) = (c.clone(), server.url("/v1/profiles/p9"));
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                c.put(url).json(&profile("p9", "u9")).send().await.unwrap();
            }
        });
        while seen.len() < 10 {
            seen.push(
                events
                    .next(Duration::from_secs(5))
                    .await
                    .expect("every change, then the live one"),
            );
        }
        live.await.unwrap();
        assert_eq!(seqs(&seen), (1..=10).collect::<Vec<u64>>(), "{backend:?}");
        server.stop().await;
    }
}

/// `?kind=&parent=&id=` filter the stream on the server: a client following
/// one workflow gets that workflow's changes (deletes included) and nothing
/// else, and resumes with `Last-Event-ID` like an unfiltered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_sends_only_what_matches() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        common::owners(&server).await;
        let c = client();
        let put_run = |i: u32| {
            let run = json!({"id": format!("r{i}"), "workflow_id": if i.is_multiple_of(2) { "w1" } else { "w2" }, "owner_id": "p1"});
            c.post(server.url("/v1/runs")).json(&run).send()
        };
        for i in 0..6 {
            assert!(put_run(i).await.unwrap().status().is_success());
        }
        let r = c.delete(server.url("/v1/runs/r2")).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let r = c
            .get(server.url("/v1/changes?from=0&kind=runs&parent=w1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let mut events = SseReader::new(r);
        let mut got = Vec::new();
        for _ in 0..4 {
            let e = events.next(Duration::from_secs(5)).await.expect("an event");
            let change: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(change["parent"], "w1", "{backend:?}: {change}");
            got.push((
                change["id"].as_str().unwrap().to_string(),
                change["op"].as_str().unwrap().to_string(),
            ));
        }
        let want: Vec<(String, String)> = [
            ("r0", "put"),
            ("r2", "put"),
            ("r4", "put"),
            ("r2", "delete"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want, "{backend:?}");
        // A run of w2 arrives live, then one of w1: only w1's is sent.
        assert!(put_run(7).await.unwrap().status().is_success());
        assert!(put_run(8).await.unwrap().status().is_success());
        let e = events
            .next(Duration::from_secs(5))
            .await
            .expect("the live change");
        let change: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(change["id"], "r8", "{backend:?}");
        drop(events);
        // Resume from that event with another filter (the run r1 by id):
        // nothing before the cursor comes again.
        let r = c
            .get(server.url("/v1/changes?id=r1&id=r9&kind=run"))
            .header("last-event-id", e.id.clone().unwrap())
            .send()
            .await
            .unwrap();
        let mut events = SseReader::new(r);
        assert!(put_run(9).await.unwrap().status().is_success());
        let e = events.next(Duration::from_secs(5)).await.expect("r9");
        let change: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(change["id"], "r9", "{backend:?}");
        drop(events);
        // An unknown kind, or an unknown parameter, is a 400 naming it.
        let r = c
            .get(server.url("/v1/changes?kind=runz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("runz"));
        let r = c
            .get(server.url("/v1/changes?workflow=w1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cursor_gets_a_reload_event() {
    let ds = datastore_memory::open_with(datastore_memory::MemoryConfig {
        retention: datastore_core::Retention::keep_last(3),
        ..Default::default()
    });
    let server = serve_store(ds, None, None).await;
    let c = client();
    for i in 0..8 {
        c.put(server.url(&format!("/v1/profiles/p{i}")))
            .json(&profile(&format!("p{i}"), &format!("u{i}")))
            .send()
            .await
            .unwrap();
    }
    let r = c
        .get(server.url("/v1/changes"))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut events = SseReader::new(r);
    let e = events.next(Duration::from_secs(5)).await.expect("an event");
    assert_eq!(e.event.as_deref(), Some("reload"), "{e:?}");
    let data: Value = serde_json::from_str(&e.data).unwrap();
    assert!(data["compacted_through"].as_u64().unwrap() >= 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_writes_in_flight() {
    let faulty = datastore::Faulty::wrap(datastore_memory::open());
    faulty.layer().inject(datastore::Fault::on(
        datastore::StoreName::Kind(datastore::Kind::Profile),
        "put",
        datastore::FaultAction::DelayBefore(Duration::from_millis(400)),
    ));
    let ds = faulty.into_dyn();
    let server = serve_store(ds.clone(), None, None).await;
    // An open event stream must not hold the shutdown up.
    let sse = client()
        .get(server.url("/v1/changes"))
        .send()
        .await
        .unwrap();
    let write = tokio::spawn({
        let url = server.url("/v1/profiles/p1");
        async move {
            client()
                .put(url)
                .json(&profile("p1", "alice"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("shutdown hung");
    assert_eq!(write.await.unwrap(), StatusCode::CREATED);
    let stored = ds
        .profiles()
        .get(&datastore_core::ProfileId::new("p1"))
        .await
        .unwrap();
    assert_eq!(stored.value.username, "alice");
    drop(sse);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_health_are_served() {
    let server = serve(Backend::Memory).await;
    let r = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("events(\"/v1/changes"),
        "the page does not follow the feed"
    );
    let r = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    server.stop().await;
}

/// Qri's operations beyond plain records, over HTTP: a rename that carries
/// the collection entries copying the username, a patch of one dataset's
/// entries, collections by username, and the latest run of each workflow
/// in a status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_patches_and_the_latest_runs() {
    for backend in BACKENDS {
        let server = serve(backend).await;
        common::owners(&server).await;
        let c = client();
        for init in ["ds-w1", "ds-w2"] {
            let entry = json!({"profile_id": "p1", "init_id": init, "username": "owner",
                "name": init, "workflow_id": init.trim_start_matches("ds-")});
            let r = c
                .put(server.url(&format!("/v1/collections/p1/{init}")))
                .json(&entry)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{:?}", r.text().await);
        }
        let count = |username: &'static str| {
            let c = c.clone();
            let url = server.url(&format!("/v1/collections?username={username}"));
            async move {
                let page: Value = c.get(url).send().await.unwrap().json().await.unwrap();
                page["items"].as_array().unwrap().len()
            }
        };
        assert_eq!(count("owner").await, 2, "{backend:?}");

        // A rename at a stale revision is 412 and changes nothing.
        let before = head(&server).await;
        let r = c
            .post(server.url("/v1/profiles/p1/rename"))
            .header("if-match", "\"999\"")
            .json(&json!({"username": "boss"}))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::PRECONDITION_FAILED).await;
        assert_eq!(head(&server).await, before);
        let r = c
            .post(server.url("/v1/profiles/p1/rename"))
            .json(&json!({"username": "boss"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let tag = etag(&r);
        let renamed: Value = r.json().await.unwrap();
        assert_eq!(renamed["profile"]["value"]["username"], "boss");
        assert_eq!(tag, format!("\"{}\"", renamed["profile"]["revision"]));
        let entries = renamed["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|e| e["value"]["username"] == "boss"));
        assert_eq!((count("owner").await, count("boss").await), (0, 2));

        // Clearing one dataset's workflow, in every collection.
        let r = c
            .post(server.url("/v1/collections:update-by-init-id"))
            .json(&json!({"init_id": "ds-w1", "patch": {"workflow_id": null}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let patched: Value = r.json().await.unwrap();
        assert_eq!(patched["items"].as_array().unwrap().len(), 1);
        assert!(patched["items"][0]["value"]["workflow_id"].is_null());
        let r = c
            .post(server.url("/v1/collections:update-by-init-id"))
            .json(&json!({"init_id": "ds-w1", "patch": {"colour": "red"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(r, StatusCode::BAD_REQUEST).await["field"],
            "patch.colour"
        );

        // The latest run of each workflow, where it is in a status.
        for (id, workflow, status) in [
            ("r1", "w1", "failed"),
            ("r2", "w1", "succeeded"),
            ("r3", "w2", "failed"),
        ] {
            let run = json!({"id": id, "workflow_id": workflow, "status": status});
            let r = c
                .post(server.url("/v1/runs"))
                .json(&run)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
        }
        let latest = |status: &'static str| {
            let c = c.clone();
            let url = server.url(&format!("/v1/runs:latest?status={status}"));
            async move {
                let page: Value = c.get(url).send().await.unwrap().json().await.unwrap();
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["value"]["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(latest("succeeded").await, ["r2"], "{backend:?}");
        assert_eq!(latest("failed").await, ["r3"], "{backend:?}");
        let r = c
            .get(server.url("/v1/runs:latest?status=sleeping"))
            .send()
            .await
            .unwrap();
        assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "status");
        let r = c.get(server.url("/v1/runs:latest")).send().await.unwrap();
        assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "status");
    }
}
