//! `mysql.query` and `mysql.exec` against the real MariaDB on
//! 127.0.0.1:3306 (root, empty password, database `test`): value mapping,
//! bound parameters, scripts, the pool bound and the errors testers see.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use atf_keywords::mysql;
use atf_sdk::{Keyword, Value, json};
use common::{call, call_at, env, find, now_ms, require, unique};

const ADDR: &str = "127.0.0.1:3306";

fn kws() -> Vec<Arc<dyn Keyword>> {
    require("MariaDB", ADDR);
    mysql::keywords(&env(json!({}))).0
}

fn query(kws: &[Arc<dyn Keyword>], sql: &str, params: Value) -> Value {
    let mut args = json!({ "sql": sql });
    if !params.is_null() {
        args["params"] = params;
    }
    call(find(kws, "mysql.query"), args).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn every_type_maps_to_json() {
    let k = kws();
    let t = unique("types");
    query(
        &k,
        &format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY AUTO_INCREMENT, i INT, b BIGINT, \
             u BIGINT UNSIGNED, d DECIMAL(10,2), f FLOAT, g DOUBLE, dt DATE, \
             ts DATETIME(3), ts0 DATETIME, tm TIME, v VARCHAR(20), tx TEXT, bl BLOB, \
             vb VARBINARY(8), n INT NULL)"
        ),
        Value::Null,
    );
    let insert = query(
        &k,
        &format!(
            "INSERT INTO {t} (i, b, u, d, f, g, dt, ts, ts0, tm, v, tx, bl, vb, n) VALUES \
             (-7, 9007199254740993, 18446744073709551615, 12345678.90, 1.5, 2.25, \
             '2024-01-02', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05', '-27:01:02', \
             'héllo', 'long text', x'00ff10', x'cafe', NULL)"
        ),
        Value::Null,
    );
    assert_eq!(insert["affected_rows"], json!(1));
    assert_eq!(insert["last_insert_id"], json!(1));
    assert_eq!(insert["rows"], json!([]));

    let expected = json!({
        "id": 1, "i": -7, "b": 9007199254740993i64, "u": 18446744073709551615u64,
        "d": "12345678.90", "f": 1.5, "g": 2.25, "dt": "2024-01-02",
        "ts": "2024-01-02 03:04:05.678", "ts0": "2024-01-02 03:04:05", "tm": "-27:01:02",
        "v": "héllo", "tx": "long text", "bl": "AP8Q", "vb": "yv4=", "n": null
    });
    // Text protocol (no params) and binary protocol (params) give the same JSON.
    let text = query(&k, &format!("SELECT * FROM {t}"), Value::Null);
    assert_eq!(text["rows"], json!([expected]), "text protocol");
    let binary = query(&k, &format!("SELECT * FROM {t} WHERE id = ?"), json!([1]));
    assert_eq!(binary["rows"], json!([expected]), "binary protocol");
    // Column order is kept.
    let keys: Vec<&String> = binary["rows"][0]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap();
    assert_eq!(keys[..4], ["id", "i", "b", "u"]);
    assert_eq!(binary["last_insert_id"], Value::Null);

    // Float columns give the number written, not its f32 widening.
    query(
        &k,
        &format!("UPDATE {t} SET f = 1.1 WHERE id = 1"),
        Value::Null,
    );
    let f = query(&k, &format!("SELECT f FROM {t} WHERE id = ?"), json!([1]));
    assert_eq!(f["rows"][0]["f"], json!(1.1));
    let f = query(&k, &format!("SELECT f FROM {t}"), Value::Null);
    assert_eq!(f["rows"][0]["f"], json!(1.1));

    // Expressions: integers, decimals, dates and strings computed by the server.
    let e = query(
        &k,
        "SELECT 1 AS one, 1.50 AS dec_, CAST('2024-05-06' AS DATE) AS d, \
         CAST('10:11:12.5' AS TIME(1)) AS t, 'x' AS s, NULL AS nothing",
        Value::Null,
    );
    assert_eq!(
        e["rows"],
        json!([{"one": 1, "dec_": "1.50", "d": "2024-05-06", "t": "10:11:12.5", "s": "x", "nothing": null}])
    );
    query(&k, &format!("DROP TABLE {t}"), Value::Null);
}

