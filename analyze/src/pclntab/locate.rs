//! Finding the pclntab and `runtime.firstmoduledata` in an executable:
//! `.go.module` (Go 1.26+), the pclntab section names, symbols, and finally
//! a scan for the header magic and for a moduledata that points at it.

use crate::binary::{Binary, GoVersion};
use crate::error::{AnalyzeError, BinaryError, Result, Unsupported};

use super::{corrupt, u64_at, Layout};

/// pcHeader magic of Go 1.20 and later.
pub const PCLNTAB_MAGIC: u32 = 0xffff_fff1;

/// Size of the 64-bit pcHeader.
const HEADER_LEN: usize = 72;
/// Bound on the function count (the largest real binaries have a few 100k).
const MAX_NFUNC: u64 = 1 << 24;
/// Offsets of moduledata fields (amd64/arm64, stable 1.21..1.27 up to `types`).
const MD_PCHEADER: usize = 0;
const MD_FUNCNAMETAB: usize = 8;
const MD_CUTAB: usize = 32;
const MD_FILETAB: usize = 56;
const MD_PCTAB: usize = 80;
const MD_PCLNTABLE: usize = 104;
const MD_FTAB: usize = 128;
const MD_FINDFUNCTAB: usize = 152;
const MD_MINPC: usize = 160;
const MD_TEXT: usize = 176;
const MD_TYPES: usize = 296;
/// Bytes of moduledata read (enough for every field [`ModuleData`] exposes).
const MD_READ_LEN: usize = 400;

/// The pcHeader at the start of the pclntab (`runtime.pcHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcHeader {
    /// Magic (always [`PCLNTAB_MAGIC`] once parsed).
    pub magic: u32,
    /// Instruction size quantum: 1 on x86, 4 on arm64.
    pub min_lc: u8,
    /// Pointer size (8).
    pub ptr_size: u8,
    /// Number of functions.
    pub nfunc: u64,
    /// Number of files.
    pub nfiles: u64,
    /// Link-time text start; 0 from Go 1.26 on (take it from moduledata).
    pub text_start: u64,
    /// Offset of funcnametab from the header.
    pub funcname_offset: u64,
    /// Offset of cutab.
    pub cu_offset: u64,
    /// Offset of filetab.
    pub filetab_offset: u64,
    /// Offset of pctab.
    pub pctab_offset: u64,
    /// Offset of the function table (pclntable).
    pub pcln_offset: u64,
}

impl PcHeader {
    /// Parses and sanity-checks a 64-bit pcHeader at the start of `bytes`,
    /// which must hold the whole table (offsets are checked against its length).
    pub fn parse(bytes: &[u8]) -> Result<PcHeader> {
        Self::parse_within(bytes, bytes.len())
    }

    /// Like [`PcHeader::parse`] for a table of `len` bytes of which `bytes`
    /// holds at least the header (the rest need not be read yet).
    pub fn parse_within(bytes: &[u8], len: usize) -> Result<PcHeader> {
        let head = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("header truncated"))?;
        let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        match magic {
            PCLNTAB_MAGIC => {}
            0xffff_fff0 | 0xffff_fffa | 0xffff_fffb => {
                return Err(Unsupported::OldGo { magic }.into())
            }
            _ => return Err(corrupt(&format!("bad magic {magic:#x}"))),
        }
        let word = |i: usize| u64_at(head, 8 + 8 * i).unwrap_or(0);
        let header = PcHeader {
            magic,
            min_lc: head[6],
            ptr_size: head[7],
            nfunc: word(0),
            nfiles: word(1),
            text_start: word(2),
            funcname_offset: word(3),
            cu_offset: word(4),
            filetab_offset: word(5),
            pctab_offset: word(6),
            pcln_offset: word(7),
        };
        if head[4] != 0 || head[5] != 0 {
            return Err(corrupt("header padding is not zero"));
        }
        if header.ptr_size != 8 {
            return Err(Unsupported::PointerSize {
                size: header.ptr_size,
            }
            .into());
        }
        if !matches!(header.min_lc, 1 | 2 | 4) {
            return Err(corrupt(&format!("pc quantum {}", header.min_lc)));
        }
        if header.nfunc == 0 || header.nfunc > MAX_NFUNC {
            return Err(corrupt(&format!(
                "implausible function count {}",
                header.nfunc
            )));
        }
        let offsets = [
            HEADER_LEN as u64,
            header.funcname_offset,
            header.cu_offset,
            header.filetab_offset,
            header.pctab_offset,
            header.pcln_offset,
            len as u64,
        ];
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(corrupt("table offsets out of order or past the end"));
        }
        Ok(header)
    }
}

