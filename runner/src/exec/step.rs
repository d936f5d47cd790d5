//! One step: resolve placeholders, call the keyword (again, with `retry`,
//! until its expectations hold), check expectations, save values.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atf_reports::{Event, Failure, Location, Phase, Status, StepRef, StepReport};
use atf_sdk::{Call, Host, Keyword};
use serde_json::Value;

use super::Shared;
use crate::exec::error::StepError;
use crate::expect::JsonPath;
use crate::model::{ExpectCode, Extract, SaveCode, SavePath, Step};
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
    /// The case run the step belongs to (0: a suite step).
    pub(crate) case_id: u64,
    /// The nearest suite above the step (see `atf_sdk::Host::suite`).
    pub(crate) suite: Option<&'a str>,
    /// The step's compiled parts (what its checks read).
    pub(crate) code: &'a crate::model::StepCode,
}

impl Host for StepHost<'_> {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        crate::plugin::check_messages(actual, expect)
    }

    fn cancelled(&self) -> bool {
        self.honor_cancel && self.shared.cancel.is_cancelled()
    }

    fn case_id(&self) -> u64 {
        self.case_id
    }

    fn suite(&self) -> Option<&str> {
        self.suite
    }

    fn secret(&self, value: &str) {
        self.shared.masker.add(value);
    }

    fn reads(&self, name: &str) -> bool {
        self.shared
            .lean_results
            .is_none_or(|also| also.contains(&name) || self.code.reads(name))
    }
}

/// Where a step stands in its case.
pub struct StepPlace {
    /// Which step, as events name it.
    pub at: StepRef,
    /// Ctrl-C cuts it short.
    pub honor_cancel: bool,
    /// The case's deadline, if it binds this step.
    pub case_deadline: Option<Instant>,
    /// When the case began (ms since the epoch).
    pub case_start_ms: i64,
    /// The case run, unique in the process (0: a suite step); see `atf_sdk::Host::case_id`.
    pub case_id: u64,
    /// The file of the nearest suite above the step (the suite's own for its
    /// prepare and cleanup); see `atf_sdk::Host::suite`.
    pub suite: Option<Arc<str>>,
}

impl StepPlace {
    /// A step outside the case flow (`atf load` sessions): step `index` of
    /// `phase`, with its own deadline.
    #[allow(clippy::too_many_arguments)]
    pub fn bare(
        phase: Phase,
        index: usize,
        set: Option<usize>,
        undo: bool,
        honor_cancel: bool,
        case_deadline: Option<Instant>,
        case_start_ms: i64,
        case_id: u64,
    ) -> StepPlace {
        StepPlace {
            at: StepRef {
                case: None,
                suite: None,
                phase,
                index,
                set,
                undo,
            },
            honor_cancel,
            case_deadline,
            case_start_ms,
            case_id,
            suite: None,
        }
    }

