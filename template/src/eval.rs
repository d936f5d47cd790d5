//! Evaluating parsed placeholder expressions: looking names up, reading
//! environment variables, calling functions and walking paths. Every error
//! names the placeholder it comes from.

use serde_json::Value;

use super::functions::{self, Context, type_name};
use super::parse::{Expr, Seg};
use super::{ResolveError, Resolver};

/// The value of `expr`, from the placeholder `source`.
pub(crate) fn eval(expr: &Expr, r: &Resolver<'_>, source: &str) -> Result<Value, ResolveError> {
    let fail = |detail: String| ResolveError {
        message: format!("`{source}`: {detail}"),
    };
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Name { name, path } => {
            let value = r
                .lookup
                .get(name)
                .ok_or_else(|| undefined(name, source, r))?;
            walk(value, path, name).map_err(fail)
        }
        Expr::Env { var, path } => {
            let value = match std::env::var(var) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(ResolveError {
                        message: format!("environment variable `{var}` is not set (in `{source}`)"),
                    });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(ResolveError {
                        message: format!(
                            "environment variable `{var}` is not valid UTF-8 (in `{source}`)"
                        ),
                    });
                }
            };
            walk(Value::String(value), path, &format!("env.{var}")).map_err(fail)
        }
        Expr::Call {
            func,
            args,
            path,
            text,
        } => {
            let values = args
                .iter()
                .map(|a| eval(a, r, source))
                .collect::<Result<Vec<_>, _>>()?;
            let ctx = Context {
                base_dir: r.base_dir,
            };
            let result =
                (func.call)(&ctx, &values).map_err(|e| fail(format!("{}: {e}", func.name)))?;
            if let Value::String(s) = &result {
                super::policy::check_len(s.len(), source)?;
            }
            walk(result, path, text).map_err(fail)
        }
    }
}

/// "undefined name `x` in `${x}`; defined: a, b".
fn undefined(name: &str, source: &str, r: &Resolver<'_>) -> ResolveError {
    let mut names = r.lookup.names();
    names.sort();
    names.dedup();
    let defined = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    let mut message = format!("undefined name `{name}` in `{source}`; defined: {defined}");
    if functions::find(name).is_some() {
        message.push_str(&format!(
            "; `{name}` is a function: call it as `{name}(...)`"
        ));
    } else if let Some(near) = functions::nearest(name, names.iter().map(String::as_str)) {
        message.push_str(&format!("; did you mean `{near}`?"));
    }
    ResolveError { message }
}

/// `value` followed along `path`; `root` is how the value was written, for
/// messages.
fn walk(mut value: Value, path: &[Seg], root: &str) -> Result<Value, String> {
    let mut shown = root.to_string();
    for seg in path {
        value = step(value, seg, &shown)?;
        shown.push_str(&seg_text(seg));
    }
    Ok(value)
}

/// One step into `value` (written `shown`).
fn step(value: Value, seg: &Seg, shown: &str) -> Result<Value, String> {
    match (value, seg) {
        (Value::Object(mut map), Seg::Key(key)) => match map.swap_remove(key) {
            Some(v) => Ok(v),
            None => Err(format!(
                "`{shown}` has no field `{key}` ({})",
                fields_hint(map.keys())
            )),
        },
        (Value::Object(mut map), Seg::Index(i)) => {
            // An object with a field named like the index: take it.
            let key = i.to_string();
            match map.swap_remove(&key) {
                Some(v) => Ok(v),
                None => Err(format!(
                    "`{shown}` is an object, not an array: it has no index {i}"
                )),
            }
        }
        (Value::Array(items), Seg::Index(i)) => take_index(items, *i, shown),
        (Value::Array(items), Seg::Key(key)) => match key.parse::<i64>() {
            Ok(i) if key.bytes().all(|b| b.is_ascii_digit()) => take_index(items, i, shown),
            _ => Err(format!(
                "`{shown}` is an array, not an object: it has no field `{key}`"
            )),
        },
        (other, Seg::Key(key)) => Err(format!(
            "`{shown}` is {}, not an object: it has no field `{key}`",
            type_name(&other)
        )),
        (other, Seg::Index(i)) => Err(format!(
            "`{shown}` is {}, not an array: it has no index {i}",
            type_name(&other)
        )),
    }
}

fn take_index(mut items: Vec<Value>, i: i64, shown: &str) -> Result<Value, String> {
    let len = items.len();
    let pos = if i < 0 {
        usize::try_from(i.unsigned_abs())
            .ok()
            .and_then(|back| len.checked_sub(back))
    } else {
        usize::try_from(i).ok().filter(|p| *p < len)
    };
    match pos {
        Some(p) if p < len => Ok(items.swap_remove(p)),
        _ => Err(format!(
            "`{shown}` has no index {i} (it has {len} {})",
            if len == 1 { "item" } else { "items" }
        )),
    }
}

/// "fields: a, b" (at most ten), or "it has no fields".
fn fields_hint<'k>(keys: impl Iterator<Item = &'k String>) -> String {
    let keys: Vec<&String> = keys.collect();
    if keys.is_empty() {
        return "it has no fields".to_string();
    }
    let mut shown: Vec<&str> = keys.iter().take(10).map(|k| k.as_str()).collect();
    if keys.len() > 10 {
        shown.push("...");
    }
    format!("fields: {}", shown.join(", "))
}

