//! The file formats — case, suite and project files — as typed structs.
//!
//! This is the one place their shape is written: `atf schema` is generated
//! from these types (with `schemars`), and the loader takes its lists of
//! known fields from them ([`Fields`]), so a field added here is known to
//! both. The loader still reads each file field by field, because it keeps
//! the position of every value and compiles steps into the plan
//! ([`crate::model`]); these types describe, they are not the plan.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One atf test case: prepare, steps (several step sets run in parallel)
/// and cleanup.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "atf case file")]
pub struct CaseFile {
    /// The JSON Schema an editor checks the file with.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// The case's name; defaults to the file name without `.case.json`.
    #[serde(default)]
    pub name: Option<String>,
    /// Shown in reports.
    #[serde(default)]
    pub remark: Option<String>,
    /// Labels that `--tags` selects by.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Vars resolved once when the case starts, in order.
    #[serde(default)]
    pub vars: Option<Map<String, Value>>,
    /// One run per row; a row's fields win over `vars`.
    #[serde(default)]
    pub data: Option<Vec<Map<String, Value>>>,
    /// The whole case's time limit.
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub timeout: Option<Value>,
    /// Names no other running case may hold at the same time.
    #[serde(default)]
    pub locks: Option<Vec<String>>,
    /// `atf load`: the case's share of the iterations (default 1).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub weight: Option<f64>,
    /// Runs only in the `--matrix` cells where each named dimension has one
    /// of these values.
    #[serde(default)]
    #[schemars(schema_with = "case_matrix")]
    pub matrix: Option<Value>,
    /// Steps that set the case up.
    #[serde(default)]
    pub prepare: Option<Vec<StepFile>>,
    /// The case's steps: one list, or a list of step sets run in parallel.
    #[serde(default)]
    pub steps: Option<StepSets>,
    /// Steps that always run at the end, after a failure, a timeout or Ctrl-C.
    #[serde(default)]
    pub cleanup: Option<Vec<StepFile>>,
}

/// `steps`: one list, or step sets run in parallel.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StepSets {
    /// Steps run in order.
    One(Vec<StepFile>),
    /// Step sets run in parallel, each in order.
    Parallel(Vec<Vec<StepFile>>),
}

/// One step: a keyword call, what to check and what to save.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "step")]
pub struct StepFile {
    /// The keyword to call (`atf keywords` lists them).
    pub keyword: String,
    /// Shown in reports; names the step's label in `atf load`.
    #[serde(default)]
    pub remark: Option<String>,
    /// The keyword's arguments; strings may hold `${...}` placeholders.
    #[serde(default)]
    pub args: Option<Map<String, Value>>,
    /// JSONPath (or a bare field) → a literal (deep equality) or an object
    /// of `$` matchers ($eq $ne $gt $gte $lt $lte $in $nin $contains $regex
    /// $exists $type $len $not $any $before $after $within $date_format
    /// $xpath).
    #[serde(default)]
    pub expect: Option<Map<String, Value>>,
    /// Name → JSONPath into the result (the value is saved in the
    /// context), or an extraction from the text a path selects.
    #[serde(default)]
    pub save: Option<BTreeMap<String, SaveField>>,
    /// Re-runs the step until its expectations hold.
    #[serde(default)]
    pub retry: Option<RetryField>,
    /// The step's time limit.
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub timeout: Option<Value>,
    /// A step that reverses this one at cleanup time, run only if this one ran.
    #[serde(default)]
    pub undo: Option<Box<StepFile>>,
}

/// A `save` entry: a JSONPath, or what to extract from a text.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SaveField {
    /// A JSONPath into the result (`"$.body.id"`).
    Path(String),
    /// A regex capture or an XPath from the text at `from`.
    Extract(Extract),
}

/// `save` as an object: exactly one of `regex` and `xpath`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Extract {
    /// The JSONPath of the text to read (default `$.body`).
    #[serde(default)]
    pub from: Option<String>,
    /// A regular expression: its first capture group is saved (the whole
    /// match when it has no group).
    #[serde(default)]
    pub regex: Option<String>,
    /// An XPath 1.0 expression on an XML or HTML text.
    #[serde(default)]
    pub xpath: Option<String>,
}

/// `retry`: a number of attempts, or attempts and the wait between them.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetryField {
    /// How many times to try.
    Times(#[schemars(range(min = 1))] u32),
    /// How many times, and how long to wait between tries.
    Full(Retry),
}

