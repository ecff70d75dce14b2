//! The PostgreSQL backend of the tracker, for sweeps whose workers run on many machines
//! (`--store postgres://user@host:port/db`). Same contract, same schema meaning as SQLite.
//!
//! Claims use `SELECT ... FOR UPDATE SKIP LOCKED`, so workers on any number of machines never take
//! the same trial and never wait on each other's claims. Every operation is one transaction; if
//! the connection drops (a restart, a failover, a network cut), the operation is retried on a new
//! connection with exponential backoff for up to five minutes. Retrying is safe: epochs are
//! recorded once per (run, epoch, split, name), and an end-of-run write that already went through
//! is recognised as done.
//!
//! Migrations are append-only scripts, tracked in the table `sweep_schema`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ::postgres::{Client, NoTls, Row, Transaction};

use super::{
    BestRun, CheckpointRow, Claim, EnqueueReport, EpochLog, JobRow, Lease, MetricRow, MetricSummary, NewTrial, RUN_RESULTS_VIEW, RunFilter, RunRow,
    RunStatus, Store, StoreError, StoreResult, SweepInfo, SweepRegistration, WorkerInfo, code_version, decode_value, encode_value,
    validate_sweep_name,
};
use crate::config::Goal;
use crate::config::RunConfig;
use crate::util::{now_unix, sha256_hex};

/// The schema, one migration per version, each a list of SQL scripts run in order. Append only.
const MIGRATIONS: &[&[&str]] = &[
    &[
        r#"
    CREATE TABLE sweeps (
        name      TEXT PRIMARY KEY,
        spec      TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        created   DOUBLE PRECISION NOT NULL,
        updated   DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE sweep_versions (
        sweep     TEXT NOT NULL REFERENCES sweeps(name),
        spec_hash TEXT NOT NULL,
        spec      TEXT NOT NULL,
        created   DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (sweep, spec_hash)
    );
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        sweep        TEXT NOT NULL REFERENCES sweeps(name),
        seq          BIGINT NOT NULL,
        params       TEXT NOT NULL,
        config_hash  TEXT NOT NULL,
        seed         BIGINT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','pruned','diverged')),
        attempt      BIGINT NOT NULL DEFAULT 0,
        crashes      BIGINT NOT NULL DEFAULT 0,
        host         TEXT,
        pid          BIGINT,
        created      DOUBLE PRECISION NOT NULL,
        started      DOUBLE PRECISION,
        finished     DOUBLE PRECISION,
        heartbeat    DOUBLE PRECISION,
        error        TEXT,
        code_version TEXT,
        UNIQUE (sweep, config_hash),
        UNIQUE (sweep, seq)
    );
    CREATE INDEX runs_by_status ON runs (status, sweep, seq);
    CREATE TABLE run_configs (
        run    TEXT PRIMARY KEY REFERENCES runs(id),
        config TEXT NOT NULL
    );
    CREATE TABLE params (
        run   TEXT NOT NULL REFERENCES runs(id),
        name  TEXT NOT NULL,
        value TEXT NOT NULL,
        num   DOUBLE PRECISION,
        PRIMARY KEY (run, name)
    );
    CREATE TABLE metrics (
        run   TEXT NOT NULL REFERENCES runs(id),
        epoch BIGINT NOT NULL,
        split TEXT NOT NULL,
        name  TEXT NOT NULL,
        value DOUBLE PRECISION,
        kind  TEXT NOT NULL CHECK (kind IN ('finite','nan','inf','-inf')),
        wall  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run, epoch, split, name)
    );
    CREATE TABLE checkpoints (
        run          TEXT NOT NULL REFERENCES runs(id),
        kind         TEXT NOT NULL CHECK (kind IN ('best','last')),
        epoch        BIGINT NOT NULL,
        path         TEXT NOT NULL,
        metric_value DOUBLE PRECISION,
        metric_kind  TEXT NOT NULL CHECK (metric_kind IN ('finite','nan','inf','-inf')),
        created      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run, kind)
    );
    CREATE TABLE metric_summary (
        run        TEXT NOT NULL REFERENCES runs(id),
        split      TEXT NOT NULL,
        name       TEXT NOT NULL,
        last_epoch BIGINT NOT NULL,
        last_value DOUBLE PRECISION,
        last_kind  TEXT NOT NULL,
        min_value  DOUBLE PRECISION,
        min_epoch  BIGINT,
        max_value  DOUBLE PRECISION,
        max_epoch  BIGINT,
        PRIMARY KEY (run, split, name)
    );
    CREATE INDEX summary_by_max ON metric_summary (split, name, max_value);
    CREATE INDEX summary_by_min ON metric_summary (split, name, min_value);
    CREATE TABLE jobs (
        sweep     TEXT NOT NULL REFERENCES sweeps(name),
        launcher  TEXT NOT NULL,
        job_id    TEXT NOT NULL,
        workers   BIGINT NOT NULL,
        script    TEXT NOT NULL,
        submitted DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (launcher, job_id)
    );
    "#,
        RUN_RESULTS_VIEW,
    ],
    &[
        // Which claim call took a run: a worker whose claim committed but whose reply was lost with the
        // connection takes the run back on its retry instead of leaving it to go stale.
        "ALTER TABLE runs ADD COLUMN claim_token TEXT",
    ],
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long an operation keeps retrying a lost connection.
const RETRY_FOR: Duration = Duration::from_secs(300);

