//! `$regex`: the value (a string, or a number taken as its JSON text)
//! matches a regular expression (`regex` crate syntax, unanchored; use
//! `^…$` to anchor, `(?i)` to ignore case). A pattern is compiled with its
//! expectation: once at load when it has no placeholder.

use regex::Regex;
use serde_json::Value;

use super::{Mode, Op, Verdict, is_placeholder, verdict};
use crate::value::{cut, describe, show, text_of};

/// A compiled `$regex`.
#[derive(Debug)]
pub struct Pattern {
    regex: Regex,
    source: String,
}

/// The compiled regex for `source`, or why it does not compile.
pub fn regex(source: &str) -> Result<Regex, String> {
    Regex::new(source).map_err(|e| format!("$regex /{source}/ does not compile: {}", short(&e)))
}

/// The last line of the regex crate's error ("unclosed group").
fn short(e: &regex::Error) -> String {
    let text = e.to_string();
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.trim());
    line.to_owned()
}

/// Compiles `$regex`; the operand must be a string that compiles (at load
/// time, one with a placeholder is taken as it is).
pub fn compile(operand: &Value, mode: Mode) -> Result<Op, String> {
    match operand {
        Value::String(_) if mode == Mode::Lenient && is_placeholder(operand) => Ok(Op::Deferred),
        Value::String(source) => Ok(Op::Regex(Pattern {
            regex: regex(source)?,
            source: source.clone(),
        })),
        _ => Err(format!("$regex takes a string, got {}", show(operand))),
    }
}

impl Pattern {
    /// Matches a present value.
    pub fn eval(&self, got: &Value) -> Verdict {
        match text_of(got) {
            Some(text) => verdict(self.regex.is_match(&text), || {
                format!(
                    "{} does not match /{}/",
                    show(got),
                    cut(self.source.clone())
                )
            }),
            None => Verdict::Fail(format!(
                "expected a string matching /{}/, got {}",
                cut(self.source.clone()),
                describe(got)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn matches_strings() {
        hold(json!({"$regex": "^ORD-\\d+$"}), json!("ORD-123"));
        hold(json!({"$regex": "(?i)paid"}), json!("PAID"));
        hold(json!({"$regex": "b"}), json!("abc"));
        hold(json!({"$regex": "^é.$"}), json!("éa"));
        fail(
            json!({"$regex": "^ORD-"}),
            json!("abc"),
            "\"abc\" does not match /^ORD-/",
        );
    }

    #[test]
    fn matches_numbers_on_their_text() {
        hold(json!({"$regex": "^\\d{3}$"}), json!(200));
        hold(json!({"$regex": "^1\\.5$"}), json!(1.5));
        fail(
            json!({"$regex": "^2"}),
            json!(404),
            "404 does not match /^2/",
        );
    }

    #[test]
    fn other_types_fail() {
        fail(
            json!({"$regex": "a"}),
            json!(["a"]),
            "expected a string matching /a/, got array [\"a\"]",
        );
        fail(
            json!({"$regex": "a"}),
            json!(null),
            "expected a string matching /a/, got null",
        );
        fail(
            json!({"$regex": "true"}),
            json!(true),
            "expected a string matching /true/, got boolean true",
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            errors(&json!({"$regex": "("}), Mode::Strict),
            vec!["$regex /(/ does not compile: unclosed group"]
        );
        assert_eq!(
            errors(&json!({"$regex": 5}), Mode::Lenient),
            vec!["$regex takes a string, got 5"]
        );
        assert!(errors(&json!({"$regex": "^${prefix}-"}), Mode::Lenient).is_empty());
        assert_eq!(
            errors(&json!({"$regex": "^${prefix}-"}), Mode::Strict).len(),
            1
        );
    }
}
