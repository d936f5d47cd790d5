//! `nats.publish`, `nats.request`, `nats.subscribe` and `nats.consume`: NATS
//! core and JetStream on one client per resource.
//!
//! A resource of kind `nats` is a URL string (`nats://user:pass@host:4222`,
//! several separated by commas; `tls://` for TLS) or an object `{ "url": ...,
//! "token": ..., "buffer": N, "ca": file }`; with `ca` (a PEM file of CA
//! certificates, relative to the folder atf runs in) the connection must use
//! TLS and the server's certificate may also chain to those CAs. Without a `default` resource in the project
//! file, `default` is `nats://127.0.0.1:4222`. The client connects on first
//! use, is shared by every case and reconnects by itself.
//!
//! Core subjects deliver a message only to those subscribed when it is
//! published. As with MQTT, the first step that names a subject subscribes
//! the client to it for the rest of the run and keeps every message, with its
//! arrival time, in a bounded buffer (`buffer`, default 10,000 per subject);
//! `nats.consume` reads the messages that arrived since its case began and
//! meet `match`. `nats.subscribe` (in `prepare`) subscribes ahead of the step
//! that triggers the messages.
//!
//! With `stream`, `nats.consume` reads a JetStream stream instead: the step
//! creates an ephemeral consumer of its own (no acknowledgements, removed
//! afterwards) that starts at the case's start time (`from: case_start`) or
//! at the stream's first message (`from: beginning`), optionally filtered by
//! `subject`. The stream keeps the messages, so nothing needs subscribing
//! ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use futures_util::StreamExt;
use serde_json::Map;
use tokio::sync::OnceCell;

use crate::Env;
use crate::inbox::{self, Inbox, Take, body_json, now_ms};
use crate::mysql::resource_settings;

/// The URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How long `nats.consume` waits when the step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `nats.request` waits for a reply when the step gives no `timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const RESOURCE_DOC: &str = "the nats resource of the project file (default `default`)";

/// The specs of the nats keywords.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new("nats.publish", "Publishes one message to a NATS subject.")
            .required("subject", "string", "the subject (no wildcards)")
            .arg(
                "payload",
                "",
                "the message: text as is, other values as JSON text (empty when absent)",
            )
            .arg(
                "json",
                "",
                "a message sent as JSON text (instead of `payload`)",
            )
            .arg(
                "headers",
                "object",
                "headers, name → text (or a list of texts)",
            )
            .arg(
                "jetstream",
                "boolean",
                "publish through JetStream and wait for the stream's acknowledgement \
                 (default false: a core publish, done once the server has it)",
            )
            .arg("resource", "string", RESOURCE_DOC)
            .result("with `jetstream`: `stream`, `seq` and `duplicate`; otherwise `subject`"),
        KeywordSpec::new(
            "nats.request",
            "Sends a request to a NATS subject and waits for the reply.",
        )
        .required("subject", "string", "the subject a service listens on")
        .arg(
            "payload",
            "",
            "the request: text as is, other values as JSON text (empty when absent)",
        )
        .arg(
            "json",
            "",
            "a request sent as JSON text (instead of `payload`)",
        )
        .arg(
            "headers",
            "object",
            "headers, name → text (or a list of texts)",
        )
        .arg(
            "timeout",
            "string|number",
            "how long to wait for the reply (default 5s, at most the step timeout)",
        )
        .arg("resource", "string", RESOURCE_DOC)
        .result(
            "`payload` (parsed JSON when it is JSON, else text), `headers` (name → text, a list \
             when repeated), `subject`",
        ),
        KeywordSpec::new(
            "nats.subscribe",
            "Subscribes the run to subjects now, so that `nats.consume` sees every message \
             published from here on.",
        )
        .required(
            "subject",
            "string|array",
            "a subject (`*` and `>` wildcards allowed) or a list of them",
        )
        .arg("resource", "string", RESOURCE_DOC)
        .result("`subscribed`: the subjects"),
        KeywordSpec::new(
            "nats.consume",
            "Waits until `count` messages that meet `match` have arrived on a subject (since \
             the case began) or in a JetStream stream.",
        )
        .arg(
            "subject",
            "string",
            "a subject (`*` and `>` allowed), subscribed on first use; with `stream`, a filter \
             on the stream's subjects",
        )
        .arg(
            "stream",
            "string",
            "read this JetStream stream through a consumer made for the step, instead of a \
             core subscription",
        )
        .arg(
            "from",
            "string",
            "with `stream`: `case_start` (default: messages stored since the case began) or \
             `beginning`",
        )
        .arg(
            "match",
            "object",
            "expectations each message must meet, written as in `expect` (e.g. \
             {\"$.payload.orderId\": \"${orderId}\"}); every message matches when absent",
        )
        .arg(
            "count",
            "integer",
            "how many matching messages to wait for (default 1)",
        )
        .arg(
            "timeout",
            "string|number",
            "how long to wait (default 10s, at most the step timeout)",
        )
        .arg("resource", "string", RESOURCE_DOC)
        .result(
            "`messages` (each `subject`, `payload` — parsed JSON when it is JSON, else text —, \
             `headers`, `reply`, `timestamp` in ms (arrival; for a stream, when it was stored), \
             and for a stream `stream` and `seq`) and `count`",
        ),
    ]
}

