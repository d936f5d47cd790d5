//! Why a step ended in `error` (as opposed to `failed` expectations): one
//! typed enum, and the one place that says which status each cause gives
//! and which field of the step it points at.

use atf_reports::{Location, Status};
use atf_sdk::KeywordError;

use crate::model::StepAt;

/// A step that could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Its keyword is not in the run (a plan made without the keyword's plugin).
    #[error("unknown keyword `{0}`")]
    UnknownKeyword(String),
    /// An argument's placeholder did not resolve.
    #[error("args: {source}")]
    Args {
        /// Why.
        source: crate::resolve::ResolveError,
        /// The argument at fault.
        at: Location,
    },
    /// An expected value's placeholder did not resolve.
    #[error("expect: `{key}`: {source}")]
    ExpectValue {
        /// The expectation's key.
        key: String,
        /// Why.
        source: crate::resolve::ResolveError,
    },
    /// The expectations themselves are malformed (after rendering).
    #[error("expect: {0}")]
    Expect(#[from] crate::expect::ExpectError),
    /// The keyword said no (or gave up at the step's deadline).
    #[error("{}", .0.message)]
    Keyword(KeywordError),
    /// The keyword panicked.
    #[error("keyword panicked: {0}")]
    Panicked(String),
}

impl StepError {
    /// The status a step ending so gets.
    pub fn status(&self) -> Status {
        // Every cause here is an `error`: the step's result could not be
        // checked. (Expectations that do not hold are `failed`, and are
        // failures, not errors.)
        Status::Error
    }

    /// The field of the step it points at.
    pub fn location(&self, at: &StepAt) -> Location {
        match self {
            StepError::UnknownKeyword(_) | StepError::Panicked(_) => at.loc(at.keyword),
            StepError::Args { at: loc, .. } => loc.clone(),
            StepError::ExpectValue { key, .. } => at.expect_loc(key),
            StepError::Expect(e) => at.expect_loc(e.key()),
            StepError::Keyword(e) => match at.timeout {
                Some(p) if e.timed_out => at.loc(p),
                _ => at.loc(at.keyword),
            },
        }
    }
}
