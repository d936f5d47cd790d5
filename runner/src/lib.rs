//! atf: a keyword-driven integration-test runner.
//!
//! The pipeline: [`cli`] turns flags into a [`config::RunConfig`]; [`load`]
//! reads case, suite and project files into the [`model`] (keeping file,
//! line and column for every error); [`exec`] runs the model — cases on a
//! rayon pool, service keywords on one tokio runtime — resolving
//! [`resolve`] placeholders and checking [`expect`] expectations; results go
//! out as [`atf_reports::RunEvent`]s, masked by [`secret`] first.

pub mod check;
pub mod cli;
pub mod config;
pub mod diag;
pub mod engine;
pub mod exec;
pub mod exit;
pub mod format;
pub mod jsonpos;
pub mod load;
pub mod loadtest;
pub mod matrix;
pub mod merge;
pub mod model;
pub mod plugin;
pub mod push;
pub mod schema;
pub mod secret;
pub mod select;
pub mod serve;
pub mod shard;
pub mod walk;
pub mod watch;
pub mod worker;

/// Expectations and JSONPath selection (crate `atf-expect`).
pub use atf_expect as expect;
/// The placeholder language (crate `atf-template`).
pub use atf_template as resolve;
