//! The data pipeline: the Carvana-layout loader, every augmentation, the split, the synthetic
//! set, batching, and every bad input the issue lists.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use image::{GrayImage, Rgb, RgbImage, Rgba, RgbaImage};
use predicates::str::contains;
use sweep::config::SplitBy;
use sweep::config::{Augment, SynthSpec};
use sweep::data::augment::{Draw, rgb_to_hsv};
use sweep::data::synth;
use sweep::data::{self, DataError, Loader};

#[test]
fn loader_reads_the_carvana_layout_with_palette_gif_masks() {
    let dir = tempfile::tempdir().unwrap();
    let written = common::write_carvana(dir.path(), 5, 60, 40);
    let files = data::scan(dir.path()).unwrap();
    assert_eq!(files.len(), 5);
    assert!(files.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");
    assert!(files[0].mask.ends_with("train_masks/car000_01_mask.gif"));
    let samples = data::load(&files, None).unwrap();
    for (sample, (img, mask)) in samples.iter().zip(&written) {
        assert_eq!(sample.original_size, (60, 40), "non-square sizes are kept");
        assert_eq!(sample.mask.as_raw(), mask.as_raw(), "GIF palette indices 0/1 are the mask");
        assert_eq!(sample.image.dimensions(), img.dimensions());
    }
}

#[test]
fn png_masks_with_0_255_values_and_gray_or_rgba_images_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    std::fs::create_dir_all(dir.path().join("train_masks")).unwrap();
    let mask255 = GrayImage::from_fn(20, 10, |x, _| image::Luma([if x < 5 { 255 } else { 0 }]));
    let gray = image::GrayImage::from_fn(20, 10, |x, y| image::Luma([(x * 10 + y) as u8]));
    gray.save(dir.path().join("train/a.png")).unwrap();
    mask255.save(dir.path().join("train_masks/a_mask.png")).unwrap();
    let rgba = RgbaImage::from_fn(20, 10, |x, _| Rgba([x as u8 * 9, 5, 7, 128]));
    rgba.save(dir.path().join("train/b.png")).unwrap();
    let mask01 = GrayImage::from_fn(20, 10, |_, y| image::Luma([u8::from(y > 6)]));
    mask01.save(dir.path().join("train_masks/b_mask.png")).unwrap();

    let samples = data::load(&data::scan(dir.path()).unwrap(), None).unwrap();
    assert_eq!(samples[0].image.get_pixel(3, 2), &Rgb([32, 32, 32]), "grayscale becomes RGB");
    assert_eq!(samples[1].image.get_pixel(2, 0), &Rgb([18, 5, 7]), "alpha is dropped");
    assert_eq!(samples[0].mask.get_pixel(4, 0)[0], 1, "255 is foreground");
    assert_eq!(samples[0].mask.get_pixel(5, 0)[0], 0);
    assert_eq!(samples[1].mask.get_pixel(0, 7)[0], 1, "1 is foreground");
    assert!((samples[0].foreground_fraction() - 0.25).abs() < 1e-9);
}

#[test]
fn resizing_keeps_masks_binary_and_aligned() {
    let mask = GrayImage::from_fn(100, 60, |x, _| image::Luma([u8::from(x >= 50)]));
    let small = data::resize_mask(&mask, 20, 12);
    assert_eq!(small.dimensions(), (20, 12));
    assert!(small.iter().all(|&v| v <= 1));
    for y in 0..12 {
        for x in 0..20 {
            assert_eq!(small.get_pixel(x, y)[0], u8::from(x >= 10), "boundary stays at the middle");
        }
    }
}

