//! The tracker's schema, described once for both backends: each table, index and view as one
//! statement, with the dialect's types and table options left as `{integer}`, `{real}` and
//! `{without_rowid}` marks ([`super::sql::Dialect::render`]).
//!
//! Each backend lists its own migrations (its version numbers are recorded in files and
//! databases already out there) as sequences of these pieces, and [`upgrade`] applies them.
//! Migrations are append-only: a released piece is never edited, a change is a new piece.

use std::path::Path;

use super::StoreError;
use super::sql::{Failure, Tx};

/// One schema version: the statements that bring the version before it to this one.
pub(crate) type Migration = &'static [&'static str];

pub(crate) const SWEEPS: &str = "CREATE TABLE sweeps (
    name      TEXT PRIMARY KEY,
    spec      TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    created   {real} NOT NULL,
    updated   {real} NOT NULL
)";

pub(crate) const SWEEP_VERSIONS: &str = "CREATE TABLE sweep_versions (
    sweep     TEXT NOT NULL REFERENCES sweeps(name),
    spec_hash TEXT NOT NULL,
    spec      TEXT NOT NULL,
    created   {real} NOT NULL,
    PRIMARY KEY (sweep, spec_hash)
)";

pub(crate) const RUNS: &str = "CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    sweep        TEXT NOT NULL REFERENCES sweeps(name),
    seq          {integer} NOT NULL,
    params       TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    seed         {integer} NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','pruned','diverged')),
    attempt      {integer} NOT NULL DEFAULT 0,
    crashes      {integer} NOT NULL DEFAULT 0,
    host         TEXT,
    pid          {integer},
    created      {real} NOT NULL,
    started      {real},
    finished     {real},
    heartbeat    {real},
    error        TEXT,
    code_version TEXT,
    UNIQUE (sweep, config_hash),
    UNIQUE (sweep, seq)
)";

/// What claims walk: the lowest-numbered run of a status in a sweep.
pub(crate) const RUNS_BY_STATUS: &str = "CREATE INDEX runs_by_status ON runs (status, sweep, seq)";

/// A sweep's runs in order. SQLite's only: PostgreSQL answers the same from the
/// `UNIQUE (sweep, seq)` constraint's index.
pub(crate) const RUNS_BY_SWEEP: &str = "CREATE INDEX runs_by_sweep ON runs (sweep, seq)";

pub(crate) const RUN_CONFIGS: &str = "CREATE TABLE run_configs (
    run    TEXT PRIMARY KEY REFERENCES runs(id),
    config TEXT NOT NULL
){without_rowid}";

pub(crate) const PARAMS: &str = "CREATE TABLE params (
    run   TEXT NOT NULL REFERENCES runs(id),
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    num   {real},
    PRIMARY KEY (run, name)
){without_rowid}";

pub(crate) const METRICS: &str = "CREATE TABLE metrics (
    run   TEXT NOT NULL REFERENCES runs(id),
    epoch {integer} NOT NULL,
    split TEXT NOT NULL,
    name  TEXT NOT NULL,
    value {real},
    kind  TEXT NOT NULL CHECK (kind IN ('finite','nan','inf','-inf')),
    wall  {real} NOT NULL,
    PRIMARY KEY (run, epoch, split, name)
){without_rowid}";

pub(crate) const CHECKPOINTS: &str = "CREATE TABLE checkpoints (
    run          TEXT NOT NULL REFERENCES runs(id),
    kind         TEXT NOT NULL CHECK (kind IN ('best','last')),
    epoch        {integer} NOT NULL,
    path         TEXT NOT NULL,
    metric_value {real},
    metric_kind  TEXT NOT NULL CHECK (metric_kind IN ('finite','nan','inf','-inf')),
    created      {real} NOT NULL,
    PRIMARY KEY (run, kind)
){without_rowid}";

