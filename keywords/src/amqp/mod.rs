//! `amqp.publish` and `amqp.consume`: RabbitMQ (AMQP 0-9-1) through one
//! connection per resource.
//!
//! A resource of kind `amqp` is a URL, `amqp://user:password@host:5672/vhost`
//! (`amqps://` for TLS, checked against the system's roots; `%2f` is the
//! vhost `/`), or an object `{ "url": ... }`. Without a `default` resource in
//! the project file, `default` is [`DEFAULT_URL`]. The connection of a
//! resource is opened on first use, shared by every case (AMQP multiplexes
//! channels over it), and opened again on the next step if the broker
//! closed it.
//!
//! Publishing goes through a small pool of channels in confirm mode, so a
//! publish step ends when the broker has taken the message. See [`consume`]
//! for how `amqp.consume` keeps cases apart.

mod consume;
mod fields;
mod publish;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use atf_sdk::{Keyword, KeywordError, KeywordSpec, Value, json, type_name};
use lapin::options::ConfirmSelectOptions;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::Env;
use crate::mysql::resource_settings;

pub use consume::Consume;
pub use publish::Publish;

/// The connection URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Idle publishing channels kept per resource.
const MAX_IDLE_CHANNELS: usize = 16;

/// The specs of `amqp.publish` and `amqp.consume`.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new(
            "amqp.publish",
            "Publishes one message to a RabbitMQ (AMQP 0-9-1) exchange and waits until the \
             broker confirms it.",
        )
        .arg(
            "exchange",
            "string",
            "the exchange (default \"\": the default exchange, which routes to the queue named \
             by `routing_key`)",
        )
        .arg("routing_key", "string", "the routing key (default \"\")")
        .arg(
            "body",
            "",
            "the message: text as is, anything else as JSON text (absent: an empty body)",
        )
        .arg(
            "json",
            "",
            "the message as JSON text, with content type application/json (instead of `body`)",
        )
        .arg(
            "headers",
            "object",
            "message headers: name → text, number, boolean, null, list or object",
        )
        .arg(
            "properties",
            "object",
            "message properties: content_type, content_encoding, correlation_id, reply_to, \
             expiration (ms), message_id, timestamp (s), type, user_id, app_id, priority, \
             delivery_mode",
        )
        .arg(
            "persistent",
            "boolean",
            "true: delivery mode 2, the broker keeps the message on disk (default false)",
        )
        .arg(
            "mandatory",
            "boolean",
            "true: fail the step when no queue is bound to take the message (default false)",
        )
        .arg(
            "resource",
            "string",
            "the amqp resource of the project file (default `default`)",
        )
        .result("`exchange` and `routing_key` the message was published with"),
        KeywordSpec::new(
            "amqp.consume",
            "Waits until `count` messages that meet `match` arrive, from a queue or through a \
             private queue bound to an exchange.",
        )
        .arg(
            "queue",
            "string",
            "a queue to take messages from (non-matching ones are left in it)",
        )
        .arg(
            "exchange",
            "string",
            "an exchange to listen on instead of `queue`: atf binds a private queue of the run \
             to it and the step sees what arrived since its case began",
        )
        .arg(
            "binding",
            "string|object",
            "with `exchange`: the binding key (default \"#\", everything on a topic exchange), \
             or an object of header-exchange arguments such as {\"x-match\": \"all\", \
             \"type\": \"order\"}",
        )
        .arg(
            "match",
            "object",
            "expectations each message must meet, written as in `expect` (e.g. \
             {\"$.body.orderId\": \"${orderId}\"}); every message matches when absent",
        )
        .arg(
            "count",
            "integer",
            "how many matching messages to wait for (default 1); 0 returns at once with what \
             has matched so far",
        )
        .arg(
            "timeout",
            "string|number",
            "how long to wait (default 10s, at most the step timeout)",
        )
        .arg(
            "ack",
            "boolean",
            "with `queue`: true (default) removes the matching messages from the queue, false \
             leaves them there",
        )
        .arg(
            "resource",
            "string",
            "the amqp resource of the project file (default `default`)",
        )
        .result(
            "`messages` (each `body` — parsed JSON when it is JSON, else text —, `exchange`, \
             `routing_key`, `headers`, `properties`, `redelivered`) and `count`",
        ),
    ]
}

/// An error and the errors it wraps, in words, each once.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
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

/// The connection and channels of one amqp resource.
pub(crate) struct Resource {
    /// `amqp resource `name` (host:port/vhost)`, for messages (no credentials).
    pub(crate) label: String,
    uri: AMQPUri,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// Idle channels in confirm mode, for publishing.
    idle: Mutex<Vec<Channel>>,
    /// The run's private queues bound to exchanges (see [`consume`]).
    pub(crate) taps: consume::Taps,
}

