//! Placeholders: `${EXPR}` in strings of `vars`, `args`, `expect` values and
//! `save` paths (SPEC section 4).
//!
//! A string that is exactly one placeholder takes the value's JSON type
//! (`"${qty}"` is the number 2); inside a longer string the value is
//! rendered as text by [`to_text`] (strings as they are, `null` as `null`,
//! objects and arrays as compact JSON). A substituted value is never scanned
//! again. `$${` is a literal `${`. Expressions are literals (numbers,
//! `'quoted text'`, `true`, `false`, `null`), names with paths (`a.b[0].c`,
//! `a["x-y"]`, `a[-1]` from the end), `env.NAME` for process environment
//! variables, and calls of the functions listed by [`function_names`]
//! (one file per family under `functions/`), which nest. See
//! `parse` for the grammar.
//!
//! Nothing resolves silently to an empty string: an undefined name, a
//! missing path step, an unset environment variable, an unknown function or
//! a malformed placeholder is a [`ResolveError`] naming the placeholder.
//! Nothing here panics on user input.

mod eval;
mod functions;
mod parse;
mod policy;
mod template;

use std::path::Path;

use serde_json::Value;

pub use functions::{function_names, function_signatures};
use parse::Piece;
pub use policy::{DEFAULT_CAP, Policy, set_policy};
pub use template::{Part, Placeholder, Template};

/// Where placeholder names come from.
pub trait Lookup {
    /// The value of the top-level name `name`, if defined.
    fn get(&self, name: &str) -> Option<Value>;
    /// Every defined top-level name, for "undefined name" messages.
    fn names(&self) -> Vec<String>;
}

/// What resolution needs besides the names.
pub struct Resolver<'a> {
    /// The names in scope.
    pub lookup: &'a dyn Lookup,
    /// The folder of the case file, for `file(...)`.
    pub base_dir: &'a Path,
}

/// Why a placeholder could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ResolveError {
    /// What went wrong, naming the placeholder.
    pub message: String,
}

