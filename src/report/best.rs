//! `sweep best`: the best trial by a metric (the sweep's objective unless another is named), the
//! checkpoint that holds that epoch, and its text and JSON renderings. The re-evaluation of that
//! checkpoint is the caller's (it needs tensors); its figures come back as [`Reevaluated`].

use std::fmt::Write as _;

use super::{ReportError, fmt_num, fmt_param, json_number, metrics_table, sweep_objective, sweep_objectives};
use crate::config::{Goal, Objective, Split};
use crate::store::{self, CheckpointRow, SeedGroup, Store, TrialRow};

/// What `sweep best` asks: the sweep (all when None), the metric (`iou`, `val_iou`, `train_loss`;
/// the sweep's objective when None) with a split for a bare name, and a direction that overrides
/// the metric's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct BestQuery<'a> {
    pub sweep: Option<&'a str>,
    pub metric: Option<&'a str>,
    pub split: Option<&'a str>,
    pub goal: Option<Goal>,
}

/// The answer: the metric and direction ranked by, and the best trial when one has a value.
#[derive(Debug, Clone)]
pub struct Best {
    pub sweep: Option<String>,
    pub metric: String,
    pub goal: Goal,
    pub found: Option<BestFound>,
    /// Where the sweep trained configurations with several seeds: the best group by its mean
    /// ([`store::rank_groups`]; `found` is then its best trial), and how many groups were ranked.
    pub group: Option<(SeedGroup, usize)>,
}

/// The best completed trial, its best value and epoch, and its checkpoints.
#[derive(Debug, Clone)]
pub struct BestFound {
    pub trial: TrialRow,
    pub value: f64,
    pub epoch: i64,
    /// The trial's `best` checkpoint (its objective's best epoch), as shown.
    pub checkpoint: Option<CheckpointRow>,
    /// The checkpoint that holds `epoch`: `best`, or `last` when the metric is not the trial's
    /// objective and its best epoch is the last one (`best` when neither does).
    pub holding: &'static str,
}

/// A checkpoint evaluated again on the validation split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reevaluated {
    /// The epoch whose model the checkpoint holds.
    pub epoch: i64,
    /// At the training resolution (the tracker's `val_*`).
    pub loss: f64,
    pub dice: f64,
    pub iou: f64,
    pub fg_iou: f64,
    /// At each image's original size: pooled over every pixel (`val_full_*`), and the mean of
    /// the images' own figures.
    pub full: Figures,
    pub full_mean_per_image: Figures,
}

impl Reevaluated {
    /// The `eval` object of `sweep best --json`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "checkpoint_epoch": self.epoch,
            "loss": json_number(self.loss), "dice": json_number(self.dice), "iou": json_number(self.iou), "fg_iou": json_number(self.fg_iou),
            "original_size": {"pooled": self.full.json(), "mean_per_image": self.full_mean_per_image.json()},
        })
    }
}

/// Dice, mean IoU and car IoU of thresholded masks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub dice: f64,
    pub iou: f64,
    pub fg_iou: f64,
}

impl Figures {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({"dice": json_number(self.dice), "iou": json_number(self.iou), "fg_iou": json_number(self.fg_iou)})
    }
}

/// Finds the best trial. A flag that cannot be used (`--split` without `--metric`, a metric
/// that is not one, sweeps that follow different objectives) is [`ReportError::Usage`].
pub fn best(store: &dyn Store, q: &BestQuery) -> Result<Best, ReportError> {
    if let Some(s) = q.sweep {
        store::find_sweep(store, s)?;
    }
    let objective = match q.metric {
        Some(m) => {
            let name = metric_name(m, q.split)?;
            Objective { goal: Goal::for_metric(&name), name }
        }
        None if q.split.is_some() => return Err(usage("--split needs --metric (without it, best follows the sweep's objective)")),
        None => default_objective(store, q.sweep)?,
    };
    let goal = q.goal.unwrap_or(objective.goal);
    let mut best = store.best(&objective.name, goal, q.sweep)?;
    // Seed groups are ranked by their mean: the best trial is the best of the best group.
    let mut group = None;
    if let Some(found) = &best {
        let trials = store.trials(&store::TrialFilter { sweep: Some(found.trial.sweep.clone()), status: None })?;
        if store::has_seed_groups(&trials) {
            let groups = store::rank_groups(&trials, &objective.name, goal);
            let ranked = groups.iter().filter(|g| g.mean.is_some()).count();
            if let Some(top) = store::best_ranked(&trials, &objective.name, goal) {
                best = Some(store::BestTrial { trial: top.trial.clone(), value: top.value, epoch: top.epoch });
            }
            group = groups.into_iter().next().filter(|g| g.mean.is_some()).map(|g| (g, ranked));
        }
    }
    let found = match best {
        None => None,
        Some(best) => {
            let checkpoints = store.checkpoints(&best.trial.id)?;
            let holding = match store::checkpoint_for_epoch(&checkpoints, best.epoch) {
                Some(c) if c.kind == "last" => "last",
                _ => "best",
            };
            let checkpoint = checkpoints.into_iter().find(|c| c.kind == "best");
            Some(BestFound { trial: best.trial, value: best.value, epoch: best.epoch, checkpoint, holding })
        }
    };
    Ok(Best { sweep: q.sweep.map(String::from), metric: objective.name, goal, found, group })
}

