//! The project file `atf.json` and the settings of one run.
//!
//! [`Project`] is the file as written; [`RunConfig`] merges it with the
//! command line (the engine sees only `RunConfig`). A missing project file
//! means defaults: no environments, local services, 30 s steps, 5 min cases.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::diag::{Diagnostic, display_path};
use crate::load::fields::{JsonFile, Src, child, kind, read};

/// Default step timeout.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default case timeout.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// One environment of the project file.
#[derive(Debug, Clone, Default)]
pub struct EnvConfig {
    /// Vars, placeholders unresolved (they may use `${env.X}` and earlier vars).
    pub vars: Map<String, Value>,
    /// Cases with any of these tags are not selected.
    pub exclude_tags: Vec<String>,
    /// kind → name → settings.
    pub resources: Map<String, Value>,
}

/// The project file.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file, when there is one.
    pub path: Option<PathBuf>,
    /// Its folder (the working directory when there is no file).
    pub root: PathBuf,
    /// Environment used without `--env`.
    pub default_env: Option<String>,
    /// Cases run at once.
    pub jobs: Option<usize>,
    /// Default step timeout.
    pub step_timeout: Duration,
    /// Default case timeout.
    pub case_timeout: Duration,
    /// Plugin folders, absolute.
    pub plugins: Vec<PathBuf>,
    /// Names of variables whose values are secret.
    pub secrets: Vec<String>,
    /// Environments by name.
    pub envs: Map<String, Value>,
    /// The feature-flag matrix (`matrix`).
    pub matrix: crate::matrix::Matrix,
    /// Where Allure results go (`allure`), absolute.
    pub allure: Option<PathBuf>,
    parsed_envs: Vec<(String, EnvConfig)>,
}

impl Project {
    /// A project with no file.
    pub fn empty(root: PathBuf) -> Project {
        Project {
            path: None,
            root,
            default_env: None,
            jobs: None,
            step_timeout: DEFAULT_STEP_TIMEOUT,
            case_timeout: DEFAULT_CASE_TIMEOUT,
            plugins: Vec::new(),
            secrets: Vec::new(),
            envs: Map::new(),
            matrix: crate::matrix::Matrix::default(),
            allure: None,
            parsed_envs: Vec::new(),
        }
    }

    /// Finds `atf.json` walking up from `start` (a file or folder).
    pub fn find(start: &Path) -> Option<PathBuf> {
        let start = std::path::absolute(start).ok()?;
        let mut dir = if start.is_dir() {
            start
        } else {
            start.parent()?.to_path_buf()
        };
        loop {
            let candidate = dir.join("atf.json");
            if candidate.is_file() {
                return Some(candidate);
            }
            if !dir.pop() {
                return None;
            }
        }
    }

    /// Loads a project file; every problem is a diagnostic.
    pub fn load(path: &Path) -> Result<Project, Vec<Diagnostic>> {
        let JsonFile { shown, text, value } =
            read(path, "the project file").map_err(|d| vec![d])?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let root = std::path::absolute(&root).unwrap_or(root);
        let mut src = Src::new(&shown, &text);
        let mut p = Project::empty(root.clone());
        p.path = Some(path.to_path_buf());
        let Some(obj) = src.object(&value, "", "the project file") else {
            return Err(src.diags);
        };
        src.known_fields(
            obj,
            "",
            &[
                "$schema",
                "default_env",
                "jobs",
                "timeouts",
                "plugins",
                "secrets",
                "envs",
                "matrix",
                "allure",
            ],
            "the project file",
        );
        p.default_env = src.opt_str(obj, "", "default_env");
        match obj.get("jobs") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|j| j > 0) => {
                p.jobs = n.as_u64().map(|j| j as usize)
            }
            Some(other) => src.error(
                "/jobs",
                format!("`jobs` must be a whole number above 0, found {other}"),
            ),
        }
        if let Some(t) = obj.get("timeouts")
            && let Some(t) = src.object(t, "/timeouts", "`timeouts`")
        {
            src.known_fields(t, "/timeouts", &["step", "case"], "`timeouts`");
            if let Some(d) = src.opt_duration(t, "/timeouts", "step") {
                p.step_timeout = d;
            }
            if let Some(d) = src.opt_duration(t, "/timeouts", "case") {
                p.case_timeout = d;
            }
        }
        p.plugins = src
            .str_list(obj, "", "plugins")
            .into_iter()
            .map(|d| root.join(d))
            .collect();
        p.secrets = src.str_list(obj, "", "secrets");
        p.matrix = crate::matrix::project_field(&mut src, obj);
        p.allure = src.opt_str(obj, "", "allure").map(|d| root.join(d));
        let envs = src.opt_object(obj, "", "envs");
        for (name, env) in &envs {
            let ptr = child("/envs", name);
            let Some(e) = src.object(env, &ptr, &format!("environment `{name}`")) else {
                continue;
            };
            src.known_fields(
                e,
                &ptr,
                &["vars", "exclude_tags", "resources"],
                &format!("environment `{name}`"),
            );
            let mut cfg = EnvConfig {
                vars: src.opt_object(e, &ptr, "vars"),
                exclude_tags: src.str_list(e, &ptr, "exclude_tags"),
                resources: src.opt_object(e, &ptr, "resources"),
            };
            let rptr = child(&ptr, "resources");
            for (kind_name, list) in cfg.resources.iter_mut() {
                let kptr = child(&rptr, kind_name);
                if !matches!(list, Value::Object(_)) {
                    src.error(
                        &kptr,
                        format!("resources of kind `{kind_name}` must be an object of name → settings, found {}", kind(list)),
                    );
                }
            }
            p.parsed_envs.push((name.clone(), cfg));
        }
        if let Some(d) = &p.default_env
            && !envs.contains_key(d)
        {
            let hint = crate::diag::did_you_mean(d, envs.keys().map(String::as_str));
            src.error_hint(
                "/default_env",
                format!("`default_env` names `{d}`, which is not in `envs`"),
                hint,
            );
        }
        p.envs = envs;
        if src.diags.is_empty() {
            Ok(p)
        } else {
            Err(src.diags)
        }
    }

    /// The environment `name`, or an error listing the known ones.
    pub fn env(&self, name: Option<&str>) -> Result<(Option<String>, EnvConfig), String> {
        let Some(name) = name.or(self.default_env.as_deref()) else {
            return Ok((None, EnvConfig::default()));
        };
        match self.parsed_envs.iter().find(|(n, _)| n == name) {
            Some((n, cfg)) => Ok((Some(n.clone()), cfg.clone())),
            None => {
                let known: Vec<&str> = self.parsed_envs.iter().map(|(n, _)| n.as_str()).collect();
                Err(format!(
                    "no environment `{name}` in {} (known: {})",
                    self.path
                        .as_ref()
                        .map(|p| display_path(p).display().to_string())
                        .unwrap_or_else(|| "the project (there is no atf.json)".into()),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            }
        }
    }
}

/// `--shard K/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, from 1.
    pub index: usize,
    /// How many slices.
    pub total: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write K/N with 1 ≤ K ≤ N, e.g. 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let total: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || total == 0 || index > total {
            return Err(bad());
        }
        Ok(Shard { index, total })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.total)
    }
}

