//! `redis.command`: one Redis command on a shared connection per resource.
//!
//! A resource of kind `redis` is a URL string (`redis://:pass@host:6379/0`,
//! `?protocol=resp3` for RESP3 replies such as maps, doubles and booleans) or
//! an object `{ "url": ... }`. Without a `default` resource in the project
//! file, `default` is `redis://127.0.0.1:6379/0`. Each resource has one
//! multiplexed [`ConnectionManager`], made on first use, shared by every case
//! and reconnected when the connection drops. Blocking commands (`BLPOP`,
//! `XREAD ... BLOCK`, `WAIT`, ...) would stall that shared connection for
//! every case, so they run on a few dedicated connections instead, kept for
//! reuse and closed when a step is cut short (which unblocks the server).
//!
//! Replies become JSON: nil → null, integers and doubles → numbers, simple
//! and bulk strings → text (bytes that are not UTF-8 → base64), arrays and
//! sets → lists, maps → objects, booleans → booleans; an error reply fails the
//! step with the server's message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use base64::Engine as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use serde_json::Map;

use crate::Env;
use crate::mysql::resource_settings;

/// The URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";

/// The spec of `redis.command`.
pub fn spec() -> KeywordSpec {
    KeywordSpec::new(
        "redis.command",
        "Sends one Redis command and returns its reply.",
    )
    .required(
        "cmd",
        "array",
        "the command and its arguments, e.g. [\"HSET\", \"k\", \"f\", \"v\"]; numbers are \
             sent as text, objects and arrays as JSON text",
    )
    .arg(
        "resource",
        "string",
        "the redis resource of the project file (default `default`)",
    )
    .result(
        "`value`: the reply (nil → null, integers and doubles → numbers, strings → text, \
             arrays → lists, maps → objects, booleans)",
    )
}

/// Dedicated connections kept per resource for blocking commands.
const MAX_IDLE_BLOCKING: usize = 4;

/// The connections of one resource.
struct Resource {
    client: redis::Client,
    /// Shared by all cases for ordinary commands.
    shared: ConnectionManager,
    /// Idle dedicated connections for blocking commands.
    blocking: Mutex<Vec<MultiplexedConnection>>,
    /// `redis resource `name` (host:port)`, for messages (no password).
    label: String,
}

/// The `redis.command` keyword with its connections.
pub struct Redis {
    env: Env,
    resources: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Redis {
    /// A keyword that will connect to `env`'s redis resources on first use.
    pub fn new(env: Env) -> Redis {
        Redis {
            env,
            resources: Mutex::new(HashMap::new()),
        }
    }

    fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut resources = self
            .resources
            .lock()
            .map_err(|_| KeywordError::new("redis connection table poisoned"))?;
        if let Some(found) = resources.get(name) {
            return Ok(found.clone());
        }
        let bad = |what: String| KeywordError::new(format!("redis resource `{name}`: {what}"));
        let url = match resource_settings(&self.env, "redis", name, json!(DEFAULT_URL))? {
            Value::String(url) => url,
            Value::Object(map) => match map.get("url") {
                Some(Value::String(url)) if map.len() == 1 => url.clone(),
                _ => return Err(bad("an object resource holds only `url` (a string)".into())),
            },
            other => {
                return Err(bad(format!(
                    "must be a URL string such as \"{DEFAULT_URL}\", got {}",
                    type_name(&other)
                )));
            }
        };
        // The URL may hold a password: never echo it.
        let client =
            redis::Client::open(url.as_str()).map_err(|e| bad(format!("invalid URL: {e}")))?;
        let addr = match client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            redis::ConnectionAddr::Unix(path) => path.display().to_string(),
            _ => "?".into(),
        };
        let config = ConnectionManagerConfig::new()
            // Steps have their own deadline; a blocking command may wait that long.
            .set_response_timeout(None)
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1);
        let _guard = self.env.runtime.enter();
        let shared = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| bad(error_text(&e)))?;
        let found = Arc::new(Resource {
            client,
            shared,
            blocking: Mutex::new(Vec::new()),
            label: format!("redis resource `{name}` ({addr})"),
        });
        resources.insert(name.to_string(), found.clone());
        Ok(found)
    }
}

/// True for commands that may make the server wait before it replies.
fn is_blocking(parts: &[String]) -> bool {
    let name = parts[0].to_ascii_uppercase();
    match name.as_str() {
        "BLPOP" | "BRPOP" | "BRPOPLPUSH" | "BLMOVE" | "BLMPOP" | "BZPOPMIN" | "BZPOPMAX"
        | "BZMPOP" | "WAIT" | "WAITAOF" => true,
        "XREAD" | "XREADGROUP" => parts[1..].iter().any(|p| p.eq_ignore_ascii_case("BLOCK")),
        _ => false,
    }
}

