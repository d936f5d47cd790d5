//! The case editor and the run form: what the case page needs to edit a
//! case file in the browser (its schema, the keyword catalogue, `atf
//! check` on unsaved text), new case files from templates, and the HTML
//! of the editor, the "New case" form and the run form.
//!
//! The editor is a textarea with a line-numbered gutter and a completion
//! list (`assets/editor.js`, vanilla JavaScript, no build step): the
//! completion comes from `GET /api/schema/case` and `GET /api/keywords`,
//! the diagnostics from `POST /api/check`, which runs the runner's own
//! loader and checks (through [`crate::Host::check_text`]) on the text as
//! typed. Saving is `PUT /api/cases/{path}` with `If-Match`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;
use crate::api::{ApiError, etag, read_case};
use crate::paths;
use crate::ui::esc;

type S = State<Arc<App>>;
type ApiResult<T> = Result<T, ApiError>;

const SCRIPT: &str = include_str!("../assets/editor.js");

/// The folder of the project's own case templates (`*.json`).
pub const TEMPLATES_DIR: &str = "templates";

/// The built-in templates: name, what it is, content.
const BUILTIN: &[(&str, &str, &str)] = &[
    (
        "http",
        "one HTTP request and its expected status",
        r#"{
  "name": "NAME",
  "tags": [],
  "steps": [
    {
      "keyword": "http.request",
      "args": { "method": "GET", "url": "/" },
      "expect": { "status": 200 }
    }
  ]
}
"#,
    ),
    (
        "empty",
        "a name and no steps yet",
        r#"{
  "name": "NAME",
  "tags": [],
  "steps": []
}
"#,
    ),
];

/// The editor's routes (merged into the app's).
pub fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/api/schema/case", get(case_schema))
        .route("/api/keywords", get(keywords))
        .route("/api/check", post(check))
        .route("/api/templates", get(templates))
        .route("/api/cases", post(new_case))
        .route(
            "/assets/editor.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
}

/// The editor's part of the OpenAPI description (merged into the API's).
#[derive(utoipa::OpenApi)]
#[openapi(paths(case_schema, keywords, check, templates, new_case))]
pub struct EditorDoc;

/// Runs blocking host work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[utoipa::path(get, path = "/api/schema/case", tag = "editor", responses((status = 200, description = "The JSON Schema (draft 2020-12) of case files with the project's keywords, plugin keywords included: what `atf schema --file case` prints in the project", body = Object), (status = 422, description = "The project or its plugins do not load")))]
async fn case_schema(State(app): S) -> ApiResult<Json<Value>> {
    let host = app.host.clone();
    blocking(move || host.case_schema())
        .await?
        .map(Json)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))
}

#[utoipa::path(get, path = "/api/keywords", tag = "editor", responses((status = 200, description = "The keyword catalogue, plugin keywords included, as `atf keywords --json` prints it: `[{name, summary, args: [{name, type, required, doc}], result, open_args}]`", body = [Object]), (status = 422, description = "The project or its plugins do not load")))]
async fn keywords(State(app): S) -> ApiResult<Json<Value>> {
    let host = app.host.clone();
    blocking(move || host.keywords())
        .await?
        .map(Json)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))
}

/// `POST /api/check`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    path: String,
    content: String,
}

#[utoipa::path(post, path = "/api/check", tag = "editor", request_body(content = Object, description = "`{path, content}`: a case file's path, relative to the project, and its text (need not be saved)"), responses((status = 200, description = "`{path, diagnostics}`: what `atf check` finds in that text, each with its line and column", body = Object), (status = 400, description = "A bad body or path"), (status = 403, description = "Not a case file, or outside the project")))]
/// `POST /api/check`: `atf check` on a case text as the file `path` would
/// hold it — the runner's loader and checks, with the file's suites and
/// the project's keywords.
async fn check(State(app): S, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let req: CheckRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "the check request: {e} (expected {{\"path\": \"...\", \"content\": \"...\"}})"
            ),
        )
    })?;
    let (norm, _) = paths::case_file(&app.root, &req.path)?;
    let host = app.host.clone();
    let n = norm.clone();
    let diagnostics = blocking(move || host.check_text(&n, &req.content)).await?;
    Ok(Json(json!({ "path": norm, "diagnostics": diagnostics })))
}