pub struct PostgresStore {
    url: String,
    client: RefCell<Option<Client>>,
    /// Connections re-established after a loss (for tests and logs).
    reconnects: std::cell::Cell<u64>,
    /// Fault injection for tests: drop the connection right after the next claim commits, as if
    /// its reply had been lost on the way back.
    lose_next_claim_reply: std::cell::Cell<bool>,
}

/// An operation's failure: the connection (retry) or anything else (report).
enum Failure {
    Connection(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects (retrying while the server is unreachable) and applies missing migrations.
    pub fn open(url: &str) -> StoreResult<Self> {
        let store = Self {
            url: url.to_string(),
            client: RefCell::new(None),
            reconnects: std::cell::Cell::new(0),
            lose_next_claim_reply: std::cell::Cell::new(false),
        };
        store.transact(|client| {
            let mut tx = client.transaction().map_err(classify)?;
            // One migrator at a time, across machines.
            tx.execute("SELECT pg_advisory_xact_lock(727365)", &[]).map_err(classify)?;
            tx.batch_execute("CREATE TABLE IF NOT EXISTS sweep_schema (version BIGINT NOT NULL)").map_err(classify)?;
            let version: i64 = match tx.query_opt("SELECT version FROM sweep_schema", &[]).map_err(classify)? {
                Some(row) => row.get(0),
                None => {
                    tx.execute("INSERT INTO sweep_schema (version) VALUES (0)", &[]).map_err(classify)?;
                    0
                }
            };
            if version > SCHEMA_VERSION {
                return Err(Failure::Store(StoreError::NewerSchema { path: redact(&store.url).into(), found: version, supported: SCHEMA_VERSION }));
            }
            for (i, scripts) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                for script in *scripts {
                    tx.batch_execute(script).map_err(classify)?;
                }
                tx.execute("UPDATE sweep_schema SET version = $1", &[&(i as i64 + 1)]).map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })?;
        Ok(store)
    }

    /// Times the connection was re-established after a loss.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }

    /// Test hook: the next claim commits on the server, then its connection is dropped before
    /// the reply is read, as a network cut at that moment would.
    #[doc(hidden)]
    pub fn lose_next_claim_reply(&self) {
        self.lose_next_claim_reply.set(true);
    }

    fn backend(&self, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Backend { path: redact(&self.url).into(), detail: detail.to_string() }
    }

    /// Runs `op` on a live connection; on a lost connection, reconnects with backoff and runs it
    /// again (each `op` is one whole transaction, rolled back by the server if cut).
    fn transact<T>(&self, mut op: impl FnMut(&mut Client) -> Result<T, Failure>) -> StoreResult<T> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut last_error = String::new();
        loop {
            let mut slot = self.client.borrow_mut();
            if slot.is_none() {
                match Client::connect(&self.url, NoTls) {
                    Ok(c) => {
                        if !last_error.is_empty() {
                            self.reconnects.set(self.reconnects.get() + 1);
                        }
                        *slot = Some(c);
                    }
                    Err(e) if is_connection_error(&e) => last_error = e.to_string(),
                    Err(e) => return Err(self.backend(format!("cannot connect: {e}"))),
                }
            }
            if let Some(client) = slot.as_mut() {
                match op(client) {
                    Ok(v) => return Ok(v),
                    Err(Failure::Store(e)) => return Err(e),
                    Err(Failure::Connection(e)) => {
                        last_error = e;
                        *slot = None;
                    }
                }
            }
            drop(slot);
            if started.elapsed() > RETRY_FOR {
                return Err(self.backend(format!("the database has been unreachable for {}s: {last_error}", RETRY_FOR.as_secs())));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

/// A token unique to one claim call: this host and process, the time, and a counter.
fn claim_token(worker: &WorkerInfo) -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}/{}/{}/{}", worker.host, worker.pid, nanos, CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Whether an error means the connection is gone (retry on a new one) rather than the query
/// being wrong.
fn is_connection_error(e: &::postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01-57P03 (terminated by an administrator, crash
        // shutdown, cannot connect now).
        Some(code) => code.code().starts_with("08") || matches!(code.code(), "57P01" | "57P02" | "57P03"),
        // No SQLSTATE: an I/O error on the socket.
        None => std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()) || e.to_string().contains("connection"),
    }
}

fn classify(e: ::postgres::Error) -> Failure {
    if is_connection_error(&e) {
        return Failure::Connection(e.to_string());
    }
    let detail = match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                text.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                text.push_str(&format!("; hint: {h}"));
            }
            text
        }
        None => e.to_string(),
    };
    Failure::Store(StoreError::Backend { path: "postgres".into(), detail })
}

