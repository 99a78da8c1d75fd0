//! Stack unwinding the way the Go runtime's `unwinder` does it (traceback.go),
//! as one free function, [`walk`], over explicit memory, function facts and
//! start registers, with a hard bound on frames; `Runtime`'s methods only
//! choose the start (`g.sched`, `syscallpc`, thread registers, vDSO) and
//! the jumps. The walk:
//! `fp = sp + pcsp(pc) + 8`, return address at `fp-8`, stop at TopFrame
//! functions, at SPWRITE functions (except the innermost frame of a syscall),
//! and at unknown return addresses. Injected calls (`sigpanic`,
//! `asyncPreempt`, `debugCallV2`) make their caller's PC a trapping PC,
//! which is symbolized without backing up one byte.

use std::sync::Arc;

use crate::memory::Memory;
use crate::pclntab::func_flag;

use super::frame::{PcInfo, PhysFrame};
use super::goroutine::{ThreadRegs, G, G_RUNNING, G_SYSCALL};
use super::model::Runtime;

/// Bound on physical frames per stack (a 1 GiB stack of minimal frames
/// would be larger, but no real traceback needs more).
pub const MAX_PHYSICAL_FRAMES: usize = 1_000_000;
/// Bound on frame-pointer hops while looking for Go code from a C PC.
const MAX_FP_HOPS: usize = 64;
/// Bound on signal frames crossed in one thread walk (a handler
/// interrupted by a second signal is already rare).
const MAX_SIGNAL_FRAMES: usize = 4;

/// Offsets in the kernel's x86-64 `struct ucontext` of the saved `rbp`,
/// `rsp` and `rip` (`uc_flags`, `uc_link` and `uc_stack` take 40 bytes,
/// then `struct sigcontext` holds r8..r15, rdi, rsi, rbp, rbx, rdx, rax,
/// rcx, rsp, rip).
const UC_RBP: u64 = 40 + 10 * 8;
const UC_RSP: u64 = 40 + 15 * 8;
const UC_RIP: u64 = 40 + 16 * 8;
/// A signal restorer's code on x86-64: `mov $15 (SYS_rt_sigreturn), %rax;
/// syscall`.
const RT_SIGRETURN_CODE: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// Where a walk starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRegs {
    /// PC.
    pub pc: u64,
    /// SP.
    pub sp: u64,
    /// The PC is a trapping PC (from thread registers), not a return address.
    pub trap: bool,
    /// The PC/SP came from `syscallpc/syscallsp`.
    pub syscall: bool,
}

fn is_injected_call(name: &str) -> bool {
    matches!(
        name,
        "runtime.sigpanic" | "runtime.asyncPreempt" | "runtime.debugCallV2"
    )
}

