//! The case flow: prepare → steps → undo → cleanup, saves, retry,
//! timeouts, parallel step sets, data rows, locks, suites.

use serde_json::json;

use crate::server::TestServer;
use crate::util::{Project, case, project_file};

fn ev(msg: &str) -> serde_json::Value {
    json!({"keyword": "http.request", "args": {"method": "POST", "url": "/events", "body": msg}})
}

#[test]
fn prepare_failure_skips_steps_and_cleanup_still_runs() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("a.case.json", json!({
        "name": "a",
        "prepare": [ ev("prep1"), {"keyword": "http.request", "remark": "bad status", "args": {"url": "/status/500"}, "expect": {"status": 200}}, ev("prep3") ],
        "steps": [ ev("step1") ],
        "cleanup": [ ev("clean1"), {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}}, ev("clean3") ]
    }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(srv.events(), vec!["prep1", "clean1", "clean3"]);
    let r = p.report();
    let c = case(&r, "a");
    assert_eq!(c["status"], "failed");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .starts_with("prepare failed at step 2"),
        "{c:#}"
    );
    assert_eq!(c["prepare"][1]["failures"][0]["path"], "status");
    assert_eq!(c["prepare"][1]["failures"][0]["expected"], 200);
    assert_eq!(c["prepare"][1]["failures"][0]["actual"], 500);
    assert_eq!(c["prepare"][2]["status"], "skipped");
    assert_eq!(c["steps"][0]["status"], "skipped");
    assert!(
        out.stdout.contains("bad status"),
        "remark shown: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("expected: 200") && out.stdout.contains("actual:   500"),
        "{}",
        out.stdout
    );
    assert_eq!(out.last_line(), "0 passed, 1 failed, 0 skipped");
}

#[test]
fn failed_step_stops_its_set_and_undo_runs_newest_first_before_cleanup() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    let mut s1 = ev("insert1");
    s1["undo"] = ev("undo1");
    s1["save"] = json!({"st": "$.status"});
    let mut s2 = ev("insert2");
    s2["undo"] = json!({"keyword": "http.request", "args": {"method": "POST", "url": "/events", "body": "undo2 saw ${st}"}});
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [ s1, s2, {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 2}}, ev("never") ],
        "cleanup": [ {"keyword": "http.request", "args": {"url": "/status/500"}, "expect": {"status": 200}}, ev("clean2") ]
    }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        srv.events(),
        vec!["insert1", "insert2", "undo2 saw 204", "undo1", "clean2"]
    );
    let r = p.report();
    let c = case(&r, "a");
    assert!(
        c["error"].as_str().unwrap().starts_with("failed at step 3"),
        "{c:#}"
    );
    assert_eq!(c["cleanup"][0]["undo"], true);
    assert_eq!(c["cleanup"][2]["status"], "failed");
}

#[test]
fn failed_cleanup_fails_a_passing_case() {
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ],
        "cleanup": [ {"keyword": "exec", "args": {"shell": "exit 3"}, "expect": {"exit_code": 0}} ]
    }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    let c = case(&r, "a");
    assert_eq!(c["status"], "failed");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("cleanup failed at cleanup step 1"),
        "{c:#}"
    );
}

#[test]
fn save_only_when_expectations_hold_and_values_flow_to_later_steps() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("a.case.json", json!({
        "name": "a",
        "vars": {"who": "ann"},
        "steps": [
            {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "json": {"user": "${who}", "n": 3}},
             "expect": {"status": 200, "$.body.json.n": {"$gte": 3}}, "save": {"echoed": "$.body.json.user", "n": "$.body.json.n"}},
            {"keyword": "assert", "args": {"value": "${n}"}, "expect": {"value": 3}},
            {"keyword": "http.request", "args": {"url": "/echo?u=${echoed}"}, "expect": {"$.body.query.u": "ann"}}
        ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [
            {"keyword": "assert", "args": {"value": 5}, "expect": {"value": 6}, "save": {"x": "$.value"}},
        ],
        "cleanup": [ {"keyword": "log", "args": {"message": "x is ${x}"}} ]
    }));
    let out = p.atf(&["run"]);
    let r = p.report();
    assert_eq!(case(&r, "a")["status"], "passed", "{out:?}");
    let b = case(&r, "b");
    assert_eq!(b["cleanup"][0]["status"], "error");
    assert!(
        b["cleanup"][0]["error"]
            .as_str()
            .unwrap()
            .contains("undefined name `x`"),
        "{b:#}"
    );
}

