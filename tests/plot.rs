//! Charts: the series functions on their output, and every chart file written as a PNG of the
//! documented size that is not blank, with 1 run and with 200.

use std::collections::BTreeMap;
use std::path::Path;

use sweep::config::Goal;
use sweep::config::Objective;
use sweep::report::axis::Axis;
use sweep::report::charts::draw::{self, CHART_SIZE, PANELS_SIZE, PARALLEL_SIZE};
use sweep::report::charts::series;
use sweep::store::TrialData;
use sweep::store::{MetricRow, MetricSummary, TrialRow, TrialStatus};

/// A run whose val iou climbs to `peak` over `epochs` epochs (NaN at epoch `nan_at`).
fn run(i: usize, epochs: i64, peak: f64, nan_at: Option<i64>) -> TrialData {
    let mut metrics = Vec::new();
    for e in 1..=epochs {
        let t = e as f64 / epochs as f64;
        let iou = if nan_at == Some(e) { f64::NAN } else { peak * (0.5 + 0.5 * t) };
        for (split, name, value) in [
            ("val", "iou", iou),
            ("train", "iou", iou - 0.02),
            ("val", "dice", iou * 0.95),
            ("train", "dice", iou * 0.9),
            ("val", "loss", 1.0 - iou),
            ("train", "loss", 1.1 - iou),
        ] {
            metrics.push(MetricRow { epoch: e, split: split.into(), name: name.into(), value, wall: 0.0 });
        }
    }
    let mut summaries = BTreeMap::new();
    for key in ["val_iou", "val_loss", "val_dice", "train_iou"] {
        let (split, name) = key.split_once('_').unwrap();
        let vals: Vec<(i64, f64)> = metrics.iter().filter(|m| m.split == split && m.name == name).map(|m| (m.epoch, m.value)).collect();
        let finite: Vec<&(i64, f64)> = vals.iter().filter(|v| v.1.is_finite()).collect();
        let max = finite.iter().max_by(|a, b| a.1.total_cmp(&b.1)).copied();
        let min = finite.iter().min_by(|a, b| a.1.total_cmp(&b.1)).copied();
        summaries.insert(
            key.to_string(),
            MetricSummary {
                last_epoch: epochs,
                last: vals.last().unwrap().1,
                min: min.map(|m| m.1),
                min_epoch: min.map(|m| m.0),
                max: max.map(|m| m.1),
                max_epoch: max.map(|m| m.0),
            },
        );
    }
    let mut params = BTreeMap::new();
    params.insert("augment.hue_delta".to_string(), serde_json::json!((i % 4) as f64 * 0.1));
    params.insert("train.learning_rate".to_string(), serde_json::json!(10f64.powf(-4.0 + (i % 7) as f64 * 0.4)));
    params.insert("train.optimizer".to_string(), serde_json::json!(["adam", "sgd", "rmsprop"][i % 3]));
    TrialData {
        row: TrialRow {
            id: format!("s-{}", i + 1),
            sweep: "s".into(),
            seq: i as i64 + 1,
            status: TrialStatus::Completed,
            attempt: 1,
            config_hash: format!("{i}"),
            params,
            metrics: summaries,
            ..TrialRow::default()
        },
        metrics,
        checkpoints: Vec::new(),
    }
}

fn runs(n: usize) -> Vec<TrialData> {
    (0..n).map(|i| run(i, 6, 0.6 + 0.3 * ((i * 37) % 100) as f64 / 100.0, (i == 1).then_some(3))).collect()
}

const PARAMS: [(&str, bool); 3] = [("augment.hue_delta", false), ("train.learning_rate", true), ("train.optimizer", false)];

