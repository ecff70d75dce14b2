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

/// What a configuration of the network costs, known before it is built: its trainable
/// parameters and the floating-point operations of one forward pass of one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelCost {
    /// Trainable parameters: every convolution's weights and bias, every BatchNorm's scale and
    /// shift (not its running statistics, which are not trained).
    pub params: u64,
    /// Forward FLOPs of one image, counted as 2 per multiply-accumulate of the convolutions and
    /// transposed convolutions (the convention of the papers and of BENCHMARKS.md); BatchNorm,
    /// ReLU, max-pooling, concatenation and the biases' additions are left out (under 0.5% of
    /// the total at base 32).
    pub flops: f64,
}

impl UNetConfig {
    /// The cost of the network `train::model` builds from these settings, for an input of
    /// `height` x `width` (sides divisible by 2^depth), walking the same layers in the same order:
    /// per encoder level l (f = base * 2^l filters, at (h / 2^l) x (w / 2^l)) a 3x3 convolution
    /// into f, BatchNorm, a 3x3 convolution f -> f, BatchNorm; the centre's block likewise at
    /// the deepest level; per decoder level a 2x2 stride-2 transposed convolution from the level
    /// below, BatchNorm over the 2f channels of the concatenation and a block 2f -> f; a 1x1
    /// convolution to one channel.
    pub fn cost(&self, height: usize, width: usize) -> ModelCost {
        struct Tally {
            params: u64,
            macs: f64,
        }
        impl Tally {
            // A k x k convolution with bias, `cin` -> `cout`, giving `area` output pixels.
            fn conv(&mut self, cin: usize, cout: usize, k: usize, area: f64) {
                self.params += (k * k * cin * cout + cout) as u64;
                self.macs += area * (k * k * cin * cout) as f64;
            }
            // A 2x2 stride-2 transposed convolution: each of the `area` output pixels takes one
            // kernel tap from each input channel.
            fn up(&mut self, cin: usize, cout: usize, area: f64) {
                self.params += (4 * cin * cout + cout) as u64;
                self.macs += area * (cin * cout) as f64;
            }
            fn norm(&mut self, channels: usize) {
                self.params += 2 * channels as u64;
            }
            fn block(&mut self, cin: usize, cout: usize, area: f64) {
                self.conv(cin, cout, 3, area);
                self.norm(cout);
                self.conv(cout, cout, 3, area);
                self.norm(cout);
            }
        }
        let filters = |level: usize| self.base_filters << level;
        let area = |level: usize| (height >> level) as f64 * (width >> level) as f64;
        let mut tally = Tally { params: 0, macs: 0.0 };
        let mut channels = 3;
        for level in 0..self.depth {
            tally.block(channels, filters(level), area(level));
            channels = filters(level);
        }
        tally.block(channels, filters(self.depth), area(self.depth));
        for level in (0..self.depth).rev() {
            let n = filters(level);
            tally.up(filters(level + 1), n, area(level));
            tally.norm(2 * n);
            tally.block(2 * n, n, area(level));
        }
        tally.conv(self.base_filters, 1, 1, area(0));
        ModelCost { params: tally.params, flops: 2.0 * tally.macs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's network, counted by hand in closed form: with b = 32 filters, depth D = 5, every
    /// level's convolutions cost b^2 * h * w multiply-accumulates times a constant (the filters
    /// double as the area quarters), so the total is h * w * (b^2 (9 + 42.5 D) + 28 b); the
    /// parameters are 9 b^2 + 89/3 b^2 (4^D - 1) + 23 b 2^D + 11 b + 1.
    #[test]
    fn the_seed_network_costs_what_its_closed_form_says() {
        let (b, d) = (32.0f64, 5.0f64);
        let cost = UNetConfig::default().cost(128, 128);
        let params = 9.0 * b * b + 89.0 / 3.0 * b * b * (4f64.powf(d) - 1.0) + 23.0 * b * 2f64.powf(d) + 11.0 * b + 1.0;
        assert_eq!(cost.params, params.round() as u64);
        assert_eq!(cost.params, 31_110_497);
        let macs = 128.0 * 128.0 * (b * b * (9.0 + 42.5 * d) + 28.0 * b);
        assert_eq!(cost.flops, 2.0 * macs);
        // BENCHMARKS.md's 29.85 GFLOP forward of a batch of 4 at this shape.
        assert!((4.0 * cost.flops / 1e9 - 29.85).abs() < 0.01, "{}", cost.flops);
    }

    /// A one-level network small enough to count layer by layer: 3 -> 2 -> 2 at 4x4, the centre
    /// 2 -> 4 -> 4 at 2x2, up 4 -> 2 at 4x4, BatchNorm over 4, 4 -> 2 -> 2, the head 2 -> 1.
    #[test]
    fn a_one_level_network_is_counted_layer_by_layer() {
        let config = UNetConfig { base_filters: 2, depth: 1, ..UNetConfig::default() };
        let cost = config.cost(4, 4);
        let convs = [(3, 2, 9), (2, 2, 9), (2, 4, 9), (4, 4, 9), (4, 2, 9), (2, 2, 9), (2, 1, 1)];
        let params: usize = convs.iter().map(|(i, o, k)| k * i * o + o).sum::<usize>()
            + (4 * 4 * 2 + 2) // the transposed convolution
            + 2 * (2 + 2 + 4 + 4 + 4 + 2 + 2); // BatchNorm's scale and shift
        assert_eq!(cost.params, params as u64);
        let macs = 16 * (9 * 3 * 2 + 9 * 2 * 2) + 4 * (9 * 2 * 4 + 9 * 4 * 4) + 16 * 4 * 2 + 16 * (9 * 4 * 2 + 9 * 2 * 2) + 16 * 2;
        assert_eq!(cost.flops, 2.0 * macs as f64);
    }
}
