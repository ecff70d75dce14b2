//! Sweep files: parsing, validation with file:line:column messages, and expansion into trials.
//!
//! A sweep file is TOML with keys familiar to W&B Sweeps users (`name`, `method`, `metric`,
//! `run_cap`, `parameters` with `values` / `value` / `distribution`), plus base settings in the
//! sections `[data]`, `[model]`, `[train]` and `[augment]`, whose keys are the fields of
//! [`TrialConfig`]. Validation happens before anything runs and reports every problem it finds, each
//! with its position in the file, the key, and what would be right.
//!
//! The set of valid keys and their types is not listed here a second time: it is read off the
//! serialised default [`TrialConfig`], so a setting added to the config is accepted by sweep files
//! at once.

pub mod enqueue;
mod objectives;
pub mod overrides;
mod parameters;
mod program;
pub mod search;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json, json};
use toml_edit::{Document, Item, TableLike};

use crate::config::Goal;
use crate::config::{Objective, OptimizerKind, Schedule, SplitBy, TrialConfig};
use crate::study::history::Point;
use crate::study::nsga2::Nsga2Settings;
use crate::study::sampler::{Grid, Random};
use crate::study::space::{Domain, Parameter};
use crate::study::tpe::TpeSettings;
use crate::util::did_you_mean;
pub use search::{Conditions, EarlyTerminate};

/// Every problem found in a sweep file, each located.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecError {
    pub problems: Vec<Located>,
}

/// One problem at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            // Not in a file: a flag (`--set KEY=VALUE`).
            0 => write!(f, "{}: {}", self.file, self.message),
            line => write!(f, "{}:{line}:{}: {}", self.file, self.column, self.message),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Grid,
    Random,
    /// Tree-structured Parzen estimators (TPE), W&B's name.
    Bayes,
    /// The genetic search NSGA-II.
    Nsga2,
}

impl Method {
    /// The method as the sweep file writes it: grid, random, bayes or nsga2.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Grid => "grid",
            Method::Random => "random",
            Method::Bayes => "bayes",
            Method::Nsga2 => "nsga2",
        }
    }
}

/// A validated sweep file.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub name: String,
    pub description: Option<String>,
    pub method: Method,
    /// The objective a trial's epochs follow: its `best` checkpoint, and what pruners judge.
    /// `[metric]`, or the first of `[[objectives]]` recorded every epoch.
    pub metric: Objective,
    /// What the sweep optimises: `[metric]` alone, or two or three `[[objectives]]` that trade
    /// off (then `best` is a Pareto front).
    pub objectives: Vec<Objective>,
    /// `[[constraints]]`: bounds a trial must keep to be feasible.
    pub constraints: Vec<crate::config::Constraint>,
    pub run_cap: Option<usize>,
    pub seed: u64,
    /// `repeats = N`: each configuration of a grid or random search trained N times, with
    /// `train.seed` = the base seed, + 1, ... (a seed group); 1 without the key.
    pub repeats: usize,
    /// Defaults overlaid with the file's sections (before any parameter).
    pub base: TrialConfig,
    pub parameters: Vec<Parameter>,
    /// `when` conditions, by the key of the parameter they restrict.
    pub conditions: Conditions,
    /// TPE's settings (`[bayes]`), for `method = "bayes"`.
    pub bayes: TpeSettings,
    /// NSGA-II's settings (`[nsga2]`), for `method = "nsga2"`.
    pub nsga2: Nsga2Settings,
    /// `[early_terminate]`: the pruner, if any.
    pub early_terminate: Option<EarlyTerminate>,
    /// `[bayes] warm_start`: other sweeps of the tracker whose trials TPE also learns from.
    pub warm_start: Vec<String>,
    /// `[[enqueue]]`: configurations put first, each naming some parameters (checked against
    /// the space); the sampler draws the rest.
    pub enqueue: Vec<Point>,
    /// The file as written (stored with the sweep).
    pub text: String,
    pub path: PathBuf,
}

