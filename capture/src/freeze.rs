//! Stopping and resuming every thread of the target with ptrace.
//!
//! Only `PTRACE_SEIZE` + `PTRACE_INTERRUPT` are used (never `PTRACE_ATTACH`,
//! never `PTRACE_O_EXITKILL`): if this process dies at any instant, even by
//! SIGKILL, the kernel detaches and every thread runs on.
//!
//! The kernel ties tracees to the *thread* that seized them, so every ptrace
//! request must come from that thread. [`Frozen`] is deliberately `!Send`: the
//! thread that called [`Frozen::freeze`] is the one ptrace thread, and the
//! compiler refuses any attempt to move the guard (and its requests) elsewhere.
//! Memory copying (process_vm_readv, /proc/PID/mem) needs no ptrace request
//! and may run on other threads.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{CaptureError, Result};
use crate::proc;

/// Give up if the thread list is still changing after this many scans (it
/// converges in two in practice: once every listed thread is stopped, nothing
/// can create new ones).
const MAX_SCANS: u32 = 64;
/// Largest xstate area we accept (AMX tiles make it ~11 KiB today).
const XSTATE_BUFFER: usize = 32 * 1024;
/// `NT_X86_XSTATE` regset.
const NT_X86_XSTATE: libc::c_int = 0x202;
/// `NT_PRFPREG` regset (the legacy 512-byte FXSAVE area).
const NT_PRFPREG: libc::c_int = 2;
/// How long to wait, when releasing, for a seized thread that has not yet
/// reported its stop (it must be stopped before it can be detached).
const RELEASE_WAIT: Duration = Duration::from_millis(200);

/// What we know about a thread before stopping it (read outside the pause
/// where possible, because every `/proc` read during the pause costs time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadHint {
    /// Thread id.
    pub tid: u32,
    /// State letter (`?` if unknown).
    pub state: char,
    /// Thread name.
    pub name: String,
}

impl ThreadHint {
    /// Reads the state and name of one thread now.
    pub fn read(pid: u32, tid: u32) -> ThreadHint {
        ThreadHint {
            tid,
            state: proc::thread_state(pid, tid).unwrap_or('?'),
            name: proc::thread_comm(pid, tid),
        }
    }
}

/// One thread that is stopped under ptrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedThread {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name (`comm`).
    pub name: String,
    /// State letter before we stopped it (`?` if it could not be read).
    pub state_before: char,
    /// Stopped at `PTRACE_EVENT_EXIT`: the thread was exiting.
    pub exiting: bool,
    /// Reported a stop signal instead of SIGTRAP: it was in group-stop (e.g.
    /// `kill -STOP`) and stays stopped after we detach.
    pub group_stopped: bool,
}

/// Registers of one stopped thread.
#[derive(Debug, Clone)]
pub struct ThreadRegs {
    /// Thread id.
    pub tid: u32,
    /// General purpose registers.
    pub regs: libc::user_regs_struct,
    /// Raw NT_X86_XSTATE bytes, or NT_PRFPREG bytes if xstate is unavailable.
    pub fpregs: Vec<u8>,
}

