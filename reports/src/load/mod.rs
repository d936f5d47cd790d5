//! Load-test results (`atf load`): the plain data of one load run — the
//! configuration, the aggregate rows per step and per case, a per-second
//! time series and the thresholds with their verdicts — and the files
//! written from it: `load.json` ([`json`]), `load.html` ([`html`]),
//! `junit.xml` with one test case per threshold ([`junit`]) and the
//! JMeter-style aggregate table for the console ([`table`]).
//!
//! Latencies are in milliseconds (fractions keep the microseconds). Each
//! row and each second also carries its HDR histogram, serialized in the
//! HdrHistogram V2 compressed format and base64-encoded (the text form the
//! HdrHistogram libraries of every language read), so that the results of
//! several shards can be merged exactly. This crate never decodes them:
//! the runner computes every figure and merges.

pub mod html;
pub mod json;
pub mod junit;
pub mod table;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The version of the `load.json` format.
pub const FORMAT_VERSION: u32 = 1;

/// A whole load run (one shard, or several merged).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LoadReport {
    /// The `load.json` format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// When the measured part of the run began, RFC 3339.
    pub started_at: String,
    /// The environment from the project file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The shard this run was (`K/N`); for merged results, every shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// How the load was shaped.
    pub config: LoadConfig,
    /// Counts of the measured part.
    pub summary: LoadSummary,
    /// One row per step label (JMeter's aggregate report), in the order
    /// the steps first appear in the cases.
    pub steps: Vec<Row>,
    /// One row per case: whole iterations, from their intended start.
    pub cases: Vec<Row>,
    /// All step samples together (JMeter's TOTAL row).
    pub total: Row,
    /// One point per second of the measured part.
    pub series: Vec<Point>,
    /// Every threshold with its verdict.
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// True when no `errors` threshold for the whole run was given: then
    /// any failed iteration fails the run (exit 1), as in `atf run`. An
    /// `errors<…` threshold sets the error budget instead.
    #[serde(default)]
    pub iterations_must_pass: bool,
}

/// How the load was shaped (as given, after `--shard` split it).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct LoadConfig {
    /// `closed` (`--vus`: virtual users looping) or `open` (`--rate`:
    /// iterations start at a fixed arrival rate).
    pub model: String,
    /// Virtual users of the closed model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vus: Option<u64>,
    /// Iterations started per second in the open model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Most virtual users the open model may use at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vus: Option<u64>,
    /// The measured time, in seconds (after the warm-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Measured iterations to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Seconds over which VUs or the rate rise linearly from 0.
    #[serde(default)]
    pub ramp_s: f64,
    /// Seconds run at the start without recording anything.
    #[serde(default)]
    pub warmup_s: f64,
    /// What one iteration is: `case` (prepare, steps, undo, cleanup) or
    /// `steps` (prepare once per VU, steps per iteration).
    pub iteration: String,
    /// Case weights of the mix, by case name.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// Counts of the measured part of a run.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct LoadSummary {
    /// Measured seconds (the longest shard's, for merged results).
    pub duration_s: f64,
    /// Iterations finished.
    pub iterations: u64,
    /// Iterations that failed (a step failed or errored).
    pub failed_iterations: u64,
    /// Iterations the open model could not start: no VU was free.
    pub dropped: u64,
    /// Iterations cut short by Ctrl-C or `--graceful-stop` (not counted
    /// in `iterations`; their undo and cleanup ran).
    #[serde(default)]
    pub interrupted_iterations: u64,
    /// Step samples (keyword calls) recorded.
    pub requests: u64,
    /// Step samples that failed or errored.
    pub errors: u64,
    /// Most VUs alive at once (summed over shards).
    pub max_vus: u64,
    /// Bytes sent by HTTP steps (estimated from the request line, headers and body).
    pub bytes_sent: u64,
    /// Bytes received by HTTP steps (status line, headers and body).
    pub bytes_received: u64,
    /// Whether Ctrl-C cut the run short.
    #[serde(default)]
    pub interrupted: bool,
}

