//! Data functions.
//!
//! - `jsonpath(value, path)`: a plain path (names and indexes only) gives
//!   the one value it selects, and fails when it selects nothing; a path
//!   with a wildcard, filter, slice, union or recursive descent gives the
//!   list of all it selects. A path not starting with `$` is taken as
//!   `$.path`.
//! - `json(value)` is compact JSON text; `parse_json(text)` the reverse.
//! - `file(path)` reads a file relative to the case file's folder: `.json`
//!   files are parsed, others read as UTF-8 text.
//! - `len(x)`: characters of a string, items of an array, entries of an
//!   object. `upper(x)`, `lower(x)`: Unicode case mapping.
//! - `concat(a, b, ...)`: the arguments as text, joined, each rendered as in
//!   a longer string (objects and arrays as compact JSON, `null` as `null`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use jsonpath_rust::JsonPath;
use jsonpath_rust::parser::model::{Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use serde_json::Value;

use super::{Context, Function, arg, text, type_name};
use crate::to_text;

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "jsonpath",
        signature: "jsonpath(value, path)",
        min_args: 2,
        max_args: Some(2),
        call: jsonpath,
    },
    Function {
        name: "json",
        signature: "json(value)",
        min_args: 1,
        max_args: Some(1),
        call: json,
    },
    Function {
        name: "parse_json",
        signature: "parse_json(text)",
        min_args: 1,
        max_args: Some(1),
        call: parse_json,
    },
    Function {
        name: "file",
        signature: "file(path)",
        min_args: 1,
        max_args: Some(1),
        call: file,
    },
    Function {
        name: "len",
        signature: "len(x)",
        min_args: 1,
        max_args: Some(1),
        call: len,
    },
    Function {
        name: "upper",
        signature: "upper(x)",
        min_args: 1,
        max_args: Some(1),
        call: upper,
    },
    Function {
        name: "lower",
        signature: "lower(x)",
        min_args: 1,
        max_args: Some(1),
        call: lower,
    },
    Function {
        name: "concat",
        signature: "concat(a, b, ...)",
        min_args: 1,
        max_args: None,
        call: concat,
    },
];

fn jsonpath(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let value = arg(args, 0);
    let path = text(args, 1, "path")?;
    let path = if path.starts_with('$') {
        path
    } else {
        format!("$.{path}")
    };
    let query = parse_json_path(&path).map_err(|e| format!("invalid JSONPath `{path}`: {e}"))?;
    let plain = query
        .segments
        .iter()
        .all(|s| matches!(s, Segment::Selector(Selector::Name(_) | Selector::Index(_))));
    // The library is not ours: make sure a bug in it cannot take the run down.
    let found: Vec<Value> = catch_unwind(AssertUnwindSafe(|| {
        value
            .query(&path)
            .map(|hits| hits.into_iter().cloned().collect::<Vec<_>>())
    }))
    .map_err(|_| format!("JSONPath `{path}` failed inside the JSONPath library"))?
    .map_err(|e| format!("invalid JSONPath `{path}`: {e}"))?;
    if !plain {
        return Ok(Value::Array(found));
    }
    found
        .into_iter()
        .next()
        .ok_or_else(|| format!("`{path}` selects nothing in {}", type_name(value)))
}

fn json(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    serde_json::to_string(arg(args, 0))
        .map(Value::String)
        .map_err(|e| format!("cannot write JSON: {e}"))
}

fn parse_json(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let t = text(args, 0, "text")?;
    serde_json::from_str(&t).map_err(|e| format!("the text is not valid JSON: {e}"))
}

fn file(ctx: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let rel = text(args, 0, "path")?;
    if rel.is_empty() {
        return Err("the path is empty".to_string());
    }
    let path = ctx.base_dir.join(&rel);
    let shown = path.display();
    let bytes = read_capped(
        &path,
        crate::policy::file_bytes(),
        crate::policy::roots().as_deref(),
    )?;
    let is_json = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_slice(&bytes).map_err(|e| format!("`{shown}` is not valid JSON: {e}"))
    } else {
        String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| format!("`{shown}` is not UTF-8 text"))
    }
}