#[test]
fn retry_polls_until_expectations_hold_and_records_attempts() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [ {"keyword": "http.request", "args": {"method": "POST", "url": "/counter/r1"},
                    "expect": {"$.body.n": {"$gte": 3}}, "retry": {"times": 5, "interval": "10ms"}} ]
    }));
    p.file("b.case.json", json!({
        "name": "b",
        "steps": [ {"keyword": "http.request", "remark": "never enough", "args": {"method": "POST", "url": "/counter/r2"},
                    "expect": {"$.body.n": {"$gte": 100}}, "retry": {"times": 4, "interval": 5}} ]
    }));
    let out = p.atf(&["run"]);
    let r = p.report();
    let a = case(&r, "a");
    assert_eq!(a["status"], "passed", "{out:?}");
    assert_eq!(a["steps"][0]["attempts"], 3);
    let b = case(&r, "b");
    assert_eq!(b["status"], "failed");
    assert_eq!(b["steps"][0]["attempts"], 4);
    assert_eq!(b["steps"][0]["failures"].as_array().unwrap().len(), 1);
    assert_eq!(b["steps"][0]["failures"][0]["actual"], 4);
    assert_eq!(srv.counter("r2"), 4);
    assert!(out.stdout.contains("(after 4 attempts)"), "{}", out.stdout);
}

#[test]
fn step_timeout_and_case_timeout_fail_and_cleanup_runs() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("a.case.json", json!({
        "name": "step-timeout",
        "steps": [ {"keyword": "http.request", "args": {"url": "/delay/3000"}, "timeout": "200ms"} ],
        "cleanup": [ ev("cleanup-a") ]
    }));
    p.file("b.case.json", json!({
        "name": "case-timeout",
        "timeout": "300ms",
        "steps": [ {"keyword": "sleep", "args": {"duration": "100ms"}}, {"keyword": "sleep", "args": {"duration": "100ms"}},
                   {"keyword": "sleep", "args": {"duration": "100ms"}}, {"keyword": "sleep", "args": {"duration": "100ms"}},
                   {"keyword": "sleep", "args": {"duration": "100ms"}} ],
        "cleanup": [ ev("cleanup-b") ]
    }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    let a = case(&r, "step-timeout");
    assert_eq!(a["status"], "error");
    assert!(
        a["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{a:#}"
    );
    let b = case(&r, "case-timeout");
    assert_eq!(b["status"], "error");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .contains("case timed out after 300ms"),
        "{b:#}"
    );
    let mut events = srv.events();
    events.sort();
    assert_eq!(events, vec!["cleanup-a", "cleanup-b"]);
}

#[test]
fn a_keyword_that_gives_up_at_the_step_timeout_points_at_the_timeout_field() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file(
        "t.case.json",
        "{\n  \"name\": \"t\",\n  \"steps\": [\n    {\"keyword\": \"http.request\", \"args\": {\"url\": \"/delay/3000\"},\n     \"timeout\": \"200ms\"}\n  ]\n}\n",
    );
    p.file(
        "u.case.json",
        "{\n  \"name\": \"u\",\n  \"steps\": [\n    {\"keyword\": \"http.request\", \"args\": {\"url\": \"http://127.0.0.1:9/\"},\n     \"timeout\": \"5s\"}\n  ]\n}\n",
    );
    p.atf(&["run"]);
    let r = p.report();
    let timed_out = &case(&r, "t")["steps"][0];
    assert_eq!(timed_out["status"], "error", "{timed_out:#}");
    assert_eq!(timed_out["location"]["line"], 5, "{timed_out:#}");
    // Any other keyword error points at the keyword.
    let refused = &case(&r, "u")["steps"][0];
    assert_eq!(refused["status"], "error", "{refused:#}");
    assert_eq!(refused["location"]["line"], 4, "{refused:#}");
}

