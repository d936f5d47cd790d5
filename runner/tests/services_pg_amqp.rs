//! The `atf` binary against the real PostgreSQL and RabbitMQ of
//! `scripts/services.sh`: a run of 1,000 cases uses about `--jobs`
//! PostgreSQL connections; suites and cases use `pg.exec` scripts,
//! `pg.query` with bound parameters and typed values, and `amqp.publish` /
//! `amqp.consume` with per-case isolation; a service's error fails only its
//! step, with the service's own message, while cleanup runs and passwords
//! stay out of the reports.

mod support;

use std::collections::HashSet;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Project, case};

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

/// A name unique to this test run.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

#[test]
fn a_run_of_1000_pg_cases_uses_about_jobs_connections() {
    require("PostgreSQL", "127.0.0.1:5432");
    let p = Project::new();
    for i in 0..1000 {
        p.file(
            &format!("cases/c{i:04}.case.json"),
            json!({"steps": [
                {"keyword": "pg.query",
                 "args": {"sql": "SELECT pg_backend_pid() AS pid, $1::int AS n", "params": [i]},
                 "expect": {"$.rows[0].n": i}}
            ]}),
        );
    }
    let out = p.atf(&["run", "cases", "--jobs", "8"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report = p.report();
    assert_eq!(report["summary"]["passed"], 1000);
    // Each connection is one server process: count the distinct ones.
    let pids: HashSet<i64> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["steps"][0]["result"]["rows"][0]["pid"]
                .as_i64()
                .unwrap_or_else(|| panic!("no pid in {c:#}"))
        })
        .collect();
    eprintln!("1,000 cases at --jobs 8 used {} connections", pids.len());
    assert!(
        pids.len() <= 8,
        "a run of 1,000 cases at --jobs 8 used {} connections",
        pids.len()
    );
}

