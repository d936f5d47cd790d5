//! `ws.connect`, `ws.send`, `ws.receive` and `ws.close`: WebSocket
//! connections that live for one case.
//!
//! `ws.connect` opens a connection under a `name` (default `default`) that
//! belongs to the case that opened it: other cases running at the same time
//! cannot see it, and the runner closes it when the case ends (after its
//! cleanup), whatever happened. A connection is therefore made per case —
//! WebSocket sessions are stateful, so sharing one between cases would mix
//! their conversations. Steps of a suite's prepare or cleanup have no case and
//! cannot open one.
//!
//! A resource of kind `ws` is optional: a base URL string, or an object
//! `{ "base_url": "ws://host:port", "headers": {...}, "ca": file }` whose
//! headers go with every handshake; a `url` that is a path is joined to its
//! `base_url`. `wss://` checks the server's certificate against the system's
//! roots and, with `ca`, also against the CA certificates of that PEM file
//! (relative to the folder atf runs in), as for a test server with a
//! certificate of its own CA.
//!
//! Each connection has a reading task that keeps every text and binary
//! message that arrives in an [`Inbox`], from the handshake on (pings are
//! answered, not kept). `ws.receive` returns the oldest messages that meet
//! its `match` and takes them out, so the next `ws.receive` sees only
//! messages not yet returned; messages that did not match stay for later
//! steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use base64::Engine as _;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Map;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::Env;
use crate::inbox::{self, Inbox, Take, body_json, now_ms};

/// How long `ws.receive` waits when the step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages kept per connection until a step takes them.
const CAPACITY: usize = inbox::DEFAULT_CAPACITY;

const NAME_DOC: &str = "the connection's name within the case (default `default`)";

/// The specs of the ws keywords.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new(
            "ws.connect",
            "Opens a WebSocket connection that lives until `ws.close` or the end of the case.",
        )
        .required(
            "url",
            "string",
            "ws:// or wss:// URL, or a path joined to the resource's base_url",
        )
        .arg("headers", "object", "handshake headers, name → value")
        .headers()
        .arg(
            "subprotocols",
            "array",
            "subprotocols to offer (Sec-WebSocket-Protocol), in order of preference",
        )
        .arg("name", "string", NAME_DOC)
        .arg(
            "timeout",
            "string|number",
            "how long the handshake may take (default: the step timeout)",
        )
        .arg(
            "resource",
            "string",
            "the ws resource of the project file (default `default`; optional)",
        )
        .result(
            "`status` (101), `headers` of the handshake response (lower-case names → text), \
             `protocol` (the subprotocol the server chose, or null)",
        ),
        KeywordSpec::new(
            "ws.send",
            "Sends one message on an open WebSocket connection.",
        )
        .arg("text", "string", "a text message")
        .arg("json", "", "a text message holding this value as JSON")
        .arg("binary", "string", "a binary message, given as base64")
        .arg("name", "string", NAME_DOC)
        .result("`type` (`text` or `binary`) and `bytes` sent"),
        KeywordSpec::new(
            "ws.receive",
            "Waits for `count` messages that meet `match` on an open WebSocket connection and \
             takes them.",
        )
        .arg(
            "match",
            "object",
            "expectations each message must meet, written as in `expect` (e.g. \
             {\"$.data.type\": \"pong\"}); every message matches when absent",
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
        .arg("name", "string", NAME_DOC)
        .result(
            "`messages` (each `type` — `text` or `binary` —, `data` — parsed JSON when a text \
             message is JSON, else text; base64 for binary —, `timestamp` (arrival, ms)) and \
             `count`",
        ),
        KeywordSpec::new(
            "ws.close",
            "Closes a WebSocket connection and waits for the server's answer.",
        )
        .arg("code", "integer", "the close code (default 1000)")
        .arg("reason", "string", "the close reason (default empty)")
        .arg("name", "string", NAME_DOC)
        .result(
            "`code` and `reason` of the server's close frame (null when it sent none or did not \
             answer within the step timeout)",
        ),
    ]
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How the server ended a connection.
#[derive(Clone, Debug, Default)]
struct Ended {
    code: Option<u16>,
    reason: Option<String>,
}

