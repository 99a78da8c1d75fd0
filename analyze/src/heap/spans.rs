//! The span walk: every in-use span of `mheap_.allspans`, with which of its
//! object slots are allocated.
//!
//! Allocation rule (the runtime's, `mbitmap.go` `isFree`): slot `i` of an
//! in-use span is allocated iff `i < freeindex` or bit `i` of `allocBits`
//! is set. Slots below `freeindex` were either live at the last sweep or
//! handed out since (the allocator advances `freeindex` past every slot it
//! returns, also on the `allocCache` fast path), so objects allocated since
//! the last GC are counted without reading `allocCache`.
//!
//! Invariants kept for untrusted data: the span count, pages per span and
//! slots per span are bounded by named constants; a span whose geometry is
//! impossible (`nelems * elemsize` beyond its pages, address wraparound) is
//! skipped and reported in [`Heap::damaged`], never trusted.

use crate::error::{AnalyzeError, Corrupt, Result, Unsupported};
use crate::memory::Memory;
use crate::runtime::Runtime;

use super::layout::HeapLayout;

/// Runtime page size (`_PageSize`, 8 KiB on every 64-bit platform).
pub const PAGE_SIZE: u64 = 8192;
/// Bound on `len(mheap_.allspans)`: 2^26 spans of one page is 512 GiB.
pub const MAX_SPANS: u64 = 1 << 26;
/// Bound on one span's pages (a 64 GiB object).
pub const MAX_SPAN_PAGES: u64 = 1 << 23;
/// Bound on slots per span (`nelems` is a uint16 from 1.22).
pub const MAX_NELEMS: u64 = 1 << 16;
/// Bound on the size of `runtime.mspan` read per span (1.26: 160 bytes).
pub const MAX_MSPAN_SIZE: u64 = 1024;
/// Damaged spans described one by one; past this only counted.
pub const MAX_DAMAGE_REPORTS: usize = 16;
/// Objects of this size or less carry no malloc header (`minSizeForMallocHeader`).
pub const MIN_SIZE_FOR_MALLOC_HEADER: u64 = 512;
/// Bytes of a malloc header.
pub const MALLOC_HEADER_SIZE: u64 = 8;
/// Size in bytes of each small size class (`class_to_size`, identical in
/// the runtime sources of Go 1.21 through 1.27).
pub const SIZE_CLASS_TO_SIZE: [u16; 68] = [
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
    352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792,
    2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728,
    10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672,
    32768,
];
/// `mSpanInUse` when DWARF does not say.
const MSPAN_IN_USE_DEFAULT: i64 = 1;

/// One in-use span.
#[derive(Debug, Clone)]
pub struct Span {
    /// Address of the `runtime.mspan`.
    pub mspan: u64,
    /// First byte of the span.
    pub base: u64,
    /// Pages (8 KiB each).
    pub npages: u64,
    /// Bytes per slot.
    pub elemsize: u64,
    /// Slots.
    pub nelems: u64,
    /// `freeindex`.
    pub freeindex: u64,
    /// `spanclass` (`sizeclass<<1 | noscan`).
    pub spanclass: u8,
    /// `largeType` (1.22+, size class 0 only; 0 when absent, nil, or the
    /// span is noscan: the runtime leaves a stale value there).
    pub large_type: u64,
    /// Whether the span was swept in the current cycle (its allocBits are
    /// this cycle's; unswept spans may still hold objects that died in the
    /// last GC).
    pub swept: bool,
    /// One bit per slot: allocated.
    alloc: Vec<u64>,
}

impl Span {
    /// Size class (0 = one large object).
    pub fn sizeclass(&self) -> u8 {
        self.spanclass >> 1
    }
    /// Whether the span holds no pointers.
    pub fn noscan(&self) -> bool {
        self.spanclass & 1 != 0
    }
    /// One past the last byte of the span.
    pub fn limit(&self) -> u64 {
        self.base + self.npages * PAGE_SIZE
    }
    /// Whether slot `i` is allocated.
    pub fn is_allocated(&self, i: u64) -> bool {
        i < self.nelems
            && self
                .alloc
                .get((i / 64) as usize)
                .is_some_and(|w| w >> (i % 64) & 1 != 0)
    }
    /// Allocated slot indices.
    pub fn allocated(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.nelems).filter(|&i| self.is_allocated(i))
    }
    /// Number of allocated slots.
    pub fn allocated_count(&self) -> u64 {
        self.alloc.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    /// Base address of slot `i`.
    pub fn object(&self, i: u64) -> u64 {
        self.base + i * self.elemsize
    }
    /// Whether objects of this span have a malloc header (1.22+, scan,
    /// small size class above 512 bytes).
    pub fn has_header(&self, minor: u32) -> bool {
        minor >= 22
            && !self.noscan()
            && self.sizeclass() != 0
            && self.elemsize > MIN_SIZE_FOR_MALLOC_HEADER
    }
}

