//! Core keywords: `assert`, `ctx.set`, `sleep`, `log` and `exec`.
//!
//! `ctx.set` and `log` only return their input: the runner stores what
//! `ctx.set` returns in the case context and shows `log` messages in the
//! reports.

use std::sync::Arc;
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
            "kill it after this long (default: the step timeout)",
        )
        .result("`exit_code`, `stdout`, `stderr` (text)"),
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
    let rt = env.runtime.clone();
    vec![
        Arc::new(FnKeyword::new(spec_of("assert"), |c: &Call<'_>| {
            Ok(json!({ "value": c.args.get("value").cloned().unwrap_or(Value::Null) }))
        })),
        Arc::new(FnKeyword::new(spec_of("ctx.set"), |c: &Call<'_>| {
            match c.args {
                Value::Object(_) => Ok(c.args.clone()),
                _ => Err(KeywordError::new(
                    "ctx.set takes an object of names and values",
                )),
            }
        })),
        Arc::new(FnKeyword::new(spec_of("sleep"), sleep)),
        Arc::new(FnKeyword::new(spec_of("log"), |c: &Call<'_>| {
            let message = c
                .arg("message")
                .cloned()
                .ok_or_else(|| KeywordError::new("argument `message` is required"))?;
            Ok(json!({ "message": message }))
        })),
        Arc::new(FnKeyword::new(spec_of("exec"), move |c: &Call<'_>| {
            exec(&rt, c)
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
        std::thread::sleep(slice);
    }
}

fn exec(rt: &tokio::runtime::Handle, c: &Call<'_>) -> KeywordResult {
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
    let program = format!("{:?}", cmd.as_std().get_program());
    rt.block_on(async move {
        let mut child = cmd
            .spawn()
            .map_err(|e| KeywordError::new(format!("cannot start {program}: {e}")))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            // A program that exits without reading its input is not an error.
            let _ = pipe.write_all(text.as_bytes()).await;
            // Closing the pipe tells the program its input has ended.
            drop(pipe);
        }
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Err(_) => Err(KeywordError::new(format!(
                "{program} did not finish within {timeout:?} and was killed"
            ))),
            Ok(Err(e)) => Err(KeywordError::new(format!("{program}: {e}"))),
            Ok(Ok(out)) => Ok(json!({
                "exit_code": out.status.code(),
                "stdout": String::from_utf8_lossy(&out.stdout),
                "stderr": String::from_utf8_lossy(&out.stderr),
            })),
        }
    })
}
