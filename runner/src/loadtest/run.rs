//! The timeline of a load run and its virtual users.
//!
//! Time 0 is the start; the warm-up runs first (iterations that start in
//! it record nothing); the measured part follows, for `--duration` (or
//! until `--iterations` measured iterations have started). Ramp rises
//! from time 0: in the closed model VU *i* of *N* starts at `ramp·i/N`; in
//! the open model the arrival rate rises linearly from 0 to `--rate`.
//!
//! Closed model: each VU thread runs iterations back to back. Open model:
//! a scheduler thread starts iterations at their intended times and hands
//! each to an idle VU, starting a new VU while fewer than `--max-vus` run;
//! when none is free the iteration is *dropped* (counted, not delayed).
//!
//! The calling thread is the collector: once a second it folds the
//! second's measurements into the totals, keeps a point of the time series
//! and shows the live line. When the run ends (time, iterations, Ctrl-C),
//! no iteration starts any more; running ones may finish within
//! `--graceful-stop`, after which they are interrupted like Ctrl-C does
//! (their remaining steps are skipped, their undo and cleanup still run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use atf_reports::load::Point;

use super::histo;
use super::metrics::{Metrics, Second};
use super::options::{IterationMode, LoadOptions, Model};
use super::output::Jtl;
use super::plan::Mix;
use super::vu::Vu;
use crate::exec::Shared;

/// A load run in progress: what its VUs share.
pub struct LoadRun {
    /// The engine's shared state (keywords, vars, Ctrl-C).
    pub shared: Arc<Shared>,
    /// The cases and labels.
    pub mix: Mix,
    /// The measurements.
    pub metrics: Metrics,
    /// What an iteration is.
    pub iteration_mode: IterationMode,
    /// `--samples`: every sample as JMeter CSV.
    pub samples: Option<Jtl>,
    /// VUs alive now.
    pub alive: AtomicU64,
    /// Most VUs alive at once.
    pub peak: AtomicU64,
    /// Iterations finished, warm-up included (for the live line).
    pub finished: AtomicU64,
    idle: AtomicU64,
    start: Instant,
    measure_start: Instant,
    end: Option<Instant>,
    iterations: Option<u64>,
    stop: AtomicBool,
    claimed: AtomicU64,
    workers: AtomicUsize,
    /// The last id given to a VU of the open model sharing a thread.
    next_vu: AtomicU64,
    /// Whether VUs may share threads, else why not (see [`Mix::shares_threads`]).
    sharing: Result<(), String>,
}

/// One second as the live line shows it.
pub struct LiveSecond<'a> {
    /// Seconds since the measured part began (negative in the warm-up).
    pub t: f64,
    /// Whether this second is part of the warm-up.
    pub warmup: bool,
    /// VUs alive.
    pub vus: u64,
    /// Iterations finished in the second (warm-up included).
    pub iterations: u64,
    /// The second's measurements (empty in the warm-up).
    pub second: &'a Second,
    /// Length of the second, in seconds.
    pub dt: f64,
}

/// How the run went, for the report.
pub struct Driven {
    /// One point per measured second.
    pub series: Vec<Point>,
    /// Measured seconds: from the end of the warm-up to the last sample.
    pub measured_s: f64,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Iterations dropped (open model).
    pub dropped: u64,
}

/// Decrements the live-worker count when a worker ends, even by a panic.
struct WorkerGuard<'a>(&'a AtomicUsize);

impl Drop for WorkerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long before its intended start the open model hands an iteration to a VU.
const HANDOVER_LEAD: Duration = Duration::from_millis(1);

/// An iteration of the open model: when it was meant to start, and
/// whether it is measured.
struct Job {
    intended: Instant,
    record: bool,
}

/// When arrival `k` (from 0) of the open model is due, in seconds from the
/// start: the rate rises linearly from 0 to `rate` over `ramp` seconds.
pub fn arrival_offset(k: u64, rate: f64, ramp: f64) -> f64 {
    let k = k as f64;
    if ramp <= 0.0 {
        return k / rate;
    }
    let during_ramp = rate * ramp / 2.0;
    if k < during_ramp {
        (2.0 * ramp * k / rate).sqrt()
    } else {
        ramp + (k - during_ramp) / rate
    }
}

