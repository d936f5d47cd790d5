//! Which cases run: `--tags` expressions, `--filter` globs, the
//! environment's `exclude_tags`, `--rerun-failed` and `--shard K/N`.
//!
//! Sharding (see [`crate::shard`]) deals the selected runs — each matrix
//! cell's runs counted apart — by a stable hash, or balances them by the
//! durations of an earlier report, so every case lands in exactly one
//! shard and every machine of a sharded job computes the same slices.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::Selection;
use crate::model::CaseRun;

/// A parsed `--tags` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum TagExpr {
    /// The case has this tag.
    Tag(String),
    /// Negation.
    Not(Box<TagExpr>),
    /// Both.
    And(Box<TagExpr>, Box<TagExpr>),
    /// Either.
    Or(Box<TagExpr>, Box<TagExpr>),
}

impl TagExpr {
    /// Parses `smoke and not slow`, `(order or payment) and smoke`; `&&`,
    /// `||`, `!` and `,` (or) are accepted too.
    pub fn parse(text: &str) -> Result<TagExpr, String> {
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err("the tag expression is empty".into());
        }
        let mut p = Parser {
            tokens: &tokens,
            i: 0,
            text,
        };
        let e = p.or()?;
        if p.i < tokens.len() {
            return Err(format!(
                "unexpected `{}` in tag expression `{text}`",
                tokens[p.i]
            ));
        }
        Ok(e)
    }

    /// Whether a case with `tags` is selected.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            TagExpr::Tag(t) => tags.iter().any(|x| x == t),
            TagExpr::Not(e) => !e.matches(tags),
            TagExpr::And(a, b) => a.matches(tags) && b.matches(tags),
            TagExpr::Or(a, b) => a.matches(tags) || b.matches(tags),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' || c == '!' || c == ',' {
            out.push(c.to_string());
            chars.next();
        } else if c == '&' || c == '|' {
            chars.next();
            if chars.peek() == Some(&c) {
                chars.next();
            }
            out.push(if c == '&' { "and".into() } else { "or".into() });
        } else if c.is_alphanumeric() || "-_.:/@".contains(c) {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_alphanumeric() || "-_.:/@".contains(c) {
                    word.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(word);
        } else {
            return Err(format!(
                "unexpected character `{c}` in tag expression `{text}`"
            ));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [String],
    i: usize,
    text: &'a str,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        let tokens: &'a [String] = self.tokens;
        tokens.get(self.i).map(String::as_str)
    }

    fn or(&mut self) -> Result<TagExpr, String> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some("or") | Some(",")) {
            self.i += 1;
            let right = self.and()?;
            left = TagExpr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<TagExpr, String> {
        let mut left = self.unary()?;
        while self.peek() == Some("and") {
            self.i += 1;
            let right = self.unary()?;
            left = TagExpr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<TagExpr, String> {
        match self.peek() {
            Some("not") | Some("!") => {
                self.i += 1;
                Ok(TagExpr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(")") {
                    return Err(format!("missing `)` in tag expression `{}`", self.text));
                }
                self.i += 1;
                Ok(e)
            }
            Some(t) if !matches!(t, "and" | "or" | ")" | ",") => {
                self.i += 1;
                Ok(TagExpr::Tag(t.to_string()))
            }
            Some(t) => Err(format!(
                "expected a tag before `{t}` in tag expression `{}`",
                self.text
            )),
            None => Err(format!("tag expression `{}` ends too early", self.text)),
        }
    }
}

/// A compiled selection.
pub struct Selector {
    tags: Option<TagExpr>,
    filters: Option<GlobSet>,
    selection: Selection,
}

impl Selector {
    /// Compiles `selection`; errors are usage errors.
    pub fn new(selection: &Selection) -> Result<Selector, String> {
        let tags = selection
            .tags
            .as_deref()
            .map(TagExpr::parse)
            .transpose()
            .map_err(|e| format!("--tags: {e}"))?;
        let filters = if selection.filters.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for f in &selection.filters {
                // A filter without glob characters matches as a substring.
                let pattern = if f.contains(['*', '?', '[', '{']) {
                    f.clone()
                } else {
                    format!("*{f}*")
                };
                b.add(Glob::new(&pattern).map_err(|e| format!("--filter `{f}`: {e}"))?);
            }
            Some(b.build().map_err(|e| format!("--filter: {e}"))?)
        };
        Ok(Selector {
            tags,
            filters,
            selection: selection.clone(),
        })
    }

    /// Whether one run is selected, before sharding.
    pub fn wants(&self, run: &CaseRun) -> bool {
        let tags = run.tags();
        if self.selection.exclude_tags.iter().any(|t| tags.contains(t)) {
            return false;
        }
        if let Some(e) = &self.tags
            && !e.matches(tags)
        {
            return false;
        }
        if let Some(f) = &self.filters
            && !f.is_match(&run.name)
        {
            return false;
        }
        true
    }

    /// `--rerun-failed`: only the runs the last report names (matrix
    /// cells included, as they are named after expansion; a repetition
    /// `name #k` names its case).
    pub fn keep_only<C>(&self, phases: Vec<(C, Vec<CaseRun>)>) -> Vec<(C, Vec<CaseRun>)> {
        let Some(only) = &self.selection.only else {
            return phases;
        };
        let wanted: std::collections::HashSet<(&str, &str)> = only
            .iter()
            .map(|(file, name)| (file.as_str(), strip_repetition(name)))
            .collect();
        phases
            .into_iter()
            .map(|(cell, runs)| {
                let runs = runs
                    .into_iter()
                    .filter(|r| wanted.contains(&(r.file(), r.name.as_str())))
                    .collect();
                (cell, runs)
            })
            .collect()
    }

    /// The selected runs of `runs`, sorted, with the shard applied.
    pub fn apply(&self, runs: Vec<CaseRun>) -> Vec<CaseRun> {
        let phases = self.shard(self.keep_only(vec![((), self.select(runs))]));
        phases.into_iter().flat_map(|(_, runs)| runs).collect()
    }

    /// The selected runs of `runs`, sorted, before sharding.
    pub fn select(&self, runs: Vec<CaseRun>) -> Vec<CaseRun> {
        let mut selected: Vec<CaseRun> = runs.into_iter().filter(|r| self.wants(r)).collect();
        selected.sort_by_key(|r| r.sort_key());
        selected
    }

    /// This run's shard of the runs of every matrix cell: each run (a case
    /// in a cell) is in exactly one shard.
    pub fn shard<C>(&self, phases: Vec<(C, Vec<CaseRun>)>) -> Vec<(C, Vec<CaseRun>)> {
        let Some(shard) = self.selection.shard else {
            return phases;
        };
        let keys: Vec<(String, String)> = phases
            .iter()
            .flat_map(|(_, runs)| runs.iter())
            .map(|r| (r.file().to_string(), r.name.clone()))
            .collect();
        let mine = crate::shard::assign(&keys, shard, self.selection.durations.as_ref());
        let mut mine = mine.into_iter();
        phases
            .into_iter()
            .map(|(cell, runs)| {
                let runs = runs
                    .into_iter()
                    .filter(|_| mine.next().unwrap_or(false))
                    .collect();
                (cell, runs)
            })
            .collect()
    }
}

/// `name #3` → `name` (a repetition of `--repeat-each`/`--until-fail`).
fn strip_repetition(name: &str) -> &str {
    match name.rsplit_once(" #") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn repetitions_name_their_case() {
        assert_eq!(strip_repetition("create order #3"), "create order");
        assert_eq!(strip_repetition("issue #12 fix"), "issue #12 fix");
        assert_eq!(strip_repetition("plain"), "plain");
    }

    #[test]
    fn tag_expressions() {
        let e = TagExpr::parse("smoke and not slow").unwrap();
        assert!(e.matches(&tags(&["smoke"])));
        assert!(!e.matches(&tags(&["smoke", "slow"])));
        let e = TagExpr::parse("(order or payment) and smoke").unwrap();
        assert!(e.matches(&tags(&["payment", "smoke"])));
        assert!(!e.matches(&tags(&["payment"])));
        let e = TagExpr::parse("a || b && !c").unwrap();
        assert!(e.matches(&tags(&["a", "c"])));
        assert!(!e.matches(&tags(&["b", "c"])));
        assert!(TagExpr::parse("smoke and").is_err());
        assert!(TagExpr::parse("(smoke").is_err());
        assert!(TagExpr::parse("").is_err());
        assert!(TagExpr::parse("a b").is_err());
    }
}
