//! A real HTTP server for the tests, started in-process on a free port.
//!
//! Endpoints:
//! - `ANY /echo` → the request as JSON: method, path, query, headers, body, json
//! - `GET /status/{code}` → that status, body `{"code": code}`
//! - `GET /delay/{ms}` → waits, then `{"slept": ms}`
//! - `POST|GET /counter/{name}` → increments (POST) and returns `{"n": n}`
//! - `GET /barrier/{name}/{n}` → answers 200 once `n` requests wait at the
//!   barrier together, 408 after 5 s alone (proves real overlap)
//! - `POST /enter/{key}`, `POST /leave/{key}`, `GET /max/{key}` → the most
//!   requests between enter and leave at once (proves locks)
//! - `POST /events` (body text) and `GET /events` → an ordered list
//! - `GET /redirect` → 302 to /echo; `GET /text` → text/plain
//! - `GET /whoami` → echoes the Authorization header in the body
//! - `ANY /redirect/{code}?to=URL` → that status with `Location: URL`
//! - `GET /cookies/set?name=value&...[&redirect=URL]` → a `Set-Cookie` (path
//!   `/`) per pair; with `redirect`, a 302 to it
//! - `GET /cookies/attrs` → cookies with every attribute; `ANY
//!   /cookies/echo` → as `/echo` (a path under `/cookies`)
//! - `GET /digest` → 200 `{"user": ...}` for a valid digest answer (user
//!   `ada`, password `d1gest-pa55`, realm `atf`), else 401 with a challenge;
//!   `GET /digest/sha-256` the same with SHA-256 (RFC 7616)
//! - `POST /multipart` → the parts: name, file name, content type, text, size
//! - `ANY /sha256` → `{"size", "sha256", "content_type"}` of the request body
//! - `GET /bytes` → the 256 bytes 0..=255 as application/octet-stream
//! - `GET /multi-header` → `x-multi: a` and `x-multi: b`
//!
//! [`start_proxy`] starts a small forward proxy that marks what it forwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    counters: Mutex<HashMap<String, u64>>,
    barriers: Mutex<HashMap<String, usize>>,
    barrier_notify: Notify,
    inside: Mutex<HashMap<String, (u64, u64)>>,
    events: Mutex<Vec<String>>,
}

type S = Arc<Inner>;

/// A running test server; it stops when the test process ends.
pub struct TestServer {
    pub addr: SocketAddr,
    inner: S,
}

impl TestServer {
    pub fn start() -> TestServer {
        let inner: S = Arc::new(Inner::default());
        let app = Router::new()
            .route("/echo", any(echo))
            .route("/echo/{*rest}", any(echo))
            .route("/status/{code}", get(status))
            .route("/delay/{ms}", get(delay))
            .route("/counter/{name}", post(counter_inc).get(counter_get))
            .route("/barrier/{name}/{n}", get(barrier))
            .route("/enter/{key}", post(enter))
            .route("/leave/{key}", post(leave))
            .route("/max/{key}", get(max))
            .route("/events", post(event_push).get(event_list))
            .route("/redirect", get(|| async { Redirect::to("/echo") }))
            .route("/text", get(|| async { "hello" }))
            .route("/gzip", get(gzip))
            .route(
                "/latin1",
                get(|| async {
                    (
                        [("content-type", "text/plain; charset=ISO-8859-1")],
                        &b"caf\xe9"[..],
                    )
                }),
            )
            .route(
                "/login",
                get(|| async {
                    (
                        [("set-cookie", "sid=session-5e55-10n; Path=/; HttpOnly")],
                        "welcome",
                    )
                }),
            )
            .route("/whoami", get(whoami))
            .route("/redirect/{code}", any(redirect_to))
            .route("/cookies/set", get(cookies_set))
            .route(
                "/cookies/attrs",
                get(|| async {
                    let mut h = HeaderMap::new();
                    for c in [
                        "theme=dark; Path=/cookies; Max-Age=3600; HttpOnly; SameSite=Lax",
                        "plain=1; Path=/",
                    ] {
                        h.append("set-cookie", c.parse().unwrap());
                    }
                    (h, "ok")
                }),
            )
            .route("/cookies/echo", any(echo))
            .route("/digest", get(digest))
            .route("/digest/sha-256", get(digest_sha256))
            .route("/multipart", post(multipart))
            .route("/sha256", any(sha256))
            .route(
                "/bytes",
                get(|| async {
                    let bytes: Vec<u8> = (0..=255u8).collect();
                    ([("content-type", "application/octet-stream")], bytes)
                }),
            )
            .route(
                "/multi-header",
                get(|| async {
                    let mut h = HeaderMap::new();
                    h.append("x-multi", "a".parse().unwrap());
                    h.append("x-multi", "b".parse().unwrap());
                    (h, "two")
                }),
            )
            .with_state(inner.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind test server");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        let addr = rx.recv().expect("test server did not start");
        TestServer { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn events(&self) -> Vec<String> {
        self.inner.events.lock().unwrap().clone()
    }

    pub fn max_inside(&self, key: &str) -> u64 {
        self.inner
            .inside
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |v| v.1)
    }

    pub fn counter(&self, name: &str) -> u64 {
        *self.inner.counters.lock().unwrap().get(name).unwrap_or(&0)
    }
}

/// A small forward proxy for plain HTTP: it takes a request in absolute
/// form (`GET http://host:port/path HTTP/1.1`), adds `Via: 1.1
/// atf-test-proxy`, sends it in origin form to `host:port` and relays the
/// bytes both ways (one upstream per client connection). Its address.
pub fn start_proxy() -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind proxy");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let Some((line, rest)) = text.split_once("\r\n") else {
                        return;
                    };
                    let mut parts = line.splitn(3, ' ');
                    let (Some(method), Some(target), Some(version)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return;
                    };
                    let Ok(uri) = target.parse::<Uri>() else {
                        return;
                    };
                    let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query())
                    else {
                        let _ = client
                            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(authority.as_str()).await
                    else {
                        let _ = client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    let forwarded =
                        format!("{method} {path} {version}\r\nVia: 1.1 atf-test-proxy\r\n{rest}");
                    if upstream.write_all(forwarded.as_bytes()).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
    });
    rx.recv().expect("the proxy did not start")
}

