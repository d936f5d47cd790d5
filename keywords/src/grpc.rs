//! `grpc.call`: one gRPC call with JSON messages, no generated code.
//!
//! Messages are [`prost_reflect::DynamicMessage`]s built from JSON with the
//! protobuf JSON mapping and sent through tonic with [`DynamicCodec`]. The
//! method's descriptors come from `.proto` files, compiled in-process by
//! `protox` (no `protoc` needed) once per run and set of files, or, when no
//! file is given, from the server's reflection service (`grpc.reflection.v1`,
//! then `v1alpha`), asked once per run, resource and service.
//!
//! A resource of kind `grpc` is a URL string (`http://host:50051`;
//! `https://` for TLS with the system's roots) or an object `{ "url": ...,
//! "proto": [files], "include": [folders], "metadata": {...}, "ca": file,
//! "domain": name }`; its paths are relative to the folder atf runs in, a
//! step's `proto` and `include` to the case file. Without a `default`
//! resource in the project file, `default` is `http://127.0.0.1:50051`.
//! Each resource has one HTTP/2 channel, connected on first use and shared
//! by every case.
//!
//! All four kinds of method work: the request is `message` (one) or
//! `messages` (a list, for client and bidirectional streaming); the result
//! has `message` for methods that answer once and `messages` for
//! server-streaming ones, which are read until the server ends the stream,
//! `count` messages came, or `timeout` passed. A status other than OK is a
//! result (`status.code`), not an error: the step's `expect` decides. Not
//! reaching the server, an unknown method or a message that does not fit the
//! descriptors is an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use serde_json::Map;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{KeyAndValueRef, MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::Env;
use crate::mysql::resource_settings;

/// The URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "http://127.0.0.1:50051";

/// The spec of `grpc.call`.
pub fn spec() -> KeywordSpec {
    KeywordSpec::new(
        "grpc.call",
        "Calls one gRPC method with JSON messages (descriptors from .proto files or server \
         reflection).",
    )
    .required(
        "method",
        "string",
        "the full method name, `package.Service/Method`",
    )
    .arg(
        "message",
        "object",
        "the request message as JSON (protobuf JSON mapping; default {})",
    )
    .arg(
        "messages",
        "array",
        "the request messages of a client- or bidirectional-streaming method",
    )
    .arg(
        "metadata",
        "object",
        "request metadata, name → text (names ending in `-bin` take base64)",
    )
    .headers()
    .arg(
        "timeout",
        "string|number",
        "the call's deadline (sent as grpc-timeout; default: the step timeout); for a \
         server-streaming method, how long to read messages",
    )
    .arg(
        "count",
        "integer",
        "server streaming: stop after this many messages (default: read until the stream ends)",
    )
    .arg(
        "proto",
        "string|array",
        ".proto file(s) that define the method, relative to the case file (default: the \
         resource's, else server reflection)",
    )
    .arg(
        "include",
        "string|array",
        "import folders for `proto`, relative to the case file (default: the case file's \
         folder and each file's own)",
    )
    .arg(
        "resource",
        "string",
        "the grpc resource of the project file (default `default`)",
    )
    .result(
        "`status` (`code` name such as OK or NOT_FOUND, `number`, `message`), `message` (the \
         response as JSON; null when the status is not OK) or, for server streaming, \
         `messages` and `count`, `headers` and `trailers` (name → text, base64 for `-bin`)",
    )
}

/// A tonic codec for [`DynamicMessage`]s: it encodes any message and
/// decodes the messages it receives as `decode_as`.
#[derive(Clone)]
pub struct DynamicCodec {
    decode_as: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec that decodes received messages as `decode_as`.
    pub fn new(decode_as: MessageDescriptor) -> DynamicCodec {
        DynamicCodec { decode_as }
    }
}

/// The encoding half of [`DynamicCodec`].
pub struct DynamicEncoder;

/// The decoding half of [`DynamicCodec`].
pub struct DynamicDecoder(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.decode_as.clone())
    }
}

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the message: {e}")))
    }
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode the message: {e}")))
    }
}

