//! Goroutine listing and the exact text of `runtime.Stack(buf, true)`
//! (traceback level 1): header with status, minutes and `locked to thread`;
//! logical frames with runtime frames and wrappers hidden as Go hides them;
//! arguments from FUNCDATA ArgInfo with `?` for possibly-dead spill slots;
//! `...N frames elided...`; `created by ... in goroutine N`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::Result;
use crate::pclntab::{funcdata, pcdata};

use super::goroutine::{
    ThreadRegs, G, G_DEAD, G_DEAD_EXTRA, G_LEAKED, G_RUNNING, G_SYSCALL, G_WAITING,
};
use super::model::Runtime;
use super::unwind::PhysFrame;

/// `allgs` entries unwound together when streaming goroutines: enough to
/// keep both cores busy, small enough that a batch of stacks stays a few MB.
pub const GOROUTINE_BATCH: usize = 8192;
/// Frames printed before and after an elision (`tracebackInnerFrames`/`OuterFrames`).
const TRACEBACK_INNER: usize = 50;
const TRACEBACK_OUTER: usize = 50;
/// Bytes of ArgInfo read: `(TraceArgsMaxDepth*3+2)*TraceArgsLimit + 1`.
const ARG_INFO_MAX: usize = 171;
const TRACE_ARGS_END_SEQ: u8 = 0xff;
const TRACE_ARGS_START_AGG: u8 = 0xfe;
const TRACE_ARGS_END_AGG: u8 = 0xfd;
const TRACE_ARGS_DOTDOTDOT: u8 = 0xfc;
const TRACE_ARGS_OFFSET_TOO_LARGE: u8 = 0xfb;
/// Bound on ancestors followed (GODEBUG caps tracebackancestors at 1000).
const MAX_ANCESTORS: u64 = 1000;
/// Size of `runtime.ancestorInfo` ({pcs []uintptr; goid uint64; gopc uintptr}).
const ANCESTOR_INFO_SIZE: u64 = 40;
/// `fingRunningFinalizer` bit of `runtime.fingStatus`.
const FING_RUNNING_FINALIZER: u32 = 2;

/// One logical frame (an inlined call or a physical function).
#[derive(Debug, Clone)]
pub struct LogicalFrame {
    /// Function name as in the binary (generic shapes not yet replaced).
    pub name: Arc<str>,
    /// Source file.
    pub file: Arc<str>,
    /// Line.
    pub line: u32,
    /// Inlined into the physical frame `phys`.
    pub inlined: bool,
    /// Index of the physical frame in [`Goroutine::frames`].
    pub phys: usize,
    /// `_func.funcID` of the physical function; 0 for inlined frames.
    pub func_id: u8,
    /// Depth within its physical frame: 0 for the physical function,
    /// 1.. for inlined calls counted from the physical one.
    pub inline_depth: u32,
}

/// A goroutine with its stack, ready for printing.
#[derive(Debug, Clone)]
pub struct Goroutine {
    /// The decoded g.
    pub g: G,
    /// Thread (TID) of the M running it, if any.
    pub thread: Option<u32>,
    /// Whether the runtime counts it as a system goroutine.
    pub system: bool,
    /// Physical frames, innermost first.
    pub frames: Vec<PhysFrame>,
    /// Logical frames, innermost first; shared between goroutines with
    /// the same stack PCs.
    pub logical: Arc<[LogicalFrame]>,
}

/// Thread facts needed while listing goroutines.
#[derive(Debug, Default)]
pub struct ThreadMap {
    /// g address → registers of the thread currently executing it on its own stack.
    pub running: HashMap<u64, ThreadRegs>,
    /// M address → thread id.
    pub m_tid: HashMap<u64, u32>,
}

