//! The case flow: vars → prepare → steps (step sets in parallel) → undo
//! (newest first) → cleanup, always, whatever happened before.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use atf_reports::{CaseReport, Status, StepReport};
use serde_json::{Map, Value};

use super::context::{Scope, resolve_vars};
use super::step::{SaveSink, StepOutcome, StepPlace, cut, run_step};
use super::{Shared, SuiteVars};
use crate::model::{Case, CaseRun, Step};

struct CaseCtx {
    saved: Mutex<Map<String, Value>>,
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
}

/// Runs one case run; `suites` are the resolved vars of its suites, nearest first.
pub fn run_case(
    shared: &Shared,
    run: &CaseRun,
    case: &Arc<Case>,
    suites: &SuiteVars,
) -> CaseReport {
    let started = Instant::now();
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
        prepare: Vec::new(),
        steps: Vec::new(),
        cleanup: Vec::new(),
        ..CaseReport::default()
    };
    let ctx = CaseCtx {
        saved: Mutex::new(Map::new()),
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
        if result.is_ok() {
            let row_keys: Map<String, Value> =
                run.row.as_ref().map(|(_, r)| r.clone()).unwrap_or_default();
            let mut skip = shared.overrides.clone();
            skip.extend(row_keys);
            result = resolve_vars(&case.vars, &mut vars, &outer, base_dir, &skip);
        }
        if let Err(e) = result {
            first_stop = Some(Stop {
                status: Status::Error,
                message: format!("vars: {e}"),
            });
        }
    }

    let scope = Scope {
        saved: Some(&ctx.saved),
        overrides: &shared.overrides,
        vars: Some(&vars),
        suites: &suites.nearest_first,
        global: &shared.global,
        env: &shared.env_vars,
    };
    let place = |index: usize, set: Option<usize>| StepPlace {
        index,
        set,
        undo: false,
        honor_cancel: true,
        case_deadline: Some(deadline),
        case_start_ms,
    };

    let serial = |steps: &[Step], set: Option<usize>| {
        run_serial(
            shared, steps, &scope, &ctx, base_dir, &undos, set, &place, deadline, timeout,
        )
    };

    // Prepare, serially; a failure skips the steps.
    if first_stop.is_none() {
        let (reports, stop) = serial(&case.prepare, None);
        report.prepare = reports;
        if let Some(stop) = stop {
            first_stop = Some(Stop {
                status: stop.status,
                message: format!("prepare failed at {}", stop.message),
            });
        }
    }

    // Steps: one set in this thread, several sets each on a thread of its own.
    if first_stop.is_some() {
        // Shown as skipped, so a reader sees what did not run.
        let several = case.steps.len() > 1;
        for (si, set) in case.steps.iter().enumerate() {
            for (i, step) in set.iter().enumerate() {
                report.steps.push(StepReport {
                    index: i + 1,
                    set: several.then_some(si + 1),
                    keyword: step.keyword.clone(),
                    remark: step.remark.clone(),
                    status: Status::Skipped,
                    ..StepReport::default()
                });
            }
        }
    } else if !case.steps.is_empty() {
        if case.steps.len() == 1 {
            let (reports, stop) = serial(&case.steps[0], None);
            report.steps = reports;
            first_stop = stop.map(|s| Stop {
                status: s.status,
                message: format!("failed at {}", s.message),
            });
        } else {
            let results: Vec<(Vec<StepReport>, Option<Stop>)> = std::thread::scope(|sc| {
                let handles: Vec<_> = case
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, set)| {
                        let serial = &serial;
                        sc.spawn(move || serial(set, Some(i + 1)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                Vec::new(),
                                Some(Stop {
                                    status: Status::Error,
                                    message: "a step set crashed".into(),
                                }),
                            )
                        })
                    })
                    .collect()
            });
            for (reports, stop) in results {
                report.steps.extend(reports);
                if first_stop.is_none() {
                    first_stop = stop.map(|s| Stop {
                        status: s.status,
                        message: format!("failed at {}", s.message),
                    });
                }
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
        let p = StepPlace {
            index: i + 1,
            set: if case.steps.len() > 1 && *set > 0 {
                Some(*set)
            } else {
                None
            },
            undo: true,
            honor_cancel: false,
            case_deadline: None,
            case_start_ms,
        };
        let out = run_step(shared, step, &scope, &ctx, base_dir, &p);
        note_cleanup(&mut cleanup_stop, &out, "undo step");
        report.cleanup.push(trim_report(out.report));
    }
    for (i, step) in case.cleanup.iter().enumerate() {
        let p = StepPlace {
            index: i + 1,
            set: None,
            undo: false,
            honor_cancel: false,
            case_deadline: None,
            case_start_ms,
        };
        let out = run_step(shared, step, &scope, &ctx, base_dir, &p);
        note_cleanup(&mut cleanup_stop, &out, "cleanup step");
        report.cleanup.push(trim_report(out.report));
    }

    match (first_stop, cleanup_stop) {
        (Some(s), _) | (None, Some(s)) => {
            report.status = s.status;
            report.error = Some(s.message);
        }
        (None, None) => {}
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

fn note_cleanup(stop: &mut Option<Stop>, out: &StepOutcome, what: &str) {
    if stop.is_none() && matches!(out.report.status, Status::Failed | Status::Error) {
        *stop = Some(Stop {
            status: out.report.status,
            message: format!(
                "cleanup failed at {what} {} ({}): {}",
                out.report.index,
                out.report.keyword,
                first_problem(&out.report)
            ),
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
    set: Option<usize>,
    place: &dyn Fn(usize, Option<usize>) -> StepPlace,
    deadline: Instant,
    timeout: std::time::Duration,
) -> (Vec<StepReport>, Option<Stop>) {
    let mut reports = Vec::with_capacity(steps.len());
    let mut stop: Option<Stop> = None;
    for (i, step) in steps.iter().enumerate() {
        let where_ = match set {
            Some(s) => format!("step {} of set {s}", i + 1),
            None => format!("step {}", i + 1),
        };
        if stop.is_none() {
            if shared.cancel.is_cancelled() {
                stop = Some(Stop {
                    status: Status::Error,
                    message: format!("{where_}: interrupted before it started"),
                });
            } else if Instant::now() >= deadline {
                stop = Some(Stop {
                    status: Status::Error,
                    message: format!(
                        "{where_}: case timed out after {}",
                        crate::exec::human(timeout)
                    ),
                });
            }
        }
        if stop.is_some() {
            reports.push(StepReport {
                index: i + 1,
                set,
                keyword: step.keyword.clone(),
                remark: step.remark.clone(),
                status: Status::Skipped,
                ..StepReport::default()
            });
            continue;
        }
        let out = run_step(shared, step, scope, ctx, base_dir, &place(i + 1, set));
        if out.ran {
            undos.push(set.unwrap_or(0), step);
        }
        if matches!(out.report.status, Status::Failed | Status::Error) {
            let mut msg = format!(
                "{where_} ({}): {}",
                step.keyword,
                first_problem(&out.report)
            );
            if Instant::now() >= deadline {
                msg.push_str(&format!(
                    " (case timed out after {})",
                    crate::exec::human(timeout)
                ));
            } else if shared.cancel.is_cancelled() {
                msg.push_str(" (interrupted)");
            }
            stop = Some(Stop {
                status: out.report.status,
                message: msg,
            });
        }
        reports.push(trim_report(out.report));
    }
    (reports, stop)
}