/// The canonical name of a status code (`NOT_FOUND`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn status_json(code: Code, message: &str) -> Value {
    json!({ "code": code_name(code), "number": code as i32, "message": message })
}

fn metadata_json(m: &MetadataMap) -> Value {
    let mut out = Map::new();
    for kv in m.iter() {
        match kv {
            KeyAndValueRef::Ascii(k, v) => {
                let text = String::from_utf8_lossy(v.as_encoded_bytes()).to_string();
                out.insert(k.as_str().to_string(), Value::String(text));
            }
            KeyAndValueRef::Binary(k, v) => {
                let bytes = v.to_bytes().map(|b| b.to_vec()).unwrap_or_default();
                out.insert(
                    k.as_str().to_string(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                );
            }
        }
    }
    Value::Object(out)
}

fn insert_metadata(m: &mut MetadataMap, name: &str, v: &Value) -> Result<(), KeywordError> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bad = |e: String| KeywordError::new(format!("metadata `{name}`: {e}"));
    let lower = name.to_ascii_lowercase();
    if lower.ends_with("-bin") {
        let key = MetadataKey::from_bytes(lower.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| bad(format!("a -bin value is base64: {e}")))?;
        m.insert_bin(key, MetadataValue::from_bytes(&bytes));
    } else {
        let key = MetadataKey::from_bytes(lower.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value: MetadataValue<_> = text.parse().map_err(|e| bad(format!("{e}")))?;
        m.insert(key, value);
    }
    Ok(())
}

/// The message as JSON (protobuf JSON mapping, fields with default values included).
pub fn message_json(m: &DynamicMessage) -> Result<Value, KeywordError> {
    let options = prost_reflect::SerializeOptions::new().skip_default_fields(false);
    m.serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| KeywordError::new(format!("cannot turn the response into JSON: {e}")))
}

/// A message of type `desc` from JSON.
pub fn message_from_json(
    desc: &MessageDescriptor,
    v: &Value,
) -> Result<DynamicMessage, KeywordError> {
    DynamicMessage::deserialize(desc.clone(), v).map_err(|e| {
        KeywordError::new(format!(
            "the message does not fit `{}`: {e}",
            desc.full_name()
        ))
    })
}

/// Where a resource's descriptors come from.
#[derive(Clone, Default)]
struct Protos {
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
}

/// The connection of one grpc resource.
struct Resource {
    /// `grpc resource `name` (url)`, for messages.
    label: String,
    channel: Channel,
    metadata: Map<String, Value>,
    protos: Protos,
    /// Services found by reflection: service name → its pool.
    reflected: tokio::sync::Mutex<HashMap<String, DescriptorPool>>,
}

/// Compiled .proto sets: (files, includes) → pool or compile error.
type CompiledProtos = HashMap<(Vec<PathBuf>, Vec<PathBuf>), Result<DescriptorPool, String>>;

/// The `grpc.call` keyword with its channels and descriptors.
pub struct Grpc {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
    /// Compiled .proto sets: (files, includes) → pool or compile error.
    compiled: Mutex<CompiledProtos>,
}

fn path_list(v: &Value, what: &str) -> Result<Vec<String>, KeywordError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(KeywordError::new(format!(
                    "`{what}` lists paths (text), got {}",
                    type_name(other)
                ))),
            })
            .collect(),
        other => Err(KeywordError::new(format!(
            "`{what}` is a path or a list of paths, got {}",
            type_name(other)
        ))),
    }
}

/// A URL tonic understands: `grpc://` and bare `host:port` become `http://`, `grpcs://` `https://`.
fn normalize_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("grpc://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("grpcs://") {
        format!("https://{rest}")
    } else if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

