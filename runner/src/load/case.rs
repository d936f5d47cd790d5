//! Case and suite files → [`crate::model`], checking every field.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Catalog;
use super::fields::{Src, child, kind};
use crate::diag::did_you_mean;
use crate::format;
use crate::jsonpos::Pos;
use crate::model::{
    Case, ExpectCode, Extract, Retry, SaveCode, SavePath, Step, StepAt, StepCode, Suite,
};
use atf_expect::JsonPath;
use atf_template::Template;

/// Refuses a statement text (SQL) whose placeholders would splice a value
/// into the statement; `ident(...)` and `raw(...)` are the opt-in for names.
/// A malformed placeholder is left to the template compiler's error.
fn statement_text(src: &mut Src<'_>, ptr: &str, arg: &atf_sdk::ArgSpec, text: &str) {
    if let Ok(found) = atf_template::sql_placeholders(text)
        && !found.is_empty()
    {
        src.error_hint(
            ptr,
            format!(
                "{} inside `{}` would splice a value into the statement",
                found.join(", "),
                arg.name
            ),
            Some(
                "bind values with `params`; a table or column name may go in \
                 `${ident(name)}`, text you vouch for in `${raw(...)}`"
                    .to_string(),
            ),
        );
    }
}

/// Reads one step at `ptr`.
pub fn step(
    src: &mut Src<'_>,
    v: &Value,
    ptr: &str,
    catalog: &Catalog,
    allow_undo: bool,
) -> Option<Step> {
    let obj = src.object(v, ptr, "a step")?;
    src.known_fields(obj, ptr, &format::STEP, "a step");
    let line = src.pos.nearest(ptr).map_or(0, |p| p.line);
    let keyword = match obj.get("keyword") {
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            src.error(
                &child(ptr, "keyword"),
                format!("`keyword` must be a string, found {}", kind(other)),
            );
            return None;
        }
        None => {
            src.error(ptr, "a step needs a `keyword`");
            return None;
        }
    };
    let spec = catalog.get(&keyword);
    if spec.is_none() {
        let hint = did_you_mean(&keyword, catalog.names())
            .or_else(|| Some("`atf keywords` lists every keyword".to_string()));
        src.error_hint(
            &child(ptr, "keyword"),
            format!("unknown keyword `{keyword}`"),
            hint,
        );
    }
    let args = match obj.get("args") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(a)) => {
            if let Some(spec) = spec {
                if !spec.open_args {
                    let known: Vec<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
                    for key in a.keys() {
                        if !known.contains(&key.as_str()) {
                            let hint = did_you_mean(key, known.iter().copied()).or_else(|| {
                                Some(format!("`{keyword}` takes: {}", known.join(", ")))
                            });
                            src.error_key(
                                &child(&child(ptr, "args"), key),
                                format!("unknown argument `{key}` of `{keyword}`"),
                                hint,
                            );
                        }
                    }
                }
                for arg in spec.args.iter().filter(|x| !x.choices.is_empty()) {
                    if let Some(Value::String(text)) = a.get(&arg.name)
                        && !text.contains("${")
                        && !arg.choices.iter().any(|c| c.eq_ignore_ascii_case(text))
                    {
                        src.error_hint(
                            &child(&child(ptr, "args"), &arg.name),
                            format!("`{}` of `{keyword}` cannot be `{text}`", arg.name),
                            Some(format!("one of: {}", arg.choices.join(", "))),
                        );
                    }
                }
                for arg in spec.args.iter().filter(|a| a.statement) {
                    if let Some(Value::String(text)) = a.get(&arg.name) {
                        statement_text(src, &child(&child(ptr, "args"), &arg.name), arg, text);
                    }
                }
                for arg in spec.args.iter().filter(|a| a.required) {
                    if !a.contains_key(&arg.name) {
                        src.error(
                            &child(ptr, "args"),
                            format!("`{keyword}` needs the argument `{}`", arg.name),
                        );
                    }
                }
            }
            Value::Object(a.clone())
        }
        Some(other) => {
            src.error(
                &child(ptr, "args"),
                format!("`args` must be an object, found {}", kind(other)),
            );
            Value::Null
        }
    };
    if let (Some(spec), Value::Object(a)) = (spec, &args)
        && a.is_empty()
        && spec.args.iter().any(|x| x.required)
        && !obj.contains_key("args")
    {
        let names: Vec<&str> = spec
            .args
            .iter()
            .filter(|x| x.required)
            .map(|x| x.name.as_str())
            .collect();
        src.error(
            ptr,
            format!("`{keyword}` needs `args` with {}", names.join(", ")),
        );
    }
    let expect = src.opt_object(obj, ptr, "expect");
    for problem in crate::expect::validate(&expect) {
        // Messages are prefixed with the key; point at that key when we can.
        let key = expect.keys().find(|k| problem.starts_with(k.as_str()));
        let at = match key {
            Some(k) => child(&child(ptr, "expect"), k),
            None => child(ptr, "expect"),
        };
        src.error(&at, format!("in `expect`: {problem}"));
    }
    let save = src.opt_object(obj, ptr, "save");
    for (name, path) in &save {
        let sptr = child(&child(ptr, "save"), name);
        match path {
            Value::String(_) => {}
            Value::Object(x) => src.known_fields(x, &sptr, &format::EXTRACT, "a `save` extraction"),
            other => src.error(
                &sptr,
                format!(
                    "`save.{name}` must be a JSONPath string such as \"$.body.id\", or \
                     {{\"regex\": ...}} / {{\"xpath\": ...}}, found {}",
                    kind(other)
                ),
            ),
        }
    }
    let retry = match obj.get("retry") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(t) if t >= 1 => Some(Retry {
                times: t.min(u32::MAX as u64) as u32,
                interval: std::time::Duration::from_secs(1),
            }),
            _ => {
                src.error(&child(ptr, "retry"), "`retry` must be at least 1 attempt");
                None
            }
        },
        Some(Value::Object(r)) => {
            let rptr = child(ptr, "retry");
            src.known_fields(r, &rptr, &format::RETRY, "`retry`");
            let times = match r.get("times") {
                Some(Value::Number(n)) if n.as_u64().is_some_and(|t| t >= 1) => {
                    n.as_u64().map_or(1, |t| t.min(u32::MAX as u64) as u32)
                }
                None => {
                    src.error(&rptr, "`retry` needs `times` (attempts, at least 1)");
                    1
                }
                Some(other) => {
                    src.error(
                        &child(&rptr, "times"),
                        format!("`times` must be a whole number ≥ 1, found {other}"),
                    );
                    1
                }
            };
            let interval = src
                .opt_duration(r, &rptr, "interval")
                .unwrap_or(std::time::Duration::from_secs(1));
            Some(Retry { times, interval })
        }
        Some(other) => {
            src.error(
                &child(ptr, "retry"),
                format!("`retry` must be an object like {{\"times\": 10, \"interval\": \"500ms\"}}, found {}", kind(other)),
            );
            None
        }
    };
    let timeout = src.opt_duration(obj, ptr, "timeout");
    let undo = match obj.get("undo") {
        None | Some(Value::Null) => None,
        Some(u) => {
            if !allow_undo {
                src.error(
                    &child(ptr, "undo"),
                    "an undo step cannot have an `undo` of its own",
                );
                None
            } else {
                step(src, u, &child(ptr, "undo"), catalog, false).map(Box::new)
            }
        }
    };
    let remark = src.opt_str(obj, ptr, "remark");
    let here = src.pos.nearest(ptr).unwrap_or_default();
    let at_key = |src: &Src<'_>, field: &str, map: &Map<String, Value>| -> Vec<(String, Pos)> {
        let fptr = child(ptr, field);
        map.keys()
            .map(|k| {
                let p = src.pos.key_or_value(&child(&fptr, k)).unwrap_or(here);
                (k.clone(), p)
            })
            .collect()
    };
    // Placeholders are parsed here, once; a malformed one is a load error
    // at its field.
    let compile = |src: &mut Src<'_>, fptr: String, v: &Value| -> Template {
        match Template::compile(v) {
            Ok(t) => t,
            Err(e) => {
                src.error(&fptr, e.message);
                Template::Const(Value::Null)
            }
        }
    };
    let mut code = StepCode {
        keyword_id: catalog.id(&keyword),
        args: Some(compile(src, child(ptr, "args"), &args)),
        saves_result: spec.is_some_and(|s| s.saves_result),
        header_args: spec
            .map(|s| {
                s.args
                    .iter()
                    .filter(|a| a.headers)
                    .map(|a| a.name.clone())
                    .collect()
            })
            .unwrap_or_default(),
        ..StepCode::default()
    };
    // Header names may hold placeholders too (`{"X-${name}": "v"}`).
    for arg in &code.header_args {
        if let Some(Value::Object(h)) = args.get(arg) {
            let mut keys = Vec::new();
            for k in h.keys().filter(|k| k.contains("${")) {
                match Template::compile_str(k) {
                    Ok(t) => keys.push((k.clone(), t)),
                    Err(e) => src.error_key(
                        &child(&child(&child(ptr, "args"), arg), k),
                        format!("header name `{k}`: {}", e.message),
                        None,
                    ),
                }
            }
            if !keys.is_empty() {
                code.header_keys.push((arg.clone(), keys));
            }
        }
    }
    for (k, v) in &expect {
        let value = compile(src, child(&child(ptr, "expect"), k), v);
        // A malformed key was reported by `expect::validate` above.
        if let Ok(path) = JsonPath::parse(k) {
            // A value without placeholders is compiled once, here; one that
            // does not compile was reported by `expect::validate` above.
            let matcher = value
                .as_const()
                .and_then(|v| atf_expect::Matcher::compile(v).ok());
            code.expect.push(ExpectCode {
                key: k.clone(),
                path,
                value,
                matcher,
            });
        }
    }
    for (name, v) in &save {
        let sptr = child(&child(ptr, "save"), name);
        let (v, extract) = match v {
            Value::Object(x) => match extraction(src, &sptr, name, x) {
                Some((from, extract)) => (from, Some(extract)),
                None => continue,
            },
            other => (other, None),
        };
        let Value::String(text) = v else { continue };
        let path = if text.contains("${") {
            SavePath::Template(compile(src, sptr, v))
        } else {
            match JsonPath::parse(text) {
                Ok(p) => SavePath::Fixed(p),
                Err(e) => {
                    src.error(&sptr, format!("`save.{name}`: {e}"));
                    continue;
                }
            }
        };
        code.save.push(SaveCode {
            name: name.clone(),
            path,
            extract,
        });
    }
    code.find_result_fields();
    let empty = Map::new();
    let at = StepAt {
        file: Arc::from(src.file.to_string_lossy().as_ref()),
        step: here,
        keyword: src.pos.nearest(&child(ptr, "keyword")).unwrap_or(here),
        args: src.pos.value(&child(ptr, "args")).unwrap_or(here),
        arg_keys: at_key(src, "args", args.as_object().unwrap_or(&empty)),
        timeout: src.pos.value(&child(ptr, "timeout")),
        expect: at_key(src, "expect", &expect),
        save: at_key(src, "save", &save),
    };
    Some(Step {
        keyword,
        remark,
        args,
        expect,
        save,
        retry,
        timeout,
        undo,
        line,
        at: Arc::new(at),
        code: Arc::new(code),
    })
}

