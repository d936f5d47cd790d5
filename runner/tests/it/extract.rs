//! Checking and saving from XML, HTML and text bodies (`$xpath`, `save`
//! with `regex` or `xpath`) and dates (`$before`, `$after`, `$within`),
//! through the binary against the test server.

use serde_json::json;

use crate::server::TestServer;
use crate::util::{Project, case};

const ORDER: &str = r#"<?xml version="1.0"?><order id="42"><status>PAID</status><item>1</item><item>2</item></order>"#;
const PAGE: &str = "<!doctype html><title>Order 42</title><p class=total>Total: <b>19.90</b>";

#[test]
fn xpath_and_regex_check_and_save_from_bodies_and_dates_are_compared() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", json!({"default_env": "t", "envs": {"t": {"resources": {"http": {"default": format!("{}/echo", srv.url())}}}}}));
    p.file("x.case.json", json!({
        "name": "x",
        "steps": [
            {"keyword": "http.request", "args": {"method": "POST", "url": "/o", "body": ORDER, "headers": {"content-type": "application/xml"}},
             "expect": {
                 "$.body.body": {"$xpath": {"/order/status": "PAID", "count(//item)": {"$gte": 2}}},
                 "headers.date": {"$within": "1m", "$before": "+1s", "$after": "-1d"}
             },
             "save": {
                 "orderId": {"from": "$.body.body", "xpath": "/order/@id"},
                 "status": {"from": "$.body.body", "regex": "<status>(\\w+)</status>"}
             }},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/p", "body": PAGE},
             "expect": {"$.body.body": {"$xpath": {"string(//title)": "Order 42"}}},
             "save": {"total": {"from": "$.body.body", "xpath": "//p[@class='total']/b"}}},
            {"keyword": "http.request", "args": {"method": "POST", "url": "/r", "body": "${orderId}-${status}-${total}"},
             "expect": {"$.body.body": "42-PAID-19.90"}}
        ]
    }));
    let out = p.atf(&["run"]);
    let r = p.report();
    assert_eq!(
        case(&r, "x")["status"],
        "passed",
        "{:#}\n{}",
        case(&r, "x"),
        out.stdout
    );
}

#[test]
fn an_extraction_that_finds_nothing_fails_the_step_at_its_save_entry() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", json!({"default_env": "t", "envs": {"t": {"resources": {"http": {"default": format!("{}/echo", srv.url())}}}}}));
    p.file(
        "n.case.json",
        "{\n  \"name\": \"n\",\n  \"steps\": [\n    {\"keyword\": \"http.request\", \"args\": {\"method\": \"POST\", \"url\": \"/n\", \"body\": \"order=\"},\n     \"save\": {\"no\": {\"from\": \"$.body.body\", \"regex\": \"order=(\\\\w+)\"}}}\n  ]\n}\n",
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r = p.report();
    let step = &case(&r, "n")["steps"][0];
    assert_eq!(step["status"], "failed", "{step:#}");
    let f = &step["failures"][0];
    assert_eq!(
        f["message"], "save `no`: /order=(\\w+)/ does not match \"order=\"",
        "{f:#}"
    );
    assert_eq!(f["location"]["line"], 5, "{f:#}");
    assert!(out.stdout.contains("n.case.json:5:"), "{}", out.stdout);
}

#[test]
fn malformed_extractions_and_matchers_are_load_errors_with_their_position() {
    let p = Project::new();
    p.file(
        "bad.case.json",
        "{\n  \"name\": \"bad\",\n  \"steps\": [\n    {\"keyword\": \"log\", \"args\": {\"message\": \"x\"},\n     \"expect\": {\"$.m\": {\"$xpath\": {\"//a[\": 1}}, \"$.d\": {\"$before\": \"yesterday\"}},\n     \"save\": {\"a\": {\"xpath\": \"//a[\"}, \"b\": {\"regex\": \"(\"}, \"c\": {\"from\": \"$.m\"}, \"d\": {\"regex\": \"x\", \"grep\": 1}}}\n  ]\n}\n",
    );
    let out = p.atf(&["check"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    for needle in [
        "bad.case.json:5:",
        "$xpath: xpath `//a[` does not parse",
        "$before: `yesterday` is not a date",
        "bad.case.json:6:",
        "`save.a`: xpath `//a[` does not parse",
        "`save.b.regex` does not compile: unclosed group",
        "`save.c` needs one of `regex` and `xpath`",
        "grep",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}
