//! The thin drawing layer: each function draws one chart from the data `series` computed, into
//! an RGB buffer, and saves it as PNG. Sizes are fixed (documented in README) so pages lay out
//! predictably.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::series::{Chart, Groups, History, Parallel, Pareto, Scatter};
use crate::canvas::fonts::register_fonts;
use crate::report::axis::Axis;
use crate::report::importance::ParamImportance;
use crate::store::TrialStatus;

/// Learning-curve and scatter charts.
pub const CHART_SIZE: (u32, u32) = (1000, 600);
/// The two-panel run chart.
pub const PANELS_SIZE: (u32, u32) = (1200, 450);
/// Parallel coordinates.
pub const PARALLEL_SIZE: (u32, u32) = (1200, 600);

/// A colour-blind-safe palette (Tableau 10) for runs named in a legend.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const GREY: RGBColor = RGBColor(160, 160, 160);
const GRID: RGBColor = RGBColor(215, 215, 215);
const LIGHT_GRID: RGBColor = RGBColor(244, 244, 244);
/// Trials lent by another sweep (`[bayes] warm_start`).
const WARM: RGBColor = RGBColor(128, 128, 128);
const FONT: &str = "sans-serif";

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn err(e: impl std::fmt::Display) -> Box<dyn std::error::Error> {
    e.to_string().into()
}

/// A drawn point a pointer can rest on, in the figure's pixels: the dashboard's SVG puts a link
/// to the trial over it with `text` as its tooltip, so that hovering shows the trial, its
/// parameters and its value and clicking opens it, with no script (a `<title>` and an `<a>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub x: i32,
    pub y: i32,
    pub trial: String,
    pub text: String,
}

/// What drawing a figure leaves for its SVG: the points a pointer can rest on ([`Target`]), and
/// what a page's script needs of it (JSON, in the figure's pixels), kept in the SVG as
/// `<desc class="chart-data">`.
#[derive(Debug, Clone, Default)]
pub struct Drawn {
    pub targets: Vec<Target>,
    pub data: Option<serde_json::Value>,
}

impl Drawn {
    fn links(targets: Vec<Target>) -> Self {
        Drawn { targets, data: None }
    }
}

/// A chart drawn on any plotters backend, so that PNG files and SVG pages share one drawing code.
pub trait Figure {
    /// Its size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws it on `root`, which is white and of [`Figure::size`]; returns what its SVG gets
    /// beside the drawing ([`Drawn`]).
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn>;
}

/// The tooltip of a point of trial `trial`: its line in `tips` (id and varying parameters), then
/// what the point says.
fn tip(tips: &std::collections::BTreeMap<String, String>, trial: &str, what: String) -> String {
    format!("{}\n{what}", tips.get(trial).map_or(trial, String::as_str))
}

/// Draws `figure` into a fresh white buffer and saves it as PNG.
pub fn png(figure: &impl Figure, path: &Path) -> DrawResult<()> {
    register_fonts();
    let size = figure.size();
    let mut buffer = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        figure.draw_on(&root)?;
        root.present().map_err(err)?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, buffer).ok_or("buffer size")?;
    crate::canvas::save_png(&img, path).map_err(err)?;
    Ok(())
}

/// Draws `figure` as an SVG document (text as text, in the page's sans-serif font), with a
/// transparent link to its trial over every [`Target`], its tooltip the target's text.
pub fn svg(figure: &impl Figure) -> DrawResult<String> {
    register_fonts();
    let mut out = String::new();
    let Drawn { targets, data } = {
        let root = SVGBackend::with_string(&mut out, figure.size()).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let drawn = figure.draw_on(&root)?;
        root.present().map_err(err)?;
        drawn
    };
    if let (Some(data), Some(start)) = (data, out.find("<svg").and_then(|at| out[at..].find('>').map(|end| at + end + 1))) {
        out.insert_str(start, &format!("\n<desc class=\"chart-data\">{}</desc>", crate::report::html::escape(&data.to_string())));
    }
    if !targets.is_empty()
        && let Some(end) = out.rfind("</svg>")
    {
        use std::fmt::Write as _;
        let mut links = String::from("<g class=\"targets\">");
        for t in &targets {
            let href = crate::report::html::escape(&crate::report::html::Route::Trial.to(&t.trial));
            let _ = write!(
                links,
                "<a href=\"{href}\"><circle cx=\"{}\" cy=\"{}\" r=\"7\" fill=\"transparent\"><title>{}</title></circle></a>",
                t.x,
                t.y,
                crate::report::html::escape(&t.text)
            );
        }
        links.push_str("</g>\n");
        out.insert_str(end, &links);
    }
    Ok(out)
}

/// Learning curves of every run for one metric, the legend in a column of its own beside them.
pub struct Curves<'a>(pub &'a Chart);

impl Figure for Curves<'_> {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        line_chart(root, self.0, Legend::Beside).map(Drawn::links)
    }
}

/// The tutorial's two panels of one run, side by side.
pub struct Panels<'a>(pub &'a [Chart; 2]);

impl Figure for Panels<'_> {
    fn size(&self) -> (u32, u32) {
        PANELS_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let areas = root.split_evenly((1, 2));
        for (area, chart) in areas.iter().zip(self.0) {
            line_chart(area, chart, Legend::Inside)?;
        }
        Ok(Drawn::default())
    }
}