impl Runtime<'_> {
    /// The registers a goroutine's traceback starts from, as `traceback1`
    /// chooses them, with one addition: a goroutine running on a captured
    /// thread starts from that thread's registers.
    pub fn start_regs(&self, g: &G, running_on: Option<&ThreadRegs>) -> StartRegs {
        let status = g.status();
        if g.m != 0 {
            let vdso = self.layout.m.vdso_sp;
            if let Ok(vsp) = self.mem().read_u64(g.m.wrapping_add(vdso)) {
                if vsp != 0 {
                    if let Ok(vpc) = self.mem().read_u64(g.m.wrapping_add(self.layout.m.vdso_pc)) {
                        return StartRegs {
                            pc: vpc,
                            sp: vsp,
                            trap: false,
                            syscall: false,
                        };
                    }
                }
            }
        }
        if status == G_SYSCALL || g.syscallsp != 0 {
            return StartRegs {
                pc: g.syscallpc,
                sp: g.syscallsp,
                trap: false,
                syscall: true,
            };
        }
        if status == G_RUNNING {
            if let Some(r) = running_on {
                return StartRegs {
                    pc: r.pc,
                    sp: r.sp,
                    trap: true,
                    syscall: false,
                };
            }
        }
        StartRegs {
            pc: g.sched_pc,
            sp: g.sched_sp,
            trap: false,
            syscall: false,
        }
    }

    /// Physical frames from `start`, innermost first. `stack` bounds the
    /// SPs when known (`[lo, hi)` of the goroutine stack).
    pub fn unwind(&self, start: StartRegs, stack: Option<(u64, u64)>) -> Vec<PhysFrame> {
        walk(
            self.mem(),
            self,
            start,
            Walk {
                stack,
                ..Walk::default()
            },
        )
    }

    /// Like [`Runtime::unwind`] for a thread on its g0 stack, following the
    /// runtime's stack jumps onto `curg` and through signal frames (see
    /// [`Walk`]).
    pub fn unwind_jumping(&self, start: StartRegs, curg: &G) -> Vec<PhysFrame> {
        walk(
            self.mem(),
            self,
            start,
            Walk {
                jump_to: Some(curg),
                through_signals: true,
                ..Walk::default()
            },
        )
    }

    /// The registers a signal interrupted, when `frame` is the kernel's
    /// signal frame entry (see [`signal_context`]).
    pub fn signal_context(&self, frame: &PhysFrame, tid: u32) -> Option<ThreadRegs> {
        signal_context(self.mem(), self, frame, tid)
    }

    /// The registers of the code a signal handler interrupted, for a thread
    /// whose registers are inside that handler (on the gsignal stack, in
    /// `runtime.sigtramp` or below it, or in the restorer after the handler
    /// returned); `None` for a thread that is not handling a signal.
    pub fn interrupted_regs(&self, regs: &ThreadRegs) -> Option<ThreadRegs> {
        let mem = self.mem();
        let in_restorer = match self.pc_info(regs.pc) {
            Some(info) => info.name.starts_with("runtime.sigreturn"),
            // libc's `__restore_rt`, at its `mov` or at its `syscall`.
            None => [regs.pc, regs.pc.wrapping_sub(7)].into_iter().any(|at| {
                let mut code = [0u8; RT_SIGRETURN_CODE.len()];
                mem.read(at, &mut code).is_ok() && code == RT_SIGRETURN_CODE
            }),
        };
        if in_restorer {
            // `ret` of sigtramp popped the restorer: sp is at the ucontext.
            return ucontext_regs(mem, self, regs.sp.checked_add(8)?, regs.tid)
                .or_else(|| ucontext_regs(mem, self, regs.sp, regs.tid));
        }
        self.unwind_thread(regs, None)
            .iter()
            .find_map(|f| self.signal_context(f, regs.tid))
    }

    /// Physical frames of a running thread that is not in Go code: climbs
    /// the frame-pointer chain to the first Go frame first.
    pub fn unwind_thread(&self, regs: &ThreadRegs, stack: Option<(u64, u64)>) -> Vec<PhysFrame> {
        let start = if self.pc_info(regs.pc).is_some() {
            StartRegs {
                pc: regs.pc,
                sp: regs.sp,
                trap: true,
                syscall: false,
            }
        } else if let Some((pc, sp)) = climb_to_go(self.mem(), self, regs) {
            StartRegs {
                pc,
                sp,
                trap: false,
                syscall: false,
            }
        } else {
            return Vec::new();
        };
        self.unwind(start, stack)
    }
}

/// Function facts by PC: all the stack walk needs of the pclntab.
/// [`Runtime`] answers from its per-PC cache; tests answer from a table.
pub trait FuncTable {
    /// The function containing `pc` with its pcsp delta at `pc`, or `None`
    /// when `pc` is in no Go function.
    fn pc_info(&self, pc: u64) -> Option<Arc<PcInfo>>;
}

impl FuncTable for Runtime<'_> {
    fn pc_info(&self, pc: u64) -> Option<Arc<PcInfo>> {
        Runtime::pc_info(self, pc)
    }
}

/// How far a [`walk`] may go besides the plain chain of return addresses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Walk<'g> {
    /// SP bounds `[lo, hi]` of the goroutine stack, when known: a frame
    /// whose SP leaves them ends the walk.
    pub stack: Option<(u64, u64)>,
    /// A thread on its g0 stack serving this goroutine: at
    /// `runtime.morestack` the walk continues at `curg.sched.pc/sp`, at
    /// `runtime.systemstack` on the goroutine stack at `curg.sched.sp`, at
    /// `runtime.asmcgocall` at `curg.syscallpc/sp` (the runtime's
    /// `unwindJumpStack`, and where Go's traceback of a cgo call starts).
    pub jump_to: Option<&'g G>,
    /// Continue past `runtime.sigtramp` at the registers the kernel saved
    /// (at most [`MAX_SIGNAL_FRAMES`] times), as gdb shows a thread.
    pub through_signals: bool,
}

