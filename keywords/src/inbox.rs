//! Messages that arrived on a long-lived subscription, kept with their
//! arrival time, and the wait for the ones a step wants.
//!
//! MQTT topic filters, NATS core subjects and WebSocket connections deliver
//! messages only while something listens. Their keywords keep one listener
//! per subscription (or connection) that pushes every message into an
//! [`Inbox`]: a bounded ring, oldest dropped first. A consuming step then
//! reads the messages that arrived since its case began and meet its
//! `match` ([`Inbox::wait`]), waiting for more until it has `count` of them
//! or its time is up. Several cases read the same inbox at once; with
//! [`Take::Remove`] (WebSocket) a message that a step returned is removed so
//! the next step does not see it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, KeywordError, Value};

use crate::local::Signal;

/// The most messages an inbox keeps unless its resource says otherwise.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// How long one wait lasts before the step looks at Ctrl-C again.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// One message as it arrived.
struct Entry {
    seq: u64,
    at_ms: i64,
    value: Arc<Value>,
}

#[derive(Default)]
struct State {
    entries: VecDeque<Entry>,
    next_seq: u64,
    /// Arrival time of the newest message dropped because the inbox was full.
    dropped_at_ms: Option<i64>,
    /// Why no more messages will come (the connection closed), if so.
    closed: Option<String>,
}

/// Recent messages of one subscription or connection.
pub struct Inbox {
    capacity: usize,
    state: Mutex<State>,
    arrived: Signal,
}

/// Whether a step that returns messages takes them out of the inbox.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Take {
    /// Leave them: other steps and cases see them too (MQTT, NATS).
    Keep,
    /// Remove them: a later step sees only messages not yet returned (WebSocket).
    Remove,
}

/// What a wait found.
#[derive(Debug, Default)]
pub struct Found {
    /// Messages that arrived in the window, matched or not.
    pub seen: usize,
    /// The messages that met `match`, oldest first.
    pub matched: Vec<Value>,
    /// Why the wait ended early, if it did not end with enough messages or at its time.
    pub closed: Option<String>,
    /// Messages of the window were dropped because the inbox was full.
    pub dropped: bool,
}

