//! `amqp.publish` and `amqp.consume` against the real RabbitMQ on
//! 127.0.0.1:5672 (guest/guest, started by `scripts/services.sh`): bodies,
//! headers and properties; taking from a queue without taking what does not
//! match; listening on an exchange with per-case isolation; and the
//! broker's own errors.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use atf_keywords::amqp;
use atf_sdk::{Keyword, KeywordResult, Value, json};
use common::{call_at, env, now_ms, require, runtime, unique};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};

const ADDR: &str = "127.0.0.1:5672";
const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

struct Amqp {
    publish: Arc<dyn Keyword>,
    consume: Arc<dyn Keyword>,
}

/// One set of keywords for the whole binary, as one run shares them.
fn amqp() -> &'static Amqp {
    static K: OnceLock<Amqp> = OnceLock::new();
    require("RabbitMQ", ADDR);
    K.get_or_init(|| {
        let (kws, clients) = amqp::keywords(&env(json!({"amqp": {
            "default": URL,
            "down": "amqp://guest:guest@127.0.0.1:1/%2f",
            "badpw": "amqp://guest:definitely-wrong@127.0.0.1:5672/%2f"
        }})));
        // Kept for the life of the test process.
        std::mem::forget(clients);
        let find = |name: &str| {
            kws.iter()
                .find(|k| k.spec().name == name)
                .cloned()
                .expect(name)
        };
        Amqp {
            publish: find("amqp.publish"),
            consume: find("amqp.consume"),
        }
    })
}

fn at(kw: &Arc<dyn Keyword>, args: Value, timeout: Duration, case_start_ms: i64) -> KeywordResult {
    call_at(kw.as_ref(), args, timeout, case_start_ms, Path::new("."))
}

fn publish(args: Value) -> Value {
    at(
        &amqp().publish,
        args.clone(),
        Duration::from_secs(10),
        now_ms(),
    )
    .unwrap_or_else(|e| panic!("publish {args}: {e}"))
}

fn consume(args: Value, case_start_ms: i64) -> KeywordResult {
    at(
        &amqp().consume,
        args,
        Duration::from_secs(10),
        case_start_ms,
    )
}

/// A queue of its own (deleted by the broker a minute after its last use).
fn queue(prefix: &str) -> String {
    let name = unique(prefix);
    declare(
        |ch, name| async move {
            let mut args = FieldTable::default();
            args.insert("x-expires".into(), AMQPValue::LongInt(60_000));
            ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), args)
                .await
                .map(|_| ())
        },
        &name,
    );
    name
}

