//! The result model: plain data, serialized as `report.json`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a case or step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything held.
    Passed,
    /// It failed, then passed on a retry of the whole case (`--retries`).
    Flaky,
    /// An expectation did not hold.
    Failed,
    /// It could not run as written: a load, placeholder or keyword error.
    Error,
    /// It did not run (an earlier step failed, or the run was interrupted).
    #[default]
    Skipped,
}

impl Status {
    /// The lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Flaky => "flaky",
            Status::Failed => "failed",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunReport {
    /// Counts and wall time.
    pub summary: Summary,
    /// The environment from the project file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// When the run started, RFC 3339.
    #[serde(default)]
    pub started_at: String,
    /// The shard this run was, as `K/N`, when sharded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// True when Ctrl-C or a crash cut the run short: the report holds
    /// what finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
    /// Suite prepare and cleanup runs, by suite folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suites: Vec<SuiteReport>,
    /// Every selected case, in a stable order (file path, then data row).
    pub cases: Vec<CaseReport>,
}

/// Counts of a run.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Summary {
    /// Selected cases.
    pub total: usize,
    /// Cases that passed, flaky ones included.
    pub passed: usize,
    /// Of the passed cases, those that failed first and passed on a retry.
    #[serde(default)]
    pub flaky: usize,
    /// Cases whose expectations did not hold.
    pub failed: usize,
    /// Cases that could not run as written.
    pub errored: usize,
    /// Cases that did not run.
    pub skipped: usize,
    /// Wall time of the run.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts the statuses of `cases`.
    pub fn count(cases: &[CaseReport], duration_ms: u64) -> Summary {
        let mut s = Summary {
            total: cases.len(),
            duration_ms,
            ..Summary::default()
        };
        for c in cases {
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
}

/// The suite-level steps of one `suite.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SuiteReport {
    /// The suite file, relative to the working directory.
    pub file: String,
    /// Its status: failed or error when a suite step failed.
    pub status: Option<Status>,
    /// Its `prepare` steps.
    #[serde(default)]
    pub prepare: Vec<StepReport>,
    /// Its `cleanup` steps.
    #[serde(default)]
    pub cleanup: Vec<StepReport>,
    /// The matrix cell it was prepared for (`--matrix`), dimension → value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Map<String, Value>>,
}

/// One case (one data row of a data-driven case).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct CaseReport {
    /// Its name (`name[i]` for data rows).
    pub name: String,
    /// The case file, relative to the working directory.
    pub file: String,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// How it ended.
    pub status: Status,
    /// Wall time.
    pub duration_ms: u64,
    /// Why it did not pass, in one line (`prepare failed at step 2: ...`).
    #[serde(default)]
    pub error: Option<String>,
    /// The data row index, for data-driven cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_index: Option<usize>,
    /// Where the problem in `error` is in the case (or suite) file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Steps of `prepare`.
    #[serde(default)]
    pub prepare: Vec<StepReport>,
    /// Steps of `steps`; with several step sets, `set` tells which.
    #[serde(default)]
    pub steps: Vec<StepReport>,
    /// Undo steps (newest first, `undo: true`) then the steps of `cleanup`.
    #[serde(default)]
    pub cleanup: Vec<StepReport>,
    /// Every run of the whole case when it was retried (`--retries`), in
    /// order; the last one is the case's own result above. Empty when the
    /// case ran once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// How many runs `--retries` allowed (retries + 1); 0 without retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_attempts: u32,
    /// The matrix cell it ran in (`--matrix`), dimension → value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<Map<String, Value>>,
    /// When its (last) run started, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    /// Which repetition this is (`--repeat-each`, `--until-fail`), from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition: Option<u32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One run of a whole case (prepare → steps → undo → cleanup) among its
/// retries.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Attempt {
    /// Which run, from 1.
    pub attempt: u32,
    /// How it ended (passed, failed or error).
    pub status: Status,
    /// Wall time of this run.
    pub duration_ms: u64,
    /// Why it did not pass, in one line.
    #[serde(default)]
    pub error: Option<String>,
    /// When it started, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<i64>,
    /// Steps of `prepare`.
    #[serde(default)]
    pub prepare: Vec<StepReport>,
    /// Steps of `steps`.
    #[serde(default)]
    pub steps: Vec<StepReport>,
    /// Undo and cleanup steps.
    #[serde(default)]
    pub cleanup: Vec<StepReport>,
}

impl Attempt {
    /// The attempt `n` (from 1) made of a finished case report.
    pub fn of(n: u32, case: &CaseReport) -> Attempt {
        Attempt {
            attempt: n,
            status: case.status,
            duration_ms: case.duration_ms,
            error: case.error.clone(),
            start_ms: case.start_ms,
            prepare: case.prepare.clone(),
            steps: case.steps.clone(),
            cleanup: case.cleanup.clone(),
        }
    }

    /// Every step of the attempt in the order of its phases.
    pub fn all_steps(&self) -> impl Iterator<Item = (&'static str, &StepReport)> {
        self.prepare
            .iter()
            .map(|s| ("prepare", s))
            .chain(self.steps.iter().map(|s| ("steps", s)))
            .chain(self.cleanup.iter().map(|s| ("cleanup", s)))
    }
}

impl CaseReport {
    /// Every step of the case in the order of its phases.
    pub fn all_steps(&self) -> impl Iterator<Item = (&'static str, &StepReport)> {
        self.prepare
            .iter()
            .map(|s| ("prepare", s))
            .chain(self.steps.iter().map(|s| ("steps", s)))
            .chain(self.cleanup.iter().map(|s| ("cleanup", s)))
    }
}

/// One step of a case.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct StepReport {
    /// Its position in its phase (or step set), from 1.
    pub index: usize,
    /// The step set it belongs to, from 1, when `steps` has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<usize>,
    /// True for an undo step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub undo: bool,
    /// The keyword it called.
    pub keyword: String,
    /// Its remark.
    #[serde(default)]
    pub remark: Option<String>,
    /// How it ended.
    pub status: Status,
    /// How many times it ran (more than 1 with `retry`).
    pub attempts: u32,
    /// Wall time of all attempts.
    pub duration_ms: u64,
    /// Wall time of all attempts in microseconds (for `atf load`; not
    /// written to report.json).
    #[serde(skip)]
    pub duration_us: u64,
    /// The resolved arguments.
    #[serde(default)]
    pub args: Value,
    /// What the keyword returned (large values cut).
    #[serde(default)]
    pub result: Value,
    /// Expectations that did not hold.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// The keyword's or placeholder's error.
    #[serde(default)]
    pub error: Option<String>,
    /// The case-file field that caused the failure or error (the failed
    /// expectation, the placeholder's field, the keyword, the timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// Where in a case or suite file something comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Location {
    /// The file, relative to the working directory.
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (in characters).
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One expectation that did not hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    /// The JSONPath as written.
    pub path: String,
    /// What was expected (a literal or a matcher object).
    pub expected: Value,
    /// What the path selected (`null` when it selected nothing; see `message`).
    pub actual: Value,
    /// Why it failed, in words.
    pub message: String,
    /// The `expect` (or `save`) entry in the case file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}
