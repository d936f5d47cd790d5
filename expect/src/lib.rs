//! Expectations: JSONPath keys, literal values compared by deep equality
//! (numbers by value) and `$` matchers (SPEC §3 `expect` and `save`).
//!
//! Each key of `expect` is a JSONPath into a keyword's result, or a bare
//! name meaning `$.name` (see [`path`]). A plain path compares the one value
//! it selects — a missing one is absent: `{"$exists": false}` holds and
//! anything else fails with "nothing at PATH" — while a path with a
//! wildcard, filter, slice, union or descendant compares the list of all it
//! selects. Each value is a literal or a matcher object (see [`matchers`]).
//! [`check`] runs expectations, [`validate`] checks their form at load
//! time, [`select`] serves `save`.

pub mod matchers;
pub mod path;
pub mod value;
pub mod xpath;

use atf_reports::Failure;
use serde_json::{Map, Value};

use matchers::{Ctx, Mode, Verdict};
pub use path::JsonPath;
use path::Selection;

/// Checks `actual` against every expectation; returns the ones that fail
/// (in the order written). `Err` when an expectation is malformed (bad
/// JSONPath, unknown matcher, operand of the wrong type, bad regex), with
/// the key first.
pub fn check(actual: &Value, expect: &Map<String, Value>) -> Result<Vec<Failure>, ExpectError> {
    let mut paths = Vec::with_capacity(expect.len());
    for key in expect.keys() {
        paths.push(JsonPath::parse(key).map_err(|message| ExpectError::Path {
            key: key.clone(),
            message,
        })?);
    }
    check_compiled(actual, paths.iter().zip(expect.values()))
}

/// [`check`] with the keys parsed already (at load time): each item is a
/// key's [`JsonPath`] and the expected value, placeholders resolved.
pub fn check_compiled<'e>(
    actual: &Value,
    expect: impl IntoIterator<Item = (&'e JsonPath, &'e Value)>,
) -> Result<Vec<Failure>, ExpectError> {
    let mut failures = Vec::new();
    for (path, expected) in expect {
        let matcher = Matcher::compile(expected).map_err(|e| e.at(path.as_str()))?;
        failures.extend(matcher.check(path, actual)?);
    }
    Ok(failures)
}

/// Why expectations could not be checked (as opposed to not holding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    /// An expected value that is not a valid literal or matcher object.
    #[error("{key}: {source}")]
    Malformed {
        /// The expectation's key.
        key: String,
        /// What is wrong with its value.
        source: MatcherError,
    },
    /// A key that is not a valid JSONPath, or that cannot be evaluated.
    #[error("{key}: {message}")]
    Path {
        /// The expectation's key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ExpectError {
    /// The key of the expectation at fault.
    pub fn key(&self) -> &str {
        match self {
            ExpectError::Malformed { key, .. } | ExpectError::Path { key, .. } => key,
        }
    }
}

/// Why an expected value does not compile: each problem, joined by `; `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MatcherError(pub String);

impl MatcherError {
    /// This error as the one of expectation `key`.
    pub fn at(self, key: &str) -> ExpectError {
        ExpectError::Malformed {
            key: key.to_string(),
            source: self,
        }
    }
}

/// An expected value compiled once — a literal or a tree of `$` matchers
/// with its regexes built — to check any number of results against.
#[derive(Debug)]
pub struct Matcher {
    node: matchers::Node,
    written: Value,
}

impl Matcher {
    /// Compiles an expected value whose placeholders are resolved (or that
    /// has none). `Err` names what is malformed.
    pub fn compile(expected: &Value) -> Result<Matcher, MatcherError> {
        let mut errors = Vec::new();
        let node = matchers::compile(expected, Mode::Strict, &mut errors);
        if !errors.is_empty() {
            return Err(MatcherError(errors.join("; ")));
        }
        Ok(Matcher {
            node,
            written: expected.clone(),
        })
    }

    /// The expected value as written.
    pub fn expected(&self) -> &Value {
        &self.written
    }

