//! Image and mask files to pixels, refusing anything that would train on made-up pixels.
//!
//! Decoders are lenient by default: the `image` crate asks its JPEG decoder to fill a truncated
//! file's missing rows with gray, and reads a 16-bit mask by its top 8 bits (so values 0/1 become
//! all background). Here JPEGs are decoded in the decoder's strict mode, so a cut-off file is an
//! error that names it, and masks are thresholded at their own bit depth. A file whose pixels
//! would not fit the decoder's memory limit is named with its size and the limit, not called
//! corrupt, and is found from its header before anything is decoded.

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{DynamicImage, GrayImage, ImageDecoder, ImageFormat, RgbImage};
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use super::DataError;

/// The most memory the pixels of one decoded file may take: the `image` crate's default
/// allocation limit (512 MiB), applied to every format.
pub fn decode_limit() -> u64 {
    image::Limits::default().max_alloc.unwrap_or(u64::MAX)
}

fn is_gif(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("gif"))
}

fn decode_error(path: &Path, reason: impl ToString) -> DataError {
    DataError::Decode { path: path.to_path_buf(), reason: reason.to_string() }
}

/// Refuses a file of `size` whose decoded pixels take `bytes`, when that is over the limit.
fn check_fits(path: &Path, size: (u32, u32), bytes: u64) -> Result<(), DataError> {
    let limit = decode_limit();
    if bytes > limit {
        return Err(DataError::TooLarge { path: path.to_path_buf(), size, bytes: Some(bytes), limit });
    }
    Ok(())
}

/// The memory a file of `size` takes decoded, `total` its decoder's own buffer: at least its
/// pixels as 8-bit RGB, since images and non-GIF masks are converted to that (a 20000x20000
/// grayscale PNG takes 400 MB to decode and 1.2 GB as RGB).
fn decoded_bytes(size: (u32, u32), total: u64) -> u64 {
    total.max(u64::from(size.0) * u64::from(size.1) * 3)
}

/// A file's (width, height) from its header, after checking that its pixels fit the decode
/// limit: no pixel is decoded. GIFs (masks) are read as one palette index a pixel.
pub(super) fn header_size(path: &Path) -> Result<(u32, u32), DataError> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?.with_guessed_format().map_err(|e| DataError::io(path, e))?;
    let decoder = reader.into_decoder().map_err(|e| image_error(path, e))?;
    let (w, h) = decoder.dimensions();
    let bytes = if is_gif(path) { u64::from(w) * u64::from(h) } else { decoded_bytes((w, h), decoder.total_bytes()) };
    check_fits(path, (w, h), bytes)?;
    Ok((w, h))
}

/// Checks that a JPEG or PNG file ends as its format ends (the JPEG end-of-image marker, PNG's
/// IEND chunk, within the last 4 KiB): a file cut off in a copy has a valid header and would fail
/// only when decoded, in every trial. Reads the tail only; a file whose tail lacks the end (cut
/// off, or a trailer longer than 4 KiB) is decoded to tell.
pub(super) fn check_complete(path: &Path) -> Result<(), DataError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|e| DataError::io(path, e))?;
    let (end, format): (&[u8], &str) = match image::guess_format(&head[..n]) {
        Ok(ImageFormat::Jpeg) => (&[0xff, 0xd9], "JPEG end-of-image marker"),
        Ok(ImageFormat::Png) => (b"IEND", "PNG IEND chunk"),
        _ => return Ok(()),
    };
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).map_err(|e| DataError::io(path, e))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(|e| DataError::io(path, e))?;
    if tail.windows(end.len()).any(|w| w == end) {
        return Ok(());
    }
    // No end in the tail: cut off, or a longer trailer than most. Decoding the file says which.
    match decode_any(path) {
        Ok(_) => Ok(()),
        Err(DataError::Decode { .. }) => Err(decode_error(path, format!("the file ends without its {format}: it was cut off"))),
        Err(other) => Err(other),
    }
}

/// Maps a decoder's error: a memory limit is named as such, anything else is a bad file.
fn image_error(path: &Path, e: image::ImageError) -> DataError {
    match e {
        image::ImageError::Limits(_) => match image::image_dimensions(path) {
            Ok(size) => DataError::TooLarge { path: path.to_path_buf(), size, bytes: None, limit: decode_limit() },
            Err(_) => decode_error(path, e),
        },
        image::ImageError::IoError(io) => DataError::io(path, io),
        e => decode_error(path, e),
    }
}

