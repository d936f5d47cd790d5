//! Test harness of the `it` binary: the shared helpers of `tests/support`.

pub use crate::support::*;
