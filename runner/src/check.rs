//! `atf check`: every load error, plus every placeholder that no var, data
//! row, environment, `--var`, suite or earlier `save` can define.
//!
//! Names are followed in the order a run would define them: suite vars and
//! what suite steps save, the environment's vars, the data row, case vars in
//! the order written, then each step's `save` (and `ctx.set`) for the steps
//! after it. Cleanup and undo steps see everything any step saves.

use std::collections::HashSet;
use std::fmt;

use serde_json::Value;

use crate::config::RunConfig;
use crate::model::{CaseRun, Step};

/// One problem `atf check` found.
pub struct Finding {
    /// `file:line`.
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// A rendered load error, shown as is.
    pub rendered: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rendered {
            Some(r) => write!(f, "{r}"),
            None => writeln!(f, "error: {}\n  --> {}", self.message, self.location),
        }
    }
}

fn names_in(v: &Value, out: &mut Vec<(String, String)>, errors: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("${") => match crate::resolve::referenced_names(s) {
            Ok(names) => out.extend(names.into_iter().map(|n| (n, s.clone()))),
            Err(e) => errors.push(e.to_string()),
        },
        Value::Array(items) => items.iter().for_each(|i| names_in(i, out, errors)),
        Value::Object(m) => m.values().for_each(|i| names_in(i, out, errors)),
        _ => {}
    }
}

fn saved_by(step: &Step) -> Vec<String> {
    let mut out: Vec<String> = step.save.keys().cloned().collect();
    if step.code.saves_result
        && let Value::Object(m) = &step.args
    {
        out.extend(m.keys().cloned());
    }
    out
}

struct Checker<'a> {
    file: &'a str,
    findings: Vec<Finding>,
    seen: HashSet<(usize, String)>,
}

impl Checker<'_> {
    fn check_value(&mut self, line: usize, what: &str, v: &Value, defined: &HashSet<String>) {
        let mut names = Vec::new();
        let mut errors = Vec::new();
        names_in(v, &mut names, &mut errors);
        for e in errors {
            self.push(line, format!("{what}: {e}"));
        }
        for (name, text) in names {
            let ok = match name.strip_prefix("env.") {
                Some(var) => std::env::var_os(var).is_some(),
                None => defined.contains(&name),
            };
            if !ok && self.seen.insert((line, name.clone())) {
                let why = if let Some(var) = name.strip_prefix("env.") {
                    format!("the environment variable `{var}` is not set")
                } else {
                    format!(
                        "nothing defines `{name}` before this step (no var, data row, environment, --var or earlier save)"
                    )
                };
                self.push(line, format!("{what}: `{text}`: {why}"));
            }
        }
    }

    fn push(&mut self, line: usize, message: String) {
        self.findings.push(Finding {
            location: format!("{}:{line}", self.file),
            message,
            rendered: None,
        });
    }

    fn step(&mut self, step: &Step, what: &str, defined: &HashSet<String>) {
        self.check_value(step.line, what, &step.args, defined);
        for (_, keys) in &step.code.header_keys {
            for (written, _) in keys {
                self.check_value(step.line, what, &Value::String(written.clone()), defined);
            }
        }
        for v in step.expect.values() {
            self.check_value(step.line, what, v, defined);
        }
        for v in step.save.values() {
            self.check_value(step.line, what, v, defined);
        }
    }
}

/// Checks the selected runs.
pub fn check(cfg: &RunConfig, runs: &[CaseRun]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut base: HashSet<String> = cfg.env.vars.keys().cloned().collect();
    base.extend(cfg.overrides.keys().cloned());
    let mut checked_files = HashSet::new();
    for run in runs {
        let case = match &run.case {
            Err(broken) => {
                if checked_files.insert(broken.file.clone()) {
                    for d in &broken.errors {
                        findings.push(Finding {
                            location: d.location(),
                            message: d.message.clone(),
                            rendered: Some(d.to_string()),
                        });
                    }
                }
                continue;
            }
            Ok(c) => c,
        };
        // Data rows share their steps: check a case file once, with its first row.
        if !checked_files.insert(case.file.clone()) {
            continue;
        }
        let mut ck = Checker {
            file: &case.file,
            findings: Vec::new(),
            seen: HashSet::new(),
        };
        let mut defined = base.clone();
        for s in &case.suites {
            let mut names = Vec::new();
            let mut errors = Vec::new();
            names_in(
                &Value::Object(s.vars.as_map().clone()),
                &mut names,
                &mut errors,
            );
            defined.extend(s.vars.keys().cloned());
            for st in s.prepare.iter().chain(s.cleanup.iter()) {
                defined.extend(saved_by(st));
            }
        }
        if let Some((_, row)) = &run.row {
            defined.extend(row.keys().cloned());
        }
        for (name, value) in case.vars.iter() {
            let line = case.var_lines.get(name).copied().unwrap_or(0);
            ck.check_value(line, &format!("var `{name}`"), value, &defined);
            defined.insert(name.clone());
        }
        for (i, st) in case.prepare.iter().enumerate() {
            ck.step(st, &format!("prepare step {}", i + 1), &defined);
            defined.extend(saved_by(st));
        }
        let mut after_steps = defined.clone();
        let all_sets: Vec<String> = case.steps.iter().flatten().flat_map(saved_by).collect();
        for (si, set) in case.steps.iter().enumerate() {
            let mut d = defined.clone();
            if case.steps.len() > 1 {
                // Another set may save a name first; its order is not fixed.
                d.extend(all_sets.iter().cloned());
            }
            for (i, st) in set.iter().enumerate() {
                let what = if case.steps.len() > 1 {
                    format!("step {} of set {}", i + 1, si + 1)
                } else {
                    format!("step {}", i + 1)
                };
                ck.step(st, &what, &d);
                d.extend(saved_by(st));
            }
            after_steps.extend(d);
        }
        for st in case.prepare.iter().chain(case.steps.iter().flatten()) {
            if let Some(u) = &st.undo {
                ck.step(u, "undo step", &after_steps);
            }
        }
        for (i, st) in case.cleanup.iter().enumerate() {
            ck.step(st, &format!("cleanup step {}", i + 1), &after_steps);
            after_steps.extend(saved_by(st));
        }
        // Where a line is unknown, point at the file.
        for f in &mut ck.findings {
            if f.location.ends_with(":0") {
                f.location = case.file.clone();
            }
        }
        findings.extend(ck.findings);
    }
    findings
}
