//! Access control, swept: every endpoint × every kind of caller (the
//! owner, another profile, a read-scoped token, admin, no token, a revoked,
//! an expired and a garbled token), on memory and SQLite. Each answer's
//! status is checked, refused requests write nothing (the feed head does
//! not move), and no byte alice's tokens receive, responses and the event
//! stream included, names one of bob's records.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{BACKENDS, Backend, Running, SseReader, serve_store, store};
use datastore_core::{
    AccessToken, Batch, CollectionEntry, Datastore, FeedCursor, Key, LogId, LogOp, Precondition,
    PrivateKey, Profile, ProfileId, Run, StepRun, TokenScope, Workflow, WorkflowId,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ADMIN: &str = "the-configured-admin-token";
/// Every id of bob's records holds this, so a leak is a byte search.
const BOB: &str = "bobzz";

/// The records of one profile: a workflow, a run, a key with private
/// material, a collection entry, a log and a token.
struct Owned {
    workflow: String,
    /// The workflow's first revision (a version to read and restore).
    workflow_rev: u64,
    run: String,
    key: String,
    init: String,
}

async fn seed(ds: &Arc<dyn Datastore>, who: &str) -> Owned {
    common::profile_with_workflow(ds, who).await;
    let workflow = WorkflowId::new(format!("wf-{who}"));
    let workflow_rev = ds.workflows().get(&workflow).await.unwrap().revision.get();
    let run = ds
        .runs()
        .create(Run::new(workflow.clone(), vec![StepRun::new("a", "x")]))
        .await
        .unwrap();
    let mut key = Key::new(who, format!("public-of-{who}"));
    key.private_key = Some(PrivateKey::new(format!("PRIVATE-MATERIAL-{who}")));
    let key = ds.keys().put(key, Precondition::Any).await.unwrap();
    ds.collections()
        .put(
            CollectionEntry::new(who, format!("ds-{who}"), who, "data"),
            Precondition::Any,
        )
        .await
        .unwrap();
    ds.logs()
        .append(
            &LogId::new(format!("ds-{who}")),
            0,
            vec![LogOp {
                name: format!("init-{who}"),
                ..LogOp::default()
            }],
        )
        .await
        .unwrap();
    Owned {
        workflow: workflow.to_string(),
        workflow_rev,
        run: run.value.id.to_string(),
        key: key.value.id.to_string(),
        init: format!("ds-{who}"),
    }
}

async fn issue(ds: &Arc<dyn Datastore>, who: &str, scope: TokenScope, expired: bool) -> String {
    let expires = expired.then(|| chrono::Utc::now() - chrono::Duration::minutes(1));
    let (token, text) = AccessToken::issue(who, scope, "test", expires);
    ds.tokens()
        .put(token, Precondition::MustNotExist)
        .await
        .unwrap();
    text.expose().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Owner,
    Other,
    ReadScope,
    Admin,
    NoToken,
    Revoked,
    Expired,
    Garbled,
}

const CALLERS: [Caller; 8] = [
    Caller::Owner,
    Caller::Other,
    Caller::ReadScope,
    Caller::Admin,
    Caller::NoToken,
    Caller::Revoked,
    Caller::Expired,
    Caller::Garbled,
];

/// What an endpoint does, which decides each caller's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Reads one of alice's records: another profile gets 404.
    Read,
    /// Lists alice's records: another profile gets an empty page.
    List,
    /// Changes one of alice's records: another profile 404, read scope 403.
    Write,
    /// Writes a record naming alice as its owner: another profile 403.
    WriteOwned,
    /// Spans every owner: admin only (403 for the rest).
    AdminOnly,
    /// Changes a record only admin may change (a token): the owner and a
    /// read token 403, another profile 404.
    AdminWrite,
    /// About no one's records: every valid token.
    Open,
}

struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    class: Class,
}

