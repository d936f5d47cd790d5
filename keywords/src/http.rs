//! `http.request`: one HTTP call on a pooled client.
//!
//! A resource of kind `http` is either a base URL string or an object with
//! `base_url`, `headers` (sent with every request of that resource),
//! `timeout`, `connect_timeout`, `insecure` (accept any TLS certificate),
//! `ca`, `cert`, `key` (PEM files), `proxy` and `cookie_jar`. Clients are built on first
//! use, one per set of transport options, and shared by all cases;
//! connections are kept alive between steps.
//!
//! atf follows redirects itself (not reqwest) so that each hop is recorded,
//! the case's cookie jar is applied at each hop and credentials are dropped
//! when the host changes. Each case has its own cookie jar (keyed by
//! [`Call::case_id`], dropped in [`Keyword::case_finished`]); with
//! `cookie_jar: "suite"` a step uses its suite's jar instead (keyed by
//! [`Call::suite`], kept for the run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use cookie_store::{CookieDomain, CookieExpiration, CookieStore, RawCookie};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::Env;

/// The methods `http.request` sends (`CONNECT` and `TRACE` are not for
/// API tests; a custom method would go to the wrong place silently).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The HTTP versions `http_version` selects.
const VERSIONS: [&str; 3] = ["1.0", "1.1", "2"];

/// How a step's headers meet its resource's (`header_mode`).
const HEADER_MODES: [&str; 2] = ["replace", "append"];

/// Where a step's cookies live (`cookie_jar`).
const COOKIE_JARS: [&str; 2] = ["case", "suite"];

/// The body arguments; a step gives at most one.
const BODIES: [&str; 8] = [
    "json",
    "body",
    "form",
    "multipart",
    "xml",
    "body_base64",
    "body_hex",
    "body_file",
];

/// Redirects followed at most, as curl's and Hurl's default.
const MAX_REDIRECTS: u64 = 50;

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
    .arg(
        "headers",
        "object",
        "request headers, name → value or list of values (sent once per item)",
    )
    .headers()
    .arg(
        "header_mode",
        "string",
        "how `headers` meet the resource's headers: \"replace\" (default: a step header \
         replaces every resource header of the same name, names compared without regard to \
         case) or \"append\" (both are sent, the resource's first)",
    )
    .choices(&HEADER_MODES)
    .arg(
        "query",
        "object",
        "query parameters, name → value or list of values",
    )
    .arg(
        "json",
        "",
        "a body sent as JSON (Content-Type: application/json unless set)",
    )
    .arg(
        "body",
        "",
        "a raw body: text as is, other values as JSON text",
    )
    .arg(
        "form",
        "object",
        "a body sent as application/x-www-form-urlencoded; a list value repeats the field",
    )
    .arg(
        "multipart",
        "object",
        "a multipart/form-data body: name → text, {\"file\": path, \"filename\": ..., \
         \"content_type\": ...} (path relative to the case file) or {\"value\": text, \
         \"content_type\": ...}; a list value repeats the part",
    )
    .arg(
        "xml",
        "string",
        "an XML body (Content-Type: application/xml unless set)",
    )
    .arg(
        "body_base64",
        "string",
        "a binary body given as Base64 (Content-Type: application/octet-stream unless set)",
    )
    .arg(
        "body_hex",
        "string",
        "a binary body given as hex digits (Content-Type: application/octet-stream unless set)",
    )
    .arg(
        "body_file",
        "string",
        "a body read from a file, relative to the case file (Content-Type: \
         application/octet-stream unless set)",
    )
    .arg(
        "timeout",
        "string|number",
        "request timeout, redirects included (default: the step timeout)",
    )
    .arg(
        "connect_timeout",
        "string|number",
        "how long connecting (TCP and TLS) may take (default: no limit but `timeout`)",
    )
    .arg(
        "auth",
        "object",
        "{\"basic\": {\"user\": ..., \"password\": ...}}, {\"digest\": {\"user\": ..., \
         \"password\": ...}} or {\"bearer\": token}: sets Authorization (a step's \
         `Authorization` header wins); the password and token are secrets",
    )
    .arg(
        "follow_redirects",
        "boolean",
        "follow 3xx redirects (default true); 301, 302 turn POST into GET, 303 turns \
         any method but HEAD into GET, 307 and 308 keep method and body",
    )
    .arg(
        "max_redirects",
        "integer",
        "redirects followed at most (default 50); one more fails the step",
    )
    .arg(
        "location_trusted",
        "boolean",
        "send Authorization (and `auth`) and the step's Cookie header to another host a \
         redirect leads to (default false: they are dropped)",
    )
    .arg(
        "cookies",
        "object",
        "cookies (name → value) put into the step's cookie jar for the request's host \
         before it is sent",
    )
    .arg(
        "cookie_jar",
        "string",
        "\"case\" (default: the case's own jar) or \"suite\" (one jar shared by the cases of \
         the nearest suite and its prepare and cleanup steps; the cases under no suite share \
         one); a resource's `cookie_jar` sets the default",
    )
    .choices(&COOKIE_JARS)
    .arg(
        "clear_cookies",
        "boolean",
        "empty the step's cookie jar (see `cookie_jar`) before the request (default false)",
    )
    .arg(
        "decompress",
        "boolean",
        "decompress gzip, deflate, br and zstd responses (default true; false: Accept-Encoding \
         is not sent and the body is kept as it came)",
    )
    .arg(
        "http_version",
        "string",
        "\"1.0\", \"1.1\" (HTTP/1 only) or \"2\" (HTTP/2 with prior knowledge); default: \
         HTTP/2 where TLS offers it, else HTTP/1.1",
    )
    .choices(&VERSIONS)
    .arg(
        "insecure",
        "boolean",
        "accept any TLS certificate (default: the resource's `insecure`, else false)",
    )
    .arg(
        "cacert",
        "string",
        "a PEM file of CA certificates trusted beside the system's (relative to the case file)",
    )
    .arg(
        "cert",
        "string",
        "a PEM client certificate (with its key, or give `key`), relative to the case file",
    )
    .arg(
        "key",
        "string",
        "the PEM private key of `cert`, relative to the case file",
    )
    .arg(
        "proxy",
        "string",
        "a proxy URL (http:// or https://) every request of the step goes through (default: none, whatever HTTP_PROXY says)",
    )
    .arg(
        "resource",
        "string",
        "the http resource of the project file (default `default`)",
    )
    .result(
        "`status` (number), `http_version` (\"HTTP/1.1\", \"HTTP/2\"…), `url` (the final URL), \
         `headers` (lower-case names → text, repeated ones joined by \", \"), `header_list` \
         (lower-case names → every value in order), `cookies` (name → {value, domain, path, \
         expires, max_age, secure, http_only, same_site}: the step's jar after the request), \
         `redirects` ([{status, location, url}] followed), `body` (parsed JSON when the \
         response is JSON, text otherwise, null when binary), `body_base64` (a binary body), \
         `size` (body bytes), `sha256` (hex digest of the body), `elapsed_ms` and \
         `duration_ms` (the same: from sending to the end of the body, redirects included), \
         `timings` ({dns_ms, connect_ms, tls_ms, first_byte_ms, total_ms}: the last request \
         sent, in milliseconds with microsecond precision: name lookup, TCP connect and TLS \
         handshake (0 on a reused connection), time to the response headers and to the end \
         of the body, both from sending); \
         a body over the project's `limits.body` (16 MiB) is written to a file instead: \
         `body` is null, `body_file` its path, `body_bytes` its size",
    )
}

