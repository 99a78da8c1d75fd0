//! Reaping the forked child, and the sentinel that reaps it should
//! rdlv-snap die first.
//!
//! Only the real parent can reap a zombie, so the target itself is made to
//! `wait4` for it (an injected syscall, [`crate::inject`]). Invariant: from
//! the fork until that `wait4` has run, a [`Sentinel`] process knows which
//! child to reap and which thread's priority to restore; it acts only when
//! its pipe closes without `done` (rdlv-snap died).

use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use super::CowError;
use crate::freeze::{check_budget, Frozen};
use crate::inject::{InjectError, ParkedHost, ARMED_EXIT_CODE, SYS_WAIT4};
use crate::nice::set_nice;
use crate::proc;

/// `__WALL` for wait4's options argument.
const WAIT_ALL: u64 = 0x4000_0000;
/// `WNOHANG`.
const WAIT_NOHANG: u64 = 1;
/// `wait4(child, NULL, __WALL | WNOHANG, NULL)`, as injected.
pub(super) fn wait4_args(child: u64) -> [u64; 6] {
    [child, 0, WAIT_ALL | WAIT_NOHANG, 0, 0, 0]
}

/// Attempts to find a parked host thread when reaping (threads park and
/// wake continuously in a busy Go process).
const REAP_ATTEMPTS: u32 = 20;

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
/// parked in the futex stub. The child must already be dead ([`super::ForkedImage::kill`]).
pub fn reap(
    pid: u32,
    child: u32,
    max_pause: Duration,
    abort: &AtomicI32,
) -> Result<ReapReport, CowError> {
    let mut pause_us = 0u64;
    let filtered = proc::seccomp_mode(pid) == 2;
    for attempt in 0..REAP_ATTEMPTS {
        if !is_zombie_child_of(child, pid) {
            return Ok(ReapReport {
                pause_us,
                reaped: true,
            });
        }
        check_budget(abort, None, "reaping the forked child")?;
        let frozen = Frozen::freeze(pid, max_pause, abort, &[])?;
        let result = ParkedHost::find(pid, frozen.threads())
            .map_err(CowError::from)
            .and_then(|host| {
                let args = wait4_args(u64::from(child));
                if filtered {
                    let planned = [crate::seccomp::Planned {
                        name: "wait4",
                        nr: SYS_WAIT4,
                        args,
                    }];
                    crate::seccomp::check(host.tid(), host.ip(), &planned)
                        .map_err(CowError::Seccomp)?;
                }
                let [a0, a1, a2, a3, a4, _] = args;
                Ok(host.syscall(pid, SYS_WAIT4, [a0, a1, a2, a3, a4])?)
            });
        let report = frozen.resume();
        pause_us += report.pause_us();
        match result {
            Ok(ret) if ret == i64::from(child) => {
                return Ok(ReapReport {
                    pause_us,
                    reaped: !is_zombie_child_of(child, pid),
                })
            }
            Ok(_) | Err(CowError::Inject(InjectError::NoHostThread)) => {
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
    pub(super) fn send(&mut self, line: &str) {
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

/// The last pid allocated in our pid namespace (0 if unknown).
pub(super) fn last_pid() -> u32 {
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
    for child in proc::all_pids() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
