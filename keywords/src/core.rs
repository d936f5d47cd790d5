//! Core keywords: `assert`, `ctx.set`, `sleep`, `log` and `exec`.
//!
//! `ctx.set` and `log` only return their input: the runner stores what
//! `ctx.set` returns in the case context and shows `log` messages in the
//! reports.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use atf_sdk::{Call, FnKeyword, Keyword, KeywordError, KeywordResult, KeywordSpec, Value, json};

use crate::Env;

/// The specs of the core keywords. Like every built-in keyword they take
/// `resource` (SPEC §5); they use no connection, so it changes nothing.
pub fn specs() -> Vec<KeywordSpec> {
    let with_resource = |spec: KeywordSpec| {
        if spec.open_args {
            spec
        } else {
            spec.arg(
                "resource",
                "string",
                "accepted like on every built-in keyword; unused here",
            )
        }
    };
    let specs = vec![
        KeywordSpec::new("assert", "Returns `value` so that `expect` can check it.")
            .arg("value", "", "any value, usually with placeholders")
            .result("`value`: the value given"),
        KeywordSpec::new(
            "ctx.set",
            "Stores each argument in the case context (the global context in a suite).",
        )
        .open_args()
        .saves_result()
        .result("the names and values given"),
        KeywordSpec::new("sleep", "Waits; a Ctrl-C cuts the wait short.")
            .required(
                "duration",
                "string|number",
                "e.g. \"500ms\", \"2s\", or milliseconds",
            )
            .result("nothing (`null`)"),
        KeywordSpec::new("log", "Writes a message into the reports.")
            .required("message", "", "text or any value")
            .result("`message`: the message"),
        KeywordSpec::new(
            "exec",
            "Runs a program and returns its exit code and output.",
        )
        .arg(
            "cmd",
            "array",
            "program and arguments, e.g. [\"ls\", \"-l\"] (no shell)",
        )
        .arg(
            "shell",
            "string",
            "a command line for `sh -c` (instead of `cmd`)",
        )
        .arg("env", "object", "extra environment variables")
        .arg("stdin", "string", "text written to its standard input")
        .arg(
            "cwd",
            "string",
            "working folder (default: the case file's folder)",
        )
        .arg(
            "timeout",
            "string|number",
            "kill it, and every process it started, after this long (default: the step timeout)",
        )
        .result(
            "`exit_code`, `stdout`, `stderr` (text); `signal` when a signal ended it; \
             `truncated` (stream → total bytes) when output beyond the body limit was dropped",
        ),
    ];
    specs.into_iter().map(with_resource).collect()
}

fn spec_of(name: &str) -> KeywordSpec {
    specs()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| KeywordSpec::new(name, ""))
}

/// The core keywords of a run.
pub fn keywords(env: &Env) -> Vec<Arc<dyn Keyword>> {
    let env = env.clone();
    vec![
        Arc::new(
            FnKeyword::new(spec_of("assert"), |c: &Call<'_>| {
                Ok(json!({ "value": c.args.get("value").cloned().unwrap_or(Value::Null) }))
            })
            .cooperative(),
        ),
        Arc::new(
            FnKeyword::new(spec_of("ctx.set"), |c: &Call<'_>| match c.args {
                Value::Object(_) => Ok(c.args.clone()),
                _ => Err(KeywordError::new(
                    "ctx.set takes an object of names and values",
                )),
            })
            .cooperative(),
        ),
        // Its wait suspends a virtual user's coroutine (`crate::local::sleep`).
        Arc::new(FnKeyword::new(spec_of("sleep"), sleep).cooperative()),
        Arc::new(
            FnKeyword::new(spec_of("log"), |c: &Call<'_>| {
                let message = c
                    .arg("message")
                    .cloned()
                    .ok_or_else(|| KeywordError::new("argument `message` is required"))?;
                Ok(json!({ "message": message }))
            })
            .cooperative(),
        ),
        Arc::new(FnKeyword::new(spec_of("exec"), move |c: &Call<'_>| {
            exec(&env, c)
        })),
    ]
}

fn sleep(c: &Call<'_>) -> KeywordResult {
    let d = c
        .arg("duration")
        .ok_or_else(|| KeywordError::new("argument `duration` is required"))?;
    let d = atf_sdk::parse_duration(d).map_err(KeywordError::new)?;
    let end = Instant::now() + d;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(Value::Null);
        }
        if now >= c.deadline {
            return Err(KeywordError::new(format!(
                "sleep of {d:?} is longer than the step timeout"
            )));
        }
        if c.host.cancelled() {
            return Err(KeywordError::new("sleep interrupted"));
        }
        let slice = (end - now)
            .min(c.deadline.saturating_duration_since(now))
            .min(Duration::from_millis(50));
        crate::local::sleep(slice);
    }
}

/// The process groups of the `exec` programs running now, so that a hard
/// stop (a second Ctrl-C) can end them all.
fn running_groups() -> &'static Mutex<HashSet<i32>> {
    static GROUPS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    GROUPS.get_or_init(Default::default)
}

/// Kills every process group that `exec` started and that still runs:
/// for a hard stop, where no step gets to clean up after itself.
pub fn kill_running_programs() {
    let groups = running_groups()
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    for &group in groups.iter() {
        kill_group(group);
    }
}

