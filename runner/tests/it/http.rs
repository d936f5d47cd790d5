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

#[test]
fn each_case_has_a_cookie_jar_fed_by_set_cookie_and_sent_back_by_the_rules() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "t", "envs": {"t": {"resources": {"http": {"default": srv.url()}}}}}),
    );
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/cookies/set?sid=s3ss10n-abcdef&lang=en"},
             "expect": {"cookies.lang.value": "en", "cookies.lang.path": "/", "cookies.lang.domain": "127.0.0.1",
                        "cookies.lang.http_only": false, "cookies.lang.expires": null}},
            {"keyword": "http.request", "args": {"url": "/echo"},
             "expect": {"$.body.headers.cookie": {"$contains": "lang=en"}}},
            {"keyword": "http.request", "args": {"url": "/cookies/attrs"},
             "expect": {"cookies.theme": {"$contains": {"value": "dark", "domain": "127.0.0.1", "path": "/cookies", "max_age": 3600,
                                                        "secure": false, "http_only": true, "same_site": "Lax"}},
                        "cookies.theme.expires": {"$regex": "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$"},
                        "cookies.plain.value": "1"}},
            {"keyword": "http.request", "remark": "a cookie of path /cookies stays there",
             "args": {"url": "/echo"}, "expect": {"$.body.headers.cookie": {"$not": {"$contains": "theme"}}}},
            {"keyword": "http.request", "args": {"url": "/cookies/echo"},
             "expect": {"$.body.headers.cookie": {"$contains": "theme=dark"}}},
            {"keyword": "http.request", "remark": "a step sets a cookie",
             "args": {"url": "/echo", "cookies": {"mine": "v1"}},
             "expect": {"$.body.headers.cookie": {"$contains": "mine=v1"}, "cookies.mine.value": "v1"}},
            {"keyword": "http.request", "remark": "and clears the jar",
             "args": {"url": "/echo", "clear_cookies": true},
             "expect": {"$.body.headers.cookie": {"$exists": false}, "cookies": {}}},
            {"keyword": "http.request", "remark": "cookies set on a redirect hop go along",
             "args": {"url": "/cookies/set?hop=1&redirect=/echo"},
             "expect": {"$.body.headers.cookie": "hop=1"}},
            {"keyword": "assert", "args": {"value": "s3ss10n-abcdef"}, "expect": {"value": "never"}}
        ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [
            {"keyword": "http.request", "remark": "another case has its own jar", "args": {"url": "/echo"},
             "expect": {"$.body.headers.cookie": {"$exists": false}}}
        ]
    }));
    let out = p.atf(&["run", "-v"]);
    let r = p.report();
    let a = case(&r, "a");
    let steps = a["steps"].as_array().unwrap();
    for s in &steps[..steps.len() - 1] {
        assert_eq!(s["status"], "passed", "{a:#}\n{}", out.stdout);
    }
    assert_eq!(case(&r, "b")["status"], "passed", "{:#}", case(&r, "b"));
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    for (name, text) in [("stdout", &out.stdout), ("report.json", &report)] {
        assert!(
            !text.contains("s3ss10n-abcdef"),
            "{name} shows the session cookie:\n{text}"
        );
    }
}

