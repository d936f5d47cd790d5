//! The JSON API under `/api`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast::error::RecvError;

use crate::paths::{self, Refused};
use crate::store::{CaseResult, Run};
use crate::{App, RunRequest, runs};

type S = State<Arc<App>>;

/// An error answer: `{"error": message}` with a status.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        eprintln!("store: {e}");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the run history is not available (see the server's log)".into(),
        )
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        let code = match r {
            Refused::Malformed(_) => StatusCode::BAD_REQUEST,
            Refused::Outside(_) | Refused::NotACase(_) => StatusCode::FORBIDDEN,
        };
        ApiError(code, r.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The API routes.
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/api/health", get(health))
        .route("/api/cases", get(cases))
        .route("/api/cases/{*path}", get(get_case).put(put_case))
        .route("/api/runs", get(list_runs).post(create_run))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/events", get(events))
        .route("/api/runs/{id}/report", get(report))
        .route("/api/runs/push", axum::routing::post(push_start))
        .route("/api/runs/{id}/push", axum::routing::post(push_events))
        .route("/api/runs/{id}/finish", axum::routing::post(push_finish))
        .route("/api/history/{*path}", get(history))
        .route("/api/stats/slowest", get(stats_slowest))
        .route("/api/stats/flaky", get(stats_flaky))
        .route("/api/workers", get(list_workers).post(register_worker))
        .route("/api/workers/{name}/poll", axum::routing::post(poll_worker))
        .route("/api/openapi.json", get(openapi))
}

/// The OpenAPI description of the API.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "atf serve",
        description = "The JSON API of `atf serve`. When the server has a token, every request but /api/health needs `Authorization: Bearer TOKEN` (or the session cookie of a browser logged in at /login, whose state-changing requests then also need `X-CSRF-Token`)."
    ),
    paths(
        health,
        cases,
        get_case,
        put_case,
        history,
        create_run,
        list_runs,
        get_run,
        events,
        report,
        push_start,
        push_events,
        push_finish,
        list_workers,
        register_worker,
        poll_worker,
        stats_slowest,
        stats_flaky
    ),
    components(schemas(
        crate::RunRequest,
        crate::CaseEntry,
        crate::Diagnostic,
        crate::store::Run,
        crate::store::Counts,
        crate::store::CaseResult,
        crate::workers::WorkerInfo,
        crate::stats::Slow,
        crate::stats::Flaky
    ))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi as _;
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::editor::EditorDoc::openapi());
    Json(doc)
}

#[utoipa::path(get, path = "/api/health", tag = "server", responses((status = 200, description = "`{status, version, schema_version}`", body = Object)))]
async fn health(State(app): S) -> ApiResult<Json<Value>> {
    let version = app.store.schema_version().await?;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": version,
    })))
}

/// Runs blocking host work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The cases with their last status.
pub async fn case_list(app: &Arc<App>) -> ApiResult<Vec<Value>> {
    let host = app.host.clone();
    let app2 = app.clone();
    let list = blocking(move || app2.cases_cache.get(&app2.root, || host.cases()))
        .await?
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let last: std::collections::HashMap<(String, String), String> = app
        .store
        .last_statuses()
        .await?
        .into_iter()
        .map(|(f, n, s)| ((f, n), s))
        .collect();
    Ok(list
        .iter()
        .map(|c| {
            let status = last.get(&(c.path.clone(), c.name.clone())).cloned();
            json!({
                "path": c.path,
                "name": c.name,
                "tags": c.tags,
                "broken": c.broken,
                "last_status": status,
            })
        })
        .collect())
}

#[utoipa::path(get, path = "/api/cases", tag = "cases", responses((status = 200, description = "Every case: `path`, `name`, `tags`, `broken`, `last_status` (null if never run)", body = [Object])))]
async fn cases(State(app): S) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(case_list(&app).await?)))
}

/// The ETag of a file's content: its SHA-256, quoted.
pub fn etag(content: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(content)))
}

