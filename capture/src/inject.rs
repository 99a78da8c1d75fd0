//! Running one syscall inside the frozen target, on a thread of its own
//! that Go parked in `runtime.futex`: the fork of `--cow`, its reaping
//! `wait4`, and the pre-copy's `userfaultfd` and `close` all go through here.
//!
//! No byte of the target is patched. The `syscall` instruction reused is the
//! one the chosen thread is already blocked on: Go's ABI0 futex stub `MOVL
//! $202, AX; SYSCALL; MOVL AX, ret+40(FP); RET` (identical in Go 1.21 to
//! 1.27). A *host* thread must satisfy all of:
//!
//! * it stopped in an event stop (not exiting, not in group-stop);
//! * `orig_rax == 202` (futex) and `rax` is a restart code (-ERESTARTSYS …),
//!   i.e. it is blocked in the wait, not returning from it;
//! * the seven bytes at `rip - 2` are exactly `0f 05 89 44 24 30 c3`;
//! * the wait is untimed (`r10 == 0`, FUTEX_WAIT) and the futex word still
//!   holds the expected value, so the waiter would keep sleeping.
//!
//! Invariants: the host's registers are restored on every path that can
//! still reach it (the kernel's restart of the interrupted futex wait, which
//! no longer happens from a syscall-exit stop, is done by hand); it is driven
//! with `PTRACE_SYSCALL`, never single-stepped (the kernel clears syscall
//! tracing when the tracer dies, but not the trap flag, and a stray SIGTRAP
//! makes Go throw); foreign signals that arrive meanwhile are queued again.
//! If rdlv-snap dies mid-injection the host returns from the "futex" with the
//! syscall's result in `rax`, which the stub only stores; Go treats any
//! futex result as a possible spurious wake-up.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::CaptureError;
use crate::freeze::{ptrace, wait_raw, StoppedThread, Waited};
use crate::proc;

/// `__NR_futex` on x86-64.
pub(crate) const SYS_FUTEX: u64 = 202;
/// `close` on x86-64.
pub(crate) const SYS_CLOSE: u64 = 3;
/// `userfaultfd` on x86-64.
pub(crate) const SYS_USERFAULTFD: u64 = 323;
/// `__NR_clone` on x86-64.
pub(crate) const SYS_CLONE: u64 = 56;
/// `__NR_wait4` on x86-64.
pub(crate) const SYS_WAIT4: u64 = 61;
/// `__NR_exit_group` on x86-64.
pub(crate) const SYS_EXIT_GROUP: u64 = 231;
/// Go's `runtime.futex` stub from its `syscall` on: `SYSCALL; MOVL AX,
/// 0x30(SP); RET`. Its parent branch only stores eax and returns, which is
/// what makes the reuse safe even if we die mid-injection.
const FUTEX_STUB_TAIL: [u8; 7] = [0x0f, 0x05, 0x89, 0x44, 0x24, 0x30, 0xc3];
/// Kernel-internal restart codes a thread interrupted in a syscall shows in
/// `rax` (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK).
pub(crate) const RESTART_CODES: [i64; 4] = [-512, -513, -514, -516];
/// FUTEX_WAIT (0) with FUTEX_PRIVATE_FLAG (128); the low 7 bits are the op.
const FUTEX_OP_MASK: u64 = 0x7f;
/// Exit code of an armed child that ran on after our death: it lets the
/// sentinel recognise the zombie even before it was told the child's pid.
pub(crate) const ARMED_EXIT_CODE: u64 = 82;
/// How long to wait for a syscall stop or fork event before giving up.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an injected syscall could not run (or its outcome is unknown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// No thread parked in Go's futex stub to host the injected syscall.
    #[error("no thread is parked in Go's runtime.futex to host the injected syscall")]
    NoHostThread,
    /// The target exited during the injection.
    #[error("process {pid} exited during the syscall injection")]
    Exited {
        /// The target pid.
        pid: u32,
    },
    /// A ptrace request failed.
    #[error("ptrace {op} on {tid} failed: {errno}")]
    Ptrace {
        /// Request name.
        op: &'static str,
        /// Thread or process id.
        tid: u32,
        /// The error.
        errno: Errno,
    },
    /// A stop or event did not arrive in time.
    #[error("thread {tid} did not report {what} within {} s", STEP_TIMEOUT.as_secs())]
    Timeout {
        /// Thread id.
        tid: u32,
        /// What we waited for.
        what: &'static str,
    },
}