/// The stack walk: physical frames from `start`, innermost first, read
/// from `mem` with function facts from `funcs`, at most
/// [`MAX_PHYSICAL_FRAMES`]. The runtime's `unwinder` algorithm: `fp = sp +
/// pcsp(pc) + 8`, the return address at `fp - 8`; it stops at TOPFRAME and
/// SPWRITE functions (SPWRITE is ignored for the innermost frame of a
/// syscall and for `runtime.cgocallback`), at a return address in no Go
/// function, at a frame that does not move, and where `how` says.
pub fn walk(
    mem: &dyn Memory,
    funcs: &dyn FuncTable,
    start: StartRegs,
    how: Walk<'_>,
) -> Vec<PhysFrame> {
    let mut signals_left = if how.through_signals {
        MAX_SIGNAL_FRAMES
    } else {
        0
    };
    let mut jump_to = how.jump_to;
    let mut stack = how.stack;
    let mut frames = Vec::new();
    let (mut pc, mut sp) = (start.pc, start.sp);
    let mut trap = start.trap;
    if pc == 0 {
        // A call through a nil func value: start in the caller.
        match mem.read_u64(sp) {
            Ok(ret) => {
                pc = ret;
                sp = sp.wrapping_add(8);
                trap = false;
            }
            Err(_) => return frames,
        }
    }
    let mut innermost = true;
    while frames.len() < MAX_PHYSICAL_FRAMES {
        let Some(info) = funcs.pc_info(pc) else {
            break;
        };
        if !stack.is_none_or(|(lo, hi)| sp >= lo && sp <= hi) {
            break;
        }
        let mut flag = info.flag;
        let mut info = info;
        if let Some(curg) = jump_to {
            match &*info.name {
                "runtime.morestack" => {
                    // newstack never returns here: it gogo's to curg.sched.
                    jump_to = None;
                    stack = Some((curg.stack_lo, curg.stack_hi));
                    pc = curg.sched_pc;
                    sp = curg.sched_sp;
                    trap = false;
                    let Some(next) = funcs.pc_info(pc) else { break };
                    info = next;
                    flag = info.flag;
                }
                "runtime.systemstack" => {
                    jump_to = None;
                    stack = Some((curg.stack_lo, curg.stack_hi));
                    sp = curg.sched_sp;
                    flag &= !func_flag::SPWRITE;
                }
                _ => {}
            }
        }
        if &*info.name == "runtime.cgocallback" || (innermost && start.syscall) {
            flag &= !func_flag::SPWRITE;
        }
        let Some(delta) = info.sp_delta else {
            break;
        };
        let Some(fp) = sp
            .checked_add_signed(i64::from(delta))
            .and_then(|f| f.checked_add(8))
        else {
            break;
        };
        let lr = if flag & func_flag::TOP_FRAME != 0 || flag & func_flag::SPWRITE != 0 {
            0
        } else {
            mem.read_u64(fp - 8).unwrap_or(0)
        };
        let sym_pc = if !trap && pc > info.entry { pc - 1 } else { pc };
        let injected = is_injected_call(&info.name);
        let cgo_call = &*info.name == "runtime.asmcgocall";
        frames.push(PhysFrame {
            pc,
            sp,
            fp,
            sym_pc,
            info,
        });
        if signals_left > 0 {
            if let Some(regs) = frames.last().and_then(|f| signal_context(mem, funcs, f, 0)) {
                if funcs.pc_info(regs.pc).is_some() {
                    signals_left -= 1;
                    // The interrupted code may be on any stack (the
                    // goroutine's, g0's); the jumps above still apply.
                    stack = None;
                    pc = regs.pc;
                    sp = regs.sp;
                    trap = true;
                    innermost = false;
                    continue;
                }
            }
        }
        // A thread in C code called through cgo: asmcgocall switched to
        // g0's stack, and cgocall's entersyscall recorded where the
        // goroutine stands; continue there, as Go's traceback of the
        // goroutine starts.
        if cgo_call {
            if let Some(curg) = jump_to.filter(|g| g.syscallsp != 0 && g.syscallpc != 0) {
                jump_to = None;
                stack = Some((curg.stack_lo, curg.stack_hi));
                pc = curg.syscallpc;
                sp = curg.syscallsp;
                trap = false;
                innermost = false;
                continue;
            }
        }
        if lr == 0 || funcs.pc_info(lr).is_none() {
            break;
        }
        if pc == lr && sp == fp {
            break;
        }
        trap = injected;
        pc = lr;
        sp = fp;
        innermost = false;
    }
    frames
}