/// An exchange of its own, of `kind`.
fn exchange(prefix: &str, kind: ExchangeKind) -> String {
    let name = unique(prefix);
    declare(
        |ch, name| async move {
            ch.exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions {
                    auto_delete: false,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
        },
        &name,
    );
    name
}

fn declare<F, Fut>(f: F, name: &str)
where
    F: FnOnce(lapin::Channel, String) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    runtime()
        .block_on(async {
            let conn = Connection::connect(URL, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            f(ch.clone(), name.to_string()).await?;
            ch.close(200, "OK".into()).await?;
            conn.close(200, "OK".into()).await
        })
        .unwrap_or_else(|e| panic!("cannot declare {name}: {e}"));
}

#[test]
fn a_message_keeps_its_body_headers_and_properties() {
    let q = queue("atf-q-props");
    let r = publish(json!({
        "routing_key": q, "json": {"orderId": "A-1", "qty": 2},
        "headers": {"trace": "abc", "n": 7, "flags": [true, null]},
        "properties": {"correlation_id": "c-9", "message_id": "m-1", "type": "order.created",
                       "reply_to": "replies", "expiration": 60000, "priority": 3, "timestamp": 1700000000},
        "persistent": true
    }));
    assert_eq!(r, json!({"exchange": "", "routing_key": q}));
    publish(json!({"routing_key": q, "body": "plain text"}));
    publish(json!({"routing_key": q, "body": [1, 2]}));
    let got = consume(json!({"queue": q, "count": 3}), now_ms()).unwrap();
    assert_eq!(got["count"], json!(3));
    let m = &got["messages"][0];
    assert_eq!(m["body"], json!({"orderId": "A-1", "qty": 2}));
    assert_eq!(m["exchange"], json!(""));
    assert_eq!(m["routing_key"], json!(q));
    assert_eq!(
        m["headers"],
        json!({"trace": "abc", "n": 7, "flags": [true, null]})
    );
    assert_eq!(
        m["properties"],
        json!({"content_type": "application/json", "correlation_id": "c-9", "reply_to": "replies",
               "expiration": "60000", "message_id": "m-1", "type": "order.created",
               "timestamp": 1700000000, "priority": 3, "delivery_mode": 2})
    );
    assert_eq!(m["redelivered"], json!(false));
    assert_eq!(got["messages"][1]["body"], json!("plain text"));
    assert_eq!(got["messages"][1]["headers"], json!({}));
    assert_eq!(got["messages"][2]["body"], json!([1, 2]));
}

#[test]
fn virtual_users_sharing_a_thread_each_get_their_confirm() {
    assert!(amqp().publish.cooperative() && amqp().consume.cooperative());
    let q = queue("atf-q-vus");
    let got = common::on_one_thread(4, |i| {
        let message = json!({"routing_key": q, "json": {"vu": i}});
        at(&amqp().publish, message, Duration::from_secs(10), now_ms()).map_err(|e| e.message)
    });
    assert_eq!(got, vec![Ok(json!({"exchange": "", "routing_key": q})); 4]);
    let all = consume(json!({"queue": q, "count": 4}), now_ms()).unwrap();
    let mut vus: Vec<Value> = (0..4)
        .map(|i| all["messages"][i]["body"]["vu"].clone())
        .collect();
    vus.sort_by_key(|v| v.as_i64());
    assert_eq!(vus, vec![json!(0), json!(1), json!(2), json!(3)]);
}

#[test]
fn a_virtual_user_waits_for_what_another_on_its_thread_publishes() {
    // VU 0 waits (on a queue, then on an exchange) for what VU 1 publishes
    // after a sleep: only a wait that suspends VU 0 lets VU 1 run.
    let q = queue("atf-q-wait");
    let x = exchange("atf-x-wait", ExchangeKind::Topic);
    let got = common::on_one_thread(2, |i| {
        let start = now_ms();
        if i == 0 {
            let from_queue = consume(json!({"queue": q, "timeout": "5s"}), start);
            let from_exchange = consume(
                json!({"exchange": x, "binding": "#", "timeout": "5s"}),
                start,
            );
            [from_queue, from_exchange]
                .map(|r| {
                    r.map(|o| o["messages"][0]["body"].clone())
                        .map_err(|e| e.message)
                })
                .to_vec()
        } else {
            atf_keywords::local::sleep(Duration::from_millis(200));
            publish(json!({"routing_key": q, "body": "to the queue"}));
            atf_keywords::local::sleep(Duration::from_millis(200));
            publish(json!({"exchange": x, "routing_key": "a.b", "body": "to the exchange"}));
            Vec::new()
        }
    });
    assert_eq!(
        got[0],
        vec![Ok(json!("to the queue")), Ok(json!("to the exchange"))]
    );
}

#[test]
fn taking_from_a_queue_leaves_what_does_not_match() {
    let q = queue("atf-q-match");
    for id in 1..=3 {
        publish(json!({"routing_key": q, "json": {"id": id}}));
    }
    let got = consume(json!({"queue": q, "match": {"$.body.id": 2}}), now_ms()).unwrap();
    assert_eq!(got["messages"][0]["body"], json!({"id": 2}));
    // 1 and 3 were given to that step, and went back to the queue.
    let rest = consume(json!({"queue": q, "count": 2}), now_ms()).unwrap();
    let ids: Vec<&Value> = rest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"]["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!(3)]);
    // `ack: false` leaves even the matching message in the queue.
    publish(json!({"routing_key": q, "json": {"id": 4}}));
    let peek = consume(json!({"queue": q, "ack": false}), now_ms()).unwrap();
    assert_eq!(peek["messages"][0]["body"], json!({"id": 4}));
    let again = consume(json!({"queue": q}), now_ms()).unwrap();
    assert_eq!(again["messages"][0]["body"], json!({"id": 4}));
    assert_eq!(again["messages"][0]["redelivered"], json!(true));
    // Now the queue is empty: the step fails saying what it saw.
    let e = at(
        &amqp().consume,
        json!({"queue": q, "timeout": "300ms"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("1 matching message(s) expected from queue")
            && e.message.contains("saw 0 message(s), 0 matched"),
        "{e}"
    );
}

#[test]
fn listening_on_an_exchange_sees_only_what_arrived_since_the_case_began() {
    let x = exchange("atf-x-iso", ExchangeKind::Topic);
    let case1 = now_ms();
    // Start listening (count 0 returns at once).
    let r = consume(
        json!({"exchange": x, "binding": "order.*", "count": 0}),
        case1,
    )
    .unwrap();
    assert_eq!(r["count"], json!(0));
    publish(json!({"exchange": x, "routing_key": "order.created", "json": {"n": "old"}}));
    let got = consume(json!({"exchange": x, "binding": "order.*"}), case1).unwrap();
    assert_eq!(got["messages"][0]["body"], json!({"n": "old"}));
    assert_eq!(got["messages"][0]["routing_key"], json!("order.created"));
    // Another case begins after "old" arrived.
    std::thread::sleep(Duration::from_millis(5));
    let case2 = now_ms();
    let none = consume(
        json!({"exchange": x, "binding": "order.*", "count": 0}),
        case2,
    )
    .unwrap();
    assert_eq!(none["count"], json!(0), "{none}");
    publish(json!({"exchange": x, "routing_key": "stock.changed", "json": {"n": "elsewhere"}}));
    publish(json!({"exchange": x, "routing_key": "order.paid", "json": {"n": "new"}}));
    let got = consume(json!({"exchange": x, "binding": "order.*"}), case2).unwrap();
    assert_eq!(got["messages"][0]["body"], json!({"n": "new"}));
    let e = consume(
        json!({"exchange": x, "binding": "order.*", "count": 2, "timeout": "300ms"}),
        case2,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("saw 1 message(s) since the case began, 1 matched"),
        "{e}"
    );
    // The first case still sees both of its messages: nothing was taken from it.
    let both = consume(
        json!({"exchange": x, "binding": "order.*", "count": 2}),
        case1,
    )
    .unwrap();
    assert_eq!(both["messages"][1]["body"], json!({"n": "new"}));
}

#[test]
fn parallel_cases_on_one_binding_each_find_their_own_message() {
    let x = exchange("atf-x-par", ExchangeKind::Fanout);
    consume(json!({"exchange": x, "count": 0}), now_ms()).unwrap();
    std::thread::scope(|s| {
        for i in 0..6 {
            let x = &x;
            s.spawn(move || {
                let start = now_ms();
                let id = format!("order-{i}");
                publish(json!({"exchange": x, "json": {"orderId": id}}));
                let got = consume(
                    json!({"exchange": x, "match": {"$.body.orderId": id}}),
                    start,
                )
                .unwrap();
                assert_eq!(got["messages"][0]["body"]["orderId"], json!(id));
            });
        }
    });
}

#[test]
fn a_headers_exchange_binds_by_header_arguments() {
    let x = exchange("atf-x-hdr", ExchangeKind::Headers);
    let start = now_ms();
    let binding = json!({"x-match": "all", "kind": "order"});
    consume(
        json!({"exchange": x, "binding": binding, "count": 0}),
        start,
    )
    .unwrap();
    publish(json!({"exchange": x, "body": "no", "headers": {"kind": "stock"}}));
    publish(json!({"exchange": x, "body": "yes", "headers": {"kind": "order"}}));
    let got = consume(json!({"exchange": x, "binding": binding}), start).unwrap();
    assert_eq!(got["messages"][0]["body"], json!("yes"));
    assert_eq!(got["messages"][0]["headers"], json!({"kind": "order"}));
}

#[test]
fn a_message_sent_before_the_first_listening_step_is_explained() {
    let x = exchange("atf-x-late", ExchangeKind::Fanout);
    let start = now_ms();
    publish(json!({"exchange": x, "body": "too early"}));
    let e = consume(json!({"exchange": x, "timeout": "300ms"}), start).unwrap_err();
    assert!(e.message.contains("saw 0 message(s)"), "{e}");
    assert!(e.message.contains("count: 0"), "{e}");
}

#[test]
fn broker_errors_fail_the_step_with_the_brokers_words() {
    let missing = unique("atf-no-such");
    let e = at(
        &amqp().publish,
        json!({"exchange": missing, "body": "x"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("NOT_FOUND - no exchange"), "{e}");
    assert!(e.message.contains(&missing), "{e}");
    // The resource goes on: a broken channel is not reused.
    let q = queue("atf-q-after");
    publish(json!({"routing_key": q, "body": "fine"}));
    assert_eq!(
        consume(json!({"queue": q}), now_ms()).unwrap()["messages"][0]["body"],
        json!("fine")
    );
    let e = at(
        &amqp().publish,
        json!({"routing_key": unique("atf-nobody"), "body": "x", "mandatory": true}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("NO_ROUTE"), "{e}");
    let e = consume(json!({"queue": missing}), now_ms()).unwrap_err();
    assert!(e.message.contains("NOT_FOUND - no queue"), "{e}");
    let e = consume(json!({"exchange": missing, "count": 0}), now_ms()).unwrap_err();
    assert!(
        e.message.contains("cannot bind a queue to exchange") && e.message.contains("NOT_FOUND"),
        "{e}"
    );
    let e = consume(json!({"queue": "a", "exchange": "b"}), now_ms()).unwrap_err();
    assert!(e.message.contains("not both"), "{e}");
    let e = consume(json!({"queue": "x".repeat(300)}), now_ms()).unwrap_err();
    assert!(e.message.contains("at most 255"), "{e}");
}

#[test]
fn connection_errors_name_the_resource_and_hide_the_password() {
    let e = at(
        &amqp().publish,
        json!({"routing_key": "x", "body": "x", "resource": "down"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(
        e.message
            .starts_with("cannot connect to amqp resource `down` (127.0.0.1:1//)"),
        "{e}"
    );
    let e = at(
        &amqp().consume,
        json!({"queue": "x", "resource": "badpw"}),
        Duration::from_secs(5),
        now_ms(),
    )
    .unwrap_err();
    assert!(e.message.contains("ACCESS_REFUSED"), "{e}");
    assert!(!e.message.contains("definitely-wrong"), "{e}");
}
