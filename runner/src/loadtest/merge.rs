//! `atf report merge` of load-run folders (`--shard K/N` runs): adds the
//! HDR histograms of every step label, case, TOTAL row and second, so the
//! merged percentiles are those of all samples together (not averages of
//! percentiles), sums counts and VUs, and evaluates the thresholds again
//! on the merged result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use atf_reports::load::{LoadReport, Point, Row};

use super::histo;
use super::metrics::Totals;
use super::report::{add_totals, empty_totals, judge, row_of, totals_of_row};
use super::threshold::Threshold;

/// Whether `dir` (or the file it names) holds a load run.
pub fn is_load_dir(dir: &Path) -> bool {
    if dir.is_file() {
        return dir.file_name().is_some_and(|n| n == "load.json");
    }
    dir.join("load.json").is_file() && !dir.join("report.json").is_file()
}

fn merge_rows(
    reports: &[LoadReport],
    pick: fn(&LoadReport) -> &[Row],
    secs: f64,
) -> Result<Vec<Row>, String> {
    let mut order: Vec<String> = Vec::new();
    let mut acc: BTreeMap<String, Totals> = BTreeMap::new();
    for r in reports {
        for row in pick(r) {
            let t = totals_of_row(row)?;
            match acc.get_mut(&row.label) {
                Some(into) => add_totals(into, &t),
                None => {
                    order.push(row.label.clone());
                    acc.insert(row.label.clone(), t);
                }
            }
        }
    }
    Ok(order
        .iter()
        .filter_map(|l| acc.get(l).map(|t| row_of(l, t, secs)))
        .collect())
}

fn merge_series(reports: &[LoadReport]) -> Result<Vec<Point>, String> {
    let len = reports.iter().map(|r| r.series.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let mut h = histo::new();
        let mut p = Point::default();
        for r in reports {
            let Some(q) = r.series.get(i) else { continue };
            histo::add(&mut h, &histo::decode(&q.histogram)?);
            p.t = p.t.max(q.t);
            p.dt = p.dt.max(q.dt);
            p.vus += q.vus;
            p.iterations += q.iterations;
            p.failed_iterations += q.failed_iterations;
            p.dropped += q.dropped;
            p.requests += q.requests;
            p.errors += q.errors;
            p.bytes_received += q.bytes_received;
            p.bytes_sent += q.bytes_sent;
        }
        p.p50_ms = histo::quantile_ms(&h, 0.5);
        p.p90_ms = histo::quantile_ms(&h, 0.9);
        p.p95_ms = histo::quantile_ms(&h, 0.95);
        p.p99_ms = histo::quantile_ms(&h, 0.99);
        p.max_ms = if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        };
        p.histogram = histo::encode(&h);
        out.push(p);
    }
    Ok(out)
}

/// One load report from several shards' reports; thresholds are evaluated again.
pub fn merge_reports(reports: Vec<LoadReport>) -> Result<LoadReport, String> {
    let Some(first) = reports.first() else {
        return Err("nothing to merge".into());
    };
    if let Some(other) = reports
        .iter()
        .find(|r| r.config.model != first.config.model)
    {
        return Err(format!(
            "cannot merge a {} model run with an {} model run",
            first.config.model, other.config.model
        ));
    }
    let secs = reports
        .iter()
        .map(|r| r.summary.duration_s)
        .fold(0.0, f64::max);
    let mut config = first.config.clone();
    let sum = |f: fn(&LoadReport) -> Option<u64>| -> Option<u64> {
        reports.iter().map(f).sum::<Option<u64>>()
    };
    config.vus = sum(|r| r.config.vus);
    config.max_vus = sum(|r| r.config.max_vus);
    config.iterations = sum(|r| r.config.iterations);
    config.rate = reports.iter().map(|r| r.config.rate).sum::<Option<f64>>();
    config.duration_s = reports
        .iter()
        .filter_map(|r| r.config.duration_s)
        .reduce(f64::max);
    let mut total = empty_totals();
    for r in &reports {
        add_totals(&mut total, &totals_of_row(&r.total)?);
    }
    let mut total_row = row_of("TOTAL", &total, secs);
    total_row.messages.clear();
    let mut summary = first.summary.clone();
    summary.duration_s = secs;
    for r in &reports[1..] {
        let s = &r.summary;
        summary.iterations += s.iterations;
        summary.failed_iterations += s.failed_iterations;
        summary.dropped += s.dropped;
        summary.interrupted_iterations += s.interrupted_iterations;
        summary.requests += s.requests;
        summary.errors += s.errors;
        summary.max_vus += s.max_vus;
        summary.bytes_sent += s.bytes_sent;
        summary.bytes_received += s.bytes_received;
        summary.interrupted |= s.interrupted;
    }
    // Thresholds: each distinct one once, parsed again from its text.
    let mut thresholds: Vec<(Threshold, String)> = Vec::new();
    for r in &reports {
        for t in &r.thresholds {
            if thresholds
                .iter()
                .any(|(x, s)| x.text == t.expr && *s == t.source)
            {
                continue;
            }
            let parsed: Threshold = t.expr.parse()?;
            thresholds.push((parsed, t.source.clone()));
        }
    }
    let mut merged = LoadReport {
        version: atf_reports::load::FORMAT_VERSION,
        started_at: reports
            .iter()
            .map(|r| r.started_at.clone())
            .filter(|s| !s.is_empty())
            .min()
            .unwrap_or_default(),
        env: first.env.clone(),
        shards: reports.iter().flat_map(|r| r.shards.clone()).collect(),
        config,
        summary,
        steps: merge_rows(&reports, |r| &r.steps, secs)?,
        cases: merge_rows(&reports, |r| &r.cases, secs)?,
        total: total_row,
        series: merge_series(&reports)?,
        thresholds: Vec::new(),
        iterations_must_pass: true,
    };
    judge(&mut merged, &thresholds);
    Ok(merged)
}

