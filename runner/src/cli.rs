//! The command line: clap types, and the glue from flags to a
//! [`RunConfig`], the loader, the engine and the reporters.
//!
//! Exit codes: 0 every selected case passed (skipped allowed); 1 a case
//! failed or errored (or `atf check` found problems); 2 nothing could run
//! (bad usage, bad project file, no cases selected); 99 a load threshold
//! was breached (`atf load`); 130 interrupted.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::config::{Project, RunConfig, Selection, Shard, parse_var};
use crate::diag::Diagnostic;
use crate::load::Catalog;

use crate::exit::{FAILED as EXIT_FAILED, OK as EXIT_OK, USAGE as EXIT_USAGE};

#[derive(Parser, Debug)]
#[command(
    name = "atf",
    version,
    about = "Keyword-driven integration tests: JSON case files against real services.",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run cases (default path: the current folder).
    Run(RunArgs),
    /// Run the cases as a load test: virtual users (--vus) or an arrival
    /// rate (--rate), with latency percentiles, thresholds and load.html.
    Load(Box<LoadArgs>),
    /// Load and validate everything, run nothing; also name every
    /// placeholder that nothing can define.
    Check(CommonArgs),
    /// The cases a run with the same filters would run, one per line.
    List(CommonArgs),
    /// Every keyword available, with its arguments.
    Keywords(KeywordsArgs),
    /// The JSON Schema of case files (`--file suite|project` for the others).
    Schema(SchemaArgs),
    /// Work with report folders.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Serve the project's web pages and JSON API: browse and edit cases,
    /// start runs and follow them live, keep the run history.
    Serve(ServeArgs),
    /// Run queued runs of an `atf serve` in this project folder: connect
    /// out to the server, take the runs whose labels this worker has, and
    /// stream their events back.
    Worker(WorkerArgs),
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// The project folder the runs run in (the one with atf.json).
    #[arg(default_value = ".")]
    project: PathBuf,
    /// The `atf serve` to work for: http://HOST:PORT.
    #[arg(long, value_name = "URL")]
    server: String,
    /// The server's API token (default: ATF_SERVE_TOKEN). Never printed.
    #[arg(long, value_name = "T")]
    token: Option<String>,
    /// This worker's labels, KEY=VALUE,...: it takes the runs that ask for
    /// none or only for labels it has.
    #[arg(long, value_name = "K=V,...", default_value = "")]
    labels: String,
    /// Its name on the server (default: HOSTNAME-PID).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    /// The project folder (the one with atf.json).
    #[arg(default_value = ".")]
    project: PathBuf,
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// The address to listen on; any but a loopback address needs a token
    /// (ATF_SERVE_TOKEN, or the first line of PROJECT/.atf/token).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// The run history: postgres://USER:PASSWORD@HOST/DB for PostgreSQL,
    /// or an SQLite file (default: PROJECT/.atf/atf.db).
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ServeCommand {
    /// Add the runs of report folders (report.json and/or events.jsonl)
    /// to the server's run history.
    Import {
        /// Report folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// The project folder whose history receives them.
        #[arg(long, default_value = ".")]
        project: PathBuf,
        /// The run history, as for `atf serve --db`.
        #[arg(long, value_name = "URL")]
        db: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Write report.json, junit.xml and index.html again from the
    /// events.jsonl of a report folder: for a run that was killed.
    Rebuild {
        /// The report folder (with events.jsonl).
        #[arg(default_value = "atf-report")]
        dir: PathBuf,
    },
    /// Combine the reports of several shard runs into one report set
    /// (folders with load.json merge as load runs: histograms exactly,
    /// thresholds evaluated again).
    Merge {
        /// Report folders (each with a report.json, or a load.json).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged reports go.
        #[arg(long, default_value = "atf-report")]
        out: PathBuf,
        /// Also write the merged run's Allure 2 results into DIR.
        #[arg(long, value_name = "DIR")]
        allure: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CommonArgs {
    /// Case files or folders (searched for *.case.json).
    paths: Vec<PathBuf>,
    /// The project file (default: atf.json found walking up from the first path).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Environment from the project file.
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// Tag expression, e.g. 'smoke and not slow'.
    #[arg(long, value_name = "EXPR")]
    tags: Option<String>,
    /// Glob on case names (repeatable; a case matching any is selected).
    #[arg(long, value_name = "GLOB")]
    filter: Vec<String>,
    /// Run the K-th of N stable slices of the selected cases (default: from
    /// ATF_SHARD, GitLab's CI_NODE_INDEX/CI_NODE_TOTAL, or a Kubernetes
    /// Indexed Job's JOB_COMPLETION_INDEX with --shard-total).
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// The number of shards when the index comes from JOB_COMPLETION_INDEX
    /// (default: ATF_SHARD_TOTAL).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    shard_total: Option<u32>,
    /// Balance shards by the case durations of this report (report.json or
    /// its folder), e.g. the last merged report.
    #[arg(long, value_name = "REPORT")]
    durations: Option<PathBuf>,
    /// A matrix dimension (repeatable): the selection runs once per
    /// combination, with NAME set to each value, e.g. checkout_v2=on,off.
    #[arg(long = "matrix", value_name = "NAME=V1,V2", value_parser = crate::matrix::parse_dim)]
    matrix: Vec<(String, Vec<Value>)>,
    /// An extra matrix cell (repeatable), e.g. checkout_v2=on,region=us.
    #[arg(long = "matrix-include", value_name = "NAME=V,...", value_parser = crate::matrix::parse_cell)]
    matrix_include: Vec<crate::matrix::Cell>,
    /// Drop the matrix cells with these values (repeatable), e.g. region=sg.
    #[arg(long = "matrix-exclude", value_name = "NAME=V,...", value_parser = crate::matrix::parse_cell)]
    matrix_exclude: Vec<crate::matrix::Cell>,
    /// Override a variable (repeatable); VALUE is JSON when it parses as a
    /// number, boolean, null, list or object, else text.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, Value)>,
    /// Extra plugin folder (repeatable).
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Cases run at once (default: the project's `jobs`, else the CPU count).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Where reports go.
    #[arg(long, value_name = "DIR", default_value = "atf-report")]
    report_dir: PathBuf,
    /// Stop starting new cases after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Also write Allure 2 results (`*-result.json`, `*-container.json`,
    /// attachments) into DIR (default: the project's `allure`).
    #[arg(long, value_name = "DIR")]
    allure: Option<PathBuf>,
    /// Only the cases that failed in the last report (report-dir/report.json).
    #[arg(long)]
    rerun_failed: bool,
    /// Print every case, not only failures.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// After the run, watch the cases, the files beside them, the project
    /// file and the plugins, and run again when one changes (Ctrl-C stops).
    #[arg(long)]
    watch: bool,
    /// Rerun a failed or errored case (the whole case) up to N more times;
    /// one that passes on a retry is flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Wait before each retry, e.g. 2s or 500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    retry_delay: Option<std::time::Duration>,
    /// A flaky case fails the run (exit 1).
    #[arg(long)]
    fail_on_flaky: bool,
    /// Run each selected case N times (named `name #1` … `name #N`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "until_fail")]
    repeat_each: Option<u32>,
    /// Run each selected case up to N times, one run after another, and
    /// stop its runs at its first failure.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    until_fail: Option<u32>,
    /// Push the run's events, as they happen, to the `atf serve` at URL
    /// (its token from ATF_SERVE_TOKEN); the run shows live there and
    /// stays in its history.
    #[arg(long, value_name = "URL", conflicts_with = "watch")]
    server: Option<String>,
}

/// `--retry-delay`: `2s`, `500ms`, `1m`, or milliseconds.
fn parse_duration_arg(s: &str) -> Result<std::time::Duration, String> {
    let v = match s.trim().parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(s.trim().to_string()),
    };
    atf_sdk::parse_duration(&v).map_err(|e| e.to_string())
}

fn parse_load_duration(text: &str) -> Result<std::time::Duration, String> {
    if text.trim().parse::<f64>().is_ok() {
        return Err(format!("`{text}`: give a unit, e.g. 30s, 2m, 500ms"));
    }
    atf_sdk::parse_duration_str(text)
}

fn parse_threshold(text: &str) -> Result<crate::loadtest::threshold::Threshold, String> {
    text.parse()
}

#[derive(Args, Debug)]
struct LoadArgs {
    /// Case files or folders (searched for *.case.json).
    paths: Vec<PathBuf>,
    /// The project file (default: atf.json found walking up from the first path).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Environment from the project file.
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
    /// Tag expression, e.g. 'smoke and not slow'.
    #[arg(long, value_name = "EXPR")]
    tags: Option<String>,
    /// Glob on case names (repeatable; a case matching any is selected).
    #[arg(long, value_name = "GLOB")]
    filter: Vec<String>,
    /// Override a variable (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, Value)>,
    /// Extra plugin folder (repeatable).
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Vec<PathBuf>,
    /// Closed model: N virtual users, each running iterations back to back
    /// (default: 1).
    #[arg(long, value_name = "N", conflicts_with = "rate", value_parser = clap::value_parser!(u64).range(1..))]
    vus: Option<u64>,
    /// Open model: iterations start at this rate (300/s, 18000/m); when no
    /// VU is free an iteration is dropped (counted), not delayed.
    #[arg(long, value_name = "RATE", value_parser = crate::loadtest::options::parse_rate)]
    rate: Option<f64>,
    /// Open model: most virtual users at once.
    #[arg(long, value_name = "N", requires = "rate", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    max_vus: u64,
    /// The threads that the virtual users share when every keyword of the
    /// cases waits without holding its thread (every built-in but kafka.*
    /// and exec); default: one per CPU less one, at least one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,
    /// Measured time, after the warm-up (e.g. 2m).
    #[arg(long, value_name = "TIME", value_parser = parse_load_duration)]
    duration: Option<std::time::Duration>,
    /// Stop after this many measured iterations (with --duration: whichever
    /// comes first; with neither: 1 iteration).
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
    /// VUs (or the rate) rise linearly from 0 over this time.
    #[arg(long, value_name = "TIME", value_parser = parse_load_duration)]
    ramp: Option<std::time::Duration>,
    /// Run this long first without recording anything.
    #[arg(long, value_name = "TIME", value_parser = parse_load_duration)]
    warmup: Option<std::time::Duration>,
    /// When the run ends, how long running iterations may take to finish
    /// before they are interrupted (their undo and cleanup still run).
    #[arg(long, value_name = "TIME", value_parser = parse_load_duration, default_value = "30s")]
    graceful_stop: std::time::Duration,
    /// What an iteration is: `case` (prepare, steps, undo, cleanup) or
    /// `steps` (each VU runs prepare once and cleanup when it stops).
    #[arg(long, value_enum, default_value = "case")]
    iteration: crate::loadtest::options::IterationMode,
    /// Case weight in the mix, NAME=W (NAME: case name or glob;
    /// repeatable; overrides the case file's `weight`).
    #[arg(long = "weight", value_name = "NAME=W", value_parser = crate::loadtest::options::parse_weight)]
    weights: Vec<(String, f64)>,
    /// Pass/fail criterion (repeatable): 'p95<200ms', 'errors<1%',
    /// 'rate>=290/s', 'step:"place order" p99<500ms'. A breach exits 99.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = parse_threshold)]
    thresholds: Vec<crate::loadtest::threshold::Threshold>,
    /// Run the K-th of N shards of the load: VUs, rate and iterations are
    /// split; `atf report merge` combines the shards' folders.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Write every measured step sample to FILE as CSV with JMeter's
    /// columns (a .jtl file).
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// Where load.json, load.html and junit.xml go.
    #[arg(long, value_name = "DIR", default_value = "atf-report")]
    report_dir: PathBuf,
}

#[derive(Args, Debug)]
struct KeywordsArgs {
    /// Print the keyword specs as JSON.
    #[arg(long)]
    json: bool,
    /// Extra plugin folder (repeatable).
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Vec<PathBuf>,
    /// The project file (for its plugin folders).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SchemaArgs {
    /// Which file to describe: a case file, a `suite.json` or the project
    /// file `atf.json`.
    #[arg(long, value_enum, default_value = "case")]
    file: crate::format::FileKind,
    /// Extra plugin folder (repeatable), so plugin keywords are described too.
    #[arg(long = "plugins", value_name = "DIR")]
    plugins: Vec<PathBuf>,
    /// The project file (for its plugin folders).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs the `atf` command; returns the exit code.
pub fn main() -> i32 {
    // The plugin-host process of an isolated plugin: no flags, no output.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == crate::plugin::SUBCOMMAND) {
        return match (args.next(), args.next()) {
            (Some(lib), None) => crate::plugin::serve(std::path::Path::new(&lib)),
            _ => usage_error(format!("usage: atf {} LIBRARY", crate::plugin::SUBCOMMAND)),
        };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    match cli.command {
        Command::Run(a) => run(a),
        Command::Load(a) => load(*a),
        Command::Check(a) => check(a),
        Command::List(a) => list(a),
        Command::Keywords(a) => keywords(a),
        Command::Schema(a) => schema(a),
        Command::Serve(a) => serve(a),
        Command::Worker(a) => worker(a),
        Command::Report(ReportCommand::Rebuild { dir }) => crate::merge::rebuild(&dir),
        Command::Report(ReportCommand::Merge { dirs, out, allure }) => {
            if !dirs.is_empty() && dirs.iter().all(|d| crate::loadtest::merge::is_load_dir(d)) {
                crate::loadtest::merge::merge(&dirs, &out)
            } else {
                crate::merge::merge(&dirs, &out, allure.as_deref())
            }
        }
    }
}

fn usage_error(msg: impl std::fmt::Display) -> i32 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}

fn print_diags(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = write!(err, "{d}");
    }
}

/// The project for these paths (an empty one when there is no file).
fn project_for(config: Option<&PathBuf>, paths: &[PathBuf]) -> Result<Project, i32> {
    let path = match config {
        Some(c) => Some(c.clone()),
        None => Project::find(
            paths
                .first()
                .map(PathBuf::as_path)
                .unwrap_or(std::path::Path::new(".")),
        ),
    };
    match path {
        Some(p) => Project::load(&p).map_err(|d| {
            print_diags(&d);
            EXIT_USAGE
        }),
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            Ok(Project::empty(cwd))
        }
    }
}

/// Plugin folders: the project's, `ATF_PLUGIN_PATH`, then `--plugins`.
fn plugin_dirs(project: &Project, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = project.plugins.clone();
    if let Some(p) = std::env::var_os("ATF_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.extend(extra.iter().cloned());
    dirs
}

fn build_config(common: &CommonArgs, run: Option<&RunArgs>) -> Result<RunConfig, i32> {
    let paths = if common.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        common.paths.clone()
    };
    let project = project_for(common.config.as_ref(), &paths)?;
    let (env_name, env) = project.env(common.env.as_deref()).map_err(usage_error)?;
    let jobs = run
        .and_then(|r| r.jobs.map(usize::from))
        .or(project.jobs)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(4, |n| n.get())
                .max(2)
        });
    let report_dir = run.map_or_else(|| PathBuf::from("atf-report"), |r| r.report_dir.clone());
    let only = match run {
        Some(r) if r.rerun_failed => {
            let last = atf_reports::read_last_run(&r.report_dir).map_err(|e| {
                usage_error(format!("--rerun-failed needs the last run's report: {e}"))
            })?;
            Some(
                last.cases
                    .iter()
                    .filter(|c| match c.status {
                        atf_reports::Status::Failed | atf_reports::Status::Error => true,
                        // An interrupted run did not get to them.
                        atf_reports::Status::Skipped => last.interrupted,
                        atf_reports::Status::Passed | atf_reports::Status::Flaky => false,
                    })
                    .map(|c| (c.file.clone(), c.name.clone()))
                    .collect(),
            )
        }
        _ => None,
    };
    let (shard, warning) = crate::shard::resolve(
        common.shard,
        common.shard_total.map(|n| n as usize),
        &|name| std::env::var(name).ok(),
    )
    .map_err(usage_error)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let durations = match &common.durations {
        Some(p) => Some(crate::shard::Durations::read(p).map_err(usage_error)?),
        None => None,
    };
    let selection = Selection {
        tags: common.tags.clone(),
        filters: common.filter.clone(),
        shard,
        exclude_tags: env.exclude_tags.clone(),
        only,
        durations,
    };
    let matrix = project.matrix.clone().overlay(crate::matrix::Matrix {
        dims: common.matrix.clone(),
        include: common.matrix_include.clone(),
        exclude: common.matrix_exclude.clone(),
    });
    let allure = run
        .and_then(|r| r.allure.clone())
        .or_else(|| project.allure.clone());
    let overrides: Map<String, Value> = common.vars.iter().cloned().collect();
    let plugin_dirs = plugin_dirs(&project, &common.plugins);
    Ok(RunConfig {
        project,
        env_name,
        env,
        paths,
        jobs,
        overrides,
        report_dir,
        fail_fast: run.is_some_and(|r| r.fail_fast),
        plugin_dirs,
        selection,
        repeat: crate::exec::repeat::RepeatPolicy {
            retries: run.map_or(0, |r| r.retries),
            retry_delay: run.and_then(|r| r.retry_delay).unwrap_or_default(),
            repeat: run
                .and_then(|r| r.repeat_each.or(r.until_fail))
                .unwrap_or(1),
            until_fail: run.is_some_and(|r| r.until_fail.is_some()),
        },
        fail_on_flaky: run.is_some_and(|r| r.fail_on_flaky),
        matrix,
        allure,
    })
}

