//! Compiled templates: a JSON value whose `${...}` placeholders were parsed
//! once, at load time. Rendering walks the compiled tree and evaluates the
//! parsed expressions; it never scans or parses text again. A value without
//! any placeholder compiles to a constant and renders as a clone.

use serde_json::{Map, Value};

use crate::eval;
use crate::parse::{self, Expr, Piece};
use crate::{ResolveError, Resolver, to_text};

/// A JSON value with its placeholders parsed.
#[derive(Debug)]
pub enum Template {
    /// Nothing to resolve.
    Const(Value),
    /// A string that is exactly one placeholder: takes the value's type.
    Whole(Placeholder),
    /// A string mixing text and placeholders: renders as text.
    Text(Vec<Part>),
    /// An array with at least one placeholder inside.
    Array(Vec<Template>),
    /// An object with at least one placeholder inside (keys stay as written).
    Object(Vec<(String, Template)>),
}

/// A parsed placeholder and its source text (for messages).
#[derive(Debug)]
pub struct Placeholder {
    source: String,
    expr: Expr,
}

/// A piece of a text template.
#[derive(Debug)]
pub enum Part {
    /// Literal text (`$${` already turned into `${`).
    Lit(String),
    /// A placeholder, rendered as text.
    Ph(Placeholder),
}

impl Template {
    /// Compiles `value`. The error names the first malformed placeholder.
    pub fn compile(value: &Value) -> Result<Template, ResolveError> {
        Ok(match value {
            Value::String(s) => Self::compile_str(s)?,
            Value::Array(items) => {
                let parts = items
                    .iter()
                    .map(Template::compile)
                    .collect::<Result<Vec<_>, _>>()?;
                if parts.iter().all(Template::is_const) {
                    // From the parts, not `value`: `$${` escapes are undone there.
                    Template::Const(Value::Array(
                        parts.into_iter().filter_map(Template::into_const).collect(),
                    ))
                } else {
                    Template::Array(parts)
                }
            }
            Value::Object(map) => {
                let mut parts = Vec::with_capacity(map.len());
                for (k, v) in map {
                    parts.push((k.clone(), Template::compile(v)?));
                }
                if parts.iter().all(|(_, t)| t.is_const()) {
                    Template::Const(Value::Object(
                        parts
                            .into_iter()
                            .filter_map(|(k, t)| t.into_const().map(|v| (k, v)))
                            .collect(),
                    ))
                } else {
                    Template::Object(parts)
                }
            }
            other => Template::Const(other.clone()),
        })
    }