/// A path step as it would be written.
fn seg_text(seg: &Seg) -> String {
    match seg {
        Seg::Index(i) => format!("[{i}]"),
        Seg::Key(k)
            if !k.is_empty()
                && k.chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
        {
            format!(".{k}")
        }
        Seg::Key(k) => format!("['{}']", k.replace('\\', "\\\\").replace('\'', "\\'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(p: &[Seg]) -> Vec<Seg> {
        p.to_vec()
    }

    #[test]
    fn walks_objects_and_arrays() {
        let v = json!({"b": [{"c": 1}, {"c": 2}], "x-y": "z"});
        let path = keys(&[Seg::Key("b".into()), Seg::Index(1), Seg::Key("c".into())]);
        assert_eq!(walk(v.clone(), &path, "a").unwrap(), json!(2));
        assert_eq!(
            walk(v.clone(), &[Seg::Key("b".into()), Seg::Index(-1)], "a").unwrap(),
            json!({"c": 2})
        );
        assert_eq!(
            walk(
                v.clone(),
                &[Seg::Key("b".into()), Seg::Key("0".into())],
                "a"
            )
            .unwrap(),
            json!({"c": 1})
        );
        assert_eq!(
            walk(v.clone(), &[Seg::Key("x-y".into())], "a").unwrap(),
            json!("z")
        );
        assert_eq!(walk(v.clone(), &[], "a").unwrap(), v);
        assert_eq!(
            walk(json!({"0": "zero"}), &[Seg::Index(0)], "o").unwrap(),
            json!("zero")
        );
    }

    #[test]
    fn missing_parts_are_named() {
        let v = json!({"b": [{"c": 1}, {"c": 2}], "s": "text"});
        assert_eq!(
            walk(v.clone(), &[Seg::Key("nope".into())], "a").unwrap_err(),
            "`a` has no field `nope` (fields: b, s)"
        );
        assert_eq!(
            walk(v.clone(), &[Seg::Key("b".into()), Seg::Index(2)], "a").unwrap_err(),
            "`a.b` has no index 2 (it has 2 items)"
        );
        assert_eq!(
            walk(v.clone(), &[Seg::Key("b".into()), Seg::Index(-3)], "a").unwrap_err(),
            "`a.b` has no index -3 (it has 2 items)"
        );
        assert_eq!(
            walk(
                v.clone(),
                &[Seg::Key("b".into()), Seg::Index(i64::MIN)],
                "a"
            )
            .unwrap_err(),
            format!("`a.b` has no index {} (it has 2 items)", i64::MIN)
        );
        assert_eq!(
            walk(
                v.clone(),
                &[Seg::Key("b".into()), Seg::Index(0), Seg::Key("d".into())],
                "a"
            )
            .unwrap_err(),
            "`a.b[0]` has no field `d` (fields: c)"
        );
        assert_eq!(
            walk(
                v.clone(),
                &[Seg::Key("b".into()), Seg::Key("c".into())],
                "a"
            )
            .unwrap_err(),
            "`a.b` is an array, not an object: it has no field `c`"
        );
        assert_eq!(
            walk(
                v.clone(),
                &[Seg::Key("s".into()), Seg::Key("len".into())],
                "a"
            )
            .unwrap_err(),
            "`a.s` is a string, not an object: it has no field `len`"
        );
        assert_eq!(
            walk(v.clone(), &[Seg::Key("s".into()), Seg::Index(0)], "a").unwrap_err(),
            "`a.s` is a string, not an array: it has no index 0"
        );
        assert_eq!(
            walk(v, &[Seg::Index(0)], "a").unwrap_err(),
            "`a` is an object, not an array: it has no index 0"
        );
        assert_eq!(
            walk(json!({}), &[Seg::Key("k".into())], "e").unwrap_err(),
            "`e` has no field `k` (it has no fields)"
        );
        assert_eq!(
            walk(json!([]), &[Seg::Index(0)], "e").unwrap_err(),
            "`e` has no index 0 (it has 0 items)"
        );
        assert_eq!(
            walk(json!(null), &[Seg::Key("k".into())], "n").unwrap_err(),
            "`n` is null, not an object: it has no field `k`"
        );
    }

    #[test]
    fn long_field_lists_are_cut() {
        let mut map = serde_json::Map::new();
        for i in 0..12 {
            map.insert(format!("f{i:02}"), json!(i));
        }
        assert_eq!(
            walk(Value::Object(map), &[Seg::Key("x".into())], "o").unwrap_err(),
            "`o` has no field `x` (fields: f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, ...)"
        );
    }

    #[test]
    fn path_steps_are_written_back() {
        assert_eq!(seg_text(&Seg::Key("abc".into())), ".abc");
        assert_eq!(seg_text(&Seg::Key("x-y".into())), ".x-y");
        assert_eq!(seg_text(&Seg::Key("a b".into())), "['a b']");
        assert_eq!(seg_text(&Seg::Key("it's".into())), r"['it\'s']");
        assert_eq!(seg_text(&Seg::Key(String::new())), "['']");
        assert_eq!(seg_text(&Seg::Index(-1)), "[-1]");
    }
}
