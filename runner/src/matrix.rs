//! Feature-flag matrix: `--matrix NAME=V1,V2` (repeatable), the project
//! file's `matrix` object, `--matrix-include` and `--matrix-exclude`.
//!
//! The dimensions make cells, cartesian like a GitHub Actions matrix:
//! `exclude` entries drop every cell they match (all their pairs equal),
//! `include` entries add a cell of their own unless one equal to it is
//! there. Each cell's values are variables of the run (like `--var`), seen
//! by suites and cases; a case may declare `"matrix": {"NAME": [values]}`
//! to run only in the cells where NAME has one of those values. Selected
//! cases run once per cell, named `name [NAME=V, ...]`, and the cells run
//! one after another — each with its own suite prepare and cleanup — so
//! two cells never overlap even when they set the same switch.

use atf_reports::{CaseReport, Event, Reporter, RunReport, Status, Summary};
use serde_json::{Map, Value};

use crate::load::fields::{Src, child, kind};
use crate::model::CaseRun;

/// One cell: dimension name → value, in dimension order.
pub type Cell = Map<String, Value>;

/// The matrix of a run, before expansion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matrix {
    /// Dimensions in the order given, each with its values.
    pub dims: Vec<(String, Vec<Value>)>,
    /// Extra cells.
    pub include: Vec<Cell>,
    /// Patterns of cells to drop.
    pub exclude: Vec<Cell>,
}

impl Matrix {
    /// Whether there is no matrix at all.
    pub fn is_empty(&self) -> bool {
        self.dims.is_empty() && self.include.is_empty()
    }

    /// `other` over `self`: a dimension of `other` replaces the one of the
    /// same name (keeping its place), new ones are added; the include and
    /// exclude lists are joined.
    pub fn overlay(mut self, other: Matrix) -> Matrix {
        for (name, values) in other.dims {
            match self.dims.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = values,
                None => self.dims.push((name, values)),
            }
        }
        self.include.extend(other.include);
        self.exclude.extend(other.exclude);
        self
    }

    /// Every cell, in order: the cartesian product (first dimension
    /// slowest) less the excluded ones, then the included ones that are
    /// new. Empty when there is no matrix.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells: Vec<Cell> = if self.dims.is_empty() {
            Vec::new()
        } else {
            let mut acc: Vec<Cell> = vec![Map::new()];
            for (name, values) in &self.dims {
                let mut next = Vec::with_capacity(acc.len() * values.len());
                for cell in &acc {
                    for v in values {
                        let mut c = cell.clone();
                        c.insert(name.clone(), v.clone());
                        next.push(c);
                    }
                }
                acc = next;
            }
            acc
        };
        cells.retain(|c| !self.exclude.iter().any(|pat| matches(pat, c)));
        for inc in &self.include {
            if !cells.iter().any(|c| c == inc) {
                cells.push(inc.clone());
            }
        }
        cells
    }
}

/// Whether every pair of `pattern` is in `cell`.
fn matches(pattern: &Cell, cell: &Cell) -> bool {
    pattern.iter().all(|(k, v)| cell.get(k) == Some(v))
}

/// `checkout_v2=on, region=cn`.
pub fn label(cell: &Cell) -> String {
    atf_reports::junit::cell_label(cell)
}

/// Parses `--matrix NAME=V1,V2`.
pub fn parse_dim(s: &str) -> Result<(String, Vec<Value>), String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE,VALUE..."))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{s}` has no name before `=`"));
    }
    let values: Vec<Value> = values
        .split(',')
        .map(|v| Value::String(v.trim().to_string()))
        .collect();
    if values.iter().any(|v| v.as_str() == Some("")) {
        return Err(format!("`{s}` has an empty value"));
    }
    Ok((name.to_string(), values))
}

/// Parses `--matrix-include`/`--matrix-exclude NAME=V,NAME=V`.
pub fn parse_cell(s: &str) -> Result<Cell, String> {
    let mut cell = Map::new();
    for pair in s.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not NAME=VALUE,NAME=VALUE..."))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("`{s}` has a pair without a name"));
        }
        cell.insert(k.to_string(), Value::String(v.trim().to_string()));
    }
    Ok(cell)
}

