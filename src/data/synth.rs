//! The embedded dataset: a deterministic synthetic car-segmentation set in the Carvana layout, so
//! that the tool works out of the box with no download.
//!
//! It is built not to be trivial. Each image holds one car-like silhouette (body with a sloped
//! hood, cabin with windows, two wheels with hubs; random colour, size, tilt, facing and position,
//! sometimes cut by the frame) over a textured background of one of four kinds, with distractor
//! shapes in the same colour range that count as background, some of them in front of the car. No
//! single colour, texture or position separates car from background.
//!
//! Image `i` depends only on (seed, i) and the generator version, so the same seed gives the same
//! bytes on every machine and in any thread order.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, Rgb, RgbImage};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;

use super::DataError;
use crate::config::SynthSpec;
use crate::util::{TempDir, derive_seed, splitmix64};

/// Bumped whenever the images change, so cached sets from an older generator are not reused.
pub const GENERATOR_VERSION: u32 = 1;

impl SynthSpec {
    /// The image id of sample `index`.
    pub fn id(index: usize) -> String {
        format!("synth_{index:05}")
    }
}

/// Where the set for `spec` is cached under the runs directory.
pub fn cache_dir(runs: &Path, spec: &SynthSpec) -> PathBuf {
    runs.join("data").join(format!("synthetic-v{GENERATOR_VERSION}-n{}-{}x{}-s{}", spec.count, spec.width, spec.height, spec.seed))
}

/// Returns the cached set for `spec`, generating it first if it is not there yet. Safe to call
/// from several processes at once: each writes a private directory and the first rename wins.
pub fn ensure(runs: &Path, spec: &SynthSpec) -> Result<PathBuf, DataError> {
    let dir = cache_dir(runs, spec);
    if dir.join("train").is_dir() {
        return Ok(dir);
    }
    match write(spec, &dir) {
        Ok(()) => Ok(dir),
        Err(DataError::Exists { .. }) => Ok(dir),
        Err(e) => Err(e),
    }
}

/// Writes the set to `out` (which must not exist): `train/<id>.jpg` and `train_masks/<id>_mask.gif`.
/// The directory appears whole or not at all.
pub fn write(spec: &SynthSpec, out: &Path) -> Result<(), DataError> {
    spec.validate()?;
    if out.exists() {
        return Err(DataError::Exists { path: out.to_path_buf() });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| DataError::Io { path, source: e }
    };
    let tmp = TempDir::new(out).map_err(io(out))?;
    let images = tmp.path().join("train");
    let masks = tmp.path().join("train_masks");
    std::fs::create_dir_all(&images).map_err(io(&images))?;
    std::fs::create_dir_all(&masks).map_err(io(&masks))?;
    (0..spec.count).into_par_iter().try_for_each(|i| {
        let (img, mask) = render(spec, i);
        let id = SynthSpec::id(i);
        let img_path = images.join(format!("{id}.jpg"));
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 92)
            .encode_image(&img)
            .map_err(|e| DataError::Io { path: img_path.clone(), source: std::io::Error::other(e) })?;
        std::fs::write(&img_path, jpeg).map_err(io(&img_path))?;
        let mask_path = masks.join(format!("{id}_mask.gif"));
        std::fs::write(&mask_path, encode_palette_gif(&mask)).map_err(io(&mask_path))
    })?;
    match tmp.commit() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(DataError::Exists { path: out.to_path_buf() }),
        Err(e) => Err(DataError::Io { path: out.to_path_buf(), source: e }),
    }
}

/// Encodes a 0/1 mask as a two-colour palette GIF whose pixel indices are the mask values, the
/// way Carvana ships its masks.
pub fn encode_palette_gif(mask: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0u8, 0, 0, 255, 255, 255];
        let mut encoder = gif::Encoder::new(&mut out, mask.width() as u16, mask.height() as u16, &palette).expect("gif header");
        let frame = gif::Frame {
            width: mask.width() as u16,
            height: mask.height() as u16,
            buffer: std::borrow::Cow::Borrowed(mask.as_raw()),
            ..Default::default()
        };
        encoder.write_frame(&frame).expect("gif frame to memory");
    }
    out
}