#[test]
fn learning_curves_skip_nan_highlight_the_best_and_name_the_varying_params() {
    let runs = runs(3);
    let chart = series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize);
    assert_eq!(chart.series.len(), 6, "train and val for each run");
    let best = sweep::store::best_id(&runs, "val_iou", Goal::Maximize).unwrap();
    assert_eq!(best, "s-3", "the highest peak (0.6 + 0.3 * 0.74)");
    assert!(chart.series.iter().filter(|s| s.highlighted).all(|s| s.run == best));
    assert_eq!(chart.series[0].run, best, "best first, as in the legend");
    let with_nan = chart.series.iter().find(|s| s.run == "s-2" && s.split == "val").unwrap();
    assert_eq!(with_nan.points.len(), 5, "the NaN epoch is skipped, not drawn as zero");
    assert!(with_nan.points.iter().all(|p| p.0 != 3.0));
    let labels: Vec<&str> = chart.series.iter().filter(|s| !s.label.is_empty()).map(|s| s.label.as_str()).collect();
    assert_eq!(labels.len(), 3, "val series carry the legend");
    assert!(labels.iter().all(|l| l.contains("hue_delta=") && l.contains("optimizer=")), "{labels:?}");
    assert_eq!(chart.x_range, (1.0, 6.0));
    let (lo, hi) = chart.y_range;
    let ys: Vec<f64> = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).collect();
    let (min, max) = (ys.iter().cloned().fold(f64::MAX, f64::min), ys.iter().cloned().fold(f64::MIN, f64::max));
    assert!(lo < min && hi > max && lo > min - 0.1 && hi < max + 0.1, "the range holds every point, with a small margin: {lo} {hi}");
    assert!(chart.note.is_none());
}

#[test]
fn with_many_runs_the_legend_collapses() {
    let runs = runs(200);
    let chart = series::learning_curves(&runs, "loss", "val_loss", Goal::Minimize);
    assert_eq!(chart.series.iter().filter(|s| !s.label.is_empty()).count(), series::CROWDED_LEGEND_RUNS);
    assert_eq!(chart.note.as_deref(), Some("and 197 more runs (grey)"));
    assert_eq!(chart.series.iter().filter(|s| s.colour.is_some()).count(), 2 * series::CROWDED_LEGEND_RUNS);
    // Issue 29: colours ran out at 10 trials though README promises every trial one up to 40.
    let chart = series::learning_curves(&runs[..40], "loss", "val_loss", Goal::Minimize);
    assert_eq!(chart.series.iter().filter(|s| !s.label.is_empty()).count(), 40);
    assert_eq!(chart.note, None, "nobody grey");
    let colours: std::collections::HashSet<usize> = chart.series.iter().filter_map(|s| s.colour).collect();
    assert_eq!(colours.len(), 40);
    let drawn: std::collections::HashSet<(u8, u8, u8)> = (0..40).map(draw::run_colour).map(|c| (c.0, c.1, c.2)).collect();
    assert_eq!(drawn.len(), 40, "40 different colours");
}

/// Issue 29: one epoch-1 loss of 21.3 squashed every other curve; it is clipped (and listed, to be
/// marked at the edge) instead.
#[test]
fn an_outlier_is_clipped_from_the_curves_range() {
    let mut runs = runs(6);
    let first = runs[2].metrics.iter_mut().find(|m| m.epoch == 1 && m.split == "val" && m.name == "loss").unwrap();
    first.value = 21.3;
    let chart = series::learning_curves(&runs, "loss", "val_loss", Goal::Minimize);
    assert!(chart.y_range.1 < 2.0, "the range follows the other values: {:?}", chart.y_range);
    assert_eq!(chart.clipped, [("s-3".to_string(), 1.0, 21.3)]);
    let plain = series::learning_curves(&runs[..2], "loss", "val_loss", Goal::Minimize);
    assert!(plain.clipped.is_empty(), "ordinary curves keep every point");
    assert_eq!(series::robust_range(&[1.0, 1.0, 1.0, 5.0]), (1.0, 5.0), "no spread: nothing is an outlier");
    assert_eq!(series::robust_range(&[0.5, 0.6, 0.7, 0.8, 0.9, 21.3]), (0.5, 0.9));
    // Ordinary curves whose first epoch sits a little above the rest keep every point.
    let first_epochs = [0.12, 0.15, 0.18, 0.2, 0.22, 0.25, 0.3, 0.35, 0.4, 0.6, 1.03, 1.06, 1.08];
    assert_eq!(series::robust_range(&first_epochs), (0.12, 1.08));
    let path = tempfile::tempdir().unwrap();
    draw::draw_curves(&chart, &path.path().join("c.png")).unwrap();
}

