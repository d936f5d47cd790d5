//! `mqtt.publish`, `mqtt.subscribe` and `mqtt.consume`: MQTT 3.1.1 and 5 on
//! one connection per resource.
//!
//! A resource of kind `mqtt` is a URL string (`mqtt://user:pass@host:1883`,
//! `mqtts://` for TLS with the system's roots) or an object `{ "url": ...,
//! "version": "3.1.1" | "5", "client_id": ..., "keep_alive": "30s",
//! "buffer": N, "ca": file }`; `ca` (a PEM file of CA certificates, relative
//! to the folder atf runs in) is trusted too by `mqtts://`. Without a `default` resource in the project file,
//! `default` is `mqtt://127.0.0.1:1883` speaking 3.1.1. The connection is
//! made on first use, shared by every case, and made again when it drops.
//!
//! MQTT delivers a message only to those subscribed when it is published.
//! The first step that names a topic filter subscribes the resource's
//! connection to it for the rest of the run; from then on every message on
//! it is kept, with its arrival time, in a bounded buffer (`buffer`, default
//! 10,000 messages per filter, oldest dropped first). `mqtt.consume` reads
//! the messages of its filter that arrived since its case began and meet
//! its `match`, waiting for more until it has `count` of them: parallel
//! cases do not take messages from each other, and tell theirs apart by
//! content. A message published before the filter was first subscribed
//! cannot be seen, so `mqtt.subscribe` (in a suite's or case's `prepare`)
//! subscribes ahead of the step that triggers the messages. A retained
//! message is delivered when its filter is subscribed, with `retain: true`.

mod client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use crate::Env;
use crate::inbox::{self, Take};
use crate::mysql::resource_settings;
use client::{Conn, Options, SubState, Version};

/// The URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "mqtt://127.0.0.1:1883";

/// How long `mqtt.consume` waits when the step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const RESOURCE_DOC: &str = "the mqtt resource of the project file (default `default`)";

/// The specs of the mqtt keywords.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new("mqtt.publish", "Publishes one message to an MQTT topic.")
            .required("topic", "string", "the topic (no wildcards)")
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
                "qos",
                "integer",
                "0 (default: sent once, the step ends when it is written), 1 or 2 (the step \
                 waits for the broker's acknowledgement)",
            )
            .arg(
                "retain",
                "boolean",
                "the broker keeps the message for later subscribers (default false)",
            )
            .arg(
                "properties",
                "object",
                "MQTT 5 only: `user_properties` (name → text), `content_type`, \
                 `response_topic`, `correlation_data`, `message_expiry_interval` (seconds)",
            )
            .arg("resource", "string", RESOURCE_DOC)
            .result(
                "`topic`, `qos`; for QoS 1 and 2 on MQTT 5 also the broker's `reason` \
                 (e.g. `Success`, `NoMatchingSubscribers`)",
            ),
        KeywordSpec::new(
            "mqtt.subscribe",
            "Subscribes the run to topic filters now, so that `mqtt.consume` sees every \
             message published from here on.",
        )
        .required(
            "topic",
            "string|array",
            "a topic filter (`+` and `#` wildcards allowed) or a list of them",
        )
        .arg("qos", "integer", "the subscription's QoS (default 1)")
        .arg("resource", "string", RESOURCE_DOC)
        .result("`subscribed`: the filters, each with its `granted_qos`"),
        KeywordSpec::new(
            "mqtt.consume",
            "Waits until `count` messages that meet `match` have arrived on a topic filter \
             since the case began.",
        )
        .required(
            "topic",
            "string",
            "a topic filter (`+` and `#` wildcards allowed); subscribed on first use",
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
        .arg(
            "qos",
            "integer",
            "the subscription's QoS when this step makes it (default 1)",
        )
        .arg("resource", "string", RESOURCE_DOC)
        .result(
            "`messages` (each `topic`, `payload` — parsed JSON when it is JSON, else text, \
             base64 when not UTF-8 —, `qos`, `retain`, `timestamp` (arrival, ms), and on MQTT 5 \
             `properties` with `user_properties`, `content_type`, `response_topic`, \
             `correlation_data`) and `count`",
        ),
    ]
}