/// A template: its name, what it is, its text.
fn all_templates(root: &std::path::Path) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = BUILTIN
        .iter()
        .map(|(n, d, c)| (n.to_string(), d.to_string(), c.to_string()))
        .collect();
    let dir = root.join(TEMPLATES_DIR);
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let p = e.path();
            let Some(name) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .map(|n| n.trim_end_matches(".case"))
            else {
                continue;
            };
            // Only plain files inside the project (no link out of it).
            let inside = p.canonicalize().is_ok_and(|r| r.starts_with(root));
            if !inside || !p.is_file() {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&p) {
                found.push((
                    name.to_string(),
                    format!("{TEMPLATES_DIR}/{}", e.file_name().to_string_lossy()),
                    text,
                ));
            }
        }
    }
    found.sort();
    // A project template replaces a built-in one of the same name.
    for t in found {
        out.retain(|o| o.0 != t.0);
        out.push(t);
    }
    out
}

#[utoipa::path(get, path = "/api/templates", tag = "editor", responses((status = 200, description = "The case templates: the built-in ones (`http`, `empty`) and the project's `templates/*.json`: `[{name, description, content}]`", body = [Object])))]
async fn templates(State(app): S) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    let list = blocking(move || all_templates(&root)).await?;
    Ok(Json(Value::Array(
        list.into_iter()
            .map(|(name, description, content)| {
                json!({ "name": name, "description": description, "content": content })
            })
            .collect(),
    )))
}

/// `POST /api/cases`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCase {
    path: String,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The template's text with its `name` set (when it is a JSON object with
/// a `name`); its order and other fields are kept.
fn fill(template: &str, name: &str) -> String {
    match serde_json::from_str::<Value>(template) {
        Ok(Value::Object(mut m)) if m.contains_key("name") => {
            m.insert("name".into(), Value::String(name.to_string()));
            let mut text = serde_json::to_string_pretty(&Value::Object(m))
                .unwrap_or_else(|_| template.to_string());
            text.push('\n');
            text
        }
        _ => template.to_string(),
    }
}

#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body(content = Object, description = "`{path, template, name}`: the new case file (relative to the project, `*.case.json`), a template name from /api/templates (default `http`), the case's name (default: from the file name)"), responses((status = 201, description = "Created: as GET /api/cases/{path}", body = Object), (status = 400, description = "A bad body, path or template"), (status = 403, description = "Not a case file, or outside the project"), (status = 409, description = "The file exists: it is not overwritten")))]
/// `POST /api/cases`: a new case file from a template; never overwrites.
async fn new_case(State(app): S, body: axum::body::Bytes) -> ApiResult<Response> {
    let req: NewCase = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the new case: {e} (expected {{\"path\": \"dir/name.case.json\", \"template\": \"http\"}})"),
        )
    })?;
    let (norm, file) = paths::case_file(&app.root, &req.path)?;
    let wanted = req.template.as_deref().unwrap_or("http");
    let root = app.root.clone();
    let list = blocking(move || all_templates(&root)).await?;
    let Some((_, _, text)) = list.iter().find(|t| t.0 == wanted) else {
        let names: Vec<&str> = list.iter().map(|t| t.0.as_str()).collect();
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("no template `{wanted}` (there are: {})", names.join(", ")),
        ));
    };
    let stem = norm
        .rsplit('/')
        .next()
        .unwrap_or(&norm)
        .trim_end_matches(".case.json")
        .replace(['-', '_'], " ");
    let name = req
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(stem.as_str());
    let content = fill(text, name);
    let exists = || {
        ApiError(
            StatusCode::CONFLICT,
            format!("`{norm}` exists already: choose another path (nothing was overwritten)"),
        )
    };
    if file.exists() {
        return Err(exists());
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{norm}: {e}")))?;
    }
    // `create_new`: a file made meanwhile is not overwritten either.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, content.as_bytes()));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(exists()),
        Err(e) => {
            return Err(ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{norm}: {e}"),
            ));
        }
    }
    let doc = read_case(&app, &norm).await?;
    let tag = etag(content.as_bytes());
    Ok((
        StatusCode::CREATED,
        [
            (header::ETAG, tag),
            (header::LOCATION, format!("/api/cases/{norm}")),
        ],
        Json(doc),
    )
        .into_response())
}