impl LoadRun {
    /// A run of `mix` with `opts`, starting now.
    pub fn new(shared: Arc<Shared>, mix: Mix, opts: &LoadOptions, samples: Option<Jtl>) -> LoadRun {
        let steps = mix.labels.names().len();
        let cases = mix.cases.len();
        let start = Instant::now();
        let measure_start = start + opts.warmup;
        let sharing = mix.shares_threads(&shared.keywords);
        LoadRun {
            shared,
            mix,
            metrics: Metrics::new(steps, cases),
            iteration_mode: opts.iteration,
            samples,
            alive: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            start,
            measure_start,
            end: opts.duration.map(|d| measure_start + d),
            iterations: opts.iterations,
            stop: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
            workers: AtomicUsize::new(0),
            sharing,
            next_vu: AtomicU64::new(0),
        }
    }

    /// Whether samples taken now are recorded (the warm-up is over).
    pub fn recording(&self) -> bool {
        Instant::now() >= self.measure_start
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shared.cancel.is_cancelled()
    }

    /// Whether an iteration meant to start at `intended` may start, and if
    /// so whether it is measured; `None` once the run is over.
    fn may_start(&self, intended: Instant) -> Option<bool> {
        if self.stopping() {
            return None;
        }
        if self.end.is_some_and(|e| intended >= e) {
            self.stop.store(true, Ordering::SeqCst);
            return None;
        }
        let record = intended >= self.measure_start;
        if record
            && let Some(limit) = self.iterations
            && self.claimed.fetch_add(1, Ordering::SeqCst) >= limit
        {
            self.stop.store(true, Ordering::SeqCst);
            return None;
        }
        Some(record)
    }

    /// Sleeps until `t`; false when the run stops first.
    fn sleep_until(&self, t: Instant) -> bool {
        loop {
            if self.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= t {
                return true;
            }
            atf_keywords::local::sleep((t - now).min(Duration::from_millis(50)));
        }
    }

    fn vu_started(&self) {
        let n = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
    }

