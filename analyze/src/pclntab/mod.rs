//! The Go pclntab: functions, names, files and lines, pcsp, inline tree,
//! funcdata and pcdata, read exactly as the runtime reads them (Go 1.20+
//! layout, magic 0xfffffff1), for normal, PIE, external-link and stripped builds.
//!
//! All addresses taken and returned are *runtime* addresses: the table is
//! built with the load bias applied.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use crate::binary::{read_image, Binary, LoadSegment};
use crate::error::{AnalyzeError, BinaryError, Result};
use rdlv_format::{FileImage, LoadedRange};

mod locate;
mod stackmap;

pub use locate::{ModuleData, PcHeader, PCLNTAB_MAGIC};
pub use stackmap::{
    parse_stack_objects, Bitmap, FrameMaps, StackMap, StackMapError, StackObjectRecord,
    ARGS_SIZE_UNKNOWN, MAX_STACKMAP_BITS, MAX_STACKMAP_BYTES, MAX_STACKMAP_ENTRIES,
    MAX_STACK_OBJECTS,
};

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod stackmap_tests;
#[cfg(test)]
mod tests;

/// `_func.flag` bits.
pub mod func_flag {
    /// Function is at the top of a call stack (goexit, mstart, rt0_go, sigtramp).
    pub const TOP_FRAME: u8 = 1;
    /// Function writes SP in a way the unwinder cannot follow.
    pub const SPWRITE: u8 = 2;
    /// Function is assembly.
    pub const ASM: u8 = 4;
}

/// Well-known PCDATA table indexes.
pub mod pcdata {
    /// Unsafe point.
    pub const UNSAFE_POINT: u32 = 0;
    /// Stack map index.
    pub const STACK_MAP_INDEX: u32 = 1;
    /// Inline tree index.
    pub const INL_TREE_INDEX: u32 = 2;
    /// Argument liveness index.
    pub const ARG_LIVE_INDEX: u32 = 3;
    /// Bounds-check panic details (Go 1.26+).
    pub const PANIC_BOUNDS: u32 = 4;
}

/// Well-known FUNCDATA indexes.
pub mod funcdata {
    /// Argument pointer bitmaps.
    pub const ARGS_POINTER_MAPS: u32 = 0;
    /// Local variable pointer bitmaps.
    pub const LOCALS_POINTER_MAPS: u32 = 1;
    /// Stack objects.
    pub const STACK_OBJECTS: u32 = 2;
    /// Inline tree.
    pub const INL_TREE: u32 = 3;
    /// Argument layout for traceback printing.
    pub const ARG_INFO: u32 = 5;
    /// Open-coded defer info.
    pub const OPEN_CODED_DEFER_INFO: u32 = 4;
    /// Argument liveness bitmaps.
    pub const ARG_LIVE_INFO: u32 = 6;
    /// Wrapper info (the wrapped function), for method wrappers.
    pub const WRAP_INFO: u32 = 7;
}

/// One logical frame at a PC: an inlined call or the physical function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFrame {
    /// Function name as the runtime prints it before `[...]` substitution.
    pub name: String,
    /// Source file.
    pub file: String,
    /// Line.
    pub line: u32,
    /// True for inlined calls, false for the last (physical) entry.
    pub inlined: bool,
}

/// Bytes of the pcHeader read when the table is assembled (its fields, all
/// versions): the tables behind it are read by [`Pclntab::load_tables`]
/// (or, before it, as lookups need them).
const PCHEADER_READ: usize = 72;

/// Size of `runtime._func` before its pcdata/funcdata arrays.
const FUNC_HEADER_LEN: usize = 44;
/// Size of one `functab` entry (`entryoff u32, funcoff u32`).
const FTAB_ENTRY_LEN: usize = 8;
/// Size of `runtime.inlinedCall`.
const INLINED_CALL_LEN: u64 = 16;
/// Deepest inline chain followed; real ones are a few levels, a corrupt
/// table could loop.
const MAX_INLINE_DEPTH: usize = 256;
/// Bound on the inline tree index read from pcdata.
const MAX_INLINE_INDEX: i32 = 1 << 20;