/// Renders sample `index`: the RGB image and its 0/1 mask.
pub fn render(spec: &SynthSpec, index: usize) -> (RgbImage, GrayImage) {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(spec.seed, &[index as u64]));
    let (w, h) = (spec.width as f32, spec.height as f32);
    let background = Background::random(&mut rng, w, h);
    let behind: Vec<Shape> = (0..rng.random_range(1..=4)).map(|_| Shape::random(&mut rng, w, h)).collect();
    let car = Car::random(&mut rng, w, h);
    let mut in_front = Vec::new();
    for _ in 0..rng.random_range(0..=2) {
        if rng.random_bool(0.4) {
            in_front.push(Shape::random(&mut rng, w, h));
        }
    }
    let grain = rng.random_range(3.0f32..10.0);
    let grain_seed: u64 = rng.random();

    let mut img = RgbImage::new(spec.width, spec.height);
    let mut mask = GrayImage::new(spec.width, spec.height);
    const SUB: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    for py in 0..spec.height {
        for px in 0..spec.width {
            let mut acc = [0.0f32; 3];
            let mut car_hits = 0;
            for (ox, oy) in SUB {
                let (x, y) = (px as f32 + ox, py as f32 + oy);
                let mut colour = background.colour(x, y);
                for s in &behind {
                    if let Some(c) = s.colour(x, y) {
                        colour = c;
                    }
                }
                let mut is_car = false;
                if let Some(c) = car.colour(x, y) {
                    colour = c;
                    is_car = true;
                }
                for s in &in_front {
                    if let Some(c) = s.colour(x, y) {
                        colour = c;
                        is_car = false;
                    }
                }
                car_hits += usize::from(is_car);
                for c in 0..3 {
                    acc[c] += colour[c];
                }
            }
            let noise = (unit_hash(grain_seed, px, py) - 0.5) * 2.0 * grain;
            let rgb = acc.map(|v| (v / 4.0 + noise).clamp(0.0, 255.0).round() as u8);
            img.put_pixel(px, py, Rgb(rgb));
            mask.put_pixel(px, py, image::Luma([u8::from(car_hits >= 2)]));
        }
    }
    (img, mask)
}

type Colour = [f32; 3];

/// A random colour of any hue, from dull to vivid, dark to light: cars and distractors share it.
fn random_colour(rng: &mut ChaCha8Rng) -> Colour {
    let h = rng.random::<f32>();
    let s = rng.random_range(0.0f32..0.95);
    let v = rng.random_range(40.0f32..245.0);
    super::augment::hsv_to_rgb(h, s, v)
}

