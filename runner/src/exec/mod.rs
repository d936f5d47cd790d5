//! Running the model.
//!
//! [`execute`] runs the selected case runs on a rayon pool of `jobs`
//! threads. Service keywords share one tokio runtime and one set of pooled
//! clients. Suites prepare lazily before their first case and clean up
//! after their last one. Cases with a common lock never overlap. Everything
//! that happens goes out over a channel as an [`atf_reports::Event`]; only
//! the calling thread reports, and the run report is the fold of those
//! events ([`atf_reports::ReportBuilder`]).

pub(crate) mod case;
pub mod context;
pub mod error;
pub mod repeat;
pub mod step;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use atf_reports::{
    CaseInfo, CaseReport, Event, ReportBuilder, Reporter, RunReport, Status, StepReport,
};
use atf_sdk::Keyword;
use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::model::{CaseRun, Suite};
use crate::secret::Masker;
use context::Scope;
use step::{SaveSink, StepPlace, run_step};

pub use case::first_problem;

/// Ctrl-C state of a run.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: AtomicBool,
}

impl Cancel {
    /// Asks running cases to stop after their current step (cleanup still runs).
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
    /// Whether the run is being interrupted.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }
}

/// A run's keywords, in the order of their names: the order of the
/// [`crate::load::Catalog`] the plan was compiled with, so a step's
/// `keyword_id` finds its keyword without a lookup by name.
pub struct KeywordTable {
    sorted: Vec<(String, Arc<dyn Keyword>)>,
}

impl KeywordTable {
    /// The table of `keywords` (by name).
    pub fn new(keywords: impl IntoIterator<Item = (String, Arc<dyn Keyword>)>) -> KeywordTable {
        let mut sorted: Vec<_> = keywords.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        KeywordTable { sorted }
    }

    /// The keyword of a step: by the id it was compiled with, checked
    /// against its name (a plan compiled with another catalog falls back to
    /// a search by name).
    pub fn for_step(&self, id: Option<u32>, name: &str) -> Option<&Arc<dyn Keyword>> {
        match id.and_then(|i| self.sorted.get(i as usize)) {
            Some((n, k)) if n == name => Some(k),
            _ => self
                .sorted
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()
                .map(|i| &self.sorted[i].1),
        }
    }

    /// Every keyword.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Keyword>> {
        self.sorted.iter().map(|(_, k)| k)
    }
}

/// What every case of a run shares.
pub struct Shared {
    /// The keywords.
    pub keywords: Arc<KeywordTable>,
    /// The environment's vars, resolved.
    pub env_vars: Map<String, Value>,
    /// `--var` overrides.
    pub overrides: Map<String, Value>,
    /// Values saved by suite steps.
    pub global: RwLock<Map<String, Value>>,
    /// Secrets to mask.
    pub masker: Arc<Masker>,
    /// Default step timeout.
    pub step_timeout: Duration,
    /// Default case timeout.
    pub case_timeout: Duration,
    /// Ctrl-C.
    pub cancel: Arc<Cancel>,
    /// Stop starting cases after a failure.
    pub fail_fast: bool,
    /// Where events go.
    pub events: EventTx,
    /// `None`: every step result is reported, so every field is read.
    /// `Some(fields)` (`atf load`, which reports no step results): a result
    /// field is read only when the step's own expectations and saves name
    /// it or it is one of `fields` (what the caller reads itself); keywords
    /// may leave out the others (see `atf_sdk::Host::reads`).
    pub lean_results: Option<&'static [&'static str]>,
}

/// The sending end of a run's events (cloned into every thread); or, for
/// callers that want case reports with their steps and no events (`atf
/// load`), [`EventTx::off`].
#[derive(Clone)]
pub struct EventTx(Option<std::sync::mpsc::Sender<Option<Event>>>);

impl EventTx {
    /// No events: [`case::run_case`] keeps each step's report in the case
    /// report it returns instead.
    pub fn off() -> EventTx {
        EventTx(None)
    }

    /// Whether events go anywhere.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    fn done(&self) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(None);
        }
    }
}

