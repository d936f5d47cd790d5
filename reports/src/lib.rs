//! Reports of an atf run.
//!
//! The runner turns a run into plain data — [`RunReport`], [`CaseReport`],
//! [`StepReport`], [`Failure`] — and emits [`RunEvent`]s while it goes.
//! Reporters only read that data: the console reporter prints progress and
//! failures, and at the end the JSON, JUnit and HTML writers turn the
//! [`RunReport`] into `report.json`, `junit.xml` and `index.html` (and, on
//! request, [`allure`] results).
//! Nothing here calls back into the runner.

pub mod allure;
pub mod console;
pub mod html;
pub mod json;
pub mod junit;
mod model;

pub use model::*;

use std::path::Path;

/// Something that follows a run through its events.
pub trait Reporter {
    /// Called for each event, in order, from the one thread that reports.
    fn on_event(&mut self, event: &RunEvent);
}

/// What a run tells its reporters, in order: one `Started`, a `CaseStarted`
/// and `CaseFinished` per case (cases of a parallel run interleave), one
/// `Finished`.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The run begins with this many selected cases.
    Started {
        /// Cases that will run or be skipped.
        total: usize,
        /// Cases run at once.
        jobs: usize,
    },
    /// A case begins.
    CaseStarted {
        /// Its name.
        name: &'a str,
    },
    /// A case ended; its report is final (secrets already masked).
    CaseFinished(&'a CaseReport),
    /// A message for the person watching (a warning, an interrupt notice).
    Notice(&'a str),
    /// The run ended.
    Finished(&'a RunReport),
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
