//! Stack unwinding the way the Go runtime's `unwinder` does it (traceback.go):
//! `fp = sp + pcsp(pc) + 8`, return address at `fp-8`, stop at TopFrame
//! functions, at SPWRITE functions (except the innermost frame of a syscall),
//! and at unknown return addresses. Injected calls (`sigpanic`,
//! `asyncPreempt`, `debugCallV2`) make their caller's PC a trapping PC,
//! which is symbolized without backing up one byte.

use std::sync::Arc;

use crate::pclntab::func_flag;

use super::goroutine::{ThreadRegs, G, G_RUNNING, G_SYSCALL};
use super::model::{PcInfo, Runtime};

/// Bound on physical frames per stack (a 1 GiB stack of minimal frames
/// would be larger, but no real traceback needs more).
pub const MAX_PHYSICAL_FRAMES: usize = 1_000_000;
/// Bound on frame-pointer hops while looking for Go code from a C PC.
const MAX_FP_HOPS: usize = 64;

/// One physical frame.
#[derive(Debug, Clone)]
pub struct PhysFrame {
    /// PC in the function: a return address, or the trapping PC.
    pub pc: u64,
    /// SP at `pc`.
    pub sp: u64,
    /// Frame pointer in the runtime's sense: the caller's SP (the CFA).
    pub fp: u64,
    /// The PC used for symbolization (`pc-1` after a normal call).
    pub sym_pc: u64,
    /// Function facts.
    pub info: Arc<PcInfo>,
}

impl PhysFrame {
    /// `argp`: where the argument spill area starts (x86: `fp`).
    pub fn argp(&self) -> u64 {
        self.fp
    }
}

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

    /// From a PC outside Go code (C, vDSO) follows the frame-pointer chain
    /// until a Go PC; returns the new (pc, sp).
    fn climb_to_go(&self, regs: &ThreadRegs) -> Option<(u64, u64)> {
        let mem = self.mem();
        let mut bp = regs.bp;
        for _ in 0..MAX_FP_HOPS {
            if bp == 0 || bp % 8 != 0 {
                return None;
            }
            let ret = mem.read_u64(bp.wrapping_add(8)).ok()?;
            let next = mem.read_u64(bp).ok()?;
            if self.pc_info(ret).is_some() {
                return Some((ret, bp.checked_add(16)?));
            }
            if next <= bp {
                return None;
            }
            bp = next;
        }
        None
    }

    /// Physical frames from `start`, innermost first. `stack` bounds the
    /// SPs when known (`[lo, hi)` of the goroutine stack).
    pub fn unwind(&self, start: StartRegs, stack: Option<(u64, u64)>) -> Vec<PhysFrame> {
        self.unwind_inner(start, stack, None)
    }

    /// Like [`Runtime::unwind`] for a thread on its g0 stack, following the
    /// runtime's stack jumps (`unwindJumpStack`): at `runtime.morestack` the
    /// walk continues at `curg.sched.pc/sp`, at `runtime.systemstack` it
    /// continues on the goroutine stack at `curg.sched.sp`.
    pub fn unwind_jumping(&self, start: StartRegs, curg: &G) -> Vec<PhysFrame> {
        self.unwind_inner(start, None, Some(curg))
    }

    fn unwind_inner(
        &self,
        start: StartRegs,
        stack: Option<(u64, u64)>,
        jump_to: Option<&G>,
    ) -> Vec<PhysFrame> {
        let mut jump_to = jump_to;
        let mut stack = stack;
        let mem = self.mem();
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
            let Some(info) = self.pc_info(pc) else {
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
                        let Some(next) = self.pc_info(pc) else { break };
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
            if lr == 0 || self.pc_info(lr).is_none() {
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
        } else if let Some((pc, sp)) = self.climb_to_go(regs) {
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
            self.climb_to_go(&t.regs).map(|(pc, sp)| StartRegs {
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
        self.unwind(start, None)
    }
}
