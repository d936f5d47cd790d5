//! The mix of a load run: the selected cases, each with its weight, its
//! data rows (taken in turn), its suites, and the label of every step —
//! the step's `remark`, else `CASE: PHASE N KEYWORD` — by which samples
//! are aggregated (steps with the same remark share one row, as in
//! JMeter). Picking the next case is lock-free and spreads the cases
//! evenly by weight (a golden-ratio sequence over the cumulative weights).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use atf_reports::StepReport;
use globset::Glob;

use crate::exec::{KeywordTable, SuiteState, SuiteVars};
use crate::model::{Case, CaseRun, Step};

/// Step labels in order of first appearance.
#[derive(Default)]
pub struct Labels {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Labels {
    /// The id of `name`, added when new.
    pub fn id(&mut self, name: String) -> usize {
        if let Some(i) = self.index.get(&name) {
            return *i;
        }
        self.names.push(name.clone());
        self.index.insert(name, self.names.len() - 1);
        self.names.len() - 1
    }

    /// Every label, by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One case of the mix.
pub struct CasePlan {
    /// Its label in reports (the case name; with the file when two share a name).
    pub label: String,
    /// Its index among the cases (its row in the case table).
    pub id: usize,
    /// The case.
    pub case: Arc<Case>,
    /// Its runs: one, or one per data row.
    pub runs: Vec<CaseRun>,
    next_row: AtomicUsize,
    /// Its share of the iterations, relative to the other cases' weights.
    pub weight: f64,
    /// Its suites, outermost first.
    pub(crate) chain: Vec<Arc<SuiteState>>,
    /// The suites' vars once they are prepared.
    pub suite_vars: OnceLock<SuiteVars>,
    /// Labels of the prepare steps.
    pub prepare: Vec<usize>,
    /// Labels of the steps, per step set.
    pub steps: Vec<Vec<usize>>,
    /// Labels of the cleanup steps.
    pub cleanup: Vec<usize>,
    /// Labels of the undo steps, by their keyword and remark.
    pub undo: Vec<(String, Option<String>, usize)>,
}

impl CasePlan {
    /// The next data row's run (rows are taken in turn).
    pub fn next_run(&self) -> &CaseRun {
        let i = self.next_row.fetch_add(1, Ordering::Relaxed);
        &self.runs[i % self.runs.len()]
    }