#[derive(Clone, Default)]
struct Resource {
    base_url: Option<String>,
    headers: HeaderMap,
    timeout: Option<Duration>,
    /// `cookie_jar: "suite"`: steps use their suite's jar unless they say otherwise.
    suite_jar: bool,
    transport: Transport,
}

/// What a client is built with; one client per distinct value.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct Transport {
    decompress: bool,
    insecure: bool,
    connect_timeout: Option<Duration>,
    /// 0: negotiate; 1: HTTP/1 only; 2: HTTP/2 prior knowledge.
    version: u8,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    proxy: Option<String>,
}

/// A case's cookie jar.
type Jar = Arc<Mutex<CookieStore>>;

/// The `http.request` keyword with its clients and cookie jars.
pub struct Http {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
    clients: Mutex<HashMap<Transport, reqwest::Client>>,
    /// The TLS configuration of each transport, built once (loading the
    /// system's roots takes milliseconds) and shared by the clients of
    /// every thread.
    tls: Mutex<HashMap<Transport, rustls::ClientConfig>>,
    /// `env.policy`, shared with each request's future.
    policy: Arc<crate::Policy>,
    jars: Mutex<HashMap<u64, Jar>>,
    /// The jars shared by a suite's cases (`cookie_jar: "suite"`), by suite
    /// file; "" for the cases under no suite. They live as long as the run.
    suite_jars: Mutex<HashMap<String, Jar>>,
}

impl Http {
    /// A keyword that will build clients from `env`'s http resources.
    pub fn new(env: Env) -> Http {
        Http {
            policy: Arc::new(env.policy.clone()),
            env,
            resources: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            tls: Mutex::new(HashMap::new()),
            jars: Mutex::new(HashMap::new()),
            suite_jars: Mutex::new(HashMap::new()),
        }
    }

    fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut all = self
            .resources
            .lock()
            .map_err(|_| KeywordError::new("http resource table poisoned"))?;
        if let Some(found) = all.get(name) {
            return Ok(found.clone());
        }
        let r = Arc::new(self.parse_resource(name)?);
        all.insert(name.to_string(), r.clone());
        Ok(r)
    }

    fn parse_resource(&self, name: &str) -> Result<Resource, KeywordError> {
        let mut r = Resource::default();
        r.transport.decompress = true;
        let Some(settings) = self.env.resource("http", name) else {
            if name == "default" {
                return Ok(r);
            }
            return Err(KeywordError::new(format!(
                "no http resource `{name}` in the project file (known: {})",
                names(&self.env.resource_names("http"))
            )));
        };
        let err =
            |key: &str, e: String| KeywordError::new(format!("http resource `{name}`: {key}: {e}"));
        match settings {
            Value::String(url) => r.base_url = Some(url.clone()),
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("base_url", Value::String(s)) => r.base_url = Some(s.clone()),
                        ("headers", Value::Object(h)) => r.headers = header_map(h)?,
                        ("timeout", t) => {
                            r.timeout =
                                Some(atf_sdk::parse_duration(t).map_err(|e| err("timeout", e))?)
                        }
                        ("connect_timeout", t) => {
                            r.transport.connect_timeout = Some(
                                atf_sdk::parse_duration(t)
                                    .map_err(|e| err("connect_timeout", e))?,
                            )
                        }
                        ("insecure", Value::Bool(b)) => r.transport.insecure = *b,
                        ("ca" | "cacert", Value::String(s)) => {
                            r.transport.cacert = Some(PathBuf::from(s))
                        }
                        ("cert", Value::String(s)) => r.transport.cert = Some(PathBuf::from(s)),
                        ("key", Value::String(s)) => r.transport.key = Some(PathBuf::from(s)),
                        ("proxy", Value::String(s)) => r.transport.proxy = Some(s.clone()),
                        ("cookie_jar", Value::String(s)) if s.eq_ignore_ascii_case("suite") => {
                            r.suite_jar = true
                        }
                        ("cookie_jar", Value::String(s)) if s.eq_ignore_ascii_case("case") => {
                            r.suite_jar = false
                        }
                        (other, v) => {
                            return Err(KeywordError::new(format!(
                                "http resource `{name}`: unexpected `{other}` ({}); known: base_url, \
                                 headers, timeout, connect_timeout, insecure, ca, cert, key, proxy, \
                                 cookie_jar (\"case\" or \"suite\")",
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

    /// The client for `t`: the shared one, or on a thread with its own
    /// runtime ([`crate::local`]) that thread's own.
    fn client(&self, t: &Transport) -> Result<reqwest::Client, KeywordError> {
        if crate::local::active() {
            return self.own_client(t);
        }
        cached(&self.clients, t, "client", || {
            build_client(t, self.tls_config(t)?)
        })
    }

    /// This thread's client for `t`, kept until its own runtime ends (its
    /// connections live on that runtime).
    fn own_client(&self, t: &Transport) -> Result<reqwest::Client, KeywordError> {
        thread_local! {
            static OWN: std::cell::RefCell<Option<HashMap<Transport, reqwest::Client>>> =
                const { std::cell::RefCell::new(None) };
        }
        if let Some(found) = OWN.with(|o| o.borrow().as_ref().and_then(|m| m.get(t).cloned())) {
            return Ok(found);
        }
        let client = build_client(t, self.tls_config(t)?)?;
        OWN.with(|o| {
            let mut own = o.borrow_mut();
            if own.is_none() {
                crate::local::on_exit(|| OWN.with(|o| drop(o.borrow_mut().take())));
            }
            own.get_or_insert_with(HashMap::new)
                .insert(t.clone(), client.clone());
        });
        Ok(client)
    }

    fn tls_config(&self, t: &Transport) -> Result<rustls::ClientConfig, KeywordError> {
        cached(&self.tls, t, "TLS", || tls_config(t))
    }

    fn jar(&self, case_id: u64) -> Result<Jar, KeywordError> {
        let mut jars = self
            .jars
            .lock()
            .map_err(|_| KeywordError::new("http cookie jars poisoned"))?;
        Ok(jars.entry(case_id).or_default().clone())
    }

    /// The jar shared by the cases of `suite` (and its prepare and cleanup).
    fn suite_jar(&self, suite: Option<&str>) -> Result<Jar, KeywordError> {
        let suite = suite.unwrap_or("");
        let mut jars = self
            .suite_jars
            .lock()
            .map_err(|_| KeywordError::new("http cookie jars poisoned"))?;
        if let Some(jar) = jars.get(suite) {
            return Ok(jar.clone());
        }
        let jar = Jar::default();
        jars.insert(suite.to_string(), jar.clone());
        Ok(jar)
    }
}

/// The value of `key` in `table`, made by `make` (under the lock) the
/// first time; `what` names the table in the error of a poisoned lock.
fn cached<V: Clone>(
    table: &Mutex<HashMap<Transport, V>>,
    key: &Transport,
    what: &str,
    make: impl FnOnce() -> Result<V, KeywordError>,
) -> Result<V, KeywordError> {
    let mut all = table
        .lock()
        .map_err(|_| KeywordError::new(format!("http {what} table poisoned")))?;
    if let Some(found) = all.get(key) {
        return Ok(found.clone());
    }
    let value = make()?;
    all.insert(key.clone(), value.clone());
    Ok(value)
}

fn build_client(t: &Transport, tls: rustls::ClientConfig) -> Result<reqwest::Client, KeywordError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("atf/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls)
        .dns_resolver(Arc::new(crate::http_timing::TimedResolver))
        .connector_layer(crate::http_timing::TimedConnect)
        .pool_idle_timeout(Duration::from_secs(60));
    if !t.decompress {
        builder = builder.no_gzip().no_brotli().no_zstd().no_deflate();
    }
    if let Some(d) = t.connect_timeout {
        builder = builder.connect_timeout(d);
    }
    match t.version {
        1 => builder = builder.http1_only(),
        2 => builder = builder.http2_prior_knowledge(),
        _ => {}
    }
    match &t.proxy {
        Some(p) => {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|e| KeywordError::new(format!("proxy `{p}`: {e}")))?;
            builder = builder.proxy(proxy);
        }
        None => builder = builder.no_proxy(),
    }
    builder
        .build()
        .map_err(|e| KeywordError::new(format!("cannot build the http client: {e}")))
}

/// The rustls configuration of a client: what reqwest would build from the
/// same options (the system's roots and `cacert` through the platform
/// verifier, or any certificate with `insecure`; the client certificate;
/// ALPN as `http_version` asks), built here so that its session store can
/// time the TLS handshake (see [`crate::http_timing`]).
fn tls_config(t: &Transport) -> Result<rustls::ClientConfig, KeywordError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let setup = |e: rustls::Error| KeywordError::new(format!("TLS set-up: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous();
    let builder = if t.insecure {
        builder.with_custom_certificate_verifier(Arc::new(crate::tls::AnyCertificate(provider)))
    } else {
        let mut extra = Vec::new();
        if let Some(ca) = &t.cacert {
            let pem = read_file(ca, "CA file")?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                extra.push(cert.map_err(|e| {
                    KeywordError::new(format!("the CA file `{}`: {e}", ca.display()))
                })?);
            }
            if extra.is_empty() {
                return Err(KeywordError::new(format!(
                    "the CA file `{}` holds no PEM certificate",
                    ca.display()
                )));
            }
        }
        let verifier = if extra.is_empty() {
            rustls_platform_verifier::Verifier::new(provider)
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        }
        .map_err(setup)?;
        builder.with_custom_certificate_verifier(Arc::new(verifier))
    };
    let mut config = match (&t.cert, &t.key) {
        (Some(cert), key) => {
            let mut pem = read_file(cert, "certificate file")?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(read_file(key, "key file")?);
            }
            let which = || {
                format!(
                    "the client certificate `{}`{}",
                    cert.display(),
                    key.as_ref()
                        .map(|k| format!(" with key `{}`", k.display()))
                        .unwrap_or_default()
                )
            };
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| KeywordError::new(format!("{}: {e}", which())))?;
            if certs.is_empty() {
                return Err(KeywordError::new(format!(
                    "{}: no PEM certificate",
                    which()
                )));
            }
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                KeywordError::new(format!("{}: no private key ({e}); give `key`", which()))
            })?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| KeywordError::new(format!("{}: {e}", which())))?
        }
        (None, Some(_)) => {
            return Err(KeywordError::new(
                "`key` needs `cert`, the client certificate",
            ));
        }
        (None, None) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match t.version {
        1 => vec![b"http/1.1".to_vec()],
        2 => vec![b"h2".to_vec()],
        _ => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    config.resumption =
        rustls::client::Resumption::store(Arc::new(crate::http_timing::TimedSessions::new()));
    Ok(config)
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, KeywordError> {
    std::fs::read(path)
        .map_err(|e| KeywordError::new(format!("cannot read the {what} `{}`: {e}", path.display())))
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

/// The `header_mode` of a step: true for `"append"`.
fn append_headers(c: &Call<'_>) -> Result<bool, KeywordError> {
    match c.str_arg("header_mode")? {
        None => Ok(false),
        Some(m) if m.eq_ignore_ascii_case("replace") => Ok(false),
        Some(m) if m.eq_ignore_ascii_case("append") => Ok(true),
        Some(other) => Err(KeywordError::new(format!(
            "`header_mode` is \"replace\" or \"append\", not `{other}`"
        ))),
    }
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

/// A step's path argument, resolved against the case file's folder and
/// checked against the project's allowed roots.
fn case_path(c: &Call<'_>, env: &Env, file: &str) -> Result<PathBuf, KeywordError> {
    let path = c.base_dir.join(file);
    env.policy.check_path(&path)
}

/// The request body of a step and the Content-Type it implies.
fn request_body(
    c: &Call<'_>,
    env: &Env,
) -> Result<Option<(bytes::Bytes, Option<String>)>, KeywordError> {
    use base64::Engine as _;
    let given: Vec<&str> = BODIES
        .iter()
        .copied()
        .filter(|k| c.arg(k).is_some())
        .collect();
    if given.len() > 1 {
        return Err(KeywordError::new(format!(
            "give only one body; this step gives {}",
            given
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let Some(&which) = given.first() else {
        return Ok(None);
    };
    let v = c.arg(which).unwrap_or(&Value::Null);
    let must_text = |v: &Value| -> Result<String, KeywordError> {
        v.as_str().map(str::to_string).ok_or_else(|| {
            KeywordError::new(format!("`{which}` must be text, got {}", type_name(v)))
        })
    };
    let octets = Some("application/octet-stream".to_string());
    let (bytes, ct): (Vec<u8>, Option<String>) = match which {
        "json" => (
            serde_json::to_vec(v).map_err(|e| KeywordError::new(format!("`json`: {e}")))?,
            Some("application/json".into()),
        ),
        "body" => (text_of(v).into_bytes(), None),
        "xml" => (must_text(v)?.into_bytes(), Some("application/xml".into())),
        "body_base64" => {
            let text = must_text(v)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| KeywordError::new(format!("`body_base64` is not Base64: {e}")))?;
            (bytes, octets)
        }
        "body_hex" => {
            let text: String = must_text(v)?.split_whitespace().collect();
            let bytes = hex::decode(&text)
                .map_err(|e| KeywordError::new(format!("`body_hex` is not hex: {e}")))?;
            (bytes, octets)
        }
        "body_file" => {
            let path = case_path(c, env, &must_text(v)?)?;
            (read_file(&path, "body file")?, octets)
        }
        "form" => {
            let Value::Object(f) = v else {
                return Err(KeywordError::new("`form` must be an object"));
            };
            let mut out = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in f {
                match v {
                    Value::Array(items) => {
                        for i in items {
                            out.append_pair(k, &text_of(i));
                        }
                    }
                    other => {
                        out.append_pair(k, &text_of(other));
                    }
                }
            }
            (
                out.finish().into_bytes(),
                Some("application/x-www-form-urlencoded".into()),
            )
        }
        "multipart" => {
            let Value::Object(parts) = v else {
                return Err(KeywordError::new("`multipart` must be an object"));
            };
            let boundary = format!("atf-{}", uuid::Uuid::new_v4().simple());
            let mut out = Vec::new();
            for (name, v) in parts {
                let items: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    let (data, filename, ct) = multipart_part(c, env, name, item)?;
                    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                    let name = quote(name);
                    match filename {
                        Some(f) => out.extend_from_slice(
                            format!(
                                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{}\"\r\n",
                                quote(&f)
                            )
                            .as_bytes(),
                        ),
                        None => out.extend_from_slice(
                            format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
                        ),
                    }
                    if let Some(ct) = ct {
                        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            (
                out,
                Some(format!("multipart/form-data; boundary={boundary}")),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some((bytes::Bytes::from(bytes), ct)))
}

/// A multipart field name or file name in quotes: `"` and line breaks
/// percent-encoded as browsers do (WHATWG HTML, multipart/form-data).
fn quote(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A multipart part: its bytes, file name and content type.
type Part = (Vec<u8>, Option<String>, Option<String>);

/// One part of a `multipart` argument.
fn multipart_part(c: &Call<'_>, env: &Env, name: &str, v: &Value) -> Result<Part, KeywordError> {
    let Value::Object(m) = v else {
        if v.is_null() {
            return Err(KeywordError::new(format!(
                "multipart field `{name}` is null: give it a value, or leave it out"
            )));
        }
        return Ok((text_of(v).into_bytes(), None, None));
    };
    let text = |key: &str| -> Result<Option<String>, KeywordError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(KeywordError::new(format!(
                "multipart field `{name}`: `{key}` must be text, got {}",
                type_name(other)
            ))),
        }
    };
    for key in m.keys() {
        if !["file", "value", "filename", "content_type"].contains(&key.as_str()) {
            return Err(KeywordError::new(format!(
                "multipart field `{name}`: unexpected `{key}`; known: file, value, filename, content_type"
            )));
        }
    }
    match (text("file")?, m.get("value")) {
        (Some(file), None) => {
            let path = case_path(c, env, &file)?;
            let data = read_file(&path, "multipart file")?;
            let filename = text("filename")?
                .or_else(|| path.file_name().map(|f| f.to_string_lossy().into_owned()));
            let ct = text("content_type")?.unwrap_or_else(|| {
                mime_guess::from_path(&path)
                    .first_or_octet_stream()
                    .essence_str()
                    .to_string()
            });
            Ok((data, filename, Some(ct)))
        }
        (None, Some(value)) => Ok((
            text_of(value).into_bytes(),
            text("filename")?,
            text("content_type")?,
        )),
        _ => Err(KeywordError::new(format!(
            "multipart field `{name}` needs exactly one of `file` and `value`"
        ))),
    }
}

/// `auth: {"digest": ...}`: user and password, answered when the server
/// asks (401 with `WWW-Authenticate: Digest ...`).
#[derive(Clone)]
struct Digest {
    user: String,
    password: String,
}

/// The result fields that cost time to build, and whether to build each:
/// all in `atf run`, only those something reads in `atf load` (see
/// `atf_sdk::Host::reads`).
#[derive(Clone, Copy, Debug)]
struct Fields {
    headers: bool,
    header_list: bool,
    cookies: bool,
    sha256: bool,
    /// `body`, `body_base64`: decoded (and JSON parsed) only when read.
    body: bool,
    timings: bool,
}

impl Fields {
    fn read_by(host: &dyn atf_sdk::Host) -> Fields {
        Fields {
            headers: host.reads("headers"),
            header_list: host.reads("header_list"),
            cookies: host.reads("cookies"),
            sha256: host.reads("sha256"),
            body: host.reads("body") || host.reads("body_base64"),
            timings: host.reads("timings"),
        }
    }
}

/// What one step sends, owned, for the request task.
struct Plan {
    fields: Fields,
    method: reqwest::Method,
    url: url::Url,
    headers: HeaderMap,
    body: Option<bytes::Bytes>,
    digest: Option<Digest>,
    follow: bool,
    max_redirects: u64,
    trusted: bool,
    http10: bool,
    timeout: Duration,
    connect_timeout: Option<Duration>,
}

impl Keyword for Http {
    fn spec(&self) -> KeywordSpec {
        spec()
    }

    fn case_finished(&self, case_id: u64) {
        if let Ok(mut jars) = self.jars.lock() {
            jars.remove(&case_id);
        }
    }

    /// Its request is polled where it is called ([`crate::local`]); it
    /// holds no lock across a wait (its future is `Send`).
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let resource = self.resource(c.resource()?)?;
        let mut transport = resource.transport.clone();
        transport.decompress = c.bool_arg("decompress", true)?;
        transport.insecure = c.bool_arg("insecure", transport.insecure)?;
        if let Some(t) = c.arg("connect_timeout") {
            transport.connect_timeout =
                Some(atf_sdk::parse_duration(t).map_err(|e| format!("`connect_timeout`: {e}"))?);
        }
        let version = c.str_arg("http_version")?;
        transport.version = match version {
            None => 0,
            Some("1.0" | "1.1") => 1,
            Some("2") => 2,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "`http_version` is \"1.0\", \"1.1\" or \"2\", not `{other}`"
                )));
            }
        };
        for (arg, slot) in [
            ("cacert", &mut transport.cacert),
            ("cert", &mut transport.cert),
            ("key", &mut transport.key),
        ] {
            if let Some(file) = c.str_arg(arg)? {
                *slot = Some(case_path(c, &self.env, file)?);
            }
        }
        if let Some(p) = c.str_arg("proxy")? {
            transport.proxy = Some(p.to_string());
        }
        let client = self.client(&transport)?;

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
        let text_url = join_url(resource.base_url.as_deref(), c.required_str("url")?)?;
        let mut url = url::Url::parse(&text_url)
            .map_err(|e| KeywordError::new(format!("`{text_url}` is not a valid URL: {e}")))?;
        match c.arg("query") {
            None => {}
            Some(Value::Object(q)) if !q.is_empty() => {
                let mut pairs = url.query_pairs_mut();
                for (k, v) in q {
                    match v {
                        Value::Array(items) => {
                            for i in items {
                                pairs.append_pair(k, &text_of(i));
                            }
                        }
                        Value::Null => {}
                        other => {
                            pairs.append_pair(k, &text_of(other));
                        }
                    }
                }
            }
            Some(Value::Object(_)) => {}
            Some(_) => return Err(KeywordError::new("`query` must be an object")),
        }

        let mut headers = resource.headers.clone();
        match c.arg("headers") {
            None => {}
            Some(Value::Object(h)) => {
                // Step headers replace resource headers of the same name
                // (all their values, names compared without regard to
                // case), or with `header_mode: "append"` go after them; a
                // list sends each item, in order.
                let step = header_map(h)?;
                if !append_headers(c)? {
                    for name in step.keys() {
                        headers.remove(name);
                    }
                }
                for (name, value) in &step {
                    headers.append(name.clone(), value.clone());
                }
            }
            Some(_) => return Err(KeywordError::new("`headers` must be an object")),
        }
        let mut digest = None;
        if let Some(auth) = c.arg("auth") {
            match authorization(auth, c.host)? {
                Auth::Header(value) => {
                    if !headers.contains_key(header::AUTHORIZATION) {
                        let mut value = HeaderValue::from_str(&value).map_err(|_| {
                            KeywordError::new("`auth` holds a character a header cannot carry")
                        })?;
                        value.set_sensitive(true);
                        headers.insert(header::AUTHORIZATION, value);
                    }
                }
                Auth::Digest(d) => {
                    if !headers.contains_key(header::AUTHORIZATION) {
                        digest = Some(d);
                    }
                }
            }
        }
        let body = match request_body(c, &self.env)? {
            Some((bytes, ct)) => {
                if let Some(ct) = ct
                    && !headers.contains_key(header::CONTENT_TYPE)
                {
                    let ct = HeaderValue::from_str(&ct)
                        .map_err(|_| KeywordError::new("invalid Content-Type"))?;
                    headers.insert(header::CONTENT_TYPE, ct);
                }
                Some(bytes)
            }
            None => None,
        };

        let shared_jar = match c.str_arg("cookie_jar")? {
            None => resource.suite_jar,
            Some(j) if j.eq_ignore_ascii_case("case") => false,
            Some(j) if j.eq_ignore_ascii_case("suite") => true,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "`cookie_jar` is \"case\" or \"suite\", not `{other}`"
                )));
            }
        };
        let jar = if shared_jar {
            self.suite_jar(c.suite())?
        } else {
            self.jar(c.case_id())?
        };
        if c.bool_arg("clear_cookies", false)? {
            lock(&jar)?.clear();
        }
        match c.arg("cookies") {
            None => {}
            Some(Value::Object(set)) => {
                let mut store = lock(&jar)?;
                for (name, value) in set {
                    let value = text_of(value);
                    declare_cookie(&value, c.host);
                    let cookie = RawCookie::build((name.clone(), value)).path("/").build();
                    store.insert_raw(&cookie, &url).map_err(|e| {
                        KeywordError::new(format!("cookie `{name}` cannot be set for {url}: {e}"))
                    })?;
                }
            }
            Some(_) => return Err(KeywordError::new("`cookies` must be an object")),
        }

        let mut timeout = c.remaining();
        if let Some(t) = resource.timeout {
            timeout = timeout.min(t);
        }
        if let Some(t) = c.arg("timeout") {
            timeout = timeout.min(atf_sdk::parse_duration(t).map_err(KeywordError::new)?);
        }
        let max_redirects = match c.arg("max_redirects") {
            None => MAX_REDIRECTS,
            Some(v) => v.as_u64().ok_or_else(|| {
                KeywordError::new(format!(
                    "`max_redirects` must be a whole number ≥ 0, got {v}"
                ))
            })?,
        };
        let plan = Plan {
            fields: Fields::read_by(c.host),
            method,
            url,
            headers,
            body,
            digest,
            follow: c.bool_arg("follow_redirects", true)?,
            max_redirects,
            trusted: c.bool_arg("location_trusted", false)?,
            http10: version == Some("1.0"),
            timeout,
            connect_timeout: transport.connect_timeout,
        };
        // Boxed: the future is large, and it is handed down by value.
        let request = Box::pin(send(client, plan, jar, self.policy.clone()));
        let (result, secrets) = match crate::local::block_on_own(request) {
            Ok(done) => done?,
            Err(request) => crate::run_on(&self.env.runtime, request)?,
        };
        for s in &secrets {
            c.host.secret(s);
        }
        Ok(result)
    }
}

fn lock(jar: &Jar) -> Result<std::sync::MutexGuard<'_, CookieStore>, KeywordError> {
    jar.lock()
        .map_err(|_| KeywordError::new("the case's cookie jar is poisoned"))
}

