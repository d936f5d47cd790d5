//! The event stream of a run: the one link between the engine and every
//! reporter.
//!
//! The engine emits [`Event`]s in order from one thread; reporters read
//! them. Each event is plain, serializable data, so the same stream feeds
//! the console, the file reports (through [`ReportBuilder`], which folds
//! events into a [`RunReport`]), `events.jsonl` (one event per line,
//! flushed as the run goes) and any tool that follows a run live. A run cut
//! short leaves a prefix of the stream, and [`ReportBuilder`] turns any
//! prefix into a report of what finished.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CaseReport, RunReport, Status, StepReport, SuiteReport, Summary};

/// Where a step belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A case's `prepare`.
    Prepare,
    /// A case's `steps` (any step set).
    Steps,
    /// A case's undo steps and `cleanup`.
    Cleanup,
    /// A suite's `prepare`.
    SuitePrepare,
    /// A suite's `cleanup`.
    SuiteCleanup,
}

/// A selected case, as announced when the run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// Its name (`name[i]` for data rows).
    pub name: String,
    /// The case file, relative to the working directory.
    pub file: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// How important a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// For information (a plugin reloaded).
    Info,
    /// Something the user should look at (a plugin skipped).
    Warning,
}

/// Which step an event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRef {
    /// The case, as its index in [`Event::RunStarted`]'s `cases`; `None`
    /// for a suite step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<usize>,
    /// The suite file, for a suite step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<String>,
    /// Its phase.
    pub phase: Phase,
    /// Its position in its phase or step set, from 1.
    pub index: usize,
    /// Its step set, from 1, when `steps` has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<usize>,
    /// An undo step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
}

/// Everything that happens in a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins.
    RunStarted {
        /// When, RFC 3339.
        started_at: String,
        /// The environment of the project file, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
        /// Cases run at once.
        jobs: usize,
        /// The shard, as `K/N`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shard: Option<String>,
        /// Every selected case, in report order; events name cases by
        /// their index here.
        cases: Vec<CaseInfo>,
    },
    /// A case begins (after its locks and suites are ready).
    CaseStarted {
        /// Its index.
        case: usize,
        /// Its name.
        name: String,
    },
    /// A step begins an attempt.
    StepStarted {
        /// Which step.
        #[serde(flatten)]
        step: StepRef,
        /// Its keyword.
        keyword: String,
        /// Its remark.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remark: Option<String>,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// An attempt of a step with `retry` did not hold; another follows.
    StepRetrying {
        /// Which step.
        #[serde(flatten)]
        step: StepRef,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why, in one line.
        reason: String,
    },
    /// A step ended (or was skipped); its report is final.
    StepFinished {
        /// Which step.
        #[serde(flatten)]
        step: StepRef,
        /// Its report.
        report: Box<StepReport>,
    },
    /// A suite's `prepare` ended.
    SuitePrepared {
        /// The suite file.
        suite: String,
        /// Passed, or failed/error at a step.
        status: Status,
    },
    /// A suite's `cleanup` ended.
    SuiteCleaned {
        /// The suite file.
        suite: String,
        /// Passed, or failed/error when a cleanup step failed.
        status: Status,
    },
    /// A whole case is about to run again (`--retries`): the steps before
    /// this event were its attempt `attempt`, which failed.
    CaseRetrying {
        /// Its index.
        case: usize,
        /// The attempt that failed, from 1.
        attempt: u32,
    },
    /// A case ended. Its steps came before as [`Event::StepFinished`]; the
    /// report here holds the case's own fields (its phases are empty).
    CaseFinished {
        /// Its index.
        case: usize,
        /// The case's status, error, duration and the like.
        report: Box<CaseReport>,
    },
    /// A message for the person watching: an interrupt, a reloaded plugin,
    /// a warning.
    Notice {
        /// How important it is.
        level: Level,
        /// The message.
        message: String,
    },
    /// The run ended.
    RunFinished {
        /// The counts.
        summary: Summary,
        /// Whether Ctrl-C cut it short.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
}

/// Folds events into a [`RunReport`]: the engine's own report, and the one
/// `atf report rebuild` makes from an `events.jsonl` of a run that was cut
/// short.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    report: RunReport,
    cases: Vec<Option<CaseReport>>,
    /// Steps of the earlier attempts of retried cases, by case index.
    earlier: BTreeMap<usize, Vec<[Vec<StepReport>; 3]>>,
    /// Where the current segment's case indexes start: a `run_started`
    /// after the first (one per matrix cell) appends its cases.
    offset: usize,
    started: bool,
    suites: BTreeMap<String, SuiteReport>,
    finished: bool,
    interrupted: bool,
}

impl ReportBuilder {
    /// An empty builder.
    pub fn new() -> ReportBuilder {
        ReportBuilder::default()
    }

    /// Takes in the next event.
    pub fn apply(&mut self, event: &Event) {
        self.apply_owned(event.clone());
    }