/// A case file read: its path, content, ETag and `atf check` diagnostics.
pub async fn read_case(app: &Arc<App>, rel: &str) -> ApiResult<Value> {
    let (norm, file) = paths::case_file(&app.root, rel)?;
    let content = match std::fs::read(&file) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("`{norm}`: no such case file"),
            ));
        }
        Err(e) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let tag = etag(&content);
    let host = app.host.clone();
    let n = norm.clone();
    let diagnostics = blocking(move || host.check(&n)).await?;
    Ok(json!({
        "path": norm,
        "content": String::from_utf8_lossy(&content),
        "etag": tag,
        "diagnostics": diagnostics,
    }))
}

#[utoipa::path(get, path = "/api/cases/{path}", tag = "cases", params(("path" = String, Path, description = "A case file, relative to the project folder")), responses((status = 200, description = "`{path, content, etag, diagnostics}`, with an ETag header", body = Object), (status = 400, description = "An absolute path or one with `..`"), (status = 403, description = "Not a case file, or outside the project"), (status = 404, description = "No such case file")))]
async fn get_case(State(app): S, Path(rel): Path<String>) -> ApiResult<Response> {
    let doc = read_case(&app, &rel).await?;
    let tag = doc["etag"].as_str().unwrap_or_default().to_string();
    Ok(([(header::ETAG, tag)], Json(doc)).into_response())
}

#[utoipa::path(put, path = "/api/cases/{path}", tag = "cases", params(("path" = String, Path, description = "A case file, relative to the project folder"), ("If-Match" = Option<String>, Header, description = "The ETag read; required for an existing file")), request_body(content = String, description = "The new file content, written as sent", content_type = "application/json"), responses((status = 200, description = "Saved: as GET, with the new diagnostics", body = Object), (status = 201, description = "Created", body = Object), (status = 409, description = "The file changed on disk since it was read"), (status = 428, description = "An existing file without If-Match"), (status = 400, description = "A path with `..` or absolute"), (status = 403, description = "Not a case file, or outside the project")))]
/// `PUT /api/cases/PATH`: the body is the new file content. An existing
/// file needs `If-Match` with the ETag the client read (409 when the file
/// changed since, 428 without it); a new file needs no `If-Match` (or
/// `If-None-Match: *`).
async fn put_case(
    State(app): S,
    Path(rel): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let (norm, file) = paths::case_file(&app.root, &rel)?;
    if std::str::from_utf8(&body).is_err() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a case file is UTF-8 text".into(),
        ));
    }
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let current = match std::fs::read(&file) {
        Ok(c) => Some(c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let created = match (&current, if_match) {
        (Some(_), None) => {
            return Err(ApiError(
                StatusCode::PRECONDITION_REQUIRED,
                format!(
                    "`{norm}` exists: send If-Match with the ETag you read, so a change made meanwhile is not overwritten"
                ),
            ));
        }
        (Some(c), Some(m)) if m != "*" && m != etag(c) => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "`{norm}` changed on disk since you read it: read it again and reapply your change"
                ),
            ));
        }
        (None, Some(m)) if m != "*" => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!("`{norm}` was deleted since you read it"),
            ));
        }
        (current, _) => current.is_none(),
    };
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    atf_reports::write_atomic(&file, &body)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{norm}: {e}")))?;
    let doc = read_case(&app, &norm).await?;
    let tag = doc["etag"].as_str().unwrap_or_default().to_string();
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, [(header::ETAG, tag)], Json(doc)).into_response())
}

