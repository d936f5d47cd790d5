//! `pg.query` and `pg.exec`: PostgreSQL on one bounded connection pool per
//! resource.
//!
//! A resource of kind `pg` is a connection URL
//! (`postgres://user:password@host:5432/db?sslmode=require`, or libpq's
//! `key=value` form) or an object `{ "url": ..., "pool_max": N, "ca": file,
//! "insecure": bool }`. Without a `default` resource in the project file, `default` is
//! [`DEFAULT_URL`]. The pool of a resource is created on first use and shared
//! by every case; it holds at most `pool_max` connections (default
//! [`DEFAULT_POOL_MAX`]), so a run of any number of cases opens no more than
//! that. Connections say `application_name=atf` unless the URL names another.
//!
//! TLS is off unless the URL asks for it with `sslmode=prefer` or
//! `sslmode=require`; the server certificate is then checked against the
//! system's roots and the CA certificates of the PEM file `ca` (relative to
//! the folder atf runs in), or not at all with `"insecure": true`.
//!
//! `pg.query` prepares its statement once per connection (a small cache) and
//! binds `params` to `$1`, `$2`, … (see [`param`]); values come back as JSON
//! (see [`value`]). `pg.exec` sends a script in one round trip, which
//! PostgreSQL runs as one transaction; with `transaction: false` it runs the
//! statements one by one, each committing on its own (see [`script`]).

mod param;
mod script;
mod tls;
mod value;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use futures_util::StreamExt as _;
use serde_json::Map;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::Env;
use crate::mysql::resource_settings;

/// The connection URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The most connections one resource's pool opens, unless the resource says otherwise.
pub const DEFAULT_POOL_MAX: usize = 10;

/// Prepared statements kept per connection before the cache is emptied.
const STATEMENT_CACHE_MAX: usize = 256;

/// The specs of `pg.query` and `pg.exec`.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new(
            "pg.query",
            "Runs one SQL statement on PostgreSQL, with `$1`, `$2`, … bound to `params`, \
             and returns its rows.",
        )
        .required(
            "sql",
            "string",
            "the statement, e.g. \"SELECT * FROM orders WHERE id = $1\"",
        )
        .statement()
        .arg(
            "params",
            "array",
            "values for `$1`, `$2`, …, in order; always bound (never spliced into the text) \
             and parsed by the server as the type it infers for each placeholder",
        )
        .arg(
            "resource",
            "string",
            "the pg resource of the project file (default `default`)",
        )
        .result(
            "`rows` (list of objects keyed by column, in column order), `columns` (each \
             `name` and `type`), `row_count` (rows returned, or rows changed by INSERT, \
             UPDATE, DELETE). numeric is exact text, json/jsonb JSON, timestamps RFC 3339 \
             text, arrays lists, uuid text, bytea Base64",
        ),
        KeywordSpec::new(
            "pg.exec",
            "Runs a SQL script on PostgreSQL (statements given inline or as a .sql file), \
             in one transaction unless told otherwise.",
        )
        .arg("sql", "string", "statements separated by `;`")
        .statement()
        .arg(
            "file",
            "string",
            "a .sql script, relative to the case file (instead of `sql`)",
        )
        .arg(
            "transaction",
            "boolean",
            "true (default): all statements or none; false: each statement commits on its \
             own (for VACUUM, CREATE DATABASE, …)",
        )
        .arg(
            "resource",
            "string",
            "the pg resource of the project file (default `default`)",
        )
        .result("`affected_rows` (the sum over all statements) and `statements` (how many ran)"),
    ]
}

/// One pg resource: its pool and where it connects.
struct Resource {
    pool: Pool,
    /// `pg resource `name` (user@host:port/db)`, for messages (no password).
    label: String,
    /// The TLS connector, when the resource uses TLS (cancel requests need it too).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Resource {
    /// A pooled connection, within `deadline`.
    async fn client(
        &self,
        deadline: tokio::time::Instant,
        limit: Duration,
    ) -> Result<Object, KeywordError> {
        match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(r) => r.map_err(|e| connect_error(&self.label, e)),
            Err(_) => Err(self.timed_out(limit)),
        }
    }

    /// The error of a step whose time ran out.
    fn timed_out(&self, limit: Duration) -> KeywordError {
        KeywordError::timeout(format!(
            "{} did not answer within the step timeout ({} ms)",
            self.label,
            limit.as_millis()
        ))
    }

    /// Gives up on a connection whose statement outlived its step: asks the
    /// server to cancel the statement and takes the connection out of the
    /// pool (the next step gets a fresh one instead of waiting behind it).
    fn abandon(&self, client: Object) {
        let token = client.cancel_token();
        let tls = self.tls.clone();
        tokio::spawn(async move {
            let cancel = async {
                let _ = match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                };
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
        });
        drop(Object::take(client));
    }
}

