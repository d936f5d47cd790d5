//! Helpers for the tests that run the real `atf` binary: a temporary
//! project folder, running `atf` in it, reading its reports, and — for
//! long-running processes (`atf run --watch`) — the process with its output
//! read as it comes. Shared by the `it`, `plugin_cli` and `watch` test
//! binaries.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A temporary project folder.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (a JSON value is written pretty), making its folders.
    pub fn file(&self, rel: &str, content: impl Into<Content>) -> &Project {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        let text = match content.into() {
            Content::Json(v) => serde_json::to_string_pretty(&v).expect("json"),
            Content::Text(t) => t,
        };
        std::fs::write(path, text).expect("write");
        self
    }

    /// `atf ARGS` in the project folder, without `ATF_PLUGIN_PATH`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(atf_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("ATF_PLUGIN_PATH");
        cmd
    }

    /// Runs `atf ARGS` to its end.
    pub fn atf(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run atf");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `atf-report/report.json`.
    pub fn report(&self) -> Value {
        self.report_in("atf-report")
    }

    /// `DIR/report.json`.
    pub fn report_in(&self, dir: &str) -> Value {
        let text = std::fs::read_to_string(self.join(dir).join("report.json"))
            .expect("report.json was not written");
        serde_json::from_str(&text).expect("report.json is JSON")
    }
}

/// The `atf` binary under test.
pub fn atf_bin() -> &'static str {
    env!("CARGO_BIN_EXE_atf")
}

/// A project file pointing the default http resource at `url`.
pub fn project_file(url: &str) -> Value {
    serde_json::json!({
        "default_env": "test",
        "envs": { "test": { "resources": { "http": { "default": { "base_url": url } } } } }
    })
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last line of stdout (the summary).
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

pub enum Content {
    Json(Value),
    Text(String),
}

impl From<Value> for Content {
    fn from(v: Value) -> Self {
        Content::Json(v)
    }
}

impl From<&str> for Content {
    fn from(v: &str) -> Self {
        Content::Text(v.to_string())
    }
}

impl From<String> for Content {
    fn from(v: String) -> Self {
        Content::Text(v)
    }
}

/// The names of a report's cases, in report order.
pub fn case_names(report: &Value) -> Vec<&str> {
    report["cases"]
        .as_array()
        .map(|cases| cases.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The case report named `name` in a `report.json`.
pub fn case<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no case {name} in report: {report:#}"))
}

/// A running `atf` process whose stdout and stderr are collected.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let to = text.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn atf");
        let stdout = collect(child.stdout.take().expect("stdout"));
        let stderr = collect(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// How many times `needle` occurs in stdout.
    pub fn count(&self, needle: &str) -> usize {
        self.stdout().matches(needle).count()
    }

    /// Waits until `needle` occurs `n` times in stdout.
    pub fn wait_for(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not appear {n} times in {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with a pid of our own child and a valid signal.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "kill -INT");
    }

    /// Waits for the process to end within `timeout`; its exit code (-1
    /// for a signal) and how long it took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (i32, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "atf did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The workspace folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner crate sits in the workspace")
        .to_path_buf()
}

/// The target folder and profile folder this test binary was built in
/// (`target/debug/deps/NAME-*` → `target`, `debug`).
pub fn target() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "debug".into());
    let target = profile_dir.parent().expect("target folder").to_path_buf();
    (target, profile)
}

/// The file name of the shared library of crate `crate_name`.
pub fn lib_name(crate_name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}