/// Loads plugins, each in plugin-host processes unless `in_process` names
/// it; warnings go to stderr; a clash is a usage error.
fn load_plugins(
    dirs: &[PathBuf],
    in_process: &[PathBuf],
) -> Result<crate::plugin::PluginHost, i32> {
    let options = crate::plugin::PluginOptions::isolated(in_process.to_vec())
        .map_err(|e| usage_error(format!("cannot find the atf binary to run plugins: {e}")))?;
    let (host, outcome) = crate::plugin::PluginHost::load_with(dirs, &options);
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if !outcome.errors.is_empty() {
        for e in &outcome.errors {
            eprintln!("error: {e}");
        }
        return Err(EXIT_USAGE);
    }
    Ok(host)
}

/// Built-in specs plus plugin specs; a plugin keyword with a built-in name is an error.
fn catalog(plugins: &crate::plugin::PluginHost) -> Result<Catalog, i32> {
    let builtin = atf_keywords::specs();
    let mut all = builtin.clone();
    for k in plugins.keywords() {
        let spec = k.spec();
        if builtin.iter().any(|b| b.name == spec.name) {
            let file = plugins
                .origin(&spec.name)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "a plugin".into());
            return Err(usage_error(format!(
                "{file} defines `{}`, which is a built-in keyword",
                spec.name
            )));
        }
        all.push(spec);
    }
    Ok(Catalog::new(all))
}

