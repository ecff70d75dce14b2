//! The tutorial's training-time augmentations: a random hue rotation (image only), a random
//! horizontal flip and a random translation (image and mask together), then a rescale of the image
//! values. Validation data gets none of these, only the resize done at load time and the rescale.
//!
//! Randomness is drawn once per sample into a [`Draw`] and then applied; the draw comes from a seed
//! derived from (run seed, epoch, sample), so a resumed run sees exactly the augmentations an
//! uninterrupted one would, whatever thread produced the batch.
//!
//! Translation moves image and mask by the same whole number of pixels. The uncovered border is
//! filled with zeros: black in the image and background in the mask (what the tutorial's
//! `tf.contrib.image.translate` does).

use image::{GrayImage, RgbImage};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::config::Augment;

/// One sample's random choices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Draw {
    /// Hue rotation in turns, in [-hue_delta, hue_delta].
    pub hue: f32,
    pub flip: bool,
    /// Translation in pixels (positive: right / down).
    pub dx: i32,
    pub dy: i32,
}

impl Augment {
    /// Draws one sample's augmentation for an image of `width` x `height` from `seed`.
    pub fn draw(&self, seed: u64, width: u32, height: u32) -> Draw {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Every draw is taken whether or not it is used, so that enabling one augmentation never
        // changes the random choices of another.
        let hue_u: f32 = rng.random();
        let flip_u: f32 = rng.random();
        let dx_u: f32 = rng.random();
        let dy_u: f32 = rng.random();
        let shift = |u: f32, range: f32, side: u32| -> i32 {
            let max = range * side as f32;
            ((u * 2.0 - 1.0) * max).round() as i32
        };
        Draw {
            hue: if self.hue_delta > 0.0 { (hue_u * 2.0 - 1.0) * self.hue_delta } else { 0.0 },
            flip: self.horizontal_flip && flip_u < 0.5,
            dx: shift(dx_u, self.width_shift_range, width),
            dy: shift(dy_u, self.height_shift_range, height),
        }
    }

    /// Writes the augmented sample into planar buffers: `image` is [3, h, w] and `mask` [h, w],
    /// both row-major f32. Image values are rescaled; mask values are 0 or 1.
    pub fn apply(&self, draw: &Draw, image: &RgbImage, mask: &GrayImage, out_image: &mut [f32], out_mask: &mut [f32]) {
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        debug_assert_eq!(out_image.len(), 3 * plane);
        debug_assert_eq!(out_mask.len(), plane);
        let src = image.as_raw();
        let src_mask = mask.as_raw();
        let rotate = (draw.hue != 0.0).then(|| HueRotation::new(draw.hue));
        for y in 0..h as i32 {
            let sy = y - draw.dy;
            for x in 0..w as i32 {
                let o = (y as u32 * w + x as u32) as usize;
                let sx_shifted = x - draw.dx;
                if sy < 0 || sy >= h as i32 || sx_shifted < 0 || sx_shifted >= w as i32 {
                    out_image[o] = 0.0;
                    out_image[plane + o] = 0.0;
                    out_image[2 * plane + o] = 0.0;
                    out_mask[o] = 0.0;
                    continue;
                }
                let sx = if draw.flip { w as i32 - 1 - sx_shifted } else { sx_shifted };
                let i = (sy as u32 * w + sx as u32) as usize;
                let rgb = [src[3 * i] as f32, src[3 * i + 1] as f32, src[3 * i + 2] as f32];
                let [r, g, b] = match &rotate {
                    Some(rot) => rot.apply(rgb),
                    None => rgb,
                };
                out_image[o] = r * self.rescale;
                out_image[plane + o] = g * self.rescale;
                out_image[2 * plane + o] = b * self.rescale;
                out_mask[o] = src_mask[i] as f32;
            }
        }
    }
}

/// A rotation of hue by `delta` turns, computed through HSV exactly as `tf.image.adjust_hue`:
/// h' = fract(h + delta), saturation and value unchanged.
#[derive(Debug, Clone, Copy)]
pub struct HueRotation {
    delta: f32,
}

impl HueRotation {
    pub fn new(delta: f32) -> Self {
        Self { delta }
    }

    /// Rotates one pixel; channels may be on any scale (0..1 or 0..255).
    pub fn apply(&self, [r, g, b]: [f32; 3]) -> [f32; 3] {
        let (h, s, v) = rgb_to_hsv(r, g, b);
        let h = (h + self.delta).rem_euclid(1.0);
        hsv_to_rgb(h, s, v)
    }
}

