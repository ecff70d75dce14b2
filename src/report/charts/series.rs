//! The data of every chart, computed apart from drawing: pure functions from tracker rows to
//! series, ranges and labels. Tests check these; `charts` only draws what they return.
//!
//! NaN and infinite values are skipped (never drawn as zero), so a diverged run's curve simply
//! stops where its values stop being finite.

use std::collections::{BTreeMap, HashSet};

use crate::config::Goal;
use crate::report::axis::{Axis, axis, range_of};
use crate::report::fmt_param;
use crate::report::html::CurveView;
use crate::store::{TrialData, TrialRow, TrialStatus, best_id, leaderboard_order};

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub run: String,
    /// What the legend says (empty: not in the legend).
    pub label: String,
    /// `train` series are drawn dashed.
    pub split: String,
    pub points: Vec<(f64, f64)>,
    /// The best run's series, drawn bold and in colour.
    pub highlighted: bool,
    /// Index into the palette (for runs named in the legend).
    pub colour: Option<usize>,
    /// The trial was pruned: its curve stops early on purpose, and ends in a cross.
    pub pruned: bool,
}

/// A chart's lines with the ranges that hold them.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// A note under the legend, e.g. "and 180 more runs (grey)".
    pub note: Option<String>,
    /// The points outside `y_range` (an outlier it leaves out, see [`robust_range`]): (run,
    /// epoch, value). They are drawn at the range's edge, marked with their value.
    pub clipped: Vec<(String, f64, f64)>,
    /// Each trial's tooltip in the dashboard's SVG: its id and the parameters that vary.
    pub tips: BTreeMap<String, String>,
    /// The values are log10 of the metric's ([`CurveView::log`]): the axis labels them as powers.
    pub y_log: bool,
}

impl Chart {
    fn new(title: String, x_label: &str, y_label: &str, series: Vec<Series>, note: Option<String>) -> Self {
        let chart = Chart {
            title,
            x_label: x_label.into(),
            y_label: y_label.into(),
            series,
            x_range: (1.0, 2.0),
            y_range: (0.0, 1.0),
            note,
            clipped: Vec::new(),
            tips: BTreeMap::new(),
            y_log: false,
        };
        chart.fitted(None)
    }

    /// The chart with its ranges fitted to its points: y by [`robust_range`], or `y` when given
    /// (a zoom), and the points outside listed as clipped.
    fn fitted(self, y: Option<(f64, f64)>) -> Self {
        let xs = range_of(self.series.iter().flat_map(|s| s.points.iter().map(|p| &p.0)));
        let ys: Vec<f64> = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|y| y.is_finite()).collect();
        let (lo, hi) = y.unwrap_or_else(|| robust_range(&ys));
        let clipped = self.series.iter().flat_map(|s| s.points.iter().filter(|p| p.1 < lo || p.1 > hi).map(|p| (s.run.clone(), p.0, p.1))).collect();
        Chart {
            x_range: if xs.0.is_finite() { (xs.0.min(1.0), xs.1.max(xs.0 + 1.0)) } else { (1.0, 2.0) },
            y_range: if y.is_some() { (lo, hi) } else { padded(lo, hi) },
            clipped,
            ..self
        }
    }
}

