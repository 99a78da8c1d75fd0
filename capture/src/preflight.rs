//! Pre-flight: everything that can fail without touching the target
//! (permissions, the output file, the executable, RAM, the pause budget,
//! buffer allocation) is checked and prepared before the first thread is
//! stopped, so that a refused capture never stops the target at all.

use std::fs::File;
use std::sync::atomic::AtomicI32;
use std::time::Duration;

use crate::capture::{Options, Requested};
use crate::copy;
use crate::error::{CaptureError, Result};
use crate::exeinfo;
use crate::freeze;
use crate::output::Output;
use crate::pages::{self, ExeIdentity, MappingPlan, PresenceScanner};
use crate::precopy;
use crate::proc;

/// Extra room in the pre-faulted buffer for growth between pre-flight and stop.
pub const BUFFER_SLACK_MIN: u64 = 16 << 20;
/// Copy throughput no machine beats (bytes/s): used only to refuse captures
/// that could not possibly finish within `--max-pause`.
const FASTEST_COPY_BYTES_PER_SEC: f64 = 20e9;

pub fn map_proc_err(pid: u32, what: &str, err: CaptureError) -> CaptureError {
    match &err {
        CaptureError::Proc { source, .. } => match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => freeze::permission_error(pid, what),
            // A process that is exiting has no mm (ESRCH) and, as a zombie, no exe link.
            Some(libc::ESRCH) => CaptureError::Exited { pid },
            Some(libc::ENOENT) if !proc::process_exists(pid) || process_is_zombie(pid) => {
                CaptureError::Exited { pid }
            }
            _ => err,
        },
        _ => err,
    }
}

/// Whether the process is dead or dying (see [`proc::gone_or_exiting`]).
fn process_is_zombie(pid: u32) -> bool {
    proc::gone_or_exiting(pid)
}

/// Everything learned before stopping the target.
pub struct Preflight {
    /// `/proc/PID/status` before the stop.
    pub status: proc::Status,
    /// The output, opened (a hidden file until the snapshot is complete).
    pub output: Output,
    /// With `--redact`: the named output, which receives the redacted
    /// snapshot (`output` is then the in-memory full one).
    pub redacted_output: Option<Output>,
    /// The output's name for messages (`-` for stdout).
    pub file_name: String,
    /// `/proc/PID/mem`, opened (the copy's fallback).
    pub mem: File,
    /// The mappings with their VmFlags, read before the stop.
    pub smaps: Vec<proc::MapsEntry>,
    /// `/proc/PID/exe`'s target (may end in ` (deleted)`).
    pub exe_path: String,
    /// The executable's bytes (embedded, and the source of untouched pages).
    pub exe_bytes: Vec<u8>,
    /// Build ids and Go version read from the executable.
    pub exe_info: exeinfo::ExeInfo,
    /// Which mappings belong to the executable.
    pub exe_identity: ExeIdentity,
    /// The target's command line.
    pub cmdline: Vec<String>,
    /// The target's page presence scanner.
    pub scanner: PresenceScanner,
    /// The pre-faulted copy buffer.
    pub buffer: Vec<u8>,
    /// `--precopy`: the pages copied while the target ran (empty otherwise).
    pub precopy: Vec<u8>,
    /// Bytes the pre-flight plan would copy.
    pub estimate: u64,
    /// Thread states and names read before the stop.
    pub hints: Vec<freeze::ThreadHint>,
}

