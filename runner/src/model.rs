//! The model of what runs: cases, suites, steps — plain data made by
//! [`crate::load`] from the files, each knowing where it came from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atf_expect::JsonPath;
use atf_reports::Location;
use atf_template::Template;
use serde_json::{Map, Value};

use crate::jsonpos::Pos;

/// One step of a case or suite.
#[derive(Debug, Clone)]
pub struct Step {
    /// The keyword it calls.
    pub keyword: String,
    /// Free text shown in reports.
    pub remark: Option<String>,
    /// Arguments, placeholders unresolved.
    pub args: Value,
    /// Expectations: JSONPath → literal or matcher, placeholders unresolved.
    pub expect: Map<String, Value>,
    /// Names → JSONPaths into the result, saved when every expectation holds.
    pub save: Map<String, Value>,
    /// Polling: re-run until the expectations hold.
    pub retry: Option<Retry>,
    /// Per-attempt timeout; the project default when `None`.
    pub timeout: Option<Duration>,
    /// The step that reverses this one, due at cleanup once this one ran.
    pub undo: Option<Box<Step>>,
    /// The line of the step in its file.
    pub line: usize,
    /// Where its fields are, for runtime failures.
    pub at: Arc<StepAt>,
    /// `args`, `expect` values and `save` paths with their placeholders
    /// parsed once, at load.
    pub code: Arc<StepCode>,
}

/// The compiled parts of a step: what runs, with nothing left to parse.
#[derive(Debug, Default)]
pub struct StepCode {
    /// The keyword, as its place in the [`crate::load::Catalog`] (`None`:
    /// unknown, a load error).
    pub keyword_id: Option<u32>,
    /// The arguments.
    pub args: Option<Template>,
    /// Each expectation.
    pub expect: Vec<ExpectCode>,
    /// Each `save` entry.
    pub save: Vec<SaveCode>,
    /// Whether the keyword's result is saved member by member (its spec's
    /// `saves_result`, as for `ctx.set`).
    pub saves_result: bool,
    /// The arguments its spec marks as header maps (secret header values).
    pub header_args: Vec<String>,
    /// Header names with placeholders, by header argument: each name as
    /// written and compiled; renamed after the args are rendered.
    pub header_keys: Vec<(String, Vec<(String, Template)>)>,
    /// The top-level fields of the result that its expectations and saves
    /// read; `None` when that is not known (a path that starts at the root,
    /// with a wildcard or a placeholder, or a keyword that saves its whole
    /// result). See [`StepCode::reads`].
    pub result_fields: Option<Vec<String>>,
}

impl StepCode {
    /// Whether the step's expectations or saves read the result's field `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.result_fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|x| x == name))
    }

    /// Fills [`StepCode::result_fields`] from the expectations and saves.
    pub fn find_result_fields(&mut self) {
        let mut fields = Vec::new();
        let mut add = |path: &JsonPath| match path.root_member() {
            Some(m) => {
                if !fields.iter().any(|f| f == m) {
                    fields.push(m.to_string());
                }
                true
            }
            None => false,
        };
        let known = !self.saves_result
            && self.expect.iter().all(|e| add(&e.path))
            && self.save.iter().all(|s| match &s.path {
                SavePath::Fixed(p) => add(p),
                SavePath::Template(_) => false,
            });
        self.result_fields = known.then_some(fields);
    }
}

/// One compiled expectation.
#[derive(Debug)]
pub struct ExpectCode {
    /// The key as written.
    pub key: String,
    /// The key, parsed.
    pub path: JsonPath,
    /// The expected value (a literal or matcher object).
    pub value: Template,
    /// The value compiled into a matcher at load, when it has no
    /// placeholder (else it is compiled after rendering, each attempt).
    pub matcher: Option<atf_expect::Matcher>,
}

/// One compiled `save` entry.
#[derive(Debug)]
pub struct SaveCode {
    /// The name it saves under.
    pub name: String,
    /// The JSONPath: parsed, or a template that makes it at run time.
    pub path: SavePath,
    /// What to take from the text the path selects, if not all of it.
    pub extract: Option<Extract>,
}

/// A `save` extraction from a text.
#[derive(Debug)]
pub enum Extract {
    /// The first capture group (the whole match without groups).
    Regex(std::sync::Arc<regex::Regex>),
    /// What an XPath selects in an XML or HTML text.
    Xpath(atf_expect::xpath::XPath),
}

/// A `save` path.
#[derive(Debug)]
pub enum SavePath {
    /// Parsed at load.
    Fixed(JsonPath),
    /// Holds a placeholder: rendered, then parsed, when the step runs.
    Template(Template),
}

/// Where a step's fields stand in its file: every runtime failure of the
/// step points at one of them.
#[derive(Debug, Clone, Default)]
pub struct StepAt {
    /// The file as shown in reports.
    pub file: Arc<str>,
    /// The step object.
    pub step: Pos,
    /// Its `keyword` value.
    pub keyword: Pos,
    /// Its `args` (the step when it has none).
    pub args: Pos,
    /// Each top-level argument's key.
    pub arg_keys: Vec<(String, Pos)>,
    /// Its `timeout`, when written.
    pub timeout: Option<Pos>,
    /// Each `expect` key.
    pub expect: Vec<(String, Pos)>,
    /// Each `save` key.
    pub save: Vec<(String, Pos)>,
}