/// The curves of `metric` (`loss`, `iou`, ...) as `view` shows them (the title says how).
pub fn viewed(view: &CurveView, mut chart: Chart, metric: &str) -> Chart {
    let log = view.log && metric.ends_with("loss");
    let zoom = view.zoom.as_ref().filter(|(m, _, _)| m == metric).map(|(_, lo, hi)| (*lo, *hi));
    if !log && view.smooth == 0.0 && zoom.is_none() {
        return chart;
    }
    let mut said = Vec::new();
    if view.smooth > 0.0 {
        for s in &mut chart.series {
            s.points = smoothed(&s.points, view.smooth);
        }
        said.push(format!("smoothed {}", view.smooth));
    }
    let mut y = zoom;
    if log {
        for s in &mut chart.series {
            s.points = s.points.iter().filter(|p| p.1 > 0.0).map(|&(x, v)| (x, v.log10())).collect();
        }
        chart.series.retain(|s| !s.points.is_empty());
        chart.y_log = true;
        y = y.map(|(lo, hi)| (lo.max(f64::MIN_POSITIVE).log10(), hi.max(f64::MIN_POSITIVE).log10()));
        said.push("log scale".into());
    }
    if let Some((lo, hi)) = zoom {
        said.push(format!("y from {} to {}", crate::report::fmt_num(lo), crate::report::fmt_num(hi)));
    }
    chart.title = format!("{} ({})", chart.title, said.join(", "));
    chart.fitted(y)
}

/// TensorBoard's smoothing of a curve: an exponential moving average with `weight`, divided by
/// the weight it has gathered so far, so that the first points are not pulled towards 0.
pub fn smoothed(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let (mut sum, mut gathered) = (0.0, 0.0);
    points
        .iter()
        .map(|&(x, v)| {
            sum = weight * sum + (1.0 - weight) * v;
            gathered = weight * gathered + (1.0 - weight);
            (x, sum / gathered)
        })
        .collect()
}

/// The range of a chart's values: all of them, unless some lie far outside the rest (an epoch-1
/// loss of 21 among losses under 1.5, which would flatten every curve). The values inside Tukey's
/// far-out fences (the quartiles widened by 3 interquartile ranges) span a width; a value more
/// than that width beyond them is clipped, and the range stops at the farthest value that is not.
/// A first epoch a little above the rest is no outlier; with a spread of 0 nothing is. (NaN, NaN)
/// for no value.
pub fn robust_range(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let at = q * (sorted.len() - 1) as f64;
        let (i, frac) = (at.floor() as usize, at - at.floor());
        sorted[i] + (sorted[(i + 1).min(sorted.len() - 1)] - sorted[i]) * frac
    };
    let (q1, q3) = (quantile(0.25), quantile(0.75));
    let spread = q3 - q1;
    let (all_lo, all_hi) = (sorted[0], sorted[sorted.len() - 1]);
    if spread <= 0.0 {
        return (all_lo, all_hi);
    }
    let (low, high) = (q1 - 3.0 * spread, q3 + 3.0 * spread);
    let inside: Vec<f64> = sorted.iter().copied().filter(|v| (low..=high).contains(v)).collect();
    let (in_lo, in_hi) = (inside[0], inside[inside.len() - 1]);
    // Values within one such width beyond the fenced ones stay in range; only the farther ones
    // are clipped.
    let width = in_hi - in_lo;
    let lo = sorted.iter().copied().find(|v| *v >= in_lo - width).unwrap_or(all_lo);
    let hi = sorted.iter().rev().copied().find(|v| *v <= in_hi + width).unwrap_or(all_hi);
    (lo, hi)
}

/// How many runs may have their own legend entry and colour (every run up to [`CROWDED`]).
pub const LEGEND_RUNS: usize = 40;
/// Beyond this many runs the chart is crowded: only the best [`CROWDED_LEGEND_RUNS`] keep a
/// colour and a legend entry, and the others are drawn thin and grey.
pub const CROWDED: usize = 40;
pub const CROWDED_LEGEND_RUNS: usize = 3;

/// How many runs get a legend entry in a chart of `runs` runs.
pub fn legend_size(runs: usize) -> usize {
    if runs > CROWDED { CROWDED_LEGEND_RUNS } else { LEGEND_RUNS }
}

/// A legend label: the run id and its values of the parameters that vary, by their last segment.
pub fn label(row: &TrialRow, keys: &[String]) -> String {
    let values: Vec<String> =
        keys.iter().filter_map(|k| row.params.get(k).map(|v| format!("{}={}", k.rsplit('.').next().unwrap_or(k), fmt_param(v)))).collect();
    if values.is_empty() { row.id.clone() } else { format!("{} {}", row.id, values.join(" ")) }
}