/// The case runs of each matrix cell (one phase without a matrix).
type Phases = Vec<(Option<crate::matrix::Cell>, Vec<crate::model::CaseRun>)>;

/// Loads and selects the case runs of a config, per matrix cell.
fn load_selected(cfg: &RunConfig, catalog: &Catalog) -> Result<Phases, i32> {
    load_selected_with(cfg, catalog, None)
}

/// [`load_selected`], with one file's text given (see [`crate::load::load_with`]).
fn load_selected_with(
    cfg: &RunConfig,
    catalog: &Catalog,
    unsaved: Option<(&Path, &str)>,
) -> Result<Phases, i32> {
    let files = match unsaved {
        // The file may not be on disk yet.
        Some((p, _)) => vec![p.to_path_buf()],
        None => crate::load::discover(&cfg.paths).map_err(usage_error)?,
    };
    let mut boundaries: Vec<PathBuf> = cfg
        .paths
        .iter()
        .map(|p| {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            if abs.is_dir() {
                abs
            } else {
                abs.parent().map(PathBuf::from).unwrap_or(abs)
            }
        })
        .collect();
    if cfg.project.path.is_some() {
        boundaries.push(cfg.project.root.clone());
    }
    let selector = crate::select::Selector::new(&cfg.selection).map_err(usage_error)?;
    let runs = selector.select(crate::load::load_with(
        &files,
        &boundaries,
        catalog,
        unsaved,
    ));
    let phases = crate::matrix::expand(&cfg.matrix.cells(), runs);
    Ok(selector.shard(selector.keep_only(phases)))
}