/// The parsed table.
pub struct Pclntab {
    /// Bytes holding the tables (the whole executable, or a test blob).
    /// Assembly reads only the header; [`Pclntab::load_tables`]
    /// decompresses the frames of the tables (not the rest of the
    /// executable) before the first lookup.
    data: Arc<FileImage>,
    /// PT_LOAD segments of the image, to read funcdata by address.
    segments: Vec<LoadSegment>,
    bias: u64,
    header: PcHeader,
    /// Runtime address of the first function's `entryoff` base.
    text_start: u64,
    funcnametab: Range<usize>,
    cutab: Range<usize>,
    filetab: Range<usize>,
    pctab: Range<usize>,
    pclntable: Range<usize>,
    nfunc: usize,
    moduledata: Option<ModuleData>,
    /// Runtime address FUNCDATA offsets are relative to.
    gofunc: Option<u64>,
    /// Function indexes sorted by name, built on the first lookup by name.
    by_name: OnceLock<Vec<u32>>,
    /// The tables' bytes, once [`Pclntab::load_tables`] has decompressed them.
    tables: Option<LoadedRange>,
}

impl std::fmt::Debug for Pclntab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pclntab")
            .field("nfunc", &self.nfunc)
            .field("text_start", &format_args!("{:#x}", self.text_start))
            .field("gofunc", &self.gofunc)
            .finish_non_exhaustive()
    }
}

/// A function in the table.
#[derive(Clone, Copy)]
pub struct Func<'a> {
    tab: &'a Pclntab,
    /// Index in the function table.
    index: u32,
    /// Absolute offset of the `_func` in `tab.data`.
    off: usize,
    entry: u64,
    /// Entry of the next function (or the end of text).
    end: u64,
}

impl std::fmt::Debug for Func<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Func({} @ {:#x}..{:#x})",
            self.name(),
            self.entry,
            self.end
        )
    }
}

/// Something `u32_at` and friends read from: a slice or a file image.
pub(crate) trait Bytes {
    /// Bytes `range`, or `None` if out of bounds (or not decompressible).
    fn bytes(&self, range: Range<usize>) -> Option<&[u8]>;
}

impl Bytes for [u8] {
    fn bytes(&self, range: Range<usize>) -> Option<&[u8]> {
        self.get(range)
    }
}

impl Bytes for FileImage {
    fn bytes(&self, range: Range<usize>) -> Option<&[u8]> {
        self.get(range)
    }
}

/// Reads of the tables: from the loaded range once
/// [`Pclntab::load_tables`] has run (a slice, no frame lookup per read:
/// the stack walk makes millions of these), else through the image.
impl Bytes for Pclntab {
    fn bytes(&self, range: Range<usize>) -> Option<&[u8]> {
        match self.tables.as_ref().and_then(|t| t.get(range.clone())) {
            Some(b) => Some(b),
            None => self.data.get(range),
        }
    }
}

