//! The sentinel: a small helper process that undoes what an injected
//! syscall left in the target should rdlv-snap die (SIGKILL, crash, OOM
//! kill) before undoing it itself.
//!
//! Two capture methods inject syscalls whose effect outlives the injection:
//!
//! * `--cow` makes the target fork; the child must be killed and then
//!   reaped by the target ([`crate::cow`], windows 2-4 of its docs).
//! * the pre-copy makes the target create a userfaultfd, takes a copy of
//!   the descriptor and makes the target close its own
//!   ([`crate::precopy`]). Between the injected `userfaultfd()` and the
//!   injected `close()` the target holds a descriptor it never asked for.
//!
//! rdlv-snap starts the sentinel (`rdlv-snap --sentinel PID`) before it
//! stops the target, and tells it through a pipe, line by line, what would
//! be left behind at each instant. When the pipe closes without `done`,
//! rdlv-snap is gone: the kernel has detached the target (so the sentinel
//! waits until no thread is traced), and the sentinel freezes the target
//! briefly to inject the clean-up itself.
//!
//! Invariant: from the line announcing an injection until the line saying
//! it was undone, the sentinel's state names what to clean up; the last
//! line about each thing wins. Nothing is cleaned up that rdlv-snap did not
//! announce, and a descriptor is closed only if it is a userfaultfd that did
//! not exist before the announcement.
//!
//! # Protocol
//!
//! | line | meaning |
//! |------|---------|
//! | `forking UADDR LASTPID` | a fork is injected (host futex word, last pid) |
//! | `nice TID N` | TID's nice value was N before a raise (valid until the next line) |
//! | `child PID` | the forked child is PID |
//! | `uffd-injecting TID ADDR FD,FD…` (or `-`) | `userfaultfd()` is injected on thread TID at `syscall` address ADDR (hex); these userfaultfd descriptors existed before |
//! | `uffd FD` | the target's new userfaultfd is FD |
//! | `uffd-closing TID ADDR FD` | `close(FD)` is injected on TID at ADDR |
//! | `uffd-closed` | the target's copy is closed (or none was made) |
//! | `done` | nothing is left to clean up |

use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use crate::cow::{find_unknown_orphan, reap};
use crate::inject::{SYS_CLOSE, SYS_USERFAULTFD};
use crate::nice::set_nice;
use crate::precopy::{close_leftover_userfaultfd, Leftover, LeftoverFd, PendingInjection};
use crate::proc;

/// Hidden first argument that turns `rdlv-snap` into a [`Sentinel`].
pub const SENTINEL_ARG: &str = "--sentinel";
/// How long a sentinel waits for the orphaned child to exit and be reaped,
/// or for the target to be detached and a thread to host the `close()`.
const SENTINEL_PATIENCE: Duration = Duration::from_secs(10);
/// Bytes of protocol read at most (a capture sends a few lines).
const SENTINEL_INPUT_MAX: u64 = 1 << 16;
/// How long a new capture waits for the sentinels of an earlier rdlv-snap
/// of the same target to finish: their whole patience, and a margin.
pub const EARLIER_SENTINEL_WAIT: Duration = Duration::from_secs(12);

/// Sentinels of earlier rdlv-snap runs still watching `target`: one whose
/// rdlv-snap was killed attaches to the target to clean up, so a capture
/// started meanwhile would find it traced. A sentinel runs as
/// `/proc/self/exe --sentinel TARGET` (so its `comm` is `exe`); `comm` is
/// read first, as reading another process's command line takes its mmap
/// lock and an unrelated stuck process would block on it.
pub fn sentinels_of(target: u32) -> Vec<u32> {
    let own = std::process::id();
    proc::all_pids()
        .into_iter()
        .filter(|&p| p != own && is_sentinel_of(p, target))
        .collect()
}

fn is_sentinel_of(pid: u32, target: u32) -> bool {
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm != b"exe\n" {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let mut args = c.split(|&b| b == 0).skip(1);
        args.next() == Some(SENTINEL_ARG.as_bytes())
            && args.next() == Some(target.to_string().as_bytes())
    })
}

/// Whether sentinel `pid` outlived its rdlv-snap (its parent is no longer
/// the program it runs: the kernel gave it to init or a subreaper). A
/// sentinel whose rdlv-snap still runs belongs to a capture in progress.
fn orphaned(pid: u32) -> bool {
    let Ok(status) = proc::read_status(pid) else {
        return false;
    };
    let exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    exe(status.ppid) != exe(pid)
}

/// Waits (at most [`EARLIER_SENTINEL_WAIT`], and not once `abort` holds a
/// signal) until no sentinel of a killed rdlv-snap watches `target`;
/// returns whether one was waited for. The processes are listed once: a
/// sentinel started later belongs to a capture that started later.
pub fn wait_for_earlier_sentinels(target: u32, abort: &AtomicI32) -> bool {
    let deadline = Instant::now() + EARLIER_SENTINEL_WAIT;
    let mut waiting: Vec<u32> = sentinels_of(target)
        .into_iter()
        .filter(|&p| orphaned(p))
        .collect();
    let waited = !waiting.is_empty();
    while !waiting.is_empty()
        && Instant::now() < deadline
        && abort.load(std::sync::atomic::Ordering::Relaxed) == 0
    {
        std::thread::sleep(Duration::from_millis(10));
        waiting.retain(|&p| is_sentinel_of(p, target));
    }
    waited
}

