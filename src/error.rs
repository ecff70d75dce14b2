//! The library's error type, sorted by what the user can do about a failure.
//!
//! Every module has its own typed error (`DataError`, `SpecError`, `StoreError`, `TrainError`);
//! this one gathers them so that the binary can choose an exit code without parsing messages:
//! 2 when the input was wrong (a file, a key, a value the user can fix), 1 when something failed
//! while running. Messages name the file or key, what was wrong and what would be right.

use std::path::PathBuf;

use crate::data::DataError;
use crate::report::ReportError;
use crate::store::StoreError;
use crate::study::spec::SpecError;
use crate::train::TrainError;

/// Any failure of a `sweep` library operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A command-line value that cannot be used (an unknown run id, a bad `--where`).
    #[error("{0}")]
    Usage(String),
    /// An I/O failure on a path the tool writes or reads.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code this error should produce: 2 for bad input, 1 for a runtime failure.
    pub fn exit_code(&self) -> i32 {
        let bad_input = match self {
            Error::Data(e) => e.is_bad_input(),
            Error::Spec(_) => true,
            Error::Store(e) => e.is_bad_input(),
            Error::Train(e) => e.is_bad_input(),
            Error::Report(e) => e.is_bad_input(),
            Error::Usage(_) => true,
            Error::Io { .. } => false,
        };
        if bad_input { 2 } else { 1 }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
