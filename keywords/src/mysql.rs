//! `mysql.query` and `mysql.exec`: SQL on one bounded connection pool per
//! resource.
//!
//! A resource of kind `mysql` is a URL string
//! (`mysql://user:pass@host:3306/db`) or an object
//! `{ "url": ..., "pool_max": N }`. Without a `default` resource in the
//! project file, `default` is `mysql://root@127.0.0.1:3306/test`. The pool of
//! a resource is created on first use and shared by every case; it holds at
//! most `pool_max` connections (default [`DEFAULT_POOL_MAX`], or the URL's own
//! `pool_max`), so a run of any number of cases opens no more than that. TCP
//! URLs stay on TCP (`prefer_socket=false` unless the URL says otherwise).
//!
//! `params` are always sent as bound parameters of a prepared statement,
//! never spliced into the SQL text. Values come back as JSON: integers as
//! numbers, DECIMAL as exact text, FLOAT/DOUBLE as numbers, dates and times as
//! text in MySQL's own format, NULL as null, text as strings and binary
//! columns (charset 63) as base64.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use atf_sdk::{Call, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json, type_name};
use base64::Engine as _;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Opts, OptsBuilder, Pool, PoolConstraints, Row};
use serde_json::Map;

use crate::Env;

/// The connection URL of the `default` resource when the project file has none.
pub const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The most connections one resource's pool opens, unless the resource says otherwise.
pub const DEFAULT_POOL_MAX: usize = 10;

/// The charset number MySQL gives binary strings and blobs.
const BINARY_CHARSET: u16 = 63;

/// The specs of `mysql.query` and `mysql.exec`.
pub fn specs() -> Vec<KeywordSpec> {
    vec![
        KeywordSpec::new(
            "mysql.query",
            "Runs one SQL statement, with `?` parameters bound, and returns its rows.",
        )
        .required(
            "sql",
            "string",
            "the statement, e.g. \"SELECT * FROM t WHERE id = ?\"",
        )
        .statement()
        .arg(
            "params",
            "array",
            "values for the `?` placeholders, in order; always bound, never spliced into the text",
        )
        .arg(
            "multi",
            "boolean",
            "run several statements separated by `;` (default false: one statement; a second is an error)",
        )
        .arg(
            "resource",
            "string",
            "the mysql resource of the project file (default `default`)",
        )
        .result(
            "`rows` (list of objects keyed by column, in column order), `affected_rows`, \
             `last_insert_id` (null when none). Integers are numbers, DECIMAL exact text, \
             dates and times MySQL's text, binary columns base64",
        ),
        KeywordSpec::new(
            "mysql.exec",
            "Runs several SQL statements (a script), given inline or as a .sql file.",
        )
        .arg("sql", "string", "statements separated by `;`")
        .statement()
        .arg(
            "file",
            "string",
            "a .sql script, relative to the case file (instead of `sql`)",
        )
        .arg(
            "resource",
            "string",
            "the mysql resource of the project file (default `default`)",
        )
        .result("`affected_rows`: the sum over all statements"),
    ]
}

/// The settings of resource `name` of `kind` from the project file, or
/// `local_default` when `name` is `default` and the project file has none.
/// An unknown name is an error that lists the known ones.
pub(crate) fn resource_settings(
    env: &Env,
    kind: &str,
    name: &str,
    local_default: Value,
) -> Result<Value, KeywordError> {
    if let Some(v) = env.resource(kind, name) {
        return Ok(v.clone());
    }
    if name == "default" {
        return Ok(local_default);
    }
    let mut known = env.resource_names(kind);
    if !known.iter().any(|k| k == "default") {
        known.insert(0, "default".into());
    }
    Err(KeywordError::new(format!(
        "no {kind} resource `{name}` in the project file (known: {})",
        known.join(", ")
    )))
}

/// The connection pools of the mysql resources, shared by both keywords.
pub struct Pools {
    env: Env,
    /// Resource name → its pool and where it connects (`host:port`, no password).
    pools: Mutex<HashMap<String, (Pool, String)>>,
}