/// The editor of the case page: the file's text in a textarea with a
/// line-numbered gutter, the diagnostics under it, Save; `editor.js`
/// brings it to life (without JavaScript it is a read-only view).
pub fn editor_html(doc: &Value) -> String {
    let path = doc["path"].as_str().unwrap_or_default();
    let content = doc["content"].as_str().unwrap_or_default();
    let tag = doc["etag"].as_str().unwrap_or_default();
    let mut gutter = String::new();
    for n in 1..=content.lines().count().max(1) {
        let _ = writeln!(gutter, "{n}");
    }
    format!(
        "<section id=\"editor\" data-path=\"{}\" data-etag=\"{}\">\
         <div class=\"ed-bar\"><button id=\"save\" type=\"button\" disabled>Save</button> \
         <span id=\"ed-status\" role=\"status\">Edit the case here; press Ctrl+Space for completion.</span></div>\
         <div class=\"ed-wrap\"><pre id=\"gutter\" aria-hidden=\"true\">{}</pre>\
         <textarea id=\"source\" spellcheck=\"false\" autocomplete=\"off\" wrap=\"off\" \
         aria-label=\"Case file {}\" readonly>{}</textarea>\
         <ul id=\"complete\" role=\"listbox\" hidden></ul></div>\
         <ul id=\"diagnostics\"></ul></section>\
         <script src=\"/assets/editor.js\" defer></script>",
        esc(path),
        esc(tag),
        gutter,
        esc(path),
        esc(content),
    )
}

/// The forms of the index page: run a selection, and make a new case.
pub fn index_forms_html() -> String {
    String::from(
        "<details id=\"run-form-box\"><summary>Run a selection</summary>\
         <form id=\"run-form\" class=\"form\">\
         <label>Paths <input name=\"paths\" placeholder=\"api/ orders/x.case.json (empty: all)\"></label>\
         <label>Tags <input name=\"tags\" placeholder=\"smoke and not slow\"></label>\
         <label>Env <input name=\"env\" placeholder=\"the project's default\"></label>\
         <label>Vars <textarea name=\"vars\" rows=\"2\" placeholder=\"NAME=VALUE, one a line\"></textarea></label>\
         <label>Matrix <textarea name=\"matrix\" rows=\"2\" placeholder=\"NAME=V1,V2, one dimension a line\"></textarea></label>\
         <label>Worker labels <input name=\"labels\" placeholder=\"net=idc-a\"></label>\
         <button type=\"submit\">Run</button> <span class=\"form-error error\" role=\"alert\"></span>\
         </form></details>\
         <details id=\"new-case-box\"><summary>New case</summary>\
         <form id=\"new-case\" class=\"form\">\
         <label>Path <input name=\"path\" required placeholder=\"api/new-thing.case.json\"></label>\
         <label>Name <input name=\"name\" placeholder=\"from the file name\"></label>\
         <label>Template <select name=\"template\"><option value=\"http\">http</option></select></label>\
         <button type=\"submit\">Create</button> <span class=\"form-error error\" role=\"alert\"></span>\
         </form></details>\
         <script src=\"/assets/editor.js\" defer></script>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_gets_the_case_name_and_keeps_its_order() {
        let text = fill(BUILTIN[0].2, "orders are listed");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["name"], "orders are listed");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "tags", "steps"]);
        // Not an object with a name: as written.
        assert_eq!(fill("[1]", "x"), "[1]");
    }
}
