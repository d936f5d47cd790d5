//! `grpc.call` against a tonic server started by this test binary. The
//! server is dynamic too: it serves `tests/grpc/greeter.proto`, compiled at
//! test time by protox, with prost-reflect messages through the keyword's own
//! `DynamicCodec`; one instance also serves reflection, the other does not.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use atf_keywords::grpc::DynamicCodec;
use atf_sdk::{Keyword, KeywordResult, Value, json};
use common::{call_at, env, now_ms, runtime};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value as PValue};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status, Streaming};

fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc")
}

fn compile() -> (DescriptorPool, Vec<u8>) {
    let fds = protox::compile([proto_dir().join("greeter.proto")], [proto_dir()]).expect("protox");
    let bytes = fds.encode_to_vec();
    let pool = DescriptorPool::decode(bytes.as_slice()).expect("descriptor pool");
    (pool, bytes)
}

/// The Greeter service, answering with dynamic messages.
#[derive(Clone)]
struct Greeter {
    pool: DescriptorPool,
}

impl NamedService for Greeter {
    const NAME: &'static str = "atf.test.v1.Greeter";
}

fn get_str(m: &DynamicMessage, field: &str) -> String {
    m.get_field_by_name(field)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn get_i64(m: &DynamicMessage, field: &str) -> i64 {
    m.get_field_by_name(field)
        .and_then(|v| v.as_i64().or(v.as_i32().map(i64::from)))
        .unwrap_or(0)
}

struct Unary(MethodDescriptor);

impl tonic::server::UnaryService<DynamicMessage> for Unary {
    type Response = DynamicMessage;
    type Future = BoxFuture<Response<DynamicMessage>, Status>;

    fn call(&mut self, req: Request<DynamicMessage>) -> Self::Future {
        let method = self.0.clone();
        Box::pin(async move {
            let trace = req
                .metadata()
                .get("x-trace")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let msg = req.into_inner();
            let person = msg
                .get_field_by_name("person")
                .and_then(|p| p.as_message().cloned());
            let name = person
                .as_ref()
                .map(|p| get_str(p, "name"))
                .unwrap_or_default();
            if method.name() == "Fail" {
                return Err(Status::not_found(format!("no such person: {name}")));
            }
            if name == "slow" {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let mut reply = DynamicMessage::new(method.output());
            reply.set_field_by_name("message", PValue::String(format!("Hello, {name}")));
            reply.set_field_by_name("big", PValue::I64(get_i64(&msg, "big") * 2));
            let tags: Vec<PValue> = trace.into_iter().map(PValue::String).collect();
            reply.set_field_by_name("tags", PValue::List(tags));
            if let Some(p) = person
                && let Some(mood) = p.get_field_by_name("mood")
            {
                reply.set_field_by_name("mood", mood.into_owned());
            }
            let mut resp = Response::new(reply);
            resp.metadata_mut()
                .insert("x-served-by", "test".parse().expect("metadata"));
            Ok(resp)
        })
    }
}

struct Countdown(MethodDescriptor);

type Ticks = Pin<Box<dyn futures_util::Stream<Item = Result<DynamicMessage, Status>> + Send>>;

impl tonic::server::ServerStreamingService<DynamicMessage> for Countdown {
    type Response = DynamicMessage;
    type ResponseStream = Ticks;
    type Future = BoxFuture<Response<Ticks>, Status>;

    fn call(&mut self, req: Request<DynamicMessage>) -> Self::Future {
        let out = self.0.output();
        Box::pin(async move {
            let msg = req.into_inner();
            let from = get_i64(&msg, "from");
            let delay = Duration::from_millis(get_i64(&msg, "delay_ms").max(0) as u64);
            let stream = futures_util::stream::unfold(from, move |n| {
                let out = out.clone();
                async move {
                    // from 0: an endless stream (counting down below zero).
                    if from > 0 && n <= 0 {
                        return None;
                    }
                    tokio::time::sleep(delay).await;
                    let mut tick = DynamicMessage::new(out);
                    tick.set_field_by_name("n", PValue::I32(n as i32));
                    Some((Ok(tick), n - 1))
                }
            });
            Ok(Response::new(Box::pin(stream) as Ticks))
        })
    }
}

struct Sum(MethodDescriptor);

impl tonic::server::ClientStreamingService<DynamicMessage> for Sum {
    type Response = DynamicMessage;
    type Future = BoxFuture<Response<DynamicMessage>, Status>;

    fn call(&mut self, req: Request<Streaming<DynamicMessage>>) -> Self::Future {
        let out = self.0.output();
        Box::pin(async move {
            let mut stream = req.into_inner();
            let (mut sum, mut count) = (0i32, 0i32);
            while let Some(n) = stream.message().await? {
                sum += get_i64(&n, "value") as i32;
                count += 1;
            }
            let mut total = DynamicMessage::new(out);
            total.set_field_by_name("sum", PValue::I32(sum));
            total.set_field_by_name("count", PValue::I32(count));
            Ok(Response::new(total))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let pool = self.pool.clone();
        Box::pin(async move {
            let path = req.uri().path().trim_start_matches('/').to_string();
            let method = path.split_once('/').and_then(|(svc, m)| {
                pool.get_service_by_name(svc)?
                    .methods()
                    .find(|x| x.name() == m)
            });
            let Some(method) = method else {
                return Ok(Status::unimplemented(path).into_http());
            };
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            let resp = match method.name() {
                "Countdown" => grpc.server_streaming(Countdown(method), req).await,
                "Sum" => grpc.client_streaming(Sum(method), req).await,
                _ => grpc.unary(Unary(method), req).await,
            };
            Ok(resp)
        })
    }
}

/// The servers' addresses, started once per test binary: (with reflection, without).
fn servers() -> (SocketAddr, SocketAddr) {
    static ADDRS: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();
    *ADDRS.get_or_init(|| {
        let (pool, fds) = compile();
        let start = |reflection: bool| {
            let listener = runtime()
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            let greeter = Greeter { pool: pool.clone() };
            let mut router = tonic::transport::Server::builder().add_service(greeter);
            if reflection {
                let reflect = tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(&fds)
                    .build_v1()
                    .expect("reflection service");
                router = router.add_service(reflect);
            }
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            runtime().spawn(async move {
                let _ = router.serve_with_incoming(incoming).await;
            });
            addr
        };
        (start(true), start(false))
    })
}

fn keyword() -> Arc<dyn Keyword> {
    let (with, without) = servers();
    Arc::new(atf_keywords::grpc::Grpc::new(env(json!({"grpc": {
        "default": format!("http://{with}"),
        "bare": format!("grpc://{without}"),
        "files": {
            "url": format!("http://{without}"),
            "proto": [proto_dir().join("greeter.proto").to_string_lossy()],
            "include": [proto_dir().to_string_lossy()],
            "metadata": {"x-trace": "from-resource"}
        },
        "down": "http://127.0.0.1:9"
    }}))))
}

fn grpc(kw: &Arc<dyn Keyword>, args: Value) -> KeywordResult {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    call_at(kw.as_ref(), args, Duration::from_secs(20), now_ms(), &base)
}

#[test]
fn a_unary_call_through_reflection_returns_status_message_and_headers() {
    let kw = keyword();
    let out = grpc(
        &kw,
        json!({
            "method": "atf.test.v1.Greeter/SayHello",
            "message": {"person": {"name": "Ada", "mood": "HAPPY"}, "big": "4503599627370497"},
            "metadata": {"x-trace": "t-1"}
        }),
    )
    .unwrap();
    assert_eq!(
        out["status"],
        json!({"code": "OK", "number": 0, "message": ""})
    );
    assert_eq!(
        out["message"],
        json!({"message": "Hello, Ada", "big": "9007199254740994", "tags": ["t-1"], "mood": "HAPPY"})
    );
    assert_eq!(out["headers"]["x-served-by"], json!("test"));
    assert!(out["trailers"].is_object());
}

#[test]
fn virtual_users_sharing_a_thread_each_get_their_answer() {
    let kw = keyword();
    assert!(kw.cooperative());
    let got = common::on_one_thread(8, |i| {
        let args = json!({"method": "atf.test.v1.Greeter/SayHello",
                          "message": {"person": {"name": format!("vu{i}")}}});
        grpc(&kw, args)
            .map(|o| o["message"]["message"].clone())
            .map_err(|e| e.message)
    });
    let want: Vec<Result<Value, String>> =
        (0..8).map(|i| Ok(json!(format!("Hello, vu{i}")))).collect();
    assert_eq!(got, want);
}

#[test]
fn descriptors_come_from_proto_files_with_include_paths() {
    let kw = keyword();
    // The step's own files, relative to the case folder (here `tests`).
    let out = grpc(
        &kw,
        json!({
            "method": "atf.test.v1.Greeter/SayHello",
            "proto": "grpc/greeter.proto",
            "include": "grpc",
            "message": {"person": {"name": "Bo"}},
            "resource": "bare"
        }),
    )
    .unwrap();
    assert_eq!(out["message"]["message"], json!("Hello, Bo"));
    assert_eq!(
        out["message"]["mood"],
        json!("MOOD_UNSPECIFIED"),
        "defaults are shown"
    );
    // The resource's files and metadata.
    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "resource": "files"}),
    )
    .unwrap();
    assert_eq!(out["message"]["tags"], json!(["from-resource"]));
    // No files and no reflection: the error says what to do.
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "resource": "bare"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("no reflection service; give the `proto` files"),
        "{err}"
    );
}

