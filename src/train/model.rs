//! The U-Net of the tutorial, built from the seed's three blocks, with BatchNorm in every block.
//!
//! - `conv_block(n)`: conv 3x3 (same) -> BN -> ReLU -> conv 3x3 -> BN -> ReLU.
//! - `encoder_block(n)`: conv_block(n), then max-pool 2x2; returns (pooled, skip).
//! - `decoder_block(n)`: transposed conv 2x2 stride 2 -> concatenate [skip, upsampled] ->
//!   BN -> ReLU -> conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN -> ReLU.
//!
//! With the seed's defaults (base 32, depth 5) the encoders have 32, 64, 128, 256, 512 filters,
//! the centre 1024, the decoders 512 down to 32, and a 1x1 convolution gives one channel of
//! logits. The model returns logits, not probabilities: the loss applies the sigmoid in a
//! numerically safe form. This module holds the network only: no loss, optimiser or I/O.

use std::cell::RefCell;

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::ops;
use crate::config::{UNetConfig, WeightInit};

impl UNetConfig {
    /// Builds the network on `device`, its weights drawn from `seed`.
    ///
    /// Weights are drawn on the host from one seeded stream, in construction order, then
    /// uploaded: the initial model depends on the seed alone, not on the backend or on what
    /// other threads of the process draw from a shared generator.
    pub fn init(&self, device: &Device, seed: u64) -> UNet {
        let init = Init { config: *self, rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)), device };
        init.unet()
    }
}

/// Builds the layers, drawing weights from one stream.
struct Init<'a> {
    config: UNetConfig,
    rng: RefCell<ChaCha8Rng>,
    device: &'a Device,
}

impl Init<'_> {
    fn unet(&self) -> UNet {
        let filters = |level: usize| self.config.base_filters << level;
        let mut encoders = Vec::with_capacity(self.config.depth);
        let mut in_channels = 3;
        let depth = self.config.depth;
        for level in 0..depth {
            encoders.push(EncoderBlock {
                conv: self.conv_block(in_channels, filters(level)),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            });
            in_channels = filters(level);
        }
        let center = self.conv_block(in_channels, filters(depth));
        let decoders = (0..depth)
            .rev()
            .map(|level| {
                let n = filters(level);
                DecoderBlock { up: self.conv_transpose(filters(level + 1), n), norm: self.batch_norm(2 * n), conv: self.conv_block(2 * n, n) }
            })
            .collect();
        let head = self.conv(self.config.base_filters, 1, 1);
        UNet { encoders, center, decoders, head }
    }

    fn conv_block(&self, in_channels: usize, out_channels: usize) -> ConvBlock {
        ConvBlock {
            conv1: self.conv(in_channels, out_channels, 3),
            norm1: self.batch_norm(out_channels),
            conv2: self.conv(out_channels, out_channels, 3),
            norm2: self.batch_norm(out_channels),
        }
    }

    fn batch_norm(&self, channels: usize) -> BatchNorm {
        BatchNormConfig::new(channels).with_momentum(self.config.batchnorm_momentum).with_epsilon(self.config.batchnorm_epsilon).init(self.device)
    }

    fn conv(&self, in_channels: usize, out_channels: usize, kernel: usize) -> Conv2d {
        let mut conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel]).with_padding(PaddingConfig2d::Same).init(self.device);
        let fans = (in_channels * kernel * kernel, out_channels * kernel * kernel);
        conv.weight = self.weights([out_channels, in_channels, kernel, kernel], fans);
        conv.bias = Some(Initializer::Zeros.init([out_channels], self.device));
        conv
    }

    fn conv_transpose(&self, in_channels: usize, out_channels: usize) -> ConvTranspose2d {
        let mut up = ConvTranspose2dConfig::new([in_channels, out_channels], [2, 2]).with_stride([2, 2]).init(self.device);
        up.weight = self.weights([in_channels, out_channels, 2, 2], (out_channels * 4, in_channels * 4));
        up.bias = Some(Initializer::Zeros.init([out_channels], self.device));
        up
    }

    /// Uniform weights: Glorot's bound sqrt(6 / (fan_in + fan_out)) or Kaiming's sqrt(1 / fan_in)
    /// (PyTorch's default for convolutions).
    fn weights(&self, shape: [usize; 4], (fan_in, fan_out): (usize, usize)) -> Param<Tensor<4>> {
        let bound = match self.config.init {
            WeightInit::GlorotUniform => (6.0 / (fan_in + fan_out) as f64).sqrt(),
            WeightInit::KaimingUniform => (1.0 / fan_in as f64).sqrt(),
        } as f32;
        let mut rng = self.rng.borrow_mut();
        let values: Vec<f32> = (0..shape.iter().product()).map(|_| rng.random_range(-bound..bound)).collect();
        Param::from_data(TensorData::new(values, shape), self.device)
    }
}

