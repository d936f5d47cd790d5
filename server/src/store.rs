//! The run history: runs, their events and their case results, in an
//! embedded SQLite file (the default) or in PostgreSQL (`--db
//! postgres://…`, for a team server).
//!
//! Both backends share one set of queries written with `$1`-style
//! placeholders (SQLite reads `$1` as a parameter too) and one versioned
//! list of migrations per backend, recorded in `atf_migrations`; the
//! migrations not yet recorded run when the store opens.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

/// A store error, for the log and a 500 answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// Anything else (a task that panicked, a bad URL).
    #[error("{0}")]
    Other(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Migration 3, the same for both backends but for the integer type
/// (`$int`): history filters and stats (indexes, the newest status of
/// each case in `case_last`), persisted workers.
macro_rules! migration_3 {
    ($int:literal) => {
        concat!(
            r#"ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'api';
ALTER TABLE runs ADD COLUMN labels TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_source ON runs (source, id);
CREATE INDEX runs_worker ON runs (worker, status);
CREATE INDEX case_results_run ON case_results (run_id);
CREATE INDEX case_results_case ON case_results (file, name, run_id);
CREATE TABLE case_last (
    file TEXT NOT NULL,
    name TEXT NOT NULL,
    run_id "#,
            $int,
            r#" NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (file, name)
);
INSERT INTO case_last (file, name, run_id, status)
SELECT c.file, c.name, c.run_id, c.status FROM case_results c
JOIN (SELECT file, name, MAX(run_id) AS run_id FROM case_results GROUP BY file, name) l
  ON c.file = l.file AND c.name = l.name AND c.run_id = l.run_id
WHERE true
ON CONFLICT (file, name) DO NOTHING;
CREATE TABLE workers (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    run_id "#,
            $int,
            r#",
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX workers_last_seen ON workers (last_seen);
"#
        )
    };
}

/// Migrations for SQLite, in order; the index + 1 is the version.
const SQLITE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    selection TEXT NOT NULL,
    report_dir TEXT NOT NULL DEFAULT '',
    total INTEGER NOT NULL DEFAULT 0,
    passed INTEGER NOT NULL DEFAULT 0,
    flaky INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    errored INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE events (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE case_results (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX case_results_file ON case_results (file, run_id);
"#,
    r#"
ALTER TABLE runs ADD COLUMN worker TEXT NOT NULL DEFAULT '';
"#,
    // 3: see MIGRATION_3.
    migration_3!("INTEGER"),
];

/// Migrations for PostgreSQL, in order; the index + 1 is the version.
const POSTGRES_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    selection TEXT NOT NULL,
    report_dir TEXT NOT NULL DEFAULT '',
    total BIGINT NOT NULL DEFAULT 0,
    passed BIGINT NOT NULL DEFAULT 0,
    flaky BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    errored BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    duration_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE events (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE case_results (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    file TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE INDEX case_results_file ON case_results (file, run_id);
"#,
    r#"
ALTER TABLE runs ADD COLUMN worker TEXT NOT NULL DEFAULT '';
"#,
    // 3: see MIGRATION_3.
    migration_3!("BIGINT"),
];

/// One stored run.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Run {
    /// Its id.
    pub id: i64,
    /// queued, running, passed, failed, error or interrupted.
    pub status: String,
    /// When it was asked for (RFC 3339).
    pub created_at: String,
    /// When its process started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// What was asked for: paths, env, tags, vars.
    #[schema(value_type = Object)]
    pub selection: Value,
    /// The counts of its cases (from its `run_finished` event).
    pub summary: Counts,
    /// The `atf worker` that ran it (empty: the server itself, or a push).
    pub worker: String,
    /// Where it came from: `ui`, `api`, `cli` (`atf run --server`) or
    /// `import`.
    pub source: String,
}

/// The counts of a run's cases.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Counts {
    /// Selected cases.
    pub total: i64,
    /// Passed (flaky included).
    pub passed: i64,
    /// Passed on a retry.
    pub flaky: i64,
    /// Failed.
    pub failed: i64,
    /// Could not run as written.
    pub errored: i64,
    /// Did not run.
    pub skipped: i64,
    /// Wall time.
    pub duration_ms: i64,
}

/// One case result of one run.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CaseResult {
    /// The run.
    pub run_id: i64,
    /// The case file, relative to the project.
    pub file: String,
    /// The case (or data row) name.
    pub name: String,
    /// Its status.
    pub status: String,
    /// How long it took.
    pub duration_ms: i64,
    /// When it finished (RFC 3339).
    pub finished_at: String,
}

/// The run history.
#[derive(Clone)]
pub enum Store {
    /// An SQLite file (one connection; queries run on the blocking pool).
    Sqlite(Arc<Mutex<rusqlite::Connection>>),
    /// A PostgreSQL pool.
    Postgres(deadpool_postgres::Pool),
}

const RUN_COLUMNS: &str = "id, status, created_at, started_at, finished_at, selection, \
     total, passed, flaky, failed, errored, skipped, duration_ms, worker, source";

fn sqlite_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    let selection: String = r.get(5)?;
    Ok(Run {
        id: r.get(0)?,
        status: r.get(1)?,
        created_at: r.get(2)?,
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        selection: serde_json::from_str(&selection).unwrap_or(Value::Null),
        summary: Counts {
            total: r.get(6)?,
            passed: r.get(7)?,
            flaky: r.get(8)?,
            failed: r.get(9)?,
            errored: r.get(10)?,
            skipped: r.get(11)?,
            duration_ms: r.get(12)?,
        },
        worker: r.get(13)?,
        source: r.get(14)?,
    })
}

