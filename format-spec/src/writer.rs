//! Streaming snapshot writer.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};

use rayon::prelude::*;

use crate::image::{SEEK_ENTRY_LEN, SEEK_FOOTER_LEN, SEEK_TABLE_MAGIC, SEEK_TABLE_TAG};
use crate::layout::{
    crc32, kind, range_kind, role, BlockEntry, BlockHeader, EndRecord, FileHeader, RangeEntry,
    BLOCK_ENTRY_LEN, BLOCK_HEADER_LEN, CHUNK_HEADER_LEN, FILE_HEADER_FIXED_LEN, INDEX_HEADER_LEN,
    MAX_CHUNK_LEN, MAX_EMBEDDED_FILE_LEN, MAX_FILE_NAME_LEN, MAX_INDEX_LEN, MAX_METADATA_LEN,
    NO_BLOCK, PAGE_SIZE, RANGE_ENTRY_LEN,
};
use crate::{
    FileRole, FormatError, Metadata, Result, EMBEDDED_FRAME_LEN, FORMAT_MAJOR, FORMAT_MINOR,
};

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
        WriteOptions {
            level: 1,
            chunk_size: 256 * 1024,
            threads: 0,
        }
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
///
/// Metadata should come first (readers that stream the file see it early), but
/// it may also be written after memory, e.g. once [`SnapshotWriter::stats`]
/// has told the caller how many zero bytes each region had; it must be written
/// exactly once before `finish`.
///
/// The output is written strictly front to back (no seeking), so a pipe works.
/// After any I/O error the writer refuses further calls: the output is incomplete
/// and has no footer, so every reader rejects it.
pub struct SnapshotWriter<W: Write> {
    out: BufWriter<W>,
    /// Bytes written so far: the file offset of the next block.
    offset: u64,
    options: WriteOptions,
    /// Dedicated pool when `options.threads > 0`.
    pool: Option<rayon::ThreadPool>,
    blocks: Vec<BlockEntry>,
    ranges: Vec<RangeEntry>,
    /// Start -> end of every memory region accepted so far, to refuse overlaps.
    regions: BTreeMap<u64, u64>,
    metadata_written: bool,
    failed: bool,
    stats: WriteStats,
    /// Whether redacted ranges may be written ([`SnapshotWriter::new_redacted`]
    /// and a header minor of 1 or more).
    redacting: bool,
}

/// One compressed memory chunk, ready to be written.
struct CompressedChunk {
    prefix: [u8; CHUNK_HEADER_LEN as usize],
    frame: Vec<u8>,
    crc: u32,
}

thread_local! {
    /// One zstd context per worker thread, reused across chunks (creating a
    /// context costs more than compressing a small chunk).
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Compresses `data` into one zstd frame with this thread's context.
fn compress_frame(level: i32, data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some((l, c)) if *l == level => c,
            other => &mut other.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        let mut frame = Vec::with_capacity(zstd::compress_bound(data.len()));
        compressor.compress_to_buffer(data, &mut frame)?;
        Ok(frame)
    })
}

/// The seek table ending an embedded file (SPEC §7.1): a skippable zstd
/// frame with each frame's compressed length, content length and CRC-32 of
/// its compressed bytes, then the CRC-32 of `header` (the payload before
/// the frames), the CRC-32 of the entries, the count and the tag.
fn seek_table(header: &[u8], frames: &[Vec<u8>], size: usize) -> Vec<u8> {
    let body_len = frames.len() * SEEK_ENTRY_LEN + SEEK_FOOTER_LEN;
    let mut t = Vec::with_capacity(8 + body_len);
    t.extend_from_slice(&SEEK_TABLE_MAGIC.to_le_bytes());
    t.extend_from_slice(&(body_len as u32).to_le_bytes());
    let mut left = size;
    for f in frames {
        let content = left.min(EMBEDDED_FRAME_LEN);
        left -= content;
        t.extend_from_slice(&(f.len() as u32).to_le_bytes());
        t.extend_from_slice(&(content as u32).to_le_bytes());
        t.extend_from_slice(&crc32(f).to_le_bytes());
    }
    let entries_crc = crc32(&t[8..]);
    t.extend_from_slice(&crc32(header).to_le_bytes());
    t.extend_from_slice(&entries_crc.to_le_bytes());
    t.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    t.extend_from_slice(&SEEK_TABLE_TAG.to_le_bytes());
    t
}

