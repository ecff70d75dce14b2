//! The SQLite backend of the tracker (bundled SQLite; the default file is `runs/sweep.db`).
//!
//! Concurrency: the database runs in WAL mode with a busy timeout, and every write is an
//! `IMMEDIATE` transaction, so many worker processes can claim and log at once without "database
//! is locked" errors (a writer waits for the lock instead of failing on an upgrade). Durability:
//! `synchronous = NORMAL`, which in WAL mode survives any process crash; a power loss can lose
//! the last commits but never corrupts the file.
//!
//! Migrations are append-only SQL scripts tracked with `PRAGMA user_version`: an older file is
//! migrated when opened, a file from a newer build is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::{
    BestRun, CheckpointRow, Claim, EnqueueReport, EpochLog, JobRow, Lease, MetricRow, MetricSummary, NewTrial, RUN_RESULTS_VIEW, RunFilter, RunRow,
    RunStatus, Store, StoreError, StoreResult, SweepInfo, SweepRegistration, WorkerInfo, code_version, decode_value, encode_value,
    validate_sweep_name,
};
use crate::config::Goal;
use crate::config::RunConfig;
use crate::util::{now_unix, sha256_hex};

/// The schema, one migration per version, each a list of SQL scripts run in order. Append only:
/// never edit a released migration.
const MIGRATIONS: &[&[&str]] = &[
    // 1: sweeps, runs, parameters, metrics, checkpoints.
    &[r#"
    CREATE TABLE sweeps (
        name      TEXT PRIMARY KEY,
        spec      TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        created   REAL NOT NULL,
        updated   REAL NOT NULL
    );
    CREATE TABLE sweep_versions (
        sweep     TEXT NOT NULL REFERENCES sweeps(name),
        spec_hash TEXT NOT NULL,
        spec      TEXT NOT NULL,
        created   REAL NOT NULL,
        PRIMARY KEY (sweep, spec_hash)
    );
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        sweep        TEXT NOT NULL REFERENCES sweeps(name),
        seq          INTEGER NOT NULL,
        params       TEXT NOT NULL,
        config_hash  TEXT NOT NULL,
        seed         INTEGER NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','pruned','diverged')),
        attempt      INTEGER NOT NULL DEFAULT 0,
        crashes      INTEGER NOT NULL DEFAULT 0,
        host         TEXT,
        pid          INTEGER,
        created      REAL NOT NULL,
        started      REAL,
        finished     REAL,
        heartbeat    REAL,
        error        TEXT,
        code_version TEXT,
        UNIQUE (sweep, config_hash),
        UNIQUE (sweep, seq)
    );
    CREATE INDEX runs_by_status ON runs (status, sweep, seq);
    CREATE INDEX runs_by_sweep ON runs (sweep, seq);
    CREATE TABLE run_configs (
        run    TEXT PRIMARY KEY REFERENCES runs(id),
        config TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE params (
        run   TEXT NOT NULL REFERENCES runs(id),
        name  TEXT NOT NULL,
        value TEXT NOT NULL,
        num   REAL,
        PRIMARY KEY (run, name)
    ) WITHOUT ROWID;
    CREATE TABLE metrics (
        run   TEXT NOT NULL REFERENCES runs(id),
        epoch INTEGER NOT NULL,
        split TEXT NOT NULL,
        name  TEXT NOT NULL,
        value REAL,
        kind  TEXT NOT NULL CHECK (kind IN ('finite','nan','inf','-inf')),
        wall  REAL NOT NULL,
        PRIMARY KEY (run, epoch, split, name)
    ) WITHOUT ROWID;
    CREATE TABLE checkpoints (
        run          TEXT NOT NULL REFERENCES runs(id),
        kind         TEXT NOT NULL CHECK (kind IN ('best','last')),
        epoch        INTEGER NOT NULL,
        path         TEXT NOT NULL,
        metric_value REAL,
        metric_kind  TEXT NOT NULL CHECK (metric_kind IN ('finite','nan','inf','-inf')),
        created      REAL NOT NULL,
        PRIMARY KEY (run, kind)
    ) WITHOUT ROWID;
    "#],
    // 2: per-run metric summaries (final value, best in each direction), kept up to date by
    // log_epoch, backfilled here; and the one-row-per-run results view.
    &[
        r#"
    CREATE TABLE metric_summary (
        run        TEXT NOT NULL REFERENCES runs(id),
        split      TEXT NOT NULL,
        name       TEXT NOT NULL,
        last_epoch INTEGER NOT NULL,
        last_value REAL,
        last_kind  TEXT NOT NULL,
        min_value  REAL,
        min_epoch  INTEGER,
        max_value  REAL,
        max_epoch  INTEGER,
        PRIMARY KEY (run, split, name)
    ) WITHOUT ROWID;
    CREATE INDEX summary_by_max ON metric_summary (split, name, max_value);
    CREATE INDEX summary_by_min ON metric_summary (split, name, min_value);
    INSERT INTO metric_summary (run, split, name, last_epoch, last_value, last_kind, min_value, min_epoch, max_value, max_epoch)
    SELECT m.run, m.split, m.name, m.epoch, m.value, m.kind,
           (SELECT MIN(value) FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite'),
           (SELECT epoch FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite' ORDER BY value ASC, epoch ASC LIMIT 1),
           (SELECT MAX(value) FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite'),
           (SELECT epoch FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite' ORDER BY value DESC, epoch ASC LIMIT 1)
    FROM metrics m
    WHERE m.epoch = (SELECT MAX(epoch) FROM metrics y WHERE y.run = m.run AND y.split = m.split AND y.name = m.name);
    "#,
        RUN_RESULTS_VIEW,
    ],
    // 3: batch jobs (SLURM arrays) submitted for a sweep.
    &[r#"
    CREATE TABLE jobs (
        sweep     TEXT NOT NULL REFERENCES sweeps(name),
        launcher  TEXT NOT NULL,
        job_id    TEXT NOT NULL,
        workers   INTEGER NOT NULL,
        script    TEXT NOT NULL,
        submitted REAL NOT NULL,
        PRIMARY KEY (launcher, job_id)
    );
    "#],
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) a tracker file for reading and writing, migrating it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
        }
        if let Some(fs) = network_filesystem(path) {
            if std::env::var_os("SWEEP_ALLOW_NETWORK_SQLITE").is_none() {
                return Err(StoreError::NetworkFilesystem { path: path.to_path_buf(), fs });
            }
            eprintln!("warning: {}: SQLite on {fs}: concurrent writers may corrupt it (SWEEP_ALLOW_NETWORK_SQLITE is set)", path.display());
        }
        let conn = Connection::open(path).map_err(|e| map_err(path, e))?;
        let mut store = Self { conn, path: path.to_path_buf() };
        store.configure(true)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing tracker for queries. A read-only file is fine as long as its schema is
    /// current; an older writable file is migrated first.
    pub fn open_existing(path: &Path) -> StoreResult<Self> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.to_path_buf() });
        }
        match Self::open(path) {
            Err(StoreError::ReadOnly { .. }) => {
                let store = Self::open_read_only(path)?;
                let version = store.user_version()?;
                if version > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
                }
                if version < SCHEMA_VERSION {
                    return Err(StoreError::ReadOnly {
                        path: path.to_path_buf(),
                        detail: format!("it has schema version {version} and must be migrated to {SCHEMA_VERSION}, which needs write access"),
                    });
                }
                Ok(store)
            }
            other => other,
        }
    }

    /// A read-only connection. On read-only media, where SQLite cannot create the WAL index, the
    /// file is opened as immutable (nothing can change it there anyway).
    fn open_read_only(path: &Path) -> StoreResult<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let plain = Connection::open_with_flags(path, flags).map_err(|e| map_err(path, e)).and_then(|conn| {
            let store = Self { conn, path: path.to_path_buf() };
            store.configure(false).map(|()| store)
        });
        match plain {
            Ok(store) => Ok(store),
            Err(_) => {
                let uri = format!("file:{}?immutable=1", path.display());
                let conn = Connection::open_with_flags(&uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(|e| map_err(path, e))?;
                let store = Self { conn, path: path.to_path_buf() };
                store.configure(false)?;
                Ok(store)
            }
        }
    }

    fn configure(&self, write: bool) -> StoreResult<()> {
        let p = &self.path;
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| map_err(p, e))?;
        // The first read tells a non-database file apart before anything is written to it.
        self.conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|e| map_err(p, e))?;
        if write {
            let mode: String = self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| map_err(p, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend { path: p.clone(), detail: format!("cannot switch to WAL mode (got {mode})") });
            }
            self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| map_err(p, e))?;
        }
        self.conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| map_err(p, e))?;
        Ok(())
    }

    fn user_version(&self) -> StoreResult<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| map_err(&self.path, e))
    }

    /// Applies the missing migrations, each in its own transaction with its version bump.
    fn migrate(&mut self) -> StoreResult<()> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_err(&path, e))?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| map_err(&path, e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path, found: version, supported: SCHEMA_VERSION });
        }
        for (i, scripts) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            for script in *scripts {
                tx.execute_batch(script).map_err(|e| map_err(&path, e))?;
            }
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| map_err(&path, e))?;
        }
        tx.commit().map_err(|e| map_err(&path, e))
    }

    /// Applies migrations up to `version` only (tests of the migration path).
    #[doc(hidden)]
    pub fn create_at_version(path: &Path, version: usize) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(|e| map_err(path, e))?;
        let store = Self { conn, path: path.to_path_buf() };
        store.configure(true)?;
        for (i, scripts) in MIGRATIONS.iter().enumerate().take(version) {
            for script in *scripts {
                store.conn.execute_batch(script).map_err(|e| map_err(path, e))?;
            }
            store.conn.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| map_err(path, e))?;
        }
        Ok(store)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> StoreResult<i64> {
        self.user_version()
    }

    /// `PRAGMA integrity_check`'s answer ("ok" for a sound file).
    pub fn integrity_check(&self) -> StoreResult<String> {
        self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| map_err(&self.path, e))
    }

    /// Direct access for tests and benchmarks that need to look under the contract.
    #[doc(hidden)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| map_err(&self.path, e)
    }

    fn immediate(&mut self) -> StoreResult<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(move |e| map_err(&path, e))
    }

    fn suggestions_for_run(&self, id: &str) -> Vec<String> {
        let like = format!("{}%", id.split('-').next().unwrap_or(id));
        let mut stmt = match self.conn.prepare_cached("SELECT id FROM runs WHERE id LIKE ?1 ORDER BY seq LIMIT 200") {
            Ok(s) => s,
            Err(_) => return Vec::new(),
        };
        let ids: Vec<String> = stmt.query_map([like], |r| r.get(0)).map(|rows| rows.flatten().collect()).unwrap_or_default();
        crate::util::did_you_mean(id, ids.iter().map(String::as_str)).map(|s| vec![s.to_string()]).unwrap_or_default()
    }

    /// Runs by id, or by sweep and status. The WHERE clause is assembled from fixed fragments
    /// (never from user text) so that each shape of query uses its index; values are bound.
    fn read_runs(&self, filter: &RunFilter, id: Option<&str>) -> StoreResult<Vec<RunRow>> {
        let mut conditions = Vec::new();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let status = filter.status.map(|s| s.as_str());
        if let Some(id) = &id {
            conditions.push("r.id = ?");
            values.push(id);
        }
        if let Some(sweep) = &filter.sweep {
            conditions.push("r.sweep = ?");
            values.push(sweep);
        }
        if let Some(status) = &status {
            conditions.push("r.status = ?");
            values.push(status);
        }
        let where_clause = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT r.id, r.sweep, r.seq, r.status, r.attempt, r.host, r.pid, r.created, r.started, r.finished, r.heartbeat, r.error,
                    r.code_version, r.config_hash, r.seed, r.params
             FROM runs r {where_clause} ORDER BY r.sweep, r.seq"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.err())?;
        let mut runs: Vec<RunRow> = stmt
            .query_map(values.as_slice(), |r| {
                let status: String = r.get(3)?;
                let params: String = r.get(15)?;
                Ok(RunRow {
                    id: r.get(0)?,
                    sweep: r.get(1)?,
                    seq: r.get(2)?,
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
                    attempt: r.get(4)?,
                    host: r.get(5)?,
                    pid: r.get(6)?,
                    created: r.get(7)?,
                    started: r.get(8)?,
                    finished: r.get(9)?,
                    heartbeat: r.get(10)?,
                    error: r.get(11)?,
                    code_version: r.get(12)?,
                    config_hash: r.get(13)?,
                    seed: r.get(14)?,
                    params: serde_json::from_str(&params).unwrap_or_default(),
                    metrics: BTreeMap::new(),
                    settings: BTreeMap::new(),
                })
            })
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        if runs.is_empty() {
            return Ok(runs);
        }
        let index: std::collections::HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        let summary_sql = if id.is_some() {
            "SELECT s.run, s.split, s.name, s.last_epoch, s.last_value, s.last_kind, s.min_value, s.min_epoch, s.max_value, s.max_epoch
             FROM metric_summary s WHERE s.run = ?"
                .to_string()
        } else {
            format!(
                "SELECT s.run, s.split, s.name, s.last_epoch, s.last_value, s.last_kind, s.min_value, s.min_epoch, s.max_value, s.max_epoch
                 FROM metric_summary s JOIN runs r ON r.id = s.run {where_clause}"
            )
        };
        let mut stmt = self.conn.prepare_cached(&summary_sql).map_err(self.err())?;
        let summary_values: Vec<&dyn rusqlite::ToSql> = if id.is_some() { values[..1].to_vec() } else { values };
        let mut rows = stmt.query(summary_values.as_slice()).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let run: String = r.get(0).map_err(self.err())?;
            let Some(&i) = index.get(&run) else { continue };
            let split: String = r.get(1).map_err(self.err())?;
            let name: String = r.get(2).map_err(self.err())?;
            let kind: String = r.get(5).map_err(self.err())?;
            let summary = MetricSummary {
                last_epoch: r.get(3).map_err(self.err())?,
                last: decode_value(r.get(4).map_err(self.err())?, &kind),
                min: r.get(6).map_err(self.err())?,
                min_epoch: r.get(7).map_err(self.err())?,
                max: r.get(8).map_err(self.err())?,
                max_epoch: r.get(9).map_err(self.err())?,
            };
            runs[i].metrics.insert(format!("{split}_{name}"), summary);
        }
        Ok(runs)
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn register_sweep(&mut self, name: &str, spec: &str) -> StoreResult<SweepRegistration> {
        validate_sweep_name(name)?;
        let hash = sha256_hex(spec.as_bytes());
        let now = now_unix();
        let path = self.path.clone();
        let e = |err| map_err(&path, err);
        let tx = self.immediate()?;
        let existing: Option<String> = tx.query_row("SELECT spec_hash FROM sweeps WHERE name = ?1", [name], |r| r.get(0)).optional().map_err(e)?;
        let result = match existing {
            None => {
                tx.execute(
                    "INSERT INTO sweeps (name, spec, spec_hash, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![name, spec, hash, now],
                )
                .map_err(e)?;
                SweepRegistration::New
            }
            Some(h) if h == hash => SweepRegistration::Unchanged,
            Some(previous_hash) => {
                tx.execute("UPDATE sweeps SET spec = ?2, spec_hash = ?3, updated = ?4 WHERE name = ?1", params![name, spec, hash, now]).map_err(e)?;
                SweepRegistration::SpecChanged { previous_hash }
            }
        };
        tx.execute(
            "INSERT INTO sweep_versions (sweep, spec_hash, spec, created) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![name, hash, spec, now],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(result)
    }

    fn enqueue(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport> {
        validate_sweep_name(sweep)?;
        let now = now_unix();
        let version = code_version();
        let path = self.path.clone();
        let e = |err| map_err(&path, err);
        let tx = self.immediate()?;
        let known: bool = tx.query_row("SELECT count(*) FROM sweeps WHERE name = ?1", [sweep], |r| r.get::<_, i64>(0)).map_err(e)? > 0;
        if !known {
            return Err(StoreError::UnknownSweep { name: sweep.to_string(), suggestions: Vec::new() });
        }
        let mut seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE sweep = ?1", [sweep], |r| r.get(0)).map_err(e)?;
        let mut report = EnqueueReport::default();
        {
            let mut insert_run = tx
                .prepare_cached(
                    "INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created, code_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?8)
                     ON CONFLICT (sweep, config_hash) DO NOTHING",
                )
                .map_err(e)?;
            let mut insert_config = tx.prepare_cached("INSERT INTO run_configs (run, config) VALUES (?1, ?2)").map_err(e)?;
            let mut insert_param = tx.prepare_cached("INSERT INTO params (run, name, value, num) VALUES (?1, ?2, ?3, ?4)").map_err(e)?;
            for trial in trials {
                let id = format!("{sweep}-{}", seq + 1);
                let params_json = serde_json::to_string(&trial.params).expect("params serialise");
                let inserted = insert_run
                    .execute(params![id, sweep, seq + 1, params_json, trial.config.hash(), trial.config.train.seed as i64, now, version])
                    .map_err(e)?;
                if inserted == 0 {
                    report.existing += 1;
                    continue;
                }
                seq += 1;
                insert_config.execute(params![id, trial.config.canonical_json()]).map_err(e)?;
                for (name, value) in &trial.params {
                    insert_param.execute(params![id, name, value.to_string(), value.as_f64()]).map_err(e)?;
                }
                report.added.push(id);
            }
        }
        tx.commit().map_err(e)?;
        Ok(report)
    }

    fn requeue_failed(&mut self, sweep: &str) -> StoreResult<usize> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let n = tx
            .execute(
                "UPDATE runs SET status = 'queued', finished = NULL, host = NULL, pid = NULL, crashes = 0 WHERE sweep = ?1 AND status = 'failed'",
                [sweep],
            )
            .map_err(|e| map_err(&path, e))?;
        tx.commit().map_err(|e| map_err(&path, e))?;
        Ok(n)
    }

    fn claim(&mut self, sweep: Option<&str>, worker: &WorkerInfo, stale_after: f64) -> StoreResult<Option<Claim>> {
        let now = now_unix();
        let path = self.path.clone();
        let e = |err| map_err(&path, err);
        let tx = self.immediate()?;
        // A run whose worker died (stale heartbeat) is resumed before new work starts; each
        // query walks the (status, sweep, seq) index.
        let pick = |sql: &str, stale: bool| -> Result<Option<(String, i64)>, rusqlite::Error> {
            let mut stmt = tx.prepare_cached(sql)?;
            let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
            match (sweep, stale) {
                (Some(s), true) => stmt.query_row(params![s, now - stale_after], row),
                (Some(s), false) => stmt.query_row(params![s], row),
                (None, true) => stmt.query_row(params![now - stale_after], row),
                (None, false) => stmt.query_row([], row),
            }
            .optional()
        };
        let candidate = match sweep {
            Some(_) => match pick(
                "SELECT id, attempt FROM runs WHERE status = 'running' AND sweep = ?1 AND (heartbeat IS NULL OR heartbeat < ?2) ORDER BY seq LIMIT 1",
                true,
            )
            .map_err(e)?
            {
                Some(c) => Some(c),
                None => pick("SELECT id, attempt FROM runs WHERE status = 'queued' AND sweep = ?1 ORDER BY seq LIMIT 1", false).map_err(e)?,
            },
            None => match pick(
                "SELECT id, attempt FROM runs WHERE status = 'running' AND (heartbeat IS NULL OR heartbeat < ?1) ORDER BY created, seq LIMIT 1",
                true,
            )
            .map_err(e)?
            {
                Some(c) => Some(c),
                None => pick("SELECT id, attempt FROM runs WHERE status = 'queued' ORDER BY created, seq LIMIT 1", false).map_err(e)?,
            },
        };
        let Some((id, attempt)) = candidate else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE runs SET status = 'running', attempt = attempt + 1, host = ?2, pid = ?3, heartbeat = ?4,
                             started = COALESCE(started, ?4), finished = NULL
             WHERE id = ?1",
            params![id, worker.host, worker.pid, now],
        )
        .map_err(e)?;
        let (sweep_name, config, params_json): (String, String, String) = tx
            .query_row("SELECT r.sweep, c.config, r.params FROM runs r JOIN run_configs c ON c.run = r.id WHERE r.id = ?1", [&id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(e)?;
        tx.commit().map_err(e)?;
        let config: RunConfig = serde_json::from_str(&config)
            .map_err(|err| StoreError::Backend { path: path.clone(), detail: format!("run {id} has an unreadable config: {err}") })?;
        Ok(Some(Claim {
            lease: Lease { run: id, attempt: attempt + 1 },
            sweep: sweep_name,
            config,
            params: serde_json::from_str(&params_json).unwrap_or_default(),
            resumed: attempt > 0,
        }))
    }

    fn heartbeat(&mut self, lease: &Lease) -> StoreResult<()> {
        let now = now_unix();
        let path = self.path.clone();
        let n = self
            .conn
            .prepare_cached("UPDATE runs SET heartbeat = ?3 WHERE id = ?1 AND attempt = ?2 AND status = 'running'")
            .and_then(|mut s| s.execute(params![lease.run, lease.attempt, now]))
            .map_err(|e| map_err(&path, e))?;
        if n == 0 {
            return Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt });
        }
        Ok(())
    }

    fn log_epoch(&mut self, lease: &Lease, epoch: &EpochLog) -> StoreResult<()> {
        let now = now_unix();
        let path = self.path.clone();
        let e = |err| map_err(&path, err);
        let tx = self.immediate()?;
        let held = tx
            .prepare_cached("UPDATE runs SET heartbeat = ?3, crashes = 0 WHERE id = ?1 AND attempt = ?2 AND status = 'running'")
            .and_then(|mut s| s.execute(params![lease.run, lease.attempt, now]))
            .map_err(e)?;
        if held == 0 {
            return Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt });
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO metrics (run, epoch, split, name, value, kind, wall) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(e)?;
            let mut summarize = tx
                .prepare_cached(
                    "INSERT INTO metric_summary (run, split, name, last_epoch, last_value, last_kind, min_value, min_epoch, max_value, max_epoch)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, CASE WHEN ?5 IS NULL THEN NULL ELSE ?4 END, ?5, CASE WHEN ?5 IS NULL THEN NULL ELSE ?4 END)
                     ON CONFLICT (run, split, name) DO UPDATE SET
                        last_value = CASE WHEN excluded.last_epoch >= last_epoch THEN excluded.last_value ELSE last_value END,
                        last_kind  = CASE WHEN excluded.last_epoch >= last_epoch THEN excluded.last_kind ELSE last_kind END,
                        last_epoch = MAX(last_epoch, excluded.last_epoch),
                        min_epoch  = CASE WHEN excluded.min_value IS NOT NULL AND (min_value IS NULL OR excluded.min_value < min_value
                                          OR (excluded.min_value = min_value AND excluded.min_epoch < min_epoch)) THEN excluded.min_epoch ELSE min_epoch END,
                        min_value  = CASE WHEN excluded.min_value IS NOT NULL AND (min_value IS NULL OR excluded.min_value < min_value)
                                          THEN excluded.min_value ELSE min_value END,
                        max_epoch  = CASE WHEN excluded.max_value IS NOT NULL AND (max_value IS NULL OR excluded.max_value > max_value
                                          OR (excluded.max_value = max_value AND excluded.max_epoch < max_epoch)) THEN excluded.max_epoch ELSE max_epoch END,
                        max_value  = CASE WHEN excluded.max_value IS NOT NULL AND (max_value IS NULL OR excluded.max_value > max_value)
                                          THEN excluded.max_value ELSE max_value END",
                )
                .map_err(e)?;
            for m in &epoch.metrics {
                let (value, kind) = encode_value(m.value);
                let inserted = insert.execute(params![lease.run, epoch.epoch, m.split.as_str(), m.name, value, kind, epoch.wall]).map_err(e)?;
                if inserted == 1 {
                    summarize.execute(params![lease.run, m.split.as_str(), m.name, epoch.epoch, value, kind]).map_err(e)?;
                }
            }
            let mut checkpoint = tx
                .prepare_cached(
                    "INSERT INTO checkpoints (run, kind, epoch, path, metric_value, metric_kind, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (run, kind) DO UPDATE SET epoch = excluded.epoch, path = excluded.path,
                        metric_value = excluded.metric_value, metric_kind = excluded.metric_kind, created = excluded.created
                     WHERE excluded.epoch >= checkpoints.epoch",
                )
                .map_err(e)?;
            for c in &epoch.checkpoints {
                let (value, kind) = encode_value(c.metric_value);
                checkpoint.execute(params![lease.run, c.kind, c.epoch, c.path, value, kind, now]).map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    fn finish(&mut self, lease: &Lease, status: RunStatus, error: Option<&str>) -> StoreResult<()> {
        let now = now_unix();
        let path = self.path.clone();
        let tx = self.immediate()?;
        let n = tx
            .execute(
                "UPDATE runs SET status = ?3, finished = ?4, heartbeat = ?4, error = ?5 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![lease.run, lease.attempt, status.as_str(), now, error],
            )
            .map_err(|e| map_err(&path, e))?;
        if n == 0 {
            return Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt });
        }
        tx.commit().map_err(|e| map_err(&path, e))
    }

    fn release(&mut self, lease: &Lease) -> StoreResult<()> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        let n = tx
            .execute(
                "UPDATE runs SET status = 'queued', host = NULL, pid = NULL WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![lease.run, lease.attempt],
            )
            .map_err(|e| map_err(&path, e))?;
        if n == 0 {
            return Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt });
        }
        tx.commit().map_err(|e| map_err(&path, e))
    }

    fn record_crash(&mut self, lease: &Lease, message: &str, max_attempts: i64) -> StoreResult<RunStatus> {
        let now = now_unix();
        let path = self.path.clone();
        let e = |err| map_err(&path, err);
        let tx = self.immediate()?;
        let current: Option<(String, i64, i64)> = tx
            .query_row("SELECT status, attempt, crashes FROM runs WHERE id = ?1", [&lease.run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(e)?;
        match current {
            Some((status, attempt, crashes)) if status == "running" && attempt == lease.attempt => {
                // Crashes count while no epoch gets recorded in between (log_epoch resets the
                // count): a trial that kills its worker every time fails instead of looping.
                let crashes = crashes + 1;
                let (new_status, finished) = if crashes >= max_attempts { (RunStatus::Failed, Some(now)) } else { (RunStatus::Queued, None) };
                let error = if new_status == RunStatus::Failed {
                    format!("{message} ({crashes} attempts in a row ended this way)")
                } else {
                    message.to_string()
                };
                tx.execute(
                    "UPDATE runs SET status = ?2, error = ?3, finished = ?4, crashes = ?5, host = NULL, pid = NULL WHERE id = ?1",
                    params![lease.run, new_status.as_str(), error, finished, crashes],
                )
                .map_err(e)?;
                tx.commit().map_err(e)?;
                Ok(new_status)
            }
            _ => Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt }),
        }
    }

    fn sweeps(&self) -> StoreResult<Vec<SweepInfo>> {
        let mut stmt = self.conn.prepare_cached("SELECT name, spec, spec_hash, created, updated FROM sweeps ORDER BY created").map_err(self.err())?;
        let mut sweeps: Vec<SweepInfo> = stmt
            .query_map([], |r| {
                Ok(SweepInfo {
                    name: r.get(0)?,
                    spec: r.get(1)?,
                    spec_hash: r.get(2)?,
                    created: r.get(3)?,
                    updated: r.get(4)?,
                    counts: BTreeMap::new(),
                })
            })
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        let mut stmt = self.conn.prepare_cached("SELECT sweep, status, count(*) FROM runs GROUP BY sweep, status").map_err(self.err())?;
        let counts: Vec<(String, String, i64)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(self.err())?.collect::<Result<_, _>>().map_err(self.err())?;
        for (sweep, status, n) in counts {
            if let Some(s) = sweeps.iter_mut().find(|s| s.name == sweep) {
                s.counts.insert(status, n);
            }
        }
        Ok(sweeps)
    }

    fn runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        self.read_runs(filter, None)
    }

    fn run(&self, id: &str) -> StoreResult<RunRow> {
        self.read_runs(&RunFilter::default(), Some(id))?
            .pop()
            .ok_or_else(|| StoreError::UnknownRun { id: id.to_string(), suggestions: self.suggestions_for_run(id) })
    }

    fn run_config(&self, id: &str) -> StoreResult<RunConfig> {
        let text: Option<String> =
            self.conn.query_row("SELECT config FROM run_configs WHERE run = ?1", [id], |r| r.get(0)).optional().map_err(self.err())?;
        let text = text.ok_or_else(|| StoreError::UnknownRun { id: id.to_string(), suggestions: self.suggestions_for_run(id) })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Backend { path: self.path.clone(), detail: format!("run {id}: unreadable config: {e}") })
    }

    fn metrics(&self, id: &str) -> StoreResult<Vec<MetricRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT epoch, split, name, value, kind, wall FROM metrics WHERE run = ?1 ORDER BY epoch, split, name")
            .map_err(self.err())?;
        stmt.query_map([id], |r| {
            let kind: String = r.get(4)?;
            Ok(MetricRow { epoch: r.get(0)?, split: r.get(1)?, name: r.get(2)?, value: decode_value(r.get(3)?, &kind), wall: r.get(5)? })
        })
        .map_err(self.err())?
        .collect::<Result<_, _>>()
        .map_err(self.err())
    }

    fn checkpoints(&self, id: &str) -> StoreResult<Vec<CheckpointRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, epoch, path, metric_value, metric_kind FROM checkpoints WHERE run = ?1 ORDER BY kind")
            .map_err(self.err())?;
        stmt.query_map([id], |r| {
            let kind: String = r.get(4)?;
            Ok(CheckpointRow { kind: r.get(0)?, epoch: r.get(1)?, path: r.get(2)?, metric_value: decode_value(r.get(3)?, &kind) })
        })
        .map_err(self.err())?
        .collect::<Result<_, _>>()
        .map_err(self.err())
    }

    fn best(&self, metric: &str, goal: Goal, sweep: Option<&str>) -> StoreResult<Option<BestRun>> {
        let (split, name) = metric.split_once('_').unwrap_or(("val", metric));
        // Ties go to the earlier run id (the order the index already holds).
        let sql = match (goal, sweep.is_some()) {
            (Goal::Maximize, false) => {
                "SELECT run, max_value, max_epoch FROM metric_summary
                 WHERE split = ?1 AND name = ?2 AND max_value IS NOT NULL ORDER BY max_value DESC, run LIMIT 1"
            }
            (Goal::Minimize, false) => {
                "SELECT run, min_value, min_epoch FROM metric_summary
                 WHERE split = ?1 AND name = ?2 AND min_value IS NOT NULL ORDER BY min_value ASC, run LIMIT 1"
            }
            (Goal::Maximize, true) => {
                "SELECT s.run, s.max_value, s.max_epoch FROM metric_summary s JOIN runs r ON r.id = s.run
                 WHERE s.split = ?1 AND s.name = ?2 AND s.max_value IS NOT NULL AND r.sweep = ?3 ORDER BY s.max_value DESC, s.run LIMIT 1"
            }
            (Goal::Minimize, true) => {
                "SELECT s.run, s.min_value, s.min_epoch FROM metric_summary s JOIN runs r ON r.id = s.run
                 WHERE s.split = ?1 AND s.name = ?2 AND s.min_value IS NOT NULL AND r.sweep = ?3 ORDER BY s.min_value ASC, s.run LIMIT 1"
            }
        };
        let found: Option<(String, f64, i64)> = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
                match sweep {
                    Some(sw) => s.query_row(params![split, name, sw], row),
                    None => s.query_row(params![split, name], row),
                }
                .optional()
            })
            .map_err(self.err())?;
        match found {
            None => Ok(None),
            Some((id, value, epoch)) => Ok(Some(BestRun { run: self.run(&id)?, value, epoch })),
        }
    }

    fn record_job(&mut self, job: &JobRow) -> StoreResult<()> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        tx.execute(
            "INSERT INTO jobs (sweep, launcher, job_id, workers, script, submitted) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![job.sweep, job.launcher, job.job_id, job.workers, job.script, job.submitted],
        )
        .map_err(|e| map_err(&path, e))?;
        tx.commit().map_err(|e| map_err(&path, e))
    }

    fn jobs(&self, sweep: Option<&str>) -> StoreResult<Vec<JobRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT sweep, launcher, job_id, workers, script, submitted FROM jobs WHERE (?1 IS NULL OR sweep = ?1) ORDER BY submitted",
            )
            .map_err(self.err())?;
        stmt.query_map([sweep], |r| {
            Ok(JobRow { sweep: r.get(0)?, launcher: r.get(1)?, job_id: r.get(2)?, workers: r.get(3)?, script: r.get(4)?, submitted: r.get(5)? })
        })
        .map_err(self.err())?
        .collect::<Result<_, _>>()
        .map_err(self.err())
    }
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            StoreError::ReadOnly { path: path.to_path_buf(), detail: e.to_string() }
        }
        std::io::ErrorKind::StorageFull => StoreError::DiskFull { path: path.to_path_buf() },
        _ => StoreError::Backend { path: path.to_path_buf(), detail: e.to_string() },
    }
}

