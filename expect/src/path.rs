//! Expectation keys and `save` paths: RFC 9535 JSONPaths (`$.a.b[0]`) or
//! bare names (`status`, `body.data.id`, `content-type`).
//!
//! A key not starting with `$` is read as `$.` + key, and when that is not
//! a JSONPath, as the single member name `$['key']`. Plain paths (only
//! member names and indexes) select one value or nothing; any other path
//! (wildcard, filter, slice, union, descendant) selects a list. A path is
//! parsed once into a [`JsonPath`] (by `jsonpath-rust`); plain paths are
//! then walked member by member, list paths run the parsed query.

use std::panic::{AssertUnwindSafe, catch_unwind};

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

/// What a path selected in a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection<'a> {
    /// A plain path found this value.
    One(&'a Value),
    /// A plain path found nothing.
    Nothing,
    /// A list path (wildcard, filter, slice, union, descendant) found these,
    /// in document order; possibly none.
    List(Vec<&'a Value>),
}

impl Selection<'_> {
    /// The selection as an owned value: `None` for [`Selection::Nothing`], an
    /// array for a list.
    pub fn to_value(&self) -> Option<Value> {
        match self {
            Selection::One(v) => Some((*v).clone()),
            Selection::Nothing => None,
            Selection::List(vs) => Some(Value::Array(vs.iter().map(|v| (*v).clone()).collect())),
        }
    }
}

/// One step of a plain path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Name(String),
    Index(i64),
}

/// A parsed path.
#[derive(Debug)]
enum Plan {
    Plain(Vec<Step>),
    List(JpQuery),
}

/// A JSONPath (or bare key) parsed once; selecting with it parses nothing.
#[derive(Debug)]
pub struct JsonPath {
    text: String,
    plan: Plan,
}

impl JsonPath {
    /// Parses `path`; `Err` says why it is malformed.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        Ok(JsonPath {
            text: path.to_string(),
            plan: make_plan(path)?,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it selects a list (wildcard, filter, slice, union, descent).
    pub fn is_list(&self) -> bool {
        matches!(self.plan, Plan::List(_))
    }

    /// The top-level member it starts with (`status` of `$.status` or
    /// `$.headers.etag` alike); `None` when it reads the whole document or
    /// starts with anything else (an index, a wildcard, a descent).
    pub fn root_member(&self) -> Option<&str> {
        match &self.plan {
            Plan::Plain(steps) => match steps.first() {
                Some(Step::Name(n)) => Some(n),
                _ => None,
            },
            Plan::List(_) => None,
        }
    }

    /// What it points at in `root`.
    pub fn select<'a>(&self, root: &'a Value) -> Result<Selection<'a>, String> {
        match &self.plan {
            Plan::Plain(steps) => {
                Ok(walk_steps(root, steps).map_or(Selection::Nothing, Selection::One))
            }
            Plan::List(query) => run_query(query, root, &self.text).map(Selection::List),
        }
    }
}

/// Selects what `path` points at in `root` (parsing it first: for paths
/// known only at run time). `Err` for a malformed path.
pub fn select<'a>(root: &'a Value, path: &str) -> Result<Selection<'a>, String> {
    JsonPath::parse(path)?.select(root)
}

/// Whether `path` is a list path (`Ok(false)` for a plain one); `Err` when
/// it is malformed.
pub fn is_list(path: &str) -> Result<bool, String> {
    Ok(JsonPath::parse(path)?.is_list())
}

/// RFC 9535 index selection: negative indexes count from the end.
fn index(v: &Value, i: i64) -> Option<&Value> {
    let arr = v.as_array()?;
    let at = if i >= 0 {
        usize::try_from(i).ok()?
    } else {
        arr.len()
            .checked_sub(usize::try_from(i.unsigned_abs()).ok()?)?
    };
    arr.get(at)
}

fn walk_steps<'a>(root: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(root, |v, s| match s {
        Step::Name(n) => v.as_object()?.get(n),
        Step::Index(i) => index(v, *i),
    })
}

fn parse(path: &str) -> Result<JpQuery, String> {
    let first = parse_as_is(path);
    match (&first, widen_literals(path)) {
        (Err(_), Some(wide)) => parse_as_is(&wide).or(first),
        _ => first,
    }
}

