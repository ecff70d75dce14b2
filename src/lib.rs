//! `sweep`: an experiment tracker and hyperparameter sweep runner for U-Net image segmentation.
//!
//! See ARCHITECTURE.md for the map of modules and their invariants.

pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod report;
pub mod scheduler;
pub mod signals;
pub mod slurm;
pub mod spec;
pub mod store;
pub mod train;
pub mod util;
pub mod worker;

pub use error::{Error, Result};
