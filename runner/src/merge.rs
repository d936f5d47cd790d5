//! `atf report merge DIR...`: combines the reports of shard runs into one
//! report set, as a single run of all the shards' cases would have written.
//!
//! Matrix cells stay apart (a suite's runs are merged per cell). A case
//! found in several reports — a run and a later `--rerun-failed`, say — is
//! one case whose `attempts` are the runs of all of them in the order the
//! folders were given: the last one decides, and a case that failed before
//! and passed at last is `flaky`. With `--allure DIR` the merged run's
//! Allure results are written there too.

use std::path::{Path, PathBuf};

use atf_reports::{Attempt, CaseReport, RunReport, Status, Summary};

/// Merges the `report.json` of each folder into `out`; returns the exit code
/// (0 all merged cases passed, 1 some failed, 2 an input could not be read).
pub fn merge(dirs: &[PathBuf], out: &Path, allure: Option<&Path>) -> i32 {
    let mut reports = Vec::with_capacity(dirs.len());
    for d in dirs {
        let path = if d.is_file() {
            d.clone()
        } else {
            d.join("report.json")
        };
        match atf_reports::json::read(&path) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return crate::exit::USAGE;
            }
        }
    }
    let merged = merge_reports(reports);
    if let Err(e) = atf_reports::write_all(out, &merged) {
        eprintln!("error: cannot write reports to {}: {e}", out.display());
        return crate::exit::FAILED;
    }
    if let Some(dir) = allure
        && let Err(e) = atf_reports::allure::write(dir, &merged)
    {
        eprintln!(
            "error: cannot write Allure results to {}: {e}",
            dir.display()
        );
        return crate::exit::FAILED;
    }
    let s = &merged.summary;
    println!(
        "merged {} reports into {}: {} passed{}, {} failed, {} skipped",
        dirs.len(),
        out.display(),
        s.passed,
        if s.flaky > 0 {
            format!(" ({} flaky)", s.flaky)
        } else {
            String::new()
        },
        s.failed + s.errored,
        s.skipped
    );
    if s.failed + s.errored > 0 {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    }
}

/// Rebuilds the reports of `dir` from its `events.jsonl`; returns the exit
/// code the run would have had (130 when it did not finish).
pub fn rebuild(dir: &Path) -> i32 {
    let path = dir.join(atf_reports::events_file::FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return crate::exit::USAGE;
        }
    };
    let events = match atf_reports::read_jsonl(&text) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return crate::exit::USAGE;
        }
    };
    let mut builder = atf_reports::ReportBuilder::new();
    for e in &events {
        builder.apply(e);
    }
    let complete = builder.is_complete();
    let report = builder.finish();
    if let Err(e) = atf_reports::write_all(dir, &report) {
        eprintln!("error: cannot write reports to {}: {e}", dir.display());
        return crate::exit::FAILED;
    }
    let s = &report.summary;
    println!(
        "rebuilt {} from {} events{}: {} passed, {} failed, {} skipped",
        dir.display(),
        events.len(),
        if complete {
            ""
        } else {
            " (the run did not finish)"
        },
        s.passed,
        s.failed + s.errored,
        s.skipped
    );
    crate::exit::of_run(&report, report.interrupted)
}

/// One report from several: cases of all, in the order a single run uses
/// (file, then data row); wall time is the longest shard's.
pub fn merge_reports(reports: Vec<RunReport>) -> RunReport {
    let mut out = RunReport::default();
    let mut duration = 0;
    for r in reports {
        duration = duration.max(r.summary.duration_ms);
        if out.started_at.is_empty() || (!r.started_at.is_empty() && r.started_at < out.started_at)
        {
            out.started_at = r.started_at.clone();
        }
        if out.env.is_none() {
            out.env = r.env.clone();
        }
        out.interrupted |= r.interrupted;
        for c in r.cases {
            match out
                .cases
                .iter_mut()
                .find(|x| x.file == c.file && x.name == c.name)
            {
                Some(existing) => combine(existing, c),
                None => out.cases.push(c),
            }
        }
        for s in r.suites {
            match out
                .suites
                .iter_mut()
                .find(|x| x.file == s.file && x.matrix == s.matrix)
            {
                Some(existing) => {
                    existing.prepare.extend(s.prepare);
                    existing.cleanup.extend(s.cleanup);
                    if existing.status.is_none()
                        || matches!(
                            s.status,
                            Some(atf_reports::Status::Failed | atf_reports::Status::Error)
                        )
                    {
                        existing.status = s.status;
                    }
                }
                None => out.suites.push(s),
            }
        }
    }
    out.cases.sort_by(|a, b| {
        (&a.file, a.data_index.unwrap_or(0), &a.name).cmp(&(
            &b.file,
            b.data_index.unwrap_or(0),
            &b.name,
        ))
    });
    out.suites.sort_by(|a, b| a.file.cmp(&b.file));
    out.summary = Summary::count(&out.cases, duration);
    out
}