/// The receiving end of a run's events: [`execute`] drains it.
pub struct EventRx(std::sync::mpsc::Receiver<Option<Event>>);

/// A channel for a run's events.
pub fn event_channel() -> (EventTx, EventRx) {
    let (tx, rx) = std::sync::mpsc::channel();
    (EventTx(Some(tx)), EventRx(rx))
}

impl Shared {
    /// Sends `event` to the reporting thread.
    pub fn emit(&self, event: Event) {
        if let Some(tx) = &self.events.0 {
            let _ = tx.send(Some(event));
        }
    }

    /// The names seen outside any case: `--var`, the given suite vars
    /// (nearest first), the global context and the environment's vars.
    pub(crate) fn outer_scope<'a>(&'a self, suites: &'a [Arc<Map<String, Value>>]) -> Scope<'a> {
        Scope {
            saved: None,
            overrides: &self.overrides,
            vars: None,
            suites,
            global: &self.global,
            env: &self.env_vars,
        }
    }
}

/// Resolved vars of the suites above a case, nearest first.
#[derive(Clone, Default)]
pub struct SuiteVars {
    pub(crate) nearest_first: Vec<Arc<Map<String, Value>>>,
}

/// One suite of a run: prepared once, on first use; cleaned up by its last case.
pub(crate) struct SuiteState {
    pub(crate) suite: Arc<Suite>,
    pub(crate) prepared: OnceLock<Result<Arc<Map<String, Value>>, String>>,
    pub(crate) remaining: AtomicUsize,
}

/// The suites above `runs`, by folder, each counting the runs it covers.
pub(crate) fn suite_states(runs: &[CaseRun]) -> HashMap<PathBuf, Arc<SuiteState>> {
    let mut states: HashMap<PathBuf, Arc<SuiteState>> = HashMap::new();
    for run in runs {
        if let Ok(case) = &run.case {
            for s in &case.suites {
                let st = states.entry(s.dir.clone()).or_insert_with(|| {
                    Arc::new(SuiteState {
                        suite: s.clone(),
                        prepared: OnceLock::new(),
                        remaining: AtomicUsize::new(0),
                    })
                });
                st.remaining.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    states
}

struct Locks {
    held: Mutex<HashSet<String>>,
    freed: Condvar,
}

impl Locks {
    fn acquire(&self, names: &[String], cancel: &Cancel) -> bool {
        if names.is_empty() {
            return true;
        }
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        loop {
            if names.iter().all(|n| !held.contains(n)) {
                held.extend(names.iter().cloned());
                return true;
            }
            if cancel.is_cancelled() {
                return false;
            }
            held = match self.freed.wait_timeout(held, Duration::from_millis(100)) {
                Ok((h, _)) => h,
                Err(_) => return false,
            };
        }
    }

    fn release(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        if let Ok(mut held) = self.held.lock() {
            for n in names {
                held.remove(n);
            }
        }
        self.freed.notify_all();
    }
}

struct GlobalSink<'a>(&'a RwLock<Map<String, Value>>);

impl SaveSink for GlobalSink<'_> {
    fn save(&self, name: &str, value: Value) {
        if let Ok(mut g) = self.0.write() {
            g.insert(name.to_string(), value);
        }
    }
}

/// A duration as people write it: `250ms`, `2s`, `1m30s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) && ms < 60_000 {
        format!("{}s", ms / 1000)
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{}m{}s", s / 60, s % 60)
        }
    }
}

/// Options of [`execute`].
pub struct ExecOptions {
    /// Cases at once.
    pub jobs: usize,
    /// The environment's name, for the report.
    pub env_name: Option<String>,
    /// The shard, for the report.
    pub shard: Option<String>,
    /// Retries and repetitions (`--retries`, `--repeat-each`, `--until-fail`).
    pub repeat: repeat::RepeatPolicy,
}