#[test]
fn split_is_deterministic_disjoint_and_stable() {
    let ids: Vec<String> = (0..100).map(|i| format!("img{i}")).collect();
    let (train, val) = data::split(&ids, 0.2, 42, SplitBy::Image);
    assert_eq!((train.len(), val.len()), (80, 20));
    let t: HashSet<_> = train.iter().collect();
    assert!(val.iter().all(|v| !t.contains(v)), "disjoint");
    assert_eq!(t.len() + val.len(), 100, "every image is in one split");
    assert_eq!(data::split(&ids, 0.2, 42, SplitBy::Image), (train.clone(), val.clone()), "same seed, same split");
    assert_ne!(data::split(&ids, 0.2, 43, SplitBy::Image).1, val, "another seed, another split");
    // Adding images moves few of the existing ones.
    let mut more = ids.clone();
    more.extend((100..110).map(|i| format!("img{i}")));
    let (_, val2) = data::split(&more, 0.2, 42, SplitBy::Image);
    let val_ids: HashSet<&String> = val.iter().map(|&i| &ids[i]).collect();
    let kept = val2.iter().filter(|&&i| val_ids.contains(&more[i])).count();
    assert!(kept >= 17, "only {kept} of 20 validation images stayed");
    // By image, validation is exactly the images with the lowest seeded hashes.
    let mut ranked: Vec<(u64, usize)> = ids.iter().enumerate().map(|(i, id)| (sweep::util::hash64(format!("42\0{id}").as_bytes()), i)).collect();
    ranked.sort_unstable();
    let mut lowest: Vec<usize> = ranked[..20].iter().map(|&(_, i)| i).collect();
    lowest.sort_unstable();
    assert_eq!(val, lowest);
}

#[test]
fn split_by_car_keeps_every_view_of_a_car_on_one_side() {
    // Carvana's ids: <car>_<view>, 16 views per car; 25 cars.
    let ids: Vec<String> = (0..25).flat_map(|car| (1..=16).map(move |view| format!("{car:012x}_{view:02}"))).collect();
    let car_of = |i: usize| ids[i].split('_').next().unwrap().to_string();
    let (train, val) = data::split(&ids, 0.2, 42, SplitBy::Car);
    assert_eq!(train.len() + val.len(), ids.len());
    assert_eq!(val.len() % 16, 0, "whole cars only");
    assert!((80..96).contains(&val.len()), "about a fifth: 5 or 6 of 25 cars, got {} images", val.len());
    let train_cars: HashSet<String> = train.iter().map(|&i| car_of(i)).collect();
    let val_cars: HashSet<String> = val.iter().map(|&i| car_of(i)).collect();
    assert!(train_cars.is_disjoint(&val_cars), "a car on both sides: {:?}", train_cars.intersection(&val_cars).collect::<Vec<_>>());
    assert_eq!(data::split(&ids, 0.2, 42, SplitBy::Car), (train, val.clone()), "same seed, same split");
    assert_ne!(data::split(&ids, 0.2, 7, SplitBy::Car).1, val, "another seed, other cars");
    // Split by image, the same ids leak cars across the sides.
    let (train_i, val_i) = data::split(&ids, 0.2, 42, SplitBy::Image);
    let t: HashSet<String> = train_i.iter().map(|&i| car_of(i)).collect();
    assert!(val_i.iter().any(|&i| t.contains(&car_of(i))));
    // One car only: it cannot be split, so training keeps it all rather than validation.
    let one: Vec<String> = (1..=16).map(|v| format!("abc_{v:02}")).collect();
    let (train1, val1) = data::split(&one, 0.2, 42, SplitBy::Car);
    assert_eq!((train1.len(), val1.len()), (16, 0));
}

/// An image whose pixels encode their own coordinates, and a mask with an irregular pattern.
fn coordinate_image(w: u32, h: u32) -> (RgbImage, GrayImage) {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8 + 10, y as u8 + 10, 200]));
    let mask = GrayImage::from_fn(w, h, |x, y| image::Luma([u8::from((x * 3 + y * 7) % 5 < 2)]));
    (img, mask)
}

fn apply(aug: &Augment, draw: &Draw, img: &RgbImage, mask: &GrayImage) -> (Vec<f32>, Vec<f32>) {
    let n = (img.width() * img.height()) as usize;
    let (mut oi, mut om) = (vec![-1.0; 3 * n], vec![-1.0; n]);
    aug.apply(draw, img, mask, &mut oi, &mut om);
    (oi, om)
}

