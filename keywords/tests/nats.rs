//! `nats.publish`, `nats.request`, `nats.subscribe` and `nats.consume`
//! against the real NATS server (with JetStream) on 127.0.0.1:4222.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atf_sdk::{Keyword, json};
use common::{call, call_at, env, find, now_ms, require, runtime, unique};
use futures_util::StreamExt;

const SERVER: &str = "127.0.0.1:4222";

fn keywords(resources: serde_json::Value) -> Vec<Arc<dyn Keyword>> {
    require("NATS", SERVER);
    atf_keywords::nats::keywords(&env(resources)).0
}

/// A plain client of the test's own, for the service side of a test.
fn client() -> async_nats::Client {
    require("NATS", SERVER);
    runtime()
        .block_on(async_nats::connect(SERVER))
        .expect("connect to NATS")
}

fn consume_at(
    kws: &[Arc<dyn Keyword>],
    start: i64,
    args: serde_json::Value,
) -> atf_sdk::KeywordResult {
    call_at(
        find(kws, "nats.consume"),
        args,
        Duration::from_secs(20),
        start,
        Path::new("."),
    )
}

#[test]
fn published_messages_with_headers_are_consumed_by_content_since_the_case_began() {
    let kws = keywords(json!({}));
    let subject = unique("atf.orders").replace('_', ".");
    let early = now_ms();
    call(
        find(&kws, "nats.subscribe"),
        json!({"subject": format!("{subject}.*")}),
    )
    .unwrap();
    call(
        find(&kws, "nats.publish"),
        json!({"subject": format!("{subject}.created"), "json": {"id": 1}}),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let later = now_ms();
    let out = call(
        find(&kws, "nats.publish"),
        json!({
            "subject": format!("{subject}.created"),
            "json": {"id": 2},
            "headers": {"X-Trace": "t-2", "X-Many": ["a", "b"]}
        }),
    )
    .unwrap();
    assert_eq!(out["subject"], json!(format!("{subject}.created")));

    let out = consume_at(
        &kws,
        later,
        json!({"subject": format!("{subject}.*"), "match": {"$.payload.id": 2}, "timeout": "5s"}),
    )
    .unwrap();
    let m = &out["messages"][0];
    assert_eq!(m["payload"], json!({"id": 2}));
    assert_eq!(m["headers"]["X-Trace"], json!("t-2"));
    assert_eq!(m["headers"]["X-Many"], json!(["a", "b"]));
    let err = consume_at(
        &kws,
        later,
        json!({"subject": format!("{subject}.*"), "count": 2, "timeout": "300ms"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("saw 1 message(s) since the case began"),
        "{err}"
    );
    let out = consume_at(
        &kws,
        early,
        json!({"subject": format!("{subject}.*"), "count": 2}),
    )
    .unwrap();
    assert_eq!(out["count"], json!(2));
}

#[test]
fn virtual_users_sharing_a_thread_each_consume_what_they_published() {
    let kws = keywords(json!({}));
    assert!(kws.iter().all(|k| k.cooperative()));
    let subject = unique("atf.vus");
    let got = common::on_one_thread(4, |i| {
        let mine = format!("{subject}.{i}");
        let start = now_ms();
        call(find(&kws, "nats.subscribe"), json!({"subject": mine})).unwrap();
        call(
            find(&kws, "nats.publish"),
            json!({"subject": mine, "json": {"vu": i}}),
        )
        .unwrap();
        consume_at(&kws, start, json!({"subject": mine, "timeout": "5s"}))
            .map(|o| o["messages"][0]["payload"].clone())
            .map_err(|e| e.message)
    });
    let want: Vec<Result<serde_json::Value, String>> =
        (0..4).map(|i| Ok(json!({"vu": i}))).collect();
    assert_eq!(got, want);
}

#[test]
fn a_request_gets_the_reply_of_a_service() {
    let kws = keywords(json!({}));
    let subject = unique("atf.svc").replace('_', ".");
    let service = client();
    let mut sub = runtime()
        .block_on(service.subscribe(subject.clone()))
        .unwrap();
    runtime().block_on(service.flush()).unwrap();
    let responder = service.clone();
    runtime().spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                let body = format!("{{\"echo\": {}}}", String::from_utf8_lossy(&m.payload));
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("X-Served-By", "test");
                let _ = responder
                    .publish_with_headers(reply, headers, body.into())
                    .await;
            }
        }
    });
    let out = call(
        find(&kws, "nats.request"),
        json!({"subject": subject, "json": {"q": 1}, "timeout": "5s"}),
    )
    .unwrap();
    assert_eq!(out["payload"], json!({"echo": {"q": 1}}));
    assert_eq!(out["headers"]["X-Served-By"], json!("test"));

    let nobody = unique("atf.nobody").replace('_', ".");
    let err = call(
        find(&kws, "nats.request"),
        json!({"subject": nobody, "timeout": "2s"}),
    )
    .unwrap_err();
    assert!(err.message.contains("no responders"), "{err}");
}

