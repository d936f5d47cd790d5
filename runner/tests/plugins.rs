//! The plugin host against real plugin libraries: the example plugins
//! (`sign`, `tcp`), built here with cargo, and the test plugins of
//! `tests/fixtures/plugins` (a plugin whose answers carry its build's
//! version, one of another ABI version, one written against the bare C ABI
//! with wrong answers), plus files that are not plugins at all. Covers
//! discovery, refusals, calls, panics, name clashes, hot reload with a
//! call in flight, and the cost of a call.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use atf::plugin::PluginHost;
use atf_sdk::{Call, Keyword, KeywordResult, NoHost, Value, json};
use support::{lib_name, target, workspace};

/// Runs cargo; panics with its output when it fails.
fn cargo(args: &[&str], target_dir: &Path, envs: &[(&str, &str)]) {
    let (_, profile) = target();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(args)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace());
    if profile == "release" {
        cmd.arg("--release");
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The built plugins, copied to a folder of their own.
struct Built {
    sign: PathBuf,
    tcp: PathBuf,
    v1: PathBuf,
    v2: PathBuf,
    badabi: PathBuf,
    raw: PathBuf,
    _dir: tempfile::TempDir,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let (target, profile) = target();
        cargo(
            &["build", "-p", "atf-plugin-sign", "-p", "atf-plugin-tcp"],
            &target,
            &[],
        );
        let copy = |from: PathBuf, name: &str| {
            let to = dir.path().join(name);
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
            to
        };
        let examples = target.join(&profile);
        let sign = copy(examples.join(lib_name("atf-plugin-sign")), "sign.so");
        let tcp = copy(examples.join(lib_name("atf-plugin-tcp")), "tcp.so");

        // The test plugins get a target folder of their own, so that they
        // never show up among the real plugins of `target/<profile>`.
        let fixtures_target = target.join("plugin-fixtures");
        let manifest = workspace().join("runner/tests/fixtures/plugins/Cargo.toml");
        let manifest = manifest.to_str().expect("UTF-8 path");
        let fixtures = fixtures_target.join(&profile);
        let mut versions = Vec::new();
        for version in ["v1", "v2"] {
            cargo(
                &["build", "--manifest-path", manifest, "--workspace"],
                &fixtures_target,
                &[("ATF_FIXTURE_VERSION", version)],
            );
            versions.push(copy(
                fixtures.join(lib_name("atf-fixture-versioned")),
                &format!("fixture-{version}.so"),
            ));
        }
        let v2 = versions.pop().expect("v2");
        let v1 = versions.pop().expect("v1");
        Built {
            sign,
            tcp,
            v1,
            v2,
            badabi: copy(fixtures.join(lib_name("atf-fixture-badabi")), "badabi.so"),
            raw: copy(fixtures.join(lib_name("atf-fixture-raw")), "raw.so"),
            _dir: dir,
        }
    })
}