impl InjectError {
    /// The capture error this ends a capture with; `what` names the method
    /// (`--cow fork injection`, `--precopy write tracking`), which tells a
    /// failure of a target that died meanwhile apart (see `capture.rs`).
    pub(crate) fn into_capture(self, what: &str) -> CaptureError {
        match self {
            InjectError::Exited { pid } => CaptureError::Exited { pid },
            InjectError::Ptrace { op, tid, errno } => CaptureError::Ptrace { op, tid, errno },
            other => CaptureError::Parse {
                what: what.into(),
                detail: other.to_string(),
            },
        }
    }
}

fn get_regs(tid: u32) -> Result<libc::user_regs_struct, InjectError> {
    // SAFETY: user_regs_struct is plain old data; all-zero is valid.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _ as usize).map_err(|errno| {
        InjectError::Ptrace {
            op: "GETREGS",
            tid,
            errno,
        }
    })?;
    Ok(regs)
}

fn set_regs(tid: u32, regs: &libc::user_regs_struct) -> Result<(), InjectError> {
    ptrace(libc::PTRACE_SETREGS, tid, 0, regs as *const _ as usize)
        .map(|_| ())
        .map_err(|errno| InjectError::Ptrace {
            op: "SETREGS",
            tid,
            errno,
        })
}

/// Waits for the next stop of `tid` (retried on EINTR, bounded by
/// [`STEP_TIMEOUT`]: WNOHANG polling that spins briefly, then sleeps
/// lightly). Returns [`Waited::Stopped`] or [`Waited::Gone`], never `Pending`.
pub(crate) fn wait_stop(tid: u32, what: &'static str) -> Result<Waited, InjectError> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match wait_raw(tid) {
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(InjectError::Ptrace {
                    op: "WAIT",
                    tid,
                    errno,
                })
            }
            Ok(Waited::Pending) => {
                if start.elapsed() > STEP_TIMEOUT {
                    return Err(InjectError::Timeout { tid, what });
                }
                // A thread killed (with its process) while we wait may never
                // report again: don't wait out the timeout for it.
                if spins % 1000 == 999 && proc::gone_or_exiting(tid) {
                    return Ok(Waited::Gone);
                }
                // Spin briefly (a step takes microseconds), then sleep lightly
                // (a fork of a large process takes milliseconds).
                spins += 1;
                if spins < 200 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            Ok(waited) => return Ok(waited),
        }
    }
}

/// Reads `buf.len()` bytes of `pid`'s memory at `addr` through /proc/PID/mem.
pub(crate) fn read_target(pid: u32, addr: u64, buf: &mut [u8]) -> bool {
    let Ok(file) = File::open(proc::proc_dir(pid).join("mem")) else {
        return false;
    };
    file.read_exact_at(buf, addr).is_ok()
}

/// Whether `regs` (of a thread of `pid`) show a thread parked in Go's
/// futex stub, in an untimed wait that would keep sleeping. Returns the
/// address of its `syscall` instruction.
fn futex_host(pid: u32, regs: &libc::user_regs_struct) -> Option<u64> {
    if regs.orig_rax != SYS_FUTEX || !RESTART_CODES.contains(&(regs.rax as i64)) {
        return None;
    }
    // FUTEX_WAIT (op 0, any private flag) with no timeout.
    if regs.rsi & FUTEX_OP_MASK != 0 || regs.r10 != 0 {
        return None;
    }
    let syscall_addr = regs.rip.checked_sub(2)?;
    let mut code = [0u8; FUTEX_STUB_TAIL.len()];
    if !read_target(pid, syscall_addr, &mut code) || code != FUTEX_STUB_TAIL {
        return None;
    }
    let mut word = [0u8; 4];
    if !read_target(pid, regs.rdi, &mut word) || u32::from_ne_bytes(word) != regs.rdx as u32 {
        return None;
    }
    Some(syscall_addr)
}

