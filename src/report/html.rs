//! The pages of the dashboard as HTML strings: the sweeps, a sweep (leaderboard, charts, sweep
//! file), a trial, and a comparison. Pure functions from tracker rows and drawn charts to text,
//! shared by `sweep ui` (charts inline as SVG, links to its routes) and the static `index.html`
//! that `sweep run` and `sweep plot` write next to the PNG charts (charts as `<img>`, no routes):
//! one rendering code for the live pages and their offline export.
//!
//! A page marked live carries a few lines of plain JavaScript: it polls a small JSON state
//! endpoint and, when the state changes, fetches the page again and swaps its `#live` part, so a
//! new epoch appears without a reload and the filter box keeps what is being typed.

use std::fmt::Write as _;

use crate::config::Objective;
use crate::report::{epochs_of, filter, fmt_num, fmt_param, short_params, tags_cell};
use crate::store::TrialData;
use crate::store::{MetricRow, SweepInfo, TrialRow, TrialStatus};
use crate::util::format_utc;

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Percent-encodes a query or path value (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The dashboard's routes, written once: `sweep ui` serves [`Route::pattern`] and the pages link
/// with [`Route::to`], so a link and the route it points at cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The sweeps.
    Index,
    /// A sweep: `/sweeps/NAME` (`?sort=`, `?where=`).
    Sweep,
    /// A trial: `/runs/ID`.
    Trial,
    /// A trial's prediction grid, drawn when asked for: `/runs/ID/predictions.png?epoch=N`.
    Predictions,
    /// A trial's worst validation images, drawn when asked for: `/runs/ID/worst.png?epoch=N`.
    Worst,
    /// What a trial's workers wrote to their logs while they held it: `/runs/ID/log`.
    Log,
    /// Actions (`sweep ui --allow-actions`), POST only: a trial's tags, its note; stopping,
    /// pruning and resuming it.
    Tags,
    Note,
    Stop,
    Prune,
    Resume,
    /// Trials side by side: `/compare?runs=a,b`.
    Compare,
    /// The JSON state that a live page polls: of the sweeps, of a sweep, of a trial.
    SweepsState,
    SweepState,
    SearchState,
    /// A file under the runs directory: `/files/PATH`.
    File,
    /// A sweep's parameter importance as a part of its page, which the page fetches once it is
    /// shown (the random forest takes a while on a large sweep):
    /// `/sweeps/NAME/importance?of=STATE&where=F`, where `STATE` names the trials the page was
    /// drawn from (the dashboard's kept answer for them is given, not worked out again).
    SweepImportance,
}

impl Route {
    /// Every route, for the server.
    pub const ALL: [Route; 17] = [
        Route::Index,
        Route::Sweep,
        Route::Trial,
        Route::Predictions,
        Route::Worst,
        Route::Log,
        Route::Tags,
        Route::Note,
        Route::Stop,
        Route::Prune,
        Route::Resume,
        Route::Compare,
        Route::SweepsState,
        Route::SweepState,
        Route::SearchState,
        Route::File,
        Route::SweepImportance,
    ];

    /// The path pattern in axum's syntax (`{name}` one segment, `{*path}` the rest).
    pub fn pattern(self) -> &'static str {
        match self {
            Route::Index => "/",
            Route::Sweep => "/sweeps/{name}",
            Route::Trial => "/runs/{id}",
            Route::Predictions => "/runs/{id}/predictions.png",
            Route::Worst => "/runs/{id}/worst.png",
            Route::Log => "/runs/{id}/log",
            Route::Tags => "/runs/{id}/tags",
            Route::Note => "/runs/{id}/note",
            Route::Stop => "/runs/{id}/stop",
            Route::Prune => "/runs/{id}/prune",
            Route::Resume => "/runs/{id}/resume",
            Route::Compare => "/compare",
            Route::SweepsState => "/api/sweeps",
            Route::SweepState => "/api/sweeps/{name}",
            Route::SearchState => "/api/runs/{id}",
            Route::File => "/files/{*path}",
            Route::SweepImportance => "/sweeps/{name}/importance",
        }
    }

    /// The path of this route for `value` (a sweep name, a trial id, a file's path segments
    /// joined by `/`): a one-segment value is percent-encoded, a file path is taken as given
    /// (its segments encoded by the caller); routes without a value ignore it.
    pub fn to(self, value: &str) -> String {
        let pattern = self.pattern();
        match (pattern.find('{'), pattern.find('}')) {
            (Some(open), Some(close)) => {
                let filled = if pattern[open..].starts_with("{*") { value.to_string() } else { url_encode(value) };
                format!("{}{filled}{}", &pattern[..open], &pattern[close + 1..])
            }
            _ => pattern.to_string(),
        }
    }
}

/// Where the links of a page point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// `sweep ui`'s routes (`/sweeps/NAME`, `/runs/ID`, `/compare?runs=...`).
    Server,
    /// A static page among files: no routes, trials are not links.
    Files,
}

impl Links {
    fn trial(self, id: &str) -> String {
        match self {
            Links::Server => format!("<a href=\"{}\">{}</a>", escape(&Route::Trial.to(id)), escape(id)),
            Links::Files => escape(id),
        }
    }

    fn sweep(self, name: &str) -> String {
        match self {
            Links::Server => format!("<a href=\"{}\">{}</a>", escape(&Route::Sweep.to(name)), escape(name)),
            Links::Files => escape(name),
        }
    }
}

/// A chart on a page: drawn inline (SVG text) or an image file next to the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Picture {
    Svg(String),
    File(String),
    /// A route that serves an image (computed when asked for, e.g. the prediction grid).
    Url(String),
}