/// The fixed part of an embedded file's payload (SPEC §7): role, flags,
/// name length, size, name.
fn file_header(role: FileRole, name: &str, size: usize) -> Vec<u8> {
    let role_code = match role {
        FileRole::Executable => role::EXECUTABLE,
        FileRole::Other => role::OTHER,
    };
    let mut fixed = Vec::with_capacity(FILE_HEADER_FIXED_LEN as usize + name.len());
    fixed.extend_from_slice(&role_code.to_le_bytes());
    fixed.extend_from_slice(&0u16.to_le_bytes());
    fixed.extend_from_slice(&(name.len() as u32).to_le_bytes());
    fixed.extend_from_slice(&(size as u64).to_le_bytes());
    fixed.extend_from_slice(name.as_bytes());
    fixed
}

fn compress_chunk(level: i32, addr: u64, data: &[u8]) -> std::io::Result<CompressedChunk> {
    let frame = compress_frame(level, data)?;
    let mut prefix = [0u8; CHUNK_HEADER_LEN as usize];
    prefix[0..8].copy_from_slice(&addr.to_le_bytes());
    prefix[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&prefix);
    h.update(&frame);
    Ok(CompressedChunk {
        prefix,
        frame,
        crc: h.finalize(),
    })
}

/// True when every byte is zero. Folds fixed-size blocks with OR so the
/// compiler vectorizes it; exits at the first non-zero block.
fn is_all_zero(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        if block.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0)
}

/// Offsets (within a region starting at `addr`) of its page-sized pieces: split
/// at absolute multiples of [`PAGE_SIZE`], so the first and last may be partial.
fn page_piece(addr: u64, len: usize, i: usize) -> (usize, usize) {
    let page = PAGE_SIZE as usize;
    let first = ((page - (addr % PAGE_SIZE) as usize) % page).min(len);
    let start = if first > 0 {
        if i == 0 {
            0
        } else {
            first + (i - 1) * page
        }
    } else {
        i * page
    };
    let end = if first > 0 && i == 0 {
        first
    } else {
        (start + page).min(len)
    };
    (start, end)
}

fn page_count(addr: u64, len: usize) -> usize {
    let page = PAGE_SIZE as usize;
    let first = ((page - (addr % PAGE_SIZE) as usize) % page).min(len);
    usize::from(first > 0) + (len - first).div_ceil(page)
}

impl<W: Write> SnapshotWriter<W> {
    /// Starts a snapshot: writes the file header.
    ///
    /// `options.chunk_size` must be a multiple of 4096 between 4 KiB and 16 MiB,
    /// and `options.level` a zstd level.
    pub fn new(out: W, options: WriteOptions) -> Result<Self> {
        Self::start(out, options, FORMAT_MINOR, false)
    }

    /// Starts a snapshot that may hold redacted ranges
    /// ([`SnapshotWriter::write_redacted`]). The header says format 1.2 as
    /// every file this writer makes does (1.1 added the Redacted range), so a
    /// 1.0 reader treats those ranges as not captured instead of misreading them.
    pub fn new_redacted(out: W, options: WriteOptions) -> Result<Self> {
        Self::start(out, options, FORMAT_MINOR, true)
    }

