//! The pages: server-rendered HTML with a little vanilla JavaScript
//! (search filter, run button, live run page over SSE), embedded in the
//! binary so `cargo build` alone gives a working server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::App;
use crate::api::{ApiError, RunsQuery, case_list, read_case};

type S = State<Arc<App>>;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/app.js");

/// The page routes.
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/", get(index))
        .route("/cases/{*path}", get(case_page))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/stats", get(stats_page))
        .route("/workers", get(workers_page))
        .route(
            "/assets/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
}

/// HTML-escapes text (the five characters that matter in text and quoted
/// attributes; no crate needed for that).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body` in the frame every page shares. With a session
/// (a server with a token) the page carries its CSRF token in `<meta
/// name="csrf-token">` for the scripts, and a "Log out" button.
pub fn page_html(title: &str, body: &str) -> String {
    let csrf = crate::auth::csrf_token();
    let (meta, logout) = match &csrf {
        Some(t) => (
            format!("<meta name=\"csrf-token\" content=\"{}\">", esc(t)),
            format!(
                "<form method=\"post\" action=\"/logout\" class=\"logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\" id=\"logout\">Log out</button></form>",
                esc(t)
            ),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{meta}\
         <title>{} · atf</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body>\
         <nav><a href=\"/\">Cases</a> <a href=\"/runs\">Runs</a> <a href=\"/stats\">Stats</a> \
         <a href=\"/workers\">Workers</a>{logout}</nav><main>{body}</main></body></html>",
        esc(title)
    )
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(page_html(title, body))
}

fn error_page(e: ApiError) -> Response {
    (
        e.0,
        page("Error", &format!("<p class=\"error\">{}</p>", esc(&e.1))),
    )
        .into_response()
}

fn status_badge(status: Option<&str>) -> String {
    match status {
        Some(s) => format!("<span class=\"st st-{0}\">{0}</span>", esc(s)),
        None => "<span class=\"st st-none\">never run</span>".into(),
    }
}

async fn index(State(app): S) -> Response {
    let cases = match case_list(&app).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    // The tree: folder → files → cases.
    let mut tree: BTreeMap<String, BTreeMap<String, Vec<&Value>>> = BTreeMap::new();
    for c in &cases {
        let path = c["path"].as_str().unwrap_or_default();
        let (folder, _) = path.rsplit_once('/').unwrap_or(("", path));
        tree.entry(folder.to_string())
            .or_default()
            .entry(path.to_string())
            .or_default()
            .push(c);
    }
    let mut body = format!(
        "<h1>Cases <small>{}</small></h1>\
         <input id=\"search\" type=\"search\" placeholder=\"Search names, files, tags\" autofocus>",
        cases.len()
    );
    body.push_str(&crate::editor::index_forms_html());
    for (folder, files) in &tree {
        let label = if folder.is_empty() { "." } else { folder };
        let _ = write!(body, "<section class=\"suite\"><h2>{}</h2><ul>", esc(label));
        for (file, entries) in files {
            for c in entries {
                let name = c["name"].as_str().unwrap_or_default();
                let tags: Vec<&str> = c["tags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let search = format!("{name} {file} {}", tags.join(" ")).to_lowercase();
                let tag_html: String = tags
                    .iter()
                    .map(|t| format!("<span class=\"tag\">{}</span>", esc(t)))
                    .collect();
                let broken = if c["broken"].as_bool() == Some(true) {
                    " <span class=\"st st-error\">does not load</span>"
                } else {
                    ""
                };
                let _ = write!(
                    body,
                    "<li class=\"case\" data-search=\"{}\">{} <a href=\"/cases/{}\">{}</a> \
                     <span class=\"file\">{}</span> {tag_html}{broken}</li>",
                    esc(&search),
                    status_badge(c["last_status"].as_str()),
                    esc(file),
                    esc(name),
                    esc(file)
                );
            }
        }
        body.push_str("</ul></section>");
    }
    page("Cases", &body).into_response()
}

#[derive(serde::Deserialize)]
struct CasePageQuery {
    /// How many results of each case to show (default 30).
    n: Option<i64>,
}

/// A case file's history: per case, its last `n` results as a strip and a
/// duration trend chart, then the results as a table.
fn history_html(rows: &[crate::store::CaseResult], n: usize) -> String {
    let mut out = String::from("<h2>History</h2>");
    if rows.is_empty() {
        out.push_str("<p>Never run.</p>");
        return out;
    }
    // Per case name, newest first as they come.
    let mut names: Vec<&str> = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&crate::store::CaseResult>> = BTreeMap::new();
    for r in rows {
        let list = by_name.entry(r.name.as_str()).or_default();
        if list.is_empty() {
            names.push(r.name.as_str());
        }
        if list.len() < n {
            list.push(r);
        }
    }
    for name in names {
        let list = &by_name[name];
        let oldest_first: Vec<&&crate::store::CaseResult> = list.iter().rev().collect();
        let _ = write!(
            out,
            "<section class=\"case-history\"><h3>{}</h3><p>last {} results, oldest first: {}</p>{}</section>",
            esc(name),
            list.len(),
            strip(
                oldest_first
                    .iter()
                    .map(|r| (r.status.as_str(), Some(r.run_id)))
            ),
            trend_svg(
                &oldest_first
                    .iter()
                    .map(|r| (r.run_id, r.duration_ms, r.status.as_str()))
                    .collect::<Vec<_>>()
            )
        );
    }
    out.push_str(
        "<table class=\"list\"><tr><th>Run</th><th>Case</th><th>Status</th><th>Duration</th><th>Finished</th></tr>",
    );
    for r in rows.iter().take(n) {
        let _ = write!(
            out,
            "<tr><td><a href=\"/runs/{0}\">#{0}</a></td><td>{1}</td><td>{2}</td><td>{3} ms</td><td>{4}</td></tr>",
            r.run_id,
            esc(&r.name),
            status_badge(Some(&r.status)),
            r.duration_ms,
            esc(&r.finished_at)
        );
    }
    out.push_str("</table>");
    out
}

async fn case_page(
    State(app): S,
    Path(rel): Path<String>,
    Query(q): Query<CasePageQuery>,
) -> Response {
    let history_n = q.n.unwrap_or(30).clamp(1, 500);
    let doc = match read_case(&app, &rel).await {
        Ok(d) => d,
        Err(e) => return error_page(e),
    };
    let path = doc["path"].as_str().unwrap_or_default().to_string();
    let content = doc["content"].as_str().unwrap_or_default();
    let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
    let mut by_line: BTreeMap<usize, Vec<&Value>> = BTreeMap::new();
    let mut whole_file = Vec::new();
    for d in &diags {
        match d["line"].as_u64() {
            Some(l) => by_line.entry(l as usize).or_default().push(d),
            None => whole_file.push(d),
        }
    }
    let mut body = format!(
        "<h1>{}</h1><p><button id=\"run\" data-path=\"{}\">Run this case</button></p>",
        esc(&path),
        esc(&path)
    );
    if diags.is_empty() {
        body.push_str("<p class=\"ok\" id=\"check-summary\">atf check: no problems found</p>");
    } else {
        let _ = write!(
            body,
            "<p class=\"error\" id=\"check-summary\">atf check: {} problem(s)</p>",
            diags.len()
        );
    }
    for d in whole_file {
        let _ = write!(
            body,
            "<p class=\"diag\">{}</p>",
            esc(d["message"].as_str().unwrap_or_default())
        );
    }
    body.push_str(&crate::editor::editor_html(&doc));
    body.push_str("<table class=\"src\">");
    for (i, line) in content.lines().enumerate() {
        let n = i + 1;
        let marked = by_line.contains_key(&n);
        let _ = write!(
            body,
            "<tr id=\"L{n}\"{}><td class=\"ln\">{n}</td><td><pre>{}</pre></td></tr>",
            if marked { " class=\"bad\"" } else { "" },
            esc(line)
        );
        if let Some(ds) = by_line.get(&n) {
            for d in ds {
                let col = d["column"]
                    .as_u64()
                    .map(|c| format!(":{c}"))
                    .unwrap_or_default();
                let hint = d["hint"]
                    .as_str()
                    .map(|h| format!(" ({})", esc(h)))
                    .unwrap_or_default();
                let _ = write!(
                    body,
                    "<tr class=\"diag\"><td class=\"ln\"></td><td>line {n}{col}: {}{hint}</td></tr>",
                    esc(d["message"].as_str().unwrap_or_default())
                );
            }
        }
    }
    body.push_str("</table>");
    match app.store.case_history(&path, history_n * 20).await {
        Ok(rows) => body.push_str(&history_html(&rows, history_n as usize)),
        Err(e) => return error_page(e.into()),
    }
    page(&path, &body).into_response()
}

fn run_row(r: &crate::store::Run) -> String {
    let paths = r.selection["paths"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "(all)".into());
    let on = if r.worker.is_empty() {
        format!(" <small class=\"source\">from {}</small>", esc(&r.source))
    } else {
        format!(
            " <small class=\"source\">from {} on worker {}</small>",
            esc(&r.source),
            esc(&r.worker)
        )
    };
    format!(
        "<tr><td><a href=\"/runs/{0}\">#{0}</a></td><td>{1}</td><td>{2}{on}</td>\
         <td>{3}/{4} passed, {5} failed, {6} error, {7} skipped</td><td>{8}</td></tr>",
        r.id,
        status_badge(Some(&r.status)),
        esc(&paths),
        r.summary.passed,
        r.summary.total,
        r.summary.failed,
        r.summary.errored,
        r.summary.skipped,
        esc(&r.created_at)
    )
}

/// `q` as a query string (without `page`), for the paging links.
fn runs_query_string(q: &RunsQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("status", &q.status),
        ("source", &q.source),
        ("case", &q.case),
        ("label", &q.label),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", url_encode(v)));
        }
    }
    if let Some(l) = q.limit {
        parts.push(format!("limit={l}"));
    }
    parts.join("&")
}

