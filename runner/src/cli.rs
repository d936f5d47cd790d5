//! The command line.

/// Runs the `atf` command; returns the exit code.
pub fn main() -> i32 {
    2
}