/// Runs `runs` and returns the run report; `reporters` see every event
/// that `shared` emits, which `events` receives.
pub fn execute(
    shared: Arc<Shared>,
    events: EventRx,
    runs: Vec<CaseRun>,
    opts: &ExecOptions,
    reporters: &mut [&mut dyn Reporter],
) -> RunReport {
    let started = Instant::now();
    let policy = opts.repeat;
    let repeat::Plan {
        runs,
        repetition,
        groups,
    } = repeat::plan(runs, &policy);
    // Suites: how many selected runs each covers.
    let states = Arc::new(suite_states(&runs));
    let locks = Arc::new(Locks {
        held: Mutex::new(HashSet::new()),
        freed: Condvar::new(),
    });
    let failed = Arc::new(AtomicBool::new(false));
    let mut builder = ReportBuilder::new();
    // Secrets are masked once, in place, before any reporter or the
    // report sees the event; the builder then keeps the reports it carries
    // without copying them.
    let masker = shared.masker.clone();
    let deliver =
        |mut event: Event, builder: &mut ReportBuilder, reporters: &mut [&mut dyn Reporter]| {
            masker.event(&mut event);
            for r in reporters.iter_mut() {
                r.on_event(&event);
            }
            builder.apply_owned(event);
        };
    deliver(
        Event::RunStarted {
            started_at: chrono::Local::now().to_rfc3339(),
            env: opts.env_name.clone(),
            jobs: opts.jobs,
            shard: opts.shard.clone(),
            cases: runs
                .iter()
                .map(|r| CaseInfo {
                    name: r.name.clone(),
                    file: r.file().to_string(),
                    tags: r.tags().to_vec(),
                })
                .collect(),
        },
        &mut builder,
        reporters,
    );

    let jobs = opts.jobs.max(1);
    let runs = Arc::new(runs);
    let worker = {
        let shared = shared.clone();
        let runs = runs.clone();
        let states = states.clone();
        let failed = failed.clone();
        std::thread::spawn(move || {
            let done = shared.events.clone();
            if let Ok(pool) = rayon::ThreadPoolBuilder::new()
                .num_threads(jobs)
                .thread_name(|i| format!("atf-case-{i}"))
                .build()
            {
                pool.install(|| {
                    // A group's runs go one after another (`--until-fail`).
                    groups.into_par_iter().with_max_len(1).for_each(|group| {
                        let mut skip = None;
                        for i in group {
                            let mut report = run_one(
                                &shared,
                                i,
                                &runs[i],
                                (&policy, skip),
                                &states,
                                &locks,
                                &failed,
                            );
                            if matches!(report.status, Status::Failed | Status::Error) {
                                failed.store(true, Ordering::SeqCst);
                            }
                            if repeat::stops_group(&policy, &report) {
                                skip = Some(repeat::UNTIL_FAIL_SKIP);
                            }
                            report.repetition = repetition.get(i).copied().flatten();
                            shared.emit(Event::CaseFinished {
                                case: i,
                                report: Box::new(report),
                            });
                        }
                    });
                });
            }
            done.done();
        })
    };
    loop {
        let next = match events.0.try_recv() {
            Ok(next) => next,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                // Nothing waiting: reporters flush before this thread sleeps.
                for r in reporters.iter_mut() {
                    r.idle();
                }
                events.0.recv().unwrap_or(None)
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
        };
        let Some(event) = next else { break };
        deliver(event, &mut builder, reporters);
    }
    let _ = worker.join();
    let duration_ms = started.elapsed().as_millis() as u64;
    deliver(
        Event::RunFinished {
            summary: builder.summary(duration_ms),
            interrupted: shared.cancel.is_cancelled(),
        },
        &mut builder,
        reporters,
    );
    let mut report = builder.finish();
    // Secrets learnt late (a token first used by a later case) are masked
    // in every earlier case too.
    shared.masker.report(&mut report);
    for r in reporters.iter_mut() {
        r.on_report(&report);
    }
    report
}

fn skipped(run: &CaseRun, why: &str) -> CaseReport {
    CaseReport {
        name: run.name.clone(),
        file: run.file().to_string(),
        tags: run.tags().to_vec(),
        status: Status::Skipped,
        error: Some(why.to_string()),
        data_index: run.row.as_ref().map(|(i, _)| *i),
        ..CaseReport::default()
    }
}