/// One point of the sweep: the swept values and the full config they give.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    pub params: BTreeMap<String, Json>,
    pub config: TrialConfig,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "method",
    "metric",
    "objectives",
    "constraints",
    "run_cap",
    "seed",
    "repeats",
    "bayes",
    "nsga2",
    "early_terminate",
    "enqueue",
    "program",
    "data",
    "model",
    "train",
    "augment",
    "parameters",
];
use crate::config::SEED_KEY;

/// The most times `repeats` trains one configuration.
const MAX_REPEATS: usize = 100;

const SECTIONS: &[&str] = &["data", "model", "train", "augment"];
const PARAM_KEYS: &[&str] = &["values", "value", "distribution", "min", "max", "q", "probabilities", "when"];
const DISTRIBUTIONS: &[&str] = &["uniform", "log_uniform_values", "int_uniform", "q_uniform", "categorical"];

/// String settings with a fixed set of choices.
fn choices(key: &str) -> Option<&'static [&'static str]> {
    match key {
        "train.optimizer" => Some(&OptimizerKind::NAMES),
        "data.split_by" => Some(&SplitBy::NAMES),
        "train.lr_schedule" => Some(&Schedule::NAMES),
        "model.init" => Some(&["glorot_uniform", "kaiming_uniform"]),
        _ => None,
    }
}

/// Reads and validates a sweep file, with the settings of `--set KEY=VALUE` flags applied
/// ([`overrides`]).
pub fn load(path: &Path, set: &[String]) -> Result<SweepSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|e| SpecError {
        problems: vec![Located { file: path.display().to_string(), line: 1, column: 1, message: format!("cannot read the sweep file: {e}") }],
    })?;
    let spec = overrides::apply(&text, path, set)?;
    if spec.base.program.is_none() {
        return Ok(spec);
    }
    // A relative workdir is the sweep file's directory's: written into the stored text as an
    // absolute path, so that every worker reads the same.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match program::anchor_workdir(&spec.text, dir) {
        Ok(None) => Ok(spec),
        Ok(Some(anchored)) => parse(&anchored, path),
        Err((key, message)) => {
            let mut v = Validator { file: path.display().to_string(), text: &spec.text, problems: Vec::new() };
            let doc = Document::parse(spec.text.as_str()).ok();
            let program = doc.as_ref().and_then(|d| d.as_table().get("program")).and_then(Item::as_table_like);
            let at = program.and_then(|t| t.key(key).and_then(|k| k.span()).or_else(|| t.get(key).and_then(Item::span)));
            v.report(at.or_else(|| doc.as_ref().and_then(|d| item_span(d.as_table(), "program"))), message);
            Err(v.finish())
        }
    }
}

/// The sweep file a tracker keeps for a sweep, read as this build reads sweep files (messages
/// name it `<sweep>.toml`): the one way everything that reads a registered sweep (its sampler and
/// pruner, its objective, its charts and pages) gets at its file.
pub fn stored(info: &crate::store::SweepInfo) -> Result<SweepSpec, SpecError> {
    parse(&info.spec, Path::new(&format!("{}.toml", info.name)))
}

