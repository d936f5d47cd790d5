//! Turning the measurements into the load report: the aggregate rows per
//! step label and per case, the TOTAL row, the summary, and the
//! thresholds' verdicts — for a run that just ended and, from the
//! histograms in `load.json`, for merged shards.

use std::collections::BTreeMap;

use atf_reports::load::{LoadConfig, LoadReport, LoadSummary, Row};

use super::histo::{self, Counts};
use super::metrics::Totals;
use super::options::{LoadOptions, Model};
use super::run::{Driven, LoadRun};
use super::threshold::Threshold;

/// The row of one label from its totals.
pub fn row_of(label: &str, t: &Totals, secs: f64) -> Row {
    let mut r = histo::row(label, &t.histogram, t.counts, secs);
    r.errors_by_kind = t.kinds.iter().cloned().collect();
    r.messages = t.messages.clone();
    r
}

/// The TOTAL row of several labels.
pub fn total_of<'a>(parts: impl IntoIterator<Item = &'a Totals>, secs: f64) -> Row {
    let mut h = histo::new();
    let mut c = Counts::default();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for t in parts {
        histo::add(&mut h, &t.histogram);
        c.samples += t.counts.samples;
        c.errors += t.counts.errors;
        c.sent += t.counts.sent;
        c.received += t.counts.received;
        for (k, n) in &t.kinds {
            *kinds.entry(k.clone()).or_default() += n;
        }
    }
    let mut r = histo::row("TOTAL", &h, c, secs);
    r.errors_by_kind = kinds;
    r
}

/// The configuration as the report shows it.
pub fn config_of(opts: &LoadOptions, weights: BTreeMap<String, f64>) -> LoadConfig {
    let (model, vus, rate, max_vus) = match opts.model {
        Model::Closed { vus } => ("closed", Some(vus), None, None),
        Model::Open { rate, max_vus } => ("open", None, Some(rate), Some(max_vus)),
    };
    LoadConfig {
        model: model.into(),
        vus,
        rate,
        max_vus,
        duration_s: opts.duration.map(|d| d.as_secs_f64()),
        iterations: opts.iterations,
        ramp_s: opts.ramp.as_secs_f64(),
        warmup_s: opts.warmup.as_secs_f64(),
        iteration: opts.iteration.as_str().into(),
        weights,
    }
}

/// Evaluates `thresholds` on `report` and sets whether iterations must pass.
pub fn judge(report: &mut LoadReport, thresholds: &[(Threshold, String)]) {
    report.thresholds = thresholds
        .iter()
        .map(|(t, source)| t.evaluate(report, source))
        .collect();
    report.iterations_must_pass = !thresholds.iter().any(|(t, _)| t.is_error_budget());
}

/// The report of a run that just ended.
pub fn build(
    run: &LoadRun,
    driven: &Driven,
    opts: &LoadOptions,
    env: Option<String>,
    started_at: String,
    thresholds: &[(Threshold, String)],
) -> LoadReport {
    let secs = driven.measured_s;
    let steps = run.metrics.step_totals();
    let cases = run.metrics.case_totals();
    let names = run.mix.labels.names();
    // Labels are remarks and case names: masked like every report text.
    let masker = &run.shared.masker;
    let step_rows: Vec<Row> = steps
        .iter()
        .zip(names)
        .map(|(t, n)| row_of(&masker.text(n), t, secs))
        .collect();
    let case_rows: Vec<Row> = cases
        .iter()
        .zip(&run.mix.cases)
        .map(|(t, c)| row_of(&masker.text(&c.label), t, secs))
        .collect();
    let total = total_of(&steps, secs);
    let summary = LoadSummary {
        duration_s: secs,
        iterations: case_rows.iter().map(|r| r.samples).sum(),
        failed_iterations: case_rows.iter().map(|r| r.errors).sum(),
        dropped: driven.dropped,
        interrupted_iterations: run.metrics.interrupted_iterations(),
        requests: total.samples,
        errors: total.errors,
        max_vus: run.peak.load(std::sync::atomic::Ordering::SeqCst),
        bytes_sent: total.bytes_sent,
        bytes_received: total.bytes_received,
        interrupted: driven.interrupted,
    };
    let weights = run
        .mix
        .cases
        .iter()
        .map(|c| (c.label.clone(), c.weight))
        .collect();
    let mut report = LoadReport {
        version: atf_reports::load::FORMAT_VERSION,
        started_at,
        env,
        shards: opts.shard.map(|s| s.to_string()).into_iter().collect(),
        config: config_of(opts, weights),
        summary,
        steps: step_rows,
        cases: case_rows,
        total,
        series: driven.series.clone(),
        thresholds: Vec::new(),
        iterations_must_pass: true,
    };
    judge(&mut report, thresholds);
    report
}

/// The totals of a row read back from `load.json`.
pub fn totals_of_row(r: &Row) -> Result<Totals, String> {
    Ok(Totals {
        histogram: histo::decode(&r.histogram).map_err(|e| format!("{}: {e}", r.label))?,
        counts: Counts {
            samples: r.samples,
            errors: r.errors,
            sent: r.bytes_sent,
            received: r.bytes_received,
        },
        kinds: r
            .errors_by_kind
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
        messages: r.messages.clone(),
    })
}

/// Adds `from` into `into` (histograms, counts, kinds; messages up to 5).
pub fn add_totals(into: &mut Totals, from: &Totals) {
    histo::add(&mut into.histogram, &from.histogram);
    into.counts.samples += from.counts.samples;
    into.counts.errors += from.counts.errors;
    into.counts.sent += from.counts.sent;
    into.counts.received += from.counts.received;
    for (k, n) in &from.kinds {
        match into.kinds.iter_mut().find(|(x, _)| x == k) {
            Some((_, m)) => *m += n,
            None => into.kinds.push((k.clone(), *n)),
        }
    }
    for m in &from.messages {
        if into.messages.len() < 5 && !into.messages.contains(m) {
            into.messages.push(m.clone());
        }
    }
}

/// An empty histogram's totals.
pub fn empty_totals() -> Totals {
    Totals {
        histogram: histo::new(),
        counts: Counts::default(),
        kinds: Vec::new(),
        messages: Vec::new(),
    }
}
