//! A virtual user: runs iterations and records their samples.
//!
//! With `--iteration case` (the default) an iteration is one whole case run
//! ([`crate::exec::case::run_case`]: vars, prepare, steps, undo, cleanup,
//! with a fresh context and the next data row), exactly as `atf run` runs
//! it. With `--iteration steps` the VU keeps a session per case: on its
//! first iteration of a case it resolves the vars and runs `prepare`; each
//! iteration then runs only the steps (and the undo steps they registered);
//! when the VU stops it runs the prepare steps' undo and the case's
//! `cleanup`. A prepare that fails is cleaned up at once and tried again
//! on the next iteration.
//!
//! Every step that ran is one sample of its label: its duration, plus —
//! for the first step of an iteration — how late the iteration started
//! after its intended start (open model: no coordinated omission). A
//! failed or errored step is an error of its label and of the iteration.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use atf_reports::{CaseReport, Phase, Status, StepReport};
use serde_json::{Map, Value};

use super::metrics::Failure;
use super::plan::CasePlan;
use super::run::LoadRun;
use crate::exec::context::{Scope, resolve_vars};
use crate::exec::first_problem;
use crate::exec::step::{SaveSink, StepPlace, run_step};
use crate::model::Step;

/// The kind of a failed step, for grouping: `expectation PATH`, or the
/// keyword's error up to its first `: ` (when that leaves enough to read).
pub fn kind_of(r: &StepReport) -> String {
    if r.status == Status::Failed {
        return match r.failures.first() {
            Some(f) => format!("expectation {}", f.path),
            None => "failed".into(),
        };
    }
    match &r.error {
        Some(e) => short_kind(e),
        None => r.status.as_str().to_string(),
    }
}

/// The first line of an error, cut at its first `: ` when the head is at
/// least 12 characters long, and at 100 characters.
pub fn short_kind(message: &str) -> String {
    let line = message.lines().next().unwrap_or("");
    let head = match line.find(": ") {
        Some(i) if i >= 12 => &line[..i],
        _ => line,
    };
    if head.chars().count() > 100 {
        let mut s: String = head.chars().take(99).collect();
        s.push('…');
        s
    } else {
        head.to_string()
    }
}

/// Counts bytes written to it.
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_len(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Null => 0,
        other => {
            let mut c = Count(0);
            let _ = serde_json::to_writer(&mut c, other);
            c.0
        }
    }
}

fn text_len(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        other => json_len(other),
    }
}

/// The result fields a sample reads besides the step's own checks: the
/// status (for `--samples`), the headers and the size (bytes received).
/// In a load run keywords may leave out every other field that the step's
/// expectations and saves do not read (see `atf_sdk::Host::reads`).
pub const SAMPLE_FIELDS: &[&str] = &["status", "headers", "size"];

/// Bytes an `http.request` step sent and received, estimated as HTTP/1.1
/// puts them on the wire: request line, the step's headers and query and
/// body; status line, response headers and body (its `content-length`
/// when the response has one, else the result's `size`).
pub fn http_bytes(args: &Value, result: &Value) -> (u64, u64) {
    let mut sent = 0u64;
    let method = args.get("method").map_or(3, text_len);
    let url = args.get("url").map_or(1, text_len);
    sent += method + 1 + url + " HTTP/1.1\r\n".len() as u64;
    if let Some(Value::Object(q)) = args.get("query") {
        sent += q
            .iter()
            .map(|(k, v)| k.len() as u64 + text_len(v) + 2)
            .sum::<u64>();
    }
    if let Some(Value::Object(h)) = args.get("headers") {
        sent += h
            .iter()
            .map(|(k, v)| k.len() as u64 + text_len(v) + 4)
            .sum::<u64>();
    }
    if let Some(b) = args.get("json") {
        sent += json_len(b) + "content-type: application/json\r\n".len() as u64;
    } else if let Some(b) = args.get("body") {
        sent += text_len(b);
    } else if let Some(Value::Object(f)) = args.get("form") {
        sent += f
            .iter()
            .map(|(k, v)| k.len() as u64 + text_len(v) + 2)
            .sum::<u64>();
    }
    sent += 2;
    let mut received = 0u64;
    if result.is_object() {
        received += "HTTP/1.1 200 OK\r\n\r\n".len() as u64;
        let mut body_len = None;
        if let Some(Value::Object(h)) = result.get("headers") {
            for (k, v) in h {
                received += k.len() as u64 + text_len(v) + 4;
                if k == "content-length" {
                    body_len = v.as_str().and_then(|s| s.trim().parse::<u64>().ok());
                }
            }
        }
        received += body_len
            .or_else(|| result.get("size").and_then(Value::as_u64))
            .unwrap_or_else(|| result.get("body").map_or(0, text_len));
    }
    (sent, received)
}

