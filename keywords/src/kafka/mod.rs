//! `kafka.produce` and `kafka.consume`: Kafka clients shared per resource.
//!
//! A resource of kind `kafka` is an object of librdkafka settings
//! (`bootstrap.servers`, `security.protocol`, `sasl.*`, ...; numbers and
//! booleans are written as text), or a string naming the bootstrap servers.
//! Without a `default` resource in the project file, `default` is
//! `{"bootstrap.servers": "127.0.0.1:9092"}`.
//!
//! Each resource has one [`FutureProducer`], made on first use and flushed at
//! shutdown, and a small pool of consumers: a consume step borrows one,
//! assigns the topic's partitions at explicit offsets (no group membership,
//! no commits) and gives it back, so nothing connects per step. See
//! [`consume`] for how `from: case_start` picks the messages of the case.

mod consume;
mod produce;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Keyword, KeywordError, KeywordSpec, Value, json, type_name};
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};

use crate::Env;
use crate::mysql::resource_settings;

pub use consume::Consume;
pub use produce::Produce;

/// The bootstrap servers of the `default` resource when the project file has none.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Idle consumers kept per resource for later steps.
const MAX_IDLE_CONSUMERS: usize = 8;

/// How long one poll of a consumer waits, so that deadlines and Ctrl-C are seen quickly.
const POLL_SLICE: Duration = Duration::from_millis(100);

/// The specs of `kafka.produce` and `kafka.consume`.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new("kafka.produce", "Sends one message to a Kafka topic.")
            .required("topic", "string", "the topic")
            .arg(
                "value",
                "",
                "the message: text as is, objects and arrays (and numbers, booleans) as JSON text; \
                 absent or null sends no value",
            )
            .arg("key", "string|number", "the message key")
            .arg("headers", "object", "headers, name → text")
            .arg(
                "partition",
                "integer",
                "the partition (default: chosen by the key)",
            )
            .arg(
                "resource",
                "string",
                "the kafka resource of the project file (default `default`)",
            )
            .result("`partition` and `offset` of the stored message"),
        KeywordSpec::new(
            "kafka.consume",
            "Waits until `count` messages that meet `match` arrive on a topic.",
        )
        .required("topic", "string", "the topic")
        .arg(
            "match",
            "object",
            "expectations each message must meet, written as in `expect` (e.g. \
             {\"$.value.orderId\": \"${orderId}\"}); every message matches when absent",
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
            "from",
            "string",
            "`case_start` (default): only messages appended after the case began; \
             `beginning`: every message of the topic",
        )
        .arg(
            "resource",
            "string",
            "the kafka resource of the project file (default `default`)",
        )
        .result(
            "`messages` (each `key`, `value` — parsed JSON when it is JSON, else text —, \
             `headers` name → text, `partition`, `offset`, `timestamp` in ms) and `count`",
        ),
    ]
}

/// Remembers the last error librdkafka reported, to explain failures in its own words.
#[derive(Default)]
pub(crate) struct Ctx {
    last: Mutex<Option<(Instant, String)>>,
}

impl Ctx {
    fn remember(&self, text: String) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), text));
        }
    }

    /// The last error reported after `since`, if any.
    pub(crate) fn last_since(&self, since: Instant) -> Option<String> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, text)| text.clone())
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Called from librdkafka's threads: keep the errors, print nothing
        // (the step's error carries them).
        use RDKafkaLogLevel as L;
        if matches!(
            level,
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
        ) {
            self.remember(format!("{fac}: {message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.remember(format!("{error}: {reason}"));
    }
}

/// The context a client owns, sharing its [`Ctx`] with this module.
pub(crate) struct Shared(Arc<Ctx>);

impl ClientContext for Shared {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason)
    }
}

impl ConsumerContext for Shared {}

pub(crate) type Consumer = BaseConsumer<Shared>;
pub(crate) type SharedProducer = FutureProducer<Shared>;

