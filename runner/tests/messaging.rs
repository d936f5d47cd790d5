//! The `atf` binary with the MQTT, NATS and WebSocket keywords (#15): many
//! cases at once read their own messages from shared subscriptions, a
//! WebSocket left open is closed when its case ends, and a broker that
//! cannot be reached fails its step with the reason and no password.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use serde_json::{Value, json};

fn require(service: &str, addr: &str) {
    let ok = addr
        .parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        ok,
        "{service} does not answer on {addr}: start the test services with `scripts/services.sh`"
    );
}

fn write(dir: &std::path::Path, rel: &str, v: &Value) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn atf(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ATF_PLUGIN_PATH")
        .output()
        .expect("run atf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn report(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("atf-report/report.json")).unwrap())
        .unwrap()
}

fn tag() -> String {
    format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    )
}

#[test]
fn parallel_cases_each_consume_their_own_mqtt_and_nats_messages() {
    require("Mosquitto (MQTT)", "127.0.0.1:1883");
    require("NATS", "127.0.0.1:4222");
    let dir = tempfile::tempdir().unwrap();
    let run = tag();
    write(
        dir.path(),
        "cases/suite.json",
        &json!({"prepare": [
            {"keyword": "mqtt.subscribe", "args": {"topic": format!("atf/bin/{run}/#")}},
            {"keyword": "nats.subscribe", "args": {"subject": format!("atf.bin.{run}.>")}}
        ]}),
    );
    write(
        dir.path(),
        "cases/orders.case.json",
        &json!({
            "data": (0..12).map(|i| json!({"id": format!("o-{i}")})).collect::<Vec<_>>(),
            "steps": [
                {"keyword": "mqtt.publish", "args": {"topic": format!("atf/bin/{run}/created"), "json": {"id": "${id}"}, "qos": 1}},
                {"keyword": "nats.publish", "args": {"subject": format!("atf.bin.{run}.created"), "json": {"id": "${id}"}}},
                {"keyword": "mqtt.consume", "args": {"topic": format!("atf/bin/{run}/#"), "match": {"$.payload.id": "${id}"}, "timeout": "5s"},
                 "expect": {"count": 1, "$.messages[0].payload.id": "${id}"}},
                {"keyword": "nats.consume", "args": {"subject": format!("atf.bin.{run}.>"), "match": {"$.payload.id": "${id}"}, "timeout": "5s"},
                 "expect": {"count": 1, "$.messages[0].payload.id": "${id}"}}
            ]
        }),
    );
    let (code, out) = atf(dir.path(), &["run", "cases", "--jobs", "6"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(report(dir.path())["summary"]["passed"], json!(12), "{out}");
}

/// A WebSocket server that counts the connections it holds.
fn ws_server(open: Arc<AtomicUsize>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let counter = open.clone();
            let app = Router::new()
                .route(
                    "/echo",
                    get(move |ws: WebSocketUpgrade| {
                        let open = counter.clone();
                        async move {
                            ws.on_upgrade(move |mut socket| async move {
                                open.fetch_add(1, Ordering::SeqCst);
                                while let Some(Ok(m)) = socket.recv().await {
                                    if let Message::Text(t) = m {
                                        let _ = socket.send(Message::Text(t)).await;
                                    }
                                }
                                open.fetch_sub(1, Ordering::SeqCst);
                            })
                        }
                    }),
                )
                .route(
                    "/open",
                    get(move || {
                        let open = open.clone();
                        async move { axum::Json(json!({"open": open.load(Ordering::SeqCst)})) }
                    }),
                );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn a_websocket_left_open_is_closed_when_its_case_ends() {
    let open = Arc::new(AtomicUsize::new(0));
    let addr = ws_server(open.clone());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "atf.json",
        &json!({"envs": {"local": {"resources": {
            "ws": {"default": format!("ws://{addr}")},
            "http": {"default": format!("http://{addr}")}
        }}}, "default_env": "local"}),
    );
    write(
        dir.path(),
        "cases/a_opens.case.json",
        &json!({"steps": [
            {"keyword": "ws.connect", "args": {"url": "/echo"}},
            {"keyword": "ws.send", "args": {"json": {"hi": 1}}},
            {"keyword": "ws.receive", "args": {"match": {"$.data.hi": 1}}, "expect": {"count": 1}},
            {"keyword": "http.request", "args": {"url": "/open"}, "expect": {"$.body.open": 1}}
        ]}),
    );
    // Runs after the first (one job, files in name order): the server must
    // have seen the first case's connection close without a ws.close.
    write(
        dir.path(),
        "cases/b_checks.case.json",
        &json!({"steps": [
            {"keyword": "http.request", "args": {"url": "/open"}, "expect": {"$.body.open": 0},
             "retry": {"times": 50, "interval": "100ms"}},
            {"keyword": "ws.send", "args": {"text": "x"}}
        ]}),
    );
    let (code, out) = atf(dir.path(), &["run", "cases", "--jobs", "1"]);
    let r = report(dir.path());
    let b = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "b_checks")
        .cloned()
        .unwrap();
    assert_eq!(b["steps"][0]["status"], json!("passed"), "{out}");
    // The second case cannot use the first case's connection.
    assert_eq!(b["steps"][1]["status"], json!("error"), "{out}");
    assert!(
        b["steps"][1]["error"]
            .as_str()
            .unwrap()
            .contains("no WebSocket connection `default` is open in this case"),
        "{b}"
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(r["summary"]["passed"], json!(1), "{out}");
}

#[test]
fn an_unreachable_broker_fails_its_step_with_the_reason_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "atf.json",
        &json!({"envs": {"local": {"resources": {
            "mqtt": {"default": "mqtt://bob:mq-s3cret@127.0.0.1:9"},
            "nats": {"default": "nats://bob:na-s3cret@127.0.0.1:9"}
        }}}, "default_env": "local"}),
    );
    write(
        dir.path(),
        "cases/down.case.json",
        &json!({"steps": [[
            {"keyword": "mqtt.publish", "args": {"topic": "a", "payload": "x", "qos": 1}, "timeout": "10s"}
        ], [
            {"keyword": "nats.publish", "args": {"subject": "a", "payload": "x"}, "timeout": "3s"}
        ]]}),
    );
    let (code, out) = atf(dir.path(), &["run", "cases"]);
    assert_eq!(code, 1, "{out}");
    let text = std::fs::read_to_string(dir.path().join("atf-report/report.json")).unwrap();
    assert!(
        !text.contains("s3cret") && !out.contains("s3cret"),
        "{text}"
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = r["cases"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["error"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("mqtt resource `default` (127.0.0.1:9)")
                && e.to_lowercase().contains("refused")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("nats resource `default` (127.0.0.1:9)")),
        "{errors:?}"
    );
}

#[test]
fn the_new_keywords_are_listed_with_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = atf(dir.path(), &["keywords"]);
    assert_eq!(code, 0, "{out}");
    for kw in [
        "mqtt.publish",
        "mqtt.subscribe",
        "mqtt.consume",
        "nats.publish",
        "nats.request",
        "nats.subscribe",
        "nats.consume",
        "ws.connect",
        "ws.send",
        "ws.receive",
        "ws.close",
        "grpc.call",
    ] {
        assert!(out.lines().any(|l| l.trim() == kw), "{kw} missing:\n{out}");
    }
    let (code, schema) = atf(dir.path(), &["schema"]);
    assert_eq!(code, 0, "{schema}");
    assert!(
        schema.contains("subprotocols") && schema.contains("jetstream"),
        "{schema}"
    );
}
