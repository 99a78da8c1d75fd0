//! Goroutine stacks as roots, scanned the way the runtime's `scanstack`
//! scans them (mgcmark.go `scanstack`/`scanframeworker`, stkframe.go
//! `getStackMap`), so that a dead slot still holding a stale pointer keeps
//! nothing alive:
//!
//! - Per physical frame, the bitmaps of `FUNCDATA_LocalsPointerMaps` and
//!   `FUNCDATA_ArgsPointerMaps` chosen by `PCDATA_StackMapIndex` at the
//!   frame's continuation PC minus one (its call instruction; the entry
//!   map at the entry). Locals end at `varp = fp - 8` (the return
//!   address), less 8 more for the saved frame pointer when the frame has
//!   locals; arguments start at `argp = fp`.
//! - A frame stopped by a trap (its callee is `runtime.sigpanic`) continues
//!   at its `deferreturn` call, or is dead (nothing scanned) without one.
//! - `runtime.asyncPreempt` and `runtime.debugCallV2` frames, and the frame
//!   they interrupted (stopped at an arbitrary instruction, its registers
//!   spilled in the injected frame), are scanned conservatively: every
//!   aligned word of the frame and of its arguments.
//! - Stack objects (`FUNCDATA_StackObjects`, address-taken variables) are
//!   scanned only when a pointer into them was found (from a frame, from
//!   another stack object, or from the `g`: `sched.ctxt`, `_panic`, and
//!   the `fn` and `link` words of the `_defer` records, whose closures
//!   may live on the stack), with their type's pointer mask from
//!   rodata, as the runtime does; a GC-program mask (Go ≤ 1.23) or an
//!   unreadable one makes rdlv scan the object's pointer words
//!   conservatively.
//!
//! Where the runtime would have a precise answer but rdlv cannot get one,
//! it scans more, never less, so that a leak is never reported without
//! evidence: a frame whose function lacks a map it needs or whose map is
//! malformed is scanned conservatively (this is also where assembly
//! functions with a frame and no maps end up); reflect stubs (argument
//! size unknown) have their frame and their caller's outgoing area scanned
//! conservatively; the part of the stack above the last frame the
//! unwinder reached is scanned conservatively unless that frame is a
//! top frame (`goexit`); and a goroutine running on a thread when the
//! snapshot was taken (not at a safe point: no map describes its innermost
//! frame, and its registers were not saved to the stack) is scanned
//! conservatively as a whole, with its thread's general registers.

use crate::pclntab::{func_flag, Bitmap, Pclntab, StackObjectRecord, ARGS_SIZE_UNKNOWN};
use crate::runtime::goroutine::G_RUNNING;
use crate::runtime::{Goroutine, PhysFrame};

use super::graph::{FrameSlots, Marker, RootKey, StackSink, MAX_STACK_BYTES};
use crate::value::frame::FrameSlotFinder;

/// Bound on the size of a `g` read for pointers into its stack.
const MAX_G_BYTES: u64 = 4096;
/// Bound on `_defer` records followed from one `g`.
const MAX_DEFERS: usize = 1 << 20;
/// Bound on pointers into one stack looked up (a stack of 1 GiB holds
/// 2^27 words; more lookups than that means a loop).
const MAX_STACK_POINTERS: usize = 1 << 27;

/// How a goroutine's stack was scanned (for diagnostics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackScanStats {
    /// Frames scanned with stack maps.
    pub precise_frames: usize,
    /// Frames scanned conservatively.
    pub conservative_frames: usize,
    /// Stack objects found in the frames.
    pub objects: usize,
    /// Stack objects reached and scanned.
    pub objects_scanned: usize,
    /// The whole stack was scanned conservatively.
    pub whole_stack_conservative: bool,
}

/// A stack object placed in its frame.
struct PlacedObject {
    addr: u64,
    rec: StackObjectRecord,
    scanned: bool,
    /// Index of the physical frame holding it (naming roots).
    phys: usize,
    /// Logical index of that frame (naming roots).
    frame: u32,
}

