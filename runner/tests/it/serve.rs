//! `atf serve`: the real server process on a free port, against a temp
//! project whose cases call a real HTTP server started by the test, driven
//! through its API with a real HTTP client — with the run history in
//! SQLite (the default) and in PostgreSQL.

mod web;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::server::TestServer;
use crate::util::{Project, Running, atf_bin};

/// The secret of the test project: it must appear in no API answer.
pub(crate) const SECRET: &str = "s3cr3t-t0ken-4711";

/// A running `atf serve`; killed when dropped.
pub(crate) struct Serve {
    _proc: Running,
    pub(crate) url: String,
}

impl Serve {
    pub(crate) fn start(project: &Project, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = std::process::Command::new(atf_bin());
        cmd.arg("serve")
            .arg(project.path())
            .args(["--port", "0"])
            .args(extra)
            .env_remove("ATF_PLUGIN_PATH")
            .env_remove("ATF_SERVE_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Running::spawn(cmd);
        proc.wait_for("listening on http://", 1, Duration::from_secs(60));
        let out = proc.stdout();
        let addr = out
            .split("listening on http://")
            .nth(1)
            .and_then(|r| r.lines().next())
            .expect("address")
            .trim()
            .to_string();
        Serve {
            url: format!("http://{addr}"),
            _proc: proc,
        }
    }

    pub(crate) fn api(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

pub(crate) fn get_json(c: &Client, url: &str) -> Value {
    let res = c.get(url).send().expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    let text = res.text().expect("body");
    assert!(!text.contains(SECRET), "GET {url} shows the secret: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// The SSE messages of a run's event stream, to its end: `(event, data)`.
pub(crate) fn follow(c: &Client, url: &str) -> Vec<(String, Value)> {
    let res = c.get(url).send().expect("GET events");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut out = Vec::new();
    let mut name = String::new();
    for line in BufReader::new(res).lines() {
        let line = line.expect("SSE line");
        assert!(!line.contains(SECRET), "an event shows the secret: {line}");
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let data: Value = serde_json::from_str(d).expect("event JSON");
            let end = name == "end";
            out.push((std::mem::take(&mut name), data));
            if end {
                break;
            }
        }
    }
    out
}

/// A project: `api/ok.case.json` passes against `srv`, sending the secret
/// in a header; `api/broken.case.json` names a keyword that does not exist.
pub(crate) fn project(srv: &TestServer) -> Project {
    let p = Project::new();
    p.file(
        "atf.json",
        json!({
            "default_env": "test",
            "secrets": ["token"],
            "envs": {"test": {
                "vars": {"token": SECRET},
                "resources": {"http": {"default": {"base_url": srv.url()}}}
            }}
        }),
    );
    p.file(
        "api/ok.case.json",
        json!({
            "name": "ping answers",
            "tags": ["smoke"],
            "steps": [{"keyword": "http.request",
                       "args": {"url": "/echo/ping", "headers": {"x-token": "${token}"}},
                       "expect": {"status": 200, "$.body.path": "/echo/ping",
                                  "$.body.headers.x-token": "${token}"}}]
        }),
    );
    p.file(
        "api/broken.case.json",
        "{\n  \"name\": \"broken\",\n  \"steps\": [\n    {\"keyword\": \"http.requets\", \"args\": {}}\n  ]\n}\n",
    );
    p
}

/// The whole API against one store: cases, edit with conflict and
/// refusals, a run followed live, its report, and the history after a
/// restart.
fn api_flow(db: &[&str]) {
    let srv = TestServer::start();
    let p = project(&srv);
    let c = client();
    let s = Serve::start(&p, db, &[]);

    let health = get_json(&c, &s.api("/api/health"));
    assert_eq!(health["status"], "ok");
    assert_eq!(health["schema_version"], 3);

    // The API describes itself.
    let doc = get_json(&c, &s.api("/api/openapi.json"));
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{doc:#}"
    );
    let mut documented: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            "/api/cases",
            "/api/cases/{path}",
            "/api/check",
            "/api/health",
            "/api/history/{path}",
            "/api/keywords",
            "/api/runs",
            "/api/runs/push",
            "/api/runs/{id}",
            "/api/runs/{id}/events",
            "/api/runs/{id}/finish",
            "/api/runs/{id}/push",
            "/api/runs/{id}/report",
            "/api/schema/case",
            "/api/stats/flaky",
            "/api/stats/slowest",
            "/api/templates",
            "/api/workers",
            "/api/workers/{name}/poll",
        ]
    );
    assert!(doc["components"]["schemas"]["RunRequest"].is_object());

    // The case list: path, name, tags, no status yet.
    let cases = get_json(&c, &s.api("/api/cases"));
    let ok = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ping answers")
        .unwrap_or_else(|| panic!("{cases:#}"));
    assert_eq!(ok["path"], "api/ok.case.json");
    assert_eq!(ok["tags"], json!(["smoke"]));
    assert_eq!(ok["last_status"], Value::Null);

    // A broken case file: its diagnostic at its line and column.
    let broken = get_json(&c, &s.api("/api/cases/api/broken.case.json"));
    let d = &broken["diagnostics"][0];
    assert_eq!(d["line"], 4, "{broken:#}");
    assert!(d["column"].as_u64().is_some(), "{broken:#}");
    assert!(
        d["message"].as_str().unwrap().contains("http.requets"),
        "{d}"
    );

    // Edit: the ETag read, a change on disk meanwhile, a refused save.
    let res = c.get(s.api("/api/cases/api/ok.case.json")).send().unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let doc: Value = res.json().unwrap();
    assert_eq!(doc["etag"], etag.as_str());
    let original = doc["content"].as_str().unwrap().to_string();
    let edited = original.replace("ping answers", "ping still answers");
    std::fs::write(p.join("api/ok.case.json"), format!("{original}\n")).unwrap();
    let res = c
        .put(s.api("/api/cases/api/ok.case.json"))
        .header("if-match", &etag)
        .body(edited.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().unwrap().contains("changed on disk"));
    // Read again, save: written as sent, byte for byte.
    let fresh = c.get(s.api("/api/cases/api/ok.case.json")).send().unwrap();
    let etag = fresh.headers()["etag"].to_str().unwrap().to_string();
    let res = c
        .put(s.api("/api/cases/api/ok.case.json"))
        .header("if-match", &etag)
        .body(edited.clone())
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        std::fs::read_to_string(p.join("api/ok.case.json")).unwrap(),
        edited
    );
    // Without If-Match an existing file is not overwritten.
    let res = c
        .put(s.api("/api/cases/api/ok.case.json"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_REQUIRED);
    // Paths out of the project, and files that are not cases, are refused.
    for (path, code) in [
        (
            "/api/cases/..%2F..%2Fescape.case.json",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/cases/%2Ftmp%2Fescape.case.json",
            StatusCode::BAD_REQUEST,
        ),
        ("/api/cases/atf.json", StatusCode::FORBIDDEN),
    ] {
        let res = c.put(s.api(path)).body("{}").send().unwrap();
        assert_eq!(res.status(), code, "PUT {path}");
        let res = c.get(s.api(path)).send().unwrap();
        assert_eq!(res.status(), code, "GET {path}");
        assert!(!res.text().unwrap().contains(SECRET));
    }
    assert!(!p.path().parent().unwrap().join("escape.case.json").exists());
    assert!(!std::path::Path::new("/tmp/escape.case.json").exists());

    // A run of the folder, followed live to its end.
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"paths": ["api"], "tags": "smoke"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = res.json::<Value>().unwrap()["id"].as_i64().expect("id");
    let events = follow(&c, &s.api(&format!("/api/runs/{id}/events")));
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"run_started"), "{names:?}");
    assert!(names.contains(&"case_started"), "{names:?}");
    let finished = events
        .iter()
        .find(|(n, _)| n == "case_finished")
        .expect("case_finished");
    assert_eq!(finished.1["report"]["name"], "ping still answers");
    assert_eq!(finished.1["report"]["status"], "passed");
    let (last, end) = events.last().unwrap();
    assert_eq!(last, "end");
    assert_eq!(end["status"], "passed");
    assert_eq!(end["summary"]["passed"], 1);