/// Issue 29: the run chart's legend drew the dashed training line's swatch solid.
#[test]
fn a_dashed_line_has_a_dashed_swatch() {
    let [solid, dashed] = [draw::swatch(false), draw::swatch(true)];
    assert_eq!(solid[0].1, solid[1].0, "one unbroken line");
    assert!(dashed[1].0 > dashed[0].1, "a gap between two dashes");
    assert_eq!((dashed[0].0, dashed[1].1), (solid[0].0, solid[1].1), "as long as the solid one");
}

/// Issue 29: parallel coordinates dropped every trial a conditional parameter did not apply to.
#[test]
fn parallel_coordinates_keep_trials_without_a_conditional_parameter() {
    let mut runs = runs(6);
    for r in runs.iter_mut().filter(|r| r.row.params["train.optimizer"] == "adam") {
        r.row.params.remove("augment.hue_delta");
    }
    let p = series::parallel(&runs, &PARAMS.map(|(k, l)| (k.to_string(), l)), "val_iou", Goal::Maximize);
    assert_eq!(p.lines.len(), 6, "every trial keeps its line");
    assert_eq!(p.lines.iter().filter(|(pos, _)| pos[0].is_none()).count(), 2, "n/a where the parameter did not apply");
    let path = tempfile::tempdir().unwrap();
    draw::draw_parallel(&p, &path.path().join("p.png")).unwrap();
}

#[test]
fn the_run_panels_show_dice_loss_and_loss() {
    let r = run(0, 4, 0.8, None);
    let [dice_loss, loss] = series::run_panels(&r);
    let val = dice_loss.series.iter().find(|s| s.split == "val").unwrap();
    let dice = r.points("val", "dice");
    for ((_, dl), (_, d)) in val.points.iter().zip(&dice) {
        assert!((dl - (1.0 - d)).abs() < 1e-12);
    }
    assert_eq!(loss.series.len(), 2);
    assert_eq!(loss.series[0].label, "training loss");
}

#[test]
fn scatter_axes_are_numeric_log_or_grouped() {
    let runs = runs(12);
    let s = series::scatter(&runs, "augment.hue_delta", false, "val_iou", Goal::Maximize);
    assert!(matches!(s.axis, Axis::Numeric { log: false, .. }));
    assert_eq!(s.points.len(), 12);
    let s = series::scatter(&runs, "train.learning_rate", true, "val_iou", Goal::Maximize);
    assert!(matches!(s.axis, Axis::Numeric { log: true, .. }));
    let s = series::scatter(&runs, "train.optimizer", false, "val_iou", Goal::Maximize);
    assert_eq!(s.axis, Axis::Categorical(vec!["adam".into(), "rmsprop".into(), "sgd".into()]));
    assert!(s.points.iter().all(|p| [0.0, 1.0, 2.0].contains(&p.0)));
    let p = series::parallel(&runs, &PARAMS.map(|(k, l)| (k.to_string(), l)), "val_iou", Goal::Maximize);
    assert_eq!(p.axes.len(), 3);
    assert_eq!(p.lines.len(), 12);
    assert!(p.lines.iter().all(|(pos, _)| pos.len() == 3 && pos.iter().all(|x| x.is_some_and(|x| (0.0..=1.0).contains(&x)))));
}