    /// The label of a step report of this case: `phase` is `prepare`,
    /// `steps` or `cleanup` (undo steps report in `cleanup`).
    pub fn label_of(&self, phase: &str, r: &StepReport) -> Option<usize> {
        let at = r.index.checked_sub(1)?;
        match phase {
            "prepare" => self.prepare.get(at).copied(),
            "steps" => self.steps.get(r.set.map_or(0, |s| s - 1))?.get(at).copied(),
            _ if r.undo => self
                .undo
                .iter()
                .find(|(k, remark, _)| *k == r.keyword && *remark == r.remark)
                .map(|(_, _, l)| *l),
            _ => self.cleanup.get(at).copied(),
        }
    }
}

/// The cases of a load run and their step labels.
pub struct Mix {
    /// The cases with a weight above 0.
    pub cases: Vec<CasePlan>,
    /// Every step label.
    pub labels: Labels,
    cumulative: Vec<f64>,
    counter: AtomicU64,
}

fn step_label(case: &str, place: &str, step: &Step) -> String {
    match &step.remark {
        Some(r) if !r.trim().is_empty() => r.clone(),
        _ => format!("{case}: {place} {}", step.keyword),
    }
}

impl Mix {
    /// The mix of `runs` (loaded, selected, none broken). Weights: the
    /// last `--weight` glob matching the case name, else the case file's
    /// `weight`, else 1; cases of weight 0 are left out.
    pub(crate) fn build(
        runs: Vec<CaseRun>,
        weights: &[(String, f64)],
        states: &HashMap<PathBuf, Arc<SuiteState>>,
    ) -> Result<Mix, String> {
        let mut globs = Vec::with_capacity(weights.len());
        for (pattern, w) in weights {
            let m = Glob::new(pattern)
                .map_err(|e| format!("--weight `{pattern}`: {e}"))?
                .compile_matcher();
            globs.push((pattern.clone(), m, *w));
        }
        let mut used = vec![false; globs.len()];
        // Group the runs (data rows) by case, in the order they come.
        let mut groups: Vec<(Arc<Case>, Vec<CaseRun>)> = Vec::new();
        for run in runs {
            let Ok(case) = run.case.clone() else {
                continue;
            };
            match groups.iter_mut().find(|(c, _)| Arc::ptr_eq(c, &case)) {
                Some((_, list)) => list.push(run),
                None => groups.push((case, vec![run])),
            }
        }
        let mut name_count: HashMap<&str, usize> = HashMap::new();
        for (c, _) in &groups {
            *name_count.entry(c.name.as_str()).or_default() += 1;
        }
        let mut labels = Labels::default();
        let mut cases = Vec::new();
        for (case, runs) in &groups {
            let mut weight = case.weight.unwrap_or(1.0);
            for (i, (_, m, w)) in globs.iter().enumerate() {
                if m.is_match(&case.name) {
                    weight = *w;
                    used[i] = true;
                }
            }
            if weight <= 0.0 {
                continue;
            }
            let label = if name_count.get(case.name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{} ({})", case.name, case.file)
            } else {
                case.name.clone()
            };
            let mut undo = Vec::new();
            let mut note_undo = |s: &Step, labels: &mut Labels| {
                if let Some(u) = &s.undo
                    && !undo
                        .iter()
                        .any(|(k, r, _)| *k == u.keyword && *r == u.remark)
                {
                    let id = labels.id(step_label(&label, "undo", u));
                    undo.push((u.keyword.clone(), u.remark.clone(), id));
                }
            };
            let mut prepare = Vec::new();
            for (i, s) in case.prepare.iter().enumerate() {
                prepare.push(labels.id(step_label(&label, &format!("prepare {}", i + 1), s)));
                note_undo(s, &mut labels);
            }
            let several = case.steps.len() > 1;
            let mut steps = Vec::new();
            for (si, set) in case.steps.iter().enumerate() {
                let mut ids = Vec::new();
                for (i, s) in set.iter().enumerate() {
                    let place = if several {
                        format!("step {}.{}", si + 1, i + 1)
                    } else {
                        format!("step {}", i + 1)
                    };
                    ids.push(labels.id(step_label(&label, &place, s)));
                    note_undo(s, &mut labels);
                }
                steps.push(ids);
            }
            let mut cleanup = Vec::new();
            for (i, s) in case.cleanup.iter().enumerate() {
                cleanup.push(labels.id(step_label(&label, &format!("cleanup {}", i + 1), s)));
                note_undo(s, &mut labels);
            }
            let chain = case
                .suites
                .iter()
                .filter_map(|s| states.get(&s.dir).cloned())
                .collect();
            cases.push(CasePlan {
                id: cases.len(),
                label,
                case: case.clone(),
                runs: runs.clone(),
                next_row: AtomicUsize::new(0),
                weight,
                chain,
                suite_vars: OnceLock::new(),
                prepare,
                steps,
                cleanup,
                undo,
            });
        }
        if let Some(i) = used.iter().position(|u| !u) {
            let names: Vec<&str> = groups.iter().map(|(c, _)| c.name.as_str()).collect();
            let hint = crate::diag::did_you_mean(&globs[i].0, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_else(|| format!("; the cases are: {}", names.join(", ")));
            return Err(format!(
                "--weight `{}` matches no selected case{hint}",
                globs[i].0
            ));
        }
        if cases.is_empty() {
            return Err("every selected case has weight 0: nothing to run".into());
        }
        let mut sum = 0.0;
        let cumulative = cases
            .iter()
            .map(|c| {
                sum += c.weight;
                sum
            })
            .collect();
        Ok(Mix {
            cases,
            labels,
            cumulative,
            counter: AtomicU64::new(0),
        })
    }

    /// The case of the next iteration: over any stretch of iterations each
    /// case gets its share of the weight, without a lock.
    pub fn pick(&self) -> &CasePlan {
        if self.cases.len() == 1 {
            return &self.cases[0];
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let u = (n as f64 * 0.618_033_988_749_894_9).fract();
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let at = u * total;
        let i = self.cumulative.partition_point(|c| *c <= at);
        &self.cases[i.min(self.cases.len() - 1)]
    }

    /// Whether the virtual users of this mix may share threads
    /// ([`atf_keywords::local::run_group`]): every case runs one step set
    /// (more run on threads of their own), and every step, undo step
    /// included, calls a keyword that is [`atf_sdk::Keyword::cooperative`].
    /// Else why not, for the console.
    pub fn shares_threads(&self, keywords: &KeywordTable) -> Result<(), String> {
        fn blocking<'s>(step: &'s Step, keywords: &KeywordTable) -> Option<&'s str> {
            let own = keywords
                .for_step(None, &step.keyword)
                .is_none_or(|k| !k.cooperative());
            if own {
                return Some(&step.keyword);
            }
            step.undo.as_deref().and_then(|u| blocking(u, keywords))
        }
        for plan in &self.cases {
            let case = &plan.case;
            if case.steps.len() > 1 {
                return Err(format!("case `{}` runs step sets in parallel", plan.label));
            }
            let mut steps = case
                .prepare
                .iter()
                .chain(case.steps.iter().flatten())
                .chain(&case.cleanup);
            if let Some(k) = steps.find_map(|s| blocking(s, keywords)) {
                return Err(format!("`{k}` waits on its thread"));
            }
        }
        Ok(())
    }