fn padded(min: f64, max: f64) -> (f64, f64) {
    if !(min.is_finite() && max.is_finite()) {
        return (0.0, 1.0);
    }
    if (max - min).abs() < 1e-12 {
        let pad = if min.abs() > 1e-12 { min.abs() * 0.1 } else { 0.5 };
        return (min - pad, max + pad);
    }
    let pad = (max - min) * 0.05;
    (min - pad, max + pad)
}

/// Learning curves of every run for one metric: validation solid, training dashed, the best run
/// (by the sweep's objective) highlighted. Series come best run first (the legend's order). With
/// more than [`LEGEND_RUNS`] runs the legend names the best ones only and the rest are drawn thin
/// and grey.
pub fn learning_curves(runs: &[TrialData], metric: &str, objective: &str, goal: Goal) -> Chart {
    let keys = crate::report::varying_params(runs);
    let best = best_id(runs, objective, goal);
    let ranked = leaderboard_order(runs, objective, goal);
    let legend: BTreeMap<&str, usize> = ranked.iter().take(legend_size(runs.len())).enumerate().map(|(i, r)| (r.row.id.as_str(), i)).collect();
    let mut series = Vec::new();
    for run in &ranked {
        let colour = legend.get(run.row.id.as_str()).copied();
        let highlighted = best.as_deref() == Some(run.row.id.as_str());
        for split in ["train", "val"] {
            let points = run.points(split, metric);
            if points.is_empty() {
                continue;
            }
            let pruned = run.row.status == TrialStatus::Pruned;
            let label = match (split == "val" && colour.is_some(), pruned) {
                (false, _) => String::new(),
                (true, false) => label(&run.row, &keys),
                (true, true) => format!("{} (pruned)", label(&run.row, &keys)),
            };
            series.push(Series { run: run.row.id.clone(), label, split: split.into(), points, highlighted, colour, pruned });
        }
    }
    let hidden = runs.len().saturating_sub(legend_size(runs.len()));
    let title = format!(
        "{metric} of every trial by epoch: validation solid, training dashed, pruned ending in x (best: {})",
        best.as_deref().unwrap_or("none yet")
    );
    let chart = Chart::new(title, "epoch", &metric.replace('_', " "), series, (hidden > 0).then(|| format!("and {hidden} more runs (grey)")));
    Chart { tips: tips(runs), ..chart }
}

/// Each trial's tooltip: its id and its values of the parameters that vary among `runs`.
pub fn tips(runs: &[TrialData]) -> BTreeMap<String, String> {
    let keys = crate::report::varying_params(runs);
    runs.iter().map(|r| (r.row.id.clone(), label(&r.row, &keys))).collect()
}

/// The tutorial's two-panel chart of one run: dice loss (1 - dice) and loss, train vs validation.
pub fn run_panels(run: &TrialData) -> [Chart; 2] {
    let panel = |name: &str, title: &str, transform: fn(f64) -> f64| {
        let series: Vec<Series> = ["train", "val"]
            .iter()
            .enumerate()
            .map(|(i, split)| Series {
                run: run.row.id.clone(),
                label: format!("{} {title}", if *split == "train" { "training" } else { "validation" }),
                split: split.to_string(),
                points: run.points(split, name).into_iter().map(|(x, y)| (x, transform(y))).collect(),
                highlighted: false,
                colour: Some(i),
                pruned: false,
            })
            .collect();
        Chart::new(format!("{} — {title}", run.row.id), "epoch", title, series, None)
    };
    // A program's trial that reports no dice shows its first other validation metric instead.
    let has = |key: &str| run.row.metrics.contains_key(key);
    let other = run.row.metrics.keys().filter_map(|k| k.strip_prefix("val_")).find(|m| *m != "loss" && !has("val_dice"));
    match other {
        Some(metric) if !has("train_dice") => [panel(metric, metric, |v| v), panel("loss", "loss", |l| l)],
        _ => [panel("dice", "dice loss", |d| 1.0 - d), panel("loss", "loss", |l| l)],
    }
}