/// `layer` applied to `x` through [`ops::conv2d`], which takes our kernels on the CPU. The
/// model's convolutions have stride 1 and `Same` padding with odd kernels: `(k - 1) / 2` rows and
/// columns on every side, as burn's `Conv2d::forward` computes it.
fn conv(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    debug_assert!(layer.stride == [1, 1] && layer.kernel_size.iter().all(|k| k % 2 == 1) && layer.padding == PaddingConfig2d::Same);
    let options = ConvOptions::new(layer.stride, layer.kernel_size.map(|k| (k - 1) / 2), layer.dilation, layer.groups);
    ops::conv2d(x, layer.weight.val(), layer.bias.as_ref().map(|bias| bias.val()), options)
}

/// conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN -> ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv1: Conv2d,
    norm1: BatchNorm,
    conv2: Conv2d,
    norm2: BatchNorm,
}

impl ConvBlock {
    /// # Shapes
    /// - input: [batch, in_channels, h, w]
    /// - output: [batch, out_channels, h, w]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = ops::batch_norm_relu(&self.norm1, conv(&self.conv1, x)); // [batch, n, h, w]
        ops::batch_norm_relu(&self.norm2, conv(&self.conv2, x)) // [batch, n, h, w]
    }
}

/// conv_block(n) then 2x2 max-pool.
#[derive(Module, Debug)]
pub struct EncoderBlock {
    conv: ConvBlock,
    pool: MaxPool2d,
}

impl EncoderBlock {
    /// # Shapes
    /// - input: [batch, in_channels, h, w]
    /// - output: (pooled [batch, n, h/2, w/2], skip [batch, n, h, w])
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let skip = self.conv.forward(x); // [batch, n, h, w]
        (ops::max_pool2x2(&self.pool, skip.clone()), skip)
    }
}

/// Upsample, join the skip connection, normalise, then two convolutions.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    up: ConvTranspose2d,
    norm: BatchNorm,
    conv: ConvBlock,
}

impl DecoderBlock {
    /// # Shapes
    /// - input: [batch, 2n, h/2, w/2]; skip: [batch, n, h, w]
    /// - output: [batch, n, h, w]
    pub fn forward(&self, x: Tensor<4>, skip: Tensor<4>) -> Tensor<4> {
        let up = ops::conv_transpose2x2(&self.up, x); // [batch, n, h, w]
        let joined = Tensor::cat(vec![skip, up], 1); // [batch, 2n, h, w], skip first as in Keras
        self.conv.forward(ops::batch_norm_relu(&self.norm, joined)) // [batch, n, h, w]
    }
}

/// The whole network.
#[derive(Module, Debug)]
pub struct UNet {
    encoders: Vec<EncoderBlock>,
    center: ConvBlock,
    decoders: Vec<DecoderBlock>,
    head: Conv2d,
}

impl UNet {
    /// # Shapes
    /// - images: [batch, 3, h, w] with h and w divisible by 2^depth
    /// - output: [batch, 1, h, w] logits (apply a sigmoid for probabilities)
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = images; // [batch, 3, h, w]
        for encoder in &self.encoders {
            let (pooled, skip) = encoder.forward(x); // level l: [batch, base*2^l, h/2^(l+1), w/2^(l+1)]
            skips.push(skip);
            x = pooled;
        }
        x = self.center.forward(x); // [batch, base*2^depth, h/2^depth, w/2^depth]
        for (decoder, skip) in self.decoders.iter().zip(skips.into_iter().rev()) {
            x = decoder.forward(x, skip); // back up one level per decoder
        }
        conv(&self.head, x) // [batch, 1, h, w]
    }
}

#[cfg(test)]
mod tests {
    use crate::config::UNetConfig;
    use burn::module::Module;

    /// `UNetConfig::cost` walks the layers `init` builds: burn counts the same trainable
    /// parameters, plus BatchNorm's running mean and variance (as many as its scale and shift).
    #[test]
    fn the_counted_parameters_are_the_built_networks() {
        for (base, depth) in [(2, 1), (4, 2), (3, 3), (8, 4)] {
            let config = UNetConfig { base_filters: base, depth, ..UNetConfig::default() };
            let filters = |level: usize| base << level;
            // BatchNorm channels: two per encoder block and the centre's, and per decoder level
            // the concatenation's 2f and its block's two f.
            let norms: usize = (0..depth).map(|l| 2 * filters(l) + 4 * filters(l)).sum::<usize>() + 2 * filters(depth);
            let built = config.init(&crate::train::device::DeviceSpec::Cpu.open().unwrap(), 0).num_params();
            assert_eq!(built as u64, config.cost(64, 64).params + 2 * norms as u64, "base {base}, depth {depth}");
        }
    }
}
