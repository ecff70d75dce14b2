//! Our own CPU kernels, registered for burn's `flex` backend through its backend extension.
//!
//! The model calls [`conv2d`] for every convolution and [`batch_norm_relu`] for every batch
//! normalisation (each is followed by a ReLU). On a flex device (with or without
//! autodiff) it runs [`ConvBackend::conv2d_with_bias`]: the forward and every gradient from
//! [`conv`] (im2col + GEMM; see there for why); and [`NormBackend`] runs batch
//! norm and ReLU as one op, forward and backward ([`norm`]); [`conv_transpose2x2`] and
//! [`max_pool2x2`] take the decoder's upsampling and the encoder's pooling ([`upconv`], [`pool`]);
//! [`adam::FusedAdam`] is Adam's update in one parallel pass (burn's Adam off flex).
//! Every other device (vulkan, cuda) keeps burn's ops, so the model code is one path for all
//! backends:
//! an extension op called on a backend it was not registered for would panic, hence the routing
//! here and nowhere else. [`with_burn_kernels`] runs a closure on burn's ops alone, for the tests
//! and benchmarks that compare the two.

pub mod adam;
mod buffers;
pub mod conv;
mod geometry;
pub mod isa;
mod matmul;
pub mod norm;
pub mod pool;
pub mod upconv;
mod winograd;

use std::cell::Cell;

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::nn::BatchNorm;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};

use conv::ConvGeometry;
use norm::NormGeometry;

thread_local! {
    static BURN_KERNELS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with burn's own ops on every device (on this thread), then restores the routing.
pub fn with_burn_kernels<T>(f: impl FnOnce() -> T) -> T {
    let before = BURN_KERNELS.replace(true);
    let result = f();
    BURN_KERNELS.set(before);
    result
}

/// Whether [`conv2d`] takes our kernels for tensors on `device`: flex only (f32, groups = 1,
/// with a bias: the convolutions of the U-Net).
pub fn uses_own_kernels(device: &Device) -> bool {
    !BURN_KERNELS.get() && matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// A 2-D convolution, as `burn::tensor::module::conv2d`.
///
/// # Shapes
/// - x: [batch, channels_in, h, w]; weight: [channels_out, channels_in, kh, kw]; bias: [channels_out]
/// - output: [batch, channels_out, oh, ow]
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    match bias {
        Some(bias) if options.groups == 1 && x.dtype() == DType::F32 && uses_own_kernels(&x.device()) => Tensor::from_dispatch(
            <Dispatch as ConvBackend>::conv2d_with_bias(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch(), options),
        ),
        bias => burn::tensor::module::conv2d(x, weight, bias, options),
    }
}

/// The convolution as a backend extension: registered for flex, plain and under autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// A 2-D convolution with a bias (groups = 1).
    fn conv2d_with_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self>;
}

/// Inference: the forward alone.
impl ConvBackend for Flex {
    fn conv2d_with_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        forward(x, weight, bias, options)
    }
}

/// The forward: im2col + GEMM straight into the NCHW output (measured faster than flex's at
/// every layer shape of the U-Net, 1 and 2 threads: `cargo bench --bench conv`).
fn forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let [batch, _, h, w] = x.shape().dims();
    let [channels_out, _, kh, kw] = weight.shape().dims();
    let out = |size: usize, k: usize, axis: usize| {
        let (begin, end) = options.padding[axis];
        (size + begin + end - options.dilation[axis] * (k - 1) - 1) / options.stride[axis] + 1
    };
    let output = [out(h, kh, 0), out(w, kw, 1)];
    let g = geometry_of(&x, &weight, &options, output);
    let (x, weight, bias) = (x.to_contiguous(), weight.to_contiguous(), bias.to_contiguous());
    let y = conv::forward(f32s(&x), f32s(&weight), f32s(&bias), &g);
    FlexTensor::from_data(TensorData::new(y, [batch, channels_out, output[0], output[1]]))
}

