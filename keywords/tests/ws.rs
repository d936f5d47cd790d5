//! `ws.connect`, `ws.send`, `ws.receive` and `ws.close` against an axum
//! WebSocket server started by this test binary (echo, greeting, auth,
//! server-side close), with per-case connections closed at case end.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Host, Keyword, KeywordResult, Value, json};
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{TestHost, env, find, now_ms, runtime};

/// Connections the server holds open right now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

async fn serve(mut socket: WebSocket, greet: bool) {
    OPEN.fetch_add(1, Ordering::SeqCst);
    if greet {
        let _ = socket
            .send(Message::Text(r#"{"hello": true}"#.into()))
            .await;
    }
    while let Some(Ok(msg)) = socket.recv().await {
        match msg {
            Message::Text(t) if t.as_str() == "close-me" => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 4001,
                        reason: "asked".into(),
                    })))
                    .await;
                break;
            }
            Message::Text(t) => {
                let _ = socket.send(Message::Text(t)).await;
            }
            Message::Binary(b) => {
                let _ = socket.send(Message::Binary(b)).await;
            }
            // Reading on after a close lets the server send its close reply.
            _ => {}
        }
    }
    OPEN.fetch_sub(1, Ordering::SeqCst);
}

/// The server's address, started once per test binary.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let app = Router::new()
            .route(
                "/echo",
                get(|ws: WebSocketUpgrade| async move {
                    ws.protocols(["chat.v2"]).on_upgrade(|s| serve(s, false))
                }),
            )
            .route(
                "/greet",
                get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(|s| serve(s, true)) }),
            )
            .route(
                "/private",
                get(|headers: HeaderMap, ws: WebSocketUpgrade| async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Bearer t0k")
                    {
                        return (StatusCode::UNAUTHORIZED, "no token").into_response();
                    }
                    let r: Response = ws.on_upgrade(|s| serve(s, false));
                    r
                }),
            );
        runtime().spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    })
}

/// A host that tells keywords which case they run in.
struct CaseHost(u64);

impl Host for CaseHost {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        TestHost.check(actual, expect)
    }
    fn cancelled(&self) -> bool {
        false
    }
    fn case_id(&self) -> u64 {
        self.0
    }
}

fn in_case(kw: &dyn Keyword, case: u64, args: Value) -> KeywordResult {
    let host = CaseHost(case);
    let call = Call {
        args: &args,
        deadline: Instant::now() + Duration::from_secs(20),
        case_start_ms: now_ms(),
        base_dir: Path::new("."),
        host: &host,
    };
    kw.call(&call)
}

/// A case id no other test uses.
fn new_case() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(1000);
    NEXT.fetch_add(1, Ordering::SeqCst) as u64
}

fn keywords() -> Vec<Arc<dyn Keyword>> {
    let addr = server();
    atf_keywords::ws::keywords(&env(json!({
        "ws": {"default": {"base_url": format!("ws://{addr}"), "headers": {"X-From": "atf"}}}
    })))
    .0
}

#[test]
fn text_json_and_binary_messages_go_both_ways() {
    let kws = keywords();
    let case = new_case();
    let out = in_case(
        find(&kws, "ws.connect"),
        case,
        json!({"url": "/echo", "subprotocols": ["chat.v1", "chat.v2"]}),
    )
    .unwrap();
    assert_eq!(out["status"], json!(101));
    assert_eq!(out["protocol"], json!("chat.v2"));
    assert_eq!(out["headers"]["upgrade"], json!("websocket"));

    let sent = in_case(
        find(&kws, "ws.send"),
        case,
        json!({"json": {"type": "ping", "n": 1}}),
    )
    .unwrap();
    assert_eq!(sent["type"], json!("text"));
    in_case(find(&kws, "ws.send"), case, json!({"text": "plain"})).unwrap();
    in_case(find(&kws, "ws.send"), case, json!({"binary": "AAEC"})).unwrap();
    let out = in_case(
        find(&kws, "ws.receive"),
        case,
        json!({"count": 3, "timeout": "5s"}),
    )
    .unwrap();
    assert_eq!(out["messages"][0]["data"], json!({"type": "ping", "n": 1}));
    assert_eq!(out["messages"][1]["data"], json!("plain"));
    assert_eq!(out["messages"][2]["type"], json!("binary"));
    assert_eq!(out["messages"][2]["data"], json!("AAEC"));
    let out = in_case(find(&kws, "ws.close"), case, json!({})).unwrap();
    assert_eq!(out["code"], json!(1000));
}

