//! The tracker's policy, written once for every backend: what each [`Store`] operation reads and
//! writes, the lease rule, the metric summary, the crash rule and its message, how `ask` adds a
//! trial under the sweep's lock, and how `best` picks. A backend implements [`Backend`] (its
//! transactions, its locking, its connection) and gets [`Store`] from here; each statement below
//! is the same text on both engines (see [`super::sql`] for the few named differences).

use std::collections::{BTreeMap, HashSet};

use super::read::{Detail, TrialData, checkpoint_row, metric_row, read_runs, trial, trial_data, unknown_trial};
use super::sql::{Conditions, Failure, Row, Tx, Value, decode_value, encode_value};
use super::{
    BestTrial, CheckpointRow, Claim, EnqueueReport, EpochLog, Extension, Extremes, HistoryView, Intervened, Intervention, JobRow, KnownTrial, Lease,
    MetricRow, NewTrial, PeerValues, Reclaim, Registering, Store, StoreError, StoreResult, SweepInfo, SweepRegistration, TrialFilter, TrialHistory,
    TrialRow, TrialStatus, WorkerInfo, code_version, plan_registration, validate_sweep_name, validate_tag_name,
};
use crate::config::Goal;
use crate::config::TrialConfig;
use crate::util::{now_unix, sha256_hex};

/// What a backend provides for the policy to run on.
pub(crate) trait Backend: Send {
    /// Where the store lives, for messages.
    fn location(&self) -> String;

    /// Runs `op` as one write transaction and commits what it did, or nothing if it fails.
    fn write<T>(&mut self, op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T>;

    /// Runs `op`, which only reads.
    fn read<T>(&self, op: impl FnMut(&mut dyn Tx) -> Result<T, Failure>) -> StoreResult<T>;

    /// [`Store::claim`]: [`claim`] under the backend's own locking and recovery.
    fn claim_trial(&mut self, sweep: Option<&str>, worker: &WorkerInfo, reclaim: &Reclaim) -> StoreResult<Option<Claim>>;
}

impl<B: Backend> Store for B {
    fn location(&self) -> String {
        Backend::location(self)
    }

    fn tracker_id(&self) -> StoreResult<String> {
        self.read(|tx| tx.query_one("SELECT id FROM tracker", &[])?.text(0))
    }

    fn register_sweep(&mut self, name: &str, spec: &str) -> StoreResult<SweepRegistration> {
        validate_sweep_name(name)?;
        self.write(|tx| register_sweep(tx, name, spec))
    }

