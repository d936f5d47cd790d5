//! Running a whole case more than once.
//!
//! `--retries N` reruns a failed or errored case — the whole case: vars,
//! prepare, steps, undo, cleanup — up to N more times, `--retry-delay`
//! apart; a case that failed and then passed ends `flaky`, and every run is
//! kept in the report's `attempts` (as nextest does). `--repeat-each N`
//! makes N runs of each selected case, named `name #1` … `name #N`, which
//! run in parallel like any cases; `--until-fail N` makes the same N runs
//! but one after another, and the runs after the first failure are skipped.

use std::time::{Duration, Instant};

use atf_reports::{Attempt, CaseReport, Status};

use super::Cancel;
use crate::model::CaseRun;

/// How often cases run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepeatPolicy {
    /// More runs of a case that failed or errored (0: none).
    pub retries: u32,
    /// The wait before each retry.
    pub retry_delay: Duration,
    /// Runs of each case (1 or 0: once).
    pub repeat: u32,
    /// Run a case's repetitions one after another and stop at its first failure.
    pub until_fail: bool,
}

fn failed(status: Status) -> bool {
    matches!(status, Status::Failed | Status::Error)
}

/// Runs one case with `attempt` (a whole run of it) until it passes, at
/// most `retries + 1` times. With retries, a case that passed on a later
/// run is `flaky`, and `attempts` lists every run; `duration_ms` is the sum
/// of the runs. An interrupt stops the retries.
pub fn with_retries(
    policy: &RepeatPolicy,
    cancel: &Cancel,
    mut attempt: impl FnMut() -> CaseReport,
) -> CaseReport {
    let start_ms = now_ms();
    let mut last = attempt();
    last.start_ms = last.start_ms.or(Some(start_ms));
    if policy.retries == 0 {
        return last;
    }
    let max_attempts = policy.retries.saturating_add(1);
    if !failed(last.status) {
        last.max_attempts = max_attempts;
        return last;
    }
    let mut attempts = vec![Attempt::of(1, &last)];
    let mut total_ms = last.duration_ms;
    for n in 2..=max_attempts {
        if cancel.is_cancelled() || !wait(policy.retry_delay, cancel) {
            break;
        }
        let start_ms = now_ms();
        last = attempt();
        last.start_ms = last.start_ms.or(Some(start_ms));
        total_ms += last.duration_ms;
        attempts.push(Attempt::of(n, &last));
        if !failed(last.status) {
            break;
        }
    }
    if last.status == Status::Passed {
        last.status = Status::Flaky;
    }
    last.duration_ms = total_ms;
    last.max_attempts = max_attempts;
    last.attempts = attempts;
    last
}

/// Waits `delay`, in short slices so that Ctrl-C is noticed; false when
/// the run was interrupted meanwhile.
fn wait(delay: Duration, cancel: &Cancel) -> bool {
    let until = Instant::now() + delay;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        atf_keywords::local::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The runs to make: each selected run `repeat` times (named `name #k`),
/// the repetition of each (from 1, `None` without repetition), and the
/// groups of run indexes that run one after another (each run alone,
/// unless `until_fail`, where a case's repetitions form one group).
pub fn plan(runs: Vec<CaseRun>, policy: &RepeatPolicy) -> Plan {
    let n = policy.repeat.max(1);
    if n == 1 {
        let len = runs.len();
        return Plan {
            runs,
            repetition: vec![None; len],
            groups: (0..len).map(|i| vec![i]).collect(),
        };
    }
    let mut out = Plan {
        runs: Vec::with_capacity(runs.len() * n as usize),
        repetition: Vec::new(),
        groups: Vec::new(),
    };
    for run in runs {
        let mut group = Vec::new();
        for k in 1..=n {
            let mut r = run.clone();
            r.name = format!("{} #{k}", run.name);
            group.push(out.runs.len());
            out.runs.push(r);
            out.repetition.push(Some(k));
        }
        if policy.until_fail {
            out.groups.push(group);
        } else {
            out.groups.extend(group.into_iter().map(|i| vec![i]));
        }
    }
    out
}

/// What [`plan`] makes.
pub struct Plan {
    /// Every run to make.
    pub runs: Vec<CaseRun>,
    /// The repetition of each run, from 1.
    pub repetition: Vec<Option<u32>>,
    /// Indexes into `runs` that run one after another.
    pub groups: Vec<Vec<usize>>,
}

/// Why a repetition after a failed one did not run.
pub const UNTIL_FAIL_SKIP: &str = "not started: an earlier repetition failed (--until-fail)";

/// Whether a group running one after another stops after this report.
pub fn stops_group(policy: &RepeatPolicy, report: &CaseReport) -> bool {
    policy.until_fail && failed(report.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn report(status: Status) -> CaseReport {
        CaseReport {
            name: "c".into(),
            status,
            duration_ms: 5,
            error: failed(status).then(|| "boom".to_string()),
            ..CaseReport::default()
        }
    }

    fn policy(retries: u32) -> RepeatPolicy {
        RepeatPolicy {
            retries,
            ..RepeatPolicy::default()
        }
    }

    #[test]
    fn a_case_that_passes_on_a_retry_is_flaky_with_every_attempt() {
        let calls = Cell::new(0);
        let r = with_retries(&policy(2), &Cancel::default(), || {
            calls.set(calls.get() + 1);
            report(if calls.get() < 2 {
                Status::Failed
            } else {
                Status::Passed
            })
        });
        assert_eq!(calls.get(), 2);
        assert_eq!(r.status, Status::Flaky);
        assert_eq!(r.max_attempts, 3);
        let statuses: Vec<Status> = r.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Status::Failed, Status::Passed]);
        assert_eq!(r.attempts[0].error.as_deref(), Some("boom"));
        assert_eq!(r.duration_ms, 10);
    }

    #[test]
    fn a_case_that_never_passes_keeps_its_last_failure() {
        let calls = Cell::new(0);
        let r = with_retries(&policy(2), &Cancel::default(), || {
            calls.set(calls.get() + 1);
            report(Status::Error)
        });
        assert_eq!(calls.get(), 3);
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.attempts.len(), 3);
    }

    #[test]
    fn passing_and_unretried_cases_run_once() {
        let calls = Cell::new(0);
        let r = with_retries(&policy(3), &Cancel::default(), || {
            calls.set(calls.get() + 1);
            report(Status::Passed)
        });
        assert_eq!(
            (calls.get(), r.status, r.attempts.len()),
            (1, Status::Passed, 0)
        );
        let r = with_retries(&policy(0), &Cancel::default(), || report(Status::Failed));
        assert_eq!(
            (r.status, r.attempts.len(), r.max_attempts),
            (Status::Failed, 0, 0)
        );
    }

    #[test]
    fn an_interrupt_stops_the_retries() {
        let cancel = Cancel::default();
        let calls = Cell::new(0);
        let r = with_retries(&policy(5), &cancel, || {
            calls.set(calls.get() + 1);
            cancel.cancel();
            report(Status::Failed)
        });
        assert_eq!(calls.get(), 1);
        assert_eq!(r.status, Status::Failed);
    }
}