impl Runtime<'_> {
    /// Which thread runs which goroutine.
    pub fn thread_map(&self) -> ThreadMap {
        let mut map = ThreadMap::default();
        for t in self.threads() {
            let Some(m) = &t.m else { continue };
            map.m_tid.insert(m.addr, t.tid);
            if m.curg == 0 {
                continue;
            }
            let Ok(curg) = self.read_g(m.curg) else {
                continue;
            };
            let on_curg_stack = |sp: u64| sp >= curg.stack_lo && sp < curg.stack_hi;
            if t.tls_g == Some(m.curg) && on_curg_stack(t.regs.sp) {
                map.running.insert(m.curg, t.regs);
                continue;
            }
            // A thread handling a signal (async preemption, SIGPROF) runs on
            // the gsignal stack and leaves its goroutine in `_Grunning` with
            // a stale `g.sched`; the goroutine stands where the kernel's
            // signal frame says, if that is on its own stack (not on g0's,
            // where `systemstack` has set `g.sched`).
            if t.tls_g == Some(m.curg) || t.tls_g == Some(m.gsignal) {
                if let Some(regs) = self.interrupted_regs(&t.regs) {
                    if on_curg_stack(regs.sp) {
                        map.running.insert(m.curg, regs);
                    }
                    continue;
                }
            }
            if t.tls_g == Some(m.curg) {
                map.running.insert(m.curg, t.regs);
            }
        }
        map
    }

    /// Every goroutine of `allgs` that is not dead, in `allgs` order,
    /// unwound in parallel. Holds every stack at once: listings use
    /// [`Runtime::for_each_goroutine_batch`] instead.
    pub fn goroutines(&self) -> Result<Vec<Goroutine>> {
        let mut all = Vec::new();
        self.for_each_goroutine_batch(
            GOROUTINE_BATCH,
            Some,
            |batch: Vec<Goroutine>| -> Result<()> {
                all.extend(batch);
                Ok(())
            },
        )?;
        Ok(all)
    }

    /// Streams the goroutines of `allgs` that are not dead, in `allgs`
    /// order: each batch of `batch_size` entries is read, unwound and passed
    /// through `map` in parallel (a goroutine is dropped right after `map`),
    /// then the kept results go to `sink` in order. Peak memory is one batch
    /// of stacks, whatever the goroutine count.
    pub fn for_each_goroutine_batch<T, E, F, S>(
        &self,
        batch_size: usize,
        map: F,
        mut sink: S,
    ) -> std::result::Result<(), E>
    where
        T: Send,
        E: From<crate::error::AnalyzeError>,
        F: Fn(Goroutine) -> Option<T> + Sync,
        S: FnMut(Vec<T>) -> std::result::Result<(), E>,
    {
        let addrs = self.all_g_addrs()?;
        let threads = self.thread_map();
        let fing_status = self
            .global("runtime.fingStatus")
            .and_then(|a| self.mem().read_u32(a).ok());
        for chunk in addrs.chunks(batch_size.max(1)) {
            let kept: Vec<T> = chunk
                .par_iter()
                .filter_map(|&addr| {
                    let g = self.read_g(addr).ok()?;
                    let st = g.status();
                    if st == G_DEAD || (self.minor >= 26 && st == G_DEAD_EXTRA) {
                        return None;
                    }
                    map(self.build_goroutine(g, &threads, fing_status))
                })
                .collect();
            sink(kept)?;
        }
        Ok(())
    }

    /// One goroutine by id.
    pub fn goroutine(&self, goid: u64) -> Result<Goroutine> {
        let addrs = self.all_g_addrs()?;
        let found = addrs.par_iter().find_map_any(|&a| {
            let g = self.read_g(a).ok()?;
            (g.goid == goid && g.status() != G_DEAD).then_some(g)
        });
        let Some(g) = found else {
            return Err(crate::error::AnalyzeError::NoGoroutine {
                goid,
                nearest: Vec::new(),
            });
        };
        let threads = self.thread_map();
        let fing_status = self
            .global("runtime.fingStatus")
            .and_then(|a| self.mem().read_u32(a).ok());
        Ok(self.build_goroutine(g, &threads, fing_status))
    }

    fn build_goroutine(&self, g: G, threads: &ThreadMap, fing_status: Option<u32>) -> Goroutine {
        let running_on = threads.running.get(&g.addr);
        let thread = if g.m != 0 {
            threads.m_tid.get(&g.m).copied()
        } else {
            None
        };
        let stack = Some((g.stack_lo, g.stack_hi));
        let frames = match running_on {
            Some(regs)
                if g.status() == G_RUNNING && g.syscallsp == 0 && self.vdso_sp_of(&g) == 0 =>
            {
                self.unwind_thread(regs, stack)
            }
            _ => self.unwind(self.start_regs(&g, None), stack),
        };
        let logical = self.expand_shared(&frames);
        let system = self.is_system(&g, fing_status);
        Goroutine {
            g,
            thread,
            system,
            frames,
            logical,
        }
    }

    fn vdso_sp_of(&self, g: &G) -> u64 {
        if g.m == 0 {
            return 0;
        }
        self.mem()
            .read_u64(g.m.wrapping_add(self.layout.m.vdso_sp))
            .unwrap_or(0)
    }

    /// [`Runtime::expand`], shared with every goroutine whose physical
    /// frames have the same PCs.
    pub fn expand_shared(&self, frames: &[PhysFrame]) -> Arc<[LogicalFrame]> {
        let key: Box<[u64]> = frames.iter().flat_map(|f| [f.pc, f.sym_pc]).collect();
        self.pc_cache.shared_stack(key, || self.expand(frames))
    }

    /// Inline expansion of physical frames.
    pub fn expand(&self, frames: &[PhysFrame]) -> Vec<LogicalFrame> {
        let syms: Vec<_> = frames.iter().map(|f| self.sym_info(f.sym_pc)).collect();
        // Exact size: a listing holds thousands of these at once.
        let total = syms
            .iter()
            .map(|s| s.as_ref().map_or(1, |s| s.frames.len()))
            .sum();
        let mut out = Vec::with_capacity(total);
        for (i, (f, sym)) in frames.iter().zip(syms).enumerate() {
            match sym {
                Some(sym) => {
                    let n = sym.frames.len();
                    for (k, (name, file, line, inlined)) in sym.frames.iter().enumerate() {
                        out.push(LogicalFrame {
                            name: name.clone(),
                            file: file.clone(),
                            line: *line,
                            inlined: *inlined,
                            phys: i,
                            func_id: if *inlined { 0 } else { f.info.func_id },
                            inline_depth: (n - 1 - k) as u32,
                        });
                    }
                }
                None => out.push(LogicalFrame {
                    name: f.info.name.clone(),
                    file: Arc::from("?"),
                    line: 0,
                    inlined: false,
                    phys: i,
                    func_id: f.info.func_id,
                    inline_depth: 0,
                }),
            }
        }
        out
    }

    /// `isSystemGoroutine(gp, false)`.
    pub fn is_system(&self, g: &G, fing_status: Option<u32>) -> bool {
        let Some(info) = self.pc_info(g.startpc) else {
            return false;
        };
        let name = &*info.name;
        if name == "runtime.main" || name == "runtime.handleAsyncEvent" {
            return false;
        }
        if self.minor >= 22 && name == "runtime.corostart" {
            return false;
        }
        if name == "runtime.runfinq" || name == "runtime.runFinalizers" {
            return fing_status.is_none_or(|s| s & FING_RUNNING_FINALIZER == 0);
        }
        if self.minor >= 25 && name == "runtime.runCleanups" {
            return !g.running_cleanups;
        }
        name.starts_with("runtime.")
    }

    fn is_exported_runtime(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix("runtime.") else {
            return false;
        };
        if self.minor < 23 {
            return rest.starts_with(|c: char| c.is_ascii_uppercase());
        }
        let (rcvr, func) = match rest.rfind('.') {
            Some(i) => {
                let r = &rest[..i];
                let r = r
                    .strip_prefix("(*")
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap_or(r);
                (r, &rest[i + 1..])
            }
            None => ("", rest),
        };
        func.starts_with(|c: char| c.is_ascii_uppercase())
            && (rcvr.is_empty() || rcvr.starts_with(|c: char| c.is_ascii_uppercase()))
    }

    /// `showfuncinfo` at traceback level 1.
    fn show_frame(&self, name: &str, func_id: u8, first: bool, callee: &str) -> bool {
        if self.is_wrapper_func_id(func_id)
            && !matches!(
                callee,
                "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
            )
        {
            return false;
        }
        if self.minor >= 25 && (name == "runtime.runFinalizers" || name == "runtime.runCleanups") {
            return true;
        }
        if name == "runtime.gopanic" && !first {
            return true;
        }
        name.contains('.') && (!name.starts_with("runtime.") || self.is_exported_runtime(name))
    }

    /// Indexes into `g.logical` of the frames `runtime.Stack` prints; when
    /// that hides everything, every frame (the runtime's retry with runtime frames).
    pub fn visible_frames(&self, g: &Goroutine) -> Vec<usize> {
        let mut shown = Vec::new();
        let mut callee: &str = "";
        for (i, lf) in g.logical.iter().enumerate() {
            let c = callee;
            callee = &lf.name;
            if self.show_frame(&lf.name, lf.func_id, shown.is_empty(), c) {
                shown.push(i);
            }
        }
        if shown.is_empty() {
            shown = (0..g.logical.len()).collect();
        }
        shown
    }

    /// The status text of the header, e.g. `chan receive`, `running`.
    pub fn status_string(&self, g: &G) -> String {
        let st = g.status();
        if (st == G_WAITING || (self.minor >= 26 && st == G_LEAKED)) && g.wait_reason != 0 {
            return self.wait_reason_text(g.wait_reason).to_string();
        }
        self.status_text(st).to_string()
    }

    /// Minutes the goroutine has been blocked, as the header computes them.
    pub fn wait_minutes(&self, g: &G) -> i64 {
        let st = g.status();
        if (st == G_WAITING || st == G_SYSCALL) && g.waitsince != 0 {
            (self.now_ns as i64).saturating_sub(g.waitsince) / 60_000_000_000
        } else {
            0
        }
    }

    /// `goroutine N [status...]:` at level 1.
    pub fn header(&self, g: &G) -> String {
        let mut s = format!("goroutine {} [{}", g.goid, self.status_string(g));
        if self.minor >= 26 && g.status() == G_LEAKED {
            s.push_str(" (leaked)");
        }
        if g.status_raw & super::goroutine::G_SCAN != 0 {
            s.push_str(" (scan)");
        }
        let minutes = self.wait_minutes(g);
        if minutes >= 1 {
            let _ = write!(s, ", {minutes} minutes");
        }
        if g.lockedm != 0 {
            s.push_str(", locked to thread");
        }
        let labels = if g.labels != 0 && self.traceback_labels() {
            self.labels(g)
        } else {
            Vec::new()
        };
        if labels.is_empty() {
            s.push_str("]:");
        } else if self.minor >= 27 {
            // 1.27: after the bracket, quoted only when needed.
            let q = |t: &str| {
                if needs_quoting(t) {
                    runtime_quoted(t)
                } else {
                    t.to_string()
                }
            };
            let items: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect();
            let _ = write!(s, "] {{{}}}:", items.join(", "));
        } else {
            let items: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{}: {}", runtime_quoted(k), runtime_quoted(v)))
                .collect();
            let _ = write!(s, " labels:{{{}}}]:", items.join(", "));
        }
        s
    }

    /// `printFuncName`: `runtime.gopanic` prints as `panic`, generic shapes as `[...]`.
    pub fn print_name(&self, name: &str) -> String {
        if name == "runtime.gopanic" {
            return "panic".to_string();
        }
        func_name_for_print(name, self.minor >= 27)
    }

    /// `printArgs`: the argument list of a physical frame.
    pub fn print_args(&self, frame: &PhysFrame) -> String {
        let tab = self.tab();
        let Some(f) = tab.find_func(frame.pc) else {
            return String::new();
        };
        let Some(info) = f.funcdata_bytes(funcdata::ARG_INFO, ARG_INFO_MAX) else {
            return String::new();
        };
        let live_idx = f.pcdata(pcdata::ARG_LIVE_INDEX, frame.sym_pc).unwrap_or(-1);
        let live_info = if live_idx > 0 {
            f.funcdata_bytes(funcdata::ARG_LIVE_INFO, live_idx as usize + 64)
        } else {
            f.funcdata_bytes(funcdata::ARG_LIVE_INFO, 1)
        };
        let start_offset = live_info.and_then(|b| b.first().copied()).unwrap_or(0xff);
        let is_live = |off: u8, slot: u8| -> bool {
            let Some(bits) = live_info else { return true };
            if live_idx <= 0 || off < start_offset {
                return true;
            }
            bits.get(live_idx as usize + usize::from(slot / 8))
                .is_none_or(|b| b & (1 << (slot % 8)) != 0)
        };
        let argp = frame.argp();
        let mut out = String::new();
        let mut start = true;
        let mut pi = 0usize;
        let mut slot = 0u8;
        while let Some(&op) = info.get(pi) {
            pi += 1;
            match op {
                TRACE_ARGS_END_SEQ => break,
                TRACE_ARGS_START_AGG => {
                    if !start {
                        out.push_str(", ");
                    }
                    out.push('{');
                    start = true;
                    continue;
                }
                TRACE_ARGS_END_AGG => out.push('}'),
                TRACE_ARGS_DOTDOTDOT => {
                    if !start {
                        out.push_str(", ");
                    }
                    out.push_str("...");
                }
                TRACE_ARGS_OFFSET_TOO_LARGE => {
                    if !start {
                        out.push_str(", ");
                    }
                    out.push('_');
                }
                off => {
                    if !start {
                        out.push_str(", ");
                    }
                    let Some(&size) = info.get(pi) else { break };
                    pi += 1;
                    let mut x = self
                        .mem()
                        .read_u64(argp.wrapping_add(u64::from(off)))
                        .unwrap_or(0);
                    if size < 8 {
                        let shift = 64 - u32::from(size) * 8;
                        x = (x << shift) >> shift;
                    }
                    let _ = write!(out, "{x:#x}");
                    if !is_live(off, slot) {
                        out.push('?');
                    }
                    if off >= start_offset {
                        slot = slot.wrapping_add(1);
                    }
                }
            }
            start = false;
        }
        out
    }

    /// One logical frame as two lines of traceback text.
    fn write_frame(&self, out: &mut String, g: &Goroutine, lf: &LogicalFrame) {
        let name = self.print_name(&lf.name);
        if lf.inlined {
            let _ = writeln!(out, "{name}(...)");
            let _ = writeln!(out, "\t{}:{}", lf.file, lf.line);
            return;
        }
        let Some(pf) = g.frames.get(lf.phys) else {
            return;
        };
        let _ = writeln!(out, "{name}({})", self.print_args(pf));
        let _ = write!(out, "\t{}:{}", lf.file, lf.line);
        if pf.pc > pf.info.entry {
            let _ = write!(out, " +{:#x}", pf.pc - pf.info.entry);
        }
        out.push('\n');
    }

    /// `created by F in goroutine N` lines, or `None` when Go prints none.
    pub fn created_by(&self, g: &G) -> Option<(String, String, u32, u64)> {
        if g.goid == 1 {
            return None;
        }
        let info = self.pc_info(g.gopc)?;
        if !self.show_frame(&info.name, info.func_id, false, "") {
            return None;
        }
        let trace_pc = if g.gopc > info.entry {
            g.gopc - 1
        } else {
            g.gopc
        };
        let (file, line) = self
            .sym_info(trace_pc)
            .and_then(|s| s.frames.first().map(|f| (f.1.to_string(), f.2)))
            .unwrap_or_else(|| ("?".to_string(), 0));
        Some((self.print_name(&info.name), file, line, info.entry))
    }

    /// The whole `runtime.Stack` block of one goroutine (ends with a newline).
    pub fn go_traceback(&self, g: &Goroutine) -> String {
        let mut out = self.header(&g.g);
        out.push('\n');
        if g.frames.is_empty() && g.g.status() == G_RUNNING {
            out.push_str("\tgoroutine running on other thread; stack unavailable\n");
        } else {
            let shown = self.visible_frames(g);
            let total = shown.len();
            let elide = total.saturating_sub(TRACEBACK_INNER + TRACEBACK_OUTER);
            for (k, &i) in shown.iter().enumerate() {
                if elide > 0 && k == TRACEBACK_INNER {
                    let _ = writeln!(out, "...{elide} frames elided...");
                }
                if elide > 0 && k >= TRACEBACK_INNER && k < TRACEBACK_INNER + elide {
                    continue;
                }
                if let Some(lf) = g.logical.get(i) {
                    self.write_frame(&mut out, g, lf);
                }
            }
        }
        if let Some((name, file, line, entry)) = self.created_by(&g.g) {
            out.push_str("created by ");
            out.push_str(&name);
            if g.g.parent_goid != 0 {
                let _ = write!(out, " in goroutine {}", g.g.parent_goid);
            }
            let _ = write!(out, "\n\t{file}:{line}");
            if g.g.gopc > entry {
                let _ = write!(out, " +{:#x}", g.g.gopc - entry);
            }
            out.push('\n');
        }
        self.write_ancestors(&mut out, &g.g);
        out
    }

    /// `printAncestorTraceback` for each recorded ancestor (only present
    /// with `GODEBUG=tracebackancestors=N`).
    fn write_ancestors(&self, out: &mut String, g: &G) {
        if g.ancestors == 0 {
            return;
        }
        let mem = self.mem();
        let (Ok(ptr), Ok(len)) = (
            mem.read_u64(g.ancestors),
            mem.read_u64(g.ancestors.wrapping_add(8)),
        ) else {
            return;
        };
        for i in 0..len.min(MAX_ANCESTORS) {
            let Ok(raw) = mem.read_vec(
                ptr.wrapping_add(i * ANCESTOR_INFO_SIZE),
                ANCESTOR_INFO_SIZE as usize,
            ) else {
                return;
            };
            let word = |o: usize| {
                raw.get(o..o + 8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
                    .unwrap_or(0)
            };
            let (pcs_ptr, pcs_len, goid, gopc) = (word(0), word(8), word(24), word(32));
            let _ = writeln!(out, "[originating from goroutine {goid}]:");
            let n = pcs_len.min(TRACEBACK_INNER as u64);
            let pcs = mem.read_vec(pcs_ptr, (n * 8) as usize).unwrap_or_default();
            for (fidx, pc) in pcs
                .chunks_exact(8)
                .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
                .enumerate()
            {
                let Some(info) = self.pc_info(pc) else {
                    continue;
                };
                // The innermost logical frame at the recorded PC itself.
                let Some(sym) = self.sym_info(pc) else {
                    continue;
                };
                let Some((name, file, line, _)) = sym.frames.first() else {
                    continue;
                };
                // Shown or not by the physical function, printed as the innermost one.
                if !self.show_frame(&info.name, info.func_id, fidx == 0, "") {
                    continue;
                }
                let _ = write!(out, "{}(...)\n\t{file}:{line}", self.print_name(name));
                if pc > info.entry {
                    let _ = write!(out, " +{:#x}", pc - info.entry);
                }
                out.push('\n');
            }
            if pcs_len == TRACEBACK_INNER as u64 {
                out.push_str("...additional frames elided...\n");
            }
            if goid != 1 {
                if let Some(info) = self.pc_info(gopc) {
                    if self.show_frame(&info.name, info.func_id, false, "") {
                        let trace_pc = if gopc > info.entry { gopc - 1 } else { gopc };
                        let (file, line) = self
                            .sym_info(trace_pc)
                            .and_then(|s| s.frames.first().map(|f| (f.1.clone(), f.2)))
                            .unwrap_or_else(|| (Arc::from("?"), 0));
                        let _ = write!(
                            out,
                            "created by {}\n\t{file}:{line}",
                            self.print_name(&info.name)
                        );
                        if gopc > info.entry {
                            let _ = write!(out, " +{:#x}", gopc - info.entry);
                        }
                        out.push('\n');
                    }
                }
            }
        }
    }
}

