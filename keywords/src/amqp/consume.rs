//! `amqp.consume`: waits for messages that meet `match`, in one of two ways.
//!
//! **`exchange` (+ `binding`)** — observing without taking. The first step
//! that listens on an exchange with a binding makes a private queue of the
//! run (server-named, exclusive, deleted with the connection), binds it, and
//! starts a consumer that records every message with the time it arrived.
//! Every later step with the same exchange and binding reads that record:
//! it sees the messages that arrived since *its case* began
//! (`Call::case_start_ms`) and keeps those that meet its `match`. So
//! parallel cases never take messages from each other, and a message
//! published before a case began does not count for it. Messages published
//! before the first such step of the run are not seen: when a case triggers
//! the message before it consumes, start listening early — a step with
//! `count: 0` (it returns at once) in the suite's or case's `prepare`. The
//! record keeps the last [`MAX_RECORDED`] messages of each binding.
//!
//! **`queue`** — taking from a queue. The step opens a channel, consumes
//! with manual acknowledgements and holds every message it is given; at the
//! end it acknowledges the matching ones (with `ack: true`, the default) and
//! closes the channel, which puts every other message back in the queue for
//! other consumers. A queue has no notion of when a message arrived, so
//! here `match` alone keeps cases apart.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;

use super::fields::{message_json, short, table};
use super::{Clients, Resource, specs};
use crate::Env;
use crate::local::Signal;

/// How long `amqp.consume` waits when the step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages remembered per exchange and binding; older ones are forgotten.
pub const MAX_RECORDED: usize = 10_000;

/// Unacknowledged messages a `queue` step may hold at once.
const PREFETCH: u16 = 1000;

/// How long one wait lasts, so that deadlines and Ctrl-C are seen quickly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The private queues of a resource, by exchange and binding.
#[derive(Default)]
pub(crate) struct Taps {
    taps: Mutex<HashMap<String, Arc<Tap>>>,
    /// Held while a tap is made, so that two steps do not bind two queues for one key.
    making: tokio::sync::Mutex<()>,
}

/// What a tap has recorded.
struct Record {
    /// (arrival in ms since the epoch, never decreasing; message).
    messages: VecDeque<(i64, Arc<Value>)>,
    /// How many messages were forgotten from the front.
    forgotten: u64,
    /// Why the tap stopped, once it has.
    closed: Option<String>,
}

/// A private queue bound to an exchange, and what arrived on it.
pub(crate) struct Tap {
    /// When it began listening, in ms since the epoch.
    created_ms: i64,
    /// Its queue's name, for messages.
    queue: String,
    record: Mutex<Record>,
    arrived: Signal,
}

impl Tap {
    fn push(&self, msg: Value) {
        if let Ok(mut r) = self.record.lock() {
            let at = now_ms().max(r.messages.back().map_or(0, |(t, _)| *t));
            r.messages.push_back((at, Arc::new(msg)));
            if r.messages.len() > MAX_RECORDED {
                r.messages.pop_front();
                r.forgotten += 1;
            }
        }
        self.arrived.notify();
    }

    fn close(&self, why: String) {
        if let Ok(mut r) = self.record.lock()
            && r.closed.is_none()
        {
            r.closed = Some(why);
        }
        self.arrived.notify();
    }

    fn is_closed(&self) -> bool {
        self.record.lock().map_or(true, |r| r.closed.is_some())
    }
}

/// The binding of a step: a routing-key pattern, or header-exchange arguments.
enum Binding {
    Key(String),
    Headers(serde_json::Map<String, Value>),
}

impl Binding {
    fn describe(&self) -> String {
        match self {
            Binding::Key(k) => format!("binding `{k}`"),
            Binding::Headers(h) => format!("binding {}", Value::Object(h.clone())),
        }
    }
}

