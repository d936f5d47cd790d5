//! `junit.xml`: the run in the JUnit XML dialect that Jenkins, GitLab and
//! most CI servers read, written with `quick-junit` (nextest's JUnit
//! model and serializer).
//!
//! One `<testsuite>` per case-file folder (named by the folder, `.` for
//! the top), one `<testcase>` per case (classname: the case file's path
//! without `.case.json`, `/` turned into `.`), with `<failure>`, `<error>`
//! or `<skipped>` by status, every failed step in the failure's body as the
//! console shows it, and the case's `log` messages in `<system-out>`; the
//! run's `env` and `shard` are suite properties, a matrix cell is a
//! property of its test cases. Retried cases follow the Surefire and
//! nextest convention: a flaky case is a passing test case with a
//! `<flakyFailure>`/`<flakyError>` per failed run, a case that never passed
//! carries its earlier runs as `<rerunFailure>`/`<rerunError>`. A suite
//! whose `prepare` failed is a test case of its own (`suite set-up`), in
//! error; a suite whose `cleanup` failed adds its failed steps to its
//! folder's `<system-err>`. Characters XML 1.0 forbids (most control
//! characters) are replaced by U+FFFD, so hostile text stays visible.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use quick_junit::{
    NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite, XmlString,
};
use serde_json::Value;

use crate::console::describe_step;
use crate::{Attempt, CaseReport, RunReport, Status, StepReport, SuiteReport};

/// Writes the JUnit report of `report` to `path`.
pub fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::write(path, render(report))
}

/// The JUnit XML document of `report`.
pub fn render(report: &RunReport) -> String {
    let mut doc = Report::new("atf");
    doc.set_time(ms(report.summary.duration_ms));
    for folder in group_by_folder(report) {
        doc.add_test_suite(suite(report, &folder));
    }
    doc.to_string().unwrap_or_else(|e| {
        // The model is built from strings only; serializing it cannot fail
        // short of running out of memory. Still, never panic.
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"atf\" tests=\"0\" failures=\"0\" errors=\"1\"><!-- {} --></testsuites>\n",
            xml(&e.to_string()).as_str().replace("--", "- -")
        )
    })
}

/// The cases (and failed suite files) of one folder, in report order.
struct Folder<'a> {
    name: String,
    cases: Vec<&'a CaseReport>,
    suites: Vec<&'a SuiteReport>,
}

fn group_by_folder(report: &RunReport) -> Vec<Folder<'_>> {
    let mut folders: Vec<Folder<'_>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slot = |name: String, folders: &mut Vec<Folder<'_>>| -> usize {
        *index.entry(name).or_insert_with_key(|name| {
            folders.push(Folder {
                name: name.clone(),
                cases: Vec::new(),
                suites: Vec::new(),
            });
            folders.len() - 1
        })
    };
    for case in &report.cases {
        let i = slot(folder_of(&case.file), &mut folders);
        folders[i].cases.push(case);
    }
    for suite in &report.suites {
        if is_bad(suite.status) {
            let i = slot(folder_of(&suite.file), &mut folders);
            folders[i].suites.push(suite);
        }
    }
    folders
}

fn is_bad(status: Option<Status>) -> bool {
    matches!(status, Some(Status::Failed | Status::Error))
}

/// The folder of a case file as `/`-separated path, `.` for the top.
fn folder_of(file: &str) -> String {
    let file = normalize(file);
    match file.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        _ => ".".to_string(),
    }
}

/// `/`-separated, without leading `./`.
fn normalize(file: &str) -> String {
    let file = file.replace('\\', "/");
    let mut rest = file.as_str();
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    rest.to_string()
}

