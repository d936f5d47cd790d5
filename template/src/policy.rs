//! The limits of the placeholder language, set once per run from the
//! project file: how long a value built by placeholders may grow (a chain
//! of vars that doubles a text 40 times fails instead of exhausting
//! memory), how large a file `file(...)` reads, and the folders it may
//! read from. Until a run sets them, values and files are capped at
//! [`DEFAULT_CAP`] and any folder may be read.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::ResolveError;

/// 16 MiB: the default cap of a value and of a file read.
pub const DEFAULT_CAP: usize = 16 * 1024 * 1024;

/// The limits of a run.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The most bytes a text built by placeholders (or returned by a
    /// function) may have.
    pub value_bytes: usize,
    /// The most bytes `file(...)` reads.
    pub file_bytes: usize,
    /// The folders `file(...)` may read, `None` for anywhere.
    pub roots: Option<Vec<PathBuf>>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            value_bytes: DEFAULT_CAP,
            file_bytes: DEFAULT_CAP,
            roots: None,
        }
    }
}

static VALUE_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_CAP);
static FILE_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_CAP);
static ROOTS: RwLock<Option<Vec<PathBuf>>> = RwLock::new(None);

/// Sets the limits for what is resolved from now on (in this process).
pub fn set_policy(policy: Policy) {
    VALUE_BYTES.store(policy.value_bytes.max(1), Ordering::Relaxed);
    FILE_BYTES.store(policy.file_bytes.max(1), Ordering::Relaxed);
    *ROOTS.write().unwrap_or_else(PoisonError::into_inner) = policy.roots;
}

/// The cap of `file(...)`.
pub(crate) fn file_bytes() -> usize {
    FILE_BYTES.load(Ordering::Relaxed)
}

/// The folders `file(...)` may read.
pub(crate) fn roots() -> Option<Vec<PathBuf>> {
    ROOTS.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// An error when a text of `len` bytes made by `source` is over the cap.
pub(crate) fn check_len(len: usize, source: &str) -> Result<(), ResolveError> {
    check_len_with(len, VALUE_BYTES.load(Ordering::Relaxed), source)
}

fn check_len_with(len: usize, cap: usize, source: &str) -> Result<(), ResolveError> {
    if len <= cap {
        return Ok(());
    }
    Err(ResolveError {
        message: format!(
            "`{source}`: the value grows to {len} bytes, over the limit of {cap} (\"limits\": {{\"value\": ...}} in the project file)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_over_the_cap_fail_naming_the_placeholder() {
        assert!(check_len_with(10, 10, "${a}").is_ok());
        let err = check_len_with(11, 10, "${a}${a}").unwrap_err().message;
        assert_eq!(
            err,
            "`${a}${a}`: the value grows to 11 bytes, over the limit of 10 (\"limits\": {\"value\": ...} in the project file)"
        );
    }
}
