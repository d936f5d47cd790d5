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
    /// `load.thresholds`: thresholds of `atf load` in this environment.
    pub load_thresholds: Vec<String>,
}

/// What the project lets case files do (`allow` of the project file).
#[derive(Debug, Clone)]
pub struct Allow {
    /// Whether the `exec` keyword may run programs (default true).
    pub exec: bool,
    /// Folders besides the project's own (and the paths given to atf)
    /// that `file(...)` and other file arguments may read, absolute.
    pub paths: Vec<PathBuf>,
}

impl Default for Allow {
    fn default() -> Allow {
        Allow {
            exec: true,
            paths: Vec::new(),
        }
    }
}

/// Size caps (`limits` of the project file), in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A response body (or a program's output) kept in memory; a larger
    /// body goes to a file in the report folder.
    pub body: usize,
    /// A value built by placeholders.
    pub value: usize,
    /// A file read by `file(...)`.
    pub file: usize,
}

/// 16 MiB: the default of every size cap.
pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            body: DEFAULT_LIMIT,
            value: DEFAULT_LIMIT,
            file: DEFAULT_LIMIT,
        }
    }
}

/// Parses a size: a number of bytes, or text such as `"64KiB"`, `"16MB"`,
/// `"1G"` (K, M, G count in 1024s, with or without `B`/`iB`).
pub fn parse_size(v: &Value) -> Result<usize, String> {
    let bad = || {
        format!(
            "a size is a number of bytes or text such as \"64KiB\", \"16MiB\", \"1GiB\", found {v}"
        )
    };
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let num: usize = num.parse().map_err(|_| bad())?;
            let unit = unit.trim().to_ascii_lowercase();
            let unit = unit
                .strip_suffix("ib")
                .or_else(|| unit.strip_suffix('b'))
                .unwrap_or(&unit);
            let factor: usize = match unit {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                _ => return Err(bad()),
            };
            num.checked_mul(factor).filter(|n| *n > 0).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
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
    /// Plugin folders (or files), absolute.
    pub plugins: Vec<PathBuf>,
    /// The plugin folders or files whose plugins load into atf itself
    /// (`{"path": ..., "in_process": true}`), absolute.
    pub in_process_plugins: Vec<PathBuf>,
    /// What case files may do.
    pub allow: Allow,
    /// Size caps.
    pub limits: Limits,
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
            in_process_plugins: Vec::new(),
            allow: Allow::default(),
            limits: Limits::default(),
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
        let JsonFile {
            shown,
            text,
            value,
            pos,
        } = read(path, "the project file").map_err(|d| vec![d])?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let root = std::path::absolute(&root).unwrap_or(root);
        let mut src = Src::new(&shown, &text, pos);
        let mut p = Project::empty(root.clone());
        p.path = Some(path.to_path_buf());
        let Some(obj) = src.object(&value, "", "the project file") else {
            return Err(src.diags);
        };
        src.known_fields(obj, "", &crate::format::PROJECT, "the project file");
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
            src.known_fields(t, "/timeouts", &crate::format::TIMEOUTS, "`timeouts`");
            if let Some(d) = src.opt_duration(t, "/timeouts", "step") {
                p.step_timeout = d;
            }
            if let Some(d) = src.opt_duration(t, "/timeouts", "case") {
                p.case_timeout = d;
            }
        }
        plugins(&mut src, obj, &root, &mut p);
        if let Some(a) = obj.get("allow")
            && let Some(a) = src.object(a, "/allow", "`allow`")
        {
            src.known_fields(a, "/allow", &crate::format::ALLOW, "`allow`");
            match a.get("exec") {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => p.allow.exec = *b,
                Some(other) => src.error(
                    "/allow/exec",
                    format!("`exec` must be true or false, found {}", kind(other)),
                ),
            }
            p.allow.paths = src
                .str_list(a, "/allow", "paths")
                .into_iter()
                .map(|d| root.join(d))
                .collect();
        }
        if let Some(l) = obj.get("limits")
            && let Some(l) = src.object(l, "/limits", "`limits`")
        {
            src.known_fields(l, "/limits", &crate::format::LIMITS, "`limits`");
            for (field, slot) in [
                ("body", &mut p.limits.body),
                ("value", &mut p.limits.value),
                ("file", &mut p.limits.file),
            ] {
                match l.get(field).map(parse_size) {
                    None => {}
                    Some(Ok(n)) => *slot = n,
                    Some(Err(e)) => src.error(&child("/limits", field), format!("`{field}`: {e}")),
                }
            }
        }
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
                &crate::format::ENV,
                &format!("environment `{name}`"),
            );
            let mut cfg = EnvConfig {
                vars: src.opt_object(e, &ptr, "vars"),
                exclude_tags: src.str_list(e, &ptr, "exclude_tags"),
                resources: src.opt_object(e, &ptr, "resources"),
                load_thresholds: Vec::new(),
            };
            if let Some(l) = e.get("load") {
                let lptr = child(&ptr, "load");
                if let Some(l) = src.object(l, &lptr, "`load`") {
                    src.known_fields(l, &lptr, &crate::format::LOAD, "`load`");
                    cfg.load_thresholds = src.str_list(l, &lptr, "thresholds");
                    for (i, t) in cfg.load_thresholds.iter().enumerate() {
                        if let Err(e) = t.parse::<crate::loadtest::threshold::Threshold>() {
                            src.error(&format!("{lptr}/thresholds/{i}"), e);
                        }
                    }
                }
            }
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