/// The key of a tap in [`Taps`].
fn tap_key(exchange: &str, binding: &Binding) -> String {
    format!(
        "{exchange}\u{0}{}",
        match binding {
            Binding::Key(k) => k.clone(),
            Binding::Headers(h) => Value::Object(h.clone()).to_string(),
        }
    )
}

/// The working tap of `exchange` and `binding`, if one was made.
fn existing_tap(res: &Resource, exchange: &str, binding: &Binding) -> Option<Arc<Tap>> {
    let key = tap_key(exchange, binding);
    let taps = res.taps.taps.lock().ok()?;
    taps.get(&key).filter(|t| !t.is_closed()).cloned()
}

/// Finds or makes the tap of `exchange` and `binding`.
async fn tap(res: &Resource, exchange: &str, binding: &Binding) -> Result<Arc<Tap>, KeywordError> {
    let key = tap_key(exchange, binding);
    let found = |res: &Resource| -> Option<Arc<Tap>> {
        let taps = res.taps.taps.lock().ok()?;
        taps.get(&key).filter(|t| !t.is_closed()).cloned()
    };
    if let Some(t) = found(res) {
        return Ok(t);
    }
    let _making = res.taps.making.lock().await;
    if let Some(t) = found(res) {
        return Ok(t);
    }
    let (routing_key, args) = match binding {
        Binding::Key(k) => (
            short("`binding`", k).map_err(KeywordError::new)?,
            FieldTable::default(),
        ),
        Binding::Headers(h) => ("".into(), table(h).map_err(KeywordError::new)?),
    };
    let exchange_name = short("`exchange`", exchange).map_err(KeywordError::new)?;
    let ch = res.channel().await?;
    let err = |e: lapin::Error| res.error(&e);
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let queue = q.name().clone();
    ch.queue_bind(
        queue.clone(),
        exchange_name,
        routing_key,
        QueueBindOptions::default(),
        args,
    )
    .await
    .map_err(|e| {
        KeywordError::new(format!(
            "{}: cannot bind a queue to exchange `{exchange}` ({}): {}",
            res.label,
            binding.describe(),
            super::chain(&e)
        ))
    })?;
    let mut consumer = ch
        .basic_consume(
            queue.clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    let t = Arc::new(Tap {
        created_ms: now_ms(),
        queue: queue.as_str().to_string(),
        record: Mutex::new(Record {
            messages: VecDeque::new(),
            forgotten: 0,
            closed: None,
        }),
        arrived: Signal::default(),
    });
    let reader = t.clone();
    tokio::spawn(async move {
        // The channel lives as long as this task: the queue is consumed until the connection ends.
        let _channel = ch;
        while let Some(d) = consumer.next().await {
            match d {
                Ok(d) => reader.push(message_json(
                    d.exchange.as_str(),
                    d.routing_key.as_str(),
                    d.redelivered,
                    &d.properties,
                    &d.data,
                )),
                Err(e) => {
                    reader.close(super::chain(&e));
                    return;
                }
            }
        }
        reader.close("the broker ended the consumer".into());
    });
    if let Ok(mut taps) = res.taps.taps.lock() {
        taps.insert(key, t.clone());
    }
    Ok(t)
}

/// What a step saw.
struct Seen {
    seen: usize,
    matched: Vec<Value>,
    /// Messages of the case that were forgotten before the step read them.
    missed: u64,
}

/// The `amqp.consume` keyword.
pub struct Consume {
    env: Env,
    clients: Arc<Clients>,
}

impl Consume {
    /// The keyword, consuming through `clients`.
    pub fn new(env: Env, clients: Arc<Clients>) -> Consume {
        Consume { env, clients }
    }
}

/// The step's arguments, read before anything connects.
struct Args<'c> {
    expect: Option<&'c Value>,
    count: usize,
    timeout: Duration,
}

