//! `atf worker`s: remote executors that connect out to the server.
//!
//! A worker registers (`POST /api/workers`), then polls (`POST
//! /api/workers/{name}/poll`) about twice a second: each poll is its
//! heartbeat, and an idle worker's poll takes the oldest queued run whose
//! labels it has. The run's events come back through the push endpoints
//! (`/api/runs/{id}/push`, `/api/runs/{id}/finish`), as for `atf run
//! --server`.
//!
//! While at least one worker is live, new runs wait in the queue for a
//! worker (a run whose labels no live worker has waits too); without
//! workers the server runs them itself. A worker silent for longer than
//! the timeout (`ATF_SERVE_WORKER_TIMEOUT_MS`, default 30 s) is dropped
//! and its run goes back to `queued` with its partial events and case
//! results deleted, so the next worker runs it from the start.
//!
//! The live workers are kept in memory, and every worker is also recorded
//! in the store (`workers`: its labels, state, run and when it was last
//! seen; its last-seen time is written at most every few seconds): the
//! workers page lists the live ones as `idle` or `busy` and the others as
//! `gone`, with the runs each finished. A server that restarts marks them
//! all gone until they poll again (a poll from an unknown worker registers
//! it anew).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{App, RunRequest, runs};

/// One registered worker.
#[derive(Debug, Clone)]
struct Worker {
    labels: BTreeMap<String, String>,
    last_seen: Instant,
    last_seen_at: String,
    run: Option<i64>,
    /// The request of `run`, with its vars' values, to queue it again.
    req: Option<RunRequest>,
    done: u64,
    /// When its last-seen time was last written to the store.
    stored: Instant,
}

/// How often a polling worker's last-seen time is written to the store.
const TOUCH_EVERY: Duration = Duration::from_secs(5);

/// A worker as `GET /api/workers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Its name (`hostname-pid` unless given).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// When it last polled (RFC 3339).
    pub last_seen: String,
    /// The run it is running, if any.
    pub run: Option<i64>,
    /// Runs at once it takes (always 1).
    pub capacity: u32,
    /// Runs it finished (all time, from the history).
    pub done: u64,
    /// idle, busy, or gone (silent for longer than the timeout, or not
    /// seen since the server started).
    pub state: String,
}

#[derive(Default)]
struct State {
    workers: HashMap<String, Worker>,
    queue: VecDeque<(i64, RunRequest)>,
}

/// The workers and the runs queued for them.
pub struct Workers {
    state: Mutex<State>,
    /// A worker silent for longer is dropped.
    pub timeout: Duration,
}

impl Default for Workers {
    fn default() -> Self {
        let ms = std::env::var("ATF_SERVE_WORKER_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(30_000);
        Workers {
            state: Mutex::default(),
            timeout: Duration::from_millis(ms),
        }
    }
}

fn matches(worker: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| worker.get(k) == Some(v))
}

impl Workers {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers (or refreshes) worker `name`.
    pub fn register(&self, name: &str, labels: BTreeMap<String, String>) {
        let mut st = self.lock();
        let w = st.workers.entry(name.to_string()).or_insert(Worker {
            labels: BTreeMap::new(),
            last_seen: Instant::now(),
            last_seen_at: crate::store::now(),
            run: None,
            req: None,
            done: 0,
            stored: Instant::now(),
        });
        w.labels = labels;
        w.last_seen = Instant::now();
        w.last_seen_at = crate::store::now();
    }

    /// Whether a live worker is registered: new runs then wait for one.
    pub fn any_live(&self) -> bool {
        let st = self.lock();
        st.workers
            .values()
            .any(|w| w.last_seen.elapsed() <= self.timeout)
    }

    /// Queues run `id` for a worker.
    pub fn enqueue(&self, id: i64, req: RunRequest) {
        self.lock().queue.push_back((id, req));
    }

    /// Worker `name`'s heartbeat; when it is idle, the oldest queued run
    /// it may take (already marked as its own). `None` for an unknown
    /// worker.
    fn poll(&self, name: &str) -> Option<Option<(i64, RunRequest)>> {
        let mut st = self.lock();
        let st = &mut *st;
        let w = st.workers.get_mut(name)?;
        w.last_seen = Instant::now();
        w.last_seen_at = crate::store::now();
        if w.run.is_some() {
            return Some(None);
        }
        let i = st
            .queue
            .iter()
            .position(|(_, r)| matches(&w.labels, &r.labels));
        let taken = i.and_then(|i| st.queue.remove(i));
        if let Some((id, req)) = &taken {
            w.run = Some(*id);
            w.req = Some(req.clone());
        }
        Some(taken)
    }