fn call(method: Method, path: impl Into<String>, body: Option<Value>, class: Class) -> Call {
    Call {
        method,
        path: path.into(),
        body,
        class,
    }
}

/// Every endpoint that touches records, aimed at alice's; writes last, and
/// destructive ones at the very end.
fn calls(a: &Owned, alice_token_id: &str) -> Vec<Call> {
    use Class::*;
    let wf = |extra: &str| json!({"id": a.workflow, "init_id": a.init, "owner_id": "alice", "active": true, "steps": [{"name": extra}]});
    let batch = serde_json::to_value(Batch::new().put(
        serde_json::from_value::<Workflow>(wf("batched")).unwrap(),
        Precondition::Any,
    ))
    .unwrap();
    vec![
        call(Method::GET, "/v1/changes/head", None, Open),
        call(Method::GET, "/v1/capabilities", None, Open),
        call(Method::GET, "/v1/profiles/alice", None, Read),
        call(
            Method::GET,
            format!("/v1/workflows/{}", a.workflow),
            None,
            Read,
        ),
        call(Method::GET, format!("/v1/runs/{}", a.run), None, Read),
        call(Method::GET, format!("/v1/keys/{}", a.key), None, Read),
        call(
            Method::GET,
            format!("/v1/collections/alice/{}", a.init),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/tokens/{alice_token_id}"),
            None,
            Read,
        ),
        call(Method::GET, "/v1/profiles:by-username/alice", None, Read),
        call(
            Method::GET,
            format!("/v1/workflows/{}/history", a.workflow),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/keys/{}/history", a.key),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/workflows/{}/versions/{}", a.workflow, a.workflow_rev),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/workflows:by-init-id/{}", a.init),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/workflows/{}/runs:count", a.workflow),
            None,
            Read,
        ),
        call(
            Method::GET,
            format!("/v1/logs/{}/entries", a.init),
            None,
            Read,
        ),
        call(
            Method::POST,
            "/v1/workflows:get-many",
            Some(json!({"ids": [a.workflow]})),
            List,
        ),
        call(Method::GET, "/v1/workflows?owner=alice", None, List),
        call(
            Method::GET,
            format!("/v1/runs?workflow={}", a.workflow),
            None,
            List,
        ),
        call(
            Method::GET,
            "/v1/runs?owner=alice&status=waiting",
            None,
            List,
        ),
        call(Method::GET, "/v1/keys?profile=alice", None, List),
        call(
            Method::GET,
            "/v1/collections?profile=alice&order=name",
            None,
            List,
        ),
        // Unfiltered: the caller's own (admin: everyone's).
        call(Method::GET, "/v1/collections", None, List),
        call(Method::GET, "/v1/tokens?profile=alice", None, List),
        call(Method::GET, format!("/v1/logs?log={}", a.init), None, List),
        call(Method::GET, "/v1/profiles", None, AdminOnly),
        call(Method::GET, "/v1/runs", None, AdminOnly),
        call(Method::GET, "/v1/workflows?active=true", None, AdminOnly),
        call(Method::GET, "/v1/count?kind=run", None, AdminOnly),
        call(Method::GET, "/metrics", None, AdminOnly),
        call(
            Method::GET,
            "/v1/runs:latest?status=waiting",
            None,
            AdminOnly,
        ),
        call(Method::GET, "/v1/logs", None, AdminOnly),
        call(
            Method::POST,
            "/v1/collections:update-by-init-id",
            Some(json!({"init_id": a.init, "patch": {"commit_title": "x"}})),
            AdminOnly,
        ),
        call(
            Method::POST,
            "/v1/changes:compact",
            Some(json!({"max_changes": 100000, "max_age": null})),
            AdminOnly,
        ),
        call(
            Method::POST,
            "/v1/changes:start-after",
            Some(json!({"position": 0})),
            AdminOnly,
        ),
        call(
            Method::POST,
            "/v1/history:compact",
            Some(json!({"kinds": {"workflow": {"enabled": true, "max_versions": 100}}})),
            AdminOnly,
        ),
        call(
            Method::POST,
            format!("/v1/workflows/{}/restore", a.workflow),
            Some(json!({"revision": a.workflow_rev})),
            Write,
        ),
        call(
            Method::PUT,
            format!("/v1/workflows/{}", a.workflow),
            Some(wf("edited")),
            WriteOwned,
        ),
        call(
            Method::PUT,
            "/v1/profiles/alice",
            Some(json!({"id": "alice", "username": "alice", "name": "Alice"})),
            WriteOwned,
        ),
        call(
            Method::POST,
            "/v1/keys",
            Some(json!({"profile_id": "alice", "public_key": "another-public-key"})),
            WriteOwned,
        ),
        call(Method::POST, "/v1/batch", Some(batch), WriteOwned),
        call(
            Method::POST,
            "/v1/runs",
            Some(json!({"workflow_id": a.workflow, "steps": [{"name": "b", "category": "y"}]})),
            Write,
        ),
        call(
            Method::POST,
            format!("/v1/runs/{}/events", a.run),
            Some(json!({"step": 0, "kind": "print", "payload": "hi"})),
            Write,
        ),
        call(
            Method::POST,
            format!("/v1/logs/{}/entries", a.init),
            Some(json!({"expected_len": 1, "ops": [{"name": "amend"}]})),
            Write,
        ),
        call(
            Method::PUT,
            format!("/v1/collections/alice/{}", a.init),
            Some(
                json!({"profile_id": "alice", "init_id": a.init, "username": "alice", "name": "renamed"}),
            ),
            WriteOwned,
        ),
        call(
            Method::POST,
            "/v1/profiles/alice/rename",
            Some(json!({"username": "alice2"})),
            Write,
        ),
        call(Method::DELETE, format!("/v1/runs/{}", a.run), None, Write),
        call(Method::DELETE, format!("/v1/logs/{}", a.init), None, Write),
        call(Method::DELETE, format!("/v1/keys/{}", a.key), None, Write),
        call(
            Method::DELETE,
            format!("/v1/collections/alice/{}", a.init),
            None,
            Write,
        ),
        call(
            Method::DELETE,
            format!("/v1/tokens/{alice_token_id}"),
            None,
            AdminWrite,
        ),
    ]
}

