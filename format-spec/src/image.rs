//! An embedded file decompressed on demand, one zstd frame at a time.
//!
//! Why: the executable is the largest thing most snapshots hold (80 MB for a
//! real service) and a command needs a fraction of it: `rdlv bt` reads the
//! ELF headers, the pclntab, some funcdata and `.debug_info`, not `.text`
//! (beyond the first frame, which it shares with the headers).
//! Since format 1.2 a writer cuts an embedded file into independent frames of
//! [`EMBEDDED_FRAME_LEN`] bytes, each declaring its content size, so a reader
//! can decompress only the frames a read touches. A file written as one
//! frame (1.0, 1.1) is one frame here: the first read decompresses it all,
//! as before. A 1.2 writer ends the frames with a seek table (SPEC §7.1)
//! that gives each frame's sizes and CRC-32, so a reader reads from the
//! file only the frames it decompresses, each checked against its CRC.
//!
//! Invariants (what makes the one `unsafe` buffer sound):
//! - the buffer is allocated zeroed once and never moves or shrinks;
//! - the bytes of a frame are written exactly once, by the initializer of
//!   that frame's `OnceLock`, through a pointer no reference overlaps;
//! - [`FileImage::get`] hands out a reference only to bytes of frames whose
//!   `OnceLock` has completed, which are never written again.
//!
//! So no shared reference ever aliases a write, and every byte handed out is
//! the decompressed file's (never the zero fill).

use std::ops::Range;
use std::ptr::NonNull;
use std::sync::OnceLock;

use std::sync::Arc;

use rayon::prelude::*;

use crate::layout::{corrupt, crc32, crc_matches};
use crate::source::Source;
use crate::{FormatError, Result};

/// Uncompressed size of one frame of an embedded file as the reference
/// writer cuts it. 1 MiB costs 0.7% in size against one frame (a 78.5 MiB Go
/// server at zstd level 3) and lets a read decompress 1 MiB, not the file.
pub const EMBEDDED_FRAME_LEN: usize = 1 << 20;

/// Most frames an image indexes; a file cut finer (hostile, or not written
/// by rdlv) is decompressed as one stream instead.
pub(crate) const MAX_IMAGE_FRAMES: usize = 1 << 16;

/// Largest frame content a seek table may claim (bounds the buffer one
/// frame's compressed bytes are read into).
pub(crate) const MAX_IMAGE_FRAME_LEN: u64 = 64 << 20;

/// Magic of the skippable zstd frame holding the seek table (SPEC §7.1);
/// zstd decoders skip it.
pub(crate) const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5B;

/// Last four bytes of a seek table: "RSEK".
pub(crate) const SEEK_TABLE_TAG: u32 = u32::from_le_bytes(*b"RSEK");

/// Bytes of one seek table entry: compressed length, content length, CRC-32.
pub(crate) const SEEK_ENTRY_LEN: usize = 12;

/// Bytes after the entries: header CRC, entries CRC, count, tag.
pub(crate) const SEEK_FOOTER_LEN: usize = 16;

/// One frame: where its bytes go and where its compressed bytes are.
pub(crate) struct Frame {
    out: Range<usize>,
    /// Offsets in the payload held in memory, or in the snapshot file.
    compressed: Range<u64>,
    /// CRC-32 of the compressed bytes, from the seek table.
    crc: Option<u32>,
    /// Set once the frame's bytes are in the buffer, or why they cannot be.
    done: OnceLock<std::result::Result<(), String>>,
}

/// Where the compressed frames are.
enum Store {
    /// The block payload, read whole and checked against its CRC.
    Memory(Vec<u8>),
    /// The snapshot: each frame is read when first needed and checked
    /// against its seek table CRC.
    Source(Arc<dyn Source>),
}

/// A file held compressed and decompressed frame by frame as it is read.
/// `Sync`: several threads may read (and so fill) different parts at once.
pub struct FileImage {
    buf: NonNull<u8>,
    len: usize,
    /// The compressed frames (none left to read for plain bytes).
    store: Store,
    /// Frames in file order, tiling `0..len`.
    frames: Vec<Frame>,
    /// Section name and file offset of `compressed[0]`, for errors.
    section: String,
    offset: u64,
}

