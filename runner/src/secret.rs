//! Secrets never reach a report or a log.
//!
//! The [`Masker`] knows every secret value of the run — passwords inside
//! connection URLs, values of the variables named in the project's
//! `secrets`, `Authorization` and `Cookie` header values seen in steps (or
//! written in the case files, found before the run starts by [`prescan`])
//! — and replaces each of them with `***` wherever it turns up: in
//! arguments, results (a service echoing a token back), failures and error
//! messages; as text, inside object keys and as numbers; and in the forms a
//! secret takes on the way: JSON-escaped (`\"`, `\/`, `\\`, `\n`, once or
//! twice), URL-encoded (`%2F` or `%2f`, `+` for a space) and Base64
//! (standard and URL-safe, padded or not, also inside a longer Base64 text).
//! Every case report passes through it before any reporter sees it.
//!
//! All the forms of all the secrets go into one Aho-Corasick automaton
//! (leftmost-longest), rebuilt only when a new secret is learnt, so masking
//! a text is one pass over it however many secrets there are.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use atf_reports::{CaseReport, Event, RunReport, StepReport};
use base64::Engine as _;
use serde_json::{Map, Value};

/// The mask shown instead of a secret.
pub const MASK: &str = "***";

/// Header names whose values are always secret.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "proxy-authorization",
    "set-cookie",
];

/// Secrets shorter than this are not masked inside other text (a one-letter
/// "secret" would garble every report); they are still masked where they
/// are a whole value.
const MIN_INNER_LEN: usize = 3;

/// A Base64 fragment shorter than this is not masked inside a longer
/// Base64 text: it would match too much by chance.
const MIN_BASE64_FRAGMENT: usize = 8;

/// What the masker knows.
#[derive(Default)]
struct State {
    /// The secrets as declared or seen.
    secrets: HashSet<String>,
    /// Every form of every secret, for whole-value checks.
    whole: HashSet<String>,
    /// Every form at least [`MIN_INNER_LEN`] long, as one automaton.
    automaton: Option<Arc<AhoCorasick>>,
    /// Whether a form could be part of a number's text (digits, `.`, `-`,
    /// `+`, `e`): numbers need no look otherwise.
    numeric: bool,
    /// The names of the project's `secrets`: a var or saved value of one of
    /// these names becomes a secret when it gets its value at run time.
    names: HashSet<String>,
}

/// Replaces known secret values with `***`.
#[derive(Default)]
pub struct Masker {
    state: RwLock<State>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.read().secrets.len();
        write!(f, "Masker({n} secrets)")
    }
}

impl Masker {
    /// A masker with no secrets yet.
    pub fn new() -> Masker {
        Masker::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a secret value (empty values are ignored).
    pub fn add(&self, secret: &str) {
        self.add_all(std::iter::once(secret));
    }

    /// Adds several secrets, rebuilding the automaton once.
    pub fn add_all<'s>(&self, secrets: impl IntoIterator<Item = &'s str>) {
        let fresh: Vec<&str> = {
            let state = self.read();
            secrets
                .into_iter()
                .filter(|s| !s.is_empty() && *s != MASK && !state.secrets.contains(*s))
                .collect()
        };
        if fresh.is_empty() {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        for secret in fresh {
            if state.secrets.insert(secret.to_string()) {
                for form in forms(secret) {
                    state.whole.insert(form);
                }
            }
        }
        state.numeric = state.whole.iter().any(|f| {
            f.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        });
        let mut patterns: Vec<&String> = state
            .whole
            .iter()
            .filter(|f| f.len() >= MIN_INNER_LEN)
            .collect();
        // A stable order: the automaton does not depend on hashing.
        patterns.sort();
        state.automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .ok()
            .map(Arc::new);
    }

    /// Sets the names of the project's `secrets` (see [`Masker::learn_named`]).
    pub fn set_secret_names(&self, names: &[String]) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.names = names.iter().cloned().collect();
    }

    /// Learns `value` as a secret when `name` is one of the project's
    /// `secrets`: a var resolved at run time or a value a step saves (a
    /// token from a login response). Text and numbers as they are; a list
    /// or object by each text and number inside it.
    pub fn learn_named(&self, name: &str, value: &Value) {
        if !self.read().names.contains(name) {
            return;
        }
        let mut found = Vec::new();
        scalars(value, &mut found);
        self.add_all(found.iter().map(String::as_str));
    }