/// The context of a session (`--iteration steps`): values its steps saved.
struct Saved(Mutex<Map<String, Value>>);

impl SaveSink for Saved {
    fn save(&self, name: &str, value: Value) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(name.to_string(), value);
        }
    }
}

/// A VU's session of one case (`--iteration steps`).
struct Session {
    vars: Map<String, Value>,
    saved: Saved,
    /// Undo steps of the prepare steps that ran, in order.
    undo: Vec<Step>,
    start_ms: i64,
    /// Its case id, for keywords that keep state per case.
    case_id: u64,
}

/// One virtual user.
pub struct Vu<'a> {
    run: &'a LoadRun,
    id: usize,
    sessions: HashMap<usize, Session>,
}

impl<'a> Vu<'a> {
    /// VU number `id` (from 1) of `run`.
    pub fn new(run: &'a LoadRun, id: usize) -> Vu<'a> {
        Vu {
            run,
            id,
            sessions: HashMap::new(),
        }
    }

    /// Runs one iteration meant to start at `intended`; records its samples
    /// when `record` (the warm-up records nothing).
    pub fn iterate(&mut self, intended: Instant, record: bool) {
        let plan = self.run.mix.pick();
        let started = Instant::now();
        let lag = started.saturating_duration_since(intended).as_micros() as u64;
        let failure = match self.run.iteration_mode {
            super::options::IterationMode::Case => self.whole_case(plan, lag, record),
            super::options::IterationMode::Steps => self.steps_only(plan, lag, record),
        };
        self.run.finished.fetch_add(1, Ordering::Relaxed);
        if !record {
            return;
        }
        if failure.is_some() && self.run.shared.cancel.is_cancelled() {
            // Cut short by Ctrl-C or --graceful-stop: not a failure of the system.
            self.run.metrics.interrupted();
            return;
        }
        let us = intended.elapsed().as_micros() as u64;
        self.run.metrics.iteration(plan.id, us, failure);
    }

    /// Runs the cleanup of every session (`--iteration steps`); call when the VU stops.
    pub fn finish(&mut self) {
        let sessions: Vec<(usize, Session)> = self.sessions.drain().collect();
        for (id, session) in sessions {
            if let Some(plan) = self.run.mix.cases.get(id) {
                let record = self.run.recording();
                self.end_session(plan, &session, record);
            }
        }
    }

    fn case_failure(&self, r: &CaseReport) -> Option<Failure> {
        if matches!(r.status, Status::Passed | Status::Skipped) {
            return None;
        }
        let message = r.error.clone().unwrap_or_else(|| r.status.as_str().into());
        Some(Failure {
            kind: short_kind(&self.run.shared.masker.text(&message)),
            message: self.run.shared.masker.text(&message),
        })
    }

    fn whole_case(&mut self, plan: &CasePlan, lag: u64, record: bool) -> Option<Failure> {
        let suites = plan.suite_vars.get()?;
        let case_run = plan.next_run();
        let report = crate::exec::case::run_case(&self.run.shared, 0, case_run, &plan.case, suites);
        if record {
            let mut lag = lag;
            for (phase, s) in report.all_steps() {
                if s.status == Status::Skipped {
                    continue;
                }
                if let Some(label) = plan.label_of(phase, s) {
                    self.sample(label, s, std::mem::take(&mut lag));
                }
            }
        }
        self.case_failure(&report)
    }

    /// Records one step sample (and writes it to `--samples`). A step that
    /// failed while the run was being interrupted (Ctrl-C, --graceful-stop)
    /// was most likely cut short: it is not recorded.
    fn sample(&self, label: usize, s: &StepReport, lag: u64) {
        if matches!(s.status, Status::Failed | Status::Error)
            && self.run.shared.cancel.is_cancelled()
        {
            return;
        }
        let us = s.duration_us + lag;
        let failure = match s.status {
            Status::Failed | Status::Error => {
                let message = self.run.shared.masker.text(&first_problem(s));
                Some(Failure {
                    kind: self.run.shared.masker.text(&kind_of(s)),
                    message,
                })
            }
            _ => None,
        };
        let (sent, received) = if s.keyword == "http.request" {
            http_bytes(&s.args, &s.result)
        } else {
            (0, 0)
        };
        if let Some(jtl) = &self.run.samples {
            jtl.sample(
                &self.run.mix.labels.names()[label],
                us,
                s,
                failure.as_ref().map(|f| f.message.as_str()),
                (sent, received),
                self.id,
                self.run.alive.load(Ordering::Relaxed),
                &self.run.shared.masker,
            );
        }
        self.run.metrics.step(label, us, sent, received, failure);
    }

    fn steps_only(&mut self, plan: &CasePlan, lag: u64, record: bool) -> Option<Failure> {
        let mut lag = lag;
        if !self.sessions.contains_key(&plan.id) {
            match self.begin_session(plan, &mut lag, record) {
                Ok(s) => {
                    self.sessions.insert(plan.id, s);
                }
                Err(f) => return Some(f),
            }
        }
        let session = self.sessions.get(&plan.id)?;
        let failure = self.iteration_steps(plan, session, lag, record);
        failure.map(|message| Failure {
            kind: short_kind(&message),
            message,
        })
    }

    fn scope<'s>(&'s self, plan: &'s CasePlan, session: &'s Session) -> Option<Scope<'s>> {
        let shared = &self.run.shared;
        Some(Scope {
            saved: Some(&session.saved.0),
            overrides: &shared.overrides,
            vars: Some(&session.vars),
            suites: &plan.suite_vars.get()?.nearest_first,
            global: &shared.global,
            env: &shared.env_vars,
        })
    }

    /// Resolves the case vars and runs `prepare`; a failure is cleaned up at once.
    fn begin_session(
        &mut self,
        plan: &CasePlan,
        lag: &mut u64,
        record: bool,
    ) -> Result<Session, Failure> {
        let shared = &self.run.shared;
        let fail = |message: String| Failure {
            kind: short_kind(&message),
            message,
        };
        let suites = plan
            .suite_vars
            .get()
            .ok_or_else(|| fail("the case's suites are not prepared".into()))?;
        let run = plan.next_run();
        let base_dir = plan.case.path.parent().unwrap_or(Path::new("."));
        let mut vars = Map::new();
        {
            let outer = shared.outer_scope(&suites.nearest_first);
            if let Some((_, row)) = &run.row {
                resolve_vars(row, &mut vars, &outer, base_dir, &shared.overrides)
                    .map_err(|e| fail(format!("vars: {e}")))?;
            }
            let mut skip = shared.overrides.clone();
            if let Some((_, row)) = &run.row {
                skip.extend(row.as_map().clone());
            }
            resolve_vars(&plan.case.vars, &mut vars, &outer, base_dir, &skip)
                .map_err(|e| fail(format!("vars: {e}")))?;
            shared.masker.learn_vars(&vars);
        }
        let mut session = Session {
            vars,
            saved: Saved(Mutex::new(Map::new())),
            undo: Vec::new(),
            start_ms: chrono::Utc::now().timestamp_millis(),
            case_id: crate::exec::case::next_case_id(),
        };
        let mut problem = None;
        let mut undo = Vec::new();
        if let Some(scope) = self.scope(plan, &session) {
            let deadline = Instant::now() + plan.case.timeout.unwrap_or(shared.case_timeout);
            for (i, step) in plan.case.prepare.iter().enumerate() {
                if shared.cancel.is_cancelled() {
                    problem = Some("prepare: interrupted".to_string());
                    break;
                }
                let place = StepPlace::bare(
                    Phase::Prepare,
                    i + 1,
                    None,
                    false,
                    true,
                    Some(deadline),
                    session.start_ms,
                    session.case_id,
                );
                let out = run_step(shared, step, &scope, &session.saved, base_dir, &place);
                if record && let Some(label) = plan.prepare.get(i) {
                    self.sample(*label, &out.report, std::mem::take(lag));
                }
                if out.ran
                    && let Some(u) = &step.undo
                {
                    undo.push((**u).clone());
                }
                if matches!(out.report.status, Status::Failed | Status::Error) {
                    problem = Some(format!(
                        "prepare failed at step {} ({}): {}",
                        i + 1,
                        step.keyword,
                        shared.masker.text(&first_problem(&out.report))
                    ));
                    break;
                }
            }
        }
        session.undo = undo;
        match problem {
            None => Ok(session),
            Some(message) => {
                self.end_session(plan, &session, record);
                Err(fail(message))
            }
        }
    }

    /// Runs the steps of one iteration, then the undo steps they registered
    /// (newest first); the first problem, if any.
    fn iteration_steps(
        &self,
        plan: &CasePlan,
        session: &Session,
        lag: u64,
        record: bool,
    ) -> Option<String> {
        let shared = &self.run.shared;
        let scope = self.scope(plan, session)?;
        let base_dir = plan.case.path.parent().unwrap_or(Path::new("."));
        let deadline = Instant::now() + plan.case.timeout.unwrap_or(shared.case_timeout);
        let order = AtomicU64::new(0);
        let undos: Mutex<Vec<(u64, usize, Step)>> = Mutex::new(Vec::new());
        let lag = AtomicU64::new(lag);
        let several = plan.case.steps.len() > 1;
        let run_set = |si: usize, set: &[Step]| -> Option<String> {
            for (i, step) in set.iter().enumerate() {
                if shared.cancel.is_cancelled() {
                    return Some(format!("step {}: interrupted before it started", i + 1));
                }
                if Instant::now() >= deadline {
                    return Some(format!("step {}: case timed out", i + 1));
                }
                let place = StepPlace::bare(
                    Phase::Steps,
                    i + 1,
                    several.then_some(si + 1),
                    false,
                    true,
                    Some(deadline),
                    session.start_ms,
                    session.case_id,
                );
                let out = run_step(shared, step, &scope, &session.saved, base_dir, &place);
                if record && let Some(label) = plan.steps.get(si).and_then(|s| s.get(i)) {
                    self.sample(*label, &out.report, lag.swap(0, Ordering::Relaxed));
                }
                if out.ran
                    && let Some(u) = &step.undo
                    && let Ok(mut l) = undos.lock()
                {
                    l.push((order.fetch_add(1, Ordering::Relaxed), si, (**u).clone()));
                }
                if matches!(out.report.status, Status::Failed | Status::Error) {
                    return Some(format!(
                        "failed at step {} ({}): {}",
                        i + 1,
                        step.keyword,
                        shared.masker.text(&first_problem(&out.report))
                    ));
                }
            }
            None
        };
        let mut problem = match plan.case.steps.len() {
            0 => None,
            1 => run_set(0, &plan.case.steps[0]),
            _ => std::thread::scope(|sc| {
                let handles: Vec<_> = plan
                    .case
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(si, set)| {
                        let run_set = &run_set;
                        sc.spawn(move || run_set(si, set))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Some("a step set crashed".into()))
                    })
                    .fold(None, |first, p| first.or(p))
            }),
        };
        let mut due = undos.into_inner().unwrap_or_default();
        due.sort_by_key(|d| std::cmp::Reverse(d.0));
        for (i, (_, _, step)) in due.iter().enumerate() {
            let out = self.cleanup_step(plan, session, &scope, step, i + 1, true);
            if problem.is_none() && matches!(out.status, Status::Failed | Status::Error) {
                problem = Some(format!(
                    "cleanup failed at undo step {} ({}): {}",
                    i + 1,
                    step.keyword,
                    shared.masker.text(&first_problem(&out))
                ));
            }
            if record && let Some(label) = plan.label_of("cleanup", &out) {
                self.sample(label, &out, 0);
            }
        }
        problem
    }

    fn cleanup_step(
        &self,
        plan: &CasePlan,
        session: &Session,
        scope: &Scope<'_>,
        step: &Step,
        index: usize,
        undo: bool,
    ) -> StepReport {
        let base_dir = plan.case.path.parent().unwrap_or(Path::new("."));
        let place = StepPlace::bare(
            Phase::Cleanup,
            index,
            None,
            undo,
            false,
            None,
            session.start_ms,
            session.case_id,
        );
        run_step(
            &self.run.shared,
            step,
            scope,
            &session.saved,
            base_dir,
            &place,
        )
        .report
    }

    /// The prepare steps' undo (newest first) and the case's cleanup.
    fn end_session(&self, plan: &CasePlan, session: &Session, record: bool) {
        let Some(scope) = self.scope(plan, session) else {
            return;
        };
        for (i, step) in session.undo.iter().rev().enumerate() {
            let out = self.cleanup_step(plan, session, &scope, step, i + 1, true);
            if record && let Some(label) = plan.label_of("cleanup", &out) {
                self.sample(label, &out, 0);
            }
        }
        for (i, step) in plan.case.cleanup.iter().enumerate() {
            let out = self.cleanup_step(plan, session, &scope, step, i + 1, false);
            if record && let Some(label) = plan.cleanup.get(i) {
                self.sample(*label, &out, 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_group_errors() {
        assert_eq!(
            short_kind("cannot connect to http://127.0.0.1:9/x: client error (Connect): refused"),
            "cannot connect to http://127.0.0.1:9/x"
        );
        assert_eq!(
            short_kind("args: undefined name `x`"),
            "args: undefined name `x`"
        );
        assert_eq!(
            short_kind("request to http://h:1/x timed out\nmore"),
            "request to http://h:1/x timed out"
        );
        assert_eq!(short_kind(&"y".repeat(300)).chars().count(), 100);
        let failed = StepReport {
            status: Status::Failed,
            failures: vec![atf_reports::Failure {
                path: "$.status".into(),
                expected: json!(200),
                actual: json!(500),
                message: "expected 200, got 500".into(),
                location: None,
            }],
            ..StepReport::default()
        };
        assert_eq!(kind_of(&failed), "expectation $.status");
    }

    #[test]
    fn http_bytes_follow_the_wire() {
        let args = json!({"method": "POST", "url": "/orders", "json": {"a": 1},
                          "headers": {"x-k": "v"}});
        let result = json!({"status": 200, "headers": {"content-length": "12", "content-type": "application/json"},
                            "body": {"ok": true}});
        let (sent, received) = http_bytes(&args, &result);
        // "POST /orders HTTP/1.1\r\n" + "x-k: v\r\n" + body + content-type + "\r\n"
        assert_eq!(sent, 23 + 8 + 7 + 32 + 2);
        // status line and blank line, headers, and the content-length body
        assert_eq!(received, 19 + (14 + 2 + 4) + (12 + 16 + 4) + 12);
        let (_, r2) = http_bytes(
            &json!({"url": "/"}),
            &json!({"headers": {}, "body": "hello"}),
        );
        assert_eq!(r2, 19 + 5);
        // Without content-length the body's size counts (a lean result has no body).
        let (_, r3) = http_bytes(&json!({"url": "/"}), &json!({"headers": {}, "size": 7}));
        assert_eq!(r3, 19 + 7);
        assert_eq!(http_bytes(&json!({}), &Value::Null).1, 0);
    }
}
