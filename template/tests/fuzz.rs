//! A bounded fuzz target for the placeholder language: property tests that
//! feed the parser and evaluator random text — arbitrary Unicode, and
//! "token soup" built from the language's own pieces (`${`, `}`, `$${`,
//! quotes, brackets, paths, every function name, huge numbers) — and
//! require that nothing panics and that every answer is a value or an
//! error. A fixed number of cases and a fixed seed keep it deterministic
//! and quick enough for every CI run (`PROPTEST_CASES` raises the count for
//! a longer local session).

use std::path::Path;

use atf_template::{
    Lookup, Resolver, function_names, referenced_names, resolve, resolve_str, sql_placeholders,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

struct Vars(Value);

impl Lookup for Vars {
    fn get(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.0
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn vars() -> Vars {
    Vars(json!({
        "a": "x",
        "n": 5,
        "big": 1e300,
        "neg": -7,
        "t": true,
        "nul": null,
        "obj": {"k": [1, {"d": "deep"}], "x-y": "z"},
        "arr": [1, "two", [3]],
        "tmpl": "${a}",
        "key": "0123456789abcdef",
    }))
}

/// Pieces of the language, glued at random.
fn token() -> impl Strategy<Value = String> {
    let mut fixed: Vec<String> = [
        "${",
        "}",
        "$${",
        "$",
        "{",
        "(",
        ")",
        ",",
        "'",
        "\"",
        "\\",
        "\\'",
        ".",
        "[",
        "]",
        "[-1]",
        "[0]",
        "[99999999999999999999]",
        "-1",
        "0",
        "1.5",
        "1e400",
        "99999999999999999999",
        "-9223372036854775808",
        "a",
        "n",
        "obj",
        "arr",
        "tmpl",
        "key",
        "nul",
        "env.",
        "env.HOME",
        "env['PATH']",
        "x-y",
        "k",
        "d",
        " ",
        "\t",
        "\n",
        "é",
        "✓",
        "\u{0}",
        "true",
        "false",
        "null",
        "'%Y-%m-%d'",
        "'%Q%'",
        "'+1d'",
        "'-99999999d'",
        "'$.k[*]'",
        "'{'",
        "'[1,'",
        "'/dev/null'",
        "'../x.json'",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for name in function_names() {
        fixed.push(name.to_string());
        fixed.push(format!("{name}("));
    }
    prop_oneof![
        8 => proptest::sample::select(fixed),
        1 => "[a-z0-9_.()'\\[\\]${},-]{0,6}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 0..24).prop_map(|t| t.concat())
}

fn exercise(text: &str) {
    let lookup = vars();
    let r = Resolver {
        lookup: &lookup,
        base_dir: Path::new("."),
    };
    // Only "no panic" is checked: each answer is a value or an error.
    let _ = resolve_str(text, &r);
    let _ = resolve(&json!({ "k": [text, { "n": text }] }), &r);
    let _ = referenced_names(text);
    let _ = sql_placeholders(text);
}

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(3000),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A runner with a fixed seed: the same inputs on every CI run.
fn runner() -> TestRunner {
    TestRunner::new_with_rng(config(), TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

#[test]
fn token_soup_never_panics() {
    runner()
        .run(&soup(), |text| {
            exercise(&text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_text_never_panics() {
    runner()
        .run(&any::<String>(), |text| {
            exercise(&text);
            exercise(&format!("${{{text}}}"));
            Ok(())
        })
        .unwrap();
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [10, 100, 10_000] {
        let text = format!("${{{}a{}}}", "upper(".repeat(depth), ")".repeat(depth));
        exercise(&text);
        let text = format!("${{a{}}}", "[0]".repeat(depth));
        exercise(&text);
    }
}
