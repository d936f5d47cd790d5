//! `redis.command` against the real Redis on 127.0.0.1:6379: every reply
//! type (RESP2 and RESP3), arguments, errors, deadlines and resources.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use atf_keywords::redis::Redis;
use atf_sdk::{KeywordResult, Value, json};
use common::{call, call_at, env, now_ms, require, unique};

const ADDR: &str = "127.0.0.1:6379";

fn kw() -> Redis {
    require("Redis", ADDR);
    Redis::new(env(json!({"redis": {
        "default": "redis://127.0.0.1:6379/0",
        "resp3": "redis://127.0.0.1:6379/0?protocol=resp3",
        "obj": {"url": "redis://127.0.0.1:6379/1"},
        "down": "redis://127.0.0.1:1/0"
    }})))
}

fn run(k: &Redis, resource: &str, cmd: Value) -> KeywordResult {
    call(k, json!({"cmd": cmd, "resource": resource}))
}

fn value(k: &Redis, resource: &str, cmd: Value) -> Value {
    match run(k, resource, cmd.clone()) {
        Ok(v) => v["value"].clone(),
        Err(e) => panic!("{cmd}: {e}"),
    }
}

#[test]
fn strings_integers_nil_and_numbers_as_arguments() {
    let k = kw();
    let key = unique("atf:str");
    assert_eq!(
        value(&k, "default", json!(["SET", key, "héllo"])),
        json!("OK")
    );
    assert_eq!(value(&k, "default", json!(["GET", key])), json!("héllo"));
    assert_eq!(
        value(&k, "default", json!(["GET", format!("{key}:missing")])),
        Value::Null
    );
    assert_eq!(value(&k, "default", json!(["SET", key, 42])), json!("OK"));
    assert_eq!(value(&k, "default", json!(["INCRBY", key, 8])), json!(50));
    assert_eq!(value(&k, "default", json!(["GET", key])), json!("50"));
    assert_eq!(
        value(&k, "default", json!(["SET", key, {"a": [1, 2]}])),
        json!("OK")
    );
    assert_eq!(
        value(&k, "default", json!(["GET", key])),
        json!("{\"a\":[1,2]}")
    );
    assert_eq!(value(&k, "default", json!(["PING"])), json!("PONG"));
    // Bytes that are not UTF-8 come back as base64.
    assert_eq!(
        value(
            &k,
            "default",
            json!(["EVAL", "return string.char(255, 0)", 0])
        ),
        json!("/wA=")
    );
    value(&k, "default", json!(["DEL", key]));
}

#[test]
fn lists_hashes_sets_on_resp2() {
    let k = kw();
    let list = unique("atf:list");
    let hash = unique("atf:hash");
    assert_eq!(
        value(&k, "default", json!(["RPUSH", list, "a", "b", 3])),
        json!(3)
    );
    assert_eq!(
        value(&k, "default", json!(["LRANGE", list, 0, -1])),
        json!(["a", "b", "3"])
    );
    assert_eq!(
        value(&k, "default", json!(["HSET", hash, "f", "v", "n", 1])),
        json!(2)
    );
    // RESP2 sends a hash as a flat array.
    let flat = value(&k, "default", json!(["HGETALL", hash]));
    assert_eq!(flat, json!(["f", "v", "n", "1"]));
    // Nested arrays, integers and nil inside arrays.
    let nested = value(
        &k,
        "default",
        json!(["EVAL", "return {1, {'x', 2}, false}", 0]),
    );
    assert_eq!(nested, json!([1, ["x", 2], null]));
    value(&k, "default", json!(["DEL", list, hash]));
}

#[test]
fn maps_sets_doubles_and_booleans_on_resp3() {
    let k = kw();
    let hash = unique("atf:hash3");
    let set = unique("atf:set3");
    let zset = unique("atf:zset3");
    value(&k, "resp3", json!(["HSET", hash, "f", "v", "n", 1]));
    assert_eq!(
        value(&k, "resp3", json!(["HGETALL", hash])),
        json!({"f": "v", "n": "1"})
    );
    value(&k, "resp3", json!(["SADD", set, "only"]));
    assert_eq!(
        value(&k, "resp3", json!(["SMEMBERS", set])),
        json!(["only"])
    );
    value(&k, "resp3", json!(["ZADD", zset, 1.5, "m"]));
    assert_eq!(value(&k, "resp3", json!(["ZSCORE", zset, "m"])), json!(1.5));
    assert_eq!(
        value(&k, "resp3", json!(["EVAL", "return {double=3.25}", 0])),
        json!(3.25)
    );
    assert_eq!(
        value(
            &k,
            "resp3",
            json!(["EVAL", "redis.setresp(3); return true", 0])
        ),
        json!(true)
    );
    assert_eq!(
        value(
            &k,
            "resp3",
            json!(["EVAL", "redis.setresp(3); return false", 0])
        ),
        json!(false)
    );
    assert_eq!(
        value(&k, "resp3", json!(["GET", format!("{hash}:missing")])),
        Value::Null
    );
    value(&k, "resp3", json!(["DEL", hash, set, zset]));
}