impl Grpc {
    /// A keyword that will connect to `env`'s grpc resources on first use.
    pub fn new(env: Env) -> Grpc {
        Grpc {
            env,
            resources: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut resources = self
            .resources
            .lock()
            .map_err(|_| KeywordError::new("grpc channel table poisoned"))?;
        if let Some(r) = resources.get(name) {
            return Ok(r.clone());
        }
        let bad = |what: String| KeywordError::new(format!("grpc resource `{name}`: {what}"));
        let settings = resource_settings(&self.env, "grpc", name, json!(DEFAULT_URL))?;
        let mut metadata = Map::new();
        let mut protos = Protos::default();
        let mut ca = None;
        let mut domain = None;
        let url = match &settings {
            Value::String(s) => s.clone(),
            Value::Object(map) => {
                let mut url = None;
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("url", Value::String(s)) => url = Some(s.clone()),
                        ("proto", v) => {
                            protos.files = path_list(v, "proto")?
                                .into_iter()
                                .map(PathBuf::from)
                                .collect()
                        }
                        ("include", v) => {
                            protos.includes = path_list(v, "include")?
                                .into_iter()
                                .map(PathBuf::from)
                                .collect()
                        }
                        ("metadata", Value::Object(m)) => metadata = m.clone(),
                        ("ca", Value::String(s)) => ca = Some(s.clone()),
                        ("domain", Value::String(s)) => domain = Some(s.clone()),
                        (other, v) => {
                            return Err(bad(format!(
                                "unexpected `{other}` ({}); known: url, proto, include, \
                                 metadata, ca, domain",
                                type_name(v)
                            )));
                        }
                    }
                }
                url.ok_or_else(|| bad("`url` is missing".into()))?
            }
            other => {
                return Err(bad(format!(
                    "must be a URL such as \"{DEFAULT_URL}\" or an object with `url`, got {}",
                    type_name(other)
                )));
            }
        };
        let url = normalize_url(&url);
        let parsed = url::Url::parse(&url).map_err(|e| bad(format!("invalid URL: {e}")))?;
        let shown = format!(
            "{}://{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or(""),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default()
        );
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| bad(format!("invalid URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if parsed.scheme() == "https" || ca.is_some() {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(path) = &ca {
                let pem = std::fs::read(path)
                    .map_err(|e| bad(format!("cannot read the CA file `{path}`: {e}")))?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            if let Some(d) = &domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| bad(format!("TLS: {e}")))?;
        }
        let channel = {
            let _guard = self.env.runtime.enter();
            endpoint.connect_lazy()
        };
        let r = Arc::new(Resource {
            label: format!("grpc resource `{name}` ({shown})"),
            channel,
            metadata,
            protos,
            reflected: tokio::sync::Mutex::new(HashMap::new()),
        });
        resources.insert(name.to_string(), r.clone());
        Ok(r)
    }

    /// The pool compiled from `protos`, once per run.
    fn compile(&self, protos: &Protos) -> Result<DescriptorPool, KeywordError> {
        let key = (protos.files.clone(), protos.includes.clone());
        if let Ok(compiled) = self.compiled.lock()
            && let Some(found) = compiled.get(&key)
        {
            return found.clone().map_err(KeywordError::new);
        }
        let result = compile_protos(&protos.files, &protos.includes);
        if let Ok(mut compiled) = self.compiled.lock() {
            compiled.insert(key, result.clone());
        }
        result.map_err(KeywordError::new)
    }
}

/// Compiles `files` with `includes` (each file's own folder added).
fn compile_protos(files: &[PathBuf], includes: &[PathBuf]) -> Result<DescriptorPool, String> {
    let mut dirs: Vec<PathBuf> = includes.to_vec();
    for f in files {
        if let Some(parent) = f.parent() {
            let p = if parent.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                parent.to_path_buf()
            };
            if !dirs.contains(&p) {
                dirs.push(p);
            }
        }
    }
    for f in files {
        if !f.is_file() {
            return Err(format!("cannot read the proto file `{}`", f.display()));
        }
    }
    let mut compiler = protox::Compiler::new(&dirs).map_err(|e| format!("proto: {e}"))?;
    compiler.include_imports(true);
    compiler
        .open_files(files)
        .map_err(|e| format!("proto: {e}"))?;
    Ok(compiler.descriptor_pool())
}