/// Validates sweep-file text; `path` names it in messages and gives the default sweep name.
pub fn parse(text: &str, path: &Path) -> Result<SweepSpec, SpecError> {
    let mut v = Validator { file: path.display().to_string(), text, problems: Vec::new() };
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            v.report(Some(at..at), format!("not valid TOML: {}", e.message().trim()));
            return Err(v.finish());
        }
    };
    let root = doc.as_table();
    let header = v.header(root, path);
    let (base, defaults) = v.base_settings(root, header.seed, &header.metric);
    let base_ok = v.problems.is_empty();
    let (parameters, conditions) = v.parameters(root, &defaults, header.method);
    let bayes = v.bayes(root, header.method);
    let nsga2 = v.nsga2(root, header.method);
    // How many trials the sweep can have: run_cap, else the grid's size.
    let trials = header
        .run_cap
        .or_else(|| (header.method == Method::Grid).then(|| parameters.iter().map(|p| p.domain.grid_values().len().max(1)).product::<usize>()));
    let early_terminate = base.as_ref().and_then(|b| v.early_terminate(root, b.train.epochs, trials));
    // Trials are checked even when some parameters were refused, so that one run of the
    // validator reports every problem; only a broken base makes the trials meaningless.
    let Some(base) = base.filter(|_| base_ok) else {
        return Err(v.finish());
    };
    let Header { name, description, method, run_cap, seed, repeats, metric, objectives } = header;
    if repeats > 1 && parameters.iter().any(|p| p.key == SEED_KEY) {
        v.report(
            item_span(root, "repeats"),
            format!("repeats = {repeats} and a swept \"{SEED_KEY}\" both set the seeds; keep one (repeats = N is \"{SEED_KEY}\" = {{ values = [seed, seed + 1, ...] }})"),
        );
    }
    let spec = SweepSpec {
        name,
        description,
        method,
        metric,
        objectives,
        constraints: v.constraints(root, program::is_program(root)),
        run_cap,
        seed,
        repeats,
        base,
        parameters,
        conditions,
        bayes,
        nsga2,
        early_terminate,
        enqueue: Vec::new(),
        warm_start: Vec::new(),
        text: text.to_string(),
        path: path.to_path_buf(),
    };
    let mut spec = spec;
    spec.enqueue = v.enqueue(root, &spec.space());
    spec.warm_start = v.warm_start(root, &spec.name);
    // Every trial must be a valid config: check them now so that a bad value fails here.
    check_trials(&spec, &mut v, root);
    if v.problems.is_empty() { Ok(spec) } else { Err(v.finish()) }
}

/// The top-level keys of a sweep file.
struct Header {
    name: String,
    description: Option<String>,
    method: Method,
    run_cap: Option<usize>,
    seed: u64,
    repeats: usize,
    metric: Objective,
    objectives: Vec<Objective>,
}

