//! `just bench serve`: page times of `atf serve` for a project of 2,000
//! cases (20 suite folders of 100, with tags) and a history of 10,000
//! runs (each ran 20 cases of one suite: 200,000 case results), loaded
//! straight into the server's SQLite store through its store API, plus a
//! few workers. Then the release `atf serve` starts on it and every page
//! is fetched once to warm up (its time is shown: the first `/` loads the
//! case list), then `repeat` times: the best time counts.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atf_server::store::{Store, Val};
use serde_json::json;

const SUITES: usize = 20;
const PER_SUITE: usize = 100;
const RUNS: usize = 10_000;
const CASES_PER_RUN: usize = 20;
/// The goal of issue #14: every page under this.
const GOAL_MS: f64 = 200.0;

fn case_path(suite: usize, i: usize) -> String {
    format!("suites/s{suite:02}/c{i:04}.case.json")
}

fn write_project(dir: &Path) {
    std::fs::write(
        dir.join("atf.json"),
        json!({"default_env": "b", "envs": {"b": {"resources": {"http": {"default": {"base_url": "http://127.0.0.1:9"}}}}}}).to_string(),
    )
    .expect("write project");
    for s in 0..SUITES {
        std::fs::create_dir_all(dir.join(format!("suites/s{s:02}"))).expect("mkdir");
        for i in 0..PER_SUITE {
            let n = s * PER_SUITE + i;
            let tags = [
                format!("suite-{s}"),
                ["smoke", "regression", "nightly"][n % 3].to_string(),
            ];
            let case = json!({
                "name": format!("case {n}"),
                "tags": tags,
                "steps": [
                    {"keyword": "http.request", "args": {"method": "POST", "url": "/orders", "json": {"n": n}},
                     "expect": {"status": 201, "$.body.n": n}, "save": {"id": "$.body.id"}},
                    {"keyword": "http.request", "args": {"url": "/orders/${id}"}, "expect": {"status": 200}}
                ]
            });
            std::fs::write(dir.join(case_path(s, n)), case.to_string()).expect("write case");
        }
    }
}

/// A cheap deterministic pseudo-random sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn load_history(dir: &Path) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let db = dir.join(".atf/atf.db");
        let store = Store::open(&db.display().to_string())
            .await
            .expect("open the store");
        let mut rng = Lcg(4711);
        let start = chrono::Utc::now() - chrono::Duration::days(60);
        let sources = ["ui", "api", "cli", "import", "api"];
        let mut batch = Vec::new();
        for run in 1..=RUNS {
            let at = start + chrono::Duration::seconds(run as i64 * 500);
            let ts = |d: chrono::DateTime<chrono::Utc>| {
                d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            let suite = rng.next() as usize % SUITES;
            let mut counts = [0i64; 3]; // passed, flaky, failed
            let mut total_ms = 0;
            let first = rng.next() as usize % (PER_SUITE - CASES_PER_RUN);
            for k in 0..CASES_PER_RUN {
                let n = suite * PER_SUITE + first + k;
                let roll = rng.next() % 100;
                let status = match roll {
                    0..=2 => "failed",
                    3..=4 => "flaky",
                    _ => "passed",
                };
                counts[match status {
                    "passed" => 0,
                    "flaky" => 1,
                    _ => 2,
                }] += 1;
                let ms = 20 + (rng.next() % 400) as i64 + (n % 7) as i64 * 50;
                total_ms += ms;
                let (file, name) = (case_path(suite, n), format!("case {n}"));
                batch.push((
                    "INSERT INTO case_results (run_id, file, name, status, duration_ms, finished_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                        .to_string(),
                    vec![
                        Val::I(run as i64),
                        Val::T(file.clone()),
                        Val::T(name.clone()),
                        Val::T(status.into()),
                        Val::I(ms),
                        Val::T(ts(at)),
                    ],
                ));
                batch.push((
                    "INSERT INTO case_last (file, name, run_id, status) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (file, name) DO UPDATE SET run_id = excluded.run_id, \
                     status = excluded.status"
                        .to_string(),
                    vec![
                        Val::T(file),
                        Val::T(name),
                        Val::I(run as i64),
                        Val::T(status.into()),
                    ],
                ));
            }
            let status = if counts[2] > 0 { "failed" } else { "passed" };
            let source = sources[run % sources.len()];
            let selection = json!({"paths": [format!("suites/s{suite:02}")]}).to_string();
            batch.push((
                "INSERT INTO runs (id, status, created_at, started_at, finished_at, selection, \
                 total, passed, flaky, failed, errored, skipped, duration_ms, worker, source, labels) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $11, $12, '')"
                    .to_string(),
                vec![
                    Val::I(run as i64),
                    Val::T(status.into()),
                    Val::T(ts(at)),
                    Val::T(ts(at + chrono::Duration::milliseconds(total_ms))),
                    Val::T(selection),
                    Val::I(CASES_PER_RUN as i64),
                    Val::I(counts[0]),
                    Val::I(counts[1]),
                    Val::I(counts[2]),
                    Val::I(total_ms),
                    Val::T(if run % 3 == 0 { format!("w{}", run % 4) } else { String::new() }),
                    Val::T(source.into()),
                ],
            ));
            // Runs before their case results (the foreign key): flush per
            // 500 runs, the runs of the batch first.
            if run % 500 == 0 {
                let (runs, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut batch)
                    .into_iter()
                    .partition(|(sql, _)| sql.starts_with("INSERT INTO runs"));
                store
                    .bulk(runs.into_iter().chain(rest).collect())
                    .await
                    .expect("load the history");
            }
        }
        for w in 0..4 {
            store
                .save_worker(&format!("w{w}"), &json!({"net": format!("idc-{w}")}), "gone", None)
                .await
                .expect("save a worker");
        }
    });
}

