//! `kafka.produce`: one message through the resource's shared producer.
//!
//! The first produce to a topic asks the broker whether the topic exists, so
//! that a misspelt topic fails at once with the broker's answer rather than
//! after librdkafka's delivery timeout. The step waits for the delivery
//! report (at most until its deadline) and returns where the message went.

use std::sync::Arc;
use std::time::Instant;

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};

use super::{Clients, check_topic, specs};
use crate::Env;

/// The `kafka.produce` keyword.
pub struct Produce {
    env: Env,
    clients: Arc<Clients>,
}

impl Produce {
    /// The keyword, producing through `clients`.
    pub fn new(env: Env, clients: Arc<Clients>) -> Produce {
        Produce { env, clients }
    }
}

/// A value as the bytes sent: text as is, anything else as JSON text.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Keyword for Produce {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let topic = c.required_str("topic")?;
        let payload = c.arg("value").map(text_of);
        let key = match c.arg("key") {
            None => None,
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => Some(text_of(v)),
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `key` must be text or a number, got {}",
                    type_name(other)
                )));
            }
        };
        let mut headers = OwnedHeaders::new();
        match c.arg("headers") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, v) in map {
                    let text = (!v.is_null()).then(|| text_of(v));
                    headers = headers.insert(Header {
                        key: name,
                        value: text.as_deref(),
                    });
                }
            }
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `headers` must be an object of name → text, got {}",
                    type_name(other)
                )));
            }
        }
        let partition = match c.arg("partition") {
            None => None,
            Some(v) => match v.as_i64().and_then(|p| i32::try_from(p).ok()) {
                Some(p) if p >= 0 => Some(p),
                _ => {
                    return Err(KeywordError::new(format!(
                        "argument `partition` must be a partition number, got {v}"
                    )));
                }
            },
        };

        let resource = self.clients.resource(c.resource()?)?;
        let (producer, ctx) = resource.producer()?;
        let started = Instant::now();
        let known = resource
            .known_topics
            .lock()
            .ok()
            .and_then(|k| k.get(topic).copied());
        let partitions = match known {
            Some(n) => n,
            None => check_topic(
                &resource,
                producer.client(),
                &ctx,
                topic,
                c.remaining(),
                || {},
            )?,
        };
        if let Some(p) = partition
            && p as usize >= partitions
        {
            return Err(KeywordError::new(format!(
                "topic `{topic}` has {partitions} partition(s): there is no partition {p}"
            )));
        }

        let mut record: FutureRecord<'_, str, str> = FutureRecord::to(topic).headers(headers);
        if let Some(p) = payload.as_deref() {
            record = record.payload(p);
        }
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let limit = c.remaining();
        let label = resource.label.clone();
        let delivery = self
            .env
            .runtime
            .block_on(async { tokio::time::timeout(limit, producer.send(record, limit)).await });
        match delivery {
            Ok(Ok(d)) => Ok(json!({ "partition": d.partition, "offset": d.offset })),
            Ok(Err((e, _))) => {
                let mut msg = format!("{label}: cannot deliver to topic `{topic}`: {e}");
                if let Some(last) = ctx.last_since(started) {
                    msg.push_str(&format!(" (last broker error: {last})"));
                }
                Err(KeywordError::new(msg))
            }
            Err(_) => {
                let mut msg = format!(
                    "{label}: the message to topic `{topic}` was not confirmed within the step \
                     timeout ({} ms)",
                    limit.as_millis()
                );
                if let Some(last) = ctx.last_since(started) {
                    msg.push_str(&format!(" (last broker error: {last})"));
                }
                Err(KeywordError::new(msg))
            }
        }
    }
}