#[test]
fn parallel_step_sets_overlap_and_a_failing_set_lets_others_finish() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    // Each set waits at a barrier that opens only when both sets are there.
    p.file("a.case.json", json!({
        "name": "sets",
        "steps": [
            [ {"keyword": "http.request", "args": {"url": "/barrier/b1/2"}, "expect": {"status": 200}}, ev("set1-done") ],
            [ {"keyword": "http.request", "args": {"url": "/barrier/b1/2"}, "expect": {"status": 200}},
              {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 0}}, ev("set2-never") ]
        ]
    }));
    let out = p.atf(&["run", "--jobs", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = p.report();
    let c = case(&r, "sets");
    let steps = c["steps"].as_array().unwrap();
    assert_eq!(steps[0]["set"], 1);
    assert_eq!(
        steps[0]["status"], "passed",
        "both sets reached the barrier together: {c:#}"
    );
    assert_eq!(steps[2]["set"], 2);
    assert_eq!(steps[2]["status"], "passed");
    assert_eq!(steps[3]["status"], "failed");
    assert_eq!(steps[4]["status"], "skipped");
    assert_eq!(srv.events(), vec!["set1-done"]);
    assert!(
        c["error"].as_str().unwrap().contains("step 2 of set 2"),
        "{c:#}"
    );
}

#[test]
fn cases_run_in_parallel_up_to_jobs() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    for i in 0..3 {
        p.file(&format!("c{i}.case.json"), json!({
            "steps": [ {"keyword": "http.request", "args": {"url": "/barrier/cases/3"}, "expect": {"status": 200}} ]
        }));
    }
    let out = p.atf(&["run", "--jobs", "3"]);
    assert_eq!(out.code, 0, "three cases met at the barrier: {out:?}");
}