/// The connection pools of the pg resources, shared by both keywords.
pub struct Pools {
    env: Env,
    pools: Mutex<HashMap<String, Arc<Resource>>>,
}

impl Pools {
    /// Pools for `env`'s pg resources; none is created yet.
    pub fn new(env: Env) -> Pools {
        Pools {
            env,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool of resource `name`, created on first use (connecting lazily).
    fn resource(&self, name: &str) -> Result<Arc<Resource>, KeywordError> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| KeywordError::new("pg pool table poisoned"))?;
        if let Some(found) = pools.get(name) {
            return Ok(found.clone());
        }
        let settings = resource_settings(&self.env, "pg", name, json!(DEFAULT_URL))?;
        let found = Arc::new(new_resource(name, &settings)?);
        pools.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Closes every pool; call before the runtime stops.
    pub fn shutdown(&self) {
        let pools: Vec<Arc<Resource>> = match self.pools.lock() {
            Ok(mut p) => p.drain().map(|(_, r)| r).collect(),
            Err(_) => return,
        };
        for r in pools {
            r.pool.close();
        }
    }
}

/// Settings of one resource, as the project file gives them.
struct Settings<'a> {
    url: &'a str,
    pool_max: usize,
    insecure: bool,
    ca: Option<&'a str>,
}

fn parse_settings<'a>(name: &str, settings: &'a Value) -> Result<Settings<'a>, KeywordError> {
    let bad = |what: String| KeywordError::new(format!("pg resource `{name}`: {what}"));
    match settings {
        Value::String(url) => Ok(Settings {
            url,
            pool_max: DEFAULT_POOL_MAX,
            insecure: false,
            ca: None,
        }),
        Value::Object(map) => {
            let mut out = Settings {
                url: "",
                pool_max: DEFAULT_POOL_MAX,
                insecure: false,
                ca: None,
            };
            let mut has_url = false;
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("url", Value::String(s)) => {
                        out.url = s;
                        has_url = true;
                    }
                    ("pool_max", v) => match v.as_u64() {
                        Some(n) if n >= 1 => out.pool_max = n as usize,
                        _ => {
                            return Err(bad(format!(
                                "pool_max must be a positive integer, got {v}"
                            )));
                        }
                    },
                    ("insecure", Value::Bool(b)) => out.insecure = *b,
                    ("ca", Value::String(s)) => out.ca = Some(s),
                    (other, v) => {
                        return Err(bad(format!(
                            "unexpected `{other}` ({}); known: url (string), pool_max \
                             (integer), ca (string), insecure (boolean)",
                            type_name(v)
                        )));
                    }
                }
            }
            if !has_url {
                return Err(bad("`url` is missing".into()));
            }
            Ok(out)
        }
        other => Err(bad(format!(
            "must be a URL string or an object with `url`, got {}",
            type_name(other)
        ))),
    }
}

fn new_resource(name: &str, settings: &Value) -> Result<Resource, KeywordError> {
    let bad = |what: String| KeywordError::new(format!("pg resource `{name}`: {what}"));
    let s = parse_settings(name, settings)?;
    // tokio-postgres's parse errors name the option, never echo the URL (which may hold a password).
    let mut config: tokio_postgres::Config = s
        .url
        .parse()
        .map_err(|e| bad(format!("invalid URL: {e}")))?;
    if !s.url.contains("sslmode") {
        config.ssl_mode(SslMode::Disable);
    }
    if config.get_application_name().is_none() {
        config.application_name("atf");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let label = format!(
        "pg resource `{name}` ({}@{host}:{port}/{})",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    );
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let tls = match config.get_ssl_mode() {
        SslMode::Disable => None,
        _ => Some(tls::connector(s.insecure, s.ca).map_err(bad)?),
    };
    let manager = match &tls {
        None => Manager::from_config(config, NoTls, manager_config),
        Some(tls) => Manager::from_config(config, tls.clone(), manager_config),
    };
    let pool = Pool::builder(manager)
        .max_size(s.pool_max)
        .build()
        .map_err(|e| bad(format!("cannot make its pool: {e}")))?;
    Ok(Resource { pool, label, tls })
}

/// An error and the errors it wraps, in words, each once.
fn chain(e: &dyn std::error::Error) -> String {
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

/// Where a statement's text came from, to place a server error's position in it.
struct Origin<'a> {
    text: &'a str,
    /// Lines before `text` in its script.
    line_offset: usize,
}

/// A driver error in words, keeping the server's own message and code
/// (`ERROR 42P01: relation "nope" does not exist (at line 1, column 15)`).
fn error_text(e: &tokio_postgres::Error, origin: Option<&Origin<'_>>) -> String {
    let Some(db) = e.as_db_error() else {
        return chain(e);
    };
    let mut msg = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let (Some(ErrorPosition::Original(p)), Some(o)) = (db.position(), origin) {
        let (line, col) = script::line_col(o.text, script::char_offset(o.text, *p as usize));
        msg.push_str(&format!(
            " (at line {}, column {col})",
            line + o.line_offset
        ));
    }
    if let Some(detail) = db.detail() {
        msg.push_str(&format!("; DETAIL: {detail}"));
    }
    if let Some(hint) = db.hint() {
        msg.push_str(&format!("; HINT: {hint}"));
    }
    if let Some(w) = db.where_() {
        msg.push_str(&format!("; CONTEXT: {w}"));
    }
    msg
}

fn connect_error(label: &str, e: PoolError) -> KeywordError {
    let text = match &e {
        PoolError::Backend(e) => error_text(e, None),
        other => other.to_string(),
    };
    KeywordError::new(format!("cannot connect to {label}: {text}"))
}

/// What `pg.query` read.
struct Rows {
    columns: Vec<Value>,
    rows: Vec<Value>,
    row_count: u64,
}

/// True for the errors a stale cached statement gives after the schema changed.
fn stale_statement(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::INVALID_SQL_STATEMENT_NAME
            || (*c == SqlState::FEATURE_NOT_SUPPORTED
                && e.as_db_error()
                    .is_some_and(|d| d.message().contains("cached plan")))
    })
}