/// Reads a list of steps.
pub fn steps(
    src: &mut Src<'_>,
    obj: &Map<String, Value>,
    ptr: &str,
    field: &str,
    catalog: &Catalog,
) -> Vec<Step> {
    let fptr = child(ptr, field);
    match obj.get(field) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| step(src, v, &format!("{fptr}/{i}"), catalog, true))
            .collect(),
        Some(other) => {
            src.error(
                &fptr,
                format!("`{field}` must be a list of steps, found {}", kind(other)),
            );
            Vec::new()
        }
    }
}

fn step_sets(src: &mut Src<'_>, obj: &Map<String, Value>, catalog: &Catalog) -> Vec<Vec<Step>> {
    let Some(Value::Array(items)) = obj.get("steps") else {
        let one = steps(src, obj, "", "steps", catalog);
        return if one.is_empty() {
            Vec::new()
        } else {
            vec![one]
        };
    };
    let arrays = items.iter().filter(|v| v.is_array()).count();
    if arrays == 0 {
        let one = steps(src, obj, "", "steps", catalog);
        return if one.is_empty() {
            Vec::new()
        } else {
            vec![one]
        };
    }
    if arrays != items.len() {
        src.error(
            "/steps",
            "`steps` must be a list of steps, or a list of lists of steps (parallel step sets), not a mix",
        );
        return Vec::new();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, set)| {
            let sptr = format!("/steps/{i}");
            match set {
                Value::Array(list) => list
                    .iter()
                    .enumerate()
                    .filter_map(|(j, v)| step(src, v, &format!("{sptr}/{j}"), catalog, true))
                    .collect(),
                _ => Vec::new(),
            }
        })
        .collect()
}

