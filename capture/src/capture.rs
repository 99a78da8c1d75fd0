//! The capture sequence: pre-flight, freeze, copy, resume, then write.
//!
//! Everything that can fail without touching the target (permissions, the
//! output file, the executable, buffer allocation) happens before the first
//! thread is stopped. While stopped we only read registers, maps, auxv and
//! memory; compression and writing start after every thread runs again.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::AtomicI32;
use std::time::{Duration, Instant};

use rdlv_format::{
    CaptureInfo, FileRole, Mapping, MappingCapture, MemoryRegion, Metadata, PrecopyInfo,
    ProcessInfo, SnapshotWriter, ThreadInfo, WriteOptions, WriteProgress, X86Regs,
};

use crate::copy::{self, CopyOutcome};
use crate::cow;
use crate::error::{CaptureError, Result};
use crate::exeinfo;
use crate::freeze::{self, duration_us, Frozen};
use crate::output::Output;
use crate::pages::{self, Decision, ExeIdentity, MappingPlan, PageRange, PresenceScanner};
use crate::precopy;
use crate::proc;

/// Extra room in the pre-faulted buffer for growth between pre-flight and stop.
const BUFFER_SLACK_MIN: u64 = 16 << 20;
/// Copy throughput no machine beats (bytes/s): used only to refuse captures
/// that could not possibly finish within `--max-pause`.
const FASTEST_COPY_BYTES_PER_SEC: f64 = 20e9;
/// Pre-copies at least this large are announced on a terminal.
const PRECOPY_NOTICE_BYTES: u64 = 1 << 30;
/// Memory handed to the writer per call, so that signals are noticed while writing.
const WRITE_BATCH: u64 = 64 << 20;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Target process id.
    pub pid: u32,
    /// Output path or `-`.
    pub output: String,
    /// Replace an existing file.
    pub force: bool,
    /// Longest acceptable stop.
    pub max_pause: Duration,
    /// Embed the executable.
    pub embed_exe: bool,
    /// zstd level.
    pub level: i32,
    /// Show a progress bar while writing.
    pub progress: bool,
    /// Copy-on-write capture: fork the frozen target and read the child.
    pub cow: bool,
    /// Extra memory `--cow` may add to the target (page tables and pages
    /// copied on write while the child lives).
    pub cow_max_extra: u64,
    /// Pre-copy capture: copy while the target runs, tracking its writes,
    /// then copy only the written pages while it is stopped.
    pub precopy: bool,
    /// `--encrypt-to`: the output is one age file to these recipients.
    pub encryption: Option<crate::encrypt::Encryption>,
}

/// What happened, for `--json` and the summary line.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Target pid.
    pub pid: u32,
    /// Target name.
    pub name: String,
    /// Threads captured.
    pub threads: usize,
    /// First interrupt to last detach.
    pub pause_us: u64,
    /// Stopping every thread.
    pub freeze_us: u64,
    /// Copying memory while stopped.
    pub copy_us: u64,
    /// Bytes copied from the target.
    pub bytes_captured: u64,
    /// Of those, bytes in all-zero pages.
    pub zero_bytes: u64,
    /// Snapshot size.
    pub file_bytes: u64,
    /// Output path or `-`.
    pub file: String,
    /// Reading registers of every thread while stopped.
    pub regs_us: u64,
    /// Re-reading maps and finding present pages while stopped.
    pub plan_us: u64,
    /// Detaching every thread.
    pub resume_us: u64,
    /// Compressing and writing after resume.
    pub write_ms: u64,
    /// Whole run.
    pub total_ms: u64,
    /// Size of the embedded executable (0 with `--no-exe`).
    pub exe_bytes: u64,
    /// Bytes of never-touched executable data pages stored from the file.
    pub exe_fill_bytes: u64,
    /// Go version of the target, if it is a Go program.
    pub go_version: Option<String>,
    /// Mappings recorded.
    pub mappings: usize,
    /// Warnings recorded in the snapshot.
    pub warnings: Vec<String>,
    /// Presence method (`PAGEMAP_SCAN` or `pagemap`).
    pub page_scan: &'static str,
    /// Capture method actually used: `plain`, `cow` or `precopy`.
    pub method: &'static str,
    /// Why `--cow` fell back to the plain copy.
    pub cow_fallback: Option<String>,
    /// `--cow`: extra memory the forked image cost the target at its peak
    /// (the child's private dirty pages plus its page tables).
    pub cow_extra_bytes: Option<u64>,
    /// `--cow`: microseconds of the fork injection (inside the pause).
    pub fork_us: u64,
    /// `--cow`: microseconds the target was stopped again to reap the child.
    pub reap_pause_us: u64,
    /// `--cow`: milliseconds reading the forked image (target running).
    pub read_ms: u64,
    /// Why `--precopy` fell back to the plain copy.
    pub precopy_fallback: Option<String>,
    /// Microseconds of `--precopy`'s set-up stop(s), included in `pause_us`.
    pub setup_pause_us: u64,
    /// `--precopy`: what the pre-copy did.
    pub precopy: Option<PrecopyStats>,
}

fn map_proc_err(pid: u32, what: &str, err: CaptureError) -> CaptureError {
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

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn regs_of(r: &libc::user_regs_struct) -> X86Regs {
    X86Regs {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        eflags: r.eflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Copies VmFlags from the pre-flight smaps into maps read under the stop.
/// Returns `None` if any mapping changed, in which case smaps must be re-read.
fn reuse_flags(
    now: &[proc::MapsEntry],
    before: &[proc::MapsEntry],
) -> Option<Vec<proc::MapsEntry>> {
    let mut out = Vec::with_capacity(now.len());
    let mut cursor = 0usize;
    for entry in now {
        // Both lists are sorted by address, so a moving cursor suffices.
        while before.get(cursor).is_some_and(|b| b.start < entry.start) {
            cursor += 1;
        }
        let old = before.get(cursor)?;
        if !old.same_mapping(entry) {
            return None;
        }
        out.push(old.clone());
    }
    Some(out)
}

/// Bytes in all-zero pages of `data`.
fn zero_page_bytes(data: &[u8]) -> u64 {
    data.chunks(pages::PAGE_SIZE as usize)
        .filter(|page| {
            let (prefix, words, suffix) = {
                // SAFETY: u64 has no invalid bit patterns.
                unsafe { page.align_to::<u64>() }
            };
            prefix.iter().all(|b| *b == 0)
                && words.iter().all(|w| *w == 0)
                && suffix.iter().all(|b| *b == 0)
        })
        .map(|page| page.len() as u64)
        .sum()
}

/// A captured run of bytes: target address and offset in the copy buffer
/// (or, for `--precopy` pages not written since, in the pre-copy buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    addr: u64,
    offset: usize,
    len: u64,
    from_precopy: bool,
}

/// The bytes of a run, given the copy buffer and the pre-copy buffer.
fn run_bytes<'a>(buffer: &'a [u8], precopy: &'a [u8], run: &Run) -> Option<&'a [u8]> {
    let buffer = if run.from_precopy { precopy } else { buffer };
    buffer.get(run.offset..run.offset.checked_add(run.len as usize)?)
}

/// Lays `ranges` out back to back (as the copy did) and removes failed pages.
fn runs_without_failures(ranges: &[PageRange], failed: &[PageRange]) -> Vec<Run> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut offset = 0usize;
    let mut fail_index = 0usize;
    for range in ranges {
        let end = range.addr + range.len;
        let mut cursor = range.addr;
        while fail_index < failed.len()
            && failed[fail_index].addr + failed[fail_index].len <= cursor
        {
            fail_index += 1;
        }
        let mut probe = fail_index;
        while cursor < end {
            let next_fail = failed.get(probe).filter(|f| f.addr < end);
            let stop = next_fail.map_or(end, |f| f.addr.max(cursor));
            if stop > cursor {
                out.push(Run {
                    addr: cursor,
                    offset: offset + (cursor - range.addr) as usize,
                    len: stop - cursor,
                    from_precopy: false,
                });
            }
            match next_fail {
                Some(f) => {
                    cursor = (f.addr + f.len).min(end).max(stop);
                    probe += 1;
                }
                None => cursor = end,
            }
        }
        offset += range.len as usize;
    }
    out
}

/// `runs` (sorted) cut wherever a mapping of `plans` (sorted) ends inside one.
fn split_at_mappings(runs: Vec<Run>, plans: &[MappingPlan]) -> Vec<Run> {
    let ends: Vec<u64> = plans.iter().map(|plan| plan.entry.end).collect();
    let mut out = Vec::with_capacity(runs.len());
    for mut run in runs {
        loop {
            let end = run.addr + run.len;
            let next = ends.partition_point(|&e| e <= run.addr);
            match ends.get(next) {
                Some(&cut) if cut < end => {
                    let head = cut - run.addr;
                    out.push(Run { len: head, ..run });
                    run = Run {
                        addr: cut,
                        offset: run.offset + head as usize,
                        len: end - cut,
                        from_precopy: run.from_precopy,
                    };
                }
                _ => {
                    out.push(run);
                    break;
                }
            }
        }
    }
    out
}

/// Raises this thread's scheduling priority while the target is stopped, so
/// that on a busy host the copy is not queued behind other work while the
/// service waits; restored on drop. Without CAP_SYS_NICE it does nothing.
struct PriorityBoost {
    tid: libc::id_t,
    previous: libc::c_int,
    raised: bool,
}

/// Nice value used during the pause.
const PAUSE_NICE: libc::c_int = -10;

impl PriorityBoost {
    fn new() -> PriorityBoost {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as libc::id_t;
        // getpriority may legitimately return -1, so errno tells failures apart.
        nix::errno::Errno::clear();
        // SAFETY: plain syscalls on our own thread.
        let previous = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        let ok = nix::errno::Errno::last_raw() == 0;
        let raised = ok
            && previous > PAUSE_NICE
            && unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, PAUSE_NICE) } == 0;
        PriorityBoost {
            tid,
            previous,
            raised,
        }
    }
}