/// Per (run, split, metric): the final value and the extremes over epochs, kept up to date by
/// `log_epoch` so that listing and `best` never scan the metrics.
pub(crate) const METRIC_SUMMARY: &str = "CREATE TABLE metric_summary (
    run        TEXT NOT NULL REFERENCES runs(id),
    split      TEXT NOT NULL,
    name       TEXT NOT NULL,
    last_epoch {integer} NOT NULL,
    last_value {real},
    last_kind  TEXT NOT NULL,
    min_value  {real},
    min_epoch  {integer},
    max_value  {real},
    max_epoch  {integer},
    PRIMARY KEY (run, split, name)
){without_rowid}";

pub(crate) const SUMMARY_BY_MAX: &str = "CREATE INDEX summary_by_max ON metric_summary (split, name, max_value)";

pub(crate) const SUMMARY_BY_MIN: &str = "CREATE INDEX summary_by_min ON metric_summary (split, name, min_value)";

/// Fills the summaries of a store whose metrics were recorded before the summary table existed.
pub(crate) const SUMMARY_BACKFILL: &str =
    "INSERT INTO metric_summary (run, split, name, last_epoch, last_value, last_kind, min_value, min_epoch, max_value, max_epoch)
    SELECT m.run, m.split, m.name, m.epoch, m.value, m.kind,
           (SELECT MIN(value) FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite'),
           (SELECT epoch FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite' ORDER BY value ASC, epoch ASC LIMIT 1),
           (SELECT MAX(value) FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite'),
           (SELECT epoch FROM metrics x WHERE x.run = m.run AND x.split = m.split AND x.name = m.name AND x.kind = 'finite' ORDER BY value DESC, epoch ASC LIMIT 1)
    FROM metrics m
    WHERE m.epoch = (SELECT MAX(epoch) FROM metrics y WHERE y.run = m.run AND y.split = m.split AND y.name = m.name)";

/// Which claim call took a run, PostgreSQL's only: a worker whose claim committed but whose reply
/// was lost with the connection takes the run back on its retry instead of leaving it to go stale
/// (a SQLite claim cannot lose its reply).
pub(crate) const CLAIM_TOKEN: &str = "ALTER TABLE runs ADD COLUMN claim_token TEXT";

/// Batch jobs (SLURM arrays) submitted for a sweep.
pub(crate) const JOBS: &str = "CREATE TABLE jobs (
    sweep     TEXT NOT NULL REFERENCES sweeps(name),
    launcher  TEXT NOT NULL,
    job_id    TEXT NOT NULL,
    workers   {integer} NOT NULL,
    script    TEXT NOT NULL,
    submitted {real} NOT NULL,
    PRIMARY KEY (launcher, job_id)
)";

/// The tracker's identity, one row drawn when the tracker is created ([`name_tracker`]): trial
/// directories record it, so that a runs directory shared by two trackers is noticed.
pub(crate) const TRACKER: &str = "CREATE TABLE tracker (
    one     {integer} PRIMARY KEY CHECK (one = 1),
    id      TEXT NOT NULL,
    created {real} NOT NULL
)";

/// Tags people put on trials (`sweep tag`): one value per (trial, name).
pub(crate) const RUN_TAGS: &str = "CREATE TABLE run_tags (
    run   TEXT NOT NULL REFERENCES runs(id),
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run, name)
){without_rowid}";

/// A trial's free-text note (`sweep note`).
pub(crate) const RUN_NOTE: &str = "ALTER TABLE runs ADD COLUMN note TEXT";

/// Trials removed with `sweep rm`: what they were, so that their numbers are never given again
/// (an id names one trial for good: in trial directories, exports and MLflow runs).
pub(crate) const REMOVED_RUNS: &str = "CREATE TABLE removed_runs (
    id          TEXT PRIMARY KEY,
    sweep       TEXT NOT NULL REFERENCES sweeps(name),
    seq         {integer} NOT NULL,
    config_hash TEXT NOT NULL,
    status      TEXT NOT NULL,
    removed     {real} NOT NULL
)";

