//! XPath 1.0 on XML and HTML texts: the `$xpath` matcher and `save`'s
//! `xpath` extraction.
//!
//! A text that parses as XML is taken as XML; any other text is parsed as
//! HTML (by the HTML5 rules browsers use: `scraper`/html5ever), and that
//! tree is copied into an XML document so that one XPath engine
//! (`sxd-xpath`) serves both, as libxml2 does for Hurl. A node set becomes
//! the text of its one node, or the list of its nodes' texts; a number, a
//! string or a boolean stays what it is; an empty node set is nothing.
//!
//! `sxd_xpath::XPath` is neither `Send` nor `Sync`, so a compiled plan
//! cannot hold one: an expression is checked when the case loads and built
//! again, from its checked text, each time it is evaluated (a few
//! microseconds, next to the parse of the document it runs on).

use serde_json::Value;
use sxd_document::Package;
use sxd_document::dom::{Document, Element};
use sxd_xpath::{Context, Factory};

/// A checked XPath expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XPath {
    source: String,
}

impl XPath {
    /// Checks `source`; `Err` says what is wrong with it.
    pub fn compile(source: &str) -> Result<XPath, String> {
        build(source)?;
        Ok(XPath {
            source: source.to_string(),
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Evaluates it on `text` (XML or HTML): `Ok(None)` when it selects no node.
    pub fn eval(&self, text: &str) -> Result<Option<Value>, String> {
        let package = parse(text);
        let doc = package.as_document();
        let xpath = build(&self.source)?;
        let context = Context::new();
        let value = xpath
            .evaluate(&context, doc.root())
            .map_err(|e| format!("xpath `{}`: {e}", self.source))?;
        Ok(match value {
            sxd_xpath::Value::Boolean(b) => Some(Value::Bool(b)),
            sxd_xpath::Value::Number(n) => Some(number(n)),
            sxd_xpath::Value::String(s) => Some(Value::String(s)),
            sxd_xpath::Value::Nodeset(nodes) => {
                let mut texts: Vec<Value> = nodes
                    .document_order()
                    .iter()
                    .map(|n| Value::String(n.string_value()))
                    .collect();
                match texts.len() {
                    0 => None,
                    1 => texts.pop(),
                    _ => Some(Value::Array(texts)),
                }
            }
        })
    }
}

fn build(source: &str) -> Result<sxd_xpath::XPath, String> {
    match Factory::new().build(source) {
        Ok(Some(x)) => Ok(x),
        Ok(None) => Err("an empty xpath".to_string()),
        Err(e) => Err(format!("xpath `{source}` does not parse: {e}")),
    }
}

/// An XPath number as JSON: whole numbers as integers.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// The document `text` holds: XML when it is well-formed, else HTML.
fn parse(text: &str) -> Package {
    if let Ok(p) = sxd_document::parser::parse(text) {
        return p;
    }
    let html = scraper::Html::parse_document(text);
    let package = Package::new();
    {
        let doc = package.as_document();
        for child in html.tree.root().children() {
            if let Some(e) = copy(&doc, child) {
                doc.root().append_child(e);
            }
        }
    }
    package
}

/// Copies an HTML element (and what it holds) into `doc`; `None` for what
/// is not an element (the doctype, comments at the top).
fn copy<'d>(doc: &Document<'d>, node: ego_tree::NodeRef<'_, scraper::Node>) -> Option<Element<'d>> {
    let scraper::Node::Element(e) = node.value() else {
        return None;
    };
    let out = doc.create_element(e.name());
    for (name, value) in e.attrs() {
        out.set_attribute_value(name, value);
    }
    for child in node.children() {
        match child.value() {
            scraper::Node::Text(t) => out.append_child(doc.create_text(t)),
            scraper::Node::Element(_) => {
                if let Some(c) = copy(doc, child) {
                    out.append_child(c);
                }
            }
            scraper::Node::Comment(c) => out.append_child(doc.create_comment(c)),
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(x: &str, text: &str) -> Option<Value> {
        XPath::compile(x).unwrap().eval(text).unwrap()
    }

    #[test]
    fn xml_values_texts_counts_and_attributes() {
        let xml = r#"<?xml version="1.0"?><order id="42"><item sku="A-1">2</item><item sku="B-2">5</item><status>PAID</status></order>"#;
        assert_eq!(eval("/order/status", xml), Some(json!("PAID")));
        assert_eq!(eval("string(/order/@id)", xml), Some(json!("42")));
        assert_eq!(eval("/order/@id", xml), Some(json!("42")));
        assert_eq!(eval("count(//item)", xml), Some(json!(2)));
        assert_eq!(eval("sum(//item)", xml), Some(json!(7)));
        assert_eq!(eval("//item/@sku", xml), Some(json!(["A-1", "B-2"])));
        assert_eq!(eval("//item[@sku='B-2'] = 5", xml), Some(json!(true)));
        assert_eq!(eval("//missing", xml), None);
    }

    #[test]
    fn html_is_read_as_browsers_read_it() {
        let html = "<!doctype html><title>Orders</title><p class=total>Total: <b>19.90</b><p>next";
        assert_eq!(eval("string(//head/title)", html), Some(json!("Orders")));
        assert_eq!(eval("//p[@class='total']/b", html), Some(json!("19.90")));
        assert_eq!(eval("count(//p)", html), Some(json!(2)));
        assert_eq!(
            eval("normalize-space(//p[1])", html),
            Some(json!("Total: 19.90"))
        );
    }

    #[test]
    fn elements_in_a_default_namespace_are_reached_by_local_name() {
        let xml = r#"<order xmlns="urn:orders"><status>NEW</status></order>"#;
        assert_eq!(eval("/order/status", xml), None);
        assert_eq!(
            eval("/*[local-name()='order']/*[local-name()='status']", xml),
            Some(json!("NEW"))
        );
    }

    #[test]
    fn bad_expressions_are_refused_when_checked() {
        let e = XPath::compile("//a[").unwrap_err();
        assert!(e.starts_with("xpath `//a[` does not parse"), "{e}");
        assert!(XPath::compile("").is_err());
        let e = XPath::compile("nosuch(1)")
            .unwrap()
            .eval("<a/>")
            .unwrap_err();
        assert!(e.contains("nosuch"), "{e}");
    }
}