fn run(args: RunArgs) -> i32 {
    if args.watch {
        return watch(&args);
    }
    let cfg = match build_config(&args.common, Some(&args)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let plugins = match load_plugins(&cfg.plugin_dirs, &cfg.project.in_process_plugins) {
        Ok(p) => p,
        Err(code) => return code,
    };
    run_with(&args, &cfg, &plugins)
}

/// `atf run --watch`: see [`crate::watch`]. The plugin folders are loaded
/// again when a plugin file changed; `--rerun-failed` picks the cases once,
/// from the report before the first run.
fn watch(args: &RunArgs) -> i32 {
    let mut host: Option<(Vec<PathBuf>, crate::plugin::PluginHost)> = None;
    let mut only = None;
    crate::watch::watch(
        || match build_config(&args.common, Some(args)) {
            Ok(mut cfg) => {
                match &only {
                    None => only = Some(cfg.selection.only.clone()),
                    Some(first) => cfg.selection.only = first.clone(),
                }
                (crate::watch::Targets::of(&cfg), Ok(cfg))
            }
            Err(code) => (watch_fallback(args), Err(code)),
        },
        |cfg, change| {
            if change.plugins
                || host
                    .as_ref()
                    .is_some_and(|(dirs, _)| *dirs != cfg.plugin_dirs)
            {
                host = None;
            }
            if host.is_none() {
                match load_plugins(&cfg.plugin_dirs, &cfg.project.in_process_plugins) {
                    Ok(p) => host = Some((cfg.plugin_dirs.clone(), p)),
                    Err(code) => return code,
                }
            }
            match &host {
                Some((_, plugins)) => run_with(args, &cfg, plugins),
                None => EXIT_USAGE,
            }
        },
    )
}

/// What to watch when the configuration cannot be read (a broken project
/// file): the paths, the project file, and the plugin folders known
/// without it.
fn watch_fallback(args: &RunArgs) -> crate::watch::Targets {
    let paths = if args.common.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.common.paths.clone()
    };
    let project = args
        .common
        .config
        .clone()
        .or_else(|| paths.first().and_then(|p| Project::find(p)));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    crate::watch::Targets {
        project_root: project.as_ref().and_then(|p| p.parent()).map(PathBuf::from),
        files: project.into_iter().collect(),
        plugin_dirs: plugin_dirs(&Project::empty(cwd), &args.common.plugins),
        exclude: vec![args.report_dir.clone()],
        paths,
    }
}