    /// Checks what `path` selects in `actual`: `None` when it holds, else
    /// the failure. `Err` when the path cannot be evaluated.
    pub fn check(&self, path: &JsonPath, actual: &Value) -> Result<Option<Failure>, ExpectError> {
        let key = path.as_str();
        let selection = path.select(actual).map_err(|message| ExpectError::Path {
            key: key.to_string(),
            message,
        })?;
        let list;
        let (got, is_list) = match selection {
            Selection::One(v) => (Some(v), false),
            Selection::Nothing => (None, false),
            Selection::List(items) => {
                list = Value::Array(items.into_iter().cloned().collect());
                (Some(&list), true)
            }
        };
        let ctx = Ctx {
            path: key,
            list: is_list,
        };
        let message = match matchers::eval(&self.node, got, ctx) {
            Verdict::Hold => return Ok(None),
            Verdict::Fail(message) => message,
            Verdict::Missing => format!("nothing at {key}"),
        };
        Ok(Some(Failure {
            path: key.to_string(),
            expected: self.written.clone(),
            actual: got.cloned().unwrap_or(Value::Null),
            message,
            location: None,
        }))
    }
}

/// Checks the form of expectations before anything runs: each key a valid
/// JSONPath or bare name, each matcher known and its operand of the right
/// type. One message per problem, prefixed with the key. Values may still
/// hold `${...}` placeholders: a string with one is accepted wherever a
/// number, list, boolean, type name or regex is expected.
pub fn validate(expect: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, expected) in expect {
        if let Err(e) = path::is_list(key) {
            problems.push(format!("{key}: {e}"));
        }
        let mut errors = Vec::new();
        matchers::compile(expected, Mode::Lenient, &mut errors);
        problems.extend(errors.into_iter().map(|e| format!("{key}: {e}")));
    }
    problems
}

/// Checks that a `save` path (or expectation key) is a valid JSONPath or
/// bare name; the message starts with the path. A path still holding a
/// `${...}` placeholder is taken as it is (it is resolved later).
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.contains("${") {
        return Ok(());
    }
    path::is_list(path)
        .map(|_| ())
        .map_err(|e| format!("{path}: {e}"))
}

