//! `http.request`: one HTTP call on a pooled client per resource.
//!
//! A resource of kind `http` is either a base URL string or an object with
//! `base_url`, `headers` (sent with every request of that resource),
//! `timeout` and `insecure` (accept any TLS certificate). The client of a
//! resource is built on first use and shared by all cases; connections are
//! kept alive between steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::Env;

/// The methods `http.request` sends (`CONNECT` and `TRACE` are not for
/// API tests; a custom method would go to the wrong place silently).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The spec of `http.request`.
pub fn spec() -> KeywordSpec {
    KeywordSpec::new(
        "http.request",
        "Sends one HTTP request and returns the response.",
    )
    .arg(
        "method",
        "string",
        "GET (default), POST, PUT, PATCH, DELETE, HEAD, OPTIONS",
    )
    .choices(&METHODS)
    .required(
        "url",
        "string",
        "absolute URL, or a path joined to the resource's base_url",
    )
    .arg("headers", "object", "request headers, name → value")
    .headers()
    .arg(
        "query",
        "object",
        "query parameters, name → value or list of values",
    )
    .arg(
        "json",
        "",
        "a body sent as JSON (Content-Type: application/json)",
    )
    .arg(
        "body",
        "",
        "a raw body: text as is, other values as JSON text",
    )
    .arg(
        "form",
        "object",
        "a body sent as application/x-www-form-urlencoded",
    )
    .arg(
        "timeout",
        "string|number",
        "request timeout (default: the step timeout)",
    )
    .arg(
        "auth",
        "object",
        "{\"basic\": {\"user\": ..., \"password\": ...}} or {\"bearer\": token}: sets \
         Authorization (a step's `Authorization` header wins); the password and token are secrets",
    )
    .arg(
        "follow_redirects",
        "boolean",
        "follow 3xx redirects (default true)",
    )
    .arg(
        "decompress",
        "boolean",
        "decompress gzip, deflate, br and zstd responses (default true; false: Accept-Encoding \
         is not sent and the body is kept as it came)",
    )
    .arg(
        "resource",
        "string",
        "the http resource of the project file (default `default`)",
    )
    .result(
        "`status` (number), `headers` (lower-case names → text), `body` (parsed JSON when \
             the response is JSON, else text), `elapsed_ms`; a body over the project's \
             `limits.body` (16 MiB) is written to a file instead: `body` is null, \
             `body_file` its path, `body_bytes` its size",
    )
}

#[derive(Clone, Default)]
struct Resource {
    base_url: Option<String>,
    headers: HeaderMap,
    timeout: Option<Duration>,
    insecure: bool,
}

/// The clients of one redirect policy and decompression setting, by
/// resource name.
type Clients = HashMap<String, (reqwest::Client, Arc<Resource>)>;

/// The `http.request` keyword with its clients.
pub struct Http {
    env: Env,
    /// The client tables, indexed by `follow + 2 * decompress`.
    clients: Mutex<[Clients; 4]>,
}

impl Http {
    /// A keyword that will build clients from `env`'s http resources.
    pub fn new(env: Env) -> Http {
        Http {
            env,
            clients: Mutex::new(Default::default()),
        }
    }

