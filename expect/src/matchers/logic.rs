//! `$not` and `$any`. `$not` negates a matcher object or a literal (but an
//! absent value stays a failure unless the negated matcher is about
//! `$exists`); `$any` holds when some element of an array satisfies a
//! matcher object or equals a literal.

use serde_json::Value;

use super::{Ctx, Node, Verdict, eval};
use crate::value::{describe, show};

/// Evaluates `$not` (also on an absent value).
pub fn not(inner: &Node, written: &Value, actual: Option<&Value>, ctx: Ctx<'_>) -> Verdict {
    match eval(inner, actual, ctx) {
        Verdict::Hold => Verdict::Fail(match actual {
            Some(got) => format!("expected not {}, got {}", show(written), show(got)),
            None => format!(
                "expected not {}, but nothing at {}",
                show(written),
                ctx.path
            ),
        }),
        Verdict::Fail(_) => Verdict::Hold,
        Verdict::Missing => Verdict::Missing,
    }
}

/// Evaluates `$any` on a present value.
pub fn any(inner: &Node, written: &Value, got: &Value, ctx: Ctx<'_>) -> Verdict {
    let Value::Array(items) = got else {
        return Verdict::Fail(format!(
            "expected an array with an element matching {}, got {}",
            show(written),
            describe(got)
        ));
    };
    let ctx = ctx.inner();
    if items
        .iter()
        .any(|item| eval(inner, Some(item), ctx) == Verdict::Hold)
    {
        Verdict::Hold
    } else {
        Verdict::Fail(format!(
            "no element of {} matches {}",
            show(got),
            show(written)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn not_negates() {
        hold(json!({"$not": {"$regex": "^ERR"}}), json!("OK"));
        hold(json!({"$not": 5}), json!(6));
        hold(json!({"$not": {"$gt": 1, "$lt": 3}}), json!(5));
        hold(json!({"$not": {"$not": 1}}), json!(1.0));
        fail(
            json!({"$not": {"$regex": "^ERR"}}),
            json!("ERR-1"),
            "expected not {\"$regex\":\"^ERR\"}, got \"ERR-1\"",
        );
        fail(json!({"$not": 5}), json!(5.0), "expected not 5, got 5.0");
        fail(
            json!({"$not": {"$type": "string"}, "$ne": 1}),
            json!("a"),
            "expected not {\"$type\":\"string\"}, got \"a\"",
        );
    }

    #[test]
    fn not_on_absent() {
        assert_eq!(
            run(&json!({"$not": {"$exists": true}}), None),
            super::Verdict::Hold
        );
        assert_eq!(
            run(&json!({"$not": {"$exists": false}}), None),
            super::Verdict::Fail("expected not {\"$exists\":false}, but nothing at $.x".into())
        );
        assert_eq!(
            run(&json!({"$not": {"$gt": 1}}), None),
            super::Verdict::Missing
        );
    }

    #[test]
    fn any_element() {
        hold(json!({"$any": {"$gt": 2}}), json!([1, 3]));
        hold(json!({"$any": 2}), json!([1, 2.0]));
        hold(
            json!({"$any": {"$contains": {"id": 3}}}),
            json!([{"id": 3, "n": 1}]),
        );
        hold(
            json!({"$any": {"$regex": "^b", "$len": 3}}),
            json!(["abc", "bcd"]),
        );
        fail(
            json!({"$any": {"$gt": 5}}),
            json!([1, 3]),
            "no element of [1,3] matches {\"$gt\":5}",
        );
        fail(json!({"$any": 1}), json!([]), "no element of [] matches 1");
        fail(
            json!({"$any": 1}),
            json!({"a": 1}),
            "expected an array with an element matching 1, got object {\"a\":1}",
        );
    }

    #[test]
    fn inner_forms_are_checked() {
        assert_eq!(
            errors(&json!({"$any": {"$gt": [1]}}), Mode::Strict),
            vec!["$gt takes a number or a string, got [1]"]
        );
        assert_eq!(
            errors(&json!({"$not": {"$in": 1}}), Mode::Lenient),
            vec!["$in takes a list of candidates, got 1"]
        );
        assert!(errors(&json!({"$not": "${x}"}), Mode::Strict).is_empty());
    }
}
