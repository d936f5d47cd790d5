//! `just bench`: what the runner itself costs.
//!
//! Generates N cases, runs the release `atf` binary on them against local
//! services, and prints cases per second and the runner's own CPU time
//! (user + system of the `atf` process, read with `getrusage`) per case and
//! per step. Modes:
//!
//! - `http` (default): each case makes 2 HTTP requests with 3 expectations,
//!   against an in-process axum server of this benchmark;
//! - `check`: `atf check` on 10,000 generated cases (`--cases N`): CPU and
//!   peak RSS of loading and checking, nothing run;
//! - `retry`: one `ctx.set` step retried 20,000 times (`--cases N` sets the
//!   attempts), its args, expectations (a `$regex` among them) and vars
//!   full of placeholders and never met: CPU per attempt, which is all
//!   rendering and checking once nothing is parsed after the first attempt;
//! - `load`: `atf load` against nginx next to wrk and Locust at the same
//!   connection count (see `load/mod.rs`; `--conns N`, `--secs N`);
//! - `grpc`: 2 `grpc.call` steps per case against an in-process tonic
//!   server, next to grpcurl started once per call (it takes one request
//!   per unary call; `scripts/bench-grpc-deps.sh` installs it) and a plain
//!   tonic client making every call on one channel (see
//!   `bench_support/grpc.rs`);
//! - `redis`, `mysql`, `pg`: 2 data steps per case, next to the same
//!   commands sent by a plain `redis-cli` / `mysql` / `psql` client reading
//!   them from stdin; `pg` also next to one `psql -c` per query, and counts
//!   the server connections the run used (distinct `pg_backend_pid()`);
//! - `amqp`: an `amqp.publish` and an `amqp.consume` (listening on an
//!   exchange, matching the case's own message) per case, next to
//!   amqp-tools started once per operation (`amqp-publish -b`, `amqp-get`),
//!   and batched: `amqp-publish -l` publishing N lines, and `amqp-consume`
//!   taking N messages (it starts a process for each message: `cat`).
//! - `serve`: `atf serve` on a generated project of 2,000 cases with a
//!   history of 10,000 runs: the time of each main page and API list,
//!   against the goal of 200 ms (see `bench_support/serve.rs`).
//!
//! The per-process references are what a tester's shell script of the same
//! steps costs; the batched ones are the client's floor (one start-up, one
//! connection, no checks, no reports). Every mode with a reference ends
//! with atf's CPU per step as a multiple of each.
//! - `plugin`: 10 calls of a plugin keyword (`sign.sm3`) per case next to
//!   10 calls of the built-in `assert`, giving the cost of one call through
//!   the plugin ABI — in plugin-host processes (the default) and inside atf
//!   (`"in_process": true`). The plugin is loaded from a folder of its own holding a
//!   copy of `target/release/libatf_plugin_sign.so` (or of the file
//!   `ATF_BENCH_PLUGIN` names).
//!
//! Every figure is the best of `--repeat` runs (default 3): the machine's
//! other work only ever adds to wall and CPU time.
//!
//! Usage: `cargo run --release -p atf --example bench -- [MODE] [--cases N] [--jobs N] [--repeat N]`
//! (`ATF_BIN=path` measures another `atf` binary than the release build's).

mod load;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "bench_support/grpc.rs"]
mod grpc;
#[path = "bench_support/serve.rs"]
mod serve;

use axum::Router;
use axum::routing::any;
use serde_json::{Value, json};

/// User and system CPU of all waited-for children so far, in ms.
fn child_cpu() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    (ms(ru.ru_utime), ms(ru.ru_stime))
}

/// The largest peak RSS of any waited-for child so far, in KiB (Linux
/// reports `ru_maxrss` in KiB).
fn child_peak_rss_kb() -> i64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss
}

fn child_cpu_ms() -> f64 {
    let (u, s) = child_cpu();
    u + s
}

struct Measure {
    wall_s: f64,
    cpu_ms: f64,
    user_ms: f64,
    ok: bool,
}

