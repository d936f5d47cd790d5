//! Runs: each is a child `atf run` process whose `events.jsonl` the server
//! follows; every complete line is stored (with the case result of a
//! `case_finished`) and then sent to the run's live subscribers.
//!
//! A subscriber (an SSE client) subscribes first, then replays the stored
//! events, then takes live ones with a higher sequence number: nothing is
//! missed or sent twice. When the run ends its channel closes, after its
//! last event was stored.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atf_reports::{Event, Status};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::store::{CaseResult, Counts, now};
use crate::{App, RunRequest};

/// An event of a live run: its sequence number (from 1) and its JSON line.
pub type Live = Arc<(i64, String)>;

/// The live runs and their subscribers.
pub struct Hub {
    live: Mutex<HashMap<i64, broadcast::Sender<Live>>>,
    pushed: tokio::sync::Mutex<HashMap<i64, Follow>>,
    stop: tokio::sync::watch::Sender<bool>,
    /// The `atf worker`s and the runs queued for them.
    pub workers: crate::workers::Workers,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            live: Mutex::default(),
            pushed: tokio::sync::Mutex::default(),
            stop: tokio::sync::watch::channel(false).0,
            workers: crate::workers::Workers::default(),
        }
    }
}

impl Hub {
    /// Set to `true` when the server stops: event streams end.
    pub fn stopping(&self) -> tokio::sync::watch::Sender<bool> {
        self.stop.clone()
    }

    /// A receiver of the stop signal.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) async fn pushed_lock(&self) -> tokio::sync::MutexGuard<'_, HashMap<i64, Follow>> {
        self.pushed.lock().await
    }

    /// A receiver of run `id`'s events from now on, or `None` when the run
    /// is not live (every event it has is stored).
    pub fn subscribe(&self, id: i64) -> Option<broadcast::Receiver<Live>> {
        self.lock().get(&id).map(broadcast::Sender::subscribe)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, broadcast::Sender<Live>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn open(&self, id: i64) -> broadcast::Sender<Live> {
        let (tx, _) = broadcast::channel(1024);
        self.lock().insert(id, tx.clone());
        tx
    }

    pub(crate) fn close(&self, id: i64) {
        self.lock().remove(&id);
    }
}

/// Starts run `id` in the background.
pub fn spawn(app: Arc<App>, id: i64, req: RunRequest) {
    let tx = app.hub.open(id);
    tokio::spawn(async move {
        let status = match execute(&app, id, &req, &tx).await {
            Ok(done) => done,
            Err(e) => {
                eprintln!("run {id}: {e}");
                ("error".to_string(), Counts::default())
            }
        };
        if let Err(e) = app.store.finish_run(id, &status.0, status.1).await {
            eprintln!("run {id}: cannot record its end: {e}");
        }
        app.hub.close(id);
    });
}

/// The folder of run `id`'s reports.
pub fn report_dir(app: &App, id: i64) -> PathBuf {
    app.runs_dir.join(id.to_string())
}

/// Follows `events.jsonl` from `pos`: the complete lines added since.
pub struct Tail {
    path: PathBuf,
    pos: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Follows the file at `path` from its start (it may not exist yet).
    pub fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            pos: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines added since the last read.
    pub fn read(&mut self) -> std::io::Result<Vec<String>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.pos))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1])
                .trim()
                .to_string();
            if !text.is_empty() {
                lines.push(text);
            }
        }
        Ok(lines)
    }
}

/// Stores and fans out the event lines of one run, as they come.
pub struct Follow {
    store: crate::store::Store,
    id: i64,
    tx: broadcast::Sender<Live>,
    seq: i64,
    summary: Option<(Counts, bool)>,
}

impl Follow {
    /// Stores one event line (skipping, with a message on stderr, a line
    /// that is not an event) and sends it to the live subscribers.
    pub async fn line(&mut self, text: String) -> Result<(), String> {
        // Only events are stored: a line that is not one is reported and skipped.
        let event: Event = match serde_json::from_str(&text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("run {}: skipping a line of events.jsonl: {e}", self.id);
                return Ok(());
            }
        };
        let case = match &event {
            Event::CaseFinished { report, .. } => Some(CaseResult {
                run_id: self.id,
                file: report.file.clone(),
                name: report.name.clone(),
                status: status_name(report.status).to_string(),
                duration_ms: report.duration_ms as i64,
                finished_at: now(),
            }),
            Event::RunFinished {
                summary,
                interrupted,
            } => {
                // Matrix runs end each cell with a `run_finished`: add them up.
                let prev = self.summary.map(|s| s.0).unwrap_or_default();
                let c = Counts {
                    total: prev.total + summary.total as i64,
                    passed: prev.passed + summary.passed as i64,
                    flaky: prev.flaky + summary.flaky as i64,
                    failed: prev.failed + summary.failed as i64,
                    errored: prev.errored + summary.errored as i64,
                    skipped: prev.skipped + summary.skipped as i64,
                    duration_ms: prev.duration_ms + summary.duration_ms as i64,
                };
                let was = self.summary.is_some_and(|s| s.1);
                self.summary = Some((c, was || *interrupted));
                None
            }
            _ => None,
        };
        self.seq += 1;
        self.store
            .add_event(self.id, self.seq, &text, case)
            .await
            .map_err(|e| e.to_string())?;
        // No subscriber is fine.
        let _ = self.tx.send(Arc::new((self.seq, text)));
        Ok(())
    }
}

