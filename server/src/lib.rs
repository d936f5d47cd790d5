//! `atf serve`: the web platform of an atf project.
//!
//! An axum app with a JSON API (`/api/…`), server-rendered pages, live run
//! events over Server-Sent Events, and the run history in a [`store`]
//! (SQLite in `PROJECT/.atf/` by default, or PostgreSQL).
//!
//! This crate knows nothing of how cases load or run: the runner (package
//! `atf`) hands it a [`Host`] — list the cases, check a case file, build
//! the `atf run` command of a run. A run is a child process (`atf run
//! PATHS --report-dir DIR`) whose `events.jsonl` the server follows line by
//! line ([`runs`]): a crashing run cannot take the server down, and a remote
//! worker will later stream the very same events.

pub mod api;
pub mod auth;
pub mod cases_cache;
pub mod editor;
pub mod import;
pub mod paths;
pub mod runs;
pub mod stats;
pub mod store;
pub mod ui;
pub mod workers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A case as the case tree shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CaseEntry {
    /// The case file, relative to the project folder, with `/`.
    pub path: String,
    /// The case name (`name[i]` for data rows).
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The file does not load (see its diagnostics).
    pub broken: bool,
}

/// One problem `atf check` found in a file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Diagnostic {
    /// The file, relative to the project folder.
    pub file: String,
    /// Its line, from 1, when known.
    pub line: Option<usize>,
    /// Its column, from 1, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// What a run is asked to run: `POST /api/runs`'s body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Case files or folders, relative to the project (default: all).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The environment of the project file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A tag expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// Variable overrides (`--var`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object)]
    pub vars: Map<String, Value>,
    /// Labels a worker must have to take the run (`{"net": "idc-a"}`);
    /// none: any worker, or the server itself when no worker is live.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Matrix dimensions (`--matrix NAME=V1,V2`): the selection runs once
    /// per cell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matrix: Vec<String>,
}

/// What the runner gives the server. Every method may block (it loads
/// files); the server calls them off its async threads.
pub trait Host: Send + Sync + 'static {
    /// The cases of the project, in report order.
    fn cases(&self) -> Result<Vec<CaseEntry>, String>;
    /// `atf check` on one case file (a path relative to the project).
    fn check(&self, file: &str) -> Vec<Diagnostic>;
    /// The command that runs `req` with its reports (and `events.jsonl`)
    /// in `report_dir`, its working directory the project folder.
    fn run_command(&self, req: &RunRequest, report_dir: &Path) -> std::process::Command;
    /// `atf check` on `text` as the content of case file `file` (relative
    /// to the project; it need not be saved, nor exist): the editor's
    /// diagnostics as you type.
    fn check_text(&self, file: &str, text: &str) -> Vec<Diagnostic> {
        let _ = text;
        self.check(file)
    }
    /// The JSON Schema of case files with the project's keywords (`atf
    /// schema --file case`).
    fn case_schema(&self) -> Result<Value, String> {
        Err("this server cannot describe case files".into())
    }
    /// The keyword catalogue, plugin keywords included (`atf keywords
    /// --json`).
    fn keywords(&self) -> Result<Value, String> {
        Err("this server cannot list keywords".into())
    }
}

/// How `atf serve` was started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The project folder (absolute).
    pub root: PathBuf,
    /// Where to listen.
    pub addr: SocketAddr,
    /// `--db`: a PostgreSQL URL or an SQLite path; default
    /// `ROOT/.atf/atf.db`.
    pub db: Option<String>,
    /// The API token (`ATF_SERVE_TOKEN` or `ROOT/.atf/token`).
    pub token: Option<String>,
}

/// The token file inside the project, read when `ATF_SERVE_TOKEN` is unset.
pub const TOKEN_FILE: &str = ".atf/token";

/// The token: `ATF_SERVE_TOKEN`, else the first line of `ROOT/.atf/token`.
pub fn find_token(root: &Path) -> Option<String> {
    if let Ok(t) = std::env::var("ATF_SERVE_TOKEN")
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_string());
    }
    let text = std::fs::read_to_string(root.join(TOKEN_FILE)).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// What every handler shares.
