//! `http.request` against a real server.

use serde_json::json;

use crate::server::TestServer;
use crate::util::{Project, case};

#[test]
fn requests_join_base_url_and_send_headers_query_and_bodies() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", json!({
        "default_env": "t",
        "envs": {"t": {"resources": {"http": {
            "default": {"base_url": format!("{}/echo", srv.url()), "headers": {"x-team": "orders"}},
            "other": format!("{}/", srv.url())
        }}}}
    }));
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"method": "post", "url": "/users/1", "headers": {"X-Req": "7"}, "query": {"a": "1", "b": ["x", "y"]}, "json": {"k": [1, 2]}},
             "expect": {"status": 200, "$.body.method": "POST", "$.body.path": "/echo/users/1", "$.body.headers.x-team": "orders",
                        "$.body.headers.x-req": "7", "$.body.raw_query": "a=1&b=x&b=y", "$.body.json": {"k": [1, 2]},
                        "$.body.headers.content-type": "application/json", "headers.content-type": {"$contains": "json"},
                        "elapsed_ms": {"$type": "number"}}},
            {"keyword": "http.request", "args": {"method": "PUT", "url": "/f", "form": {"a": "1 2", "b": "&"}},
             "expect": {"$.body.body": "a=1+2&b=%26", "$.body.headers.content-type": "application/x-www-form-urlencoded"}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/b", "body": "raw text"}, "expect": {"$.body.body": "raw text"}},
            {"keyword": "http.request", "remark": "a step header replaces the resource's; a list sends each item",
             "args": {"url": "/h", "headers": {"X-Team": "payments", "x-list": ["a", "b"]}},
             "expect": {"$.body.headers.x-team": "payments", "$.body.headers.x-list": "a, b"}},
            {"keyword": "http.request", "args": {"url": "text", "resource": "other"}, "expect": {"body": "hello", "status": 200}},
            {"keyword": "http.request", "args": {"url": "/redirect", "resource": "other"}, "expect": {"status": 200, "$.body.path": "/echo"}},
            {"keyword": "http.request", "args": {"url": "/redirect", "resource": "other", "follow_redirects": false},
             "expect": {"status": 303, "headers.location": "/echo"}},
            {"keyword": "http.request", "args": {"url": format!("{}/status/404", srv.url())}, "expect": {"status": 404, "$.body.code": 404}}
        ]
    }));
    let out = p.atf(&["run"]);
    let r = p.report();
    assert_eq!(
        case(&r, "a")["status"],
        "passed",
        "{:#}\n{}",
        case(&r, "a"),
        out.stdout
    );
}

#[test]
fn responses_are_decompressed_and_decoded_and_requests_say_atf() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("e.case.json", json!({
        "name": "e",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/gzip", srv.url())},
             "expect": {"$.body.zipped": true, "headers.content-encoding": {"$exists": false}}},
            {"keyword": "http.request", "args": {"url": format!("{}/gzip", srv.url()), "decompress": false},
             "expect": {"status": 200, "$.body.zipped": true}},
            {"keyword": "http.request", "args": {"url": format!("{}/latin1", srv.url())},
             "expect": {"body": "café"}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url())},
             "expect": {"$.body.headers.user-agent": {"$regex": "^atf/\\d+\\.\\d+"}}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()), "headers": {"User-Agent": "mine/1"}},
             "expect": {"$.body.headers.user-agent": "mine/1"}}
        ]
    }));
    let out = p.atf(&["run"]);
    let r = p.report();
    assert_eq!(
        case(&r, "e")["status"],
        "passed",
        "{:#}\n{}",
        case(&r, "e"),
        out.stdout
    );
}

