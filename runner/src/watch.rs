//! `atf run --watch`: run, then run again whenever a file the run depends
//! on changes, until Ctrl-C.
//!
//! The files are found by polling, every [`POLL`], the size, modification
//! time and (on Unix) inode of:
//!
//! - every file under the folders given to the run (the case files, but
//!   also `suite.json`, payloads, `.sql` scripts, ...), skipping hidden
//!   files and folders, `target`, `node_modules` and the report folder;
//! - for a case file named on the command line, it and the files beside it;
//! - the `suite.json` of every folder between a run path and the project
//!   root, and the project file;
//! - the plugin libraries directly in the plugin folders.
//!
//! A file that appears or disappears is a change too. Once a change is
//! seen, the files are polled until they stay still for [`SETTLE`] (an
//! editor's or cargo's several writes make one change), then the change is
//! compared with the state before the last run: a file that changed and
//! changed back is no change.
//!
//! The state compared against is taken before each run starts, so a file
//! saved while a run goes on starts another run after it. A case that
//! writes into a watched folder therefore runs again and again: write
//! outside the case folders (or into a hidden folder).
//!
//! Ctrl-C: while waiting, it ends the watch with the last run's exit code;
//! during a run, it interrupts that run as without `--watch` (cleanup
//! runs) and then ends the watch with 130. See [`crate::engine::ctrlc_idle`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::RunConfig;
use crate::exec::Cancel;

/// How often the files are looked at while waiting.
pub const POLL: Duration = Duration::from_millis(300);
/// How long changed files must stay still before the next run starts.
pub const SETTLE: Duration = Duration::from_millis(150);
/// The longest wait for files to stay still (a file written without end
/// does not hold the watch forever).
const SETTLE_MAX: Duration = Duration::from_secs(3);
/// How often Ctrl-C is looked at while sleeping.
const TICK: Duration = Duration::from_millis(25);
/// How many changed files the separator line names.
const SHOWN: usize = 5;

/// What a run depends on, as paths to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The run's paths: case files and folders.
    pub paths: Vec<PathBuf>,
    /// The project file's folder, when there is one: the `suite.json` of
    /// the folders between it and the run's paths count too.
    pub project_root: Option<PathBuf>,
    /// Single files (the project file).
    pub files: Vec<PathBuf>,
    /// Plugin folders: their plugin libraries count.
    pub plugin_dirs: Vec<PathBuf>,
    /// Folders never looked into (the report folder).
    pub exclude: Vec<PathBuf>,
}

impl Targets {
    /// The targets of a run's configuration.
    pub fn of(cfg: &RunConfig) -> Targets {
        Targets {
            paths: cfg.paths.clone(),
            project_root: cfg.project.path.as_ref().map(|_| cfg.project.root.clone()),
            files: cfg.project.path.iter().cloned().collect(),
            plugin_dirs: cfg.plugin_dirs.clone(),
            exclude: vec![cfg.report_dir.clone()],
        }
    }
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        }
    }
}

/// The state of the watched files at one moment: every file found, plus
/// the paths looked for and missing (so that their creation is a change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    files: BTreeMap<PathBuf, Option<Stamp>>,
}

impl Snapshot {
    /// Looks at the files of `targets` now.
    pub fn take(targets: &Targets) -> Snapshot {
        let mut walk = Walk {
            exclude: targets.exclude.iter().map(|p| absolute(p)).collect(),
            snap: Snapshot::default(),
        };
        let root = targets.project_root.as_deref().map(absolute);
        for path in &targets.paths {
            let path = absolute(path);
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    walk.tree(&path);
                    walk.suites_above(&path, root.as_deref());
                }
                Ok(meta) => {
                    walk.snap.files.insert(path.clone(), Some(Stamp::of(&meta)));
                    if let Some(dir) = path.parent() {
                        walk.folder(dir, |_| true);
                        walk.suites_above(dir, root.as_deref());
                    }
                }
                Err(_) => walk.missing(path),
            }
        }
        for file in &targets.files {
            walk.file(absolute(file));
        }
        for dir in &targets.plugin_dirs {
            let dir = absolute(dir);
            if dir.is_dir() {
                walk.folder(&dir, is_plugin_file);
            } else {
                walk.missing(dir);
            }
        }
        walk.snap
    }

    /// How many files exist.
    pub fn len(&self) -> usize {
        self.files.values().filter(|s| s.is_some()).count()
    }

    /// Whether no file exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The paths that differ between `self` and `newer`: changed, created
    /// or deleted.
    pub fn changed(&self, newer: &Snapshot) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(path, stamp)| newer.files.get(*path) != Some(stamp))
            .map(|(path, _)| path.clone())
            .collect();
        out.extend(
            newer
                .files
                .keys()
                .filter(|path| !self.files.contains_key(*path))
                .cloned(),
        );
        out.sort();
        out.dedup();
        out
    }
}

