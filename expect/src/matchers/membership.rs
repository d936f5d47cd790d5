//! `$in` and `$nin`: the value is (is not) deep-equal to one of a list of
//! candidates (numbers by value).

use serde_json::Value;

use super::{Mode, Op, Verdict, is_placeholder, verdict};
use crate::value::{deep_eq, show};

/// A compiled `$in` (`inside: true`) or `$nin`.
#[derive(Debug)]
pub struct Member {
    inside: bool,
    candidates: Value,
}

/// Compiles `$in`/`$nin`; the operand must be a list.
pub fn compile(name: &str, operand: &Value, mode: Mode) -> Result<Op, String> {
    match operand {
        Value::Array(_) => Ok(Op::Member(Member {
            inside: name == "$in",
            candidates: operand.clone(),
        })),
        _ if mode == Mode::Lenient && is_placeholder(operand) => Ok(Op::Deferred),
        _ => Err(format!(
            "{name} takes a list of candidates, got {}",
            show(operand)
        )),
    }
}

impl Member {
    /// Applies the membership test to a present value.
    pub fn eval(&self, got: &Value) -> Verdict {
        let list = self.candidates.as_array().map_or(&[][..], Vec::as_slice);
        let found = list.iter().any(|c| deep_eq(c, got));
        if self.inside {
            verdict(found, || {
                format!(
                    "expected one of {}, got {}",
                    show(&self.candidates),
                    show(got)
                )
            })
        } else {
            verdict(!found, || {
                format!(
                    "expected none of {}, got {}",
                    show(&self.candidates),
                    show(got)
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    #[test]
    fn in_list() {
        hold(json!({"$in": ["PAID", "SHIPPED"]}), json!("PAID"));
        hold(json!({"$in": [1, 2]}), json!(2.0));
        hold(json!({"$in": [{"a": [1]}]}), json!({"a": [1.0]}));
        fail(
            json!({"$in": ["PAID", "SHIPPED"]}),
            json!("NEW"),
            "expected one of [\"PAID\",\"SHIPPED\"], got \"NEW\"",
        );
        fail(json!({"$in": []}), json!(1), "expected one of [], got 1");
    }

    #[test]
    fn not_in_list() {
        hold(json!({"$nin": ["CANCELLED"]}), json!("PAID"));
        hold(json!({"$nin": []}), json!(null));
        fail(
            json!({"$nin": [1, 2]}),
            json!(1.0),
            "expected none of [1,2], got 1.0",
        );
    }

    #[test]
    fn operand_must_be_a_list() {
        assert_eq!(
            errors(&json!({"$in": "PAID"}), Mode::Strict),
            vec!["$in takes a list of candidates, got \"PAID\""]
        );
        assert_eq!(
            errors(&json!({"$nin": {"a": 1}}), Mode::Lenient),
            vec!["$nin takes a list of candidates, got {\"a\":1}"]
        );
        assert!(errors(&json!({"$in": "${states}"}), Mode::Lenient).is_empty());
        assert_eq!(errors(&json!({"$in": "${states}"}), Mode::Strict).len(), 1);
    }
}
