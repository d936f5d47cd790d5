//! One step: resolve placeholders, call the keyword (again, with `retry`,
//! until its expectations hold), check expectations, save values.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atf_reports::{Failure, Status, StepReport};
use atf_sdk::{Call, Host, Keyword};
use serde_json::{Map, Value};

use super::Shared;
use crate::model::Step;
use crate::resolve::{Lookup, Resolver};

/// Where a step's `save` goes.
pub trait SaveSink {
    /// Stores `value` under `name`.
    fn save(&self, name: &str, value: Value);
}

/// How one step ran.
pub struct StepOutcome {
    /// Its report (not yet masked).
    pub report: StepReport,
    /// Whether the keyword was called at least once (its `undo` is then due).
    pub ran: bool,
}

/// What the keyword sees of the runner while a step runs.
pub struct StepHost<'a> {
    pub(crate) shared: &'a Shared,
    /// Whether Ctrl-C should cut this step short (not for undo and cleanup).
    pub(crate) honor_cancel: bool,
}

impl Host for StepHost<'_> {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        let Value::Object(map) = expect else {
            return Err("expectations must be an object of JSONPath → expected value".into());
        };
        let failures = crate::expect::check(actual, map)?;
        Ok(failures
            .into_iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect())
    }

    fn cancelled(&self) -> bool {
        self.honor_cancel && self.shared.cancel.is_cancelled()
    }
}

/// Where a step stands in its case.
pub struct StepPlace {
    /// Index in its phase or set, from 1.
    pub index: usize,
    /// Step set, from 1, when there are several.
    pub set: Option<usize>,
    /// An undo step.
    pub undo: bool,
    /// Ctrl-C cuts it short.
    pub honor_cancel: bool,
    /// The case's deadline, if it binds this step.
    pub case_deadline: Option<Instant>,
    /// When the case began (ms since the epoch).
    pub case_start_ms: i64,
}

impl StepPlace {
    /// A step of a suite's prepare (`honor_cancel`) or cleanup.
    pub fn suite(index: usize, honor_cancel: bool, start_ms: i64) -> StepPlace {
        StepPlace {
            index,
            set: None,
            undo: false,
            honor_cancel,
            case_deadline: None,
            case_start_ms: start_ms,
        }
    }
}

/// Runs `step` with the names of `lookup`, saving into `sink`.
pub fn run_step(
    shared: &Shared,
    step: &Step,
    lookup: &dyn Lookup,
    sink: &dyn SaveSink,
    base_dir: &Path,
    place: &StepPlace,
) -> StepOutcome {
    let started = Instant::now();
    let mut report = StepReport {
        index: place.index,
        set: place.set,
        undo: place.undo,
        keyword: step.keyword.clone(),
        remark: step.remark.clone(),
        status: Status::Error,
        attempts: 0,
        duration_ms: 0,
        duration_us: 0,
        args: Value::Null,
        result: Value::Null,
        failures: Vec::new(),
        error: None,
    };
    let mut ran = false;
    let finish = |mut report: StepReport, ran: bool| {
        let elapsed = started.elapsed();
        report.duration_ms = elapsed.as_millis() as u64;
        report.duration_us = elapsed.as_micros() as u64;
        StepOutcome { report, ran }
    };
    let Some(keyword) = shared.keywords.get(&step.keyword) else {
        report.error = Some(format!("unknown keyword `{}`", step.keyword));
        return finish(report, ran);
    };
    let keyword: Arc<dyn Keyword> = keyword.clone();
    let host = StepHost {
        shared,
        honor_cancel: place.honor_cancel,
    };
    let resolver = Resolver { lookup, base_dir };
    let times = step.retry.map_or(1, |r| r.times.max(1));
    let interval = step.retry.map_or(Duration::ZERO, |r| r.interval);
    let step_timeout = step.timeout.unwrap_or(shared.step_timeout);
    loop {
        report.attempts += 1;
        report.failures.clear();
        report.error = None;
        // Placeholders are resolved on every attempt: saved values may change
        // between attempts of a step in a parallel step set.
        let args = match crate::resolve::resolve(&step.args, &resolver) {
            Ok(a) => a,
            Err(e) => {
                report.error = Some(format!("args: {e}"));
                return finish(report, ran);
            }
        };
        shared.masker.add_from_args(&args);
        let expect = match resolve_map(&step.expect, &resolver) {
            Ok(x) => x,
            Err(e) => {
                report.args = args;
                report.error = Some(format!("expect: {e}"));
                return finish(report, ran);
            }
        };
        let mut deadline = Instant::now() + step_timeout;
        if let Some(cd) = place.case_deadline {
            deadline = deadline.min(cd);
        }
        let call = Call {
            args: &args,
            deadline,
            case_start_ms: place.case_start_ms,
            base_dir,
            host: &host,
        };
        ran = true;
        let result = call_keyword(keyword.as_ref(), &call);
        report.args = args;
        match result {
            Err(e) => {
                report.status = Status::Error;
                report.result = Value::Null;
                report.error = Some(e);
            }
            Ok(result) => {
                match crate::expect::check(&result, &expect) {
                    Ok(failures) if failures.is_empty() => {
                        match save(step, &result, &resolver, sink) {
                            Ok(()) => {
                                report.status = Status::Passed;
                                report.result = result;
                                return finish(report, ran);
                            }
                            Err(f) => {
                                report.status = Status::Failed;
                                report.failures = f;
                            }
                        }
                    }
                    Ok(failures) => {
                        report.status = Status::Failed;
                        report.failures = failures;
                    }
                    Err(e) => {
                        report.status = Status::Error;
                        report.error = Some(format!("expect: {e}"));
                        report.result = result;
                        return finish(report, ran);
                    }
                }
                report.result = result;
            }
        }
        if report.attempts >= times {
            return finish(report, ran);
        }
        // Wait before the next attempt, unless the case or run is ending.
        let wake = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if now >= wake {
                break;
            }
            if place.honor_cancel && shared.cancel.is_cancelled() {
                return finish(report, ran);
            }
            if place.case_deadline.is_some_and(|d| now >= d) {
                return finish(report, ran);
            }
            std::thread::sleep((wake - now).min(Duration::from_millis(50)));
        }
    }
}