/// Selects what a `save` path or expectation key points at: `None` when a
/// plain path finds nothing; a list for wildcard/filter/slice/union/descent
/// paths (possibly empty); the value for a plain path. `Err` (starting with
/// the path) for a malformed path.
pub fn select(actual: &Value, path: &str) -> Result<Option<Value>, String> {
    path::select(actual, path)
        .map(|s| s.to_value())
        .map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn result() -> Value {
        json!({
            "status": 200,
            "headers": {"content-type": "application/json"},
            "body": {
                "data": {"id": "ORD-17", "name": "Ann", "version": 3, "total": 12.0,
                         "tags": ["new", "vip"]},
                "items": [{"id": 1, "sku": "A"}, {"id": 3, "sku": "B"}, {"id": 3, "sku": "C"}]
            },
            "elapsed_ms": 12
        })
    }

    fn failures(expect: Value) -> Vec<Failure> {
        check(&result(), &map(expect)).unwrap()
    }

    fn failure(path: &str, expected: Value, actual: Value, message: &str) -> Failure {
        Failure {
            path: path.into(),
            expected,
            actual,
            message: message.into(),
            location: None,
        }
    }

    #[test]
    fn everything_holds() {
        let f = failures(json!({
            "status": 200,
            "$.body.data.name": "Ann",
            "body.data.total": 12,
            "$.body.data.tags": ["new", "vip"],
            "$.body.data.tags[0]": "new",
            "$.body.data.tags[-1]": {"$eq": "vip"},
            "headers.content-type": {"$contains": "json"},
            "$.headers['content-type']": {"$regex": "^application/"},
            "$.body.data.id": {"$regex": "^ORD-\\d+$", "$type": "string", "$len": 6},
            "$.body.items[?@.id == 3].sku": ["B", "C"],
            "$.body.items[*].id": {"$len": 3, "$any": 1, "$contains": 3},
            "$.body.items[?@.id == 9]": {"$exists": false, "$len": 0, "$eq": []},
            "$..sku": {"$eq": ["A", "B", "C"]},
            "$.body.data.nope": {"$exists": false},
            "$.body.data": {"$contains": {"name": "Ann", "tags": ["vip"]}, "$not": {"$len": 0}},
            "elapsed_ms": {"$gte": 0, "$lt": 30000},
        }));
        assert_eq!(f, Vec::<Failure>::new());
    }

    #[test]
    fn failures_name_path_expected_actual_and_why() {
        let f = failures(json!({
            "status": 500,
            "$.body.data.id": {"$regex": "^INV-"},
            "$.body.id": 7,
            "$.body.data.version": {"$exists": false},
            "$.body.items[?@.id == 3].sku": "B",
            "$.body.items[0:1]": {"$len": 2},
        }));
        assert_eq!(
            f,
            vec![
                failure("status", json!(500), json!(200), "expected 500, got 200"),
                failure(
                    "$.body.data.id",
                    json!({"$regex": "^INV-"}),
                    json!("ORD-17"),
                    "\"ORD-17\" does not match /^INV-/"
                ),
                failure("$.body.id", json!(7), Value::Null, "nothing at $.body.id"),
                failure(
                    "$.body.data.version",
                    json!({"$exists": false}),
                    json!(3),
                    "expected nothing at $.body.data.version, got 3"
                ),
                failure(
                    "$.body.items[?@.id == 3].sku",
                    json!("B"),
                    json!(["B", "C"]),
                    "expected \"B\", got [\"B\",\"C\"]"
                ),
                failure(
                    "$.body.items[0:1]",
                    json!({"$len": 2}),
                    json!([{"id": 1, "sku": "A"}]),
                    "expected length 2, got length 1"
                ),
            ]
        );
    }

    #[test]
    fn list_paths_compare_lists_even_of_one_or_none() {
        assert_eq!(
            failures(json!({"$.body.items[?@.sku == 'A'].id": [1]})),
            vec![]
        );
        assert_eq!(
            failures(json!({"$.body.items[?@.sku == 'Z'].id": []})),
            vec![]
        );
        assert_eq!(
            failures(json!({"$.body.items[?@.sku == 'A'].id": 1})),
            vec![failure(
                "$.body.items[?@.sku == 'A'].id",
                json!(1),
                json!([1]),
                "expected 1, got [1]"
            )]
        );
        assert_eq!(
            failures(json!({"$.nope[*]": {"$exists": true}})),
            vec![failure(
                "$.nope[*]",
                json!({"$exists": true}),
                json!([]),
                "nothing at $.nope[*]"
            )]
        );
    }

    #[test]
    fn missing_values() {
        assert_eq!(failures(json!({"missing": {"$exists": false}})), vec![]);
        assert_eq!(
            failures(json!({"missing": null, "$.status.x": {"$ne": 1}})),
            vec![
                failure("missing", Value::Null, Value::Null, "nothing at missing"),
                failure(
                    "$.status.x",
                    json!({"$ne": 1}),
                    Value::Null,
                    "nothing at $.status.x"
                ),
            ]
        );
    }

    #[test]
    fn several_failing_operators_make_one_failure() {
        assert_eq!(
            failures(json!({"status": {"$gte": 300, "$type": "string"}})),
            vec![failure(
                "status",
                json!({"$gte": 300, "$type": "string"}),
                json!(200),
                "expected >= 300, got 200; expected type string, got number 200"
            )]
        );
    }

    #[test]
    fn results_that_are_not_objects() {
        let e = map(json!({"$": [1, 2], "$[0]": 1, "$[*]": [1, 2], "x": {"$exists": false}}));
        assert_eq!(check(&json!([1, 2]), &e).unwrap(), vec![]);
        let e = map(json!({"$": {"$regex": "^ok$"}, "value": {"$exists": false}}));
        assert_eq!(check(&json!("ok"), &e).unwrap(), vec![]);
        let e = map(json!({"$": null}));
        assert_eq!(check(&Value::Null, &e).unwrap(), vec![]);
    }

    #[test]
    fn malformed_expectations_are_errors() {
        let err = |v: Value| check(&result(), &map(v)).unwrap_err().to_string();
        let typed = check(&result(), &map(json!({"status": {"$gtt": 1}}))).unwrap_err();
        assert_eq!(typed.key(), "status");
        assert!(matches!(typed, ExpectError::Malformed { .. }));
        assert_eq!(
            err(json!({"$.a[": 1})),
            "$.a[: bad JSONPath: expected selector at column 5"
        );
        assert_eq!(
            err(json!({"status": {"$gtt": 1}})),
            "status: unknown matcher $gtt (did you mean $gt?)"
        );
        assert_eq!(
            err(json!({"status": {"$regex": "[a-"}})),
            "status: $regex /[a-/ does not compile: unclosed character class"
        );
        assert_eq!(
            err(json!({"status": {"$in": 200}})),
            "status: $in takes a list of candidates, got 200"
        );
        assert_eq!(
            err(json!({"status": {"$type": "int"}})),
            "status: unknown $type \"int\" (did you mean \"integer\"?); types are null boolean \
             number integer string array object"
        );
        assert_eq!(
            err(json!({"status": {"$gt": 1, "code": 2}})),
            "status: an object mixing matchers ($gt) with plain keys (code): a matcher object \
             has only $ keys; for a literal object with $ keys use {\"$eq\": ...}"
        );
        // Malformed even when an earlier expectation fails.
        assert!(check(&result(), &map(json!({"status": 1, "x": {"$bad": 1}}))).is_err());
    }

    #[test]
    fn validate_reports_every_problem_with_its_key() {
        let problems = validate(&map(json!({
            "status": {"$gtt": 1},
            "$.a[": 1,
            "$.b": {"$in": "x", "$regex": "("},
            "$.c": {"$in": "${allowed}", "$regex": "^${prefix}", "$len": "${n}",
                    "$exists": "${flag}", "$type": "${t}", "$gt": "${min}"},
            "content-type": {"$contains": "json"},
            "$.d": {"a": 1, "$eq": 2},
        })));
        assert_eq!(
            problems,
            vec![
                "status: unknown matcher $gtt (did you mean $gt?)",
                "$.a[: bad JSONPath: expected selector at column 5",
                "$.b: $in takes a list of candidates, got \"x\"",
                "$.b: $regex /(/ does not compile: unclosed group",
                "$.d: an object mixing matchers ($eq) with plain keys (a): a matcher object has \
                 only $ keys; for a literal object with $ keys use {\"$eq\": ...}",
            ]
        );
        assert_eq!(
            validate(&map(json!({"status": 200, "$.x[*]": []}))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn select_for_save() {
        let r = result();
        assert_eq!(select(&r, "$.body.data.version").unwrap(), Some(json!(3)));
        assert_eq!(select(&r, "body.data.name").unwrap(), Some(json!("Ann")));
        assert_eq!(select(&r, "status").unwrap(), Some(json!(200)));
        assert_eq!(select(&r, "$.body.nope").unwrap(), None);
        assert_eq!(
            select(&r, "$.body.items[*].sku").unwrap(),
            Some(json!(["A", "B", "C"]))
        );
        assert_eq!(
            select(&r, "$.body.items[?@.id == 3].sku").unwrap(),
            Some(json!(["B", "C"]))
        );
        assert_eq!(
            select(&r, "$.body.items[?@.id == 4]").unwrap(),
            Some(json!([]))
        );
        assert_eq!(
            select(&r, "$.body.items[?@.id ~= 4]").unwrap_err(),
            "$.body.items[?@.id ~= 4]: bad JSONPath: expected segment, name_segment, \
             index_segment, comp_op, or ALPHA at column 20"
        );
    }

    #[test]
    fn validate_path_forms() {
        assert_eq!(validate_path("$.a.b[0]"), Ok(()));
        assert_eq!(validate_path("content-type"), Ok(()));
        assert_eq!(validate_path("$.items[${i}]"), Ok(()));
        assert_eq!(
            validate_path("$.a["),
            Err("$.a[: bad JSONPath: expected selector at column 5".into())
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        let odd = [
            json!(null),
            json!([]),
            json!({}),
            json!("text"),
            json!([[[]]]),
            json!({"": {"": [null]}}),
            json!(1e308),
            json!(-9223372036854775808i64),
        ];
        let keys = [
            "$",
            "",
            "$[-9007199254740991]",
            "$[9007199254740991]",
            "$[::-1]",
            "$[::0]",
            "$..*",
            "$..[*]",
            "$[?length(@) > 0]",
            "$[?@ == @]",
            "..",
            "$['\\u0000']",
            "$[\"\"]",
            "é.ü",
            "$.a[?@.b == $.c]",
            "$[?count(@.*) == 1]",
            "$[?match(@, '[')]",
            "$[?search(@, '(')]",
            "$[0:9007199254740991:9007199254740991]",
        ];
        let matchers = [
            json!({"$len": {"$not": {"$any": 1}}}),
            json!({"$contains": {"a": [[]]}}),
            json!({"$any": {"$len": 0}}),
            json!({"$type": ["null", "array"]}),
            json!({"$regex": ".*"}),
            json!({"$gt": ""}),
        ];
        for value in &odd {
            for key in keys {
                let _ = select(value, key);
                for m in &matchers {
                    let mut e = Map::new();
                    e.insert(key.to_owned(), m.clone());
                    let _ = check(value, &e);
                    let _ = validate(&e);
                }
            }
        }
    }
}
