//! Copy-on-write capture (`--cow`): the frozen target forks through an
//! injected syscall, the parent runs on at once, and the memory image is read
//! from the stopped child at leisure.
//!
//! # How the fork is injected
//!
//! Through [`crate::inject`], shared with the pre-copy. No byte of the
//! target is patched. The `syscall` instruction we reuse is
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
//! rdlv-snap cannot read (without CAP_SYS_ADMIN; it could kill the target
//! on `clone`) or strict mode, the target's
//! memory cgroup headroom against the page-table estimate plus the COW
//! budget, and the budget against the page-table estimate. After the stop,
//! [`ForkedImage::fork`] reports [`CowError::Seccomp`] (the filters of the
//! host thread, run by [`crate::seccomp`], do not allow `clone`, the child's
//! `exit_group` and the reaping `wait4`), [`CowError::NoHostThread`] or
//! [`CowError::ForkFailed`] (EAGAIN from pids.max/RLIMIT_NPROC, ENOMEM under
//! strict overcommit) with the target's registers already restored.

mod reap;

use std::fs::File;
use std::sync::atomic::AtomicI32;
use std::time::Instant;

use nix::errno::Errno;

use crate::capture::{Fallback, Method, Options, Requested};
use crate::copy::{self, CopyOutcome};
use crate::error::{CaptureError, Result};
use crate::freeze::Waited;
use crate::freeze::{self, check_budget, duration_us, Frozen};
use crate::inject::{
    wait_stop, InjectError, Injected, ParkedHost, ARMED_EXIT_CODE, STEP_TIMEOUT, SYS_CLONE,
    SYS_EXIT_GROUP, SYS_WAIT4,
};
use crate::nice::{Nice, FORK_NICE};
use crate::pages::{self, Decision, MappingPlan, PageRange, PresenceScanner};
use crate::preflight::Preflight;
use crate::proc::{self, MapsEntry};
use crate::stop::{self, Held, Stopped};

use crate::sentinel::Sentinel;
pub use reap::{find_unknown_orphan, reap};

/// Bytes per pread on the child's memory (>= 1 MiB keeps syscall cost low).
const READ_CHUNK: u64 = 4 << 20;
/// Reader threads for the child.
const READ_THREADS: usize = 2;
/// Default `--cow-max-extra`: the extra memory (page tables plus pages
/// copied on write while the child lives) we accept to add to the target.
pub const DEFAULT_MAX_EXTRA: u64 = 512 << 20;