/// Runs with the configuration and plugins loaded: loads and selects the
/// cases, runs them, writes the reports.
fn run_with(args: &RunArgs, cfg: &RunConfig, plugins: &crate::plugin::PluginHost) -> i32 {
    let catalog = match catalog(plugins) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let phases = match load_selected(cfg, &catalog) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if phases.iter().all(|(_, runs)| runs.is_empty()) {
        return usage_error("no cases selected (check the paths, --tags, --filter and --shard)");
    }
    let mut console = atf_reports::console::Console::new({
        let mut o = atf_reports::console::ConsoleOptions::detect();
        o.verbose = args.verbose;
        o.report_path = Some(cfg.report_dir.join("index.html").display().to_string());
        o
    });
    // The last run's reports move aside now: a run killed before it
    // writes its own leaves none that look current.
    if let Err(e) = atf_reports::start_run(&cfg.report_dir) {
        return usage_error(format!(
            "cannot prepare the report folder {}: {e}",
            cfg.report_dir.display()
        ));
    }
    let mut log = match atf_reports::events_file::EventLog::create(&cfg.report_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot write {} in {}: {e}",
                atf_reports::events_file::FILE_NAME,
                cfg.report_dir.display()
            );
            return EXIT_USAGE;
        }
    };
    let mut push = args.server.as_deref().and_then(|url| {
        let paths: Vec<String> = cfg.paths.iter().map(|p| p.display().to_string()).collect();
        crate::push::Push::start(
            url,
            &serde_json::json!({
                "paths": paths,
                "env": cfg.env_name,
                "tags": args.common.tags,
                "pushed": true,
            }),
        )
    });
    let result = {
        let mut reporters: Vec<&mut dyn atf_reports::Reporter> = vec![&mut console, &mut log];
        if let Some(p) = push.as_mut() {
            reporters.push(p);
        }
        crate::engine::run_phases(cfg, plugins, phases, &mut reporters)
    };
    let code = match result {
        Ok(outcome) => finish_run(cfg, plugins, &mut log, outcome),
        Err(e) => usage_error(e),
    };
    if let Some(p) = push {
        p.finish(code);
    }
    code
}

