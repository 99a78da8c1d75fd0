//! Typed errors of the analyzer library.

use std::sync::Arc;

/// Result alias for the analyzer.
pub type Result<T, E = AnalyzeError> = std::result::Result<T, E>;

/// Errors while analyzing a snapshot. The binary maps them to exit codes:
/// `Snapshot`/`Binary`/`Mismatch`/`Corrupt` are input problems (exit 3),
/// `NotFound`/`Unsupported` are unanswerable requests (exit 1).
/// `Clone` so that a [`crate::Session`] can cache a failure once and hand it
/// to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyzeError {
    /// The snapshot file itself is unreadable or corrupt.
    #[error(transparent)]
    Snapshot(Arc<rdlv_format::FormatError>),
    /// The executable could not be parsed.
    #[error("executable: {0}")]
    Binary(String),
    /// The executable does not belong to the snapshot.
    #[error("{0}")]
    Mismatch(String),
    /// Memory of the target is inconsistent with what the runtime model expects.
    #[error("{0}")]
    Corrupt(String),
    /// A memory read outside anything captured.
    #[error("cannot read {len} bytes at 0x{addr:x}: not captured in the snapshot")]
    Unreadable {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// A requested thing does not exist (goroutine, symbol, frame).
    #[error("{0}")]
    NotFound(String),
    /// Something this version of rdlv cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// I/O error.
    #[error("I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

impl From<rdlv_format::FormatError> for AnalyzeError {
    fn from(e: rdlv_format::FormatError) -> Self {
        AnalyzeError::Snapshot(Arc::new(e))
    }
}

impl From<std::io::Error> for AnalyzeError {
    fn from(e: std::io::Error) -> Self {
        AnalyzeError::Io(Arc::new(e))
    }
}
