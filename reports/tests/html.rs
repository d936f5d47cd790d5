//! `index.html` checked as text (self-contained, nothing from a service left
//! as markup) and as a page: headless Chromium (installed by
//! `scripts/test-deps.sh`) renders it, the tests read the rendered DOM —
//! every case, the `#status=` / `#tag=` / `#q=` filters, a hostile response
//! body shown as text — and take a screenshot.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atf_reports::{RunReport, html};

/// Writes `report` as `index.html` into a fresh directory.
fn write_page(report: &RunReport) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.html");
    html::write(&path, report).unwrap();
    (dir, path)
}

/// The DOM of `page` (with `fragment` after `#`) once its script ran.
fn dump_dom(page: &Path, fragment: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}#{fragment}", page.display());
    let mut cmd = common::chromium_command(profile.path());
    cmd.args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url);
    let out = common::run_with_limit(&mut cmd, Duration::from_secs(90))
        .expect("chromium starts")
        .unwrap_or_else(|| panic!("chromium did not finish within 90 s for {url}"));
    assert!(
        out.status.success(),
        "chromium failed for {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("</html>"), "no DOM from chromium: {dom}");
    dom
}

/// The opening tags of the rendered case elements, and how many of them
/// are not hidden.
fn case_tags(dom: &str) -> (Vec<&str>, usize) {
    let tags: Vec<&str> = dom
        .match_indices("<details")
        .filter_map(|(i, _)| dom[i..].find('>').map(|end| &dom[i..i + end + 1]))
        .filter(|tag| tag.contains("data-case=\""))
        .collect();
    let visible = tags.iter().filter(|t| !t.contains(" hidden")).count();
    (tags, visible)
}

fn visible_statuses(dom: &str) -> Vec<String> {
    let (tags, _) = case_tags(dom);
    tags.iter()
        .filter(|t| !t.contains(" hidden"))
        .filter_map(|t| {
            let at = t.find("data-status=\"")? + "data-status=\"".len();
            let len = t[at..].find('"')?;
            Some(t[at..at + len].to_string())
        })
        .collect()
}

#[test]
fn page_is_self_contained_and_escapes_service_data() {
    let report = common::sample();
    let page = html::render(&report).unwrap();

    // Nothing comes from the network: no remote src/href/url()/@import.
    let lower = page.to_ascii_lowercase();
    for pattern in [
        "src=\"http",
        "src='http",
        "src=http",
        "href=\"http",
        "href='http",
        "href=http",
        "url(http",
        "url(\"http",
        "url('http",
        "@import",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!lower.contains(pattern), "the page loads {pattern}…");
    }
    assert!(
        page.contains("default-src 'none'"),
        "a CSP forbids every load"
    );
    // The only src/href is the empty data: favicon.
    assert_eq!(lower.matches("src=").count(), 0);
    assert_eq!(lower.matches("href=").count(), 1);

    // Service data is inert: no raw markup, no line separators.
    assert!(
        !page.contains("<script>alert"),
        "raw <script> from a service"
    );
    assert!(!page.contains("<b id="), "raw markup from a service");
    assert!(page.contains("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"));
    assert_eq!(page.matches("<script").count(), 2, "the data and the app");
    assert_eq!(page.matches("</script>").count(), 2);

    // The embedded JSON reads back as the same report.
    let start = page.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let end = start + page[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&page[start..end]).unwrap();
    assert_eq!(data, serde_json::to_value(&report).unwrap());
}

#[test]
fn chromium_renders_every_case_and_filters_from_the_fragment() {
    let report = common::sample();
    let (_dir, page) = write_page(&report);

    let dom = dump_dom(&page, "");
    let (tags, visible) = case_tags(&dom);
    assert_eq!(tags.len(), report.cases.len(), "one element per case");
    assert_eq!(visible, report.cases.len(), "no filter: all shown");
    assert!(dom.contains("6 cases"), "the count of shown cases");
    assert!(dom.contains("users/suite.json"), "the suites are listed");
    assert!(
        !dom.contains("<b id=\"pwned\">"),
        "service markup became DOM"
    );

    // Only failed cases with #status=failed; their failed step opens with
    // the hostile body shown as text.
    let dom = dump_dom(&page, "status=failed");
    assert_eq!(visible_statuses(&dom), ["failed"]);
    assert!(dom.contains("1 of 6 cases shown"));

    let dom = dump_dom(&page, "status=failed,error&expand=1");
    assert_eq!(visible_statuses(&dom), ["failed", "error"]);
    assert!(
        dom.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b id=\\\"pwned\\\"&gt;bold&lt;/b&gt;"
        ),
        "the result body is rendered as text"
    );
    assert!(dom.contains("expected 200, got 500"), "failures are shown");
    assert!(
        dom.contains("connection refused (os error 111)"),
        "errors are shown"
    );
    assert!(
        !dom.contains("<b id=\"pwned\">"),
        "service markup became DOM"
    );
    assert!(!dom.contains("<script>alert"), "service markup became DOM");

    // By tag, and by text over names and files (a data row's brackets too).
    let dom = dump_dom(&page, "tag=users");
    assert_eq!(visible_statuses(&dom), ["passed", "skipped"]);
    let dom = dump_dom(&page, "q=PAID%5B1%5D");
    assert_eq!(visible_statuses(&dom), ["failed"]);
    let dom = dump_dom(&page, "q=orders/&status=passed,error");
    assert_eq!(visible_statuses(&dom), ["passed", "error"]);

    // A query works too when there is no fragment.
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}?status=skipped", page.display());
    let mut cmd = common::chromium_command(profile.path());
    cmd.args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url);
    let out = common::run_with_limit(&mut cmd, Duration::from_secs(90))
        .unwrap()
        .expect("chromium finished");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(visible_statuses(&dom), ["skipped"]);
}

#[test]
fn chromium_takes_a_screenshot() {
    let (dir, page) = write_page(&common::sample());
    let shot = dir.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = common::chromium_command(profile.path());
    cmd.args(["--virtual-time-budget=2000", "--window-size=1280,900"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!(
            "file://{}#case=order%20paid%5B1%5D",
            page.display()
        ));
    let out = common::run_with_limit(&mut cmd, Duration::from_secs(90))
        .unwrap()
        .expect("chromium finished");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("ATF_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn large_reports_are_written_quickly_and_render() {
    let report = common::large(10_000);
    let started = Instant::now();
    let (_dir, page) = write_page(&report);
    let took = started.elapsed();
    // About a second in a debug build; quadratic building would take minutes.
    assert!(took < Duration::from_secs(20), "10,000 cases took {took:?}");

    let started = Instant::now();
    let dom = dump_dom(&page, "status=failed");
    let (tags, visible) = case_tags(&dom);
    assert_eq!(tags.len(), 10_000);
    assert_eq!(visible, 1_000);
    // Case bodies are built lazily: no step of a closed case is in the DOM.
    assert!(!dom.contains("class=\"step-body\""));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "rendering took {took:?}");
}