#[test]
fn flip_and_shift_move_the_mask_exactly_with_the_image() {
    let (w, h) = (40u32, 30u32);
    let (img, mask) = coordinate_image(w, h);
    let aug = Augment { hue_delta: 0.0, horizontal_flip: true, width_shift_range: 0.3, height_shift_range: 0.3, rescale: 1.0 };
    for draw in
        [Draw { flip: true, ..Draw::default() }, Draw { dx: 7, dy: -4, ..Draw::default() }, Draw { flip: true, dx: -9, dy: 5, ..Draw::default() }]
    {
        let (oi, om) = apply(&aug, &draw, &img, &mask);
        let plane = (w * h) as usize;
        let mut covered = 0;
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let o = (y * w as i32 + x) as usize;
                let (sx_shift, sy) = (x - draw.dx, y - draw.dy);
                if sx_shift < 0 || sx_shift >= w as i32 || sy < 0 || sy >= h as i32 {
                    assert_eq!((oi[o], oi[plane + o], oi[2 * plane + o], om[o]), (0.0, 0.0, 0.0, 0.0), "uncovered border is zero");
                    continue;
                }
                covered += 1;
                let sx = if draw.flip { w as i32 - 1 - sx_shift } else { sx_shift };
                // The image pixel says where it came from; the mask must come from the same place.
                assert_eq!((oi[o] - 10.0, oi[plane + o] - 10.0), (sx as f32, sy as f32), "{draw:?} at ({x},{y})");
                assert_eq!(om[o], mask.get_pixel(sx as u32, sy as u32)[0] as f32, "{draw:?} mask at ({x},{y})");
            }
        }
        assert!(covered > 0);
    }
}

#[test]
fn hue_changes_the_hue_and_never_the_mask() {
    let img = RgbImage::from_fn(16, 16, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 128]));
    let mask = GrayImage::from_fn(16, 16, |x, y| image::Luma([u8::from(x > y)]));
    let aug = Augment { hue_delta: 0.3, horizontal_flip: false, width_shift_range: 0.0, height_shift_range: 0.0, rescale: 1.0 };
    let draw = Draw { hue: 0.2, ..Draw::default() };
    let (oi, om) = apply(&aug, &draw, &img, &mask);
    let plane = 256;
    for (i, p) in img.pixels().enumerate() {
        assert_eq!(om[i], mask.as_raw()[i] as f32, "the mask is untouched");
        let (h0, s0, v0) = rgb_to_hsv(p[0] as f32, p[1] as f32, p[2] as f32);
        let (h1, s1, v1) = rgb_to_hsv(oi[i], oi[plane + i], oi[2 * plane + i]);
        assert!((v1 - v0).abs() < 1e-3 && (s1 - s0).abs() < 1e-4, "value and saturation kept");
        if s0 > 0.05 {
            let shift = (h1 - h0).rem_euclid(1.0);
            assert!((shift - 0.2).abs() < 1e-3, "hue rotated by 0.2, got {shift}");
        }
    }
    // A random draw stays within the range and still never touches the mask.
    for seed in 0..20 {
        let d = aug.draw(seed, 16, 16);
        assert!(d.hue.abs() <= 0.3);
        let (_, om) = apply(&aug, &d, &img, &mask);
        assert_eq!(om, mask.as_raw().iter().map(|&v| v as f32).collect::<Vec<_>>());
    }
}

#[test]
fn hue_delta_zero_is_the_identity() {
    let (img, mask) = coordinate_image(12, 9);
    let aug = Augment { hue_delta: 0.0, horizontal_flip: false, width_shift_range: 0.0, height_shift_range: 0.0, rescale: 1.0 / 255.0 };
    for seed in 0..10 {
        let draw = aug.draw(seed, 12, 9);
        assert_eq!(draw, Draw::default());
        let (oi, om) = apply(&aug, &draw, &img, &mask);
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                assert_eq!(oi[c * 108 + i], p[c] as f32 * (1.0 / 255.0), "the image is only multiplied by rescale");
            }
            assert_eq!(om[i], mask.as_raw()[i] as f32);
        }
    }
}

