//! Loading: find case files, read them with their suites, check every
//! field, and expand data rows into case runs.
//!
//! A file that cannot be read or checked becomes a [`BrokenCase`]: it is
//! reported as an `error` case with every problem found (file, line,
//! column, hint), and every other case still runs.

pub mod case;
pub mod fields;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atf_sdk::KeywordSpec;
use serde_json::{Map, Value};

use crate::diag::{Diagnostic, display_path};
use crate::model::{BrokenCase, Case, CaseRun, Suite};
use fields::Src;

/// The keywords a run knows, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    specs: BTreeMap<String, KeywordSpec>,
    ids: std::collections::HashMap<String, u32>,
}

impl Catalog {
    /// A catalog of these specs.
    pub fn new(specs: impl IntoIterator<Item = KeywordSpec>) -> Catalog {
        let specs: BTreeMap<String, KeywordSpec> =
            specs.into_iter().map(|s| (s.name.clone(), s)).collect();
        let ids = specs
            .keys()
            .enumerate()
            .filter_map(|(i, n)| Some((n.clone(), u32::try_from(i).ok()?)))
            .collect();
        Catalog { specs, ids }
    }

    /// The spec of `name`.
    pub fn get(&self, name: &str) -> Option<&KeywordSpec> {
        self.specs.get(name)
    }

    /// The place of `name` among the sorted names: the id a compiled step
    /// keeps (see [`crate::exec::KeywordTable`]).
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Every keyword name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }

    /// Every spec, sorted by name.
    pub fn specs(&self) -> impl Iterator<Item = &KeywordSpec> {
        self.specs.values()
    }
}

/// Finds the case files under `paths`: folders are searched recursively for
/// `*.case.json` (what [`crate::walk`] skips is skipped), files are taken as
/// named. Errors name a path that does not exist.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_file() {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut found = crate::walk::files(p, crate::walk::Depth::Tree, |f| {
                f.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".case.json"))
            })
            .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            found.sort();
            out.extend(found);
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(std::path::absolute(p).unwrap_or_else(|_| p.clone())));
    Ok(out)
}

/// Loads the case files and their suites. `boundary` is the highest folder
/// whose `suite.json` applies (the project root, or the folder given).
pub fn load(files: &[PathBuf], boundaries: &[PathBuf], catalog: &Catalog) -> Vec<CaseRun> {
    load_with(files, boundaries, catalog, None)
}

/// [`load`], with the text of one file given instead of read from disk
/// (`atf serve`'s editor checks a case before it is saved).
pub fn load_with(
    files: &[PathBuf],
    boundaries: &[PathBuf],
    catalog: &Catalog,
    unsaved: Option<(&Path, &str)>,
) -> Vec<CaseRun> {
    let unsaved = unsaved.map(|(p, t)| (std::path::absolute(p).unwrap_or_else(|_| p.into()), t));
    // First, in order and once per folder: each case's chain of suites.
    let mut suites: HashMap<PathBuf, Result<Arc<Suite>, Vec<Diagnostic>>> = HashMap::new();
    let prepared: Vec<(PathBuf, Vec<Arc<Suite>>, Vec<Diagnostic>)> = files
        .iter()
        .map(|file| {
            let abs = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
            let boundary = boundaries
                .iter()
                .filter(|b| abs.starts_with(b))
                .min_by_key(|b| b.components().count())
                .cloned()
                .unwrap_or_else(|| dir.clone());
            // Suites from the boundary down to the case's folder.
            let mut chain = Vec::new();
            let mut suite_errors = Vec::new();
            let mut d = dir.clone();
            let mut dirs = vec![d.clone()];
            while d != boundary && d.pop() && d.starts_with(&boundary) {
                dirs.push(d.clone());
            }
            dirs.reverse();
            for sdir in dirs {
                let sfile = sdir.join("suite.json");
                if !sfile.is_file() {
                    continue;
                }
                let entry = suites
                    .entry(sfile.clone())
                    .or_insert_with(|| load_suite(&sfile, &sdir, catalog));
                match entry {
                    Ok(s) => chain.push(s.clone()),
                    Err(diags) => suite_errors.extend(diags.iter().cloned()),
                }
            }
            (abs, chain, suite_errors)
        })
        .collect();
    // Then the case files themselves, on all cores (reading, parsing and
    // compiling one file needs nothing of another); runs keep file order.
    use rayon::prelude::*;
    let per_file: Vec<Vec<CaseRun>> = prepared
        .into_par_iter()
        .map(|(abs, chain, suite_errors)| {
            let text = unsaved.as_ref().filter(|(p, _)| *p == abs).map(|(_, t)| *t);
            load_case_file(&abs, chain, suite_errors, text, catalog)
        })
        .collect();
    per_file.into_iter().flatten().collect()
}