/// The runtime's `printquoted` (Go 1.26): `\n \r \t \\ \"` escaped,
/// printable ASCII as is, other runes as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn runtime_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for r in s.chars() {
        match r {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' | '"' => {
                out.push('\\');
                out.push(r);
            }
            ' '..='~' => out.push(r),
            _ => {
                let v = u32::from(r);
                let _ = if v < 127 {
                    write!(out, "\\x{v:02x}")
                } else if v < 0x1_0000 {
                    write!(out, "\\u{v:04x}")
                } else {
                    write!(out, "\\U{v:08x}")
                };
            }
        }
    }
    out.push('"');
    out
}

/// `tracebackStringNeedsQuoting` (Go 1.27): anything but `[A-Za-z0-9./_]`.
fn needs_quoting(s: &str) -> bool {
    !s.chars()
        .all(|r| r.is_ascii_alphanumeric() || r == '.' || r == '/' || r == '_')
}

/// `funcNameForPrint`: replaces generic shape arguments with `[...]`.
/// From Go 1.27, methods of generic types with their own type parameters
/// get both bracket groups replaced.
pub fn func_name_for_print(name: &str, two_groups: bool) -> String {
    let Some(i) = name.find('[') else {
        return name.to_string();
    };
    let Some(j) = name.rfind(']') else {
        return name.to_string();
    };
    if j <= i {
        return name.to_string();
    }
    if !two_groups {
        return format!("{}[...]{}", &name[..i], &name[j + 1..]);
    }
    let interior = &name[i + 1..j];
    if !interior.contains('[') {
        return format!("{}[...]{}", &name[..i], &name[j + 1..]);
    }
    let mut depth: i32 = 1;
    let (mut rbr, mut lbr): (Option<usize>, Option<usize>) = (None, None);
    for (k, c) in interior.char_indices() {
        if c == '[' {
            depth += 1;
            if depth != 1 {
                continue;
            }
            lbr = Some(k);
            break;
        }
        if c == ']' {
            depth -= 1;
            if depth < 0 {
                break;
            }
            if depth != 0 {
                continue;
            }
            rbr = Some(k);
        }
    }
    if depth == 1 {
        match (rbr, lbr) {
            (Some(r), Some(l)) if l > r => {
                return format!(
                    "{}[...]{}[...]{}",
                    &name[..i],
                    &interior[r + 1..l],
                    &name[j + 1..]
                );
            }
            (None, None) => return format!("{}[...]{}", &name[..i], &name[j + 1..]),
            _ => {}
        }
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::func_name_for_print;

    #[test]
    fn labels_are_quoted_like_printquoted() {
        use super::runtime_quoted;
        assert_eq!(runtime_quoted("acme"), "\"acme\"");
        assert_eq!(runtime_quoted("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(runtime_quoted("\u{1}"), "\"\\x01\"");
        assert_eq!(runtime_quoted("é"), "\"\\u00e9\"");
        assert_eq!(runtime_quoted("😀"), "\"\\U0001f600\"");
    }

    #[test]
    fn generic_names_print_like_the_runtime() {
        assert_eq!(func_name_for_print("main.f", false), "main.f");
        assert_eq!(
            func_name_for_print("main.Generic[go.shape.int]", false),
            "main.Generic[...]"
        );
        assert_eq!(
            func_name_for_print("main.(*List[go.shape.string]).Push", false),
            "main.(*List[...]).Push"
        );
        // 1.27: a generic method of a generic type keeps the text between groups.
        assert_eq!(
            func_name_for_print("main.T[go.shape.int].M[go.shape.string]", true),
            "main.T[...].M[...]"
        );
        assert_eq!(
            func_name_for_print("main.T[go.shape.int].M[go.shape.string]", false),
            "main.T[...]"
        );
        assert_eq!(func_name_for_print("main.x]y[", true), "main.x]y[");
    }
}
