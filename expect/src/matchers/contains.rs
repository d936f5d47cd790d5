//! `$contains`: what "containing" means depends on the actual value.
//!
//! - object: the operand (an object) is a recursive subset — every field
//!   it names is present and, recursively, contains what it gives (nested
//!   objects are subsets, nested arrays hold an element for each element
//!   given, anything else is deep-equal);
//! - array: one element is deep-equal to the operand, or contains it when
//!   both are objects;
//! - string: the operand (a string, or a number taken as its JSON text) is
//!   a substring.

use serde_json::Value;

use super::{Verdict, verdict};
use crate::value::{deep_eq, describe, show, text_of};

/// Applies `$contains` with operand `want` to a present value.
pub fn eval(want: &Value, got: &Value) -> Verdict {
    match got {
        Value::Object(_) => {
            if !want.is_object() {
                return Verdict::Fail(format!(
                    "an object contains only objects (a subset of its fields), not {}",
                    describe(want)
                ));
            }
            let mut at = String::new();
            match subset(want, got, &mut at) {
                Ok(()) => Verdict::Hold,
                Err(why) => Verdict::Fail(format!(
                    "expected an object containing {}; {why}",
                    show(want)
                )),
            }
        }
        Value::Array(items) => {
            let found = items.iter().any(|item| element_matches(want, item));
            verdict(found, || {
                let how = if want.is_object() {
                    "contains"
                } else {
                    "equals"
                };
                format!("no element of {} {how} {}", show(got), show(want))
            })
        }
        Value::String(s) => match text_of(want) {
            Some(part) => verdict(s.contains(part.as_ref()), || {
                format!(
                    "{} does not contain {}",
                    show(got),
                    show(&Value::from(part.as_ref()))
                )
            }),
            None => Verdict::Fail(format!(
                "a string contains only text, not {}",
                describe(want)
            )),
        },
        _ => Verdict::Fail(format!(
            "expected an object, array or string containing {}, got {}",
            show(want),
            describe(got)
        )),
    }
}

/// An array element "contains" the operand: subset when both are objects,
/// else deep equality.
fn element_matches(want: &Value, item: &Value) -> bool {
    if want.is_object() && item.is_object() {
        subset(want, item, &mut String::new()).is_ok()
    } else {
        deep_eq(want, item)
    }
}

/// Whether `want` is a recursive subset of `got`; `Err` says where not.
/// `at` is the relative path walked so far (restored on return).
fn subset(want: &Value, got: &Value, at: &mut String) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, wv) in w {
                let len = at.len();
                push_field(at, key);
                let res = match g.get(key) {
                    Some(gv) => subset(wv, gv, at),
                    None => Err(format!("no field {at}")),
                };
                at.truncate(len);
                res?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) => {
            for wv in w {
                if !g
                    .iter()
                    .any(|gv| subset(wv, gv, &mut String::new()).is_ok())
                {
                    return Err(format!("{}: no element matches {}", here(at), show(wv)));
                }
            }
            Ok(())
        }
        _ if deep_eq(want, got) => Ok(()),
        _ => Err(format!(
            "{}: expected {}, got {}",
            here(at),
            show(want),
            show(got)
        )),
    }
}

fn here(at: &str) -> &str {
    if at.is_empty() { "$" } else { at }
}

/// Appends `.key`, or `["key"]` when the key is not a plain name.
fn push_field(at: &mut String, key: &str) {
    let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        at.push('.');
        at.push_str(key);
    } else {
        at.push('[');
        at.push_str(&Value::from(key).to_string());
        at.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn object_subset() {
        let order = json!({"id": 7, "status": "PAID", "total": 12.5,
                           "buyer": {"id": 1, "name": "Ann"}, "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]});
        hold(json!({"$contains": {"status": "PAID"}}), order.clone());
        hold(json!({"$contains": {}}), order.clone());
        hold(
            json!({"$contains": {"id": 7.0, "buyer": {"name": "Ann"}}}),
            order.clone(),
        );
        hold(
            json!({"$contains": {"lines": [{"sku": "B"}]}}),
            order.clone(),
        );
        fail(
            json!({"$contains": {"status": "NEW"}}),
            order.clone(),
            "expected an object containing {\"status\":\"NEW\"}; .status: expected \"NEW\", got \"PAID\"",
        );
        fail(
            json!({"$contains": {"buyer": {"email": "x"}}}),
            order.clone(),
            "expected an object containing {\"buyer\":{\"email\":\"x\"}}; no field .buyer.email",
        );
        fail(
            json!({"$contains": {"lines": [{"sku": "C"}]}}),
            order.clone(),
            "expected an object containing {\"lines\":[{\"sku\":\"C\"}]}; .lines: no element matches {\"sku\":\"C\"}",
        );
        fail(
            json!({"$contains": {"a-b": 1}}),
            json!({"a-b": 2}),
            "expected an object containing {\"a-b\":1}; [\"a-b\"]: expected 1, got 2",
        );
        fail(
            json!({"$contains": "PAID"}),
            order,
            "an object contains only objects (a subset of its fields), not string \"PAID\"",
        );
    }

    #[test]
    fn array_element() {
        hold(json!({"$contains": 2}), json!([1, 2.0, 3]));
        hold(json!({"$contains": "b"}), json!(["a", "b"]));
        hold(
            json!({"$contains": {"id": 3}}),
            json!([{"id": 1}, {"id": 3, "n": "x"}]),
        );
        hold(json!({"$contains": [1, 2]}), json!([[1, 2], 3]));
        fail(
            json!({"$contains": 4}),
            json!([1, 2, 3]),
            "no element of [1,2,3] equals 4",
        );
        fail(
            json!({"$contains": [1, 2]}),
            json!([1, 2, 3]),
            "no element of [1,2,3] equals [1,2]",
        );
        fail(
            json!({"$contains": {"id": 9}}),
            json!([{"id": 1}]),
            "no element of [{\"id\":1}] contains {\"id\":9}",
        );
        fail(
            json!({"$contains": 1}),
            json!([]),
            "no element of [] equals 1",
        );
    }

    #[test]
    fn substring() {
        hold(json!({"$contains": "ORD-"}), json!("id ORD-12"));
        hold(json!({"$contains": ""}), json!("x"));
        hold(json!({"$contains": 42}), json!("order 42 paid"));
        fail(
            json!({"$contains": "x"}),
            json!("abc"),
            "\"abc\" does not contain \"x\"",
        );
        fail(
            json!({"$contains": [1]}),
            json!("abc"),
            "a string contains only text, not array [1]",
        );
    }

    #[test]
    fn other_values() {
        fail(
            json!({"$contains": 1}),
            json!(12),
            "expected an object, array or string containing 1, got number 12",
        );
        fail(
            json!({"$contains": 1}),
            json!(null),
            "expected an object, array or string containing 1, got null",
        );
    }
}