// SAFETY: the buffer is owned by the image; writes to it follow the module
// invariants (each frame once, under its OnceLock, never while referenced).
unsafe impl Send for FileImage {}
// SAFETY: as above; shared access only reads completed frames, and the
// store's `Source` is itself `Send + Sync`.
unsafe impl Sync for FileImage {}

impl Drop for FileImage {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: allocated in `allocate` with this layout.
            unsafe {
                std::alloc::dealloc(self.buf.as_ptr(), byte_layout(self.len));
            }
        }
    }
}

/// A range of an image whose frames are all decompressed, read as a plain
/// slice with no per-read lookup of frames (what a table read a million
/// times, the pclntab, wants). Sound because it holds the image: the
/// buffer never moves while the image lives, and completed frames are
/// never written again.
pub struct LoadedRange {
    image: Arc<FileImage>,
    range: Range<usize>,
}

impl LoadedRange {
    /// Decompresses `range` of `image` (if not yet) and holds it.
    pub fn new(image: Arc<FileImage>, range: Range<usize>) -> Result<LoadedRange> {
        image.try_get(range.clone())?;
        Ok(LoadedRange { image, range })
    }

    /// Where the range starts in the file.
    pub fn start(&self) -> usize {
        self.range.start
    }

    /// Bytes `range` of the file (offsets in the file, not in the loaded
    /// range), if the loaded range holds them all.
    pub fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        let from = range.start.checked_sub(self.range.start)?;
        let to = range.end.checked_sub(self.range.start)?;
        self.as_bytes().get(from..to)
    }

    /// The range's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        if self.range.is_empty() {
            return &[];
        }
        // SAFETY: `new` checked the range is in bounds and every frame
        // covering it is complete; `self.image` keeps the buffer alive.
        unsafe {
            std::slice::from_raw_parts(
                self.image.buf.as_ptr().add(self.range.start),
                self.range.len(),
            )
        }
    }
}

impl std::fmt::Debug for LoadedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRange")
            .field("range", &self.range)
            .finish()
    }
}

impl std::fmt::Debug for FileImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileImage")
            .field("len", &self.len)
            .field("frames", &self.frames.len())
            .field("decompressed", &self.frames_done())
            .finish()
    }
}

fn byte_layout(len: usize) -> std::alloc::Layout {
    // `len <= isize::MAX` is checked before allocating.
    std::alloc::Layout::from_size_align(len, 1).expect("checked length")
}

/// A zeroed buffer of `len` bytes; the system maps large ones lazily, so
/// frames never read cost address space, not memory.
fn allocate(len: usize, section: &str, offset: u64) -> Result<NonNull<u8>> {
    if len == 0 {
        return Ok(NonNull::dangling());
    }
    if len > isize::MAX as usize {
        return Err(corrupt(section, offset, "size does not fit in memory"));
    }
    // SAFETY: non-zero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(byte_layout(len)) };
    NonNull::new(ptr).ok_or_else(|| {
        FormatError::Io(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes for {section}"),
        ))
    })
}

/// The frames of `data` if it is a sequence of zstd frames that each declare
/// their content size and together give `size` bytes; `None` otherwise (the
/// caller then treats it as one stream and finds out by decompressing).
fn frame_table(data: &[u8], size: usize) -> Option<Vec<Frame>> {
    let mut frames = Vec::new();
    let (mut pos, mut out) = (0usize, 0usize);
    while pos < data.len() {
        if frames.len() >= MAX_IMAGE_FRAMES {
            return None;
        }
        let rest = &data[pos..];
        let n = zstd::zstd_safe::find_frame_compressed_size(rest).ok()?;
        let frame = rest.get(..n).filter(|f| !f.is_empty())?;
        if is_skippable(frame) {
            pos += n;
            continue;
        }
        let content = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
        let end = out.checked_add(usize::try_from(content).ok()?)?;
        if end > size {
            return None;
        }
        if end > out {
            frames.push(Frame {
                out: out..end,
                compressed: pos as u64..(pos + n) as u64,
                crc: None,
                done: OnceLock::new(),
            });
        }
        (pos, out) = (pos + n, end);
    }
    (out == size).then_some(frames)
}

/// Whether `frame` starts with a skippable frame's magic (0x184D2A5?).
fn is_skippable(frame: &[u8]) -> bool {
    frame
        .get(..4)
        .is_some_and(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]) & 0xFFFF_FFF0 == 0x184D_2A50)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The seek table at the end of `frames_len` bytes of frames starting at