/// The status `caller` must get from a call of `class`.
fn expected(caller: Caller, class: Class, method: &Method) -> StatusCode {
    use Caller::*;
    use Class::*;
    let ok = if *method == Method::DELETE {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    };
    match (caller, class) {
        (NoToken | Revoked | Expired | Garbled, _) => StatusCode::UNAUTHORIZED,
        (Admin, _) | (Owner, Read | List | Write | WriteOwned) => ok,
        (ReadScope, Read | List) => ok,
        (ReadScope, Write | WriteOwned) => StatusCode::FORBIDDEN,
        (Other, Read | Write) => StatusCode::NOT_FOUND,
        (Other, List) => StatusCode::OK,
        (Other, WriteOwned) => StatusCode::FORBIDDEN,
        (Owner | Other | ReadScope, AdminOnly) => StatusCode::FORBIDDEN,
        (Owner | ReadScope, AdminWrite) => StatusCode::FORBIDDEN,
        (Other, AdminWrite) => StatusCode::NOT_FOUND,
        (Owner | Other | ReadScope, Open) => ok,
    }
}

/// A fresh server over `backend` with alice's and bob's records and a
/// token for each caller.
struct Fixture {
    server: Running,
    alice: Owned,
    tokens: Vec<(Caller, Option<String>)>,
    /// The id of alice's write token.
    alice_token: String,
    /// What alice must never receive: bob's ids (his run's and key's are
    /// generated, so they are named here).
    forbidden: Vec<String>,
}

impl Fixture {
    fn token(&self, caller: Caller) -> Option<String> {
        self.tokens
            .iter()
            .find(|(c, _)| *c == caller)
            .unwrap()
            .1
            .clone()
    }

