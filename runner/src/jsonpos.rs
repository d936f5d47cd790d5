//! JSON text → value and positions, in one parse.
//!
//! Case, suite and project files are parsed once, by `jsonc-parser` set to
//! strict JSON (no comments, trailing commas, single quotes, hex numbers or
//! bare keys). Its syntax tree keeps the byte range of every key and value;
//! one walk over the tree builds the `serde_json::Value` the loader reads
//! and maps every JSON Pointer (`/steps/0/keyword`) to the line and column
//! where its value — and, for object members, its key — begins, so that
//! problems found later point at the right place. Keys written twice in one
//! object are collected (the last one counts, as in serde_json) for the
//! loader to report.

use std::collections::HashMap;

use jsonc_parser::ast;
use serde_json::{Map, Value};

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

/// Where each value and key of a JSON text begins.
#[derive(Debug, Default)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    duplicates: Vec<Duplicate>,
}

/// A key written twice in one object (the last value counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The key.
    pub key: String,
    /// The JSON Pointer of the member.
    pub pointer: String,
    /// Where it is written first.
    pub first: Pos,
    /// Where it is written again.
    pub again: Pos,
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the problem is.
    pub pos: Pos,
    /// What it is.
    pub message: String,
}

/// How deeply values may nest (serde_json's limit).
const MAX_DEPTH: usize = 128;

/// Parses `text` as strict JSON into its value and the positions of its
/// values and keys. Never panics, whatever the text.
pub fn parse(text: &str) -> Result<(Value, Positions), SyntaxError> {
    let options = jsonc_parser::ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
    };
    let parsed = jsonc_parser::parse_to_ast(text, &Default::default(), &options).map_err(|e| {
        SyntaxError {
            pos: Pos {
                line: e.line_display().max(1),
                col: e.column_display().max(1),
            },
            message: first_lower(&e.kind().to_string()),
        }
    })?;
    let mut walk = Walk {
        lines: Lines::new(text),
        out: Positions::default(),
    };
    let Some(root) = parsed.value else {
        return Err(SyntaxError {
            pos: walk.lines.pos(text.len()),
            message: "no JSON value in the file".into(),
        });
    };
    let mut ptr = String::new();
    let value = walk.value(&root, &mut ptr, 0)?;
    Ok((value, walk.out))
}

/// "Expected comma" → "expected comma", as the other messages read.
fn first_lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

impl Positions {
    /// Keys written more than once in the same object, in text order.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Where the value at `pointer` begins.
    pub fn value(&self, pointer: &str) -> Option<Pos> {
        self.values.get(pointer).copied()
    }

    /// Where the key of the member at `pointer` begins, else its value, else
    /// the nearest enclosing value.
    pub fn key_or_value(&self, pointer: &str) -> Option<Pos> {
        if let Some(p) = self.keys.get(pointer) {
            return Some(*p);
        }
        self.nearest(pointer)
    }

    /// The position of `pointer`'s value or of its nearest ancestor.
    pub fn nearest(&self, pointer: &str) -> Option<Pos> {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return Some(*pos);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

/// Escapes one JSON Pointer segment.
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Byte offsets → line and column. Offsets asked for in increasing order
/// (as a walk of the tree does) cost only the text between them.
struct Lines<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// The last answer: byte offset, line index, column.
    last: (usize, usize, usize),
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines {
            text,
            starts,
            last: (0, 0, 1),
        }
    }

    fn pos(&mut self, byte: usize) -> Pos {
        let byte = byte.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= byte) - 1;
        let (from, col) = if self.last.1 == line && self.last.0 <= byte {
            (self.last.0, self.last.2)
        } else {
            (self.starts[line], 1)
        };
        let col = col + self.text.get(from..byte).map_or(0, |t| t.chars().count());
        self.last = (byte, line, col);
        Pos {
            line: line + 1,
            col,
        }
    }
}

struct Walk<'a> {
    lines: Lines<'a>,
    out: Positions,
}

