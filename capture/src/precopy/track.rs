//! userfaultfd write tracking of the target's private anonymous memory:
//! taking over a userfaultfd the target creates (injected `userfaultfd` and
//! `close`), asynchronous write protection of present pages, and its
//! removal in pieces. See the parent module for why it is safe.
//!
//! Invariant: only rdlv-snap's descriptor holds the userfaultfd once
//! [`WriteTracker::attach`] returns Ok; dropping the tracker (or rdlv-snap
//! dying) unregisters every range and clears every protection bit.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicI32;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::CaptureError;
use crate::freeze::{check_budget, Frozen, ThreadHint};
use crate::inject::{InjectError, ParkedHost, SYS_CLOSE, SYS_USERFAULTFD};
use crate::pages::{self, PageRange, PresenceScanner};
use crate::proc::MapsEntry;
use crate::seccomp::Admitted;
use crate::sentinel::Sentinel;

const SYS_PIDFD_OPEN: libc::c_long = 434;
const SYS_PIDFD_GETFD: libc::c_long = 438;

/// `UFFD_USER_MODE_ONLY`: allowed without privileges; faults from kernel
/// mode are not delivered (irrelevant here: asynchronous mode delivers none).
const UFFD_USER_MODE_ONLY: u64 = 1;
const O_CLOEXEC: u64 = libc::O_CLOEXEC as u64;
const O_NONBLOCK: u64 = libc::O_NONBLOCK as u64;

const UFFD_API: u64 = 0xAA;
/// Write protection applies to unpopulated pages too (pte markers); with it
/// anonymous mappings count as `PAGE_IS_WPALLOWED`, which `PAGEMAP_SCAN`
/// needs for `PM_SCAN_WP_MATCHING` (we only ever protect existing pages).
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)`.
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)`.
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
/// `_IOR(0xAA, 0x01, struct uffdio_range)`.
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_AA01;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
/// Bytes unregistered per `UFFDIO_UNREGISTER` call (see `Drop`).
const UNREGISTER_CHUNK: u64 = 16 << 20;

/// Freezes tried to find a thread parked in the futex stub.
const ATTACH_ATTEMPTS: u32 = 10;

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