    /// The case labels, by case id.
    pub fn case_labels(&self) -> Vec<String> {
        self.cases.iter().map(|c| c.label.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, weight: Option<f64>, remarks: &[Option<&str>]) -> Arc<Case> {
        let step = |r: &Option<&str>| Step {
            keyword: "assert".into(),
            remark: r.map(String::from),
            args: serde_json::json!({"value": 1}),
            expect: Default::default(),
            save: Default::default(),
            retry: None,
            timeout: None,
            undo: None,
            line: 1,
            at: Default::default(),
            code: Default::default(),
        };
        Arc::new(Case {
            matrix: Default::default(),
            name: name.into(),
            path: PathBuf::from(format!("/x/{name}.case.json")),
            file: format!("{name}.case.json"),
            remark: None,
            tags: Vec::new(),
            vars: Default::default(),
            data: None,
            timeout: None,
            locks: Vec::new(),
            weight,
            prepare: vec![step(&None)],
            steps: vec![remarks.iter().map(step).collect()],
            cleanup: Vec::new(),
            suites: Vec::new(),
            var_lines: Default::default(),
        })
    }

    fn run(c: &Arc<Case>, row: Option<usize>) -> CaseRun {
        CaseRun {
            case: Ok(c.clone()),
            name: c.name.clone(),
            row: row.map(|i| (i, Default::default())),
        }
    }

    #[test]
    fn weights_share_the_iterations() {
        let a = case("browse", None, &[Some("home")]);
        let b = case("checkout", Some(5.0), &[Some("home"), None]);
        let c = case("admin", None, &[None]);
        let mix = Mix::build(
            vec![run(&a, None), run(&b, None), run(&c, None)],
            &[("browse".into(), 3.0), ("adm*".into(), 0.0)],
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(mix.case_labels(), vec!["browse", "checkout"]);
        let mut counts = [0usize; 2];
        for _ in 0..8000 {
            counts[mix.pick().id] += 1;
        }
        assert!((counts[0] as i64 - 3000).abs() < 30, "{counts:?}");
        assert!((counts[1] as i64 - 5000).abs() < 30, "{counts:?}");
        // `home` is one label for both cases; unnamed steps get their place.
        assert_eq!(
            mix.labels.names(),
            &[
                "browse: prepare 1 assert",
                "home",
                "checkout: prepare 1 assert",
                "checkout: step 2 assert"
            ]
        );
    }

    #[test]
    fn rows_are_taken_in_turn_and_unused_weights_are_errors() {
        let a = case("rows", None, &[None]);
        let mix = Mix::build(
            vec![run(&a, Some(0)), run(&a, Some(1))],
            &[],
            &HashMap::new(),
        )
        .unwrap();
        let rows: Vec<usize> = (0..4)
            .map(|_| mix.cases[0].next_run().row.as_ref().unwrap().0)
            .collect();
        assert_eq!(rows, vec![0, 1, 0, 1]);
        let e = Mix::build(
            vec![run(&a, None)],
            &[("rowz".into(), 2.0)],
            &HashMap::new(),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("matches no selected case") && e.contains("rows"),
            "{e}"
        );
        let e = Mix::build(
            vec![run(&a, None)],
            &[("rows".into(), 0.0)],
            &HashMap::new(),
        )
        .err()
        .unwrap();
        assert!(e.contains("weight 0"), "{e}");
    }
}
