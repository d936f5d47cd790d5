//! Diagnostics: errors in files, shown against their source.
//!
//! Every problem found while loading a case, suite or project file is a
//! [`Diagnostic`] with the file, line and column, a message, and an
//! optional hint ("did you mean `expect`?"). One renderer prints them with
//! the source line and a marker under the problem.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::jsonpos::Pos;

/// One problem in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, as shown to the user (relative to the working directory when possible).
    pub file: PathBuf,
    /// Where in the file; `None` when the whole file is concerned.
    pub pos: Option<Pos>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// The source line at `pos`, for rendering.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `pos` of `file`, reading the source line from `text`.
    pub fn at(
        file: &Path,
        text: Option<&str>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        let source_line = match (text, pos) {
            (Some(t), Some(p)) => t.lines().nth(p.line.saturating_sub(1)).map(str::to_owned),
            _ => None,
        };
        Diagnostic {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            hint: None,
            source_line,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// `file:line:col`.
    pub fn location(&self) -> String {
        match self.pos {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.col),
            None => self.file.display().to_string(),
        }
    }

    /// Where it is, as reports carry it (`None` when no position is known).
    pub fn location_of(&self) -> Option<atf_reports::Location> {
        self.pos.map(|p| atf_reports::Location {
            file: self.file.display().to_string(),
            line: p.line,
            column: p.col,
        })
    }

    /// One line: `file:line:col: message (hint)`.
    pub fn one_line(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}: {} ({h})", self.location(), self.message),
            None => format!("{}: {}", self.location(), self.message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "  --> {}", self.location())?;
        if let (Some(line), Some(pos)) = (&self.source_line, self.pos) {
            let num = pos.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {line}")?;
            let lead: String = line
                .chars()
                .take(pos.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}^")?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

/// The nearest of `candidates` to `word` by edit distance, if close enough
/// to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(word, c);
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// The path of `p` relative to the working directory when it lies below it.
pub fn display_path(p: &Path) -> PathBuf {
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = p.strip_prefix(&cwd)
    {
        return rel.to_path_buf();
    }
    p.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_source_and_marker() {
        let text = "{\n  \"expct\": {}\n}";
        let d = Diagnostic::at(
            Path::new("a.case.json"),
            Some(text),
            Some(Pos { line: 2, col: 3 }),
            "unknown field `expct`",
        )
        .with_hint(did_you_mean("expct", ["expect", "save", "retry"]));
        let shown = d.to_string();
        assert!(shown.contains("--> a.case.json:2:3"), "{shown}");
        assert!(shown.contains("2 |   \"expct\": {}"), "{shown}");
        assert!(shown.contains("  |   ^"), "{shown}");
        assert!(shown.contains("did you mean `expect`?"), "{shown}");
    }

    #[test]
    fn suggests_keywords() {
        let names = ["http.request", "mysql.query", "redis.command"];
        assert_eq!(
            did_you_mean("http.requets", names),
            Some("did you mean `http.request`?".into())
        );
        assert_eq!(did_you_mean("zzz", names), None);
    }
}