/// `s` percent-encoded for a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn select(name: &str, options: &[&str], current: Option<&str>) -> String {
    let mut out =
        format!("<select name=\"{name}\" id=\"f-{name}\"><option value=\"\">any {name}</option>");
    for o in options {
        let sel = if current == Some(*o) { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{o}</option>");
    }
    out.push_str("</select>");
    out
}

async fn runs_page(State(app): S, Query(q): Query<RunsQuery>) -> Response {
    let (filter, limit, offset) = match q.resolve() {
        Ok(x) => x,
        Err(e) => return error_page(e),
    };
    let (runs, total) = match app.store.runs_page(&filter, limit, offset).await {
        Ok(r) => r,
        Err(e) => return error_page(e.into()),
    };
    let val = |o: &Option<String>| esc(o.as_deref().unwrap_or_default());
    let mut body = format!(
        "<h1>Runs <small id=\"total\">{total}</small></h1>\
         <form method=\"get\" action=\"/runs\" class=\"filters\" id=\"filters\">{}{}\
         <input name=\"case\" placeholder=\"case path contains\" value=\"{}\">\
         <input name=\"label\" placeholder=\"label k=v\" value=\"{}\">\
         <label>from <input type=\"date\" name=\"from\" value=\"{}\"></label>\
         <label>to <input type=\"date\" name=\"to\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button> <a href=\"/runs\">clear</a></form>",
        select(
            "status",
            &[
                "queued",
                "running",
                "passed",
                "failed",
                "error",
                "interrupted"
            ],
            q.status.as_deref()
        ),
        select(
            "source",
            &["ui", "api", "cli", "import", "worker"],
            q.source.as_deref()
        ),
        val(&q.case),
        val(&q.label),
        val(&q.from),
        val(&q.to),
    );
    if runs.is_empty() {
        body.push_str("<p id=\"no-runs\">No runs.</p>");
    } else {
        body.push_str(
            "<table class=\"list\" id=\"runs\"><tr><th>Run</th><th>Status</th><th>Paths</th><th>Cases</th><th>Created</th></tr>",
        );
        for r in &runs {
            body.push_str(&run_row(r));
        }
        body.push_str("</table>");
    }
    let page = offset / limit + 1;
    let pages = ((total + limit - 1) / limit).max(1);
    let qs = runs_query_string(&q);
    let link = |p: i64| {
        if qs.is_empty() {
            format!("/runs?page={p}")
        } else {
            format!("/runs?{}&amp;page={p}", esc(&qs))
        }
    };
    let _ = write!(body, "<p class=\"pager\">page {page} of {pages} ");
    if page > 1 {
        let _ = write!(
            body,
            "<a rel=\"prev\" href=\"{}\">newer</a> ",
            link(page - 1)
        );
    }
    if page < pages {
        let _ = write!(
            body,
            "<a rel=\"next\" href=\"{}\">older</a>",
            link(page + 1)
        );
    }
    body.push_str("</p>");
    page_with_title("Runs", &body)
}

