//! Plugins through the real `atf` binary: a plugin file replaced while a
//! case runs (by `mv` and by a plain `cp`), a panicking keyword, a plugin
//! of another ABI version, `atf keywords --plugins`, and `atf run --watch`
//! running again with a rebuilt plugin. The test plugins are those of
//! `tests/fixtures/plugins`, built as `runner/tests/plugins.rs` builds
//! them (into `target/plugin-fixtures`).

#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use atf::plugin::PluginHost;
use atf_sdk::{Call, NoHost, json};
use serde_json::Value;
use support::{Project, Running, case, lib_name, target, workspace};

/// The version a built fixture answers with, read through the plugin host.
fn version_of(lib: &Path) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    std::fs::copy(lib, dir.path().join("probe.so")).ok()?;
    let (host, _) = PluginHost::load(&[dir.path().to_path_buf()]);
    let keyword = host
        .keywords()
        .into_iter()
        .find(|k| k.spec().name == "fixture.version")?;
    let args = json!({});
    let answer = keyword
        .call(&Call {
            args: &args,
            deadline: Instant::now() + Duration::from_secs(10),
            case_start_ms: 1,
            base_dir: Path::new("."),
            host: &NoHost,
        })
        .ok()?;
    answer["version"].as_str().map(String::from)
}

