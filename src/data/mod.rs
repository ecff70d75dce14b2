//! The data pipeline: find image/mask pairs in the Carvana layout, decode them once, split them into
//! train and validation by image id, augment and batch them for training.
//!
//! A dataset is a directory holding `train/<id>.jpg` and `train_masks/<id>_mask.gif`, as Kaggle's
//! Carvana competition ships it; PNG images and PNG masks are accepted too. The synthetic set
//! ([`synth`]) is written in the same layout, so every code path below is the one real data takes.
//!
//! Decoding a 1918x1280 JPEG costs more than a training step at 128x128, so [`load`] decodes and
//! resizes each file exactly once per process; [`cached`] keeps the result for every later trial of
//! the same worker process.
//!
//! ```
//! use sweep::data::{load_sample, scan};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir_all(dir.path().join("train")).unwrap();
//! std::fs::create_dir_all(dir.path().join("train_masks")).unwrap();
//! image::RgbImage::new(48, 32).save(dir.path().join("train/car1.png")).unwrap();
//! let mask = image::GrayImage::from_fn(48, 32, |x, _| image::Luma([if x < 24 { 255 } else { 0 }]));
//! mask.save(dir.path().join("train_masks/car1_mask.png")).unwrap();
//! let files = scan(dir.path()).unwrap();
//! assert_eq!(files.len(), 1);
//! let sample = load_sample(&files[0], Some((16, 16))).unwrap();
//! assert_eq!(sample.mask.get_pixel(2, 8).0, [1], "the car is 1, the background 0");
//! assert_eq!(sample.mask.get_pixel(14, 8).0, [0]);
//! ```

pub mod augment;
pub mod decode;
pub mod pipeline;
pub mod show;
pub mod synth;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use image::imageops::FilterType;
use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use crate::config::{DataConfig, SplitBy};

pub use decode::{decode_image, decode_limit, decode_mask};
pub use pipeline::{Batch, Loader};

/// Image file extensions recognised in `train/` (lower case).
const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
/// Mask file names tried for image `<id>`, in order.
const MASK_PATTERNS: &[&str] = &["{id}_mask.gif", "{id}_mask.png", "{id}.gif", "{id}.png"];

/// What can be wrong with a dataset or a data setting.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {what} not found{}", path.display(), hint_suffix(hint))]
    MissingDir { path: PathBuf, what: &'static str, hint: String },
    #[error("{}: no mask for this image; expected {}", image.display(), tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or "))]
    MissingMask { image: PathBuf, tried: Vec<PathBuf> },
    #[error(
        "{}: mask is {}x{} but its image {} is {}x{}; a mask must have its image's size",
        mask.display(), mask_size.0, mask_size.1, image.display(), image_size.0, image_size.1
    )]
    MaskSize { mask: PathBuf, image: PathBuf, mask_size: (u32, u32), image_size: (u32, u32) },
    #[error("{}: cannot decode ({reason}); the file is corrupt, truncated or not an image", path.display())]
    Decode { path: PathBuf, reason: String },
    #[error(
        "{}: the image is {}x{}{}, over the image decoder's memory limit of {} MiB; resize it (training resizes every image to data.image_size anyway, so a few thousand pixels a side loses nothing)",
        path.display(), size.0, size.1, bytes.map(|b| format!(" and its pixels take {} MiB decoded", b.div_ceil(1 << 20))).unwrap_or_default(), limit >> 20
    )]
    TooLarge { path: PathBuf, size: (u32, u32), bytes: Option<u64>, limit: u64 },
    #[error("{}: {reason}; remove it, or make it the image it is named as", path.display())]
    NotAFile { path: PathBuf, reason: String },
    #[error("{} and {} are both image {id:?} and would share one mask; keep one of them", first.display(), second.display())]
    SameId { id: String, first: PathBuf, second: PathBuf },
    #[error("{} and {} are both masks of {}; keep one of them", first.display(), second.display(), image.display())]
    TwoMasks { image: PathBuf, first: PathBuf, second: PathBuf },
    #[error("{}: the dataset is empty: no .jpg/.jpeg/.png image in {}", path.display(), path.join("train").display())]
    Empty { path: PathBuf },
    #[error("{key} = {value}: {expected}")]
    Invalid { key: &'static str, value: String, expected: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: already exists; choose another --out or remove it first", path.display())]
    Exists { path: PathBuf },
    #[error(
        "{} and {} would both write {stem}_mask.png and {stem}_overlay.png in {}: outputs are named after the image's file name without its extension; predict them into separate --out directories",
        first.display(), second.display(), out.display()
    )]
    OutputClash { first: PathBuf, second: PathBuf, stem: String, out: PathBuf },
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() { String::new() } else { format!("; {hint}") }
}

