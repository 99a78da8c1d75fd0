//! Typed errors of the analyzer library.

use std::sync::Arc;

/// Result alias for the analyzer.
pub type Result<T, E = AnalyzeError> = std::result::Result<T, E>;

/// Errors while analyzing a snapshot. The binary maps them to exit codes by
/// variant, never by message: `Snapshot`/`Binary`/`Mismatch`/`Corrupt`/
/// `Unreadable`/`Io` are input problems (exit 3), `NotFound`/`NoGoroutine`/
/// `NoFrame`/`Unsupported`/`Redacted` are unanswerable requests (exit 1).
/// `Clone` so that a [`crate::Session`] can cache a failure once and hand it
/// to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
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
    /// A memory read that reached bytes `rdlv redact` removed. Never
    /// answered with zeros, so a redacted value cannot pass for a real one.
    #[error("memory at 0x{addr:x} (+{len} bytes) was redacted from this snapshot (rdlv redact keeps only what goroutine, stack and scheduler analysis read)")]
    Redacted {
        /// First redacted byte of the read.
        addr: u64,
        /// Bytes of the read from `addr` on.
        len: u64,
    },
    /// No live goroutine has this id.
    #[error("no goroutine {goid} in this snapshot{}", nearest_hint(.nearest))]
    NoGoroutine {
        /// The id asked for.
        goid: u64,
        /// The nearest ids that exist (empty until a caller looks them up).
        nearest: Vec<u64>,
    },
    /// A goroutine has no frame with this index.
    #[error("frame {frame} does not exist: goroutine {goid} has {count} frames{}", frame_range(*.count))]
    NoFrame {
        /// The goroutine.
        goid: u64,
        /// The frame index asked for (0 is the innermost).
        frame: usize,
        /// How many frames the goroutine has.
        count: usize,
    },
    /// A requested thing does not exist (symbol, thread, source line).
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

/// What kind of failure an error is, for a caller that maps errors to
/// exit codes or retries: decided by the variant alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input (snapshot, executable, target memory) is unusable.
    Input,
    /// The request cannot be answered from this snapshot.
    Unanswerable,
}

impl AnalyzeError {
    /// The class of this error (an exhaustive match: a new variant must
    /// choose its class here).
    pub fn class(&self) -> ErrorClass {
        match self {
            AnalyzeError::Snapshot(_)
            | AnalyzeError::Binary(_)
            | AnalyzeError::Mismatch(_)
            | AnalyzeError::Corrupt(_)
            | AnalyzeError::Unreadable { .. }
            | AnalyzeError::Io(_) => ErrorClass::Input,
            AnalyzeError::NoGoroutine { .. }
            | AnalyzeError::Redacted { .. }
            | AnalyzeError::NoFrame { .. }
            | AnalyzeError::NotFound(_)
            | AnalyzeError::Unsupported(_) => ErrorClass::Unanswerable,
        }
    }
}

fn nearest_hint(nearest: &[u64]) -> String {
    if nearest.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = nearest.iter().map(u64::to_string).collect();
    format!(
        "; nearest goroutines: {} (list them with `goroutines`)",
        ids.join(", ")
    )
}

fn frame_range(count: usize) -> String {
    match count {
        0 => String::new(),
        n => format!(" (0..{})", n - 1),
    }
}
