//! `http.request` over TLS: a server of this test binary with a certificate
//! of the test CA, which asks for (and checks) a client certificate, tried
//! with `insecure`, `cacert`, `cert` and `key`; HTTP/2 chosen by ALPN; the
//! timings of a TLS connection; HTTPS through a tunnelling proxy.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use atf_sdk::{Keyword, json};
use common::{call, env, runtime};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An HTTPS server with a certificate of the test CA (see [`common::pki`])
/// that asks for (and checks) a client certificate and offers HTTP/2 and
/// HTTP/1.1 by ALPN; its body says whether the client showed a certificate
/// of the CA and which version it spoke. HTTP/1.1 answers one request per
/// connection.
fn server() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let pki = common::pki();
        let certs = CertificateDer::pem_file_iter(&pki.cert)
            .expect("cert file")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert");
        let key = PrivateKeyDer::from_pem_file(&pki.key).expect("key");
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&pki.ca).expect("CA file") {
            roots.add(ca.expect("CA")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .expect("client verifier");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server TLS config");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        runtime().spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client = tls.get_ref().1.peer_certificates().is_some();
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let Ok(mut h2) = h2::server::handshake(tls).await else {
                            return;
                        };
                        while let Some(Ok((_request, mut respond))) = h2.accept().await {
                            let body = json!({"client_cert": client, "version": "HTTP/2"}).to_string();
                            let response = http::Response::builder()
                                .status(200)
                                .header("content-type", "application/json")
                                .body(())
                                .expect("response");
                            if let Ok(mut send) = respond.send_response(response, false) {
                                let _ = send.send_data(bytes::Bytes::from(body), true);
                            }
                        }
                        return;
                    }
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = json!({"client_cert": client, "version": "HTTP/1.1"}).to_string();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    })
}

fn http() -> atf_keywords::http::Http {
    atf_keywords::http::Http::new(env(json!({})))
}

#[test]
fn a_private_ca_is_refused_until_trusted_or_insecure() {
    let port = server();
    let kw = http();
    let url = format!("https://localhost:{port}/");
    let err = call(&kw, json!({"url": url})).expect_err("an unknown CA must fail");
    assert!(
        err.message.contains("certificate") || err.message.contains("issuer"),
        "{}",
        err.message
    );
    let r = call(&kw, json!({"url": url, "insecure": true})).expect("insecure");
    assert_eq!(r["status"], 200, "{r:#}");
    assert_eq!(r["body"]["client_cert"], false, "{r:#}");
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let r = call(
        &kw,
        json!({"url": url, "cacert": ca, "http_version": "1.1"}),
    )
    .expect("cacert");
    assert_eq!(r["body"]["client_cert"], false, "{r:#}");
    assert_eq!(r["http_version"], "HTTP/1.1", "{r:#}");
}

#[test]
fn a_client_certificate_goes_with_its_key_or_in_one_file() {
    let port = server();
    let kw = http();
    let f = common::pki();
    let url = format!("https://127.0.0.1:{port}/");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let r = call(
        &kw,
        json!({"url": url, "cacert": path(&f.ca), "cert": path(&f.client_cert), "key": path(&f.client_key)}),
    )
    .expect("cert and key");
    assert_eq!(r["body"]["client_cert"], true, "{r:#}");
    let r = call(
        &kw,
        json!({"url": url, "cacert": path(&f.ca), "cert": path(&f.client_both)}),
    )
    .expect("one file");
    assert_eq!(r["body"]["client_cert"], true, "{r:#}");
    let err = call(
        &kw,
        json!({"url": url, "cacert": path(&f.ca), "key": path(&f.client_key)}),
    )
    .expect_err("a key alone");
    assert!(
        err.message.contains("`key` needs `cert`"),
        "{}",
        err.message
    );
    let err = call(
        &kw,
        json!({"url": url, "cacert": path(&f.ca), "cert": path(&f.client_cert)}),
    )
    .expect_err("a certificate without its key");
    assert!(
        err.message.contains("client certificate"),
        "{}",
        err.message
    );
    // The keyword is still usable.
    let r = call(&kw, json!({"url": url, "cacert": path(&f.ca)})).expect("cacert");
    assert_eq!(r["status"], 200);
    let _ = kw.spec();
}

