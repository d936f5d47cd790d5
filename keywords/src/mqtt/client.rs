//! One MQTT connection per resource, shared by every case, and the
//! bookkeeping that turns rumqttc's event stream into answers for steps.
//!
//! rumqttc hands requests to an event loop and reports, in order, an
//! `Outgoing` event when each request is written and an `Incoming` event for
//! each acknowledgement. A step that publishes or subscribes enqueues its
//! request and a waiter under one lock, so the waiters are in the order the
//! event loop takes the requests: an `Outgoing::Publish(pkid)` completes (QoS
//! 0) or parks (QoS 1 and 2, until PUBACK / PUBCOMP) the oldest publish
//! waiter, and `Outgoing::Subscribe(pkid)` likewise for SUBACK. When the
//! connection fails, the requests not yet written are dropped (the session
//! is clean) and every waiter fails with the connection's error, so a step
//! fails at once with the broker's or network's own words rather than at
//! its timeout. The event loop then reconnects with a growing pause and
//! subscribes again to every filter the run holds.
//!
//! Each subscribed filter has an [`Inbox`] of the messages it received.
//! With MQTT 5 every subscription carries a subscription identifier, so a
//! message goes exactly to the filters the broker matched (a broker may send
//! one copy per overlapping subscription); with 3.1.1 a message goes to
//! every held filter that matches its topic.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atf_sdk::{KeywordError, Value, json};
use rumqttc::v5::mqttbytes as m5;
use serde_json::Map;
use tokio::sync::{oneshot, watch};

use crate::inbox::{Inbox, body_json, now_ms, text_of};

/// The MQTT protocol version of a resource.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Version {
    V311,
    V5,
}

/// What a waiting step is told.
type Done = oneshot::Sender<Result<Value, String>>;

#[derive(Default)]
struct Ops {
    publishes: VecDeque<Option<Done>>,
    subscribes: VecDeque<Option<Done>>,
    pub_inflight: HashMap<u16, Option<Done>>,
    sub_inflight: HashMap<u16, Option<Done>>,
}

impl Ops {
    fn fail_all(&mut self, why: &str) {
        let waiters = self
            .publishes
            .drain(..)
            .chain(self.subscribes.drain(..))
            .chain(self.pub_inflight.drain().map(|(_, d)| d))
            .chain(self.sub_inflight.drain().map(|(_, d)| d));
        for done in waiters.flatten() {
            let _ = done.send(Err(why.to_string()));
        }
    }
}

/// Where a subscription stands.
#[derive(Clone, Debug)]
pub(crate) enum SubState {
    /// Sent, no SUBACK yet.
    Pending,
    /// The broker granted it (from the given time, ms since the epoch).
    Active { since_ms: i64 },
    /// The broker refused it, or the connection failed first.
    Failed(String),
}

/// One topic filter the run listens to.
pub(crate) struct Sub {
    pub(crate) filter: String,
    qos: u8,
    id: usize,
    pub(crate) inbox: Inbox,
    pub(crate) state: watch::Sender<SubState>,
}