/// A thread of the frozen target parked in Go's futex stub, chosen to run
/// injected syscalls. Found once and used for every syscall of a sequence:
/// after one injection the thread no longer looks parked (its registers
/// stand at the hand-made restart), so searching again could find none.
pub(crate) struct ParkedHost {
    tid: u32,
    saved: libc::user_regs_struct,
    syscall_addr: u64,
}

impl ParkedHost {
    /// The first thread of `threads` that qualifies ([`InjectError::NoHostThread`]
    /// when none does).
    pub(crate) fn find(pid: u32, threads: &[StoppedThread]) -> Result<ParkedHost, InjectError> {
        for thread in threads {
            if thread.exiting || thread.group_stopped {
                continue;
            }
            let Ok(saved) = get_regs(thread.tid) else {
                continue;
            };
            if let Some(syscall_addr) = futex_host(pid, &saved) {
                return Ok(ParkedHost {
                    tid: thread.tid,
                    saved,
                    syscall_addr,
                });
            }
        }
        Err(InjectError::NoHostThread)
    }

    /// The host's thread id.
    pub(crate) fn tid(&self) -> u32 {
        self.tid
    }

    /// Address of the `syscall` instruction injected syscalls run on.
    pub(crate) fn syscall_addr(&self) -> u64 {
        self.syscall_addr
    }

    /// The instruction pointer the kernel shows seccomp for a syscall
    /// injected here (the address after the `syscall` instruction).
    pub(crate) fn ip(&self) -> u64 {
        self.syscall_addr.wrapping_add(2)
    }

    /// The futex word the host waits on (how an orphaned fork child, which
    /// waits on the same word, is recognised).
    pub(crate) fn futex_addr(&self) -> u64 {
        self.saved.rdi
    }

    /// Runs one syscall (not clone) on the thread, restoring its registers
    /// afterwards, and returns the syscall's result.
    pub(crate) fn syscall(&self, pid: u32, nr: u64, args: [u64; 5]) -> Result<i64, InjectError> {
        debug_assert_ne!(
            nr, SYS_CLONE,
            "fork injection goes through ParkedHost::fork"
        );
        inject(pid, self, nr, args, false).map(|injected| injected.ret)
    }

    /// [`ParkedHost::syscall`] with the thread's seccomp filters suspended
    /// for this one call (`PTRACE_O_SUSPEND_SECCOMP`, reset with the other
    /// options right after it): for a call the filters would refuse with
    /// an errno. Needs CAP_SYS_ADMIN and a tracer under no filter itself;
    /// otherwise setting the option fails (`SETOPTIONS`) before anything
    /// is injected.
    pub(crate) fn syscall_unfiltered(
        &self,
        pid: u32,
        nr: u64,
        args: [u64; 5],
    ) -> Result<i64, InjectError> {
        inject(pid, self, nr, args, true).map(|injected| injected.ret)
    }

    /// Makes the target `fork` (clone with SIGCHLD, no CLONE_VM) on the
    /// thread; the child is caught at birth and pointed at
    /// `exit_group(82)` before the parent goes on.
    pub(crate) fn fork(&self, pid: u32) -> Result<Injected, InjectError> {
        inject(
            pid,
            self,
            SYS_CLONE,
            [libc::SIGCHLD as u64, 0, 0, 0, 0],
            false,
        )
    }
}

/// Whether the stopped thread `tid` stands at an injected syscall `nr` on
/// the `syscall` instruction at `syscall_addr` that has not run yet: its
/// registers are as [`inject`] sets them before resuming (a tracer killed
/// right then leaves it so; detached, it runs the syscall untraced). A
/// thread whose registers cannot be read (gone) has nothing pending.
pub(crate) fn injection_pending(tid: u32, syscall_addr: u64, nr: u64) -> bool {
    get_regs(tid)
        .is_ok_and(|regs| regs.rip == syscall_addr && regs.rax == nr && regs.orig_rax == u64::MAX)
}