impl From<crate::config::Invalid> for DataError {
    fn from(e: crate::config::Invalid) -> Self {
        DataError::Invalid { key: e.key, value: e.value, expected: e.expected }
    }
}

impl DataError {
    /// Whether the user's input is at fault (exit 2) rather than the machine (exit 1). A file
    /// that does not exist was named by the user; any other I/O failure is the machine's.
    pub fn is_bad_input(&self) -> bool {
        match self {
            DataError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => true,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io { path: path.to_path_buf(), source }
    }
}

/// One image/mask pair on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFiles {
    pub id: String,
    pub image: PathBuf,
    pub mask: PathBuf,
}

/// One decoded sample: the RGB image and its binary mask (0 background, 1 car), both at the
/// pipeline's working size.
#[derive(Debug, Clone)]
pub struct Sample {
    pub id: String,
    pub image: RgbImage,
    pub mask: GrayImage,
    /// The size of the file on disk, before any resize: (width, height).
    pub original_size: (u32, u32),
}

impl Sample {
    /// The fraction of mask pixels that are foreground.
    pub fn foreground_fraction(&self) -> f64 {
        let fg = self.mask.as_raw().iter().filter(|&&v| v > 0).count();
        fg as f64 / self.mask.as_raw().len().max(1) as f64
    }
}

/// Lists the image/mask pairs of a Carvana-layout directory, sorted by id.
pub fn scan(dir: &Path) -> Result<Vec<SampleFiles>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir {
            path: dir.to_path_buf(),
            what: "dataset directory",
            hint: "give a directory holding train/ and train_masks/ (the Carvana layout) with --data DIR or data.source, or use \"synthetic\"".into(),
        });
    }
    let images_dir = dir.join("train");
    let masks_dir = dir.join("train_masks");
    for (path, what) in [(&images_dir, "image folder train/"), (&masks_dir, "mask folder train_masks/")] {
        if !path.is_dir() {
            return Err(DataError::MissingDir {
                path: path.clone(),
                what,
                hint: "a dataset in the Carvana layout holds train/<id>.jpg and train_masks/<id>_mask.gif".into(),
            });
        }
    }
    let mut files = Vec::new();
    let entries = fs::read_dir(&images_dir).map_err(|e| DataError::io(&images_dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(&images_dir, e))?.path();
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { continue };
        if !IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            continue;
        }
        // Named as an image, it is one or an error, as a file that does not decode is: a dangling
        // or looping symbolic link is never skipped in silence.
        not_a_file(&path)?;
        let Some(id) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        let tried: Vec<PathBuf> = MASK_PATTERNS.iter().map(|p| masks_dir.join(p.replace("{id}", &id))).collect();
        let found: Vec<&PathBuf> = tried.iter().filter(|p| p.is_file()).collect();
        match found[..] {
            [mask] => files.push(SampleFiles { id, image: path.clone(), mask: mask.clone() }),
            [first, second, ..] => return Err(DataError::TwoMasks { image: path, first: first.clone(), second: second.clone() }),
            [] => {
                if let Some(bad) = tried.iter().find(|p| p.symlink_metadata().is_ok()) {
                    not_a_file(bad)?;
                }
                return Err(DataError::MissingMask { image: path, tried: tried[..2].to_vec() });
            }
        }
    }
    if files.is_empty() {
        return Err(DataError::Empty { path: dir.to_path_buf() });
    }
    files.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.image.cmp(&b.image)));
    if let Some(pair) = files.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(DataError::SameId { id: pair[0].id.clone(), first: pair[0].image.clone(), second: pair[1].image.clone() });
    }
    Ok(files)
}

