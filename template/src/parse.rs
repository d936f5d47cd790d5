//! Reading placeholders: [`scan`] splits a string into literal text and
//! `${...}` placeholders, and parses each placeholder's expression.
//!
//! The grammar (whitespace is allowed between tokens, not inside paths):
//!
//! ```text
//! expr    = literal | call path* | name path*
//! literal = number | 'text' | "text" | true | false | null
//! call    = function "(" [expr ("," expr)*] ")"
//! path    = "." key | "[" (integer | 'text' | "text") "]"
//! name    = letter or _, then letters, digits, _ or -
//! ```
//!
//! In quoted text a backslash escapes the quote and itself; any other
//! backslash is kept as written (`'\d+'` is the three characters `\d+`).
//! `env.NAME` (or `env['NAME']`) is the process environment variable NAME.
//! Function names and argument counts are checked here, so a placeholder
//! that parses can only fail on values.

use serde_json::Value;

use super::ResolveError;
use super::functions::{self, Function};

/// How deeply calls may nest, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

/// One step of a path into a value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Seg {
    /// `.name` or `['name']`: an object field (or, for digits, an array index).
    Key(String),
    /// `[3]` or `[-1]` (from the end): an array index.
    Index(i64),
}

/// A parsed placeholder expression.
#[derive(Debug)]
pub(crate) enum Expr {
    /// A number, text, `true`, `false` or `null`.
    Literal(Value),
    /// A top-level name and a path into its value.
    Name { name: String, path: Vec<Seg> },
    /// `env.VAR` and a path into its (text) value.
    Env { var: String, path: Vec<Seg> },
    /// A function call and a path into its result; `text` is the call as
    /// written, for messages.
    Call {
        func: &'static Function,
        args: Vec<Expr>,
        path: Vec<Seg>,
        text: String,
    },
}

/// A piece of a scanned string.
#[derive(Debug)]
pub(crate) enum Piece<'t> {
    /// Literal text, with `$${` already turned into `${`.
    Text(String),
    /// A placeholder: its full source (`${...}`) and its expression.
    Placeholder { source: &'t str, expr: Expr },
}

/// Splits `text` into literal text and parsed placeholders.
pub(crate) fn scan(text: &str) -> Result<Vec<Piece<'_>>, ResolveError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    // `i` only ever lands on char boundaries: it moves past ASCII markers
    // or by whole chars.
    while let Some(rest) = text.get(i..) {
        if rest.is_empty() {
            break;
        }
        if rest.starts_with("$${") {
            literal.push_str("${");
            i += 3;
        } else if let Some(body) = rest.strip_prefix("${") {
            let close = find_close(body).ok_or_else(|| ResolveError {
                message: format!("unclosed `${{` in `{text}` (missing `}}`)"),
            })?;
            let source = &rest[..close + 3];
            let expr = parse_expr_text(&body[..close], source)?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Placeholder { source, expr });
            i += close + 3;
        } else {
            let Some(c) = rest.chars().next() else { break };
            literal.push(c);
            i += c.len_utf8();
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// The byte index of the `}` closing a placeholder body, skipping quoted
/// text.
fn find_close(body: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '}' => return Some(i),
                '\'' | '"' => quote = Some(c),
                _ => {}
            },
        }
    }
    None
}

/// Parses the body of the placeholder `source`.
fn parse_expr_text(body: &str, source: &str) -> Result<Expr, ResolveError> {
    let mut p = Parser {
        chars: body.chars().collect(),
        pos: 0,
        depth: 0,
        source,
    };
    p.skip_ws();
    if p.at_end() {
        return Err(p.malformed("empty placeholder".to_string()));
    }
    let expr = p.expr()?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.malformed(format!("unexpected `{c}` after `{}`", p.consumed())));
    }
    Ok(expr)
}

struct Parser<'s> {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    source: &'s str,
}

