//! The console reporter: progress while cases run, every failure with the
//! step's remark, expected versus actual and the keyword's error, a table
//! of the slowest cases, and the closing line `N passed, N failed, N skipped`
//! (`N passed (M flaky), ...` when retries made cases pass).
//!
//! On a terminal it draws a progress bar; elsewhere (CI, pipes) it draws
//! none. Either way it prints one line per case that did not pass (per case
//! with `verbose`). Colours are on only when stdout is a terminal and
//! `NO_COLOR` is unset or empty.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use std::collections::HashMap;

use crate::{CaseReport, Event, Phase, Status, StepReport, Summary};

/// Options of the console reporter.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Use ANSI colours.
    pub color: bool,
    /// Draw a live progress bar (only on a terminal).
    pub progress: bool,
    /// Print a line for every passed case too, not only failures.
    pub verbose: bool,
    /// How many of the slowest cases to list at the end (0: none).
    pub slowest: usize,
    /// Where the HTML report will be, announced before the summary line
    /// (the summary stays the last line).
    pub report_path: Option<String>,
}

impl ConsoleOptions {
    /// Options fitting the current terminal and environment.
    ///
    /// Colours go to stdout, so they follow stdout. The bar lives on stderr
    /// but is redrawn around every stdout line, which only works when both
    /// are the same terminal: with stdout piped (`atf run | tee log`) there
    /// is no bar.
    pub fn detect() -> ConsoleOptions {
        let out_tty = std::io::stdout().is_terminal();
        let err_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        ConsoleOptions {
            color: out_tty && !no_color,
            progress: out_tty && err_tty && std::env::var_os("CI").is_none(),
            verbose: false,
            slowest: 5,
            report_path: None,
        }
    }
}

/// Prints to stdout (results) while a progress bar lives on stderr.
pub struct Console {
    opts: ConsoleOptions,
    bar: Option<ProgressBar>,
    out: Box<dyn Write + Send>,
    /// Failed steps of the cases still running, by case index.
    failed_steps: HashMap<usize, Vec<(Phase, StepReport)>>,
    /// Duration and name of every case that ran, for the slowest list.
    durations: Vec<(u64, String)>,
}

impl Console {
    /// A console reporter writing to stdout.
    pub fn new(opts: ConsoleOptions) -> Console {
        Console::with_writer(opts, Box::new(std::io::stdout()))
    }