impl Best {
    /// Why there is no best trial (for a `found` of None).
    pub fn none_reason(&self) -> String {
        let within = self.sweep.as_ref().map(|s| format!(" in sweep {s}")).unwrap_or_default();
        format!("no completed trial has a {} value yet{within}", self.metric)
    }

    /// The JSON document of `sweep best --json`: the trial, or `"run": null` with the reason.
    pub fn json(&self, eval: Option<&Reevaluated>) -> serde_json::Value {
        let Some(b) = &self.found else {
            return serde_json::json!({"run": null, "sweep": self.sweep, "metric": self.metric, "goal": self.goal.as_str(), "error": self.none_reason()});
        };
        let mut v = serde_json::json!({
            "run": b.trial.id,
            "sweep": b.trial.sweep,
            "status": b.trial.status,
            "metric": self.metric,
            "goal": self.goal.as_str(),
            "value": b.value,
            "epoch": b.epoch,
            "params": b.trial.params,
            "metrics": b.trial.metrics,
            "checkpoint": b.checkpoint,
        });
        if let Some((group, ranked)) = &self.group {
            v["group"] = serde_json::json!({
                "id": group.id, "params": group.params, "trials": group.trials, "values": group.values,
                "mean": group.mean, "std": group.std, "n": group.n(), "groups_ranked": ranked,
            });
        }
        if let Some(e) = eval {
            v["eval"] = e.json();
        }
        v
    }

    /// The text of `sweep best` (empty without a best trial).
    pub fn text(&self, eval: Option<&Reevaluated>) -> String {
        let Some(b) = &self.found else { return String::new() };
        let (metric, mut out) = (&self.metric, String::new());
        let _ = writeln!(out, "best trial   {} (sweep {}, {})", b.trial.id, b.trial.sweep, b.trial.status.as_str());
        let _ = writeln!(out, "{metric:<12} {} at epoch {} ({})", fmt_num(b.value), b.epoch, self.goal.as_str());
        if let Some((group, ranked)) = &self.group {
            let _ = writeln!(
                out,
                "seed group   {}: {metric} {} over {}, the best of {ranked} group(s) by mean; this is its best trial",
                group.id,
                crate::report::group_cell(group),
                group.trials.join(" ")
            );
        }
        for (i, (k, v)) in b.trial.params.iter().enumerate() {
            let _ = writeln!(out, "{:<12} {k} = {}", if i == 0 { "params" } else { "" }, fmt_param(v));
        }
        if let Some(c) = &b.checkpoint {
            let _ = writeln!(out, "checkpoint   {} (epoch {})", c.path, c.epoch);
        }
        out.push('\n');
        out.push_str(&metrics_table(std::slice::from_ref(&b.trial)));
        if let Some(e) = eval {
            let _ = writeln!(out, "\nre-evaluated the {} checkpoint (epoch {}) on the validation split:", b.holding, e.epoch);
            if e.epoch != b.epoch {
                let _ = writeln!(
                    out,
                    "(the run keeps checkpoints of its objective's best epoch and of its last epoch; {metric}'s best epoch {} has none)",
                    b.epoch
                );
            }
            let _ = writeln!(
                out,
                "at the training resolution:      loss {}  dice {}  iou {}  fg_iou {}",
                fmt_num(e.loss),
                fmt_num(e.dice),
                fmt_num(e.iou),
                fmt_num(e.fg_iou)
            );
            for (label, f) in [("at original size, pooled:        ", &e.full), ("at original size, mean per image:", &e.full_mean_per_image)] {
                let _ = writeln!(out, "{label} dice {}  iou {}  fg_iou {}", fmt_num(f.dice), fmt_num(f.iou), fmt_num(f.fg_iou));
            }
        }
        out
    }
}