#[test]
fn params_are_bound_never_spliced() {
    let k = kws();
    let t = unique("bound");
    query(
        &k,
        &format!(
            "CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT, j TEXT, n DOUBLE, flag INT)"
        ),
        Value::Null,
    );
    let evil = format!("x'); DROP TABLE {t}; --");
    let r = query(
        &k,
        &format!("INSERT INTO {t} (v, j, n, flag) VALUES (?, ?, ?, ?)"),
        json!([evil, {"a": [1, 2]}, 2.5, true]),
    );
    assert_eq!(r["affected_rows"], json!(1));
    assert_eq!(r["last_insert_id"], json!(1));
    let r = query(
        &k,
        &format!("INSERT INTO {t} (v) VALUES (?), (?)"),
        json!(["b", null]),
    );
    assert_eq!(r["affected_rows"], json!(2));
    assert_eq!(r["last_insert_id"], json!(2));
    let rows = query(
        &k,
        &format!("SELECT v, j, n, flag FROM {t} WHERE v = ?"),
        json!([evil]),
    );
    assert_eq!(
        rows["rows"],
        json!([{"v": evil, "j": "{\"a\":[1,2]}", "n": 2.5, "flag": 1}])
    );
    let all = query(&k, &format!("SELECT COUNT(*) AS c FROM {t}"), json!([]));
    assert_eq!(all["rows"], json!([{"c": 3}]));
    // A SELECT right after an INSERT on the same pooled connection reports no affected rows.
    let sel = query(&k, &format!("SELECT COUNT(*) AS c FROM {t}"), Value::Null);
    assert_eq!(sel["affected_rows"], json!(0));
    assert_eq!(sel["last_insert_id"], Value::Null);
    // Several statements only with `multi`: rows of the first result set,
    // summed counts. Without it, the second statement is refused and the
    // first does not run either.
    let several =
        format!("INSERT INTO {t} (v) VALUES ('m'); SELECT v FROM {t} WHERE v = 'm'; SELECT 1");
    let refused = call(find(&k, "mysql.query"), json!({ "sql": several }))
        .unwrap_err()
        .message;
    assert!(
        refused.starts_with("ERROR 1064") && refused.contains("\"multi\": true"),
        "{refused}"
    );
    let none = query(
        &k,
        &format!("SELECT COUNT(*) AS c FROM {t} WHERE v = 'm'"),
        Value::Null,
    );
    assert_eq!(none["rows"], json!([{"c": 0}]));
    let multi = call(
        find(&k, "mysql.query"),
        json!({ "sql": several, "multi": true }),
    )
    .unwrap();
    assert_eq!(multi["rows"], json!([{"v": "m"}]));
    assert_eq!(multi["affected_rows"], json!(1));
    assert_eq!(multi["last_insert_id"], json!(4));
    query(&k, &format!("DELETE FROM {t} WHERE v = 'm'"), Value::Null);
    let wrong = call(
        find(&k, "mysql.query"),
        json!({"sql": "SELECT ?", "params": "x"}),
    );
    assert!(wrong.unwrap_err().message.contains("params"));
    query(&k, &format!("DROP TABLE {t}"), Value::Null);
}