/// The objective against one parameter: a point per run with a value of both.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    pub param: String,
    pub objective: String,
    pub axis: Axis,
    /// (position on the axis, best objective value, run id)
    pub points: Vec<(f64, f64, String)>,
    /// The same for the trials other sweeps lend through `[bayes] warm_start`.
    pub warm: Vec<(f64, f64, String)>,
    /// The sweeps that lend them.
    pub lenders: Vec<String>,
    pub best: Option<String>,
    pub y_range: (f64, f64),
    /// Each trial's tooltip ([`tips`]).
    pub tips: BTreeMap<String, String>,
}

pub fn scatter(runs: &[TrialData], param: &str, log: bool, objective: &str, goal: Goal) -> Scatter {
    scatter_with_warm_start(runs, &[], &[], param, log, objective, goal)
}

/// [`scatter`], with the trials `lenders` lend (`warm`) on the same axes.
pub fn scatter_with_warm_start(
    runs: &[TrialData],
    warm: &[TrialData],
    lenders: &[&str],
    param: &str,
    log: bool,
    objective: &str,
    goal: Goal,
) -> Scatter {
    let axis = axis(runs.iter().chain(warm), param, log);
    let points_of = |trials: &[TrialData]| -> Vec<(f64, f64, String)> {
        trials
            .iter()
            .filter_map(|r| {
                let x = axis.position(r.row.params.get(param)?)?;
                let (y, _) = r.row.best(objective, goal)?;
                y.is_finite().then(|| (x, y, r.row.id.clone()))
            })
            .collect()
    };
    let (points, warm) = (points_of(runs), points_of(warm));
    let (lo, hi) = range_of(points.iter().chain(&warm).map(|p| &p.1));
    Scatter {
        param: param.to_string(),
        objective: objective.to_string(),
        axis,
        best: best_id(runs, objective, goal),
        y_range: padded(lo, hi),
        lenders: if warm.is_empty() { Vec::new() } else { lenders.iter().map(|s| s.to_string()).collect() },
        points,
        warm,
        tips: tips(runs),
    }
}

/// The most trials a sweep's learning curves, scatter plots and parallel coordinates draw: a
/// chart of 10,000 curves is a grey blot and a page that no browser loads in seconds.
pub const CHARTED: usize = 100;
/// Of those, the best this many by the objective are always drawn.
pub const CHARTED_BEST: usize = 20;

/// The trials a sweep's charts draw, in `runs`' order: every one up to [`CHARTED`]; beyond, the
/// best [`CHARTED_BEST`] by the objective (the leaderboard's order), every running trial (up to
/// as many) and an evenly spaced sample of the others by trial number, so that a chart of a
/// large sweep still shows the search's shape and its best trials.
pub fn charted(runs: &[TrialData], objective: &str, goal: Goal) -> Vec<TrialData> {
    match chosen(runs, objective, goal) {
        None => runs.to_vec(),
        Some((keep, _)) => runs.iter().filter(|r| keep.contains(r.row.id.as_str())).cloned().collect(),
    }
}

/// The ids [`charted`] keeps; None when it keeps every trial.
pub fn charted_ids<'a>(runs: &'a [TrialData], objective: &str, goal: Goal) -> Option<HashSet<&'a str>> {
    chosen(runs, objective, goal).map(|(keep, _)| keep)
}

/// What [`charted`] leaves out of `runs`, in words for the page; None when it draws them all.
pub fn charted_note(runs: &[TrialData], objective: &str, goal: Goal) -> Option<String> {
    let (keep, running) = chosen(runs, objective, goal)?;
    let running = if running > 0 { format!(", {running} other running") } else { String::new() };
    Some(format!(
        "The charts draw {} of these {} trials: the best {CHARTED_BEST}{running} and the rest evenly spaced by trial number \
         (the optimisation history's running best is of all {}).",
        keep.len(),
        runs.len(),
        runs.len()
    ))
}

