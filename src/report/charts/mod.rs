//! Comparison charts of a sweep and of a trial.
//!
//! `sweep plot` (and the end of `sweep run`) writes under `runs/<sweep>/plots/`: learning curves
//! per metric, the objective against each swept parameter, parallel coordinates, parameter
//! importance (from 5 completed or pruned trials on), the best trial's
//! two-panel chart and prediction grid, and an `index.html` showing them all with the
//! leaderboard. Chart data comes from the pure functions of [`series`]; [`draw`] only draws. The
//! prediction grid needs the model, so the caller passes it in as a function (`train::predict`
//! draws it): this module reads the tracker and never touches tensors.

pub mod draw;
pub mod series;

use std::path::{Path, PathBuf};

use crate::config::Objective;
use crate::report::importance::{self, ImportanceError, ParamImportance};
use crate::report::{ReportError, html};
use crate::store::{Detail, Store, StoreError, SweepInfo, TrialData, TrialFilter, warm};

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PlotError {
    pub path: PathBuf,
    pub reason: String,
}

/// What `plot_sweep` wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Charts that failed, with why (the others are still written).
    pub errors: Vec<String>,
}

/// A file-name-safe form of a parameter key.
fn slug(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Every trial of `sweep` with its metrics (one read, no query per trial).
pub fn load_trials(store: &dyn Store, sweep: &str) -> Result<Vec<TrialData>, StoreError> {
    store.trial_data(&TrialFilter { sweep: Some(sweep.to_string()), status: None }, Detail::METRICS)
}

/// The swept parameters of a sweep, in file order, each with whether it is log-distributed; read
/// from the stored sweep file, or from the trials' parameters if that no longer parses.
pub fn swept_parameters(info: Option<&SweepInfo>, runs: &[TrialData]) -> Vec<(String, bool)> {
    if let Some(spec) = info.and_then(|info| crate::study::spec::stored(info).ok()) {
        return spec.parameters.iter().map(|p| (p.key.clone(), p.domain.is_log())).collect();
    }
    crate::report::param_keys(runs).into_iter().map(|k| (k, false)).collect()
}

/// What a sweep's TPE learns from beside its own trials (`[bayes] warm_start`), for its page and
/// charts: each lending sweep with what it lends in words, and the trials it lends.
#[derive(Debug, Clone, Default)]
pub struct WarmStart {
    /// (sweep, `4 trial(s) of hue (…left out…)`)
    pub sources: Vec<(String, String)>,
    pub trials: Vec<TrialData>,
}

/// The warm start of a sweep as its stored sweep file asks for it (none when the file no longer
/// parses or asks for none).
pub fn warm_start(store: &dyn Store, info: &SweepInfo) -> Result<WarmStart, StoreError> {
    let Ok(spec) = crate::study::spec::stored(info) else { return Ok(WarmStart::default()) };
    let swept: std::collections::BTreeSet<&str> = spec.parameters.iter().map(|p| p.key.as_str()).collect();
    let mut warm = WarmStart::default();
    for source in warm::sources(store, &spec.warm_start, &spec.metric.name, &[], &swept, &spec.base)? {
        warm.sources.push((source.sweep.clone(), source.describe()));
        let lent: std::collections::HashSet<&str> = source.trials.iter().map(|t| t.id.as_str()).collect();
        warm.trials.extend(load_trials(store, &source.sweep)?.into_iter().filter(|t| lent.contains(t.row.id.as_str())));
    }
    Ok(warm)
}

/// A picture of the best trial's predictions that needs its model (the caller's, which holds
/// the tensors): its file name, and what draws it for a trial (its sweep and id) into a file.
pub struct TrialPicture<'a> {
    pub file: &'a str,
    pub draw: &'a dyn Fn(&str, &str, &Path) -> Result<(), String>,
}

