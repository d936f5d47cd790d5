//! The keyword SDK of atf.
//!
//! Every keyword a case file can call — the built-in ones in `atf-keywords`
//! and those that plugins add at run time — implements [`Keyword`]: it
//! describes itself with a [`KeywordSpec`] and turns JSON arguments into a
//! JSON result or a [`KeywordError`]. The runner knows keywords only through
//! this trait.
//!
//! Plugin authors also use [`export_plugin!`], which exposes a set of
//! keywords through the small C ABI described in [`abi`], so that a plugin
//! built by another compiler version loads into any atf of the same
//! [`abi::ABI_VERSION`].

#![warn(missing_docs)]

pub mod abi;
mod export;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
pub use serde_json::{self, Value, json};

/// What a keyword tells the world about itself: `atf keywords` prints it and
/// `atf schema` turns it into the JSON Schema of its `args`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeywordSpec {
    /// The name case files call: `namespace.name`, or a bare name for core keywords.
    pub name: String,
    /// One line saying what the keyword does.
    pub summary: String,
    /// The arguments it takes.
    #[serde(default)]
    pub args: Vec<ArgSpec>,
    /// What its result holds, in words.
    #[serde(default)]
    pub result: String,
    /// When true, the keyword takes any argument names (such as `ctx.set`).
    #[serde(default)]
    pub open_args: bool,
    /// When true, each member of the keyword's result is saved into the
    /// context under its name, as `save` would (what `ctx.set` does); `atf
    /// check` counts those names as defined.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub saves_result: bool,
}

/// One argument of a keyword.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArgSpec {
    /// The argument's name in `args`.
    pub name: String,
    /// JSON types it accepts, as JSON Schema names: `string`, `number`,
    /// `integer`, `boolean`, `array`, `object`, `null`; several joined by `|`.
    /// Empty means any type.
    #[serde(default, rename = "type")]
    pub ty: String,
    /// Whether a step must give it.
    #[serde(default)]
    pub required: bool,
    /// What it means, and its default.
    #[serde(default)]
    pub doc: String,
    /// A statement text (SQL): `atf check` and the loader refuse a `${...}`
    /// in it that would splice a value into the statement; only `ident(...)`
    /// and `raw(...)` placeholders may appear. Values go in bound parameters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub statement: bool,
    /// A map of protocol header names to values (HTTP headers, gRPC
    /// metadata): the values of `Authorization`, `Cookie` and the like in
    /// it are secrets, masked in every output from before the run starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headers: bool,
    /// The only texts the argument takes (compared without regard to
    /// case); empty means any. A literal outside them is a load error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
}

impl KeywordSpec {
    /// A spec with a name and summary and no arguments yet.
    pub fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        KeywordSpec {
            name: name.into(),
            summary: summary.into(),
            args: Vec::new(),
            result: String::new(),
            open_args: false,
            saves_result: false,
        }
    }

    /// Adds an optional argument.
    pub fn arg(mut self, name: &str, ty: &str, doc: &str) -> Self {
        self.args.push(ArgSpec {
            name: name.into(),
            ty: ty.into(),
            required: false,
            doc: doc.into(),
            statement: false,
            headers: false,
            choices: Vec::new(),
        });
        self
    }

    /// Adds a required argument.
    pub fn required(mut self, name: &str, ty: &str, doc: &str) -> Self {
        self.args.push(ArgSpec {
            name: name.into(),
            ty: ty.into(),
            required: true,
            doc: doc.into(),
            statement: false,
            headers: false,
            choices: Vec::new(),
        });
        self
    }

    /// Describes the result.
    pub fn result(mut self, doc: &str) -> Self {
        self.result = doc.into();
        self
    }

    /// Marks the argument added last as a statement text (see
    /// [`ArgSpec::statement`]).
    pub fn statement(mut self) -> Self {
        if let Some(last) = self.args.last_mut() {
            last.statement = true;
        }
        self
    }

    /// Marks the argument added last as a header map (see
    /// [`ArgSpec::headers`]).
    pub fn headers(mut self) -> Self {
        if let Some(last) = self.args.last_mut() {
            last.headers = true;
        }
        self
    }

    /// Limits the argument added last to `choices` (see
    /// [`ArgSpec::choices`]).
    pub fn choices(mut self, choices: &[&str]) -> Self {
        if let Some(last) = self.args.last_mut() {
            last.choices = choices.iter().map(|c| c.to_string()).collect();
        }
        self
    }

    /// Marks the keyword's result as saved into the context (see
    /// [`KeywordSpec::saves_result`]).
    pub fn saves_result(mut self) -> Self {
        self.saves_result = true;
        self
    }

    /// Marks the keyword as taking any argument names.
    pub fn open_args(mut self) -> Self {
        self.open_args = true;
        self
    }
}

/// Why a keyword call failed: the message is shown to the tester as the
/// step's error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordError {
    /// What went wrong, in the service's own words where there are any.
    pub message: String,
    /// The keyword gave up because the step's time ran out: the step's
    /// error then points at its `timeout` field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
}