/// Splits `pkg.Service/Method` (also `/pkg.Service/Method` and `pkg.Service.Method`).
fn split_method(method: &str) -> Result<(String, String), KeywordError> {
    let m = method.trim().trim_start_matches('/');
    let (service, name) = match m.rsplit_once('/') {
        Some(x) => x,
        None => m.rsplit_once('.').ok_or_else(|| {
            KeywordError::new(format!(
                "`{method}` is not a method name: write `package.Service/Method`"
            ))
        })?,
    };
    if service.is_empty() || name.is_empty() {
        return Err(KeywordError::new(format!(
            "`{method}` is not a method name: write `package.Service/Method`"
        )));
    }
    Ok((service.to_string(), name.to_string()))
}

fn find_method(
    pool: &DescriptorPool,
    service: &str,
    name: &str,
    source: &str,
) -> Result<MethodDescriptor, KeywordError> {
    let svc = pool.get_service_by_name(service).ok_or_else(|| {
        let mut known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        known.sort();
        KeywordError::new(format!(
            "no service `{service}` in {source} (services: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let found = svc.methods().find(|m| m.name() == name);
    found.ok_or_else(|| {
        let known: Vec<String> = svc.methods().map(|m| m.name().to_string()).collect();
        KeywordError::new(format!(
            "service `{service}` has no method `{name}` (methods: {})",
            known.join(", ")
        ))
    })
}

/// An error with its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// A status the client made up because the call never reached an answer (a transport error).
fn is_local(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

impl Resource {
    /// The pool that describes `service`, asked of the server's reflection service once.
    async fn reflect(&self, service: &str) -> Result<DescriptorPool, KeywordError> {
        let mut cache = self.reflected.lock().await;
        if let Some(pool) = cache.get(service) {
            return Ok(pool.clone());
        }
        let files = match reflect_v1(self.channel.clone(), service).await {
            Ok(files) => files,
            Err(ReflectError::Unimplemented) => {
                match reflect_v1alpha(self.channel.clone(), service).await {
                    Ok(files) => files,
                    Err(ReflectError::Unimplemented) => {
                        return Err(KeywordError::new(format!(
                            "{}: the server has no reflection service; give the `proto` files \
                             that define `{service}`",
                            self.label
                        )));
                    }
                    Err(ReflectError::Other(e)) => {
                        return Err(KeywordError::new(format!(
                            "{}: reflection: {e}",
                            self.label
                        )));
                    }
                }
            }
            Err(ReflectError::Other(e)) => {
                return Err(KeywordError::new(format!(
                    "{}: reflection: {e}",
                    self.label
                )));
            }
        };
        let pool = pool_from_files(files)
            .map_err(|e| KeywordError::new(format!("{}: reflection: {e}", self.label)))?;
        cache.insert(service.to_string(), pool.clone());
        Ok(pool)
    }
}

enum ReflectError {
    Unimplemented,
    Other(String),
}

impl From<Status> for ReflectError {
    fn from(s: Status) -> Self {
        if s.code() == Code::Unimplemented && !is_local(&s) {
            ReflectError::Unimplemented
        } else if is_local(&s) {
            ReflectError::Other(error_chain(&s))
        } else {
            ReflectError::Other(format!("{}: {}", code_name(s.code()), s.message()))
        }
    }
}

/// Generates the reflection walk for one version of the reflection API.
macro_rules! reflect_with {
    ($fn:ident, $pb:path) => {
        /// Asks for the file defining `symbol`, then for every import not yet
        /// received, and returns the encoded file descriptors.
        async fn $fn(channel: Channel, symbol: &str) -> Result<Vec<Vec<u8>>, ReflectError> {
            use $pb as pb;
            let mut client = pb::server_reflection_client::ServerReflectionClient::new(channel);
            let mut files: Vec<Vec<u8>> = Vec::new();
            let mut names: std::collections::HashSet<String> = Default::default();
            let mut wanted = vec![pb::server_reflection_request::MessageRequest::FileContainingSymbol(
                symbol.to_string(),
            )];
            while let Some(request) = wanted.pop() {
                let req = pb::ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                };
                let mut stream = client
                    .server_reflection_info(futures_util::stream::iter(vec![req]))
                    .await?
                    .into_inner();
                let Some(resp) = stream.message().await? else {
                    return Err(ReflectError::Other("no answer".into()));
                };
                match resp.message_response {
                    Some(pb::server_reflection_response::MessageResponse::FileDescriptorResponse(
                        fd,
                    )) => {
                        for bytes in fd.file_descriptor_proto {
                            let file = prost_reflect::prost_types::FileDescriptorProto::decode(
                                bytes.as_slice(),
                            )
                            .map_err(|e| ReflectError::Other(e.to_string()))?;
                            let name = file.name().to_string();
                            if names.insert(name) {
                                for dep in &file.dependency {
                                    if !names.contains(dep) {
                                        wanted.push(
                                            pb::server_reflection_request::MessageRequest::FileByFilename(
                                                dep.clone(),
                                            ),
                                        );
                                    }
                                }
                                files.push(bytes);
                            }
                        }
                    }
                    Some(pb::server_reflection_response::MessageResponse::ErrorResponse(e)) => {
                        return Err(ReflectError::Other(format!(
                            "{} (code {})",
                            e.error_message, e.error_code
                        )));
                    }
                    _ => return Err(ReflectError::Other("unexpected answer".into())),
                }
            }
            Ok(files)
        }
    };
}

reflect_with!(reflect_v1, tonic_reflection::pb::v1);
reflect_with!(reflect_v1alpha, tonic_reflection::pb::v1alpha);

/// A pool from encoded file descriptors in any order (imports are added first).
fn pool_from_files(files: Vec<Vec<u8>>) -> Result<DescriptorPool, String> {
    use prost_reflect::prost_types::FileDescriptorProto;
    let mut protos: Vec<FileDescriptorProto> = files
        .iter()
        .map(|b| FileDescriptorProto::decode(b.as_slice()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let mut pool = DescriptorPool::new();
    let mut added: std::collections::HashSet<String> = Default::default();
    while !protos.is_empty() {
        let ready = protos.iter().position(|f| {
            f.dependency
                .iter()
                .all(|d| added.contains(d) || !files_named(&protos, d))
        });
        let Some(i) = ready else {
            return Err("the server's file descriptors import each other in a circle".into());
        };
        let file = protos.remove(i);
        added.insert(file.name().to_string());
        pool.add_file_descriptor_proto(file)
            .map_err(|e| e.to_string())?;
    }
    Ok(pool)
}

fn files_named(protos: &[prost_reflect::prost_types::FileDescriptorProto], name: &str) -> bool {
    protos.iter().any(|f| f.name() == name)
}

/// One JSON request message or a list of them, per the method's kind.
fn requests(c: &Call<'_>, method: &MethodDescriptor) -> Result<Vec<DynamicMessage>, KeywordError> {
    let input = method.input();
    let client_streams = method.is_client_streaming();
    match (c.arg("message"), c.arg("messages")) {
        (Some(_), Some(_)) => Err(KeywordError::new("give `message` or `messages`, not both")),
        (Some(m), None) => Ok(vec![message_from_json(&input, m)?]),
        (None, Some(Value::Array(items))) if client_streams => {
            items.iter().map(|m| message_from_json(&input, m)).collect()
        }
        (None, Some(Value::Array(_))) => Err(KeywordError::new(format!(
            "`{}` takes one request: give `message`, not `messages`",
            method.full_name()
        ))),
        (None, Some(other)) => Err(KeywordError::new(format!(
            "argument `messages` must be a list of messages, got {}",
            type_name(other)
        ))),
        (None, None) => Ok(vec![message_from_json(&input, &json!({}))?]),
    }
}

impl Keyword for Grpc {
    fn spec(&self) -> KeywordSpec {
        spec()
    }

    /// It waits only in [`crate::run_on`] and holds no lock across it (the
    /// descriptor cache's lock is let go before a compile's result is used).
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let method_name = c.required_str("method")?.to_string();
        let (service, name) = split_method(&method_name)?;
        let r = self.resource(c.resource()?)?;
        let timeout = match c.arg("timeout") {
            None => c.remaining(),
            Some(v) => atf_sdk::parse_duration(v)
                .map_err(|e| KeywordError::new(format!("argument `timeout`: {e}")))?
                .min(c.remaining()),
        };
        let count = match c.arg("count") {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Some(n as usize),
                _ => {
                    return Err(KeywordError::new(format!(
                        "argument `count` must be a positive integer, got {v}"
                    )));
                }
            },
        };
        // Descriptors: the step's files, the resource's, or reflection.
        let step_files = match c.arg("proto") {
            Some(v) => path_list(v, "proto")?
                .into_iter()
                .map(|p| join(c.base_dir, &p))
                .collect(),
            None => Vec::new(),
        };
        let step_includes: Vec<PathBuf> = match c.arg("include") {
            Some(v) => path_list(v, "include")?
                .into_iter()
                .map(|p| join(c.base_dir, &p))
                .collect(),
            None if !step_files.is_empty() => vec![c.base_dir.to_path_buf()],
            None => Vec::new(),
        };
        let pool = if !step_files.is_empty() {
            Some(self.compile(&Protos {
                files: step_files,
                includes: step_includes,
            })?)
        } else if !r.protos.files.is_empty() {
            Some(self.compile(&r.protos)?)
        } else {
            None
        };
        let mut metadata = MetadataMap::new();
        for (k, v) in &r.metadata {
            insert_metadata(&mut metadata, k, v)?;
        }
        match c.arg("metadata") {
            None => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    insert_metadata(&mut metadata, k, v)?;
                }
            }
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `metadata` must be an object, got {}",
                    type_name(other)
                )));
            }
        }
        // Request messages need the descriptors: with reflection they come first.
        let method = match &pool {
            Some(pool) => find_method(pool, &service, &name, "the proto files")?,
            None => {
                let r2 = r.clone();
                let s = service.clone();
                let pool = crate::run_on(&self.env.runtime, async move {
                    match tokio::time::timeout(timeout, r2.reflect(&s)).await {
                        Ok(p) => p,
                        Err(_) => Err(KeywordError::new(format!(
                            "{}: no reflection answer within {} ms",
                            r2.label,
                            timeout.as_millis()
                        ))),
                    }
                })?;
                find_method(&pool, &service, &name, "the server's reflection")?
            }
        };
        let messages = requests(c, &method)?;
        let started = Instant::now();
        let out = crate::run_on(&self.env.runtime, async move {
            invoke(r, method, messages, metadata, timeout, count).await
        })?;
        let mut out = out;
        out["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
        Ok(out)
    }
}