/// After a run: warnings, the file reports, Allure; the exit code.
fn finish_run(
    cfg: &RunConfig,
    plugins: &crate::plugin::PluginHost,
    log: &mut atf_reports::events_file::EventLog,
    mut outcome: crate::engine::Outcome,
) -> i32 {
    if let Some((path, e)) = log.take_error() {
        eprintln!("warning: writing {} stopped: {e}", path.display());
    }
    for w in plugins.take_warnings() {
        eprintln!("warning: {w}");
    }
    outcome.report.interrupted = outcome.interrupted;
    if let Err(e) = crate::engine::write_reports(&cfg.report_dir, &outcome.report) {
        eprintln!(
            "error: cannot write reports to {}: {e}",
            cfg.report_dir.display()
        );
        return EXIT_FAILED;
    }
    if let Some(dir) = &cfg.allure
        && let Err(e) = atf_reports::allure::write(dir, &outcome.report)
    {
        eprintln!(
            "error: cannot write Allure results to {}: {e}",
            dir.display()
        );
        return EXIT_FAILED;
    }
    outcome.exit_code()
}

/// `atf load`: see [`crate::loadtest`].
fn load(args: LoadArgs) -> i32 {
    let common = CommonArgs {
        paths: args.paths.clone(),
        config: args.config.clone(),
        env: args.env.clone(),
        tags: args.tags.clone(),
        filter: args.filter.clone(),
        shard: None,
        shard_total: None,
        durations: None,
        matrix: Vec::new(),
        matrix_include: Vec::new(),
        matrix_exclude: Vec::new(),
        vars: args.vars.clone(),
        plugins: args.plugins.clone(),
    };
    let cfg = match build_config(&common, None) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let plugins = match load_plugins(&cfg.plugin_dirs, &cfg.project.in_process_plugins) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let catalog = match catalog(&plugins) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runs = match load_selected(&cfg, &catalog) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if runs.is_empty() {
        return usage_error("no cases selected (check the paths, --tags and --filter)");
    }
    use crate::loadtest::options::{LoadOptions, Model};
    let model = match args.rate {
        Some(rate) => Model::Open {
            rate,
            max_vus: args.max_vus,
        },
        None => Model::Closed {
            vus: args.vus.unwrap_or(1),
        },
    };
    let iterations = match (args.duration, args.iterations) {
        (None, None) => Some(1),
        (_, n) => n,
    };
    let opts = LoadOptions {
        model,
        duration: args.duration,
        iterations,
        ramp: args.ramp.unwrap_or_default(),
        warmup: args.warmup.unwrap_or_default(),
        graceful_stop: args.graceful_stop,
        threads: args.threads,
        iteration: args.iteration,
        weights: args.weights.clone(),
        shard: args.shard,
        samples: args.samples.clone(),
        report_dir: args.report_dir.clone(),
    };
    let mut thresholds: Vec<crate::loadtest::Sourced> = Vec::new();
    let env_source = format!(
        "atf.json, environment `{}`",
        cfg.env_name.as_deref().unwrap_or("")
    );
    for text in &cfg.env.load_thresholds {
        match text.parse() {
            Ok(t) => thresholds.push((t, env_source.clone())),
            Err(e) => return usage_error(e),
        }
    }
    thresholds.extend(
        args.thresholds
            .iter()
            .map(|t| (t.clone(), "--threshold".to_string())),
    );
    let runs = runs.into_iter().flat_map(|(_, runs)| runs).collect();
    let code = crate::loadtest::load(&cfg, &plugins, runs, opts, thresholds);
    for w in plugins.take_warnings() {
        eprintln!("warning: {w}");
    }
    code
}