/// Raw ptrace call; the libc wrapper is used (not nix) so that any signal
/// number, including real-time ones, can be re-injected faithfully.
pub(crate) fn ptrace(
    request: libc::c_uint,
    tid: u32,
    addr: usize,
    data: usize,
) -> std::result::Result<libc::c_long, Errno> {
    Errno::clear();
    // SAFETY: the requests used here either take no pointer or a pointer to a
    // live, correctly sized buffer owned by the caller.
    let ret = unsafe {
        libc::ptrace(
            request,
            tid as libc::pid_t,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if ret == -1 && Errno::last_raw() != 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// What `waitpid` reported for one thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitEvent {
    /// Nothing yet.
    Pending,
    /// `PTRACE_EVENT_STOP` with this signal (SIGTRAP, or a stop signal in group-stop).
    EventStop(i32),
    /// `PTRACE_EVENT_CLONE`: the thread created another one.
    Clone,
    /// `PTRACE_EVENT_EXIT`: the thread is exiting.
    Exit,
    /// Some other ptrace event we did not ask for.
    OtherEvent,
    /// Signal-delivery-stop: the signal must be re-injected.
    Signal(i32),
    /// The thread is gone.
    Gone,
}

/// A raw `waitpid` report, decoded with the libc macros, without nix's
/// signal parsing (which fails on real-time signals and would lose the
/// status). Shared by the freeze and the syscall injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Nothing to report yet (WNOHANG).
    Pending,
    /// In a ptrace stop: the stop signal and the ptrace event (0 for a
    /// signal-delivery stop).
    Stopped {
        /// `WSTOPSIG`.
        signal: i32,
        /// `status >> 16`: `PTRACE_EVENT_*` or 0.
        event: i32,
    },
    /// Exited, killed, or no longer ours to wait for (ECHILD).
    Gone,
}

/// Decodes a raw wait status.
fn decode_wait(status: libc::c_int) -> Waited {
    if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        Waited::Gone
    } else if libc::WIFSTOPPED(status) {
        Waited::Stopped {
            signal: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xffff,
        }
    } else {
        Waited::Pending
    }
}

/// `waitpid(tid, __WALL | WNOHANG)`, decoded; ECHILD is [`Waited::Gone`].
pub(crate) fn wait_raw(tid: u32) -> std::result::Result<Waited, Errno> {
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
            Errno::ECHILD => Ok(Waited::Gone),
            other => Err(other),
        },
        0 => Ok(Waited::Pending),
        _ => Ok(decode_wait(status)),
    }
}

/// What a wait status means to the freeze.
#[cfg(test)]
fn decode_status(status: libc::c_int) -> WaitEvent {
    event_of(decode_wait(status))
}

fn event_of(waited: Waited) -> WaitEvent {
    match waited {
        Waited::Gone => WaitEvent::Gone,
        Waited::Pending => WaitEvent::Pending,
        Waited::Stopped { signal, event } => match event {
            0 => WaitEvent::Signal(signal),
            libc::PTRACE_EVENT_STOP => WaitEvent::EventStop(signal),
            libc::PTRACE_EVENT_CLONE => WaitEvent::Clone,
            libc::PTRACE_EVENT_EXIT => WaitEvent::Exit,
            _ => WaitEvent::OtherEvent,
        },
    }
}

fn wait_nohang(tid: u32) -> std::result::Result<WaitEvent, Errno> {
    wait_raw(tid).map(event_of)
}

/// Builds the actionable permission error: who traces the target already,
/// Yama's setting, and the capability / container switches that fix it.
pub fn permission_error(pid: u32, what: &str) -> CaptureError {
    let mut hints = Vec::new();
    if let Ok(status) = proc::read_status(pid) {
        if status.tracer_pid != 0 {
            let tracer = status.tracer_pid;
            // Permissions are not the problem then; only one tracer is allowed.
            let hint = if crate::sentinel::sentinels_of(pid).contains(&tracer) {
                format!(
                    "process {pid} is traced by PID {tracer}, the clean-up helper of an rdlv-snap that was killed; it detaches within seconds: run rdlv-snap again"
                )
            } else {
                let comm = std::fs::read_to_string(format!("/proc/{tracer}/comm"))
                    .map(|c| format!(" ({})", c.trim()))
                    .unwrap_or_default();
                format!(
                    "process {pid} is already traced by PID {tracer}{comm} (a debugger, strace or agent); detach it first"
                )
            };
            return CaptureError::Permission {
                pid,
                what: what.to_string(),
                hint,
            };
        }
        // SAFETY: getuid cannot fail.
        let our_uid = unsafe { libc::getuid() };
        if status.uid != our_uid && our_uid != 0 {
            hints.push(format!(
                "the target runs as uid {} and you are uid {our_uid}",
                status.uid
            ));
        }
    }
    match proc::ptrace_scope() {
        Some(scope) => {
            let meaning = match scope.as_str() {
                "0" => "classic permissions",
                "1" => "only descendants may be traced without CAP_SYS_PTRACE",
                "2" => "only processes with CAP_SYS_PTRACE may trace",
                "3" => "tracing is disabled until reboot",
                _ => "unknown value",
            };
            hints.push(format!("kernel.yama.ptrace_scope = {scope} ({meaning}); `sysctl kernel.yama.ptrace_scope=0` relaxes it"));
        }
        None => {
            hints.push("kernel.yama.ptrace_scope: Yama is not enabled on this kernel".to_string())
        }
    }
    hints.push("run as root or with CAP_SYS_PTRACE (`sudo rdlv-snap …` or `setcap cap_sys_ptrace+ep rdlv-snap`)".to_string());
    hints.push(
        "in a container: `docker run --cap-add SYS_PTRACE …`; in Kubernetes: `kubectl debug -it --profile=general --target=APP POD` \
         or add SYS_PTRACE to securityContext.capabilities.add"
            .to_string(),
    );
    CaptureError::Permission {
        pid,
        what: what.to_string(),
        hint: hints.join("; "),
    }
}