/// Reads a case file's value. `file` is the path shown in reports.
pub fn case(
    src: &mut Src<'_>,
    value: &Value,
    path: &Path,
    file: &str,
    catalog: &Catalog,
    suites: Vec<Arc<Suite>>,
) -> Option<Case> {
    let obj = src.object(value, "", "a case file")?;
    src.known_fields(obj, "", &format::CASE, "a case");
    let default_name = path
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_end_matches(".case.json")
                .trim_end_matches(".json")
                .to_string()
        })
        .unwrap_or_default();
    let name = src.opt_str(obj, "", "name").unwrap_or(default_name);
    let data = match obj.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::Array(rows)) => {
            let mut out = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                match row {
                    Value::Object(m) => out.push(m.clone()),
                    other => src.error(
                        &format!("/data/{i}"),
                        format!("each `data` row must be an object, found {}", kind(other)),
                    ),
                }
            }
            Some(out)
        }
        Some(other) => {
            src.error(
                "/data",
                format!("`data` must be a list of objects, found {}", kind(other)),
            );
            None
        }
    };
    let vars = src.opt_object(obj, "", "vars");
    let var_lines = vars
        .keys()
        .map(|k| {
            let line = src
                .pos
                .key_or_value(&child("/vars", k))
                .map_or(0, |p| p.line);
            (k.clone(), line)
        })
        .collect();
    let weight = match obj.get("weight") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_f64().is_some_and(|w| w >= 0.0) => n.as_f64(),
        Some(other) => {
            src.error(
                "/weight",
                format!("`weight` must be a number of 0 or more, found {other}"),
            );
            None
        }
    };
    let case = Case {
        name,
        path: path.to_path_buf(),
        file: file.to_string(),
        remark: src.opt_str(obj, "", "remark"),
        tags: src.str_list(obj, "", "tags"),
        vars: vars.into(),
        data: data.map(|rows| rows.into_iter().map(crate::model::Vars::new).collect()),
        timeout: src.opt_duration(obj, "", "timeout"),
        locks: src.str_list(obj, "", "locks"),
        weight,
        matrix: crate::matrix::case_field(src, obj),
        prepare: steps(src, obj, "", "prepare", catalog),
        steps: step_sets(src, obj, catalog),
        cleanup: steps(src, obj, "", "cleanup", catalog),
        suites,
        var_lines,
    };
    Some(case)
}