/// One line of the aggregate table: a step label, a case, or the total.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Row {
    /// The step's `remark` (else case, phase, position and keyword), or the case name.
    pub label: String,
    /// Samples recorded.
    pub samples: u64,
    /// Samples that failed or errored.
    pub errors: u64,
    /// `errors` as a percentage of `samples`.
    pub error_pct: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Median latency, ms.
    pub median_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Smallest latency, ms.
    pub min_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Samples per second of measured time.
    pub throughput: f64,
    /// KiB received per second (HTTP steps).
    pub received_kbps: f64,
    /// KiB sent per second (HTTP steps).
    pub sent_kbps: f64,
    /// Bytes received (HTTP steps).
    #[serde(default)]
    pub bytes_received: u64,
    /// Bytes sent (HTTP steps).
    #[serde(default)]
    pub bytes_sent: u64,
    /// Errors by kind (`expectation $.status`, `request to … timed out`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first few failure messages, secrets masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    /// Latency by percentile: `[percentile, ms]` pairs from 0 to 100, for
    /// the distribution chart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<[f64; 2]>,
    /// The HDR histogram of the latencies in microseconds (V2 compressed,
    /// base64), for exact merges.
    #[serde(default)]
    pub histogram: String,
}

/// One second of the measured part of a run.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Point {
    /// Seconds since the measured part began, at the end of this interval.
    pub t: f64,
    /// Length of the interval in seconds (1, except for the last one).
    pub dt: f64,
    /// VUs alive.
    pub vus: u64,
    /// Iterations finished in the interval.
    pub iterations: u64,
    /// Of which failed.
    pub failed_iterations: u64,
    /// Iterations dropped in the interval (open model).
    pub dropped: u64,
    /// Step samples recorded in the interval.
    pub requests: u64,
    /// Of which failed or errored.
    pub errors: u64,
    /// Median latency of the interval's step samples, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// HTTP bytes received in the interval.
    pub bytes_received: u64,
    /// HTTP bytes sent in the interval.
    pub bytes_sent: u64,
    /// The interval's HDR histogram of step latencies (µs; V2 compressed, base64).
    #[serde(default)]
    pub histogram: String,
}

/// A threshold and whether the run met it.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ThresholdResult {
    /// As written, e.g. `step:"place order" p99<500ms`.
    pub expr: String,
    /// Where it came from: `--threshold` or the project file's environment.
    pub source: String,
    /// The measured value, as shown (`212.4ms`, `0.31%`, `297.2/s`).
    pub measured: String,
    /// Whether it held.
    pub ok: bool,
}

impl LoadReport {
    /// Whether every threshold held.
    pub fn thresholds_met(&self) -> bool {
        self.thresholds.iter().all(|t| t.ok)
    }

    /// Whether the run fails for its failed iterations (see
    /// [`LoadReport::iterations_must_pass`]).
    pub fn iterations_failed(&self) -> bool {
        self.iterations_must_pass && self.summary.failed_iterations > 0
    }
}

/// Writes `load.json`, `load.html` and `junit.xml` (the thresholds) into `dir`.
pub fn write_all(dir: &Path, report: &LoadReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    json::write(&dir.join("load.json"), report)?;
    html::write(&dir.join("load.html"), report)?;
    junit::write(&dir.join("junit.xml"), report)?;
    Ok(())
}

/// A latency in ms as people read it: `0.84ms`, `12.3ms`, `1.52s`.
pub fn show_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "-".into();
    }
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(show_ms(0.8412), "0.84ms");
        assert_eq!(show_ms(12.34), "12.3ms");
        assert_eq!(show_ms(212.4), "212ms");
        assert_eq!(show_ms(1520.0), "1.52s");
        assert_eq!(show_ms(f64::NAN), "-");
    }
}
