//! One U-Net training step (forward, BCE + dice, backward, Adam update) and one inference
//! forward at 128x128 on the default CPU backend (or `--device vulkan`, `cuda`), median after
//! warm-up: the Rust side of `bench/compare.sh` and `bench/gpu.sh`, which run the identical
//! PyTorch model beside it. On a GPU each timed step ends with the device's queue drained
//! (`Device::sync`), as PyTorch's `loss.item()` after the update drains its stream.
//!
//! Usage: cargo bench --bench unet -- --base 32 --batch 4 [--size 128] [--depth 5] [--threads 2]
//! [--steps 8] [--warmup 2] [--device cpu|vulkan[:K]|cuda[:K]] [--burn-kernels]
//! Prints one JSON line: {"train_ms": ..., "infer_ms": ...}. `--burn-kernels` runs burn's own ops
//! instead of `train::ops`' (issue 13), for the before/after comparison (GPUs always run burn's).

#[path = "common.rs"]
mod common;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};
use sweep::config::TrainConfig;
use sweep::config::UNetConfig;
use sweep::train::device::{DeviceSpec, set_cpu_threads};
use sweep::train::metrics::bce_dice_loss;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let (base, batch, size, threads, steps) = (arg("--base", 32), arg("--batch", 4), arg("--size", 128), arg("--threads", 2), arg("--steps", 8));
    let args: Vec<String> = std::env::args().collect();
    let device = args.iter().position(|a| a == "--device").and_then(|i| args.get(i + 1)).map_or("cpu", String::as_str);
    let device: DeviceSpec = device.parse().unwrap_or_else(|e| panic!("{e}"));
    let run = |base, batch, size, threads, steps| run(&device, base, batch, size, threads, steps);
    if std::env::args().any(|a| a == "--burn-kernels") {
        sweep::train::ops::with_burn_kernels(|| run(base, batch, size, threads, steps));
    } else {
        run(base, batch, size, threads, steps);
    }
}

fn run(spec: &DeviceSpec, base: usize, batch: usize, size: usize, threads: usize, steps: usize) {
    set_cpu_threads(threads);
    let device = spec.open().unwrap_or_else(|e| panic!("{e}"));
    let warmup = arg("--warmup", 2);
    let train_device = device.clone().autodiff();
    let config = UNetConfig { base_filters: base, depth: arg("--depth", 5), ..UNetConfig::default() };
    // An option, so that the step moves the model through the optimiser as the trainer does (a
    // clone would keep the old parameters alive and force every update to copy them).
    let mut model = Some(config.init(&train_device, 0));
    let mut optim = sweep::train::optimizer(&TrainConfig::default());
    device.seed(0);
    let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &train_device);
    let y = Tensor::<4>::random([batch, 1, size, size], Distribution::Bernoulli(0.5), &train_device);
    let mut step = || {
        let current = model.take().expect("a model between steps");
        let logits = current.forward(x.clone());
        let (loss, _) = bce_dice_loss(logits, y.clone());
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        model = Some(optim.step(1e-3, current, grads));
        device.sync().expect("the device failed");
        std::hint::black_box(value);
    };
    let train = common::median(&common::time_n(warmup, steps, &mut step));
    let eval = model.expect("a model after the steps").valid();
    let xi = x.clone().without_autodiff();
    let infer = common::median(&common::time_n(warmup, steps, || {
        let v: f32 = eval.forward(xi.clone()).sum().into_scalar();
        std::hint::black_box(v);
    }));
    println!("{{\"train_ms\": {:.2}, \"infer_ms\": {:.2}, \"threads\": {threads}, \"device\": \"{spec}\"}}", common::ms(train), common::ms(infer));
}
