//! Which slice of the selected cases a machine runs (`--shard K/N`).
//!
//! Without `--shard` the slice comes from the environment, in this order:
//! `ATF_SHARD=K/N` (set it from any CI's matrix: Jenkins, GitHub Actions),
//! GitLab's `CI_NODE_INDEX`/`CI_NODE_TOTAL` (`parallel:`, both from 1),
//! and a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` (from 0) with the
//! total from `--shard-total` or `ATF_SHARD_TOTAL`.
//!
//! Cases are dealt by a stable hash of their file and name (FNV-1a), so a
//! case keeps its shard when others are added or removed; with
//! `--durations report.json` (the last merged report) they are balanced
//! by duration instead: longest first, each to the shard with the least
//! time so far (cases the report does not know count as its mean). Every
//! machine computes the same slices from the same inputs, and every case
//! lands in exactly one shard.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Shard;

/// The shard of this run: the flag, else the environment; the second
/// value is a warning for the person running it.
pub fn resolve(
    flag: Option<Shard>,
    total: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<Shard>, Option<String>), String> {
    if flag.is_some() {
        return Ok((flag, None));
    }
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = get("ATF_SHARD") {
        let shard = v.parse::<Shard>().map_err(|e| format!("ATF_SHARD: {e}"))?;
        return Ok((Some(shard), None));
    }
    if let (Some(k), Some(n)) = (get("CI_NODE_INDEX"), get("CI_NODE_TOTAL")) {
        let shard = format!("{}/{}", k.trim(), n.trim())
            .parse::<Shard>()
            .map_err(|e| format!("CI_NODE_INDEX/CI_NODE_TOTAL: {e}"))?;
        return Ok((Some(shard), None));
    }
    if let Some(i) = get("JOB_COMPLETION_INDEX") {
        let total = match total {
            Some(t) => Some(t),
            None => match get("ATF_SHARD_TOTAL") {
                Some(t) => Some(
                    t.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("ATF_SHARD_TOTAL: `{t}` is not a whole number"))?,
                ),
                None => None,
            },
        };
        let Some(total) = total else {
            return Ok((
                None,
                Some(
                    "JOB_COMPLETION_INDEX is set but neither --shard-total nor ATF_SHARD_TOTAL: \
                     running every selected case (set the Job's completions as the total to shard)"
                        .into(),
                ),
            ));
        };
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("JOB_COMPLETION_INDEX: `{i}` is not a whole number"))?;
        let shard = format!("{}/{total}", index + 1)
            .parse::<Shard>()
            .map_err(|e| format!("JOB_COMPLETION_INDEX with a total of {total}: {e}"))?;
        return Ok((Some(shard), None));
    }
    Ok((None, None))
}

/// Case durations of an earlier report, by (file, name).
#[derive(Debug, Clone, Default)]
pub struct Durations {
    by_case: HashMap<(String, String), u64>,
}

impl Durations {
    /// Reads the durations of a `report.json` (or a folder holding one).
    pub fn read(path: &Path) -> Result<Durations, String> {
        let file = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let report = atf_reports::json::read(&file)
            .map_err(|e| format!("--durations {}: {e}", file.display()))?;
        Ok(Durations {
            by_case: report
                .cases
                .into_iter()
                .filter(|c| c.status != atf_reports::Status::Skipped)
                .map(|c| ((c.file, c.name), c.duration_ms))
                .collect(),
        })
    }

    fn get(&self, key: &(String, String)) -> Option<u64> {
        self.by_case.get(key).copied()
    }
}