impl Measure {
    /// The best of two runs, metric by metric: on a busy machine the
    /// lowest figure is the one least inflated by other work.
    fn best(self, other: Measure) -> Measure {
        Measure {
            wall_s: self.wall_s.min(other.wall_s),
            cpu_ms: self.cpu_ms.min(other.cpu_ms),
            user_ms: self.user_ms.min(other.user_ms),
            ok: self.ok && other.ok,
        }
    }
}

/// `run` done `times` times (at least once), best of each metric.
fn best_of(times: usize, mut run: impl FnMut() -> Measure) -> Measure {
    (1..times.max(1)).fold(run(), |best, _| best.best(run()))
}

fn measure(mut cmd: Command) -> Measure {
    let cpu0 = child_cpu_ms();
    let user0 = child_cpu().0;
    let t0 = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the command");
    Measure {
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_ms: child_cpu_ms() - cpu0,
        user_ms: child_cpu().0 - user0,
        ok: status.success(),
    }
}

fn atf_bin() -> PathBuf {
    // ATF_BIN: another build to measure (e.g. one kept from before a change).
    if let Some(bin) = std::env::var_os("ATF_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/bench → target/release/atf
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("atf");
    assert!(
        bin.exists(),
        "build the release binary first: cargo build -p atf --release"
    );
    bin
}

fn start_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = Router::new().route(
                "/echo",
                any(|body: String| async move {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    axum::Json(json!({"ok": true, "echo": v}))
                }),
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            axum::serve(l, app).await.expect("serve");
        });
    });
    format!("http://{}", rx.recv().expect("server address"))
}

/// The same workload as the `http` cases, as Hurl files (request, status,
/// one JSONPath assert and a capture, then a request using it), run by
/// `hurl --test` sequentially and with `jobs` workers, when `hurl` is on
/// the PATH (`cargo install hurl` builds it; it needs libxml2-dev).
fn compare_hurl(dir: &Path, url: &str, n: usize, jobs: usize, repeat: usize) {
    if Command::new("hurl").arg("--version").output().is_err() {
        println!("hurl: not on the PATH, no comparison (cargo install hurl)");
        return;
    }
    let hurl_dir = dir.join("hurl");
    std::fs::create_dir_all(&hurl_dir).expect("mkdir");
    let mut files = Vec::with_capacity(n);
    for i in 0..n {
        let file = hurl_dir.join(format!("c{i:05}.hurl"));
        std::fs::write(
            &file,
            format!(
                "POST {url}/echo\n{{\"n\": {i}, \"sku\": \"A-1\"}}\nHTTP 200\n[Captures]\nsku: jsonpath \"$.echo.sku\"\n[Asserts]\njsonpath \"$.echo.n\" == {i}\n\nGET {url}/echo?sku={{{{sku}}}}\nHTTP 200\n"
            ),
        )
        .expect("write hurl file");
        files.push(file);
    }
    let run = |workers: usize| {
        let mut cmd = Command::new("hurl");
        cmd.args(["--test", "--jobs", &workers.to_string()])
            .args(&files);
        measure(cmd)
    };
    let m1 = best_of(repeat, || run(1));
    report("hurl --test, --jobs 1", n, 2, &m1);
    let mj = best_of(repeat, || run(jobs));
    report(&format!("hurl --test, --jobs {jobs}"), n, 2, &mj);
    let atf1 = best_of(repeat, || run_atf(dir, 1, "cases"));
    println!(
        "sequential wall time, atf / hurl: {:.2} ({:.3} s / {:.3} s)",
        atf1.wall_s / m1.wall_s,
        atf1.wall_s,
        m1.wall_s
    );
}

fn write_cases(dir: &Path, n: usize, project: Value, case: impl Fn(usize) -> Value) {
    std::fs::create_dir_all(dir.join("cases")).expect("mkdir");
    std::fs::write(dir.join("atf.json"), project.to_string()).expect("write project");
    for i in 0..n {
        std::fs::write(
            dir.join(format!("cases/c{i:05}.case.json")),
            case(i).to_string(),
        )
        .expect("write case");
    }
}