fn u32_at(data: &(impl Bytes + ?Sized), off: usize) -> Option<u32> {
    let b = data.bytes(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(data: &(impl Bytes + ?Sized), off: usize) -> Option<u64> {
    let b = data.bytes(off..off.checked_add(8)?)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(b);
    Some(u64::from_le_bytes(word))
}

/// Reads a pcvalue varint (the runtime reads them as uint32).
fn read_varint32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        value |= u32::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Evaluates a pcvalue table (`table` starting at the table's first byte)
/// for a function whose first pc is `entry`, at `target`.
/// The value starts at -1 and the pc at `entry`; each step adds a zig-zag
/// value delta and a pc delta times `pc_quantum`; the value that applies is
/// the one in force when `target < pc` first holds.
pub fn pcvalue(table: &[u8], entry: u64, target: u64, pc_quantum: u8) -> Option<i32> {
    if target < entry {
        return None;
    }
    let mut pos = 0usize;
    let mut value: i32 = -1;
    let mut pc = entry;
    let mut first = true;
    loop {
        let uvdelta = *table.get(pos)?;
        if uvdelta == 0 && !first {
            return None;
        }
        let uvdelta = read_varint32(table, &mut pos)?;
        let delta = (-((uvdelta & 1) as i32)) ^ ((uvdelta >> 1) as i32);
        value = value.wrapping_add(delta);
        let pcdelta = read_varint32(table, &mut pos)?;
        pc = pc.checked_add(u64::from(pcdelta) * u64::from(pc_quantum))?;
        if target < pc {
            return Some(value);
        }
        first = false;
    }
}

/// A NUL-terminated string at `off` in `table`.
fn c_str<'a>(data: &'a impl Bytes, table: &Range<usize>, off: usize) -> Option<&'a str> {
    let start = table.start.checked_add(off)?;
    if start >= table.end {
        return None;
    }
    let bytes = data.bytes(start..table.end)?;
    let len = memchr::memchr(0, bytes)?;
    std::str::from_utf8(&bytes[..len]).ok()
}

/// Where the tables of one pclntab are and how to interpret them; the
/// inputs of [`Pclntab::assemble`].
pub(crate) struct Layout {
    /// Bytes holding the pclntab.
    pub data: Arc<FileImage>,
    /// Offset of the pcHeader in `data`.
    pub header_off: usize,
    /// Bytes available from `header_off` (end of section, or of the table
    /// lengths moduledata gives).
    pub len: usize,
    /// Image segments (for funcdata).
    pub segments: Vec<LoadSegment>,
    /// Load bias.
    pub bias: u64,
    /// Link-time text start when the header holds 0 (Go 1.26+).
    pub text_start_fallback: Option<u64>,
    /// Moduledata, link-time addresses.
    pub moduledata: Option<ModuleData>,
    /// Link-time gofunc when moduledata is missing (from a symbol).
    pub gofunc_fallback: Option<u64>,
}

impl Pclntab {
    /// Locates and parses the pclntab of `binary`, whose image is loaded at `bias`.
    pub fn new(binary: &Binary, bias: u64) -> Result<Pclntab> {
        let layout = locate::locate(binary, bias)?;
        Pclntab::assemble(layout)
    }

    /// Parses a pclntab held in `layout.data` and checks every table bound.
    pub(crate) fn assemble(layout: Layout) -> Result<Pclntab> {
        let data = layout.data;
        let region_end = layout
            .header_off
            .checked_add(layout.len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| corrupt("pclntab extends past the end of the file"))?;
        // The header only: the tables are read (and their frames of the
        // executable decompressed) as lookups need them.
        let region = data
            .try_get(layout.header_off..region_end.min(layout.header_off + PCHEADER_READ))
            .map_err(AnalyzeError::from)?;
        let header = PcHeader::parse_within(region, layout.len)?;
        let base = layout.header_off;
        let range = |start: u64, end: u64| -> Result<Range<usize>> {
            let s = usize::try_from(start).map_err(|_| corrupt("pclntab offset too large"))?;
            let e = usize::try_from(end).map_err(|_| corrupt("pclntab offset too large"))?;
            if s > e || e > layout.len {
                return Err(corrupt(
                    "pclntab table offsets out of order or out of bounds",
                ));
            }
            Ok(base + s..base + e)
        };
        let funcnametab = range(header.funcname_offset, header.cu_offset)?;
        let cutab = range(header.cu_offset, header.filetab_offset)?;
        let filetab = range(header.filetab_offset, header.pctab_offset)?;
        let pctab = range(header.pctab_offset, header.pcln_offset)?;
        let pclntable = range(header.pcln_offset, layout.len as u64)?;
        let nfunc = usize::try_from(header.nfunc).map_err(|_| corrupt("nfunc too large"))?;
        let ftab_len = nfunc
            .checked_add(1)
            .and_then(|n| n.checked_mul(FTAB_ENTRY_LEN))
            .ok_or_else(|| corrupt("nfunc too large"))?;
        if ftab_len > pclntable.len() {
            return Err(corrupt("function table extends past the pclntab"));
        }
        let link_text = if header.text_start != 0 {
            header.text_start
        } else {
            layout
                .moduledata
                .as_ref()
                .map(|m| m.text)
                .or(layout.text_start_fallback)
                .ok_or_else(|| {
                    corrupt("pclntab has no text start and no moduledata or runtime.text was found")
                })?
        };
        let bias = layout.bias;
        let gofunc = layout
            .moduledata
            .as_ref()
            .map(|m| m.gofunc)
            .or(layout.gofunc_fallback)
            .map(|g| g.wrapping_add(bias));
        let moduledata = layout.moduledata.map(|m| m.with_bias(bias));
        let tab = Pclntab {
            data,
            segments: layout.segments,
            bias,
            header,
            text_start: link_text.wrapping_add(bias),
            funcnametab,
            cutab,
            filetab,
            pctab,
            pclntable,
            nfunc,
            moduledata,
            gofunc,
            by_name: OnceLock::new(),
            tables: None,
        };
        // The sentinel entry must not precede the last function.
        if nfunc > 0 && tab.ftab_entry_off(nfunc)? < tab.ftab_entry_off(nfunc - 1)? {
            return Err(corrupt("function table is not sorted"));
        }
        Ok(tab)
    }

    /// The parsed pcHeader.
    pub fn header(&self) -> &PcHeader {
        &self.header
    }

    /// Start of text (runtime address).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }

    /// End of text covered by the table (runtime address; the sentinel entry).
    pub fn text_end(&self) -> u64 {
        self.ftab_entry_off(self.nfunc)
            .map(|off| self.text_start.wrapping_add(u64::from(off)))
            .unwrap_or(self.text_start)
    }

    /// Load bias the table was built with.
    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// `runtime.firstmoduledata` as read from the executable (runtime addresses),
    /// if it was found.
    pub fn moduledata(&self) -> Option<&ModuleData> {
        self.moduledata.as_ref()
    }

    /// Decompresses every table now (their frames in parallel), or says
    /// which frame of the executable does not. A session calls it once
    /// before any lookup: the readers below answer "absent" for bytes they
    /// cannot get, which after this can only mean the table itself says
    /// so, never that a damaged frame hid them.
    pub fn load_tables(&mut self) -> std::result::Result<(), rdlv_format::FormatError> {
        let tables = [
            &self.funcnametab,
            &self.cutab,
            &self.filetab,
            &self.pctab,
            &self.pclntable,
        ];
        let start = tables.iter().map(|t| t.start).min().unwrap_or(0);
        let end = tables.iter().map(|t| t.end).max().unwrap_or(0);
        if self.tables.is_none() {
            self.tables = Some(LoadedRange::new(Arc::clone(&self.data), start..end)?);
        }
        Ok(())
    }

    /// Runtime address FUNCDATA offsets are relative to (`moduledata.gofunc`).
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc
    }

    fn ftab_entry_off(&self, i: usize) -> Result<u32> {
        let off = i
            .checked_mul(FTAB_ENTRY_LEN)
            .and_then(|o| o.checked_add(self.pclntable.start))
            .ok_or_else(|| corrupt("function index out of range"))?;
        u32_at(self, off).ok_or_else(|| corrupt("function table truncated"))
    }

    fn ftab_func_off(&self, i: usize) -> Option<u32> {
        u32_at(self, self.pclntable.start + i * FTAB_ENTRY_LEN + 4)
    }

    /// The function at table index `index` (`0..len()`).
    pub fn func_at_index(&self, index: usize) -> Option<Func<'_>> {
        if index >= self.nfunc {
            return None;
        }
        let entry_off = self.ftab_entry_off(index).ok()?;
        let end_off = self.ftab_entry_off(index + 1).ok()?;
        let func_off = usize::try_from(self.ftab_func_off(index)?).ok()?;
        let off = self.pclntable.start.checked_add(func_off)?;
        if off.checked_add(FUNC_HEADER_LEN)? > self.pclntable.end {
            return None;
        }
        Some(Func {
            tab: self,
            index: index as u32,
            off,
            entry: self.text_start.wrapping_add(u64::from(entry_off)),
            end: self
                .text_start
                .wrapping_add(u64::from(end_off.max(entry_off))),
        })
    }

    /// All functions in address order (entries that fail bounds checks are skipped).
    pub fn funcs(&self) -> impl Iterator<Item = Func<'_>> + '_ {
        (0..self.nfunc).filter_map(move |i| self.func_at_index(i))
    }

    /// The function containing `pc`.
    pub fn find_func(&self, pc: u64) -> Option<Func<'_>> {
        let off = pc.checked_sub(self.text_start)?;
        let off = u32::try_from(off).ok()?;
        if self.nfunc == 0 || off >= self.ftab_entry_off(self.nfunc).ok()? {
            return None;
        }
        // Largest i with entryoff(i) <= off.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ftab_entry_off(mid).ok()? <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.func_at_index(lo.checked_sub(1)?)
    }

    /// Function indexes sorted by (name, size descending).
    fn sorted_by_name(&self) -> &[u32] {
        self.by_name.get_or_init(|| {
            let mut idx: Vec<u32> = (0..self.nfunc as u32).collect();
            idx.sort_by_cached_key(|&i| {
                self.func_at_index(i as usize)
                    .map(|f| (f.name(), std::cmp::Reverse(f.size())))
            });
            idx
        })
    }

    /// A function by exact name. Several functions can share a name (an
    /// assembly or ABIInternal function and its ABI wrapper); then the
    /// largest one, the real body, is returned.
    pub fn func_by_name(&self, name: &str) -> Option<Func<'_>> {
        let range = self.name_range(name);
        let &index = self.sorted_by_name().get(range.start)?;
        (range.start < range.end).then(|| self.func_at_index(index as usize))?
    }

    /// Every function called `name`, largest first.
    pub fn funcs_named(&self, name: &str) -> impl Iterator<Item = Func<'_>> + '_ {
        let range = self.name_range(name);
        self.sorted_by_name()[range]
            .iter()
            .filter_map(move |&i| self.func_at_index(i as usize))
    }

    /// The positions in [`Self::sorted_by_name`] of the functions called `name`.
    fn name_range(&self, name: &str) -> Range<usize> {
        let sorted = self.sorted_by_name();
        let key = |i: u32| self.func_at_index(i as usize).map(|f| f.name());
        let start = sorted.partition_point(|&i| key(i).is_none_or(|n| n < name));
        let end = sorted.partition_point(|&i| key(i).is_none_or(|n| n <= name));
        start..end.max(start)
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    /// Whether the table has no functions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `max` bytes of the image at runtime address `addr`.
    fn read_runtime(&self, addr: u64, max: usize) -> Option<&[u8]> {
        read_image(
            &self.data,
            &self.segments,
            addr.wrapping_sub(self.bias),
            max,
        )
    }

    /// Up to `len` bytes of the executable at `moduledata.rodata + off`
    /// (where stack objects' pointer masks are); `None` without moduledata
    /// or outside the file.
    pub fn rodata_bytes(&self, off: u32, len: usize) -> Option<&[u8]> {
        let base = self.moduledata.as_ref()?.rodata;
        self.read_runtime(base.checked_add(u64::from(off))?, len)
    }

    /// A file name by its `cutab` index.
    fn file_name(&self, cu_offset: u32, file_no: i32) -> Option<&str> {
        let file_no = u32::try_from(file_no).ok()?;
        let index = usize::try_from(cu_offset.checked_add(file_no)?).ok()?;
        let pos = self.cutab.start.checked_add(index.checked_mul(4)?)?;
        if pos.checked_add(4)? > self.cutab.end {
            return None;
        }
        let name_off = u32_at(self, pos)?;
        if name_off == u32::MAX {
            return None;
        }
        c_str(self, &self.filetab, usize::try_from(name_off).ok()?)
    }

    fn func_name(&self, name_off: i32) -> Option<&str> {
        c_str(self, &self.funcnametab, usize::try_from(name_off).ok()?)
    }
}

