//! Copy-on-write capture (`--cow`): the frozen target forks through an
//! injected syscall, the parent runs on at once, and the memory image is read
//! from the stopped child at leisure.
//!
//! # How the fork is injected
//!
//! No byte of the target is patched. The `syscall` instruction we reuse is
//! the one the chosen thread is already blocked on: a Go thread parked in
//! `runtime.futex` (the ABI0 stub `MOVL $202, AX; SYSCALL; MOVL AX,
//! ret+40(FP); RET`, identical in Go 1.21 to 1.27). A *host* thread must
//! satisfy all of:
//!
//! * it stopped in an event stop (not exiting, not in group-stop);
//! * `orig_rax == 202` (futex) and `rax` is a restart code (-ERESTARTSYS …),
//!   i.e. it is blocked in the wait, not returning from it;
//! * the seven bytes at `rip - 2` are exactly `0f 05 89 44 24 30 c3`
//!   (read from the parent's text and verified);
//! * the wait is untimed (`r10 == 0`, FUTEX_WAIT) and the futex word still
//!   holds the expected value, so the waiter would keep sleeping.
//!
//! Its registers are saved, then set to `rip = rip - 2`, `rax = clone`,
//! `rdi = SIGCHLD` (no CLONE_VM: a real fork), `rsi = rdx = r10 = r8 = 0`,
//! `orig_rax = -1` (so the kernel does no syscall-restart processing, as CRIU
//! does). `PTRACE_O_TRACEFORK` is added to that thread's options and it is
//! resumed with `PTRACE_SYSCALL` (never single-stepped: when a tracer dies
//! the kernel clears syscall tracing but not the trap flag, and a stray
//! SIGTRAP makes Go throw). We see the syscall-entry stop, then
//! `PTRACE_EVENT_FORK` (child pid from `PTRACE_GETEVENTMSG`): we wait for
//! the auto-attached child's first stop at once and set *its* registers to
//! `exit_group(82)` through the same instruction; then the parent's
//! syscall-exit stop, where its saved registers are restored, except that
//! the kernel's restart of the interrupted futex wait (which no longer
//! happens from a syscall-exit stop) is done by hand: `rip` back on the
//! `syscall` instruction and `rax = 202`, so the wait is re-entered with its
//! original arguments when the thread resumes.
//! The caller then detaches every parent thread: the pause ends.
//!
//! During the fork the host thread runs at nice -20 (when we may raise it):
//! page-table copying is the whole pause, and on a busy machine it should
//! not queue behind other work. Its previous nice value is restored right
//! after (by the sentinel if we die in between).
//!
//! The child never executes user code while we hold it. Its page tables
//! mirror the parent's at the fork, so presence is scanned on the child and
//! its pages are read with `pread` on `/proc/CHILD/mem` (never
//! `process_vm_readv`: its FOLL_PIN unshares every copy-on-write page).
//! Mappings the child does not hold like the parent ([`parent_only`]:
//! MADV_DONTFORK `dc`, MADV_WIPEONFORK `wf`, and shared writable mappings,
//! whose contents keep changing after the fork) are copied from the parent
//! while it is still frozen. The child is then SIGKILLed and, because only
//! its real parent can reap it, the target is frozen once more and made to
//! call `wait4(child, NULL, __WALL|WNOHANG, NULL)` through the same kind of
//! host thread ([`reap`]).
//!
//! # What a SIGKILL of rdlv-snap does at each instant
//!
//! The kernel detaches every tracee when the tracer dies, so:
//!
//! 1. Before the injected registers are set: nothing was changed; every
//!    thread runs on (the plain-capture guarantee).
//! 2. Between setting the injected registers and the fork event (the fork
//!    syscall itself, about 15-80 ms per GiB of RSS here): the host thread
//!    executes the fork untraced. The parent returns to the futex stub with
//!    the child pid in `rax`; the stub only stores `eax` as the futex result
//!    and returns, and Go treats any futex result as a possible spurious
//!    wake-up and re-checks its condition; the registers we clobbered (rdi,
//!    rsi, rdx, r10, r8, rcx, r11) are dead after the stub. **The target is
//!    unharmed.** The child returns from the "futex" with 0, re-checks the
//!    same condition in its private copy of memory (still unsatisfied: we
//!    checked the futex word) and sleeps again on a private futex no thread
//!    can wake. The [`Sentinel`] was told, before the fork, the futex address
//!    and the last pid allocated: it finds that child (a new single-threaded
//!    child of the target, same executable, in `futex` on that address),
//!    SIGKILLs it and reaps it through the target.
//! 3. Between the fork event and the child's registers being set (a few
//!    microseconds): as 2.
//! 4. From then until the injected `wait4` has run (the whole read of the
//!    child): the child is resumed, executes `exit_group(82)` without running
//!    any Go code and becomes a zombie of the target (only the target can
//!    reap it). A [`Sentinel`] process, started before the freeze and told
//!    the child's pid right after the fork, sees its pipe close without
//!    `done`, and reaps the zombie through the target as [`reap`] does.
//!    A zombie stays only if the sentinel is killed too (e.g. SIGKILL of the
//!    whole process group).
//! 5. During the `wait4` injection: as 2 for the parent (wait4's result goes
//!    into the futex stub just the same); the sentinel reaps the zombie.
//!
//! No instant exists where the target crashes or stays stopped. A child is
//! left behind only if the sentinel dies too (SIGKILL of the whole process
//! group). An armed child that exits before it was announced is still found:
//! it is a zombie of the target with a pid above the announced last pid and
//! exit status 82. `--cow` stays opt-in (see the report of the
//! SIGKILL trials in tests/e2e/cow.rs).
//!
//! # When `--cow` falls back to the plain copy
//!
//! [`refusal`] checks, before anything is stopped: a seccomp filter
//! (`Seccomp: 2`, which could kill the target on `clone`), the target's
//! memory cgroup headroom against the page-table estimate plus the COW
//! budget, and the budget against the page-table estimate. After the stop,
//! [`ForkedImage::fork`] reports [`CowError::NoHostThread`] or
//! [`CowError::ForkFailed`] (EAGAIN from pids.max/RLIMIT_NPROC, ENOMEM under
//! strict overcommit) with the target's registers already restored.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::copy::CopyOutcome;
use crate::error::CaptureError;
use crate::freeze::{check_budget, duration_us, ptrace, Frozen, StoppedThread};
use crate::pages::{PageRange, PAGE_SIZE};
use crate::proc::{self, MapsEntry};