/// `retry` as an object.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// How many times to try.
    #[schemars(range(min = 1))]
    pub times: u32,
    /// The wait between tries.
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub interval: Option<Value>,
}

/// A `suite.json`: vars, and steps run once before the first case below
/// its folder and once after the last.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "atf suite file")]
pub struct SuiteFile {
    /// The JSON Schema an editor checks the file with.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// The suite's name; defaults to its folder's.
    #[serde(default)]
    pub name: Option<String>,
    /// Shown in reports.
    #[serde(default)]
    pub remark: Option<String>,
    /// Vars every case below the folder sees.
    #[serde(default)]
    pub vars: Option<Map<String, Value>>,
    /// Steps run once, before the first case of the suite.
    #[serde(default)]
    pub prepare: Option<Vec<StepFile>>,
    /// Steps run once, after the last case of the suite, whatever happened.
    #[serde(default)]
    pub cleanup: Option<Vec<StepFile>>,
}

/// The project file `atf.json`: environments, resources, defaults,
/// plugins, secrets and limits.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "atf project file")]
pub struct ProjectFile {
    /// The JSON Schema an editor checks the file with.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// The environment used without `--env`.
    #[serde(default)]
    pub default_env: Option<String>,
    /// Cases run at once (default: the number of CPUs).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub jobs: Option<u64>,
    /// Default time limits.
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
    /// Plugin folders or files, relative to the project file.
    #[serde(default)]
    pub plugins: Option<Vec<PluginEntry>>,
    /// Names of vars (and environment variables) whose values are secret.
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    /// Environments by name.
    #[serde(default)]
    pub envs: Option<BTreeMap<String, EnvFile>>,
    /// What case files may do.
    #[serde(default)]
    pub allow: Option<Allow>,
    /// Size caps.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Dimensions (name → list of values) that `--matrix` may use, with
    /// `include`/`exclude` lists of cells.
    #[serde(default)]
    pub matrix: Option<Map<String, Value>>,
    /// A folder for Allure results, relative to the project file.
    #[serde(default)]
    pub allure: Option<String>,
}

/// `timeouts` of the project file.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// A step's limit (default 30s).
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub step: Option<Value>,
    /// A case's limit (default 5m).
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub case: Option<Value>,
}

/// One entry of `plugins`.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PluginEntry {
    /// A folder of plugins or one plugin file.
    Path(String),
    /// A folder or file, with how to load it.
    Entry(Plugin),
}

/// A plugin entry as an object.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// A folder of plugins or one plugin file.
    pub path: String,
    /// Load into the atf process (faster; a crash there ends the run).
    #[serde(default)]
    pub in_process: Option<bool>,
}

/// One environment of `envs`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// Vars every case sees.
    #[serde(default)]
    pub vars: Option<Map<String, Value>>,
    /// Cases with any of these tags are not run in this environment.
    #[serde(default)]
    pub exclude_tags: Option<Vec<String>>,
    /// Connections by kind (`http`, `mysql`, `pg`, `redis`, `kafka`, …)
    /// and name (`default` unless a step names one).
    #[serde(default)]
    pub resources: Option<BTreeMap<String, Map<String, Value>>>,
    /// `atf load` settings for this environment.
    #[serde(default)]
    pub load: Option<LoadSettings>,
}

/// `load` of an environment.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadSettings {
    /// Thresholds such as `p95<200ms` or `errors<1%`, checked by `atf load`.
    #[serde(default)]
    pub thresholds: Option<Vec<String>>,
}

/// `allow` of the project file.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Whether the `exec` keyword may run programs (default true).
    #[serde(default)]
    pub exec: Option<bool>,
    /// Folders outside the project that `file(...)` and path arguments may read.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

/// `limits` of the project file.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A response body or program output kept in memory (default 16MiB).
    #[serde(default)]
    #[schemars(schema_with = "size")]
    pub body: Option<Value>,
    /// A text built by placeholders (default 16MiB).
    #[serde(default)]
    #[schemars(schema_with = "size")]
    pub value: Option<Value>,
    /// What `file(...)` reads (default 16MiB).
    #[serde(default)]
    #[schemars(schema_with = "size")]
    pub file: Option<Value>,
}

fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "\"250ms\", \"2s\", \"1m30s\", or a number of milliseconds",
        "anyOf": [
            { "type": "string", "pattern": "^\\s*(([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+|[0-9]+)\\s*$" },
            { "type": "number", "minimum": 0 }
        ]
    })
}

fn size(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "bytes, or text such as \"64KiB\", \"16MiB\"",
        "type": ["integer", "string"]
    })
}

fn case_matrix(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                { "type": ["string", "number", "boolean"] },
                { "type": "array", "minItems": 1, "items": { "type": ["string", "number", "boolean"] } }
            ]
        }
    })
}

/// The field names of a file format's object, in the order the struct
/// declares them: what the loader accepts.
pub struct Fields(Vec<String>);

impl Fields {
    fn of<T: JsonSchema>() -> Fields {
        let schema = SchemaGenerator::default().into_root_schema_for::<T>();
        let names = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        Fields(names)
    }

    /// The names.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// Fields of a case file.
pub static CASE: LazyLock<Fields> = LazyLock::new(Fields::of::<CaseFile>);
/// Fields of a step.
pub static STEP: LazyLock<Fields> = LazyLock::new(Fields::of::<StepFile>);
/// Fields of a `save` extraction.
pub static EXTRACT: LazyLock<Fields> = LazyLock::new(Fields::of::<Extract>);
/// Fields of a step's `retry` object.
pub static RETRY: LazyLock<Fields> = LazyLock::new(Fields::of::<Retry>);
/// Fields of a suite file.
pub static SUITE: LazyLock<Fields> = LazyLock::new(Fields::of::<SuiteFile>);
/// Fields of the project file.
pub static PROJECT: LazyLock<Fields> = LazyLock::new(Fields::of::<ProjectFile>);
/// Fields of the project's `timeouts`.
pub static TIMEOUTS: LazyLock<Fields> = LazyLock::new(Fields::of::<Timeouts>);
/// Fields of a plugin entry object.
pub static PLUGIN: LazyLock<Fields> = LazyLock::new(Fields::of::<Plugin>);
/// Fields of an environment.
pub static ENV: LazyLock<Fields> = LazyLock::new(Fields::of::<EnvFile>);
/// Fields of an environment's `load`.
pub static LOAD: LazyLock<Fields> = LazyLock::new(Fields::of::<LoadSettings>);
/// Fields of the project's `allow`.
pub static ALLOW: LazyLock<Fields> = LazyLock::new(Fields::of::<Allow>);
/// Fields of the project's `limits`.
pub static LIMITS: LazyLock<Fields> = LazyLock::new(Fields::of::<Limits>);

/// Which file format `atf schema --file` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FileKind {
    /// `*.case.json`.
    Case,
    /// `suite.json`.
    Suite,
    /// `atf.json`.
    Project,
}

/// The generated JSON Schema of a file format (before keyword details).
pub fn root_schema(kind: FileKind) -> Value {
    let generator = SchemaGenerator::default();
    let schema = match kind {
        FileKind::Case => generator.into_root_schema_for::<CaseFile>(),
        FileKind::Suite => generator.into_root_schema_for::<SuiteFile>(),
        FileKind::Project => generator.into_root_schema_for::<ProjectFile>(),
    };
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_types_in_their_order() {
        assert_eq!(
            STEP.names(),
            [
                "keyword", "remark", "args", "expect", "save", "retry", "timeout", "undo"
            ]
        );
        assert_eq!(SUITE.names()[0], "$schema");
        assert_eq!(RETRY.names(), ["times", "interval"]);
        assert!(PROJECT.names().iter().any(|n| n == "envs"));
    }

    #[test]
    fn example_files_deserialize_into_the_types() {
        let case: CaseFile = serde_json::from_value(serde_json::json!({
            "name": "c", "timeout": "2s",
            "steps": [[{"keyword": "log", "retry": {"times": 2, "interval": 10}}], [{"keyword": "assert", "retry": 3}]]
        }))
        .unwrap();
        assert!(matches!(case.steps, Some(StepSets::Parallel(_))));
        let project: ProjectFile = serde_json::from_value(serde_json::json!({
            "plugins": ["p", {"path": "q", "in_process": true}],
            "envs": {"dev": {"resources": {"http": {"default": "http://x"}}, "load": {"thresholds": ["p95<1s"]}}}
        }))
        .unwrap();
        assert_eq!(project.plugins.map(|p| p.len()), Some(2));
    }
}
