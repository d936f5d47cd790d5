//! Thresholds: pass/fail criteria of a load run, checked on the measured
//! part when it ends (and again by `atf report merge`).
//!
//! A threshold is `[SCOPE] METRIC OP VALUE`:
//! - SCOPE: nothing (all step samples; for `rate`, all iterations),
//!   `step:"place order"` (one step label; quotes optional for one word)
//!   or `case:checkout` (the case's whole iterations);
//! - METRIC: `p50` `p90` `p95` `p99` `p99.9` (any percentile, also `p(95)`),
//!   `avg` (`mean`), `med` (`median`), `min`, `max` — latencies, VALUE in
//!   `ms` (default), `s`, `us`; `errors` — `1%` of samples, or a count;
//!   `rate` — per second (`/s`, default) or minute (`/m`); `dropped` —
//!   iterations the open model could not start, a count or `%`;
//! - OP: `<` `<=` `>` `>=` `==`.
//!
//! Examples: `p95<200ms`, `step:"place order" p99<500ms`, `errors<1%`,
//! `rate>=290/s`, `case:checkout p90<1.5s`, `dropped==0`.

use atf_reports::load::{LoadReport, Row, ThresholdResult, show_ms};

use super::histo;

/// What a threshold looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// All step samples (all iterations for `rate`).
    All,
    /// One step label.
    Step(String),
    /// One case's iterations.
    Case(String),
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile (0–100).
    Percentile(f64),
    /// Mean latency.
    Mean,
    /// Smallest latency.
    Min,
    /// Largest latency.
    Max,
    /// Failed samples (or iterations, for a case).
    Errors,
    /// Samples (iterations) per second.
    Rate,
    /// Iterations the open model dropped.
    Dropped,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Op {
    fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => (measured - limit).abs() < 1e-9,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub text: String,
    /// What it looks at.
    pub scope: Scope,
    /// What it measures.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The limit: ms for latencies, per second for rates, a percentage or count otherwise.
    pub value: f64,
    /// `errors` or `dropped` as a percentage (else a count).
    pub percent: bool,
}

fn parse_label(rest: &str) -> Result<(String, &str), String> {
    if let Some(body) = rest.strip_prefix('"') {
        let mut label = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        label.push(n);
                    }
                }
                '"' => return Ok((label, &body[i + 1..])),
                c => label.push(c),
            }
        }
        Err("the quoted label has no closing `\"`".into())
    } else {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return Err("a label must follow `step:` or `case:`".into());
        }
        Ok((rest[..end].to_string(), &rest[end..]))
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let wrap = |e: String| {
            format!(
                "`{text}` is not a threshold: {e} (write e.g. p95<200ms, errors<1%, rate>=290/s, step:\"place order\" p99<500ms)"
            )
        };
        let t = text.trim();
        let (scope, rest) = if let Some(r) = t.strip_prefix("step:") {
            let (l, rest) = parse_label(r).map_err(wrap)?;
            (Scope::Step(l), rest)
        } else if let Some(r) = t.strip_prefix("case:") {
            let (l, rest) = parse_label(r).map_err(wrap)?;
            (Scope::Case(l), rest)
        } else {
            (Scope::All, t)
        };
        let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        let op_at = rest
            .find(['<', '>', '='])
            .ok_or_else(|| wrap("no comparison (<, <=, >, >=, ==)".into()))?;
        let (name, tail) = rest.split_at(op_at);
        let (op, tail) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .iter()
        .find_map(|(s, op)| tail.strip_prefix(s).map(|t| (*op, t)))
        .ok_or_else(|| wrap("the comparison must be <, <=, >, >= or ==".into()))?;
        let metric = match name {
            "avg" | "mean" => Metric::Mean,
            "med" | "median" => Metric::Percentile(50.0),
            "min" => Metric::Min,
            "max" => Metric::Max,
            "errors" | "error_rate" => Metric::Errors,
            "rate" => Metric::Rate,
            "dropped" => Metric::Dropped,
            p if p.starts_with('p') => {
                let n = p[1..].trim_start_matches('(').trim_end_matches(')');
                match n.parse::<f64>() {
                    Ok(q) if (0.0..=100.0).contains(&q) => Metric::Percentile(q),
                    _ => return Err(wrap(format!("`{p}` is not a percentile (p50, p95, p99.9)"))),
                }
            }
            "" => return Err(wrap("no metric before the comparison".into())),
            other => {
                let hint = crate::diag::did_you_mean(
                    other,
                    [
                        "p95", "p99", "avg", "med", "min", "max", "errors", "rate", "dropped",
                    ],
                )
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
                return Err(wrap(format!("unknown metric `{other}`{hint}")));
            }
        };
        if metric == Metric::Dropped && scope != Scope::All {
            return Err(wrap(
                "`dropped` is counted for the whole run, not per step or case".into(),
            ));
        }
        let num_end = tail
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(tail.len());
        let (num, unit) = tail.split_at(num_end);
        let mut value: f64 = num
            .parse()
            .map_err(|_| wrap(format!("`{tail}` does not start with a number")))?;
        let mut percent = false;
        match metric {
            Metric::Percentile(_) | Metric::Mean | Metric::Min | Metric::Max => {
                value *= match unit {
                    "" | "ms" => 1.0,
                    "s" => 1000.0,
                    "m" => 60_000.0,
                    "us" | "µs" => 0.001,
                    u => return Err(wrap(format!("`{u}` is not a time unit (ms, s, us)"))),
                }
            }
            Metric::Errors | Metric::Dropped => match unit {
                "%" => percent = true,
                "" => {}
                u => return Err(wrap(format!("`{u}`: give a count or a percentage (1%)"))),
            },
            Metric::Rate => {
                value /= match unit {
                    "" | "/s" => 1.0,
                    "/m" => 60.0,
                    "/h" => 3600.0,
                    u => return Err(wrap(format!("`{u}` is not a rate unit (/s, /m)"))),
                }
            }
        }
        Ok(Threshold {
            text: t.to_string(),
            scope,
            metric,
            op,
            value,
            percent,
        })
    }
}