impl Validator<'_> {
    /// The top-level keys: name, description, method, run_cap, seed and `[metric]` or `[[objectives]]`.
    fn header(&mut self, root: &toml_edit::Table, path: &Path) -> Header {
        for (key, _) in root.iter() {
            if !TOP_KEYS.contains(&key) {
                let span = root.key(key).and_then(|k| k.span());
                self.report(span, unknown_key_message(key, "", TOP_KEYS));
            }
        }
        let default_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep").to_string();
        let name = self.string(root, "name").unwrap_or(default_name);
        if let Err(e) = crate::store::validate_sweep_name(&name) {
            self.report(item_span(root, "name"), format!("name: {e}"));
        }
        let description = self.string(root, "description");
        let method = match self.string(root, "method").as_deref() {
            None | Some("grid") => Method::Grid,
            Some("random") => Method::Random,
            Some("bayes") => Method::Bayes,
            Some("nsga2") => Method::Nsga2,
            Some(other) => {
                let hint = did_you_mean_suffix(other, &["grid", "random", "bayes", "nsga2"]);
                self.report(
                    item_span(root, "method"),
                    format!("method = {other:?} is not a method; use \"grid\", \"random\", \"bayes\" or \"nsga2\"{hint}"),
                );
                Method::Grid
            }
        };
        let run_cap = self.uint(root, "", "run_cap");
        if run_cap == Some(0) {
            self.report(item_span(root, "run_cap"), "run_cap must be at least 1".into());
        }
        let seed = self.uint(root, "", "seed").map_or(crate::config::DEFAULT_SEED, |s| s as u64);
        let repeats = self.uint(root, "", "repeats").unwrap_or(1);
        if !(1..=MAX_REPEATS).contains(&repeats) {
            self.report(item_span(root, "repeats"), format!("repeats = {repeats}: train each configuration 1 to {MAX_REPEATS} times"));
        } else if repeats > 1 && matches!(method, Method::Bayes | Method::Nsga2) {
            self.report(
                item_span(root, "repeats"),
                format!(
                    "repeats needs method = \"grid\" or \"random\": {} draws every trial as a new point and learns from each \
                     evaluation, noisy ones included; to compare seeds of its best configurations, enqueue them in a grid sweep",
                    if method == Method::Bayes { "TPE" } else { "NSGA-II" }
                ),
            );
        }
        let (metric, objectives) = self.objectives(root, program::is_program(root));
        if method != Method::Grid && run_cap.is_none() {
            self.report(item_span(root, "method"), format!("method = \"{}\" needs run_cap = N (how many configs to try)", method.as_str()));
        }
        Header { name, description, method, run_cap, seed, repeats: repeats.clamp(1, MAX_REPEATS), metric, objectives }
    }

    /// The base settings every trial starts from: the defaults, then the sweep seed for the seeds
    /// the file leaves unset, then the file's sections, key by key, type-checked against the
    /// defaults. Returns the base config (None if it is not one) and the defaults as JSON.
    fn base_settings(&mut self, root: &toml_edit::Table, seed: u64, metric: &Objective) -> (Option<TrialConfig>, Json) {
        let mut base = serde_json::to_value(TrialConfig::default()).expect("defaults serialise");
        base["train"]["seed"] = json!(seed);
        base["data"]["split_seed"] = json!(seed);
        // Left out of the canonical JSON at its default (see `SplitBy`), but a setting all the same.
        base["data"]["split_by"] = json!("image");
        base["data"]["eval_full_resolution"] = json!(false);
        base["metric"] = serde_json::to_value(metric).expect("metric serialises");
        let defaults = base.clone();
        let mut key_spans: BTreeMap<String, Option<std::ops::Range<usize>>> = BTreeMap::new();
        let program = program::is_program(root);
        for section in SECTIONS {
            let Some(item) = root.get(section) else { continue };
            if program && *section != "train" {
                self.report(
                    item_span(root, section),
                    format!("[{section}] configures the built-in U-Net; a [program] sweep gives its program settings as parameters (a fixed one as {{ value = x }}) or in program.command"),
                );
                continue;
            }
            let Some(table) = item.as_table_like() else {
                self.report(item.span(), format!("[{section}] must be a table of settings"));
                continue;
            };
            let known: Vec<&str> = defaults[section].as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
            for (key, value) in table.iter() {
                let span = table.key(key).and_then(|k| k.span()).or_else(|| value.span());
                if !known.contains(&key) {
                    self.report(span, unknown_key_message(key, &format!("{section}."), &known));
                    continue;
                }
                if program && !program::PROGRAM_TRAIN_KEYS.contains(&key) {
                    self.report(
                        span,
                        format!("train.{key} is a setting of the built-in U-Net; a [program] sweep keeps only train.epochs (SWEEP_EPOCHS) and train.seed (SWEEP_SEED): pass the rest as parameters"),
                    );
                    continue;
                }
                let dotted = format!("{section}.{key}");
                key_spans.insert(dotted.clone(), value.span().or(span.clone()));
                let Some(given) = self.json(value) else { continue };
                match check_type(&dotted, &defaults[section][key], &given) {
                    Ok(ok) => base[section][key] = ok,
                    Err(msg) => self.report(value.span().or(span), msg),
                }
            }
        }
        if program {
            match self.program(root) {
                Some(p) => base["program"] = p,
                None => return (None, defaults),
            }
        }
        let config: Option<TrialConfig> = match serde_json::from_value(base) {
            Ok(c) => Some(c),
            Err(e) => {
                self.report(None, format!("the settings do not form a valid configuration: {e}"));
                None
            }
        };
        if let Some(config) = &config {
            let param_keys: HashSet<String> = parameter_keys(root);
            for p in config.validate() {
                // A base value that every trial overrides does not need to be valid on its own.
                if param_keys.contains(&p.key) {
                    continue;
                }
                let span = key_spans.get(&p.key).cloned().flatten().or_else(|| item_span(root, p.key.split('.').next().unwrap_or("")));
                self.report(span, format!("{}: {}", p.key, p.message.trim_start_matches("= ")));
            }
        }
        (config, defaults)
    }
}

