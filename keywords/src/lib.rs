//! The keywords every atf install has.
//!
//! Each is an [`atf_sdk::Keyword`], exactly like a plugin's: `core` holds
//! `assert`, `ctx.set`, `sleep`, `log` and `exec`; `http`, `mysql`, `redis`,
//! `kafka`, `mqtt`, `nats`, `grpc` and `ws` hold the service keywords. Service clients are created
//! lazily, once per resource of the project file, on the one tokio runtime
//! of the run, and shared by every case.

pub mod amqp;
pub mod core;
pub mod grpc;
pub mod http;
mod http_timing;
mod inbox;
pub mod kafka;
pub mod local;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod pg;
pub mod redis;
mod tls;
pub mod ws;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use atf_sdk::{Keyword, KeywordError, Value};
use serde_json::Map;

/// What the built-in keywords need from the run.
#[derive(Clone)]
pub struct Env {
    /// The run's tokio runtime; keywords `block_on` it from worker threads.
    pub runtime: tokio::runtime::Handle,
    /// The `resources` of the selected environment: kind (`http`, `mysql`,
    /// `redis`, `kafka`) → resource name → settings.
    pub resources: Map<String, Value>,
    /// What the project allows and how much is kept in memory.
    pub policy: Policy,
}

/// What the project file allows the built-in keywords, and their size caps.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Whether `exec` may run programs (`"allow": {"exec": false}` says no).
    pub exec: bool,
    /// The bytes of a response body, or of a program's output, kept in memory.
    pub body_bytes: usize,
    /// Where a larger response body is written (the report folder); with
    /// none, such a body is an error.
    pub spill_dir: Option<PathBuf>,
    /// The folders that file arguments (`mysql.exec`'s `file`) may read;
    /// `None` for anywhere.
    pub roots: Option<Vec<PathBuf>>,
}

/// 16 MiB: the default cap of a body kept in memory.
pub const DEFAULT_BODY_BYTES: usize = 16 * 1024 * 1024;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            exec: true,
            body_bytes: DEFAULT_BODY_BYTES,
            spill_dir: None,
            roots: None,
        }
    }
}

impl Policy {
    /// `path`, made absolute, when it is inside one of the allowed roots
    /// (links followed); an error naming the roots when it is not.
    pub fn check_path(&self, path: &Path) -> Result<PathBuf, KeywordError> {
        let Some(roots) = &self.roots else {
            return Ok(path.to_path_buf());
        };
        inside_roots(path, roots).map_err(KeywordError::new)
    }
}

/// `path` with links resolved, when it lies inside one of `roots`; else an
/// error that says which folders are allowed and how to allow more.
pub fn inside_roots(path: &Path, roots: &[PathBuf]) -> Result<PathBuf, String> {
    let real = std::fs::canonicalize(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let inside = roots.iter().any(|root| {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        real.starts_with(&root)
    });
    if inside {
        Ok(real)
    } else {
        let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        Err(format!(
            "`{}` is outside the project (allowed: {}); list its folder in the project file's \"allow\": {{\"paths\": [...]}} to read it",
            path.display(),
            shown.join(", ")
        ))
    }
}

/// A response body read with a cap on what is kept in memory.
#[derive(Debug, PartialEq)]
pub enum Body {
    /// The whole body, at most the cap.
    Memory(Vec<u8>),
    /// A body larger than the cap, written to a file.
    File {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
}

/// A body that arrives in chunks (a `reqwest::Response`).
pub trait Chunks {
    /// The next chunk, or `None` at the end.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<bytes::Bytes>, String>> + Send;
}

impl Chunks for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
        self.chunk().await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        })
    }
}