    fn enqueue(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport> {
        validate_sweep_name(sweep)?;
        self.write(|tx| enqueue(tx, sweep, trials, true))
    }

    fn extend(&mut self, sweep: &str, trials: &[NewTrial]) -> StoreResult<EnqueueReport> {
        validate_sweep_name(sweep)?;
        self.write(|tx| enqueue(tx, sweep, trials, false))
    }

    fn requeue_failed(&mut self, sweep: &str) -> StoreResult<usize> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE runs SET status = 'queued', finished = NULL, host = NULL, pid = NULL, crashes = 0 WHERE sweep = $1 AND status = 'failed'",
                &[sweep.into()],
            )?;
            Ok(n as usize)
        })
    }

    fn claim(&mut self, sweep: Option<&str>, worker: &WorkerInfo, reclaim: &Reclaim) -> StoreResult<Option<Claim>> {
        self.claim_trial(sweep, worker, reclaim)
    }

    fn heartbeat(&mut self, lease: &Lease) -> StoreResult<Option<Intervention>> {
        self.write(|tx| {
            let values: [Value; 3] = [lease.trial.as_str().into(), lease.attempt.into(), now_unix().into()];
            let update = "UPDATE runs SET heartbeat = $3 WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING request, request_note";
            match tx.query_opt(update, &values)? {
                None => Err(lease_lost(lease)),
                Some(row) => Ok(match row.opt_text(0)?.as_deref() {
                    Some("stop") => Some(Intervention::Stop),
                    Some("prune") => Some(Intervention::Prune { note: row.opt_text(1)?.unwrap_or_default() }),
                    _ => None,
                }),
            }
        })
    }

    fn log_epoch(&mut self, lease: &Lease, epoch: &EpochLog) -> StoreResult<()> {
        self.write(|tx| log_epoch(tx, lease, epoch))
    }

    fn finish(&mut self, lease: &Lease, status: TrialStatus, error: Option<&str>) -> StoreResult<()> {
        self.write(|tx| {
            let values: [Value; 5] = [lease.trial.as_str().into(), lease.attempt.into(), status.as_str().into(), now_unix().into(), error.into()];
            let update = "UPDATE runs SET status = $3, finished = $4, heartbeat = $4, error = $5, request = NULL, request_note = NULL
                WHERE id = $1 AND attempt = $2 AND status = 'running'";
            end_trial(tx, lease, status, update, &values)
        })
    }

    fn release(&mut self, lease: &Lease) -> StoreResult<()> {
        self.write(|tx| {
            let values: [Value; 2] = [lease.trial.as_str().into(), lease.attempt.into()];
            let update = "UPDATE runs SET status = 'queued', host = NULL, pid = NULL WHERE id = $1 AND attempt = $2 AND status = 'running'";
            end_trial(tx, lease, TrialStatus::Queued, update, &values)
        })
    }

    fn record_crash(&mut self, lease: &Lease, message: &str, max_attempts: i64) -> StoreResult<TrialStatus> {
        self.write(|tx| record_crash(tx, lease, message, max_attempts))
    }

    fn sweeps(&self) -> StoreResult<Vec<SweepInfo>> {
        self.read(sweeps)
    }

    fn trials(&self, filter: &TrialFilter) -> StoreResult<Vec<TrialRow>> {
        self.read(|tx| read_runs(tx, filter, None))
    }

    fn trial(&self, id: &str) -> StoreResult<TrialRow> {
        self.read(|tx| trial(tx, id))
    }

    fn trial_data(&self, filter: &TrialFilter, detail: Detail) -> StoreResult<Vec<TrialData>> {
        self.read(|tx| trial_data(tx, filter, None, detail))
    }

    fn trial_data_of(&self, id: &str, detail: Detail) -> StoreResult<TrialData> {
        self.read(|tx| match trial_data(tx, &TrialFilter::default(), Some(id), detail)?.pop() {
            Some(trial) => Ok(trial),
            None => Err(unknown_trial(tx, id)),
        })
    }

    fn trial_config(&self, id: &str) -> StoreResult<TrialConfig> {
        self.read(|tx| {
            let Some(row) = tx.query_opt("SELECT config FROM run_configs WHERE run = $1", &[id.into()])? else {
                return Err(unknown_trial(tx, id));
            };
            serde_json::from_str(&row.text(0)?).map_err(|e| Failure::Invalid(format!("run {id}: unreadable config: {e}")))
        })
    }

    fn metrics(&self, id: &str) -> StoreResult<Vec<MetricRow>> {
        self.read(|tx| {
            let rows = tx.query(
                "SELECT epoch, split, name, value, kind, wall FROM metrics WHERE run = $1 AND split <> 'cost' ORDER BY epoch, split, name",
                &[id.into()],
            )?;
            rows.iter().map(|r| metric_row(r, 0)).collect()
        })
    }

    fn checkpoints(&self, id: &str) -> StoreResult<Vec<CheckpointRow>> {
        self.read(|tx| {
            let rows = tx.query("SELECT kind, epoch, path, metric_value, metric_kind FROM checkpoints WHERE run = $1 ORDER BY kind", &[id.into()])?;
            rows.iter().map(|r| checkpoint_row(r, 0)).collect()
        })
    }

    fn history(&self, sweep: &str, metric: &str, view: HistoryView) -> StoreResult<Vec<TrialHistory>> {
        self.read(|tx| {
            let trials = history(tx, sweep, metric, view)?;
            // Only an empty answer needs the second query that tells "no trials yet" from "no
            // such sweep".
            if trials.is_empty() && tx.query_opt("SELECT name FROM sweeps WHERE name = $1", &[sweep.into()])?.is_none() {
                return Err(unknown_sweep(sweep));
            }
            Ok(trials)
        })
    }

    fn extremes(&self, sweep: &str, metric: &str) -> StoreResult<BTreeMap<i64, Extremes>> {
        validate_sweep_name(sweep)?;
        self.read(|tx| Ok(extremes_of(tx, sweep, metric)?.into_iter().collect()))
    }

    fn ask(
        &mut self,
        sweep: &str,
        metric: &str,
        others: &[&str],
        cap: Option<usize>,
        sample: &mut dyn FnMut(Vec<TrialHistory>) -> Option<NewTrial>,
    ) -> StoreResult<Option<String>> {
        validate_sweep_name(sweep)?;
        self.write(|tx| {
            lock_sweep(tx, sweep)?;
            let mut trials = history(tx, sweep, metric, HistoryView::Summary)?;
            for other in others {
                extremes(tx, sweep, other, &mut trials)?;
            }
            if cap.is_some_and(|cap| trials.len() >= cap) {
                return Ok(None);
            }
            let Some(trial) = sample(trials) else { return Ok(None) };
            Ok(add_trials(tx, sweep, std::slice::from_ref(&trial))?.added.pop())
        })
    }

    fn best(&self, metric: &str, goal: Goal, sweep: Option<&str>) -> StoreResult<Option<BestTrial>> {
        self.read(|tx| best(tx, metric, goal, sweep))
    }

    fn record_job(&mut self, job: &JobRow) -> StoreResult<()> {
        // Recording a job twice is harmless: a write whose reply was lost is retried.
        self.write(|tx| {
            let values: [Value; 6] = [
                job.sweep.as_str().into(),
                job.launcher.as_str().into(),
                job.job_id.as_str().into(),
                job.workers.into(),
                job.script.as_str().into(),
                job.submitted.into(),
            ];
            tx.execute(
                "INSERT INTO jobs (sweep, launcher, job_id, workers, script, submitted) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (launcher, job_id) DO NOTHING",
                &values,
            )?;
            Ok(())
        })
    }

    fn jobs(&self, sweep: Option<&str>) -> StoreResult<Vec<JobRow>> {
        self.read(|tx| {
            let mut filter = Conditions::after(Vec::new());
            filter.equal("sweep", sweep);
            let sql = format!("SELECT sweep, launcher, job_id, workers, script, submitted FROM jobs {} ORDER BY submitted", filter.sql());
            let rows = tx.query(&sql, &filter.values)?;
            rows.iter()
                .map(|r| {
                    Ok(JobRow {
                        sweep: r.text(0)?,
                        launcher: r.text(1)?,
                        job_id: r.text(2)?,
                        workers: r.int(3)?,
                        script: r.text(4)?,
                        submitted: r.real(5)?,
                    })
                })
                .collect()
        })
    }

    fn tag(&mut self, id: &str, changes: &[(String, Option<String>)]) -> StoreResult<()> {
        for (name, _) in changes {
            validate_tag_name(name)?;
        }
        self.write(|tx| {
            locked_status(tx, id)?;
            for (name, value) in changes {
                match value {
                    Some(value) => tx.execute(
                        "INSERT INTO run_tags (run, name, value) VALUES ($1, $2, $3) ON CONFLICT (run, name) DO UPDATE SET value = excluded.value",
                        &[id.into(), name.as_str().into(), value.as_str().into()],
                    )?,
                    None => tx.execute("DELETE FROM run_tags WHERE run = $1 AND name = $2", &[id.into(), name.as_str().into()])?,
                };
            }
            Ok(())
        })
    }

    fn intervene(&mut self, id: &str, intervention: &Intervention) -> StoreResult<Intervened> {
        self.write(|tx| intervene(tx, id, intervention))
    }

    fn resume(&mut self, id: &str) -> StoreResult<()> {
        self.write(|tx| {
            let status = locked_status(tx, id)?;
            if status != TrialStatus::Stopped {
                return Err(StoreError::CannotIntervene { id: id.to_string(), status, action: "resumed" }.into());
            }
            tx.execute(
                "UPDATE runs SET status = 'queued', finished = NULL, error = NULL, host = NULL, pid = NULL, request = NULL, request_note = NULL
                WHERE id = $1",
                &[id.into()],
            )?;
            Ok(())
        })
    }

    fn set_note(&mut self, id: &str, note: Option<&str>) -> StoreResult<()> {
        let note = note.filter(|n| !n.is_empty());
        self.write(|tx| {
            locked_status(tx, id)?;
            tx.execute("UPDATE runs SET note = $2 WHERE id = $1", &[id.into(), note.into()])?;
            Ok(())
        })
    }

    fn remove(&mut self, ids: &[String]) -> StoreResult<Vec<TrialRow>> {
        self.write(|tx| remove(tx, ids))
    }

    fn remove_sweep(&mut self, name: &str) -> StoreResult<Vec<TrialRow>> {
        self.write(|tx| remove_sweep(tx, name))
    }
}