/// A cookie value long enough to be a token rather than a setting such as
/// `theme=dark` is a secret.
fn cookie_is_secret(value: &str) -> bool {
    value.len() >= 8
}

fn declare_cookie(value: &str, host: &dyn atf_sdk::Host) {
    if cookie_is_secret(value) {
        host.secret(value);
    }
}

/// The text of an HTTP version, as the status line writes it.
fn version_text(v: reqwest::Version) -> &'static str {
    match v {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_11 => "HTTP/1.1",
        reqwest::Version::HTTP_2 => "HTTP/2",
        reqwest::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/?",
    }
}

/// Whether two URLs have the same scheme, host and port (credentials go
/// only there unless `location_trusted`).
fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Sends the plan, following redirects and answering a digest challenge;
/// the result and the secrets met on the way.
async fn send(
    client: reqwest::Client,
    plan: Plan,
    jar: Jar,
    policy: Arc<crate::Policy>,
) -> Result<(Value, Vec<String>), KeywordError> {
    let Plan {
        fields,
        mut method,
        mut url,
        mut headers,
        mut body,
        mut digest,
        follow,
        max_redirects,
        trusted,
        http10,
        timeout,
        connect_timeout,
    } = plan;
    let started = Instant::now();
    let deadline = started + timeout;
    let mut secrets = Vec::new();
    let mut redirects = Vec::new();
    let mut digest_answer: Option<HeaderValue> = None;
    let mut digest_tried = false;
    // The phases of the last request sent (the one whose response is returned).
    let mut hop_started: Instant;
    let mut first_byte: Duration;
    let mut timings: crate::http_timing::Timings;
    let resp = loop {
        let mut sent = headers.clone();
        if let Some(answer) = digest_answer.take() {
            sent.insert(header::AUTHORIZATION, answer);
        }
        let from_jar = {
            let store = lock(&jar)?;
            let pairs: Vec<String> = store
                .get_request_values(&url)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            pairs.join("; ")
        };
        if !from_jar.is_empty() {
            let mut all = sent
                .get_all(header::COOKIE)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>();
            all.push(from_jar);
            let mut value = HeaderValue::from_str(&all.join("; ")).map_err(|_| {
                KeywordError::new("a cookie holds a character a header cannot carry")
            })?;
            value.set_sensitive(true);
            sent.insert(header::COOKIE, value);
        }
        let mut req = client
            .request(method.clone(), url.clone())
            .headers(sent)
            .timeout(deadline.saturating_duration_since(Instant::now()));
        if http10 {
            req = req.version(reqwest::Version::HTTP_10);
        }
        if let Some(b) = &body {
            req = req.body(b.clone());
        }
        hop_started = Instant::now();
        let (resp, phases) = crate::http_timing::measure(req.send()).await;
        let resp = resp.map_err(|e| match connect_timeout {
            // Connecting took longer than `connect_timeout` while the step had
            // time left: the step did not time out, the connection did.
            Some(limit) if e.is_connect() && e.is_timeout() && Instant::now() < deadline => {
                let mut err = request_error(url.as_str(), &e);
                err.timed_out = false;
                err.message = format!(
                    "cannot connect to {url} within `connect_timeout` ({} ms): {}",
                    limit.as_millis(),
                    err.message
                );
                err
            }
            _ => request_error(url.as_str(), &e),
        })?;
        first_byte = hop_started.elapsed();
        timings = phases;
        let set: Vec<RawCookie<'static>> = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .filter_map(|s| RawCookie::parse(s.to_string()).ok())
            .collect();
        for cookie in &set {
            if cookie_is_secret(cookie.value()) {
                secrets.push(format!("{}={}", cookie.name(), cookie.value()));
                secrets.push(cookie.value().to_string());
            }
        }
        if !set.is_empty() {
            lock(&jar)?.store_response_cookies(set.into_iter(), &url);
        }
        let status = resp.status().as_u16();
        if status == 401
            && !digest_tried
            && let Some(d) = &digest
            && let Some(challenge) = resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.trim_start().to_ascii_lowercase().starts_with("digest"))
        {
            digest_tried = true;
            let mut prompt = digest_auth::parse(challenge).map_err(|e| {
                KeywordError::new(format!("the server's digest challenge `{challenge}`: {e}"))
            })?;
            let uri = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            };
            let context = digest_auth::AuthContext::new_with_method(
                d.user.as_str(),
                d.password.as_str(),
                uri,
                body.as_deref(),
                digest_auth::HttpMethod::from(method.as_str()),
            );
            let answer = prompt
                .respond(&context)
                .map_err(|e| KeywordError::new(format!("digest auth: {e}")))?
                .to_header_string();
            let mut value = HeaderValue::from_str(&answer)
                .map_err(|_| KeywordError::new("digest auth: the answer is not a header value"))?;
            value.set_sensitive(true);
            digest_answer = Some(value);
            continue;
        }
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if follow
            && matches!(status, 301 | 302 | 303 | 307 | 308)
            && let Some(location) = location
        {
            if redirects.len() as u64 >= max_redirects {
                return Err(KeywordError::new(format!(
                    "more than {max_redirects} redirects from {} (the last to {location}); \
                     raise `max_redirects` or set `follow_redirects: false`",
                    redirects
                        .first()
                        .and_then(|r: &Value| r.get("from"))
                        .and_then(Value::as_str)
                        .unwrap_or(url.as_str())
                )));
            }
            let next = url.join(&location).map_err(|e| {
                KeywordError::new(format!(
                    "the redirect from {url} to `{location}` is not a valid URL: {e}"
                ))
            })?;
            redirects.push(json!({
                "status": status,
                "location": location,
                "url": next.as_str(),
                "from": url.as_str(),
            }));
            if !same_origin(&url, &next) && !trusted {
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::COOKIE);
                digest = None;
            }
            let to_get = match status {
                301 | 302 => method == reqwest::Method::POST,
                303 => method != reqwest::Method::HEAD,
                _ => false,
            };
            if to_get {
                method = reqwest::Method::GET;
                body = None;
                headers.remove(header::CONTENT_TYPE);
                headers.remove(header::CONTENT_LENGTH);
            }
            url = next;
            digest_tried = false;
            continue;
        }
        break resp;
    };
    for r in &mut redirects {
        if let Some(m) = r.as_object_mut() {
            m.remove("from");
        }
    }

    let status = resp.status().as_u16();
    let http_version = version_text(resp.version());
    let mut result = serde_json::Map::with_capacity(12);
    result.insert("status".into(), json!(status));
    result.insert("http_version".into(), json!(http_version));
    result.insert("url".into(), Value::String(url.to_string()));
    // Every value of a repeated header, joined with ", " (`headers` shows
    // each name once so).
    let joined = |name: &header::HeaderName| -> Option<String> {
        let mut all = resp.headers().get_all(name).iter();
        let first = String::from_utf8_lossy(all.next()?.as_bytes()).into_owned();
        Some(all.fold(first, |mut acc, v| {
            acc.push_str(", ");
            acc.push_str(&String::from_utf8_lossy(v.as_bytes()));
            acc
        }))
    };
    if fields.headers {
        let mut headers = serde_json::Map::with_capacity(resp.headers().keys_len());
        for name in resp.headers().keys() {
            if let Some(value) = joined(name) {
                headers.insert(name.as_str().to_string(), Value::String(value));
            }
        }
        result.insert("headers".into(), Value::Object(headers));
    }
    if fields.header_list {
        let mut header_list = serde_json::Map::new();
        for (name, value) in resp.headers() {
            let text = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
            match header_list.get_mut(name.as_str()) {
                Some(Value::Array(all)) => all.push(text),
                _ => {
                    header_list.insert(name.as_str().to_string(), Value::Array(vec![text]));
                }
            }
        }
        result.insert("header_list".into(), Value::Object(header_list));
    }
    if fields.cookies {
        result.insert("cookies".into(), cookies_of(&*lock(&jar)?));
    }
    result.insert("redirects".into(), Value::Array(redirects));
    let content_type = joined(&header::CONTENT_TYPE);
    // A body still encoded (`decompress: false`) is bytes, whatever its type.
    let encoded = joined(&header::CONTENT_ENCODING)
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"));
    // At most `limits.body` stays in memory; a larger body goes to a file in
    // the report folder, and the result says where.
    let mut resp = resp;
    // Formatted only for an error message.
    struct BodyOf<'u>(&'u reqwest::Url);
    impl std::fmt::Display for BodyOf<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "the response body of {}", self.0)
        }
    }
    match crate::read_capped(&mut resp, &policy, &BodyOf(&url)).await? {
        crate::Body::Memory(bytes) => {
            result.insert("size".into(), json!(bytes.len()));
            if fields.sha256 {
                result.insert("sha256".into(), Value::String(sha256_hex(&bytes)));
            }
            if !fields.body {
                // Nothing reads the body: it was read (the connection is
                // reused), not decoded.
            } else if !encoded && is_text(content_type.as_deref(), &bytes) {
                let is_json = content_type
                    .as_deref()
                    .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
                let text = decode_text(&bytes, content_type.as_deref());
                let body = if is_json && !bytes.is_empty() {
                    serde_json::from_slice(&bytes).unwrap_or(Value::String(text))
                } else {
                    Value::String(text)
                };
                result.insert("body".into(), body);
            } else {
                use base64::Engine as _;
                result.insert("body".into(), Value::Null);
                result.insert(
                    "body_base64".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                );
            }
        }
        crate::Body::File { path, bytes } => {
            result.insert("body".into(), Value::Null);
            result.insert(
                "body_file".into(),
                Value::String(path.display().to_string()),
            );
            result.insert("body_bytes".into(), json!(bytes));
            result.insert("size".into(), json!(bytes));
            if fields.sha256 {
                result.insert("sha256".into(), Value::String(sha256_file(&path)?));
            }
        }
    }
    let elapsed = started.elapsed().as_millis() as u64;
    result.insert("elapsed_ms".into(), json!(elapsed));
    result.insert("duration_ms".into(), json!(elapsed));
    if fields.timings {
        let ms = |d: Duration| (d.as_micros() as f64) / 1000.0;
        result.insert(
            "timings".into(),
            json!({
                "dns_ms": timings.dns_ms,
                "connect_ms": timings.connect_ms,
                "tls_ms": timings.tls_ms,
                "first_byte_ms": ms(first_byte),
                "total_ms": ms(hop_started.elapsed()),
            }),
        );
    }
    let result = Value::Object(result);
    Ok((result, secrets))
}