/// `runtime.firstmoduledata`, the fields rdlv uses. Addresses are runtime
/// addresses when obtained from [`super::Pclntab::moduledata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleData {
    /// Address of the moduledata itself.
    pub addr: u64,
    /// `pcHeader`.
    pub pc_header: u64,
    /// `findfunctab`.
    pub findfunctab: u64,
    /// `minpc`.
    pub minpc: u64,
    /// `maxpc`.
    pub maxpc: u64,
    /// `text`.
    pub text: u64,
    /// `etext`.
    pub etext: u64,
    /// `noptrdata`.
    pub noptrdata: u64,
    /// `enoptrdata`.
    pub enoptrdata: u64,
    /// `data`.
    pub data: u64,
    /// `edata`.
    pub edata: u64,
    /// `bss`.
    pub bss: u64,
    /// `ebss`.
    pub ebss: u64,
    /// `noptrbss`.
    pub noptrbss: u64,
    /// `enoptrbss`.
    pub enoptrbss: u64,
    /// `end`.
    pub end: u64,
    /// `gcdata`.
    pub gcdata: u64,
    /// `gcbss`.
    pub gcbss: u64,
    /// `types`: base of type descriptors (typeOff/nameOff are relative to it).
    pub types: u64,
    /// `etypes`.
    pub etypes: u64,
    /// `rodata`.
    pub rodata: u64,
    /// `gofunc`: base of FUNCDATA offsets.
    pub gofunc: u64,
    /// Lengths of funcnametab, cutab (in u32s), filetab, pctab, pclntable, ftab (entries).
    pub table_lens: [u64; 6],
    /// `typelinks` (pointer to int32 offsets from `types`, count): Go 1.21–1.26
    /// only (1.27 dropped the field), and only when the Go version is known.
    pub typelinks: Option<(u64, u64)>,
    /// `itablinks` (pointer to `*itab`, count), like `typelinks`.
    pub itablinks: Option<(u64, u64)>,
}

impl ModuleData {
    /// Decodes moduledata bytes at link-time address `addr`. `layout_1_27`
    /// selects the Go 1.27 layout (typedesclen/itab fields before gofunc).
    /// `minor` is the Go 1.x minor version if known; it places `typelinks`.
    pub fn parse(
        bytes: &[u8],
        addr: u64,
        layout_1_27: bool,
        minor: Option<u32>,
    ) -> Option<ModuleData> {
        let w = |off: usize| u64_at(bytes, off);
        // typelinks follows textsectmap, which moved by 8 when 1.26 added epclntab.
        let typelinks_at = match minor {
            Some(21..=25) => Some(352),
            Some(26) => Some(360),
            _ => None,
        };
        let slice = |off: usize| Some((w(off)?, w(off + 8)?));
        let (etypes, rodata, gofunc) = if layout_1_27 {
            (312, 336, 344)
        } else {
            (304, 312, 320)
        };
        Some(ModuleData {
            addr,
            pc_header: w(MD_PCHEADER)?,
            findfunctab: w(MD_FINDFUNCTAB)?,
            minpc: w(MD_MINPC)?,
            maxpc: w(MD_MINPC + 8)?,
            text: w(MD_TEXT)?,
            etext: w(MD_TEXT + 8)?,
            noptrdata: w(192)?,
            enoptrdata: w(200)?,
            data: w(208)?,
            edata: w(216)?,
            bss: w(224)?,
            ebss: w(232)?,
            noptrbss: w(240)?,
            enoptrbss: w(248)?,
            end: w(272)?,
            gcdata: w(280)?,
            gcbss: w(288)?,
            types: w(MD_TYPES)?,
            etypes: w(etypes)?,
            rodata: w(rodata)?,
            gofunc: w(gofunc)?,
            table_lens: [
                w(MD_FUNCNAMETAB + 8)?,
                w(MD_CUTAB + 8)?,
                w(MD_FILETAB + 8)?,
                w(MD_PCTAB + 8)?,
                w(MD_PCLNTABLE + 8)?,
                w(MD_FTAB + 8)?,
            ],
            typelinks: typelinks_at.and_then(slice),
            itablinks: typelinks_at.and_then(|off| slice(off + 24)),
        })
    }