/// What `check` and `list` work on: the config and the selected case runs
/// (plugins loaded, so plugin keywords are known).
impl CommonArgs {
    /// Flags with only these paths, as `atf serve` loads them.
    pub(crate) fn for_paths(paths: Vec<PathBuf>) -> CommonArgs {
        CommonArgs {
            paths,
            ..CommonArgs::default()
        }
    }
}

pub(crate) fn load_for(args: &CommonArgs) -> Result<(RunConfig, Vec<crate::model::CaseRun>), i32> {
    load_for_with(args, None)
}

/// [`load_for`] with one case file's text given, not read from disk:
/// `atf check` on what `atf serve`'s editor holds.
pub(crate) fn load_for_with(
    args: &CommonArgs,
    unsaved: Option<(&Path, &str)>,
) -> Result<(RunConfig, Vec<crate::model::CaseRun>), i32> {
    let mut cfg = build_config(args, None)?;
    let plugins = load_plugins(&cfg.plugin_dirs, &cfg.project.in_process_plugins)?;
    let catalog = catalog(&plugins)?;
    let phases = load_selected_with(&cfg, &catalog, unsaved)?;
    // Matrix dimensions are defined names for `atf check`, like `--var`.
    if let Some((Some(cell), _)) = phases.first() {
        for (k, v) in cell {
            cfg.overrides.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let runs = phases.into_iter().flat_map(|(_, runs)| runs).collect();
    Ok((cfg, runs))
}

fn check(args: CommonArgs) -> i32 {
    let (cfg, runs) = match load_for(&args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let findings = crate::check::check(&cfg, &runs);
    let mut out = std::io::stdout().lock();
    for f in &findings {
        let _ = write!(out, "{f}");
    }
    let cases = runs.len();
    if findings.is_empty() {
        let _ = writeln!(out, "checked {cases} cases: no problems found");
        EXIT_OK
    } else {
        let _ = writeln!(
            out,
            "checked {cases} cases: {} problems found",
            findings.len()
        );
        EXIT_FAILED
    }
}

fn list(args: CommonArgs) -> i32 {
    let (_cfg, runs) = match load_for(&args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    for r in &runs {
        let tags = r.tags();
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!("  [{}]", tags.join(", "))
        };
        let broken = if r.case.is_err() {
            "  (error: cannot load)"
        } else {
            ""
        };
        let _ = writeln!(out, "{}  ({}){tags}{broken}", r.name, r.file());
    }
    if runs.is_empty() { EXIT_USAGE } else { EXIT_OK }
}

/// The keywords of the project at `root`, its plugins' included (what
/// `atf keywords` there lists).
pub(crate) fn project_catalog(root: &Path) -> Result<Catalog, i32> {
    let project = project_for(None, &[root.to_path_buf()])?;
    let plugins = load_plugins(&plugin_dirs(&project, &[]), &project.in_process_plugins)?;
    catalog(&plugins)
}

fn keyword_catalog(config: Option<&PathBuf>, extra: &[PathBuf]) -> Result<Catalog, i32> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let project = project_for(config, &[cwd])?;
    let plugins = load_plugins(&plugin_dirs(&project, extra), &project.in_process_plugins)?;
    catalog(&plugins)
}

fn keywords(args: KeywordsArgs) -> i32 {
    let catalog = match keyword_catalog(args.config.as_ref(), &args.plugins) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        let specs: Vec<&atf_sdk::KeywordSpec> = catalog.specs().collect();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&specs).unwrap_or_default()
        );
        return EXIT_OK;
    }
    for spec in catalog.specs() {
        let _ = writeln!(out, "{}\n    {}", spec.name, spec.summary);
        if spec.open_args {
            let _ = writeln!(out, "    args: any names and values");
        }
        for a in &spec.args {
            let ty = if a.ty.is_empty() {
                "any"
            } else {
                a.ty.as_str()
            };
            let req = if a.required { ", required" } else { "" };
            let _ = writeln!(out, "    - {} ({ty}{req}): {}", a.name, a.doc);
        }
        if !spec.result.is_empty() {
            let _ = writeln!(out, "    result: {}", spec.result);
        }
        let _ = writeln!(out);
    }
    EXIT_OK
}