/// Why write tracking could not be set up (or failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrecopyError {
    /// The target runs under a seccomp filter, which could kill it on the
    /// injected syscall.
    #[error("{0}")]
    Seccomp(String),
    /// The target is in job-control stop: no thread runs to host anything.
    #[error("{}", crate::proc::STOPPED_REASON)]
    Stopped,
    /// No thread was parked in Go's futex stub to host the injected syscall.
    #[error("no thread is parked in Go's runtime.futex to host the injected userfaultfd() (is it a Go program?)")]
    NoHostThread,
    /// The target's userfaultfd() failed.
    #[error(
        "userfaultfd() in the target failed: {0} (CONFIG_USERFAULTFD, or a seccomp/LSM policy?)"
    )]
    Userfaultfd(Errno),
    /// pidfd_open/pidfd_getfd failed.
    #[error("{op} failed: {errno} (needs Linux 5.6+ and ptrace access)")]
    Pidfd {
        /// Which call.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
    /// The injected `close()` of the target's own descriptor failed (ours
    /// was closed again: nothing is registered on the one the target keeps).
    #[error("the target keeps an idle userfaultfd descriptor {fd} (nothing registered on it): close() in the target failed: {cause}")]
    TargetKeepsDescriptor {
        /// The descriptor number in the target.
        fd: u64,
        /// Why close() failed.
        cause: String,
    },
    /// The kernel has no asynchronous write protection.
    #[error("the kernel lacks UFFD_FEATURE_WP_ASYNC (Linux 6.7+): {0}")]
    NoAsyncWriteProtect(Errno),
    /// A userfaultfd ioctl failed unexpectedly.
    #[error("userfaultfd {op} on {start:#x}..{end:#x} failed: {errno}")]
    Ioctl {
        /// Which ioctl.
        op: &'static str,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// The error.
        errno: Errno,
    },
    /// The injection itself failed.
    #[error(transparent)]
    Inject(#[from] InjectError),
    /// Freezing or a budget failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

impl PrecopyError {
    /// Whether the capture should go on with the plain copy: nothing was
    /// changed in the target, or what was is already undone.
    pub fn falls_back(&self) -> bool {
        match self {
            PrecopyError::Seccomp(_)
            | PrecopyError::Stopped
            | PrecopyError::NoHostThread
            | PrecopyError::Userfaultfd(_)
            | PrecopyError::Pidfd { .. }
            | PrecopyError::NoAsyncWriteProtect(_)
            | PrecopyError::TargetKeepsDescriptor { .. } => true,
            PrecopyError::Inject(InjectError::NoHostThread) => true,
            PrecopyError::Inject(_) => false,
            PrecopyError::Ioctl { .. } | PrecopyError::Capture(_) => false,
        }
    }
}

impl From<PrecopyError> for CaptureError {
    fn from(error: PrecopyError) -> CaptureError {
        match error {
            PrecopyError::Capture(inner) => inner,
            PrecopyError::Inject(inner) => inner.into_capture("--precopy write tracking"),
            other => CaptureError::Parse {
                what: "--precopy write tracking".into(),
                detail: other.to_string(),
            },
        }
    }
}

/// Whether mappings like `entry` are write-tracked: private, writable and
/// anonymous (no backing file). Only there does every change of a page go
/// through the target's own page tables (see the module comment).
pub fn trackable(entry: &MapsEntry) -> bool {
    entry.writable() && entry.perms.as_bytes().get(3) == Some(&b'p') && entry.inode == 0
}

/// Asynchronous write tracking over ranges of one process's memory.
/// Dropping it unregisters every range and closes the userfaultfd, which
/// clears any protection left.
pub struct WriteTracker {
    uffd: OwnedFd,
    tracked: Vec<PageRange>,
}

impl WriteTracker {
    /// Wraps a userfaultfd of the target and switches it to asynchronous
    /// write protection.
    fn new(uffd: OwnedFd) -> Result<WriteTracker, PrecopyError> {
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
            ioctls: 0,
        };
        // SAFETY: `api` is a valid uffdio_api for the duration of the call.
        let ret = unsafe { libc::ioctl(uffd.as_raw_fd(), UFFDIO_API as _, &mut api) };
        if ret < 0 {
            return Err(PrecopyError::NoAsyncWriteProtect(Errno::last()));
        }
        let wanted = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
        if api.features & wanted != wanted {
            return Err(PrecopyError::NoAsyncWriteProtect(Errno::ENOTSUP));
        }
        Ok(WriteTracker {
            uffd,
            tracked: Vec::new(),
        })
    }

    /// Makes the frozen-then-resumed target create a userfaultfd and takes
    /// it over (see the module comment). Returns the tracker, or why not,
    /// and the microseconds the target was stopped trying (failed tries
    /// count too). On error the target runs and holds no userfaultfd of
    /// ours, except after [`PrecopyError::TargetKeepsDescriptor`]. Each
    /// step is told to `sentinel`, which closes the target's descriptor
    /// should rdlv-snap be killed between the injected `userfaultfd()` and
    /// `close()`.
    pub fn attach(
        pid: u32,
        max_pause: Duration,
        abort: &AtomicI32,
        hints: &[ThreadHint],
        mut sentinel: Option<&mut Sentinel>,
    ) -> (Result<WriteTracker, PrecopyError>, u64) {
        let mut pause_us = 0u64;
        let result =
            Self::attach_counting(pid, max_pause, abort, hints, &mut sentinel, &mut pause_us);
        (result, pause_us)
    }

    fn attach_counting(
        pid: u32,
        max_pause: Duration,
        abort: &AtomicI32,
        hints: &[ThreadHint],
        sentinel: &mut Option<&mut Sentinel>,
        pause_us: &mut u64,
    ) -> Result<WriteTracker, PrecopyError> {
        if crate::proc::job_stopped(pid) {
            return Err(PrecopyError::Stopped);
        }
        let filtered = crate::seccomp::admission(pid).map_err(PrecopyError::Seccomp)?;
        let pidfd = pidfd_open(pid)?;
        for attempt in 0..ATTACH_ATTEMPTS {
            check_budget(abort, None, "setting up write tracking")?;
            // Not worth a stop while no thread even looks parked (a non-Go
            // target never has one).
            if !untimed_futex_waiter(pid) {
                if attempt + 1 < ATTACH_ATTEMPTS {
                    std::thread::sleep(Duration::from_millis(2 + u64::from(attempt) * 2));
                    continue;
                }
                return Err(PrecopyError::NoHostThread);
            }
            let frozen = Frozen::freeze(pid, max_pause, abort, hints)?;
            let taken = take_userfaultfd(pid, &frozen, &pidfd, filtered, sentinel.as_deref_mut());
            *pause_us += frozen.resume().pause_us();
            match taken {
                Ok(uffd) => return WriteTracker::new(uffd),
                // A thread that died under us (SIGKILL of the whole
                // process) is no host either: do not freeze a dying process
                // again.
                Err(_) if crate::proc::gone_or_exiting(pid) => {
                    return Err(CaptureError::Exited { pid }.into())
                }
                Err(PrecopyError::NoHostThread) if attempt + 1 < ATTACH_ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(2 + u64::from(attempt) * 2));
                }
                Err(error) => return Err(error),
            }
        }
        Err(PrecopyError::NoHostThread)
    }

    /// Registers `[start, end)` (one whole mapping) for write protection and
    /// protects its present pages (through `scanner`, the target's
    /// `PAGEMAP_SCAN`). `Ok(false)` when the kernel will not track this
    /// mapping (it stays untracked and is copied in the freeze).
    ///
    /// Only present pages are protected: `UFFDIO_WRITEPROTECT` would also
    /// put markers in the holes, which `PAGEMAP_SCAN` reports as swapped
    /// pages, and reading those would fault them into the target.
    pub fn protect(
        &mut self,
        start: u64,
        end: u64,
        scanner: &mut PresenceScanner,
    ) -> Result<bool, PrecopyError> {
        if end <= start {
            return Ok(false);
        }
        let range = UffdioRange {
            start,
            len: end - start,
        };
        let mut register = UffdioRegister {
            range,
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        // SAFETY: `register` is a valid uffdio_register for the call.
        let ret =
            unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_REGISTER as _, &mut register) };
        if ret < 0 {
            return match Errno::last() {
                // Not anonymous after all, unmapped meanwhile, or another
                // userfaultfd owns it: leave it to the freeze.
                Errno::EINVAL | Errno::EBUSY | Errno::ENOMEM | Errno::EPERM => Ok(false),
                errno => Err(PrecopyError::Ioctl {
                    op: "REGISTER",
                    start,
                    end,
                    errno,
                }),
            };
        }
        if let Err(error) = scanner.write_protect_existing(start, end) {
            self.unregister(range);
            return match error.raw_os_error() {
                // The mapping changed under us (EPERM: no longer registered
                // for asynchronous protection): leave it to the freeze.
                Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::ENOMEM) => Ok(false),
                _ => Err(PrecopyError::Ioctl {
                    op: "PAGEMAP_SCAN write protect",
                    start,
                    end,
                    errno: Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO)),
                }),
            };
        }
        pages::push_range(&mut self.tracked, start, end - start);
        Ok(true)
    }

    /// The ranges under write tracking, sorted.
    pub fn tracked(&self) -> &[PageRange] {
        &self.tracked
    }

    /// Of `unwritten` (present pages whose write protection is intact, from
    /// [`crate::pages::plan_with_unwritten`]), those in ranges this tracker
    /// protected: elsewhere the bit was not set by us.
    pub fn tracked_only(&self, unwritten: &[PageRange]) -> Vec<PageRange> {
        pages::intersect_ranges(unwritten, &self.tracked)
    }

    fn unregister(&self, mut range: UffdioRange) {
        // SAFETY: `range` is a valid uffdio_range for the call. Failure only
        // means the range is gone already; closing the fd clears the rest.
        unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_UNREGISTER as _, &mut range) };
    }
}

