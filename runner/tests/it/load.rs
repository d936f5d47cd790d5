//! Bad files are reported with file, line and column; the other cases run.

use serde_json::json;

use crate::util::{Project, case};

#[test]
fn broken_files_become_error_cases_and_the_rest_still_run() {
    let p = Project::new();
    p.file(
        "cases/ok.case.json",
        json!({ "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ] }),
    );
    p.file(
        "cases/syntax.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"log\",}\n  ]\n}",
    );
    p.file("cases/typo.case.json", "{\n  \"steps\": [\n    {\n      \"keyword\": \"assert\",\n      \"expct\": {\"value\": 1}\n    }\n  ]\n}");
    p.file("cases/kw.case.json", "{\n  \"steps\": [\n    {\"keyword\": \"http.requets\", \"args\": {\"url\": \"/\"}}\n  ]\n}");
    p.file("cases/types.case.json", "{\n  \"tags\": \"smoke\",\n  \"steps\": [ {\"keyword\": \"sleep\", \"args\": {\"duration\": \"2 weeks\"}, \"timeout\": \"soon\"} ]\n}");
    p.file("cases/args.case.json", "{\n  \"steps\": [ {\"keyword\": \"http.request\", \"args\": {\"methd\": \"GET\", \"url\": \"/\"}} ]\n}");
    let out = p.atf(&["run", "cases"]);
    assert_eq!(out.code, 1);
    let r = p.report();
    assert_eq!(case(&r, "ok")["status"], "passed");

    let syntax = case(&r, "syntax")["error"].as_str().unwrap().to_string();
    assert!(syntax.contains("cases/syntax.case.json:3:"), "{syntax}");
    assert!(syntax.contains("invalid JSON"), "{syntax}");

    let typo = case(&r, "typo")["error"].as_str().unwrap().to_string();
    assert!(typo.contains("cases/typo.case.json:5:7"), "{typo}");
    assert!(typo.contains("unknown field `expct`"), "{typo}");
    assert!(typo.contains("did you mean `expect`?"), "{typo}");

    let kw = case(&r, "kw")["error"].as_str().unwrap().to_string();
    assert!(kw.contains("cases/kw.case.json:3:17"), "{kw}");
    assert!(kw.contains("unknown keyword `http.requets`"), "{kw}");
    assert!(kw.contains("did you mean `http.request`?"), "{kw}");

    let types = case(&r, "types")["error"].as_str().unwrap().to_string();
    assert!(
        types.contains("types.case.json:2:11")
            && types.contains("`tags` must be a list of strings"),
        "{types}"
    );
    assert!(
        types.contains("types.case.json:3:") && types.contains("`timeout`"),
        "{types}"
    );

    let args = case(&r, "args")["error"].as_str().unwrap().to_string();
    assert!(
        args.contains("unknown argument `methd`") && args.contains("did you mean `method`?"),
        "{args}"
    );

    // The console shows the error with its source line.
    assert!(
        out.stdout.contains("\"expct\": {\"value\": 1}"),
        "{}",
        out.stdout
    );
    assert_eq!(out.last_line(), "1 passed, 5 failed, 0 skipped");
}

#[test]
fn a_bad_project_file_stops_the_run_with_exit_2() {
    let p = Project::new();
    p.file("atf.json", "{\n  \"jobs\": \"many\"\n}");
    p.file("a.case.json", json!({ "steps": [] }));
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("atf.json:2:11"), "{}", out.stderr);
}

#[test]
fn an_unknown_environment_is_a_usage_error_naming_the_known_ones() {
    let p = Project::new();
    p.file("atf.json", json!({"envs": {"local": {}, "staging": {}}}));
    p.file("a.case.json", json!({ "steps": [] }));
    let out = p.atf(&["run", "--env", "prod"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no environment `prod`") && out.stderr.contains("local, staging"),
        "{}",
        out.stderr
    );
}

#[test]
fn absurd_durations_bad_save_paths_and_malformed_placeholders_are_load_errors() {
    let p = Project::new();
    p.file(
        "ok.case.json",
        json!({ "steps": [ {"keyword": "log", "args": {"message": "fine"}} ] }),
    );
    p.file(
        "huge.case.json",
        "{\n  \"timeout\": \"99999999999999h\",\n  \"steps\": [\n    {\"keyword\": \"log\", \"args\": {\"message\": \"x\"},\n     \"retry\": {\"times\": 2, \"interval\": 1e300}}\n  ]\n}",
    );
    p.file(
        "save.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"assert\", \"args\": {\"value\": 1},\n     \"save\": {\"v\": \"$.value[\"}}\n  ]\n}",
    );
    p.file(
        "ph.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"log\", \"args\": {\"message\": \"${upper(}\"}}\n  ]\n}",
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r = p.report();
    assert_eq!(case(&r, "ok")["status"], "passed");
    let huge = case(&r, "huge")["error"].as_str().unwrap().to_string();
    assert!(huge.contains("huge.case.json:2:14"), "{huge}");
    assert!(huge.contains("at most 365 days"), "{huge}");
    assert!(
        huge.contains("huge.case.json:5:"),
        "the retry interval too: {huge}"
    );
    let save = case(&r, "save")["error"].as_str().unwrap().to_string();
    assert!(save.contains("save.case.json:4:"), "{save}");
    assert!(save.contains("`save.v`"), "{save}");
    let ph = case(&r, "ph")["error"].as_str().unwrap().to_string();
    assert!(ph.contains("ph.case.json:3:"), "{ph}");
    assert!(ph.contains("malformed placeholder"), "{ph}");
    // `atf check` finds the same, without running anything.
    let check = p.atf(&["check"]);
    assert_eq!(check.code, 1);
    for needle in ["at most 365 days", "`save.v`", "malformed placeholder"] {
        assert!(
            check.stdout.contains(needle) || check.stderr.contains(needle),
            "{needle}: {}{}",
            check.stdout,
            check.stderr
        );
    }
}

#[test]
fn an_argument_outside_its_choices_is_a_load_error() {
    let p = Project::new();
    p.file(
        "cases/connect.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"http.request\", \"args\": {\"method\": \"CONNECT\", \"url\": \"http://127.0.0.1:9/\"}}\n  ]\n}",
    );
    p.file(
        "cases/lower.case.json",
        "{\"steps\": [{\"keyword\": \"http.request\", \"args\": {\"method\": \"${m}\", \"url\": \"http://127.0.0.1:9/\"}}], \"vars\": {\"m\": \"connect\"}}",
    );
    let out = p.atf(&["run", "cases"]);
    assert_eq!(out.code, 1, "{out:?}");
    let r = p.report();
    let connect = case(&r, "connect")["error"].as_str().unwrap().to_string();
    assert!(connect.contains("connect.case.json:3:52"), "{connect}");
    assert!(
        connect.contains("`method` of `http.request` cannot be `CONNECT`"),
        "{connect}"
    );
    assert!(connect.contains("one of: GET, POST"), "{connect}");
    // Made by a placeholder, it is refused when the step runs: nothing is sent.
    let lower = case(&r, "lower");
    assert_eq!(lower["steps"][0]["status"], "error", "{lower:#}");
    assert!(
        lower["steps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("`CONNECT` is not a method http.request sends")),
        "{lower:#}"
    );
    let check = p.atf(&["check", "cases/connect.case.json"]);
    assert_ne!(check.code, 0, "{check:?}");
}

#[test]
fn a_key_written_twice_is_an_error_with_both_places_and_a_bom_is_fine() {
    let p = Project::new();
    p.file(
        "dup.case.json",
        "{\n  \"steps\": [\n    {\"keyword\": \"assert\", \"args\": {\"value\": 1},\n     \"expect\": {\"value\": 1, \"value\": 2}}\n  ]\n}",
    );
    p.file(
        "bom.case.json",
        "\u{feff}{\"steps\": [{\"keyword\": \"assert\", \"args\": {\"value\": 1}, \"expect\": {\"value\": 1}}]}",
    );
    let out = p.atf(&["run"]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let r = p.report();
    assert_eq!(case(&r, "bom")["status"], "passed", "{r:#}");
    let dup = case(&r, "dup")["error"].as_str().unwrap().to_string();
    assert!(dup.contains("dup.case.json:4:29"), "{dup}");
    assert!(dup.contains("`value` is written twice"), "{dup}");
    assert!(dup.contains("first at line 4, column 17"), "{dup}");
}
