//! `atf serve import DIR`: a report folder of a past run (from `atf run`,
//! CI, a shard) into the run history, with its events when the folder has
//! `events.jsonl`, else its case results from `report.json`. The folder's
//! report files are copied into `PROJECT/.atf/runs/ID/`, so the run's
//! report stays available when the folder goes.

use std::path::Path;

use atf_reports::{Event, RunReport};
use serde_json::json;

use crate::runs::status_name;
use crate::store::{CaseResult, Counts, Store};

/// The report files copied with an imported run.
const COPIED: &[&str] = &["report.json", "events.jsonl", "junit.xml", "index.html"];

/// Imports the report folder `dir`; returns the new run's id.
pub async fn import(store: &Store, runs_dir: &Path, dir: &Path) -> Result<i64, String> {
    // report.json, or the fold of events.jsonl for a killed run.
    let report: RunReport = atf_reports::read_last_run(dir)?;
    let events_path = dir.join(atf_reports::events_file::FILE_NAME);
    let lines: Vec<String> = match std::fs::read_to_string(&events_path) {
        Ok(text) => {
            // Validates every line as an event first.
            atf_reports::read_jsonl(&text)
                .map_err(|e| format!("{}: {e}", events_path.display()))?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", events_path.display())),
    };
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let selection = json!({ "imported_from": shown.display().to_string() });
    let err = |e: crate::store::StoreError| e.to_string();
    let id = store.create_run(&selection, "import").await.map_err(err)?;
    let target = runs_dir.join(id.to_string());
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    for name in COPIED {
        let from = dir.join(name);
        if from.is_file() {
            std::fs::copy(&from, target.join(name))
                .map_err(|e| format!("{}: {e}", from.display()))?;
        }
    }
    store
        .start_run(id, &target.display().to_string())
        .await
        .map_err(err)?;
    let finished_at = if report.started_at.is_empty() {
        crate::store::now()
    } else {
        report.started_at.clone()
    };
    for (i, line) in lines.iter().enumerate() {
        let case = match serde_json::from_str::<Event>(line) {
            Ok(Event::CaseFinished { report: r, .. }) => Some(CaseResult {
                run_id: id,
                file: r.file.clone(),
                name: r.name.clone(),
                status: status_name(r.status).into(),
                duration_ms: r.duration_ms as i64,
                finished_at: finished_at.clone(),
            }),
            _ => None,
        };
        store
            .add_event(id, i as i64 + 1, line, case)
            .await
            .map_err(err)?;
    }
    if lines.is_empty() {
        for c in &report.cases {
            store
                .add_case_result(CaseResult {
                    run_id: id,
                    file: c.file.clone(),
                    name: c.name.clone(),
                    status: status_name(c.status).into(),
                    duration_ms: c.duration_ms as i64,
                    finished_at: finished_at.clone(),
                })
                .await
                .map_err(err)?;
        }
    }
    let s = &report.summary;
    let status = if report.interrupted {
        "interrupted"
    } else if s.failed > 0 || s.errored > 0 {
        "failed"
    } else {
        "passed"
    };
    let counts = Counts {
        total: s.total as i64,
        passed: s.passed as i64,
        flaky: s.flaky as i64,
        failed: s.failed as i64,
        errored: s.errored as i64,
        skipped: s.skipped as i64,
        duration_ms: s.duration_ms as i64,
    };
    store.finish_run(id, status, counts).await.map_err(err)?;
    Ok(id)
}
