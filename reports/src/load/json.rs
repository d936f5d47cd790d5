//! `load.json`: a load run as JSON — what `atf report merge` reads back
//! and other tools consume.

use std::path::Path;

use super::LoadReport;

/// Writes `report` as pretty JSON to `path`.
pub fn write(path: &Path, report: &LoadReport) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}

/// Reads a `load.json` written by [`write`].
pub fn read(path: &Path) -> std::io::Result<LoadReport> {
    let text = std::fs::read_to_string(path)?;
    let report: LoadReport = serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    if report.version != super::FORMAT_VERSION {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{}: load.json format version {} (this atf reads version {})",
                path.display(),
                report.version,
                super::FORMAT_VERSION
            ),
        ));
    }
    Ok(report)
}