/// Reads a body to its end, keeping at most `policy.body_bytes` in
/// memory: a larger body streams to a new file under
/// `policy.spill_dir/bodies/`, or is an error when there is no such
/// folder. `what` names the body in messages.
pub async fn read_capped(
    body: &mut impl Chunks,
    policy: &Policy,
    what: &(dyn std::fmt::Display + Sync),
) -> Result<Body, KeywordError> {
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<(std::io::BufWriter<std::fs::File>, PathBuf)> = None;
    let mut total: u64 = 0;
    while let Some(chunk) = body
        .next_chunk()
        .await
        .map_err(|e| KeywordError::new(format!("reading {what}: {e}")))?
    {
        let chunk = chunk.as_ref();
        total += chunk.len() as u64;
        if let Some((out, path)) = &mut file {
            out.write_all(chunk).map_err(|e| {
                KeywordError::new(format!("cannot write {what} to {}: {e}", path.display()))
            })?;
            continue;
        }
        if memory.len() + chunk.len() <= policy.body_bytes {
            memory.extend_from_slice(chunk);
            continue;
        }
        let Some(dir) = &policy.spill_dir else {
            return Err(KeywordError::new(format!(
                "{what} is larger than {} bytes, the most kept in memory (\"limits\": {{\"body\": ...}} in the project file)",
                policy.body_bytes
            )));
        };
        let (mut out, path) = spill_file(dir)
            .map_err(|e| KeywordError::new(format!("cannot write {what} to a file: {e}")))?;
        out.write_all(&memory)
            .and_then(|()| out.write_all(chunk))
            .map_err(|e| {
                KeywordError::new(format!("cannot write {what} to {}: {e}", path.display()))
            })?;
        memory = Vec::new();
        file = Some((out, path));
    }
    match file {
        None => Ok(Body::Memory(memory)),
        Some((mut out, path)) => {
            out.flush().map_err(|e| {
                KeywordError::new(format!("cannot write {what} to {}: {e}", path.display()))
            })?;
            Ok(Body::File { path, bytes: total })
        }
    }
}

