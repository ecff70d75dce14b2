//! How a sweep searches: the `bayes` method's settings (`[bayes]`), early termination
//! (`[early_terminate]`, W&B's keys) and conditional parameters (`when`), read from the sweep
//! file and validated like every other key; and the sampler, pruner and space a validated sweep
//! gives to the workers.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use toml_edit::{Item, TableLike};

use super::{Method, SweepSpec, Trial, Validator, did_you_mean_suffix, resolve};
use crate::study::history::Point;
use crate::study::nsga2::{Nsga2, Nsga2Settings};
use crate::study::pruner::{Asha, Hyperband, Patient, Percentile, Pruner, PrunerError, Threshold};
use crate::study::sampler::{Grid, Random, Sampler};
use crate::study::space::{Condition, Dimension, Domain, Parameter, Space, same_value};
use crate::study::tpe::{Tpe, TpeSettings};

const TYPES: &[&str] = &["median", "percentile", "patient", "threshold", "asha", "hyperband"];
const BAYES_KEYS: &[&str] = &["startup_trials", "candidates", "multivariate", "constant_liar", "warm_start"];
const NSGA2_KEYS: &[&str] = &["population", "crossover_prob", "mutation_prob"];

/// `[early_terminate]`: the rule that stops unpromising trials at an epoch boundary.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlyTerminate {
    /// `type = "median"` (`percentile` 50) or `type = "percentile"`: the trial's best value so
    /// far against that percentile of the completed trials' values at the same epoch (Optuna's
    /// `MedianPruner`, `PercentilePruner`).
    Percentile { median: bool, percentile: f64, warmup: usize, startup_trials: usize, n_min_trials: usize, interval: usize },
    /// `type = "patient"`: no improvement by `min_delta` over `patience` epochs.
    Patient { patience: usize, min_delta: f64 },
    /// `type = "threshold"`: a value below `lower` or above `upper`.
    Threshold { lower: Option<f64>, upper: Option<f64>, warmup: usize },
    /// `type = "asha"`: asynchronous successive halving, rungs at `min_iter * eta^k`.
    /// `bootstrap_count` (Optuna's): the first that many trials at a rung stop there.
    /// `best_so_far`: trials compete with their best value up to the rung.
    Asha { min_iter: usize, max_iter: usize, eta: usize, bootstrap_count: usize, best_so_far: bool },
    /// `type = "hyperband"`: several ASHA brackets with different first rungs.
    Hyperband { min_iter: usize, max_iter: usize, eta: usize, bootstrap_count: usize, best_so_far: bool },
}

impl EarlyTerminate {
    /// The rule's `type` in the sweep file.
    pub fn kind(&self) -> &'static str {
        match self {
            EarlyTerminate::Percentile { median: true, .. } => "median",
            EarlyTerminate::Percentile { median: false, .. } => "percentile",
            EarlyTerminate::Patient { .. } => "patient",
            EarlyTerminate::Threshold { .. } => "threshold",
            EarlyTerminate::Asha { .. } => "asha",
            EarlyTerminate::Hyperband { .. } => "hyperband",
        }
    }

    /// The pruner this rule names (its settings were checked when the file was read).
    pub fn pruner(&self) -> Box<dyn Pruner + Send> {
        let checked = "early_terminate settings are validated when the sweep file is read";
        match *self {
            EarlyTerminate::Percentile { percentile, warmup, startup_trials, n_min_trials, interval, .. } => {
                Box::new(Percentile { percentile, warmup_epochs: warmup, startup_trials, min_trials: n_min_trials, interval })
            }
            EarlyTerminate::Patient { patience, min_delta } => Box::new(Patient { patience, min_delta }),
            EarlyTerminate::Threshold { lower, upper, warmup } => Box::new(Threshold { lower, upper, warmup_epochs: warmup }),
            EarlyTerminate::Asha { min_iter, max_iter, eta, bootstrap_count, best_so_far } => {
                Box::new(Asha::new(min_iter, max_iter, eta).expect(checked).with_bootstrap(bootstrap_count).with_best_so_far(best_so_far))
            }
            EarlyTerminate::Hyperband { min_iter, max_iter, eta, bootstrap_count, best_so_far } => {
                Box::new(Hyperband::new(min_iter, max_iter, eta).expect(checked).with_bootstrap(bootstrap_count).with_best_so_far(best_so_far))
            }
        }
    }
}