impl Resource {
    /// Runs `cmd` within `limit`: blocking commands on a dedicated connection.
    async fn run(
        &self,
        cmd: redis::Cmd,
        blocking: bool,
        limit: Duration,
    ) -> Result<redis::Value, KeywordError> {
        let timed_out = || {
            KeywordError::new(format!(
                "{} did not answer within the step timeout ({} ms)",
                self.label,
                limit.as_millis()
            ))
        };
        let failed = |e: redis::RedisError| {
            if is_server_error(&e) {
                KeywordError::new(error_text(&e))
            } else {
                KeywordError::new(format!("{}: {}", self.label, error_text(&e)))
            }
        };
        if !blocking {
            let mut conn = self.shared.clone();
            return match tokio::time::timeout(limit, cmd.query_async::<redis::Value>(&mut conn))
                .await
            {
                Ok(result) => result.map_err(failed),
                Err(_) => Err(timed_out()),
            };
        }
        let idle = self.blocking.lock().ok().and_then(|mut idle| idle.pop());
        let work = async {
            let mut conn = match idle {
                Some(conn) => conn,
                None => {
                    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
                    self.client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .map_err(failed)?
                }
            };
            let reply = cmd.query_async::<redis::Value>(&mut conn).await;
            Ok::<_, KeywordError>((conn, reply))
        };
        // Cut short, the connection is dropped: closing it unblocks the server.
        let (conn, reply) = tokio::time::timeout(limit, work)
            .await
            .map_err(|_| timed_out())??;
        match reply {
            Ok(v) => {
                if let Ok(mut idle) = self.blocking.lock()
                    && idle.len() < MAX_IDLE_BLOCKING
                {
                    idle.push(conn);
                }
                Ok(v)
            }
            Err(e) => Err(failed(e)),
        }
    }
}

/// One argument of `cmd` as the text Redis receives.
fn arg_text(i: usize, v: &Value) -> Result<String, KeywordError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(KeywordError::new(format!(
            "`cmd[{i}]` is null: Redis arguments are text or numbers"
        ))),
        other => Ok(other.to_string()),
    }
}

/// True when the server sent this error as its reply (as opposed to a connection problem).
fn is_server_error(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// A Redis error in words: the server's own (`WRONGTYPE Operation against ...`), or the client's.
fn error_text(e: &redis::RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) if is_server_error(e) => {
            format!("{code} {detail}")
        }
        _ => {
            use std::error::Error;
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
    }
}

fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
    }
}

fn key_text(v: &redis::Value) -> Result<String, KeywordError> {
    Ok(match reply_json(v)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// Converts a reply to JSON; an error reply anywhere in it is the step's error.
pub fn reply_json(v: &redis::Value) -> Result<Value, KeywordError> {
    use redis::Value as R;
    Ok(match v {
        R::Nil => Value::Null,
        R::Int(i) => json!(i),
        R::BulkString(b) => bytes_json(b),
        R::SimpleString(s) => Value::String(s.clone()),
        R::Okay => Value::String("OK".into()),
        R::Array(items) | R::Set(items) => {
            Value::Array(items.iter().map(reply_json).collect::<Result<_, _>>()?)
        }
        R::Push { data, .. } => {
            Value::Array(data.iter().map(reply_json).collect::<Result<_, _>>()?)
        }
        R::Map(pairs) => {
            let mut obj = Map::new();
            for (k, v) in pairs {
                obj.insert(key_text(k)?, reply_json(v)?);
            }
            Value::Object(obj)
        }
        R::Attribute { data, .. } => reply_json(data)?,
        R::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => Value::Number(n),
            None => Value::String(d.to_string()),
        },
        R::Boolean(b) => Value::Bool(*b),
        R::VerbatimString { text, .. } => Value::String(text.clone()),
        R::BigNumber(n) => Value::String(n.to_string()),
        R::ServerError(e) => {
            let detail = e.details().unwrap_or_default();
            return Err(KeywordError::new(
                format!("{} {detail}", e.code()).trim().to_string(),
            ));
        }
        // Replies added by later protocol versions.
        #[allow(unreachable_patterns)]
        other => Value::String(format!("{other:?}")),
    })
}

impl Keyword for Redis {
    fn spec(&self) -> KeywordSpec {
        spec()
    }

    /// It waits only in [`crate::run_on`] and holds no lock across it.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let parts = match c.arg("cmd") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| arg_text(i, v))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => {
                return Err(KeywordError::new(
                    "`cmd` is empty: give the command name first",
                ));
            }
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `cmd` must be a list such as [\"GET\", \"key\"], got {}",
                    type_name(other)
                )));
            }
            None => return Err(KeywordError::new("argument `cmd` is required")),
        };
        let resource = self.resource(c.resource()?)?;
        let blocking = is_blocking(&parts);
        let mut cmd = redis::cmd(&parts[0]);
        for p in &parts[1..] {
            cmd.arg(p);
        }
        let limit = c.remaining();
        let reply = crate::run_on(&self.env.runtime, async move {
            resource.run(cmd, blocking, limit).await
        })?;
        Ok(json!({ "value": reply_json(&reply)? }))
    }
}
