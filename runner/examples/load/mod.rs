//! `just bench load`: `atf load` against a static local endpoint, next to
//! `wrk` (the ceiling: a C load generator) and Locust (the Python peer),
//! at the same connection count, on the same nginx (Debian's, started
//! here on a loopback port with `runner/examples/load/nginx.conf`). atf
//! runs twice: with its default threads (one per CPU less one, at least
//! one: on 2 cores the one thread that `wrk -t1` and Locust's one process
//! use) and with `--threads` one per CPU.
//!
//! Each tool runs for the same time; the figures are requests per second,
//! the tool's own CPU (user + system, from `wait4`, less what it had used
//! when its first request reached nginx: start-up such as Python imports)
//! per request and per second of wall time (cores busy), requests per
//! CPU-second (per core), and the tool's peak RSS. Every figure is the best
//! of `--repeat` runs, the tools interleaved.
//! Needs `scripts/bench-load-deps.sh` (nginx, wrk, Locust in .venv-bench).

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One measured run of a tool.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Requests answered.
    pub requests: f64,
    /// Wall time of the measured part, s.
    pub secs: f64,
    /// The tool's CPU time, s.
    pub cpu_s: f64,
    /// Its peak RSS, MiB.
    pub rss_mib: f64,
    /// Whether it exited as expected.
    pub ok: bool,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests / self.secs
    }
    fn per_core(&self) -> f64 {
        self.requests / self.cpu_s
    }
    fn better(self, other: Run) -> Run {
        if other.ok && (!self.ok || other.rps() > self.rps()) {
            other
        } else {
            self
        }
    }
}

