//! The report files of a real run, read by what reads them in practice:
//! `report.json` against the fields SPEC §8 lists, `junit.xml` through
//! Python's `junitparser`, `index.html` rendered by headless Chromium (both
//! installed by `scripts/test-deps.sh`; a missing one fails the test).
//!
//! The run: two folders; a passed case with prepare and cleanup steps, a
//! data-driven case with two rows and a failed HTTP step whose response
//! holds `<script>` in `orders/`; a file that does not parse and a case
//! skipped by `--fail-fast --jobs 1` in `users/`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::TestServer;
use crate::tools::{chromium_command, read_with_junitparser, run_with_limit};
use crate::util::{Project, case, project_file};

/// What the service sends back, and must stay text in every report.
const HOSTILE: &str = "<script>alert(1)</script><b id=\"pwned\">bold</b>";

/// The cases of the run, in report order: name, file, status.
const CASES: [(&str, &str, &str); 6] = [
    ("order paid", "orders/paid.case.json", "passed"),
    ("qty[0]", "orders/qty.case.json", "passed"),
    ("qty[1]", "orders/qty.case.json", "passed"),
    ("wrong total", "orders/wrong.case.json", "failed"),
    ("broken", "users/broken.case.json", "error"),
    ("login", "users/login.case.json", "skipped"),
];

fn sample(srv: &TestServer) -> Project {
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file(
        "orders/paid.case.json",
        json!({
            "name": "order paid",
            "tags": ["order", "smoke"],
            "prepare": [ {"keyword": "log", "args": {"message": "before"}} ],
            "steps": [ {"keyword": "assert", "remark": "the total", "args": {"value": 12.5}, "expect": {"value": 12.5}} ],
            "cleanup": [ {"keyword": "log", "args": {"message": "after"}} ]
        }),
    );
    p.file(
        "orders/qty.case.json",
        json!({
            "name": "qty",
            "tags": ["order"],
            "data": [ {"qty": 1}, {"qty": 2} ],
            "steps": [ {"keyword": "assert", "args": {"value": "${qty}"}, "expect": {"value": {"$in": [1, 2]}}} ]
        }),
    );
    p.file(
        "orders/wrong.case.json",
        json!({
            "name": "wrong total",
            "tags": ["order"],
            "steps": [
                {"keyword": "http.request", "remark": "post the order page",
                 "args": {"method": "POST", "url": "/echo", "body": HOSTILE},
                 "expect": {"status": 200, "$.body.body": "paid"}}
            ]
        }),
    );
    p.file(
        "users/broken.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"log\",}\n  ]\n}",
    );
    p.file(
        "users/login.case.json",
        json!({
            "name": "login",
            "tags": ["users"],
            "steps": [ {"keyword": "log", "args": {"message": "never runs"}} ]
        }),
    );
    p
}

/// Runs the sample one case at a time with `--fail-fast`: everything after
/// the failed case is skipped, except the broken file, which is an error.
fn run_sample() -> (TestServer, Project) {
    let srv = TestServer::start();
    let p = sample(&srv);
    let out = p.atf(&["run", "--jobs", "1", "--fail-fast"]);
    assert_eq!(out.code, 1, "{out:?}");
    (srv, p)
}

