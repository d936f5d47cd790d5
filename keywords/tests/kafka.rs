//! `kafka.produce` and `kafka.consume` against the real tansu broker on
//! 127.0.0.1:9092 (started by `scripts/services.sh`): keys, headers and JSON
//! values, `from: case_start` isolation on topics with old traffic, parallel
//! consumers, `from: beginning`, and the errors testers see.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atf_keywords::kafka;
use atf_sdk::{Keyword, KeywordResult, Value, json};
use common::{call_at, env, now_ms, require, runtime, unique};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

const ADDR: &str = "127.0.0.1:9092";

struct Kafka {
    produce: Arc<dyn Keyword>,
    consume: Arc<dyn Keyword>,
}

fn kafka() -> Kafka {
    require("The Kafka broker (tansu)", ADDR);
    let (kws, _clients) = kafka::keywords(&env(json!({"kafka": {
        "default": {"bootstrap.servers": ADDR},
        "down": {"bootstrap.servers": "127.0.0.1:1", "socket.connection.setup.timeout.ms": 1000}
    }})));
    let find = |name: &str| {
        kws.iter()
            .find(|k| k.spec().name == name)
            .cloned()
            .expect(name)
    };
    Kafka {
        produce: find("kafka.produce"),
        consume: find("kafka.consume"),
    }
}

/// Creates a topic of its own for one test.
fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", ADDR)
        .create()
        .expect("admin client");
    let new = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let results = runtime()
        .block_on(admin.create_topics(&[new], &AdminOptions::new()))
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
    }
    name
}

fn at(kw: &Arc<dyn Keyword>, args: Value, timeout: Duration, case_start_ms: i64) -> KeywordResult {
    call_at(kw.as_ref(), args, timeout, case_start_ms, Path::new("."))
}

fn produce(k: &Kafka, args: Value) -> Value {
    at(&k.produce, args.clone(), Duration::from_secs(15), now_ms())
        .unwrap_or_else(|e| panic!("produce {args}: {e}"))
}

#[test]
fn produce_and_consume_key_headers_and_json() {
    let k = kafka();
    let t = topic("atf-kv", 1);
    let case_start = now_ms();
    let r = produce(
        &k,
        json!({"topic": t, "key": "order-1", "value": {"id": "A-1", "qty": 2},
               "headers": {"trace": "abc", "n": 7}}),
    );
    assert_eq!(r["partition"], json!(0));
    assert!(r["offset"].as_i64().is_some(), "{r}");
    produce(&k, json!({"topic": t, "key": 42, "value": "plain text"}));
    produce(&k, json!({"topic": t, "value": [1, 2]}));

    let got = at(
        &k.consume,
        json!({"topic": t, "match": {"$.value.id": "A-1"}}),
        Duration::from_secs(15),
        case_start,
    )
    .unwrap();
    assert_eq!(got["count"], json!(1));
    let m = &got["messages"][0];
    assert_eq!(m["key"], json!("order-1"));
    assert_eq!(m["value"], json!({"id": "A-1", "qty": 2}));
    assert_eq!(m["headers"], json!({"trace": "abc", "n": "7"}));
    assert_eq!(m["partition"], json!(0));
    assert_eq!(m["offset"], r["offset"]);
    let ts = m["timestamp"].as_i64().expect("timestamp");
    assert!(ts >= case_start && ts <= now_ms(), "{ts} vs {case_start}");

    // Without `match`, the first `count` messages of the case, in order.
    let all = at(
        &k.consume,
        json!({"topic": t, "count": 3}),
        Duration::from_secs(15),
        case_start,
    )
    .unwrap();
    assert_eq!(all["count"], json!(3));
    assert_eq!(all["messages"][1]["key"], json!("42"));
    assert_eq!(all["messages"][1]["value"], json!("plain text"));
    assert_eq!(all["messages"][1]["headers"], json!({}));
    assert_eq!(all["messages"][2]["value"], json!([1, 2]));
    assert_eq!(all["messages"][2]["key"], Value::Null);
}