/// Where a line chart's legend goes: in a column beside the plot (a sweep's curves: up to 40
/// entries, never over a curve), or in its upper right corner (a run's two lines).
#[derive(Clone, Copy, PartialEq)]
enum Legend {
    Beside,
    Inside,
}

/// The legend column's width.
const LEGEND_WIDTH: u32 = 290;

/// The colour of the `i`-th run a legend names: the ten Tableau hues, then the same hues darker,
/// lighter and darker still, so that 40 runs get 40 colours.
pub fn run_colour(i: usize) -> RGBColor {
    let RGBColor(r, g, b) = PALETTE[i % PALETTE.len()];
    let shade = |c: u8, f: f64, towards: f64| (c as f64 + (towards - c as f64) * f).round() as u8;
    let (f, towards) = match (i / PALETTE.len()) % 4 {
        0 => (0.0, 0.0),
        1 => (0.45, 0.0),
        2 => (0.45, 255.0),
        _ => (0.7, 0.0),
    };
    RGBColor(shade(r, f, towards), shade(g, f, towards), shade(b, f, towards))
}

/// A legend entry's swatch, a line 24 pixels long as two segments (from, to): touching, or with
/// a gap for a training series, dashed as its curve is.
pub fn swatch(dashed: bool) -> [(i32, i32); 2] {
    if dashed { [(0, 9), (15, 24)] } else { [(0, 12), (12, 24)] }
}

/// Draws one line chart (learning curves or a run panel) on `area`.
fn line_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, chart: &Chart, legend: Legend) -> DrawResult<Vec<Target>> {
    let labelled = chart.series.iter().any(|s| !s.label.is_empty());
    let (plot_area, legend_area) = match legend {
        Legend::Beside if labelled => {
            let below_title = area.titled(&chart.title, (FONT, 20)).map_err(err)?;
            let (w, _) = below_title.dim_in_pixel();
            let (plot, side) = below_title.split_horizontally(w.saturating_sub(LEGEND_WIDTH));
            (plot, Some(side))
        }
        _ => (area.clone(), None),
    };
    let mut builder = ChartBuilder::on(&plot_area);
    if legend_area.is_none() {
        builder.caption(&chart.title, (FONT, 20));
    }
    let (lo, hi) = chart.y_range;
    let mut ctx =
        builder.margin(14).x_label_area_size(44).y_label_area_size(64).build_cartesian_2d(chart.x_range.0..chart.x_range.1, lo..hi).map_err(err)?;
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 13))
        .light_line_style(LIGHT_GRID)
        .bold_line_style(GRID)
        .x_labels(12)
        .y_labels(8)
        .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
        .y_label_formatter(&|y| crate::report::fmt_num(if chart.y_log { 10f64.powf(*y) } else { *y }))
        .draw()
        .map_err(err)?;
    let crowded = chart.series.iter().filter(|s| s.split == "val").count() > super::series::CROWDED;
    // A value outside the range (an outlier robust_range left out) is drawn at the edge.
    let clamp = |points: &[(f64, f64)]| -> Vec<(f64, f64)> { points.iter().map(|&(x, y)| (x, y.clamp(lo, hi))).collect() };
    // Grey runs first, then the coloured ones in rank order (the legend's order), so that the
    // runs the legend names are never buried under the crowd.
    let ordered = chart.series.iter().filter(|s| s.colour.is_none()).chain(chart.series.iter().filter(|s| s.colour.is_some()));
    let mut entries = Vec::new();
    let mut targets = Vec::new();
    for s in ordered {
        let colour = match s.colour {
            Some(i) => run_colour(i).to_rgba(),
            None => GREY.mix(if crowded { 0.35 } else { 0.6 }),
        };
        let width = if s.highlighted {
            4
        } else if s.colour.is_some() {
            2
        } else {
            1
        };
        let style = ShapeStyle { color: colour, filled: false, stroke_width: width };
        let points = clamp(&s.points);
        let dashed = s.split == "train";
        if !dashed {
            for (&(x, y), &(_, value)) in points.iter().zip(&s.points) {
                let (px, py) = ctx.backend_coord(&(x, y));
                let value = if chart.y_log { 10f64.powf(value) } else { value };
                let what = format!("epoch {x:.0}: {} {}", chart.y_label, crate::report::fmt_num(value));
                targets.push(Target { x: px, y: py, trial: s.run.clone(), text: tip(&chart.tips, &s.run, what) });
            }
        }
        let drawn = if dashed {
            ctx.draw_series(DashedLineSeries::new(points, 7, 5, style)).map_err(err)?
        } else {
            ctx.draw_series(LineSeries::new(points, style)).map_err(err)?
        };
        if !s.label.is_empty() {
            let label = if s.highlighted { format!("{} (best)", s.label) } else { s.label.clone() };
            match legend_area {
                Some(_) => entries.push((s.colour.unwrap_or(0), label, dashed, style)),
                None => {
                    let [a, b] = swatch(dashed);
                    drawn.label(label).legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(a.0, 0), (a.1, 0)], style)
                            + PathElement::new(vec![(b.0, 0), (b.1, 0)], style)
                    });
                }
            }
        }
        // A pruned trial's validation curve ends in a cross where the pruner stopped it.
        if s.pruned
            && s.split == "val"
            && let Some(&(x, y)) = s.points.last()
        {
            ctx.draw_series(std::iter::once(Cross::new((x, y.clamp(lo, hi)), 6, ShapeStyle { color: colour, filled: false, stroke_width: 2 })))
                .map_err(err)?;
        }
    }
    // The best run again, on top of everything else (its legend entry stays in rank order).
    for s in chart.series.iter().filter(|s| s.highlighted && s.split == "val") {
        let colour = run_colour(s.colour.unwrap_or(0)).to_rgba();
        ctx.draw_series(LineSeries::new(clamp(&s.points), ShapeStyle { color: colour, filled: false, stroke_width: 4 })).map_err(err)?;
    }
    // Clipped values: a triangle at the edge pointing the way they lie, with the value.
    let marker = BLACK.mix(0.75);
    for (_, x, y) in &chart.clipped {
        let above = *y > hi;
        let at = (*x, if above { hi } else { lo });
        let text = TextStyle::from((FONT, 12).into_font()).color(&marker).pos(Pos::new(HPos::Left, if above { VPos::Top } else { VPos::Bottom }));
        ctx.draw_series(std::iter::once(TriangleMarker::new(at, 6, marker.filled()))).map_err(err)?;
        ctx.draw_series(std::iter::once(Text::new(
            format!("{} (off the scale)", crate::report::fmt_num(if chart.y_log { 10f64.powf(*y) } else { *y })),
            at,
            text,
        )))
        .map_err(err)?;
    }
    if let Some(side) = &legend_area {
        entries.sort_by_key(|e| e.0);
        draw_legend_column(side, &entries)?;
    } else if labelled {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
    }
    if let Some(note) = &chart.note {
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            note,
            &TextStyle::from((FONT, 13).into_font()).color(&BLACK.mix(0.7)).pos(Pos::new(HPos::Right, VPos::Bottom)),
            (w as i32 - 20, h as i32 - 6),
        )
        .map_err(err)?;
    }
    if chart.series.is_empty() {
        let (w, h) = area.dim_in_pixel();
        area.draw_text(
            "no finite values recorded yet",
            &TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
            (w as i32 / 2, h as i32 / 2),
        )
        .map_err(err)?;
    }
    Ok(targets)
}