/// The request side of the connection.
enum Requests {
    V3(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// The connection of one mqtt resource.
pub(crate) struct Conn {
    /// `mqtt resource `name` (host:port)`, for messages (no password).
    pub(crate) label: String,
    pub(crate) version: Version,
    requests: Requests,
    ops: Mutex<Ops>,
    subs: Mutex<Vec<Arc<Sub>>>,
    next_sub_id: AtomicUsize,
    capacity: usize,
    /// The last connection error, for messages.
    last_error: Mutex<Option<String>>,
    connected: AtomicBool,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How to reach a broker.
pub(crate) struct Options {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    /// With `ca`: the TLS settings trusting it too.
    pub(crate) tls_config: Option<Arc<rustls::ClientConfig>>,
    pub(crate) user: Option<(String, String)>,
    pub(crate) client_id: String,
    pub(crate) keep_alive: Duration,
    pub(crate) version: Version,
    pub(crate) capacity: usize,
}

/// The largest packet accepted or sent.
const MAX_PACKET: usize = 16 * 1024 * 1024;

/// Requests that may wait in the client's channel.
const CHANNEL: usize = 4096;

/// The TLS transport: the resource's `ca` settings, else the system's roots.
fn transport(o: &Options) -> rumqttc::Transport {
    match &o.tls_config {
        Some(c) => {
            rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(c.clone()))
        }
        None => rumqttc::Transport::tls_with_default_config(),
    }
}

impl Conn {
    /// Creates the client and starts its event loop on `rt`; it connects in the background.
    pub(crate) fn start(rt: &tokio::runtime::Handle, label: String, o: Options) -> Arc<Conn> {
        let (requests, task): (Requests, EventTask) = match o.version {
            Version::V311 => {
                let mut mo = rumqttc::MqttOptions::new(&o.client_id, &o.host, o.port);
                mo.set_keep_alive(o.keep_alive)
                    .set_clean_session(true)
                    .set_max_packet_size(MAX_PACKET, MAX_PACKET)
                    .set_request_channel_capacity(CHANNEL);
                if let Some((u, p)) = &o.user {
                    mo.set_credentials(u, p);
                }
                if o.tls {
                    mo.set_transport(transport(&o));
                }
                let (client, el) = rumqttc::AsyncClient::new(mo, CHANNEL);
                (Requests::V3(client), EventTask::V3(Box::new(el)))
            }
            Version::V5 => {
                let mut mo = rumqttc::v5::MqttOptions::new(&o.client_id, &o.host, o.port);
                mo.set_keep_alive(o.keep_alive)
                    .set_clean_start(true)
                    .set_max_packet_size(Some(MAX_PACKET as u32))
                    .set_request_channel_capacity(CHANNEL);
                if let Some((u, p)) = &o.user {
                    mo.set_credentials(u, p);
                }
                if o.tls {
                    mo.set_transport(transport(&o));
                }
                let (client, el) = rumqttc::v5::AsyncClient::new(mo, CHANNEL);
                (Requests::V5(client), EventTask::V5(Box::new(el)))
            }
        };
        let conn = Arc::new(Conn {
            label,
            version: o.version,
            requests,
            ops: Mutex::new(Ops::default()),
            subs: Mutex::new(Vec::new()),
            next_sub_id: AtomicUsize::new(1),
            capacity: o.capacity,
            last_error: Mutex::new(None),
            connected: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        let handle = rt.spawn(run_events(Arc::downgrade(&conn), task));
        if let Ok(mut t) = conn.task.lock() {
            *t = Some(handle);
        }
        conn
    }

    /// The last connection error, if the connection is down.
    pub(crate) fn down_because(&self) -> Option<String> {
        if self.connected.load(Ordering::Relaxed) {
            return None;
        }
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Publishes and waits for the broker's acknowledgement (QoS 1, 2) or
    /// for the packet to be written (QoS 0), at most `limit`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: u8,
        retain: bool,
        props: Option<m5::v5::PublishProperties>,
        limit: Duration,
    ) -> Result<Value, KeywordError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut ops = self
                .ops
                .lock()
                .map_err(|_| KeywordError::new("mqtt state poisoned"))?;
            let sent = match &self.requests {
                Requests::V3(c) => c
                    .try_publish(topic, qos3(qos), retain, payload)
                    .map_err(|e| client_error(&e.to_string())),
                Requests::V5(c) => match props {
                    Some(p) => c.try_publish_with_properties(topic, qos5(qos), retain, payload, p),
                    None => c.try_publish(topic, qos5(qos), retain, payload),
                }
                .map_err(|e| client_error(&e.to_string())),
            };
            sent.map_err(|e| {
                KeywordError::new(format!("{}: cannot publish to `{topic}`: {e}", self.label))
            })?;
            ops.publishes.push_back(Some(tx));
        }
        self.answer(rx, limit, &format!("publish to `{topic}`"))
            .await
    }

    /// The subscription of `filter`, made (and granted) if the run does not hold it yet.
    /// Returns it and whether this call made it.
    pub(crate) async fn subscribe(
        self: &Arc<Self>,
        filter: &str,
        qos: u8,
        limit: Duration,
    ) -> Result<(Arc<Sub>, bool), KeywordError> {
        let (sub, rx, made) = {
            let mut subs = self
                .subs
                .lock()
                .map_err(|_| KeywordError::new("mqtt state poisoned"))?;
            let stale = subs.iter().position(|s| {
                s.filter == filter && matches!(*s.state.borrow(), SubState::Failed(_))
            });
            if let Some(i) = stale {
                subs.remove(i);
            }
            match subs.iter().find(|s| s.filter == filter) {
                Some(s) => (s.clone(), None, false),
                None => {
                    let sub = Arc::new(Sub {
                        filter: filter.to_string(),
                        qos,
                        id: self.next_sub_id.fetch_add(1, Ordering::Relaxed),
                        inbox: Inbox::new(self.capacity),
                        state: watch::Sender::new(SubState::Pending),
                    });
                    let (tx, rx) = oneshot::channel();
                    self.send_subscribe(&sub, Some(tx))?;
                    subs.push(sub.clone());
                    (sub, Some(rx), true)
                }
            }
        };
        if let Some(rx) = rx {
            let state = match self
                .answer(rx, limit, &format!("subscription to `{filter}`"))
                .await
            {
                Ok(_) => SubState::Active { since_ms: now_ms() },
                Err(e) => SubState::Failed(e.message),
            };
            sub.state.send_replace(state);
        }
        // Another step made it: wait for its answer.
        let mut state = sub.state.subscribe();
        let waited =
            tokio::time::timeout(limit, state.wait_for(|s| !matches!(s, SubState::Pending))).await;
        let now = sub.state.borrow().clone();
        match now {
            SubState::Active { .. } => Ok((sub, made)),
            SubState::Failed(e) => Err(KeywordError::new(e)),
            SubState::Pending => {
                drop(waited);
                Err(KeywordError::new(format!(
                    "{}: no SUBACK for `{filter}` within {} ms{}",
                    self.label,
                    limit.as_millis(),
                    self.because()
                )))
            }
        }
    }

    /// Sends a SUBSCRIBE for `sub`; the caller holds the subs lock (or owns `sub`).
    fn send_subscribe(&self, sub: &Sub, done: Option<Done>) -> Result<(), KeywordError> {
        let mut ops = self
            .ops
            .lock()
            .map_err(|_| KeywordError::new("mqtt state poisoned"))?;
        let sent = match &self.requests {
            Requests::V3(c) => c
                .try_subscribe(sub.filter.as_str(), qos3(sub.qos))
                .map_err(|e| client_error(&e.to_string())),
            Requests::V5(c) => c
                .try_subscribe_with_properties(
                    sub.filter.as_str(),
                    qos5(sub.qos),
                    m5::v5::SubscribeProperties {
                        id: Some(sub.id),
                        user_properties: Vec::new(),
                    },
                )
                .map_err(|e| client_error(&e.to_string())),
        };
        sent.map_err(|e| {
            KeywordError::new(format!(
                "{}: cannot subscribe to `{}`: {e}",
                self.label, sub.filter
            ))
        })?;
        ops.subscribes.push_back(done);
        Ok(())
    }

    async fn answer(
        &self,
        rx: oneshot::Receiver<Result<Value, String>>,
        limit: Duration,
        what: &str,
    ) -> Result<Value, KeywordError> {
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(KeywordError::new(format!("{}: {what}: {e}", self.label))),
            Ok(Err(_)) => Err(KeywordError::new(format!(
                "{}: {what}: the connection was closed",
                self.label
            ))),
            Err(_) => Err(KeywordError::new(format!(
                "{}: {what}: no answer from the broker within {} ms{}",
                self.label,
                limit.as_millis(),
                self.because()
            ))),
        }
    }

    fn because(&self) -> String {
        match self.down_because() {
            Some(e) => format!(" (not connected: {e})"),
            None => String::new(),
        }
    }

    /// Disconnects and stops the event loop.
    pub(crate) fn shutdown(&self) {
        match &self.requests {
            Requests::V3(c) => {
                let _ = c.try_disconnect();
            }
            Requests::V5(c) => {
                let _ = c.try_disconnect();
            }
        }
        if let Ok(mut t) = self.task.lock()
            && let Some(t) = t.take()
        {
            t.abort();
        }
    }

    // ---- the event loop's side ----

    fn on_connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
        // A clean session forgets subscriptions: make the granted ones again.
        if let Ok(subs) = self.subs.lock() {
            for sub in subs.iter() {
                if matches!(*sub.state.borrow(), SubState::Active { .. }) {
                    let _ = self.send_subscribe(sub, None);
                }
            }
        }
    }

