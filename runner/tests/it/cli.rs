//! The command line: exit codes, selection, list, check, keywords, schema, merge.

use serde_json::{Value, json};

use crate::util::{Project, case};

fn pass(tags: &[&str]) -> Value {
    json!({ "tags": tags, "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 1}} ] })
}

#[test]
fn exit_codes_follow_the_spec() {
    let p = Project::new();
    p.file("ok/a.case.json", pass(&[]));
    p.file(
        "bad/b.case.json",
        json!({ "steps": [ {"keyword": "assert", "args": {"value": 1}, "expect": {"value": 2}} ] }),
    );
    let ok = p.atf(&["run", "ok"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.last_line(), "1 passed, 0 failed, 0 skipped");
    assert_eq!(p.atf(&["run", "bad"]).code, 1);
    let none = p.atf(&["run", "ok", "--filter", "zzz"]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no cases selected"), "{}", none.stderr);
    assert_eq!(p.atf(&["run", "missing-folder"]).code, 2);
    assert_eq!(p.atf(&["run", "--shard", "5/2"]).code, 2);
    assert_eq!(p.atf(&["run", "--tags", "a and"]).code, 2);
    assert_eq!(p.atf(&["frobnicate"]).code, 2);
}

#[test]
fn tags_filter_and_exclude_tags_select_cases() {
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "ci", "envs": {"ci": {"exclude_tags": ["prod-only"]}}}),
    );
    p.file("order-create.case.json", pass(&["order", "smoke"]));
    p.file("order-slow.case.json", pass(&["order", "slow"]));
    p.file("payment.case.json", pass(&["payment", "smoke"]));
    p.file("prod.case.json", pass(&["smoke", "prod-only"]));
    let names = |out: &crate::util::Output| -> Vec<String> {
        out.stdout
            .lines()
            .map(|l| l.split("  ").next().unwrap_or("").to_string())
            .collect()
    };
    let out = p.atf(&["list", "--tags", "smoke and not slow"]);
    assert_eq!(names(&out), vec!["order-create", "payment"]);
    let out = p.atf(&["list", "--tags", "(order or payment) and not smoke"]);
    assert_eq!(names(&out), vec!["order-slow"]);
    let out = p.atf(&["list", "--filter", "order-*"]);
    assert_eq!(names(&out), vec!["order-create", "order-slow"]);
    let out = p.atf(&["run", "--tags", "payment"]);
    assert_eq!(out.code, 0);
    assert_eq!(p.report()["summary"]["total"], 1);
}

#[test]
fn shards_split_cases_exactly_once_and_merge_back() {
    let p = Project::new();
    for i in 0..7 {
        p.file(&format!("c{i}.case.json"), pass(&[]));
    }
    let mut all = Vec::new();
    for k in 1..=3 {
        let out = p.atf(&["list", "--shard", &format!("{k}/3")]);
        all.extend(
            out.stdout
                .lines()
                .map(|l| l.split("  ").next().unwrap().to_string()),
        );
        let run = p.atf(&[
            "run",
            "--shard",
            &format!("{k}/3"),
            "--report-dir",
            &format!("r{k}"),
        ]);
        assert_eq!(run.code, 0);
    }
    all.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
    assert_eq!(all, expected);
    let out = p.atf(&["report", "merge", "r1", "r2", "r3", "--out", "merged"]);
    assert_eq!(out.code, 0, "{out:?}");
    let merged = p.report_in("merged");
    assert_eq!(merged["summary"]["total"], 7);
    let names: Vec<&str> = merged["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn rerun_failed_runs_only_the_last_failures() {
    let p = Project::new();
    p.file("a.case.json", pass(&[]));
    p.file("b.case.json", json!({ "steps": [ {"keyword": "assert", "args": {"value": "${env.ATF_B}"}, "expect": {"value": "ok"}} ] }));
    let first = p.command(&["run"]).env("ATF_B", "bad").output().unwrap();
    assert_eq!(first.status.code(), Some(1));
    let again = p
        .command(&["run", "--rerun-failed"])
        .env("ATF_B", "ok")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    let r = p.report();
    assert_eq!(r["summary"]["total"], 1);
    assert_eq!(case(&r, "b")["status"], "passed");
}

#[test]
fn check_names_undefined_placeholders_and_load_errors() {
    let p = Project::new();
    p.file(
        "atf.json",
        json!({"default_env": "e", "envs": {"e": {"vars": {"host": "h"}}}}),
    );
    p.file(
        "good.case.json",
        json!({
            "vars": {"a": "${host}"},
            "steps": [ {"keyword": "assert", "args": {"value": "${a}"}, "save": {"b": "$.value"}},
                       {"keyword": "assert", "args": {"value": "${b}"}} ]
        }),
    );
    p.file(
        "bad.case.json",
        json!({
            "steps": [ {"keyword": "assert", "args": {"value": "${later}"}},
                       {"keyword": "ctx.set", "args": {"later": 1}},
                       {"keyword": "assert", "args": {"value": "${never_defined}"}} ]
        }),
    );
    p.file(
        "broken.case.json",
        "{ \"steps\": [ {\"keyword\": \"nope\"} ] }",
    );
    p.file(
        "var.case.json",
        "{\n  \"vars\": {\n    \"a\": 1,\n    \"b\": \"${undefined_in_var}\"\n  }\n}",
    );
    let out = p.atf(&["check"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("var.case.json:4") && out.stdout.contains("`undefined_in_var`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("`later`") && out.stdout.contains("bad.case.json:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("`never_defined`"), "{}", out.stdout);
    assert!(
        out.stdout.contains("unknown keyword `nope`"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("good.case.json"), "{}", out.stdout);
    let clean = p.atf(&["check", "good.case.json"]);
    assert_eq!(clean.code, 0, "{clean:?}");
}

#[test]
fn keywords_and_schema_describe_the_binary() {
    let p = Project::new();
    let out = p.atf(&["keywords"]);
    assert_eq!(out.code, 0);
    for k in ["http.request", "assert", "ctx.set", "sleep", "log", "exec"] {
        assert!(
            out.stdout.lines().any(|l| l == k),
            "{k} missing:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("- url (string, required)"),
        "{}",
        out.stdout
    );
    let schema = p.atf(&["schema"]);
    assert_eq!(schema.code, 0);
    let s: Value = serde_json::from_str(&schema.stdout).expect("schema is JSON");
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    let names = s["$defs"]["step"]["properties"]["keyword"]["examples"]
        .as_array()
        .unwrap();
    assert!(names.iter().any(|n| n == "http.request"));
    assert_eq!(s["$defs"]["args:http.request"]["required"], json!(["url"]));
    // Suite and project files too; each refuses a field the binary refuses.
    for (file, field) in [("suite", "prepare"), ("project", "envs")] {
        let out = p.atf(&["schema", "--file", file]);
        assert_eq!(out.code, 0, "{out:?}");
        let s: Value = serde_json::from_str(&out.stdout).expect("schema is JSON");
        assert!(s["properties"][field].is_object(), "{file}: {s:#}");
        assert_eq!(s["additionalProperties"], false, "{file}");
    }
    let bad = p.atf(&["schema", "--file", "nope"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn keywords_and_schema_end_quietly_when_the_reader_stops_early() {
    // `atf schema | head -1`: the pipe is closed before atf writes.
    for args in [["keywords"], ["schema"]] {
        let mut child = std::process::Command::new(crate::util::atf_bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start atf");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for atf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

/// Every file under `dir` whose name ends with `suffix` (or is `suffix`).
fn files_named(dir: &std::path::Path, suffix: &str, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_named(&path, suffix, out);
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
}

#[test]
fn the_generated_schemas_accept_the_example_files_and_refuse_a_typo() {
    let checker = crate::tools::tools_dir().join("venv/bin/check-jsonschema");
    assert!(
        checker.exists(),
        "{} is missing: the schema test validates with check-jsonschema from the project's \
         virtual environment. Run scripts/test-deps.sh.",
        checker.display()
    );
    let p = Project::new();
    let examples = crate::util::workspace().join("cases");
    let mut cases = Vec::new();
    files_named(&examples, ".case.json", &mut cases);
    let mut suites = Vec::new();
    files_named(&examples, "/suite.json", &mut suites);
    p.file(
        "typo.case.json",
        json!({"steps": [{"keyword": "assert", "expct": {"value": 1}}]}),
    );
    let typo = vec![p.join("typo.case.json")];
    let projects = vec![examples.join("atf.json")];
    assert!(
        !cases.is_empty() && !suites.is_empty(),
        "no example files in {}",
        examples.display()
    );
    for (kind, files, valid) in [
        ("case", &cases, true),
        ("suite", &suites, true),
        ("project", &projects, true),
        ("case", &typo, false),
    ] {
        let schema = p.atf(&["schema", "--file", kind]);
        assert_eq!(schema.code, 0, "{schema:?}");
        let schema_file = p.join(&format!("{kind}.schema.json"));
        std::fs::write(&schema_file, &schema.stdout).expect("write the schema");
        let out = std::process::Command::new(&checker)
            .arg("--schemafile")
            .arg(&schema_file)
            .args(files.iter())
            .output()
            .expect("check-jsonschema runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.success(),
            valid,
            "{kind} schema on {files:?}:\n{text}"
        );
        if !valid {
            assert!(text.contains("'expct' was unexpected"), "{text}");
        }
    }
}