    /// [`SnapshotWriter::new`] with a chosen minor version in the header
    /// (tests write files as a newer minor would).
    fn start(out: W, options: WriteOptions, minor: u16, redacting: bool) -> Result<Self> {
        let cs = options.chunk_size as u64;
        if !(PAGE_SIZE..=MAX_CHUNK_LEN).contains(&cs) || !cs.is_multiple_of(PAGE_SIZE) {
            return Err(FormatError::Usage(format!(
                "chunk_size {} must be a multiple of 4096 between 4 KiB and 16 MiB",
                options.chunk_size
            )));
        }
        if !zstd::compression_level_range().contains(&options.level) {
            return Err(FormatError::Usage(format!(
                "zstd level {} outside {:?}",
                options.level,
                zstd::compression_level_range()
            )));
        }
        let pool = if options.threads > 0 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(options.threads)
                    .thread_name(|i| format!("rdlv-zstd-{i}"))
                    .build()
                    .map_err(|e| {
                        FormatError::Usage(format!("cannot start compression threads: {e}"))
                    })?,
            )
        } else {
            None
        };
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, out),
            offset: 0,
            options,
            pool,
            blocks: Vec::new(),
            ranges: Vec::new(),
            regions: BTreeMap::new(),
            metadata_written: false,
            failed: false,
            stats: WriteStats::default(),
            redacting: redacting && minor >= 1,
        };
        let header = FileHeader {
            major: FORMAT_MAJOR,
            minor,
            flags: 0,
        }
        .encode();
        w.write_raw(&header)?;
        Ok(w)
    }

    /// Writes the metadata block(s). Must be called exactly once, normally
    /// first; at the latest before [`SnapshotWriter::finish`].
    pub fn write_metadata(&mut self, meta: &Metadata) -> Result<()> {
        self.check_usable()?;
        if self.metadata_written {
            return Err(FormatError::Usage("write_metadata called twice".into()));
        }
        let json = serde_json::to_vec(meta)
            .map_err(|e| FormatError::Usage(format!("metadata does not serialize to JSON: {e}")))?;
        if json.len() as u64 > MAX_METADATA_LEN {
            return Err(FormatError::Usage(format!(
                "metadata JSON is {} bytes, over the {} byte limit",
                json.len(),
                MAX_METADATA_LEN
            )));
        }
        self.write_block(kind::METADATA, &[&json], crc32(&json))?;
        self.metadata_written = true;
        Ok(())
    }

    /// Splits the regions into chunks, elides all-zero pages (recorded as zero
    /// ranges in the index), compresses the rest in parallel and writes them.
    /// `progress` is called from the writing thread as chunks are written.
    pub fn write_memory(
        &mut self,
        regions: &[MemoryRegion<'_>],
        progress: &mut dyn FnMut(WriteProgress),
    ) -> Result<()> {
        self.check_usable()?;
        let mut order: Vec<&MemoryRegion<'_>> =
            regions.iter().filter(|r| !r.data.is_empty()).collect();
        order.sort_by_key(|r| r.addr);
        self.check_overlaps(&order)?;
        for r in &order {
            self.regions.insert(r.addr, r.addr + r.data.len() as u64);
        }

        let total: u64 = order.iter().map(|r| r.data.len() as u64).sum();
        let mut done = 0u64;
        let chunk_size = self.options.chunk_size;
        // Plan: zero runs go straight to the index; non-zero runs are cut into chunk jobs.
        let mut jobs: Vec<(u64, &[u8])> = Vec::new();
        for r in &order {
            let len = r.data.len();
            let zero_pages: Vec<bool> = self.run_parallel(|| {
                (0..page_count(r.addr, len))
                    .into_par_iter()
                    .map(|i| {
                        let (s, e) = page_piece(r.addr, len, i);
                        is_all_zero(&r.data[s..e])
                    })
                    .collect()
            });
            let mut i = 0;
            while i < zero_pages.len() {
                let zero = zero_pages[i];
                let mut j = i;
                while j < zero_pages.len() && zero_pages[j] == zero {
                    j += 1;
                }
                let start = page_piece(r.addr, len, i).0;
                let end = page_piece(r.addr, len, j - 1).1;
                if zero {
                    let run_len = (end - start) as u64;
                    self.ranges.push(RangeEntry {
                        addr: r.addr + start as u64,
                        len: run_len,
                        kind: range_kind::ZERO,
                        block: NO_BLOCK,
                    });
                    self.stats.zero_bytes += run_len;
                    done += run_len;
                } else {
                    let mut s = start;
                    while s < end {
                        let e = (s + chunk_size).min(end);
                        jobs.push((r.addr + s as u64, &r.data[s..e]));
                        s = e;
                    }
                }
                i = j;
            }
        }
        self.stats.memory_bytes += total;

        // Pipeline: a helper thread drives parallel compression batch by batch
        // while this thread (which owns the output, maybe not `Send`) writes
        // the previous batch in address order. The bounded channel keeps at
        // most a few batches of compressed frames in memory.
        let workers = self
            .pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let batch = (workers * 4).max(8);
        let level = self.options.level;
        let pool = self.pool.take();
        let compress_group = |group: &[(u64, &[u8])]| -> Vec<std::io::Result<CompressedChunk>> {
            let compress = || {
                group
                    .par_iter()
                    .map(|&(addr, data)| compress_chunk(level, addr, data))
                    .collect()
            };
            match &pool {
                Some(p) => p.install(compress),
                None => compress(),
            }
        };
        // Called from inside a worker of the global pool, the writing thread
        // would block a worker the helper thread's jobs need (a deadlock with
        // one worker): compress and write in turn instead.
        let pipelined = pool.is_some() || rayon::current_thread_index().is_none();
        let result = std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<Vec<std::io::Result<CompressedChunk>>>(2);
            let batches: Box<dyn Iterator<Item = Vec<std::io::Result<CompressedChunk>>>> =
                if pipelined {
                    let (jobs, compress_group) = (&jobs, &compress_group);
                    scope.spawn(move || {
                        for group in jobs.chunks(batch) {
                            if tx.send(compress_group(group)).is_err() {
                                break; // The writer stopped on an error.
                            }
                        }
                    });
                    Box::new(rx.into_iter())
                } else {
                    drop((tx, rx));
                    Box::new(jobs.chunks(batch).map(compress_group))
                };
            for (group, compressed) in jobs.chunks(batch).zip(batches) {
                for (&(addr, data), chunk) in group.iter().zip(compressed) {
                    let chunk = chunk.map_err(|e| self.fail(FormatError::Io(e)))?;
                    let block = self.write_block(
                        kind::MEMORY_CHUNK,
                        &[&chunk.prefix, &chunk.frame],
                        chunk.crc,
                    )?;
                    self.ranges.push(RangeEntry {
                        addr,
                        len: data.len() as u64,
                        kind: range_kind::DATA,
                        block,
                    });
                    self.stats.compressed_memory_bytes += chunk.frame.len() as u64;
                    done += data.len() as u64;
                    progress(WriteProgress { done, total });
                }
            }
            Ok(())
        });
        self.pool = pool;
        result?;
        if jobs.is_empty() {
            progress(WriteProgress { done, total });
        }
        Ok(())
    }

    /// Records `(addr, len)` ranges whose bytes were captured and then removed:
    /// they store nothing and read as [`FormatError::Redacted`]. Only for a
    /// writer from [`SnapshotWriter::new_redacted`]; like memory regions they
    /// must not overlap each other or anything written before.
    pub fn write_redacted(&mut self, ranges: &[(u64, u64)]) -> Result<()> {
        self.check_usable()?;
        if !self.redacting {
            return Err(FormatError::Usage(
                "redacted ranges need a writer from SnapshotWriter::new_redacted".into(),
            ));
        }
        let mut sorted: Vec<(u64, u64)> = ranges.iter().copied().filter(|r| r.1 > 0).collect();
        sorted.sort_unstable();
        let mut prev_end = 0u64;
        for (i, &(addr, len)) in sorted.iter().enumerate() {
            let end = addr.checked_add(len).ok_or_else(|| {
                FormatError::Usage(format!("redacted range at {addr:#x} (+{len}) wraps"))
            })?;
            if i > 0 && addr < prev_end {
                return Err(FormatError::Usage(format!(
                    "redacted ranges overlap at {addr:#x}"
                )));
            }
            if let Some((&s, &e)) = self.regions.range(..end).next_back() {
                if e > addr {
                    return Err(FormatError::Usage(format!(
                        "redacted range {addr:#x}..{end:#x} overlaps {s:#x}..{e:#x} written earlier"
                    )));
                }
            }
            prev_end = end;
        }
        for &(addr, len) in &sorted {
            self.regions.insert(addr, addr + len);
            self.ranges.push(RangeEntry {
                addr,
                len,
                kind: range_kind::REDACTED,
                block: NO_BLOCK,
            });
        }
        Ok(())
    }

    /// Embeds a whole file (the executable), compressed.
    pub fn write_file(&mut self, role: FileRole, name: &str, bytes: &[u8]) -> Result<()> {
        self.check_usable()?;
        if name.len() as u64 > MAX_FILE_NAME_LEN {
            return Err(FormatError::Usage(format!(
                "embedded file name longer than {MAX_FILE_NAME_LEN} bytes"
            )));
        }
        if bytes.len() as u64 > MAX_EMBEDDED_FILE_LEN {
            return Err(FormatError::Usage(format!(
                "embedded file {name} is {} bytes, over the {MAX_EMBEDDED_FILE_LEN} byte limit",
                bytes.len()
            )));
        }
        let level = self.options.level;
        // Independent frames (SPEC §7), compressed in parallel: a reader
        // decompresses only those it reads.
        // An empty file is one empty frame: the payload is never empty.
        let frames: Vec<Vec<u8>> = self
            .run_parallel(|| match bytes.is_empty() {
                true => compress_frame(level, bytes).map(|f| vec![f]),
                false => bytes
                    .par_chunks(EMBEDDED_FRAME_LEN)
                    .map(|c| compress_frame(level, c))
                    .collect::<std::io::Result<_>>(),
            })
            .map_err(|e| self.fail(FormatError::Io(e)))?;
        let fixed = file_header(role, name, bytes.len());
        // An empty file has no frame to seek to: no table (SPEC §7.1).
        let table = match bytes.is_empty() {
            true => Vec::new(),
            false => seek_table(&fixed, &frames, bytes.len()),
        };
        self.write_file_block(&fixed, &frames, &table)
    }

    /// Writes an embedded file's block: its header, frames and seek table.
    fn write_file_block(&mut self, fixed: &[u8], frames: &[Vec<u8>], table: &[u8]) -> Result<()> {
        let mut h = crc32fast::Hasher::new();
        h.update(fixed);
        let mut parts: Vec<&[u8]> = vec![fixed];
        for f in frames.iter().map(Vec::as_slice).chain([table]) {
            h.update(f);
            parts.push(f);
        }
        self.write_block(kind::EMBEDDED_FILE, &parts, h.finalize())?;
        Ok(())
    }

    /// Writes the index and footer, flushes, and returns the output and sizes.
    pub fn finish(mut self) -> Result<(W, WriteStats)> {
        self.check_usable()?;
        self.check_metadata_first("finish")?;
        self.ranges.sort_by_key(|r| r.addr);
        let mut payload = Vec::with_capacity(
            INDEX_HEADER_LEN as usize
                + self.blocks.len() * BLOCK_ENTRY_LEN as usize
                + self.ranges.len() * RANGE_ENTRY_LEN as usize,
        );
        payload.extend_from_slice(&(self.blocks.len() as u64).to_le_bytes());
        payload.extend_from_slice(&(self.ranges.len() as u64).to_le_bytes());
        payload.extend_from_slice(&(BLOCK_ENTRY_LEN as u32).to_le_bytes());
        payload.extend_from_slice(&(RANGE_ENTRY_LEN as u32).to_le_bytes());
        for b in &self.blocks {
            b.encode_into(&mut payload);
        }
        for r in &self.ranges {
            r.encode_into(&mut payload);
        }
        if payload.len() as u64 > MAX_INDEX_LEN {
            return Err(FormatError::Usage(format!(
                "index of {} bytes over the 1 GiB limit: use a larger chunk_size",
                payload.len()
            )));
        }
        let index_offset = self.offset;
        let index_crc = crc32(&payload);
        self.write_block(kind::INDEX, &[&payload], index_crc)?;
        let end = EndRecord {
            index_offset,
            index_len: BLOCK_HEADER_LEN + payload.len() as u64,
            index_crc,
        }
        .encode();
        self.write_block(kind::END, &[&end], crc32(&end))?;
        self.out
            .flush()
            .map_err(|e| self.fail(FormatError::Io(e)))?;
        self.stats.file_bytes = self.offset;
        let stats = self.stats;
        let out = self
            .out
            .into_inner()
            .map_err(|e| FormatError::Io(e.into_error()))?;
        Ok((out, stats))
    }

    /// Running totals so far (`file_bytes` = bytes written so far). Comparing
    /// the values before and after a [`SnapshotWriter::write_memory`] call gives
    /// that call's zero and compressed bytes.
    pub fn stats(&self) -> WriteStats {
        WriteStats {
            file_bytes: self.offset,
            ..self.stats
        }
    }

    /// Bytes written so far (the file offset of the next block).
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    fn run_parallel<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(FormatError::Usage(
                "an earlier write failed; the snapshot is incomplete".into(),
            ));
        }
        Ok(())
    }

    fn check_metadata_first(&self, call: &str) -> Result<()> {
        if !self.metadata_written {
            return Err(FormatError::Usage(format!(
                "{call} called without write_metadata"
            )));
        }
        Ok(())
    }

    /// Refuses regions that overflow the address space or overlap each other or earlier calls.
    fn check_overlaps(&self, sorted: &[&MemoryRegion<'_>]) -> Result<()> {
        let mut prev_end: Option<(u64, u64)> = None;
        for r in sorted {
            let end = r.addr.checked_add(r.data.len() as u64).ok_or_else(|| {
                FormatError::Usage(format!(
                    "region at {:#x} (+{}) wraps the address space",
                    r.addr,
                    r.data.len()
                ))
            })?;
            if let Some((ps, pe)) = prev_end {
                if pe > r.addr {
                    return Err(FormatError::Usage(format!(
                        "memory regions overlap: {ps:#x}..{pe:#x} and {:#x}..{end:#x}",
                        r.addr
                    )));
                }
            }
            if let Some((&s, &e)) = self.regions.range(..end).next_back() {
                if e > r.addr {
                    return Err(FormatError::Usage(format!(
                        "memory region {:#x}..{end:#x} overlaps {s:#x}..{e:#x} written earlier",
                        r.addr
                    )));
                }
            }
            prev_end = Some((r.addr, end));
        }
        Ok(())
    }

    fn fail(&mut self, e: FormatError) -> FormatError {
        self.failed = true;
        e
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        match self.out.write_all(bytes) {
            Ok(()) => {
                self.offset += bytes.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.fail(FormatError::Io(e))),
        }
    }

    /// Writes a block whose payload is the concatenation of `parts` with the
    /// given payload CRC, records it in the block table and returns its number.
    fn write_block(&mut self, kind: u16, parts: &[&[u8]], payload_crc: u32) -> Result<u32> {
        let block_no = u32::try_from(self.blocks.len())
            .ok()
            .filter(|&n| n < NO_BLOCK)
            .ok_or_else(|| FormatError::Usage("too many blocks for one snapshot".into()))?;
        let payload_len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let header = BlockHeader {
            kind,
            flags: 0,
            payload_len,
            payload_crc,
        };
        let offset = self.offset;
        self.write_raw(&header.encode())?;
        for p in parts {
            self.write_raw(p)?;
        }
        if kind != kind::INDEX && kind != kind::END {
            self.blocks.push(BlockEntry {
                offset,
                payload_len,
                kind,
                flags: 0,
                payload_crc,
            });
        }
        Ok(block_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RangeKind, Snapshot};

    #[test]
    fn zero_detection() {
        assert!(is_all_zero(&[]));
        assert!(is_all_zero(&[0u8; 4096]));
        for i in [0usize, 63, 64, 4000, 4095] {
            let mut p = [0u8; 4096];
            p[i] = 1;
            assert!(!is_all_zero(&p), "{i}");
        }
        let mut odd = [0u8; 100];
        odd[99] = 0x80;
        assert!(!is_all_zero(&odd));
    }

    #[test]
    fn page_pieces_tile_the_region() {
        for (addr, len) in [
            (0u64, 1usize),
            (0, 4096),
            (0, 4097),
            (0x1ff0, 70),
            (0x1001, 4095),
            (0x1001, 4096),
            (0x123, 20000),
        ] {
            let n = page_count(addr, len);
            let mut next = 0;
            for i in 0..n {
                let (s, e) = page_piece(addr, len, i);
                assert_eq!(s, next, "{addr:#x}+{len} piece {i}");
                assert!(e > s && e - s <= 4096);
                // Every piece ends on a page boundary or at the region end.
                assert!((addr + e as u64).is_multiple_of(4096) || e == len);
                next = e;
            }
            assert_eq!(next, len, "{addr:#x}+{len}");
        }
        assert_eq!(page_count(0x1ff0, 70), 2);
    }

    /// A writer whose seek table is self-consistent (its CRCs match) but
    /// places the frames' contents wrongly passes the block CRC; `verify`
    /// reads the file through the table too and refuses it.
    #[test]
    fn verify_reads_the_file_through_its_seek_table() {
        let exe: Vec<u8> = (0..2 * EMBEDDED_FRAME_LEN + EMBEDDED_FRAME_LEN / 2)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let write = |patch: &dyn Fn(&mut Vec<u8>)| {
            let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
            w.write_metadata(&Metadata::default()).expect("metadata");
            let frames: Vec<Vec<u8>> = exe
                .chunks(EMBEDDED_FRAME_LEN)
                .map(|c| compress_frame(3, c).expect("frame"))
                .collect();
            let fixed = file_header(FileRole::Executable, "/srv/x", exe.len());
            let mut table = seek_table(&fixed, &frames, exe.len());
            patch(&mut table);
            w.write_file_block(&fixed, &frames, &table).expect("file");
            w.finish().expect("finish").0
        };
        let open = |bytes: &[u8]| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("x.snap");
            std::fs::write(&path, bytes).expect("write");
            (dir, Snapshot::open(&path).expect("open"))
        };
        let (_d, good) = open(&write(&|_| {}));
        good.verify().expect("the writer's own table verifies");
        // Content lengths 1/2, 1, 1 MiB instead of 1, 1, 1/2: they still
        // tile the file, and the entries' CRC is recomputed to match.
        let (_d, bad) = open(&write(&|t| {
            let ulen = |i: usize| 8 + i * SEEK_ENTRY_LEN + 4;
            let half = (EMBEDDED_FRAME_LEN / 2) as u32;
            let full = EMBEDDED_FRAME_LEN as u32;
            for (i, v) in [half, full, full].into_iter().enumerate() {
                t[ulen(i)..ulen(i) + 4].copy_from_slice(&v.to_le_bytes());
            }
            let entries_end = 8 + 3 * SEEK_ENTRY_LEN;
            let crc = crc32(&t[8..entries_end]);
            t[entries_end + 4..entries_end + 8].copy_from_slice(&crc.to_le_bytes());
        }));
        assert_eq!(
            bad.embedded_file(FileRole::Executable)
                .expect("the stream reads")
                .as_deref(),
            Some(&exe[..]),
            "the block and its frames in order are intact"
        );
        let err = bad.verify().expect_err("the table is wrong").to_string();
        assert!(err.contains("seek table"), "{err}");
    }

    fn write_with_extra_block(minor: u16) -> Vec<u8> {
        let mut w = SnapshotWriter::start(Vec::new(), WriteOptions::default(), minor, false)
            .expect("writer");
        w.write_metadata(&Metadata::default()).expect("metadata");
        // A block of a kind this version does not define, between memory chunks.
        let a = [7u8; 5000];
        w.write_memory(
            &[MemoryRegion {
                addr: 0x10000,
                data: &a,
            }],
            &mut |_| {},
        )
        .expect("memory");
        let extra = b"from the future";
        w.write_block(77, &[extra], crc32(extra))
            .expect("extra block");
        w.write_memory(
            &[MemoryRegion {
                addr: 0x20000,
                data: &a,
            }],
            &mut |_| {},
        )
        .expect("memory");
        w.finish().expect("finish").0
    }

    /// A file with data, a redacted hole and more data; `minor` forced into
    /// the header so the 1.0 case can be built too.
    fn write_with_redaction(minor: u16) -> Vec<u8> {
        let mut w = SnapshotWriter::start(Vec::new(), WriteOptions::default(), minor, true)
            .expect("writer");
        w.redacting = true;
        w.write_metadata(&Metadata::default()).expect("metadata");
        let a = [7u8; 16];
        w.write_memory(
            &[
                MemoryRegion {
                    addr: 0x1000,
                    data: &a,
                },
                MemoryRegion {
                    addr: 0x1020,
                    data: &a,
                },
            ],
            &mut |_| {},
        )
        .expect("memory");
        w.write_redacted(&[(0x1010, 0x10), (0x1030, 0x1000)])
            .expect("redacted");
        w.finish().expect("finish").0
    }

    #[test]
    fn redacted_ranges_read_as_a_redacted_error_never_as_zeros() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.snap");
        std::fs::write(&path, write_with_redaction(1)).expect("write");
        let snap = Snapshot::open(&path).expect("open");
        assert!(snap.has_redactions());
        let kinds: Vec<RangeKind> = snap.memory_ranges().iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RangeKind::Data,
                RangeKind::Redacted,
                RangeKind::Data,
                RangeKind::Redacted
            ]
        );
        let mut b = [0u8; 16];
        snap.read_memory(0x1020, &mut b).expect("kept bytes read");
        assert_eq!(b, [7u8; 16]);
        // A read that starts in kept bytes and runs into a hole names the hole.
        let mut b = [0u8; 32];
        match snap.read_memory(0x1008, &mut b) {
            Err(FormatError::Redacted { addr, len }) => assert_eq!((addr, len), (0x1010, 24)),
            other => panic!("expected Redacted, got {other:?}"),
        }
        assert_eq!(snap.read_available(0x1000, &mut b).expect("available"), 16);
        assert!(snap.is_redacted(0x1fff) && !snap.is_redacted(0x1000));
        assert!(matches!(
            snap.read_memory(0x3000, &mut [0u8; 1]),
            Err(FormatError::Unmapped { .. })
        ));
        snap.verify().expect("verify");
        // Ordinary writers cannot write redacted ranges.
        let plain = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
        assert!(!plain.redacting);
    }

    #[test]
    fn redacted_range_in_a_1_0_file_is_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.snap");
        std::fs::write(&path, write_with_redaction(0)).expect("write");
        let err = Snapshot::open(&path)
            .err()
            .expect("kind 3 in a 1.0 file is refused");
        assert!(err.to_string().contains("unknown kind 3"), "{err}");
    }

    #[test]
    fn write_redacted_refuses_overlaps_and_plain_writers() {
        let mut plain = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
        assert!(plain.write_redacted(&[(0, 1)]).is_err());
        let mut w = SnapshotWriter::new_redacted(Vec::new(), WriteOptions::default()).expect("w");
        w.write_memory(
            &[MemoryRegion {
                addr: 0x1000,
                data: &[1u8; 8],
            }],
            &mut |_| {},
        )
        .expect("memory");
        assert!(w.write_redacted(&[(0x1004, 8)]).is_err());
        let mut w = SnapshotWriter::new_redacted(Vec::new(), WriteOptions::default()).expect("w");
        assert!(w.write_redacted(&[(0x10, 8), (0x14, 8)]).is_err());
        assert!(w.write_redacted(&[(u64::MAX, 8)]).is_err());
    }

    #[test]
    fn unknown_block_kind_skipped_only_in_a_newer_minor() {
        let dir = tempfile::tempdir().expect("dir");
        let newer = dir.path().join("newer.snap");
        std::fs::write(&newer, write_with_extra_block(FORMAT_MINOR + 1)).expect("write");
        let snap = Snapshot::open(&newer).expect("newer minor opens");
        assert_eq!(snap.version(), (FORMAT_MAJOR, FORMAT_MINOR + 1));
        let mut b = [0u8; 5000];
        snap.read_memory(0x20000, &mut b)
            .expect("memory after the unknown block");
        assert!(b.iter().all(|&x| x == 7));
        assert!(snap
            .memory_ranges()
            .iter()
            .all(|r| r.kind == RangeKind::Data));
        snap.verify()
            .expect("verify checks the unknown block's CRC too");

        let same = dir.path().join("same.snap");
        std::fs::write(&same, write_with_extra_block(FORMAT_MINOR)).expect("write");
        let err = Snapshot::open(&same)
            .err()
            .expect("unknown kind in the current minor is corrupt");
        assert!(err.to_string().contains("kind 77"), "{err}");
    }

    /// Builds a file whose checksums are all valid but whose structure is
    /// broken by `damage`, and returns the error `open` (then reading every
    /// range) gives. These checks sit behind the CRCs, so byte flips never
    /// reach them.
    fn structural_error(damage: impl FnOnce(&mut SnapshotWriter<Vec<u8>>)) -> String {
        let mut w = SnapshotWriter::new(Vec::new(), WriteOptions::default()).expect("writer");
        let data = [5u8; 8192];
        w.write_memory(
            &[MemoryRegion {
                addr: 0x10000,
                data: &data,
            }],
            &mut |_| {},
        )
        .expect("memory");
        damage(&mut w);
        if !w.metadata_written {
            w.write_metadata(&Metadata::default()).expect("metadata");
        }
        let bytes = w.finish().expect("finish").0;
        let mut f = tempfile::NamedTempFile::new().expect("tempfile");
        std::io::Write::write_all(&mut f, &bytes).expect("write");
        let result = Snapshot::open(f.path()).and_then(|snap| {
            for r in snap.memory_ranges() {
                let mut buf = vec![0u8; r.len as usize];
                snap.read_memory(r.addr, &mut buf)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => panic!("damaged structure accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn chunk_block(w: &mut SnapshotWriter<Vec<u8>>, addr: u64, claimed: u64, data: &[u8]) -> u32 {
        let frame = zstd::bulk::compress(data, 1).expect("compress");
        let mut prefix = addr.to_le_bytes().to_vec();
        prefix.extend_from_slice(&claimed.to_le_bytes());
        let crc = {
            let mut h = crc32fast::Hasher::new();
            h.update(&prefix);
            h.update(&frame);
            h.finalize()
        };
        w.write_block(kind::MEMORY_CHUNK, &[&prefix, &frame], crc)
            .expect("block")
    }

    #[test]
    fn structural_checks_behind_valid_checksums() {
        let e = structural_error(|w| {
            let json = b"{\"process\": 42}";
            w.write_block(kind::METADATA, &[json], crc32(json))
                .expect("block");
            w.metadata_written = true;
        });
        assert!(e.contains("JSON does not parse"), "{e}");

        let e = structural_error(|w| {
            w.write_metadata(&Metadata::default()).expect("metadata");
            let json = serde_json::to_vec(&Metadata::default()).expect("json");
            w.write_block(kind::METADATA, &[&json], crc32(&json))
                .expect("block");
        });
        assert!(e.contains("2 metadata blocks"), "{e}");

        let e = structural_error(|w| {
            w.ranges.push(RangeEntry {
                addr: 0x11000,
                len: 10,
                kind: range_kind::ZERO,
                block: NO_BLOCK,
            });
        });
        assert!(e.contains("overlaps or precedes"), "{e}");

        let e = structural_error(|w| {
            w.ranges.push(RangeEntry {
                addr: 0x90000,
                len: 10,
                kind: range_kind::ZERO,
                block: 0,
            });
        });
        assert!(e.contains("zero range #1 points at block 0"), "{e}");

        let e = structural_error(|w| {
            // Block 0 is the first memory chunk, already used by its own range.
            w.ranges.push(RangeEntry {
                addr: 0x90000,
                len: 10,
                kind: range_kind::DATA,
                block: 0,
            });
        });
        assert!(e.contains("not an unused memory chunk"), "{e}");

        let e = structural_error(|w| {
            w.ranges.push(RangeEntry {
                addr: 0x90000,
                len: 0,
                kind: range_kind::ZERO,
                block: NO_BLOCK,
            });
        });
        assert!(e.contains("is empty or wraps"), "{e}");

        let e = structural_error(|w| {
            w.ranges.push(RangeEntry {
                addr: 0x90000,
                len: 10,
                kind: 9,
                block: NO_BLOCK,
            });
        });
        assert!(e.contains("unknown kind 9"), "{e}");

        let e = structural_error(|w| {
            chunk_block(w, 0x90000, 4096, &[1u8; 4096]);
        });
        assert!(e.contains("not referenced by any range"), "{e}");

        // A chunk whose frame holds fewer bytes than its header and range claim.
        let e = structural_error(|w| {
            let block = chunk_block(w, 0x90000, 5000, &[1u8; 4096]);
            w.ranges.push(RangeEntry {
                addr: 0x90000,
                len: 5000,
                kind: range_kind::DATA,
                block,
            });
        });
        assert!(e.contains("expected 5000"), "{e}");

        // A chunk whose header disagrees with its range.
        let e = structural_error(|w| {
            let block = chunk_block(w, 0x90000, 4096, &[1u8; 4096]);
            w.ranges.push(RangeEntry {
                addr: 0x90010,
                len: 4096,
                kind: range_kind::DATA,
                block,
            });
        });
        assert!(e.contains("but the index says"), "{e}");
    }
}