fn holds(c: &Call<'_>, msg: &Value, expect: Option<&Value>) -> Result<bool, KeywordError> {
    match expect {
        None => Ok(true),
        Some(expect) => Ok(c
            .host
            .check(msg, expect)
            .map_err(|e| KeywordError::new(format!("invalid `match`: {e}")))?
            .is_empty()),
    }
}

fn poisoned<T>(_: T) -> KeywordError {
    KeywordError::new("amqp record poisoned")
}

/// Reads a tap's record for the step's case until `count` messages match
/// (with `count` 0: every match so far, without waiting).
fn read_tap(c: &Call<'_>, t: &Tap, a: &Args<'_>, end: Instant) -> Result<Seen, KeywordError> {
    let mut out = Seen {
        seen: 0,
        matched: Vec::new(),
        missed: 0,
    };
    let limit = if a.count == 0 { usize::MAX } else { a.count };
    // The absolute number (forgotten ones included) of the next message to read.
    let mut next: Option<u64> = None;
    loop {
        let (batch, closed) = {
            let mut r = t.record.lock().map_err(poisoned)?;
            let first = match next {
                Some(n) => n,
                None => {
                    let i = r.messages.partition_point(|(at, _)| *at < c.case_start_ms);
                    if i == 0 && r.forgotten > 0 {
                        // The case began before the oldest message still remembered.
                        out.missed += r.forgotten;
                    }
                    r.forgotten + i as u64
                }
            };
            let nothing_new = r.forgotten + r.messages.len() as u64 <= first;
            if nothing_new && next.is_some() && r.closed.is_none() && !c.host.cancelled() {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(out);
                }
                r = t
                    .arrived
                    .wait(&t.record, r, left.min(WAIT_SLICE))
                    .map_err(poisoned)?;
            }
            let mut first = first;
            if first < r.forgotten {
                out.missed += r.forgotten - first;
                first = r.forgotten;
            }
            let len = r.messages.len();
            let start = ((first - r.forgotten) as usize).min(len);
            let batch: Vec<Arc<Value>> = r
                .messages
                .range(start..len)
                .map(|(_, m)| m.clone())
                .collect();
            next = Some(r.forgotten + len as u64);
            (batch, r.closed.clone())
        };
        for msg in batch {
            if out.matched.len() >= limit {
                break;
            }
            out.seen += 1;
            if holds(c, &msg, a.expect)? {
                out.matched.push((*msg).clone());
            }
        }
        if a.count == 0 || out.matched.len() >= limit {
            return Ok(out);
        }
        if let Some(why) = closed {
            return Err(KeywordError::new(format!(
                "stopped listening on queue `{}`: {why} ({} seen, {} matched)",
                t.queue,
                out.seen,
                out.matched.len()
            )));
        }
        if c.host.cancelled() {
            return Err(KeywordError::new(format!(
                "interrupted while waiting for messages ({} seen, {} matched)",
                out.seen,
                out.matched.len()
            )));
        }
        if Instant::now() >= end {
            return Ok(out);
        }
    }
}

impl Consume {
    fn listen_on_exchange(
        &self,
        c: &Call<'_>,
        res: &Arc<Resource>,
        exchange: &str,
        binding: Binding,
        a: &Args<'_>,
    ) -> KeywordResult {
        let end = Instant::now() + a.timeout;
        let remaining = c.remaining();
        // Every step after the first finds its tap at once, without a trip
        // through the runtime.
        let t = if let Some(t) = existing_tap(res, exchange, &binding) {
            t
        } else {
            let res = res.clone();
            let exchange = exchange.to_string();
            let label = res.label.clone();
            crate::run_on(&self.env.runtime, async move {
                match tokio::time::timeout(remaining, tap(&res, &exchange, &binding)).await {
                    Ok(r) => r,
                    Err(_) => Err(KeywordError::timeout(format!(
                        "{label} did not answer within the step timeout ({} ms)",
                        remaining.as_millis()
                    ))),
                }
            })?
        };
        let out = read_tap(c, &t, a, end)?;
        if out.matched.len() < a.count {
            let mut msg = format!(
                "{} matching message(s) expected from exchange `{exchange}` within {} ms: saw {} \
                 message(s) since the case began, {} matched",
                a.count,
                a.timeout.as_millis(),
                out.seen,
                out.matched.len()
            );
            if t.created_ms > c.case_start_ms {
                msg.push_str(
                    " (atf began listening on this exchange and binding only at this step, \
                     after the case began: to see messages published earlier, listen from the \
                     `prepare` with an amqp.consume step with `count: 0`)",
                );
            }
            if out.missed > 0 {
                msg.push_str(&format!(
                    " ({} older message(s) were forgotten; atf remembers the last {MAX_RECORDED})",
                    out.missed
                ));
            }
            return Err(KeywordError::new(msg));
        }
        let n = out.matched.len();
        Ok(json!({ "messages": out.matched, "count": n }))
    }

