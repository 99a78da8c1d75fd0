//! The Go executable: ELF sections and segments, symbols, build ids and Go
//! build info. Addresses here are link-time addresses; add the load bias
//! (see [`Binary::load_bias`]) for addresses in a PIE process.
//!
//! The bytes are a [`FileImage`]: the executable embedded in a snapshot is
//! decompressed a frame at a time as it is read, so a command pays for the
//! parts it reads (`bt` reads of `.text` only the frame it shares with the
//! headers). Every read of file bytes here goes through [`FileImage::get`];
//! parsing the ELF (headers, section headers, the symbol and string tables
//! `object` reads at parse) goes through `ImageRef`, so nothing takes the
//! whole file as one slice except [`Binary::data`], which decompresses it
//! all. A frame that does not decompress during the parse fails it: the
//! build info, the notes and the symbol table would otherwise read as
//! absent.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use object::read::elf::{ElfFile64, FileHeader, ProgramHeader, SectionHeader};
use object::{elf, Endianness, Object, ObjectSection, ObjectSymbol};

use rdlv_format::FileImage;

use crate::buildinfo::{self, BuildInfoLayout};
use crate::error::{AnalyzeError, BinaryError, Result, SectionFault, Unsupported};

/// A Go version, parsed from `.go.buildinfo` (`go1.26.8`, `go1.27rc1`, `devel …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    /// The raw string.
    pub raw: String,
    /// Major (1).
    pub major: u32,
    /// Minor (21..27).
    pub minor: u32,
    /// Patch (0 for rc/beta).
    pub patch: u32,
}

impl GoVersion {
    /// Parses a version string as found in `.go.buildinfo` (see
    /// [`buildinfo::parse_go_version`]).
    pub fn parse(raw: &str) -> Option<GoVersion> {
        buildinfo::parse_go_version(raw)
    }

    /// Whether this is Go `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// A symbol from `.symtab` (absent in stripped binaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Link-time address.
    pub addr: u64,
    /// Size in bytes (0 if unknown).
    pub size: u64,
}

/// An ELF section header, with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Name, e.g. `.gopclntab`.
    pub name: String,
    /// Link-time address (0 for sections that are not loaded).
    pub addr: u64,
    /// Size in memory (for SHF_COMPRESSED sections: the compressed size in the file).
    pub size: u64,
    /// File offset of the (possibly compressed) bytes.
    pub file_offset: u64,
    /// `sh_type` (SHT_NOBITS sections have no file bytes).
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// SHF_COMPRESSED: the bytes start with an `Elf64_Chdr`, read when the
    /// section is (so parsing the headers decompresses no DWARF frame).
    compressed: bool,
}

/// A PT_LOAD segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Link-time virtual address.
    pub vaddr: u64,
    /// Size in memory.
    pub memsz: u64,
    /// File offset.
    pub file_offset: u64,
    /// Bytes backed by the file (the rest up to `memsz` is zero).
    pub filesz: u64,
    /// `p_flags` (PF_X = 1, PF_W = 2, PF_R = 4).
    pub flags: u32,
}

/// Upper bound on a decompressed section; DWARF of large services stays well below.
const MAX_DECOMPRESSED_SECTION: u64 = 1 << 32;

/// Largest expansion deflate can achieve (RFC 1951: 258 bytes from ~2 bits).
const MAX_ZLIB_RATIO: u64 = 1032;

/// A parsed executable. Owns its bytes; cheap to share behind an `Arc`.
pub struct Binary {
    data: Arc<FileImage>,
    is_pie: bool,
    entry: u64,
    machine: u16,
    sections: Vec<Section>,
    segments: Vec<LoadSegment>,
    go_version: Option<GoVersion>,
    go_modinfo: Option<String>,
    gnu_build_id: Option<String>,
    go_build_id: Option<String>,
    has_dwarf: bool,
    symbols: OnceLock<HashMap<String, Symbol>>,
}

