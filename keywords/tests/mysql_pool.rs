//! The MySQL pool bound, alone in its own test binary so that no other test
//! connects to MariaDB while it counts the server's connections.

mod common;

use std::sync::Arc;

use atf_keywords::mysql;
use atf_sdk::{Keyword, Value, json};
use common::{call, env, find, require, unique};

fn query(kws: &[Arc<dyn Keyword>], sql: &str) -> Value {
    call(find(kws, "mysql.query"), json!({ "sql": sql })).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn connections(k: &[Arc<dyn Keyword>]) -> u64 {
    let r = query(k, "SHOW GLOBAL STATUS LIKE 'Connections'");
    r["rows"][0]["Value"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("Connections")
}

#[test]
fn a_thousand_calls_from_eight_threads_stay_within_the_pool() {
    require("MariaDB", "127.0.0.1:3306");
    let k = mysql::keywords(&env(json!({}))).0;
    let t = unique("pool");
    query(&k, &format!("CREATE TABLE {t} (n INT)"));
    // Warm the pool of `k` so that the count below is of the run's pool alone.
    let before = connections(&k);
    let run = mysql::keywords(&env(json!({}))).0;
    let q = find(&run, "mysql.query");
    std::thread::scope(|s| {
        for w in 0..8 {
            let t = &t;
            s.spawn(move || {
                for i in 0..125 {
                    let r = call(q, json!({"sql": format!("INSERT INTO {t} VALUES (?)"), "params": [w * 1000 + i]}));
                    assert_eq!(r.unwrap()["affected_rows"], json!(1));
                }
            });
        }
    });
    let after = connections(&k);
    let rows = query(&k, &format!("SELECT COUNT(*) AS c FROM {t}"));
    assert_eq!(rows["rows"][0]["c"], json!(1000));
    // Nothing else in this binary connects; allow a little for other users of the server.
    let opened = after - before;
    eprintln!("1,000 calls from 8 threads opened {opened} connections");
    assert!(
        opened <= (mysql::DEFAULT_POOL_MAX as u64) + 3,
        "1,000 calls opened {opened} connections; the pool max is {}",
        mysql::DEFAULT_POOL_MAX
    );
    query(&k, &format!("DROP TABLE {t}"));
}
