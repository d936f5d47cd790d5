//! `mqtt.publish`, `mqtt.subscribe` and `mqtt.consume` against the real
//! Mosquitto on 127.0.0.1:1883, with MQTT 3.1.1 and 5.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atf_sdk::{Keyword, json};
use common::{call, call_at, env, find, now_ms, require, unique};

const BROKER: &str = "127.0.0.1:1883";

fn keywords(resources: serde_json::Value) -> Vec<Arc<dyn Keyword>> {
    require("Mosquitto (MQTT)", BROKER);
    atf_keywords::mqtt::keywords(&env(resources)).0
}

fn v5() -> serde_json::Value {
    json!({"mqtt": {"default": {"url": "mqtt://127.0.0.1:1883", "version": "5"}}})
}

#[test]
fn a_published_json_message_is_consumed_with_match_and_parsed() {
    let kws = keywords(json!({}));
    let topic = unique("atf/orders");
    let start = now_ms();
    call(
        find(&kws, "mqtt.subscribe"),
        json!({"topic": format!("{topic}/#")}),
    )
    .unwrap();
    for id in ["A-1", "A-2"] {
        let out = call(
            find(&kws, "mqtt.publish"),
            json!({"topic": format!("{topic}/created"), "json": {"orderId": id}, "qos": 1}),
        )
        .unwrap();
        assert_eq!(out["qos"], json!(1));
    }
    let out = call_at(
        find(&kws, "mqtt.consume"),
        json!({"topic": format!("{topic}/#"), "match": {"$.payload.orderId": "A-2"}, "timeout": "5s"}),
        Duration::from_secs(20),
        start,
        Path::new("."),
    )
    .unwrap();
    assert_eq!(out["count"], json!(1));
    let m = &out["messages"][0];
    assert_eq!(m["topic"], json!(format!("{topic}/created")));
    assert_eq!(m["payload"], json!({"orderId": "A-2"}));
    assert_eq!(m["retain"], json!(false));
    assert!(m["timestamp"].as_i64().unwrap() >= start);
}

#[test]
fn virtual_users_sharing_a_thread_each_consume_what_they_published() {
    let kws = keywords(json!({}));
    assert!(kws.iter().all(|k| k.cooperative()));
    let topic = unique("atf/vus");
    // Each VU waits for the message of the VU before it, most often before
    // that one has published it: only a suspended wait lets it come.
    // Retained, so that a subscription made after the publish still gets it.
    let got = common::on_one_thread(4, |i| {
        let mine = format!("{topic}/{i}");
        let start = now_ms();
        call(find(&kws, "mqtt.subscribe"), json!({"topic": mine})).unwrap();
        let next = format!("{topic}/{}", (i + 1) % 4);
        let message = json!({"topic": next, "json": {"from": i}, "qos": 1, "retain": true});
        call(find(&kws, "mqtt.publish"), message).unwrap();
        let consume = json!({"topic": mine, "timeout": "5s"});
        call_at(
            find(&kws, "mqtt.consume"),
            consume,
            Duration::from_secs(20),
            start,
            Path::new("."),
        )
        .map(|o| o["messages"][0]["payload"].clone())
        .map_err(|e| e.message)
    });
    let want: Vec<Result<serde_json::Value, String>> =
        (0..4).map(|i| Ok(json!({"from": (i + 3) % 4}))).collect();
    assert_eq!(got, want);
}

#[test]
fn a_case_sees_only_messages_that_arrived_since_it_began() {
    let kws = keywords(json!({}));
    let topic = unique("atf/iso");
    let first_case = now_ms();
    call(find(&kws, "mqtt.subscribe"), json!({"topic": topic})).unwrap();
    call(
        find(&kws, "mqtt.publish"),
        json!({"topic": topic, "payload": "old", "qos": 1}),
    )
    .unwrap();
    // Let the old message arrive before the second case begins (read in
    // the first case: it may arrive before this call starts).
    call_at(
        find(&kws, "mqtt.consume"),
        json!({"topic": topic, "match": {"payload": "old"}}),
        Duration::from_secs(20),
        first_case,
        Path::new("."),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let second_case = now_ms();
    call(
        find(&kws, "mqtt.publish"),
        json!({"topic": topic, "payload": "new", "qos": 1}),
    )
    .unwrap();

    let consume = |start: i64, count: u64| {
        call_at(
            find(&kws, "mqtt.consume"),
            json!({"topic": topic, "count": count, "timeout": "1s"}),
            Duration::from_secs(20),
            start,
            Path::new("."),
        )
    };
    let out = consume(second_case, 1).unwrap();
    assert_eq!(out["messages"][0]["payload"], json!("new"));
    let err = consume(second_case, 2).unwrap_err();
    assert!(
        err.message.contains("2 matching message(s) expected")
            && err
                .message
                .contains("saw 1 message(s) since the case began, 1 matched"),
        "{err}"
    );
    // The first case, still running, sees both, and reading does not take them away.
    let out = consume(first_case, 2).unwrap();
    let payloads: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!("old"), json!("new")]);
}