    /// Runs a VU's body, keeping a panic inside it from taking the run down.
    fn vu_body(&self, id: usize, body: impl FnOnce(&mut Vu<'_>)) {
        self.vu_started();
        let mut vu = Vu::new(self, id);
        // Each VU polls its requests on a runtime of its own, with its own
        // connections: no hand-off to the shared runtime per request.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            atf_keywords::local::with_own_runtime(|| {
                body(&mut vu);
                vu.finish();
            })
        }));
        if outcome.is_err() {
            eprintln!("error: virtual user {id} crashed; the others go on");
        }
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }

    fn closed_vu(&self, id: usize, start_at: Instant) {
        let _guard = WorkerGuard(&self.workers);
        if !self.sleep_until(start_at) {
            return;
        }
        self.vu_body(id, |vu| {
            loop {
                let now = Instant::now();
                match self.may_start(now) {
                    Some(record) => vu.iterate(now, record),
                    None => break,
                }
            }
        });
    }

    fn open_vu(&self, id: usize, jobs: async_channel::Receiver<Job>) {
        let _guard = WorkerGuard(&self.workers);
        self.vu_body(id, |vu| self.take_jobs(vu, &jobs));
    }

    /// A VU of the open model sharing a thread: waits until the scheduler
    /// needs one more VU (or the run ends), then takes jobs.
    fn open_slot(&self, starts: &async_channel::Receiver<()>, jobs: &async_channel::Receiver<Job>) {
        let _guard = WorkerGuard(&self.workers);
        if receive(starts).is_none() {
            return;
        }
        let id = self.next_vu.fetch_add(1, Ordering::SeqCst) as usize + 1;
        self.vu_body(id, |vu| self.take_jobs(vu, jobs));
    }

    /// Runs the iterations handed to this VU until the scheduler is done.
    fn take_jobs(&self, vu: &mut Vu<'_>, jobs: &async_channel::Receiver<Job>) {
        while let Some(job) = receive(jobs) {
            // Handed over a little early: wait for the intended start here.
            let wait = job.intended.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                atf_keywords::local::sleep(wait);
            }
            vu.iterate(job.intended, job.record);
            self.idle.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// How many threads the VUs share (a mix of
    /// [`atf_sdk::Keyword::cooperative`] keywords), or why each VU has a
    /// thread of its own.
    pub fn vu_threads(&self, opts: &LoadOptions) -> Result<u64, String> {
        self.sharing.clone()?;
        let vus = match opts.model {
            Model::Closed { vus } => vus,
            Model::Open { max_vus, .. } => max_vus,
        };
        Ok(group_threads(vus, opts.threads))
    }

    /// The closed model with VUs sharing `threads` threads, each running
    /// its share of the VUs as coroutines on one runtime
    /// ([`atf_keywords::local::run_group`]): the sockets of all its VUs are
    /// waited on together, with no thread wake-up per request.
    fn closed_groups<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        vus: u64,
        threads: u64,
        ramp: Duration,
    ) {
        for t in 0..threads {
            // VUs t, t + threads, t + 2·threads, …
            let n = (vus - t).div_ceil(threads) as usize;
            self.spawn_group(scope, t, n, move |k| {
                let i = t + k as u64 * threads;
                let at = self.start + ramp.mul_f64(i as f64 / vus as f64);
                Box::new(move || self.closed_vu(i as usize + 1, at))
            });
        }
    }

    /// The open model's VUs sharing `threads` threads: `max_vus` coroutines
    /// made up front (stacks reserved, not used), each of which becomes a
    /// VU when the scheduler sends a start; how many were made.
    fn open_groups<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        max_vus: u64,
        threads: u64,
        starts: &async_channel::Receiver<()>,
        jobs: &async_channel::Receiver<Job>,
    ) -> u64 {
        let mut made = 0;
        for t in 0..threads {
            let n = max_vus / threads + u64::from(t < max_vus % threads);
            let (starts, jobs) = (starts.clone(), jobs.clone());
            let started = self.spawn_group(scope, t, n as usize, move |_| {
                let (starts, jobs) = (starts.clone(), jobs.clone());
                Box::new(move || self.open_slot(&starts, &jobs))
            });
            if started {
                made += n;
            }
        }
        made
    }

    /// Starts shared thread `t` (from 0) with `n` VUs, the `k`-th made by
    /// `vu(k)`, counted as workers until they end; false (and counted
    /// out again) when the thread cannot start.
    fn spawn_group<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        t: u64,
        n: usize,
        vu: impl Fn(usize) -> Box<dyn FnOnce() + Send + 's> + Send + 's,
    ) -> bool {
        self.workers.fetch_add(n, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("atf-vus-{}", t + 1))
            .spawn_scoped(scope, move || {
                atf_keywords::local::run_group((0..n).map(vu).collect());
            });
        if let Err(e) = spawned {
            self.workers.fetch_sub(n, Ordering::SeqCst);
            eprintln!("warning: cannot start a thread of virtual users: {e}");
            return false;
        }
        true
    }

    /// The open model's scheduler: starts arrivals at their intended times.
    fn schedule<'s>(
        &'s self,
        scope: &'s std::thread::Scope<'s, '_>,
        rate: f64,
        max_vus: u64,
        ramp: Duration,
        (tx, rx): (async_channel::Sender<Job>, async_channel::Receiver<Job>),
        starts: Option<async_channel::Sender<()>>,
    ) {
        let _guard = WorkerGuard(&self.workers);
        // VUs on shared threads wait with the runtime's timer, whose ticks
        // are a millisecond apart: they get each iteration when it is due.
        let lead = if starts.is_some() {
            Duration::ZERO
        } else {
            HANDOVER_LEAD
        };
        let mut vus = 0u64;
        let mut k = 0u64;
        let ramp = ramp.as_secs_f64();
        loop {
            let offset = arrival_offset(k, rate, ramp);
            k += 1;
            let Some(intended) = self.start.checked_add(Duration::from_secs_f64(offset)) else {
                break;
            };
            if self.end.is_some_and(|e| intended >= e) {
                self.stop.store(true, Ordering::SeqCst);
                break;
            }
            // Hand the iteration over a little before it is due (to a VU
            // thread), so that the VU's wake-up is not added to its latency;
            // the VU waits for the intended start itself.
            if !self.sleep_until(intended.checked_sub(lead).unwrap_or(intended)) {
                self.drop_late(k - 1, rate, ramp);
                break;
            }
            let Some(record) = self.may_start(intended) else {
                self.drop_late(k - 1, rate, ramp);
                break;
            };
            // Hand it to an idle VU, else to a new one, else drop it.
            let idle = self.idle.load(Ordering::SeqCst);
            if idle > 0 {
                self.idle.fetch_sub(1, Ordering::SeqCst);
            } else if vus < max_vus
                && let Some(starts) = &starts
            {
                // A VU made up front on a shared thread takes it.
                vus += 1;
                if starts.send_blocking(()).is_err() {
                    if record {
                        self.metrics.dropped();
                    }
                    continue;
                }
            } else if vus < max_vus {
                vus += 1;
                let rx = rx.clone();
                let id = vus as usize;
                self.workers.fetch_add(1, Ordering::SeqCst);
                let spawned = std::thread::Builder::new()
                    .name(format!("atf-vu-{id}"))
                    .spawn_scoped(scope, move || self.open_vu(id, rx));
                if spawned.is_err() {
                    self.workers.fetch_sub(1, Ordering::SeqCst);
                    if record {
                        self.metrics.dropped();
                    }
                    continue;
                }
            } else {
                if record {
                    self.metrics.dropped();
                }
                continue;
            }
            if tx.send_blocking(Job { intended, record }).is_err() {
                break;
            }
        }
        drop(tx);
        drop(starts);
    }

    /// When the open model's run ends on time while its scheduler is behind
    /// (a busy machine woke it late): arrivals from number `k` on that were
    /// due before the end are dropped, so that every arrival of the
    /// schedule is counted. Not after Ctrl-C or once `--iterations` have
    /// started: those arrivals were never due.
    fn drop_late(&self, k: u64, rate: f64, ramp: f64) {
        let Some(end) = self.end else {
            return;
        };
        let limit_reached = self
            .iterations
            .is_some_and(|limit| self.claimed.load(Ordering::SeqCst) >= limit);
        if self.shared.cancel.is_cancelled() || limit_reached {
            return;
        }
        let mut k = k;
        loop {
            let offset = arrival_offset(k, rate, ramp);
            let Some(intended) = self.start.checked_add(Duration::from_secs_f64(offset)) else {
                return;
            };
            if intended >= end {
                return;
            }
            if intended >= self.measure_start {
                self.metrics.dropped();
            }
            k += 1;
        }
    }

    /// Runs the load with `opts`; `live` sees every second.
    pub fn drive(&self, opts: &LoadOptions, live: &mut dyn FnMut(&LiveSecond<'_>)) -> Driven {
        let mut series = Vec::new();
        let mut dropped = 0;
        let mut interrupted = false;
        let mut finish = Instant::now();
        std::thread::scope(|scope| {
            match opts.model {
                Model::Closed { vus } if let Ok(threads) = self.vu_threads(opts) => {
                    self.closed_groups(scope, vus, threads, opts.ramp)
                }
                Model::Closed { vus } => {
                    for i in 0..vus {
                        let at = self.start + opts.ramp.mul_f64(i as f64 / vus as f64);
                        self.workers.fetch_add(1, Ordering::SeqCst);
                        let spawned = std::thread::Builder::new()
                            .name(format!("atf-vu-{}", i + 1))
                            .spawn_scoped(scope, move || self.closed_vu(i as usize + 1, at));
                        if let Err(e) = spawned {
                            self.workers.fetch_sub(1, Ordering::SeqCst);
                            eprintln!("warning: cannot start virtual user {}: {e}", i + 1);
                        }
                    }
                }
                Model::Open { rate, max_vus } => {
                    let jobs = async_channel::unbounded::<Job>();
                    let (mut max_vus, mut starts) = (max_vus, None);
                    if let Ok(threads) = self.vu_threads(opts) {
                        let (tx, rx) = async_channel::unbounded::<()>();
                        max_vus = self.open_groups(scope, max_vus, threads, &rx, &jobs.1);
                        starts = Some(tx);
                    }
                    self.workers.fetch_add(1, Ordering::SeqCst);
                    let ramp = opts.ramp;
                    let spawned = std::thread::Builder::new()
                        .name("atf-arrivals".into())
                        .spawn_scoped(scope, move || {
                            self.schedule(scope, rate, max_vus, ramp, jobs, starts)
                        });
                    if let Err(e) = spawned {
                        self.workers.fetch_sub(1, Ordering::SeqCst);
                        eprintln!("error: cannot start the arrival scheduler: {e}");
                    }
                }
            }
            // The collector.
            let second = Duration::from_secs(1);
            // Ticks fall on whole seconds from the end of the warm-up.
            let mut next = self.measure_start;
            while next > self.start + second {
                next -= second;
            }
            if next <= self.start {
                next += second;
            }
            let mut last = self.start;
            let mut finished_before = 0;
            let mut stopping_since: Option<Instant> = None;
            let mut hard_stopped = false;
            loop {
                let now = Instant::now();
                if self.end.is_some_and(|e| now >= e) {
                    self.stop.store(true, Ordering::SeqCst);
                }
                if self.shared.cancel.is_cancelled() && !hard_stopped {
                    interrupted = true;
                }
                if self.stopping() && stopping_since.is_none() {
                    stopping_since = Some(now);
                }
                if let Some(since) = stopping_since
                    && !hard_stopped
                    && now.duration_since(since) >= opts.graceful_stop
                    && !self.shared.cancel.is_cancelled()
                {
                    hard_stopped = true;
                    eprintln!(
                        "the run is over but iterations are still running after --graceful-stop {}: interrupting them (their cleanup still runs)",
                        crate::exec::human(opts.graceful_stop)
                    );
                    self.shared.cancel.cancel();
                }
                let done = self.workers.load(Ordering::SeqCst) == 0;
                if now >= next || done {
                    let at = if done { now } else { next };
                    let sec = self.metrics.tick();
                    dropped += sec.dropped;
                    let finished = self.finished.load(Ordering::Relaxed);
                    let warm = at <= self.measure_start;
                    let from = last.max(self.measure_start);
                    let dt = at.saturating_duration_since(from).as_secs_f64();
                    let dt_live = at.saturating_duration_since(last).as_secs_f64();
                    let vus = self.alive.load(Ordering::SeqCst);
                    if !warm && (dt > 0.05 || sec.counts.samples > 0 || sec.iterations > 0) {
                        series.push(point(
                            &sec,
                            at.duration_since(self.measure_start).as_secs_f64(),
                            dt,
                            vus,
                        ));
                    }
                    // A last sliver of a second (stragglers) makes no line.
                    let show = !done || dt_live >= 0.5;
                    if show {
                        live(&LiveSecond {
                            t: if warm {
                                -(self
                                    .measure_start
                                    .saturating_duration_since(at)
                                    .as_secs_f64())
                            } else {
                                at.duration_since(self.measure_start).as_secs_f64()
                            },
                            warmup: warm,
                            vus,
                            iterations: finished - finished_before,
                            second: &sec,
                            dt: dt_live,
                        });
                    }
                    finished_before = finished;
                    last = at;
                    if !done {
                        next += second;
                    }
                }
                if done {
                    finish = now;
                    break;
                }
                let wait = next.saturating_duration_since(Instant::now());
                std::thread::sleep(wait.min(Duration::from_millis(20)));
            }
        });
        Driven {
            series,
            measured_s: finish
                .saturating_duration_since(self.measure_start)
                .as_secs_f64(),
            interrupted,
            dropped,
        }
    }
}