/// One open connection.
struct Conn {
    /// The URL without user, password or query, for messages.
    label: String,
    sink: tokio::sync::Mutex<SplitSink<Socket, Message>>,
    inbox: Arc<Inbox>,
    /// Set by the reading task when the connection ends.
    ended: tokio::sync::watch::Sender<Option<Ended>>,
    reader: tokio::task::AbortHandle,
}

/// The connections of every running case, by case and name.
pub struct Connections {
    env: Env,
    open: Mutex<HashMap<(u64, String), Arc<Conn>>>,
}

impl Connections {
    /// No connection yet.
    pub fn new(env: Env) -> Connections {
        Connections {
            env,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, c: &Call<'_>) -> Result<(String, Arc<Conn>), KeywordError> {
        let name = c.str_arg("name")?.unwrap_or("default").to_string();
        let open = self
            .open
            .lock()
            .map_err(|_| KeywordError::new("ws connection table poisoned"))?;
        match open.get(&(c.case_id(), name.clone())) {
            Some(conn) => Ok((name, conn.clone())),
            None => {
                let mut names: Vec<&str> = open
                    .keys()
                    .filter(|(case, _)| *case == c.case_id())
                    .map(|(_, n)| n.as_str())
                    .collect();
                names.sort();
                Err(KeywordError::new(format!(
                    "no WebSocket connection `{name}` is open in this case ({}); open it with \
                     ws.connect",
                    if names.is_empty() {
                        "none is".to_string()
                    } else {
                        format!("open: {}", names.join(", "))
                    }
                )))
            }
        }
    }

    /// Closes every connection of `case_id` (without waiting for the servers).
    pub fn close_case(&self, case_id: u64) {
        let gone: Vec<Arc<Conn>> = match self.open.lock() {
            Ok(mut open) => {
                let keys: Vec<(u64, String)> = open
                    .keys()
                    .filter(|(c, _)| *c == case_id)
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| open.remove(k)).collect()
            }
            Err(_) => return,
        };
        for conn in gone {
            self.env.runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut sink = conn.sink.lock().await;
                    let _ = sink.send(Message::Close(None)).await;
                    let _ = sink.close().await;
                })
                .await;
                conn.reader.abort();
            });
        }
    }

    /// Closes every connection left; call before the runtime stops.
    pub fn shutdown(&self) {
        let cases: Vec<u64> = match self.open.lock() {
            Ok(open) => open.keys().map(|(c, _)| *c).collect(),
            Err(_) => return,
        };
        for c in cases {
            self.close_case(c);
        }
    }
}

/// Where a step connects: the URL, the headers and the extra CA file of its resource.
#[derive(Debug)]
struct Target {
    url: String,
    headers: Vec<(String, String)>,
    ca: Option<String>,
}

/// The URL to connect to and what a resource adds.
fn target(env: &Env, resource: &str, url: &str) -> Result<Target, KeywordError> {
    let mut base = None;
    let mut headers = Vec::new();
    let mut ca = None;
    match env.resource("ws", resource) {
        None if resource == "default" => {}
        None => {
            let mut known = env.resource_names("ws");
            if !known.iter().any(|k| k == "default") {
                known.insert(0, "default".into());
            }
            return Err(KeywordError::new(format!(
                "no ws resource `{resource}` in the project file (known: {})",
                known.join(", ")
            )));
        }
        Some(Value::String(s)) => base = Some(s.clone()),
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("base_url", Value::String(s)) => base = Some(s.clone()),
                    ("ca", Value::String(s)) => ca = Some(s.clone()),
                    ("headers", Value::Object(h)) => {
                        for (name, value) in h {
                            headers.push((name.clone(), header_text(value)));
                        }
                    }
                    (other, v) => {
                        return Err(KeywordError::new(format!(
                            "ws resource `{resource}`: unexpected `{other}` ({}); known: \
                             base_url, headers, ca",
                            type_name(v)
                        )));
                    }
                }
            }
        }
        Some(other) => {
            return Err(KeywordError::new(format!(
                "ws resource `{resource}` must be a base URL or an object with `base_url`, got {}",
                type_name(other)
            )));
        }
    }
    let full = if url.starts_with("ws://") || url.starts_with("wss://") {
        url.to_string()
    } else if let Some(base) = base {
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            url.trim_start_matches('/')
        )
    } else {
        return Err(KeywordError::new(format!(
            "`{url}` is not a ws:// or wss:// URL, and the ws resource `{resource}` has no \
             base_url to join it to"
        )));
    };
    Ok(Target {
        url: full,
        headers,
        ca,
    })
}

