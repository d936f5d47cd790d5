//! Reports of an atf run.
//!
//! The runner turns a run into plain data — [`RunReport`], [`CaseReport`],
//! [`StepReport`], [`Failure`] — and emits [`Event`]s while it goes.
//! Reporters only read that data: the console reporter prints progress and
//! failures, [`events_file`] writes `events.jsonl` line by line, and at the
//! end the JSON, JUnit and HTML writers turn the [`RunReport`] (the fold of
//! the events, by [`ReportBuilder`]) into `report.json`, `junit.xml` and
//! `index.html`.
//! Nothing here calls back into the runner.

pub mod console;
mod event;
pub mod events_file;
pub mod html;
pub mod json;
pub mod junit;
mod model;

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
}

/// Writes every file report of a finished run into `dir`: `report.json`,
/// `junit.xml` and `index.html`.
pub fn write_all(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    json::write(&dir.join("report.json"), report)?;
    junit::write(&dir.join("junit.xml"), report)?;
    html::write(&dir.join("index.html"), report)?;
    Ok(())
}
