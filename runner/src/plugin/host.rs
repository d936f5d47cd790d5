//! The plugin host of a run: finds plugin files in the plugin folders,
//! loads each (skipping with a warning what is not a usable plugin), and
//! gathers their keywords, refusing a keyword name that two plugin files
//! define.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use atf_sdk::{Keyword, KeywordSpec};

use super::file::{CopyDir, PluginFile, Warnings};
use super::keyword::PluginKeyword;

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
}

impl PluginHost {
    /// Loads every plugin library in `dirs`: the files named `*.so`
    /// (`*.dylib` on macOS, `*.dll` on Windows) directly in each folder.
    /// Missing folders are ignored; a file that is not a usable plugin is
    /// skipped with a warning; a keyword name defined by two files is an
    /// error naming both (the first file keeps it).
    pub fn load(dirs: &[PathBuf]) -> (PluginHost, LoadOutcome) {
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
            let file = match PluginFile::open(path.clone(), dir.clone(), host.warnings.clone()) {
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

/// The plugin files directly in `dirs`, each folder's sorted by name, each
/// file once even when two folders lead to it.
fn discover(dirs: &[PathBuf], warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                warnings.push(format!("cannot read plugin folder {}: {e}", dir.display()));
                continue;
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION)
                    && path.is_file()
            })
            .collect();
        paths.sort();
        for path in paths {
            let key = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                found.push(path);
            }
        }
    }
    found
}