/// Reads the project file's `matrix`: dimension names with lists of
/// scalar values, and optional `include` / `exclude` lists of objects.
pub fn project_field(src: &mut Src<'_>, obj: &Map<String, Value>) -> Matrix {
    let mut m = Matrix::default();
    let Some(v) = obj.get("matrix") else {
        return m;
    };
    let Some(o) = src.object(v, "/matrix", "`matrix`") else {
        return m;
    };
    for (name, values) in o {
        let ptr = child("/matrix", name);
        match name.as_str() {
            "include" | "exclude" => {
                let mut list = Vec::new();
                match values {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            match item {
                                Value::Object(c)
                                    if !c.is_empty() && c.values().all(is_scalar) =>
                                {
                                    list.push(c.clone())
                                }
                                other => src.error(
                                    &format!("{ptr}/{i}"),
                                    format!(
                                        "each `{name}` entry must be an object of dimension → value (text, number or boolean), found {}",
                                        kind(other)
                                    ),
                                ),
                            }
                        }
                    }
                    other => src.error(
                        &ptr,
                        format!("`{name}` must be a list of objects, found {}", kind(other)),
                    ),
                }
                if name == "include" {
                    m.include = list;
                } else {
                    m.exclude = list;
                }
            }
            _ => match scalar_list(values) {
                Some(list) => m.dims.push((name.clone(), list)),
                None => src.error(
                    &ptr,
                    format!(
                        "matrix dimension `{name}` must be a non-empty list of texts, numbers or booleans, found {}",
                        kind(values)
                    ),
                ),
            },
        }
    }
    m
}

/// Reads a case's `matrix`: dimension → the values it runs with (a list,
/// or one value).
pub fn case_field(src: &mut Src<'_>, obj: &Map<String, Value>) -> Map<String, Value> {
    let Some(v) = obj.get("matrix") else {
        return Map::new();
    };
    let Some(o) = src.object(v, "/matrix", "`matrix`") else {
        return Map::new();
    };
    let mut out = Map::new();
    for (name, values) in o {
        let list = if is_scalar(values) {
            Some(vec![values.clone()])
        } else {
            scalar_list(values)
        };
        match list {
            Some(list) => {
                out.insert(name.clone(), Value::Array(list));
            }
            None => src.error(
                &child("/matrix", name),
                format!(
                    "`matrix.{name}` must be a value or a non-empty list of texts, numbers or booleans, found {}",
                    kind(values)
                ),
            ),
        }
    }
    out
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn scalar_list(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_scalar) => {
            Some(items.clone())
        }
        _ => None,
    }
}

/// Whether a value of a case's `matrix` list equals a cell's value; `"on"`
/// written in a case matches `on` given on the command line, and so do
/// `1` and `"1"`, `true` and `"true"`.
fn same(a: &Value, b: &Value) -> bool {
    a == b || text(a) == text(b)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a case declaring `wants` runs in `cell`: for each dimension it
/// names that the cell has, the cell's value is one of those it lists.
pub fn applies(wants: &Map<String, Value>, cell: &Cell) -> bool {
    wants.iter().all(|(dim, allowed)| match cell.get(dim) {
        None => true,
        Some(v) => match allowed {
            Value::Array(list) => list.iter().any(|a| same(a, v)),
            other => same(other, v),
        },
    })
}

/// The case runs of each cell, named with the cell as a suffix (`name
/// [a=1, b=2]`); with no cells, one phase of the runs as they are.
pub fn expand(cells: &[Cell], runs: Vec<CaseRun>) -> Vec<(Option<Cell>, Vec<CaseRun>)> {
    if cells.is_empty() {
        return vec![(None, runs)];
    }
    cells
        .iter()
        .map(|cell| {
            let label = label(cell);
            let runs = runs
                .iter()
                .filter(|r| match &r.case {
                    Ok(c) => applies(&c.matrix, cell),
                    Err(_) => true,
                })
                .map(|r| {
                    let mut r = r.clone();
                    r.name = format!("{} [{label}]", r.name);
                    r
                })
                .collect();
            (Some(cell.clone()), runs)
        })
        .collect()
}

/// Runs each cell's case runs with `run` (one whole execution per cell,
/// one cell after another) and reports them to `reporter` as one run: one
/// `Started` with every run counted, each case and suite marked with its
/// cell, one `Finished` with the combined report, which it returns (the
/// caller masks it and hands it to the reporters' `on_report`). With
/// `fail_fast`, the cells after one with a failure do not start.
pub fn run_cells(
    phases: Vec<(Option<Cell>, Vec<CaseRun>)>,
    opts: &crate::exec::ExecOptions,
    fail_fast: bool,
    reporter: &mut dyn Reporter,
    mut run: impl FnMut(&Cell, Vec<CaseRun>, &mut dyn Reporter) -> RunReport,
) -> RunReport {
    let started = std::time::Instant::now();
    let started_at = chrono::Local::now().to_rfc3339();
    let per_run = opts.repeat.repeat.max(1) as usize;
    let total = phases.iter().map(|(_, r)| r.len()).sum::<usize>() * per_run;
    let mut cases = Vec::with_capacity(total);
    let mut suites = Vec::new();
    let mut failed = false;
    for (cell, runs) in phases {
        let cell = cell.unwrap_or_default();
        if fail_fast && failed {
            // Announced as a segment of their own, like a cell that ran.
            reporter.on_event(&Event::RunStarted {
                started_at: started_at.clone(),
                env: opts.env_name.clone(),
                jobs: opts.jobs,
                shard: opts.shard.clone(),
                cases: runs
                    .iter()
                    .map(|r| atf_reports::CaseInfo {
                        name: r.name.clone(),
                        file: r.file().to_string(),
                        tags: r.tags().to_vec(),
                    })
                    .collect(),
            });
            for (i, r) in runs.into_iter().enumerate() {
                let report = CaseReport {
                    name: r.name.clone(),
                    file: r.file().to_string(),
                    tags: r.tags().to_vec(),
                    status: Status::Skipped,
                    error: Some("not started: --fail-fast after an earlier failure".into()),
                    data_index: r.row.as_ref().map(|(i, _)| *i),
                    matrix: Some(cell.clone()),
                    ..CaseReport::default()
                };
                reporter.on_event(&Event::CaseFinished {
                    case: i,
                    report: Box::new(report.clone()),
                });
                cases.push(report);
            }
            continue;
        }
        let report = {
            let mut tagging = CellReporter {
                inner: &mut *reporter,
                cell: &cell,
            };
            run(&cell, runs, &mut tagging)
        };
        for mut c in report.cases {
            failed |= matches!(c.status, Status::Failed | Status::Error);
            c.matrix = Some(cell.clone());
            cases.push(c);
        }
        for mut s in report.suites {
            failed |= matches!(s.status, Some(Status::Failed | Status::Error));
            s.matrix = Some(cell.clone());
            suites.push(s);
        }
    }
    let interrupted = cases.iter().any(|c| {
        c.error
            .as_deref()
            .is_some_and(|e| e.contains("interrupted"))
    });
    let report = RunReport {
        summary: Summary::count(&cases, started.elapsed().as_millis() as u64),
        env: opts.env_name.clone(),
        started_at,
        shard: opts.shard.clone(),
        interrupted,
        suites,
        cases,
    };
    reporter.on_event(&Event::RunFinished {
        summary: report.summary.clone(),
        interrupted: report.interrupted,
    });
    report
}

/// Passes one cell's events on: its `run_started` starts a segment of the
/// stream (its case indexes count from there, see
/// [`atf_reports::ReportBuilder`]), its cases are marked with the cell, and
/// its `run_finished` and report are held back ([`run_cells`] sends one
/// of each for the whole run).
struct CellReporter<'a> {
    inner: &'a mut dyn Reporter,
    cell: &'a Cell,
}