/// `path` made absolute (without resolving links), or as it is.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_plugin_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == std::env::consts::DLL_EXTENSION)
}

struct Walk {
    exclude: Vec<PathBuf>,
    snap: Snapshot,
}

impl Walk {
    fn excluded(&self, path: &Path) -> bool {
        self.exclude.iter().any(|e| path.starts_with(e))
    }

    fn missing(&mut self, path: PathBuf) {
        if !self.excluded(&path) {
            self.snap.files.entry(path).or_insert(None);
        }
    }

    fn file(&mut self, path: PathBuf) {
        if self.excluded(&path) {
            return;
        }
        let stamp = fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| Stamp::of(&m));
        self.snap.files.insert(path, stamp);
    }

    /// The files directly in `dir` that `keep` accepts.
    fn folder(&mut self, dir: &Path, keep: impl Fn(&Path) -> bool) {
        self.walk(dir, crate::walk::Depth::Flat, keep);
    }

    /// Every file under `dir`, with the folders the case discovery skips
    /// skipped.
    fn tree(&mut self, dir: &Path) {
        self.walk(dir, crate::walk::Depth::Tree, |_| true);
    }

    fn walk(&mut self, dir: &Path, depth: crate::walk::Depth, keep: impl Fn(&Path) -> bool) {
        if self.excluded(dir) {
            return;
        }
        let Ok(found) = crate::walk::files(dir, depth, |p| keep(p) && !self.excluded(p)) else {
            return;
        };
        for path in found {
            // `metadata` follows links, as loading a case or plugin does.
            if let Ok(meta) = fs::metadata(&path)
                && meta.is_file()
            {
                self.snap.files.insert(path, Some(Stamp::of(&meta)));
            }
        }
    }

    /// The `suite.json` of the folders above `dir` up to `root` (the
    /// suites that apply to the cases in `dir`, present or not).
    fn suites_above(&mut self, dir: &Path, root: Option<&Path>) {
        let Some(root) = root else {
            return;
        };
        if !dir.starts_with(root) {
            return;
        }
        let mut d = dir.to_path_buf();
        while d != root && d.pop() && d.starts_with(root) {
            self.file(d.join("suite.json"));
        }
    }
}

/// What changed since the last run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The files that changed, appeared or disappeared (none before the
    /// first run).
    pub files: Vec<PathBuf>,
    /// Whether a plugin library (or plugin folder) is among them.
    pub plugins: bool,
}

impl Change {
    fn new(files: Vec<PathBuf>, targets: &Targets) -> Change {
        let dirs: Vec<PathBuf> = targets.plugin_dirs.iter().map(|d| absolute(d)).collect();
        let plugins = files.iter().any(|f| {
            dirs.iter()
                .any(|d| f == d || f.parent() == Some(d.as_path()))
        });
        Change { files, plugins }
    }
}

/// Sleeps for `time`, or less when `stop` is set; false when it is.
fn sleep(time: Duration, stop: &Cancel) -> bool {
    let until = Instant::now() + time;
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep(TICK.min(until - now));
    }
}

/// Waits until the files of `targets` differ from `baseline` and then stay
/// still for `settle`, looking every `poll`. `None` when `stop` is set.
pub fn wait_for_change(
    targets: &Targets,
    baseline: &Snapshot,
    stop: &Cancel,
    poll: Duration,
    settle: Duration,
) -> Option<Change> {
    loop {
        if !sleep(poll, stop) {
            return None;
        }
        let mut last = Snapshot::take(targets);
        if last == *baseline {
            continue;
        }
        let started = Instant::now();
        loop {
            if !sleep(settle, stop) {
                return None;
            }
            let now = Snapshot::take(targets);
            if now == last || started.elapsed() >= SETTLE_MAX {
                last = now;
                break;
            }
            last = now;
        }
        let files = baseline.changed(&last);
        if !files.is_empty() {
            return Some(Change::new(files, targets));
        }
    }
}

/// The separator printed before a run that a change started.
pub fn separator(change: &Change, at: chrono::DateTime<chrono::Local>) -> String {
    let mut names: Vec<String> = change
        .files
        .iter()
        .take(SHOWN)
        .map(|f| crate::diag::display_path(f).display().to_string())
        .collect();
    if change.files.len() > SHOWN {
        names.push(format!("and {} more", change.files.len() - SHOWN));
    }
    let text = format!(
        "==== {}  changed: {} ",
        at.format("%H:%M:%S"),
        names.join(", ")
    );
    let pad = 72usize.saturating_sub(text.chars().count()).max(4);
    format!("{text}{}", "=".repeat(pad))
}