/// Training: the same forward, with our backward for the weight and the bias.
impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn conv2d_with_bias(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        match ConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let output = forward(x.clone(), weight.clone(), bias.into_primitive(), options.clone());
                prep.finish(ConvState { x, weight, options }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options)),
        }
    }
}

/// The backward of [`ConvBackend::conv2d_with_bias`] on flex.
#[derive(Debug)]
struct ConvBackward;

/// What the backward keeps of the forward: its inputs (shared, not copied).
#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    options: ConvOptions<2>,
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node);
        let ConvState { x, weight, options } = ops.state;
        if let Some(node) = node_weight {
            grads.register::<Flex>(node.id, weight_grad(&x, &weight, &output_grad, &options));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, bias_grad(&x, &weight, &output_grad, &options));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, input_grad(x, weight, output_grad, options));
        }
    }
}

/// The input gradient, `[batch, channels_in, h, w]`: ours ([`conv::input_grad`]) with stride and
/// dilation 1 (every convolution of the U-Net), flex's (a transposed convolution) otherwise.
fn input_grad(x: FlexTensor, weight: FlexTensor, output_grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let [batch, channels_in, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    let [pad_h, pad_w] = options.padding_begin();
    let plain = options.stride == [1, 1] && options.dilation == [1, 1] && pad_h < kh && pad_w < kw;
    if !plain {
        return Flex::conv2d_x_backward(x, weight, output_grad, options);
    }
    let g = geometry(&x, &weight, &output_grad, &options);
    let (weight, dy) = (weight.to_contiguous(), output_grad.to_contiguous());
    let dx = conv::input_grad(f32s(&dy), f32s(&weight), &g);
    FlexTensor::from_data(TensorData::new(dx, [batch, channels_in, h, w]))
}

/// The weight gradient, `[channels_out, channels_in, kh, kw]`.
fn weight_grad(x: &FlexTensor, weight: &FlexTensor, output_grad: &FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let g = geometry(x, weight, output_grad, options);
    let (x, dy) = (x.to_contiguous(), output_grad.to_contiguous());
    FlexTensor::from_data(TensorData::new(conv::weight_grad(f32s(&x), f32s(&dy), &g), weight.shape()))
}

/// The bias gradient, `[channels_out]`: the output gradient summed per channel.
fn bias_grad(x: &FlexTensor, weight: &FlexTensor, output_grad: &FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
    let g = geometry(x, weight, output_grad, options);
    let dy = output_grad.to_contiguous();
    FlexTensor::from_data(TensorData::new(conv::bias_grad(f32s(&dy), &g), [g.channels_out]))
}

fn geometry(x: &FlexTensor, weight: &FlexTensor, output_grad: &FlexTensor, options: &ConvOptions<2>) -> ConvGeometry {
    let [_, _, oh, ow] = output_grad.shape().dims();
    geometry_of(x, weight, options, [oh, ow])
}

fn geometry_of(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>, [oh, ow]: [usize; 2]) -> ConvGeometry {
    let [batch, channels_in, h, w] = x.shape().dims();
    let [channels_out, _, kh, kw] = weight.shape().dims();
    ConvGeometry {
        batch,
        channels_in,
        channels_out,
        input: [h, w],
        output: [oh, ow],
        kernel: [kh, kw],
        stride: options.stride,
        padding: options.padding_begin(),
        dilation: options.dilation,
    }
}

fn f32s(tensor: &FlexTensor) -> &[f32] {
    tensor.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// The U-Net's 2x2 max-pool with stride 2 (`pool`, as the model holds it): on flex ours
/// ([`PoolBackend`]: one pass, the winners kept as a byte an output for the backward), burn's
/// `MaxPool2d` elsewhere and for any other pool.
///
/// # Shapes
/// - x: [batch, channels, h, w]
/// - output: [batch, channels, h / 2, w / 2]
pub fn max_pool2x2(pool: &burn::nn::pool::MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let plain = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && matches!(pool.padding, burn::nn::PaddingConfig2d::Valid);
    if plain && x.dtype() == DType::F32 && uses_own_kernels(&x.device()) {
        return Tensor::from_dispatch(<Dispatch as PoolBackend>::max_pool2x2(x.into_dispatch()));
    }
    pool.forward(x)
}

/// The 2x2 max-pool as a backend extension: registered for flex, plain and under autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait PoolBackend: Backend {
    /// A 2x2 max-pool with stride 2, no padding, floor mode.
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl PoolBackend for Flex {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        pool_forward(&x.to_contiguous()).0
    }
}

/// The forward on a contiguous tensor: the output and each output's winner.
fn pool_forward(x: &FlexTensor) -> (FlexTensor, Vec<u8>) {
    let g = pool_geometry(x);
    let [batch, channels, _, _] = x.shape().dims();
    let [oh, ow] = g.output();
    let (y, winners) = pool::forward(f32s(x), &g);
    (FlexTensor::from_data(TensorData::new(y, [batch, channels, oh, ow])), winners)
}

fn pool_geometry(x: &FlexTensor) -> pool::PoolGeometry {
    let [batch, channels, h, w] = x.shape().dims();
    pool::PoolGeometry { planes: batch * channels, input: [h, w] }
}

impl<C: CheckpointStrategy> PoolBackend for Autodiff<Flex, C> {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match PoolBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive().to_contiguous();
                let (output, winners) = pool_forward(&x);
                prep.finish(PoolState { geometry: pool_geometry(&x), shape: x.shape().dims(), winners }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::max_pool2x2(x.into_primitive())),
        }
    }
}

