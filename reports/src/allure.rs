//! Allure 2 results (`--allure DIR`): the files the Allure commandline and
//! Allure 3 read from an `allure-results` folder, written from the final
//! [`RunReport`] (secrets already masked).
//!
//! - Each case is a test result (`<uuid>-result.json`): status `passed`,
//!   `failed` (an expectation did not hold), `broken` (an error) or
//!   `skipped`; labels `suite` (the case folder), `tag`, `package`,
//!   `framework`; a matrix cell and a repetition are parameters. Each of
//!   its `steps` is an Allure step named by its keyword and remark, with
//!   the resolved arguments as parameters and the arguments and result
//!   (for `http.request` the request and the response) as attachments.
//! - A retried case is one result per run, all sharing a `historyId`, so
//!   Allure shows the earlier runs as retries; the last one of a flaky
//!   case has `statusDetails.flaky`.
//! - The case's `prepare` and `cleanup` (undo included) are the set-up and
//!   tear-down fixtures of a container of its own; a suite's `prepare` and
//!   `cleanup` those of a container holding the results of its cases (per
//!   matrix cell).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::{Attempt, CaseReport, RunReport, Status, StepReport, SuiteReport};

/// Writes the Allure results of `report` into `dir` (made when missing;
/// files of earlier runs are left, as Allure expects).
pub fn write(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let w = Writer {
        dir,
        run_start: parse_ms(&report.started_at).unwrap_or_else(now_ms),
    };
    // Result uuids of each case (all its runs), by file and cell, for the
    // suite containers.
    let mut by_case: Vec<(&CaseReport, Vec<String>)> = Vec::with_capacity(report.cases.len());
    for case in &report.cases {
        by_case.push((case, w.case(case)?));
    }
    for suite in &report.suites {
        let folder = folder_of(&suite.file);
        let children: Vec<String> = by_case
            .iter()
            .filter(|(c, _)| under(&c.file, &folder) && c.matrix == suite.matrix)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect();
        w.suite(suite, children)?;
    }
    Ok(())
}

struct Writer<'a> {
    dir: &'a Path,
    run_start: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds of an RFC 3339 time.
fn parse_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn hex_digest(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// `/`-separated folder of a file, `.` for the top.
fn folder_of(file: &str) -> String {
    let file = file.replace('\\', "/");
    let file = file.trim_start_matches("./");
    match file.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        _ => ".".to_string(),
    }
}

/// Whether `file` is in `folder` or below it.
fn under(file: &str, folder: &str) -> bool {
    if folder == "." {
        return true;
    }
    let file = file.replace('\\', "/");
    let file = file.trim_start_matches("./");
    file.starts_with(folder) && file[folder.len()..].starts_with('/')
}

