//! `pg.query` and `pg.exec` against the real PostgreSQL on 127.0.0.1:5432
//! (started by `scripts/services.sh`): typed values, bound parameters,
//! scripts with and without a transaction, the server's own errors, TLS,
//! step timeouts, and the pool bound.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use atf_keywords::pg;
use atf_sdk::{Keyword, KeywordResult, Value, json};
use common::{call, call_at, env, find, now_ms, require, unique};

const ADDR: &str = "127.0.0.1:5432";

fn keywords() -> Vec<Arc<dyn Keyword>> {
    require("PostgreSQL", ADDR);
    pg::keywords(&env(json!({"pg": {
        "default": "postgres://postgres@127.0.0.1:5432/test",
        "down": "postgres://postgres@127.0.0.1:1/test?connect_timeout=2",
        "nobody": "postgres://atf_no_such_role:s3cret-pw@127.0.0.1:5432/test",
        "tls": {"url": "postgres://postgres@127.0.0.1:5432/test?sslmode=require", "insecure": true},
        "tls_verified": "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
        "small": {"url": "postgres://postgres@127.0.0.1:5432/test", "pool_max": 3}
    }})))
    .0
}

fn q(k: &[Arc<dyn Keyword>], args: Value) -> KeywordResult {
    call(find(k, "pg.query"), args)
}

fn ok(k: &[Arc<dyn Keyword>], args: Value) -> Value {
    q(k, args.clone()).unwrap_or_else(|e| panic!("{args}: {e}"))
}

fn exec(k: &[Arc<dyn Keyword>], args: Value) -> KeywordResult {
    call(find(k, "pg.exec"), args)
}

