//! Reaping the forked child.
//!
//! Only the real parent can reap a zombie, so the target itself is made to
//! `wait4` for it (an injected syscall, [`crate::inject`]). Invariant: from
//! the fork until that `wait4` has run, the [`crate::sentinel::Sentinel`]
//! knows which child to reap and which thread's priority to restore; it
//! acts only when its pipe closes without `done` (rdlv-snap died).

use std::sync::atomic::AtomicI32;
use std::time::Duration;

use super::CowError;
use crate::freeze::{check_budget, Frozen};
use crate::inject::{InjectError, ParkedHost, ARMED_EXIT_CODE, SYS_WAIT4};
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
                        suspendable: false,
                    }];
                    crate::seccomp::check(host.tid(), host.ip(), &planned, false)
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

/// The last pid allocated in our pid namespace (0 if unknown).
pub(crate) fn last_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Finds the child an injected fork left running when rdlv-snap died mid
/// fork: it returned from the "futex" into Go's wait loop and sleeps again
/// on the same futex word, alone in its process. A child the program
/// forked itself (os/exec) never waits on a runtime futex.
pub fn find_unknown_orphan(target: u32, uaddr: u64, last_pid: u32) -> Option<u32> {
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
