//! `atf schema`: the JSON Schema (draft 2020-12) of case files, with the
//! `args` of every keyword the binary knows — built-in and plugin — so that
//! an editor completes and checks case files.

use serde_json::{Map, Value, json};

use crate::load::Catalog;

/// A JSON Schema type for an `ArgSpec` type such as `string|number`; values
/// that are not strings may still be written as a `${...}` placeholder.
fn arg_schema(ty: &str, doc: &str) -> Value {
    let types: Vec<&str> = ty
        .split('|')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if types.is_empty() {
        return json!({ "description": doc });
    }
    if types.contains(&"string") {
        return json!({ "type": types, "description": doc });
    }
    json!({
        "description": doc,
        "anyOf": [
            { "type": types },
            { "type": "string", "pattern": "\\$\\{", "description": "a placeholder" }
        ]
    })
}

/// The schema of case files for the keywords of `catalog`.
pub fn case_schema(catalog: &Catalog) -> Value {
    let names: Vec<&str> = catalog.names().collect();
    let mut defs = Map::new();
    let mut conditions = Vec::new();
    for spec in catalog.specs() {
        let mut props = Map::new();
        for a in &spec.args {
            props.insert(a.name.clone(), arg_schema(&a.ty, &a.doc));
        }
        let required: Vec<&str> = spec
            .args
            .iter()
            .filter(|a| a.required)
            .map(|a| a.name.as_str())
            .collect();
        let mut args = json!({
            "type": "object",
            "description": format!("{} Result: {}", spec.summary, spec.result),
            "properties": props,
        });
        if !spec.open_args {
            args["additionalProperties"] = json!(false);
        }
        if !required.is_empty() {
            args["required"] = json!(required);
        }
        let def = format!("args:{}", spec.name);
        defs.insert(def.clone(), args);
        conditions.push(json!({
            "if": { "properties": { "keyword": { "const": spec.name } }, "required": ["keyword"] },
            "then": { "properties": { "args": { "$ref": format!("#/$defs/{}", def.replace('/', "~1")) } } }
        }));
    }
    let keyword_docs: Vec<Value> = catalog
        .specs()
        .map(|s| json!({ "const": s.name, "description": s.summary }))
        .collect();
    defs.insert("duration".into(), json!({
        "description": "\"250ms\", \"2s\", \"1m30s\", or a number of milliseconds",
        "anyOf": [
            { "type": "string", "pattern": "^\\s*(([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+|[0-9]+)\\s*$" },
            { "type": "number", "minimum": 0 }
        ]
    }));
    defs.insert("step".into(), json!({
        "type": "object",
        "required": ["keyword"],
        "additionalProperties": false,
        "properties": {
            "keyword": { "description": "the keyword to call", "oneOf": keyword_docs, "examples": names },
            "remark": { "type": "string", "description": "shown in reports" },
            "args": { "type": "object", "description": "the keyword's arguments; strings may hold ${...} placeholders" },
            "expect": {
                "type": "object",
                "description": "JSONPath (or bare field) → literal or matcher object ($eq $ne $gt $gte $lt $lte $in $nin $contains $regex $exists $type $len $not $any)",
                "additionalProperties": { "$ref": "#/$defs/expectation" }
            },
            "save": { "type": "object", "description": "name → JSONPath into the result", "additionalProperties": { "type": "string" } },
            "retry": {
                "description": "re-run until the expectations hold",
                "anyOf": [
                    { "type": "integer", "minimum": 1 },
                    {
                        "type": "object",
                        "required": ["times"],
                        "additionalProperties": false,
                        "properties": {
                            "times": { "type": "integer", "minimum": 1 },
                            "interval": { "$ref": "#/$defs/duration" }
                        }
                    }
                ]
            },
            "timeout": { "$ref": "#/$defs/duration" },
            "undo": { "$ref": "#/$defs/step", "description": "reverses this step at cleanup time" }
        },
        "allOf": conditions
    }));
    defs.insert(
        "expectation".into(),
        json!({
            "description": "a literal (deep equality) or an object of $ matchers"
        }),
    );
    defs.insert(
        "steps".into(),
        json!({ "type": "array", "items": { "$ref": "#/$defs/step" } }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "atf-case.schema.json",
        "title": "atf case file",
        "description": "One atf test case: prepare, steps (several step sets run in parallel) and cleanup.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "$schema": { "type": "string" },
            "name": { "type": "string", "description": "defaults to the file name without .case.json" },
            "remark": { "type": "string" },
            "tags": { "type": "array", "items": { "type": "string" } },
            "vars": { "type": "object", "description": "resolved once when the case starts, in order" },
            "data": { "type": "array", "items": { "type": "object" }, "description": "one run per row, row fields over vars" },
            "timeout": { "$ref": "#/$defs/duration" },
            "locks": { "type": "array", "items": { "type": "string" } },
            "weight": { "type": "number", "minimum": 0, "description": "atf load: the case's share of the iterations (default 1)" },
            "matrix": {
                "type": "object",
                "description": "run only in the --matrix cells where each named dimension has one of these values",
                "additionalProperties": {
                    "anyOf": [
                        { "type": ["string", "number", "boolean"] },
                        { "type": "array", "minItems": 1, "items": { "type": ["string", "number", "boolean"] } }
                    ]
                }
            },
            "prepare": { "$ref": "#/$defs/steps" },
            "steps": {
                "anyOf": [
                    { "$ref": "#/$defs/steps" },
                    { "type": "array", "items": { "$ref": "#/$defs/steps" }, "description": "step sets run in parallel" }
                ]
            },
            "cleanup": { "$ref": "#/$defs/steps" }
        },
        "$defs": defs
    })
}
