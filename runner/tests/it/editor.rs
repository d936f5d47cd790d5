//! `atf serve`'s editor API against the real server process: the keyword
//! catalogue and case schema it completes from, `atf check` on unsaved
//! text with the diagnostics at their line, new cases from templates,
//! and a run request with a matrix.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::serve::{SECRET, Serve, project};
use crate::server::TestServer;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

fn get(c: &Client, url: &str) -> Value {
    let res = c.get(url).send().expect("GET");
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    let text = res.text().unwrap();
    assert!(!text.contains(SECRET), "GET {url} shows the secret");
    serde_json::from_str(&text).expect("JSON")
}

fn post(c: &Client, url: &str, body: Value) -> (StatusCode, Value) {
    let res = c.post(url).json(&body).send().expect("POST");
    let code = res.status();
    let text = res.text().unwrap();
    assert!(!text.contains(SECRET), "POST {url} shows the secret");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn the_editor_completes_from_the_binarys_keywords_and_schema() {
    let srv = TestServer::start();
    let p = project(&srv);
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let keywords = get(&c, &format!("{}/api/keywords", s.url));
    let http = keywords
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "http.request")
        .unwrap_or_else(|| panic!("{keywords:#}"));
    let args: Vec<&str> = http["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        args.contains(&"url") && args.contains(&"method"),
        "{args:?}"
    );
    // The schema is `atf schema --file case`'s, byte for byte as JSON.
    let schema = get(&c, &format!("{}/api/schema/case", s.url));
    let cli = p.atf(&["schema", "--file", "case"]);
    let printed: Value = serde_json::from_str(&cli.stdout).expect("atf schema prints JSON");
    assert_eq!(schema, printed);
    assert!(schema["$defs"]["step"].is_object(), "{schema:#}");
    // The pages load the editor.
    let page = c
        .get(format!("{}/cases/api/ok.case.json", s.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("id=\"editor\"") && page.contains("/assets/editor.js"));
    let js = c.get(format!("{}/assets/editor.js", s.url)).send().unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().unwrap().contains("/api/check"));
}

