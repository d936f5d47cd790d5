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
mod inbox;
pub mod kafka;
pub mod mqtt;
pub mod mysql;
pub mod pg;
pub mod nats;
pub mod redis;
pub mod ws;

use std::sync::Arc;

use atf_sdk::{Keyword, Value};
use serde_json::Map;

/// What the built-in keywords need from the run.
#[derive(Clone)]
pub struct Env {
    /// The run's tokio runtime; keywords `block_on` it from worker threads.
    pub runtime: tokio::runtime::Handle,
    /// The `resources` of the selected environment: kind (`http`, `mysql`,
    /// `redis`, `kafka`) → resource name → settings.
    pub resources: Map<String, Value>,
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
/// (non-runtime) thread.
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
    match rt.block_on(rt.spawn(fut)) {
        Ok(out) => out,
        Err(e) if e.is_panic() => Err(atf_sdk::KeywordError::new("the keyword's task panicked")),
        Err(_) => Err(atf_sdk::KeywordError::new(
            "the keyword's task was cancelled",
        )),
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
