//! The case flow: vars → prepare → steps (step sets in parallel) → undo
//! (newest first) → cleanup, always, whatever happened before.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atf_reports::{CaseReport, Event, Location, Phase, Status, StepRef, StepReport};
use serde_json::{Map, Value};

use super::context::{Scope, resolve_vars};
use super::step::{SaveSink, StepPlace, cut, run_step};
use super::{Shared, SuiteVars};
use crate::model::{Case, CaseRun, Step};

struct CaseCtx {
    saved: Mutex<Map<String, Value>>,
    /// Step reports kept for the case report when events are off.
    kept: Mutex<Vec<(Phase, StepReport)>>,
}

impl SaveSink for CaseCtx {
    fn save(&self, name: &str, value: Value) {
        if let Ok(mut m) = self.saved.lock() {
            m.insert(name.to_string(), value);
        }
    }
}

/// Undo steps due at cleanup, with the order in which they became due.
struct Undos {
    list: Mutex<Vec<(u64, usize, Step)>>,
    counter: AtomicU64,
}

impl Undos {
    fn push(&self, set: usize, step: &Step) {
        if let Some(u) = &step.undo {
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut l) = self.list.lock() {
                l.push((n, set, (**u).clone()));
            }
        }
    }
}

/// Why a phase stopped.
struct Stop {
    status: Status,
    message: String,
    location: Option<Location>,
}

impl Stop {
    fn new(status: Status, message: String) -> Stop {
        Stop {
            status,
            message,
            location: None,
        }
    }
}

/// What the case flow keeps of a finished step (its report went out as an
/// event).
struct Done {
    status: Status,
    index: usize,
    keyword: String,
    problem: String,
    location: Option<Location>,
}

/// Sends a step's report out as [`Event::StepFinished`] (or keeps it in
/// `ctx` when events are off) and returns what the case flow needs of it.
fn emit_step(shared: &Shared, ctx: &CaseCtx, at: StepRef, report: StepReport) -> Done {
    let failed = matches!(report.status, Status::Failed | Status::Error);
    let done = Done {
        status: report.status,
        index: report.index,
        keyword: report.keyword.clone(),
        problem: if failed {
            first_problem(&report)
        } else {
            String::new()
        },
        location: report.location.clone(),
    };
    keep_or_emit(shared, ctx, at, trim_report(report));
    done
}

fn keep_or_emit(shared: &Shared, ctx: &CaseCtx, at: StepRef, report: StepReport) {
    if shared.events.is_on() {
        shared.emit(Event::StepFinished {
            step: at,
            report: Box::new(report),
        });
    } else if let Ok(mut kept) = ctx.kept.lock() {
        kept.push((at.phase, report));
    }
}

/// Announces a step that did not run.
fn emit_skipped(shared: &Shared, ctx: &CaseCtx, at: StepRef, step: &Step) {
    let report = StepReport {
        index: at.index,
        set: at.set,
        keyword: step.keyword.clone(),
        remark: step.remark.clone(),
        status: Status::Skipped,
        ..StepReport::default()
    };
    keep_or_emit(shared, ctx, at, report);
}