    fn resource(&self, name: &str) -> Result<Resource, KeywordError> {
        let Some(settings) = self.env.resource("http", name) else {
            if name == "default" {
                return Ok(Resource::default());
            }
            return Err(KeywordError::new(format!(
                "no http resource `{name}` in the project file (known: {})",
                names(&self.env.resource_names("http"))
            )));
        };
        let mut r = Resource::default();
        match settings {
            Value::String(url) => r.base_url = Some(url.clone()),
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("base_url", Value::String(s)) => r.base_url = Some(s.clone()),
                        ("headers", Value::Object(h)) => r.headers = header_map(h)?,
                        ("timeout", t) => {
                            r.timeout = Some(atf_sdk::parse_duration(t).map_err(|e| {
                                KeywordError::new(format!("http resource `{name}`: timeout: {e}"))
                            })?)
                        }
                        ("insecure", Value::Bool(b)) => r.insecure = *b,
                        (other, v) => {
                            return Err(KeywordError::new(format!(
                                "http resource `{name}`: unexpected `{other}` ({}); known: base_url, headers, timeout, insecure",
                                type_name(v)
                            )));
                        }
                    }
                }
            }
            other => {
                return Err(KeywordError::new(format!(
                    "http resource `{name}` must be a base URL or an object, got {}",
                    type_name(other)
                )));
            }
        }
        Ok(r)
    }

    fn client(
        &self,
        name: &str,
        follow: bool,
        decompress: bool,
    ) -> Result<(reqwest::Client, Arc<Resource>), KeywordError> {
        let mut all = self
            .clients
            .lock()
            .map_err(|_| KeywordError::new("http client table poisoned"))?;
        let clients = &mut all[usize::from(follow) + 2 * usize::from(decompress)];
        if let Some(found) = clients.get(name) {
            return Ok(found.clone());
        }
        let resource = Arc::new(self.resource(name)?);
        let policy = if follow {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .redirect(policy)
            .user_agent(concat!("atf/", env!("CARGO_PKG_VERSION")));
        if !decompress {
            builder = builder.no_gzip().no_brotli().no_zstd().no_deflate();
        }
        let client = builder
            .no_proxy()
            .tls_danger_accept_invalid_certs(resource.insecure)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| KeywordError::new(format!("cannot build the http client: {e}")))?;
        clients.insert(name.to_string(), (client.clone(), resource.clone()));
        Ok((client, resource))
    }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn header_map(h: &serde_json::Map<String, Value>) -> Result<HeaderMap, KeywordError> {
    let mut map = HeaderMap::new();
    for (k, v) in h {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| KeywordError::new(format!("`{k}` is not a valid header name")))?;
        let values: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for v in values {
            // Sending nothing would hide a placeholder that resolved to null.
            if v.is_null() {
                return Err(KeywordError::new(format!(
                    "header `{k}` is null: give it a value, or leave it out"
                )));
            }
            let value = HeaderValue::from_str(&text_of(v))
                .map_err(|_| KeywordError::new(format!("header `{k}` has an invalid value")))?;
            map.append(name.clone(), value);
        }
    }
    Ok(map)
}

/// Joins a path to a base URL with exactly one slash between them.
pub fn join_url(base: Option<&str>, url: &str) -> Result<String, KeywordError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(url.to_string());
    }
    match base {
        Some(base) => Ok(format!(
            "{}/{}",
            base.trim_end_matches('/'),
            url.trim_start_matches('/')
        )),
        None => Err(KeywordError::new(format!(
            "`{url}` is not an absolute URL and the http resource has no base_url"
        ))),
    }
}