    /// Whether this moduledata describes the pclntab at `pclntab` with `header`.
    fn matches(&self, bytes: &[u8], pclntab: u64, header: &PcHeader) -> bool {
        let ptr = |off: usize| u64_at(bytes, off);
        self.pc_header == pclntab
            && ptr(MD_FUNCNAMETAB) == pclntab.checked_add(header.funcname_offset)
            && ptr(MD_PCLNTABLE) == pclntab.checked_add(header.pcln_offset)
            && self.table_lens[5] == header.nfunc + 1
            && self.text <= self.minpc
            && self.minpc < self.maxpc
            && self.maxpc <= self.etext
    }

    pub(super) fn with_bias(self, bias: u64) -> ModuleData {
        let b = |a: u64| a.wrapping_add(bias);
        ModuleData {
            addr: b(self.addr),
            pc_header: b(self.pc_header),
            findfunctab: b(self.findfunctab),
            minpc: b(self.minpc),
            maxpc: b(self.maxpc),
            text: b(self.text),
            etext: b(self.etext),
            noptrdata: b(self.noptrdata),
            enoptrdata: b(self.enoptrdata),
            data: b(self.data),
            edata: b(self.edata),
            bss: b(self.bss),
            ebss: b(self.ebss),
            noptrbss: b(self.noptrbss),
            enoptrbss: b(self.enoptrbss),
            end: b(self.end),
            gcdata: b(self.gcdata),
            gcbss: b(self.gcbss),
            types: b(self.types),
            etypes: b(self.etypes),
            rodata: b(self.rodata),
            gofunc: b(self.gofunc),
            table_lens: self.table_lens,
            typelinks: self.typelinks.map(|(p, n)| (b(p), n)),
            itablinks: self.itablinks.map(|(p, n)| (b(p), n)),
        }
    }
}

/// Whether moduledata at `bytes` uses the Go 1.27 layout: by version when
/// known, else by shape (1.27 has a length, `typedesclen`, where older
/// versions have the `etypes` address).
fn is_layout_1_27(version: Option<&GoVersion>, bytes: &[u8]) -> bool {
    match version {
        Some(v) => v.at_least(1, 27),
        None => match (u64_at(bytes, MD_TYPES), u64_at(bytes, MD_TYPES + 8)) {
            (Some(types), Some(next)) => next < types,
            _ => false,
        },
    }
}

fn minor(binary: &Binary) -> Option<u32> {
    binary
        .go_version()
        .filter(|v| v.major == 1)
        .map(|v| v.minor)
}

/// The pclntab header address (link-time) and how many bytes follow it.
struct Found {
    addr: u64,
    len: usize,
}

fn section_candidate(binary: &Binary) -> Option<Found> {
    for name in [".gopclntab", ".data.rel.ro.gopclntab"] {
        if let Some(s) = binary.section_info(name) {
            if s.size >= HEADER_LEN as u64 {
                return Some(Found {
                    addr: s.addr,
                    len: usize::try_from(s.size).ok()?,
                });
            }
        }
    }
    None
}

/// Bytes available from `addr` to the end of its file-backed segment.
fn available(binary: &Binary, addr: u64) -> Option<usize> {
    binary.file_backed_len(addr)
}

/// Scans the file-backed read-only and relro data for a pcHeader.
fn scan_for_header(binary: &Binary) -> Option<Found> {
    let magic = PCLNTAB_MAGIC.to_le_bytes();
    for seg in binary.segments() {
        if seg.flags & 1 != 0 {
            continue; // executable: the table is data
        }
        let Some(bytes) = binary.read_static_upto(seg.vaddr, usize::MAX) else {
            continue;
        };
        for pos in memchr::memmem::find_iter(bytes, &magic) {
            if pos % 8 != 0 {
                continue;
            }
            if PcHeader::parse(&bytes[pos..]).is_ok() {
                return Some(Found {
                    addr: seg.vaddr.wrapping_add(pos as u64),
                    len: bytes.len() - pos,
                });
            }
        }
    }
    None
}

/// Searches data sections (or writable segments) for a moduledata whose
/// first word is `pclntab` and that matches `header`.
fn scan_for_moduledata(
    binary: &Binary,
    pclntab: u64,
    header: &PcHeader,
) -> Option<(ModuleData, bool)> {
    let needle = pclntab.to_le_bytes();
    let mut ranges: Vec<(u64, u64)> = [".noptrdata", ".data", ".data.rel.ro", ".go.module"]
        .iter()
        .filter_map(|n| binary.section_info(n))
        .map(|s| (s.addr, s.size))
        .collect();
    if ranges.is_empty() {
        ranges = binary
            .segments()
            .iter()
            .filter(|s| s.flags & 2 != 0)
            .map(|s| (s.vaddr, s.filesz))
            .collect();
    }
    for (start, size) in ranges {
        let Some(bytes) = binary.read_static_upto(start, usize::try_from(size).ok()?) else {
            continue;
        };
        for pos in memchr::memmem::find_iter(bytes, &needle) {
            let addr = start.wrapping_add(pos as u64);
            if addr % 8 != 0 {
                continue;
            }
            if let Some(found) = moduledata_at(binary, addr, pclntab, header) {
                return Some(found);
            }
        }
    }
    None
}