/// [`charted`]'s choice: the ids it keeps and how many of them are running trials outside the
/// best; None when it keeps every trial.
fn chosen<'a>(runs: &'a [TrialData], objective: &str, goal: Goal) -> Option<(HashSet<&'a str>, usize)> {
    if runs.len() <= CHARTED {
        return None;
    }
    let mut keep: HashSet<&str> = leaderboard_order(runs, objective, goal).iter().take(CHARTED_BEST).map(|r| r.row.id.as_str()).collect();
    let running: Vec<&str> = runs
        .iter()
        .filter(|r| r.row.status == TrialStatus::Running && !keep.contains(r.row.id.as_str()))
        .map(|r| r.row.id.as_str())
        .take(CHARTED_BEST)
        .collect();
    let running_count = running.len();
    keep.extend(running);
    let mut others: Vec<&TrialData> = runs.iter().filter(|r| !keep.contains(r.row.id.as_str())).collect();
    others.sort_by(|a, b| a.row.seq.cmp(&b.row.seq).then_with(|| a.row.id.cmp(&b.row.id)));
    let sampled = (CHARTED - keep.len()).min(others.len());
    // Evenly spaced: the i-th of `sampled` at i * len / sampled, from the first on.
    keep.extend((0..sampled).map(|i| others[i * others.len() / sampled].row.id.as_str()));
    Some((keep, running_count))
}

/// The optimisation history: every trial's objective (its best epoch) by trial number, and the
/// running best, the way one judges a search (TPE against random): how soon it found good
/// trials, and whether it still does.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub objective: String,
    pub goal: Goal,
    /// (trial number, objective value, status, trial id) for each trial with a value.
    pub points: Vec<(f64, f64, TrialStatus, String)>,
    /// The best completed value so far at each completed trial's number (the ranking's rule:
    /// completed trials only, so a pruned trial's early value never counts as a best).
    pub running_best: Vec<(f64, f64)>,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// Each trial's tooltip ([`tips`]).
    pub tips: BTreeMap<String, String>,
}

pub fn history(runs: &[TrialData], objective: &str, goal: Goal) -> History {
    let mut by_number: Vec<&TrialData> = runs.iter().collect();
    by_number.sort_by_key(|r| r.row.seq);
    let points: Vec<(f64, f64, TrialStatus, String)> = by_number
        .iter()
        .filter_map(|r| r.row.best(objective, goal).map(|(v, _)| (r.row.seq as f64, v, r.row.status, r.row.id.clone())))
        .filter(|p| p.1.is_finite())
        .collect();
    let mut running_best = Vec::new();
    let mut best: Option<f64> = None;
    for (x, v, status, _) in &points {
        if *status == TrialStatus::Completed && goal.improves(*v, best) {
            best = Some(*v);
        }
        if let Some(b) = best.filter(|_| *status == TrialStatus::Completed) {
            running_best.push((*x, b));
        }
    }
    let xs = range_of(points.iter().map(|p| &p.0));
    let ys = range_of(points.iter().map(|p| &p.1));
    History {
        objective: objective.to_string(),
        goal,
        points,
        running_best,
        x_range: if xs.0.is_finite() { (xs.0 - 0.5, xs.1 + 0.5) } else { (0.5, 1.5) },
        y_range: padded(ys.0, ys.1),
        tips: tips(runs),
    }
}

impl History {
    /// Keeps the points of the trials in `keep` and those that set a new running best (where the
    /// running best line steps), with their tips; the running best stays the one of every trial.
    pub fn thinned(mut self, keep: &HashSet<&str>) -> History {
        let mut best: Option<f64> = None;
        self.points.retain(|(_, v, status, id)| {
            let improves = *status == TrialStatus::Completed && self.goal.improves(*v, best);
            if improves {
                best = Some(*v);
            }
            improves || keep.contains(id.as_str())
        });
        let drawn: HashSet<&str> = self.points.iter().map(|p| p.3.as_str()).collect();
        self.tips.retain(|id, _| drawn.contains(id.as_str()));
        self
    }
}