/// CPU seconds (user + system) `pid` used so far, from /proc.
fn proc_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// The CPU `pid` had used when the server's access log first grew: the
/// start-up cost (imports, connections) that does not scale with load.
fn cpu_at_first_request(pid: u32, log: &Path) -> f64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = 0.0;
    while Instant::now() < deadline {
        match proc_cpu_s(pid) {
            Some(c) => last = c,
            None => return last,
        }
        if size(log) > before {
            return last;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    last
}

/// Waits for `child` and returns its exit status, CPU seconds and peak RSS (MiB).
fn wait_rusage(child: Child) -> (bool, f64, f64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child; it only writes into `status` and `ru`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    std::mem::forget(child);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let ok = rc == pid && libc::WIFEXITED(status);
    let code = if ok { libc::WEXITSTATUS(status) } else { -1 };
    (
        code == 0,
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss as f64 / 1024.0,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("nginx is missing: run scripts/bench-load-deps.sh")
}

/// nginx serving the endpoint; stopped on drop.
pub struct Nginx {
    child: Child,
    /// Its access log.
    pub log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with the repository's config on a free loopback port.
    pub fn start() -> Nginx {
        let prefix = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(prefix.path().join("tmp")).expect("mkdir");
        std::fs::create_dir_all(prefix.path().join("www")).expect("mkdir");
        std::fs::write(prefix.path().join("www/ok.json"), "{\"ok\":true}\n")
            .expect("write ok.json");
        let port = free_port();
        let conf = include_str!("nginx.conf")
            .replace("__PORT__", &port.to_string())
            .replace("__PREFIX__", &prefix.path().display().to_string());
        let conf_path = prefix.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_bin())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(prefix.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            child,
            log: prefix.path().join("access.log"),
            base: format!("http://127.0.0.1:{port}"),
            _prefix: prefix,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop; its workers exit with the master.
        // SAFETY: kill(2) on our own child with a valid signal.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}

fn wrk(nginx: &Nginx, conns: usize, secs: u64) -> Run {
    let base = &nginx.base;
    let child = Command::new("wrk")
        .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s")])
        .arg(format!("{base}/ok.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk is missing: run scripts/bench-load-deps.sh");
    let mut child = child;
    let start_cpu = cpu_at_first_request(child.id(), &nginx.log);
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let (ok, cpu_s, rss_mib) = wait_rusage(child);
    let cpu_s = cpu_s - start_cpu;
    // "  240000 requests in 5.00s, ..."
    let line = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .unwrap_or("");
    let mut parts = line.split_whitespace();
    let requests: f64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    let secs_done: f64 = parts
        .nth(2)
        .and_then(|s| s.trim_end_matches(',').trim_end_matches('s').parse().ok())
        .unwrap_or(secs as f64);
    Run {
        requests,
        secs: secs_done,
        cpu_s,
        rss_mib,
        ok: ok && requests > 0.0,
    }
}

/// `atf load` with `conns` VUs; `threads`: `--threads`, else atf's default
/// (one thread per CPU).
fn atf(
    atf_bin: &Path,
    dir: &Path,
    nginx: &Nginx,
    conns: usize,
    threads: Option<usize>,
    secs: u64,
) -> Run {
    let base = &nginx.base;
    let case = serde_json::json!({
        "name": "get",
        "steps": [{ "keyword": "http.request", "remark": "GET /ok.json",
                    "args": { "url": format!("{base}/ok.json") }, "expect": { "status": 200 } }]
    });
    std::fs::write(dir.join("get.case.json"), case.to_string()).expect("write the case");
    let report = dir.join("atf-load");
    let child = Command::new(atf_bin)
        .current_dir(dir)
        .args(["load", "get.case.json", "--vus", &conns.to_string()])
        .args(threads.map(|t| format!("--threads={t}")))
        .args(["--duration", &format!("{secs}s"), "--report-dir"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run atf");
    let start_cpu = cpu_at_first_request(child.id(), &nginx.log);
    let (ok, cpu_s, rss_mib) = wait_rusage(child);
    let cpu_s = cpu_s - start_cpu;
    let load = atf_reports::load::json::read(&report.join("load.json"));
    let (requests, secs_done, errors) = match &load {
        Ok(r) => (
            r.summary.requests as f64,
            r.summary.duration_s,
            r.summary.errors,
        ),
        Err(e) => {
            eprintln!("atf wrote no load.json: {e}");
            (0.0, secs as f64, 0)
        }
    };
    Run {
        requests,
        secs: secs_done,
        cpu_s,
        rss_mib,
        ok: ok && errors == 0 && requests > 0.0,
    }
}

fn locust_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ATF_LOCUST") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-bench/bin/locust");
    venv.is_file().then_some(venv)
}

fn locust(dir: &Path, nginx: &Nginx, user: &str, conns: usize, secs: u64) -> Option<Run> {
    let base = &nginx.base;
    let bin = locust_bin()?;
    let locustfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load/locustfile.py");
    let csv = dir.join(format!("locust-{user}"));
    let child = Command::new(bin)
        .current_dir(dir)
        .env("LOCUST_USER", user)
        .arg("-f")
        .arg(&locustfile)
        .args([
            "--headless",
            "--only-summary",
            "-u",
            &conns.to_string(),
            "-r",
            "1000",
        ])
        .args(["-t", &format!("{secs}s"), "--host", base, "--csv"])
        .arg(&csv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start_cpu = cpu_at_first_request(child.id(), &nginx.log);
    let (_, cpu_s, rss_mib) = wait_rusage(child);
    let cpu_s = cpu_s - start_cpu;
    let stats = std::fs::read_to_string(format!("{}_stats.csv", csv.display())).ok()?;
    let mut lines = stats.lines();
    let header: Vec<&str> = lines.next()?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (n, f) = (col("Request Count")?, col("Failure Count")?);
    let row: Vec<&str> = lines
        .find(|l| l.contains("Aggregated"))?
        .split(',')
        .collect();
    let requests: f64 = row.get(n)?.parse().ok()?;
    let failures: f64 = row.get(f)?.parse().ok()?;
    Some(Run {
        requests,
        secs: secs as f64,
        cpu_s,
        rss_mib,
        ok: failures == 0.0 && requests > 0.0,
    })
}

fn line(label: &str, r: &Run) {
    println!(
        "{label:<34} {:>9.0} req/s  {:>5.2} cores  {:>6.1} µs CPU/req  {:>9.0} req/CPU-s  {:>7.1} MiB peak RSS{}",
        r.rps(),
        r.cpu_s / r.secs,
        r.cpu_s * 1e6 / r.requests.max(1.0),
        r.per_core(),
        r.rss_mib,
        if r.ok { "" } else { "  (RUN FAILED)" }
    );
}

/// Runs the comparison: `conns` connections (wrk) = VUs (atf) = users (Locust).
pub fn bench(atf_bin: &Path, conns: usize, secs: u64, repeat: usize) {
    let nginx = Nginx::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    println!(
        "GET {}/ok.json (a 12-byte JSON file, nginx with Debian's defaults), {conns} connections, {secs} s per run, best of {repeat}",
        nginx.base
    );
    let _ = std::io::stdout().flush();
    // Interleaved, so each tool sees the same machine.
    let mut best_wrk: Option<Run> = None;
    let mut best_atf: Option<Run> = None;
    let mut best_atf_cpus: Option<Run> = None;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut best_fast: Option<Run> = None;
    let mut best_http: Option<Run> = None;
    let keep = |best: &mut Option<Run>, r: Run| {
        *best = Some(match *best {
            Some(b) => b.better(r),
            None => r,
        });
    };
    for _ in 0..repeat.max(1) {
        keep(&mut best_wrk, wrk(&nginx, conns, secs));
        keep(&mut best_atf, atf(atf_bin, dir, &nginx, conns, None, secs));
        keep(
            &mut best_atf_cpus,
            atf(atf_bin, dir, &nginx, conns, Some(cpus), secs),
        );
        if let Some(r) = locust(dir, &nginx, "fast", conns, secs) {
            keep(&mut best_fast, r);
        }
        if let Some(r) = locust(dir, &nginx, "http", conns, secs) {
            keep(&mut best_http, r);
        }
    }
    let (Some(w), Some(a), Some(a_cpus)) = (best_wrk, best_atf, best_atf_cpus) else {
        return;
    };
    line(&format!("wrk -t1 -c{conns}"), &w);
    line(&format!("atf load --vus {conns}"), &a);
    line(&format!("atf load --vus {conns} --threads {cpus}"), &a_cpus);
    match (&best_fast, &best_http) {
        (None, None) => println!(
            "locust                             skipped: not installed (scripts/bench-load-deps.sh)"
        ),
        _ => {
            if let Some(f) = &best_fast {
                line(&format!("locust FastHttpUser -u {conns}"), f);
            }
            if let Some(h) = &best_http {
                line(&format!("locust HttpUser -u {conns}"), h);
            }
        }
    }
    let with_cpus = format!("atf --threads {cpus}");
    for (atf_label, a) in [("atf", &a), (with_cpus.as_str(), &a_cpus)] {
        println!(
            "{atf_label} / wrk requests per second: {:.2} (goal: at least 0.5)",
            a.rps() / w.rps()
        );
        for (name, l) in [("FastHttpUser", &best_fast), ("HttpUser", &best_http)] {
            if let Some(l) = l.filter(|l| l.ok) {
                println!(
                    "{atf_label} / locust {name} requests per CPU-second: {:.1} (goal: at least 5)",
                    a.per_core() / l.per_core()
                );
            }
        }
    }
}