#[test]
fn report_json_has_every_field_the_spec_lists() {
    let (_srv, p) = run_sample();
    let r = p.report();

    let s = &r["summary"];
    for (key, n) in [
        ("total", 6),
        ("passed", 3),
        ("failed", 1),
        ("errored", 1),
        ("skipped", 1),
    ] {
        assert_eq!(s[key], n, "summary.{key}: {s:#}");
    }
    assert!(s["duration_ms"].is_u64(), "summary.duration_ms: {s:#}");

    let cases = r["cases"].as_array().expect("cases is a list");
    let got: Vec<(&str, &str, &str)> = cases
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("?"),
                c["file"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(got, CASES, "one case per data row and per broken file");

    for c in cases {
        for key in ["name", "file", "tags", "status", "duration_ms", "error"] {
            assert!(c.get(key).is_some(), "case without `{key}`: {c:#}");
        }
        assert!(c["tags"].is_array() && c["duration_ms"].is_u64(), "{c:#}");
        for phase in ["prepare", "steps", "cleanup"] {
            let steps = c[phase]
                .as_array()
                .unwrap_or_else(|| panic!("case without `{phase}` list: {c:#}"));
            for st in steps {
                for key in [
                    "keyword",
                    "status",
                    "attempts",
                    "duration_ms",
                    "args",
                    "result",
                ] {
                    assert!(
                        st.get(key).is_some(),
                        "{phase} step without `{key}`: {st:#}"
                    );
                }
            }
        }
    }

    // Steps sit in their phase, with their remark.
    let paid = case(&r, "order paid");
    assert_eq!(paid["tags"], json!(["order", "smoke"]));
    assert_eq!(paid["error"], Value::Null);
    assert_eq!(paid["prepare"][0]["keyword"], "log");
    assert_eq!(paid["steps"][0]["keyword"], "assert");
    assert_eq!(paid["steps"][0]["remark"], "the total");
    assert_eq!(paid["steps"][0]["status"], "passed");
    assert_eq!(paid["steps"][0]["attempts"], 1);
    assert_eq!(paid["cleanup"][0]["keyword"], "log");
    assert_eq!(paid["cleanup"][0]["result"]["message"], "after");

    // Arguments are the resolved ones: each row its own value.
    assert_eq!(case(&r, "qty[0]")["steps"][0]["args"], json!({"value": 1}));
    assert_eq!(case(&r, "qty[1]")["steps"][0]["args"], json!({"value": 2}));

    // The failed step: arguments, the service's answer, and the failure.
    let wrong = case(&r, "wrong total");
    let step = &wrong["steps"][0];
    assert_eq!(step["keyword"], "http.request");
    assert_eq!(step["remark"], "post the order page");
    assert_eq!(step["status"], "failed");
    assert!(step["duration_ms"].is_u64(), "{step:#}");
    assert_eq!(step["args"]["body"], HOSTILE);
    assert_eq!(step["result"]["status"], 200);
    assert_eq!(step["result"]["body"]["body"], HOSTILE, "{step:#}");
    let failures = step["failures"].as_array().expect("failures is a list");
    assert_eq!(failures.len(), 1, "{step:#}");
    let f = failures[0].as_object().unwrap();
    let mut keys: Vec<&str> = f.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["actual", "expected", "location", "message", "path"]);
    assert_eq!(f["path"], "$.body.body");
    assert!(
        f["location"]["line"].as_u64().is_some_and(|l| l > 0),
        "{f:?}"
    );
    assert!(
        f["location"]["file"]
            .as_str()
            .is_some_and(|p| p.ends_with(".case.json")),
        "{f:?}"
    );
    assert_eq!(f["expected"], "paid");
    assert_eq!(f["actual"], HOSTILE);
    assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        wrong["error"]
            .as_str()
            .is_some_and(|e| e.contains("step 1")),
        "{wrong:#}"
    );

    let broken = case(&r, "broken");
    let err = broken["error"].as_str().unwrap_or("");
    assert!(
        err.contains("users/broken.case.json:3:") && err.contains("invalid JSON"),
        "{err}"
    );
    let login = case(&r, "login");
    assert!(
        login["error"]
            .as_str()
            .is_some_and(|e| e.contains("fail-fast")),
        "{login:#}"
    );
}

#[test]
fn case_files_are_relative_to_the_working_directory() {
    let srv = TestServer::start();
    let p = sample(&srv);

    // Absolute paths on the command line: still relative in the report.
    let orders = p.join("orders");
    let users = p.join("users");
    let out = p.atf(&[
        "run",
        orders.to_str().unwrap(),
        users.to_str().unwrap(),
        "--report-dir",
        "abs",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = p.report_in("abs");
    let files: Vec<&str> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = CASES.iter().map(|c| c.1).collect();
    assert_eq!(files, want);

    // From inside a folder: relative to that folder.
    let out = p
        .command(&["run", ".", "--report-dir", "../inner"])
        .current_dir(&orders)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let r = p.report_in("inner");
    let files: Vec<&str> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "paid.case.json",
            "qty.case.json",
            "qty.case.json",
            "wrong.case.json"
        ]
    );
}

// ---------------------------------------------------------------- junit.xml

