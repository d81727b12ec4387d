//! The page at `/` in headless Chromium, driven over WebDriver
//! (chromedriver): it lists a workflow's runs and shows a new run, and a
//! changed status, live from `/v1/changes`.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_new_run_live() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("DATASTORE_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "DATASTORE_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!("skipping the browser test: install chromium and chromium-driver");
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
    let session = Session {
        http: &http,
        url: format!("{}/session/{id}", driver.base),
    };
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