/// Runs, then runs again after every change, until Ctrl-C; returns the
/// exit code of the last run (130 when Ctrl-C interrupted a run, or came
/// before the first one ended).
///
/// `prepare` reads the configuration: the targets to watch, and what
/// `execute` needs, or the exit code when nothing can run (its errors are
/// printed; the watch goes on, so that fixing the file starts a run).
/// `execute` runs and returns the exit code; it gets what changed.
pub fn watch<C>(
    mut prepare: impl FnMut() -> (Targets, Result<C, i32>),
    mut execute: impl FnMut(C, &Change) -> i32,
) -> i32 {
    let mut last = crate::exit::INTERRUPTED;
    let mut stop = crate::engine::ctrlc_idle();
    let mut change = Change::default();
    loop {
        let (targets, prepared) = prepare();
        let baseline = Snapshot::take(&targets);
        if stop.is_cancelled() {
            return last;
        }
        last = match prepared {
            Ok(c) => execute(c, &change),
            Err(code) => code,
        };
        stop = crate::engine::ctrlc_idle();
        if stop.is_cancelled() {
            return last;
        }
        println!(
            "watching {} files for changes (Ctrl-C to stop)",
            baseline.len()
        );
        let _ = std::io::stdout().flush();
        match wait_for_change(&targets, &baseline, &stop, POLL, SETTLE) {
            Some(c) => change = c,
            None => return last,
        }
        println!("\n{}", separator(&change, chrono::Local::now()));
        let _ = std::io::stdout().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(path, text).unwrap();
    }

    /// A project: cases with a payload and a suite, a report folder inside
    /// the cases, a plugin folder, a project file.
    fn project() -> (tempfile::TempDir, Targets) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("atf.json"), "{}");
        write(&root.join("suite.json"), "{}");
        write(&root.join("cases/a.case.json"), "{}");
        write(&root.join("cases/orders/b.case.json"), "{}");
        write(&root.join("cases/orders/payload.json"), "{}");
        write(&root.join("cases/orders/seed.sql"), "select 1;");
        write(&root.join("cases/.hidden/x.case.json"), "{}");
        write(&root.join("cases/target/y.case.json"), "{}");
        write(&root.join("cases/.a.case.json.swp"), "");
        write(&root.join("cases/report/report.json"), "{}");
        write(&root.join("plugins/libp.so"), "elf");
        write(&root.join("plugins/README.md"), "text");
        let targets = Targets {
            paths: vec![root.join("cases")],
            project_root: Some(root.to_path_buf()),
            files: vec![root.join("atf.json")],
            plugin_dirs: vec![root.join("plugins"), root.join("no-such-plugins")],
            exclude: vec![root.join("cases/report")],
        };
        (dir, targets)
    }

    fn wait(targets: &Targets, baseline: &Snapshot) -> Option<Change> {
        // Never set: the wait ends on a change, or the test stops it.
        let stop = Cancel::default();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                wait_for_change(
                    targets,
                    baseline,
                    &stop,
                    Duration::from_millis(20),
                    Duration::from_millis(20),
                )
            });
            let until = Instant::now() + Duration::from_millis(600);
            while !waiter.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !waiter.is_finished() {
                stop.cancel();
            }
            waiter.join().unwrap()
        })
    }

    fn names(root: &Path, change: &Change) -> Vec<String> {
        change
            .files
            .iter()
            .map(|f| {
                f.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect()
    }

    #[test]
    fn finds_what_a_run_depends_on() {
        let (dir, targets) = project();
        let snap = Snapshot::take(&targets);
        let mut found: Vec<String> = snap
            .files
            .iter()
            .map(|(p, s)| {
                let name = p
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if s.is_some() {
                    name
                } else {
                    format!("{name} (missing)")
                }
            })
            .collect();
        found.sort();
        let mut expected = vec![
            "atf.json",
            "cases/a.case.json",
            "cases/orders/b.case.json",
            "cases/orders/payload.json",
            "cases/orders/seed.sql",
            "suite.json",
            "no-such-plugins (missing)",
        ];
        if std::env::consts::DLL_EXTENSION == "so" {
            expected.push("plugins/libp.so");
        }
        expected.sort();
        assert_eq!(found, expected);
        assert_eq!(snap.len(), expected.len() - 1);
    }

    #[test]
    fn an_untouched_tree_is_no_change() {
        let (_dir, targets) = project();
        let baseline = Snapshot::take(&targets);
        assert_eq!(Snapshot::take(&targets), baseline);
        assert_eq!(wait(&targets, &baseline), None);
    }

    #[test]
    fn a_change_is_seen() {
        let (dir, targets) = project();
        let root = dir.path();
        let baseline = Snapshot::take(&targets);
        write(&root.join("cases/orders/payload.json"), "{\"a\": 1}");
        let change = wait(&targets, &baseline).expect("a change");
        assert_eq!(names(root, &change), ["cases/orders/payload.json"]);
        assert!(!change.plugins);
    }

    #[test]
    fn new_deleted_and_project_files_are_changes() {
        let (dir, targets) = project();
        let root = dir.path();
        let baseline = Snapshot::take(&targets);
        write(&root.join("cases/new.case.json"), "{}");
        fs::remove_file(root.join("cases/a.case.json")).unwrap();
        write(&root.join("atf.json"), "{\"jobs\": 2}");
        write(&root.join("cases/orders/suite.json"), "{}");
        let change = wait(&targets, &baseline).expect("a change");
        assert_eq!(
            names(root, &change),
            [
                "atf.json",
                "cases/a.case.json",
                "cases/new.case.json",
                "cases/orders/suite.json"
            ]
        );
    }

    #[test]
    fn reports_hidden_files_and_other_libraries_are_not_watched() {
        let (dir, targets) = project();
        let root = dir.path();
        let baseline = Snapshot::take(&targets);
        write(&root.join("cases/report/report.json"), "{\"summary\": {}}");
        write(&root.join("cases/report/index.html"), "<html>");
        write(&root.join("cases/.a.case.json.swp"), "swap");
        write(&root.join("cases/a.case.json~"), "backup");
        write(&root.join("cases/target/z.case.json"), "{}");
        write(&root.join("plugins/README.md"), "more text");
        write(&root.join("plugins/sub/libq.so"), "elf");
        assert_eq!(wait(&targets, &baseline), None);
    }

    #[test]
    fn plugin_changes_are_flagged() {
        let (dir, targets) = project();
        let root = dir.path();
        let baseline = Snapshot::take(&targets);
        let lib = format!("plugins/libp.{}", std::env::consts::DLL_EXTENSION);
        write(&root.join(&lib), "elf v2");
        let change = wait(&targets, &baseline).expect("a change");
        assert!(change.plugins);
        // A plugin folder that appears counts too.
        let baseline = Snapshot::take(&targets);
        fs::create_dir(root.join("no-such-plugins")).unwrap();
        let change = wait(&targets, &baseline).expect("a change");
        assert_eq!(names(root, &change), ["no-such-plugins"]);
        assert!(change.plugins);
    }

    #[test]
    fn a_file_changed_and_changed_back_is_no_change() {
        let (dir, targets) = project();
        let root = dir.path();
        let baseline = Snapshot::take(&targets);
        // A file that appears and goes away again (an editor's probe file).
        write(&root.join("cases/4913"), "");
        fs::remove_file(root.join("cases/4913")).unwrap();
        assert_eq!(wait(&targets, &baseline), None);
    }

    #[test]
    fn a_named_case_file_watches_its_neighbours_and_suites_above() {
        let (dir, mut targets) = project();
        let root = dir.path();
        targets.paths = vec![root.join("cases/orders/b.case.json")];
        let snap = Snapshot::take(&targets);
        let has = |rel: &str| snap.files.contains_key(&root.join(rel));
        assert!(has("cases/orders/b.case.json"));
        assert!(has("cases/orders/payload.json"));
        assert!(has("cases/suite.json"), "missing, but looked for");
        assert!(has("suite.json"));
        assert!(!has("cases/a.case.json"));
    }

    #[test]
    fn stop_ends_the_wait() {
        let (_dir, targets) = project();
        let baseline = Snapshot::take(&targets);
        let stop = Cancel::default();
        stop.cancel();
        let started = Instant::now();
        assert_eq!(
            wait_for_change(&targets, &baseline, &stop, POLL, SETTLE),
            None
        );
        assert!(started.elapsed() < POLL);
    }

    #[test]
    fn the_separator_names_the_time_and_the_files() {
        let change = Change {
            files: (1..=7)
                .map(|i| PathBuf::from(format!("c{i}.case.json")))
                .collect(),
            plugins: false,
        };
        let at = chrono::Local::now();
        let line = separator(&change, at);
        assert!(
            line.starts_with(&format!(
                "==== {}  changed: c1.case.json, c2.case.json",
                at.format("%H:%M:%S")
            )),
            "{line}"
        );
        assert!(line.contains("c5.case.json, and 2 more ===="), "{line}");
    }
}
