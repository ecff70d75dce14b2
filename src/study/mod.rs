//! The study: what a sweep searches and how, with no tensors in it. [`spec`] reads a sweep file
//! (TOML with spans, every problem reported with file:line:column) into the parameter space and
//! expands it into trials, each a resolved `RunConfig` identified by its hash.

pub mod spec;