impl Drop for WriteTracker {
    fn drop(&mut self) {
        // Unregistering walks the range to clear the protection under the
        // target's mmap write lock, which holds up its page faults (about
        // 25 ms per GiB here): in chunks, the lock is let go in between.
        for range in &self.tracked {
            let mut at = range.addr;
            let end = range.addr + range.len;
            while at < end {
                let len = (end - at).min(UNREGISTER_CHUNK);
                self.unregister(UffdioRange { start: at, len });
                at += len;
            }
        }
        // Closing the descriptor (the only one left) releases the context.
    }
}

/// Whether a thread of `pid` is, by `/proc/PID/task/TID/syscall`, blocked
/// in an untimed `FUTEX_WAIT` (what [`ParkedHost`] looks for, checked
/// properly once the target is stopped). Reading it needs no stop.
fn untimed_futex_waiter(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(crate::proc::proc_dir(pid).join("task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("syscall"))
            .is_ok_and(|line| is_untimed_futex_wait(&line))
    })
}

/// `/proc/PID/task/TID/syscall` is `NR ARG1 .. ARG6 SP PC` (hex args), or
/// `running` / `-1 SP PC` when not in a syscall.
fn is_untimed_futex_wait(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    let hex =
        |f: Option<&str>| f.and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
    let nr = fields.next();
    let _uaddr = fields.next();
    let op = hex(fields.next());
    let _val = fields.next();
    let timeout = hex(fields.next());
    nr == Some("202") && op.is_some_and(|op| op & 0x7f == 0) && timeout == Some(0)
}