fn page_with_title(title: &str, body: &str) -> Response {
    page(title, body).into_response()
}

/// The `atf worker`s: the live ones and those gone (none: the server
/// runs the cases itself).
async fn workers_page(State(app): S) -> Response {
    let workers = match crate::workers::overview(&app).await {
        Ok(w) => w,
        Err(e) => return error_page(e.into()),
    };
    let mut out = String::from("<h1>Workers</h1>");
    if workers.is_empty() {
        out.push_str(
            "<p>No <code>atf worker</code> has registered: the server runs the cases itself.</p>",
        );
        return page_with_title("Workers", &out);
    }
    out.push_str(
        "<table class=\"list\" id=\"workers\"><tr><th>Worker</th><th>Labels</th><th>State</th><th>Running</th><th>Runs done</th><th>Last seen</th></tr>",
    );
    for w in &workers {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let running = match w.run {
            Some(id) => format!("<a href=\"/runs/{id}\">#{id}</a>"),
            None => "—".into(),
        };
        let _ = write!(
            out,
            "<tr class=\"worker w-{3}\" data-name=\"{0}\"><td>{0}</td><td>{1}</td><td><span class=\"st st-{3}\">{3}</span></td>\
             <td>{running}</td><td>{2}</td><td>{4}</td></tr>",
            esc(&w.name),
            esc(&labels.join(", ")),
            w.done,
            esc(&w.state),
            esc(&w.last_seen),
        );
    }
    out.push_str("</table>");
    page_with_title("Workers", &out)
}

