//! Marking: what the heap objects reachable from a set of roots are, with
//! the pointer bits the runtime itself uses to scan them.
//!
//! Per object, the pointer words are found as the GC finds them
//! (`typePointersOf`, Go 1.22+): none in a noscan span; the span-end heap
//! bits for objects of 512 bytes or less (placed before the Green Tea inline
//! mark bits when the runtime has them); the malloc header's type mask
//! tiled over the data for 513 B–32 KiB objects; `largeType`'s mask tiled
//! over a large object (nothing while `largeType` is nil); on Go 1.21, the
//! heap arenas' one-bit-per-word bitmap with its `noMorePtrs` cut-off.
//! Where the mask is unknown (GC programs, on-demand masks not built yet,
//! types outside the module, unreadable arenas) the object is scanned
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
/// Heap words per arena (`heapArenaBytes` = 64 MiB on linux/amd64).
const ARENA_WORDS: u64 = (64 << 20) / 8;
/// `logHeapArenaBytes` on linux/amd64.
const ARENA_SHIFT: u32 = 26;
/// `arenaBaseOffset` on amd64: arena indexes count from here.
const ARENA_BASE_OFFSET: u64 = 0xffff_8000_0000_0000;
/// `arenaL2Bits` on linux/amd64 (48-bit addresses, L1 has one entry).
const ARENA_L2_BITS: u32 = 48 - ARENA_SHIFT;

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
    /// Hidden word offsets by object base; shared between the many small
    /// markers of the wait graph ([`Marker::share_hidden`]).
    hidden: Rc<HashMap<u64, Vec<u64>>>,
    span_bits: HashMap<u32, Rc<Vec<u8>>>,
    /// Go 1.21: `heapArena` addresses by arena index.
    arenas: HashMap<u64, Option<u64>>,
    /// Objects marked so far.
    pub marked: u64,
    budget: u64,
    /// Whether the budget ran out (the result is then a lower bound).
    pub exhausted: bool,
    /// While a goroutine stack is scanned: words that point into it are
    /// collected here instead of being marked (they may reach stack objects).
    pub(super) stack_sink: Option<StackSink>,
    /// When the object graph itself is wanted ([`Marker::recording`]): the
    /// nodes and every edge followed.
    pub(super) recorder: Option<Recorder>,
    /// While a frame is scanned by a recording marker: its named variables.
    pub(super) frame_slots: Option<FrameSlots>,
    /// For the next goroutine scanned by a recording marker: the named
    /// variables of each physical frame (see [`Marker::name_frame_slots`]).
    pub(super) goroutine_slots: Vec<Vec<(u64, u64, RootKey)>>,
}

/// What a root is, for naming it (see [`super::retain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootKey {
    /// A package variable: index into the sorted symbol list of the scan.
    Global(u32),
    /// Words of data or bss no symbol covers (or a stripped binary's).
    Segment(bool),
    /// A goroutine's frame: goroutine id, logical frame index (as `bt` numbers it).
    Frame(u64, u32),
    /// A named variable of a goroutine's frame that lives on its stack:
    /// goroutine id, logical frame index, index into the recorder's
    /// [`Recorder::locals`] names.
    Local(u64, u32, u32),
    /// What the runtime scans of a goroutine besides its frames (`sched.ctxt`,
    /// `_defer`, `_panic`, a running thread's registers, the unwalked stack):
    /// goroutine id.
    Goroutine(u64),
}

/// A node of the recorded object graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The one root above all roots (node 0).
    Top,
    /// A root.
    Root(RootKey),
    /// A heap object: span index and slot.
    Object(u32, u64),
}

/// Bound on the nodes of a recorded graph (ids are `u32`).
pub const MAX_GRAPH_NODES: usize = u32::MAX as usize - 1;