/// The handle rdlv-snap keeps on its sentinel process (see the module
/// docs). Dropping it closes the pipe without `done`: the sentinel cleans up
/// what was announced.
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

    /// Sends one line of the protocol; a pipe write this small is atomic.
    pub(crate) fn send(&mut self, line: &str) {
        use std::io::Write;
        if let Some(pipe) = self.pipe.as_mut() {
            let _ = pipe.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Nothing is left to clean up: the sentinel may exit. Waits for it, so
    /// that it leaves no zombie of its own.
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
        // Closing the pipe without `done`: the sentinel cleans up what was
        // announced (nothing if nothing was injected) and exits.
        self.pipe.take();
        let _ = self.process.wait();
    }
}

/// A forked child the sentinel must reap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Orphan {
    /// A fork was in flight: a child of the target with a pid above
    /// `last_pid`, single-threaded, parked in futex on `uaddr`, is ours.
    Unknown { uaddr: u64, last_pid: u32 },
    /// This child (armed with `exit_group`).
    Known(u32),
}

/// Everything the protocol leaves to clean up when the pipe closes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pending {
    orphan: Option<Orphan>,
    /// A thread whose priority to restore: (tid, previous nice).
    nice: Option<(u32, libc::c_int)>,
    uffd: Option<Leftover>,
}

/// Parses the sentinel's input (see the protocol in the module docs).
/// Malformed lines are ignored.
fn pending(input: &str) -> Pending {
    let mut state = Pending::default();
    for line in input.lines() {
        let mut words = line.split_whitespace();
        // `nice` is valid only until the next line.
        state.nice = None;
        match (words.next(), words.next(), words.next()) {
            (Some("done"), ..) => state = Pending::default(),
            (Some("nice"), Some(tid), Some(value)) => {
                state.nice = tid.parse().ok().zip(value.parse().ok());
            }
            (Some("child"), Some(pid), _) => {
                if let Ok(pid) = pid.parse() {
                    state.orphan = Some(Orphan::Known(pid));
                }
            }
            (Some("forking"), Some(uaddr), Some(last)) => {
                if let (Ok(uaddr), Ok(last_pid)) = (u64::from_str_radix(uaddr, 16), last.parse()) {
                    state.orphan = Some(Orphan::Unknown { uaddr, last_pid });
                }
            }
            (Some("uffd-injecting"), Some(tid), Some(addr)) => {
                let list = words.next().unwrap_or("");
                let existing: Option<Vec<u64>> = if list == "-" {
                    Some(Vec::new())
                } else {
                    list.split(',').map(|fd| fd.parse().ok()).collect()
                };
                state.uffd = existing.zip(injection(tid, addr, SYS_USERFAULTFD)).map(
                    |(existing, injecting)| Leftover {
                        fd: LeftoverFd::New { existing },
                        injecting: Some(injecting),
                    },
                );
            }
            (Some("uffd"), Some(fd), _) => {
                if let Ok(fd) = fd.parse() {
                    state.uffd = Some(Leftover {
                        fd: LeftoverFd::Known(fd),
                        injecting: None,
                    });
                }
            }
            (Some("uffd-closing"), Some(tid), Some(addr)) => {
                let fd = words.next().and_then(|fd| fd.parse().ok());
                if let (Some(fd), Some(injecting)) = (fd, injection(tid, addr, SYS_CLOSE)) {
                    state.uffd = Some(Leftover {
                        fd: LeftoverFd::Known(fd),
                        injecting: Some(injecting),
                    });
                }
            }
            (Some("uffd-closed"), ..) => state.uffd = None,
            _ => {}
        }
    }
    state
}

/// A pending injection from its protocol words (decimal tid, hex address).
fn injection(tid: &str, addr: &str, nr: u64) -> Option<PendingInjection> {
    Some(PendingInjection {
        tid: tid.parse().ok()?,
        syscall_addr: u64::from_str_radix(addr, 16).ok()?,
        nr,
    })
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
    let _ = std::io::stdin()
        .take(SENTINEL_INPUT_MAX)
        .read_to_string(&mut input);
    let pending = pending(&input);
    if let Some((tid, nice)) = pending.nice {
        if proc::thread_exists(target, tid) {
            set_nice(tid, nice);
        }
    }
    let mut code = 0;
    if let Some(leftover) = pending.uffd {
        match close_leftover_userfaultfd(target, &leftover, SENTINEL_PATIENCE) {
            Ok(closed) if !closed.is_empty() => eprintln!(
                "rdlv-snap: closed the userfaultfd descriptor {closed:?} an interrupted capture left in process {target}"
            ),
            Ok(_) => {}
            Err(error) => {
                eprintln!(
                    "rdlv-snap: could not close the userfaultfd descriptor an interrupted capture left in process {target}: {error}"
                );
                code = 1;
            }
        }
    }
    if let Some(orphan) = pending.orphan {
        if !reap_orphan(target, orphan) {
            code = 1;
        }
    }
    code
}

