//! `atf serve` in a real browser: tests/browser/serve.mjs drives headless
//! chromium with playwright-core through the pages, against the real
//! server process on a temp project whose cases call a real HTTP server
//! started by the test, and real `atf worker` processes.
//!
//! Needs node, playwright-core in `.tools/browser` and /usr/bin/chromium:
//! `scripts/test-deps.sh` installs them. With `ATF_SCREENSHOTS=DIR` the
//! script writes screenshots of the main pages there (docs/img holds the
//! guide's).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::{SECRET, Serve, project, start_worker};
use crate::server::TestServer;
use crate::util::{Project, workspace};

const HOW: &str = "run scripts/test-deps.sh (it installs node, playwright-core from \
                   tests/browser/package-lock.json into .tools/browser, and Debian's chromium)";

/// The token of the login test's server.
const LOGIN_TOKEN: &str = "br0wser-l0gin-7731";

/// What the browser tests need, or a failure that says how to get it.
fn tools() -> (PathBuf, PathBuf) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is missing: {HOW}"
    );
    let dir = workspace().join(".tools/browser");
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing from {}: {HOW}",
        dir.display()
    );
    let chromium = PathBuf::from("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "{} is missing: {HOW}",
        chromium.display()
    );
    (dir, chromium)
}

/// One run of the browser script: its stdout lines as they come.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Script {
    fn start(phase: &str, s: &Serve, project: &Project, args: &[&str]) -> Script {
        let (tools, chromium) = tools();
        let mut cmd = Command::new("node");
        cmd.arg(workspace().join("tests/browser/serve.mjs"))
            .arg(phase)
            .arg(&s.url)
            .args(args)
            .env("ATF_BROWSER_TOOLS", tools)
            .env("ATF_CHROMIUM", chromium)
            .env("ATF_PROJECT", project.path())
            .env("ATF_SECRET", SECRET)
            .env("ATF_TOKEN", LOGIN_TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = std::env::var_os("ATF_SCREENSHOTS") {
            cmd.env("ATF_SCREENSHOTS", dir);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdin = child.stdin.take();
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (its rest); a `FAIL` line or
    /// the end of the script fails the test with what the script said.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(600)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                    assert!(
                        !line.starts_with("FAIL"),
                        "the browser test failed: {line}\n{}",
                        self.seen.join("\n")
                    );
                    self.seen.push(line);
                }
                Err(_) => panic!(
                    "the browser script ended without {prefix:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Its `RESULT`, after a clean exit.
    fn result(mut self) -> Value {
        let result = self.expect("RESULT ");
        let status = self.child.wait().expect("wait for node");
        assert!(status.success(), "the browser script exited with {status}");
        serde_json::from_str(&result).expect("RESULT JSON")
    }

    fn go_on(&mut self) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("write to the script");
        stdin.flush().expect("flush");
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The slow case of the worker part: it waits `ms` (a var of the project
/// that runs it) at the test server.
fn with_slow_case(p: &Project, srv: &TestServer, ms: u64) {
    p.file(
        "slow/wait.case.json",
        json!({"name": "waits", "steps": [
            {"keyword": "http.request", "args": {"url": "/delay/${ms}"}}
        ]}),
    );
    p.file(
        "atf.json",
        json!({
            "default_env": "test",
            "secrets": ["token"],
            "envs": {"test": {
                "vars": {"token": SECRET, "ms": ms.to_string()},
                "resources": {"http": {"default": {"base_url": srv.url()}}}
            }}
        }),
    );
}

#[test]
fn a_user_edits_runs_and_finds_a_case_in_the_browser() {
    tools();
    let srv = TestServer::start();
    let p = project(&srv);
    with_slow_case(&p, &srv, 10);
    // A silent worker is dropped after 1.5 s (its run queued again).
    let env = [("ATF_SERVE_WORKER_TIMEOUT_MS", "1500")];
    let s = Serve::start(&p, &[], &env);

    // Search, break and fix a case in the editor, save it, run it live,
    // a new case from a template, a run by tag from the form.
    let edit = Script::start("edit", &s, &p, &[]).result();
    let run = edit["run"].as_i64().expect("the run's id").to_string();

    // After a restart the run is in the history.
    drop(s);
    let s = Serve::start(&p, &[], &env);
    let history = Script::start("history", &s, &p, &[&run]).result();
    assert_eq!(history["id"].to_string(), run);

    // A worker takes the run started from the page.
    let fast = project(&srv);
    with_slow_case(&fast, &srv, 10);
    let w1 = start_worker(&s, &fast, "w1", "");
    let by_worker = Script::start("worker", &s, &p, &["w1"]).result();
    assert!(by_worker["id"].is_i64());
    drop(w1);

    // A worker killed mid-run: the run is queued again, the page says so
    // and follows the next worker's attempt to its end.
    let slow = project(&srv);
    with_slow_case(&slow, &srv, 60_000);
    let first = start_worker(&s, &slow, "first", "");
    let mut kill = Script::start("kill", &s, &p, &["second"]);
    let id = kill.expect("KILL ");
    drop(first); // SIGKILL
    let _second = start_worker(&s, &fast, "second", "");
    kill.go_on();
    let killed = kill.result();
    assert_eq!(killed["id"].to_string(), id);
}

#[test]
fn a_user_logs_in_with_the_token_and_saves_and_runs_a_case() {
    tools();
    let srv = TestServer::start();
    let p = project(&srv);
    let s = Serve::start(&p, &[], &[("ATF_SERVE_TOKEN", LOGIN_TOKEN)]);
    let login = Script::start("login", &s, &p, &[]).result();
    assert!(login["id"].is_i64(), "{login}");
}