/// The in-use spans of a heap, sorted by address.
#[derive(Debug, Default)]
pub struct Heap {
    /// In-use spans sorted by base.
    pub spans: Vec<Span>,
    /// `mheap_.sweepgen`.
    pub sweepgen: u32,
    /// Entries of `allspans` read (any state).
    pub all_spans: u64,
    /// Spans skipped as damaged.
    pub damaged_count: u64,
    /// Descriptions of the first damaged spans.
    pub damaged: Vec<String>,
}

impl Heap {
    /// Reads `mheap_.allspans` and every in-use span.
    pub fn read(rt: &Runtime<'_>, layout: &HeapLayout) -> Result<Heap> {
        let mem = rt.mem();
        let mheap = rt.global("runtime.mheap_").ok_or(Unsupported::Stripped {
            symbol: "runtime.mheap_",
            tried: super::HEAP_STRIPPED,
        })?;
        let allspans = mheap.wrapping_add(layout.mheap.req("allspans")?);
        let ptr = mem.read_u64(allspans)?;
        let len = mem.read_u64(allspans.wrapping_add(8))?;
        if len > MAX_SPANS {
            return Err(Corrupt::Count {
                what: "len(runtime.mheap_.allspans)",
                count: len,
                bound: MAX_SPANS,
            }
            .into());
        }
        let sweepgen = mem.read_u32(mheap.wrapping_add(layout.mheap.req("sweepgen")?))?;
        let in_use = rt
            .constant("runtime.mSpanInUse")
            .unwrap_or(MSPAN_IN_USE_DEFAULT);
        let ptrs = mem.read_vec(ptr, (len * 8) as usize)?;
        let mut heap = Heap {
            sweepgen,
            all_spans: len,
            ..Heap::default()
        };
        let reader = SpanReader::new(layout)?;
        for chunk in ptrs.chunks_exact(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let s = u64::from_le_bytes(w);
            match reader.read(mem, s, in_use, sweepgen) {
                Ok(Some(span)) => heap.spans.push(span),
                Ok(None) => {}
                Err(e) => {
                    heap.damaged_count += 1;
                    if heap.damaged.len() < MAX_DAMAGE_REPORTS {
                        heap.damaged.push(match e {
                            // Already names the span.
                            AnalyzeError::Corrupt(c) => c.to_string(),
                            e => format!("span 0x{s:x}: {e}"),
                        });
                    }
                }
            }
        }
        heap.spans.sort_by_key(|s| s.base);
        // Overlapping spans cannot both be real: keep the first, report the rest.
        let mut kept: Vec<Span> = Vec::with_capacity(heap.spans.len());
        for s in std::mem::take(&mut heap.spans) {
            if kept.last().is_some_and(|p| p.limit() > s.base) {
                heap.damaged_count += 1;
                if heap.damaged.len() < MAX_DAMAGE_REPORTS {
                    heap.damaged.push(format!(
                        "span 0x{:x}: overlaps the span before it at 0x{:x}",
                        s.mspan, s.base
                    ));
                }
                continue;
            }
            kept.push(s);
        }
        heap.spans = kept;
        Ok(heap)
    }

    /// The span containing `addr`.
    pub fn span_of(&self, addr: u64) -> Option<(usize, &Span)> {
        let i = self.spans.partition_point(|s| s.base <= addr);
        let idx = i.checked_sub(1)?;
        let s = self.spans.get(idx)?;
        (addr < s.limit()).then_some((idx, s))
    }

    /// The allocated object containing `addr`: (span index, slot).
    pub fn object_of(&self, addr: u64) -> Option<(usize, u64)> {
        let (idx, s) = self.span_of(addr)?;
        if s.elemsize == 0 {
            return None;
        }
        let slot = (addr - s.base) / s.elemsize;
        s.is_allocated(slot).then_some((idx, slot))
    }

    /// Bytes of all in-use spans (`npages * 8 KiB` summed): what the
    /// runtime's `heapInUse` counts.
    pub fn span_bytes(&self) -> u64 {
        self.spans.iter().map(|s| s.npages * PAGE_SIZE).sum()
    }
}

/// Reads one `mspan` with precomputed offsets.
struct SpanReader {
    size: u64,
    start: u64,
    npages: u64,
    freeindex: u64,
    nelems: u64,
    alloc_bits: u64,
    sweepgen: u64,
    spanclass: u64,
    state: u64,
    elemsize: u64,
    large_type: Option<u64>,
    u16_counts: bool,
}

fn word(buf: &[u8], off: u64, width: usize) -> u64 {
    let o = off as usize;
    let mut w = [0u8; 8];
    if let Some(src) = buf.get(o..o + width) {
        w[..width].copy_from_slice(src);
    }
    u64::from_le_bytes(w)
}

impl SpanReader {
    fn new(l: &HeapLayout) -> std::result::Result<SpanReader, super::layout::HeapLayoutError> {
        let m = &l.mspan;
        let size = if m.size == 0 { 168 } else { m.size };
        Ok(SpanReader {
            size: size.min(MAX_MSPAN_SIZE),
            start: m.req("startAddr")?,
            npages: m.req("npages")?,
            freeindex: m.req("freeindex")?,
            nelems: m.req("nelems")?,
            alloc_bits: m.req("allocBits")?,
            sweepgen: m.req("sweepgen")?,
            spanclass: m.req("spanclass")?,
            state: m.req("state")?,
            elemsize: m.req("elemsize")?,
            large_type: m.opt("largeType"),
            u16_counts: l.span_counts_are_u16(),
        })
    }

