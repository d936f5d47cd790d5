//! The run report the JUnit and HTML tests write: six cases in two folders
//! and the top folder — passed, failed, error and skipped; data rows named
//! `order paid[0]`, `order paid[1]`; a failed step whose result holds
//! `<script>`, `&`, quotes and control characters; `log` steps; step sets;
//! prepare, undo and cleanup steps; and a suite whose cleanup failed. Also
//! the helpers that find the external tools the tests drive.

#![allow(dead_code)]

use atf_reports::{CaseReport, Failure, RunReport, Status, StepReport, SuiteReport, Summary};
use serde_json::json;

mod tools;
pub use tools::*;

/// The HTML a service sent back, which must never become markup.
pub const HOSTILE: &str =
    "<script>alert(1)</script><b id=\"pwned\">bold</b> & \"double\" 'single' \u{1b}[31m\u{0}\u{7}";

pub fn step(index: usize, keyword: &str, status: Status) -> StepReport {
    StepReport {
        index,
        keyword: keyword.to_string(),
        status,
        attempts: 1,
        duration_ms: 12,
        ..StepReport::default()
    }
}

pub fn log_step(index: usize, message: &str) -> StepReport {
    StepReport {
        args: json!({ "message": message }),
        result: json!({ "message": message }),
        ..step(index, "log", Status::Passed)
    }
}

pub fn case(name: &str, file: &str, status: Status) -> CaseReport {
    CaseReport {
        name: name.to_string(),
        file: file.to_string(),
        status,
        duration_ms: 250,
        ..CaseReport::default()
    }
}