impl std::fmt::Debug for Binary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binary")
            .field("len", &self.data.len())
            .field("is_pie", &self.is_pie)
            .field("entry", &format_args!("{:#x}", self.entry))
            .field("go_version", &self.go_version.as_ref().map(|v| &v.raw))
            .field("go_build_id", &self.go_build_id)
            .finish_non_exhaustive()
    }
}

/// The file bytes as `object` reads them: each read decompresses what it
/// covers and no more.
#[derive(Clone, Copy)]
pub(crate) struct ImageRef<'a>(pub(crate) &'a FileImage);

fn image_range(offset: u64, size: u64) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok()?;
    Some(start..start.checked_add(usize::try_from(size).ok()?)?)
}

impl<'a> object::ReadRef<'a> for ImageRef<'a> {
    fn len(self) -> std::result::Result<u64, ()> {
        Ok(self.0.len() as u64)
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> std::result::Result<&'a [u8], ()> {
        image_range(offset, size)
            .and_then(|r| self.0.get(r))
            .ok_or(())
    }

    fn read_bytes_at_until(
        self,
        range: std::ops::Range<u64>,
        delimiter: u8,
    ) -> std::result::Result<&'a [u8], ()> {
        let len = range.end.checked_sub(range.start).ok_or(())?;
        let bytes = self.read_bytes_at(range.start, len)?;
        let end = memchr::memchr(delimiter, bytes).ok_or(())?;
        Ok(&bytes[..end])
    }
}

/// Reads up to `max` file-backed bytes at link-time address `vaddr` of an
/// image whose PT_LOAD `segments` are sorted by address; `None` if `vaddr`
/// is not file-backed.
pub(crate) fn read_image<'a>(
    data: &'a FileImage,
    segments: &[LoadSegment],
    vaddr: u64,
    max: usize,
) -> Option<&'a [u8]> {
    let idx = segments.partition_point(|s| s.vaddr <= vaddr);
    let seg = segments.get(idx.checked_sub(1)?)?;
    let delta = vaddr - seg.vaddr;
    if delta >= seg.filesz {
        return None;
    }
    let len = (max as u64).min(seg.filesz - delta);
    data.get(image_range(seg.file_offset.checked_add(delta)?, len)?)
}

/// Size of an `Elf64_Chdr`.
const CHDR_LEN: u64 = 24;

/// Where SHF_COMPRESSED section `s`'s data is and what it inflates to, from
/// its `Elf64_Chdr` bytes; `None` if they are short or the header does not
/// fit in the section.
fn parse_chdr(s: &Section, chdr: &[u8]) -> Option<object::CompressedFileRange> {
    let word = |at: usize| Some(u64::from_le_bytes(chdr.get(at..at + 8)?.try_into().ok()?));
    let format = match u32::from_le_bytes(chdr.get(0..4)?.try_into().ok()?) {
        1 => object::CompressionFormat::Zlib,
        2 => object::CompressionFormat::Zstandard,
        _ => object::CompressionFormat::Unknown,
    };
    Some(object::CompressedFileRange {
        format,
        offset: s.file_offset.checked_add(CHDR_LEN)?,
        compressed_size: s.size.checked_sub(CHDR_LEN)?,
        uncompressed_size: word(8)?,
    })
}

impl Binary {
    /// Parses an ELF executable held in memory (copied into an image).
    pub fn parse(data: Arc<[u8]>) -> Result<Binary> {
        let image = FileImage::from_bytes(&data).map_err(AnalyzeError::from)?;
        Self::from_image(Arc::new(image))
    }