/// Issue 25, item 3: trials lent by `[bayes] warm_start` share the scatter's axes, are kept apart
/// from the sweep's own (never its best) and are drawn as grey rings with their lender named.
#[test]
fn a_scatter_draws_warm_start_trials_apart_on_shared_axes() {
    let own = runs(4);
    // Lent trials at learning rates beyond the sweep's own, with a better value than any of them.
    let mut lent: Vec<TrialData> = runs(3)
        .into_iter()
        .map(|mut t| {
            t.row.id = format!("wa-{}", t.row.seq);
            t.row.params.insert("train.learning_rate".into(), serde_json::json!(0.5));
            t
        })
        .collect();
    lent[0] = {
        let mut t = run(9, 4, 0.99, None);
        t.row.id = "wa-9".into();
        t.row.params.insert("train.learning_rate".into(), serde_json::json!(0.5));
        t
    };
    let s = series::scatter_with_warm_start(&own, &lent, &["wa"], "train.learning_rate", true, "val_iou", Goal::Maximize);
    let Axis::Numeric { max, log: true, .. } = s.axis else { panic!("{:?}", s.axis) };
    assert_eq!(max, 0.5, "the axis spans the lent trials too");
    assert_eq!((s.points.len(), s.warm.len()), (4, 3));
    assert!(s.points.iter().all(|p| p.2.starts_with("s-")) && s.warm.iter().all(|p| p.2.starts_with("wa-")));
    assert_eq!(s.best, sweep::store::best_id(&own, "val_iou", Goal::Maximize), "the best trial is the sweep's own");
    assert!(s.y_range.1 >= 0.99, "the value range covers the lent trials");
    assert_eq!(s.lenders, ["wa"]);
    let dir = tempfile::tempdir().unwrap();
    let (with, without) = (dir.path().join("warm.png"), dir.path().join("cold.png"));
    draw::draw_scatter(&s, &with).unwrap();
    draw::draw_scatter(&series::scatter(&own, "train.learning_rate", true, "val_iou", Goal::Maximize), &without).unwrap();
    let grey = |path: &Path| image::open(path).unwrap().into_rgb8().pixels().filter(|p| p.0 == [128, 128, 128]).count();
    assert!(grey(&with) > 100 + grey(&without), "rings and the caption are drawn in the warm-start grey");
    check_png(&with, CHART_SIZE);
}

