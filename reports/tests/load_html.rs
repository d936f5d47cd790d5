//! `load.html` checked as text (self-contained, nothing from a run left as
//! markup) and as a page: headless Chromium (installed by
//! `scripts/test-deps.sh`) renders it; the tests read the rendered DOM —
//! the three charts with their lines, the tables, the thresholds' verdicts
//! — and take a screenshot.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use atf_reports::load::{self, LoadConfig, LoadReport, LoadSummary, Point, Row, ThresholdResult};

const HOSTILE: &str = "<b id=\"pwned\">order</b> & co";

fn row(label: &str, samples: u64, errors: u64, p95: f64) -> Row {
    Row {
        label: label.into(),
        samples,
        errors,
        error_pct: errors as f64 * 100.0 / samples as f64,
        mean_ms: p95 / 3.0,
        median_ms: p95 / 4.0,
        p90_ms: p95 * 0.8,
        p95_ms: p95,
        p99_ms: p95 * 1.5,
        min_ms: 0.4,
        max_ms: p95 * 3.0,
        throughput: samples as f64 / 30.0,
        received_kbps: 12.5,
        sent_kbps: 3.25,
        distribution: (0..10)
            .map(|i| [i as f64 * 10.0, p95 / 4.0 + i as f64 * p95 / 10.0])
            .chain([[99.0, p95 * 1.5], [99.9, p95 * 2.0], [100.0, p95 * 3.0]])
            .collect(),
        errors_by_kind: if errors > 0 {
            [("expectation $.status".to_string(), errors)].into()
        } else {
            Default::default()
        },
        messages: if errors > 0 {
            vec![format!("$.status: expected 200, got 503 {HOSTILE}")]
        } else {
            Vec::new()
        },
        histogram: "HISTFAAAACx4nJNpmSzMwMDAxAABzFCaEUzOmTG".into(),
        ..Row::default()
    }
}

fn sample() -> LoadReport {
    let series = (1..=30)
        .map(|t| Point {
            t: t as f64,
            dt: 1.0,
            vus: 16,
            iterations: 300 + t * 3,
            failed_iterations: u64::from(t % 10 == 0),
            dropped: u64::from(t > 25) * 4,
            requests: 600 + t * 6,
            errors: u64::from(t % 10 == 0),
            p50_ms: 4.0 + (t as f64 / 5.0).sin(),
            p90_ms: 9.0,
            p95_ms: 12.0 + t as f64 / 10.0,
            p99_ms: 40.0,
            max_ms: 120.0,
            bytes_received: 10_000,
            bytes_sent: 3_000,
            histogram: "HISTFAAAACx4nJNpmSzMwMDAxAABzFCaEUzOmTG".into(),
        })
        .collect();
    LoadReport {
        version: load::FORMAT_VERSION,
        started_at: "2026-11-30T12:00:00+00:00".into(),
        env: Some("ci".into()),
        shards: vec![],
        config: LoadConfig {
            model: "open".into(),
            rate: Some(300.0),
            max_vus: Some(500),
            duration_s: Some(30.0),
            iteration: "case".into(),
            ..LoadConfig::default()
        },
        summary: LoadSummary {
            duration_s: 30.0,
            iterations: 9_500,
            failed_iterations: 3,
            dropped: 20,
            requests: 19_000,
            errors: 3,
            max_vus: 16,
            ..LoadSummary::default()
        },
        steps: vec![
            row("place order", 9_500, 3, 14.0),
            row(HOSTILE, 9_500, 0, 6.0),
        ],
        cases: vec![row("checkout", 9_500, 3, 25.0)],
        total: row("TOTAL", 19_000, 3, 13.0),
        series,
        thresholds: vec![
            ThresholdResult {
                expr: "p95<200ms".into(),
                source: "--threshold".into(),
                measured: "13.0ms".into(),
                ok: true,
            },
            ThresholdResult {
                expr: "dropped==0".into(),
                source: "atf.json, environment `ci`".into(),
                measured: "20".into(),
                ok: false,
            },
        ],
        iterations_must_pass: false,
    }
}