fn usage(message: impl Into<String>) -> ReportError {
    ReportError::Usage(message.into())
}

/// `--metric iou --split val` → `val_iou`; `--metric train_loss` and a cost (`infer_ms`) stay.
fn metric_name(metric: &str, split: Option<&str>) -> Result<String, ReportError> {
    if crate::config::COST_METRICS.contains(&metric) {
        return match split {
            None => Ok(metric.to_string()),
            Some(s) => Err(usage(format!("--metric {metric} is a cost, recorded once a trial and in no split; drop --split {s}"))),
        };
    }
    let name = match (Objective::parse_name(metric), split) {
        (Some(_), None) => metric.to_string(),
        (Some(_), Some(s)) => return Err(usage(format!("--metric {metric} already names its split; drop --split {s}"))),
        (None, s) => {
            let split = match s {
                None => Split::Val,
                Some(s) => Split::parse(s).ok_or_else(|| usage(format!("--split {s}: expected train or val")))?,
            };
            format!("{}_{metric}", split.as_str())
        }
    };
    if Objective::parse_name(&name).is_none() {
        return Err(usage(format!(
            "--metric {metric}: expected loss, dice, iou or fg_iou (optionally prefixed train_ or val_), full_dice, full_iou or full_fg_iou (at the images' original size, split val), or a cost: {}",
            crate::config::COST_METRICS.join(", ")
        )));
    }
    Ok(name)
}

/// What `sweep best` ranks by without `--metric`: the objective of the sweep named, or the one
/// every sweep of the tracker shares.
fn default_objective(store: &dyn Store, sweep: Option<&str>) -> Result<Objective, ReportError> {
    let each = per_sweep(store, sweep, sweep_objective)?;
    Ok(shared(each, |o| format!("{} {}", o.name, o.goal.as_str()), ", ")?.unwrap_or_default())
}

/// The objectives `sweep best` shows a Pareto front by: those of the sweep named (of every
/// sweep, when they share them) where it has several and no `--metric` names one; None where
/// one objective is followed. Sweeps that follow different objectives are a usage error.
pub fn front_objectives(store: &dyn Store, q: &BestQuery) -> Result<Option<Vec<Objective>>, ReportError> {
    if q.metric.is_some() {
        return Ok(None);
    }
    let each = per_sweep(store, q.sweep, sweep_objectives)?;
    if each.iter().all(|(_, o)| o.len() <= 1) {
        return Ok(None);
    }
    let list = |o: &Vec<Objective>| o.iter().map(|o| format!("{} {}", o.name, o.goal.as_str())).collect::<Vec<_>>().join(", ");
    let objectives = shared(each, list, "; ")?;
    if q.goal.is_some() || q.split.is_some() {
        return Err(usage(
            "--goal and --split apply to one metric; with several objectives, name it with --metric (each objective keeps its own goal)",
        ));
    }
    Ok(objectives)
}

/// `of` each sweep named (every sweep of the tracker when None), with the sweep's name.
fn per_sweep<T>(
    store: &dyn Store,
    sweep: Option<&str>,
    of: impl Fn(&dyn Store, &store::SweepInfo) -> Result<T, store::StoreError>,
) -> Result<Vec<(String, T)>, ReportError> {
    let sweeps = match sweep {
        Some(s) => vec![store::find_sweep(store, s)?],
        None => store.sweeps()?,
    };
    sweeps.into_iter().map(|info| Ok((info.name.clone(), of(store, &info)?))).collect()
}

/// What every sweep of `each` shares (None without a sweep); sweeps that differ are a usage
/// error naming each one's (`describe`d, separated by `sep`).
fn shared<T: PartialEq + Clone>(each: Vec<(String, T)>, describe: impl Fn(&T) -> String, sep: &str) -> Result<Option<T>, ReportError> {
    match each.as_slice() {
        [] => Ok(None),
        [(_, first), rest @ ..] if rest.iter().all(|(_, o)| o == first) => Ok(Some(first.clone())),
        _ => {
            let said: Vec<String> = each.iter().map(|(s, o)| format!("{s} ({})", describe(o))).collect();
            Err(usage(format!("the sweeps follow different objectives: {}; name one with --sweep, or a --metric", said.join(sep))))
        }
    }
}