/// `__NR_futex` on x86-64.
const SYS_FUTEX: u64 = 202;
/// `__NR_clone` on x86-64.
const SYS_CLONE: u64 = 56;
/// `__NR_wait4` on x86-64.
const SYS_WAIT4: u64 = 61;
/// `__NR_exit_group` on x86-64.
const SYS_EXIT_GROUP: u64 = 231;
/// Go's `runtime.futex` stub from its `syscall` on: `SYSCALL; MOVL AX,
/// 0x30(SP); RET`. Its parent branch only stores eax and returns, which is
/// what makes the reuse safe even if we die mid-injection.
const FUTEX_STUB_TAIL: [u8; 7] = [0x0f, 0x05, 0x89, 0x44, 0x24, 0x30, 0xc3];
/// Kernel-internal restart codes a thread interrupted in a syscall shows in
/// `rax` (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK).
const RESTART_CODES: [i64; 4] = [-512, -513, -514, -516];
/// FUTEX_WAIT (0) with FUTEX_PRIVATE_FLAG (128); the low 7 bits are the op.
const FUTEX_OP_MASK: u64 = 0x7f;
/// Exit code of an armed child that ran on after our death: it lets the
/// sentinel recognise the zombie even before it was told the child's pid.
const ARMED_EXIT_CODE: u64 = 82;
/// `__WALL` for wait4's options argument.
const WAIT_ALL: u64 = 0x4000_0000;
/// `WNOHANG`.
const WAIT_NOHANG: u64 = 1;
/// Bytes per pread on the child's memory (>= 1 MiB keeps syscall cost low).
const READ_CHUNK: u64 = 4 << 20;
/// Reader threads for the child.
const READ_THREADS: usize = 2;
/// How long to wait for a syscall stop or fork event before giving up.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to find a parked host thread when reaping (threads park and
/// wake continuously in a busy Go process).
const REAP_ATTEMPTS: u32 = 20;
/// Default `--cow-max-extra`: the extra memory (page tables plus pages
/// copied on write while the child lives) we accept to add to the target.
pub const DEFAULT_MAX_EXTRA: u64 = 512 << 20;

/// Why the copy-on-write path could not be used (or failed).
#[derive(Debug, thiserror::Error)]
pub enum CowError {
    /// No thread parked in Go's futex stub to host the injected syscall.
    #[error("no thread is parked in Go's runtime.futex to host the injected fork")]
    NoHostThread,
    /// The injected clone returned an error.
    #[error("fork refused ({errno}{hint})", hint = fork_hint(*errno))]
    ForkFailed {
        /// The error returned by clone.
        errno: Errno,
    },
    /// The target exited during the injection.
    #[error("process {pid} exited during the fork injection")]
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
    /// Reading the child failed as a whole.
    #[error("reading the forked image {child}: {source}")]
    Read {
        /// Child pid.
        child: u32,
        /// The cause.
        source: std::io::Error,
    },
    /// Freezing or budgets failed during the reap.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

impl From<CowError> for CaptureError {
    fn from(error: CowError) -> CaptureError {
        match error {
            CowError::Capture(inner) => inner,
            CowError::Exited { pid } => CaptureError::Exited { pid },
            CowError::Ptrace { op, tid, errno } => CaptureError::Ptrace { op, tid, errno },
            CowError::Read { child, source } => CaptureError::Proc {
                path: proc::proc_dir(child).join("mem"),
                source,
            },
            other => CaptureError::Parse {
                what: "--cow fork injection".into(),
                detail: other.to_string(),
            },
        }
    }
}

fn fork_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EAGAIN => ": pids.max or RLIMIT_NPROC?",
        Errno::ENOMEM => ": vm.overcommit_memory=2 or memory cgroup limit?",
        _ => "",
    }
}

impl CowError {
    /// Whether the capture should continue with the plain copy (the target
    /// is untouched and running or still frozen with its registers intact).
    pub fn falls_back(&self) -> bool {
        matches!(self, CowError::NoHostThread | CowError::ForkFailed { .. })
    }
}

fn get_regs(tid: u32) -> Result<libc::user_regs_struct, CowError> {
    // SAFETY: user_regs_struct is plain old data; all-zero is valid.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _ as usize).map_err(|errno| {
        CowError::Ptrace {
            op: "GETREGS",
            tid,
            errno,
        }
    })?;
    Ok(regs)
}

fn set_regs(tid: u32, regs: &libc::user_regs_struct) -> Result<(), CowError> {
    ptrace(libc::PTRACE_SETREGS, tid, 0, regs as *const _ as usize)
        .map(|_| ())
        .map_err(|errno| CowError::Ptrace {
            op: "SETREGS",
            tid,
            errno,
        })
}

/// A stop reported by `waitpid`, decoded without nix (real-time signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Stopped by a signal (`event == 0`) or a ptrace event.
    Stopped { signal: i32, event: i32 },
    /// Exited or killed.
    Gone,
}

fn decode(status: libc::c_int) -> Stop {
    if libc::WIFSTOPPED(status) {
        Stop::Stopped {
            signal: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xffff,
        }
    } else {
        Stop::Gone
    }
}

/// Waits for the next stop of `tid` (blocking, retried on EINTR, bounded by
/// [`STEP_TIMEOUT`] through WNOHANG polling once the first millisecond passed).
fn wait_stop(tid: u32, what: &'static str) -> Result<Stop, CowError> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: plain syscall with a valid out-pointer.
        let ret = unsafe {
            libc::waitpid(
                tid as libc::pid_t,
                &mut status,
                libc::__WALL | libc::WNOHANG,
            )
        };
        match ret {
            -1 => match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD => return Ok(Stop::Gone),
                errno => {
                    return Err(CowError::Ptrace {
                        op: "WAIT",
                        tid,
                        errno,
                    })
                }
            },
            0 => {
                if start.elapsed() > STEP_TIMEOUT {
                    return Err(CowError::Timeout { tid, what });
                }
                // A thread killed (with its process) while we wait may never
                // report again: don't wait out the timeout for it.
                if spins % 1000 == 999 && proc::gone_or_exiting(tid) {
                    return Ok(Stop::Gone);
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
            _ => return Ok(decode(status)),
        }
    }
}

