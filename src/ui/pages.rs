//! What each route of `sweep ui` answers, as plain blocking functions of the tracker and the runs
//! directory: the server (`ui::serve`) runs them on tokio's blocking threads. They only read.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::report::charts::{self, draw};
use crate::report::filter::{self, Listing};
use crate::report::html::{self, CurveView, Links, Picture, SweepSummary, SweepView, TrialView};
use crate::report::{self, ReportError, best_so_far};
use crate::store::{self, Detail, Intervention, Store, StoreError, TrialData, TrialFilter};
use crate::train::predict::Grid as PredictionGrid;

/// An HTTP answer: status, content type, body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn html(status: u16, page: String) -> Self {
        Self { status, content_type: "text/html; charset=utf-8", body: page.into_bytes() }
    }

    fn json(value: serde_json::Value) -> Self {
        Self { status: 200, content_type: "application/json", body: value.to_string().into_bytes() }
    }

    /// The 404 page.
    pub fn not_found(what: &str) -> Self {
        Self::html(404, html::message_page("Not found", what))
    }

    pub fn forbidden(what: &str) -> Self {
        Self::html(403, html::message_page("Forbidden", what))
    }

    pub fn bad_request(what: &str) -> Self {
        Self::html(400, html::message_page("Bad request", what))
    }

    /// An error of a JSON route, as JSON: `{"error": "..."}` with the status.
    pub fn json_error(status: u16, message: &str) -> Self {
        Self { status, content_type: "application/json", body: serde_json::json!({ "error": message }).to_string().into_bytes() }
    }

    /// A tracker error of a JSON route: the status of [`Reply::store_error`], the message as JSON.
    fn store_error_json(e: &StoreError) -> Self {
        Self::json_error(store_error_status(e), &e.to_string())
    }

    /// A tracker error as a page: 404 for a trial or sweep that does not exist, 500 otherwise.
    fn store_error(e: &StoreError) -> Self {
        match store_error_status(e) {
            404 => Self::not_found(&e.to_string()),
            409 => Self::html(409, html::message_page("Not done", &e.to_string())),
            status => Self::html(status, html::message_page("The tracker could not be read", &e.to_string())),
        }
    }
}

/// The HTTP status of a tracker error: 404 for a trial or sweep that does not exist, 409 for an
/// action its status does not allow, 500 otherwise.
fn store_error_status(e: &StoreError) -> u16 {
    match e {
        StoreError::UnknownTrial { .. } | StoreError::UnknownSweep { .. } | StoreError::InvalidName { .. } => 404,
        // An action the trial's status does not allow (stopping a completed trial).
        StoreError::CannotIntervene { .. } => 409,
        _ => 500,
    }
}

/// A sweep's trials as its page lists them ([`Dashboard::listed`]).
struct Listed {
    info: store::SweepInfo,
    objective: crate::config::Objective,
    /// Every objective of the sweep (its one, or its several).
    objectives: Vec<crate::config::Objective>,
    shown: Vec<TrialData>,
    /// Why the filter or sort was refused (then nothing is shown).
    filter_error: Option<String>,
}

/// The importance section of `shown`: each parameter's share with its chart, or why there is
/// none; for each of several objectives.
fn importance_of(shown: &[TrialData], objectives: &[crate::config::Objective]) -> html::ImportanceView {
    let importances = crate::report::importance::per_objective(shown, objectives);
    charts::importance_view(&importances, |_, objective, ranked| {
        let figure = draw::Importances { importances: ranked, objective: &objective.name };
        Some(
            draw::svg(&figure).map(Picture::Svg).unwrap_or_else(|e| Picture::Svg(format!("<p class=\"error\">{}</p>", html::escape(&e.to_string())))),
        )
    })
}

/// A prediction grid, computed once per trial and best epoch.
type Grid = Arc<OnceLock<Result<Vec<u8>, String>>>;

