//! Warm start: which finished trials of other sweeps a sweep's TPE may learn from (`[bayes]
//! warm_start`), read once here for the sampler, the sweep's page and its charts alike.

use std::collections::{BTreeMap, BTreeSet};

use super::{Detail, HistoryView, Store, StoreResult, TrialFilter, TrialHistory, TrialStatus, settings_of};
use crate::config::TrialConfig;

/// Settings a warm-start trial may differ in and still be compared: its seed, and its epoch
/// count (values are compared epoch by epoch, and a pruned trial ranks by its depth anyway).
const IGNORED: &[&str] = &["train.seed", "train.epochs"];

/// What one `warm_start` sweep lends.
#[derive(Debug, Clone, PartialEq)]
pub struct WarmSource {
    pub sweep: String,
    /// Its finished trials (completed, pruned or diverged) whose fixed settings match.
    pub trials: Vec<TrialHistory>,
    /// Trials left out, counted by the first setting that differs (`data.image_size is 32
    /// there, 24 here`).
    pub left_out: BTreeMap<String, usize>,
}

impl WarmSource {
    /// `4 trial(s) of hue (2 left out: 2 because data.image_size is 32 there, 24 here)`.
    pub fn describe(&self) -> String {
        let mut line = format!("{} trial(s) of {}", self.trials.len(), self.sweep);
        if !self.left_out.is_empty() {
            let why: Vec<String> = self.left_out.iter().map(|(why, n)| format!("{n} because {why}")).collect();
            line.push_str(&format!(" ({} left out: {})", self.left_out.values().sum::<usize>(), why.join("; ")));
        }
        line
    }
}

/// The finished trials of each of `sweeps` that a sweep swept over `swept` with fixed settings
/// `base` can learn from, with their values of `metric` and the record of each of `others` (a
/// sweep's other objectives and what its constraints bound, as [`Store::ask`] reads them): those
/// whose every setting outside `swept` equals the sweep's (seed and epochs aside). A trial trained
/// at another image size or with another model measures something else and is left out, counted
/// by why.
pub fn sources(
    store: &dyn Store,
    sweeps: &[String],
    metric: &str,
    others: &[&str],
    swept: &BTreeSet<&str>,
    base: &TrialConfig,
) -> StoreResult<Vec<WarmSource>> {
    let base = settings_of(base);
    let mut out = Vec::new();
    for sweep in sweeps {
        let mut source = WarmSource { sweep: sweep.clone(), trials: Vec::new(), left_out: BTreeMap::new() };
        let mut finished: Vec<TrialHistory> = store
            .history(sweep, metric, HistoryView::Summary)?
            .into_iter()
            .filter(|r| matches!(r.status, TrialStatus::Completed | TrialStatus::Pruned | TrialStatus::Diverged | TrialStatus::Stopped))
            .collect();
        for other in others {
            let mut briefs = store.extremes(sweep, other)?;
            for row in &mut finished {
                if let Some(brief) = briefs.remove(&row.seq) {
                    row.extremes.insert(other.to_string(), brief);
                }
            }
        }
        // Every trial's settings in one read, not one query per trial: this runs on every ask.
        let filter = TrialFilter { sweep: Some(sweep.clone()), status: None };
        let detail = Detail { settings: true, ..Detail::ROWS };
        let mut settings_by_id: BTreeMap<String, BTreeMap<String, serde_json::Value>> =
            store.trial_data(&filter, detail)?.into_iter().map(|t| (t.row.id, t.row.settings)).collect();
        for row in finished {
            let settings = settings_by_id.remove(&row.id).unwrap_or_default();
            let differs = settings.iter().find(|(k, v)| !swept.contains(k.as_str()) && !IGNORED.contains(&k.as_str()) && base.get(*k) != Some(*v));
            match differs {
                Some((k, v)) => {
                    let here = base.get(k).map_or("unset".to_string(), ToString::to_string);
                    *source.left_out.entry(format!("{k} is {v} there, {here} here")).or_default() += 1;
                }
                None => source.trials.push(row),
            }
        }
        out.push(source);
    }
    Ok(out)
}
