//! The pages: server-rendered HTML with a little vanilla JavaScript
//! (search filter, run button, live run page over SSE), embedded in the
//! binary so `cargo build` alone gives a working server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::App;
use crate::api::{ApiError, case_list, read_case};

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

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · atf</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body>\
         <nav><a href=\"/\">Cases</a> <a href=\"/runs\">Runs</a></nav><main>{body}</main></body></html>",
        esc(title)
    ))
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

async fn case_page(State(app): S, Path(rel): Path<String>) -> Response {
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
    body.push_str("</table><h2>History</h2>");
    match app.store.case_history(&path, 20).await {
        Ok(rows) if rows.is_empty() => body.push_str("<p>Never run.</p>"),
        Ok(rows) => {
            body.push_str(
                "<table class=\"list\"><tr><th>Run</th><th>Case</th><th>Status</th><th>Duration</th><th>Finished</th></tr>",
            );
            for r in rows {
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/runs/{0}\">#{0}</a></td><td>{1}</td><td>{2}</td><td>{3} ms</td><td>{4}</td></tr>",
                    r.run_id,
                    esc(&r.name),
                    status_badge(Some(&r.status)),
                    r.duration_ms,
                    esc(&r.finished_at)
                );
            }
            body.push_str("</table>");
        }
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
        String::new()
    } else {
        format!(" <small>on worker {}</small>", esc(&r.worker))
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

async fn runs_page(State(app): S) -> Response {
    let runs = match app.store.runs(None, 100).await {
        Ok(r) => r,
        Err(e) => return error_page(e.into()),
    };
    let mut body = String::from(
        "<h1>Runs</h1><table class=\"list\"><tr><th>Run</th><th>Status</th><th>Paths</th><th>Cases</th><th>Created</th></tr>",
    );
    for r in &runs {
        body.push_str(&run_row(r));
    }
    body.push_str("</table>");
    body.push_str(&workers_section(&app));
    page("Runs", &body).into_response()
}

/// The registered `atf worker`s and their load (none: the server runs
/// the cases itself).
fn workers_section(app: &App) -> String {
    let workers = app.hub.workers.list();
    let mut out = String::from("<h2>Workers</h2>");
    if workers.is_empty() {
        out.push_str(
            "<p>No <code>atf worker</code> is registered: the server runs the cases itself.</p>",
        );
        return out;
    }
    out.push_str(
        "<table class=\"list\" id=\"workers\"><tr><th>Worker</th><th>Labels</th><th>Load</th><th>Running</th><th>Done</th><th>Last seen</th></tr>",
    );
    for w in &workers {
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let running = match w.run {
            Some(id) => format!("<a href=\"/runs/{id}\">#{id}</a>"),
            None => "idle".into(),
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}/{}</td><td>{running}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.name),
            esc(&labels.join(", ")),
            u32::from(w.run.is_some()),
            w.capacity,
            w.done,
            esc(&w.last_seen),
        ));
    }
    out.push_str("</table>");
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