#[test]
fn atf_follows_redirects_itself_and_shows_the_chain() {
    let srv = TestServer::start();
    let port = srv.addr.port();
    let other = format!("http://localhost:{port}/echo");
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "t", "envs": {"t": {"resources": {"http": {"default": srv.url()}}}}}),
    );
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/redirect/301?to=%2Fredirect%2F302%3Fto%3D%2Fecho"},
             "expect": {"status": 200, "url": format!("{}/echo", srv.url()),
                        "redirects": [{"status": 301, "location": "/redirect/302?to=/echo", "url": format!("{}/redirect/302?to=/echo", srv.url())},
                                      {"status": 302, "location": "/echo", "url": format!("{}/echo", srv.url())}]}},
            {"keyword": "http.request", "remark": "302 turns POST into GET",
             "args": {"method": "POST", "url": "/redirect/302?to=/echo", "json": {"a": 1}},
             "expect": {"$.body.method": "GET", "$.body.body": "", "$.body.headers.content-type": {"$exists": false}}},
            {"keyword": "http.request", "remark": "303 turns PUT into GET",
             "args": {"method": "PUT", "url": "/redirect/303?to=/echo", "body": "x"},
             "expect": {"$.body.method": "GET"}},
            {"keyword": "http.request", "remark": "307 keeps method and body",
             "args": {"method": "POST", "url": "/redirect/307?to=/echo", "json": {"a": 1}},
             "expect": {"$.body.method": "POST", "$.body.json": {"a": 1}, "redirects[0].status": 307}},
            {"keyword": "http.request", "remark": "308 too",
             "args": {"method": "PATCH", "url": "/redirect/308?to=/echo", "body": "keep"},
             "expect": {"$.body.method": "PATCH", "$.body.body": "keep"}},
            {"keyword": "http.request", "remark": "the same host keeps Authorization",
             "args": {"url": "/redirect/302?to=/echo", "auth": {"bearer": "t0ken-redirect-1"}},
             "expect": {"$.body.headers.authorization": {"$exists": true}}},
            {"keyword": "http.request", "remark": "another host does not get it",
             "args": {"url": "/redirect/302", "query": {"to": other}, "auth": {"bearer": "t0ken-redirect-1"},
                      "headers": {"Cookie": "c=1"}},
             "expect": {"url": other, "$.body.headers.host": format!("localhost:{port}"),
                        "$.body.headers.authorization": {"$exists": false}, "$.body.headers.cookie": {"$exists": false}}},
            {"keyword": "http.request", "remark": "unless the location is trusted",
             "args": {"url": "/redirect/302", "query": {"to": other}, "auth": {"bearer": "t0ken-redirect-1"},
                      "location_trusted": true},
             "expect": {"$.body.headers.authorization": {"$exists": true}}},
            {"keyword": "http.request", "args": {"url": "/redirect/302?to=/echo", "follow_redirects": false},
             "expect": {"status": 302, "redirects": [], "headers.location": "/echo"}}
        ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/redirect/301?to=%2Fredirect%2F302%3Fto%3D%2Fecho", "max_redirects": 1}}
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
    let b = case(&r, "b");
    let err = b["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(err.contains("more than 1 redirects"), "{b:#}");
}

#[test]
fn bodies_go_out_as_multipart_forms_xml_and_raw_bytes() {
    use sha2::Digest as _;
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "t", "envs": {"t": {"resources": {"http": {"default": srv.url()}}}}}),
    );
    p.file("files/note.txt", "a note\n".to_string());
    let bin: Vec<u8> = vec![0, 1, 2, 255, 254, 10, 13];
    std::fs::write(p.join("files/blob.bin"), &bin).unwrap();
    let bin_sha = hex::encode(sha2::Sha256::digest(&bin));
    let all: Vec<u8> = (0..=255u8).collect();
    let all_sha = hex::encode(sha2::Sha256::digest(&all));
    use base64::Engine as _;
    let all_b64 = base64::engine::general_purpose::STANDARD.encode(&all);
    p.file("sub/a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"method": "POST", "url": "/multipart", "multipart": {
                "name": "ann", "tag": ["x", "y"],
                "note": {"file": "../files/note.txt"},
                "blob": {"file": "../files/blob.bin", "filename": "b.dat", "content_type": "application/x-thing"},
                "meta": {"value": "{\"k\":1}", "content_type": "application/json"}}},
             "expect": {"$.body.parts": {"$len": 6},
                "$.body.parts[0]": {"$contains": {"name": "name", "filename": null, "content_type": null, "text": "ann"}},
                "$.body.parts[1]": {"$contains": {"name": "tag", "text": "x"}},
                "$.body.parts[2]": {"$contains": {"name": "tag", "text": "y"}},
                "$.body.parts[3]": {"$contains": {"name": "note", "filename": "note.txt", "content_type": "text/plain", "text": "a note\n"}},
                "$.body.parts[4]": {"$contains": {"name": "blob", "filename": "b.dat", "content_type": "application/x-thing", "size": 7, "sha256": bin_sha}},
                "$.body.parts[5]": {"$contains": {"name": "meta", "content_type": "application/json", "text": "{\"k\":1}"}}}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "form": {"a": ["1", "2"], "b": "x y"}},
             "expect": {"$.body.body": "a=1&a=2&b=x+y"}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "xml": "<a>1</a>"},
             "expect": {"$.body.body": "<a>1</a>", "$.body.headers.content-type": "application/xml"}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "xml": "<a/>", "headers": {"Content-Type": "text/xml"}},
             "expect": {"$.body.headers.content-type": "text/xml"}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/sha256", "body_base64": "AAEC//4KDQ=="},
             "expect": {"$.body.sha256": bin_sha, "$.body.content_type": "application/octet-stream"}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/sha256", "body_hex": "000102 fffe0a0d"},
             "expect": {"$.body.sha256": bin_sha}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/sha256", "body_file": "../files/blob.bin"},
             "expect": {"$.body.sha256": bin_sha, "$.body.size": 7}},
            {"keyword": "http.request", "remark": "a binary response is kept whole",
             "args": {"url": "/bytes"},
             "expect": {"body": null, "body_base64": all_b64, "size": 256, "sha256": all_sha}},
            {"keyword": "http.request", "args": {"url": "/text"},
             "expect": {"body": "hello", "size": 5, "body_base64": {"$exists": false},
                        "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}}
        ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [ {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "xml": "<a/>", "json": {}}} ]
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
    let b = case(&r, "b");
    let err = b["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("give only one body") && err.contains("`xml`"),
        "{b:#}"
    );
}