#[test]
fn a_stream_is_read_from_the_case_start_or_from_its_beginning() {
    let kws = keywords(json!({}));
    let name = unique("ATF").to_uppercase();
    let subject = format!("atf.js.{}", name.to_lowercase());
    let client = client();
    let js = {
        let _in_runtime = runtime().enter();
        async_nats::jetstream::new(client)
    };
    runtime()
        .block_on(js.create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("{subject}.>")],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        }))
        .expect("create a stream");

    let out = call(
        find(&kws, "nats.publish"),
        json!({"subject": format!("{subject}.a"), "payload": "before", "jetstream": true}),
    )
    .unwrap();
    assert_eq!(out["stream"], json!(name));
    assert_eq!(out["seq"], json!(1));
    std::thread::sleep(Duration::from_millis(20));
    let start = now_ms();
    for (s, p) in [("a", "after-a"), ("b", "after-b")] {
        call(
            find(&kws, "nats.publish"),
            json!({"subject": format!("{subject}.{s}"), "payload": p, "jetstream": true}),
        )
        .unwrap();
    }
    let out = consume_at(
        &kws,
        start,
        json!({"stream": name, "count": 2, "timeout": "5s"}),
    )
    .unwrap();
    let payloads: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!("after-a"), json!("after-b")]);
    assert_eq!(out["messages"][0]["stream"], json!(name));
    assert_eq!(out["messages"][0]["seq"], json!(2));

    let out = consume_at(
        &kws,
        start,
        json!({"stream": name, "subject": format!("{subject}.a"), "from": "beginning", "count": 2}),
    )
    .unwrap();
    let payloads: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].clone())
        .collect();
    assert_eq!(payloads, vec![json!("before"), json!("after-a")]);

    let err = consume_at(
        &kws,
        start,
        json!({"stream": name, "count": 3, "timeout": "500ms"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("saw 2 message(s) stored since the case began"),
        "{err}"
    );
    let err = consume_at(
        &kws,
        start,
        json!({"stream": "NO_SUCH_STREAM_ATF", "timeout": "2s"}),
    )
    .unwrap_err();
    assert!(err.message.contains("NO_SUCH_STREAM_ATF"), "{err}");

    runtime()
        .block_on(js.delete_stream(&name))
        .expect("delete the stream");
}

#[test]
fn bad_arguments_and_an_unreachable_server_fail_the_step_and_say_why() {
    let kws = keywords(json!({"nats": {"down": "nats://bob:s3cret@127.0.0.1:9"}}));
    let err = call(find(&kws, "nats.publish"), json!({"subject": "a.*"})).unwrap_err();
    assert!(err.message.contains("not a valid subject"), "{err}");
    let err = call(find(&kws, "nats.consume"), json!({"count": 1})).unwrap_err();
    assert!(
        err.message.contains("`subject`") && err.message.contains("`stream`"),
        "{err}"
    );
    let err = call(
        find(&kws, "nats.consume"),
        json!({"subject": "a", "from": "beginning"}),
    )
    .unwrap_err();
    assert!(
        err.message.contains("`from` applies to `stream` only"),
        "{err}"
    );
    let err = call_at(
        find(&kws, "nats.publish"),
        json!({"subject": "a", "payload": "x", "resource": "down"}),
        Duration::from_secs(5),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        err.message.contains("nats resource `down` (127.0.0.1:9)"),
        "{err}"
    );
    assert!(!err.message.contains("s3cret"), "{err}");
}

/// A nats-server of this test's own on a free port, with TLS by a
/// certificate of the test CA; killed when dropped.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl TlsServer {
    fn start() -> TlsServer {
        let pki = common::pki();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let port_text = port.to_string();
        let child = common::spawn_listening(
            &["/usr/sbin/nats-server", "nats-server"],
            "nats-server",
            &[
                "-a".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port_text.as_ref(),
                "--tls".as_ref(),
                "--tlscert".as_ref(),
                pki.cert.as_os_str(),
                "--tlskey".as_ref(),
                pki.key.as_os_str(),
            ],
            port,
        );
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tls_with_the_resource_ca_and_an_unknown_issuer_refused() {
    let server = TlsServer::start();
    let port = server.port;
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let kws = atf_keywords::nats::keywords(&env(json!({"nats": {
        "default": {"url": format!("tls://localhost:{port}"), "ca": ca},
        "system": format!("tls://localhost:{port}")
    }})))
    .0;
    let subject = unique("atf.tls").replace('_', ".");
    // One case: the message may arrive before the consume call starts.
    let case_start = now_ms();
    call(find(&kws, "nats.subscribe"), json!({"subject": subject})).unwrap();
    call(
        find(&kws, "nats.publish"),
        json!({"subject": subject, "json": {"over": "tls"}}),
    )
    .unwrap();
    let out = call_at(
        find(&kws, "nats.consume"),
        json!({"subject": subject, "match": {"$.payload.over": "tls"}, "timeout": "5s"}),
        Duration::from_secs(20),
        case_start,
        Path::new("."),
    )
    .unwrap();
    assert_eq!(out["count"], json!(1), "{out}");
    // Without `ca` only the system's roots count: the test CA is not one of them.
    let err = call(
        find(&kws, "nats.publish"),
        json!({"subject": subject, "text": "x", "resource": "system"}),
    )
    .unwrap_err();
    assert!(err.message.contains("cannot connect"), "{err}");
    drop(server);
}