/// Every thread of a process, stopped. Dropping it (or [`Frozen::resume`])
/// detaches every thread, which resumes them.
pub struct Frozen {
    pid: u32,
    /// Threads that reported a stop, in the order they stopped.
    stopped: Vec<StoppedThread>,
    /// Every tid we seized and have not detached (stopped or not yet stopped).
    attached: Vec<u32>,
    first_interrupt: Option<Instant>,
    all_stopped: Option<Instant>,
    /// Makes the guard `!Send` and `!Sync`: ptrace requests must come from the
    /// thread that seized.
    _one_thread: PhantomData<*const ()>,
}

/// Timing of a completed freeze/resume cycle.
#[derive(Debug, Clone, Copy)]
pub struct ResumeReport {
    /// First PTRACE_INTERRUPT.
    pub first_interrupt: Instant,
    /// All threads stopped.
    pub all_stopped: Instant,
    /// Last PTRACE_DETACH returned.
    pub resumed: Instant,
}

impl ResumeReport {
    /// Microseconds the target was (at least partly) stopped.
    pub fn pause_us(&self) -> u64 {
        duration_us(self.resumed.saturating_duration_since(self.first_interrupt))
    }

    /// Microseconds spent stopping every thread.
    pub fn freeze_us(&self) -> u64 {
        duration_us(
            self.all_stopped
                .saturating_duration_since(self.first_interrupt),
        )
    }
}

/// Whole microseconds of a duration, saturating.
pub fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Checks the abort flag and the pause deadline.
pub fn check_budget(
    abort: &AtomicI32,
    deadline: Option<(Instant, Instant)>,
    stage: &'static str,
) -> Result<()> {
    let signal = abort.load(Ordering::Relaxed);
    if signal != 0 {
        return Err(CaptureError::Interrupted { signal });
    }
    if let Some((start, deadline)) = deadline {
        let now = Instant::now();
        if now > deadline {
            return Err(CaptureError::PauseBudget {
                elapsed_ms: u64::try_from(now.saturating_duration_since(start).as_millis())
                    .unwrap_or(u64::MAX),
                stage,
            });
        }
    }
    Ok(())
}

impl Frozen {
    /// Stops every thread of `pid`. Fails (with every thread already resumed)
    /// if the process exits, permission is denied, `abort` becomes non-zero
    /// (a signal number) or stopping takes longer than `max_pause`.
    ///
    /// `hints` holds state and name of threads read shortly before, outside
    /// the pause, so that known threads need no extra read while stopped.
    pub fn freeze(
        pid: u32,
        max_pause: Duration,
        abort: &AtomicI32,
        hints: &[ThreadHint],
    ) -> Result<Frozen> {
        let mut frozen = Frozen {
            pid,
            stopped: Vec::new(),
            attached: Vec::new(),
            first_interrupt: None,
            all_stopped: None,
            _one_thread: PhantomData,
        };
        frozen.stop_all(max_pause, abort, hints)?;
        Ok(frozen)
    }