#[test]
fn results_carry_every_header_value_the_version_and_the_duration() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/multi-header", srv.url())},
             "expect": {"headers.x-multi": "a, b", "header_list.x-multi": ["a", "b"],
                        "header_list.content-type": ["text/plain; charset=utf-8"],
                        "http_version": "HTTP/1.1", "duration_ms": {"$type": "integer"}, "elapsed_ms": {"$type": "integer"}}}
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
fn transport_options_choose_the_version_the_proxy_and_limits() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()), "http_version": "2"},
             "expect": {"http_version": "HTTP/2", "$.body.version": "HTTP/2.0"}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()), "http_version": "1.0"},
             "expect": {"$.body.version": "HTTP/1.0"}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()), "http_version": "1.1", "connect_timeout": "5s"},
             "expect": {"http_version": "HTTP/1.1", "$.body.version": "HTTP/1.1"}},
            {"keyword": "http.request", "remark": "a name only the proxy can reach",
             "args": {"url": "http://atf-proxy-test.invalid/echo", "proxy": srv.url()},
             "expect": {"status": 200, "$.body.headers.host": "atf-proxy-test.invalid"}}
        ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [ {"keyword": "http.request", "args": {"url": "http://atf-proxy-test.invalid/echo"}} ]
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
    assert_eq!(case(&r, "b")["status"], "error", "{:#}", case(&r, "b"));
}

#[test]
fn digest_auth_answers_the_challenge_and_keeps_the_password_secret() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/digest", srv.url()),
                "auth": {"digest": {"user": "ada", "password": "d1gest-pa55"}}},
             "expect": {"status": 200, "$.body.user": "ada", "$.body.uri": "/digest"}},
            {"keyword": "http.request", "args": {"url": format!("{}/digest", srv.url()),
                "auth": {"digest": {"user": "ada", "password": "wr0ng-pa55"}}},
             "expect": {"status": 401}},
            {"keyword": "assert", "args": {"value": "d1gest-pa55"}, "expect": {"value": "never"}}
        ]
    }));
    let out = p.atf(&["run", "-v"]);
    let r = p.report();
    let a = case(&r, "a");
    assert_eq!(a["steps"][0]["status"], "passed", "{a:#}\n{}", out.stdout);
    assert_eq!(a["steps"][1]["status"], "passed", "{a:#}");
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    for text in [&out.stdout, &report] {
        assert!(!text.contains("d1gest-pa55"), "{text}");
    }
}

#[test]
fn header_names_may_hold_placeholders_and_check_knows_them() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "vars": {"tenant": "acme", "auth": "Authorization", "token": "n4me-made-t0ken"},
        "steps": [
            {"keyword": "log", "remark": "shows the token before the step that sends it runs",
             "args": {"message": "about to send ${token}"}},
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()),
                "headers": {"X-${tenant}-Id": "7", "${auth}": "Bearer ${token}", "X-Plain": "1"}},
             "expect": {"$.body.headers.x-acme-id": "7", "$.body.headers.x-plain": "1",
                        "$.body.headers.authorization": "Bearer n4me-made-t0ken"}}
        ]
    }));
    let out = p.atf(&["run", "-v"]);
    let r = p.report();
    assert_eq!(
        case(&r, "a")["status"],
        "passed",
        "{:#}\n{}",
        case(&r, "a"),
        out.stdout
    );
    // Masked like a literal `Authorization`, from before the run starts: in
    // the live event stream and the console too.
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    let events = std::fs::read_to_string(p.join("atf-report/events.jsonl")).unwrap();
    for (name, text) in [
        ("report.json", &report),
        ("events.jsonl", &events),
        ("stdout", &out.stdout),
    ] {
        assert!(!text.contains("n4me-made-t0ken"), "{name}: {text}");
    }
    assert!(events.contains("about to send ***"), "{events}");

    let q = Project::new();
    let out = check_refuses(
        &q,
        json!({"url": "http://127.0.0.1:9/x", "headers": {"X-${nope}": "1"}}),
    );
    assert!(
        out.stdout.contains("nope") || out.stderr.contains("nope"),
        "{out:?}"
    );
    let out = check_refuses(
        &q,
        json!({"url": "http://127.0.0.1:9/x", "headers": {"X-${": "1"}}),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("header name") && text.contains("b.case.json:"),
        "{text}"
    );
}