/// The name a status has in the API (as in report.json).
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Flaky => "flaky",
        Status::Failed => "failed",
        Status::Error => "error",
        Status::Skipped => "skipped",
    }
}

async fn execute(
    app: &App,
    id: i64,
    req: &RunRequest,
    tx: &broadcast::Sender<Live>,
) -> Result<(String, Counts), String> {
    let dir = report_dir(app, id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join("run.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = app.host.run_command(req, &dir);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut cmd = tokio::process::Command::from(cmd);
    // A server that stops takes its runs with it; they are `interrupted`
    // when it starts again, their folders keeping what they wrote.
    cmd.kill_on_drop(true);
    app.store
        .start_run(id, &dir.display().to_string())
        .await
        .map_err(|e| e.to_string())?;
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `atf run`: {e}"))?;
    let mut tail = Tail {
        path: dir.join(atf_reports::events_file::FILE_NAME),
        pos: 0,
        partial: Vec::new(),
    };
    let mut follow = Follow {
        store: app.store.clone(),
        id,
        tx: tx.clone(),
        seq: 0,
        summary: None,
    };
    let exit = loop {
        let exited = child.try_wait().map_err(|e| e.to_string())?;
        for line in tail.read().map_err(|e| e.to_string())? {
            follow.line(line).await?;
        }
        if let Some(status) = exited {
            // Read what the process wrote before it ended.
            for line in tail.read().map_err(|e| e.to_string())? {
                follow.line(line).await?;
            }
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    Ok(follow.end(exit.code()))
}

impl Follow {
    /// The run's status from the exit code of its `atf run`, and its counts.
    pub fn end(&self, exit_code: Option<i32>) -> (String, Counts) {
        let (counts, interrupted) = self.summary.unwrap_or_default();
        let status = match exit_code {
            _ if interrupted => "interrupted",
            Some(0) => "passed",
            Some(1) => "failed",
            Some(130) => "interrupted",
            // Killed by a signal, or nothing could run (2).
            _ => "error",
        };
        (status.to_string(), counts)
    }
}

/// A run whose events an `atf run --server URL` elsewhere pushes: the
/// server stores and fans them out as for its own runs.
pub async fn start_pushed(app: &Arc<App>, selection: &Value) -> Result<i64, String> {
    let id = app
        .store
        .create_run(selection, "cli")
        .await
        .map_err(|e| e.to_string())?;
    app.store
        .start_run(id, "")
        .await
        .map_err(|e| e.to_string())?;
    let tx = app.hub.open(id);
    let follow = Follow {
        store: app.store.clone(),
        id,
        tx,
        seq: 0,
        summary: None,
    };
    app.hub.pushed_lock().await.insert(id, follow);
    Ok(id)
}

/// A run taken by a worker: its events come pushed, as for `atf run
/// --server`.
pub async fn start_for_worker(app: &App, id: i64, worker: &str) -> Result<(), String> {
    app.store
        .assign_run(id, worker)
        .await
        .map_err(|e| e.to_string())?;
    let tx = app.hub.open(id);
    let follow = Follow {
        store: app.store.clone(),
        id,
        tx,
        seq: 0,
        summary: None,
    };
    app.hub.pushed_lock().await.insert(id, follow);
    Ok(())
}

/// Event lines pushed for run `id`; `Ok(false)` when it is not a pushed
/// run in progress.
pub async fn push_lines(app: &App, id: i64, text: &str) -> Result<bool, String> {
    let mut pushed = app.hub.pushed_lock().await;
    let Some(follow) = pushed.get_mut(&id) else {
        return Ok(false);
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        follow.line(line.to_string()).await?;
    }
    Ok(true)
}

/// The pushed run `id` ended with `exit_code`; `Ok(false)` when it is not
/// a pushed run in progress.
pub async fn finish_pushed(app: &App, id: i64, exit_code: Option<i32>) -> Result<bool, String> {
    let Some(follow) = app.hub.pushed_lock().await.remove(&id) else {
        return Ok(false);
    };
    let (status, counts) = follow.end(exit_code);
    if let Some((name, labels)) = app.hub.workers.finished(id) {
        crate::workers::record(app, &name, &labels, "idle", None).await;
    }
    app.store
        .finish_run(id, &status, counts)
        .await
        .map_err(|e| e.to_string())?;
    app.hub.close(id);
    Ok(true)
}

/// The report folded from stored event lines (a pushed run has no folder).
pub fn report_of_events(lines: &[(i64, String)]) -> Result<Value, String> {
    if lines.is_empty() {
        return Err("no events yet".into());
    }
    let mut builder = atf_reports::ReportBuilder::new();
    for (_, line) in lines {
        if let Ok(e) = serde_json::from_str::<Event>(line) {
            builder.apply(&e);
        }
    }
    serde_json::to_value(builder.finish()).map_err(|e| e.to_string())
}

/// The report of run `id`: its report.json, or the fold of its
/// events.jsonl while it runs (or when it was killed).
pub fn report(dir: &Path) -> Result<Value, String> {
    let report = atf_reports::read_last_run(dir)?;
    serde_json::to_value(report).map_err(|e| e.to_string())
}