fn get(client: &reqwest::blocking::Client, url: &str) -> (f64, usize) {
    let t0 = Instant::now();
    let res = client.get(url).send().expect("GET");
    assert!(res.status().is_success(), "GET {url}: {}", res.status());
    let len = res.bytes().expect("body").len();
    (t0.elapsed().as_secs_f64() * 1000.0, len)
}

/// The whole `serve` mode.
pub fn bench(atf: &Path, dir: &Path, repeat: usize) {
    let t0 = Instant::now();
    write_project(dir);
    load_history(dir);
    println!(
        "generated {} cases and {RUNS} runs ({} case results) in {:.1} s",
        SUITES * PER_SUITE,
        RUNS * CASES_PER_RUN,
        t0.elapsed().as_secs_f64()
    );
    let mut child = Command::new(atf)
        .arg("serve")
        .arg(dir)
        .args(["--port", "0"])
        .env_remove("ATF_SERVE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start atf serve");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).expect("read");
        assert!(n > 0, "atf serve ended before it listened");
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            break a.to_string();
        }
    };
    // Drain its output so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let pages = [
        "/".to_string(),
        "/runs".into(),
        "/runs?page=50".into(),
        format!("/runs/{}", RUNS / 2),
        format!("/cases/{}", case_path(7, 7 * PER_SUITE + 42)),
        "/stats".into(),
        "/workers".into(),
        "/api/cases".into(),
        "/api/runs".into(),
    ];
    println!(
        "\natf serve, {} cases, {RUNS} runs: best of {repeat} after a warm-up",
        SUITES * PER_SUITE
    );
    println!(
        "{:<40} {:>10} {:>10} {:>10}  goal",
        "page", "first ms", "best ms", "KiB"
    );
    let mut missed = 0;
    for p in &pages {
        let url = format!("{addr}{p}");
        // The first request fills the server's caches (the case list).
        let (first, _) = get(&client, &url);
        let mut best = f64::MAX;
        let mut len = 0;
        for _ in 0..repeat.max(1) {
            let (ms, l) = get(&client, &url);
            best = best.min(ms);
            len = l;
        }
        let ok = best < GOAL_MS;
        missed += usize::from(!ok);
        println!(
            "{p:<40} {first:>10.1} {best:>10.1} {:>10.1}  {}",
            len as f64 / 1024.0,
            if ok { "ok" } else { "MISSED" }
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    if missed > 0 {
        println!("{missed} page(s) over {GOAL_MS} ms");
        std::process::exit(1);
    }
}