fn lease_lost(lease: &Lease) -> Failure {
    StoreError::LeaseLost { run: lease.trial.clone(), attempt: lease.attempt }.into()
}

fn register_sweep(tx: &mut dyn Tx, name: &str, spec: &str) -> Result<SweepRegistration, Failure> {
    let hash = sha256_hex(spec.as_bytes());
    let now = now_unix();
    let values: [Value; 4] = [name.into(), spec.into(), hash.as_str().into(), now.into()];
    let inserted = tx
        .execute("INSERT INTO sweeps (name, spec, spec_hash, created, updated) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING", &values)?
        == 1;
    let result = if inserted {
        SweepRegistration::New
    } else {
        // Locked, so that a concurrent registration cannot change the spec between this read
        // and the update.
        let sql = format!("SELECT spec_hash FROM sweeps WHERE name = $1{}", tx.dialect().lock_rows);
        let previous_hash = tx.query_one(&sql, &[name.into()])?.text(0)?;
        if previous_hash == hash {
            SweepRegistration::Unchanged
        } else {
            tx.execute("UPDATE sweeps SET spec = $2, spec_hash = $3, updated = $4 WHERE name = $1", &values)?;
            SweepRegistration::SpecChanged { previous_hash }
        }
    };
    tx.execute("INSERT INTO sweep_versions (sweep, spec, spec_hash, created) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", &values)?;
    Ok(result)
}

fn unknown_sweep(sweep: &str) -> Failure {
    StoreError::UnknownSweep { name: sweep.to_string(), suggestions: Vec::new() }.into()
}

/// Takes the sweep's lock for the rest of the transaction (on SQLite the write transaction
/// already holds the whole file). It serialises everything that adds trials to a sweep, so that
/// run numbers stay dense and an asker sees the trials added before it.
fn lock_sweep(tx: &mut dyn Tx, sweep: &str) -> Result<(), Failure> {
    let sql = format!("SELECT name FROM sweeps WHERE name = $1{}", tx.dialect().lock_rows);
    match tx.query_opt(&sql, &[sweep.into()])? {
        Some(_) => Ok(()),
        None => Err(unknown_sweep(sweep)),
    }
}

/// The trial's status, its row locked for the rest of the transaction (so that a concurrent
/// `remove` waits), or the error for an unknown one.
fn locked_status(tx: &mut dyn Tx, id: &str) -> Result<TrialStatus, Failure> {
    let sql = format!("SELECT status FROM runs WHERE id = $1{}", tx.dialect().lock_rows);
    match tx.query_opt(&sql, &[id.into()])? {
        Some(row) => Ok(TrialStatus::parse(&row.text(0)?).unwrap_or(TrialStatus::Failed)),
        None => Err(unknown_trial(tx, id)),
    }
}

/// [`Store::intervene`]: a running trial gets the request for its worker; a queued one (or a
/// stopped one being pruned) ends at once, as its worker would have ended it.
fn intervene(tx: &mut dyn Tx, id: &str, intervention: &Intervention) -> Result<Intervened, Failure> {
    let status = locked_status(tx, id)?;
    let ends_as = intervention.ends_as();
    match (status, intervention) {
        (TrialStatus::Running, _) => {
            let note = match intervention {
                Intervention::Prune { note } => Some(note.as_str()),
                Intervention::Stop => None,
            };
            tx.execute("UPDATE runs SET request = $2, request_note = $3 WHERE id = $1", &[id.into(), intervention.verb().into(), note.into()])?;
            return Ok(Intervened::Asked);
        }
        (TrialStatus::Queued, _) | (TrialStatus::Stopped, Intervention::Prune { .. }) => {}
        _ => return Err(StoreError::CannotIntervene { id: id.to_string(), status, action: ends_as.as_str() }.into()),
    }
    let values: [Value; 4] = [id.into(), ends_as.as_str().into(), now_unix().into(), intervention.reason(id).into()];
    tx.execute("UPDATE runs SET status = $2, finished = $3, error = $4, request = NULL, request_note = NULL WHERE id = $1", &values)?;
    Ok(Intervened::Now(ends_as))
}

/// The tables that hold a trial's records, each keyed by its column `run`; emptied before the
/// trial's row, which they reference.
const TRIAL_TABLES: [&str; 6] = ["run_tags", "metric_summary", "metrics", "checkpoints", "params", "run_configs"];

/// [`Store::remove`]: every trial is locked and read first, and nothing is deleted unless all of
/// them exist and none is running; each leaves its number in `removed_runs`.
fn remove(tx: &mut dyn Tx, ids: &[String]) -> Result<Vec<TrialRow>, Failure> {
    let mut rows: Vec<TrialRow> = Vec::new();
    for id in ids {
        if rows.iter().any(|r| &r.id == id) {
            continue;
        }
        locked_status(tx, id)?;
        rows.push(trial(tx, id)?);
    }
    let running: Vec<String> = rows.iter().filter(|r| r.status == TrialStatus::Running).map(|r| r.id.clone()).collect();
    if !running.is_empty() {
        return Err(StoreError::Running { ids: running }.into());
    }
    let now = now_unix();
    for r in &rows {
        let id = r.id.as_str();
        let values: [Value; 6] =
            [id.into(), r.sweep.as_str().into(), r.seq.into(), r.config_hash.as_str().into(), r.status.as_str().into(), now.into()];
        tx.execute("INSERT INTO removed_runs (id, sweep, seq, config_hash, status, removed) VALUES ($1, $2, $3, $4, $5, $6)", &values)?;
        for table in TRIAL_TABLES {
            tx.execute(&format!("DELETE FROM {table} WHERE run = $1"), &[id.into()])?;
        }
        tx.execute("DELETE FROM runs WHERE id = $1", &[id.into()])?;
    }
    Ok(rows)
}