#[test]
fn http2_is_chosen_by_alpn_and_the_tls_handshake_is_timed() {
    let port = server();
    let kw = http();
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let url = format!("https://localhost:{port}/");
    let r = call(&kw, json!({"url": url, "cacert": ca})).expect("h2");
    assert_eq!(r["http_version"], "HTTP/2", "{r:#}");
    assert_eq!(r["body"]["version"], "HTTP/2", "{r:#}");
    let t = &r["timings"];
    let ms = |k: &str| t[k].as_f64().unwrap_or_else(|| panic!("{k}: {t:#}"));
    // A new connection: a name to look up, a TCP connection, a handshake.
    for k in [
        "dns_ms",
        "connect_ms",
        "tls_ms",
        "first_byte_ms",
        "total_ms",
    ] {
        assert!(ms(k) > 0.0, "{k}: {t:#}");
    }
    assert!(ms("first_byte_ms") <= ms("total_ms"), "{t:#}");
    assert!(
        ms("dns_ms") + ms("connect_ms") + ms("tls_ms") <= ms("first_byte_ms"),
        "the phases come before the first byte: {t:#}"
    );
    // The HTTP/2 connection is kept: nothing to open the second time.
    let r = call(&kw, json!({"url": url, "cacert": ca})).expect("h2 again");
    assert_eq!(r["http_version"], "HTTP/2", "{r:#}");
    for k in ["dns_ms", "connect_ms", "tls_ms"] {
        assert_eq!(r["timings"][k], 0.0, "{k}: {r:#}");
    }
    // HTTP/1.1 asked for: ALPN offers only it.
    let r = call(
        &kw,
        json!({"url": url, "cacert": ca, "http_version": "1.1"}),
    )
    .expect("1.1");
    assert_eq!(r["http_version"], "HTTP/1.1", "{r:#}");
    assert_eq!(r["body"]["version"], "HTTP/1.1", "{r:#}");
}

/// A forward proxy of this test binary that only tunnels: `CONNECT
/// host:port` with `Proxy-Authorization: Basic dTpw` (`u:p`) gets `200` and
/// the bytes relayed both ways; without the credentials, `407`. Every
/// request line it reads goes into the list it returns.
fn tunnel_proxy() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind proxy");
    let port = listener.local_addr().expect("address").port();
    let log = seen.clone();
    runtime().spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
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
                let line = text.lines().next().unwrap_or_default().to_string();
                log.lock().expect("proxy log").push(line.clone());
                let authorized = text
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case("proxy-authorization: basic dTpw"));
                let target = match line.strip_prefix("CONNECT ") {
                    Some(rest) => rest.split(' ').next().unwrap_or_default().to_string(),
                    None => {
                        let _ = client
                            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    }
                };
                if !authorized {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"t\"\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target.as_str()).await else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

#[test]
fn https_goes_through_a_proxy_tunnel_with_the_proxy_credentials() {
    let port = server();
    let (proxy, seen) = tunnel_proxy();
    let kw = http();
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let url = format!("https://localhost:{port}/");
    let r = call(
        &kw,
        json!({"url": url, "cacert": ca, "proxy": format!("http://u:p@127.0.0.1:{proxy}")}),
    )
    .expect("through the tunnel");
    assert_eq!(r["status"], 200, "{r:#}");
    assert_eq!(r["http_version"], "HTTP/2", "{r:#}");
    assert_eq!(
        seen.lock().expect("proxy log").as_slice(),
        [format!("CONNECT localhost:{port} HTTP/1.1")],
        "the proxy saw one tunnel to the server's name and port, and nothing in clear"
    );
    // The server's certificate is still checked end to end through the tunnel.
    let err = call(
        &kw,
        json!({"url": url, "proxy": format!("http://u:p@127.0.0.1:{proxy}")}),
    )
    .expect_err("an untrusted certificate behind a proxy");
    assert!(
        err.message.contains("certificate") || err.message.contains("issuer"),
        "{}",
        err.message
    );
    // A proxy that wants credentials and gets none: the step fails and says so.
    let err = call(
        &kw,
        json!({"url": url, "cacert": ca, "proxy": format!("http://127.0.0.1:{proxy}")}),
    )
    .expect_err("no proxy credentials");
    assert!(
        err.message.contains("407") || err.message.to_lowercase().contains("proxy"),
        "{}",
        err.message
    );
}