/// One run of a case: suites prepared, locks held, retried by `policy`;
/// `skip` says why it does not start at all.
fn run_one(
    shared: &Shared,
    index: usize,
    run: &CaseRun,
    (policy, skip): (&repeat::RepeatPolicy, Option<&str>),
    states: &HashMap<PathBuf, Arc<SuiteState>>,
    locks: &Locks,
    failed: &AtomicBool,
) -> CaseReport {
    let case = match &run.case {
        Ok(c) => c.clone(),
        Err(broken) => {
            let message = broken
                .errors
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            return CaseReport {
                name: run.name.clone(),
                file: broken.file.clone(),
                tags: broken.tags.clone(),
                status: Status::Error,
                error: Some(message.trim_end().to_string()),
                location: broken.errors.first().and_then(|d| d.location_of()),
                ..CaseReport::default()
            };
        }
    };
    let my_suites: Vec<Arc<SuiteState>> = case
        .suites
        .iter()
        .filter_map(|s| states.get(&s.dir).cloned())
        .collect();
    let report = if let Some(why) = skip {
        skipped(run, why)
    } else if shared.cancel.is_cancelled() {
        skipped(run, "not started: the run was interrupted")
    } else if shared.fail_fast && failed.load(Ordering::SeqCst) {
        skipped(run, "not started: --fail-fast after an earlier failure")
    } else if !locks.acquire(&case.locks, &shared.cancel) {
        skipped(run, "not started: the run was interrupted")
    } else {
        shared.emit(Event::CaseStarted {
            case: index,
            name: run.name.clone(),
        });
        let report = match prepare_suites(shared, &my_suites) {
            Ok(vars) => {
                let mut attempt = 0;
                repeat::with_retries(policy, &shared.cancel, || {
                    attempt += 1;
                    if attempt > 1 {
                        shared.emit(Event::CaseRetrying {
                            case: index,
                            attempt: attempt - 1,
                        });
                    }
                    case::run_case(shared, index, run, &case, &vars)
                })
            }
            Err(e) => CaseReport {
                name: run.name.clone(),
                file: case.file.clone(),
                tags: case.tags.clone(),
                status: Status::Error,
                error: Some(e),
                data_index: run.row.as_ref().map(|(i, _)| *i),
                ..CaseReport::default()
            },
        };
        locks.release(&case.locks);
        report
    };
    // The last case of a suite cleans it up (innermost suite first).
    for st in my_suites.iter().rev() {
        if st.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            cleanup_suite(shared, st, &my_suites);
        }
    }
    report
}

fn suite_scope_vars(chain: &[Arc<SuiteState>], upto: usize) -> Vec<Arc<Map<String, Value>>> {
    chain[..upto]
        .iter()
        .rev()
        .filter_map(|s| s.prepared.get().and_then(|r| r.as_ref().ok()).cloned())
        .collect()
}

/// Prepares the suites of `chain` (outermost first) that are not yet; their vars, nearest first.
pub(crate) fn prepare_suites(
    shared: &Shared,
    chain: &[Arc<SuiteState>],
) -> Result<SuiteVars, String> {
    for (i, st) in chain.iter().enumerate() {
        let outcome = st.prepared.get_or_init(|| {
            let parents = suite_scope_vars(chain, i);
            let base_dir = st.suite.dir.as_path();
            let outer = shared.outer_scope(&parents);
            let mut vars = Map::new();
            if let Err(e) = context::resolve_vars(
                &st.suite.vars,
                &mut vars,
                &outer,
                base_dir,
                &shared.overrides,
            ) {
                shared.emit(Event::SuitePrepared {
                    suite: st.suite.file.clone(),
                    status: Status::Error,
                });
                return Err(format!("suite {}: {e}", st.suite.file));
            }
            shared.masker.learn_vars(&vars);
            let vars = Arc::new(vars);
            let mut scoped = vec![vars.clone()];
            scoped.extend(parents);
            let scope = shared.outer_scope(&scoped);
            let sink = GlobalSink(&shared.global);
            let start_ms = chrono::Utc::now().timestamp_millis();
            for (j, step) in st.suite.prepare.iter().enumerate() {
                let place = StepPlace::suite(&st.suite.file, j + 1, true, start_ms);
                let out = run_step(shared, step, &scope, &sink, base_dir, &place);
                let status = out.report.status;
                let problem = first_problem(&out.report);
                shared.emit(Event::StepFinished {
                    step: place.at,
                    report: Box::new(case::trim_report(out.report)),
                });
                if matches!(status, Status::Failed | Status::Error) {
                    shared.emit(Event::SuitePrepared {
                        suite: st.suite.file.clone(),
                        status,
                    });
                    return Err(format!(
                        "suite {} prepare failed at step {} ({}): {problem}",
                        st.suite.file,
                        j + 1,
                        step.keyword
                    ));
                }
            }
            shared.emit(Event::SuitePrepared {
                suite: st.suite.file.clone(),
                status: Status::Passed,
            });
            Ok(vars)
        });
        if let Err(e) = outcome {
            return Err(e.clone());
        }
    }
    Ok(SuiteVars {
        nearest_first: suite_scope_vars(chain, chain.len()),
    })
}

