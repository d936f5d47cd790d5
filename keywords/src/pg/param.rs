//! `params` of `pg.query`: JSON values bound to `$1`, `$2`, … in PostgreSQL's
//! text format, so that the server parses each one as the type it inferred
//! for its placeholder — exactly as it would parse a literal of that type.
//!
//! Strings are sent as they are, numbers and booleans as their JSON text,
//! `null` as SQL NULL. For a `json`/`jsonb` placeholder a string is sent as
//! is (it must hold JSON) and anything else as its JSON text. For an array
//! placeholder (`int[]`, `text[]`, …) a JSON list becomes an array literal
//! (`{1,2,NULL}`), nested lists multi-dimensional ones. For `bytea` a string
//! is Base64 (as `pg.query` returns bytea) and is sent as `\x` hex. Objects
//! and lists for any other type are sent as their JSON text.
//!
//! Values are always bound, never spliced into the SQL text.

use std::error::Error;

use atf_sdk::Value;
use base64::Engine as _;
use bytes::BytesMut;
use tokio_postgres::types::{Format, IsNull, Kind, ToSql, Type, to_sql_checked};

/// One bound parameter.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub(crate) &'a Value);

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match text(self.0, ty)? {
            None => Ok(IsNull::Yes),
            Some(t) => {
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// The text PostgreSQL parses as a value of type `ty`, or `None` for NULL.
pub(crate) fn text(v: &Value, ty: &Type) -> Result<Option<String>, String> {
    if v.is_null() {
        return Ok(None);
    }
    match ty.kind() {
        Kind::Domain(base) => return text(v, base),
        Kind::Array(member) => {
            if let Value::Array(items) = v {
                return array_literal(items, member).map(Some);
            }
        }
        _ => {}
    }
    if *ty == Type::JSON || *ty == Type::JSONB {
        return Ok(Some(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }));
    }
    if *ty == Type::BYTEA {
        return match v {
            Value::String(s) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|e| {
                        format!("a bytea parameter is Base64 text (as pg.query returns bytea): {e}")
                    })?;
                let mut hex = String::with_capacity(2 + 2 * bytes.len());
                hex.push_str("\\x");
                for b in bytes {
                    hex.push_str(&format!("{b:02x}"));
                }
                Ok(Some(hex))
            }
            other => Err(format!(
                "a bytea parameter is Base64 text, got {}",
                atf_sdk::type_name(other)
            )),
        };
    }
    Ok(Some(match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }))
}

/// `{…}`: an array literal of `member` values; nested lists are further dimensions.
fn array_literal(items: &[Value], member: &Type) -> Result<String, String> {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => out.push_str(&array_literal(inner, member)?),
            other => {
                let t = text(other, member)?.unwrap_or_default();
                out.push('"');
                for c in t.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atf_sdk::json;

    fn t(v: Value, ty: &Type) -> Option<String> {
        text(&v, ty).unwrap()
    }

    #[test]
    fn scalars_are_their_text() {
        assert_eq!(t(json!(null), &Type::INT4), None);
        assert_eq!(t(json!(42), &Type::INT4).as_deref(), Some("42"));
        assert_eq!(t(json!(-1.5), &Type::NUMERIC).as_deref(), Some("-1.5"));
        assert_eq!(t(json!("12.50"), &Type::NUMERIC).as_deref(), Some("12.50"));
        assert_eq!(t(json!(true), &Type::BOOL).as_deref(), Some("true"));
        assert_eq!(
            t(json!("x'); DROP TABLE t; --"), &Type::TEXT).as_deref(),
            Some("x'); DROP TABLE t; --")
        );
        // A list for a text placeholder: its JSON text.
        assert_eq!(
            t(json!([1, "a"]), &Type::TEXT).as_deref(),
            Some("[1,\"a\"]")
        );
    }

    #[test]
    fn json_placeholders_take_json_text() {
        assert_eq!(
            t(json!({"a": [1, 2]}), &Type::JSONB).as_deref(),
            Some("{\"a\":[1,2]}")
        );
        assert_eq!(
            t(json!("{\"a\":1}"), &Type::JSON).as_deref(),
            Some("{\"a\":1}")
        );
        assert_eq!(t(json!(3), &Type::JSONB).as_deref(), Some("3"));
    }

    #[test]
    fn lists_for_array_placeholders_are_array_literals() {
        assert_eq!(
            t(json!([1, null, 3]), &Type::INT4_ARRAY).as_deref(),
            Some("{\"1\",NULL,\"3\"}")
        );
        assert_eq!(
            t(json!(["a\"b", "c\\d", "e,f"]), &Type::TEXT_ARRAY).as_deref(),
            Some(r#"{"a\"b","c\\d","e,f"}"#)
        );
        assert_eq!(
            t(json!([[1, 2], [3, 4]]), &Type::INT8_ARRAY).as_deref(),
            Some("{{\"1\",\"2\"},{\"3\",\"4\"}}")
        );
        assert_eq!(t(json!([]), &Type::TEXT_ARRAY).as_deref(), Some("{}"));
        // A string for an array placeholder is taken as PostgreSQL's own literal.
        assert_eq!(
            t(json!("{1,2}"), &Type::INT4_ARRAY).as_deref(),
            Some("{1,2}")
        );
    }

    #[test]
    fn bytea_takes_base64() {
        assert_eq!(t(json!("AAH/"), &Type::BYTEA).as_deref(), Some("\\x0001ff"));
        assert!(text(&json!("not base64!"), &Type::BYTEA).is_err());
        assert!(text(&json!(5), &Type::BYTEA).is_err());
    }
}