    fn read(
        &self,
        mem: &dyn Memory,
        addr: u64,
        in_use: i64,
        heap_sweepgen: u32,
    ) -> Result<Option<Span>> {
        if addr == 0 {
            return Ok(None);
        }
        let buf = mem.read_vec(addr, self.size as usize)?;
        if i64::from(word(&buf, self.state, 1) as u8) != in_use {
            return Ok(None);
        }
        let cw = if self.u16_counts { 2 } else { 8 };
        let base = word(&buf, self.start, 8);
        let npages = word(&buf, self.npages, 8);
        let nelems = word(&buf, self.nelems, cw);
        let freeindex = word(&buf, self.freeindex, cw);
        let elemsize = word(&buf, self.elemsize, 8);
        let spanclass = word(&buf, self.spanclass, 1) as u8;
        let sweepgen = word(&buf, self.sweepgen, 4) as u32;
        let bad = |detail: String| {
            Err(Corrupt::Record {
                what: "span",
                addr,
                detail,
            }
            .into())
        };
        if npages == 0 || npages > MAX_SPAN_PAGES {
            return bad(format!("{npages} pages (bound {MAX_SPAN_PAGES})"));
        }
        let bytes = npages * PAGE_SIZE;
        if base.checked_add(bytes).is_none() || !base.is_multiple_of(PAGE_SIZE) {
            return bad(format!("base 0x{base:x} is not a page address"));
        }
        if nelems > MAX_NELEMS || elemsize == 0 || nelems.saturating_mul(elemsize) > bytes {
            return bad(format!(
                "{nelems} objects of {elemsize} bytes do not fit {npages} pages"
            ));
        }
        let class = spanclass >> 1;
        if class as usize >= SIZE_CLASS_TO_SIZE.len() {
            return bad(format!("size class {class} (there are 68)"));
        }
        if class != 0 && u64::from(SIZE_CLASS_TO_SIZE[class as usize]) != elemsize {
            return bad(format!(
                "size class {class} with elemsize {elemsize} (class size is {})",
                SIZE_CLASS_TO_SIZE[class as usize]
            ));
        }
        if freeindex > nelems {
            return bad(format!("freeindex {freeindex} beyond nelems {nelems}"));
        }
        let bits_ptr = word(&buf, self.alloc_bits, 8);
        let nbytes = nelems.div_ceil(8) as usize;
        let bits = if nbytes == 0 {
            Vec::new()
        } else {
            mem.read_vec(bits_ptr, nbytes)?
        };
        let mut alloc = vec![0u64; nelems.div_ceil(64) as usize];
        for i in 0..nelems {
            let set = i < freeindex
                || bits
                    .get((i / 8) as usize)
                    .is_some_and(|b| b >> (i % 8) & 1 != 0);
            if set {
                if let Some(w) = alloc.get_mut((i / 64) as usize) {
                    *w |= 1 << (i % 64);
                }
            }
        }
        let swept = sweepgen == heap_sweepgen || sweepgen == heap_sweepgen.wrapping_add(3);
        Ok(Some(Span {
            mspan: addr,
            base,
            npages,
            elemsize,
            nelems,
            freeindex,
            spanclass,
            // The runtime sets largeType only for a large span with
            // pointers; a noscan one keeps what the recycled mspan held.
            large_type: match self.large_type {
                Some(o) if spanclass & 1 == 0 => word(&buf, o, 8),
                _ => 0,
            },
            swept,
            alloc,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn span(base: u64, elemsize: u64, nelems: u64, alloc: &[u64]) -> Span {
        let mut bits = vec![0u64; nelems.div_ceil(64) as usize];
        for &i in alloc {
            bits[(i / 64) as usize] |= 1 << (i % 64);
        }
        Span {
            mspan: 0,
            base,
            npages: (nelems * elemsize).div_ceil(PAGE_SIZE).max(1),
            elemsize,
            nelems,
            freeindex: 0,
            spanclass: 0,
            large_type: 0,
            swept: true,
            alloc: bits,
        }
    }

    #[test]
    fn object_lookup_respects_allocation_bits() {
        let heap = Heap {
            spans: vec![
                span(0x10000, 16, 512, &[0, 3]),
                span(0x20000, 8192, 1, &[0]),
            ],
            ..Heap::default()
        };
        assert_eq!(heap.object_of(0x10000), Some((0, 0)));
        assert_eq!(heap.object_of(0x1003f), Some((0, 3)));
        assert_eq!(heap.object_of(0x10010), None, "slot 1 is free");
        assert_eq!(heap.object_of(0x20100), Some((1, 0)));
        assert_eq!(heap.object_of(0x0fff0), None);
        assert_eq!(heap.object_of(0x22000), None);
    }
}