impl Parser<'_> {
    fn malformed(&self, detail: String) -> ResolveError {
        ResolveError {
            message: format!("malformed placeholder `{}`: {detail}", self.source),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// The expression text read so far, for messages.
    fn consumed(&self) -> String {
        let s: String = self
            .chars
            .get(..self.pos)
            .unwrap_or_default()
            .iter()
            .collect();
        s.trim_end().to_string()
    }

    fn slice(&self, from: usize) -> String {
        self.chars
            .get(from..self.pos)
            .unwrap_or_default()
            .iter()
            .collect()
    }

    fn expr(&mut self) -> Result<Expr, ResolveError> {
        self.skip_ws();
        match self.peek() {
            Some('\'' | '"') => Ok(Expr::Literal(Value::String(self.quoted()?))),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some('-' | '+') if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => self.number(),
            Some(c) if is_name_start(c) => self.name_or_call(),
            Some(c) => Err(self.malformed(format!(
                "expected a name, a number, a 'quoted text' or a function call, found `{c}`{}",
                self.after()
            ))),
            None => Err(self.malformed(format!(
                "expected a name, a number, a 'quoted text' or a function call{}",
                self.after()
            ))),
        }
    }

    /// " after `...`" when something was read already.
    fn after(&self) -> String {
        if self.pos == 0 {
            String::new()
        } else {
            format!(" after `{}`", self.consumed())
        }
    }

    /// Quoted text at the current position, unescaped.
    fn quoted(&mut self) -> Result<String, ResolveError> {
        let Some(q) = self.peek() else {
            return Err(self.malformed("expected quoted text".to_string()));
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.malformed(format!("unterminated text `{}`", self.consumed())));
                }
                Some('\\') => {
                    match self.peek_at(1) {
                        Some(c) if c == q || c == '\\' => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => out.push('\\'),
                    }
                    self.pos = (self.pos + 2).min(self.chars.len());
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Expr, ResolveError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        self.digits();
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('-' | '+')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1 + sign;
                self.digits();
            }
        }
        if self.peek().is_some_and(is_name_char) {
            let bad_end = self.pos + 1;
            let mut this = self.slice(start);
            if let Some(c) = self.chars.get(self.pos) {
                this.push(*c);
            }
            self.pos = bad_end;
            return Err(self.malformed(format!("`{this}` is not a number or a name")));
        }
        let text = self.slice(start);
        let json_text = text.strip_prefix('+').unwrap_or(&text);
        match serde_json::from_str::<serde_json::Number>(json_text) {
            Ok(n) => Ok(Expr::Literal(Value::Number(n))),
            Err(_) => Err(self.malformed(format!("`{text}` is not a usable number"))),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        self.slice(start)
    }

    fn name_or_call(&mut self) -> Result<Expr, ResolveError> {
        let start = self.pos;
        let name = self.ident();
        let before_ws = self.pos;
        self.skip_ws();
        if self.peek() == Some('(') {
            return self.call(name, start);
        }
        self.pos = before_ws;
        let path = self.path()?;
        if path.is_empty() {
            match name.as_str() {
                "true" => return Ok(Expr::Literal(Value::Bool(true))),
                "false" => return Ok(Expr::Literal(Value::Bool(false))),
                "null" => return Ok(Expr::Literal(Value::Null)),
                _ => {}
            }
        }
        if name == "env" {
            let mut path = path.into_iter();
            return match path.next() {
                Some(Seg::Key(var)) if valid_env_name(&var) => Ok(Expr::Env {
                    var,
                    path: path.collect(),
                }),
                Some(Seg::Key(var)) => {
                    Err(self.malformed(format!("`{var}` cannot be an environment variable name")))
                }
                _ => {
                    Err(self
                        .malformed("`env` needs a variable name, as in `${env.HOME}`".to_string()))
                }
            };
        }
        Ok(Expr::Name { name, path })
    }

    fn call(&mut self, name: String, start: usize) -> Result<Expr, ResolveError> {
        let Some(func) = functions::find(&name) else {
            return Err(ResolveError {
                message: functions::unknown_function_message(&name, self.source),
            });
        };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.malformed(format!("function calls nest more than {MAX_DEPTH} deep")));
        }
        self.pos += 1; // `(`
        let mut args = Vec::new();
        self.skip_ws();
        if self.peek() == Some(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.expr()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        return Err(self.malformed(format!(
                            "expected `,` or `)` after `{}`, found `{c}`",
                            self.consumed()
                        )));
                    }
                    None => {
                        return Err(self.malformed(format!(
                            "expected `,` or `)` after `{}`",
                            self.consumed()
                        )));
                    }
                }
            }
        }
        self.depth -= 1;
        if let Some(msg) = func.arity_error(args.len()) {
            return Err(ResolveError {
                message: format!("{msg} (in `{}`)", self.source),
            });
        }
        let text = self.slice(start);
        let path = self.path()?;
        Ok(Expr::Call {
            func,
            args,
            path,
            text,
        })
    }

    /// `.key` and `[...]` steps following a name or a call.
    fn path(&mut self) -> Result<Vec<Seg>, ResolveError> {
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let key = self.ident();
                    if key.is_empty() {
                        return Err(self.malformed(format!(
                            "expected a field name after `{}`",
                            self.consumed()
                        )));
                    }
                    path.push(Seg::Key(key));
                }
                Some('[') => {
                    self.pos += 1;
                    self.skip_ws();
                    let seg = match self.peek() {
                        Some('\'' | '"') => Seg::Key(self.quoted()?),
                        Some(c) if c.is_ascii_digit() || c == '-' => {
                            let start = self.pos;
                            self.pos += 1;
                            self.digits();
                            let t = self.slice(start);
                            match t.parse::<i64>() {
                                Ok(i) => Seg::Index(i),
                                Err(_) => {
                                    return Err(
                                        self.malformed(format!("`{t}` is not a usable index"))
                                    );
                                }
                            }
                        }
                        _ => {
                            return Err(self.malformed(format!(
                                "expected an index or a 'quoted name' after `{}`",
                                self.consumed()
                            )));
                        }
                    };
                    self.skip_ws();
                    if self.peek() != Some(']') {
                        return Err(
                            self.malformed(format!("expected `]` after `{}`", self.consumed()))
                        );
                    }
                    self.pos += 1;
                    path.push(seg);
                }
                _ => return Ok(path),
            }
        }
    }
}

