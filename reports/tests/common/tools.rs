//! The external tools the report tests drive — headless Chromium for
//! `index.html`, Python's junitparser for `junit.xml` (from the project's
//! virtual environment in `.tools/venv`), the Allure CLI — and a way to run a
//! command with a time limit. Shared by the `atf-reports` tests and the
//! binary-level report tests of the runner (`runner/tests/it`), which
//! include this file by path.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The Chromium binary, or a panic that says how to install it.
pub fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    assert!(
        path.exists(),
        "{CHROMIUM} is missing: the HTML report tests render the page in headless Chromium. \
         Run scripts/test-deps.sh (or: apt-get update && apt-get install -y chromium)."
    );
    path
}

/// Headless Chromium with the flags that keep it off the network and quiet.
pub fn chromium_command(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--mute-audio",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Runs `cmd`, killing it after `limit`; `None` when it did not finish.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> std::io::Result<Option<Output>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || read_all(stdout.as_mut()));
    let err = std::thread::spawn(move || read_all(stderr.as_mut()));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(status.map(|status| Output {
        status,
        stdout,
        stderr,
    }))
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut buf);
    }
    buf
}

const READER: &str = r#"
import json, sys
from junitparser import JUnitXml

xml = JUnitXml.fromfile(sys.argv[1])
out = {"tests": xml.tests, "failures": xml.failures, "errors": xml.errors,
       "skipped": xml.skipped, "time": xml.time, "suites": []}
for s in xml:
    err = s._elem.find("system-err")
    suite = {"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors,
             "skipped": s.skipped, "time": s.time, "timestamp": s.timestamp,
             "properties": {p.name: p.value for p in s.properties()},
             "system_err": None if err is None else err.text, "cases": []}
    for c in s:
        suite["cases"].append({
            "name": c.name, "classname": c.classname, "time": c.time,
            "results": [{"kind": type(r).__name__, "message": r.message, "type": r.type,
                         "text": r.text} for r in c.result],
            "system_out": c.system_out,
            "properties": {p.get("name"): p.get("value") for p in c._elem.iter("property")},
            "reruns": [{"tag": e.tag, "message": e.get("message"), "type": e.get("type"),
                        "text": e.text} for e in c._elem
                       if e.tag in ("flakyFailure", "flakyError", "rerunFailure", "rerunError")]})
    out["suites"].append(suite)
print(json.dumps(out))
"#;

/// The project's tool folder (`.tools` at the workspace root), where
/// `scripts/test-deps.sh` puts the Python virtual environment and the
/// Allure CLI.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace")
        .join(".tools")
}

/// The Python of the project's virtual environment, or a panic that says
/// how to make it.
pub fn test_python() -> PathBuf {
    let python = tools_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the report tests read junit.xml with junitparser from the project's \
         virtual environment. Run scripts/test-deps.sh.",
        python.display()
    );
    python
}

/// The Allure CLI installed by `scripts/test-deps.sh`, or a panic that
/// says how to install it.
pub fn allure_cli() -> PathBuf {
    let allure = tools_dir().join("node/node_modules/.bin/allure");
    assert!(
        allure.exists(),
        "{} is missing: the Allure tests render results with the Allure CLI. \
         Run scripts/test-deps.sh (npm allure-commandline into .tools/node; it needs Java).",
        allure.display()
    );
    allure
}

/// What junitparser read from `path`, as JSON.
pub fn read_with_junitparser(path: &std::path::Path) -> Value {
    let python = test_python();
    let probe = Command::new(&python)
        .args(["-c", "import junitparser"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} cannot import junitparser: run scripts/test-deps.sh \
             (it installs junitparser into the project's virtual environment). Python said:\n{}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "{} does not run ({e}): run scripts/test-deps.sh",
            python.display()
        ),
    }
    let out = Command::new(&python)
        .arg("-c")
        .arg(READER)
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "junitparser could not read {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the reader prints JSON")
}