/// The backward of [`PoolBackend::max_pool2x2`] on flex.
#[derive(Debug)]
struct PoolBackward;

/// What the backward keeps of the forward: the input's shape and each output's winner (a byte
/// an output, not the input).
#[derive(Debug, Clone)]
struct PoolState {
    geometry: pool::PoolGeometry,
    shape: [usize; 4],
    winners: Vec<u8>,
}

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let PoolState { geometry, shape, winners } = ops.state;
        if let Some(node) = node_x {
            let dx = pool::backward(f32s(&output_grad), &winners, &geometry);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, shape)));
        }
    }
}

/// The decoder's upsampling, `up.forward(x)`: on flex ours ([`UpBackend`]: a 2x2, stride-2
/// transposed convolution as one matrix product a sample, and so its gradients), burn's
/// `ConvTranspose2d` elsewhere and for any other kernel, stride, padding or group count.
///
/// # Shapes
/// - x: [batch, channels_in, h, w]
/// - output: [batch, channels_out, 2h, 2w]
pub fn conv_transpose2x2(up: &burn::nn::conv::ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let plain = up.kernel_size == [2, 2]
        && up.stride == [2, 2]
        && up.dilation == [1, 1]
        && up.groups == 1
        && up.padding == [0, 0]
        && up.padding_out == [0, 0];
    match &up.bias {
        Some(bias) if plain && x.dtype() == DType::F32 && uses_own_kernels(&x.device()) => Tensor::from_dispatch(
            <Dispatch as UpBackend>::conv_transpose2x2(x.into_dispatch(), up.weight.val().into_dispatch(), bias.val().into_dispatch()),
        ),
        _ => up.forward(x),
    }
}

/// The 2x2 stride-2 transposed convolution as a backend extension: registered for flex, plain and
/// under autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait UpBackend: Backend {
    /// `x` `[batch, channels_in, h, w]`, `weight` `[channels_in, channels_out, 2, 2]`, `bias`
    /// `[channels_out]`.
    fn conv_transpose2x2(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl UpBackend for Flex {
    fn conv_transpose2x2(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        up_forward(&x.to_contiguous(), &weight.to_contiguous(), &bias.to_contiguous())
    }
}

fn up_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let g = up_geometry(x, weight);
    let [h, w] = g.input;
    let y = upconv::forward(f32s(x), f32s(weight), f32s(bias), &g);
    FlexTensor::from_data(TensorData::new(y, [g.batch, g.channels_out, 2 * h, 2 * w]))
}