    // Following a finished run replays it whole.
    let again = follow(&c, &s.api(&format!("/api/runs/{id}/events")));
    assert_eq!(again.len(), events.len());

    let run = get_json(&c, &s.api(&format!("/api/runs/{id}")));
    assert_eq!(run["status"], "passed");
    assert_eq!(run["selection"]["paths"], json!(["api"]));
    assert_eq!(run["summary"]["total"], 1);
    let report = get_json(&c, &s.api(&format!("/api/runs/{id}/report")));
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(report["cases"][0]["name"], "ping still answers");

    // A failing run: the broken case.
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"paths": ["api/broken.case.json"]}))
        .send()
        .unwrap();
    let id2 = res.json::<Value>().unwrap()["id"].as_i64().unwrap();
    let events = follow(&c, &s.api(&format!("/api/runs/{id2}/events")));
    assert_eq!(events.last().unwrap().1["status"], "failed");
    let failed = get_json(&c, &s.api("/api/runs?status=failed"));
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed:#}");
    assert_eq!(failed[0]["id"], id2);
    let one = get_json(&c, &s.api("/api/runs?limit=1"));
    assert_eq!(one.as_array().unwrap().len(), 1);

    // A bad run request is refused with a reason.
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"paths": ["../elsewhere"]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"path": "api"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().unwrap().contains("unknown field"));

    // Pages: the case tree with its last status, the case page with the
    // diagnostic at its line, the runs list, a run page.
    let page = c.get(s.api("/")).send().unwrap().text().unwrap();
    assert!(page.contains("ping still answers") && page.contains("st-passed"));
    let page = c
        .get(s.api("/cases/api/broken.case.json"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("line 4:"), "{page}");
    let page = c.get(s.api("/runs")).send().unwrap().text().unwrap();
    assert!(page.contains(&format!("/runs/{id2}")));
    for (path, text) in [
        (format!("/runs/{id}"), "data-run"),
        ("/assets/app.js".into(), "EventSource"),
    ] {
        let res = c.get(s.api(&path)).send().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.text().unwrap();
        assert!(body.contains(text) && !body.contains(SECRET), "{path}");
    }

    // Restart: the runs are still there, and the case's last status.
    drop(s);
    let s = Serve::start(&p, db, &[]);
    let runs = get_json(&c, &s.api("/api/runs"));
    let ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![id2, id]);
    let cases = get_json(&c, &s.api("/api/cases"));
    let ok = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "api/ok.case.json")
        .unwrap();
    assert_eq!(ok["last_status"], "passed");
    let history = get_json(&c, &s.api("/api/history/api/ok.case.json"));
    assert_eq!(history[0]["run_id"], id);
    assert_eq!(history[0]["status"], "passed");
    let report = get_json(&c, &s.api(&format!("/api/runs/{id}/report")));
    assert_eq!(report["summary"]["passed"], 1);
}