/// The legend as a column of its own: per entry a swatch and its label, wrapped onto as many
/// lines as the column's height leaves each entry (cut with an ellipsis beyond), so that 40
/// entries fit on one line each and a dozen show every parameter.
fn draw_legend_column<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(usize, String, bool, ShapeStyle)]) -> DrawResult<()> {
    let (w, h) = area.dim_in_pixel();
    let n = entries.len().max(1) as i32;
    let available = h as i32 - 50;
    let size = if available / n >= 14 { 12 } else { 10 };
    let line = size + 2;
    let lines_each = ((available / n - 3) / line).clamp(1, 4) as usize;
    // About 0.56 of the font size a character, in DejaVu Sans.
    let fits = ((w as f64 - 40.0) / (size as f64 * 0.56)) as usize;
    let style = TextStyle::from((FONT, size).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut y = 14;
    for (_, label, dashed, swatch_style) in entries {
        for (from, to) in swatch(*dashed) {
            area.draw(&PathElement::new(vec![(6 + from, y), (6 + to, y)], *swatch_style)).map_err(err)?;
        }
        let wrapped = wrap(label, fits, lines_each);
        for (k, text) in wrapped.iter().enumerate() {
            area.draw_text(text, &style, (36, y + k as i32 * line)).map_err(err)?;
        }
        y += wrapped.len() as i32 * line + 3;
    }
    Ok(())
}

/// `text` in lines of at most `width` characters, broken at spaces, at most `lines` of them (the
/// last cut with an ellipsis when more is left).
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match out.last_mut() {
            Some(last) if last.chars().count() + 1 + word.chars().count() <= width => {
                last.push(' ');
                last.push_str(word);
            }
            _ => out.push(word.to_string()),
        }
    }
    let cut = out.len() > lines || out.iter().any(|l| l.chars().count() > width);
    out.truncate(lines);
    for l in out.iter_mut() {
        if l.chars().count() > width {
            *l = l.chars().take(width.saturating_sub(1)).collect();
        }
    }
    if cut && let Some(last) = out.last_mut() {
        if last.chars().count() >= width {
            *last = last.chars().take(width.saturating_sub(1)).collect();
        }
        last.push('…');
    }
    out
}

/// Learning curves of every run for one metric, as a PNG file.
pub fn draw_curves(chart: &Chart, path: &Path) -> DrawResult<()> {
    png(&Curves(chart), path)
}

/// The tutorial's two panels for one run, side by side, as a PNG file.
pub fn draw_panels(panels: &[Chart; 2], path: &Path) -> DrawResult<()> {
    png(&Panels(panels), path)
}

/// A deterministic jitter in [-0.15, 0.15] for categorical scatter points.
fn jitter(id: &str) -> f64 {
    (crate::util::hash64(id.as_bytes()) % 1000) as f64 / 1000.0 * 0.3 - 0.15
}

