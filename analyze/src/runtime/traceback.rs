//! Goroutine listing: every goroutine with its physical and logical frames
//! (inlining expanded), which of them the runtime counts as system
//! goroutines, which frames `runtime.Stack` shows (runtime frames and
//! wrappers hidden as Go hides them), status and wait time. The text Go
//! prints from these is [`crate::present::traceback`]'s.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::Result;

use super::frame::{LogicalFrame, PhysFrame};
use super::goroutine::{
    ThreadRegs, G, G_DEAD, G_DEAD_EXTRA, G_LEAKED, G_RUNNING, G_SYSCALL, G_WAITING,
};
use super::model::Runtime;

/// `allgs` entries unwound together when streaming goroutines: enough to
/// keep both cores busy, small enough that a batch of stacks stays a few MB.
pub const GOROUTINE_BATCH: usize = 8192;
/// `fingRunningFinalizer` bit of `runtime.fingStatus`.
const FING_RUNNING_FINALIZER: u32 = 2;

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

    /// The goroutines with ids `goids` that are not dead, in the order of
    /// `goids` (an id twice, twice; one not found, left out): one pass over
    /// `allgs`, only these unwound.
    pub fn goroutines_by_id(&self, goids: &[u64]) -> Result<Vec<Goroutine>> {
        let wanted: std::collections::HashSet<u64> = goids.iter().copied().collect();
        let addrs = self.all_g_addrs()?;
        let found: std::collections::HashMap<u64, G> = addrs
            .par_iter()
            .filter_map(|&a| {
                let g = self.read_g(a).ok()?;
                (wanted.contains(&g.goid) && g.status() != G_DEAD).then_some((g.goid, g))
            })
            .collect();
        let threads = self.thread_map();
        let fing_status = self
            .global("runtime.fingStatus")
            .and_then(|a| self.mem().read_u32(a).ok());
        Ok(goids
            .iter()
            .filter_map(|id| found.get(id))
            .map(|g| self.build_goroutine(g.clone(), &threads, fing_status))
            .collect())
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
    pub fn show_frame(&self, name: &str, func_id: u8, first: bool, callee: &str) -> bool {
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

    /// `printFuncName`: `runtime.gopanic` prints as `panic`, generic shapes as `[...]`.
    pub fn print_name(&self, name: &str) -> String {
        if name == "runtime.gopanic" {
            return "panic".to_string();
        }
        func_name_for_print(name, self.minor >= 27)
    }
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
