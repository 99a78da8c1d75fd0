//! Streaming snapshot writer.

use std::io::Write;

use crate::{FileRole, Metadata, Result};

/// Tuning for [`SnapshotWriter`].
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// zstd level for memory chunks (1..=19). Default 1: compression happens
    /// after the target resumed, but total capture time still matters.
    pub level: i32,
    /// Uncompressed size of one memory chunk. Default 256 KiB. Smaller chunks make
    /// random reads cheaper; larger ones compress slightly better.
    pub chunk_size: usize,
    /// Worker threads for compression (0 = rayon's default pool).
    pub threads: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { level: 1, chunk_size: 256 * 1024, threads: 0 }
    }
}

/// A contiguous run of target memory handed to the writer.
#[derive(Debug, Clone, Copy)]
pub struct MemoryRegion<'a> {
    /// Target virtual address of `data[0]`.
    pub addr: u64,
    /// The bytes.
    pub data: &'a [u8],
}

/// Progress callback argument: bytes of memory consumed so far of a total.
#[derive(Debug, Clone, Copy)]
pub struct WriteProgress {
    /// Uncompressed bytes processed so far.
    pub done: u64,
    /// Uncompressed bytes in this call.
    pub total: u64,
}

/// Sizes after [`SnapshotWriter::finish`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    /// Bytes written to the output in total.
    pub file_bytes: u64,
    /// Uncompressed memory bytes given to the writer.
    pub memory_bytes: u64,
    /// Of those, bytes in all-zero pages that were elided.
    pub zero_bytes: u64,
    /// Compressed bytes of memory chunks.
    pub compressed_memory_bytes: u64,
}

