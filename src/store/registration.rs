//! Registering trials in a sweep: what each configuration a sweep file asks for does to the
//! trials the sweep already holds ([`plan_registration`], the one rule for `sweep run`, its dry
//! run and `sweep enqueue`), and what registering reports.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::TrialStatus;
use crate::config::TrialConfig;

/// A trial to add to a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    pub config: TrialConfig,
    /// The swept parameters and their values (the keys of the sweep file's `[parameters]`).
    pub params: BTreeMap<String, serde_json::Value>,
}

/// What [`Store::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnqueueReport {
    /// Ids of runs created now.
    pub added: Vec<String>,
    /// Trials already present (the same config hash, or the same trial with another epoch
    /// target: those are also in `extended` or `kept`).
    pub existing: usize,
    /// Trials whose epoch target rose (see [`plan_registration`]).
    pub extended: Vec<Extension>,
    /// Trials of a config the file asks for with another epoch target, left as they are.
    pub kept: Vec<Kept>,
}

/// A trial whose epoch target rose: it continues from its last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub id: String,
    pub from: usize,
    pub to: usize,
    /// It had completed, and goes back to the queue.
    pub requeued: bool,
    /// It had failed: it takes the new target, and runs again only with `--retry-failed`.
    pub failed: bool,
}

/// A trial left as it is although the file asks for its config with another epoch target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub id: String,
    /// Why, for people: "was pruned", "is running (...)", "has 8 epochs as its target ...".
    pub reason: String,
}

/// A trial of a sweep, as [`plan_registration`] compares configs against it.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTrial {
    pub id: String,
    pub seq: i64,
    pub status: TrialStatus,
    pub config_hash: String,
    pub config: TrialConfig,
}

/// What registering one trial does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registering {
    /// The sweep has the config: the trial with this id.
    Known(String),
    /// A new trial.
    New,
    /// The sweep has the config with a lower epoch target: that trial continues.
    Extend(Extension),
    /// The sweep has the config with another epoch target, and that trial stays as it is.
    Keep(Kept),
}

/// How each of `trials` registers in a sweep that holds `known`, the one rule for `sweep run`
/// and its dry run. A config the sweep has is that trial. A config that differs from a trial's
/// only in `train.epochs` ([`TrialConfig::lineage`]) is that trial (the one with the most epochs,
/// when an older version made several): a higher target continues it from its last checkpoint
/// (a completed trial goes back to the queue; a queued or failed one will train to it), while a
/// running, pruned, diverged or stopped trial, or one with a higher target already, stays as it is. A
/// trial whose own config the file asks for is never taken over, and where `train.epochs` is a
/// swept parameter each value is its own trial. Anything else is new.
pub fn plan_registration(trials: &[NewTrial], known: &[KnownTrial]) -> Vec<Registering> {
    let hashes: Vec<String> = trials.iter().map(|t| t.config.hash()).collect();
    let by_hash: HashMap<&str, &KnownTrial> = known.iter().map(|k| (k.config_hash.as_str(), k)).collect();
    let asked: HashSet<&str> = hashes.iter().map(String::as_str).collect();
    let mut lineages: HashMap<String, &KnownTrial> = HashMap::new();
    for k in known.iter().filter(|k| !asked.contains(k.config_hash.as_str())) {
        let entry = lineages.entry(k.config.lineage()).or_insert(k);
        if (k.config.train.epochs, std::cmp::Reverse(k.seq)) > (entry.config.train.epochs, std::cmp::Reverse(entry.seq)) {
            *entry = k;
        }
    }
    trials
        .iter()
        .zip(&hashes)
        .map(|(trial, hash)| {
            if let Some(k) = by_hash.get(hash.as_str()) {
                return Registering::Known(k.id.clone());
            }
            if trial.params.contains_key("train.epochs") {
                return Registering::New;
            }
            // Each known trial continues as one config at most.
            match lineages.remove(&trial.config.lineage()) {
                Some(k) => continuation(k, trial.config.train.epochs),
                None => Registering::New,
            }
        })
        .collect()
}

/// What a target of `to` epochs does to the known trial `k` of the same lineage.
fn continuation(k: &KnownTrial, to: usize) -> Registering {
    let from = k.config.train.epochs;
    let keep = |reason: String| Registering::Keep(Kept { id: k.id.clone(), reason });
    if from > to {
        return keep(format!("has {from} epochs as its target already (a lower train.epochs retrains nothing)"));
    }
    match k.status {
        TrialStatus::Running => keep("is running (run the sweep again once it has ended to extend it)".into()),
        TrialStatus::Pruned | TrialStatus::Diverged | TrialStatus::Infeasible => keep(format!("was {}", k.status.as_str())),
        TrialStatus::Stopped => keep(format!("is stopped (`sweep resume {}` continues it; run the sweep again afterwards to extend it)", k.id)),
        TrialStatus::Completed | TrialStatus::Queued | TrialStatus::Failed => Registering::Extend(Extension {
            id: k.id.clone(),
            from,
            to,
            requeued: k.status == TrialStatus::Completed,
            failed: k.status == TrialStatus::Failed,
        }),
    }
}

/// What [`Store::register_sweep`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepRegistration {
    New,
    Unchanged,
    /// The same name with another spec: new configs will be added beside the old runs.
    SpecChanged {
        previous_hash: String,
    },
}