#[utoipa::path(post, path = "/api/runs", tag = "runs", request_body = RunRequest, responses((status = 201, description = "`{id}`: the run is queued and starts at once", body = Object), (status = 400, description = "A bad request or path")))]
async fn create_run(
    State(app): S,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let req: RunRequest = if body.is_empty() {
        RunRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("the run request: {e} (expected {{\"paths\": [...], \"env\": \"...\", \"tags\": \"...\", \"vars\": {{...}}, \"matrix\": [\"NAME=V1,V2\"]}})"),
            )
        })?
    };
    let mut req = req;
    for p in &mut req.paths {
        *p = paths::normalize(p)?;
        if !app.root.join(&*p).exists() {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("`{p}`: no such file or folder in the project"),
            ));
        }
    }
    let selection = stored_selection(&req);
    // The pages send `X-ATF-Source: ui`; anything else is an API client.
    let source = match headers.get(SOURCE_HEADER).and_then(|v| v.to_str().ok()) {
        Some("ui") => "ui",
        _ => "api",
    };
    let id = app.store.create_run(&selection, source).await?;
    if app.hub.workers.any_live() {
        // Queued until a worker with its labels polls.
        app.hub.workers.enqueue(id, req);
    } else {
        runs::spawn(app.clone(), id, req);
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/api/runs/{id}"))],
        Json(json!({ "id": id })),
    )
        .into_response())
}

/// A run request as the history keeps and shows it: the vars' names only,
/// since a value given for a run (a token, a password) may be a secret,
/// and the run's events are masked but its selection is the request's own.
fn stored_selection(req: &RunRequest) -> Value {
    let mut selection = serde_json::to_value(req).unwrap_or(Value::Null);
    if let Some(Value::Object(vars)) = selection.get_mut("vars") {
        for v in vars.values_mut() {
            *v = Value::String("***".into());
        }
    }
    selection
}

/// The runs list's query: filters and paging (`GET /api/runs`, `/runs`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// queued, running, passed, failed, error or interrupted.
    pub status: Option<String>,
    /// ui, api, cli, import, or worker (the runs a worker ran).
    pub source: Option<String>,
    /// A substring of a case file the run ran (or of its selection).
    pub case: Option<String>,
    /// A label `key=value` the run asked for.
    pub label: Option<String>,
    /// Created on or after this date (`YYYY-MM-DD`) or time (RFC 3339).
    pub from: Option<String>,
    /// Created on or before this date (`YYYY-MM-DD`; the whole day), or
    /// before this time (RFC 3339).
    pub to: Option<String>,
    /// The page, from 1 (default 1).
    pub page: Option<i64>,
    /// Runs per page (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// A date or time bound as the store compares it: RFC 3339 in UTC with
