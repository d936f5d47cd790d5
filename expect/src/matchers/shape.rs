//! `$exists`, `$type` and `$len`: presence, JSON type and size.
//!
//! `$exists` on a list path means "selected something" (the list is not
//! empty). `$type` takes a name — `null boolean number string array
//! object`, or `integer` (a number without a fractional part) — or a list
//! of names, any of which will do. `$len` is the length of a string (in
//! characters), an array or an object; its operand is a length or a
//! matcher object applied to the length (`{"$len": {"$gte": 1}}`).

use serde_json::Value;

use super::{Ctx, Mode, Node, Op, Verdict, compile_inner, eval, is_placeholder, suggest, verdict};
use crate::value::{deep_eq, describe, is_integer, show, type_name};

/// The type names `$type` knows.
pub const TYPE_NAMES: [&str; 7] = [
    "null", "boolean", "number", "integer", "string", "array", "object",
];

/// Compiles `$exists`; the operand must be `true` or `false`.
pub fn compile_exists(operand: &Value, mode: Mode) -> Result<Op, String> {
    match operand {
        Value::Bool(b) => Ok(Op::Exists(*b)),
        _ if mode == Mode::Lenient && is_placeholder(operand) => Ok(Op::Deferred),
        _ => Err(format!(
            "$exists takes true or false, got {}",
            show(operand)
        )),
    }
}

/// Evaluates `$exists` (also on an absent value).
pub fn exists(want: bool, actual: Option<&Value>, ctx: Ctx<'_>) -> Verdict {
    let present = match actual {
        None => false,
        Some(Value::Array(items)) if ctx.list => !items.is_empty(),
        Some(_) => true,
    };
    match (want, present) {
        (true, false) => Verdict::Fail(format!("nothing at {}", ctx.path)),
        (false, true) => Verdict::Fail(format!(
            "expected nothing at {}, got {}",
            ctx.path,
            actual.map(show).unwrap_or_default()
        )),
        _ => Verdict::Hold,
    }
}

/// A set of accepted JSON types (`$type`).
#[derive(Debug)]
pub struct Types(Vec<&'static str>);

/// Compiles `$type`: a type name or a list of them.
pub fn compile_type(operand: &Value, mode: Mode) -> Result<Op, String> {
    let names: Vec<&Value> = match operand {
        Value::Array(list) if !list.is_empty() => list.iter().collect(),
        _ => vec![operand],
    };
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        match name.as_str() {
            Some(_) if mode == Mode::Lenient && is_placeholder(name) => return Ok(Op::Deferred),
            Some(text) => match TYPE_NAMES.iter().find(|t| **t == text) {
                Some(t) => types.push(*t),
                None => {
                    let hint = suggest(text, &TYPE_NAMES)
                        .map(|near| format!(" (did you mean \"{near}\"?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown $type \"{text}\"{hint}; types are {}",
                        TYPE_NAMES.join(" ")
                    ));
                }
            },
            None => {
                return Err(format!(
                    "$type takes a type name or a list of them, got {}",
                    show(operand)
                ));
            }
        }
    }
    Ok(Op::Type(Types(types)))
}

impl Types {
    /// Checks the type of a present value.
    pub fn eval(&self, got: &Value) -> Verdict {
        let actual = type_name(got);
        let ok = self
            .0
            .iter()
            .any(|t| *t == actual || (*t == "integer" && got.as_number().is_some_and(is_integer)));
        verdict(ok, || {
            format!(
                "expected type {}, got {}",
                self.0.join(" or "),
                describe(got)
            )
        })
    }
}

/// Compiles `$len`: a whole number, or a matcher object for the length.
pub fn compile_len(
    operand: &Value,
    mode: Mode,
    errors: &mut Vec<String>,
    depth: usize,
) -> Result<Op, String> {
    let whole = operand
        .as_number()
        .is_some_and(|n| is_integer(n) && n.as_f64().is_some_and(|f| f >= 0.0));
    match operand {
        _ if whole => Ok(Op::Len(Box::new(Node::Literal(operand.clone())))),
        Value::Object(_) if is_matcher_object(operand) => {
            Ok(Op::Len(compile_inner(operand, mode, errors, depth)))
        }
        _ if mode == Mode::Lenient && is_placeholder(operand) => Ok(Op::Deferred),
        _ => Err(format!(
            "$len takes a length (a whole number) or a matcher object such as {{\"$gte\": 1}}, got {}",
            show(operand)
        )),
    }
}

/// An object with at least one `$` key (a mixed one is reported when it is
/// compiled).
fn is_matcher_object(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.keys().any(|k| k.starts_with('$')))
}