/// Seed groups side by side, ranked by their mean (`store::rank_groups`): each group's completed
/// trials' best values as dots, their mean as a bar and ± one standard deviation as a whisker.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    pub objective: String,
    pub goal: Goal,
    /// Per group, in rank order: its id, its trials' (id, value), its mean and standard deviation.
    pub groups: Vec<(String, Vec<(String, f64)>, Option<f64>, Option<f64>)>,
    pub y_range: (f64, f64),
    /// Each trial's tooltip ([`tips`]).
    pub tips: BTreeMap<String, String>,
}

/// [`Groups`] of `runs`, the groups with a completed trial only.
pub fn groups(runs: &[TrialData], objective: &str, goal: Goal) -> Groups {
    let ranked = crate::store::rank_groups(runs, objective, goal);
    // The values rank_groups averaged, by trial: each completed trial's best.
    let completed: BTreeMap<&str, f64> = runs
        .iter()
        .filter(|r| r.row.status == TrialStatus::Completed)
        .filter_map(|r| r.row.best(objective, goal).map(|(v, _)| (r.row.id.as_str(), v)))
        .collect();
    let value_of = |id: &String| completed.get(id.as_str()).map(|v| (id.clone(), *v));
    let groups: Vec<(String, Vec<(String, f64)>, Option<f64>, Option<f64>)> = ranked
        .into_iter()
        .filter(|g| g.mean.is_some())
        .map(|g| (g.id.clone(), g.trials.iter().filter_map(value_of).collect(), g.mean, g.std))
        .collect();
    let spread = groups.iter().flat_map(|(_, values, mean, std)| {
        let whisker = mean.zip(*std).map(|(m, s)| [m - s, m + s]).into_iter().flatten();
        values.iter().map(|v| v.1).chain(whisker)
    });
    let values: Vec<f64> = spread.filter(|v| v.is_finite()).collect();
    let ys = range_of(values.iter());
    Groups { objective: objective.to_string(), goal, groups, y_range: padded(ys.0, ys.1), tips: tips(runs) }
}

/// Parallel coordinates: an axis per swept parameter plus the objective, a line per run.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallel {
    pub axes: Vec<(String, Axis)>,
    /// Per run: positions in [0, 1] on every parameter axis (None where the parameter did not
    /// apply to the trial: a `when` parameter), then the objective's value.
    pub lines: Vec<(Vec<Option<f64>>, f64)>,
    /// The trial of each line, in the same order.
    pub ids: Vec<String>,
    /// Each trial's tooltip ([`tips`]).
    pub tips: BTreeMap<String, String>,
    pub objective: String,
    /// The objective's direction: the lines are drawn worst first, so the best lie on top.
    pub goal: Goal,
    pub value_range: (f64, f64),
}

pub fn parallel(runs: &[TrialData], params: &[(String, bool)], objective: &str, goal: Goal) -> Parallel {
    let axes: Vec<(String, Axis)> = params.iter().map(|(k, log)| (k.clone(), axis(runs, k, *log))).collect();
    // A trial that a conditional parameter did not apply to keeps its line: "n/a" on that axis.
    let drawn: Vec<(String, Vec<Option<f64>>, f64)> = runs
        .iter()
        .filter_map(|r| {
            let (value, _) = r.row.best(objective, goal)?;
            Some((r.row.id.clone(), axes.iter().map(|(k, a)| r.row.params.get(k).and_then(|v| a.normalised(v))).collect(), value))
        })
        .collect();
    let ids = drawn.iter().map(|d| d.0.clone()).collect();
    let lines: Vec<(Vec<Option<f64>>, f64)> = drawn.into_iter().map(|(_, p, v)| (p, v)).collect();
    let value_range = range_of(lines.iter().map(|l| &l.1));
    let value_range = if value_range.0.is_finite() { value_range } else { (0.0, 1.0) };
    Parallel { axes, lines, ids, tips: tips(runs), objective: objective.into(), goal, value_range }
}