impl KeywordError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        KeywordError {
            message: message.into(),
            timed_out: false,
        }
    }

    /// The error of a keyword that gave up at the step's deadline.
    pub fn timeout(message: impl Into<String>) -> Self {
        KeywordError {
            message: message.into(),
            timed_out: true,
        }
    }
}

impl std::fmt::Display for KeywordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeywordError {}

impl From<String> for KeywordError {
    fn from(message: String) -> Self {
        KeywordError::new(message)
    }
}

impl From<&str> for KeywordError {
    fn from(message: &str) -> Self {
        KeywordError::new(message)
    }
}

/// The result of a keyword call.
pub type KeywordResult = Result<Value, KeywordError>;

/// What the runner offers a keyword while it runs.
pub trait Host: Sync {
    /// Checks `actual` against expectations written as in a step's `expect`
    /// and returns one message per expectation that does not hold. An error
    /// means the expectations themselves are malformed.
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String>;

    /// True once the run is being interrupted (Ctrl-C): long waits should
    /// give up early.
    fn cancelled(&self) -> bool;

    /// The case run this call belongs to: a number unique to each case run
    /// of the process, or 0 outside a case (suite prepare and cleanup).
    /// Keywords key per-case state (such as open WebSocket connections) by it
    /// and drop it in [`Keyword::case_finished`].
    fn case_id(&self) -> u64 {
        0
    }

    /// The suite this call belongs to: the file (as reports show it) of the
    /// nearest suite above the case, or the suite itself in its prepare and
    /// cleanup; `None` for a case under no suite. Keywords key state shared
    /// by a suite's cases (such as a shared cookie jar) by it.
    fn suite(&self) -> Option<&str> {
        None
    }

    /// Declares a value the keyword met as a secret (a session cookie a
    /// response sets, a token it minted): it is masked in every output from
    /// now on. Plugins declare theirs in their answer (`"secrets"`).
    fn secret(&self, _value: &str) {}

    /// Whether anything will read the top-level field `name` of this call's
    /// result. In `atf run` the reports show every field, so all are read;
    /// `atf load` reports no step results, and there only the step's own
    /// expectations and saves (and the load report's few needs) read any.
    /// A keyword may leave out a field that costs time to build when nothing
    /// reads it; it must never leave out one that is read.
    fn reads(&self, _name: &str) -> bool {
        true
    }
}

/// A [`Host`] that checks nothing and is never cancelled: for unit tests of
/// keywords (and what a plugin's keywords see when the runner that loaded
/// it handed over no services, see [`abi::HostV1`]).
pub struct NoHost;

impl Host for NoHost {
    fn check(&self, _actual: &Value, _expect: &Value) -> Result<Vec<String>, String> {
        Err("expectations are not available here".into())
    }
    fn cancelled(&self) -> bool {
        false
    }
}

/// One call of a keyword.
pub struct Call<'a> {
    /// The step's `args`, placeholders already resolved.
    pub args: &'a Value,
    /// When the step times out. Keywords that wait must stop by then.
    pub deadline: Instant,
    /// When the case began, in milliseconds since the Unix epoch.
    pub case_start_ms: i64,
    /// The folder of the case file, for relative file arguments.
    pub base_dir: &'a Path,
    /// The runner's services.
    pub host: &'a dyn Host,
}

impl Call<'_> {
    /// Time left before the deadline (zero when it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The argument `name`, if given and not null.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.get(name).filter(|v| !v.is_null())
    }

    /// A string argument; an error naming the argument when it has another type.
    pub fn str_arg(&self, name: &str) -> Result<Option<&str>, KeywordError> {
        match self.arg(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(KeywordError::new(format!(
                "argument `{name}` must be a string, got {}",
                type_name(other)
            ))),
        }
    }

    /// A boolean argument, `default` when absent.
    pub fn bool_arg(&self, name: &str, default: bool) -> Result<bool, KeywordError> {
        match self.arg(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(KeywordError::new(format!(
                "argument `{name}` must be true or false, got {}",
                type_name(other)
            ))),
        }
    }

    /// A required string argument.
    pub fn required_str(&self, name: &str) -> Result<&str, KeywordError> {
        self.str_arg(name)?
            .ok_or_else(|| KeywordError::new(format!("argument `{name}` is required")))
    }

    /// The case run this call belongs to (see [`Host::case_id`]); 0 outside a case.
    pub fn case_id(&self) -> u64 {
        self.host.case_id()
    }

    /// The suite this call belongs to (see [`Host::suite`]).
    pub fn suite(&self) -> Option<&str> {
        self.host.suite()
    }

    /// The `resource` argument: which connection of the project file to use.
    pub fn resource(&self) -> Result<&str, KeywordError> {
        Ok(self.str_arg("resource")?.unwrap_or("default"))
    }
}