fn pidfd_open(pid: u32) -> Result<OwnedFd, PrecopyError> {
    // SAFETY: plain syscall; the result is a new descriptor or -1.
    let fd = unsafe { libc::syscall(SYS_PIDFD_OPEN, pid as libc::c_long, 0 as libc::c_long) };
    if fd < 0 {
        return Err(PrecopyError::Pidfd {
            op: "pidfd_open",
            errno: Errno::last(),
        });
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// With the target frozen: injects `userfaultfd()`, duplicates the new
/// descriptor into this process and injects `close()` of the target's copy.
fn take_userfaultfd(
    pid: u32,
    frozen: &Frozen,
    pidfd: &OwnedFd,
    filtered: bool,
    mut sentinel: Option<&mut Sentinel>,
) -> Result<OwnedFd, PrecopyError> {
    // One host for both syscalls: after the first it no longer looks parked.
    let host = match ParkedHost::find(pid, frozen.threads()) {
        Ok(host) => host,
        Err(InjectError::NoHostThread) => return Err(PrecopyError::NoHostThread),
        Err(error) => return Err(error.into()),
    };
    let flags = UFFD_USER_MODE_ONLY | O_CLOEXEC | O_NONBLOCK;
    let predicted_fd = crate::proc::lowest_free_fd(pid);
    let mut admitted = Admitted::Allowed;
    if filtered {
        // Both calls, decided before the first is made.
        let planned = [
            planned_call("userfaultfd", SYS_USERFAULTFD, flags),
            planned_call("close", SYS_CLOSE, predicted_fd),
        ];
        admitted = crate::seccomp::check(
            host.tid(),
            host.ip(),
            &planned,
            crate::seccomp::can_suspend(),
        )
        .map_err(PrecopyError::Seccomp)?;
    }
    if let Some(sentinel) = sentinel.as_deref_mut() {
        let existing = crate::proc::userfaultfd_fds(pid);
        let list = if existing.is_empty() {
            "-".to_string()
        } else {
            existing
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        sentinel.send(&format!(
            "uffd-injecting {} {:x} {list}",
            host.tid(),
            host.syscall_addr()
        ));
    }
    let ret = match admitted {
        Admitted::Allowed => host
            .syscall(pid, SYS_USERFAULTFD, [flags, 0, 0, 0, 0])
            .map_err(PrecopyError::from),
        // The filter would answer EPERM-like: made with it suspended for
        // this one call (the options are reset right after it).
        Admitted::Suspended => host
            .syscall_unfiltered(pid, SYS_USERFAULTFD, [flags, 0, 0, 0, 0])
            .map_err(|error| match error {
                InjectError::Ptrace {
                    op: "SETOPTIONS",
                    errno,
                    ..
                } => PrecopyError::Seccomp(format!(
                    "the target's seccomp filter refuses userfaultfd() and the kernel refused to suspend it (PTRACE_O_SUSPEND_SECCOMP: {errno}; CONFIG_CHECKPOINT_RESTORE?): nothing was injected"
                )),
                other => other.into(),
            }),
    };
    if let Some(sentinel) = sentinel.as_deref_mut() {
        match ret {
            Ok(fd) if fd >= 0 => sentinel.send(&format!("uffd {fd}")),
            // No descriptor was made; nor when the kernel refused to
            // suspend the filter (nothing was injected then: the option is
            // set before the registers are).
            Ok(_) | Err(PrecopyError::Seccomp(_)) => sentinel.send("uffd-closed"),
            // The syscall may or may not have run: it stays announced as
            // `uffd-injecting`, and rdlv-snap closes the pipe without
            // `done` on this error (see `stop_and_precopy`).
            Err(_) => {}
        }
    }
    let ret = ret?;
    if ret < 0 {
        return Err(PrecopyError::Userfaultfd(Errno::from_raw(
            i32::try_from(-ret).unwrap_or(libc::EINVAL),
        )));
    }
    let remote_fd = ret as u64;
    // SAFETY: plain syscall; the result is a new descriptor or -1.
    let local = unsafe {
        libc::syscall(
            SYS_PIDFD_GETFD,
            pidfd.as_raw_fd() as libc::c_long,
            remote_fd as libc::c_long,
            0 as libc::c_long,
        )
    };
    let local_errno = Errno::last();
    // SAFETY: on success the kernel just returned this descriptor to us.
    let local = (local >= 0).then(|| unsafe { OwnedFd::from_raw_fd(local as i32) });
    // A filter deciding on close()'s argument was asked about the predicted
    // descriptor; should another have come, ask again.
    if filtered && remote_fd != predicted_fd {
        let planned = [planned_call("close", SYS_CLOSE, remote_fd)];
        if let Err(cause) = crate::seccomp::check(host.tid(), host.ip(), &planned, false) {
            return Err(PrecopyError::TargetKeepsDescriptor {
                fd: remote_fd,
                cause,
            });
        }
    }
    // Close the target's copy whatever happened: it must not keep one.
    if let Some(sentinel) = sentinel.as_deref_mut() {
        sentinel.send(&format!(
            "uffd-closing {} {:x} {remote_fd}",
            host.tid(),
            host.syscall_addr()
        ));
    }
    match host.syscall(pid, SYS_CLOSE, [remote_fd, 0, 0, 0, 0]) {
        Ok(0) => {
            if let Some(sentinel) = sentinel {
                sentinel.send("uffd-closed");
            }
        }
        Ok(ret) => {
            return Err(PrecopyError::TargetKeepsDescriptor {
                fd: remote_fd,
                cause: Errno::from_raw(i32::try_from(-ret).unwrap_or(libc::EINVAL)).to_string(),
            })
        }
        Err(error) => {
            return Err(PrecopyError::TargetKeepsDescriptor {
                fd: remote_fd,
                cause: error.to_string(),
            })
        }
    }
    local.ok_or(PrecopyError::Pidfd {
        op: "pidfd_getfd",
        errno: local_errno,
    })
}

/// A userfaultfd descriptor an interrupted capture may have left in the
/// target, as the [`crate::sentinel`] knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Which descriptor.
    pub fd: LeftoverFd,
    /// The injected syscall that was about to run, if any: a killed
    /// rdlv-snap leaves its registers set, and the detached thread runs it.
    pub injecting: Option<PendingInjection>,
}

/// Which descriptor of the target is the leftover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverFd {
    /// `userfaultfd()` was being injected: any userfaultfd descriptor not
    /// among `existing` (the target's own, before) is ours.
    New {
        /// The target's userfaultfd descriptors before the injection.
        existing: Vec<u64>,
    },
    /// The injected `userfaultfd()` returned this descriptor.
    Known(u64),
}

/// An injected syscall announced to the sentinel before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingInjection {
    /// The host thread.
    pub tid: u32,
    /// The `syscall` instruction it runs on.
    pub syscall_addr: u64,
    /// The syscall number.
    pub nr: u64,
}