impl Pools {
    /// Pools for `env`'s mysql resources; none is created yet.
    pub fn new(env: Env) -> Pools {
        Pools {
            env,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The pool of resource `name`, created on first use (connecting lazily).
    fn pool(&self, name: &str) -> Result<(Pool, String), KeywordError> {
        let mut pools = self
            .pools
            .lock()
            .map_err(|_| KeywordError::new("mysql pool table poisoned"))?;
        if let Some(found) = pools.get(name) {
            return Ok(found.clone());
        }
        let settings = resource_settings(&self.env, "mysql", name, json!(DEFAULT_URL))?;
        let opts = pool_opts(name, &settings)?;
        let addr = format!(
            "mysql resource `{name}` ({}@{}:{})",
            opts.user().unwrap_or(""),
            opts.ip_or_hostname(),
            opts.tcp_port()
        );
        let found = (Pool::new(opts), addr);
        pools.insert(name.to_string(), found.clone());
        Ok(found)
    }

    /// Closes every pool (waits for connections in use to come back).
    pub fn shutdown(&self) {
        let pools: Vec<Pool> = match self.pools.lock() {
            Ok(mut p) => p.drain().map(|(_, (pool, _))| pool).collect(),
            Err(_) => return,
        };
        if pools.is_empty() {
            return;
        }
        self.env.runtime.block_on(async move {
            for pool in pools {
                // Bounded: a server that stopped answering must not hang the end of the run.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), pool.disconnect())
                    .await;
            }
        });
    }
}

/// Builds the options of a pool from a resource's settings.
fn pool_opts(name: &str, settings: &Value) -> Result<Opts, KeywordError> {
    let bad = |what: String| KeywordError::new(format!("mysql resource `{name}`: {what}"));
    let (url, pool_max) = match settings {
        Value::String(url) => (url.as_str(), None),
        Value::Object(map) => {
            let mut url = None;
            let mut pool_max = None;
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("url", Value::String(s)) => url = Some(s.as_str()),
                    ("pool_max", v) => match v.as_u64() {
                        Some(n) if n >= 1 => pool_max = Some(n as usize),
                        _ => {
                            return Err(bad(format!(
                                "pool_max must be a positive integer, got {v}"
                            )));
                        }
                    },
                    (other, v) => {
                        return Err(bad(format!(
                            "unexpected `{other}` ({}); known: url, pool_max",
                            type_name(v)
                        )));
                    }
                }
            }
            (url.ok_or_else(|| bad("`url` is missing".into()))?, pool_max)
        }
        other => {
            return Err(bad(format!(
                "must be a URL string or an object with `url`, got {}",
                type_name(other)
            )));
        }
    };
    // The URL may hold a password: never echo it.
    let opts = Opts::from_url(url).map_err(|e| bad(format!("invalid URL: {e}")))?;
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let has_param = |p: &str| query.split('&').any(|kv| kv.split('=').next() == Some(p));
    let max = match pool_max {
        Some(n) => n,
        None if has_param("pool_max") => opts.pool_opts().constraints().max(),
        None => DEFAULT_POOL_MAX,
    };
    // min == max keeps up to `max` idle connections: steps reuse them instead
    // of reconnecting, and never more than `max` exist.
    let constraints =
        PoolConstraints::new(max, max).ok_or_else(|| bad(format!("invalid pool size {max}")))?;
    let mut builder = OptsBuilder::from_opts(opts.clone())
        .pool_opts(opts.pool_opts().clone().with_constraints(constraints));
    if !has_param("prefer_socket") {
        builder = builder.prefer_socket(false);
    }
    Ok(builder.into())
}

/// A driver error in words, keeping the server's own message
/// (`ERROR 1146 (42S02): Table 'test.nope' doesn't exist`).
fn error_text(e: &mysql_async::Error) -> String {
    use mysql_async::Error as E;
    match e {
        E::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        E::Io(io) => io_text(io),
        E::Driver(d) => d.to_string(),
        other => other.to_string(),
    }
}

fn io_text(e: &mysql_async::IoError) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        source = s.source();
    }
    msg
}

/// What the server sent for one connection's statements.
#[derive(Default)]
struct Outcome {
    rows: Vec<Value>,
    affected_rows: u64,
    last_insert_id: Option<u64>,
}