/// file offset `base`, read from `source`: the frames (file offsets) if a
/// complete, consistent table is there whose CRCs match it and the
/// `header_len` payload bytes before the frames (the file's fixed fields and
/// name), else `None` (the caller then reads the whole payload and checks
/// its CRC, which then fails for any damage the table would have hidden).
pub(crate) fn read_seek_table(
    source: &dyn Source,
    base: u64,
    header_len: u64,
    frames_len: u64,
    size: u64,
) -> Option<Vec<Frame>> {
    let tail_len = 8u64;
    if frames_len < 8 + tail_len {
        return None;
    }
    let mut tail = [0u8; 8];
    source
        .read_exact_at(&mut tail, base + frames_len - tail_len)
        .ok()?;
    let (count, tag) = (le32(&tail, 0) as usize, le32(&tail, 4));
    if tag != SEEK_TABLE_TAG || count == 0 || count > MAX_IMAGE_FRAMES {
        return None;
    }
    let body_len = count * SEEK_ENTRY_LEN + SEEK_FOOTER_LEN;
    let table_len = 8 + body_len as u64;
    if table_len > frames_len || header_len > base || header_len > 1 << 16 {
        return None;
    }
    let mut table = vec![0u8; table_len as usize];
    source
        .read_exact_at(&mut table, base + frames_len - table_len)
        .ok()?;
    if le32(&table, 0) != SEEK_TABLE_MAGIC || le32(&table, 4) as usize != body_len {
        return None;
    }
    let entries_end = 8 + count * SEEK_ENTRY_LEN;
    let mut header = vec![0u8; header_len as usize];
    source.read_exact_at(&mut header, base - header_len).ok()?;
    if !crc_matches(le32(&table, entries_end), crc32(&header))
        || !crc_matches(le32(&table, entries_end + 4), crc32(&table[8..entries_end]))
    {
        return None;
    }
    let mut frames = Vec::with_capacity(count);
    let (mut pos, mut out) = (0u64, 0u64);
    for i in 0..count {
        let e = 8 + i * SEEK_ENTRY_LEN;
        let (clen, ulen, crc) = (
            u64::from(le32(&table, e)),
            u64::from(le32(&table, e + 4)),
            le32(&table, e + 8),
        );
        // A frame is never longer than zstd's bound for its content, which
        // also bounds the buffer `fill` reads it into.
        let bound = zstd::zstd_safe::compress_bound(ulen as usize) as u64;
        if clen == 0 || ulen == 0 || ulen > MAX_IMAGE_FRAME_LEN || clen > bound {
            return None;
        }
        let (end, out_end) = (pos.checked_add(clen)?, out.checked_add(ulen)?);
        frames.push(Frame {
            out: usize::try_from(out).ok()?..usize::try_from(out_end).ok()?,
            compressed: base + pos..base + end,
            crc: Some(crc),
            done: OnceLock::new(),
        });
        (pos, out) = (end, out_end);
    }
    (pos.checked_add(table_len)? == frames_len && out == size).then_some(frames)
}

impl FileImage {
    /// An image of `size` bytes read frame by frame from `source` as its
    /// seek table says (see [`read_seek_table`]). `section` names it in
    /// errors, whose offsets are file offsets.
    pub(crate) fn from_seek_table(
        source: Arc<dyn Source>,
        frames: Vec<Frame>,
        size: u64,
        section: String,
    ) -> Result<FileImage> {
        let at = frames.first().map_or(0, |f| f.compressed.start);
        let len = usize::try_from(size)
            .map_err(|_| corrupt(&section, at, "size does not fit in memory"))?;
        // The buffer's soundness rests on the frames tiling 0..len.
        let mut end = 0;
        for f in &frames {
            if f.out.start != end || f.out.end <= f.out.start {
                return Err(corrupt(
                    &section,
                    at,
                    "seek table frames do not tile the file",
                ));
            }
            end = f.out.end;
        }
        if end != len {
            return Err(corrupt(
                &section,
                at,
                "seek table frames do not tile the file",
            ));
        }
        let buf = allocate(len, &section, at)?;
        Ok(FileImage {
            buf,
            len,
            store: Store::Source(source),
            frames,
            section,
            offset: 0,
        })
    }