/// A plugin folder holding copies of `files` (`(source, name)`).
fn plugin_dir(files: &[(&Path, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (from, name) in files {
        std::fs::copy(from, dir.path().join(name)).expect("copy plugin");
    }
    dir
}

fn keyword(host: &PluginHost, name: &str) -> Arc<dyn Keyword> {
    host.keywords()
        .into_iter()
        .find(|k| k.spec().name == name)
        .unwrap_or_else(|| panic!("no keyword {name}"))
}

fn call(k: &dyn Keyword, args: Value) -> KeywordResult {
    let call = Call {
        args: &args,
        deadline: Instant::now() + Duration::from_secs(10),
        case_start_ms: 1,
        base_dir: Path::new("."),
        host: &NoHost,
    };
    k.call(&call)
}

/// A system library that is not a plugin, if one is at a usual place.
fn system_library() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib/aarch64-linux-gnu/libz.so.1",
        "/usr/lib/libz.so.1",
        "/usr/lib64/libz.so.1",
        "/usr/lib/libz.dylib",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

#[test]
fn loads_plugins_and_skips_what_is_not_one() {
    let b = built();
    let dir = plugin_dir(&[
        (&b.sign, "sign.so"),
        (&b.tcp, "tcp.so"),
        (&b.v1, "fixture.so"),
        (&b.badabi, "badabi.so"),
        (&b.raw, "raw.so"),
    ]);
    std::fs::write(dir.path().join("junk.so"), b"not a library at all").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored: not a library name").unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::copy(&b.sign, dir.path().join("nested/sign-again.so")).unwrap();
    let system = system_library();
    if let Some(lib) = &system {
        std::fs::copy(lib, dir.path().join("libz.so")).unwrap();
    }

    let missing = dir.path().join("no-such-folder");
    let (host, outcome) = PluginHost::load(&[missing, dir.path().to_path_buf()]);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);

    let warning = |file: &str| {
        outcome
            .warnings
            .iter()
            .find(|w| w.contains(file))
            .unwrap_or_else(|| panic!("no warning about {file}: {:?}", outcome.warnings))
            .clone()
    };
    let bad_abi = warning("badabi.so");
    assert!(
        bad_abi.contains("ABI version 999") && bad_abi.contains("ABI version 1"),
        "{bad_abi}"
    );
    assert!(warning("junk.so").contains("not a loadable library"));
    if system.is_some() {
        assert!(warning("libz.so").contains("not an atf plugin"));
    }
    assert_eq!(
        outcome.warnings.len(),
        2 + usize::from(system.is_some()),
        "{:?}",
        outcome.warnings
    );

    let mut names: Vec<String> = host.keywords().iter().map(|k| k.spec().name).collect();
    names.sort();
    for expected in [
        "sign.sm3",
        "sign.sm4_encrypt",
        "sign.rsa_sign",
        "tcp.request",
        "fixture.version",
        "raw.echo",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let plugins = host.plugins();
    let sign = plugins.iter().find(|p| p.namespace == "sign").unwrap();
    assert_eq!(sign.name, "atf-plugin-sign");
    assert_eq!(sign.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(sign.loads, 1);
    assert!(sign.keywords.iter().any(|k| k.name == "sign.sm4_decrypt"));
    assert_eq!(
        host.origin("tcp.request"),
        Some(dir.path().join("tcp.so").as_path())
    );
    assert_eq!(host.origin("http.request"), None);

    // The example plugins work through the ABI.
    let sm3 = keyword(&host, "sign.sm3");
    assert_eq!(
        call(&*sm3, json!({"data": "abc"})).unwrap()["digest"],
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    let key = "0123456789abcdeffedcba9876543210";
    let sm4 = keyword(&host, "sign.sm4_encrypt");
    assert_eq!(
        call(
            &*sm4,
            json!({"data": key, "input": "hex", "key": key, "padding": "none"})
        )
        .unwrap()["cipher"],
        "681edf34d206965e86b3e94f536e4246"
    );
    let err = call(&*sm4, json!({"data": "x", "key": "short"})).unwrap_err();
    assert!(err.message.contains("`key` must be 16 bytes"), "{err}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        BufReader::new(stream.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        (&stream)
            .write_all(format!("OK {}\n", line.trim()).as_bytes())
            .unwrap();
    });
    let tcp = keyword(&host, "tcp.request");
    let reply = call(
        &*tcp,
        json!({"address": addr, "send": "PING\n", "until": "\n"}),
    )
    .unwrap();
    assert_eq!(reply["text"], "OK PING");
    server.join().unwrap();

    // A panic or an error fails the call, and the plugin goes on working.
    let panic = call(&*keyword(&host, "fixture.panic"), json!({})).unwrap_err();
    assert!(
        panic
            .message
            .starts_with("plugin panicked: fixture boom in v1 (at "),
        "{panic}"
    );
    let fail = call(&*keyword(&host, "fixture.fail"), json!({})).unwrap_err();
    assert_eq!(fail.message, "fixture failure");
    assert_eq!(
        call(&*keyword(&host, "fixture.version"), json!({})).unwrap(),
        json!({"version": "v1"})
    );

    // A plugin's wrong answers are step errors, never a panic of the host.
    let echo = call(&*keyword(&host, "raw.echo"), json!({"a": [1, 2]})).unwrap();
    assert_eq!(echo["args"], json!({"a": [1, 2]}));
    assert_eq!(echo["case_start_ms"], 1);
    let garbage = call(&*keyword(&host, "raw.garbage"), json!({})).unwrap_err();
    assert!(
        garbage.message.contains("invalid answer") && garbage.message.contains("this is not json"),
        "{garbage}"
    );
    let shape = call(&*keyword(&host, "raw.wrong_shape"), json!({})).unwrap_err();
    assert!(shape.message.contains("invalid answer"), "{shape}");
    let null = call(&*keyword(&host, "raw.null"), json!({})).unwrap_err();
    assert!(null.message.contains("no answer"), "{null}");
}

#[test]
fn a_keyword_in_two_files_is_an_error_naming_both() {
    let b = built();
    let one = plugin_dir(&[(&b.sign, "sign.so")]);
    let two = plugin_dir(&[(&b.sign, "sign-copy.so"), (&b.tcp, "tcp.so")]);
    let (host, outcome) = PluginHost::load(&[one.path().into(), two.path().into()]);
    assert!(!outcome.errors.is_empty());
    let first = one.path().join("sign.so");
    let second = two.path().join("sign-copy.so");
    for error in &outcome.errors {
        assert!(
            error.contains(&first.display().to_string())
                && error.contains(&second.display().to_string()),
            "{error}"
        );
    }
    assert!(outcome.errors[0].starts_with("the keyword `sign."));
    // The first file keeps its keywords; the other plugins still load.
    assert_eq!(host.origin("sign.sm3"), Some(first.as_path()));
    assert!(host.origin("tcp.request").is_some());

    // The same file reached twice is loaded once, without a clash.
    let (host, outcome) = PluginHost::load(&[one.path().into(), one.path().into()]);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(host.plugins().len(), 1);
}

#[test]
fn no_folders_no_plugins() {
    let (host, outcome) = PluginHost::load(&[PathBuf::from("/no/such/atf/plugin/folder")]);
    assert!(host.keywords().is_empty());
    assert!(outcome.warnings.is_empty() && outcome.errors.is_empty());
    let (host, _) = PluginHost::load(&[]);
    assert!(host.plugins().is_empty());
}

/// Replaces the plugin file the way a rebuild does: in place.
fn rebuild(from: &Path, to: &Path) {
    std::fs::copy(from, to).expect("overwrite plugin file");
}

#[test]
fn hot_reload_uses_the_new_version_for_new_calls_only() {
    let b = built();
    let dir = plugin_dir(&[(&b.v1, "fixture.so")]);
    let file = dir.path().join("fixture.so");
    let (host, outcome) = PluginHost::load(&[dir.path().into()]);
    assert!(outcome.warnings.is_empty() && outcome.errors.is_empty());
    let version = keyword(&host, "fixture.version");
    let sleep = keyword(&host, "fixture.sleep");
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v1");

    // A call in flight on v1 while the file is rebuilt as v2.
    let in_flight = {
        let sleep = sleep.clone();
        thread::spawn(move || call(&*sleep, json!({"ms": 1500})))
    };
    thread::sleep(Duration::from_millis(300));
    rebuild(&b.v2, &file);
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    let info = &host.plugins()[0];
    assert_eq!(info.loads, 2);
    assert_eq!(info.version, "0.1.0");
    assert_eq!(
        info.live_versions, 2,
        "v1 stays loaded for the call in flight"
    );

    let finished = in_flight.join().unwrap().unwrap();
    assert_eq!(finished, json!({"version": "v1", "slept_ms": 1500}));
    assert_eq!(
        host.plugins()[0].live_versions,
        1,
        "v1 is unloaded after its last call"
    );
    assert_eq!(call(&*sleep, json!({"ms": 1})).unwrap()["version"], "v2");

    // A broken rebuild leaves v2 in use, with a warning.
    std::fs::write(&file, b"half a library").unwrap();
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    let warnings = host.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("fixture.so") && warnings[0].contains("previous version stays"),
        "{warnings:?}"
    );
    // Warned once, not at every call.
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    assert!(host.take_warnings().is_empty());

    // So does a rebuild against another ABI version; the message names both.
    rebuild(&b.badabi, &file);
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    let warnings = host.take_warnings();
    assert!(
        warnings.len() == 1
            && warnings[0].contains("ABI version 999")
            && warnings[0].contains("ABI version 1"),
        "{warnings:?}"
    );

    // A deleted file too.
    std::fs::remove_file(&file).unwrap();
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    assert!(host.take_warnings()[0].contains("cannot be read"));

    // And a good rebuild is picked up again.
    rebuild(&b.v1, &file);
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v1");
    assert_eq!(host.plugins()[0].loads, 3);
    assert_eq!(host.plugins()[0].live_versions, 1);
    assert!(host.take_warnings().is_empty());
}

#[test]
fn keywords_gone_after_a_rebuild_say_so() {
    let b = built();
    let dir = plugin_dir(&[(&b.v1, "plugin.so")]);
    let file = dir.path().join("plugin.so");
    let (host, _) = PluginHost::load(&[dir.path().into()]);
    let version = keyword(&host, "fixture.version");
    // The same file name now holds another plugin, with other keywords.
    rebuild(&b.raw, &file);
    let err = call(&*version, json!({})).unwrap_err();
    assert!(
        err.message.contains("no longer in plugin file") && err.message.contains("restart atf"),
        "{err}"
    );
}

#[test]
fn call_overhead_is_small() {
    let b = built();
    let dir = plugin_dir(&[(&b.v1, "fixture.so")]);
    let (host, _) = PluginHost::load(&[dir.path().into()]);
    let echo = keyword(&host, "fixture.echo");
    let args = json!({"order": "ORD-1", "amount": 12.5, "items": [1, 2, 3]});
    for _ in 0..200 {
        call(&*echo, args.clone()).unwrap();
    }
    let n = 5_000;
    let started = Instant::now();
    for _ in 0..n {
        let out = call(&*echo, args.clone()).unwrap();
        assert_eq!(out["order"], "ORD-1");
    }
    // Printed for a look; `just bench plugin` measures it (no timed assertion).
    let per_call = started.elapsed() / n;
    eprintln!(
        "plugin call round trip: {per_call:?} per call ({})",
        target().1
    );
}

/// A host whose run is being interrupted.
struct Interrupted;

impl atf_sdk::Host for Interrupted {
    fn check(&self, _: &Value, _: &Value) -> Result<Vec<String>, String> {
        Err("not this host".into())
    }
    fn cancelled(&self) -> bool {
        true
    }
}

#[test]
fn plugins_check_expectations_with_the_runners_engine_in_process_and_isolated() {
    let b = built();
    let dir = plugin_dir(&[(&b.v1, "fixture.so")]);
    for options in [atf::plugin::PluginOptions::default(), isolated()] {
        let (host, outcome) = PluginHost::load_with(&[dir.path().into()], &options);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let check = keyword(&host, "fixture.check");
        let out = call(
            &*check,
            json!({"actual": {"status": "PAID", "n": 2}, "expect": {"status": "PAID", "$.n": {"$gt": 5}}}),
        )
        .unwrap();
        assert_eq!(out, json!({"failures": ["$.n: expected > 5, got 2"]}));
        let bad = call(
            &*check,
            json!({"actual": {}, "expect": {"$.n": {"$gtt": 5}}}),
        )
        .unwrap_err();
        assert!(bad.message.contains("unknown matcher $gtt"), "{bad}");
    }
}

#[test]
fn a_plugin_in_atf_sees_the_run_being_interrupted() {
    let b = built();
    let dir = plugin_dir(&[(&b.v1, "fixture.so")]);
    let (host, _) = PluginHost::load(&[dir.path().into()]);
    let wait = keyword(&host, "fixture.wait");
    let args = json!({});
    let run = |host: &dyn atf_sdk::Host| {
        wait.call(&Call {
            args: &args,
            deadline: Instant::now() + Duration::from_millis(300),
            case_start_ms: 1,
            base_dir: Path::new("."),
            host,
        })
    };
    assert_eq!(run(&Interrupted).unwrap(), json!({"cancelled": true}));
    assert_eq!(run(&NoHost).unwrap(), json!({"cancelled": false}));
}

/// How `atf` starts plugin hosts: the binary under test.
fn isolated() -> atf::plugin::PluginOptions {
    atf::plugin::PluginOptions {
        host: Some(atf::plugin::HostCommand {
            program: PathBuf::from(support::atf_bin()),
            args: vec![atf::plugin::SUBCOMMAND.into()],
        }),
        in_process: Vec::new(),
    }
}

#[test]
fn plugin_hosts_serve_the_same_calls_and_swap_on_hot_reload() {
    let b = built();
    let dir = plugin_dir(&[
        (&b.v1, "fixture.so"),
        (&b.raw, "raw.so"),
        (&b.badabi, "badabi.so"),
    ]);
    let file = dir.path().join("fixture.so");
    let (host, outcome) = PluginHost::load_with(&[dir.path().into()], &isolated());
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    // What the host process says about a plugin it cannot load is the same warning.
    assert!(
        outcome.warnings.len() == 1 && outcome.warnings[0].contains("ABI version 999"),
        "{:?}",
        outcome.warnings
    );
    assert!(host.plugins().iter().all(|p| p.isolated));

    let version = keyword(&host, "fixture.version");
    let sleep = keyword(&host, "fixture.sleep");
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v1");
    let panic = call(&*keyword(&host, "fixture.panic"), json!({})).unwrap_err();
    assert!(
        panic
            .message
            .starts_with("plugin panicked: fixture boom in v1"),
        "{panic}"
    );
    let garbage = call(&*keyword(&host, "raw.garbage"), json!({})).unwrap_err();
    assert!(garbage.message.contains("this is not json"), "{garbage}");
    let null = call(&*keyword(&host, "raw.null"), json!({})).unwrap_err();
    assert!(null.message.contains("no answer"), "{null}");
    let echo = call(&*keyword(&host, "raw.echo"), json!({"a": [1, 2]})).unwrap();
    assert_eq!(echo["args"], json!({"a": [1, 2]}));

    // A call in flight on v1 while the file is rebuilt as v2: new calls go
    // to hosts of v2, the call in flight finishes in its v1 host.
    let in_flight = {
        let sleep = sleep.clone();
        thread::spawn(move || call(&*sleep, json!({"ms": 1500})))
    };
    thread::sleep(Duration::from_millis(300));
    rebuild(&b.v2, &file);
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    let info = host
        .plugins()
        .into_iter()
        .find(|p| p.namespace == "fixture")
        .unwrap();
    assert_eq!((info.loads, info.live_versions), (2, 2));
    assert_eq!(
        in_flight.join().unwrap().unwrap(),
        json!({"version": "v1", "slept_ms": 1500})
    );
    let info = host
        .plugins()
        .into_iter()
        .find(|p| p.namespace == "fixture")
        .unwrap();
    assert_eq!(info.live_versions, 1, "v1's hosts end with its last call");

    // A broken rebuild keeps v2, with a warning.
    std::fs::write(&file, b"half a library").unwrap();
    assert_eq!(call(&*version, json!({})).unwrap()["version"], "v2");
    assert!(host.take_warnings()[0].contains("previous version stays"));

    // The round trip, for the record (the bench measures it properly).
    let echo = keyword(&host, "fixture.echo");
    let args = json!({"order": "ORD-1", "amount": 12.5, "items": [1, 2, 3]});
    let n = 2_000;
    let started = Instant::now();
    for _ in 0..n {
        call(&*echo, args.clone()).unwrap();
    }
    eprintln!(
        "isolated plugin call round trip: {:?} per call ({})",
        started.elapsed() / n,
        target().1
    );
}