/// Whether a body is text: a textual `Content-Type` (or one naming a
/// charset), else bytes that are valid UTF-8.
fn is_text(content_type: Option<&str>, bytes: &[u8]) -> bool {
    if let Some(ct) = content_type {
        let ct = ct.to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence.starts_with("text/")
            || [
                "json",
                "xml",
                "javascript",
                "x-www-form-urlencoded",
                "yaml",
                "csv",
            ]
            .iter()
            .any(|t| essence.contains(t))
            || ct.contains("charset=")
        {
            return true;
        }
    }
    std::str::from_utf8(bytes).is_ok()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sha256_file(path: &Path) -> Result<String, KeywordError> {
    use sha2::Digest as _;
    let mut file = std::fs::File::open(path)
        .map_err(|e| KeywordError::new(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| KeywordError::new(format!("cannot read {}: {e}", path.display())))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The cookies of a jar, name → attributes; where two share a name, the
/// one with the longer path wins.
fn cookies_of(store: &CookieStore) -> Value {
    let mut out = serde_json::Map::new();
    let mut paths: HashMap<String, usize> = HashMap::new();
    for c in store.iter_unexpired() {
        let path = String::from(&c.path);
        if paths.get(c.name()).is_some_and(|p| *p > path.len()) {
            continue;
        }
        paths.insert(c.name().to_string(), path.len());
        let domain = match &c.domain {
            CookieDomain::HostOnly(d) | CookieDomain::Suffix(d) => Value::String(d.clone()),
            _ => Value::Null,
        };
        let expires = match &c.expires {
            CookieExpiration::AtUtc(t) => chrono::DateTime::from_timestamp(t.unix_timestamp(), 0)
                .map(|d| Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                .unwrap_or(Value::Null),
            CookieExpiration::SessionEnd => Value::Null,
        };
        out.insert(
            c.name().to_string(),
            json!({
                "value": c.value(),
                "domain": domain,
                "path": path,
                "expires": expires,
                "max_age": c.max_age().map(|d| d.whole_seconds()),
                "secure": c.secure().unwrap_or(false),
                "http_only": c.http_only().unwrap_or(false),
                "same_site": c.same_site().map(|s| s.to_string()),
            }),
        );
    }
    Value::Object(out)
}

/// What an `auth` argument sends.
enum Auth {
    /// An `Authorization` value, sent with the first request.
    Header(String),
    /// Credentials answered to a digest challenge.
    Digest(Digest),
}

/// The `Authorization` value of an `auth` argument; its password or token
/// (and the header value) are declared secret.
fn authorization(auth: &Value, host: &dyn atf_sdk::Host) -> Result<Auth, KeywordError> {
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
        Value::Object(m) if m.len() == 1 && m.contains_key("digest") => {
            let digest = m.get("digest").and_then(Value::as_object).ok_or_else(|| {
                KeywordError::new("`auth`: `digest` must be {\"user\": ..., \"password\": ...}")
            })?;
            let user = text(digest.get("user"), "`digest.user`")?;
            let password = text(digest.get("password"), "`digest.password`")?;
            host.secret(&password);
            return Ok(Auth::Digest(Digest { user, password }));
        }
        _ => {
            return Err(KeywordError::new(
                "`auth` must be {\"basic\": {\"user\": ..., \"password\": ...}}, \
                 {\"digest\": {\"user\": ..., \"password\": ...}} or {\"bearer\": token}",
            ));
        }
    };
    host.secret(&value);
    Ok(Auth::Header(value))
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
    fn text_and_binary_bodies_are_told_apart() {
        assert!(is_text(Some("application/problem+json"), b"{}"));
        assert!(is_text(
            Some("application/octet-stream; charset=utf-8"),
            b"\xff"
        ));
        assert!(is_text(None, "café".as_bytes()));
        assert!(!is_text(Some("image/png"), b"\x89PNG\r\n\x1a\n\xff"));
        assert!(!is_text(None, b"\x00\xff\xfe"));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(same_origin(&u("http://a:80/x"), &u("http://a/y")));
        assert!(!same_origin(&u("http://a/x"), &u("http://b/x")));
        assert!(!same_origin(&u("http://a:1/x"), &u("http://a:2/x")));
        assert!(!same_origin(&u("http://a/x"), &u("https://a/x")));
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