    /// An image of `size` bytes from `compressed[start..]`, one or more
    /// concatenated zstd frames (already checksummed by the caller).
    /// `section` and `offset` (of `compressed[0]` in the snapshot) name
    /// where the bytes are, for errors.
    pub(crate) fn from_frames(
        compressed: Vec<u8>,
        start: usize,
        size: u64,
        section: String,
        offset: u64,
    ) -> Result<FileImage> {
        let at = offset + start as u64;
        let len = usize::try_from(size)
            .map_err(|_| corrupt(&section, at, "size does not fit in memory"))?;
        let frames_at = compressed.get(start..).unwrap_or(&[]);
        let mut frames = frame_table(frames_at, len).unwrap_or_else(|| {
            vec![Frame {
                out: 0..len,
                compressed: 0..frames_at.len() as u64,
                crc: None,
                done: OnceLock::new(),
            }]
        });
        for f in &mut frames {
            f.compressed = f.compressed.start + start as u64..f.compressed.end + start as u64;
        }
        let buf = allocate(len, &section, at)?;
        Ok(FileImage {
            buf,
            len,
            store: Store::Memory(compressed),
            frames,
            section,
            offset,
        })
    }

    /// An image of bytes already at hand (an executable read from disk).
    pub fn from_bytes(bytes: &[u8]) -> Result<FileImage> {
        let len = bytes.len();
        let buf = allocate(len, "file", 0)?;
        if len > 0 {
            // SAFETY: `buf` is a fresh allocation of `len` bytes that nothing
            // else references.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.as_ptr(), len) };
        }
        let done = OnceLock::new();
        let _ = done.set(Ok(()));
        Ok(FileImage {
            buf,
            len,
            store: Store::Memory(Vec::new()),
            frames: vec![Frame {
                out: 0..len,
                compressed: 0..0,
                crc: None,
                done,
            }],
            section: "file".into(),
            offset: 0,
        })
    }