/// FNV-1a, 64 bits: a hash that is the same on every machine and version.
fn stable_hash(file: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// For each item (by its (file, name) key), whether it is in `shard`.
pub fn assign(keys: &[(String, String)], shard: Shard, durations: Option<&Durations>) -> Vec<bool> {
    let me = shard.index - 1;
    let Some(d) = durations else {
        return keys
            .iter()
            .map(|(f, n)| (stable_hash(f, n) % shard.total as u64) as usize == me)
            .collect();
    };
    let known: Vec<u64> = keys.iter().filter_map(|k| d.get(k)).collect();
    let mean = if known.is_empty() {
        1
    } else {
        (known.iter().sum::<u64>() / known.len() as u64).max(1)
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    let cost = |i: usize| d.get(&keys[i]).unwrap_or(mean);
    order.sort_by(|&a, &b| cost(b).cmp(&cost(a)).then_with(|| keys[a].cmp(&keys[b])));
    let mut load = vec![0u64; shard.total];
    let mut mine = vec![false; keys.len()];
    for i in order {
        let (target, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(s, l)| (**l, *s))
            .unwrap_or((0, &0));
        load[target] += cost(i);
        mine[i] = target == me;
    }
    mine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn shard(s: &str) -> Shard {
        s.parse().unwrap()
    }

    #[test]
    fn the_slice_comes_from_the_flag_then_the_environment() {
        let e = env(&[("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]);
        assert_eq!(
            resolve(Some(shard("1/2")), None, &e).unwrap().0,
            Some(shard("1/2"))
        );
        assert_eq!(resolve(None, None, &e).unwrap().0, Some(shard("2/3")));
        let e = env(&[
            ("ATF_SHARD", "3/4"),
            ("CI_NODE_INDEX", "1"),
            ("CI_NODE_TOTAL", "2"),
        ]);
        assert_eq!(resolve(None, None, &e).unwrap().0, Some(shard("3/4")));
        let e = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(resolve(None, Some(4), &e).unwrap().0, Some(shard("1/4")));
        let (none, warning) = resolve(None, None, &e).unwrap();
        assert_eq!(none, None);
        assert!(warning.unwrap().contains("--shard-total"));
        let e = env(&[("JOB_COMPLETION_INDEX", "3"), ("ATF_SHARD_TOTAL", "4")]);
        assert_eq!(resolve(None, None, &e).unwrap().0, Some(shard("4/4")));
        let e = env(&[("JOB_COMPLETION_INDEX", "4"), ("ATF_SHARD_TOTAL", "4")]);
        assert!(resolve(None, None, &e).is_err());
        assert!(resolve(None, None, &env(&[("ATF_SHARD", "0/2")])).is_err());
        assert_eq!(resolve(None, None, &env(&[])).unwrap(), (None, None));
    }

    fn keys(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("c{i}.case.json"), format!("case {i}")))
            .collect()
    }

    #[test]
    fn every_case_is_in_exactly_one_shard_and_keeps_it() {
        let ks = keys(50);
        let mut count = vec![0; 50];
        for k in 1..=4 {
            for (i, mine) in assign(&ks, shard(&format!("{k}/4")), None)
                .into_iter()
                .enumerate()
            {
                count[i] += usize::from(mine);
            }
        }
        assert!(count.iter().all(|&c| c == 1), "{count:?}");
        // Adding cases does not move the others.
        let before = assign(&ks, shard("2/4"), None);
        let after = assign(&keys(60), shard("2/4"), None);
        assert_eq!(before[..], after[..50]);
    }

    #[test]
    fn durations_balance_the_shards() {
        let ks = keys(5);
        let d = Durations {
            by_case: [(0, 100u64), (1, 10), (2, 10), (3, 50), (4, 40)]
                .into_iter()
                .map(|(i, ms)| (ks[i].clone(), ms))
                .collect(),
        };
        let one = assign(&ks, shard("1/2"), Some(&d));
        let two = assign(&ks, shard("2/2"), Some(&d));
        let time = |mine: &[bool]| -> u64 {
            mine.iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .map(|(i, _)| d.get(&ks[i]).unwrap())
                .sum()
        };
        assert_eq!(time(&one), 110, "{one:?}");
        assert_eq!(time(&two), 100, "{two:?}");
        assert!(one.iter().zip(&two).all(|(a, b)| a ^ b));
    }
}