fn mix(a: Colour, b: Colour, t: f32) -> Colour {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

fn shade(c: Colour, factor: f32) -> Colour {
    c.map(|v| (v * factor).clamp(0.0, 255.0))
}

/// A hash of (seed, x, y) in [0, 1): deterministic per-pixel noise.
fn unit_hash(seed: u64, x: u32, y: u32) -> f32 {
    let h = splitmix64(seed ^ ((x as u64) << 32 | y as u64));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1) with features about `scale` pixels wide.
fn value_noise(seed: u64, x: f32, y: f32, scale: f32) -> f32 {
    let (gx, gy) = (x / scale, y / scale);
    let (x0, y0) = (gx.floor(), gy.floor());
    let (tx, ty) = (gx - x0, gy - y0);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let corner = |dx: i64, dy: i64| unit_hash(seed, (x0 as i64 + dx + 4096) as u32, (y0 as i64 + dy + 4096) as u32);
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

enum Background {
    /// Sky over ground, split at a horizon, each with a gradient and mottling.
    Street { horizon: f32, sky: (Colour, Colour), ground: (Colour, Colour), seed: u64, h: f32 },
    /// A checker of two colours (a showroom floor, a wall of tiles).
    Tiles { size: f32, a: Colour, b: Colour, seed: u64 },
    /// Parallel stripes at an angle.
    Stripes { period: f32, cos: f32, sin: f32, a: Colour, b: Colour },
    /// Large soft blobs of three colours.
    Blobs { scale: f32, colours: [Colour; 3], seed: u64 },
}

impl Background {
    fn random(rng: &mut ChaCha8Rng, w: f32, h: f32) -> Self {
        match rng.random_range(0..4) {
            0 => Background::Street {
                horizon: rng.random_range(0.25f32..0.65) * h,
                sky: (random_colour(rng), random_colour(rng)),
                ground: (random_colour(rng), random_colour(rng)),
                seed: rng.random(),
                h,
            },
            1 => Background::Tiles { size: rng.random_range(0.04f32..0.2) * w, a: random_colour(rng), b: random_colour(rng), seed: rng.random() },
            2 => {
                let angle = rng.random_range(0.0f32..std::f32::consts::PI);
                Background::Stripes {
                    period: rng.random_range(0.03f32..0.15) * w,
                    cos: angle.cos(),
                    sin: angle.sin(),
                    a: random_colour(rng),
                    b: random_colour(rng),
                }
            }
            _ => Background::Blobs {
                scale: rng.random_range(0.1f32..0.35) * w,
                colours: [random_colour(rng), random_colour(rng), random_colour(rng)],
                seed: rng.random(),
            },
        }
    }

    fn colour(&self, x: f32, y: f32) -> Colour {
        match self {
            Background::Street { horizon, sky, ground, seed, h } => {
                let mottle = value_noise(*seed, x, y, 9.0) * 0.3 + 0.85;
                if y < *horizon {
                    shade(mix(sky.0, sky.1, y / horizon), mottle)
                } else {
                    shade(mix(ground.0, ground.1, (y - horizon) / (h - horizon).max(1.0)), mottle)
                }
            }
            Background::Tiles { size, a, b, seed } => {
                let (i, j) = ((x / size).floor() as i64, (y / size).floor() as i64);
                let base = if (i + j).rem_euclid(2) == 0 { *a } else { *b };
                shade(base, 0.9 + 0.2 * value_noise(*seed, x, y, size / 2.0))
            }
            Background::Stripes { period, cos, sin, a, b } => {
                let t = ((x * cos + y * sin) / period).rem_euclid(1.0);
                mix(*a, *b, (t * std::f32::consts::TAU).sin() * 0.5 + 0.5)
            }
            Background::Blobs { scale, colours, seed } => {
                let t1 = value_noise(*seed, x, y, *scale);
                let t2 = value_noise(seed.wrapping_add(1), x, y, scale * 0.6);
                mix(mix(colours[0], colours[1], t1), colours[2], t2 * 0.7)
            }
        }
    }
}

/// A distractor: a solid or ring shape that is not a car.
struct Shape {
    kind: ShapeKind,
    colour: Colour,
}

enum ShapeKind {
    Ellipse { cx: f32, cy: f32, rx: f32, ry: f32, ring: bool },
    Rect { x0: f32, y0: f32, x1: f32, y1: f32 },
    Triangle { p: [(f32, f32); 3] },
}

impl Shape {
    fn random(rng: &mut ChaCha8Rng, w: f32, h: f32) -> Self {
        let cx = rng.random_range(0.0..w);
        let cy = rng.random_range(0.0..h);
        let size = rng.random_range(0.05f32..0.3) * w;
        let kind = match rng.random_range(0..4) {
            0 | 1 => ShapeKind::Ellipse {
                cx,
                cy,
                rx: size * rng.random_range(0.4f32..1.0),
                ry: size * rng.random_range(0.4f32..1.0),
                ring: rng.random_bool(0.3),
            },
            2 => ShapeKind::Rect { x0: cx - size, y0: cy - size * 0.4, x1: cx + size * 0.6, y1: cy + size * 0.5 },
            _ => {
                let mut p = [(0.0, 0.0); 3];
                for v in &mut p {
                    *v = (cx + rng.random_range(-size..size), cy + rng.random_range(-size..size));
                }
                ShapeKind::Triangle { p }
            }
        };
        Shape { kind, colour: random_colour(rng) }
    }

    fn colour(&self, x: f32, y: f32) -> Option<Colour> {
        let inside = match &self.kind {
            ShapeKind::Ellipse { cx, cy, rx, ry, ring } => {
                let d = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2);
                if *ring { (0.45..=1.0).contains(&d) } else { d <= 1.0 }
            }
            ShapeKind::Rect { x0, y0, x1, y1 } => x >= *x0 && x <= *x1 && y >= *y0 && y <= *y1,
            ShapeKind::Triangle { p } => {
                let edge = |a: (f32, f32), b: (f32, f32)| (b.0 - a.0) * (y - a.1) - (b.1 - a.1) * (x - a.0);
                let (d0, d1, d2) = (edge(p[0], p[1]), edge(p[1], p[2]), edge(p[2], p[0]));
                (d0 >= 0.0 && d1 >= 0.0 && d2 >= 0.0) || (d0 <= 0.0 && d1 <= 0.0 && d2 <= 0.0)
            }
        };
        inside.then_some(self.colour)
    }
}

/// A side view of a car in its own frame: x from rear (0) to front (1), y up from the ground, in
/// units of the car's length.
struct Car {
    /// Image position of the rear wheel's ground contact, scale (pixels per car length), tilt.
    origin: (f32, f32),
    scale: f32,
    cos: f32,
    sin: f32,
    facing_left: bool,
    body_bottom: f32,
    body_top: f32,
    hood_drop: f32,
    corner: f32,
    cabin: [(f32, f32); 4],
    window: [(f32, f32); 4],
    wheels: [f32; 2],
    wheel_r: f32,
    paint: Colour,
    glass: Colour,
    tyre: Colour,
    hub: Colour,
}

impl Car {
    fn random(rng: &mut ChaCha8Rng, w: f32, h: f32) -> Self {
        let scale = rng.random_range(0.45f32..1.1) * w;
        let x = rng.random_range(-0.25 * scale..(w - 0.75 * scale).max(-0.25 * scale + 1.0));
        let ground = rng.random_range(0.55f32..1.05) * h;
        let tilt = rng.random_range(-0.12f32..0.12);
        let wheel_r = rng.random_range(0.085f32..0.12);
        let body_bottom = wheel_r * rng.random_range(0.5..0.8);
        let body_top = body_bottom + rng.random_range(0.16f32..0.24);
        let cabin_h = rng.random_range(0.12f32..0.2);
        let (c0, c1) = (rng.random_range(0.12f32..0.3), rng.random_range(0.62f32..0.8));
        let (rear_slope, front_slope) = (rng.random_range(0.03f32..0.12), rng.random_range(0.08f32..0.2));
        let cabin = [(c0, body_top), (c1, body_top), (c1 - front_slope, body_top + cabin_h), (c0 + rear_slope, body_top + cabin_h)];
        let inset = 0.025;
        let window = [
            (c0 + inset * 1.5, body_top + inset),
            (c1 - inset * 1.5, body_top + inset),
            (c1 - front_slope - inset * 0.5, body_top + cabin_h - inset),
            (c0 + rear_slope + inset * 0.5, body_top + cabin_h - inset),
        ];
        let paint = random_colour(rng);
        let glass_v = rng.random_range(30.0f32..120.0);
        Car {
            origin: (x, ground),
            scale,
            cos: tilt.cos(),
            sin: tilt.sin(),
            facing_left: rng.random_bool(0.5),
            body_bottom,
            body_top,
            hood_drop: rng.random_range(0.0f32..0.07),
            corner: rng.random_range(0.02f32..0.06),
            cabin,
            window,
            wheels: [rng.random_range(0.14f32..0.22), rng.random_range(0.76f32..0.86)],
            wheel_r,
            paint,
            glass: [glass_v * 0.8, glass_v * 0.9, glass_v * 1.1],
            tyre: [22.0, 22.0, 25.0],
            hub: [rng.random_range(120.0f32..200.0); 3],
        }
    }

    /// The car's colour at image point (x, y), or None outside the car.
    fn colour(&self, x: f32, y: f32) -> Option<Colour> {
        // Into the car frame: translate, untilt, scale, flip y up and x for left-facing cars.
        let (dx, dy) = (x - self.origin.0, self.origin.1 - y);
        let (u, v) = ((dx * self.cos - dy * self.sin) / self.scale, (dx * self.sin + dy * self.cos) / self.scale);
        let u = if self.facing_left { 1.0 - u } else { u };
        if !(-0.05..=1.05).contains(&u) || !(-0.01..=0.8).contains(&v) {
            return None;
        }
        for &wx in &self.wheels {
            let d2 = (u - wx).powi(2) + (v - self.wheel_r).powi(2);
            if d2 <= self.wheel_r.powi(2) {
                return Some(if d2 <= (self.wheel_r * 0.5).powi(2) { self.hub } else { self.tyre });
            }
        }
        // Body: a rounded box whose top slopes down over the hood (front, u near 1).
        let top = self.body_top - self.hood_drop * ((u - 0.7) / 0.3).clamp(0.0, 1.0);
        if in_rounded_box(u, v, 0.0, self.body_bottom, 1.0, top, self.corner) {
            let t = ((v - self.body_bottom) / (top - self.body_bottom)).clamp(0.0, 1.0);
            let headlight = u > 0.95 && (v - (top - 0.04)).abs() < 0.02;
            return Some(if headlight { [250.0, 240.0, 200.0] } else { shade(self.paint, 0.75 + 0.45 * t) });
        }
        if in_quad(u, v, &self.window) {
            return Some(self.glass);
        }
        if in_quad(u, v, &self.cabin) {
            return Some(shade(self.paint, 1.1));
        }
        None
    }
}

fn in_rounded_box(u: f32, v: f32, x0: f32, y0: f32, x1: f32, y1: f32, r: f32) -> bool {
    if u < x0 || u > x1 || v < y0 || v > y1 {
        return false;
    }
    let r = r.min((x1 - x0) / 2.0).min((y1 - y0) / 2.0);
    // max-then-min rather than clamp: rounding can put x0 + r a hair above x1 - r.
    let cx = u.max(x0 + r).min(x1 - r);
    let cy = v.max(y0 + r).min(y1 - r);
    (u - cx).powi(2) + (v - cy).powi(2) <= r * r
}

/// Inside a trapezoid given as (bottom-left, bottom-right, top-right, top-left).
fn in_quad(u: f32, v: f32, q: &[(f32, f32); 4]) -> bool {
    let (y0, y1) = (q[0].1, q[3].1);
    if v < y0 || v > y1 {
        return false;
    }
    let t = (v - y0) / (y1 - y0);
    let left = q[0].0 + (q[3].0 - q[0].0) * t;
    let right = q[1].0 + (q[2].0 - q[1].0) * t;
    u >= left && u <= right
}
