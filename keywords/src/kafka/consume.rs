//! `kafka.consume`: waits for messages that meet `match` on a topic.
//!
//! A step borrows a consumer from its resource's pool, assigns every
//! partition of the topic at an explicit start offset, polls in short slices
//! (so that the deadline and Ctrl-C are seen quickly), and gives the consumer
//! back. It never joins a consumer group nor commits offsets, so parallel
//! cases reading the same topic do not take messages from each other: each
//! sees every message and keeps those that meet its own `match`.
//!
//! With `from: case_start` (the default) a step sees only messages appended
//! after its case began (`Call::case_start_ms`). The start offset of each
//! partition comes from the broker's offset-for-time lookup, taken after the
//! partition's end offset was read (so a lookup that finds nothing starts at
//! that end, and no message that arrived meanwhile is missed). Because some
//! brokers answer that lookup wrongly (tansu 0.6.0 gives offset 0 for a time
//! after its last message), messages whose timestamp is before the case start
//! are also dropped as they arrive. `from: beginning` reads the whole topic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use base64::Engine as _;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::Consumer as _;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use serde_json::Map;

use super::{Clients, POLL_SLICE, PooledConsumer, Resource, check_topic, specs};

/// How long `kafka.consume` waits when the step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `kafka.consume` keyword.
pub struct Consume {
    clients: Arc<Clients>,
}

impl Consume {
    /// The keyword, consuming through `clients`.
    pub fn new(clients: Arc<Clients>) -> Consume {
        Consume { clients }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Start {
    CaseStart,
    Beginning,
}

/// Bytes as text: UTF-8 as is, anything else as base64.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// A message as the JSON that `match` is checked against and the step returns.
fn message_json(m: &BorrowedMessage<'_>) -> Value {
    let value = match m.payload() {
        None => Value::Null,
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => v,
            Err(_) => Value::String(text_of(bytes)),
        },
    };
    let mut headers = Map::new();
    if let Some(h) = m.headers() {
        for i in 0..h.count() {
            let header = h.get(i);
            headers.insert(
                header.key.to_string(),
                header
                    .value
                    .map_or(Value::Null, |v| Value::String(text_of(v))),
            );
        }
    }
    json!({
        "topic": m.topic(),
        "key": m.key().map(text_of),
        "value": value,
        "headers": headers,
        "partition": m.partition(),
        "offset": m.offset(),
        "timestamp": m.timestamp().to_millis(),
    })
}

/// The start offset of every partition of `topic`, for `from`.
fn start_offsets(
    resource: &Resource,
    pc: &PooledConsumer,
    topic: &str,
    partitions: usize,
    from: Start,
    case_start_ms: i64,
    end: Instant,
) -> Result<TopicPartitionList, KeywordError> {
    let left = || end.saturating_duration_since(Instant::now());
    let mut tpl = TopicPartitionList::new();
    if from == Start::Beginning {
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| KeywordError::new(format!("{}: {e}", resource.label)))?;
        }
        return Ok(tpl);
    }
    // End offsets first: a message appended after this point has a
    // timestamp at or after the case start, so the lookup below finds it.
    let mut ends = Vec::with_capacity(partitions);
    for p in 0..partitions as i32 {
        let (_, high) = pc
            .consumer
            .fetch_watermarks(topic, p, left())
            .map_err(|e| {
                KeywordError::new(format!(
                    "{}: cannot read the end offset of `{topic}` partition {p}: {e}",
                    resource.label
                ))
            })?;
        ends.push(high);
    }
    let mut times = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        times
            .add_partition_offset(topic, p, Offset::Offset(case_start_ms))
            .map_err(|e| KeywordError::new(format!("{}: {e}", resource.label)))?;
    }
    let found = pc.consumer.offsets_for_times(times, left()).map_err(|e| {
        KeywordError::new(format!(
            "{}: cannot look up the offsets of `{topic}` at the case start: {e}",
            resource.label
        ))
    })?;
    for (p, end_offset) in ends.iter().enumerate() {
        let p = p as i32;
        let offset = match found.find_partition(topic, p) {
            Some(elem) if elem.error().is_ok() => match elem.offset() {
                Offset::Offset(o) if o >= 0 => Offset::Offset(o.min(*end_offset)),
                // Nothing at or after the case start yet: start at the end read above.
                _ => Offset::Offset(*end_offset),
            },
            // No answer for this partition: read it all; the timestamp filter keeps it right.
            _ => Offset::Beginning,
        };
        tpl.add_partition_offset(topic, p, offset)
            .map_err(|e| KeywordError::new(format!("{}: {e}", resource.label)))?;
    }
    Ok(tpl)
}