    fn take_from_queue(
        &self,
        c: &Call<'_>,
        res: &Arc<Resource>,
        queue: &str,
        ack: bool,
        a: &Args<'_>,
    ) -> KeywordResult {
        let end = Instant::now() + a.timeout;
        let queue_name = short("`queue`", queue).map_err(KeywordError::new)?;
        let remaining = c.remaining();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Delivery, String>>();
        let ch = {
            let res = res.clone();
            crate::run_on(&self.env.runtime, async move {
                let fut = async {
                    let ch = res.channel().await?;
                    ch.basic_qos(PREFETCH, BasicQosOptions::default())
                        .await
                        .map_err(|e| res.error(&e))?;
                    let mut consumer = ch
                        .basic_consume(
                            queue_name,
                            "".into(),
                            BasicConsumeOptions::default(),
                            FieldTable::default(),
                        )
                        .await
                        .map_err(|e| res.error(&e))?;
                    tokio::spawn(async move {
                        while let Some(d) = consumer.next().await {
                            let d = d.map_err(|e| super::chain(&e));
                            let stop = d.is_err();
                            if tx.send(d).is_err() || stop {
                                break;
                            }
                        }
                    });
                    Ok(ch)
                };
                match tokio::time::timeout(remaining, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(KeywordError::timeout(format!(
                        "{} did not answer within the step timeout ({} ms)",
                        res.label,
                        remaining.as_millis()
                    ))),
                }
            })?
        };
        let mut seen = 0;
        let mut matched: Vec<(Value, Delivery)> = Vec::new();
        let mut failure: Option<KeywordError> = None;
        while matched.len() < a.count {
            if c.host.cancelled() {
                failure = Some(KeywordError::new(format!(
                    "interrupted while waiting for messages on queue `{queue}` ({seen} seen, {} \
                     matched)",
                    matched.len()
                )));
                break;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Waited for as a keyword waits: a virtual user sharing its
            // thread is suspended meanwhile.
            let slice = left.min(WAIT_SLICE);
            let got = crate::wait_here(&self.env.runtime, async {
                tokio::time::timeout(slice, rx.recv()).await
            });
            match got {
                // Nothing in this slice: look at Ctrl-C and the time again.
                Err(_elapsed) => {}
                Ok(None) => {
                    failure = Some(KeywordError::new(format!(
                        "{}: the broker ended the consumer of queue `{queue}`",
                        res.label
                    )));
                    break;
                }
                Ok(Some(Err(e))) => {
                    failure = Some(KeywordError::new(format!(
                        "{}: consuming queue `{queue}`: {e}",
                        res.label
                    )));
                    break;
                }
                Ok(Some(Ok(d))) => {
                    seen += 1;
                    let msg = message_json(
                        d.exchange.as_str(),
                        d.routing_key.as_str(),
                        d.redelivered,
                        &d.properties,
                        &d.data,
                    );
                    // A message that does not match stays unacknowledged until the channel
                    // closes, so the broker does not give it to this step again.
                    match holds(c, &msg, a.expect) {
                        Ok(true) => matched.push((msg, d)),
                        Ok(false) => {}
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            }
        }
        // Acknowledge what this step takes, then close the channel: the
        // broker puts every other message it gave this step back in the queue.
        let take = ack && failure.is_none() && matched.len() >= a.count;
        let ackers: Vec<lapin::Acker> = if take {
            matched.iter().map(|(_, d)| d.acker.clone()).collect()
        } else {
            Vec::new()
        };
        let res2 = res.clone();
        let settled = crate::run_on(&self.env.runtime, async move {
            let fut = async {
                for a in ackers {
                    a.ack(BasicAckOptions::default())
                        .await
                        .map_err(|e| res2.error(&e))?;
                }
                ch.close(200, "OK".into())
                    .await
                    .map_err(|e| res2.error(&e))?;
                Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(5), fut).await {
                Ok(r) => r,
                Err(_) => Err(KeywordError::new(format!(
                    "{} did not close the consuming channel within 5 s",
                    res2.label
                ))),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if matched.len() < a.count {
            return Err(KeywordError::new(format!(
                "{} matching message(s) expected from queue `{queue}` within {} ms: saw {seen} \
                 message(s), {} matched (the others were left in the queue)",
                a.count,
                a.timeout.as_millis(),
                matched.len()
            )));
        }
        settled?;
        let messages: Vec<Value> = matched.into_iter().map(|(m, _)| m).collect();
        let n = messages.len();
        Ok(json!({ "messages": messages, "count": n }))
    }
}

impl Keyword for Consume {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    /// It waits only in [`crate::run_on`] and [`crate::wait_here`] (both
    /// suspend a virtual user's coroutine), holding no lock across them.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
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
                Some(n) => n as usize,
                None => {
                    return Err(KeywordError::new(format!(
                        "argument `count` must be a whole number, got {v}"
                    )));
                }
            },
        };
        let timeout = match c.arg("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(v) => atf_sdk::parse_duration(v)
                .map_err(|e| KeywordError::new(format!("argument `timeout`: {e}")))?,
        };
        let a = Args {
            expect,
            count,
            timeout: timeout.min(c.remaining()),
        };
        let ack = c.bool_arg("ack", true)?;
        let binding = match c.arg("binding") {
            None => None,
            Some(Value::String(k)) => Some(Binding::Key(k.clone())),
            Some(Value::Object(h)) => Some(Binding::Headers(h.clone())),
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `binding` must be a binding key or an object of header \
                     arguments, got {}",
                    type_name(other)
                )));
            }
        };
        match (c.str_arg("queue")?, c.str_arg("exchange")?) {
            (Some(_), Some(_)) => Err(KeywordError::new(
                "give `queue` (take from a queue) or `exchange` (listen through a private \
                 queue), not both",
            )),
            (None, None) => Err(KeywordError::new(
                "argument `queue` or `exchange` is required",
            )),
            (Some(queue), None) => {
                if binding.is_some() {
                    return Err(KeywordError::new(
                        "`binding` goes with `exchange`, not with `queue`",
                    ));
                }
                if a.count == 0 {
                    return Err(KeywordError::new(
                        "`count: 0` goes with `exchange` (start listening early); a `queue` \
                         step takes at least one message",
                    ));
                }
                let res = self.clients.resource(c.resource()?)?;
                self.take_from_queue(c, &res, queue, ack, &a)
            }
            (None, Some(exchange)) => {
                if c.arg("ack").is_some() {
                    return Err(KeywordError::new(
                        "`ack` goes with `queue`: the private queue of `exchange` is never \
                         taken from",
                    ));
                }
                let res = self.clients.resource(c.resource()?)?;
                let binding = binding.unwrap_or_else(|| Binding::Key("#".into()));
                self.listen_on_exchange(c, &res, exchange, binding, &a)
            }
        }
    }
}