impl Pools {
    /// Runs `sql` (bound to `params` when given, else as a text query) on a
    /// pooled connection of the step's resource, within the step's deadline.
    fn run(
        &self,
        c: &Call<'_>,
        sql: String,
        params: Option<Vec<mysql_async::Value>>,
    ) -> Result<Outcome, KeywordError> {
        let name = c.resource()?;
        let (pool, where_) = self.pool(name)?;
        let remaining = c.remaining();
        // A task of the runtime: the query runs on the thread that owns the
        // connection's I/O, with two thread wake-ups per step.
        crate::run_on(&self.env.runtime, async move {
            let fut = async {
                let mut conn = pool.get_conn().await.map_err(|e| {
                    KeywordError::new(format!("cannot connect to {where_}: {}", error_text(&e)))
                })?;
                let result = match params {
                    Some(params) => {
                        let params = if params.is_empty() {
                            mysql_async::Params::Empty
                        } else {
                            mysql_async::Params::Positional(params)
                        };
                        match conn.exec_iter(sql.as_str(), params).await {
                            Ok(r) => drain(r).await,
                            Err(e) => Err(e),
                        }
                    }
                    None => match conn.query_iter(sql.as_str()).await {
                        Ok(r) => drain(r).await,
                        Err(e) => Err(e),
                    },
                };
                result.map_err(|e| match e {
                    mysql_async::Error::Server(_) => KeywordError::new(error_text(&e)),
                    _ => KeywordError::new(format!("{where_}: {}", error_text(&e))),
                })
            };
            match tokio::time::timeout(remaining, fut).await {
                Ok(result) => result,
                Err(_) => Err(KeywordError::timeout(format!(
                    "{where_} did not answer within the step timeout ({} ms)",
                    remaining.as_millis()
                ))),
            }
        })
    }
}

/// Reads every result set of `result`: the rows of the first one that has
/// columns, the affected rows summed over the statements that have none (an
/// INSERT, UPDATE or DELETE), and the last insert id any of them reported.
async fn drain<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
) -> Result<Outcome, mysql_async::Error> {
    let mut out = Outcome::default();
    let mut have_rows = false;
    loop {
        match result.columns() {
            // No result set pending: everything was read.
            None => break,
            Some(columns) if columns.is_empty() => {
                // An OK packet: its counts belong to this statement.
                out.affected_rows += result.affected_rows();
                if let Some(id) = result.last_insert_id().filter(|id| *id != 0) {
                    out.last_insert_id = Some(id);
                }
                let _: Vec<Row> = result.collect().await?;
            }
            Some(_) => {
                let rows: Vec<Row> = result.collect().await?;
                if !have_rows {
                    have_rows = true;
                    out.rows = rows.into_iter().map(row_json).collect();
                }
            }
        }
        // Reading a set to its end moves on to the next statement's, if any.
    }
    result.drop_result().await?;
    Ok(out)
}

/// One row as an object keyed by column name, in column order.
pub fn row_json(row: Row) -> Value {
    let columns = row.columns();
    let mut obj = Map::new();
    for (value, column) in row.unwrap().into_iter().zip(columns.iter()) {
        obj.insert(column.name_str().into_owned(), value_json(value, column));
    }
    Value::Object(obj)
}

/// Converts one MySQL value to JSON, using its column's type and charset.
pub fn value_json(value: mysql_async::Value, column: &Column) -> Value {
    use mysql_async::Value as V;
    let ty = column.column_type();
    match value {
        V::NULL => Value::Null,
        V::Int(i) => json!(i),
        V::UInt(u) => json!(u),
        V::Float(f) => float_json(f.to_string().parse().unwrap_or(f as f64)),
        V::Double(d) => float_json(d),
        V::Date(y, mo, d, h, mi, s, us) => {
            if matches!(
                ty,
                ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE
            ) {
                Value::String(format!("{y:04}-{mo:02}-{d:02}"))
            } else {
                Value::String(format!(
                    "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
                    fraction(us, column.decimals())
                ))
            }
        }
        V::Time(neg, days, h, mi, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            Value::String(format!(
                "{}{hours:02}:{mi:02}:{s:02}{}",
                if neg { "-" } else { "" },
                fraction(us, column.decimals())
            ))
        }
        V::Bytes(bytes) => bytes_json(bytes, column),
    }
}

/// `.123` for a fraction of a second shown with `decimals` digits, as MySQL
/// shows it; columns without a fixed scale show microseconds when there are any.
fn fraction(micros: u32, decimals: u8) -> String {
    match decimals {
        1..=6 => {
            let digits = format!("{micros:06}");
            format!(".{}", &digits[..usize::from(decimals)])
        }
        _ if micros > 0 && decimals > 6 => format!(".{micros:06}"),
        _ => String::new(),
    }
}

