//! Nothing lost (issue #10), through the real `atf` binary: plugins that
//! crash, abort, `exit(0)`, overflow their stack or spin (C plugins built
//! here with `cc`) fail one step while the run, its other cases and every
//! undo and cleanup step go on; reports that survive `kill -9` and a second
//! Ctrl-C; `exec` killing its whole process group; size caps on response
//! bodies, program output, `file(...)` and placeholder values; SQL that
//! cannot smuggle a second statement in; and secrets masked in every form.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use support::{Project, Running, case, case_names};

/// A plugin written against the bare C ABI, with one keyword per way to
/// die. Built with `-DCRASH_IN_MANIFEST`, it dies while giving its manifest.
const CRASH_PLUGIN: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dup_str(const char *s) { char *p = malloc(strlen(s) + 1); strcpy(p, s); return p; }

uint32_t atf_plugin_abi_version(void) { return 1; }

char *atf_plugin_manifest(void) {
#ifdef CRASH_IN_MANIFEST
    volatile int *p = 0; *p = 1;
#endif
    return dup_str("{\"abi_version\":1,\"namespace\":\"crash\",\"plugin\":{\"name\":\"crash\",\"version\":\"1\"},"
        "\"keywords\":[{\"name\":\"crash.ok\",\"summary\":\"fine\",\"open_args\":true},"
        "{\"name\":\"crash.segv\",\"summary\":\"\"},{\"name\":\"crash.abort\",\"summary\":\"\"},"
        "{\"name\":\"crash.exit0\",\"summary\":\"\"},{\"name\":\"crash.spin\",\"summary\":\"\"},"
        "{\"name\":\"crash.stack\",\"summary\":\"\"},{\"name\":\"crash.pid\",\"summary\":\"\"}]}");
}

static int deep(int n) { volatile char buf[4096]; buf[0] = (char)n; return deep(n + 1) + buf[0]; }

char *atf_plugin_call(const char *kw, const char *input) {
    (void)input;
    if (!strcmp(kw, "crash.segv")) { volatile int *p = 0; *p = 1; }
    if (!strcmp(kw, "crash.abort")) { fprintf(stderr, "crash plugin: about to abort\n"); abort(); }
    if (!strcmp(kw, "crash.exit0")) { printf("bye from the plugin\n"); exit(0); }
    if (!strcmp(kw, "crash.spin")) { for (;;) {} }
    if (!strcmp(kw, "crash.stack")) { deep(0); }
    if (!strcmp(kw, "crash.pid")) {
        char b[64]; snprintf(b, sizeof b, "{\"ok\":{\"pid\":%d}}", (int)getpid()); return dup_str(b);
    }
    printf("a plugin printing on stdout garbles nothing\n");
    return dup_str("{\"ok\":{\"fine\":true}}");
}

void atf_plugin_free(char *s) { free(s); }
"#;

/// The crash plugin and its manifest-crashing twin, built once.
struct Plugins {
    crash: PathBuf,
    bad_manifest: PathBuf,
    _dir: tempfile::TempDir,
}

fn plugins() -> &'static Plugins {
    static BUILT: OnceLock<Plugins> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let src = dir.path().join("crash.c");
        std::fs::write(&src, CRASH_PLUGIN).expect("write crash.c");
        let build = |out: &str, defines: &[&str]| {
            let out = dir.path().join(out);
            let status = Command::new("cc")
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&out)
                .args(defines)
                .arg(&src)
                .status()
                .expect(
                    "these tests build C plugins with `cc`: install a C compiler (apt install gcc)",
                );
            assert!(status.success(), "cc failed on the crash plugin");
            out
        };
        Plugins {
            crash: build("crash.so", &[]),
            bad_manifest: build("badmanifest.so", &["-DCRASH_IN_MANIFEST"]),
            _dir: dir,
        }
    })
}

/// Copies the crash plugin into `p/plugins` (and, with `bad`, its
/// manifest-crashing twin).
fn install_plugins(p: &Project, bad: bool) {
    let dir = p.join("plugins");
    std::fs::create_dir_all(&dir).expect("mkdir plugins");
    std::fs::copy(&plugins().crash, dir.join("crash.so")).expect("copy plugin");
    if bad {
        std::fs::copy(&plugins().bad_manifest, dir.join("badmanifest.so")).expect("copy plugin");
    }
}

