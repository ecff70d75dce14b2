//! One U-Net training step (forward, BCE + dice, backward, Adam update) and one inference
//! forward at 128x128 on the default CPU backend, median after warm-up: the Rust side of
//! `bench/compare.sh`, which runs the identical PyTorch model beside it.
//!
//! Usage: cargo bench --bench unet -- --base 32 --batch 4 [--size 128] [--depth 5] [--threads 2]
//! [--steps 8] [--burn-kernels]
//! Prints one JSON line: {"train_ms": ..., "infer_ms": ...}. `--burn-kernels` runs burn's own ops
//! instead of `train::ops`' (issue 13), for the before/after comparison.

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
    if std::env::args().any(|a| a == "--burn-kernels") {
        sweep::train::ops::with_burn_kernels(|| run(base, batch, size, threads, steps));
    } else {
        run(base, batch, size, threads, steps);
    }
}

fn run(base: usize, batch: usize, size: usize, threads: usize, steps: usize) {
    set_cpu_threads(threads);
    let device = DeviceSpec::Cpu.open().unwrap();
    let train_device = device.clone().autodiff();
    let config = UNetConfig { base_filters: base, depth: arg("--depth", 5), ..UNetConfig::default() };
    let mut model = config.init(&train_device, 0);
    let mut optim = sweep::train::optimizer(&TrainConfig::default());
    device.seed(0);
    let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &train_device);
    let y = Tensor::<4>::random([batch, 1, size, size], Distribution::Bernoulli(0.5), &train_device);
    let mut step = || {
        let logits = model.forward(x.clone());
        let (loss, _) = bce_dice_loss(logits, y.clone());
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model.clone(), grads);
        std::hint::black_box(value);
    };
    let train = common::median(&common::time_n(2, steps, &mut step));
    let eval = model.valid();
    let xi = x.clone().without_autodiff();
    let infer = common::median(&common::time_n(2, steps, || {
        let v: f32 = eval.forward(xi.clone()).sum().into_scalar();
        std::hint::black_box(v);
    }));
    println!("{{\"train_ms\": {:.1}, \"infer_ms\": {:.1}, \"threads\": {threads}}}", common::ms(train), common::ms(infer));
}