#[test]
fn values_come_back_typed() {
    let k = keywords();
    let r = ok(
        &k,
        json!({"sql": "SELECT 1::int2 AS i2, 2147483647::int4 AS i4, 9007199254740993::int8 AS i8, \
            1.5::float8 AS f8, 1.1::float4 AS f4, 'NaN'::float8 AS nan, \
            12.50::numeric(10,2) AS price, 123456789012345678901234567890.000001 AS big, \
            true AS yes, NULL::text AS nothing, 'héllo'::text AS t, 'ab'::char(4) AS c4, \
            '{\"a\": [1, null], \"b\": \"x\"}'::jsonb AS doc, '[1,2]'::json AS j, \
            '2024-01-02 03:04:05.123+02'::timestamptz AS tz, \
            '2024-01-02 03:04:05'::timestamp AS ts, '2024-02-29'::date AS d, \
            '13:14:15.5'::time AS tm, '1 day 02:00:00'::interval AS iv, \
            'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '\\x0001ff'::bytea AS raw, \
            ARRAY[1, NULL, 3] AS arr, ARRAY[['a','b'],['c','d']] AS grid, '{}'::int[] AS empty, \
            '10.0.0.0/8'::cidr AS net, '10.1.2.3'::inet AS host, 12.34::money AS cash, \
            B'1011' AS bits, int4range(1, 10) AS r, ROW(1, 'x') AS rec"}),
    );
    let row = &r["rows"][0];
    assert_eq!(row["i2"], json!(1));
    assert_eq!(row["i4"], json!(2147483647));
    assert_eq!(row["i8"], json!(9007199254740993i64));
    assert_eq!(row["f8"], json!(1.5));
    assert_eq!(row["f4"], json!(1.1));
    assert_eq!(row["nan"], json!("NaN"));
    assert_eq!(row["price"], json!("12.50"));
    assert_eq!(row["big"], json!("123456789012345678901234567890.000001"));
    assert_eq!(row["yes"], json!(true));
    assert_eq!(row["nothing"], Value::Null);
    assert_eq!(row["t"], json!("héllo"));
    assert_eq!(row["c4"], json!("ab  "));
    assert_eq!(row["doc"], json!({"a": [1, null], "b": "x"}));
    assert_eq!(row["j"], json!([1, 2]));
    assert_eq!(row["tz"], json!("2024-01-02T01:04:05.123Z"));
    assert_eq!(row["ts"], json!("2024-01-02T03:04:05"));
    assert_eq!(row["d"], json!("2024-02-29"));
    assert_eq!(row["tm"], json!("13:14:15.5"));
    assert_eq!(row["iv"], json!("P1DT2H"));
    assert_eq!(row["id"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(row["raw"], json!("AAH/"));
    assert_eq!(row["arr"], json!([1, null, 3]));
    assert_eq!(row["grid"], json!([["a", "b"], ["c", "d"]]));
    assert_eq!(row["empty"], json!([]));
    assert_eq!(row["net"], json!("10.0.0.0/8"));
    assert_eq!(row["host"], json!("10.1.2.3"));
    assert_eq!(row["cash"], json!("12.34"));
    assert_eq!(row["bits"], json!("1011"));
    assert_eq!(
        row["r"],
        json!({"lower": 1, "upper": 10, "lower_inc": true, "upper_inc": false})
    );
    assert_eq!(row["rec"], json!({"f1": 1, "f2": "x"}));
    assert_eq!(r["row_count"], json!(1));
    assert_eq!(r["columns"][6], json!({"name": "price", "type": "numeric"}));
    assert_eq!(
        r["columns"][14],
        json!({"name": "tz", "type": "timestamptz"})
    );
}

#[test]
fn enums_and_domains_read_as_their_text_and_base_type() {
    let k = keywords();
    let s = unique("atf_types");
    exec(
        &k,
        json!({"sql": format!("CREATE SCHEMA {s}; CREATE TYPE {s}.mood AS ENUM ('sad', 'ok'); \
                               CREATE DOMAIN {s}.pos AS numeric(6,1) CHECK (VALUE > 0);")}),
    )
    .unwrap();
    let r = ok(
        &k,
        json!({"sql": format!("SELECT 'ok'::{s}.mood AS m, 2.5::{s}.pos AS p, \
                               ARRAY['sad','ok']::{s}.mood[] AS ms")}),
    );
    assert_eq!(
        r["rows"][0],
        json!({"m": "ok", "p": "2.5", "ms": ["sad", "ok"]})
    );
    // A parameter of an enum type is parsed by the server from its text.
    let r = ok(
        &k,
        json!({"sql": format!("SELECT $1::{s}.mood AS m"), "params": ["sad"]}),
    );
    assert_eq!(r["rows"][0]["m"], json!("sad"));
    exec(&k, json!({"sql": format!("DROP SCHEMA {s} CASCADE")})).unwrap();
}

#[test]
fn params_are_bound_as_the_types_the_server_infers() {
    let k = keywords();
    let t = unique("atf_params");
    exec(
        &k,
        json!({"sql": format!("CREATE TABLE {t} (id int PRIMARY KEY, name text, price numeric(10,2), \
                               doc jsonb, tags text[], raw bytea, at timestamptz, ok boolean)")}),
    )
    .unwrap();
    let evil = "x'); DROP TABLE t; --";
    let r = ok(
        &k,
        json!({"sql": format!("INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8), \
                               (2, NULL, $9, NULL, NULL, NULL, NULL, NULL)"),
               "params": [1, evil, "19.90", {"items": [{"sku": "A-1", "qty": 2}]},
                          ["red", "a \"quoted\" one", null], "AAH/",
                          "2024-05-06T07:08:09Z", true, 0.5]}),
    );
    assert_eq!(r["row_count"], json!(2));
    assert_eq!(r["rows"], json!([]));
    let r = ok(
        &k,
        json!({"sql": format!("SELECT * FROM {t} WHERE id = $1 AND doc @> $2"),
               "params": [1, {"items": [{"sku": "A-1"}]}]}),
    );
    assert_eq!(
        r["rows"],
        json!([{"id": 1, "name": evil, "price": "19.90",
                "doc": {"items": [{"sku": "A-1", "qty": 2}]},
                "tags": ["red", "a \"quoted\" one", null], "raw": "AAH/",
                "at": "2024-05-06T07:08:09Z", "ok": true}])
    );
    let r = ok(
        &k,
        json!({"sql": format!("SELECT id FROM {t} WHERE id = ANY($1) ORDER BY id"), "params": [[1, 2, 3]]}),
    );
    assert_eq!(r["rows"], json!([{"id": 1}, {"id": 2}]));
    let r = ok(
        &k,
        json!({"sql": format!("UPDATE {t} SET price = price + $1 WHERE id > $2"), "params": [1, 0]}),
    );
    assert_eq!(r["row_count"], json!(2));
    // The wrong number of parameters is the step's error, not a panic.
    let e = q(&k, json!({"sql": "SELECT $1::int", "params": []})).unwrap_err();
    assert!(e.message.contains("parameters"), "{e}");
    let e = q(&k, json!({"sql": "SELECT 1", "params": {"a": 1}})).unwrap_err();
    assert!(e.message.contains("must be a list"), "{e}");
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
}

#[test]
fn server_errors_carry_the_servers_code_and_message() {
    let k = keywords();
    let e = q(&k, json!({"sql": "SELECT *\nFROM atf_no_such_table"})).unwrap_err();
    assert!(
        e.message
            .starts_with("ERROR 42P01: relation \"atf_no_such_table\" does not exist"),
        "{e}"
    );
    assert!(e.message.contains("at line 2, column 6"), "{e}");
    let t = unique("atf_dup");
    exec(
        &k,
        json!({"sql": format!("CREATE TABLE {t} (id int PRIMARY KEY); INSERT INTO {t} VALUES (1)")}),
    )
    .unwrap();
    let e = q(
        &k,
        json!({"sql": format!("INSERT INTO {t} VALUES ($1)"), "params": [1]}),
    )
    .unwrap_err();
    assert!(e.message.contains("ERROR 23505"), "{e}");
    assert!(
        e.message.contains("DETAIL: Key (id)=(1) already exists."),
        "{e}"
    );
    let e = q(&k, json!({"sql": "SELECT $1::int", "params": ["many"]})).unwrap_err();
    assert!(
        e.message
            .contains("invalid input syntax for type integer: \"many\""),
        "{e}"
    );
    // The pool goes on after errors.
    assert_eq!(
        ok(&k, json!({"sql": "SELECT 1 AS one"}))["rows"][0]["one"],
        json!(1)
    );
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
}

#[test]
fn a_table_changed_under_a_cached_statement_is_read_again() {
    let k = keywords();
    let t = unique("atf_alter");
    exec(
        &k,
        json!({"sql": format!("CREATE TABLE {t} (a int); INSERT INTO {t} VALUES (1)")}),
    )
    .unwrap();
    let sql = format!("SELECT * FROM {t}");
    // Each of the pool's connections may hold the statement: run it on several.
    for _ in 0..12 {
        assert_eq!(ok(&k, json!({"sql": sql}))["rows"], json!([{"a": 1}]));
    }
    exec(
        &k,
        json!({"sql": format!("ALTER TABLE {t} ADD COLUMN b text DEFAULT 'x'")}),
    )
    .unwrap();
    for _ in 0..12 {
        assert_eq!(
            ok(&k, json!({"sql": sql}))["rows"],
            json!([{"a": 1, "b": "x"}])
        );
    }
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
}

#[test]
fn exec_runs_a_script_as_one_transaction() {
    let k = keywords();
    let t = unique("atf_script");
    let r = exec(
        &k,
        json!({"sql": format!("CREATE TABLE {t} (id int, note text);\n\
                               INSERT INTO {t} VALUES (1, 'a;b'), (2, $$it's; fine$$);\n\
                               UPDATE {t} SET note = note || '!' WHERE id = 1;")}),
    )
    .unwrap();
    assert_eq!(r, json!({"affected_rows": 3, "statements": 3}));
    let e = exec(
        &k,
        json!({"sql": format!("INSERT INTO {t} VALUES (3, 'c');\n\nINSERT INTO {t} VALUES ('four', 'd');")}),
    )
    .unwrap_err();
    assert!(e.message.contains("ERROR 22P02"), "{e}");
    assert!(e.message.contains("at line 3"), "{e}");
    // Nothing of the failed script stayed.
    let rows = ok(
        &k,
        json!({"sql": format!("SELECT id, note FROM {t} ORDER BY id")}),
    );
    assert_eq!(
        rows["rows"],
        json!([{"id": 1, "note": "a;b!"}, {"id": 2, "note": "it's; fine"}])
    );
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
}

#[test]
fn exec_without_a_transaction_keeps_what_ran_before_a_failure() {
    let k = keywords();
    let t = unique("atf_notx");
    exec(&k, json!({"sql": format!("CREATE TABLE {t} (id int)")})).unwrap();
    let e = exec(
        &k,
        json!({"sql": format!("INSERT INTO {t} VALUES (1);\n-- the next one fails\nINSERT INTO {t} VALUES (1/0);\nINSERT INTO {t} VALUES (3);"),
               "transaction": false}),
    )
    .unwrap_err();
    assert!(
        e.message.starts_with("statement at line 3: ERROR 22012"),
        "{e}"
    );
    let rows = ok(&k, json!({"sql": format!("SELECT id FROM {t}")}));
    assert_eq!(rows["rows"], json!([{"id": 1}]));
    // VACUUM cannot run inside a transaction block: alone, it can.
    let r = exec(
        &k,
        json!({"sql": format!("VACUUM {t}; ANALYZE {t}"), "transaction": false}),
    )
    .unwrap();
    assert_eq!(r["statements"], json!(2));
    let e = exec(&k, json!({"sql": format!("VACUUM {t}; ANALYZE {t}")})).unwrap_err();
    assert!(
        e.message.contains("cannot run inside a transaction block"),
        "{e}"
    );
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
}

#[test]
fn exec_reads_a_file_beside_the_case() {
    let k = keywords();
    let dir = tempfile_dir();
    let t = unique("atf_file");
    std::fs::write(
        dir.join("seed.sql"),
        format!("CREATE TABLE {t} (id int);\nINSERT INTO {t} SELECT generate_series(1, 5);\n"),
    )
    .unwrap();
    let r = call_at(
        find(&k, "pg.exec"),
        json!({"file": "seed.sql"}),
        Duration::from_secs(20),
        now_ms(),
        &dir,
    )
    .unwrap();
    assert_eq!(r["affected_rows"], json!(5));
    let e = call_at(
        find(&k, "pg.exec"),
        json!({"file": "missing.sql"}),
        Duration::from_secs(20),
        now_ms(),
        &dir,
    )
    .unwrap_err();
    assert!(e.message.contains("missing.sql"), "{e}");
    let e = exec(&k, json!({"sql": "SELECT 1", "file": "seed.sql"})).unwrap_err();
    assert!(e.message.contains("only one of"), "{e}");
    exec(&k, json!({"sql": format!("DROP TABLE {t}")})).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("atf-pg-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn connection_errors_name_the_resource_and_hide_the_password() {
    let k = keywords();
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "down"})).unwrap_err();
    assert!(
        e.message
            .starts_with("cannot connect to pg resource `down` (postgres@127.0.0.1:1/test)"),
        "{e}"
    );
    assert!(e.message.to_lowercase().contains("refused"), "{e}");
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "nobody"})).unwrap_err();
    assert!(e.message.contains("atf_no_such_role"), "{e}");
    assert!(e.message.contains("28000"), "{e}");
    assert!(!e.message.contains("s3cret-pw"), "{e}");
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "elsewhere"})).unwrap_err();
    assert!(e.message.contains("no pg resource `elsewhere`"), "{e}");
}