fn schema(args: SchemaArgs) -> i32 {
    let catalog = match keyword_catalog(args.config.as_ref(), &args.plugins) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = crate::schema::schema(args.file, &catalog);
    // Written, not printed: a reader that stops early (`| head`) closes
    // the pipe, which `println!` would turn into a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    );
    EXIT_OK
}

/// `atf serve`: the working directory becomes the project folder, so case
/// files are named relative to it, as in its reports.
fn serve(args: ServeArgs) -> i32 {
    if let Some(ServeCommand::Import { dirs, project, db }) = args.command {
        return serve_import(&dirs, &project, db.as_deref());
    }
    let root = match args.project.canonicalize() {
        Ok(r) if r.is_dir() => r,
        Ok(r) => return usage_error(format!("{}: not a folder", r.display())),
        Err(e) => return usage_error(format!("{}: {e}", args.project.display())),
    };
    if !root.join("atf.json").is_file() {
        eprintln!(
            "warning: {} has no atf.json: serving its case files without a project file",
            root.display()
        );
    }
    if let Err(e) = std::env::set_current_dir(&root) {
        return usage_error(format!("{}: {e}", root.display()));
    }
    let opts = atf_server::Options {
        token: atf_server::find_token(&root),
        root: root.clone(),
        addr: std::net::SocketAddr::new(args.bind, args.port),
        db: args.db,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage_error(format!("cannot start the server's runtime: {e}")),
    };
    let host = std::sync::Arc::new(crate::serve::RunnerHost { root });
    match runtime.block_on(atf_server::serve(opts, host)) {
        Ok(()) => EXIT_OK,
        Err(e) => usage_error(e),
    }
}

/// `atf worker`: the working directory becomes the project folder, as
/// for `atf serve`.
fn worker(args: WorkerArgs) -> i32 {
    let root = match args.project.canonicalize() {
        Ok(r) if r.is_dir() => r,
        Ok(r) => return usage_error(format!("{}: not a folder", r.display())),
        Err(e) => return usage_error(format!("{}: {e}", args.project.display())),
    };
    let labels = match crate::worker::parse_labels(&args.labels) {
        Ok(l) => l,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = std::env::set_current_dir(&root) {
        return usage_error(format!("{}: {e}", root.display()));
    }
    let token = args.token.filter(|t| !t.trim().is_empty()).or_else(|| {
        std::env::var("ATF_SERVE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
    });
    crate::worker::run(crate::worker::WorkerOptions {
        server: args.server,
        token,
        name: args.name.unwrap_or_else(crate::worker::default_name),
        labels,
        root,
    })
}

fn serve_import(dirs: &[PathBuf], project: &std::path::Path, db: Option<&str>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage_error(format!("cannot start a runtime: {e}")),
    };
    match runtime.block_on(atf_server::import_dirs(project, db, dirs)) {
        Ok(0) => EXIT_OK,
        Ok(_) => EXIT_FAILED,
        Err(e) => usage_error(e),
    }
}
