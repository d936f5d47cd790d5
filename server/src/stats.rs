//! The slowest and the flakiest cases across the newest runs.
//!
//! Both read the case results of the newest `runs` runs (default 100)
//! and fold them here, the same way on SQLite and PostgreSQL:
//!
//! - **slowest**: per case (file and name), the mean and the 95th
//!   percentile (nearest rank) of its durations, the slowest mean first;
//! - **flakiest**: a case is flaky in a run when it passed only after a
//!   retry (status `flaky`), and it *flips* when its outcome changes
//!   between two consecutive runs that ran it (passed or flaky on one side,
//!   failed or error on the other; skipped results are left out). Its
//!   flakiness is `(flaky results + flips) / results`; cases with none are
//!   not listed, the flakiest first.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::{Store, StoreError};

/// A case in the slowest list.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Slow {
    /// The case file.
    pub file: String,
    /// The case name.
    pub name: String,
    /// How many results were counted.
    pub runs: usize,
    /// Mean duration, ms.
    pub avg_ms: i64,
    /// 95th percentile (nearest rank), ms.
    pub p95_ms: i64,
    /// Longest duration, ms.
    pub max_ms: i64,
}

/// A case in the flakiest list.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Flaky {
    /// The case file.
    pub file: String,
    /// The case name.
    pub name: String,
    /// How many results were counted (skipped ones left out).
    pub runs: usize,
    /// Results that passed only after a retry.
    pub flaky: usize,
    /// Changes between pass and fail from one run to the next.
    pub flips: usize,
    /// `(flaky + flips) / runs`, from 0 to about 2.
    pub score: f64,
    /// The statuses, oldest first.
    pub statuses: Vec<String>,
}

type Results = BTreeMap<(String, String), Vec<(String, i64)>>;

async fn by_case(store: &Store, runs: i64) -> Result<Results, StoreError> {
    let mut out: Results = BTreeMap::new();
    for (_, file, name, status, ms) in store.recent_results(runs).await? {
        out.entry((file, name)).or_default().push((status, ms));
    }
    Ok(out)
}

/// The `limit` slowest cases over the newest `runs` runs.
pub async fn slowest(store: &Store, runs: i64, limit: usize) -> Result<Vec<Slow>, StoreError> {
    Ok(slowest_of(by_case(store, runs).await?, limit))
}

fn slowest_of(results: Results, limit: usize) -> Vec<Slow> {
    let mut out: Vec<Slow> = results
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|((file, name), r)| {
            let mut ms: Vec<i64> = r.iter().map(|x| x.1).collect();
            ms.sort_unstable();
            let n = ms.len();
            let rank = ((n as f64) * 0.95).ceil() as usize;
            Slow {
                file,
                name,
                runs: n,
                avg_ms: ms.iter().sum::<i64>() / n as i64,
                p95_ms: ms[rank.clamp(1, n) - 1],
                max_ms: ms[n - 1],
            }
        })
        .collect();
    out.sort_by(|a, b| b.avg_ms.cmp(&a.avg_ms).then(b.p95_ms.cmp(&a.p95_ms)));
    out.truncate(limit);
    out
}

/// The `limit` flakiest cases over the newest `runs` runs.
pub async fn flakiest(store: &Store, runs: i64, limit: usize) -> Result<Vec<Flaky>, StoreError> {
    Ok(flakiest_of(by_case(store, runs).await?, limit))
}

fn passed(status: &str) -> Option<bool> {
    match status {
        "passed" | "flaky" => Some(true),
        "failed" | "error" => Some(false),
        _ => None,
    }
}

fn flakiest_of(results: Results, limit: usize) -> Vec<Flaky> {
    let mut out: Vec<Flaky> = results
        .into_iter()
        .filter_map(|((file, name), r)| {
            let statuses: Vec<String> = r
                .into_iter()
                .map(|x| x.0)
                .filter(|s| passed(s).is_some())
                .collect();
            let flaky = statuses.iter().filter(|s| *s == "flaky").count();
            let flips = statuses
                .windows(2)
                .filter(|w| passed(&w[0]) != passed(&w[1]))
                .count();
            if flaky + flips == 0 {
                return None;
            }
            let score = (flaky + flips) as f64 / statuses.len() as f64;
            Some(Flaky {
                file,
                name,
                runs: statuses.len(),
                flaky,
                flips,
                score: (score * 1000.0).round() / 1000.0,
                statuses,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.flaky + b.flips).cmp(&(a.flaky + a.flips)))
    });
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(rows: Vec<(&str, Vec<(&str, i64)>)>) -> Results {
        rows.into_iter()
            .map(|(name, r)| {
                (
                    ("a.case.json".to_string(), name.to_string()),
                    r.into_iter().map(|(s, ms)| (s.to_string(), ms)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn slowest_by_mean_with_the_95th_percentile() {
        let durations: Vec<(&str, i64)> = (1..=20).map(|i| ("passed", i * 10)).collect();
        let r = results(vec![("slow", durations), ("fast", vec![("passed", 5)])]);
        let s = slowest_of(r, 10);
        assert_eq!(s[0].name, "slow");
        assert_eq!(s[0].avg_ms, 105);
        assert_eq!(s[0].p95_ms, 190);
        assert_eq!(s[0].max_ms, 200);
        assert_eq!(s[1].p95_ms, 5);
    }

    #[test]
    fn flaky_is_a_retry_or_a_flip_between_runs() {
        let r = results(vec![
            ("steady", vec![("passed", 1), ("passed", 1), ("skipped", 0)]),
            (
                "flips",
                vec![("passed", 1), ("failed", 1), ("passed", 1), ("error", 1)],
            ),
            (
                "retried",
                vec![("passed", 1), ("flaky", 1), ("passed", 1), ("passed", 1)],
            ),
        ]);
        let f = flakiest_of(r, 10);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(
            (f[0].name.as_str(), f[0].flips, f[0].score),
            ("flips", 3, 0.75)
        );
        assert_eq!(
            (f[1].name.as_str(), f[1].flaky, f[1].flips),
            ("retried", 1, 0)
        );
    }
}
