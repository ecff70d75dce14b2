//! Run directories and checkpoint files.
//!
//! A run directory holds everything needed to rebuild its model without the tracker:
//!
//! ```text
//! <run dir>/config.json            the resolved TrialConfig, written before training starts
//! <run dir>/checkpoints/last.ckpt  model + optimiser + training state after the latest epoch
//! <run dir>/checkpoints/best.ckpt  model + training state at the best epoch of the objective
//! ```
//!
//! A checkpoint is one file, so that it can be replaced atomically (written to a temporary name,
//! flushed, renamed): a process killed at any moment leaves the previous complete file or the new
//! complete one, never a torn one. Layout: the magic `SWEEPCKP`, a format version (u32 LE), the
//! length of a JSON header (u32 LE), the header (training state and section lengths), then the
//! sections' bytes (burn's burnpack records of the model and, in `last`, the optimiser). A file
//! whose length does not match its header is refused as corrupt.

use std::path::{Path, PathBuf};

use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::TrialConfig;
use crate::config::nonfinite;
use crate::train::metrics::{FullMetrics, SplitMetrics};
use crate::util::atomic_write;

const MAGIC: &[u8; 8] = b"SWEEPCKP";
const FORMAT_VERSION: u32 = 1;

/// Which checkpoint of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointKind {
    /// The model after the latest completed epoch, with the optimiser state to resume from.
    Last,
    /// The model at the epoch where the run's objective was best.
    Best,
}

impl CheckpointKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckpointKind::Last => "last",
            CheckpointKind::Best => "best",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "last" => Some(CheckpointKind::Last),
            "best" => Some(CheckpointKind::Best),
            _ => None,
        }
    }
}

/// One completed epoch, as training reports it and as checkpoints remember it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// 1-based epoch number.
    pub epoch: usize,
    pub train: SplitMetrics,
    pub val: SplitMetrics,
    /// The validation split scored at its images' original size (`data.eval_full_resolution`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_full: Option<FullMetrics>,
    pub learning_rate: f64,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
    /// When it ended (Unix seconds).
    pub wall: f64,
}

impl EpochSummary {
    /// The value of `<split>_<metric>` (e.g. `val_iou`).
    pub fn metric(&self, objective_name: &str) -> Option<f64> {
        let (split, metric) = crate::config::Objective::parse_name(objective_name)?;
        match split {
            crate::config::Split::Train => self.train.get(metric),
            crate::config::Split::Val => self.val.get(metric).or_else(|| self.val_full.and_then(|f| f.get(metric))),
            crate::config::Split::Cost => None,
        }
    }
}

/// The best epoch so far by the run's objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestSoFar {
    pub epoch: usize,
    #[serde(with = "nonfinite")]
    pub value: f64,
}

/// Where training stands: enough to resume exactly and to re-log what the tracker may have missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Hash of the TrialConfig this state belongs to.
    pub config_hash: String,
    /// Completed epochs; training resumes at this 0-based epoch.
    pub epochs_done: usize,
    pub best: Option<BestSoFar>,
    /// Every completed epoch's metrics.
    pub history: Vec<EpochSummary>,
}

impl TrainState {
    pub fn new(config_hash: String) -> Self {
        Self { config_hash, epochs_done: 0, best: None, history: Vec::new() }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    kind: CheckpointKind,
    state: TrainState,
    sections: Vec<(String, u64)>,
}

/// A checkpoint read back from disk.
pub struct Checkpoint {
    pub kind: CheckpointKind,
    pub state: TrainState,
    pub model: Bytes,
    pub optimizer: Option<Bytes>,
}

/// A checkpoint file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct CheckpointError {
    pub path: PathBuf,
    pub reason: String,
}

/// The files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialDir {
    pub root: PathBuf,
}

