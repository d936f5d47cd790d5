//! Expectations: JSONPath keys, literal values compared by deep equality
//! (numbers by value) and `$` matchers.

use atf_reports::Failure;
use serde_json::{Map, Value};

/// Checks `actual` against every expectation; returns the ones that fail.
/// `Err` when an expectation is malformed (bad JSONPath, unknown matcher).
pub fn check(actual: &Value, expect: &Map<String, Value>) -> Result<Vec<Failure>, String> {
    let _ = (actual, expect);
    Ok(Vec::new())
}

/// Checks the form of expectations before anything runs: each key a valid
/// JSONPath or bare name, each matcher known. One message per problem,
/// prefixed with the key.
pub fn validate(expect: &Map<String, Value>) -> Vec<String> {
    let _ = expect;
    Vec::new()
}

/// Selects what a `save` path or expectation key points at: `None` when a
/// plain path finds nothing; a list for wildcard/filter/slice/descent paths.
pub fn select(actual: &Value, path: &str) -> Result<Option<Value>, String> {
    let _ = (actual, path);
    Ok(None)
}