fn parse_as_is(path: &str) -> Result<JpQuery, String> {
    match catch_unwind(|| parse_json_path(path)) {
        Ok(Ok(q)) => Ok(q),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the JSONPath parser failed on it".to_owned()),
    }
}

/// `path` with each whole-number literal beyond 64 bits (outside quotes)
/// written as a float (`1.2345678901234568e29`), which the parser takes:
/// such literals compare as numbers, by value, as JSON numbers that large
/// are read (a 64-bit float). `None` when there is none.
fn widen_literals(path: &str) -> Option<String> {
    let mut out = String::with_capacity(path.len() + 8);
    let mut changed = false;
    let mut quote: Option<char> = None;
    let mut chars = path.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            continue;
        }
        let starts_number = c.is_ascii_digit()
            && !path[..i]
                .chars()
                .next_back()
                .is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '.');
        if !starts_number {
            out.push(c);
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            end = j + d.len_utf8();
            chars.next();
        }
        let digits = &path[i..end];
        let followed = path[end..].starts_with(['.', 'e', 'E']);
        match digits.parse::<f64>() {
            Ok(f) if !followed && digits.parse::<i64>().is_err() => {
                out.push_str(&format!("{f:e}"));
                changed = true;
            }
            _ => out.push_str(digits),
        }
    }
    changed.then_some(out)
}

/// Parses `path` (or a bare key) and sorts it into plain or list.
fn make_plan(path: &str) -> Result<Plan, String> {
    match plain_names(path) {
        Some(steps) => Ok(Plan::Plain(steps)),
        None => make_plan_parsed(path),
    }
}

