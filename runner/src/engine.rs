//! One run, start to end: the tokio runtime, the keywords (built-in and
//! plugin), the environment's vars and resources with their secrets, the
//! Ctrl-C handler, then [`crate::exec::execute`].
//!
//! While the run goes, the cases that finished are kept (masked) so that
//! a second Ctrl-C — which stops at once, running no cleanup — still
//! writes the reports of what finished, marked `interrupted`, before atf
//! exits; [`write_reports`] writes the final ones otherwise.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use atf_reports::{Event, Reporter, RunReport};
use serde_json::{Map, Value};

use crate::config::RunConfig;
use crate::exec::{Cancel, ExecOptions, Shared};
use crate::model::CaseRun;
use crate::plugin::PluginHost;
use crate::secret::Masker;

/// How a run ended.
pub struct Outcome {
    /// The report, secrets masked.
    pub report: RunReport,
    /// Whether Ctrl-C interrupted it.
    pub interrupted: bool,
    /// A flaky case fails the run (`--fail-on-flaky`).
    pub fail_on_flaky: bool,
}

impl Outcome {
    /// The exit code: 0 all passed (skips allowed), 1 a failure or error,
    /// 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        let code = crate::exit::of_run(&self.report, self.interrupted);
        if code == crate::exit::OK && self.fail_on_flaky && self.report.summary.flaky > 0 {
            return crate::exit::FAILED;
        }
        code
    }
}

/// What Ctrl-C does at the moment.
enum OnCtrlC {
    /// A run is going: the first Ctrl-C cancels it (running cases clean
    /// up), a second one exits at once.
    Run(Arc<Cancel>),
    /// `atf run --watch` waits between runs: the first Ctrl-C sets the
    /// flag, which ends the watch; a second one exits at once.
    Idle(Arc<Cancel>),
}

/// The process's Ctrl-C state, shared with the handler.
fn ctrlc_slot() -> &'static Mutex<Option<OnCtrlC>> {
    static SLOT: OnceLock<Mutex<Option<OnCtrlC>>> = OnceLock::new();
    SLOT.get_or_init(|| Mutex::new(None))
}

/// Sets what Ctrl-C does, installing the handler on the first call.
fn set_ctrlc(update: impl FnOnce(Option<OnCtrlC>) -> OnCtrlC) {
    {
        let mut slot = ctrlc_slot()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = slot.take();
        *slot = Some(update(old));
    }
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = ctrlc::set_handler(on_ctrlc);
    });
}

fn on_ctrlc() {
    let Ok(slot) = ctrlc_slot().lock() else {
        std::process::exit(crate::exit::INTERRUPTED);
    };
    match slot.as_ref() {
        Some(OnCtrlC::Run(c)) if !c.is_cancelled() => {
            c.cancel();
            eprintln!(
                "\ninterrupted: starting no new cases; running cases stop and clean up. Press Ctrl-C again to stop at once."
            );
        }
        Some(OnCtrlC::Idle(stop)) if !stop.is_cancelled() => stop.cancel(),
        _ => {
            eprintln!("\ninterrupted again: stopping now, without cleanup.");
            // The reports first, as the run stands now; then the programs
            // go, so no case can finish between the two.
            write_partial();
            atf_keywords::core::kill_running_programs();
            std::process::exit(crate::exit::INTERRUPTED);
        }
    }
}

/// The report folder of the run in progress, until its reports are
/// written: a second Ctrl-C rebuilds the reports of what finished from its
/// `events.jsonl` (every finished step is on disk already).
fn partial_slot() -> &'static Mutex<Option<PathBuf>> {
    static SLOT: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    SLOT.get_or_init(|| Mutex::new(None))
}

