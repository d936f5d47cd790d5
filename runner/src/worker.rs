//! `atf worker --server URL`: a remote executor for an `atf serve`.
//!
//! It connects out only (so it can sit in a network the server cannot
//! reach): it registers, then polls the server about twice a second — each
//! poll is its heartbeat — and when the server hands it a queued run whose
//! labels it has, it runs it the way the server runs its own: a child
//! `atf run ... --report-dir DIR` in its project folder, whose
//! `events.jsonl` it follows and pushes back through the same endpoints
//! as `atf run --server` (`/api/runs/{id}/push`, `/api/runs/{id}/finish`).
//! One run at a time. The token is sent as a bearer header and never
//! printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atf_server::{Host, RunRequest};
use serde_json::{Value, json};

use crate::push::{check, request};

/// How often the worker polls (and so heartbeats).
const POLL: Duration = Duration::from_millis(500);

/// What `atf worker` was given.
pub struct WorkerOptions {
    /// The server's base URL.
    pub server: String,
    /// The API token, if the server needs one.
    pub token: Option<String>,
    /// The worker's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The project folder it runs cases in (canonical).
    pub root: PathBuf,
}

/// `hostname-pid`.
pub fn default_name() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// `k=v,k2=v2` as labels.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("--labels: `{part}` is not KEY=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("--labels: `{part}` has no key"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

struct Client {
    name: String,
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    fn post_json(&self, path: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        check(
            request(&self.http, self.token.as_deref(), &url)
                .header(atf_server::api::WORKER_HEADER, &self.name)
                .json(body)
                .send(),
        )
        .map_err(|e| format!("{url}: {e}"))
    }

    fn post_text(&self, path: &str, body: String) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        check(
            request(&self.http, self.token.as_deref(), &url)
                .header("content-type", "application/x-ndjson")
                .header(atf_server::api::WORKER_HEADER, &self.name)
                .body(body)
                .send(),
        )
        .map_err(|e| format!("{url}: {e}"))
    }
}

/// Runs the worker until it is killed; returns an exit code only when it
/// cannot start.
pub fn run(opts: WorkerOptions) -> i32 {
    let http = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return crate::exit::USAGE;
        }
    };
    let client = Client {
        name: opts.name.clone(),
        base: opts.server.trim_end_matches('/').to_string(),
        token: opts.token.clone(),
        http,
    };
    let register = json!({ "name": opts.name, "labels": opts.labels });
    if let Err(e) = client.post_json("/api/workers", &register) {
        eprintln!("error: cannot register with the server: {e}");
        return crate::exit::USAGE;
    }
    let labels: Vec<String> = opts
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "worker {} registered with {} (labels: {})",
        opts.name,
        client.base,
        if labels.is_empty() {
            "none".into()
        } else {
            labels.join(",")
        }
    );
    let poll_path = format!("/api/workers/{}/poll", urlencode(&opts.name));
    loop {
        match client.post_json(&poll_path, &Value::Null) {
            Ok(v) => {
                if let Some(run) = v.get("run").filter(|r| !r.is_null()) {
                    take(&client, &opts, &poll_path, run);
                    continue;
                }
            }
            Err(e) if e.contains("404") => {
                // Dropped (or the server restarted): register again.
                if let Err(e) = client.post_json("/api/workers", &register) {
                    eprintln!("warning: cannot register again: {e}");
                }
            }
            Err(e) => eprintln!("warning: polling the server: {e}"),
        }
        std::thread::sleep(POLL);
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the run the server handed over and pushes its events and end.
fn take(client: &Client, opts: &WorkerOptions, poll_path: &str, run: &Value) {
    let Some(id) = run["id"].as_i64() else {
        eprintln!("warning: the server handed a run without an id");
        return;
    };
    let req: RunRequest = match serde_json::from_value(run["request"].clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: run {id}: not a run request: {e}");
            let _ = client.post_json(
                &format!("/api/runs/{id}/finish"),
                &json!({ "exit_code": 2 }),
            );
            return;
        }
    };
    println!("run {id}: started");
    let code = execute(client, opts, poll_path, id, &req);
    if let Err(e) = client.post_json(
        &format!("/api/runs/{id}/finish"),
        &json!({ "exit_code": code }),
    ) {
        eprintln!("warning: run {id}: cannot report its end: {e}");
    }
    println!(
        "run {id}: ended ({})",
        code.map_or("killed".into(), |c| format!("exit {c}"))
    );
}

fn report_dir(root: &Path, id: i64) -> PathBuf {
    root.join(".atf").join("worker-runs").join(id.to_string())
}

/// The run's `atf run`, followed; its exit code (`None`: killed, or it
/// could not start).
fn execute(
    client: &Client,
    opts: &WorkerOptions,
    poll_path: &str,
    id: i64,
    req: &RunRequest,
) -> Option<i32> {
    let dir = report_dir(&opts.root, id);
    // A run taken again starts afresh.
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("warning: run {id}: {}: {e}", dir.display());
        return None;
    }
    let host = crate::serve::RunnerHost {
        root: opts.root.clone(),
    };
    let mut cmd = host.run_command(req, &dir);
    let log = std::fs::File::create(dir.join("run.log")).ok();
    cmd.stdin(std::process::Stdio::null());
    if let Some(log) = log {
        if let Ok(l2) = log.try_clone() {
            cmd.stderr(l2);
        }
        cmd.stdout(log);
    }
    // A worker that is killed takes its run with it (Linux): the run was
    // queued again for another worker, so nothing should keep hitting the
    // services under test on its behalf.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and
        // only calls prctl(2), which is async-signal-safe; the signal is
        // sent when this (main, long-lived) thread's process dies.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warning: run {id}: cannot start `atf run`: {e}");
            return None;
        }
    };
    let mut tail = atf_server::runs::Tail::new(dir.join(atf_reports::events_file::FILE_NAME));
    let push_path = format!("/api/runs/{id}/push");
    let mut last_poll = Instant::now();
    let mut pushing = true;
    let mut push = |tail: &mut atf_server::runs::Tail| {
        let lines = match tail.read() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("warning: run {id}: events.jsonl: {e}");
                return;
            }
        };
        if lines.is_empty() || !pushing {
            return;
        }
        let mut body = lines.join("\n");
        body.push('\n');
        if let Err(e) = client.post_text(&push_path, body) {
            eprintln!("warning: run {id}: pushing events stopped: {e}");
            pushing = false;
        }
    };
    loop {
        let exited = child.try_wait();
        push(&mut tail);
        match exited {
            Ok(Some(status)) => {
                push(&mut tail);
                break status.code();
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("warning: run {id}: {e}");
                let _ = child.kill();
                break None;
            }
        }
        if last_poll.elapsed() >= POLL {
            // The heartbeat while it runs.
            if let Err(e) = client.post_json(poll_path, &Value::Null) {
                eprintln!("warning: heartbeat: {e}");
            }
            last_poll = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_key_value_pairs() {
        let l = parse_labels("net=idc-a, os=linux").unwrap();
        assert_eq!(l.get("net").map(String::as_str), Some("idc-a"));
        assert_eq!(l.get("os").map(String::as_str), Some("linux"));
        assert!(parse_labels("net").is_err());
        assert!(parse_labels("").unwrap().is_empty());
    }
}