#[test]
fn synthetic_set_is_deterministic_and_not_trivial() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SynthSpec { count: 8, width: 96, height: 64, seed: 9 };
    synth::write(&spec, &dir.path().join("a")).unwrap();
    synth::write(&spec, &dir.path().join("b")).unwrap();
    synth::write(&SynthSpec { seed: 10, ..spec }, &dir.path().join("c")).unwrap();
    for name in ["train/synth_00003.jpg", "train_masks/synth_00003_mask.gif"] {
        let a = std::fs::read(dir.path().join("a").join(name)).unwrap();
        assert_eq!(a, std::fs::read(dir.path().join("b").join(name)).unwrap(), "same seed, same bytes: {name}");
        assert_ne!(a, std::fs::read(dir.path().join("c").join(name)).unwrap(), "another seed, other bytes: {name}");
    }
    let samples = data::load(&data::scan(&dir.path().join("a")).unwrap(), None).unwrap();
    let stats = data::stats(&samples);
    assert!(stats.mean_foreground > 0.05 && stats.mean_foreground < 0.7, "{stats:?}");
    assert!(stats.std_foreground > 0.02, "car sizes vary: {stats:?}");
    // Colour alone does not separate car from background: background pixels span the colours
    // the cars use.
    let mut car_hues = Vec::new();
    let mut background_hues = Vec::new();
    for s in &samples {
        for (p, m) in s.image.pixels().zip(s.mask.iter()) {
            let (h, sat, _) = rgb_to_hsv(p[0] as f32, p[1] as f32, p[2] as f32);
            if sat > 0.3 {
                if *m > 0 { car_hues.push((h * 12.0) as u32) } else { background_hues.push((h * 12.0) as u32) }
            }
        }
    }
    let bg: HashSet<u32> = background_hues.into_iter().collect();
    let car: HashSet<u32> = car_hues.into_iter().collect();
    assert!(car.iter().filter(|h| bg.contains(h)).count() * 2 >= car.len(), "car hues {car:?} also appear in backgrounds {bg:?}");
}

#[test]
fn any_seed_renders_without_panicking() {
    // Regression: a rounded-box test once panicked on f32::clamp(min > max) for some draws
    // (seed 2 of the 240x160 set); the shapes' geometry does not depend on the image size.
    for seed in [1, 2, 3] {
        for i in 0..300 {
            let (img, mask) = synth::render(&SynthSpec { count: 300, width: 48, height: 32, seed }, i);
            assert_eq!((img.dimensions(), mask.dimensions()), ((48, 32), (48, 32)));
        }
    }
}

#[test]
fn batches_cover_each_sample_once_per_epoch_in_a_seeded_order() {
    let samples: Vec<data::Sample> = (0..10)
        .map(|i| data::Sample {
            id: format!("s{i}"),
            image: RgbImage::from_pixel(8, 8, Rgb([i as u8 * 20, 0, 0])),
            mask: GrayImage::from_pixel(8, 8, image::Luma([u8::from(i % 2 == 0)])),
            original_size: (8, 8),
        })
        .collect();
    let samples = Arc::new(samples);
    let aug = Augment { hue_delta: 0.0, horizontal_flip: false, width_shift_range: 0.0, height_shift_range: 0.0, rescale: 1.0 };
    let loader = Loader::train(samples.clone(), (0..10).collect(), 4, aug, 5);
    assert_eq!(loader.batches_per_epoch(), 3);
    let ids_of = |epoch: usize| -> Vec<u32> {
        loader.epoch(epoch).flat_map(|b| (0..b.len).map(move |k| (b.images[k * 3 * 64] / 20.0).round() as u32).collect::<Vec<_>>()).collect()
    };
    let e0 = ids_of(0);
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "each sample once");
    assert_ne!(e0, ids_of(1), "a new order every epoch");
    assert_eq!(e0, ids_of(0), "the same order for the same seed and epoch");
    let sizes: Vec<usize> = loader.epoch(0).map(|b| b.len).collect();
    assert_eq!(sizes, vec![4, 4, 2], "the last batch keeps the remainder");

    let eval = Loader::eval(samples, vec![3, 1, 2], 2, 0.5);
    let first = eval.epoch(0).next().unwrap();
    assert_eq!((first.images[0], first.images[3 * 64]), (30.0, 10.0), "fixed order, rescaled, no augmentation");
    assert_eq!(first.masks[0], 0.0);
}

// ---- bad input -------------------------------------------------------------------------------

#[test]
fn a_missing_directory_is_named() {
    let err = data::scan(std::path::Path::new("/nonexistent/carvana")).unwrap_err();
    assert!(matches!(err, DataError::MissingDir { .. }));
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/carvana") && msg.contains("train_masks"), "{msg}");
}

