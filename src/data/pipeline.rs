//! Batching: shuffle a split once per epoch, augment each sample, pack samples into planar f32
//! batches, and produce them on a background thread ahead of the training loop.
//!
//! Everything random is derived from (seed, epoch, sample): the epoch's order from (seed, epoch),
//! each sample's augmentation from (seed, epoch, sample index). An epoch's batches are therefore the
//! same whether the run started at epoch 0 or resumed from a checkpoint at that epoch.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use super::Sample;
use crate::config::Augment;
use crate::util::derive_seed;

/// Salt separating the shuffle stream from the augmentation stream of the same seed.
const SHUFFLE_STREAM: u64 = 1;
const AUGMENT_STREAM: u64 = 2;

/// One batch in planar layout, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// [len, 3, height, width], rescaled image values.
    pub images: Vec<f32>,
    /// [len, 1, height, width], 0 or 1.
    pub masks: Vec<f32>,
    pub len: usize,
    pub height: usize,
    pub width: usize,
}

/// Produces the batches of one split, epoch after epoch.
#[derive(Clone)]
pub struct Loader {
    samples: Arc<Vec<Sample>>,
    indices: Arc<Vec<usize>>,
    batch_size: usize,
    augment: Augment,
    /// Whether the order changes each epoch (training) or stays the file order (validation).
    shuffle: bool,
    seed: u64,
    prefetch: usize,
}

impl Loader {
    /// A training loader: shuffled every epoch and augmented with `augment`.
    pub fn train(samples: Arc<Vec<Sample>>, indices: Vec<usize>, batch_size: usize, augment: Augment, seed: u64) -> Self {
        Self { samples, indices: Arc::new(indices), batch_size: batch_size.max(1), augment, shuffle: true, seed, prefetch: 4 }
    }

    /// An evaluation loader: fixed order, no augmentation but the rescale.
    pub fn eval(samples: Arc<Vec<Sample>>, indices: Vec<usize>, batch_size: usize, rescale: f32) -> Self {
        Self {
            samples,
            indices: Arc::new(indices),
            batch_size: batch_size.max(1),
            augment: Augment::identity(rescale),
            shuffle: false,
            seed: 0,
            prefetch: 4,
        }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Batches per epoch (the last one may be smaller).
    pub fn batches_per_epoch(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order = (*self.indices).clone();
        if self.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(self.seed, &[SHUFFLE_STREAM, epoch as u64]));
            order.shuffle(&mut rng);
        }
        order
    }

    /// Builds batch `b` of `epoch` from its precomputed `order`.
    pub fn make_batch(&self, epoch: usize, order: &[usize], b: usize) -> Batch {
        let chunk = &order[b * self.batch_size..((b + 1) * self.batch_size).min(order.len())];
        let first = &self.samples[chunk[0]];
        let (w, h) = first.image.dimensions();
        let plane = (w * h) as usize;
        let mut images = vec![0.0f32; chunk.len() * 3 * plane];
        let mut masks = vec![0.0f32; chunk.len() * plane];
        for (k, &idx) in chunk.iter().enumerate() {
            let sample = &self.samples[idx];
            let draw = if self.shuffle {
                self.augment.draw(derive_seed(self.seed, &[AUGMENT_STREAM, epoch as u64, idx as u64]), w, h)
            } else {
                Default::default()
            };
            self.augment.apply(
                &draw,
                &sample.image,
                &sample.mask,
                &mut images[k * 3 * plane..(k + 1) * 3 * plane],
                &mut masks[k * plane..(k + 1) * plane],
            );
        }
        Batch { images, masks, len: chunk.len(), height: h as usize, width: w as usize }
    }

    /// The batches of `epoch`, produced on a background thread up to a few batches ahead.
    pub fn epoch(&self, epoch: usize) -> Prefetch {
        let (tx, rx) = sync_channel(self.prefetch);
        let loader = self.clone();
        let handle = std::thread::Builder::new()
            .name("sweep-prefetch".into())
            .spawn(move || {
                let order = loader.order(epoch);
                for b in 0..loader.batches_per_epoch() {
                    if tx.send(loader.make_batch(epoch, &order, b)).is_err() {
                        return; // the consumer stopped early
                    }
                }
            })
            .expect("spawn prefetch thread");
        Prefetch { rx: Some(rx), handle: Some(handle) }
    }
}

/// An epoch's batches, arriving from the prefetch thread.
pub struct Prefetch {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetch {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let item = self.rx.as_ref()?.recv().ok();
        if item.is_none() {
            self.finish();
        }
        item
    }
}

impl Prefetch {
    fn finish(&mut self) {
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            // A panic in the producer (a bug) resurfaces here instead of silently ending the epoch.
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.rx = None; // unblocks the producer's send
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
