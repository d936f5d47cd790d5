//! What a load run measures, while it runs: per step label and per case an
//! HDR histogram for the current second and one for the whole run, counts,
//! errors by kind and the first few failure messages. Virtual users record
//! into them (a short lock per sample, no per-sample storage); once a
//! second the collector folds the second into the totals and reads the
//! second's figures for the time series and the console. Memory stays flat
//! however long the run: histograms only count.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::histo::{self, Counts, Histo};

/// Distinct error kinds kept per label; more are counted as `other`.
const MAX_KINDS: usize = 16;
/// Failure messages kept per label.
const MAX_MESSAGES: usize = 5;

/// One failed sample: its kind (grouping) and message (the first few are kept).
pub struct Failure {
    /// e.g. `expectation $.status`, `request to http://… timed out`.
    pub kind: String,
    /// The whole message, secrets masked.
    pub message: String,
}

struct Stat {
    second: Histo,
    total: Histo,
    second_counts: Counts,
    total_counts: Counts,
    kinds: Vec<(String, u64)>,
    messages: Vec<String>,
}

impl Stat {
    fn new() -> Stat {
        Stat {
            second: histo::new(),
            total: histo::new(),
            second_counts: Counts::default(),
            total_counts: Counts::default(),
            kinds: Vec::new(),
            messages: Vec::new(),
        }
    }

    fn record(&mut self, us: u64, sent: u64, received: u64, failure: Option<Failure>) {
        histo::record(&mut self.second, us);
        let c = &mut self.second_counts;
        c.samples += 1;
        c.sent += sent;
        c.received += received;
        if let Some(f) = failure {
            c.errors += 1;
            let room = self.kinds.len() < MAX_KINDS;
            let kind = if room || self.kinds.iter().any(|(k, _)| *k == f.kind) {
                f.kind
            } else {
                "other".to_string()
            };
            match self.kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => self.kinds.push((kind, 1)),
            }
            if self.messages.len() < MAX_MESSAGES && !self.messages.contains(&f.message) {
                self.messages.push(f.message);
            }
        }
    }

    /// Folds the second into the totals, adding its histogram to `into`.
    fn fold(&mut self, into: &mut Histo) -> Counts {
        histo::add(&mut self.total, &self.second);
        histo::add(into, &self.second);
        self.second.reset();
        let c = std::mem::take(&mut self.second_counts);
        let t = &mut self.total_counts;
        t.samples += c.samples;
        t.errors += c.errors;
        t.sent += c.sent;
        t.received += c.received;
        c
    }
}

/// What one second (or the last part of one) measured.
pub struct Second {
    /// Step latencies of the second.
    pub steps: Histo,
    /// Step samples, errors and bytes.
    pub counts: Counts,
    /// Iterations finished.
    pub iterations: u64,
    /// Of which failed.
    pub failed_iterations: u64,
    /// Iterations dropped (open model).
    pub dropped: u64,
}

/// Totals of a label when the run is over.
pub struct Totals {
    /// The whole run's histogram.
    pub histogram: Histo,
    /// Counts.
    pub counts: Counts,
    /// Errors by kind.
    pub kinds: Vec<(String, u64)>,
    /// The first failure messages.
    pub messages: Vec<String>,
}

/// The measurements of a run.
pub struct Metrics {
    steps: Vec<Mutex<Stat>>,
    cases: Vec<Mutex<Stat>>,
    dropped: AtomicU64,
    interrupted: AtomicU64,
}

impl Metrics {
    /// Room for `steps` step labels and `cases` cases.
    pub fn new(steps: usize, cases: usize) -> Metrics {
        Metrics {
            steps: (0..steps).map(|_| Mutex::new(Stat::new())).collect(),
            cases: (0..cases).map(|_| Mutex::new(Stat::new())).collect(),
            dropped: AtomicU64::new(0),
            interrupted: AtomicU64::new(0),
        }
    }

    /// An iteration cut short by Ctrl-C or `--graceful-stop`.
    pub fn interrupted(&self) {
        self.interrupted.fetch_add(1, Ordering::Relaxed);
    }

    /// Iterations cut short so far.
    pub fn interrupted_iterations(&self) -> u64 {
        self.interrupted.load(Ordering::Relaxed)
    }