#[test]
fn virtual_users_sharing_a_thread_each_talk_on_their_own_connection() {
    let kws = keywords();
    assert!(kws.iter().all(|k| k.cooperative()));
    let got = common::on_one_thread(6, |i| {
        let case = new_case();
        let step = |name: &str, args: Value| in_case(find(&kws, name), case, args);
        let echoed = step("ws.connect", json!({"url": "/echo"}))
            .and_then(|_| step("ws.send", json!({"json": {"vu": i}})))
            .and_then(|_| step("ws.receive", json!({"count": 1, "timeout": "5s"})))
            .map(|out| out["messages"][0]["data"].clone());
        let _ = step("ws.close", json!({}));
        echoed.map_err(|e| e.message)
    });
    let want: Vec<Result<Value, String>> = (0..6).map(|i| Ok(json!({"vu": i}))).collect();
    assert_eq!(got, want);
}

#[test]
fn receive_takes_the_matching_messages_and_leaves_the_others() {
    let kws = keywords();
    let case = new_case();
    in_case(
        find(&kws, "ws.connect"),
        case,
        json!({"url": "/greet", "name": "g"}),
    )
    .unwrap();
    for n in [1, 2] {
        in_case(
            find(&kws, "ws.send"),
            case,
            json!({"name": "g", "json": {"n": n}}),
        )
        .unwrap();
    }
    let out = in_case(
        find(&kws, "ws.receive"),
        case,
        json!({"name": "g", "match": {"$.data.n": 2}, "timeout": "5s"}),
    )
    .unwrap();
    assert_eq!(out["messages"][0]["data"], json!({"n": 2}));
    let out = in_case(
        find(&kws, "ws.receive"),
        case,
        json!({"name": "g", "count": 2}),
    )
    .unwrap();
    let data: Vec<_> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(data, vec![json!({"hello": true}), json!({"n": 1})]);
    let err = in_case(
        find(&kws, "ws.receive"),
        case,
        json!({"name": "g", "timeout": "200ms"}),
    )
    .unwrap_err();
    assert!(err.message.contains("saw 0 message(s), 0 matched"), "{err}");
    find(&kws, "ws.connect").case_finished(case);
}

#[test]
fn connections_belong_to_their_case_and_close_when_it_ends() {
    let kws = keywords();
    let (a, b) = (new_case(), new_case());
    let before = OPEN.load(Ordering::SeqCst);
    in_case(find(&kws, "ws.connect"), a, json!({"url": "/echo"})).unwrap();
    in_case(find(&kws, "ws.connect"), b, json!({"url": "/echo"})).unwrap();
    in_case(find(&kws, "ws.send"), a, json!({"text": "for a"})).unwrap();
    let err = in_case(find(&kws, "ws.receive"), b, json!({"timeout": "300ms"})).unwrap_err();
    assert!(err.message.contains("saw 0 message(s)"), "{err}");
    let err = in_case(find(&kws, "ws.connect"), a, json!({"url": "/echo"})).unwrap_err();
    assert!(err.message.contains("already open in this case"), "{err}");

    // The runner tells every keyword when a case ends.
    for kw in &kws {
        kw.case_finished(a);
        kw.case_finished(b);
    }
    let err = in_case(find(&kws, "ws.send"), a, json!({"text": "x"})).unwrap_err();
    assert!(
        err.message
            .contains("no WebSocket connection `default` is open"),
        "{err}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while OPEN.load(Ordering::SeqCst) > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        OPEN.load(Ordering::SeqCst) <= before,
        "the server still holds the connections of ended cases"
    );
}

#[test]
fn a_close_by_the_server_ends_a_waiting_receive_with_its_code() {
    let kws = keywords();
    let case = new_case();
    in_case(find(&kws, "ws.connect"), case, json!({"url": "/echo"})).unwrap();
    in_case(find(&kws, "ws.send"), case, json!({"text": "close-me"})).unwrap();
    let err = in_case(find(&kws, "ws.receive"), case, json!({"timeout": "10s"})).unwrap_err();
    assert!(
        err.message
            .contains("the server closed the connection (code 4001: asked)"),
        "{err}"
    );
    let out = in_case(find(&kws, "ws.close"), case, json!({})).unwrap();
    assert_eq!(out["code"], json!(4001));
    assert_eq!(out["reason"], json!("asked"));
}