/// Decodes any image file: JPEGs strictly (see the module), other formats with the `image` crate
/// under its memory limit.
fn decode_any(path: &Path) -> Result<DynamicImage, DataError> {
    let bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    if image::guess_format(&bytes).ok() == Some(ImageFormat::Jpeg) {
        return decode_jpeg(path, &bytes);
    }
    let reader = image::ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| DataError::io(path, e))?;
    let decoder = reader.into_decoder().map_err(|e| image_error(path, e))?;
    check_fits(path, decoder.dimensions(), decoded_bytes(decoder.dimensions(), decoder.total_bytes()))?;
    DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, e))
}

/// Decodes a JPEG in zune-jpeg's strict mode, where a file that ends before its last scan does
/// (or holds a marker where none belongs) is an error instead of rows of gray.
fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<DynamicImage, DataError> {
    let options = DecoderOptions::default().set_strict_mode(true).set_max_width(usize::MAX).set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| decode_error(path, format!("{e:?}")))?;
    let (w, h) = decoder.dimensions().expect("headers are decoded");
    let (w, h) = (w as u32, h as u32);
    let gray = decoder.input_colorspace().is_some_and(|c| matches!(c, ColorSpace::Luma | ColorSpace::LumaA));
    let out = if gray { ColorSpace::Luma } else { ColorSpace::RGB };
    check_fits(path, (w, h), decoded_bytes((w, h), u64::from(w) * u64::from(h) * out.num_components() as u64))?;
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| decode_error(path, format!("{e:?}")))?;
    let image = if gray {
        GrayImage::from_raw(w, h, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or_else(|| decode_error(path, "the decoder returned fewer pixels than the header declares"))
}

/// Decodes an image file to RGB (grayscale and RGBA images are converted; alpha is dropped).
pub fn decode_image(path: &Path) -> Result<RgbImage, DataError> {
    Ok(decode_any(path)?.into_rgb8())
}

/// Decodes a mask file to 0/1 values: any value above 0 is foreground.
///
/// GIF masks are read as palette indices (Carvana's masks are palette GIFs whose indices are 0 and
/// 1), never through their palette colours. Other masks are read at their own bit depth, any
/// colour channel above 0 being car (alpha is ignored): so 0/1, 0/255 and 0/65535 masks, 8 or 16
/// bits, gray or colour, all work.
pub fn decode_mask(path: &Path) -> Result<GrayImage, DataError> {
    if is_gif(path) {
        return decode_gif_indices(path);
    }
    let image = decode_any(path)?;
    let (w, h) = (image.width(), image.height());
    let mask = match image {
        DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA16(_) | DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            foreground(w, h, image.into_rgb16().as_raw(), |v| v > 0)
        }
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => foreground(w, h, image.into_rgb32f().as_raw(), |v| v > 0.0),
        _ => foreground(w, h, image.into_rgb8().as_raw(), |v| v > 0),
    };
    Ok(mask)
}

/// A 0/1 mask from interleaved RGB values: 1 where any channel is foreground.
fn foreground<T: Copy>(w: u32, h: u32, rgb: &[T], is_set: impl Fn(T) -> bool) -> GrayImage {
    let values = rgb.chunks_exact(3).map(|p| u8::from(p.iter().any(|&v| is_set(v)))).collect();
    GrayImage::from_raw(w, h, values).expect("one value a pixel")
}

/// The palette indices of a GIF's first frame, as 0/1, on its logical screen.
fn decode_gif_indices(path: &Path) -> Result<GrayImage, DataError> {
    let file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    options.set_memory_limit(gif::MemoryLimit::Bytes(decode_limit().try_into().unwrap_or(std::num::NonZeroU64::MAX)));
    let mut decoder = options.read_info(BufReader::new(file)).map_err(|e| decode_error(path, e))?;
    let (w, h) = (u32::from(decoder.width()), u32::from(decoder.height()));
    check_fits(path, (w, h), u64::from(w) * u64::from(h))?;
    let frame = match decoder.read_next_frame() {
        Ok(Some(frame)) => frame,
        Ok(None) => return Err(decode_error(path, "no image frame")),
        Err(gif::DecodingError::MemoryLimit) => {
            return Err(DataError::TooLarge { path: path.to_path_buf(), size: (w, h), bytes: None, limit: decode_limit() });
        }
        Err(e) => return Err(decode_error(path, e)),
    };
    let mut canvas = GrayImage::new(w, h);
    // A frame may cover only part of the logical screen; the rest stays background.
    for y in 0..u32::from(frame.height) {
        for x in 0..u32::from(frame.width) {
            let (cx, cy) = (x + u32::from(frame.left), y + u32::from(frame.top));
            if cx < w && cy < h {
                let index = frame.buffer[(y * u32::from(frame.width) + x) as usize];
                canvas.put_pixel(cx, cy, image::Luma([u8::from(index > 0)]));
            }
        }
    }
    Ok(canvas)
}