impl Validator<'_> {
    /// An `[early_terminate]` count that must be at least 1.
    fn positive(&mut self, table: &dyn TableLike, key: &str) -> Option<usize> {
        match self.uint(table, "early_terminate.", key)? {
            0 => {
                self.report(table.get(key).and_then(Item::span), format!("early_terminate.{key} must be at least 1"));
                None
            }
            n => Some(n),
        }
    }

    /// The settings table of a sampling method (`[bayes]`, `[nsga2]`), checked to be a table of
    /// known keys under its own method; None where the file has none (or it is no table).
    fn method_table<'t>(
        &mut self,
        root: &'t toml_edit::Table,
        of: Method,
        method: Method,
        example: &str,
        keys: &[&str],
    ) -> Option<&'t dyn TableLike> {
        let name = of.as_str();
        let item = root.get(name)?;
        let Some(table) = item.as_table_like() else {
            self.report(item.span(), format!("[{name}] must be a table: {example}"));
            return None;
        };
        if method != of {
            self.report(item.span(), format!("[{name}] only applies to method = \"{name}\"; remove it or change the method"));
        }
        self.unknown_keys(table, name, keys);
        Some(table)
    }

    /// `[bayes]`: TPE's settings, Optuna's defaults where the file is silent.
    pub(super) fn bayes(&mut self, root: &toml_edit::Table, method: Method) -> TpeSettings {
        let mut settings = TpeSettings::default();
        let Some(table) = self.method_table(root, Method::Bayes, method, "startup_trials = 10, candidates = 24", BAYES_KEYS) else { return settings };
        if let Some(n) = self.uint(table, "bayes.", "startup_trials") {
            settings.startup_trials = n;
        }
        match self.uint(table, "bayes.", "candidates") {
            Some(0) => self.report(table.get("candidates").and_then(Item::span), "bayes.candidates must be at least 1".into()),
            Some(n) => settings.candidates = n,
            None => {}
        }
        if let Some(on) = self.boolean(table, "bayes.", "multivariate") {
            settings.multivariate = on;
        }
        if let Some(on) = self.boolean(table, "bayes.", "constant_liar") {
            settings.constant_liar = on;
        }
        settings
    }

    /// `[nsga2]`: NSGA-II's settings, the defaults where the file is silent.
    pub(super) fn nsga2(&mut self, root: &toml_edit::Table, method: Method) -> Nsga2Settings {
        let mut settings = Nsga2Settings::default();
        let Some(table) = self.method_table(root, Method::Nsga2, method, "population = 20, crossover_prob = 0.9", NSGA2_KEYS) else {
            return settings;
        };
        match self.uint(table, "nsga2.", "population") {
            Some(n) if n < 2 => self.report(
                table.get("population").and_then(Item::span),
                format!("nsga2.population = {n}: a generation needs at least 2 trials to breed from"),
            ),
            Some(n) => settings.population = n,
            None => {}
        }
        let probability = |v: &mut Self, key: &str, zero_ok: bool| {
            let p = v.number(table, "nsga2.", key, None)?;
            let ok = if zero_ok { (0.0..=1.0).contains(&p) } else { p > 0.0 && p <= 1.0 };
            if !ok {
                let range = if zero_ok { "0 to 1" } else { "above 0, at most 1" };
                v.report(table.get(key).and_then(Item::span), format!("nsga2.{key} = {p} is a probability: {range}"));
                return None;
            }
            Some(p)
        };
        if let Some(p) = probability(self, "crossover_prob", true) {
            settings.crossover_prob = p;
        }
        if let Some(p) = probability(self, "mutation_prob", false) {
            settings.mutation_prob = Some(p);
        }
        settings
    }

    /// `[bayes] warm_start = ["sweep-a", ...]`: other sweeps of the tracker TPE learns from
    /// (whether they exist is checked when the sweep is registered).
    pub(super) fn warm_start(&mut self, root: &toml_edit::Table, own_name: &str) -> Vec<String> {
        let Some(item) = root.get("bayes").and_then(Item::as_table_like).and_then(|t| t.get("warm_start")) else { return Vec::new() };
        let names: Option<Vec<&str>> = item.as_array().and_then(|a| a.iter().map(|v| v.as_str()).collect());
        let Some(names) = names else {
            self.report(item.span(), "bayes.warm_start must be a list of sweep names, e.g. warm_start = [\"hue\"]".into());
            return Vec::new();
        };
        let mut sweeps = Vec::new();
        for name in names {
            if let Err(e) = crate::store::validate_sweep_name(name) {
                self.report(item.span(), format!("bayes.warm_start: {e}"));
            } else if name == own_name {
                self.report(item.span(), format!("bayes.warm_start names this sweep ({name:?}); TPE already learns from its own trials"));
            } else if !sweeps.iter().any(|s: &String| s == name) {
                sweeps.push(name.to_string());
            }
        }
        sweeps
    }

    /// `[early_terminate]`: type and its settings; `max_iter` defaults to `train.epochs`.
    /// `[early_terminate]`, checked against the sweep's `epochs` per trial and its number of
    /// trials (`trials`, when known): settings under which every trial would be pruned, or none
    /// ever judged, are errors.
    pub(super) fn early_terminate(&mut self, root: &toml_edit::Table, epochs: usize, trials: Option<usize>) -> Option<EarlyTerminate> {
        let item = root.get("early_terminate")?;
        let Some(table) = item.as_table_like() else {
            self.report(item.span(), "[early_terminate] must be a table, e.g. type = \"hyperband\", min_iter = 2, eta = 3".into());
            return None;
        };
        let Some(kind) = table.get("type") else {
            self.report(item.span(), format!("[early_terminate] needs type = one of {}", TYPES.join(", ")));
            return None;
        };
        let kind_span = kind.span();
        let rule = match kind.as_str() {
            Some(kind @ ("median" | "percentile")) => {
                let median = kind == "median";
                let keys: &[&str] = if median {
                    &["type", "warmup", "startup_trials", "n_min_trials", "interval"]
                } else {
                    &["type", "percentile", "warmup", "startup_trials", "n_min_trials", "interval"]
                };
                self.unknown_keys(table, "early_terminate", keys);
                let percentile = if median {
                    50.0
                } else {
                    match table.get("percentile") {
                        None => {
                            self.report(
                                kind_span,
                                "early_terminate: type = \"percentile\" needs percentile = a number from 0 to 100 (25 keeps the best quarter at each epoch)".into(),
                            );
                            return None;
                        }
                        Some(item) => match self.number(table, "early_terminate.", "percentile", Some(0.0))? {
                            p if p > 100.0 => {
                                self.report(item.span(), format!("early_terminate.percentile = {p} must be at most 100 (a percentile)"));
                                return None;
                            }
                            p => p,
                        },
                    }
                };
                let warmup = self.uint(table, "early_terminate.", "warmup").unwrap_or(0);
                let defaults = Percentile::default();
                let startup_trials = self.uint(table, "early_terminate.", "startup_trials").unwrap_or(defaults.startup_trials);
                let n_min_trials = self.positive(table, "n_min_trials").unwrap_or(defaults.min_trials);
                let interval = self.positive(table, "interval").unwrap_or(defaults.interval);
                if warmup >= epochs {
                    self.report(
                        table.get("warmup").and_then(Item::span).or(kind_span),
                        format!(
                            "early_terminate.warmup = {warmup} is not below train.epochs = {epochs}: no epoch would ever be judged; use a \
                             smaller warmup, or leave [early_terminate] out"
                        ),
                    );
                    return None;
                }
                EarlyTerminate::Percentile { median, percentile, warmup, startup_trials, n_min_trials, interval }
            }
            Some("patient") => {
                self.unknown_keys(table, "early_terminate", &["type", "patience", "min_delta"]);
                let Some(item) = table.get("patience") else {
                    self.report(
                        kind_span,
                        "early_terminate: type = \"patient\" needs patience = the epochs without improvement it tolerates, e.g. 3".into(),
                    );
                    return None;
                };
                let patience = self.uint(table, "early_terminate.", "patience")?;
                let min_delta = self.number(table, "early_terminate.", "min_delta", Some(0.0)).unwrap_or(0.0);
                if patience + 1 >= epochs {
                    self.report(
                        item.span(),
                        format!(
                            "early_terminate.patience = {patience} needs more than {} epochs to judge anything, and train.epochs = {epochs}; \
                             use a patience below {}",
                            patience + 1,
                            epochs.saturating_sub(1)
                        ),
                    );
                    return None;
                }
                EarlyTerminate::Patient { patience, min_delta }
            }
            Some("threshold") => {
                self.unknown_keys(table, "early_terminate", &["type", "lower", "upper", "warmup"]);
                let lower = self.number(table, "early_terminate.", "lower", None);
                let upper = self.number(table, "early_terminate.", "upper", None);
                let warmup = self.uint(table, "early_terminate.", "warmup").unwrap_or(0);
                if table.get("lower").is_none() && table.get("upper").is_none() {
                    self.report(
                        kind_span,
                        "early_terminate: type = \"threshold\" needs lower = ..., upper = ..., or both (the values a trial must stay between)".into(),
                    );
                    return None;
                }
                if let (Some(l), Some(u)) = (lower, upper)
                    && l >= u
                {
                    self.report(
                        table.get("upper").and_then(Item::span),
                        format!("early_terminate.upper = {u} must be above lower = {l}: no value would pass"),
                    );
                    return None;
                }
                if warmup >= epochs {
                    self.report(
                        table.get("warmup").and_then(Item::span),
                        format!("early_terminate.warmup = {warmup} is not below train.epochs = {epochs}: no epoch would ever be judged"),
                    );
                    return None;
                }
                EarlyTerminate::Threshold { lower, upper, warmup }
            }
            Some(kind @ ("asha" | "hyperband")) => {
                self.unknown_keys(table, "early_terminate", &["type", "min_iter", "max_iter", "eta", "bootstrap_count", "best_so_far"]);
                let best_so_far = self.boolean(table, "early_terminate.", "best_so_far").unwrap_or(false);
                let min_iter = self.uint(table, "early_terminate.", "min_iter").unwrap_or(1);
                let max_iter = self.uint(table, "early_terminate.", "max_iter").unwrap_or(epochs);
                let eta = self.uint(table, "early_terminate.", "eta").unwrap_or(3);
                let bootstrap_count = self.uint(table, "early_terminate.", "bootstrap_count").unwrap_or(0);
                let checked =
                    if kind == "asha" { Asha::new(min_iter, max_iter, eta).map(|_| ()) } else { Hyperband::new(min_iter, max_iter, eta).map(|_| ()) };
                if let Err(e) = checked {
                    let at = match e {
                        PrunerError::Eta(_) => "eta",
                        PrunerError::MinIter(_) => "min_iter",
                        PrunerError::MinAboveMax { .. } => "max_iter",
                    };
                    let span = table.get(at).and_then(Item::span).or(kind_span);
                    let default_note = if at == "max_iter" && table.get("max_iter").is_none() { " (max_iter defaults to train.epochs)" } else { "" };
                    self.report(span, format!("early_terminate: {e}{default_note}"));
                    return None;
                }
                if let Some(n) = trials
                    && bootstrap_count >= n
                {
                    self.report(
                        table.get("bootstrap_count").and_then(Item::span).or(kind_span),
                        format!(
                            "early_terminate.bootstrap_count = {bootstrap_count} stops the first {bootstrap_count} trials at each rung, and \
                             the sweep has {n}: every trial would stop at its first rung; use a count below {n} (0: none)"
                        ),
                    );
                    return None;
                }
                if max_iter > epochs {
                    self.report(
                        table.get("max_iter").and_then(Item::span).or(kind_span),
                        format!("early_terminate.max_iter = {max_iter} is more than train.epochs = {epochs}; a trial never gets there"),
                    );
                    return None;
                }
                if kind == "asha" {
                    EarlyTerminate::Asha { min_iter, max_iter, eta, bootstrap_count, best_so_far }
                } else {
                    EarlyTerminate::Hyperband { min_iter, max_iter, eta, bootstrap_count, best_so_far }
                }
            }
            Some(other) => {
                self.report(
                    kind_span,
                    format!("early_terminate.type = {other:?} is not a pruner; use one of {}{}", TYPES.join(", "), did_you_mean_suffix(other, TYPES)),
                );
                return None;
            }
            None => {
                self.report(kind_span, format!("early_terminate.type must be a string: one of {}", TYPES.join(", ")));
                return None;
            }
        };
        Some(rule)
    }

    /// A parameter's `when = { "section.key" = [values] }`: the parameter applies only when an
    /// earlier parameter takes one of the values.
    pub(super) fn condition(&mut self, key: &str, item: &Item, span: Option<std::ops::Range<usize>>, earlier: &[Parameter]) -> Option<Condition> {
        let Some(table) = item.as_table_like().filter(|t| t.len() == 1) else {
            self.report(
                span,
                format!("parameter {key:?}: when must name one earlier parameter and its values, e.g. when = {{ \"train.optimizer\" = [\"sgd\"] }}"),
            );
            return None;
        };
        let (on, values) = table.iter().next().expect("one entry");
        let Some(target) = earlier.iter().find(|p| p.key == on) else {
            let names: Vec<&str> = earlier.iter().map(|p| p.key.as_str()).collect();
            let hint = if names.is_empty() { " (no parameter is listed before it)".to_string() } else { did_you_mean_suffix(on, &names) };
            self.report(span, format!("parameter {key:?}: when names {on:?}, which is not a parameter listed before it{hint}"));
            return None;
        };
        let values = match self.json(values)? {
            Json::Array(list) if !list.is_empty() => list,
            Json::Array(_) => {
                self.report(span, format!("parameter {key:?}: when lists no values for {on:?}, so it could never apply"));
                return None;
            }
            one => vec![one],
        };
        if let Domain::Uniform { .. } | Domain::LogUniformValues { .. } = &target.domain {
            self.report(
                span,
                format!(
                    "parameter {key:?}: when names {on:?}, a continuous parameter, which never takes one exact value; condition on a \
                     parameter with values = [...] (or int_uniform, q_uniform)"
                ),
            );
            return None;
        }
        let takes = |v: &Json| match &target.domain {
            Domain::Value(x) => same_value(x, v),
            Domain::Values(xs) | Domain::Categorical { values: xs, .. } => xs.iter().any(|x| same_value(x, v)),
            Domain::Uniform { min, max } | Domain::LogUniformValues { min, max } | Domain::QUniform { min, max, .. } => {
                v.as_f64().is_some_and(|x| (*min..=*max).contains(&x))
            }
            Domain::IntUniform { min, max } => v.as_i64().is_some_and(|x| (*min..=*max).contains(&x)),
        };
        if let Some(bad) = values.iter().find(|v| !takes(v)) {
            self.report(span, format!("parameter {key:?}: when = {{ {on:?} = ... }} lists {bad}, a value {on:?} never takes"));
            return None;
        }
        Some(Condition { key: on.to_string(), values })
    }
}

