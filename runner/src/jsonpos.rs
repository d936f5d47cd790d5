//! Positions inside JSON text.
//!
//! serde_json parses case files into plain values without positions, so
//! after a successful parse this module scans the text once more and maps
//! every JSON Pointer (`/steps/0/keyword`) to the line and column where its
//! value — and, for object members, its key — begins. Validation errors
//! found later on the value can then point at the right place in the file.

use std::collections::HashMap;

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

/// A key written twice in one object (serde_json keeps the last value).
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

impl Positions {
    /// Scans `text`. Malformed text gives the positions found before the
    /// problem; it never panics.
    pub fn scan(text: &str) -> Positions {
        let mut s = Scanner {
            chars: text.chars().collect(),
            i: 0,
            line: 1,
            col: 1,
            out: Positions::default(),
        };
        s.ws();
        s.value(String::new(), 0);
        s.out
    }

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

struct Scanner {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
    out: Positions,
}

const MAX_DEPTH: usize = 256;

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn value(&mut self, ptr: String, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let here = self.pos();
        self.out.values.insert(ptr.clone(), here);
        match self.peek() {
            Some('{') => {
                self.bump();
                self.ws();
                if self.peek() == Some('}') {
                    self.bump();
                    return true;
                }
                loop {
                    self.ws();
                    let key_pos = self.pos();
                    let Some(key) = self.string() else {
                        return false;
                    };
                    let child = format!("{ptr}/{}", escape(&key));
                    if let Some(first) = self.out.keys.get(&child).copied() {
                        self.out.duplicates.push(Duplicate {
                            key: key.clone(),
                            pointer: child.clone(),
                            first,
                            again: key_pos,
                        });
                    } else {
                        self.out.keys.insert(child.clone(), key_pos);
                    }
                    self.ws();
                    if self.bump() != Some(':') {
                        return false;
                    }
                    self.ws();
                    if !self.value(child, depth + 1) {
                        return false;
                    }
                    self.ws();
                    match self.bump() {
                        Some(',') => continue,
                        Some('}') => return true,
                        _ => return false,
                    }
                }
            }
            Some('[') => {
                self.bump();
                self.ws();
                if self.peek() == Some(']') {
                    self.bump();
                    return true;
                }
                let mut idx = 0usize;
                loop {
                    self.ws();
                    if !self.value(format!("{ptr}/{idx}"), depth + 1) {
                        return false;
                    }
                    idx += 1;
                    self.ws();
                    match self.bump() {
                        Some(',') => continue,
                        Some(']') => return true,
                        _ => return false,
                    }
                }
            }
            Some('"') => self.string().is_some(),
            Some(_) => {
                while let Some(c) = self.peek() {
                    if c == ',' || c == '}' || c == ']' || c.is_whitespace() {
                        break;
                    }
                    self.bump();
                }
                true
            }
            None => false,
        }
    }

    fn string(&mut self) -> Option<String> {
        if self.bump() != Some('"') {
            return None;
        }
        let mut out = String::new();
        loop {
            match self.bump()? {
                '"' => return Some(out),
                '\\' => {
                    let c = self.bump()?;
                    match c {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let mut code = String::new();
                            for _ in 0..4 {
                                code.push(self.bump()?);
                            }
                            let n = u32::from_str_radix(&code, 16).ok()?;
                            if (0xD800..0xDC00).contains(&n) && self.peek() == Some('\\') {
                                // A surrogate pair: \uD83D\uDE00.
                                self.bump();
                                if self.bump()? != 'u' {
                                    return None;
                                }
                                let mut low = String::new();
                                for _ in 0..4 {
                                    low.push(self.bump()?);
                                }
                                let lo = u32::from_str_radix(&low, 16).ok()?;
                                let full =
                                    0x10000 + ((n - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                                out.push(char::from_u32(full).unwrap_or('\u{FFFD}'));
                            } else {
                                out.push(char::from_u32(n).unwrap_or('\u{FFFD}'));
                            }
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_keys() {
        let text =
            "{\n  \"name\": \"x\",\n  \"steps\": [\n    {\"keyword\": \"log\", \"a/b\": 1}\n  ]\n}";
        let p = Positions::scan(text);
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
    fn survives_garbage() {
        for text in ["", "{", "{\"a\":", "[1,", "\"\\u12", "{\"a\" 1}", "]]]"] {
            let _ = Positions::scan(text);
        }
    }
}