#[test]
fn step_headers_replace_the_resources_by_default_or_go_after_them() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "atf.json",
        json!({
            "default_env": "t",
            "envs": {"t": {"resources": {"http": {
                "default": {"base_url": srv.url(), "headers": {"X-Team": "orders", "X-Keep": "k"}}
            }}}}
        }),
    );
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "remark": "replace: the name is compared without regard to case",
             "args": {"url": "/echo", "headers": {"x-team": "payments"}},
             "expect": {"$.body.headers.x-team": "payments", "$.body.headers.x-keep": "k"}},
            {"keyword": "http.request", "remark": "append: the resource's value first, then the step's",
             "args": {"url": "/echo", "header_mode": "append", "headers": {"X-TEAM": ["payments", "audit"]}},
             "expect": {"$.body.headers.x-team": "orders, payments, audit", "$.body.headers.x-keep": "k"}},
            {"keyword": "http.request", "remark": "no step headers: the resource's alone",
             "args": {"url": "/echo", "header_mode": "append"},
             "expect": {"$.body.headers.x-team": "orders"}}
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

    let q = Project::new();
    let out = check_refuses(
        &q,
        json!({"url": "http://127.0.0.1:9/x", "header_mode": "prepend"}),
    );
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains("prepend") && text.contains("b.case.json:"),
        "{text}"
    );
}

#[test]
fn a_suite_cookie_jar_is_shared_by_its_cases_only_when_asked() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "t", "envs": {"t": {"resources": {"http": {
            "default": srv.url(),
            "shared": {"base_url": srv.url(), "cookie_jar": "suite"}
        }}}}}),
    );
    p.file("shop/suite.json", json!({
        "prepare": [ {"keyword": "http.request", "args": {"url": "/cookies/set?prep=p1", "cookie_jar": "suite"}} ]
    }));
    p.file("shop/a1.case.json", json!({
        "name": "a1 sets",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/cookies/set?sid=s1", "cookie_jar": "suite"},
             "expect": {"cookies.sid.value": "s1", "cookies.prep.value": "p1"}},
            {"keyword": "http.request", "args": {"url": "/cookies/set?own=o1"}}
        ]
    }));
    p.file("shop/a2.case.json", json!({
        "name": "a2 asks",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/echo", "cookie_jar": "suite"},
             "expect": {"$.body.headers.cookie": {"$contains": "sid=s1"}}},
            {"keyword": "http.request", "remark": "and through a resource whose default is the suite's jar",
             "args": {"url": "/echo", "resource": "shared"},
             "expect": {"$.body.headers.cookie": {"$contains": "prep=p1"}}},
            {"keyword": "http.request", "remark": "the other case's own jar stayed its own",
             "args": {"url": "/echo", "cookie_jar": "suite"},
             "expect": {"$.body.headers.cookie": {"$not": {"$contains": "own="}}}}
        ]
    }));
    p.file("shop/a3.case.json", json!({
        "name": "a3 does not ask",
        "steps": [
            {"keyword": "http.request", "args": {"url": "/echo"},
             "expect": {"$.body.headers.cookie": {"$exists": false}}},
            {"keyword": "http.request", "args": {"url": "/echo", "resource": "shared", "cookie_jar": "case"},
             "expect": {"$.body.headers.cookie": {"$exists": false}}}
        ]
    }));
    p.file(
        "z.case.json",
        json!({
            "name": "z under no suite",
            "steps": [
                {"keyword": "http.request", "args": {"url": "/echo", "cookie_jar": "suite"},
                 "expect": {"$.body.headers.cookie": {"$exists": false}}}
            ]
        }),
    );
    let out = p.atf(&["run", "--jobs", "1"]);
    let r = p.report();
    for name in ["a1 sets", "a2 asks", "a3 does not ask", "z under no suite"] {
        assert_eq!(
            case(&r, name)["status"],
            "passed",
            "{name}: {:#}\n{}",
            case(&r, name),
            out.stdout
        );
    }

    check_refuses(
        &Project::new(),
        json!({"url": "http://127.0.0.1:9/x", "cookie_jar": "run"}),
    );
}

