//! Matchers: an expectation value is compiled into a [`Node`] — a literal
//! (deep equality) or a matcher object whose keys all begin with `$`, each
//! an [`Op`] — and then evaluated against what its path selected.
//!
//! Evaluation is three-valued: an expectation holds, fails with a message,
//! or fails because its plain path selected nothing ([`Verdict::Missing`]).
//! Only `$exists` speaks about absence, so every other operator is
//! `Missing` on an absent value, and `$not` of `Missing` stays `Missing`
//! (`{"$not": {"$exists": true}}` holds on an absent value, `{"$not": 5}`
//! does not). Operators of one object are a conjunction: it fails when one
//! fails, is `Missing` when none fails but one is `Missing`, else holds.
//!
//! Compiling checks the form. In [`Mode::Lenient`] (load time) a string
//! containing `${` is accepted where another type is needed, since
//! placeholders are resolved only before the step runs.

mod compare;
mod contains;
mod dates;
mod logic;
mod markup;
mod membership;
mod regex;
pub use regex::shared as shared_regex;
mod shape;

use serde_json::Value;

use super::value::show;

/// Every operator, in the order the spec lists them.
pub const OPERATORS: [&str; 20] = [
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$contains",
    "$regex",
    "$exists",
    "$type",
    "$len",
    "$not",
    "$any",
    "$before",
    "$after",
    "$within",
    "$date_format",
    "$xpath",
];

/// How strictly [`compile`] checks operand types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Values are final (step run time).
    Strict,
    /// Values may still hold `${...}` placeholders (load time).
    Lenient,
}

/// The outcome of one expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It holds.
    Hold,
    /// It does not hold; why, in words.
    Fail(String),
    /// A plain path selected nothing, and the expectation needs a value.
    Missing,
}

/// Where an expectation is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'p> {
    /// The path as written, for messages.
    pub path: &'p str,
    /// The value is the list a list path selected (so `$exists` means "the
    /// list is not empty").
    pub list: bool,
}

impl Ctx<'_> {
    /// The context for values inside the selected one (`$any`, `$len`).
    fn inner(self) -> Self {
        Ctx {
            list: false,
            ..self
        }
    }
}

/// A compiled expectation value.
#[derive(Debug)]
pub enum Node {
    /// Deep equality with this value.
    Literal(Value),
    /// A matcher object: all of these must hold.
    All(Vec<Op>),
}

/// One compiled operator.
#[derive(Debug)]
pub enum Op {
    /// `$eq $ne $gt $gte $lt $lte`.
    Compare(compare::Compare),
    /// `$in $nin`.
    Member(membership::Member),
    /// `$contains`.
    Contains(Value),
    /// `$regex`.
    Regex(regex::Pattern),
    /// `$exists`.
    Exists(bool),
    /// `$type`.
    Type(shape::Types),
    /// `$len`.
    Len(Box<Node>),
    /// `$not`, with its operand as written.
    Not(Box<Node>, Value),
    /// `$any`, with its operand as written.
    Any(Box<Node>, Value),
    /// `$before $after $within`, read with `$date_format`.
    Dates(Box<dates::Dates>),
    /// `$xpath`.
    Xpath(markup::Queries),
    /// An operand still holding a placeholder (lenient mode only): not
    /// evaluated.
    Deferred,
}

/// Deepest nesting of matcher objects (`$not`, `$any`, `$len`) accepted.
const MAX_DEPTH: usize = 64;

/// Whether `v` is a string still holding a `${...}` placeholder.
fn is_placeholder(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains("${"))
}

/// Compiles an expectation value; every problem found goes to `errors`.
pub fn compile(v: &Value, mode: Mode, errors: &mut Vec<String>) -> Node {
    compile_at(v, mode, errors, 0)
}

fn compile_at(v: &Value, mode: Mode, errors: &mut Vec<String>, depth: usize) -> Node {
    let Some(obj) = v.as_object().filter(|o| !o.is_empty()) else {
        return Node::Literal(v.clone());
    };
    let ops: Vec<&String> = obj.keys().filter(|k| k.starts_with('$')).collect();
    if ops.is_empty() {
        return Node::Literal(v.clone());
    }
    if ops.len() != obj.len() {
        let plain: Vec<&str> = obj
            .keys()
            .filter(|k| !k.starts_with('$'))
            .map(String::as_str)
            .collect();
        let ops: Vec<&str> = ops.iter().map(|k| k.as_str()).collect();
        errors.push(format!(
            "an object mixing matchers ({}) with plain keys ({}): a matcher object has only $ keys; \
             for a literal object with $ keys use {{\"$eq\": ...}}",
            ops.join(", "),
            plain.join(", ")
        ));
        return Node::All(Vec::new());
    }
    if depth >= MAX_DEPTH {
        errors.push(format!("matchers nested more than {MAX_DEPTH} deep"));
        return Node::All(Vec::new());
    }
    let mut compiled = Vec::with_capacity(obj.len());
    for (name, operand) in obj {
        if dates::NAMES.contains(&name.as_str()) {
            continue;
        }
        match compile_op(name, operand, mode, errors, depth) {
            Ok(op) => compiled.push(op),
            Err(e) => errors.push(e),
        }
    }
    // The date operators share `$date_format`: compiled as one.
    let date_ops = obj
        .iter()
        .filter(|(k, _)| dates::NAMES.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v));
    match dates::compile(date_ops, mode) {
        Ok(Some(op)) => compiled.push(op),
        Ok(None) => {}
        Err(e) => errors.push(e),
    }
    Node::All(compiled)
}