/// One core subscription held for the run.
struct Sub {
    inbox: Inbox,
    since_ms: i64,
}

/// The client of one nats resource.
/// A subject's subscription and the task that feeds it.
type SubTask = (Arc<Sub>, tokio::task::JoinHandle<()>);

struct Resource {
    /// `nats resource `name` (host:port)`, for messages (no credentials).
    label: String,
    url: String,
    token: Option<String>,
    /// A PEM file of extra trusted CA certificates; TLS is then required.
    ca: Option<String>,
    capacity: usize,
    client: OnceCell<async_nats::Client>,
    /// The JetStream context on that client, made on first use.
    jetstream: OnceCell<async_nats::jetstream::Context>,
    /// Subject → its subscription and the task that feeds it, made once.
    subs: tokio::sync::Mutex<HashMap<String, SubTask>>,
    /// The last error the server or the connection reported.
    last_event: Arc<Mutex<Option<String>>>,
}

impl Resource {
    /// The client, connected on first use (a failed connect is tried again by the next step).
    async fn client(&self, limit: Duration) -> Result<async_nats::Client, KeywordError> {
        let connect = async {
            let events = self.last_event.clone();
            let mut opts = async_nats::ConnectOptions::new()
                .name("atf")
                .connection_timeout(
                    limit.clamp(Duration::from_millis(100), Duration::from_secs(10)),
                )
                // Replies wait as long as each step says, not a client-wide default.
                .request_timeout(None)
                .event_callback(move |event| {
                    let events = events.clone();
                    async move {
                        let text = match &event {
                            async_nats::Event::ServerError(e) => Some(format!("server error: {e}")),
                            async_nats::Event::ClientError(e) => Some(format!("client error: {e}")),
                            async_nats::Event::Disconnected => Some("disconnected".to_string()),
                            async_nats::Event::SlowConsumer(_) => {
                                Some("slow consumer: messages were dropped".to_string())
                            }
                            async_nats::Event::Connected => None,
                            _ => None,
                        };
                        if let Ok(mut last) = events.lock() {
                            *last = text;
                        }
                    }
                });
            if let Some(t) = &self.token {
                opts = opts.token(t.clone());
            }
            if let Some(ca) = &self.ca {
                opts = opts.add_root_certificates(ca.into()).require_tls(true);
            }
            opts.connect(self.url.as_str()).await
        };
        self.client
            .get_or_try_init(|| async {
                match tokio::time::timeout(limit, connect).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(KeywordError::new(format!(
                        "{}: cannot connect: {}",
                        self.label,
                        error_chain(&e)
                    ))),
                    Err(_) => Err(KeywordError::new(format!(
                        "{}: cannot connect within {} ms",
                        self.label,
                        limit.as_millis()
                    ))),
                }
            })
            .await
            .cloned()
    }

    /// The subscription of `subject`, made if the run does not hold it yet.
    async fn subscribe(&self, subject: &str, limit: Duration) -> Result<Arc<Sub>, KeywordError> {
        let mut subs = self.subs.lock().await;
        if let Some((s, task)) = subs.get(subject)
            && !task.is_finished()
        {
            return Ok(s.clone());
        }
        let client = self.client(limit).await?;
        let mut subscriber = client.subscribe(subject.to_string()).await.map_err(|e| {
            KeywordError::new(format!(
                "{}: cannot subscribe to `{subject}`: {}",
                self.label,
                error_chain(&e)
            ))
        })?;
        // The SUB is on the wire before the step goes on.
        let _ = tokio::time::timeout(limit, client.flush()).await;
        let sub = Arc::new(Sub {
            inbox: Inbox::new(self.capacity),
            since_ms: now_ms(),
        });
        let weak = Arc::downgrade(&sub);
        let task = tokio::spawn(async move {
            while let Some(m) = subscriber.next().await {
                let Some(sub) = weak.upgrade() else { return };
                sub.inbox.push(message_json(&m, now_ms()));
            }
            if let Some(sub) = weak.upgrade() {
                sub.inbox
                    .close("the subscription ended (connection closed)".into());
            }
        });
        subs.insert(subject.to_string(), (sub.clone(), task));
        Ok(sub)
    }

    /// The JetStream context of the client.
    async fn jetstream(
        &self,
        limit: Duration,
    ) -> Result<async_nats::jetstream::Context, KeywordError> {
        let client = self.client(limit).await?;
        Ok(self
            .jetstream
            .get_or_init(|| async move { async_nats::jetstream::new(client) })
            .await
            .clone())
    }

    fn last_event(&self) -> Option<String> {
        self.last_event.lock().ok().and_then(|e| e.clone())
    }
}