impl TrialDir {
    /// The directory of trial `id` of `sweep` under the runs directory: `<runs>/<sweep>/<id>`.
    pub fn of(runs_dir: &Path, sweep: &str, id: &str) -> Self {
        Self::new(runs_dir.join(sweep).join(id))
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn checkpoint_path(&self, kind: CheckpointKind) -> PathBuf {
        self.root.join("checkpoints").join(format!("{}.ckpt", kind.as_str()))
    }

    /// Reads the resolved config the run was started with.
    pub fn read_config(&self) -> Result<TrialConfig, CheckpointError> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError {
            path: path.clone(),
            reason: format!("cannot read the trial's config ({e}); is this a trial directory?"),
        })?;
        serde_json::from_str(&text).map_err(|e| CheckpointError { path, reason: format!("not a valid trial config: {e}") })
    }

    /// Writes the resolved config (atomically), creating the directory.
    pub fn write_config(&self, config: &TrialConfig) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        let text = serde_json::to_string_pretty(config).expect("a TrialConfig always serialises");
        atomic_write(&self.config_path(), text.as_bytes())
    }

    /// Removes the temporary files that writers killed in the middle of a checkpoint or config
    /// write left in the directory, never one a live writer on this host is using (see
    /// [`crate::util::remove_stale_temp_files`]).
    pub fn remove_stale_temp_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = crate::util::remove_stale_temp_files(&self.root)?;
        removed.extend(crate::util::remove_stale_temp_files(&self.root.join("checkpoints"))?);
        Ok(removed)
    }

    /// Writes a checkpoint atomically.
    pub fn save(&self, kind: CheckpointKind, state: &TrainState, model: &[u8], optimizer: Option<&[u8]>) -> std::io::Result<PathBuf> {
        let path = self.checkpoint_path(kind);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut sections = vec![("model".to_string(), model.len() as u64)];
        if let Some(o) = optimizer {
            sections.push(("optimizer".to_string(), o.len() as u64));
        }
        let header = serde_json::to_vec(&Header { kind, state: state.clone(), sections }).expect("a header always serialises");
        let mut bytes = Vec::with_capacity(16 + header.len() + model.len() + optimizer.map_or(0, <[u8]>::len));
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(model);
        if let Some(o) = optimizer {
            bytes.extend_from_slice(o);
        }
        atomic_write(&path, &bytes)?;
        Ok(path)
    }

    /// Reads a checkpoint; Ok(None) if the run has none of this kind yet.
    pub fn load(&self, kind: CheckpointKind) -> Result<Option<Checkpoint>, CheckpointError> {
        let path = self.checkpoint_path(kind);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CheckpointError { path, reason: e.to_string() }),
        };
        parse(&bytes).map(Some).map_err(|reason| CheckpointError { path, reason })
    }

    /// Reads only a checkpoint's training state (its header), not the model: what a resume
    /// needs to know which epoch a checkpoint holds. Ok(None) if there is none of this kind.
    pub fn read_state(&self, kind: CheckpointKind) -> Result<Option<TrainState>, CheckpointError> {
        use std::io::Read;
        let path = self.checkpoint_path(kind);
        let fail = |reason: String| CheckpointError { path: path.clone(), reason };
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fail(e.to_string())),
        };
        let mut prefix = [0u8; 16];
        file.read_exact(&mut prefix).map_err(|_| fail(corrupt("truncated header")))?;
        let header_len = check_prefix(&prefix).map_err(fail)?;
        let mut header = vec![0u8; header_len];
        file.read_exact(&mut header).map_err(|_| fail(corrupt("truncated header")))?;
        let header: Header = serde_json::from_slice(&header).map_err(|e| fail(corrupt(&format!("bad header: {e}"))))?;
        Ok(Some(header.state))
    }
}

fn corrupt(what: &str) -> String {
    format!("corrupt checkpoint ({what}); delete it to restart the trial from scratch")
}

/// Checks the magic and the format version of a checkpoint's first 16 bytes; returns the
/// header's length. The error is the reason, for a [`CheckpointError`].
fn check_prefix(bytes: &[u8]) -> Result<usize, String> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a sweep checkpoint"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version != FORMAT_VERSION {
        return Err(format!("checkpoint format {version} is not supported by this build (it reads format {FORMAT_VERSION})"));
    }
    Ok(u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize)
}

fn parse(bytes: &[u8]) -> Result<Checkpoint, String> {
    let header_len = check_prefix(bytes)?;
    let header_end = 16usize.checked_add(header_len).filter(|&e| e <= bytes.len()).ok_or_else(|| corrupt("truncated header"))?;
    let header: Header = serde_json::from_slice(&bytes[16..header_end]).map_err(|e| corrupt(&format!("bad header: {e}")))?;
    let total: u64 = header.sections.iter().map(|(_, len)| len).sum();
    if header_end as u64 + total != bytes.len() as u64 {
        return Err(corrupt(&format!("expected {} bytes, found {}", header_end as u64 + total, bytes.len())));
    }
    let mut offset = header_end;
    let (mut model, mut optimizer) = (None, None);
    for (name, len) in &header.sections {
        let section = Bytes::from_bytes_vec(bytes[offset..offset + *len as usize].to_vec());
        offset += *len as usize;
        match name.as_str() {
            "model" => model = Some(section),
            "optimizer" => optimizer = Some(section),
            other => return Err(corrupt(&format!("unknown section {other}"))),
        }
    }
    let model = model.ok_or_else(|| corrupt("no model section"))?;
    Ok(Checkpoint { kind: header.kind, state: header.state, model, optimizer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = TrialDir::new(dir.path());
        let mut state = TrainState::new("abc".into());
        state.epochs_done = 2;
        state.best = Some(BestSoFar { epoch: 1, value: f64::NAN });
        run.save(CheckpointKind::Last, &state, b"model-bytes", Some(b"optim")).unwrap();
        let ck = run.load(CheckpointKind::Last).unwrap().unwrap();
        assert_eq!(&ck.model[..], b"model-bytes");
        assert_eq!(&ck.optimizer.unwrap()[..], b"optim");
        assert_eq!(ck.state.epochs_done, 2);
        assert!(ck.state.best.unwrap().value.is_nan());
        assert!(run.load(CheckpointKind::Best).unwrap().is_none());
        assert_eq!(run.read_state(CheckpointKind::Last).unwrap().unwrap().epochs_done, 2, "the header alone says the epoch");
        assert!(run.read_state(CheckpointKind::Best).unwrap().is_none());

        let path = run.checkpoint_path(CheckpointKind::Last);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = run.load(CheckpointKind::Last).err().unwrap().to_string();
        assert!(err.contains("corrupt checkpoint") && err.contains("last.ckpt"), "{err}");
    }
}