impl Reporter for CellReporter<'_> {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunFinished { .. } => {}
            Event::CaseFinished { case, report } => {
                let mut c = (**report).clone();
                c.matrix = Some(self.cell.clone());
                self.inner.on_event(&Event::CaseFinished {
                    case: *case,
                    report: Box::new(c),
                });
            }
            other => self.inner.on_event(other),
        }
    }

    fn idle(&mut self) {
        self.inner.idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(v: Value) -> Cell {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn cells_are_cartesian_less_excluded_plus_included() {
        let m = Matrix {
            dims: vec![
                parse_dim("checkout_v2=on,off").unwrap(),
                parse_dim("region=cn, sg").unwrap(),
            ],
            include: vec![parse_cell("checkout_v2=on,region=us").unwrap()],
            exclude: vec![parse_cell("checkout_v2=off,region=sg").unwrap()],
        };
        let labels: Vec<String> = m.cells().iter().map(label).collect();
        assert_eq!(
            labels,
            [
                "checkout_v2=on, region=cn",
                "checkout_v2=on, region=sg",
                "checkout_v2=off, region=cn",
                "checkout_v2=on, region=us"
            ]
        );
        assert!(Matrix::default().cells().is_empty());
    }

    #[test]
    fn command_line_dimensions_replace_the_project_ones() {
        let project = Matrix {
            dims: vec![
                ("a".into(), vec![json!(1), json!(2)]),
                ("b".into(), vec![json!("x")]),
            ],
            ..Matrix::default()
        };
        let cli = Matrix {
            dims: vec![parse_dim("a=3").unwrap(), parse_dim("c=y").unwrap()],
            ..Matrix::default()
        };
        let m = project.overlay(cli);
        let names: Vec<&str> = m.dims.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(m.dims[0].1, vec![json!("3")]);
    }

    #[test]
    fn a_case_runs_only_in_the_cells_it_declares() {
        let on = cell(json!({"checkout_v2": "on", "region": "cn"}));
        let off = cell(json!({"checkout_v2": "off", "region": "cn"}));
        let wants = cell(json!({"checkout_v2": ["on"]}));
        assert!(applies(&wants, &on));
        assert!(!applies(&wants, &off));
        assert!(applies(&Map::new(), &off));
        assert!(applies(&cell(json!({"other": ["x"]})), &on));
        assert!(applies(&cell(json!({"n": [1]})), &cell(json!({"n": "1"}))));
    }

    #[test]
    fn bad_flags_are_explained() {
        assert!(parse_dim("novalue").is_err());
        assert!(parse_dim("=a").is_err());
        assert!(parse_dim("a=x,,y").is_err());
        assert!(parse_cell("a=1,b").is_err());
    }
}