fn allure_status(s: Status) -> &'static str {
    match s {
        Status::Passed | Status::Flaky => "passed",
        Status::Failed => "failed",
        Status::Error => "broken",
        Status::Skipped => "skipped",
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most 300 characters, for parameter values.
fn short(text: String) -> String {
    if text.chars().count() > 300 {
        let mut s: String = text.chars().take(300).collect();
        s.push('…');
        s
    } else {
        text
    }
}

impl Writer<'_> {
    fn put(&self, name: &str, value: &Value) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join(name), text)
    }

    /// A JSON attachment; its entry for a step's `attachments`.
    fn attach(&self, name: &str, value: &Value) -> std::io::Result<Value> {
        let source = format!("{}-attachment.json", new_id());
        self.put(&source, value)?;
        Ok(json!({ "name": name, "source": source, "type": "application/json" }))
    }

    /// An Allure step of a step report starting at `start`.
    fn step(&self, phase: &str, s: &StepReport, start: i64) -> std::io::Result<Value> {
        let mut name = s.keyword.clone();
        if let Some(r) = &s.remark {
            name.push_str(" — ");
            name.push_str(r);
        }
        if phase != "steps" || s.undo {
            let what = if s.undo { "undo" } else { phase };
            name = format!("{what} {}: {name}", s.index);
        }
        let parameters: Vec<Value> = match &s.args {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| json!({ "name": k, "value": short(text_of(v)) }))
                .collect(),
            Value::Null => Vec::new(),
            other => vec![json!({ "name": "args", "value": short(text_of(other)) })],
        };
        let mut attachments = Vec::new();
        if s.status != Status::Skipped {
            // The same names for every keyword: for `http.request` the
            // arguments are the request and the result the response.
            if !s.args.is_null() {
                attachments.push(self.attach("arguments", &s.args)?);
            }
            if !s.result.is_null() {
                attachments.push(self.attach("result", &s.result)?);
            }
        }
        let mut step = json!({
            "name": name,
            "status": allure_status(s.status),
            "stage": "finished",
            "start": start,
            "stop": start + s.duration_ms as i64,
            "parameters": parameters,
            "attachments": attachments,
            "steps": [],
        });
        if let Some(details) = step_details(s) {
            step["statusDetails"] = details;
        }
        Ok(step)
    }

    /// Steps laid end to end from `start`; the time after the last.
    fn steps(
        &self,
        steps: &[(&str, &StepReport)],
        mut start: i64,
    ) -> std::io::Result<(Vec<Value>, i64)> {
        let mut out = Vec::with_capacity(steps.len());
        for (phase, s) in steps {
            out.push(self.step(phase, s, start)?);
            start += s.duration_ms as i64;
        }
        Ok((out, start))
    }

    /// The results of a case (one per run); their uuids.
    fn case(&self, case: &CaseReport) -> std::io::Result<Vec<String>> {
        let mut params: Vec<Value> = Vec::new();
        if let Some(cell) = &case.matrix {
            for (k, v) in cell {
                params.push(json!({ "name": k, "value": text_of(v) }));
            }
        }
        if let Some(i) = case.data_index {
            params.push(json!({ "name": "data row", "value": i.to_string() }));
        }
        if let Some(n) = case.repetition {
            params.push(json!({ "name": "repetition", "value": n.to_string() }));
        }
        let full_name = format!("{}#{}", case.file, case.name);
        let history_id = hex_digest(&format!("{full_name}|{}", Value::Array(params.clone())));
        let test_case_id = hex_digest(&full_name);
        let runs: Vec<Attempt> = if case.attempts.is_empty() {
            vec![Attempt::of(1, case)]
        } else {
            case.attempts.clone()
        };
        let last = runs.len() - 1;
        let mut ids = Vec::with_capacity(runs.len());
        let mut start_fallback = case.start_ms.unwrap_or(self.run_start);
        for (i, run) in runs.iter().enumerate() {
            let id = new_id();
            let start = run.start_ms.unwrap_or(start_fallback);
            let stop = start + run.duration_ms as i64;
            start_fallback = stop + 1;
            let prepare: Vec<(&str, &StepReport)> =
                run.prepare.iter().map(|s| ("prepare", s)).collect();
            let body: Vec<(&str, &StepReport)> = run.steps.iter().map(|s| ("steps", s)).collect();
            let cleanup: Vec<(&str, &StepReport)> =
                run.cleanup.iter().map(|s| ("cleanup", s)).collect();
            let (befores, t) = self.steps(&prepare, start)?;
            let (steps, t) = self.steps(&body, t)?;
            let (afters, _) = self.steps(&cleanup, t)?;
            let status = if i == last { case.status } else { run.status };
            let mut details = Map::new();
            if let Some(e) = &run.error {
                details.insert("message".into(), Value::String(e.clone()));
            }
            let trace = trace_of(run);
            if !trace.is_empty() {
                details.insert("trace".into(), Value::String(trace));
            }
            if i == last && case.status == Status::Flaky {
                details.insert("flaky".into(), Value::Bool(true));
            }
            let mut labels = vec![
                json!({ "name": "suite", "value": folder_of(&case.file) }),
                json!({ "name": "package", "value": folder_of(&case.file).replace('/', ".") }),
                json!({ "name": "testClass", "value": case.file }),
                json!({ "name": "framework", "value": "atf" }),
            ];
            for t in &case.tags {
                labels.push(json!({ "name": "tag", "value": t }));
            }
            let mut result = json!({
                "uuid": id,
                "historyId": history_id,
                "testCaseId": test_case_id,
                "fullName": full_name,
                "name": case.name,
                "status": allure_status(status),
                "statusDetails": Value::Object(details),
                "stage": "finished",
                "start": start,
                "stop": stop,
                "labels": labels,
                "parameters": params,
                "steps": steps,
                "attachments": [],
            });
            if let Some(r) = &case.remark {
                result["description"] = Value::String(r.clone());
            }
            self.put(&format!("{id}-result.json"), &result)?;
            if !befores.is_empty() || !afters.is_empty() {
                let befores: Vec<Value> = if befores.is_empty() {
                    Vec::new()
                } else {
                    vec![fixture("prepare", befores, start)]
                };
                let afters: Vec<Value> = if afters.is_empty() {
                    Vec::new()
                } else {
                    vec![fixture("cleanup", afters, start)]
                };
                let cid = new_id();
                self.put(
                    &format!("{cid}-container.json"),
                    &json!({
                        "uuid": cid,
                        "name": case.name,
                        "children": [id],
                        "befores": befores,
                        "afters": afters,
                        "start": start,
                        "stop": stop,
                    }),
                )?;
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// A suite's container: its prepare and cleanup around its cases.
    fn suite(&self, suite: &SuiteReport, children: Vec<String>) -> std::io::Result<()> {
        let prepare: Vec<(&str, &StepReport)> =
            suite.prepare.iter().map(|s| ("prepare", s)).collect();
        let cleanup: Vec<(&str, &StepReport)> =
            suite.cleanup.iter().map(|s| ("cleanup", s)).collect();
        let (befores, _) = self.steps(&prepare, self.run_start)?;
        let (afters, _) = self.steps(&cleanup, self.run_start)?;
        let mut name = suite.file.clone();
        if let Some(cell) = &suite.matrix {
            name.push_str(&format!(" [{}]", crate::junit::cell_label(cell)));
        }
        let befores: Vec<Value> = if befores.is_empty() {
            Vec::new()
        } else {
            vec![fixture(
                &format!("{} prepare", suite.file),
                befores,
                self.run_start,
            )]
        };
        let afters: Vec<Value> = if afters.is_empty() {
            Vec::new()
        } else {
            vec![fixture(
                &format!("{} cleanup", suite.file),
                afters,
                self.run_start,
            )]
        };
        let id = new_id();
        self.put(
            &format!("{id}-container.json"),
            &json!({
                "uuid": id,
                "name": name,
                "children": children,
                "befores": befores,
                "afters": afters,
                "start": self.run_start,
                "stop": self.run_start,
            }),
        )
    }
}

/// A fixture (set-up or tear-down) made of steps.
fn fixture(name: &str, steps: Vec<Value>, start: i64) -> Value {
    let status = steps
        .iter()
        .map(|s| s["status"].as_str().unwrap_or("passed"))
        .find(|s| *s == "broken" || *s == "failed")
        .unwrap_or("passed");
    let stop = steps
        .last()
        .and_then(|s| s["stop"].as_i64())
        .unwrap_or(start);
    let start = steps
        .first()
        .and_then(|s| s["start"].as_i64())
        .unwrap_or(start);
    json!({
        "name": name,
        "status": status,
        "stage": "finished",
        "start": start,
        "stop": stop,
        "steps": steps,
    })
}

/// Failed expectations and errors of a step, for `statusDetails`.
fn step_details(s: &StepReport) -> Option<Value> {
    if s.failures.is_empty() && s.error.is_none() {
        return None;
    }
    let message = s
        .error
        .clone()
        .or_else(|| {
            s.failures
                .first()
                .map(|f| format!("{}: {}", f.path, f.message))
        })
        .unwrap_or_default();
    Some(json!({ "message": message, "trace": crate::console::describe_step("steps", s) }))
}

/// Every failed step of a run, as the console shows them.
fn trace_of(run: &Attempt) -> String {
    let mut text = String::new();
    for (phase, s) in run.all_steps() {
        if matches!(s.status, Status::Failed | Status::Error) {
            text.push_str(&crate::console::describe_step(phase, s));
        }
    }
    text
}

/// How many result files of each status `dir` holds (for tests and checks).
pub fn count_results(dir: &Path) -> std::io::Result<HashMap<String, usize>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("-result.json"))
        {
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path)?).map_err(std::io::Error::other)?;
            *out.entry(v["status"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_contain_their_files() {
        assert!(under("a/b/c.case.json", "a/b"));
        assert!(under("./a/b/c.case.json", "a"));
        assert!(!under("ab/c.case.json", "a"));
        assert!(under("x.case.json", "."));
        assert_eq!(folder_of("a/b/c.case.json"), "a/b");
        assert_eq!(folder_of("c.case.json"), ".");
    }

    #[test]
    fn a_flaky_case_is_one_result_per_run_sharing_a_history() {
        let dir = tempfile::tempdir().unwrap();
        let case = CaseReport {
            name: "counter".into(),
            file: "r/counter.case.json".into(),
            status: Status::Flaky,
            max_attempts: 3,
            attempts: vec![
                Attempt {
                    attempt: 1,
                    status: Status::Failed,
                    error: Some("failed at step 1".into()),
                    ..Attempt::default()
                },
                Attempt {
                    attempt: 2,
                    status: Status::Passed,
                    ..Attempt::default()
                },
            ],
            ..CaseReport::default()
        };
        let report = RunReport {
            started_at: "2026-11-20T10:15:00+01:00".into(),
            cases: vec![case],
            ..RunReport::default()
        };
        write(dir.path(), &report).unwrap();
        let mut results: Vec<Value> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("-result.json"))
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect();
        results.sort_by_key(|r| r["start"].as_i64());
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["historyId"], results[1]["historyId"]);
        assert_eq!(results[0]["status"], "failed");
        assert_eq!(results[1]["status"], "passed");
        assert_eq!(results[1]["statusDetails"]["flaky"], true);
        assert_eq!(results[0]["statusDetails"]["message"], "failed at step 1");
    }
}
