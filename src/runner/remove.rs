//! Removing trials (`sweep rm`): their tracker rows in one transaction, then their directories;
//! or a whole sweep (`sweep rm --sweep S --all`), its rows and then its directory.
//!
//! Never half: every trial directory is checked to belong to this tracker before anything is
//! removed (a runs directory shared with another tracker holds its trials under the same ids),
//! the tracker refuses the whole removal when one of the trials is running
//! ([`StoreError::Running`]), and only once the rows are gone are the directories deleted, so
//! that a directory is never left without its rows being removed first. A directory that cannot
//! be deleted is reported; the trial is already gone from the tracker and the directory can be
//! deleted by hand.

use std::path::{Path, PathBuf};

use super::TrackerMark;
use crate::store::{Store, TrialRow};
use crate::train::checkpoint::TrialDir;

/// What [`remove_trials`] did.
#[derive(Debug, Default)]
pub struct Removal {
    /// The removed trials, as they were.
    pub removed: Vec<TrialRow>,
    /// Trial directories deleted.
    pub dirs: Vec<PathBuf>,
    /// Trial directories that could not be deleted, with why.
    pub left: Vec<(PathBuf, std::io::Error)>,
}

/// Removes the trials `ids` from the tracker and their directories under `runs_dir`.
pub fn remove_trials(store: &mut dyn Store, runs_dir: &Path, ids: &[String]) -> crate::Result<Removal> {
    let mark = TrackerMark::of(store)?;
    for id in ids {
        let trial = store.trial(id)?;
        let dir = TrialDir::of(runs_dir, &trial.sweep, &trial.id);
        mark.check_dir(&dir)?;
    }
    let removed = store.remove(ids)?;
    let mut removal = Removal { removed, ..Removal::default() };
    for trial in &removal.removed {
        let dir = TrialDir::of(runs_dir, &trial.sweep, &trial.id).root;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removal.dirs.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => removal.left.push((dir, e)),
        }
    }
    Ok(removal)
}

/// Removes the sweep `name` from the tracker (its trials and everything that names it) and its
/// directory under `runs_dir` (trial directories, charts, logs). Refused before anything is removed
/// when a trial directory there belongs to another tracker (a shared runs directory).
pub fn remove_sweep(store: &mut dyn Store, runs_dir: &Path, name: &str) -> crate::Result<Removal> {
    let mark = TrackerMark::of(store)?;
    let dir = runs_dir.join(name);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            mark.check_dir(&TrialDir::new(entry.path()))?;
        }
    }
    let removed = store.remove_sweep(name)?;
    let mut removal = Removal { removed, ..Removal::default() };
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => removal.dirs.push(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => removal.left.push((dir, e)),
    }
    Ok(removal)
}