#[test]
fn exec_runs_scripts_inline_and_from_files() {
    let k = kws();
    let t = unique("script");
    let exec = find(&k, "mysql.exec");
    let r = call(
        exec,
        json!({"sql": format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT);\n\
             INSERT INTO {t} VALUES (1, 'a'), (2, 'b');\n\
             SELECT * FROM {t};\n\
             INSERT INTO {t} VALUES (3, 'semi;colon');\n\
             UPDATE {t} SET v = 'z' WHERE id >= 2;"
        )}),
    )
    .unwrap();
    assert_eq!(r, json!({"affected_rows": 5}));

    let dir = std::env::temp_dir().join(unique("sqlfiles"));
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(
        dir.join("sql/seed.sql"),
        format!(
            "-- seed\nDELETE FROM {t} WHERE id = 1;\nINSERT INTO {t} VALUES (10, 'x'), (11, 'y');\n"
        ),
    )
    .unwrap();
    let r = call_at(
        exec,
        json!({"file": "sql/seed.sql"}),
        Duration::from_secs(20),
        now_ms(),
        &dir,
    )
    .unwrap();
    assert_eq!(r, json!({"affected_rows": 3}));
    let rows = query(&k, &format!("SELECT id FROM {t} ORDER BY id"), Value::Null);
    assert_eq!(
        rows["rows"],
        json!([{"id": 2}, {"id": 3}, {"id": 10}, {"id": 11}])
    );

    let missing = call_at(
        exec,
        json!({"file": "nope.sql"}),
        Duration::from_secs(5),
        now_ms(),
        &dir,
    );
    assert!(missing.unwrap_err().message.contains("nope.sql"));
    // A failing statement in the middle stops the script with the server's message.
    let bad = call(
        exec,
        json!({"sql": format!("INSERT INTO {t} VALUES (20, 'q'); INSERT INTO nope_{t} VALUES (1)")}),
    );
    let msg = bad.unwrap_err().message;
    assert!(msg.contains("doesn't exist"), "{msg}");
    query(&k, &format!("DROP TABLE {t}"), Value::Null);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_table_fails_with_the_servers_message() {
    let k = kws();
    let err = call(
        find(&k, "mysql.query"),
        json!({"sql": "SELECT * FROM nope_does_not_exist"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("Table 'test.nope_does_not_exist' doesn't exist"),
        "{}",
        err.message
    );
    let err = call(find(&k, "mysql.query"), json!({"sql": "SELEC 1"})).unwrap_err();
    assert!(err.message.contains("SQL syntax"), "{}", err.message);
}

#[test]
fn closed_port_fails_fast_without_panic() {
    require("MariaDB", ADDR);
    let k = mysql::keywords(&env(
        json!({"mysql": {"down": "mysql://root@127.0.0.1:1/test"}}),
    ))
    .0;
    let started = Instant::now();
    let err = call_at(
        find(&k, "mysql.query"),
        json!({"sql": "SELECT 1", "resource": "down"}),
        Duration::from_secs(5),
        now_ms(),
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(err.message.contains("cannot connect"), "{}", err.message);
    assert!(err.message.contains("refused"), "{}", err.message);
}

#[test]
fn wrong_password_is_access_denied_and_password_is_not_shown() {
    let kw = mysql::keywords(&env(json!({"mysql": {
        "bad": {"url": "mysql://root:s3cr3tpw@127.0.0.1:3306/test", "pool_max": 2}
    }})))
    .0;
    require("MariaDB", ADDR);
    let err = call(
        find(&kw, "mysql.query"),
        json!({"sql": "SELECT 1", "resource": "bad"}),
    )
    .unwrap_err();
    assert!(
        err.message.contains("Access denied for user 'root'"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("s3cr3tpw"), "{}", err.message);
}

#[test]
fn unknown_resource_lists_known_ones() {
    let k = mysql::keywords(&env(json!({"mysql": {"orders": DEFAULT}}))).0;
    let err = call(
        find(&k, "mysql.query"),
        json!({"sql": "SELECT 1", "resource": "users"}),
    )
    .unwrap_err();
    assert!(err.message.contains("users"), "{}", err.message);
    assert!(err.message.contains("orders"), "{}", err.message);
}

const DEFAULT: &str = "mysql://root@127.0.0.1:3306/test";

#[test]
fn resource_object_and_step_deadline() {
    require("MariaDB", ADDR);
    let k = mysql::keywords(&env(
        json!({"mysql": {"default": {"url": DEFAULT, "pool_max": 3}}}),
    ))
    .0;
    let q = find(&k, "mysql.query");
    let r = call(q, json!({"sql": "SELECT DATABASE() AS db"})).unwrap();
    assert_eq!(r["rows"], json!([{"db": "test"}]));
    let started = Instant::now();
    let err = call_at(
        q,
        json!({"sql": "SELECT SLEEP(5)"}),
        Duration::from_millis(500),
        now_ms(),
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.message.contains("timeout"), "{}", err.message);
    // The pool still works after a step was cut short.
    let r = call(q, json!({"sql": "SELECT 2 AS two"})).unwrap();
    assert_eq!(r["rows"], json!([{"two": 2}]));
}

#[test]
fn builtins_register_the_mysql_keywords() {
    let names: Vec<String> = atf_keywords::specs().into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"mysql.query".to_string()));
    assert!(names.contains(&"mysql.exec".to_string()));
    let b = atf_keywords::builtins(&env(json!({})));
    assert!(b.keywords.iter().any(|k| k.spec().name == "mysql.exec"));
    b.shutdown();
}
