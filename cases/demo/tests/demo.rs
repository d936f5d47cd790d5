//! The demo, end to end: `scripts/demo.sh` starts the demo order system and
//! runs the example suites in `cases/` with atf; `scripts/demo.sh --bug`
//! runs them against the order service with its deliberate bug.
//!
//! These tests need MariaDB, Redis, the Kafka broker and RabbitMQ on
//! 127.0.0.1. When one is missing they FAIL, saying to run
//! `scripts/services.sh`.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// Both tests use port 18080: one at a time.
static DEMO: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Fails the test when a backing service does not answer.
fn require_services() {
    for (name, addr) in [
        ("MariaDB", "127.0.0.1:3306"),
        ("Redis", "127.0.0.1:6379"),
        ("the Kafka broker (tansu)", "127.0.0.1:9092"),
        ("RabbitMQ", "127.0.0.1:5672"),
    ] {
        let sock: SocketAddr = addr.parse().expect("address");
        if TcpStream::connect_timeout(&sock, Duration::from_secs(2)).is_err() {
            panic!(
                "{name} does not answer on {addr}: run `scripts/services.sh` first \
                 (it starts MariaDB, Redis, the Kafka broker and RabbitMQ)"
            );
        }
    }
}

struct Run {
    code: i32,
    output: String,
    report: Value,
}

/// Runs `scripts/demo.sh` with `args`, reports under a folder of its own.
fn demo(args: &[&str], dir: &str) -> Run {
    let demo_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let _ = std::fs::remove_dir_all(&demo_dir);
    let out = Command::new("bash")
        .arg(root().join("scripts/demo.sh"))
        .args(args)
        .env("ATF_DEMO_DIR", &demo_dir)
        .current_dir(root())
        .output()
        .expect("run scripts/demo.sh");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report_dir = if args.contains(&"--bug") {
        "report-bug"
    } else {
        "report"
    };
    let path = demo_dir.join(report_dir).join("report.json");
    let report = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).expect("report.json is JSON"),
        Err(e) => panic!("no {} ({e}); demo output:\n{output}", path.display()),
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        output,
        report,
    }
}

/// Every case file under `cases/`, relative to the workspace root.
fn case_files() -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read cases/").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.to_string_lossy().ends_with(".case.json") {
                let rel = path.strip_prefix(root).expect("under root");
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = root();
    let mut out = BTreeSet::new();
    walk(&root.join("cases"), &root, &mut out);
    out
}

fn cases(report: &Value) -> &Vec<Value> {
    report["cases"].as_array().expect("report.cases")
}

/// Every failure object anywhere inside `v`.
fn failures(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(fs)) = m.get("failures") {
                out.extend(fs.iter().cloned());
            }
            m.values().for_each(|x| failures(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| failures(x, out)),
        _ => {}
    }
}

#[test]
fn the_demo_passes_every_example_case() {
    let _one = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    require_services();
    let run = demo(&[], "demo-pass");
    assert_eq!(run.code, 0, "atf failed on the demo:\n{}", run.output);
    let all = cases(&run.report);
    let not_passed: Vec<String> = all
        .iter()
        .filter(|c| c["status"] != "passed")
        .map(|c| format!("{} ({}): {}", c["name"], c["status"], c["error"]))
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:#?}\n{}", run.output);
    let files: BTreeSet<String> = all
        .iter()
        .filter_map(|c| c["file"].as_str().map(str::to_string))
        .collect();
    assert_eq!(files, case_files(), "every example case file ran");
    // Data rows make one case each: 4 discount rows, 7 validation rows.
    assert!(all.len() >= 15, "{} cases", all.len());
    assert_eq!(run.report["summary"]["passed"], all.len());
    assert_eq!(run.report["summary"]["failed"], 0);
    assert!(
        run.output
            .contains(&format!("{} passed, 0 failed", all.len())),
        "{}",
        run.output
    );
    assert!(run.output.contains("index.html"), "{}", run.output);
}

#[test]
fn the_negative_demo_catches_the_deliberate_bug() {
    let _one = DEMO.lock().unwrap_or_else(|e| e.into_inner());
    require_services();
    let run = demo(&["--bug"], "demo-bug");
    assert_eq!(
        run.code, 0,
        "the negative demo exits 0 only when atf caught the bug:\n{}",
        run.output
    );
    assert!(run.output.contains("EXPECTED FAILURE"), "{}", run.output);
    let all = cases(&run.report);
    let failed: Vec<&Value> = all.iter().filter(|c| c["status"] == "failed").collect();
    // The bug applies the discount twice: exactly the "discount on" rows fail.
    let names: BTreeSet<&str> = failed.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "discount on: 1 x 12.50 costs 11.25",
            "discount on: 2 x 12.50 costs 22.50",
            "discount on: 3 x 12.50 costs 33.75",
        ]),
        "{}",
        run.output
    );
    for c in &failed {
        let mut fs = Vec::new();
        failures(c, &mut fs);
        let amount = fs
            .iter()
            .find(|f| f["path"] == "$.value.amount")
            .unwrap_or_else(|| panic!("no failure on $.value.amount in {c:#}"));
        let want = c["name"]
            .as_str()
            .and_then(|n| n.rsplit(' ').next())
            .expect("name ends with the amount");
        assert_eq!(amount["expected"], want, "{c:#}");
        assert_ne!(amount["actual"], want, "{c:#}");
    }
    // The failure is shown readably on the console: the path, expected and actual.
    assert!(
        run.output.contains("$.value.amount") && run.output.contains("20.25"),
        "{}",
        run.output
    );
    let passed = all.iter().filter(|c| c["status"] == "passed").count();
    assert_eq!(passed + failed.len(), all.len(), "{}", run.output);
}
