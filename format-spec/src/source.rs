//! Where a [`crate::Snapshot`] reads its bytes from.
//!
//! The reader only ever asks for "exactly these bytes at this offset", from
//! any thread at once (verification and analysis read in parallel). A plain
//! snapshot file answers with `pread`; an age-encrypted one
//! ([`crate::encryption::AgeSource`]) decrypts the 64 KiB age chunks that hold
//! the bytes. Offsets and the length are those of the *plaintext* snapshot, so
//! the reader's checks (SPEC.md §9) are the same for both.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::{FormatError, Result};

/// Random-access, thread-safe bytes of one snapshot.
///
/// Invariant: [`Source::len`] never changes for the life of the source; a
/// file that shrinks underneath is reported by reads as
/// [`FormatError::Truncated`], never by returning fewer bytes.
pub trait Source: Send + Sync {
    /// Length of the snapshot in bytes (for an encrypted file: of its
    /// plaintext, authenticated when the source was opened).
    fn len(&self) -> u64;

    /// Whether the snapshot is empty (length 0).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`. The caller
    /// has checked the range against [`Source::len`]. Errors name what failed:
    /// [`FormatError::Truncated`] when the underlying file ended early,
    /// [`FormatError::Decrypt`] when an encrypted chunk does not authenticate.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// For an encrypted source, its clear-text age header (for `rdlv info`).
    fn encryption(&self) -> Option<&crate::encryption::AgeHeader> {
        None
    }

    /// For an encrypted source, how much it has decrypted (for benchmarks).
    fn decryption_stats(&self) -> Option<crate::encryption::AgeStats> {
        None
    }
}

/// A plain snapshot file: positional reads on the file.
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// Wraps an opened file; its length is taken now.
    pub fn new(file: File) -> Result<FileSource> {
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                // The file shrank after open.
                FormatError::Truncated {
                    section: "file".into(),
                    offset,
                    needed: buf.len() as u64,
                    available: 0,
                }
            } else {
                FormatError::Io(e)
            }
        })
    }
}