/// An error with its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// A message as the JSON that `match` is checked against and the step returns.
fn message_json(m: &async_nats::Message, at_ms: i64) -> Value {
    json!({
        "subject": m.subject.as_str(),
        "payload": body_json(&m.payload),
        "headers": headers_json(m.headers.as_ref()),
        "reply": m.reply.as_ref().map(|r| r.as_str()),
        "timestamp": at_ms,
    })
}

fn headers_json(h: Option<&HeaderMap>) -> Value {
    let mut out = Map::new();
    if let Some(h) = h {
        for (name, values) in h.iter() {
            let v = match values.as_slice() {
                [one] => Value::String(one.as_str().to_string()),
                many => Value::Array(
                    many.iter()
                        .map(|v| Value::String(v.as_str().to_string()))
                        .collect(),
                ),
            };
            out.insert(name.to_string(), v);
        }
    }
    Value::Object(out)
}

/// The `headers` argument.
fn headers_arg(c: &Call<'_>) -> Result<Option<HeaderMap>, KeywordError> {
    let Some(v) = c.arg("headers") else {
        return Ok(None);
    };
    let Value::Object(map) = v else {
        return Err(KeywordError::new(format!(
            "argument `headers` must be an object of name → text, got {}",
            type_name(v)
        )));
    };
    let mut h = HeaderMap::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (k, v) in map {
        let name: async_nats::header::HeaderName = k
            .parse()
            .map_err(|e| KeywordError::new(format!("header name `{k}`: {e}")))?;
        match v {
            Value::Array(items) => {
                for item in items {
                    h.append(name.clone(), text(item).as_str());
                }
            }
            other => h.insert(name, text(other).as_str()),
        }
    }
    Ok(Some(h))
}

fn check_subject(subject: &str, wildcards: bool) -> Result<(), KeywordError> {
    let bad_token = subject
        .split('.')
        .any(|t| t.is_empty() || (!wildcards && (t == "*" || t == ">")));
    if subject.is_empty() || subject.contains(char::is_whitespace) || bad_token {
        let why = if wildcards {
            "tokens separated by `.`, no spaces; `*` and `>` as wildcards"
        } else {
            "tokens separated by `.`, no spaces, no wildcards"
        };
        return Err(KeywordError::new(format!(
            "`{subject}` is not a valid subject ({why})"
        )));
    }
    Ok(())
}

/// The nats clients of a run, shared by the keywords.
pub struct Clients {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Clients {
    /// Clients for `env`'s nats resources; none connects yet.
    pub fn new(env: Env) -> Clients {
        Clients {
            env,
            resources: Mutex::new(HashMap::new()),
        }
    }

    fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut resources = self
            .resources
            .lock()
            .map_err(|_| KeywordError::new("nats client table poisoned"))?;
        if let Some(r) = resources.get(name) {
            return Ok(r.clone());
        }
        let settings = resource_settings(&self.env, "nats", name, json!(DEFAULT_URL))?;
        let r = Arc::new(resource_from(name, &settings)?);
        resources.insert(name.to_string(), r.clone());
        Ok(r)
    }