/// [`Store::remove_sweep`]: the sweep's row is locked (no trial can be added meanwhile), then its
/// trials are removed as [`remove`] does, and every row that names the sweep goes: its removed
/// trials' numbers, its jobs, its file's versions, the sweep itself.
fn remove_sweep(tx: &mut dyn Tx, name: &str) -> Result<Vec<TrialRow>, Failure> {
    lock_sweep(tx, name)?;
    let ids: Vec<String> =
        tx.query("SELECT id FROM runs WHERE sweep = $1 ORDER BY seq", &[name.into()])?.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?;
    let rows = remove(tx, &ids)?;
    for table in ["removed_runs", "jobs", "sweep_versions"] {
        tx.execute(&format!("DELETE FROM {table} WHERE sweep = $1"), &[name.into()])?;
    }
    tx.execute("DELETE FROM sweeps WHERE name = $1", &[name.into()])?;
    Ok(rows)
}

/// Registers `trials` by [`plan_registration`]: continues the trials whose epoch target rises,
/// and (with `add`) adds the new ones; the rest are known.
fn enqueue(tx: &mut dyn Tx, sweep: &str, trials: &[NewTrial], add: bool) -> Result<EnqueueReport, Failure> {
    lock_sweep(tx, sweep)?;
    let hashes: HashSet<String> =
        tx.query("SELECT config_hash FROM runs WHERE sweep = $1", &[sweep.into()])?.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?;
    // Every config is read only when the file asks for one that the sweep does not have.
    if trials.iter().all(|t| hashes.contains(&t.config.hash())) {
        return Ok(EnqueueReport { existing: trials.len(), ..EnqueueReport::default() });
    }
    let known = known_trials(tx, sweep)?;
    let mut report = EnqueueReport::default();
    let mut new = Vec::new();
    for (trial, plan) in trials.iter().zip(plan_registration(trials, &known)) {
        match plan {
            Registering::New => new.push(trial.clone()),
            Registering::Known(_) => report.existing += 1,
            Registering::Extend(extension) => {
                continue_trial(tx, &extension, &trial.config)?;
                report.existing += 1;
                report.extended.push(extension);
            }
            Registering::Keep(kept) => {
                report.existing += 1;
                report.kept.push(kept);
            }
        }
    }
    if add {
        let added = add_trials(tx, sweep, &new)?;
        report.existing += added.existing;
        report.added = added.added;
    }
    Ok(report)
}

/// The sweep's trials with their configs, for [`plan_registration`].
fn known_trials(tx: &mut dyn Tx, sweep: &str) -> Result<Vec<KnownTrial>, Failure> {
    let rows = tx.query(
        "SELECT r.id, r.seq, r.status, r.config_hash, c.config FROM runs r JOIN run_configs c ON c.run = r.id WHERE r.sweep = $1 ORDER BY r.seq",
        &[sweep.into()],
    )?;
    rows.iter()
        .map(|r| {
            let id = r.text(0)?;
            let config = serde_json::from_str(&r.text(4)?).map_err(|e| Failure::Invalid(format!("run {id} has an unreadable config: {e}")))?;
            let status = TrialStatus::parse(&r.text(2)?).unwrap_or(TrialStatus::Failed);
            Ok(KnownTrial { id, seq: r.int(1)?, status, config_hash: r.text(3)?, config })
        })
        .collect()
}

/// Gives a trial its new epoch target: its config and hash become `config`'s, and a completed
/// trial goes back to the queue (it keeps its id, attempts, epochs and metrics).
fn continue_trial(tx: &mut dyn Tx, extension: &Extension, config: &TrialConfig) -> Result<(), Failure> {
    let id = extension.id.as_str();
    tx.execute(
        "UPDATE runs SET config_hash = $2,
            status = CASE WHEN status = 'completed' THEN 'queued' ELSE status END,
            finished = CASE WHEN status = 'completed' THEN NULL ELSE finished END,
            host = CASE WHEN status = 'completed' THEN NULL ELSE host END,
            pid = CASE WHEN status = 'completed' THEN NULL ELSE pid END
         WHERE id = $1",
        &[id.into(), config.hash().into()],
    )?;
    tx.execute("UPDATE run_configs SET config = $2 WHERE run = $1", &[id.into(), config.canonical_json().into()])?;
    Ok(())
}

/// Adds the trials whose config the sweep does not have yet, numbered after its last run (a
/// removed one included: numbers are never given twice); the caller holds the sweep's lock
/// ([`lock_sweep`]).
fn add_trials(tx: &mut dyn Tx, sweep: &str, trials: &[NewTrial]) -> Result<EnqueueReport, Failure> {
    let now = now_unix();
    let version = code_version();
    let mut seq = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0) FROM (SELECT seq FROM runs WHERE sweep = $1 UNION ALL SELECT seq FROM removed_runs WHERE sweep = $1) AS s",
            &[sweep.into()],
        )?
        .int(0)?;
    let mut report = EnqueueReport::default();
    for trial in trials {
        let id = format!("{sweep}-{}", seq + 1);
        let params = serde_json::to_string(&trial.params).expect("params serialise");
        let run: [Value; 8] = [
            id.as_str().into(),
            sweep.into(),
            (seq + 1).into(),
            params.into(),
            trial.config.hash().into(),
            (trial.config.train.seed as i64).into(),
            now.into(),
            version.as_str().into(),
        ];
        // A config the sweep already has is skipped (its hash is unique within the sweep).
        let inserted = tx.execute(
            "INSERT INTO runs (id, sweep, seq, params, config_hash, seed, status, attempt, created, code_version)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $8) ON CONFLICT (sweep, config_hash) DO NOTHING",
            &run,
        )?;
        if inserted == 0 {
            report.existing += 1;
            continue;
        }
        seq += 1;
        tx.execute("INSERT INTO run_configs (run, config) VALUES ($1, $2)", &[id.as_str().into(), trial.config.canonical_json().into()])?;
        for (name, value) in &trial.params {
            tx.execute(
                "INSERT INTO params (run, name, value, num) VALUES ($1, $2, $3, $4)",
                &[id.as_str().into(), name.as_str().into(), value.to_string().into(), value.as_f64().into()],
            )?;
        }
        report.added.push(id);
    }
    Ok(report)
}