/// The objective against one parameter, as a PNG file.
pub fn draw_scatter(s: &Scatter, path: &Path) -> DrawResult<()> {
    png(s, path)
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let s = self;
        let title = format!("{} vs {}", s.objective, s.param);
        let mut builder = ChartBuilder::on(root);
        builder.caption(&title, (FONT, 20)).margin(14).x_label_area_size(48).y_label_area_size(64);
        let point = |x: f64, y: f64, id: &str| {
            let best = s.best.as_deref() == Some(id);
            let style = if best { PALETTE[3].filled() } else { PALETTE[0].mix(0.75).filled() };
            Circle::new((x, y), if best { 8 } else { 5 }, style)
        };
        // A lent trial: a grey ring, under the sweep's own points.
        let ring = |x: f64, y: f64| Circle::new((x, y), 6, WARM.stroke_width(2));
        let target = |(px, py): (i32, i32), y: f64, id: &str| Target {
            x: px,
            y: py,
            trial: id.to_string(),
            text: tip(&s.tips, id, format!("{}: {}", s.objective, crate::report::fmt_num(y))),
        };
        let targets: Vec<Target> = match &s.axis {
            Axis::Numeric { min, max, log: true } => {
                let (lo, hi) = (min * 0.8, max * 1.25);
                let mut ctx = builder.build_cartesian_2d((lo..hi).log_scale(), s.y_range.0..s.y_range.1).map_err(err)?;
                ctx.configure_mesh()
                    .x_desc(format!("{} (log scale)", s.param))
                    .y_desc(&s.objective)
                    .axis_desc_style((FONT, 16))
                    .label_style((FONT, 13))
                    .light_line_style(LIGHT_GRID)
                    .bold_line_style(GRID)
                    .x_label_formatter(&|x| crate::report::fmt_num(*x))
                    .draw()
                    .map_err(err)?;
                ctx.draw_series(s.warm.iter().map(|(x, y, _)| ring(*x, *y))).map_err(err)?;
                ctx.draw_series(s.points.iter().map(|(x, y, id)| point(*x, *y, id))).map_err(err)?;
                s.points.iter().map(|(x, y, id)| target(ctx.backend_coord(&(*x, *y)), *y, id)).collect()
            }
            Axis::Numeric { min, max, .. } => {
                let pad = if (max - min).abs() < 1e-12 { 0.5_f64.max(min.abs() * 0.1) } else { (max - min) * 0.08 };
                let mut ctx = builder.build_cartesian_2d((min - pad)..(max + pad), s.y_range.0..s.y_range.1).map_err(err)?;
                ctx.configure_mesh()
                    .x_desc(&s.param)
                    .y_desc(&s.objective)
                    .axis_desc_style((FONT, 16))
                    .label_style((FONT, 13))
                    .light_line_style(LIGHT_GRID)
                    .bold_line_style(GRID)
                    .x_label_formatter(&|x| crate::report::fmt_num(*x))
                    .draw()
                    .map_err(err)?;
                ctx.draw_series(s.warm.iter().map(|(x, y, _)| ring(*x, *y))).map_err(err)?;
                ctx.draw_series(s.points.iter().map(|(x, y, id)| point(*x, *y, id))).map_err(err)?;
                s.points.iter().map(|(x, y, id)| target(ctx.backend_coord(&(*x, *y)), *y, id)).collect()
            }
            Axis::Categorical(names) => {
                let n = names.len().max(1) as f64;
                let mut ctx = builder.build_cartesian_2d(-0.5..(n - 0.5), s.y_range.0..s.y_range.1).map_err(err)?;
                ctx.configure_mesh()
                    .x_desc(format!("{} (groups)", s.param))
                    .y_desc(&s.objective)
                    .axis_desc_style((FONT, 16))
                    .label_style((FONT, 13))
                    .light_line_style(LIGHT_GRID)
                    .bold_line_style(GRID)
                    .x_labels(names.len().max(2))
                    .x_label_formatter(&|x| {
                        let i = x.round();
                        if (x - i).abs() < 1e-6 && i >= 0.0 { names.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
                    })
                    .disable_x_mesh()
                    .draw()
                    .map_err(err)?;
                ctx.draw_series(s.warm.iter().map(|(x, y, id)| ring(x + jitter(id), *y))).map_err(err)?;
                ctx.draw_series(s.points.iter().map(|(x, y, id)| point(x + jitter(id), *y, id))).map_err(err)?;
                s.points.iter().map(|(x, y, id)| target(ctx.backend_coord(&(x + jitter(id), *y)), *y, id)).collect()
            }
        };
        if let Some(best) = &s.best {
            let (w, _) = root.dim_in_pixel();
            root.draw_text(
                &format!("red: best trial {best}"),
                &TextStyle::from((FONT, 13).into_font()).color(&PALETTE[3]).pos(Pos::new(HPos::Right, VPos::Top)),
                (w as i32 - 20, 40),
            )
            .map_err(err)?;
        }
        // Below the axes, bottom left: the plot area's corners may hold points.
        if !s.lenders.is_empty() {
            let (_, h) = root.dim_in_pixel();
            root.draw_text(
                &format!("grey rings: warm start from {}", s.lenders.join(", ")),
                &TextStyle::from((FONT, 13).into_font()).color(&WARM).pos(Pos::new(HPos::Left, VPos::Bottom)),
                (14, h as i32 - 8),
            )
            .map_err(err)?;
        }
        Ok(Drawn::links(targets))
    }
}

/// A viridis-like colour for t in [0, 1] (dark purple to yellow).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.5, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let i = STOPS.iter().position(|(s, _)| *s >= t).unwrap_or(4).max(1);
    let ((t0, c0), (t1, c1)) = (STOPS[i - 1], STOPS[i]);
    let f = (t - t0) / (t1 - t0);
    let c = |k: usize| (c0[k] + (c1[k] - c0[k]) * f).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