#[test]
fn a_refused_handshake_and_bad_arguments_fail_with_the_reason() {
    let kws = keywords();
    let case = new_case();
    let err = in_case(find(&kws, "ws.connect"), case, json!({"url": "/private"})).unwrap_err();
    assert!(
        err.message.contains("HTTP 401 Unauthorized: no token"),
        "{err}"
    );
    in_case(
        find(&kws, "ws.connect"),
        case,
        json!({"url": "/private", "headers": {"Authorization": "Bearer t0k"}}),
    )
    .unwrap();
    let err = in_case(find(&kws, "ws.send"), case, json!({"text": "a", "json": 1})).unwrap_err();
    assert!(err.message.contains("not text and json"), "{err}");
    let err = in_case(find(&kws, "ws.send"), case, json!({"binary": "%%"})).unwrap_err();
    assert!(err.message.contains("not base64"), "{err}");
    let err = in_case(find(&kws, "ws.connect"), 0, json!({"url": "/echo"})).unwrap_err();
    assert!(err.message.contains("runs in a case only"), "{err}");
    let err = in_case(
        find(&kws, "ws.connect"),
        case,
        json!({"url": "ws://127.0.0.1:9/x", "name": "down"}),
    )
    .unwrap_err();
    assert!(err.message.contains("ws://127.0.0.1:9/x"), "{err}");
    for kw in &kws {
        kw.case_finished(case);
    }
}

/// A `wss://` echo server with a certificate of the test CA, started once per test binary.
fn tls_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        use futures_util::{SinkExt as _, StreamExt as _};
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let pki = common::pki();
        let certs = CertificateDer::pem_file_iter(&pki.cert)
            .expect("certificate file")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = PrivateKeyDer::from_pem_file(&pki.key).expect("key");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        runtime().spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() || m.is_binary() {
                            let _ = ws.send(m).await;
                        }
                    }
                });
            }
        });
        addr
    })
}

#[test]
fn wss_trusts_the_resource_ca_and_refuses_an_unknown_issuer() {
    let port = tls_server().port();
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let kws = atf_keywords::ws::keywords(&env(json!({"ws": {
        "default": {"base_url": format!("wss://localhost:{port}"), "ca": ca},
        "ip": {"base_url": format!("wss://127.0.0.1:{port}"), "ca": ca},
        "system": format!("wss://localhost:{port}")
    }})))
    .0;
    for resource in ["default", "ip"] {
        let case = new_case();
        let out = in_case(
            find(&kws, "ws.connect"),
            case,
            json!({"url": "/tls", "resource": resource}),
        )
        .unwrap_or_else(|e| panic!("wss through resource {resource}: {e}"));
        assert_eq!(out["status"], json!(101));
        in_case(
            find(&kws, "ws.send"),
            case,
            json!({"json": {"over": "tls"}}),
        )
        .unwrap();
        let out = in_case(
            find(&kws, "ws.receive"),
            case,
            json!({"match": {"$.data.over": "tls"}, "timeout": "5s"}),
        )
        .unwrap();
        assert_eq!(out["count"], json!(1));
        in_case(find(&kws, "ws.close"), case, json!({})).unwrap();
    }
    // Without `ca` only the system's roots count: the test CA is not one of them.
    let err = in_case(
        find(&kws, "ws.connect"),
        new_case(),
        json!({"url": "/tls", "resource": "system"}),
    )
    .unwrap_err();
    assert!(err.message.contains("certificate"), "{err}");
    let kws = atf_keywords::ws::keywords(&env(json!({"ws": {
        "default": {"base_url": format!("wss://localhost:{port}"), "ca": "/no/such/ca.pem"}
    }})))
    .0;
    let err = in_case(find(&kws, "ws.connect"), new_case(), json!({"url": "/tls"})).unwrap_err();
    assert!(err.message.contains("cannot read the CA file"), "{err}");
}
