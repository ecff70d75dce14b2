//! Adam's update as one parallel pass on the CPU.
//!
//! burn's Adam is a dozen element-wise tensor ops a parameter (each a pass over memory into a new
//! tensor), and flex runs them on one thread: at 128x128, base 32, the update was a tenth of a
//! two-thread training step, all of it with the second core idle. [`FusedAdam`] computes the
//! same arithmetic, operation for operation in f32 and in the same order (so the same bits as
//! burn's), in one pass over each parameter split across the threads. Its state is burn's own
//! [`AdamState`], so checkpoints hold the same optimizer record either way; tensors on any other
//! device (vulkan, cuda) or of another precision take burn's [`Adam`] itself.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use super::uses_own_kernels;

/// Elements a unit of work updates: large parameters split across the threads, small ones stay
/// one unit (a 3x3 kernel of 512 x 512 channels is 2.4 million).
const CHUNK: usize = 1 << 15;

/// Adam (with L2 weight decay, as burn's `AdamConfig`), fused on flex.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: Option<f32>,
    burns: Adam,
}

impl FusedAdam {
    /// The optimiser burn's `AdamConfig::new().with_beta_1(beta_1).with_beta_2(beta_2)
    /// .with_epsilon(epsilon).with_weight_decay(weight_decay)` builds.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: Option<f32>) -> FusedAdam {
        let config = AdamConfig::new()
            .with_beta_1(beta_1)
            .with_beta_2(beta_2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new));
        FusedAdam { beta_1, beta_2, epsilon, weight_decay, burns: config.build() }
    }

    /// [`FusedAdam::new`], wrapped for a module.
    pub fn init(beta_1: f32, beta_2: f32, epsilon: f32, weight_decay: Option<f32>) -> ModuleOptimizer {
        ModuleOptimizer::from(FusedAdam::new(beta_1, beta_2, epsilon, weight_decay))
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let fused = uses_own_kernels(&tensor.device())
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && state.as_ref().is_none_or(|s| s.momentum.max_moment_2.is_none());
        if !fused {
            return self.burns.step(lr, tensor, grad, state);
        }
        let (device, shape) = (tensor.device(), tensor.shape());
        let mut param = values(tensor);
        let grad = values(grad);
        let (time, mut moment_1, mut moment_2) = match state {
            Some(state) => (state.momentum.time + 1, values(state.momentum.moment_1), values(state.momentum.moment_2)),
            None => (1, vec![0.0; param.len()], vec![0.0; param.len()]),
        };
        let step = Step::new(self, lr, time);
        param.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK)).zip(moment_1.par_chunks_mut(CHUNK)).zip(moment_2.par_chunks_mut(CHUNK)).for_each(
            |(((param, grad), moment_1), moment_2)| match (step.first, step.weight_decay) {
                (true, None) => step.apply::<true, false>(param, grad, moment_1, moment_2),
                (true, Some(_)) => step.apply::<true, true>(param, grad, moment_1, moment_2),
                (false, None) => step.apply::<false, false>(param, grad, moment_1, moment_2),
                (false, Some(_)) => step.apply::<false, true>(param, grad, moment_1, moment_2),
            },
        );
        let tensor = |values: Vec<f32>| Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &device);
        let momentum = AdaptiveMomentumState::new(time, tensor(moment_1), tensor(moment_2));
        (tensor(param), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// A tensor's values (moved out where flex holds them alone, copied otherwise).
fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec::<f32>().expect("an f32 tensor")
}

/// The constants of one update, as burn computes them.
struct Step {
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta`, each.
    keep_1: f32,
    keep_2: f32,
    first: bool,
    weight_decay: Option<f32>,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    combined: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`.
    epsilon: f32,
    lr: f32,
}

impl Step {
    fn new(adam: &FusedAdam, lr: LearningRate, time: usize) -> Step {
        let t = time as i32;
        let correction_2 = (1.0 - adam.beta_2.powi(t)).sqrt();
        Step {
            beta_1: adam.beta_1,
            beta_2: adam.beta_2,
            keep_1: 1.0 - adam.beta_1,
            keep_2: 1.0 - adam.beta_2,
            first: time == 1,
            weight_decay: adam.weight_decay,
            combined: correction_2 / (1.0 - adam.beta_1.powi(t)),
            epsilon: adam.epsilon * correction_2,
            lr: lr as f32,
        }
    }

    /// A run of elements: burn's `WeightDecay::transform`, `AdaptiveMomentum::transform` and
    /// `tensor - grad * lr`, each rounding where burn's ops round. The variant is chosen outside
    /// the loop, so the loop has no branch and is vectorised.
    #[inline(always)]
    fn apply<const FIRST: bool, const DECAY: bool>(&self, param: &mut [f32], grad: &[f32], moment_1: &mut [f32], moment_2: &mut [f32]) {
        let penalty = self.weight_decay.unwrap_or(0.0);
        for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(moment_1).zip(moment_2) {
            let g = if DECAY { *p * penalty + g } else { g };
            if FIRST {
                *m = g * self.keep_1;
                *v = (g * g) * self.keep_2;
            } else {
                *m = *m * self.beta_1 + g * self.keep_1;
                *v = *v * self.beta_2 + (g * g) * self.keep_2;
            }
            let update = (*m * self.combined) / (v.sqrt() + self.epsilon);
            *p -= update * self.lr;
        }
    }
}