/// Parallel coordinates of the swept parameters and the objective, lines coloured by it, as a
/// PNG file.
pub fn draw_parallel(p: &Parallel, path: &Path) -> DrawResult<()> {
    png(p, path)
}

impl Figure for Parallel {
    fn size(&self) -> (u32, u32) {
        PARALLEL_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let p = self;
        let n_axes = p.axes.len() + 1;
        let (lo, hi) = p.value_range;
        let norm = |v: f64| if (hi - lo).abs() < 1e-12 { 0.5 } else { (v - lo) / (hi - lo) };
        let title =
            format!("parallel coordinates: colour = {} (purple {} … yellow {})", p.objective, crate::report::fmt_num(lo), crate::report::fmt_num(hi));
        // A parameter that did not apply to a trial (a `when` parameter) is "n/a", below its axis.
        let not_applicable = |axis: usize| p.lines.iter().any(|(positions, _)| positions[axis].is_none());
        let any_not_applicable = (0..p.axes.len()).any(not_applicable);
        let bottom = if any_not_applicable { NOT_APPLICABLE - 0.08 } else { -0.08 };
        let mut ctx = ChartBuilder::on(root)
            .caption(&title, (FONT, 20))
            .margin(30)
            .x_label_area_size(50)
            .y_label_area_size(10)
            .build_cartesian_2d(-0.2..(n_axes as f64 - 0.8), bottom..1.08)
            .map_err(err)?;
        // Lines first, worst to best so the best lie on top.
        let mut lines: Vec<&(Vec<Option<f64>>, f64)> = p.lines.iter().collect();
        lines.sort_by(|a, b| p.goal.order(b.1, a.1));
        let width = if p.lines.len() > 60 { 1 } else { 2 };
        for (positions, value) in lines {
            let mut pts: Vec<(f64, f64)> = positions.iter().enumerate().map(|(i, y)| (i as f64, y.unwrap_or(NOT_APPLICABLE))).collect();
            pts.push((p.axes.len() as f64, norm(*value)));
            ctx.draw_series(LineSeries::new(pts, ShapeStyle { color: viridis(norm(*value)).to_rgba(), filled: false, stroke_width: width }))
                .map_err(err)?;
        }
        let label = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        let tick_colour = BLACK.mix(0.75);
        let tick = TextStyle::from((FONT, 12).into_font()).color(&tick_colour).pos(Pos::new(HPos::Left, VPos::Center));
        let mut axes: Vec<(String, Vec<(f64, String)>)> = p
            .axes
            .iter()
            .map(|(name, axis)| {
                let ticks = match axis {
                    Axis::Numeric { min, max, log } => {
                        let mid = if *log { (min * max).sqrt() } else { (min + max) / 2.0 };
                        let mut t = vec![(0.0, crate::report::fmt_num(*min)), (1.0, crate::report::fmt_num(*max))];
                        if (max - min).abs() > 1e-12 {
                            t.push((0.5, crate::report::fmt_num(mid)));
                        }
                        t
                    }
                    Axis::Categorical(names) => names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (if names.len() <= 1 { 0.5 } else { i as f64 / (names.len() - 1) as f64 }, n.clone()))
                        .collect(),
                };
                (format!("{name}{}", if matches!(axis, Axis::Numeric { log: true, .. }) { " (log)" } else { "" }), ticks)
            })
            .collect();
        axes.push((p.objective.clone(), vec![(0.0, crate::report::fmt_num(lo)), (1.0, crate::report::fmt_num(hi))]));
        for (i, (name, ticks)) in axes.iter().enumerate() {
            let x = i as f64;
            if i < p.axes.len() && not_applicable(i) {
                ctx.draw_series(std::iter::once(Circle::new((x, NOT_APPLICABLE), 4, BLACK.mix(0.6).filled()))).map_err(err)?;
                ctx.draw_series(std::iter::once(Text::new("n/a".to_string(), (x + 0.04, NOT_APPLICABLE), tick.clone()))).map_err(err)?;
            }
            ctx.draw_series(LineSeries::new(vec![(x, 0.0), (x, 1.0)], ShapeStyle { color: BLACK.to_rgba(), filled: false, stroke_width: 2 }))
                .map_err(err)?;
            let name_at = if any_not_applicable { NOT_APPLICABLE - 0.035 } else { -0.03 };
            ctx.draw_series(std::iter::once(Text::new(name.clone(), (x, name_at), label.clone()))).map_err(err)?;
            for (y, text) in ticks {
                ctx.draw_series(std::iter::once(Text::new(text.clone(), (x + 0.02, *y), tick.clone()))).map_err(err)?;
            }
        }
        // Each line's end on the objective's axis links to its trial.
        let targets = p
            .lines
            .iter()
            .zip(&p.ids)
            .map(|((_, value), id)| {
                let (x, y) = ctx.backend_coord(&(p.axes.len() as f64, norm(*value)));
                Target { x, y, trial: id.clone(), text: tip(&p.tips, id, format!("{}: {}", p.objective, crate::report::fmt_num(*value))) }
            })
            .collect();
        // For the sweep page's brush: each axis where it is drawn (x, and the y of its top and
        // bottom), and each trial's line as the y where it crosses each parameter's axis (None
        // at n/a).
        let axes: Vec<serde_json::Value> = (0..p.axes.len())
            .map(|i| {
                let ((x, top), (_, bottom)) = (ctx.backend_coord(&(i as f64, 1.0)), ctx.backend_coord(&(i as f64, 0.0)));
                serde_json::json!({"name": p.axes[i].0, "x": x, "top": top, "bottom": bottom})
            })
            .collect();
        let lines: Vec<serde_json::Value> = p
            .lines
            .iter()
            .zip(&p.ids)
            .map(|((positions, _), id)| {
                let ys: Vec<Option<i32>> = positions.iter().enumerate().map(|(i, y)| y.map(|y| ctx.backend_coord(&(i as f64, y)).1)).collect();
                serde_json::json!({"trial": id, "ys": ys})
            })
            .collect();
        Ok(Drawn { targets, data: Some(serde_json::json!({"parallel": {"axes": axes, "lines": lines}})) })
    }
}