/// Checks and prepares everything that does not need the target stopped.
pub fn preflight(options: &Options, abort: &AtomicI32) -> Result<Preflight> {
    let pid = options.pid;
    if !proc::process_exists(pid) {
        return Err(CaptureError::NoSuchProcess { pid });
    }
    if pid == std::process::id() {
        return Err(CaptureError::Usage(
            "rdlv-snap cannot capture itself".into(),
        ));
    }
    // A killed rdlv-snap's sentinel may be about to trace the target (to
    // undo an injection): let it finish rather than fail as "traced" or
    // race it for the target.
    crate::sentinel::wait_for_earlier_sentinels(pid, abort);
    let status =
        proc::read_status(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/status", e))?;
    if status.tgid != pid {
        return Err(CaptureError::Usage(format!(
            "{pid} is a thread of process {}; pass the process id {}",
            status.tgid, status.tgid
        )));
    }
    // A zombie leader with live threads (it called pthread_exit) is still capturable.
    if status.state == 'Z' && status.threads <= 1 {
        return Err(CaptureError::Exited { pid });
    }
    if proc::non_dumpable(pid, &status) && !options.force {
        return Err(CaptureError::NotDumpable { pid });
    }
    if status.tracer_pid != 0 {
        return Err(freeze::permission_error(pid, "already traced"));
    }
    let final_output = Output::open(&options.output, options.force, options.encryption.clone())?;
    let file_name = final_output.name();
    // With --redact the snapshot is written to memory and the named output
    // receives what `rdlv redact` makes of it.
    let (output, redacted_output) = match options.redact {
        Some(_) => (Output::memory()?, Some(final_output)),
        None => (final_output, None),
    };
    // /proc/PID/mem needs the same permission as ptrace: failing here means
    // we never stop the target just to be refused.
    let mem_path = proc::proc_dir(pid).join("mem");
    let mem = File::open(&mem_path).map_err(|source| {
        map_proc_err(
            pid,
            "open /proc/PID/mem",
            CaptureError::Proc {
                path: mem_path.clone(),
                source,
            },
        )
    })?;
    let smaps = proc::read_smaps(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/smaps", e))?;
    let exe_path = proc::exe_link(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/exe", e))?;
    let exe_bytes = proc::read_exe(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/exe", e))?;
    let exe_info = exeinfo::inspect(&exe_bytes);
    let exe_identity =
        ExeIdentity::of(pid).map_err(|e| map_proc_err(pid, "stat /proc/PID/exe", e))?;
    let cmdline =
        proc::read_cmdline(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/cmdline", e))?;
    let mut scanner = PresenceScanner::open(pid)?;
    let plans = pages::plan(&smaps, &exe_identity, &mut scanner)
        .map_err(|e| map_proc_err(pid, "scan /proc/PID/pagemap", e))?;
    let estimate: u64 = plans.iter().map(MappingPlan::bytes).sum();
    // With the pre-copy only untracked mappings are copied in the stop (plus
    // what is written meanwhile, which nothing can predict).
    let stop_estimate: u64 = if options.method == Requested::Precopy {
        plans
            .iter()
            .filter(|plan| !precopy::trackable(&plan.entry))
            .map(MappingPlan::bytes)
            .sum()
    } else {
        estimate
    };
    check_pause_budget(stop_estimate, options.max_pause)?;
    let capacity = estimate + (estimate / 8).max(BUFFER_SLACK_MIN);
    let available = match (proc::mem_available(), proc::cgroup_memory_headroom()) {
        (Some(host), Some(cgroup)) => Some(host.min(cgroup)),
        (host, cgroup) => host.or(cgroup),
    };
    if available.is_some_and(|available| capacity > available) {
        return Err(CaptureError::OutOfMemory {
            needed: capacity,
            available: available.unwrap_or(0),
        });
    }
    let buffer = usize::try_from(capacity)
        .ok()
        .and_then(copy::prefaulted_buffer)
        .ok_or(CaptureError::OutOfMemory {
            needed: capacity,
            available: available.unwrap_or(0),
        })?;
    freeze::check_budget(abort, None, "pre-flight")?;
    let hints = proc::list_tasks(pid)
        .map_err(|e| map_proc_err(pid, "list /proc/PID/task", e))?
        .into_iter()
        .map(|tid| freeze::ThreadHint::read(pid, tid))
        .collect();
    Ok(Preflight {
        status,
        output,
        redacted_output,
        file_name,
        mem,
        smaps,
        exe_path,
        exe_bytes,
        exe_info,
        exe_identity,
        cmdline,
        scanner,
        buffer,
        precopy: Vec::new(),
        estimate,
        hints,
    })
}

/// Refuses captures whose stop cannot fit `--max-pause` even at the best copy
/// speed seen on fast hardware, rather than stop the target only to give up.
pub fn check_pause_budget(bytes: u64, max_pause: Duration) -> Result<()> {
    let best_case = Duration::from_secs_f64(bytes as f64 / FASTEST_COPY_BYTES_PER_SEC);
    if best_case > max_pause {
        return Err(CaptureError::PauseBudgetTooSmall {
            bytes,
            best_case_ms: u64::try_from(best_case.as_millis()).unwrap_or(u64::MAX),
            max_pause_ms: u64::try_from(max_pause.as_millis()).unwrap_or(u64::MAX),
        });
    }
    Ok(())
}
