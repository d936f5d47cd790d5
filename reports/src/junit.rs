//! The junit report. (First version; the reports issue grows it.)

use std::path::Path;

use crate::RunReport;

/// Writes the junit report of `report` to `path`.
pub fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let _ = report;
    std::fs::write(path, "")
}