/// The network file system holding `path`'s directory, if it is one (by `statfs` magic number).
pub fn network_filesystem(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct we pass; c is a valid NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    network_fs_name(stat.f_type as u64)
}

/// The name of a network file system from its `statfs` magic number.
pub fn network_fs_name(magic: u64) -> Option<&'static str> {
    match magic {
        0x6969 => Some("NFS"),
        0x517b => Some("SMB"),
        0xff53_4d42 => Some("CIFS"),
        0xfe53_4d42 => Some("SMB2"),
        0x0bd0_0bd0 => Some("Lustre"),
        0x4750_4653 => Some("GPFS"),
        0x0102_1997 => Some("9p"),
        0x5346_414f => Some("AFS"),
        0x0000_1373 => Some("DFS"),
        _ => None,
    }
}

/// Whether this process may write `path` (false on a read-only mount, even for root).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: c is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Free bytes on the file system holding `path` (or its directory).
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = if path.is_dir() { path } else { path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")) };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; c is a valid NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut stat) } == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Turns SQLite's error codes into errors a person can act on.
fn map_err(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    if let rusqlite::Error::SqliteFailure(failure, message) = &e {
        let detail = message.clone().unwrap_or_else(|| failure.to_string());
        match failure.code {
            ErrorCode::NotADatabase => return StoreError::NotADatabase { path },
            ErrorCode::ReadOnly => return StoreError::ReadOnly { path, detail },
            ErrorCode::DiskFull => return StoreError::DiskFull { path },
            // SQLite reports a failed write (of the WAL, or of its shared-memory index) as an I/O
            // error without the errno; a file system with no room left is the usual cause.
            ErrorCode::SystemIoFailure if free_bytes(&path).is_some_and(|free| free < 64 * 1024) => {
                return StoreError::DiskFull { path };
            }
            ErrorCode::CannotOpen => {
                let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                if !writable(dir) || (path.exists() && !writable(&path)) {
                    return StoreError::ReadOnly { path, detail };
                }
                return StoreError::Backend { path, detail: format!("cannot open: {detail}") };
            }
            _ => return StoreError::Backend { path, detail },
        }
    }
    StoreError::Backend { path, detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_file_systems_are_recognised_by_their_magic_numbers() {
        assert_eq!(network_fs_name(0x6969), Some("NFS"));
        assert_eq!(network_fs_name(0xff53_4d42), Some("CIFS"));
        assert_eq!(network_fs_name(0x0bd0_0bd0), Some("Lustre"));
        assert_eq!(network_fs_name(0xef53), None, "ext4 is local");
        assert_eq!(network_fs_name(0x0102_1994), None, "tmpfs is local");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(network_filesystem(&dir.path().join("t.db")), None, "the test's temporary directory is local");
    }

    #[test]
    fn nan_and_infinities_are_stored_as_a_value_plus_a_kind() {
        for v in [1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (stored, kind) = encode_value(v);
            let back = decode_value(stored, kind);
            assert!(back == v || (v.is_nan() && back.is_nan()), "{v} -> {stored:?} {kind} -> {back}");
            assert_eq!(stored.is_none(), !v.is_finite(), "SQLite would turn NaN into NULL, so no non-finite value is stored as a number");
        }
    }
}
