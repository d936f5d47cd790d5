//! `atf run --watch`, the real binary: a run, a change, another run, the
//! reports of each, and Ctrl-C while waiting or during a run.

#![cfg(unix)]

mod support;

use std::thread;
use std::time::Duration;

use serde_json::json;
use support::{Project, Running, case};

const WATCHING: &str = "for changes (Ctrl-C to stop)";
const LONG: Duration = Duration::from_secs(30);

/// A case reading a file beside it: `payload.txt` must say `one`.
fn reads_payload() -> serde_json::Value {
    json!({
        "name": "payload",
        "steps": [ { "keyword": "exec", "args": { "cmd": ["cat", "payload.txt"] },
                     "expect": { "exit_code": 0, "stdout": "one" } } ]
    })
}

#[test]
fn a_change_runs_again_and_ctrl_c_ends_with_the_last_code() {
    let p = Project::new();
    p.file("atf.json", json!({ "jobs": 2 }));
    p.file(
        "cases/a.case.json",
        json!({ "name": "a", "steps": [ { "keyword": "log", "args": { "message": "hi" } } ] }),
    );
    p.file("cases/orders/payload.case.json", reads_payload());
    p.file("cases/orders/payload.txt", "one");

    // No path: the current folder, which holds the report folder too.
    let mut atf = Running::spawn(p.command(&["run", "--watch"]));
    atf.wait_for(WATCHING, 1, LONG);
    assert!(
        atf.stdout()
            .contains("watching 4 files for changes (Ctrl-C to stop)"),
        "atf.json, two cases, a payload:\n{}",
        atf.stdout()
    );
    let first = p.report();
    assert_eq!(first["summary"]["passed"], 2, "{first:#}");

    // Writing the reports is no change: nothing runs again.
    thread::sleep(Duration::from_millis(1000));
    assert_eq!(atf.count(WATCHING), 1, "{}", atf.stdout());

    // A file beside a case changes: the cases run again, reports too.
    p.file("cases/orders/payload.txt", "three");
    atf.wait_for(WATCHING, 2, LONG);
    let out = atf.stdout();
    let separator = out
        .lines()
        .find(|l| l.starts_with("===="))
        .unwrap_or_else(|| panic!("no separator line:\n{out}"));
    assert!(
        separator.contains("changed: cases/orders/payload.txt"),
        "{separator}"
    );
    let second = p.report();
    assert_ne!(second["started_at"], first["started_at"]);
    assert_eq!(case(&second, "a")["status"], "passed");
    let payload = case(&second, "payload");
    assert_eq!(payload["status"], "failed");
    assert_eq!(payload["steps"][0]["failures"][0]["actual"], "three");

    // A new case file is found by the next run.
    p.file(
        "cases/c.case.json",
        json!({ "name": "c", "steps": [ { "keyword": "log", "args": { "message": "new" } } ] }),
    );
    atf.wait_for(WATCHING, 3, LONG);
    let third = p.report();
    assert_eq!(third["summary"]["total"], 3, "{third:#}");
    assert_eq!(third["summary"]["failed"], 1, "{third:#}");

    // Ctrl-C while waiting ends the watch at once, with the last run's code.
    atf.interrupt();
    let (code, took) = atf.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 1, "the last run failed\n{}", atf.stderr());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(atf.count(WATCHING), 3);
    assert!(
        !atf.stderr().contains("interrupted"),
        "no run was interrupted:\n{}",
        atf.stderr()
    );
}

#[test]
fn a_broken_project_file_waits_to_be_fixed() {
    let p = Project::new();
    p.file("atf.json", "{ \"jobs\": ");
    p.file(
        "cases/a.case.json",
        json!({ "name": "a", "steps": [ { "keyword": "log", "args": { "message": "hi" } } ] }),
    );
    let mut atf = Running::spawn(p.command(&["run", "--watch", "cases"]));
    atf.wait_for(WATCHING, 1, LONG);
    assert!(atf.stderr().contains("atf.json"), "{}", atf.stderr());
    assert!(!p.join("atf-report").exists());

    p.file("atf.json", json!({ "jobs": 1 }));
    atf.wait_for(WATCHING, 2, LONG);
    assert!(
        atf.stdout().contains("changed: atf.json"),
        "{}",
        atf.stdout()
    );
    assert_eq!(p.report()["summary"]["passed"], 1);

    atf.interrupt();
    let (code, _) = atf.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "{}", atf.stderr());
}

#[test]
fn ctrl_c_during_a_watched_run_interrupts_it_and_exits_130() {
    let p = Project::new();
    let started = p.join("started");
    let cleaned = p.join("cleaned");
    p.file(
        "cases/slow.case.json",
        json!({
            "name": "slow",
            "steps": [
                { "keyword": "exec", "args": { "cmd": ["touch", started.to_str().unwrap()] } },
                { "keyword": "sleep", "args": { "duration": "30s" } }
            ],
            "cleanup": [ { "keyword": "exec", "args": { "cmd": ["touch", cleaned.to_str().unwrap()] } } ]
        }),
    );
    let mut atf = Running::spawn(p.command(&["run", "--watch", "cases"]));
    let deadline = std::time::Instant::now() + LONG;
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the case never started"
        );
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(200));
    atf.interrupt();
    let (code, took) = atf.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 130, "{}", atf.stderr());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(cleaned.exists(), "cleanup ran");
    assert_eq!(case(&p.report(), "slow")["status"], "error");
    assert_eq!(
        atf.count(WATCHING),
        0,
        "no watching after an interrupted run"
    );
}
