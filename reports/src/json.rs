//! `report.json`: the run report as JSON, the format other tools read
//! (and `--rerun-failed` and `atf report merge` read back).

use std::path::Path;

use crate::RunReport;

/// Writes `report` as pretty JSON to `path`.
pub fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    crate::write_atomic(path, &text)
}

/// Reads a `report.json` written by [`write`].
pub fn read(path: &Path) -> std::io::Result<RunReport> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}
