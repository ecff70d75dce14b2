//! The tracker's contract as one story, run against every backend.

use std::collections::BTreeMap;

use crate::common::seeded_trial;
use sweep::config::Goal;
use sweep::config::Split;
use sweep::store::{
    CheckpointRow, Detail, EnqueueReport, EpochLog, Extension, Extremes, HistoryView, JobRow, Kept, MetricValue, NewTrial, PeerValues, Reclaim,
    Store, StoreError, SweepRegistration, TrialFilter, TrialHistory, TrialStatus, WorkerInfo, settings_of,
};

fn trial(hue: f64) -> NewTrial {
    let mut config = crate::common::tiny_config();
    config.augment.hue_delta = hue as f32;
    let mut params = BTreeMap::new();
    params.insert("augment.hue_delta".to_string(), serde_json::json!(hue));
    NewTrial { config, params }
}

fn epoch(n: i64, val_iou: f64, val_loss: f64) -> EpochLog {
    let mut metrics = Vec::new();
    for (split, name, value) in [
        (Split::Train, "loss", val_loss + 0.1),
        (Split::Train, "iou", val_iou - 0.05),
        (Split::Val, "loss", val_loss),
        (Split::Val, "iou", val_iou),
        (Split::Val, "fg_iou", f64::NAN),
        (Split::Train, "lr", f64::INFINITY),
    ] {
        metrics.push(MetricValue { split, name: name.to_string(), value });
    }
    EpochLog {
        epoch: n,
        wall: 1000.0 + n as f64,
        metrics,
        checkpoints: vec![CheckpointRow { kind: "last".into(), epoch: n, path: format!("/runs/s/ckpt-{n}"), metric_value: val_iou }],
    }
}

fn worker(pid: u32) -> WorkerInfo {
    WorkerInfo { host: "test-host".into(), pid }
}

