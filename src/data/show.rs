//! "Look at the data" (the tutorial's first step): a PNG grid of samples with their masks and
//! overlays, one sample under each augmentation, and the dataset's summary statistics.

use std::path::Path;

use image::{GrayImage, Rgb, RgbImage};

use super::augment::Draw;
use super::{DataStats, Sample};
use crate::canvas::{Canvas, fit, mask_to_rgb, overlay};
use crate::config::Augment;

const TILE_W: u32 = 200;
const TILE_H: u32 = 150;
const GAP: u32 = 10;
const LABEL_H: u32 = 22;
const BG: [u8; 3] = [250, 250, 250];
const INK: [u8; 3] = [30, 30, 30];

/// What the grid shows.
pub struct ShowOptions<'a> {
    /// A name for the dataset in the title (its path, or "synthetic").
    pub title: &'a str,
    /// How many samples get an image | mask | overlay row.
    pub samples: usize,
    /// The augmentation whose effects the last row shows, one transform per tile.
    pub augment: Augment,
    pub seed: u64,
}

/// Draws the grid for `samples` (at their working size) and writes it to `out` as PNG.
pub fn write_grid(samples: &[Sample], stats: &DataStats, options: &ShowOptions, out: &Path) -> std::io::Result<()> {
    let canvas = grid(samples, stats, options);
    canvas.save_png(out)
}

/// The tiles of the augmentation row: a label and the draw that isolates one transform.
pub fn augmentation_tiles(aug: &Augment, width: u32, height: u32) -> Vec<(String, Draw)> {
    let dx = (aug.width_shift_range * width as f32).round() as i32;
    let dy = (aug.height_shift_range * height as f32).round() as i32;
    let mut tiles = vec![("original".to_string(), Draw::default())];
    if aug.hue_delta > 0.0 {
        tiles.push((format!("hue +{}", aug.hue_delta), Draw { hue: aug.hue_delta, ..Draw::default() }));
        tiles.push((format!("hue -{}", aug.hue_delta), Draw { hue: -aug.hue_delta, ..Draw::default() }));
    }
    if aug.horizontal_flip {
        tiles.push(("horizontal flip".to_string(), Draw { flip: true, ..Draw::default() }));
    }
    if dx != 0 {
        tiles.push((format!("width shift {dx:+} px"), Draw { dx, ..Draw::default() }));
    }
    if dy != 0 {
        tiles.push((format!("height shift {dy:+} px"), Draw { dy, ..Draw::default() }));
    }
    tiles
}

fn grid(samples: &[Sample], stats: &DataStats, options: &ShowOptions) -> Canvas {
    let shown: Vec<&Sample> = samples.iter().take(options.samples.max(1)).collect();
    let pairs_per_row = 2u32;
    let sample_rows = (shown.len() as u32).div_ceil(pairs_per_row);
    let first = shown[0];
    let mut aug_tiles = augmentation_tiles(&options.augment, first.image.width(), first.image.height());
    let random = options.augment.draw(options.seed, first.image.width(), first.image.height());
    aug_tiles.push(("one random draw".to_string(), random));

    let cols = (3 * pairs_per_row).max(aug_tiles.len() as u32);
    let width = GAP + cols * (TILE_W + GAP);
    let header_h = 64;
    let row_h = LABEL_H + TILE_H + GAP;
    let height = header_h + LABEL_H + sample_rows * row_h + 2 * LABEL_H + row_h + GAP;
    let mut canvas = Canvas::new(width, height, BG);

    canvas.text(&format!("Dataset: {}", options.title), GAP as i32, 8, 20.0, INK);
    let sizes: Vec<String> = stats.sizes.iter().take(3).map(|((w, h), n)| format!("{w}x{h} ({n})")).collect();
    canvas.text(
        &format!(
            "{} images · sizes {}{} · foreground {:.1}% ± {:.1}% of pixels",
            stats.count,
            sizes.join(", "),
            if stats.sizes.len() > 3 { ", ..." } else { "" },
            stats.mean_foreground * 100.0,
            stats.std_foreground * 100.0
        ),
        GAP as i32,
        34,
        15.0,
        INK,
    );

    let mut y = header_h;
    for p in 0..pairs_per_row {
        for (k, label) in ["image", "mask", "overlay"].iter().enumerate() {
            let x = GAP + (p * 3 + k as u32) * (TILE_W + GAP);
            canvas.text_centred(label, (x + TILE_W / 2) as i32, y as i32, 15.0, INK);
        }
    }
    y += LABEL_H;
    for (i, sample) in shown.iter().enumerate() {
        let (row, pair) = (i as u32 / pairs_per_row, i as u32 % pairs_per_row);
        let top = y + row * row_h;
        let x0 = GAP + pair * 3 * (TILE_W + GAP);
        canvas.text(&sample.id, x0 as i32, top as i32 + 2, 13.0, [90, 90, 90]);
        let tiles = [sample.image.clone(), mask_to_rgb(&sample.mask), overlay(&sample.image, &sample.mask)];
        for (k, tile) in tiles.iter().enumerate() {
            place(&mut canvas, tile, x0 + k as u32 * (TILE_W + GAP), top + LABEL_H);
        }
    }
    y += sample_rows * row_h + LABEL_H / 2;

    canvas.text(
        &format!("Augmentations of {} (training split only; the red outline is the mask, moved with the image)", first.id),
        GAP as i32,
        y as i32,
        15.0,
        INK,
    );
    y += LABEL_H + 4;
    for (k, (label, draw)) in aug_tiles.iter().enumerate() {
        let x = GAP + k as u32 * (TILE_W + GAP);
        canvas.text_centred(label, (x + TILE_W / 2) as i32, y as i32, 13.0, INK);
        let (img, mask) = apply_for_display(&options.augment, draw, &first.image, &first.mask);
        place(&mut canvas, &overlay_outline(&img, &mask), x, y + LABEL_H);
    }
    canvas
}

fn place(canvas: &mut Canvas, tile: &RgbImage, x: u32, y: u32) {
    let fitted = fit(tile, TILE_W, TILE_H);
    let (ox, oy) = ((TILE_W - fitted.width()) / 2, (TILE_H - fitted.height()) / 2);
    canvas.blit(&fitted, x + ox, y + oy);
}

/// Runs the real augmentation code on one sample and turns its planar output back into pictures
/// (the image shown with values 0..255 whatever the rescale).
pub fn apply_for_display(aug: &Augment, draw: &Draw, img: &RgbImage, mask: &GrayImage) -> (RgbImage, GrayImage) {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    let mut out_mask = vec![0.0f32; plane];
    let display = Augment { rescale: 1.0, ..*aug };
    display.apply(draw, img, mask, &mut out, &mut out_mask);
    let image = RgbImage::from_fn(w, h, |x, y| {
        let i = (y * w + x) as usize;
        Rgb([0, 1, 2].map(|c| out[c * plane + i].round().clamp(0.0, 255.0) as u8))
    });
    let mask = GrayImage::from_fn(w, h, |x, y| image::Luma([out_mask[(y * w + x) as usize] as u8]));
    (image, mask)
}

/// The image with only the mask's outline drawn, so the image's own colours stay visible.
fn overlay_outline(img: &RgbImage, mask: &GrayImage) -> RgbImage {
    let full = overlay(img, mask);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let o = *full.get_pixel(x, y);
        if o.0 == crate::canvas::MASK_TINT { o } else { *img.get_pixel(x, y) }
    })
}