#[test]
fn wildcard_filters_pick_their_topics() {
    let kws = keywords(json!({}));
    let base = unique("atf/wild");
    let start = now_ms();
    let filter = format!("{base}/+/state");
    call(
        find(&kws, "mqtt.subscribe"),
        json!({"topic": [filter.clone()]}),
    )
    .unwrap();
    for t in ["a/state", "a/other", "b/state"] {
        call(
            find(&kws, "mqtt.publish"),
            json!({"topic": format!("{base}/{t}"), "payload": t, "qos": 1}),
        )
        .unwrap();
    }
    let out = call_at(
        find(&kws, "mqtt.consume"),
        json!({"topic": filter, "count": 2, "timeout": "5s"}),
        Duration::from_secs(20),
        start,
        Path::new("."),
    )
    .unwrap();
    let payloads: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!("a/state"), json!("b/state")]);
}

#[test]
fn mqtt5_properties_and_overlapping_filters_deliver_one_copy_each() {
    let kws = keywords(v5());
    let base = unique("atf/v5");
    let start = now_ms();
    // Mosquitto sends one copy per matching subscription on MQTT 5: each
    // filter must still see the message exactly once.
    call(
        find(&kws, "mqtt.subscribe"),
        json!({"topic": [format!("{base}/#"), format!("{base}/+")]}),
    )
    .unwrap();
    let out = call(
        find(&kws, "mqtt.publish"),
        json!({
            "topic": format!("{base}/x"),
            "json": {"n": 1},
            "qos": 2,
            "properties": {"user_properties": {"trace": "t-1"}, "content_type": "application/json"}
        }),
    )
    .unwrap();
    assert_eq!(out["qos"], json!(2));
    assert!(out["reason"].is_string(), "{out}");
    for filter in [format!("{base}/#"), format!("{base}/+")] {
        let err = call_at(
            find(&kws, "mqtt.consume"),
            json!({"topic": filter, "count": 2, "timeout": "700ms"}),
            Duration::from_secs(20),
            start,
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.message.contains("saw 1 message(s)"), "{filter}: {err}");
        let out = call_at(
            find(&kws, "mqtt.consume"),
            json!({"topic": filter, "match": {"$.properties.user_properties.trace": "t-1"}}),
            Duration::from_secs(20),
            start,
            Path::new("."),
        )
        .unwrap();
        let m = &out["messages"][0];
        assert_eq!(m["payload"], json!({"n": 1}));
        assert_eq!(
            m["qos"],
            json!(1),
            "delivered at the subscription's QoS (1, the default)"
        );
        assert_eq!(m["properties"]["content_type"], json!("application/json"));
    }
}

#[test]
fn a_retained_message_reaches_a_later_subscription() {
    let kws = keywords(json!({}));
    let topic = unique("atf/retained");
    call(
        find(&kws, "mqtt.publish"),
        json!({"topic": topic, "payload": "kept", "retain": true, "qos": 1}),
    )
    .unwrap();
    let start = now_ms();
    let out = call_at(
        find(&kws, "mqtt.consume"),
        json!({"topic": topic, "timeout": "5s"}),
        Duration::from_secs(20),
        start,
        Path::new("."),
    )
    .unwrap();
    assert_eq!(out["messages"][0]["payload"], json!("kept"));
    assert_eq!(out["messages"][0]["retain"], json!(true));
    // Clear the retained message: an empty retained payload.
    call(
        find(&kws, "mqtt.publish"),
        json!({"topic": topic, "retain": true, "qos": 1}),
    )
    .unwrap();
}