    fn on_out_publish(&self, pkid: u16) {
        let Ok(mut ops) = self.ops.lock() else { return };
        if pkid == 0 {
            if let Some(Some(done)) = ops.publishes.pop_front() {
                let _ = done.send(Ok(json!({})));
            }
        } else if !ops.pub_inflight.contains_key(&pkid) {
            // (A pkid already in flight is a retransmission, not a new request.)
            if let Some(done) = ops.publishes.pop_front() {
                ops.pub_inflight.insert(pkid, done);
            }
        }
    }

    fn on_out_subscribe(&self, pkid: u16) {
        let Ok(mut ops) = self.ops.lock() else { return };
        if let Some(done) = ops.subscribes.pop_front() {
            ops.sub_inflight.insert(pkid, done);
        }
    }

    /// PUBACK, a failed PUBREC, or PUBCOMP.
    fn on_pub_done(&self, pkid: u16, result: Result<Value, String>) {
        let Ok(mut ops) = self.ops.lock() else { return };
        if let Some(Some(done)) = ops.pub_inflight.remove(&pkid) {
            let _ = done.send(result);
        }
    }

    fn on_suback(&self, pkid: u16, result: Result<Value, String>) {
        let Ok(mut ops) = self.ops.lock() else { return };
        if let Some(Some(done)) = ops.sub_inflight.remove(&pkid) {
            let _ = done.send(result);
        }
    }