    /// Closes every client; call before the runtime stops.
    pub fn shutdown(&self) {
        let resources: Vec<Arc<Resource>> = match self.resources.lock() {
            Ok(mut r) => r.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        for r in resources {
            if let Ok(subs) = r.subs.try_lock() {
                for (_, task) in subs.values() {
                    task.abort();
                }
            }
            if let Some(c) = r.client.get() {
                let c = c.clone();
                let _ = self.env.runtime.block_on(async move {
                    tokio::time::timeout(Duration::from_secs(5), c.flush()).await
                });
            }
        }
    }
}

fn resource_from(name: &str, settings: &Value) -> Result<Resource, KeywordError> {
    let bad = |what: String| KeywordError::new(format!("nats resource `{name}`: {what}"));
    let mut token = None;
    let mut ca = None;
    let mut capacity = inbox::DEFAULT_CAPACITY;
    let url = match settings {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            let mut url = None;
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("url", Value::String(s)) => url = Some(s.clone()),
                    ("token", Value::String(s)) => token = Some(s.clone()),
                    ("ca", Value::String(s)) => ca = Some(s.clone()),
                    ("buffer", v) => match v.as_u64() {
                        Some(n) if n >= 1 => capacity = n as usize,
                        _ => {
                            return Err(bad(format!("buffer must be a positive integer, got {v}")));
                        }
                    },
                    (other, v) => {
                        return Err(bad(format!(
                            "unexpected `{other}` ({}); known: url, token, buffer, ca",
                            type_name(v)
                        )));
                    }
                }
            }
            url.ok_or_else(|| bad("`url` is missing".into()))?
        }
        other => {
            return Err(bad(format!(
                "must be a URL string such as \"{DEFAULT_URL}\" or an object with `url`, got {}",
                type_name(other)
            )));
        }
    };
    // The label shows hosts only: the URL may hold a user and password.
    let mut hosts = Vec::new();
    for part in url.split(',') {
        let part = part.trim();
        let with_scheme = if part.contains("://") {
            part.to_string()
        } else {
            format!("nats://{part}")
        };
        let parsed = url::Url::parse(&with_scheme).map_err(|e| bad(format!("invalid URL: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("the URL has no host".into()))?;
        hosts.push(format!("{host}:{}", parsed.port().unwrap_or(4222)));
    }
    Ok(Resource {
        label: format!("nats resource `{name}` ({})", hosts.join(", ")),
        url,
        token,
        ca,
        capacity,
        client: OnceCell::new(),
        jetstream: OnceCell::new(),
        subs: tokio::sync::Mutex::new(HashMap::new()),
        last_event: Arc::new(Mutex::new(None)),
    })
}

/// Creates the nats keywords and the clients they share.
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Clients>) {
    let clients = Arc::new(Clients::new(env.clone()));
    let kws: Vec<Arc<dyn Keyword>> = vec![
        Arc::new(Publish(clients.clone())),
        Arc::new(Request(clients.clone())),
        Arc::new(Subscribe(clients.clone())),
        Arc::new(Consume(clients.clone())),
    ];
    (kws, clients)
}

/// `nats.publish`.
pub struct Publish(Arc<Clients>);

impl Keyword for Publish {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    /// It waits only in [`crate::run_on`], [`crate::local::block_on_own`]
    /// and its inbox (all of which suspend a virtual user's coroutine),
    /// holding no lock across them.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let subject = c.required_str("subject")?.to_string();
        check_subject(&subject, false)?;
        let payload = inbox::payload_arg(c)?;
        let headers = headers_arg(c)?;
        let jetstream = c.bool_arg("jetstream", false)?;
        let r = self.0.resource(c.resource()?)?;
        let limit = c.remaining();
        crate::run_on(&self.0.env.runtime, async move {
            let work = async {
                let client = r.client(limit).await?;
                let failed = |e: &dyn std::error::Error| {
                    KeywordError::new(format!(
                        "{}: publish to `{subject}`: {}",
                        r.label,
                        error_chain(e)
                    ))
                };
                if jetstream {
                    let js = r.jetstream(limit).await?;
                    let ack = match headers {
                        Some(h) => js
                            .publish_with_headers(subject.clone(), h, payload.into())
                            .await
                            .map_err(|e| failed(&e))?,
                        None => js
                            .publish(subject.clone(), payload.into())
                            .await
                            .map_err(|e| failed(&e))?,
                    };
                    let ack = ack.await.map_err(|e| failed(&e))?;
                    return Ok(json!({
                        "subject": subject,
                        "stream": ack.stream,
                        "seq": ack.sequence,
                        "duplicate": ack.duplicate,
                    }));
                }
                match headers {
                    Some(h) => client
                        .publish_with_headers(subject.clone(), h, payload.into())
                        .await
                        .map_err(|e| failed(&e))?,
                    None => client
                        .publish(subject.clone(), payload.into())
                        .await
                        .map_err(|e| failed(&e))?,
                }
                client.flush().await.map_err(|e| failed(&e))?;
                Ok(json!({ "subject": subject }))
            };
            match tokio::time::timeout(limit, work).await {
                Ok(out) => out,
                Err(_) => Err(KeywordError::new(format!(
                    "{}: publish not done within {} ms{}",
                    r.label,
                    limit.as_millis(),
                    r.last_event()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ))),
            }
        })
    }
}