#[test]
fn a_late_subscription_is_explained_when_nothing_comes() {
    let kws = keywords(json!({}));
    let topic = unique("atf/late");
    let case_start = now_ms() - 2_000;
    let err = call_at(
        find(&kws, "mqtt.consume"),
        json!({"topic": topic, "timeout": "300ms"}),
        Duration::from_secs(20),
        case_start,
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        err.message.contains("1 matching message(s) expected")
            && err.message.contains("was first subscribed")
            && err.message.contains("mqtt.subscribe"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_errors_that_say_why() {
    let kws = keywords(json!({}));
    let err = call(
        find(&kws, "mqtt.publish"),
        json!({"topic": "a/#", "payload": "x"}),
    )
    .unwrap_err();
    assert!(
        err.message.contains("not a topic one can publish to"),
        "{err}"
    );
    let err = call(find(&kws, "mqtt.consume"), json!({"topic": "a/#/b"})).unwrap_err();
    assert!(err.message.contains("not a valid topic filter"), "{err}");
    let err = call(find(&kws, "mqtt.publish"), json!({"topic": "a", "qos": 3})).unwrap_err();
    assert!(err.message.contains("0, 1 or 2"), "{err}");
    let err = call(
        find(&kws, "mqtt.publish"),
        json!({"topic": "a", "properties": {"content_type": "x"}}),
    )
    .unwrap_err();
    assert!(err.message.contains("need MQTT 5"), "{err}");
    let err = call(
        find(&kws, "mqtt.publish"),
        json!({"topic": "a", "resource": "nope"}),
    )
    .unwrap_err();
    assert!(err.message.contains("no mqtt resource `nope`"), "{err}");
}

#[test]
fn a_broker_that_cannot_be_reached_fails_the_step_with_the_reason_and_no_password() {
    // Nothing listens on port 9 of the loopback address.
    let kws = keywords(json!({"mqtt": {"down": "mqtt://bob:s3cret@127.0.0.1:9"}}));
    let err = call_at(
        find(&kws, "mqtt.publish"),
        json!({"topic": "a", "payload": "x", "qos": 1, "resource": "down"}),
        Duration::from_secs(10),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        err.message.contains("mqtt resource `down` (127.0.0.1:9)"),
        "{err}"
    );
    assert!(err.message.to_lowercase().contains("refused"), "{err}");
    assert!(!err.message.contains("s3cret"), "{err}");
}

/// A Mosquitto of this test's own on a free port, with TLS by a certificate
/// of the test CA; killed when dropped.
struct TlsBroker {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsBroker {
    fn start() -> TlsBroker {
        let pki = common::pki();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(unique("atf-mqtt-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("mosquitto.conf");
        // As root, Mosquitto would switch to the `mosquitto` user: stay root,
        // so that it can read the test's key file.
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 certfile {}\nkeyfile {}\n",
                pki.cert.display(),
                pki.key.display()
            ),
        )
        .unwrap();
        let child = common::spawn_listening(
            &["/usr/sbin/mosquitto", "mosquitto"],
            "mosquitto",
            &["-c".as_ref(), conf.as_os_str()],
            port,
        );
        TlsBroker { child, port, dir }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn mqtts_with_the_resource_ca_and_an_unknown_issuer_refused() {
    let broker = TlsBroker::start();
    let port = broker.port;
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let kws = atf_keywords::mqtt::keywords(&env(json!({"mqtt": {
        "default": {"url": format!("mqtts://localhost:{port}"), "ca": ca},
        "v5": {"url": format!("mqtts://127.0.0.1:{port}"), "ca": ca, "version": "5"},
        "system": format!("mqtts://localhost:{port}")
    }})))
    .0;
    for resource in ["default", "v5"] {
        let topic = unique("atf/tls");
        // One case: the message may arrive before the consume call starts.
        let case_start = now_ms();
        call(
            find(&kws, "mqtt.subscribe"),
            json!({"topic": topic, "resource": resource}),
        )
        .unwrap_or_else(|e| panic!("mqtts through resource {resource}: {e}"));
        call(
            find(&kws, "mqtt.publish"),
            json!({"topic": topic, "json": {"over": "tls"}, "qos": 1, "resource": resource}),
        )
        .unwrap();
        let out = call_at(
            find(&kws, "mqtt.consume"),
            json!({"topic": topic, "match": {"$.payload.over": "tls"}, "timeout": "5s", "resource": resource}),
            Duration::from_secs(20),
            case_start,
            Path::new("."),
        )
        .unwrap();
        assert_eq!(out["count"], json!(1), "{out}");
    }
    // Without `ca` only the system's roots count: the test CA is not one of them.
    let err = call_at(
        find(&kws, "mqtt.publish"),
        json!({"topic": "a", "payload": "x", "qos": 1, "resource": "system"}),
        Duration::from_secs(5),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(err.message.to_lowercase().contains("certificate"), "{err}");
    drop(broker);
}