impl StepAt {
    /// The location of `pos` in this step's file.
    pub fn loc(&self, pos: Pos) -> Location {
        Location {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.col,
        }
    }

    fn find(list: &[(String, Pos)], key: &str) -> Option<Pos> {
        list.iter().find(|(k, _)| k == key).map(|(_, p)| *p)
    }

    /// The `expect` entry `key`, else the step.
    pub fn expect_loc(&self, key: &str) -> Location {
        self.loc(Self::find(&self.expect, key).unwrap_or(self.step))
    }

    /// The `save` entry `name`, else the step.
    pub fn save_loc(&self, name: &str) -> Location {
        self.loc(Self::find(&self.save, name).unwrap_or(self.step))
    }

    /// The argument `key`, else `args`.
    pub fn arg_loc(&self, key: &str) -> Location {
        self.loc(Self::find(&self.arg_keys, key).unwrap_or(self.args))
    }
}

/// `retry` of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Attempts at most (at least 1).
    pub times: u32,
    /// Wait between attempts.
    pub interval: Duration,
}

/// Vars (or a data row) as written, each value's placeholders parsed once
/// at load. Reads as the map written (`Deref`); [`Vars::code`] is what runs.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: Map<String, Value>,
    code: Arc<[(String, Result<Template, String>)]>,
}

impl Vars {
    /// Compiles each value; a malformed placeholder is kept as its error,
    /// reported when the vars are resolved (and by `atf check` at load).
    pub fn new(map: Map<String, Value>) -> Vars {
        let code = map
            .iter()
            .map(|(k, v)| (k.clone(), Template::compile(v).map_err(|e| e.to_string())))
            .collect();
        Vars { map, code }
    }

    /// Name and compiled value of each var, in the order written.
    pub fn code(&self) -> &[(String, Result<Template, String>)] {
        &self.code
    }

    /// The vars as written.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }
}

impl std::ops::Deref for Vars {
    type Target = Map<String, Value>;
    fn deref(&self) -> &Map<String, Value> {
        &self.map
    }
}

impl From<Map<String, Value>> for Vars {
    fn from(map: Map<String, Value>) -> Vars {
        Vars::new(map)
    }
}

/// A `suite.json`.
#[derive(Debug)]
pub struct Suite {
    /// Its folder: the suite covers cases in it and below.
    pub dir: PathBuf,
    /// The file, as shown to the user.
    pub file: String,
    /// Vars visible to the cases below, compiled at load.
    pub vars: Vars,
    /// Runs once before the cases below.
    pub prepare: Vec<Step>,
    /// Runs once after them, always.
    pub cleanup: Vec<Step>,
}

/// A case file, loaded.
#[derive(Debug)]
pub struct Case {
    /// The name as written (or the file name without `.case.json`).
    pub name: String,
    /// The case file, absolute.
    pub path: PathBuf,
    /// The case file as shown in reports (relative to the working directory).
    pub file: String,
    /// Free text for reports.
    pub remark: Option<String>,
    /// Tags for `--tags`.
    pub tags: Vec<String>,
    /// Vars, compiled at load, in the order written.
    pub vars: Vars,
    /// Data rows, for data-driven cases, each compiled at load.
    pub data: Option<Vec<Vars>>,
    /// Timeout of the whole case; the project default when `None`.
    pub timeout: Option<Duration>,
    /// Names of things the case needs alone.
    pub locks: Vec<String>,
    /// `atf load`: the case's share of the iterations (`None`: 1).
    pub weight: Option<f64>,
    /// Matrix dimension → the values the case runs with (`--matrix`);
    /// empty: every cell.
    pub matrix: Map<String, Value>,
    /// Data set-up, run serially.
    pub prepare: Vec<Step>,
    /// Step sets; several run in parallel with each other.
    pub steps: Vec<Vec<Step>>,
    /// Always run at the end.
    pub cleanup: Vec<Step>,
    /// The suites above the case, outermost first.
    pub suites: Vec<Arc<Suite>>,
    /// The line of each var in the case file (for `atf check`).
    pub var_lines: std::collections::HashMap<String, usize>,
}

/// One run of a case: the case itself, or one data row of it.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// The loaded case, or the error that kept it from loading.
    pub case: Result<Arc<Case>, Arc<BrokenCase>>,
    /// The name in reports (`name[i]` for data rows).
    pub name: String,
    /// The data row index and values.
    pub row: Option<(usize, Vars)>,
}

impl CaseRun {
    /// The case file as shown in reports.
    pub fn file(&self) -> &str {
        match &self.case {
            Ok(c) => &c.file,
            Err(b) => &b.file,
        }
    }

    /// The tags of the case (none for a broken file).
    pub fn tags(&self) -> &[String] {
        match &self.case {
            Ok(c) => &c.tags,
            Err(b) => &b.tags,
        }
    }

    /// The key that orders runs and shards: file, then row.
    pub fn sort_key(&self) -> (String, usize, String) {
        (
            self.file().to_string(),
            self.row.as_ref().map_or(0, |(i, _)| *i),
            self.name.clone(),
        )
    }
}

/// A case file that could not be loaded: it becomes an `error` case.
#[derive(Debug)]
pub struct BrokenCase {
    /// The file as shown in reports.
    pub file: String,
    /// Tags, when they could be read.
    pub tags: Vec<String>,
    /// What is wrong, rendered with the source.
    pub errors: Vec<crate::diag::Diagnostic>,
}
