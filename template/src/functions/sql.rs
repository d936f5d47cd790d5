//! SQL functions: the opt-in for placeholders inside SQL text.
//!
//! `${...}` inside the `sql` of a SQL keyword splices a value into the
//! statement, which is how SQL injection happens; values go in `params`
//! instead, bound by the server. Where a statement really needs a value in
//! its text — a table or column name — the placeholder says so by calling
//! one of these (see [`crate::sql_placeholders`]):
//!
//! - `ident(x)`: `x` when it is a plain identifier — letters, digits, `_`
//!   and `$`, in parts joined by `.` (`shop.orders_2024`) — else an error.
//!   Nothing else can get through it.
//! - `raw(x)`: `x` as it is. The author takes responsibility for it.

use serde_json::Value;

use super::{Context, Function, text};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "ident",
        signature: "ident(name)",
        min_args: 1,
        max_args: Some(1),
        call: ident,
    },
    Function {
        name: "raw",
        signature: "raw(text)",
        min_args: 1,
        max_args: Some(1),
        call: raw,
    },
];

/// The names of the functions that make a placeholder allowed in SQL text.
pub(crate) const SQL_SAFE: &[&str] = &["ident", "raw"];

/// The longest identifier part MySQL and PostgreSQL accept.
const MAX_PART: usize = 64;

fn ident(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let name = text(args, 0, "name")?;
    let plain = |part: &str| {
        !part.is_empty()
            && part.len() <= MAX_PART
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    if name.split('.').all(plain) {
        Ok(Value::String(name))
    } else {
        Err(format!(
            "`{}` is not a plain SQL identifier (letters, digits, `_` and `$`, parts joined by `.`)",
            name.chars().take(80).collect::<String>()
        ))
    }
}

fn raw(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(args, 0, "text")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn call(f: super::super::Call, args: &[Value]) -> Result<Value, String> {
        f(
            &Context {
                base_dir: Path::new("."),
            },
            args,
        )
    }

    #[test]
    fn ident_lets_only_plain_names_through() {
        for ok in ["orders", "shop.orders_2024", "t$1", "2024_orders"] {
            assert_eq!(call(ident, &[json!(ok)]), Ok(json!(ok)));
        }
        for bad in [
            "",
            "orders; DROP TABLE t",
            "a b",
            "x'",
            "`t`",
            "a..b",
            "t--",
            "naïve",
            &"x".repeat(65),
        ] {
            let err = call(ident, &[json!(bad)]).unwrap_err();
            assert!(err.contains("not a plain SQL identifier"), "{bad}: {err}");
        }
        assert_eq!(call(ident, &[json!(7)]), Ok(json!("7")));
    }

    #[test]
    fn raw_is_the_text_as_is() {
        assert_eq!(
            call(raw, &[json!("ORDER BY id DESC")]),
            Ok(json!("ORDER BY id DESC"))
        );
    }
}