#[test]
fn error_replies_fail_with_the_servers_message() {
    let k = kw();
    let key = unique("atf:err");
    value(&k, "default", json!(["SET", key, "text"]));
    let e = run(&k, "default", json!(["INCR", key])).unwrap_err();
    assert!(
        e.message.contains("ERR value is not an integer"),
        "{}",
        e.message
    );
    let e = run(&k, "default", json!(["HGET", key, "f"])).unwrap_err();
    assert!(e.message.starts_with("WRONGTYPE"), "{}", e.message);
    let e = run(&k, "default", json!(["NOSUCHCMD", 1])).unwrap_err();
    assert!(e.message.contains("unknown command"), "{}", e.message);
    // An error inside an array reply (EXEC of a transaction) fails the step too.
    let e = run(
        &k,
        "default",
        json!(["EVAL", "return {1, redis.error_reply('MYERR inner')}", 0]),
    )
    .unwrap_err();
    assert!(e.message.contains("MYERR inner"), "{}", e.message);
    value(&k, "default", json!(["DEL", key]));
    // Bad arguments of the step itself.
    assert!(
        call(&k, json!({"cmd": "GET x"}))
            .unwrap_err()
            .message
            .contains("list")
    );
    assert!(
        call(&k, json!({"cmd": []}))
            .unwrap_err()
            .message
            .contains("empty")
    );
    assert!(
        call(&k, json!({"cmd": ["GET", null]}))
            .unwrap_err()
            .message
            .contains("cmd[1]")
    );
}

#[test]
fn resources_and_unknown_names() {
    let k = kw();
    let key = unique("atf:db1");
    value(&k, "obj", json!(["SET", key, "in-db-1"]));
    assert_eq!(value(&k, "default", json!(["GET", key])), Value::Null);
    assert_eq!(value(&k, "obj", json!(["GET", key])), json!("in-db-1"));
    value(&k, "obj", json!(["DEL", key]));
    let e = run(&k, "nope", json!(["PING"])).unwrap_err();
    assert!(
        e.message.contains("nope") && e.message.contains("resp3"),
        "{}",
        e.message
    );
    // Without a project file, `default` is the local Redis.
    require("Redis", ADDR);
    let bare = Redis::new(env(json!({})));
    assert_eq!(
        call(&bare, json!({"cmd": ["PING"]})).unwrap(),
        json!({"value": "PONG"})
    );
}

#[test]
fn closed_port_fails_within_the_deadline() {
    let k = kw();
    let started = Instant::now();
    let e = call_at(
        &k,
        json!({"cmd": ["PING"], "resource": "down"}),
        Duration::from_secs(5),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
    assert!(
        e.message.to_lowercase().contains("refused"),
        "{}",
        e.message
    );
}

#[test]
fn blocking_command_is_cut_at_the_step_deadline() {
    let k = kw();
    let key = unique("atf:block");
    let started = Instant::now();
    let e = call_at(
        &k,
        json!({"cmd": ["BLPOP", key, 5]}),
        Duration::from_millis(400),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(e.message.contains("step timeout"), "{}", e.message);
    // Blocking commands do not stall the shared connection of other cases.
    let blocker = unique("atf:block2");
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = call_at(
                &k,
                json!({"cmd": ["BRPOP", blocker, 2]}),
                Duration::from_secs(5),
                now_ms(),
                Path::new("."),
            );
            assert_eq!(r.unwrap(), json!({"value": null}));
        });
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(value(&k, "default", json!(["PING"])), json!("PONG"));
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    });
    // A blocking command within the deadline works, and the connection is still usable.
    let started = Instant::now();
    let r = call_at(
        &k,
        json!({"cmd": ["BLPOP", key, 1]}),
        Duration::from_secs(5),
        now_ms(),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(r, json!({"value": null}));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(value(&k, "default", json!(["PING"])), json!("PONG"));
}

#[test]
fn many_threads_share_one_connection() {
    let k = kw();
    let key = unique("atf:count");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    value(&k, "default", json!(["INCR", key]));
                }
            });
        }
    });
    assert_eq!(value(&k, "default", json!(["GET", key])), json!("400"));
    value(&k, "default", json!(["DEL", key]));
}