    /// Parses an ELF executable from an image whose parts are decompressed
    /// as they are read: only the headers here.
    pub fn from_image(data: Arc<FileImage>) -> Result<Binary> {
        if data.get(0..4) != Some(b"\x7fELF") {
            return Err(BinaryError::NotElf.into());
        }
        let bytes = ImageRef(&data);
        let file = ElfFile64::<Endianness, ImageRef<'_>>::parse(bytes).map_err(|source| {
            BinaryError::Elf {
                context: "not a 64-bit ELF executable rdlv can read",
                source,
            }
        })?;
        if !file.is_little_endian() {
            return Err(Unsupported::BigEndian.into());
        }
        let endian = file.endian();
        let header = file.elf_header();
        let is_pie = header.e_type(endian) == elf::ET_DYN;
        let entry = header.e_entry(endian);
        let machine = header.e_machine(endian).0;

        let mut segments = Vec::new();
        let mut note_segments = Vec::new();
        for ph in file.elf_program_headers() {
            let seg = LoadSegment {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                file_offset: ph.p_offset(endian),
                filesz: ph.p_filesz(endian),
                flags: ph.p_flags(endian).0,
            };
            match ph.p_type(endian) {
                elf::PT_LOAD => segments.push(seg),
                elf::PT_NOTE => note_segments.push((seg, ph.p_align(endian))),
                _ => {}
            }
        }
        segments.sort_by_key(|s| s.vaddr);

        let mut sections = Vec::new();
        for section in file.sections() {
            let Ok(name) = section.name() else { continue };
            let raw = section.elf_section_header();
            let compressed = raw.sh_flags(endian).0 & elf::SHF_COMPRESSED.0 != 0;
            sections.push(Section {
                name: name.to_string(),
                addr: raw.sh_addr(endian),
                size: raw.sh_size(endian),
                file_offset: raw.sh_offset(endian),
                sh_type: raw.sh_type(endian).0,
                flags: raw.sh_flags(endian).0,
                align: raw.sh_addralign(endian),
                compressed,
            });
        }
        let has_dwarf = sections
            .iter()
            .any(|s| s.name == ".debug_info" || s.name == ".zdebug_info");

        let mut binary = Binary {
            data: data.clone(),
            is_pie,
            entry,
            machine,
            sections,
            segments,
            go_version: None,
            go_modinfo: None,
            gnu_build_id: None,
            go_build_id: None,
            has_dwarf,
            symbols: OnceLock::new(),
        };
        binary.read_build_ids(&note_segments);
        binary.read_buildinfo();
        // The ELF parse (headers, symbol and string tables), the notes and
        // the build info read frames that answer "absent" when damaged:
        // a damaged one would make a Go binary "not Go", skip the build-id
        // check or empty the symbol table. Nothing else has read the image
        // yet, so any damage now is theirs.
        if let Some(e) = data.damage() {
            return Err(e.into());
        }
        Ok(binary)
    }

    /// Build ids from note sections, else from PT_NOTE segments (section
    /// headers may be missing from a binary that still runs).
    fn read_build_ids(&mut self, note_segments: &[(LoadSegment, u64)]) {
        let mut blobs: Vec<(&[u8], u64)> = Vec::new();
        for s in &self.sections {
            if s.sh_type == elf::SHT_NOTE.0 {
                if let Some(bytes) = self.file_bytes(s.file_offset, s.size) {
                    blobs.push((bytes, s.align));
                }
            }
        }
        for (seg, align) in note_segments {
            if let Some(bytes) = self.file_bytes(seg.file_offset, seg.filesz) {
                blobs.push((bytes, *align));
            }
        }
        let go = blobs
            .iter()
            .find_map(|(b, a)| buildinfo::go_build_id_from_notes(b, *a));
        let gnu = blobs
            .iter()
            .find_map(|(b, a)| buildinfo::gnu_build_id_from_notes(b, *a));
        self.go_build_id = go;
        self.gnu_build_id = gnu.or_else(|| self.scan_gnu_build_id());
    }

    /// The Go linker puts `.note.gnu.build-id` right after the Go note but
    /// outside PT_NOTE, so without section headers it is only found by
    /// looking for its header in the first page of the file.
    fn scan_gnu_build_id(&self) -> Option<String> {
        // type NT_GNU_BUILD_ID, then the owner "GNU\0".
        const TAIL: [u8; 8] = [3, 0, 0, 0, b'G', b'N', b'U', 0];
        let page = self.data.get(0..self.data.len().min(4096))?;
        memchr::memmem::find_iter(page, &TAIL)
            .filter(|&pos| pos >= 8 && pos % 4 == 0)
            .find_map(|pos| {
                let note = &page[pos - 8..];
                let namesz = u32::from_le_bytes([note[0], note[1], note[2], note[3]]);
                let descsz = u32::from_le_bytes([note[4], note[5], note[6], note[7]]);
                if namesz != 4 || !(8..=64).contains(&descsz) {
                    return None;
                }
                buildinfo::gnu_build_id_from_notes(note, 4)
            })
    }

    fn read_buildinfo(&mut self) {
        let blob = match self.section_info(".go.buildinfo") {
            Some(s) => self.file_bytes(s.file_offset, s.size),
            None => self.find_buildinfo_blob(),
        };
        let Some(blob) = blob else { return };
        let (version, modinfo) = match buildinfo::parse_buildinfo(blob) {
            Ok(BuildInfoLayout::Inline { version, modinfo }) => (version, modinfo),
            Ok(BuildInfoLayout::Pointers {
                version_addr,
                modinfo_addr,
                ptr_size,
                big_endian,
            }) => {
                let Some(version) = self.read_go_string(version_addr, ptr_size, big_endian) else {
                    return;
                };
                let Ok(version) = String::from_utf8(version.to_vec()) else {
                    return;
                };
                let modinfo = self
                    .read_go_string(modinfo_addr, ptr_size, big_endian)
                    .map(|m| {
                        String::from_utf8_lossy(buildinfo::strip_modinfo_sentinels(m)).into_owned()
                    })
                    .unwrap_or_default();
                (version, modinfo)
            }
            Err(_) => return,
        };
        self.go_version = GoVersion::parse(&version);
        self.go_modinfo = Some(modinfo);
    }

    /// Without section headers: the blob is 16-byte aligned in a writable segment.
    fn find_buildinfo_blob(&self) -> Option<&[u8]> {
        for seg in self.segments.iter().filter(|s| s.flags & elf::PF_W.0 != 0) {
            let bytes = self.file_bytes(seg.file_offset, seg.filesz)?;
            for pos in memchr::memmem::find_iter(bytes, buildinfo::BUILDINFO_MAGIC) {
                if seg.vaddr.wrapping_add(pos as u64) % 16 == 0 {
                    return bytes.get(pos..);
                }
            }
        }
        None
    }

    /// Reads a Go string header `{ptr, len}` at `addr` and its bytes.
    fn read_go_string(&self, addr: u64, ptr_size: u8, big_endian: bool) -> Option<&[u8]> {
        let width = usize::from(ptr_size);
        let header = self.read_static(addr, 2 * width)?;
        let ptr = buildinfo::read_word(header, width, big_endian).ok()?;
        let len = buildinfo::read_word(&header[width..], width, big_endian).ok()?;
        if len > buildinfo::MAX_BUILDINFO_STRING {
            return None;
        }
        self.read_static(ptr, usize::try_from(len).ok()?)
    }

    /// File bytes `offset..offset + len`, decompressing what they cover.
    pub fn file_bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        self.data.get(image_range(offset, len)?)
    }

    /// The whole file, decompressed (every part of it: for writing it out).
    pub fn data(&self) -> Result<&[u8]> {
        self.data.all().map_err(AnalyzeError::from)
    }

    /// Size of the file (nothing decompressed).
    pub fn file_len(&self) -> u64 {
        self.data.len() as u64
    }

    /// The file's image, shared (what the pclntab reads from).
    pub fn image(&self) -> &Arc<FileImage> {
        &self.data
    }

    /// Whether the ELF type is ET_DYN (PIE).
    pub fn is_pie(&self) -> bool {
        self.is_pie
    }

    /// `e_entry`.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// `e_machine` (62 = x86-64, 183 = AArch64).
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// Load bias for a process whose auxv AT_ENTRY is `at_entry` (0 for non-PIE).
    pub fn load_bias(&self, at_entry: u64) -> u64 {
        if self.is_pie && at_entry != 0 {
            at_entry.wrapping_sub(self.entry)
        } else {
            0
        }
    }

    /// Go version from `.go.buildinfo`, if this is a Go binary.
    pub fn go_version(&self) -> Option<&GoVersion> {
        self.go_version.as_ref()
    }

    /// Module info text from `.go.buildinfo` (sentinels stripped).
    pub fn go_modinfo(&self) -> Option<&str> {
        self.go_modinfo.as_deref()
    }

    /// Lower-case hex of the GNU build id note.
    pub fn gnu_build_id(&self) -> Option<&str> {
        self.gnu_build_id.as_deref()
    }

    /// The Go build id string.
    pub fn go_build_id(&self) -> Option<&str> {
        self.go_build_id.as_deref()
    }

    /// Looks up a symbol by exact name in `.symtab`.
    pub fn symbol(&self, name: &str) -> Option<Symbol> {
        self.symbols().get(name).copied()
    }

    /// All `.symtab` symbols by name (empty for a stripped binary). Built on
    /// first use. Where a name occurs more than once the first one is kept.
    pub fn symbols(&self) -> &HashMap<String, Symbol> {
        self.symbols.get_or_init(|| {
            let mut map = HashMap::new();
            let Ok(file) = ElfFile64::<Endianness, ImageRef<'_>>::parse(ImageRef(&self.data))
            else {
                return map;
            };
            for sym in file.symbols() {
                if sym.is_undefined() {
                    continue;
                }
                let Ok(name) = sym.name() else { continue };
                if name.is_empty() {
                    continue;
                }
                map.entry(name.to_string()).or_insert(Symbol {
                    addr: sym.address(),
                    size: sym.size(),
                });
            }
            map
        })
    }

    /// All section headers, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The header of the first section called `name`.
    pub fn section_info(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// PT_LOAD segments sorted by address.
    pub fn segments(&self) -> &[LoadSegment] {
        &self.segments
    }

    /// Where a SHF_COMPRESSED section's data is and what it inflates to,
    /// from its `Elf64_Chdr`; `None` for one that is not compressed or
    /// whose header does not fit in it.
    fn compression(&self, s: &Section) -> Option<object::CompressedFileRange> {
        if !s.compressed {
            return None;
        }
        parse_chdr(s, self.file_bytes(s.file_offset, CHDR_LEN)?)
    }

    /// Section by name: (link-time address, file bytes; decompressed if SHF_COMPRESSED).
    pub fn section(&self, name: &str) -> Option<(u64, std::borrow::Cow<'_, [u8]>)> {
        let s = self.section_info(name)?;
        if s.sh_type == elf::SHT_NOBITS.0 {
            return None;
        }
        match (s.compressed, self.compression(s)) {
            (true, None) => None,
            (_, Some(range)) => {
                // The header's size is untrusted: zlib cannot expand more than
                // about 1032:1, so a larger claim is corrupt and must not
                // decide an allocation.
                let plausible = range
                    .compressed_size
                    .saturating_mul(MAX_ZLIB_RATIO)
                    .saturating_add(4096);
                if range.uncompressed_size > MAX_DECOMPRESSED_SECTION
                    || range.uncompressed_size > plausible
                {
                    return None;
                }
                let compressed = range.data(ImageRef(&self.data)).ok()?;
                let bytes = compressed.decompress().ok()?;
                Some((s.addr, Cow::Owned(bytes.into_owned())))
            }
            (false, None) => Some((
                s.addr,
                Cow::Borrowed(self.file_bytes(s.file_offset, s.size)?),
            )),
        }
    }

    /// Like [`Binary::section`], as one shared buffer: a zlib-compressed
    /// section (Go compresses its DWARF) is inflated in one pass straight
    /// into a buffer of its recorded size; an uncompressed one is copied.
    /// `Ok(None)` when there is no such section (or it has no file bytes);
    /// an error when its bytes are damaged, never a silent `None`. Safe to
    /// call from several threads at once, one section each.
    pub fn section_shared(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<[u8]>>, BinaryError> {
        let Some(s) = self.section_info(name) else {
            return Ok(None);
        };
        if s.sh_type == elf::SHT_NOBITS.0 {
            return Ok(None);
        }
        let fault = |detail| BinaryError::Section {
            name: name.to_string(),
            detail,
        };
        let bytes = |offset: u64, len: u64| {
            let range = image_range(offset, len)
                .filter(|r| r.end <= self.data.len())
                .ok_or_else(|| fault(SectionFault::Header))?;
            self.data
                .try_get(range)
                .map_err(|e| fault(SectionFault::Snapshot(Arc::new(e))))
        };
        if !s.compressed {
            return bytes(s.file_offset, s.size).map(|b| Some(Arc::from(b)));
        }
        let chdr = bytes(s.file_offset, CHDR_LEN)?;
        let range = parse_chdr(s, chdr).ok_or_else(|| fault(SectionFault::Header))?;
        let plausible = range
            .compressed_size
            .saturating_mul(MAX_ZLIB_RATIO)
            .saturating_add(4096);
        if range.uncompressed_size > MAX_DECOMPRESSED_SECTION || range.uncompressed_size > plausible
        {
            return Err(fault(SectionFault::Header));
        }
        let input = bytes(range.offset, range.compressed_size)?;
        if range.format != object::CompressionFormat::Zlib {
            // Not Go's choice; `object` knows the others.
            return self
                .section(name)
                .map(|(_, b)| Some(Arc::from(&*b)))
                .ok_or_else(|| fault(SectionFault::Inflate));
        }
        let len =
            usize::try_from(range.uncompressed_size).map_err(|_| fault(SectionFault::Header))?;
        let buf: Arc<[std::mem::MaybeUninit<u8>]> = Arc::new_zeroed_slice(len);
        // SAFETY: allocated zeroed; all-zero bytes are valid `u8`s.
        let mut buf: Arc<[u8]> = unsafe { buf.assume_init() };
        let out = Arc::get_mut(&mut buf).ok_or_else(|| fault(SectionFault::Inflate))?;
        let produced = libdeflater::Decompressor::new()
            .zlib_decompress(input, out)
            .map_err(|_| fault(SectionFault::Inflate))?;
        if produced as u64 != range.uncompressed_size {
            return Err(fault(SectionFault::Inflate));
        }
        Ok(Some(buf))
    }

    /// Bytes of the file-backed part of the loaded image at a link-time address
    /// (from PT_LOAD segments); `None` if not file-backed.
    pub fn read_static(&self, vaddr: u64, len: usize) -> Option<&[u8]> {
        let bytes = self.read_static_upto(vaddr, len)?;
        (bytes.len() == len).then_some(bytes)
    }

    /// Like [`Binary::read_static`] but returns the bytes up to the end of the
    /// file-backed segment when fewer than `max` are available (at least one).
    pub fn read_static_upto(&self, vaddr: u64, max: usize) -> Option<&[u8]> {
        read_image(&self.data, &self.segments, vaddr, max)
    }

    /// How many file-backed bytes follow link-time address `vaddr` in its
    /// segment (nothing is read).
    pub fn file_backed_len(&self, vaddr: u64) -> Option<usize> {
        let idx = self.segments.partition_point(|s| s.vaddr <= vaddr);
        let seg = self.segments.get(idx.checked_sub(1)?)?;
        let delta = vaddr - seg.vaddr;
        let in_segment = seg.filesz.checked_sub(delta).filter(|&n| n > 0)?;
        // A segment the file is too short for holds only what the file has.
        let at = seg.file_offset.checked_add(delta)?;
        let in_file = self.file_len().checked_sub(at).filter(|&n| n > 0)?;
        usize::try_from(in_segment.min(in_file)).ok()
    }

    /// File offset of link-time address `vaddr`, if it is file-backed.
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        let idx = self.segments.partition_point(|s| s.vaddr <= vaddr);
        let seg = self.segments.get(idx.checked_sub(1)?)?;
        let delta = vaddr - seg.vaddr;
        (delta < seg.filesz).then(|| seg.file_offset + delta)
    }

    /// The segment containing link-time address `vaddr` (file-backed or not).
    pub fn segment_at(&self, vaddr: u64) -> Option<&LoadSegment> {
        let idx = self.segments.partition_point(|s| s.vaddr <= vaddr);
        let seg = self.segments.get(idx.checked_sub(1)?)?;
        (vaddr - seg.vaddr < seg.memsz).then_some(seg)
    }

    /// Whether DWARF sections are present.
    pub fn has_dwarf(&self) -> bool {
        self.has_dwarf
    }
}

