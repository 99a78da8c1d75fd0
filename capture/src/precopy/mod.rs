//! Pre-copy capture (`--precopy`): the target's memory is copied while it
//! runs, with the kernel recording which pages it writes meanwhile; the
//! freeze then copies only the pages written since, and the rest of the
//! snapshot comes from the pre-copy. The pause shrinks from "copy every
//! page" to "copy the pages written during the pre-copy".
//!
//! # How writes are tracked
//!
//! userfaultfd write protection in asynchronous mode (`UFFD_FEATURE_WP_ASYNC`,
//! Linux 6.7): a write to a protected page is resolved inside the kernel,
//! which drops the page's protection bit; no handler runs and the writer
//! never waits. `PAGEMAP_SCAN` reports every page whose bit is gone as
//! `PAGE_IS_WRITTEN`. (Soft-dirty bits would do the same without a
//! userfaultfd, but they need `CONFIG_MEM_SOFT_DIRTY`, which common
//! distribution kernels, and this machine's, leave out.)
//!
//! A userfaultfd always belongs to the memory of the process that created
//! it, so the target has to create it: during a first, short freeze, one
//! thread parked in Go's futex stub runs
//! `userfaultfd(UFFD_USER_MODE_ONLY | O_CLOEXEC | O_NONBLOCK)` (injected as
//! `--cow` injects its fork, see `cow.rs`), we take a duplicate with
//! `pidfd_getfd` and make the target `close` its own descriptor, and the
//! target runs again. From then on only our descriptor holds the
//! userfaultfd: however rdlv-snap ends (even SIGKILL), the kernel releases
//! it, which unregisters every range and clears every protection bit.
//! Should rdlv-snap die between the injected `userfaultfd()` and `close()`
//! (microseconds), the target keeps an idle descriptor (nothing is ever
//! registered through it); the [`crate::sentinel`], told of each step,
//! then closes it through the same kind of injection.
//! While it lives, the first write to each protected page costs the target
//! one minor fault (about a microsecond).
//!
//! Only private anonymous mappings are protected (the Go heap, goroutine
//! stacks, `[heap]`): shared mappings can change through another process's
//! mapping, and pages of private file mappings not yet copied on write can
//! change with the file, neither through the target's page tables, where
//! the protection lives. Everything else is copied during the freeze, as in
//! the plain capture.
//!
//! # Which pre-copied pages are used
//!
//! At the final freeze a page's pre-copied bytes are used only when it lies
//! in a protected range, its pre-copy read succeeded, and it is now present,
//! still protected (not `PAGE_IS_WRITTEN`) and not the shared zero page.
//! The protection was applied before the pre-copy read it, and every write
//! through the target's page tables removes it first, so a protected page
//! holds the bytes the pre-copy read. Pages the kernel moved or replaced
//! (mremap, MADV_DONTNEED then a fault) come back unprotected and are copied
//! again; a zero page mapped after MADV_DONTNEED is recognised by
//! `PAGE_IS_PFNZERO`.
//!
//! Limit: memory that a device or the kernel writes through a page pinned
//! *before* the protection was applied (an O_DIRECT read or io_uring fixed
//! buffer in flight, RDMA) bypasses the page tables and is not seen as
//! written. Use the plain capture for such processes.

mod track;

use std::sync::atomic::AtomicI32;
use std::time::Instant;

use crate::capture::{Fallback, Method, Options, Requested};
use crate::copy;
use crate::error::{CaptureError, Result};
use crate::freeze::duration_us;
use crate::nice::Nice;
use crate::pages::{self, Decision, PageRange};
use crate::preflight::{map_proc_err, Preflight, BUFFER_SLACK_MIN};
use crate::proc;
use crate::sentinel::Sentinel;
use crate::snapshot::Run;
use crate::stop::{self, Held, Stopped};

pub use track::{
    close_leftover_userfaultfd, trackable, Layout, Leftover, LeftoverFd, PendingInjection,
    WriteTracker,
};

/// Pre-copies at least this large are announced on a terminal.
const PRECOPY_NOTICE_BYTES: u64 = 1 << 30;