/// Resolves every string inside `value` (object keys are left alone).
pub fn resolve(value: &Value, r: &Resolver<'_>) -> Result<Value, ResolveError> {
    match value {
        Value::String(s) => resolve_str(s, r),
        Value::Array(items) => items
            .iter()
            .map(|v| resolve(v, r))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                out.insert(k.clone(), resolve(v, r)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Resolves one string.
pub fn resolve_str(text: &str, r: &Resolver<'_>) -> Result<Value, ResolveError> {
    if !text.contains("${") {
        return Ok(Value::String(text.to_string()));
    }
    let mut pieces = parse::scan(text)?;
    if let [Piece::Placeholder { source, expr }] = pieces.as_slice()
        && source.len() == text.len()
    {
        return eval::eval(expr, r, source);
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces.drain(..) {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Placeholder { source, expr } => {
                out.push_str(&to_text(&eval::eval(&expr, r, source)?));
                policy::check_len(out.len(), source)?;
            }
        }
    }
    Ok(Value::String(out))
}

/// A value as it appears inside a longer string: strings as they are,
/// `null` as `null`, everything else as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// The placeholders of an SQL text that would splice a value into the
/// statement: every `${...}` except those whose whole expression is a call
/// of `ident(...)` or `raw(...)` (the opt-in for a table or column name).
/// Empty when the text is safe; an error for a malformed placeholder. The
/// loader refuses a SQL keyword's `sql` for which this is not empty,
/// pointing to `params`.
pub fn sql_placeholders(text: &str) -> Result<Vec<String>, ResolveError> {
    if !text.contains("${") {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for piece in parse::scan(text)? {
        if let Piece::Placeholder { source, expr } = piece {
            let allowed = matches!(
                &expr,
                parse::Expr::Call { func, path, .. }
                    if path.is_empty() && functions::sql::SQL_SAFE.contains(&func.name)
            );
            if !allowed {
                found.push(source.to_string());
            }
        }
    }
    Ok(found)
}

/// Whether an SQL text has a placeholder that splices a value into the
/// statement (see [`sql_placeholders`]); a malformed placeholder counts.
pub fn sql_has_placeholder(text: &str) -> bool {
    sql_placeholders(text).map_or(true, |found| !found.is_empty())
}

/// The top-level names a string's placeholders read (for `atf check`);
/// function names are not included, `env.X` is reported as `env.X`.
/// An error when the text has a malformed placeholder.
pub fn referenced_names(text: &str) -> Result<Vec<String>, ResolveError> {
    let mut names = Vec::new();
    if !text.contains("${") {
        return Ok(names);
    }
    for piece in parse::scan(text)? {
        if let Piece::Placeholder { expr, .. } = piece {
            parse::collect_names(&expr, &mut names);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    struct Map(BTreeMap<String, Value>);

    impl Lookup for Map {
        fn get(&self, name: &str) -> Option<Value> {
            self.0.get(name).cloned()
        }
        fn names(&self) -> Vec<String> {
            // Deliberately unsorted, with a duplicate: the message sorts.
            let mut names: Vec<String> = self.0.keys().rev().cloned().collect();
            names.push("a".to_string());
            names
        }
    }

    fn vars() -> Map {
        let v = json!({
            "a": "x",
            "b": {"c": [10, {"d": "deep"}], "x-y": 7, "n": null},
            "sku": "A-100",
            "qty": 2,
            "price": 9.5,
            "ok": true,
            "nothing": null,
            "items": [1, "two", {"three": 3}],
            "tmpl": "${a}",
            "secret": "s3cr3t"
        });
        let Value::Object(m) = v else { unreachable!() };
        Map(m.into_iter().collect())
    }

    fn with<T>(f: impl FnOnce(&Resolver<'_>) -> T) -> T {
        let lookup = vars();
        let r = Resolver {
            lookup: &lookup,
            base_dir: Path::new("."),
        };
        f(&r)
    }

    fn res(text: &str) -> Value {
        with(|r| resolve_str(text, r)).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn res_err(text: &str) -> String {
        match with(|r| resolve_str(text, r)) {
            Ok(v) => panic!("{text} resolved to {v}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn sql_text_may_hold_only_ident_and_raw_placeholders() {
        assert!(!sql_has_placeholder("SELECT * FROM t WHERE id = ?"));
        assert!(!sql_has_placeholder("SELECT '$${literal}'"));
        assert!(!sql_has_placeholder(
            "SELECT * FROM ${ident(table)} WHERE id = ?"
        ));
        assert!(!sql_has_placeholder("SELECT * FROM t ${raw(order_by)}"));
        assert_eq!(
            sql_placeholders("SELECT * FROM ${ident(t)} WHERE a = '${a}' AND b = ${upper(b)}")
                .unwrap(),
            ["${a}", "${upper(b)}"]
        );
        // A path after the call gets out of it: not allowed.
        assert!(sql_has_placeholder("SELECT ${raw(x).y}"));
        assert!(sql_has_placeholder("SELECT ${ident}"));
        assert!(sql_has_placeholder("SELECT ${oops("));
        assert_eq!(res("SELECT * FROM ${ident(a)}"), json!("SELECT * FROM x"));
        assert!(
            res_err("SELECT * FROM ${ident(sku)}").contains("not a plain SQL identifier"),
            "A-100 has a dash"
        );
    }

    #[test]
    fn single_placeholder_keeps_the_type() {
        assert_eq!(res("${qty}"), json!(2));
        assert_eq!(res("${price}"), json!(9.5));
        assert_eq!(res("${ok}"), json!(true));
        assert_eq!(res("${nothing}"), json!(null));
        assert_eq!(res("${items}"), json!([1, "two", {"three": 3}]));
        assert_eq!(res("${b.c[1]}"), json!({"d": "deep"}));
        assert_eq!(res("${ qty }"), json!(2));
        assert_eq!(res("${len(items)}"), json!(3));
        assert_eq!(res("${42}"), json!(42));
        assert_eq!(res("${'text'}"), json!("text"));
    }

    #[test]
    fn longer_strings_render_text() {
        assert_eq!(res("qty=${qty}"), json!("qty=2"));
        assert_eq!(res("${sku}-${qty}"), json!("A-100-2"));
        assert_eq!(res("${qty} "), json!("2 "));
        assert_eq!(res("${price}/${ok}/${nothing}"), json!("9.5/true/null"));
        assert_eq!(
            res("items: ${items}"),
            json!(r#"items: [1,"two",{"three":3}]"#)
        );
        assert_eq!(
            res("b=${b}"),
            json!(r#"b={"c":[10,{"d":"deep"}],"x-y":7,"n":null}"#)
        );
        assert_eq!(res("/users/${a}/orders"), json!("/users/x/orders"));
        assert_eq!(res("ünï ${a} ✓"), json!("ünï x ✓"));
    }

    #[test]
    fn plain_strings_pass_through() {
        assert_eq!(res(""), json!(""));
        assert_eq!(
            res("no placeholders $ {x} $x {}"),
            json!("no placeholders $ {x} $x {}")
        );
    }

    #[test]
    fn substituted_values_are_not_rescanned() {
        assert_eq!(res("${tmpl}"), json!("${a}"));
        assert_eq!(res("v=${tmpl}"), json!("v=${a}"));
        assert_eq!(res("${concat('$', '{a}')}"), json!("${a}"));
    }

    #[test]
    fn double_dollar_escape() {
        assert_eq!(res("$${a}"), json!("${a}"));
        assert_eq!(res("$${a} is ${a}"), json!("${a} is x"));
        assert_eq!(res("$${"), json!("${"));
        assert_eq!(res("cost: $$5"), json!("cost: $$5"));
        assert_eq!(referenced_names("$${a} ${b}").unwrap(), ["b"]);
    }

    #[test]
    fn undefined_name_lists_defined_names() {
        let lookup = Map([("sku", json!(1)), ("b", json!(2)), ("a", json!(3))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect());
        let r = Resolver {
            lookup: &lookup,
            base_dir: Path::new("."),
        };
        assert_eq!(
            resolve_str("${userId}", &r).unwrap_err().message,
            "undefined name `userId` in `${userId}`; defined: a, b, sku"
        );
        assert_eq!(
            resolve_str("/users/${userId}/x", &r).unwrap_err().message,
            "undefined name `userId` in `${userId}`; defined: a, b, sku"
        );
        assert_eq!(
            resolve_str("${md5(userId)}", &r).unwrap_err().message,
            "undefined name `userId` in `${md5(userId)}`; defined: a, b, sku"
        );
        assert_eq!(
            resolve_str("${skus}", &r).unwrap_err().message,
            "undefined name `skus` in `${skus}`; defined: a, b, sku; did you mean `sku`?"
        );
        assert_eq!(
            resolve_str("${uuid}", &r).unwrap_err().message,
            "undefined name `uuid` in `${uuid}`; defined: a, b, sku; `uuid` is a function: call it as `uuid(...)`"
        );
        struct Empty;
        impl Lookup for Empty {
            fn get(&self, _: &str) -> Option<Value> {
                None
            }
            fn names(&self) -> Vec<String> {
                Vec::new()
            }
        }
        let r = Resolver {
            lookup: &Empty,
            base_dir: Path::new("."),
        };
        assert_eq!(
            resolve_str("${x}", &r).unwrap_err().message,
            "undefined name `x` in `${x}`; defined: (none)"
        );
    }

    #[test]
    fn walking_paths() {
        assert_eq!(res("${b.c[0]}"), json!(10));
        assert_eq!(res("${b.c[1].d}"), json!("deep"));
        assert_eq!(res(r#"${b["x-y"]}"#), json!(7));
        assert_eq!(res("${b['x-y']}"), json!(7));
        assert_eq!(res("${b.x-y}"), json!(7));
        assert_eq!(res("${b.n}"), json!(null));
        assert_eq!(res("${items[-1].three}"), json!(3));
        assert_eq!(res("${items.1}"), json!("two"));
        assert_eq!(res("${parse_json('{\"k\": [5]}').k[0]}"), json!(5));
    }

    #[test]
    fn missing_paths_are_errors() {
        assert_eq!(
            res_err("${b.c[5]}"),
            "`${b.c[5]}`: `b.c` has no index 5 (it has 2 items)"
        );
        assert_eq!(
            res_err("x ${b.nope} y"),
            "`${b.nope}`: `b` has no field `nope` (fields: c, x-y, n)"
        );
        assert_eq!(
            res_err("${b.c[1].d.e}"),
            "`${b.c[1].d.e}`: `b.c[1].d` is a string, not an object: it has no field `e`"
        );
        assert_eq!(
            res_err("${b['x-y'][0]}"),
            "`${b['x-y'][0]}`: `b.x-y` is a number, not an array: it has no index 0"
        );
        assert_eq!(
            res_err("${parse_json('{}').k}"),
            "`${parse_json('{}').k}`: `parse_json('{}')` has no field `k` (it has no fields)"
        );
    }

    #[test]
    fn env_vars() {
        // Cargo sets these for the test process it runs.
        let pkg = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
        assert_eq!(pkg, "atf-template");
        assert_eq!(res("${env.CARGO_PKG_NAME}"), json!("atf-template"));
        assert_eq!(
            res("pkg=${env['CARGO_PKG_NAME']}!"),
            json!("pkg=atf-template!")
        );
        assert_eq!(res("${upper(env.CARGO_PKG_NAME)}"), json!("ATF-TEMPLATE"));
        assert_eq!(
            res_err("${env.ATF_RESOLVE_TEST_SURELY_UNSET_42}"),
            "environment variable `ATF_RESOLVE_TEST_SURELY_UNSET_42` is not set (in `${env.ATF_RESOLVE_TEST_SURELY_UNSET_42}`)"
        );
        assert_eq!(
            res_err("${env.CARGO_PKG_NAME.x}"),
            "`${env.CARGO_PKG_NAME.x}`: `env.CARGO_PKG_NAME` is a string, not an object: it has no field `x`"
        );
    }

    #[test]
    fn nested_calls() {
        assert_eq!(
            res("${md5(concat('a', 'b', 'c'))}"),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(res("${upper(jsonpath(b, '$.c[1].d'))}"), json!("DEEP"));
        assert_eq!(res("${len(random_str(qty))}"), json!(2));
        assert_eq!(res("${base64_decode(base64(sku))}"), json!("A-100"));
        assert_eq!(
            res("sig=${hmac_sha256('Jefe', 'what do ya want for nothing?')}"),
            json!("sig=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            res("${aes_decrypt(aes_encrypt(sku, '0123456789abcdef'), '0123456789abcdef')}"),
            json!("A-100")
        );
        assert_eq!(
            res("${json(parse_json(json(items)))}"),
            json!(r#"[1,"two",{"three":3}]"#)
        );
        assert_eq!(
            res("${lower(concat(sku, '-', qty, '-', ok))}"),
            json!("a-100-2-true")
        );
        let n = res("${random_int(qty, 2)}");
        assert_eq!(n, json!(2));
        let ts = res("${timestamp()}");
        assert!(ts.as_i64().is_some_and(|t| t > 1_700_000_000), "{ts}");
    }

    #[test]
    fn function_errors_name_the_placeholder_and_function() {
        assert_eq!(
            res_err("${md5(items)}"),
            "`${md5(items)}`: md5: argument 1 (x) must be text, got an array"
        );
        assert_eq!(
            res_err("${random_int(5, 1)}"),
            "`${random_int(5, 1)}`: random_int: min 5 is greater than max 1"
        );
        assert_eq!(
            res_err("${jsonpath(b, '$.zzz')}"),
            "`${jsonpath(b, '$.zzz')}`: jsonpath: `$.zzz` selects nothing in an object"
        );
        assert_eq!(
            res_err("${sha256()}"),
            "`sha256` takes 1 argument, got 0: sha256(x) (in `${sha256()}`)"
        );
        assert!(res_err("${sha265(a)}").starts_with(
            "unknown function `sha265` in `${sha265(a)}`; did you mean `sha256`?; known functions: "
        ));
    }

    #[test]
    fn file_is_relative_to_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("payloads")).unwrap();
        std::fs::write(
            dir.path().join("payloads/order.json"),
            r#"{"sku": "A-1", "qty": 3}"#,
        )
        .unwrap();
        let lookup = vars();
        let r = Resolver {
            lookup: &lookup,
            base_dir: dir.path(),
        };
        assert_eq!(
            resolve_str("${file('payloads/order.json')}", &r).unwrap(),
            json!({"sku": "A-1", "qty": 3})
        );
        assert_eq!(
            resolve_str("${file('payloads/order.json').qty}", &r).unwrap(),
            json!(3)
        );
        let missing = dir.path().join("payloads/nope.json");
        let err = resolve_str("${file('payloads/nope.json')}", &r)
            .unwrap_err()
            .message;
        assert!(
            err.starts_with(&format!(
                "`${{file('payloads/nope.json')}}`: file: cannot read `{}`: ",
                missing.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn malformed_errors_name_the_text() {
        assert_eq!(
            res_err("/u/${userId"),
            "unclosed `${` in `/u/${userId` (missing `}`)"
        );
        assert_eq!(
            res_err("${}"),
            "malformed placeholder `${}`: empty placeholder"
        );
        assert_eq!(
            res_err("a ${md5(a} b"),
            "malformed placeholder `${md5(a}`: expected `,` or `)` after `md5(a`"
        );
        // A malformed placeholder is reported even after a good one, and
        // before anything is evaluated.
        assert_eq!(
            res_err("${nope} ${a b}"),
            "malformed placeholder `${a b}`: unexpected `b` after `a`"
        );
    }

    #[test]
    fn resolve_walks_values_and_leaves_keys() {
        let input = json!({
            "url": "/items/${sku}",
            "${a}": "key stays",
            "n": "${qty}",
            "list": ["${ok}", 1, null, {"deep": "${b.c[0]}"}],
            "num": 3.5,
            "esc": "$${a}"
        });
        let out = with(|r| resolve(&input, r)).unwrap();
        assert_eq!(
            out,
            json!({
                "url": "/items/A-100",
                "${a}": "key stays",
                "n": 2,
                "list": [true, 1, null, {"deep": 10}],
                "num": 3.5,
                "esc": "${a}"
            })
        );
        // Key order is kept.
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["url", "${a}", "n", "list", "num", "esc"]);
        let err = with(|r| resolve(&json!({"a": ["${nope}"]}), r)).unwrap_err();
        assert!(err.message.starts_with("undefined name `nope`"), "{err}");
    }

    #[test]
    fn referenced_names_for_check() {
        let names = referenced_names(
            "${a.b} ${env.HOME} ${md5(x)} ${now('%Y')} ${'lit'} ${3} ${a} ${jsonpath(resp, '$.x')} ${env['X-Y']}",
        )
        .unwrap();
        assert_eq!(names, ["a", "env.HOME", "x", "resp", "env.X-Y"]);
        assert!(referenced_names("plain").unwrap().is_empty());
        assert!(referenced_names("$${x}").unwrap().is_empty());
        assert_eq!(
            referenced_names("${a").unwrap_err().message,
            "unclosed `${` in `${a` (missing `}`)"
        );
        assert!(referenced_names("${nosuchfn(a)}").is_err());
    }

    #[test]
    fn to_text_renders() {
        assert_eq!(to_text(&json!("s")), "s");
        assert_eq!(to_text(&json!(null)), "null");
        assert_eq!(to_text(&json!(1.0)), "1.0");
        assert_eq!(to_text(&json!(-7)), "-7");
        assert_eq!(to_text(&json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
    }

    #[test]
    fn public_function_lists() {
        let names = function_names();
        assert!(names.contains(&"hmac_sha256"));
        assert!(function_signatures().contains(&"aes_encrypt(x, key, [iv])"));
    }

    /// Every short string over the characters that matter, and some long
    /// ones: resolution and name collection return, never panic.
    #[test]
    fn never_panics_on_odd_input() {
        let alphabet: Vec<char> = "${}()[]'\"\\.,a1-é ".chars().collect();
        let lookup = vars();
        let r = Resolver {
            lookup: &lookup,
            base_dir: Path::new("."),
        };
        let n = alphabet.len();
        let mut s = String::new();
        for len in 1..=4u32 {
            for mut code in 0..n.pow(len) {
                s.clear();
                for _ in 0..len {
                    s.push(alphabet[code % n]);
                    code /= n;
                }
                for wrapped in [format!("${{{s}}}"), s.clone(), format!("x${{md5({s})}}")] {
                    let _ = resolve_str(&wrapped, &r);
                    let _ = referenced_names(&wrapped);
                }
            }
        }
        for odd in [
            "${".repeat(1000),
            "$".repeat(1001) + "{",
            format!("${{{}}}", "[".repeat(5000)),
            format!("${{a{}}}", "[0]".repeat(5000)),
            format!("${{{}}}", "'".repeat(5001)),
            "${random_str(999999999999999999999)}".to_string(),
            "${random_int(-9223372036854775808, 9223372036854775807)}".to_string(),
            "${now('%Y', '-9223372036854775807ms')}".to_string(),
            "${jsonpath(items, '$[?@ == $]')}".to_string(),
            "${\u{0}}".to_string(),
            "${env['\u{0}']}".to_string(),
        ] {
            let _ = resolve_str(&odd, &r);
            let _ = referenced_names(&odd);
        }
    }
}
