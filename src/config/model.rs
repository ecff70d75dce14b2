//! The `[model]` settings: the U-Net's shape and layer settings, and the checks that they can
//! work (depth, filters, an input side divisible by 2^depth). The network itself is built from
//! them in `train::model`; this module holds only the plain settings, so that the tracker and the
//! sweep files can read and validate them without the tensor library.

use serde::{Deserialize, Serialize};

/// How convolution weights are initialised (biases always start at zero, as in Keras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WeightInit {
    /// Keras' default (the tutorial's): uniform in ±sqrt(6 / (fan_in + fan_out)).
    #[default]
    GlorotUniform,
    /// PyTorch's and burn's default for convolutions.
    KaimingUniform,
}

/// The network's shape and its layer settings (the sweep file's `[model]` section).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UNetConfig {
    /// Filters of the first encoder; each level doubles them.
    pub base_filters: usize,
    /// Number of encoder (and decoder) blocks; input sides must be divisible by 2^depth.
    pub depth: usize,
    /// Weight of the new batch statistics in BatchNorm's running averages (PyTorch convention:
    /// Keras' `momentum = 0.99` is 0.01 here).
    pub batchnorm_momentum: f64,
    /// BatchNorm's epsilon (Keras' default 1e-3).
    pub batchnorm_epsilon: f64,
    pub init: WeightInit,
}

impl Default for UNetConfig {
    /// The seed's model: base 32, depth 5.
    fn default() -> Self {
        Self { base_filters: 32, depth: 5, batchnorm_momentum: 0.1, batchnorm_epsilon: 1e-3, init: WeightInit::GlorotUniform }
    }
}

/// A model setting that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "data.image_size: {side_name} {side} is not divisible by 2^depth = {multiple} (model.depth = {depth}); \
         nearest valid sizes: {}",
        nearest_valid(*side, *multiple).iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ")
    )]
    IndivisibleSide { side_name: &'static str, side: usize, depth: usize, multiple: usize },
    #[error("{key} = {value}: {expected}")]
    Invalid { key: &'static str, value: String, expected: &'static str },
}

/// The multiples of `multiple` closest to `side` (one or two of them).
pub fn nearest_valid(side: usize, multiple: usize) -> Vec<usize> {
    let below = side / multiple * multiple;
    let above = below + multiple;
    if below == 0 { vec![above] } else { vec![below, above] }
}

impl UNetConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(1..=8).contains(&self.depth) {
            return Err(ModelError::Invalid { key: "model.depth", value: self.depth.to_string(), expected: "must be in [1, 8] (the seed uses 5)" });
        }
        if !(1..=256).contains(&self.base_filters) {
            return Err(ModelError::Invalid {
                key: "model.base_filters",
                value: self.base_filters.to_string(),
                expected: "must be in [1, 256] (the seed uses 32)",
            });
        }
        if !(0.0..=1.0).contains(&self.batchnorm_momentum) {
            return Err(ModelError::Invalid {
                key: "model.batchnorm_momentum",
                value: self.batchnorm_momentum.to_string(),
                expected: "must be in [0, 1] (PyTorch convention; Keras' 0.99 is 0.01 here)",
            });
        }
        if !(self.batchnorm_epsilon > 0.0 && self.batchnorm_epsilon.is_finite()) {
            return Err(ModelError::Invalid {
                key: "model.batchnorm_epsilon",
                value: self.batchnorm_epsilon.to_string(),
                expected: "must be positive",
            });
        }
        Ok(())
    }

    /// Checks that an input of `height` x `width` fits the network.
    pub fn check_input(&self, height: usize, width: usize) -> Result<(), ModelError> {
        let multiple = 1usize << self.depth;
        for (side_name, side) in [("height", height), ("width", width)] {
            if side == 0 || side % multiple != 0 {
                return Err(ModelError::IndivisibleSide { side_name, side, depth: self.depth, multiple });
            }
        }
        Ok(())
    }
}
