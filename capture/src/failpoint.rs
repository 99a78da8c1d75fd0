//! Named instants at which rdlv-snap can be made to die (SIGKILL of
//! itself), for tests that must show what a kill at exactly that instant
//! leaves behind; random kills reach a window of a few microseconds too
//! rarely to test it.
//!
//! Set `RDLV_SNAP_FAILPOINT=NAME` in rdlv-snap's environment. Names in use:
//! `before-SYSCALL` (an injected syscall's registers are set, the host
//! thread not yet resumed: the kernel detaches it and it runs the syscall
//! untraced) and `after-SYSCALL` (it ran, the registers are restored), for
//! SYSCALL one of `userfaultfd`, `close`, `clone`, `wait4`; and
//! `target-killed-before-SYSCALL`, where the target (not rdlv-snap) is
//! killed just before the injection's first ptrace request, and that
//! request meets a host thread SIGKILL took out of its stop. Unset, each
//! check is one load of a cached value.

use std::sync::OnceLock;

use crate::inject::{SYS_CLONE, SYS_CLOSE, SYS_USERFAULTFD, SYS_WAIT4};

/// The environment variable naming the failpoint to die at.
pub const FAILPOINT_ENV: &str = "RDLV_SNAP_FAILPOINT";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(FAILPOINT_ENV).ok().filter(|v| !v.is_empty()))
        .as_deref()
}

/// Dies by SIGKILL here if `name` is the armed failpoint.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        // SAFETY: kill(2) on ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// The name failpoints give injected syscall `nr`, if it has one.
fn syscall_name(nr: u64) -> Option<&'static str> {
    match nr {
        SYS_USERFAULTFD => Some("userfaultfd"),
        SYS_CLOSE => Some("close"),
        SYS_CLONE => Some("clone"),
        SYS_WAIT4 => Some("wait4"),
        _ => None,
    }
}

/// The failpoint name of an injected syscall, `before-…` or `after-…`.
pub fn hit_injected(when: &str, nr: u64) {
    if armed().is_none() {
        return;
    }
    if let Some(name) = syscall_name(nr) {
        hit(&format!("{when}-{name}"));
    }
}

/// With `target-killed-before-SYSCALL` armed: kills process `pid`
/// (SIGKILL) and waits, at most a second, until its host thread `tid` has
/// left the ptrace stop we hold it in (a request on it fails with ESRCH),
/// so that the injection's next request meets a thread being killed.
pub fn kill_target_before_injection(nr: u64, pid: u32, tid: u32) {
    let Some(armed) = armed() else {
        return;
    };
    if syscall_name(nr).is_none() || armed.strip_prefix("target-killed-before-") != syscall_name(nr)
    {
        return;
    }
    // SAFETY: kill(2) of the target, which this failpoint exists to do.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        // PEEKUSER of offset 0: any request on a thread out of its stop fails.
        if crate::freeze::ptrace(libc::PTRACE_PEEKUSER, tid, 0, 0) == Err(nix::errno::Errno::ESRCH)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}
