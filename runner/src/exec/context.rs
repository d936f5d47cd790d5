//! The names a placeholder can read, in the order the spec gives: values
//! saved by the case's steps, `--var` overrides, the data row and case
//! vars, suite vars (nearest suite first), the global context, and the
//! environment's vars from the project file.

use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};

use crate::resolve::Lookup;

/// One layered view of the names in scope.
pub struct Scope<'a> {
    /// Values saved by the case's steps.
    pub saved: Option<&'a Mutex<Map<String, Value>>>,
    /// `--var` overrides.
    pub overrides: &'a Map<String, Value>,
    /// The data row and case vars, resolved.
    pub vars: Option<&'a Map<String, Value>>,
    /// Suite vars, nearest suite first.
    pub suites: &'a [Arc<Map<String, Value>>],
    /// The global context (values saved by suite steps).
    pub global: &'a RwLock<Map<String, Value>>,
    /// The environment's vars.
    pub env: &'a Map<String, Value>,
}

impl Lookup for Scope<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        if let Some(saved) = self.saved
            && let Ok(m) = saved.lock()
            && let Some(v) = m.get(name)
        {
            return Some(v.clone());
        }
        if let Some(v) = self.overrides.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.vars.and_then(|m| m.get(name)) {
            return Some(v.clone());
        }
        for s in self.suites {
            if let Some(v) = s.get(name) {
                return Some(v.clone());
            }
        }
        if let Ok(g) = self.global.read()
            && let Some(v) = g.get(name)
        {
            return Some(v.clone());
        }
        self.env.get(name).cloned()
    }

    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(saved) = self.saved
            && let Ok(m) = saved.lock()
        {
            out.extend(m.keys().cloned());
        }
        out.extend(self.overrides.keys().cloned());
        if let Some(v) = self.vars {
            out.extend(v.keys().cloned());
        }
        for s in self.suites {
            out.extend(s.keys().cloned());
        }
        if let Ok(g) = self.global.read() {
            out.extend(g.keys().cloned());
        }
        out.extend(self.env.keys().cloned());
        out.sort();
        out.dedup();
        out
    }
}

/// A plain map as a lookup (vars being resolved see the ones before them).
pub struct Layered<'a> {
    /// Names resolved so far, searched first.
    pub first: &'a Map<String, Value>,
    /// Everything else.
    pub rest: &'a dyn Lookup,
}

impl Lookup for Layered<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        self.first
            .get(name)
            .cloned()
            .or_else(|| self.rest.get(name))
    }
    fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = self.first.keys().cloned().collect();
        out.extend(self.rest.names());
        out.sort();
        out.dedup();
        out
    }
}

/// Resolves `vars` (compiled at load) in the order written; each sees the
/// ones before it and `rest`. Names in `skip` keep the value already in
/// `into`.
pub fn resolve_vars(
    vars: &crate::model::Vars,
    into: &mut Map<String, Value>,
    rest: &dyn Lookup,
    base_dir: &std::path::Path,
    skip: &Map<String, Value>,
) -> Result<(), String> {
    for (name, code) in vars.code() {
        if skip.contains_key(name) {
            continue;
        }
        let value = {
            let template = code.as_ref().map_err(|e| format!("var `{name}`: {e}"))?;
            let lookup = Layered { first: into, rest };
            let r = crate::resolve::Resolver {
                lookup: &lookup,
                base_dir,
            };
            template
                .render(&r)
                .map_err(|e| format!("var `{name}`: {e}"))?
        };
        into.insert(name.clone(), value);
    }
    Ok(())
}