/// Ptrace options the freeze set (TRACECLONE|TRACEEXIT), restored after the injection.
const FREEZE_OPTIONS: usize = (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXIT) as usize;

/// Outcome of running one injected syscall on a host thread.
pub(crate) struct Injected {
    /// The syscall's return value.
    pub(crate) ret: i64,
    /// The child created, for clone.
    pub(crate) child: Option<u32>,
}

/// Runs `nr(args)` on the host thread's own `syscall` instruction and
/// restores every register afterwards (on every path that can still reach
/// the thread). For clone, the child is caught at birth and its registers
/// set to `exit_group(82)` before the parent goes on.
///
/// The thread is driven with `PTRACE_SYSCALL`, never single-stepped: the
/// kernel clears syscall tracing when the tracer dies, but not the trap
/// flag, and a Go thread that takes a stray SIGTRAP crashes the process.
fn inject(
    pid: u32,
    host: &ParkedHost,
    nr: u64,
    args: [u64; 5],
    suspend_seccomp: bool,
) -> Result<Injected, InjectError> {
    let tid = host.tid;
    let is_fork = nr == SYS_CLONE;
    let mut options = FREEZE_OPTIONS | libc::PTRACE_O_TRACESYSGOOD as usize;
    if is_fork {
        options |= libc::PTRACE_O_TRACEFORK as usize;
    }
    if suspend_seccomp {
        options |= libc::PTRACE_O_SUSPEND_SECCOMP as usize;
    }
    crate::failpoint::kill_target_before_injection(nr, pid, tid);
    ptrace(libc::PTRACE_SETOPTIONS, tid, 0, options)
        .map_err(|errno| left_its_stop(pid, tid, "SETOPTIONS", errno))?;
    let mut regs = host.saved;
    regs.rip = host.syscall_addr;
    regs.rax = nr;
    regs.orig_rax = u64::MAX;
    regs.rdi = args[0];
    regs.rsi = args[1];
    regs.rdx = args[2];
    regs.r10 = args[3];
    regs.r8 = args[4];
    let mut ran = false;
    let outcome = set_regs(tid, &regs).and_then(|()| {
        crate::failpoint::hit_injected("before", nr);
        run_syscall(pid, host, is_fork, &mut ran)
    });
    // Restore on every path: the thread is in a ptrace stop unless it is gone.
    let restored = set_regs(tid, &restart_equivalent(&host.saved, ran));
    let _ = ptrace(libc::PTRACE_SETOPTIONS, tid, 0, FREEZE_OPTIONS);
    let (injected, foreign) = outcome.map_err(|e| match e {
        InjectError::Ptrace { op, tid, errno } => left_its_stop(pid, tid, op, errno),
        other => other,
    })?;
    // Signals that arrived for the thread meanwhile were suppressed; queue
    // them again so that they are delivered after the detach.
    for signal in foreign {
        // SAFETY: plain syscall.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                pid as libc::c_long,
                tid as libc::c_long,
                signal as libc::c_long,
            )
        };
    }
    restored?;
    crate::failpoint::hit_injected("after", nr);
    Ok(injected)
}

/// The registers to give back. Before our syscall ran, the saved ones. After
/// it, the thread stands at a syscall-exit stop where the kernel's restart
/// of the interrupted futex wait no longer happens, so we do what the
/// kernel would have done on resume: point `rip` back at the `syscall`
/// instruction with `rax` = the interrupted syscall's number (and
/// `orig_rax = -1` so it is not restarted twice). The futex wait is then
/// re-entered with its original arguments, exactly as after a signal.
pub(crate) fn restart_equivalent(
    saved: &libc::user_regs_struct,
    ran: bool,
) -> libc::user_regs_struct {
    let mut regs = *saved;
    let restarts = RESTART_CODES[..3].contains(&(saved.rax as i64));
    if ran && restarts && (saved.orig_rax as i64) >= 0 {
        regs.rip = saved.rip.wrapping_sub(2);
        regs.rax = saved.orig_rax;
        regs.orig_rax = u64::MAX;
    }
    regs
}