/// Decodes a PNG, checks its size and that it is not blank.
fn check_png(path: &Path, size: (u32, u32)) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let n = (img.width() * img.height()) as f64;
    let mean: f64 = img.pixels().map(|p| p[0] as f64).sum::<f64>() / n;
    let var: f64 = img.pixels().map(|p| (p[0] as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(var > 50.0, "{} looks blank (variance {var})", path.display());
}

#[test]
fn every_chart_is_a_readable_png_with_one_run_and_with_two_hundred() {
    let dir = tempfile::tempdir().unwrap();
    for n in [1usize, 200] {
        let runs = runs(n);
        for metric in ["iou", "dice", "loss"] {
            let path = dir.path().join(format!("{n}_curves_{metric}.png"));
            draw::draw_curves(&series::learning_curves(&runs, metric, "val_iou", Goal::Maximize), &path).unwrap();
            check_png(&path, CHART_SIZE);
        }
        for (key, log) in PARAMS {
            let path = dir.path().join(format!("{n}_{key}.png"));
            draw::draw_scatter(&series::scatter(&runs, key, log, "val_iou", Goal::Maximize), &path).unwrap();
            check_png(&path, CHART_SIZE);
        }
        let path = dir.path().join(format!("{n}_parallel.png"));
        draw::draw_parallel(&series::parallel(&runs, &PARAMS.map(|(k, l)| (k.to_string(), l)), "val_iou", Goal::Maximize), &path).unwrap();
        check_png(&path, PARALLEL_SIZE);
        match sweep::report::importance::importance(&runs, "val_iou", Goal::Maximize) {
            Ok(importances) => {
                let path = dir.path().join(format!("{n}_importance.png"));
                draw::draw_importance(&importances, "val_iou", &path).unwrap();
                check_png(&path, draw::IMPORTANCE_SIZE);
            }
            Err(e) => assert_eq!(n, 1, "{e}"),
        }
        let path = dir.path().join(format!("{n}_panels.png"));
        draw::draw_panels(&series::run_panels(&runs[0]), &path).unwrap();
        check_png(&path, PANELS_SIZE);
    }
}

#[test]
fn the_index_page_holds_the_leaderboard_and_every_chart() {
    let runs = runs(4);
    let files = vec![Path::new("/x/curves_val_iou.png").to_path_buf(), Path::new("/x/predictions.png").to_path_buf()];
    let html = sweep::report::charts::index_html("s", &runs, &Objective::default(), &files);
    assert!(html.contains("<img src=\"curves_val_iou.png\"") && html.contains("<img src=\"predictions.png\""));
    let first_row = html.find("<tr class=\"best\">").unwrap();
    let best = sweep::store::best_id(&runs, "val_iou", Goal::Maximize).unwrap();
    assert!(html[first_row..].starts_with(&format!("<tr class=\"best\"><td>1</td><td class=\"l id\">{best}</td>")), "{html}");
    assert!(!html.contains("href=\"/") && !html.contains("<script"), "the offline export links to no route and polls nothing");
}

/// Issue 29: the leaderboard numbered every row (a running or pruned trial got a rank while the
/// charts said "best: none yet"), and six parameters pushed the objective off-screen.
#[test]
fn the_leaderboard_ranks_completed_trials_only_and_puts_the_objective_first() {
    let mut runs = runs(4);
    runs[0].row.status = TrialStatus::Running;
    runs[1].row.status = TrialStatus::Pruned;
    let html = sweep::report::charts::index_html("s", &runs, &Objective::default(), &[]);
    let rows: Vec<&str> = html.split("<tr").skip(2).collect();
    let rank_of =
        |id: &str| rows.iter().find(|r| r.contains(&format!(">{id}<"))).unwrap().split("<td>").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert_eq!(rank_of("s-1"), "-", "a running trial has no rank");
    assert_eq!(rank_of("s-2"), "-", "nor a pruned one");
    let ranked: Vec<String> = ["s-3", "s-4"].iter().map(|id| rank_of(id)).collect();
    let mut sorted = ranked.clone();
    sorted.sort();
    assert_eq!(sorted, ["1", "2"], "the completed ones are ranked 1 and 2");
    let chart = series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize);
    let first = if ranked[0] == "1" { "s-3" } else { "s-4" };
    assert!(chart.title.contains(&format!("best: {first}")), "the charts name the leaderboard's first: {}", chart.title);
    let header = &html[html.find("<table class=\"leaderboard\">").unwrap()..];
    let (objective, parameter) = (header.find("best val_iou").unwrap(), header.find("augment.hue_delta").unwrap());
    assert!(objective < parameter, "the objective's column comes before the parameters'");
    assert!(html.contains("<div class=\"wide\">"), "a wide leaderboard scrolls in its own box");
}

#[test]
fn every_chart_draws_as_svg_from_the_same_code_as_its_png() {
    let runs = runs(3);
    let curves = series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize);
    let svg = draw::svg(&draw::Curves(&curves)).unwrap();
    assert!(svg.contains("<svg") && svg.contains(&format!("width=\"{}\"", CHART_SIZE.0)), "{}", &svg[..200.min(svg.len())]);
    assert!(svg.contains(&curves.title) && svg.contains("<polyline"), "the title as text, the curves as lines");
    let scatter = series::scatter(&runs, PARAMS[0].0, PARAMS[0].1, "val_iou", Goal::Maximize);
    assert!(draw::svg(&scatter).unwrap().contains("<circle"));
    let parallel = series::parallel(&runs, &PARAMS.map(|(k, l)| (k.to_string(), l)), "val_iou", Goal::Maximize);
    assert!(draw::svg(&parallel).unwrap().contains(&format!("width=\"{}\"", PARALLEL_SIZE.0)));
    assert!(draw::svg(&draw::Panels(&series::run_panels(&runs[0]))).unwrap().contains("dice"));
}

