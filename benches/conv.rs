//! The convolution kernels of `train::ops::conv` against flex's, one op at a time, at the
//! U-Net's layer shapes (3x3, `Same` padding): the forward, the weight gradient and the input
//! gradient (ours: our forward over the flipped kernel), median of 10 after warm-up. What pays
//! is wired into `train::ops`; the rest is recorded in BENCHMARKS.md (issue 13).
//!
//! Usage: cargo bench --bench conv [-- --threads 2] [--size 128] [--ours]   (--size: only the layers
//! of that plane size; --ours: skip flex, its cells read `-`)

#[path = "common.rs"]
mod common;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::tensor::TensorData;
use burn::tensor::ops::ConvOptions;
use sweep::train::device::set_cpu_threads;
use sweep::train::ops::conv::{self, ConvGeometry};

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
}

fn flex(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn time(f: impl FnMut()) -> f64 {
    common::ms(common::median(&common::time_n(2, 10, f)))
}

fn main() {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1).and_then(|v| v.parse::<usize>().ok());
    let threads = arg("--threads").unwrap_or(2);
    let only_size = arg("--size");
    let ours_only = std::env::args().any(|a| a == "--ours");
    set_cpu_threads(threads);
    common::header(&format!("3x3 convolution kernels, ours against flex's, {threads} threads"));
    println!("| batch | in -> out | size | forward flex | forward ours | weight grad flex | weight grad ours | input grad flex | input grad ours |");
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (batch, ci, co, size) in [
        (4, 3, 16, 128),
        (4, 16, 16, 128),
        (8, 16, 16, 128),
        (4, 32, 32, 64),
        (8, 64, 64, 32),
        (8, 128, 128, 32),
        (8, 256, 256, 16),
        (4, 256, 256, 8),
        (8, 8, 8, 64),
        (8, 16, 16, 32),
        (8, 32, 32, 16),
        (8, 64, 128, 8),
        (8, 3, 8, 64),
        (8, 16, 8, 64),
        (8, 32, 16, 32),
        (8, 16, 16, 16),
    ]
    .into_iter()
    .filter(|&(_, _, _, size)| only_size.is_none_or(|only| only == size))
    {
        let g = ConvGeometry {
            batch,
            channels_in: ci,
            channels_out: co,
            input: [size, size],
            output: [size, size],
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let (x, w, b) = (values(batch * ci * size * size, 1), values(co * ci * 9, 2), values(co, 3));
        let dy = values(batch * co * size * size, 4);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let (xt, wt, bt, dyt) = (
            flex(x.clone(), [batch, ci, size, size]),
            flex(w.clone(), [co, ci, 3, 3]),
            FlexTensor::from_data(TensorData::new(b.clone(), [co])),
            flex(dy.clone(), [batch, co, size, size]),
        );
        let flex_time = |f: &mut dyn FnMut()| if ours_only { "-".to_string() } else { format!("{:.2} ms", time(f)) };
        let fwd_flex = flex_time(&mut || drop(Flex::conv2d(xt.clone(), wt.clone(), Some(bt.clone()), options.clone())));
        let fwd_ours = time(|| drop(conv::forward(&x, &w, &b, &g)));
        let wg_flex = flex_time(&mut || drop(Flex::conv2d_weight_backward(xt.clone(), wt.clone(), dyt.clone(), options.clone())));
        let wg_ours = time(|| drop(conv::weight_grad(&x, &dy, &g)));
        let xg_flex = flex_time(&mut || drop(Flex::conv2d_x_backward(xt.clone(), wt.clone(), dyt.clone(), options.clone())));
        let xg_ours = time(|| drop(conv::input_grad(&dy, &w, &g)));
        println!("| {batch} | {ci} -> {co} | {size} | {fwd_flex} | {fwd_ours:.2} ms | {wg_flex} | {wg_ours:.2} ms | {xg_flex} | {xg_ours:.2} ms |");
    }
}