impl Inbox {
    /// An empty inbox keeping at most `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Inbox {
        Inbox {
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            arrived: Signal::default(),
        }
    }

    /// Adds a message that arrived now.
    pub fn push(&self, value: Value) {
        self.push_at(now_ms(), value)
    }

    /// Adds a message that arrived at `at_ms` (ms since the epoch).
    pub fn push_at(&self, at_ms: i64, value: Value) {
        if let Ok(mut st) = self.state.lock() {
            let seq = st.next_seq;
            st.next_seq += 1;
            st.entries.push_back(Entry {
                seq,
                at_ms,
                value: Arc::new(value),
            });
            while st.entries.len() > self.capacity {
                if let Some(old) = st.entries.pop_front() {
                    st.dropped_at_ms = Some(old.at_ms);
                }
            }
        }
        self.arrived.notify();
    }

    /// Marks the inbox as closed: waits end at once with `why`.
    pub fn close(&self, why: String) {
        if let Ok(mut st) = self.state.lock()
            && st.closed.is_none()
        {
            st.closed = Some(why);
        }
        self.arrived.notify();
    }

    /// Number of messages held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map(|st| st.entries.len()).unwrap_or(0)
    }

    /// Waits until `count` messages that arrived at or after `since_ms` meet
    /// `expect` (checked with the step's host, as `kafka.consume` does), or
    /// until `end`, Ctrl-C or the inbox closing. `keep` picks the messages
    /// that belong to the step at all (e.g. a topic filter) before `expect`
    /// is checked. Errors are only those of `expect` itself and Ctrl-C.
    #[allow(clippy::too_many_arguments)]
    pub fn wait(
        &self,
        c: &Call<'_>,
        since_ms: i64,
        keep: &dyn Fn(&Value) -> bool,
        expect: Option<&Value>,
        count: usize,
        end: Instant,
        take: Take,
    ) -> Result<Found, KeywordError> {
        let mut found = Found::default();
        let mut cursor: u64 = 0;
        let mut taken: Vec<u64> = Vec::new();
        loop {
            // Copy out the new messages of the window; check them unlocked.
            let (fresh, closed) = {
                let st = self
                    .state
                    .lock()
                    .map_err(|_| KeywordError::new("message buffer poisoned"))?;
                if st.dropped_at_ms.is_some_and(|t| t >= since_ms) {
                    found.dropped = true;
                }
                let fresh: Vec<(u64, Arc<Value>)> = st
                    .entries
                    .iter()
                    .filter(|e| e.seq >= cursor && e.at_ms >= since_ms)
                    .map(|e| (e.seq, e.value.clone()))
                    .collect();
                cursor = st.next_seq;
                (fresh, st.closed.clone())
            };
            for (seq, value) in fresh {
                if found.matched.len() >= count {
                    break;
                }
                if !keep(&value) {
                    continue;
                }
                found.seen += 1;
                let holds = match expect {
                    None => true,
                    Some(expect) => c
                        .host
                        .check(&value, expect)
                        .map_err(|e| KeywordError::new(format!("invalid `match`: {e}")))?
                        .is_empty(),
                };
                if holds {
                    found.matched.push((*value).clone());
                    taken.push(seq);
                }
            }
            if found.matched.len() >= count {
                break;
            }
            if let Some(why) = closed {
                found.closed = Some(why);
                break;
            }
            if c.host.cancelled() {
                return Err(KeywordError::new(format!(
                    "interrupted while waiting for messages ({} seen, {} matched)",
                    found.seen,
                    found.matched.len()
                )));
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let st = self
                .state
                .lock()
                .map_err(|_| KeywordError::new("message buffer poisoned"))?;
            if st.next_seq == cursor && st.closed.is_none() {
                // The loop reads the state again, from the top.
                drop(
                    self.arrived
                        .wait(&self.state, st, left.min(WAIT_SLICE))
                        .map_err(|_| KeywordError::new("message buffer poisoned"))?,
                );
            }
        }
        if take == Take::Remove
            && !taken.is_empty()
            && let Ok(mut st) = self.state.lock()
        {
            st.entries.retain(|e| !taken.contains(&e.seq));
        }
        Ok(found)
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Bytes as a message body: parsed JSON when they are JSON, UTF-8 text as
/// is, anything else as base64 text.
pub fn body_json(bytes: &[u8]) -> Value {
    use base64::Engine as _;
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

/// Bytes as text: UTF-8 as is, anything else as base64.
pub fn text_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// The body a publishing step sends: `json` as JSON text, or `payload`
/// (text as is, any other JSON value as JSON text); empty when neither is
/// given. Both at once is an error.
pub fn payload_arg(c: &Call<'_>) -> Result<Vec<u8>, KeywordError> {
    match (c.arg("payload"), c.arg("json")) {
        (Some(_), Some(_)) => Err(KeywordError::new("give `payload` or `json`, not both")),
        (Some(Value::String(s)), None) => Ok(s.as_bytes().to_vec()),
        (Some(v), None) | (None, Some(v)) => Ok(v.to_string().into_bytes()),
        (None, None) => Ok(Vec::new()),
    }
}

/// The `count` argument: a positive integer, 1 when absent.
pub fn count_arg(c: &Call<'_>) -> Result<usize, KeywordError> {
    match c.arg("count") {
        None => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(n as usize),
            _ => Err(KeywordError::new(format!(
                "argument `count` must be a positive integer, got {v}"
            ))),
        },
    }
}

/// The `match` argument: an object of expectations, if given.
pub fn match_arg<'a>(c: &'a Call<'_>) -> Result<Option<&'a Value>, KeywordError> {
    match c.arg("match") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(other) => Err(KeywordError::new(format!(
            "argument `match` must be an object of expectations, got {}",
            atf_sdk::type_name(other)
        ))),
    }
}

/// A duration argument `name`, `default` when absent, never past the step's deadline.
pub fn duration_arg(c: &Call<'_>, name: &str, default: Duration) -> Result<Duration, KeywordError> {
    let d = match c.arg(name) {
        None => default,
        Some(v) => atf_sdk::parse_duration(v)
            .map_err(|e| KeywordError::new(format!("argument `{name}`: {e}")))?,
    };
    Ok(d.min(c.remaining()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atf_sdk::{Host, json};
    use std::path::Path;

    struct AllMatch;
    impl Host for AllMatch {
        fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
            // `{"want": v}`: holds when the message equals v.
            Ok(if expect.get("want") == Some(actual) {
                vec![]
            } else {
                vec!["differs".into()]
            })
        }
        fn cancelled(&self) -> bool {
            false
        }
    }

    fn call(args: &Value) -> Call<'_> {
        Call {
            args,
            deadline: Instant::now() + Duration::from_secs(5),
            case_start_ms: 0,
            base_dir: Path::new("."),
            host: &AllMatch,
        }
    }

    #[test]
    fn only_messages_since_the_start_are_seen() {
        let inbox = Inbox::new(10);
        inbox.push_at(100, json!(1));
        inbox.push_at(200, json!(2));
        inbox.push_at(300, json!(3));
        let args = json!({});
        let c = call(&args);
        let f = inbox
            .wait(&c, 200, &|_| true, None, 5, Instant::now(), Take::Keep)
            .unwrap();
        assert_eq!(f.matched, vec![json!(2), json!(3)]);
        assert_eq!(f.seen, 2);
        assert!(!f.dropped);
    }

    #[test]
    fn match_and_keep_pick_messages_and_remove_takes_them() {
        let inbox = Inbox::new(10);
        for i in 0..4 {
            inbox.push_at(10, json!(i));
        }
        let args = json!({});
        let c = call(&args);
        let want = json!({"want": 2});
        let odd_or_two = |v: &Value| v.as_i64().is_some_and(|n| n % 2 == 1 || n == 2);
        let f = inbox
            .wait(
                &c,
                0,
                &odd_or_two,
                Some(&want),
                1,
                Instant::now(),
                Take::Remove,
            )
            .unwrap();
        assert_eq!(f.matched, vec![json!(2)]);
        assert_eq!(
            f.seen, 2,
            "0 is left out by `keep`, 1 is seen and does not match"
        );
        assert_eq!(inbox.len(), 3, "the returned message is taken out");
        let f = inbox
            .wait(&c, 0, &|_| true, None, 10, Instant::now(), Take::Keep)
            .unwrap();
        assert_eq!(f.matched, vec![json!(0), json!(1), json!(3)]);
    }

    #[test]
    fn a_full_inbox_drops_the_oldest_and_says_so() {
        let inbox = Inbox::new(2);
        inbox.push_at(10, json!(1));
        inbox.push_at(11, json!(2));
        inbox.push_at(12, json!(3));
        let args = json!({});
        let c = call(&args);
        let f = inbox
            .wait(&c, 0, &|_| true, None, 5, Instant::now(), Take::Keep)
            .unwrap();
        assert_eq!(f.matched, vec![json!(2), json!(3)]);
        assert!(f.dropped);
        let f = inbox
            .wait(&c, 11, &|_| true, None, 5, Instant::now(), Take::Keep)
            .unwrap();
        assert!(!f.dropped, "the dropped message is older than this window");
    }

    #[test]
    fn a_waiting_step_sees_later_messages_and_a_close() {
        let inbox = Arc::new(Inbox::new(10));
        let pusher = inbox.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            pusher.push(json!("late"));
            std::thread::sleep(Duration::from_millis(30));
            pusher.close("gone".into());
        });
        let args = json!({});
        let c = call(&args);
        let f = inbox
            .wait(
                &c,
                0,
                &|_| true,
                None,
                2,
                Instant::now() + Duration::from_secs(10),
                Take::Keep,
            )
            .unwrap();
        t.join().unwrap();
        assert_eq!(f.matched, vec![json!("late")]);
        assert_eq!(f.closed.as_deref(), Some("gone"));
    }

    #[test]
    fn a_virtual_user_waits_without_holding_its_thread() {
        // The pusher shares the waiter's thread: if the wait blocked the
        // thread, the message would never come and it would end empty.
        let inbox = Inbox::new(10);
        let found = std::sync::Mutex::new(None);
        let bodies: Vec<Box<dyn FnOnce() + Send + '_>> = vec![
            Box::new(|| {
                let args = json!({});
                let c = call(&args);
                let end = Instant::now() + Duration::from_secs(10);
                let f = inbox.wait(&c, 0, &|_| true, None, 1, end, Take::Keep);
                *found.lock().unwrap() = Some(f.map(|f| f.matched));
            }),
            Box::new(|| {
                crate::local::sleep(Duration::from_millis(20));
                inbox.push(json!("late"));
            }),
        ];
        crate::local::run_group(bodies);
        let found = found.into_inner().unwrap().unwrap().unwrap();
        assert_eq!(found, vec![json!("late")]);
    }

    #[test]
    fn bodies_and_payload_arguments() {
        assert_eq!(body_json(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(body_json(b"plain"), json!("plain"));
        assert_eq!(body_json(&[0xff, 0x00]), json!("/wA="));
        let args = json!({"json": {"a": 1}});
        assert_eq!(payload_arg(&call(&args)).unwrap(), br#"{"a":1}"#.to_vec());
        let args = json!({"payload": "x"});
        assert_eq!(payload_arg(&call(&args)).unwrap(), b"x".to_vec());
        let args = json!({"payload": 5});
        assert_eq!(payload_arg(&call(&args)).unwrap(), b"5".to_vec());
        let args = json!({"payload": "x", "json": 1});
        assert!(payload_arg(&call(&args)).is_err());
    }
}
