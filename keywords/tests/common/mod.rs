//! Shared helpers of the service tests: one real tokio runtime, a small
//! [`Host`] whose `check` is subset equality, and checks that the services
//! answer (a test whose service is down fails and says how to start it).

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atf_keywords::Env;
use atf_sdk::{Call, Host, Keyword, KeywordResult, Value};
use serde_json::Map;

/// Runs `vu(0)` … `vu(n - 1)` as virtual users sharing the calling thread
/// (`atf_keywords::local::run_group`, as `atf load` runs them) and gives
/// what each returned, in VU order.
pub fn on_one_thread<T: Send>(n: usize, vu: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let got = std::sync::Mutex::new(Vec::new());
    let bodies: Vec<Box<dyn FnOnce() + Send + '_>> = (0..n)
        .map(|i| {
            let (vu, got) = (&vu, &got);
            Box::new(move || {
                let out = vu(i);
                got.lock().unwrap().push((i, out));
            }) as Box<dyn FnOnce() + Send + '_>
        })
        .collect();
    atf_keywords::local::run_group(bodies);
    let mut got = got.into_inner().unwrap();
    got.sort_by_key(|(i, _)| *i);
    got.into_iter().map(|(_, out)| out).collect()
}

/// The runtime shared by all tests of a binary, as the runner shares one per run.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// An `Env` with these `resources` (kind → name → settings).
pub fn env(resources: Value) -> Env {
    let resources: Map<String, Value> = match resources {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Env {
        runtime: runtime().handle().clone(),
        resources,
        policy: Default::default(),
    }
}

/// A host whose `check` treats each expectation as "the value at this
/// field (or `$.a.b` path) equals, or for objects contains, the expected one".
pub struct TestHost;

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.strip_prefix("$.").unwrap_or(path);
    let mut cur = v;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `expected` is equal to, or (for objects) a subset of, `actual`; numbers compare by value.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, bv)| a.get(k).is_some_and(|av| contains(av, bv))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| contains(x, y))
        }
        (a, b) => a == b,
    }
}

impl Host for TestHost {
    fn check(&self, actual: &Value, expect: &Value) -> Result<Vec<String>, String> {
        let Value::Object(expect) = expect else {
            return Err("expectations must be an object".into());
        };
        Ok(expect
            .iter()
            .filter_map(|(path, want)| match at(actual, path) {
                Some(got) if contains(got, want) => None,
                got => Some(format!("{path}: expected {want}, got {got:?}")),
            })
            .collect())
    }

    fn cancelled(&self) -> bool {
        false
    }
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Calls `kw` with `args`, a deadline `timeout` from now, the case start `case_start_ms`.
pub fn call_at(
    kw: &dyn Keyword,
    args: Value,
    timeout: Duration,
    case_start_ms: i64,
    base_dir: &Path,
) -> KeywordResult {
    let call = Call {
        args: &args,
        deadline: Instant::now() + timeout,
        case_start_ms,
        base_dir,
        host: &TestHost,
    };
    kw.call(&call)
}

/// Calls `kw` with `args`, a 20 s deadline, and a case that started now.
pub fn call(kw: &dyn Keyword, args: Value) -> KeywordResult {
    call_at(kw, args, Duration::from_secs(20), now_ms(), Path::new("."))
}

/// The keyword called `name` among `kws`.
pub fn find<'a>(kws: &'a [std::sync::Arc<dyn Keyword>], name: &str) -> &'a dyn Keyword {
    kws.iter()
        .find(|k| k.spec().name == name)
        .map(|k| k.as_ref())
        .unwrap_or_else(|| panic!("no keyword {name}"))
}

/// Fails the test, saying how to start the service, when nothing listens on `addr`.
pub fn require(service: &str, addr: &str) {
    let sock: SocketAddr = addr.parse().expect("address");
    if TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_err() {
        panic!(
            "{service} is not answering on {addr}: start the test services with \
             `scripts/services.sh` (from the repository root), then run the tests again"
        );
    }
}

/// A name unique to this test process and call: for tables, keys and topics.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        now_ms() % 100_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A test PKI made once per test binary: a CA, a server certificate it
/// signed for `localhost` and 127.0.0.1 and a client certificate, as PEM
/// files in a folder of the target directory.
pub struct Pki {
    /// The CA certificate (what a client is told to trust).
    pub ca: std::path::PathBuf,
    /// The server's certificate.
    pub cert: std::path::PathBuf,
    /// The server's private key.
    pub key: std::path::PathBuf,
    /// A client's certificate, signed by the CA.
    pub client_cert: std::path::PathBuf,
    /// The client's private key.
    pub client_key: std::path::PathBuf,
    /// The client's key and certificate in one file.
    pub client_both: std::path::PathBuf,
}

/// The test PKI of this test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "atf test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let client_key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, "atf-client");
        let client = params
            .signed_by(&client_key, &ca)
            .expect("client certificate");
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("PKI folder");
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            client_both: dir.join("client.pem"),
        };
        std::fs::write(&pki.ca, ca.pem()).expect("write CA");
        std::fs::write(&pki.cert, cert.pem()).expect("write certificate");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        std::fs::write(&pki.client_cert, client.pem()).expect("write client certificate");
        std::fs::write(&pki.client_key, client_key.serialize_pem()).expect("write client key");
        std::fs::write(
            &pki.client_both,
            format!("{}{}", client_key.serialize_pem(), client.pem()),
        )
        .expect("write client file");
        pki
    })
}

/// Starts a private server (`program` from `candidates`, the first that
/// exists) with `args` and waits until it accepts connections on `port`.
/// Panics, saying how to install it, when it cannot start or exits.
pub fn spawn_listening(
    candidates: &[&str],
    package: &str,
    args: &[&std::ffi::OsStr],
    port: u16,
) -> std::process::Child {
    let program = candidates
        .iter()
        .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
        .copied()
        .unwrap_or(candidates[candidates.len() - 1]);
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {program} ({e}): install it with `scripts/services.sh` \
                 (Debian package {package})"
            )
        });
    // Ready when it accepts connections (it exits at once on a bad config).
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{program} exited at start: {status}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("{program} did not listen on 127.0.0.1:{port}");
}