impl Resource {
    /// The resource's connection, opened (again) when there is none that works.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, KeywordError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && c.status().connected()
        {
            return Ok(c.clone());
        }
        let props = ConnectionProperties::default().with_connection_name("atf".into());
        let conn = Connection::connect_uri(self.uri.clone(), props)
            .await
            .map_err(|e| {
                KeywordError::new(format!("cannot connect to {}: {}", self.label, chain(&e)))
            })?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// A channel in confirm mode, idle or new.
    pub(crate) async fn publisher(&self) -> Result<Channel, KeywordError> {
        loop {
            let ch = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            match ch {
                Some(ch) if ch.status().connected() => return Ok(ch),
                Some(_) => continue,
                None => break,
            }
        }
        let ch = self.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(ch)
    }

    /// Gives a publishing channel back (unless it was closed or the pool is full).
    pub(crate) fn give_back(&self, ch: Channel) {
        if ch.status().connected()
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_CHANNELS
        {
            idle.push(ch);
        }
    }

    /// A new channel on the resource's connection.
    pub(crate) async fn channel(&self) -> Result<Channel, KeywordError> {
        let conn = self.connection().await?;
        conn.create_channel().await.map_err(|e| self.error(&e))
    }

    /// A broker or connection error, naming the resource.
    pub(crate) fn error(&self, e: &lapin::Error) -> KeywordError {
        KeywordError::new(format!("{}: {}", self.label, chain(e)))
    }

    /// Closes the connection (its private queues go with it).
    async fn close(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close(200, "atf run finished".into()).await;
        }
    }
}

/// The amqp connections of a run, shared by both keywords.
pub struct Clients {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Clients {
    /// Clients for `env`'s amqp resources; nothing connects yet.
    pub fn new(env: Env) -> Clients {
        Clients {
            env,
            resources: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut resources = self
            .resources
            .lock()
            .map_err(|_| KeywordError::new("amqp client table poisoned"))?;
        if let Some(found) = resources.get(name) {
            return Ok(found.clone());
        }
        let settings = resource_settings(&self.env, "amqp", name, json!(DEFAULT_URL))?;
        let uri = parse_uri(name, &settings)?;
        let found = Arc::new(Resource {
            label: format!(
                "amqp resource `{name}` ({}:{}/{})",
                uri.authority.host, uri.authority.port, uri.vhost
            ),
            uri,
            conn: tokio::sync::Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            taps: consume::Taps::default(),
        });
        resources.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Closes every connection; call before the runtime stops.
    pub fn shutdown(&self) {
        let resources: Vec<Arc<Resource>> = match self.resources.lock() {
            Ok(mut r) => r.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        if resources.is_empty() {
            return;
        }
        self.env.runtime.block_on(async move {
            for r in resources {
                // Bounded: a broker that stopped answering must not hang the end of the run.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), r.close()).await;
            }
        });
    }
}

/// The URL of a resource's settings, parsed; errors never echo the URL (it may hold a password).
fn parse_uri(name: &str, settings: &Value) -> Result<AMQPUri, KeywordError> {
    let bad = |what: String| KeywordError::new(format!("amqp resource `{name}`: {what}"));
    let url = match settings {
        Value::String(url) => url.as_str(),
        Value::Object(map) => {
            let mut url = None;
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("url", Value::String(s)) => url = Some(s.as_str()),
                    (other, v) => {
                        return Err(bad(format!(
                            "unexpected `{other}` ({}); known: url",
                            type_name(v)
                        )));
                    }
                }
            }
            url.ok_or_else(|| bad("`url` is missing".into()))?
        }
        other => {
            return Err(bad(format!(
                "must be a URL string or an object with `url`, got {}",
                type_name(other)
            )));
        }
    };
    url.parse::<AMQPUri>().map_err(|e| {
        let e = e.replace(url, "…");
        bad(format!(
            "invalid URL ({e}); write amqp://user:password@host:5672/vhost"
        ))
    })
}

/// The amqp keywords of a run, and the clients they share (for shutdown).
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Clients>) {
    let clients = Arc::new(Clients::new(env.clone()));
    (
        vec![
            Arc::new(Publish::new(env.clone(), clients.clone())) as Arc<dyn Keyword>,
            Arc::new(Consume::new(env.clone(), clients.clone())),
        ],
        clients,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_errors_hide_them() {
        let uri = parse_uri("d", &json!("amqp://u:p@rabbit:5673/%2f")).unwrap();
        assert_eq!(
            (
                uri.authority.host.as_str(),
                uri.authority.port,
                uri.vhost.as_str()
            ),
            ("rabbit", 5673, "/")
        );
        let uri = parse_uri("d", &json!({"url": "amqp://127.0.0.1"})).unwrap();
        assert_eq!(uri.authority.port, 5672);
        let e = parse_uri("d", &json!("amqp:s3cret")).err().unwrap();
        assert!(e.message.contains("invalid URL"), "{e}");
        assert!(!e.message.contains("s3cret"), "{e}");
        let e = parse_uri("d", &json!({"uri": "x"})).err().unwrap();
        assert!(e.message.contains("unexpected `uri`"), "{e}");
    }
}
