//! The PostgreSQL backend of the tracker, for sweeps whose workers run on many machines
//! (`--store postgres://user@host:port/db`). Same contract, same schema meaning as SQLite; the
//! policy and its SQL are in [`super::policy`], and this module holds what is PostgreSQL's own:
//! the connection and its retries, row locks, the claim token, and the list of migrations.
//!
//! Claims use `SELECT ... FOR UPDATE SKIP LOCKED`, so workers on any number of machines never take
//! the same trial and never wait on each other's claims. Every operation is one transaction; if
//! the connection drops (a restart, a failover, a network cut), the operation is retried on a new
//! connection with exponential backoff for up to five minutes. Retrying is safe: epochs are
//! recorded once per (run, epoch, split, name), an end-of-run write that already went through
//! is recognised as done, and a claim whose reply was lost is found again by its token.
//!
//! Migrations are append-only, tracked in the table `sweep_schema`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, GenericClient, NoTls, Statement};

use super::credentials::{self, redact};
use super::policy::{self, Backend, CLAIMED_COLUMNS};
use super::schema::{
    self, CHECKPOINTS, CLAIM_TOKEN, JOBS, METRIC_SUMMARY, METRICS, Migration, PARAMS, POSTGRES_INFEASIBLE_RUNS, POSTGRES_STOPPED_RUNS, REMOVED_RUNS,
    RUN_CONFIGS, RUN_NOTE, RUN_RESULTS_VIEW, RUN_TAGS, RUNS, RUNS_BY_STATUS, SUMMARY_BY_MAX, SUMMARY_BY_MIN, SWEEP_VERSIONS, SWEEPS, TRACKER,
};
use super::sql::{Dialect, Failure, Row, Tx, Value};
use super::{Claim, Reclaim, StoreError, StoreResult, WorkerInfo};

/// PostgreSQL's side of the SQL the policy writes once.
const DIALECT: Dialect =
    Dialect { integer: "BIGINT", real: "DOUBLE PRECISION", without_rowid: "", lock_rows: " FOR UPDATE", skip_locked: " FOR UPDATE SKIP LOCKED" };

