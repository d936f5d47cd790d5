//! Reading typed fields out of parsed JSON, with a [`Diagnostic`] for every
//! wrong type, unknown field (with "did you mean") and bad value, pointing
//! at the line and column in the file.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::diag::{Diagnostic, did_you_mean};
use crate::jsonpos::{Positions, escape};

/// One source file being read: its text, positions and the problems found.
pub struct Src<'a> {
    /// The file as shown to the user.
    pub file: &'a Path,
    /// Its text.
    pub text: &'a str,
    /// Positions of its values.
    pub pos: Positions,
    /// Problems found so far.
    pub diags: Vec<Diagnostic>,
}

/// A JSON file read and parsed (once: values and positions together).
pub struct JsonFile {
    /// The path as shown (relative to the working directory when below it).
    pub shown: std::path::PathBuf,
    /// The text.
    pub text: String,
    /// The parsed value.
    pub value: Value,
    /// Where each value and key begins.
    pub pos: Positions,
}

/// Reads and parses the JSON file at `path`; `what` names it in errors
/// ("the suite file"). The error is a diagnostic naming the file.
pub fn read(path: &Path, what: &str) -> Result<JsonFile, Diagnostic> {
    let shown = crate::diag::display_path(path);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::at(&shown, None, None, format!("cannot read {what}: {e}")))?;
    parse(path, text)
}

/// Parses `text` as the JSON file at `path` (read from disk by [`read`],
/// or the unsaved text of an editor).
pub fn parse(path: &Path, mut text: String) -> Result<JsonFile, Diagnostic> {
    let shown = crate::diag::display_path(path);
    // Editors on Windows save a UTF-8 byte-order mark; JSON has no use for it.
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let (value, pos) = crate::jsonpos::parse(&text).map_err(|e| {
        Diagnostic::at(
            &shown,
            Some(&text),
            Some(e.pos),
            format!("invalid JSON: {}", e.message),
        )
    })?;
    Ok(JsonFile {
        shown,
        text,
        value,
        pos,
    })
}

impl<'a> Src<'a> {
    /// Starts reading `text` of `file`. A key written twice in one object
    /// is a problem at its second place (JSON parsers keep only one).
    pub fn new(file: &'a Path, text: &'a str, pos: Positions) -> Src<'a> {
        let mut diags = Vec::new();
        for d in pos.duplicates() {
            diags.push(Diagnostic::at(
                file,
                Some(text),
                Some(d.again),
                format!(
                    "`{}` is written twice in this object (first at line {}, column {}); only one can count",
                    d.key, d.first.line, d.first.col
                ),
            ));
        }
        Src {
            file,
            text,
            pos,
            diags,
        }
    }

    /// Records a problem with the value at `ptr`.
    pub fn error(&mut self, ptr: &str, message: impl Into<String>) {
        let pos = self.pos.nearest(ptr);
        let d = Diagnostic::at(self.file, Some(self.text), pos, message);
        self.diags.push(d);
    }

    /// Records a problem with the key at `ptr`, with a hint.
    pub fn error_key(&mut self, ptr: &str, message: impl Into<String>, hint: Option<String>) {
        let pos = self.pos.key_or_value(ptr);
        let d = Diagnostic::at(self.file, Some(self.text), pos, message).with_hint(hint);
        self.diags.push(d);
    }

    /// Records a problem with the value at `ptr`, with a hint.
    pub fn error_hint(&mut self, ptr: &str, message: impl Into<String>, hint: Option<String>) {
        let pos = self.pos.nearest(ptr);
        let d = Diagnostic::at(self.file, Some(self.text), pos, message).with_hint(hint);
        self.diags.push(d);
    }

    /// Reports every member of `obj` not in `known`, as part of `what`.
    pub fn known_fields(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        known: &crate::format::Fields,
        what: &str,
    ) {
        let known = known.names();
        for key in obj.keys() {
            if !known.contains(key) {
                let hint = did_you_mean(key, known.iter().map(String::as_str))
                    .or_else(|| Some(format!("expected one of: {}", known.join(", "))));
                self.error_key(
                    &child(ptr, key),
                    format!("unknown field `{key}` in {what}"),
                    hint,
                );
            }
        }
    }

    /// The object at `ptr`, or an error saying what was expected.
    pub fn object<'v>(
        &mut self,
        v: &'v Value,
        ptr: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.error(
                    ptr,
                    format!("{what} must be an object, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// An optional string field.
    pub fn opt_str(&mut self, obj: &Map<String, Value>, ptr: &str, field: &str) -> Option<String> {
        match obj.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => {
                self.error(
                    &child(ptr, field),
                    format!("`{field}` must be a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// An optional list of strings.
    pub fn str_list(&mut self, obj: &Map<String, Value>, ptr: &str, field: &str) -> Vec<String> {
        match obj.get(field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            &format!("{}/{i}", child(ptr, field)),
                            format!("`{field}` must be a list of strings, found {}", kind(other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.error(
                    &child(ptr, field),
                    format!("`{field}` must be a list of strings, found {}", kind(other)),
                );
                Vec::new()
            }
        }
    }

    /// An optional object field (empty when absent).
    pub fn opt_object(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        field: &str,
    ) -> Map<String, Value> {
        match obj.get(field) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                self.error(
                    &child(ptr, field),
                    format!("`{field}` must be an object, found {}", kind(other)),
                );
                Map::new()
            }
        }
    }

    /// An optional duration field (`"2s"` or milliseconds).
    pub fn opt_duration(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        field: &str,
    ) -> Option<Duration> {
        let v = obj.get(field)?;
        if v.is_null() {
            return None;
        }
        match atf_sdk::parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(&child(ptr, field), format!("`{field}`: {e}"));
                None
            }
        }
    }
}

/// The pointer of member `key` of the value at `ptr`.
pub fn child(ptr: &str, key: &str) -> String {
    format!("{ptr}/{}", escape(key))
}

/// "a string", "a number"... for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
