//! `load.html`: one self-contained page of a load run — summary figures,
//! thresholds with their verdicts, latency percentiles and throughput and
//! errors over time, the latency distribution (inline SVG charts), and the
//! aggregate tables. Nothing is loaded from anywhere: the CSS
//! (`load.css`) and script (`load.js`) are inlined and a
//! Content-Security-Policy, as in `index.html`, forbids every fetch and any
//! script but that one (by its SHA-256). The run is embedded as JSON, made
//! inert for a `<script>` element, without its histograms (they are in
//! `load.json`), and the script builds the page with `textContent` only.

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::LoadReport;

const STYLE: &str = include_str!("load.css");
const SCRIPT: &str = include_str!("load.js");

/// Writes the HTML page of a load run to `path`.
pub fn write(path: &Path, report: &LoadReport) -> std::io::Result<()> {
    std::fs::write(path, render(report)?)
}

/// The HTML page of a load run.
pub fn render(report: &LoadReport) -> std::io::Result<String> {
    // The page has no use for the histograms: drop them, keep the figures.
    let mut light = report.clone();
    light.total.histogram.clear();
    for r in light.steps.iter_mut().chain(light.cases.iter_mut()) {
        r.histogram.clear();
    }
    for p in &mut light.series {
        p.histogram.clear();
    }
    let json = serde_json::to_string(&light).map_err(std::io::Error::other)?;
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
         <link rel=\"icon\" href=\"data:,\">\n<title>atf load report</title>\n<style>\n",
    );
    page.push_str(STYLE);
    page.push_str(
        "</style>\n</head>\n<body>\n<noscript><p>This page needs JavaScript to draw its \
         charts; <code>load.json</code> beside it holds the same data.</p></noscript>\n\
         <div id=\"app\"></div>\n<script type=\"application/json\" id=\"data\">",
    );
    crate::html::push_json_for_script(&mut page, &json);
    page.push_str("</script>\n<script>");
    page.push_str(SCRIPT);
    page.push_str("</script>\n</body>\n</html>\n");
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_cannot_end_its_element() {
        let lower = SCRIPT.to_ascii_lowercase();
        assert!(
            !lower.contains("</script") && !lower.contains("<!--") && !lower.contains("<script")
        );
        assert!(!STYLE.to_ascii_lowercase().contains("</style"));
    }

    #[test]
    fn histograms_stay_out_of_the_page() {
        let mut r = LoadReport::default();
        r.total.histogram = "HISTFAAAAB3x".into();
        r.steps.push(crate::load::Row {
            label: "</script><b>x".into(),
            histogram: "HISTFAAAAC4y".into(),
            ..Default::default()
        });
        let page = render(&r).unwrap();
        assert!(!page.contains("HISTFAAAA"));
        assert!(!page.contains("</script><b>"));
        assert!(page.contains("\\u003c/script\\u003e\\u003cb\\u003ex"));
    }
}