fn pg_run(r: &tokio_postgres::Row) -> Run {
    let selection: String = r.get(5);
    Run {
        id: r.get(0),
        status: r.get(1),
        created_at: r.get(2),
        started_at: r.get(3),
        finished_at: r.get(4),
        selection: serde_json::from_str(&selection).unwrap_or(Value::Null),
        summary: Counts {
            total: r.get(6),
            passed: r.get(7),
            flaky: r.get(8),
            failed: r.get(9),
            errored: r.get(10),
            skipped: r.get(11),
            duration_ms: r.get(12),
        },
        worker: r.get(13),
        source: r.get(14),
    }
}

/// Now, RFC 3339 in UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating) the SQLite file at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let path = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || -> Result<rusqlite::Connection> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Other(format!("{}: {e}", parent.display())))?;
            }
            let conn = rusqlite::Connection::open(&path)?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))??;
        let store = Store::Sqlite(Arc::new(Mutex::new(conn)));
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and migrates the database (in the
    /// schema of the URL's `options=-csearch_path=…`, if given).
    pub async fn open_postgres(url: &str) -> Result<Store> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Other(format!("--db: not a PostgreSQL URL: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(8)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = Store::Postgres(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the store a `--db` value names: `postgres://…` or
    /// `postgresql://…` for PostgreSQL, `sqlite://PATH` or a plain path for
    /// SQLite.
    pub async fn open(db: &str) -> Result<Store> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            Store::open_postgres(db).await
        } else {
            let path = db.strip_prefix("sqlite://").unwrap_or(db);
            Store::open_sqlite(Path::new(path)).await
        }
    }

    async fn sqlite<T: Send + 'static>(
        conn: &Arc<Mutex<rusqlite::Connection>>,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?
    }

    async fn pg(pool: &deadpool_postgres::Pool) -> Result<deadpool_postgres::Object> {
        pool.get()
            .await
            .map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Runs the migrations not yet recorded in `atf_migrations`.
    async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, |c| {
                    let tx = c.transaction()?;
                    tx.execute_batch(
                        "CREATE TABLE IF NOT EXISTS atf_migrations \
                         (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                    )?;
                    let done: i64 = tx.query_row(
                        "SELECT COALESCE(MAX(version), 0) FROM atf_migrations",
                        [],
                        |r| r.get(0),
                    )?;
                    for (i, sql) in SQLITE_MIGRATIONS.iter().enumerate() {
                        let version = i as i64 + 1;
                        if version > done {
                            tx.execute_batch(sql)?;
                            tx.execute(
                                "INSERT INTO atf_migrations (version, applied_at) VALUES ($1, $2)",
                                rusqlite::params![version, now()],
                            )?;
                        }
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(pool) => {
                let mut client = Store::pg(pool).await?;
                let tx = client.transaction().await?;
                // One server migrates at a time.
                tx.batch_execute(
                    "SELECT pg_advisory_xact_lock(7878001); \
                     CREATE TABLE IF NOT EXISTS atf_migrations \
                     (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
                )
                .await?;
                let done: i64 = tx
                    .query_one("SELECT COALESCE(MAX(version), 0) FROM atf_migrations", &[])
                    .await?
                    .get(0);
                for (i, sql) in POSTGRES_MIGRATIONS.iter().enumerate() {
                    let version = i as i64 + 1;
                    if version > done {
                        tx.batch_execute(sql).await?;
                        tx.execute(
                            "INSERT INTO atf_migrations (version, applied_at) VALUES ($1, $2)",
                            &[&version, &now()],
                        )
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// The highest migration version applied.
    pub async fn schema_version(&self) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM atf_migrations";
        match self {
            Store::Sqlite(c) => Store::sqlite(c, move |c| c.query_row(sql, [], |r| r.get(0))).await,
            Store::Postgres(p) => Ok(Store::pg(p).await?.query_one(sql, &[]).await?.get(0)),
        }
    }

    /// Marks the runs a stopped server left queued or running as
    /// `interrupted`; returns how many.
    pub async fn interrupt_unfinished(&self) -> Result<u64> {
        let sql = "UPDATE runs SET status = 'interrupted', finished_at = $1 \
                   WHERE status IN ('queued', 'running')";
        let at = now();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| c.execute(sql, [at]).map(|n| n as u64)).await
            }
            Store::Postgres(p) => Ok(Store::pg(p).await?.execute(sql, &[&at]).await?),
        }
    }

    /// Records a new queued run from `source` (`ui`, `api`, `cli`,
    /// `import`); returns its id. The labels of its selection are kept
    /// apart too, for the runs list's label filter.
    pub async fn create_run(&self, selection: &Value, source: &str) -> Result<i64> {
        let sel = selection.to_string();
        let at = now();
        let labels = label_text(selection);
        let source = source.to_string();
        let sql = "INSERT INTO runs (status, created_at, selection, source, labels) \
                   VALUES ('queued', $1, $2, $3, $4) RETURNING id";
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    c.query_row(sql, rusqlite::params![at, sel, source, labels], |r| {
                        r.get(0)
                    })
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query_one(sql, &[&at, &sel, &source, &labels])
                .await?
                .get(0)),
        }
    }

    /// The run is running, its reports in `report_dir`.
    pub async fn start_run(&self, id: i64, report_dir: &str) -> Result<()> {
        let sql = "UPDATE runs SET status = 'running', started_at = $1, report_dir = $2 \
                   WHERE id = $3";
        let (at, dir) = (now(), report_dir.to_string());
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    c.execute(sql, rusqlite::params![at, dir, id]).map(drop)
                })
                .await
            }
            Store::Postgres(p) => {
                Store::pg(p).await?.execute(sql, &[&at, &dir, &id]).await?;
                Ok(())
            }
        }
    }

    /// Run `id` was taken by worker `worker`: it is running, with no
    /// report folder on this machine (its events come pushed).
    pub async fn assign_run(&self, id: i64, worker: &str) -> Result<()> {
        let sql = "UPDATE runs SET status = 'running', started_at = $1, report_dir = '', \
                   worker = $2 WHERE id = $3";
        let (at, w) = (now(), worker.to_string());
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    c.execute(sql, rusqlite::params![at, w, id]).map(drop)
                })
                .await
            }
            Store::Postgres(p) => {
                Store::pg(p).await?.execute(sql, &[&at, &w, &id]).await?;
                Ok(())
            }
        }
    }

    /// Run `id` goes back to `queued`, its partial events and case results
    /// deleted: the worker that takes it next runs it from the start.
    pub async fn requeue_run(&self, id: i64) -> Result<()> {
        let stmts = [
            "DELETE FROM events WHERE run_id = $1",
            "DELETE FROM case_results WHERE run_id = $1",
            "DELETE FROM case_last WHERE run_id = $1",
            "UPDATE runs SET status = 'queued', started_at = NULL, worker = '', total = 0, \
             passed = 0, flaky = 0, failed = 0, errored = 0, skipped = 0, duration_ms = 0 \
             WHERE id = $1",
        ];
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let tx = c.transaction()?;
                    for sql in stmts {
                        tx.execute(sql, [id])?;
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = Store::pg(p).await?;
                let tx = client.transaction().await?;
                for sql in stmts {
                    tx.execute(sql, &[&id]).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Stores event `seq` of run `id`; with `case` (a finished case) also
    /// its result.
    pub async fn add_event(
        &self,
        id: i64,
        seq: i64,
        body: &str,
        case: Option<CaseResult>,
    ) -> Result<()> {
        let ev = "INSERT INTO events (run_id, seq, body) VALUES ($1, $2, $3)";
        let cr = "INSERT INTO case_results (run_id, file, name, status, duration_ms, finished_at) \
                  VALUES ($1, $2, $3, $4, $5, $6)";
        let last = CASE_LAST_UPSERT;
        let body = body.to_string();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let tx = c.transaction()?;
                    tx.execute(ev, rusqlite::params![id, seq, body])?;
                    if let Some(r) = case {
                        tx.execute(
                            cr,
                            rusqlite::params![
                                id,
                                r.file,
                                r.name,
                                r.status,
                                r.duration_ms,
                                r.finished_at
                            ],
                        )?;
                        tx.execute(last, rusqlite::params![r.file, r.name, id, r.status])?;
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = Store::pg(p).await?;
                let tx = client.transaction().await?;
                tx.execute(ev, &[&id, &seq, &body]).await?;
                if let Some(r) = case {
                    tx.execute(
                        cr,
                        &[
                            &id,
                            &r.file,
                            &r.name,
                            &r.status,
                            &r.duration_ms,
                            &r.finished_at,
                        ],
                    )
                    .await?;
                    tx.execute(last, &[&r.file, &r.name, &id, &r.status])
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Stores a case result without an event (an imported run whose
    /// folder has only report.json).
    pub async fn add_case_result(&self, r: CaseResult) -> Result<()> {
        self.add_case_results(vec![r]).await
    }

    /// Stores case results in one transaction (an import, or the
    /// generated history of `just bench serve`).
    pub async fn add_case_results(&self, rows: Vec<CaseResult>) -> Result<()> {
        let sql = "INSERT INTO case_results (run_id, file, name, status, duration_ms, finished_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let last = CASE_LAST_UPSERT;
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let tx = c.transaction()?;
                    {
                        let mut ins = tx.prepare_cached(sql)?;
                        let mut up = tx.prepare_cached(last)?;
                        for r in &rows {
                            ins.execute(rusqlite::params![
                                r.run_id,
                                r.file,
                                r.name,
                                r.status,
                                r.duration_ms,
                                r.finished_at
                            ])?;
                            up.execute(rusqlite::params![r.file, r.name, r.run_id, r.status])?;
                        }
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = Store::pg(p).await?;
                let tx = client.transaction().await?;
                let ins = tx.prepare(sql).await?;
                let up = tx.prepare(last).await?;
                for r in &rows {
                    tx.execute(
                        &ins,
                        &[
                            &r.run_id,
                            &r.file,
                            &r.name,
                            &r.status,
                            &r.duration_ms,
                            &r.finished_at,
                        ],
                    )
                    .await?;
                    tx.execute(&up, &[&r.file, &r.name, &r.run_id, &r.status])
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// The run ended with `status` and these counts.
    pub async fn finish_run(&self, id: i64, status: &str, c: Counts) -> Result<()> {
        let sql = "UPDATE runs SET status = $1, finished_at = $2, total = $3, passed = $4, \
                   flaky = $5, failed = $6, errored = $7, skipped = $8, duration_ms = $9 \
                   WHERE id = $10";
        let (status, at) = (status.to_string(), now());
        match self {
            Store::Sqlite(conn) => {
                Store::sqlite(conn, move |conn| {
                    conn.execute(
                        sql,
                        rusqlite::params![
                            status,
                            at,
                            c.total,
                            c.passed,
                            c.flaky,
                            c.failed,
                            c.errored,
                            c.skipped,
                            c.duration_ms,
                            id
                        ],
                    )
                    .map(drop)
                })
                .await
            }
            Store::Postgres(p) => {
                Store::pg(p)
                    .await?
                    .execute(
                        sql,
                        &[
                            &status,
                            &at,
                            &c.total,
                            &c.passed,
                            &c.flaky,
                            &c.failed,
                            &c.errored,
                            &c.skipped,
                            &c.duration_ms,
                            &id,
                        ],
                    )
                    .await?;
                Ok(())
            }
        }
    }

    /// One run.
    pub async fn run(&self, id: i64) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    use rusqlite::OptionalExtension;
                    c.query_row(&sql, [id], sqlite_run).optional()
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query_opt(&sql, &[&id])
                .await?
                .as_ref()
                .map(pg_run)),
        }
    }

    /// The report folder of a run.
    pub async fn report_dir(&self, id: i64) -> Result<Option<String>> {
        let sql = "SELECT report_dir FROM runs WHERE id = $1";
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    use rusqlite::OptionalExtension;
                    c.query_row(sql, [id], |r| r.get(0)).optional()
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query_opt(sql, &[&id])
                .await?
                .map(|r| r.get(0))),
        }
    }

    /// The newest runs first, at most `limit`, with `status` if given.
    pub async fn runs(&self, status: Option<String>, limit: i64) -> Result<Vec<Run>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 = '' OR status = $1) \
             ORDER BY id DESC LIMIT $2"
        );
        let status = status.unwrap_or_default();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let mut st = c.prepare(&sql)?;
                    let rows = st.query_map(rusqlite::params![status, limit], sqlite_run)?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query(&sql, &[&status, &limit])
                .await?
                .iter()
                .map(pg_run)
                .collect()),
        }
    }

    /// The stored events of run `id` after `after`, in order: `(seq, JSON)`.
    pub async fn events(&self, id: i64, after: i64) -> Result<Vec<(i64, String)>> {
        let sql = "SELECT seq, body FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq";
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let mut st = c.prepare(sql)?;
                    let rows = st.query_map([id, after], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query(sql, &[&id, &after])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()),
        }
    }

    /// The latest result of every case file and name: `(file, name) →
    /// status`, from the newest run that ran it (kept up to date in
    /// `case_last` as results come, so this does not scan the history).
    pub async fn last_statuses(&self) -> Result<Vec<(String, String, String)>> {
        let rows = self
            .rows("SELECT file, name, status FROM case_last", vec![])
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.text(0), r.text(1), r.text(2)))
            .collect())
    }

    /// The last `limit` results of the cases of `file`, newest first.
    pub async fn case_history(&self, file: &str, limit: i64) -> Result<Vec<CaseResult>> {
        let sql = "SELECT run_id, file, name, status, duration_ms, finished_at \
                   FROM case_results WHERE file = $1 ORDER BY run_id DESC, name LIMIT $2";
        let file = file.to_string();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let mut st = c.prepare(sql)?;
                    let rows = st.query_map(rusqlite::params![file, limit], |r| {
                        Ok(CaseResult {
                            run_id: r.get(0)?,
                            file: r.get(1)?,
                            name: r.get(2)?,
                            status: r.get(3)?,
                            duration_ms: r.get(4)?,
                            finished_at: r.get(5)?,
                        })
                    })?;
                    rows.collect()
                })
                .await
            }
            Store::Postgres(p) => Ok(Store::pg(p)
                .await?
                .query(sql, &[&file, &limit])
                .await?
                .iter()
                .map(|r| CaseResult {
                    run_id: r.get(0),
                    file: r.get(1),
                    name: r.get(2),
                    status: r.get(3),
                    duration_ms: r.get(4),
                    finished_at: r.get(5),
                })
                .collect()),
        }
    }
}

