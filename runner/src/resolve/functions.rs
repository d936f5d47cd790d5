//! Placeholder functions.
