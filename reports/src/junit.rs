//! `junit.xml`: the run in the JUnit XML dialect that Jenkins, GitLab and
//! most CI servers read. One `<testsuite>` per case-file folder (named by
//! the folder, `.` for the top), one `<testcase>` per case (classname: the
//! case file's path without `.case.json`, `/` turned into `.`), with
//! `<failure>`, `<error>` or `<skipped>` by status, every failed step in the
//! failure's body as the console shows it, and the case's `log` messages in
//! `<system-out>`; the run's `env` and `shard` are suite properties. A
//! suite file whose own prepare or cleanup failed adds its failed steps to
//! its folder's `<system-err>`. Everything that came from a case or a
//! service is escaped, and characters XML 1.0 forbids (most control
//! characters) are replaced by U+FFFD.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::console::describe_step;
use crate::{CaseReport, RunReport, Status, SuiteReport, Summary};

/// Writes the JUnit report of `report` to `path`.
pub fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    crate::write_atomic(path, render(report).as_bytes())
}

/// The JUnit XML document of `report`.
pub fn render(report: &RunReport) -> String {
    let folders = group_by_folder(report);
    let totals = tally(&report.cases);

    let mut out = String::with_capacity(256 + report.cases.len() * 256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<testsuites name=\"atf\"");
    counts_attrs(&mut out, &totals);
    attr(&mut out, "time", &seconds(report.summary.duration_ms));
    out.push_str(">\n");
    for folder in &folders {
        write_suite(&mut out, report, folder);
    }
    out.push_str("</testsuites>\n");
    out
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
        if matches!(suite.status, Some(Status::Failed | Status::Error)) {
            let i = slot(folder_of(&suite.file), &mut folders);
            folders[i].suites.push(suite);
        }
    }
    folders
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

fn write_suite(out: &mut String, report: &RunReport, folder: &Folder<'_>) {
    let counts = tally(folder.cases.iter().copied());
    out.push_str("  <testsuite");
    attr(out, "name", &folder.name);
    counts_attrs(out, &counts);
    attr(out, "time", &seconds(counts.duration_ms));
    if !report.started_at.is_empty() {
        attr(out, "timestamp", &report.started_at);
    }
    out.push_str(">\n");
    if report.env.is_some() || report.shard.is_some() {
        out.push_str("    <properties>\n");
        for (name, value) in [("env", &report.env), ("shard", &report.shard)] {
            if let Some(value) = value {
                out.push_str("      <property");
                attr(out, "name", name);
                attr(out, "value", value);
                out.push_str("/>\n");
            }
        }
        out.push_str("    </properties>\n");
    }
    for case in &folder.cases {
        write_case(out, case);
    }
    if !folder.suites.is_empty() {
        let mut text = String::new();
        for suite in &folder.suites {
            let _ = writeln!(
                text,
                "{} {}",
                suite.file,
                suite.status.unwrap_or(Status::Error).as_str()
            );
            let steps = suite
                .prepare
                .iter()
                .map(|s| ("prepare", s))
                .chain(suite.cleanup.iter().map(|s| ("cleanup", s)));
            for (phase, step) in steps {
                if matches!(step.status, Status::Failed | Status::Error) {
                    text.push_str(&describe_step(phase, step));
                }
            }
        }
        out.push_str("    <system-err>");
        escape_text(out, &text);
        out.push_str("</system-err>\n");
    }
    out.push_str("  </testsuite>\n");
}

fn write_case(out: &mut String, case: &CaseReport) {
    out.push_str("    <testcase");
    attr(out, "name", &case.name);
    attr(out, "classname", &classname_of(&case.file));
    attr(out, "file", &case.file);
    attr(out, "time", &seconds(case.duration_ms));
    let log = log_messages(case);
    if case.status == Status::Passed && log.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    match case.status {
        Status::Passed => {}
        Status::Failed => outcome(out, "failure", "failed", case),
        Status::Error => outcome(out, "error", "error", case),
        Status::Skipped => {
            out.push_str("      <skipped");
            if let Some(reason) = &case.error {
                attr(out, "message", reason);
            }
            out.push_str("/>\n");
        }
    }
    if !log.is_empty() {
        out.push_str("      <system-out>");
        escape_text(out, &log);
        out.push_str("</system-out>\n");
    }
    out.push_str("    </testcase>\n");
}

/// A `<failure>` or `<error>` element: the case's one-line error as the
/// message, the error and every failed step as the body.
fn outcome(out: &mut String, element: &str, kind: &str, case: &CaseReport) {
    let message = case.error.as_deref().unwrap_or(kind);
    let mut body = String::new();
    if let Some(err) = &case.error {
        body.push_str(err);
        body.push('\n');
    }
    for (phase, step) in case.all_steps() {
        if matches!(step.status, Status::Failed | Status::Error) {
            body.push_str(&describe_step(phase, step));
        }
    }
    let _ = write!(out, "      <{element}");
    attr(out, "message", message);
    attr(out, "type", kind);
    out.push('>');
    escape_text(out, &body);
    let _ = writeln!(out, "</{element}>");
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

/// Counts by status and the summed durations of `cases`.
fn tally<'a>(cases: impl IntoIterator<Item = &'a CaseReport>) -> Summary {
    let mut s = Summary::default();
    for c in cases {
        s.total += 1;
        s.duration_ms += c.duration_ms;
        match c.status {
            Status::Passed => s.passed += 1,
            Status::Failed => s.failed += 1,
            Status::Error => s.errored += 1,
            Status::Skipped => s.skipped += 1,
        }
    }
    s
}

fn counts_attrs(out: &mut String, s: &Summary) {
    let _ = write!(
        out,
        " tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
        s.total, s.failed, s.errored, s.skipped
    );
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// ` name="value"`, the value escaped for an attribute.
pub(crate) fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape(out, value, true);
    out.push('"');
}

pub(crate) fn escape_text(out: &mut String, text: &str) {
    escape(out, text, false);
}

/// Escapes `text` for XML 1.0 character data, or for a double-quoted
/// attribute value (where tabs and line breaks become character
/// references, so parsers keep them). Characters XML 1.0 cannot carry at
/// all become U+FFFD.
fn escape(out: &mut String, text: &str, in_attr: bool) {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let replacement = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' if in_attr => "&quot;",
            '\'' if in_attr => "&apos;",
            '\t' if in_attr => "&#9;",
            '\n' if in_attr => "&#10;",
            '\r' => "&#13;",
            '\t' | '\n' => continue,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => "\u{FFFD}",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        out.push_str(replacement);
        start = i + c.len_utf8();
    }
    out.push_str(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str, in_attr: bool) -> String {
        let mut out = String::new();
        escape(&mut out, s, in_attr);
        out
    }

    #[test]
    fn escapes_markup_and_forbidden_characters() {
        assert_eq!(
            esc("a<b>&\"c'\u{1b}\u{0}\t\n\r]]>", false),
            "a&lt;b&gt;&amp;\"c'\u{FFFD}\u{FFFD}\t\n&#13;]]&gt;"
        );
        assert_eq!(esc("\"x'\t\n", true), "&quot;x&apos;&#9;&#10;");
        assert_eq!(esc("ünï €\u{FFFF}", false), "ünï €\u{FFFD}");
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

    #[test]
    fn seconds_have_three_decimals() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }
}