/// What a claim reads back from the claimed row, in the order [`claimed`] reads it.
pub(crate) const CLAIMED_COLUMNS: &str = "id, attempt, sweep, params, (SELECT config FROM run_configs c WHERE c.run = runs.id)";

/// Claims the next run in `tx`: a run whose worker died ([`abandoned`]) before new work, then
/// the lowest-numbered queued one (across sweeps, the oldest sweep's). Taking over an abandoned
/// run counts a crash ([`crash_rule`]): at `max_attempts` the run is failed instead, and the next
/// one is looked at. Each take is one UPDATE of one row, conditioned on the row being as it was
/// read (its status and attempt), so that concurrent claimers never take the same attempt; the
/// queued pick is chosen by a subquery that walks the (status, sweep, seq) index. Where the
/// backend keeps a claim `token`, it is written on the row, so that a retry can find a claim
/// whose reply was lost.
pub(crate) fn claim(
    tx: &mut dyn Tx,
    sweep: Option<&str>,
    worker: &WorkerInfo,
    reclaim: &Reclaim,
    token: Option<&str>,
) -> Result<Option<Claim>, Failure> {
    let now = now_unix();
    let mut values: Vec<Value> = vec![worker.host.as_str().into(), i64::from(worker.pid).into(), now.into()];
    if let Some(token) = token {
        values.push(token.into());
    }
    for dead in abandoned(tx, sweep, reclaim, now)? {
        let crashes = dead.crashes + 1;
        let (status, error) = crash_rule(&dead.cause, crashes, reclaim.max_attempts);
        // Only as the row was read: a concurrent claimer may have taken it since.
        let unchanged = "id = $1 AND attempt = $2 AND status = 'running'";
        let row: [Value; 3] = [dead.id.as_str().into(), dead.attempt.into(), crashes.into()];
        if status == TrialStatus::Failed {
            let sql =
                format!("UPDATE runs SET status = 'failed', error = $4, finished = $5, crashes = $3, host = NULL, pid = NULL WHERE {unchanged}");
            tx.execute(&sql, &[row[0].clone(), row[1].clone(), row[2].clone(), error.into(), now.into()])?;
            continue;
        }
        let mut take = Conditions::after(row.to_vec());
        let worker_values: Vec<String> = values.iter().map(|v| take.bind(v.clone())).collect();
        let set = claim_set(&worker_values);
        let sql = format!("UPDATE runs SET {set}, crashes = $3 WHERE {unchanged} RETURNING {CLAIMED_COLUMNS}");
        if let Some(row) = tx.query_opt(&sql, &take.values)? {
            return claimed(&row).map(Some);
        }
    }
    // Trials put first (tagged `enqueued`) before the others, then in order.
    let order = if sweep.is_some() { "seq" } else { "created, seq" };
    let order = format!("id NOT IN (SELECT run FROM run_tags WHERE name = 'enqueued'), {order}");
    let set = claim_set(&["$1", "$2", "$3", "$4"].map(String::from)[..values.len()]);
    let mut pick = Conditions::after(values);
    pick.and("status = 'queued'");
    pick.equal("sweep", sweep);
    let sql = format!(
        "UPDATE runs SET {set} WHERE id = (SELECT id FROM runs {} ORDER BY {order} LIMIT 1{}) RETURNING {CLAIMED_COLUMNS}",
        pick.sql(),
        tx.dialect().skip_locked
    );
    tx.query_opt(&sql, &pick.values)?.map(|row| claimed(&row)).transpose()
}

/// What a claim sets on the row it takes: the worker's host, pid and the time at the given
/// placeholders, and the claim token where a fourth is given.
fn claim_set(placeholders: &[String]) -> String {
    let (host, pid, now) = (&placeholders[0], &placeholders[1], &placeholders[2]);
    let mut set = format!(
        "status = 'running', attempt = attempt + 1, host = {host}, pid = {pid}, heartbeat = {now}, started = COALESCE(started, {now}), finished = NULL"
    );
    if let Some(token) = placeholders.get(3) {
        set.push_str(&format!(", claim_token = {token}"));
    }
    set
}

/// A `running` run whose worker is dead, as read.
struct Abandoned {
    id: String,
    attempt: i64,
    crashes: i64,
    /// How its worker was found dead, for the run's error.
    cause: String,
}

/// The `running` runs (of `sweep`) whose worker died, in claim order: its heartbeat is older than
/// `stale_after` seconds (a worker on any machine), or it ran on this host and its pid is gone
/// (which only this host can tell, and tells at once).
fn abandoned(tx: &mut dyn Tx, sweep: Option<&str>, reclaim: &Reclaim, now: f64) -> Result<Vec<Abandoned>, Failure> {
    let here = crate::util::hostname();
    let mut pick = Conditions::after(Vec::new());
    let (cutoff, host) = (pick.bind(now - reclaim.stale_after), pick.bind(here.as_str()));
    pick.and(format!("status = 'running' AND (heartbeat IS NULL OR heartbeat < {cutoff} OR host = {host})"));
    pick.equal("sweep", sweep);
    // Trials put first (tagged `enqueued`) before the others, then in order.
    let order = if sweep.is_some() { "seq" } else { "created, seq" };
    let order = format!("id NOT IN (SELECT run FROM run_tags WHERE name = 'enqueued'), {order}");
    let sql = format!("SELECT id, attempt, crashes, host, pid, heartbeat FROM runs {} ORDER BY {order}", pick.sql());
    let mut dead = Vec::new();
    for r in tx.query(&sql, &pick.values)? {
        let (host, pid, heartbeat) = (r.opt_text(3)?.unwrap_or_default(), r.opt_int(4)?, r.opt_real(5)?);
        let cause = if heartbeat.is_none_or(|h| h < now - reclaim.stale_after) {
            format!("its worker (pid {} on {host}) sent no heartbeat for {}s", pid.unwrap_or(0), fmt_seconds(reclaim.stale_after))
        } else if host == here && pid.is_some_and(process_gone) {
            format!("its worker process (pid {} on {host}) is gone", pid.unwrap_or(0))
        } else {
            continue;
        };
        dead.push(Abandoned { id: r.text(0)?, attempt: r.int(1)?, crashes: r.int(2)?, cause });
    }
    Ok(dead)
}