/// A sweep's importance section (for one `where` filter) as worked out for one state of the
/// trials it learns from: `of` is [`importance_fingerprint`] of that state. The page that finds
/// none starts the forest on its own thread while it renders; the page's fetch of the section
/// waits for that answer instead of listing the trials and fitting again, and a later page over
/// the same trials shows it at once.
struct Importance {
    of: u64,
    view: Arc<OnceLock<html::ImportanceView>>,
}

/// Sweeps and filters whose importance is kept: a page for each is about one forest's answer.
const IMPORTANCES_KEPT: usize = 32;

/// What importance learns from, in one number: each judged trial's identity (its id and when it
/// was created: a sweep removed and run again reuses ids), status and best value of each
/// objective. A trial's parameters never change, so a trial that finishes, is removed or moves
/// from pruned to completed changes it; an epoch of a running trial does not.
/// The trials' order does not count (the forest reads them in trial order, and a leaderboard
/// sorted by another column lists the same trials).
fn importance_fingerprint(shown: &[TrialData], objectives: &[crate::config::Objective]) -> u64 {
    use std::hash::{DefaultHasher, Hash as _, Hasher as _};
    let mut hasher = DefaultHasher::new();
    for objective in objectives {
        let judged = crate::report::importance::judged(shown, &objective.name, objective.goal);
        let trials = judged.iter().fold(0u64, |sum, (trial, value)| {
            let mut hasher = DefaultHasher::new();
            (&trial.row.id, trial.row.created.to_bits(), trial.row.status.as_str(), value.to_bits()).hash(&mut hasher);
            sum.wrapping_add(hasher.finish())
        });
        (&objective.name, objective.goal.as_str(), judged.len(), trials).hash(&mut hasher);
    }
    hasher.finish()
}

/// The dashboard's state: the tracker (one connection, used by one request at a time), the runs
/// directory, and the prediction grids computed so far.
pub struct Dashboard {
    store: Mutex<Opened>,
    /// Canonical: every file served must resolve under it.
    runs_dir: PathBuf,
    grids: Mutex<HashMap<(String, i64, PredictionGrid), Grid>>,
    /// By sweep and `where` filter.
    importances: Mutex<HashMap<(String, Option<String>), Importance>>,
    /// With `sweep ui --allow-actions`: the token every action must post (the pages carry it).
    actions: Option<String>,
}

/// An action's request as the server saw it: whether it came from this dashboard's own pages
/// (its `Origin`, or else its `Referer`, names the host it was sent to), and its form fields.
pub struct Posted {
    pub same_origin: bool,
    pub fields: Vec<(String, String)>,
}

