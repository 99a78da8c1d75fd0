//! The stop every method shares, and the plain capture built from it:
//! freeze every thread, read registers, clocks, maps and auxv, copy, resume.
//!
//! Invariant: while a [`Frozen`] guard lives the target is stopped; every
//! error path drops it (which detaches every thread) before returning, and
//! nothing here compresses or writes: that starts after the resume.

use std::fs::File;
use std::sync::atomic::AtomicI32;
use std::time::Instant;

use crate::capture::{Method, Options};
use crate::copy::{self, CopyOutcome};
use crate::error::{CaptureError, Result};
use crate::freeze::{self, duration_us, Frozen};
use crate::nice::Nice;
use crate::pages::{self, MappingPlan, PageRange};
use crate::preflight::{map_proc_err, Preflight};
use crate::proc;
use crate::snapshot::Run;

/// A stop in progress: every thread frozen, the state read, the pause
/// budget running. Dropping it (on any error) resumes the target.
pub struct Held {
    pid: u32,
    frozen: Frozen,
    /// Registers, clocks, maps and auxv read at the stop.
    pub state: FrozenState,
    /// From the first interrupt, `--max-pause`.
    pub deadline: Option<(Instant, Instant)>,
    plan_us: u64,
    copy_us: u64,
}

impl Held {
    /// Freezes the target and reads what every method needs.
    pub fn freeze(options: &Options, abort: &AtomicI32, pre: &Preflight) -> Result<Held> {
        let frozen = Frozen::freeze(options.pid, options.max_pause, abort, &pre.hints)?;
        let state = read_frozen_state(options.pid, &frozen, pre)?;
        let deadline = frozen
            .first_interrupt()
            .map(|start| (start, start + options.max_pause));
        Ok(Held {
            pid: options.pid,
            frozen,
            state,
            deadline,
            plan_us: 0,
            copy_us: 0,
        })
    }

    /// The frozen threads (for injections).
    pub fn frozen(&self) -> &Frozen {
        &self.frozen
    }

    /// Marks the end of planning (`plan_us` runs from the maps' re-read).
    pub fn planned(&mut self) {
        self.plan_us = duration_us(self.state.plan_started.elapsed());
    }

    /// Where this stop's copies read from, within its deadline.
    pub fn source<'a>(&self, mem: &'a File, abort: &'a AtomicI32) -> copy::Source<'a> {
        copy::Source {
            pid: self.pid,
            mem: Some(mem),
            abort,
            deadline: self.deadline,
        }
    }

    /// Runs the copy `work` of this stop, timing it as `copy_us`.
    pub fn copy<T>(&mut self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let started = Instant::now();
        let result = work();
        self.copy_us += duration_us(started.elapsed());
        result
    }

    /// Resumes every thread.
    pub fn resume(self) -> Resumed {
        let threads = self.frozen.threads().to_vec();
        let started = Instant::now();
        let report = self.frozen.resume();
        Resumed {
            state: self.state,
            threads,
            report,
            plan_us: self.plan_us,
            copy_us: self.copy_us,
            resume_us: duration_us(started.elapsed()),
        }
    }
}

/// A stop that ended: what was read in it and its timing.
pub struct Resumed {
    /// Registers, clocks, maps and auxv read at the stop.
    pub state: FrozenState,
    /// The threads stopped, in stop order.
    pub threads: Vec<freeze::StoppedThread>,
    /// Timing of the stop.
    pub report: freeze::ResumeReport,
    /// Microseconds re-reading maps and planning inside the stop.
    pub plan_us: u64,
    /// Microseconds of the copy inside the stop.
    pub copy_us: u64,
    /// Microseconds detaching.
    pub resume_us: u64,
}

impl Resumed {
    /// The capture's result: this stop, what was copied (`ranges` back to
    /// back in the copy buffer, the failures in `outcome`), and the method.
    pub fn with(
        self,
        plans: Vec<MappingPlan>,
        ranges: Vec<PageRange>,
        outcome: CopyOutcome,
        method: Method,
    ) -> Stopped {
        Stopped {
            stop: self,
            plans,
            ranges,
            outcome,
            method,
            reused: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// Everything collected while the target was stopped.
pub struct Stopped {
    /// The stop itself.
    pub stop: Resumed,
    /// What was decided for every mapping.
    pub plans: Vec<MappingPlan>,
    /// The ranges copied into the copy buffer, back to back in this order.
    pub ranges: Vec<PageRange>,
    /// Pages that could not be read, and how.
    pub outcome: CopyOutcome,
    /// The method used, with its figures.
    pub method: Method,
    /// `--precopy`: runs taken from the pre-copy buffer (sorted).
    pub reused: Vec<Run>,
    /// Warnings of the method (for the snapshot and the summary).
    pub warnings: Vec<String>,
}

impl Stopped {
    /// Microseconds the target was stopped for the capture: the stop itself,
    /// plus earlier, shorter stops (`--precopy`'s set-up stop, also when it
    /// then fell back to the plain copy).
    pub fn pause_us(&self) -> u64 {
        self.stop.report.pause_us() + self.method.setup_pause_us()
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

/// What is read from the target right after every thread stopped, the same
/// for every capture method.
pub struct FrozenState {
    /// CLOCK_MONOTONIC right after the stop.
    pub clock_monotonic_ns: u64,
    /// CLOCK_REALTIME right after the stop.
    pub clock_realtime_ns: u64,
    /// Registers of every stopped thread, in stop order.
    pub regs: Vec<freeze::ThreadRegs>,
    /// Microseconds reading them.
    pub regs_us: u64,
    /// When planning (maps under the stop) began, for `plan_us`.
    pub plan_started: Instant,
    /// The maps at the stop, with VmFlags.
    pub maps: Vec<proc::MapsEntry>,
    /// The maps changed since pre-flight, so smaps was read in the stop.
    pub smaps_reread: bool,
    /// The target's auxiliary vector.
    pub auxv: Vec<(u64, u64)>,
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

/// Every range the plans copy, in order, with `buffer` grown to hold them.
pub fn planned_ranges(plans: &[MappingPlan], buffer: &mut Vec<u8>) -> Result<Vec<PageRange>> {
    let ranges: Vec<PageRange> = plans
        .iter()
        .flat_map(|p| p.ranges.iter().copied())
        .collect();
    planned_ranges_fit(&ranges, buffer)?;
    Ok(ranges)
}

/// Grows `buffer` to hold `ranges` back to back.
pub fn planned_ranges_fit(ranges: &[PageRange], buffer: &mut Vec<u8>) -> Result<()> {
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

/// The plain capture: stops the target, reads registers, maps and memory,
/// and resumes it. On any error the [`Held`] stop resumes the target
/// before returning.
pub fn stop_and_copy(options: &Options, abort: &AtomicI32, pre: &mut Preflight) -> Result<Stopped> {
    // Copy threads spawned while this is alive inherit the priority.
    let _boost = Nice::boost_this_thread();
    let mut held = Held::freeze(options, abort, pre)?;
    let plans = pages::plan(&held.state.maps, &pre.exe_identity, &mut pre.scanner)?;
    let ranges = planned_ranges(&plans, &mut pre.buffer)?;
    held.planned();
    let source = held.source(&pre.mem, abort);
    let outcome = held.copy(|| copy::copy_ranges(&source, &ranges, &mut pre.buffer))?;
    Ok(held
        .resume()
        .with(plans, ranges, outcome, Method::Plain(None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::maps_entry as entry;

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
}