/// Writes the reports of what finished, marked interrupted (a second
/// Ctrl-C). Nothing when the final reports are written already.
fn write_partial() {
    let slot = partial_slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(dir) = slot.as_ref() else {
        return;
    };
    let events = std::fs::read_to_string(dir.join(atf_reports::events_file::FILE_NAME))
        .map_err(|e| e.to_string())
        .and_then(|text| atf_reports::read_jsonl(&text));
    let events = match events {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read the events of this run: {e}");
            return;
        }
    };
    let mut builder = atf_reports::ReportBuilder::new();
    for e in &events {
        builder.apply(e);
    }
    let mut report = builder.finish();
    report.interrupted = true;
    let finished = report
        .cases
        .iter()
        .filter(|c| c.status != atf_reports::Status::Skipped)
        .count();
    match atf_reports::write_all(dir, &report) {
        Ok(()) => eprintln!(
            "wrote the reports of the {finished} cases that finished to {}",
            dir.display()
        ),
        Err(e) => eprintln!("error: cannot write reports to {}: {e}", dir.display()),
    }
}

/// Writes the final reports of a run into `dir` (see
/// [`atf_reports::write_all`]); a second Ctrl-C from now on exits without
/// writing partial ones over them.
pub fn write_reports(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    let mut slot = partial_slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    *slot = None;
    atf_reports::write_all(dir, report)
}

/// Ctrl-C cancels this run. A Ctrl-C that came while `atf run --watch`
/// was between runs (loading this one) cancels it from the start.
fn install_ctrlc(cancel: Arc<Cancel>) {
    set_ctrlc(|old| {
        if let Some(OnCtrlC::Idle(stop)) = &old
            && stop.is_cancelled()
        {
            cancel.cancel();
        }
        OnCtrlC::Run(cancel)
    });
}

/// Puts Ctrl-C in the between-runs state of `atf run --watch` and returns
/// the flag that the next Ctrl-C sets (a second Ctrl-C exits at once with
/// 130). The flag is set already when Ctrl-C interrupted the run that
/// just ended, or came while idle before.
pub fn ctrlc_idle() -> Arc<Cancel> {
    let stop = Arc::new(Cancel::default());
    set_ctrlc(|old| {
        match &old {
            Some(OnCtrlC::Run(c) | OnCtrlC::Idle(c)) if c.is_cancelled() => stop.cancel(),
            _ => {}
        }
        OnCtrlC::Idle(stop.clone())
    });
    stop
}

/// Resolves the environment's vars (in order; they may use `${env.X}`,
/// functions and the vars before them) and collects their secrets.
fn env_vars(cfg: &RunConfig, masker: &Masker) -> Result<Map<String, Value>, String> {
    struct NoNames;
    impl crate::resolve::Lookup for NoNames {
        fn get(&self, _: &str) -> Option<Value> {
            None
        }
        fn names(&self) -> Vec<String> {
            Vec::new()
        }
    }
    let mut vars = Map::new();
    crate::exec::context::resolve_vars(
        &crate::model::Vars::new(cfg.env.vars.clone()),
        &mut vars,
        &NoNames,
        &cfg.project.root,
        &cfg.overrides,
    )
    .map_err(|e| format!("environment vars: {e}"))?;
    for name in &cfg.project.secrets {
        if let Some(Value::String(v)) = vars.get(name) {
            masker.add(v);
        } else if let Some(v) = vars.get(name) {
            masker.add(&v.to_string());
        }
        if let Ok(v) = std::env::var(name) {
            masker.add(&v);
        }
        if let Some(v) = cfg.overrides.get(name) {
            match v {
                Value::String(s) => masker.add(s),
                other => masker.add(&other.to_string()),
            }
        }
    }
    Ok(vars)
}

/// Resolves placeholders in the resources (e.g. `${env.DB_PASSWORD}` in a URL).
fn resources(cfg: &RunConfig, vars: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    struct Vars<'a>(&'a Map<String, Value>);
    impl crate::resolve::Lookup for Vars<'_> {
        fn get(&self, n: &str) -> Option<Value> {
            self.0.get(n).cloned()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }
    let lookup = Vars(vars);
    let r = crate::resolve::Resolver {
        lookup: &lookup,
        base_dir: &cfg.project.root,
    };
    match crate::resolve::resolve(&Value::Object(cfg.env.resources.clone()), &r) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(format!("resources: {e}")),
    }
}

