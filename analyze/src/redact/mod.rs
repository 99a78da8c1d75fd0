//! `rdlv redact`: a snapshot fit for a ticket, holding only what goroutine,
//! stack and scheduler analysis need.
//!
//! Why by construction: a filter that looks for secrets (key shapes, tokens,
//! "password") misses whatever it was not written for. Here the caller runs
//! the analyses the redacted file must answer on a [`Session`] that logs
//! every read ([`Session::record_reads`], [`crate::memory::ReadLog`]); the
//! kept memory is exactly the logged bytes that were captured, and every
//! other captured byte becomes a Redacted range (format 1.1), which reads as
//! an error and never as zeros. Nothing here looks at memory contents.
//!
//! Invariants:
//! - kept ∪ redacted = the original's captured ranges (Data, Zero and
//!   already Redacted), and the two are disjoint; the index tiles the same
//!   addresses as the original, so no address silently becomes "uncaptured"
//!   (which the session would read as zero fill in anonymous mappings);
//! - the kept bytes are copied from the original snapshot, so re-running the
//!   same analyses on the redacted file reads identical bytes;
//! - registers other than rip, rsp, rbp, fs_base and r14 (Go's g), the FP and
//!   vector state, the command line and auxv entries other than the loader's
//!   layout facts are dropped from the metadata.

pub mod keep;
pub mod keymaterial;

use std::io::Write;

use rdlv_format::{
    FileRole, KeptValue, MemoryRange, MemoryRegion, Metadata, RangeKind, Redaction, SnapshotWriter,
    WriteOptions, X86Regs,
};

use crate::error::Result;
use crate::session::Session;

/// auxv tags kept: where the executable, its program headers, the
/// interpreter and the vDSO were loaded, and the page size. Everything else
/// (AT_RANDOM, AT_EXECFN, AT_PLATFORM, the hardware capabilities, uids) goes.
const KEPT_AUXV: [u64; 7] = [
    3,  // AT_PHDR
    4,  // AT_PHENT
    5,  // AT_PHNUM
    6,  // AT_PAGESZ
    7,  // AT_BASE
    9,  // AT_ENTRY
    33, // AT_SYSINFO_EHDR
];

/// Kept bytes read from the original and handed to the writer at a time,
/// bounding the redactor's memory whatever the analyses read.
const BATCH_BYTES: u64 = 64 << 20;

/// What [`plan`] decided: `(addr, len)` runs, sorted and disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Captured runs that were read: copied to the redacted file.
    pub keep: Vec<(u64, u64)>,
    /// Every other captured run: Redacted ranges.
    pub redact: Vec<(u64, u64)>,
}

/// Figures of a written redacted snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedactStats {
    /// Kept memory runs.
    pub kept_ranges: u64,
    /// Bytes of memory kept.
    pub kept_bytes: u64,
    /// Captured bytes removed.
    pub redacted_bytes: u64,
    /// Size of the written file.
    pub file_bytes: u64,
}

/// Splits the captured ranges into kept and redacted runs. `read_runs` are
/// sorted, disjoint `(start, end)` runs (as [`crate::memory::ReadLog::runs`]
/// gives them); parts of them outside captured memory are ignored, and
/// ranges already redacted stay redacted. Adjacent runs of one outcome are
/// merged.
pub fn plan(captured: &[MemoryRange], read_runs: &[(u64, u64)]) -> Plan {
    let mut keep: Vec<(u64, u64)> = Vec::new();
    let mut redact: Vec<(u64, u64)> = Vec::new();
    let push = |v: &mut Vec<(u64, u64)>, s: u64, e: u64| {
        if e <= s {
            return;
        }
        match v.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => v.push((s, e)),
        }
    };
    let mut k = 0usize;
    for r in captured {
        let Some(end) = r.addr.checked_add(r.len) else {
            continue;
        };
        if r.kind == RangeKind::Redacted {
            push(&mut redact, r.addr, end);
            continue;
        }
        // Skip read runs that end before this range; they cannot matter to
        // any later range either (both lists are sorted).
        while k < read_runs.len() && read_runs[k].1 <= r.addr {
            k += 1;
        }
        let mut cur = r.addr;
        let mut j = k;
        while j < read_runs.len() && read_runs[j].0 < end {
            let s = read_runs[j].0.max(cur);
            let e = read_runs[j].1.min(end);
            if s > cur {
                push(&mut redact, cur, s);
            }
            if e > s {
                push(&mut keep, s, e);
                cur = e;
            }
            j += 1;
        }
        push(&mut redact, cur, end);
    }
    let to_len = |v: Vec<(u64, u64)>| v.into_iter().map(|(s, e)| (s, e - s)).collect();
    Plan {
        keep: to_len(keep),
        redact: to_len(redact),
    }
}