    /// One step sample of label `label`.
    pub fn step(&self, label: usize, us: u64, sent: u64, received: u64, failure: Option<Failure>) {
        if let Some(Ok(mut s)) = self.steps.get(label).map(Mutex::lock) {
            s.record(us, sent, received, failure);
        }
    }

    /// One finished iteration of case `case`, `us` from its intended start.
    pub fn iteration(&self, case: usize, us: u64, failure: Option<Failure>) {
        if let Some(Ok(mut s)) = self.cases.get(case).map(Mutex::lock) {
            s.record(us, 0, 0, failure);
        }
    }

    /// An iteration the open model could not start.
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds the current second into the totals and returns it.
    pub fn tick(&self) -> Second {
        let mut steps = histo::new();
        let mut counts = Counts::default();
        for s in &self.steps {
            if let Ok(mut s) = s.lock() {
                let c = s.fold(&mut steps);
                counts.samples += c.samples;
                counts.errors += c.errors;
                counts.sent += c.sent;
                counts.received += c.received;
            }
        }
        let mut scratch = histo::new();
        let (mut iterations, mut failed) = (0, 0);
        for s in &self.cases {
            if let Ok(mut s) = s.lock() {
                let c = s.fold(&mut scratch);
                iterations += c.samples;
                failed += c.errors;
            }
        }
        Second {
            steps,
            counts,
            iterations,
            failed_iterations: failed,
            dropped: self.dropped.swap(0, Ordering::Relaxed),
        }
    }

    fn totals_of(list: &[Mutex<Stat>]) -> Vec<Totals> {
        list.iter()
            .map(|s| match s.lock() {
                Ok(s) => Totals {
                    histogram: s.total.clone(),
                    counts: s.total_counts,
                    kinds: s.kinds.clone(),
                    messages: s.messages.clone(),
                },
                Err(_) => Totals {
                    histogram: histo::new(),
                    counts: Counts::default(),
                    kinds: Vec::new(),
                    messages: Vec::new(),
                },
            })
            .collect()
    }

    /// The totals of every step label (call after the last [`Metrics::tick`]).
    pub fn step_totals(&self) -> Vec<Totals> {
        Self::totals_of(&self.steps)
    }

    /// The totals of every case.
    pub fn case_totals(&self) -> Vec<Totals> {
        Self::totals_of(&self.cases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(kind: &str, msg: &str) -> Option<Failure> {
        Some(Failure {
            kind: kind.into(),
            message: msg.into(),
        })
    }

    #[test]
    fn seconds_fold_into_totals() {
        let m = Metrics::new(2, 1);
        m.step(0, 1_000, 10, 20, None);
        m.step(1, 3_000, 0, 0, fail("expectation $.status", "500"));
        m.iteration(0, 4_000, None);
        m.dropped();
        let s = m.tick();
        assert_eq!(s.counts.samples, 2);
        assert_eq!(s.counts.errors, 1);
        assert_eq!((s.counts.sent, s.counts.received), (10, 20));
        assert_eq!((s.iterations, s.failed_iterations, s.dropped), (1, 0, 1));
        assert_eq!(s.steps.len(), 2);
        m.step(0, 2_000, 0, 0, None);
        let s2 = m.tick();
        assert_eq!(s2.counts.samples, 1);
        assert_eq!(s2.dropped, 0);
        let t = m.step_totals();
        assert_eq!(t[0].counts.samples, 2);
        assert_eq!(t[0].histogram.len(), 2);
        assert_eq!(t[1].kinds, vec![("expectation $.status".to_string(), 1)]);
        assert_eq!(t[1].messages, vec!["500".to_string()]);
    }

    #[test]
    fn kinds_and_messages_are_bounded() {
        let m = Metrics::new(1, 0);
        for i in 0..1_000 {
            m.step(
                0,
                10,
                0,
                0,
                fail(&format!("kind {i}"), &format!("message {i}")),
            );
        }
        m.tick();
        let t = &m.step_totals()[0];
        assert_eq!(t.kinds.len(), MAX_KINDS + 1);
        assert_eq!(
            t.kinds.last().unwrap(),
            &("other".to_string(), 1_000 - MAX_KINDS as u64)
        );
        assert_eq!(t.messages.len(), MAX_MESSAGES);
        assert_eq!(t.counts.errors, 1_000);
    }
}
