//! Exports of a snapshot to the tools Go developers already use: the
//! goroutine profile `go tool pprof` reads ([`pprof`]), the sampled heap
//! profile ([`heapprof`], sharing `pprof`'s builder), an ELF core for
//! `dlv core` and gdb ([`core`]), folded stacks for flame-graph tools
//! ([`folded`]), and a self-contained HTML report ([`report`]).
//!
//! Every export writes through [`AtomicFile`]: a temporary file in the
//! destination's directory, renamed over the destination only once the
//! export is complete, so a failed export (a damaged snapshot, a full disk)
//! leaves no partial output behind.

pub mod core;
pub mod folded;
pub mod heapprof;
pub mod pprof;
pub mod report;
pub mod retained;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{AnalyzeError, Result};

/// Attempts at finding an unused temporary name before giving up.
const MAX_TEMP_ATTEMPTS: u32 = 100;

/// An output file under construction: a temporary file beside `dest`,
/// removed on drop unless [`AtomicFile::commit`] renamed it into place.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temporary file (mode 0600: exports carry process data).
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                AnalyzeError::from(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("output {} is not a file name", dest.display()),
                ))
            })?;
        let mut last_err = None;
        for _ in 0..MAX_TEMP_ATTEMPTS {
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.rdlv-{}-{n}.tmp", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
            {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file,
                        temp,
                        dest: dest.to_path_buf(),
                        committed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => {
                    return Err(AnalyzeError::from(std::io::Error::new(
                        e.kind(),
                        format!("cannot create a file in {}: {e}", dir.display()),
                    )))
                }
            }
        }
        Err(AnalyzeError::from(last_err.unwrap_or_else(|| {
            std::io::Error::other("no free temporary name")
        })))
    }

    /// The temporary file.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes to disk and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.temp, &self.dest).map_err(|e| {
            AnalyzeError::from(std::io::Error::new(
                e.kind(),
                format!("cannot rename into {}: {e}", self.dest.display()),
            ))
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn uncommitted_output_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("out.pb.gz");
        {
            let mut f = AtomicFile::create(&dest).expect("create");
            f.file().write_all(b"partial").expect("write");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        let mut f = AtomicFile::create(&dest).expect("create");
        f.file().write_all(b"whole").expect("write");
        f.commit().expect("commit");
        assert_eq!(std::fs::read(&dest).expect("read"), b"whole");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