fn corrupt(detail: &str) -> AnalyzeError {
    AnalyzeError::Binary(BinaryError::Pclntab {
        detail: detail.to_string(),
    })
}

impl<'a> Func<'a> {
    fn field_u32(&self, at: usize) -> u32 {
        // `off + FUNC_HEADER_LEN <= pclntable.end` was checked when the Func was made.
        u32_at(self.tab, self.off + at).unwrap_or(0)
    }

    fn field_u8(&self, at: usize) -> u8 {
        let i = self.off + at;
        self.tab.bytes(i..i + 1).map_or(0, |b| b[0])
    }

    /// Index in the function table.
    pub fn index(&self) -> usize {
        self.index as usize
    }

    /// Entry PC.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// End of the function: the next function's entry (or the end of text).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Size in bytes (`end() - entry()`).
    pub fn size(&self) -> u64 {
        self.end.wrapping_sub(self.entry)
    }

    /// Name from funcnametab.
    pub fn name(&self) -> &'a str {
        self.tab
            .func_name(self.field_u32(4) as i32)
            .unwrap_or("<invalid function name>")
    }

    /// `_func.flag`.
    pub fn flag(&self) -> u8 {
        self.field_u8(41)
    }

    /// `_func.funcID` raw (version dependent: prefer names).
    pub fn func_id(&self) -> u8 {
        self.field_u8(40)
    }

    /// `_func.args`.
    pub fn args_size(&self) -> i32 {
        self.field_u32(8) as i32
    }

    /// `_func.deferreturn`.
    pub fn deferreturn(&self) -> u32 {
        self.field_u32(12)
    }

    /// `_func.startLine`.
    pub fn start_line(&self) -> i32 {
        self.field_u32(36) as i32
    }

    /// `_func.npcdata`.
    pub fn npcdata(&self) -> u32 {
        self.field_u32(28)
    }

    /// `_func.nfuncdata`.
    pub fn nfuncdata(&self) -> u8 {
        self.field_u8(43)
    }

    /// Evaluates the pctab table at offset `table_off` (0 = absent) at `pc`.
    fn pcvalue(&self, table_off: u32, pc: u64) -> Option<i32> {
        if table_off == 0 || pc < self.entry || pc >= self.end {
            return None;
        }
        let start = self
            .tab
            .pctab
            .start
            .checked_add(usize::try_from(table_off).ok()?)?;
        let table = self.tab.bytes(start..self.tab.pctab.end)?;
        pcvalue(table, self.entry, pc, self.tab.header.min_lc)
    }

    /// SP delta at `pc` (frame size below the return address).
    pub fn sp_delta(&self, pc: u64) -> Option<i32> {
        self.pcvalue(self.field_u32(16), pc)
    }

    /// File and line of the *physical* function at `pc`.
    pub fn file_line(&self, pc: u64) -> Option<(&'a str, u32)> {
        let file_no = self.pcvalue(self.field_u32(20), pc)?;
        let line = self.pcvalue(self.field_u32(24), pc)?;
        let file = self.tab.file_name(self.field_u32(32), file_no)?;
        Some((file, u32::try_from(line).ok()?))
    }

    /// PCDATA table `table` at `pc`.
    pub fn pcdata(&self, table: u32, pc: u64) -> Option<i32> {
        if table >= self.npcdata() {
            return None;
        }
        let at = FUNC_HEADER_LEN.checked_add(usize::try_from(table).ok()?.checked_mul(4)?)?;
        let off = u32_at(self.tab, self.off.checked_add(at)?)?;
        self.pcvalue(off, pc)
    }

    /// Runtime address of FUNCDATA `index`, if present.
    pub fn funcdata_addr(&self, index: u32) -> Option<u64> {
        if index >= u32::from(self.nfuncdata()) {
            return None;
        }
        let npcdata = usize::try_from(self.npcdata()).ok()?;
        let at = FUNC_HEADER_LEN
            .checked_add(npcdata.checked_mul(4)?)?
            .checked_add(index as usize * 4)?;
        let pos = self.off.checked_add(at)?;
        if pos.checked_add(4)? > self.tab.pclntable.end {
            return None;
        }
        let off = u32_at(self.tab, pos)?;
        if off == u32::MAX {
            return None;
        }
        Some(self.tab.gofunc?.wrapping_add(u64::from(off)))
    }

    /// Bytes of FUNCDATA `index` (read from the binary), if present; at most `max` bytes.
    pub fn funcdata_bytes(&self, index: u32, max: usize) -> Option<&'a [u8]> {
        let addr = self.funcdata_addr(index)?;
        self.tab.read_runtime(addr, max)
    }

    /// The inline tree entry `idx` of this function: (name, parentPc).
    fn inlined_call(&self, tree: u64, idx: i32) -> Option<(&'a str, i32)> {
        if !(0..MAX_INLINE_INDEX).contains(&idx) {
            return None;
        }
        let addr = tree.checked_add(INLINED_CALL_LEN * idx as u64)?;
        let raw = self.tab.read_runtime(addr, INLINED_CALL_LEN as usize)?;
        if raw.len() < INLINED_CALL_LEN as usize {
            return None;
        }
        let name_off = u32_at(raw, 4)? as i32;
        let parent_pc = u32_at(raw, 8)? as i32;
        let name = self.tab.func_name(name_off)?;
        Some((name, parent_pc))
    }

    /// Logical frames at symbolic PC `pc`, innermost inlined call first, physical last.
    pub fn frames_at(&self, pc: u64) -> Vec<InlineFrame> {
        let mut frames = Vec::new();
        let mut pc = pc;
        let location = |pc: u64| {
            self.file_line(pc)
                .map(|(f, l)| (f.to_string(), l))
                .unwrap_or_else(|| ("?".to_string(), 0))
        };
        if let Some(tree) = self.funcdata_addr(funcdata::INL_TREE) {
            let mut idx = self.pcdata(pcdata::INL_TREE_INDEX, pc).unwrap_or(-1);
            while idx >= 0 && frames.len() < MAX_INLINE_DEPTH {
                let Some((name, parent_pc)) = self.inlined_call(tree, idx) else {
                    break;
                };
                let (file, line) = location(pc);
                frames.push(InlineFrame {
                    name: name.to_string(),
                    file,
                    line,
                    inlined: true,
                });
                let Ok(parent_pc) = u64::try_from(parent_pc) else {
                    break;
                };
                pc = self.entry.wrapping_add(parent_pc);
                idx = self.pcdata(pcdata::INL_TREE_INDEX, pc).unwrap_or(-1);
            }
        }
        let (file, line) = location(pc);
        frames.push(InlineFrame {
            name: self.name().to_string(),
            file,
            line,
            inlined: false,
        });
        frames
    }
}