    fn assert_clean(&self, text: &str, context: &str) {
        for id in &self.forbidden {
            assert!(
                !text.contains(id.as_str()),
                "{context}: bob's {id:?} leaked: {text}"
            );
        }
    }
}

async fn fixture(backend: Backend) -> Fixture {
    let (ds, dir) = store(backend).await;
    let alice = seed(&ds, "alice").await;
    let bob = seed(&ds, BOB).await;
    let owner = issue(&ds, "alice", TokenScope::Write, false).await;
    let (alice_id, _) = AccessToken::parse(&owner).unwrap();
    let alice_id = alice_id.to_string();
    let other = issue(&ds, BOB, TokenScope::Write, false).await;
    let read = issue(&ds, "alice", TokenScope::Read, false).await;
    let revoked = issue(&ds, "alice", TokenScope::Write, false).await;
    let (revoked_id, _) = AccessToken::parse(&revoked).unwrap();
    ds.tokens()
        .delete(&revoked_id, Precondition::MustExist)
        .await
        .unwrap();
    let expired = issue(&ds, "alice", TokenScope::Write, true).await;
    // The right id with a wrong secret.
    let garbled = format!("dst_{alice_id}_{}", "0".repeat(64));
    let tokens = vec![
        (Caller::Owner, Some(owner)),
        (Caller::Other, Some(other)),
        (Caller::ReadScope, Some(read)),
        (Caller::Admin, Some(ADMIN.to_string())),
        (Caller::NoToken, None),
        (Caller::Revoked, Some(revoked)),
        (Caller::Expired, Some(expired)),
        (Caller::Garbled, Some(garbled)),
    ];
    Fixture {
        server: serve_store(ds, Some(ADMIN), dir).await,
        alice,
        tokens,
        alice_token: alice_id,
        forbidden: vec![BOB.to_string(), bob.run, bob.key],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_caller_as_the_policy_says() {
    let client = reqwest::Client::new();
    for backend in BACKENDS {
        for caller in CALLERS {
            // A fresh store per caller: the owner's and admin's writes
            // (deletes included) must not change what the next one sees.
            let f = fixture(backend).await;
            let server = &f.server;
            let token = f.token(caller);
            for c in calls(&f.alice, &f.alice_token) {
                let head = server.ds.changes().head().await.unwrap();
                let mut request = client.request(c.method.clone(), server.url(&c.path));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                if let Some(body) = &c.body {
                    request = request.json(body);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                let want = expected(caller, c.class, &c.method);
                // Creates answer 201, deletes 204 (a log's delete 200).
                let status_ok = status == want || (want.is_success() && status.is_success());
                assert!(
                    status_ok,
                    "{backend:?} {caller:?} {} {}: {status}, expected {want}: {body}",
                    c.method, c.path
                );
                let refused = !status.is_success();
                if refused {
                    assert_eq!(
                        server.ds.changes().head().await.unwrap(),
                        head,
                        "{backend:?} {caller:?} {} {}: a refused request wrote",
                        c.method,
                        c.path
                    );
                }
                if matches!(caller, Caller::Owner | Caller::ReadScope) {
                    f.assert_clean(
                        &body,
                        &format!("{backend:?} {caller:?} {} {}", c.method, c.path),
                    );
                }
                if caller == Caller::Other && status.is_success() {
                    // Bob's answers hold his own records at most (a refusal
                    // names only what he asked for).
                    assert!(
                        !body.contains("alice") && !body.contains(&f.alice.run),
                        "{backend:?} {} {}: another profile got alice's: {body}",
                        c.method,
                        c.path
                    );
                }
                if caller == Caller::ReadScope {
                    assert!(
                        !body.contains("PRIVATE-MATERIAL"),
                        "a read-scoped token got key material: {body}"
                    );
                }
                if c.class == Class::Read && caller == Caller::Other {
                    assert!(
                        body.contains("not_found") || body.contains("not-found"),
                        "{body}"
                    );
                }
            }
            f.server.stop().await;
        }
    }
}

/// The owner's lists hold a full page when there are enough records:
/// narrowed in the query, not filtered after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_list_still_fills_its_page() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        let server = &f.server;
        let ds = server.ds.clone();
        // Interleave: bob's workflows and alice's, more than a page of each.
        for i in 0..30 {
            for who in ["alice", BOB] {
                let mut w = Workflow::new(format!("ds-{who}-{i}"), who);
                w.id = WorkflowId::new(format!("wf-{who}-{i}"));
                ds.workflows()
                    .put(w, Precondition::MustNotExist)
                    .await
                    .unwrap();
            }
        }
        let owner = f.token(Caller::Owner).unwrap();
        let client = reqwest::Client::new();
        let page: Value = client
            .get(server.url("/v1/workflows?limit=10"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 10, "{backend:?}: {page}");
        assert!(
            items.iter().all(|w| w["value"]["owner_id"] == "alice"),
            "{page}"
        );
        assert!(page["next"].is_string(), "{page}");
        f.server.stop().await;
    }
}

/// A subscriber sees changes to its own records only, however the stream
/// is filtered, while another profile writes beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_carries_only_the_callers_records() {
    for backend in BACKENDS {
        let f = fixture(backend).await;
        let server = &f.server;
        let owner = f.token(Caller::Owner).unwrap();
        let client = reqwest::Client::new();
        // From the start of the feed: the seeding of both profiles.
        let response = client
            .get(server.url("/v1/changes?from=0"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut events = SseReader::new(response);
        // More writes of both, after the stream opened.
        let ds = server.ds.clone();
        for who in [BOB, "alice", BOB] {
            ds.runs()
                .create(Run::new(format!("wf-{who}"), vec![StepRun::new("a", "x")]))
                .await
                .unwrap();
        }
        let head = ds.changes().head().await.unwrap();
        let all = ds.changes().since(FeedCursor::START, 1000).await.unwrap();
        let alices: Vec<String> = all
            .iter()
            .filter(|c| !c.id.contains(BOB) && c.parent.as_deref().is_none_or(|p| !p.contains(BOB)))
            .map(|c| c.seq.to_string())
            .collect();
        let mut got = Vec::new();
        while let Some(event) = events.next(Duration::from_secs(2)).await {
            f.assert_clean(&event.data, &format!("{backend:?}: the event stream"));
            got.push(event.id.clone().unwrap());
            if event.id.as_deref() == Some(&head.0.to_string()) {
                break;
            }
        }
        assert_eq!(got, alices, "{backend:?}: alice sees all of hers, in order");
        assert!(got.len() >= 6, "{got:?}");
        f.server.stop().await;
    }
}

/// `changes:page` for a profile skips others' changes and says how far it
/// looked, so a reader never stalls on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_page_skips_what_the_caller_may_not_see() {
    let f = fixture(Backend::Memory).await;
    let server = &f.server;
    let owner = f.token(Caller::Owner).unwrap();
    let client = reqwest::Client::new();
    let mut from = 0u64;
    let mut seen = Vec::new();
    loop {
        let page: Value = client
            .get(server.url(&format!("/v1/changes:page?from={from}&limit=2")))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap().clone();
        let through = page["through"].as_u64().unwrap();
        f.assert_clean(&page.to_string(), "changes:page");
        if items.is_empty() && through == from {
            break;
        }
        assert!(through > from, "{page}");
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        from = through;
    }
    assert!(seen.iter().any(|id| id == "wf-alice"), "{seen:?}");
    assert!(seen.iter().any(|id| id == "alice"), "{seen:?}");
    f.server.stop().await;
}

/// Tokens at rest: the SQLite file holds each token's hash, never the token
/// or its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_no_token_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let ds = datastore_sql::open(datastore_sql::SqlConfig::new(format!(
        "sqlite://{}",
        path.display()
    )))
    .await
    .unwrap();
    let mut p = Profile::new("alice");
    p.id = ProfileId::new("alice");
    ds.profiles().put(p, Precondition::Any).await.unwrap();
    let text = issue(&ds, "alice", TokenScope::Admin, false).await;
    let (id, secret) = AccessToken::parse(&text).unwrap();
    let stored = ds.tokens().get(&id).await.unwrap();
    assert!(stored.value.matches(secret));
    ds.close().await.unwrap();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(haystack.contains(id.as_str()), "the token's id is stored");
    assert!(!haystack.contains(secret), "the secret is in the file");
    assert!(!haystack.contains(&text), "the token is in the file");
}

