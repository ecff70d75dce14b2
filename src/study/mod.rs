//! The study: what a sweep searches and how, with no tensors, no tracker and no I/O in it.
//!
//! [`spec`] reads a sweep file (TOML with spans, every problem reported with file:line:column)
//! into the parameter space and expands it into trials, each a resolved `RunConfig` identified by
//! its hash. The rest is the search itself, after Optuna's roles: [`history`] is the read-only
//! snapshot of a sweep's trials that policies decide from (Optuna's frozen trials), [`space`] the
//! parameters with their conditions, and [`sampler`] grid and random search (what to try next).

pub mod history;
pub mod sampler;
pub mod space;
pub mod spec;