fn fmt_seconds(s: f64) -> String {
    if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
}

/// Whether no process `pid` exists on this host (a pid this process may not signal exists).
fn process_gone(pid: i64) -> bool {
    pid > 0 && u32::try_from(pid).map_or(true, |p| !crate::util::process_alive(p))
}

/// The claim a row of [`CLAIMED_COLUMNS`] describes.
pub(crate) fn claimed(row: &Row) -> Result<Claim, Failure> {
    let (run, attempt) = (row.text(0)?, row.int(1)?);
    let config = serde_json::from_str(&row.text(4)?).map_err(|e| Failure::Invalid(format!("run {run} has an unreadable config: {e}")))?;
    Ok(Claim {
        sweep: row.text(2)?,
        config,
        params: serde_json::from_str(&row.text(3)?).unwrap_or_default(),
        resumed: attempt > 1,
        lease: Lease { trial: run, attempt },
    })
}

/// Keeps a metric's summary up to date with a newly recorded value ($5, NULL when not finite,
/// with its kind $6) of epoch $4: the latest epoch's value, and the lowest and highest finite
/// values with the earliest epoch that reached each.
const SUMMARIZE: &str =
    "INSERT INTO metric_summary AS m (run, split, name, last_epoch, last_value, last_kind, min_value, min_epoch, max_value, max_epoch)
     VALUES ($1, $2, $3, CAST($4 AS BIGINT), CAST($5 AS DOUBLE PRECISION), $6, CAST($5 AS DOUBLE PRECISION),
             CASE WHEN CAST($5 AS DOUBLE PRECISION) IS NULL THEN NULL ELSE CAST($4 AS BIGINT) END,
             CAST($5 AS DOUBLE PRECISION), CASE WHEN CAST($5 AS DOUBLE PRECISION) IS NULL THEN NULL ELSE CAST($4 AS BIGINT) END)
     ON CONFLICT (run, split, name) DO UPDATE SET
        last_value = CASE WHEN excluded.last_epoch >= m.last_epoch THEN excluded.last_value ELSE m.last_value END,
        last_kind  = CASE WHEN excluded.last_epoch >= m.last_epoch THEN excluded.last_kind ELSE m.last_kind END,
        last_epoch = CASE WHEN excluded.last_epoch >= m.last_epoch THEN excluded.last_epoch ELSE m.last_epoch END,
        min_epoch  = CASE WHEN excluded.min_value IS NOT NULL AND (m.min_value IS NULL OR excluded.min_value < m.min_value
                          OR (excluded.min_value = m.min_value AND excluded.min_epoch < m.min_epoch)) THEN excluded.min_epoch ELSE m.min_epoch END,
        min_value  = CASE WHEN excluded.min_value IS NOT NULL AND (m.min_value IS NULL OR excluded.min_value < m.min_value)
                          THEN excluded.min_value ELSE m.min_value END,
        max_epoch  = CASE WHEN excluded.max_value IS NOT NULL AND (m.max_value IS NULL OR excluded.max_value > m.max_value
                          OR (excluded.max_value = m.max_value AND excluded.max_epoch < m.max_epoch)) THEN excluded.max_epoch ELSE m.max_epoch END,
        max_value  = CASE WHEN excluded.max_value IS NOT NULL AND (m.max_value IS NULL OR excluded.max_value > m.max_value)
                          THEN excluded.max_value ELSE m.max_value END";

/// Records an epoch under the lease. Metrics are kept once per (run, epoch, split, name), and
/// only a newly kept value moves the summary, so that logging an epoch again (a retry) changes
/// nothing. A checkpoint row moves only forward in epochs.
fn log_epoch(tx: &mut dyn Tx, lease: &Lease, epoch: &EpochLog) -> Result<(), Failure> {
    let now = now_unix();
    let held = tx.execute(
        "UPDATE runs SET heartbeat = $3 WHERE id = $1 AND attempt = $2 AND status = 'running'",
        &[lease.trial.as_str().into(), lease.attempt.into(), now.into()],
    )?;
    if held == 0 {
        return Err(lease_lost(lease));
    }
    let mut progress = false;
    for m in &epoch.metrics {
        let (value, kind) = encode_value(m.value);
        let split = m.split.as_str();
        let inserted = tx.execute(
            "INSERT INTO metrics (run, epoch, split, name, value, kind, wall) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[lease.trial.as_str().into(), epoch.epoch.into(), split.into(), m.name.as_str().into(), value.into(), kind.into(), epoch.wall.into()],
        )?;
        if inserted == 1 {
            progress = true;
            tx.execute(
                SUMMARIZE,
                &[lease.trial.as_str().into(), split.into(), m.name.as_str().into(), epoch.epoch.into(), value.into(), kind.into()],
            )?;
        }
    }
    if progress {
        // A newly recorded epoch is progress: the crash count starts again. An epoch replayed
        // from a checkpoint on resume (recorded already) is not, or a trial that kills its worker
        // after its first epoch would never reach `max_attempts`.
        tx.execute("UPDATE runs SET crashes = 0 WHERE id = $1", &[lease.trial.as_str().into()])?;
    }
    for ck in &epoch.checkpoints {
        let (value, kind) = encode_value(ck.metric_value);
        tx.execute(
            "INSERT INTO checkpoints (run, kind, epoch, path, metric_value, metric_kind, created) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (run, kind) DO UPDATE SET epoch = excluded.epoch, path = excluded.path,
                metric_value = excluded.metric_value, metric_kind = excluded.metric_kind, created = excluded.created
             WHERE excluded.epoch >= checkpoints.epoch",
            &[lease.trial.as_str().into(), ck.kind.as_str().into(), ck.epoch.into(), ck.path.as_str().into(), value.into(), kind.into(), now.into()],
        )?;
    }
    Ok(())
}

