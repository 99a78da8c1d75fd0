//! Marking: what the heap objects reachable from a set of roots are, with
//! the pointer bits the runtime itself uses to scan them.
//!
//! Per object, the pointer words are found as the GC finds them
//! (`typePointersOf`, Go 1.22+): none in a noscan span; the span-end heap
//! bits for objects of 512 bytes or less (placed before the Green Tea inline
//! mark bits when the runtime has them); the malloc header's type mask
//! tiled over the data for 513 B–32 KiB objects; `largeType`'s mask tiled
//! over a large object (nothing while `largeType` is nil). Where the mask is
//! unknown (Go 1.21's arena bitmap is not read, GC programs, on-demand masks
//! not built yet, types outside the module) the object is scanned
//! conservatively: every aligned word that points into an allocated slot
//! counts, which can only make more objects reachable, never fewer.
//!
//! Roots: data and bss through the module's `gcdatamask`/`gcbssmask`
//! (conservatively when unreadable), and goroutine stacks, scanned frame
//! by frame with the functions' stack maps and stack objects as the
//! runtime's `scanstack` does ([`super::stacks`]; conservatively only
//! where the runtime is too, or where a map cannot be read). While a stack
//! is scanned, words pointing into it are collected in a [`StackSink`]
//! (they can only reach stack objects), not marked.
//!
//! Hidden words: the leak detector (runtime `setSyncObjectsUntraceable`)
//! hides the `c` and `elem` words of blocked goroutines' sudogs, which are
//! reachable from `allgs` and `semtable`; [`Marker::hide`] does the same.
//!
//! Bounds: memory is read in chunks of [`SCAN_CHUNK`] bytes; the number of
//! objects one marker visits is bounded by its budget.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::memory::Memory;

use super::spans::{Span, MALLOC_HEADER_SIZE, MIN_SIZE_FOR_MALLOC_HEADER, PAGE_SIZE};
use super::types::Types;
use super::HeapModel;

/// Bytes read at once while scanning.
pub const SCAN_CHUNK: u64 = 64 << 10;
/// Bound on one goroutine stack scanned (the runtime's maximum is 1 GB).
pub const MAX_STACK_BYTES: u64 = 1 << 30;
/// Bound on a data or bss segment scanned.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 32;

/// Mark state: a bit per slot for whole-heap marking, or a set for the
/// small per-goroutine walks of the wait graph.
enum Marks {
    Bits(Vec<Vec<u64>>),
    Set(HashSet<(u32, u64)>),
}

/// A marker over one heap.
pub struct Marker<'m, 'r, 't> {
    model: &'m HeapModel<'r, 't>,
    types: Types<'t>,
    marks: Marks,
    work: Vec<(u32, u64)>,
    hidden: HashMap<u64, Vec<u64>>,
    span_bits: HashMap<u32, Rc<Vec<u8>>>,
    /// Objects marked so far.
    pub marked: u64,
    budget: u64,
    /// Whether the budget ran out (the result is then a lower bound).
    pub exhausted: bool,
    /// While a goroutine stack is scanned: words that point into it are
    /// collected here instead of being marked (they may reach stack objects).
    pub(super) stack_sink: Option<StackSink>,
}

/// Pointers into the goroutine stack being scanned.
#[derive(Debug, Default)]
pub(super) struct StackSink {
    /// `[lo, hi)` of the stack.
    pub lo: u64,
    pub hi: u64,
    /// Pointers found so far and not yet looked up.
    pub ptrs: Vec<u64>,
}

impl<'m, 'r, 't> Marker<'m, 'r, 't> {
    /// A marker for the whole heap (one bit per slot).
    pub fn whole(model: &'m HeapModel<'r, 't>) -> Self {
        let bits = model
            .heap
            .spans
            .iter()
            .map(|s| vec![0u64; s.nelems.div_ceil(64) as usize])
            .collect();
        Self::with(model, Marks::Bits(bits), u64::MAX)
    }

    /// A marker that visits at most `budget` objects (a set of visited slots).
    pub fn bounded(model: &'m HeapModel<'r, 't>, budget: u64) -> Self {
        Self::with(model, Marks::Set(HashSet::new()), budget)
    }

    fn with(model: &'m HeapModel<'r, 't>, marks: Marks, budget: u64) -> Self {
        Marker {
            model,
            types: model.types(),
            marks,
            work: Vec::new(),
            hidden: HashMap::new(),
            span_bits: HashMap::new(),
            marked: 0,
            budget,
            exhausted: false,
            stack_sink: None,
        }
    }

