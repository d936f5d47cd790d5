//! `atf report merge DIR...`: combines the reports of shard runs into one
//! report set, as a single run of all the shards' cases would have written.

use std::path::{Path, PathBuf};

use atf_reports::{RunReport, Summary};

/// Merges the `report.json` of each folder into `out`; returns the exit code
/// (0 all merged cases passed, 1 some failed, 2 an input could not be read).
pub fn merge(dirs: &[PathBuf], out: &Path) -> i32 {
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
    let s = &merged.summary;
    println!(
        "merged {} reports into {}: {} passed, {} failed, {} skipped",
        dirs.len(),
        out.display(),
        s.passed,
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
        out.cases.extend(r.cases);
        for s in r.suites {
            match out.suites.iter_mut().find(|x| x.file == s.file) {
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