/// The registers a signal interrupted, when `frame` is the kernel's signal
/// frame entry: `runtime.sigtramp`, or `runtime.cgoSigtramp` (the handler a
/// cgo binary installs, which jumps to `sigtramp`), both TOPFRAME so a walk
/// stops there, whose return slot holds the restorer
/// (`runtime.sigreturn__sigaction`). The kernel's `rt_sigframe` starts with
/// that return address, and the `ucontext` follows it, at the frame's `fp`.
pub fn signal_context(
    mem: &dyn Memory,
    funcs: &dyn FuncTable,
    frame: &PhysFrame,
    tid: u32,
) -> Option<ThreadRegs> {
    if !matches!(
        &*frame.info.name,
        "runtime.sigtramp" | "runtime.cgoSigtramp"
    ) {
        return None;
    }
    ucontext_regs(mem, funcs, frame.fp, tid)
}

/// Reads the interrupted registers from a `ucontext` at `uc`, after
/// checking that the word below it is a signal restorer: Go's
/// `runtime.sigreturn__sigaction`, or, in a cgo binary whose handlers libc
/// installed, libc's `__restore_rt`; both are `mov $SYS_rt_sigreturn, %rax;
/// syscall`.
fn ucontext_regs(mem: &dyn Memory, funcs: &dyn FuncTable, uc: u64, tid: u32) -> Option<ThreadRegs> {
    let restorer = mem.read_u64(uc.checked_sub(8)?).ok()?;
    let go_restorer = funcs
        .pc_info(restorer)
        .is_some_and(|i| i.name.starts_with("runtime.sigreturn"));
    if !go_restorer {
        let mut code = [0u8; RT_SIGRETURN_CODE.len()];
        mem.read(restorer, &mut code).ok()?;
        if code != RT_SIGRETURN_CODE {
            return None;
        }
    }
    Some(ThreadRegs {
        tid,
        pc: mem.read_u64(uc.checked_add(UC_RIP)?).ok()?,
        sp: mem.read_u64(uc.checked_add(UC_RSP)?).ok()?,
        bp: mem.read_u64(uc.checked_add(UC_RBP)?).ok()?,
    })
}

/// From a PC outside Go code (C, vDSO) follows the frame-pointer chain
/// until a Go PC, at most [`MAX_FP_HOPS`] hops; returns the new (pc, sp).
pub fn climb_to_go(
    mem: &dyn Memory,
    funcs: &dyn FuncTable,
    regs: &ThreadRegs,
) -> Option<(u64, u64)> {
    let mut bp = regs.bp;
    for _ in 0..MAX_FP_HOPS {
        if bp == 0 || !bp.is_multiple_of(8) {
            return None;
        }
        let ret = mem.read_u64(bp.wrapping_add(8)).ok()?;
        let next = mem.read_u64(bp).ok()?;
        if funcs.pc_info(ret).is_some() {
            return Some((ret, bp.checked_add(16)?));
        }
        if next <= bp {
            return None;
        }
        bp = next;
    }
    None
}

