//! Test harness: a temporary project folder and a way to run the real
//! `atf` binary in it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

pub struct Project {
    dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last line of stdout (the summary line).
    pub fn last_line(&self) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

pub fn atf_bin() -> &'static str {
    env!("CARGO_BIN_EXE_atf")
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Writes a file (a JSON value is written pretty).
    pub fn file(&self, rel: &str, content: impl Into<Content>) -> &Project {
        let path = self.dir.path().join(rel);
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

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(atf_bin());
        cmd.args(args).current_dir(self.dir.path());
        cmd.env_remove("ATF_PLUGIN_PATH");
        cmd
    }

    pub fn atf(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run atf");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn report(&self) -> Value {
        self.report_in("atf-report")
    }

    pub fn report_in(&self, dir: &str) -> Value {
        let text = std::fs::read_to_string(self.dir.path().join(dir).join("report.json"))
            .expect("report.json was not written");
        serde_json::from_str(&text).expect("report.json is JSON")
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
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

/// The case named `name` in a report.
pub fn case<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no case {name} in report: {report:#}"))
}

/// A project file pointing the default http resource at `url`.
pub fn project_file(url: &str) -> Value {
    serde_json::json!({
        "default_env": "test",
        "envs": { "test": { "resources": { "http": { "default": { "base_url": url } } } } }
    })
}