/// Compiles an operand that is itself a literal or a matcher object (`$not`,
/// `$any`, `$len`).
fn compile_inner(v: &Value, mode: Mode, errors: &mut Vec<String>, depth: usize) -> Box<Node> {
    Box::new(compile_at(v, mode, errors, depth + 1))
}

fn compile_op(
    name: &str,
    operand: &Value,
    mode: Mode,
    errors: &mut Vec<String>,
    depth: usize,
) -> Result<Op, String> {
    match name {
        "$eq" | "$ne" | "$gt" | "$gte" | "$lt" | "$lte" => compare::compile(name, operand),
        "$in" | "$nin" => membership::compile(name, operand, mode),
        "$contains" => Ok(Op::Contains(operand.clone())),
        "$regex" => regex::compile(operand, mode),
        "$exists" => shape::compile_exists(operand, mode),
        "$type" => shape::compile_type(operand, mode),
        "$len" => shape::compile_len(operand, mode, errors, depth),
        "$not" => Ok(Op::Not(
            compile_inner(operand, mode, errors, depth),
            operand.clone(),
        )),
        "$xpath" => markup::compile(operand, mode, errors, depth),
        "$any" => Ok(Op::Any(
            compile_inner(operand, mode, errors, depth),
            operand.clone(),
        )),
        _ => Err(unknown_operator(name)),
    }
}

/// "unknown matcher $regx (did you mean $regex?)".
fn unknown_operator(name: &str) -> String {
    match suggest(name, &OPERATORS) {
        Some(near) => format!("unknown matcher {name} (did you mean {near}?)"),
        None => format!("unknown matcher {name} (known: {})", OPERATORS.join(" ")),
    }
}

/// The candidate nearest to `word`, if it is near enough.
pub fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Evaluates a compiled expectation against what its path selected
/// (`None`: a plain path found nothing).
pub fn eval(node: &Node, actual: Option<&Value>, ctx: Ctx<'_>) -> Verdict {
    match node {
        Node::Literal(want) => match actual {
            None => Verdict::Missing,
            Some(got) if super::value::deep_eq(want, got) => Verdict::Hold,
            Some(got) => Verdict::Fail(format!("expected {}, got {}", show(want), show(got))),
        },
        Node::All(ops) => {
            let mut fails: Vec<String> = Vec::new();
            let mut missing = false;
            for op in ops {
                match eval_op(op, actual, ctx) {
                    Verdict::Hold => {}
                    Verdict::Fail(m) => fails.push(m),
                    Verdict::Missing => missing = true,
                }
            }
            if !fails.is_empty() {
                Verdict::Fail(fails.join("; "))
            } else if missing {
                Verdict::Missing
            } else {
                Verdict::Hold
            }
        }
    }
}

fn eval_op(op: &Op, actual: Option<&Value>, ctx: Ctx<'_>) -> Verdict {
    match (op, actual) {
        (Op::Deferred, _) => Verdict::Hold,
        (Op::Exists(want), _) => shape::exists(*want, actual, ctx),
        (Op::Not(inner, written), _) => logic::not(inner, written, actual, ctx),
        (_, None) => Verdict::Missing,
        (Op::Compare(c), Some(got)) => c.eval(got),
        (Op::Member(m), Some(got)) => m.eval(got),
        (Op::Contains(want), Some(got)) => contains::eval(want, got),
        (Op::Regex(p), Some(got)) => p.eval(got),
        (Op::Type(t), Some(got)) => t.eval(got),
        (Op::Len(inner), Some(got)) => shape::len(inner, got, ctx),
        (Op::Any(inner, written), Some(got)) => logic::any(inner, written, got, ctx),
        (Op::Dates(d), Some(got)) => d.eval(got),
        (Op::Xpath(q), Some(got)) => q.eval(got, ctx),
    }
}

/// Holds/fails from a bool.
fn verdict(holds: bool, why: impl FnOnce() -> String) -> Verdict {
    if holds {
        Verdict::Hold
    } else {
        Verdict::Fail(why())
    }
}