/// Reads `buf.len()` bytes of `pid`'s memory at `addr` through /proc/PID/mem.
fn read_target(pid: u32, addr: u64, buf: &mut [u8]) -> bool {
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

/// A parked thread chosen to run one injected syscall.
struct Host {
    tid: u32,
    saved: libc::user_regs_struct,
    syscall_addr: u64,
}

fn find_host(pid: u32, threads: &[StoppedThread]) -> Result<Host, CowError> {
    for thread in threads {
        if thread.exiting || thread.group_stopped {
            continue;
        }
        let Ok(saved) = get_regs(thread.tid) else {
            continue;
        };
        if let Some(syscall_addr) = futex_host(pid, &saved) {
            return Ok(Host {
                tid: thread.tid,
                saved,
                syscall_addr,
            });
        }
    }
    Err(CowError::NoHostThread)
}

/// A thread of the frozen target parked in Go's futex stub, chosen to run
/// injected syscalls. Found once and used for every syscall of a sequence:
/// after one injection the thread no longer looks parked (its registers
/// stand at the hand-made restart), so searching again could find none.
pub(crate) struct ParkedHost(Host);

impl ParkedHost {
    /// The first thread of `threads` that qualifies ([`CowError::NoHostThread`]
    /// when none does).
    pub(crate) fn find(pid: u32, threads: &[StoppedThread]) -> Result<ParkedHost, CowError> {
        find_host(pid, threads).map(ParkedHost)
    }

    /// Runs one syscall (not clone) on the thread, restoring its registers
    /// afterwards, and returns the syscall's result.
    pub(crate) fn inject(&self, pid: u32, nr: u64, args: [u64; 5]) -> Result<i64, CowError> {
        debug_assert_ne!(
            nr, SYS_CLONE,
            "fork injection goes through ForkedImage::fork"
        );
        inject(pid, &self.0, nr, args).map(|injected| injected.ret)
    }
}

/// Ptrace options the freeze set (TRACECLONE|TRACEEXIT), restored after the injection.
const FREEZE_OPTIONS: usize = (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXIT) as usize;

/// Outcome of running one injected syscall on a host thread.
struct Injected {
    /// The syscall's return value.
    ret: i64,
    /// The child created, for clone.
    child: Option<u32>,
}

/// Runs `nr(args)` on the host thread's own `syscall` instruction and
/// restores every register afterwards (on every path that can still reach
/// the thread). For clone, the child is caught at birth and its registers
/// set to `exit_group(82)` before the parent goes on.
///
/// The thread is driven with `PTRACE_SYSCALL`, never single-stepped: the
/// kernel clears syscall tracing when the tracer dies, but not the trap
/// flag, and a Go thread that takes a stray SIGTRAP crashes the process.
fn inject(pid: u32, host: &Host, nr: u64, args: [u64; 5]) -> Result<Injected, CowError> {
    let tid = host.tid;
    let is_fork = nr == SYS_CLONE;
    let mut options = FREEZE_OPTIONS | libc::PTRACE_O_TRACESYSGOOD as usize;
    if is_fork {
        options |= libc::PTRACE_O_TRACEFORK as usize;
    }
    ptrace(libc::PTRACE_SETOPTIONS, tid, 0, options).map_err(|errno| CowError::Ptrace {
        op: "SETOPTIONS",
        tid,
        errno,
    })?;
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
    let outcome = set_regs(tid, &regs).and_then(|()| run_syscall(pid, host, is_fork, &mut ran));
    // Restore on every path: the thread is in a ptrace stop unless it is gone.
    let restored = set_regs(tid, &restart_equivalent(&host.saved, ran));
    let _ = ptrace(libc::PTRACE_SETOPTIONS, tid, 0, FREEZE_OPTIONS);
    let (injected, foreign) = outcome?;
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
    Ok(injected)
}

/// The registers to give back. Before our syscall ran, the saved ones. After
/// it, the thread stands at a syscall-exit stop where the kernel's restart
/// of the interrupted futex wait no longer happens, so we do what the
/// kernel would have done on resume: point `rip` back at the `syscall`
/// instruction with `rax` = the interrupted syscall's number (and
/// `orig_rax = -1` so it is not restarted twice). The futex wait is then
/// re-entered with its original arguments, exactly as after a signal.
fn restart_equivalent(saved: &libc::user_regs_struct, ran: bool) -> libc::user_regs_struct {
    let mut regs = *saved;
    let restarts = RESTART_CODES[..3].contains(&(saved.rax as i64));
    if ran && restarts && (saved.orig_rax as i64) >= 0 {
        regs.rip = saved.rip.wrapping_sub(2);
        regs.rax = saved.orig_rax;
        regs.orig_rax = u64::MAX;
    }
    regs
}

/// Resumes the host with `PTRACE_SYSCALL` until the injected syscall's
/// exit stop. Returns the result and the foreign signals suppressed on the
/// way; sets `ran` once the syscall was entered.
fn run_syscall(
    pid: u32,
    host: &Host,
    is_fork: bool,
    ran: &mut bool,
) -> Result<(Injected, Vec<i32>), CowError> {
    let tid = host.tid;
    let mut child = None;
    let mut foreign = Vec::new();
    let mut stops = 0u32;
    loop {
        stops += 1;
        if stops > 64 {
            return Err(CowError::Timeout {
                tid,
                what: "the end of the injected syscall",
            });
        }
        ptrace(libc::PTRACE_SYSCALL, tid, 0, 0).map_err(|errno| CowError::Ptrace {
            op: "SYSCALL",
            tid,
            errno,
        })?;
        match wait_stop(tid, "the injected syscall")? {
            Stop::Gone => return Err(CowError::Exited { pid }),
            Stop::Stopped { event, .. } if event == libc::PTRACE_EVENT_FORK => {
                let mut message: libc::c_ulong = 0;
                ptrace(
                    libc::PTRACE_GETEVENTMSG,
                    tid,
                    0,
                    &mut message as *mut libc::c_ulong as usize,
                )
                .map_err(|errno| CowError::Ptrace {
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
            Stop::Stopped { event, .. } if event == libc::PTRACE_EVENT_EXIT => {
                return Err(CowError::Exited { pid });
            }
            Stop::Stopped { event, .. } if event != 0 => {}
            Stop::Stopped { signal, .. } if signal == libc::SIGTRAP | 0x80 => {
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
            Stop::Stopped { signal, .. } => foreign.push(signal),
        }
    }
}

/// Waits for a newborn child's first stop and points it at `exit_group(82)`,
/// so that if we die it exits without running a single Go instruction.
fn arm_child(child: u32, syscall_addr: u64) -> Result<(), CowError> {
    if wait_stop(child, "the child's first stop")? == Stop::Gone {
        return Ok(());
    }
    let mut regs = get_regs(child)?;
    regs.rip = syscall_addr;
    regs.rax = SYS_EXIT_GROUP;
    regs.orig_rax = u64::MAX;
    regs.rdi = ARMED_EXIT_CODE;
    set_regs(child, &regs)
}

/// A forked, stopped copy of the target, killed when dropped.
pub struct ForkedImage {
    child: u32,
    /// Microseconds of the injection (registers, fork syscall, restore).
    pub fork_us: u64,
    killed: bool,
}

impl ForkedImage {
    /// Makes the frozen target fork. Must run on the thread that froze it.
    /// On error the host thread's registers are restored (the caller still
    /// holds the target frozen); see [`CowError::falls_back`].
    ///
    /// `sentinel` is told before the fork how to recognise an orphaned
    /// child, and its pid right after.
    pub fn fork(
        pid: u32,
        frozen: &Frozen,
        mut sentinel: Option<&mut Sentinel>,
    ) -> Result<ForkedImage, CowError> {
        let started = Instant::now();
        let host = find_host(pid, frozen.threads())?;
        if let Some(sentinel) = sentinel.as_deref_mut() {
            sentinel.send(&format!("forking {:x} {}", host.saved.rdi, last_pid()));
        }
        // The fork's cost (copying page tables) is paid by the host thread
        // while every other thread of the target waits: on a busy machine
        // it should not queue behind other work. Restored right after; the
        // sentinel restores it if we die in between.
        let boost = ThreadNice::raise(host.tid);
        if let (Some(sentinel), Some(boost)) = (sentinel.as_deref_mut(), boost.as_ref()) {
            sentinel.send(&format!("nice {} {}", boost.tid, boost.previous));
        }
        let injected = inject(pid, &host, SYS_CLONE, [libc::SIGCHLD as u64, 0, 0, 0, 0]);
        if let Some(boost) = boost {
            boost.restore();
        }
        if let Some(sentinel) = sentinel {
            match &injected {
                Ok(Injected {
                    child: Some(child), ..
                }) => sentinel.send(&format!("child {child}")),
                Ok(_) => sentinel.send("done"),
                Err(_) => {}
            }
        }
        let injected = injected?;
        match injected.child {
            Some(child) if injected.ret == i64::from(child) => Ok(ForkedImage {
                child,
                fork_us: duration_us(started.elapsed()),
                killed: false,
            }),
            Some(child) => {
                // Event without a matching return value: never seen; do not keep it.
                kill_and_wait(child);
                Err(CowError::ForkFailed {
                    errno: Errno::EINVAL,
                })
            }
            None => Err(CowError::ForkFailed {
                errno: Errno::from_raw(i32::try_from(-injected.ret).unwrap_or(libc::EINVAL)),
            }),
        }
    }

    /// Pid of the child holding the image.
    pub fn pid(&self) -> u32 {
        self.child
    }

    /// Extra memory the child costs right now: its private dirty pages (the
    /// parent wrote or freed them since the fork, so they exist twice) plus
    /// its page tables. `None` if `/proc` cannot tell.
    pub fn extra_bytes(&self) -> Option<u64> {
        let dir = proc::proc_dir(self.child);
        let rollup = std::fs::read_to_string(dir.join("smaps_rollup")).ok()?;
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        Some(kib_field(&rollup, "Private_Dirty")? + kib_field(&status, "VmPTE").unwrap_or(0))
    }

    /// Reads `ranges` (sorted, page aligned) from the child into `buffer`,
    /// back to back as [`crate::copy::copy_ranges`] lays them out, with
    /// `pread` on `/proc/CHILD/mem` on two threads. Pages that cannot be
    /// read are reported in the outcome and left zero.
    pub fn read_ranges(
        &self,
        ranges: &[PageRange],
        buffer: &mut [u8],
        abort: &AtomicI32,
    ) -> Result<CopyOutcome, CowError> {
        let path = proc::proc_dir(self.child).join("mem");
        let mem = File::open(&path).map_err(|source| CowError::Read {
            child: self.child,
            source,
        })?;
        read_image(&mem, ranges, buffer, abort).map_err(|error| match error {
            ReadError::Capture(e) => CowError::Capture(e),
            ReadError::Layout(detail) => CowError::Capture(CaptureError::Parse {
                what: "copy plan".into(),
                detail,
            }),
        })
    }

    /// Kills the child and consumes its exit as its tracer. It then is a
    /// zombie of the target until [`reap`] runs.
    pub fn kill(mut self) -> u32 {
        kill_and_wait(self.child);
        self.killed = true;
        self.child
    }
}

impl Drop for ForkedImage {
    fn drop(&mut self) {
        if !self.killed {
            kill_and_wait(self.child);
        }
    }
}

fn kill_and_wait(child: u32) {
    // SAFETY: plain syscalls; `child` is a process we trace.
    unsafe { libc::kill(child as libc::pid_t, libc::SIGKILL) };
    let start = Instant::now();
    while start.elapsed() < STEP_TIMEOUT {
        match wait_stop(child, "the child's death") {
            Ok(Stop::Gone) | Err(_) => return,
            // A stop that raced with the kill: SIGKILL wins once continued.
            Ok(Stop::Stopped { .. }) => {
                let _ = ptrace(libc::PTRACE_CONT, child, 0, 0);
            }
        }
    }
}

/// `NAME:   123 kB` from a /proc file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

#[derive(Debug)]
enum ReadError {
    Capture(CaptureError),
    Layout(String),
}

/// A piece of work for one reader: target address, length, buffer offset.
#[derive(Debug, Clone, Copy)]
struct Piece {
    addr: u64,
    len: u64,
    offset: usize,
}

fn read_image(
    mem: &File,
    ranges: &[PageRange],
    buffer: &mut [u8],
    abort: &AtomicI32,
) -> Result<CopyOutcome, ReadError> {
    let mut pieces = Vec::new();
    let mut offset = 0usize;
    for range in ranges {
        let mut addr = range.addr;
        let mut left = range.len;
        while left > 0 {
            let len = left.min(READ_CHUNK);
            pieces.push(Piece { addr, len, offset });
            offset = offset.saturating_add(len as usize);
            addr += len;
            left -= len;
        }
    }
    if offset > buffer.len() {
        return Err(ReadError::Layout(format!(
            "{offset} bytes to read but the buffer holds {}",
            buffer.len()
        )));
    }
    // Split the buffer at piece boundaries into one share per thread.
    let per_thread = offset.div_ceil(READ_THREADS).max(1);
    let mut shares: Vec<(Vec<Piece>, &mut [u8], usize)> = Vec::new();
    let mut rest: &mut [u8] = &mut buffer[..offset];
    let mut base = 0usize;
    let mut current: Vec<Piece> = Vec::new();
    let mut current_bytes = 0usize;
    for piece in pieces {
        current_bytes += piece.len as usize;
        current.push(piece);
        if current_bytes >= per_thread {
            let (mine, others) = std::mem::take(&mut rest).split_at_mut(current_bytes);
            shares.push((std::mem::take(&mut current), mine, base));
            base += current_bytes;
            current_bytes = 0;
            rest = others;
        }
    }
    if !current.is_empty() {
        shares.push((current, rest, base));
    }
    let results: Vec<Result<CopyOutcome, ReadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .map(|(pieces, share, base)| {
                scope.spawn(move || read_share(mem, &pieces, share, base, abort))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ReadError::Layout("reader thread panicked".into())))
            })
            .collect()
    });
    CopyOutcome::merged(results)
}

fn read_share(
    mem: &File,
    pieces: &[Piece],
    share: &mut [u8],
    base: usize,
    abort: &AtomicI32,
) -> Result<CopyOutcome, ReadError> {
    let mut outcome = CopyOutcome::default();
    for piece in pieces {
        check_budget(abort, None, "reading the forked image").map_err(ReadError::Capture)?;
        let start = piece.offset - base;
        let Some(slice) = share.get_mut(start..start + piece.len as usize) else {
            return Err(ReadError::Layout("piece outside its share".into()));
        };
        if read_fully(mem, piece.addr, slice).is_ok() {
            continue;
        }
        // Page by page: keep what can be read, report the rest.
        for (index, page) in slice.chunks_mut(PAGE_SIZE as usize).enumerate() {
            let at = piece.addr + (index as u64) * PAGE_SIZE;
            if read_fully(mem, at, page).is_err() {
                page.fill(0);
                match outcome.failed.last_mut() {
                    Some(last) if last.addr + last.len == at => last.len += page.len() as u64,
                    _ => outcome.failed.push(PageRange {
                        addr: at,
                        len: page.len() as u64,
                    }),
                }
            }
        }
    }
    Ok(outcome)
}

fn read_fully(file: &File, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], addr + done as u64) {
            Ok(0) => return Err(std::io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Timing and result of the zombie reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapReport {
    /// Microseconds the target was stopped for the reap.
    pub pause_us: u64,
    /// The child is gone (reaped) afterwards.
    pub reaped: bool,
}

/// Freezes the target again briefly and makes it `wait4` for its dead child
/// (only the real parent can reap a zombie). Retries while no thread is
/// parked in the futex stub. The child must already be dead ([`ForkedImage::kill`]).
pub fn reap(
    pid: u32,
    child: u32,
    max_pause: Duration,
    abort: &AtomicI32,
) -> Result<ReapReport, CowError> {
    let mut pause_us = 0u64;
    for attempt in 0..REAP_ATTEMPTS {
        if !is_zombie_child_of(child, pid) {
            return Ok(ReapReport {
                pause_us,
                reaped: true,
            });
        }
        check_budget(abort, None, "reaping the forked child")?;
        let frozen = Frozen::freeze(pid, max_pause, abort, &[])?;
        let result = find_host(pid, frozen.threads()).and_then(|host| {
            inject(
                pid,
                &host,
                SYS_WAIT4,
                [u64::from(child), 0, WAIT_ALL | WAIT_NOHANG, 0, 0],
            )
        });
        let report = frozen.resume();
        pause_us += report.pause_us();
        match result {
            Ok(injected) if injected.ret == i64::from(child) => {
                return Ok(ReapReport {
                    pause_us,
                    reaped: !is_zombie_child_of(child, pid),
                })
            }
            Ok(_) | Err(CowError::NoHostThread) => {
                std::thread::sleep(Duration::from_millis(2 + u64::from(attempt) * 2));
            }
            Err(error) => return Err(error),
        }
    }
    Ok(ReapReport {
        pause_us,
        reaped: !is_zombie_child_of(child, pid),
    })
}

/// Whether `child` exists, is a zombie, and its parent is `parent`.
pub fn is_zombie_child_of(child: u32, parent: u32) -> bool {
    let Ok(status) = proc::read_status(child) else {
        return false;
    };
    status.state == 'Z' && status.ppid == parent
}

/// Hidden first argument that turns `rdlv-snap` into a [`Sentinel`].
pub const SENTINEL_ARG: &str = "--cow-reap-sentinel";
/// How long a sentinel waits for the orphaned child to exit and be reaped.
const SENTINEL_PATIENCE: Duration = Duration::from_secs(10);

/// A small helper process (`rdlv-snap --cow-reap-sentinel PID`) that reaps
/// the forked child if rdlv-snap dies before doing so itself. It learns the
/// child's pid through a pipe right after the fork; if the pipe closes
/// without `done` (rdlv-snap was SIGKILLed, crashed or OOM-killed), the
/// kernel has detached the child, which runs the `exit_group` we armed it
/// with; the sentinel then freezes the target briefly and injects the
/// `wait4` exactly as [`reap`] does. It closes window 4 of the module docs.
pub struct Sentinel {
    process: std::process::Child,
    pipe: Option<std::process::ChildStdin>,
}

impl Sentinel {
    /// Starts the sentinel for `target` (before the target is stopped: a
    /// process start costs milliseconds).
    pub fn spawn(target: u32) -> std::io::Result<Sentinel> {
        if cfg!(test) {
            // /proc/self/exe is the test harness, not rdlv-snap.
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unit tests run without the rdlv-snap binary",
            ));
        }
        let mut process = std::process::Command::new("/proc/self/exe")
            .arg(SENTINEL_ARG)
            .arg(target.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let pipe = process.stdin.take();
        Ok(Sentinel { process, pipe })
    }

    /// Sends one line of the protocol (`forking UADDR LASTPID`, `child
    /// PID`, `done`); a pipe write this small is atomic.
    fn send(&mut self, line: &str) {
        use std::io::Write;
        if let Some(pipe) = self.pipe.as_mut() {
            let _ = pipe.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// The child was reaped: the sentinel may exit. Waits for it, so that it
    /// leaves no zombie of its own.
    pub fn finish(mut self) {
        use std::io::Write;
        if let Some(mut pipe) = self.pipe.take() {
            let _ = writeln!(pipe, "done");
        }
        let _ = self.process.wait();
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        // Closing the pipe without `done`: the sentinel reaps what was
        // announced (nothing if no fork happened) and exits.
        self.pipe.take();
        let _ = self.process.wait();
    }
}

/// Nice value the host thread gets for the duration of the fork.
const FORK_NICE: libc::c_int = -20;

/// A target thread's raised scheduling priority, to be restored.
struct ThreadNice {
    tid: u32,
    previous: libc::c_int,
}

impl ThreadNice {
    /// Raises `tid` to [`FORK_NICE`]; `None` if it cannot (no CAP_SYS_NICE)
    /// or it already runs at that priority.
    fn raise(tid: u32) -> Option<ThreadNice> {
        Errno::clear();
        // SAFETY: plain syscalls on a thread id.
        let previous = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        if Errno::last_raw() != 0 || previous <= FORK_NICE {
            return None;
        }
        // SAFETY: as above.
        let raised = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, FORK_NICE) };
        (raised == 0).then_some(ThreadNice { tid, previous })
    }

    fn restore(self) {
        set_nice(self.tid, self.previous);
    }
}

fn set_nice(tid: u32, nice: libc::c_int) {
    // SAFETY: plain syscall on a thread id.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
}

/// The last pid allocated in our pid namespace (0 if unknown).
fn last_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// What the sentinel must clean up when its pipe closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphan {
    /// A fork was in flight: a child of the target with a pid above
    /// `last_pid`, single-threaded, parked in futex on `uaddr`, is ours.
    Unknown { uaddr: u64, last_pid: u32 },
    /// This child (armed with `exit_group`).
    Known(u32),
}

