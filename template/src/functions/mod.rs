//! The functions placeholders can call, one family per file: [`time`]
//! (`now`, `timestamp`, `timestamp_ms`), [`random`] (`uuid`, `random_int`,
//! `random_str`), [`crypto`] (encodings, digests, HMAC and AES) and [`data`]
//! (`jsonpath`, `json`, `parse_json`, `file`, `len`, `upper`, `lower`,
//! `concat`) and [`sql`] (`ident`, `raw`: placeholders allowed in SQL text).
//!
//! Each function is a plain Rust `fn` taking its evaluated arguments; the
//! parser checks the name and the number of arguments before anything runs,
//! so `atf check` reports both. A function's error is a short message that
//! the evaluator prefixes with the placeholder and the function's name.
//! Functions that take text also accept numbers and booleans (rendered as
//! text); `null`, arrays and objects are refused with a message naming the
//! argument.

mod crypto;
mod data;
mod random;
pub(crate) mod sql;
mod time;

use std::path::Path;

use serde_json::Value;

/// What a function may use besides its arguments.
pub(crate) struct Context<'a> {
    /// The folder of the case file, for `file(...)`.
    pub base_dir: &'a Path,
}

/// The Rust side of a placeholder function.
pub(crate) type Call = fn(&Context<'_>, &[Value]) -> Result<Value, String>;

/// One placeholder function.
#[derive(Debug)]
pub(crate) struct Function {
    /// The name used in placeholders.
    pub name: &'static str,
    /// How it is called, for messages: `now([format], [offset])`.
    pub signature: &'static str,
    /// The fewest arguments it takes.
    pub min_args: usize,
    /// The most arguments it takes; `None` for any number.
    pub max_args: Option<usize>,
    /// The implementation; it may assume the argument count is valid.
    pub call: Call,
}

impl Function {
    /// An error message when `count` arguments do not fit, else `None`.
    pub(crate) fn arity_error(&self, count: usize) -> Option<String> {
        let fits = count >= self.min_args && self.max_args.is_none_or(|max| count <= max);
        if fits {
            return None;
        }
        let wanted = match self.max_args {
            Some(max) if max == self.min_args => format!("{} {}", max, plural(max, "argument")),
            Some(max) => format!("{} to {} arguments", self.min_args, max),
            None => format!(
                "at least {} {}",
                self.min_args,
                plural(self.min_args, "argument")
            ),
        };
        Some(format!(
            "`{}` takes {wanted}, got {count}: {}",
            self.name, self.signature
        ))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

/// Every function, family by family.
fn all() -> impl Iterator<Item = &'static Function> {
    time::FUNCTIONS
        .iter()
        .chain(random::FUNCTIONS)
        .chain(crypto::FUNCTIONS)
        .chain(data::FUNCTIONS)
        .chain(sql::FUNCTIONS)
}

/// The function called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Function> {
    all().find(|f| f.name == name)
}

/// Every function's name, sorted.
pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = all().map(|f| f.name).collect();
    names.sort_unstable();
    names
}

/// Every function's signature (`now([format], [offset])`), sorted by name.
pub fn function_signatures() -> Vec<&'static str> {
    let mut fns: Vec<&'static Function> = all().collect();
    fns.sort_unstable_by_key(|f| f.name);
    fns.into_iter().map(|f| f.signature).collect()
}

/// The message for a call to an unknown function: the nearest known name
/// when one is close, then every known name.
pub(crate) fn unknown_function_message(name: &str, placeholder: &str) -> String {
    let names = function_names();
    let mut msg = format!("unknown function `{name}` in `{placeholder}`");
    if let Some(known) = nearest(name, names.iter().copied()) {
        msg.push_str(&format!("; did you mean `{known}`?"));
    }
    msg.push_str("; known functions: ");
    msg.push_str(&names.join(", "));
    msg
}

/// The candidate closest to `name` by edit distance, when it is close
/// enough to be a likely typo: at most one edit per three characters.
pub(crate) fn nearest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit && *d < len)
        .min()
        .map(|(_, c)| c)
}

/// A JSON type's name with its article, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Argument `i`, or `Null` when missing (the arity was checked before).
fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i).unwrap_or(&Value::Null)
}

/// Argument `i` (called `what`) as text: strings as they are, numbers and
/// booleans rendered.
pub(super) fn text(args: &[Value], i: usize, what: &str) -> Result<String, String> {
    match arg(args, i) {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "argument {} ({what}) must be text, got {}",
            i + 1,
            type_name(other)
        )),
    }
}

/// Optional argument `i` as text.
pub(super) fn opt_text(args: &[Value], i: usize, what: &str) -> Result<Option<String>, String> {
    if i < args.len() {
        text(args, i, what).map(Some)
    } else {
        Ok(None)
    }
}

/// Argument `i` (called `what`) as a whole number: an integer, a float with
/// no fraction, or text holding an integer.
pub(super) fn int(args: &[Value], i: usize, what: &str) -> Result<i64, String> {
    let v = arg(args, i);
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64().and_then(|f| {
                // The bounds are exact powers of two, so `as` cannot saturate.
                (f.fract() == 0.0
                    && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
                .then_some(f as i64)
            })
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| {
        format!(
            "argument {} ({what}) must be a whole number, got {}",
            i + 1,
            describe(v)
        )
    })
}