#[test]
fn pg_and_amqp_steps_in_suites_and_cases() {
    require("PostgreSQL", "127.0.0.1:5432");
    require("RabbitMQ", "127.0.0.1:5672");
    let table = unique("atf_orders");
    // amq.topic exists in every vhost; a binding key of this test's own keeps it apart.
    let topic = unique("atf").replace('_', "-");
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "t", "envs": {"t": {
            "vars": {"table": table, "topic": topic},
            "resources": {
                "pg": {"default": "postgres://postgres:pg-s3cret@127.0.0.1:5432/test",
                       "down": "postgres://postgres@127.0.0.1:1/test"},
                "amqp": {"default": "amqp://guest:guest@127.0.0.1:5672/%2f"}
            }
        }}}),
    );
    p.file(
        "flow/suite.json",
        json!({
            "prepare": [
                {"keyword": "pg.exec", "args": {"sql": "CREATE TABLE ${ident(table)} (order_no text PRIMARY KEY, amount numeric(10,2), items jsonb, at timestamptz)"}},
                {"keyword": "amqp.consume", "remark": "listen before any case publishes",
                 "args": {"exchange": "amq.topic", "binding": "${topic}.#", "count": 0}}
            ],
            "cleanup": [{"keyword": "pg.exec", "args": {"sql": "DROP TABLE ${ident(table)}"}}]
        }),
    );
    // Script files are sent as they are: no placeholders in them.
    p.file(
        "flow/seed.sql",
        format!(
            "-- a script whose second statement fails\nINSERT INTO {table} VALUES ('C-1', 1, '[]', now());\n\
             INSERT INTO {table} VALUES ('C-2', 'not a number', '[]', now());\n"
        ),
    );
    p.file(
        "flow/a_first.case.json",
        json!({"vars": {"orderNo": "A-2"}, "steps": [
            {"keyword": "pg.exec", "args": {"sql": "INSERT INTO ${ident(table)} VALUES ('A-1', 19.90, '[{\"sku\": \"X\"}]', '2024-01-02 03:04:05+00')"}},
            {"keyword": "pg.query",
             "args": {"sql": "INSERT INTO ${ident(table)} VALUES ($1, $2, $3, $4) RETURNING order_no",
                      "params": ["${orderNo}", "5.50", [{"sku": "Y", "qty": 2}], "2024-05-06T07:08:09Z"]},
             "expect": {"row_count": 1}},
            {"keyword": "pg.query",
             "args": {"sql": "SELECT * FROM ${ident(table)} WHERE order_no = ANY($1) ORDER BY order_no", "params": [["A-1", "${orderNo}"]]},
             "expect": {"row_count": 2, "$.rows[0].amount": "19.90", "$.rows[0].items[0].sku": "X",
                        "$.rows[0].at": "2024-01-02T03:04:05Z", "$.rows[1].items[0].qty": 2,
                        "$.columns[1]": {"name": "amount", "type": "numeric"}},
             "save": {"amount": "$.rows[1].amount"}},
            {"keyword": "amqp.publish",
             "args": {"exchange": "amq.topic", "routing_key": "${topic}.order.created",
                      "json": {"orderNo": "${orderNo}", "amount": "${amount}"},
                      "properties": {"correlation_id": "${orderNo}"}}},
            {"keyword": "amqp.consume",
             "args": {"exchange": "amq.topic", "binding": "${topic}.#", "match": {"$.body.orderNo": "${orderNo}"}},
             "expect": {"count": 1, "$.messages[0].body.amount": "5.50",
                        "$.messages[0].properties.correlation_id": "A-2",
                        "$.messages[0].routing_key": "${topic}.order.created"}},
            {"keyword": "sleep", "args": {"duration": "5ms"}}
        ]}),
    );
    p.file(
        "flow/b_second.case.json",
        json!({"steps": [
            {"keyword": "amqp.consume", "remark": "the first case's message came before this case",
             "args": {"exchange": "amq.topic", "binding": "${topic}.#", "count": 0},
             "expect": {"count": 0}},
            {"keyword": "amqp.publish",
             "args": {"exchange": "amq.topic", "routing_key": "${topic}.order.paid", "body": "paid"}},
            {"keyword": "amqp.consume",
             "args": {"exchange": "amq.topic", "binding": "${topic}.#"},
             "expect": {"count": 1, "$.messages[0].body": "paid"}}
        ]}),
    );
    p.file(
        "flow/c_script.case.json",
        json!({"steps": [
            {"keyword": "pg.exec", "args": {"file": "seed.sql"}},
        ]}),
    );
    let marker = p.join("cleanups");
    let cleanup = |name: &str| json!([{"keyword": "exec", "args": {"shell": format!("echo {name} >> {}", marker.display())}}]);
    let failing = [
        (
            "pg-unknown-table",
            json!({"keyword": "pg.query", "args": {"sql": "SELECT * FROM atf_no_such_table"}}),
        ),
        (
            "pg-down",
            json!({"keyword": "pg.query", "args": {"sql": "SELECT 1", "resource": "down"}, "timeout": "5s"}),
        ),
        (
            "amqp-no-exchange",
            json!({"keyword": "amqp.publish", "args": {"exchange": "atf-no-such-exchange", "body": "x"}, "timeout": "5s"}),
        ),
        (
            "amqp-nothing-came",
            json!({"keyword": "amqp.consume", "args": {"exchange": "amq.topic", "binding": "${topic}.never", "timeout": "300ms"}}),
        ),
    ];
    for (name, step) in &failing {
        p.file(
            &format!("errors/{name}.case.json"),
            json!({"steps": [step], "cleanup": cleanup(name)}),
        );
    }
    let out = p.atf(&["run", "flow", "errors", "--jobs", "1"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r = p.report();
    for name in ["a_first", "b_second"] {
        assert_eq!(
            case(&r, name)["status"],
            "passed",
            "{name}: {:#}",
            case(&r, name)
        );
    }
    // The script file fails on its line 3, in the server's words.
    let c = case(&r, "c_script");
    assert_eq!(c["status"], "error", "{c:#}");
    let e = c["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(e.contains("ERROR 22P02") && e.contains("at line 3"), "{e}");
    let error_of = |name: &str| -> String {
        let c = case(&r, name);
        assert_eq!(c["status"], "error", "{name}: {c:#}");
        c["steps"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let e = error_of("pg-unknown-table");
    assert!(
        e.contains("ERROR 42P01: relation \"atf_no_such_table\" does not exist"),
        "{e}"
    );
    let e = error_of("pg-down");
    assert!(
        e.contains("cannot connect to pg resource `down`") && e.to_lowercase().contains("refused"),
        "{e}"
    );
    let e = error_of("amqp-no-exchange");
    assert!(
        e.contains("NOT_FOUND - no exchange 'atf-no-such-exchange'"),
        "{e}"
    );
    let e = error_of("amqp-nothing-came");
    assert!(e.contains("saw 0 message(s) since the case began"), "{e}");
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    for (name, _) in &failing {
        assert!(
            ran.lines().any(|l| l == *name),
            "cleanup of {name} did not run: {ran}"
        );
    }
    let text = serde_json::to_string(&r).unwrap();
    assert!(!text.contains("pg-s3cret") && !out.stdout.contains("pg-s3cret"));
    // The suite's cleanup dropped the table.
    let gone = Project::new();
    gone.file(
        "t.case.json",
        json!({"steps": [{"keyword": "pg.query",
            "args": {"sql": "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = $1", "params": [table]},
            "expect": {"$.rows[0].n": 0}}]}),
    );
    let out = gone.atf(&["run", "t.case.json"]);
    assert_eq!(
        out.code, 0,
        "the suite's cleanup left {table}: {}",
        out.stdout
    );
}

#[test]
fn keywords_and_schema_list_every_argument() {
    let p = Project::new();
    let out = p.atf(&["keywords", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let specs: Value = serde_json::from_str(&out.stdout).unwrap();
    let args_of = |name: &str| -> Vec<String> {
        specs
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from atf keywords"))["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(args_of("pg.query"), ["sql", "params", "resource"]);
    assert_eq!(
        args_of("pg.exec"),
        ["sql", "file", "transaction", "resource"]
    );
    assert_eq!(
        args_of("amqp.publish"),
        [
            "exchange",
            "routing_key",
            "body",
            "json",
            "headers",
            "properties",
            "persistent",
            "mandatory",
            "resource"
        ]
    );
    assert_eq!(
        args_of("amqp.consume"),
        [
            "queue", "exchange", "binding", "match", "count", "timeout", "ack", "resource"
        ]
    );
    let out = p.atf(&["schema"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schema: Value = serde_json::from_str(&out.stdout).unwrap();
    let def = &schema["$defs"]["args:amqp.consume"];
    assert!(def["properties"]["binding"].is_object(), "{def:#}");
    // A misspelt argument is a load error, found by `atf check`.
    p.file(
        "bad.case.json",
        json!({"steps": [{"keyword": "pg.query", "args": {"sql": "SELECT 1", "parms": [1]}}]}),
    );
    let out = p.atf(&["check", "bad.case.json"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("parms"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}