fn join(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Makes the call and turns its outcome into the step's result.
async fn invoke(
    r: Arc<Resource>,
    method: MethodDescriptor,
    messages: Vec<DynamicMessage>,
    metadata: MetadataMap,
    timeout: Duration,
    count: Option<usize>,
) -> Result<Value, KeywordError> {
    let path: tonic::codegen::http::uri::PathAndQuery =
        format!("/{}/{}", method.parent_service().full_name(), method.name())
            .parse()
            .map_err(|e| KeywordError::new(format!("method path: {e}")))?;
    let streams_back = method.is_server_streaming();
    let mut request = tonic::Request::new(futures_util::stream::iter(messages));
    *request.metadata_mut() = metadata;
    if !streams_back {
        request.set_timeout(timeout);
    }
    let codec = DynamicCodec::new(method.output());
    let mut grpc = tonic::client::Grpc::new(r.channel.clone());
    let label = r.label.clone();
    let end = tokio::time::Instant::now() + timeout;
    let timed_out = || {
        KeywordError::new(format!(
            "{label}: {} gave no answer within {} ms",
            method.full_name(),
            timeout.as_millis()
        ))
    };
    let local = |s: &Status| {
        let chain = error_chain(s);
        // tonic's own deadline (grpc-timeout) ends the call like ours does.
        if chain.contains("TimeoutExpired") || s.message() == "Timeout expired" {
            return timed_out();
        }
        KeywordError::new(format!("{label}: {} failed: {chain}", method.full_name()))
    };
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| KeywordError::new(format!("{label}: {}", error_chain(&e))))?;
        Ok::<_, KeywordError>(grpc.streaming(request, path, codec).await)
    };
    let response = match tokio::time::timeout_at(end, call).await {
        Err(_) => return Err(timed_out()),
        Ok(r) => r?,
    };
    let response = match response {
        Ok(resp) => resp,
        Err(status) if is_local(&status) => return Err(local(&status)),
        Err(status) => {
            let mut out = json!({
                "status": status_json(status.code(), status.message()),
                "headers": {},
                "trailers": metadata_json(status.metadata()),
            });
            if streams_back {
                out["messages"] = json!([]);
                out["count"] = json!(0);
            } else {
                out["message"] = Value::Null;
            }
            return Ok(out);
        }
    };
    let headers = metadata_json(response.metadata());
    let mut stream = response.into_inner();
    let mut received = Vec::new();
    let mut ended_with: Option<Status> = None;
    let mut finished = false;
    loop {
        if count.is_some_and(|n| received.len() >= n) {
            break;
        }
        match tokio::time::timeout_at(end, stream.message()).await {
            Err(_) if streams_back => break,
            Err(_) => return Err(timed_out()),
            Ok(Ok(Some(m))) => received.push(message_json(&m)?),
            Ok(Ok(None)) => {
                finished = true;
                break;
            }
            Ok(Err(status)) if is_local(&status) => return Err(local(&status)),
            Ok(Err(status)) => {
                ended_with = Some(status);
                finished = true;
                break;
            }
        }
    }
    let mut trailers = json!({});
    if finished && ended_with.is_none() {
        match tokio::time::timeout_at(end, stream.trailers()).await {
            Ok(Ok(Some(t))) => trailers = metadata_json(&t),
            Ok(Ok(None)) => {}
            Ok(Err(status)) if is_local(&status) => return Err(local(&status)),
            Ok(Err(status)) => ended_with = Some(status),
            Err(_) if streams_back => {}
            Err(_) => return Err(timed_out()),
        }
    }
    let status = match &ended_with {
        Some(s) => {
            trailers = metadata_json(s.metadata());
            status_json(s.code(), s.message())
        }
        None if finished => status_json(Code::Ok, ""),
        // The step stopped reading first (count or timeout): the call has no status yet.
        None => Value::Null,
    };
    let mut out = json!({ "status": status, "headers": headers, "trailers": trailers });
    if streams_back {
        let n = received.len();
        out["messages"] = Value::Array(received);
        out["count"] = json!(n);
    } else {
        out["message"] = match (&ended_with, received.into_iter().next()) {
            (None, Some(m)) => m,
            _ => Value::Null,
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_are_split() {
        assert_eq!(
            split_method("pkg.v1.Greeter/SayHello").unwrap(),
            ("pkg.v1.Greeter".to_string(), "SayHello".to_string())
        );
        assert_eq!(
            split_method("/pkg.Greeter/SayHello").unwrap(),
            ("pkg.Greeter".to_string(), "SayHello".to_string())
        );
        assert_eq!(
            split_method("pkg.Greeter.SayHello").unwrap(),
            ("pkg.Greeter".to_string(), "SayHello".to_string())
        );
        assert!(split_method("SayHello").is_err());
        assert!(split_method("pkg.Greeter/").is_err());
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("grpc://h:1"), "http://h:1");
        assert_eq!(normalize_url("grpcs://h:1"), "https://h:1");
        assert_eq!(normalize_url("h:1"), "http://h:1");
        assert_eq!(normalize_url("https://h"), "https://h");
    }

    #[test]
    fn code_names_are_canonical() {
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(status_json(Code::NotFound, "x")["number"], json!(5));
    }

    #[test]
    fn metadata_round_trips() {
        let mut m = MetadataMap::new();
        insert_metadata(&mut m, "X-Trace", &json!("abc")).unwrap();
        insert_metadata(&mut m, "blob-bin", &json!("AAE=")).unwrap();
        let v = metadata_json(&m);
        assert_eq!(v["x-trace"], json!("abc"));
        assert_eq!(v["blob-bin"], json!("AAE="));
        assert!(insert_metadata(&mut m, "blob-bin", &json!("%%%")).is_err());
    }
}