#[test]
fn an_image_without_a_mask_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    common::write_carvana(dir.path(), 2, 30, 20);
    std::fs::remove_file(dir.path().join("train_masks/car001_01_mask.gif")).unwrap();
    let msg = data::scan(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("train/car001_01.jpg") && msg.contains("train_masks/car001_01_mask.gif"), "{msg}");
}

#[test]
fn a_mask_of_the_wrong_size_is_refused_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    common::write_carvana(dir.path(), 1, 30, 20);
    let small = GrayImage::new(15, 10);
    std::fs::write(dir.path().join("train_masks/car000_01_mask.gif"), synth::encode_palette_gif(&small)).unwrap();
    let err = data::load(&data::scan(dir.path()).unwrap(), Some((16, 16))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::MaskSize { .. }), "{msg}");
    assert!(msg.contains("15x10") && msg.contains("30x20") && msg.contains("car000_01_mask.gif"), "{msg}");
}

#[test]
fn corrupt_and_truncated_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    common::write_carvana(dir.path(), 2, 64, 48);
    let jpg = dir.path().join("train/car000_01.jpg");
    std::fs::write(&jpg, b"this is not a jpeg").unwrap();
    let msg = data::load(&data::scan(dir.path()).unwrap(), None).unwrap_err().to_string();
    assert!(msg.contains("car000_01.jpg") && msg.contains("corrupt"), "{msg}");

    let jpg = dir.path().join("train/car001_01.jpg");
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.path().join("train/car000_01.jpg"), image_bytes()).unwrap();
    let err = data::load(&data::scan(dir.path()).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("car001_01.jpg"), "{err}");
}

fn image_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    RgbImage::new(64, 48).write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg).unwrap();
    out
}

#[test]
fn an_empty_dataset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    std::fs::create_dir_all(dir.path().join("train_masks")).unwrap();
    let err = data::scan(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn cli_data_commands_report_bad_input_with_exit_code_2() {
    let runs = tempfile::tempdir().unwrap();
    common::sweep(runs.path()).args(["data", "show", "--data", "/nonexistent/carvana"]).assert().code(2).stderr(contains("/nonexistent/carvana"));
    common::sweep(runs.path()).args(["data", "show", "--hue-delta", "0.7"]).assert().code(2).stderr(contains("augment.hue_delta"));
    common::sweep(runs.path()).args(["data", "show", "--width-shift-range", "1.0"]).assert().code(2).stderr(contains("width_shift_range"));

    // Writing over an existing directory is refused and leaves it alone.
    let existing = runs.path().join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("keep.txt"), "mine").unwrap();
    common::sweep(runs.path()).args(["data", "synth", "--count", "2", "--out"]).arg(&existing).assert().code(2).stderr(contains("already exists"));
    assert_eq!(std::fs::read_to_string(existing.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn cli_data_synth_and_show_write_a_readable_png() {
    let runs = tempfile::tempdir().unwrap();
    let out = runs.path().join("set");
    common::sweep(runs.path()).args(["data", "synth", "--count", "6", "--size", "120x80", "--seed", "1", "--out"]).arg(&out).assert().success();
    assert_eq!(std::fs::read_dir(out.join("train")).unwrap().count(), 6);
    let png = runs.path().join("show.png");
    common::sweep(runs.path())
        .args(["data", "show", "--samples", "4", "--data"])
        .arg(&out)
        .arg("--out")
        .arg(&png)
        .assert()
        .success()
        .stdout(contains("images       6").and(contains("120x80 (6)")).and(contains("foreground")));
    let img = image::open(&png).unwrap().into_rgb8();
    assert!(img.width() > 800 && img.height() > 400, "{:?}", img.dimensions());
    let distinct: HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 1000, "the grid shows pictures, not a blank page");
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn a_sweep_over_bad_data_stops_before_registering_anything() {
    let runs = tempfile::tempdir().unwrap();
    let data_dir = runs.path().join("cars");
    common::write_carvana(&data_dir, 6, 40, 32);
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("bad", 1, &[0.0, 0.1])).unwrap();
    let run = |what: &str| {
        common::sweep(runs.path())
            .args(["run", file.to_str().unwrap(), "--plain", "--data", data_dir.to_str().unwrap()])
            .assert()
            .code(2)
            .stderr(contains(what.to_string()))
    };
    // A mask of the wrong size, named with both sizes.
    let mask = data_dir.join("train_masks/car002_01_mask.gif");
    let good = std::fs::read(&mask).unwrap();
    std::fs::write(&mask, synth::encode_palette_gif(&GrayImage::new(20, 32))).unwrap();
    run("car002_01_mask.gif: mask is 20x32 but its image");
    // A corrupt image.
    std::fs::write(&mask, good).unwrap();
    let image = data_dir.join("train/car004_01.jpg");
    let good = std::fs::read(&image).unwrap();
    std::fs::write(&image, b"\xff\xd8 truncated").unwrap();
    run("car004_01.jpg: cannot decode");
    // Nothing was registered: no tracker was even created.
    assert!(!runs.path().join("sweep.db").exists());
    // Repaired, the same command runs the sweep.
    std::fs::write(&image, good).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--no-plot", "--data", data_dir.to_str().unwrap()])
        .assert()
        .success()
        .stdout(contains("2 completed"));
}

// ---- issue 15: masks at any bit depth, truncated and oversized files, too small to split ----

#[test]
fn a_16_bit_png_mask_with_values_0_1_is_read_as_foreground() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("train")).unwrap();
    std::fs::create_dir_all(dir.path().join("train_masks")).unwrap();
    for (id, one) in [("a", 1u16), ("b", 65535)] {
        RgbImage::new(20, 10).save(dir.path().join(format!("train/{id}.png"))).unwrap();
        let mask: image::ImageBuffer<image::Luma<u16>, Vec<u16>> = image::ImageBuffer::from_fn(20, 10, |x, _| image::Luma([if x < 5 { one } else { 0 }]));
        mask.save(dir.path().join(format!("train_masks/{id}_mask.png"))).unwrap();
    }
    let samples = data::load(&data::scan(dir.path()).unwrap(), None).unwrap();
    for s in &samples {
        assert!((s.foreground_fraction() - 0.25).abs() < 1e-9, "{}: {}", s.id, s.foreground_fraction());
        assert_eq!((s.mask.get_pixel(4, 0)[0], s.mask.get_pixel(5, 0)[0]), (1, 0), "{}", s.id);
    }
}