#[derive(serde::Deserialize)]
struct StatsPageQuery {
    runs: Option<i64>,
}

async fn stats_page(State(app): S, Query(q): Query<StatsPageQuery>) -> Response {
    let runs = q.runs.unwrap_or(100).clamp(1, 10_000);
    let (slow, flaky) = match tokio::try_join!(
        crate::stats::slowest(&app.store, runs, 20),
        crate::stats::flakiest(&app.store, runs, 20)
    ) {
        Ok(x) => x,
        Err(e) => return error_page(e.into()),
    };
    let mut body = format!(
        "<h1>Stats <small>over the last {runs} runs</small></h1>\
         <h2>Slowest cases</h2>"
    );
    if slow.is_empty() {
        body.push_str("<p>No results yet.</p>");
    } else {
        body.push_str("<table class=\"list\" id=\"slowest\"><tr><th>Case</th><th>File</th><th>Results</th><th>Mean</th><th>p95</th><th>Max</th></tr>");
        for s in &slow {
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"/cases/{1}\">{1}</a></td><td>{2}</td><td>{3} ms</td><td>{4} ms</td><td>{5} ms</td></tr>",
                esc(&s.name),
                esc(&s.file),
                s.runs,
                s.avg_ms,
                s.p95_ms,
                s.max_ms
            );
        }
        body.push_str("</table>");
    }
    body.push_str(
        "<h2>Flakiest cases</h2><p><small>Flaky: passed only after a retry. A flip: passed in one run, \
         failed in the next that ran it (or the other way). Score: (flaky + flips) / results.</small></p>",
    );
    if flaky.is_empty() {
        body.push_str("<p id=\"no-flaky\">No flaky case.</p>");
    } else {
        body.push_str("<table class=\"list\" id=\"flakiest\"><tr><th>Case</th><th>File</th><th>Results</th><th>Flaky</th><th>Flips</th><th>Score</th><th>History</th></tr>");
        for f in &flaky {
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"/cases/{1}\">{1}</a></td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5:.2}</td><td>{6}</td></tr>",
                esc(&f.name),
                esc(&f.file),
                f.runs,
                f.flaky,
                f.flips,
                f.score,
                strip(f.statuses.iter().map(|s| (s.as_str(), None)))
            );
        }
        body.push_str("</table>");
    }
    page_with_title("Stats", &body)
}