/// Create a sweep, enqueue, claim, heartbeat, log epochs, checkpoint, complete, fail, reclaim a
/// stale run, best, compare: every guarantee of the contract, in order.
pub fn story(store: &mut dyn Store) {
    // Sweeps: new, unchanged, changed.
    assert_eq!(store.register_sweep("s", "spec v1").unwrap(), SweepRegistration::New);
    assert_eq!(store.register_sweep("s", "spec v1").unwrap(), SweepRegistration::Unchanged);
    assert!(matches!(store.register_sweep("s", "spec v2").unwrap(), SweepRegistration::SpecChanged { .. }));
    assert!(matches!(store.register_sweep("../evil", "x"), Err(StoreError::InvalidName { .. })));
    assert!(matches!(store.register_sweep("a/b", "x"), Err(StoreError::InvalidName { .. })));

    // Enqueue never duplicates a config.
    let report = store.enqueue("s", &[trial(0.0), trial(0.1), trial(0.2)]).unwrap();
    assert_eq!(report, EnqueueReport { added: vec!["s-1".into(), "s-2".into(), "s-3".into()], ..EnqueueReport::default() });
    let report = store.enqueue("s", &[trial(0.1), trial(0.3)]).unwrap();
    assert_eq!(report, EnqueueReport { added: vec!["s-4".into()], existing: 1, ..EnqueueReport::default() });
    assert!(matches!(store.enqueue("nope", &[trial(0.0)]), Err(StoreError::UnknownSweep { .. })));

    // Claims go in order, each run to one worker.
    let a = store.claim(Some("s"), &worker(1), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!((a.lease.trial.as_str(), a.lease.attempt, a.resumed, a.sweep.as_str()), ("s-1", 1, false, "s"));
    assert_eq!(a.params["augment.hue_delta"], serde_json::json!(0.0));
    assert_eq!(a.config.augment.hue_delta, 0.0);
    let b = store.claim(Some("s"), &worker(2), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(b.lease.trial, "s-2");
    store.heartbeat(&a.lease).unwrap();

    // Epochs: NaN and infinities round-trip; logging an epoch twice changes nothing.
    store.log_epoch(&a.lease, &epoch(1, 0.70, 0.50)).unwrap();
    store.log_epoch(&a.lease, &epoch(2, 0.90, 0.40)).unwrap();
    store.log_epoch(&a.lease, &epoch(3, 0.80, 0.45)).unwrap();
    store.log_epoch(&a.lease, &epoch(3, 0.80, 0.45)).unwrap();
    let metrics = store.metrics("s-1").unwrap();
    assert_eq!(metrics.len(), 18, "3 epochs x 6 values, none twice");
    let fg = metrics.iter().find(|m| m.name == "fg_iou").unwrap();
    assert!(fg.value.is_nan(), "NaN survives the round trip");
    let lr = metrics.iter().find(|m| m.name == "lr").unwrap();
    assert_eq!(lr.value, f64::INFINITY, "infinity survives the round trip");
    let checkpoints = store.checkpoints("s-1").unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!((checkpoints[0].epoch, checkpoints[0].path.as_str()), (3, "/runs/s/ckpt-3"));
    store.finish(&a.lease, TrialStatus::Completed, None).unwrap();
    store.finish(&a.lease, TrialStatus::Completed, None).expect("the same end again is a retried write, recognised as done");

    // A run counts with its best epoch, in the metric's direction.
    let run = store.trial("s-1").unwrap();
    assert_eq!(run.status, TrialStatus::Completed);
    // Issue 29: a sweep's `updated` is its last activity, not when its file was registered.
    let info = store.sweeps().unwrap().into_iter().find(|i| i.name == "s").unwrap();
    assert!(info.updated >= run.finished.unwrap() && info.updated > info.created, "updated {} finished {:?}", info.updated, run.finished);
    assert_eq!(run.best("val_iou", Goal::Maximize), Some((0.90, 2)));
    assert_eq!(run.best("val_loss", Goal::Minimize), Some((0.40, 2)));
    assert_eq!(run.last("val_iou"), Some(0.80));
    assert!(run.last("val_fg_iou").unwrap().is_nan());
    assert_eq!(run.best("val_fg_iou", Goal::Maximize), None, "NaN is never a best value");
    assert_eq!(run.epochs(), 3);

    // Failure keeps its message.
    store.log_epoch(&b.lease, &epoch(1, 0.95, 0.30)).unwrap();
    store.finish(&b.lease, TrialStatus::Failed, Some("boom at epoch 2")).unwrap();
    assert_eq!(store.trial("s-2").unwrap().error.as_deref(), Some("boom at epoch 2"));
    assert!(matches!(store.finish(&b.lease, TrialStatus::Completed, None), Err(StoreError::LeaseLost { .. })), "a finished run has no lease");

    // A stale run is reclaimed by the next claim, and the old lease can no longer write.
    let c = store.claim(Some("s"), &worker(3), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(c.lease.trial, "s-3");
    let c2 = store.claim(Some("s"), &worker(4), &Reclaim::after(-1.0)).unwrap().unwrap();
    assert_eq!((c2.lease.trial.as_str(), c2.lease.attempt, c2.resumed), ("s-3", 2, true));
    assert!(matches!(store.heartbeat(&c.lease), Err(StoreError::LeaseLost { .. })));
    assert!(matches!(store.log_epoch(&c.lease, &epoch(1, 0.1, 0.9)), Err(StoreError::LeaseLost { .. })));
    assert!(store.metrics("s-3").unwrap().is_empty(), "a refused epoch writes nothing");
    store.log_epoch(&c2.lease, &epoch(1, 0.60, 0.60)).unwrap();
    store.finish(&c2.lease, TrialStatus::Diverged, Some("the loss became NaN at epoch 2, step 1")).unwrap();

    // Best over the sweep, in both directions, and as overridden: completed trials only, so
    // neither the failed s-2 (val_iou 0.95, val_loss 0.30) nor the diverged s-3 (0.60) ranks.
    let best = store.best("val_iou", Goal::Maximize, Some("s")).unwrap().unwrap();
    assert_eq!((best.trial.id.as_str(), best.value, best.epoch), ("s-1", 0.90, 2), "a failed trial with a better value is not best");
    let best = store.best("val_loss", Goal::Minimize, None).unwrap().unwrap();
    assert_eq!((best.trial.id.as_str(), best.value), ("s-1", 0.40));
    let worst = store.best("val_iou", Goal::Minimize, Some("s")).unwrap().unwrap();
    assert_eq!((worst.trial.id.as_str(), worst.value), ("s-1", 0.70), "a diverged trial is not best either way");
    assert!(store.best("val_dice", Goal::Maximize, None).unwrap().is_none());

    // Listing and comparing.
    let runs = store.trials(&TrialFilter { sweep: Some("s".into()), status: None }).unwrap();
    assert_eq!(runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["s-1", "s-2", "s-3", "s-4"]);
    assert_eq!(runs[3].status, TrialStatus::Queued);
    let failed = store.trials(&TrialFilter { sweep: None, status: Some(TrialStatus::Failed) }).unwrap();
    assert_eq!(failed.len(), 1);

    // The read model in one read equals what the per-trial reads answer, in the same order.
    let all = store.trial_data(&TrialFilter { sweep: Some("s".into()), status: None }, Detail::ALL).unwrap();
    assert_eq!(all.iter().map(|t| t.row.id.as_str()).collect::<Vec<_>>(), ["s-1", "s-2", "s-3", "s-4"]);
    for t in &all {
        let id = t.row.id.as_str();
        let mut row = store.trial(id).unwrap();
        row.settings = settings_of(&store.trial_config(id).unwrap());
        // Compared as text: a NaN summary (val_fg_iou's last value) is equal to itself there.
        assert_eq!(format!("{:?}", t.row), format!("{row:?}"));
        assert_eq!(format!("{:?}", t.metrics), format!("{:?}", store.metrics(id).unwrap()));
        assert_eq!(t.checkpoints, store.checkpoints(id).unwrap(), "{id}");
    }
    assert!(!all[0].metrics.is_empty() && !all[0].checkpoints.is_empty() && !all[0].row.settings.is_empty());
    let rows_only = store.trial_data(&TrialFilter { sweep: None, status: Some(TrialStatus::Failed) }, Detail::ROWS).unwrap();
    assert_eq!(rows_only.len(), 1);
    assert!(rows_only[0].metrics.is_empty() && rows_only[0].checkpoints.is_empty() && rows_only[0].row.settings.is_empty());
    let one = store.trial_data_of("s-1", Detail::METRICS).unwrap();
    assert_eq!((one.metrics.len(), one.checkpoints.len()), (all[0].metrics.len(), 0));
    assert!(matches!(store.trial_data_of("s-9", Detail::ALL), Err(StoreError::UnknownTrial { .. })));
    assert!(store.trial_data(&TrialFilter { sweep: Some("nope".into()), status: None }, Detail::ALL).unwrap().is_empty());
    let sweeps = store.sweeps().unwrap();
    assert_eq!(sweeps[0].spec, "spec v2");
    assert_eq!(sweeps[0].counts.get("completed"), Some(&1));
    assert!(matches!(store.trial("s-9"), Err(StoreError::UnknownTrial { .. })));

    // Batch jobs: recording one again (a retried write) changes nothing; listed per sweep, oldest first.
    let job = JobRow {
        sweep: "s".into(),
        launcher: "slurm".into(),
        job_id: "4242".into(),
        workers: 3,
        script: "/runs/s/slurm/job.sh".into(),
        submitted: 2000.0,
    };
    let earlier = JobRow { job_id: "4241".into(), workers: 1, submitted: 1999.5, ..job.clone() };
    store.record_job(&job).unwrap();
    store.record_job(&job).unwrap();
    store.record_job(&earlier).unwrap();
    assert_eq!(store.jobs(Some("s")).unwrap(), [earlier.clone(), job.clone()]);
    assert_eq!(store.jobs(None).unwrap(), [earlier, job.clone()]);
    assert!(store.jobs(Some("other")).unwrap().is_empty());
    assert!(store.record_job(&JobRow { sweep: "nope".into(), job_id: "1".into(), ..job }).is_err(), "a job belongs to a known sweep");

    // Failed runs come back only when asked; release and crashes requeue.
    assert_eq!(store.requeue_failed("s").unwrap(), 1);
    let d = store.claim(Some("s"), &worker(5), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!((d.lease.trial.as_str(), d.resumed), ("s-2", true));
    store.release(&d.lease).unwrap();
    assert_eq!(store.trial("s-2").unwrap().status, TrialStatus::Queued);
    let e = store.claim(Some("s"), &worker(6), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(e.lease.trial, "s-2");
    assert_eq!(store.record_crash(&e.lease, "killed", 2).unwrap(), TrialStatus::Queued);
    let f = store.claim(Some("s"), &worker(7), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(f.lease.trial, "s-2");
    assert_eq!(store.record_crash(&f.lease, "killed again", 2).unwrap(), TrialStatus::Failed, "two crashes in a row without an epoch");
    assert!(store.trial("s-2").unwrap().error.unwrap().contains("killed again"));
    let g = store.claim(Some("s"), &worker(8), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(g.lease.trial, "s-4");
    assert!(store.claim(Some("s"), &worker(9), &Reclaim::after(60.0)).unwrap().is_none(), "nothing left to claim");
    // Retrying a trial that failed by crashing starts its crash count again: one crash requeues.
    assert_eq!(store.requeue_failed("s").unwrap(), 1);
    let h = store.claim(Some("s"), &worker(10), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(h.lease.trial, "s-2");
    assert_eq!(store.record_crash(&h.lease, "killed once more", 2).unwrap(), TrialStatus::Queued);
    // Without a sweep named, a claim takes from any sweep.
    let i = store.claim(None, &worker(11), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!((i.lease.trial.as_str(), i.sweep.as_str(), i.resumed), ("s-2", "s", true));

    // The crash rule holds whoever notices the death (issue 15, item 8). An epoch replayed on
    // resume, recorded already, is not progress: only a new epoch starts the count again.
    store.register_sweep("c", "spec").unwrap();
    store.enqueue("c", &[trial(0.5), trial(0.6)]).unwrap();
    let first = store.claim(Some("c"), &worker(20), &Reclaim::after(60.0)).unwrap().unwrap();
    store.log_epoch(&first.lease, &epoch(1, 0.5, 0.5)).unwrap();
    assert_eq!(store.record_crash(&first.lease, "killed", 2).unwrap(), TrialStatus::Queued);
    let second = store.claim(Some("c"), &worker(21), &Reclaim::after(60.0)).unwrap().unwrap();
    store.log_epoch(&second.lease, &epoch(1, 0.5, 0.5)).unwrap();
    store.log_epoch(&second.lease, &epoch(2, 0.6, 0.4)).unwrap();
    assert_eq!(store.record_crash(&second.lease, "killed", 2).unwrap(), TrialStatus::Queued, "epoch 2 was new: the count started again");
    let third = store.claim(Some("c"), &worker(22), &Reclaim::after(60.0)).unwrap().unwrap();
    store.log_epoch(&third.lease, &epoch(1, 0.5, 0.5)).unwrap();
    store.log_epoch(&third.lease, &epoch(2, 0.6, 0.4)).unwrap();
    assert_eq!(
        store.record_crash(&third.lease, "killed", 2).unwrap(),
        TrialStatus::Failed,
        "replayed epochs are not progress: the second death in a row fails the trial"
    );
    assert!(store.trial("c-1").unwrap().error.unwrap().contains("2 attempts in a row"));
    // A claim that takes over an abandoned run (its heartbeat stale) counts a crash the same way.
    let abandon = Reclaim { stale_after: -1.0, max_attempts: 2 };
    let held = store.claim(Some("c"), &worker(23), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(held.lease.trial, "c-2");
    let taken = store.claim(Some("c"), &worker(24), &abandon).unwrap().unwrap();
    assert_eq!((taken.lease.trial.as_str(), taken.lease.attempt), ("c-2", 2), "the first death: taken over");
    assert!(store.claim(Some("c"), &worker(25), &abandon).unwrap().is_none(), "the second death in a row fails it instead");
    let failed = store.trial("c-2").unwrap();
    assert_eq!((failed.status, failed.attempt), (TrialStatus::Failed, 2));
    let error = failed.error.unwrap();
    assert!(error.contains("sent no heartbeat") && error.contains("2 attempts in a row"), "{error}");

    extend_story(store);
    tags_notes_and_removal(store);
    sweep_removal(store);
}

/// Issue 29: a sweep removed whole (`rm --sweep S --all`): every row that names it goes, never
/// while a trial of it runs, and its name is free again.
fn sweep_removal(store: &mut dyn Store) {
    store.register_sweep("gone", "name = \"gone\"").unwrap();
    store.enqueue("gone", &[trial(0.0), trial(0.1)]).unwrap();
    assert_eq!(store.remove(&["gone-2".to_string()]).unwrap().len(), 1);
    let held = store.claim(Some("gone"), &worker(40), &Reclaim::after(60.0)).unwrap().unwrap();
    assert!(matches!(store.remove_sweep("gone"), Err(StoreError::Running { .. })), "a running trial keeps its sweep");
    assert!(store.sweeps().unwrap().iter().any(|s| s.name == "gone"));
    store.finish(&held.lease, TrialStatus::Completed, None).unwrap();
    let removed = store.remove_sweep("gone").unwrap();
    assert_eq!(removed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["gone-1"]);
    assert!(!store.sweeps().unwrap().iter().any(|s| s.name == "gone"));
    assert!(matches!(store.remove_sweep("gone"), Err(StoreError::UnknownSweep { .. })));
    store.register_sweep("gone", "name = \"gone\" # again").unwrap();
    assert_eq!(store.enqueue("gone", &[trial(0.3)]).unwrap().added, ["gone-1"], "numbered from 1 again");
}

/// Raising `train.epochs` continues a trial (issue 16, item 4): a completed trial takes the new
/// config under its id and goes back to the queue with its epochs and attempts; a pruned one, a
/// running one and a lower target change nothing; running the file again adds nothing.
fn extend_story(store: &mut dyn Store) {
    let with_epochs = |t: NewTrial, epochs| NewTrial { config: t.config.with_epochs(epochs), ..t };
    store.register_sweep("e", "epochs 3").unwrap();
    store.enqueue("e", &[trial(0.1), trial(0.2)]).unwrap();
    let done = store.claim(Some("e"), &worker(30), &Reclaim::after(60.0)).unwrap().unwrap();
    for n in 1..=3 {
        store.log_epoch(&done.lease, &epoch(n, 0.5, 0.5)).unwrap();
    }
    store.finish(&done.lease, TrialStatus::Completed, None).unwrap();
    let cut = store.claim(Some("e"), &worker(31), &Reclaim::after(60.0)).unwrap().unwrap();
    store.log_epoch(&cut.lease, &epoch(1, 0.1, 0.9)).unwrap();
    store.finish(&cut.lease, TrialStatus::Pruned, Some("below the median")).unwrap();

    let longer = [with_epochs(trial(0.1), 5), with_epochs(trial(0.2), 5)];
    let report = store.enqueue("e", &longer).unwrap();
    let extended = Extension { id: "e-1".into(), from: 3, to: 5, requeued: true, failed: false };
    let pruned = Kept { id: "e-2".into(), reason: "was pruned".into() };
    assert_eq!(report, EnqueueReport { added: vec![], existing: 2, extended: vec![extended], kept: vec![pruned.clone()] });
    let row = store.trial("e-1").unwrap();
    assert_eq!((row.status, row.finished, row.epochs(), row.attempt), (TrialStatus::Queued, None, 3, 1));
    assert_eq!(row.config_hash, longer[0].config.hash(), "the trial is the new config now");
    assert_eq!(store.trial_config("e-1").unwrap().train.epochs, 5);
    assert_eq!(store.metrics("e-1").unwrap().len(), 18, "its epochs stay");
    let again = store.claim(Some("e"), &worker(32), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!((again.lease.trial.as_str(), again.lease.attempt, again.resumed, again.config.train.epochs), ("e-1", 2, true, 5));

    let report = store.enqueue("e", &longer).unwrap();
    assert_eq!((report.added.len(), report.existing, report.extended.len()), (0, 2, 0), "a rerun adds nothing");
    assert_eq!(report.kept, [pruned]);
    let report = store.enqueue("e", &[with_epochs(trial(0.1), 2), with_epochs(trial(0.2), 2)]).unwrap();
    assert!(report.added.is_empty() && report.extended.is_empty(), "a lower target retrains nothing: {report:?}");
    assert_eq!(report.kept.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["e-1", "e-2"]);
    assert!(report.kept[0].reason.contains("has 5 epochs as its target already"), "{:?}", report.kept);
    assert_eq!(store.trial_config("e-1").unwrap().train.epochs, 5);
}

/// Tags and notes are set, replaced and removed in one transaction each and read with the trial;
/// removal takes all the trials asked for or none, never a running one, and a removed trial's
/// number is never given again. Sweep `s` holds s-1 completed, s-2 and s-4 running, s-3 diverged.
fn tags_notes_and_removal(store: &mut dyn Store) {
    let set = |name: &str, value: Option<&str>| (name.to_string(), value.map(str::to_string));
    store.tag("s-1", &[set("team", Some("vision")), set("stage", Some("draft"))]).unwrap();
    store.tag("s-1", &[set("stage", Some("final")), set("team", None), set("absent", None)]).unwrap();
    store.tag("s-3", &[set("team", Some("audio"))]).unwrap();
    assert_eq!(store.trial("s-1").unwrap().tags, BTreeMap::from([("stage".to_string(), "final".to_string())]));
    assert!(matches!(store.tag("s-9", &[set("a", Some("b"))]), Err(StoreError::UnknownTrial { .. })));
    for reserved in ["sweep.trial", "mlflow.note.content", "a b", ""] {
        assert!(matches!(store.tag("s-1", &[set(reserved, Some("x"))]), Err(StoreError::InvalidName { .. })), "{reserved:?}");
    }
    store.set_note("s-1", Some("the baseline\nwith a second line")).unwrap();
    assert_eq!(store.trial("s-1").unwrap().note.as_deref(), Some("the baseline\nwith a second line"));
    let listed = store.trials(&TrialFilter { sweep: Some("s".into()), status: None }).unwrap();
    assert_eq!((listed[0].tags.len(), listed[1].tags.len(), listed[2].tags["team"].as_str()), (1, 0, "audio"));
    assert_eq!((listed[0].note.as_deref(), listed[1].note.as_deref()), (Some("the baseline\nwith a second line"), None));
    store.set_note("s-1", Some("")).unwrap();
    assert_eq!(store.trial("s-1").unwrap().note, None, "an empty note clears it");
    assert!(matches!(store.set_note("s-9", Some("x")), Err(StoreError::UnknownTrial { .. })));

    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match store.remove(&ids(&["s-3", "s-2", "s-4"])) {
        Err(StoreError::Running { ids }) => assert_eq!(ids, ["s-2", "s-4"]),
        other => panic!("expected a refusal naming the running trials, got {other:?}"),
    }
    assert!(matches!(store.remove(&ids(&["s-3", "nope-1"])), Err(StoreError::UnknownTrial { .. })));
    assert_eq!(store.trial("s-3").unwrap().tags["team"], "audio", "a refused removal removes nothing");
    let removed = store.remove(&ids(&["s-3", "s-1", "s-3"])).unwrap();
    assert_eq!(removed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["s-3", "s-1"]);
    assert_eq!(removed[1].status, TrialStatus::Completed);
    for id in ["s-1", "s-3"] {
        assert!(matches!(store.trial(id), Err(StoreError::UnknownTrial { .. })), "{id}");
        assert!(store.metrics(id).unwrap().is_empty() && store.checkpoints(id).unwrap().is_empty(), "{id}");
    }
    assert!(store.best("val_iou", Goal::Maximize, Some("s")).unwrap().is_none(), "s-1 was the only completed trial");
    // s-1's config comes back as a new trial with a new number.
    assert_eq!(store.enqueue("s", &[trial(0.0)]).unwrap().added, ["s-5"]);
    assert_eq!(store.sweeps().unwrap()[0].counts.get("completed"), None);
}

/// A smart sweep's operations: `ask` adds what the sampler picks from the history, one trial
/// per call, up to a cap and never twice; `history` reads every trial with one metric by epoch;
/// `best` breaks ties by trial number.
pub fn ask_story(store: &mut dyn Store) {
    store.register_sweep("a", "spec").unwrap();
    assert_eq!(store.history("a", "val_iou", HistoryView::Full).unwrap(), [], "a new sweep has no history");
    assert!(matches!(store.history("nope", "val_iou", HistoryView::Full), Err(StoreError::UnknownSweep { .. })));

    // Ask adds the sampled trial with the next id; the sampler sees every trial added before.
    let mut seen = Vec::new();
    let mut sampler = |h: Vec<TrialHistory>| {
        seen.push(h.len());
        Some(seeded_trial(h.len()))
    };
    for n in 1..=12 {
        assert_eq!(store.ask("a", "val_iou", &[], Some(12), &mut sampler).unwrap(), Some(format!("a-{n}")));
    }
    // A sampler must recognise its own points in the history, so swept values come back bit for
    // bit: a float whose shortest form has 17 significant digits is where a lossy parser (serde_json
    // without `float_roundtrip`) drifts by one ulp, and the sampler then proposed an existing trial
    // again and again.
    let mut exact = seeded_trial(1000);
    let lr = 0.000_439_784_894_463_348_36_f64;
    exact.params.insert("train.learning_rate".into(), serde_json::json!(lr));
    store.register_sweep("exact", "spec").unwrap();
    store.enqueue("exact", &[exact]).unwrap();
    let back = store.history("exact", "val_iou", HistoryView::Full).unwrap()[0].params["train.learning_rate"].as_f64().unwrap();
    assert_eq!(back.to_bits(), lr.to_bits(), "{back:e} read back for {lr:e}");
    assert_eq!(store.trial("exact-1").unwrap().params["train.learning_rate"].as_f64().unwrap().to_bits(), lr.to_bits());
    // At the cap the sampler is not called.
    assert_eq!(store.ask("a", "val_iou", &[], Some(12), &mut sampler).unwrap(), None);
    assert_eq!(seen, (0..12).collect::<Vec<_>>(), "called once per trial added, with the history so far, and not at the cap");
    // A config the sweep already has is refused; so is no config at all.
    assert_eq!(store.ask("a", "val_iou", &[], None, &mut |_| Some(seeded_trial(0))).unwrap(), None, "a duplicate config adds nothing");
    assert_eq!(store.ask("a", "val_iou", &[], None, &mut |_| None).unwrap(), None);
    assert!(matches!(store.ask("nope", "val_iou", &[], None, &mut |_| Some(seeded_trial(0))), Err(StoreError::UnknownSweep { .. })));
    let queued = store.trials(&TrialFilter { sweep: Some("a".into()), status: None }).unwrap();
    assert_eq!(queued.len(), 12);
    assert!(queued.iter().all(|t| t.status == TrialStatus::Queued && t.seed == t.seq - 1), "enqueued as enqueue does");

    // Trials 1 to 10 run two epochs; 2 and 10 tie at the best val_iou; 3 is pruned.
    for n in 1..=10 {
        let c = store.claim(Some("a"), &worker(100 + n), &Reclaim::after(60.0)).unwrap().unwrap();
        assert_eq!(c.lease.trial, format!("a-{n}"));
        store.log_epoch(&c.lease, &epoch(1, 0.5, 0.5)).unwrap();
        store.log_epoch(&c.lease, &epoch(2, if n == 2 || n == 10 { 0.9 } else { 0.6 }, 0.4)).unwrap();
        let status = if n == 3 { TrialStatus::Pruned } else { TrialStatus::Completed };
        store.finish(&c.lease, status, None).unwrap();
    }
    let best = store.best("val_iou", Goal::Maximize, Some("a")).unwrap().unwrap();
    assert_eq!((best.trial.id.as_str(), best.value), ("a-2", 0.9), "a tie goes to the lower trial number, not the lower id text (a-10)");

    // History: every trial in seq order, with the named metric's values by epoch only.
    let history = store.history("a", "val_iou", HistoryView::Full).unwrap();
    let ids: Vec<String> = (1..=12).map(|n| format!("a-{n}")).collect();
    assert_eq!(history.iter().map(|t| &t.id).collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>());
    assert_eq!(history.iter().map(|t| t.seq).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    assert_eq!(history[0].values, BTreeMap::from([(1, 0.5), (2, 0.6)]));
    assert_eq!(history[9].values, BTreeMap::from([(1, 0.5), (2, 0.9)]));
    assert_eq!(*history[4].params, BTreeMap::from([("train.seed".to_string(), serde_json::json!(4))]));
    let statuses: Vec<TrialStatus> = history.iter().map(|t| t.status).collect();
    assert_eq!(statuses[1..4], [TrialStatus::Completed, TrialStatus::Pruned, TrialStatus::Completed]);
    assert!(history[10..].iter().all(|t| t.status == TrialStatus::Queued && t.values.is_empty()), "a trial without epochs is there, without values");
    let losses = store.history("a", "val_loss", HistoryView::Full).unwrap();
    assert_eq!(losses[0].values, BTreeMap::from([(1, 0.5), (2, 0.4)]), "another metric, by name");
    let nan = store.history("a", "val_fg_iou", HistoryView::Full).unwrap();
    assert!(nan[0].values.len() == 2 && nan[0].values.values().all(|v| v.is_nan()), "NaN is decoded as NaN");
    assert_eq!(store.history("a", "train_lr", HistoryView::Full).unwrap()[0].values[&1], f64::INFINITY);
    assert!(store.history("a", "val_dice", HistoryView::Full).unwrap().iter().all(|t| t.values.is_empty()), "a metric never recorded has no values");

    // The narrow views. Trial 11 runs five epochs: val_iou 0.4, 0.8, 0.2, NaN, 0.6.
    let c = store.claim(Some("a"), &worker(111), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(c.lease.trial, "a-11");
    for (e, v) in [0.4, 0.8, 0.2, f64::NAN, 0.6].into_iter().enumerate() {
        store.log_epoch(&c.lease, &epoch(e as i64 + 1, v, 0.3)).unwrap();
    }
    // A sampler's: each trial's lowest and highest finite values and its deepest epoch, with its point.
    let summary = store.history("a", "val_iou", HistoryView::Summary).unwrap();
    let full = store.history("a", "val_iou", HistoryView::Full).unwrap();
    assert_eq!(
        summary.iter().map(|t| (&t.id, t.seq, t.status, &t.params)).collect::<Vec<_>>(),
        full.iter().map(|t| (&t.id, t.seq, t.status, &t.params)).collect::<Vec<_>>()
    );
    assert_eq!(summary[10].values, BTreeMap::from([(2, 0.8), (3, 0.2), (5, 0.6)]), "epochs 1 and 4 (NaN) are neither extreme nor the deepest");
    assert_eq!(summary[0].values, full[0].values, "two epochs are both an extreme");
    assert!(summary[11].values.is_empty());
    let nans = store.history("a", "val_fg_iou", HistoryView::Summary).unwrap();
    assert!(nans[0].values.len() == 1 && nans[0].values[&2].is_nan(), "no finite extreme: only the deepest epoch, NaN as recorded");
    assert_eq!(store.history("a", "train_lr", HistoryView::Summary).unwrap()[0].values, BTreeMap::from([(2, f64::INFINITY)]));
    // A pruner's, judging trial 11 after epoch 2: its values up to 2, the others' at 2 (and
    // before it only when the pruner compares best values so far); no points, nothing later.
    let judging = |peers| store.history("a", "val_iou", HistoryView::Judging { trial: "a-11", epoch: 2, peers }).unwrap();
    let own = judging(PeerValues::None);
    assert_eq!(own.iter().map(|t| (t.id.as_str(), t.values.clone())).collect::<Vec<_>>(), [("a-11", BTreeMap::from([(1, 0.4), (2, 0.8)]))]);
    let at = judging(PeerValues::AtEpoch);
    assert_eq!(at.len(), 12);
    assert!(at.iter().all(|t| t.params.is_empty()));
    assert_eq!(at[10].values, BTreeMap::from([(1, 0.4), (2, 0.8)]));
    assert_eq!(at[1].values, BTreeMap::from([(2, 0.9)]));
    assert!(at[11].values.is_empty());
    let before = judging(PeerValues::UpToEpoch);
    assert_eq!(before[1].values, BTreeMap::from([(1, 0.5), (2, 0.9)]));
    assert_eq!(before[10].values, at[10].values);
    store.finish(&c.lease, TrialStatus::Completed, None).unwrap();

    // Ask samples from the summary view, with the extremes of the other objectives it names
    // (a metric never recorded, or a trial that recorded none, has none).
    let mut sampler = |h: Vec<TrialHistory>| {
        assert_eq!(h[1].values[&2], 0.9);
        assert_eq!(h[10].values, BTreeMap::from([(2, 0.8), (3, 0.2), (5, 0.6)]));
        let brief = |lowest, highest, last| Extremes { lowest: Some(lowest), highest: Some(highest), last };
        assert_eq!(h[0].extremes, BTreeMap::from([("val_loss".to_string(), brief(0.4, 0.5, 0.4))]));
        assert_eq!(h[10].extremes, BTreeMap::from([("val_loss".to_string(), brief(0.3, 0.3, 0.3))]));
        assert!(h[11].extremes.is_empty());
        Some(seeded_trial(h.len()))
    };
    assert_eq!(store.ask("a", "val_iou", &["val_loss", "val_dice"], Some(13), &mut sampler).unwrap().as_deref(), Some("a-13"));
}

/// Stopping, pruning and resuming by hand (issue 29, item 5), on a fresh store: a queued trial
/// ends at once, a running one through its worker's heartbeat (the request survives a release,
/// the next holder reads it; finishing clears it), a stopped one resumes as queued, and what a
/// status does not allow is refused with the status named.
pub fn intervention_story(store: &mut dyn Store) {
    use sweep::store::{Intervened, Intervention};
    store.register_sweep("h", "spec").unwrap();
    store.enqueue("h", &[trial(0.0), trial(0.1), trial(0.2)]).unwrap();
    let prune = |note: &str| Intervention::Prune { note: note.to_string() };

    // A queued trial stops at once, keeping the reason; it is never claimed while stopped.
    assert_eq!(store.intervene("h-1", &Intervention::Stop).unwrap(), Intervened::Now(TrialStatus::Stopped));
    let stopped = store.trial("h-1").unwrap();
    assert_eq!(stopped.status, TrialStatus::Stopped);
    assert!(stopped.error.as_deref().is_some_and(|e| e.contains("stopped by hand") && e.contains("sweep resume h-1")), "{stopped:?}");
    assert!(matches!(
        store.intervene("h-1", &Intervention::Stop),
        Err(StoreError::CannotIntervene { status: TrialStatus::Stopped, action: "stopped", .. })
    ));
    let claim = store.claim(Some("h"), &worker(1), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(claim.lease.trial, "h-2", "a stopped trial is not claimed");

    // A running trial: the request waits for its worker's heartbeat, the last request wins.
    assert_eq!(store.heartbeat(&claim.lease).unwrap(), None);
    store.log_epoch(&claim.lease, &epoch(1, 0.5, 0.4)).unwrap();
    assert_eq!(store.intervene("h-2", &Intervention::Stop).unwrap(), Intervened::Asked);
    assert_eq!(store.intervene("h-2", &prune("too slow")).unwrap(), Intervened::Asked);
    assert_eq!(store.trial("h-2").unwrap().status, TrialStatus::Running, "the worker ends it, not the request");
    assert_eq!(store.heartbeat(&claim.lease).unwrap(), Some(prune("too slow")));
    // Released (its worker stopped by a signal) before acting: the next holder reads it.
    store.release(&claim.lease).unwrap();
    let again = store.claim(Some("h"), &worker(2), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(again.lease.trial, "h-2");
    assert_eq!(store.heartbeat(&again.lease).unwrap(), Some(prune("too slow")));
    let reason = prune("too slow").reason("h-2");
    assert_eq!(reason, "pruned by hand: too slow");
    store.finish(&again.lease, TrialStatus::Pruned, Some(&reason)).unwrap();
    let pruned = store.trial("h-2").unwrap();
    assert_eq!((pruned.status, pruned.error.as_deref(), pruned.epochs()), (TrialStatus::Pruned, Some(reason.as_str()), 1), "its epochs kept");

    // An ended trial is refused, naming its status; an unknown one is unknown.
    for (id, intervention) in [("h-2", Intervention::Stop), ("h-2", prune("")), ("h-3", Intervention::Stop)] {
        if id == "h-3" {
            // A completed one.
            let c = store.claim(Some("h"), &worker(3), &Reclaim::after(60.0)).unwrap().unwrap();
            assert_eq!(c.lease.trial, "h-3");
            store.finish(&c.lease, TrialStatus::Completed, None).unwrap();
        }
        let err = store.intervene(id, &intervention).unwrap_err();
        assert!(matches!(err, StoreError::CannotIntervene { .. }), "{err}");
        assert!(err.to_string().contains("this one has ended") && err.is_bad_input(), "{err}");
    }
    assert!(matches!(store.intervene("h-9", &Intervention::Stop), Err(StoreError::UnknownTrial { .. })));
    assert!(matches!(store.resume("h-3"), Err(StoreError::CannotIntervene { action: "resumed", .. })));

    // A stopped trial resumes as queued, with neither reason nor request, and is claimed again;
    // a finished trial's request is gone with it.
    store.resume("h-1").unwrap();
    let resumed = store.trial("h-1").unwrap();
    assert_eq!((resumed.status, resumed.error.as_deref(), resumed.finished), (TrialStatus::Queued, None, None));
    let c = store.claim(Some("h"), &worker(4), &Reclaim::after(60.0)).unwrap().unwrap();
    assert_eq!(c.lease.trial, "h-1");
    assert_eq!(store.heartbeat(&c.lease).unwrap(), None, "resuming cleared the request");
    store.intervene("h-1", &Intervention::Stop).unwrap();
    store.finish(&c.lease, TrialStatus::Stopped, Some(&Intervention::Stop.reason("h-1"))).unwrap();
    // Pruning a stopped trial ends it at once.
    assert_eq!(store.intervene("h-1", &prune("enough")).unwrap(), Intervened::Now(TrialStatus::Pruned));
    assert_eq!(store.trial("h-1").unwrap().error.as_deref(), Some("pruned by hand: enough"));
}