/// Sends SIGKILL to the process group `group`.
fn kill_group(group: i32) {
    #[cfg(unix)]
    // SAFETY: kill(2) on a process group this process created.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// A program's process group, registered while it may run; dropping it
/// kills the group unless [`Group::leave`] was called.
struct Group {
    id: i32,
    kill: bool,
}

impl Group {
    fn new(id: i32) -> Group {
        running_groups()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
        Group { id, kill: true }
    }

    /// The program ended and nothing of its group holds our pipes: leave
    /// whatever it started in the background alone.
    fn leave(mut self) {
        self.kill = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        running_groups()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        if self.kill {
            kill_group(self.id);
        }
    }
}

/// How long the output pipes may stay open after the program ended (a
/// background child still writing) before its whole group is killed.
const LINGER: Duration = Duration::from_millis(100);

/// Reads a pipe to its end, keeping the first `cap` bytes; returns them and
/// the total size.
async fn read_pipe(pipe: Option<impl tokio::io::AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, u64) {
    use tokio::io::AsyncReadExt;
    let Some(mut pipe) = pipe else {
        return (Vec::new(), 0);
    };
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, total),
            Ok(n) => {
                total += n as u64;
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
            }
        }
    }
}

fn exec(env: &Env, c: &Call<'_>) -> KeywordResult {
    if !env.policy.exec {
        return Err(KeywordError::new(
            "`exec` is not allowed in this project (\"allow\": {\"exec\": false} in the project file)",
        ));
    }
    let rt = &env.runtime;
    let mut cmd = match (c.arg("cmd"), c.str_arg("shell")?) {
        (Some(Value::Array(items)), None) => {
            let mut words = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => words.push(s.clone()),
                    Value::Number(n) => words.push(n.to_string()),
                    other => {
                        return Err(KeywordError::new(format!(
                            "`cmd` items must be strings, got {}",
                            atf_sdk::type_name(other)
                        )));
                    }
                }
            }
            let Some((program, rest)) = words.split_first() else {
                return Err(KeywordError::new("`cmd` is empty"));
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(rest);
            cmd
        }
        (None, Some(shell)) => {
            let mut cmd = tokio::process::Command::new("sh");
            cmd.arg("-c").arg(shell);
            cmd
        }
        (Some(_), Some(_)) => return Err(KeywordError::new("give `cmd` or `shell`, not both")),
        (Some(_), None) => return Err(KeywordError::new("`cmd` must be a list of strings")),
        (None, None) => return Err(KeywordError::new("argument `cmd` or `shell` is required")),
    };
    if let Some(env) = c.arg("env") {
        let Value::Object(env) = env else {
            return Err(KeywordError::new(
                "`env` must be an object of names and values",
            ));
        };
        for (k, v) in env {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            cmd.env(k, v);
        }
    }
    match c.str_arg("cwd")? {
        Some(dir) => cmd.current_dir(c.base_dir.join(dir)),
        None => cmd.current_dir(c.base_dir),
    };
    let timeout = match c.arg("timeout") {
        Some(t) => atf_sdk::parse_duration(t).map_err(KeywordError::new)?,
        None => c.remaining(),
    }
    .min(c.remaining());
    let stdin = c.str_arg("stdin")?.map(str::to_owned);
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    cmd.kill_on_drop(true);
    // A group of its own: on a timeout or Ctrl-C the program and
    // everything it started are killed together, and the terminal's
    // Ctrl-C reaches atf only, which decides.
    #[cfg(unix)]
    cmd.process_group(0);
    let program = format!("{:?}", cmd.as_std().get_program());
    let cap = env.policy.body_bytes;
    rt.block_on(async move {
        let mut child = cmd
            .spawn()
            .map_err(|e| KeywordError::new(format!("cannot start {program}: {e}")))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Group::new);
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            // Fed on a task of its own: a program that writes a lot before
            // reading must not wait for us, nor we for it.
            tokio::spawn(async move {
                // A program that exits without reading its input is not an error.
                let _ = pipe.write_all(text.as_bytes()).await;
            });
        }
        let mut out = tokio::spawn(read_pipe(child.stdout.take(), cap));
        let mut err = tokio::spawn(read_pipe(child.stderr.take(), cap));
        let until = tokio::time::Instant::now() + timeout;
        let ended = loop {
            tokio::select! {
                status = child.wait() => break Ok(status),
                () = tokio::time::sleep_until(until) => break Err(format!(
                    "{program} did not finish within {timeout:?}; it and every process it started were killed"
                )),
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if c.host.cancelled() {
                        break Err(format!(
                            "{program} was stopped because the run is being interrupted; it and every process it started were killed"
                        ));
                    }
                }
            }
        };
        let status = match ended {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(KeywordError::new(format!("{program}: {e}"))),
            Err(why) => {
                // Dropping the group kills it; then reap the program.
                drop(group);
                let _ = child.wait().await;
                return Err(KeywordError::new(why));
            }
        };
        // The program ended; something it started may still hold the
        // pipes. Give it a moment, then end the whole group.
        let linger = tokio::time::Instant::now() + LINGER;
        let finished = tokio::time::timeout_at(linger, async {
            let o = (&mut out).await;
            let e = (&mut err).await;
            (o, e)
        })
        .await;
        let ((stdout, out_total), (stderr, err_total)) = match finished {
            Ok((Ok(o), Ok(e))) => {
                if let Some(g) = group {
                    g.leave();
                }
                (o, e)
            }
            _ => {
                drop(group);
                let o = out.await.unwrap_or_default();
                let e = err.await.unwrap_or_default();
                (o, e)
            }
        };
        let mut result = json!({
            "exit_code": status.code(),
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&stderr),
        });
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(signal) = status.signal() {
                result["signal"] = json!(signal);
            }
        }
        let mut cut = serde_json::Map::new();
        if out_total > stdout.len() as u64 {
            cut.insert("stdout".into(), json!(out_total));
        }
        if err_total > stderr.len() as u64 {
            cut.insert("stderr".into(), json!(err_total));
        }
        if !cut.is_empty() {
            result["truncated"] = Value::Object(cut);
        }
        Ok(result)
    })
}