/// The connections of the mqtt resources, shared by the keywords.
pub struct Clients {
    env: Env,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

impl Clients {
    /// Connections for `env`'s mqtt resources; none is made yet.
    pub fn new(env: Env) -> Clients {
        Clients {
            env,
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn conn(&self, name: &str) -> Result<Arc<Conn>, KeywordError> {
        let mut conns = self
            .conns
            .lock()
            .map_err(|_| KeywordError::new("mqtt connection table poisoned"))?;
        if let Some(c) = conns.get(name) {
            return Ok(c.clone());
        }
        let settings = resource_settings(&self.env, "mqtt", name, json!(DEFAULT_URL))?;
        let (label, options) = options(name, &settings)?;
        let conn = Conn::start(&self.env.runtime, label, options);
        conns.insert(name.to_string(), conn.clone());
        Ok(conn)
    }

    /// Disconnects every connection; call before the runtime stops.
    pub fn shutdown(&self) {
        let conns: Vec<Arc<Conn>> = match self.conns.lock() {
            Ok(mut c) => c.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        for c in conns {
            c.shutdown();
        }
    }
}

/// Reads a resource's settings: its label for messages (no password) and the connection options.
fn options(name: &str, settings: &Value) -> Result<(String, Options), KeywordError> {
    let bad = |what: String| KeywordError::new(format!("mqtt resource `{name}`: {what}"));
    let mut version = Version::V311;
    let mut client_id = None;
    let mut ca: Option<String> = None;
    let mut keep_alive = Duration::from_secs(30);
    let mut capacity = inbox::DEFAULT_CAPACITY;
    let url = match settings {
        Value::String(url) => url.clone(),
        Value::Object(map) => {
            let mut url = None;
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("url", Value::String(s)) => url = Some(s.clone()),
                    ("version", v) => {
                        version = match v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or(v.to_string())
                            .as_str()
                        {
                            "3.1.1" | "3" | "4" | "v3" | "3.1" => Version::V311,
                            "5" | "5.0" | "v5" => Version::V5,
                            other => {
                                return Err(bad(format!(
                                    "`version` is \"3.1.1\" or \"5\", not `{other}`"
                                )));
                            }
                        }
                    }
                    ("client_id", Value::String(s)) => client_id = Some(s.clone()),
                    ("ca", Value::String(s)) => ca = Some(s.clone()),
                    ("keep_alive", v) => {
                        keep_alive = atf_sdk::parse_duration(v)
                            .map_err(|e| bad(format!("keep_alive: {e}")))?
                    }
                    ("buffer", v) => match v.as_u64() {
                        Some(n) if n >= 1 => capacity = n as usize,
                        _ => {
                            return Err(bad(format!("buffer must be a positive integer, got {v}")));
                        }
                    },
                    (other, v) => {
                        return Err(bad(format!(
                            "unexpected `{other}` ({}); known: url, version, client_id, \
                             keep_alive, buffer, ca",
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
    // The URL may hold a password: never echo it.
    let parsed = url::Url::parse(&url).map_err(|e| bad(format!("invalid URL: {e}")))?;
    let tls = match parsed.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" | "tls" => true,
        other => {
            return Err(bad(format!(
                "URL scheme `{other}` is not supported: use mqtt:// or mqtts://"
            )));
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("the URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed.port().unwrap_or(if tls { 8883 } else { 1883 });
    let tls_config = match &ca {
        Some(ca) if tls => Some(crate::tls::with_ca(ca).map_err(bad)?),
        _ => None,
    };
    let user = if parsed.username().is_empty() {
        None
    } else {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .to_string()
        };
        Some((
            decode(parsed.username()),
            decode(parsed.password().unwrap_or("")),
        ))
    };
    let client_id = client_id.unwrap_or_else(|| default_client_id(name));
    let label = format!("mqtt resource `{name}` ({host}:{port})");
    Ok((
        label,
        Options {
            host,
            port,
            tls,
            tls_config,
            user,
            client_id,
            keep_alive,
            version,
            capacity,
        },
    ))
}

/// The `qos` argument: 0, 1 or 2.
/// A client identifier no other connection holds. A broker closes the older
/// of two connections with one identifier, so two resources (or two runs'
/// resources opened in the same millisecond) with the same id would take
/// each other's connection away, and messages with it: the process id, a
/// per-process counter and the clock keep every default id apart.
fn default_client_id(resource: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // MQTT 3.1.1 brokers need accept only 23 bytes of [0-9a-zA-Z]; mosquitto and
    // every broker in use take longer ids, so the resource name stays for the logs.
    format!("atf-{}-{resource}-{n}-{nanos:x}", std::process::id())
}

fn qos_arg(c: &Call<'_>, default: u8) -> Result<u8, KeywordError> {
    match c.arg("qos") {
        None => Ok(default),
        Some(v) => match v.as_u64() {
            Some(q @ 0..=2) => Ok(q as u8),
            _ => Err(KeywordError::new(format!(
                "argument `qos` is 0, 1 or 2, got {v}"
            ))),
        },
    }
}

fn check_filter(filter: &str) -> Result<(), KeywordError> {
    if filter.is_empty() || !rumqttc::valid_filter(filter) {
        return Err(KeywordError::new(format!(
            "`{filter}` is not a valid topic filter (`+` stands for one whole level, `#` for \
             the rest and only at the end)"
        )));
    }
    Ok(())
}

/// MQTT 5 properties of a message to publish.
fn publish_properties(v: &Value) -> Result<PublishProperties, KeywordError> {
    let Value::Object(map) = v else {
        return Err(KeywordError::new(format!(
            "argument `properties` must be an object, got {}",
            type_name(v)
        )));
    };
    let mut p = PublishProperties::default();
    for (k, v) in map {
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match k.as_str() {
            "user_properties" => {
                let Value::Object(props) = v else {
                    return Err(KeywordError::new(
                        "`properties.user_properties` must be an object of name → text",
                    ));
                };
                p.user_properties = props.iter().map(|(k, v)| (k.clone(), text(v))).collect();
            }
            "content_type" => p.content_type = Some(text(v)),
            "response_topic" => p.response_topic = Some(text(v)),
            "correlation_data" => p.correlation_data = Some(text(v).into_bytes().into()),
            "message_expiry_interval" => match v.as_u64() {
                Some(n) if n <= u32::MAX as u64 => p.message_expiry_interval = Some(n as u32),
                _ => {
                    return Err(KeywordError::new(
                        "`properties.message_expiry_interval` is a number of seconds",
                    ));
                }
            },
            other => {
                return Err(KeywordError::new(format!(
                    "unknown property `{other}`; known: user_properties, content_type, \
                     response_topic, correlation_data, message_expiry_interval"
                )));
            }
        }
    }
    Ok(p)
}

/// Creates the mqtt keywords and the connections they share.
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Clients>) {
    let clients = Arc::new(Clients::new(env.clone()));
    let kws: Vec<Arc<dyn Keyword>> = vec![
        Arc::new(Publish(clients.clone())),
        Arc::new(Subscribe(clients.clone())),
        Arc::new(Consume(clients.clone())),
    ];
    (kws, clients)
}

/// `mqtt.publish`.
pub struct Publish(Arc<Clients>);

impl Keyword for Publish {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let topic = c.required_str("topic")?.to_string();
        if topic.is_empty() || !rumqttc::valid_topic(&topic) {
            return Err(KeywordError::new(format!(
                "`{topic}` is not a topic one can publish to (no `+` or `#`, not empty)"
            )));
        }
        let payload = inbox::payload_arg(c)?;
        let qos = qos_arg(c, 0)?;
        let retain = c.bool_arg("retain", false)?;
        let conn = self.0.conn(c.resource()?)?;
        let props = match c.arg("properties") {
            None => None,
            Some(v) => {
                if conn.version != Version::V5 {
                    return Err(KeywordError::new(format!(
                        "{}: `properties` need MQTT 5 (set the resource's \"version\": \"5\")",
                        conn.label
                    )));
                }
                Some(publish_properties(v)?)
            }
        };
        let limit = c.remaining();
        let t = topic.clone();
        let ack = crate::run_on(&self.0.env.runtime, async move {
            conn.publish(&t, payload, qos, retain, props, limit).await
        })?;
        let mut out = json!({ "topic": topic, "qos": qos });
        if let Some(reason) = ack.get("reason") {
            out["reason"] = reason.clone();
        }
        Ok(out)
    }
}

/// `mqtt.subscribe`.
pub struct Subscribe(Arc<Clients>);

impl Keyword for Subscribe {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let filters: Vec<String> = match c.arg("topic") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(KeywordError::new(format!(
                        "`topic` lists topic filters (text), got {}",
                        type_name(other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `topic` must be a topic filter or a non-empty list of them, got {other}"
                )));
            }
            None => return Err(KeywordError::new("argument `topic` is required")),
        };
        for f in &filters {
            check_filter(f)?;
        }
        let qos = qos_arg(c, 1)?;
        let conn = self.0.conn(c.resource()?)?;
        let limit = c.remaining();
        let subscribed = crate::run_on(&self.0.env.runtime, async move {
            let mut out = Vec::new();
            for f in filters {
                let (sub, _) = conn.subscribe(&f, qos, limit).await?;
                out.push(json!({ "topic": sub.filter, "qos": qos }));
            }
            Ok(out)
        })?;
        Ok(json!({ "subscribed": subscribed }))
    }
}

/// `mqtt.consume`.
pub struct Consume(Arc<Clients>);

impl Keyword for Consume {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(2)
    }

    /// It waits only in [`crate::run_on`] and its inbox (which suspends a
    /// virtual user's coroutine), holding no lock across either.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let filter = c.required_str("topic")?.to_string();
        check_filter(&filter)?;
        let expect = inbox::match_arg(c)?;
        let count = inbox::count_arg(c)?;
        let timeout = inbox::duration_arg(c, "timeout", DEFAULT_TIMEOUT)?;
        let qos = qos_arg(c, 1)?;
        let end = Instant::now() + timeout;
        let conn = self.0.conn(c.resource()?)?;
        let (sub, _made) = {
            let conn = conn.clone();
            let f = filter.clone();
            crate::run_on(&self.0.env.runtime, async move {
                conn.subscribe(&f, qos, timeout).await
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
            "{count} matching message(s) expected on `{filter}` within {} ms: saw {} message(s) \
             since the case began, {} matched",
            timeout.as_millis(),
            found.seen,
            found.matched.len()
        );
        if let SubState::Active { since_ms } = *sub.state.borrow()
            && since_ms > c.case_start_ms
        {
            msg.push_str(&format!(
                "; `{filter}` was first subscribed {} ms after the case began, so messages \
                 published before that are not seen (subscribe earlier with `mqtt.subscribe` \
                 in `prepare`)",
                since_ms - c.case_start_ms
            ));
        }
        if found.dropped {
            msg.push_str(
                "; some messages of this case were dropped because the buffer was full \
                 (raise the resource's `buffer`)",
            );
        }
        if let Some(e) = conn.down_because() {
            msg.push_str(&format!("; {} is not connected: {e}", conn.label));
        }
        Err(KeywordError::new(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_settings_are_read_and_the_password_stays_out_of_the_label() {
        let (label, o) = options("default", &json!("mqtt://bob:s%40cret@broker:1884")).unwrap();
        assert_eq!(label, "mqtt resource `default` (broker:1884)");
        assert_eq!(o.user, Some(("bob".into(), "s@cret".into())));
        assert!(!o.tls);
        assert_eq!(o.version, Version::V311);
        let (_, o) = options(
            "x",
            &json!({"url": "mqtts://h", "version": "5", "buffer": 5, "client_id": "me"}),
        )
        .unwrap();
        assert!(o.tls);
        assert_eq!(o.port, 8883);
        assert_eq!(o.version, Version::V5);
        assert_eq!(o.capacity, 5);
        assert_eq!(o.client_id, "me");
        let err = options("x", &json!({"url": "mqtt://h", "verison": 5}))
            .err()
            .unwrap();
        assert!(err.message.contains("unexpected `verison`"), "{err}");
        let err = options("x", &json!("http://h")).err().unwrap();
        assert!(err.message.contains("mqtt://"), "{err}");
        let err = options("x", &json!({"url": "mqtt://h", "version": 7}))
            .err()
            .unwrap();
        assert!(err.message.contains("\"5\""), "{err}");
    }

    #[test]
    fn properties_are_checked() {
        let p = publish_properties(&json!({
            "user_properties": {"a": "1", "n": 2},
            "content_type": "application/json",
            "message_expiry_interval": 60
        }))
        .unwrap();
        assert_eq!(
            p.user_properties,
            vec![("a".to_string(), "1".to_string()), ("n".into(), "2".into())]
        );
        assert_eq!(p.message_expiry_interval, Some(60));
        assert!(publish_properties(&json!({"colour": 1})).is_err());
        assert!(publish_properties(&json!([1])).is_err());
    }

    #[test]
    fn filters_are_checked() {
        assert!(check_filter("a/+/c").is_ok());
        assert!(check_filter("a/#").is_ok());
        assert!(check_filter("a/#/c").is_err());
        assert!(check_filter("").is_err());
    }

    #[test]
    fn default_client_ids_differ_within_one_process() {
        let a = default_client_id("default");
        let b = default_client_id("default");
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("atf-{}-default-", std::process::id())),
            "{a}"
        );
    }
}