/// Why the copy-on-write path could not be used (or failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CowError {
    /// No thread parked in Go's futex stub to host the injected syscall.
    #[error("no thread is parked in Go's runtime.futex to host the injected fork")]
    NoHostThread,
    /// The target's seccomp filters do not let the fork, its child's exit
    /// or the reap through (nothing was injected).
    #[error("{0}")]
    Seccomp(String),
    /// The injected clone returned an error.
    #[error("fork refused ({errno}{hint})", hint = fork_hint(*errno))]
    ForkFailed {
        /// The error returned by clone.
        errno: Errno,
    },
    /// Reading the child failed as a whole.
    #[error("reading the forked image {child}: {source}")]
    Read {
        /// Child pid.
        child: u32,
        /// The cause.
        source: std::io::Error,
    },
    /// The injected syscall failed.
    #[error(transparent)]
    Inject(#[from] InjectError),
    /// Freezing or budgets failed during the reap.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

impl From<CowError> for CaptureError {
    fn from(error: CowError) -> CaptureError {
        match error {
            CowError::Capture(inner) => inner,
            CowError::Inject(inner) => inner.into_capture("--cow fork injection"),
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
        matches!(
            self,
            CowError::NoHostThread | CowError::ForkFailed { .. } | CowError::Seccomp(_)
        )
    }
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
        let host = ParkedHost::find(pid, frozen.threads()).map_err(|error| match error {
            InjectError::NoHostThread => CowError::NoHostThread,
            other => CowError::Inject(other),
        })?;
        if proc::seccomp_mode(pid) == 2 {
            // --cow never suspends filters: its child and the reaping
            // wait4 must both pass them as they are.
            let call = |name, nr, args| crate::seccomp::Planned {
                name,
                nr,
                args,
                suspendable: false,
            };
            let next_pid = u64::from(reap::last_pid()) + 1;
            let planned = [
                call("clone", SYS_CLONE, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
                call(
                    "exit_group",
                    SYS_EXIT_GROUP,
                    [ARMED_EXIT_CODE, 0, 0, 0, 0, 0],
                ),
                call("wait4", SYS_WAIT4, reap::wait4_args(next_pid)),
            ];
            crate::seccomp::check(host.tid(), host.ip(), &planned, false)
                .map_err(CowError::Seccomp)?;
        }
        if let Some(sentinel) = sentinel.as_deref_mut() {
            sentinel.send(&format!(
                "forking {:x} {}",
                host.futex_addr(),
                reap::last_pid()
            ));
        }
        // The fork's cost (copying page tables) is paid by the host thread
        // while every other thread of the target waits: on a busy machine
        // it should not queue behind other work. Restored right after; the
        // sentinel restores it if we die in between.
        let boost = Nice::raise(host.tid(), FORK_NICE);
        if let (Some(sentinel), Some(boost)) = (sentinel.as_deref_mut(), boost.as_ref()) {
            sentinel.send(&format!("nice {} {}", boost.tid, boost.previous));
        }
        let injected = host.fork(pid);
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
            ReadError::Layout(detail) => CowError::Capture(CaptureError::copy_plan(detail)),
        })
    }

    /// Kills the child and consumes its exit as its tracer. It then is a
    /// zombie of the target until [`reap()`] runs.
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
            Ok(Waited::Gone) | Err(_) => return,
            // A stop that raced with the kill: SIGKILL wins once continued.
            Ok(_) => {
                let _ = freeze::ptrace(libc::PTRACE_CONT, child, 0, 0);
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
        // Page by page where a whole read fails: keep what can be read,
        // report the rest.
        let _ = copy::read_pages(mem, piece.addr, slice, &mut outcome, false);
    }
    Ok(outcome)
}

/// The facts [`refusal`] weighs, read from the target's `/proc` and cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CowFacts {
    /// `Seccomp:` mode (0 none, 1 strict, 2 filter).
    pub seccomp: u32,
    /// rdlv-snap may read the target's filters (CAP_SYS_ADMIN).
    pub can_read_filters: bool,
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
            can_read_filters: crate::seccomp::have_cap_sys_admin(),
            rss: kib_field(&status, "VmRSS").unwrap_or(0),
            memcg_headroom: proc::memory_cgroup_headroom(&proc::proc_dir(pid).join("cgroup")),
        }
    }

    /// Page tables the child needs: one 8-byte entry per resident 4 KiB page.
    pub fn page_table_estimate(&self) -> u64 {
        self.rss / 512
    }
}