fn up_geometry(x: &FlexTensor, weight: &FlexTensor) -> upconv::UpGeometry {
    let [batch, channels_in, h, w] = x.shape().dims();
    let [_, channels_out, _, _] = weight.shape().dims();
    upconv::UpGeometry { batch, channels_in, channels_out, input: [h, w] }
}

impl<C: CheckpointStrategy> UpBackend for Autodiff<Flex, C> {
    fn conv_transpose2x2(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        match UpBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive().to_contiguous(), weight.into_primitive().to_contiguous());
                let output = up_forward(&x, &weight, &bias.into_primitive().to_contiguous());
                prep.finish(UpState { x, weight }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv_transpose2x2(x.into_primitive(), weight.into_primitive(), bias.into_primitive())),
        }
    }
}

/// The backward of [`UpBackend::conv_transpose2x2`] on flex.
#[derive(Debug)]
struct UpBackward;

/// What the backward keeps of the forward: its inputs, contiguous (shared, not copied).
#[derive(Debug, Clone)]
struct UpState {
    x: FlexTensor,
    weight: FlexTensor,
}

impl Backward<Flex, 3> for UpBackward {
    type State = UpState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let UpState { x, weight } = ops.state;
        let g = up_geometry(&x, &weight);
        if let Some(node) = node_weight {
            let dw = upconv::weight_grad(f32s(&x), f32s(&dy), &g);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dw, weight.shape())));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(upconv::bias_grad(f32s(&dy), &g), [g.channels_out])));
        }
        if let Some(node) = node_x {
            let dx = upconv::input_grad(f32s(&dy), f32s(&weight), &g);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, x.shape())));
        }
    }
}

/// `relu(layer.forward(x))`: on flex one fused op ([`NormBackend`]), which in training also
/// updates the layer's running statistics exactly as burn's `BatchNorm::forward` does; burn's
/// `BatchNorm` and `relu` elsewhere.
///
/// # Shapes
/// - x: [batch, channels, h, w]; output: the same
pub fn batch_norm_relu(layer: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if x.dtype() != DType::F32 || !uses_own_kernels(&device) {
        return burn::tensor::activation::relu(layer.forward(x));
    }
    if !(device.is_autodiff() && layer.training.is_enabled()) {
        let (mean, var) = (layer.running_mean.value().to_device(&device), layer.running_var.value().to_device(&device));
        return Tensor::from_dispatch(<Dispatch as NormBackend>::batch_norm_relu(
            x.into_dispatch(),
            layer.gamma.val().into_dispatch(),
            layer.beta.val().into_dispatch(),
            mean.into_dispatch(),
            var.into_dispatch(),
            layer.epsilon,
        ));
    }
    let (output, mean, var) = <Dispatch as NormBackend>::batch_norm_relu_train(
        x.into_dispatch(),
        layer.gamma.val().into_dispatch(),
        layer.beta.val().into_dispatch(),
        layer.epsilon,
    );
    let momentum = layer.momentum;
    for (state, batch) in [(&layer.running_mean, mean), (&layer.running_var, var)] {
        let batch = Tensor::<1>::from_dispatch(batch).detach();
        let running = state.value_sync().to_device(&device).mul_scalar(1.0 - momentum).add(batch.mul_scalar(momentum));
        state.update(running.detach());
    }
    Tensor::from_dispatch(output)
}

/// Batch norm followed by ReLU as one op: registered for flex, plain and under autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait NormBackend: Backend {
    /// Training: normalised with the batch's own statistics; returns the output and the batch
    /// mean and biased variance per channel (for the running statistics).
    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Inference: normalised with the given (running) statistics.
    fn batch_norm_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