/// The keys the `[parameters]` table sweeps (flattened).
fn parameter_keys(root: &toml_edit::Table) -> HashSet<String> {
    let mut out = HashSet::new();
    if let Some(t) = root.get("parameters").and_then(Item::as_table_like) {
        collect_parameter_entries(t, "", &mut |key, _, _| {
            out.insert(key);
        });
    }
    out
}

/// Walks `[parameters]`, flattening unquoted dotted keys (`augment.hue_delta = {...}` parses as
/// a nested table) into `section.key` names.
fn collect_parameter_entries<'a>(table: &'a dyn TableLike, prefix: &str, f: &mut dyn FnMut(String, Option<std::ops::Range<usize>>, &'a Item)) {
    for (key, item) in table.iter() {
        let name = format!("{prefix}{key}");
        let span = table.key(key).and_then(|k| k.span());
        match item.as_table_like() {
            Some(inner) if !inner.iter().any(|(k, _)| PARAM_KEYS.contains(&k)) && !name.contains('.') && !inner.is_empty() => {
                collect_parameter_entries(inner, &format!("{name}."), f)
            }
            _ => f(name, span, item),
        }
    }
}

impl Validator<'_> {
    /// Reports every key of `table` that is not in `known`, named under `section`
    /// (`constraints[0]`, `program`).
    pub(super) fn unknown_keys(&mut self, table: &dyn TableLike, section: &str, known: &[&str]) {
        for (key, value) in table.iter() {
            if !known.contains(&key) {
                self.report(table.key(key).and_then(|k| k.span()).or(value.span()), unknown_key_message(key, &format!("{section}."), known));
            }
        }
    }
}

fn unknown_key_message(key: &str, prefix: &str, known: &[&str]) -> String {
    if prefix == "augment." && key == "resize" {
        return "augment.resize: the resize target is data.image_size (one side, or [height, width])".into();
    }
    format!("unknown key {prefix}{key}{}", did_you_mean_suffix(key, known))
}

fn did_you_mean_suffix(word: &str, options: &[&str]) -> String {
    did_you_mean(word, options.iter().copied()).map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
}

fn item_span(table: &toml_edit::Table, key: &str) -> Option<std::ops::Range<usize>> {
    table.get_key_value(key).and_then(|(k, item)| item.span().or_else(|| k.span()))
}

/// Checks a value against the type of the setting's default; returns it normalised.
fn check_type(key: &str, default: &Json, given: &Json) -> Result<Json, String> {
    let kind = |v: &Json| match v {
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a number",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "a table",
        Json::Null => "nothing",
    };
    match default {
        // A program's parameter swept over a list or fixed: any value it can be given.
        Json::Null => Ok(given.clone()),
        Json::Bool(_) if given.is_boolean() => Ok(given.clone()),
        Json::Number(d) if d.is_f64() => match given.as_f64() {
            Some(f) if given.is_number() => Ok(json!(f)),
            _ => Err(format!("{key} must be a number, not {}", kind(given))),
        },
        Json::Number(_) => match given.as_u64() {
            Some(u) => Ok(json!(u)),
            None if given.is_i64() => Err(format!("{key} = {given} must not be negative")),
            None if given.is_f64() => Err(format!("{key} = {given} must be a whole number")),
            None => Err(format!("{key} must be a whole number, not {}", kind(given))),
        },
        Json::String(_) => match given.as_str() {
            Some(s) => match choices(key) {
                Some(options) if !options.contains(&s) => {
                    Err(format!("{key} = {s:?} is not one of {}{}", options.join(", "), did_you_mean_suffix(s, options)))
                }
                _ => Ok(given.clone()),
            },
            None => Err(format!("{key} must be a string, not {}", kind(given))),
        },
        Json::Array(_) => {
            // image_size and synthetic_size: one side, or [height, width].
            let pair = match given {
                Json::Number(n) => n.as_u64().map(|s| [s, s]),
                Json::Array(a) if a.len() == 2 => a[0].as_u64().zip(a[1].as_u64()).map(|(h, w)| [h, w]),
                _ => None,
            };
            pair.map(|p| json!(p)).ok_or_else(|| format!("{key} must be one side (e.g. 128) or [height, width] (e.g. [128, 192])"))
        }
        _ => Err(format!("{key} must be {}, not {}", kind(default), kind(given))),
    }
}

