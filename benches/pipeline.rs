//! Data pipeline throughput: augment + batch at 128x128 (images/s), and the cost of decoding one
//! Carvana-sized (1918x1280) JPEG with its GIF mask and resizing it to 128x128.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use sweep::config::{Augment, SynthSpec};
use sweep::data::synth;
use sweep::data::{self, Loader};

fn main() {
    common::header("data pipeline");
    let dir = tempfile::tempdir().unwrap();

    // A Carvana-sized image and mask, generated once.
    let big = dir.path().join("big");
    synth::write(&SynthSpec { count: 4, width: 1918, height: 1280, seed: 1 }, &big).unwrap();
    let files = data::scan(&big).unwrap();
    let jpeg_bytes = std::fs::metadata(&files[0].image).unwrap().len();
    let decode = common::time_n(1, 8, || {
        std::hint::black_box(data::decode_image(&files[0].image).unwrap());
    });
    let mask = common::time_n(1, 8, || {
        std::hint::black_box(data::decode_mask(&files[0].mask).unwrap());
    });
    let whole = common::time_n(1, 8, || {
        std::hint::black_box(data::load_sample(&files[0], Some((128, 128))).unwrap());
    });
    println!("\n| step (one 1918x1280 image, {} KB JPEG) | median ms |", jpeg_bytes / 1024);
    println!("|---|--:|");
    println!("| decode JPEG | {:.1} |", common::ms(common::median(&decode)));
    println!("| decode palette GIF mask | {:.1} |", common::ms(common::median(&mask)));
    println!("| decode both + check + resize to 128x128 | {:.1} |", common::ms(common::median(&whole)));

    // Augment + batch at 128x128 from decoded samples in memory, as training sees it.
    let small = dir.path().join("small");
    synth::write(&SynthSpec { count: 256, width: 240, height: 160, seed: 2 }, &small).unwrap();
    let samples = Arc::new(data::load(&data::scan(&small).unwrap(), Some((128, 128))).unwrap());
    println!("\n| augment + batch, 128x128, batch 8, 256 images per epoch | images/s |");
    println!("|---|--:|");
    for (name, augment) in [
        ("tutorial augmentation (hue 0.1, flip, shifts 0.1), one thread", Augment::default()),
        ("no augmentation (validation path), one thread", Augment::identity(1.0 / 255.0)),
    ] {
        let loader = Loader::train(samples.clone(), (0..256).collect(), 8, augment, 7);
        let order = loader.order(0);
        let runs = common::time_n(1, 5, || {
            for b in 0..loader.batches_per_epoch() {
                std::hint::black_box(loader.make_batch(0, &order, b));
            }
        });
        println!("| {name} | {:.0} |", 256.0 / common::median(&runs).as_secs_f64());
    }
    let loader = Loader::train(samples, (0..256).collect(), 8, Augment::default(), 7);
    let started = Instant::now();
    let mut n = 0;
    for epoch in 0..5 {
        n += loader.epoch(epoch).map(|b| b.len).sum::<usize>();
    }
    println!("| tutorial augmentation through the prefetch thread | {:.0} |", n as f64 / started.elapsed().as_secs_f64());
}