/// Why `path`, named as an image or a mask, is no file to read: a directory, a symbolic link to
/// nothing, a loop of links. Ok for a file.
fn not_a_file(path: &Path) -> Result<(), DataError> {
    let reason = match fs::metadata(path) {
        Ok(m) if m.is_file() => return Ok(()),
        Ok(m) if m.is_dir() => "a directory".to_string(),
        Ok(_) => "not a regular file".to_string(),
        Err(e) => match fs::read_link(path) {
            Ok(target) if e.raw_os_error() == Some(libc::ELOOP) => format!("a symbolic link (to {}) that loops", target.display()),
            Ok(target) => format!("a symbolic link to {}, which does not exist", target.display()),
            Err(_) => e.to_string(),
        },
    };
    Err(DataError::NotAFile { path: path.to_path_buf(), reason })
}

/// Reads every pair's sizes from the file headers (no pixel decoding: about 0.1 ms a pair) and
/// checks that each image and mask can be opened, fits the decoder's memory limit, and that their
/// sizes agree. A sweep runs this before registering trials, so that an unreadable file or a
/// wrong-sized mask is one clear error up front rather than a failed trial per config.
pub fn check_headers(files: &[SampleFiles]) -> Result<(), DataError> {
    files.par_iter().try_for_each(|f| {
        let image_size = decode::header_size(&f.image)?;
        let mask_size = decode::header_size(&f.mask)?;
        decode::check_complete(&f.image)?;
        decode::check_complete(&f.mask)?;
        if image_size != mask_size {
            return Err(DataError::MaskSize { mask: f.mask.clone(), image: f.image.clone(), mask_size, image_size });
        }
        Ok(())
    })
}

/// Whether going from `from` to `to` shrinks both sides by at least half.
fn large_shrink(from: (u32, u32), to: (u32, u32)) -> bool {
    to.0 * 2 <= from.0 && to.1 * 2 <= from.1
}

/// Resizes an image: bilinear (as `tf.image.resize` does by default), or area averaging when
/// shrinking by 2x or more, which is both faster and free of the aliasing bilinear sampling has
/// at large factors (Carvana's 1918x1280 to 128x128 is 15x).
pub fn resize_image(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    if large_shrink(img.dimensions(), (width, height)) {
        return image::imageops::thumbnail(img, width, height);
    }
    image::imageops::resize(img, width, height, FilterType::Triangle)
}

/// Resizes a 0/1 mask the way its image is resized, then thresholds the coverage at one half, so
/// the mask stays binary and its boundary lands where the image's does.
pub fn resize_mask(mask: &GrayImage, width: u32, height: u32) -> GrayImage {
    if mask.dimensions() == (width, height) {
        return mask.clone();
    }
    let scaled = GrayImage::from_fn(mask.width(), mask.height(), |x, y| image::Luma([mask.get_pixel(x, y)[0] * 255]));
    let mut out = if large_shrink(mask.dimensions(), (width, height)) {
        image::imageops::thumbnail(&scaled, width, height)
    } else {
        image::imageops::resize(&scaled, width, height, FilterType::Triangle)
    };
    for v in out.iter_mut() {
        *v = u8::from(*v >= 128);
    }
    out
}

/// Decodes one pair, checks that the sizes agree, and resizes both to `size` = (height, width).
pub fn load_sample(files: &SampleFiles, size: Option<(u32, u32)>) -> Result<Sample, DataError> {
    let image = decode_image(&files.image)?;
    let mask = decode_mask(&files.mask)?;
    if image.dimensions() != mask.dimensions() {
        return Err(DataError::MaskSize {
            mask: files.mask.clone(),
            image: files.image.clone(),
            mask_size: mask.dimensions(),
            image_size: image.dimensions(),
        });
    }
    let original_size = image.dimensions();
    let (image, mask) = match size {
        Some((h, w)) => (resize_image(&image, w, h), resize_mask(&mask, w, h)),
        None => (image, mask),
    };
    Ok(Sample { id: files.id.clone(), image, mask, original_size })
}

/// Decodes every pair of `files` in parallel. The first bad file ends the load with its error.
pub fn load(files: &[SampleFiles], size: Option<(u32, u32)>) -> Result<Vec<Sample>, DataError> {
    files.par_iter().map(|f| load_sample(f, size)).collect()
}

type CacheKey = (PathBuf, Option<(u32, u32)>);

/// Loads a dataset once per process: later calls with the same directory and size share it.
pub fn cached(dir: &Path, size: Option<(u32, u32)>) -> Result<Arc<Vec<Sample>>, DataError> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<Vec<Sample>>>>> = OnceLock::new();
    let key = (fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()), size);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    let samples = Arc::new(load(&scan(dir)?, size)?);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, samples.clone());
    Ok(samples)
}