/// Why the copy-on-write capture must not be tried, or `None` to go ahead.
/// `max_extra` is the budget of extra memory in the target (page tables
/// plus pages copied on write while the child lives).
pub fn refusal(facts: &CowFacts, max_extra: u64) -> Option<String> {
    if let Err(reason) = crate::seccomp::admit(facts.seccomp, facts.can_read_filters) {
        return Some(reason);
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

/// Mappings whose contents the child does not hold as the parent did at the
/// fork: MADV_DONTFORK (`dc`, absent in the child), MADV_WIPEONFORK (`wf`,
/// zero in the child) and shared writable mappings (the parent keeps
/// writing them after the fork). They are copied from the frozen parent.
pub fn parent_only(entry: &MapsEntry) -> bool {
    entry.has_flag("dc")
        || entry.has_flag("wf")
        || (entry.writable() && entry.perms.as_bytes().get(3) == Some(&b's'))
}

/// What a copy-on-write capture measured.
#[derive(Debug, Clone, Default)]
pub struct CowStats {
    /// Extra memory the forked image cost the target at its peak (the
    /// child's private dirty pages plus its page tables).
    pub extra_bytes: Option<u64>,
    /// Microseconds of the fork injection (inside the pause).
    pub fork_us: u64,
    /// Microseconds the target was stopped again to reap the child.
    pub reap_pause_us: u64,
    /// Milliseconds reading the forked image (target running).
    pub read_ms: u64,
}

/// The plain copy's reason for a `--cow` capture that cannot go ahead,
/// printed at once (the capture goes on).
fn fallback(reason: String) -> Fallback {
    eprintln!("rdlv-snap: --cow: {reason}; falling back to the plain copy");
    Fallback {
        from: Requested::Cow,
        reason,
        pause_us: 0,
    }
}

/// The `--cow` capture, or the plain one when fork injection is refused
/// before or during the stop (see the module docs).
pub fn capture(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
    max_extra: u64,
) -> Result<Stopped> {
    let facts = CowFacts::read(options.pid);
    let refused = if proc::job_stopped(options.pid) {
        Some(proc::STOPPED_REASON.to_string())
    } else {
        refusal(&facts, max_extra)
    };
    let attempt = match refused {
        Some(reason) => Err(fallback(reason)),
        None => stop_and_fork(options, abort, pre)?.map_err(fallback),
    };
    match attempt {
        Ok(stopped) => Ok(stopped),
        Err(fallback) => {
            let mut stopped = stop::stop_and_copy(options, abort, pre)?;
            stopped.method = Method::Plain(Some(fallback));
            Ok(stopped)
        }
    }
}

/// The `--cow` capture: stops the target, reads registers and maps, copies
/// the mappings a child would not hold as the parent does, makes the target
/// fork, resumes it, then reads the image from the child, kills it and has
/// the target reap it. `Ok(Err(reason))` means fork injection was not
/// possible and nothing was changed: the caller falls back to the plain copy
/// (the target runs again by then).
fn stop_and_fork(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
) -> Result<std::result::Result<Stopped, String>> {
    let pid = options.pid;
    // Reaps the forked child should this process die before doing so.
    let mut sentinel = Sentinel::spawn(pid);
    let _boost = Nice::boost_this_thread();
    let mut held = Held::freeze(options, abort, pre)?;
    // Presence is scanned now only where the child will not hold the
    // parent's bytes; everything else is scanned on the child after resume.
    let mut plans = Vec::with_capacity(held.state.maps.len());
    let mut parent_ranges = Vec::new();
    for entry in &held.state.maps {
        let decision = pages::classify(entry, &pre.exe_identity);
        let mut ranges = Vec::new();
        if decision == Decision::Capture && parent_only(entry) {
            pre.scanner
                .existing_pages(entry.start, entry.end, &mut ranges)?;
            parent_ranges.extend(ranges.iter().copied());
        }
        plans.push(MappingPlan {
            entry: entry.clone(),
            decision,
            ranges,
        });
    }
    held.planned();

    let source = held.source(&pre.mem, abort);
    let (parent_copy, parent_outcome) = held.copy(|| {
        let parent_bytes: u64 = parent_ranges.iter().map(|r| r.len).sum();
        let mut parent_copy = vec![0u8; usize::try_from(parent_bytes).unwrap_or(usize::MAX)];
        let outcome = copy::copy_ranges(&source, &parent_ranges, &mut parent_copy)?;
        Ok((parent_copy, outcome))
    })?;
    freeze::check_budget(abort, held.deadline, "forking")?;
    let image = match ForkedImage::fork(pid, held.frozen(), sentinel.as_mut().ok()) {
        Ok(image) => image,
        Err(error) if error.falls_back() => {
            drop(held);
            return Ok(Err(error.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    let resumed = held.resume();

    // Running again. Whatever happens while reading, the child is killed
    // and reaped before returning.
    let read_started = Instant::now();
    let read = read_forked_image(&image, &mut plans, pre, &parent_copy, abort);
    let read_ms = u64::try_from(read_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut stats = CowStats {
        extra_bytes: image.extra_bytes(),
        fork_us: image.fork_us,
        reap_pause_us: 0,
        read_ms,
    };
    let dead = image.kill();
    // Reaping is not skipped on SIGINT: it is short and leaves no zombie.
    let never = AtomicI32::new(0);
    let mut warnings = Vec::new();
    stats.reap_pause_us = match reap(pid, dead, options.max_pause, &never) {
        Ok(report) => {
            if !report.reaped {
                warnings.push(format!(
                    "--cow: the forked child {dead} could not be reaped (no parked thread); it stays a zombie of the target"
                ));
            }
            report.pause_us
        }
        Err(error) => {
            warnings.push(format!(
                "--cow: reaping the forked child {dead} failed: {error}; it stays a zombie of the target"
            ));
            0
        }
    };
    match sentinel {
        Ok(sentinel) => sentinel.finish(),
        Err(error) => warnings.push(format!(
            "--cow: no reap sentinel ({error}): had rdlv-snap died during the read, the child would have stayed a zombie"
        )),
    }
    let (ranges, mut outcome) = read?;
    outcome.absorb(parent_outcome);
    let mut stopped = resumed.with(plans, ranges, outcome, Method::Cow(stats));
    stopped.warnings = warnings;
    Ok(Ok(stopped))
}

/// Reads consecutive child-held ranges of the plan in one go.
struct ChildReader<'a> {
    image: &'a ForkedImage,
    abort: &'a AtomicI32,
    /// Buffer offset where `pending` starts.
    from: usize,
    /// Ranges to read from the child, laid out back to back from `from`.
    pending: Vec<PageRange>,
    outcome: CopyOutcome,
}

impl ChildReader<'_> {
    /// Reads the pending ranges into `buffer[from..to]`.
    fn flush(&mut self, to: usize, buffer: &mut [u8]) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let from = self.from;
        let slice = buffer
            .get_mut(from..to)
            .ok_or_else(|| CaptureError::copy_plan(format!("{from}..{to} outside the buffer")))?;
        let part = self.image.read_ranges(&self.pending, slice, self.abort)?;
        self.outcome.absorb(part);
        self.pending.clear();
        Ok(())
    }
}

/// Scans presence on the child, lays every captured range out back to back
/// in `pre.buffer` (in address order, as `snapshot::runs_without_failures` expects)
/// and fills it: parent-only mappings from `parent_copy` (taken in the
/// stop, in the same order), the rest from the child.
fn read_forked_image(
    image: &ForkedImage,
    plans: &mut [MappingPlan],
    pre: &mut Preflight,
    parent_copy: &[u8],
    abort: &AtomicI32,
) -> Result<(Vec<PageRange>, CopyOutcome)> {
    let mut child_scanner = PresenceScanner::open(image.pid())?;
    for plan in plans.iter_mut() {
        if plan.decision != Decision::Capture || parent_only(&plan.entry) {
            continue;
        }
        let (start, end) = (plan.entry.start, plan.entry.end);
        let mut ranges = Vec::new();
        child_scanner.existing_pages(start, end, &mut ranges)?;
        if plan.entry.inode != 0 {
            // fork copies no page tables for file mappings without private
            // pages; the parent's presence says which page-cache pages exist
            // (their bytes, read through the child, are the file's).
            let mut parent = Vec::new();
            pre.scanner.existing_pages(start, end, &mut parent)?;
            ranges = pages::union_ranges(&ranges, &parent);
        }
        plan.ranges = ranges;
    }
    let ranges = stop::planned_ranges(plans, &mut pre.buffer)?;
    let mut child = ChildReader {
        image,
        abort,
        from: 0,
        pending: Vec::new(),
        outcome: CopyOutcome::default(),
    };
    let mut offset = 0usize;
    let mut parent_cursor = 0usize;
    for plan in plans.iter() {
        let bytes = usize::try_from(plan.bytes()).unwrap_or(usize::MAX);
        if plan.decision == Decision::Capture && parent_only(&plan.entry) {
            child.flush(offset, &mut pre.buffer)?;
            let source = parent_copy
                .get(parent_cursor..parent_cursor.saturating_add(bytes))
                .ok_or_else(|| CaptureError::copy_plan("parent-only copy shorter than its plan"))?;
            pre.buffer
                .get_mut(offset..offset.saturating_add(bytes))
                .ok_or_else(|| CaptureError::copy_plan("buffer shorter than the plan"))?
                .copy_from_slice(source);
            parent_cursor += bytes;
            child.from = offset + bytes;
        } else {
            child.pending.extend(plan.ranges.iter().copied());
        }
        offset += bytes;
    }
    child.flush(offset, &mut pre.buffer)?;
    let outcome = child.outcome;
    Ok((ranges, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::PAGE_SIZE;
    use crate::testutil::{capture_options as options, expected_payload, start_pattern_target};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    static NO_ABORT: AtomicI32 = AtomicI32::new(0);

    use crate::testutil::KillOnDrop;

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
    fn parent_only_mappings() {
        assert!(parent_only(&entry("rw-p", &["rd", "wr", "dc"])));
        assert!(parent_only(&entry("rw-p", &["rd", "wr", "wf"])));
        assert!(parent_only(&entry("rw-s", &["rd", "wr", "sh"])));
        assert!(!parent_only(&entry("r--s", &["rd", "sh"])));
        assert!(!parent_only(&entry("rw-p", &["rd", "wr", "mr"])));
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
            can_read_filters: false,
            rss: 1 << 30,
            memcg_headroom: None,
        };
        assert_eq!(ok.page_table_estimate(), 2 << 20);
        assert_eq!(refusal(&ok, DEFAULT_MAX_EXTRA), None);
        let filtered = CowFacts { seccomp: 2, ..ok };
        assert!(refusal(&filtered, DEFAULT_MAX_EXTRA)
            .unwrap()
            .contains("CAP_SYS_ADMIN"));
        // Readable filters are decided on the stopped host thread instead.
        let readable = CowFacts {
            can_read_filters: true,
            ..filtered
        };
        assert_eq!(refusal(&readable, DEFAULT_MAX_EXTRA), None);
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
        assert!(!CowError::Inject(InjectError::Exited { pid: 1 }).falls_back());
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
        assert!(
            crate::inject::read_target(pid, addr, &mut word),
            "read {pid} {addr:#x}"
        );
        u64::from_ne_bytes(word)
    }

    fn children_of(pid: u32) -> Vec<(u32, char)> {
        let mut out = Vec::new();
        for other in proc::all_pids() {
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
                let expected = crate::inject::restart_equivalent(&b.regs, b.regs.rip != a.regs.rip);
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
            // The target inherited this test's nice value (tests may run niced).
            // SAFETY: plain syscall on this thread.
            let inherited = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            for thread in &after {
                // SAFETY: plain syscall.
                let nice =
                    unsafe { libc::getpriority(libc::PRIO_PROCESS, thread.tid as libc::id_t) };
                assert_eq!(nice, inherited, "thread {} priority restored", thread.tid);
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
            assert!(reap::is_zombie_child_of(dead, pid));
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

    /// A Go program with one region each of MADV_DONTFORK and
    /// MADV_WIPEONFORK memory, filled with a pattern.
    const FORK_FLAGS_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

func region(advice int, seed byte) []byte {
	b, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = byte(i*13) + seed
	}
	if err := syscall.Madvise(b, advice); err != nil {
		panic(err)
	}
	return b
}

func main() {
	dontfork := region(10, 1)
	wipe := region(18, 2)
	fmt.Printf("READY %d %p %p\n", os.Getpid(), &dontfork[0], &wipe[0])
	for {
		time.Sleep(time.Hour)
	}
}
"#;

    /// `--cow` gives the same bytes as the plain copy, including memory the
    /// child does not inherit (copied from the frozen parent), and reaps
    /// its child; a budget below the page-table estimate falls back.
    #[test]
    fn cow_capture_matches_plain_and_falls_back_on_budget() {
        let target = start_pattern_target();
        let dir = tempfile::tempdir().unwrap();
        let cow_path = dir.path().join("cow.snap");
        let cow_options = options(target.pid, &cow_path, Requested::Cow);
        let summary = crate::capture::run(&cow_options, &AtomicI32::new(0)).unwrap();
        let Method::Cow(stats) = &summary.method else {
            panic!("not a cow capture: {:?}", summary.method);
        };
        assert!(stats.fork_us > 0 && stats.fork_us <= summary.pause_us);
        assert!(stats.extra_bytes.is_some_and(|b| b > 0));
        let snapshot = rdlv_format::Snapshot::open(&cow_path).unwrap();
        assert_eq!(snapshot.metadata().capture.method, "cow");
        let mut payload = vec![0u8; 32 << 20];
        snapshot.read_memory(target.payload, &mut payload).unwrap();
        assert!(payload == expected_payload(), "payload bytes differ");
        let children =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", target.pid, target.pid))
                .unwrap_or_default();
        assert_eq!(children.trim(), "", "the forked child was reaped");
        assert_eq!(proc::read_status(target.pid).unwrap().tracer_pid, 0);

        let plain_path = dir.path().join("fallback.snap");
        let mut fallback = options(target.pid, &plain_path, Requested::Cow);
        fallback.cow_max_extra = 1;
        let summary = crate::capture::run(&fallback, &AtomicI32::new(0)).unwrap();
        assert_eq!(summary.method.name(), "plain");
        assert!(summary
            .method
            .fallback_from(Requested::Cow)
            .is_some_and(|r| r.contains("--cow-max-extra")));
        let snapshot = rdlv_format::Snapshot::open(&plain_path).unwrap();
        assert!(snapshot
            .metadata()
            .capture
            .warnings
            .iter()
            .any(|w| w.contains("--cow fell back to the plain copy")));
        snapshot.read_memory(target.payload, &mut payload).unwrap();
        assert!(
            payload == expected_payload(),
            "fallback payload bytes differ"
        );
    }

    #[test]
    fn cow_copies_dontfork_and_wipeonfork_memory_from_the_parent() {
        let exe = crate::testutil::go_program("forkflags", FORK_FLAGS_PROGRAM);
        let mut child = std::process::Command::new(exe)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let line = crate::testutil::wait_ready(&mut child);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        let pid: u32 = fields[0].parse().unwrap();
        let (dontfork, wipe) = (parse(fields[1]), parse(fields[2]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flags.snap");
        let cow_options = options(pid, &path, Requested::Cow);
        let result = crate::capture::run(&cow_options, &AtomicI32::new(0));
        let _ = child.kill();
        let _ = child.wait();
        let summary = result.unwrap();
        assert_eq!(summary.method.name(), "cow");
        let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
        for (addr, seed) in [(dontfork, 1u8), (wipe, 2u8)] {
            let mapping = snapshot
                .metadata()
                .mappings
                .iter()
                .find(|m| m.start <= addr && addr < m.end)
                .unwrap()
                .clone();
            assert!(
                mapping.vm_flags.iter().any(|f| f == "dc" || f == "wf"),
                "{mapping:?}"
            );
            let mut bytes = vec![0u8; 1 << 20];
            snapshot.read_memory(addr, &mut bytes).unwrap();
            let bad = (0..bytes.len())
                .find(|&i| bytes[i] != (i as u8).wrapping_mul(13).wrapping_add(seed));
            assert_eq!(bad, None, "region {addr:#x} differs");
        }
    }
}