    /// Never follow the word at `addr` (an interior address of some object).
    pub fn hide(&mut self, addr: u64) {
        if let Some((idx, slot)) = self.model.heap.object_of(addr) {
            if let Some(s) = self.model.heap.spans.get(idx) {
                let base = s.object(slot);
                self.hidden.entry(base).or_default().push(addr - base);
            }
        }
    }

    /// The heap model marked.
    pub(super) fn model(&self) -> &'m HeapModel<'r, 't> {
        self.model
    }

    fn mem(&self) -> &'t dyn Memory {
        self.model.mem()
    }

    /// Whether the object containing `addr` is marked.
    pub fn is_marked(&self, addr: u64) -> bool {
        match self.model.heap.object_of(addr) {
            Some((idx, slot)) => self.test(idx as u32, slot),
            None => false,
        }
    }

    /// The runtime's `isMarkedOrNotInHeap`: outside every in-use span, or
    /// inside a marked object.
    pub fn is_marked_or_not_in_heap(&self, addr: u64) -> bool {
        if self.model.heap.span_of(addr).is_none() {
            return true;
        }
        self.is_marked(addr)
    }

    fn test(&self, idx: u32, slot: u64) -> bool {
        match &self.marks {
            Marks::Bits(b) => b
                .get(idx as usize)
                .and_then(|v| v.get((slot / 64) as usize))
                .is_some_and(|w| w >> (slot % 64) & 1 != 0),
            Marks::Set(s) => s.contains(&(idx, slot)),
        }
    }

    /// Marks the object containing `p` (if any) and queues it for scanning.
    pub fn mark(&mut self, p: u64) {
        let Some((idx, slot)) = self.model.heap.object_of(p) else {
            return;
        };
        let idx = idx as u32;
        let fresh = match &mut self.marks {
            Marks::Bits(b) => match b
                .get_mut(idx as usize)
                .and_then(|v| v.get_mut((slot / 64) as usize))
            {
                Some(w) if *w >> (slot % 64) & 1 == 0 => {
                    *w |= 1 << (slot % 64);
                    true
                }
                _ => false,
            },
            Marks::Set(s) => {
                if self.marked >= self.budget {
                    self.exhausted = true;
                    false
                } else {
                    s.insert((idx, slot))
                }
            }
        };
        if fresh {
            self.marked += 1;
            self.work.push((idx, slot));
        }
    }

    /// Every aligned word of `[lo, hi)` taken as a possible pointer.
    pub fn scan_conservative(&mut self, lo: u64, hi: u64) {
        self.scan_words(lo, hi, &|_| true, &[]);
    }

    /// Words of `[lo, hi)` whose bit is set in `mask` (one bit per word).
    pub fn scan_masked(&mut self, lo: u64, hi: u64, mask: &[u8]) {
        self.scan_words(
            lo,
            hi,
            &|w| {
                mask.get((w / 8) as usize)
                    .is_some_and(|b| b >> (w % 8) & 1 != 0)
            },
            &[],
        );
    }

    /// Scans `[lo, hi)`; `is_ptr(w)` says whether word `w` (from `lo`) may
    /// hold a pointer; words at the offsets in `skip` (from `lo`) are hidden.
    pub(super) fn scan_words(
        &mut self,
        lo: u64,
        hi: u64,
        is_ptr: &dyn Fn(u64) -> bool,
        skip: &[u64],
    ) {
        let lo = lo.next_multiple_of(8);
        let mut at = lo;
        let mut buf = Vec::new();
        while at < hi {
            let n = (hi - at).min(SCAN_CHUNK);
            buf.resize(n as usize, 0);
            if self.mem().read(at, &mut buf).is_err() {
                // Unreadable pages hold no pointers we can follow; go on.
                at = at.saturating_add(n);
                continue;
            }
            for (i, chunk) in buf.chunks_exact(8).enumerate() {
                let off = at - lo + i as u64 * 8;
                if !is_ptr(off / 8) || skip.contains(&off) {
                    continue;
                }
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                let p = u64::from_le_bytes(w);
                self.take_pointer(p);
            }
            at = at.saturating_add(n);
        }
    }

    /// One word known to hold a pointer: into the stack being scanned it is
    /// collected for the stack objects, else the heap object it points
    /// into (if any) is marked.
    pub(super) fn take_pointer(&mut self, p: u64) {
        if p < 4096 {
            return;
        }
        match &mut self.stack_sink {
            Some(sink) if p >= sink.lo && p < sink.hi => sink.ptrs.push(p),
            _ => self.mark(p),
        }
    }

    /// Scans queued objects until none is left.
    pub fn drain(&mut self) {
        while let Some((idx, slot)) = self.work.pop() {
            let Some(s) = self.model.heap.spans.get(idx as usize) else {
                continue;
            };
            self.scan_object(idx, s, slot);
        }
    }

    fn scan_object(&mut self, idx: u32, s: &'m Span, slot: u64) {
        if s.noscan() {
            return;
        }
        let base = s.object(slot);
        let skip = self.hidden.get(&base).cloned().unwrap_or_default();
        let end = base + s.elemsize;
        let minor = self.model.layout.minor;
        if minor < 22 {
            self.scan_words(base, end, &|_| true, &skip);
            return;
        }
        if s.sizeclass() != 0 && s.elemsize <= MIN_SIZE_FOR_MALLOC_HEADER {
            let bits = self.span_heap_bits(idx, s);
            let first = (base - s.base) / 8;
            match bits {
                Some(bits) => self.scan_words(
                    base,
                    end,
                    &|w| {
                        let b = first + w;
                        bits.get((b / 8) as usize)
                            .is_some_and(|x| x >> (b % 8) & 1 != 0)
                    },
                    &skip,
                ),
                None => self.scan_words(base, end, &|_| true, &skip),
            }
            return;
        }
        let (typ, data) = if s.sizeclass() != 0 {
            let Ok(header) = self.mem().read_u64(base) else {
                return;
            };
            (self.types.get(header), base + MALLOC_HEADER_SIZE)
        } else {
            if s.large_type == 0 {
                // Nil largeType: still being zeroed, nothing to scan (as the GC).
                return;
            }
            (self.types.get(s.large_type), base)
        };
        let skip: Vec<u64> = skip
            .iter()
            .filter_map(|o| (base + o).checked_sub(data))
            .collect();
        match typ {
            Some(t) if t.mask.is_some() && t.size > 0 => {
                let size = t.size;
                let words_per = size / 8;
                if t.ptrbytes == 0 || words_per == 0 {
                    return;
                }
                let t = t.clone();
                self.scan_words(
                    data,
                    end,
                    &|w| t.is_pointer_word(w % words_per).unwrap_or(true),
                    &skip,
                );
            }
            _ => self.scan_words(data, end, &|_| true, &skip),
        }
    }

    /// The span-end heap bits of a small-object span (cached per span).
    fn span_heap_bits(&mut self, idx: u32, s: &Span) -> Option<Rc<Vec<u8>>> {
        if let Some(b) = self.span_bits.get(&idx) {
            return Some(b.clone());
        }
        let span_bytes = s.npages * PAGE_SIZE;
        let size = span_bytes / 64;
        let mut start = s.base + span_bytes - size;
        let inline = self.model.layout.inline_mark_bits;
        if inline > 0 && s.elemsize >= 16 {
            start -= inline;
        }
        let bits = Rc::new(self.mem().read_vec(start, size as usize).ok()?);
        self.span_bits.insert(idx, bits.clone());
        Some(bits)
    }

    /// Scans the module's data and bss with their pointer masks.
    pub fn scan_globals(&mut self) {
        let rt = self.model.rt;
        let Some(md) = rt.tab().moduledata().copied() else {
            return;
        };
        let l = &self.model.layout.moduledata;
        for (lo, hi, field) in [
            (md.data, md.edata, "gcdatamask"),
            (md.bss, md.ebss, "gcbssmask"),
        ] {
            if hi <= lo || hi - lo > MAX_SEGMENT_BYTES {
                continue;
            }
            let words = (hi - lo) / 8;
            let mask = l.opt(field).and_then(|off| {
                let bv = md.addr.wrapping_add(off);
                let n = u64::from(self.mem().read_u32(bv).ok()?);
                let ptr = self.mem().read_u64(bv.wrapping_add(8)).ok()?;
                if n == 0 || n > words {
                    return None;
                }
                self.mem().read_vec(ptr, n.div_ceil(8) as usize).ok()
            });
            match mask {
                Some(m) => self.scan_masked(lo, hi, &m),
                None => self.scan_conservative(lo, hi),
            }
        }
    }

    /// Scans one goroutine stack from `sp` to `hi`, conservatively.
    pub fn scan_stack(&mut self, sp: u64, hi: u64) {
        if sp == 0 || hi <= sp || hi - sp > MAX_STACK_BYTES {
            return;
        }
        self.scan_conservative(sp, hi);
    }
}
