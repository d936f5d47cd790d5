//! `junit.xml` of a load run: one `<testsuite>` named `atf load` whose
//! test cases are the thresholds (named as written, failed when breached,
//! the measured value in the message), plus `every iteration passed` when
//! no `errors` threshold sets an error budget — so a CI server shows which
//! threshold failed.

use std::fmt::Write as _;
use std::path::Path;

use super::LoadReport;
use crate::xml::{attr, escape_text};

/// Writes the JUnit report of a load run to `path`.
pub fn write(path: &Path, report: &LoadReport) -> std::io::Result<()> {
    std::fs::write(path, render(report))
}

/// The JUnit XML document of a load run.
pub fn render(report: &LoadReport) -> String {
    struct Test {
        name: String,
        failure: Option<String>,
        out: String,
    }
    let mut tests: Vec<Test> = report
        .thresholds
        .iter()
        .map(|t| Test {
            name: t.expr.clone(),
            failure: (!t.ok).then(|| format!("threshold breached: measured {}", t.measured)),
            out: format!("measured {} ({})", t.measured, t.source),
        })
        .collect();
    if report.iterations_must_pass {
        let s = &report.summary;
        tests.push(Test {
            name: "every iteration passed".into(),
            failure: (s.failed_iterations > 0).then(|| {
                format!(
                    "{} of {} iterations failed (set an `errors<…` threshold to allow some)",
                    s.failed_iterations, s.iterations
                )
            }),
            out: format!(
                "{} of {} iterations failed",
                s.failed_iterations, s.iterations
            ),
        });
    }
    let failures = tests.iter().filter(|t| t.failure.is_some()).count();
    let time = format!("{:.3}", report.summary.duration_s);
    let mut out = String::with_capacity(512 + tests.len() * 256);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"atf load\"");
    let counts = |out: &mut String| {
        attr(out, "tests", &tests.len().to_string());
        attr(out, "failures", &failures.to_string());
        attr(out, "errors", "0");
        attr(out, "skipped", "0");
        attr(out, "time", &time);
    };
    counts(&mut out);
    out.push_str(">\n  <testsuite name=\"atf load thresholds\"");
    counts(&mut out);
    if !report.started_at.is_empty() {
        attr(&mut out, "timestamp", &report.started_at);
    }
    out.push_str(">\n");
    let mut props: Vec<(&str, String)> = Vec::new();
    if let Some(env) = &report.env {
        props.push(("env", env.clone()));
    }
    if !report.shards.is_empty() {
        props.push(("shards", report.shards.join(",")));
    }
    props.push(("model", report.config.model.clone()));
    props.push(("iterations", report.summary.iterations.to_string()));
    props.push(("requests", report.summary.requests.to_string()));
    out.push_str("    <properties>\n");
    for (name, value) in props {
        out.push_str("      <property");
        attr(&mut out, "name", name);
        attr(&mut out, "value", &value);
        out.push_str("/>\n");
    }
    out.push_str("    </properties>\n");
    for t in &tests {
        out.push_str("    <testcase");
        attr(&mut out, "name", &t.name);
        attr(&mut out, "classname", "atf.load.thresholds");
        attr(&mut out, "time", &time);
        out.push_str(">\n");
        if let Some(f) = &t.failure {
            out.push_str("      <failure");
            attr(&mut out, "message", f);
            attr(&mut out, "type", "threshold");
            out.push('>');
            escape_text(&mut out, f);
            out.push_str("</failure>\n");
        }
        let _ = write!(out, "      <system-out>");
        escape_text(&mut out, &t.out);
        out.push_str("</system-out>\n    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