    /// Step `index` of the prepare (`honor_cancel`) or cleanup of `suite`.
    pub fn suite(suite: &str, index: usize, honor_cancel: bool, start_ms: i64) -> StepPlace {
        StepPlace {
            at: StepRef {
                case: None,
                suite: Some(suite.to_string()),
                phase: if honor_cancel {
                    Phase::SuitePrepare
                } else {
                    Phase::SuiteCleanup
                },
                index,
                set: None,
                undo: false,
            },
            honor_cancel,
            case_deadline: None,
            case_start_ms: start_ms,
            case_id: 0,
            suite: Some(Arc::from(suite)),
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
        index: place.at.index,
        set: place.at.set,
        undo: place.at.undo,
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
        location: None,
    };
    let mut ran = false;
    let at = &step.at;
    let finish = |mut report: StepReport, ran: bool| {
        let elapsed = started.elapsed();
        report.duration_ms = elapsed.as_millis() as u64;
        report.duration_us = elapsed.as_micros() as u64;
        if report.location.is_none() {
            report.location = report.failures.first().and_then(|f| f.location.clone());
        }
        StepOutcome { report, ran }
    };
    let fail = |report: &mut StepReport, e: StepError| {
        report.status = e.status();
        report.location = Some(e.location(at));
        report.error = Some(e.to_string());
    };
    let Some(keyword) = shared
        .keywords
        .for_step(step.code.keyword_id, &step.keyword)
    else {
        fail(&mut report, StepError::UnknownKeyword(step.keyword.clone()));
        return finish(report, ran);
    };
    let keyword: Arc<dyn Keyword> = keyword.clone();
    let host = StepHost {
        shared,
        honor_cancel: place.honor_cancel,
        case_id: place.case_id,
        suite: place.suite.as_deref(),
        code: &step.code,
    };
    let resolver = Resolver { lookup, base_dir };
    let times = step.retry.map_or(1, |r| r.times.max(1));
    let interval = step.retry.map_or(Duration::ZERO, |r| r.interval);
    let step_timeout = step.timeout.unwrap_or(shared.step_timeout);
    loop {
        report.attempts += 1;
        report.failures.clear();
        report.error = None;
        report.location = None;
        if shared.events.is_on() {
            shared.emit(Event::StepStarted {
                step: place.at.clone(),
                keyword: step.keyword.clone(),
                remark: step.remark.clone(),
                attempt: report.attempts,
            });
        }
        // Placeholders are resolved on every attempt: saved values may change
        // between attempts of a step in a parallel step set.
        let args = match render_args(step, &resolver) {
            Ok(a) => a,
            Err(source) => {
                let at = failing_arg(step, &resolver);
                fail(&mut report, StepError::Args { source, at });
                return finish(report, ran);
            }
        };
        shared.masker.add_from_args(&args, &step.code.header_args);
        let expect = match resolve_map(&step.code.expect, &resolver) {
            Ok(x) => x,
            Err((key, source)) => {
                report.args = args;
                fail(&mut report, StepError::ExpectValue { key, source });
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
                report.result = Value::Null;
                fail(&mut report, e);
            }
            Ok(result) => {
                match check_expectations(&step.code.expect, expect, &result) {
                    Ok(failures) if failures.is_empty() => {
                        match save(step, &result, &resolver, sink, &shared.masker) {
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
                    Ok(mut failures) => {
                        for f in &mut failures {
                            f.location = Some(at.expect_loc(&f.path));
                        }
                        report.status = Status::Failed;
                        report.failures = failures;
                    }
                    Err(e) => {
                        fail(&mut report, StepError::Expect(e));
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
        if shared.events.is_on() {
            shared.emit(Event::StepRetrying {
                step: place.at.clone(),
                attempt: report.attempts,
                reason: crate::exec::first_problem(&report),
            });
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
            atf_keywords::local::sleep((wake - now).min(Duration::from_millis(50)));
        }
    }
}

fn call_keyword(keyword: &dyn Keyword, call: &Call<'_>) -> Result<Value, StepError> {
    // A keyword must never take the run down: a panic fails the step.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| keyword.call(call))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(StepError::Keyword(e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(StepError::Panicked(msg))
        }
    }
}

/// The step's arguments, rendered from their compiled template.
fn render_args(step: &Step, r: &Resolver<'_>) -> Result<Value, crate::resolve::ResolveError> {
    let mut args = match &step.code.args {
        Some(t) => t.render(r)?,
        None => step.args.clone(),
    };
    // Header names with placeholders: rendered as text, order kept.
    for (arg, keys) in &step.code.header_keys {
        if let Some(Value::Object(h)) = args.get_mut(arg) {
            let mut names = Vec::with_capacity(keys.len());
            for (written, t) in keys {
                let name = match t.render(r)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                names.push((written.as_str(), name));
            }
            *h = std::mem::take(h)
                .into_iter()
                .map(|(k, v)| match names.iter().find(|(w, _)| *w == k) {
                    Some((_, name)) => (name.clone(), v),
                    None => (k, v),
                })
                .collect();
        }
    }
    Ok(args)
}

/// Renders the expected values that hold placeholders (`None` for those
/// compiled at load); the error names the key that failed.
fn resolve_map(
    m: &[ExpectCode],
    r: &Resolver<'_>,
) -> Result<Vec<Option<Value>>, (String, crate::resolve::ResolveError)> {
    m.iter()
        .map(|e| match &e.matcher {
            Some(_) => Ok(None),
            None => e
                .value
                .render(r)
                .map(Some)
                .map_err(|err| (e.key.clone(), err)),
        })
        .collect()
}

/// Checks a result against a step's expectations: the matchers compiled
/// at load, and those whose values were rendered for this attempt.
fn check_expectations(
    code: &[ExpectCode],
    rendered: Vec<Option<Value>>,
    result: &Value,
) -> Result<Vec<Failure>, crate::expect::ExpectError> {
    let mut failures = Vec::new();
    for (e, value) in code.iter().zip(rendered) {
        let built;
        let matcher = match (&e.matcher, value) {
            (Some(m), _) => m,
            (None, Some(v)) => {
                built = crate::expect::Matcher::compile(&v).map_err(|err| err.at(&e.key))?;
                &built
            }
            (None, None) => continue,
        };
        failures.extend(matcher.check(&e.path, result)?);
    }
    Ok(failures)
}

/// Where the argument whose placeholder failed is (only called on that
/// error path): the first top-level argument that does not resolve.
fn failing_arg(step: &Step, r: &Resolver<'_>) -> Location {
    match step.code.args.as_ref().and_then(|t| t.failing_member(r)) {
        Some(k) => step.at.arg_loc(k),
        None => step.at.loc(step.at.args),
    }
}

fn save(
    step: &Step,
    result: &Value,
    r: &Resolver<'_>,
    sink: &dyn SaveSink,
    masker: &crate::secret::Masker,
) -> Result<(), Vec<Failure>> {
    if step.code.saves_result
        && let Value::Object(m) = result
    {
        for (k, v) in m {
            masker.learn_named(k, v);
            sink.save(k, v.clone());
        }
    }
    let mut failures = Vec::new();
    let mut values = Vec::with_capacity(step.code.save.len());
    for SaveCode {
        name,
        path,
        extract,
    } in &step.code.save
    {
        let rendered;
        let path = match path {
            SavePath::Fixed(p) => p,
            SavePath::Template(t) => match t.render(r).map(|v| match v {
                Value::String(p) => p,
                other => other.to_string(),
            }) {
                Ok(text) => match JsonPath::parse(&text) {
                    Ok(p) => {
                        rendered = p;
                        &rendered
                    }
                    Err(e) => {
                        failures.push(Failure {
                            path: text.clone(),
                            expected: Value::Null,
                            actual: Value::Null,
                            message: format!("save `{name}`: {text}: {e}"),
                            location: Some(step.at.save_loc(name)),
                        });
                        continue;
                    }
                },
                Err(e) => {
                    failures.push(Failure {
                        path: format!("save.{name}"),
                        expected: step.save.get(name).cloned().unwrap_or(Value::Null),
                        actual: Value::Null,
                        message: e.to_string(),
                        location: Some(step.at.save_loc(name)),
                    });
                    continue;
                }
            },
        };
        let text = path.as_str();
        match path.select(result).map(|s| s.to_value()) {
            Ok(Some(v)) => match extract {
                None => values.push((name, v)),
                Some(x) => match extract_from(x, &v) {
                    Ok(v) => values.push((name, v)),
                    Err(message) => failures.push(Failure {
                        path: text.to_string(),
                        expected: step.save.get(name).cloned().unwrap_or(Value::Null),
                        actual: v,
                        message: format!("save `{name}`: {message}"),
                        location: Some(step.at.save_loc(name)),
                    }),
                },
            },
            Ok(None) => failures.push(Failure {
                path: text.to_string(),
                expected: Value::String(format!("a value to save as `{name}`")),
                actual: Value::Null,
                message: format!("save `{name}`: nothing at {text}"),
                location: Some(step.at.save_loc(name)),
            }),
            Err(e) => failures.push(Failure {
                path: text.to_string(),
                expected: Value::Null,
                actual: Value::Null,
                message: format!("save `{name}`: {text}: {e}"),
                location: Some(step.at.save_loc(name)),
            }),
        }
    }
    if !failures.is_empty() {
        return Err(failures);
    }
    for (name, v) in values {
        masker.learn_named(name, &v);
        sink.save(name, v);
    }
    Ok(())
}

/// What a `save` extraction takes from the value its path selected.
fn extract_from(x: &Extract, v: &Value) -> Result<Value, String> {
    let owned;
    let text = match v {
        Value::String(s) => s.as_str(),
        Value::Number(n) => {
            owned = n.to_string();
            owned.as_str()
        }
        other => {
            return Err(format!(
                "a regex or an xpath reads a text, found {}",
                crate::load::fields::kind(other)
            ));
        }
    };
    match x {
        Extract::Regex(re) => {
            let Some(caps) = re.captures(text) else {
                return Err(format!("/{}/ does not match {}", re.as_str(), short(text)));
            };
            let m = caps.get(1).or_else(|| caps.get(0));
            Ok(Value::String(m.map_or("", |m| m.as_str()).to_string()))
        }
        Extract::Xpath(xp) => match xp.eval(text)? {
            Some(v) => Ok(v),
            None => Err(format!("xpath `{}` selects nothing", xp.as_str())),
        },
    }
}

/// A text cut for a message.
fn short(text: &str) -> String {
    const MAX: usize = 120;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
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
