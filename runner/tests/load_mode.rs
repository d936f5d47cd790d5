//! `atf load`, end to end: the real binary against a real HTTP server
//! started by this test binary (plain threads, one per connection, so its
//! delays are precise to a tenth of a millisecond).
//!
//! The server's `/mixed` endpoint has a known latency distribution: every
//! tenth response waits 200 ms, the others 20 ms. The truth a perfect
//! client would measure is the time the server really took (it records
//! each one: a busy machine wakes a sleeping thread late) plus the client's
//! own cost (round trip, wake-ups), measured in the same run on a second
//! case against `/fixed`, where every response waits 20 ms — so the checks
//! hold for debug builds and busy machines too. The delays are long next
//! to what a busy machine adds to a wake-up (a few ms), so 5 % of them is
//! far more than the noise of those additions. Load runs that measure
//! latency run alone; the other tests run together between them.

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use atf_reports::load::LoadReport;
use serde_json::{Value, json};
use support::{Project, Running};

/// The slow/fast counter of `/mixed`, the time each `/mixed` and `/fixed`
/// answer took (µs), and the order of `/log/…` calls.
#[derive(Default)]
struct State {
    mixed: AtomicU64,
    times: Mutex<HashMap<String, Vec<u64>>>,
    log: Mutex<Vec<String>>,
}

struct Server {
    addr: SocketAddr,
    state: Arc<State>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// The share of `path` answers that took under 100 ms.
    fn fast_share(&self, path: &str) -> f64 {
        let times = self.state.times.lock().unwrap();
        let v = times.get(path).cloned().unwrap_or_default();
        v.iter().filter(|us| **us < 100_000).count() as f64 / v.len().max(1) as f64
    }

    /// How many `path` requests the server answered.
    fn answers(&self, path: &str) -> u64 {
        let times = self.state.times.lock().unwrap();
        times.get(path).map_or(0, |v| v.len() as u64)
    }

    /// Forgets the answer times so far.
    fn forget_times(&self) {
        self.state.times.lock().unwrap().clear();
    }

    /// The quantiles `qs` (0..1) of the answer times of `path`, in ms.
    fn truth(&self, path: &str, qs: &[f64]) -> Vec<f64> {
        let mut v = self
            .state
            .times
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default();
        assert!(!v.is_empty(), "no {path} requests");
        v.sort_unstable();
        qs.iter()
            .map(|q| {
                let at = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
                v[at] as f64 / 1000.0
            })
            .collect()
    }
}

/// Answers one request; `None` when the connection closed.
fn answer(state: &State, reader: &mut BufReader<TcpStream>) -> Option<(u16, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let target = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    let mut auth = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => auth = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let path = target.split('?').next().unwrap_or("").to_string();
    let ok = |v: Value| Some((200, v.to_string()));
    match path.as_str() {
        "/fast" => ok(json!({"ok": true})),
        "/mixed" | "/fixed" => {
            let started = std::time::Instant::now();
            let n = state.mixed.fetch_add(1, Ordering::SeqCst);
            let ms = if n % 10 == 9 && path == "/mixed" {
                200
            } else {
                20
            };
            std::thread::sleep(Duration::from_millis(ms));
            let us = started.elapsed().as_micros() as u64;
            state
                .times
                .lock()
                .unwrap()
                .entry(path.clone())
                .or_default()
                .push(us);
            ok(json!({"slept": ms}))
        }
        "/stall" => {
            std::thread::sleep(Duration::from_millis(500));
            ok(json!({"slept": 500}))
        }
        "/whoami" => ok(json!({"auth": auth})),
        p if p.starts_with("/status/") => Some((p[8..].parse().unwrap_or(500), "{}".into())),
        p if p.starts_with("/log/") => {
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            state.log.lock().unwrap().push(format!(
                "{}{}",
                &p[5..],
                if query.is_empty() {
                    String::new()
                } else {
                    format!("?{query}")
                }
            ));
            ok(json!({"ok": true}))
        }
        _ => Some((404, "{}".into())),
    }
}

fn serve(state: Arc<State>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some((status, body)) = answer(&state, &mut reader) {
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// The one server of this test binary.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(s, conn));
            }
        });
        Server { addr, state }
    })
}

fn lock() -> &'static RwLock<()> {
    static LOCK: RwLock<()> = RwLock::new(());
    &LOCK
}

/// Load runs that measure latency run alone, so that nothing else slows
/// them down.
fn timing() -> RwLockWriteGuard<'static, ()> {
    lock().write().unwrap_or_else(|e| e.into_inner())
}

/// Other load runs may run together (but not with a timing run).
fn shared() -> RwLockReadGuard<'static, ()> {
    lock().read().unwrap_or_else(|e| e.into_inner())
}

fn get_case(name: &str, path: &str) -> Value {
    json!({ "name": name, "steps": [
        { "keyword": "http.request", "remark": format!("get {path}"),
          "args": { "url": server().url(path) }, "expect": { "status": 200 } } ] })
}

