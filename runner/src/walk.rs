//! The one directory walker: case discovery, `--watch` and plugin discovery
//! all see the same files, through the `ignore` crate's walker (sorted by
//! name, symlink loops and unreadable entries handled).
//!
//! What is skipped everywhere: hidden entries (`.git`, `.atf`, editor swap
//! files), backup files ending in `~`, and the build folders `target` and
//! `node_modules`. `.gitignore` files are not read: a case file the team
//! keeps out of git still runs when named.

use std::path::{Path, PathBuf};

use ignore::WalkBuilder;

/// How deep to look below the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The folder's own files only.
    Flat,
    /// Every subfolder, recursively.
    Tree,
}

/// Whether a file or folder name is skipped by every walk.
pub fn skipped_name(name: &str) -> bool {
    name.starts_with('.') || name.ends_with('~')
}

/// The files below `dir` (following `depth`) that `keep` accepts, sorted by
/// path within each folder. An unreadable `dir` is an error; an unreadable
/// entry below it is left out.
pub fn files(
    dir: &Path,
    depth: Depth,
    keep: impl Fn(&Path) -> bool,
) -> std::io::Result<Vec<PathBuf>> {
    // The walker reports an unreadable root as an entry error; say it first.
    std::fs::read_dir(dir)?;
    let mut builder = WalkBuilder::new(dir);
    builder
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_name(std::ffi::OsStr::cmp)
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            entry.depth() == 0
                || !(skipped_name(&name)
                    || (is_dir && (name == "target" || name == "node_modules")))
        });
    if depth == Depth::Flat {
        builder.max_depth(Some(1));
    }
    let mut out = Vec::new();
    for entry in builder.build().flatten() {
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        // A link to a file counts as the file (loading follows it).
        let is_file = match entry.file_type() {
            Some(t) if t.is_file() => true,
            Some(t) if t.is_symlink() => path.is_file(),
            _ => false,
        };
        if is_file && keep(path) {
            out.push(entry.into_path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_skipping_hidden_build_and_backup_entries() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in [
            "b.case.json",
            "a/z.case.json",
            "a/y.case.json",
            ".hidden/x.case.json",
            "target/t.case.json",
            "node_modules/n.case.json",
            "a/old.case.json~",
            "a/.swp.case.json",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "{}").unwrap();
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let all = files(root, Depth::Tree, |_| true).unwrap();
        assert_eq!(rel(all), ["a/y.case.json", "a/z.case.json", "b.case.json"]);
        let flat = files(root, Depth::Flat, |_| true).unwrap();
        assert_eq!(rel(flat), ["b.case.json"]);
        assert!(files(&root.join("missing"), Depth::Tree, |_| true).is_err());
    }
}
