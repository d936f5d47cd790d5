//! `events.jsonl`: every event of a run, one JSON object per line, written
//! as the run goes. Each line but a step's start is flushed at once, so a
//! run killed with `kill -9` leaves every finished step on disk, and
//! `atf report rebuild DIR` turns the file back into the other reports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Event, Reporter};

/// The file name inside the report folder.
pub const FILE_NAME: &str = "events.jsonl";

/// Writes `events.jsonl`.
pub struct EventLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
}

impl EventLog {
    /// Creates (truncates) `dir/events.jsonl`, creating `dir` if needed.
    pub fn create(dir: &Path) -> std::io::Result<EventLog> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = File::create(&path)?;
        Ok(EventLog {
            path,
            out: Some(BufWriter::with_capacity(64 * 1024, file)),
            error: None,
        })
    }

    /// The first write error, if any (writing stops at it).
    pub fn take_error(&mut self) -> Option<(PathBuf, std::io::Error)> {
        self.error.take().map(|e| (self.path.clone(), e))
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        serde_json::to_writer(&mut *out, event).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
        // Every event but a step's start is on disk before the run goes on:
        // a killed run keeps each finished step, and a follower sees it.
        if !matches!(event, Event::StepStarted { .. }) {
            out.flush()?;
        }
        Ok(())
    }
}

impl Reporter for EventLog {
    fn on_event(&mut self, event: &Event) {
        if let Err(e) = self.write(event) {
            self.out = None;
            self.error.get_or_insert(e);
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }
}
