//! The library's error type, sorted by what the user can do about a failure.
//!
//! Every module has its own typed error (`DataError`, `SpecError`, `StoreError`, `TrainError`,
//! ...); this one gathers them so that the binary chooses an exit code in one place
//! ([`Error::exit_code`]) without parsing messages: 2 when the input was wrong (a file, a key, a
//! value the user can fix), 1 when something failed while running. Messages name the file or key,
//! what was wrong and what would be right. [`Context`] says what was being done when it failed.
//!
//! ```
//! use sweep::error::{Context, Error};
//! let missing: Result<(), Error> = Err(Error::Usage("--sweep hue: no such sweep; did you mean hues?".into()));
//! let err = missing.context("reading the tracker").unwrap_err();
//! assert_eq!(err.exit_code(), 2, "bad input stays bad input under context");
//! assert_eq!(sweep::util::error_chain(&err), "reading the tracker: --sweep hue: no such sweep; did you mean hues?");
//! ```

use std::path::PathBuf;

use crate::config::Invalid;
use crate::data::DataError;
use crate::export::ExportError;
use crate::report::ReportError;
use crate::report::importance::ImportanceError;
use crate::store::StoreError;
use crate::study::spec::SpecError;
use crate::train::TrainError;
use crate::train::device::DeviceError;
use crate::ui::UiError;

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
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Ui(#[from] UiError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Importance(#[from] ImportanceError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An I/O failure that is not about a path the user gave (standard output, the executable).
    #[error(transparent)]
    System(#[from] std::io::Error),
    /// A runtime failure said in words (no trial has a value yet).
    #[error("{0}")]
    Other(String),
    /// What was being done when `source` failed ("preparing the dataset"); its exit code.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
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
    pub fn exit_code(&self) -> u8 {
        let bad_input = match self {
            Error::Data(e) => e.is_bad_input(),
            Error::Store(e) => e.is_bad_input(),
            Error::Train(e) => e.is_bad_input(),
            Error::Report(e) => e.is_bad_input(),
            Error::Ui(e) => e.is_bad_input(),
            Error::Export(e) => e.is_bad_input(),
            Error::Spec(_) | Error::Usage(_) | Error::Device(_) | Error::Invalid(_) => true,
            Error::Io { .. } | Error::Importance(_) | Error::Json(_) | Error::System(_) | Error::Other(_) => false,
            Error::Context { source, .. } => return source.exit_code(),
        };
        if bad_input { 2 } else { 1 }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Says what was being done when an operation failed, as `anyhow`'s context does, keeping the
/// failure's exit code: `prepare_data(..).context("preparing the dataset")?`.
pub trait Context<T> {
    fn context(self, what: &str) -> Result<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.with_context(|| what.to_string())
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Context { what: what(), source: Box::new(e.into()) })
    }
}
