//! One run, start to end: the tokio runtime, the keywords (built-in and
//! plugin), the environment's vars and resources with their secrets, the
//! Ctrl-C handler, then [`crate::exec::execute`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use atf_reports::{Reporter, RunReport, Status};
use atf_sdk::Keyword;
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
        if self.interrupted {
            return crate::cli::EXIT_INTERRUPTED;
        }
        let s = &self.report.summary;
        let suite_failed = self
            .report
            .suites
            .iter()
            .any(|s| matches!(s.status, Some(Status::Failed | Status::Error)));
        let flaky_fails = self.fail_on_flaky && s.flaky > 0;
        if s.failed + s.errored > 0 || suite_failed || flaky_fails {
            crate::cli::EXIT_FAILED
        } else {
            crate::cli::EXIT_OK
        }
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
        std::process::exit(crate::cli::EXIT_INTERRUPTED);
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
            std::process::exit(crate::cli::EXIT_INTERRUPTED);
        }
    }
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
        &cfg.env.vars,
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
    let masker = Arc::new(Masker::new());
    let env_vars = env_vars(cfg, &masker)?;
    let resources = resources(cfg, &env_vars)?;
    masker.add_from_resources(&Value::Object(resources.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atf-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let builtins = atf_keywords::builtins(&atf_keywords::Env {
        runtime: runtime.handle().clone(),
        resources,
    });
    let mut keywords: HashMap<String, Arc<dyn Keyword>> = HashMap::new();
    for k in builtins.keywords.iter().chain(plugins.keywords().iter()) {
        keywords.insert(k.spec().name, k.clone());
    }
    let cancel = Arc::new(Cancel::default());
    install_ctrlc(cancel.clone());
    let shared_for = |cell: Option<&crate::matrix::Cell>| {
        let mut overrides = cfg.overrides.clone();
        for (k, v) in cell.into_iter().flatten() {
            overrides.insert(k.clone(), v.clone());
        }
        Arc::new(Shared {
            keywords: keywords.clone(),
            env_vars: env_vars.clone(),
            overrides,
            global: Default::default(),
            masker: masker.clone(),
            step_timeout: cfg.project.step_timeout,
            case_timeout: cfg.project.case_timeout,
            cancel: cancel.clone(),
            fail_fast: cfg.fail_fast,
        })
    };
    let opts = ExecOptions {
        jobs: cfg.jobs,
        env_name: cfg.env_name.clone(),
        shard: cfg.selection.shard.map(|s| s.to_string()),
        repeat: cfg.repeat,
    };
    let mut masking = MaskingReporters {
        masker: &masker,
        inner: reporters,
    };
    let mut report = if phases.len() == 1 && phases[0].0.is_none() {
        let runs = phases.into_iter().flat_map(|(_, runs)| runs).collect();
        crate::exec::execute(shared_for(None), runs, &opts, &mut [&mut masking])
    } else {
        crate::matrix::run_cells(
            phases,
            &opts,
            cfg.fail_fast,
            &mut masking,
            |cell, runs, r| crate::exec::execute(shared_for(Some(cell)), runs, &opts, &mut [r]),
        )
    };
    // Secrets learnt late (a token first used by a later case) are masked in
    // every earlier case too before the file reports are written.
    mask_report(&masker, &mut report);
    builtins.shutdown();
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(Outcome {
        report,
        interrupted: cancel.is_cancelled(),
        fail_on_flaky: cfg.fail_on_flaky,
    })
}

/// Masks secrets learnt so far in every case before reporters see it.
struct MaskingReporters<'a, 'b> {
    masker: &'a Masker,
    inner: &'a mut [&'b mut dyn Reporter],
}

impl Reporter for MaskingReporters<'_, '_> {
    fn on_event(&mut self, event: &atf_reports::RunEvent) {
        use atf_reports::RunEvent;
        match event {
            RunEvent::CaseFinished(case) => {
                let mut c = (*case).clone();
                self.masker.case(&mut c);
                for r in self.inner.iter_mut() {
                    r.on_event(&RunEvent::CaseFinished(&c));
                }
            }
            RunEvent::Finished(report) => {
                let mut rep = (*report).clone();
                mask_report(self.masker, &mut rep);
                for r in self.inner.iter_mut() {
                    r.on_event(&RunEvent::Finished(&rep));
                }
            }
            other => {
                for r in self.inner.iter_mut() {
                    r.on_event(other);
                }
            }
        }
    }
}

fn mask_report(masker: &Masker, report: &mut RunReport) {
    for c in &mut report.cases {
        masker.case(c);
    }
    for s in &mut report.suites {
        for step in s.prepare.iter_mut().chain(s.cleanup.iter_mut()) {
            masker.step(step);
        }
    }
}