/// The object graph as the marker discovers it: node ids in discovery
/// order, node 0 the top, and one edge per pointer word followed (from
/// the root or object scanned to the object pointed into; duplicates kept).
#[derive(Debug, Default)]
pub struct Recorder {
    /// Nodes by id.
    pub nodes: Vec<Node>,
    /// (from, to) node ids.
    pub edges: Vec<(u32, u32)>,
    /// Object ids per span and slot, allocated for a span when one of its
    /// objects is first reached (`u32::MAX`: not reached).
    ids: Vec<Vec<u32>>,
    roots: HashMap<RootKey, u32>,
    /// Names of the package variables [`RootKey::Global`] indexes.
    pub globals: Vec<String>,
    /// Names of the frame variables [`RootKey::Local`] indexes, each once.
    pub locals: Vec<String>,
    local_ids: HashMap<String, u32>,
    /// The node whose words are being scanned.
    pub(super) source: u32,
    /// Nodes were dropped at [`MAX_GRAPH_NODES`].
    pub truncated: bool,
}

impl Recorder {
    fn new(spans: usize) -> Self {
        Recorder {
            nodes: vec![Node::Top],
            ids: vec![Vec::new(); spans],
            ..Recorder::default()
        }
    }

    /// The index of frame variable name `name` in [`Recorder::locals`].
    pub(super) fn local_name(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.local_ids.get(name) {
            return i;
        }
        let i = u32::try_from(self.locals.len()).unwrap_or(u32::MAX);
        self.locals.push(name.to_string());
        self.local_ids.insert(name.to_string(), i);
        i
    }

    fn push(&mut self, node: Node) -> Option<u32> {
        if self.nodes.len() >= MAX_GRAPH_NODES {
            self.truncated = true;
            return None;
        }
        self.nodes.push(node);
        u32::try_from(self.nodes.len() - 1).ok()
    }

    /// The id of the object at (span, slot), made when first seen.
    fn object(&mut self, idx: u32, slot: u64, nelems: u64) -> Option<u32> {
        let ids = self.ids.get_mut(idx as usize)?;
        if ids.is_empty() {
            *ids = vec![u32::MAX; usize::try_from(nelems).ok()?];
        }
        let at = usize::try_from(slot).ok()?;
        match *ids.get(at)? {
            u32::MAX => {
                let id = self.push(Node::Object(idx, slot))?;
                if let Some(s) = self.ids.get_mut(idx as usize).and_then(|v| v.get_mut(at)) {
                    *s = id;
                }
                Some(id)
            }
            id => Some(id),
        }
    }

    /// A recorder holding exactly `nodes` and `edges` (tests of the graph code).
    #[cfg(test)]
    pub(super) fn for_test(nodes: Vec<Node>, edges: Vec<(u32, u32)>) -> Self {
        Recorder {
            nodes,
            edges,
            ..Recorder::default()
        }
    }

    /// The id of an object already reached.
    pub fn object_id(&self, idx: u32, slot: u64) -> Option<u32> {
        let id = *self
            .ids
            .get(idx as usize)?
            .get(usize::try_from(slot).ok()?)?;
        (id != u32::MAX).then_some(id)
    }
}

/// Pointers into the goroutine stack being scanned.
#[derive(Debug, Default)]
pub(super) struct StackSink {
    /// `[lo, hi)` of the stack.
    pub lo: u64,
    pub hi: u64,
    /// Pointers found so far and not yet looked up, each with the node
    /// whose word held it (when recording: a stack object is charged to
    /// the slot that reached it).
    pub ptrs: Vec<(u64, u32)>,
}

/// The named variables of the frame being scanned, for a recording
/// marker: a pointer word inside one is charged to that variable's root,
/// any other word to the frame's.
#[derive(Debug, Default)]
pub(super) struct FrameSlots {
    /// `(lo, hi, root)`, sorted by `lo`, not overlapping.
    pub slots: Vec<(u64, u64, RootKey)>,
    /// The frame's own root.
    pub frame: Option<RootKey>,
}

impl FrameSlots {
    /// The root of the named variable holding `addr`, if one does.
    pub(super) fn slot_at(slots: &[(u64, u64, RootKey)], addr: u64) -> Option<RootKey> {
        let i = slots.partition_point(|s| s.0 <= addr);
        match i.checked_sub(1).and_then(|i| slots.get(i)) {
            Some(&(_, hi, key)) if addr < hi => Some(key),
            _ => None,
        }
    }

