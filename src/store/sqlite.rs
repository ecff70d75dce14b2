//! The SQLite backend of the tracker (bundled SQLite; the default file is `runs/sweep.db`).
//!
//! Concurrency: the database runs in WAL mode with a busy timeout, and every write is an
//! `IMMEDIATE` transaction, so many worker processes can claim and log at once without "database
//! is locked" errors (a writer waits for the lock instead of failing on an upgrade). Durability:
//! `synchronous = NORMAL`, which in WAL mode survives any process crash; a power loss can lose
//! the last commits but never corrupts the file.
//!
//! The tracker's policy and its SQL are in [`super::policy`]; this module holds what is SQLite's
//! own: opening a file (and telling apart the faults a file can have), the transactions, the
//! placeholder numbering, and the list of migrations, tracked with `PRAGMA user_version`: an
//! older file is migrated when opened, a file from a newer build is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::policy::{self, Backend};
use super::schema::{
    self, CHECKPOINTS, JOBS, METRIC_SUMMARY, METRICS, Migration, PARAMS, REMOVED_RUNS, RUN_CONFIGS, RUN_NOTE, RUN_RESULTS_VIEW, RUN_TAGS, RUNS,
    RUNS_BY_STATUS, RUNS_BY_SWEEP, SQLITE_INFEASIBLE_RUNS, SQLITE_STOPPED_RUNS, SUMMARY_BACKFILL, SUMMARY_BY_MAX, SUMMARY_BY_MIN, SWEEP_VERSIONS,
    SWEEPS, TRACKER,
};
use super::sql::{Dialect, Failure, Row, Tx, Value};
use super::{Claim, Reclaim, StoreError, StoreResult, WorkerInfo};

/// SQLite's side of the SQL the policy writes once.
const DIALECT: Dialect = Dialect { integer: "INTEGER", real: "REAL", without_rowid: " WITHOUT ROWID", lock_rows: "", skip_locked: "" };

/// The schema, one migration per `PRAGMA user_version`. Append only: never edit a released
/// migration.
const MIGRATIONS: &[Migration] = &[
    // 1: sweeps, runs, parameters, metrics, checkpoints.
    &[SWEEPS, SWEEP_VERSIONS, RUNS, RUNS_BY_STATUS, RUNS_BY_SWEEP, RUN_CONFIGS, PARAMS, METRICS, CHECKPOINTS],
    // 2: per-run metric summaries, backfilled from the metrics already recorded; the results view.
    &[METRIC_SUMMARY, SUMMARY_BY_MAX, SUMMARY_BY_MIN, SUMMARY_BACKFILL, RUN_RESULTS_VIEW],
    // 3: batch jobs (SLURM arrays) submitted for a sweep.
    &[JOBS],
    // 4: the tracker's identity.
    &[TRACKER],
    // 5: tags and notes on trials; removed trials' numbers.
    &[RUN_TAGS, RUN_NOTE, REMOVED_RUNS],
    // 6: trials stopped by hand; requests to a running trial's worker (runs rebuilt).
    SQLITE_STOPPED_RUNS,
    // 7: trials found infeasible by a constraint (runs rebuilt).
    SQLITE_INFEASIBLE_RUNS,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How many prepared statements a connection keeps: all of the policy's, with room to spare.
const STATEMENT_CACHE: usize = 64;

/// How long a writer waits for another writer's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) a tracker file for reading and writing, migrating it.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if path.is_dir() {
            return Err(StoreError::IsADirectory { path: path.to_path_buf() });
        }
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

    /// Refuses another application's database before anything is written to it (switching to
    /// WAL mode alone rewrites the file's header): the schema is only ever created in an empty
    /// file, and a file with tables is a tracker only if it has the tracker's `sweeps` and `runs`.
    fn refuse_foreign(&self) -> StoreResult<()> {
        let p = &self.path;
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(|e| map_err(p, e))?;
        let tables: Vec<String> =
            stmt.query_map([], |r| r.get(0)).map_err(|e| map_err(p, e))?.collect::<Result<_, _>>().map_err(|e| map_err(p, e))?;
        let is_tracker = ["sweeps", "runs"].iter().all(|t| tables.iter().any(|name| name == t));
        if tables.is_empty() || is_tracker {
            return Ok(());
        }
        Err(StoreError::ForeignDatabase { path: p.clone(), tables })
    }

    /// Opens an existing tracker for queries. A read-only file is fine as long as its schema is
    /// current; an older writable file is migrated first.
    pub fn open_existing(path: &Path) -> StoreResult<Self> {
        if path.is_dir() {
            return Err(StoreError::IsADirectory { path: path.to_path_buf() });
        }
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
        // Room for every statement the policy prepares, so that none is parsed again per call.
        self.conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The first read tells a non-database file apart before anything is written to it.
        self.conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|e| map_err(p, e))?;
        self.refuse_foreign()?;
        if write {
            let mode: String = self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| map_err(p, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend { path: p.clone(), detail: format!("cannot switch to WAL mode (got {mode})") });
            }
            self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| map_err(p, e))?;
        }
        self.conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| map_err(p, e))?;
        // A page cache of up to 64 MiB (SQLite's default is 2 MiB): a sampler reads a row of
        // every trial under the sweep's lock on each ask, and at 10,000 trials the default cache
        // sends half of that read back to the file (measured: 43 ms a read, 30 ms with this).
        self.conn.pragma_update(None, "cache_size", -65_536).map_err(|e| map_err(p, e))?;
        Ok(())
    }

    fn user_version(&self) -> StoreResult<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| map_err(&self.path, e))
    }

    /// Applies the missing migrations, in one transaction with their version bumps.
    fn migrate(&mut self) -> StoreResult<()> {
        self.upgrade_to(MIGRATIONS.len())
    }

    /// Applies the migrations up to `target` in one transaction. A migration that rebuilds a
    /// table runs with foreign keys off (SQLite's rule for a rebuild: dropping the old table would
    /// otherwise delete through its references), and the transaction commits only if every
    /// reference still holds afterwards (`PRAGMA foreign_key_check`).
    fn upgrade_to(&mut self, target: usize) -> StoreResult<()> {
        let path = self.path.clone();
        // (A newer file goes on to the upgrade, which refuses it.)
        if self.user_version()? == target as i64 {
            return Ok(());
        }
        self.conn.pragma_update(None, "foreign_keys", "OFF").map_err(|e| map_err(&path, e))?;
        let upgraded = self.write(|tx| {
            let version = tx.query_one("PRAGMA user_version", &[])?.int(0)?;
            schema::upgrade(tx, MIGRATIONS, version, target, |v| format!("PRAGMA user_version = {v}"), &path)?;
            if let Some(row) = tx.query_opt("PRAGMA foreign_key_check", &[])? {
                let detail = format!("the schema upgrade would break a reference from table {}; nothing was changed", row.text(0)?);
                return Err(StoreError::Backend { path: path.clone(), detail }.into());
            }
            Ok(())
        });
        self.conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| map_err(&path, e))?;
        upgraded
    }

    /// Applies migrations up to `version` only (tests of the migration path).
    #[doc(hidden)]
    pub fn create_at_version(path: &Path, version: usize) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(|e| map_err(path, e))?;
        let mut store = Self { conn, path: path.to_path_buf() };
        store.configure(true)?;
        store.upgrade_to(version)?;
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
}