/// Reads a `suite.json` value.
pub fn suite(
    src: &mut Src<'_>,
    value: &Value,
    dir: &Path,
    file: &str,
    catalog: &Catalog,
) -> Option<Suite> {
    let obj = src.object(value, "", "a suite file")?;
    src.known_fields(obj, "", &format::SUITE, "a suite file");
    Some(Suite {
        dir: dir.to_path_buf(),
        file: file.to_string(),
        vars: src.opt_object(obj, "", "vars").into(),
        prepare: steps(src, obj, "", "prepare", catalog),
        cleanup: steps(src, obj, "", "cleanup", catalog),
    })
}

/// The path (default `$.body`) and the compiled extraction of a `save`
/// object; `None` (with the error reported) when it is malformed.
fn extraction<'v>(
    src: &mut Src<'_>,
    ptr: &str,
    name: &str,
    x: &'v Map<String, Value>,
) -> Option<(&'v Value, Extract)> {
    let from = match x.get("from") {
        None => None,
        Some(v @ Value::String(_)) => Some(v),
        Some(other) => {
            src.error(
                &child(ptr, "from"),
                format!(
                    "`save.{name}.from` must be a JSONPath string, found {}",
                    kind(other)
                ),
            );
            return None;
        }
    };
    let text = |key: &str, src: &mut Src<'_>| match x.get(key) {
        None => None,
        Some(Value::String(s)) if !s.contains("${") => Some(s.clone()),
        Some(Value::String(_)) => {
            src.error(
                &child(ptr, key),
                format!("`save.{name}.{key}` cannot hold a placeholder"),
            );
            None
        }
        Some(other) => {
            src.error(
                &child(ptr, key),
                format!(
                    "`save.{name}.{key}` must be a string, found {}",
                    kind(other)
                ),
            );
            None
        }
    };
    let extract = match (x.contains_key("regex"), x.contains_key("xpath")) {
        (true, false) => {
            let source = text("regex", src)?;
            match atf_expect::matchers::shared_regex(&source) {
                Ok(r) => Extract::Regex(r),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or_default().trim();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    src.error(
                        &child(ptr, "regex"),
                        format!("`save.{name}.regex` does not compile: {why}"),
                    );
                    return None;
                }
            }
        }
        (false, true) => {
            let source = text("xpath", src)?;
            match atf_expect::xpath::XPath::compile(&source) {
                Ok(x) => Extract::Xpath(x),
                Err(e) => {
                    src.error(&child(ptr, "xpath"), format!("`save.{name}`: {e}"));
                    return None;
                }
            }
        }
        _ => {
            src.error(
                ptr,
                format!("`save.{name}` needs one of `regex` and `xpath`"),
            );
            return None;
        }
    };
    Some((from.unwrap_or(&DEFAULT_FROM), extract))
}

/// Where a `save` extraction reads by default.
static DEFAULT_FROM: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::String("$.body".into()));
