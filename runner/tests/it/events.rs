//! The event stream (`events.jsonl`), a killed run rebuilt from it, and
//! the `location` of every runtime failure.

use std::time::{Duration, Instant};

use atf_reports::{Event, Phase, RunReport, Status};
use serde_json::json;

use crate::util::Project;

fn events(p: &Project) -> Vec<Event> {
    let text = std::fs::read_to_string(p.join("atf-report/events.jsonl")).unwrap();
    atf_reports::read_jsonl(&text).unwrap()
}

fn report(p: &Project) -> RunReport {
    serde_json::from_value(p.report()).unwrap()
}

#[test]
fn events_jsonl_follows_the_whole_run_in_order() {
    let p = Project::new();
    p.file(
        "suite.json",
        json!({"prepare": [{"keyword": "log", "args": {"message": "suite up"}}],
               "cleanup": [{"keyword": "log", "args": {"message": "suite down"}}]}),
    );
    p.file(
        "a.case.json",
        json!({"name": "a",
               "prepare": [{"keyword": "ctx.set", "args": {"n": 1}}],
               "steps": [{"keyword": "assert", "args": {"value": "${n}"}, "expect": {"value": 1},
                          "retry": {"times": 3, "interval": "10ms"}},
                         {"keyword": "assert", "args": {"value": 2}, "expect": {"value": 2}}],
               "cleanup": [{"keyword": "log", "args": {"message": "bye"}}]}),
    );
    p.file(
        "b.case.json",
        json!({"name": "b",
               "steps": [{"keyword": "assert", "args": {"value": 1}, "expect": {"value": 2},
                          "retry": {"times": 2, "interval": "1ms"}}]}),
    );
    let out = p.atf(&["run", "--jobs", "1"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let ev = events(&p);
    // First and last.
    let Event::RunStarted { cases, jobs, .. } = &ev[0] else {
        panic!("first event: {:?}", ev[0])
    };
    assert_eq!(*jobs, 1);
    assert_eq!(
        cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let Some(Event::RunFinished { summary, .. }) = ev.last() else {
        panic!("last event: {:?}", ev.last())
    };
    assert_eq!((summary.passed, summary.failed), (1, 1));
    // The suite is prepared before any case step and cleaned after.
    let pos = |pred: &dyn Fn(&Event) -> bool| ev.iter().position(pred).unwrap();
    let prepared = pos(&|e| {
        matches!(
            e,
            Event::SuitePrepared {
                status: Status::Passed,
                ..
            }
        )
    });
    let cleaned = pos(&|e| matches!(e, Event::SuiteCleaned { .. }));
    let first_case_step =
        pos(&|e| matches!(e, Event::StepFinished { step, .. } if step.case.is_some()));
    assert!(prepared < first_case_step && first_case_step < cleaned);
    // Case a: started, prepare, two steps, cleanup, finished, in that order.
    let a_phases: Vec<Phase> = ev
        .iter()
        .filter_map(|e| match e {
            Event::StepFinished { step, .. } if step.case == Some(0) => Some(step.phase),
            _ => None,
        })
        .collect();
    assert_eq!(
        a_phases,
        [Phase::Prepare, Phase::Steps, Phase::Steps, Phase::Cleanup]
    );
    // Case b: two attempts started, one retry announced, then finished failed.
    let b_attempts: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { step, attempt, .. } if step.case == Some(1) => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(b_attempts, [1, 2]);
    assert!(ev.iter().any(|e| matches!(e,
        Event::StepRetrying { step, attempt: 1, reason } if step.case == Some(1) && reason.contains("value"))));
    assert!(ev.iter().any(|e| matches!(e,
        Event::CaseFinished { case: 1, report } if report.status == Status::Failed)));
    // report.json is the fold of the same events.
    let r = report(&p);
    assert_eq!(r.cases[0].steps.len(), 2);
    assert_eq!(r.cases[0].cleanup.len(), 1);
    assert_eq!(r.suites.len(), 1);
    assert!(!r.interrupted);
}

#[test]
fn every_runtime_failure_names_its_file_line_and_column() {
    let p = Project::new();
    // Written by hand so that lines and columns are known.
    p.file(
        "loc.case.json",
        "{\n  \"name\": \"loc\",\n  \"steps\": [\n    {\"keyword\": \"assert\", \"args\": {\"value\": 1},\n     \"expect\": {\"value\": 2}}\n  ]\n}\n",
    );
    p.file(
        "undef.case.json",
        "{\"name\": \"undef\", \"steps\": [\n  {\"keyword\": \"log\",\n   \"args\": {\"message\": \"${nope}\"}}]}\n",
    );
    p.file(
        "kw.case.json",
        "{\"name\": \"kw\", \"steps\": [\n  {\"keyword\": \"exec\", \"args\": {\"cmd\": [\"/no/such/program\"]}}]}\n",
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1);
    let r = report(&p);
    let by = |name: &str| r.cases.iter().find(|c| c.name == name).unwrap();

    let f = &by("loc").steps[0].failures[0];
    let at = f.location.as_ref().expect("a failure location");
    assert_eq!(
        (at.file.as_str(), at.line, at.column),
        ("loc.case.json", 5, 17)
    );
    assert_eq!(by("loc").location, f.location);

    let s = &by("undef").steps[0];
    let at = s.location.as_ref().expect("a placeholder error location");
    assert_eq!((at.line, at.column), (3, 13), "{s:?}");

    let s = &by("kw").steps[0];
    let at = s.location.as_ref().expect("a keyword error location");
    assert_eq!((at.line, at.column), (2, 15), "{s:?}");

    // The console says where, too.
    assert!(
        out.stdout.contains("at loc.case.json:5:17"),
        "{}",
        out.stdout
    );
    // And JUnit.
    let junit = std::fs::read_to_string(p.join("atf-report/junit.xml")).unwrap();
    assert!(junit.contains("loc.case.json:5:17"), "{junit}");
}

#[test]
fn a_killed_run_leaves_its_finished_cases_and_report_rebuild_restores_the_reports() {
    let p = Project::new();
    let marker = p.join("slow-started");
    p.file(
        "a.case.json",
        json!({"name": "a fast", "steps": [{"keyword": "log", "args": {"message": "done"}}]}),
    );
    p.file(
        "b.case.json",
        json!({"name": "b slow", "steps": [
            {"keyword": "exec", "args": {"cmd": ["touch", marker.to_str().unwrap()]}},
            {"keyword": "sleep", "args": {"duration": "60s"}}]}),
    );
    // An old report from an earlier run must not pass for this one.
    p.file(
        "atf-report/report.json",
        json!({"summary": {"total": 9}, "cases": []}),
    );
    let mut child = p
        .command(&["run", "--jobs", "1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the slow case never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL: nothing runs after it
    child.wait().unwrap();

    let ev = events(&p);
    assert!(ev.iter().any(|e| matches!(e,
        Event::CaseFinished { case: 0, report } if report.status == Status::Passed)));
    assert!(!ev.iter().any(|e| matches!(e, Event::RunFinished { .. })));

    let out = p.atf(&["report", "rebuild"]);
    assert_eq!(out.code, 130, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("did not finish"), "{}", out.stdout);
    let r = report(&p);
    assert!(r.interrupted);
    assert_eq!(r.summary.total, 2);
    assert_eq!(r.cases[0].status, Status::Passed);
    assert_eq!(r.cases[1].status, Status::Error);
    assert!(
        r.cases[1]
            .error
            .as_deref()
            .unwrap()
            .contains("did not finish")
    );
    assert_eq!(
        r.cases[1].steps[0].status,
        Status::Passed,
        "the touch step finished"
    );
}
