//! The page at `/` in headless Chromium, driven over WebDriver
//! (chromedriver): it lists a workflow's runs and shows a new run, and a
//! changed status, live from `/v1/changes`; switching workflow drops the old
//! one's runs, loads the new one's, and ignores late answers for the old one;
//! only the newest page of runs loads, older ones on scroll.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them the test is skipped with a notice, unless
//! `DATASTORE_REQUIRE_BROWSER=1`, which makes that a failure.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(http: &reqwest::Client) -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{}/status", driver.base)).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not become ready");
}

/// One WebDriver session.
struct Session<'a> {
    http: &'a reqwest::Client,
    url: String,
}

impl Session<'_> {
    async fn command(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn script(&self, script: &str) -> Value {
        self.command("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Polls `script` until `done` holds (at most ~15 s).
    async fn wait_for(&self, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..150 {
            last = self.script(script).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("gave up waiting for {script:?}; last answer {last}");
    }
}

/// True when Chromium and chromedriver are there; without them the test is
/// skipped, unless `DATASTORE_REQUIRE_BROWSER=1`.
fn browser_available() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if std::env::var("DATASTORE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "DATASTORE_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
    }
    eprintln!("skipping the browser test: install chromium and chromium-driver");
    false
}

/// A headless Chromium session on `driver`.
async fn new_session<'a>(http: &'a reqwest::Client, driver: &Driver) -> Session<'a> {
    let created: Value = http
        .post(format!("{}/session", driver.base))
        .json(&json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
            }
        }}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"));
    Session {
        http,
        url: format!("{}/session/{id}", driver.base),
    }
}