/// The registers the unwinder and the thread list read; the rest are zero.
pub fn redact_regs(r: &X86Regs) -> X86Regs {
    X86Regs {
        rip: r.rip,
        rsp: r.rsp,
        rbp: r.rbp,
        fs_base: r.fs_base,
        r14: r.r14,
        ..X86Regs::default()
    }
}

/// The original metadata minus what a ticket should not carry (see the
/// module docs), plus the [`Redaction`] record.
pub fn redact_metadata(meta: &Metadata, redaction: Redaction) -> Metadata {
    let mut m = meta.clone();
    m.process.cmdline = Vec::new();
    m.auxv.retain(|(k, _)| KEPT_AUXV.contains(k));
    for t in &mut m.threads {
        t.regs = redact_regs(&t.regs);
        t.fpregs_hex = String::new();
    }
    m.redaction = Some(redaction);
    m
}

/// Writes the redacted snapshot of `session` to `out`, keeping the captured
/// bytes in `read_runs` (sorted, disjoint `(start, end)`) and those of the
/// `kept` values, and the embedded executable (or the one the session was
/// opened with). `analyses` names what was run to produce `read_runs`, for
/// the metadata.
pub fn write_redacted<W: Write>(
    session: &Session,
    read_runs: &[(u64, u64)],
    analyses: &[String],
    kept: &[keep::Kept],
    out: W,
) -> Result<(W, RedactStats)> {
    let snapshot = session.snapshot();
    let mut runs = read_runs.to_vec();
    for k in kept {
        runs.extend_from_slice(&k.runs);
    }
    let runs = crate::memory::merge_intervals(runs);
    let plan = plan(snapshot.memory_ranges(), &runs);
    let kept_bytes: u64 = plan.keep.iter().map(|r| r.1).sum();
    let redacted_bytes: u64 = plan.redact.iter().map(|r| r.1).sum();
    let redaction = Redaction {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        analyses: analyses.to_vec(),
        kept_ranges: plan.keep.len() as u64,
        kept_bytes,
        redacted_bytes,
        kept_globals: kept.iter().map(|k| k.expr.clone()).collect(),
        kept_values: kept
            .iter()
            .map(|k| KeptValue {
                expr: k.expr.clone(),
                type_name: k.type_name.clone(),
                addr: k.addr,
                deep: k.deep,
                bytes: k.bytes,
                truncated: k.truncated.clone(),
            })
            .collect(),
    };
    let meta = redact_metadata(snapshot.metadata(), redaction);
    let mut w = SnapshotWriter::new_redacted(out, WriteOptions::default())?;
    w.write_metadata(&meta)?;

    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0u64;
    let flush = |w: &mut SnapshotWriter<W>, batch: &mut Vec<(u64, Vec<u8>)>| -> Result<()> {
        let regions: Vec<MemoryRegion<'_>> = batch
            .iter()
            .map(|(addr, data)| MemoryRegion { addr: *addr, data })
            .collect();
        w.write_memory(&regions, &mut |_| {})?;
        batch.clear();
        Ok(())
    };
    for &(addr, len) in &plan.keep {
        // Each kept run lies inside one or more touching captured ranges,
        // so it reads whole; a run longer than a batch is cut.
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(BATCH_BYTES);
            let mut buf = vec![0u8; n as usize];
            snapshot.read_memory(addr + done, &mut buf)?;
            batch.push((addr + done, buf));
            batch_bytes += n;
            done += n;
            if batch_bytes >= BATCH_BYTES {
                flush(&mut w, &mut batch)?;
                batch_bytes = 0;
            }
        }
    }
    flush(&mut w, &mut batch)?;
    w.write_redacted(&plan.redact)?;

    let exe_name = snapshot
        .embedded_files()
        .into_iter()
        .find(|f| f.role == FileRole::Executable)
        .map(|f| f.name)
        .unwrap_or_else(|| snapshot.metadata().process.exe_path.clone());
    w.write_file(FileRole::Executable, &exe_name, session.binary().data()?)?;
    let (out, ws) = w.finish()?;
    Ok((
        out,
        RedactStats {
            kept_ranges: plan.keep.len() as u64,
            kept_bytes,
            redacted_bytes,
            file_bytes: ws.file_bytes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(addr: u64, len: u64, kind: RangeKind) -> MemoryRange {
        MemoryRange { addr, len, kind }
    }

    #[test]
    fn plan_tiles_the_captured_ranges_exactly() {
        let captured = [
            range(0x1000, 0x1000, RangeKind::Data),
            range(0x2000, 0x1000, RangeKind::Zero),
            range(0x5000, 0x100, RangeKind::Data),
            range(0x6000, 0x10, RangeKind::Redacted),
        ];
        // A run across the Data/Zero boundary, one outside everything, one
        // spilling past a range's end, one inside an already redacted range.
        let reads = [
            (0x0800, 0x1010),
            (0x1ff0, 0x2010),
            (0x3000, 0x4000),
            (0x50f0, 0x5200),
            (0x6000, 0x6008),
        ];
        let p = plan(&captured, &reads);
        assert_eq!(p.keep, vec![(0x1000, 0x10), (0x1ff0, 0x20), (0x50f0, 0x10)]);
        assert_eq!(
            p.redact,
            vec![
                (0x1010, 0xfe0),
                (0x2010, 0xff0),
                (0x5000, 0xf0),
                (0x6000, 0x10)
            ]
        );
        // Kept and redacted tile the captured bytes.
        let total: u64 = p.keep.iter().chain(&p.redact).map(|r| r.1).sum();
        assert_eq!(total, 0x1000 + 0x1000 + 0x100 + 0x10);
    }

    #[test]
    fn plan_without_reads_redacts_everything_and_with_all_reads_keeps_everything() {
        let captured = [
            range(0x1000, 0x10, RangeKind::Data),
            range(0x1010, 0x10, RangeKind::Zero),
        ];
        assert_eq!(
            plan(&captured, &[]),
            Plan {
                keep: vec![],
                redact: vec![(0x1000, 0x20)]
            }
        );
        assert_eq!(
            plan(&captured, &[(0, u64::MAX)]),
            Plan {
                keep: vec![(0x1000, 0x20)],
                redact: vec![]
            }
        );
    }

    #[test]
    fn metadata_keeps_only_the_unwinders_registers_and_layout_auxv() {
        let mut meta = Metadata::default();
        meta.process.cmdline = vec!["svc".into(), "--password=hunter2".into()];
        meta.auxv = vec![
            (9, 0x401000),
            (25, 0x7ffd_0000),
            (31, 0x7ffd_1000),
            (6, 4096),
        ];
        meta.threads.push(rdlv_format::ThreadInfo {
            tid: 1,
            regs: X86Regs {
                rip: 1,
                rsp: 2,
                rbp: 3,
                fs_base: 4,
                r14: 5,
                rax: 0xdead,
                rdi: 0xbeef,
                ..X86Regs::default()
            },
            fpregs_hex: "00ff".into(),
            ..Default::default()
        });
        let m = redact_metadata(&meta, Redaction::default());
        assert!(m.process.cmdline.is_empty());
        assert_eq!(m.auxv, vec![(9, 0x401000), (6, 4096)]);
        let r = &m.threads[0].regs;
        assert_eq!((r.rip, r.rsp, r.rbp, r.fs_base, r.r14), (1, 2, 3, 4, 5));
        assert_eq!((r.rax, r.rdi), (0, 0));
        assert!(m.threads[0].fpregs_hex.is_empty());
        assert!(m.redaction.is_some());
    }
}