impl Backend for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// An `IMMEDIATE` transaction: it takes the write lock when it begins (waiting up to the busy
    /// timeout for another writer), so that it never fails half-way on a lock upgrade.
    fn write<T>(&mut self, mut op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T> {
        let path = &self.path;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_err(path, e))?;
        let value = op(&mut SqliteTx { conn: &tx, path }).map_err(|f| f.into_store_error(path))?;
        tx.commit().map_err(|e| map_err(path, e))?;
        Ok(value)
    }

    fn read<T>(&self, mut op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T> {
        op(&mut SqliteTx { conn: &self.conn, path: &self.path }).map_err(|f| f.into_store_error(&self.path))
    }

    /// The claim's pick and update run under the write lock: no other claim can see the run
    /// between them.
    fn claim_trial(&mut self, sweep: Option<&str>, worker: &WorkerInfo, reclaim: &Reclaim) -> StoreResult<Option<Claim>> {
        self.write(|tx| policy::claim(tx, sweep, worker, reclaim, None))
    }
}

/// The connection (in a transaction or not) as the policy sees it.
struct SqliteTx<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl SqliteTx<'_> {
    fn fail(&self, e: rusqlite::Error) -> Failure {
        Failure::Store(map_err(self.path, e))
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> &'static Dialect {
        &DIALECT
    }

    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, Failure> {
        let mut stmt = self.conn.prepare_cached(&numbered(sql)).map_err(|e| self.fail(e))?;
        let n = stmt.execute(rusqlite::params_from_iter(values)).map_err(|e| self.fail(e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, Failure> {
        let mut stmt = self.conn.prepare_cached(&numbered(sql)).map_err(|e| self.fail(e))?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(values)).map_err(|e| self.fail(e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.fail(e))? {
            let row = (0..width).map(|i| r.get_ref(i).map_err(|e| self.fail(e)).and_then(value_of)).collect::<Result<_, _>>()?;
            out.push(Row(row));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), Failure> {
        self.conn.execute_batch(sql).map_err(|e| self.fail(e))
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::from(rusqlite::types::Null),
            Value::Int(v) => ToSqlOutput::from(*v),
            Value::Real(v) => ToSqlOutput::from(*v),
            Value::Text(v) => ToSqlOutput::from(v.as_str()),
        })
    }
}

fn value_of(v: ValueRef<'_>) -> Result<Value, Failure> {
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Real(r) => Ok(Value::Real(r)),
        ValueRef::Text(t) => Ok(Value::Text(String::from_utf8_lossy(t).into_owned())),
        ValueRef::Blob(_) => Err(Failure::Invalid("a binary value where the tracker keeps none".into())),
    }
}

/// `sql` with its `$N` placeholders written `?N`: SQLite reads `$N` as a parameter *named* "$N"
/// and numbers those by first appearance, not by N.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        out.push(if rest.starts_with(|c: char| c.is_ascii_digit()) { '?' } else { '$' });
    }
    out.push_str(rest);
    out
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
    fn placeholders_are_renumbered_for_sqlite() {
        assert_eq!(numbered("SELECT $2, '$', $10 WHERE x = $1"), "SELECT ?2, '$', ?10 WHERE x = ?1");
    }

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
}