    fn list_tasks(&self) -> Result<Vec<u32>> {
        match proc::list_tasks(self.pid) {
            Ok(tids) => Ok(tids),
            Err(_) if !proc::process_exists(self.pid) => {
                Err(CaptureError::Exited { pid: self.pid })
            }
            Err(e) => Err(e),
        }
    }

    fn deadline(&self, max_pause: Duration) -> Option<(Instant, Instant)> {
        self.first_interrupt.map(|start| (start, start + max_pause))
    }

    fn stop_all(
        &mut self,
        max_pause: Duration,
        abort: &AtomicI32,
        hints: &[ThreadHint],
    ) -> Result<()> {
        let pid = self.pid;
        let mut known: HashSet<u32> = HashSet::new();
        // Seized threads whose stop we still wait for.
        let mut pending: Vec<ThreadHint> = Vec::new();
        let hint_by_tid: std::collections::HashMap<u32, &ThreadHint> =
            hints.iter().map(|h| (h.tid, h)).collect();
        let options = (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEEXIT) as usize;
        let mut scans = 0u32;
        loop {
            scans += 1;
            if scans > MAX_SCANS {
                return Err(CaptureError::ThreadsUnstable {
                    pid,
                    passes: MAX_SCANS,
                });
            }
            check_budget(abort, self.deadline(max_pause), "stopping threads")?;
            let tids = self.list_tasks()?;
            let new: Vec<u32> = tids.into_iter().filter(|t| !known.contains(t)).collect();
            if new.is_empty() && pending.is_empty() {
                break;
            }
            for tid in new {
                known.insert(tid);
                let hint = hint_by_tid
                    .get(&tid)
                    .map(|h| (*h).clone())
                    .unwrap_or_else(|| ThreadHint::read(pid, tid));
                if matches!(hint.state, 'Z' | 'X') {
                    // A zombie (e.g. a leader that called pthread_exit) cannot be traced.
                    continue;
                }
                match ptrace(libc::PTRACE_SEIZE, tid, 0, options) {
                    Ok(_) => {}
                    Err(Errno::ESRCH) => continue,
                    Err(Errno::EPERM) => {
                        if !proc::process_exists(pid) {
                            return Err(CaptureError::Exited { pid });
                        }
                        // An exiting thread also answers EPERM; only a live one is a real refusal.
                        if !proc::thread_exists(pid, tid)
                            || matches!(proc::thread_state(pid, tid), Some('Z' | 'X') | None)
                        {
                            continue;
                        }
                        return Err(permission_error(pid, "PTRACE_SEIZE"));
                    }
                    Err(errno) => {
                        return Err(CaptureError::Ptrace {
                            op: "SEIZE",
                            tid,
                            errno,
                        })
                    }
                }
                self.attached.push(tid);
                if self.first_interrupt.is_none() {
                    self.first_interrupt = Some(Instant::now());
                }
                match ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) {
                    // ESRCH: the thread died after SEIZE; waitpid will report it gone.
                    Ok(_) | Err(Errno::ESRCH) => {}
                    Err(errno) => {
                        return Err(CaptureError::Ptrace {
                            op: "INTERRUPT",
                            tid,
                            errno,
                        })
                    }
                }
                pending.push(hint);
            }
            self.wait_pending(&mut pending, &mut known, max_pause, abort)?;
        }
        if self.stopped.is_empty() {
            return Err(CaptureError::Exited { pid });
        }
        self.all_stopped = Some(Instant::now());
        Ok(())
    }

    /// Waits until every pending thread has stopped or vanished, re-injecting
    /// signals and adopting threads born from PTRACE_EVENT_CLONE.
    fn wait_pending(
        &mut self,
        pending: &mut Vec<ThreadHint>,
        known: &mut HashSet<u32>,
        max_pause: Duration,
        abort: &AtomicI32,
    ) -> Result<()> {
        let mut idle_rounds = 0u32;
        while !pending.is_empty() {
            check_budget(abort, self.deadline(max_pause), "stopping threads")?;
            let mut progressed = false;
            let mut index = 0;
            while index < pending.len() {
                let Some(tid) = pending.get(index).map(|h| h.tid) else {
                    break;
                };
                let event = match wait_nohang(tid) {
                    Ok(event) => event,
                    Err(Errno::EINTR) => break,
                    Err(errno) => {
                        return Err(CaptureError::Ptrace {
                            op: "WAIT",
                            tid,
                            errno,
                        })
                    }
                };
                match event {
                    WaitEvent::Pending => {
                        index += 1;
                        continue;
                    }
                    WaitEvent::EventStop(sig) => {
                        let hint = pending.swap_remove(index);
                        self.record_stop(hint, false, sig != libc::SIGTRAP);
                    }
                    WaitEvent::Exit => {
                        let hint = pending.swap_remove(index);
                        self.record_stop(hint, true, false);
                    }
                    WaitEvent::Gone => {
                        self.attached.retain(|t| *t != tid);
                        pending.swap_remove(index);
                    }
                    WaitEvent::Clone => {
                        let mut child: libc::c_ulong = 0;
                        let msg = ptrace(
                            libc::PTRACE_GETEVENTMSG,
                            tid,
                            0,
                            &mut child as *mut libc::c_ulong as usize,
                        );
                        if msg.is_ok() {
                            if let Ok(child) = u32::try_from(child) {
                                // Auto-attached by TRACECLONE; it starts in an EVENT_STOP of its own.
                                if child != 0 && known.insert(child) {
                                    self.attached.push(child);
                                    pending.push(ThreadHint {
                                        tid: child,
                                        state: 'R',
                                        name: proc::thread_comm(self.pid, child),
                                    });
                                }
                            }
                        }
                        self.continue_and_interrupt(tid, 0)?;
                        index += 1;
                    }
                    WaitEvent::OtherEvent => {
                        self.continue_and_interrupt(tid, 0)?;
                        index += 1;
                    }
                    WaitEvent::Signal(sig) => {
                        // A signal arrived before our trap: deliver it and wait for the trap.
                        self.continue_and_interrupt(tid, sig)?;
                        index += 1;
                    }
                }
                progressed = true;
            }
            if progressed {
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
                if idle_rounds < 50 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        }
        Ok(())
    }

    fn continue_and_interrupt(&mut self, tid: u32, sig: i32) -> Result<()> {
        let sig = usize::try_from(sig).unwrap_or(0);
        match ptrace(libc::PTRACE_CONT, tid, 0, sig) {
            Ok(_) | Err(Errno::ESRCH) => {}
            Err(errno) => {
                return Err(CaptureError::Ptrace {
                    op: "CONT",
                    tid,
                    errno,
                })
            }
        }
        // The interrupt trap normally survives the continue; asking again is
        // harmless and guarantees the thread stops.
        match ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) {
            Ok(_) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(CaptureError::Ptrace {
                op: "INTERRUPT",
                tid,
                errno,
            }),
        }
    }

    fn record_stop(&mut self, hint: ThreadHint, exiting: bool, group_stopped: bool) {
        self.stopped.push(StoppedThread {
            tid: hint.tid,
            name: hint.name,
            state_before: hint.state,
            exiting,
            group_stopped,
        });
    }

    /// The stopped threads, in the order they stopped.
    pub fn threads(&self) -> &[StoppedThread] {
        &self.stopped
    }

    /// When the first thread was interrupted.
    pub fn first_interrupt(&self) -> Option<Instant> {
        self.first_interrupt
    }

    /// Reads general-purpose and extended registers of every stopped thread.
    pub fn registers(&self) -> Result<Vec<ThreadRegs>> {
        let mut out = Vec::with_capacity(self.stopped.len());
        let mut scratch = vec![0u8; XSTATE_BUFFER];
        for thread in &self.stopped {
            let tid = thread.tid;
            // SAFETY: user_regs_struct is plain old data; all-zero is valid.
            let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
            ptrace(libc::PTRACE_GETREGS, tid, 0, &mut regs as *mut _ as usize).map_err(
                |errno| CaptureError::Ptrace {
                    op: "GETREGS",
                    tid,
                    errno,
                },
            )?;
            let fpregs = read_regset(tid, NT_X86_XSTATE, &mut scratch)
                .or_else(|_| {
                    read_regset(tid, NT_PRFPREG, scratch.get_mut(..512).unwrap_or_default())
                })
                .map_err(|errno| CaptureError::Ptrace {
                    op: "GETREGSET",
                    tid,
                    errno,
                })?;
            out.push(ThreadRegs { tid, regs, fpregs });
        }
        Ok(out)
    }

    /// Detaches every thread (resuming it) and reports the timings.
    pub fn resume(mut self) -> ResumeReport {
        self.release();
        let resumed = Instant::now();
        let first_interrupt = self.first_interrupt.unwrap_or(resumed);
        ResumeReport {
            first_interrupt,
            all_stopped: self.all_stopped.unwrap_or(resumed),
            resumed,
        }
    }

    /// Detaches everything we seized. A thread that was seized but has not
    /// reported its stop yet cannot be detached while running, so we wait for
    /// its stop briefly first.
    fn release(&mut self) {
        let attached = std::mem::take(&mut self.attached);
        let stopped: HashSet<u32> = self.stopped.iter().map(|t| t.tid).collect();
        let mut running = Vec::new();
        for tid in attached {
            if stopped.contains(&tid) {
                // In an event stop: detaching resumes it, nothing is lost.
                let _ = ptrace(libc::PTRACE_DETACH, tid, 0, 0);
            } else if !release_one(tid) && proc::thread_exists(self.pid, tid) {
                running.push(tid);
            }
        }
        let give_up = Instant::now() + RELEASE_WAIT;
        while !running.is_empty() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_micros(50));
            running.retain(|&tid| !release_one(tid));
        }
        // Anything left (a thread stuck in uninterruptible sleep) is released
        // by the kernel when this process exits.
    }
}