impl Walk<'_> {
    fn value(
        &mut self,
        v: &ast::Value<'_>,
        ptr: &mut String,
        depth: usize,
    ) -> Result<Value, SyntaxError> {
        let start = match v {
            ast::Value::StringLit(s) => s.range.start,
            ast::Value::NumberLit(n) => n.range.start,
            ast::Value::BooleanLit(b) => b.range.start,
            ast::Value::Object(o) => o.range.start,
            ast::Value::Array(a) => a.range.start,
            ast::Value::NullKeyword(n) => n.range.start,
        };
        let here = self.lines.pos(start);
        self.out.values.insert(ptr.clone(), here);
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos: here,
                message: format!("values nest more than {MAX_DEPTH} levels deep"),
            });
        }
        Ok(match v {
            ast::Value::StringLit(s) => Value::String(s.value.to_string()),
            ast::Value::NumberLit(n) => match serde_json::from_str::<serde_json::Number>(n.value) {
                Ok(num) => Value::Number(num),
                Err(_) => {
                    return Err(SyntaxError {
                        pos: here,
                        message: format!("the number {} is out of range", n.value),
                    });
                }
            },
            ast::Value::BooleanLit(b) => Value::Bool(b.value),
            ast::Value::NullKeyword(_) => Value::Null,
            ast::Value::Array(a) => {
                let mut items = Vec::with_capacity(a.elements.len());
                for (i, e) in a.elements.iter().enumerate() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&i.to_string());
                    let item = self.value(e, ptr, depth + 1);
                    ptr.truncate(len);
                    items.push(item?);
                }
                Value::Array(items)
            }
            ast::Value::Object(o) => {
                let mut map = Map::new();
                let mut seen: HashMap<&str, Pos> = HashMap::new();
                for prop in &o.properties {
                    let (key, key_start) = match &prop.name {
                        ast::ObjectPropName::String(s) => (s.value.as_ref(), s.range.start),
                        ast::ObjectPropName::Word(w) => (w.value, w.range.start),
                    };
                    let key_pos = self.lines.pos(key_start);
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape(key));
                    if let Some(first) = seen.insert(key, key_pos) {
                        self.out.duplicates.push(Duplicate {
                            key: key.to_string(),
                            pointer: ptr.clone(),
                            first,
                            again: key_pos,
                        });
                    }
                    self.out.keys.insert(ptr.clone(), key_pos);
                    let value = self.value(&prop.value, ptr, depth + 1);
                    ptr.truncate(len);
                    map.insert(key.to_string(), value?);
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_keys() {
        let text =
            "{\n  \"name\": \"x\",\n  \"steps\": [\n    {\"keyword\": \"log\", \"a/b\": 1}\n  ]\n}";
        let (v, p) = parse(text).unwrap();
        assert_eq!(v["steps"][0]["a/b"], 1);
        assert_eq!(p.value(""), Some(Pos { line: 1, col: 1 }));
        assert_eq!(p.value("/name"), Some(Pos { line: 2, col: 11 }));
        assert_eq!(p.key_or_value("/name"), Some(Pos { line: 2, col: 3 }));
        assert_eq!(p.value("/steps/0/keyword"), Some(Pos { line: 4, col: 17 }));
        assert_eq!(
            p.key_or_value("/steps/0/a~1b"),
            Some(Pos { line: 4, col: 24 })
        );
        assert_eq!(
            p.nearest("/steps/0/nope/deeper"),
            Some(Pos { line: 4, col: 5 })
        );
    }

    #[test]
    fn columns_count_characters_and_values_match_serde_json() {
        let text = "{\"ä€😀\": \"ü\\n\\u00e9\\ud83d\\ude00\", \"n\": [1, -2.5e3, 18446744073709551615, 1e300]}";
        let (v, p) = parse(text).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(p.value("/n"), Some(Pos { line: 1, col: 39 }));
    }

    #[test]
    fn duplicates_keep_the_last_value_and_both_places() {
        let (v, p) = parse("{\"a\": 1,\n \"a\": 2}").unwrap();
        assert_eq!(v["a"], 2);
        let d = &p.duplicates()[0];
        assert_eq!(
            (d.first, d.again),
            (Pos { line: 1, col: 2 }, Pos { line: 2, col: 2 })
        );
    }

    #[test]
    fn refuses_what_json_does_not_allow() {
        for (text, line) in [
            ("{\"a\": 1,}", 1),
            ("{\n// c\n\"a\": 1}", 2),
            ("{'a': 1}", 1),
            ("{a: 1}", 1),
            ("[0x10]", 1),
            ("[+1]", 1),
            ("[1 2]", 1),
            ("", 1),
            ("[1e400]", 1),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.pos.line, line, "{text}: {e:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).unwrap_err().message.contains("128 levels"));
        let deeper = "[".repeat(100_000);
        assert!(parse(&deeper).is_err());
    }

    #[test]
    fn survives_garbage() {
        for text in [
            "{",
            "{\"a\":",
            "[1,",
            "\"\\u12",
            "{\"a\" 1}",
            "]]]",
            "\u{0}",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
