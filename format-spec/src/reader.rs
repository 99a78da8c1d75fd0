//! Random-access snapshot reader.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::encryption::{AgeHeader, AgeSource, AgeStats, Identities};
use crate::image::{read_seek_table, Frame};
use crate::layout::{
    corrupt, crc32, crc_matches, kind, kind_name, range_kind, role, BlockEntry, BlockHeader,
    EndRecord, FileHeader, LeCursor, RangeEntry, BLOCK_ENTRY_LEN, BLOCK_HEADER_LEN,
    CHUNK_HEADER_LEN, END_MAGIC, END_PAYLOAD_LEN, FILE_HEADER_FIXED_LEN, FILE_HEADER_LEN,
    FOOTER_LEN, INDEX_HEADER_LEN, MAGIC, MAX_CHUNK_LEN, MAX_EMBEDDED_FILE_LEN, MAX_ENTRY_LEN,
    MAX_FILE_NAME_LEN, MAX_INDEX_LEN, MAX_METADATA_LEN, NO_BLOCK, RANGE_ENTRY_LEN,
};
use crate::source::{FileSource, Source};
use crate::{FileImage, FileRole, FormatError, Metadata, Result, FORMAT_MINOR};

/// What the index says about a captured address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    /// Bytes stored in a compressed chunk.
    Data,
    /// Pages that were present but all zero.
    Zero,
    /// Bytes that were captured and then removed by `rdlv redact` (format
    /// 1.1). Reading them fails with [`FormatError::Redacted`].
    Redacted,
}

/// One entry of the memory index, sorted by address, non-overlapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    /// First address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// Data, zero or redacted.
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

/// An embedded file as listed at open (its payload is checked when read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedFileInfo {
    /// What the file is.
    pub role: FileRole,
    /// Name recorded by the writer (the executable's path on the captured host).
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Compressed size in bytes (the zstd frame).
    pub compressed_size: u64,
}

/// Default bound on decompressed chunk bytes kept in memory by one [`Snapshot`].
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// An open snapshot. Cheap to share across threads (`Sync`): reads use
/// positional I/O (through a [`Source`]: a plain file or a decrypting age
/// stream) and a bounded cache of decompressed chunks.
pub struct Snapshot {
    source: Arc<dyn Source>,
    file_len: u64,
    version: (u16, u16),
    metadata: Metadata,
    blocks: Vec<BlockEntry>,
    ranges: Vec<MemoryRange>,
    /// For each entry of `ranges`, its chunk block number (or [`NO_BLOCK`]).
    range_blocks: Vec<u32>,
    files: Vec<EmbeddedFileEntry>,
    /// Shards of the chunk cache, chosen by block number, so threads reading
    /// different chunks rarely wait on the same lock.
    cache: Vec<Mutex<ChunkCache>>,
    cache_bytes: u64,
}

#[derive(Debug, Clone)]
struct EmbeddedFileEntry {
    info: EmbeddedFileInfo,
    block: u32,
    /// Offset of the zstd frame inside the block payload.
    frame_start: u64,
}

/// Decompressed chunks keyed by block number, evicting the least recently used
/// when over its byte budget.
struct ChunkCache {
    entries: HashMap<u32, CachedChunk>,
    bytes: u64,
    clock: u64,
    capacity: u64,
}

struct CachedChunk {
    data: Arc<Vec<u8>>,
    last_use: u64,
}

impl ChunkCache {
    fn new(capacity: u64) -> Self {
        ChunkCache {
            entries: HashMap::new(),
            bytes: 0,
            clock: 0,
            capacity,
        }
    }

    fn get(&mut self, block: u32) -> Option<Arc<Vec<u8>>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&block).map(|e| {
            e.last_use = clock;
            Arc::clone(&e.data)
        })
    }

    fn insert(&mut self, block: u32, data: Arc<Vec<u8>>) {
        let size = data.len() as u64;
        if size > self.capacity || self.entries.contains_key(&block) {
            return;
        }
        while self.bytes + size > self.capacity {
            // A linear scan is fine: the budget holds at most a few thousand
            // chunks and this runs only after a decompression, which costs more.
            let Some((&victim, _)) = self.entries.iter().min_by_key(|(_, e)| e.last_use) else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.bytes -= e.data.len() as u64;
            }
        }
        self.clock += 1;
        self.bytes += size;
        self.entries.insert(
            block,
            CachedChunk {
                data,
                last_use: self.clock,
            },
        );
    }
}

thread_local! {
    /// One zstd decompression context per thread, reused across chunks.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompresses one frame into exactly `len` bytes, or says why not.
fn decompress_exact(frame: &[u8], len: usize) -> std::result::Result<Vec<u8>, String> {
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => {}
        Ok(n) => {
            return Err(format!(
                "zstd frame is {n} bytes but the payload holds {}",
                frame.len()
            ))
        }
        Err(code) => {
            return Err(format!(
                "not a valid zstd frame: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        }
    }
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            none => none
                .insert(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd context: {e}"))?),
        };
        let mut out = Vec::with_capacity(len);
        let n = d
            .decompress_to_buffer(frame, &mut out)
            .map_err(|e| format!("zstd decompression failed: {e}"))?;
        if n != len {
            return Err(format!("decompresses to {n} bytes, expected {len}"));
        }
        Ok(out)
    })
}

/// Streams one zstd frame, producing at most `limit + 1` bytes into `sink`;
/// returns how many it produced. Memory stays bounded by the real output, not
/// by a length the file claims.
fn decompress_stream(
    frame: &[u8],
    limit: u64,
    sink: &mut impl Write,
) -> std::result::Result<u64, String> {
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => {}
        Ok(n) => {
            return Err(format!(
                "zstd frame is {n} bytes but the payload holds {}",
                frame.len()
            ))
        }
        Err(code) => {
            return Err(format!(
                "not a valid zstd frame: {}",
                zstd::zstd_safe::get_error_name(code)
            ))
        }
    }
    let decoder = zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(|e| format!("zstd context: {e}"))?;
    let mut limited = decoder.single_frame().take(limit.saturating_add(1));
    std::io::copy(&mut limited, sink).map_err(|e| format!("zstd decompression failed: {e}"))
}