/// RGB to (hue in [0, 1), saturation, value); value is on the channels' scale.
pub fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    let s = if max > 0.0 { chroma / max } else { 0.0 };
    if chroma <= 0.0 {
        return (0.0, s, max);
    }
    let h = if max == r {
        (g - b) / chroma
    } else if max == g {
        (b - r) / chroma + 2.0
    } else {
        (r - g) / chroma + 4.0
    };
    ((h / 6.0).rem_euclid(1.0), s, max)
}

/// (hue in [0, 1), saturation, value) back to RGB on the value's scale.
pub fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let c = v * s;
    let hp = h * 6.0;
    let x = c * (1.0 - ((hp % 2.0) - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient_sample(w: u32, h: u32) -> (RgbImage, GrayImage) {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 17 % 256) as u8, (y * 29 % 256) as u8, ((x + y) * 7 % 256) as u8]));
        let mask = GrayImage::from_fn(w, h, |x, y| image::Luma([u8::from((x + 2 * y) % 5 == 0)]));
        (img, mask)
    }

    fn run(aug: &Augment, draw: &Draw, img: &RgbImage, mask: &GrayImage) -> (Vec<f32>, Vec<f32>) {
        let n = (img.width() * img.height()) as usize;
        let (mut oi, mut om) = (vec![0.0; 3 * n], vec![0.0; n]);
        aug.apply(draw, img, mask, &mut oi, &mut om);
        (oi, om)
    }

    #[test]
    fn hsv_round_trip_is_exact_enough() {
        for rgb in [[255.0, 0.0, 0.0], [12.0, 200.0, 99.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.0], [250.0, 10.0, 240.0]] {
            let (h, s, v) = rgb_to_hsv(rgb[0], rgb[1], rgb[2]);
            let back = hsv_to_rgb(h, s, v);
            for c in 0..3 {
                assert!((back[c] - rgb[c]).abs() < 1e-3, "{rgb:?} -> {back:?}");
            }
        }
    }

    #[test]
    fn hue_rotation_by_a_third_turn_cycles_primaries() {
        let rot = HueRotation::new(1.0 / 3.0);
        let out = rot.apply([255.0, 0.0, 0.0]);
        assert!((out[0]).abs() < 1e-3 && (out[1] - 255.0).abs() < 1e-3 && out[2].abs() < 1e-3, "{out:?}");
        let back = HueRotation::new(-1.0 / 3.0).apply(out);
        assert!((back[0] - 255.0).abs() < 1e-3, "{back:?}");
    }

    #[test]
    fn validation_names_the_key_and_range() {
        let bad = Augment { hue_delta: 0.7, ..Augment::default() };
        let msg = bad.validate().unwrap_err().to_string();
        assert!(msg.contains("augment.hue_delta") && msg.contains("[0, 0.5]"), "{msg}");
        let bad = Augment { width_shift_range: 1.0, ..Augment::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("augment.width_shift_range"));
        let bad = Augment { height_shift_range: -0.1, ..Augment::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("augment.height_shift_range"));
        assert!(Augment::default().validate().is_ok());
    }

    #[test]
    fn draws_are_deterministic_and_within_range() {
        let aug = Augment { hue_delta: 0.3, horizontal_flip: true, width_shift_range: 0.2, height_shift_range: 0.1, rescale: 1.0 };
        let mut flips = 0;
        for seed in 0..400 {
            let d = aug.draw(seed, 100, 50);
            assert_eq!(d, aug.draw(seed, 100, 50));
            assert!(d.hue.abs() <= 0.3 && d.dx.abs() <= 20 && d.dy.abs() <= 5, "{d:?}");
            flips += usize::from(d.flip);
        }
        assert!((150..250).contains(&flips), "flip probability is about one half: {flips}/400");
        let off = Augment { hue_delta: 0.0, horizontal_flip: false, width_shift_range: 0.0, height_shift_range: 0.0, rescale: 1.0 };
        assert_eq!(off.draw(7, 100, 50), Draw::default());
    }

    #[test]
    fn identity_draw_copies_and_rescales() {
        let (img, mask) = gradient_sample(9, 6);
        let aug = Augment::identity(0.5);
        let (oi, om) = run(&aug, &Draw::default(), &img, &mask);
        let plane = 54;
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                assert_eq!(oi[c * plane + i], p[c] as f32 * 0.5);
            }
            assert_eq!(om[i], mask.as_raw()[i] as f32);
        }
    }
}
