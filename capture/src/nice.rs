//! Scheduling priority raised for the moments a target waits on us: our own
//! copy thread while the target is stopped, and the target thread that
//! copies page tables during an injected fork.
//!
//! Invariant: a [`Nice`] restores the thread's previous nice value when it
//! is dropped (or [`Nice::restore`]d); without CAP_SYS_NICE nothing is
//! raised and nothing needs restoring. For a thread of the target, the
//! previous value is also told to the `--cow` sentinel, which restores it
//! should rdlv-snap die in between.

use nix::errno::Errno;

/// Nice value of rdlv-snap's own thread while the target is stopped.
pub const PAUSE_NICE: libc::c_int = -10;
/// Nice value of the target's host thread for the duration of a fork.
pub const FORK_NICE: libc::c_int = -20;
/// How far below the target's own priority compression runs: the target
/// serves requests again while rdlv-snap compresses, and must win the CPU.
pub const COMPRESS_NICE_BELOW: libc::c_int = 5;

/// A thread's raised scheduling priority, restored on drop.
#[derive(Debug)]
pub struct Nice {
    /// The thread (ours or the target's).
    pub tid: u32,
    /// Its nice value before.
    pub previous: libc::c_int,
}

impl Nice {
    /// Raises `tid` to `nice`; `None` if it cannot (no CAP_SYS_NICE) or it
    /// already runs at that priority or a higher one.
    pub fn raise(tid: u32, nice: libc::c_int) -> Option<Nice> {
        // getpriority may legitimately return -1, so errno tells failures apart.
        Errno::clear();
        // SAFETY: plain syscalls on a thread id.
        let previous = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        if Errno::last_raw() != 0 || previous <= nice {
            return None;
        }
        // SAFETY: as above.
        let raised = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        (raised == 0).then_some(Nice { tid, previous })
    }

    /// Raises the calling thread to [`PAUSE_NICE`] (threads it spawns
    /// meanwhile inherit it).
    pub fn boost_this_thread() -> Option<Nice> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        Nice::raise(tid, PAUSE_NICE)
    }

    /// Restores the previous value now.
    pub fn restore(self) {}
}

impl Drop for Nice {
    fn drop(&mut self) {
        set_nice(self.tid, self.previous);
    }
}

/// Lowers the calling thread to `COMPRESS_NICE_BELOW` below `target`'s
/// nice value, at most 19 (a target at nice 15 or more gets compression at
/// 19, no longer strictly below it), for the compression after the target resumed;
/// threads it spawns from then on (the compression pool) inherit it.
/// Lowering needs no privilege; it is not undone (rdlv-snap ends after
/// writing, and raising it again would need CAP_SYS_NICE). Returns the
/// value set, or `None` when this thread already ran that low or lower.
pub fn lower_for_compression(target: u32) -> Option<libc::c_int> {
    // getpriority may legitimately return -1, so errno tells failures apart.
    Errno::clear();
    // SAFETY: plain syscalls on a process id and on ourselves.
    let target_nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, target as libc::id_t) };
    let target_nice = if Errno::last_raw() != 0 {
        0
    } else {
        target_nice
    };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as u32;
    Errno::clear();
    // SAFETY: as above.
    let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    let want = (target_nice + COMPRESS_NICE_BELOW).min(19);
    if Errno::last_raw() != 0 || ours >= want {
        return None;
    }
    // SAFETY: plain syscall on ourselves.
    let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, want) };
    (set == 0).then_some(want)
}

/// Sets `tid`'s nice value (best effort).
pub fn set_nice(tid: u32, nice: libc::c_int) {
    // SAFETY: plain syscall on a thread id.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of(tid: u32) -> libc::c_int {
        // SAFETY: plain syscall.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
    }

    /// Compression runs below the target, and the pool threads started
    /// afterwards inherit the lower priority.
    #[test]
    fn compression_runs_below_the_target_and_its_threads_inherit_it() {
        std::thread::spawn(|| {
            // SAFETY: plain syscalls.
            let pid = unsafe { libc::getpid() } as u32;
            let target_nice = nice_of(pid);
            let set = lower_for_compression(pid).expect("lowered");
            assert_eq!(set, (target_nice + COMPRESS_NICE_BELOW).min(19));
            let child = std::thread::spawn(|| {
                // SAFETY: plain syscall.
                nice_of(unsafe { libc::gettid() } as u32)
            });
            assert_eq!(child.join().expect("child"), set);
            // Already that low: nothing to do.
            assert_eq!(lower_for_compression(pid), None);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn priority_boost_is_restored() {
        std::thread::spawn(|| {
            // SAFETY: plain syscall.
            let tid = unsafe { libc::gettid() } as u32;
            let before = nice_of(tid);
            let boost = Nice::boost_this_thread();
            let during = nice_of(tid);
            if boost.is_some() {
                assert_eq!(during, PAUSE_NICE);
            } else {
                assert_eq!(during, before);
            }
            drop(boost);
            assert_eq!(nice_of(tid), before);
            let raised = Nice::raise(tid, FORK_NICE);
            if let Some(raised) = raised {
                assert_eq!(nice_of(tid), FORK_NICE);
                raised.restore();
            }
            assert_eq!(nice_of(tid), before);
        })
        .join()
        .unwrap();
    }
}