#[test]
fn case_start_skips_old_messages() {
    let k = kafka();
    let t = topic("atf-old", 1);
    for i in 0..5 {
        produce(&k, json!({"topic": t, "value": {"old": i}}));
    }
    std::thread::sleep(Duration::from_millis(30));
    let case_start = now_ms();
    // Nothing new yet: the old messages are not seen.
    let started = Instant::now();
    let e = at(
        &k.consume,
        json!({"topic": t, "timeout": "1s"}),
        Duration::from_secs(10),
        case_start,
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.message
            .contains("saw 0 message(s) since the case began, 0 matched"),
        "{}",
        e.message
    );

    produce(&k, json!({"topic": t, "value": {"new": 1}}));
    let got = at(
        &k.consume,
        json!({"topic": t, "timeout": "5s"}),
        Duration::from_secs(10),
        case_start,
    )
    .unwrap();
    assert_eq!(got["messages"][0]["value"], json!({"new": 1}));
    assert_eq!(got["messages"][0]["offset"], json!(5));

    // Asking for more than arrived fails, saying what it saw and what matched.
    let e = at(
        &k.consume,
        json!({"topic": t, "count": 2, "match": {"$.value.new": 1}, "timeout": "1s"}),
        Duration::from_secs(10),
        case_start,
    )
    .unwrap_err();
    assert!(e.message.contains("saw 1 message(s)"), "{}", e.message);
    assert!(e.message.contains("1 matched"), "{}", e.message);

    // A message that does not match is seen but not returned.
    produce(&k, json!({"topic": t, "value": {"new": 2}}));
    let e = at(
        &k.consume,
        json!({"topic": t, "match": {"$.value.new": 3}, "timeout": "1s"}),
        Duration::from_secs(10),
        case_start,
    )
    .unwrap_err();
    assert!(
        e.message.contains("saw 2 message(s)") && e.message.contains("0 matched"),
        "{}",
        e.message
    );
}

#[test]
fn from_beginning_reads_old_messages() {
    let k = kafka();
    let t = topic("atf-begin", 1);
    for i in 0..3 {
        produce(&k, json!({"topic": t, "value": {"i": i}}));
    }
    let got = at(
        &k.consume,
        json!({"topic": t, "from": "beginning", "count": 3}),
        Duration::from_secs(10),
        now_ms(),
    )
    .unwrap();
    let values: Vec<&Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["value"])
        .collect();
    assert_eq!(
        values,
        [&json!({"i": 0}), &json!({"i": 1}), &json!({"i": 2})]
    );
    let bad = at(
        &k.consume,
        json!({"topic": t, "from": "end"}),
        Duration::from_secs(5),
        now_ms(),
    );
    assert!(bad.unwrap_err().message.contains("case_start"));
}

#[test]
fn parallel_cases_each_see_their_own_messages() {
    let k = kafka();
    let t = topic("atf-par", 3);
    // Old traffic first, on every partition.
    for i in 0..6 {
        produce(
            &k,
            json!({"topic": t, "key": format!("old-{i}"), "value": {"case": "old"}}),
        );
    }
    std::thread::scope(|s| {
        for case in 0..4 {
            let (k, t) = (&k, &t);
            s.spawn(move || {
                let case_start = now_ms();
                let id = unique("case");
                let consumer = s.spawn({
                    let id = id.clone();
                    move || {
                        at(
                            &k.consume,
                            json!({"topic": t, "count": 2, "match": {"$.value.case": id}}),
                            Duration::from_secs(20),
                            case_start,
                        )
                    }
                });
                std::thread::sleep(Duration::from_millis(200));
                for n in 0..2 {
                    produce(k, json!({"topic": t, "key": format!("{id}-{n}"), "value": {"case": id, "n": n}}));
                }
                let got = consumer.join().unwrap().unwrap_or_else(|e| panic!("case {case}: {e}"));
                assert_eq!(got["count"], json!(2));
                for m in got["messages"].as_array().unwrap() {
                    assert_eq!(m["value"]["case"], json!(id));
                }
            });
        }
    });
}