/// A TLS connector trusting the system's roots and the CA certificates of the PEM file `ca`.
fn tls_with_ca(resource: &str, ca: &str) -> Result<Connector, KeywordError> {
    crate::tls::with_ca(ca)
        .map(Connector::Rustls)
        .map_err(|e| KeywordError::new(format!("ws resource `{resource}`: {e}")))
}

fn header_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A URL without its user, password and query, for messages.
fn label_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "the URL".to_string(),
    }
}

fn ws_error(label: &str, e: WsError) -> KeywordError {
    match e {
        WsError::Http(resp) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .chars()
                        .take(500)
                        .collect::<String>()
                })
                .unwrap_or_default();
            KeywordError::new(format!(
                "{label}: the server refused the WebSocket handshake with HTTP {}{}",
                resp.status(),
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {body}")
                }
            ))
        }
        other => {
            use std::error::Error;
            let mut msg = other.to_string();
            let mut source = other.source();
            while let Some(s) = source {
                let t = s.to_string();
                if !msg.contains(&t) {
                    msg.push_str(": ");
                    msg.push_str(&t);
                }
                source = s.source();
            }
            KeywordError::new(format!("{label}: {msg}"))
        }
    }
}

/// Reads the connection until it ends, keeping text and binary messages.
async fn read_loop(
    mut stream: SplitStream<Socket>,
    inbox: Arc<Inbox>,
    ended: tokio::sync::watch::Sender<Option<Ended>>,
) {
    let mut end = Ended::default();
    let mut why = "the connection ended".to_string();
    while let Some(item) = stream.next().await {
        match item {
            Ok(Message::Text(t)) => inbox.push(json!({
                "type": "text",
                "data": body_json(t.as_bytes()),
                "timestamp": now_ms(),
            })),
            Ok(Message::Binary(b)) => inbox.push(json!({
                "type": "binary",
                "data": base64::engine::general_purpose::STANDARD.encode(&b),
                "timestamp": now_ms(),
            })),
            Ok(Message::Close(frame)) => {
                if let Some(f) = frame {
                    end.code = Some(u16::from(f.code));
                    end.reason = Some(f.reason.to_string());
                }
                why = match (&end.code, &end.reason) {
                    (Some(code), Some(r)) if !r.is_empty() => {
                        format!("the server closed the connection (code {code}: {r})")
                    }
                    (Some(code), _) => format!("the server closed the connection (code {code})"),
                    _ => "the server closed the connection".to_string(),
                };
                break;
            }
            Ok(_) => {}
            Err(e) => {
                why = format!("the connection failed: {e}");
                break;
            }
        }
    }
    inbox.close(why);
    ended.send_replace(Some(end));
}

/// Creates the ws keywords and the connection table they share.
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Connections>) {
    let conns = Arc::new(Connections::new(env.clone()));
    let kws: Vec<Arc<dyn Keyword>> = vec![
        Arc::new(Connect(conns.clone())),
        Arc::new(Send(conns.clone())),
        Arc::new(Receive(conns.clone())),
        Arc::new(Close(conns.clone())),
    ];
    (kws, conns)
}

/// `ws.connect`; it also closes a case's connections when the case ends.
pub struct Connect(Arc<Connections>);