impl Figure for History {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let h = self;
        let title = format!("optimisation history: {} by trial number, the best completed so far in red", h.objective);
        let mut ctx = ChartBuilder::on(root)
            .caption(&title, (FONT, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(h.x_range.0..h.x_range.1, h.y_range.0..h.y_range.1)
            .map_err(err)?;
        ctx.configure_mesh()
            .x_desc("trial number")
            .y_desc(format!("{} (best epoch)", h.objective))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
            .draw()
            .map_err(err)?;
        // The running best as a staircase: it holds until a trial beats it.
        let mut steps = Vec::new();
        for (i, &(x, y)) in h.running_best.iter().enumerate() {
            if i > 0 {
                steps.push((x, h.running_best[i - 1].1));
            }
            steps.push((x, y));
        }
        if let Some(&(_, y)) = h.running_best.last() {
            steps.push((h.x_range.1, y));
        }
        let best_style = ShapeStyle { color: PALETTE[3].to_rgba(), filled: false, stroke_width: 2 };
        ctx.draw_series(LineSeries::new(steps, best_style))
            .map_err(err)?
            .label("best so far")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], best_style));
        let completed = PALETTE[0].filled();
        let pruned = ShapeStyle { color: PALETTE[1].to_rgba(), filled: false, stroke_width: 2 };
        let other = ShapeStyle { color: GREY.to_rgba(), filled: false, stroke_width: 2 };
        let of = |wanted: &'static [TrialStatus]| h.points.iter().filter(move |p| wanted.contains(&p.2)).map(|p| (p.0, p.1));
        ctx.draw_series(of(&[TrialStatus::Completed]).map(|p| Circle::new(p, 5, completed)))
            .map_err(err)?
            .label("completed")
            .legend(move |(x, y)| Circle::new((x + 12, y), 5, completed));
        ctx.draw_series(of(&[TrialStatus::Pruned, TrialStatus::Stopped]).map(|p| Cross::new(p, 6, pruned)))
            .map_err(err)?
            .label("pruned or stopped (its best before it ended)")
            .legend(move |(x, y)| Cross::new((x + 12, y), 6, pruned));
        ctx.draw_series(
            of(&[TrialStatus::Running, TrialStatus::Queued, TrialStatus::Failed, TrialStatus::Diverged]).map(|p| Circle::new(p, 5, other)),
        )
        .map_err(err)?
        .label("running, failed or diverged")
        .legend(move |(x, y)| Circle::new((x + 12, y), 5, other));
        let targets = h
            .points
            .iter()
            .map(|(x, y, status, id)| {
                let (px, py) = ctx.backend_coord(&(*x, *y));
                let what = format!("trial #{x:.0}, {}: {} {}", status.as_str(), h.objective, crate::report::fmt_num(*y));
                Target { x: px, y: py, trial: id.clone(), text: tip(&h.tips, id, what) }
            })
            .collect();
        ctx.configure_series_labels()
            .position(if h.goal == crate::config::Goal::Maximize { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()
            .map_err(err)?;
        if h.points.is_empty() {
            let (w, hh) = root.dim_in_pixel();
            root.draw_text(
                "no trial has a value yet",
                &TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
                (w as i32 / 2, hh as i32 / 2),
            )
            .map_err(err)?;
        }
        Ok(Drawn::links(targets))
    }
}