struct Seen {
    seen: usize,
    matched: Vec<Value>,
    last_error: Option<String>,
}

impl Consume {
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        c: &Call<'_>,
        resource: &Resource,
        pc: &PooledConsumer,
        topic: &str,
        expect: Option<&Value>,
        count: usize,
        from: Start,
        end: Instant,
    ) -> Result<Seen, KeywordError> {
        let started = Instant::now();
        let left = || end.saturating_duration_since(Instant::now());
        // Error events of a consumer wait in its queue: a few zero-time polls
        // hand them to the context (nothing is assigned, so no message comes).
        let serve = || {
            for _ in 0..16 {
                if pc.consumer.poll(Duration::ZERO).is_none() {
                    break;
                }
            }
        };
        let partitions = check_topic(
            resource,
            pc.consumer.client(),
            &pc.ctx,
            topic,
            left(),
            serve,
        )?;
        let tpl = start_offsets(resource, pc, topic, partitions, from, c.case_start_ms, end)?;
        pc.consumer.assign(&tpl).map_err(|e| {
            KeywordError::new(format!("{}: cannot assign `{topic}`: {e}", resource.label))
        })?;
        let mut out = Seen {
            seen: 0,
            matched: Vec::new(),
            last_error: None,
        };
        while out.matched.len() < count {
            if c.host.cancelled() {
                return Err(KeywordError::new(format!(
                    "interrupted while waiting for messages on `{topic}` ({} seen, {} matched)",
                    out.seen,
                    out.matched.len()
                )));
            }
            let slice = left().min(POLL_SLICE);
            if slice.is_zero() {
                break;
            }
            match pc.consumer.poll(slice) {
                None => {}
                Some(Err(e)) => out.last_error = Some(e.to_string()),
                Some(Ok(m)) => {
                    if from == Start::CaseStart
                        && m.timestamp()
                            .to_millis()
                            .is_some_and(|t| t < c.case_start_ms)
                    {
                        continue;
                    }
                    out.seen += 1;
                    let msg = message_json(&m);
                    let holds = match expect {
                        None => true,
                        Some(expect) => c
                            .host
                            .check(&msg, expect)
                            .map_err(|e| KeywordError::new(format!("invalid `match`: {e}")))?
                            .is_empty(),
                    };
                    if holds {
                        out.matched.push(msg);
                    }
                }
            }
        }
        if out.last_error.is_none() {
            out.last_error = pc.ctx.last_since(started);
        }
        Ok(out)
    }
}

impl Keyword for Consume {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let topic = c.required_str("topic")?;
        let expect = match c.arg("match") {
            None => None,
            Some(v @ Value::Object(_)) => Some(v),
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `match` must be an object of expectations, got {}",
                    type_name(other)
                )));
            }
        };
        let count = match c.arg("count") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => n as usize,
                _ => {
                    return Err(KeywordError::new(format!(
                        "argument `count` must be a positive integer, got {v}"
                    )));
                }
            },
        };
        let timeout = match c.arg("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => atf_sdk::parse_duration(v)
                .map_err(|e| KeywordError::new(format!("argument `timeout`: {e}")))?,
        };
        let timeout = timeout.min(c.remaining());
        let from = match c.str_arg("from")? {
            None | Some("case_start") => Start::CaseStart,
            Some("beginning") => Start::Beginning,
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `from` is `case_start` or `beginning`, not `{other}`"
                )));
            }
        };
        let end = Instant::now() + timeout;

        let resource = self.clients.resource(c.resource()?)?;
        let pc = resource.take_consumer()?;
        let result = self.read(c, &resource, &pc, topic, expect, count, from, end);
        // Back to the pool only when it is cleanly unassigned.
        if pc.consumer.unassign().is_ok() {
            resource.put_consumer(pc);
        }
        let out = result?;
        if out.matched.len() < count {
            let mut msg = format!(
                "{} matching message(s) expected on `{topic}` within {} ms: saw {} message(s){}, \
                 {} matched",
                count,
                timeout.as_millis(),
                out.seen,
                if from == Start::CaseStart {
                    " since the case began"
                } else {
                    ""
                },
                out.matched.len()
            );
            if let Some(e) = out.last_error {
                msg.push_str(&format!(" (last error: {e})"));
            }
            return Err(KeywordError::new(msg));
        }
        let n = out.matched.len();
        Ok(json!({ "messages": out.matched, "count": n }))
    }
}