/// Runs the cleanup of suite `st` of `chain` (if its prepare began).
pub(crate) fn cleanup_suite(
    shared: &Shared,
    st: &Arc<SuiteState>,
    chain: &[Arc<SuiteState>],
) -> Vec<StepReport> {
    // Only a suite whose prepare began is cleaned up.
    if st.prepared.get().is_none() {
        return Vec::new();
    }
    let idx = chain.iter().position(|s| Arc::ptr_eq(s, st)).unwrap_or(0);
    let suites = suite_scope_vars(chain, idx + 1);
    let scope = shared.outer_scope(&suites);
    let sink = GlobalSink(&shared.global);
    let start_ms = chrono::Utc::now().timestamp_millis();
    let mut worst = Status::Passed;
    let mut failed = Vec::new();
    for (j, step) in st.suite.cleanup.iter().enumerate() {
        let place = StepPlace::suite(&st.suite.file, j + 1, false, start_ms);
        let out = run_step(shared, step, &scope, &sink, &st.suite.dir, &place);
        let status = out.report.status;
        let report = case::trim_report(out.report);
        if matches!(status, Status::Failed | Status::Error) {
            if worst != Status::Error {
                worst = status;
            }
            failed.push(report.clone());
        }
        shared.emit(Event::StepFinished {
            step: place.at,
            report: Box::new(report),
        });
    }
    if !st.suite.cleanup.is_empty() {
        shared.emit(Event::SuiteCleaned {
            suite: st.suite.file.clone(),
            status: worst,
        });
    }
    failed
}

#[cfg(test)]
mod keyword_table_tests {
    use super::*;
    use atf_sdk::{FnKeyword, KeywordSpec, json};

    fn kw(name: &str) -> (String, Arc<dyn Keyword>) {
        let answer = name.to_string();
        let k: Arc<dyn Keyword> = Arc::new(FnKeyword::new(
            KeywordSpec::new(name, "test"),
            move |_: &atf_sdk::Call<'_>| Ok(json!(answer)),
        ));
        (name.to_string(), k)
    }

    #[test]
    fn a_step_finds_its_keyword_by_the_id_the_catalog_gave_it() {
        let names = ["log", "http.request", "ctx.set", "redis.command"];
        let catalog = crate::load::Catalog::new(names.map(|n| KeywordSpec::new(n, "test")));
        let table = KeywordTable::new(names.map(kw));
        for name in names {
            let id = catalog.id(name);
            assert!(id.is_some(), "{name}");
            let k = table.for_step(id, name).expect("found");
            assert_eq!(k.spec().name, name);
        }
        // An id from another catalog is checked against the name.
        let k = table
            .for_step(Some(0), "redis.command")
            .expect("found by name");
        assert_eq!(k.spec().name, "redis.command");
        assert!(table.for_step(Some(99), "nope").is_none());
        assert!(table.for_step(None, "nope").is_none());
        assert_eq!(catalog.id("nope"), None);
    }
}