/// A new file under `dir/bodies/`.
fn spill_file(dir: &Path) -> std::io::Result<(std::io::BufWriter<std::fs::File>, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let folder = dir.join("bodies");
    std::fs::create_dir_all(&folder)?;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = folder.join(format!("body-{}-{n}.bin", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((std::io::BufWriter::new(f), path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

impl Env {
    /// The settings of resource `name` of `kind`, if the project file has it.
    pub fn resource(&self, kind: &str, name: &str) -> Option<&Value> {
        self.resources.get(kind)?.get(name)
    }

    /// The names of the resources of `kind`, for error messages.
    pub fn resource_names(&self, kind: &str) -> Vec<String> {
        self.resources
            .get(kind)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Runs `fut` as a task of the run's runtime and waits for it on this
/// (non-runtime) thread; a virtual user's coroutine
/// ([`local::run_group`]) is suspended instead while it runs.
///
/// Polling the whole request on a runtime worker keeps it on the same
/// thread as the connection task it talks to, so one step costs two thread
/// wake-ups (start, finish) instead of one per message between them: the
/// runner's CPU per HTTP step drops by about a third.
pub fn run_on<F, T>(rt: &tokio::runtime::Handle, fut: F) -> Result<T, atf_sdk::KeywordError>
where
    F: std::future::Future<Output = Result<T, atf_sdk::KeywordError>> + Send + 'static,
    T: Send + 'static,
{
    match wait_here(rt, rt.spawn(fut)) {
        Ok(out) => out,
        Err(e) if e.is_panic() => Err(atf_sdk::KeywordError::new("the keyword's task panicked")),
        Err(_) => Err(atf_sdk::KeywordError::new(
            "the keyword's task was cancelled",
        )),
    }
}

/// Waits for `fut` where the calling keyword runs: a virtual user's
/// coroutine is suspended ([`local::block_on_own`]), any other thread
/// blocks on `rt` (it must not be one of a runtime's). `fut` is polled on
/// a runtime either way, so its timers work.
pub(crate) fn wait_here<F: std::future::Future>(rt: &tokio::runtime::Handle, fut: F) -> F::Output {
    match local::block_on_own(fut) {
        Ok(out) => out,
        Err(fut) => rt.block_on(fut),
    }
}

/// The built-in keywords of a run, and what must happen before the runtime stops.
pub struct Builtins {
    /// Every built-in keyword.
    pub keywords: Vec<Arc<dyn Keyword>>,
    shutdown: Vec<Box<dyn FnOnce() + Send>>,
}

impl Builtins {
    /// Closes pools and flushes producers; call before dropping the runtime.
    pub fn shutdown(self) {
        for f in self.shutdown {
            f();
        }
    }
}

/// Creates the built-in keywords for a run. Nothing connects yet: clients
/// are made on first use.
pub fn builtins(env: &Env) -> Builtins {
    let mut keywords: Vec<Arc<dyn Keyword>> = core::keywords(env);
    let http = Arc::new(http::Http::new(env.clone()));
    keywords.push(http);
    let mut shutdown: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let (mysql, pools) = mysql::keywords(env);
    keywords.extend(mysql);
    shutdown.push(Box::new(move || pools.shutdown()));
    keywords.push(Arc::new(redis::Redis::new(env.clone())));
    let (kafka, clients) = kafka::keywords(env);
    keywords.extend(kafka);
    shutdown.push(Box::new(move || clients.shutdown()));
    let (pg, pg_pools) = pg::keywords(env);
    keywords.extend(pg);
    shutdown.push(Box::new(move || pg_pools.shutdown()));
    let (amqp, amqp_clients) = amqp::keywords(env);
    keywords.extend(amqp);
    shutdown.push(Box::new(move || amqp_clients.shutdown()));
    let (mqtt, clients) = mqtt::keywords(env);
    keywords.extend(mqtt);
    shutdown.push(Box::new(move || clients.shutdown()));
    let (nats, clients) = nats::keywords(env);
    keywords.extend(nats);
    shutdown.push(Box::new(move || clients.shutdown()));
    keywords.push(Arc::new(grpc::Grpc::new(env.clone())));
    let (ws, conns) = ws::keywords(env);
    keywords.extend(ws);
    shutdown.push(Box::new(move || conns.shutdown()));
    Builtins { keywords, shutdown }
}

/// The specs of every built-in keyword, without a runtime (for `atf keywords`
/// and `atf schema`).
pub fn specs() -> Vec<atf_sdk::KeywordSpec> {
    let mut specs: Vec<atf_sdk::KeywordSpec> = core::specs();
    specs.push(http::spec());
    specs.extend(mysql::specs());
    specs.push(redis::spec());
    specs.extend(kafka::specs());
    specs.extend(pg::specs());
    specs.extend(amqp::specs());
    specs.extend(mqtt::specs());
    specs.extend(nats::specs());
    specs.push(grpc::spec());
    specs.extend(ws::specs());
    specs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Parts(VecDeque<&'static [u8]>);

    impl Chunks for Parts {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
            Ok(self.0.pop_front().map(bytes::Bytes::from_static))
        }
    }

    fn parts(p: &[&'static [u8]]) -> Parts {
        Parts(p.iter().copied().collect())
    }

    fn read(p: &[&'static [u8]], policy: &Policy) -> Result<Body, KeywordError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(read_capped(&mut parts(p), policy, &"the body"))
    }

    #[test]
    fn bodies_up_to_the_cap_stay_in_memory_larger_ones_go_to_a_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = Policy {
            body_bytes: 6,
            spill_dir: Some(dir.path().to_path_buf()),
            ..Policy::default()
        };
        assert_eq!(
            read(&[b"abc", b"def"], &policy),
            Ok(Body::Memory(b"abcdef".to_vec()))
        );
        match read(&[b"abc", b"def", b"g", b"hij"], &policy) {
            Ok(Body::File { path, bytes }) => {
                assert_eq!(bytes, 10);
                assert!(path.starts_with(dir.path().join("bodies")), "{path:?}");
                assert_eq!(std::fs::read(&path).expect("the file"), b"abcdefghij");
            }
            other => panic!("{other:?}"),
        }
        let no_folder = Policy {
            body_bytes: 2,
            ..Policy::default()
        };
        let err = read(&[b"abc"], &no_folder).unwrap_err().message;
        assert!(
            err.contains("the body is larger than 2 bytes") && err.contains("limits"),
            "{err}"
        );
    }

    #[test]
    fn paths_outside_the_roots_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("in")).expect("mkdir");
        std::fs::write(dir.path().join("in/a.sql"), "select 1").expect("write");
        std::fs::write(dir.path().join("b.sql"), "select 2").expect("write");
        let policy = Policy {
            roots: Some(vec![dir.path().join("in")]),
            ..Policy::default()
        };
        assert!(policy.check_path(&dir.path().join("in/a.sql")).is_ok());
        let err = policy
            .check_path(&dir.path().join("in/../b.sql"))
            .unwrap_err()
            .message;
        assert!(err.contains("outside the project"), "{err}");
        assert!(
            Policy::default()
                .check_path(&dir.path().join("b.sql"))
                .is_ok()
        );
    }
}