struct Validator<'a> {
    file: String,
    text: &'a str,
    problems: Vec<Located>,
}

impl Validator<'_> {
    fn report(&mut self, span: Option<std::ops::Range<usize>>, message: String) {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        let located = Located { file: self.file.clone(), line, column, message };
        if !self.problems.contains(&located) {
            self.problems.push(located);
        }
    }

    fn finish(mut self) -> SpecError {
        self.problems.sort_by_key(|p| (p.line, p.column));
        SpecError { problems: self.problems }
    }

    fn string(&mut self, table: &toml_edit::Table, key: &str) -> Option<String> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.report(item.span(), format!("{key} must be a string"));
                None
            }
        }
    }

    /// A whole number >= 0 at `key` of `table`; `prefix` names the section in messages
    /// (`""` at the top level, `"bayes."` in `[bayes]`).
    pub(super) fn uint(&mut self, table: &dyn TableLike, prefix: &str, key: &str) -> Option<usize> {
        let item = table.get(key)?;
        match item.as_integer() {
            Some(i) if i >= 0 => Some(i as usize),
            _ => {
                // The least value the key takes (checked where it is used); 0 for a count.
                let least = match key {
                    "eta" => 2,
                    "min_iter" | "max_iter" => 1,
                    _ => 0,
                };
                self.report(item.span(), format!("{prefix}{key} must be a whole number >= {least}"));
                None
            }
        }
    }

    /// A `true`/`false` key.
    pub(super) fn boolean(&mut self, table: &dyn TableLike, prefix: &str, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        let on = item.as_bool();
        if on.is_none() {
            self.report(item.span(), format!("{prefix}{key} must be true or false"));
        }
        on
    }

    /// A finite number key (an integer is taken as a number), at least `least` where given.
    pub(super) fn number(&mut self, table: &dyn TableLike, prefix: &str, key: &str, least: Option<f64>) -> Option<f64> {
        let item = table.get(key)?;
        let x = item.as_float().or_else(|| item.as_integer().map(|i| i as f64)).filter(|x| x.is_finite());
        match (x, least) {
            (Some(x), Some(least)) if x < least => {
                self.report(item.span(), format!("{prefix}{key} = {x} must be at least {least}"));
                None
            }
            (Some(x), _) => Some(x),
            (None, _) => {
                self.report(item.span(), format!("{prefix}{key} must be a finite number"));
                None
            }
        }
    }

    fn metric(&mut self, root: &toml_edit::Table, program: bool) -> Objective {
        let Some(item) = root.get("metric") else { return Objective::default() };
        let Some(table) = item.as_table_like() else {
            self.report(item.span(), "metric must be a table: [metric] name = \"val_iou\", goal = \"maximize\"".into());
            return Objective::default();
        };
        self.unknown_keys(table, "metric", &["name", "goal"]);
        let name = match table.get("name") {
            None => "val_iou".to_string(),
            Some(v) => match v.as_str() {
                Some(n) if Objective::parse_name(n).is_some() => n.to_string(),
                Some(n) if program && Objective::parse_reported(n).is_some() => n.to_string(),
                Some(n) if program => {
                    self.report(
                        v.span(),
                        format!(
                            "metric.name = {n:?} is not a name a program can report: use <split>_<name> with split train or val and a name of letters, digits, _, - and . (e.g. val_iou, val_accuracy)"
                        ),
                    );
                    "val_iou".to_string()
                }
                _ => {
                    let given = v.as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| "a non-string".into());
                    self.report(
                        v.span(),
                        format!(
                            "metric.name = {given} is not a metric; use <split>_<metric>: split train or val, metric loss, dice, iou or fg_iou (e.g. val_iou), or val_full_dice, val_full_iou, val_full_fg_iou (at the images' original size, with data.eval_full_resolution = true)"
                        ),
                    );
                    "val_iou".to_string()
                }
            },
        };
        let goal = match table.get("goal") {
            None => Goal::for_metric(&name),
            Some(v) => match v.as_str() {
                Some("maximize" | "max") => Goal::Maximize,
                Some("minimize" | "min") => Goal::Minimize,
                _ => {
                    self.report(v.span(), "metric.goal must be \"maximize\" or \"minimize\"".into());
                    Goal::for_metric(&name)
                }
            },
        };
        Objective { name, goal }
    }

    /// A TOML value as JSON; reports values JSON cannot hold (dates, NaN).
    fn json(&mut self, item: &Item) -> Option<Json> {
        match item.as_value() {
            Some(v) => self.value_json(v),
            None => {
                self.report(item.span(), "expected a value".into());
                None
            }
        }
    }

    fn value_json(&mut self, v: &toml_edit::Value) -> Option<Json> {
        Some(match v {
            toml_edit::Value::String(s) => json!(s.value()),
            toml_edit::Value::Integer(i) => json!(i.value()),
            toml_edit::Value::Float(f) => {
                let x = *f.value();
                if !x.is_finite() {
                    self.report(v.span(), format!("{x} is not a finite number"));
                    return None;
                }
                json!(x)
            }
            toml_edit::Value::Boolean(b) => json!(b.value()),
            toml_edit::Value::Datetime(_) => {
                self.report(v.span(), "dates are not settings".into());
                return None;
            }
            toml_edit::Value::Array(a) => Json::Array(a.iter().map(|x| self.value_json(x)).collect::<Option<Vec<_>>>()?),
            toml_edit::Value::InlineTable(t) => {
                let mut m = Map::new();
                for (k, x) in t.iter() {
                    m.insert(k.to_string(), self.value_json(x)?);
                }
                Json::Object(m)
            }
        })
    }
}