#[test]
fn tls_when_the_url_asks_for_it() {
    let k = keywords();
    let plain = ok(
        &k,
        json!({"sql": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}),
    );
    assert_eq!(plain["rows"][0]["ssl"], json!(false));
    let app = ok(
        &k,
        json!({"sql": "SELECT current_setting('application_name') AS app"}),
    );
    assert_eq!(app["rows"][0]["app"], json!("atf"));
    let tls = ok(
        &k,
        json!({"sql": "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "resource": "tls"}),
    );
    assert_eq!(tls["rows"][0]["ssl"], json!(true));
    // The test server's certificate is self-signed: verified TLS refuses it.
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "tls_verified"})).unwrap_err();
    assert!(e.message.contains("cannot connect"), "{e}");
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
}

#[test]
fn a_statement_that_outlives_its_step_is_cancelled() {
    let k = keywords();
    let tag = unique("atf_sleep");
    let e = call_at(
        find(&k, "pg.query"),
        json!({"sql": format!("SELECT pg_sleep(60) AS {tag}")}),
        Duration::from_millis(500),
        now_ms(),
        Path::new("."),
    )
    .unwrap_err();
    assert!(
        e.message.contains("did not answer within the step timeout"),
        "{e}"
    );
    // The pool is not stuck behind the sleeping statement...
    assert_eq!(
        ok(&k, json!({"sql": "SELECT 2 AS two"}))["rows"][0]["two"],
        json!(2)
    );
    // ...and the server was asked to cancel it.
    let running = format!(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%AS {tag}' AND pid <> pg_backend_pid()"
    );
    let mut n = json!(-1);
    for _ in 0..50 {
        n = ok(&k, json!({"sql": running}))["rows"][0]["n"].clone();
        if n == json!(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(n, json!(0), "the statement still runs on the server");
}

#[test]
fn a_thousand_calls_from_eight_threads_use_at_most_pool_max_connections() {
    let k = keywords();
    let query = find(&k, "pg.query");
    let pids: HashSet<i64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                s.spawn(move || {
                    (0..125)
                        .map(|i| {
                            let r = call(
                                query,
                                json!({"sql": "SELECT pg_backend_pid() AS pid, $1::int AS n",
                                       "params": [w * 1000 + i], "resource": "small"}),
                            )
                            .unwrap();
                            assert_eq!(r["rows"][0]["n"], json!(w * 1000 + i));
                            r["rows"][0]["pid"].as_i64().unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    eprintln!("1,000 calls from 8 threads used {} connections", pids.len());
    assert!(
        pids.len() <= 3,
        "1,000 calls used {} connections; the resource's pool_max is 3",
        pids.len()
    );
}

/// The folder of PostgreSQL's server programs (`initdb`, `pg_ctl`): Debian
/// keeps them in /usr/lib/postgresql/VERSION/bin, off the PATH.
fn pg_bindir() -> std::path::PathBuf {
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(d) = dirs.pop() {
        return d;
    }
    let on_path = std::process::Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match on_path {
        Some(p) if !p.is_empty() => Path::new(&p).parent().unwrap().to_path_buf(),
        _ => panic!(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: install them with \
             `scripts/services.sh` (Debian package `postgresql`), then run the tests again"
        ),
    }
}

/// A private PostgreSQL cluster with `ssl=on` and a certificate of the test
/// CA, on a port of its own; stopped and removed when dropped. PostgreSQL
/// refuses to run as root, so as root it runs as the `postgres` user.
struct TlsCluster {
    dir: std::path::PathBuf,
    port: u16,
    bindir: std::path::PathBuf,
    as_postgres: bool,
}

impl TlsCluster {
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bindir.join(program);
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        // A folder the `postgres` user may enter.
        c.current_dir(&self.dir);
        c
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> TlsCluster {
        let bindir = pg_bindir();
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(unique("atf-pg-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let cluster = TlsCluster {
            dir,
            port,
            bindir,
            as_postgres,
        };
        let data = cluster.dir.join("data");
        let pki = common::pki();
        let (cert, key) = (
            cluster.dir.join("server.crt"),
            cluster.dir.join("server.key"),
        );
        std::fs::copy(&pki.cert, &cert).unwrap();
        std::fs::copy(&pki.key, &key).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        // PostgreSQL refuses a key file that others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&cluster.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot give {} to the `postgres` user",
                cluster.dir.display()
            );
        }
        let data_s = data.to_string_lossy().into_owned();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file={} -c ssl_key_file={} -c fsync=off",
            cluster.dir.display(),
            cert.display(),
            key.display()
        );
        let log = cluster.dir.join("log").to_string_lossy().into_owned();
        // `-w` returns once the server accepts connections.
        cluster.run(
            "pg_ctl",
            &["-D", &data_s, "-l", &log, "-o", &opts, "-w", "start"],
        );
        cluster
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn verified_tls_against_a_private_server_with_a_certificate_of_a_ca() {
    let cluster = TlsCluster::start();
    let port = cluster.port;
    let ca = common::pki().ca.to_string_lossy().into_owned();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let k = pg::keywords(&env(json!({"pg": {
        "default": {"url": format!("{url}?sslmode=require"), "ca": ca},
        "plain": url,
        "system": format!("{url}?sslmode=require"),
        "no_ca_file": {"url": format!("{url}?sslmode=require"), "ca": "/no/such/ca.pem"}
    }})))
    .0;
    let sql = json!({"sql": "SELECT ssl, current_setting('port') AS port FROM pg_stat_ssl WHERE pid = pg_backend_pid()"});
    let tls = ok(&k, sql.clone());
    assert_eq!(tls["rows"][0]["ssl"], json!(true), "{tls}");
    assert_eq!(tls["rows"][0]["port"], json!(port.to_string()), "{tls}");
    let mut plain_sql = sql.clone();
    plain_sql["resource"] = json!("plain");
    let plain = ok(&k, plain_sql);
    assert_eq!(plain["rows"][0]["ssl"], json!(false), "{plain}");
    // Without `ca` only the system's roots count: the test CA is not one of them.
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "system"})).unwrap_err();
    assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    let e = q(&k, json!({"sql": "SELECT 1", "resource": "no_ca_file"})).unwrap_err();
    assert!(e.message.contains("cannot read the CA file"), "{e}");
    drop(cluster);
}