pub struct App {
    /// The project folder (canonical).
    pub root: PathBuf,
    /// The runner's side.
    pub host: Arc<dyn Host>,
    /// The run history.
    pub store: store::Store,
    /// Live runs and their subscribers.
    pub hub: runs::Hub,
    /// Where run report folders go: `ROOT/.atf/runs`.
    pub runs_dir: PathBuf,
    /// The API token, when one is required.
    pub token: Option<String>,
    /// The logged-in browsers (with a token).
    pub sessions: auth::Sessions,
    /// The case list, kept while the project's files do not change.
    pub cases_cache: cases_cache::CasesCache,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run and edit cases. \
         Set ATF_SERVE_TOKEN (or write one into {TOKEN_FILE}), or bind 127.0.0.1"
    )]
    NoToken(SocketAddr),
    /// The project folder is not usable.
    #[error("{0}: {1}")]
    Root(PathBuf, std::io::Error),
    /// The store could not open.
    #[error("cannot open the run history ({0}): {1}")]
    Store(String, store::StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Opens the store, marks the runs a stopped server left as interrupted,
/// and builds the shared state.
pub async fn prepare(opts: &Options, host: Arc<dyn Host>) -> Result<Arc<App>, StartError> {
    if !opts.addr.ip().is_loopback() && opts.token.is_none() {
        return Err(StartError::NoToken(opts.addr));
    }
    let root = opts
        .root
        .canonicalize()
        .map_err(|e| StartError::Root(opts.root.clone(), e))?;
    let db = opts
        .db
        .clone()
        .unwrap_or_else(|| root.join(".atf").join("atf.db").display().to_string());
    let shown = if db.contains("://") {
        redact_url(&db)
    } else {
        db.clone()
    };
    let store = store::Store::open(&db)
        .await
        .map_err(|e| StartError::Store(shown.clone(), e))?;
    store
        .interrupt_unfinished()
        .await
        .map_err(|e| StartError::Store(shown.clone(), e))?;
    // Workers are live again when they poll.
    store
        .workers_gone()
        .await
        .map_err(|e| StartError::Store(shown, e))?;
    Ok(Arc::new(App {
        runs_dir: root.join(".atf").join("runs"),
        root,
        host,
        store,
        hub: runs::Hub::default(),
        token: opts.token.clone(),
        sessions: auth::Sessions::default(),
        cases_cache: cases_cache::CasesCache::default(),
    }))
}

/// `atf serve import DIR...`: each report folder into the history of the
/// project at `root` (store `db`, as for [`serve`]); prints one line per
/// folder; returns how many failed.
pub async fn import_dirs(root: &Path, db: Option<&str>, dirs: &[PathBuf]) -> Result<usize, String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let db = db
        .map(str::to_owned)
        .unwrap_or_else(|| root.join(".atf").join("atf.db").display().to_string());
    let store = store::Store::open(&db)
        .await
        .map_err(|e| format!("cannot open the run history ({}): {e}", redact_url(&db)))?;
    let runs_dir = root.join(".atf").join("runs");
    let mut failed = 0;
    for dir in dirs {
        match import::import(&store, &runs_dir, dir).await {
            Ok(id) => println!("{}: imported as run {id}", dir.display()),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                failed += 1;
            }
        }
    }
    Ok(failed)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The whole app: API and pages.
pub fn router(app: Arc<App>) -> axum::Router {
    api::routes()
        .merge(ui::routes())
        .merge(editor::routes())
        .merge(auth::routes())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_auth,
        ))
        .with_state(app)
}

/// Serves until Ctrl-C (or SIGTERM). Prints the address it listens on
/// (`listening on http://ADDR`) once it accepts connections.
pub async fn serve(opts: Options, host: Arc<dyn Host>) -> Result<(), StartError> {
    let app = prepare(&opts, host).await?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| StartError::Bind(opts.addr, e))?;
    let local = listener
        .local_addr()
        .map_err(|e| StartError::Bind(opts.addr, e))?;
    println!("listening on http://{local}");
    println!("project {}", app.root.display());
    workers::spawn_reaper(app.clone());
    // Load the case list now: the first page then finds it ready.
    let warm = app.clone();
    tokio::task::spawn_blocking(move || {
        let host = warm.host.clone();
        if let Err(e) = warm.cases_cache.get(&warm.root, || host.cases()) {
            eprintln!("the case list: {e}");
        }
    });
    let stopping = app.hub.stopping();
    let served = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(async move {
            shutdown().await;
            // End the event streams, which would keep the server up.
            let _ = stopping.send(true);
        })
        .await;
    served.map_err(|e| StartError::Bind(local, e))
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_not_shown() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/atf"),
            "postgres://app:***@db:5432/atf"
        );
        assert_eq!(redact_url("postgres://app@db/atf"), "postgres://app@db/atf");
    }
}