/// Trials stopped by hand (status `stopped`) and what a person asked of a running trial
/// (`request`: `stop` or `prune`, with `request_note`), which its worker reads at its heartbeat.
/// SQLite cannot change a column's CHECK in place, so its `runs` is rebuilt, as its documentation
/// prescribes (a new table, the rows copied, the old one dropped, the new one renamed, with
/// foreign keys off while it happens); PostgreSQL alters it ([`POSTGRES_STOPPED_RUNS`]).
///
/// SQLite's rebuild: every column `runs` had (those of [`RUNS`] and [`RUN_NOTE`]) and the
/// request's, its indexes and the view that reads it made again.
pub(crate) const SQLITE_STOPPED_RUNS: &[&str] = &[
    "CREATE TABLE runs_rebuilt (
    id           TEXT PRIMARY KEY,
    sweep        TEXT NOT NULL REFERENCES sweeps(name),
    seq          {integer} NOT NULL,
    params       TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    seed         {integer} NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','pruned','diverged','stopped')),
    attempt      {integer} NOT NULL DEFAULT 0,
    crashes      {integer} NOT NULL DEFAULT 0,
    host         TEXT,
    pid          {integer},
    created      {real} NOT NULL,
    started      {real},
    finished     {real},
    heartbeat    {real},
    error        TEXT,
    code_version TEXT,
    note         TEXT,
    request      TEXT CHECK (request IN ('stop','prune')),
    request_note TEXT,
    UNIQUE (sweep, config_hash),
    UNIQUE (sweep, seq)
)",
    "INSERT INTO runs_rebuilt (id, sweep, seq, params, config_hash, seed, status, attempt, crashes, host, pid, created, started, finished,
        heartbeat, error, code_version, note)
    SELECT id, sweep, seq, params, config_hash, seed, status, attempt, crashes, host, pid, created, started, finished,
        heartbeat, error, code_version, note FROM runs",
    "DROP VIEW run_results",
    "DROP TABLE runs",
    "ALTER TABLE runs_rebuilt RENAME TO runs",
    RUNS_BY_STATUS,
    RUNS_BY_SWEEP,
    RUN_RESULTS_VIEW,
];

/// PostgreSQL's change for [`SQLITE_STOPPED_RUNS`]: the status check replaced, the request's columns added.
pub(crate) const POSTGRES_STOPPED_RUNS: &[&str] = &[
    "ALTER TABLE runs DROP CONSTRAINT runs_status_check",
    "ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('queued','running','completed','failed','pruned','diverged','stopped'))",
    "ALTER TABLE runs ADD COLUMN request TEXT CHECK (request IN ('stop','prune'))",
    "ALTER TABLE runs ADD COLUMN request_note TEXT",
];

/// Trials found infeasible (status `infeasible`: a `[[constraints]]` bound broken, before training
/// or when they completed). SQLite rebuilds `runs` again as for [`SQLITE_STOPPED_RUNS`], every
/// column kept; PostgreSQL replaces the check ([`POSTGRES_INFEASIBLE_RUNS`]).
pub(crate) const SQLITE_INFEASIBLE_RUNS: &[&str] = &[
    "CREATE TABLE runs_rebuilt (
    id           TEXT PRIMARY KEY,
    sweep        TEXT NOT NULL REFERENCES sweeps(name),
    seq          {integer} NOT NULL,
    params       TEXT NOT NULL,
    config_hash  TEXT NOT NULL,
    seed         {integer} NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','pruned','diverged','stopped','infeasible')),
    attempt      {integer} NOT NULL DEFAULT 0,
    crashes      {integer} NOT NULL DEFAULT 0,
    host         TEXT,
    pid          {integer},
    created      {real} NOT NULL,
    started      {real},
    finished     {real},
    heartbeat    {real},
    error        TEXT,
    code_version TEXT,
    note         TEXT,
    request      TEXT CHECK (request IN ('stop','prune')),
    request_note TEXT,
    UNIQUE (sweep, config_hash),
    UNIQUE (sweep, seq)
)",
    "INSERT INTO runs_rebuilt (id, sweep, seq, params, config_hash, seed, status, attempt, crashes, host, pid, created, started, finished,
        heartbeat, error, code_version, note, request, request_note)
    SELECT id, sweep, seq, params, config_hash, seed, status, attempt, crashes, host, pid, created, started, finished,
        heartbeat, error, code_version, note, request, request_note FROM runs",
    "DROP VIEW run_results",
    "DROP TABLE runs",
    "ALTER TABLE runs_rebuilt RENAME TO runs",
    RUNS_BY_STATUS,
    RUNS_BY_SWEEP,
    RUN_RESULTS_VIEW,
];