fn float_json(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A value the server sent as bytes (the text protocol sends them all so).
fn bytes_json(bytes: Vec<u8>, column: &Column) -> Value {
    use ColumnType as T;
    let text = |b: Vec<u8>| match String::from_utf8(b) {
        Ok(s) => Value::String(s),
        Err(e) => Value::String(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
    };
    match column.column_type() {
        T::MYSQL_TYPE_TINY
        | T::MYSQL_TYPE_SHORT
        | T::MYSQL_TYPE_LONG
        | T::MYSQL_TYPE_LONGLONG
        | T::MYSQL_TYPE_INT24
        | T::MYSQL_TYPE_YEAR => {
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(i) = s.parse::<i64>() {
                json!(i)
            } else if let Ok(u) = s.parse::<u64>() {
                json!(u)
            } else {
                Value::String(s.into_owned())
            }
        }
        T::MYSQL_TYPE_FLOAT | T::MYSQL_TYPE_DOUBLE => {
            let s = String::from_utf8_lossy(&bytes);
            match s.parse::<f64>() {
                Ok(f) if f.is_finite() => float_json(f),
                _ => Value::String(s.into_owned()),
            }
        }
        T::MYSQL_TYPE_BIT => {
            if bytes.len() <= 8 {
                json!(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            } else {
                Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes))
            }
        }
        // DECIMAL stays exact text; dates and times are already MySQL's text.
        T::MYSQL_TYPE_DECIMAL
        | T::MYSQL_TYPE_NEWDECIMAL
        | T::MYSQL_TYPE_DATE
        | T::MYSQL_TYPE_NEWDATE
        | T::MYSQL_TYPE_TIME
        | T::MYSQL_TYPE_TIME2
        | T::MYSQL_TYPE_DATETIME
        | T::MYSQL_TYPE_DATETIME2
        | T::MYSQL_TYPE_TIMESTAMP
        | T::MYSQL_TYPE_TIMESTAMP2
        | T::MYSQL_TYPE_JSON => text(bytes),
        _ => {
            let binary = column.character_set() == BINARY_CHARSET
                || (column.flags().contains(ColumnFlags::BINARY_FLAG)
                    && column.character_set() == 0);
            if binary {
                Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes))
            } else {
                text(bytes)
            }
        }
    }
}

/// Converts a JSON parameter to a MySQL value: objects and arrays as JSON text.
pub fn param_value(v: &Value) -> mysql_async::Value {
    use mysql_async::Value as V;
    match v {
        Value::Null => V::NULL,
        Value::Bool(b) => V::Int(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                V::Int(i)
            } else if let Some(u) = n.as_u64() {
                V::UInt(u)
            } else {
                V::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => V::Bytes(s.as_bytes().to_vec()),
        other => V::Bytes(other.to_string().into_bytes()),
    }
}

/// The `mysql.query` keyword.
pub struct Query(Arc<Pools>);

/// The `mysql.exec` keyword.
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
        let multi = c.bool_arg("multi", false)?;
        let params: Vec<mysql_async::Value> = match c.arg("params") {
            None => Vec::new(),
            Some(Value::Array(items)) => items.iter().map(param_value).collect(),
            Some(other) => {
                return Err(KeywordError::new(format!(
                    "argument `params` must be a list of values for the `?` placeholders, got {}",
                    type_name(other)
                )));
            }
        };
        // One statement, always through the prepared-statement protocol:
        // the server refuses a second one, wherever its text came from.
        // Several only when the step says so, as text, without params.
        let params = match (multi, params.is_empty()) {
            (false, _) => Some(params),
            (true, true) => None,
            (true, false) => {
                return Err(KeywordError::new(
                    "`multi` runs the text as it is: it takes no `params`",
                ));
            }
        };
        let several = !multi && sql.trim().trim_end_matches(';').contains(';');
        let out = self.0.run(c, sql, params).map_err(|mut e| {
            if several {
                e.message.push_str(
                    " (mysql.query runs one statement: give `\"multi\": true` or use mysql.exec to run several)",
                );
            }
            e
        })?;
        Ok(json!({
            "rows": out.rows,
            "affected_rows": out.affected_rows,
            "last_insert_id": out.last_insert_id,
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
            (None, Some(file)) => read_script(&self.0.env.policy, c.base_dir, file)?,
            (None, None) => return Err(KeywordError::new("argument `sql` or `file` is required")),
        };
        if script.trim().is_empty() {
            return Ok(json!({ "affected_rows": 0 }));
        }
        let out = self.0.run(c, script, None)?;
        Ok(json!({ "affected_rows": out.affected_rows }))
    }
}

fn read_script(
    policy: &crate::Policy,
    base_dir: &Path,
    file: &str,
) -> Result<String, KeywordError> {
    let path = base_dir.join(file);
    policy.check_path(&path)?;
    std::fs::read_to_string(&path)
        .map_err(|e| KeywordError::new(format!("cannot read {}: {e}", path.display())))
}

/// The mysql keywords of a run, and the pools they share (for shutdown).
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