/// The test plugins, copied to a folder of their own.
struct Built {
    v1: PathBuf,
    v2: PathBuf,
    badabi: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds the fixture workspace as `version` and copies the versioned
/// plugin to `to`. Another test binary may build the other version into
/// the same target folder between our build and our copy: the copy is
/// checked, and built again when it answers with another version.
fn build_versioned(version: &str, to: &Path) {
    let (target, profile) = target();
    let fixtures_target = target.join("plugin-fixtures");
    let manifest = workspace().join("runner/tests/fixtures/plugins/Cargo.toml");
    let built = fixtures_target
        .join(&profile)
        .join(lib_name("atf-fixture-versioned"));
    for _ in 0..3 {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--workspace", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&fixtures_target)
            .env("ATF_FIXTURE_VERSION", version)
            .current_dir(workspace());
        if profile == "release" {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building the fixture plugins failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy(&built, to).expect("copy the fixture plugin");
        if version_of(to).as_deref() == Some(version) {
            return;
        }
    }
    panic!("the fixture plugin built as {version} keeps answering with another version");
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let v1 = dir.path().join("fixture-v1.so");
        let v2 = dir.path().join("fixture-v2.so");
        build_versioned("v1", &v1);
        build_versioned("v2", &v2);
        let (target, profile) = target();
        let badabi = dir.path().join("badabi.so");
        std::fs::copy(
            target
                .join("plugin-fixtures")
                .join(profile)
                .join(lib_name("atf-fixture-badabi")),
            &badabi,
        )
        .expect("copy the badabi plugin");
        Built {
            v1,
            v2,
            badabi,
            _dir: dir,
        }
    })
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn version_step(expected: &str) -> Value {
    json!({ "keyword": "fixture.version", "remark": format!("answers {expected}"),
            "expect": { "version": expected } })
}

fn exec_step(cmd: &[&str]) -> Value {
    json!({ "keyword": "exec", "args": { "cmd": cmd }, "expect": { "exit_code": 0 } })
}

#[test]
fn a_plugin_replaced_while_a_case_runs_is_used_by_the_next_steps() {
    let b = built();
    let p = Project::new();
    let plugins = p.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let so = plugins.join("fixture.so");
    std::fs::copy(&b.v1, &so).unwrap();
    let tmp = plugins.join("fixture.so.tmp");
    p.file(
        "cases/reload.case.json",
        json!({
            "name": "reload",
            "steps": [
                version_step("v1"),
                exec_step(&["cp", path_str(&b.v2), path_str(&tmp)]),
                exec_step(&["mv", path_str(&tmp), path_str(&so)]),
                version_step("v2"),
                // A plain overwrite, in place (same inode, same size).
                exec_step(&["cp", path_str(&b.v1), path_str(&so)]),
                version_step("v1"),
            ]
        }),
    );
    let out = p.atf(&["run", "--plugins", "plugins", "cases"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let report = p.report();
    let steps = case(&report, "reload")["steps"].as_array().unwrap().clone();
    assert_eq!(steps.len(), 6);
    for (i, v) in [(0, "v1"), (3, "v2"), (5, "v1")] {
        assert_eq!(steps[i]["status"], "passed", "{:#}", steps[i]);
        assert_eq!(steps[i]["result"]["version"], v);
    }
}

#[test]
fn a_panic_fails_its_step_and_a_plugin_of_another_abi_is_skipped() {
    let b = built();
    let p = Project::new();
    let plugins = p.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&b.v1, plugins.join("fixture.so")).unwrap();
    std::fs::copy(&b.badabi, plugins.join("badabi.so")).unwrap();
    p.file("atf.json", json!({ "plugins": ["plugins"], "jobs": 1 }));
    p.file(
        "cases/a-panics.case.json",
        json!({
            "name": "panics",
            "steps": [
                { "keyword": "fixture.panic", "remark": "boom" },
                { "keyword": "log", "args": { "message": "never" } }
            ]
        }),
    );
    p.file(
        "cases/b-fails.case.json",
        json!({ "name": "fails", "steps": [ { "keyword": "fixture.fail" } ] }),
    );
    p.file(
        "cases/c-passes.case.json",
        json!({ "name": "passes", "steps": [ version_step("v1"),
            { "keyword": "fixture.echo", "args": { "n": 7 }, "expect": { "n": 7 } } ] }),
    );
    let out = p.atf(&["run", "cases"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.last_line(),
        "1 passed, 2 failed, 0 skipped",
        "{}",
        out.stdout
    );

    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("badabi.so"))
        .unwrap_or_else(|| panic!("no warning about badabi.so:\n{}", out.stderr));
    assert!(
        warning.contains("ABI version 999") && warning.contains("ABI version 1"),
        "{warning}"
    );

    let report = p.report();
    let panics = case(&report, "panics");
    // A keyword's error (a panic included) ends the case as `error`.
    assert_eq!(panics["status"], "error", "{panics:#}");
    assert_eq!(panics["steps"][0]["status"], "error");
    let error = panics["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("plugin panicked: fixture boom in v1 (at "),
        "{error}"
    );
    assert_eq!(panics["steps"][1]["status"], "skipped");
    assert!(out.stdout.contains("plugin panicked: fixture boom in v1"));
    assert_eq!(
        case(&report, "fails")["steps"][0]["error"],
        "fixture failure"
    );
    assert_eq!(case(&report, "passes")["status"], "passed");
}

#[test]
fn keywords_lists_plugin_keywords_with_their_arguments() {
    let b = built();
    let p = Project::new();
    let plugins = p.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&b.v1, plugins.join("fixture.so")).unwrap();
    let out = p.atf(&["keywords", "--plugins", "plugins"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("fixture.sleep\n    sleeps, then answers\n    - ms (integer): how long\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("fixture.echo\n    returns its args\n    args: any names and values\n"),
        "{}",
        out.stdout
    );
    for name in [
        "fixture.version",
        "fixture.panic",
        "fixture.fail",
        "http.request",
    ] {
        assert!(out.stdout.contains(&format!("\n{name}\n")), "{name}");
    }

    let json_out = p.atf(&["keywords", "--json", "--plugins", "plugins"]);
    let specs: Value = serde_json::from_str(&json_out.stdout).expect("JSON");
    let sleep = specs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fixture.sleep")
        .expect("fixture.sleep in --json");
    assert_eq!(sleep["args"][0]["name"], "ms");

    // Without the folder, no plugin keyword.
    let plain = p.atf(&["keywords"]);
    assert!(!plain.stdout.contains("fixture."), "{}", plain.stdout);
}

#[test]
fn watch_runs_again_with_a_rebuilt_plugin() {
    let b = built();
    let p = Project::new();
    let plugins = p.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let so = plugins.join("fixture.so");
    std::fs::copy(&b.v1, &so).unwrap();
    p.file(
        "cases/version.case.json",
        json!({ "name": "version", "steps": [ version_step("v1") ] }),
    );
    let mut atf = Running::spawn(p.command(&["run", "--watch", "--plugins", "plugins", "cases"]));
    let watching = "for changes (Ctrl-C to stop)";
    let long = Duration::from_secs(30);
    atf.wait_for(watching, 1, long);
    assert!(
        atf.stdout().contains("watching 2 files"),
        "the case and the plugin:\n{}",
        atf.stdout()
    );
    assert_eq!(case(&p.report(), "version")["status"], "passed");

    // Rebuilt the safe way: written beside, then moved over the old file.
    let tmp = plugins.join("fixture.tmp");
    std::fs::copy(&b.v2, &tmp).unwrap();
    std::fs::rename(&tmp, &so).unwrap();
    atf.wait_for(watching, 2, long);
    assert!(
        atf.stdout().contains("changed: plugins/fixture.so"),
        "{}",
        atf.stdout()
    );
    let version = case(&p.report(), "version").clone();
    assert_eq!(version["status"], "failed", "{version:#}");
    assert_eq!(version["steps"][0]["failures"][0]["actual"], "v2");

    // A case change runs again with the plugins already loaded.
    p.file(
        "cases/version.case.json",
        json!({ "name": "version", "steps": [ version_step("v2") ] }),
    );
    atf.wait_for(watching, 3, long);
    assert_eq!(case(&p.report(), "version")["status"], "passed");

    // A new plugin file in the folder is loaded by the next run; one of
    // another ABI version is skipped with a warning, and the run goes on.
    std::fs::copy(&b.badabi, plugins.join("badabi.so")).unwrap();
    atf.wait_for(watching, 4, long);
    assert!(
        atf.stdout().contains("changed: plugins/badabi.so"),
        "{}",
        atf.stdout()
    );
    assert_eq!(case(&p.report(), "version")["status"], "passed");
    let stderr = atf.stderr();
    assert!(
        stderr.contains("badabi.so") && stderr.contains("ABI version 999"),
        "{stderr}"
    );

    atf.interrupt();
    let (code, _) = atf.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "the last run passed\n{}", atf.stderr());
}
