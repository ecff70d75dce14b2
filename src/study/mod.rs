//! The study: what a sweep searches and how, with no tensors, no tracker and no I/O in it.
//!
//! [`spec`] reads a sweep file (TOML with spans, every problem reported with file:line:column)
//! into the parameter space and expands it into trials, each a resolved `TrialConfig` identified by
//! its hash. The rest is the search itself, after Optuna's roles, and none of it reads a file:
//! [`history`] is the read-only snapshot of a sweep's trials that policies decide from (Optuna's
//! frozen trials), [`space`] the parameters (their domains and conditions), [`sampler`] grid and random search and [`tpe`] Bayesian
//! search (what to try next), [`pruner`] the early-stopping rules (whether a trial goes on), and
//! [`objective`] the trial as a learning curve, with a fake one for tests. Policies return
//! decisions; the runner acts on them.

pub mod history;
pub mod objective;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod spec;
pub mod tpe;