    /// Compiles one string.
    pub fn compile_str(text: &str) -> Result<Template, ResolveError> {
        if !text.contains("${") {
            return Ok(Template::Const(Value::String(text.to_string())));
        }
        let pieces = parse::scan(text)?;
        if let [Piece::Placeholder { source, .. }] = pieces.as_slice()
            && source.len() == text.len()
        {
            let Some(Piece::Placeholder { source, expr }) = pieces.into_iter().next() else {
                return Ok(Template::Const(Value::String(text.to_string())));
            };
            return Ok(Template::Whole(Placeholder {
                source: source.to_string(),
                expr,
            }));
        }
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            parts.push(match piece {
                Piece::Text(t) => Part::Lit(t),
                Piece::Placeholder { source, expr } => Part::Ph(Placeholder {
                    source: source.to_string(),
                    expr,
                }),
            });
        }
        if parts.iter().all(|p| matches!(p, Part::Lit(_))) {
            // Only `$${` escapes: the text without them.
            let text: String = parts
                .iter()
                .map(|p| match p {
                    Part::Lit(t) => t.as_str(),
                    Part::Ph(_) => "",
                })
                .collect();
            return Ok(Template::Const(Value::String(text)));
        }
        Ok(Template::Text(parts))
    }

    /// Whether it holds no placeholder.
    pub fn is_const(&self) -> bool {
        matches!(self, Template::Const(_))
    }

    fn into_const(self) -> Option<Value> {
        match self {
            Template::Const(v) => Some(v),
            _ => None,
        }
    }

    /// The constant value, when it holds no placeholder.
    pub fn as_const(&self) -> Option<&Value> {
        match self {
            Template::Const(v) => Some(v),
            _ => None,
        }
    }

    /// Resolves the placeholders with `r`.
    pub fn render(&self, r: &Resolver<'_>) -> Result<Value, ResolveError> {
        Ok(match self {
            Template::Const(v) => v.clone(),
            Template::Whole(p) => eval::eval(&p.expr, r, &p.source)?,
            Template::Text(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Lit(t) => out.push_str(t),
                        Part::Ph(p) => {
                            out.push_str(&to_text(&eval::eval(&p.expr, r, &p.source)?));
                            // Text that doubles a var, var after var, stops
                            // at the cap instead of eating the memory.
                            crate::policy::check_len(out.len(), &p.source)?;
                        }
                    }
                }
                Value::String(out)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(r))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Template::Object(members) => {
                let mut out = Map::with_capacity(members.len());
                for (k, t) in members {
                    out.insert(k.clone(), t.render(r)?);
                }
                Value::Object(out)
            }
        })
    }

    /// The first top-level member whose placeholders do not resolve (for
    /// pointing at the failing argument); `None` when it is not an object or
    /// all resolve.
    pub fn failing_member(&self, r: &Resolver<'_>) -> Option<&str> {
        match self {
            Template::Object(members) => members
                .iter()
                .find(|(_, t)| t.render(r).is_err())
                .map(|(k, _)| k.as_str()),
            _ => None,
        }
    }

    /// The top-level names its placeholders read (for `atf check`), each
    /// once; `env.X` as `env.X`; function names are not included.
    pub fn names(&self, out: &mut Vec<String>) {
        match self {
            Template::Const(_) => {}
            Template::Whole(p) => parse::collect_names(&p.expr, out),
            Template::Text(parts) => {
                for part in parts {
                    if let Part::Ph(p) = part {
                        parse::collect_names(&p.expr, out);
                    }
                }
            }
            Template::Array(items) => items.iter().for_each(|t| t.names(out)),
            Template::Object(members) => members.iter().for_each(|(_, t)| t.names(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::Lookup;

    struct Names(Map<String, Value>);
    impl Lookup for Names {
        fn get(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn render(t: &Template, names: Value) -> Result<Value, ResolveError> {
        let Value::Object(m) = names else {
            panic!("names must be an object")
        };
        let lookup = Names(m);
        t.render(&Resolver {
            lookup: &lookup,
            base_dir: Path::new("."),
        })
    }

    #[test]
    fn constants_stay_constant() {
        let v = json!({"a": [1, "x", {"b": null}], "c": "$${not} a placeholder"});
        let t = Template::compile(&v).unwrap();
        assert_eq!(
            t.as_const(),
            Some(&json!({"a": [1, "x", {"b": null}], "c": "${not} a placeholder"})),
            "`$${{` is unescaped once, at compile time"
        );
        let plain = Template::compile(&json!({"a": [1, "x"]})).unwrap();
        assert_eq!(plain.as_const(), Some(&json!({"a": [1, "x"]})));
    }

    #[test]
    fn renders_like_resolve_does() {
        let v = json!({"id": "${id}", "url": "/orders/${id}?q=${q.k}", "list": ["${id}", 2]});
        let t = Template::compile(&v).unwrap();
        let names = json!({"id": 7, "q": {"k": "v"}});
        assert_eq!(
            render(&t, names.clone()).unwrap(),
            json!({"id": 7, "url": "/orders/7?q=v", "list": [7, 2]})
        );
        let mut refs = Vec::new();
        t.names(&mut refs);
        assert_eq!(refs, vec!["id".to_string(), "q".to_string()]);
    }

    #[test]
    fn malformed_placeholders_fail_at_compile_time() {
        let e = Template::compile(&json!({"a": "${upper(}"})).unwrap_err();
        assert!(e.message.contains("malformed placeholder"), "{e}");
        assert!(Template::compile(&json!("${nope(1)}")).is_err());
    }

    #[test]
    fn the_failing_member_is_named() {
        let t = Template::compile(&json!({"ok": "${a}", "bad": "${b}"})).unwrap();
        let lookup = Names(json!({"a": 1}).as_object().unwrap().clone());
        let r = Resolver {
            lookup: &lookup,
            base_dir: Path::new("."),
        };
        assert_eq!(t.failing_member(&r), Some("bad"));
        let e = t.render(&r).unwrap_err();
        assert!(e.message.contains("undefined name `b`"), "{e}");
    }
}
