//! SQL scripts of `pg.exec`: splitting a script into its statements (for
//! `transaction: false`, where each statement runs and commits on its own)
//! and turning a character position of a server error into a line and column.
//!
//! Statements end at a `;` outside quotes (`'…'`, `E'…'`, `"…"`),
//! dollar-quoted bodies (`$$…$$`, `$fn$…$fn$`) and comments (`-- …`,
//! nested `/* … */`), as psql splits them.

/// One statement of a script and the line (from 1) it starts on.
#[derive(Debug, PartialEq)]
pub(crate) struct Statement<'a> {
    pub(crate) sql: &'a str,
    pub(crate) line: usize,
}

/// The statements of `script`, without the empty ones (only blanks and comments).
pub(crate) fn split(script: &str) -> Vec<Statement<'_>> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut code: Option<usize> = None;
    let mut i = 0;
    // A statement starts at its first code, after any blanks and comments.
    fn push<'a>(out: &mut Vec<Statement<'a>>, script: &'a str, code: Option<usize>, to: usize) {
        if let Some(from) = code {
            out.push(Statement {
                sql: script[from..to].trim_end(),
                line: line_col(script, from).0,
            });
        }
    }
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = script[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while i < bytes.len() && depth > 0 {
                    if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            b'\'' => {
                code.get_or_insert(i);
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_ident(bytes[i - 2]));
                i = quoted_end(bytes, i, b'\'', escapes);
                continue;
            }
            b'"' => {
                code.get_or_insert(i);
                i = quoted_end(bytes, i, b'"', false);
                continue;
            }
            b'$' if i == 0 || !is_ident(bytes[i - 1]) => {
                if let Some(tag_len) = dollar_tag(&bytes[i..]) {
                    code.get_or_insert(i);
                    let tag = &script[i..i + tag_len];
                    let body = i + tag_len;
                    i = script[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag_len);
                    continue;
                }
                code.get_or_insert(i);
            }
            b';' => {
                push(&mut out, script, code, i);
                code = None;
            }
            c if !c.is_ascii_whitespace() => {
                code.get_or_insert(i);
            }
            _ => {}
        }
        i += 1;
    }
    push(&mut out, script, code, bytes.len());
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Where a quoted string or identifier that opens at `open` ends (just past
/// its closing quote): a doubled quote is part of it, and so is a
/// backslash-escaped character when `escapes`.
fn quoted_end(bytes: &[u8], open: usize, quote: u8, escapes: bool) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if escapes && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The length of the dollar-quote tag (`$$`, `$body$`) at the start of `s`, if it is one.
fn dollar_tag(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() && s[i] != b'$' {
        let ok = if i == 1 {
            s[i].is_ascii_alphabetic() || s[i] == b'_' || s[i] >= 0x80
        } else {
            is_ident(s[i])
        };
        if !ok {
            return None;
        }
        i += 1;
    }
    (i < s.len()).then_some(i + 1)
}

/// The line and column (both from 1, the column in characters) of byte `at` of `text`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The byte offset of character `n` (from 1) of `text`, as PostgreSQL counts error positions.
pub(crate) fn char_offset(text: &str, n: usize) -> usize {
    text.char_indices()
        .nth(n.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqls(script: &str) -> Vec<&str> {
        split(script).into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(sqls("select 1; select 2;"), ["select 1", "select 2"]);
        assert_eq!(sqls("select 1"), ["select 1"]);
        assert_eq!(
            sqls("insert into t values ('a;b', \"c;d\"); -- x; y\nselect 2 /* ; /* ; */ ; */;"),
            [
                "insert into t values ('a;b', \"c;d\")",
                "select 2 /* ; /* ; */ ; */"
            ]
        );
        assert_eq!(
            sqls("select 'it''s;'; select 3"),
            ["select 'it''s;'", "select 3"]
        );
        assert_eq!(
            sqls(r"select E'a\';b'; select 4"),
            [r"select E'a\';b'", "select 4"]
        );
        assert_eq!(sqls(" ; -- only a comment\n ;\n"), Vec::<&str>::new());
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let script = "create function f() returns int as $$ select 1; $$ language sql;\n\
                      do $body$ begin perform 1; end $body$;\nselect $1";
        assert_eq!(
            sqls(script),
            [
                "create function f() returns int as $$ select 1; $$ language sql",
                "do $body$ begin perform 1; end $body$",
                "select $1"
            ]
        );
    }

    #[test]
    fn statements_know_their_line() {
        let s = split("\n\nselect 1;\n  select\n 2;");
        assert_eq!(s[0].line, 3);
        assert_eq!(s[1].line, 4);
    }

    #[test]
    fn positions_become_lines_and_columns() {
        let text = "select 1;\nselect é from nope";
        assert_eq!(line_col(text, char_offset(text, 1)), (1, 1));
        assert_eq!(line_col(text, char_offset(text, 19)), (2, 9));
        assert_eq!(char_offset(text, 1000), text.len());
    }
}