/// How many requests the server logged at `/log/TAG-WHAT`.
fn logged(tag: &str, what: &str) -> usize {
    let line = format!("{tag}-{what}");
    server().log().iter().filter(|l| **l == line).count()
}

fn read_load(p: &Project, dir: &str) -> LoadReport {
    atf_reports::load::json::read(&p.join(dir).join("load.json")).expect("load.json")
}

fn ok_run(p: &Project, args: &[&str]) -> support::Output {
    let out = p.atf(args);
    assert_eq!(
        out.code, 0,
        "atf {args:?}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out
}

/// What a run of `/mixed` and `/fixed` measured, and the truth to hold it to.
struct Mixed {
    /// The `/mixed` step row.
    step: atf_reports::load::Row,
    /// The `mixed` case row (iterations, from their intended start).
    case: atf_reports::load::Row,
    /// The expected p50 and p95 of the step.
    step_truth: (f64, f64),
    /// The expected p50 of the case.
    case_p50: f64,
    report: LoadReport,
}

/// Runs `/mixed` and `/fixed` (weights 1:1) with `args`. The truth of a
/// quantile of `/mixed` is the server's own time at that quantile plus
/// what atf added at the same rank of its samples, measured on `/fixed`
/// (its quantile less the server's): for the step rows, and for the case
/// rows, which add what an iteration costs around its step.
fn measure_mixed(args: &[&str]) -> Mixed {
    let p = Project::new();
    p.file("mixed.case.json", get_case("mixed", "/mixed"));
    p.file("fixed.case.json", get_case("fixed", "/fixed"));
    let mut all = vec!["load"];
    all.extend_from_slice(args);
    server().forget_times();
    ok_run(&p, &all);
    let mixed = server().truth("/mixed", &[0.5, 0.95]);
    // The known distribution, as the server delivered it (a busy machine
    // wakes its threads late, so the truth is what it really took).
    assert!(
        mixed[0] >= 20.0 && mixed[1] >= 200.0,
        "the server's own times: {mixed:?}"
    );
    let r = read_load(&p, "atf-report");
    let step = |label: &str| r.steps.iter().find(|s| s.label == label).cloned().unwrap();
    let case = |label: &str| r.cases.iter().find(|c| c.label == label).cloned().unwrap();
    // Every request atf made was answered and recorded, and none else.
    for (path, row) in [
        ("/mixed", step("get /mixed")),
        ("/fixed", step("get /fixed")),
    ] {
        assert_eq!(row.samples, server().answers(path), "{path}: {row:?}");
        assert_eq!(row.errors, 0, "{path}: {row:?}");
    }
    // The p50 of /mixed is a rank of its fast nine tenths, the p95 the
    // middle of its slow tenth: what atf adds is taken at those ranks.
    let fast = server().fast_share("/mixed");
    let (q50, q95) = (0.5 / fast, (0.95 - fast) / (1.0 - fast));
    let cost = |row: &atf_reports::load::Row, q: f64| {
        let h = atf::loadtest::histo::decode(&row.histogram).unwrap();
        atf::loadtest::histo::quantile_ms(&h, q) - server().truth("/fixed", &[q])[0]
    };
    let fixed_step = step("get /fixed");
    let fixed_case = case("fixed");
    Mixed {
        step: step("get /mixed"),
        case: case("mixed"),
        step_truth: (
            mixed[0] + cost(&fixed_step, q50),
            mixed[1] + cost(&fixed_step, q95),
        ),
        case_p50: mixed[0] + cost(&fixed_case, q50),
        report: r,
    }
}

fn within(measured: f64, truth: f64, pct: f64) -> bool {
    (measured - truth).abs() <= truth * pct / 100.0
}

#[test]
fn closed_model_percentiles_match_the_server() {
    let _t = timing();
    // No warm-up: the server saw exactly what atf recorded. A fixed number
    // of iterations: ~50 slow /mixed answers however fast the machine is.
    let m = measure_mixed(&["--vus", "10", "--iterations", "1000"]);
    let (step, (p50, p95), r) = (&m.step, m.step_truth, &m.report);
    assert_eq!(r.summary.iterations, 1000);
    assert_eq!(step.samples, 500, "{step:?}");
    assert!(
        within(step.median_ms, p50, 5.0),
        "p50 {} vs {p50}",
        step.median_ms
    );
    assert!(
        within(step.p95_ms, p95, 5.0),
        "p95 {} vs {p95}",
        step.p95_ms
    );
    assert!(
        within(m.case.median_ms, m.case_p50, 5.0),
        "case p50 {} vs {}",
        m.case.median_ms,
        m.case_p50
    );
    assert_eq!(r.config.model, "closed");
    assert_eq!(r.config.vus, Some(10));
    assert_eq!(r.summary.max_vus, 10);
    // The series' counts add up.
    assert_eq!(
        r.series.iter().map(|p| p.requests).sum::<u64>(),
        r.total.samples
    );
}

#[test]
fn the_console_shows_a_live_line_each_second_and_the_table() {
    let _s = shared();
    let p = Project::new();
    p.file("fast.case.json", get_case("fast", "/fast"));
    let out = ok_run(&p, &["load", "--vus", "2", "--duration", "2s"]);
    let live: Vec<&str> = out.stdout.lines().filter(|l| l.contains("req/s")).collect();
    assert!((2..=3).contains(&live.len()), "{}", out.stdout);
    assert!(
        live[0].contains("vus    2") && live[0].contains("p95"),
        "{}",
        live[0]
    );
    assert!(out.stdout.contains("Label") && out.stdout.contains("95% Line"));
    assert!(out.stdout.contains("  get /fast "), "{}", out.stdout);
    assert!(
        out.stdout.contains("Reports: atf-report/load.html"),
        "{}",
        out.stdout
    );
    assert!(
        support::Output::last_line(&out).starts_with("load: "),
        "{}",
        out.stdout
    );
}

#[test]
fn open_model_percentiles_match_and_every_arrival_is_counted() {
    let _t = timing();
    let m = measure_mixed(&["--rate", "300/s", "--max-vus", "50", "--duration", "3s"]);
    let (step, (p50, p95), r) = (&m.step, m.step_truth, &m.report);
    assert!(
        within(step.median_ms, p50, 5.0),
        "p50 {} vs {p50}",
        step.median_ms
    );
    assert!(
        within(step.p95_ms, p95, 5.0),
        "p95 {} vs {p95}",
        step.p95_ms
    );
    // The iteration's latency counts from its intended start.
    assert!(
        within(m.case.median_ms, m.case_p50, 5.0),
        "case p50 {} vs {}",
        m.case.median_ms,
        m.case_p50
    );
    // Arrivals are on a fixed schedule: 300/s for 3 s, each started or
    // dropped, however late the machine let atf see them.
    assert_eq!(
        r.summary.iterations + r.summary.dropped,
        900,
        "{:?}",
        r.summary
    );
    // An arrival is dropped only when all --max-vus VUs are busy (about 9
    // are needed for 300/s of 20–200 ms: only a machine that stalls the
    // process for a while makes that happen), and VUs are reused.
    assert!(
        r.summary.dropped == 0 || r.summary.max_vus == 50,
        "{:?}",
        r.summary
    );
    assert!(r.summary.max_vus <= 50, "{:?}", r.summary);
    assert!(r.summary.iterations > r.summary.max_vus, "{:?}", r.summary);
    assert_eq!(r.config.rate, Some(300.0));
    // One point per measured second, and their counts add up.
    assert!(r.series.len() >= 3, "{:?}", r.series.len());
    assert_eq!(
        r.series.iter().map(|p| p.requests).sum::<u64>(),
        r.total.samples
    );
    assert_eq!(
        r.series.iter().map(|p| p.iterations).sum::<u64>(),
        r.summary.iterations
    );
    assert_eq!(
        r.series.iter().map(|p| p.dropped).sum::<u64>(),
        r.summary.dropped
    );
}

#[test]
fn a_stalled_server_drops_iterations_and_the_threshold_says_so() {
    let _s = shared();
    let p = Project::new();
    p.file("stall.case.json", get_case("stall", "/stall"));
    let out = p.atf(&[
        "load",
        "--rate",
        "40/s",
        "--max-vus",
        "2",
        "--duration",
        "2s",
        "--threshold",
        "dropped==0",
        "--threshold",
        "p95<2s",
    ]);
    assert_eq!(
        out.code, 99,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    let r = read_load(&p, "atf-report");
    // 80 arrivals; 2 VUs busy 500 ms each can take about 8 of them.
    assert_eq!(
        r.summary.iterations + r.summary.dropped,
        80,
        "{:?}",
        r.summary
    );
    assert!(r.summary.dropped >= 60, "{:?}", r.summary);
    assert!(r.summary.max_vus <= 2);
    assert!(r.steps[0].median_ms >= 500.0, "{:?}", r.steps[0]);
    let dropped = &r.thresholds[0];
    assert!(
        !dropped.ok && dropped.expr == "dropped==0",
        "{:?}",
        r.thresholds
    );
    assert!(r.thresholds[1].ok);
    assert!(
        out.stdout.contains("✗ BREACHED  dropped==0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("✓ met       p95<2s"), "{}", out.stdout);
}

#[test]
fn thresholds_breached_exit_99_and_junit_lists_them() {
    let _s = shared();
    let p = Project::new();
    p.file("fast.case.json", get_case("fast", "/fast"));
    let out = p.atf(&[
        "load",
        "--vus",
        "2",
        "--iterations",
        "50",
        "--threshold",
        "p95<10s",
        "--threshold",
        "step:\"get /fast\" p99<1us",
        "--threshold",
        "rate>=1/s",
    ]);
    assert_eq!(out.code, 99, "{}\n{}", out.stdout, out.stderr);
    let junit = p.join("atf-report/junit.xml");
    let text = std::fs::read_to_string(&junit).expect("junit.xml");
    assert!(
        text.contains("name=\"step:&quot;get /fast&quot; p99&lt;1us\""),
        "{text}"
    );
    // A real JUnit reader sees one test per threshold (and the iterations rule).
    let parsed = junit_counts(&junit);
    assert_eq!(parsed, (4, 1), "{text}");
    assert!(
        support::Output::last_line(&out).contains("thresholds: 2 met, 1 breached"),
        "{}",
        out.stdout
    );
}

/// (tests, failures) of a JUnit file as junitparser reads it (from the
/// project's .tools/venv that scripts/test-deps.sh makes, else python3's).
fn junit_counts(path: &std::path::Path) -> (u64, u64) {
    let script = "import sys; from junitparser import JUnitXml; x = JUnitXml.fromfile(sys.argv[1]); print(x.tests, x.failures)";
    let venv = support::workspace().join(".tools/venv/bin/python");
    let python = if venv.is_file() {
        venv
    } else {
        std::path::PathBuf::from("python3")
    };
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "junitparser could not read {} (run scripts/test-deps.sh): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

#[test]
fn failed_expectations_are_errors_by_kind_with_masked_messages() {
    let _s = shared();
    let p = Project::new();
    p.file("bad.case.json", json!({ "name": "bad", "steps": [
        { "keyword": "http.request", "remark": "who am i",
          "args": { "url": server().url("/whoami"), "headers": { "Authorization": "Bearer s3cr3t-t0ken" } },
          "expect": { "$.body.auth": "someone else" } },
        { "keyword": "http.request", "args": { "url": server().url("/status/503") }, "expect": { "status": 200 } } ] }));
    let out = p.atf(&["load", "--vus", "2", "--iterations", "20"]);
    // Failed iterations without an `errors` threshold fail the run.
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let r = read_load(&p, "atf-report");
    let who = r
        .steps
        .iter()
        .find(|s| s.label == "who am i")
        .expect("who am i");
    assert_eq!((who.samples, who.errors), (20, 20));
    assert_eq!(
        who.errors_by_kind.get("expectation $.body.auth"),
        Some(&20),
        "{:?}",
        who.errors_by_kind
    );
    assert!(
        !who.messages.is_empty() && who.messages.len() <= 5,
        "{:?}",
        who.messages
    );
    let text = std::fs::read_to_string(p.join("atf-report/load.json")).unwrap();
    assert!(!text.contains("s3cr3t-t0ken"), "a secret reached load.json");
    assert!(!out.stdout.contains("s3cr3t-t0ken") && !out.stderr.contains("s3cr3t-t0ken"));
    assert!(who.messages[0].contains("***"), "{:?}", who.messages);
    // The second step never ran: its set stopped at the first failure.
    assert!(
        r.steps
            .iter()
            .all(|s| s.label != "bad: step 2 http.request" || s.samples == 0)
    );
    assert_eq!(
        (r.summary.iterations, r.summary.failed_iterations),
        (20, 20)
    );
    assert!(r.iterations_must_pass);
    // With an error budget the same run passes its thresholds... or not.
    let out = p.atf(&[
        "load",
        "--vus",
        "2",
        "--iterations",
        "20",
        "--threshold",
        "errors<100%",
    ]);
    assert_eq!(
        out.code, 99,
        "100% errors breach errors<100%: {}",
        out.stdout
    );
    let out = p.atf(&[
        "load",
        "--vus",
        "2",
        "--iterations",
        "20",
        "--threshold",
        "errors<=100%",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn weights_mix_cases_and_data_rows_are_taken_in_turn() {
    let _s = shared();
    let p = Project::new();
    let logged = |what: &str| json!({ "keyword": "http.request", "args": { "url": server().url(&format!("/log/{what}")) } });
    let tag = format!("w{}", std::process::id());
    p.file(
        "a.case.json",
        json!({ "name": "browse", "weight": 3,
        "steps": [ logged(&format!("{tag}-browse")) ] }),
    );
    p.file("b.case.json", json!({ "name": "buy",
        "data": [ {"sku": "A"}, {"sku": "B"} ],
        "steps": [ { "keyword": "http.request",
                     "args": { "url": server().url(&format!("/log/{tag}-buy")), "query": { "sku": "${sku}" } } } ] }));
    ok_run(&p, &["load", "--vus", "1", "--iterations", "400"]);
    let log: Vec<String> = server()
        .log()
        .into_iter()
        .filter(|l| l.starts_with(&tag))
        .collect();
    let browse = log.iter().filter(|l| l.contains("-browse")).count();
    let buys: Vec<&String> = log.iter().filter(|l| l.contains("-buy")).collect();
    assert_eq!(browse + buys.len(), 400);
    assert!(
        (297..=303).contains(&browse),
        "browse {browse} of 400 (weight 3:1)"
    );
    // Rows in turn: A, B, A, B…
    for (i, l) in buys.iter().enumerate() {
        let want = if i % 2 == 0 { "sku=A" } else { "sku=B" };
        assert!(l.ends_with(want), "{i}: {l}");
    }
    // --weight overrides the case file; weight 0 leaves a case out.
    ok_run(
        &p,
        &[
            "load",
            "--iterations",
            "10",
            "--weight",
            "browse=0",
            "--report-dir",
            "w0",
        ],
    );
    let r = read_load(&p, "w0");
    assert_eq!(r.cases.len(), 1);
    assert_eq!(r.cases[0].label, "buy");
    assert_eq!(r.cases[0].samples, 10);
    let out = p.atf(&["load", "--weight", "brwose=2"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("did you mean `browse`"),
        "{}",
        out.stderr
    );
}

#[test]
fn iterations_run_the_whole_case_or_only_steps_per_vu() {
    let _s = shared();
    let p = Project::new();
    let tag = format!("f{}", std::process::id());
    let call = |what: &str| json!({ "keyword": "http.request", "args": { "url": server().url(&format!("/log/{tag}-{what}")) } });
    p.file(
        "suite.json",
        json!({ "prepare": [call("suite-prepare")], "cleanup": [call("suite-cleanup")] }),
    );
    p.file(
        "flow.case.json",
        json!({ "name": "flow",
        "prepare": [call("prepare")],
        "steps": [ { "keyword": "http.request", "remark": "do",
                     "args": { "url": server().url(&format!("/log/{tag}-step")) },
                     "undo": call("undo") } ],
        "cleanup": [call("cleanup")] }),
    );
    let count = |what: &str| logged(&tag, what);
    ok_run(&p, &["load", "--vus", "3", "--iterations", "30"]);
    for what in ["prepare", "step", "undo", "cleanup"] {
        assert_eq!(count(what), 30, "{what} in --iteration case");
    }
    assert_eq!((count("suite-prepare"), count("suite-cleanup")), (1, 1));
    let r = read_load(&p, "atf-report");
    let labels: Vec<&str> = r.steps.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "flow: prepare 1 http.request",
            "do",
            "flow: undo http.request",
            "flow: cleanup 1 http.request"
        ]
    );
    assert!(r.steps.iter().all(|s| s.samples == 30), "{labels:?}");

    // Per VU: prepare once per VU, cleanup when it stops; steps and their undo per iteration.
    // 150 iterations: every one of the 3 VUs surely gets some.
    ok_run(
        &p,
        &[
            "load",
            "--vus",
            "3",
            "--iterations",
            "150",
            "--iteration",
            "steps",
        ],
    );
    assert_eq!(count("prepare"), 33);
    assert_eq!(count("cleanup"), 33);
    assert_eq!(count("step"), 180);
    assert_eq!(count("undo"), 180);
    assert_eq!((count("suite-prepare"), count("suite-cleanup")), (2, 2));
    assert_eq!(read_load(&p, "atf-report").config.iteration, "steps");
}

#[test]
fn ctrl_c_stops_starting_iterations_cleans_up_and_writes_results() {
    let _s = shared();
    let p = Project::new();
    let tag = format!("c{}", std::process::id());
    p.file("slow.case.json", json!({ "name": "slow",
        "steps": [ { "keyword": "http.request", "args": { "url": server().url("/fast") } },
                   { "keyword": "sleep", "args": { "duration": "50ms" } } ],
        "cleanup": [ { "keyword": "http.request", "args": { "url": server().url(&format!("/log/{tag}-cleanup")) } } ] }));
    let mut run = Running::spawn(p.command(&["load", "--vus", "4", "--duration", "60s"]));
    run.wait_for("req/s", 2, Duration::from_secs(60));
    run.interrupt();
    let (code, _) = run.wait_exit(Duration::from_secs(60));
    assert_eq!(
        code,
        130,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout(),
        run.stderr()
    );
    let r = read_load(&p, "atf-report");
    assert!(r.summary.interrupted);
    assert!(r.summary.iterations > 0);
    // Every iteration that started ran its cleanup, the interrupted ones too.
    let cleanups = server()
        .log()
        .iter()
        .filter(|l| **l == format!("{tag}-cleanup"))
        .count() as u64;
    let s = &r.summary;
    assert_eq!(cleanups, s.iterations + s.interrupted_iterations, "{s:?}");
    assert!(s.interrupted_iterations <= 4, "{s:?}");
    assert_eq!(
        s.failed_iterations, 0,
        "interrupted iterations are not failures: {s:?}"
    );
    assert!(run.stdout().contains("(interrupted)"), "{}", run.stdout());
}

#[test]
fn shards_merge_exactly_and_thresholds_are_judged_again() {
    let _t = timing();
    let p = Project::new();
    p.file("mixed.case.json", get_case("mixed", "/mixed"));
    for k in ["1/2", "2/2"] {
        let dir = format!("shard{}", &k[..1]);
        ok_run(
            &p,
            &[
                "load",
                "--vus",
                "4",
                "--iterations",
                "200",
                "--shard",
                k,
                "--report-dir",
                &dir,
                "--threshold",
                "p95<10s",
            ],
        );
    }
    let a = read_load(&p, "shard1");
    let b = read_load(&p, "shard2");
    assert_eq!((a.config.vus, b.config.vus), (Some(2), Some(2)));
    assert_eq!((a.summary.iterations, b.summary.iterations), (100, 100));
    assert_eq!(a.shards, vec!["1/2"]);
    let out = p.atf(&["report", "merge", "shard1", "shard2", "--out", "merged"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let m = read_load(&p, "merged");
    assert_eq!(m.summary.iterations, 200);
    assert_eq!(m.total.samples, 200);
    assert_eq!(m.config.vus, Some(4));
    assert_eq!(m.shards, vec!["1/2", "2/2"]);
    // 10 % of 200 at 200 ms: the merged p95 is in the slow tenth although
    // neither shard's share of slow responses was known in advance.
    assert!(m.total.p95_ms >= 200.0, "{:?}", m.total);
    assert!(m.thresholds[0].ok);
    assert!(p.join("merged/load.html").is_file() && p.join("merged/junit.xml").is_file());
    // Judged again: a threshold each shard met can fail on the whole.
    let mut strict = read_load(&p, "shard1");
    strict.thresholds[0].expr = "p50<1us".into();
    atf_reports::load::json::write(&p.join("shard1/load.json"), &strict).unwrap();
    let out = p.atf(&["report", "merge", "shard1", "shard2", "--out", "merged2"]);
    assert_eq!(out.code, 99, "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn samples_are_written_as_jmeter_csv() {
    let _s = shared();
    let p = Project::new();
    p.file("fast.case.json", get_case("fast", "/fast"));
    ok_run(
        &p,
        &[
            "load",
            "--vus",
            "2",
            "--iterations",
            "25",
            "--samples",
            "out/run.jtl",
        ],
    );
    let text = std::fs::read_to_string(p.join("out/run.jtl")).expect("run.jtl");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("timeStamp,elapsed,label,responseCode,responseMessage,threadName")
    );
    assert_eq!(lines.len(), 26);
    assert!(lines[1].contains(",get /fast,200,OK,vu "), "{}", lines[1]);
    let r = read_load(&p, "atf-report");
    assert!(r.total.bytes_received > 25 * 12, "{:?}", r.total);
    assert!(r.total.received_kbps > 0.0 && r.total.sent_kbps > 0.0);
}

#[test]
fn thresholds_come_from_the_project_file_per_environment() {
    let _s = shared();
    let p = Project::new();
    p.file("fast.case.json", get_case("fast", "/fast"));
    p.file(
        "atf.json",
        json!({ "default_env": "ci", "envs": {
        "ci": { "load": { "thresholds": ["p99<1us", "errors<1%"] } },
        "dev": {} } }),
    );
    let out = p.atf(&["load", "--iterations", "5"]);
    assert_eq!(out.code, 99, "{}", out.stdout);
    let r = read_load(&p, "atf-report");
    assert_eq!(r.thresholds.len(), 2);
    assert_eq!(r.thresholds[0].source, "atf.json, environment `ci`");
    assert!(!r.iterations_must_pass, "errors<1% is the error budget");
    ok_run(&p, &["load", "--iterations", "5", "--env", "dev"]);
    p.file(
        "atf.json",
        "{\"envs\": {\"ci\": {\"load\": {\"thresholds\": [\"p95 < fast\"]}}}}",
    );
    let out = p.atf(&["load", "--iterations", "5", "--env", "ci"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("atf.json") && out.stderr.contains("does not start with a number"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_usage_is_refused_before_anything_runs() {
    let _s = shared();
    let p = Project::new();
    p.file("fast.case.json", get_case("fast", "/fast"));
    let cases: &[(&[&str], &str)] = &[
        (
            &["load", "--threshold", "step:\"get /fsat\" p95<1s"],
            "did you mean `get /fast`",
        ),
        (&["load", "--threshold", "p95 <"], "is not a threshold"),
        (&["load", "--rate", "fast"], "is not a rate"),
        (
            &["load", "--vus", "2", "--rate", "3/s"],
            "cannot be used with",
        ),
        (&["load", "--duration", "10"], "give a unit"),
        (&["load", "--threads", "0"], "--threads"),
        (
            &["load", "--vus", "1", "--shard", "2/2"],
            "gets no virtual users",
        ),
    ];
    for (args, why) in cases {
        let out = p.atf(args);
        assert_eq!(out.code, 2, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    assert!(!p.join("atf-report").exists());
}

#[test]
fn graceful_stop_interrupts_late_iterations_and_still_cleans_up() {
    let _s = shared();
    let p = Project::new();
    let tag = format!("g{}", std::process::id());
    p.file("slow.case.json", json!({ "name": "slow",
        "steps": [ { "keyword": "sleep", "args": { "duration": "20s" } } ],
        "cleanup": [ { "keyword": "http.request", "args": { "url": server().url(&format!("/log/{tag}-cleanup")) } } ] }));
    let out = p.atf(&[
        "load",
        "--vus",
        "2",
        "--duration",
        "500ms",
        "--graceful-stop",
        "300ms",
    ]);
    // Cut short by the graceful stop: neither failures nor a failed run.
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--graceful-stop"), "{}", out.stderr);
    let r = read_load(&p, "atf-report");
    assert_eq!(
        (r.summary.iterations, r.summary.interrupted_iterations),
        (0, 2),
        "{:?}",
        r.summary
    );
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary);
    let cleanups = server()
        .log()
        .iter()
        .filter(|l| **l == format!("{tag}-cleanup"))
        .count();
    assert_eq!(cleanups, 2);
}

/// A load run builds only the result fields that something reads: every
/// field a step's expectations or saves name is still there, whole.
#[test]
fn checks_read_every_result_field_they_name_in_a_load_run() {
    let _s = shared();
    let p = Project::new();
    p.file(
        "fields.case.json",
        json!({ "name": "fields", "steps": [
        { "keyword": "http.request", "remark": "read fields",
          "args": { "url": server().url("/fast") },
          "expect": {
              "$.body.ok": true,
              "$.header_list.content-type": { "$len": 1 },
              "$.sha256": { "$regex": "^[0-9a-f]{64}$" },
              "$.timings.total_ms": { "$type": "number" },
              "$.cookies": { "$type": "object" }
          },
          "save": { "ok": "$.body.ok" } },
        { "keyword": "http.request", "remark": "use saved",
          "args": { "url": server().url("/log/lean?ok=${ok}") }, "expect": { "status": 200 } },
        // A root path reads everything.
        { "keyword": "http.request", "remark": "whole result",
          "args": { "url": server().url("/fast") },
          "expect": { "$": { "$type": "object" }, "$.body": { "ok": true } } } ] }),
    );
    let out = ok_run(&p, &["load", "--vus", "2", "--iterations", "6"]);
    let r = read_load(&p, "atf-report");
    for label in ["read fields", "use saved", "whole result"] {
        let row = r.steps.iter().find(|s| s.label == label).expect(label);
        assert_eq!(
            (row.samples, row.errors),
            (6, 0),
            "{label}: {:?}\n{}",
            row.messages,
            out.stdout
        );
    }
    // Received bytes still count as on the wire: status line and blank
    // line (19), `content-type: application/json` (32), `content-length: 11`
    // (20) and the 11-byte body `{"ok":true}`.
    let read = r.steps.iter().find(|s| s.label == "read fields").unwrap();
    assert_eq!(read.bytes_received, 6 * (19 + 32 + 20 + 11));
    let logged = server().log();
    assert!(logged.iter().any(|l| l == "lean?ok=true"), "{logged:?}");
}

#[test]
fn virtual_users_share_threads_unless_a_keyword_waits_on_its_own() {
    let _s = shared();
    let p = Project::new();
    let tag = format!("t{}", std::process::id());
    let get = |what: &str| json!({ "keyword": "http.request", "args": { "url": server().url(&format!("/log/{tag}-{what}")) }, "expect": { "status": 200 } });
    let count = |what: &str| logged(&tag, what);
    // 20 VUs that mostly sleep: sharing one thread, they still sleep side
    // by side (about 100 iterations in 1.5 s); if a sleep held the thread,
    // it would make about 5.
    p.file(
        "nap.case.json",
        json!({ "name": "nap", "steps": [
            { "keyword": "sleep", "args": { "duration": "300ms" } }, get("nap") ] }),
    );
    let out = ok_run(
        &p,
        &[
            "load",
            "nap.case.json",
            "--vus",
            "20",
            "--duration",
            "1500ms",
        ],
    );
    assert!(
        out.stdout.contains("virtual users share "),
        "{}",
        out.stdout
    );
    let naps = count("nap");
    assert!(naps >= 50, "{naps} iterations of 20 sleeping VUs in 1.5 s");
    assert_eq!(read_load(&p, "atf-report").cases[0].samples as usize, naps);

    // `exec` waits on its thread: each VU has one, and the case runs as before.
    p.file(
        "shell.case.json",
        json!({ "name": "shell", "steps": [
            { "keyword": "exec", "args": { "cmd": ["true"] }, "expect": { "exit_code": 0 } },
            get("shell") ] }),
    );
    let out = ok_run(
        &p,
        &[
            "load",
            "shell.case.json",
            "--vus",
            "4",
            "--iterations",
            "12",
        ],
    );
    assert!(
        out.stdout
            .contains("virtual users: a thread each (`exec` waits on its thread)"),
        "{}",
        out.stdout
    );
    assert_eq!(count("shell"), 12);

    // The open model: 50 arrivals a second of 300 ms each need about 15
    // VUs at once; on one shared thread none is dropped. With `exec`, a VU
    // thread each, as before. Each run: what it said, iterations, dropped.
    let open = |args: &[&str]| {
        let mut all = vec!["load", "--duration", "1s"];
        all.extend_from_slice(args);
        let out = ok_run(&p, &all);
        let r = read_load(&p, "atf-report");
        (out.stdout, r.summary.iterations, r.summary.dropped)
    };
    let (said, iterations, dropped) = open(&[
        "nap.case.json",
        "--rate",
        "50/s",
        "--max-vus",
        "40",
        "--threads",
        "1",
    ]);
    assert!(said.contains("virtual users share 1 thread "), "{said}");
    assert_eq!((iterations, dropped), (50, 0), "{said}");
    let before = count("shell");
    let (said, iterations, dropped) =
        open(&["shell.case.json", "--rate", "20/s", "--max-vus", "4"]);
    assert!(said.contains("a thread each"), "{said}");
    assert_eq!((iterations, dropped), (20, 0), "{said}");
    assert_eq!(count("shell") - before, 20);
}

#[test]
fn sql_and_redis_steps_share_threads_too() {
    let _s = shared();
    for (service, addr) in [
        ("MariaDB", "127.0.0.1:3306"),
        ("PostgreSQL", "127.0.0.1:5432"),
        ("Redis", "127.0.0.1:6379"),
    ] {
        assert!(
            TcpStream::connect(addr).is_ok(),
            "{service} does not answer on {addr}: start the test services with `scripts/services.sh`"
        );
    }
    let p = Project::new();
    let key = format!("atf-load-shared-{}", std::process::id());
    let one = |keyword: &str| json!({ "keyword": keyword, "args": { "sql": "SELECT 1 AS n" }, "expect": { "$.rows[0].n": 1 } });
    p.file(
        "db.case.json",
        json!({ "name": "db",
            "prepare": [ { "keyword": "pg.exec", "args": { "sql": "SELECT 1" } } ],
            "steps": [
                { "keyword": "redis.command", "args": { "cmd": ["INCR", key] } },
                one("mysql.query"), one("pg.query") ],
            "cleanup": [ { "keyword": "mysql.exec", "args": { "sql": "DO 0" } } ] }),
    );
    let out = ok_run(
        &p,
        &[
            "load",
            "db.case.json",
            "--vus",
            "8",
            "--threads",
            "1",
            "--iterations",
            "40",
        ],
    );
    assert!(
        out.stdout.contains("virtual users share 1 thread "),
        "{}",
        out.stdout
    );
    let r = read_load(&p, "atf-report");
    assert_eq!(
        (r.summary.iterations, r.summary.errors),
        (40, 0),
        "{}",
        out.stdout
    );
    // Every INCR reached Redis once: read the counter back and drop it.
    p.file(
        "check.case.json",
        json!({ "name": "check", "steps": [
            { "keyword": "redis.command", "args": { "cmd": ["GET", key] }, "expect": { "value": "40" } },
            { "keyword": "redis.command", "args": { "cmd": ["DEL", key] } } ] }),
    );
    let out = p.atf(&["run", "check.case.json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn selection_flags_warm_up_and_ramp_shape_the_run() {
    let _s = shared();
    let p = Project::new();
    let tag = format!("s{}", std::process::id());
    // `--var` fills the path; `--tags` leaves the untagged case out.
    let hit = |name: &str, tags: Value| {
        json!({ "name": name, "tags": tags, "steps": [ { "keyword": "http.request",
            "args": { "url": server().url(&format!("/log/{tag}-${{what}}")) },
            "expect": { "status": 200 } } ] })
    };
    p.file("hot.case.json", hit("hot", json!(["hot"])));
    p.file("cold.case.json", hit("cold", json!([])));
    let out = ok_run(
        &p,
        &[
            "load",
            "--tags",
            "hot",
            "--var",
            "what=warm",
            "--vus",
            "1",
            "--warmup",
            "500ms",
            "--duration",
            "500ms",
        ],
    );
    let r = read_load(&p, "atf-report");
    let labels: Vec<&str> = r.cases.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["hot"], "{}", out.stdout);
    assert_eq!(r.config.warmup_s, 0.5);
    // The warm-up ran (the server saw it) but recorded nothing.
    let recorded = r.summary.iterations as usize;
    assert!(recorded > 0, "{}", out.stdout);
    assert!(
        logged(&tag, "warm") > recorded,
        "{} requests, {recorded} recorded",
        logged(&tag, "warm")
    );

    // Ramp: VU i of 4 starts at 2 s · i/4, so the first second has fewer
    // than 4 VUs alive and the last has all 4.
    let out = ok_run(
        &p,
        &[
            "load",
            "--tags",
            "hot",
            "--var",
            "what=ramp",
            "--vus",
            "4",
            "--ramp",
            "2s",
            "--duration",
            "2500ms",
        ],
    );
    let r = read_load(&p, "atf-report");
    let vus: Vec<u64> = r.series.iter().map(|pt| pt.vus).collect();
    assert!(
        vus.first().is_some_and(|v| *v < 4),
        "{vus:?}\n{}",
        out.stdout
    );
    assert!(vus.contains(&4), "{vus:?}\n{}", out.stdout);
    assert_eq!(r.config.ramp_s, 2.0);
}