/// A consumer with the context it reports into.
pub(crate) struct PooledConsumer {
    pub(crate) consumer: Consumer,
    pub(crate) ctx: Arc<Ctx>,
}

/// The clients of one kafka resource.
pub(crate) struct Resource {
    /// `kafka resource `name` (servers)`, for messages (no credentials).
    pub(crate) label: String,
    settings: Vec<(String, String)>,
    producer: Mutex<Option<(SharedProducer, Arc<Ctx>)>>,
    /// Topics the producer has seen in the broker's metadata, with their partition counts.
    pub(crate) known_topics: Mutex<HashMap<String, usize>>,
    idle: Mutex<Vec<PooledConsumer>>,
}

impl Resource {
    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in &self.settings {
            config.set(k, v);
        }
        config
    }

    fn has(&self, key: &str) -> bool {
        self.settings.iter().any(|(k, _)| k == key)
    }

    /// The shared producer, created on first use.
    pub(crate) fn producer(&self) -> Result<(SharedProducer, Arc<Ctx>), KeywordError> {
        let mut slot = self
            .producer
            .lock()
            .map_err(|_| KeywordError::new("kafka producer table poisoned"))?;
        if let Some(found) = slot.as_ref() {
            return Ok(found.clone());
        }
        let mut config = self.config();
        if !self.has("message.timeout.ms") && !self.has("delivery.timeout.ms") {
            // A message not delivered by then fails rather than lingering after its step.
            config.set("message.timeout.ms", "30000");
        }
        if !self.has("linger.ms") {
            config.set("linger.ms", "5");
        }
        let ctx = Arc::new(Ctx::default());
        let producer: SharedProducer =
            config
                .create_with_context(Shared(ctx.clone()))
                .map_err(|e| {
                    KeywordError::new(format!("{}: cannot create a producer: {e}", self.label))
                })?;
        *slot = Some((producer.clone(), ctx.clone()));
        Ok((producer, ctx))
    }

    /// An idle consumer of the pool, or a new one.
    pub(crate) fn take_consumer(&self) -> Result<PooledConsumer, KeywordError> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(c);
        }
        let mut config = self.config();
        // Offsets are always explicit; the group id only lets librdkafka
        // accept `assign`: the consumer never joins the group nor commits.
        if !self.has("group.id") {
            config.set("group.id", format!("atf-{}", std::process::id()));
        }
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        config.set("enable.partition.eof", "false");
        config.set("allow.auto.create.topics", "false");
        if !self.has("fetch.wait.max.ms") {
            // Short fetches while a step waits (a step assigns partitions only
            // for its own duration): a reused consumer answers in milliseconds
            // instead of waiting out the previous step's long poll.
            config.set("fetch.wait.max.ms", "10");
        }
        let ctx = Arc::new(Ctx::default());
        let consumer: Consumer = config
            .create_with_context(Shared(ctx.clone()))
            .map_err(|e| {
                KeywordError::new(format!("{}: cannot create a consumer: {e}", self.label))
            })?;
        Ok(PooledConsumer { consumer, ctx })
    }

    /// Gives a consumer back to the pool (or closes it when the pool is full).
    pub(crate) fn put_consumer(&self, c: PooledConsumer) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_CONSUMERS
        {
            idle.push(c);
        }
    }

    /// Flushes the producer and closes every client.
    fn shutdown(&self) {
        if let Ok(mut slot) = self.producer.lock()
            && let Some((producer, _)) = slot.take()
        {
            let _ = producer.flush(Duration::from_secs(10));
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// The kafka clients of a run, shared by both keywords.
pub struct Clients {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Clients {
    /// Clients for `env`'s kafka resources; none is created yet.
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
            .map_err(|_| KeywordError::new("kafka client table poisoned"))?;
        if let Some(found) = resources.get(name) {
            return Ok(found.clone());
        }
        let settings = resource_settings(
            &self.env,
            "kafka",
            name,
            json!({ "bootstrap.servers": DEFAULT_BOOTSTRAP }),
        )?;
        let settings = settings_list(name, &settings)?;
        let servers = settings
            .iter()
            .find(|(k, _)| k == "bootstrap.servers" || k == "metadata.broker.list")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let found = Arc::new(Resource {
            label: format!("kafka resource `{name}` ({servers})"),
            settings,
            producer: Mutex::new(None),
            known_topics: Mutex::new(HashMap::new()),
            idle: Mutex::new(Vec::new()),
        });
        resources.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Flushes producers and closes consumers; call before the runtime stops.
    pub fn shutdown(&self) {
        let resources: Vec<Arc<Resource>> = match self.resources.lock() {
            Ok(mut r) => r.drain().map(|(_, v)| v).collect(),
            Err(_) => return,
        };
        for r in resources {
            r.shutdown();
        }
    }
}

/// A resource's settings as librdkafka's name → text pairs.
fn settings_list(name: &str, settings: &Value) -> Result<Vec<(String, String)>, KeywordError> {
    match settings {
        Value::String(servers) => Ok(vec![("bootstrap.servers".into(), servers.clone())]),
        Value::Object(map) => {
            let mut list = Vec::new();
            for (k, v) in map {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(KeywordError::new(format!(
                            "kafka resource `{name}`: setting `{k}` must be text, a number or a \
                             boolean, got {}",
                            type_name(other)
                        )));
                    }
                };
                list.push((k.clone(), text));
            }
            if !list
                .iter()
                .any(|(k, _)| k == "bootstrap.servers" || k == "metadata.broker.list")
            {
                return Err(KeywordError::new(format!(
                    "kafka resource `{name}` has no `bootstrap.servers`"
                )));
            }
            Ok(list)
        }
        other => Err(KeywordError::new(format!(
            "kafka resource `{name}` must be an object of librdkafka settings such as \
             {{\"bootstrap.servers\": \"{DEFAULT_BOOTSTRAP}\"}}, got {}",
            type_name(other)
        ))),
    }
}

/// Asks the broker whether `topic` exists and how many partitions it has,
/// waiting at most `limit`. Errors name the topic and carry librdkafka's
/// words; `serve` lets a client whose error events wait in a queue (a
/// consumer) hand them to its context before the message is written.
pub(crate) fn check_topic<C: ClientContext>(
    resource: &Resource,
    client: &rdkafka::client::Client<C>,
    ctx: &Ctx,
    topic: &str,
    limit: Duration,
    serve: impl Fn(),
) -> Result<usize, KeywordError> {
    let started = Instant::now();
    let metadata = client.fetch_metadata(Some(topic), limit).map_err(|e| {
        serve();
        let mut msg = format!(
            "{}: cannot read the metadata of topic `{topic}` within {} ms: {e}",
            resource.label,
            limit.as_millis()
        );
        if let Some(last) = ctx.last_since(started) {
            msg.push_str(&format!(" (last broker error: {last})"));
        }
        KeywordError::new(msg)
    })?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(KeywordError::new(format!(
            "{}: the broker did not describe topic `{topic}`",
            resource.label
        )));
    };
    if let Some(err) = t.error() {
        let code = rdkafka::types::RDKafkaErrorCode::from(err);
        return Err(KeywordError::new(format!(
            "{}: topic `{topic}`: {code}",
            resource.label
        )));
    }
    if t.partitions().is_empty() {
        return Err(KeywordError::new(format!(
            "{}: topic `{topic}` has no partitions",
            resource.label
        )));
    }
    if let Ok(mut known) = resource.known_topics.lock() {
        known.insert(topic.to_string(), t.partitions().len());
    }
    Ok(t.partitions().len())
}

/// The kafka keywords of a run, and the clients they share (for shutdown).
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Clients>) {
    let clients = Arc::new(Clients::new(env.clone()));
    (
        vec![
            Arc::new(Produce::new(env.clone(), clients.clone())) as Arc<dyn Keyword>,
            Arc::new(Consume::new(clients.clone())),
        ],
        clients,
    )
}