/// Parses the sentinel's input: what the last line leaves to clean up.
fn sentinel_orphan(input: &str) -> Option<Orphan> {
    let mut orphan = None;
    for line in input.lines() {
        let mut words = line.split_whitespace();
        orphan = match (words.next(), words.next(), words.next()) {
            (Some("done"), ..) => None,
            (Some("nice"), ..) => orphan,
            (Some("child"), Some(pid), _) => pid.parse().ok().map(Orphan::Known),
            (Some("forking"), Some(uaddr), Some(last)) => {
                match (u64::from_str_radix(uaddr, 16), last.parse()) {
                    (Ok(uaddr), Ok(last_pid)) => Some(Orphan::Unknown { uaddr, last_pid }),
                    _ => None,
                }
            }
            _ => orphan,
        };
    }
    orphan
}

/// The host thread whose priority was raised and not yet restored (the
/// `nice` line comes right before the fork and counts until the next line).
fn sentinel_nice(input: &str) -> Option<(u32, libc::c_int)> {
    let last = input.lines().last()?;
    let mut words = last.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("nice"), Some(tid), Some(nice)) => Some((tid.parse().ok()?, nice.parse().ok()?)),
        _ => None,
    }
}

/// Finds the child an injected fork left running when rdlv-snap died mid
/// fork: it returned from the "futex" into Go's wait loop and sleeps again
/// on the same futex word, alone in its process. A child the program
/// forked itself (os/exec) never waits on a runtime futex.
fn find_unknown_orphan(target: u32, uaddr: u64, last_pid: u32) -> Option<u32> {
    let exe = std::fs::read_link(proc::proc_dir(target).join("exe")).ok()?;
    let wanted = format!("202 0x{uaddr:x} ");
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if child <= last_pid {
            continue;
        }
        let Ok(status) = proc::read_status(child) else {
            continue;
        };
        if status.ppid != target {
            continue;
        }
        if status.state == 'Z' {
            // An armed child that exited before we could name it.
            let stat =
                std::fs::read_to_string(proc::proc_dir(child).join("stat")).unwrap_or_default();
            let exit_code = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().last())
                .and_then(|code| code.parse::<u64>().ok());
            if exit_code == Some(ARMED_EXIT_CODE << 8) {
                return Some(child);
            }
            continue;
        }
        if status.threads != 1 {
            continue;
        }
        let syscall =
            std::fs::read_to_string(proc::proc_dir(child).join("syscall")).unwrap_or_default();
        let same_exe =
            std::fs::read_link(proc::proc_dir(child).join("exe")).ok() == Some(exe.clone());
        if same_exe && syscall.starts_with(&wanted) {
            return Some(child);
        }
    }
    None
}