#[test]
fn partitions_explicit_and_checked() {
    let k = kafka();
    let t = topic("atf-parts", 3);
    let case_start = now_ms();
    let r = produce(&k, json!({"topic": t, "partition": 2, "value": "p2"}));
    assert_eq!(r["partition"], json!(2));
    let got = at(
        &k.consume,
        json!({"topic": t}),
        Duration::from_secs(10),
        case_start,
    )
    .unwrap();
    assert_eq!(got["messages"][0]["partition"], json!(2));
    assert_eq!(got["messages"][0]["value"], json!("p2"));
    let e = at(
        &k.produce,
        json!({"topic": t, "partition": 5, "value": "x"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("no partition 5"), "{}", e.message);
}

#[test]
fn unknown_topic_fails_with_the_brokers_message() {
    let k = kafka();
    let t = unique("atf-missing");
    let started = Instant::now();
    let e = at(
        &k.produce,
        json!({"topic": t, "value": "x"}),
        Duration::from_secs(10),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        e.message.contains(&t) && e.message.contains("Unknown topic"),
        "{}",
        e.message
    );
    let e = at(
        &k.consume,
        json!({"topic": t, "timeout": "5s"}),
        Duration::from_secs(10),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        e.message.contains(&t) && e.message.contains("Unknown topic"),
        "{}",
        e.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn unreachable_broker_fails_within_the_timeout() {
    let k = kafka();
    for (kw, args) in [
        (
            &k.consume,
            json!({"topic": "atf-test", "resource": "down", "timeout": "2s"}),
        ),
        (
            &k.produce,
            json!({"topic": "atf-test", "resource": "down", "value": "x"}),
        ),
    ] {
        let started = Instant::now();
        let e = at(kw, args, Duration::from_secs(2), now_ms()).unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
        assert!(e.message.contains("Connection refused"), "{}", e.message);
        eprintln!("unreachable broker: {}", e.message);
    }
}

#[test]
fn unknown_resource_and_bad_arguments() {
    let k = kafka();
    let e = at(
        &k.produce,
        json!({"topic": "t", "resource": "nope"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        e.message.contains("nope") && e.message.contains("down"),
        "{}",
        e.message
    );
    let e = at(
        &k.consume,
        json!({"topic": "t", "count": 0}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("count"), "{}", e.message);
    let e = at(
        &k.consume,
        json!({"topic": "t", "match": [1]}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("match"), "{}", e.message);
    let e = at(
        &k.produce,
        json!({"topic": "t", "headers": [1]}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("headers"), "{}", e.message);
}

#[test]
fn consumers_are_reused_across_steps() {
    let k = kafka();
    let t = topic("atf-reuse", 1);
    let started = Instant::now();
    for i in 0..30 {
        let case_start = now_ms();
        produce(&k, json!({"topic": t, "value": {"i": i}}));
        let got = at(
            &k.consume,
            json!({"topic": t, "match": {"$.value.i": i}}),
            Duration::from_secs(10),
            case_start,
        )
        .unwrap_or_else(|e| panic!("step {i}: {e}"));
        assert_eq!(got["messages"][0]["value"], json!({"i": i}));
    }
    eprintln!("30 produce+consume steps took {:?}", started.elapsed());
}

/// A host that reports an interrupt once `flag` is set.
struct Interrupt(std::sync::atomic::AtomicBool);

impl atf_sdk::Host for Interrupt {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        common::TestHost.check(actual, expect)
    }
    fn cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn waits_end_at_the_step_deadline_and_on_interrupt() {
    let k = kafka();
    let t = topic("atf-wait", 1);
    // `timeout` is capped by the step's deadline.
    let started = Instant::now();
    let e = at(
        &k.consume,
        json!({"topic": t, "timeout": "30s"}),
        Duration::from_millis(800),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(e.message.contains("saw 0 message(s)"), "{}", e.message);

    // Ctrl-C: the wait stops within a poll slice.
    let host = Interrupt(std::sync::atomic::AtomicBool::new(false));
    let args = json!({"topic": t, "timeout": "30s"});
    let started = Instant::now();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            host.0.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let call = atf_sdk::Call {
            args: &args,
            deadline: Instant::now() + Duration::from_secs(30),
            case_start_ms: now_ms(),
            base_dir: Path::new("."),
            host: &host,
        };
        k.consume.call(&call)
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(result.unwrap_err().message.contains("interrupted"));
}
