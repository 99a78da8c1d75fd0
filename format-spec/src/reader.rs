//! Random-access snapshot reader.

use std::path::Path;

use crate::{FileRole, Metadata, Result};

/// What the index says about a captured address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    /// Bytes stored in a compressed chunk.
    Data,
    /// Pages that were present but all zero.
    Zero,
}

/// One entry of the memory index, sorted by address, non-overlapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    /// First address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// Data or zero.
    pub kind: RangeKind,
}

/// Result of [`Snapshot::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Blocks checked.
    pub blocks: u64,
    /// Memory chunks decompressed and checked.
    pub chunks: u64,
    /// Bytes of the file covered by checks.
    pub bytes: u64,
}

/// An open snapshot. Cheap to share across threads (`Sync`): reads use
/// positional I/O and a bounded cache of decompressed chunks.
pub struct Snapshot {
    _private: (),
}

impl Snapshot {
    /// Opens a snapshot file: checks header and footer, reads and checks the
    /// index and metadata. Memory chunks are not touched.
    pub fn open(_path: &Path) -> Result<Snapshot> {
        todo!()
    }

    /// The metadata block.
    pub fn metadata(&self) -> &Metadata {
        todo!()
    }

    /// Format version found in the header (major, minor).
    pub fn version(&self) -> (u16, u16) {
        todo!()
    }

    /// Size of the snapshot file in bytes.
    pub fn file_len(&self) -> u64 {
        todo!()
    }

    /// The captured memory index (data and zero ranges), sorted by address.
    pub fn memory_ranges(&self) -> &[MemoryRange] {
        todo!()
    }

    /// Reads `buf.len()` bytes at `addr`. Fails with [`crate::FormatError::Unmapped`]
    /// if any byte lies outside captured ranges (callers may then try the
    /// executable), or with a corruption error naming the chunk and check.
    pub fn read_memory(&self, _addr: u64, _buf: &mut [u8]) -> Result<()> {
        todo!()
    }

    /// Bytes of the embedded file with this role, decompressed, or `None`.
    pub fn embedded_file(&self, _role: FileRole) -> Result<Option<Vec<u8>>> {
        todo!()
    }

    /// Compressed and uncompressed sizes of memory: (compressed, uncompressed data, zero).
    pub fn memory_sizes(&self) -> (u64, u64, u64) {
        todo!()
    }

    /// Checks every block checksum and decompresses every chunk.
    pub fn verify(&self) -> Result<VerifyReport> {
        todo!()
    }
}
