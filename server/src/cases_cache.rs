//! The case list, loaded once and kept while the project's files stay as
//! they are: loading 2,000 case files on every page would be slow.
//!
//! The key is a fingerprint of the project: the modification time of
//! every folder (a file added, removed or renamed — the editor saves by
//! renaming — changes it) and the time and size of every file that can
//! hold cases or their data (`*.json`, `*.csv`, `*.yaml`, `*.yml`), hidden
//! folders, `node_modules` and `target` left out. Taking it is a `stat`
//! per file, far cheaper than loading the cases. The server loads the
//! list once as it starts, so the first visitor does not wait for it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::CaseEntry;

/// The cached case list.
#[derive(Default)]
pub struct CasesCache {
    cached: Mutex<Option<(u64, Arc<Vec<CaseEntry>>)>>,
    /// Held while the list loads: requests that come meanwhile wait for
    /// that load instead of starting their own.
    loading: Mutex<()>,
}

const DATA: &[&str] = &["json", "csv", "yaml", "yml"];

fn walk(dir: &Path, h: &mut DefaultHasher, depth: usize) {
    if depth > 64 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            if name == "node_modules" || name == "target" {
                continue;
            }
            name.hash(h);
            meta.modified().ok().hash(h);
            walk(&e.path(), h, depth + 1);
        } else if let Some((_, ext)) = name.rsplit_once('.')
            && DATA.contains(&ext)
        {
            name.hash(h);
            meta.modified().ok().hash(h);
            meta.len().hash(h);
        }
    }
}

/// The fingerprint of the project at `root`.
pub fn fingerprint(root: &Path) -> u64 {
    let mut h = DefaultHasher::new();
    std::fs::metadata(root)
        .and_then(|m| m.modified())
        .ok()
        .hash(&mut h);
    walk(root, &mut h, 0);
    h.finish()
}

impl CasesCache {
    /// The case list: the cached one while the fingerprint is the same,
    /// else `load()`'s (kept when it succeeds). Blocking.
    pub fn get(
        &self,
        root: &Path,
        load: impl FnOnce() -> Result<Vec<CaseEntry>, String>,
    ) -> Result<Arc<Vec<CaseEntry>>, String> {
        let key = fingerprint(root);
        let cached = |c: &Self| {
            let guard = c.cached.lock().unwrap_or_else(|p| p.into_inner());
            guard
                .as_ref()
                .filter(|(k, _)| *k == key)
                .map(|(_, l)| l.clone())
        };
        if let Some(list) = cached(self) {
            return Ok(list);
        }
        let _loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = cached(self) {
            return Ok(list);
        }
        let list = Arc::new(load()?);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, list.clone()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_or_new_case_file_changes_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("api")).unwrap();
        std::fs::write(dir.path().join("api/a.case.json"), "{}").unwrap();
        let a = fingerprint(dir.path());
        assert_eq!(a, fingerprint(dir.path()));
        std::fs::write(dir.path().join("api/a.case.json"), "{\"x\": 1}").unwrap();
        let b = fingerprint(dir.path());
        assert_ne!(a, b);
        std::fs::write(dir.path().join("api/b.case.json"), "{}").unwrap();
        assert_ne!(b, fingerprint(dir.path()));
        // Other files count only as their folder's change.
        std::fs::write(dir.path().join("api/run.log"), "x").unwrap();
        std::fs::create_dir(dir.path().join(".atf")).unwrap();
        std::fs::write(dir.path().join(".atf/x.json"), "{}").unwrap();
        // (run.log changed api/'s mtime, as a new file does.)
        let d = fingerprint(dir.path());
        std::fs::write(dir.path().join("api/run.log"), "xy").unwrap();
        assert_eq!(d, fingerprint(dir.path()));
    }
}