/// Issue 29: the optimisation history: every trial's objective by trial number, pruned ones
/// marked, and the running best over completed trials only.
#[test]
fn the_optimisation_history_shows_every_trial_and_the_running_best() {
    let mut runs = runs(8);
    runs[5].row.status = TrialStatus::Pruned;
    runs[6].row.status = TrialStatus::Running;
    let h = series::history(&runs, "val_iou", Goal::Maximize);
    assert_eq!(h.points.len(), 8, "every trial with a value");
    assert_eq!(h.points.iter().map(|p| p.0).collect::<Vec<_>>(), (1..=8).map(f64::from).collect::<Vec<_>>(), "by trial number");
    assert_eq!(h.points.iter().filter(|p| p.2 == TrialStatus::Pruned).count(), 1);
    let completed: Vec<(f64, f64)> = h.points.iter().filter(|p| p.2 == TrialStatus::Completed).map(|p| (p.0, p.1)).collect();
    assert_eq!(h.running_best.len(), completed.len(), "a step at each completed trial");
    let mut best = f64::MIN;
    for ((x, v), (bx, b)) in completed.iter().zip(&h.running_best) {
        best = best.max(*v);
        assert_eq!((x, best), (bx, *b), "the best completed value up to trial {x}");
    }
    assert!(h.running_best.windows(2).all(|w| w[1].1 >= w[0].1), "never worse");
    let dir = tempfile::tempdir().unwrap();
    draw::png(&h, &dir.path().join("history.png")).unwrap();
    check_png(&dir.path().join("history.png"), CHART_SIZE);
    assert!(draw::svg(&h).unwrap().contains("optimisation history"));
}

/// Issue 29, item 2: in the dashboard's SVG, every point a pointer can rest on links to its trial
/// and says, as its tooltip, the trial, the parameters that vary and the value; over the point as
/// drawn (the same pixel the PNG shows it at).
#[test]
fn svg_points_link_to_their_trial_with_a_tooltip() {
    let runs = runs(4);
    let scatter = series::scatter(&runs, PARAMS[0].0, PARAMS[0].1, "val_iou", Goal::Maximize);
    let svg = draw::svg(&scatter).unwrap();
    let links = svg.matches("<a href=\"/runs/").count();
    assert_eq!(links, scatter.points.len(), "one link per point");
    let (x, y, id) = &scatter.points[0];
    let tooltip = svg.split(&format!("<a href=\"/runs/{id}\">")).nth(1).unwrap().split("</a>").next().unwrap();
    assert!(tooltip.contains(&format!("<title>{id} ")) && tooltip.contains("hue_delta=") && tooltip.contains("optimizer="), "{tooltip}");
    assert!(tooltip.contains(&format!("val_iou: {}", sweep::report::fmt_num(*y))), "{tooltip}");
    let _ = x;
    // Over the point as drawn: each link's circle has the centre of one of the chart's dots.
    let centre = |c: &str| -> (String, String) {
        let attr = |name: &str| c.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        (attr("cx"), attr("cy"))
    };
    let circles: Vec<&str> = svg.split("<circle ").skip(1).collect();
    let (links, dots): (Vec<&str>, Vec<&str>) = circles.into_iter().partition(|c| c.contains("fill=\"transparent\""));
    let dots: std::collections::HashSet<(String, String)> = dots.into_iter().map(centre).collect();
    assert!(links.iter().all(|l| dots.contains(&centre(l))), "every link sits on a dot");
    let curves = series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize);
    let svg = draw::svg(&draw::Curves(&curves)).unwrap();
    let val_points: usize = curves.series.iter().filter(|s| s.split == "val").map(|s| s.points.len()).sum();
    assert_eq!(svg.matches("<a href=\"/runs/").count(), val_points, "every validation point of every curve");
    assert!(svg.contains("epoch 2: iou "), "a curve's point says its epoch and value");
    let history = series::history(&runs, "val_iou", Goal::Maximize);
    assert_eq!(draw::svg(&history).unwrap().matches("<a href=\"/runs/").count(), runs.len());
    let parallel = series::parallel(&runs, &PARAMS.map(|(k, l)| (k.to_string(), l)), "val_iou", Goal::Maximize);
    assert_eq!(draw::svg(&parallel).unwrap().matches("<a href=\"/runs/").count(), runs.len(), "each line's end links");
    let dir = tempfile::tempdir().unwrap();
    draw::png(&scatter, &dir.path().join("s.png")).unwrap();
}

