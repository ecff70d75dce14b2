//! Training one trial, and everything that touches tensors: the U-Net ([`model`]), the loss and
//! metrics ([`metrics`]), the loop over epochs with validation, divergence and resume
//! ([`trainer`]), checkpoints and trial directories ([`checkpoint`]), the device ([`device`]),
//! scoring at the images' own size, per image and with test-time flips ([`scoring`]) and
//! inference ([`predict`]). Nothing outside this module depends on burn.
//!
//! ```
//! use sweep::train::device::DeviceSpec;
//! assert_eq!("cuda:1".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(1)));
//! assert_eq!("cpu".parse::<DeviceSpec>().unwrap().to_string(), "cpu");
//! assert!("tpu".parse::<DeviceSpec>().unwrap_err().to_string().contains("tpu"));
//! ```

pub mod checkpoint;
pub mod device;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod predict;
pub mod scoring;
pub mod trainer;

pub use trainer::{
    DataSplit, Faults, NullObserver, Observer, Outcome, SavedCheckpoint, StepProgress, StopRequest, TrainError, TrainedCost, TrialContext,
    dataset_dir, evaluate, load_model, load_split, optimizer, train,
};

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::Batch;

/// Moves a batch onto the device as ([n, 3, h, w] images, [n, 1, h, w] masks).
pub fn batch_tensors(batch: Batch, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let (n, h, w) = (batch.len, batch.height, batch.width);
    let images = Tensor::<4>::from_data(TensorData::new(batch.images, [n, 3, h, w]), device);
    let masks = Tensor::<4>::from_data(TensorData::new(batch.masks, [n, 1, h, w]), device);
    (images, masks)
}
