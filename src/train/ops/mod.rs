//! Our own CPU kernels, registered for burn's `flex` backend through its backend extension.
//!
//! The model calls [`conv2d`] for every convolution. On a flex device (with or without
//! autodiff) it runs [`ConvBackend::conv2d_with_bias`]: the forward from [`conv`] on planes of
//! 64x64 pixels or more and flex's on smaller ones, flex's input gradient, and the weight and
//! bias gradients from [`conv`] (im2col + GEMM; see there for why). Every other
//! device (vulkan, cuda) keeps burn's `conv2d`, so the model code is one path for all backends:
//! an extension op called on a backend it was not registered for would panic, hence the routing
//! here and nowhere else. [`with_burn_kernels`] runs a closure on burn's ops alone, for the tests
//! and benchmarks that compare the two.

pub mod conv;

use std::cell::Cell;

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, DispatchDevice, Flex, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData};

use conv::ConvGeometry;

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

/// Output planes of at least this many pixels take our forward; smaller ones flex's, whose
/// layout suits many channels over few pixels better (`cargo bench --bench conv`).
const OWN_FORWARD_MIN_PIXELS: usize = 64 * 64;

/// The forward: ours (im2col + GEMM straight into the NCHW output) on large planes, flex's on
/// small ones.
fn forward(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
    let [batch, _, h, w] = x.shape().dims();
    let [channels_out, _, kh, kw] = weight.shape().dims();
    let out = |size: usize, k: usize, axis: usize| {
        let (begin, end) = options.padding[axis];
        (size + begin + end - options.dilation[axis] * (k - 1) - 1) / options.stride[axis] + 1
    };
    let output = [out(h, kh, 0), out(w, kw, 1)];
    if output[0] * output[1] < OWN_FORWARD_MIN_PIXELS {
        return Flex::conv2d(x, weight, Some(bias), options);
    }
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
            grads.register::<Flex>(node.id, Flex::conv2d_x_backward(x, weight, output_grad, options));
        }
    }
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