/// Kills (if still running) and reaps the forked child; false if it could
/// not be reaped.
fn reap_orphan(target: u32, orphan: Orphan) -> bool {
    let child = match orphan {
        Orphan::Known(child) => child,
        Orphan::Unknown { uaddr, last_pid } => {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                if let Some(child) = find_unknown_orphan(target, uaddr, last_pid) {
                    // SAFETY: kill(2) on the orphan identified above.
                    unsafe { libc::kill(child as libc::pid_t, libc::SIGKILL) };
                    break child;
                }
                if Instant::now() > deadline {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let never = AtomicI32::new(0);
    let deadline = Instant::now() + SENTINEL_PATIENCE;
    while Instant::now() < deadline {
        let Ok(status) = proc::read_status(child) else {
            return true;
        };
        if status.ppid != target {
            return true;
        }
        // Still traced by the dying rdlv-snap, or not yet exited: wait.
        if status.state == 'Z' && status.tracer_pid == 0 {
            if let Ok(report) = reap(target, child, Duration::from_secs(1), &never) {
                if report.reaped {
                    eprintln!(
                        "rdlv-snap: reaped the forked child {child} of process {target} left behind by an interrupted --cow capture"
                    );
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("rdlv-snap: could not reap the forked child {child} of process {target}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(input: &str) -> Option<Orphan> {
        pending(input).orphan
    }

    #[test]
    fn sentinel_reaps_only_an_unfinished_child() {
        assert_eq!(orphan(""), None);
        assert_eq!(
            orphan("forking c000012345 977\n"),
            Some(Orphan::Unknown {
                uaddr: 0xc000012345,
                last_pid: 977
            })
        );
        assert_eq!(
            orphan("forking c000012345 977\nchild 42\n"),
            Some(Orphan::Known(42))
        );
        assert_eq!(orphan("forking 10 1\nchild 42\ndone\n"), None);
        assert_eq!(orphan("forking 10 1\ndone\n"), None);
        assert_eq!(orphan("child x\n"), None);
        let forking = "forking 10 1\nnice 77 0\n";
        assert_eq!(
            orphan(forking),
            Some(Orphan::Unknown {
                uaddr: 0x10,
                last_pid: 1
            })
        );
        assert_eq!(pending(forking).nice, Some((77, 0)));
        assert_eq!(pending("forking 10 1\nnice 77 5\nchild 9\n").nice, None);
    }

    #[test]
    fn sentinel_closes_only_an_announced_userfaultfd_not_yet_closed() {
        let injecting = |nr| {
            Some(PendingInjection {
                tid: 12,
                syscall_addr: 0x4700ab,
                nr,
            })
        };
        assert_eq!(pending("").uffd, None);
        assert_eq!(
            pending("uffd-injecting 12 4700ab -\n").uffd,
            Some(Leftover {
                fd: LeftoverFd::New {
                    existing: Vec::new()
                },
                injecting: injecting(SYS_USERFAULTFD),
            })
        );
        assert_eq!(
            pending("uffd-injecting 12 4700ab 4,9\n").uffd,
            Some(Leftover {
                fd: LeftoverFd::New {
                    existing: vec![4, 9]
                },
                injecting: injecting(SYS_USERFAULTFD),
            })
        );
        let known = "uffd-injecting 12 4700ab -\nuffd 7\n";
        assert_eq!(
            pending(known).uffd,
            Some(Leftover {
                fd: LeftoverFd::Known(7),
                injecting: None,
            })
        );
        assert_eq!(
            pending(&format!("{known}uffd-closing 12 4700ab 7\n")).uffd,
            Some(Leftover {
                fd: LeftoverFd::Known(7),
                injecting: injecting(SYS_CLOSE),
            })
        );
        assert_eq!(
            pending(&format!("{known}uffd-closing 12 4700ab 7\nuffd-closed\n")).uffd,
            None
        );
        assert_eq!(pending(&format!("{known}done\n")).uffd, None);
        // Malformed lines announce nothing (never a guess at what to close).
        assert_eq!(pending("uffd-injecting 12 4700ab 4,x\n").uffd, None);
        assert_eq!(pending("uffd-injecting 12 zz -\n").uffd, None);
        assert_eq!(pending("uffd-injecting 12\n").uffd, None);
        // A second attempt replaces the first.
        assert_eq!(
            pending(&format!("{known}uffd-closed\nuffd-injecting 12 4700ab 3\n")).uffd,
            Some(Leftover {
                fd: LeftoverFd::New { existing: vec![3] },
                injecting: injecting(SYS_USERFAULTFD),
            })
        );
    }
}