/// The JSON type name of a value, as `$type` and error messages spell it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A keyword: what a step's `keyword` names.
pub trait Keyword: Send + Sync {
    /// Its name, arguments and result.
    fn spec(&self) -> KeywordSpec;

    /// Runs it once.
    fn call(&self, call: &Call<'_>) -> KeywordResult;

    /// Called once after a case run's last cleanup step, with the
    /// [`Call::case_id`] its steps saw: the keyword drops (closes) what it
    /// kept for that case. The default does nothing; plugins over the C ABI
    /// are not told.
    fn case_finished(&self, _case_id: u64) {}

    /// Whether the keyword may run on a thread that it shares with other
    /// virtual users of `atf load`: true only when it waits for nothing
    /// (no I/O, no sleep, no lock held long) except through the runner's
    /// own runtime (`atf_keywords::local`), which suspends the user instead
    /// of the thread. The default, false, is right for every plugin: a load
    /// run that uses such a keyword gives each virtual user a thread.
    fn cooperative(&self) -> bool {
        false
    }
}

/// A keyword made of a spec and a plain function: the easy way to write one.
pub struct FnKeyword<F> {
    spec: KeywordSpec,
    f: F,
    cooperative: bool,
}

impl<F> FnKeyword<F>
where
    F: Fn(&Call<'_>) -> KeywordResult + Send + Sync,
{
    /// Wraps `f` as the keyword described by `spec`.
    pub fn new(spec: KeywordSpec, f: F) -> Self {
        FnKeyword {
            spec,
            f,
            cooperative: false,
        }
    }

    /// Marks it [`Keyword::cooperative`]: `f` waits for nothing but through
    /// the runner's runtime.
    pub fn cooperative(mut self) -> Self {
        self.cooperative = true;
        self
    }
}

impl<F> Keyword for FnKeyword<F>
where
    F: Fn(&Call<'_>) -> KeywordResult + Send + Sync,
{
    fn spec(&self) -> KeywordSpec {
        self.spec.clone()
    }
    fn call(&self, call: &Call<'_>) -> KeywordResult {
        (self.f)(call)
    }
    fn cooperative(&self) -> bool {
        self.cooperative
    }
}

/// The longest duration a case file may write (365 days): anything longer
/// is a typo, and rejecting it keeps every deadline computable.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

fn bounded(d: Option<Duration>, text: &dyn std::fmt::Display) -> Result<Duration, String> {
    match d {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "`{text}` is too long: a duration is at most 365 days (\"365d\")"
        )),
    }
}

/// Parses a duration as case files write it: `"250ms"`, `"2s"`, `"1m"`,
/// `"1h"`, compounds such as `"1m30s"`, or a number of milliseconds. At
/// most [`MAX_DURATION`]; never panics, whatever the number.
pub fn parse_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(ms) => bounded(Some(Duration::from_millis(ms)), n),
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() => {
                    bounded(Duration::try_from_secs_f64(f / 1000.0).ok(), n)
                }
                _ => Err(format!("a duration cannot be {n}")),
            },
        },
        Value::String(s) => parse_duration_str(s),
        other => Err(format!(
            "a duration is a string such as \"2s\" or a number of milliseconds, got {}",
            type_name(other)
        )),
    }
}

/// Parses `"250ms"`, `"2s"`, `"1m30s"`, `"1h"`, `"1d"` or a bare number of milliseconds.
pub fn parse_duration_str(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let bad = || {
        format!(
            "`{text}` is not a duration: write e.g. \"250ms\", \"2s\", \"1m30s\" or a number of milliseconds"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(ms) = s.parse::<u64>() {
        return bounded(Some(Duration::from_millis(ms)), &text);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => num / 1000.0,
            "s" => num,
            "m" => num * 60.0,
            "h" => num * 3600.0,
            "d" => num * 86400.0,
            _ => return Err(bad()),
        };
        let part = bounded(Duration::try_from_secs_f64(secs).ok(), &text)?;
        total = bounded(total.checked_add(part), &text)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration(&json!("250ms")),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(parse_duration(&json!("2s")), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration(&json!("1m30s")), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_duration(&json!(1500)),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_duration(&json!("1.5s")),
            Ok(Duration::from_millis(1500))
        );
        assert!(parse_duration(&json!("2 weeks")).is_err());
        assert!(parse_duration(&json!("s")).is_err());
        assert!(parse_duration(&json!(-1)).is_err());
        assert!(parse_duration(&json!(true)).is_err());
    }

    #[test]
    fn absurd_durations_are_errors_not_panics() {
        for v in [
            json!("99999999999999h"),
            json!(1e300),
            json!(u64::MAX),
            json!("366d"),
            json!("1e309s"),
            json!("200d200d"),
        ] {
            let e = parse_duration(&v).unwrap_err();
            assert!(
                e.contains("at most 365 days") || e.contains("not a duration"),
                "{v}: {e}"
            );
        }
        assert_eq!(parse_duration(&json!("365d")), Ok(MAX_DURATION));
    }
}