/// Keeps `case_last` (the newest result of each case) up to date: `$1`
/// file, `$2` name, `$3` run, `$4` status.
const CASE_LAST_UPSERT: &str = "INSERT INTO case_last (file, name, run_id, status) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (file, name) DO UPDATE \
     SET run_id = excluded.run_id, status = excluded.status \
     WHERE excluded.run_id >= case_last.run_id";

/// The labels of a selection as the runs table keeps them for its filter:
/// `,k=v,k2=v2,` (empty without labels).
fn label_text(selection: &Value) -> String {
    match selection.get("labels").and_then(Value::as_object) {
        Some(m) if !m.is_empty() => {
            let mut out = String::from(",");
            for (k, v) in m {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                out.push_str(&format!("{k}={v},"));
            }
            out
        }
        _ => String::new(),
    }
}

/// A value in or out of a query both backends run.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An integer.
    I(i64),
    /// Text.
    T(String),
    /// NULL (or a type this store does not read).
    Null,
}

fn sqlite_vals(params: &[Val]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|v| match v {
            Val::I(i) => rusqlite::types::Value::Integer(*i),
            Val::T(s) => rusqlite::types::Value::Text(s.clone()),
            Val::Null => rusqlite::types::Value::Null,
        })
        .collect()
}

type PgParam = Box<dyn tokio_postgres::types::ToSql + Sync + Send>;