/// The schema, one migration per `sweep_schema.version`. Append only.
const MIGRATIONS: &[Migration] = &[
    // 1: everything SQLite reached in its versions 1 to 3, at once.
    &[
        SWEEPS,
        SWEEP_VERSIONS,
        RUNS,
        RUNS_BY_STATUS,
        RUN_CONFIGS,
        PARAMS,
        METRICS,
        CHECKPOINTS,
        METRIC_SUMMARY,
        SUMMARY_BY_MAX,
        SUMMARY_BY_MIN,
        JOBS,
        RUN_RESULTS_VIEW,
    ],
    // 2: the claim token.
    &[CLAIM_TOKEN],
    // 3: the tracker's identity.
    &[TRACKER],
    // 4: tags and notes on trials; removed trials' numbers.
    &[RUN_TAGS, RUN_NOTE, REMOVED_RUNS],
    // 5: trials stopped by hand; requests to a running trial's worker.
    POSTGRES_STOPPED_RUNS,
    // 6: trials found infeasible by a constraint.
    POSTGRES_INFEASIBLE_RUNS,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long an operation of a worker or a supervisor keeps retrying a lost connection.
pub const RETRY_FOR: Duration = Duration::from_secs(300);

/// How long an interactive command (`status`, `ls`, `show`, `best`, `ui`, ...) retries before it
/// says the server is unreachable: a person waits for it, and a restart's blip is shorter.
pub const INTERACTIVE_RETRY_FOR: Duration = Duration::from_secs(8);

pub struct PostgresStore {
    /// The URL without its password: what messages show.
    url: String,
    /// How to connect, the password included (from the URL, `PGPASSWORD` or the password file).
    config: ::postgres::Config,
    /// Why a password file was passed over, to add to a failed login's message.
    password_note: Option<String>,
    session: RefCell<Option<Session>>,
    /// How long an unreachable server is retried ([`RETRY_FOR`] or [`INTERACTIVE_RETRY_FOR`]).
    retry_for: Duration,
    /// Connections re-established after a loss (for tests and logs).
    reconnects: Cell<u64>,
    /// Fault injection for tests: drop the connection right after the next claim commits, as if
    /// its reply had been lost on the way back.
    lose_next_claim_reply: Cell<bool>,
}

/// A live connection and the statements prepared on it (each is parsed once per connection).
struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PostgresStore {
    /// Connects (retrying while the server is unreachable, up to [`RETRY_FOR`]) and applies
    /// missing migrations.
    pub fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(url, RETRY_FOR)
    }

    /// [`PostgresStore::open`], retrying an unreachable server for `retry_for` (there and in
    /// every later operation).
    pub fn open_with(url: &str, retry_for: Duration) -> StoreResult<Self> {
        let location = redact(url);
        let resolved = credentials::resolve(url).map_err(|detail| StoreError::Backend { path: location.clone().into(), detail })?;
        let mut store = Self {
            url: location.clone(),
            config: resolved.config,
            password_note: resolved.note,
            session: RefCell::new(None),
            retry_for,
            reconnects: Cell::new(0),
            lose_next_claim_reply: Cell::new(false),
        };
        let location: PathBuf = location.into();
        store.write(|tx| {
            // One migrator at a time, across machines.
            tx.batch("SELECT pg_advisory_xact_lock(727365)")?;
            tx.batch("CREATE TABLE IF NOT EXISTS sweep_schema (version BIGINT NOT NULL)")?;
            let version = match tx.query_opt("SELECT version FROM sweep_schema", &[])? {
                Some(row) => row.int(0)?,
                None => {
                    tx.batch("INSERT INTO sweep_schema (version) VALUES (0)")?;
                    0
                }
            };
            schema::upgrade(tx, MIGRATIONS, version, MIGRATIONS.len(), |v| format!("UPDATE sweep_schema SET version = {v}"), &location)
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
        StoreError::Backend { path: self.url.clone().into(), detail: detail.to_string() }
    }

    /// Runs `op` on a live connection; on a lost connection, reconnects with backoff and runs it
    /// again (each `op` is one whole transaction, rolled back by the server if cut).
    fn transact<T>(&self, mut op: impl FnMut(&mut Session) -> Result<T, Failure>) -> StoreResult<T> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut last_error = String::new();
        loop {
            let mut slot = self.session.borrow_mut();
            if slot.is_none() {
                match self.config.connect(NoTls) {
                    Ok(client) => {
                        if !last_error.is_empty() {
                            self.reconnects.set(self.reconnects.get() + 1);
                        }
                        *slot = Some(Session { client, statements: HashMap::new() });
                    }
                    Err(e) if is_connection_error(&e) => last_error = e.to_string(),
                    Err(e) => {
                        let note = self.password_note.as_ref().map(|n| format!("; {n}")).unwrap_or_default();
                        return Err(self.backend(format!("cannot connect: {}{note}", describe(&e))));
                    }
                }
            }
            if let Some(session) = slot.as_mut() {
                match op(session) {
                    Ok(v) => return Ok(v),
                    Err(Failure::Store(e)) => return Err(e),
                    Err(Failure::Invalid(detail)) => return Err(self.backend(detail)),
                    Err(Failure::ConnectionLost(e)) => {
                        last_error = e;
                        *slot = None;
                    }
                }
            }
            drop(slot);
            if started.elapsed() > self.retry_for {
                return Err(self.backend(format!("the database has been unreachable for {}s: {last_error}", self.retry_for.as_secs())));
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

/// A driver error as people read it: the server's own message where it sent one (`database "x"
/// does not exist`, not the driver's bare "db error"), else the driver's.
fn describe(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}: {})", db.message(), db.severity(), db.code().code()),
        None => e.to_string(),
    }
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
        return Failure::ConnectionLost(e.to_string());
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

impl Backend for PostgresStore {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn write<T>(&mut self, mut op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T> {
        self.transact(|s| {
            let mut tx = s.client.transaction().map_err(classify)?;
            let value = op(&mut PgTx { client: &mut tx, statements: &mut s.statements })?;
            tx.commit().map_err(classify)?;
            Ok(value)
        })
    }

    /// Reads run in autocommit: each query sees what was committed when it began.
    fn read<T>(&self, mut op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T> {
        self.transact(|s| op(&mut PgTx { client: &mut s.client, statements: &mut s.statements }))
    }

    /// Each claim statement commits by itself (one UPDATE of a row picked `FOR UPDATE SKIP
    /// LOCKED`: atomic on its own, one round trip). The row remembers this call's token, so that
    /// a retry after a lost reply takes back the claim that did commit instead of leaving it to
    /// go stale.
    fn claim_trial(&mut self, sweep: Option<&str>, worker: &WorkerInfo, reclaim: &Reclaim) -> StoreResult<Option<Claim>> {
        let token = claim_token(worker);
        let mut retry = false;
        self.transact(|s| {
            let mut tx = PgTx { client: &mut s.client, statements: &mut s.statements };
            if std::mem::replace(&mut retry, true) {
                let sql = format!("SELECT {CLAIMED_COLUMNS} FROM runs WHERE claim_token = $1 AND status = 'running'");
                if let Some(row) = tx.query_opt(&sql, &[token.as_str().into()])? {
                    return policy::claimed(&row).map(Some);
                }
            }
            let claim = policy::claim(&mut tx, sweep, worker, reclaim, Some(&token))?;
            if claim.is_some() && self.lose_next_claim_reply.replace(false) {
                return Err(Failure::ConnectionLost("the reply to a claim was lost (injected)".into()));
            }
            Ok(claim)
        })
    }
}

/// A connection or one of its transactions, as the policy sees it.
struct PgTx<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> PgTx<'_, C> {
    /// `sql` prepared, once per connection.
    fn prepare(&mut self, sql: &str) -> Result<Statement, Failure> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(classify)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl<C: GenericClient> Tx for PgTx<'_, C> {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Failure> {
        let statement = self.prepare(sql)?;
        self.client.execute(&statement, &bind(&statement, values)?).map_err(classify)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Failure> {
        let statement = self.prepare(sql)?;
        self.client.query(&statement, &bind(&statement, values)?).map_err(classify)?.iter().map(row_of).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), Failure> {
        self.client.batch_execute(sql).map_err(classify)
    }
}

static NULL_INTEGER: Option<i64> = None;
static NULL_REAL: Option<f64> = None;
static NULL_TEXT: Option<&str> = None;

/// `values` as the parameters of `statement`. PostgreSQL checks each parameter's type, a NULL's
/// too, so a NULL is given the type the server inferred for its place.
fn bind<'v>(statement: &Statement, values: &'v [Value]) -> Result<Vec<&'v (dyn ToSql + Sync)>, Failure> {
    values
        .iter()
        .zip(statement.params())
        .map(|(value, ty)| match value {
            Value::Null if *ty == Type::INT8 => Ok(&NULL_INTEGER as &(dyn ToSql + Sync)),
            Value::Null if *ty == Type::FLOAT8 => Ok(&NULL_REAL as &(dyn ToSql + Sync)),
            Value::Null if *ty == Type::TEXT => Ok(&NULL_TEXT as &(dyn ToSql + Sync)),
            Value::Null => Err(Failure::Invalid(format!("no NULL of type {ty}"))),
            Value::Int(v) => Ok(v as &(dyn ToSql + Sync)),
            Value::Real(v) => Ok(v as &(dyn ToSql + Sync)),
            Value::Text(v) => Ok(v as &(dyn ToSql + Sync)),
        })
        .collect()
}

/// A row's values by the types the tracker's columns have.
fn row_of(row: &::postgres::Row) -> Result<Row, Failure> {
    let value = |i: usize, ty: &Type| -> Result<Value, ::postgres::Error> {
        Ok(if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.into()
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.into()
        } else {
            row.try_get::<_, Option<String>>(i)?.into()
        })
    };
    row.columns().iter().enumerate().map(|(i, c)| value(i, c.type_()).map_err(classify)).collect::<Result<_, _>>().map(Row)
}
