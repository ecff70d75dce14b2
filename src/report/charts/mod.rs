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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::Objective;
use crate::report::ReportError;
use crate::store::{Store, StoreError, TrialFilter};
use series::TrialData;

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

/// Every run of `sweep` with its metrics.
pub fn load_trials(store: &dyn Store, sweep: &str) -> Result<Vec<TrialData>, StoreError> {
    store
        .trials(&TrialFilter { sweep: Some(sweep.to_string()), status: None })?
        .into_iter()
        .map(|row| store.metrics(&row.id).map(|metrics| TrialData { row, metrics }))
        .collect()
}

/// The swept parameters of a sweep, in file order, each with whether it is log-distributed; read
/// from the stored sweep file, or from the runs' parameters if that no longer parses.
fn swept_parameters(store: &dyn Store, sweep: &str, runs: &[TrialData]) -> Vec<(String, bool)> {
    let spec = store.sweeps().ok().and_then(|all| all.into_iter().find(|s| s.name == sweep));
    if let Some(spec) = spec.and_then(|s| crate::study::spec::parse(&s.spec, Path::new(&format!("{sweep}.toml"))).ok()) {
        return spec.parameters.iter().map(|p| (p.key.clone(), p.domain.is_log())).collect();
    }
    crate::report::param_keys(&runs.iter().map(|r| r.row.clone()).collect::<Vec<_>>()).into_iter().map(|k| (k, false)).collect()
}

/// Draws every chart of a sweep into `out` (default `<runs>/<sweep>/plots`).
/// Draws the prediction grid of a trial (its sweep and id) into a PNG file.
pub type PredictionGrid<'a> = &'a dyn Fn(&str, &str, &Path) -> Result<(), String>;

/// Draws every chart of `sweep` into `out` (default `runs/<sweep>/plots/`), and the best trial's
/// prediction grid with `predictions` when given. A chart that fails is reported in
/// [`Written::errors`]; the others are still written.
pub fn plot_sweep(
    store: &dyn Store,
    sweep: &str,
    runs_dir: &Path,
    out: Option<&Path>,
    predictions: Option<PredictionGrid>,
) -> Result<Written, StoreError> {
    let runs = load_trials(store, sweep)?;
    if runs.is_empty() {
        return Err(StoreError::UnknownSweep { name: sweep.to_string(), suggestions: Vec::new() });
    }
    let objective = store.trial_config(&runs[0].row.id).map(|c| c.metric).unwrap_or_default();
    let params = swept_parameters(store, sweep, &runs);
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| runs_dir.join(sweep).join("plots"));
    let mut written = Written { dir: dir.clone(), ..Written::default() };
    let mut record = |path: PathBuf, result: Result<(), Box<dyn std::error::Error>>| match result {
        Ok(()) => written.files.push(path),
        Err(e) => written.errors.push(format!("{}: {e}", path.display())),
    };
    let goal = objective.goal;
    for metric in ["iou", "dice", "loss"] {
        let chart = series::learning_curves(&runs, metric, &objective.name, goal);
        let path = dir.join(format!("curves_val_{metric}.png"));
        record(path.clone(), draw::draw_curves(&chart, &path));
    }
    for (key, log) in &params {
        let data = series::scatter(&runs, key, *log, &objective.name, goal);
        let path = dir.join(format!("objective_vs_{}.png", slug(key)));
        record(path.clone(), draw::draw_scatter(&data, &path));
    }
    if !params.is_empty() {
        let data = series::parallel(&runs, &params, &objective.name, goal);
        let path = dir.join("parallel_coordinates.png");
        record(path.clone(), draw::draw_parallel(&data, &path));
    }
    // Too few finished trials for importance is no failure: the chart appears once there are.
    if let Ok(importances) = crate::report::importance::importance(&runs, &objective.name, goal) {
        let path = dir.join("importance.png");
        record(path.clone(), draw::draw_importance(&importances, &objective.name, &path));
    }
    let best = series::best_run(&runs, &objective.name, goal);
    if let Some(best) = best.as_deref().and_then(|id| runs.iter().find(|r| r.row.id == id)) {
        let path = dir.join(format!("run_{}.png", best.row.id));
        record(path.clone(), draw::draw_panels(&series::run_panels(best), &path));
        if let Some(grid) = predictions {
            let path = dir.join("predictions.png");
            let result = grid(&best.row.sweep, &best.row.id, &path).map_err(|e| e.into());
            record(path, result);
        }
    }
    let index = dir.join("index.html");
    let html = index_html(sweep, &runs, &objective, &written.files);
    match crate::util::atomic_write(&index, html.as_bytes()) {
        Ok(()) => written.files.push(index),
        Err(e) => written.errors.push(format!("{}: {e}", index.display())),
    }
    Ok(written)
}

/// The tutorial's two-panel chart of one run.
pub fn plot_trial(store: &dyn Store, run: &str, out: &Path) -> Result<PathBuf, ReportError> {
    let row = store.trial(run)?;
    let metrics = store.metrics(run)?;
    let path = out.join(format!("run_{run}.png"));
    draw::draw_panels(&series::run_panels(&TrialData { row, metrics }), &path)
        .map_err(|e| PlotError { path: path.clone(), reason: e.to_string() })?;
    Ok(path)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One page with every chart of the sweep and its leaderboard.
pub fn index_html(sweep: &str, runs: &[TrialData], objective: &Objective, files: &[PathBuf]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>sweep {s}</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin:12px 0 24px}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} td:nth-child(2),th{{text-align:left}}\
         img{{max-width:100%;border:1px solid #ddd;margin:8px 0}} .best{{background:#fff3c4}}</style></head><body>\n\
         <h1>sweep {s}</h1>\n<p>{n} runs; objective <b>{o}</b> ({g}). Generated {t} UTC.</p>\n",
        s = escape(sweep),
        n = runs.len(),
        o = escape(&objective.name),
        g = objective.goal.as_str(),
        t = crate::util::format_utc(crate::util::now_unix()),
    );
    let keys = series::varying_params(runs);
    let ranked = series::ranked(runs, &objective.name, objective.goal);
    html.push_str("<h2>Leaderboard</h2>\n<table><tr><th>rank</th><th>trial</th><th>status</th>");
    for k in &keys {
        let _ = write!(html, "<th>{}</th>", escape(k));
    }
    let _ = writeln!(html, "<th>best {}</th><th>epoch</th></tr>", escape(&objective.name));
    for (i, r) in ranked.iter().enumerate() {
        let best = r.row.best(&objective.name, objective.goal);
        let _ = write!(
            html,
            "<tr{}><td>{}</td><td>{}</td><td>{}</td>",
            if i == 0 && best.is_some() { " class=\"best\"" } else { "" },
            i + 1,
            escape(&r.row.id),
            r.row.status.as_str()
        );
        for k in &keys {
            let _ = write!(html, "<td>{}</td>", escape(&r.row.params.get(k).map(crate::report::fmt_param).unwrap_or_else(|| "-".into())));
        }
        match best {
            Some((v, e)) => {
                let _ = writeln!(html, "<td>{}</td><td>{e}</td></tr>", crate::report::fmt_num(v));
            }
            None => html.push_str("<td>-</td><td>-</td></tr>\n"),
        }
    }
    html.push_str("</table>\n");
    for f in files {
        if f.extension().is_some_and(|e| e == "png") {
            let name = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let _ = write!(html, "<h3>{}</h3>\n<img src=\"{}\" alt=\"{}\">\n", escape(&name), escape(&name), escape(&name));
        }
    }
    html.push_str("</body></html>\n");
    html
}