    /// [`Masker::learn_named`] for every var of a scope.
    pub fn learn_vars(&self, vars: &Map<String, Value>) {
        if self.read().names.is_empty() {
            return;
        }
        for (name, value) in vars {
            self.learn_named(name, value);
        }
    }

    /// Adds the password of a connection URL (`scheme://user:password@host`).
    pub fn add_url_password(&self, url: &str) {
        if let Some(pw) = url_password(url) {
            // The URL-decoded form may appear too.
            let decoded = percent_encoding::percent_decode_str(&pw)
                .decode_utf8()
                .map(|d| d.into_owned())
                .ok();
            self.add_all(std::iter::once(pw.as_str()).chain(decoded.as_deref()));
        }
    }

    /// Adds every secret found in a resources tree: URL passwords, and
    /// values of keys that name passwords or tokens.
    pub fn add_from_resources(&self, v: &Value) {
        match v {
            Value::String(s) => self.add_url_password(s),
            Value::Array(items) => items.iter().for_each(|i| self.add_from_resources(i)),
            Value::Object(m) => {
                for (k, v) in m {
                    let key = k.to_ascii_lowercase();
                    if is_secret_key(&key) || SECRET_HEADERS.contains(&key.as_str()) {
                        self.add_header_value(v);
                    }
                    self.add_from_resources(v);
                }
            }
            _ => {}
        }
    }

    /// Adds, from a step's resolved args, the `Authorization`/`Cookie`
    /// values of the args its keyword's spec marks as header maps
    /// (`header_args`; values given as text or as a list of texts) and the
    /// password of any URL given as a top-level argument.
    pub fn add_from_args(&self, args: &Value, header_args: &[String]) {
        let Value::Object(args) = args else {
            return;
        };
        for v in args.values() {
            if let Value::String(s) = v
                && s.contains("://")
            {
                self.add_url_password(s);
            }
        }
        for field in header_args {
            let Some(Value::Object(headers)) = args.get(field) else {
                continue;
            };
            for (k, v) in headers {
                if is_secret_header(k) {
                    self.add_header_value(v);
                }
            }
        }
    }

