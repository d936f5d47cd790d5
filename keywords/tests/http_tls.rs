//! `http.request` over TLS: a server of this test binary with a certificate
//! of a private CA, which asks for (and checks) a client certificate, tried
//! with `insecure`, `cacert`, `cert` and `key`.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use atf_sdk::{Keyword, json};
use common::{call, env, runtime};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// PEM files: the CA, the server's certificate and key, a client's
/// certificate and key, and the client's certificate and key in one file.
struct Files {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_both: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "atf http test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server = params.signed_by(&server_key, &ca).expect("server cert");
        let client_key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "atf-client");
        let client = params.signed_by(&client_key, &ca).expect("client cert");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("http-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("folder");
        let f = Files {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            client_both: dir.join("client.pem"),
        };
        std::fs::write(&f.ca, ca.pem()).expect("write");
        std::fs::write(&f.server_cert, server.pem()).expect("write");
        std::fs::write(&f.server_key, server_key.serialize_pem()).expect("write");
        std::fs::write(&f.client_cert, client.pem()).expect("write");
        std::fs::write(&f.client_key, client_key.serialize_pem()).expect("write");
        std::fs::write(
            &f.client_both,
            format!("{}{}", client_key.serialize_pem(), client.pem()),
        )
        .expect("write");
        f
    })
}

/// An HTTPS server (HTTP/1.1, one response per connection) whose body says
/// whether the client showed a certificate of the CA.
fn server() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let f = files();
        let certs = CertificateDer::pem_file_iter(&f.server_cert)
            .expect("cert file")
            .collect::<Result<Vec<_>, _>>()
            .expect("cert");
        let key = PrivateKeyDer::from_pem_file(&f.server_key).expect("key");
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&f.ca).expect("CA file") {
            roots.add(ca.expect("CA")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server TLS config");
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
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = json!({"client_cert": client}).to_string();
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
    let ca = files().ca.to_string_lossy().into_owned();
    let r = call(&kw, json!({"url": url, "cacert": ca})).expect("cacert");
    assert_eq!(r["body"]["client_cert"], false, "{r:#}");
    assert_eq!(r["http_version"], "HTTP/1.1", "{r:#}");
}

#[test]
fn a_client_certificate_goes_with_its_key_or_in_one_file() {
    let port = server();
    let kw = http();
    let f = files();
    let url = format!("https://127.0.0.1:{port}/");
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
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