/// Checks the config of every trial that runs, reporting a bad value at its parameter. A grid's
/// points past `run_cap` never run and are not checked, so that a capped grid of any size is
/// validated at once.
fn check_trials(spec: &SweepSpec, v: &mut Validator, root: &toml_edit::Table) {
    let mut spans: BTreeMap<String, Option<std::ops::Range<usize>>> = BTreeMap::new();
    if let Some(t) = root.get("parameters").and_then(Item::as_table_like) {
        collect_parameter_entries(t, "", &mut |key, span, item| {
            spans.insert(key, span.or_else(|| item.span()));
        });
    }
    // Continuous domains are checked at their ends as well as at the drawn points.
    let first = checked_points(spec).next().unwrap_or_default();
    let mut probes = Vec::new();
    for p in &spec.parameters {
        let ends = match &p.domain {
            Domain::Uniform { min, max } | Domain::LogUniformValues { min, max } | Domain::QUniform { min, max, .. } => vec![json!(min), json!(max)],
            Domain::IntUniform { min, max } => vec![json!(min), json!(max)],
            _ => Vec::new(),
        };
        for end in ends {
            let mut point = first.clone();
            point.insert(p.key.clone(), end);
            probes.push(point);
        }
    }
    // The trials are streamed, never collected: a grid may be far larger than what runs of it.
    for point in checked_points(spec).chain(probes) {
        if let Err(problems) = resolve(spec, &point) {
            for (key, message) in problems {
                let span = spans.get(&key).cloned().flatten().or_else(|| point.keys().find_map(|k| spans.get(k).cloned().flatten()));
                let value = point.get(&key).map(|x| format!(" (value {x})")).unwrap_or_default();
                v.report(span, format!("{key}{value}: {}", message.trim_start_matches("= ")));
            }
        }
    }
}

