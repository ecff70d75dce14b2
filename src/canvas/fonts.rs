//! The shipped font. Text is drawn with DejaVu Sans, compiled into the binary and registered with
//! plotters on first use, so charts and image grids render identically on a machine with no fonts
//! installed (CI has none).

use std::sync::Once;

/// DejaVu Sans (Bitstream Vera license, see `fonts/DejaVuSans-LICENSE.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// Registers the shipped font as plotters' "sans-serif" family (idempotent).
pub fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .unwrap_or_else(|_| panic!("the shipped font is a valid TrueType file"));
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Bold, DEJAVU_SANS)
            .unwrap_or_else(|_| panic!("the shipped font is a valid TrueType file"));
    });
}