/// Applies an end-of-run write (`update`, which changes the row only under the lease), or
/// recognises that it already went through: the run is in the state `status` under the same
/// attempt, because an earlier try's reply was lost.
fn end_trial(tx: &mut dyn Tx, lease: &Lease, status: TrialStatus, update: &str, values: &[Value]) -> Result<(), Failure> {
    if tx.execute(update, values)? == 1 {
        return Ok(());
    }
    match tx.query_opt("SELECT status, attempt FROM runs WHERE id = $1", &[lease.trial.as_str().into()])? {
        Some(row) if row.text(0)? == status.as_str() && row.int(1)? == lease.attempt => Ok(()),
        _ => Err(lease_lost(lease)),
    }
}

/// The crash rule, for every way a worker's death is noticed: the run's `crashes`-th death in a
/// row (without a new epoch in between: `log_epoch` resets the count) sends it back to the queue,
/// until `max_attempts`; then it fails, its error saying how many, so that a trial that kills its
/// worker every time does not loop. Returns the run's new status and its error.
fn crash_rule(cause: &str, crashes: i64, max_attempts: i64) -> (TrialStatus, String) {
    if crashes >= max_attempts {
        (TrialStatus::Failed, format!("{cause} ({crashes} attempts in a row ended this way without finishing an epoch)"))
    } else {
        (TrialStatus::Queued, cause.to_string())
    }
}

/// A supervisor saw the worker holding `lease` die: [`crash_rule`].
fn record_crash(tx: &mut dyn Tx, lease: &Lease, message: &str, max_attempts: i64) -> Result<TrialStatus, Failure> {
    let sql = format!("SELECT status, attempt, crashes FROM runs WHERE id = $1{}", tx.dialect().lock_rows);
    let row = tx.query_opt(&sql, &[lease.trial.as_str().into()])?.ok_or_else(|| lease_lost(lease))?;
    if row.text(0)? != TrialStatus::Running.as_str() || row.int(1)? != lease.attempt {
        return Err(lease_lost(lease));
    }
    let crashes = row.int(2)? + 1;
    let (status, error) = crash_rule(message, crashes, max_attempts);
    let finished = (status == TrialStatus::Failed).then(now_unix);
    tx.execute(
        "UPDATE runs SET status = $2, error = $3, finished = $4, crashes = $5, host = NULL, pid = NULL WHERE id = $1",
        &[lease.trial.as_str().into(), status.as_str().into(), error.into(), finished.into(), crashes.into()],
    )?;
    Ok(status)
}

