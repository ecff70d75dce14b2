//! A raster canvas for image grids (data samples, predictions): tiles of images plus text labels,
//! saved as PNG. Text goes through plotters with the font shipped in the binary ([`fonts`]), so it
//! renders on machines without any system font. A leaf: the data, training and report modules all
//! draw with it, and it imports none of them.
//!
//! ```
//! use sweep::canvas::{Canvas, png_bytes};
//! let mut canvas = Canvas::new(120, 40, [255, 255, 255]);
//! canvas.text("hue-3", 4, 4, 16.0, [0, 0, 0]);
//! let png = image::load_from_memory(&png_bytes(canvas.image()).unwrap()).unwrap();
//! assert_eq!((png.width(), png.height()), (120, 40));
//! assert!(canvas.image().pixels().any(|p| p.0 != [255, 255, 255]), "the label was drawn");
//! ```

use std::path::Path;

use image::{GrayImage, Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub mod fonts;

use fonts::register_fonts;

/// The colour a car mask is drawn with in overlays.
pub const MASK_TINT: [u8; 3] = [255, 40, 40];

pub struct Canvas {
    img: RgbImage,
}

impl Canvas {
    pub fn new(width: u32, height: u32, background: [u8; 3]) -> Self {
        Self { img: RgbImage::from_pixel(width, height, Rgb(background)) }
    }

    pub fn width(&self) -> u32 {
        self.img.width()
    }

    pub fn height(&self) -> u32 {
        self.img.height()
    }

    pub fn image(&self) -> &RgbImage {
        &self.img
    }

    /// Copies `tile` with its top-left corner at (x, y), clipped to the canvas.
    pub fn blit(&mut self, tile: &RgbImage, x: u32, y: u32) {
        image::imageops::replace(&mut self.img, tile, x as i64, y as i64);
    }

    /// Draws `text` with its top-left corner at (x, y).
    pub fn text(&mut self, text: &str, x: i32, y: i32, size: f64, colour: [u8; 3]) {
        self.text_anchored(text, x, y, size, colour, HPos::Left);
    }

    /// Draws `text` horizontally centred on x, its top at y.
    pub fn text_centred(&mut self, text: &str, x: i32, y: i32, size: f64, colour: [u8; 3]) {
        self.text_anchored(text, x, y, size, colour, HPos::Center);
    }

    fn text_anchored(&mut self, text: &str, x: i32, y: i32, size: f64, colour: [u8; 3], h: HPos) {
        register_fonts();
        let (w, hgt) = self.img.dimensions();
        let root = BitMapBackend::with_buffer(self.img.as_mut(), (w, hgt)).into_drawing_area();
        let colour = RGBColor(colour[0], colour[1], colour[2]);
        let style = TextStyle::from(("sans-serif", size).into_font()).color(&colour).pos(Pos::new(h, VPos::Top));
        // Drawing text into an in-memory buffer cannot fail once the font is registered.
        let _ = root.draw_text(text, &style, (x, y));
        let _ = root.present();
    }

    /// Saves as PNG, atomically.
    pub fn save_png(&self, path: &Path) -> std::io::Result<()> {
        save_png(&self.img, path)
    }
}

/// Encodes an RGB image as PNG and writes it atomically (creating parent directories).
pub fn save_png(img: &RgbImage, path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    crate::util::atomic_write(path, &png_bytes(img)?)
}

/// An RGB image encoded as PNG.
pub fn png_bytes(img: &RgbImage) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// A 0/1 mask as a black-and-white picture.
pub fn mask_to_rgb(mask: &GrayImage) -> RgbImage {
    RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = if mask.get_pixel(x, y)[0] > 0 { 255 } else { 0 };
        Rgb([v, v, v])
    })
}

/// The image with the mask's pixels tinted, and the mask's outline drawn solid, so that both the
/// covered area and its exact border are visible.
pub fn overlay(img: &RgbImage, mask: &GrayImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let inside = |x: i64, y: i64| x >= 0 && y >= 0 && x < w as i64 && y < h as i64 && mask.get_pixel(x as u32, y as u32)[0] > 0;
    RgbImage::from_fn(w, h, |x, y| {
        let p = img.get_pixel(x, y).0;
        if !inside(x as i64, y as i64) {
            return Rgb(p);
        }
        let (xi, yi) = (x as i64, y as i64);
        let edge = !(inside(xi - 1, yi) && inside(xi + 1, yi) && inside(xi, yi - 1) && inside(xi, yi + 1));
        if edge { Rgb(MASK_TINT) } else { Rgb([0, 1, 2].map(|c| ((p[c] as f32) * 0.55 + MASK_TINT[c] as f32 * 0.45) as u8)) }
    })
}

/// Where a prediction is wrong: car predicted on background (a false positive).
pub const FALSE_POSITIVE: [u8; 3] = [255, 150, 0];
/// Where a prediction is wrong: car missed (a false negative).
pub const FALSE_NEGATIVE: [u8; 3] = [30, 110, 255];
/// Where a prediction is right about a car pixel.
pub const TRUE_POSITIVE: [u8; 3] = [60, 200, 90];

/// The image with a prediction's errors against the truth painted in: false positives in
/// [`FALSE_POSITIVE`], false negatives in [`FALSE_NEGATIVE`], correct car pixels lightly
/// tinted, correct background dimmed (both masks 0/1, the image's size).
pub fn errors_overlay(img: &RgbImage, truth: &GrayImage, predicted: &GrayImage) -> RgbImage {
    let mix = |p: [u8; 3], colour: [u8; 3], a: f32| Rgb([0, 1, 2].map(|c| (p[c] as f32 * (1.0 - a) + colour[c] as f32 * a).round() as u8));
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        match (predicted.get_pixel(x, y)[0] > 0, truth.get_pixel(x, y)[0] > 0) {
            (true, true) => mix(p, TRUE_POSITIVE, 0.35),
            (true, false) => mix(p, FALSE_POSITIVE, 0.8),
            (false, true) => mix(p, FALSE_NEGATIVE, 0.8),
            (false, false) => mix(p, [0, 0, 0], 0.45),
        }
    })
}

/// Resizes to fit within `max_w` x `max_h`, keeping the aspect ratio.
pub fn fit(img: &RgbImage, max_w: u32, max_h: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let s = (max_w as f32 / w as f32).min(max_h as f32 / h as f32);
    let (nw, nh) = (((w as f32 * s).round() as u32).max(1), ((h as f32 * s).round() as u32).max(1));
    image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle)
}
