//! `$regex`: the value (a string, or a number taken as its JSON text)
//! matches a regular expression (`regex` crate syntax, unanchored; use
//! `^…$` to anchor, `(?i)` to ignore case). A pattern is compiled with its
//! expectation: once at load when it has no placeholder.

use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use super::{Mode, Op, Verdict, is_placeholder, verdict};
use crate::value::{cut, describe, show, text_of};

/// A compiled `$regex`.
#[derive(Debug)]
pub struct Pattern {
    regex: Arc<Regex>,
    source: String,
}

/// The compiled regex for `source`, or why it does not compile.
pub fn regex(source: &str) -> Result<Arc<Regex>, String> {
    shared(source).map_err(|e| format!("$regex /{source}/ does not compile: {}", short(&e)))
}

/// How many distinct patterns [`shared`] keeps.
const SHARED_MAX: usize = 4096;

/// `Regex::new(source)`, shared with every earlier call for the same
/// pattern: a compiled `Regex` holds about 7 KB of programs and caches,
/// and generated or copied cases repeat the same few patterns thousands of
/// times (10,000 cases with one `$regex` each: 242 MB → 168 MB peak for
/// `atf check`). All users share one `Regex` (its program and its cache
/// pool), which the regex crate makes safe to use from many threads. At most [`SHARED_MAX`]
/// patterns are kept, so patterns rendered from placeholders at run time
/// cannot grow it without bound; beyond that each is compiled on its own.
/// (The `regex` crate has no such table; `regex-cache`'s LRU would be a
/// dependency for these few lines.)
pub fn shared(source: &str) -> Result<Arc<Regex>, regex::Error> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static TABLE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    if let Some(r) = table
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(source)
    {
        return Ok(r.clone());
    }
    let r = Arc::new(Regex::new(source)?);
    let mut t = table.lock().unwrap_or_else(PoisonError::into_inner);
    if t.len() < SHARED_MAX {
        t.insert(source.to_owned(), r.clone());
    }
    Ok(r)
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
    use super::shared;
    use serde_json::json;
    use std::sync::Arc;

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

    #[test]
    fn one_pattern_is_compiled_once_and_shared() {
        let a = shared("^ORD-[0-9]+$").expect("compiles");
        let b = shared("^ORD-[0-9]+$").expect("compiles");
        assert!(Arc::ptr_eq(&a, &b), "the same pattern gives the same Regex");
        assert!(b.is_match("ORD-17") && !b.is_match("ord-17"));
        let c = shared("^ORD-[0-9]*$").expect("compiles");
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(shared("(unclosed").is_err());
    }
}