fn is_name_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Names the OS can look up: not empty, no `=`, no NUL.
fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

/// The top-level names an expression reads, added to `out` once each.
pub(crate) fn collect_names(expr: &Expr, out: &mut Vec<String>) {
    let name = match expr {
        Expr::Literal(_) => return,
        Expr::Name { name, .. } => name.clone(),
        Expr::Env { var, .. } => format!("env.{var}"),
        Expr::Call { args, .. } => {
            for a in args {
                collect_names(a, out);
            }
            return;
        }
    };
    if !out.contains(&name) {
        out.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Expr {
        let mut pieces = scan(text).unwrap();
        assert_eq!(pieces.len(), 1, "{text}");
        match pieces.remove(0) {
            Piece::Placeholder { expr, .. } => expr,
            Piece::Text(t) => panic!("no placeholder in {t}"),
        }
    }

    fn err(text: &str) -> String {
        scan(text).unwrap_err().message
    }

    fn name(expr: &Expr) -> (&str, &[Seg]) {
        match expr {
            Expr::Name { name, path } => (name, path),
            other => panic!("not a name: {other:?}"),
        }
    }

    #[test]
    fn scans_text_and_placeholders() {
        let pieces = scan("a ${x} b ${ y }c").unwrap();
        let shapes: Vec<String> = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => format!("T{t}"),
                Piece::Placeholder { source, .. } => format!("P{source}"),
            })
            .collect();
        assert_eq!(shapes, ["Ta ", "P${x}", "T b ", "P${ y }", "Tc"]);
        assert!(scan("").unwrap().is_empty());
    }

    #[test]
    fn double_dollar_is_a_literal() {
        let pieces = scan("$${x} and $$ and $x and ${y}").unwrap();
        match &pieces[0] {
            Piece::Text(t) => assert_eq!(t, "${x} and $$ and $x and "),
            other => panic!("{other:?}"),
        }
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn closing_brace_inside_quotes_does_not_close() {
        let expr = one("${concat('}', \"}\", 'it\\'s')}");
        let Expr::Call { args, .. } = expr else {
            panic!()
        };
        let texts: Vec<_> = args
            .iter()
            .map(|a| match a {
                Expr::Literal(v) => v.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, [json!("}"), json!("}"), json!("it's")]);
    }

    #[test]
    fn quoted_text_escapes() {
        let Expr::Literal(v) = one(r"${'a\\b\'c\d'}") else {
            panic!()
        };
        assert_eq!(v, json!(r"a\b'c\d"));
        let Expr::Literal(v) = one(r#"${"say \"hi\" 'there'"}"#) else {
            panic!()
        };
        assert_eq!(v, json!(r#"say "hi" 'there'"#));
    }

    #[test]
    fn literals() {
        for (text, want) in [
            ("${12}", json!(12)),
            ("${-3}", json!(-3)),
            ("${+3}", json!(3)),
            ("${2.5}", json!(2.5)),
            ("${1e3}", json!(1000.0)),
            ("${true}", json!(true)),
            ("${false}", json!(false)),
            ("${null}", json!(null)),
            ("${''}", json!("")),
            ("${18446744073709551615}", json!(18446744073709551615u64)),
        ] {
            match one(text) {
                Expr::Literal(v) => assert_eq!(v, want, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_and_paths() {
        let e = one("${a}");
        assert_eq!(name(&e), ("a", &[][..]));
        let e = one("${a.b[0].c}");
        assert_eq!(
            name(&e),
            (
                "a",
                &[Seg::Key("b".into()), Seg::Index(0), Seg::Key("c".into())][..]
            )
        );
        let e = one(r#"${a["x-y"]['z w'][-1].items.0}"#);
        assert_eq!(
            name(&e),
            (
                "a",
                &[
                    Seg::Key("x-y".into()),
                    Seg::Key("z w".into()),
                    Seg::Index(-1),
                    Seg::Key("items".into()),
                    Seg::Key("0".into())
                ][..]
            )
        );
        let e = one("${user_id-2}");
        assert_eq!(name(&e).0, "user_id-2");
        let e = one("${true.x}");
        assert_eq!(name(&e), ("true", &[Seg::Key("x".into())][..]));
        let e = one("${ née }");
        assert_eq!(name(&e).0, "née");
    }

    #[test]
    fn env_names() {
        match one("${env.HOME}") {
            Expr::Env { var, path } => {
                assert_eq!(var, "HOME");
                assert!(path.is_empty());
            }
            other => panic!("{other:?}"),
        }
        match one("${env['MY-VAR'].x}") {
            Expr::Env { var, path } => {
                assert_eq!(var, "MY-VAR");
                assert_eq!(path, [Seg::Key("x".into())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err("${env}"),
            "malformed placeholder `${env}`: `env` needs a variable name, as in `${env.HOME}`"
        );
        assert_eq!(
            err("${env[0]}"),
            "malformed placeholder `${env[0]}`: `env` needs a variable name, as in `${env.HOME}`"
        );
        assert_eq!(
            err("${env['A=B']}"),
            "malformed placeholder `${env['A=B']}`: `A=B` cannot be an environment variable name"
        );
    }

    #[test]
    fn calls_nest_and_take_paths() {
        let e = one("${md5( concat('a', x.y, 3) )}");
        let Expr::Call {
            func,
            args,
            path,
            text,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(func.name, "md5");
        assert!(path.is_empty());
        assert_eq!(text, "md5( concat('a', x.y, 3) )");
        let Expr::Call { func, args, .. } = &args[0] else {
            panic!()
        };
        assert_eq!(func.name, "concat");
        assert_eq!(args.len(), 3);
        let e = one("${parse_json(body).items[0]}");
        let Expr::Call { path, text, .. } = &e else {
            panic!()
        };
        assert_eq!(path, &[Seg::Key("items".into()), Seg::Index(0)]);
        assert_eq!(text, "parse_json(body)");
        let e = one("${now ( )}");
        assert!(matches!(e, Expr::Call { ref args, .. } if args.is_empty()));
    }

    #[test]
    fn unknown_functions_and_arity_are_parse_errors() {
        let msg = err("${md6(x)}");
        assert!(
            msg.starts_with("unknown function `md6` in `${md6(x)}`; did you mean `md5`?; known functions: aes_decrypt,"),
            "{msg}"
        );
        assert_eq!(
            err("x ${md5(a, b)} y"),
            "`md5` takes 1 argument, got 2: md5(x) (in `${md5(a, b)}`)"
        );
    }

    #[test]
    fn malformed_placeholders() {
        let cases = [
            ("${abc", "unclosed `${` in `${abc` (missing `}`)"),
            ("url/${a.b", "unclosed `${` in `url/${a.b` (missing `}`)"),
            ("${'}'", "unclosed `${` in `${'}'` (missing `}`)"),
            ("${}", "malformed placeholder `${}`: empty placeholder"),
            ("${  }", "malformed placeholder `${  }`: empty placeholder"),
            (
                "${a b}",
                "malformed placeholder `${a b}`: unexpected `b` after `a`",
            ),
            (
                "${md5(x}",
                "malformed placeholder `${md5(x}`: expected `,` or `)` after `md5(x`",
            ),
            (
                "${md5(x,)}",
                "malformed placeholder `${md5(x,)}`: expected a name, a number, a 'quoted text' or a function call, found `)` after `md5(x,`",
            ),
            (
                "${a.}",
                "malformed placeholder `${a.}`: expected a field name after `a.`",
            ),
            (
                "${a..b}",
                "malformed placeholder `${a..b}`: expected a field name after `a.`",
            ),
            (
                "${a[}",
                "malformed placeholder `${a[}`: expected an index or a 'quoted name' after `a[`",
            ),
            (
                "${a[0}",
                "malformed placeholder `${a[0}`: expected `]` after `a[0`",
            ),
            (
                "${a[x]}",
                "malformed placeholder `${a[x]}`: expected an index or a 'quoted name' after `a[`",
            ),
            ("${'abc}", "unclosed `${` in `${'abc}` (missing `}`)"),
            (
                "${1x}",
                "malformed placeholder `${1x}`: `1x` is not a number or a name",
            ),
            (
                "${1e999}",
                "malformed placeholder `${1e999}`: `1e999` is not a usable number",
            ),
            (
                "${a[99999999999999999999]}",
                "malformed placeholder `${a[99999999999999999999]}`: `99999999999999999999` is not a usable index",
            ),
            (
                "${$x}",
                "malformed placeholder `${$x}`: expected a name, a number, a 'quoted text' or a function call, found `$`",
            ),
            (
                "${a${b}}",
                "malformed placeholder `${a${b}`: unexpected `$` after `a`",
            ),
            (
                "${a)}",
                "malformed placeholder `${a)}`: unexpected `)` after `a`",
            ),
            (
                "ok ${x} then ${",
                "unclosed `${` in `ok ${x} then ${` (missing `}`)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "{text}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("${{{}x{}}}", "md5(".repeat(33), ")".repeat(33));
        assert!(err(&deep).ends_with("function calls nest more than 32 deep"));
        let ok = format!("${{{}x{}}}", "md5(".repeat(32), ")".repeat(32));
        assert!(scan(&ok).is_ok());
        let huge = format!("${{{}", "md5(".repeat(100_000));
        assert!(scan(&huge).is_err());
        let huge = format!("${{{}}}", "md5(".repeat(100_000));
        assert!(err(&huge).ends_with("function calls nest more than 32 deep"));
    }

    #[test]
    fn names_are_collected_once_in_order() {
        let mut out = Vec::new();
        for p in scan("${b.x} ${md5(concat(a, 'lit', b[0], env.HOME))} ${now()} ${1}").unwrap() {
            if let Piece::Placeholder { expr, .. } = p {
                collect_names(&expr, &mut out);
            }
        }
        assert_eq!(out, ["b", "a", "env.HOME"]);
    }
}