#[test]
fn a_status_other_than_ok_is_a_result_to_expect_on() {
    let kw = keyword();
    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/Fail", "message": {"person": {"name": "Bob"}}}),
    )
    .unwrap();
    assert_eq!(
        out["status"],
        json!({"code": "NOT_FOUND", "number": 5, "message": "no such person: Bob"})
    );
    assert_eq!(out["message"], Value::Null);
}

#[test]
fn server_streaming_collects_until_the_end_a_count_or_the_timeout() {
    let kw = keyword();
    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/Countdown", "message": {"from": 3}}),
    )
    .unwrap();
    assert_eq!(out["messages"], json!([{"n": 3}, {"n": 2}, {"n": 1}]));
    assert_eq!(out["count"], json!(3));
    assert_eq!(out["status"]["code"], json!("OK"));

    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/Countdown", "message": {"from": 0, "delay_ms": 5}, "count": 4}),
    )
    .unwrap();
    assert_eq!(out["count"], json!(4));
    assert_eq!(out["messages"][3], json!({"n": -3}));
    assert_eq!(out["status"], Value::Null, "the stream had not ended");

    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/Countdown", "message": {"from": 0, "delay_ms": 5}, "timeout": "300ms"}),
    )
    .unwrap();
    // An endless stream ends the step at its timeout, without an error
    // (how many messages came by then depends on the machine).
    assert_eq!(
        out["count"].as_u64(),
        out["messages"].as_array().map(|m| m.len() as u64),
        "{out}"
    );
    assert_eq!(out["status"], Value::Null);
}