/// Freezes attempts made to find a host thread for the clean-up `close()`.
const LEFTOVER_ATTEMPTS: u32 = 50;

/// Closes, in the target, the userfaultfd descriptor an interrupted capture
/// left there (run by the sentinel once rdlv-snap is gone), through an
/// injected `close()` on a parked thread. Waits (up to `patience`) until
/// the kernel has detached the dead tracer and an announced injection has
/// run (checked on the host thread's registers while the target is
/// frozen). Returns the descriptors closed (empty when none was left, e.g.
/// rdlv-snap died before the injected syscall was set up or after the
/// target's `close()`). Only userfaultfd descriptors are closed, and in the
/// [`LeftoverFd::New`] case only those that did not exist before; the list
/// is taken while the target is frozen.
pub fn close_leftover_userfaultfd(
    pid: u32,
    leftover: &Leftover,
    patience: Duration,
) -> Result<Vec<u64>, PrecopyError> {
    let deadline = std::time::Instant::now() + patience;
    let never = AtomicI32::new(0);
    let filtered = crate::proc::seccomp_mode(pid) == 2;
    let ours = || -> Vec<u64> {
        let now = crate::proc::userfaultfd_fds(pid);
        match &leftover.fd {
            LeftoverFd::Known(fd) => now.into_iter().filter(|n| n == fd).collect(),
            LeftoverFd::New { existing } => {
                now.into_iter().filter(|n| !existing.contains(n)).collect()
            }
        }
    };
    let mut attempt = 0u32;
    loop {
        if crate::proc::gone_or_exiting(pid) {
            return Ok(Vec::new());
        }
        let traced = crate::proc::read_status(pid).map_or(0, |status| status.tracer_pid);
        if traced == 0 {
            attempt += 1;
            match Frozen::freeze(pid, Duration::from_secs(1), &never, &[]) {
                Ok(frozen) => {
                    let pending = leftover.injecting.is_some_and(|p| {
                        crate::inject::injection_pending(p.tid, p.syscall_addr, p.nr)
                    });
                    let closed = if pending {
                        // Let the thread run it first.
                        Err(PrecopyError::NoHostThread)
                    } else {
                        close_while_frozen(pid, &frozen, &ours(), filtered)
                    };
                    frozen.resume();
                    match closed {
                        Ok(closed) => return Ok(closed),
                        Err(PrecopyError::NoHostThread) if attempt < LEFTOVER_ATTEMPTS => {}
                        Err(error) => return Err(error),
                    }
                }
                // Another tracer (or the dying one, still detaching).
                Err(_) if attempt < LEFTOVER_ATTEMPTS => {}
                Err(error) => return Err(error.into()),
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(PrecopyError::NoHostThread);
        }
        std::thread::sleep(Duration::from_millis(2 + u64::from(attempt.min(20))));
    }
}

/// The injected `close()` of each of `fds` on one parked host thread.
fn close_while_frozen(
    pid: u32,
    frozen: &Frozen,
    fds: &[u64],
    filtered: bool,
) -> Result<Vec<u64>, PrecopyError> {
    if fds.is_empty() {
        return Ok(Vec::new());
    }
    let host = match ParkedHost::find(pid, frozen.threads()) {
        Ok(host) => host,
        Err(InjectError::NoHostThread) => return Err(PrecopyError::NoHostThread),
        Err(error) => return Err(error.into()),
    };
    if filtered {
        let planned: Vec<_> = fds
            .iter()
            .map(|&fd| planned_call("close", SYS_CLOSE, fd))
            .collect();
        crate::seccomp::check(host.tid(), host.ip(), &planned, false)
            .map_err(PrecopyError::Seccomp)?;
    }
    let mut closed = Vec::new();
    for &fd in fds {
        match host.syscall(pid, SYS_CLOSE, [fd, 0, 0, 0, 0])? {
            0 => closed.push(fd),
            ret => {
                return Err(PrecopyError::TargetKeepsDescriptor {
                    fd,
                    cause: Errno::from_raw(i32::try_from(-ret).unwrap_or(libc::EINVAL)).to_string(),
                })
            }
        }
    }
    Ok(closed)
}

/// A one-argument syscall as the seccomp check sees it. Only the
/// pre-copy's `userfaultfd()` is suspendable: its `close()` may have to be
/// made again by the sentinel, which never suspends filters.
fn planned_call(name: &'static str, nr: u64, arg: u64) -> crate::seccomp::Planned {
    crate::seccomp::Planned {
        name,
        nr,
        args: [arg, 0, 0, 0, 0, 0],
        suspendable: nr == SYS_USERFAULTFD,
    }
}

/// Offsets of `ranges` laid out back to back in a buffer.
pub struct Layout {
    starts: Vec<(PageRange, usize)>,
}

impl Layout {
    /// The back-to-back layout of `ranges` (sorted, non-overlapping).
    pub fn of(ranges: &[PageRange]) -> Layout {
        let mut offset = 0usize;
        let starts = ranges
            .iter()
            .map(|range| {
                let entry = (*range, offset);
                offset += range.len as usize;
                entry
            })
            .collect();
        Layout { starts }
    }

    /// Buffer offset of `range`, which must lie inside one laid-out range.
    /// Every range the pre-copy derives does (the laid-out ranges are
    /// maximal); an error here is a bug, reported rather than a page lost.
    pub fn locate(&self, range: PageRange) -> Result<usize, CaptureError> {
        self.offset_of(range.addr, range.len)
            .ok_or_else(|| CaptureError::Parse {
                what: "pre-copy layout".into(),
                detail: format!(
                    "{:#x}..{:#x} is not inside one pre-copied range",
                    range.addr,
                    range.addr + range.len
                ),
            })
    }

    /// Buffer offset of `[addr, addr + len)` if it lies inside one range.
    pub fn offset_of(&self, addr: u64, len: u64) -> Option<usize> {
        let index = self.starts.partition_point(|(r, _)| r.addr + r.len <= addr);
        let (range, offset) = self.starts.get(index)?;
        let end = addr.checked_add(len)?;
        if addr >= range.addr && end <= range.addr + range.len {
            Some(offset + (addr - range.addr) as usize)
        } else {
            None
        }
    }
}

/// Creates a userfaultfd of this very process (for tests).
#[cfg(test)]
fn own_userfaultfd() -> Option<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::syscall(
            SYS_USERFAULTFD as libc::c_long,
            (UFFD_USER_MODE_ONLY | O_CLOEXEC) as libc::c_long,
        )
    };
    // SAFETY: the kernel just returned this descriptor to us.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::PAGE_SIZE;

    /// A busy loop on one P (run with GOMAXPROCS=1): three threads, of which
    /// exactly one is parked in the futex stub.
    const SPINNER: &str = r#"package main