impl Picture {
    fn html(&self, alt: &str) -> String {
        match self {
            Picture::Svg(svg) => format!("<div class=\"chart\">{}</div>", strip_xml_declaration(svg)),
            Picture::File(src) | Picture::Url(src) => format!("<img src=\"{}\" alt=\"{}\">", escape(src), escape(alt)),
        }
    }
}

fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222}\
header{background:#24323f;color:#fff;padding:10px 24px}header a{color:#fff;text-decoration:none;font-weight:bold}\
main{margin:16px 24px}table{border-collapse:collapse;margin:8px 0 20px}\
td,th{border:1px solid #ccc;padding:3px 9px;text-align:right}td.l,th{text-align:left}th a{color:#222}\
.best{background:#fff3c4}.pruned{color:#8a5a00}.failed,.diverged{color:#b00020}.infeasible{color:#6d4c41}.running{color:#1565c0}\
.chart svg,img{max-width:100%;height:auto;border:1px solid #ddd;margin:6px 0}\
pre{background:#f6f6f6;padding:10px;overflow:auto}.error{color:#b00020;font-weight:bold}\
.note{color:#555}input[type=text]{width:40em}\
.wide{overflow-x:auto;max-width:100%}td.id{white-space:nowrap}.leaderboard th{white-space:normal;overflow-wrap:anywhere;max-width:9em}\
form.view input[type=number]{width:6em}\
.pictures{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}figure{margin:0}figcaption{color:#555}";

/// A whole page: `title`, the navigation bar, `body`; with `state` (a JSON URL) the page polls it
/// and swaps its `#live` part when it changes.
pub fn layout(title: &str, body: &str, links: Links, state: Option<&str>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head>\n<body{}>\n",
        escape(title),
        state.map(|s| format!(" data-state=\"{}\"", escape(s))).unwrap_or_default()
    );
    if links == Links::Server {
        let _ = writeln!(html, "<header><a href=\"{}\">sweep</a> · read-only dashboard</header>", Route::Index.pattern());
    }
    let _ = write!(html, "<main>\n{body}</main>\n");
    if state.is_some() {
        html.push_str(REFRESH_SCRIPT);
    }
    html.push_str("</body></html>\n");
    html
}

/// Polls the page's state URL every 2 s; when the answer changes, fetches the page again and
/// replaces `#live` with the new one (no framework, no reload).
const REFRESH_SCRIPT: &str = r#"<script>
(function () {
  var url = document.body.dataset.state, last = null;
  async function tick() {
    try {
      var state = await (await fetch(url, {cache: "no-store"})).text();
      if (last !== null && state !== last) {
        var page = await (await fetch(location.href, {cache: "no-store"})).text();
        var fresh = new DOMParser().parseFromString(page, "text/html").getElementById("live");
        if (fresh) {
          document.getElementById("live").replaceWith(fresh);
          document.dispatchEvent(new Event("live"));
        }
      }
      last = state;
    } catch (e) {}
    setTimeout(tick, 2000);
  }
  tick();
})();
</script>
"#;

/// The sweep page's parallel coordinates brushed to filter its leaderboard: drag along a
/// parameter's axis to keep the trials whose line crosses it there (on several axes: inside every
/// range); a click on an axis clears its range. It reads the pixels the server drew the chart at
/// (`<desc class="chart-data">`), and keeps its ranges when the live part is swapped in anew.
const BRUSH_SCRIPT: &str = r##"<script>
(function () {
  var ranges = {};
  function setup() {
    var desc = document.querySelector("svg desc.chart-data");
    var data = desc && JSON.parse(desc.textContent).parallel;
    if (!data) return;
    var svg = desc.closest("svg"), ns = "http://www.w3.org/2000/svg", drag = null;
    function at(e) {
      var p = svg.createSVGPoint();
      p.x = e.clientX; p.y = e.clientY;
      return p.matrixTransform(svg.getScreenCTM().inverse());
    }
    function axisNear(x) {
      for (var i = 0; i < data.axes.length; i++) if (Math.abs(data.axes[i].x - x) < 14) return i;
      return -1;
    }
    function draw(i) {
      var old = svg.querySelector("rect.brush[data-axis='" + i + "']");
      if (old) old.remove();
      if (!ranges[i]) return;
      var r = document.createElementNS(ns, "rect");
      r.setAttribute("class", "brush"); r.setAttribute("data-axis", i);
      r.setAttribute("x", data.axes[i].x - 8); r.setAttribute("width", 16);
      r.setAttribute("y", ranges[i][0]); r.setAttribute("height", Math.max(1, ranges[i][1] - ranges[i][0]));
      r.setAttribute("fill", "rgba(30,110,255,0.25)"); r.setAttribute("stroke", "#1e6eff");
      r.style.pointerEvents = "none";
      svg.appendChild(r);
    }
    function apply() {
      var axes = Object.keys(ranges), keep = {}, kept = 0;
      data.lines.forEach(function (l) {
        var inside = axes.every(function (i) { var y = l.ys[i]; return y !== null && y >= ranges[i][0] && y <= ranges[i][1]; });
        if (inside) { keep[l.trial] = true; kept++; }
      });
      document.querySelectorAll("table.leaderboard tr").forEach(function (tr) {
        var a = tr.querySelector("td.id a");
        if (a) tr.style.display = !axes.length || keep[a.textContent] ? "" : "none";
      });
      var note = document.getElementById("brush-note");
      if (note) note.textContent = axes.length ? kept + " of " + data.lines.length +
        " trials cross every brushed range of the parallel coordinates; click an axis to clear its range" : "";
    }
    svg.addEventListener("mousedown", function (e) {
      var p = at(e), i = axisNear(p.x);
      if (i < 0) return;
      drag = {axis: i, from: p.y};
      e.preventDefault();
    });
    svg.addEventListener("mousemove", function (e) {
      if (!drag) return;
      var y = at(e).y;
      ranges[drag.axis] = [Math.min(drag.from, y), Math.max(drag.from, y)];
      draw(drag.axis);
    });
    svg.addEventListener("mouseup", function (e) {
      if (!drag) return;
      var y = at(e).y, i = drag.axis;
      if (Math.abs(y - drag.from) < 3) delete ranges[i]; else ranges[i] = [Math.min(drag.from, y), Math.max(drag.from, y)];
      drag = null;
      draw(i);
      apply();
    });
    Object.keys(ranges).forEach(draw);
    apply();
  }
  setup();
  document.addEventListener("live", setup);
})();
</script>
"##;

/// A sweep as the index lists it.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub info: SweepInfo,
    /// `grid`, `random`, `bayes` (`?` when the stored file no longer parses).
    pub method: String,
    /// The `[early_terminate]` type, or `none`.
    pub pruner: String,
    pub objective: Objective,
    /// The best completed trial so far: id, value, epoch.
    pub best: Option<(String, f64, i64)>,
}

/// `/`: every sweep with its counts per status and its best so far.
pub fn sweeps_page(sweeps: &[SweepSummary]) -> String {
    let mut body = String::from("<h1>Sweeps</h1>\n<div id=\"live\">\n");
    if sweeps.is_empty() {
        body.push_str("<p>No sweep in the tracker yet: start one with <code>sweep run FILE</code>.</p>\n");
    } else {
        body.push_str("<table><tr><th>sweep</th><th>method</th><th>pruner</th><th>trials</th>");
        for s in TrialStatus::ALL {
            let _ = write!(body, "<th>{}</th>", s.as_str());
        }
        body.push_str("<th>objective</th><th>best so far</th><th>started (UTC)</th><th>updated (UTC)</th></tr>\n");
        for s in sweeps {
            let total: i64 = s.info.counts.values().sum();
            let _ = write!(
                body,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{total}</td>",
                Links::Server.sweep(&s.info.name),
                escape(&s.method),
                escape(&s.pruner)
            );
            for status in TrialStatus::ALL {
                let _ = write!(body, "<td>{}</td>", s.info.counts.get(status.as_str()).copied().unwrap_or(0));
            }
            let best = match &s.best {
                Some((id, v, e)) => format!("{} = {} ({}, epoch {e})", escape(&s.objective.name), fmt_num(*v), Links::Server.trial(id)),
                None => "none yet".into(),
            };
            let _ = writeln!(
                body,
                "<td class=\"l\">{} ({})</td><td class=\"l\">{best}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.objective.name),
                s.objective.goal.as_str(),
                format_utc(s.info.created),
                format_utc(s.info.updated)
            );
        }
        body.push_str("</table>\n");
    }
    body.push_str("</div>\n");
    layout("sweep: sweeps", &body, Links::Server, Some(Route::SweepsState.pattern()))
}

/// What the sweep page shows about parameter importance.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportanceView {
    /// Parameters with their share of the objective's explained error, most important first, and the
    /// bar chart when one was drawn.
    Ranked(Vec<(String, f64)>, Option<Picture>),
    /// Why there is none (too few finished trials, or not computed).
    Unavailable(String),
    /// A sweep of several objectives: each objective (its name and goal in words) and its
    /// importance.
    PerObjective(Vec<(String, ImportanceView)>),
    /// Worked out apart: the page fetches it from this address once shown (the dashboard's).
    Deferred(String),
}

/// The importance section's content: each parameter's share and the chart, or why there is none.
pub fn importance_section(importance: &ImportanceView) -> String {
    let mut body = String::new();
    match importance {
        ImportanceView::Ranked(ranked, chart) => {
            body.push_str("<table><tr><th>parameter</th><th>importance</th></tr>\n");
            for (p, share) in ranked {
                let _ = writeln!(body, "<tr><td class=\"l\">{}</td><td>{:.1}%</td></tr>", escape(p), share * 100.0);
            }
            body.push_str("</table>\n");
            if let Some(chart) = chart {
                body.push_str(&chart.html("parameter importance"));
            }
        }
        ImportanceView::Unavailable(why) => {
            let _ = writeln!(body, "<p class=\"note\">{}</p>", escape(why));
        }
        ImportanceView::Deferred(_) => body.push_str("<p class=\"note\">Working out parameter importance&hellip;</p>\n"),
        ImportanceView::PerObjective(views) => {
            for (objective, view) in views {
                let _ = writeln!(body, "<h3>For {}</h3>", escape(objective));
                body.push_str(&importance_section(view));
            }
        }
    }
    body
}

/// Fills the importance section from its address once the page is shown, and again whenever the
/// live part is swapped in anew.
const IMPORTANCE_SCRIPT: &str = r#"<script>
(function () {
  function load() {
    var box = document.getElementById("importance");
    if (!box || !box.dataset.src) return;
    var src = box.dataset.src;
    fetch(src).then(function (r) {
      return r.ok ? r.text() : "<p class=\"error\">Parameter importance could not be worked out (HTTP " + r.status + "): reload the page.</p>";
    }).then(function (html) {
      var now = document.getElementById("importance");
      if (now && now.dataset.src === src) { now.innerHTML = html; now.removeAttribute("data-src"); }
    });
  }
  load();
  document.addEventListener("live", load);
})();
</script>
"#;

/// Everything the sweep page shows.
#[derive(Debug, Clone)]
pub struct SweepView<'a> {
    pub name: &'a str,
    /// The counts per status, started and updated (absent in a static export without the row).
    pub info: Option<&'a SweepInfo>,
    pub method: &'a str,
    pub pruner: &'a str,
    /// `[bayes] warm_start`: (sweep, what it lends in words).
    pub warm_start: &'a [(String, String)],
    pub objective: &'a Objective,
    /// The leaderboard's trials, in its order (filtered and sorted by the caller).
    pub trials: &'a [TrialData],
    /// The trials the filter kept out of `runs` would be counted here.
    pub total: usize,
    /// The leaderboard's page, from 1 ([`LEADERBOARD_ROWS`] trials a page; past the last is the
    /// last). The static export shows the first.
    pub page: usize,
    /// The sort key and the filter as asked, and why the filter was refused.
    pub sort: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub filter_error: Option<&'a str>,
    /// Titled charts: learning curves, objective vs each parameter, parallel coordinates.
    pub charts: Vec<(String, Picture)>,
    /// What the charts leave out of a large sweep, in words (`charts::series::charted_note`).
    pub charts_note: Option<String>,
    /// How the learning curves are shown, with the form that changes it (the dashboard's; None
    /// in the static export).
    pub curve_view: Option<&'a CurveView>,
    pub importance: ImportanceView,
    /// The sweep file as written.
    pub spec: Option<&'a str>,
    pub links: Links,
}

/// How the dashboard shows learning curves, as its form asks: a log scale for the losses,
/// smoothing (TensorBoard's: an exponential moving average with weight `smooth`, debiased at the
/// start), and a zoom on the y axis of one metric's curves (in its units). The default shows
/// them as recorded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CurveView {
    /// The losses' curves on a log scale.
    pub log: bool,
    /// In [0, 1): 0 is none.
    pub smooth: f64,
    /// The metric (`loss`, `iou`, ...) whose y axis goes from, to.
    pub zoom: Option<(String, f64, f64)>,
}

/// The learning curves' form: log scale, smoothing and a zoom on the y axis, sent with the
/// filter and sort so that the page keeps them.
fn curve_view_form(body: &mut String, v: &SweepView, view: &CurveView) {
    let hidden = |name: &str, value: Option<&str>| {
        value.map(|x| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(x))).unwrap_or_default()
    };
    let number = |x: Option<f64>| x.map(fmt_num).unwrap_or_default();
    let _ = writeln!(
        body,
        "<form method=\"get\" class=\"view\">learning curves: <label><input type=\"checkbox\" name=\"log\"{}> losses on a log scale</label> \
         <label>smoothing <input type=\"number\" name=\"smooth\" min=\"0\" max=\"0.99\" step=\"0.01\" value=\"{}\"></label> \
         <label>zoom <select name=\"zoom\">{}</select></label> \
         <label>from <input type=\"number\" name=\"ymin\" step=\"any\" value=\"{}\"></label> \
         <label>to <input type=\"number\" name=\"ymax\" step=\"any\" value=\"{}\"></label>{}{}<button>show</button></form>",
        if view.log { " checked" } else { "" },
        if view.smooth > 0.0 { fmt_num(view.smooth) } else { String::new() },
        ["loss", "iou", "dice"]
            .iter()
            .map(|m| {
                let chosen = view.zoom.as_ref().is_some_and(|z| z.0 == *m);
                format!("<option value=\"{m}\"{}>val_{m}</option>", if chosen { " selected" } else { "" })
            })
            .collect::<String>(),
        number(view.zoom.as_ref().map(|z| z.1)),
        number(view.zoom.as_ref().map(|z| z.2)),
        hidden("where", v.filter),
        hidden("sort", v.sort),
    );
}

/// The leaderboard's metric columns besides the objective: the built-in trainer's validation
/// metrics, or a program's (up to four).
fn metric_columns(objective: &Objective, trials: &[TrialData]) -> Vec<String> {
    let shown = crate::report::program_metrics(trials.iter().flat_map(|r| r.row.metrics.keys()), 5)
        .unwrap_or_else(|| ["val_iou", "val_dice", "val_loss"].map(String::from).to_vec());
    shown.into_iter().filter(|m| *m != objective.name).take(4).collect()
}

/// `/sweeps/NAME` (and the static `index.html`): the leaderboard, the charts, importance and
/// the sweep file.
pub fn sweep_page(v: &SweepView) -> String {
    let mut body = String::new();
    let _ = writeln!(body, "<h1>sweep {}</h1>", escape(v.name));
    let _ = writeln!(
        body,
        "<p>method <b>{}</b>, pruner <b>{}</b>, objective <b>{}</b> ({}){}.</p>",
        escape(v.method),
        escape(v.pruner),
        escape(&v.objective.name),
        v.objective.goal.as_str(),
        v.info.map(|i| format!("; started {} UTC", format_utc(i.created))).unwrap_or_default()
    );
    if !v.warm_start.is_empty() {
        let lent: Vec<String> = v
            .warm_start
            .iter()
            .map(|(sweep, said)| match v.links {
                Links::Server => format!("<a href=\"{}\">{}</a>", escape(&Route::Sweep.to(sweep)), escape(said)),
                Links::Files => escape(said),
            })
            .collect();
        let _ = writeln!(
            body,
            "<p>warm start: TPE also learns from {} (grey rings in the charts of the objective against each parameter).</p>",
            lent.join(", ")
        );
    }
    if v.links == Links::Server {
        let _ = writeln!(
            body,
            "<form method=\"get\">filter <input type=\"text\" name=\"where\" value=\"{}\" placeholder=\"val_iou &gt; 0.5 and augment.hue_delta &lt; 0.2\">\
             {}<button>apply</button> <span class=\"note\">the <code>sweep ls --where</code> language</span></form>",
            escape(v.filter.unwrap_or("")),
            v.sort.map(|s| format!("<input type=\"hidden\" name=\"sort\" value=\"{}\">", escape(s))).unwrap_or_default()
        );
        if let Some(e) = v.filter_error {
            let _ = writeln!(body, "<p class=\"error\">{}</p>", escape(e));
        }
    }
    if let Some(view) = v.curve_view {
        curve_view_form(&mut body, v, view);
    }
    if v.links == Links::Server {
        body.push_str("<p id=\"brush-note\" class=\"note\"></p>\n");
    }
    body.push_str("<div id=\"live\">\n");
    if let Some(info) = v.info {
        let counts: Vec<String> =
            TrialStatus::ALL.iter().filter_map(|s| info.counts.get(s.as_str()).map(|n| format!("{n} {}", s.as_str()))).collect();
        let _ = writeln!(body, "<p>{} trial(s): {}; updated {} UTC.</p>", v.total, counts.join(", "), format_utc(info.updated));
    } else {
        let _ = writeln!(body, "<p>{} trial(s). Generated {} UTC.</p>", v.total, format_utc(crate::util::now_unix()));
    }
    body.push_str("<h2>Leaderboard</h2>\n");
    seed_groups(&mut body, v);
    leaderboard(&mut body, v);
    if let Some(note) = &v.charts_note {
        let _ = writeln!(body, "<p class=\"note\">{}</p>", escape(note));
    }
    for (title, picture) in &v.charts {
        let _ = writeln!(body, "<h3>{}</h3>\n{}", escape(title), picture.html(title));
    }
    body.push_str("<h2>Parameter importance</h2>\n");
    let src = match &v.importance {
        ImportanceView::Deferred(src) => format!(" data-src=\"{}\"", escape(src)),
        _ => String::new(),
    };
    let _ = writeln!(body, "<div id=\"importance\"{src}>\n{}</div>", importance_section(&v.importance));
    body.push_str("</div>\n");
    if let Some(spec) = v.spec {
        let _ = writeln!(body, "<h2>Sweep file</h2>\n<pre>{}</pre>", escape(spec));
    }
    if v.links == Links::Server {
        body.push_str(BRUSH_SCRIPT);
    }
    if matches!(v.importance, ImportanceView::Deferred(_)) {
        body.push_str(IMPORTANCE_SCRIPT);
    }
    let state = Route::SweepState.to(v.name);
    let live = (v.links == Links::Server).then_some(state.as_str());
    layout(&format!("sweep {}", v.name), &body, v.links, live)
}

/// Where configurations were trained with several seeds: a row per seed group, ranked by the
/// mean of its completed trials' best objective values (`store::rank_groups`), with the
/// standard deviation and n, before the trials' own leaderboard.
fn seed_groups(body: &mut String, v: &SweepView) {
    if !crate::store::has_seed_groups(v.trials) {
        return;
    }
    let groups = crate::store::rank_groups(v.trials, &v.objective.name, v.objective.goal);
    let keys: std::collections::BTreeSet<&String> = groups.iter().flat_map(|g| g.params.keys()).collect();
    let _ = write!(
        body,
        "<h3>Seed groups</h3>\n<div class=\"wide\"><table class=\"groups\"><tr><th>rank</th><th>group</th><th>{} mean ± std (n)</th>",
        escape(&v.objective.name)
    );
    for k in &keys {
        let _ = write!(body, "<th>{}</th>", escape(k));
    }
    body.push_str("<th>trials</th></tr>\n");
    for (i, g) in groups.iter().enumerate() {
        let rank = if g.mean.is_some() { (i + 1).to_string() } else { "-".to_string() };
        let best = if i == 0 && g.mean.is_some() { " class=\"best\"" } else { "" };
        let _ = write!(body, "<tr{best}><td>{rank}</td><td class=\"l\">{}</td><td>{}</td>", escape(&g.id), escape(&crate::report::group_cell(g)));
        for k in &keys {
            let _ = write!(body, "<td>{}</td>", escape(&g.params.get(*k).map(fmt_param).unwrap_or_else(|| "-".into())));
        }
        let members: Vec<String> = g.trials.iter().map(|t| v.links.trial(t)).collect();
        let _ = writeln!(body, "<td class=\"l\">{}</td></tr>", members.join(" "));
    }
    body.push_str(
        "</table></div>\n<p class=\"note\">A seed group is one configuration trained with several seeds (<code>repeats</code>, \
                   or a swept <code>train.seed</code>); groups rank by their mean, over their completed trials.</p>\n",
    );
}

/// The most trials a page of the leaderboard lists.
pub const LEADERBOARD_ROWS: usize = 100;

/// The leaderboard: a row per trial with its parameters and metrics, column headers sorting by
/// them (server pages), check boxes to compare trials; [`LEADERBOARD_ROWS`] a page, with links to
/// the others (server pages) or a note of how many more there are (the static export).
fn leaderboard(body: &mut String, v: &SweepView) {
    if v.trials.is_empty() {
        body.push_str("<p>No trial matches.</p>\n");
        return;
    }
    let pages = v.trials.len().div_ceil(LEADERBOARD_ROWS);
    let page = match v.links {
        Links::Server => v.page.clamp(1, pages),
        Links::Files => 1,
    };
    let rows = &v.trials[(page - 1) * LEADERBOARD_ROWS..(page * LEADERBOARD_ROWS).min(v.trials.len())];
    let keys = crate::report::varying_params(v.trials);
    let metrics = metric_columns(v.objective, v.trials);
    let server = v.links == Links::Server;
    let header = |key: &str, label: &str| {
        if server {
            let filter = v.filter.map(|f| format!("&where={}", url_encode(f))).unwrap_or_default();
            format!("<th><a href=\"?sort={}{filter}\">{}</a></th>", url_encode(key), escape(label))
        } else {
            format!("<th>{}</th>", escape(label))
        }
    };
    if server {
        let _ = writeln!(body, "<form method=\"get\" action=\"{}\">", Route::Compare.pattern());
    }
    // The objective comes right after the trial, before the parameters, so that however many
    // parameters vary it stays on screen; a wide table scrolls in its own box.
    body.push_str("<div class=\"wide\"><table class=\"leaderboard\"><tr><th>rank</th>");
    body.push_str(&header("id", "trial"));
    body.push_str(&header("status", "status"));
    body.push_str(&header(&v.objective.name, &format!("best {}", v.objective.name)));
    body.push_str("<th>epoch</th>");
    body.push_str(&header("epochs", "epochs"));
    for k in &keys {
        body.push_str(&header(k, k));
    }
    for m in &metrics {
        body.push_str(&header(m, &format!("best {m}")));
    }
    if server {
        body.push_str("<th>compare</th>");
    }
    body.push_str("</tr>\n");
    // A rank is the objective's (completed trials only, as everywhere), whatever the sort.
    let ranks: std::collections::HashMap<&str, usize> = crate::store::rank_completed(v.trials, &v.objective.name, v.objective.goal)
        .iter()
        .enumerate()
        .map(|(i, r)| (r.trial.row.id.as_str(), i + 1))
        .collect();
    for r in rows {
        let row = &r.row;
        let rank = ranks.get(row.id.as_str());
        let _ = write!(
            body,
            "<tr{}><td>{}</td><td class=\"l id\">{}</td><td class=\"l {status}\">{status}</td>",
            if rank == Some(&1) { " class=\"best\"" } else { "" },
            rank.map_or_else(|| "-".to_string(), |k| k.to_string()),
            v.links.trial(&row.id),
            status = row.status.as_str(),
        );
        match row.best(&v.objective.name, v.objective.goal) {
            Some((value, epoch)) => {
                let _ = write!(body, "<td>{}</td><td>{epoch}</td>", fmt_num(value));
            }
            None => body.push_str("<td>-</td><td>-</td>"),
        }
        let _ = write!(body, "<td>{}</td>", row.epochs());
        for k in &keys {
            let _ = write!(body, "<td>{}</td>", escape(&row.params.get(k).map(fmt_param).unwrap_or_else(|| "-".into())));
        }
        for m in &metrics {
            let _ = write!(body, "<td>{}</td>", filter::metric(row, m).map(fmt_num).unwrap_or_else(|| "-".into()));
        }
        if server {
            let _ = write!(body, "<td><input type=\"checkbox\" name=\"runs\" value=\"{}\"></td>", escape(&row.id));
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</table></div>\n");
    if server {
        body.push_str("<button>compare the checked trials</button></form>\n");
    }
    if pages > 1 {
        pager(body, v, page, pages);
    }
}

/// Where a leaderboard of several pages is: the trials this page lists, and links to the first,
/// previous, next and last pages keeping the sort and the filter (server pages), or what the
/// static export leaves out.
fn pager(body: &mut String, v: &SweepView, page: usize, pages: usize) {
    let first = (page - 1) * LEADERBOARD_ROWS + 1;
    let last = (page * LEADERBOARD_ROWS).min(v.trials.len());
    let n = v.trials.len();
    if v.links == Links::Files {
        let _ = writeln!(
            body,
            "<p class=\"note\">The leaderboard lists the first {last} of {n} trials; <code>sweep ls --sweep {}</code> lists them all.</p>",
            escape(v.name)
        );
        return;
    }
    let mut query = String::new();
    if let Some(sort) = v.sort {
        query.push_str(&format!("&sort={}", url_encode(sort)));
    }
    if let Some(filter) = v.filter {
        query.push_str(&format!("&where={}", url_encode(filter)));
    }
    let link = |to: usize, label: &str| {
        if to == page || to == 0 || to > pages {
            format!("<span class=\"note\">{label}</span>")
        } else {
            format!("<a href=\"?page={to}{}\">{label}</a>", escape(&query))
        }
    };
    let _ = writeln!(
        body,
        "<p class=\"pager\">trials {first}&ndash;{last} of {n} (page {page} of {pages}) {} {} {} {}</p>",
        link(1, "&laquo; first"),
        link(page - 1, "&lsaquo; previous"),
        link(page + 1, "next &rsaquo;"),
        link(pages, "last &raquo;"),
    );
}

/// Everything the trial page shows.
#[derive(Debug, Clone)]
pub struct TrialView<'a> {
    /// The trial with its metrics and checkpoints.
    pub trial: &'a TrialData,
    /// Each checkpoint's file as a link (None: not under the runs directory).
    pub checkpoint_links: Vec<Option<String>>,
    /// Every setting of the resolved config, by dotted key.
    pub settings: &'a std::collections::BTreeMap<String, serde_json::Value>,
    pub objective: &'a Objective,
    pub panels: Picture,
    /// The prediction grid of the best checkpoint and its worst validation images, or a
    /// sentence saying why there are none.
    pub predictions: Result<(Picture, Picture), String>,
    /// The server's action token when `sweep ui --allow-actions`: the page then has forms to
    /// edit the trial's tags and note, each posting it.
    pub actions: Option<&'a str>,
}

/// `/runs/ID`: status, settings, the per-epoch table, checkpoints, the two-panel chart and the
/// prediction grid.
pub fn trial_page(v: &TrialView) -> String {
    let r = &v.trial.row;
    let mut body = String::new();
    let _ = writeln!(body, "<h1>trial {}</h1>\n<p>sweep {}, #{}</p>", escape(&r.id), Links::Server.sweep(&r.sweep), r.seq);
    body.push_str("<div id=\"live\">\n<table>\n");
    let mut attr = |k: &str, val: String| {
        let _ = writeln!(body, "<tr><th>{}</th><td class=\"l\">{val}</td></tr>", escape(k));
    };
    attr("status", format!("<span class=\"{s}\">{s}</span> (attempt {})", r.attempt, s = r.status.as_str()));
    if let Some(e) = &r.error {
        let label = if r.status == TrialStatus::Pruned { "pruned because" } else { "error" };
        attr(label, format!("<pre>{}</pre>", escape(e)));
    }
    if let (Some(host), Some(pid)) = (&r.host, r.pid) {
        attr("worker", format!("{} pid {pid}", escape(host)));
    }
    if let Some(cost) = crate::report::cost_line(r) {
        attr("cost", escape(&cost));
    }
    attr("log", format!("<a href=\"{}\">what its workers wrote</a>", escape(&Route::Log.to(&r.id))));
    if let Some(started) = r.started {
        attr("started", format!("{} UTC", format_utc(started)));
    }
    if let (Some(took), Some(finished)) = (crate::report::took(r, &v.trial.metrics), r.finished) {
        attr("finished", format!("{} UTC ({took})", format_utc(finished)));
    }
    attr("objective", format!("{} ({})", escape(&v.objective.name), v.objective.goal.as_str()));
    attr("parameters", escape(&if r.params.is_empty() { "(none swept)".to_string() } else { short_params(&r.params) }));
    if !r.tags.is_empty() {
        attr("tags", escape(&tags_cell(&r.tags)));
    }
    if let Some(note) = &r.note {
        attr("note", escape(note));
    }
    body.push_str("</table>\n<h2>Epochs</h2>\n");
    epoch_table(&mut body, &v.trial.metrics);
    body.push_str("<h2>Checkpoints</h2>\n");
    if v.trial.checkpoints.is_empty() {
        body.push_str("<p>No checkpoint yet.</p>\n");
    } else {
        let _ = writeln!(body, "<table><tr><th>kind</th><th>epoch</th><th>{}</th><th>file</th></tr>", escape(&v.objective.name));
        for (c, link) in v.trial.checkpoints.iter().zip(v.checkpoint_links.iter().chain(std::iter::repeat(&None))) {
            let file = match link {
                Some(href) => format!("<a href=\"{}\">{}</a>", escape(href), escape(&c.path)),
                None => escape(&c.path),
            };
            let _ = writeln!(
                body,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{file}</td></tr>",
                escape(&c.kind),
                c.epoch,
                fmt_num(c.metric_value)
            );
        }
        body.push_str("</table>\n");
    }
    let _ = writeln!(body, "<h2>Learning curves</h2>\n{}", v.panels.html("dice loss and loss"));
    body.push_str("<h2>Predictions of the best checkpoint</h2>\n");
    match &v.predictions {
        Ok((grid, worst)) => {
            let _ = write!(
                body,
                "<div class=\"pictures\"><figure>{}<figcaption>the first validation images</figcaption></figure>\
                 <figure>{}<figcaption>the worst validation images, by IoU at each image's own size</figcaption></figure></div>",
                grid.html("prediction grid"),
                worst.html("worst validation images")
            );
        }
        Err(why) => {
            let _ = writeln!(body, "<p class=\"note\">{}</p>", escape(why));
        }
    }
    body.push_str("\n</div>\n");
    if let Some(token) = v.actions {
        let token = format!("<input type=\"hidden\" name=\"token\" value=\"{}\">", escape(token));
        let _ = writeln!(
            body,
            "<h2>Tags and note</h2>\n<form method=\"post\" action=\"{}\">{token}tags <input type=\"text\" name=\"tags\" placeholder=\"team=vision stage=\"> \
             <button>set</button> <span class=\"note\">NAME=VALUE sets a tag, NAME= removes it (as <code>sweep tag</code>)</span></form>\n\
             <form method=\"post\" action=\"{}\">{token}<textarea name=\"note\" rows=\"3\" cols=\"80\">{}</textarea><br><button>save the note</button></form>",
            escape(&Route::Tags.to(&r.id)),
            escape(&Route::Note.to(&r.id)),
            escape(r.note.as_deref().unwrap_or(""))
        );
        trial_actions(&mut body, r, &token);
    }
    body.push_str("<h2>Settings</h2>\n<table><tr><th>setting</th><th>value</th></tr>\n");
    for (k, val) in v.settings {
        let swept = if r.params.contains_key(k) { " class=\"best\"" } else { "" };
        let _ = writeln!(body, "<tr{swept}><td class=\"l\">{}</td><td>{}</td></tr>", escape(k), escape(&fmt_param(val)));
    }
    body.push_str("</table>\n<p class=\"note\">Highlighted: the swept parameters.</p>\n");
    let state = Route::SearchState.to(&r.id);
    layout(&format!("trial {}", r.id), &body, Links::Server, Some(&state))
}

/// The trial's stop, prune and resume buttons, those its status allows (as `sweep stop`,
/// `sweep prune` and `sweep resume`).
fn trial_actions(body: &mut String, r: &TrialRow, token: &str) {
    let stoppable = matches!(r.status, TrialStatus::Queued | TrialStatus::Running);
    let prunable = stoppable || r.status == TrialStatus::Stopped;
    if !prunable {
        return;
    }
    body.push_str("<h2>Stop or prune</h2>\n");
    if stoppable {
        let _ = writeln!(
            body,
            "<form method=\"post\" action=\"{}\">{token}<button name=\"stop\">stop</button> <span class=\"note\">ends it as stopped at its \
             worker's next heartbeat, its last checkpoint kept; resume continues it (as <code>sweep stop</code>)</span></form>",
            escape(&Route::Stop.to(&r.id))
        );
    }
    if r.status == TrialStatus::Stopped {
        let _ = writeln!(
            body,
            "<form method=\"post\" action=\"{}\">{token}<button name=\"resume\">resume</button> <span class=\"note\">queues it again: \
             a running worker of its sweep continues it from its last checkpoint (as <code>sweep resume</code>)</span></form>",
            escape(&Route::Resume.to(&r.id))
        );
    }
    let _ = writeln!(
        body,
        "<form method=\"post\" action=\"{}\">{token}<input type=\"text\" name=\"note\" size=\"50\" placeholder=\"why (kept as its pruning reason)\"> \
         <button name=\"prune\">prune</button> <span class=\"note\">ends it as pruned, its epochs kept (as <code>sweep prune</code>)</span></form>",
        escape(&Route::Prune.to(&r.id))
    );
}

fn epoch_table(body: &mut String, metrics: &[MetricRow]) {
    if metrics.is_empty() {
        body.push_str("<p>No epoch recorded yet.</p>\n");
        return;
    }
    let columns = crate::report::metric_columns(&["train", "val"], metrics.iter().map(MetricRow::key));
    body.push_str("<table class=\"epochs\"><tr><th>epoch</th>");
    for c in columns.iter().chain([&"lr".to_string(), &"seconds".to_string()]) {
        let _ = write!(body, "<th>{}</th>", escape(c));
    }
    body.push_str("</tr>\n");
    for (epoch, values) in epochs_of(metrics) {
        let _ = write!(body, "<tr><td>{epoch}</td>");
        for c in columns.iter().map(String::as_str).chain(["train_lr", "train_seconds"]) {
            let _ = write!(body, "<td>{}</td>", values.get(c).map(|v| fmt_num(*v)).unwrap_or_else(|| "-".into()));
        }
        body.push_str("</tr>\n");
    }
    body.push_str("</table>\n");
}

/// `/compare?runs=a,b`: the settings that differ, then each metric's best and final value side
/// by side (`runs` carry their [`TrialRow::settings`]).
pub fn compare_page(runs: &[TrialRow]) -> String {
    let mut body = String::from("<h1>Compare</h1>\n<h2>Settings that differ</h2>\n");
    let differing = crate::report::differing_settings(runs);
    let head: String = runs.iter().map(|r| format!("<th>{}</th>", Links::Server.trial(&r.id))).collect();
    if differing.is_empty() {
        body.push_str("<p>The trials share every setting.</p>\n");
    } else {
        let _ = writeln!(body, "<table><tr><th>setting</th>{head}</tr>");
        for k in &differing {
            let _ = write!(body, "<tr><td class=\"l\">{}</td>", escape(k));
            for r in runs {
                let value = r.params.get(k).or_else(|| r.settings.get(k)).map(fmt_param).unwrap_or_else(|| "-".into());
                let _ = write!(body, "<td>{}</td>", escape(&value));
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</table>\n");
    }
    let _ = writeln!(body, "<h2>Metrics</h2>\n<table><tr><th>metric</th>{head}</tr>");
    let mut row = |label: &str, cells: Vec<String>| {
        let _ = writeln!(
            body,
            "<tr><td class=\"l\">{}</td>{}</tr>",
            escape(label),
            cells.iter().map(|c| format!("<td>{}</td>", escape(c))).collect::<String>()
        );
    };
    row("status", runs.iter().map(|r| r.status.as_str().to_string()).collect());
    row("epochs", runs.iter().map(|r| r.epochs().to_string()).collect());
    for key in crate::report::metric_columns(&["val", "train"], runs.iter().flat_map(|r| r.metrics.keys())) {
        let goal = crate::config::Goal::for_metric(&key);
        row(
            &format!("best {key}"),
            runs.iter().map(|r| r.best(&key, goal).map(|(v, e)| format!("{} @{e}", fmt_num(v))).unwrap_or("-".into())).collect(),
        );
        row(&format!("final {key}"), runs.iter().map(|r| r.last(&key).map(fmt_num).unwrap_or("-".into())).collect());
    }
    body.push_str("</table>\n");
    layout("sweep: compare", &body, Links::Server, None)
}

/// `/runs/ID/log`: what the trial's workers wrote to their logs while they held it, log by log.
pub fn log_page(id: &str, logs: &[(std::path::PathBuf, String)]) -> String {
    let mut body = format!("<h1>trial {} — worker log</h1>\n<p><a href=\"{}\">back to the trial</a></p>\n", escape(id), escape(&Route::Trial.to(id)));
    if logs.is_empty() {
        body.push_str(
            "<p class=\"note\">No worker log of its sweep mentions this trial: it has not been claimed yet, or the worker that trained it wrote to a terminal (<code>sweep worker</code> run by hand).</p>\n",
        );
    }
    for (file, text) in logs {
        let _ = writeln!(body, "<h2>{}</h2>\n<pre>{}</pre>", escape(&file.display().to_string()), escape(text));
    }
    layout(&format!("trial {id}: log"), &body, Links::Server, None)
}

/// A page that says what went wrong (404 for a missing trial or sweep, 400 for a bad request).
pub fn message_page(title: &str, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"error\">{}</p>\n<p><a href=\"{}\">all sweeps</a></p>\n",
        escape(title),
        escape(message),
        Route::Index.pattern()
    );
    layout(title, &body, Links::Server, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_filled_with_its_value_percent_encoded_and_a_file_path_as_given() {
        assert_eq!(Route::Index.to("ignored"), "/");
        assert_eq!(Route::Sweep.to("a b/c"), "/sweeps/a%20b%2Fc");
        assert_eq!(Route::Trial.to("hue-1"), "/runs/hue-1");
        assert_eq!(Route::Predictions.to("hue-1"), "/runs/hue-1/predictions.png");
        assert_eq!(Route::SearchState.to("hue-1"), "/api/runs/hue-1");
        assert_eq!(Route::File.to("hue/plots/a%20b.png"), "/files/hue/plots/a%20b.png");
        let patterns: std::collections::BTreeSet<&str> = Route::ALL.iter().map(|r| r.pattern()).collect();
        assert_eq!(patterns.len(), Route::ALL.len(), "every route has its own pattern");
    }
}