impl Keyword for Connect {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    fn case_finished(&self, case_id: u64) {
        self.0.close_case(case_id);
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        if c.case_id() == 0 {
            return Err(KeywordError::new(
                "ws.connect runs in a case only: a WebSocket connection lives for one case \
                 (open it in the case's prepare or steps)",
            ));
        }
        let name = c.str_arg("name")?.unwrap_or("default").to_string();
        let url = c.required_str("url")?;
        let Target {
            url,
            mut headers,
            ca,
        } = target(&self.0.env, c.resource()?, url)?;
        let connector = match &ca {
            Some(ca) if url.starts_with("wss://") => Some(tls_with_ca(c.resource()?, ca)?),
            _ => None,
        };
        match c.arg("headers") {
            None => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(k));
                    headers.push((k.clone(), header_text(v)));
                }
            }
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `headers` must be an object, got {}",
                    type_name(other)
                )));
            }
        }
        let protocols: Vec<String> = match c.arg("subprotocols") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(header_text).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `subprotocols` must be a list of names, got {}",
                    type_name(other)
                )));
            }
        };
        {
            let open = self
                .0
                .open
                .lock()
                .map_err(|_| KeywordError::new("ws connection table poisoned"))?;
            if open.contains_key(&(c.case_id(), name.clone())) {
                return Err(KeywordError::new(format!(
                    "a WebSocket connection `{name}` is already open in this case: close it \
                     first or give another `name`"
                )));
            }
        }
        let label = label_of(&url);
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ws_error(&label, e))?;
        for (k, v) in &headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| KeywordError::new(format!("header name `{k}`: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| KeywordError::new(format!("header `{k}`: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        if !protocols.is_empty() {
            let value = HeaderValue::from_str(&protocols.join(", "))
                .map_err(|e| KeywordError::new(format!("subprotocols: {e}")))?;
            request
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
        let timeout = inbox::duration_arg(c, "timeout", c.remaining())?;
        let l = label.clone();
        let (socket, response) = crate::run_on(&self.0.env.runtime, async move {
            let connect =
                tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
            match tokio::time::timeout(timeout, connect).await {
                Ok(r) => r.map_err(|e| ws_error(&l, e)),
                Err(_) => Err(KeywordError::new(format!(
                    "{l}: no WebSocket handshake within {} ms",
                    timeout.as_millis()
                ))),
            }
        })?;
        let mut response_headers = Map::new();
        for (k, v) in response.headers() {
            response_headers.insert(
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).to_string()),
            );
        }
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string());
        let (sink, stream) = socket.split();
        let (ended, _) = tokio::sync::watch::channel(None);
        let ended_tx = ended.clone();
        let inbox = Arc::new(Inbox::new(CAPACITY));
        let reader = self
            .0
            .env
            .runtime
            .spawn(read_loop(stream, inbox.clone(), ended_tx))
            .abort_handle();
        let conn = Arc::new(Conn {
            label,
            sink: tokio::sync::Mutex::new(sink),
            inbox,
            ended,
            reader,
        });
        if let Ok(mut open) = self.0.open.lock() {
            open.insert((c.case_id(), name), conn);
        }
        Ok(json!({
            "status": response.status().as_u16(),
            "headers": response_headers,
            "protocol": protocol,
        }))
    }
}

/// `ws.send`.
pub struct Send(Arc<Connections>);

impl Keyword for Send {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let given: Vec<&str> = ["text", "json", "binary"]
            .into_iter()
            .filter(|k| c.arg(k).is_some())
            .collect();
        let msg = match given.as_slice() {
            ["text"] => Message::text(c.required_str("text")?.to_string()),
            ["json"] => Message::text(c.arg("json").map(Value::to_string).unwrap_or_default()),
            ["binary"] => {
                let b64 = c.required_str("binary")?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        KeywordError::new(format!("argument `binary` is not base64: {e}"))
                    })?;
                Message::binary(bytes)
            }
            [] => {
                return Err(KeywordError::new(
                    "give the message as `text`, `json` or `binary` (base64)",
                ));
            }
            _ => {
                return Err(KeywordError::new(format!(
                    "give one of `text`, `json` and `binary`, not {}",
                    given.join(" and ")
                )));
            }
        };
        let (_, conn) = self.0.get(c)?;
        let (kind, bytes) = match &msg {
            Message::Binary(b) => ("binary", b.len()),
            other => ("text", other.len()),
        };
        let limit = c.remaining();
        crate::run_on(&self.0.env.runtime, async move {
            let send = async {
                let mut sink = conn.sink.lock().await;
                sink.send(msg).await
            };
            match tokio::time::timeout(limit, send).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(ws_error(&conn.label, e)),
                Err(_) => Err(KeywordError::new(format!(
                    "{}: the message could not be sent within {} ms",
                    conn.label,
                    limit.as_millis()
                ))),
            }
        })?;
        Ok(json!({ "type": kind, "bytes": bytes }))
    }
}