/// Streams a sequence of zstd frames (an embedded file, SPEC §7: one frame
/// up to 1.1, one or more since 1.2) like [`decompress_stream`], frame by
/// frame; an error says at which offset of `frames` the failing frame starts.
fn decompress_frames(
    frames: &[u8],
    limit: u64,
    sink: &mut impl Write,
) -> std::result::Result<u64, (u64, String)> {
    if frames.is_empty() {
        return Err((0, "no zstd frame".into()));
    }
    let (mut pos, mut produced) = (0usize, 0u64);
    while pos < frames.len() && produced <= limit {
        let rest = &frames[pos..];
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).map_err(|code| {
            (
                pos as u64,
                format!(
                    "not a valid zstd frame: {}",
                    zstd::zstd_safe::get_error_name(code)
                ),
            )
        })?;
        let frame = rest.get(..n).unwrap_or(rest);
        produced +=
            decompress_stream(frame, limit - produced, sink).map_err(|e| (pos as u64, e))?;
        pos += n.max(1);
    }
    Ok(produced)
}

impl Snapshot {
    /// Opens a snapshot file: checks header and footer, reads and checks the
    /// index and metadata. Memory chunks are not touched. An age-encrypted
    /// file is refused with [`FormatError::Encrypted`] (which names its
    /// recipient types); open it with [`Snapshot::open_with_identities`].
    pub fn open(path: &Path) -> Result<Snapshot> {
        Snapshot::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like [`Snapshot::open`] with a chosen bound on cached decompressed chunk bytes.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Snapshot> {
        Snapshot::open_with_identities(path, None, cache_bytes)
    }

    /// Opens a plain or an age-encrypted snapshot. An encrypted file needs
    /// `identities` (else [`FormatError::Encrypted`]); a plain file ignores them.
    /// Nothing decrypted is written anywhere: chunks are decrypted into memory
    /// as reads need them.
    pub fn open_with_identities(
        path: &Path,
        identities: Option<&Identities>,
        cache_bytes: u64,
    ) -> Result<Snapshot> {
        let file = File::open(path)?;
        match (AgeHeader::read(&file)?, identities) {
            (None, _) => Snapshot::from_file(file, cache_bytes),
            (Some(header), None) => Err(FormatError::Encrypted {
                recipients: header.describe_recipients(),
            }),
            (Some(_), Some(identities)) => {
                let source = AgeSource::open(file, identities)?;
                Snapshot::from_source(Box::new(source), cache_bytes)
            }
        }
    }

    /// Opens an already opened plain snapshot file (must support positional reads).
    pub fn from_file(file: File, cache_bytes: u64) -> Result<Snapshot> {
        Snapshot::from_source(Box::new(FileSource::new(file)?), cache_bytes)
    }

    /// Opens a snapshot from any random-access source (e.g. an
    /// [`AgeSource`] opened with a known file key).
    pub fn from_source(source: Box<dyn Source>, cache_bytes: u64) -> Result<Snapshot> {
        let file_len = source.len();
        let mut snap = Snapshot {
            source: Arc::from(source),
            file_len,
            version: (0, 0),
            metadata: Metadata::default(),
            blocks: Vec::new(),
            ranges: Vec::new(),
            range_blocks: Vec::new(),
            files: Vec::new(),
            cache: Vec::new(),
            cache_bytes,
        };
        let header = snap.read_header()?;
        snap.version = (header.major, header.minor);
        let end = snap.read_footer()?;
        snap.read_index(&end)?;
        snap.read_metadata()?;
        snap.read_file_entries()?;
        snap.cache = snap.make_cache_shards();
        Ok(snap)
    }

    /// For an encrypted snapshot, its age header (who it is encrypted to).
    pub fn encryption(&self) -> Option<&AgeHeader> {
        self.source.encryption()
    }

    /// For an encrypted snapshot, how much it decrypted so far.
    pub fn decryption_stats(&self) -> Option<AgeStats> {
        self.source.decryption_stats()
    }

    /// The metadata block.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Format version found in the header (major, minor).
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// Size of the snapshot in bytes (of the plaintext, for an encrypted one).
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The captured memory index (data and zero ranges), sorted by address.
    pub fn memory_ranges(&self) -> &[MemoryRange] {
        &self.ranges
    }

    /// Whether every byte of `addr..addr+len` lies in a captured range.
    pub fn is_captured(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let mut i = self.ranges.partition_point(|r| r.addr + r.len <= addr);
        let mut cur = addr;
        while cur < end {
            match self.ranges.get(i) {
                Some(r) if r.addr <= cur => cur = r.addr + r.len,
                _ => return false,
            }
            i += 1;
        }
        true
    }

    /// Reads `buf.len()` bytes at `addr`. Fails with [`crate::FormatError::Unmapped`]
    /// if any byte lies outside captured ranges (callers may then try the
    /// executable), or with a corruption error naming the chunk and check.
    /// The `Unmapped` error reports the whole request (`addr`, `buf.len()`).
    ///
    /// If the first byte that cannot be read lies in a redacted range, the
    /// error is [`crate::FormatError::Redacted`] with that byte's address.
    pub fn read_memory(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        let got = self.read_available(addr, buf)?;
        if got < buf.len() {
            let at = addr + got as u64;
            if self.is_redacted(at) {
                return Err(FormatError::Redacted {
                    addr: at,
                    len: len - got as u64,
                });
            }
            return Err(FormatError::Unmapped { addr, len });
        }
        Ok(())
    }

    /// Whether `addr` lies in a range removed by `rdlv redact`.
    pub fn is_redacted(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.addr + r.len <= addr);
        self.ranges
            .get(i)
            .is_some_and(|r| r.kind == RangeKind::Redacted && r.addr <= addr)
    }