impl Posted {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The tracker connection, and for a SQLite file the identity (device, inode) of the file it
/// opened: a file deleted or replaced since (`rm -rf runs/*`, a new sweep) is noticed at the next
/// request, which reopens the new file or says that there is none.
struct Opened {
    store: Box<dyn Store>,
    file: Option<(PathBuf, (u64, u64))>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Dashboard {
    pub fn new(store: Box<dyn Store>, runs_dir: &Path) -> Self {
        let runs_dir = runs_dir.canonicalize().unwrap_or_else(|_| runs_dir.to_path_buf());
        let location = store.location();
        let file =
            (!store::is_postgres(&location)).then(|| PathBuf::from(&location)).and_then(|path| file_identity(&path).map(|identity| (path, identity)));
        Self {
            store: Mutex::new(Opened { store, file }),
            runs_dir,
            grids: Mutex::new(HashMap::new()),
            importances: Mutex::new(HashMap::new()),
            actions: None,
        }
    }

    /// Allows the actions (a trial's tags and note; stopping, pruning, resuming it), each request carrying `token`.
    pub fn with_actions(self, token: String) -> Self {
        Self { actions: Some(token), ..self }
    }

    /// Whether `posted` may act: actions are on, it comes from this dashboard's pages, and it
    /// carries the token. Anything else is refused (403) before the tracker is touched.
    fn authorise(&self, posted: &Posted) -> Result<(), Reply> {
        let Some(token) = &self.actions else {
            return Err(Reply::forbidden(
                "this dashboard is read-only: start it with `sweep ui --allow-actions` to edit tags and notes, and to stop, prune or resume trials from it",
            ));
        };
        if !posted.same_origin {
            return Err(Reply::forbidden("an action must come from this dashboard's own pages (its Origin names another site): refused"));
        }
        if posted.field("token") != Some(token.as_str()) {
            return Err(Reply::forbidden("the action's token is missing or not this server's: reload the page and try again"));
        }
        Ok(())
    }

    /// `POST /runs/ID/tags`: `tags` as `sweep tag` takes them (`name=value` sets, `name=`
    /// removes, separated by spaces). Answers where to go next (the trial), or a refusal.
    pub fn post_tags(&self, id: &str, posted: &Posted) -> Result<String, Reply> {
        self.authorise(posted)?;
        let mut changes = Vec::new();
        for change in posted.field("tags").unwrap_or("").split_whitespace() {
            let Some((name, value)) = change.split_once('=') else {
                return Err(Reply::bad_request(&format!("{change:?}: expected NAME=VALUE to set a tag, or NAME= to remove it")));
            };
            store::validate_tag_name(name).map_err(|e| Reply::bad_request(&e.to_string()))?;
            changes.push((name.to_string(), (!value.is_empty()).then(|| value.to_string())));
        }
        self.with_store_mut(|s| {
            store::validate_trial_id(id)?;
            s.tag(id, &changes)
        })
        .map_err(|e| Reply::store_error(&e))?;
        Ok(html::Route::Trial.to(id))
    }

    /// `POST /runs/ID/note`: `note` replaces the trial's note ("" clears it).
    pub fn post_note(&self, id: &str, posted: &Posted) -> Result<String, Reply> {
        self.authorise(posted)?;
        let note = posted.field("note").unwrap_or("").replace("\r\n", "\n");
        self.with_store_mut(|s| {
            store::validate_trial_id(id)?;
            s.set_note(id, Some(note.as_str()))
        })
        .map_err(|e| Reply::store_error(&e))?;
        Ok(html::Route::Trial.to(id))
    }

    /// `POST /runs/ID/stop` and `/runs/ID/prune` (with its `note`): [`Store::intervene`].
    pub fn post_intervention(&self, id: &str, posted: &Posted, intervention: &Intervention) -> Result<String, Reply> {
        self.authorise(posted)?;
        self.with_store_mut(|s| {
            store::validate_trial_id(id)?;
            s.intervene(id, intervention)
        })
        .map_err(|e| Reply::store_error(&e))?;
        Ok(html::Route::Trial.to(id))
    }

    /// `POST /runs/ID/resume`: [`Store::resume`].
    pub fn post_resume(&self, id: &str, posted: &Posted) -> Result<String, Reply> {
        self.authorise(posted)?;
        self.with_store_mut(|s| {
            store::validate_trial_id(id)?;
            s.resume(id)
        })
        .map_err(|e| Reply::store_error(&e))?;
        Ok(html::Route::Trial.to(id))
    }

    /// Runs `f` on the tracker, after checking that its SQLite file is still the one opened.
    fn with_store<T>(&self, f: impl FnOnce(&dyn Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.with_store_mut(|s| f(s))
    }

    /// [`Dashboard::with_store`] for the actions, which write.
    fn with_store_mut<T>(&self, f: impl FnOnce(&mut dyn Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut opened = self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((path, identity)) = opened.file.clone() {
            match file_identity(&path) {
                Some(now) if now == identity => {}
                // Deleted: keep the old connection (it may come back, or be replaced).
                None => return Err(StoreError::Missing { path }),
                Some(now) => {
                    *opened = Opened { store: store::open(&path.display().to_string(), false)?, file: Some((path, now)) };
                    // Another tracker: its trial ids name other trials.
                    self.grids.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
                    self.importances.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
                }
            }
        }
        f(opened.store.as_mut())
    }

    /// `/`: every sweep.
    pub fn index(&self) -> Reply {
        match self.with_store(sweep_summaries) {
            Ok(sweeps) => Reply::html(200, html::sweeps_page(&sweeps)),
            Err(e) => Reply::store_error(&e),
        }
    }

    /// A sweep's trials as its page lists them: the rows the `where` filter keeps (with no
    /// epochs), in the listing's order (by the objective when no sort is asked for), with the
    /// sweep's row and objective. A filter or sort that does not parse lists none and says why, in
    /// the page's words.
    fn listed(&self, name: &str, filter: Option<&str>, sort: Option<&str>) -> Result<Listed, Reply> {
        let loaded = self.with_store(|s| -> Result<_, StoreError> {
            let info = store::find_sweep(s, name)?;
            let listed = filter::list(s, &Listing { sweep: Some(name.to_string()), status: None, filter, sort });
            let objective = report::sweep_objective(s, &info)?;
            let objectives = report::sweep_objectives(s, &info)?;
            Ok((info, listed, objective, objectives))
        });
        let (info, listed, objective, objectives) = loaded.map_err(|e| Reply::store_error(&e))?;
        let (rows, filter_error) = match listed {
            Ok(rows) => (rows, None),
            Err(ReportError::Usage(message)) => (Vec::new(), Some(message.replacen("--where: ", "filter: ", 1).replacen("--sort: ", "sort: ", 1))),
            Err(ReportError::Store(e)) => return Err(Reply::store_error(&e)),
            Err(e) => return Err(Reply::html(500, html::message_page("Error", &e.to_string()))),
        };
        let mut shown: Vec<TrialData> = rows.into_iter().map(|row| TrialData { row, ..TrialData::default() }).collect();
        if sort.is_none() {
            let rank: HashMap<String, usize> = crate::store::leaderboard_order(&shown, &objective.name, objective.goal)
                .iter()
                .enumerate()
                .map(|(i, t)| (t.row.id.clone(), i))
                .collect();
            shown.sort_by_key(|t| rank[&t.row.id]);
        }
        Ok(Listed { info, objective, objectives, shown, filter_error })
    }

    /// `/sweeps/NAME?sort=KEY&where=FILTER&page=N`, the learning curves shown as `view` asks
    /// (`&log=on&smooth=0.6&ymin=0.2&ymax=0.9`).
    pub fn sweep(&self, name: &str, sort: Option<&str>, filter: Option<&str>, page: usize, view: &CurveView) -> Reply {
        let Listed { info, objective, objectives, mut shown, filter_error } = match self.listed(name, filter, sort) {
            Ok(listed) => listed,
            Err(reply) => return reply,
        };
        // The learning curves need the epochs of the trials the charts draw (at most
        // `series::CHARTED` of them), read one trial at a time.
        let drawn: Option<std::collections::HashSet<String>> =
            charts::series::charted_ids(&shown, &objective.name, objective.goal).map(|ids| ids.into_iter().map(String::from).collect());
        let loaded = self.with_store(|s| -> Result<_, StoreError> {
            for trial in shown.iter_mut().filter(|t| drawn.as_ref().is_none_or(|ids| ids.contains(&t.row.id))) {
                match s.trial_data_of(&trial.row.id, Detail::METRICS) {
                    Ok(read) => *trial = read,
                    // Removed since the rows were read: drawn without its epochs.
                    Err(StoreError::UnknownTrial { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            charts::warm_start(s, &info)
        });
        let warm = match loaded {
            Ok(warm) => warm,
            Err(e) => return Reply::store_error(&e),
        };
        let params = charts::swept_parameters(Some(&info), &shown);
        let pareto = charts::pareto_chart(&shown, &objectives);
        let charts: Vec<(String, Picture)> = charts::sweep_charts_in(&shown, &warm, &params, &objective, view)
            .into_iter()
            .chain(pareto)
            .map(|c| {
                let picture =
                    c.svg().map(Picture::Svg).unwrap_or_else(|e| Picture::Svg(format!("<p class=\"error\">{}</p>", html::escape(&e.to_string()))));
                (c.title, picture)
            })
            .collect();
        // Importance of the trials shown (a filter asks which parameters matter among those):
        // the forest takes most of a second at 1,000 trials, so unless these trials' answer is
        // kept it is worked out beside the page and fetched by the page once shown.
        let importance = if filter_error.is_some() {
            importance_of(&shown, &objectives)
        } else {
            let (of, view, kept) = self.importance(name, filter, &shown, &objectives);
            match view.get() {
                // Only an answer kept from before: a page always says the same of trials new to it.
                Some(ready) if kept => ready.clone(),
                _ => {
                    let filtered = filter.map(|f| format!("&where={}", html::url_encode(f))).unwrap_or_default();
                    html::ImportanceView::Deferred(format!("{}?of={of:x}{filtered}", html::Route::SweepImportance.to(name)))
                }
            }
        };
        let (method, pruner) = charts::method_and_pruner(&info);
        let page = html::sweep_page(&SweepView {
            curve_view: Some(view),
            name,
            info: Some(&info),
            method: &method,
            pruner: &pruner,
            warm_start: &warm.sources,
            objective: &objective,
            trials: &shown,
            total: info.counts.values().sum::<i64>() as usize,
            page,
            sort,
            filter,
            filter_error: filter_error.as_deref(),
            charts,
            charts_note: charts::series::charted_note(&shown, &objective.name, objective.goal),
            importance,
            spec: Some(&info.spec),
            links: Links::Server,
        });
        Reply::html(if filter_error.is_some() { 400 } else { 200 }, page)
    }

    /// The importance of `shown` (the sweep's trials that `filter` keeps), its fingerprint, and
    /// whether it was kept: the kept answer when these trials have one, else a cell that a thread
    /// started here fills.
    fn importance(
        &self,
        name: &str,
        filter: Option<&str>,
        shown: &[TrialData],
        objectives: &[crate::config::Objective],
    ) -> (u64, Arc<OnceLock<html::ImportanceView>>, bool) {
        let of = importance_fingerprint(shown, objectives);
        let mut kept = self.importances.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (name.to_string(), filter.map(String::from));
        if let Some(known) = kept.get(&key).filter(|known| known.of == of) {
            return (of, known.view.clone(), true);
        }
        if kept.len() >= IMPORTANCES_KEPT {
            // The others are as likely to be asked again; one answer is cheap to work out anew.
            let any = kept.keys().next().cloned().expect("not empty");
            kept.remove(&any);
        }
        let view = Arc::new(OnceLock::new());
        kept.insert(key, Importance { of, view: view.clone() });
        drop(kept);
        // The forests read the judged trials only (of any objective); a copy of those goes to
        // their thread.
        let judged: Vec<TrialData> = shown
            .iter()
            .filter(|t| objectives.iter().any(|o| crate::report::importance::judged_value(t, &o.name, o.goal).is_some()))
            .cloned()
            .collect();
        let (objectives, cell) = (objectives.to_vec(), view.clone());
        std::thread::spawn(move || {
            cell.get_or_init(|| {
                std::panic::catch_unwind(|| importance_of(&judged, &objectives))
                    .unwrap_or_else(|_| html::ImportanceView::Unavailable("Parameter importance could not be worked out (the forest failed).".into()))
            });
        });
        (of, view, false)
    }

    /// `/sweeps/NAME/importance?of=FINGERPRINT&where=FILTER`: the importance section of the
    /// sweep page, of the trials the filter keeps. `of` names the state of the trials the page
    /// was drawn from: while that answer is kept (being worked out, or done) it is the one given,
    /// so the section matches the page; otherwise the trials are listed again.
    pub fn sweep_importance(&self, name: &str, filter: Option<&str>, of: Option<&str>) -> Reply {
        let of = of.and_then(|of| u64::from_str_radix(of, 16).ok());
        let kept = {
            let kept = self.importances.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            kept.get(&(name.to_string(), filter.map(String::from))).filter(|known| Some(known.of) == of).map(|known| known.view.clone())
        };
        let view = match kept {
            Some(view) => view,
            None => match self.listed(name, filter, None) {
                Ok(Listed { filter_error: Some(message), .. }) => return Reply::bad_request(&message),
                Ok(Listed { shown, objectives, .. }) => self.importance(name, filter, &shown, &objectives).1,
                Err(reply) => return reply,
            },
        };
        Reply::html(200, html::importance_section(view.wait()))
    }

    /// `/runs/ID`.
    pub fn trial(&self, id: &str) -> Reply {
        let loaded = self.with_store(|s| -> Result<_, StoreError> {
            store::validate_trial_id(id)?;
            let trial = s.trial_data_of(id, Detail { metrics: true, checkpoints: true, settings: false })?;
            let config = s.trial_config(id)?;
            Ok((trial, config))
        });
        let (trial, config) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => return Reply::store_error(&e),
        };
        let settings = store::settings_of(&config);
        let objective = config.metric.clone();
        let panels = charts::draw::svg(&charts::draw::Panels(&charts::series::run_panels(&trial)))
            .map(Picture::Svg)
            .unwrap_or_else(|e| Picture::Svg(html::escape(&e.to_string())));
        let best = trial.checkpoints.iter().find(|c| c.kind == "best");
        let predictions = match best {
            Some(c) => Ok((
                Picture::Url(format!("{}?epoch={}", html::Route::Predictions.to(id), c.epoch)),
                Picture::Url(format!("{}?epoch={}", html::Route::Worst.to(id), c.epoch)),
            )),
            None => Err("This trial has no best checkpoint yet, so there is no prediction to show.".to_string()),
        };
        let checkpoint_links = trial.checkpoints.iter().map(|c| self.file_link(Path::new(&c.path))).collect();
        Reply::html(
            200,
            html::trial_page(&TrialView {
                trial: &trial,
                checkpoint_links,
                settings: &settings,
                objective: &objective,
                panels,
                predictions,
                actions: self.actions.as_deref(),
            }),
        )
    }

    /// `/runs/ID/predictions.png` and `/runs/ID/worst.png`: the prediction grid of the trial's
    /// best checkpoint, or its worst validation images, computed on first request and kept in
    /// memory (per best epoch, so a running trial's grid follows).
    pub fn grid(&self, id: &str, kind: PredictionGrid) -> Reply {
        let found = self.with_store(|s| -> Result<_, StoreError> {
            store::validate_trial_id(id)?;
            let row = s.trial(id)?;
            Ok((row.sweep, s.checkpoints(id)?.into_iter().find(|c| c.kind == "best").map(|c| c.epoch)))
        });
        let (sweep, epoch) = match found {
            Ok((sweep, Some(epoch))) => (sweep, epoch),
            Ok((_, None)) => return Reply::not_found(&format!("trial {id} has no best checkpoint yet")),
            Err(e) => return Reply::store_error(&e),
        };
        let grid = self.grids.lock().unwrap_or_else(|p| p.into_inner()).entry((id.to_string(), epoch, kind)).or_default().clone();
        let result = grid.get_or_init(|| {
            let device = crate::train::device::DeviceSpec::Cpu.open().map_err(|e| e.to_string())?;
            crate::train::predict::grid_png(kind, &self.runs_dir, &sweep, id, &device, 4).map_err(|e| e.to_string())
        });
        match result {
            Ok(png) => Reply { status: 200, content_type: "image/png", body: png.clone() },
            Err(e) => Reply::html(500, html::message_page("The prediction grid could not be drawn", e)),
        }
    }

    /// `/runs/ID/log`: the trial's parts of its sweep's worker logs.
    pub fn trial_log(&self, id: &str) -> Reply {
        let found = self.with_store(|s| -> Result<_, StoreError> {
            store::validate_trial_id(id)?;
            Ok(s.trial(id)?.sweep)
        });
        match found {
            Ok(sweep) => Reply::html(200, html::log_page(id, &crate::report::logs::trial_log(&self.runs_dir, &sweep, id))),
            Err(e) => Reply::store_error(&e),
        }
    }

    /// `/compare?runs=a,b`.
    pub fn compare(&self, ids: &[String]) -> Reply {
        if ids.len() < 2 {
            return Reply::bad_request("compare needs two or more trials: /compare?runs=ID,ID (check them on a sweep's leaderboard)");
        }
        let loaded = self.with_store(|s| {
            ids.iter()
                .map(|id| {
                    store::validate_trial_id(id)?;
                    let mut row = s.trial(id)?;
                    row.settings = store::settings_of(&s.trial_config(id)?);
                    Ok(row)
                })
                .collect::<Result<Vec<_>, StoreError>>()
        });
        match loaded {
            Ok(runs) => Reply::html(200, html::compare_page(&runs)),
            Err(e) => Reply::store_error(&e),
        }
    }

    /// `/api/sweeps`: what the index shows, for its refresh.
    pub fn sweeps_state(&self) -> Reply {
        match self.with_store(|s| s.sweeps()) {
            Ok(sweeps) => Reply::json(serde_json::json!(
                sweeps.iter().map(|s| serde_json::json!({"sweep": s.name, "updated": s.updated, "counts": s.counts})).collect::<Vec<_>>()
            )),
            Err(e) => Reply::store_error_json(&e),
        }
    }

    /// `/api/sweeps/NAME`: the sweep's trial count, counts per status and last activity (what the
    /// page's script polls).
    pub fn sweep_state(&self, name: &str) -> Reply {
        // What changes whenever the page would: a trial added, started, through an epoch or
        // ended moves `updated` or the counts. A few numbers, however many trials (every
        // trial's row was 600 KB a poll at 10,000 trials).
        match self.with_store(|s| store::find_sweep(s, name)) {
            Ok(info) => Reply::json(serde_json::json!({
                "sweep": name,
                "trials": info.counts.values().sum::<i64>(),
                "counts": info.counts,
                "updated": info.updated,
            })),
            Err(e) => Reply::store_error_json(&e),
        }
    }

    /// `/api/runs/ID`: the trial's status, attempt and recorded epochs.
    pub fn trial_state(&self, id: &str) -> Reply {
        match self.with_store(|s| store::validate_trial_id(id).and_then(|()| s.trial(id))) {
            Ok(r) => Reply::json(serde_json::json!({"id": r.id, "status": r.status, "attempt": r.attempt, "epochs": r.epochs()})),
            Err(e) => Reply::store_error_json(&e),
        }
    }

    /// `/files/PATH`: a file under the runs directory (charts, checkpoints, configs). Anything that
    /// would leave it (`..`, an absolute path, a symbolic link pointing out) is a 404.
    pub fn file(&self, relative: &str) -> Reply {
        let Some(path) = contained(&self.runs_dir, relative) else {
            return Reply::not_found(&format!("no file {relative:?} in the runs directory"));
        };
        match std::fs::read(&path) {
            Ok(body) => Reply { status: 200, content_type: content_type(&path), body },
            Err(_) => Reply::not_found(&format!("no file {relative:?} in the runs directory")),
        }
    }

    /// The `/files/...` link of a file under the runs directory.
    fn file_link(&self, path: &Path) -> Option<String> {
        let canonical = path.canonicalize().ok()?;
        let relative = canonical.strip_prefix(&self.runs_dir).ok()?;
        let parts: Vec<String> = relative.components().map(|c| html::url_encode(&c.as_os_str().to_string_lossy())).collect();
        Some(html::Route::File.to(&parts.join("/")))
    }
}

/// `relative` resolved under `root` (canonical), or None when it is not a plain relative path of
/// normal components, or when it resolves (symbolic links followed) outside `root` or to
/// anything but a file.
pub fn contained(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    if relative.is_empty() || relative.contains('\0') || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let resolved = root.join(rel).canonicalize().ok()?;
    (resolved.starts_with(root) && resolved.is_file()).then_some(resolved)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("toml" | "txt" | "log" | "sh") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Every sweep with its method, pruner, objective and best so far.
fn sweep_summaries(s: &dyn Store) -> Result<Vec<SweepSummary>, StoreError> {
    let mut sweeps = s.sweeps()?;
    sweeps.sort_by(|a, b| b.updated.total_cmp(&a.updated));
    sweeps
        .into_iter()
        .map(|info| {
            let runs = s.trials(&TrialFilter { sweep: Some(info.name.clone()), status: None })?;
            let objective = report::sweep_objective(s, &info)?;
            let best = best_so_far(&runs, &objective).map(|(r, v, e)| (r.id.clone(), v, e));
            let (method, pruner) = charts::method_and_pruner(&info);
            Ok(SweepSummary { info, method, pruner, objective, best })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::importance_fingerprint;
    use crate::config::{Goal, Objective};
    use crate::store::{MetricSummary, TrialData, TrialRow, TrialStatus};

    fn trial(id: &str, created: f64, status: TrialStatus, best: Option<f64>) -> TrialData {
        let mut row = TrialRow { id: id.into(), created, status, ..TrialRow::default() };
        if let Some(v) = best {
            row.metrics.insert("val_iou".into(), MetricSummary { max: Some(v), max_epoch: Some(2), ..MetricSummary::default() });
        }
        TrialData { row, ..TrialData::default() }
    }

    /// The kept importance is given again exactly while what the forest learns from is unchanged.
    #[test]
    fn importance_is_worked_out_anew_only_when_what_it_learns_from_changes() {
        let objective = Objective { name: "val_iou".into(), goal: Goal::Maximize };
        let trials = vec![
            trial("s-1", 1.0, TrialStatus::Completed, Some(0.8)),
            trial("s-2", 2.0, TrialStatus::Pruned, Some(0.5)),
            trial("s-3", 3.0, TrialStatus::Running, Some(0.6)),
        ];
        let of = importance_fingerprint(&trials, std::slice::from_ref(&objective));
        assert_eq!(of, importance_fingerprint(&trials, std::slice::from_ref(&objective)));
        // A running trial's epochs, and the order of the listing, change nothing it learns from.
        let mut changed = trials.clone();
        changed[2].row.metrics.get_mut("val_iou").unwrap().max = Some(0.9);
        changed.reverse();
        assert_eq!(of, importance_fingerprint(&changed, std::slice::from_ref(&objective)));
        let changes: [(&str, Box<dyn Fn(&mut Vec<TrialData>)>); 5] = [
            ("the running trial completes", Box::new(|t| t[2].row.status = TrialStatus::Completed)),
            ("a trial is removed", Box::new(|t| drop(t.remove(0)))),
            ("a sweep removed and run again reuses the id", Box::new(|t| t[0].row.created = 9.0)),
            ("a pruned trial is resumed to a better value", Box::new(|t| t[1].row.metrics.get_mut("val_iou").unwrap().max = Some(0.7))),
            ("a pruned trial is resumed and completes", Box::new(|t| t[1].row.status = TrialStatus::Completed)),
        ];
        for (what, change) in changes {
            let mut changed = trials.clone();
            change(&mut changed);
            assert_ne!(of, importance_fingerprint(&changed, std::slice::from_ref(&objective)), "{what}");
        }
        let minimized = Objective { name: "val_iou".into(), goal: Goal::Minimize };
        assert_ne!(of, importance_fingerprint(&trials, &[minimized]), "another goal");
        // A second objective's values count too.
        let params = Objective { name: "params".into(), goal: Goal::Minimize };
        let mut with_cost = trials.clone();
        with_cost[0].row.metrics.insert("params".into(), MetricSummary { min: Some(1e6), min_epoch: Some(0), ..MetricSummary::default() });
        let both = [objective.clone(), params];
        assert_ne!(importance_fingerprint(&trials, &both), importance_fingerprint(&with_cost, &both), "a cost recorded");
        assert_eq!(of, importance_fingerprint(&with_cost, std::slice::from_ref(&objective)), "the first objective alone ignores it");
    }
}