/// A sweep of several objectives: its completed trials by each pair of objectives, the Pareto
/// front marked, and the hypervolume the trials covered as they finished.
#[derive(Debug, Clone)]
pub struct Pareto {
    /// The objectives' names and directions, in the sweep file's order.
    pub objectives: Vec<(String, Goal)>,
    /// Each completed trial with a value of every objective: its values, its id, whether it is
    /// on the front.
    pub points: Vec<(Vec<f64>, String, bool)>,
    /// The infeasible trials (a `[[constraints]]` bound broken) with a value of every
    /// objective: drawn crossed, never on the front.
    pub infeasible: Vec<(Vec<f64>, String)>,
    /// (trials finished, hypervolume of their values against `reference`), in trial order, at
    /// most [`CHARTED`] steps.
    pub hypervolume: Vec<(f64, f64)>,
    /// Each objective's worst value pushed past it ([`crate::study::pareto::nadir_reference`]).
    pub reference: Vec<f64>,
    pub tips: BTreeMap<String, String>,
}

/// The Pareto chart's data; None for fewer than two objectives or no completed trial with a
/// value of each.
pub fn pareto(runs: &[TrialData], objectives: &[crate::config::Objective]) -> Option<Pareto> {
    use crate::study::pareto;
    if objectives.len() < 2 {
        return None;
    }
    let goals: Vec<Goal> = objectives.iter().map(|o| o.goal).collect();
    let mut completed: Vec<(&TrialData, Vec<f64>)> = runs
        .iter()
        .filter(|r| r.row.status == TrialStatus::Completed)
        .filter_map(|r| crate::report::front::objective_values(&r.row, objectives).map(|v| (r, v)))
        .collect();
    if completed.is_empty() {
        return None;
    }
    let infeasible: Vec<(Vec<f64>, String)> = runs
        .iter()
        .filter(|r| r.row.status == TrialStatus::Infeasible)
        .filter_map(|r| crate::report::front::objective_values(&r.row, objectives).map(|v| (v, r.row.id.clone())))
        .collect();
    completed.sort_by_key(|(r, _)| r.row.seq);
    let values: Vec<Vec<f64>> = completed.iter().map(|(_, v)| v.clone()).collect();
    let reference = pareto::nadir_reference(&values, &goals)?;
    let mut on_front = vec![false; values.len()];
    for i in pareto::fronts(&values, &goals).into_iter().next().unwrap_or_default() {
        on_front[i] = true;
    }
    // The hypervolume as trials finished, over the front so far (an archive that drops what a
    // newer trial dominates), at evenly spaced steps.
    let step = values.len().div_ceil(CHARTED).max(1);
    let mut archive: Vec<Vec<f64>> = Vec::new();
    let mut hypervolume = Vec::new();
    for (k, v) in values.iter().enumerate() {
        if !archive.iter().any(|a| pareto::dominates(a, v, &goals) || a == v) {
            archive.retain(|a| !pareto::dominates(v, a, &goals));
            archive.push(v.clone());
        }
        if (k + 1) % step == 0 || k + 1 == values.len() {
            hypervolume.push(((k + 1) as f64, pareto::hypervolume(&archive, &goals, &reference)));
        }
    }
    let tips = tips(runs);
    let points = completed.iter().zip(on_front).map(|((r, v), front)| (v.clone(), r.row.id.clone(), front)).collect();
    Some(Pareto { objectives: objectives.iter().map(|o| (o.name.clone(), o.goal)).collect(), points, infeasible, hypervolume, reference, tips })
}