    /// Whether any range of the index is redacted (the file came from `rdlv redact`).
    pub fn has_redactions(&self) -> bool {
        self.ranges.iter().any(|r| r.kind == RangeKind::Redacted)
    }

    /// Reads as many bytes at `addr` as are captured contiguously, up to
    /// `buf.len()`, and returns how many; the rest of `buf` is left as it was.
    /// A redacted range ends the run like an uncaptured byte.
    /// Useful near the end of a mapping (C strings, partial structures).
    pub fn read_available(&self, addr: u64, buf: &mut [u8]) -> Result<usize> {
        // Stop at the top of the address space rather than wrap.
        let end = addr.saturating_add(buf.len() as u64);
        // Ranges are sorted and disjoint, so their ends are sorted too.
        let mut i = self.ranges.partition_point(|r| r.addr + r.len <= addr);
        let mut cur = addr;
        while cur < end {
            let Some(r) = self.ranges.get(i) else { break };
            if r.addr > cur || r.kind == RangeKind::Redacted {
                break;
            }
            let n = (r.addr + r.len).min(end) - cur;
            let at = (cur - addr) as usize;
            let Some(dst) = buf.get_mut(at..at + n as usize) else {
                break;
            };
            match r.kind {
                RangeKind::Zero => dst.fill(0),
                RangeKind::Redacted => break,
                RangeKind::Data => {
                    let chunk = self.chunk(i)?;
                    let off = (cur - r.addr) as usize;
                    // load_chunk checked the decompressed length equals the range's.
                    let src = chunk.get(off..off + n as usize).ok_or_else(|| {
                        corrupt(
                            "memory chunk",
                            0,
                            "decompressed chunk shorter than its range",
                        )
                    })?;
                    dst.copy_from_slice(src);
                }
            }
            cur += n;
            i += 1;
        }
        Ok((cur - addr) as usize)
    }

    /// The embedded files, in file order.
    pub fn embedded_files(&self) -> Vec<EmbeddedFileInfo> {
        self.files.iter().map(|f| f.info.clone()).collect()
    }