impl Keyword for Http {
    fn spec(&self) -> KeywordSpec {
        spec()
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let follow = c.bool_arg("follow_redirects", true)?;
        let decompress = c.bool_arg("decompress", true)?;
        let (client, resource) = self.client(c.resource()?, follow, decompress)?;
        let method = c.str_arg("method")?.unwrap_or("GET").to_ascii_uppercase();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .ok()
            .filter(|_| METHODS.contains(&method.as_str()))
            .ok_or_else(|| {
                KeywordError::new(format!(
                    "`{method}` is not a method http.request sends (one of: {})",
                    METHODS.join(", ")
                ))
            })?;
        let url = join_url(resource.base_url.as_deref(), c.required_str("url")?)?;
        let mut req = client.request(method, &url);
        let mut headers = resource.headers.clone();
        match c.arg("headers") {
            None => {}
            Some(Value::Object(h)) => {
                // Step headers replace resource headers of the same name
                // (all their values); a list sends each item, in order.
                let step = header_map(h)?;
                for name in step.keys() {
                    headers.remove(name);
                }
                for (name, value) in &step {
                    headers.append(name.clone(), value.clone());
                }
            }
            Some(_) => return Err(KeywordError::new("`headers` must be an object")),
        }
        if let Some(auth) = c.arg("auth") {
            let value = authorization(auth, c.host)?;
            if !headers.contains_key(reqwest::header::AUTHORIZATION) {
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    KeywordError::new("`auth` holds a character a header cannot carry")
                })?;
                value.set_sensitive(true);
                headers.insert(reqwest::header::AUTHORIZATION, value);
            }
        }
        if !headers.is_empty() {
            req = req.headers(headers);
        }
        match c.arg("query") {
            None => {}
            Some(Value::Object(q)) => {
                let mut pairs: Vec<(String, String)> = Vec::new();
                for (k, v) in q {
                    match v {
                        Value::Array(items) => {
                            pairs.extend(items.iter().map(|i| (k.clone(), text_of(i))))
                        }
                        Value::Null => {}
                        other => pairs.push((k.clone(), text_of(other))),
                    }
                }
                req = req.query(&pairs);
            }
            Some(_) => return Err(KeywordError::new("`query` must be an object")),
        }
        let bodies = ["json", "body", "form"]
            .iter()
            .filter(|k| c.args.get(**k).is_some())
            .count();
        if bodies > 1 {
            return Err(KeywordError::new(
                "give only one of `json`, `body` and `form`",
            ));
        }
        if let Some(v) = c.args.get("json") {
            req = req.json(v);
        } else if let Some(v) = c.args.get("body") {
            req = req.body(text_of(v));
        } else if let Some(v) = c.args.get("form") {
            let Value::Object(f) = v else {
                return Err(KeywordError::new("`form` must be an object"));
            };
            let pairs: Vec<(String, String)> =
                f.iter().map(|(k, v)| (k.clone(), text_of(v))).collect();
            req = req.form(&pairs);
        }
        let mut timeout = c.remaining();
        if let Some(t) = resource.timeout {
            timeout = timeout.min(t);
        }
        if let Some(t) = c.arg("timeout") {
            timeout = timeout.min(atf_sdk::parse_duration(t).map_err(KeywordError::new)?);
        }
        let req = req.timeout(timeout);
        let started = Instant::now();
        let policy = self.env.policy.clone();
        let result = crate::run_on(&self.env.runtime, async move {
            let resp = req.send().await.map_err(|e| request_error(&url, &e))?;
            let status = resp.status().as_u16();
            let mut headers = serde_json::Map::new();
            for (name, value) in resp.headers() {
                let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                match headers.get_mut(name.as_str()) {
                    Some(Value::String(prev)) => {
                        prev.push_str(", ");
                        prev.push_str(&text);
                    }
                    _ => {
                        headers.insert(name.as_str().to_string(), Value::String(text));
                    }
                }
            }
            let is_json = headers
                .get("content-type")
                .and_then(Value::as_str)
                .is_some_and(|ct| ct.contains("json"));
            // At most `limits.body` stays in memory; a larger body goes to a
            // file in the report folder, and the result says where.
            let mut resp = resp;
            let what = format!("the response body of {url}");
            let bytes = match crate::read_capped(&mut resp, &policy, &what).await? {
                crate::Body::Memory(bytes) => bytes,
                crate::Body::File { path, bytes } => {
                    return Ok(json!({
                        "status": status,
                        "headers": headers,
                        "body": null,
                        "body_file": path.display().to_string(),
                        "body_bytes": bytes,
                        "elapsed_ms": started.elapsed().as_millis() as u64,
                    }));
                }
            };
            let text = decode_text(&bytes, headers.get("content-type").and_then(Value::as_str));
            let body = if is_json && !bytes.is_empty() {
                serde_json::from_slice(&bytes).unwrap_or(Value::String(text))
            } else {
                Value::String(text)
            };
            Ok(json!({
                "status": status,
                "headers": headers,
                "body": body,
                "elapsed_ms": started.elapsed().as_millis() as u64,
            }))
        })?;
        declare_session_cookies(&result, c.host);
        Ok(result)
    }
}

