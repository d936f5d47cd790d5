//! A bounded fuzz target for the loader: property tests that feed it case
//! files built at random from the case format's own pieces (field names,
//! keywords, placeholders, durations, huge numbers, nesting) and broken
//! text (cut short, bytes dropped or doubled), and require that loading
//! never panics: each file becomes a case or a diagnostic. A fixed seed and
//! count keep it deterministic and quick for every CI run
//! (`PROPTEST_CASES` raises the count for a longer local session).

use std::path::PathBuf;

use atf::load::{Catalog, load};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

const KEYS: &[&str] = &[
    "name", "remark", "tags", "vars", "data", "timeout", "locks", "weight", "matrix", "prepare",
    "steps", "cleanup", "keyword", "args", "expect", "save", "retry", "undo", "times", "interval",
    "sql", "url", "method", "headers", "value", "duration", "$.body", "$schema",
];

const STRINGS: &[&str] = &[
    "assert",
    "log",
    "sleep",
    "ctx.set",
    "http.request",
    "mysql.query",
    "pg.exec",
    "exec",
    "nope.kw",
    "${a}",
    "${",
    "}",
    "${upper(a)}",
    "${ident(t)}",
    "$.x[?(@.n > 1)]",
    "$[",
    "99999999999999h",
    "1e300ms",
    "2s",
    "-1s",
    "0",
    "",
    "\u{feff}",
    "${env.HOME}",
    "${file('/dev/zero')}",
    "SELECT ${x}",
    "{\"$gt\": 1}",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => proptest::sample::select(STRINGS).prop_map(|s| json!(s)),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => proptest::sample::select(vec![1e300, -1e300, 0.5, f64::MAX]).prop_map(|n| json!(n)),
        1 => any::<bool>().prop_map(|b| json!(b)),
        1 => Just(Value::Null),
        1 => "\\PC{0,8}".prop_map(|s| json!(s)),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |members| {
                    let mut m = Map::new();
                    for (k, v) in members {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

/// A case file: mostly well-formed JSON of the format's shape, sometimes
/// damaged text.
fn shaped() -> impl Strategy<Value = String> {
    (tree(), tree(), tree()).prop_map(|(steps, vars, other)| {
        json!({"name": "f", "vars": vars, "steps": [steps, {"keyword": "assert", "args": other}],
               "cleanup": [other]})
        .to_string()
    })
}

fn case_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => shaped(),
        1 => (shaped(), any::<usize>(), any::<u8>()).prop_map(|(text, at, b)| {
            let mut bytes = text.into_bytes();
            let at = at % (bytes.len() + 1);
            match b % 3 {
                0 => bytes.truncate(at),
                1 => {
                    if at < bytes.len() {
                        bytes.remove(at);
                    }
                }
                _ => bytes.insert(at, b),
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        1 => "\\PC{0,64}",
    ]
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1500);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]))
}

#[test]
fn the_loader_never_panics_on_any_case_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file: PathBuf = dir.path().join("f.case.json");
    let catalog = Catalog::new(atf_keywords::specs());
    let boundaries = vec![dir.path().to_path_buf()];
    runner()
        .run(&case_text(), |text| {
            std::fs::write(&file, &text).expect("write");
            let runs = load(std::slice::from_ref(&file), &boundaries, &catalog);
            prop_assert!(!runs.is_empty(), "no case and no diagnostic for {text}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_json_parser_never_panics_and_agrees_with_serde_json() {
    runner()
        .run(&"\\PC{0,48}", |text| {
            let ours = atf::jsonpos::parse(&text).map(|(v, _)| v).ok();
            let theirs = serde_json::from_str::<Value>(&text).ok();
            prop_assert_eq!(ours, theirs, "{}", text);
            Ok(())
        })
        .unwrap();
}
