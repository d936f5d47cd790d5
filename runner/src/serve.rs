//! What `atf serve` needs from the runner ([`atf_server::Host`]): the
//! cases of the project, `atf check` on one file, and the `atf run`
//! command of a run. The server itself lives in the `atf-server` crate.

use std::path::{Path, PathBuf};
use std::process::Command;

use atf_server::{CaseEntry, Diagnostic, Host, RunRequest};
use serde_json::Value;

use crate::cli::{CommonArgs, load_for, load_for_with};

/// The runner's side of the server, for the project at `root` (the
/// working directory of the server process).
pub struct RunnerHost {
    /// The project folder.
    pub root: PathBuf,
}

const NOT_LOADED: &str = "the project could not be loaded: see the server's output";

fn slashes(p: &str) -> String {
    p.replace('\\', "/")
}

/// `file:line:col`, `file:line` or `file` split into its parts.
fn split_location(loc: &str) -> (String, Option<usize>, Option<usize>) {
    let mut parts: Vec<&str> = loc.rsplitn(3, ':').collect();
    parts.reverse();
    let num = |s: &str| s.parse::<usize>().ok();
    match parts.as_slice() {
        [f, l, c] if num(l).is_some() && num(c).is_some() => (f.to_string(), num(l), num(c)),
        [f, l, c] if num(c).is_some() => (format!("{f}:{l}"), num(c), None),
        [f, l] if num(l).is_some() => (f.to_string(), num(l), None),
        _ => (loc.to_string(), None, None),
    }
}

impl RunnerHost {
    /// `atf check` on case file `file`, its text read from disk or given.
    fn diagnostics(&self, file: &str, text: Option<&str>) -> Vec<Diagnostic> {
        let path = self.root.join(file);
        let args = CommonArgs::for_paths(vec![path.clone()]);
        let (cfg, runs) = match load_for_with(&args, text.map(|t| (path.as_path(), t))) {
            Ok(x) => x,
            Err(_) => {
                return vec![Diagnostic {
                    file: file.to_string(),
                    line: None,
                    column: None,
                    message: NOT_LOADED.into(),
                    hint: None,
                }];
            }
        };
        let mut out = Vec::new();
        // Load errors carry their position; the placeholder findings a line.
        for r in &runs {
            if let Err(broken) = &r.case {
                for d in &broken.errors {
                    if out.iter().any(|o: &Diagnostic| {
                        o.message == d.message && o.line == d.pos.map(|p| p.line)
                    }) {
                        continue;
                    }
                    out.push(Diagnostic {
                        file: slashes(&crate::diag::display_path(&d.file).display().to_string()),
                        line: d.pos.map(|p| p.line),
                        column: d.pos.map(|p| p.col),
                        message: d.message.clone(),
                        hint: d.hint.clone(),
                    });
                }
            }
        }
        for f in crate::check::check(&cfg, &runs) {
            if f.rendered.is_some() {
                continue;
            }
            let (path, line, column) = split_location(&f.location);
            out.push(Diagnostic {
                file: slashes(&path),
                line,
                column,
                message: f.message,
                hint: None,
            });
        }
        out
    }
}

impl Host for RunnerHost {
    fn cases(&self) -> Result<Vec<CaseEntry>, String> {
        let args = CommonArgs::for_paths(vec![self.root.clone()]);
        let (_, runs) = load_for(&args).map_err(|_| NOT_LOADED.to_string())?;
        Ok(runs
            .iter()
            .map(|r| CaseEntry {
                path: slashes(r.file()),
                name: r.name.clone(),
                tags: r.tags().to_vec(),
                broken: r.case.is_err(),
            })
            .collect())
    }

    fn check(&self, file: &str) -> Vec<Diagnostic> {
        self.diagnostics(file, None)
    }

    fn check_text(&self, file: &str, text: &str) -> Vec<Diagnostic> {
        self.diagnostics(file, Some(text))
    }

    fn case_schema(&self) -> Result<Value, String> {
        let catalog =
            crate::cli::project_catalog(&self.root).map_err(|_| NOT_LOADED.to_string())?;
        Ok(crate::schema::case_schema(&catalog))
    }

    fn keywords(&self) -> Result<Value, String> {
        let catalog =
            crate::cli::project_catalog(&self.root).map_err(|_| NOT_LOADED.to_string())?;
        let specs: Vec<&atf_sdk::KeywordSpec> = catalog.specs().collect();
        serde_json::to_value(specs).map_err(|e| e.to_string())
    }

    fn run_command(&self, req: &RunRequest, report_dir: &Path) -> Command {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("atf"));
        let mut cmd = Command::new(exe);
        cmd.current_dir(&self.root).arg("run");
        for p in &req.paths {
            cmd.arg(p);
        }
        cmd.arg("--report-dir").arg(report_dir);
        if let Some(env) = &req.env {
            cmd.arg("--env").arg(env);
        }
        if let Some(tags) = &req.tags {
            cmd.arg("--tags").arg(tags);
        }
        for dim in &req.matrix {
            // One argument: a value starting with `-` stays a value.
            cmd.arg(format!("--matrix={dim}"));
        }
        for (name, value) in &req.vars {
            let text = match value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            cmd.arg("--var").arg(format!("{name}={text}"));
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::split_location;

    #[test]
    fn locations_split_into_file_line_and_column() {
        assert_eq!(
            split_location("a/b.case.json:3:7"),
            ("a/b.case.json".into(), Some(3), Some(7))
        );
        assert_eq!(
            split_location("a.case.json:12"),
            ("a.case.json".into(), Some(12), None)
        );
        assert_eq!(
            split_location("a.case.json"),
            ("a.case.json".into(), None, None)
        );
    }
}