/// `atf report merge` of load folders into `out`; the exit code of `atf load`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> i32 {
    let mut reports = Vec::with_capacity(dirs.len());
    for d in dirs {
        let path = if d.is_file() {
            d.clone()
        } else {
            d.join("load.json")
        };
        match atf_reports::load::json::read(&path) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return crate::exit::USAGE;
            }
        }
    }
    let merged = match merge_reports(reports) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::USAGE;
        }
    };
    if let Err(e) = atf_reports::load::write_all(out, &merged) {
        eprintln!(
            "error: cannot write the load reports to {}: {e}",
            out.display()
        );
        return crate::exit::FAILED;
    }
    print!("{}", atf_reports::load::table::render(&merged));
    println!(
        "merged {} load reports into {}",
        dirs.len(),
        out.join("load.html").display()
    );
    println!("{}", super::closing_line(&merged));
    super::exit_code(&merged, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::histo::Counts;

    fn shard(values: &[u64], errors: u64, threshold: &str) -> LoadReport {
        let mut h = histo::new();
        for v in values {
            histo::record(&mut h, *v);
        }
        let c = Counts {
            samples: values.len() as u64,
            errors,
            sent: 100,
            received: 200,
        };
        let row = histo::row("get", &h, c, 10.0);
        let mut total = histo::row("TOTAL", &h, c, 10.0);
        total.messages.clear();
        LoadReport {
            version: 1,
            config: atf_reports::load::LoadConfig {
                model: "closed".into(),
                vus: Some(2),
                iteration: "case".into(),
                ..Default::default()
            },
            summary: atf_reports::load::LoadSummary {
                duration_s: 10.0,
                iterations: values.len() as u64,
                requests: values.len() as u64,
                errors,
                ..Default::default()
            },
            steps: vec![row],
            total,
            thresholds: vec![atf_reports::load::ThresholdResult {
                expr: threshold.into(),
                source: "--threshold".into(),
                measured: String::new(),
                ok: true,
            }],
            ..LoadReport::default()
        }
    }

    #[test]
    fn merged_percentiles_are_those_of_all_samples() {
        // Shard 1 is fast, shard 2 slow: the merged p50 is neither shard's.
        let a: Vec<u64> = (0..900).map(|i| 1_000 + i).collect();
        let b: Vec<u64> = (0..100).map(|i| 500_000 + i * 10).collect();
        let merged =
            merge_reports(vec![shard(&a, 0, "p95<100ms"), shard(&b, 10, "p95<100ms")]).unwrap();
        let mut all = histo::new();
        for v in a.iter().chain(&b) {
            histo::record(&mut all, *v);
        }
        assert_eq!(merged.total.samples, 1000);
        assert_eq!(merged.steps[0].samples, 1000);
        assert_eq!(merged.total.p95_ms, histo::quantile_ms(&all, 0.95));
        assert_eq!(merged.steps[0].median_ms, histo::quantile_ms(&all, 0.5));
        assert_eq!(merged.config.vus, Some(4));
        assert_eq!(merged.summary.errors, 10);
        assert_eq!(merged.total.bytes_sent, 200);
        // Each shard met p95<100ms on its own? Shard 2 did not; the whole does not either.
        assert_eq!(merged.thresholds.len(), 1);
        assert!(!merged.thresholds[0].ok, "{:?}", merged.thresholds);
        assert!(merged.iterations_must_pass);
    }

    #[test]
    fn models_must_match() {
        let mut open = shard(&[1], 0, "p95<1s");
        open.config.model = "open".into();
        let e = merge_reports(vec![shard(&[1], 0, "p95<1s"), open]).unwrap_err();
        assert!(e.contains("cannot merge"), "{e}");
    }
}
