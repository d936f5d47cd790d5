//! Regression runs that tell the truth (#13), through the real `atf`
//! binary against the real Redis of `scripts/services.sh`: a case made
//! flaky by a Redis counter and `--retries`; `--repeat-each` and
//! `--until-fail`; a feature-flag matrix whose cells differ in outcome (a
//! suite sets the switch in Redis); Allure results rendered by the real
//! Allure CLI; shards from CI environment variables and from durations;
//! `atf report merge` of a run and its rerun; the CI recipes of `ci/`
//! validated offline against their schemas.

#[path = "support/mod.rs"]
mod support;
#[path = "../../reports/tests/common/tools.rs"]
mod tools;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use support::{Output, Project, case};
use tools::{allure_cli, chromium_command, read_with_junitparser, run_with_limit, test_python};

fn require_redis() {
    let ok = "127.0.0.1:6379"
        .parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        ok,
        "Redis does not answer on 127.0.0.1:6379: start the test services with `scripts/services.sh`"
    );
}

/// A Redis key no other test (or earlier run) uses.
fn unique_key(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("atf-test:{what}:{}:{nanos}", std::process::id())
}

fn run(p: &Project, args: &[&str]) -> Output {
    let out = p
        .command(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run atf");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A case that fails while the Redis counter `key` is below `pass_from`
/// (INCR, then `$gte`), so it passes on run `pass_from`.
fn counter_case(name: &str, key: &str, pass_from: i64) -> Value {
    json!({
        "name": name,
        "steps": [
            {"keyword": "redis.command", "remark": "count this run", "args": {"cmd": ["INCR", key]}, "save": {"n": "$.value"}},
            {"keyword": "assert", "remark": "enough runs", "args": {"value": "${n}"}, "expect": {"value": {"$gte": pass_from}}}
        ],
        "cleanup": [ {"keyword": "log", "args": {"message": "run ${n}"}} ]
    })
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_case_that_fails_then_passes_on_a_retry_is_flaky_everywhere() {
    require_redis();
    let p = Project::new();
    let key = unique_key("flaky");
    p.file("r/counter.case.json", counter_case("counter", &key, 2));
    p.file(
        "r/steady.case.json",
        json!({"name": "steady", "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ]}),
    );
    let out = run(&p, &["run", "--retries", "2", "--retry-delay", "10ms"]);
    assert_eq!(out.code, 0, "a flaky case does not fail the run: {out:?}");
    assert!(
        out.stdout
            .contains("FLAKY 2/3 counter (r/counter.case.json)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("attempt 1 failed: failed at step 2 (assert)"),
        "{}",
        out.stdout
    );
    assert_eq!(out.last_line(), "2 passed (1 flaky), 0 failed, 0 skipped");

    let report = p.report();
    assert_eq!(report["summary"]["passed"], 2);
    assert_eq!(report["summary"]["flaky"], 1);
    let c = case(&report, "counter");
    assert_eq!(c["status"], "flaky");
    assert_eq!(c["max_attempts"], 3);
    let attempts = c["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{c:#}");
    assert_eq!(attempts[0]["status"], "failed");
    assert_eq!(attempts[0]["steps"][0]["result"]["value"], 1);
    assert_eq!(attempts[0]["cleanup"][0]["result"]["message"], "run 1");
    assert_eq!(attempts[1]["status"], "passed");
    assert_eq!(attempts[1]["steps"][0]["result"]["value"], 2);
    assert!(case(&report, "steady").get("attempts").is_none());

    let doc = read_with_junitparser(&p.join("atf-report/junit.xml"));
    let suite = doc["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "r")
        .unwrap();
    assert_eq!(suite["failures"], 0);
    let tc = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "counter")
        .unwrap();
    assert_eq!(tc["results"], json!([]), "passing test case: {tc:#}");
    assert_eq!(tc["reruns"][0]["tag"], "flakyFailure");

    let dom = dump_dom(&p.join("atf-report/index.html"));
    assert!(
        dom.contains("data-status=\"flaky\""),
        "the flaky case is shown as flaky"
    );
    assert!(
        dom.contains("<span class=\"l\">flaky</span>"),
        "a flaky card"
    );

    // The same flakiness with --fail-on-flaky fails the run.
    let key2 = unique_key("flaky2");
    p.file("r/counter.case.json", counter_case("counter", &key2, 2));
    let strict = run(&p, &["run", "--retries", "2", "--fail-on-flaky"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    assert_eq!(
        strict.last_line(),
        "2 passed (1 flaky), 0 failed, 0 skipped"
    );

    // A case that never passes keeps every run and fails.
    let key3 = unique_key("never");
    p.file("r/counter.case.json", counter_case("counter", &key3, 10));
    let never = run(&p, &["run", "--retries", "2"]);
    assert_eq!(never.code, 1);
    assert!(
        never.stdout.contains("FAIL 3/3 counter"),
        "{}",
        never.stdout
    );
    let c = case(&p.report(), "counter").clone();
    assert_eq!(c["status"], "failed");
    assert_eq!(c["attempts"].as_array().unwrap().len(), 3);
    let doc = read_with_junitparser(&p.join("atf-report/junit.xml"));
    let reruns: Vec<&str> = doc["suites"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "counter")
        .unwrap()["reruns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tag"].as_str().unwrap())
        .collect();
    assert_eq!(reruns, ["rerunFailure", "rerunFailure"]);
}

#[test]
fn repeat_each_runs_every_case_n_times_and_until_fail_stops_at_the_first_failure() {
    require_redis();
    let p = Project::new();
    p.file(
        "steady.case.json",
        json!({"name": "steady", "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ]}),
    );
    let out = run(&p, &["run", "--repeat-each", "5"]);
    assert_eq!(out.code, 0, "5 runs in a row without failure: {out:?}");
    assert_eq!(out.last_line(), "5 passed, 0 failed, 0 skipped");
    let names: Vec<(String, String)> = statuses(&p.report());
    let expected: Vec<(String, String)> = (1..=5)
        .map(|k| (format!("steady #{k}"), "passed".to_string()))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(case(&p.report(), "steady #3")["repetition"], 3);

    // Fails on its third run only: --until-fail 5 runs 1, 2, 3 and skips 4, 5.
    let key = unique_key("until");
    p.file(
        "steady.case.json",
        json!({"name": "third", "steps": [
            {"keyword": "redis.command", "args": {"cmd": ["INCR", key]}, "save": {"n": "$.value"}},
            {"keyword": "assert", "args": {"value": "${n}"}, "expect": {"value": {"$ne": 3}}}
        ]}),
    );
    let out = run(&p, &["run", "--until-fail", "5", "--jobs", "4"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        statuses(&p.report()),
        [
            ("third #1", "passed"),
            ("third #2", "passed"),
            ("third #3", "failed"),
            ("third #4", "skipped"),
            ("third #5", "skipped")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(
        case(&p.report(), "third #4")["error"]
            .as_str()
            .unwrap()
            .contains("--until-fail")
    );
    assert_eq!(out.last_line(), "2 passed, 1 failed, 2 skipped");
}

/// A suite sets the switch in Redis for its cell and removes it after; the
/// case reads it back and fails with the flag on.
fn matrix_project(key: &str) -> Project {
    let p = Project::new();
    p.file(
        "flags/suite.json",
        json!({
            "prepare": [ {"keyword": "redis.command", "args": {"cmd": ["SET", key, "${checkout_v2}"]}} ],
            "cleanup": [ {"keyword": "redis.command", "args": {"cmd": ["DEL", key]}} ]
        }),
    );
    p.file(
        "flags/order.case.json",
        json!({
            "name": "create order",
            "steps": [
                {"keyword": "redis.command", "remark": "the switch as the service sees it", "args": {"cmd": ["GET", key]}, "save": {"flag": "$.value"}},
                {"keyword": "assert", "remark": "v2 checkout breaks orders", "args": {"value": "${flag}/${region}"}, "expect": {"value": {"$regex": "^off/"}}}
            ]
        }),
    );
    p.file(
        "flags/v2.case.json",
        json!({
            "name": "v2 only",
            "matrix": {"checkout_v2": ["on"]},
            "steps": [ {"keyword": "assert", "args": {"value": "${checkout_v2}"}, "expect": {"value": "on"}} ]
        }),
    );
    p
}

#[test]
fn a_matrix_runs_each_cell_with_its_switch_and_shows_where_a_case_breaks() {
    require_redis();
    let key = unique_key("switch");
    let p = matrix_project(&key);
    let out = run(
        &p,
        &[
            "run",
            "--matrix",
            "checkout_v2=on,off",
            "--matrix",
            "region=cn,sg",
            "--matrix-exclude",
            "checkout_v2=off,region=sg",
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    let report = p.report();
    let mut got = statuses(&report);
    got.sort();
    let mut expected: Vec<(String, String)> = [
        ("create order [checkout_v2=off, region=cn]", "passed"),
        ("create order [checkout_v2=on, region=cn]", "failed"),
        ("create order [checkout_v2=on, region=sg]", "failed"),
        ("v2 only [checkout_v2=on, region=cn]", "passed"),
        ("v2 only [checkout_v2=on, region=sg]", "passed"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    expected.sort();
    assert_eq!(got, expected);
    let failed = case(&report, "create order [checkout_v2=on, region=sg]");
    assert_eq!(
        failed["matrix"],
        json!({"checkout_v2": "on", "region": "sg"})
    );
    assert_eq!(failed["steps"][1]["result"]["value"], "on/sg");
    // One suite prepare and cleanup per cell; the cleanup left no switch.
    let suites = report["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 3, "{suites:#?}");
    assert!(suites.iter().all(|s| s["cleanup"][0]["status"] == "passed"));

    // Selection applies per cell; list shows the cells.
    let listed = run(
        &p,
        &[
            "list",
            "--matrix",
            "checkout_v2=on,off",
            "--filter",
            "create*",
        ],
    );
    let names: Vec<&str> = listed
        .stdout
        .lines()
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "create order [checkout_v2=on]",
            "create order [checkout_v2=off]"
        ]
    );

    // JUnit: the cell is a property.
    let doc = read_with_junitparser(&p.join("atf-report/junit.xml"));
    let tc = doc["suites"][0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "create order [checkout_v2=on, region=cn]")
        .unwrap()
        .clone();
    assert_eq!(tc["properties"]["matrix.checkout_v2"], "on");
    assert_eq!(tc["properties"]["matrix.region"], "cn");

    // The HTML report's grid: one row per case, one column per cell.
    let dom = dump_dom(&p.join("atf-report/index.html"));
    let table = &dom[dom.find("<table class=\"matrix\"").expect("a matrix table")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(
        table.matches("<tr>").count(),
        3,
        "header + 2 cases: {table}"
    );
    assert!(
        table.contains("<th>checkout_v2=off, region=cn</th>"),
        "{table}"
    );
    let order_row = &table[table.find(">create order<").unwrap()..];
    let order_row = &order_row[..order_row.find("</tr>").unwrap()];
    assert_eq!(order_row.matches("badge failed").count(), 2, "{order_row}");
    assert_eq!(order_row.matches("badge passed").count(), 1, "{order_row}");

    // --rerun-failed picks the failed cells only.
    let again = run(
        &p,
        &[
            "run",
            "--rerun-failed",
            "--matrix",
            "checkout_v2=on,off",
            "--matrix",
            "region=cn,sg",
        ],
    );
    assert_eq!(again.code, 1, "{again:?}");
    let mut rerun = statuses(&p.report());
    rerun.sort();
    assert_eq!(
        rerun,
        [
            ("create order [checkout_v2=on, region=cn]", "failed"),
            ("create order [checkout_v2=on, region=sg]", "failed"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );

    // `atf check` knows the matrix variables.
    let check = run(
        &p,
        &[
            "check",
            "--matrix",
            "checkout_v2=on,off",
            "--matrix",
            "region=cn",
        ],
    );
    assert_eq!(check.code, 0, "{check:?}");
    let unchecked = run(&p, &["check"]);
    assert_eq!(
        unchecked.code, 1,
        "without the matrix ${{region}} is undefined: {unchecked:?}"
    );
}

#[test]
fn the_project_file_matrix_makes_cells_too() {
    require_redis();
    let key = unique_key("switch2");
    let p = matrix_project(&key);
    p.file(
        "atf.json",
        json!({"matrix": {"checkout_v2": ["off"], "region": ["cn"], "include": [{"checkout_v2": "on", "region": "us"}]}}),
    );
    let out = run(&p, &["run"]);
    assert_eq!(out.code, 1, "{out:?}");
    let mut got = statuses(&p.report());
    got.sort();
    assert_eq!(
        got,
        [
            ("create order [checkout_v2=off, region=cn]", "passed"),
            ("create order [checkout_v2=on, region=us]", "failed"),
            ("v2 only [checkout_v2=on, region=us]", "passed"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // A wrong matrix is a project-file error with its place.
    p.file("atf.json", json!({"matrix": {"checkout_v2": "on"}}));
    let bad = run(&p, &["run"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("matrix dimension `checkout_v2`"),
        "{}",
        bad.stderr
    );
}

fn dump_dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let mut cmd = chromium_command(profile.path());
    cmd.args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url);
    let out = run_with_limit(&mut cmd, Duration::from_secs(90))
        .expect("chromium starts")
        .unwrap_or_else(|| panic!("chromium did not finish within 90 s for {url}"));
    assert!(out.status.success(), "chromium failed for {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn allure_results_render_with_the_allure_cli() {
    require_redis();
    let allure = allure_cli();
    let key = unique_key("allure");
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"secrets": ["TOKEN"], "envs": {"t": {"vars": {"TOKEN": "s3cr3t-t0ken"}}}, "default_env": "t"}),
    );
    p.file("api/counter.case.json", counter_case("counter", &key, 2));
    p.file(
        "api/token.case.json",
        json!({"name": "token", "tags": ["smoke"], "remark": "uses a secret",
               "prepare": [ {"keyword": "log", "args": {"message": "set up"}} ],
               "steps": [ {"keyword": "assert", "remark": "the token", "args": {"value": "${TOKEN}"}, "expect": {"value": {"$len": 12}}} ]}),
    );
    let out = run(&p, &["run", "--retries", "1", "--allure", "allure-results"]);
    assert_eq!(out.code, 0, "{out:?}");
    let results = p.join("allure-results");
    let files: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.iter().filter(|f| f.ends_with("-result.json")).count(),
        3,
        "two runs of counter, one of token: {files:?}"
    );
    for f in &files {
        let text = std::fs::read_to_string(results.join(f)).unwrap();
        assert!(!text.contains("s3cr3t-t0ken"), "secret in {f}: {text}");
    }

    let out_dir = p.join("allure-report");
    let mut cmd = std::process::Command::new(&allure);
    cmd.arg("generate")
        .arg(&results)
        .arg("-o")
        .arg(&out_dir)
        .arg("--clean");
    let done = run_with_limit(&mut cmd, Duration::from_secs(240))
        .expect("the Allure CLI starts (it needs Java: scripts/test-deps.sh)")
        .expect("allure generate finished within 240 s");
    assert!(
        done.status.success(),
        "allure generate failed: {}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    let mut cases: Vec<Value> = std::fs::read_dir(out_dir.join("data/test-cases"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    cases.sort_by_key(|c| c["time"]["start"].as_i64());
    // The report lists the latest run of each case; the retry is attached.
    let latest: Vec<&Value> = cases
        .iter()
        .filter(|c| !c["hidden"].as_bool().unwrap_or(false))
        .collect();
    let counter = latest
        .iter()
        .rev()
        .find(|c| c["name"] == "counter")
        .expect("counter in the Allure report");
    assert_eq!(counter["status"], "passed");
    assert_eq!(counter["flaky"], true, "{counter:#}");
    assert_eq!(
        counter["extra"]["retries"].as_array().map(Vec::len),
        Some(1),
        "{counter:#}"
    );
    let steps: Vec<&str> = counter["testStage"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["redis.command — count this run", "assert — enough runs"]
    );
    let first = &counter["testStage"]["steps"][0];
    let names: Vec<&str> = first["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["arguments", "result"]);
    assert_eq!(counter["afterStages"][0]["name"], "cleanup");

    let token = latest.iter().find(|c| c["name"] == "token").unwrap();
    assert_eq!(token["status"], "passed");
    assert_eq!(token["beforeStages"][0]["name"], "prepare");
    let labels: Vec<(&str, &str)> = token["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["value"].as_str().unwrap()))
        .collect();
    assert!(labels.contains(&("tag", "smoke")), "{labels:?}");
    assert!(labels.contains(&("suite", "api")), "{labels:?}");
    let param = &token["testStage"]["steps"][0]["parameters"][0];
    assert_eq!(param["value"], "***", "{param:#}");
}

#[test]
fn shards_come_from_ci_environment_variables_and_durations_balance_them() {
    let p = Project::new();
    for i in 0..12 {
        p.file(
            &format!("c{i:02}.case.json"),
            json!({"steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ]}),
        );
    }
    let listed = |envs: &[(&str, &str)], args: &[&str]| -> Vec<String> {
        let mut cmd = p.command(&[&["list"], args].concat());
        for v in [
            "ATF_SHARD",
            "ATF_SHARD_TOTAL",
            "CI_NODE_INDEX",
            "CI_NODE_TOTAL",
            "JOB_COMPLETION_INDEX",
        ] {
            cmd.env_remove(v);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split("  ").next().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let all = listed(&[], &[]);
    assert_eq!(all.len(), 12);
    let mut seen = Vec::new();
    for k in 1..=3 {
        let k = k.to_string();
        let gitlab = listed(&[("CI_NODE_INDEX", &k), ("CI_NODE_TOTAL", "3")], &[]);
        assert_eq!(gitlab, listed(&[], &["--shard", &format!("{k}/3")]));
        let index = (k.parse::<usize>().unwrap() - 1).to_string();
        let kube = listed(&[("JOB_COMPLETION_INDEX", &index)], &["--shard-total", "3"]);
        assert_eq!(kube, gitlab, "Kubernetes index {index} is shard {k}");
        let generic = listed(&[("ATF_SHARD", &format!("{k}/3"))], &[]);
        assert_eq!(generic, gitlab);
        seen.extend(gitlab);
    }
    seen.sort();
    assert_eq!(seen, all, "every case in exactly one shard");

    // Durations of a last report: one slow case alone in its shard.
    let mut cases = Vec::new();
    for i in 0..12 {
        cases.push(json!({
            "name": format!("c{i:02}"), "file": format!("c{i:02}.case.json"),
            "status": "passed", "duration_ms": if i == 7 { 60_000 } else { 1_000 }
        }));
    }
    p.file(
        "last/report.json",
        json!({"summary": {"total": 12, "passed": 12, "failed": 0, "errored": 0, "skipped": 0, "duration_ms": 71_000}, "cases": cases}),
    );
    let one = listed(&[], &["--shard", "1/2", "--durations", "last"]);
    let two = listed(&[], &["--shard", "2/2", "--durations", "last/report.json"]);
    assert_eq!(one, ["c07"], "the slow case fills shard 1 alone");
    assert_eq!(two.len(), 11);
}

#[test]
fn merging_a_run_and_its_rerun_makes_the_case_flaky() {
    require_redis();
    let key = unique_key("merge");
    let p = Project::new();
    p.file("m/counter.case.json", counter_case("counter", &key, 2));
    p.file(
        "m/ok.case.json",
        json!({"name": "ok", "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ]}),
    );
    assert_eq!(run(&p, &["run", "--report-dir", "first"]).code, 1);
    // The rerun of the failed case goes to a report folder of its own.
    std::fs::create_dir_all(p.join("second")).unwrap();
    std::fs::copy(p.join("first/report.json"), p.join("second/report.json")).unwrap();
    let rerun = run(&p, &["run", "--report-dir", "second", "--rerun-failed"]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(p.report_in("second")["summary"]["total"], 1);
    let out = run(
        &p,
        &[
            "report",
            "merge",
            "first",
            "second",
            "--out",
            "merged",
            "--allure",
            "merged-allure",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("2 passed (1 flaky), 0 failed"),
        "{}",
        out.stdout
    );
    let merged = p.report_in("merged");
    let c = case(&merged, "counter");
    assert_eq!(c["status"], "flaky");
    let runs: Vec<&str> = c["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["failed", "passed"]);
    let results = std::fs::read_dir(p.join("merged-allure"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with("-result.json")
        })
        .count();
    assert_eq!(results, 3, "two runs of counter, one of ok");
}

/// The CI recipes (`ci/`, `Dockerfile`) pass `ci/validate.py` — GitLab's
/// CI schema, the Kubernetes schemas, the TestWorkflow schema — and a copy
/// with a typo in each fails it, naming the field.
#[test]
fn ci_recipes_validate_against_their_schemas() {
    let python = test_python();
    let root = support::workspace();
    let validate = root.join("ci/validate.py");
    let out = std::process::Command::new(&python)
        .arg(&validate)
        .output()
        .expect("python runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for file in [
        "ci/gitlab-ci.yml",
        "ci/k8s/indexed-job.yaml",
        "ci/testkube/testworkflow.yaml",
        "Dockerfile",
        "ci/Jenkinsfile",
    ] {
        assert!(text.contains(&format!("{file}: ok")), "{text}");
    }

    let copy = tempfile::tempdir().unwrap();
    let edit = |rel: &str, from: &str, to: &str| {
        let src = std::fs::read_to_string(root.join(rel)).unwrap();
        assert!(src.contains(from), "{rel} has no {from:?}");
        let dst = copy.path().join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(dst, src.replacen(from, to, 1)).unwrap();
    };
    std::fs::create_dir_all(copy.path().join("ci/schemas")).unwrap();
    std::fs::copy(
        root.join("ci/schemas/testkube-testworkflow.schema.json"),
        copy.path()
            .join("ci/schemas/testkube-testworkflow.schema.json"),
    )
    .unwrap();
    edit("ci/gitlab-ci.yml", "  parallel: 4", "  paralel: 4");
    edit(
        "ci/k8s/indexed-job.yaml",
        "completionMode: Indexed",
        "completionMode: [Indexed]",
    );
    edit(
        "ci/testkube/testworkflow.yaml",
        "      shell: atf",
        "      shel: atf",
    );
    edit("Dockerfile", "ENTRYPOINT [\"atf\"]", "ENTRYPOINT [\"sh\"]");
    edit("ci/Jenkinsfile", "junit testResults", "junitt testResults");
    let out = std::process::Command::new(&python)
        .arg(&validate)
        .arg(copy.path())
        .output()
        .expect("python runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        "ci/gitlab-ci.yml: integration: Additional properties are not allowed ('paralel' was unexpected)",
        "ci/k8s/indexed-job.yaml: Job atf-regression:",
        "ci/testkube/testworkflow.yaml: spec/steps/0: Additional properties are not allowed ('shel' was unexpected)",
        "Dockerfile: the final stage needs ENTRYPOINT",
        "ci/Jenkinsfile: missing `junit`",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}