/// Draws every chart of `sweep` into `out` (default `runs/<sweep>/plots/`), and the best trial's
/// `pictures` (its prediction grid, its worst images). A chart that fails is reported in
/// [`Written::errors`]; the others are still written.
pub fn plot_sweep(store: &dyn Store, sweep: &str, runs_dir: &Path, out: Option<&Path>, pictures: &[TrialPicture]) -> Result<Written, StoreError> {
    let runs = load_trials(store, sweep)?;
    if runs.is_empty() {
        return Err(StoreError::UnknownSweep { name: sweep.to_string(), suggestions: Vec::new() });
    }
    let info = store.sweeps()?.into_iter().find(|s| s.name == sweep);
    let objective = match &info {
        Some(info) => crate::report::sweep_objective(store, info)?,
        None => store.trial_config(&runs[0].row.id).map(|c| c.metric).unwrap_or_default(),
    };
    let params = swept_parameters(info.as_ref(), &runs);
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| runs_dir.join(sweep).join("plots"));
    let mut written = Written { dir: dir.clone(), ..Written::default() };
    let best = crate::store::best_id(&runs, &objective.name, objective.goal);
    // The two-panel chart follows the best trial: the chart of a trial that was the best before
    // (any of this sweep's other `run_<id>.png` here) goes, not to be read as today's.
    for other in runs.iter().filter(|r| Some(r.row.id.as_str()) != best.as_deref()) {
        let stale = dir.join(format!("run_{}.png", other.row.id));
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => written.errors.push(format!("{}: {e}", stale.display())),
            _ => {}
        }
    }
    let mut record = |path: PathBuf, result: Result<(), Box<dyn std::error::Error>>| match result {
        Ok(()) => written.files.push(path),
        Err(e) => written.errors.push(format!("{}: {e}", path.display())),
    };
    let warm = match &info {
        Some(info) => warm_start(store, info)?,
        None => WarmStart::default(),
    };
    let objectives = match &info {
        Some(info) => crate::report::sweep_objectives(store, info)?,
        None => vec![objective.clone()],
    };
    for chart in sweep_charts(&runs, &warm, &params, &objective).into_iter().chain(pareto_chart(&runs, &objectives)) {
        let path = dir.join(&chart.file);
        record(path.clone(), chart.png(&path));
    }
    // Too few finished trials for importance is no failure: the chart appears once there are.
    let importances = importance::per_objective(&runs, &objectives);
    for (i, (o, ranked)) in importances.iter().enumerate() {
        if let Ok(ranked) = ranked {
            let path = dir.join(importance_file(i, &o.name));
            record(path.clone(), draw::draw_importance(ranked, &o.name, &path));
        }
    }
    if let Some(best) = best.as_deref().and_then(|id| runs.iter().find(|r| r.row.id == id)) {
        let path = dir.join(format!("run_{}.png", best.row.id));
        record(path.clone(), draw::draw_panels(&series::run_panels(best), &path));
        for picture in pictures {
            let path = dir.join(picture.file);
            let result = (picture.draw)(&best.row.sweep, &best.row.id, &path).map_err(|e| e.into());
            record(path, result);
        }
    }
    let index = dir.join("index.html");
    let html = export_page(sweep, info.as_ref(), &warm, &runs, &objective, &importances, &written.files);
    match crate::util::atomic_write(&index, html.as_bytes()) {
        Ok(()) => written.files.push(index),
        Err(e) => written.errors.push(format!("{}: {e}", index.display())),
    }
    Ok(written)
}

/// The tutorial's two-panel chart of one run.
pub fn plot_trial(store: &dyn Store, run: &str, out: &Path) -> Result<PathBuf, ReportError> {
    let trial = store.trial_data_of(run, Detail::METRICS)?;
    let path = out.join(format!("run_{run}.png"));
    draw::draw_panels(&series::run_panels(&trial), &path).map_err(|e| PlotError { path: path.clone(), reason: e.to_string() })?;
    Ok(path)
}

/// One chart of a sweep's page: its file name (PNG export), its title and its data.
pub struct SweepChart {
    pub file: String,
    pub title: String,
    pub figure: SweepFigure,
}

/// The data of one chart of a sweep.
pub enum SweepFigure {
    Curves(series::Chart),
    Scatter(series::Scatter),
    Parallel(series::Parallel),
    History(series::History),
    Groups(series::Groups),
    Pareto(series::Pareto),
}

impl SweepChart {
    /// Draws it into a PNG file.
    pub fn png(&self, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        match &self.figure {
            SweepFigure::Curves(c) => draw::png(&draw::Curves(c), path),
            SweepFigure::Scatter(s) => draw::png(s, path),
            SweepFigure::Parallel(p) => draw::png(p, path),
            SweepFigure::History(h) => draw::png(h, path),
            SweepFigure::Groups(g) => draw::png(g, path),
            SweepFigure::Pareto(p) => draw::png(p, path),
        }
    }