async fn echo(
    method: Method,
    version: Version,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    let mut h = serde_json::Map::new();
    // A header sent several times shows as its values joined by ", ".
    for (k, v) in &headers {
        let v = v.to_str().unwrap_or("");
        match h.get_mut(k.as_str()) {
            Some(Value::String(seen)) => {
                seen.push_str(", ");
                seen.push_str(v);
            }
            _ => {
                h.insert(k.as_str().to_string(), json!(v));
            }
        }
    }
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    axum::Json(json!({
        "method": method.as_str(),
        "version": format!("{version:?}"),
        "path": uri.path(),
        "query": q,
        "raw_query": uri.query().unwrap_or(""),
        "headers": h,
        "body": text,
        "json": parsed,
    }))
    .into_response()
}

async fn status(Path(code): Path<u16>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, axum::Json(json!({"code": code.as_u16()}))).into_response()
}

async fn delay(Path(ms): Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    axum::Json(json!({"slept": ms})).into_response()
}

async fn counter_inc(State(s): State<S>, Path(name): Path<String>) -> Response {
    let n = {
        let mut c = s.counters.lock().unwrap();
        let e = c.entry(name).or_insert(0);
        *e += 1;
        *e
    };
    axum::Json(json!({"n": n})).into_response()
}

async fn counter_get(State(s): State<S>, Path(name): Path<String>) -> Response {
    let n = *s.counters.lock().unwrap().get(&name).unwrap_or(&0);
    axum::Json(json!({"n": n})).into_response()
}

async fn barrier(State(s): State<S>, Path((name, n)): Path<(String, usize)>) -> Response {
    {
        let mut b = s.barriers.lock().unwrap();
        *b.entry(name.clone()).or_insert(0) += 1;
    }
    s.barrier_notify.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let arrived = *s.barriers.lock().unwrap().get(&name).unwrap_or(&0);
        if arrived >= n {
            s.barrier_notify.notify_waiters();
            return axum::Json(json!({"arrived": arrived})).into_response();
        }
        let wait = s.barrier_notify.notified();
        if tokio::time::timeout_at(deadline, wait).await.is_err() {
            return (
                StatusCode::REQUEST_TIMEOUT,
                axum::Json(json!({"arrived": arrived})),
            )
                .into_response();
        }
    }
}

async fn enter(State(s): State<S>, Path(key): Path<String>) -> Response {
    let mut m = s.inside.lock().unwrap();
    let e = m.entry(key).or_insert((0, 0));
    e.0 += 1;
    e.1 = e.1.max(e.0);
    axum::Json(json!({"inside": e.0})).into_response()
}

async fn leave(State(s): State<S>, Path(key): Path<String>) -> Response {
    let mut m = s.inside.lock().unwrap();
    let e = m.entry(key).or_insert((0, 0));
    e.0 = e.0.saturating_sub(1);
    axum::Json(json!({"inside": e.0})).into_response()
}

async fn max(State(s): State<S>, Path(key): Path<String>) -> Response {
    let m = s.inside.lock().unwrap();
    axum::Json(json!({"max": m.get(&key).map_or(0, |v| v.1)})).into_response()
}