/// Body of the sentinel process. Returns the exit code.
pub fn run_sentinel(target: &str) -> i32 {
    use std::io::Read;
    let Ok(target) = target.parse::<u32>() else {
        return 2;
    };
    // A Ctrl-C reaches the whole process group: rdlv-snap cleans up on it
    // itself, and the sentinel must outlive it in case it cannot.
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: setting a signal to SIG_IGN.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    let mut input = String::new();
    // Reads until rdlv-snap closes the pipe, by choice or by dying.
    let _ = std::io::stdin().take(1 << 16).read_to_string(&mut input);
    if let Some((tid, nice)) = sentinel_nice(&input) {
        if proc::thread_exists(target, tid) {
            set_nice(tid, nice);
        }
    }
    let child = match sentinel_orphan(&input) {
        None => return 0,
        Some(Orphan::Known(child)) => child,
        Some(Orphan::Unknown { uaddr, last_pid }) => {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                if let Some(child) = find_unknown_orphan(target, uaddr, last_pid) {
                    // SAFETY: kill(2) on the orphan identified above.
                    unsafe { libc::kill(child as libc::pid_t, libc::SIGKILL) };
                    break child;
                }
                if Instant::now() > deadline {
                    return 0;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let never = AtomicI32::new(0);
    let deadline = Instant::now() + SENTINEL_PATIENCE;
    while Instant::now() < deadline {
        let Ok(status) = proc::read_status(child) else {
            return 0;
        };
        if status.ppid != target {
            return 0;
        }
        // Still traced by the dying rdlv-snap, or not yet exited: wait.
        if status.state == 'Z' && status.tracer_pid == 0 {
            if let Ok(report) = reap(target, child, Duration::from_secs(1), &never) {
                if report.reaped {
                    eprintln!(
                        "rdlv-snap: reaped the forked child {child} of process {target} left behind by an interrupted --cow capture"
                    );
                    return 0;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("rdlv-snap: could not reap the forked child {child} of process {target}");
    1
}

/// Mappings whose contents the child does not hold as the parent did at the
/// fork: MADV_DONTFORK (`dc`, absent in the child), MADV_WIPEONFORK (`wf`,
/// zero in the child) and shared writable mappings (the parent keeps
/// writing them after the fork). They are copied from the frozen parent.
pub fn parent_only(entry: &MapsEntry) -> bool {
    entry.has_flag("dc")
        || entry.has_flag("wf")
        || (entry.writable() && entry.perms.as_bytes().get(3) == Some(&b's'))
}

/// Merges two sorted, non-overlapping range lists into one sorted list where
/// touching or overlapping ranges are joined.
pub fn union_ranges(a: &[PageRange], b: &[PageRange]) -> Vec<PageRange> {
    let mut all: Vec<PageRange> = a.iter().chain(b.iter()).copied().collect();
    all.sort_by_key(|r| r.addr);
    let mut out: Vec<PageRange> = Vec::with_capacity(all.len());
    for range in all {
        if let Some(last) = out.last_mut() {
            let last_end = last.addr + last.len;
            if range.addr <= last_end {
                let end = (range.addr + range.len).max(last_end);
                last.len = end - last.addr;
                continue;
            }
        }
        if range.len > 0 {
            out.push(range);
        }
    }
    out
}

/// The facts [`refusal`] weighs, read from the target's `/proc` and cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CowFacts {
    /// `Seccomp:` mode (0 none, 1 strict, 2 filter).
    pub seccomp: u32,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Memory cgroup headroom (`memory.max - memory.current`, smallest up
    /// the hierarchy), `None` if unlimited or unknown.
    pub memcg_headroom: Option<u64>,
}

impl CowFacts {
    /// Reads the facts for `pid`.
    pub fn read(pid: u32) -> CowFacts {
        let status =
            std::fs::read_to_string(proc::proc_dir(pid).join("status")).unwrap_or_default();
        CowFacts {
            seccomp: status
                .lines()
                .find_map(|l| l.strip_prefix("Seccomp:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            rss: kib_field(&status, "VmRSS").unwrap_or(0),
            memcg_headroom: target_memcg_headroom(pid),
        }
    }

    /// Page tables the child needs: one 8-byte entry per resident 4 KiB page.
    pub fn page_table_estimate(&self) -> u64 {
        self.rss / 512
    }
}

/// Headroom of the target's memory cgroup (v2 or v1), the smallest along
/// the path to the root.
fn target_memcg_headroom(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(proc::proc_dir(pid).join("cgroup")).ok()?;
    let (v1, path) = proc::parse_memory_cgroup(&text)?;
    let (root, limit_file, usage_file) = if v1 {
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
        )
    } else {
        ("/sys/fs/cgroup", "memory.max", "memory.current")
    };
    let mut best: Option<u64> = None;
    let mut dir = std::path::PathBuf::from(format!("{root}{path}"));
    loop {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .and_then(|t| proc::parse_cgroup_bytes(&t))
        };
        if let (Some(limit), Some(usage)) = (read(limit_file), read(usage_file)) {
            let headroom = limit.saturating_sub(usage);
            best = Some(best.map_or(headroom, |b: u64| b.min(headroom)));
        }
        if dir == std::path::Path::new(root) || !dir.pop() || !dir.starts_with(root) {
            break;
        }
    }
    best
}

/// Why the copy-on-write capture must not be tried, or `None` to go ahead.
/// `max_extra` is the budget of extra memory in the target (page tables
/// plus pages copied on write while the child lives).
pub fn refusal(facts: &CowFacts, max_extra: u64) -> Option<String> {
    if facts.seccomp == 2 {
        return Some(
            "the target runs under a seccomp filter (Seccomp: 2) that could kill it on the injected clone"
                .into(),
        );
    }
    let tables = facts.page_table_estimate();
    if tables > max_extra {
        return Some(format!(
            "the child's page tables alone (~{} KiB for {} MiB resident) exceed --cow-max-extra ({} KiB)",
            tables >> 10,
            facts.rss >> 20,
            max_extra >> 10
        ));
    }
    if let Some(headroom) = facts.memcg_headroom {
        if headroom < max_extra {
            return Some(format!(
                "the target's memory cgroup has {} MiB of headroom, less than --cow-max-extra ({} MiB) of copy-on-write growth",
                headroom >> 20,
                max_extra >> 20
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::AtomicI32;

    static NO_ABORT: AtomicI32 = AtomicI32::new(0);

    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn range(addr: u64, len: u64) -> PageRange {
        PageRange { addr, len }
    }

    fn entry(perms: &str, flags: &[&str]) -> MapsEntry {
        MapsEntry {
            start: 0x1000,
            end: 0x2000,
            perms: perms.into(),
            offset: 0,
            dev: "00:00".into(),
            inode: 0,
            path: String::new(),
            vm_flags: flags.iter().map(|f| f.to_string()).collect(),
            anonymous_bytes: Some(0),
        }
    }

    #[test]
    fn unions_sorted_ranges() {
        let a = [range(0x1000, 0x1000), range(0x5000, 0x2000)];
        let b = [
            range(0x2000, 0x1000),
            range(0x6000, 0x3000),
            range(0xa000, 0x1000),
        ];
        assert_eq!(
            union_ranges(&a, &b),
            vec![
                range(0x1000, 0x2000),
                range(0x5000, 0x4000),
                range(0xa000, 0x1000)
            ]
        );
        assert_eq!(union_ranges(&[], &b), b.to_vec());
        assert!(union_ranges(&[], &[]).is_empty());
    }

    #[test]
    fn parent_only_mappings() {
        assert!(parent_only(&entry("rw-p", &["rd", "wr", "dc"])));
        assert!(parent_only(&entry("rw-p", &["rd", "wr", "wf"])));
        assert!(parent_only(&entry("rw-s", &["rd", "wr", "sh"])));
        assert!(!parent_only(&entry("r--s", &["rd", "sh"])));
        assert!(!parent_only(&entry("rw-p", &["rd", "wr", "mr"])));
    }

    #[test]
    fn sentinel_reaps_only_an_unfinished_child() {
        assert_eq!(sentinel_orphan(""), None);
        assert_eq!(
            sentinel_orphan("forking c000012345 977\n"),
            Some(Orphan::Unknown {
                uaddr: 0xc000012345,
                last_pid: 977
            })
        );
        assert_eq!(
            sentinel_orphan("forking c000012345 977\nchild 42\n"),
            Some(Orphan::Known(42))
        );
        assert_eq!(sentinel_orphan("forking 10 1\nchild 42\ndone\n"), None);
        assert_eq!(sentinel_orphan("forking 10 1\ndone\n"), None);
        assert_eq!(sentinel_orphan("child x\n"), None);
        let forking = "forking 10 1\nnice 77 0\n";
        assert_eq!(
            sentinel_orphan(forking),
            Some(Orphan::Unknown {
                uaddr: 0x10,
                last_pid: 1
            })
        );
        assert_eq!(sentinel_nice(forking), Some((77, 0)));
        assert_eq!(sentinel_nice("forking 10 1\nnice 77 5\nchild 9\n"), None);
    }

    #[test]
    fn parses_kib_fields() {
        let text = "Rss:  100 kB\nPrivate_Dirty:    12 kB\nVmPTE:\t  8 kB\n";
        assert_eq!(kib_field(text, "Private_Dirty"), Some(12 * 1024));
        assert_eq!(kib_field(text, "VmPTE"), Some(8 * 1024));
        assert_eq!(kib_field(text, "Private"), None);
        assert_eq!(kib_field("Rss: lots kB", "Rss"), None);
    }

    #[test]
    fn refusal_rules() {
        let ok = CowFacts {
            seccomp: 0,
            rss: 1 << 30,
            memcg_headroom: None,
        };
        assert_eq!(ok.page_table_estimate(), 2 << 20);
        assert_eq!(refusal(&ok, DEFAULT_MAX_EXTRA), None);
        let filtered = CowFacts { seccomp: 2, ..ok };
        assert!(refusal(&filtered, DEFAULT_MAX_EXTRA)
            .unwrap()
            .contains("seccomp"));
        // Strict mode (1) cannot even run clone, but it is not a filter that kills on it.
        assert!(refusal(&CowFacts { seccomp: 0, ..ok }, 1)
            .unwrap()
            .contains("--cow-max-extra"));
        let tight = CowFacts {
            memcg_headroom: Some(100 << 20),
            ..ok
        };
        assert!(refusal(&tight, DEFAULT_MAX_EXTRA)
            .unwrap()
            .contains("headroom"));
        assert_eq!(refusal(&tight, 64 << 20), None);
    }

    #[test]
    fn fork_errors_say_what_to_check() {
        let text = CowError::ForkFailed {
            errno: Errno::EAGAIN,
        }
        .to_string();
        assert!(
            text.contains("EAGAIN") && text.contains("pids.max"),
            "{text}"
        );
        assert!(CowError::NoHostThread.falls_back());
        assert!(!CowError::Exited { pid: 1 }.falls_back());
    }

    /// A process that is not Go has no futex-stub host: the injection is
    /// refused without touching a register, and the process runs on.
    #[test]
    fn non_go_process_has_no_host() {
        let child = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        std::thread::sleep(Duration::from_millis(50));
        let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
        let before = frozen.registers().unwrap();
        let err = ForkedImage::fork(pid, &frozen, None).err().unwrap();
        assert!(matches!(err, CowError::NoHostThread), "{err}");
        let after = frozen.registers().unwrap();
        assert_eq!(before[0].regs.rip, after[0].regs.rip);
        assert_eq!(before[0].regs.rax, after[0].regs.rax);
        frozen.resume();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(proc::thread_state(pid, pid), Some('S'));
    }

    const TICKER: &str = r#"package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

var counter atomic.Uint64

func main() {
	go func() {
		for {
			counter.Add(1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	fmt.Println("READY", uintptr(unsafe.Pointer(&counter)), os.Getpid())
	for {
		time.Sleep(time.Second)
	}
}
"#;

    fn read_u64(pid: u32, addr: u64) -> u64 {
        let mut word = [0u8; 8];
        assert!(read_target(pid, addr, &mut word), "read {pid} {addr:#x}");
        u64::from_ne_bytes(word)
    }

    fn children_of(pid: u32) -> Vec<(u32, char)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(other) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(status) = proc::read_status(other) {
                if status.ppid == pid {
                    out.push((other, status.state));
                }
            }
        }
        out
    }

    /// The whole cycle on a live Go process: fork while frozen, resume, read
    /// the frozen value from the child while the parent's moves on, kill,
    /// reap; registers are intact and no child is left.
    #[test]
    fn forks_reads_and_reaps_a_go_process() {
        let exe = crate::testutil::go_program("cow_ticker", TICKER);
        let mut child = KillOnDrop(Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap());
        let ready = crate::testutil::wait_ready(&mut child.0);
        let addr: u64 = ready.split_whitespace().next().unwrap().parse().unwrap();
        let pid = child.0.id();
        std::thread::sleep(Duration::from_millis(100));
        for round in 0..3 {
            // At a given instant every thread may be busy or in a timed wait
            // (the ticker's timers): freeze again until one is parked, as
            // the capture's own fallback logic would.
            let mut attempts = 0;
            let (frozen, before, frozen_value, image) = loop {
                let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
                let before = frozen.registers().unwrap();
                let frozen_value = read_u64(pid, addr);
                match ForkedImage::fork(pid, &frozen, None) {
                    Ok(image) => break (frozen, before, frozen_value, image),
                    Err(CowError::NoHostThread) if attempts < 50 => {
                        attempts += 1;
                        drop(frozen);
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(error) => panic!("round {round}: {error}"),
                }
            };
            let after = frozen.registers().unwrap();
            for (b, a) in before.iter().zip(&after) {
                assert_eq!(b.tid, a.tid);
                // The host alone may differ, and only by the hand-made
                // restart of its futex wait.
                let expected = restart_equivalent(&b.regs, b.regs.rip != a.regs.rip);
                let key = |r: &libc::user_regs_struct| {
                    [
                        r.rip, r.rsp, r.rbp, r.rax, r.orig_rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8,
                        r.r9, r.rbx, r.rcx, r.r11, r.r12, r.r13, r.r14, r.r15, r.eflags, r.fs_base,
                    ]
                };
                assert_eq!(
                    key(&expected),
                    key(&a.regs),
                    "round {round}: thread {} registers changed",
                    b.tid
                );
                assert_eq!(b.fpregs, a.fpregs);
            }
            let hosts = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b.regs.rip != a.regs.rip)
                .count();
            assert_eq!(hosts, 1, "exactly one host thread");
            for thread in &after {
                // SAFETY: plain syscall.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, thread.tid as libc::id_t) };
                assert_eq!(nice, 0, "thread {} priority restored", thread.tid);
            }
            let child_pid = image.pid();
            assert_eq!(proc::read_status(child_pid).unwrap().ppid, pid);
            assert_eq!(proc::thread_state(child_pid, child_pid), Some('t'));
            frozen.resume();
            std::thread::sleep(Duration::from_millis(30));
            // The parent ran on; the child holds the image of the freeze.
            assert!(read_u64(pid, addr) > frozen_value);
            let page = addr & !(PAGE_SIZE - 1);
            let mut buffer = vec![0u8; PAGE_SIZE as usize * 2];
            let outcome = image
                .read_ranges(
                    &[range(page, PAGE_SIZE), range(page + PAGE_SIZE, PAGE_SIZE)],
                    &mut buffer,
                    &NO_ABORT,
                )
                .unwrap();
            assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
            let at = (addr - page) as usize;
            let value = u64::from_ne_bytes(buffer[at..at + 8].try_into().unwrap());
            assert_eq!(value, frozen_value, "round {round}");
            assert!(image.extra_bytes().is_some_and(|b| b > 0));
            let dead = image.kill();
            assert!(is_zombie_child_of(dead, pid));
            let report = reap(pid, dead, Duration::from_secs(1), &NO_ABORT).unwrap();
            assert!(report.reaped, "round {round}");
            assert!(report.pause_us < 1_000_000);
            assert!(children_of(pid).is_empty(), "{:?}", children_of(pid));
        }
        // Still alive and ticking.
        let value = read_u64(pid, addr);
        std::thread::sleep(Duration::from_millis(20));
        assert!(read_u64(pid, addr) > value);
        assert!(child.0.try_wait().unwrap().is_none());
    }
}
