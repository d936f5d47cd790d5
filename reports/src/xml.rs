//! Escaping text for XML 1.0, for the hand-written XML of the load-test
//! JUnit file (`load::junit`).

/// ` name="value"`, the value escaped for an attribute.
pub(crate) fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape(out, value, true);
    out.push('"');
}

pub(crate) fn escape_text(out: &mut String, text: &str) {
    escape(out, text, false);
}

/// Escapes `text` for XML 1.0 character data, or for a double-quoted
/// attribute value (where tabs and line breaks become character
/// references, so parsers keep them). Characters XML 1.0 cannot carry at
/// all become U+FFFD.
fn escape(out: &mut String, text: &str, in_attr: bool) {
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let replacement = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' if in_attr => "&quot;",
            '\'' if in_attr => "&apos;",
            '\t' if in_attr => "&#9;",
            '\n' if in_attr => "&#10;",
            '\r' => "&#13;",
            '\t' | '\n' => continue,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => "\u{FFFD}",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        out.push_str(replacement);
        start = i + c.len_utf8();
    }
    out.push_str(&text[start..]);
}