impl Runtime<'_> {
    /// Physical frames of an OS thread from its registers. A thread in a
    /// vDSO call starts at `m.vdsoPC/vdsoSP`; a thread in C climbs the
    /// frame-pointer chain to Go code; a thread on its g0 stack follows the
    /// `systemstack`/`morestack` jumps onto the goroutine it serves.
    pub fn thread_frames(&self, t: &super::goroutine::ThreadState) -> Vec<PhysFrame> {
        let Some(m) = &t.m else {
            return self.unwind_thread(&t.regs, None);
        };
        let start = if m.vdso_sp != 0 && self.pc_info(t.regs.pc).is_none() {
            Some(StartRegs {
                pc: m.vdso_pc,
                sp: m.vdso_sp,
                trap: false,
                syscall: false,
            })
        } else if self.pc_info(t.regs.pc).is_some() {
            Some(StartRegs {
                pc: t.regs.pc,
                sp: t.regs.sp,
                trap: true,
                syscall: false,
            })
        } else {
            climb_to_go(self.mem(), self, &t.regs).map(|(pc, sp)| StartRegs {
                pc,
                sp,
                trap: false,
                syscall: false,
            })
        };
        let Some(start) = start else {
            return Vec::new();
        };
        let on_system_stack = t.tls_g.is_some_and(|g| g == m.g0 || g == m.gsignal);
        if on_system_stack && m.curg != 0 {
            if let Ok(curg) = self.read_g(m.curg) {
                return self.unwind_jumping(start, &curg);
            }
        }
        walk(
            self.mem(),
            self,
            start,
            Walk {
                through_signals: true,
                ..Walk::default()
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{climb_to_go, walk, FuncTable, StartRegs, Walk, MAX_PHYSICAL_FRAMES};
    use crate::memory::SliceMemory;
    use crate::pclntab::func_flag;
    use crate::runtime::frame::PcInfo;
    use crate::runtime::goroutine::{ThreadRegs, G};

    /// Functions as `(entry, end, name, flag, sp delta)`, each 0x100 long.
    struct Table(Vec<(u64, &'static str, u8, i32)>);

    impl FuncTable for Table {
        fn pc_info(&self, pc: u64) -> Option<Arc<PcInfo>> {
            let &(entry, name, flag, delta) = self
                .0
                .iter()
                .find(|(entry, ..)| (*entry..entry + 0x100).contains(&pc))?;
            Some(Arc::new(PcInfo {
                entry,
                name: Arc::from(name),
                flag,
                func_id: 0,
                sp_delta: Some(delta),
            }))
        }
    }

    /// A stack of words at `base`.
    fn stack(base: u64, words: &[u64]) -> SliceMemory {
        let mut mem = SliceMemory::new();
        mem.add(base, words.iter().flat_map(|w| w.to_le_bytes()).collect());
        mem
    }

    fn start(pc: u64, sp: u64, trap: bool) -> StartRegs {
        StartRegs {
            pc,
            sp,
            trap,
            syscall: false,
        }
    }

    fn pcs(frames: &[crate::runtime::PhysFrame]) -> Vec<(u64, u64, u64)> {
        frames.iter().map(|f| (f.pc, f.sym_pc, f.sp)).collect()
    }

    fn table() -> Table {
        Table(vec![
            (0x1000, "main.leaf", 0, 0x10),
            (0x2000, "main.mid", 0, 0x8),
            (0x3000, "runtime.goexit", func_flag::TOP_FRAME, 0),
            (0x4000, "main.spwrite", func_flag::SPWRITE, 0x8),
        ])
    }

    /// leaf (frame 0x18 bytes) -> mid (0x10) -> goexit (TOPFRAME): the
    /// return addresses sit at `fp - 8` of each frame, and only the trapping
    /// innermost PC is symbolized without backing up one byte.
    #[test]
    fn walks_return_addresses_until_a_top_frame() {
        let sp = 0x7000;
        // leaf: fp = sp + 0x10 + 8 = 0x7018, return address at 0x7010.
        // mid:  sp = 0x7018, fp = 0x7018 + 8 + 8 = 0x7028, return at 0x7020.
        let mem = stack(sp, &[0, 0, 0x2010, 0, 0x3001, 0]);
        let frames = walk(&mem, &table(), start(0x1004, sp, true), Walk::default());
        assert_eq!(
            pcs(&frames),
            vec![
                (0x1004, 0x1004, 0x7000),
                (0x2010, 0x200f, 0x7018),
                (0x3001, 0x3000, 0x7028)
            ]
        );
        assert_eq!(frames[0].fp, 0x7018);
        // The same from a return address (a parked goroutine's sched.pc).
        let frames = walk(&mem, &table(), start(0x1004, sp, false), Walk::default());
        assert_eq!(frames[0].sym_pc, 0x1003);
    }

    /// Every way a walk ends early: a return address in no function, an SP
    /// outside the goroutine stack, an SPWRITE function, a frame that does
    /// not move, unreadable memory, a start PC in no function.
    #[test]
    fn stops_where_the_runtime_stops() {
        let sp = 0x7000;
        let t = table();
        let lone = |words: &[u64], pc: u64, how: Walk<'_>| {
            pcs(&walk(&stack(sp, words), &t, start(pc, sp, true), how))
        };
        // Return address 0x9999: no function there.
        assert_eq!(lone(&[0, 0, 0x9999], 0x1004, Walk::default()).len(), 1);
        // Bounded to [0x7000, 0x7010]: mid's SP 0x7018 is outside.
        let bounded = Walk {
            stack: Some((0x7000, 0x7010)),
            ..Walk::default()
        };
        assert_eq!(lone(&[0, 0, 0x2010, 0, 0x3001], 0x1004, bounded).len(), 1);
        // SPWRITE: the return address is not trusted.
        assert_eq!(lone(&[0, 0x2010], 0x4004, Walk::default()).len(), 1);
        // Memory ends right after the leaf frame: the read fails, the walk ends.
        assert_eq!(lone(&[0, 0], 0x1004, Walk::default()).len(), 1);
        assert!(lone(&[0, 0, 0x2010], 0x9999, Walk::default()).is_empty());
        // A nil func value call: pc 0 starts at the return address on top.
        let frames = lone(&[0x1004, 0, 0, 0x3001], 0, Walk::default());
        assert_eq!(frames[0], (0x1004, 0x1003, 0x7008));
    }

    /// A stack whose every frame returns into the same function with a
    /// growing SP ends at the bound on frames, however much memory it has.
    #[test]
    fn a_self_similar_stack_ends_at_the_frame_bound() {
        let t = Table(vec![(0x1000, "main.rec", 0, 0)]);
        // Every frame is 8 bytes and returns to 0x1004.
        let n = MAX_PHYSICAL_FRAMES + 10;
        let mut mem = SliceMemory::new();
        mem.add(0x10000, 0x1004u64.to_le_bytes().repeat(n));
        let frames = walk(&mem, &t, start(0x1004, 0x10000, true), Walk::default());
        assert_eq!(frames.len(), MAX_PHYSICAL_FRAMES);
    }

    /// With a goroutine to jump to, `runtime.systemstack` continues on the
    /// goroutine's stack at its saved SP (the g0 -> curg switch).
    #[test]
    fn systemstack_jumps_to_the_goroutine_stack() {
        let t = Table(vec![
            (0x1000, "main.leaf", 0, 0),
            (0x5000, "runtime.systemstack", func_flag::SPWRITE, 0),
            (0x2000, "main.mid", 0, 0),
            (0x3000, "runtime.goexit", func_flag::TOP_FRAME, 0),
        ]);
        let mut mem = stack(0x7000, &[0x5004]);
        // The goroutine stack: systemstack's frame at 0x9000 returns to mid.
        mem.add(
            0x9000,
            [0x2004u64, 0x3001]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect(),
        );
        let curg = G {
            stack_lo: 0x8000,
            stack_hi: 0xa000,
            sched_sp: 0x9000,
            ..G::default()
        };
        let how = Walk {
            jump_to: Some(&curg),
            ..Walk::default()
        };
        let frames = walk(&mem, &t, start(0x1004, 0x7000, true), how);
        let names: Vec<&str> = frames.iter().map(|f| &*f.info.name).collect();
        assert_eq!(
            names,
            [
                "main.leaf",
                "runtime.systemstack",
                "main.mid",
                "runtime.goexit"
            ]
        );
        assert_eq!(frames[1].sp, 0x9000);
        // Without the goroutine, SPWRITE systemstack ends the walk.
        let alone = walk(&mem, &t, start(0x1004, 0x7000, true), Walk::default());
        assert_eq!(alone.len(), 2);
    }

    /// From C code the frame-pointer chain leads to the first Go return
    /// address; a chain that does not climb, or is misaligned, gives up.
    #[test]
    fn climbs_frame_pointers_from_c_to_go() {
        let t = table();
        // bp 0x7000 -> saved bp 0x7010, return 0x9999 (C); 0x7010 -> return 0x2010 (Go).
        let mem = stack(0x7000, &[0x7010, 0x9999, 0x7100, 0x2010]);
        let regs = |bp| ThreadRegs {
            tid: 1,
            pc: 0x9990,
            sp: 0x6ff0,
            bp,
        };
        assert_eq!(climb_to_go(&mem, &t, &regs(0x7000)), Some((0x2010, 0x7020)));
        assert_eq!(climb_to_go(&mem, &t, &regs(0x7003)), None);
        let looping = stack(0x7000, &[0x7000, 0x9999]);
        assert_eq!(climb_to_go(&looping, &t, &regs(0x7000)), None);
    }
}
