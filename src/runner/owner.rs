//! Which tracker a trial directory belongs to. Trial ids (`<sweep>-<n>`) are numbered by each
//! tracker, so two trackers that share a runs directory would name different trials alike and
//! overwrite each other's checkpoints. Each trial directory therefore records its tracker's
//! identity (`tracker.json` beside `config.json`) when a worker of that tracker first trains it;
//! a worker of another tracker refuses it, and `sweep run` refuses a sweep directory that holds
//! another tracker's trials before it registers anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, StoreResult};
use crate::train::checkpoint::TrialDir;

/// A tracker's identity and, for messages, where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerMark {
    pub id: String,
    /// The tracker's location (a PostgreSQL URL without its password).
    pub store: String,
}

impl TrackerMark {
    /// The mark of `store`.
    pub fn of(store: &dyn Store) -> StoreResult<Self> {
        Ok(Self { id: store.tracker_id()?, store: store.location() })
    }

    fn path(dir: &TrialDir) -> PathBuf {
        dir.root.join("tracker.json")
    }

    /// The mark a trial directory holds, if any (a directory written before marks existed, or
    /// not yet trained, has none).
    pub fn read(dir: &TrialDir) -> Option<Self> {
        serde_json::from_str(&std::fs::read_to_string(Self::path(dir)).ok()?).ok()
    }

    /// Takes `dir` for this tracker: an error naming both trackers if another one's mark is
    /// there (and nothing is written), else the mark is written if it is missing.
    pub fn claim(&self, dir: &TrialDir) -> crate::Result<()> {
        match Self::read(dir) {
            Some(owner) if owner.id != self.id => Err(self.clash(&dir.root, owner).into()),
            Some(_) => Ok(()),
            None => {
                std::fs::create_dir_all(&dir.root).map_err(|e| crate::Error::io(&dir.root, e))?;
                let text = serde_json::to_string_pretty(self).expect("a mark serialises");
                crate::util::atomic_write(&Self::path(dir), text.as_bytes()).map_err(|e| crate::Error::io(Self::path(dir), e))
            }
        }
    }

    /// An error naming both trackers if `dir` belongs to another one; nothing is written.
    pub fn check_dir(&self, dir: &TrialDir) -> crate::Result<()> {
        match Self::read(dir) {
            Some(owner) if owner.id != self.id => Err(self.clash(&dir.root, owner).into()),
            _ => Ok(()),
        }
    }

    /// Checks every trial directory of `sweep` under `runs_dir`: an error naming both trackers
    /// for the first that belongs to another one.
    pub fn check_sweep_dir(&self, runs_dir: &Path, sweep: &str) -> crate::Result<()> {
        let Ok(entries) = std::fs::read_dir(runs_dir.join(sweep)) else { return Ok(()) };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        for root in dirs {
            if let Some(owner) = Self::read(&TrialDir::new(&root)).filter(|owner| owner.id != self.id) {
                return Err(self.clash(&root, owner).into());
            }
        }
        Ok(())
    }

    fn clash(&self, dir: &Path, owner: TrackerMark) -> StoreError {
        StoreError::OtherTracker {
            dir: dir.to_path_buf(),
            owner: owner.store,
            owner_id: owner.id,
            this: self.store.clone(),
            this_id: self.id.clone(),
        }
    }
}