/// Detaches a thread whose last stop we have not consumed: a pending
/// signal-delivery-stop is detached with its signal, so it is delivered
/// rather than lost. Returns false while the thread is still running towards
/// its stop (it cannot be detached yet).
fn release_one(tid: u32) -> bool {
    match wait_nohang(tid) {
        Ok(WaitEvent::Pending) => {
            // Possibly already stopped with its status consumed elsewhere.
            ptrace(libc::PTRACE_DETACH, tid, 0, 0).is_ok()
        }
        Ok(WaitEvent::Gone) | Err(_) => true,
        Ok(WaitEvent::Signal(sig)) => {
            let _ = ptrace(
                libc::PTRACE_DETACH,
                tid,
                0,
                usize::try_from(sig).unwrap_or(0),
            );
            true
        }
        Ok(_) => {
            let _ = ptrace(libc::PTRACE_DETACH, tid, 0, 0);
            true
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.release();
    }
}

/// Reads one regset through a reusable scratch buffer and returns exactly
/// the bytes the kernel wrote (allocating a full-size buffer per thread would
/// fault in fresh pages during the pause).
fn read_regset(
    tid: u32,
    kind: libc::c_int,
    scratch: &mut [u8],
) -> std::result::Result<Vec<u8>, Errno> {
    let mut iov = libc::iovec {
        iov_base: scratch.as_mut_ptr().cast(),
        iov_len: scratch.len(),
    };
    ptrace(
        libc::PTRACE_GETREGSET,
        tid,
        usize::try_from(kind).unwrap_or(0),
        &mut iov as *mut libc::iovec as usize,
    )?;
    // The kernel shrinks iov_len to what it wrote.
    Ok(scratch.get(..iov.iov_len).unwrap_or(scratch).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    static NO_ABORT: AtomicI32 = AtomicI32::new(0);

    use crate::testutil::KillOnDrop;

    fn wait_for_state(pid: u32, tid: u32, accept: &[char]) -> char {
        let start = Instant::now();
        loop {
            let state = proc::thread_state(pid, tid).unwrap_or('?');
            if accept.contains(&state) || start.elapsed() > Duration::from_secs(5) {
                return state;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn decodes_wait_statuses() {
        // Layouts from wait(2): exited = code<<8; stopped = sig<<8 | 0x7f; event in bits 16+.
        assert_eq!(decode_status(0), WaitEvent::Gone);
        assert_eq!(decode_status(9), WaitEvent::Gone);
        assert_eq!(
            decode_status((libc::SIGURG << 8) | 0x7f),
            WaitEvent::Signal(libc::SIGURG)
        );
        assert_eq!(decode_status((34 << 8) | 0x7f), WaitEvent::Signal(34));
        assert_eq!(
            decode_status((libc::PTRACE_EVENT_STOP << 16) | (libc::SIGTRAP << 8) | 0x7f),
            WaitEvent::EventStop(libc::SIGTRAP)
        );
        assert_eq!(
            decode_status((libc::PTRACE_EVENT_CLONE << 16) | (libc::SIGTRAP << 8) | 0x7f),
            WaitEvent::Clone
        );
        assert_eq!(
            decode_status((libc::PTRACE_EVENT_EXIT << 16) | (libc::SIGTRAP << 8) | 0x7f),
            WaitEvent::Exit
        );
    }

    #[test]
    fn freezes_and_resumes_a_sleep_child() {
        let child = KillOnDrop(
            Command::new("sleep")
                .arg("30")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        assert_eq!(wait_for_state(pid, pid, &['S']), 'S');
        let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
        assert_eq!(frozen.threads().len(), 1);
        assert_eq!(frozen.threads()[0].tid, pid);
        assert_eq!(frozen.threads()[0].name, "sleep");
        assert_eq!(frozen.threads()[0].state_before, 'S');
        assert!(!frozen.threads()[0].group_stopped);
        assert_eq!(proc::thread_state(pid, pid), Some('t'));
        let status = proc::read_status(pid).unwrap();
        // The tracer is the thread that seized, not the whole test process.
        assert_eq!(status.tracer_pid, nix::unistd::gettid().as_raw() as u32);
        let regs = frozen.registers().unwrap();
        assert_eq!(regs.len(), 1);
        assert_ne!(regs[0].regs.rip, 0);
        assert_ne!(regs[0].regs.rsp, 0);
        assert!(
            regs[0].fpregs.len() >= 512,
            "fpregs {} bytes",
            regs[0].fpregs.len()
        );
        // While we trace it, a second tracer is told who holds it.
        let message = permission_error(pid, "PTRACE_SEIZE").to_string();
        assert!(
            message.contains(&format!("already traced by PID {}", nix::unistd::gettid())),
            "{message}"
        );
        let report = frozen.resume();
        assert!(report.pause_us() >= report.freeze_us());
        let message = permission_error(pid, "PTRACE_SEIZE").to_string();
        for needle in [
            "kernel.yama.ptrace_scope",
            "CAP_SYS_PTRACE",
            "--cap-add SYS_PTRACE",
            "kubectl debug",
        ] {
            assert!(message.contains(needle), "{message}");
        }
        assert_eq!(wait_for_state(pid, pid, &['S']), 'S');
        assert_eq!(proc::read_status(pid).unwrap().tracer_pid, 0);
    }

    #[test]
    fn drop_resumes_and_keeps_group_stop() {
        let child = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        wait_for_state(pid, pid, &['S']);
        {
            let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
            assert_eq!(proc::thread_state(pid, pid), Some('t'));
            drop(frozen);
        }
        assert_eq!(wait_for_state(pid, pid, &['S']), 'S');
        // A process stopped by SIGSTOP before capture is still stopped after it.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
        assert_eq!(wait_for_state(pid, pid, &['T']), 'T');
        let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
        assert!(frozen.threads()[0].group_stopped);
        frozen.resume();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(proc::thread_state(pid, pid), Some('T'));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGCONT,
        )
        .unwrap();
        assert_eq!(wait_for_state(pid, pid, &['S']), 'S');
    }

    /// A signal that arrived while we were stopping the thread and that we
    /// had not yet re-injected is delivered on release, not lost.
    #[test]
    fn release_delivers_an_unconsumed_signal() {
        let mut child = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        wait_for_state(pid, pid, &['S']);
        ptrace(libc::PTRACE_SEIZE, pid, 0, 0).unwrap();
        let mut frozen = Frozen {
            pid,
            stopped: Vec::new(),
            attached: vec![pid],
            first_interrupt: None,
            all_stopped: None,
            _one_thread: PhantomData,
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        // The thread now sits in a signal-delivery-stop for SIGTERM.
        assert_eq!(wait_for_state(pid, pid, &['t']), 't');
        frozen.release();
        let status = child.0.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn abort_flag_resumes_immediately() {
        let child = KillOnDrop(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        wait_for_state(pid, pid, &['S']);
        let abort = AtomicI32::new(libc::SIGINT);
        let err = Frozen::freeze(pid, Duration::from_secs(5), &abort, &[])
            .err()
            .unwrap();
        assert!(matches!(err, CaptureError::Interrupted { signal } if signal == libc::SIGINT));
        assert_eq!(proc::read_status(pid).unwrap().tracer_pid, 0);
    }

    #[test]
    fn missing_process_is_reported() {
        // Pid numbers above pid_max never exist.
        let err = Frozen::freeze(u32::MAX - 1, Duration::from_secs(1), &NO_ABORT, &[])
            .err()
            .unwrap();
        assert!(matches!(err, CaptureError::Exited { .. }), "{err}");
    }

    /// A Go program with many threads busy in goroutines: every thread must
    /// stop (state `t`), and all must run again after resume.
    #[test]
    fn freezes_a_busy_go_process() {
        let exe = crate::testutil::go_program(
            "busy",
            r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

var counter atomic.Int64

func main() {
	runtime.GOMAXPROCS(4)
	for i := 0; i < 8; i++ {
		go func() {
			for {
				counter.Add(1)
			}
		}()
	}
	for i := 0; i < 4; i++ {
		go func() {
			for {
				time.Sleep(time.Millisecond)
			}
		}()
	}
	fmt.Println("READY", os.Getpid())
	select {}
}
"#,
        );
        let mut child = KillOnDrop(Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap());
        let pid = child.0.id();
        crate::testutil::wait_ready(&mut child.0);
        for _round in 0..5 {
            let frozen = Frozen::freeze(pid, Duration::from_secs(5), &NO_ABORT, &[]).unwrap();
            let tids = proc::list_tasks(pid).unwrap();
            assert!(tids.len() >= 4, "{tids:?}");
            let mut stopped: Vec<u32> = frozen.threads().iter().map(|t| t.tid).collect();
            stopped.sort_unstable();
            assert_eq!(stopped, tids);
            for tid in &tids {
                assert_eq!(proc::thread_state(pid, *tid), Some('t'), "thread {tid}");
            }
            let regs = frozen.registers().unwrap();
            assert!(regs.iter().all(|r| r.regs.fs_base != 0));
            let report = frozen.resume();
            assert!(report.pause_us() < 1_000_000);
            std::thread::sleep(Duration::from_millis(20));
            assert!(proc::list_tasks(pid)
                .unwrap()
                .iter()
                .all(|tid| proc::thread_state(pid, *tid) != Some('t')));
        }
    }
}
