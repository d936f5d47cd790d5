//! Secrets never reach a report or a log.
//!
//! The [`Masker`] knows every secret value of the run — passwords inside
//! connection URLs, values of the variables named in the project's
//! `secrets`, `Authorization` and `Cookie` header values seen in steps —
//! and replaces each of them with `***` wherever it turns up: in arguments,
//! results (a service echoing a token back), failures and error messages.
//! Every case report passes through it before any reporter sees it.

use std::sync::RwLock;

use atf_reports::{CaseReport, StepReport};
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

/// Replaces known secret values with `***`.
#[derive(Debug, Default)]
pub struct Masker {
    secrets: RwLock<Vec<String>>,
}

impl Masker {
    /// A masker with no secrets yet.
    pub fn new() -> Masker {
        Masker::default()
    }

    /// Adds a secret value (empty values are ignored).
    pub fn add(&self, secret: &str) {
        if secret.is_empty() || secret == MASK {
            return;
        }
        if let Ok(mut list) = self.secrets.write()
            && !list.iter().any(|s| s == secret)
        {
            list.push(secret.to_string());
            // Longest first, so that a secret containing another is masked whole.
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Adds the password of a connection URL (`scheme://user:password@host`).
    pub fn add_url_password(&self, url: &str) {
        if let Some(pw) = url_password(url) {
            self.add(&pw);
            // The URL-decoded form may appear too.
            if let Ok(decoded) = percent_encoding::percent_decode_str(&pw).decode_utf8() {
                self.add(&decoded);
            }
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
                    if is_secret_key(&key)
                        && let Value::String(s) = v
                    {
                        self.add(s);
                    }
                    if SECRET_HEADERS.contains(&key.as_str())
                        && let Value::String(s) = v
                    {
                        self.add(s);
                    }
                    self.add_from_resources(v);
                }
            }
            _ => {}
        }
    }

    /// Adds `Authorization`/`Cookie` header values of resolved step args
    /// (`headers`, and gRPC's `metadata`) and the password of a `url` arg.
    pub fn add_from_args(&self, args: &Value) {
        if let Some(Value::String(url)) = args.get("url") {
            self.add_url_password(url);
        }
        for field in ["headers", "metadata"] {
            let Some(Value::Object(headers)) = args.get(field) else {
                continue;
            };
            for (k, v) in headers {
                if SECRET_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                    match v {
                        Value::String(s) => {
                            self.add(s);
                            // "Bearer abc": the token alone is secret too.
                            if let Some((_, token)) = s.split_once(' ') {
                                self.add(token.trim());
                            }
                        }
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .for_each(|s| self.add(s)),
                        _ => {}
                    }
                }
            }
        }
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.read().map(|l| l.is_empty()).unwrap_or(true)
    }

    /// Masks one text.
    pub fn text(&self, s: &str) -> String {
        let Ok(list) = self.secrets.read() else {
            return s.to_string();
        };
        mask_with(&list, s)
    }

    /// Masks every string of a JSON value, and whole values of secret headers.
    pub fn value(&self, v: &mut Value) {
        let Ok(list) = self.secrets.read() else {
            return;
        };
        if list.is_empty() {
            mask_headers(v);
            return;
        }
        mask_value(&list, v);
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
        self.value(&mut s.args);
        self.value(&mut s.result);
        if let Some(e) = &s.error {
            s.error = Some(self.text(e));
        }
        if let Some(r) = &s.remark {
            s.remark = Some(self.text(r));
        }
        for f in &mut s.failures {
            self.value(&mut f.expected);
            self.value(&mut f.actual);
            f.message = self.text(&f.message);
            f.path = self.text(&f.path);
        }
    }
}

fn is_secret_key(key: &str) -> bool {
    key.contains("password")
        || key.contains("passwd")
        || key == "sasl.password"
        || key.contains("secret")
        || key.ends_with("token")
}

fn mask_with(list: &[String], s: &str) -> String {
    let mut out = None::<String>;
    for secret in list {
        let cur = out.as_deref().unwrap_or(s);
        if cur == secret {
            return MASK.to_string();
        }
        if secret.len() >= MIN_INNER_LEN && cur.contains(secret.as_str()) {
            out = Some(cur.replace(secret.as_str(), MASK));
        }
    }
    out.unwrap_or_else(|| s.to_string())
}

fn mask_value(list: &[String], v: &mut Value) {
    match v {
        Value::String(s) => {
            let masked = mask_with(list, s);
            if masked != *s {
                *s = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_value(list, i)),
        Value::Object(m) => {
            mask_header_map(m);
            for (_, v) in m.iter_mut() {
                mask_value(list, v);
            }
        }
        _ => {}
    }
}

fn mask_headers(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(mask_headers),
        Value::Object(m) => {
            mask_header_map(m);
            for (_, v) in m.iter_mut() {
                mask_headers(v);
            }
        }
        _ => {}
    }
}

fn mask_header_map(m: &mut Map<String, Value>) {
    for (k, v) in m.iter_mut() {
        if v.is_string() && SECRET_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            *v = Value::String(MASK.into());
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
        m.add_from_args(&json!({
            "metadata": {"authorization": "Bearer md-tok-42"},
            "url": "ws://bob:ws-pw-77@h/chat"
        }));
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
        m.add_from_args(&json!({"headers": {"Authorization": "Bearer tok-123456"}}));
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
        let mut v = json!({"headers": {"Cookie": "sid=1"}});
        m.value(&mut v);
        assert_eq!(v["headers"]["Cookie"], json!("***"));
    }
}
