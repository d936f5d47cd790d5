//! Paths a client names: only files inside the project, only case files.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Absolute, `..`, or otherwise not a plain relative path: 400.
    Malformed(String),
    /// It resolves (through a link) outside the project: 403.
    Outside(String),
    /// Not a case file (`*.case.json`): 403. The project file and other
    /// files may hold secrets and are not served.
    NotACase(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Malformed(p) => write!(
                f,
                "`{p}`: give a path relative to the project folder, without `..`"
            ),
            Refused::Outside(p) => write!(f, "`{p}` lies outside the project folder"),
            Refused::NotACase(p) => write!(f, "`{p}`: only case files (*.case.json) are served"),
        }
    }
}

/// `rel` checked as a plain relative path: its components joined with `/`.
pub fn normalize(rel: &str) -> Result<String, Refused> {
    let p = Path::new(rel);
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s),
                None => return Err(Refused::Malformed(rel.to_string())),
            },
            Component::CurDir => {}
            _ => return Err(Refused::Malformed(rel.to_string())),
        }
    }
    if parts.is_empty() || rel.contains('\0') {
        return Err(Refused::Malformed(rel.to_string()));
    }
    Ok(parts.join("/"))
}

/// The file of case path `rel` under `root` (canonical): a `*.case.json`
/// whose real location (links followed, for the file if it exists, else
/// for its folder) is inside `root`.
pub fn case_file(root: &Path, rel: &str) -> Result<(String, PathBuf), Refused> {
    let norm = normalize(rel)?;
    if !norm.ends_with(".case.json") {
        return Err(Refused::NotACase(rel.to_string()));
    }
    let path = root.join(&norm);
    let real = match path.canonicalize() {
        Ok(r) => r,
        Err(_) => {
            // A new file (perhaps in new folders): its nearest existing
            // folder, links followed, must be inside.
            let mut existing = path.parent().unwrap_or(root);
            loop {
                if let Ok(p) = existing.canonicalize() {
                    break p;
                }
                match existing.parent() {
                    Some(up) => existing = up,
                    None => return Err(Refused::Outside(rel.to_string())),
                }
            }
        }
    };
    if !real.starts_with(root) {
        return Err(Refused::Outside(rel.to_string()));
    }
    Ok((norm, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_case_paths_pass() {
        assert_eq!(normalize("a/./b.case.json").unwrap(), "a/b.case.json");
        assert!(matches!(normalize("../x"), Err(Refused::Malformed(_))));
        assert!(matches!(normalize("a/../../x"), Err(Refused::Malformed(_))));
        assert!(matches!(
            normalize("/etc/passwd"),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(normalize(""), Err(Refused::Malformed(_))));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert!(matches!(
            case_file(&root, "atf.json"),
            Err(Refused::NotACase(_))
        ));
        assert!(case_file(&root, "new.case.json").is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_project_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x.case.json"), "{}").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
        assert!(matches!(
            case_file(&root, "out/x.case.json"),
            Err(Refused::Outside(_))
        ));
        // Nor may a new file in new folders below such a link.
        assert!(matches!(
            case_file(&root, "out/new/dir/y.case.json"),
            Err(Refused::Outside(_))
        ));
        assert!(case_file(&root, "in/new/dir/y.case.json").is_ok());
    }
}