#[test]
fn a_truncated_jpeg_is_refused_by_data_show_naming_the_file() {
    let runs = tempfile::tempdir().unwrap();
    let set = runs.path().join("set");
    common::sweep(runs.path()).args(["data", "synth", "--count", "4", "--size", "40", "--seed", "1", "--out"]).arg(&set).assert().success();
    let jpg = std::fs::read_dir(set.join("train")).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() / 2]).unwrap();
    let err = data::decode_image(&jpg).unwrap_err();
    assert!(matches!(err, DataError::Decode { .. }), "{err}");
    let name = jpg.file_name().unwrap().to_str().unwrap();
    common::sweep(runs.path())
        .args(["data", "show", "--data"])
        .arg(&set)
        .arg("--out")
        .arg(runs.path().join("show.png"))
        .assert()
        .code(2)
        .stderr(contains(name).and(contains("truncated")));
}

/// A PNG that declares `w` x `h` RGB pixels and holds none: what a decoder reads before it
/// allocates the pixels.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    png_header_only_of(w, h, 2)
}

/// [`png_header_only`] of PNG colour type `color` (0 gray, 2 RGB).
fn png_header_only_of(w: u32, h: u32, color: u8) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
        out
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, color, 0, 0, 0]); // 8 bits, the colour type, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])); // an empty zlib stream
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn an_image_over_the_decoders_memory_limit_says_so_and_how_to_fix_it() {
    let runs = tempfile::tempdir().unwrap();
    let set = runs.path().join("set");
    common::write_carvana(&set, 3, 40, 32);
    std::fs::remove_file(set.join("train/car001_01.jpg")).unwrap();
    std::fs::write(set.join("train/car001_01.png"), png_header_only(20000, 20000)).unwrap();
    let files = data::scan(&set).unwrap();
    for err in [data::check_headers(&files).unwrap_err(), data::load(&files, None).unwrap_err()] {
        assert!(matches!(err, DataError::TooLarge { size: (20000, 20000), .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("car001_01.png") && msg.contains("20000x20000"), "{msg}");
        assert!(msg.contains("memory limit of 512 MiB") && msg.contains("1145 MiB") && msg.contains("resize"), "{msg}");
        assert!(!msg.contains("corrupt"), "{msg}");
    }
    common::sweep(runs.path()).args(["data", "show", "--data"]).arg(&set).assert().code(2).stderr(contains("memory limit"));
}

/// Issue 27, item 14: what a dataset holds that the scan passed over in silence, or found only
/// when decoding.
#[test]
fn odd_dataset_entries_are_errors_naming_the_files_before_anything_is_registered() {
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        common::write_carvana(dir.path(), 3, 40, 32);
        dir
    };
    // A dangling symbolic link named .jpg, and one that loops (a non-image .jpg is an error too).
    let dir = fresh();
    std::os::unix::fs::symlink(dir.path().join("gone.jpg"), dir.path().join("train/car009_01.jpg")).unwrap();
    let msg = data::scan(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("car009_01.jpg") && msg.contains("gone.jpg, which does not exist"), "{msg}");
    let dir = fresh();
    let lo = dir.path().join("train/car009_01.jpg");
    std::os::unix::fs::symlink(&lo, &lo).unwrap();
    let msg = data::scan(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("car009_01.jpg") && msg.contains("loops"), "{msg}");
    // x.jpg and x.png: one id, one mask.
    let dir = fresh();
    std::fs::copy(dir.path().join("train/car000_01.jpg"), dir.path().join("train/car000_01.png")).unwrap();
    let err = data::scan(dir.path()).unwrap_err();
    assert!(matches!(err, DataError::SameId { .. }), "{err}");
    assert!(err.to_string().contains("car000_01.jpg and") && err.to_string().contains("car000_01.png are both image \"car000_01\""), "{err}");
    // _mask.gif beside _mask.png.
    let dir = fresh();
    std::fs::write(dir.path().join("train_masks/car001_01_mask.png"), b"png").unwrap();
    let msg = data::scan(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("car001_01_mask.gif and") && msg.contains("car001_01_mask.png are both masks of"), "{msg}");
    // A truncated JPEG: found from its tail before registering (exit 2), not in every trial.
    let runs = fresh();
    let jpg = runs.path().join("train/car002_01.jpg");
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() - 10]).unwrap();
    let err = data::check_headers(&data::scan(runs.path()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("car002_01.jpg") && err.to_string().contains("cut off"), "{err}");
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("cut", 1, &[0.0])).unwrap();
    common::sweep(&runs.path().join("runs"))
        .args(["run", file.to_str().unwrap(), "--plain", "--data", runs.path().to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("car002_01.jpg").and(contains("cut off")));
    assert!(!runs.path().join("runs/sweep.db").exists(), "nothing registered");
    // A 20000x20000 grayscale PNG takes 400 MB to decode but 1.2 GB as the RGB training uses.
    let dir = fresh();
    std::fs::remove_file(dir.path().join("train/car001_01.jpg")).unwrap();
    std::fs::write(dir.path().join("train/car001_01.png"), png_header_only_of(20000, 20000, 0)).unwrap();
    let err = data::check_headers(&data::scan(dir.path()).unwrap()).unwrap_err();
    assert!(matches!(err, DataError::TooLarge { size: (20000, 20000), .. }) && err.to_string().contains("1145 MiB"), "{err}");
}

#[test]
fn a_dataset_too_small_to_split_stops_the_sweep_before_registering_anything() {
    let runs = tempfile::tempdir().unwrap();
    let data_dir = runs.path().join("one");
    common::write_carvana(&data_dir, 1, 40, 32);
    let file = runs.path().join("s.toml");
    std::fs::write(&file, common::tiny_sweep("small", 1, &[0.0, 0.1])).unwrap();
    common::sweep(runs.path())
        .args(["run", file.to_str().unwrap(), "--plain", "--data", data_dir.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(contains("data.val_fraction").and(contains("out of 1")).and(contains("at least 2 images")));
    assert!(!runs.path().join("sweep.db").exists(), "no trial was registered");
}
