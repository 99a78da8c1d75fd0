//! Typed capture errors. Every message says what failed and what to do next,
//! because the person reading it is usually on call with a stuck service.

use std::path::PathBuf;

use nix::errno::Errno;

/// Everything that can make a capture fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// No process with this pid is visible in our pid namespace.
    #[error("no process {pid}: /proc/{pid} does not exist (is the pid from another pid namespace or container?)")]
    NoSuchProcess {
        /// The pid asked for.
        pid: u32,
    },
    /// The target disappeared while we were stopping or copying it.
    #[error("process {pid} exited during capture; nothing written")]
    Exited {
        /// The pid.
        pid: u32,
    },
    /// The kernel refused ptrace or memory access; `hint` lists the ways out.
    #[error("permission denied to trace process {pid} ({what}): {hint}")]
    Permission {
        /// The pid.
        pid: u32,
        /// Which operation was refused.
        what: String,
        /// Actionable explanation (ptrace_scope, capabilities, tracer).
        hint: String,
    },
    /// Reading or parsing a `/proc` file failed.
    #[error("reading {path}: {source}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `/proc` file had content we do not understand.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// Which file or record.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A ptrace request failed for a reason other than the thread exiting.
    #[error("ptrace {op} on thread {tid} failed: {errno}; the target was resumed")]
    Ptrace {
        /// The request (`SEIZE`, `INTERRUPT`, `GETREGS`, …).
        op: &'static str,
        /// Thread id.
        tid: u32,
        /// The error.
        errno: Errno,
    },
    /// The set of threads never stopped changing.
    #[error("process {pid} kept creating threads: not every thread stopped after {passes} scans of /proc/{pid}/task; the target was resumed")]
    ThreadsUnstable {
        /// The pid.
        pid: u32,
        /// Scans made.
        passes: u32,
    },
    /// Stopping or copying took longer than `--max-pause`.
    #[error(
        "pause budget exceeded after {elapsed_ms} ms ({stage}); nothing written; raise --max-pause"
    )]
    PauseBudget {
        /// Milliseconds the target had been stopped when we gave up.
        elapsed_ms: u64,
        /// What we were doing.
        stage: &'static str,
    },
    /// Even the fastest possible copy would exceed `--max-pause`; nothing was stopped.
    #[error("copying {bytes} bytes would take at least {best_case_ms} ms, more than --max-pause {max_pause_ms} ms; nothing was stopped; raise --max-pause")]
    PauseBudgetTooSmall {
        /// Bytes to copy.
        bytes: u64,
        /// Lower bound of the copy time.
        best_case_ms: u64,
        /// The budget.
        max_pause_ms: u64,
    },
    /// Not enough RAM to hold the copy; nothing was stopped.
    #[error("the copy needs {needed} bytes of RAM but only {available} are available (MemAvailable or the memory cgroup limit); nothing was stopped; free memory or raise the limit")]
    OutOfMemory {
        /// Bytes needed.
        needed: u64,
        /// Bytes available (`MemAvailable`).
        available: u64,
    },
    /// SIGINT, SIGTERM or SIGHUP arrived.
    #[error("interrupted by signal {signal}; nothing written; the target was resumed")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The output exists and `--force` was not given.
    #[error("{file} already exists; pass --force to overwrite it")]
    Exists {
        /// The path.
        file: PathBuf,
    },
    /// The disk filled up while writing.
    #[error("no space left on device writing {file}; nothing written; the target was resumed")]
    NoSpace {
        /// The path (or `-`).
        file: String,
    },
    /// Any other failure creating, writing or linking the output.
    #[error("writing {file}: {source}; nothing written")]
    Output {
        /// The path (or `-`).
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The snapshot library refused what we gave it.
    #[error("encoding the snapshot for {file}: {source}; nothing written")]
    Format {
        /// The path (or `-`).
        file: String,
        /// The cause.
        source: rdlv_format::FormatError,
    },
    /// The finished file did not read back correctly.
    #[error("the written snapshot {file} failed verification: {source}; it was removed")]
    Verify {
        /// The path.
        file: String,
        /// The cause.
        source: rdlv_format::FormatError,
    },
    /// The target asked not to be dumped.
    #[error("process {pid} is not dumpable (it called prctl(PR_SET_DUMPABLE, 0) or runs a setuid/setcap binary): it asked that its memory not be dumped, which core dumps and gcore respect; nothing was stopped; pass --force to capture it anyway")]
    NotDumpable {
        /// The pid.
        pid: u32,
    },
    /// Bad command-line usage detected after parsing (e.g. snapshot to a terminal).
    #[error("{0}")]
    Usage(String),
    /// `--redact`: the `rdlv redact` child failed.
    #[error("--redact: {} redact failed: {detail}; nothing written; the target was resumed", .rdlv.display())]
    Redact {
        /// The analyzer that ran.
        rdlv: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl CaptureError {
    /// Process exit code for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CaptureError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// An inconsistent copy plan (a bug, reported rather than a page lost).
    pub fn copy_plan(detail: impl Into<String>) -> CaptureError {
        CaptureError::Parse {
            what: "copy plan".into(),
            detail: detail.into(),
        }
    }

    /// Wraps an I/O error from writing `file`, turning ENOSPC/EDQUOT into [`CaptureError::NoSpace`].
    pub fn output(file: &str, source: std::io::Error) -> CaptureError {
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => CaptureError::NoSpace {
                file: file.to_string(),
            },
            _ => CaptureError::Output {
                file: file.to_string(),
                source,
            },
        }
    }

    /// Wraps a snapshot-library error from writing `file`, keeping ENOSPC recognisable.
    pub fn format(file: &str, source: rdlv_format::FormatError) -> CaptureError {
        match source {
            rdlv_format::FormatError::Io(io) => CaptureError::output(file, io),
            other => CaptureError::Format {
                file: file.to_string(),
                source: other,
            },
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_becomes_no_space() {
        let err = CaptureError::output("x.snap", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(err, CaptureError::NoSpace { .. }));
        assert_eq!(
            err.to_string(),
            "no space left on device writing x.snap; nothing written; the target was resumed"
        );
        let other = CaptureError::output("x.snap", std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(other, CaptureError::Output { .. }));
    }

    #[test]
    fn usage_exit_code_is_two() {
        assert_eq!(CaptureError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CaptureError::Exited { pid: 1 }.exit_code(), 1);
    }
}