#[test]
fn client_streaming_sends_every_message() {
    let kw = keyword();
    let out = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/Sum", "messages": [{"value": 1}, {"value": 2}, {"value": 3}]}),
    )
    .unwrap();
    assert_eq!(out["message"], json!({"sum": 6, "count": 3}));
}

#[test]
fn mistakes_and_an_unreachable_server_are_errors_that_say_why() {
    let kw = keyword();
    let err = grpc(&kw, json!({"method": "atf.test.v1.Greeter/Wave"})).unwrap_err();
    assert!(
        err.message
            .contains("has no method `Wave` (methods: SayHello, Countdown, Sum, Fail)"),
        "{err}"
    );
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "message": {"persn": {}}}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("does not fit `atf.test.v1.HelloRequest`"),
        "{err}"
    );
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "messages": [{}]}),
    )
    .unwrap_err();
    assert!(err.message.contains("takes one request"), "{err}");
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "proto": "grpc/missing.proto", "resource": "bare"}),
    )
    .unwrap_err();
    assert!(err.message.contains("missing.proto"), "{err}");
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "message": {"person": {"name": "slow"}}, "timeout": "200ms"}),
    )
    .unwrap_err();
    assert!(
        err.message.contains("gave no answer within 200 ms"),
        "{err}"
    );
    let err = grpc(
        &kw,
        json!({"method": "atf.test.v1.Greeter/SayHello", "proto": "grpc/greeter.proto", "resource": "down", "timeout": "5s"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("grpc resource `down` (http://127.0.0.1:9)"),
        "{err}"
    );
}

/// A TLS server (with reflection) whose certificate the test CA signed, started once.
fn tls_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        use tonic::transport::{Identity, ServerTlsConfig};
        let (pool, fds) = compile();
        let pki = common::pki();
        let identity = Identity::from_pem(
            std::fs::read(&pki.cert).expect("certificate"),
            std::fs::read(&pki.key).expect("key"),
        );
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let reflect = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(&fds)
            .build_v1()
            .expect("reflection service");
        let router = tonic::transport::Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .expect("server TLS config")
            .add_service(Greeter { pool })
            .add_service(reflect);
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        runtime().spawn(async move {
            let _ = router.serve_with_incoming(incoming).await;
        });
        addr
    })
}

#[test]
fn tls_calls_trust_the_resource_ca_and_refuse_an_unknown_issuer() {
    let port = tls_server().port();
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let kw: Arc<dyn Keyword> = Arc::new(atf_keywords::grpc::Grpc::new(env(json!({"grpc": {
        "default": {"url": format!("https://localhost:{port}"), "ca": ca},
        "by_ip": {"url": format!("https://127.0.0.1:{port}"), "ca": ca, "domain": "localhost"},
        "files": {
            "url": format!("https://localhost:{port}"), "ca": ca,
            "proto": [proto_dir().join("greeter.proto").to_string_lossy()],
            "include": [proto_dir().to_string_lossy()]
        },
        "system": format!("https://localhost:{port}")
    }}))));
    for resource in ["default", "by_ip", "files"] {
        let out = grpc(
            &kw,
            json!({
                "method": "atf.test.v1.Greeter/SayHello",
                "message": {"person": {"name": "Tls"}},
                "resource": resource
            }),
        )
        .unwrap_or_else(|e| panic!("TLS call through resource {resource}: {e}"));
        assert_eq!(out["status"]["code"], json!("OK"), "{out}");
        assert_eq!(out["message"]["message"], json!("Hello, Tls"), "{out}");
    }
    // Without `ca` only the system's roots count: the test CA is not one of them.
    let err = grpc(
        &kw,
        json!({
            "method": "atf.test.v1.Greeter/SayHello",
            "proto": "grpc/greeter.proto",
            "resource": "system",
            "timeout": "10s"
        }),
    )
    .unwrap_err();
    assert!(err.message.contains("certificate"), "{err}");
}