impl Drop for PriorityBoost {
    fn drop(&mut self) {
        if self.raised {
            // SAFETY: restoring our own thread's nice value.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, self.tid, self.previous) };
        }
    }
}

/// Bytes for the pages of the executable's captured mappings (its data
/// segment, a PIE's RELRO) that were not present. Such a page was never
/// written since exec, so it holds exactly the file's bytes at that offset;
/// recording it as absent would make readers see zeros instead of the
/// initialised data. Whole pages borrow from `exe_bytes`; a page that runs
/// past the end of the file is zero-padded, as the kernel maps it; pages
/// wholly past the end cannot be accessed by the target and are left out.
fn executable_fill<'a>(
    plans: &[MappingPlan],
    exe: &ExeIdentity,
    exe_bytes: &'a [u8],
) -> Vec<(u64, Cow<'a, [u8]>)> {
    let mut out = Vec::new();
    for plan in plans {
        if plan.decision != Decision::Capture || !exe.matches(&plan.entry) {
            continue;
        }
        let mut gaps = Vec::new();
        let mut cursor = plan.entry.start;
        for range in &plan.ranges {
            if range.addr > cursor {
                gaps.push((cursor, range.addr));
            }
            cursor = cursor.max(range.addr + range.len);
        }
        if cursor < plan.entry.end {
            gaps.push((cursor, plan.entry.end));
        }
        for (gap_start, gap_end) in gaps {
            let Some(file_start) = plan.entry.offset.checked_add(gap_start - plan.entry.start)
            else {
                continue;
            };
            let file_len = exe_bytes.len() as u64;
            if file_start >= file_len {
                continue;
            }
            let whole = (file_len - file_start).min(gap_end - gap_start) / pages::PAGE_SIZE
                * pages::PAGE_SIZE;
            if let Some(data) = exe_bytes.get(file_start as usize..(file_start + whole) as usize) {
                if !data.is_empty() {
                    out.push((gap_start, Cow::Borrowed(data)));
                }
            }
            let tail_start = file_start + whole;
            if whole < gap_end - gap_start && tail_start < file_len {
                let mut page = vec![0u8; pages::PAGE_SIZE as usize];
                let tail = exe_bytes.get(tail_start as usize..).unwrap_or_default();
                let copied = tail.len().min(page.len());
                page[..copied].copy_from_slice(&tail[..copied]);
                out.push((gap_start + whole, Cow::Owned(page)));
            }
        }
    }
    out
}

/// Everything learned before stopping the target.
struct Preflight {
    status: proc::Status,
    output: Output,
    file_name: String,
    mem: File,
    smaps: Vec<proc::MapsEntry>,
    exe_path: String,
    exe_bytes: Vec<u8>,
    exe_info: exeinfo::ExeInfo,
    exe_identity: ExeIdentity,
    cmdline: Vec<String>,
    scanner: PresenceScanner,
    buffer: Vec<u8>,
    /// `--precopy`: the pages copied while the target ran (empty otherwise).
    precopy: Vec<u8>,
    /// Bytes the pre-flight plan would copy.
    estimate: u64,
    hints: Vec<freeze::ThreadHint>,
}

/// Everything collected while the target was stopped.
struct Stopped {
    /// Registers, clocks, maps and auxv read at the stop.
    state: FrozenState,
    threads: Vec<freeze::StoppedThread>,
    plans: Vec<MappingPlan>,
    ranges: Vec<PageRange>,
    copy_us: u64,
    outcome: CopyOutcome,
    report: freeze::ResumeReport,
    plan_us: u64,
    resume_us: u64,
    /// Microseconds of earlier, shorter stops of this capture: `--precopy`'s
    /// set-up stop (also when it then fell back to the plain copy).
    setup_pause_us: u64,
    /// `plain` or `cow`.
    method: &'static str,
    /// Facts of a copy-on-write capture.
    cow: Option<CowStats>,
    /// `--precopy`: runs taken from the pre-copy (sorted), and its facts.
    reused: Vec<Run>,
    precopy: Option<PrecopyStats>,
}

impl Stopped {
    /// Microseconds the target was stopped for the capture: the stop itself,
    /// plus, for `--precopy`, the short stop that set up write tracking.
    fn pause_us(&self) -> u64 {
        self.report.pause_us() + self.setup_pause_us
    }
}

/// What a pre-copy capture measured.
#[derive(Debug, Clone, Default)]
pub struct PrecopyStats {
    /// Bytes under write tracking.
    pub tracked_bytes: u64,
    /// Bytes copied while the target ran.
    pub precopy_bytes: u64,
    /// Milliseconds of that copy.
    pub precopy_ms: u64,
    /// Bytes of the snapshot taken from the pre-copy (not written since).
    pub reused_bytes: u64,
    /// Microseconds removing write tracking after the stop (the target runs;
    /// its page faults wait for each 16 MiB chunk being unregistered).
    pub teardown_us: u64,
}

/// What a copy-on-write capture measured.
#[derive(Debug, Clone, Default)]
struct CowStats {
    extra_bytes: Option<u64>,
    fork_us: u64,
    reap_pause_us: u64,
    read_ms: u64,
    warnings: Vec<String>,
}

/// Prints and returns the note for a `--cow` capture that falls back.
fn cow_fallback_note(reason: &str) -> String {
    eprintln!("rdlv-snap: --cow: {reason}; falling back to the plain copy");
    reason.to_string()
}

/// Runs one capture. `abort` holds a signal number once SIGINT/SIGTERM/SIGHUP arrived.
pub fn run(options: &Options, abort: &AtomicI32) -> Result<Summary> {
    run_capture(options, abort).map_err(|err| exited_if_gone(options.pid, err))
}