/// `nats.request`.
pub struct Request(Arc<Clients>);

impl Keyword for Request {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    /// It waits only in [`crate::run_on`], [`crate::local::block_on_own`]
    /// and its inbox (all of which suspend a virtual user's coroutine),
    /// holding no lock across them.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let subject = c.required_str("subject")?.to_string();
        check_subject(&subject, false)?;
        let payload = inbox::payload_arg(c)?;
        let headers = headers_arg(c)?;
        let timeout = inbox::duration_arg(c, "timeout", DEFAULT_REQUEST_TIMEOUT)?;
        let r = self.0.resource(c.resource()?)?;
        crate::run_on(&self.0.env.runtime, async move {
            let client = r.client(timeout).await?;
            let mut req = async_nats::Request::new()
                .payload(payload.into())
                .timeout(Some(timeout));
            if let Some(h) = headers {
                req = req.headers(h);
            }
            use async_nats::RequestErrorKind as K;
            match client.send_request(subject.clone(), req).await {
                Ok(m) => Ok(json!({
                    "subject": m.subject.as_str(),
                    "payload": body_json(&m.payload),
                    "headers": headers_json(m.headers.as_ref()),
                })),
                Err(e) => Err(KeywordError::new(match e.kind() {
                    K::NoResponders => {
                        format!("{}: no responders on `{subject}`", r.label)
                    }
                    K::TimedOut => format!(
                        "{}: no reply on `{subject}` within {} ms",
                        r.label,
                        timeout.as_millis()
                    ),
                    _ => format!("{}: request to `{subject}`: {}", r.label, error_chain(&e)),
                })),
            }
        })
    }
}

/// `nats.subscribe`.
pub struct Subscribe(Arc<Clients>);

impl Keyword for Subscribe {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(2)
    }

    /// It waits only in [`crate::run_on`], [`crate::local::block_on_own`]
    /// and its inbox (all of which suspend a virtual user's coroutine),
    /// holding no lock across them.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let subjects: Vec<String> = match c.arg("subject") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(KeywordError::new(format!(
                        "`subject` lists subjects (text), got {}",
                        type_name(other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `subject` must be a subject or a non-empty list of them, got {other}"
                )));
            }
            None => return Err(KeywordError::new("argument `subject` is required")),
        };
        for s in &subjects {
            check_subject(s, true)?;
        }
        let r = self.0.resource(c.resource()?)?;
        let limit = c.remaining();
        crate::run_on(&self.0.env.runtime, async move {
            for s in &subjects {
                r.subscribe(s, limit).await?;
            }
            Ok(json!({ "subscribed": subjects }))
        })
    }
}

/// `nats.consume`.
pub struct Consume(Arc<Clients>);