fn step_error(c: &Value, phase: &str, i: usize) -> String {
    c[phase][i]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn crashing_plugins_fail_one_step_and_every_undo_and_cleanup_still_runs() {
    let p = Project::new();
    install_plugins(&p, false);
    p.file(
        "atf.json",
        json!({"plugins": ["plugins"], "timeouts": {"step": "2s"}}),
    );
    for kind in ["segv", "abort", "exit0", "stack", "spin"] {
        p.file(
            &format!("cases/{kind}.case.json"),
            json!({
                "steps": [
                    {"keyword": format!("crash.{kind}"), "undo": {"keyword": "crash.ok"}},
                    {"keyword": "crash.ok"}
                ],
                "cleanup": [{"keyword": "crash.ok"}, {"keyword": "log", "args": {"message": "cleaned"}}]
            }),
        );
    }
    // A case timeout shorter than the step timeout kills the host too.
    p.file(
        "cases/case-timeout.case.json",
        json!({"timeout": "700ms", "steps": [{"keyword": "crash.spin"}],
               "cleanup": [{"keyword": "crash.ok"}]}),
    );
    p.file(
        "cases/fine.case.json",
        json!({"steps": [{"keyword": "crash.ok", "expect": {"fine": true}}]}),
    );
    let out = p.atf(&["run", "cases", "-j", "3"]);
    assert_eq!(
        out.code, 1,
        "exit(0) in a plugin must not pass the run\n{out:?}"
    );
    let report = p.report();
    assert_eq!(report["summary"]["errored"], 6, "{report:#}");
    assert_eq!(case(&report, "fine")["status"], "passed");
    let expect = [
        ("segv", "was killed by signal 11 (SIGSEGV"),
        ("abort", "was killed by signal 6 (SIGABRT"),
        ("exit0", "exited with status 0 while running `crash.exit0`"),
        ("stack", "overflowed its stack"),
        ("spin", "`crash.spin` did not finish within its timeout"),
        (
            "case-timeout",
            "`crash.spin` did not finish within its timeout",
        ),
    ];
    for (name, needle) in expect {
        let c = case(&report, name);
        assert_eq!(c["status"], "error", "{c:#}");
        let error = step_error(c, "steps", 0);
        assert!(error.contains(needle), "{name}: {error}");
        assert!(
            error.contains("crash.so"),
            "the error names the plugin: {error}"
        );
        // Every undo and cleanup step ran, in a fresh plugin host.
        let cleanup = c["cleanup"].as_array().expect("cleanup steps");
        assert!(!cleanup.is_empty(), "{c:#}");
        for s in cleanup {
            assert_eq!(s["status"], "passed", "{name}: {s:#}");
        }
    }
    assert!(step_error(case(&report, "abort"), "steps", 0).contains("about to abort"));
    assert!(step_error(case(&report, "exit0"), "steps", 0).contains("bye from the plugin"));
    assert_eq!(case(&report, "segv")["steps"][1]["status"], "skipped");
    assert_eq!(case(&report, "segv")["cleanup"][0]["undo"], true);
    assert!(
        out.last_line().starts_with("1 passed, 6 failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_plugin_crashing_while_it_loads_is_skipped_with_a_warning() {
    let p = Project::new();
    install_plugins(&p, true);
    p.file("atf.json", json!({"plugins": ["plugins"]}));
    let out = p.atf(&["keywords"]);
    assert_eq!(out.code, 0, "{out:?}");
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("badmanifest.so"))
        .unwrap_or_else(|| panic!("no warning about badmanifest.so: {}", out.stderr));
    assert!(
        warning.starts_with("warning: skipped") && warning.contains("SIGSEGV"),
        "{warning}"
    );
    assert!(out.stdout.contains("\ncrash.ok\n"), "{}", out.stdout);
}

/// Runs `atf run cases` in `p`, returning atf's pid and its exit code.
fn run_with_pid(p: &Project) -> (u32, i32) {
    let mut child = p
        .command(&["run", "cases"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start atf");
    let pid = child.id();
    let code = child.wait().expect("wait for atf").code().unwrap_or(-1);
    (pid, code)
}

#[test]
fn plugins_run_in_their_own_process_unless_the_project_opts_into_in_process() {
    let p = Project::new();
    install_plugins(&p, false);
    p.file(
        "cases/pid.case.json",
        json!({"steps": [{"keyword": "crash.pid"}]}),
    );
    p.file("atf.json", json!({"plugins": ["plugins"]}));
    let (atf, code) = run_with_pid(&p);
    assert_eq!(code, 0);
    let pid = case(&p.report(), "pid")["steps"][0]["result"]["pid"].clone();
    assert_ne!(pid, json!(atf), "isolated by default");

    p.file(
        "atf.json",
        json!({"plugins": [{"path": "plugins", "in_process": true}]}),
    );
    let (atf, code) = run_with_pid(&p);
    assert_eq!(code, 0);
    let pid = case(&p.report(), "pid")["steps"][0]["result"]["pid"].clone();
    assert_eq!(pid, json!(atf), "in the atf process when opted in");
}

/// Whether process `pid` has ended (gone, or a zombie waiting for init).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to 5 s for process `pid` to end.
fn wait_ended(pid: i32) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if ended(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn exec_kills_its_whole_process_group_and_leaves_daemons_alone() {
    let p = Project::new();
    p.file(
        "cases/timeout.case.json",
        json!({"steps": [{"keyword": "exec", "args": {
            "shell": "sleep 30 & echo $! > bg.pid; sleep 30", "timeout": "300ms"}}]}),
    );
    // The program ends, but a child it left behind holds its output open:
    // the step ends anyway, and the child is killed.
    p.file(
        "cases/leak.case.json",
        json!({"steps": [{"keyword": "exec", "args": {
            "shell": "sleep 30 & echo $! > leak.pid; echo done"},
            "expect": {"exit_code": 0, "stdout": "done\n"}}]}),
    );
    // A daemon that let go of the output is left alone.
    p.file(
        "cases/daemon.case.json",
        json!({"steps": [{"keyword": "exec", "args": {
            "shell": "sleep 30 > /dev/null 2>&1 & echo $! > daemon.pid"},
            "expect": {"exit_code": 0}}]}),
    );
    p.file("atf.json", json!({"timeouts": {"step": "10s"}}));
    let out = p.atf(&["run", "cases"]);
    let report = p.report();
    let timeout = case(&report, "timeout");
    assert_eq!(timeout["status"], "error", "{out:?}");
    assert!(
        step_error(timeout, "steps", 0).contains("every process it started were killed"),
        "{timeout:#}"
    );
    assert_eq!(case(&report, "leak")["status"], "passed", "{report:#}");
    for file in ["cases/bg.pid", "cases/leak.pid"] {
        let pid = read_pid(&p.join(file));
        assert!(wait_ended(pid), "{file}: process {pid} still runs");
    }
    let daemon = read_pid(&p.join("cases/daemon.pid"));
    assert!(!ended(daemon), "the daemon was killed");
    // SAFETY: kill(2) of the daemon the case started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
}

#[test]
fn a_killed_run_leaves_no_stale_report_behind() {
    let p = Project::new();
    p.file(
        "cases/quick.case.json",
        json!({"steps": [{"keyword": "assert"}]}),
    );
    assert_eq!(p.atf(&["run", "cases"]).code, 0);
    assert!(p.join("atf-report/report.json").is_file());

    p.file(
        "cases/quick.case.json",
        json!({"steps": [{"keyword": "sleep", "args": {"duration": "30s"}}]}),
    );
    let mut atf = Running::spawn(p.command(&["run", "cases"]));
    // The run moves the last report aside as it starts.
    let until = Instant::now() + Duration::from_secs(20);
    while p.join("atf-report/report.json").exists() {
        assert!(Instant::now() < until, "report.json was not moved aside");
        thread::sleep(Duration::from_millis(10));
    }
    // Killed while its one case runs (its start is on disk).
    while !std::fs::read_to_string(p.join("atf-report/events.jsonl"))
        .is_ok_and(|t| t.contains("\"case_started\""))
    {
        assert!(Instant::now() < until, "the case did not start");
        thread::sleep(Duration::from_millis(10));
    }
    drop_kill(&mut atf);
    assert!(!p.join("atf-report/report.json").exists());
    let previous = p.report_in("atf-report/previous");
    assert_eq!(previous["summary"]["passed"], 1);

    // What kill -9 left is enough for --rerun-failed: it reads the killed
    // run from events.jsonl and runs the case that did not finish.
    p.file(
        "cases/quick.case.json",
        json!({"steps": [{"keyword": "assert"}]}),
    );
    p.file(
        "cases/other.case.json",
        json!({"steps": [{"keyword": "assert"}]}),
    );
    let out = p.atf(&["run", "cases", "--rerun-failed"]);
    assert_eq!(out.code, 0, "{out:?}");
    let rerun = p.report();
    let names = case_names(&rerun);
    assert_eq!(names, ["quick"], "{rerun:#}");
}

/// Kills (SIGKILL) a running atf and waits for it.
fn drop_kill(atf: &mut Running) {
    let pid = i32::try_from(atf.pid()).expect("pid");
    // SAFETY: kill(2) of the atf this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let (code, _) = atf.wait_exit(Duration::from_secs(10));
    assert_eq!(code, -1, "killed by a signal");
}

#[test]
fn a_second_ctrl_c_still_writes_what_finished_and_rerun_failed_picks_up_the_rest() {
    let p = Project::new();
    p.file(
        "cases/fast.case.json",
        json!({"steps": [{"keyword": "assert"}]}),
    );
    // Cleanup is not cut short by the first Ctrl-C; the second one stops it.
    p.file(
        "cases/slow.case.json",
        json!({"steps": [{"keyword": "assert"}],
               "cleanup": [{"keyword": "exec", "args": {
                   "shell": "echo $$ > sh.pid; sleep ${pause}"}}]}),
    );
    let mut atf =
        Running::spawn(p.command(&["run", "cases", "-j", "2", "-v", "--var", "pause=30"]));
    atf.wait_for("fast", 1, Duration::from_secs(30));
    let until = Instant::now() + Duration::from_secs(30);
    while !p.join("cases/sh.pid").exists() {
        assert!(Instant::now() < until, "the slow cleanup did not start");
        thread::sleep(Duration::from_millis(10));
    }
    let sh = read_pid(&p.join("cases/sh.pid"));
    atf.interrupt();
    let until = Instant::now() + Duration::from_secs(10);
    while !atf.stderr().contains("interrupted:") {
        assert!(Instant::now() < until, "no notice of the first Ctrl-C");
        thread::sleep(Duration::from_millis(10));
    }
    atf.interrupt();
    let (code, _) = atf.wait_exit(Duration::from_secs(20));
    assert_eq!(code, 130, "{}", atf.stderr());
    assert!(
        atf.stderr().contains("wrote the reports"),
        "{}",
        atf.stderr()
    );
    assert!(wait_ended(sh), "the cleanup's program {sh} still runs");
    let report = p.report();
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert_eq!(case(&report, "fast")["status"], "passed");
    // It was running when the second Ctrl-C stopped everything: an error
    // that says so (rebuilt from events.jsonl), which --rerun-failed picks up.
    let slow = case(&report, "slow");
    assert_eq!(slow["status"], "error", "{slow:#}");
    assert!(
        slow["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish")),
        "{slow:#}"
    );
    for file in ["junit.xml", "index.html"] {
        assert!(p.join("atf-report").join(file).is_file(), "{file}");
    }

    let out = p.atf(&["run", "cases", "--rerun-failed", "--var", "pause=0"]);
    assert_eq!(out.code, 0, "{out:?}");
    let rerun = p.report();
    let names = case_names(&rerun);
    assert_eq!(names, ["slow"]);
    assert!(rerun.get("interrupted").is_none());
}

/// A tiny HTTP server on a thread: `/big` answers 3 MiB of `x`, anything
/// else echoes the request's headers as a JSON object of lists.
fn http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}")
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = serde_json::Map::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            let list = headers
                .entry(k.trim().to_ascii_lowercase())
                .or_insert_with(|| json!([]));
            if let Some(items) = list.as_array_mut() {
                items.push(json!(v.trim()));
            }
        }
    }
    let (kind, body) = if request_line.contains(" /big ") {
        ("text/plain", vec![b'x'; 3 << 20])
    } else {
        (
            "application/json",
            serde_json::to_vec(&json!({ "headers": headers })).expect("json"),
        )
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(&body);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

#[test]
fn sizes_are_capped_with_clear_errors() {
    let url = http_server();
    let p = Project::new();
    let mut project = support::project_file(&url);
    project["limits"] = json!({"body": "1MiB", "value": "1MiB", "file": "1MiB"});
    p.file("atf.json", project);
    p.file(
        "cases/big-body.case.json",
        json!({"steps": [{"keyword": "http.request", "args": {"url": "/big"},
            "expect": {"status": 200, "body": null, "body_bytes": 3 << 20}}]}),
    );
    p.file(
        "cases/dev-zero.case.json",
        json!({"steps": [{"keyword": "assert", "args": {"value": "${file('/dev/zero')}"}}]}),
    );
    p.file("cases/big.txt", "y".repeat(2 << 20));
    p.file(
        "cases/big-file.case.json",
        json!({"steps": [{"keyword": "assert", "args": {"value": "${file('big.txt')}"}}]}),
    );
    let mut vars = serde_json::Map::new();
    vars.insert("a0".into(), json!("xx"));
    for i in 1..=40 {
        vars.insert(
            format!("a{i}"),
            json!(format!("${{a{}}}${{a{}}}", i - 1, i - 1)),
        );
    }
    p.file(
        "cases/doubling.case.json",
        json!({"vars": vars, "steps": [{"keyword": "assert", "args": {"value": "${a40}"}}]}),
    );
    p.file(
        "cases/exec-output.case.json",
        json!({"steps": [{"keyword": "exec",
            "args": {"shell": "head -c 3000000 /dev/zero | tr '\\0' x"},
            "expect": {"exit_code": 0, "truncated": {"stdout": 3000000}}}]}),
    );
    let out = p.atf(&["run", "cases"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report = p.report();

    let big = case(&report, "big-body");
    assert_eq!(big["status"], "passed", "{big:#}");
    let file = big["steps"][0]["result"]["body_file"]
        .as_str()
        .expect("body_file");
    let file = p.path().join(file);
    assert!(
        file.starts_with(p.join("atf-report/bodies")),
        "{}",
        file.display()
    );
    assert_eq!(
        std::fs::metadata(&file).expect("the body file").len(),
        3 << 20
    );

    let zero = step_error(case(&report, "dev-zero"), "steps", 0);
    assert!(zero.contains("/dev/zero` is outside the project"), "{zero}");
    let big_file = step_error(case(&report, "big-file"), "steps", 0);
    assert!(
        big_file.contains("is larger than 1048576 bytes"),
        "{big_file}"
    );
    let doubling = case(&report, "doubling");
    assert_eq!(doubling["status"], "error");
    let why = doubling["error"].as_str().unwrap_or_default().to_string()
        + &step_error(doubling, "steps", 0);
    assert!(why.contains("over the limit of 1048576"), "{doubling:#}");
    assert_eq!(case(&report, "exec-output")["status"], "passed");
}

/// Fails the test, naming the script that starts it, when MariaDB is down.
fn need_mysql() {
    if TcpStream::connect_timeout(
        &"127.0.0.1:3306".parse().expect("addr"),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!("MariaDB is not answering on 127.0.0.1:3306: start it with scripts/services.sh");
    }
}

#[test]
fn sql_text_cannot_smuggle_in_a_second_statement() {
    need_mysql();
    let p = Project::new();
    let table = format!("h4_victim_{}", std::process::id());
    p.file(
        "setup/setup.case.json",
        json!({"steps": [{"keyword": "mysql.exec", "args": {"sql": format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT); INSERT INTO {table} VALUES (1)")}}]}),
    );
    p.file(
        "attack/attack.case.json",
        json!({"steps": [
            {"keyword": "ctx.set", "args": {"evil": format!("1; DROP TABLE {table}")}},
            {"keyword": "mysql.query", "args": {"sql": "SELECT ${evil}"}}
        ]}),
    );
    p.file(
        "multi/multi.case.json",
        json!({"steps": [
            {"keyword": "mysql.query", "args": {"sql": "SET @h4 = 7; SELECT @h4 AS v", "multi": true},
             "expect": {"$.rows[0].v": 7}},
            {"keyword": "mysql.query", "args": {"sql": "SET @h4 = 7; SELECT @h4 AS v"}}
        ]}),
    );
    p.file(
        "check/check.case.json",
        json!({"steps": [{"keyword": "mysql.query",
            "args": {"sql": format!("SELECT COUNT(*) AS n FROM {table}")},
            "expect": {"$.rows[0].n": 1}}],
            "cleanup": [{"keyword": "mysql.exec", "args": {"sql": format!("DROP TABLE IF EXISTS {table}")}}]}),
    );
    let setup = p.atf(&["run", "setup"]);
    assert_eq!(setup.code, 0, "{setup:?}");
    // A saved value never reaches the SQL text: the placeholder there is a
    // load error that points at it and at `params`, before anything runs.
    let attack = p.atf(&["run", "attack"]);
    assert_eq!(attack.code, 1, "{attack:?}");
    assert!(
        attack.stdout.contains("attack.case.json:12:16")
            && attack
                .stdout
                .contains("${evil} inside `sql` would splice a value")
            && attack.stdout.contains("`params`"),
        "{}",
        attack.stdout
    );
    let attack_case = case(&p.report(), "attack").clone();
    assert_eq!(attack_case["status"], "error", "{attack_case:#}");
    assert!(
        attack_case["steps"].as_array().is_none_or(|s| s.is_empty()),
        "nothing ran: {attack_case:#}"
    );
    let checked = p.atf(&["check", "attack"]);
    assert_ne!(checked.code, 0, "{checked:?}");
    assert!(
        checked.stdout.contains("attack.case.json:12:16")
            || checked.stderr.contains("attack.case.json:12:16"),
        "{checked:?}"
    );
    // The opt-in for names: `ident()` lets a plain identifier through only.
    p.file(
        "named/named.case.json",
        json!({"vars": {"t": table.clone(), "evil": format!("{table}; DROP TABLE {table}")},
            "steps": [
            {"keyword": "mysql.query", "args": {"sql": "SELECT COUNT(*) AS n FROM ${ident(t)}"},
             "expect": {"$.rows[0].n": 1}},
            {"keyword": "mysql.query", "args": {"sql": "SELECT COUNT(*) AS n FROM ${ident(evil)}"}}
        ]}),
    );
    p.atf(&["run", "named"]);
    let named = case(&p.report(), "named").clone();
    assert_eq!(named["steps"][0]["status"], "passed", "{named:#}");
    assert_eq!(named["steps"][1]["status"], "error", "{named:#}");
    assert!(
        named["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not a plain SQL identifier")),
        "{named:#}"
    );
    let multi = p.atf(&["run", "multi"]);
    let m = case(&p.report(), "multi").clone();
    assert_eq!(m["steps"][0]["status"], "passed", "{m:#}\n{multi:?}");
    assert!(
        step_error(&m, "steps", 1).contains("\"multi\": true"),
        "a second statement without `multi` is refused: {m:#}"
    );
    let check = p.atf(&["run", "check"]);
    assert_eq!(check.code, 0, "the table survived the attack\n{check:?}");
}

#[test]
fn secrets_are_masked_in_every_form_in_every_output() {
    let url = http_server();
    let p = Project::new();
    let token = r#"tok/en"sec\ret-12345"#;
    let pin = "918273645";
    let mut project = support::project_file(&url);
    project["secrets"] = json!(["H4_TOKEN", "H4_PIN"]);
    p.file("atf.json", project);
    // Runs first (-j 1, sorted by file): its failure shows on the console
    // before the case that sends the cookie has run.
    p.file(
        "cases/a-forms.case.json",
        json!({"steps": [{"keyword": "assert", "args": {"value": {
            "text": "${env.H4_TOKEN}",
            "json": "${json(env.H4_TOKEN)}",
            "twice": "${json(json(env.H4_TOKEN))}",
            "url": "${url_encode(env.H4_TOKEN)}",
            "b64": "${base64(env.H4_TOKEN)}",
            "b64_inside": "${base64(concat('user:', env.H4_TOKEN))}",
            "number": "${parse_json(env.H4_PIN)}",
            "as_key": "${parse_json(concat('{\"', env.H4_PIN, '\": 1}'))}",
            "cookie": "sid=cookie-secret-xyz789"
        }}, "expect": {"value": "never"}}]}),
    );
    p.file(
        "cases/b-cookie.case.json",
        json!({"steps": [{"keyword": "http.request", "args": {"url": "/echo", "headers": {
            "Cookie": "sid=cookie-secret-xyz789",
            "Authorization": ["Bearer list-token-4567", "Basic bGlzdDp0b2tlbg=="]
        }}, "expect": {"status": 200, "$.body.headers.authorization": {"$exists": true}}}]}),
    );
    let out = p
        .command(&["run", "cases", "-j", "1", "-v"])
        .env("H4_TOKEN", token)
        .env("H4_PIN", pin)
        .output()
        .expect("run atf");
    assert_eq!(out.status.code(), Some(1));
    let report = p.report();
    assert_eq!(case(&report, "b-cookie")["status"], "passed", "{report:#}");
    let forms = [
        "ret-12345".to_string(),
        percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        base64::engine::general_purpose::STANDARD.encode(token),
        base64::engine::general_purpose::STANDARD.encode(format!("user:{token}"))[8..30]
            .to_string(),
        pin.to_string(),
        "cookie-secret-xyz789".to_string(),
        "list-token-4567".to_string(),
        "bGlzdDp0b2tlbg".to_string(),
    ];
    let outputs = [
        ("stdout", String::from_utf8_lossy(&out.stdout).into_owned()),
        ("stderr", String::from_utf8_lossy(&out.stderr).into_owned()),
        ("report.json", read(&p.join("atf-report/report.json"))),
        ("junit.xml", read(&p.join("atf-report/junit.xml"))),
        ("index.html", read(&p.join("atf-report/index.html"))),
    ];
    for (name, text) in &outputs {
        for form in &forms {
            assert!(
                !text.contains(form.as_str()),
                "{name} shows {form}:\n{text}"
            );
        }
    }
    // The console did show the failed case, masked.
    assert!(outputs[0].1.contains("***"), "{}", outputs[0].1);
}

#[test]
fn values_named_secret_are_masked_when_made_at_run_time() {
    let p = Project::new();
    p.file("atf.json", json!({"secrets": ["made", "token", "listed"]}));
    // `made` is computed when the case starts, `token` saved from a result,
    // `listed` set by ctx.set as a list: none is known before the run.
    p.file(
        "cases/runtime.case.json",
        json!({"vars": {"made": "${concat('made-', 'secret-4242')}"},
            "steps": [
            {"keyword": "assert", "args": {"value": {"tok": "${concat('saved-', 'secret-5151')}"}},
             "save": {"token": "$.value.tok"}},
            {"keyword": "ctx.set", "args": {"listed": ["${concat('list-', 'secret-6363')}"]}},
            {"keyword": "assert", "args": {"value": {"a": "${made}", "b": "${token}", "c": "${listed}"}},
             "expect": {"value": "never"}}
        ]}),
    );
    let out = p.atf(&["run", "cases", "-v"]);
    assert_eq!(out.code, 1, "{out:?}");
    let outputs = [
        ("stdout", out.stdout.clone()),
        ("stderr", out.stderr.clone()),
        ("report.json", read(&p.join("atf-report/report.json"))),
        ("junit.xml", read(&p.join("atf-report/junit.xml"))),
        ("index.html", read(&p.join("atf-report/index.html"))),
        ("events.jsonl", read(&p.join("atf-report/events.jsonl"))),
    ];
    for (name, text) in &outputs {
        for secret in ["secret-4242", "secret-5151", "secret-6363"] {
            assert!(!text.contains(secret), "{name} shows {secret}:\n{text}");
        }
    }
    assert!(out.stdout.contains("***"), "{}", out.stdout);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_project_decides_what_case_files_may_do() {
    let outer = Project::new();
    outer.file("shared/fixture.txt", "shared data");
    outer.file("outside.txt", "not yours");
    let project = |allow: Value| json!({ "allow": allow });
    outer.file("proj/atf.json", project(json!({"exec": false})));
    outer.file(
        "proj/cases/exec.case.json",
        json!({"steps": [{"keyword": "exec", "args": {"cmd": ["true"]}}]}),
    );
    outer.file(
        "proj/cases/outside.case.json",
        json!({"steps": [{"keyword": "assert", "args": {"value": "${file('../../outside.txt')}"}}]}),
    );
    outer.file(
        "proj/cases/shared.case.json",
        json!({"steps": [{"keyword": "assert", "args": {"value": "${file('../../shared/fixture.txt')}"},
            "expect": {"value": "shared data"}}]}),
    );
    let run = |p: &Project| {
        let out = p.command(&["run", "proj/cases"]).output().expect("run atf");
        assert_ne!(out.status.code(), Some(2), "{out:?}");
        p.report()
    };
    let report = run(&outer);
    let exec = step_error(case(&report, "exec"), "steps", 0);
    assert!(
        exec.contains("`exec` is not allowed in this project"),
        "{exec}"
    );
    for name in ["outside", "shared"] {
        let err = step_error(case(&report, name), "steps", 0);
        assert!(err.contains("is outside the project"), "{name}: {err}");
    }

    outer.file(
        "proj/atf.json",
        project(json!({"exec": true, "paths": ["../shared"]})),
    );
    let report = run(&outer);
    assert_eq!(case(&report, "exec")["status"], "passed");
    assert_eq!(case(&report, "shared")["status"], "passed");
    assert_eq!(case(&report, "outside")["status"], "error");
}
