//! `sweep`: an experiment tracker and hyperparameter sweep runner for U-Net image segmentation.
//!
//! See ARCHITECTURE.md for the map of modules and their invariants.

pub mod config;
pub mod data;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod util;
pub mod checkpoint;
pub mod device;
pub mod train;
pub mod cli;
pub mod error;

pub use error::{Error, Result};