/// A number unique to each case run (or load-test session) of the process:
/// keywords key per-case state by it (`Host::case_id`).
pub fn next_case_id() -> u64 {
    static NEXT_CASE_ID: AtomicU64 = AtomicU64::new(1);
    NEXT_CASE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Runs one case run (`index` in the selection); `suites` are the resolved
/// vars of its suites, nearest first. Its steps go out as events; the
/// report returned holds the case's own fields.
pub fn run_case(
    shared: &Shared,
    index: usize,
    run: &CaseRun,
    case: &Arc<Case>,
    suites: &SuiteVars,
) -> CaseReport {
    let index_in_run = index;
    let started = Instant::now();
    let case_id = next_case_id();
    // The nearest suite above the case, as keywords see it (`Host::suite`).
    let suite: Option<Arc<str>> = case.suites.last().map(|s| Arc::from(s.file.as_str()));
    let case_start_ms = chrono::Utc::now().timestamp_millis();
    let timeout = case.timeout.unwrap_or(shared.case_timeout);
    let deadline = started + timeout;
    let base_dir = case.path.parent().unwrap_or(Path::new("."));
    let mut report = CaseReport {
        name: run.name.clone(),
        file: case.file.clone(),
        tags: case.tags.clone(),
        remark: case.remark.clone(),
        status: Status::Passed,
        duration_ms: 0,
        error: None,
        data_index: run.row.as_ref().map(|(i, _)| *i),
        ..CaseReport::default()
    };
    let ctx = CaseCtx {
        saved: Mutex::new(Map::new()),
        kept: Mutex::new(Vec::new()),
    };
    let undos = Undos {
        list: Mutex::new(Vec::new()),
        counter: AtomicU64::new(0),
    };
    let mut first_stop: Option<Stop> = None;

    // Vars: the data row first, then the case vars in order (a row value wins).
    let mut vars = Map::new();
    {
        let outer = shared.outer_scope(&suites.nearest_first);
        let mut result = Ok(());
        if let Some((_, row)) = &run.row {
            result = resolve_vars(row, &mut vars, &outer, base_dir, &shared.overrides);
        }
        if result.is_ok() && !case.vars.is_empty() {
            let row_keys: Map<String, Value> = run
                .row
                .as_ref()
                .map(|(_, r)| r.as_map().clone())
                .unwrap_or_default();
            let mut skip = shared.overrides.clone();
            skip.extend(row_keys);
            result = resolve_vars(&case.vars, &mut vars, &outer, base_dir, &skip);
        }
        if let Err(e) = result {
            first_stop = Some(Stop::new(Status::Error, format!("vars: {e}")));
        }
        shared.masker.learn_vars(&vars);
    }

    let scope = Scope {
        saved: Some(&ctx.saved),
        overrides: &shared.overrides,
        vars: Some(&vars),
        suites: &suites.nearest_first,
        global: &shared.global,
        env: &shared.env_vars,
    };
    let at = |phase: Phase, index: usize, set: Option<usize>, undo: bool| StepRef {
        case: Some(index_in_run),
        suite: None,
        phase,
        index,
        set,
        undo,
    };
    let place = |phase: Phase, index: usize, set: Option<usize>| StepPlace {
        at: at(phase, index, set, false),
        honor_cancel: true,
        case_deadline: Some(deadline),
        case_start_ms,
        case_id,
        suite: suite.clone(),
    };

    let serial = |steps: &[Step], phase: Phase, set: Option<usize>| {
        run_serial(
            shared, steps, &scope, &ctx, base_dir, &undos, phase, set, &place, deadline, timeout,
        )
    };

    // Prepare, serially; a failure skips the steps.
    if first_stop.is_none() {
        if let Some(stop) = serial(&case.prepare, Phase::Prepare, None) {
            first_stop = Some(Stop {
                message: format!("prepare failed at {}", stop.message),
                ..stop
            });
        }
    } else {
        for (i, step) in case.prepare.iter().enumerate() {
            emit_skipped(shared, &ctx, at(Phase::Prepare, i + 1, None, false), step);
        }
    }

    // Steps: one set in this thread, several sets each on a thread of its own.
    if first_stop.is_some() {
        // Shown as skipped, so a reader sees what did not run.
        let several = case.steps.len() > 1;
        for (si, set) in case.steps.iter().enumerate() {
            for (i, step) in set.iter().enumerate() {
                let set_no = several.then_some(si + 1);
                emit_skipped(shared, &ctx, at(Phase::Steps, i + 1, set_no, false), step);
            }
        }
    } else if case.steps.len() == 1 {
        first_stop = serial(&case.steps[0], Phase::Steps, None).map(|s| Stop {
            message: format!("failed at {}", s.message),
            ..s
        });
    } else if !case.steps.is_empty() {
        let stops: Vec<Option<Stop>> = std::thread::scope(|sc| {
            let handles: Vec<_> = case
                .steps
                .iter()
                .enumerate()
                .map(|(i, set)| {
                    let serial = &serial;
                    sc.spawn(move || serial(set, Phase::Steps, Some(i + 1)))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Some(Stop::new(Status::Error, "a step set crashed".into()))
                    })
                })
                .collect()
        });
        for stop in stops {
            if first_stop.is_none() {
                first_stop = stop.map(|s| Stop {
                    message: format!("failed at {}", s.message),
                    ..s
                });
            }
        }
    }

    // Undo steps, newest first, then cleanup: always, every one of them.
    let mut due = undos
        .list
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    due.sort_by_key(|d| std::cmp::Reverse(d.0));
    let mut cleanup_stop: Option<Stop> = None;
    for (i, (_, set, step)) in due.iter().enumerate() {
        let set = (case.steps.len() > 1 && *set > 0).then_some(*set);
        let p = StepPlace {
            at: at(Phase::Cleanup, i + 1, set, true),
            honor_cancel: false,
            case_deadline: None,
            case_start_ms,
            case_id,
            suite: suite.clone(),
        };
        let out = run_step(shared, step, &scope, &ctx, base_dir, &p);
        let done = emit_step(shared, &ctx, p.at, out.report);
        note_cleanup(&mut cleanup_stop, &done, "undo step");
    }
    for (i, step) in case.cleanup.iter().enumerate() {
        let p = StepPlace {
            at: at(Phase::Cleanup, i + 1, None, false),
            honor_cancel: false,
            case_deadline: None,
            case_start_ms,
            case_id,
            suite: suite.clone(),
        };
        let out = run_step(shared, step, &scope, &ctx, base_dir, &p);
        let done = emit_step(shared, &ctx, p.at, out.report);
        note_cleanup(&mut cleanup_stop, &done, "cleanup step");
    }

    // Keywords drop what they kept for this case (e.g. open WebSocket connections).
    for keyword in shared.keywords.all() {
        keyword.case_finished(case_id);
    }

    match (first_stop, cleanup_stop) {
        (Some(s), _) | (None, Some(s)) => {
            report.status = s.status;
            report.error = Some(s.message);
            report.location = s.location;
        }
        (None, None) => {}
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    let kept = ctx.kept.into_inner().unwrap_or_default();
    for (phase, step) in kept {
        match phase {
            Phase::Prepare => report.prepare.push(step),
            Phase::Steps => report.steps.push(step),
            _ => report.cleanup.push(step),
        }
    }
    report.steps.sort_by_key(|s| s.set);
    report
}