/// The logical frame index (as `bt` numbers frames) of physical frame
/// `phys`'s own function: its outermost logical frame.
fn logical_index(g: &Goroutine, phys: usize) -> u32 {
    let at = g
        .logical
        .iter()
        .rposition(|l| l.phys == phys)
        .unwrap_or(phys);
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// Whether a function is an injected call that saves the registers of the
/// frame it interrupted.
fn saves_registers(name: &str) -> bool {
    matches!(name, "runtime.asyncPreempt" | "runtime.debugCallV2")
}

/// `varp` of a frame on amd64: below the return address, and below the
/// saved frame pointer when the frame has locals.
fn varp(f: &PhysFrame) -> u64 {
    let v = f.fp.wrapping_sub(8);
    if v > f.sp {
        v - 8
    } else {
        v
    }
}

impl Marker<'_, '_, '_> {
    /// Names the stack variables of `g`'s frames for the next
    /// [`Marker::scan_goroutine`] of it (recording markers only): a
    /// pointer held by one is then charged to a root of its own
    /// (`goroutine 41 frame 2 main.handle.buf`). `finder` gives each
    /// logical frame's variables that DWARF places in memory; overlapping
    /// ones (variables of scopes sharing a slot) keep the first.
    pub fn name_frame_slots(&mut self, g: &Goroutine, finder: &mut FrameSlotFinder<'_>) {
        let Some(rec) = self.recorder.as_mut() else {
            return;
        };
        let goid = g.g.goid;
        let mut per_phys: Vec<Vec<(u64, u64, RootKey)>> = vec![Vec::new(); g.frames.len()];
        for (li, l) in g.logical.iter().enumerate() {
            let (Some(pf), Some(slots)) = (g.frames.get(l.phys), per_phys.get_mut(l.phys)) else {
                continue;
            };
            let li = u32::try_from(li).unwrap_or(u32::MAX);
            let stack = g.g.stack_lo..g.g.stack_hi;
            for s in finder.slots((pf.pc, pf.sym_pc), l.inline_depth, pf.fp, stack) {
                slots.push((
                    s.addr,
                    s.addr + s.size,
                    RootKey::Local(goid, li, rec.local_name(&s.name)),
                ));
            }
        }
        for slots in &mut per_phys {
            slots.sort_by_key(|s| s.0);
            let mut end = 0;
            slots.retain(|s| {
                let keep = s.0 >= end;
                if keep {
                    end = s.1;
                }
                keep
            });
        }
        self.goroutine_slots = per_phys;
    }

    /// Scans one goroutine's stack as a root (see the module docs).
    pub fn scan_goroutine(&mut self, g: &Goroutine) -> StackScanStats {
        let mut stats = StackScanStats::default();
        // Named for this goroutine only, whatever path the scan takes.
        let named = std::mem::take(&mut self.goroutine_slots);
        let (lo, hi) = super::leaks::stack_range(g);
        if lo == 0 || hi <= lo || hi - lo > MAX_STACK_BYTES {
            return stats;
        }
        let tab = self.model().rt.tab();
        let goid = g.g.goid;
        self.set_root(RootKey::Goroutine(goid));
        if g.g.status() == G_RUNNING || g.frames.is_empty() {
            stats.whole_stack_conservative = true;
            self.scan_conservative(lo, hi);
            if g.g.status() == G_RUNNING {
                self.scan_thread_registers(g);
            }
            return stats;
        }
        self.stack_sink = Some(StackSink {
            lo: g.g.stack_lo,
            hi: g.g.stack_hi,
            ptrs: Vec::new(),
        });
        let mut objects = Vec::new();
        let mut conservative = false;
        let mut callee_sigpanic = false;
        for (i, f) in g.frames.iter().enumerate() {
            let caller_varp = g.frames.get(i + 1).map(varp).unwrap_or(hi);
            let frame = logical_index(g, i);
            self.set_root(RootKey::Frame(goid, frame));
            self.frame_slots = named.get(i).filter(|s| !s.is_empty()).map(|s| FrameSlots {
                slots: s.clone(),
                frame: Some(RootKey::Frame(goid, frame)),
            });
            let func = tab.find_func(f.info.entry);
            let name = &*f.info.name;
            let injected = saves_registers(name);
            let trapped = std::mem::replace(&mut callee_sigpanic, name == "runtime.sigpanic");
            let Some(func) = func else {
                self.scan_frame_conservatively(f, None, caller_varp);
                stats.conservative_frames += 1;
                continue;
            };
            if conservative || injected {
                self.scan_frame_conservatively(f, Some(func.args_size()), caller_varp);
                stats.conservative_frames += 1;
                conservative = injected;
                continue;
            }
            let continpc = if trapped {
                match func.deferreturn() {
                    0 => continue,
                    d => func.entry().wrapping_add(u64::from(d)).wrapping_add(1),
                }
            } else {
                f.pc
            };
            if func.args_size() == ARGS_SIZE_UNKNOWN {
                self.scan_frame_conservatively(f, None, caller_varp);
                stats.conservative_frames += 1;
                continue;
            }
            let v = varp(f);
            match func.frame_maps(continpc, v.saturating_sub(f.sp)) {
                Ok(maps) => {
                    match maps.locals {
                        Some(bm) => self.scan_bitmap(v.wrapping_sub(u64::from(bm.nbit) * 8), &bm),
                        None => self.scan_conservative(f.sp, v),
                    }
                    match maps.args {
                        Some(bm) => self.scan_bitmap(f.argp(), &bm),
                        None => self.scan_args_conservatively(f, func.args_size()),
                    }
                    if maps.locals.is_some() && maps.args.is_some() {
                        stats.precise_frames += 1;
                    } else {
                        stats.conservative_frames += 1;
                    }
                    for rec in maps.objects {
                        if let Some(addr) = rec.addr(v, f.argp()).filter(|&a| a >= f.sp) {
                            objects.push(PlacedObject {
                                addr,
                                rec,
                                scanned: false,
                                phys: i,
                                frame,
                            });
                        }
                    }
                }
                Err(_) => {
                    self.scan_frame_conservatively(f, Some(func.args_size()), caller_varp);
                    stats.conservative_frames += 1;
                }
            }
        }
        self.frame_slots = None;
        self.set_root(RootKey::Goroutine(goid));
        if let Some(last) = g.frames.last() {
            if last.info.flag & func_flag::TOP_FRAME == 0 && last.fp < hi {
                self.scan_conservative(last.fp.max(lo), hi);
                stats.conservative_frames += 1;
            }
        }
        self.scan_g_roots(g);
        stats.objects = objects.len();
        stats.objects_scanned = self.scan_stack_objects(tab, &mut objects, &named, goid);
        self.stack_sink = None;
        stats
    }

    /// The general registers of the thread running `g`, each taken as a
    /// possible pointer: between safe points the only copy of a pointer
    /// can be in a register.
    fn scan_thread_registers(&mut self, g: &Goroutine) {
        let Some(tid) = g.thread else { return };
        let meta = self.model().rt.target().snapshot().metadata();
        let Some(t) = meta.threads.iter().find(|t| t.tid == tid) else {
            return;
        };
        let r = &t.regs;
        for p in [
            r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx,
            r.rdx, r.rsi, r.rdi,
        ] {
            self.take_pointer(p);
        }
    }

    fn scan_bitmap(&mut self, base: u64, bm: &Bitmap<'_>) {
        if bm.nbit == 0 {
            return;
        }
        let end = base.saturating_add(u64::from(bm.nbit) * 8);
        self.scan_words(
            base,
            end,
            &|w| u32::try_from(w).is_ok_and(|w| bm.bit(w)),
            &[],
        );
    }

    fn scan_args_conservatively(&mut self, f: &PhysFrame, args: i32) {
        if let Ok(n) = u64::try_from(args) {
            if n > 0 && n <= MAX_STACK_BYTES {
                self.scan_conservative(f.argp(), f.argp().saturating_add(n));
            }
        }
    }

    /// The frame's locals (and outgoing area) conservatively, with its
    /// arguments: `args` bytes of them, or when unknown everything up to
    /// the caller's `varp`.
    fn scan_frame_conservatively(&mut self, f: &PhysFrame, args: Option<i32>, caller_varp: u64) {
        let v = varp(f);
        match args {
            Some(a) if a != ARGS_SIZE_UNKNOWN => {
                if v > f.sp {
                    self.scan_conservative(f.sp, v);
                }
                self.scan_args_conservatively(f, a);
            }
            _ => {
                if caller_varp > f.sp && caller_varp - f.sp <= MAX_STACK_BYTES {
                    self.scan_conservative(f.sp, caller_varp);
                }
            }
        }
    }

    /// What `scanstack` takes from the `g` besides its frames:
    /// `sched.ctxt`, and for every record on the `_defer` list its `fn`
    /// (which can be a closure on the stack) and `link` words and, for a
    /// heap record, the record itself; `_panic` points at a stack object.
    /// Without the offsets (no DWARF and no table), every word of the `g`
    /// that points into its stack is taken instead.
    fn scan_g_roots(&mut self, g: &Goroutine) {
        let model = self.model();
        let mem = model.mem();
        let l = &model.layout;
        let offsets = (|| {
            Some((
                l.g.opt("_defer")?,
                l.g.opt("_panic")?,
                l.g.opt("sched.ctxt")?,
                l.defer.opt("fn")?,
                l.defer.opt("link")?,
                l.defer.opt("heap")?,
            ))
        })();
        let Some((g_defer, g_panic, g_ctxt, d_fn, d_link, d_heap)) = offsets else {
            self.collect_g_stack_pointers(g);
            return;
        };
        let word = |a: u64| mem.read_u64(a).unwrap_or(0);
        self.take_pointer(word(g.g.addr.wrapping_add(g_ctxt)));
        self.take_pointer(word(g.g.addr.wrapping_add(g_panic)));
        let mut d = word(g.g.addr.wrapping_add(g_defer));
        let mut seen = std::collections::HashSet::new();
        while d != 0 && seen.len() < MAX_DEFERS && seen.insert(d) {
            self.take_pointer(word(d.wrapping_add(d_fn)));
            let link = word(d.wrapping_add(d_link));
            self.take_pointer(link);
            let mut heap = [0u8; 1];
            if mem.read(d.wrapping_add(d_heap), &mut heap).is_ok() && heap[0] != 0 {
                self.take_pointer(d);
            }
            d = link;
        }
    }

    /// Every word of the `g` that points into its own stack.
    fn collect_g_stack_pointers(&mut self, g: &Goroutine) {
        let size = self.model().layout.g.size;
        let size = if size == 0 || size > MAX_G_BYTES {
            MAX_G_BYTES
        } else {
            size
        };
        let Ok(bytes) = self.model().mem().read_vec(g.g.addr, size as usize) else {
            return;
        };
        let source = self.recorder.as_ref().map_or(0, |r| r.source);
        let Some(sink) = self.stack_sink.as_mut() else {
            return;
        };
        for w in bytes.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            let p = u64::from_le_bytes(b);
            if p >= sink.lo && p < sink.hi {
                sink.ptrs.push((p, source));
            }
        }
    }

    /// Scans every stack object a pointer into the stack reaches, until no
    /// new one is reached; returns how many were scanned. When recording,
    /// an object is charged to the named variable it is (`named`: each
    /// physical frame's), else to the named variable whose word reached it
    /// (the pointers are taken last found first, so "a" word), else to its
    /// frame.
    fn scan_stack_objects(
        &mut self,
        tab: &Pclntab,
        objects: &mut [PlacedObject],
        named: &[Vec<(u64, u64, RootKey)>],
        goid: u64,
    ) -> usize {
        objects.sort_by_key(|o| o.addr);
        let (lo, hi) = match &self.stack_sink {
            Some(s) => (s.lo, s.hi),
            None => return 0,
        };
        let mut scanned = 0;
        let mut looked_up = 0usize;
        while let Some((p, source)) = self.stack_sink.as_mut().and_then(|s| s.ptrs.pop()) {
            looked_up += 1;
            if looked_up > MAX_STACK_POINTERS {
                break;
            }
            // The last object starting at or below p.
            let i = objects.partition_point(|o| o.addr <= p);
            let Some(o) = i.checked_sub(1).and_then(|i| objects.get_mut(i)) else {
                continue;
            };
            if o.scanned || p >= o.addr.saturating_add(u64::from(o.rec.size)) {
                continue;
            }
            o.scanned = true;
            scanned += 1;
            let variable = named
                .get(o.phys)
                .and_then(|s| FrameSlots::slot_at(s, o.addr));
            let start = o.addr;
            let end = start
                .saturating_add(u64::from(o.rec.ptrdata.min(o.rec.size)))
                .min(hi);
            if start < lo || end <= start {
                continue;
            }
            match variable {
                Some(key) => self.set_root(key),
                None if self.is_local_root(source) => self.set_source(source),
                None => self.set_root(RootKey::Frame(goid, o.frame)),
            }
            let words = (end - start).div_ceil(8);
            let mask = (!o.rec.gc_prog)
                .then(|| tab.rodata_bytes(o.rec.gcdataoff, words.div_ceil(8) as usize))
                .flatten()
                .filter(|m| m.len() as u64 >= words.div_ceil(8));
            match mask {
                Some(m) => {
                    let m = m.to_vec();
                    self.scan_masked(start, end, &m);
                }
                None => self.scan_conservative(start, end),
            }
        }
        scanned
    }
}