/// PostgreSQL's change for [`SQLITE_INFEASIBLE_RUNS`]: the status check replaced.
pub(crate) const POSTGRES_INFEASIBLE_RUNS: &[&str] = &[
    "ALTER TABLE runs DROP CONSTRAINT runs_status_check",
    "ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('queued','running','completed','failed','pruned','diverged','stopped','infeasible'))",
];

/// One row per run with its headline results, for reading the store with other tools.
pub(crate) const RUN_RESULTS_VIEW: &str = "CREATE VIEW run_results AS
    SELECT r.id AS run, r.sweep, r.status, r.params, r.seed, r.attempt,
        (SELECT MAX(last_epoch) FROM metric_summary s WHERE s.run = r.id) AS epochs,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'loss') AS final_val_loss,
        (SELECT min_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'loss') AS best_val_loss,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'dice') AS final_val_dice,
        (SELECT max_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'dice') AS best_val_dice,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'iou') AS final_val_iou,
        (SELECT max_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'iou') AS best_val_iou,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'fg_iou') AS final_val_fg_iou,
        (SELECT max_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'val' AND s.name = 'fg_iou') AS best_val_fg_iou,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'loss') AS final_train_loss,
        (SELECT min_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'loss') AS best_train_loss,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'dice') AS final_train_dice,
        (SELECT max_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'dice') AS best_train_dice,
        (SELECT last_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'iou') AS final_train_iou,
        (SELECT max_value FROM metric_summary s WHERE s.run = r.id AND s.split = 'train' AND s.name = 'iou') AS best_train_iou
    FROM runs r";

/// Brings a store at schema `version` to version `target` of `migrations`, in the caller's
/// transaction; `mark` is the statement that records a version reached. A store written by a
/// newer build (a version past `migrations`) is refused and left alone.
pub(crate) fn upgrade(
    tx: &mut dyn Tx,
    migrations: &[Migration],
    version: i64,
    target: usize,
    mark: impl Fn(i64) -> String,
    location: &Path,
) -> Result<(), Failure> {
    let supported = migrations.len() as i64;
    if version > supported {
        return Err(StoreError::NewerSchema { path: location.to_path_buf(), found: version, supported }.into());
    }
    for (i, pieces) in migrations.iter().enumerate().take(target).skip(version as usize) {
        for piece in *pieces {
            let ddl = tx.dialect().render(piece);
            tx.batch(&ddl)?;
        }
        tx.batch(&mark(i as i64 + 1))?;
    }
    if target == migrations.len() {
        name_tracker(tx)?;
    }
    Ok(())
}

/// Gives the tracker its identity, once: a tracker made before identities existed gets one when
/// it is migrated, and an existing one is never replaced.
fn name_tracker(tx: &mut dyn Tx) -> Result<(), Failure> {
    if tx.query_opt("SELECT id FROM tracker", &[])?.is_some() {
        return Ok(());
    }
    let now = crate::util::now_unix();
    let seed = format!("{}/{}/{now}/{:?}", crate::util::hostname(), std::process::id(), std::time::Instant::now());
    let id = crate::util::sha256_hex(seed.as_bytes())[..16].to_string();
    tx.execute("INSERT INTO tracker (one, id, created) VALUES (1, $1, $2) ON CONFLICT (one) DO NOTHING", &[id.into(), now.into()])?;
    Ok(())
}