    /// Adds a secret header's value: the whole value, the credentials after
    /// the scheme (`Bearer abc` → `abc`), and each `name=value` of a cookie
    /// list (and its value, when it is long enough not to be a common word).
    pub fn add_header_value(&self, v: &Value) {
        let mut found: Vec<String> = Vec::new();
        let mut one = |s: &str| {
            let s = s.trim();
            found.push(s.to_string());
            if let Some((_, token)) = s.split_once(' ') {
                found.push(token.trim().to_string());
            }
            if s.contains('=') {
                for pair in s.split(';') {
                    let pair = pair.trim();
                    if let Some((_, value)) = pair.split_once('=') {
                        found.push(pair.to_string());
                        if value.len() >= 8 {
                            found.push(value.to_string());
                        }
                    }
                }
            }
        };
        match v {
            Value::String(s) => one(s),
            Value::Number(n) => one(&n.to_string()),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => one(s),
                        Value::Number(n) => one(&n.to_string()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        self.add_all(found.iter().map(String::as_str));
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.read().secrets.is_empty()
    }

    /// Masks one text.
    pub fn text(&self, s: &str) -> String {
        let state = self.read();
        mask_text(&state, s).unwrap_or_else(|| s.to_string())
    }

    /// Masks every string, key and number of a JSON value, and whole values
    /// of secret headers.
    pub fn value(&self, v: &mut Value) {
        let state = self.read();
        mask_value(&state, v);
    }

    /// Masks what an event carries (step and case reports, retry reasons,
    /// notices) in place, before any reporter sees it.
    pub fn event(&self, event: &mut Event) {
        match event {
            Event::StepFinished { report, .. } => self.step(report),
            Event::CaseFinished { report, .. } => self.case(report),
            Event::StepRetrying { reason, .. } => *reason = self.text(reason),
            Event::Notice { message, .. } => *message = self.text(message),
            _ => {}
        }
    }

    /// Masks every case and suite step of a run report in place.
    pub fn report(&self, report: &mut RunReport) {
        for c in &mut report.cases {
            self.case(c);
        }
        for s in &mut report.suites {
            for step in s.prepare.iter_mut().chain(s.cleanup.iter_mut()) {
                self.step(step);
            }
        }
    }

    /// Masks a case report in place.
    pub fn case(&self, case: &mut CaseReport) {
        if let Some(e) = &case.error {
            case.error = Some(self.text(e));
        }
        for s in case
            .prepare
            .iter_mut()
            .chain(case.steps.iter_mut())
            .chain(case.cleanup.iter_mut())
        {
            self.step(s);
        }
    }

    /// Masks a step report in place.
    pub fn step(&self, s: &mut StepReport) {
        let state = self.read();
        mask_value(&state, &mut s.args);
        mask_value(&state, &mut s.result);
        let text = |t: &mut Option<String>| {
            if let Some(masked) = t.as_deref().and_then(|e| mask_text(&state, e)) {
                *t = Some(masked);
            }
        };
        text(&mut s.error);
        text(&mut s.remark);
        for f in &mut s.failures {
            mask_value(&state, &mut f.expected);
            mask_value(&state, &mut f.actual);
            if let Some(m) = mask_text(&state, &f.message) {
                f.message = m;
            }
            if let Some(p) = mask_text(&state, &f.path) {
                f.path = p;
            }
        }
    }
}

/// Every form a secret may take in output, itself included.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    // JSON-escaped, once and twice (JSON text inside a JSON string), with
    // and without `\/`.
    let escaped = json_escape(secret);
    let twice = json_escape(&escaped);
    for e in [&escaped, &twice] {
        out.push(e.clone());
        out.push(e.replace('/', "\\/"));
    }
    // URL-encoded: upper- and lower-case hex, `+` or `%20` for a space.
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    for set in [KEEP, percent_encoding::NON_ALPHANUMERIC] {
        let upper = percent_encoding::utf8_percent_encode(secret, set).to_string();
        let lower = lower_hex(&upper);
        for u in [upper, lower] {
            out.push(u.replace("%20", "+"));
            out.push(u);
        }
    }
    // Base64 of the secret alone, and of the secret inside longer data.
    let bytes = secret.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        out.push(engine.encode(bytes));
    }
    for alphabet in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        out.push(alphabet.encode(bytes));
        for offset in 0..3usize {
            if let Some(fragment) = base64_fragment(alphabet, bytes, offset)
                && fragment.len() >= MIN_BASE64_FRAGMENT
            {
                out.push(fragment);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The Base64 characters that encode only `bytes` when they start
/// `offset` bytes into a longer Base64 text: the same whatever surrounds
/// them.
fn base64_fragment(
    engine: &base64::engine::GeneralPurpose,
    bytes: &[u8],
    offset: usize,
) -> Option<String> {
    let mut data = vec![0u8; offset];
    data.extend_from_slice(bytes);
    let encoded = engine.encode(&data);
    // Character i covers bits [6i, 6i+6); the secret covers bits
    // [8·offset, 8·(offset+len)).
    let start = (8 * offset).div_ceil(6);
    let end = (8 * (offset + bytes.len())) / 6;
    encoded.get(start..end).map(str::to_string)
}

/// A text as it appears inside a JSON string.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_string()
}

/// `%2F` → `%2f`.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex = 2;
            out.push(c);
        } else if hex > 0 {
            hex -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn is_secret_key(key: &str) -> bool {
    key.contains("password")
        || key.contains("passwd")
        || key == "sasl.password"
        || key.contains("secret")
        || key.ends_with("token")
}

fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// The masked text, or `None` when nothing in it is secret.
fn mask_text(state: &State, s: &str) -> Option<String> {
    if state.whole.contains(s) {
        return Some(MASK.to_string());
    }
    let ac = state.automaton.as_ref()?;
    let mut matches = ac.find_iter(s).peekable();
    matches.peek()?;
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for m in matches {
        out.push_str(&s[last..m.start()]);
        out.push_str(MASK);
        last = m.end();
    }
    out.push_str(&s[last..]);
    Some(out)
}

fn mask_value(state: &State, v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(masked) = mask_text(state, s) {
                *s = masked;
            }
        }
        Value::Number(n) if state.numeric => {
            if let Some(masked) = mask_text(state, &n.to_string()) {
                *v = Value::String(masked);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_value(state, i)),
        Value::Object(m) => {
            mask_keys(state, m);
            mask_header_map(m);
            for (_, v) in m.iter_mut() {
                mask_value(state, v);
            }
        }
        _ => {}
    }
}

/// Masks the keys of an object, keeping their order; two keys that mask
/// alike stay apart (`***`, `*** (2)`).
fn mask_keys(state: &State, m: &mut Map<String, Value>) {
    if !m.keys().any(|k| mask_text(state, k).is_some()) {
        return;
    }
    let old = std::mem::take(m);
    for (k, v) in old {
        let key = mask_text(state, &k).unwrap_or(k);
        let mut unique = key.clone();
        let mut n = 1;
        while m.contains_key(&unique) {
            n += 1;
            unique = format!("{key} ({n})");
        }
        m.insert(unique, v);
    }
}

/// Secret headers are masked whole, as text or as a list of texts.
fn mask_header_map(m: &mut Map<String, Value>) {
    for (k, v) in m.iter_mut() {
        if !is_secret_header(k) {
            continue;
        }
        match v {
            Value::String(_) | Value::Number(_) => *v = Value::String(MASK.into()),
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if item.is_string() || item.is_number() {
                        *item = Value::String(MASK.into());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The password inside `scheme://user:password@host...`, if any.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let pw = userinfo.split_once(':')?.1;
    (!pw.is_empty()).then(|| pw.to_string())
}

/// What [`prescan`] reads of the runs: each case's (and suite's) vars and
/// the args of all its steps.
pub struct ScanInput<'a> {
    /// Vars and data-row values, by name.
    pub vars: Vec<(&'a str, &'a Value)>,
    /// The args of every step, undo steps included, as written, with the
    /// names of the args its keyword's spec marks as header maps.
    pub args: Vec<(&'a Value, &'a [String])>,
}

/// Learns, before anything runs or is printed, the secrets the case files
/// already show: values of vars named in `secret_names`, and
/// `Authorization`/`Cookie` header values — literal, or made only of the
/// case's literal vars and the environment's vars (`env`). So the console
/// masks a secret even in a case that runs before the case declaring it.
pub fn prescan(
    masker: &Masker,
    inputs: &[ScanInput<'_>],
    secret_names: &[String],
    env: &Map<String, Value>,
) {
    struct Names<'a> {
        vars: &'a [(&'a str, &'a Value)],
        env: &'a Map<String, Value>,
    }
    impl crate::resolve::Lookup for Names<'_> {
        fn get(&self, name: &str) -> Option<Value> {
            self.vars
                .iter()
                .rev()
                .find(|(n, v)| *n == name && !v.as_str().is_some_and(|s| s.contains("${")))
                .map(|(_, v)| (*v).clone())
                .or_else(|| self.env.get(name).cloned())
        }
        fn names(&self) -> Vec<String> {
            Vec::new()
        }
    }
    for input in inputs {
        for (name, value) in &input.vars {
            if secret_names.iter().any(|s| s == name) {
                match value {
                    Value::String(s) if !s.contains("${") => masker.add(s),
                    Value::Number(n) => masker.add(&n.to_string()),
                    _ => {}
                }
            }
        }
        let names = Names {
            vars: &input.vars,
            env,
        };
        let resolver = crate::resolve::Resolver {
            lookup: &names,
            base_dir: std::path::Path::new("."),
        };
        for (args, header_args) in &input.args {
            for (k, v) in header_args
                .iter()
                .filter_map(|field| args.get(field).and_then(Value::as_object))
                .flatten()
            {
                // A name may be made of vars too (`"${auth}": "Bearer ..."`).
                let secret_name = is_secret_header(k)
                    || (k.contains("${")
                        && crate::resolve::resolve(&Value::String(k.clone()), &resolver)
                            .ok()
                            .as_ref()
                            .and_then(Value::as_str)
                            .is_some_and(is_secret_header));
                if !secret_name {
                    continue;
                }
                // Only names: a header made with functions (a signature of
                // the time) cannot be known before it is sent.
                if let Ok(resolved) = crate::resolve::resolve(v, &resolver)
                    && !has_calls(v)
                {
                    masker.add_header_value(&resolved);
                }
            }
        }
    }
}

/// The texts and numbers (as text) inside a value.
fn scalars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| scalars(i, out)),
        Value::Object(m) => m.values().for_each(|i| scalars(i, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// Whether a value's placeholders call functions (their values cannot be
/// known ahead).
fn has_calls(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            s.contains("${")
                && s.split("${")
                    .skip(1)
                    .any(|p| p.split('}').next().is_some_and(|e| e.contains('(')))
        }
        Value::Array(items) => items.iter().any(has_calls),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_url_passwords() {
        assert_eq!(
            url_password("mysql://root:s3cr%40t@db:3306/x"),
            Some("s3cr%40t".into())
        );
        assert_eq!(url_password("redis://:pw@h:6379/0"), Some("pw".into()));
        assert_eq!(url_password("mysql://root@h/x"), None);
        assert_eq!(url_password("not a url"), None);
    }

    #[test]
    fn grpc_metadata_and_url_args_hold_secrets_too() {
        let m = Masker::new();
        m.add_from_args(
            &json!({
                "metadata": {"authorization": "Bearer md-tok-42"},
                "url": "ws://bob:ws-pw-77@h/chat"
            }),
            &["metadata".to_string()],
        );
        let text = m.text("md-tok-42 ws-pw-77");
        assert!(
            !text.contains("md-tok-42") && !text.contains("ws-pw-77"),
            "{text}"
        );
    }

    #[test]
    fn masks_everywhere() {
        let m = Masker::new();
        m.add_url_password("mysql://root:s3cr%40t@db:3306/x");
        m.add_from_args(
            &json!({"headers": {"Authorization": "Bearer tok-123456"}}),
            &["headers".to_string()],
        );
        let mut v = json!({
            "headers": {"authorization": "Bearer tok-123456", "x": "ok"},
            "body": {"echo": "your token is tok-123456", "pw": "s3cr@t"},
            "list": ["mysql://root:s3cr%40t@db"]
        });
        m.value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("tok-123456"), "{text}");
        assert!(!text.contains("s3cr"), "{text}");
        assert_eq!(v["headers"]["authorization"], json!("***"));
        assert_eq!(v["headers"]["x"], json!("ok"));
        assert_eq!(v["body"]["echo"], json!("your token is ***"));
    }

    #[test]
    fn masks_header_values_with_no_known_secrets() {
        let m = Masker::new();
        let mut v = json!({"headers": {"Cookie": "sid=1", "Authorization": ["a", "b"]}});
        m.value(&mut v);
        assert_eq!(v["headers"]["Cookie"], json!("***"));
        assert_eq!(v["headers"]["Authorization"], json!(["***", "***"]));
    }

    #[test]
    fn masks_every_form_of_a_secret() {
        let secret = r#"p"a/s s\w0rd-Ω"#;
        let m = Masker::new();
        m.add(secret);
        let b64 = |e: &base64::engine::GeneralPurpose, s: &[u8]| e.encode(s);
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let json_text = serde_json::to_string(&json!({ "pw": secret })).unwrap();
        let forms = [
            secret.to_string(),
            json_text.clone(),
            serde_json::to_string(&json_text).unwrap(),
            json_text.replace('/', "\\/"),
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            lower_hex(
                &percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
            ),
            format!("pw={}", url_form(secret)),
            b64(&STANDARD, secret.as_bytes()),
            b64(&URL_SAFE_NO_PAD, secret.as_bytes()),
            // Inside longer Base64 data, at each of the three alignments.
            b64(&STANDARD, format!("user:{secret}").as_bytes()),
            b64(&STANDARD, format!("us:{secret}:x").as_bytes()),
            b64(&STANDARD, format!("u:{secret}!!").as_bytes()),
        ];
        for form in forms {
            let masked = m.text(&format!("before {form} after"));
            assert!(masked.contains("***"), "{form} -> {masked}");
            assert!(
                !masked.contains("s\\w0rd") && !masked.contains("w0rd"),
                "{form} -> {masked}"
            );
        }
    }

    /// `application/x-www-form-urlencoded`, as a browser sends it.
    fn url_form(s: &str) -> String {
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~')
            .remove(b' ');
        percent_encoding::utf8_percent_encode(s, KEEP)
            .to_string()
            .replace(' ', "+")
    }

    #[test]
    fn masks_keys_numbers_and_lists() {
        let m = Masker::new();
        m.add("987654321");
        m.add("tok-abcdef");
        let mut v = json!({
            "tok-abcdef": 1,
            "by-id": {"987654321": "x"},
            "n": 987654321,
            "inside": 19876543210u64,
            "list": ["tok-abcdef", ["a tok-abcdef b"]],
            "both": {"tok-abcdef": 1, "***": 2}
        });
        m.value(&mut v);
        let text = v.to_string();
        assert!(
            !text.contains("abcdef") && !text.contains("987654321"),
            "{text}"
        );
        assert_eq!(v["n"], json!("***"));
        assert_eq!(v["inside"], json!("1***0"));
        assert_eq!(v["by-id"], json!({"***": "x"}));
        assert_eq!(v["both"].as_object().unwrap().len(), 2, "{text}");
    }

    #[test]
    fn list_valued_headers_and_cookies_become_secrets() {
        let m = Masker::new();
        m.add_from_args(
            &json!({"headers": {
                "authorization": ["Bearer tok-list-1", "Basic dXNlcjpwYXNz"],
                "Cookie": "sid=session-value-123; theme=dark"
            }}),
            &["headers".to_string()],
        );
        let masked = m.text(
            "tok-list-1 dXNlcjpwYXNz sid=session-value-123 session-value-123 theme=dark dark",
        );
        assert_eq!(masked, "*** *** *** *** *** dark");
    }

    #[test]
    fn short_secrets_only_as_whole_values() {
        let m = Masker::new();
        m.add("ab");
        assert_eq!(m.text("ab"), "***");
        assert_eq!(m.text("abc"), "abc");
    }

    #[test]
    fn longest_secret_wins() {
        let m = Masker::new();
        m.add("secret");
        m.add("secret-and-more");
        assert_eq!(m.text("x secret-and-more y secret"), "x *** y ***");
    }

    #[test]
    fn base64_fragments_are_alignment_independent() {
        use base64::engine::general_purpose::STANDARD_NO_PAD;
        let secret = b"hunter2-secret";
        for before in 0..6 {
            for after in 0..3 {
                let mut data = vec![b'q'; before];
                data.extend_from_slice(secret);
                data.extend(std::iter::repeat_n(b'z', after));
                let encoded = STANDARD_NO_PAD.encode(&data);
                let fragment = base64_fragment(&STANDARD_NO_PAD, secret, before % 3).unwrap();
                assert!(fragment.len() >= MIN_BASE64_FRAGMENT);
                assert!(
                    encoded.contains(&fragment),
                    "{before}/{after}: {encoded} / {fragment}"
                );
            }
        }
    }

    /// The members of a JSON object, as `ScanInput::vars` takes them.
    fn pairs(vars: &Value) -> Vec<(&str, &Value)> {
        vars.as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }

    #[test]
    fn prescan_finds_literal_and_var_made_headers() {
        let m = Masker::new();
        let vars = json!({"sid": "cookie-from-var-1", "api_key": "key-from-vars-9"});
        let args_a = json!({"headers": {"Cookie": "sid=${sid}"}});
        let args_b = json!({"headers": {"Authorization": "Bearer literal-token-7"}});
        let args_c = json!({"headers": {"Authorization": "Bearer ${sha256(now())}"}});
        let headers = ["headers".to_string()];
        prescan(
            &m,
            &[ScanInput {
                vars: pairs(&vars),
                args: vec![
                    (&args_a, &headers),
                    (&args_b, &headers),
                    (&args_c, &headers),
                ],
            }],
            &["api_key".to_string()],
            &Map::new(),
        );
        assert_eq!(
            m.text("cookie-from-var-1 literal-token-7 key-from-vars-9"),
            "*** *** ***"
        );
    }

    #[test]
    fn prescan_finds_a_secret_header_whose_name_is_a_var() {
        let m = Masker::new();
        let vars = json!({"auth": "Authorization", "tenant": "acme"});
        let args = json!({"headers": {
            "${auth}": "Bearer name-made-token-1",
            "X-${tenant}": "not-a-secret-2"
        }});
        let headers = ["headers".to_string()];
        prescan(
            &m,
            &[ScanInput {
                vars: pairs(&vars),
                args: vec![(&args, &headers)],
            }],
            &[],
            &Map::new(),
        );
        assert_eq!(
            m.text("name-made-token-1 not-a-secret-2"),
            "*** not-a-secret-2"
        );
    }

    #[test]
    fn masking_is_one_pass_for_many_secrets() {
        let m = Masker::new();
        let secrets: Vec<String> = (0..2000).map(|i| format!("secret-number-{i:05}")).collect();
        m.add_all(secrets.iter().map(String::as_str));
        let text = "plain words ".repeat(10_000) + "secret-number-01999";
        let masked = m.text(&text);
        assert!(masked.ends_with("***"));
    }
}