/// The `Authorization` value of an `auth` argument; its password or token
/// (and the header value) are declared secret.
fn authorization(auth: &Value, host: &dyn atf_sdk::Host) -> Result<String, KeywordError> {
    use base64::Engine as _;
    let text = |v: Option<&Value>, what: &str| -> Result<String, KeywordError> {
        match v {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(KeywordError::new(format!("`auth`: {what} must be text"))),
        }
    };
    let value = match auth {
        Value::Object(m) if m.len() == 1 && m.contains_key("bearer") => {
            let token = text(m.get("bearer"), "`bearer`")?;
            host.secret(&token);
            format!("Bearer {token}")
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("basic") => {
            let basic = m.get("basic").and_then(Value::as_object).ok_or_else(|| {
                KeywordError::new("`auth`: `basic` must be {\"user\": ..., \"password\": ...}")
            })?;
            let user = text(basic.get("user"), "`basic.user`")?;
            let password = text(basic.get("password"), "`basic.password`")?;
            host.secret(&password);
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {encoded}")
        }
        _ => {
            return Err(KeywordError::new(
                "`auth` must be {\"basic\": {\"user\": ..., \"password\": ...}} or {\"bearer\": token}",
            ));
        }
    };
    host.secret(&value);
    Ok(value)
}

/// A body as text, decoded with the charset its `Content-Type` declares
/// (`latin1`, `gbk`, `shift_jis`, … as the WHATWG Encoding Standard names
/// them), else as UTF-8; bytes that do not decode become U+FFFD.
fn decode_text(bytes: &[u8], content_type: Option<&str>) -> String {
    let label = content_type.and_then(|ct| {
        ct.split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
            .map(|(_, v)| v.trim().trim_matches('"'))
    });
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode(bytes).0.into_owned()
}

/// Declares the session cookies a response sets as secrets: the first
/// `name=value` pair of each `Set-Cookie` (and its value) whose value is
/// long enough to be a token rather than a setting such as `theme=dark`.
fn declare_session_cookies(result: &Value, host: &dyn atf_sdk::Host) {
    let Some(set_cookie) = result
        .get("headers")
        .and_then(|h| h.get("set-cookie"))
        .and_then(Value::as_str)
    else {
        return;
    };
    // "sid=abc; Path=/; HttpOnly, b=2": several cookies are joined by ", ".
    for piece in set_cookie.split(", ") {
        let pair = piece.split(';').next().unwrap_or("").trim();
        if let Some((_, value)) = pair.split_once('=')
            && value.len() >= 8
        {
            host.secret(pair);
            host.secret(value);
        }
    }
}

fn request_error(url: &str, e: &reqwest::Error) -> KeywordError {
    use std::error::Error;
    let mut msg = if e.is_timeout() {
        format!("request to {url} timed out")
    } else if e.is_connect() {
        format!("cannot connect to {url}")
    } else {
        format!("request to {url} failed")
    };
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        KeywordError::timeout(msg)
    } else {
        KeywordError::new(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_with_their_declared_charset() {
        assert_eq!(
            decode_text(b"caf\xe9", Some("text/plain; charset=ISO-8859-1")),
            "café"
        );
        assert_eq!(
            decode_text(b"\xc4\xe3\xba\xc3", Some("text/html;charset=\"gbk\"")),
            "你好"
        );
        assert_eq!(decode_text("café".as_bytes(), Some("text/plain")), "café");
        assert_eq!(decode_text(b"caf\xe9", None), "caf\u{fffd}");
    }

    #[test]
    fn session_cookies_a_response_sets_are_declared_secret() {
        struct Seen(std::sync::Mutex<Vec<String>>);
        impl atf_sdk::Host for Seen {
            fn check(&self, _: &Value, _: &Value) -> Result<Vec<String>, String> {
                Ok(Vec::new())
            }
            fn cancelled(&self) -> bool {
                false
            }
            fn secret(&self, value: &str) {
                self.0.lock().unwrap().push(value.to_string());
            }
        }
        let seen = Seen(Default::default());
        let result = json!({"headers": {
            "set-cookie": "sid=abcdefgh12345; Path=/; HttpOnly, theme=dark; Path=/"
        }});
        declare_session_cookies(&result, &seen);
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["sid=abcdefgh12345", "abcdefgh12345"]
        );
    }

    #[test]
    fn joins_urls() {
        let base = Some("http://h:1/api/");
        assert_eq!(
            join_url(base, "/users/1").unwrap(),
            "http://h:1/api/users/1"
        );
        assert_eq!(join_url(base, "users").unwrap(), "http://h:1/api/users");
        assert_eq!(join_url(base, "HTTPS://x/y").unwrap(), "HTTPS://x/y");
        assert!(join_url(None, "/x").is_err());
    }
}