/// Splits sample ids into (train, validation) index lists, deterministically from `seed`.
///
/// Images are grouped (each on its own, or by car: the id up to its last `_`), groups are ranked
/// by a hash of (seed, group) and go to validation, lowest first, until it holds
/// `round(n * val_fraction)` images (a whole car at a time, so by car it may hold a few more).
/// The split depends only on the ids and the seed (not on file order or the machine), so every
/// run of a sweep sees the same split, and adding images moves few existing ones.
pub fn split(ids: &[String], val_fraction: f64, seed: u64, by: SplitBy) -> (Vec<usize>, Vec<usize>) {
    let n = ids.len();
    let mut n_val = (n as f64 * val_fraction).round() as usize;
    if val_fraction > 0.0 && n >= 2 {
        n_val = n_val.clamp(1, n - 1);
    }
    // Rank groups by a seeded hash of their key: adding images moves few existing ones, and the
    // order depends on no file listing. An image is its own group unless split by car.
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let key = match by {
            SplitBy::Image => id.as_str(),
            SplitBy::Car => id.rsplit_once('_').map_or(id.as_str(), |(car, _)| car),
        };
        groups.entry(key).or_default().push(i);
    }
    let mut ranked: Vec<(u64, &str, Vec<usize>)> =
        groups.into_iter().map(|(k, members)| (crate::util::hash64(format!("{seed}\0{k}").as_bytes()), k, members)).collect();
    ranked.sort_unstable();
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, _, members) in ranked {
        // Whole groups go to validation until it holds its share; never every image.
        if val.len() < n_val && val.len() + members.len() < n.max(2) {
            val.extend(members);
        } else {
            train.extend(members);
        }
    }
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}

/// The (train, validation) split a data config asks for, refused when either side would be empty
/// (a dataset too small to split, or split by car with too few cars). A sweep checks this
/// before registering trials, from the file names alone.
pub fn split_for(ids: &[String], data: &DataConfig) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    let (train, val) = split(ids, data.val_fraction, data.split_seed, data.split_by);
    if !train.is_empty() && !val.is_empty() {
        return Ok((train, val));
    }
    let (t, v, n) = (train.len(), val.len(), ids.len());
    let expected = match data.split_by {
        SplitBy::Image => {
            format!("leaves {t} training and {v} validation images out of {n}; a dataset needs at least 2 images, one on each side: use more images")
        }
        SplitBy::Car => {
            format!("leaves {t} training and {v} validation images out of {n} split by car; use images of more cars, or data.split_by = \"image\"")
        }
    };
    Err(DataError::Invalid { key: "data.val_fraction", value: data.val_fraction.to_string(), expected })
}

/// Summary statistics of a dataset, as `sweep data show` prints them.
#[derive(Debug, Clone, PartialEq)]
pub struct DataStats {
    pub count: usize,
    /// Distinct original sizes (width, height) with how many images have each, most common first.
    pub sizes: Vec<((u32, u32), usize)>,
    pub mean_foreground: f64,
    pub std_foreground: f64,
}

/// Statistics of decoded samples.
pub fn stats(samples: &[Sample]) -> DataStats {
    summarize(samples.iter().map(|s| (s.original_size, s.foreground_fraction())).collect())
}

/// Decodes every file of a dataset once, at its own size, to check it and measure it, without
/// keeping the pixels: how `sweep data show` validates a full-size dataset in bounded memory.
pub fn survey(files: &[SampleFiles]) -> Result<DataStats, DataError> {
    let measured: Result<Vec<_>, DataError> =
        files.par_iter().map(|f| load_sample(f, None).map(|s| (s.original_size, s.foreground_fraction()))).collect();
    Ok(summarize(measured?))
}

fn summarize(measured: Vec<((u32, u32), f64)>) -> DataStats {
    let mut sizes: HashMap<(u32, u32), usize> = HashMap::new();
    for (size, _) in &measured {
        *sizes.entry(*size).or_default() += 1;
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let fractions: Vec<f64> = measured.iter().map(|(_, f)| *f).collect();
    let n = fractions.len().max(1) as f64;
    let mean = fractions.iter().sum::<f64>() / n;
    let var = fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n;
    DataStats { count: fractions.len(), sizes, mean_foreground: mean, std_foreground: var.sqrt() }
}