/// Issue 29, item 2: the dashboard's learning curves on a log scale (losses), smoothed as
/// TensorBoard smooths, and zoomed on one metric's y axis.
#[test]
fn curves_can_be_shown_on_a_log_scale_smoothed_and_zoomed() {
    // Debiased EMA with weight 0.5 of 1, 0, 0: 1; (0.25 + 0) / 0.75; (0.125 + 0) / 0.875.
    let s = series::smoothed(&[(1.0, 1.0), (2.0, 0.0), (3.0, 0.0)], 0.5);
    let expected = [1.0, 0.25 / 0.75, 0.125 / 0.875];
    assert!(s.iter().zip(expected).all(|(p, e)| (p.1 - e).abs() < 1e-12), "{s:?}");
    let runs = runs(4);
    let view = sweep::report::html::CurveView { log: true, smooth: 0.0, zoom: Some(("loss".into(), 0.2, 0.5)) };
    let loss = series::viewed(&view, series::learning_curves(&runs, "loss", "val_loss", Goal::Minimize), "loss");
    assert!(loss.y_log && loss.title.ends_with("(log scale, y from 0.2 to 0.5)"), "{}", loss.title);
    assert!((loss.y_range.0 - 0.2f64.log10()).abs() < 1e-12 && (loss.y_range.1 - 0.5f64.log10()).abs() < 1e-12);
    let raw = series::learning_curves(&runs, "loss", "val_loss", Goal::Minimize);
    let outside = raw.series.iter().flat_map(|s| &s.points).filter(|p| p.1 < 0.2 || p.1 > 0.5).count();
    assert_eq!(loss.clipped.len(), outside, "the points beyond the zoom are marked at its edges");
    let iou = series::viewed(&view, series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize), "iou");
    assert_eq!(iou, series::learning_curves(&runs, "iou", "val_iou", Goal::Maximize), "log scale and zoom are the loss's only");
    let svg = draw::svg(&draw::Curves(&loss)).unwrap();
    assert!(svg.contains("log scale"));
}