impl Figure for Groups {
    fn size(&self) -> (u32, u32) {
        CHART_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let g = self;
        let title = format!("seed groups by mean {}: each trial's best, the mean (bar) ± one std (whisker)", g.objective);
        let n = g.groups.len().max(1) as f64;
        let mut ctx = ChartBuilder::on(root)
            .caption(&title, (FONT, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.5..n + 0.5, g.y_range.0..g.y_range.1)
            .map_err(err)?;
        let names: Vec<String> = g.groups.iter().map(|(id, ..)| id.clone()).collect();
        let label = move |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 1.0 { names.get(i as usize - 1).cloned().unwrap_or_default() } else { String::new() }
        };
        ctx.configure_mesh()
            .x_desc("seed group (named after its first trial), best mean first")
            .y_desc(format!("{} (best epoch)", g.objective))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .x_labels(g.groups.len().clamp(1, 40))
            .x_label_formatter(&label)
            .draw()
            .map_err(err)?;
        let mean_style = ShapeStyle { color: PALETTE[3].to_rgba(), filled: false, stroke_width: 3 };
        let whisker = ShapeStyle { color: BLACK.mix(0.6), filled: false, stroke_width: 2 };
        let dot = PALETTE[0].mix(0.8).filled();
        let mut targets = Vec::new();
        for (i, (_, values, mean, std)) in g.groups.iter().enumerate() {
            let x = i as f64 + 1.0;
            if let (Some(m), Some(s)) = (mean, std) {
                let ends = [(x, m - s), (x, m + s)];
                ctx.draw_series([PathElement::new(ends.to_vec(), whisker)]).map_err(err)?;
                for y in [m - s, m + s] {
                    ctx.draw_series([PathElement::new(vec![(x - 0.08, y), (x + 0.08, y)], whisker)]).map_err(err)?;
                }
            }
            if let Some(m) = mean {
                ctx.draw_series([PathElement::new(vec![(x - 0.25, *m), (x + 0.25, *m)], mean_style)]).map_err(err)?;
            }
            // The seeds side by side around the group's place, so that equal values stay apart.
            let k = values.len().max(1) as f64;
            for (j, (id, v)) in values.iter().enumerate() {
                let dx = if k > 1.0 { -0.15 + 0.3 * j as f64 / (k - 1.0) } else { 0.0 };
                ctx.draw_series([Circle::new((x + dx, *v), 5, dot)]).map_err(err)?;
                let (px, py) = ctx.backend_coord(&(x + dx, *v));
                let what = format!("{id}: {} {}", g.objective, crate::report::fmt_num(*v));
                targets.push(Target { x: px, y: py, trial: id.clone(), text: tip(&g.tips, id, what) });
            }
        }
        if g.groups.is_empty() {
            let (w, hh) = root.dim_in_pixel();
            root.draw_text(
                "no seed group has a completed trial yet",
                &TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
                (w as i32 / 2, hh as i32 / 2),
            )
            .map_err(err)?;
        }
        Ok(Drawn::links(targets))
    }
}

/// Where a parallel-coordinates line crosses the axis of a parameter that did not apply to its
/// trial: below the axis, apart from every value it can take.
const NOT_APPLICABLE: f64 = -0.14;

/// The parameter-importance bar chart.
pub const IMPORTANCE_SIZE: (u32, u32) = (1000, 500);

/// Parameter importance as horizontal bars, most important on top.
pub struct Importances<'a> {
    pub importances: &'a [ParamImportance],
    pub objective: &'a str,
}

impl Figure for Importances<'_> {
    fn size(&self) -> (u32, u32) {
        IMPORTANCE_SIZE
    }
    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        importance_chart(root, self.importances, self.objective)?;
        Ok(Drawn::default())
    }
}

/// Parameter importance as horizontal bars, into a PNG file.
pub fn draw_importance(importances: &[ParamImportance], objective: &str, path: &Path) -> DrawResult<()> {
    png(&Importances { importances, objective }, path)
}

fn importance_chart<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, importances: &[ParamImportance], objective: &str) -> DrawResult<()> {
    let n = importances.len().max(1);
    let label_width = importances.iter().map(|p| p.parameter.len()).max().unwrap_or(8).clamp(8, 40) as u32 * 8 + 16;
    let mut ctx = ChartBuilder::on(root)
        .caption(format!("parameter importance for {objective} (permutation importance, random forest)"), (FONT, 20))
        .margin(20)
        .x_label_area_size(44)
        .y_label_area_size(label_width)
        // An integer range includes its end: rows 0..=n-1, one per parameter.
        .build_cartesian_2d(0.0..1.0, (0..n - 1).into_segmented())
        .map_err(err)?;
    // Rows counted from the bottom: the most important parameter is drawn in the top row.
    let row = |i: usize| n - 1 - i;
    ctx.configure_mesh()
        .disable_y_mesh()
        .x_desc("share of the objective's out-of-bag error explained")
        .axis_desc_style((FONT, 16))
        .label_style((FONT, 14))
        .light_line_style(LIGHT_GRID)
        .bold_line_style(GRID)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(k) if *k < n => importances.get(n - 1 - k).map(|p| p.parameter.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
        .draw()
        .map_err(err)?;
    ctx.draw_series(importances.iter().enumerate().map(|(i, p)| {
        let y = row(i);
        let mut bar = Rectangle::new([(0.0, SegmentValue::Exact(y)), (p.importance, SegmentValue::Exact(y + 1))], PALETTE[0].filled());
        bar.set_margin(6, 6, 0, 0);
        bar
    }))
    .map_err(err)?;
    ctx.draw_series(importances.iter().enumerate().map(|(i, p)| {
        let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        Text::new(format!("{:.1}%", p.importance * 100.0), (p.importance.min(0.88) + 0.01, SegmentValue::CenterOf(row(i))), style)
    }))
    .map_err(err)?;
    Ok(())
}

/// A value range with a margin, for a panel's axis (one value gets a unit-wide range).
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.08 } else { 0.5_f64.max(lo.abs() * 0.1) };
    (lo - pad, hi + pad)
}

impl Figure for Pareto {
    /// Two objectives: the front and the hypervolume side by side; three: the three pairs and
    /// the hypervolume, two by two.
    fn size(&self) -> (u32, u32) {
        if self.objectives.len() > 2 { (1100, 1000) } else { (1300, 560) }
    }