impl SweepSpec {
    /// The space the samplers search: the parameters in file order with their conditions.
    pub fn space(&self) -> Space {
        let dimensions = self.parameters.iter().map(|p| Dimension { parameter: p.clone(), when: self.conditions.get(&p.key).cloned() }).collect();
        Space::new(dimensions).expect("conditions look back at earlier parameters (checked by the validator)")
    }

    /// The sweep's sampler: the grid, the random stream or TPE, all seeded from the sweep.
    pub fn sampler(&self) -> Box<dyn Sampler + Send> {
        match self.method {
            Method::Grid => Box::new(Grid::new(self.space()).expect("a grid's parameters are lists (checked by the validator)")),
            Method::Random => Box::new(Random::new(self.space(), self.seed)),
            Method::Bayes => Box::new(Tpe::new(self.space(), self.seed, self.bayes.clone())),
            Method::Nsga2 => Box::new(Nsga2::new(self.space(), self.seed, self.nsga2.clone())),
        }
    }

    /// Whether trials are asked for one at a time as workers free up (TPE, NSGA-II), rather
    /// than all enqueued when the sweep is registered.
    pub fn is_lazy(&self) -> bool {
        matches!(self.method, Method::Bayes | Method::Nsga2)
    }

    /// Of a sweep whose trials are asked one at a time, how many are drawn at random first:
    /// TPE's `startup_trials`, NSGA-II's first generation. 0 for grid and random search.
    pub fn startup_trials(&self) -> usize {
        match self.method {
            Method::Bayes => self.bayes.startup_trials,
            Method::Nsga2 => self.nsga2.population,
            Method::Grid | Method::Random => 0,
        }
    }

    /// The trial of a point the sampler proposed, or why it is not a valid config.
    pub fn trial_of(&self, point: &Point) -> Result<Trial, Vec<(String, String)>> {
        Ok(Trial { params: point.clone(), config: resolve(self, point)? })
    }
}

/// `when` conditions by the key of the parameter they belong to.
pub type Conditions = BTreeMap<String, Condition>;