/// Creates a run through the API.
async fn create_run(api: &reqwest::Client, server: &common::Running, body: Value) {
    let r = api
        .post(server.url("/v1/runs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

const LIVE: &str = "return document.getElementById('state').dataset.live || ''";
const ROWS: &str = "return document.getElementById('runs').innerText";
const ROW_COUNT: &str = "return document.getElementById('runs').rows.length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_new_run_live() {
    if !browser_available() {
        return;
    }
    let server = common::serve(common::Backend::Sqlite).await;
    let api = reqwest::Client::new();
    common::owners(&server).await;
    let first = api
        .post(server.url("/v1/runs"))
        .json(&json!({"id": "r-first", "workflow_id": "w1", "owner_id": "p1"}))
        .send()
        .await
        .unwrap();
    assert!(first.status().is_success());

    let http = reqwest::Client::new();
    let driver = start_driver(&http).await;
    let session = new_session(&http, &driver).await;
    session
        .command("/url", json!({ "url": server.url("/?workflow=w1") }))
        .await;

    // The page loaded the existing run and is following the feed.
    session
        .wait_for(
            "return document.getElementById('state').dataset.live || ''",
            |v| v == "1",
        )
        .await;
    let rows = session
        .script("return document.getElementById('runs').innerText")
        .await;
    assert!(rows.as_str().unwrap().contains("r-first"), "{rows}");

    // A run written through the API appears without a reload...
    api.post(server.url("/v1/runs"))
        .json(&json!({"id": "r-live", "workflow_id": "w1", "owner_id": "p1"}))
        .send()
        .await
        .unwrap();
    session
        .wait_for("return document.getElementById('runs').innerText", |v| {
            v.as_str().is_some_and(|t| t.contains("r-live"))
        })
        .await;
    // ...and so does its change of status.
    let run: Value = api
        .get(server.url("/v1/runs/r-live"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut done = run["value"].clone();
    done["status"] = json!("succeeded");
    let r = api
        .put(server.url("/v1/runs/r-live"))
        .header("if-match", format!("\"{}\"", run["revision"]))
        .json(&done)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    session
        .wait_for(
            "return (document.getElementById('run-r-live') || {}).innerText || ''",
            |v| v.as_str().is_some_and(|t| t.contains("succeeded")),
        )
        .await;
    let _ = http.delete(session.url.clone()).send().await;
    drop(driver);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_switches_workflow_and_pages_runs() {
    if !browser_available() {
        return;
    }
    let server = common::serve(common::Backend::Sqlite).await;
    let api = reqwest::Client::new();
    common::owners(&server).await;
    create_run(
        &api,
        &server,
        json!({"id": "r-one", "workflow_id": "w1", "owner_id": "p1"}),
    )
    .await;
    // w2: 60 runs, more than the page's 50; the newest has two steps, one
    // finished.
    for n in 1..=60 {
        let mut run = json!({"id": format!("r-two-{n}"), "workflow_id": "w2", "owner_id": "p1"});
        if n == 60 {
            run["steps"] = json!([
                {"name": "fetch", "category": "download", "status": "succeeded"},
                {"name": "build", "category": "compute", "status": "running",
                 "output": [{"kind": "print", "payload": {"line": "x"}}]}
            ]);
        }
        create_run(&api, &server, run).await;
    }

    let http = reqwest::Client::new();
    let driver = start_driver(&http).await;
    let session = new_session(&http, &driver).await;
    // No workflow named: the page lists them to pick from.
    session
        .command("/url", json!({ "url": server.url("/") }))
        .await;
    session
        .wait_for(
            "return !!document.getElementById('wf-w1') && !!document.getElementById('wf-w2')",
            |v| v == true,
        )
        .await;
    session
        .script("document.getElementById('wf-w1').click(); return null")
        .await;
    session.wait_for(LIVE, |v| v == "1").await;
    let rows = session.script(ROWS).await;
    assert!(rows.as_str().unwrap().contains("r-one"), "{rows}");
    let old_scope = session
        .script("return window.datastorePage.tree.runs_scope()")
        .await;

    // Switch to w2, and back and forth at once: the loads asked for w2 and
    // then w1 are still under way when w2 is picked again, so their answers
    // come late and must be ignored.
    session
        .script(
            "for (const w of ['wf-w2', 'wf-w1', 'wf-w2']) document.getElementById(w).click(); return null",
        )
        .await;
    session
        .wait_for(
            "return document.getElementById('state').dataset.live === '1' \
             && document.getElementById('runs').innerText.includes('r-two-60')",
            |v| v == true,
        )
        .await;
    let rows = session.script(ROWS).await;
    let text = rows.as_str().unwrap();
    assert!(
        !text.contains("r-one"),
        "the old workflow's runs are dropped: {text}"
    );
    let title = session
        .script("return document.getElementById('workflow').textContent + ' ' + location.search")
        .await;
    assert_eq!(title, "w2 ?workflow=w2");

    // Only the newest page: runs 60 down to 11, newest first, steps done
    // counting finished steps.
    assert_eq!(session.script(ROW_COUNT).await, 50);
    let newest = session
        .script("return document.getElementById('runs').rows[0].innerText")
        .await;
    let newest = newest.as_str().unwrap();
    assert!(
        newest.starts_with("60") && newest.contains("r-two-60") && newest.contains("1/2"),
        "{newest}"
    );
    let oldest = session
        .script("return document.getElementById('runs').rows[49].innerText")
        .await;
    assert!(oldest.as_str().unwrap().starts_with("11"), "{oldest}");

    // A late answer for the old navigation is ignored.
    session
        .script(&format!(
            "window.datastorePage.dispatch({{runs_page_loaded: {{scope: {old_scope}, workflow_id: 'w1', \
             runs: [{{value: {{id: 'r-late', workflow_id: 'w1', number: 9}}, revision: 99, \
             created: '2024-01-01T00:00:00Z', updated: '2024-01-01T00:00:00Z'}}], next: null}}}}); \
             window.datastorePage.dispatch({{run_arrived: {{value: {{id: 'r-late-2', workflow_id: 'w1', number: 10}}, \
             revision: 99, created: '2024-01-01T00:00:00Z', updated: '2024-01-01T00:00:00Z'}}}}); return null"
        ))
        .await;
    // A new run of w1 is not shown; one of w2 is (after it: the feed is in
    // order, so once it is there the w1 run would have been too).
    create_run(
        &api,
        &server,
        json!({"id": "r-one-new", "workflow_id": "w1", "owner_id": "p1"}),
    )
    .await;
    create_run(
        &api,
        &server,
        json!({"id": "r-two-new", "workflow_id": "w2", "owner_id": "p1"}),
    )
    .await;
    session
        .wait_for(ROWS, |v| {
            v.as_str().is_some_and(|t| t.contains("r-two-new"))
        })
        .await;
    let rows = session.script(ROWS).await;
    let text = rows.as_str().unwrap();
    assert!(
        !text.contains("r-late") && !text.contains("r-one"),
        "answers for the old workflow are ignored: {text}"
    );

    // Scrolling to the end loads the older runs.
    session
        .script("window.scrollTo(0, document.body.scrollHeight); return null")
        .await;
    session.wait_for(ROW_COUNT, |v| v == 61).await;
    let rows = session.script(ROWS).await;
    assert!(rows.as_str().unwrap().contains("r-two-1\t"), "{rows}");

    let _ = http.delete(session.url.clone()).send().await;
    drop(driver);
    server.stop().await;
}

/// Seeds a profile with a workflow `wf-WHO` and one run `r-WHO-1`, and
/// issues it a `read` token.
async fn user(ds: &std::sync::Arc<dyn datastore_core::Datastore>, who: &str) -> String {
    use datastore_core::*;
    common::profile_with_workflow(ds, who).await;
    let mut run = Run::new(format!("wf-{who}"), vec![StepRun::new("a", "x")]);
    run.id = RunId::new(format!("r-{who}-1"));
    ds.runs().create(run).await.unwrap();
    let (token, text) = AccessToken::issue(who, TokenScope::Read, "browser", None);
    ds.tokens()
        .put(token, Precondition::MustNotExist)
        .await
        .unwrap();
    text.expose().to_string()
}

/// Logs in through the page's form.
async fn log_in(session: &Session<'_>, token: &str) {
    session
        .wait_for("return !document.getElementById('login').hidden", |v| {
            v == true
        })
        .await;
    session
        .script(&format!(
            "document.getElementById('login-token').value = {token:?}; \
             document.getElementById('login').requestSubmit(); return null"
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_logged_in_at_once_each_see_only_their_own_runs_live() {
    if !browser_available() {
        return;
    }
    let (ds, dir) = common::store(common::Backend::Sqlite).await;
    let alice = user(&ds, "alice").await;
    let bob = user(&ds, "bob").await;
    let server = common::serve_store(ds.clone(), Some("the-servers-own-admin-token"), dir).await;

    let http = reqwest::Client::new();
    let driver = start_driver(&http).await;
    // Two browsers (each session its own profile, so its own cookies).
    let a = new_session(&http, &driver).await;
    let b = new_session(&http, &driver).await;
    for (session, token) in [(&a, &alice), (&b, &bob)] {
        session
            .command("/url", json!({ "url": server.url("/") }))
            .await;
        log_in(session, token).await;
    }
    for (session, who, other) in [(&a, "alice", "bob"), (&b, "bob", "alice")] {
        // The list of workflows holds only the user's own.
        session
            .wait_for(
                &format!("return !!document.getElementById('wf-wf-{who}')"),
                |v| v == true,
            )
            .await;
        let list = session
            .script("return document.getElementById('workflows').innerText")
            .await;
        assert!(!list.as_str().unwrap().contains(other), "{who}: {list}");
        session
            .script(&format!(
                "document.getElementById('wf-wf-{who}').click(); return null"
            ))
            .await;
        session.wait_for(LIVE, |v| v == "1").await;
        let rows = session.script(ROWS).await;
        assert!(
            rows.as_str().unwrap().contains(&format!("r-{who}-1")),
            "{rows}"
        );
        // The cookie is HttpOnly: no script on the page reads the token.
        let cookies = session.script("return document.cookie").await;
        assert!(!cookies.as_str().unwrap().contains("dst_"), "{cookies}");
    }

    // New runs of both, interleaved: each page shows its own, live, and
    // never the other's.
    for n in 2..=3 {
        for who in ["bob", "alice"] {
            let mut run = datastore_core::Run::new(
                format!("wf-{who}"),
                vec![datastore_core::StepRun::new("a", "x")],
            );
            run.id = datastore_core::RunId::new(format!("r-{who}-{n}"));
            ds.runs().create(run).await.unwrap();
        }
    }
    for (session, who, other) in [(&a, "alice", "bob"), (&b, "bob", "alice")] {
        session
            .wait_for(ROWS, |v| {
                v.as_str()
                    .is_some_and(|t| t.contains(&format!("r-{who}-3")))
            })
            .await;
        let rows = session.script(ROWS).await;
        let text = rows.as_str().unwrap();
        assert!(text.contains(&format!("r-{who}-2")), "{text}");
        assert!(
            !text.contains(&format!("r-{other}")),
            "{who} sees {other}'s runs: {text}"
        );
        // Asking for the other's workflow by address shows none of its runs.
        session
            .command(
                "/url",
                json!({ "url": server.url(&format!("/?workflow=wf-{other}")) }),
            )
            .await;
        session
            .wait_for("return document.getElementById('state').innerText", |v| {
                v.as_str().is_some_and(|t| !t.is_empty() && t != "loading")
            })
            .await;
        let rows = session.script(ROWS).await;
        assert!(
            !rows.as_str().unwrap().contains(&format!("r-{other}")),
            "{who} reached {other}'s runs by address: {rows}"
        );
    }

    for session in [&a, &b] {
        let _ = http.delete(session.url.clone()).send().await;
    }
    drop(driver);
    server.stop().await;
}