    fn root_at(&self, addr: u64) -> Option<RootKey> {
        Self::slot_at(&self.slots, addr).or(self.frame)
    }
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
            hidden: Rc::new(HashMap::new()),
            span_bits: HashMap::new(),
            arenas: HashMap::new(),
            marked: 0,
            budget,
            exhausted: false,
            stack_sink: None,
            recorder: None,
            frame_slots: None,
            goroutine_slots: Vec::new(),
        }
    }

    /// Forgets every mark and the budget spent, keeping what it has read
    /// of the heap (span bitmaps, arenas) and the hidden words: one marker
    /// then serves many small walks over the same heap.
    pub fn restart(&mut self) {
        match &mut self.marks {
            Marks::Set(s) => s.clear(),
            Marks::Bits(b) => b.iter_mut().for_each(|v| v.fill(0)),
        }
        self.work.clear();
        self.marked = 0;
        self.exhausted = false;
    }

    /// A whole-heap marker that also records the object graph (see
    /// [`Recorder`]); roots are named through [`Marker::set_root`].
    pub fn recording(model: &'m HeapModel<'r, 't>) -> Self {
        let mut m = Self::whole(model);
        m.recorder = Some(Recorder::new(model.heap.spans.len()));
        m
    }

    /// Pointers scanned from now on come from root `key` (when recording).
    pub fn set_root(&mut self, key: RootKey) {
        let Some(rec) = self.recorder.as_mut() else {
            return;
        };
        let id = match rec.roots.get(&key) {
            Some(&id) => id,
            None => {
                let Some(id) = rec.push(Node::Root(key)) else {
                    return;
                };
                rec.roots.insert(key, id);
                rec.edges.push((0, id));
                id
            }
        };
        rec.source = id;
    }

    /// Whether node `id` is a frame variable's root (when recording).
    pub(super) fn is_local_root(&self, id: u32) -> bool {
        self.recorder.as_ref().is_some_and(|r| {
            matches!(
                r.nodes.get(id as usize),
                Some(Node::Root(RootKey::Local(..)))
            )
        })
    }

    /// Pointers scanned from now on come from node `id` (when recording).
    pub(super) fn set_source(&mut self, id: u32) {
        if let Some(rec) = self.recorder.as_mut() {
            rec.source = id;
        }
    }

    /// The recorded graph (when recording), leaving the marker without it.
    pub fn take_recorder(&mut self) -> Option<Recorder> {
        self.recorder.take()
    }

    /// Never follow the word at `addr` (an interior address of some object).
    pub fn hide(&mut self, addr: u64) {
        if let Some((idx, slot)) = self.model.heap.object_of(addr) {
            if let Some(s) = self.model.heap.spans.get(idx) {
                let base = s.object(slot);
                Rc::make_mut(&mut self.hidden)
                    .entry(base)
                    .or_default()
                    .push(addr - base);
            }
        }
    }

    /// The hidden words, to give other markers of the same heap.
    pub fn share_hidden(&self) -> Rc<HashMap<u64, Vec<u64>>> {
        Rc::clone(&self.hidden)
    }

    /// Hides what `hidden` (from [`Marker::share_hidden`]) hides, in place
    /// of this marker's own hidden words.
    pub fn set_hidden(&mut self, hidden: Rc<HashMap<u64, Vec<u64>>>) {
        self.hidden = hidden;
    }

    /// Calls `f(span index, slot)` for every object marked.
    pub fn for_each_marked(&self, mut f: impl FnMut(u32, u64)) {
        match &self.marks {
            Marks::Set(set) => set.iter().for_each(|&(idx, slot)| f(idx, slot)),
            Marks::Bits(bits) => {
                for (idx, words) in bits.iter().enumerate() {
                    for (w, &word) in words.iter().enumerate() {
                        let mut rest = word;
                        while rest != 0 {
                            let bit = u64::from(rest.trailing_zeros());
                            rest &= rest - 1;
                            f(idx as u32, w as u64 * 64 + bit);
                        }
                    }
                }
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
        if let Some(rec) = self.recorder.as_mut() {
            let nelems = self
                .model
                .heap
                .spans
                .get(idx as usize)
                .map_or(0, |s| s.nelems);
            if let Some(id) = rec.object(idx, slot, nelems) {
                rec.edges.push((rec.source, id));
            }
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
        // The root last set from the frame's slots: set again only on change.
        let mut slot_root: Option<RootKey> = None;
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
                if p < 4096 {
                    continue;
                }
                let key = self.frame_slots.as_ref().and_then(|f| f.root_at(lo + off));
                if let Some(key) = key.filter(|&k| Some(k) != slot_root) {
                    self.set_root(key);
                    slot_root = Some(key);
                }
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
        let source = self.recorder.as_ref().map_or(0, |r| r.source);
        match &mut self.stack_sink {
            Some(sink) if p >= sink.lo && p < sink.hi => sink.ptrs.push((p, source)),
            _ => self.mark(p),
        }
    }

    /// Scans queued objects until none is left.
    pub fn drain(&mut self) {
        while let Some((idx, slot)) = self.work.pop() {
            let Some(s) = self.model.heap.spans.get(idx as usize) else {
                continue;
            };
            if let Some(rec) = self.recorder.as_mut() {
                match rec.object_id(idx, slot) {
                    Some(id) => rec.source = id,
                    // Dropped at the node bound: its edges cannot be named.
                    None => continue,
                }
            }
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
            match self.arena_pointer_mask(base, end) {
                Some(mask) => self.scan_words(
                    base,
                    end,
                    &|w| {
                        mask.get((w / 8) as usize)
                            .is_some_and(|b| b >> (w % 8) & 1 != 0)
                    },
                    &skip,
                ),
                None => self.scan_words(base, end, &|_| true, &skip),
            }
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

    /// Go 1.21's pointer words of `[base, end)` (one bit per word, from the
    /// object's first word) from the heap arenas' bitmaps, as the runtime's
    /// `heapBitsForAddr` reads them: bit set = pointer; once a bitmap word's
    /// `noMorePtrs` bit is set the object has no pointer past that word.
    /// `None` when the arenas or their offsets cannot be read (the caller
    /// then scans conservatively).
    fn arena_pointer_mask(&mut self, base: u64, end: u64) -> Option<Vec<u8>> {
        let l = &self.model.layout;
        let bitmap_off = l.heap_arena.opt("bitmap")?;
        let no_more_off = l.heap_arena.opt("noMorePtrs")?;
        let words = end.checked_sub(base)? / 8;
        let mut mask = vec![0u8; usize::try_from(words.div_ceil(8)).ok()?];
        let mut done = 0u64;
        while done < words {
            let addr = base + done * 8;
            let arena = self.heap_arena(addr)?;
            let arena_word = (addr / 8) % ARENA_WORDS;
            let first_bitmap_word = arena_word / 64;
            let shift = arena_word % 64;
            let here = (ARENA_WORDS - arena_word).min(words - done);
            let bitmap_words = (shift + here).div_ceil(64);
            let bitmap = self
                .mem()
                .read_vec(
                    arena + bitmap_off + first_bitmap_word * 8,
                    usize::try_from(bitmap_words * 8).ok()?,
                )
                .ok()?;
            let nmp_first = first_bitmap_word / 8;
            let nmp_last = (first_bitmap_word + bitmap_words - 1) / 8;
            let no_more = self
                .mem()
                .read_vec(
                    arena + no_more_off + nmp_first,
                    usize::try_from(nmp_last - nmp_first + 1).ok()?,
                )
                .ok()?;
            for k in 0..bitmap_words {
                let at = usize::try_from(k * 8).ok()?;
                let mut b = [0u8; 8];
                b.copy_from_slice(bitmap.get(at..at + 8)?);
                let bits = u64::from_le_bytes(b);
                let from = if k == 0 { shift } else { 0 };
                for bit in from..64 {
                    let w = done + k * 64 + bit - shift;
                    if w >= done + here {
                        break;
                    }
                    if bits >> bit & 1 != 0 {
                        if let Some(m) = mask.get_mut((w / 8) as usize) {
                            *m |= 1 << (w % 8);
                        }
                    }
                }
                let i = first_bitmap_word + k;
                let flag = no_more.get(usize::try_from(i / 8 - nmp_first).ok()?)?;
                if flag >> (i % 8) & 1 != 0 && k * 64 + 64 - shift < here {
                    return Some(mask);
                }
            }
            done += here;
        }
        Some(mask)
    }

    /// The `heapArena` holding `addr` (`mheap_.arenas[0][index]`; the L1
    /// table has one entry on linux/amd64), cached per arena.
    fn heap_arena(&mut self, addr: u64) -> Option<u64> {
        let index = addr.wrapping_sub(ARENA_BASE_OFFSET) >> ARENA_SHIFT;
        if let Some(&a) = self.arenas.get(&index) {
            return a;
        }
        let found = (|| {
            if index >= 1 << ARENA_L2_BITS {
                return None;
            }
            let mheap = self.model.rt.global("runtime.mheap_")?;
            let l2 = self
                .mem()
                .read_u64(mheap.wrapping_add(self.model.layout.mheap.opt("arenas")?))
                .ok()?;
            let arena = self.mem().read_u64(l2.checked_add(index * 8)?).ok()?;
            (arena != 0).then_some(arena)
        })();
        self.arenas.insert(index, found);
        found
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
            if self.recorder.is_some() {
                self.scan_segment_by_symbol(lo, hi, mask.as_deref(), field == "gcbssmask");
                continue;
            }
            match mask {
                Some(m) => self.scan_masked(lo, hi, &m),
                None => self.scan_conservative(lo, hi),
            }
        }
    }

    /// Scans `[lo, hi)` of data or bss one package variable at a time, each
    /// as its own root (`.symtab` object symbols; words no symbol covers
    /// form one root per segment). `mask` as in [`Marker::scan_masked`].
    fn scan_segment_by_symbol(&mut self, lo: u64, hi: u64, mask: Option<&[u8]>, bss: bool) {
        let symbols = self.global_symbols(lo, hi);
        let scan = |m: &mut Self, a: u64, b: u64| {
            let a = a.next_multiple_of(8);
            if b <= a {
                return;
            }
            match mask {
                Some(mask) => {
                    let first = (a - lo) / 8;
                    m.scan_words(
                        a,
                        b,
                        &|w| {
                            let w = first + w;
                            mask.get((w / 8) as usize)
                                .is_some_and(|byte| byte >> (w % 8) & 1 != 0)
                        },
                        &[],
                    );
                }
                None => m.scan_words(a, b, &|_| true, &[]),
            }
        };
        let mut at = lo;
        for (start, end, index) in symbols {
            if start > at {
                self.set_root(RootKey::Segment(bss));
                scan(self, at, start);
            }
            self.set_root(RootKey::Global(index));
            scan(self, start.max(at), end);
            at = at.max(end);
        }
        if at < hi {
            self.set_root(RootKey::Segment(bss));
            scan(self, at, hi);
        }
    }

    /// The `.symtab` object symbols inside `[lo, hi)` (runtime addresses),
    /// sorted, overlaps clipped, as (start, end, index into the recorder's
    /// global names); names are added to the recorder.
    fn global_symbols(&mut self, lo: u64, hi: u64) -> Vec<(u64, u64, u32)> {
        let target = self.model.rt.target();
        let bias = target.bias();
        let mut found: Vec<(u64, u64, &str)> = target
            .binary()
            .symbols()
            .iter()
            .filter_map(|(name, sym)| {
                let start = sym.addr.wrapping_add(bias);
                let end = start.checked_add(sym.size)?;
                (sym.size > 0 && start >= lo && end <= hi).then_some((start, end, name.as_str()))
            })
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        let Some(rec) = self.recorder.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(found.len());
        let mut at = lo;
        for (start, end, name) in found {
            if end <= at {
                continue;
            }
            let Ok(index) = u32::try_from(rec.globals.len()) else {
                break;
            };
            rec.globals.push(name.to_string());
            out.push((start.max(at), end, index));
            at = end;
        }
        out
    }

    /// Scans one goroutine stack from `sp` to `hi`, conservatively.
    pub fn scan_stack(&mut self, sp: u64, hi: u64) {
        if sp == 0 || hi <= sp || hi - sp > MAX_STACK_BYTES {
            return;
        }
        self.scan_conservative(sp, hi);
    }
}