/// Case selection: the same for `run`, `list` and `check`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--tags` expression.
    pub tags: Option<String>,
    /// `--filter` globs on case names.
    pub filters: Vec<String>,
    /// `--shard K/N`.
    pub shard: Option<Shard>,
    /// Tags excluded by the environment.
    pub exclude_tags: Vec<String>,
    /// Only these (file, name) pairs (`--rerun-failed`).
    pub only: Option<Vec<(String, String)>>,
    /// Case durations of an earlier report that balance the shards (`--durations`).
    pub durations: Option<crate::shard::Durations>,
}

/// Everything one run needs, merged from the project file and the command line.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The project.
    pub project: Project,
    /// The selected environment's name.
    pub env_name: Option<String>,
    /// The selected environment.
    pub env: EnvConfig,
    /// Paths to run.
    pub paths: Vec<PathBuf>,
    /// Cases at once.
    pub jobs: usize,
    /// `--var` overrides.
    pub overrides: Map<String, Value>,
    /// Where reports go.
    pub report_dir: PathBuf,
    /// Stop starting cases after the first failure.
    pub fail_fast: bool,
    /// Plugin folders: project, `ATF_PLUGIN_PATH`, `--plugins`.
    pub plugin_dirs: Vec<PathBuf>,
    /// Which cases.
    pub selection: Selection,
    /// Retries and repetitions of cases (`--retries`, `--repeat-each`, `--until-fail`).
    pub repeat: crate::exec::repeat::RepeatPolicy,
    /// A flaky case fails the run (`--fail-on-flaky`).
    pub fail_on_flaky: bool,
    /// The feature-flag matrix: the project's, overlaid by the command line.
    pub matrix: crate::matrix::Matrix,
    /// Where Allure results go (`--allure`, else the project's `allure`).
    pub allure: Option<PathBuf>,
}

/// Parses a `--var NAME=VALUE`: the value is JSON when it reads as a number,
/// boolean, null, list or object, else text.
pub fn parse_var(s: &str) -> Result<(String, Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{s}` has no name before `=`"));
    }
    let parsed = match serde_json::from_str::<Value>(value) {
        Ok(
            v @ (Value::Number(_)
            | Value::Bool(_)
            | Value::Null
            | Value::Array(_)
            | Value::Object(_)),
        ) => v,
        _ => Value::String(value.to_string()),
    };
    Ok((name.to_string(), parsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shards_parse() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, total: 4 }));
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn vars_parse() {
        assert_eq!(parse_var("qty=3"), Ok(("qty".into(), json!(3))));
        assert_eq!(parse_var("sku=A-1"), Ok(("sku".into(), json!("A-1"))));
        assert_eq!(parse_var("on=true"), Ok(("on".into(), json!(true))));
        assert_eq!(parse_var("s=a=b"), Ok(("s".into(), json!("a=b"))));
        assert!(parse_var("novalue").is_err());
    }

    #[test]
    fn project_errors_point_at_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atf.json");
        std::fs::write(&path, "{\n  \"jobs\": 0,\n  \"envz\": {}\n}").unwrap();
        let errs = Project::load(&path).unwrap_err();
        let text: Vec<String> = errs.iter().map(|d| d.one_line()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains(":3:3: unknown field `envz`")
                    && t.contains("did you mean `envs`")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains(":2:11: `jobs` must be")),
            "{text:?}"
        );
    }
}
