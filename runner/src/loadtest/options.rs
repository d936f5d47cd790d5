//! The shape of a load run: the closed model (`--vus N`: N virtual users,
//! each running iterations back to back) or the open model (`--rate
//! 300/s`: iterations start at a fixed arrival rate, dropped when no VU is
//! free), how it stops (`--duration`, `--iterations`), ramp, warm-up, what
//! an iteration is, case weights, and how `--shard K/N` splits it all.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Shard;

/// How iterations are started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// `vus` virtual users, each starting its next iteration when the last ends.
    Closed {
        /// Virtual users.
        vus: u64,
    },
    /// Iterations start `rate` times a second; with no VU free one is dropped.
    Open {
        /// Iterations per second.
        rate: f64,
        /// Most VUs at once.
        max_vus: u64,
    },
}

/// What one iteration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IterationMode {
    /// The whole case: vars, prepare, steps, undo, cleanup, with a fresh context.
    Case,
    /// Only the steps: each VU runs a case's prepare once (on its first
    /// iteration of it) and its cleanup when it stops; the undo steps of an
    /// iteration's steps run at the end of that iteration.
    Steps,
}

impl IterationMode {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            IterationMode::Case => "case",
            IterationMode::Steps => "steps",
        }
    }
}

/// Everything that shapes a load run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Closed or open.
    pub model: Model,
    /// Measured time (after the warm-up); `None` with `iterations`.
    pub duration: Option<Duration>,
    /// Measured iterations to start.
    pub iterations: Option<u64>,
    /// VUs or rate rise linearly from 0 over this time.
    pub ramp: Duration,
    /// Runs at the start without recording.
    pub warmup: Duration,
    /// How long running iterations may take to finish once the run ends,
    /// before they are interrupted (their cleanup still runs).
    pub graceful_stop: Duration,
    /// `--threads`: the threads VUs share; `None`: one per CPU less one,
    /// at least one.
    pub threads: Option<u64>,
    /// What an iteration is.
    pub iteration: IterationMode,
    /// `--weight NAME=W`: case-name globs and weights (the last match wins).
    pub weights: Vec<(String, f64)>,
    /// This shard of a scaled-out run.
    pub shard: Option<Shard>,
    /// Where to write every sample as JMeter CSV (`--samples`).
    pub samples: Option<PathBuf>,
    /// The report folder.
    pub report_dir: PathBuf,
}

/// Parses a rate: `300/s`, `300` (per second), `18000/m`, `1/h`, `2.5/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not a rate: write e.g. 300/s, 18000/m or 1/h");
    let t = text.trim();
    let (n, per) = match t.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" | "sec" | "1s" => 1.0,
                "m" | "min" | "1m" => 60.0,
                "h" | "1h" => 3600.0,
                _ => return Err(bad()),
            };
            (n.trim(), per)
        }
        None => (t, 1.0),
    };
    let n: f64 = n.parse().map_err(|_| bad())?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("`{text}`: the rate must be above 0"));
    }
    Ok(n / per)
}

/// Parses `--weight NAME=W` (NAME: a case name or glob; W ≥ 0).
pub fn parse_weight(text: &str) -> Result<(String, f64), String> {
    let (name, w) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=WEIGHT (e.g. checkout=3)"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{text}` has no case name before `=`"));
    }
    let w: f64 = w
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: the weight must be a number"))?;
    if !(w.is_finite() && w >= 0.0) {
        return Err(format!("`{text}`: the weight must be 0 or more"));
    }
    Ok((name.to_string(), w))
}

/// Shard `index` (from 1) of `total` of `n`: the first `n % total` shards take one more.
pub fn split_count(n: u64, shard: Option<Shard>) -> u64 {
    match shard {
        None => n,
        Some(s) => {
            let (k, t) = (s.index as u64, s.total as u64);
            n / t + u64::from(k <= n % t)
        }
    }
}

impl LoadOptions {
    /// The options of this shard: VUs, rate, max VUs and iterations split
    /// so that the shards together make the whole.
    pub fn for_shard(&self) -> LoadOptions {
        let mut o = self.clone();
        let Some(s) = self.shard else {
            return o;
        };
        o.model = match self.model {
            Model::Closed { vus } => Model::Closed {
                vus: split_count(vus, Some(s)),
            },
            Model::Open { rate, max_vus } => Model::Open {
                rate: rate / s.total as f64,
                max_vus: split_count(max_vus, Some(s)).max(1),
            },
        };
        o.iterations = self.iterations.map(|n| split_count(n, Some(s)));
        o
    }

    /// One line describing the shape, for the console.
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.model {
            Model::Closed { vus } => format!("closed model, {vus} VUs"),
            Model::Open { rate, max_vus } => {
                format!(
                    "open model, {} iterations/s, up to {max_vus} VUs",
                    show_rate(rate)
                )
            }
        }];
        if let Some(d) = self.duration {
            parts.push(crate::exec::human(d));
        }
        if let Some(n) = self.iterations {
            parts.push(format!("{n} iterations"));
        }
        if !self.ramp.is_zero() {
            parts.push(format!("ramp {}", crate::exec::human(self.ramp)));
        }
        if !self.warmup.is_zero() {
            parts.push(format!("warm-up {}", crate::exec::human(self.warmup)));
        }
        if self.iteration == IterationMode::Steps {
            parts.push("iteration: steps (prepare once per VU)".into());
        }
        if let Some(s) = self.shard {
            parts.push(format!("shard {s}"));
        }
        parts.join(", ")
    }
}

/// A rate without needless decimals.
pub fn show_rate(r: f64) -> String {
    if (r - r.round()).abs() < 1e-9 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("300/s"), Ok(300.0));
        assert_eq!(parse_rate("300"), Ok(300.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert_eq!(parse_rate(" 2.5 / s "), Ok(2.5));
        assert_eq!(parse_rate("3600/h"), Ok(1.0));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("3/d").is_err());
    }

    #[test]
    fn weights_parse() {
        assert_eq!(parse_weight("checkout=3"), Ok(("checkout".into(), 3.0)));
        assert_eq!(parse_weight("a=b=0.5"), Ok(("a=b".into(), 0.5)));
        assert!(parse_weight("checkout").is_err());
        assert!(parse_weight("=3").is_err());
        assert!(parse_weight("x=-1").is_err());
    }

    #[test]
    fn shards_split_the_whole() {
        let shards = |n| (1..=3).map(move |k| split_count(n, Some(Shard { index: k, total: 3 })));
        assert_eq!(shards(10).collect::<Vec<_>>(), vec![4, 3, 3]);
        assert_eq!(shards(2).collect::<Vec<_>>(), vec![1, 1, 0]);
        assert_eq!(split_count(7, None), 7);
        let o = LoadOptions {
            model: Model::Open {
                rate: 300.0,
                max_vus: 500,
            },
            duration: None,
            iterations: Some(1000),
            ramp: Duration::ZERO,
            warmup: Duration::ZERO,
            graceful_stop: Duration::from_secs(30),
            threads: None,
            iteration: IterationMode::Case,
            weights: Vec::new(),
            shard: Some(Shard { index: 2, total: 2 }),
            samples: None,
            report_dir: PathBuf::from("r"),
        };
        let s = o.for_shard();
        assert_eq!(
            s.model,
            Model::Open {
                rate: 150.0,
                max_vus: 250
            }
        );
        assert_eq!(s.iterations, Some(500));
    }
}
