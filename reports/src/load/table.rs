//! The aggregate table of a load run as text, with JMeter's columns:
//! Label, # Samples, Average, Median, 90% Line, 95% Line, 99% Line, Min,
//! Max, Error %, Throughput, Received KB/sec, Sent KB/sec — one table for
//! the steps (with the TOTAL row) and one for the cases (whole
//! iterations), then the errors by kind and the thresholds with their
//! verdicts. Latencies are in milliseconds, throughput per second.

use std::fmt::Write as _;

use super::{LoadReport, Row};

const HEADERS: [&str; 13] = [
    "Label",
    "# Samples",
    "Average",
    "Median",
    "90% Line",
    "95% Line",
    "99% Line",
    "Min",
    "Max",
    "Error %",
    "Throughput",
    "Received KB/sec",
    "Sent KB/sec",
];

/// Labels longer than this are cut in the table (load.json and load.html keep them whole).
const MAX_LABEL: usize = 48;

/// A latency in ms with the precision it deserves.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cut(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL {
        return label.to_string();
    }
    let mut s: String = label.chars().take(MAX_LABEL - 1).collect();
    s.push('…');
    s
}

fn cells(r: &Row, label: &str) -> [String; 13] {
    [
        cut(label),
        r.samples.to_string(),
        ms(r.mean_ms),
        ms(r.median_ms),
        ms(r.p90_ms),
        ms(r.p95_ms),
        ms(r.p99_ms),
        ms(r.min_ms),
        ms(r.max_ms),
        format!("{:.2}%", r.error_pct),
        format!("{:.1}/s", r.throughput),
        format!("{:.2}", r.received_kbps),
        format!("{:.2}", r.sent_kbps),
    ]
}

fn table(out: &mut String, title: &str, rows: &[[String; 13]]) {
    let mut widths = HEADERS.map(|h| h.chars().count());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let _ = writeln!(out, "{title}");
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i == 0 {
                text.push_str(c);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push_str("  ");
                text.push_str(&" ".repeat(pad));
                text.push_str(c);
            }
        }
        let _ = writeln!(out, "  {}", text.trim_end());
    };
    line(out, &HEADERS.map(String::from));
    for r in rows {
        line(out, r);
    }
}

/// The tables, the errors and the thresholds of `report`, as the console
/// prints them at the end of a run (latencies in ms).
pub fn render(report: &LoadReport) -> String {
    let mut out = String::new();
    let mut steps: Vec<[String; 13]> = report.steps.iter().map(|r| cells(r, &r.label)).collect();
    steps.push(cells(&report.total, "TOTAL"));
    table(&mut out, "Steps (latency in ms):", &steps);
    if !report.cases.is_empty() {
        out.push('\n');
        let cases: Vec<[String; 13]> = report.cases.iter().map(|r| cells(r, &r.label)).collect();
        table(
            &mut out,
            "Cases (whole iterations, from their intended start; ms):",
            &cases,
        );
    }
    let with_errors: Vec<&Row> = report
        .steps
        .iter()
        .chain(report.cases.iter())
        .filter(|r| r.errors > 0)
        .collect();
    if !with_errors.is_empty() {
        out.push_str("\nErrors:\n");
        for r in with_errors {
            let _ = writeln!(out, "  {} ({} of {}):", r.label, r.errors, r.samples);
            let mut kinds: Vec<(&String, &u64)> = r.errors_by_kind.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (kind, n) in kinds {
                let _ = writeln!(out, "    {n:>8}  {kind}");
            }
            if let Some(first) = r.messages.first() {
                let first = first.lines().next().unwrap_or("");
                let _ = writeln!(out, "    first: {first}");
            }
        }
    }
    if !report.thresholds.is_empty() {
        out.push_str("\nThresholds:\n");
        for t in &report.thresholds {
            let mark = if t.ok { "✓ met     " } else { "✗ BREACHED" };
            let _ = writeln!(out, "  {mark}  {}  (measured {})", t.expr, t.measured);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadReport, Row, ThresholdResult};

    #[test]
    fn table_has_jmeter_columns_and_verdicts() {
        let row = Row {
            label: "place order".into(),
            samples: 1200,
            errors: 3,
            error_pct: 0.25,
            mean_ms: 12.345,
            median_ms: 10.0,
            p90_ms: 20.0,
            p95_ms: 25.5,
            p99_ms: 101.0,
            min_ms: 1.25,
            max_ms: 250.0,
            throughput: 40.0,
            received_kbps: 1.5,
            sent_kbps: 0.5,
            errors_by_kind: [("expectation $.status".to_string(), 3)].into(),
            messages: vec!["$.status: expected 200, got 500".into()],
            ..Row::default()
        };
        let report = LoadReport {
            steps: vec![row.clone()],
            total: row,
            thresholds: vec![ThresholdResult {
                expr: "p95<20ms".into(),
                source: "--threshold".into(),
                measured: "25.5ms".into(),
                ok: false,
            }],
            ..LoadReport::default()
        };
        let text = render(&report);
        let header = text.lines().nth(1).unwrap();
        let mut at = 0;
        for h in HEADERS {
            let found = header[at..]
                .find(h)
                .unwrap_or_else(|| panic!("{h} in {header}"));
            at += found + h.len();
        }
        assert!(text.contains("  place order "), "{text}");
        assert!(text.contains("TOTAL"), "{text}");
        assert!(text.contains("12.3") && text.contains("0.25%") && text.contains("40.0/s"));
        assert!(text.contains("3  expectation $.status"), "{text}");
        assert!(
            text.contains("✗ BREACHED  p95<20ms  (measured 25.5ms)"),
            "{text}"
        );
    }

    #[test]
    fn long_labels_are_cut() {
        let long = "x".repeat(100);
        assert_eq!(cut(&long).chars().count(), MAX_LABEL);
        assert!(cut(&long).ends_with('…'));
        assert_eq!(cut("short"), "short");
    }
}
