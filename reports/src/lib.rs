//! Reports of an atf run.
//!
//! The runner turns a run into plain data — [`RunReport`], [`CaseReport`],
//! [`StepReport`], [`Failure`] — and emits [`Event`]s while it goes.
//! Reporters only read that data: the console reporter prints progress and
//! failures, [`events_file`] writes `events.jsonl` line by line, and at the
//! end the JSON, JUnit and HTML writers turn the [`RunReport`] (the fold of
//! the events, by [`ReportBuilder`]) into `report.json`, `junit.xml` and
//! `index.html` (and, on request, [`allure`] results).
//! Nothing here calls back into the runner.

pub mod allure;
pub mod console;
mod event;
pub mod events_file;
pub mod html;
pub mod json;
pub mod junit;
pub mod load;
mod model;
mod xml;

pub use event::*;
pub use model::*;

use std::path::Path;

/// Something that follows a run through its events.
pub trait Reporter {
    /// Called for each event, in order, from the one thread that reports.
    fn on_event(&mut self, event: &Event);

    /// Called once at the end with the run's report: the fold of every
    /// event (see [`ReportBuilder`]), secrets masked.
    fn on_report(&mut self, _report: &RunReport) {}

    /// Called when no event is waiting, before the reporting thread waits
    /// for the next one: the moment to flush what was buffered.
    fn idle(&mut self) {}
}

/// Writes every file report of a finished run into `dir`: `report.json`,
/// `junit.xml` and `index.html`, each to a temporary name first and then
/// renamed over the old one, so that a reader (or a run killed meanwhile)
/// sees the whole previous file or the whole new one, never half of one.
pub fn write_all(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // Serialized once (compact: `jq .` shows it indented), for the file and
    // for the page, which embeds the same document.
    let mut json = serde_json::to_string(report).map_err(std::io::Error::other)?;
    json.push('\n');
    write_atomic(&dir.join("report.json"), json.as_bytes())?;
    write_atomic(&dir.join("junit.xml"), junit::render(report).as_bytes())?;
    write_atomic(
        &dir.join("index.html"),
        html::page_of(json.trim_end()).as_bytes(),
    )?;
    Ok(())
}

/// The last run's report in `dir`: its `report.json`, or — when the run was
/// killed before writing it (kill -9, a crash, power loss) — the report
/// folded from its `events.jsonl`, where cases it did not finish are
/// `error` or `skipped` and the run is marked interrupted. The error names
/// both files when neither can be read.
pub fn read_last_run(dir: &Path) -> Result<RunReport, String> {
    let json_path = dir.join("report.json");
    let from_json = match json::read(&json_path) {
        Ok(report) => return Ok(report),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{}: no such file", json_path.display())
        }
        Err(e) => format!("{}: {e}", json_path.display()),
    };
    let events_path = dir.join(events_file::FILE_NAME);
    let text = std::fs::read_to_string(&events_path)
        .map_err(|e| format!("{from_json}; {}: {e}", events_path.display()))?;
    let events = read_jsonl(&text).map_err(|e| format!("{}: {e}", events_path.display()))?;
    if events.is_empty() {
        return Err(format!(
            "{from_json}; {} holds no events",
            events_path.display()
        ));
    }
    let mut builder = ReportBuilder::new();
    for e in &events {
        builder.apply(e);
    }
    Ok(builder.finish())
}

/// The files and folders a run writes into its report folder: what
/// [`start_run`] moves aside.
pub const RUN_FILES: &[&str] = &[
    "report.json",
    "junit.xml",
    "index.html",
    "events.jsonl",
    "bodies",
];

/// The folder, inside a report folder, where [`start_run`] keeps the
/// previous run's files.
pub const PREVIOUS: &str = "previous";

/// Readies `dir` for a new run: the previous run's files ([`RUN_FILES`])
/// move into `dir/previous/` (replacing the run before), and temporary
/// files of a write that was cut short are removed. So a run killed before
/// it writes its reports leaves no earlier report that looks current.
pub fn start_run(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let present: Vec<&str> = RUN_FILES
        .iter()
        .copied()
        .filter(|name| dir.join(name).symlink_metadata().is_ok())
        .collect();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(TMP_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if present.is_empty() {
        return Ok(());
    }
    let previous = dir.join(PREVIOUS);
    if previous.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&previous)?;
    }
    std::fs::create_dir(&previous)?;
    for name in present {
        std::fs::rename(dir.join(name), previous.join(name))?;
    }
    Ok(())
}

/// The end of the temporary names [`write_atomic`] uses.
const TMP_SUFFIX: &str = ".atf-tmp";

/// Writes `bytes` to `path` through a temporary file in the same folder
/// and a rename: the file is never seen half written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.{}-{}{TMP_SUFFIX}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_run_moves_the_last_run_aside_and_keeps_other_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::write(d.join("report.json"), "old").unwrap();
        std::fs::write(d.join("junit.xml"), "old").unwrap();
        std::fs::create_dir(d.join("bodies")).unwrap();
        std::fs::write(d.join("bodies/b.bin"), "x").unwrap();
        std::fs::write(d.join(".report.json.1-0.atf-tmp"), "half").unwrap();
        std::fs::write(d.join("notes.txt"), "mine").unwrap();
        start_run(d).unwrap();
        assert!(!d.join("report.json").exists());
        assert!(!d.join("bodies").exists());
        assert!(!d.join(".report.json.1-0.atf-tmp").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("previous/report.json")).unwrap(),
            "old"
        );
        assert!(d.join("previous/bodies/b.bin").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("notes.txt")).unwrap(),
            "mine"
        );

        // The next run replaces `previous`; a folder with no run files is left alone.
        std::fs::write(d.join("index.html"), "newer").unwrap();
        start_run(d).unwrap();
        assert!(!d.join("previous/report.json").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("previous/index.html")).unwrap(),
            "newer"
        );
        start_run(d).unwrap();
        assert!(d.join("previous/index.html").exists());
    }

    #[test]
    fn write_all_replaces_whole_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let report = RunReport::default();
        write_all(dir.path(), &report).unwrap();
        write_all(dir.path(), &report).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(json::read(&dir.path().join("report.json")).is_ok());
    }
}