/// Reads at most `cap` bytes of `path` (more is an error, found without
/// reading it all: `/dev/zero` never ends), when it lies inside one of
/// `roots` (links followed).
fn read_capped(
    path: &std::path::Path,
    cap: usize,
    roots: Option<&[std::path::PathBuf]>,
) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    if let Some(roots) = roots {
        let real =
            std::fs::canonicalize(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
        let inside = roots.iter().any(|root| {
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            real.starts_with(root)
        });
        if !inside {
            let allowed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
            return Err(format!(
                "`{shown}` is outside the project (allowed: {}); list its folder in the project file's \"allow\": {{\"paths\": [...]}} to read it",
                allowed.join(", ")
            ));
        }
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if bytes.len() > cap {
        return Err(format!(
            "`{shown}` is larger than {cap} bytes, the most `file` reads (\"limits\": {{\"file\": ...}} in the project file)"
        ));
    }
    Ok(bytes)
}

fn len(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    match arg(args, 0) {
        Value::String(s) => Ok(s.chars().count().into()),
        Value::Array(a) => Ok(a.len().into()),
        Value::Object(o) => Ok(o.len().into()),
        other => Err(format!(
            "argument 1 (x) must be a string, an array or an object, got {}",
            type_name(other)
        )),
    }
}

fn upper(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(args, 0, "x")?.to_uppercase()))
}

fn lower(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(text(args, 0, "x")?.to_lowercase()))
}