fn pg_params(params: Vec<Val>) -> Vec<PgParam> {
    params
        .into_iter()
        .map(|v| -> PgParam {
            match v {
                Val::I(i) => Box::new(i),
                Val::T(s) => Box::new(s),
                // The only NULL parameter is a run id.
                Val::Null => Box::new(None::<i64>),
            }
        })
        .collect()
}

fn pg_refs(boxed: &[PgParam]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    boxed
        .iter()
        .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// One row of [`Store::rows`].
pub struct Row(Vec<Val>);

impl Row {
    /// Column `i` as text (`""` for NULL).
    pub fn text(&self, i: usize) -> String {
        match self.0.get(i) {
            Some(Val::T(s)) => s.clone(),
            Some(Val::I(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    /// Column `i` as an integer (0 for NULL).
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    /// Column `i` as an integer, `None` for NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Val::I(n)) => Some(*n),
            Some(Val::T(s)) => s.parse().ok(),
            _ => None,
        }
    }
}

/// The runs list's filters (every one optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// queued, running, passed, failed, error or interrupted.
    pub status: Option<String>,
    /// ui, api, cli, import, or worker (any run a worker ran).
    pub source: Option<String>,
    /// A substring of a case file the run ran (or of its selection).
    pub case: Option<String>,
    /// A label `k=v` the run asked for.
    pub label: Option<String>,
    /// Created at or after this (RFC 3339, or a prefix such as a date).
    pub from: Option<String>,
    /// Created before this (RFC 3339).
    pub to: Option<String>,
}

/// `s` for a LIKE pattern with `\` as its escape character.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RunFilter {
    /// The WHERE clause (empty, or starting with ` WHERE`) and its
    /// parameters, numbered from `$1` in order of appearance.
    fn clause(&self) -> (String, Vec<Val>) {
        let mut conds: Vec<String> = Vec::new();
        let mut params: Vec<Val> = Vec::new();
        // The parameter's number.
        let mut param = |v: Val| {
            params.push(v);
            params.len()
        };
        let given = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        if let Some(s) = given(&self.status) {
            conds.push(format!("status = ${}", param(Val::T(s))));
        }
        match given(&self.source).as_deref() {
            Some("worker") => conds.push("worker <> ''".into()),
            Some(s) => conds.push(format!("source = ${}", param(Val::T(s.to_string())))),
            None => {}
        }
        if let Some(c) = given(&self.case) {
            // Case-blind on both backends (SQLite's LIKE is, PostgreSQL's
            // is not).
            let n = param(Val::T(format!("%{}%", like_escape(&c.to_lowercase()))));
            conds.push(format!(
                "(LOWER(selection) LIKE ${n} ESCAPE '\\' OR EXISTS (SELECT 1 FROM case_results c \
                 WHERE c.run_id = runs.id AND LOWER(c.file) LIKE ${n} ESCAPE '\\'))"
            ));
        }
        if let Some(l) = given(&self.label) {
            let n = param(Val::T(format!("%,{},%", like_escape(&l))));
            conds.push(format!("labels LIKE ${n} ESCAPE '\\'"));
        }
        if let Some(f) = given(&self.from) {
            conds.push(format!("created_at >= ${}", param(Val::T(f))));
        }
        if let Some(t) = given(&self.to) {
            conds.push(format!("created_at < ${}", param(Val::T(t))));
        }
        if conds.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conds.join(" AND ")), params)
        }
    }
}