/// One case file's runs (a broken case is one run that reports its errors).
fn load_case_file(
    abs: &Path,
    chain: Vec<Arc<Suite>>,
    suite_errors: Vec<Diagnostic>,
    unsaved: Option<&str>,
    catalog: &Catalog,
) -> Vec<CaseRun> {
    let shown = display_path(abs);
    let shown_str = shown.to_string_lossy().to_string();
    let broken = |errors: Vec<Diagnostic>, tags: Vec<String>| CaseRun {
        case: Err(Arc::new(BrokenCase {
            file: shown_str.clone(),
            tags,
            errors,
        })),
        name: abs
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_end_matches(".case.json")
                    .to_string()
            })
            .unwrap_or_default(),
        row: None,
    };
    let fields::JsonFile {
        text, value, pos, ..
    } = match unsaved.map_or_else(
        || fields::read(abs, "the case file"),
        |t| fields::parse(abs, t.to_string()),
    ) {
        Ok(f) => f,
        Err(d) => return vec![broken(vec![d], Vec::new())],
    };
    let mut src = Src::new(&shown, &text, pos);
    let case = case::case(&mut src, &value, abs, &shown_str, catalog, chain);
    let mut errors = suite_errors;
    errors.extend(src.diags);
    match case {
        Some(c) if errors.is_empty() => expand(Arc::new(c)),
        Some(c) => {
            let mut run = broken(errors, c.tags.clone());
            run.name = c.name.clone();
            vec![run]
        }
        None => vec![broken(errors, Vec::new())],
    }
}

fn load_suite(path: &Path, dir: &Path, catalog: &Catalog) -> Result<Arc<Suite>, Vec<Diagnostic>> {
    let fields::JsonFile {
        shown,
        text,
        value,
        pos,
    } = fields::read(path, "the suite file").map_err(|d| vec![d])?;
    let mut src = Src::new(&shown, &text, pos);
    let suite = case::suite(&mut src, &value, dir, &shown.to_string_lossy(), catalog);
    match suite {
        Some(s) if src.diags.is_empty() => Ok(Arc::new(s)),
        _ => Err(src.diags),
    }
}

/// A case's runs: itself, or one per data row.
pub fn expand(case: Arc<Case>) -> Vec<CaseRun> {
    let Some(rows) = &case.data else {
        let name = name_for(&case, None);
        return vec![CaseRun {
            case: Ok(case),
            name,
            row: None,
        }];
    };
    rows.iter()
        .enumerate()
        .map(|(i, row)| CaseRun {
            name: name_for(&case, Some((i, row))),
            case: Ok(case.clone()),
            row: Some((i, row.clone())),
        })
        .collect()
}

struct NameScope<'a> {
    row: Option<&'a Map<String, Value>>,
    vars: &'a Map<String, Value>,
}

impl crate::resolve::Lookup for NameScope<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        self.row
            .and_then(|r| r.get(name))
            .or_else(|| self.vars.get(name))
            .cloned()
    }
    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.vars.keys().cloned().collect();
        if let Some(r) = self.row {
            n.extend(r.keys().cloned());
        }
        n
    }
}

fn name_for(case: &Case, row: Option<(usize, &Map<String, Value>)>) -> String {
    if case.name.contains("${") {
        let scope = NameScope {
            row: row.map(|(_, r)| r),
            vars: &case.vars,
        };
        let dir = case.path.parent().unwrap_or(Path::new("."));
        let r = crate::resolve::Resolver {
            lookup: &scope,
            base_dir: dir,
        };
        if let Ok(v) = crate::resolve::resolve_str(&case.name, &r) {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !text.contains("${") {
                return text;
            }
        }
    }
    match row {
        Some((i, _)) => format!("{}[{i}]", case.name),
        None => case.name.clone(),
    }
}