    fn on_message(&self, topic: &str, msg: Value, sub_ids: &[usize]) {
        let Ok(subs) = self.subs.lock() else { return };
        let at = now_ms();
        for sub in subs.iter() {
            let hit = if sub_ids.is_empty() {
                rumqttc::matches(topic, &sub.filter)
            } else {
                sub_ids.contains(&sub.id)
            };
            if hit {
                sub.inbox.push_at(at, msg.clone());
            }
        }
    }

    /// The connection failed: drop what was not written and fail every waiter.
    fn on_error(&self, why: String, drop_unsent: impl FnOnce()) {
        self.connected.store(false, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(why.clone());
        }
        if let Ok(mut ops) = self.ops.lock() {
            // Under the lock no step can enqueue between the drop and the failures.
            drop_unsent();
            ops.fail_all(&why);
        }
    }
}

fn qos3(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> m5::QoS {
    match q {
        0 => m5::QoS::AtMostOnce,
        1 => m5::QoS::AtLeastOnce,
        _ => m5::QoS::ExactlyOnce,
    }
}

/// rumqttc refuses a request only when its channel is full (topics are
/// checked before): say so without echoing the request.
fn client_error(_text: &str) -> String {
    format!("more than {CHANNEL} requests are waiting for the broker")
}

enum EventTask {
    V3(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// Polls the event loop until the connection is dropped (the run ends).
async fn run_events(conn: std::sync::Weak<Conn>, mut task: EventTask) {
    let mut pause = Duration::from_millis(100);
    loop {
        let failed = match &mut task {
            EventTask::V3(el) => match el.poll().await {
                Ok(ev) => {
                    let Some(c) = conn.upgrade() else { return };
                    handle_v3(&c, ev);
                    None
                }
                Err(e) => Some(connection_error(&e.to_string())),
            },
            EventTask::V5(el) => match el.poll().await {
                Ok(ev) => {
                    let Some(c) = conn.upgrade() else { return };
                    handle_v5(&c, ev);
                    None
                }
                Err(e) => Some(connection_error(&e.to_string())),
            },
        };
        match failed {
            None => pause = Duration::from_millis(100),
            Some(why) => {
                let Some(c) = conn.upgrade() else { return };
                c.on_error(why, || match &mut task {
                    EventTask::V3(el) => {
                        el.clean();
                        el.pending.clear();
                    }
                    EventTask::V5(el) => {
                        el.clean();
                        el.pending.clear();
                    }
                });
                drop(c);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn connection_error(text: &str) -> String {
    text.to_string()
}

fn handle_v3(c: &Conn, ev: rumqttc::Event) {
    use rumqttc::{Event, Incoming, Outgoing, SubscribeReasonCode};
    match ev {
        Event::Incoming(Incoming::ConnAck(_)) => c.on_connected(),
        Event::Incoming(Incoming::Publish(p)) => {
            let msg = json!({
                "topic": p.topic,
                "payload": body_json(&p.payload),
                "qos": p.qos as u8,
                "retain": p.retain,
                "timestamp": now_ms(),
            });
            c.on_message(&p.topic, msg, &[]);
        }
        Event::Incoming(Incoming::PubAck(a)) => c.on_pub_done(a.pkid, Ok(json!({}))),
        Event::Incoming(Incoming::PubComp(a)) => c.on_pub_done(a.pkid, Ok(json!({}))),
        Event::Incoming(Incoming::SubAck(a)) => {
            let result = match a.return_codes.first() {
                Some(SubscribeReasonCode::Success(q)) => Ok(json!({"granted_qos": *q as u8})),
                _ => Err("the broker refused the subscription".to_string()),
            };
            c.on_suback(a.pkid, result);
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => c.on_out_publish(pkid),
        Event::Outgoing(Outgoing::Subscribe(pkid)) => c.on_out_subscribe(pkid),
        _ => {}
    }
}

fn handle_v5(c: &Conn, ev: rumqttc::v5::Event) {
    use m5::v5::{Packet, PubAckReason, PubCompReason, PubRecReason, SubscribeReasonCode};
    use rumqttc::Outgoing;
    use rumqttc::v5::Event;
    match ev {
        Event::Incoming(Packet::ConnAck(_)) => c.on_connected(),
        Event::Incoming(Packet::Publish(p)) => {
            let topic = String::from_utf8_lossy(&p.topic).to_string();
            let mut msg = json!({
                "topic": topic,
                "payload": body_json(&p.payload),
                "qos": p.qos as u8,
                "retain": p.retain,
                "timestamp": now_ms(),
            });
            let mut ids = Vec::new();
            if let Some(props) = &p.properties {
                ids = props.subscription_identifiers.clone();
                msg["properties"] = properties_json(props);
            }
            c.on_message(&topic, msg, &ids);
        }
        Event::Incoming(Packet::PubAck(a)) => {
            let result = match a.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                    Ok(json!({"reason": format!("{:?}", a.reason)}))
                }
                other => Err(reason_text(
                    &format!("{other:?}"),
                    a.properties.and_then(|p| p.reason_string),
                )),
            };
            c.on_pub_done(a.pkid, result);
        }
        Event::Incoming(Packet::PubRec(a)) => match a.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => {}
            other => c.on_pub_done(
                a.pkid,
                Err(reason_text(
                    &format!("{other:?}"),
                    a.properties.and_then(|p| p.reason_string),
                )),
            ),
        },
        Event::Incoming(Packet::PubComp(a)) => {
            let result = match a.reason {
                PubCompReason::Success => Ok(json!({"reason": "Success"})),
                other => Err(format!("{other:?}")),
            };
            c.on_pub_done(a.pkid, result);
        }
        Event::Incoming(Packet::SubAck(a)) => {
            let result = match a.return_codes.first() {
                Some(SubscribeReasonCode::Success(q)) => Ok(json!({"granted_qos": *q as u8})),
                Some(other) => Err(reason_text(
                    &format!("the broker refused the subscription: {other:?}"),
                    a.properties.and_then(|p| p.reason_string),
                )),
                None => Err("the broker refused the subscription".to_string()),
            };
            c.on_suback(a.pkid, result);
        }
        Event::Incoming(Packet::Disconnect(d)) => {
            if let Ok(mut last) = c.last_error.lock() {
                *last = Some(reason_text(
                    &format!("the broker disconnected: {:?}", d.reason_code),
                    d.properties.and_then(|p| p.reason_string),
                ));
            }
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => c.on_out_publish(pkid),
        Event::Outgoing(Outgoing::Subscribe(pkid)) => c.on_out_subscribe(pkid),
        _ => {}
    }
}

fn reason_text(reason: &str, detail: Option<String>) -> String {
    match detail {
        Some(d) if !d.is_empty() => format!("{reason} ({d})"),
        _ => reason.to_string(),
    }
}

/// The MQTT 5 properties of a received message.
fn properties_json(p: &m5::v5::PublishProperties) -> Value {
    let mut out = Map::new();
    let mut user = Map::new();
    for (k, v) in &p.user_properties {
        user.insert(k.clone(), Value::String(v.clone()));
    }
    out.insert("user_properties".into(), Value::Object(user));
    if let Some(ct) = &p.content_type {
        out.insert("content_type".into(), json!(ct));
    }
    if let Some(rt) = &p.response_topic {
        out.insert("response_topic".into(), json!(rt));
    }
    if let Some(cd) = &p.correlation_data {
        out.insert("correlation_data".into(), json!(text_of(cd)));
    }
    if let Some(e) = p.message_expiry_interval {
        out.insert("message_expiry_interval".into(), json!(e));
    }
    if let Some(f) = p.payload_format_indicator {
        out.insert("payload_format_indicator".into(), json!(f));
    }
    Value::Object(out)
}