/// Reads `plugins`: folders (or plugin files) as text, or objects
/// `{"path": ..., "in_process": true}` for plugins that load into atf.
fn plugins(src: &mut Src<'_>, obj: &Map<String, Value>, root: &Path, p: &mut Project) {
    let items = match obj.get("plugins") {
        None | Some(Value::Null) => return,
        Some(Value::Array(items)) => items,
        Some(other) => {
            src.error(
                "/plugins",
                format!("`plugins` must be a list of folders, found {}", kind(other)),
            );
            return;
        }
    };
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("/plugins/{i}");
        match item {
            Value::String(dir) => p.plugins.push(root.join(dir)),
            Value::Object(entry) => {
                src.known_fields(entry, &ptr, &crate::format::PLUGIN, "a plugin entry");
                let Some(path) = src.opt_str(entry, &ptr, "path") else {
                    src.error(&ptr, "a plugin entry needs `path`: a folder or a plugin file");
                    continue;
                };
                let path = root.join(path);
                match entry.get("in_process") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                    Some(Value::Bool(true)) => p.in_process_plugins.push(path.clone()),
                    Some(other) => src.error(
                        &child(&ptr, "in_process"),
                        format!("`in_process` must be true or false, found {}", kind(other)),
                    ),
                }
                p.plugins.push(path);
            }
            other => src.error(
                &ptr,
                format!(
                    "a plugin entry is a folder or {{\"path\": ..., \"in_process\": true}}, found {}",
                    kind(other)
                ),
            ),
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

impl RunConfig {
    /// The folders that `file(...)` and other file arguments may read: the
    /// project's folder (the working directory when there is no project
    /// file), the folders given on the command line (a case file's own
    /// folder), and the project's `allow.paths`.
    pub fn file_roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.project.root.clone()];
        for p in &self.paths {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            if abs.is_dir() {
                roots.push(abs);
            } else if let Some(parent) = abs.parent() {
                roots.push(parent.to_path_buf());
            }
        }
        roots.extend(self.project.allow.paths.iter().cloned());
        roots
    }
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
    fn sizes_parse() {
        assert_eq!(parse_size(&json!(100)), Ok(100));
        assert_eq!(parse_size(&json!("64KiB")), Ok(64 * 1024));
        assert_eq!(parse_size(&json!("16MB")), Ok(16 << 20));
        assert_eq!(parse_size(&json!("1g")), Ok(1 << 30));
        assert_eq!(parse_size(&json!(" 2 M ")), Ok(2 << 20));
        for bad in [
            json!(0),
            json!(-1),
            json!("lots"),
            json!("5TB"),
            json!(true),
            json!(""),
        ] {
            assert!(parse_size(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plugins_allow_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atf.json");
        std::fs::write(
            &path,
            r#"{"plugins": ["plugins", {"path": "fast", "in_process": true}, {"path": "x.so"}],
                "allow": {"exec": false, "paths": ["../shared"]},
                "limits": {"body": "1MiB", "value": 4096}}"#,
        )
        .unwrap();
        let p = Project::load(&path).unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            p.plugins,
            [root.join("plugins"), root.join("fast"), root.join("x.so")]
        );
        assert_eq!(p.in_process_plugins, [root.join("fast")]);
        assert!(!p.allow.exec);
        assert_eq!(p.allow.paths, [root.join("../shared")]);
        assert_eq!(p.limits.body, 1 << 20);
        assert_eq!(p.limits.value, 4096);
        assert_eq!(p.limits.file, DEFAULT_LIMIT);

        std::fs::write(
            &path,
            r#"{"plugins": [{"in_process": 1}], "allow": {"exec": "no"}, "limits": {"body": "big"}}"#,
        )
        .unwrap();
        let errs: Vec<String> = Project::load(&path)
            .unwrap_err()
            .iter()
            .map(|d| d.one_line())
            .collect();
        let all = errs.join("\n");
        for needle in [
            "needs `path`",
            "`exec` must be true or false",
            "`body`: a size is",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
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
