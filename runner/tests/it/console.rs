//! What `atf run` prints. Piped (CI, `| tee`): plain text, no escape codes,
//! no progress bar, a line per case that did not pass (per case with `-v`),
//! each failure with the step's remark, expected and actual and the
//! keyword's error, the slowest cases, and last `N passed, N failed, N
//! skipped`. On a terminal (a pseudo-terminal from util-linux `script`,
//! installed by `scripts/test-deps.sh`): colours, unless `NO_COLOR` is set.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::tools::run_with_limit;
use crate::util::{Output, Project, atf_bin};

const SUMMARY: &str = "2 passed, 2 failed, 0 skipped";

/// Two passing cases (`alpha` the slowest), one failed expectation, one
/// keyword error.
fn project() -> Project {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Project::new();
    p.file(
        "alpha.case.json",
        json!({ "steps": [ {"keyword": "sleep", "args": {"duration": "300ms"}} ] }),
    );
    p.file(
        "beta.case.json",
        json!({ "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ] }),
    );
    p.file(
        "wrong.case.json",
        json!({ "steps": [ {"keyword": "assert", "remark": "the order total", "args": {"value": 12}, "expect": {"value": 13}} ] }),
    );
    p.file(
        "down.case.json",
        json!({ "steps": [ {"keyword": "http.request", "remark": "call the stopped service",
                            "args": {"url": format!("http://127.0.0.1:{closed}/x")}} ] }),
    );
    p
}

/// Lines that start a case: `PASS name (file) Nms` and the like.
fn case_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            ["PASS ", "FAIL ", "ERROR ", "SKIP "]
                .iter()
                .any(|w| l.starts_with(w))
        })
        .collect()
}

/// The lines printed for the case whose line starts with `head`, up to the
/// next line that is not indented.
fn block<'a>(stdout: &'a str, head: &str) -> Vec<&'a str> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(head));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no line starting {head:?} in:\n{stdout}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| l.starts_with(' ')))
        .collect()
}

/// The console's lines, without trailing blank lines.
fn console_lines(out: &Output) -> Vec<&str> {
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
}

#[test]
fn piped_output_is_plain_with_a_line_per_failure_then_slowest_then_the_summary() {
    let p = project();
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{out:?}");
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text.contains('\u{1b}'), "escape codes on {name}:\n{text}");
        assert!(!text.contains('\r'), "a redrawn line on {name}:\n{text}");
    }
    assert!(
        !out.stderr.contains("/4"),
        "a progress bar on stderr:\n{}",
        out.stderr
    );

    let mut heads = case_lines(&out.stdout);
    heads.sort_unstable();
    assert_eq!(
        heads.len(),
        2,
        "one line per case that did not pass:\n{}",
        out.stdout
    );
    assert!(
        heads[0].starts_with("ERROR down (down.case.json) "),
        "{heads:?}"
    );
    assert!(
        heads[1].starts_with("FAIL wrong (wrong.case.json) "),
        "{heads:?}"
    );

    let wrong = block(&out.stdout, "FAIL wrong ").join("\n");
    assert!(wrong.contains("the order total"), "the remark:\n{wrong}");
    assert!(
        wrong.lines().any(|l| l.trim() == "expected: 13"),
        "expected:\n{wrong}"
    );
    assert!(
        wrong
            .lines()
            .any(|l| l.trim_start().starts_with("actual:") && l.trim_end().ends_with(" 12")),
        "actual:\n{wrong}"
    );
    let down = block(&out.stdout, "ERROR down ").join("\n");
    assert!(
        down.contains("call the stopped service"),
        "the remark:\n{down}"
    );
    assert!(
        down.contains("error: cannot connect"),
        "the keyword's error:\n{down}"
    );

    let lines = console_lines(&out);
    assert_eq!(
        lines.last(),
        Some(&SUMMARY),
        "the last line:\n{}",
        out.stdout
    );
    let slowest = lines
        .iter()
        .position(|l| l.starts_with("slowest cases"))
        .unwrap_or_else(|| panic!("no slowest cases table:\n{}", out.stdout));
    assert!(
        lines[slowest + 1].trim_end().ends_with("ms  alpha"),
        "the slowest case first:\n{}",
        out.stdout
    );
    let table: Vec<&str> = lines[slowest + 1..]
        .iter()
        .take_while(|l| l.starts_with(' '))
        .copied()
        .collect();
    assert_eq!(table.len(), 4, "every case that ran:\n{}", out.stdout);
}