/// Loaded sections whose bytes may differ between builds of the same code:
/// the build id notes and the build settings (`-ldflags`, VCS stamps).
const BUILD_METADATA_SECTIONS: [&str; 3] =
    [".note.go.buildid", ".note.gnu.build-id", ".go.buildinfo"];

/// How two executables' loaded images compare ([`compare_loaded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedComparison {
    /// Every loaded section but the build metadata has the same name,
    /// address, size and bytes: the same code and data.
    Same {
        /// The sections compared byte for byte.
        sections: usize,
        /// Their bytes in all.
        bytes: u64,
    },
    /// The first difference in address order.
    Differs {
        /// The section it is in (in the first executable, else the second).
        section: String,
        /// Its link-time address.
        addr: u64,
        /// What differs there.
        what: String,
    },
}

/// Compares the loaded (SHF_ALLOC) sections of `a` and `b`, all but
/// [`BUILD_METADATA_SECTIONS`]: names, addresses, sizes and bytes (for
/// SHT_NOBITS sections, names, addresses and sizes). A section present in
/// one only, or whose bytes cannot be read, is a difference.
pub fn compare_loaded(a: &Binary, b: &Binary) -> LoadedComparison {
    let loaded = |bin: &Binary| -> Vec<Section> {
        let mut v: Vec<Section> = bin
            .sections()
            .iter()
            .filter(|s| s.flags & elf::SHF_ALLOC.0 != 0)
            .filter(|s| !BUILD_METADATA_SECTIONS.contains(&s.name.as_str()))
            .cloned()
            .collect();
        v.sort_by_key(|s| (s.addr, s.name.clone()));
        v
    };
    let (sa, sb) = (loaded(a), loaded(b));
    // By name: a hostile header table may list many sections.
    let by_name = |v: &[Section]| -> HashMap<String, usize> {
        v.iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect()
    };
    let (names_a, names_b) = (by_name(&sa), by_name(&sb));
    let (mut sections, mut bytes) = (0, 0u64);
    let differs = |s: &Section, what: String| LoadedComparison::Differs {
        section: s.name.clone(),
        addr: s.addr,
        what,
    };
    for x in &sa {
        let Some(y) = names_b.get(&x.name).and_then(|&i| sb.get(i)) else {
            return differs(x, "no such section in the other executable".into());
        };
        if (x.addr, x.size) != (y.addr, y.size) {
            return differs(
                x,
                format!(
                    "at {:#x}, {:#x} bytes, against {:#x}, {:#x} bytes",
                    x.addr, x.size, y.addr, y.size
                ),
            );
        }
        if x.sh_type == elf::SHT_NOBITS.0 {
            continue;
        }
        let (Some((_, bx)), Some((_, by))) = (a.section(&x.name), b.section(&y.name)) else {
            return differs(x, "its bytes cannot be read".into());
        };
        if let Some(off) = bx.iter().zip(by.iter()).position(|(p, q)| p != q) {
            return LoadedComparison::Differs {
                section: x.name.clone(),
                addr: x.addr.wrapping_add(off as u64),
                what: "the bytes differ".into(),
            };
        }
        if bx.len() != by.len() {
            return differs(x, "its bytes differ in length".into());
        }
        sections += 1;
        bytes += bx.len() as u64;
    }
    if let Some(y) = sb.iter().find(|y| !names_a.contains_key(&y.name)) {
        return differs(y, "no such section in the captured executable".into());
    }
    LoadedComparison::Same { sections, bytes }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::pclntab::fixtures::{fixture, Variant};

    fn fixture_bytes(variant: Variant) -> Vec<u8> {
        std::fs::read(fixture("1.26.8").binary(variant)).expect("read fixture")
    }

    fn parse(bytes: &[u8]) -> Result<Binary> {
        Binary::parse(Arc::from(bytes))
    }

    #[test]
    fn rejects_what_is_not_an_elf_executable() {
        for bytes in [
            &b""[..],
            b"hello",
            b"\x7fELF",
            b"\x7fELF\x02\x01\x01\0garbage",
        ] {
            assert!(
                matches!(parse(bytes), Err(AnalyzeError::Binary(_))),
                "{bytes:?}"
            );
        }
        let mut elf32 = fixture_bytes(Variant::Default);
        elf32[4] = 1; // ELFCLASS32
        assert!(parse(&elf32).is_err());
    }

    #[test]
    fn a_c_program_is_an_elf_without_go_facts() {
        let bytes = std::fs::read("/bin/ls").expect("/bin/ls exists on Linux");
        let b = parse(&bytes).expect("parse /bin/ls");
        assert_eq!(b.go_version(), None);
        assert_eq!(b.go_build_id(), None);
        let err = crate::pclntab::Pclntab::new(&b, 0).expect_err("no pclntab in ls");
        assert!(err.to_string().contains("no Go pclntab"), "{err}");
    }

    #[test]
    fn truncated_executables_never_panic() {
        let bytes = fixture_bytes(Variant::Default);
        let n = bytes.len();
        let mut parsed = 0;
        for cut in [
            0,
            4,
            16,
            63,
            64,
            0x40 + 56 * 3,
            0x1000,
            n / 3,
            n / 2,
            n - 4096,
            n - 1,
        ] {
            if let Ok(b) = parse(&bytes[..cut]) {
                parsed += 1;
                let _ = (b.go_version(), b.go_build_id(), b.symbols().len());
                let _ = b.section(".debug_info").map(|(_, d)| d.len());
                let _ = crate::pclntab::Pclntab::new(&b, 0).map(|t| t.len());
            }
        }
        // Only the tail (section headers, then nothing essential) can go.
        assert!(parsed <= 2, "{parsed} truncated files parsed");
    }

    #[test]
    fn reads_are_bounded_by_file_backed_segments() {
        let b = parse(&fixture_bytes(Variant::Default)).expect("parse");
        let data_seg = *b
            .segments()
            .iter()
            .find(|s| s.memsz > s.filesz)
            .expect("a segment with .bss");
        let file_end = data_seg.vaddr + data_seg.filesz;
        assert_eq!(b.read_static(file_end - 4, 4).map(<[u8]>::len), Some(4));
        assert_eq!(b.read_static(file_end - 4, 5), None);
        assert_eq!(
            b.read_static_upto(file_end - 4, 100).map(<[u8]>::len),
            Some(4)
        );
        assert_eq!(b.read_static(file_end, 1), None, ".bss is not file-backed");
        assert!(b.segment_at(file_end).is_some(), ".bss is mapped");
        assert_eq!(b.read_static(0, 1), None);
        assert_eq!(b.read_static(u64::MAX - 2, 8), None);
        assert_eq!(b.file_offset(b.entry()), {
            let text = b.section_info(".text").expect(".text");
            Some(text.file_offset + (b.entry() - text.addr))
        });
    }

    #[test]
    fn compressed_sections_with_lying_sizes_are_bounded() {
        let bytes = fixture_bytes(Variant::Default);
        let b = parse(&bytes).expect("parse");
        let info = b.section_info(".debug_info").expect(".debug_info").clone();
        assert!(b.section(".debug_info").is_some());
        // Elf64_Chdr: ch_type u32, reserved u32, ch_size u64, ch_addralign u64.
        let size_at = info.file_offset as usize + 8;
        for (lie, allowed) in [(1u64 << 40, None), (16, Some(16))] {
            let mut patched = bytes.clone();
            patched[size_at..size_at + 8].copy_from_slice(&lie.to_le_bytes());
            let b = parse(&patched).expect("parse");
            // Too large is refused; too small yields at most what was claimed.
            let got = b.section(".debug_info").map(|(_, d)| d.len());
            assert!(
                got.is_none() || got == allowed,
                "ch_size {lie} gave {got:?}"
            );
        }
    }
}