impl Keyword for Consume {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(3)
    }

    /// It waits only in [`crate::run_on`], [`crate::local::block_on_own`]
    /// and its inbox (all of which suspend a virtual user's coroutine),
    /// holding no lock across them.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let subject = c.str_arg("subject")?.map(str::to_string);
        let stream = c.str_arg("stream")?.map(str::to_string);
        let expect = inbox::match_arg(c)?;
        let count = inbox::count_arg(c)?;
        let timeout = inbox::duration_arg(c, "timeout", DEFAULT_TIMEOUT)?;
        let end = Instant::now() + timeout;
        let r = self.0.resource(c.resource()?)?;
        if let Some(s) = &subject {
            check_subject(s, true)?;
        }
        match stream {
            Some(stream) => self.from_stream(c, r, stream, subject, expect, count, timeout, end),
            None => {
                let Some(subject) = subject else {
                    return Err(KeywordError::new(
                        "give `subject` (a core subscription) or `stream` (JetStream)",
                    ));
                };
                if c.arg("from").is_some() {
                    return Err(KeywordError::new(
                        "`from` applies to `stream` only: a core subject keeps no history",
                    ));
                }
                let sub = {
                    let r = r.clone();
                    let s = subject.clone();
                    crate::run_on(&self.0.env.runtime, async move {
                        r.subscribe(&s, timeout).await
                    })?
                };
                let found = sub.inbox.wait(
                    c,
                    c.case_start_ms,
                    &|_| true,
                    expect,
                    count,
                    end,
                    Take::Keep,
                )?;
                if found.matched.len() >= count {
                    let n = found.matched.len();
                    return Ok(json!({ "messages": found.matched, "count": n }));
                }
                let mut msg = format!(
                    "{count} matching message(s) expected on `{subject}` within {} ms: saw {} \
                     message(s) since the case began, {} matched",
                    timeout.as_millis(),
                    found.seen,
                    found.matched.len()
                );
                if sub.since_ms > c.case_start_ms {
                    msg.push_str(&format!(
                        "; `{subject}` was first subscribed {} ms after the case began, so \
                         messages published before that are not seen (subscribe earlier with \
                         `nats.subscribe` in `prepare`)",
                        sub.since_ms - c.case_start_ms
                    ));
                }
                if found.dropped {
                    msg.push_str(
                        "; some messages of this case were dropped because the buffer was full \
                         (raise the resource's `buffer`)",
                    );
                }
                if let Some(why) = found.closed {
                    msg.push_str(&format!("; {why}"));
                }
                Err(KeywordError::new(msg))
            }
        }
    }
}