/// `ws.receive`.
pub struct Receive(Arc<Connections>);

impl Keyword for Receive {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(2)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let expect = inbox::match_arg(c)?;
        let count = inbox::count_arg(c)?;
        let timeout = inbox::duration_arg(c, "timeout", DEFAULT_TIMEOUT)?;
        let (name, conn) = self.0.get(c)?;
        let end = Instant::now() + timeout;
        let found = conn
            .inbox
            .wait(c, i64::MIN, &|_| true, expect, count, end, Take::Remove)?;
        if found.matched.len() >= count {
            let n = found.matched.len();
            return Ok(json!({ "messages": found.matched, "count": n }));
        }
        let mut msg = format!(
            "{count} matching message(s) expected on WebSocket `{name}` ({}) within {} ms: saw \
             {} message(s), {} matched",
            conn.label,
            timeout.as_millis(),
            found.seen,
            found.matched.len()
        );
        if let Some(why) = found.closed {
            msg.push_str(&format!("; {why}"));
        }
        Err(KeywordError::new(msg))
    }
}

/// `ws.close`.
pub struct Close(Arc<Connections>);

impl Keyword for Close {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(3)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let code = match c.arg("code") {
            None => 1000u16,
            Some(v) => match v.as_u64() {
                Some(n @ 1000..=4999) => n as u16,
                _ => {
                    return Err(KeywordError::new(format!(
                        "argument `code` is a close code from 1000 to 4999, got {v}"
                    )));
                }
            },
        };
        let reason = c.str_arg("reason")?.unwrap_or("").to_string();
        let (name, conn) = self.0.get(c)?;
        if let Ok(mut open) = self.0.open.lock() {
            open.remove(&(c.case_id(), name));
        }
        let limit = c.remaining();
        let ended = crate::run_on(&self.0.env.runtime, async move {
            let mut rx = conn.ended.subscribe();
            let work = async {
                {
                    let mut sink = conn.sink.lock().await;
                    // Already closed by the server: nothing to send.
                    if rx.borrow().is_none() {
                        let _ = sink
                            .send(Message::Close(Some(CloseFrame {
                                code: CloseCode::from(code),
                                reason: reason.into(),
                            })))
                            .await;
                    }
                }
                let _ = rx.wait_for(Option::is_some).await;
            };
            let _ = tokio::time::timeout(limit, work).await;
            conn.reader.abort();
            let ended = conn.ended.borrow().clone().unwrap_or_default();
            Ok(ended)
        })?;
        Ok(json!({ "code": ended.code, "reason": ended.reason }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(resources: Value) -> Env {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let handle = rt.handle().clone();
        std::mem::forget(rt);
        Env {
            runtime: handle,
            resources: resources.as_object().cloned().unwrap_or_default(),
            policy: Default::default(),
        }
    }

    #[test]
    fn urls_join_the_resource_base_and_take_its_headers() {
        let e = env(json!({"ws": {
            "default": {"base_url": "ws://h:1/api/", "headers": {"X-A": "1"}},
            "other": {"base_url": "wss://o", "ca": "ca.pem"}
        }}));
        let t = target(&e, "default", "/chat").unwrap();
        assert_eq!(t.url, "ws://h:1/api/chat");
        assert_eq!(t.headers, vec![("X-A".to_string(), "1".to_string())]);
        assert_eq!(t.ca, None);
        let t = target(&e, "other", "x").unwrap();
        assert_eq!(
            (t.url.as_str(), t.ca.as_deref()),
            ("wss://o/x", Some("ca.pem"))
        );
        let t = target(&e, "default", "ws://abs/").unwrap();
        assert_eq!(t.url, "ws://abs/");
        let err = target(&e, "nope", "ws://x").unwrap_err();
        assert!(err.message.contains("known: default, other"), "{err}");
        let e = env(json!({}));
        assert!(target(&e, "default", "/chat").is_err());
    }

    #[test]
    fn labels_leave_out_credentials_and_queries() {
        assert_eq!(label_of("ws://bob:pw@h:1/chat?token=abc"), "ws://h:1/chat");
    }
}