/// Writes name who made them: a profile's token writes as that profile
/// (and may not claim another), an admin names a service in
/// `x-datastore-actor`; records, history and the feed carry it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_name_the_callers_actor() {
    let f = fixture(Backend::Memory).await;
    let server = &f.server;
    let client = reqwest::Client::new();
    let owner = f.token(Caller::Owner).unwrap();
    let wf = format!("/v1/workflows/{}", f.alice.workflow);
    let current: Value = client
        .get(server.url(&wf))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut body = current["value"].clone();
    body["active"] = json!(false);
    let put = client
        .put(server.url(&wf))
        .bearer_auth(&owner)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let put: Value = put.json().await.unwrap();
    assert_eq!(put["actor"], "profile:alice");

    // An admin names a service; without the header, no one.
    body["active"] = json!(true);
    let as_service: Value = client
        .put(server.url(&wf))
        .bearer_auth(ADMIN)
        .header("x-datastore-actor", "service:scheduler")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(as_service["actor"], "service:scheduler");

    // A profile's token may not claim another actor; a bad header is named.
    let claimed = client
        .put(server.url(&wf))
        .bearer_auth(&owner)
        .header("x-datastore-actor", "profile:bobzz")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), StatusCode::FORBIDDEN);
    let bad = client
        .put(server.url(&wf))
        .bearer_auth(ADMIN)
        .header("x-datastore-actor", "scheduler")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["field"], "x-datastore-actor", "{problem}");

    // History lists both writers, newest first, and the feed names them.
    let history: Value = client
        .get(server.url(&format!("{wf}/history?limit=10")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actors: Vec<&Value> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["actor"])
        .collect();
    assert_eq!(
        actors,
        vec![
            &json!("service:scheduler"),
            &json!("profile:alice"),
            &Value::Null
        ],
        "{history}"
    );
    let feed = server
        .ds
        .changes()
        .since(FeedCursor::START, 1000)
        .await
        .unwrap();
    let last: Vec<_> = feed.iter().rev().take(2).map(|c| c.actor.clone()).collect();
    assert_eq!(
        last,
        vec![
            Some(datastore_core::Actor::service("scheduler")),
            Some(datastore_core::Actor::profile("alice")),
        ]
    );

    // A version restored by its revision comes back as a new revision.
    let first = history["items"][2]["revision"].as_u64().unwrap();
    let restored = client
        .post(server.url(&format!("{wf}/restore")))
        .bearer_auth(&owner)
        .header("if-match", format!("\"{}\"", as_service["revision"]))
        .json(&json!({"revision": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(restored.status(), StatusCode::OK);
    let restored: Value = restored.json().await.unwrap();
    assert!(restored["revision"].as_u64().unwrap() > as_service["revision"].as_u64().unwrap());
    assert_eq!(restored["actor"], "profile:alice");
    let stale = client
        .post(server.url(&format!("{wf}/restore")))
        .bearer_auth(&owner)
        .header("if-match", format!("\"{}\"", as_service["revision"]))
        .json(&json!({"revision": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let missing = client
        .get(server.url(&format!("{wf}/versions/abc")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    f.server.stop().await;
}