/// The steps of a path made only of member-name shorthands (`$.body.id`,
/// `status`, `$`), read without the JSONPath parser: most paths in case
/// files are such, and the general parser costs microseconds a path, which
/// a load of 10,000 cases feels. `None` for anything else (brackets,
/// wildcards, filters, non-ASCII names, a name starting with a digit),
/// which the parser reads. The test `shorthand_paths_read_as_the_parser_reads_them`
/// holds the two to the same result.
fn plain_names(path: &str) -> Option<Vec<Step>> {
    let rest = match path.strip_prefix('$') {
        Some("") => return Some(Vec::new()),
        Some(r) => r.strip_prefix('.')?,
        None => path,
    };
    rest.split('.')
        .map(|seg| {
            let mut chars = seg.chars();
            let first = chars.next()?;
            let name = (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            name.then(|| Step::Name(seg.to_owned()))
        })
        .collect()
}

fn make_plan_parsed(path: &str) -> Result<Plan, String> {
    let query = if path.starts_with('$') {
        match parse(path) {
            Ok(q) => q,
            // `$.headers.content-type`: RFC 9535 wants `['content-type']`,
            // but testers write dots; read such parts as member names.
            Err(e) => match path
                .strip_prefix("$.")
                .and_then(|rest| compose_dotted(rest, true))
            {
                Some(q) => q,
                None => return Err(format!("bad JSONPath: {}", one_line(&e))),
            },
        }
    } else {
        parse_bare(path)
    };
    let mut steps = Vec::with_capacity(query.segments.len());
    for seg in &query.segments {
        match seg {
            Segment::Selector(Selector::Name(n)) => steps.push(Step::Name(n.clone())),
            Segment::Selector(Selector::Index(i)) => steps.push(Step::Index(*i)),
            _ => return Ok(Plan::List(query)),
        }
    }
    Ok(Plan::Plain(steps))
}

/// A bare key: `$.` + key when that parses; otherwise its dot-separated
/// parts (dots inside brackets or quotes do not separate) each taken as
/// `.part` when that parses and as the member name `['part']` when not
/// (`headers.content-type` is `$.headers['content-type']`); failing that,
/// the whole key as one member name. So a bare key is never malformed.
fn parse_bare(key: &str) -> JpQuery {
    if let Ok(q) = parse(&format!("$.{key}")) {
        return q;
    }
    let whole = || JpQuery::new(vec![Segment::name(key)]);
    if split_dots(key).len() < 2 {
        return whole();
    }
    compose_dotted(key, false).unwrap_or_else(whole)
}

/// `a.b-c.d` read part by part: each part as `.part` when that parses and
/// as the member name `['part']` when not. `None` when that does not parse,
/// or, when `strict`, when such a part is more than letters, digits, `_` and
/// `-` (so that a broken path like `$.a[` stays an error).
fn compose_dotted(key: &str, strict: bool) -> Option<JpQuery> {
    let parts = split_dots(key);
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut composed = String::from("$");
    for part in parts {
        if parse(&format!("$.{part}")).is_ok() {
            composed.push('.');
            composed.push_str(part);
        } else {
            if strict
                && !part
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            composed.push('[');
            composed.push_str(&quote(part));
            composed.push(']');
        }
    }
    parse(&composed).ok()
}

/// `key` split at the dots outside brackets and quotes.
fn split_dots(key: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut escaped, mut start) = (0usize, None, false, 0);
    for (i, c) in key.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                parts.push(&key[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&key[start..]);
    parts
}

/// A JSONPath single-quoted string literal denoting `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The parser's (multi-line, pest-style) message folded into one line:
/// "expected selector at column 5".
fn one_line(msg: &str) -> String {
    let expected = msg.lines().find_map(|l| l.trim().strip_prefix("= "));
    let Some(why) = expected else {
        return msg.split_whitespace().collect::<Vec<_>>().join(" ");
    };
    let at = msg
        .lines()
        .find_map(|l| l.split_once("--> ").map(|(_, pos)| pos.trim()))
        .map(|pos| match pos.split_once(':') {
            Some(("1", col)) => format!(" at column {col}"),
            _ => format!(" at {pos}"),
        })
        .unwrap_or_default();
    format!("{why}{at}")
}

fn run_query<'a>(query: &JpQuery, root: &'a Value, path: &str) -> Result<Vec<&'a Value>, String> {
    match catch_unwind(AssertUnwindSafe(|| js_path_process(query, root))) {
        Ok(Ok(found)) => Ok(found.into_iter().map(|r| r.val).collect()),
        Ok(Err(e)) => Err(format!("JSONPath {path} failed: {e}")),
        Err(_) => Err(format!("JSONPath {path} failed")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shorthand_paths_read_as_the_parser_reads_them() {
        for p in [
            "$",
            "$.a",
            "$.body.echo.n",
            "$.true",
            "$.null",
            "$._x1.y_2",
            "status",
            "headers.x_y",
            "body.data.id",
            "A.B",
        ] {
            let fast = plain_names(p).unwrap_or_else(|| panic!("{p}: not read as shorthand"));
            match make_plan_parsed(p) {
                Ok(Plan::Plain(slow)) => assert_eq!(fast, slow, "{p}"),
                other => panic!("{p}: the parser reads {other:?}"),
            }
        }
        // Left to the parser: anything but plain ASCII member names.
        for p in [
            "", "$.", "$..a", "$.a..b", "$.a[0]", "$.*", "$.1a", "$.a-b", "a-b", "$['a']", "$.é",
            "$ .a", "a.", ".a", "$.a.",
        ] {
            assert!(plain_names(p).is_none(), "{p}");
        }
    }

    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "status": 200,
            "content-type": "application/json",
            "0": "zero",
            "a b": 1,
            "x'y": 2,
            "body": {"data": {"id": 7, "tags": ["a", "b", "c"], "nil": null},
                     "items": [{"id": 1, "n": "x"}, {"id": 3, "n": "y"}, {"id": 3, "n": "z"}]},
            "ü": "umlaut"
        })
    }

    fn one(path: &str) -> Value {
        let d = doc();
        match select(&d, path).unwrap() {
            Selection::One(v) => v.clone(),
            other => panic!("{path}: {other:?}"),
        }
    }

    fn list(path: &str) -> Vec<Value> {
        let d = doc();
        match select(&d, path).unwrap() {
            Selection::List(vs) => vs.into_iter().cloned().collect(),
            other => panic!("{path}: {other:?}"),
        }
    }

    fn nothing(path: &str) {
        let d = doc();
        assert_eq!(select(&d, path).unwrap(), Selection::Nothing, "{path}");
    }

    #[test]
    fn plain_paths() {
        assert_eq!(one("$"), doc());
        assert_eq!(one("$.status"), json!(200));
        assert_eq!(one("$.body.data.id"), json!(7));
        assert_eq!(one("$.body.data.tags[0]"), json!("a"));
        assert_eq!(one("$.body.data.tags[-1]"), json!("c"));
        assert_eq!(one("$['content-type']"), json!("application/json"));
        assert_eq!(one("$[\"a b\"]"), json!(1));
        assert_eq!(one("$.body['data'][\"tags\"][1]"), json!("b"));
        assert_eq!(one("$.body.data.nil"), Value::Null);
        assert!(!JsonPath::parse("$.body.data.tags[2]").unwrap().is_list());
        assert!(JsonPath::parse("$.body.data.tags[*]").unwrap().is_list());
    }

    #[test]
    fn root_members() {
        let root = |p: &str| JsonPath::parse(p).unwrap().root_member().map(str::to_owned);
        assert_eq!(root("$.status").as_deref(), Some("status"));
        assert_eq!(root("$.headers.content-type").as_deref(), Some("headers"));
        assert_eq!(root("$['body'].id").as_deref(), Some("body"));
        assert_eq!(root("body.items[1].n").as_deref(), Some("body"));
        assert_eq!(root("$"), None);
        assert_eq!(root("$..id"), None);
        assert_eq!(root("$[*]"), None);
    }

    #[test]
    fn bare_names() {
        assert_eq!(one("status"), json!(200));
        assert_eq!(one("body.data.id"), json!(7));
        assert_eq!(one("body.items[1].n"), json!("y"));
        assert_eq!(one("content-type"), json!("application/json"));
        assert_eq!(one("0"), json!("zero"));
        assert_eq!(one("a b"), json!(1));
        assert_eq!(one("x'y"), json!(2));
        assert_eq!(one("ü"), json!("umlaut"));
        nothing("missing");
        nothing("body.nope.deeper");
    }

    #[test]
    fn dotted_bare_keys_with_odd_names() {
        let d = json!({
            "headers": {"content-type": "text/plain", "x.y": 1},
            "items": [{"sku-id": "A"}, {"sku-id": "B"}],
            "a": {"b-c": {"d": 4}}
        });
        assert_eq!(
            select(&d, "headers.content-type").unwrap(),
            Selection::One(&json!("text/plain"))
        );
        assert_eq!(select(&d, "a.b-c.d").unwrap(), Selection::One(&json!(4)));
        assert_eq!(
            select(&d, "items[1].sku-id").unwrap(),
            Selection::One(&json!("B"))
        );
        assert_eq!(
            select(&d, "items[*].sku-id").unwrap(),
            Selection::List(vec![&json!("A"), &json!("B")])
        );
        assert_eq!(
            select(&d, "items[?@['sku-id'] == 'A'].sku-id").unwrap(),
            Selection::List(vec![&json!("A")])
        );
        assert_eq!(
            select(&d, "headers['x.y']").unwrap(),
            Selection::One(&json!(1))
        );
        assert_eq!(
            split_dots("a.b['c.d'].e[?@.f == \"g.h\"]"),
            vec!["a", "b['c.d']", "e[?@.f == \"g.h\"]"]
        );
    }

    #[test]
    fn plain_paths_through_the_parser() {
        assert_eq!(one("$['x\\'y']"), json!(2));
        assert_eq!(one("$.ü"), json!("umlaut"));
        assert_eq!(one("$ .body .data .id"), json!(7));
        assert_eq!(one("$.body.data.tags[ 1 ]"), json!("b"));
        assert!(!is_list("$['x\\'y']").unwrap());
    }

    #[test]
    fn missing_plain_paths() {
        nothing("$.nope");
        nothing("$.body.data.tags[3]");
        nothing("$.body.data.tags[-4]");
        nothing("$.status.deeper");
        nothing("$.body.data.tags.x");
        nothing("$.body.data[0]");
        nothing("$.body.data.nil.x");
    }

    #[test]
    fn list_paths() {
        assert_eq!(
            list("$.body.data.tags[*]"),
            vec![json!("a"), json!("b"), json!("c")]
        );
        assert_eq!(
            list("$.body.items[?@.id == 3].n"),
            vec![json!("y"), json!("z")]
        );
        assert_eq!(
            list("$.body.items[?@.id == 1]"),
            vec![json!({"id": 1, "n": "x"})]
        );
        assert_eq!(list("$.body.items[?@.id == 9]"), Vec::<Value>::new());
        assert_eq!(list("$.body.data.tags[0:2]"), vec![json!("a"), json!("b")]);
        assert_eq!(list("$.body.data.tags[0,2]"), vec![json!("a"), json!("c")]);
        assert_eq!(list("$..id"), vec![json!(7), json!(1), json!(3), json!(3)]);
        assert_eq!(list("$.nope[*]"), Vec::<Value>::new());
        assert_eq!(list("body.items[*].id"), vec![json!(1), json!(3), json!(3)]);
        assert!(is_list("$.a[*]").unwrap());
        assert!(is_list("$.a[?@.x]").unwrap());
        assert!(is_list("$.a[1:]").unwrap());
        assert!(is_list("$..a").unwrap());
        assert!(is_list("$['a','b']").unwrap());
        assert!(!is_list("$.a[0]").unwrap());
        assert!(!is_list("a.b").unwrap());
    }

    #[test]
    fn dollar_paths_with_dashed_names() {
        let doc = json!({"headers": {"content-type": "text/plain", "x-a": {"b-c": 1}}});
        assert_eq!(
            select(&doc, "$.headers.content-type").unwrap().to_value(),
            Some(json!("text/plain"))
        );
        assert_eq!(
            select(&doc, "$.headers.x-a.b-c").unwrap().to_value(),
            Some(json!(1))
        );
        assert!(!is_list("$.headers.content-type").unwrap());
        assert!(select(&doc, "$.a[").is_err());
    }

    #[test]
    fn malformed_paths() {
        let d = doc();
        for bad in [
            "$.a[",
            "$.",
            "$..",
            "$[01]",
            "$.a[?@.x ~= 1]",
            "$[-0]",
            "$x",
        ] {
            let err = select(&d, bad).unwrap_err();
            assert!(err.starts_with("bad JSONPath: expected "), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err}");
            assert!(!err.contains("-->"), "{err}");
            assert!(is_list(bad).is_err());
        }
    }

    #[test]
    fn malformed_path_message() {
        assert_eq!(
            select(&doc(), "$.a[").unwrap_err(),
            "bad JSONPath: expected selector at column 5"
        );
        // A bare key that is no JSONPath is a member name.
        let odd = json!({"a[": 1, "x-y[*]": 2, "q.": 3});
        assert_eq!(select(&odd, "a[").unwrap(), Selection::One(&json!(1)));
        assert_eq!(select(&odd, "x-y[*]").unwrap(), Selection::One(&json!(2)));
        assert_eq!(select(&odd, "q.").unwrap(), Selection::One(&json!(3)));
    }

    #[test]
    fn quote_round_trips() {
        for key in ["a'b", "back\\slash", "new\nline", "bell\u{7}", "[x]", "$y"] {
            let q = parse(&format!("$[{}]", quote(key))).unwrap();
            assert_eq!(
                q.segments,
                vec![Segment::Selector(Selector::Name(key.to_owned()))]
            );
        }
    }

    #[test]
    fn filter_literals_beyond_64_bits_compare_as_numbers() {
        let doc: Value = serde_json::from_str(
            r#"{"items": [{"id": 123456789012345678901234567890, "n": "a"}, {"id": 5, "n": "b"}]}"#,
        )
        .unwrap();
        let names = |p: &str| JsonPath::parse(p).unwrap().select(&doc).unwrap().to_value();
        assert_eq!(
            names("$.items[?@.id == 123456789012345678901234567890].n"),
            Some(json!(["a"]))
        );
        assert_eq!(
            names("$.items[?@.id > 18446744073709551616].n"),
            Some(json!(["a"]))
        );
        assert_eq!(
            names("$.items[?@.id < 99999999999999999999].n"),
            Some(json!(["b"]))
        );
        assert_eq!(
            names("$.items[?@.n == '123456789012345678901234567890'].n"),
            Some(json!([]))
        );
        assert_eq!(widen_literals("$.a[?@.x == 12]"), None);
        assert_eq!(
            widen_literals("$.a[?@.x == 99999999999999999999 && @.y == 'x99999999999999999999']"),
            Some("$.a[?@.x == 1e20 && @.y == 'x99999999999999999999']".to_string())
        );
    }
}
