//! Stack unwinding the way the Go runtime's `unwinder` does it (traceback.go):
//! `fp = sp + pcsp(pc) + 8`, return address at `fp-8`, stop at TopFrame
//! functions, at SPWRITE functions (except the innermost frame of a syscall),
//! and at unknown return addresses. Injected calls (`sigpanic`,
//! `asyncPreempt`, `debugCallV2`) make their caller's PC a trapping PC,
//! which is symbolized without backing up one byte.

use crate::pclntab::func_flag;

use super::frame::PhysFrame;
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

    /// From a PC outside Go code (C, vDSO) follows the frame-pointer chain
    /// until a Go PC; returns the new (pc, sp).
    fn climb_to_go(&self, regs: &ThreadRegs) -> Option<(u64, u64)> {
        let mem = self.mem();
        let mut bp = regs.bp;
        for _ in 0..MAX_FP_HOPS {
            if bp == 0 || !bp.is_multiple_of(8) {
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
        self.unwind_inner(start, stack, None, false)
    }

    /// The registers a signal interrupted, when `frame` is the kernel's
    /// signal frame entry: `runtime.sigtramp`, or `runtime.cgoSigtramp`
    /// (the handler a cgo binary installs, which jumps to `sigtramp`), both
    /// TOPFRAME so a walk stops there, whose return slot holds the restorer
    /// (`runtime.sigreturn__sigaction`). The kernel's `rt_sigframe` starts
    /// with that return address, and the `ucontext` follows it, at the
    /// frame's `fp`.
    pub fn signal_context(&self, frame: &PhysFrame, tid: u32) -> Option<ThreadRegs> {
        if !matches!(
            &*frame.info.name,
            "runtime.sigtramp" | "runtime.cgoSigtramp"
        ) {
            return None;
        }
        self.ucontext_regs(frame.fp, tid)
    }

    /// Reads the interrupted registers from a `ucontext` at `uc`, after
    /// checking that the word below it is a signal restorer: Go's
    /// `runtime.sigreturn__sigaction`, or, in a cgo binary whose handlers
    /// libc installed, libc's `__restore_rt`; both are
    /// `mov $SYS_rt_sigreturn, %rax; syscall`.
    fn ucontext_regs(&self, uc: u64, tid: u32) -> Option<ThreadRegs> {
        let mem = self.mem();
        let restorer = mem.read_u64(uc.checked_sub(8)?).ok()?;
        let go_restorer = self
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

    /// The registers of the code a signal handler interrupted, for a thread
    /// whose registers are inside that handler (on the gsignal stack, in
    /// `runtime.sigtramp` or below it, or in the restorer after the handler
    /// returned); `None` for a thread that is not handling a signal.
    pub fn interrupted_regs(&self, regs: &ThreadRegs) -> Option<ThreadRegs> {
        let in_restorer = match self.pc_info(regs.pc) {
            Some(info) => info.name.starts_with("runtime.sigreturn"),
            // libc's `__restore_rt`, at its `mov` or at its `syscall`.
            None => [regs.pc, regs.pc.wrapping_sub(7)].into_iter().any(|at| {
                let mut code = [0u8; RT_SIGRETURN_CODE.len()];
                self.mem().read(at, &mut code).is_ok() && code == RT_SIGRETURN_CODE
            }),
        };
        if in_restorer {
            // `ret` of sigtramp popped the restorer: sp is at the ucontext.
            return self
                .ucontext_regs(regs.sp.checked_add(8)?, regs.tid)
                .or_else(|| self.ucontext_regs(regs.sp, regs.tid));
        }
        self.unwind_thread(regs, None)
            .iter()
            .find_map(|f| self.signal_context(f, regs.tid))
    }

    /// Like [`Runtime::unwind`] for a thread on its g0 stack, following the
    /// runtime's stack jumps (`unwindJumpStack`): at `runtime.morestack` the
    /// walk continues at `curg.sched.pc/sp`, at `runtime.systemstack` it
    /// continues on the goroutine stack at `curg.sched.sp`.
    /// A thread interrupted by a signal continues, past `runtime.sigtramp`,
    /// at the registers the kernel saved, as gdb shows it.
    pub fn unwind_jumping(&self, start: StartRegs, curg: &G) -> Vec<PhysFrame> {
        self.unwind_inner(start, None, Some(curg), true)
    }

    fn unwind_inner(
        &self,
        start: StartRegs,
        stack: Option<(u64, u64)>,
        jump_to: Option<&G>,
        through_signals: bool,
    ) -> Vec<PhysFrame> {
        let mut signals_left = if through_signals {
            MAX_SIGNAL_FRAMES
        } else {
            0
        };
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
            if signals_left > 0 {
                if let Some(regs) = frames.last().and_then(|f| self.signal_context(f, 0)) {
                    if self.pc_info(regs.pc).is_some() {
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
        self.unwind_inner(start, None, None, true)
    }
}