#[test]
fn serve_api_end_to_end_with_sqlite() {
    api_flow(&[]);
}

/// A PostgreSQL database of its own for one test, dropped at the end.
pub(crate) struct PgDb {
    name: String,
}

const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

fn pg(sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(PG_ADMIN, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL does not answer on 127.0.0.1:5432 ({e}): start the test \
                     services with `scripts/services.sh`, then run the tests again"
                )
            });
        tokio::spawn(conn);
        client.batch_execute(sql).await.expect(sql);
    });
}

impl PgDb {
    pub(crate) fn new() -> PgDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("atf_serve_{}_{nanos}", std::process::id());
        pg(&format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        pg(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

#[test]
fn serve_api_end_to_end_with_postgres() {
    let db = PgDb::new();
    let url = db.url();
    api_flow(&["--db", &url]);
}

/// A run that was going when the server died is `interrupted` when the
/// server starts again.
#[test]
fn a_run_cut_off_by_a_dead_server_is_interrupted_after_restart() {
    let srv = TestServer::start();
    let p = project(&srv);
    p.file(
        "slow/wait.case.json",
        json!({"name": "waits", "steps": [
            {"keyword": "http.request", "args": {"url": "/delay/20000"}}
        ]}),
    );
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let res = c
        .post(s.api("/api/runs"))
        .json(&json!({"paths": ["slow"]}))
        .send()
        .unwrap();
    let id = res.json::<Value>().unwrap()["id"].as_i64().unwrap();
    // Wait until the case is under way.
    let res = c
        .get(s.api(&format!("/api/runs/{id}/events")))
        .send()
        .unwrap();
    let mut lines = BufReader::new(res).lines();
    loop {
        let line = lines.next().expect("the stream ended early").unwrap();
        if line == "event: case_started" {
            break;
        }
    }
    let run = get_json(&c, &s.api(&format!("/api/runs/{id}")));
    assert_eq!(run["status"], "running");
    drop(lines);
    drop(s); // kill -9
    let s = Serve::start(&p, &[], &[]);
    let run = get_json(&c, &s.api(&format!("/api/runs/{id}")));
    assert_eq!(run["status"], "interrupted");
    assert!(run["finished_at"].is_string());
    // Its stored events still replay, and the stream ends.
    let events = follow(&c, &s.api(&format!("/api/runs/{id}/events")));
    assert!(events.iter().any(|(n, _)| n == "case_started"));
    assert_eq!(events.last().unwrap().1["status"], "interrupted");
}

#[test]
fn a_public_address_needs_a_token_and_the_api_then_asks_for_it() {
    let p = Project::new();
    p.file("atf.json", json!({}));
    p.file(
        "a.case.json",
        json!({"name": "a", "steps": [{"keyword": "log", "args": {"message": "x"}}]}),
    );
    let out = p
        .command(&["serve", ".", "--port", "0", "--bind", "0.0.0.0"])
        .env_remove("ATF_SERVE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a token") && err.contains("ATF_SERVE_TOKEN"),
        "{err}"
    );

    let s = Serve::start(
        &p,
        &["--bind", "0.0.0.0"],
        &[("ATF_SERVE_TOKEN", "t0k3n-for-tests")],
    );
    let url = s.url.replace("0.0.0.0", "127.0.0.1");
    let c = client();
    let res = c.get(format!("{url}/api/cases")).send().unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c
        .get(format!("{url}/api/cases"))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = c
        .get(format!("{url}/api/cases"))
        .bearer_auth("t0k3n-for-tests")
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.get(format!("{url}/api/health")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // The token also comes from the project's .atf/token.
    drop(s);
    p.file(".atf/token", "from-the-file\n");
    let s = Serve::start(&p, &["--bind", "0.0.0.0"], &[]);
    let url = s.url.replace("0.0.0.0", "127.0.0.1");
    let res = c
        .get(format!("{url}/api/runs"))
        .bearer_auth("from-the-file")
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn report_folders_are_imported_into_the_history() {
    let srv = TestServer::start();
    let p = project(&srv);
    // A CLI run, and a run whose folder has only its report.json.
    let out = p.atf(&["run", "api", "--report-dir", "cli-run"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let out = p.atf(&["run", "api/ok.case.json", "--report-dir", "only-json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::remove_file(p.join("only-json/events.jsonl")).unwrap();

    let out = p.atf(&["serve", "import", "cli-run", "only-json", "missing"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("cli-run: imported as run 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("only-json: imported as run 2"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("missing"), "{}", out.stderr);

    // `atf run` is gone; the server still has both runs.
    std::fs::remove_dir_all(p.join("cli-run")).unwrap();
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let run = get_json(&c, &s.api("/api/runs/1"));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["summary"]["total"], 2);
    assert_eq!(run["summary"]["errored"], 1);
    let events = follow(&c, &s.api("/api/runs/1/events"));
    assert_eq!(events[0].0, "run_started");
    assert_eq!(events.last().unwrap().1["status"], "failed");
    let report = get_json(&c, &s.api("/api/runs/1/report"));
    assert_eq!(report["summary"]["total"], 2);
    let run = get_json(&c, &s.api("/api/runs/2"));
    assert_eq!(run["status"], "passed");
    let history = get_json(&c, &s.api("/api/history/api/ok.case.json"));
    let runs: Vec<i64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["run_id"].as_i64().unwrap())
        .collect();
    assert_eq!(runs, vec![2, 1]);
}

#[test]
fn a_cli_run_pushes_its_events_to_the_server() {
    let srv = TestServer::start();
    let p = project(&srv);
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let out = p.atf(&["run", "api", "--server", &s.url]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pushing to {}/runs/1", s.url)),
        "{}",
        out.stderr
    );
    let run = get_json(&c, &s.api("/api/runs/1"));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["selection"]["pushed"], true);
    assert_eq!(run["summary"]["passed"], 1);
    assert_eq!(run["summary"]["errored"], 1);
    // The same events as the run's own events.jsonl.
    let events = follow(&c, &s.api("/api/runs/1/events"));
    let local = std::fs::read_to_string(p.join("atf-report/events.jsonl")).unwrap();
    assert_eq!(events.len() - 1, local.lines().count());
    let report = get_json(&c, &s.api("/api/runs/1/report"));
    assert_eq!(report["summary"]["total"], 2);
    let cases = get_json(&c, &s.api("/api/cases"));
    assert!(
        cases
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "api/ok.case.json" && c["last_status"] == "passed"),
        "{cases:#}"
    );

    // A server that is not there: the run goes on, with a warning.
    drop(s);
    let out = p.atf(&["run", "api/ok.case.json", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: --server") && out.stderr.contains("goes on without it"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_run_request_passes_its_env_and_vars_to_the_run() {
    let srv = TestServer::start();
    let p = project(&srv);
    p.file(
        "vars/who.case.json",
        json!({"name": "who", "vars": {"who": "nobody"}, "steps": [
            {"keyword": "http.request", "args": {"url": "/echo/${who}"},
             "expect": {"$.body.path": "/echo/ada"}}
        ]}),
    );
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let start = |body: Value| -> Value {
        let res = c.post(s.api("/api/runs")).json(&body).send().unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let id = res.json::<Value>().unwrap()["id"].as_i64().unwrap();
        follow(&c, &s.api(&format!("/api/runs/{id}/events")))
            .pop()
            .unwrap()
            .1
    };
    let run = start(json!({"paths": ["vars"], "vars": {"who": "ada"}}));
    assert_eq!(run["status"], "passed", "{run:#}");
    // The history keeps the vars' names, never their values.
    assert_eq!(run["selection"]["vars"], json!({"who": "***"}), "{run:#}");
    let run = start(json!({"paths": ["vars"]}));
    assert_eq!(run["status"], "failed", "{run:#}");
    // An environment the project does not have: nothing could run.
    let run = start(json!({"paths": ["vars"], "vars": {"who": "ada"}, "env": "nope"}));
    assert_eq!(run["status"], "error", "{run:#}");
    assert_eq!(run["selection"]["env"], "nope");
    // By tags: no case is tagged `none`, so nothing runs either.
    let run = start(json!({"tags": "none"}));
    assert_eq!(run["status"], "error", "{run:#}");
}

/// The token of the worker tests' server: it must appear in no output.
pub(crate) const WORKER_TOKEN: &str = "w0rker-t0ken-9931";

/// A running `atf worker` for `s` in `project`; killed (SIGKILL) when
/// dropped.
pub(crate) fn start_worker(s: &Serve, project: &Project, name: &str, labels: &str) -> Running {
    let mut cmd = std::process::Command::new(atf_bin());
    cmd.arg("worker")
        .arg(project.path())
        .args(["--server", &s.url, "--token", WORKER_TOKEN, "--name", name])
        .args(["--labels", labels])
        .env_remove("ATF_PLUGIN_PATH")
        .env_remove("ATF_SERVE_TOKEN");
    let w = Running::spawn(cmd);
    w.wait_for("registered with", 1, Duration::from_secs(60));
    w
}

pub(crate) fn authed_get(c: &Client, url: &str) -> Value {
    let res = c.get(url).bearer_auth(WORKER_TOKEN).send().expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    let text = res.text().expect("body");
    assert!(!text.contains(SECRET), "GET {url} shows the secret: {text}");
    assert!(!text.contains(WORKER_TOKEN), "GET {url} shows the token");
    serde_json::from_str(&text).expect("JSON")
}

pub(crate) fn authed_page(c: &Client, url: &str) -> String {
    let res = c.get(url).bearer_auth(WORKER_TOKEN).send().expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    let text = res.text().expect("body");
    assert!(!text.contains(WORKER_TOKEN), "GET {url} shows the token");
    text
}

fn post_run(c: &Client, s: &Serve, body: Value) -> i64 {
    let res = c
        .post(s.api("/api/runs"))
        .bearer_auth(WORKER_TOKEN)
        .json(&body)
        .send()
        .expect("POST /api/runs");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().unwrap()["id"].as_i64().unwrap()
}

/// Polls run `id` until `done` holds (generous deadline: no timing is
/// asserted).
fn wait_run(c: &Client, s: &Serve, id: i64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let run = authed_get(c, &s.api(&format!("/api/runs/{id}")));
        if done(&run) {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} never got {what}: {run}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ended(run: &Value) -> bool {
    !matches!(run["status"].as_str(), Some("queued" | "running"))
}

pub(crate) fn token_env() -> [(&'static str, &'static str); 2] {
    [
        ("ATF_SERVE_TOKEN", WORKER_TOKEN),
        ("ATF_SERVE_WORKER_TIMEOUT_MS", "1500"),
    ]
}

#[test]
fn a_worker_takes_a_queued_run_and_streams_its_events_back() {
    let srv = TestServer::start();
    let server_project = project(&srv);
    let worker_project = project(&srv);
    let c = client();
    let s = Serve::start(&server_project, &[], &token_env());
    let w = start_worker(&s, &worker_project, "w1", "");
    let workers = authed_get(&c, &s.api("/api/workers"));
    assert_eq!(workers[0]["name"], "w1");
    let id = post_run(&c, &s, json!({"paths": ["api/ok.case.json"]}));
    let run = wait_run(&c, &s, id, "an end", ended);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["worker"], "w1");
    assert_eq!(run["summary"]["passed"], 1);
    // Its events are in the history and replay.
    let events = follow(
        &Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {WORKER_TOKEN}").parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
        &s.api(&format!("/api/runs/{id}/events")),
    );
    assert!(
        events
            .iter()
            .any(|(n, d)| n == "case_finished" && d["report"]["name"] == "ping answers")
    );
    let report = authed_get(&c, &s.api(&format!("/api/runs/{id}/report")));
    assert_eq!(report["summary"]["passed"], 1, "{report}");
    // The worker ran it in its own project folder.
    assert!(
        worker_project
            .path()
            .join(format!(".atf/worker-runs/{id}/events.jsonl"))
            .is_file()
    );
    let workers = authed_get(&c, &s.api("/api/workers"));
    assert_eq!(workers[0]["done"], 1, "{workers}");
    assert!(workers[0]["run"].is_null());
    // The pages list it and say which worker ran the run.
    let page = authed_page(&c, &s.api("/workers"));
    assert!(
        page.contains("id=\"workers\"") && page.contains("data-name=\"w1\""),
        "the workers page lists the workers: {page}"
    );
    let page = authed_page(&c, &s.api("/runs"));
    assert!(
        page.contains("on worker w1"),
        "the runs page says which worker ran the run"
    );
    for out in [w.stdout(), w.stderr()] {
        assert!(!out.contains(WORKER_TOKEN), "the worker printed its token");
        assert!(!out.contains(SECRET));
    }
}

#[test]
fn a_worker_takes_only_the_runs_whose_labels_it_has() {
    let srv = TestServer::start();
    let server_project = project(&srv);
    let worker_project = project(&srv);
    let c = client();
    let s = Serve::start(&server_project, &[], &token_env());
    let _w = start_worker(&s, &worker_project, "wa", "net=a");
    let for_b = post_run(
        &c,
        &s,
        json!({"paths": ["api/ok.case.json"], "labels": {"net": "b"}}),
    );
    let for_a = post_run(
        &c,
        &s,
        json!({"paths": ["api/ok.case.json"], "labels": {"net": "a"}}),
    );
    let run = wait_run(&c, &s, for_a, "an end", ended);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["worker"], "wa");
    // The older run for net=b was passed over and still waits.
    let run = authed_get(&c, &s.api(&format!("/api/runs/{for_b}")));
    assert_eq!(run["status"], "queued", "{run}");
    assert_eq!(run["worker"], "");
}

#[test]
fn a_run_whose_worker_was_killed_is_queued_again_and_another_worker_finishes_it() {
    let srv = TestServer::start();
    let server_project = project(&srv);
    // The first worker's case waits long; the second's does not.
    let slow_case = json!({"name": "waits", "steps": [
        {"keyword": "http.request", "args": {"url": "/delay/${ms}"}}
    ]});
    let first = project(&srv);
    let second = project(&srv);
    for (p, ms) in [(&server_project, 10), (&first, 20000), (&second, 10)] {
        p.file("slow/wait.case.json", slow_case.clone());
        p.file(
            "atf.json",
            json!({
                "default_env": "test",
                "secrets": ["token"],
                "envs": {"test": {
                    "vars": {"token": SECRET, "ms": ms.to_string()},
                    "resources": {"http": {"default": {"base_url": srv.url()}}}
                }}
            }),
        );
    }
    let c = client();
    let s = Serve::start(&server_project, &[], &token_env());
    let w1 = start_worker(&s, &first, "first", "");
    let id = post_run(&c, &s, json!({"paths": ["slow"]}));
    wait_run(&c, &s, id, "the first worker", |r| {
        r["worker"] == "first" && r["status"] == "running"
    });
    // Wait until its case is under way (its events reached the server).
    let res = c
        .get(s.api(&format!("/api/runs/{id}/events")))
        .bearer_auth(WORKER_TOKEN)
        .send()
        .unwrap();
    let mut lines = BufReader::new(res).lines();
    loop {
        let line = lines.next().expect("the stream ended early").unwrap();
        if line == "event: case_started" {
            break;
        }
    }
    drop(lines);
    drop(w1); // SIGKILL
    wait_run(&c, &s, id, "queued again", |r| r["status"] == "queued");
    let _w2 = start_worker(&s, &second, "second", "");
    let run = wait_run(&c, &s, id, "an end", ended);
    assert_eq!(run["status"], "passed", "{run}");
    assert_eq!(run["worker"], "second");
    assert_eq!(
        run["summary"]["total"], 1,
        "the first attempt's events were dropped"
    );
    let workers = authed_get(&c, &s.api("/api/workers"));
    let states: Vec<(&str, &str)> = workers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| Some((w["name"].as_str()?, w["state"].as_str()?)))
        .collect();
    assert_eq!(
        states,
        [("second", "idle"), ("first", "gone")],
        "the silent worker was dropped, and is listed as gone"
    );
}

#[test]
fn only_the_worker_holding_a_run_may_push_to_it() {
    let srv = TestServer::start();
    let p = project(&srv);
    let c = client();
    // The default timeout (30 s): the worker below stays live.
    let s = Serve::start(&p, &[], &[("ATF_SERVE_TOKEN", WORKER_TOKEN)]);
    let post = |path: &str, worker: &str, body: String| {
        c.post(s.api(path))
            .bearer_auth(WORKER_TOKEN)
            .header("x-atf-worker", worker)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .status()
    };
    let reg = json!({"name": "holder", "labels": {}}).to_string();
    assert_eq!(post("/api/workers", "holder", reg), StatusCode::OK);
    let id = post_run(&c, &s, json!({"paths": ["api/ok.case.json"]}));
    let res = c
        .post(s.api("/api/workers/holder/poll"))
        .bearer_auth(WORKER_TOKEN)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(res["run"]["id"], id, "{res}");
    assert_eq!(res["run"]["request"]["paths"][0], "api/ok.case.json");
    let push = format!("/api/runs/{id}/push");
    assert_eq!(post(&push, "other", String::new()), StatusCode::CONFLICT);
    assert_eq!(post(&push, "holder", String::new()), StatusCode::NO_CONTENT);
    let finish = format!("/api/runs/{id}/finish");
    let code = json!({"exit_code": 0}).to_string();
    assert_eq!(post(&finish, "other", code.clone()), StatusCode::CONFLICT);
    assert_eq!(post(&finish, "holder", code), StatusCode::NO_CONTENT);
    let run = authed_get(&c, &s.api(&format!("/api/runs/{id}")));
    assert_eq!(run["worker"], "holder");
    assert_eq!(run["status"], "passed");
    // An unknown worker is told to register again.
    let res = c
        .post(s.api("/api/workers/nobody/poll"))
        .bearer_auth(WORKER_TOKEN)
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