fn concat(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    Ok(Value::String(args.iter().map(to_text).collect()))
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

    fn order() -> Value {
        json!({
            "id": "ORD-1",
            "items": [
                {"sku": "A-100", "qty": 2, "price": 5},
                {"sku": "B-200", "qty": 1, "price": 50}
            ],
            "meta": {"x-y": true}
        })
    }

    #[test]
    fn jsonpath_plain_path_gives_one_value() {
        assert_eq!(
            call(jsonpath, &[order(), json!("$.id")]).unwrap(),
            json!("ORD-1")
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[1].sku")]).unwrap(),
            json!("B-200")
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[0]")]).unwrap(),
            json!({"sku": "A-100", "qty": 2, "price": 5})
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$['meta']['x-y']")]).unwrap(),
            json!(true)
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("id")]).unwrap(),
            json!("ORD-1")
        );
        assert_eq!(call(jsonpath, &[order(), json!("$")]).unwrap(), order());
    }

    #[test]
    fn jsonpath_plain_path_selecting_nothing_fails() {
        assert_eq!(
            call(jsonpath, &[order(), json!("$.nope")]).unwrap_err(),
            "`$.nope` selects nothing in an object"
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[5].sku")]).unwrap_err(),
            "`$.items[5].sku` selects nothing in an object"
        );
    }

    #[test]
    fn jsonpath_other_paths_give_lists() {
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[*].sku")]).unwrap(),
            json!(["A-100", "B-200"])
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[?@.price > 10].sku")]).unwrap(),
            json!(["B-200"])
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[0:1].qty")]).unwrap(),
            json!([2])
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$..qty")]).unwrap(),
            json!([2, 1])
        );
        assert_eq!(
            call(jsonpath, &[order(), json!("$.items[*].nope")]).unwrap(),
            json!([])
        );
    }

    #[test]
    fn jsonpath_errors() {
        let err = call(jsonpath, &[order(), json!("$.items[")]).unwrap_err();
        assert!(err.starts_with("invalid JSONPath `$.items[`: "), "{err}");
        let deep = format!("$.a{}", "[".repeat(10_000));
        assert!(call(jsonpath, &[order(), json!(deep)]).is_err());
        assert_eq!(
            call(jsonpath, &[order(), json!(null)]).unwrap_err(),
            "argument 2 (path) must be text, got null"
        );
    }

    #[test]
    fn json_and_parse_json() {
        assert_eq!(
            call(json, &[json!({"a": [1, "x"], "b": null})]).unwrap(),
            json!(r#"{"a":[1,"x"],"b":null}"#)
        );
        assert_eq!(call(json, &[json!("q\"")]).unwrap(), json!(r#""q\"""#));
        assert_eq!(
            call(parse_json, &[json!(r#"{"a": [1, 2.5]}"#)]).unwrap(),
            json!({"a": [1, 2.5]})
        );
        assert_eq!(call(parse_json, &[json!(7)]).unwrap(), json!(7));
        let err = call(parse_json, &[json!("{nope")]).unwrap_err();
        assert!(
            err.starts_with("the text is not valid JSON: key must be a string at line 1 column 2"),
            "{err}"
        );
    }

    #[test]
    fn file_reads_json_and_text_relative_to_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("payloads")).unwrap();
        std::fs::write(
            dir.path().join("payloads/order.json"),
            r#"{"sku": "A-100"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("payloads/body.txt"), "héllo\n").unwrap();
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        std::fs::write(dir.path().join("bin.dat"), [0xff, 0xfe]).unwrap();
        let ctx = Context {
            base_dir: dir.path(),
        };
        assert_eq!(
            file(&ctx, &[json!("payloads/order.json")]).unwrap(),
            json!({"sku": "A-100"})
        );
        assert_eq!(
            file(&ctx, &[json!("payloads/body.txt")]).unwrap(),
            json!("héllo\n")
        );

        let missing = dir.path().join("payloads/none.json");
        let err = file(&ctx, &[json!("payloads/none.json")]).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read `{}`: ", missing.display())),
            "{err}"
        );
        let err = file(&ctx, &[json!("bad.json")]).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "`{}` is not valid JSON: ",
                dir.path().join("bad.json").display()
            )),
            "{err}"
        );
        assert_eq!(
            file(&ctx, &[json!("bin.dat")]).unwrap_err(),
            format!(
                "`{}` is not UTF-8 text",
                dir.path().join("bin.dat").display()
            )
        );
        assert_eq!(file(&ctx, &[json!("")]).unwrap_err(), "the path is empty");
    }

    #[test]
    fn file_reads_are_capped_and_stay_inside_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("cases");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("ten.txt"), "0123456789").unwrap();
        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        let roots = [inside.clone()];
        assert_eq!(
            read_capped(&inside.join("ten.txt"), 10, Some(&roots)).unwrap(),
            b"0123456789"
        );
        let err = read_capped(&inside.join("ten.txt"), 9, Some(&roots)).unwrap_err();
        assert!(err.contains("is larger than 9 bytes"), "{err}");
        // An endless file is refused after the cap, not read to its end.
        let err = read_capped(std::path::Path::new("/dev/zero"), 1024, None).unwrap_err();
        assert!(err.contains("is larger than 1024 bytes"), "{err}");
        // `..` and links lead nowhere outside.
        for escape in [inside.join("../outside.txt"), inside.join("link.txt")] {
            #[cfg(unix)]
            let _ =
                std::os::unix::fs::symlink(dir.path().join("outside.txt"), inside.join("link.txt"));
            let err = read_capped(&escape, 100, Some(&roots)).unwrap_err();
            assert!(err.contains("is outside the project"), "{err}");
            assert!(err.contains("\"allow\""), "{err}");
        }
        let err = read_capped(std::path::Path::new("/dev/zero"), 1024, Some(&roots)).unwrap_err();
        assert!(err.contains("is outside the project"), "{err}");
    }

    #[test]
    fn len_counts_chars_items_and_entries() {
        assert_eq!(call(len, &[json!("héllo")]).unwrap(), json!(5));
        assert_eq!(call(len, &[json!("")]).unwrap(), json!(0));
        assert_eq!(call(len, &[json!([1, 2, 3])]).unwrap(), json!(3));
        assert_eq!(call(len, &[json!({"a": 1, "b": 2})]).unwrap(), json!(2));
        assert_eq!(
            call(len, &[json!(12)]).unwrap_err(),
            "argument 1 (x) must be a string, an array or an object, got a number"
        );
    }

    #[test]
    fn upper_lower() {
        assert_eq!(call(upper, &[json!("abc-é")]).unwrap(), json!("ABC-É"));
        assert_eq!(call(lower, &[json!("ABC-É")]).unwrap(), json!("abc-é"));
        assert_eq!(call(upper, &[json!(true)]).unwrap(), json!("TRUE"));
        assert_eq!(
            call(lower, &[json!([])]).unwrap_err(),
            "argument 1 (x) must be text, got an array"
        );
    }

    #[test]
    fn concat_renders_everything_as_text() {
        assert_eq!(
            call(concat, &[json!("a-"), json!(1), json!(2.5), json!(true)]).unwrap(),
            json!("a-12.5true")
        );
        assert_eq!(
            call(concat, &[json!({"k": [1]}), json!(null)]).unwrap(),
            json!(r#"{"k":[1]}null"#)
        );
        assert_eq!(call(concat, &[json!("only")]).unwrap(), json!("only"));
    }
}
