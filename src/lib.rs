//! `sweep`: an experiment tracker and hyperparameter sweep runner for U-Net image segmentation.
//!
//! See ARCHITECTURE.md for the map of modules and their invariants.

pub mod canvas;
pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod report;
pub mod runner;
pub mod store;
pub mod study;
pub mod train;
pub mod ui;
pub mod util;

pub use error::{Error, Result};