    fn draw_on<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<Drawn> {
        let n = self.objectives.len();
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
        let front_count = self.points.iter().filter(|p| p.2).count();
        let crossed = if self.infeasible.is_empty() { String::new() } else { format!(", {} infeasible crossed", self.infeasible.len()) };
        let title = format!(
            "Pareto front: {front_count} of {} completed trials (red), dominated ones grey{crossed}; {}",
            self.points.len(),
            self.objectives.iter().map(|(name, goal)| format!("{name} {}", goal.as_str())).collect::<Vec<_>>().join(", ")
        );
        let root = root.titled(&title, (FONT, 20)).map_err(err)?;
        let areas = if n > 2 { root.split_evenly((2, 2)) } else { root.split_by_breakpoints([(self.size().0 as f64 * 0.56) as u32], [] as [u32; 0]) };
        let mut targets = Vec::new();
        for (k, &(i, j)) in pairs.iter().enumerate() {
            let area = &areas[k];
            let every = || self.points.iter().map(|p| &p.0).chain(self.infeasible.iter().map(|p| &p.0));
            let (xr, yr) = (padded(every().map(|v| v[i])), padded(every().map(|v| v[j])));
            let mut ctx = ChartBuilder::on(area)
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(70)
                .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
                .map_err(err)?;
            let ((xi, gi), (yj, gj)) = (&self.objectives[i], &self.objectives[j]);
            ctx.configure_mesh()
                .x_desc(format!("{xi} ({})", if *gi == crate::config::Goal::Maximize { "higher is better" } else { "lower is better" }))
                .y_desc(format!("{yj} ({})", if *gj == crate::config::Goal::Maximize { "higher is better" } else { "lower is better" }))
                .axis_desc_style((FONT, 15))
                .label_style((FONT, 12))
                .light_line_style(LIGHT_GRID)
                .bold_line_style(GRID)
                .x_label_formatter(&|x| crate::report::fmt_num(*x))
                .y_label_formatter(&|y| crate::report::fmt_num(*y))
                .draw()
                .map_err(err)?;
            ctx.draw_series(self.points.iter().filter(|p| !p.2).map(|p| Circle::new((p.0[i], p.0[j]), 4, GREY.mix(0.7).filled()))).map_err(err)?;
            let crossed = ShapeStyle { color: RGBColor(109, 76, 65).to_rgba(), filled: false, stroke_width: 2 };
            ctx.draw_series(self.infeasible.iter().map(|p| Cross::new((p.0[i], p.0[j]), 6, crossed))).map_err(err)?;
            if n == 2 {
                // The front's staircase: between two neighbours, the corner both dominate.
                let mut front: Vec<(f64, f64)> = self.points.iter().filter(|p| p.2).map(|p| (p.0[i], p.0[j])).collect();
                front.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                let worse = |goal: crate::config::Goal, a: f64, b: f64| if goal.order(a, b).is_le() { b } else { a };
                let mut steps = Vec::new();
                for (k, &(x, y)) in front.iter().enumerate() {
                    if k > 0 {
                        let (px, py) = front[k - 1];
                        steps.push((worse(*gi, px, x), worse(*gj, py, y)));
                    }
                    steps.push((x, y));
                }
                ctx.draw_series(LineSeries::new(steps, PALETTE[3].stroke_width(2))).map_err(err)?;
            }
            ctx.draw_series(self.points.iter().filter(|p| p.2).map(|p| Circle::new((p.0[i], p.0[j]), 6, PALETTE[3].filled()))).map_err(err)?;
            if k == 0 {
                for (values, id, front) in &self.points {
                    let (x, y) = ctx.backend_coord(&(values[i], values[j]));
                    let said: Vec<String> =
                        self.objectives.iter().zip(values).map(|((name, _), v)| format!("{name} {}", crate::report::fmt_num(*v))).collect();
                    let what = format!("{}{}", said.join(", "), if *front { " (on the front)" } else { "" });
                    targets.push(Target { x, y, trial: id.clone(), text: tip(&self.tips, id, what) });
                }
            }
        }
        // The hypervolume as trials finished.
        let area = &areas[pairs.len()];
        let last = self.hypervolume.last().map_or(1.0, |h| h.0).max(1.0);
        let top = self.hypervolume.iter().map(|h| h.1).fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.08;
        let reference: Vec<String> = self.reference.iter().map(|v| crate::report::fmt_num(*v)).collect();
        let mut ctx = ChartBuilder::on(area)
            .caption(format!("hypervolume against ({})", reference.join(", ")), (FONT, 15))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..last, 0.0..top)
            .map_err(err)?;
        ctx.configure_mesh()
            .x_desc("completed trials, by trial number")
            .y_desc("hypervolume")
            .x_label_formatter(&|x| if (x - x.round()).abs() < 1e-9 { format!("{x:.0}") } else { String::new() })
            .axis_desc_style((FONT, 15))
            .label_style((FONT, 12))
            .light_line_style(LIGHT_GRID)
            .bold_line_style(GRID)
            .y_label_formatter(&|y| crate::report::fmt_num(*y))
            .draw()
            .map_err(err)?;
        ctx.draw_series(LineSeries::new(self.hypervolume.iter().copied(), PALETTE[0].stroke_width(2))).map_err(err)?;
        Ok(Drawn::links(targets))
    }
}