/// milliseconds; a date alone is its midnight (`end`: the next one).
fn time_bound(s: &str, end: bool) -> Result<String, ApiError> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{s}`: give a date (YYYY-MM-DD) or an RFC 3339 time"),
        )
    })?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(format!("{}T00:00:00.000Z", d.format("%Y-%m-%d")))
}

impl RunsQuery {
    /// The store's filter, the page's limit and offset.
    pub fn resolve(&self) -> Result<(crate::store::RunFilter, i64, i64), ApiError> {
        let opt = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
        let filter = crate::store::RunFilter {
            status: opt(&self.status),
            source: opt(&self.source),
            case: opt(&self.case),
            label: opt(&self.label),
            from: opt(&self.from).map(|f| time_bound(&f, false)).transpose()?,
            to: opt(&self.to).map(|t| time_bound(&t, true)).transpose()?,
        };
        let limit = self.limit.unwrap_or(50).clamp(1, 1000);
        let page = self.page.unwrap_or(1).clamp(1, 1_000_000);
        Ok((filter, limit, (page - 1) * limit))
    }
}

#[utoipa::path(get, path = "/api/runs", tag = "runs", params(RunsQuery), responses((status = 200, description = "The runs the filters let through, newest first, one page; the header `X-Total-Count` has how many there are in all", body = [Run], headers(("X-Total-Count" = i64, description = "Runs matching the filters, all pages"))), (status = 400, description = "A bad date")))]
async fn list_runs(State(app): S, Query(q): Query<RunsQuery>) -> ApiResult<Response> {
    let (filter, limit, offset) = q.resolve()?;
    let (runs, total) = app.store.runs_page(&filter, limit, offset).await?;
    Ok((
        [("x-total-count", total.to_string())],
        Json(serde_json::to_value(runs).unwrap_or(Value::Null)),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    /// Over the newest this many runs (default 100, at most 10000).
    runs: Option<i64>,
    /// At most this many cases (default 20, at most 1000).
    limit: Option<usize>,
}

impl StatsQuery {
    fn resolve(&self) -> (i64, usize) {
        (
            self.runs.unwrap_or(100).clamp(1, 10_000),
            self.limit.unwrap_or(20).clamp(1, 1000),
        )
    }
}

#[utoipa::path(get, path = "/api/stats/slowest", tag = "stats", params(StatsQuery), responses((status = 200, description = "The slowest cases over the newest runs: per case its mean, 95th percentile (nearest rank) and longest duration, the slowest mean first", body = [crate::stats::Slow])))]
async fn stats_slowest(State(app): S, Query(q): Query<StatsQuery>) -> ApiResult<Json<Value>> {
    let (runs, limit) = q.resolve();
    let rows = crate::stats::slowest(&app.store, runs, limit).await?;
    Ok(Json(serde_json::to_value(rows).unwrap_or(Value::Null)))
}

#[utoipa::path(get, path = "/api/stats/flaky", tag = "stats", params(StatsQuery), responses((status = 200, description = "The flakiest cases over the newest runs: flaky = passed only after a retry; a flip = passed in one run, failed or error in the next that ran it (or the other way); score = (flaky + flips) / results; the highest first, cases with neither left out", body = [crate::stats::Flaky])))]
async fn stats_flaky(State(app): S, Query(q): Query<StatsQuery>) -> ApiResult<Json<Value>> {
    let (runs, limit) = q.resolve();
    let rows = crate::stats::flakiest(&app.store, runs, limit).await?;
    Ok(Json(serde_json::to_value(rows).unwrap_or(Value::Null)))
}

fn not_found(id: i64) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no run {id}"))
}

#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", params(("id" = i64, Path, description = "The run")), responses((status = 200, description = "The run", body = Run), (status = 404, description = "No such run")))]
async fn get_run(State(app): S, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let run = app.store.run(id).await?.ok_or_else(|| not_found(id))?;
    Ok(Json(serde_json::to_value(run).unwrap_or(Value::Null)))
}

#[utoipa::path(get, path = "/api/runs/{id}/report", tag = "runs", params(("id" = i64, Path, description = "The run")), responses((status = 200, description = "The run's report.json (while it runs: what finished so far)", body = Object), (status = 404, description = "No such run, or no report yet")))]
async fn report(State(app): S, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let dir = app
        .store
        .report_dir(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    if dir.is_empty() {
        // A pushed run: its report is the fold of its stored events.
        let lines = app.store.events(id, 0).await?;
        let doc = runs::report_of_events(&lines)
            .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("run {id}: no report: {e}")))?;
        return Ok(Json(doc));
    }
    let dir = std::path::PathBuf::from(dir);
    let doc = blocking(move || runs::report(&dir))
        .await?
        .map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("run {id}: no report: {e}")))?;
    Ok(Json(doc))
}

#[utoipa::path(post, path = "/api/runs/push", tag = "push", request_body(content = Object, description = "The run's selection"), responses((status = 201, description = "`{id}`", body = Object)))]
/// `POST /api/runs/push`: an `atf run --server URL` starts a run it will
/// push; the body is its selection (any JSON object) → `201 {"id"}`.
async fn push_start(State(app): S, Json(selection): Json<Value>) -> ApiResult<Response> {
    if !selection.is_object() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body is the run's selection, a JSON object".into(),
        ));
    }
    let id = runs::start_pushed(&app, &selection)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// The header the pages send with the runs they start (`ui`).
pub const SOURCE_HEADER: &str = "x-atf-source";

/// The header an `atf worker` names itself with on its pushes.
pub const WORKER_HEADER: &str = "x-atf-worker";

/// A push from a worker is refused (409) unless that worker still runs
/// the run: one dropped for silence must not mix its events into the
/// attempt of the worker that took the run next.
fn check_worker(app: &App, headers: &HeaderMap, id: i64) -> ApiResult<()> {
    let Some(name) = headers.get(WORKER_HEADER).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    if app.hub.workers.owns(name, id) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::CONFLICT,
            format!("worker `{name}` no longer runs run {id}: it was queued again"),
        ))
    }
}

fn not_pushed(id: i64) -> ApiError {
    ApiError(
        StatusCode::CONFLICT,
        format!("run {id} is not a pushed run in progress"),
    )
}

#[utoipa::path(post, path = "/api/runs/{id}/push", tag = "push", params(("id" = i64, Path, description = "The run")), request_body(content = String, description = "Event lines, JSON Lines as in events.jsonl", content_type = "application/x-ndjson"), responses((status = 204, description = "Stored"), (status = 409, description = "Not a pushed run in progress")))]
/// `POST /api/runs/{id}/push`: event lines (JSON Lines, as in events.jsonl).
async fn push_events(
    State(app): S,
    Path(id): Path<i64>,
    headers: HeaderMap,
    body: String,
) -> ApiResult<StatusCode> {
    check_worker(&app, &headers, id)?;
    match runs::push_lines(&app, id, &body).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(not_pushed(id)),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

#[derive(Deserialize)]
struct Finish {
    exit_code: Option<i32>,
}

#[utoipa::path(post, path = "/api/runs/{id}/finish", tag = "push", params(("id" = i64, Path, description = "The run")), request_body(content = Object, description = "`{exit_code}` of the pushing atf run"), responses((status = 204, description = "Recorded"), (status = 409, description = "Not a pushed run in progress")))]
/// `POST /api/runs/{id}/finish`: `{"exit_code": N}` of the pushing `atf run`.
async fn push_finish(
    State(app): S,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(f): Json<Finish>,
) -> ApiResult<StatusCode> {
    check_worker(&app, &headers, id)?;
    match runs::finish_pushed(&app, id, f.exit_code).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(not_pushed(id)),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

#[utoipa::path(get, path = "/api/workers", tag = "workers", responses((status = 200, description = "The `atf worker`s: the live ones (state idle or busy) by name, then the gone ones the history remembers, last seen first: name, labels, state, last_seen, run (the one it runs), capacity, done (runs finished, all time)", body = [crate::workers::WorkerInfo])))]
async fn list_workers(State(app): S) -> ApiResult<Json<Value>> {
    let list = crate::workers::overview(&app).await?;
    Ok(Json(serde_json::to_value(list).unwrap_or(Value::Null)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/api/workers", tag = "workers", request_body(content = Object, description = "`{name, labels}` of an `atf worker`"), responses((status = 200, description = "`{poll_ms, timeout_ms}`: poll at least this often", body = Object), (status = 400, description = "No name")))]
/// `POST /api/workers`: an `atf worker` registers (again).
async fn register_worker(State(app): S, Json(r): Json<Register>) -> ApiResult<Json<Value>> {
    let name = r.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "a worker needs a name (1 to 200 characters)".into(),
        ));
    }
    app.hub.workers.register(name, r.labels.clone());
    let run = app
        .hub
        .workers
        .list()
        .into_iter()
        .find(|w| w.name == name)
        .and_then(|w| w.run);
    let state = if run.is_some() { "busy" } else { "idle" };
    crate::workers::record(&app, name, &r.labels, state, run).await;
    eprintln!("worker {name} registered");
    Ok(Json(json!({
        "timeout_ms": app.hub.workers.timeout.as_millis() as u64,
    })))
}

#[utoipa::path(post, path = "/api/workers/{name}/poll", tag = "workers", params(("name" = String, Path, description = "The worker")), responses((status = 200, description = "`{run: null}`, or `{run: {id, request}}`: the run it takes, to run and push", body = Object), (status = 404, description = "Unknown worker (dropped, or the server restarted): register again")))]
/// `POST /api/workers/{name}/poll`: the worker's heartbeat; an idle
/// worker takes the oldest queued run whose labels it has.
async fn poll_worker(State(app): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    match crate::workers::poll(&app, &name).await {
        Ok(None) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no worker `{name}`: register again"),
        )),
        Ok(Some(None)) => Ok(Json(json!({ "run": null }))),
        Ok(Some(Some((id, req)))) => {
            eprintln!("worker {name} takes run {id}");
            Ok(Json(json!({ "run": { "id": id, "request": req } })))
        }
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/history/{path}", tag = "cases", params(("path" = String, Path, description = "A case file, relative to the project folder"), ("limit" = Option<i64>, Query, description = "At most this many (default 20)")), responses((status = 200, description = "The last results of the cases of the file, newest first", body = [CaseResult])))]
async fn history(
    State(app): S,
    Path(rel): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    let norm = paths::normalize(&rel)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let rows = app.store.case_history(&norm, limit).await?;
    Ok(Json(serde_json::to_value(rows).unwrap_or(Value::Null)))
}

#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs", params(("id" = i64, Path, description = "The run")), responses((status = 200, description = "Server-Sent Events: the stored events, then the live ones (`event: NAME`, `id: SEQ`, `data: EVENT-JSON`), then `event: end` with the run", content_type = "text/event-stream", body = String), (status = 404, description = "No such run")))]
/// `GET /api/runs/{id}/events`: the stored events, then the live ones,
/// each as an SSE message `event: EVENT-NAME`, `id: SEQ`, `data: JSON`;
/// at the end one `event: end` whose data is the run (its final status).
async fn events(
    State(app): S,
    Path(id): Path<i64>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    app.store.run(id).await?.ok_or_else(|| not_found(id))?;
    let stream = event_stream(app, id);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn sse_event(seq: i64, body: &str) -> SseEvent {
    let name = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "message".into());
    SseEvent::default()
        .event(name)
        .id(seq.to_string())
        .data(body)
}

fn event_stream(app: Arc<App>, id: i64) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    tokio::spawn(async move {
        // Subscribe before reading the store: an event stored meanwhile
        // comes live too and is dropped by its sequence number.
        let mut live = app.hub.subscribe(id);
        let mut last = 0i64;
        let replay = |last: i64| {
            let app = app.clone();
            async move { app.store.events(id, last).await }
        };
        match replay(last).await {
            Ok(stored) => {
                for (seq, body) in stored {
                    last = seq;
                    if tx.send(sse_event(seq, &body)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => eprintln!("store: {e}"),
        }
        let mut stop = app.hub.stop_signal();
        if let Some(rx) = live.as_mut() {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                match next {
                    Ok(ev) => {
                        if ev.0 > last {
                            last = ev.0;
                            if tx.send(sse_event(ev.0, &ev.1)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Too slow for the live channel: catch up from the store.
                        if let Ok(stored) = replay(last).await {
                            for (seq, body) in stored {
                                last = seq;
                                if tx.send(sse_event(seq, &body)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
        // The run may have ended between the subscription and the end of
        // the channel: whatever is left is in the store.
        if let Ok(stored) = replay(last).await {
            for (seq, body) in stored {
                if tx.send(sse_event(seq, &body)).await.is_err() {
                    return;
                }
            }
        }
        let run = app.store.run(id).await.ok().flatten();
        let data = serde_json::to_string(&run).unwrap_or_else(|_| "null".into());
        let _ = tx.send(SseEvent::default().event("end").data(data)).await;
    });
    tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok)
}

use tokio_stream::StreamExt as _;