fn write_page(report: &LoadReport) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.html");
    load::html::write(&path, report).unwrap();
    (dir, path)
}

fn render(page: &Path, extra: &[&str]) -> (String, std::process::Output) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = common::chromium_command(profile.path());
    cmd.arg("--virtual-time-budget=2000")
        .args(extra)
        .arg(format!("file://{}", page.display()));
    let out = common::run_with_limit(&mut cmd, Duration::from_secs(90))
        .expect("chromium starts")
        .unwrap_or_else(|| panic!("chromium did not finish within 90 s"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), out)
}

/// The `d` attribute of the line of `series` in the chart `id`.
fn line_of<'a>(dom: &'a str, id: &str, series: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let chart = &dom[at..at + dom[at..].find("</svg>").unwrap()];
    let tag = chart
        .match_indices("<path")
        .map(|(i, _)| &chart[i..i + chart[i..].find('>').unwrap()])
        .find(|t| t.contains(&format!("data-series=\"{series}\"")))
        .unwrap_or_else(|| panic!("no line {series} in #{id}"));
    let d = tag.find(" d=\"").unwrap() + 4;
    &tag[d..d + tag[d..].find('"').unwrap()]
}

#[test]
fn page_is_self_contained_and_data_is_inert() {
    let page = load::html::render(&sample()).unwrap();
    let lower = page.to_ascii_lowercase();
    for remote in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "src=\"//",
    ] {
        assert!(!lower.contains(remote), "the page loads {remote}…");
    }
    assert!(page.contains("default-src 'none'; script-src 'sha256-"));
    assert_eq!(lower.matches("src=").count(), 0);
    assert!(!page.contains("<b id="), "raw markup from a run");
    assert!(!page.contains("HISTFAAAA"), "histograms stay in load.json");
    assert_eq!(page.matches("<script").count(), 2);
}

#[test]
fn chromium_draws_the_charts_tables_and_verdicts() {
    let report = sample();
    let (_dir, page) = write_page(&report);
    let (dom, _) = render(&page, &["--dump-dom"]);
    assert!(dom.contains("</html>"), "no DOM: {dom}");
    // Latency percentiles over time: one point per second in each line.
    for s in ["p50", "p90", "p95", "p99"] {
        let d = line_of(&dom, "chart-latency", s);
        assert_eq!(d.matches(['M', 'L']).count(), 30, "{s}: {d}");
    }
    // Throughput and errors over time.
    for s in ["requests/s", "iterations/s", "errors/s", "dropped/s"] {
        assert_eq!(
            line_of(&dom, "chart-throughput", s)
                .matches(['M', 'L'])
                .count(),
            30
        );
    }
    // The distribution: TOTAL and each step, by percentile.
    assert_eq!(
        line_of(&dom, "chart-distribution", "TOTAL")
            .matches(['M', 'L'])
            .count(),
        13
    );
    assert!(!line_of(&dom, "chart-distribution", "place order").is_empty());
    // The tables: every step, TOTAL, every case, with JMeter's columns.
    assert!(dom.contains("<th>90% Line</th>") && dom.contains("<th>Received KB/sec</th>"));
    assert!(dom.contains("data-label=\"place order\""));
    assert!(dom.contains("data-label=\"TOTAL\""));
    assert!(dom.contains("data-label=\"checkout\""));
    // A label from the run is text, never markup.
    assert!(
        dom.contains("&lt;b id=\"pwned\"&gt;order&lt;/b&gt; &amp; co"),
        "label not shown as text"
    );
    assert!(!dom.contains("<b id=\"pwned\">"), "run data became markup");
    // Thresholds: the breached one is marked.
    assert!(dom.contains("data-ok=\"true\""));
    let bad = dom.find("data-ok=\"false\"").expect("a breached threshold");
    assert!(dom[bad..].contains("dropped==0"));
    // Errors with their kinds and first messages.
    assert!(dom.contains("3 × expectation $.status"));
}

#[test]
fn chromium_takes_a_screenshot() {
    let (dir, page) = write_page(&sample());
    let shot = dir.path().join("load.png");
    render(
        &page,
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 30_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("ATF_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
