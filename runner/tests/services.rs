//! The `atf` binary against the real MariaDB, Redis and Kafka-protocol
//! broker of `scripts/services.sh`: connections are pooled across a whole
//! run, and a service's error fails only its step — with the service's own
//! message — while cleanup runs and the other cases go on.
//!
//! This file is a test binary of its own so that no other test of the same
//! process opens MySQL connections while the connection count is read.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

fn require(service: &str, addr: &str) {
    let ok = addr
        .parse()
        .ok()
        .and_then(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok())
        .is_some();
    assert!(
        ok,
        "{service} does not answer on {addr}: start the test services with `scripts/services.sh`"
    );
}

fn write(dir: &std::path::Path, rel: &str, v: &Value) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn atf(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_atf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ATF_PLUGIN_PATH")
        .output()
        .expect("run atf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn report(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("atf-report/report.json")).unwrap())
        .unwrap()
}

fn mysql_connections() -> u64 {
    let out = Command::new("mariadb")
        .args([
            "-h127.0.0.1",
            "-uroot",
            "-N",
            "-e",
            "SHOW GLOBAL STATUS LIKE 'Connections'",
        ])
        .output()
        .expect("the mariadb client (scripts/services.sh installs the server and client)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the connection count: {text}"))
}

#[test]
fn a_run_of_1000_mysql_cases_opens_about_jobs_connections() {
    require("MariaDB", "127.0.0.1:3306");
    let dir = tempfile::tempdir().unwrap();
    for i in 0..1000 {
        write(
            dir.path(),
            &format!("cases/c{i:04}.case.json"),
            &json!({"steps": [
                {"keyword": "mysql.query", "args": {"sql": "SELECT ? AS n", "params": [i]}, "expect": {"$.rows[0].n": i}}
            ]}),
        );
    }
    let before = mysql_connections();
    let (code, out) = atf(dir.path(), &["run", "cases", "--jobs", "8"]);
    let after = mysql_connections();
    assert_eq!(code, 0, "{out}");
    assert_eq!(report(dir.path())["summary"]["passed"], 1000);
    // --jobs 8 plus a small constant (the mariadb client's own reads count 1).
    let opened = after - before;
    assert!(
        opened <= 8 + 3,
        "a run of 1,000 cases opened {opened} connections"
    );
}

#[test]
fn service_errors_fail_their_step_with_the_services_message_and_cleanup_runs() {
    require("MariaDB", "127.0.0.1:3306");
    require("Redis", "127.0.0.1:6379");
    require("the Kafka broker", "127.0.0.1:9092");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "atf.json",
        &json!({
            "default_env": "t",
            "envs": {"t": {"resources": {
                "mysql": {"default": "mysql://root@127.0.0.1:3306/test",
                          "down": format!("mysql://root@127.0.0.1:{closed}/test"),
                          "badpw": "mysql://root:definitely-wrong@127.0.0.1:3306/test"},
                "redis": {"default": "redis://127.0.0.1:6379/0"},
                "kafka": {"default": {"bootstrap.servers": "127.0.0.1:9092"},
                          "down": {"bootstrap.servers": format!("127.0.0.1:{closed}")}}
            }}}
        }),
    );
    let marker = d.join("cleanups");
    let cleanup = |name: &str| json!([{"keyword": "exec", "args": {"shell": format!("echo {name} >> {}", marker.display())}}]);
    let cases = [
        (
            "unknown-table",
            json!({"keyword": "mysql.query", "args": {"sql": "SELECT * FROM atf_no_such_table"}}),
        ),
        (
            "mysql-down",
            json!({"keyword": "mysql.query", "args": {"sql": "SELECT 1", "resource": "down"}, "timeout": "5s"}),
        ),
        (
            "wrong-password",
            json!({"keyword": "mysql.query", "args": {"sql": "SELECT 1", "resource": "badpw"}, "timeout": "5s"}),
        ),
        (
            "redis-error",
            json!({"keyword": "redis.command", "args": {"cmd": ["NOSUCHCOMMAND", "x"]}}),
        ),
        (
            "unknown-topic",
            json!({"keyword": "kafka.produce", "args": {"topic": "atf-no-such-topic-7", "value": "x"}, "timeout": "5s"}),
        ),
        (
            "broker-down",
            json!({"keyword": "kafka.consume", "args": {"topic": "atf-test", "resource": "down", "timeout": "2s"}, "timeout": "5s"}),
        ),
    ];
    for (name, step) in &cases {
        write(
            d,
            &format!("cases/{name}.case.json"),
            &json!({"steps": [step], "cleanup": cleanup(name)}),
        );
    }
    write(
        d,
        "cases/fine.case.json",
        &json!({"steps": [
            {"keyword": "redis.command", "args": {"cmd": ["PING"]}, "expect": {"value": "PONG"}}
        ]}),
    );
    let (code, out) = atf(d, &["run", "cases", "--jobs", "4"]);
    assert_eq!(code, 1, "{out}");
    let r = report(d);
    let case = |name: &str| -> Value {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {r:#}"))
    };
    assert_eq!(case("fine")["status"], "passed");
    let error_of = |name: &str| -> String {
        let c = case(name);
        assert_eq!(c["status"], "error", "{name}: {c:#}");
        c["steps"][0]["error"].as_str().unwrap_or("").to_string()
    };
    let e = error_of("unknown-table");
    assert!(
        e.contains("atf_no_such_table") && e.contains("doesn't exist"),
        "{e}"
    );
    let e = error_of("mysql-down");
    assert!(
        e.to_lowercase().contains("refused") || e.contains("cannot connect"),
        "{e}"
    );
    let e = error_of("wrong-password");
    assert!(e.contains("Access denied"), "{e}");
    assert!(
        !out.contains("definitely-wrong") && !e.contains("definitely-wrong"),
        "the password leaked: {e}"
    );
    let e = error_of("redis-error");
    assert!(e.to_lowercase().contains("unknown command"), "{e}");
    let e = error_of("unknown-topic");
    assert!(e.contains("atf-no-such-topic-7"), "{e}");
    let e = error_of("broker-down");
    assert!(!e.is_empty(), "{e}");
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    for (name, _) in &cases {
        assert!(
            ran.lines().any(|l| l == *name),
            "cleanup of {name} did not run: {ran}"
        );
    }
}
