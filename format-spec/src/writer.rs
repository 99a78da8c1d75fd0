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

/// Writes one snapshot to any `Write` (a file, a pipe, stdout).
///
/// Order of calls: [`SnapshotWriter::new`], [`SnapshotWriter::write_metadata`] once,
/// any number of [`SnapshotWriter::write_memory`] and [`SnapshotWriter::write_file`],
/// then [`SnapshotWriter::finish`]. Memory regions may come in any order but must not overlap.
pub struct SnapshotWriter<W: Write> {
    _w: W,
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot: writes the file header.
    pub fn new(_out: W, _options: WriteOptions) -> Result<Self> {
        todo!()
    }

    /// Writes the metadata block(s). Must be called exactly once, before memory.
    pub fn write_metadata(&mut self, _meta: &Metadata) -> Result<()> {
        todo!()
    }

    /// Splits the regions into chunks, elides all-zero pages (recorded as zero
    /// ranges in the index), compresses the rest in parallel and writes them.
    /// `progress` is called from the writing thread as chunks are written.
    pub fn write_memory(
        &mut self,
        _regions: &[MemoryRegion<'_>],
        _progress: &mut dyn FnMut(WriteProgress),
    ) -> Result<()> {
        todo!()
    }

    /// Embeds a whole file (the executable), compressed.
    pub fn write_file(&mut self, _role: FileRole, _name: &str, _bytes: &[u8]) -> Result<()> {
        todo!()
    }

    /// Writes the index and footer, flushes, and returns the output and sizes.
    pub fn finish(self) -> Result<(W, WriteStats)> {
        todo!()
    }
}