fn run_atf(dir: &Path, jobs: usize, path: &str) -> Measure {
    let mut cmd = Command::new(atf_bin());
    cmd.current_dir(dir)
        .args(["run", path, "--jobs", &jobs.to_string(), "--report-dir"])
        .arg(dir.join("report"))
        .env("CI", "1");
    let m = measure(cmd);
    if !m.ok {
        explain_failure(&dir.join("report/report.json"));
    }
    m
}

/// Why a measured run failed, from its report (its output went nowhere).
fn explain_failure(report: &Path) {
    let Ok(text) = std::fs::read_to_string(report) else {
        eprintln!("the run wrote no {}", report.display());
        return;
    };
    let r: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    eprintln!("run failed: {}", r["summary"]);
    if let Some(c) = r["cases"]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c["status"] != "passed"))
    {
        eprintln!(
            "first case that did not pass: {} ({}): {}",
            c["name"], c["status"], c["error"]
        );
    }
}

/// A plugin folder in `dir` holding only the sign plugin: the release
/// cdylib next to the `atf` binary, or the file `ATF_BENCH_PLUGIN` names.
/// Fails unless `atf keywords` then lists `sign.sm3`.
fn plugin_folder(dir: &Path) -> PathBuf {
    let lib = match std::env::var_os("ATF_BENCH_PLUGIN") {
        Some(path) => PathBuf::from(path),
        None => atf_bin().with_file_name(format!(
            "{}atf_plugin_sign{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )),
    };
    assert!(
        lib.is_file(),
        "{} is missing: build the sign plugin first: cargo build --release -p atf-plugin-sign",
        lib.display()
    );
    let folder = dir.join("plugins");
    std::fs::create_dir_all(&folder).expect("mkdir plugins");
    std::fs::copy(&lib, folder.join(lib.file_name().expect("file name"))).expect("copy the plugin");
    let out = Command::new(atf_bin())
        .arg("keywords")
        .arg("--plugins")
        .arg(&folder)
        .env_remove("ATF_PLUGIN_PATH")
        .output()
        .expect("run atf keywords");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.lines().any(|l| l.trim() == "sign.sm3"),
        "atf keywords --plugins {} does not list sign.sm3:\n{}{}",
        folder.display(),
        listed,
        String::from_utf8_lossy(&out.stderr)
    );
    folder
}

/// Prints a run's figures; returns its CPU per step in µs.
fn report(label: &str, n: usize, steps_per_case: usize, m: &Measure) -> f64 {
    println!(
        "{label:<28} {n:>5} cases  {:>7.2} s  {:>8.0} cases/s  {:>6.3} ms CPU/case ({:.3} user)  {:>6.1} µs CPU/step{}",
        m.wall_s,
        n as f64 / m.wall_s,
        m.cpu_ms / n as f64,
        m.user_ms / n as f64,
        m.cpu_ms * 1000.0 / (n * steps_per_case) as f64,
        if m.ok { "" } else { "  (RUN FAILED)" }
    );
    m.cpu_ms * 1000.0 / (n * steps_per_case) as f64
}

/// One client process reading `commands` commands from stdin (the client's
/// floor: one start-up, one connection); returns its CPU per command in µs.
fn baseline(
    label: &str,
    program: &str,
    args: &[&str],
    input: String,
    commands: usize,
) -> Option<f64> {
    let cpu0 = child_cpu_ms();
    let t0 = Instant::now();
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            println!("{label:<28} skipped: cannot start {program}: {e}");
            return None;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = child_cpu_ms() - cpu0;
    println!(
        "{label:<28} {commands:>5} cmds   {wall:>7.2} s  {:>8.0} cmds/s   {:>6.1} µs CPU/cmd{}",
        commands as f64 / wall,
        cpu * 1000.0 / commands as f64,
        if ok { "" } else { "  (FAILED)" }
    );
    ok.then_some(cpu * 1000.0 / commands as f64)
}

/// A client started once per operation, `count` times one after another (what
/// a shell script making the same calls costs); returns its CPU per
/// operation in µs.
fn per_process(label: &str, count: usize, mut cmd: impl FnMut(usize) -> Command) -> Option<f64> {
    let cpu0 = child_cpu_ms();
    let t0 = Instant::now();
    let mut ok = true;
    for i in 0..count {
        match cmd(i).stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(s) => ok &= s.success(),
            Err(e) => {
                println!("{label:<28} skipped: {e}");
                return None;
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = child_cpu_ms() - cpu0;
    println!(
        "{label:<28} {count:>5} procs  {wall:>7.2} s  {:>8.0} ops/s    {:>6.1} µs CPU/op{}",
        count as f64 / wall,
        cpu * 1000.0 / count as f64,
        if ok { "" } else { "  (FAILED)" }
    );
    ok.then_some(cpu * 1000.0 / count as f64)
}

/// How many client processes a per-process baseline starts: enough for a
/// stable figure, few enough to take seconds (each costs a process start).
fn calls_per_process(n: usize) -> usize {
    (2 * n).min(200)
}

/// The distinct values at `pointer` (a JSON pointer into each case) of a report.
fn report_values(report: &Path, pointer: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let r: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    r["cases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .filter_map(|c| c.pointer(pointer).map(Value::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints atf's CPU per step against each reference's CPU per operation.
fn ratios(what: &str, atf_us: f64, refs: &[(&str, Option<f64>)]) {
    for (name, r) in refs {
        if let Some(r) = r {
            println!(
                "atf CPU per {what} step: {:.3}x {name} ({atf_us:.1} vs {r:.1} µs; target ≤ 1.5x)",
                atf_us / r
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The baseline client of the grpc mode, run as a child process.
    if args.first().map(String::as_str) == Some("grpc-client") {
        let n = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(0);
        if let Err(e) = grpc::client(&args[1], Path::new(&args[2]), n) {
            eprintln!("grpc-client: {e}");
            std::process::exit(1);
        }
        return;
    }
    let mut mode = "http".to_string();
    let mut n = 200usize;
    let mut jobs = 8usize;
    let mut repeat = 3usize;
    let mut conns = 16usize;
    let mut secs = 5u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cases" => n = it.next().and_then(|v| v.parse().ok()).unwrap_or(n),
            "--jobs" => jobs = it.next().and_then(|v| v.parse().ok()).unwrap_or(jobs),
            "--repeat" => repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(repeat),
            "--conns" => conns = it.next().and_then(|v| v.parse().ok()).unwrap_or(conns),
            "--secs" => secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(secs),
            m if !m.starts_with('-') => mode = m.to_string(),
            other => panic!("unknown argument {other}"),
        }
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    match mode.as_str() {
        "http" => {
            let url = start_server();
            let project = json!({"default_env": "b", "envs": {"b": {"resources": {"http": {"default": {"base_url": url}}}}}});
            write_cases(dir, n, project.clone(), |i| {
                json!({
                    "name": format!("case {i}"),
                    "steps": [
                        {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "json": {"n": i, "sku": "A-1"}},
                         "expect": {"status": 200, "$.body.echo.n": i}, "save": {"sku": "$.body.echo.sku"}},
                        {"keyword": "http.request", "args": {"url": "/echo?sku=${sku}"}, "expect": {"status": 200}}
                    ]
                })
            });
            // Warm up the page cache and the server once.
            let _ = run_atf(dir, jobs, "cases/c00000.case.json");
            let one = best_of(repeat, || run_atf(dir, 1, "cases/c00000.case.json"));
            println!(
                "start-up: one case in {:.3} s, {:.1} ms CPU",
                one.wall_s, one.cpu_ms
            );
            report(
                "http, --jobs 1",
                n,
                2,
                &best_of(repeat, || run_atf(dir, 1, "cases")),
            );
            report(
                &format!("http, --jobs {jobs}"),
                n,
                2,
                &best_of(repeat, || run_atf(dir, jobs, "cases")),
            );
            compare_hurl(dir, &url, n, jobs, repeat);
        }
        "retry" => {
            let attempts = if args.iter().any(|a| a == "--cases") {
                n
            } else {
                20_000
            };
            write_cases(dir, 1, json!({}), |_| {
                json!({
                    "name": "retried",
                    "vars": {"n": 7, "want": "ORD-${n}"},
                    "steps": [
                        {"keyword": "ctx.set", "args": {"id": "ORD-6", "items": [{"sku": "A-${n}"}]},
                         "retry": {"times": attempts, "interval": "0ms"},
                         "expect": {"$.id": "${want}", "$.items[0].sku": {"$regex": "^A-${n}$"}},
                         "save": {"got": "$.id"}}
                    ]
                })
            });
            // The step never holds, so the run fails: measured as is.
            let m = best_of(repeat, || {
                let mut cmd = Command::new(atf_bin());
                cmd.current_dir(dir)
                    .args(["run", "cases", "--report-dir"])
                    .arg(dir.join("report"))
                    .env("CI", "1");
                measure(cmd)
            });
            assert!(!m.ok, "the retried step was meant to fail on every attempt");
            println!(
                "one step, {attempts} attempts: {:.3} s wall, {:.1} ms CPU, {:.2} µs CPU per attempt",
                m.wall_s,
                m.cpu_ms,
                m.cpu_ms * 1000.0 / attempts as f64
            );
        }
        "check" => {
            // `atf check` on N generated cases (default 10,000): loading,
            // compiling and checking every placeholder, nothing run.
            let n = if args.iter().any(|a| a == "--cases") {
                n
            } else {
                10_000
            };
            let project = json!({"default_env": "b", "envs": {"b": {"resources": {"http": {"default": {"base_url": "http://127.0.0.1:9"}}}}}});
            write_cases(dir, n, project, |i| {
                json!({
                    "name": format!("case {i}"),
                    "tags": ["bench"],
                    "vars": {"sku": format!("A-{i}")},
                    "steps": [
                        {"keyword": "http.request", "args": {"method": "POST", "url": "/echo", "json": {"n": i, "sku": "${sku}"}},
                         "expect": {"status": 200, "$.body.echo.n": i, "$.body.echo.sku": {"$regex": "^A-[0-9]+$"}},
                         "save": {"got": "$.body.echo.sku"}},
                        {"keyword": "http.request", "args": {"url": "/echo?sku=${got}"}, "expect": {"status": 200}}
                    ]
                })
            });
            let mut peak_kb = 0i64;
            let m = best_of(repeat, || {
                let mut cmd = Command::new(atf_bin());
                cmd.current_dir(dir).args(["check", "cases"]);
                let m = measure(cmd);
                peak_kb = peak_kb.max(child_peak_rss_kb());
                m
            });
            assert!(m.ok, "atf check found problems in the generated cases");
            println!(
                "atf check, {n} cases: {:.2} s wall, {:.0} ms CPU ({:.1} µs per case), peak RSS {:.0} MB",
                m.wall_s,
                m.cpu_ms,
                m.cpu_ms * 1000.0 / n as f64,
                peak_kb as f64 / 1024.0
            );
        }
        "redis" => {
            write_cases(dir, n, json!({}), |i| {
                json!({"steps": [
                    {"keyword": "redis.command", "args": {"cmd": ["SET", format!("atf:bench:{i}"), "v"]}, "expect": {"value": "OK"}},
                    {"keyword": "redis.command", "args": {"cmd": ["DEL", format!("atf:bench:{i}")]}, "expect": {"value": 1}}
                ]})
            });
            report(
                &format!("redis, --jobs {jobs}"),
                n,
                2,
                &best_of(repeat, || run_atf(dir, jobs, "cases")),
            );
            let input: String = (0..n)
                .map(|i| format!("SET atf:bench:{i} v\nDEL atf:bench:{i}\n"))
                .collect();
            baseline(
                "redis-cli reading stdin",
                "redis-cli",
                &["-h", "127.0.0.1"],
                input,
                2 * n,
            );
        }
        "mysql" => {
            write_cases(dir, n, json!({}), |i| {
                json!({"steps": [
                    {"keyword": "mysql.query", "args": {"sql": "SELECT ? AS n, NOW() AS t", "params": [i]}, "expect": {"$.rows[0].n": i}},
                    {"keyword": "mysql.query", "args": {"sql": "SELECT COUNT(*) AS c FROM information_schema.tables WHERE table_schema = ?", "params": ["test"]}}
                ]})
            });
            report(
                &format!("mysql, --jobs {jobs}"),
                n,
                2,
                &best_of(repeat, || run_atf(dir, jobs, "cases")),
            );
            let input: String = (0..n)
                .map(|i| format!("SELECT {i} AS n, NOW() AS t;\nSELECT COUNT(*) AS c FROM information_schema.tables WHERE table_schema = 'test';\n"))
                .collect();
            baseline(
                "mysql client reading stdin",
                "mysql",
                &["-h127.0.0.1", "-uroot", "test"],
                input,
                2 * n,
            );
        }
        "plugin" => {
            let plugin_dir = plugin_folder(dir);
            let folder = plugin_dir.to_string_lossy().into_owned();
            let isolated = json!({"plugins": [folder]});
            let in_process = json!({"plugins": [{"path": folder, "in_process": true}]});
            let steps = |kw: &str, args: Value| -> Value {
                json!(
                    (0..10)
                        .map(|_| json!({"keyword": kw, "args": args}))
                        .collect::<Vec<_>>()
                )
            };
            let plugin_case = json!({"steps": steps("sign.sm3", json!({"data": "abc"}))});
            let builtin_case = json!({"steps": steps("assert", json!({"value": "abc"}))});
            write_cases(&dir.join("p"), n, isolated.clone(), |_| plugin_case.clone());
            write_cases(&dir.join("i"), n, in_process, |_| plugin_case.clone());
            write_cases(&dir.join("b"), n, isolated, |_| builtin_case.clone());
            // Interleaved, so that all see the same machine.
            let (b_dir, p_dir, i_dir) = (dir.join("b"), dir.join("p"), dir.join("i"));
            let mut b = run_atf(&b_dir, jobs, "cases");
            let mut p = run_atf(&p_dir, jobs, "cases");
            let mut i = run_atf(&i_dir, jobs, "cases");
            for _ in 1..repeat {
                b = b.best(run_atf(&b_dir, jobs, "cases"));
                p = p.best(run_atf(&p_dir, jobs, "cases"));
                i = i.best(run_atf(&i_dir, jobs, "cases"));
            }
            report("built-in assert ×10", n, 10, &b);
            report("plugin sign.sm3 ×10 (isolated)", n, 10, &p);
            report("plugin sign.sm3 ×10 (in-process)", n, 10, &i);
            let per_call = |m: &Measure| (m.cpu_ms - b.cpu_ms) * 1000.0 / (n * 10) as f64;
            println!(
                "one plugin call costs about {:.1} µs CPU more than a built-in call in a plugin-host process (atf and the hosts together), {:.1} µs inside atf",
                per_call(&p),
                per_call(&i)
            );
        }
        "load" => load::bench(&atf_bin(), conns, secs, repeat),
        // Page times of `atf serve` (best of 5 unless --repeat says more).
        "serve" => serve::bench(&atf_bin(), dir, repeat.max(5)),
        "grpc" => {
            let proto = dir.join("bench.proto");
            std::fs::write(&proto, grpc::PROTO).expect("write the proto");
            let addr = grpc::start_server(&proto);
            let project = json!({"default_env": "b", "envs": {"b": {"resources": {"grpc": {"default": {
                "url": format!("http://{addr}"), "proto": [proto.to_string_lossy()]
            }}}}}});
            write_cases(dir, n, project, |i| {
                json!({"steps": [
                    {"keyword": "grpc.call", "args": {"method": "bench.v1.Bench/Echo", "message": {"n": i, "sku": "A-1"}},
                     "expect": {"$.status.code": "OK", "$.message.n": i}, "save": {"sku": "$.message.sku"}},
                    {"keyword": "grpc.call", "args": {"method": "bench.v1.Bench/Echo", "message": {"n": i, "sku": "${sku}"}},
                     "expect": {"$.message.ok": true}}
                ]})
            });
            let _ = run_atf(dir, jobs, "cases/c00000.case.json");
            report(
                "grpc, --jobs 1",
                n,
                2,
                &best_of(repeat, || run_atf(dir, 1, "cases")),
            );
            let m = best_of(repeat, || run_atf(dir, jobs, "cases"));
            let atf_us = report(&format!("grpc, --jobs {jobs}"), n, 2, &m);
            // grpcurl takes one request message per unary call, so one
            // process per call is the only way it makes them.
            let grpcurl = grpc::grpcurl();
            let per_call = match &grpcurl {
                Some(bin) => {
                    let folder = proto.parent().expect("proto folder").to_path_buf();
                    per_process("grpcurl, one per call", calls_per_process(n), |i| {
                        let mut cmd = Command::new(bin);
                        cmd.args(["-plaintext", "-import-path"])
                            .arg(&folder)
                            .args(["-proto", "bench.proto", "-d"])
                            .arg(format!("{{\"n\":{i},\"sku\":\"A-1\"}}"))
                            .arg(addr.to_string())
                            .arg("bench.v1.Bench/Echo");
                        cmd
                    })
                }
                None => {
                    println!(
                        "grpcurl baseline skipped: no grpcurl (scripts/bench-grpc-deps.sh installs it)"
                    );
                    None
                }
            };
            let exe = std::env::current_exe().expect("current exe");
            let client = best_of(repeat, || {
                let mut cmd = Command::new(&exe);
                cmd.arg("grpc-client")
                    .arg(addr.to_string())
                    .arg(&proto)
                    .arg((2 * n).to_string());
                measure(cmd)
            });
            let client_us = client.cpu_ms * 1000.0 / (2 * n) as f64;
            println!(
                "{:<28} {:>5} calls  {:>7.2} s  {:>8.0} calls/s  {:>6.1} µs CPU/call{}",
                "tonic client, one channel",
                2 * n,
                client.wall_s,
                (2 * n) as f64 / client.wall_s,
                client_us,
                if client.ok { "" } else { "  (FAILED)" }
            );
            ratios(
                "grpc.call",
                atf_us,
                &[
                    ("grpcurl, one process per call", per_call),
                    ("a plain tonic client, one channel", Some(client_us)),
                ],
            );
        }
        "pg" => {
            write_cases(dir, n, json!({}), |i| {
                json!({"steps": [
                    {"keyword": "pg.query", "args": {"sql": "SELECT $1::int AS n, now() AS t, pg_backend_pid() AS pid", "params": [i]}, "expect": {"$.rows[0].n": i}},
                    {"keyword": "pg.query", "args": {"sql": "SELECT count(*) AS c FROM information_schema.tables WHERE table_schema = $1", "params": ["public"]}}
                ]})
            });
            let atf_us = report(
                &format!("pg, --jobs {jobs}"),
                n,
                2,
                &best_of(repeat, || run_atf(dir, jobs, "cases")),
            );
            // Each connection is one server process: count the distinct ones.
            let pids = report_values(
                &dir.join("report/report.json"),
                "/steps/0/result/rows/0/pid",
            );
            println!(
                "pg connections used by {n} cases at --jobs {jobs}: {} (the pool allows 10)",
                pids.len()
            );
            let input: String = (0..n)
                .map(|i| format!("SELECT {i}::int AS n, now() AS t;\nSELECT count(*) AS c FROM information_schema.tables WHERE table_schema = 'public';\n"))
                .collect();
            let conn = ["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q"];
            let batch = baseline("psql reading stdin", "psql", &conn, input, 2 * n);
            let one = per_process("psql -c, one per query", calls_per_process(n), |i| {
                let mut cmd = Command::new("psql");
                cmd.args(conn).arg("-c").arg(if i % 2 == 0 {
                    format!("SELECT {i}::int AS n, now() AS t")
                } else {
                    "SELECT count(*) AS c FROM information_schema.tables WHERE table_schema = 'public'".into()
                });
                cmd
            });
            ratios(
                "pg.query",
                atf_us,
                &[
                    ("one psql process per query", one),
                    ("one psql reading every query from stdin", batch),
                ],
            );
        }
        "amqp" => {
            // amq.topic exists in every vhost; the bench's own routing keys keep it apart.
            let key = format!("atf.bench.{}", std::process::id());
            std::fs::create_dir_all(dir.join("cases")).expect("mkdir");
            std::fs::write(
                dir.join("cases/suite.json"),
                json!({"prepare": [{"keyword": "amqp.consume",
                    "args": {"exchange": "amq.topic", "binding": format!("{key}.#"), "count": 0}}]})
                .to_string(),
            )
            .expect("write suite");
            write_cases(dir, n, json!({}), |i| {
                json!({"steps": [
                    {"keyword": "amqp.publish", "args": {"exchange": "amq.topic", "routing_key": format!("{key}.{i}"), "json": {"n": i}}},
                    {"keyword": "amqp.consume", "args": {"exchange": "amq.topic", "binding": format!("{key}.#"), "match": {"$.body.n": i}},
                     "expect": {"count": 1}}
                ]})
            });
            let atf_us = report(
                &format!("amqp, --jobs {jobs}"),
                n,
                2,
                &best_of(repeat, || run_atf(dir, jobs, "cases")),
            );
            let queue = format!("atf-bench-{}", std::process::id());
            let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
            let declared = Command::new("amqp-declare-queue")
                .args(["-u", url, "-q", &queue])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !declared {
                println!(
                    "amqp-tools baselines skipped: amqp-declare-queue failed (apt-get install amqp-tools)"
                );
                return;
            }
            // One process per operation, as a shell script of the same steps
            // would run them: a publish, then a get of one message.
            let k = calls_per_process(n) / 2;
            let publish_one = per_process("amqp-publish, one per message", k, |i| {
                let mut cmd = Command::new("amqp-publish");
                cmd.args(["-u", url, "-r", &queue, "-b"])
                    .arg(format!("{{\"n\":{i}}}"));
                cmd
            });
            let get_one = per_process("amqp-get, one per message", k, |_| {
                let mut cmd = Command::new("amqp-get");
                cmd.args(["-u", url, "-q", &queue]);
                cmd
            });
            // The clients' floor: one process for every message.
            let input: String = (0..n).map(|i| format!("{{\"n\":{i}}}\n")).collect();
            let publish_batch = baseline(
                "amqp-publish -l (stdin)",
                "amqp-publish",
                &["-u", url, "-r", &queue, "-l"],
                input,
                n,
            );
            let count = n.to_string();
            // amqp-consume hands each message to a command's stdin: `cat`
            // reads it (`true` would not, and die of SIGPIPE).
            let consume_batch = baseline(
                "amqp-consume -c N cat",
                "amqp-consume",
                &["-u", url, "-q", &queue, "-c", &count, "cat"],
                String::new(),
                n,
            );
            let _ = Command::new("amqp-delete-queue")
                .args(["-u", url, "-q", &queue])
                .stdout(Stdio::null())
                .status();
            let mean = |a: Option<f64>, b: Option<f64>| Some((a? + b?) / 2.0);
            ratios(
                "amqp",
                atf_us,
                &[
                    (
                        "amqp-tools, one process per operation (publish, get)",
                        mean(publish_one, get_one),
                    ),
                    (
                        "amqp-publish -l, one process for all messages",
                        publish_batch,
                    ),
                    (
                        "amqp-consume -c N, one process for all messages (and `cat` per message)",
                        consume_batch,
                    ),
                ],
            );
        }
        other => {
            panic!(
                "unknown mode {other}: use http, check, retry, redis, mysql, pg, amqp, grpc, plugin or load"
            )
        }
    }
}