/// The next message of `rx`, waiting as a VU does (suspended on a shared
/// thread, else on its own runtime); `None` once every sender is gone.
fn receive<T>(rx: &async_channel::Receiver<T>) -> Option<T> {
    match atf_keywords::local::block_on_own(rx.recv()) {
        Ok(got) => got.ok(),
        Err(_) => rx.recv_blocking().ok(),
    }
}

/// The threads that `vus` VUs share: `--threads`, else one per CPU but one
/// (at least one), left to the collector, the kernel's network stack and
/// often the service under test on the same machine; at most one per VU.
/// On 2 cores with the service beside atf, one thread cost 23-25 us of CPU
/// per request in every `just bench load` run, two 23-29 us, for the same
/// requests per second (README).
fn group_threads(vus: u64, threads: Option<u64>) -> u64 {
    threads
        .unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
            cpus.saturating_sub(1)
        })
        .clamp(1, vus.max(1))
}

fn point(sec: &Second, t: f64, dt: f64, vus: u64) -> Point {
    let h = &sec.steps;
    Point {
        t,
        dt,
        vus,
        iterations: sec.iterations,
        failed_iterations: sec.failed_iterations,
        dropped: sec.dropped,
        requests: sec.counts.samples,
        errors: sec.counts.errors,
        p50_ms: histo::quantile_ms(h, 0.5),
        p90_ms: histo::quantile_ms(h, 0.9),
        p95_ms: histo::quantile_ms(h, 0.95),
        p99_ms: histo::quantile_ms(h, 0.99),
        max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        bytes_received: sec.counts.received,
        bytes_sent: sec.counts.sent,
        histogram: histo::encode(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_keep_the_rate() {
        assert_eq!(arrival_offset(0, 100.0, 0.0), 0.0);
        assert!((arrival_offset(300, 100.0, 0.0) - 3.0).abs() < 1e-9);
        // Ramp 10 s to 100/s: 500 arrivals during the ramp, then 100/s.
        assert!((arrival_offset(500, 100.0, 10.0) - 10.0).abs() < 1e-9);
        assert!((arrival_offset(600, 100.0, 10.0) - 11.0).abs() < 1e-9);
        // Halfway through the ramp the rate is half: a quarter of its arrivals.
        assert!((arrival_offset(125, 100.0, 10.0) - 5.0).abs() < 1e-9);
        let mut prev = 0.0;
        for k in 0..2_000 {
            let t = arrival_offset(k, 100.0, 10.0);
            assert!(t >= prev);
            prev = t;
        }
    }
}