/// The fixture run.
pub fn sample() -> RunReport {
    let http_ok = StepReport {
        remark: Some("ask the order service".into()),
        args: json!({ "method": "GET", "url": "http://127.0.0.1:8080/orders/1" }),
        result: json!({ "status": 200, "body": { "id": 1, "state": "PAID", "total": 12.5, "gift": false, "note": null } }),
        ..step(1, "http.request", Status::Passed)
    };

    let mut paid0 = case("order paid[0]", "orders/paid.case.json", Status::Passed);
    paid0.tags = vec!["order".into(), "smoke".into()];
    paid0.data_index = Some(0);
    paid0.remark = Some("pays an order".into());
    paid0.steps = vec![http_ok.clone(), log_step(2, "created order ORD-1")];

    let mut paid1 = case("order paid[1]", "orders/paid.case.json", Status::Failed);
    paid1.tags = vec!["order".into(), "smoke".into()];
    paid1.data_index = Some(1);
    paid1.error = Some("steps failed at step 1: $.status expected 200 <b>&amp;</b>".into());
    paid1.steps = vec![
        StepReport {
            remark: Some("pay with an expired card".into()),
            attempts: 3,
            duration_ms: 1500,
            args: json!({ "method": "POST", "url": "/orders/2/pay", "json": { "card": "4111" } }),
            result: json!({ "status": 500, "body": HOSTILE, "headers": { "content-type": "text/html" } }),
            failures: vec![
                Failure {
                    path: "$.status".into(),
                    expected: json!(200),
                    actual: json!(500),
                    message: "expected 200, got 500".into(),
                    location: None,
                },
                Failure {
                    path: "$.body".into(),
                    expected: json!({ "$contains": "paid" }),
                    actual: json!(HOSTILE),
                    message: format!("{HOSTILE} does not contain \"paid\""),
                    location: None,
                },
            ],
            ..step(1, "http.request", Status::Failed)
        },
        log_step(2, "log <with> & \u{1b} control"),
        step(3, "mysql.query", Status::Skipped),
    ];

    let mut refund = case("refund", "orders/refund.case.json", Status::Error);
    refund.tags = vec!["order".into()];
    refund.error = Some("prepare failed at step 1: connection refused".into());
    refund.prepare = vec![StepReport {
        args: json!({ "sql": "DELETE FROM refunds WHERE id = ?", "params": [7] }),
        error: Some("connection refused (os error 111)\nwhile connecting to 127.0.0.1:3306".into()),
        ..step(1, "mysql.exec", Status::Error)
    }];
    refund.steps = vec![step(1, "http.request", Status::Skipped)];

    let mut login = case("login", "users/login.case.json", Status::Passed);
    login.tags = vec!["users".into(), "smoke".into()];
    login.prepare = vec![StepReport {
        args: json!({ "sql": "INSERT INTO users (name) VALUES (?)", "params": ["ann"] }),
        result: json!({ "affected_rows": 1, "last_insert_id": 42 }),
        ..step(1, "mysql.query", Status::Passed)
    }];
    login.steps = vec![
        StepReport {
            set: Some(1),
            ..http_ok.clone()
        },
        StepReport {
            set: Some(1),
            ..log_step(2, "logged in as ann")
        },
        StepReport {
            set: Some(2),
            args: json!({ "cmd": ["GET", "session:42"] }),
            result: json!({ "value": "abc" }),
            ..step(1, "redis.command", Status::Passed)
        },
    ];
    login.cleanup = vec![
        StepReport {
            undo: true,
            args: json!({ "sql": "DELETE FROM users WHERE id = ?", "params": [42] }),
            result: json!({ "affected_rows": 1 }),
            ..step(1, "mysql.query", Status::Passed)
        },
        StepReport {
            args: json!({ "cmd": ["DEL", "session:42"] }),
            result: json!({ "value": 1 }),
            ..step(1, "redis.command", Status::Passed)
        },
    ];

    let mut locked = case("locked user", "users/locked.case.json", Status::Skipped);
    locked.tags = vec!["users".into(), "slow".into()];
    locked.error = Some("not run: the run was interrupted".into());
    locked.duration_ms = 0;

    let mut top = case("smoke \"quoted\" & <name>", "top.case.json", Status::Passed);
    top.steps = vec![StepReport {
        args: json!({ "value": 1 }),
        result: json!({ "value": 1 }),
        ..step(1, "assert", Status::Passed)
    }];

    let cases = vec![paid0, paid1, refund, login, locked, top];
    RunReport {
        summary: Summary::count(&cases, 4321),
        env: Some("local".into()),
        started_at: "2026-11-20T10:15:00+01:00".into(),
        shard: None,
        interrupted: false,
        suites: vec![SuiteReport {
            file: "users/suite.json".into(),
            status: Some(Status::Failed),
            prepare: vec![step(1, "ctx.set", Status::Passed)],
            cleanup: vec![StepReport {
                failures: vec![Failure {
                    path: "$.affected_rows".into(),
                    expected: json!(1),
                    actual: json!(0),
                    message: "expected 1, got 0".into(),
                    location: None,
                }],
                ..step(1, "mysql.exec", Status::Failed)
            }],
            ..SuiteReport::default()
        }],
        cases,
    }
}

/// `count` cases across 50 folders, a tenth failed, each with three steps.
pub fn large(count: usize) -> RunReport {
    let cases: Vec<CaseReport> = (0..count)
        .map(|i| {
            let status = if i % 10 == 3 {
                Status::Failed
            } else {
                Status::Passed
            };
            let mut c = case(
                &format!("case {i}"),
                &format!("area{}/case{i}.case.json", i % 50),
                status,
            );
            c.tags = vec![format!("t{}", i % 7)];
            c.steps = (1..=3)
                .map(|n| StepReport {
                    args: json!({ "url": format!("/items/{i}/{n}") }),
                    result: json!({ "status": 200, "body": { "items": [1, 2, 3], "text": "x".repeat(200) } }),
                    ..step(n, "http.request", Status::Passed)
                })
                .collect();
            if status == Status::Failed {
                c.error = Some("steps failed at step 3".into());
                c.steps[2].status = Status::Failed;
            }
            c
        })
        .collect();
    RunReport {
        summary: Summary::count(&cases, 60_000),
        started_at: "2026-11-20T10:15:00Z".into(),
        cases,
        ..RunReport::default()
    }
}