    /// A console reporter writing to `out` (tests use a buffer).
    pub fn with_writer(opts: ConsoleOptions, out: Box<dyn Write + Send>) -> Console {
        Console {
            opts,
            bar: None,
            out,
            failed_steps: HashMap::new(),
            durations: Vec::new(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.opts.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn status_word(&self, status: Status) -> String {
        match status {
            Status::Passed => self.paint("32", "PASS"),
            Status::Flaky => self.paint("33;1", "FLAKY"),
            Status::Failed => self.paint("31;1", "FAIL"),
            Status::Error => self.paint("35;1", "ERROR"),
            Status::Skipped => self.paint("33", "SKIP"),
        }
    }

    fn print(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| {
                let _ = self.out.write_all(text.as_bytes());
                let _ = self.out.flush();
            }),
            None => {
                let _ = self.out.write_all(text.as_bytes());
                let _ = self.out.flush();
            }
        }
    }

    fn case_finished(&mut self, index: usize, case: &CaseReport) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        let steps = self.failed_steps.remove(&index).unwrap_or_default();
        if case.status != Status::Skipped {
            self.durations.push((case.duration_ms, case.name.clone()));
        }
        let show_line = case.status != Status::Passed || self.opts.verbose;
        if !show_line {
            return;
        }
        // `FLAKY 2/3`: passed on the 2nd of 3 allowed runs (as nextest shows it).
        let mut word = self.status_word(case.status);
        if case.max_attempts > 1 && !case.attempts.is_empty() {
            word = format!("{word} {}/{}", case.attempts.len(), case.max_attempts);
        }
        let mut text = format!(
            "{word} {} ({}) {}ms\n",
            case.name, case.file, case.duration_ms
        );
        // The runs that failed before the last one, one line each.
        let last = case.attempts.len().saturating_sub(1);
        for a in case.attempts.iter().take(last) {
            text.push_str(&format!(
                "    attempt {} {}: {}\n",
                a.attempt,
                a.status.as_str(),
                a.error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        if matches!(case.status, Status::Failed | Status::Error) {
            text.push_str(&self.describe_failure(case, &steps));
        }
        self.print(&text);
    }

    fn describe_failure(&self, case: &CaseReport, steps: &[(Phase, StepReport)]) -> String {
        let mut text = String::new();
        if let Some(err) = &case.error {
            // Load errors span several lines (source line, marker, hint).
            for line in err.lines() {
                text.push_str(&format!("    {}\n", self.paint("1", line)));
            }
        }
        if let Some(at) = &case.location {
            text.push_str(&format!("    at {at}\n"));
        }
        let order = |p: &Phase| match p {
            Phase::Prepare => 0,
            Phase::Steps => 1,
            _ => 2,
        };
        let mut steps: Vec<&(Phase, StepReport)> = steps.iter().collect();
        steps.sort_by_key(|(p, s)| (order(p), s.set));
        for (phase, step) in steps {
            text.push_str(&describe_step(phase_name(*phase), step));
        }
        text
    }

    fn finished(&mut self, summary: &Summary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let mut text = String::new();
        if self.opts.slowest > 0 && summary.total > 1 {
            let mut slow = std::mem::take(&mut self.durations);
            slow.sort_by_key(|(ms, _)| std::cmp::Reverse(*ms));
            slow.truncate(self.opts.slowest);
            if !slow.is_empty() {
                text.push_str("\nslowest cases:\n");
                for (ms, name) in slow {
                    text.push_str(&format!("  {ms:>8}ms  {name}\n"));
                }
            }
        }
        let s = summary;
        let failed = s.failed + s.errored;
        if let Some(path) = &self.opts.report_path {
            text.push_str(&format!("\nreports: {path}"));
        }
        text.push_str(&format!(
            "\nran {} case{} in {:.2}s{}\n",
            s.total,
            if s.total == 1 { "" } else { "s" },
            s.duration_ms as f64 / 1000.0,
            if s.errored > 0 {
                format!(" ({} with errors)", s.errored)
            } else {
                String::new()
            }
        ));
        let flaky = if s.flaky > 0 {
            format!(" ({} flaky)", s.flaky)
        } else {
            String::new()
        };
        let line = format!(
            "{} passed{flaky}, {} failed, {} skipped",
            s.passed, failed, s.skipped
        );
        let line = if failed > 0 {
            self.paint("31;1", &line)
        } else {
            self.paint("32;1", &line)
        };
        text.push_str(&line);
        text.push('\n');
        self.print(&text);
    }
}

/// A failed step, as the console and the JUnit report show it.
pub fn describe_step(phase: &str, step: &StepReport) -> String {
    let mut text = String::new();
    let undo = if step.undo { " (undo)" } else { "" };
    let mut place = String::new();
    if phase != "steps" {
        place.push_str(phase);
        place.push(' ');
    }
    if let Some(set) = step.set {
        place.push_str(&format!("set {set} "));
    }
    text.push_str(&format!(
        "    {place}step {}{undo}: {}",
        step.index, step.keyword
    ));
    if let Some(r) = &step.remark {
        text.push_str(&format!(" — {r}"));
    }
    if step.attempts > 1 {
        text.push_str(&format!(" (after {} attempts)", step.attempts));
    }
    text.push('\n');
    for f in &step.failures {
        text.push_str(&format!("      {}: {}\n", f.path, f.message));
        text.push_str(&format!("        expected: {}\n", compact(&f.expected)));
        text.push_str(&format!("        actual:   {}\n", compact(&f.actual)));
    }
    if let Some(e) = &step.error {
        for (i, line) in e.lines().enumerate() {
            let lead = if i == 0 { "error: " } else { "       " };
            text.push_str(&format!("      {lead}{line}\n"));
        }
    }
    if let Some(at) = &step.location {
        text.push_str(&format!("      at {at}\n"));
    }
    text
}

/// The report phase a step of `phase` is listed under.
pub fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Prepare | Phase::SuitePrepare => "prepare",
        Phase::Steps => "steps",
        Phase::Cleanup | Phase::SuiteCleanup => "cleanup",
    }
}

fn compact(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s
    }
}

impl Reporter for Console {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { cases, .. } => {
                let total = cases.len();
                if self.opts.progress && total > 0 {
                    let bar = ProgressBar::with_draw_target(
                        Some(total as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    if let Ok(style) = ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
                    ) {
                        bar.set_style(style);
                    }
                    self.bar = Some(bar);
                }
            }
            Event::CaseStarted { name, .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_message(name.to_string());
                }
            }
            Event::StepFinished { step, report }
                if matches!(report.status, Status::Failed | Status::Error) =>
            {
                if let Some(case) = step.case {
                    self.failed_steps
                        .entry(case)
                        .or_default()
                        .push((step.phase, (**report).clone()));
                }
            }
            Event::CaseFinished { case, report } => self.case_finished(*case, report),
            Event::Notice { message, .. } => {
                // Notices go to stderr: coloured only when that is a terminal too.
                let text = if std::io::stderr().is_terminal() {
                    format!("{}\n", self.paint("33", message))
                } else {
                    format!("{message}\n")
                };
                match &self.bar {
                    Some(bar) => bar.suspend(|| eprint!("{text}")),
                    None => eprint!("{text}"),
                }
            }
            Event::RunFinished { summary, .. } => self.finished(summary),
            _ => {}
        }
    }
}

use crate::Reporter;