/// What a pre-copy capture measured.
#[derive(Debug, Clone, Default)]
pub struct PrecopyStats {
    /// Microseconds of the set-up stop(s), included in `pause_us`.
    pub setup_pause_us: u64,
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
    tracker: &mut WriteTracker,
    mut buffer: Vec<u8>,
    abort: &AtomicI32,
    progress: bool,
) -> std::result::Result<Precopied, (CaptureError, Vec<u8>)> {
    let maps = match proc::read_smaps(pid) {
        Ok(maps) => maps,
        Err(e) => return Err((map_proc_err(pid, "read /proc/PID/smaps", e), buffer)),
    };
    for entry in &maps {
        if pages::classify(entry, &pre.exe_identity) == Decision::Capture && trackable(entry) {
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
    if let Err(error) = stop::planned_ranges_fit(&ranges, &mut buffer) {
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
    let source = copy::Source {
        pid,
        mem: Some(&pre.mem),
        abort,
        deadline: None,
    };
    match copy::copy_ranges(&source, &ranges, &mut buffer) {
        Ok(outcome) => Ok(Precopied {
            readable: pages::subtract_ranges(&ranges, &outcome.failed),
            ranges,
            buffer,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }),
        Err(error) => Err((error, buffer)),
    }
}

/// The `--precopy` capture (see the module docs): a short stop to take over a
/// userfaultfd of the target, then, with the target running, write
/// protection of its private anonymous mappings and a copy of their existing
/// pages; then the real stop, which copies everything else plus the pages
/// written since they were protected. `Ok(Err(_))` means the pre-copy could
/// not be used and nothing is left changed in the target: the caller falls
/// back to the plain copy.
pub fn stop_and_precopy(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
) -> Result<std::result::Result<Stopped, Fallback>> {
    let pid = options.pid;
    if !pre.scanner.uses_scan_ioctl() {
        return Ok(Err(Fallback {
            from: Requested::Precopy,
            reason: "finding written pages needs the PAGEMAP_SCAN ioctl (Linux 6.7+)".into(),
            pause_us: 0,
        }));
    }
    // Closes the target's userfaultfd descriptor should this process die
    // between the injected userfaultfd() and close().
    let mut sentinel = Sentinel::spawn(pid);
    let (attached, attach_pause_us) = WriteTracker::attach(
        pid,
        options.max_pause,
        abort,
        &pre.hints,
        sentinel.as_mut().ok(),
    );
    let mut warnings = Vec::new();
    match sentinel {
        Ok(sentinel) if attached.is_ok() => sentinel.finish(),
        // An injection that failed half-way may have left the descriptor:
        // closing the pipe without `done` has the sentinel close it, and
        // waits for it (the target is running again; we freeze it next).
        Ok(sentinel) => drop(sentinel),
        Err(error) => warnings.push(format!(
            "pre-copy: no sentinel ({error}): had rdlv-snap died between the injected userfaultfd() and close(), the target would have kept an idle userfaultfd descriptor"
        )),
    }
    let mut tracker = match attached {
        Ok(tracker) => tracker,
        Err(error) if error.falls_back() => {
            return Ok(Err(Fallback {
                from: Requested::Precopy,
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
                return Ok(Err(Fallback {
                    from: Requested::Precopy,
                    reason: format!("the copy while running failed: {error}"),
                    pause_us: attach_pause_us,
                }));
            }
        };
    let tracked_bytes: u64 = tracker.tracked().iter().map(|r| r.len).sum();
    let precopy_bytes: u64 = precopied.ranges.iter().map(|r| r.len).sum();
    let precopy_ms = precopied.ms;
    let layout = Layout::of(&precopied.ranges);
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

    let _boost = Nice::boost_this_thread();
    let mut held = Held::freeze(options, abort, pre)?;
    // smaps re-read now shows our registration (`uw`): the snapshot
    // describes the target, not the capture's instrument.
    for entry in &mut held.state.maps {
        if entry.vm_flags.iter().any(|flag| flag == "uw")
            && pages::overlaps(tracker.tracked(), entry.start, entry.end)
        {
            entry.vm_flags.retain(|flag| flag != "uw");
        }
    }
    let mut unwritten = Vec::new();
    let plans = pages::plan_with_unwritten(
        &held.state.maps,
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
    stop::planned_ranges_fit(&ranges, &mut pre.buffer)?;
    held.planned();

    let source = held.source(&pre.mem, abort);
    let (in_place_outcome, outcome) = held.copy(|| {
        let in_place = copy::copy_placed(&source, &in_place, &mut pre.precopy)?;
        Ok((
            in_place,
            copy::copy_ranges(&source, &ranges, &mut pre.buffer)?,
        ))
    })?;
    let resumed = held.resume();
    // Running again; write tracking ends (every page unprotected).
    let teardown_started = Instant::now();
    drop(tracker);
    let teardown_us = duration_us(teardown_started.elapsed());

    let reused_bytes: u64 = reusable.iter().map(|r| r.len).sum();
    let in_place: Vec<PageRange> = in_place.iter().map(|(range, _)| *range).collect();
    let from_precopy = pages::union_ranges(
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
    let stats = PrecopyStats {
        setup_pause_us: attach_pause_us,
        tracked_bytes,
        precopy_bytes,
        precopy_ms,
        reused_bytes,
        teardown_us,
    };
    let mut stopped = resumed.with(plans, ranges, outcome, Method::Precopy(stats));
    stopped.reused = reused;
    stopped.warnings.extend(warnings);
    Ok(Ok(stopped))
}