fn note_cleanup(stop: &mut Option<Stop>, done: &Done, what: &str) {
    if stop.is_none() && matches!(done.status, Status::Failed | Status::Error) {
        *stop = Some(Stop {
            status: done.status,
            message: format!(
                "cleanup failed at {what} {} ({}): {}",
                done.index, done.keyword, done.problem
            ),
            location: done.location.clone(),
        });
    }
}

/// The first problem of a failed step, in one line.
pub fn first_problem(r: &StepReport) -> String {
    if let Some(e) = &r.error {
        return e.lines().next().unwrap_or("").to_string();
    }
    if let Some(f) = r.failures.first() {
        let more = if r.failures.len() > 1 {
            format!(" (and {} more)", r.failures.len() - 1)
        } else {
            String::new()
        };
        return format!("{}: {}{more}", f.path, f.message);
    }
    "failed".into()
}

/// Cuts long values of a step report. Secrets are masked later, once per
/// case, before any reporter sees it (`engine`), and once more in the final
/// report, with every secret the run learnt.
pub fn trim_report(mut r: StepReport) -> StepReport {
    cut(&mut r.result);
    cut(&mut r.args);
    r
}

#[allow(clippy::too_many_arguments)]
fn run_serial(
    shared: &Shared,
    steps: &[Step],
    scope: &Scope<'_>,
    ctx: &CaseCtx,
    base_dir: &Path,
    undos: &Undos,
    phase: Phase,
    set: Option<usize>,
    place: &dyn Fn(Phase, usize, Option<usize>) -> StepPlace,
    deadline: Instant,
    timeout: std::time::Duration,
) -> Option<Stop> {
    let mut stop: Option<Stop> = None;
    for (i, step) in steps.iter().enumerate() {
        let p = place(phase, i + 1, set);
        // Named only for a message: no formatting on the happy path.
        let where_ = || match set {
            Some(s) => format!("step {} of set {s}", i + 1),
            None => format!("step {}", i + 1),
        };
        if stop.is_none() {
            if shared.cancel.is_cancelled() {
                stop = Some(Stop::new(
                    Status::Error,
                    format!("{}: interrupted before it started", where_()),
                ));
            } else if Instant::now() >= deadline {
                stop = Some(Stop {
                    status: Status::Error,
                    message: format!(
                        "{}: case timed out after {}",
                        where_(),
                        crate::exec::human(timeout)
                    ),
                    location: Some(step.at.loc(step.at.step)),
                });
            }
        }
        if stop.is_some() {
            emit_skipped(shared, ctx, p.at, step);
            continue;
        }
        let out = run_step(shared, step, scope, ctx, base_dir, &p);
        if out.ran {
            undos.push(set.unwrap_or(0), step);
        }
        let done = emit_step(shared, ctx, p.at, out.report);
        if matches!(done.status, Status::Failed | Status::Error) {
            let mut msg = format!("{} ({}): {}", where_(), step.keyword, done.problem);
            if Instant::now() >= deadline {
                msg.push_str(&format!(
                    " (case timed out after {})",
                    crate::exec::human(timeout)
                ));
            } else if shared.cancel.is_cancelled() {
                msg.push_str(" (interrupted)");
            }
            stop = Some(Stop {
                status: done.status,
                message: msg,
                location: done.location,
            });
        }
    }
    stop
}