    /// Size of the file.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many frames the file is cut into (1 for a file written whole).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// How many frames have been decompressed so far.
    pub fn frames_done(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.done.get().is_some())
            .count()
    }

    /// The error of the first frame that failed to decompress so far, if
    /// any: what a caller that only saw `None` from [`FileImage::get`]
    /// reports instead of "absent".
    pub fn damage(&self) -> Option<FormatError> {
        self.frames.iter().find_map(|f| match f.done.get() {
            Some(Err(e)) => Some(self.frame_error(f, e)),
            _ => None,
        })
    }

    /// Bytes `range` of the file, decompressing the frames it covers that
    /// are not yet (several at once, in parallel). `None` if the range is
    /// out of bounds or a frame it needs does not decompress (see
    /// [`FileImage::try_get`] for the error).
    pub fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        self.try_get(range).ok()
    }

    /// The whole file.
    pub fn all(&self) -> Result<&[u8]> {
        self.try_get(0..self.len)
    }

    /// Like [`FileImage::get`], saying what failed.
    pub fn try_get(&self, range: Range<usize>) -> Result<&[u8]> {
        if range.start > range.end || range.end > self.len {
            return Err(FormatError::Usage(format!(
                "bytes {}..{} of a {}-byte file",
                range.start, range.end, self.len
            )));
        }
        if range.is_empty() {
            return Ok(&[]);
        }
        let first = self.frames.partition_point(|f| f.out.end <= range.start);
        let last = self.frames.partition_point(|f| f.out.start < range.end);
        let needed = self.frames.get(first..last).unwrap_or(&[]);
        // Most reads are of frames already done: no allocation for them.
        if needed.iter().any(|f| f.done.get().is_none()) {
            let pending: Vec<&Frame> = needed.iter().filter(|f| f.done.get().is_none()).collect();
            match pending.len() {
                0 => {}
                1 => self.fill(pending[0])?,
                _ => pending.par_iter().try_for_each(|f| self.fill(f))?,
            }
        }
        // Every frame covering `range` is complete (each `fill` returned Ok
        // or its OnceLock already held Ok), so its bytes are final.
        for f in needed {
            if let Some(Err(e)) = f.done.get() {
                return Err(self.frame_error(f, e));
            }
        }
        // SAFETY: in bounds (checked above); the bytes belong to completed
        // frames, which nothing writes again (module invariants).
        Ok(unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(range.start), range.len()) })
    }

    fn frame_error(&self, f: &Frame, e: &str) -> FormatError {
        corrupt(&self.section, self.offset + f.compressed.start, e)
    }

    /// Decompresses `f` into its place in the buffer, once.
    fn fill(&self, f: &Frame) -> Result<()> {
        let outcome = f.done.get_or_init(|| {
            let read;
            let input: &[u8] = match &self.store {
                Store::Memory(bytes) => usize::try_from(f.compressed.start)
                    .ok()
                    .zip(usize::try_from(f.compressed.end).ok())
                    .and_then(|(a, b)| bytes.get(a..b))
                    .unwrap_or(&[]),
                Store::Source(source) => {
                    // Bounded by zstd's bound for at most 64 MiB of content
                    // (checked by `read_seek_table`).
                    let mut buf = vec![0u8; (f.compressed.end - f.compressed.start) as usize];
                    source
                        .read_exact_at(&mut buf, f.compressed.start)
                        .map_err(|e| e.to_string())?;
                    read = buf;
                    &read
                }
            };
            if let Some(want) = f.crc {
                let got = crc32(input);
                if !crc_matches(want, got) {
                    return Err(format!(
                        "frame CRC-32 mismatch (seek table {want:#010x}, computed {got:#010x})"
                    ));
                }
            }
            // SAFETY: `f.out` lies in the buffer (frames tile 0..len); this
            // is the one initializer of `f`, and no reference to its bytes
            // exists before `done` is set (module invariants).
            let out = unsafe {
                std::slice::from_raw_parts_mut(self.buf.as_ptr().add(f.out.start), f.out.len())
            };
            let produced = zstd::bulk::Decompressor::new()
                .and_then(|mut d| d.decompress_to_buffer(input, out))
                .map_err(|e| format!("zstd decompression failed: {e}"))?;
            if produced != f.out.len() {
                return Err(format!(
                    "decompresses to {produced} bytes, expected {}",
                    f.out.len()
                ));
            }
            Ok(())
        });
        outcome
            .as_ref()
            .map_err(|e| self.frame_error(f, e))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(data: &[u8], frame: usize) -> Vec<u8> {
        data.chunks(frame)
            .flat_map(|c| zstd::bulk::compress(c, 3).expect("compress"))
            .collect()
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn reads_decompress_only_the_frames_they_cover() {
        let data = sample(10 * 4096 + 100);
        let img = FileImage::from_frames(framed(&data, 4096), 0, data.len() as u64, "t".into(), 0)
            .expect("image");
        assert_eq!(img.frame_count(), 11);
        assert_eq!(img.frames_done(), 0);
        assert_eq!(img.get(4096 + 10..4096 + 20), Some(&data[4106..4116]));
        assert_eq!(img.frames_done(), 1);
        // A read across a frame boundary fills both.
        assert_eq!(
            img.get(3 * 4096 - 5..3 * 4096 + 5),
            Some(&data[3 * 4096 - 5..3 * 4096 + 5])
        );
        assert_eq!(img.frames_done(), 3);
        assert_eq!(img.all().expect("all"), &data[..]);
        assert_eq!(img.frames_done(), 11);
        assert_eq!(img.get(0..data.len() + 1), None);
        assert_eq!(img.get(5..5), Some(&[][..]));
    }

    #[test]
    fn a_loaded_range_reads_what_the_image_holds_and_only_when_it_decompresses() {
        let data = sample(6 * 4096);
        let img = Arc::new(
            FileImage::from_frames(framed(&data, 4096), 0, data.len() as u64, "t".into(), 0)
                .expect("image"),
        );
        let r = LoadedRange::new(Arc::clone(&img), 4096 + 7..3 * 4096 + 9).expect("loaded");
        assert_eq!(r.start(), 4096 + 7);
        assert_eq!(r.as_bytes(), &data[4096 + 7..3 * 4096 + 9]);
        assert_eq!(r.get(5000..5008), Some(&data[5000..5008]));
        assert_eq!(r.get(4096..5008), None, "starts before the range");
        assert_eq!(r.get(5000..3 * 4096 + 10), None, "ends past it");
        assert_eq!(img.frames_done(), 3, "the frames it covers, no more");
        let empty = LoadedRange::new(Arc::clone(&img), 9..9).expect("empty");
        assert!(empty.as_bytes().is_empty());
        assert!(LoadedRange::new(Arc::clone(&img), 0..data.len() + 1).is_err());
        // A damaged frame in the range: no range.
        let mut bad = framed(&data, 4096);
        let second = zstd::zstd_safe::find_frame_compressed_size(&bad).expect("frame");
        bad[second + 10] ^= 0xff;
        let img = Arc::new(
            FileImage::from_frames(bad, 0, data.len() as u64, "t".into(), 0).expect("image"),
        );
        assert!(LoadedRange::new(Arc::clone(&img), 0..4096).is_ok());
        assert!(LoadedRange::new(img, 0..2 * 4096).is_err());
    }

    #[test]
    fn one_frame_files_and_frames_without_sizes_read_whole() {
        let data = sample(50_000);
        let one = zstd::bulk::compress(&data, 3).expect("compress");
        let img = FileImage::from_frames(one, 0, data.len() as u64, "t".into(), 0).expect("image");
        assert_eq!(img.frame_count(), 1);
        assert_eq!(img.get(100..200), Some(&data[100..200]));
        // Frames without a content size (as a stream encoder may write
        // them): the whole is one stream.
        let mut streamed = Vec::new();
        let mut enc = zstd::stream::write::Encoder::new(&mut streamed, 3).expect("encoder");
        enc.include_contentsize(false).expect("no content size");
        std::io::Write::write_all(&mut enc, &data).expect("encode");
        enc.finish().expect("finish");
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(&streamed),
            Ok(None)
        ));
        let img =
            FileImage::from_frames(streamed, 0, data.len() as u64, "t".into(), 0).expect("image");
        assert_eq!(img.frame_count(), 1);
        assert_eq!(img.all().expect("all"), &data[..]);
    }

    #[test]
    fn damaged_frames_and_false_sizes_are_errors_not_zeros() {
        let data = sample(3 * 4096);
        let framed = framed(&data, 4096);
        // The size claims one byte more than the frames hold: one stream,
        // which then does not decompress to the claim.
        let img =
            FileImage::from_frames(framed, 0, data.len() as u64 + 1, "t".into(), 7).expect("image");
        assert_eq!(img.frame_count(), 1);
        let err = img.try_get(0..10).expect_err("short").to_string();
        assert!(err.contains("expected 12289"), "{err}");
        assert_eq!(img.get(0..10), None, "a failure is remembered");
        // Damage the second frame (its checksum, so it decodes to an
        // error whatever the data): its reads fail, the others work.
        let mut framed = Vec::new();
        let mut c = zstd::bulk::Compressor::new(3).expect("compressor");
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .expect("checksum flag");
        let mut ends = Vec::new();
        for chunk in data.chunks(4096) {
            framed.extend(c.compress(chunk).expect("compress"));
            ends.push(framed.len());
        }
        framed[ends[1] - 1] ^= 0xff;
        let mut payload = b"header".to_vec();
        payload.extend(framed);
        let img = FileImage::from_frames(payload, 6, data.len() as u64, "exe".into(), 100)
            .expect("image");
        assert_eq!(img.frame_count(), 3);
        assert_eq!(img.get(0..4096), Some(&data[..4096]));
        match img.try_get(4090..4100) {
            Err(FormatError::Corrupt {
                section, offset, ..
            }) => {
                assert_eq!(section, "exe");
                assert_eq!(offset, 100 + 6 + ends[0] as u64);
            }
            other => panic!("expected the damaged frame's error, got {other:?}"),
        }
        assert_eq!(img.get(8192..8200), Some(&data[8192..8200]));
    }

    #[test]
    fn parallel_readers_see_the_same_bytes() {
        let data = sample(64 * 4096);
        let img = FileImage::from_frames(framed(&data, 4096), 0, data.len() as u64, "t".into(), 0)
            .expect("image");
        (0..64usize).into_par_iter().for_each(|i| {
            let lo = (i * 4000) % (data.len() - 9000);
            assert_eq!(img.get(lo..lo + 9000), Some(&data[lo..lo + 9000]));
        });
        let copy = FileImage::from_bytes(img.all().expect("all")).expect("copy");
        assert_eq!(copy.all().expect("all"), &data[..]);
        assert_eq!((copy.frame_count(), copy.frames_done()), (1, 1));
    }
}