/// A worker as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWorker {
    /// Its name.
    pub name: String,
    /// Its labels (a JSON object).
    pub labels: Value,
    /// idle, busy or gone.
    pub state: String,
    /// The run it was running.
    pub run: Option<i64>,
    /// When it first registered.
    pub first_seen: String,
    /// When it was last heard from.
    pub last_seen: String,
    /// Runs it finished (all time).
    pub done: i64,
}

impl Store {
    /// Runs `sql` with `params` on either backend: its rows.
    pub async fn rows(&self, sql: impl Into<String>, params: Vec<Val>) -> Result<Vec<Row>> {
        let sql = sql.into();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let mut st = c.prepare_cached(&sql)?;
                    let n = st.column_count();
                    let mut rows = st.query(rusqlite::params_from_iter(sqlite_vals(&params)))?;
                    let mut out = Vec::new();
                    while let Some(r) = rows.next()? {
                        let mut row = Vec::with_capacity(n);
                        for i in 0..n {
                            row.push(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Integer(n) => Val::I(n),
                                rusqlite::types::ValueRef::Real(f) => Val::I(f as i64),
                                rusqlite::types::ValueRef::Text(t) => {
                                    Val::T(String::from_utf8_lossy(t).into_owned())
                                }
                                _ => Val::Null,
                            });
                        }
                        out.push(Row(row));
                    }
                    Ok(out)
                })
                .await
            }
            Store::Postgres(p) => {
                use tokio_postgres::types::Type;
                let boxed = pg_params(params);
                let refs = pg_refs(&boxed);
                let client = Store::pg(p).await?;
                let st = client.prepare_cached(&sql).await?;
                let rows = client.query(&st, &refs).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        Row(r
                            .columns()
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                let t = c.type_();
                                if *t == Type::INT8 {
                                    r.get::<_, Option<i64>>(i).map_or(Val::Null, Val::I)
                                } else if *t == Type::INT4 {
                                    r.get::<_, Option<i32>>(i)
                                        .map_or(Val::Null, |n| Val::I(n.into()))
                                } else if *t == Type::TEXT
                                    || *t == Type::VARCHAR
                                    || *t == Type::NAME
                                {
                                    r.get::<_, Option<String>>(i).map_or(Val::Null, Val::T)
                                } else {
                                    Val::Null
                                }
                            })
                            .collect())
                    })
                    .collect())
            }
        }
    }

    /// Runs a statement on either backend: how many rows it changed.
    pub async fn exec(&self, sql: impl Into<String>, params: Vec<Val>) -> Result<u64> {
        let sql = sql.into();
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    c.execute(&sql, rusqlite::params_from_iter(sqlite_vals(&params)))
                        .map(|n| n as u64)
                })
                .await
            }
            Store::Postgres(p) => {
                let boxed = pg_params(params);
                let refs = pg_refs(&boxed);
                Ok(Store::pg(p).await?.execute(&sql, &refs).await?)
            }
        }
    }

    /// Runs `statements` in one transaction (a bulk load: the generated
    /// history of `just bench serve`).
    pub async fn bulk(&self, statements: Vec<(String, Vec<Val>)>) -> Result<()> {
        match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let tx = c.transaction()?;
                    for (sql, params) in &statements {
                        tx.prepare_cached(sql)?
                            .execute(rusqlite::params_from_iter(sqlite_vals(params)))?;
                    }
                    tx.commit()
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = Store::pg(p).await?;
                let tx = client.transaction().await?;
                for (sql, params) in statements {
                    let boxed = pg_params(params);
                    tx.execute(sql.as_str(), &pg_refs(&boxed)).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// A page of the runs `filter` lets through, newest first: `limit` runs
    /// after skipping `offset`, and how many there are in all.
    pub async fn runs_page(
        &self,
        filter: &RunFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Run>, i64)> {
        let (clause, mut params) = filter.clause();
        let total = self
            .rows(format!("SELECT COUNT(*) FROM runs{clause}"), params.clone())
            .await?
            .first()
            .map_or(0, |r| r.int(0));
        let n = params.len();
        params.push(Val::I(limit));
        params.push(Val::I(offset));
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs{clause} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let runs = match self {
            Store::Sqlite(c) => {
                Store::sqlite(c, move |c| {
                    let mut st = c.prepare_cached(&sql)?;
                    let rows =
                        st.query_map(rusqlite::params_from_iter(sqlite_vals(&params)), sqlite_run)?;
                    rows.collect()
                })
                .await?
            }
            Store::Postgres(p) => {
                let boxed = pg_params(params);
                let refs = pg_refs(&boxed);
                Store::pg(p)
                    .await?
                    .query(&sql, &refs)
                    .await?
                    .iter()
                    .map(pg_run)
                    .collect()
            }
        };
        Ok((runs, total))
    }

    /// The case results of the newest `runs` runs: `(run, file, name,
    /// status, duration_ms)`, oldest run first.
    pub async fn recent_results(
        &self,
        runs: i64,
    ) -> Result<Vec<(i64, String, String, String, i64)>> {
        // The id of the oldest of those runs: a range on the index after.
        let first = self
            .rows(
                "SELECT MIN(id) FROM (SELECT id FROM runs ORDER BY id DESC LIMIT $1) r",
                vec![Val::I(runs.max(1))],
            )
            .await?
            .first()
            .and_then(|r| r.opt_int(0));
        let Some(first) = first else {
            return Ok(Vec::new());
        };
        let rows = self
            .rows(
                "SELECT run_id, file, name, status, duration_ms FROM case_results \
                 WHERE run_id >= $1 ORDER BY run_id",
                vec![Val::I(first)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.int(0), r.text(1), r.text(2), r.text(3), r.int(4)))
            .collect())
    }

    /// Worker `name` registered or changed state (`idle`, `busy`, `gone`).
    pub async fn save_worker(
        &self,
        name: &str,
        labels: &Value,
        state: &str,
        run: Option<i64>,
    ) -> Result<()> {
        let at = now();
        self.exec(
            "INSERT INTO workers (name, labels, state, run_id, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO UPDATE \
             SET labels = excluded.labels, state = excluded.state, run_id = excluded.run_id, \
             last_seen = excluded.last_seen",
            vec![
                Val::T(name.to_string()),
                Val::T(labels.to_string()),
                Val::T(state.to_string()),
                run.map_or(Val::Null, Val::I),
                Val::T(at),
            ],
        )
        .await
        .map(drop)
    }

    /// Marks worker `name` as heard from now.
    pub async fn touch_worker(&self, name: &str) -> Result<()> {
        self.exec(
            "UPDATE workers SET last_seen = $1 WHERE name = $2",
            vec![Val::T(now()), Val::T(name.to_string())],
        )
        .await
        .map(drop)
    }

    /// Workers a stopped server knew are gone until they poll again.
    pub async fn workers_gone(&self) -> Result<()> {
        self.exec(
            "UPDATE workers SET state = 'gone', run_id = NULL WHERE state <> 'gone'",
            vec![],
        )
        .await
        .map(drop)
    }

    /// The workers seen last, newest first (at most `limit`), with the runs
    /// each finished.
    pub async fn workers(&self, limit: i64) -> Result<Vec<StoredWorker>> {
        let rows = self
            .rows(
                "SELECT w.name, w.labels, w.state, w.run_id, w.first_seen, w.last_seen, \
                 (SELECT COUNT(*) FROM runs r WHERE r.worker = w.name \
                  AND r.status NOT IN ('queued', 'running')) \
                 FROM workers w ORDER BY w.last_seen DESC LIMIT $1",
                vec![Val::I(limit)],
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredWorker {
                name: r.text(0),
                labels: serde_json::from_str(&r.text(1)).unwrap_or(Value::Null),
                state: r.text(2),
                run: r.opt_int(3),
                first_seen: r.text(4),
                last_seen: r.text(5),
                done: r.int(6),
            })
            .collect())
    }
}