fn call_keyword(keyword: &dyn Keyword, call: &Call<'_>) -> Result<Value, String> {
    // A keyword must never take the run down: a panic fails the step.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| keyword.call(call))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.message),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("keyword panicked: {msg}"))
        }
    }
}

fn resolve_map(m: &Map<String, Value>, r: &Resolver<'_>) -> Result<Map<String, Value>, String> {
    let mut out = Map::with_capacity(m.len());
    for (k, v) in m {
        let v = crate::resolve::resolve(v, r).map_err(|e| format!("`{k}`: {e}"))?;
        out.insert(k.clone(), v);
    }
    Ok(out)
}

fn save(
    step: &Step,
    result: &Value,
    r: &Resolver<'_>,
    sink: &dyn SaveSink,
) -> Result<(), Vec<Failure>> {
    if step.keyword == "ctx.set"
        && let Value::Object(m) = result
    {
        for (k, v) in m {
            sink.save(k, v.clone());
        }
    }
    let mut failures = Vec::new();
    let mut values = Vec::with_capacity(step.save.len());
    for (name, path) in &step.save {
        let path = match crate::resolve::resolve(path, r) {
            Ok(Value::String(p)) => p,
            Ok(other) => other.to_string(),
            Err(e) => {
                failures.push(Failure {
                    path: format!("save.{name}"),
                    expected: path.clone(),
                    actual: Value::Null,
                    message: e.to_string(),
                });
                continue;
            }
        };
        match crate::expect::select(result, &path) {
            Ok(Some(v)) => values.push((name, v)),
            Ok(None) => failures.push(Failure {
                path: path.clone(),
                expected: Value::String(format!("a value to save as `{name}`")),
                actual: Value::Null,
                message: format!("save `{name}`: nothing at {path}"),
            }),
            Err(e) => failures.push(Failure {
                path: path.clone(),
                expected: Value::Null,
                actual: Value::Null,
                message: format!("save `{name}`: {e}"),
            }),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    for (name, v) in values {
        sink.save(name, v);
    }
    Ok(())
}

/// Cuts long strings and lists so reports stay readable.
pub fn cut(v: &mut Value) {
    const MAX_STR: usize = 8 * 1024;
    const MAX_ITEMS: usize = 200;
    match v {
        Value::String(s) if s.len() > MAX_STR => {
            let mut end = MAX_STR;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let total = s.len();
            s.truncate(end);
            s.push_str(&format!("… ({total} bytes, cut)"));
        }
        Value::Array(items) => {
            if items.len() > MAX_ITEMS {
                let more = items.len() - MAX_ITEMS;
                items.truncate(MAX_ITEMS);
                items.push(Value::String(format!("… {more} more items cut")));
            }
            items.iter_mut().for_each(cut);
        }
        Value::Object(m) => m.iter_mut().for_each(|(_, v)| cut(v)),
        _ => {}
    }
}