/// Issue 28's scale: a large sweep's charts draw a bounded sample (the best by the objective,
/// the running trials and an even spread of the rest), in the sweep's order, and the history
/// thinned to that sample still has every step of the whole sweep's running best.
#[test]
fn a_large_sweeps_charts_draw_the_best_the_running_and_an_even_sample() {
    let few = runs(10);
    assert_eq!(series::charted(&few, "val_iou", Goal::Maximize).len(), 10);
    assert_eq!(series::charted_note(&few, "val_iou", Goal::Maximize), None, "nothing left out, nothing said");

    let mut many = runs(1000);
    for r in many.iter_mut().skip(500).step_by(100) {
        r.row.status = TrialStatus::Running;
    }
    let drawn = series::charted(&many, "val_iou", Goal::Maximize);
    assert_eq!(drawn.len(), series::CHARTED);
    let ids: std::collections::HashSet<&str> = drawn.iter().map(|r| r.row.id.as_str()).collect();
    let best = sweep::store::leaderboard_order(&many, "val_iou", Goal::Maximize);
    assert!(best.iter().take(series::CHARTED_BEST).all(|r| ids.contains(r.row.id.as_str())), "the best are all drawn");
    assert!(many.iter().filter(|r| r.row.status == TrialStatus::Running).all(|r| ids.contains(r.row.id.as_str())), "so is every running one");
    let seqs: Vec<i64> = drawn.iter().map(|r| r.row.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in the sweep's order");
    assert!(seqs.first() == Some(&many[0].row.seq) && *seqs.last().unwrap() > 900, "spread over the whole sweep: {seqs:?}");
    let note = series::charted_note(&many, "val_iou", Goal::Maximize).unwrap();
    assert!(note.starts_with("The charts draw 100 of these 1000 trials: the best 20, 5 other running"), "{note}");

    let whole = series::history(&many, "val_iou", Goal::Maximize);
    let thinned = whole.clone().thinned(&ids);
    assert_eq!(thinned.running_best, whole.running_best, "the running best is the whole sweep's");
    let steps: Vec<f64> = whole.running_best.windows(2).filter(|w| w[1].1 != w[0].1).map(|w| w[1].0).collect();
    assert!(steps.iter().all(|x| thinned.points.iter().any(|p| p.0 == *x)), "every step of the line has its point");
    assert!(thinned.points.len() < 400 && thinned.tips.len() == thinned.points.len(), "{} points", thinned.points.len());
}

/// Trials with a parameter count beside their IoU (unrelated to it, so some trade off).
fn with_params(n: usize) -> Vec<TrialData> {
    let mut runs = runs(n);
    for (i, r) in runs.iter_mut().enumerate() {
        let v = 1e6 * (1.0 + ((i * 53) % 100) as f64 / 100.0);
        let s = MetricSummary { last_epoch: 0, last: v, min: Some(v), min_epoch: Some(0), max: Some(v), max_epoch: Some(0) };
        r.row.metrics.insert("params".into(), s);
    }
    runs
}

#[test]
fn the_pareto_chart_marks_the_front_and_draws_the_hypervolume_as_trials_finish() {
    let objectives = |names: &[(&str, Goal)]| names.iter().map(|(n, g)| Objective { name: n.to_string(), goal: *g }).collect::<Vec<_>>();
    let two = objectives(&[("val_iou", Goal::Maximize), ("params", Goal::Minimize)]);
    let runs = with_params(40);
    let p = series::pareto(&runs, &two).unwrap();
    assert_eq!(p.points.len(), 40);
    // The front by brute force: no other trial at least as good by both and better by one.
    let value = |r: &TrialData| (r.row.best("val_iou", Goal::Maximize).unwrap().0, r.row.metrics["params"].last);
    let beats = |a: (f64, f64), b: (f64, f64)| a.0 >= b.0 && a.1 <= b.1 && (a.0 > b.0 || a.1 < b.1);
    for (values, id, front) in &p.points {
        let r = runs.iter().find(|r| &r.row.id == id).unwrap();
        assert_eq!(values, &[value(r).0, value(r).1]);
        assert_eq!(*front, !runs.iter().any(|o| beats(value(o), value(r))), "{id}");
    }
    assert!(p.points.iter().filter(|p| p.2).count() >= 2, "the data trades off");
    assert!(p.hypervolume.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0), "{:?}", p.hypervolume);
    assert_eq!(p.hypervolume.last().unwrap().0, 40.0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pareto.png");
    draw::png(&p, &path).unwrap();
    check_png(&path, (1300, 560));
    let red = image::open(&path).unwrap().into_rgb8().pixels().filter(|px| px.0 == [214, 39, 40]).count();
    assert!(red > 100, "the front is drawn in red: {red} pixels");
    let svg = draw::svg(&p).unwrap();
    assert!(svg.contains("Pareto front") && svg.contains("hypervolume"), "{}", &svg[..300.min(svg.len())]);
    // Three objectives: the three pairs and the hypervolume, two by two.
    let three = objectives(&[("val_iou", Goal::Maximize), ("params", Goal::Minimize), ("val_dice", Goal::Maximize)]);
    let path = dir.path().join("pareto3.png");
    draw::png(&series::pareto(&runs, &three).unwrap(), &path).unwrap();
    check_png(&path, (1100, 1000));
    // An infeasible trial is drawn crossed, apart from the front.
    let mut runs = runs;
    runs[0].row.status = TrialStatus::Infeasible;
    let p = series::pareto(&runs, &two).unwrap();
    assert_eq!((p.points.len(), p.infeasible.len()), (39, 1));
    assert_eq!(p.infeasible[0].1, runs[0].row.id);
    assert!(draw::svg(&p).unwrap().contains("1 infeasible crossed"));
    // One objective, or no trial with every value: no chart.
    assert!(series::pareto(&runs, &two[..1]).is_none());
    assert!(series::pareto(&self::runs(3), &two).is_none(), "no trial records params");
}