import (
	"fmt"
	"os"
)

var sink uint64

func main() {
	fmt.Println("READY", os.Getpid())
	for {
		sink++
	}
}
"#;

    fn userfaultfd_descriptors(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten()
                    .filter(|fd| {
                        std::fs::read_link(fd.path())
                            .is_ok_and(|l| l.to_string_lossy().contains("userfaultfd"))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    fn untimed_waiters(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|t| {
                        std::fs::read_to_string(t.path().join("syscall"))
                            .is_ok_and(|l| is_untimed_futex_wait(&l))
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    #[test]
    fn attach_leaves_the_target_no_descriptor_even_with_one_parked_thread() {
        let exe = crate::testutil::go_program("precopy_spinner", SPINNER);
        // The runtime parks one or two idle threads depending on how its
        // start-up went (an extra M that served a blocking call stays
        // parked): start the spinner again until it has exactly one, the
        // case under test.
        let mut started = None;
        for _ in 0..20 {
            let mut child = crate::testutil::KillOnDrop(
                std::process::Command::new(&exe)
                    .env("GOMAXPROCS", "1")
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
            crate::testutil::wait_ready(&mut child.0);
            let pid = child.0.id();
            let settle = std::time::Instant::now() + Duration::from_millis(500);
            let mut waiters = untimed_waiters(pid);
            while waiters != 1 && std::time::Instant::now() < settle {
                std::thread::sleep(Duration::from_millis(20));
                waiters = untimed_waiters(pid);
            }
            if waiters == 1 {
                started = Some((child, pid, waiters));
                break;
            }
        }
        let (child, pid, waiters) =
            started.expect("the spinner never had exactly one parked thread in 20 starts");
        let abort = AtomicI32::new(0);
        let mut attached = 0;
        for round in 0..5 {
            let (tracker, pause_us) =
                WriteTracker::attach(pid, Duration::from_secs(5), &abort, &[], None);
            match tracker {
                Ok(tracker) => {
                    attached += 1;
                    drop(tracker);
                }
                Err(error) => assert!(error.falls_back(), "round {round}: {error}"),
            }
            assert!(pause_us > 0, "round {round}: no stop counted");
            assert_eq!(
                userfaultfd_descriptors(pid),
                0,
                "round {round}: the target kept a userfaultfd ({waiters} parked threads)"
            );
        }
        drop(child);
        eprintln!("{attached} of 5 attaches with {waiters} untimed futex waiter(s)");
        assert!(attached >= 3, "only {attached} of 5 attaches succeeded");
    }

    #[test]
    fn recognises_untimed_futex_waits() {
        assert!(is_untimed_futex_wait(
            "202 0xc000051148 0x80 0x0 0x0 0x0 0x0 0x7ffd5e2c1d28 0x47a1e3\n"
        ));
        // FUTEX_WAKE, a timed wait, another syscall, not in a syscall.
        assert!(!is_untimed_futex_wait(
            "202 0xc000051148 0x81 0x1 0x0 0x0 0x0 0x7ffd 0x47a1e3"
        ));
        assert!(!is_untimed_futex_wait(
            "202 0xc000051148 0x80 0x0 0x7ffd5e2c1c80 0x0 0x0 0x7ffd 0x4"
        ));
        assert!(!is_untimed_futex_wait(
            "35 0x7ffd 0x0 0x0 0x0 0x0 0x0 0x7ffd 0x4"
        ));
        assert!(!is_untimed_futex_wait("running"));
        assert!(!is_untimed_futex_wait("-1 0x7ffd5e2c1d28 0x47a1e3"));
        // The current process's main thread waits in no futex.
        assert!(!is_untimed_futex_wait(
            &std::fs::read_to_string("/proc/thread-self/syscall").unwrap()
        ));
    }

    #[test]
    fn layout_finds_offsets_inside_one_range() {
        let ranges = [
            PageRange {
                addr: 0x1000,
                len: 0x2000,
            },
            PageRange {
                addr: 0x10000,
                len: 0x1000,
            },
        ];
        let layout = Layout::of(&ranges);
        assert_eq!(layout.offset_of(0x1000, 0x1000), Some(0));
        assert_eq!(layout.offset_of(0x2000, 0x1000), Some(0x1000));
        assert_eq!(layout.offset_of(0x10000, 0x1000), Some(0x2000));
        assert_eq!(layout.offset_of(0x2000, 0x2000), None);
        assert_eq!(layout.offset_of(0x4000, 0x1000), None);
        assert_eq!(layout.offset_of(0x11000, 0x1000), None);
    }

    #[test]
    fn tracks_exactly_the_pages_written_after_protection() {
        let Some(uffd) = own_userfaultfd() else {
            panic!("userfaultfd() unavailable: {}", Errno::last());
        };
        let mut tracker = match WriteTracker::new(uffd) {
            Ok(tracker) => tracker,
            Err(error) => panic!("{error}"),
        };
        let pages = 64usize;
        let len = pages * PAGE_SIZE as usize;
        let base = crate::testutil::map_anonymous(len);
        let start = base as u64;
        let page = |i: usize| (start + (i as u64) * PAGE_SIZE) as *mut u64;
        // Pages 0..48 exist before protection; 48.. do not.
        for i in 0..48 {
            // SAFETY: inside the mapping.
            unsafe { page(i).write_volatile(i as u64 + 1) };
        }
        let mut scanner = PresenceScanner::open(std::process::id()).unwrap();
        assert!(tracker
            .protect(start, start + len as u64, &mut scanner)
            .unwrap());
        // Written after protection: 3, 10, 11, 40 (by the kernel); read
        // only: 20; new: 50.
        for i in [3usize, 10, 11] {
            // SAFETY: inside the mapping.
            unsafe { page(i).write_volatile(99) };
        }
        // SAFETY: inside the mapping.
        let _ = unsafe { page(20).read_volatile() };
        // SAFETY: inside the mapping.
        unsafe { page(50).write_volatile(7) };
        // Written by the kernel (copy_to_user in read()), not by this thread.
        let mut pipe = [0i32; 2];
        // SAFETY: plain syscalls on descriptors we own; the read lands in page 40.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            assert_eq!(libc::write(pipe[1], b"12345678".as_ptr().cast(), 8), 8);
            assert_eq!(libc::read(pipe[0], page(40).cast(), 8), 8);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        // Dropped and faulted back by a read: the zero page, not "unwritten".
        // SAFETY: inside the mapping.
        unsafe {
            libc::madvise(page(30).cast(), PAGE_SIZE as usize, libc::MADV_DONTNEED);
            let _ = page(30).read_volatile();
        }
        let (mut existing, mut unwritten) = (Vec::new(), Vec::new());
        scanner
            .existing_and_unwritten_pages(start, start + len as u64, &mut existing, &mut unwritten)
            .unwrap();
        let unwritten = tracker.tracked_only(&unwritten);
        let existing_pages: u64 = existing.iter().map(|r| r.len / PAGE_SIZE).sum();
        // 0..48 minus the zero page at 30, plus 50.
        assert_eq!(existing_pages, 48);
        let expected_pages: Vec<usize> = (0..48)
            .filter(|i| ![3, 10, 11, 30, 40].contains(i))
            .collect();
        let got: Vec<usize> = unwritten
            .iter()
            .flat_map(|r| {
                let first = ((r.addr - start) / PAGE_SIZE) as usize;
                first..first + (r.len / PAGE_SIZE) as usize
            })
            .collect();
        assert_eq!(got, expected_pages);
        drop(tracker);
        // Unregistered: writing works and nothing is tracked any more.
        // SAFETY: inside the mapping.
        unsafe { page(5).write_volatile(5) };
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(base, len) };
    }
}