async fn event_push(State(s): State<S>, body: String) -> Response {
    s.events.lock().unwrap().push(body);
    StatusCode::NO_CONTENT.into_response()
}

async fn event_list(State(s): State<S>) -> Response {
    axum::Json(json!(s.events.lock().unwrap().clone())).into_response()
}

/// `{"zipped": true}`, gzip-encoded when the client accepts gzip.
async fn gzip(headers: HeaderMap) -> Response {
    use std::io::Write;
    let body = br#"{"zipped": true}"#;
    let accepts = headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    if !accepts {
        return ([("content-type", "application/json")], &body[..]).into_response();
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body).expect("gzip");
    let zipped = enc.finish().expect("gzip");
    (
        [
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
        zipped,
    )
        .into_response()
}

async fn whoami(headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    axum::Json(json!({"you_sent": auth, "note": format!("token={auth}")})).into_response()
}

async fn redirect_to(Path(code): Path<u16>, Query(q): Query<HashMap<String, String>>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::FOUND);
    let to = q.get("to").cloned().unwrap_or_else(|| "/echo".into());
    (code, [("location", to)], "").into_response()
}

async fn cookies_set(uri: Uri) -> Response {
    let mut h = HeaderMap::new();
    let mut redirect = None;
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "redirect" {
            redirect = Some(v.into_owned());
            continue;
        }
        h.append(
            "set-cookie",
            format!("{k}={v}; Path=/").parse().expect("cookie"),
        );
    }
    match redirect {
        Some(to) => {
            h.insert("location", to.parse().expect("location"));
            (StatusCode::FOUND, h, "").into_response()
        }
        None => (h, "set").into_response(),
    }
}

/// RFC 7616 digest (MD5, qop=auth), checked independently of the client.
async fn digest(headers: HeaderMap) -> Response {
    digest_with(false, headers)
}

/// RFC 7616 digest with SHA-256: the challenge offers SHA-256 first and MD5
/// second, as RFC 7616 section 3.9.2 shows; only a SHA-256 answer is taken.
async fn digest_sha256(headers: HeaderMap) -> Response {
    digest_with(true, headers)
}

fn digest_with(sha256: bool, headers: HeaderMap) -> Response {
    use md5::{Digest as _, Md5};
    let md5 = |s: String| {
        if sha256 {
            hex::encode(sha2::Sha256::digest(s.as_bytes()))
        } else {
            hex::encode(Md5::digest(s.as_bytes()))
        }
    };
    let challenge = || {
        let mut h = HeaderMap::new();
        if sha256 {
            h.append(
                "www-authenticate",
                r#"Digest realm="atf", qop="auth", algorithm=SHA-256, nonce="n0nce-4711", opaque="0paque""#
                    .parse()
                    .unwrap(),
            );
        }
        h.append(
            "www-authenticate",
            r#"Digest realm="atf", qop="auth", nonce="n0nce-4711", opaque="0paque""#
                .parse()
                .unwrap(),
        );
        (StatusCode::UNAUTHORIZED, h, "who are you?").into_response()
    };
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return challenge();
    };
    let Some(params) = auth.strip_prefix("Digest ") else {
        return challenge();
    };
    let mut p = HashMap::new();
    for part in params.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            p.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let ha1 = md5(format!("{}:atf:d1gest-pa55", get("username")));
    let ha2 = md5(format!("GET:{}", get("uri")));
    let expected = md5(format!(
        "{ha1}:{}:{}:{}:{}:{ha2}",
        get("nonce"),
        get("nc"),
        get("cnonce"),
        get("qop")
    ));
    let algorithm_ok = !sha256 || get("algorithm").eq_ignore_ascii_case("SHA-256");
    if algorithm_ok
        && get("username") == "ada"
        && get("nonce") == "n0nce-4711"
        && get("response") == expected
    {
        axum::Json(
            json!({"user": get("username"), "uri": get("uri"), "algorithm": get("algorithm")}),
        )
        .into_response()
    } else {
        challenge()
    }
}

async fn multipart(mut form: axum::extract::Multipart) -> Response {
    use sha2::Digest as _;
    let mut parts = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().map(str::to_string);
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.unwrap_or_default();
        parts.push(json!({
            "name": name,
            "filename": file_name,
            "content_type": content_type,
            "text": String::from_utf8_lossy(&bytes),
            "size": bytes.len(),
            "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
        }));
    }
    axum::Json(json!({"parts": parts})).into_response()
}

async fn sha256(headers: HeaderMap, body: Bytes) -> Response {
    use sha2::Digest as _;
    axum::Json(json!({
        "size": body.len(),
        "sha256": hex::encode(sha2::Sha256::digest(&body)),
        "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
    }))
    .into_response()
}