impl NormBackend for Flex {
    fn batch_norm_relu_train(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (output, mean, var, _) = norm_train(&x.to_contiguous(), &gamma.to_contiguous(), &beta.to_contiguous(), epsilon);
        (output, mean, var)
    }

    fn batch_norm_relu(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, mean: FlexTensor, variance: FlexTensor, epsilon: f64) -> FlexTensor {
        let [x, gamma, beta, mean, variance] = [x, gamma, beta, mean, variance].map(|t| t.to_contiguous());
        let g = norm_geometry(&x);
        let inv_std = norm::inverse_std(f32s(&variance), epsilon);
        FlexTensor::from_data(TensorData::new(norm::normalize_relu(f32s(&x), f32s(&mean), &inv_std, f32s(&gamma), f32s(&beta), &g), x.shape()))
    }
}

impl<C: CheckpointStrategy> NormBackend for Autodiff<Flex, C> {
    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match NormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = (x.into_primitive().to_contiguous(), gamma.into_primitive().to_contiguous());
                let (output, mean, var, inv_std) = norm_train(&x, &gamma, &beta.into_primitive().to_contiguous(), epsilon);
                let state = NormState { x, output: output.clone(), gamma, mean: mean.clone(), inv_std };
                (prep.finish(state, output), Self::from_inner(mean), Self::from_inner(var))
            }
            OpsKind::UnTracked(prep) => {
                let (output, mean, var) = Flex::batch_norm_relu_train(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
                (prep.finish(output), Self::from_inner(mean), Self::from_inner(var))
            }
        }
    }

    /// Inference is never tracked ([`batch_norm_relu`] takes it only off autodiff or with the
    /// layer in eval mode); here for a caller that would, through burn's ops, which track it.
    fn batch_norm_relu(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::relu(Self::batch_norm(x, gamma, beta, mean, variance, epsilon))
    }
}

/// The backward of [`NormBackend::batch_norm_relu_train`] on flex.
#[derive(Debug)]
struct NormBackward;

/// What the backward keeps of the forward: its input and output (shared, not copied), gamma, and
/// the batch statistics.
#[derive(Debug, Clone)]
struct NormState {
    x: FlexTensor,
    output: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    inv_std: Vec<f32>,
}

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let output_grad = grads.consume::<Flex>(&ops.node).to_contiguous();
        let NormState { x, output, gamma, mean, inv_std } = ops.state;
        let g = norm_geometry(&x);
        let result = norm::backward(f32s(&x), f32s(&output), f32s(&output_grad), f32s(&gamma), f32s(&mean), &inv_std, &g);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(result.x, x.shape())));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, per_channel(result.gamma));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, per_channel(result.beta));
        }
    }
}

/// The training forward on contiguous tensors: the output, the batch mean and biased variance
/// per channel, and `1 / sqrt(variance + epsilon)` (which the backward needs too).
fn norm_train(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, epsilon: f64) -> (FlexTensor, FlexTensor, FlexTensor, Vec<f32>) {
    let g = norm_geometry(x);
    let (mean, var) = norm::statistics(f32s(x), &g);
    let inv_std = norm::inverse_std(&var, epsilon);
    let output = norm::normalize_relu(f32s(x), &mean, &inv_std, f32s(gamma), f32s(beta), &g);
    (FlexTensor::from_data(TensorData::new(output, x.shape())), per_channel(mean), per_channel(var), inv_std)
}

fn norm_geometry(x: &FlexTensor) -> NormGeometry {
    let dims = x.shape().dims::<4>();
    NormGeometry { batch: dims[0], channels: dims[1], pixels: dims[2] * dims[3] }
}

fn per_channel(values: Vec<f32>) -> FlexTensor {
    let channels = values.len();
    FlexTensor::from_data(TensorData::new(values, [channels]))
}
