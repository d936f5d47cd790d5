//! `atf load`: the same case files as a load test.
//!
//! [`options`] shapes the run (closed or open model, duration, ramp,
//! warm-up, weights, shards); [`plan`] builds the mix of cases and the
//! label of every step; [`run`] drives the virtual users ([`vu`]) on a
//! timeline and collects [`metrics`] once a second into HDR histograms
//! ([`histo`]); [`report`] turns them into the aggregate rows and the
//! `load.json` model, judged by [`threshold`]s; [`output`] shows the live
//! line and writes `--samples`; [`merge`] combines shard folders.
//!
//! The engine is the one `atf run` uses: the same keywords, pooled clients,
//! secrets, suites (prepared once for the whole run, cleaned up at its
//! end) and case flow.

pub mod histo;
pub mod merge;
pub mod metrics;
pub mod options;
pub mod output;
pub mod plan;
pub mod report;
pub mod run;
pub mod threshold;
pub mod vu;

use std::sync::Arc;

use atf_reports::load::{LoadReport, show_ms};

use crate::config::RunConfig;
use crate::exec::{SuiteState, cleanup_suite, prepare_suites};
use crate::exit::{
    FAILED as EXIT_FAILED, INTERRUPTED as EXIT_INTERRUPTED, OK as EXIT_OK,
    THRESHOLD as EXIT_THRESHOLD, USAGE as EXIT_USAGE,
};
use crate::model::CaseRun;
use crate::plugin::PluginHost;
use options::LoadOptions;
use plan::Mix;
use threshold::Threshold;

/// The last line of a load run: iterations, rates, p95 and the thresholds.
pub fn closing_line(r: &LoadReport) -> String {
    let s = &r.summary;
    let per_s = |n: u64| {
        if s.duration_s > 0.0 {
            n as f64 / s.duration_s
        } else {
            0.0
        }
    };
    let interrupted = if s.interrupted_iterations > 0 {
        format!(", {} interrupted", s.interrupted_iterations)
    } else {
        String::new()
    };
    let mut line = format!(
        "load: {} iterations ({} failed, {} dropped{interrupted}) in {:.1}s, {:.1} iterations/s, {:.1} requests/s, p95 {}, errors {:.2}%",
        s.iterations,
        s.failed_iterations,
        s.dropped,
        s.duration_s,
        per_s(s.iterations),
        per_s(s.requests),
        show_ms(r.total.p95_ms),
        r.total.error_pct
    );
    if !r.thresholds.is_empty() {
        let met = r.thresholds.iter().filter(|t| t.ok).count();
        line.push_str(&format!(
            "; thresholds: {met} met, {} breached",
            r.thresholds.len() - met
        ));
    }
    if s.interrupted {
        line.push_str(" (interrupted)");
    }
    line
}