    /// Bytes of the embedded file with this role, decompressed, or `None`.
    /// With several files of one role, the first one is returned.
    pub fn embedded_file(&self, role: FileRole) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.files.iter().find(|f| f.info.role == role) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        self.decompress_file(entry, &mut out)?;
        Ok(Some(out))
    }

    /// The embedded file with this role as a [`FileImage`], each frame
    /// decompressed when first read. With a seek table (SPEC §7.1) only the
    /// table is read now and each frame is read and checked against its CRC
    /// when first needed; without one the block is read and checksummed now
    /// (and a file written as one frame decompresses whole on the first
    /// read). The path for a large executable that every command opens and
    /// few read in full.
    pub fn embedded_image(&self, role: FileRole) -> Result<Option<FileImage>> {
        let Some(f) = self.files.iter().find(|f| f.info.role == role) else {
            return Ok(None);
        };
        let entry = self.block_entry(f.block)?;
        let section = format!("embedded file {:?} (block #{})", f.info.name, f.block);
        // With a seek table (1.2), read nothing more now: each frame is read
        // and checked against its own CRC when first needed.
        if let (_, Some(frames)) = self.seek_frames(f)? {
            return FileImage::from_seek_table(
                Arc::clone(&self.source),
                frames,
                f.info.size,
                section,
            )
            .map(Some);
        }
        let payload = self.read_block_payload(f.block)?;
        // The size is bounded by MAX_EMBEDDED_FILE_LEN when the index is
        // read; zeroed memory is mapped lazily, so a false claim costs
        // address space, not memory, before a read rejects it.
        let start = usize::try_from(f.frame_start).map_err(|_| {
            corrupt(
                &section,
                entry.offset,
                "the frames start past what fits in memory",
            )
        })?;
        FileImage::from_frames(
            payload,
            start,
            f.info.size,
            section,
            entry.offset + BLOCK_HEADER_LEN,
        )
        .map(Some)
    }

    /// Compressed and uncompressed sizes of memory: (compressed, uncompressed data, zero).
    /// "Compressed" counts the zstd frames of all memory chunks.
    pub fn memory_sizes(&self) -> (u64, u64, u64) {
        let mut compressed = 0;
        let mut data = 0;
        let mut zero = 0;
        for (r, &b) in self.ranges.iter().zip(&self.range_blocks) {
            match r.kind {
                RangeKind::Data => {
                    data += r.len;
                    if let Some(e) = self.blocks.get(b as usize) {
                        compressed += e.payload_len.saturating_sub(CHUNK_HEADER_LEN);
                    }
                }
                RangeKind::Zero => zero += r.len,
                RangeKind::Redacted => {}
            }
        }
        (compressed, data, zero)
    }

    /// Checks every block checksum and decompresses every chunk and file.
    /// Blocks are checked in parallel; the error reported is that of the
    /// first bad block in file order.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut chunk_range: HashMap<u32, usize> = HashMap::new();
        for (i, &b) in self.range_blocks.iter().enumerate() {
            if b != NO_BLOCK {
                chunk_range.insert(b, i);
            }
        }
        let results: Vec<Result<bool>> = (0..self.blocks.len())
            .into_par_iter()
            .map(|b| self.verify_block(b as u32, chunk_range.get(&(b as u32)).copied()))
            .collect();
        let mut report = VerifyReport::default();
        for r in results {
            if r? {
                report.chunks += 1;
            }
            report.blocks += 1;
        }
        // The index and footer were checked by open.
        report.blocks += 2;
        report.bytes = self.file_len;
        Ok(report)
    }

    /// Checks one block; returns whether it was a memory chunk.
    fn verify_block(&self, block: u32, range: Option<usize>) -> Result<bool> {
        let entry = self.block_entry(block)?;
        match entry.kind {
            kind::MEMORY_CHUNK => {
                let i = range.ok_or_else(|| {
                    corrupt("index", entry.offset, "memory chunk without a range")
                })?;
                self.load_chunk(i)?;
                Ok(true)
            }
            kind::METADATA => {
                let payload = self.read_block_payload(block)?;
                parse_metadata(&payload, entry.offset)?;
                Ok(false)
            }
            kind::EMBEDDED_FILE => {
                match self.files.iter().find(|f| f.block == block) {
                    Some(f) => {
                        let mut crc = CrcSink(crc32fast::Hasher::new());
                        self.decompress_file(f, &mut crc)?;
                        self.verify_seek_table(f, crc.0.finalize())?;
                    }
                    // A role from a newer minor, skipped at open: check the CRC only.
                    None => drop(self.read_block_payload(block)?),
                }
                Ok(false)
            }
            _ => {
                self.read_block_payload(block)?;
                Ok(false)
            }
        }
    }

    /// Splits the cache budget into up to 16 shards, each still able to hold
    /// at least four of the largest chunks (one shard when chunks are huge).
    fn make_cache_shards(&self) -> Vec<Mutex<ChunkCache>> {
        let largest = self
            .ranges
            .iter()
            .filter(|r| r.kind == RangeKind::Data)
            .map(|r| r.len)
            .max()
            .unwrap_or(1);
        let shards = (self.cache_bytes / largest.saturating_mul(4)).clamp(1, 16);
        (0..shards)
            .map(|_| Mutex::new(ChunkCache::new(self.cache_bytes / shards)))
            .collect()
    }

    /// The decompressed chunk of data range `i`, from the cache or the file.
    fn chunk(&self, i: usize) -> Result<Arc<Vec<u8>>> {
        let block = self.range_blocks.get(i).copied().unwrap_or(NO_BLOCK);
        let shard = self.cache.get(block as usize % self.cache.len().max(1));
        if let Some(hit) = shard.and_then(|s| lock(s).get(block)) {
            return Ok(hit);
        }
        // Decompress outside the lock so other threads keep reading.
        let data = Arc::new(self.load_chunk(i)?);
        if let Some(s) = shard {
            lock(s).insert(block, Arc::clone(&data));
        }
        Ok(data)
    }

    /// Reads, checks and decompresses the chunk of data range `i`.
    fn load_chunk(&self, i: usize) -> Result<Vec<u8>> {
        let r = self
            .ranges
            .get(i)
            .copied()
            .ok_or_else(|| corrupt("index", 0, "range number out of bounds"))?;
        let block = self.range_blocks.get(i).copied().unwrap_or(NO_BLOCK);
        let entry = self.block_entry(block)?;
        let section = format!("memory chunk (block #{block}, {:#x}+{:#x})", r.addr, r.len);
        let payload = self.read_block_payload(block)?;
        let mut c = LeCursor::new(&payload);
        let addr = c
            .u64()
            .ok_or_else(|| corrupt(&section, entry.offset, "payload shorter than 16 bytes"))?;
        let len = c
            .u64()
            .ok_or_else(|| corrupt(&section, entry.offset, "payload shorter than 16 bytes"))?;
        if addr != r.addr || len != r.len {
            return Err(corrupt(
                &section,
                entry.offset,
                format!(
                    "chunk says {addr:#x}+{len:#x} but the index says {:#x}+{:#x}",
                    r.addr, r.len
                ),
            ));
        }
        let frame = payload.get(CHUNK_HEADER_LEN as usize..).unwrap_or(&[]);
        decompress_exact(frame, r.len as usize).map_err(|check| {
            corrupt(
                &section,
                entry.offset + BLOCK_HEADER_LEN + CHUNK_HEADER_LEN,
                check,
            )
        })
    }

    /// Reads and checks an embedded file's payload and streams its contents into `sink`.
    fn decompress_file(&self, f: &EmbeddedFileEntry, sink: &mut impl Write) -> Result<()> {
        let entry = self.block_entry(f.block)?;
        let section = format!("embedded file {:?} (block #{})", f.info.name, f.block);
        let payload = self.read_block_payload(f.block)?;
        let frame = payload.get(f.frame_start as usize..).unwrap_or(&[]);
        let frame_offset = entry.offset + BLOCK_HEADER_LEN + f.frame_start;
        let produced = decompress_frames(frame, f.info.size, sink)
            .map_err(|(at, c)| corrupt(&section, frame_offset + at, c))?;
        if produced != f.info.size {
            return Err(corrupt(
                &section,
                frame_offset,
                format!(
                    "decompresses to {produced} bytes or more, expected {}",
                    f.info.size
                ),
            ));
        }
        Ok(())
    }

    /// An embedded file with a seek table is read frame by frame through
    /// it ([`Snapshot::embedded_image`]), not as the one stream
    /// [`Snapshot::decompress_file`] checks: a table whose CRCs match
    /// frames it places or sizes wrongly would pass that check and fail
    /// (or read other bytes) later. So the file is also read through its
    /// table and must equal the stream (`stream_crc`, the CRC-32 of it).
    fn verify_seek_table(&self, f: &EmbeddedFileEntry, stream_crc: u32) -> Result<()> {
        let (frames_at, Some(frames)) = self.seek_frames(f)? else {
            // No table (1.0/1.1, an empty file): the stream is how it is read.
            return Ok(());
        };
        let section = format!(
            "embedded file {:?} (block #{}) seek table",
            f.info.name, f.block
        );
        let image = FileImage::from_seek_table(
            Arc::clone(&self.source),
            frames,
            f.info.size,
            section.clone(),
        )?;
        if crc32fast::hash(image.all()?) != stream_crc {
            return Err(corrupt(
                &section,
                frames_at,
                "the frames it names read other bytes than the frames in order",
            ));
        }
        Ok(())
    }

    /// Where embedded file `f`'s frames start in the snapshot, and the
    /// frames its seek table gives (format 1.2) if it has one that is
    /// consistent with its block.
    fn seek_frames(&self, f: &EmbeddedFileEntry) -> Result<(u64, Option<Vec<Frame>>)> {
        let entry = self.block_entry(f.block)?;
        let frames_at = entry.offset + BLOCK_HEADER_LEN + f.frame_start;
        let frames_len = entry.payload_len.saturating_sub(f.frame_start);
        let frames = read_seek_table(
            &*self.source,
            frames_at,
            f.frame_start,
            frames_len,
            f.info.size,
        );
        Ok((frames_at, frames))
    }

    fn block_entry(&self, block: u32) -> Result<BlockEntry> {
        self.blocks
            .get(block as usize)
            .copied()
            .ok_or_else(|| corrupt("index", 0, format!("block number {block} out of bounds")))
    }

    /// Reads `len` bytes at `offset`, refusing to go past the end of the file.
    fn read_exact(&self, offset: u64, len: u64, section: &str) -> Result<Vec<u8>> {
        let available = self.file_len.saturating_sub(offset);
        if len > available {
            return Err(FormatError::Truncated {
                section: section.into(),
                offset,
                needed: len,
                available,
            });
        }
        let mut buf = vec![0u8; len as usize];
        self.source
            .read_exact_at(&mut buf, offset)
            .map_err(|e| match e {
                FormatError::Truncated {
                    offset,
                    needed,
                    available,
                    ..
                } => FormatError::Truncated {
                    section: section.into(),
                    offset,
                    needed,
                    available,
                },
                e => e,
            })?;
        Ok(buf)
    }

    /// Reads one block, checks its header against the index and its payload CRC,
    /// and returns the payload.
    fn read_block_payload(&self, block: u32) -> Result<Vec<u8>> {
        let entry = self.block_entry(block)?;
        let section = format!("block #{block} ({})", kind_name(entry.kind));
        let mut bytes =
            self.read_exact(entry.offset, BLOCK_HEADER_LEN + entry.payload_len, &section)?;
        let header = BlockHeader::decode(&bytes, &section, entry.offset)?;
        if header != entry.header() {
            return Err(corrupt(
                &section,
                entry.offset,
                "block header disagrees with the index",
            ));
        }
        let payload = bytes.split_off(BLOCK_HEADER_LEN as usize);
        let actual = crc32(&payload);
        if !crc_matches(entry.payload_crc, actual) {
            return Err(corrupt(
                &section,
                entry.offset + BLOCK_HEADER_LEN,
                format!(
                    "payload CRC-32 mismatch (stored {:#010x}, computed {actual:#010x})",
                    entry.payload_crc
                ),
            ));
        }
        Ok(payload)
    }

    fn read_header(&self) -> Result<FileHeader> {
        let have = self.file_len.min(FILE_HEADER_LEN);
        let bytes = self.read_exact(0, have, "file header")?;
        if have < FILE_HEADER_LEN {
            let n = bytes.len().min(MAGIC.len());
            if bytes.get(..n) == MAGIC.get(..n) {
                return Err(FormatError::Truncated {
                    section: "file header".into(),
                    offset: 0,
                    needed: FILE_HEADER_LEN,
                    available: have,
                });
            }
            return Err(FormatError::BadMagic);
        }
        FileHeader::decode(&bytes)
    }

    fn read_footer(&self) -> Result<EndRecord> {
        if self.file_len < FILE_HEADER_LEN + FOOTER_LEN {
            return Err(FormatError::Truncated {
                section: "footer".into(),
                offset: self.file_len,
                needed: FILE_HEADER_LEN + FOOTER_LEN,
                available: self.file_len,
            });
        }
        let offset = self.file_len - FOOTER_LEN;
        let bytes = self.read_exact(offset, FOOTER_LEN, "footer")?;
        let (head, payload) = bytes.split_at(BLOCK_HEADER_LEN as usize);
        // The end magic first: a truncated or unfinished file gets that message
        // rather than a checksum complaint.
        if payload.get(24..32) != Some(&END_MAGIC[..]) {
            return Err(corrupt(
                "footer",
                offset + BLOCK_HEADER_LEN + 24,
                "end magic \"RDLV_END\" missing: the file is truncated or was not finished",
            ));
        }
        let header = BlockHeader::decode(head, "footer", offset)?;
        if header.kind != kind::END || header.payload_len != END_PAYLOAD_LEN {
            return Err(corrupt(
                "footer",
                offset,
                format!(
                    "expected an end block of 32 bytes, found kind {} of {} bytes",
                    header.kind, header.payload_len
                ),
            ));
        }
        let actual = crc32(payload);
        if !crc_matches(header.payload_crc, actual) {
            return Err(corrupt(
                "footer",
                offset + BLOCK_HEADER_LEN,
                "end record CRC-32 mismatch",
            ));
        }
        let end = EndRecord::decode(payload, offset)?;
        if end.index_len > BLOCK_HEADER_LEN + MAX_INDEX_LEN {
            return Err(corrupt(
                "footer",
                offset + BLOCK_HEADER_LEN,
                format!("index length {} over the 1 GiB limit", end.index_len),
            ));
        }
        if end.index_offset < FILE_HEADER_LEN
            || end.index_len < BLOCK_HEADER_LEN + INDEX_HEADER_LEN
            || end.index_offset.checked_add(end.index_len) != Some(offset)
        {
            return Err(corrupt(
                "footer",
                offset + BLOCK_HEADER_LEN,
                format!(
                    "index at {} of {} bytes does not end where the footer starts ({offset})",
                    end.index_offset, end.index_len
                ),
            ));
        }
        Ok(end)
    }

    fn read_index(&mut self, end: &EndRecord) -> Result<()> {
        let at = end.index_offset;
        let bytes = self.read_exact(at, end.index_len, "index")?;
        let header = BlockHeader::decode(&bytes, "index", at)?;
        if header.kind != kind::INDEX || header.payload_len != end.index_len - BLOCK_HEADER_LEN {
            return Err(corrupt(
                "index",
                at,
                "footer does not point at an index block of the announced length",
            ));
        }
        let payload = bytes.get(BLOCK_HEADER_LEN as usize..).unwrap_or(&[]);
        let actual = crc32(payload);
        if !crc_matches(header.payload_crc, actual) || !crc_matches(end.index_crc, actual) {
            return Err(corrupt(
                "index",
                at + BLOCK_HEADER_LEN,
                format!(
                    "payload CRC-32 mismatch (header {:#010x}, footer {:#010x}, computed {actual:#010x})",
                    header.payload_crc, end.index_crc
                ),
            ));
        }
        let bad = |check: String| corrupt("index", at + BLOCK_HEADER_LEN, check);
        let mut c = LeCursor::new(payload);
        let short = || bad("index header shorter than 24 bytes".into());
        let block_count = c.u64().ok_or_else(short)?;
        let range_count = c.u64().ok_or_else(short)?;
        let block_entry_len = u64::from(c.u32().ok_or_else(short)?);
        let range_entry_len = u64::from(c.u32().ok_or_else(short)?);
        if !(BLOCK_ENTRY_LEN..=MAX_ENTRY_LEN).contains(&block_entry_len)
            || !(RANGE_ENTRY_LEN..=MAX_ENTRY_LEN).contains(&range_entry_len)
        {
            return Err(bad(format!(
                "entry sizes {block_entry_len}/{range_entry_len} outside 24..=4096"
            )));
        }
        let expected = block_count
            .checked_mul(block_entry_len)
            .and_then(|b| {
                range_count
                    .checked_mul(range_entry_len)
                    .and_then(|r| r.checked_add(b))
            })
            .and_then(|n| n.checked_add(INDEX_HEADER_LEN));
        if expected != Some(payload.len() as u64) {
            return Err(bad(format!(
                "{block_count} blocks and {range_count} ranges do not fill the {}-byte index",
                payload.len()
            )));
        }
        let newer_minor = self.version.1 > FORMAT_MINOR;

        // Blocks: contiguous from the end of the file header to the index.
        let mut blocks = Vec::with_capacity(block_count as usize);
        let mut next = FILE_HEADER_LEN;
        let mut metadata_blocks = 0;
        for i in 0..block_count {
            let raw = c.take(block_entry_len as usize).ok_or_else(short)?;
            let e = BlockEntry::decode(raw).ok_or_else(short)?;
            if e.offset != next {
                return Err(bad(format!(
                    "block #{i} at offset {} but the previous block ends at {next}",
                    e.offset
                )));
            }
            let block_end = e
                .offset
                .checked_add(BLOCK_HEADER_LEN)
                .and_then(|o| o.checked_add(e.payload_len))
                .filter(|&o| o <= at)
                .ok_or_else(|| {
                    bad(format!(
                        "block #{i} ({} bytes at {}) runs past the index",
                        e.payload_len, e.offset
                    ))
                })?;
            match e.kind {
                kind::METADATA => {
                    metadata_blocks += 1;
                    if e.payload_len > MAX_METADATA_LEN {
                        return Err(bad(format!(
                            "metadata block #{i} is {} bytes, over the 64 MiB limit",
                            e.payload_len
                        )));
                    }
                }
                kind::MEMORY_CHUNK => {
                    let max =
                        CHUNK_HEADER_LEN + zstd::compress_bound(MAX_CHUNK_LEN as usize) as u64;
                    if e.payload_len <= CHUNK_HEADER_LEN || e.payload_len > max {
                        return Err(bad(format!(
                            "memory chunk block #{i} has impossible size {}",
                            e.payload_len
                        )));
                    }
                }
                kind::EMBEDDED_FILE
                    if e.payload_len <= FILE_HEADER_FIXED_LEN
                        || e.payload_len
                            > FILE_HEADER_FIXED_LEN
                                + MAX_FILE_NAME_LEN
                                + zstd::compress_bound(MAX_EMBEDDED_FILE_LEN as usize) as u64 =>
                {
                    return Err(bad(format!(
                        "embedded file block #{i} has impossible size {}",
                        e.payload_len
                    )));
                }
                kind::EMBEDDED_FILE => {}
                k if !newer_minor || k == kind::INDEX || k == kind::END => {
                    return Err(bad(format!(
                        "block #{i} has kind {k}, not allowed here in version 1.{}",
                        self.version.1
                    )));
                }
                _ => {} // A kind from a newer minor version: skipped.
            }
            blocks.push(e);
            next = block_end;
        }
        if next != at {
            return Err(bad(format!(
                "blocks end at {next} but the index starts at {at}"
            )));
        }
        if metadata_blocks != 1 {
            return Err(bad(format!(
                "{metadata_blocks} metadata blocks, expected exactly 1"
            )));
        }

        // Ranges: sorted, disjoint, each chunk used by exactly one data range.
        let mut ranges = Vec::with_capacity(range_count as usize);
        let mut range_blocks = Vec::with_capacity(range_count as usize);
        let mut chunk_used = vec![false; blocks.len()];
        let mut prev_end = 0u64;
        for i in 0..range_count {
            let raw = c.take(range_entry_len as usize).ok_or_else(short)?;
            let r = RangeEntry::decode(raw).ok_or_else(short)?;
            let range_end = r
                .addr
                .checked_add(r.len)
                .filter(|_| r.len > 0)
                .ok_or_else(|| {
                    bad(format!(
                        "range #{i} {:#x}+{:#x} is empty or wraps",
                        r.addr, r.len
                    ))
                })?;
            if i > 0 && r.addr < prev_end {
                return Err(bad(format!(
                    "range #{i} at {:#x} overlaps or precedes the previous range ending at {prev_end:#x}",
                    r.addr
                )));
            }
            prev_end = range_end;
            let kind = match r.kind {
                range_kind::DATA => {
                    let used = chunk_used.get_mut(r.block as usize);
                    let is_chunk =
                        blocks.get(r.block as usize).map(|b| b.kind) == Some(kind::MEMORY_CHUNK);
                    match used {
                        Some(u) if is_chunk && !*u => *u = true,
                        _ => {
                            return Err(bad(format!(
                                "data range #{i} points at block {} which is not an unused memory chunk",
                                r.block
                            )))
                        }
                    }
                    if r.len > MAX_CHUNK_LEN {
                        return Err(bad(format!(
                            "data range #{i} is {} bytes, over the 16 MiB chunk limit",
                            r.len
                        )));
                    }
                    RangeKind::Data
                }
                range_kind::ZERO => {
                    if r.block != NO_BLOCK {
                        return Err(bad(format!("zero range #{i} points at block {}", r.block)));
                    }
                    RangeKind::Zero
                }
                range_kind::REDACTED if self.version.1 >= 1 => {
                    if r.block != NO_BLOCK {
                        return Err(bad(format!(
                            "redacted range #{i} points at block {}",
                            r.block
                        )));
                    }
                    RangeKind::Redacted
                }
                k if newer_minor => {
                    // A range kind from a newer minor: its bytes count as not captured.
                    let _ = k;
                    continue;
                }
                k => return Err(bad(format!("range #{i} has unknown kind {k}"))),
            };
            ranges.push(MemoryRange {
                addr: r.addr,
                len: r.len,
                kind,
            });
            range_blocks.push(if kind == RangeKind::Data {
                r.block
            } else {
                NO_BLOCK
            });
        }
        for (i, b) in blocks.iter().enumerate() {
            if b.kind == kind::MEMORY_CHUNK && !chunk_used.get(i).copied().unwrap_or(false) {
                return Err(bad(format!(
                    "memory chunk block #{i} is not referenced by any range"
                )));
            }
        }
        self.blocks = blocks;
        self.ranges = ranges;
        self.range_blocks = range_blocks;
        Ok(())
    }

    fn read_metadata(&mut self) -> Result<()> {
        let (i, e) = self
            .blocks
            .iter()
            .enumerate()
            .find(|(_, b)| b.kind == kind::METADATA)
            .map(|(i, b)| (i as u32, *b))
            .ok_or_else(|| corrupt("index", 0, "no metadata block"))?;
        let payload = self.read_block_payload(i)?;
        self.metadata = parse_metadata(&payload, e.offset)?;
        Ok(())
    }

    /// Lists embedded files from their fixed headers (payload CRCs are checked on read).
    fn read_file_entries(&mut self) -> Result<()> {
        let newer_minor = self.version.1 > FORMAT_MINOR;
        let mut files = Vec::new();
        for (i, e) in self.blocks.iter().enumerate() {
            if e.kind != kind::EMBEDDED_FILE {
                continue;
            }
            let section = format!("embedded file (block #{i})");
            let head_len = BLOCK_HEADER_LEN + FILE_HEADER_FIXED_LEN;
            let bytes = self.read_exact(e.offset, head_len, &section)?;
            let header = BlockHeader::decode(&bytes, &section, e.offset)?;
            if header != e.header() {
                return Err(corrupt(
                    &section,
                    e.offset,
                    "block header disagrees with the index",
                ));
            }
            let fixed_at = e.offset + BLOCK_HEADER_LEN;
            let mut c = LeCursor::new(bytes.get(BLOCK_HEADER_LEN as usize..).unwrap_or(&[]));
            let short = || corrupt(&section, fixed_at, "file header shorter than 16 bytes");
            let role_code = c.u16().ok_or_else(short)?;
            c.u16().ok_or_else(short)?;
            let name_len = u64::from(c.u32().ok_or_else(short)?);
            let size = c.u64().ok_or_else(short)?;
            if name_len > MAX_FILE_NAME_LEN || FILE_HEADER_FIXED_LEN + name_len >= e.payload_len {
                return Err(corrupt(
                    &section,
                    fixed_at,
                    format!("name length {name_len} impossible"),
                ));
            }
            if size > MAX_EMBEDDED_FILE_LEN {
                return Err(corrupt(
                    &section,
                    fixed_at,
                    format!("size {size} over the 4 GiB limit"),
                ));
            }
            let name_bytes =
                self.read_exact(fixed_at + FILE_HEADER_FIXED_LEN, name_len, &section)?;
            let name = String::from_utf8(name_bytes).map_err(|_| {
                corrupt(
                    &section,
                    fixed_at + FILE_HEADER_FIXED_LEN,
                    "name is not UTF-8",
                )
            })?;
            let role = match role_code {
                role::EXECUTABLE => FileRole::Executable,
                role::OTHER => FileRole::Other,
                _ if newer_minor => continue,
                r => {
                    return Err(corrupt(
                        &section,
                        fixed_at,
                        format!("unknown file role {r}"),
                    ))
                }
            };
            let frame_start = FILE_HEADER_FIXED_LEN + name_len;
            files.push(EmbeddedFileEntry {
                info: EmbeddedFileInfo {
                    role,
                    name,
                    size,
                    compressed_size: e.payload_len - frame_start,
                },
                block: i as u32,
                frame_start,
            });
        }
        self.files = files;
        Ok(())
    }
}