/// A run's machinery, started: the runtime, the keywords (built-in and
/// plugin), the shared state of the cases, and Ctrl-C cancelling it.
pub(crate) struct Started {
    /// The one tokio runtime of the run.
    pub(crate) runtime: tokio::runtime::Runtime,
    builtins: atf_keywords::Builtins,
    /// What every case shares.
    pub(crate) shared: Arc<Shared>,
    /// Secrets to mask.
    pub(crate) masker: Arc<Masker>,
    /// Set by the first Ctrl-C.
    pub(crate) cancel: Arc<Cancel>,
}

impl Started {
    /// Closes pools, flushes producers and stops the runtime.
    pub(crate) fn stop(self) {
        self.builtins.shutdown();
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(2));
    }
}

/// Starts the machinery of a run of `cfg` over `runs`: the file and size
/// policy, the environment's vars and resources, every secret the case
/// files show, the runtime and keywords; the first Ctrl-C cancels the run.
/// Events go to `events` ([`crate::exec::EventTx::off`] for none); with
/// `lean_results` keywords may leave out result fields that no expectation
/// or save reads, nor the caller ([`Shared::lean_results`]).
pub(crate) fn start(
    cfg: &RunConfig,
    plugins: &PluginHost,
    runs: &[CaseRun],
    events: crate::exec::EventTx,
    lean_results: Option<&'static [&'static str]>,
) -> Result<Started, String> {
    let roots = cfg.file_roots();
    crate::resolve::set_policy(crate::resolve::Policy {
        value_bytes: cfg.project.limits.value,
        file_bytes: cfg.project.limits.file,
        roots: Some(roots.clone()),
    });
    let masker = Arc::new(Masker::new());
    masker.set_secret_names(&cfg.project.secrets);
    let env_vars = env_vars(cfg, &masker)?;
    let resources = resources(cfg, &env_vars)?;
    masker.add_from_resources(&Value::Object(resources.clone()));
    // Before anything is printed: the secrets the case files show.
    crate::secret::prescan(&masker, &scan_inputs(runs), &cfg.project.secrets, &env_vars);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atf-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let builtins = atf_keywords::builtins(&atf_keywords::Env {
        runtime: runtime.handle().clone(),
        resources,
        policy: atf_keywords::Policy {
            exec: cfg.project.allow.exec,
            body_bytes: cfg.project.limits.body,
            spill_dir: Some(cfg.report_dir.clone()),
            roots: Some(roots),
        },
    });
    let keywords = Arc::new(crate::exec::KeywordTable::new(
        builtins
            .keywords
            .iter()
            .chain(plugins.keywords().iter())
            .map(|k| (k.spec().name, k.clone())),
    ));
    let cancel = Arc::new(Cancel::default());
    install_ctrlc(cancel.clone());
    let shared = Arc::new(Shared {
        keywords,
        env_vars,
        overrides: cfg.overrides.clone(),
        global: Default::default(),
        masker: masker.clone(),
        step_timeout: cfg.project.step_timeout,
        case_timeout: cfg.project.case_timeout,
        cancel: cancel.clone(),
        fail_fast: cfg.fail_fast,
        events,
        lean_results,
    });
    Ok(Started {
        runtime,
        builtins,
        shared,
        masker,
        cancel,
    })
}

/// Runs the selected case runs with the reporters.
pub fn run(
    cfg: &RunConfig,
    plugins: &PluginHost,
    runs: Vec<CaseRun>,
    reporters: &mut [&mut dyn Reporter],
) -> Result<Outcome, String> {
    run_phases(cfg, plugins, vec![(None, runs)], reporters)
}