impl Consume {
    #[allow(clippy::too_many_arguments, clippy::wrong_self_convention)]
    fn from_stream(
        &self,
        c: &Call<'_>,
        r: Arc<Resource>,
        stream: String,
        subject: Option<String>,
        expect: Option<&Value>,
        count: usize,
        timeout: Duration,
        end: Instant,
    ) -> KeywordResult {
        let deliver = match c.str_arg("from")? {
            None | Some("case_start") => {
                let start = chrono::DateTime::from_timestamp_millis(c.case_start_ms)
                    .ok_or_else(|| KeywordError::new("the case start time is out of range"))?;
                DeliverPolicy::ByStartTime { start_time: start }
            }
            Some("beginning") => DeliverPolicy::All,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `from` is `case_start` or `beginning`, not `{other}`"
                )));
            }
        };
        // The messages arrive on the runtime; `match` is checked here.
        let inbox = Arc::new(Inbox::new(r.capacity));
        let feed = inbox.clone();
        let label = r.label.clone();
        let stream_name = stream.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), KeywordError>>();
        let task = self.0.env.runtime.spawn(async move {
            let setup = async {
                let js = r.jetstream(timeout).await?;
                let failed = |what: &str, e: &dyn std::error::Error| {
                    KeywordError::new(format!(
                        "{label}: {what} `{stream_name}`: {}",
                        error_chain(e)
                    ))
                };
                let st = js
                    .get_stream(&stream_name)
                    .await
                    .map_err(|e| failed("cannot find stream", &e))?;
                let consumer = st
                    .create_consumer(pull::Config {
                        deliver_policy: deliver,
                        ack_policy: AckPolicy::None,
                        filter_subject: subject.unwrap_or_default(),
                        inactive_threshold: Duration::from_secs(60),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| failed("cannot create a consumer on", &e))?;
                let name = consumer.cached_info().name.clone();
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(256)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await
                    .map_err(|e| failed("cannot read", &e))?;
                Ok::<_, KeywordError>((st, name, messages))
            };
            let (st, name, mut messages) = match setup.await {
                Ok(x) => {
                    let _ = ready_tx.send(Ok(()));
                    x
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            // Removes the consumer when the step is done with it (the task is aborted or ends).
            struct Cleanup(Option<(async_nats::jetstream::stream::Stream, String)>);
            impl Drop for Cleanup {
                fn drop(&mut self) {
                    if let Some((st, name)) = self.0.take()
                        && let Ok(rt) = tokio::runtime::Handle::try_current()
                    {
                        rt.spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(5),
                                st.delete_consumer(&name),
                            )
                            .await;
                        });
                    }
                }
            }
            let _cleanup = Cleanup(Some((st, name)));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(m) => {
                        let (stored_ms, seq, stream) = match m.info() {
                            Ok(info) => (
                                info.published.timestamp_millis(),
                                Some(info.stream_sequence),
                                Some(info.stream.to_string()),
                            ),
                            Err(_) => (now_ms(), None, None),
                        };
                        let mut v = message_json(&m.message, stored_ms);
                        v["stream"] = json!(stream);
                        v["seq"] = json!(seq);
                        feed.push_at(stored_ms, v);
                    }
                    Err(e) => {
                        feed.close(format!("reading the stream failed: {}", error_chain(&e)));
                        return;
                    }
                }
            }
        });
        let abort = task.abort_handle();
        // Waited for as a keyword waits: a virtual user sharing its thread
        // is suspended meanwhile.
        // (An async block: its timer is made where it is polled, on a runtime.)
        let limit = timeout.max(Duration::from_millis(1));
        let ready = async move { tokio::time::timeout(limit, ready_rx).await };
        let ready = crate::wait_here(&self.0.env.runtime, ready);
        let setup = match ready {
            Ok(Ok(setup)) => setup,
            _ => Err(KeywordError::new(format!(
                "cannot open a consumer on stream `{stream}` within {} ms",
                timeout.as_millis()
            ))),
        };
        if let Err(e) = setup {
            abort.abort();
            return Err(e);
        }
        let found = inbox.wait(c, i64::MIN, &|_| true, expect, count, end, Take::Keep);
        abort.abort();
        let found = found?;
        if found.matched.len() >= count {
            let n = found.matched.len();
            return Ok(json!({ "messages": found.matched, "count": n }));
        }
        let mut msg = format!(
            "{count} matching message(s) expected in stream `{stream}` within {} ms: saw {} \
             message(s){}, {} matched",
            timeout.as_millis(),
            found.seen,
            if c.arg("from").is_none() || c.str_arg("from")? == Some("case_start") {
                " stored since the case began"
            } else {
                ""
            },
            found.matched.len()
        );
        if let Some(why) = found.closed {
            msg.push_str(&format!("; {why}"));
        }
        Err(KeywordError::new(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        assert!(check_subject("orders.created", false).is_ok());
        assert!(check_subject("orders.*", true).is_ok());
        assert!(check_subject("orders.>", true).is_ok());
        assert!(check_subject("orders.*", false).is_err());
        assert!(check_subject("orders..x", true).is_err());
        assert!(check_subject("has space", true).is_err());
        assert!(check_subject("", true).is_err());
    }

    #[test]
    fn the_label_shows_hosts_without_credentials() {
        let r = resource_from("default", &json!("nats://bob:secret@h1:4223,h2")).unwrap();
        assert_eq!(r.label, "nats resource `default` (h1:4223, h2:4222)");
        assert!(!r.label.contains("secret"));
        let r = resource_from("x", &json!({"url": "nats://h", "token": "t", "buffer": 3})).unwrap();
        assert_eq!(r.capacity, 3);
        assert_eq!(r.token.as_deref(), Some("t"));
        assert!(resource_from("x", &json!({"url": "nats://h", "tokn": "t"})).is_err());
        assert!(resource_from("x", &json!(5)).is_err());
    }

    #[test]
    fn headers_become_json() {
        let mut h = HeaderMap::new();
        h.insert("a", "1");
        h.append("b", "x");
        h.append("b", "y");
        let v = headers_json(Some(&h));
        assert_eq!(v["a"], json!("1"));
        assert_eq!(v["b"], json!(["x", "y"]));
    }
}
