//! `atf serve` for a team: login and CSRF on a server with a token, the
//! runs list's filters and paging, the stats, the per-case history and
//! the workers page — against the real server process, with the history
//! in SQLite and in PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};

use super::{
    PgDb, Serve, WORKER_TOKEN, authed_get, authed_page, client, follow, get_json, start_worker,
    token_env,
};
use crate::server::TestServer;
use crate::util::Project;

const TOKEN: &str = "l0gin-t0ken-5521";

/// A client that shows redirects instead of following them.
fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

fn location(res: &Response) -> &str {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The CSRF token in a page's `<meta name="csrf-token">`.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("<meta name=\"csrf-token\" content=\"")
        .unwrap_or_else(|| panic!("no csrf-token meta in {page}"));
    let rest = &page[at + "<meta name=\"csrf-token\" content=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn small_project() -> Project {
    let p = Project::new();
    p.file("atf.json", json!({}));
    p.file(
        "a/log.case.json",
        json!({"name": "logs", "steps": [{"keyword": "log", "args": {"message": "x"}}]}),
    );
    p
}

#[test]
fn a_browser_logs_in_with_the_token_and_must_send_the_csrf_token() {
    let p = small_project();
    let s = Serve::start(&p, &[], &[("ATF_SERVE_TOKEN", TOKEN)]);
    let c = no_redirects();

    // A page without a session goes to the login page, and back after it.
    let res = c.get(s.api("/runs?page=2")).send().unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=/runs%3Fpage%3D2");
    // An API call without credentials is refused, not redirected.
    let res = c.get(s.api("/api/runs")).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c.get(s.api("/login?next=/runs")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().unwrap();
    assert!(page.contains("name=\"token\""), "{page}");

    // A wrong token: the form again, with the error, and no cookie.
    let res = c
        .post(s.api("/login"))
        .form(&[("token", "wrong"), ("next", "/runs")])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.text().unwrap().contains("Wrong token"));
    // A login form posted from another site is refused.
    let res = c
        .post(s.api("/login"))
        .header("origin", "http://evil.example")
        .form(&[("token", TOKEN)])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // The right token: a session cookie, and on to `next`.
    let res = c
        .post(s.api("/login"))
        .header("origin", &s.url)
        .form(&[("token", TOKEN), ("next", "/runs")])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/runs");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("atf_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    let session = set.split(';').next().unwrap().to_string();
    let id = session.trim_start_matches("atf_session=").to_string();
    assert!(id.len() >= 32, "{session}");

    // With it, pages open and carry the CSRF token, never the secrets.
    let res = c.get(s.api("/")).header("cookie", &session).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().unwrap();
    let csrf = csrf_of(&page);
    assert!(!page.contains(TOKEN) && !page.contains(&id), "{page}");
    assert!(page.contains("id=\"logout\""));
    let res = c
        .get(s.api("/api/cases"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A change with the cookie needs X-CSRF-Token...
    let post = |headers: &[(&str, &str)]| {
        let mut req = c
            .post(s.api("/api/runs"))
            .header("cookie", &session)
            .json(&json!({"paths": ["a"]}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().unwrap()
    };
    let res = post(&[]);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let err: Value = res.json().unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("x-csrf-token"),
        "{err}"
    );
    let res = post(&[("x-csrf-token", "not-it")]);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // ...and must come from this server's pages.
    let res = post(&[
        ("x-csrf-token", csrf.as_str()),
        ("origin", "http://evil.example"),
    ]);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let err: Value = res.json().unwrap();
    assert!(err["error"].as_str().unwrap().contains("Origin"), "{err}");
    let res = post(&[
        ("x-csrf-token", csrf.as_str()),
        ("referer", "http://evil.example/runs"),
    ]);
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = post(&[
        ("x-csrf-token", csrf.as_str()),
        ("origin", s.url.as_str()),
        ("x-atf-source", "ui"),
    ]);
    assert_eq!(res.status(), StatusCode::CREATED);
    let run_id = res.json::<Value>().unwrap()["id"].as_i64().unwrap();
    // Saving a case through the editor's PUT, the same way.
    let doc: Value = c
        .get(s.api("/api/cases/a/log.case.json"))
        .header("cookie", &session)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let etag = doc["etag"].as_str().unwrap();
    let put = |csrf: Option<&str>| {
        let mut req = c
            .put(s.api("/api/cases/a/log.case.json"))
            .header("cookie", &session)
            .header("if-match", etag)
            .body(doc["content"].as_str().unwrap().to_string());
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send().unwrap()
    };
    assert_eq!(put(None).status(), StatusCode::FORBIDDEN);
    assert_eq!(put(Some(&csrf)).status(), StatusCode::OK);

    // The Bearer token needs no CSRF token, from anywhere.
    let res = c
        .post(s.api("/api/runs"))
        .bearer_auth(TOKEN)
        .header("origin", "http://elsewhere.example")
        .json(&json!({"paths": ["a"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = c
        .get(s.api(&format!("/api/runs/{run_id}")))
        .bearer_auth(TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.json::<Value>().unwrap()["source"], "ui");

    // Logging out needs the token too, then ends the session.
    let res = c
        .post(s.api("/logout"))
        .header("cookie", &session)
        .form(&[("csrf", "not-it")])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = c
        .post(s.api("/logout"))
        .header("cookie", &session)
        .header("origin", &s.url)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let res = c.get(s.api("/")).header("cookie", &session).send().unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login"));
    let res = c
        .get(s.api("/api/cases"))
        .header("cookie", &session)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn without_a_token_there_is_no_login() {
    let p = small_project();
    let s = Serve::start(&p, &[], &[]);
    let c = no_redirects();
    let res = c.get(s.api("/")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().unwrap();
    assert!(!page.contains("csrf-token") && !page.contains("id=\"logout\""));
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"paths": ["a"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// A project for the history: `a/fast` passes, `a/flip` passes unless
/// its var `ok` is overridden, `b/slow` waits 300 ms on `srv`.
fn history_project(srv: &TestServer) -> Project {
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "test", "envs": {"test": {
            "resources": {"http": {"default": {"base_url": srv.url()}}}}}}),
    );
    p.file(
        "a/fast.case.json",
        json!({"name": "fast", "tags": ["smoke"], "steps": [{"keyword": "log", "args": {"message": "x"}}]}),
    );
    p.file(
        "a/flip.case.json",
        json!({"name": "flip", "vars": {"ok": "yes"}, "steps": [
            {"keyword": "assert", "args": {"value": "${ok}"}, "expect": {"value": "yes"}}]}),
    );
    p.file(
        "b/slow.case.json",
        json!({"name": "slow", "steps": [{"keyword": "http.request", "args": {"url": "/delay/300"}}]}),
    );
    p
}

/// Starts a run, follows it to its end: its final state.
fn run(c: &Client, s: &Serve, body: Value, ui: bool) -> Value {
    let mut req = c.post(s.api("/api/runs")).json(&body);
    if ui {
        req = req.header("x-atf-source", "ui");
    }
    let res = req.send().unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().unwrap()["id"].as_i64().unwrap();
    follow(c, &s.api(&format!("/api/runs/{id}/events")))
        .pop()
        .unwrap()
        .1
}

/// `GET /api/runs?QUERY`: the run ids and X-Total-Count.
fn list(c: &Client, s: &Serve, query: &str) -> (Vec<i64>, i64) {
    let res = c.get(s.api(&format!("/api/runs?{query}"))).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    let total = res.headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let runs: Value = res.json().unwrap();
    let ids = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    (ids, total)
}

fn history_flow(db: &[&str]) {
    let srv = TestServer::start();
    let p = history_project(&srv);
    let c = client();
    let s = Serve::start(&p, db, &[]);
    let r1 = run(&c, &s, json!({}), false);
    assert_eq!(r1["status"], "passed", "{r1:#}");
    let r2 = run(
        &c,
        &s,
        json!({"paths": ["a/flip.case.json"], "vars": {"ok": "no"}}),
        false,
    );
    assert_eq!(r2["status"], "failed", "{r2:#}");
    let r3 = run(
        &c,
        &s,
        json!({"paths": ["a/flip.case.json", "b"], "labels": {"net": "idc-a"}}),
        true,
    );
    assert_eq!(r3["status"], "passed", "{r3:#}");
    let out = p.atf(&["run", "a/fast.case.json", "--server", &s.url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let [r1, r2, r3] = [&r1, &r2, &r3].map(|r| r["id"].as_i64().unwrap());
    let r4 = r3 + 1;
    let (all, total) = list(&c, &s, "");
    assert_eq!((all, total), (vec![r4, r3, r2, r1], 4));

    // Paging: newest first, X-Total-Count over all pages.
    assert_eq!(list(&c, &s, "limit=3"), (vec![r4, r3, r2], 4));
    assert_eq!(list(&c, &s, "limit=3&page=2"), (vec![r1], 4));
    assert_eq!(list(&c, &s, "limit=3&page=9"), (vec![], 4));
    // Filters.
    assert_eq!(list(&c, &s, "status=failed"), (vec![r2], 1));
    assert_eq!(list(&c, &s, "source=ui"), (vec![r3], 1));
    assert_eq!(list(&c, &s, "source=cli"), (vec![r4], 1));
    assert_eq!(list(&c, &s, "source=api"), (vec![r2, r1], 2));
    assert_eq!(list(&c, &s, "case=slow"), (vec![r3, r1], 2));
    assert_eq!(list(&c, &s, "case=B%2FSlow"), (vec![r3, r1], 2));
    assert_eq!(list(&c, &s, "case=flip&status=passed"), (vec![r3, r1], 2));
    assert_eq!(list(&c, &s, "case=100%25"), (vec![], 0));
    assert_eq!(list(&c, &s, "label=net%3Didc-a"), (vec![r3], 1));
    assert_eq!(list(&c, &s, "label=net%3Didc"), (vec![], 0));
    let today = chrono::Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    assert_eq!(
        list(&c, &s, &format!("from={}&to={}", day(today), day(today))).1,
        4
    );
    assert_eq!(
        list(&c, &s, &format!("to={}", day(today.pred_opt().unwrap()))).1,
        0
    );
    assert_eq!(
        list(&c, &s, &format!("from={}", day(today.succ_opt().unwrap()))).1,
        0
    );
    let res = c.get(s.api("/api/runs?from=yesterday")).send().unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // The page has the same filters and paging links.
    let page = c
        .get(s.api("/runs?status=failed"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains(&format!("href=\"/runs/{r2}\"")), "{page}");
    assert!(!page.contains(&format!("href=\"/runs/{r1}\"")), "{page}");
    let page = c
        .get(s.api("/runs?limit=3&source=api"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("page 1 of 1"), "{page}");
    let page = c
        .get(s.api("/runs?limit=3"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("href=\"/runs?limit=3&amp;page=2\""), "{page}");

    // Stats: the slow case first; the flip case flipped twice.
    let slow = get_json(&c, &s.api("/api/stats/slowest"));
    assert_eq!(slow[0]["file"], "b/slow.case.json", "{slow:#}");
    assert_eq!(slow[0]["runs"], 2);
    assert!(slow[0]["p95_ms"].as_i64().unwrap() >= 300, "{slow:#}");
    let flaky = get_json(&c, &s.api("/api/stats/flaky"));
    assert_eq!(flaky.as_array().unwrap().len(), 1, "{flaky:#}");
    assert_eq!(flaky[0]["name"], "flip");
    assert_eq!(flaky[0]["flips"], 2);
    assert_eq!(flaky[0]["statuses"], json!(["passed", "failed", "passed"]));
    // Over the last run only, nothing flips.
    let flaky = get_json(&c, &s.api("/api/stats/flaky?runs=1"));
    assert_eq!(flaky, json!([]));
    let page = c.get(s.api("/stats")).send().unwrap().text().unwrap();
    assert!(
        page.contains("id=\"slowest\"") && page.contains("id=\"flakiest\""),
        "{page}"
    );

    // The case page: a strip of its results and the duration trend.
    let page = c
        .get(s.api("/cases/a/flip.case.json"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(page.matches("class=\"sq st-").count(), 3, "{page}");
    assert!(page.contains("<svg class=\"trend\""), "{page}");
    assert_eq!(page.matches("<circle").count(), 3);
    let page = c
        .get(s.api("/cases/a/flip.case.json?n=2"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(page.matches("class=\"sq st-").count(), 2, "{page}");
}

#[test]
fn runs_are_filtered_and_paged_and_stats_computed_with_sqlite() {
    history_flow(&[]);
}

#[test]
fn runs_are_filtered_and_paged_and_stats_computed_with_postgres() {
    let db = PgDb::new();
    let url = db.url();
    history_flow(&["--db", &url]);
}

/// Polls `GET /api/workers` until `done` holds.
fn wait_workers(c: &Client, s: &Serve, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let w = authed_get(c, &s.api("/api/workers"));
        if done(&w) {
            return w;
        }
        assert!(std::time::Instant::now() < deadline, "workers: {w:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_of<'a>(workers: &'a Value, name: &str) -> Option<&'a str> {
    workers.as_array()?.iter().find(|w| w["name"] == name)?["state"].as_str()
}

#[test]
fn the_workers_page_shows_live_workers_with_their_labels_and_gone_ones() {
    let srv = TestServer::start();
    let p = super::project(&srv);
    let c = client();
    let s = Serve::start(&p, &[], &token_env());
    let _live = start_worker(&s, &p, "w-live", "net=idc-a,zone=b");
    let dead = start_worker(&s, &p, "w-dead", "net=idc-b");
    let w = wait_workers(&c, &s, |w| w.as_array().is_some_and(|a| a.len() == 2));
    assert_eq!(state_of(&w, "w-live"), Some("idle"), "{w:#}");
    drop(dead); // SIGKILL: it stops polling.
    let w = wait_workers(&c, &s, |w| state_of(w, "w-dead") == Some("gone"));
    assert_eq!(state_of(&w, "w-live"), Some("idle"), "{w:#}");
    let live = w
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "w-live")
        .unwrap();
    assert_eq!(live["labels"], json!({"net": "idc-a", "zone": "b"}));
    let page = authed_page(&c, &s.api("/workers"));
    assert!(page.contains("data-name=\"w-live\""), "{page}");
    assert!(page.contains("net=idc-a, zone=b"), "{page}");
    assert!(
        page.contains("<tr class=\"worker w-gone\" data-name=\"w-dead\""),
        "{page}"
    );
    assert!(page.contains("<tr class=\"worker w-idle\" data-name=\"w-live\""));
    assert!(!page.contains(WORKER_TOKEN));

    // A restarted server still knows the workers, as gone until they
    // poll it.
    drop(s);
    let s = Serve::start(&p, &[], &token_env());
    let w = authed_get(&c, &s.api("/api/workers"));
    assert_eq!(state_of(&w, "w-dead"), Some("gone"), "{w:#}");
    assert_eq!(state_of(&w, "w-live"), Some("gone"), "{w:#}");
}