#[test]
fn auth_sends_basic_and_bearer_and_keeps_their_secrets_out_of_reports() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()),
                "auth": {"basic": {"user": "ada", "password": "pa55-w0rd-basic"}}},
             "expect": {"$.body.headers.authorization": "Basic YWRhOnBhNTUtdzByZC1iYXNpYw=="}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()),
                "auth": {"bearer": "t0ken-bearer-77"}},
             "expect": {"$.body.headers.authorization": "Bearer t0ken-bearer-77"}},
            {"keyword": "http.request", "remark": "a step's own Authorization wins",
             "args": {"url": format!("{}/echo", srv.url()), "auth": {"bearer": "t0ken-bearer-77"},
                      "headers": {"Authorization": "Custom x"}},
             "expect": {"$.body.headers.authorization": "Custom x"}},
            {"keyword": "assert", "args": {"value": "pa55-w0rd-basic t0ken-bearer-77"}, "expect": {"value": "never"}}
        ]
    }));
    let out = p.atf(&["run", "-v"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = p.report();
    let a = case(&r, "a");
    for i in 0..3 {
        assert_eq!(a["steps"][i]["status"], "passed", "{a:#}");
    }
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    for (name, text) in [("stdout", &out.stdout), ("report.json", &report)] {
        for secret in [
            "pa55-w0rd-basic",
            "t0ken-bearer-77",
            "YWRhOnBhNTUtdzByZC1iYXNpYw",
        ] {
            assert!(!text.contains(secret), "{name} shows {secret}:\n{text}");
        }
    }
}

#[test]
fn a_session_cookie_a_response_sets_is_masked_wherever_it_shows() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "c.case.json",
        json!({
            "name": "c",
            "steps": [
                {"keyword": "http.request", "args": {"url": format!("{}/login", srv.url())},
                 "save": {"cookie": "$.headers.set-cookie"}},
                {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()),
                                                     "headers": {"X-Session": "${cookie}"}},
                 "expect": {"$.body.headers.x-session": "never"}}
            ]
        }),
    );
    let out = p.atf(&["run", "-v"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    let events = std::fs::read_to_string(p.join("atf-report/events.jsonl")).unwrap();
    for (name, text) in [
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
        ("report.json", &report),
        ("events.jsonl", &events),
    ] {
        assert!(
            !text.contains("5e55-10n"),
            "{name} shows the session:\n{text}"
        );
    }
    assert!(report.contains("***"), "{report}");
}

#[test]
fn a_header_that_resolves_to_null_fails_the_step_instead_of_vanishing() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "n.case.json",
        json!({
            "name": "n",
            "vars": {"token": null},
            "steps": [
                {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()),
                                                     "headers": {"X-Token": "${token}"}}}
            ]
        }),
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = p.report();
    let n = case(&r, "n");
    assert!(
        n["steps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("header `X-Token` is null")),
        "{n:#}"
    );
    assert_eq!(n["steps"][0]["status"], "error", "{n:#}");
}

#[test]
fn connection_errors_and_unknown_resources_fail_the_step_with_the_cause() {
    let p = Project::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [ {"keyword": "http.request", "args": {"url": format!("http://127.0.0.1:{port}/x")}} ]
    }));
    p.file(
        "b.case.json",
        json!({
            "name": "b",
            "steps": [ {"keyword": "http.request", "args": {"url": "/x", "resource": "nope"}} ]
        }),
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    let a = case(&r, "a")["steps"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        a.contains("cannot connect") && a.contains(&port.to_string()),
        "{a}"
    );
    let b = case(&r, "b")["steps"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b.contains("no http resource `nope`"), "{b}");
    assert!(
        out.stdout.contains("error: cannot connect"),
        "{}",
        out.stdout
    );
}

#[test]
fn secrets_never_reach_reports_or_console() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "atf.json",
        json!({
            "default_env": "t",
            "secrets": ["API_TOKEN", "DB_PASS"],
            "envs": {"t": {
                "vars": {"API_TOKEN": "tok-SECRET-4711"},
                "resources": {"http": {"default": {"base_url": srv.url()}},
                              "mysql": {"default": "mysql://root:pw-SECRET-0815@127.0.0.1:1/test"}}
            }}
        }),
    );
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "remark": "echoes the token", "args": {"url": "/whoami", "headers": {"Authorization": "Bearer ${API_TOKEN}"}},
             "expect": {"$.body.you_sent": "nope"}},
            {"keyword": "http.request", "args": {"url": "/whoami", "headers": {"Cookie": "sid=cookie-SECRET-77"}}, "expect": {"$.body.note": "x"}},
            {"keyword": "log", "args": {"message": "env pass ${env.DB_PASS} and ${API_TOKEN}"}}
        ],
        "cleanup": [ {"keyword": "log", "args": {"message": "still ${API_TOKEN}, env ${env.DB_PASS}"}},
                     {"keyword": "assert", "args": {"value": "${API_TOKEN}"}, "expect": {"value": "other"}} ]
    }));
    let out = p
        .command(&["run"])
        .env("DB_PASS", "envpass-SECRET-99")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in [
        "tok-SECRET-4711",
        "pw-SECRET-0815",
        "cookie-SECRET-77",
        "envpass-SECRET-99",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked to the console:\n{stdout}"
        );
        for f in ["report.json", "junit.xml", "index.html"] {
            let bytes = std::fs::read(p.join("atf-report").join(f)).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(secret), "{secret} leaked into {f}");
        }
    }
    assert!(stdout.contains("***"), "{stdout}");
}
