//! From what the stop copied to the file: the copied bytes as runs (failed
//! pages cut out, pre-copied pages placed, cut at mapping ends), the
//! metadata, the executable's untouched pages, then compression and the
//! write, after the target runs again.
//!
//! Invariant: runs are sorted, disjoint and each inside one mapping; the
//! snapshot is linked under its name only when complete, and verified.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::AtomicI32;

use rdlv_format::{
    CaptureInfo, FileRole, Mapping, MappingCapture, MemoryRegion, Metadata, PrecopyInfo,
    ProcessInfo, SnapshotWriter, ThreadInfo, WriteOptions, WriteProgress, X86Regs,
};

use crate::capture::{Method, Options};
use crate::error::{CaptureError, Result};
use crate::exeinfo::hex;
use crate::freeze;
use crate::pages::{self, Decision, ExeIdentity, MappingPlan, PageRange};
use crate::preflight::Preflight;
use crate::stop::Stopped;

/// Memory handed to the writer per call, so that signals are noticed while writing.
const WRITE_BATCH: u64 = 64 << 20;

/// What the written snapshot holds, for the summary.
pub struct Written {
    /// Bytes of target memory stored.
    pub bytes_captured: u64,
    /// Of those, bytes in all-zero pages.
    pub zero_bytes: u64,
    /// Size of the embedded executable (0 with `--no-exe`).
    pub exe_bytes: u64,
    /// Bytes of never-touched executable data pages stored from the file.
    pub exe_fill_bytes: u64,
    /// Bytes written to the output (the age file's with `--encrypt-to`).
    pub file_bytes: u64,
    /// Warnings recorded in the snapshot.
    pub warnings: Vec<String>,
}

/// Lays out what `stopped` copied, describes it and writes the snapshot
/// (the target runs again by now).
pub fn write(
    options: &Options,
    abort: &AtomicI32,
    pre: &mut Preflight,
    stopped: &Stopped,
) -> Result<Written> {
    let mut runs = runs_without_failures(&stopped.ranges, &stopped.outcome.failed);
    if !stopped.reused.is_empty() {
        runs.extend(stopped.reused.iter().copied());
        runs.sort_by_key(|run| run.addr);
    }
    // Range arithmetic merges touching pages of adjacent mappings; the
    // per-mapping facts need every run inside one mapping.
    let runs = split_at_mappings(runs, &stopped.plans);
    let metadata = describe(options.pid, pre, stopped, &runs);
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
    let file_bytes = write_snapshot(options, abort, pre, &exe_bytes, &metadata, &runs, &fill)?;
    Ok(Written {
        bytes_captured,
        zero_bytes,
        exe_bytes: exe_len,
        exe_fill_bytes,
        file_bytes,
        warnings,
    })
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
pub struct Run {
    /// Target address.
    pub addr: u64,
    /// Offset in its buffer.
    pub offset: usize,
    /// Bytes.
    pub len: u64,
    /// In the pre-copy buffer (else the copy buffer).
    pub from_precopy: bool,
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
    warnings.extend(stopped.warnings.iter().cloned());
    for thread in &stopped.stop.threads {
        if thread.exiting {
            warnings.push(format!("thread {} was exiting when captured", thread.tid));
        }
    }
    if stopped.stop.threads.iter().any(|t| t.group_stopped) {
        warnings.push(
            "the process was in job-control stop (SIGSTOP) before capture and stays stopped".into(),
        );
    }
    if !pre.scanner.uses_scan_ioctl() {
        warnings.push("PAGEMAP_SCAN unavailable: shared zero pages were copied as data".into());
    }
    if stopped.stop.state.smaps_reread {
        warnings.push(
            "mappings changed between pre-flight and stop; smaps was re-read while stopped".into(),
        );
    }
    if let Method::Plain(Some(fallback)) = &stopped.method {
        warnings.push(fallback.warning());
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
        .stop
        .threads
        .iter()
        .zip(
            stopped
                .stop
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
            clock_monotonic_ns: stopped.stop.state.clock_monotonic_ns,
            clock_realtime_ns: stopped.stop.state.clock_realtime_ns,
            pause_us: stopped.pause_us(),
            freeze_us: stopped.stop.report.freeze_us(),
            copy_us: stopped.stop.copy_us,
            method: stopped.method.name().into(),
            precopy: match &stopped.method {
                Method::Precopy(p) => Some(PrecopyInfo {
                    setup_pause_us: p.setup_pause_us,
                    precopy_bytes: p.precopy_bytes,
                    reused_bytes: p.reused_bytes,
                }),
                _ => None,
            },
            bytes_captured,
            warnings,
        },
        threads,
        mappings,
        auxv: stopped.stop.state.auxv.clone(),
        redaction: None,
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
    // The target runs again: compress below its priority, on a pool of our
    // own started from this (lowered) thread so that its workers inherit it.
    crate::nice::lower_for_compression(options.pid);
    let write_options = WriteOptions {
        level: options.level,
        threads: if options.threads > 0 {
            options.threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        },
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
    use crate::testutil::maps_entry as entry;

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
        let copied = |addr, offset, len| Run {
            addr,
            offset,
            len,
            from_precopy: false,
        };
        let ranges = [r(0x1000, 0x4000), r(0x10000, 0x1000)];
        assert_eq!(
            runs_without_failures(&ranges, &[]),
            vec![copied(0x1000, 0, 0x4000), copied(0x10000, 0x4000, 0x1000)]
        );
        assert_eq!(
            runs_without_failures(
                &ranges,
                &[r(0x2000, 0x1000), r(0x4000, 0x1000), r(0x10000, 0x1000)]
            ),
            vec![copied(0x1000, 0, 0x1000), copied(0x3000, 0x2000, 0x1000)]
        );
        assert_eq!(
            runs_without_failures(&ranges, &[r(0x1000, 0x1000)]),
            vec![
                copied(0x2000, 0x1000, 0x3000),
                copied(0x10000, 0x4000, 0x1000)
            ]
        );
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
}