/// Runs the case runs of each matrix cell, one cell after another (see
/// [`crate::matrix`]); a cell's values are variables of its runs, like
/// `--var`, and its suites are prepared and cleaned up for it alone.
pub fn run_phases(
    cfg: &RunConfig,
    plugins: &PluginHost,
    phases: Vec<(Option<crate::matrix::Cell>, Vec<CaseRun>)>,
    reporters: &mut [&mut dyn Reporter],
) -> Result<Outcome, String> {
    let all: Vec<CaseRun> = phases.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    let (events, events_rx) = crate::exec::event_channel();
    let started = start(cfg, plugins, &all, events, None)?;
    drop(all);
    // A cell's own shared state: its values as variables, its own global
    // context, its own event channel.
    let shared_for = |cell: &crate::matrix::Cell, events: crate::exec::EventTx| {
        let base = &started.shared;
        let mut overrides = base.overrides.clone();
        for (k, v) in cell {
            overrides.insert(k.clone(), v.clone());
        }
        Arc::new(Shared {
            keywords: base.keywords.clone(),
            env_vars: base.env_vars.clone(),
            overrides,
            global: Default::default(),
            masker: base.masker.clone(),
            step_timeout: base.step_timeout,
            case_timeout: base.case_timeout,
            cancel: base.cancel.clone(),
            fail_fast: base.fail_fast,
            events,
            lean_results: base.lean_results,
        })
    };
    let opts = ExecOptions {
        jobs: cfg.jobs,
        env_name: cfg.env_name.clone(),
        shard: cfg.selection.shard.map(|s| s.to_string()),
        repeat: cfg.repeat,
    };
    *partial_slot()
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(cfg.report_dir.clone());
    let mut report = if phases.len() == 1 && phases[0].0.is_none() {
        let runs = phases.into_iter().flat_map(|(_, runs)| runs).collect();
        // `execute` masks each event and the final report itself.
        crate::exec::execute(started.shared.clone(), events_rx, runs, &opts, reporters)
    } else {
        drop(events_rx);
        let mut report = crate::matrix::run_cells(
            phases,
            &opts,
            cfg.fail_fast,
            &mut Fanout(&mut *reporters),
            |cell, runs, r| {
                let (tx, rx) = crate::exec::event_channel();
                crate::exec::execute(shared_for(cell, tx), rx, runs, &opts, &mut [r])
            },
        );
        // Secrets learnt in a later cell are masked in the earlier cells too
        // before the reporters and the file reports see the whole run.
        started.masker.report(&mut report);
        for r in reporters.iter_mut() {
            r.on_report(&report);
        }
        report
    };
    report.interrupted |= started.cancel.is_cancelled();
    started.stop();
    Ok(Outcome {
        interrupted: report.interrupted,
        report,
        fail_on_flaky: cfg.fail_on_flaky,
    })
}

/// The reporters of a matrix run as one: each cell's `execute` masked its
/// events already.
struct Fanout<'a, 'b>(&'a mut [&'b mut dyn Reporter]);

impl Reporter for Fanout<'_, '_> {
    fn on_event(&mut self, event: &Event) {
        for r in self.0.iter_mut() {
            r.on_event(event);
        }
    }

    fn idle(&mut self) {
        for r in self.0.iter_mut() {
            r.idle();
        }
    }
}

/// What [`crate::secret::prescan`] reads of each case run: its vars, data
/// row and suite vars, and the args of all its steps (undo steps and
/// suite steps included).
fn scan_inputs(runs: &[CaseRun]) -> Vec<crate::secret::ScanInput<'_>> {
    fn steps<'a>(list: &'a [crate::model::Step], out: &mut Vec<(&'a Value, &'a [String])>) {
        for step in list {
            out.push((&step.args, &step.code.header_args));
            if let Some(undo) = &step.undo {
                steps(std::slice::from_ref(undo.as_ref()), out);
            }
        }
    }
    let mut inputs = Vec::with_capacity(runs.len());
    for run in runs {
        let Ok(case) = &run.case else {
            continue;
        };
        let mut vars: Vec<(&str, &Value)> = Vec::new();
        let mut args = Vec::new();
        for suite in &case.suites {
            vars.extend(suite.vars.iter().map(|(k, v)| (k.as_str(), v)));
            steps(&suite.prepare, &mut args);
            steps(&suite.cleanup, &mut args);
        }
        vars.extend(case.vars.iter().map(|(k, v)| (k.as_str(), v)));
        if let Some((_, row)) = &run.row {
            vars.extend(row.iter().map(|(k, v)| (k.as_str(), v)));
        }
        steps(&case.prepare, &mut args);
        for set in &case.steps {
            steps(set, &mut args);
        }
        steps(&case.cleanup, &mut args);
        inputs.push(crate::secret::ScanInput { vars, args });
    }
    inputs
}
