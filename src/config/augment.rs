//! The `[augment]` settings: the tutorial's training-time augmentations as plain values with their
//! ranges. `data::augment` draws and applies them.

use super::Invalid;

/// The augmentation settings of a run (the sweep file's `[augment]` section).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Hue rotation drawn uniformly from [-hue_delta, hue_delta], in turns of the colour wheel
    /// (as `tf.image.random_hue`). In [0, 0.5]; 0 disables it.
    pub hue_delta: f32,
    /// Flip image and mask left-right with probability 0.5.
    pub horizontal_flip: bool,
    /// Shift by up to this fraction of the width, in [0, 1).
    pub width_shift_range: f32,
    /// Shift by up to this fraction of the height, in [0, 1).
    pub height_shift_range: f32,
    /// Multiply image values (0..255) by this factor, e.g. 1/255. Masks are always 0/1.
    pub rescale: f32,
}

impl Default for Augment {
    /// The tutorial's training augmentation.
    fn default() -> Self {
        Self { hue_delta: 0.1, horizontal_flip: true, width_shift_range: 0.1, height_shift_range: 0.1, rescale: 1.0 / 255.0 }
    }
}

impl Augment {
    /// No augmentation: what validation data gets (the rescale still applies).
    pub fn identity(rescale: f32) -> Self {
        Self { hue_delta: 0.0, horizontal_flip: false, width_shift_range: 0.0, height_shift_range: 0.0, rescale }
    }

    /// Checks every value against its range; the error names the key and the valid range.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |key, value: f32, expected: &str| Invalid { key, value: value.to_string(), expected: expected.into() };
        if !(0.0..=0.5).contains(&self.hue_delta) {
            return Err(invalid("augment.hue_delta", self.hue_delta, "must be in [0, 0.5] (a fraction of the colour wheel; the tutorial uses 0.1)"));
        }
        if !(0.0..1.0).contains(&self.width_shift_range) {
            return Err(invalid(
                "augment.width_shift_range",
                self.width_shift_range,
                "must be in [0, 1) (a fraction of the width; the tutorial uses 0.1)",
            ));
        }
        if !(0.0..1.0).contains(&self.height_shift_range) {
            return Err(invalid(
                "augment.height_shift_range",
                self.height_shift_range,
                "must be in [0, 1) (a fraction of the height; the tutorial uses 0.1)",
            ));
        }
        if !(self.rescale.is_finite() && self.rescale > 0.0) {
            return Err(invalid("augment.rescale", self.rescale, "must be a positive number (the tutorial uses 1/255 = 0.00392156862745098)"));
        }
        Ok(())
    }
}
