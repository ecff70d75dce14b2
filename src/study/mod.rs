//! The study: what a sweep searches and how, with no tensors, no tracker and no I/O in it.
//!
//! [`spec`] reads a sweep file (TOML with spans, every problem reported with file:line:column)
//! into the parameter space and expands it into trials, each a resolved `TrialConfig` identified by
//! its hash. The rest is the search itself, after Optuna's roles, and none of it reads a file:
//! [`history`] is the read-only snapshot of a sweep's trials that policies decide from (Optuna's
//! frozen trials), [`space`] the parameters (their domains and conditions), [`sampler`] grid and random search, [`tpe`] Bayesian
//! search and [`nsga2`] the genetic one (what to try next), [`pruner`] the early-stopping rules (whether a trial goes on), [`pareto`] the arithmetic
//! of several objectives (fronts, crowding, hypervolume), and
//! [`objective`] the trial as a learning curve, with a fake one for tests. Policies return
//! decisions; the runner acts on them.
//!
//! A sweep file read, expanded, and a pruning decision from a history:
//!
//! ```
//! use std::path::Path;
//! use sweep::config::Goal;
//! use sweep::study::history::{History, SearchState, TrialRecord};
//! use sweep::study::pruner::{Decision, Percentile, Pruner};
//!
//! let text = "name = \"lr\"\n[parameters]\n\"train.learning_rate\" = { values = [0.001, 0.01] }\n";
//! let spec = sweep::study::spec::parse(text, Path::new("lr.toml")).unwrap();
//! let rates: Vec<f64> = spec.trials(None).iter().map(|t| t.config.train.learning_rate).collect();
//! assert_eq!(rates, [0.001, 0.01]);
//!
//! // The median rule (Optuna's): trial 3's best so far at epoch 2 is below the completed ones'.
//! let trial = |number, state, values: &[f64]| TrialRecord {
//!     number, point: Default::default(), state,
//!     values: values.iter().enumerate().map(|(i, v)| (i + 1, *v)).collect(), scores: Vec::new(), violation: 0.0,
//! };
//! let history = History::new("val_iou", Goal::Maximize, vec![
//!     trial(1, SearchState::Completed, &[0.6, 0.8, 0.9]),
//!     trial(2, SearchState::Completed, &[0.5, 0.7, 0.8]),
//!     trial(3, SearchState::Running, &[0.3, 0.4]),
//! ]);
//! let median = Percentile::median(1, 2);
//! assert!(matches!(median.decide(&history, 3, 2), Decision::Prune { .. }));
//! assert_eq!(median.decide(&history, 3, 1), Decision::Continue, "epoch 1 is the warm-up");
//! ```

pub mod history;
pub mod nsga2;
pub mod objective;
pub mod pareto;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod spec;
pub mod tpe;
