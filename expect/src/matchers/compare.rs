//! `$eq $ne $gt $gte $lt $lte`. `$eq`/`$ne` are deep equality (numbers by
//! value); the order operators compare numbers numerically and strings
//! lexically (by code point), and fail when the types differ.

use std::cmp::Ordering;

use serde_json::Value;

use super::{Op, Verdict, verdict};
use crate::value::{deep_eq, describe, num_cmp, show, type_name};

/// Which comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }

    fn accepts(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord.is_eq(),
            Cmp::Ne => ord.is_ne(),
            Cmp::Gt => ord.is_gt(),
            Cmp::Gte => ord.is_ge(),
            Cmp::Lt => ord.is_lt(),
            Cmp::Lte => ord.is_le(),
        }
    }
}

/// A compiled comparison.
#[derive(Debug)]
pub struct Compare {
    cmp: Cmp,
    operand: Value,
}

/// Compiles `$eq` … `$lte`; the order operators take a number or a string.
pub fn compile(name: &str, operand: &Value) -> Result<Op, String> {
    let cmp = match name {
        "$eq" => Cmp::Eq,
        "$ne" => Cmp::Ne,
        "$gt" => Cmp::Gt,
        "$gte" => Cmp::Gte,
        "$lt" => Cmp::Lt,
        _ => Cmp::Lte,
    };
    let ordered = !matches!(cmp, Cmp::Eq | Cmp::Ne);
    if ordered && !matches!(operand, Value::Number(_) | Value::String(_)) {
        return Err(format!(
            "{name} takes a number or a string, got {}",
            show(operand)
        ));
    }
    Ok(Op::Compare(Compare {
        cmp,
        operand: operand.clone(),
    }))
}

impl Compare {
    /// Applies the comparison to a present value.
    pub fn eval(&self, got: &Value) -> Verdict {
        let want = &self.operand;
        match self.cmp {
            Cmp::Eq => verdict(deep_eq(got, want), || {
                format!("expected {}, got {}", show(want), show(got))
            }),
            Cmp::Ne => verdict(!deep_eq(got, want), || {
                format!("expected anything but {}, got {}", show(want), show(got))
            }),
            cmp => {
                let ord = match (got, want) {
                    (Value::Number(g), Value::Number(w)) => num_cmp(g, w),
                    (Value::String(g), Value::String(w)) => g.as_str().cmp(w.as_str()),
                    _ => {
                        return Verdict::Fail(format!(
                            "expected a {} {} {}, got {}",
                            type_name(want),
                            cmp.symbol(),
                            show(want),
                            describe(got)
                        ));
                    }
                };
                verdict(cmp.accepts(ord), || {
                    format!(
                        "expected {} {}, got {}",
                        cmp.symbol(),
                        show(want),
                        show(got)
                    )
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn eq_and_ne() {
        hold(json!({"$eq": 1}), json!(1.0));
        hold(json!({"$eq": [1, {"a": 2}]}), json!([1.0, {"a": 2.0}]));
        fail(json!({"$eq": 1}), json!(2), "expected 1, got 2");
        fail(json!({"$eq": 1}), json!("1"), "expected 1, got \"1\"");
        hold(json!({"$ne": 1}), json!(2));
        hold(json!({"$ne": 1}), json!("1"));
        fail(
            json!({"$ne": 1}),
            json!(1.0),
            "expected anything but 1, got 1.0",
        );
    }

    #[test]
    fn numbers() {
        hold(json!({"$gt": 1}), json!(2));
        hold(json!({"$gt": 1}), json!(1.5));
        fail(json!({"$gt": 2}), json!(2), "expected > 2, got 2");
        hold(json!({"$gte": 2}), json!(2.0));
        fail(json!({"$gte": 2}), json!(1.99), "expected >= 2, got 1.99");
        hold(json!({"$lt": 10}), json!(9));
        fail(json!({"$lt": 10}), json!(10.0), "expected < 10, got 10.0");
        hold(json!({"$lte": 10}), json!(10));
        fail(json!({"$lte": -1}), json!(0), "expected <= -1, got 0");
        hold(
            json!({"$gt": 18446744073709551614u64}),
            json!(18446744073709551615u64),
        );
    }

    #[test]
    fn strings() {
        hold(json!({"$gt": "2024-01-01"}), json!("2024-06-30"));
        fail(
            json!({"$lt": "abc"}),
            json!("abd"),
            "expected < \"abc\", got \"abd\"",
        );
        hold(json!({"$lte": "b"}), json!("b"));
        hold(json!({"$gte": "B"}), json!("a"));
    }

    #[test]
    fn mixed_types_fail() {
        fail(
            json!({"$gt": 5}),
            json!("abc"),
            "expected a number > 5, got string \"abc\"",
        );
        fail(
            json!({"$lte": "m"}),
            json!(3),
            "expected a string <= \"m\", got number 3",
        );
        fail(
            json!({"$gte": 0}),
            json!(null),
            "expected a number >= 0, got null",
        );
    }

    #[test]
    fn operand_types() {
        assert_eq!(
            errors(&json!({"$gt": [1]}), Mode::Strict),
            vec!["$gt takes a number or a string, got [1]"]
        );
        assert_eq!(
            errors(&json!({"$lte": null}), Mode::Lenient),
            vec!["$lte takes a number or a string, got null"]
        );
        assert!(errors(&json!({"$gt": "${min}"}), Mode::Lenient).is_empty());
        assert!(errors(&json!({"$eq": {"any": ["thing"]}}), Mode::Strict).is_empty());
    }
}