    /// Whether worker `name`'s last-seen time is due to be written to
    /// the store (then it counts as written).
    fn touch_due(&self, name: &str) -> bool {
        let mut st = self.lock();
        match st.workers.get_mut(name) {
            Some(w) if w.stored.elapsed() >= TOUCH_EVERY => {
                w.stored = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Run `id` ended: its worker is free. Returns the worker's name and
    /// labels.
    pub fn finished(&self, id: i64) -> Option<(String, BTreeMap<String, String>)> {
        let mut out = None;
        for (name, w) in self.lock().workers.iter_mut() {
            if w.run == Some(id) {
                w.run = None;
                w.req = None;
                w.done += 1;
                out = Some((name.clone(), w.labels.clone()));
            }
        }
        out
    }

    /// Whether worker `name` is (still) the one running run `id`.
    pub fn owns(&self, name: &str, id: i64) -> bool {
        self.lock()
            .workers
            .get(name)
            .is_some_and(|w| w.run == Some(id))
    }

    /// Run `id` was not started after all: its worker is free.
    fn release(&self, id: i64) {
        for w in self.lock().workers.values_mut() {
            if w.run == Some(id) {
                w.run = None;
                w.req = None;
            }
        }
    }

    /// The workers, by name.
    pub fn list(&self) -> Vec<WorkerInfo> {
        let st = self.lock();
        let mut out: Vec<WorkerInfo> = st
            .workers
            .iter()
            .map(|(name, w)| WorkerInfo {
                name: name.clone(),
                labels: w.labels.clone(),
                last_seen: w.last_seen_at.clone(),
                run: w.run,
                capacity: 1,
                done: w.done,
                state: if w.run.is_some() { "busy" } else { "idle" }.into(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Drops the workers silent for too long: their names, and the runs
    /// they had.
    fn reap(&self) -> Vec<(String, Option<(i64, RunRequest)>)> {
        let mut st = self.lock();
        let dead: Vec<String> = st
            .workers
            .iter()
            .filter(|(_, w)| w.last_seen.elapsed() > self.timeout)
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = Vec::new();
        for name in dead {
            if let Some(w) = st.workers.remove(&name) {
                let run = match (w.run, w.req) {
                    (Some(id), Some(req)) => Some((id, req)),
                    _ => None,
                };
                out.push((name, run));
            }
        }
        out
    }

    /// Worker `name`'s labels.
    pub fn labels(&self, name: &str) -> BTreeMap<String, String> {
        self.lock()
            .workers
            .get(name)
            .map(|w| w.labels.clone())
            .unwrap_or_default()
    }

    /// Puts run `id` first in the queue again.
    fn requeue(&self, id: i64, req: RunRequest) {
        self.lock().queue.push_front((id, req));
    }
}

/// Worker `name` polls: `Ok(None)` for an unknown worker (it should
/// register again), `Ok(Some(None))` for nothing to do, else the run it
/// takes.
pub async fn poll(app: &Arc<App>, name: &str) -> Result<Option<Option<(i64, RunRequest)>>, String> {
    let Some(taken) = app.hub.workers.poll(name) else {
        return Ok(None);
    };
    if let Some((id, req)) = &taken {
        if let Err(e) = runs::start_for_worker(app, *id, name).await {
            // Give it back for another poll.
            app.hub.workers.release(*id);
            app.hub.workers.requeue(*id, req.clone());
            return Err(e);
        }
        let labels = app.hub.workers.labels(name);
        record(app, name, &labels, "busy", Some(*id)).await;
    } else if app.hub.workers.touch_due(name)
        && let Err(e) = app.store.touch_worker(name).await
    {
        eprintln!("worker {name}: cannot record it: {e}");
    }
    Ok(Some(taken))
}

/// Records worker `name`'s state in the store (a failure is only logged:
/// the worker works on).
pub async fn record(
    app: &App,
    name: &str,
    labels: &BTreeMap<String, String>,
    state: &str,
    run: Option<i64>,
) {
    let labels = serde_json::to_value(labels).unwrap_or_default();
    if let Err(e) = app.store.save_worker(name, &labels, state, run).await {
        eprintln!("worker {name}: cannot record it: {e}");
    }
}

/// The workers for the workers page and `GET /api/workers`: the live ones
/// (idle or busy) by name, then the gone ones the store remembers, the
/// last seen first.
pub async fn overview(app: &App) -> Result<Vec<WorkerInfo>, crate::store::StoreError> {
    let mut live = app.hub.workers.list();
    let stored = app.store.workers(200).await?;
    for w in &mut live {
        if let Some(s) = stored.iter().find(|s| s.name == w.name) {
            w.done = s.done.max(0) as u64;
        }
    }
    let gone: Vec<WorkerInfo> = stored
        .into_iter()
        .filter(|s| !live.iter().any(|w| w.name == s.name))
        .map(|s| WorkerInfo {
            name: s.name,
            labels: serde_json::from_value(s.labels).unwrap_or_default(),
            last_seen: s.last_seen,
            run: None,
            capacity: 1,
            done: s.done.max(0) as u64,
            state: "gone".into(),
        })
        .collect();
    live.extend(gone);
    Ok(live)
}

/// Every quarter of the timeout, drops silent workers and re-queues their
/// runs.
pub fn spawn_reaper(app: Arc<App>) {
    let every = (app.hub.workers.timeout / 4).max(Duration::from_millis(50));
    tokio::spawn(async move {
        let mut stop = app.hub.stop_signal();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            for (name, run) in app.hub.workers.reap() {
                if let Err(e) = app
                    .store
                    .exec(
                        "UPDATE workers SET state = 'gone', run_id = NULL WHERE name = $1",
                        vec![crate::store::Val::T(name.clone())],
                    )
                    .await
                {
                    eprintln!("worker {name}: cannot record it: {e}");
                }
                let Some((id, req)) = run else {
                    eprintln!("worker {name} went silent");
                    continue;
                };
                eprintln!("worker {name} went silent: run {id} is queued again");
                if let Err(e) = requeue(&app, id, req).await {
                    eprintln!("run {id}: cannot queue it again: {e}");
                }
            }
        }
    });
}

async fn requeue(app: &Arc<App>, id: i64, req: RunRequest) -> Result<(), String> {
    // Its events stop here: pushes from the vanished worker are refused.
    app.hub.pushed_lock().await.remove(&id);
    app.hub.close(id);
    app.store.requeue_run(id).await.map_err(|e| e.to_string())?;
    app.hub.workers.requeue(id, req);
    Ok(())
}