/// Evaluates `$len` on a present value.
pub fn len(inner: &Node, got: &Value, ctx: Ctx<'_>) -> Verdict {
    let n = match got {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => {
            return Verdict::Fail(format!(
                "expected a string, array or object to measure, got {}",
                describe(got)
            ));
        }
    };
    let length = Value::from(n);
    match inner {
        Node::Literal(want) => verdict(deep_eq(want, &length), || {
            format!("expected length {}, got length {n}", show(want))
        }),
        Node::All(_) => match eval(inner, Some(&length), ctx.inner()) {
            Verdict::Fail(why) => Verdict::Fail(format!("length {n}: {why}")),
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Ctx, Mode, Verdict, compile, eval};
    use serde_json::{Value, json};

    fn on_list(expected: Value, list: Value) -> Verdict {
        let mut errors = Vec::new();
        let node = compile(&expected, Mode::Strict, &mut errors);
        assert!(errors.is_empty());
        eval(
            &node,
            Some(&list),
            Ctx {
                path: "$.a[*]",
                list: true,
            },
        )
    }

    #[test]
    fn exists() {
        hold(json!({"$exists": true}), json!(null));
        hold(json!({"$exists": true}), json!(0));
        fail(
            json!({"$exists": false}),
            json!(null),
            "expected nothing at $.x, got null",
        );
        fail(
            json!({"$exists": false}),
            json!({"a": 1}),
            "expected nothing at $.x, got {\"a\":1}",
        );
        assert_eq!(run(&json!({"$exists": false}), None), Verdict::Hold);
        assert_eq!(
            run(&json!({"$exists": true}), None),
            Verdict::Fail("nothing at $.x".into())
        );
    }

    #[test]
    fn exists_on_list_paths_means_not_empty() {
        assert_eq!(on_list(json!({"$exists": true}), json!([1])), Verdict::Hold);
        assert_eq!(on_list(json!({"$exists": false}), json!([])), Verdict::Hold);
        assert_eq!(
            on_list(json!({"$exists": true}), json!([])),
            Verdict::Fail("nothing at $.a[*]".into())
        );
        assert_eq!(
            on_list(json!({"$exists": false}), json!([2])),
            Verdict::Fail("expected nothing at $.a[*], got [2]".into())
        );
        // Inside $any the elements are plain values again.
        assert_eq!(
            on_list(json!({"$any": {"$exists": true}}), json!([[]])),
            Verdict::Hold
        );
    }

    #[test]
    fn exists_operand() {
        assert_eq!(
            errors(&json!({"$exists": "yes"}), Mode::Strict),
            vec!["$exists takes true or false, got \"yes\""]
        );
        assert!(errors(&json!({"$exists": "${flag}"}), Mode::Lenient).is_empty());
    }

    #[test]
    fn types() {
        hold(json!({"$type": "null"}), json!(null));
        hold(json!({"$type": "boolean"}), json!(false));
        hold(json!({"$type": "number"}), json!(1.5));
        hold(json!({"$type": "integer"}), json!(3));
        hold(json!({"$type": "integer"}), json!(3.0));
        hold(json!({"$type": "string"}), json!(""));
        hold(json!({"$type": "array"}), json!([]));
        hold(json!({"$type": "object"}), json!({}));
        hold(json!({"$type": ["string", "null"]}), json!(null));
        fail(
            json!({"$type": "integer"}),
            json!(3.5),
            "expected type integer, got number 3.5",
        );
        fail(
            json!({"$type": "string"}),
            json!(5),
            "expected type string, got number 5",
        );
        fail(
            json!({"$type": "object"}),
            json!(null),
            "expected type object, got null",
        );
        fail(
            json!({"$type": ["string", "null"]}),
            json!([1]),
            "expected type string or null, got array [1]",
        );
    }

    #[test]
    fn type_names() {
        assert_eq!(
            errors(&json!({"$type": "strng"}), Mode::Strict),
            vec![
                "unknown $type \"strng\" (did you mean \"string\"?); types are null boolean \
                 number integer string array object"
            ]
        );
        assert_eq!(
            errors(&json!({"$type": "xyz"}), Mode::Strict),
            vec![
                "unknown $type \"xyz\"; types are null boolean number integer string array object"
            ]
        );
        assert_eq!(
            errors(&json!({"$type": 1}), Mode::Strict),
            vec!["$type takes a type name or a list of them, got 1"]
        );
        assert!(errors(&json!({"$type": "${t}"}), Mode::Lenient).is_empty());
    }

    #[test]
    fn lengths() {
        hold(json!({"$len": 3}), json!("héé"));
        hold(json!({"$len": 2}), json!([1, 2]));
        hold(json!({"$len": 1.0}), json!({"a": 1}));
        hold(json!({"$len": 0}), json!(""));
        hold(json!({"$len": {"$gte": 1}}), json!([0]));
        hold(json!({"$len": {"$gt": 1, "$lt": 4}}), json!("abc"));
        hold(json!({"$len": {"$in": [2, 3]}}), json!([1, 2, 3]));
        fail(
            json!({"$len": 3}),
            json!([1, 2]),
            "expected length 3, got length 2",
        );
        fail(
            json!({"$len": {"$gte": 1}}),
            json!([]),
            "length 0: expected >= 1, got 0",
        );
        fail(
            json!({"$len": 1}),
            json!(10),
            "expected a string, array or object to measure, got number 10",
        );
    }

    #[test]
    fn length_operand() {
        let msg = |got: &str| {
            format!(
                "$len takes a length (a whole number) or a matcher object such as {{\"$gte\": 1}}, got {got}"
            )
        };
        assert_eq!(errors(&json!({"$len": -1}), Mode::Strict), vec![msg("-1")]);
        assert_eq!(
            errors(&json!({"$len": 1.5}), Mode::Strict),
            vec![msg("1.5")]
        );
        assert_eq!(
            errors(&json!({"$len": "3"}), Mode::Strict),
            vec![msg("\"3\"")]
        );
        assert_eq!(
            errors(&json!({"$len": {"a": 1}}), Mode::Strict),
            vec![msg("{\"a\":1}")]
        );
        assert_eq!(
            errors(&json!({"$len": {"$gte": "x", "$foo": 1}}), Mode::Strict).len(),
            1,
            "$gte on a string is fine, $foo is not"
        );
        assert!(errors(&json!({"$len": "${n}"}), Mode::Lenient).is_empty());
    }
}
