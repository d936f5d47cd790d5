//! `atf run --server URL`: the run's events pushed to an `atf serve` as
//! they happen, so the run shows live on its pages and stays in its
//! history. The events are the ones `events.jsonl` gets (secrets already
//! masked). A background thread sends them in batches; if the server
//! cannot be reached the run goes on without it, with a warning.

use std::thread::JoinHandle;
use std::time::Duration;

use atf_reports::{Event, Reporter};
use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;

/// The pushing reporter.
pub struct Push {
    base: String,
    id: i64,
    client: reqwest::blocking::Client,
    token: Option<String>,
    tx: Option<Sender<String>>,
    thread: Option<JoinHandle<bool>>,
}

pub(crate) fn request(
    client: &reqwest::blocking::Client,
    token: Option<&str>,
    url: &str,
) -> reqwest::blocking::RequestBuilder {
    let r = client.post(url);
    match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    }
}

pub(crate) fn check(res: reqwest::Result<reqwest::blocking::Response>) -> Result<Value, String> {
    let res = res.map_err(|e| e.to_string())?;
    let status = res.status();
    let text = res.text().unwrap_or_default();
    if !status.is_success() {
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(format!("{status}: {msg}"));
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn send_loop(
    rx: Receiver<String>,
    client: reqwest::blocking::Client,
    token: Option<String>,
    url: String,
) -> bool {
    let mut ok = true;
    while let Ok(first) = rx.recv() {
        let mut batch = first;
        batch.push('\n');
        while let Ok(more) = rx.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
        }
        if ok && let Err(e) = check(request(&client, token.as_deref(), &url).body(batch).send()) {
            eprintln!("warning: --server: pushing events stopped: {e}");
            ok = false;
        }
    }
    ok
}

impl Push {
    /// Announces the run to the server at `base`; `None` (after a
    /// warning) when the server does not take it.
    pub fn start(base: &str, selection: &Value) -> Option<Push> {
        let base = base.trim_end_matches('/').to_string();
        let token = std::env::var("ATF_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let client = match reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warning: --server: {e}; the run goes on without it");
                return None;
            }
        };
        let url = format!("{base}/api/runs/push");
        let id = match check(
            request(&client, token.as_deref(), &url)
                .json(selection)
                .send(),
        ) {
            Ok(v) => match v["id"].as_i64() {
                Some(id) => id,
                None => {
                    eprintln!(
                        "warning: --server: {url} answered no run id; the run goes on without it"
                    );
                    return None;
                }
            },
            Err(e) => {
                eprintln!("warning: --server: {url}: {e}; the run goes on without it");
                return None;
            }
        };
        eprintln!("pushing to {base}/runs/{id}");
        let (tx, rx) = crossbeam_channel::unbounded();
        let (c, t, u) = (
            client.clone(),
            token.clone(),
            format!("{base}/api/runs/{id}/push"),
        );
        let thread = std::thread::Builder::new()
            .name("atf-push".into())
            .spawn(move || send_loop(rx, c, t, u))
            .ok()?;
        Some(Push {
            base,
            id,
            client,
            token,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends what is left and the run's exit code.
    pub fn finish(mut self, exit_code: i32) {
        drop(self.tx.take());
        let ok = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(false);
        if !ok {
            return;
        }
        let url = format!("{}/api/runs/{}/finish", self.base, self.id);
        if let Err(e) = check(
            request(&self.client, self.token.as_deref(), &url)
                .json(&serde_json::json!({ "exit_code": exit_code }))
                .send(),
        ) {
            eprintln!("warning: --server: {url}: {e}");
        }
    }
}

impl Reporter for Push {
    fn on_event(&mut self, event: &Event) {
        if let (Some(tx), Ok(line)) = (&self.tx, serde_json::to_string(event)) {
            let _ = tx.send(line);
        }
    }
}