impl Threshold {
    /// Checks that the step label or case it names exists in the run.
    pub fn check_scope<'a>(
        &self,
        steps: impl IntoIterator<Item = &'a str> + Clone,
        cases: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), String> {
        let (what, name, known): (&str, &str, Vec<&str>) = match &self.scope {
            Scope::All => return Ok(()),
            Scope::Step(l) => ("step", l, steps.into_iter().collect()),
            Scope::Case(c) => ("case", c, cases.into_iter().collect()),
        };
        if known.contains(&name) {
            return Ok(());
        }
        let hint = crate::diag::did_you_mean(name, known.iter().copied())
            .map(|h| format!("; {h}"))
            .unwrap_or_else(|| format!("; the {what}s are: {}", known.join(", ")));
        Err(format!(
            "threshold `{}`: no {what} labelled \"{name}\" in the selected cases{hint}",
            self.text
        ))
    }

    fn row<'a>(&self, r: &'a LoadReport) -> Option<&'a Row> {
        match &self.scope {
            Scope::All => Some(&r.total),
            Scope::Step(l) => r.steps.iter().find(|x| x.label == *l),
            Scope::Case(c) => r.cases.iter().find(|x| x.label == *c),
        }
    }

    /// The measured value (ms, %, count or per second) and how it is shown.
    pub fn measure(&self, report: &LoadReport) -> Result<(f64, String), String> {
        let s = &report.summary;
        if self.metric == Metric::Dropped {
            let v = if self.percent {
                let started = s.iterations + s.dropped;
                if started == 0 {
                    0.0
                } else {
                    s.dropped as f64 * 100.0 / started as f64
                }
            } else {
                s.dropped as f64
            };
            return Ok((v, self.show(v)));
        }
        if self.metric == Metric::Rate && self.scope == Scope::All {
            let v = if s.duration_s > 0.0 {
                s.iterations as f64 / s.duration_s
            } else {
                0.0
            };
            return Ok((v, self.show(v)));
        }
        let row = self
            .row(report)
            .ok_or_else(|| format!("nothing was measured for `{}`", self.text))?;
        let v = match self.metric {
            Metric::Percentile(q) => {
                let known = [
                    (50.0, row.median_ms),
                    (90.0, row.p90_ms),
                    (95.0, row.p95_ms),
                    (99.0, row.p99_ms),
                ];
                match known.iter().find(|(k, _)| (k - q).abs() < 1e-9) {
                    Some((_, v)) => *v,
                    None => histo::quantile_ms(&histo::decode(&row.histogram)?, q / 100.0),
                }
            }
            Metric::Mean => row.mean_ms,
            Metric::Min => row.min_ms,
            Metric::Max => row.max_ms,
            Metric::Errors if self.percent => row.error_pct,
            Metric::Errors => row.errors as f64,
            Metric::Rate => row.throughput,
            Metric::Dropped => s.dropped as f64,
        };
        Ok((v, self.show(v)))
    }

    fn show(&self, v: f64) -> String {
        match self.metric {
            Metric::Percentile(_) | Metric::Mean | Metric::Min | Metric::Max => show_ms(v),
            Metric::Errors | Metric::Dropped if self.percent => format!("{v:.2}%"),
            Metric::Errors | Metric::Dropped => format!("{v:.0}"),
            Metric::Rate => format!("{v:.1}/s"),
        }
    }

    /// The verdict on `report`; a threshold whose scope measured nothing is breached.
    pub fn evaluate(&self, report: &LoadReport, source: &str) -> ThresholdResult {
        let (ok, measured) = match self.measure(report) {
            Ok((v, shown)) => {
                let nothing = match self.metric {
                    Metric::Percentile(_) | Metric::Mean | Metric::Min | Metric::Max => {
                        self.row(report).is_none_or(|r| r.samples == 0)
                    }
                    _ => false,
                };
                if nothing {
                    (false, "no samples".to_string())
                } else {
                    (self.op.holds(v, self.value), shown)
                }
            }
            Err(e) => (false, e),
        };
        ThresholdResult {
            expr: self.text.clone(),
            source: source.to_string(),
            measured,
            ok,
        }
    }

    /// Whether this is an error budget for the whole run (`errors<…` without a scope).
    pub fn is_error_budget(&self) -> bool {
        self.metric == Metric::Errors && self.scope == Scope::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_issue_examples_parse() {
        let a = t("p95<200ms");
        assert_eq!(
            (a.scope.clone(), a.metric, a.op, a.value),
            (Scope::All, Metric::Percentile(95.0), Op::Lt, 200.0)
        );
        let b = t("step:\"place order\" p99<500ms");
        assert_eq!(b.scope, Scope::Step("place order".into()));
        assert_eq!((b.metric, b.value), (Metric::Percentile(99.0), 500.0));
        let c = t("errors<1%");
        assert!(c.percent && c.is_error_budget());
        assert_eq!(c.value, 1.0);
        let d = t("rate>=290/s");
        assert_eq!((d.metric, d.op, d.value), (Metric::Rate, Op::Ge, 290.0));
    }

    #[test]
    fn other_forms_parse() {
        assert_eq!(t("p(99.9) <= 1.5s").value, 1500.0);
        assert_eq!(t("p(99.9) <= 1.5s").metric, Metric::Percentile(99.9));
        assert_eq!(
            t("case:checkout avg<250us").scope,
            Scope::Case("checkout".into())
        );
        assert_eq!(t("case:checkout avg<250us").value, 0.25);
        assert_eq!(t("rate>600/m").value, 10.0);
        assert_eq!(
            t("step:\"say \\\"hi\\\"\" max<1s").scope,
            Scope::Step("say \"hi\"".into())
        );
        let d = t("dropped==0");
        assert!(!d.percent && d.op == Op::Eq);
        assert!(!t("step:login errors<5").is_error_budget());
    }

    #[test]
    fn bad_thresholds_say_why() {
        for (text, why) in [
            ("p95", "no comparison"),
            ("p95<fast", "does not start with a number"),
            ("p95<3h", "not a time unit"),
            ("latency<3ms", "unknown metric"),
            ("p101<3ms", "not a percentile"),
            ("step:\"open p95<3ms", "no closing"),
            ("errors<1s", "count or a percentage"),
            ("step:x dropped<1", "whole run"),
            ("<5", "no metric"),
        ] {
            let e = text.parse::<Threshold>().unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    fn report() -> LoadReport {
        let mut h = histo::new();
        for v in 1..=1000u64 {
            histo::record(&mut h, v * 1000);
        }
        let row = histo::row(
            "place order",
            &h,
            histo::Counts {
                samples: 1000,
                errors: 5,
                ..Default::default()
            },
            10.0,
        );
        LoadReport {
            summary: atf_reports::load::LoadSummary {
                duration_s: 10.0,
                iterations: 2950,
                dropped: 50,
                ..Default::default()
            },
            steps: vec![row.clone()],
            total: row,
            ..LoadReport::default()
        }
    }

    #[test]
    fn verdicts_use_the_measured_part() {
        let r = report();
        let v = |s: &str| t(s).evaluate(&r, "--threshold");
        assert!(v("p95<960ms").ok);
        assert!(!v("p95<940ms").ok);
        assert_eq!(v("p95<940ms").measured, "950ms");
        assert!(v("step:\"place order\" p99.9<=1001ms").ok);
        assert!(v("errors<1%").ok);
        assert_eq!(v("errors<1%").measured, "0.50%");
        assert!(!v("errors<5").ok);
        assert!(v("rate>=290/s").ok);
        assert_eq!(v("rate>=290/s").measured, "295.0/s");
        assert!(v("step:\"place order\" rate==100/s").ok);
        assert!(!v("dropped==0").ok);
        assert_eq!(v("dropped<2%").measured, "1.67%");
        assert!(!v("case:nothing p95<1s").ok);
    }

    #[test]
    fn unknown_labels_are_named() {
        let e = t("step:\"place ordr\" p99<1s")
            .check_scope(["place order", "pay"], ["checkout"])
            .unwrap_err();
        assert!(e.contains("place order"), "{e}");
        assert!(
            t("case:checkout p99<1s")
                .check_scope(["x"], ["checkout"])
                .is_ok()
        );
    }
}
