//! The plugin host of a run: finds plugin files in the plugin folders,
//! loads each (skipping with a warning what is not a usable plugin), and
//! gathers their keywords, refusing a keyword name that two plugin files
//! define. [`PluginOptions`] says where plugins run: in plugin-host
//! processes (what `atf` does) or inside this process.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use atf_sdk::{Keyword, KeywordSpec};

use super::file::{CopyDir, Mode, PluginFile, Warnings};
use super::keyword::PluginKeyword;
use super::process::HostCommand;

/// Where plugins run.
#[derive(Debug, Clone, Default)]
pub struct PluginOptions {
    /// How to start a plugin-host process. `None` loads every plugin into
    /// this process, as embedders and tests of the host may want.
    pub host: Option<HostCommand>,
    /// Plugin files, or folders of them, that load into this process even
    /// with a host command (the project's `"in_process": true`); their
    /// manifests are still read in a host process first.
    pub in_process: Vec<PathBuf>,
}

impl PluginOptions {
    /// What `atf` uses: every plugin in host processes of this binary,
    /// except those in `in_process`.
    pub fn isolated(in_process: Vec<PathBuf>) -> std::io::Result<PluginOptions> {
        Ok(PluginOptions {
            host: Some(HostCommand::current_exe()?),
            in_process,
        })
    }

    /// How the plugin file `path` runs.
    fn mode(&self, path: &Path) -> Mode {
        let Some(command) = &self.host else {
            return Mode::InProcess(None);
        };
        let key = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let file = key(path);
        let folder = file.parent().map(Path::to_path_buf);
        let opted = self.in_process.iter().any(|entry| {
            let entry = key(entry);
            entry == file || Some(&entry) == folder.as_ref()
        });
        if opted {
            Mode::InProcess(Some(command.clone()))
        } else {
            Mode::Isolated(command.clone())
        }
    }
}

/// The plugins of a run.
#[derive(Default)]
pub struct PluginHost {
    files: Vec<Arc<PluginFile>>,
    keywords: Vec<Arc<dyn Keyword>>,
    origins: HashMap<String, usize>,
    warnings: Warnings,
}

/// What loading plugins found.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Files skipped with a reason (not a plugin, wrong ABI version).
    pub warnings: Vec<String>,
    /// Problems that make the run impossible (a keyword defined twice).
    pub errors: Vec<String>,
}

/// One loaded plugin file, for `atf keywords` and diagnostics.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The plugin file, as found in its folder.
    pub path: PathBuf,
    /// The namespace of its keywords.
    pub namespace: String,
    /// The plugin's name (its crate name for Rust plugins).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The atf-sdk version it was built with.
    pub sdk_version: String,
    /// Its keywords, as the version in use describes them.
    pub keywords: Vec<KeywordSpec>,
    /// How many versions of the file were loaded (1 until it is rebuilt).
    pub loads: u64,
    /// How many versions are in memory now: the one in use, plus older
    /// ones that running calls still use.
    pub live_versions: usize,
    /// Whether its calls run in plugin-host processes (else inside atf).
    pub isolated: bool,
}

impl PluginHost {
    /// Loads every plugin library in `dirs` into this process: see
    /// [`PluginHost::load_with`].
    pub fn load(dirs: &[PathBuf]) -> (PluginHost, LoadOutcome) {
        PluginHost::load_with(dirs, &PluginOptions::default())
    }

    /// Loads every plugin library in `dirs`: the files named `*.so`
    /// (`*.dylib` on macOS, `*.dll` on Windows) directly in each folder,
    /// or an entry that is such a file itself. Missing folders are ignored;
    /// a file that is not a usable plugin — or whose host process crashes
    /// while loading it — is skipped with a warning; a keyword name defined
    /// by two files is an error naming both (the first file keeps it).
    pub fn load_with(dirs: &[PathBuf], options: &PluginOptions) -> (PluginHost, LoadOutcome) {
        let mut outcome = LoadOutcome::default();
        let mut host = PluginHost::default();
        let paths = discover(dirs, &mut outcome.warnings);
        if paths.is_empty() {
            return (host, outcome);
        }
        let dir = match CopyDir::create() {
            Ok(dir) => Arc::new(dir),
            Err(e) => {
                outcome
                    .errors
                    .push(format!("cannot make a folder for the plugins' copies: {e}"));
                return (host, outcome);
            }
        };
        for path in paths {
            let mode = options.mode(&path);
            let file =
                match PluginFile::open(path.clone(), dir.clone(), host.warnings.clone(), mode) {
                    Ok(file) => Arc::new(file),
                    Err(e) => {
                        outcome
                            .warnings
                            .push(format!("skipped {}: {e}", path.display()));
                        continue;
                    }
                };
            let index = host.files.len();
            for spec in file.loaded().lib.manifest().keywords.clone() {
                if let Some(&first) = host.origins.get(&spec.name) {
                    outcome.errors.push(format!(
                        "the keyword `{}` is defined by two plugin files: {} and {}",
                        spec.name,
                        host.files[first].source().display(),
                        path.display()
                    ));
                    continue;
                }
                let name = spec.name.clone();
                if let Some(keyword) = PluginKeyword::new(spec, file.clone()) {
                    host.origins.insert(name, index);
                    host.keywords.push(Arc::new(keyword));
                }
            }
            host.files.push(file);
        }
        (host, outcome)
    }

    /// The keywords of all loaded plugins.
    pub fn keywords(&self) -> Vec<Arc<dyn Keyword>> {
        self.keywords.clone()
    }

    /// The plugin file that defines the keyword `name`, if a plugin does.
    pub fn origin(&self, name: &str) -> Option<&Path> {
        self.origins.get(name).map(|&i| self.files[i].source())
    }

    /// The loaded plugin files, in load order.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.files
            .iter()
            .map(|file| {
                let loaded = file.loaded();
                let m = loaded.lib.manifest();
                PluginInfo {
                    path: file.source().to_path_buf(),
                    namespace: m.namespace.clone(),
                    name: m.plugin.name.clone(),
                    version: m.plugin.version.clone(),
                    sdk_version: m.sdk_version.clone(),
                    keywords: m.keywords.clone(),
                    loads: file.loads(),
                    live_versions: file.live_versions(),
                    isolated: file.isolated(),
                }
            })
            .collect()
    }

    /// The warnings raised since the last call (a plugin file rebuilt into
    /// something that cannot be loaded, or deleted, while the run went on).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The plugin files directly in `dirs` (or named by them), each folder's
/// sorted by name, each file once even when two entries lead to it.
fn discover(dirs: &[PathBuf], warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for dir in dirs {
        if dir.is_file() {
            let key = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if seen.insert(key) {
                found.push(dir.clone());
            }
            continue;
        }
        let paths = match crate::walk::files(dir, crate::walk::Depth::Flat, |path| {
            path.extension()
                .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION)
        }) {
            Ok(paths) => paths,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push(format!("cannot read plugin folder {}: {e}", dir.display()));
                continue;
            }
        };
        for path in paths {
            let key = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                found.push(path);
            }
        }
    }
    found
}
