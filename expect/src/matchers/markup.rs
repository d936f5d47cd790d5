//! `$xpath`: the value is an XML or HTML text, and each XPath of the
//! operand object selects what its expected value (a literal or a matcher
//! object) checks: `{"$xpath": {"/order/status": "PAID", "count(//item)":
//! {"$gte": 1}}}`. An XPath that selects no node counts as nothing there,
//! so only `{"$exists": false}` holds on it.

use serde_json::Value;

use super::{Ctx, Mode, Node, Op, Verdict, compile_inner, eval};
use crate::value::{describe, show};
use crate::xpath::XPath;

/// A compiled `$xpath`.
#[derive(Debug)]
pub struct Queries(Vec<(XPath, Node)>);

/// Compiles `$xpath`: an object of XPath → expected value.
pub fn compile(
    operand: &Value,
    mode: Mode,
    errors: &mut Vec<String>,
    depth: usize,
) -> Result<Op, String> {
    let Value::Object(queries) = operand else {
        return Err(format!(
            "$xpath takes an object of XPath → expected value, got {}",
            show(operand)
        ));
    };
    if queries.is_empty() {
        return Err("$xpath needs at least one XPath".into());
    }
    let mut out = Vec::with_capacity(queries.len());
    for (source, expected) in queries {
        if mode == Mode::Lenient && source.contains("${") {
            return Ok(Op::Deferred);
        }
        let xpath = XPath::compile(source).map_err(|e| format!("$xpath: {e}"))?;
        out.push((xpath, *compile_inner(expected, mode, errors, depth)));
    }
    Ok(Op::Xpath(Queries(out)))
}

impl Queries {
    /// Checks a present value.
    pub fn eval(&self, got: &Value, ctx: Ctx<'_>) -> Verdict {
        let Value::String(text) = got else {
            return Verdict::Fail(format!(
                "$xpath reads an XML or HTML text, got {}",
                describe(got)
            ));
        };
        let mut fails = Vec::new();
        for (xpath, node) in &self.0 {
            let selected = match xpath.eval(text) {
                Ok(v) => v,
                Err(e) => {
                    fails.push(e);
                    continue;
                }
            };
            let inner = Ctx {
                path: xpath.as_str(),
                list: false,
            };
            match eval(node, selected.as_ref(), inner) {
                Verdict::Hold => {}
                Verdict::Fail(m) => fails.push(format!("xpath `{}`: {m}", xpath.as_str())),
                Verdict::Missing => fails.push(format!(
                    "xpath `{}` selects nothing in {}",
                    xpath.as_str(),
                    ctx.path
                )),
            }
        }
        if fails.is_empty() {
            Verdict::Hold
        } else {
            Verdict::Fail(fails.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::testing::*;
    use serde_json::json;

    const XML: &str = "<order id=\"42\"><status>PAID</status><item>1</item><item>2</item></order>";

    #[test]
    fn each_xpath_checks_what_it_selects() {
        hold(
            json!({"$xpath": {"/order/status": "PAID", "count(//item)": {"$gte": 2}, "/order/@id": {"$regex": "^4"}}}),
            json!(XML),
        );
        hold(
            json!({"$xpath": {"//nothing": {"$exists": false}}}),
            json!(XML),
        );
        fail(
            json!({"$xpath": {"/order/status": "NEW"}}),
            json!(XML),
            "xpath `/order/status`: expected \"NEW\", got \"PAID\"",
        );
        fail(
            json!({"$xpath": {"//nothing": "x"}}),
            json!(XML),
            "xpath `//nothing` selects nothing in $.x",
        );
        fail(
            json!({"$xpath": {"/a": 1}}),
            json!({"a": 1}),
            "$xpath reads an XML or HTML text, got object {\"a\":1}",
        );
    }

    #[test]
    fn bad_operands_do_not_compile() {
        assert_eq!(
            errors(&json!({"$xpath": "/a"}), Mode::Strict),
            ["$xpath takes an object of XPath → expected value, got \"/a\""]
        );
        let e = errors(&json!({"$xpath": {"//a[": 1}}), Mode::Strict);
        assert!(
            e[0].starts_with("$xpath: xpath `//a[` does not parse"),
            "{e:?}"
        );
        assert!(errors(&json!({"$xpath": {"//a[@id='${id}']": 1}}), Mode::Lenient).is_empty());
    }
}