fn lock(shard: &Mutex<ChunkCache>) -> std::sync::MutexGuard<'_, ChunkCache> {
    // The cache holds no invariant a panicking reader could break halfway.
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_metadata(payload: &[u8], block_offset: u64) -> Result<Metadata> {
    serde_json::from_slice(payload).map_err(|e| {
        corrupt(
            "metadata",
            block_offset + BLOCK_HEADER_LEN,
            format!("JSON does not parse as rdlv metadata: {e}"),
        )
    })
}

/// A sink that keeps only the CRC-32 of what is written to it.
struct CrcSink(crc32fast::Hasher);

impl Write for CrcSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_chunks(chunk_size: usize, bytes: usize) -> tempfile::NamedTempFile {
        let data: Vec<u8> = (0..bytes).map(|i| (i % 253) as u8 | 1).collect();
        let opts = crate::WriteOptions {
            chunk_size,
            ..Default::default()
        };
        let mut w = crate::SnapshotWriter::new(Vec::new(), opts).expect("writer");
        w.write_metadata(&Metadata::default()).expect("metadata");
        let region = crate::MemoryRegion {
            addr: 0x100000,
            data: &data,
        };
        w.write_memory(&[region], &mut |_| {}).expect("memory");
        let (bytes, _) = w.finish().expect("finish");
        let mut f = tempfile::NamedTempFile::new().expect("tempfile");
        f.write_all(&bytes).expect("write");
        f
    }

    fn cached(snap: &Snapshot) -> (u64, usize) {
        let bytes = snap.cache.iter().map(|s| lock(s).bytes).sum();
        let entries = snap.cache.iter().map(|s| lock(s).entries.len()).sum();
        (bytes, entries)
    }

    #[test]
    fn cache_is_sharded_and_bounded() {
        let f = write_chunks(4096, 64 * 4096);
        // 64 KiB budget, 4 KiB chunks: 4 shards of 16 KiB.
        let snap = Snapshot::open_with_cache(f.path(), 64 * 1024).expect("open");
        assert_eq!(snap.cache.len(), 4);
        let mut b = [0u8; 16];
        for page in 0..64u64 {
            snap.read_memory(0x100000 + page * 4096 + 7, &mut b)
                .expect("read");
        }
        let (bytes, entries) = cached(&snap);
        assert_eq!((bytes, entries), (64 * 1024, 16));
        // Re-reading a cached chunk adds nothing.
        snap.read_memory(0x100000 + 63 * 4096, &mut b)
            .expect("read");
        assert_eq!(cached(&snap).1, 16);

        // Chunks too big to share the budget: one shard that still holds one chunk.
        let f = write_chunks(64 * 1024, 4 * 64 * 1024);
        let snap = Snapshot::open_with_cache(f.path(), 100 * 1024).expect("open");
        assert_eq!(snap.cache.len(), 1);
        snap.read_memory(0x100000, &mut b).expect("read");
        assert_eq!(cached(&snap), (64 * 1024, 1));
        // A zero budget caches nothing and still reads.
        let snap = Snapshot::open_with_cache(f.path(), 0).expect("open");
        snap.read_memory(0x100000, &mut b).expect("read");
        assert_eq!(cached(&snap), (0, 0));
    }

    #[test]
    fn snapshot_is_send_and_sync() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Snapshot>();
    }

    #[test]
    fn crc_is_the_zlib_crc32() {
        // The check value SPEC.md quotes.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn cache_evicts_least_recently_used_within_budget() {
        let mut c = ChunkCache::new(300);
        c.insert(1, Arc::new(vec![1; 100]));
        c.insert(2, Arc::new(vec![2; 100]));
        c.insert(3, Arc::new(vec![3; 100]));
        assert!(c.get(1).is_some()); // 2 is now the oldest
        c.insert(4, Arc::new(vec![4; 100]));
        assert!(c.get(2).is_none());
        assert_eq!(c.get(1).map(|d| d[0]), Some(1));
        assert_eq!(c.get(3).map(|d| d[0]), Some(3));
        assert_eq!(c.get(4).map(|d| d[0]), Some(4));
        assert_eq!(c.bytes, 300);
        // Larger than the whole budget: not cached, nothing evicted.
        c.insert(5, Arc::new(vec![5; 301]));
        assert!(c.get(5).is_none());
        assert_eq!(c.entries.len(), 3);
        // A big entry evicts as many as needed.
        c.insert(6, Arc::new(vec![6; 250]));
        assert_eq!(c.entries.len(), 1);
        assert!(c.bytes <= 300);
    }

    #[test]
    fn decompress_exact_checks_length_and_frame() {
        let data = vec![9u8; 10_000];
        let frame = zstd::bulk::compress(&data, 1).expect("compress");
        assert_eq!(decompress_exact(&frame, 10_000).ok(), Some(data.clone()));
        assert!(decompress_exact(&frame, 9_999).is_err());
        assert!(decompress_exact(&frame, 10_001).is_err());
        let mut trailing = frame.clone();
        trailing.push(0);
        assert!(decompress_exact(&trailing, 10_000).is_err());
        assert!(decompress_exact(&frame[..frame.len() - 1], 10_000).is_err());
        assert!(decompress_exact(&[], 0).is_err());
        let mut sink = Vec::new();
        assert_eq!(
            decompress_stream(&frame, 10_000, &mut sink).ok(),
            Some(10_000)
        );
        // A frame producing more than the recorded size stops at limit + 1.
        let mut sink = Vec::new();
        assert_eq!(decompress_stream(&frame, 100, &mut sink).ok(), Some(101));
        assert_eq!(sink.len(), 101);
    }
}