/// `orders/paid.case.json` → `orders.paid`.
fn classname_of(file: &str) -> String {
    let file = normalize(file);
    let stem = file
        .strip_suffix(".case.json")
        .or_else(|| file.strip_suffix(".json"))
        .unwrap_or(&file);
    if stem.is_empty() {
        "atf".to_string()
    } else {
        stem.replace('/', ".")
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Text for the XML document: characters XML 1.0 cannot carry become
/// U+FFFD (quick-junit would drop them, and with them the trace of what a
/// service sent); `\r` becomes `\n`, as an XML parser would read it, and a
/// tab a space (quick-junit's ANSI filter drops tabs).
fn xml(text: &str) -> XmlString {
    let safe: String = text
        .chars()
        .map(|c| match c {
            '\n' => c,
            '\t' => ' ',
            '\r' => '\n',
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect();
    XmlString::new(safe)
}

fn suite(report: &RunReport, folder: &Folder<'_>) -> TestSuite {
    let mut s = TestSuite::new(xml(&folder.name));
    let total: u64 = folder.cases.iter().map(|c| c.duration_ms).sum();
    s.set_time(ms(total));
    if !report.started_at.is_empty() {
        // As written in report.json (quick-junit's typed timestamp would
        // add milliseconds).
        s.extra
            .insert(XmlString::new("timestamp"), xml(&report.started_at));
    }
    for (name, value) in [("env", &report.env), ("shard", &report.shard)] {
        if let Some(value) = value {
            s.add_property(Property::new(name, xml(value)));
        }
    }
    for case in &folder.cases {
        s.add_test_case(test_case(case));
    }
    let mut cleanup_text = String::new();
    for suite in &folder.suites {
        let prepare_failed = suite.prepare.iter().any(|st| is_failed(st.status));
        if prepare_failed {
            s.add_test_case(setup_case(suite));
        }
        let cleanup_failed: Vec<&StepReport> = suite
            .cleanup
            .iter()
            .filter(|st| is_failed(st.status))
            .collect();
        if !cleanup_failed.is_empty() || !prepare_failed {
            let _ = writeln!(
                cleanup_text,
                "{} {}",
                suite.file,
                suite.status.unwrap_or(Status::Error).as_str()
            );
            for step in cleanup_failed {
                cleanup_text.push_str(&describe_step("cleanup", step));
            }
        }
    }
    if !cleanup_text.is_empty() {
        s.set_system_err(xml(&cleanup_text));
    }
    s
}

fn is_failed(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Error)
}

/// A suite whose `prepare` failed, as a test case in error: its cases did
/// not run, and CI servers list it beside them.
fn setup_case(suite: &SuiteReport) -> TestCase {
    let kind = if suite.prepare.iter().any(|s| s.status == Status::Error) {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut body = String::new();
    for step in suite.prepare.iter().filter(|s| is_failed(s.status)) {
        body.push_str(&describe_step("prepare", step));
    }
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_message(xml(&format!("suite {} prepare failed", suite.file)))
        .set_type(kind_name(kind))
        .set_description(xml(&body));
    let mut name = "suite set-up".to_string();
    if let Some(cell) = &suite.matrix {
        name.push_str(&format!(" [{}]", cell_label(cell)));
    }
    let mut tc = TestCase::new(xml(&name), status);
    tc.set_classname(xml(&classname_of(&suite.file)));
    tc.extra.insert(XmlString::new("file"), xml(&suite.file));
    tc.set_time(ms(suite.prepare.iter().map(|s| s.duration_ms).sum()));
    tc
}

fn kind_name(kind: NonSuccessKind) -> &'static str {
    match kind {
        NonSuccessKind::Failure => "failed",
        NonSuccessKind::Error => "error",
    }
}

/// `checkout_v2=on, region=cn`.
pub fn cell_label(cell: &serde_json::Map<String, Value>) -> String {
    cell.iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn test_case(case: &CaseReport) -> TestCase {
    let earlier = &case.attempts[..case.attempts.len().saturating_sub(1)];
    let status = match case.status {
        Status::Passed | Status::Flaky => {
            let mut st = TestCaseStatus::success();
            st.add_reruns(earlier.iter().map(rerun));
            st
        }
        Status::Failed | Status::Error => {
            let kind = if case.status == Status::Error {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut st = TestCaseStatus::non_success(kind);
            st.set_message(xml(case.error.as_deref().unwrap_or(kind_name(kind))))
                .set_type(kind_name(kind))
                .set_description(xml(&failure_body(case.error.as_deref(), case.all_steps())));
            st.add_reruns(earlier.iter().map(rerun));
            st
        }
        Status::Skipped => {
            let mut st = TestCaseStatus::skipped();
            if let Some(reason) = &case.error {
                st.set_message(xml(reason));
            }
            st
        }
    };
    let mut tc = TestCase::new(xml(&case.name), status);
    tc.set_classname(xml(&classname_of(&case.file)));
    tc.extra.insert(XmlString::new("file"), xml(&case.file));
    tc.set_time(ms(case.duration_ms));
    if let Some(cell) = &case.matrix {
        for (k, v) in cell {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            tc.add_property(Property::new(xml(&format!("matrix.{k}")), xml(&v)));
        }
    }
    let log = log_messages(case);
    if !log.is_empty() {
        tc.set_system_out(xml(&log));
    }
    tc
}

/// An earlier run of a retried case: `flakyFailure`/`flakyError` under a
/// passing case, `rerunFailure`/`rerunError` under a failing one.
fn rerun(a: &Attempt) -> TestRerun {
    let kind = if a.status == Status::Error {
        NonSuccessKind::Error
    } else {
        NonSuccessKind::Failure
    };
    let mut r = TestRerun::new(kind);
    r.set_time(ms(a.duration_ms))
        .set_type(kind_name(kind))
        .set_message(xml(&format!(
            "attempt {}: {}",
            a.attempt,
            a.error.as_deref().unwrap_or(kind_name(kind))
        )))
        .set_description(xml(&failure_body(a.error.as_deref(), a.all_steps())));
    r
}

/// The case's error and every failed step, as the console shows them.
fn failure_body<'a>(
    error: Option<&str>,
    steps: impl Iterator<Item = (&'static str, &'a StepReport)>,
) -> String {
    let mut body = String::new();
    if let Some(err) = error {
        body.push_str(err);
        body.push('\n');
    }
    for (phase, step) in steps {
        if is_failed(step.status) {
            body.push_str(&describe_step(phase, step));
        }
    }
    body
}

/// The messages of the case's `log` steps that ran, one per line.
fn log_messages(case: &CaseReport) -> String {
    let mut text = String::new();
    for (_, step) in case.all_steps() {
        if step.keyword != "log" {
            continue;
        }
        match step.result.get("message") {
            Some(Value::String(s)) => text.push_str(s),
            Some(Value::Null) | None => continue,
            Some(other) => text.push_str(&other.to_string()),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_become_replacement_characters() {
        assert_eq!(
            xml("a<b>&\"c'\u{1b}[31m\u{0}\t\n\r]]>").as_str(),
            "a<b>&\"c'\u{FFFD}[31m\u{FFFD} \n\n]]>"
        );
        assert_eq!(xml("ünï €\u{FFFF}").as_str(), "ünï €\u{FFFD}");
    }

    #[test]
    fn folders_and_classnames() {
        assert_eq!(folder_of("orders/paid.case.json"), "orders");
        assert_eq!(folder_of("./a/b/c.case.json"), "a/b");
        assert_eq!(folder_of("a\\b\\c.case.json"), "a/b");
        assert_eq!(folder_of("top.case.json"), ".");
        assert_eq!(folder_of(""), ".");
        assert_eq!(classname_of("orders/paid.case.json"), "orders.paid");
        assert_eq!(classname_of("top.case.json"), "top");
        assert_eq!(classname_of("x/other.json"), "x.other");
        assert_eq!(classname_of(""), "atf");
    }

    fn attempt(n: u32, status: Status, error: &str) -> Attempt {
        Attempt {
            attempt: n,
            status,
            duration_ms: 10,
            error: Some(error.into()),
            ..Attempt::default()
        }
    }

    #[test]
    fn flaky_and_rerun_cases_follow_surefire() {
        let mut flaky = CaseReport {
            name: "counter".into(),
            file: "a/counter.case.json".into(),
            status: Status::Flaky,
            max_attempts: 3,
            ..CaseReport::default()
        };
        flaky.attempts = vec![
            attempt(1, Status::Failed, "failed at step 1: $.value: expected 2"),
            Attempt {
                attempt: 2,
                status: Status::Passed,
                ..Attempt::default()
            },
        ];
        let mut never = CaseReport {
            name: "never".into(),
            file: "a/never.case.json".into(),
            status: Status::Error,
            error: Some("boom 3".into()),
            max_attempts: 3,
            ..CaseReport::default()
        };
        never.attempts = vec![
            attempt(1, Status::Error, "boom 1"),
            attempt(2, Status::Failed, "boom 2"),
            attempt(3, Status::Error, "boom 3"),
        ];
        let report = RunReport {
            cases: vec![flaky, never],
            ..RunReport::default()
        };
        let xml = render(&report);
        assert!(xml.contains("<flakyFailure"), "{xml}");
        assert!(
            xml.contains("message=\"attempt 1: failed at step 1: $.value: expected 2\""),
            "{xml}"
        );
        assert!(
            xml.contains("<error message=\"boom 3\" type=\"error\">"),
            "{xml}"
        );
        assert!(xml.contains("<rerunError"), "{xml}");
        assert!(xml.contains("<rerunFailure"), "{xml}");
        assert!(xml.contains("message=\"attempt 1: boom 1\""), "{xml}");
        assert!(
            !xml.contains("attempt 3: boom 3"),
            "the last run is the case itself"
        );
        assert!(xml.contains("tests=\"2\""), "{xml}");
        assert!(xml.contains("errors=\"1\""), "{xml}");
        assert!(xml.contains("failures=\"0\""), "{xml}");
    }
}
