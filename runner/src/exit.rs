//! Exit codes of the `atf` binary, in one place (SPEC 7 and 10). Every
//! subcommand maps its outcome to one of these; nothing else picks a code.

/// All selected cases passed (skipped ones allowed).
pub const OK: i32 = 0;
/// A case failed or errored (or a suite step did).
pub const FAILED: i32 = 1;
/// Nothing could run: bad usage, a bad project file, no cases selected.
pub const USAGE: i32 = 2;
/// A load-test threshold was breached (`atf load`).
pub const THRESHOLD: i32 = 99;
/// Interrupted with Ctrl-C.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a finished run: interrupted beats failed beats passed.
pub fn of_run(report: &atf_reports::RunReport, interrupted: bool) -> i32 {
    use atf_reports::Status;
    if interrupted {
        return INTERRUPTED;
    }
    let s = &report.summary;
    let suite_failed = report
        .suites
        .iter()
        .any(|s| matches!(s.status, Some(Status::Failed | Status::Error)));
    if s.failed + s.errored > 0 || suite_failed {
        FAILED
    } else {
        OK
    }
}