#[test]
fn junit_xml_has_a_suite_per_folder_and_a_testcase_per_case() {
    let (_srv, p) = run_sample();
    let doc = read_with_junitparser(&p.join("atf-report/junit.xml"));

    assert_eq!(
        (
            &doc["tests"],
            &doc["failures"],
            &doc["errors"],
            &doc["skipped"]
        ),
        (&json!(6), &json!(1), &json!(1), &json!(1)),
        "{doc:#}"
    );
    let suites = doc["suites"].as_array().unwrap();
    let layout: Vec<(&str, Vec<&str>)> = suites
        .iter()
        .map(|s| {
            let names = s["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            (s["name"].as_str().unwrap(), names)
        })
        .collect();
    assert_eq!(
        layout,
        [
            (
                "orders",
                vec!["order paid", "qty[0]", "qty[1]", "wrong total"]
            ),
            ("users", vec!["broken", "login"]),
        ],
        "{doc:#}"
    );
    let counts = |s: &Value| {
        [
            s["tests"].clone(),
            s["failures"].clone(),
            s["errors"].clone(),
            s["skipped"].clone(),
        ]
    };
    assert_eq!(counts(&suites[0]), [json!(4), json!(1), json!(0), json!(0)]);
    assert_eq!(counts(&suites[1]), [json!(2), json!(0), json!(1), json!(1)]);

    let testcase = |suite: usize, name: &str| -> Value {
        suites[suite]["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no testcase {name}"))
    };
    for name in ["order paid", "qty[0]", "qty[1]"] {
        assert_eq!(testcase(0, name)["results"], json!([]), "{name} passed");
    }

    let wrong = testcase(0, "wrong total");
    let results = wrong["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{wrong:#}");
    assert_eq!(results[0]["kind"], "Failure");
    let message = results[0]["message"].as_str().unwrap_or("");
    let body = results[0]["text"].as_str().unwrap_or("");
    let both = format!("{message}\n{body}");
    assert!(both.contains("post the order page"), "the remark: {both}");
    assert!(both.contains("expected: \"paid\""), "expected: {both}");
    let actual = both
        .lines()
        .find(|l| l.trim_start().starts_with("actual:"))
        .unwrap_or_else(|| panic!("no actual: line in {both}"));
    assert!(
        actual.contains("<script>alert(1)</script>"),
        "the actual value, as text: {actual}"
    );
    assert!(message.contains("$.body.body"), "{message}");

    let broken = testcase(1, "broken");
    let results = broken["results"].as_array().unwrap();
    assert_eq!(results[0]["kind"], "Error", "{broken:#}");
    assert!(
        results[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid JSON")),
        "{broken:#}"
    );
    let login = testcase(1, "login");
    assert_eq!(login["results"][0]["kind"], "Skipped", "{login:#}");
}

// --------------------------------------------------------------- index.html

/// The DOM of `page` (with `fragment` after `#`) once its script ran.
fn dump_dom(page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}#{fragment}", page.display());
    let mut cmd = chromium_command(profile.path());
    cmd.args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url);
    let out = run_with_limit(&mut cmd, Duration::from_secs(90))
        .expect("chromium starts")
        .unwrap_or_else(|| panic!("chromium did not finish within 90 s for {url}"));
    assert!(
        out.status.success(),
        "chromium failed for {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("</html>"), "no DOM from chromium: {dom}");
    dom
}

/// The opening tags of the rendered case elements.
fn case_tags(dom: &str) -> Vec<&str> {
    dom.match_indices("<details")
        .filter_map(|(i, _)| dom[i..].find('>').map(|end| &dom[i..i + end + 1]))
        .filter(|tag| tag.contains("data-case=\""))
        .collect()
}

/// The `data-status` of every case element that is not hidden.
fn visible_statuses(dom: &str) -> Vec<String> {
    case_tags(dom)
        .iter()
        .filter(|t| !t.contains(" hidden"))
        .filter_map(|t| {
            let at = t.find("data-status=\"")? + "data-status=\"".len();
            let len = t[at..].find('"')?;
            Some(t[at..at + len].to_string())
        })
        .collect()
}

#[test]
fn index_html_shows_every_case_filters_by_status_and_keeps_service_html_as_text() {
    let (_srv, p) = run_sample();
    let page = p.join("atf-report/index.html");
    let cases = p.report()["cases"].as_array().unwrap().len();
    assert_eq!(cases, CASES.len());

    let dom = dump_dom(&page, "");
    assert_eq!(case_tags(&dom).len(), cases, "one element per case");
    let all: Vec<&str> = CASES.iter().map(|c| c.2).collect();
    assert_eq!(visible_statuses(&dom), all, "no filter: every case shown");
    assert!(dom.contains(&format!("{cases} cases")), "the count shown");

    let dom = dump_dom(&page, "status=failed");
    assert_eq!(visible_statuses(&dom), ["failed"]);
    assert!(dom.contains(&format!("1 of {cases} cases shown")));

    // The failed case opened: the service's answer is shown, as text.
    let dom = dump_dom(&page, "status=failed&expand=1");
    assert_eq!(visible_statuses(&dom), ["failed"]);
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b id=";
    let result = dom
        .find(">result<")
        .map(|at| &dom[at..])
        .unwrap_or_else(|| panic!("the failed step's result is not shown: {dom}"));
    let result = &result[..result.find("</pre>").unwrap_or(result.len())];
    assert!(
        result.contains(escaped),
        "the response body is rendered as text: {result}"
    );
    assert!(dom.contains("post the order page"), "the step's remark");
    assert!(
        !dom.contains("<script>alert"),
        "a <script> element was made"
    );
    assert!(!dom.contains("<b id="), "service markup became an element");
    assert_eq!(
        dom.matches("<script").count(),
        2,
        "only the page's data and app scripts"
    );
}