/// The error of ptrace request `op` on host thread `tid`, which we hold in
/// a ptrace stop. ESRCH means it left that stop, which only a SIGKILL of
/// its process makes it do: when its next report is its exit (or it is
/// gone) the process exiting is the error, not the request.
fn left_its_stop(pid: u32, tid: u32, op: &'static str, errno: Errno) -> InjectError {
    if errno == Errno::ESRCH {
        match wait_stop(tid, "the exit of a killed thread") {
            Ok(Waited::Gone) => return InjectError::Exited { pid },
            Ok(Waited::Stopped { event, .. }) if event == libc::PTRACE_EVENT_EXIT => {
                return InjectError::Exited { pid }
            }
            _ => {}
        }
    }
    InjectError::Ptrace { op, tid, errno }
}

/// Resumes the host with `PTRACE_SYSCALL` until the injected syscall's
/// exit stop. Returns the result and the foreign signals suppressed on the
/// way; sets `ran` once the syscall was entered.
fn run_syscall(
    pid: u32,
    host: &ParkedHost,
    is_fork: bool,
    ran: &mut bool,
) -> Result<(Injected, Vec<i32>), InjectError> {
    let tid = host.tid;
    let mut child = None;
    let mut foreign = Vec::new();
    let mut stops = 0u32;
    loop {
        stops += 1;
        if stops > 64 {
            return Err(InjectError::Timeout {
                tid,
                what: "the end of the injected syscall",
            });
        }
        ptrace(libc::PTRACE_SYSCALL, tid, 0, 0).map_err(|errno| InjectError::Ptrace {
            op: "SYSCALL",
            tid,
            errno,
        })?;
        match wait_stop(tid, "the injected syscall")? {
            Waited::Gone | Waited::Pending => return Err(InjectError::Exited { pid }),
            Waited::Stopped { event, .. } if event == libc::PTRACE_EVENT_FORK => {
                let mut message: libc::c_ulong = 0;
                ptrace(
                    libc::PTRACE_GETEVENTMSG,
                    tid,
                    0,
                    &mut message as *mut libc::c_ulong as usize,
                )
                .map_err(|errno| InjectError::Ptrace {
                    op: "GETEVENTMSG",
                    tid,
                    errno,
                })?;
                let pid_of_child = u32::try_from(message).unwrap_or(0);
                if is_fork && pid_of_child != 0 {
                    child = Some(pid_of_child);
                    arm_child(pid_of_child, host.syscall_addr)?;
                }
            }
            Waited::Stopped { event, .. } if event == libc::PTRACE_EVENT_EXIT => {
                return Err(InjectError::Exited { pid });
            }
            Waited::Stopped { event, .. } if event != 0 => {}
            Waited::Stopped { signal, .. } if signal == libc::SIGTRAP | 0x80 => {
                if !*ran {
                    // Syscall-entry stop of our syscall.
                    *ran = true;
                    continue;
                }
                let regs = get_regs(tid)?;
                return Ok((
                    Injected {
                        ret: regs.rax as i64,
                        child,
                    },
                    foreign,
                ));
            }
            Waited::Stopped { signal, .. } => foreign.push(signal),
        }
    }
}

/// Waits for a newborn child's first stop and points it at `exit_group(82)`,
/// so that if we die it exits without running a single Go instruction.
fn arm_child(child: u32, syscall_addr: u64) -> Result<(), InjectError> {
    if wait_stop(child, "the child's first stop")? == Waited::Gone {
        return Ok(());
    }
    let mut regs = get_regs(child)?;
    regs.rip = syscall_addr;
    regs.rax = SYS_EXIT_GROUP;
    regs.orig_rax = u64::MAX;
    regs.rdi = ARMED_EXIT_CODE;
    set_regs(child, &regs)
}