/// Prepares (or takes from the cache) and runs `sql` once.
async fn query_once(
    client: &Object,
    sql: &str,
    params: &[param::Param<'_>],
) -> Result<Rows, tokio_postgres::Error> {
    if client.statement_cache.size() >= STATEMENT_CACHE_MAX {
        client.statement_cache.clear();
    }
    let stmt = client.prepare_cached(sql).await?;
    let stream = client.query_raw(&stmt, params.iter()).await?;
    let mut stream = std::pin::pin!(stream);
    let columns: Vec<Value> = stmt
        .columns()
        .iter()
        .map(|c| json!({ "name": c.name(), "type": c.type_().name() }))
        .collect();
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await {
        let row = row?;
        let mut obj = Map::with_capacity(stmt.columns().len());
        for (i, col) in stmt.columns().iter().enumerate() {
            let v = row.try_get::<_, value::PgValue>(i)?;
            obj.insert(col.name().to_string(), v.0);
        }
        rows.push(Value::Object(obj));
    }
    let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
    Ok(Rows {
        columns,
        rows,
        row_count,
    })
}

impl Pools {
    fn query(&self, c: &Call<'_>, sql: String, params: Vec<Value>) -> Result<Rows, KeywordError> {
        let res = self.resource(c.resource()?)?;
        let remaining = c.remaining();
        crate::run_on(&self.env.runtime, async move {
            let deadline = tokio::time::Instant::now() + remaining;
            let client = res.client(deadline, remaining).await?;
            let bound: Vec<param::Param<'_>> = params.iter().map(param::Param).collect();
            let origin = Origin {
                text: &sql,
                line_offset: 0,
            };
            let work = async {
                match query_once(&client, &sql, &bound).await {
                    Ok(rows) => Ok(rows),
                    Err(e) if stale_statement(&e) => {
                        // The schema changed under a cached statement: prepare it again, once.
                        client.statement_cache.remove(&sql, &[]);
                        query_once(&client, &sql, &bound).await
                    }
                    Err(e) => Err(e),
                }
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(r) => r.map_err(|e| KeywordError::new(error_text(&e, Some(&origin)))),
                Err(_) => {
                    res.abandon(client);
                    Err(res.timed_out(remaining))
                }
            }
        })
    }

    fn exec(
        &self,
        c: &Call<'_>,
        script: String,
        transaction: bool,
    ) -> Result<(u64, u64), KeywordError> {
        let res = self.resource(c.resource()?)?;
        let remaining = c.remaining();
        crate::run_on(&self.env.runtime, async move {
            let deadline = tokio::time::Instant::now() + remaining;
            let client = res.client(deadline, remaining).await?;
            let work = async {
                let mut affected = 0;
                let mut statements = 0;
                let mut count = |messages: Vec<SimpleQueryMessage>| {
                    for m in messages {
                        if let SimpleQueryMessage::CommandComplete(n) = m {
                            affected += n;
                            statements += 1;
                        }
                    }
                };
                if transaction {
                    // One Query message: PostgreSQL runs all its statements as one transaction.
                    let origin = Origin {
                        text: &script,
                        line_offset: 0,
                    };
                    let messages = client
                        .simple_query(&script)
                        .await
                        .map_err(|e| KeywordError::new(error_text(&e, Some(&origin))))?;
                    count(messages);
                } else {
                    for stmt in script::split(&script) {
                        let origin = Origin {
                            text: stmt.sql,
                            line_offset: stmt.line - 1,
                        };
                        let messages = client.simple_query(stmt.sql).await.map_err(|e| {
                            KeywordError::new(format!(
                                "statement at line {}: {}",
                                stmt.line,
                                error_text(&e, Some(&origin))
                            ))
                        })?;
                        count(messages);
                    }
                }
                Ok((affected, statements))
            };
            match tokio::time::timeout_at(deadline, work).await {
                Ok(r) => r,
                Err(_) => {
                    res.abandon(client);
                    Err(res.timed_out(remaining))
                }
            }
        })
    }
}

/// The `pg.query` keyword.
pub struct Query(Arc<Pools>);

/// The `pg.exec` keyword.
pub struct Exec(Arc<Pools>);

impl Keyword for Query {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(0)
    }

    /// It waits only in [`crate::run_on`] and holds no lock across it.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let sql = c.required_str("sql")?.to_string();
        let params = match c.arg("params") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `params` must be a list of values for $1, $2, …, got {}",
                    type_name(other)
                )));
            }
        };
        let out = self.0.query(c, sql, params)?;
        Ok(json!({
            "rows": out.rows,
            "columns": out.columns,
            "row_count": out.row_count,
        }))
    }
}