fn moduledata_at(
    binary: &Binary,
    addr: u64,
    pclntab: u64,
    header: &PcHeader,
) -> Option<(ModuleData, bool)> {
    let bytes = binary.read_static_upto(addr, MD_READ_LEN)?;
    let layout = is_layout_1_27(binary.go_version(), bytes);
    let md = ModuleData::parse(bytes, addr, layout, minor(binary))?;
    md.matches(bytes, pclntab, header).then_some((md, layout))
}

/// Finds the pclntab and moduledata of `binary`.
pub(super) fn locate(binary: &Binary, bias: u64) -> Result<Layout> {
    let not_found = || AnalyzeError::Binary(BinaryError::NoPclntab);
    // 1. Go 1.26+: the moduledata has a section, and points at the pclntab.
    let module_section = binary.section_info(".go.module").and_then(|s| {
        binary
            .read_static_upto(s.addr, MD_READ_LEN)
            .map(|b| (s.addr, b))
    });
    let from_module = module_section.and_then(|(addr, bytes)| {
        let layout = is_layout_1_27(binary.go_version(), bytes);
        let md = ModuleData::parse(bytes, addr, layout, minor(binary))?;
        let len = available(binary, md.pc_header)?;
        Some((
            md,
            Found {
                addr: md.pc_header,
                len,
            },
        ))
    });
    let (found, mut moduledata) = match from_module {
        Some((md, found)) => (found, Some(md)),
        None => {
            let found = section_candidate(binary)
                .or_else(|| {
                    let sym = binary.symbol("runtime.pclntab")?;
                    Some(Found {
                        addr: sym.addr,
                        len: available(binary, sym.addr)?,
                    })
                })
                .or_else(|| scan_for_header(binary))
                .ok_or_else(not_found)?;
            (found, None)
        }
    };
    // The header alone: the tables are decompressed as they are read.
    let header_bytes = binary
        .read_static(found.addr, found.len.min(HEADER_LEN))
        .ok_or_else(|| corrupt("pclntab is not file-backed"))?;
    let header = PcHeader::parse_within(header_bytes, found.len)?;
    if let Some(md) = &moduledata {
        let bytes = binary.read_static_upto(md.addr, MD_READ_LEN).unwrap_or(&[]);
        if !md.matches(bytes, found.addr, &header) {
            return Err(corrupt(
                ".go.module does not describe the pclntab it points at",
            ));
        }
    } else {
        let by_symbol = binary
            .symbol("runtime.firstmoduledata")
            .and_then(|s| moduledata_at(binary, s.addr, found.addr, &header));
        moduledata = by_symbol
            .or_else(|| scan_for_moduledata(binary, found.addr, &header))
            .map(|(md, _)| md);
    }
    // Moduledata gives the exact end of the function table; trust it when it
    // fits in what the file holds.
    let mut len = found.len;
    if let Some(md) = &moduledata {
        let pclntable_end = header.pcln_offset.checked_add(md.table_lens[4]);
        if let Some(end) = pclntable_end.and_then(|e| usize::try_from(e).ok()) {
            if end <= len && end >= HEADER_LEN {
                len = end;
            }
        }
    }
    let header_off = binary
        .file_offset(found.addr)
        .and_then(|o| usize::try_from(o).ok())
        .ok_or_else(|| corrupt("pclntab is not file-backed"))?;
    // Symbols stand in for moduledata only when it was not found (building
    // the symbol map costs more than everything else here).
    let (text_start_fallback, gofunc_fallback) = if moduledata.is_some() {
        (None, None)
    } else {
        (
            binary.symbol("runtime.text").map(|s| s.addr),
            binary
                .symbol("go:func.*")
                .or_else(|| binary.symbol("go.func.*"))
                .map(|s| s.addr),
        )
    };
    Ok(Layout {
        data: binary.image().clone(),
        header_off,
        len,
        segments: binary.segments().to_vec(),
        bias,
        text_start_fallback,
        moduledata,
        gofunc_fallback,
    })
}