#[test]
fn data_rows_run_as_separate_cases() {
    let p = Project::new();
    p.file("d.case.json", json!({
        "name": "qty",
        "vars": {"qty": 1, "label": "q${qty}"},
        "data": [ {"qty": 1}, {"qty": 5}, {"qty": 7} ],
        "steps": [ {"keyword": "assert", "args": {"value": "${label}"}, "expect": {"value": {"$in": ["q1", "q5"]}}} ]
    }));
    p.file("n.case.json", json!({
        "name": "order of ${sku}",
        "data": [ {"sku": "A"}, {"sku": "B"} ],
        "steps": [ {"keyword": "assert", "args": {"value": "${sku}"}, "expect": {"value": {"$regex": "^[AB]$"}}} ]
    }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    assert_eq!(case(&r, "qty[0]")["status"], "passed");
    assert_eq!(case(&r, "qty[1]")["status"], "passed");
    assert_eq!(case(&r, "qty[2]")["status"], "failed");
    assert_eq!(
        case(&r, "qty[2]")["steps"][0]["failures"][0]["actual"],
        "q7"
    );
    assert_eq!(case(&r, "order of A")["status"], "passed");
    assert_eq!(case(&r, "order of B")["status"], "passed");
    assert_eq!(r["summary"]["total"], 5);
}

#[test]
fn cases_sharing_a_lock_never_overlap() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    for i in 0..3 {
        p.file(
            &format!("l{i}.case.json"),
            json!({
                "locks": ["orders-table"],
                "steps": [
                    {"keyword": "http.request", "args": {"method": "POST", "url": "/enter/orders"}},
                    {"keyword": "sleep", "args": {"duration": "150ms"}},
                    {"keyword": "http.request", "args": {"method": "POST", "url": "/leave/orders"}}
                ]
            }),
        );
    }
    let out = p.atf(&["run", "--jobs", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(srv.max_inside("orders"), 1);
}

#[test]
fn suites_prepare_once_share_global_context_and_clean_up_after_all_cases() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("orders/suite.json", json!({
        "vars": {"shop": "s-1"},
        "prepare": [ ev("suite-prepare"), {"keyword": "ctx.set", "args": {"token": "T-${shop}"}},
                     {"keyword": "http.request", "args": {"method": "POST", "url": "/counter/suite"}, "save": {"suiteCount": "$.body.n"}} ],
        "cleanup": [ {"keyword": "http.request", "args": {"method": "POST", "url": "/events", "body": "suite-cleanup ${token}"}} ]
    }));
    p.file(
        "orders/nested/suite.json",
        json!({ "vars": {"shop": "s-2", "inner": "${shop}-in"} }),
    );
    for i in 0..3 {
        p.file(&format!("orders/c{i}.case.json"), json!({
            "steps": [ {"keyword": "assert", "args": {"value": "${token}/${shop}/${suiteCount}"}, "expect": {"value": "T-s-1/s-1/1"}}, ev("case") ]
        }));
    }
    p.file("orders/nested/n.case.json", json!({
        "steps": [ {"keyword": "assert", "args": {"value": "${inner}/${shop}"}, "expect": {"value": "s-2-in/s-2"}} ]
    }));
    p.file(
        "other.case.json",
        json!({
            "steps": [ {"keyword": "assert", "args": {"value": "${shop}"}} ]
        }),
    );
    let out = p.atf(&["run", "--jobs", "4"]);
    let r = p.report();
    for name in ["c0", "c1", "c2", "n"] {
        assert_eq!(case(&r, name)["status"], "passed", "{name}: {out:?}");
    }
    assert_eq!(
        case(&r, "other")["status"],
        "error",
        "suite vars do not leak to other folders"
    );
    let events = srv.events();
    assert_eq!(events.first().map(String::as_str), Some("suite-prepare"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("suite-cleanup T-s-1")
    );
    assert_eq!(events.iter().filter(|e| *e == "case").count(), 3);
    assert_eq!(srv.counter("suite"), 1, "suite prepare ran once");
}

#[test]
fn suite_prepare_failure_errors_its_cases_and_still_cleans_up() {
    let srv = TestServer::start();
    let p = Project::new();
    p.file("atf.json", project_file(&srv.url()));
    p.file("s/suite.json", json!({
        "prepare": [ {"keyword": "http.request", "args": {"url": "/status/503"}, "expect": {"status": 200}} ],
        "cleanup": [ ev("suite-cleanup") ]
    }));
    p.file("s/a.case.json", json!({ "steps": [ ev("case-a") ] }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    let a = case(&r, "a");
    assert_eq!(a["status"], "error");
    assert!(
        a["error"].as_str().unwrap().contains("prepare failed"),
        "{a:#}"
    );
    assert_eq!(srv.events(), vec!["suite-cleanup"]);
    assert_eq!(r["suites"][0]["status"], "failed");
}

#[test]
fn fail_fast_starts_no_new_case_after_a_failure() {
    let p = Project::new();
    p.file(
        "a1.case.json",
        json!({ "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 2}} ] }),
    );
    for i in 2..6 {
        p.file(
            &format!("a{i}.case.json"),
            json!({ "steps": [ {"keyword": "assert", "args": {"value": 1}} ] }),
        );
    }
    let out = p.atf(&["run", "--jobs", "1", "--fail-fast"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    assert_eq!(r["summary"]["failed"], 1);
    assert_eq!(r["summary"]["skipped"], 4);
    assert_eq!(out.last_line(), "0 passed, 1 failed, 4 skipped");
}

#[test]
fn placeholders_resolve_in_order_and_undefined_names_list_the_defined_ones() {
    let p = Project::new();
    p.file(
        "atf.json",
        json!({
            "default_env": "dev",
            "envs": {"dev": {"vars": {"host": "h1", "base": "http://${host}"}}}
        }),
    );
    p.file("payload.json", json!({"kind": "order"}));
    p.file("a.case.json", json!({
        "name": "a",
        "vars": {"sku": "ACC-${random_str(8)}", "same": "${sku}", "qty": 2},
        "steps": [
            {"keyword": "assert", "args": {"value": {"q": "${qty}", "txt": "qty=${qty}", "lit": "$${qty}", "eq": "${sku}", "base": "${base}",
                                                    "md5": "${md5('abc')}", "file": "${file('payload.json')}", "home": "${env.ATF_TEST_HOME}"}},
             "expect": {"$.value.q": 2, "$.value.txt": "qty=2", "$.value.lit": "$${qty}", "$.value.eq": "${same}", "$.value.base": "http://h1",
                        "$.value.md5": "900150983cd24fb0d6963f7d28e17f72", "$.value.file.kind": "order", "$.value.home": "/home/x"}},
            {"keyword": "assert", "args": {"value": "${missing}"}}
        ]
    }));
    let out = p
        .command(&["run"])
        .env("ATF_TEST_HOME", "/home/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = p.report();
    let a = case(&r, "a");
    assert_eq!(a["steps"][0]["status"], "passed", "{a:#}");
    let err = a["steps"][1]["error"].as_str().unwrap();
    assert!(err.contains("undefined name `missing`"), "{err}");
    assert!(
        err.contains("base") && err.contains("host") && err.contains("qty") && err.contains("sku"),
        "{err}"
    );
}

#[test]
fn var_overrides_beat_case_vars() {
    let p = Project::new();
    p.file("a.case.json", json!({
        "name": "a",
        "vars": {"qty": 1, "label": "n=${qty}"},
        "steps": [ {"keyword": "assert", "args": {"value": ["${qty}", "${label}"]}, "expect": {"value": [7, "n=7"]}} ]
    }));
    let out = p.atf(&["run", "--var", "qty=7"]);
    assert_eq!(out.code, 0, "{out:?}");
}