fn run_row(r: &Row) -> RunRow {
    let status: String = r.get("status");
    let params: String = r.get("params");
    RunRow {
        id: r.get("id"),
        sweep: r.get("sweep"),
        seq: r.get("seq"),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        attempt: r.get("attempt"),
        host: r.get("host"),
        pid: r.get("pid"),
        created: r.get("created"),
        started: r.get("started"),
        finished: r.get("finished"),
        heartbeat: r.get("heartbeat"),
        error: r.get("error"),
        code_version: r.get("code_version"),
        config_hash: r.get("config_hash"),
        seed: r.get("seed"),
        params: serde_json::from_str(&params).unwrap_or_default(),
        metrics: BTreeMap::new(),
        settings: BTreeMap::new(),
    }
}

const RUN_COLUMNS: &str = "r.id, r.sweep, r.seq, r.status, r.attempt, r.host, r.pid, r.created, r.started, r.finished, r.heartbeat, r.error, \
                           r.code_version, r.config_hash, r.seed, r.params";

fn summary_from(r: &Row) -> (String, String, MetricSummary) {
    let split: String = r.get("split");
    let name: String = r.get("name");
    let kind: String = r.get("last_kind");
    (
        r.get("run"),
        format!("{split}_{name}"),
        MetricSummary {
            last_epoch: r.get("last_epoch"),
            last: decode_value(r.get("last_value"), &kind),
            min: r.get("min_value"),
            min_epoch: r.get("min_epoch"),
            max: r.get("max_value"),
            max_epoch: r.get("max_epoch"),
        },
    )
}