    /// Draws it as an SVG document.
    pub fn svg(&self) -> Result<String, Box<dyn std::error::Error>> {
        match &self.figure {
            SweepFigure::Curves(c) => draw::svg(&draw::Curves(c)),
            SweepFigure::Scatter(s) => draw::svg(s),
            SweepFigure::Parallel(p) => draw::svg(p),
            SweepFigure::History(h) => draw::svg(h),
            SweepFigure::Groups(g) => draw::svg(g),
            SweepFigure::Pareto(p) => draw::svg(p),
        }
    }
}

/// The charts of a sweep's page, in page order: validation learning curves of IoU, dice and loss
/// (pruned trials end in a cross), the objective against each swept parameter (with the trials
/// `warm` lends drawn apart), and parallel coordinates coloured by the objective.
pub fn sweep_charts(runs: &[TrialData], warm: &WarmStart, params: &[(String, bool)], objective: &Objective) -> Vec<SweepChart> {
    sweep_charts_in(runs, warm, params, objective, &html::CurveView::default())
}

/// [`sweep_charts`], the learning curves shown as `view` asks (the dashboard's form).
pub fn sweep_charts_in(
    runs: &[TrialData],
    warm: &WarmStart,
    params: &[(String, bool)],
    objective: &Objective,
    view: &html::CurveView,
) -> Vec<SweepChart> {
    let goal = objective.goal;
    // The optimisation history draws from every trial (its running best is the whole sweep's);
    // the other charts draw a bounded sample of a large sweep, and say so.
    let everything = runs;
    let sample = series::charted(runs, &objective.name, goal);
    let thinned = sample.len() < runs.len();
    let runs = sample.as_slice();
    // The three of the tutorial, and the objective's own metric when it is another
    // (`val_full_iou`, `val_fg_iou`).
    let (_, objective_metric) = objective.split_and_metric();
    let extra = (!["iou", "dice", "loss"].contains(&objective_metric)).then_some(objective_metric);
    // A program's trials may record only some of the three: the others would be empty charts.
    let recorded = |metric: &str| runs.iter().any(|r| r.row.metrics.contains_key(&format!("val_{metric}")));
    let any = ["iou", "dice", "loss"].iter().any(|m| recorded(m)) || extra.is_some_and(recorded);
    let mut charts: Vec<SweepChart> = ["iou", "dice", "loss"]
        .into_iter()
        .filter(|m| !any || recorded(m))
        .chain(extra)
        .map(|metric| SweepChart {
            file: format!("curves_val_{metric}.png"),
            title: format!("learning curves: val_{metric}"),
            figure: SweepFigure::Curves(series::viewed(view, series::learning_curves(runs, metric, &objective.name, goal), metric)),
        })
        .collect();
    let history = series::history(everything, &objective.name, goal);
    charts.push(SweepChart {
        file: HISTORY_FILE.into(),
        title: "optimisation history".into(),
        figure: SweepFigure::History(if thinned { history.thinned(&runs.iter().map(|r| r.row.id.as_str()).collect()) } else { history }),
    });
    if crate::store::has_seed_groups(everything) {
        charts.push(SweepChart {
            file: GROUPS_FILE.into(),
            title: "seed groups".into(),
            figure: SweepFigure::Groups(series::groups(everything, &objective.name, goal)),
        });
    }
    let lenders: Vec<&str> = warm.sources.iter().map(|(sweep, _)| sweep.as_str()).collect();
    for (key, log) in params {
        charts.push(SweepChart {
            file: format!("objective_vs_{}.png", slug(key)),
            title: format!("{} vs {key}", objective.name),
            figure: SweepFigure::Scatter(series::scatter_with_warm_start(runs, &warm.trials, &lenders, key, *log, &objective.name, goal)),
        });
    }
    if !params.is_empty() {
        charts.push(SweepChart {
            file: "parallel_coordinates.png".into(),
            title: "parallel coordinates".into(),
            figure: SweepFigure::Parallel(series::parallel(runs, params, &objective.name, goal)),
        });
    }
    charts
}

/// The Pareto chart of a sweep of several objectives (None for one): the front by each pair of
/// objectives and the hypervolume as trials finished.
pub fn pareto_chart(runs: &[TrialData], objectives: &[Objective]) -> Option<SweepChart> {
    let data = series::pareto(runs, objectives)?;
    Some(SweepChart { file: PARETO_FILE.into(), title: "Pareto front".into(), figure: SweepFigure::Pareto(data) })
}

/// The file name of the Pareto chart.
pub const PARETO_FILE: &str = "pareto.png";

/// The file name of the optimisation-history chart.
pub const HISTORY_FILE: &str = "history.png";