/// The points that run, in order, streamed: a grid's first `run_cap` indices (all of them
/// without a cap), or random search's first `run_cap` draws.
fn points(spec: &SweepSpec) -> Box<dyn Iterator<Item = Point>> {
    let space = spec.space();
    match spec.method {
        Method::Grid => {
            let grid = Grid::new(space).expect("a grid's parameters are lists (checked by the validator)");
            let n = spec.run_cap.map_or(grid.len(), |cap| grid.len().min(cap as u128));
            Box::new((0..n).filter_map(move |i| grid.point(i)))
        }
        // Configurations put first count toward run_cap.
        Method::Random => Box::new(Random::new(space, spec.seed).first(spec.run_cap.unwrap_or(1).saturating_sub(spec.enqueue.len()))),
        // Asked one at a time by the workers (see `SweepSpec::sampler`); none is known up front.
        Method::Bayes | Method::Nsga2 => Box::new(std::iter::empty()),
    }
}

/// The points the validator checks: every trial of a grid or random search, and for TPE and
/// NSGA-II the random points they start from (the rest are drawn from the same domains).
fn checked_points(spec: &SweepSpec) -> Box<dyn Iterator<Item = Point>> {
    if spec.is_lazy() {
        let n = spec.startup_trials().max(1).min(spec.run_cap.unwrap_or(1));
        return Box::new(Random::new(spec.space(), spec.seed).first(n));
    }
    points(spec)
}

/// The config of one point, or the problems it has as (key, message).
fn resolve(spec: &SweepSpec, point: &BTreeMap<String, Json>) -> Result<TrialConfig, Vec<(String, String)>> {
    let mut value = serde_json::to_value(&spec.base).expect("configs serialise");
    let program = spec.base.program.is_some();
    for (key, v) in point {
        if program && key != SEED_KEY {
            // Every other parameter of a program sweep is the program's.
            value["program"]["params"][key] = v.clone();
            continue;
        }
        let (section, field) = key.split_once('.').expect("parameter keys are section.key");
        value[section][field] = v.clone();
    }
    let config: TrialConfig = serde_json::from_value(value).map_err(|e| vec![("parameters".to_string(), e.to_string())])?;
    let problems = config.validate();
    if problems.is_empty() { Ok(config) } else { Err(problems.into_iter().map(|p| (p.key, p.message)).collect()) }
}

impl SweepSpec {
    /// The trials of this sweep, in order. `data_override` replaces `data.source` in every trial
    /// (`sweep run --data DIR`).
    pub fn trials(&self, data_override: Option<&str>) -> Vec<Trial> {
        // A config listed twice (a value repeated in a grid) is one trial, as the tracker
        // registers it: the dry run shows what the run registers.
        let mut seen = HashSet::new();
        let (repeats, first_seed) = (self.repeats as u64, self.base.train.seed);
        points(self)
            .flat_map(|params| {
                (0..repeats).map(move |r| {
                    let mut params = params.clone();
                    if repeats > 1 {
                        params.insert(SEED_KEY.to_string(), json!(first_seed + r));
                    }
                    params
                })
            })
            .map(|params| {
                let mut config = resolve(self, &params).expect("trials were validated when the spec was parsed");
                if let Some(dir) = data_override {
                    config.data.source = dir.to_string();
                }
                Trial { params, config }
            })
            .filter(|t| seen.insert(t.config.hash()))
            .collect()
    }

    /// What to tell the user when random search found fewer new configs than `run_cap` asked
    /// for (`found` trials): the space has no more, or they are too rare to draw.
    pub fn shortfall(&self, found: usize) -> Option<String> {
        let cap = self.run_cap.filter(|&cap| self.method == Method::Random && found < cap)?;
        Some(format!(
            "random search found only {found} distinct configs of the run_cap = {cap} asked for: the space has no more \
             (in {} draws); lower run_cap or widen the parameters",
            cap.saturating_mul(crate::study::sampler::DRAWS_PER_POINT)
        ))
    }

    /// Whether parameter `key` is swept on a log scale.
    pub fn is_log(&self, key: &str) -> bool {
        self.parameters.iter().any(|p| p.key == key && p.domain.is_log())
    }
}
