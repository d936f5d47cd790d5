//! `events.jsonl`: every event of a run, one JSON object per line, written
//! as the run goes. Lines are flushed whenever the reporting thread has no
//! further event waiting (and at least every 50 ms while events keep
//! coming), so a run killed with `kill -9` leaves every step that finished
//! before the reporter went idle on disk, one write per burst of events
//! rather than one per event, and `atf report rebuild DIR` turns the file
//! back into the other reports.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Event, Reporter};

/// The file name inside the report folder.
pub const FILE_NAME: &str = "events.jsonl";

/// Writes `events.jsonl`.
pub struct EventLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
    flushed: Instant,
}

/// The longest a finished event waits in the buffer while events keep coming.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

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
            flushed: Instant::now(),
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
        // The end of the run at once; other events when the reporter goes
        // idle, or after FLUSH_EVERY while events keep coming.
        if matches!(event, Event::RunFinished { .. }) || self.flushed.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush()?;
        }
        self.flushed = Instant::now();
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

    fn idle(&mut self) {
        if let Err(e) = self.flush() {
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