/// Test helpers shared by the matcher files.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Compiles `expected` strictly and evaluates it on `actual` at a plain
    /// path `$.x`.
    pub fn run(expected: &Value, actual: Option<&Value>) -> Verdict {
        let mut errors = Vec::new();
        let node = compile(expected, Mode::Strict, &mut errors);
        assert_eq!(errors, Vec::<String>::new(), "{expected}");
        eval(
            &node,
            actual,
            Ctx {
                path: "$.x",
                list: false,
            },
        )
    }

    /// The compile errors of `expected`.
    pub fn errors(expected: &Value, mode: Mode) -> Vec<String> {
        let mut errors = Vec::new();
        compile(expected, mode, &mut errors);
        errors
    }

    pub fn hold(expected: Value, actual: Value) {
        assert_eq!(
            run(&expected, Some(&actual)),
            Verdict::Hold,
            "{expected} on {actual}"
        );
    }

    pub fn fail(expected: Value, actual: Value, message: &str) {
        assert_eq!(
            run(&expected, Some(&actual)),
            Verdict::Fail(message.to_owned()),
            "{expected} on {actual}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn literals() {
        hold(json!(200), json!(200.0));
        hold(json!({"a": [1, 2]}), json!({"a": [1.0, 2]}));
        hold(json!({}), json!({}));
        fail(json!(200), json!(500), "expected 200, got 500");
        fail(json!("abc"), json!("abd"), "expected \"abc\", got \"abd\"");
        fail(json!({}), json!({"a": 1}), "expected {}, got {\"a\":1}");
        assert_eq!(run(&json!(null), None), Verdict::Missing);
    }

    #[test]
    fn several_operators_all_must_hold() {
        hold(json!({"$gte": 1, "$lt": 10, "$type": "integer"}), json!(5));
        fail(
            json!({"$gte": 1, "$lt": 10}),
            json!(12),
            "expected < 10, got 12",
        );
        fail(
            json!({"$gt": 20, "$lt": 10}),
            json!(15),
            "expected > 20, got 15; expected < 10, got 15",
        );
    }

    #[test]
    fn absent_values() {
        assert_eq!(run(&json!({"$exists": false}), None), Verdict::Hold);
        assert_eq!(
            run(&json!({"$exists": true}), None),
            Verdict::Fail("nothing at $.x".into())
        );
        for e in [
            json!({"$ne": 1}),
            json!({"$nin": [1]}),
            json!({"$type": "null"}),
            json!({"$not": 5}),
            json!({"$not": {"$eq": 5}}),
            json!({"$exists": false, "$eq": null}),
        ] {
            assert_eq!(run(&e, None), Verdict::Missing, "{e}");
        }
        assert_eq!(
            run(&json!({"$not": {"$exists": true}}), None),
            Verdict::Hold
        );
        assert_eq!(
            run(&json!({"$exists": true, "$eq": 1}), None),
            Verdict::Fail("nothing at $.x".into())
        );
    }

    #[test]
    fn unknown_operators() {
        assert_eq!(
            errors(&json!({"$regx": "a"}), Mode::Strict),
            vec!["unknown matcher $regx (did you mean $regex?)"]
        );
        assert_eq!(
            errors(&json!({"$length": 1}), Mode::Lenient),
            vec!["unknown matcher $length (did you mean $len?)"]
        );
        assert_eq!(
            errors(&json!({"$EQ": 1}), Mode::Strict),
            vec!["unknown matcher $EQ (did you mean $eq?)"]
        );
        assert_eq!(
            errors(&json!({"$foo": 1}), Mode::Strict),
            vec![
                "unknown matcher $foo (known: $eq $ne $gt $gte $lt $lte $in $nin $contains \
                 $regex $exists $type $len $not $any $before $after $within $date_format $xpath)"
            ]
        );
    }

    #[test]
    fn mixed_objects_are_errors() {
        assert_eq!(
            errors(&json!({"$gt": 1, "a": 2}), Mode::Lenient),
            vec![
                "an object mixing matchers ($gt) with plain keys (a): a matcher object has only \
                 $ keys; for a literal object with $ keys use {\"$eq\": ...}"
            ]
        );
        assert_eq!(
            errors(&json!({"$not": {"$gt": 1, "b": 1}}), Mode::Strict).len(),
            1
        );
        // Nested inside a literal, it is just data.
        assert_eq!(
            errors(&json!({"a": {"$gt": 1, "b": 1}}), Mode::Strict).len(),
            0
        );
        hold(
            json!({"$eq": {"$gt": 1, "b": 1}}),
            json!({"b": 1, "$gt": 1}),
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let e = errors(
            &json!({"$in": 1, "$regex": "(", "$type": "strng", "$nope": 1}),
            Mode::Strict,
        );
        assert_eq!(e.len(), 4, "{e:?}");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut v = json!(1);
        for _ in 0..100 {
            v = json!({ "$not": v });
        }
        assert_eq!(
            errors(&v, Mode::Strict),
            vec![format!("matchers nested more than {MAX_DEPTH} deep")]
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("$exist", &OPERATORS), Some("$exists"));
        assert_eq!(suggest("$contain", &OPERATORS), Some("$contains"));
        assert_eq!(suggest("$zzzzzz", &OPERATORS), None);
    }
}
