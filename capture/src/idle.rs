//! `rdlv-snap idle`: keep a debug container alive so captures can be run in
//! it with `kubectl exec` / `docker exec`.
//!
//! Why: the rdlv-snap image (capture/Dockerfile) holds nothing but the static
//! binary, no shell and no `sleep`. An ephemeral container started by
//! `kubectl debug --image=rdlv-snap ...` runs the image's command and is gone
//! for good once that command exits (ephemeral containers cannot be
//! restarted), so its command must wait: this one. Captures are then
//! separate processes started in the same container, `kubectl exec POD -c
//! DEBUGGER -- rdlv-snap 1 -o - > x.snap`, whose stdout streams the snapshot
//! out of the pod without touching its disk.
//!
//! Invariants: idle touches no other process (no ptrace, no /proc reads);
//! it ends with exit code 0 on SIGINT, SIGTERM or SIGHUP, also when it is
//! PID 1 of its container (where the kernel ignores signals that have no
//! handler), so `docker stop` and pod deletion end it at once.

use nix::sys::signal::{SigSet, Signal};

/// The word that selects the idle mode (`rdlv-snap idle`); a PID is a number,
/// so it never collides with a capture's first argument.
pub const IDLE_ARG: &str = "idle";

/// Prints what to do next on stderr and waits for SIGINT, SIGTERM or SIGHUP.
/// Returns the process exit code.
pub fn run() -> i32 {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    // Blocked signals stay pending until sigwait takes them, whatever their
    // disposition: this works for PID 1 too.
    if let Err(e) = set.thread_block() {
        eprintln!("rdlv-snap idle: cannot block signals: {e}");
        return 1;
    }
    eprintln!(
        "rdlv-snap idle: waiting (SIGTERM, SIGINT or SIGHUP ends it). Capture from another terminal, e.g.\n  \
         kubectl exec POD -c THIS_CONTAINER -- rdlv-snap 1 -o - > x.snap\n  \
         docker exec THIS_CONTAINER rdlv-snap 1 -o - > x.snap"
    );
    match set.wait() {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("rdlv-snap idle: sigwait failed: {e}");
            1
        }
    }
}