#[test]
fn verbose_prints_a_line_per_case() {
    let p = project();
    let out = p.atf(&["run", "-v"]);
    assert_eq!(out.code, 1, "{out:?}");
    let mut heads: Vec<&str> = case_lines(&out.stdout)
        .iter()
        .map(|l| l.split(" (").next().unwrap())
        .collect();
    heads.sort_unstable();
    assert_eq!(
        heads,
        ["ERROR down", "FAIL wrong", "PASS alpha", "PASS beta"],
        "{}",
        out.stdout
    );
    assert_eq!(console_lines(&out).last(), Some(&SUMMARY));
}

/// Runs `shell` (a `sh -c` command line) on a pseudo-terminal in the
/// project folder; returns the exit code and what the terminal showed,
/// with the terminal's `\r\n` turned back into `\n`.
fn on_terminal(p: &Project, shell: &str, env: &[(&str, &str)], remove: &[&str]) -> (i32, String) {
    let found = Command::new("sh")
        .args(["-c", "command -v script"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`script` (util-linux; Debian package bsdutils) is missing: the console tests \
         run atf on a pseudo-terminal with it. Run scripts/test-deps.sh."
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", shell, "/dev/null"])
        .current_dir(p.join(""))
        .env("TERM", "xterm-256color")
        .env_remove("ATF_PLUGIN_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    let out = run_with_limit(&mut cmd, Duration::from_secs(60))
        .expect("script starts")
        .unwrap_or_else(|| panic!("`script -qec {shell:?}` did not finish within 60 s"));
    let shown = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    (out.status.code().unwrap_or(-1), shown)
}

/// `atf` quoted for `sh`.
fn atf_sh() -> String {
    format!("'{}'", atf_bin().replace('\'', r"'\''"))
}

/// How many SGR (colour) escape sequences `text` holds: ESC [ digits;… m.
fn sgr_count(text: &str) -> usize {
    text.match_indices("\u{1b}[")
        .filter(|(i, _)| {
            let rest = &text[i + 2..];
            let params = rest
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .unwrap_or(rest.len());
            rest[params..].starts_with('m')
        })
        .count()
}

#[test]
fn colours_on_a_terminal_unless_no_color_and_never_into_a_pipe() {
    let p = project();
    let run = format!("{} run", atf_sh());

    // A terminal (CI set: no progress bar, only the reporter's colours).
    let (code, shown) = on_terminal(&p, &run, &[("CI", "1")], &["NO_COLOR"]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        sgr_count(&shown) > 0,
        "no colours on a terminal:\n{shown:?}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.contains(SUMMARY) && l.starts_with('\u{1b}')),
        "the summary line is coloured:\n{shown:?}"
    );

    // The same with NO_COLOR: not one escape code.
    let (code, shown) = on_terminal(&p, &run, &[("CI", "1"), ("NO_COLOR", "1")], &[]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        !shown.contains('\u{1b}'),
        "escape codes with NO_COLOR:\n{shown:?}"
    );
    assert!(shown.lines().any(|l| l == SUMMARY), "{shown}");

    // A terminal and no CI: a progress bar (`pos/len`) while cases run.
    let (code, shown) = on_terminal(&p, &run, &[("NO_COLOR", "1")], &["CI"]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("/4 "),
        "no progress bar on a terminal:\n{shown:?}"
    );

    // stdout into a file, stderr still the terminal, no CI: no colour in
    // the file, and no progress bar on the terminal.
    let (code, shown) = on_terminal(&p, &format!("{run} > out.txt"), &[], &["CI", "NO_COLOR"]);
    assert_eq!(code, 1, "{shown}");
    let file = std::fs::read_to_string(p.join("out.txt")).unwrap();
    assert!(
        !file.contains('\u{1b}'),
        "escape codes in a file:\n{file:?}"
    );
    assert!(file.lines().any(|l| l == SUMMARY), "{file}");
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r'),
        "a progress bar on the terminal while stdout goes to a file:\n{shown:?}"
    );
}