impl Keyword for Exec {
    fn spec(&self) -> KeywordSpec {
        specs().swap_remove(1)
    }

    /// It waits only in [`crate::run_on`] and holds no lock across it.
    fn cooperative(&self) -> bool {
        true
    }

    fn call(&self, c: &Call<'_>) -> KeywordResult {
        let script = match (c.str_arg("sql")?, c.str_arg("file")?) {
            (Some(_), Some(_)) => {
                return Err(KeywordError::new("give only one of `sql` and `file`"));
            }
            (Some(sql), None) => sql.to_string(),
            (None, Some(file)) => read_script(c.base_dir, file)?,
            (None, None) => return Err(KeywordError::new("argument `sql` or `file` is required")),
        };
        let transaction = c.bool_arg("transaction", true)?;
        if script::split(&script).is_empty() {
            return Ok(json!({ "affected_rows": 0, "statements": 0 }));
        }
        let (affected, statements) = self.0.exec(c, script, transaction)?;
        Ok(json!({ "affected_rows": affected, "statements": statements }))
    }
}

fn read_script(base_dir: &Path, file: &str) -> Result<String, KeywordError> {
    let path = base_dir.join(file);
    std::fs::read_to_string(&path)
        .map_err(|e| KeywordError::new(format!("cannot read {}: {e}", path.display())))
}

/// The pg keywords of a run, and the pools they share (for shutdown).
pub fn keywords(env: &Env) -> (Vec<Arc<dyn Keyword>>, Arc<Pools>) {
    let pools = Arc::new(Pools::new(env.clone()));
    (
        vec![
            Arc::new(Query(pools.clone())) as Arc<dyn Keyword>,
            Arc::new(Exec(pools.clone())),
        ],
        pools,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_a_url_or_an_object() {
        let v = json!("postgres://u@h/db");
        let s = parse_settings("default", &v).unwrap();
        assert_eq!(
            (s.url, s.pool_max, s.insecure),
            ("postgres://u@h/db", 10, false)
        );
        let v = json!({"url": "postgres://u@h/db", "pool_max": 3, "insecure": true});
        let s = parse_settings("x", &v).unwrap();
        assert_eq!((s.pool_max, s.insecure), (3, true));
        let e = parse_settings("x", &json!({"url": "u", "pool": 3}))
            .err()
            .unwrap();
        assert!(e.message.contains("unexpected `pool`"), "{e}");
        let e = parse_settings("x", &json!({"pool_max": 0})).err().unwrap();
        assert!(e.message.contains("pool_max"), "{e}");
        let e = parse_settings("x", &json!(5)).err().unwrap();
        assert!(e.message.contains("URL string"), "{e}");
    }

    #[test]
    fn a_bad_url_is_named_without_its_password() {
        let e = new_resource("db", &json!("postgres://u:s3cret@h:notaport/db"))
            .err()
            .unwrap();
        assert!(
            e.message.starts_with("pg resource `db`: invalid URL"),
            "{e}"
        );
        assert!(!e.message.contains("s3cret"), "{e}");
    }
}