/// A ptrace request that fails with ESRCH because the whole process died
/// (killed while frozen, say) is reported as the process exiting, not as a
/// ptrace failure on some thread.
fn exited_if_gone(pid: u32, err: CaptureError) -> CaptureError {
    // A thread we held stopped vanished: the SIGKILL that did it takes the
    // whole process down within moments, so give it that long to show.
    let gone = || {
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if proc::gone_or_exiting(pid) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    match &err {
        // A thread we hold in a ptrace-stop only leaves it when SIGKILL takes
        // its whole process down (it may then sit in its exit stop until we
        // let go, so /proc does not show it gone yet).
        CaptureError::Ptrace {
            op: "GETREGS" | "GETREGSET",
            errno: nix::errno::Errno::ESRCH,
            ..
        } => CaptureError::Exited { pid },
        CaptureError::Ptrace { errno, .. } if *errno == nix::errno::Errno::ESRCH && gone() => {
            CaptureError::Exited { pid }
        }
        CaptureError::Parse { what, .. }
            if (what.starts_with("--cow") || what.starts_with("--precopy")) && gone() =>
        {
            CaptureError::Exited { pid }
        }
        // A process dying under a previous stop can still be held by our
        // own ptrace thread when the next stop is tried.
        CaptureError::Permission { .. } if gone() => CaptureError::Exited { pid },
        // /proc reads of a process that died (e.g. during --precopy's copy
        // while it runs) fail with ESRCH.
        CaptureError::Proc { source, .. }
            if source.raw_os_error() == Some(libc::ESRCH) && gone() =>
        {
            CaptureError::Exited { pid }
        }
        _ => err,
    }
}

fn run_capture(options: &Options, abort: &AtomicI32) -> Result<Summary> {
    let started = Instant::now();
    let mut pre = preflight(options, abort)?;
    let mut cow_fallback = None;
    let mut precopy_fallback = None;
    let stopped = if options.cow {
        let facts = cow::CowFacts::read(options.pid);
        match cow::refusal(&facts, options.cow_max_extra) {
            Some(reason) => {
                cow_fallback = Some(cow_fallback_note(&reason));
                stop_and_copy(options, abort, &mut pre)?
            }
            None => match stop_and_fork(options, abort, &mut pre)? {
                Ok(stopped) => stopped,
                Err(reason) => {
                    cow_fallback = Some(cow_fallback_note(&reason));
                    stop_and_copy(options, abort, &mut pre)?
                }
            },
        }
    } else if options.precopy {
        match stop_and_precopy(options, abort, &mut pre)? {
            Ok(stopped) => stopped,
            Err(fallback) => {
                // The whole copy now happens in the stop: check the budget again.
                check_pause_budget(pre.estimate, options.max_pause)?;
                precopy_fallback = Some(fallback.reason);
                let mut stopped = stop_and_copy(options, abort, &mut pre)?;
                stopped.setup_pause_us = fallback.pause_us;
                stopped
            }
        }
    } else {
        stop_and_copy(options, abort, &mut pre)?
    };

    // Running again from here on.
    let write_started = Instant::now();
    let mut runs = runs_without_failures(&stopped.ranges, &stopped.outcome.failed);
    if !stopped.reused.is_empty() {
        runs.extend(stopped.reused.iter().copied());
        runs.sort_by_key(|run| run.addr);
    }
    // Range arithmetic merges touching pages of adjacent mappings; the
    // per-mapping facts need every run inside one mapping.
    let runs = split_at_mappings(runs, &stopped.plans);
    let mut metadata = describe(options.pid, &pre, &stopped, &runs);
    if let Some(reason) = &cow_fallback {
        metadata
            .capture
            .warnings
            .push(format!("--cow fell back to the plain copy: {reason}"));
    }
    if let Some(reason) = &precopy_fallback {
        metadata
            .capture
            .warnings
            .push(format!("pre-copy not possible, plain copy used: {reason}"));
    }
    let bytes_captured = metadata.capture.bytes_captured;
    let zero_bytes: u64 = metadata
        .mappings
        .iter()
        .map(|m| match m.capture {
            MappingCapture::Captured { zero_bytes, .. } => zero_bytes,
            _ => 0,
        })
        .sum();
    let warnings = metadata.capture.warnings.clone();
    let exe_len = if options.embed_exe {
        pre.exe_bytes.len() as u64
    } else {
        0
    };
    let exe_bytes = std::mem::take(&mut pre.exe_bytes);
    let fill = executable_fill(&stopped.plans, &pre.exe_identity, &exe_bytes);
    let exe_fill_bytes: u64 = fill.iter().map(|(_, data)| data.len() as u64).sum();
    let file_bytes = write_snapshot(
        options, abort, &mut pre, &exe_bytes, &metadata, &runs, &fill,
    )?;
    let write_ms = u64::try_from(write_started.elapsed().as_millis()).unwrap_or(u64::MAX);

    Ok(Summary {
        pid: options.pid,
        name: pre.status.name.clone(),
        threads: stopped.threads.len(),
        pause_us: stopped.pause_us(),
        freeze_us: stopped.report.freeze_us(),
        copy_us: stopped.copy_us,
        regs_us: stopped.state.regs_us,
        plan_us: stopped.plan_us,
        resume_us: stopped.resume_us,
        bytes_captured,
        zero_bytes,
        file_bytes,
        file: pre.file_name.clone(),
        write_ms,
        total_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        exe_bytes: exe_len,
        exe_fill_bytes,
        go_version: pre.exe_info.go_version.clone(),
        mappings: stopped.plans.len(),
        warnings,
        page_scan: if pre.scanner.uses_scan_ioctl() {
            "PAGEMAP_SCAN"
        } else {
            "pagemap"
        },
        method: stopped.method,
        cow_fallback,
        cow_extra_bytes: stopped.cow.as_ref().and_then(|c| c.extra_bytes),
        fork_us: stopped.cow.as_ref().map_or(0, |c| c.fork_us),
        reap_pause_us: stopped.cow.as_ref().map_or(0, |c| c.reap_pause_us),
        read_ms: stopped.cow.as_ref().map_or(0, |c| c.read_ms),
        precopy_fallback,
        setup_pause_us: stopped.setup_pause_us,
        precopy: stopped.precopy.clone(),
    })
}

/// Checks and prepares everything that does not need the target stopped.
fn preflight(options: &Options, abort: &AtomicI32) -> Result<Preflight> {
    let pid = options.pid;
    if !proc::process_exists(pid) {
        return Err(CaptureError::NoSuchProcess { pid });
    }
    if pid == std::process::id() {
        return Err(CaptureError::Usage(
            "rdlv-snap cannot capture itself".into(),
        ));
    }
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
    if status.tracer_pid != 0 {
        return Err(freeze::permission_error(pid, "already traced"));
    }
    let output = Output::open(&options.output, options.force, options.encryption.clone())?;
    let file_name = output.name();
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
    let stop_estimate: u64 = if options.precopy {
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
fn check_pause_budget(bytes: u64, max_pause: Duration) -> Result<()> {
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

/// What is read from the target right after every thread stopped, the same
/// for every capture method.
struct FrozenState {
    clock_monotonic_ns: u64,
    clock_realtime_ns: u64,
    regs: Vec<freeze::ThreadRegs>,
    regs_us: u64,
    /// When planning (maps under the stop) began, for `plan_us`.
    plan_started: Instant,
    maps: Vec<proc::MapsEntry>,
    smaps_reread: bool,
    auxv: Vec<(u64, u64)>,
}

fn read_frozen_state(pid: u32, frozen: &Frozen, pre: &Preflight) -> Result<FrozenState> {
    let clock_monotonic_ns = clock_ns(libc::CLOCK_MONOTONIC);
    let clock_realtime_ns = clock_ns(libc::CLOCK_REALTIME);

    let regs_started = Instant::now();
    let regs = frozen.registers()?;
    let regs_us = duration_us(regs_started.elapsed());

    let plan_started = Instant::now();
    let maps_now = proc::read_maps(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/maps", e))?;
    let (maps, smaps_reread) = match reuse_flags(&maps_now, &pre.smaps) {
        Some(maps) => (maps, false),
        None => (
            proc::read_smaps(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/smaps", e))?,
            true,
        ),
    };
    let auxv = proc::read_auxv(pid).map_err(|e| map_proc_err(pid, "read /proc/PID/auxv", e))?;
    Ok(FrozenState {
        clock_monotonic_ns,
        clock_realtime_ns,
        regs,
        regs_us,
        plan_started,
        maps,
        smaps_reread,
        auxv,
    })
}

/// The pause budget of a stop: from its first interrupt, `--max-pause`.
fn pause_deadline(frozen: &Frozen, options: &Options) -> Option<(Instant, Instant)> {
    frozen
        .first_interrupt()
        .map(|start| (start, start + options.max_pause))
}

/// Resumes every thread: the threads that were stopped, the timing, and
/// the microseconds the detaching took.
fn resume_timed(frozen: Frozen) -> (Vec<freeze::StoppedThread>, freeze::ResumeReport, u64) {
    let threads = frozen.threads().to_vec();
    let started = Instant::now();
    let report = frozen.resume();
    (threads, report, duration_us(started.elapsed()))
}

/// Every range the plans copy, in order, with `buffer` grown to hold them.
fn planned_ranges(plans: &[MappingPlan], buffer: &mut Vec<u8>) -> Result<Vec<PageRange>> {
    let ranges: Vec<PageRange> = plans
        .iter()
        .flat_map(|p| p.ranges.iter().copied())
        .collect();
    planned_ranges_fit(&ranges, buffer)?;
    Ok(ranges)
}

/// Grows `buffer` to hold `ranges` back to back.
fn planned_ranges_fit(ranges: &[PageRange], buffer: &mut Vec<u8>) -> Result<()> {
    let total: u64 = ranges.iter().map(|r| r.len).sum();
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    if total > buffer.len() {
        // The process grew since pre-flight; these pages fault during the pause.
        buffer
            .try_reserve_exact(total - buffer.len())
            .map_err(|_| CaptureError::OutOfMemory {
                needed: total as u64,
                available: proc::mem_available().unwrap_or(0),
            })?;
        buffer.resize(total, 0);
    }
    Ok(())
}

/// Stops the target, reads registers, maps and memory, and resumes it.
/// On any error the [`Frozen`] guard resumes the target before returning.
fn stop_and_copy(options: &Options, abort: &AtomicI32, pre: &mut Preflight) -> Result<Stopped> {
    let pid = options.pid;
    // Copy threads spawned while this is alive inherit the priority.
    let _boost = PriorityBoost::new();
    let frozen = Frozen::freeze(pid, options.max_pause, abort, &pre.hints)?;
    let state = read_frozen_state(pid, &frozen, pre)?;
    let plans = pages::plan(&state.maps, &pre.exe_identity, &mut pre.scanner)?;
    let ranges = planned_ranges(&plans, &mut pre.buffer)?;
    let plan_us = duration_us(state.plan_started.elapsed());

    let deadline = pause_deadline(&frozen, options);
    let copy_started = Instant::now();
    let outcome = copy::copy_ranges(
        pid,
        &ranges,
        &mut pre.buffer,
        Some(&pre.mem),
        abort,
        deadline,
    )?;
    let copy_us = duration_us(copy_started.elapsed());

    let (threads, report, resume_us) = resume_timed(frozen);
    Ok(Stopped {
        state,
        threads,
        plans,
        ranges,
        copy_us,
        outcome,
        report,
        plan_us,
        resume_us,
        setup_pause_us: 0,
        method: "plain",
        cow: None,
        reused: Vec::new(),
        precopy: None,
    })
}

/// Why `--precopy` gave way to the plain copy, and how long the target was
/// stopped trying (the set-up stops count as pause).
struct PrecopyFallback {
    reason: String,
    pause_us: u64,
}

/// Errors of the pre-copy while the target runs that end the capture
/// rather than hand over to the plain copy: the target is gone, or the user
/// asked to stop. Any other leaves nothing in the target once the tracker
/// is dropped, so the plain copy can go on.
fn ends_capture(error: &CaptureError) -> bool {
    matches!(
        error,
        CaptureError::Exited { .. }
            | CaptureError::NoSuchProcess { .. }
            | CaptureError::Interrupted { .. }
    )
}

/// What the pre-copy copied while the target ran.
struct Precopied {
    buffer: Vec<u8>,
    ranges: Vec<PageRange>,
    /// `ranges` minus the pages that could not be read.
    readable: Vec<PageRange>,
    ms: u64,
}

/// Protects every trackable mapping, then copies its existing pages into
/// `buffer` (returned with the copy; on error the caller still owns it).
fn precopy_while_running(
    pid: u32,
    pre: &mut Preflight,
    tracker: &mut precopy::WriteTracker,
    mut buffer: Vec<u8>,
    abort: &AtomicI32,
    progress: bool,
) -> std::result::Result<Precopied, (CaptureError, Vec<u8>)> {
    let maps = match proc::read_smaps(pid) {
        Ok(maps) => maps,
        Err(e) => return Err((map_proc_err(pid, "read /proc/PID/smaps", e), buffer)),
    };
    for entry in &maps {
        if pages::classify(entry, &pre.exe_identity) == Decision::Capture
            && precopy::trackable(entry)
        {
            if let Err(error) = tracker.protect(entry.start, entry.end, &mut pre.scanner) {
                return Err((error.into(), buffer));
            }
        }
    }
    let mut ranges = Vec::new();
    for range in tracker.tracked() {
        if let Err(error) =
            pre.scanner
                .existing_pages(range.addr, range.addr + range.len, &mut ranges)
        {
            return Err((error, buffer));
        }
    }
    if let Err(error) = planned_ranges_fit(&ranges, &mut buffer) {
        return Err((error, buffer));
    }
    let bytes: u64 = ranges.iter().map(|r| r.len).sum();
    if progress && bytes >= PRECOPY_NOTICE_BYTES {
        // About 0.1 s per GiB here: say what the wait is before it starts.
        eprintln!(
            "rdlv-snap: copying {:.1} GiB while process {pid} runs (its writes are tracked)...",
            bytes as f64 / (1u64 << 30) as f64
        );
    }
    let started = Instant::now();
    match copy::copy_ranges(pid, &ranges, &mut buffer, Some(&pre.mem), abort, None) {
        Ok(outcome) => Ok(Precopied {
            readable: pages::subtract_ranges(&ranges, &outcome.failed),
            ranges,
            buffer,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }),
        Err(error) => Err((error, buffer)),
    }
}

/// The `--precopy` capture (see `precopy.rs`): a short stop to take over a
/// userfaultfd of the target, then, with the target running, write
/// protection of its private anonymous mappings and a copy of their existing
/// pages; then the real stop, which copies everything else plus the pages
/// written since they were protected. `Ok(Err(_))` means the pre-copy could
/// not be used and nothing is left changed in the target: the caller falls
/// back to the plain copy.
fn stop_and_precopy(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
) -> Result<std::result::Result<Stopped, PrecopyFallback>> {
    let pid = options.pid;
    if !pre.scanner.uses_scan_ioctl() {
        return Ok(Err(PrecopyFallback {
            reason: "finding written pages needs the PAGEMAP_SCAN ioctl (Linux 6.7+)".into(),
            pause_us: 0,
        }));
    }
    let (attached, attach_pause_us) =
        precopy::WriteTracker::attach(pid, options.max_pause, abort, &pre.hints);
    let mut tracker = match attached {
        Ok(tracker) => tracker,
        Err(error) if error.falls_back() => {
            return Ok(Err(PrecopyFallback {
                reason: error.to_string(),
                pause_us: attach_pause_us,
            }))
        }
        Err(error) => return Err(error.into()),
    };

    // Running again: protect, then copy what is protected.
    let buffer = std::mem::take(&mut pre.buffer);
    let precopied =
        match precopy_while_running(pid, pre, &mut tracker, buffer, abort, options.progress) {
            Ok(precopied) => precopied,
            Err((error, buffer)) => {
                pre.buffer = buffer;
                drop(tracker);
                if ends_capture(&error) {
                    return Err(error);
                }
                return Ok(Err(PrecopyFallback {
                    reason: format!("the copy while running failed: {error}"),
                    pause_us: attach_pause_us,
                }));
            }
        };
    let tracked_bytes: u64 = tracker.tracked().iter().map(|r| r.len).sum();
    let precopy_bytes: u64 = precopied.ranges.iter().map(|r| r.len).sum();
    let precopy_ms = precopied.ms;
    let layout = precopy::Layout::of(&precopied.ranges);
    // In the stop, written pages are copied again into their own slots of
    // the pre-copy; pages outside it (untracked mappings, pages new since)
    // go to a fresh pre-faulted buffer sized for the untracked part (it
    // grows, with page faults in the pause, if the target grew more).
    let delta_capacity = (precopied.buffer.len() as u64)
        .saturating_sub(precopy_bytes)
        .max(BUFFER_SLACK_MIN);
    pre.buffer = usize::try_from(delta_capacity)
        .ok()
        .and_then(copy::prefaulted_buffer)
        .ok_or(CaptureError::OutOfMemory {
            needed: delta_capacity,
            available: proc::mem_available().unwrap_or(0),
        })?;
    pre.precopy = precopied.buffer;
    let precopy_ranges = precopied.ranges;
    let readable = precopied.readable;

    let _boost = PriorityBoost::new();
    let frozen = Frozen::freeze(pid, options.max_pause, abort, &pre.hints)?;
    let mut state = read_frozen_state(pid, &frozen, pre)?;
    // smaps re-read now shows our registration (`uw`): the snapshot
    // describes the target, not the capture's instrument.
    for entry in &mut state.maps {
        if entry.vm_flags.iter().any(|flag| flag == "uw")
            && pages::overlaps(tracker.tracked(), entry.start, entry.end)
        {
            entry.vm_flags.retain(|flag| flag != "uw");
        }
    }
    let mut unwritten = Vec::new();
    let plans = pages::plan_with_unwritten(
        &state.maps,
        &pre.exe_identity,
        &mut pre.scanner,
        &mut unwritten,
    )?;
    let planned: Vec<PageRange> = plans
        .iter()
        .flat_map(|p| p.ranges.iter().copied())
        .collect();
    let unwritten = tracker.tracked_only(&unwritten);
    let reusable =
        pages::intersect_ranges(&pages::intersect_ranges(&unwritten, &readable), &planned);
    let rest = pages::subtract_ranges(&planned, &reusable);
    let in_place: Vec<(PageRange, usize)> = pages::intersect_ranges(&rest, &precopy_ranges)
        .into_iter()
        .map(|range| Ok((range, layout.locate(range)?)))
        .collect::<Result<_>>()?;
    let ranges = pages::subtract_ranges(&rest, &precopy_ranges);
    planned_ranges_fit(&ranges, &mut pre.buffer)?;
    let plan_us = duration_us(state.plan_started.elapsed());

    let deadline = pause_deadline(&frozen, options);
    let copy_started = Instant::now();
    let in_place_outcome = copy::copy_placed(
        pid,
        &in_place,
        &mut pre.precopy,
        Some(&pre.mem),
        abort,
        deadline,
    )?;
    let outcome = copy::copy_ranges(
        pid,
        &ranges,
        &mut pre.buffer,
        Some(&pre.mem),
        abort,
        deadline,
    )?;
    let copy_us = duration_us(copy_started.elapsed());
    let (threads, report, resume_us) = resume_timed(frozen);
    // Running again; write tracking ends (every page unprotected).
    let teardown_started = Instant::now();
    drop(tracker);
    let teardown_us = duration_us(teardown_started.elapsed());

    let reused_bytes: u64 = reusable.iter().map(|r| r.len).sum();
    let in_place: Vec<PageRange> = in_place.iter().map(|(range, _)| *range).collect();
    let from_precopy = cow::union_ranges(
        &reusable,
        &pages::subtract_ranges(&in_place, &in_place_outcome.failed),
    );
    let reused: Vec<Run> = from_precopy
        .iter()
        .map(|range| {
            Ok(Run {
                addr: range.addr,
                offset: layout.locate(*range)?,
                len: range.len,
                from_precopy: true,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Ok(Stopped {
        state,
        threads,
        plans,
        ranges,
        copy_us,
        outcome,
        report,
        plan_us,
        resume_us,
        setup_pause_us: attach_pause_us,
        method: "precopy",
        cow: None,
        reused,
        precopy: Some(PrecopyStats {
            tracked_bytes,
            precopy_bytes,
            precopy_ms,
            reused_bytes,
            teardown_us,
        }),
    }))
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
    let mut sentinel = cow::Sentinel::spawn(pid);
    let _boost = PriorityBoost::new();
    let frozen = Frozen::freeze(pid, options.max_pause, abort, &pre.hints)?;
    let state = read_frozen_state(pid, &frozen, pre)?;
    // Presence is scanned now only where the child will not hold the
    // parent's bytes; everything else is scanned on the child after resume.
    let mut plans = Vec::with_capacity(state.maps.len());
    let mut parent_ranges = Vec::new();
    for entry in &state.maps {
        let decision = pages::classify(entry, &pre.exe_identity);
        let mut ranges = Vec::new();
        if decision == Decision::Capture && cow::parent_only(entry) {
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
    let plan_us = duration_us(state.plan_started.elapsed());

    let deadline = pause_deadline(&frozen, options);
    let copy_started = Instant::now();
    let parent_bytes: u64 = parent_ranges.iter().map(|r| r.len).sum();
    let mut parent_copy = vec![0u8; usize::try_from(parent_bytes).unwrap_or(usize::MAX)];
    let parent_outcome = copy::copy_ranges(
        pid,
        &parent_ranges,
        &mut parent_copy,
        Some(&pre.mem),
        abort,
        deadline,
    )?;
    let copy_us = duration_us(copy_started.elapsed());
    freeze::check_budget(abort, deadline, "forking")?;
    let image = match cow::ForkedImage::fork(pid, &frozen, sentinel.as_mut().ok()) {
        Ok(image) => image,
        Err(error) if error.falls_back() => {
            drop(frozen);
            return Ok(Err(error.to_string()));
        }
        Err(error) => return Err(error.into()),
    };
    let (threads, report, resume_us) = resume_timed(frozen);

    // Running again. Whatever happens while reading, the child is killed
    // and reaped before returning.
    let read_started = Instant::now();
    let read = read_forked_image(&image, &mut plans, pre, &parent_copy, abort);
    let read_ms = u64::try_from(read_started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let extra_bytes = image.extra_bytes();
    let fork_us = image.fork_us;
    let dead = image.kill();
    // Reaping is not skipped on SIGINT: it is short and leaves no zombie.
    let never = AtomicI32::new(0);
    let mut warnings = Vec::new();
    let reap_pause_us = match cow::reap(pid, dead, options.max_pause, &never) {
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
    Ok(Ok(Stopped {
        state,
        threads,
        plans,
        ranges,
        copy_us,
        outcome,
        report,
        plan_us,
        resume_us,
        setup_pause_us: 0,
        method: "cow",
        cow: Some(CowStats {
            extra_bytes,
            fork_us,
            reap_pause_us,
            read_ms,
            warnings,
        }),
        reused: Vec::new(),
        precopy: None,
    }))
}

/// Scans presence on the child, lays every captured range out back to back
/// in `pre.buffer` (in address order, as [`runs_without_failures`] expects)
/// and fills it: parent-only mappings from `parent_copy` (taken in the
/// stop, in the same order), the rest from the child.
fn read_forked_image(
    image: &cow::ForkedImage,
    plans: &mut [MappingPlan],
    pre: &mut Preflight,
    parent_copy: &[u8],
    abort: &AtomicI32,
) -> Result<(Vec<PageRange>, CopyOutcome)> {
    let mut child_scanner = PresenceScanner::open(image.pid())?;
    for plan in plans.iter_mut() {
        if plan.decision != Decision::Capture || cow::parent_only(&plan.entry) {
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
            ranges = cow::union_ranges(&ranges, &parent);
        }
        plan.ranges = ranges;
    }
    let ranges = planned_ranges(plans, &mut pre.buffer)?;
    let mut outcome = CopyOutcome::default();
    let mut pending: Vec<PageRange> = Vec::new();
    let mut pending_offset = 0usize;
    let mut offset = 0usize;
    let mut parent_cursor = 0usize;
    let flush = |pending: &mut Vec<PageRange>,
                 from: usize,
                 to: usize,
                 buffer: &mut [u8],
                 outcome: &mut CopyOutcome|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let slice = buffer
            .get_mut(from..to)
            .ok_or_else(|| CaptureError::Parse {
                what: "copy plan".into(),
                detail: format!("{from}..{to} outside the buffer"),
            })?;
        let part = image.read_ranges(pending, slice, abort)?;
        outcome.absorb(part);
        pending.clear();
        Ok(())
    };
    for plan in plans.iter() {
        let bytes = usize::try_from(plan.bytes()).unwrap_or(usize::MAX);
        if plan.decision == Decision::Capture && cow::parent_only(&plan.entry) {
            flush(
                &mut pending,
                pending_offset,
                offset,
                &mut pre.buffer,
                &mut outcome,
            )?;
            let source = parent_copy
                .get(parent_cursor..parent_cursor + bytes)
                .ok_or_else(|| CaptureError::Parse {
                    what: "copy plan".into(),
                    detail: "parent-only copy shorter than its plan".into(),
                })?;
            let target =
                pre.buffer
                    .get_mut(offset..offset + bytes)
                    .ok_or_else(|| CaptureError::Parse {
                        what: "copy plan".into(),
                        detail: "buffer shorter than the plan".into(),
                    })?;
            target.copy_from_slice(source);
            parent_cursor += bytes;
            pending_offset = offset + bytes;
        } else {
            pending.extend(plan.ranges.iter().copied());
        }
        offset += bytes;
    }
    flush(
        &mut pending,
        pending_offset,
        offset,
        &mut pre.buffer,
        &mut outcome,
    )?;
    Ok((ranges, outcome))
}

/// Builds the snapshot metadata (after resume).
fn describe(pid: u32, pre: &Preflight, stopped: &Stopped, runs: &[Run]) -> Metadata {
    let bytes_captured: u64 = runs.iter().map(|r| r.len).sum();
    let mut warnings = Vec::new();
    for failed in &stopped.outcome.failed {
        warnings.push(format!(
            "could not read 0x{:x}-0x{:x} ({} bytes); it is missing from the snapshot",
            failed.addr,
            failed.addr + failed.len,
            failed.len
        ));
    }
    if let Some(cow) = &stopped.cow {
        warnings.extend(cow.warnings.iter().cloned());
    }
    for thread in &stopped.threads {
        if thread.exiting {
            warnings.push(format!("thread {} was exiting when captured", thread.tid));
        }
    }
    if stopped.threads.iter().any(|t| t.group_stopped) {
        warnings.push(
            "the process was in job-control stop (SIGSTOP) before capture and stays stopped".into(),
        );
    }
    if !pre.scanner.uses_scan_ioctl() {
        warnings.push("PAGEMAP_SCAN unavailable: shared zero pages were copied as data".into());
    }
    if stopped.state.smaps_reread {
        warnings.push(
            "mappings changed between pre-flight and stop; smaps was re-read while stopped".into(),
        );
    }

    let mut run_index = 0usize;
    let mut mappings = Vec::with_capacity(stopped.plans.len());
    for plan in &stopped.plans {
        let capture = match &plan.decision {
            Decision::Skip(reason) => MappingCapture::Skipped {
                reason: reason.clone(),
            },
            Decision::FromExecutable => MappingCapture::FromExecutable,
            Decision::Capture => {
                // Runs are sorted like the plans and only come from captured mappings.
                let mut present_bytes = 0u64;
                let mut zero_bytes = 0u64;
                while let Some(run) = runs.get(run_index).filter(|r| r.addr < plan.entry.end) {
                    present_bytes += run.len;
                    zero_bytes +=
                        run_bytes(&pre.buffer, &pre.precopy, run).map_or(0, zero_page_bytes);
                    run_index += 1;
                }
                MappingCapture::Captured {
                    present_bytes,
                    zero_bytes,
                }
            }
        };
        mappings.push(Mapping {
            start: plan.entry.start,
            end: plan.entry.end,
            perms: plan.entry.perms.clone(),
            offset: plan.entry.offset,
            dev: plan.entry.dev.clone(),
            inode: plan.entry.inode,
            path: plan.entry.path.clone(),
            vm_flags: plan.entry.vm_flags.clone(),
            capture,
        });
    }

    // Registers were read in stop order, so they line up with the threads.
    let threads: Vec<ThreadInfo> = stopped
        .threads
        .iter()
        .zip(
            stopped
                .state
                .regs
                .iter()
                .map(Some)
                .chain(std::iter::repeat(None)),
        )
        .map(|(t, regs)| {
            let regs = regs.filter(|r| r.tid == t.tid);
            ThreadInfo {
                tid: t.tid,
                name: t.name.clone(),
                state: t.state_before.to_string(),
                regs: regs.map(|r| regs_of(&r.regs)).unwrap_or_default(),
                fpregs_hex: regs.map(|r| hex(&r.fpregs)).unwrap_or_default(),
            }
        })
        .collect();
    let uname = nix::sys::utsname::uname().ok();
    Metadata {
        process: ProcessInfo {
            pid,
            exe_deleted: pre.exe_path.ends_with(" (deleted)"),
            exe_path: pre.exe_path.clone(),
            cmdline: pre.cmdline.clone(),
            gnu_build_id: pre.exe_info.gnu_build_id.clone(),
            go_build_id: pre.exe_info.go_build_id.clone(),
            go_version: pre.exe_info.go_version.clone(),
            go_modinfo: pre.exe_info.go_modinfo.clone(),
            ppid: pre.status.ppid,
            uid: pre.status.uid,
            gid: pre.status.gid,
        },
        capture: CaptureInfo {
            tool_version: format!("rdlv-snap {}", env!("CARGO_PKG_VERSION")),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kernel_release: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            page_size: pages::PAGE_SIZE,
            clock_monotonic_ns: stopped.state.clock_monotonic_ns,
            clock_realtime_ns: stopped.state.clock_realtime_ns,
            pause_us: stopped.pause_us(),
            freeze_us: stopped.report.freeze_us(),
            copy_us: stopped.copy_us,
            method: stopped.method.into(),
            precopy: stopped.precopy.as_ref().map(|p| PrecopyInfo {
                setup_pause_us: stopped.setup_pause_us,
                precopy_bytes: p.precopy_bytes,
                reused_bytes: p.reused_bytes,
            }),
            bytes_captured,
            warnings,
        },
        threads,
        mappings,
        auxv: stopped.state.auxv.clone(),
    }
}

/// Compresses and writes the snapshot (encrypted with `--encrypt-to`), links
/// the file under its name and verifies it (not for stdout). Returns the
/// bytes written to the output.
fn write_snapshot(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
    exe_bytes: &[u8],
    metadata: &Metadata,
    runs: &[Run],
    fill: &[(u64, Cow<'_, [u8]>)],
) -> Result<u64> {
    let file_name = pre.file_name.clone();
    let (buffer, precopy) = (&pre.buffer, &pre.precopy);
    // Copied memory, then the executable's untouched pages: disjoint ranges.
    let regions: Vec<MemoryRegion<'_>> = runs
        .iter()
        .filter_map(|run| {
            run_bytes(buffer, precopy, run).map(|data| MemoryRegion {
                addr: run.addr,
                data,
            })
        })
        .chain(
            fill.iter()
                .map(|(addr, data)| MemoryRegion { addr: *addr, data }),
        )
        .collect();
    let memory_bytes: u64 = regions.iter().map(|r| r.data.len() as u64).sum();
    let exe_len = if options.embed_exe {
        exe_bytes.len() as u64
    } else {
        0
    };
    let progress = options
        .progress
        .then(|| make_progress_bar(memory_bytes + exe_len));
    let write_options = WriteOptions {
        level: options.level,
        ..WriteOptions::default()
    };
    let exe_path = &pre.exe_path;
    let mut write = |sink: &mut dyn Write| -> Result<u64> {
        let format_err = |e| CaptureError::format(&file_name, e);
        let mut writer = SnapshotWriter::new(sink, write_options.clone()).map_err(format_err)?;
        writer.write_metadata(metadata).map_err(format_err)?;
        // Memory goes in batches so that a signal is noticed between them.
        let mut done = 0u64;
        let mut batch: Vec<MemoryRegion<'_>> = Vec::new();
        let mut pending = regions.iter().peekable();
        while pending.peek().is_some() {
            batch.clear();
            let mut batch_bytes = 0u64;
            while let Some(region) = pending.next_if(|_| batch_bytes < WRITE_BATCH) {
                batch.push(*region);
                batch_bytes += region.data.len() as u64;
            }
            freeze::check_budget(abort, None, "writing")?;
            let base = done;
            writer
                .write_memory(&batch, &mut |p: WriteProgress| {
                    if let Some(bar) = &progress {
                        bar.set_position(base + p.done);
                    }
                })
                .map_err(format_err)?;
            done += batch_bytes;
        }
        if options.embed_exe {
            freeze::check_budget(abort, None, "writing")?;
            writer
                .write_file(FileRole::Executable, exe_path, exe_bytes)
                .map_err(format_err)?;
            if let Some(bar) = &progress {
                bar.set_position(memory_bytes + exe_len);
            }
        }
        let (_sink, stats) = writer.finish().map_err(format_err)?;
        Ok(stats.file_bytes)
    };
    let file_bytes = pre.output.write(&mut write);
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    file_bytes
}

fn make_progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "rdlv-snap: writing {bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start: u64, end: u64, perms: &str, flags: &[&str]) -> proc::MapsEntry {
        proc::MapsEntry {
            start,
            end,
            perms: perms.into(),
            offset: 0,
            dev: "00:00".into(),
            inode: 0,
            path: String::new(),
            vm_flags: flags.iter().map(|s| s.to_string()).collect(),
            anonymous_bytes: None,
        }
    }

    #[test]
    fn flags_are_reused_only_when_nothing_changed() {
        let before = vec![
            entry(0x1000, 0x2000, "rw-p", &["rd", "wr"]),
            entry(0x5000, 0x6000, "r--p", &["rd", "dd"]),
        ];
        let now = vec![
            entry(0x1000, 0x2000, "rw-p", &[]),
            entry(0x5000, 0x6000, "r--p", &[]),
        ];
        assert_eq!(reuse_flags(&now, &before).unwrap(), before);
        let grown = vec![
            entry(0x1000, 0x3000, "rw-p", &[]),
            entry(0x5000, 0x6000, "r--p", &[]),
        ];
        assert!(reuse_flags(&grown, &before).is_none());
        let added = vec![
            entry(0x1000, 0x2000, "rw-p", &[]),
            entry(0x3000, 0x4000, "rw-p", &[]),
        ];
        assert!(reuse_flags(&added, &before).is_none());
    }

    #[test]
    fn runs_are_cut_at_mapping_ends() {
        let plan = |start, end| MappingPlan {
            entry: entry(start, end, "rw-p", &[]),
            decision: Decision::Capture,
            ranges: Vec::new(),
        };
        let plans = [
            plan(0x1000, 0x3000),
            plan(0x3000, 0x5000),
            plan(0x8000, 0x9000),
        ];
        let run = |addr, offset, len, from_precopy| Run {
            addr,
            offset,
            len,
            from_precopy,
        };
        let runs = vec![
            run(0x2000, 0x100000, 0x3000, true),
            run(0x8000, 0, 0x1000, false),
        ];
        assert_eq!(
            split_at_mappings(runs, &plans),
            vec![
                run(0x2000, 0x100000, 0x1000, true),
                run(0x3000, 0x101000, 0x2000, true),
                run(0x8000, 0, 0x1000, false),
            ]
        );
    }

    #[test]
    fn failed_pages_are_cut_out_of_runs() {
        let r = |addr, len| PageRange { addr, len };
        let ranges = [r(0x1000, 0x4000), r(0x10000, 0x1000)];
        assert_eq!(
            runs_without_failures(&ranges, &[]),
            vec![
                Run {
                    addr: 0x1000,
                    offset: 0,
                    len: 0x4000,
                    from_precopy: false
                },
                Run {
                    addr: 0x10000,
                    offset: 0x4000,
                    len: 0x1000,
                    from_precopy: false
                }
            ]
        );
        assert_eq!(
            runs_without_failures(
                &ranges,
                &[r(0x2000, 0x1000), r(0x4000, 0x1000), r(0x10000, 0x1000)]
            ),
            vec![
                Run {
                    addr: 0x1000,
                    offset: 0,
                    len: 0x1000,
                    from_precopy: false
                },
                Run {
                    addr: 0x3000,
                    offset: 0x2000,
                    len: 0x1000,
                    from_precopy: false
                }
            ]
        );
        assert_eq!(
            runs_without_failures(&ranges, &[r(0x1000, 0x1000)]),
            vec![
                Run {
                    addr: 0x2000,
                    offset: 0x1000,
                    len: 0x3000,
                    from_precopy: false
                },
                Run {
                    addr: 0x10000,
                    offset: 0x4000,
                    len: 0x1000,
                    from_precopy: false
                }
            ]
        );
    }

    #[test]
    fn priority_boost_is_restored() {
        std::thread::spawn(|| {
            // SAFETY: plain syscalls on this thread.
            let tid = unsafe { libc::gettid() } as libc::id_t;
            let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
            let boost = PriorityBoost::new();
            let during = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
            if boost.raised {
                assert_eq!(during, PAUSE_NICE);
            } else {
                assert_eq!(during, before);
            }
            drop(boost);
            assert_eq!(
                unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) },
                before
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn untouched_executable_pages_come_from_the_file() {
        let exe = ExeIdentity {
            path: "/srv/app".into(),
            dev: (0xfd, 1),
            inode: 5,
        };
        let exe_bytes: Vec<u8> = (0..0x5800u32).map(|i| (i % 253) as u8 + 1).collect();
        let mut data = entry(0x10000, 0x15000, "rw-p", &["rd", "wr"]);
        data.offset = 0x2000;
        data.inode = 5;
        data.dev = "fd:01".into();
        data.path = "/srv/app".into();
        let mut anon = entry(0x20000, 0x22000, "rw-p", &["rd", "wr"]);
        anon.inode = 0;
        let plans = vec![
            MappingPlan {
                entry: data,
                decision: Decision::Capture,
                ranges: vec![PageRange {
                    addr: 0x11000,
                    len: 0x1000,
                }],
            },
            MappingPlan {
                entry: anon,
                decision: Decision::Capture,
                ranges: vec![],
            },
        ];
        let fill = executable_fill(&plans, &exe, &exe_bytes);
        let got: Vec<(u64, usize, bool)> = fill
            .iter()
            .map(|(addr, data)| (*addr, data.len(), matches!(data, Cow::Borrowed(_))))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x10000, 0x1000, true),
                (0x12000, 0x1000, true),
                (0x13000, 0x1000, false)
            ]
        );
        assert_eq!(&fill[0].1[..], &exe_bytes[0x2000..0x3000]);
        assert_eq!(&fill[1].1[..], &exe_bytes[0x4000..0x5000]);
        assert_eq!(&fill[2].1[..0x800], &exe_bytes[0x5000..0x5800]);
        assert!(fill[2].1[0x800..].iter().all(|b| *b == 0));
    }

    #[test]
    fn counts_zero_pages() {
        let mut data = vec![0u8; 3 * 4096 + 100];
        data[4096 + 7] = 1;
        assert_eq!(zero_page_bytes(&data), 2 * 4096 + 100);
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }

    const PATTERN_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

var payload []byte
var ticks atomic.Uint64

func main() {
	payload = make([]byte, 32<<20)
	for i := range payload {
		payload[i] = byte(i*7 + 3)
	}
	copy(payload, "RDLV-PATTERN")
	go func() {
		for {
			ticks.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	fmt.Printf("READY %d 0x%x 0x%x\n", os.Getpid(), uintptr(unsafe.Pointer(&payload[0])), uintptr(unsafe.Pointer(&ticks)))
	select {}
}
"#;

    fn expected_payload() -> Vec<u8> {
        let mut data: Vec<u8> = (0..32usize << 20)
            .map(|i| (i.wrapping_mul(7) + 3) as u8)
            .collect();
        data[..12].copy_from_slice(b"RDLV-PATTERN");
        data
    }

    fn read_u64(pid: u32, addr: u64) -> u64 {
        let mut value = [0u8; 8];
        let file = File::open(format!("/proc/{pid}/mem")).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut value, addr).unwrap();
        u64::from_ne_bytes(value)
    }

    struct Target {
        child: std::process::Child,
        pid: u32,
        payload: u64,
        ticks: u64,
    }

    impl Drop for Target {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn start_target() -> Target {
        start_target_built(crate::testutil::go_program("pattern", PATTERN_PROGRAM))
    }

    fn start_target_built(exe: std::path::PathBuf) -> Target {
        let mut child = std::process::Command::new(exe)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let line = crate::testutil::wait_ready(&mut child);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        Target {
            pid: fields[0].parse().unwrap(),
            payload: parse(fields[1]),
            ticks: parse(fields[2]),
            child,
        }
    }

    fn options(pid: u32, output: &std::path::Path) -> Options {
        Options {
            pid,
            output: output.to_string_lossy().into_owned(),
            force: false,
            max_pause: Duration::from_secs(5),
            embed_exe: true,
            level: 1,
            progress: false,
            cow: false,
            cow_max_extra: cow::DEFAULT_MAX_EXTRA,
            precopy: false,
            encryption: None,
        }
    }

    /// Full capture of a live Go process: the bytes it printed the address of
    /// are in the snapshot, the metadata describes it, and it keeps running.
    #[test]
    fn captures_a_live_go_process() {
        let target = start_target();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pattern.snap");
        let ticks_before = read_u64(target.pid, target.ticks);
        let summary = run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap();
        assert_eq!(summary.pid, target.pid);
        assert!(summary.threads >= 2);
        assert!(summary.bytes_captured >= 32 << 20);
        assert!(summary.pause_us > 0 && summary.pause_us >= summary.freeze_us);
        assert_eq!(summary.file_bytes, std::fs::metadata(&path).unwrap().len());

        let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
        let mut payload = vec![0u8; 32 << 20];
        snapshot.read_memory(target.payload, &mut payload).unwrap();
        assert!(payload == expected_payload(), "payload bytes differ");
        let meta = snapshot.metadata();
        assert_eq!(meta.process.pid, target.pid);
        assert_eq!(meta.threads.len(), summary.threads);
        assert!(meta
            .threads
            .iter()
            .all(|t| t.regs.rip != 0 && t.regs.fs_base != 0));
        assert!(meta.threads.iter().any(|t| t.tid == target.pid));
        assert!(meta
            .process
            .go_version
            .as_deref()
            .is_some_and(|v| v.starts_with("go1.")));
        assert!(meta.process.go_build_id.is_some());
        assert!(meta.auxv.iter().any(|(k, _)| *k == libc::AT_ENTRY));
        assert!(meta
            .mappings
            .iter()
            .any(|m| m.capture == MappingCapture::FromExecutable && m.perms.starts_with("r-x")));
        assert!(meta.mappings.iter().any(
            |m| matches!(&m.capture, MappingCapture::Skipped { reason } if reason == "[vvar]")
        ));
        assert!(meta.capture.clock_realtime_ns > 1_600_000_000_000_000_000);
        // The executable's data segment is complete, touched or not.
        let exe_data = meta
            .mappings
            .iter()
            .find(|m| m.path == meta.process.exe_path && m.perms == "rw-p")
            .expect("exe data mapping");
        let mut data = vec![0u8; (exe_data.end - exe_data.start) as usize];
        snapshot.read_memory(exe_data.start, &mut data).unwrap();
        let exe = snapshot
            .embedded_file(FileRole::Executable)
            .unwrap()
            .unwrap();
        assert!(exe == std::fs::read(format!("/proc/{}/exe", target.pid)).unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);

        // Still running: the ticker goroutine advances and no thread is traced.
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_u64(target.pid, target.ticks) > ticks_before);
        assert_eq!(proc::read_status(target.pid).unwrap().tracer_pid, 0);

        // A second capture to the same name is refused before anything stops.
        let err = run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap_err();
        assert!(matches!(err, CaptureError::Exists { .. }));
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
        let target = start_target();
        let dir = tempfile::tempdir().unwrap();
        let cow_path = dir.path().join("cow.snap");
        let mut cow_options = options(target.pid, &cow_path);
        cow_options.cow = true;
        let summary = run(&cow_options, &AtomicI32::new(0)).unwrap();
        assert_eq!(summary.method, "cow");
        assert_eq!(summary.cow_fallback, None);
        assert!(summary.fork_us > 0 && summary.fork_us <= summary.pause_us);
        assert!(summary.cow_extra_bytes.is_some_and(|b| b > 0));
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
        let mut fallback = options(target.pid, &plain_path);
        fallback.cow = true;
        fallback.cow_max_extra = 1;
        let summary = run(&fallback, &AtomicI32::new(0)).unwrap();
        assert_eq!(summary.method, "plain");
        assert!(summary
            .cow_fallback
            .as_deref()
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
        let mut cow_options = options(pid, &path);
        cow_options.cow = true;
        let result = run(&cow_options, &AtomicI32::new(0));
        let _ = child.kill();
        let _ = child.wait();
        let summary = result.unwrap();
        assert_eq!(summary.method, "cow");
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

    /// In a PIE, the RELRO segment is read-only but relocated: it must be
    /// copied, not taken from the file; the text still comes from the file.
    #[test]
    fn pie_relro_is_copied() {
        let exe =
            crate::testutil::go_program_with("pattern-pie", PATTERN_PROGRAM, &["-buildmode=pie"]);
        let target = start_target_built(exe);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pie.snap");
        run(&options(target.pid, &path), &AtomicI32::new(0)).unwrap();
        let snapshot = rdlv_format::Snapshot::open(&path).unwrap();
        let exe_maps: Vec<&Mapping> = snapshot
            .metadata()
            .mappings
            .iter()
            .filter(|m| m.path == snapshot.metadata().process.exe_path)
            .collect();
        assert!(exe_maps
            .iter()
            .any(|m| m.perms == "r-xp" && m.capture == MappingCapture::FromExecutable));
        let relro: Vec<&&Mapping> = exe_maps
            .iter()
            .filter(|m| m.perms == "r--p" && matches!(m.capture, MappingCapture::Captured { .. }))
            .collect();
        assert_eq!(relro.len(), 1, "{exe_maps:#?}");
        let mut probe = [0u8; 8];
        snapshot.read_memory(relro[0].start, &mut probe).unwrap();
    }

    /// An impossible pause budget aborts: error, no file, target resumed.
    #[test]
    fn pause_budget_aborts_cleanly() {
        let target = start_target();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("budget.snap");
        let mut opts = options(target.pid, &path);
        // Hopeless budgets are refused before anything stops.
        opts.max_pause = Duration::from_nanos(1);
        let err = run(&opts, &AtomicI32::new(0)).unwrap_err();
        assert!(
            matches!(err, CaptureError::PauseBudgetTooSmall { .. }),
            "{err}"
        );
        // 2.5 ms passes that check (32 MiB at 20 GB/s is 1.7 ms) but no real
        // copy of 32 MiB is that fast, so the capture stops and gives up.
        opts.max_pause = Duration::from_micros(2500);
        let err = run(&opts, &AtomicI32::new(0)).unwrap_err();
        assert!(matches!(err, CaptureError::PauseBudget { .. }), "{err}");
        assert!(err.to_string().contains("raise --max-pause"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let before = read_u64(target.pid, target.ticks);
        std::thread::sleep(Duration::from_millis(50));
        assert!(read_u64(target.pid, target.ticks) > before);
        assert_eq!(proc::read_status(target.pid).unwrap().tracer_pid, 0);
    }

    #[test]
    fn zombie_is_reported_as_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not yet reaped: /proc/PID exists but the process is a zombie.
        let start = Instant::now();
        while proc::read_status(pid).map(|s| s.state).ok() != Some('Z')
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &options(pid, &dir.path().join("z.snap")),
            &AtomicI32::new(0),
        )
        .unwrap_err();
        assert!(matches!(err, CaptureError::Exited { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        child.wait().unwrap();
    }

    #[test]
    fn missing_process_is_reported_before_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &options(u32::MAX - 1, &dir.path().join("x.snap")),
            &AtomicI32::new(0),
        )
        .unwrap_err();
        assert!(matches!(err, CaptureError::NoSuchProcess { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