    /// Takes in the next event, keeping its reports without copying them
    /// (the runner's own fold of its event stream).
    pub fn apply_owned(&mut self, event: Event) {
        match event {
            Event::StepFinished { step, report } => self.step(&step, *report),
            Event::CaseFinished { case, report } => self.case_finished(case, *report),
            other => self.apply_other(&other),
        }
    }

    fn apply_other(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                started_at,
                env,
                shard,
                cases,
                ..
            } => {
                if !self.started {
                    self.started = true;
                    self.report.started_at = started_at.clone();
                    self.report.env = env.clone();
                    self.report.shard = shard.clone();
                }
                self.offset = self.cases.len();
                self.cases.extend(cases.iter().map(|c| {
                    Some(CaseReport {
                        name: c.name.clone(),
                        file: c.file.clone(),
                        tags: c.tags.clone(),
                        status: Status::Skipped,
                        error: Some("not run: the run ended before this case".into()),
                        ..CaseReport::default()
                    })
                }));
            }
            Event::CaseStarted { case, .. } => {
                if let Some(Some(c)) = self.cases.get_mut(case + self.offset) {
                    c.error = Some("did not finish: the run ended while it ran".into());
                    c.status = Status::Error;
                }
            }
            Event::SuitePrepared { suite, status } => {
                let s = self.suite(suite);
                s.status = Some(*status);
            }
            Event::SuiteCleaned { suite, status } => {
                let s = self.suite(suite);
                if matches!(status, Status::Failed | Status::Error)
                    && s.status != Some(Status::Error)
                {
                    s.status = Some(*status);
                }
            }
            Event::CaseRetrying { case, .. } => {
                let i = case + self.offset;
                if let Some(Some(c)) = self.cases.get_mut(i) {
                    let mut steps = std::mem::take(&mut c.steps);
                    steps.sort_by_key(|s| s.set);
                    let phases = [
                        std::mem::take(&mut c.prepare),
                        steps,
                        std::mem::take(&mut c.cleanup),
                    ];
                    self.earlier.entry(i).or_default().push(phases);
                }
            }
            Event::StepFinished { .. } | Event::CaseFinished { .. } => {}
            Event::RunFinished {
                summary,
                interrupted,
            } => {
                self.finished = true;
                self.interrupted = *interrupted;
                self.report.summary.duration_ms = summary.duration_ms;
            }
            Event::StepStarted { .. } | Event::StepRetrying { .. } | Event::Notice { .. } => {}
        }
    }

    fn case_finished(&mut self, case: usize, report: CaseReport) {
        let i = case + self.offset;
        if let Some(Some(c)) = self.cases.get_mut(i) {
            let prepare = std::mem::take(&mut c.prepare);
            let steps = std::mem::take(&mut c.steps);
            let cleanup = std::mem::take(&mut c.cleanup);
            *c = report;
            c.prepare = prepare;
            c.steps = steps;
            // Parallel step sets interleave; the report lists them set by set.
            c.steps.sort_by_key(|s| s.set);
            c.cleanup = cleanup;
            // Retried cases: each attempt gets the steps it ran.
            let earlier = self.earlier.remove(&i).unwrap_or_default();
            let n = c.attempts.len();
            for (k, [p, s, cl]) in earlier.into_iter().enumerate() {
                if let Some(a) = c.attempts.get_mut(k) {
                    a.prepare = p;
                    a.steps = s;
                    a.cleanup = cl;
                }
            }
            if let Some(last) = n.checked_sub(1).and_then(|k| c.attempts.get_mut(k)) {
                last.prepare = c.prepare.clone();
                last.steps = c.steps.clone();
                last.cleanup = c.cleanup.clone();
            }
        }
    }

    fn suite(&mut self, file: &str) -> &mut SuiteReport {
        self.suites
            .entry(file.to_string())
            .or_insert_with(|| SuiteReport {
                file: file.to_string(),
                ..SuiteReport::default()
            })
    }

    fn step(&mut self, at: &StepRef, step: StepReport) {
        match (at.case, &at.suite) {
            (Some(i), _) => {
                if let Some(Some(c)) = self.cases.get_mut(i + self.offset) {
                    match at.phase {
                        Phase::Prepare => c.prepare.push(step),
                        Phase::Steps => c.steps.push(step),
                        _ => c.cleanup.push(step),
                    }
                }
            }
            (None, Some(file)) => {
                let s = self.suite(file);
                match at.phase {
                    Phase::SuitePrepare | Phase::Prepare => s.prepare.push(step),
                    _ => s.cleanup.push(step),
                }
            }
            (None, None) => {}
        }
    }

    /// The counts of the cases so far, with this wall time.
    pub fn summary(&self, duration_ms: u64) -> Summary {
        let mut s = Summary {
            duration_ms,
            ..Summary::default()
        };
        for c in self.cases.iter().flatten() {
            s.total += 1;
            match c.status {
                Status::Passed => s.passed += 1,
                Status::Flaky => {
                    s.passed += 1;
                    s.flaky += 1;
                }
                Status::Failed => s.failed += 1,
                Status::Error => s.errored += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Whether the stream held a [`Event::RunFinished`].
    pub fn is_complete(&self) -> bool {
        self.finished
    }

    /// Whether the run was interrupted, or cut off before it finished.
    pub fn interrupted(&self) -> bool {
        self.interrupted || !self.finished
    }

    /// The report of every event taken in. Cases that never finished are
    /// `error` (started) or `skipped` (never started), with a message
    /// saying so.
    pub fn finish(mut self) -> RunReport {
        self.report.interrupted = self.interrupted || !self.finished;
        self.report.cases = self.cases.into_iter().flatten().collect();
        self.report.suites = self.suites.into_values().collect();
        let duration = self.report.summary.duration_ms;
        self.report.summary = Summary::count(&self.report.cases, duration);
        self.report
    }
}

/// Reads an `events.jsonl` stream: every complete line that parses, in
/// order. A last line cut off by a crash is left out; any other bad line is
/// an error naming its line number.
pub fn read_jsonl(text: &str) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len().saturating_sub(1);
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => out.push(e),
            // The final line, without its newline, is where a killed run stops.
            Err(_) if i == last => break,
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(n: usize) -> Event {
        Event::RunStarted {
            started_at: "2026-11-30T12:00:00Z".into(),
            env: Some("local".into()),
            jobs: 2,
            shard: None,
            cases: (0..n)
                .map(|i| CaseInfo {
                    name: format!("case {i}"),
                    file: format!("c{i}.case.json"),
                    tags: vec![],
                })
                .collect(),
        }
    }

    fn step_done(case: usize, phase: Phase, index: usize, set: Option<usize>) -> Event {
        Event::StepFinished {
            step: StepRef {
                case: Some(case),
                suite: None,
                phase,
                index,
                set,
                undo: false,
            },
            report: Box::new(StepReport {
                index,
                set,
                keyword: "log".into(),
                status: Status::Passed,
                attempts: 1,
                ..StepReport::default()
            }),
        }
    }

    #[test]
    fn folds_steps_into_their_cases_and_orders_step_sets() {
        let mut b = ReportBuilder::new();
        for e in [
            started(2),
            Event::CaseStarted {
                case: 0,
                name: "case 0".into(),
            },
            step_done(0, Phase::Prepare, 1, None),
            step_done(0, Phase::Steps, 1, Some(2)),
            step_done(0, Phase::Steps, 1, Some(1)),
            step_done(0, Phase::Cleanup, 1, None),
            Event::CaseFinished {
                case: 0,
                report: Box::new(CaseReport {
                    name: "case 0".into(),
                    file: "c0.case.json".into(),
                    status: Status::Passed,
                    duration_ms: 5,
                    ..CaseReport::default()
                }),
            },
            Event::RunFinished {
                summary: Summary {
                    duration_ms: 9,
                    ..Summary::default()
                },
                interrupted: false,
            },
        ] {
            b.apply(&e);
        }
        assert!(b.is_complete());
        let r = b.finish();
        assert_eq!(r.cases.len(), 2);
        let c = &r.cases[0];
        assert_eq!(c.status, Status::Passed);
        assert_eq!(c.prepare.len(), 1);
        assert_eq!(
            c.steps.iter().map(|s| s.set).collect::<Vec<_>>(),
            vec![Some(1), Some(2)]
        );
        assert_eq!(c.cleanup.len(), 1);
        assert_eq!(r.cases[1].status, Status::Skipped);
        assert_eq!(r.summary.passed, 1);
        assert_eq!(r.summary.skipped, 1);
        assert_eq!(r.summary.duration_ms, 9);
    }

    #[test]
    fn a_cut_stream_reports_what_finished_and_what_was_running() {
        let mut b = ReportBuilder::new();
        b.apply(&started(2));
        b.apply(&Event::CaseStarted {
            case: 1,
            name: "case 1".into(),
        });
        assert!(b.interrupted());
        let r = b.finish();
        assert_eq!(r.cases[1].status, Status::Error);
        assert!(
            r.cases[1]
                .error
                .as_deref()
                .unwrap()
                .contains("did not finish")
        );
        assert_eq!(r.summary.errored, 1);
    }

    #[test]
    fn jsonl_round_trip_drops_only_a_torn_last_line() {
        let events = [started(1), step_done(0, Phase::Steps, 1, None)];
        let mut text = String::new();
        for e in &events {
            text.push_str(&serde_json::to_string(e).unwrap());
            text.push('\n');
        }
        assert_eq!(read_jsonl(&text).unwrap(), events);
        let torn = format!("{text}{{\"event\":\"case_fin");
        assert_eq!(read_jsonl(&torn).unwrap(), events);
        let bad = format!("not json\n{text}");
        assert!(read_jsonl(&bad).unwrap_err().starts_with("line 1:"));
    }

    #[test]
    fn events_are_tagged_snake_case() {
        let v = serde_json::to_value(step_done(3, Phase::Steps, 2, None)).unwrap();
        assert_eq!(v["event"], "step_finished");
        assert_eq!(v["case"], 3);
        assert_eq!(v["phase"], "steps");
        assert_eq!(v["report"]["keyword"], "log");
    }
}
