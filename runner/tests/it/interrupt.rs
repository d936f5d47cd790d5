//! Ctrl-C: the first one starts no new case and lets running cases clean
//! up; the report is still written.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{Project, case};

#[test]
fn first_ctrl_c_runs_cleanup_and_writes_the_report() {
    let p = Project::new();
    let started = p.join("started");
    let cleaned = p.join("cleaned");
    let undone = p.join("undone");
    p.file("a.case.json", json!({
        "name": "a",
        "steps": [
            {"keyword": "exec", "args": {"cmd": ["touch", started.to_str().unwrap()]},
             "undo": {"keyword": "exec", "args": {"cmd": ["touch", undone.to_str().unwrap()]}}},
            {"keyword": "sleep", "args": {"duration": "30s"}},
            {"keyword": "log", "args": {"message": "never"}}
        ],
        "cleanup": [ {"keyword": "sleep", "args": {"duration": "100ms"}},
                     {"keyword": "exec", "args": {"cmd": ["touch", cleaned.to_str().unwrap()]}} ]
    }));
    p.file("b.case.json", json!({ "name": "b", "steps": [ {"keyword": "log", "args": {"message": "never started"}} ] }));
    let child = p
        .command(&["run", "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the case never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(undone.exists(), "undo ran");
    assert!(
        cleaned.exists(),
        "cleanup ran (all of it, including its sleep)"
    );
    let r = p.report();
    let a = case(&r, "a");
    assert_eq!(a["status"], "error");
    assert!(
        a["error"].as_str().unwrap().contains("interrupted"),
        "{a:#}"
    );
    assert_eq!(a["steps"][2]["status"], "skipped");
    assert_eq!(case(&r, "b")["status"], "skipped");
}