fn sweeps(tx: &mut dyn Tx) -> Result<Vec<SweepInfo>, Failure> {
    let mut sweeps = tx
        .query("SELECT name, spec, spec_hash, created, updated FROM sweeps ORDER BY created", &[])?
        .iter()
        .map(|r| {
            Ok(SweepInfo {
                name: r.text(0)?,
                spec: r.text(1)?,
                spec_hash: r.text(2)?,
                created: r.real(3)?,
                updated: r.real(4)?,
                counts: BTreeMap::new(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    for r in tx.query("SELECT sweep, status, count(*) FROM runs GROUP BY sweep, status", &[])? {
        let sweep = r.text(0)?;
        if let Some(s) = sweeps.iter_mut().find(|s| s.name == sweep) {
            s.counts.insert(r.text(1)?, r.int(2)?);
        }
    }
    // Updated: the latest of the sweep file's registration and its trials' activity (queued,
    // started, finished, and the heartbeat every epoch refreshes).
    for r in tx.query("SELECT sweep, max(created), max(started), max(finished), max(heartbeat) FROM runs GROUP BY sweep", &[])? {
        let sweep = r.text(0)?;
        if let Some(s) = sweeps.iter_mut().find(|s| s.name == sweep) {
            for i in 1..5 {
                if let Some(t) = r.opt_real(i)? {
                    s.updated = s.updated.max(t);
                }
            }
        }
    }
    Ok(sweeps)
}

/// A metric's (split, name) in the `metrics` table: `val_iou` is (`val`, `iou`), `val_fg_iou` is
/// (`val`, `fg_iou`), and a name without a split is a `val` one.
fn split_metric(metric: &str) -> (&str, &str) {
    if crate::config::COST_METRICS.contains(&metric) {
        return (crate::config::Split::Cost.as_str(), metric);
    }
    metric.split_once('_').unwrap_or(("val", metric))
}

/// The sweep's trials in `seq` order with the values of `metric` that `view` holds: one query,
/// a trial without a value of the metric still answering one row (the LEFT JOIN's NULLs).
fn history(tx: &mut dyn Tx, sweep: &str, metric: &str, view: HistoryView) -> Result<Vec<TrialHistory>, Failure> {
    let (split, name) = split_metric(metric);
    let mut values: Vec<Value> = vec![sweep.into(), split.into(), name.into()];
    let rows = match view {
        HistoryView::Full => tx.query(
            "SELECT r.id, r.seq, r.status, r.params, m.epoch, m.value, m.kind
             FROM runs r LEFT JOIN metrics m ON m.run = r.id AND m.split = $2 AND m.name = $3
             WHERE r.sweep = $1 ORDER BY r.seq, m.epoch",
            &values,
        )?,
        HistoryView::Summary => tx.query(
            "SELECT r.id, r.seq, r.status, r.params, s.last_epoch, s.last_value, s.last_kind,
                    s.min_epoch, s.min_value, s.max_epoch, s.max_value
             FROM runs r LEFT JOIN metric_summary s ON s.run = r.id AND s.split = $2 AND s.name = $3
             WHERE r.sweep = $1 ORDER BY r.seq",
            &values,
        )?,
        HistoryView::Judging { trial, epoch, peers } => {
            values.push(epoch.into());
            // Each value a point lookup on the metrics' key (run, epoch, split, name), or a
            // range of it for the epochs before.
            let (which, before) = match peers {
                PeerValues::None => ("r.id = $5", "m.epoch <= $4"),
                PeerValues::AtEpoch => ("TRUE", "(m.epoch = $4 OR (m.epoch < $4 AND r.id = $5))"),
                PeerValues::UpToEpoch => ("TRUE", "m.epoch <= $4"),
            };
            if peers != PeerValues::UpToEpoch {
                values.push(trial.into());
            }
            tx.query(
                &format!(
                    "SELECT r.id, r.seq, r.status, '{{}}', m.epoch, m.value, m.kind
                     FROM runs r LEFT JOIN metrics m ON m.run = r.id AND m.split = $2 AND m.name = $3 AND {before}
                     WHERE r.sweep = $1 AND {which} ORDER BY r.seq, m.epoch"
                ),
                &values,
            )?
        }
    };
    let mut trials: Vec<TrialHistory> = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = r.text(0)?;
        if trials.last().is_none_or(|t| t.id != id) {
            trials.push(TrialHistory {
                id,
                seq: r.int(1)?,
                status: TrialStatus::parse(&r.text(2)?).unwrap_or(TrialStatus::Failed),
                params: parsed_params(&r.text(3)?),
                values: BTreeMap::new(),
                extremes: BTreeMap::new(),
            });
        }
        let values = &mut trials.last_mut().expect("pushed above").values;
        let Some(epoch) = r.opt_int(4)? else { continue };
        if view == HistoryView::Summary {
            // The extremes are finite by construction; the deepest epoch's value goes in last,
            // as recorded (it may be the extreme's epoch, with the same value).
            for (e, v) in [(7, 8), (9, 10)] {
                if let (Some(e), Some(v)) = (r.opt_int(e)?, r.opt_real(v)?) {
                    values.insert(e, v);
                }
            }
        }
        values.insert(epoch, decode_value(r.opt_real(5)?, &r.text(6)?));
    }
    Ok(trials)
}

/// Fills each trial's [`TrialHistory::extremes`] of `metric` from the per-metric summary: one
/// row a trial that recorded it. `trials` are the sweep's, in `seq` order.
fn extremes(tx: &mut dyn Tx, sweep: &str, metric: &str, trials: &mut [TrialHistory]) -> Result<(), Failure> {
    for (seq, brief) in extremes_of(tx, sweep, metric)? {
        if let Ok(i) = trials.binary_search_by_key(&seq, |t| t.seq) {
            trials[i].extremes.insert(metric.to_string(), brief);
        }
    }
    Ok(())
}

/// Each trial of `sweep` that recorded `metric`: its number and its record in brief (from the
/// per-metric summary), by number.
fn extremes_of(tx: &mut dyn Tx, sweep: &str, metric: &str) -> Result<Vec<(i64, Extremes)>, Failure> {
    let (split, name) = split_metric(metric);
    let rows = tx.query(
        "SELECT r.seq, s.min_value, s.max_value, s.last_value, s.last_kind FROM runs r
         JOIN metric_summary s ON s.run = r.id AND s.split = $2 AND s.name = $3
         WHERE r.sweep = $1 ORDER BY r.seq",
        &[sweep.into(), split.into(), name.into()],
    )?;
    rows.iter()
        .map(|r| Ok((r.int(0)?, Extremes { lowest: r.opt_real(1)?, highest: r.opt_real(2)?, last: decode_value(r.opt_real(3)?, &r.text(4)?) })))
        .collect()
}

/// A trial's swept values (`runs.params`) parsed, shared with every earlier read of the same
/// text: a trial's parameters never change, and TPE's ask reads every trial's under the sweep's
/// lock (at 10,000 trials, parsing them took a third of the ask). Kept by text, so any tracker
/// and any trial id agree; at most `KEPT` texts, then it starts again.
fn parsed_params(text: &str) -> std::sync::Arc<BTreeMap<String, serde_json::Value>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    const KEPT: usize = 200_000;
    static PARSED: Mutex<Option<HashMap<Box<str>, Arc<BTreeMap<String, serde_json::Value>>>>> = Mutex::new(None);
    let mut parsed = PARSED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let parsed = parsed.get_or_insert_with(HashMap::new);
    if let Some(params) = parsed.get(text) {
        return params.clone();
    }
    let params = Arc::new(serde_json::from_str(text).unwrap_or_default());
    if parsed.len() >= KEPT {
        parsed.clear();
    }
    parsed.insert(text.into(), Arc::clone(&params));
    params
}

/// The completed trial whose best epoch is best by `metric` (`<split>_<name>`, `val` when no
/// split is given): [`rank_completed`](super::read::rank_completed)'s first over the completed trials' summaries, so `sweep
/// best` ranks as the leaderboard, the charts and the dashboard do.
///
/// It reads one summary row a completed trial (the metric's extreme in the goal's direction and
/// its epoch), not every metric and tag of every trial, then the winner's whole row.
fn best(tx: &mut dyn Tx, metric: &str, goal: Goal, sweep: Option<&str>) -> Result<Option<BestTrial>, Failure> {
    let (split, name) = split_metric(metric);
    let (value, epoch) = match goal {
        Goal::Minimize => ("s.min_value", "s.min_epoch"),
        Goal::Maximize => ("s.max_value", "s.max_epoch"),
    };
    let mut values: Vec<Value> = vec![split.into(), name.into()];
    let in_sweep = match sweep {
        Some(sweep) => {
            values.push(sweep.into());
            " AND r.sweep = $3"
        }
        None => "",
    };
    let rows = tx.query(
        &format!(
            "SELECT r.id, r.seq, {value}, {epoch} FROM runs r JOIN metric_summary s ON s.run = r.id AND s.split = $1 AND s.name = $2
             WHERE r.status = 'completed' AND {value} IS NOT NULL AND {epoch} IS NOT NULL{in_sweep}"
        ),
        &values,
    )?;
    // `rank_completed`'s order: the value in the goal's direction, then the trial's number and id.
    let mut best: Option<(f64, i64, String, i64)> = None;
    for r in &rows {
        let (id, seq, value, epoch) = (r.text(0)?, r.int(1)?, r.real(2)?, r.int(3)?);
        let better = best.as_ref().is_none_or(|(v, s, i, _)| goal.order(value, *v).then(seq.cmp(s)).then_with(|| id.cmp(i)).is_lt());
        if better {
            best = Some((value, seq, id, epoch));
        }
    }
    let Some((value, _, id, epoch)) = best else { return Ok(None) };
    let trial =
        read_runs(tx, &TrialFilter::default(), Some(&id))?.pop().ok_or_else(|| Failure::Invalid(format!("trial {id} vanished while read")))?;
    Ok(Some(BestTrial { trial, value, epoch }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