/// The file name of the seed groups' chart (drawn where configurations have several seeds).
pub const GROUPS_FILE: &str = "seed_groups.png";

/// The file name of the importance chart (of the first objective, where a sweep has several).
pub const IMPORTANCE_FILE: &str = "importance.png";

/// The file name of the importance chart of a sweep's objective number `index` (from 0):
/// [`IMPORTANCE_FILE`] for the first, `importance_<name>.png` for the others.
pub fn importance_file(index: usize, objective: &str) -> String {
    if index == 0 { IMPORTANCE_FILE.to_string() } else { format!("importance_{objective}.png") }
}

/// The importance section of a sweep's page: each parameter's share with the chart `picture`
/// draws for it, or why there is none yet; with several objectives, that for each (`picture`
/// is given the objective's index).
pub fn importance_view(
    importances: &[(Objective, Result<Vec<ParamImportance>, ImportanceError>)],
    picture: impl Fn(usize, &Objective, &[ParamImportance]) -> Option<html::Picture>,
) -> html::ImportanceView {
    let view = |i: usize, o: &Objective, result: &Result<Vec<ParamImportance>, ImportanceError>| match result {
        Ok(ranked) => {
            let chart = picture(i, o, ranked);
            html::ImportanceView::Ranked(ranked.iter().map(|p| (p.parameter.clone(), p.importance)).collect(), chart)
        }
        Err(e) => html::ImportanceView::Unavailable(format!("No parameter importance yet: {e}.")),
    };
    match importances {
        [(o, result)] => view(0, o, result),
        several => html::ImportanceView::PerObjective(
            several.iter().enumerate().map(|(i, (o, result))| (format!("{} ({})", o.name, o.goal.as_str()), view(i, o, result))).collect(),
        ),
    }
}

/// The method and pruner of a stored sweep file, for pages (`?` when it no longer parses).
pub fn method_and_pruner(info: &SweepInfo) -> (String, String) {
    match crate::study::spec::stored(info) {
        Ok(spec) => {
            let method = serde_json::to_value(spec.method).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "?".into());
            let pruner = spec.early_terminate.as_ref().map_or("none", |e| e.kind());
            (method, pruner.to_string())
        }
        Err(_) => ("?".into(), "?".into()),
    }
}

/// The static `index.html` of a sweep: the same page as `sweep ui`'s sweep page, with the chart
/// files beside it as images and no links to routes.
fn export_page(
    sweep: &str,
    info: Option<&crate::store::SweepInfo>,
    warm: &WarmStart,
    runs: &[TrialData],
    objective: &Objective,
    importances: &[(Objective, Result<Vec<ParamImportance>, ImportanceError>)],
    files: &[PathBuf],
) -> String {
    let (method, pruner) = info.map(method_and_pruner).unwrap_or_else(|| ("?".into(), "?".into()));
    let ranked: Vec<TrialData> = crate::store::leaderboard_order(runs, &objective.name, objective.goal).into_iter().cloned().collect();
    let importance_files: Vec<String> = importances.iter().enumerate().map(|(i, (o, _))| importance_file(i, &o.name)).collect();
    let written = |name: &str| files.iter().any(|f| f.file_name().is_some_and(|n| n == name));
    let importance = importance_view(importances, |i, _, _| written(&importance_files[i]).then(|| html::Picture::File(importance_files[i].clone())));
    let charts = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png") && f.file_name().is_some_and(|n| !importance_files.iter().any(|i| n == i.as_str())))
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()))
        .map(|name| (name.clone(), html::Picture::File(name)))
        .collect();
    html::sweep_page(&html::SweepView {
        curve_view: None,
        name: sweep,
        info,
        method: &method,
        pruner: &pruner,
        warm_start: &warm.sources,
        objective,
        trials: &ranked,
        total: runs.len(),
        page: 1,
        sort: None,
        filter: None,
        filter_error: None,
        charts,
        charts_note: series::charted_note(runs, &objective.name, objective.goal),
        importance,
        spec: info.map(|i| i.spec.as_str()),
        links: html::Links::Files,
    })
}

/// One page with every chart of the sweep and its leaderboard (the static export, without the
/// tracker's sweep row).
pub fn index_html(sweep: &str, runs: &[TrialData], objective: &Objective, files: &[PathBuf]) -> String {
    let importances = importance::per_objective(runs, std::slice::from_ref(objective));
    export_page(sweep, None, &WarmStart::default(), runs, objective, &importances, files)
}