#[test]
fn check_finds_the_problems_of_unsaved_text_at_their_line() {
    let srv = TestServer::start();
    let p = project(&srv);
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let url = format!("{}/api/check", s.url);
    let on_disk = std::fs::read_to_string(p.join("api/ok.case.json")).unwrap();
    let broken = on_disk.replace("http.request", "http.requets");
    let line = broken
        .lines()
        .position(|l| l.contains("http.requets"))
        .expect("the keyword's line")
        + 1;
    let (code, doc) = post(
        &c,
        &url,
        json!({"path": "api/ok.case.json", "content": broken}),
    );
    assert_eq!(code, StatusCode::OK, "{doc}");
    let d = &doc["diagnostics"][0];
    assert_eq!(d["line"], line, "{doc:#}");
    assert!(d["column"].as_u64().is_some(), "{doc:#}");
    assert!(
        d["message"].as_str().unwrap().contains("http.requets"),
        "{doc:#}"
    );
    // Checking saved nothing.
    assert_eq!(
        std::fs::read_to_string(p.join("api/ok.case.json")).unwrap(),
        on_disk
    );
    // The text as on disk has no problem; invalid JSON has one at its line.
    let (_, doc) = post(
        &c,
        &url,
        json!({"path": "api/ok.case.json", "content": on_disk}),
    );
    assert_eq!(doc["diagnostics"], json!([]), "{doc:#}");
    let (_, doc) = post(
        &c,
        &url,
        json!({"path": "api/new.case.json", "content": "{\n  \"name\": \"x\",\n  \"steps\": [,]\n}\n"}),
    );
    assert_eq!(doc["diagnostics"][0]["line"], 3, "{doc:#}");
    assert!(
        doc["diagnostics"][0]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{doc:#}"
    );
    assert!(!p.join("api/new.case.json").exists());
    // Only case files inside the project.
    for (path, want) in [
        ("../x.case.json", StatusCode::BAD_REQUEST),
        ("atf.json", StatusCode::FORBIDDEN),
    ] {
        let (code, _) = post(&c, &url, json!({"path": path, "content": "{}"}));
        assert_eq!(code, want, "{path}");
    }
}

#[test]
fn a_new_case_comes_from_a_template_and_never_overwrites() {
    let srv = TestServer::start();
    let p = project(&srv);
    p.file(
        "templates/smoke.json",
        json!({"name": "?", "tags": ["smoke"], "steps": [
            {"keyword": "http.request", "args": {"url": "/echo/t"}, "expect": {"status": 200}}
        ]}),
    );
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let list = get(&c, &format!("{}/api/templates", s.url));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["http", "empty", "smoke"], "{list:#}");
    let url = format!("{}/api/cases", s.url);
    let (code, doc) = post(
        &c,
        &url,
        json!({"path": "made/here/one.case.json", "template": "smoke", "name": "made from smoke"}),
    );
    assert_eq!(code, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["path"], "made/here/one.case.json");
    assert_eq!(doc["diagnostics"], json!([]), "{doc:#}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("made/here/one.case.json")).unwrap())
            .unwrap();
    assert_eq!(written["name"], "made from smoke");
    assert_eq!(written["tags"], json!(["smoke"]));
    // The case is in the tree and runs.
    let cases = get(&c, &format!("{}/api/cases", s.url));
    assert!(
        cases
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "made from smoke"),
        "{cases:#}"
    );
    // The same path again: refused, the file as it was.
    std::fs::write(p.join("made/here/one.case.json"), "{\"name\": \"mine\"}").unwrap();
    let (code, doc) = post(
        &c,
        &url,
        json!({"path": "made/here/one.case.json", "template": "empty"}),
    );
    assert_eq!(code, StatusCode::CONFLICT, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("exists already"));
    assert_eq!(
        std::fs::read_to_string(p.join("made/here/one.case.json")).unwrap(),
        "{\"name\": \"mine\"}"
    );
    // The built-in template, named from the file.
    let (code, doc) = post(&c, &url, json!({"path": "api/list-orders.case.json"}));
    assert_eq!(code, StatusCode::CREATED, "{doc}");
    assert!(
        doc["content"]
            .as_str()
            .unwrap()
            .contains("\"name\": \"list orders\""),
        "{doc:#}"
    );
    // Refusals: an unknown template, a path out of the project, not a case.
    for (body, want) in [
        (
            json!({"path": "a.case.json", "template": "nope"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"path": "../a.case.json"}), StatusCode::BAD_REQUEST),
        (json!({"path": "atf.json"}), StatusCode::FORBIDDEN),
    ] {
        let (code, doc) = post(&c, &url, body.clone());
        assert_eq!(code, want, "{body} → {doc}");
    }
    assert!(!p.join("a.case.json").exists());
    assert!(!p.path().parent().unwrap().join("a.case.json").exists());
}

#[test]
fn a_run_request_with_a_matrix_runs_every_cell() {
    let srv = TestServer::start();
    let p = project(&srv);
    p.file(
        "m/flavor.case.json",
        json!({"name": "flavor ${flavor}", "steps": [
            {"keyword": "http.request", "args": {"url": "/echo/${flavor}"},
             "expect": {"status": 200, "$.body.path": "/echo/${flavor}"}}
        ]}),
    );
    let c = client();
    let s = Serve::start(&p, &[], &[]);
    let (code, doc) = post(
        &c,
        &format!("{}/api/runs", s.url),
        json!({"paths": ["m"], "matrix": ["flavor=vanilla,mango"]}),
    );
    assert_eq!(code, StatusCode::CREATED, "{doc}");
    let id = doc["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let run = loop {
        let run = get(&c, &format!("{}/api/runs/{id}", s.url));
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run["status"], "passed", "{run:#}");
    assert_eq!(run["summary"]["passed"], 2, "{run:#}");
    assert_eq!(run["selection"]["matrix"], json!(["flavor=vanilla,mango"]));
}