/// The exit code of a load run: 130 interrupted, 99 a threshold breached,
/// 1 iterations failed without an `errors` threshold (or a suite failed),
/// else 0.
pub fn exit_code(r: &LoadReport, suite_failed: bool) -> i32 {
    if r.summary.interrupted {
        EXIT_INTERRUPTED
    } else if !r.thresholds_met() {
        EXIT_THRESHOLD
    } else if r.iterations_failed() || suite_failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// A threshold with where it came from.
pub type Sourced = (Threshold, String);

/// Runs the load test of `runs` (loaded and selected) and writes its reports;
/// returns the exit code.
pub fn load(
    cfg: &RunConfig,
    plugins: &PluginHost,
    runs: Vec<CaseRun>,
    opts: LoadOptions,
    thresholds: Vec<Sourced>,
) -> i32 {
    // A case file that does not load stops the run before it starts.
    let broken: Vec<&CaseRun> = runs.iter().filter(|r| r.case.is_err()).collect();
    if !broken.is_empty() {
        for r in broken {
            if let Err(b) = &r.case {
                for d in &b.errors {
                    eprint!("{d}");
                }
            }
        }
        eprintln!("error: fix the case files above: a load test runs only cases that load");
        return EXIT_USAGE;
    }
    let states = crate::exec::suite_states(&runs);
    // The engine reads every case's secrets before anything is printed.
    let all_runs = runs.clone();
    let mix = match Mix::build(runs, &opts.weights, &states) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let case_labels = mix.case_labels();
    for (t, _) in &thresholds {
        let steps = mix.labels.names().iter().map(String::as_str);
        if let Err(e) = t.check_scope(steps, case_labels.iter().map(String::as_str)) {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    }
    let opts = opts.for_shard();
    let nothing = match opts.model {
        options::Model::Closed { vus } => vus == 0,
        options::Model::Open { .. } => false,
    } || opts.iterations == Some(0);
    if nothing {
        eprintln!(
            "error: shard {} gets no virtual users or iterations: use fewer shards",
            opts.shard.map(|s| s.to_string()).unwrap_or_default()
        );
        return EXIT_USAGE;
    }
    let samples = match &opts.samples {
        None => None,
        Some(p) => match output::Jtl::create(p) {
            Ok(j) => Some(j),
            Err(e) => {
                eprintln!("error: cannot write --samples {}: {e}", p.display());
                return EXIT_USAGE;
            }
        },
    };
    // No step result is reported: keywords build only the fields that the
    // steps' checks read and the few the samples need.
    let started = match crate::engine::start(
        cfg,
        plugins,
        &all_runs,
        crate::exec::EventTx::off(),
        Some(vu::SAMPLE_FIELDS),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let shared = started.shared.clone();
    println!(
        "atf load: {} case{} ({}), {}",
        mix.cases.len(),
        if mix.cases.len() == 1 { "" } else { "s" },
        case_labels.join(", "),
        opts.describe()
    );

    // Suites prepare once, before any iteration.
    let mut suite_failed = false;
    let mut prepared_all = true;
    for plan in &mix.cases {
        match prepare_suites(&shared, &plan.chain) {
            Ok(vars) => {
                let _ = plan.suite_vars.set(vars);
            }
            Err(e) => {
                eprintln!("error: {}", shared.masker.text(&e));
                prepared_all = false;
                suite_failed = true;
                break;
            }
        }
    }

    let started_at = chrono::Local::now().to_rfc3339();
    let run = run::LoadRun::new(shared.clone(), mix, &opts, samples);
    match run.vu_threads(&opts) {
        Ok(n) => println!(
            "virtual users share {n} thread{} (they wait for replies on their own stacks)",
            if n == 1 { "" } else { "s" }
        ),
        Err(why) => println!("virtual users: a thread each ({why})"),
    }
    let driven = if prepared_all {
        let mut live = output::Live::new();
        let d = run.drive(&opts, &mut |s| live.show(s));
        live.done();
        Some(d)
    } else {
        None
    };

    // Suites clean up once, innermost first.
    let mut seen: Vec<(usize, Arc<SuiteState>, Vec<Arc<SuiteState>>)> = Vec::new();
    for plan in &run.mix.cases {
        for (depth, st) in plan.chain.iter().enumerate() {
            if !seen.iter().any(|(_, s, _)| Arc::ptr_eq(s, st)) {
                seen.push((depth, st.clone(), plan.chain[..=depth].to_vec()));
            }
        }
    }
    seen.sort_by_key(|(depth, _, _)| std::cmp::Reverse(*depth));
    for (_, st, chain) in &seen {
        let failed = cleanup_suite(&shared, st, chain);
        if !failed.is_empty() {
            suite_failed = true;
            for step in &failed {
                eprintln!(
                    "error: suite {}: cleanup step {} ({}): {}",
                    st.suite.file,
                    step.index,
                    step.keyword,
                    shared.masker.text(&crate::exec::first_problem(step))
                );
            }
        }
    }
    if let Some(j) = &run.samples
        && let Err(e) = j.finish()
    {
        eprintln!("warning: --samples: {e}");
    }
    let interrupted_early = shared.cancel.is_cancelled();
    started.stop();
    let Some(driven) = driven else {
        return if interrupted_early {
            EXIT_INTERRUPTED
        } else {
            EXIT_FAILED
        };
    };
    let report = report::build(
        &run,
        &driven,
        &opts,
        cfg.env_name.clone(),
        started_at,
        &thresholds,
    );
    println!();
    print!("{}", atf_reports::load::table::render(&report));
    let wrote = atf_reports::load::write_all(&opts.report_dir, &report);
    match &wrote {
        Ok(()) => println!("\nReports: {}", opts.report_dir.join("load.html").display()),
        Err(e) => eprintln!(
            "error: cannot write the load reports to {}: {e}",
            opts.report_dir.display()
        ),
    }
    println!("{}", closing_line(&report));
    if wrote.is_err() {
        return EXIT_FAILED;
    }
    exit_code(&report, suite_failed)
}
