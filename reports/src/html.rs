//! `index.html`: one self-contained page to browse a run — a summary,
//! filters by status and tag, a search over case names and files, and every
//! case with its phases and steps (arguments, result, failed expectations,
//! errors). Nothing is loaded from anywhere: the CSS (`html/style.css`) and
//! the script (`html/app.js`) are inlined, and a Content-Security-Policy
//! forbids every fetch and any script but that one (by its SHA-256). The
//! run itself is embedded as JSON in `<script type="application/json">`
//! with `<`, `>`, `&`, U+2028 and U+2029 written as `\uXXXX` escapes, and
//! the script builds the page with `textContent` only, so nothing a case or
//! a service produced is ever parsed as HTML. Case bodies are built when a
//! case is first opened, so reports with thousands of cases stay quick.
//!
//! The page reads its filters from the URL fragment or query:
//! `index.html#status=failed,error&tag=smoke&q=order&expand=1&case=NAME`
//! (see `html/app.js`), and writes them back to the fragment as they change.

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::RunReport;

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/app.js");

/// Writes the HTML report of `report` to `path`.
pub fn write(path: &Path, report: &RunReport) -> std::io::Result<()> {
    crate::write_atomic(path, render(report)?.as_bytes())
}

/// The HTML page of `report`.
pub fn render(report: &RunReport) -> std::io::Result<String> {
    let json = serde_json::to_string(report).map_err(std::io::Error::other)?;
    Ok(page_of(&json))
}

/// The HTML page of a report already serialized (compact JSON).
pub(crate) fn page_of(json: &str) -> String {
    let script_hash =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));

    let mut page = String::with_capacity(json.len() + STYLE.len() + SCRIPT.len() + 1024);
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         script-src 'sha256-",
    );
    page.push_str(&script_hash);
    page.push_str(
        "'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>atf report</title>\n<style>\n",
    );
    page.push_str(STYLE);
    page.push_str(
        "</style>\n</head>\n<body>\n<noscript><p class=\"noscript\">This report needs \
         JavaScript to show its cases; <code>report.json</code> beside it holds the same \
         data.</p></noscript>\n<div id=\"app\"></div>\n\
         <script type=\"application/json\" id=\"data\">",
    );
    push_json_for_script(&mut page, json);
    page.push_str("</script>\n<script>");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    page
}

/// Appends `json` so that it can sit inside a `<script>` element: every
/// `<`, `>` and `&` (which only occur inside JSON strings) and the line
/// separators U+2028 and U+2029 become `\uXXXX` escapes, which JSON reads
/// back as the same characters.
pub(crate) fn push_json_for_script(out: &mut String, json: &str) {
    let bytes = json.as_bytes();
    let mut start = 0;
    // Byte positions of ASCII characters and of the lead byte of a
    // three-byte sequence are character boundaries, so slicing is safe.
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'<' => "\\u003c",
            b'>' => "\\u003e",
            b'&' => "\\u0026",
            0xE2 => match bytes.get(i + 1..i + 3) {
                Some([0x80, 0xA8]) => "\\u2028",
                Some([0x80, 0xA9]) => "\\u2029",
                _ => continue,
            },
            _ => continue,
        };
        out.push_str(&json[start..i]);
        out.push_str(escape);
        start = i + if b == 0xE2 { 3 } else { 1 };
    }
    out.push_str(&json[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_in_script_is_inert_and_round_trips() {
        let value = serde_json::json!({"body": "</script><b>&amp;\u{2028}\u{2029}"});
        let json = value.to_string();
        let mut out = String::new();
        push_json_for_script(&mut out, &json);
        for bad in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            assert!(!out.contains(bad), "{bad:?} left in {out}");
        }
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, value);
        let mut other = String::new();
        push_json_for_script(&mut other, "\"\u{2027}\u{202A}é€\"");
        assert_eq!(other, "\"\u{2027}\u{202A}é€\"", "neighbours of U+2028 stay");
    }

    #[test]
    fn the_script_cannot_end_its_element() {
        let lower = SCRIPT.to_ascii_lowercase();
        assert!(
            !lower.contains("</script") && !lower.contains("<!--") && !lower.contains("<script")
        );
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
    }
}