/// The runs of a case as `attempts`, numbered from 1.
fn runs_of(c: &CaseReport) -> Vec<Attempt> {
    if c.attempts.is_empty() {
        vec![Attempt::of(1, c)]
    } else {
        c.attempts.clone()
    }
}

/// `later` is another run of `earlier`'s case (from a later report): one
/// case with the runs of both, the later one deciding; failed, then
/// passed, is flaky. A skipped later run changes nothing.
fn combine(earlier: &mut CaseReport, later: CaseReport) {
    if later.status == Status::Skipped {
        return;
    }
    if earlier.status == Status::Skipped {
        *earlier = later;
        return;
    }
    let mut attempts = runs_of(earlier);
    attempts.extend(runs_of(&later));
    for (i, a) in attempts.iter_mut().enumerate() {
        a.attempt = i as u32 + 1;
    }
    let failed_before = attempts[..attempts.len() - 1]
        .iter()
        .any(|a| matches!(a.status, Status::Failed | Status::Error));
    let duration: u64 = attempts.iter().map(|a| a.duration_ms).sum();
    let max = (earlier.max_attempts.max(1) + later.max_attempts.max(1)).max(attempts.len() as u32);
    *earlier = later;
    if failed_before && matches!(earlier.status, Status::Passed | Status::Flaky) {
        earlier.status = Status::Flaky;
    }
    earlier.duration_ms = duration;
    earlier.max_attempts = max;
    earlier.attempts = attempts;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, status: Status) -> CaseReport {
        CaseReport {
            name: name.into(),
            file: format!("{name}.case.json"),
            status,
            duration_ms: 10,
            error: matches!(status, Status::Failed).then(|| "boom".to_string()),
            ..CaseReport::default()
        }
    }

    fn report(cases: Vec<CaseReport>) -> RunReport {
        RunReport {
            summary: Summary::count(&cases, 100),
            cases,
            ..RunReport::default()
        }
    }

    #[test]
    fn a_failed_case_that_passes_in_a_later_report_is_flaky() {
        let first = report(vec![case("a", Status::Failed), case("b", Status::Passed)]);
        let rerun = report(vec![case("a", Status::Passed)]);
        let merged = merge_reports(vec![first, rerun]);
        assert_eq!(merged.summary.total, 2);
        assert_eq!(merged.summary.flaky, 1);
        assert_eq!(merged.summary.failed, 0);
        let a = &merged.cases[0];
        assert_eq!(a.status, Status::Flaky);
        let runs: Vec<(u32, Status)> = a.attempts.iter().map(|x| (x.attempt, x.status)).collect();
        assert_eq!(runs, [(1, Status::Failed), (2, Status::Passed)]);
        assert_eq!(a.attempts[0].error.as_deref(), Some("boom"));
    }

    #[test]
    fn matrix_cells_of_a_suite_stay_apart() {
        let cell = |v: &str| {
            let mut m = serde_json::Map::new();
            m.insert("flag".into(), v.into());
            Some(m)
        };
        let suite = |v: &str| atf_reports::SuiteReport {
            file: "s/suite.json".into(),
            status: Some(Status::Passed),
            matrix: cell(v),
            ..Default::default()
        };
        let mut one = report(vec![]);
        one.suites = vec![suite("on")];
        let mut two = report(vec![]);
        two.suites = vec![suite("off"), suite("on")];
        let merged = merge_reports(vec![one, two]);
        assert_eq!(merged.suites.len(), 2);
    }
}