#[test]
fn results_carry_timings_and_a_reused_connection_reports_no_connect() {
    let srv = TestServer::start();
    let p = Project::new();
    // `localhost`, so that the name is looked up.
    let url = format!("http://localhost:{}/echo", srv.addr.port());
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "remark": "a new connection",
             "args": {"url": url},
             "expect": {"timings.dns_ms": {"$gt": 0}, "timings.connect_ms": {"$gt": 0}, "timings.tls_ms": 0,
                        "timings.first_byte_ms": {"$gt": 0}, "timings.total_ms": {"$gt": 0}}},
            {"keyword": "http.request", "remark": "the same connection, kept alive",
             "args": {"url": url},
             "expect": {"timings.dns_ms": 0, "timings.connect_ms": 0, "timings.tls_ms": 0,
                        "timings.first_byte_ms": {"$gt": 0}, "timings.total_ms": {"$type": "number"}}}
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
    // Every new argument and the new result field are documented.
    let keywords = p.atf(&["keywords"]);
    for word in [
        "- header_mode (string)",
        "- cookie_jar (string)",
        "`timings`",
    ] {
        assert!(
            keywords.stdout.contains(word),
            "{word}: {}",
            keywords.stdout
        );
    }
    let schema: serde_json::Value =
        serde_json::from_str(&p.atf(&["schema"]).stdout).expect("schema is JSON");
    let args = &schema["$defs"]["args:http.request"]["properties"];
    for arg in ["header_mode", "cookie_jar"] {
        assert!(args.get(arg).is_some(), "{arg}: {args:#}");
    }
}

#[test]
fn a_forward_proxy_carries_the_request_and_digest_auth_speaks_sha_256() {
    let srv = TestServer::start();
    let proxy = crate::server::start_proxy();
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "http.request", "args": {"url": format!("{}/echo", srv.url()), "proxy": format!("http://{proxy}")},
             "expect": {"status": 200, "$.body.headers.via": "1.1 atf-test-proxy"}},
            {"keyword": "http.request", "remark": "without the proxy",
             "args": {"url": format!("{}/echo", srv.url())},
             "expect": {"$.body.headers.via": {"$exists": false}}},
            {"keyword": "http.request", "args": {"url": format!("{}/digest/sha-256", srv.url()),
                "auth": {"digest": {"user": "ada", "password": "d1gest-pa55"}}},
             "expect": {"status": 200, "$.body.user": "ada", "$.body.algorithm": "SHA-256"}}
        ]
    }));
    let out = p.atf(&["run", "-v"]);
    let r = p.report();
    assert_eq!(
        case(&r, "a")["status"],
        "passed",
        "{:#}\n{}",
        case(&r, "a"),
        out.stdout
    );
    let report = std::fs::read_to_string(p.join("atf-report/report.json")).unwrap();
    assert!(!report.contains("d1gest-pa55"), "{report}");
}

/// A listener nobody accepts from, its accept queue filled: the kernel drops
/// the next connection's SYN, so connecting to it hangs. The listener and
/// the connections that filled it (keep them until the test ends).
fn full_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut held = Vec::new();
    for _ in 0..5000 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => return (listener, held),
        }
    }
    panic!("the accept queue of {addr} never filled");
}

#[test]
fn connect_timeout_fails_a_connection_that_never_completes_and_points_at_the_step() {
    let (listener, _held) = full_listener();
    let port = listener.local_addr().unwrap().port();
    let p = Project::new();
    p.file(
        "c.case.json",
        format!(
            "{{\n  \"name\": \"c\",\n  \"steps\": [\n    {{\"keyword\": \"http.request\",\n     \"args\": {{\"url\": \"http://127.0.0.1:{port}/\", \"connect_timeout\": \"300ms\"}},\n     \"timeout\": \"30s\"}}\n  ]\n}}\n"
        ),
    );
    let out = p.atf(&["run"]);
    let r = p.report();
    let step = &case(&r, "c")["steps"][0];
    assert_eq!(step["status"], "error", "{step:#}\n{}", out.stdout);
    let error = step["error"].as_str().unwrap_or_default().to_string()
        + case(&r, "c")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!(
            "cannot connect to http://127.0.0.1:{port}/ within `connect_timeout` (300 ms)"
        )),
        "{step:#}"
    );
    // The connection timed out, not the step: the error points at the keyword.
    assert_eq!(step["location"]["line"], 4, "{step:#}");
}

/// `atf check` of a case `b` whose one step is `http.request` with `args`,
/// in `q`: it must refuse it; what it printed.
fn check_refuses(q: &Project, args: serde_json::Value) -> crate::util::Output {
    q.file(
        "b.case.json",
        json!({"name": "b", "steps": [ {"keyword": "http.request", "args": args} ]}),
    );
    let out = q.atf(&["check"]);
    assert_ne!(out.code, 0, "{out:?}");
    out
}