/// Results as a strip of small squares, oldest first (with a link to the
/// run when known).
fn strip<'a>(results: impl Iterator<Item = (&'a str, Option<i64>)>) -> String {
    let mut out = String::from("<span class=\"strip\">");
    for (status, run) in results {
        // A link to the run when known.
        let (open, title, close) = match run {
            Some(id) => (
                format!("a href=\"/runs/{id}\""),
                format!("run #{id}: {status}"),
                "a",
            ),
            None => ("span".to_string(), status.to_string(), "span"),
        };
        let _ = write!(
            out,
            "<{open} class=\"sq st-{}\" title=\"{}\"></{close}>",
            esc(status),
            esc(&title)
        );
    }
    out.push_str("</span>");
    out
}

/// The duration trend of one case as an inline SVG line chart, oldest
/// result on the left.
pub fn trend_svg(durations: &[(i64, i64, &str)]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    const PAD: f64 = 24.0;
    // Room for the axis labels on the left.
    const LEFT: f64 = 56.0;
    let max = durations.iter().map(|d| d.1).max().unwrap_or(0).max(1) as f64;
    let n = durations.len();
    let x = |i: usize| {
        if n <= 1 {
            (LEFT + W - PAD) / 2.0
        } else {
            LEFT + (W - LEFT - PAD) * i as f64 / (n - 1) as f64
        }
    };
    let y = |ms: i64| H - PAD - (H - 2.0 * PAD) * (ms as f64 / max);
    let points: Vec<String> = durations
        .iter()
        .enumerate()
        .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(d.1)))
        .collect();
    let mut out = format!(
        "<svg class=\"trend\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" \
         aria-label=\"duration trend\"><line x1=\"{LEFT}\" y1=\"{b:.1}\" x2=\"{r:.1}\" y2=\"{b:.1}\" class=\"axis\"/>\
         <text x=\"2\" y=\"{t:.1}\" class=\"lbl\">{max} ms</text><text x=\"2\" y=\"{b:.1}\" class=\"lbl\">0</text>\
         <polyline fill=\"none\" class=\"line\" points=\"{}\"/>",
        points.join(" "),
        b = H - PAD,
        r = W - PAD,
        t = PAD,
        max = max as i64,
    );
    for (i, (run, ms, status)) in durations.iter().enumerate() {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" class=\"pt st-{}\"><title>run #{run}: {ms} ms, {}</title></circle>",
            x(i),
            y(*ms),
            esc(status),
            esc(status)
        );
    }
    out.push_str("</svg>");
    out
}

async fn run_page(State(app): S, Path(id): Path<i64>) -> Response {
    let run = match app.store.run(id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(ApiError(StatusCode::NOT_FOUND, format!("no run {id}")));
        }
        Err(e) => return error_page(e.into()),
    };
    let body = format!(
        "<h1>Run #{id} <span id=\"status\">{}</span></h1>\
         <table class=\"list\"><tr><th>Run</th><th>Status</th><th>Paths</th><th>Cases</th><th>Created</th></tr>{}</table>\
         <h2>Cases</h2><table class=\"list\" id=\"cases\" data-run=\"{id}\">\
         <tr><th>Case</th><th>File</th><th>Status</th><th>Duration</th><th>Error</th></tr></table>\
         <p id=\"summary\"></p><p><a href=\"/api/runs/{id}/report\">report.json</a></p>",
        status_badge(Some(&run.status)),
        run_row(&run)
    );
    page(&format!("Run #{id}"), &body).into_response()
}