/// A value for messages: short values shown, long ones by type.
pub(crate) fn describe(v: &Value) -> String {
    if v.is_null() {
        return "null".to_string();
    }
    let shown = serde_json::to_string(v).unwrap_or_default();
    if shown.chars().count() <= 40 {
        format!("{} {shown}", type_name(v))
    } else {
        type_name(v).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_name_is_unique_and_sorted_lists_agree() {
        let names = function_names();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert_eq!(names.len(), 25);
        assert_eq!(names.first(), Some(&"aes_decrypt"));
        let sigs = function_signatures();
        assert_eq!(sigs.len(), names.len());
        for (name, sig) in names.iter().zip(&sigs) {
            assert!(sig.starts_with(&format!("{name}(")), "{sig}");
        }
    }

    #[test]
    fn find_knows_every_family() {
        for name in ["now", "uuid", "md5", "jsonpath", "concat", "ident", "raw"] {
            assert_eq!(find(name).map(|f| f.name), Some(name));
        }
        assert!(find("md6").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn arity_messages() {
        let md5 = find("md5").unwrap();
        assert_eq!(md5.arity_error(1), None);
        assert_eq!(
            md5.arity_error(2).unwrap(),
            "`md5` takes 1 argument, got 2: md5(x)"
        );
        let now = find("now").unwrap();
        assert_eq!(now.arity_error(0), None);
        assert_eq!(now.arity_error(2), None);
        assert_eq!(
            now.arity_error(3).unwrap(),
            "`now` takes 0 to 2 arguments, got 3: now([format], [offset])"
        );
        let concat = find("concat").unwrap();
        assert_eq!(concat.arity_error(7), None);
        assert_eq!(
            concat.arity_error(0).unwrap(),
            "`concat` takes at least 1 argument, got 0: concat(a, b, ...)"
        );
        let uuid = find("uuid").unwrap();
        assert_eq!(
            uuid.arity_error(1).unwrap(),
            "`uuid` takes 0 arguments, got 1: uuid()"
        );
    }

    #[test]
    fn unknown_function_suggests_the_nearest() {
        let msg = unknown_function_message("md6", "${md6(x)}");
        assert!(
            msg.starts_with("unknown function `md6` in `${md6(x)}`; did you mean `md5`?; known functions: aes_decrypt, aes_encrypt, base64,"),
            "{msg}"
        );
        assert!(unknown_function_message("nwo", "${nwo()}").contains("did you mean `now`?"));
        assert!(unknown_function_message("sha265", "x").contains("did you mean `sha256`?"));
        assert!(!unknown_function_message("x", "x").contains("did you mean"));
        let msg = unknown_function_message("frobnicate", "${frobnicate()}");
        assert!(!msg.contains("did you mean"), "{msg}");
        assert!(msg.ends_with("upper, url_encode, uuid"), "{msg}");
    }

    #[test]
    fn text_accepts_scalars_only() {
        let args = [
            json!("a"),
            json!(12),
            json!(1.5),
            json!(true),
            json!(null),
            json!([1]),
            json!({}),
        ];
        assert_eq!(text(&args, 0, "x").unwrap(), "a");
        assert_eq!(text(&args, 1, "x").unwrap(), "12");
        assert_eq!(text(&args, 2, "x").unwrap(), "1.5");
        assert_eq!(text(&args, 3, "x").unwrap(), "true");
        assert_eq!(
            text(&args, 4, "x").unwrap_err(),
            "argument 5 (x) must be text, got null"
        );
        assert_eq!(
            text(&args, 5, "x").unwrap_err(),
            "argument 6 (x) must be text, got an array"
        );
        assert_eq!(
            text(&args, 6, "key").unwrap_err(),
            "argument 7 (key) must be text, got an object"
        );
        assert_eq!(opt_text(&args, 9, "x").unwrap(), None);
        assert_eq!(opt_text(&args, 0, "x").unwrap(), Some("a".into()));
    }

    #[test]
    fn int_accepts_whole_numbers() {
        let args = [
            json!(5),
            json!(-3.0),
            json!(" 42 "),
            json!(1.5),
            json!("x"),
            json!(1e300),
            json!(null),
        ];
        assert_eq!(int(&args, 0, "n").unwrap(), 5);
        assert_eq!(int(&args, 1, "n").unwrap(), -3);
        assert_eq!(int(&args, 2, "n").unwrap(), 42);
        assert_eq!(
            int(&args, 3, "n").unwrap_err(),
            "argument 4 (n) must be a whole number, got a number 1.5"
        );
        assert_eq!(
            int(&args, 4, "n").unwrap_err(),
            "argument 5 (n) must be a whole number, got a string \"x\""
        );
        assert!(int(&args, 5, "n").is_err());
        assert_eq!(
            int(&args, 6, "n").unwrap_err(),
            "argument 7 (n) must be a whole number, got null"
        );
    }
}