/// Applies an end-of-run write under the lease, or recognises that it already went through (the
/// reply of an earlier attempt was lost with the connection).
fn end_run(
    tx: &mut Transaction,
    lease: &Lease,
    status: &str,
    update: &str,
    values: &[&(dyn ::postgres::types::ToSql + Sync)],
) -> Result<(), Failure> {
    let n = tx.execute(update, values).map_err(classify)?;
    if n == 1 {
        return Ok(());
    }
    let current = tx.query_opt("SELECT status, attempt FROM runs WHERE id = $1", &[&lease.run]).map_err(classify)?;
    match current {
        Some(row) if row.get::<_, i64>(1) == lease.attempt && row.get::<_, String>(0) == status => Ok(()),
        _ => Err(Failure::Store(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt })),
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        redact(&self.url)
    }

    fn register_sweep(&mut self, name: &str, spec: &str) -> StoreResult<SweepRegistration> {
        validate_sweep_name(name)?;
        let hash = sha256_hex(spec.as_bytes());
        self.transact(|c| {
            let now = now_unix();
            let mut tx = c.transaction().map_err(classify)?;
            let inserted = tx
                .execute(
                    "INSERT INTO sweeps (name, spec, spec_hash, created, updated) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING",
                    &[&name, &spec, &hash, &now],
                )
                .map_err(classify)?
                == 1;
            let existing: String = tx.query_one("SELECT spec_hash FROM sweeps WHERE name = $1 FOR UPDATE", &[&name]).map_err(classify)?.get(0);
            let result = if inserted {
                SweepRegistration::New
            } else if existing == hash {
                SweepRegistration::Unchanged
            } else {
                tx.execute("UPDATE sweeps SET spec = $2, spec_hash = $3, updated = $4 WHERE name = $1", &[&name, &spec, &hash, &now])
                    .map_err(classify)?;
                SweepRegistration::SpecChanged { previous_hash: existing }
            };
            tx.execute(
                "INSERT INTO sweep_versions (sweep, spec_hash, spec, created) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&name, &hash, &spec, &now],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)?;
            Ok(result)
        })
    }

    fn enqueue(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport> {
        validate_sweep_name(sweep)?;
        let version = code_version();
        let prepared: Vec<(String, String, String, i64, &NewTrial)> = trials
            .iter()
            .map(|t| {
                (
                    serde_json::to_string(&t.params).expect("params serialise"),
                    t.config.canonical_json(),
                    t.config.hash(),
                    t.config.train.seed as i64,
                    t,
                )
            })
            .collect();
        self.transact(|c| {
            let now = now_unix();
            let mut tx = c.transaction().map_err(classify)?;
            // The sweep row's lock serialises enqueues of one sweep (run numbers stay dense).
            if tx.query_opt("SELECT name FROM sweeps WHERE name = $1 FOR UPDATE", &[&sweep]).map_err(classify)?.is_none() {
                return Err(Failure::Store(StoreError::UnknownSweep { name: sweep.to_string(), suggestions: Vec::new() }));
            }
            let mut seq: i64 = tx.query_one("SELECT COALESCE(MAX(seq), 0) FROM runs WHERE sweep = $1", &[&sweep]).map_err(classify)?.get(0);
            let insert_run = tx
                .prepare(
                    "INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created, code_version)
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8) ON CONFLICT (sweep, config_hash) DO NOTHING",
                )
                .map_err(classify)?;
            let mut report = EnqueueReport::default();
            for (params_json, config_json, hash, seed, trial) in &prepared {
                let id = format!("{sweep}-{}", seq + 1);
                let next = seq + 1;
                if tx.execute(&insert_run, &[&id, &sweep, &next, params_json, hash, seed, &now, &version]).map_err(classify)? == 0 {
                    report.existing += 1;
                    continue;
                }
                seq += 1;
                tx.execute("INSERT INTO run_configs (run, config) VALUES ($1, $2)", &[&id, config_json]).map_err(classify)?;
                for (name, value) in &trial.params {
                    tx.execute(
                        "INSERT INTO params (run, name, value, num) VALUES ($1, $2, $3, $4)",
                        &[&id, name, &value.to_string(), &value.as_f64()],
                    )
                    .map_err(classify)?;
                }
                report.added.push(id);
            }
            tx.commit().map_err(classify)?;
            Ok(report)
        })
    }

    fn requeue_failed(&mut self, sweep: &str) -> StoreResult<usize> {
        self.transact(|c| {
            let n = c
                .execute(
                    "UPDATE runs SET status = 'queued', finished = NULL, host = NULL, pid = NULL, crashes = 0 WHERE sweep = $1 AND status = 'failed'",
                    &[&sweep],
                )
                .map_err(classify)?;
            Ok(n as usize)
        })
    }

    fn claim(&mut self, sweep: Option<&str>, worker: &WorkerInfo, stale_after: f64) -> StoreResult<Option<Claim>> {
        let pid = worker.pid as i64;
        // Each claim is one UPDATE ... RETURNING over a row picked FOR UPDATE SKIP LOCKED: atomic
        // on its own, one round trip, and a row another worker is claiming right now is passed
        // over rather than waited for. A stale run (its worker died) is resumed before new work
        // starts. Each picking query walks the (status, sweep, seq) index. The row remembers this
        // call's token, so a retry after a lost reply finds the claim that did commit.
        const RETURNING: &str = "r.id, r.attempt, r.sweep, r.params, (SELECT config FROM run_configs c WHERE c.run = r.id)";
        let update = format!(
            "UPDATE runs r SET status = 'running', attempt = r.attempt + 1, host = $1, pid = $2, heartbeat = $3,
                    started = COALESCE(r.started, $3), finished = NULL, claim_token = $4
             FROM picked WHERE r.id = picked.id RETURNING {RETURNING}"
        );
        let queries: [(String, bool); 2] = match sweep {
            Some(_) => [
                (
                    format!(
                        "WITH picked AS (SELECT id FROM runs WHERE status = 'running' AND sweep = $6 AND (heartbeat IS NULL OR heartbeat < $5)
                                          ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) {update}"
                    ),
                    true,
                ),
                (
                    format!(
                        "WITH picked AS (SELECT id FROM runs WHERE status = 'queued' AND sweep = $5 ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) {update}"
                    ),
                    false,
                ),
            ],
            None => [
                (
                    format!(
                        "WITH picked AS (SELECT id FROM runs WHERE status = 'running' AND (heartbeat IS NULL OR heartbeat < $5)
                                          ORDER BY created, seq LIMIT 1 FOR UPDATE SKIP LOCKED) {update}"
                    ),
                    true,
                ),
                (
                    format!(
                        "WITH picked AS (SELECT id FROM runs WHERE status = 'queued' ORDER BY created, seq LIMIT 1 FOR UPDATE SKIP LOCKED) {update}"
                    ),
                    false,
                ),
            ],
        };
        let token = claim_token(worker);
        let mut retry = false;
        let found = self.transact(|c| {
            let read =
                |row: ::postgres::Row| -> (String, i64, String, String, String) { (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)) };
            if retry {
                // A previous try may have committed and lost only its reply: take that run back.
                let sql = format!("SELECT {RETURNING} FROM runs r WHERE r.claim_token = $1 AND r.status = 'running'");
                if let Some(row) = c.query_opt(&sql, &[&token]).map_err(classify)? {
                    return Ok(Some(read(row)));
                }
            }
            retry = true;
            let now = now_unix();
            let cutoff = now - stale_after;
            for (sql, stale) in &queries {
                let row = match (sweep, stale) {
                    (Some(s), true) => c.query_opt(sql, &[&worker.host, &pid, &now, &token, &cutoff, &s]),
                    (Some(s), false) => c.query_opt(sql, &[&worker.host, &pid, &now, &token, &s]),
                    (None, true) => c.query_opt(sql, &[&worker.host, &pid, &now, &token, &cutoff]),
                    (None, false) => c.query_opt(sql, &[&worker.host, &pid, &now, &token]),
                }
                .map_err(classify)?;
                if let Some(row) = row {
                    if self.lose_next_claim_reply.replace(false) {
                        return Err(Failure::Connection("the reply to a claim was lost (injected)".into()));
                    }
                    return Ok(Some(read(row)));
                }
            }
            Ok(None)
        })?;
        let Some((id, attempt, sweep_name, params, config)) = found else { return Ok(None) };
        let config: RunConfig = serde_json::from_str(&config).map_err(|e| self.backend(format!("run {id} has an unreadable config: {e}")))?;
        Ok(Some(Claim {
            lease: Lease { run: id, attempt },
            sweep: sweep_name,
            config,
            params: serde_json::from_str(&params).unwrap_or_default(),
            resumed: attempt > 1,
        }))
    }

    fn heartbeat(&mut self, lease: &Lease) -> StoreResult<()> {
        let n = self.transact(|c| {
            c.execute(
                "UPDATE runs SET heartbeat = $3 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&lease.run, &lease.attempt, &now_unix()],
            )
            .map_err(classify)
        })?;
        if n == 0 {
            return Err(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt });
        }
        Ok(())
    }

    fn log_epoch(&mut self, lease: &Lease, epoch: &EpochLog) -> StoreResult<()> {
        self.transact(|c| {
            let now = now_unix();
            let mut tx = c.transaction().map_err(classify)?;
            let held = tx
                .execute("UPDATE runs SET heartbeat = $3, crashes = 0 WHERE id = $1 AND attempt = $2 AND status = 'running'", &[&lease.run, &lease.attempt, &now])
                .map_err(classify)?;
            if held == 0 {
                return Err(Failure::Store(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt }));
            }
            let insert = tx
                .prepare(
                    "INSERT INTO metrics (run, epoch, split, name, value, kind, wall) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT DO NOTHING",
                )
                .map_err(classify)?;
            let summarize = tx
                .prepare(
                    "INSERT INTO metric_summary AS m (run, split, name, last_epoch, last_value, last_kind, min_value, min_epoch, max_value, max_epoch)
                     VALUES ($1, $2, $3, $4::BIGINT, $5::DOUBLE PRECISION, $6, $5::DOUBLE PRECISION,
                             CASE WHEN $5::DOUBLE PRECISION IS NULL THEN NULL ELSE $4::BIGINT END,
                             $5::DOUBLE PRECISION, CASE WHEN $5::DOUBLE PRECISION IS NULL THEN NULL ELSE $4::BIGINT END)
                     ON CONFLICT (run, split, name) DO UPDATE SET
                        last_value = CASE WHEN EXCLUDED.last_epoch >= m.last_epoch THEN EXCLUDED.last_value ELSE m.last_value END,
                        last_kind  = CASE WHEN EXCLUDED.last_epoch >= m.last_epoch THEN EXCLUDED.last_kind ELSE m.last_kind END,
                        last_epoch = GREATEST(m.last_epoch, EXCLUDED.last_epoch),
                        min_epoch  = CASE WHEN EXCLUDED.min_value IS NOT NULL AND (m.min_value IS NULL OR EXCLUDED.min_value < m.min_value
                                          OR (EXCLUDED.min_value = m.min_value AND EXCLUDED.min_epoch < m.min_epoch)) THEN EXCLUDED.min_epoch ELSE m.min_epoch END,
                        min_value  = CASE WHEN EXCLUDED.min_value IS NOT NULL AND (m.min_value IS NULL OR EXCLUDED.min_value < m.min_value)
                                          THEN EXCLUDED.min_value ELSE m.min_value END,
                        max_epoch  = CASE WHEN EXCLUDED.max_value IS NOT NULL AND (m.max_value IS NULL OR EXCLUDED.max_value > m.max_value
                                          OR (EXCLUDED.max_value = m.max_value AND EXCLUDED.max_epoch < m.max_epoch)) THEN EXCLUDED.max_epoch ELSE m.max_epoch END,
                        max_value  = CASE WHEN EXCLUDED.max_value IS NOT NULL AND (m.max_value IS NULL OR EXCLUDED.max_value > m.max_value)
                                          THEN EXCLUDED.max_value ELSE m.max_value END",
                )
                .map_err(classify)?;
            for m in &epoch.metrics {
                let (value, kind) = encode_value(m.value);
                let split = m.split.as_str();
                if tx.execute(&insert, &[&lease.run, &epoch.epoch, &split, &m.name, &value, &kind, &epoch.wall]).map_err(classify)? == 1 {
                    tx.execute(&summarize, &[&lease.run, &split, &m.name, &epoch.epoch, &value, &kind]).map_err(classify)?;
                }
            }
            for ck in &epoch.checkpoints {
                let (value, kind) = encode_value(ck.metric_value);
                tx.execute(
                    "INSERT INTO checkpoints (run, kind, epoch, path, metric_value, metric_kind, created) VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (run, kind) DO UPDATE SET epoch = EXCLUDED.epoch, path = EXCLUDED.path,
                        metric_value = EXCLUDED.metric_value, metric_kind = EXCLUDED.metric_kind, created = EXCLUDED.created
                     WHERE EXCLUDED.epoch >= checkpoints.epoch",
                    &[&lease.run, &ck.kind, &ck.epoch, &ck.path, &value, &kind, &now],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
    }

    fn finish(&mut self, lease: &Lease, status: RunStatus, error: Option<&str>) -> StoreResult<()> {
        let status_text = status.as_str();
        self.transact(|c| {
            let now = now_unix();
            let mut tx = c.transaction().map_err(classify)?;
            end_run(
                &mut tx,
                lease,
                status_text,
                "UPDATE runs SET status = $3, finished = $4, heartbeat = $4, error = $5 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&lease.run, &lease.attempt, &status_text, &now, &error],
            )?;
            tx.commit().map_err(classify)
        })
    }

    fn release(&mut self, lease: &Lease) -> StoreResult<()> {
        self.transact(|c| {
            let mut tx = c.transaction().map_err(classify)?;
            end_run(
                &mut tx,
                lease,
                "queued",
                "UPDATE runs SET status = 'queued', host = NULL, pid = NULL WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&lease.run, &lease.attempt],
            )?;
            tx.commit().map_err(classify)
        })
    }

    fn record_crash(&mut self, lease: &Lease, message: &str, max_attempts: i64) -> StoreResult<RunStatus> {
        self.transact(|c| {
            let now = now_unix();
            let mut tx = c.transaction().map_err(classify)?;
            let row = tx.query_opt("SELECT status, attempt, crashes FROM runs WHERE id = $1 FOR UPDATE", &[&lease.run]).map_err(classify)?;
            let Some(row) = row else { return Err(Failure::Store(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt })) };
            let (status, attempt, crashes): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if attempt != lease.attempt || status != "running" {
                return Err(Failure::Store(StoreError::LeaseLost { run: lease.run.clone(), attempt: lease.attempt }));
            }
            let crashes = crashes + 1;
            let (new_status, finished) = if crashes >= max_attempts { (RunStatus::Failed, Some(now)) } else { (RunStatus::Queued, None) };
            let error =
                if new_status == RunStatus::Failed { format!("{message} ({crashes} attempts in a row ended this way)") } else { message.to_string() };
            tx.execute(
                "UPDATE runs SET status = $2, error = $3, finished = $4, crashes = $5, host = NULL, pid = NULL WHERE id = $1",
                &[&lease.run, &new_status.as_str(), &error, &finished, &crashes],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)?;
            Ok(new_status)
        })
    }

    fn sweeps(&self) -> StoreResult<Vec<SweepInfo>> {
        self.transact(|c| {
            let mut sweeps: Vec<SweepInfo> = c
                .query("SELECT name, spec, spec_hash, created, updated FROM sweeps ORDER BY created", &[])
                .map_err(classify)?
                .iter()
                .map(|r| SweepInfo {
                    name: r.get(0),
                    spec: r.get(1),
                    spec_hash: r.get(2),
                    created: r.get(3),
                    updated: r.get(4),
                    counts: BTreeMap::new(),
                })
                .collect();
            for r in c.query("SELECT sweep, status, count(*) FROM runs GROUP BY sweep, status", &[]).map_err(classify)? {
                let (sweep, status, n): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
                if let Some(s) = sweeps.iter_mut().find(|s| s.name == sweep) {
                    s.counts.insert(status, n);
                }
            }
            Ok(sweeps)
        })
    }

    fn runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRow>> {
        let status = filter.status.map(|s| s.as_str().to_string());
        self.transact(|c| {
            let runs_sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs r WHERE ($1::TEXT IS NULL OR r.sweep = $1) AND ($2::TEXT IS NULL OR r.status = $2) ORDER BY r.sweep, r.seq"
            );
            let mut runs: Vec<RunRow> = c.query(&runs_sql, &[&filter.sweep, &status]).map_err(classify)?.iter().map(run_row).collect();
            let index: std::collections::HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
            let summaries = c
                .query(
                    "SELECT s.* FROM metric_summary s JOIN runs r ON r.id = s.run WHERE ($1::TEXT IS NULL OR r.sweep = $1) AND ($2::TEXT IS NULL OR r.status = $2)",
                    &[&filter.sweep, &status],
                )
                .map_err(classify)?;
            for row in &summaries {
                let (run, key, summary) = summary_from(row);
                if let Some(&i) = index.get(&run) {
                    runs[i].metrics.insert(key, summary);
                }
            }
            Ok(runs)
        })
    }

    fn run(&self, id: &str) -> StoreResult<RunRow> {
        let found = self.transact(|c| {
            let Some(row) = c.query_opt(&format!("SELECT {RUN_COLUMNS} FROM runs r WHERE r.id = $1"), &[&id]).map_err(classify)? else {
                let like = format!("{}%", id.split('-').next().unwrap_or(id));
                let ids: Vec<String> =
                    c.query("SELECT id FROM runs WHERE id LIKE $1 LIMIT 200", &[&like]).map_err(classify)?.iter().map(|r| r.get(0)).collect();
                return Ok(Err(ids));
            };
            let mut run = run_row(&row);
            for s in c.query("SELECT * FROM metric_summary WHERE run = $1", &[&id]).map_err(classify)? {
                let (_, key, summary) = summary_from(&s);
                run.metrics.insert(key, summary);
            }
            Ok(Ok(run))
        })?;
        found.map_err(|ids| StoreError::UnknownRun {
            id: id.to_string(),
            suggestions: crate::util::did_you_mean(id, ids.iter().map(String::as_str)).map(|s| vec![s.to_string()]).unwrap_or_default(),
        })
    }

    fn run_config(&self, id: &str) -> StoreResult<RunConfig> {
        let text: Option<String> =
            self.transact(|c| Ok(c.query_opt("SELECT config FROM run_configs WHERE run = $1", &[&id]).map_err(classify)?.map(|r| r.get(0))))?;
        let text = text.ok_or_else(|| StoreError::UnknownRun { id: id.to_string(), suggestions: Vec::new() })?;
        serde_json::from_str(&text).map_err(|e| self.backend(format!("run {id}: unreadable config: {e}")))
    }

    fn metrics(&self, id: &str) -> StoreResult<Vec<MetricRow>> {
        self.transact(|c| {
            Ok(c.query("SELECT epoch, split, name, value, kind, wall FROM metrics WHERE run = $1 ORDER BY epoch, split, name", &[&id])
                .map_err(classify)?
                .iter()
                .map(|r| {
                    let kind: String = r.get(4);
                    MetricRow { epoch: r.get(0), split: r.get(1), name: r.get(2), value: decode_value(r.get(3), &kind), wall: r.get(5) }
                })
                .collect())
        })
    }

    fn checkpoints(&self, id: &str) -> StoreResult<Vec<CheckpointRow>> {
        self.transact(|c| {
            Ok(c.query("SELECT kind, epoch, path, metric_value, metric_kind FROM checkpoints WHERE run = $1 ORDER BY kind", &[&id])
                .map_err(classify)?
                .iter()
                .map(|r| {
                    let kind: String = r.get(4);
                    CheckpointRow { kind: r.get(0), epoch: r.get(1), path: r.get(2), metric_value: decode_value(r.get(3), &kind) }
                })
                .collect())
        })
    }

    fn best(&self, metric: &str, goal: Goal, sweep: Option<&str>) -> StoreResult<Option<BestRun>> {
        let (split, name) = metric.split_once('_').unwrap_or(("val", metric));
        let sql = match goal {
            Goal::Maximize => {
                "SELECT s.run, s.max_value, s.max_epoch FROM metric_summary s JOIN runs r ON r.id = s.run
                 WHERE s.split = $1 AND s.name = $2 AND s.max_value IS NOT NULL AND ($3::TEXT IS NULL OR r.sweep = $3)
                 ORDER BY s.max_value DESC, s.run LIMIT 1"
            }
            Goal::Minimize => {
                "SELECT s.run, s.min_value, s.min_epoch FROM metric_summary s JOIN runs r ON r.id = s.run
                 WHERE s.split = $1 AND s.name = $2 AND s.min_value IS NOT NULL AND ($3::TEXT IS NULL OR r.sweep = $3)
                 ORDER BY s.min_value ASC, s.run LIMIT 1"
            }
        };
        let found: Option<(String, f64, i64)> =
            self.transact(|c| Ok(c.query_opt(sql, &[&split, &name, &sweep]).map_err(classify)?.map(|r| (r.get(0), r.get(1), r.get(2)))))?;
        match found {
            None => Ok(None),
            Some((id, value, epoch)) => Ok(Some(BestRun { run: Store::run(self, &id)?, value, epoch })),
        }
    }

    fn record_job(&mut self, job: &JobRow) -> StoreResult<()> {
        self.transact(|c| {
            c.execute(
                "INSERT INTO jobs (sweep, launcher, job_id, workers, script, submitted) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&job.sweep, &job.launcher, &job.job_id, &job.workers, &job.script, &job.submitted],
            )
            .map_err(classify)?;
            Ok(())
        })
    }

    fn jobs(&self, sweep: Option<&str>) -> StoreResult<Vec<JobRow>> {
        self.transact(|c| {
            Ok(c.query(
                "SELECT sweep, launcher, job_id, workers, script, submitted FROM jobs WHERE ($1::TEXT IS NULL OR sweep = $1) ORDER BY submitted",
                &[&sweep],
            )
            .map_err(classify)?
            .iter()
            .map(|r| JobRow { sweep: r.get(0), launcher: r.get(1), job_id: r.get(2), workers: r.get(3), script: r.get(4), submitted: r.get(5) })
            .collect())
        })
    }
}
