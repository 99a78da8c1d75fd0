//! An ELF core file from a snapshot, for `dlv core EXE core` and `gdb EXE core`.
//!
//! Why by hand: the layout is small and fixed (ELF64 little-endian, x86-64),
//! and an explicit byte layout keeps the writer streaming: headers and notes
//! are built in memory (a few KiB per thread), memory is copied range by
//! range from the snapshot straight to its place in the file with
//! positional writes, in parallel, never holding the image.
//!
//! File layout (all little-endian, offsets from the start of the file):
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 64 | ELF header: `e_type = ET_CORE (4)`, `e_machine = EM_X86_64 (62)`, `e_phoff = 64`, `e_phentsize = 56`, `e_phnum` = 1 + mappings |
//! | 64 | 56 × phnum | program headers: PT_NOTE first (Delve reads only the first), then one PT_LOAD per mapping in address order |
//! | after them | notes | NT_PRPSINFO, NT_AUXV, NT_FILE, then per thread NT_PRSTATUS (+ NT_X86_XSTATE when captured) |
//! | page aligned | memsz each | segment bytes, in PT_LOAD order |
//!
//! Note records are `namesz u32, descsz u32, type u32, name (NUL, padded to
//! 4), desc (padded to 4)`. NT_PRSTATUS is the kernel's 336-byte `struct
//! elf_prstatus`: `pr_pid` at 32, the 27 registers of `user_regs_struct`
//! (fs_base included) at 112, `pr_fpvalid` at 328. NT_PRPSINFO is the
//! 136-byte `struct elf_prpsinfo` (`pr_pid` at 24, `pr_fname` at 40,
//! `pr_psargs` at 56).
//!
//! Invariants: every PT_LOAD has `p_filesz == p_memsz` (Delve reads no
//! zero-fill tail) except mappings the capture skipped, which get
//! `p_filesz = 0` as the kernel writes them; pages the snapshot has as zero,
//! or never had (untouched anonymous memory), are file holes, so the core is
//! sparse; bytes of file-backed mappings of the executable that were not
//! copied come from the embedded executable, so the core stands alone
//! (text of a PIE included). NT_FILE lists only mappings of the
//! executable: Delve maps every NT_FILE entry onto the executable file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use rdlv_format::{Mapping, MappingCapture, RangeKind};

use crate::error::{BinaryError, Corrupt, Result, Unsupported};
use crate::Target;

/// ELF header size.
const EHDR_LEN: u64 = 64;
/// Program header size.
const PHDR_LEN: u64 = 56;
/// `ET_CORE`.
const ET_CORE: u16 = 4;
/// `EM_X86_64`.
const EM_X86_64: u16 = 62;
/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
const PT_NOTE: u32 = 4;
/// Segment permission bits.
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
/// Note types.
const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_FILE: u32 = 0x4649_4c45;
const NT_X86_XSTATE: u32 = 0x202;
/// Size of `struct elf_prstatus` on x86-64.
const PRSTATUS_LEN: usize = 336;
/// Offset of `pr_pid` in `elf_prstatus`.
const PRSTATUS_PID: usize = 32;
/// Offset of `pr_ppid`.
const PRSTATUS_PPID: usize = 36;
/// Offset of `pr_reg` (27 × u64).
const PRSTATUS_REGS: usize = 112;
/// Offset of `pr_fpvalid`.
const PRSTATUS_FPVALID: usize = 328;
/// Size of `struct elf_prpsinfo` on x86-64.
const PRPSINFO_LEN: usize = 136;
/// Size of the legacy FXSAVE area: an XSAVE image is longer.
const FXSAVE_LEN: usize = 512;
/// Bound on a thread's captured FP state (XSAVE with AVX-512 is ~2.7 KiB).
const MAX_XSTATE_LEN: usize = 64 << 10;
/// Largest program header count `e_phnum` holds without PN_XNUM.
const MAX_PHNUM: usize = 0xfffe;
/// Page alignment of segment data.
const PAGE: u64 = 4096;
/// Bytes copied by one job: bounds the buffer each worker holds.
const COPY_JOB: u64 = 4 << 20;

/// What `export core` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// Threads (NT_PRSTATUS notes).
    pub threads: usize,
    /// PT_LOAD segments.
    pub segments: usize,
    /// Apparent file size.
    pub file_bytes: u64,
    /// Bytes actually written into segments (the rest are holes).
    pub data_bytes: u64,
}

/// One piece of segment data and where it comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Captured memory at this address.
    Snapshot(u64),
    /// The embedded executable at this file offset.
    Exe(u64),
}

#[derive(Debug, Clone, Copy)]
struct Job {
    file_off: u64,
    len: u64,
    source: Source,
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    if let Some(d) = b.get_mut(off..off + 2) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}
fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(d) = b.get_mut(off..off + 4) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}
fn put_u64(b: &mut [u8], off: usize, v: u64) {
    if let Some(d) = b.get_mut(off..off + 8) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

fn align(v: u64, to: u64) -> u64 {
    v.div_ceil(to).saturating_mul(to)
}

/// Appends one note record.
fn note(out: &mut Vec<u8>, name: &str, ty: u32, desc: &[u8]) {
    let namesz = name.len() as u32 + 1;
    out.extend_from_slice(&namesz.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(desc);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The NT_PRSTATUS payload of one thread.
fn prstatus(t: &rdlv_format::ThreadInfo, ppid: u32, fpvalid: bool) -> Vec<u8> {
    let mut b = vec![0u8; PRSTATUS_LEN];
    put_u32(&mut b, PRSTATUS_PID, t.tid);
    put_u32(&mut b, PRSTATUS_PPID, ppid);
    let r = &t.regs;
    let regs = [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ];
    for (i, v) in regs.iter().enumerate() {
        put_u64(&mut b, PRSTATUS_REGS + 8 * i, *v);
    }
    put_u32(&mut b, PRSTATUS_FPVALID, u32::from(fpvalid));
    b
}

/// The NT_PRPSINFO payload.
fn prpsinfo(meta: &rdlv_format::Metadata) -> Vec<u8> {
    let mut b = vec![0u8; PRPSINFO_LEN];
    let p = &meta.process;
    b[1] = b'S';
    put_u32(&mut b, 16, p.uid);
    put_u32(&mut b, 20, p.gid);
    put_u32(&mut b, 24, p.pid);
    put_u32(&mut b, 28, p.ppid);
    let exe = p.exe_path.trim_end_matches(" (deleted)");
    let fname = exe.rsplit('/').next().unwrap_or(exe).as_bytes();
    let n = fname.len().min(15);
    b[40..40 + n].copy_from_slice(&fname[..n]);
    let args = p.cmdline.join(" ");
    let args = args.as_bytes();
    let n = args.len().min(79);
    b[56..56 + n].copy_from_slice(&args[..n]);
    b
}

/// Decodes a thread's captured FP state (hex), bounded.
fn fp_state(t: &rdlv_format::ThreadInfo) -> Result<Vec<u8>> {
    let hex = t.fpregs_hex.as_bytes();
    if !hex.len().is_multiple_of(2) || hex.len() / 2 > MAX_XSTATE_LEN {
        return Err(Corrupt::Thread {
            tid: t.tid,
            detail: format!(
                "FP register state of {} hex digits (odd or over {MAX_XSTATE_LEN} bytes)",
                hex.len()
            ),
        }
        .into());
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks_exact(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(Corrupt::Thread {
                tid: t.tid,
                detail: "FP register state is not hex".to_string(),
            }
            .into()),
        })
        .collect()
}

fn is_exe_mapping(m: &Mapping, exe: &str) -> bool {
    matches!(m.capture, MappingCapture::FromExecutable) || (!exe.is_empty() && m.path == exe)
}

/// All notes of the core.
fn notes(target: &Target) -> Result<Vec<u8>> {
    let meta = target.snapshot().metadata();
    let mut out = Vec::new();
    note(&mut out, "CORE", NT_PRPSINFO, &prpsinfo(meta));
    let mut auxv = Vec::with_capacity(meta.auxv.len() * 16 + 16);
    for (k, v) in meta.auxv.iter().chain(std::iter::once(&(0, 0))) {
        auxv.extend_from_slice(&k.to_le_bytes());
        auxv.extend_from_slice(&v.to_le_bytes());
    }
    note(&mut out, "CORE", NT_AUXV, &auxv);
    let exe = meta.process.exe_path.trim_end_matches(" (deleted)");
    let files: Vec<&Mapping> = meta
        .mappings
        .iter()
        .filter(|m| is_exe_mapping(m, exe) && m.inode != 0)
        .collect();
    let page = if meta.capture.page_size == 0 {
        PAGE
    } else {
        meta.capture.page_size
    };
    let mut nt_file = Vec::new();
    nt_file.extend_from_slice(&(files.len() as u64).to_le_bytes());
    nt_file.extend_from_slice(&page.to_le_bytes());
    for m in &files {
        nt_file.extend_from_slice(&m.start.to_le_bytes());
        nt_file.extend_from_slice(&m.end.to_le_bytes());
        nt_file.extend_from_slice(&(m.offset / page).to_le_bytes());
    }
    for m in &files {
        nt_file.extend_from_slice(m.path.trim_end_matches(" (deleted)").as_bytes());
        nt_file.push(0);
    }
    note(&mut out, "CORE", NT_FILE, &nt_file);
    for t in &meta.threads {
        let fp = fp_state(t)?;
        let xstate = fp.len() > FXSAVE_LEN;
        note(
            &mut out,
            "CORE",
            NT_PRSTATUS,
            &prstatus(t, meta.process.ppid, xstate),
        );
        if xstate {
            note(&mut out, "LINUX", NT_X86_XSTATE, &fp);
        }
    }
    Ok(out)
}

fn flags_of(perms: &str) -> u32 {
    let p = perms.as_bytes();
    let mut f = 0;
    if p.first() == Some(&b'r') {
        f |= PF_R;
    }
    if p.get(1) == Some(&b'w') {
        f |= PF_W;
    }
    if p.get(2) == Some(&b'x') {
        f |= PF_X;
    }
    f
}

/// Splits `[addr, addr+len)` into jobs of at most [`COPY_JOB`] bytes.
fn push_jobs(jobs: &mut Vec<Job>, file_off: u64, len: u64, source: Source) {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(COPY_JOB);
        let src = match source {
            Source::Snapshot(a) => Source::Snapshot(a + done),
            Source::Exe(o) => Source::Exe(o + done),
        };
        jobs.push(Job {
            file_off: file_off + done,
            len: n,
            source: src,
        });
        done += n;
    }
}

/// Writes the core of `target` into `file` (which should be empty).
pub fn write_core(target: &Target, file: &File) -> Result<CoreStats> {
    let snapshot = target.snapshot();
    let meta = snapshot.metadata();
    if meta.capture.arch != "x86_64" && !meta.capture.arch.is_empty() {
        return Err(Unsupported::Arch {
            what: "export core",
            output: "cores",
            arch: meta.capture.arch.clone(),
        }
        .into());
    }
    let mut maps: Vec<&Mapping> = meta.mappings.iter().filter(|m| m.end > m.start).collect();
    maps.sort_by_key(|m| m.start);
    if maps.len() > MAX_PHNUM {
        return Err(Unsupported::TooMany {
            what: "mappings",
            count: maps.len() as u64,
            limit: format!("an ELF core without extended numbering holds ({MAX_PHNUM})"),
        }
        .into());
    }
    let notes = notes(target)?;
    let phnum = maps.len() + 1;
    let notes_off = EHDR_LEN + PHDR_LEN * phnum as u64;
    let mut data_off = align(notes_off + notes.len() as u64, PAGE);

    let exe_path = meta.process.exe_path.trim_end_matches(" (deleted)");
    let exe_len = target.binary().file_len();
    let ranges = snapshot.memory_ranges();
    let mut phdrs = vec![0u8; PHDR_LEN as usize * phnum];
    // PT_NOTE.
    put_u32(&mut phdrs, 0, PT_NOTE);
    put_u64(&mut phdrs, 8, notes_off);
    put_u64(&mut phdrs, 32, notes.len() as u64);
    put_u64(&mut phdrs, 48, 4);
    let mut jobs = Vec::new();
    for (i, m) in maps.iter().enumerate() {
        let size = m.end - m.start;
        let stored = !matches!(m.capture, MappingCapture::Skipped { .. });
        let filesz = if stored { size } else { 0 };
        let ph = PHDR_LEN as usize * (i + 1);
        put_u32(&mut phdrs, ph, PT_LOAD);
        put_u32(&mut phdrs, ph + 4, flags_of(&m.perms));
        put_u64(&mut phdrs, ph + 8, data_off);
        put_u64(&mut phdrs, ph + 16, m.start);
        put_u64(&mut phdrs, ph + 32, filesz);
        put_u64(&mut phdrs, ph + 40, size);
        put_u64(&mut phdrs, ph + 48, PAGE);
        if stored {
            let from_exe = is_exe_mapping(m, exe_path);
            // Walk the mapping: captured data, zero runs (holes), and gaps
            // (from the executable when it backs the mapping, else holes).
            let mut cur = m.start;
            let mut ri = ranges.partition_point(|r| r.addr + r.len <= m.start);
            while cur < m.end {
                let next = ranges.get(ri).filter(|r| r.addr < m.end);
                let (gap_end, range) = match next {
                    Some(r) if r.addr <= cur => (cur, Some(r)),
                    Some(r) => (r.addr, None),
                    None => (m.end, None),
                };
                if gap_end > cur {
                    if from_exe {
                        let off = m.offset.saturating_add(cur - m.start);
                        let end = off.saturating_add(gap_end - cur).min(exe_len);
                        if end > off {
                            push_jobs(
                                &mut jobs,
                                data_off + (cur - m.start),
                                end - off,
                                Source::Exe(off),
                            );
                        }
                    }
                    cur = gap_end;
                    continue;
                }
                let Some(r) = range else { break };
                let end = (r.addr + r.len).min(m.end);
                if r.kind == RangeKind::Data {
                    push_jobs(
                        &mut jobs,
                        data_off + (cur - m.start),
                        end - cur,
                        Source::Snapshot(cur),
                    );
                }
                cur = end;
                ri += 1;
            }
            data_off = data_off.checked_add(size).ok_or_else(|| Corrupt::Mapping {
                start: m.start,
                detail: "its size overflows the core file's offsets".to_string(),
            })?;
        }
    }
    let mut ehdr = vec![0u8; EHDR_LEN as usize];
    ehdr[..4].copy_from_slice(b"\x7fELF");
    ehdr[4] = 2; // ELFCLASS64
    ehdr[5] = 1; // ELFDATA2LSB
    ehdr[6] = 1; // EV_CURRENT
    put_u16(&mut ehdr, 16, ET_CORE);
    put_u16(&mut ehdr, 18, EM_X86_64);
    put_u32(&mut ehdr, 20, 1);
    put_u64(&mut ehdr, 32, EHDR_LEN);
    put_u16(&mut ehdr, 52, EHDR_LEN as u16);
    put_u16(&mut ehdr, 54, PHDR_LEN as u16);
    put_u16(&mut ehdr, 56, phnum as u16);

    file.write_all_at(&ehdr, 0)?;
    file.write_all_at(&phdrs, EHDR_LEN)?;
    file.write_all_at(&notes, notes_off)?;
    let exe = target.binary().image();
    let data_bytes: u64 = jobs
        .par_iter()
        .map(|job| -> Result<u64> {
            let len = job.len as usize;
            match job.source {
                Source::Exe(off) => {
                    let range = usize::try_from(off)
                        .ok()
                        .and_then(|o| Some(o..o.checked_add(len)?))
                        .filter(|r| r.end <= exe.len())
                        .ok_or(BinaryError::Truncated {
                            offset: off,
                            len: job.len,
                        })?;
                    let src = exe.try_get(range)?;
                    file.write_all_at(src, job.file_off)?;
                }
                Source::Snapshot(addr) => {
                    let mut buf = vec![0u8; len];
                    snapshot.read_memory(addr, &mut buf)?;
                    file.write_all_at(&buf, job.file_off)?;
                }
            }
            Ok(job.len)
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    // Holes up to the end of the last segment.
    file.set_len(data_off)?;
    Ok(CoreStats {
        threads: meta.threads.len(),
        segments: maps.len(),
        file_bytes: data_off,
        data_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_padded_to_four_bytes() {
        let mut out = Vec::new();
        note(&mut out, "CORE", NT_AUXV, &[1, 2, 3]);
        // 12 header + "CORE\0" padded to 8 + 3 desc padded to 4.
        assert_eq!(out.len(), 12 + 8 + 4);
        assert_eq!(&out[0..4], &5u32.to_le_bytes());
        assert_eq!(&out[4..8], &3u32.to_le_bytes());
        assert_eq!(&out[8..12], &NT_AUXV.to_le_bytes());
        assert_eq!(&out[12..17], b"CORE\0");
    }

    #[test]
    fn prstatus_puts_pid_and_registers_where_the_kernel_does() {
        let mut t = rdlv_format::ThreadInfo {
            tid: 4242,
            ..Default::default()
        };
        t.regs.r15 = 0x15;
        t.regs.rip = 0x401000;
        t.regs.fs_base = 0xc0ffee;
        t.regs.gs = 0x99;
        let b = prstatus(&t, 1, true);
        assert_eq!(b.len(), PRSTATUS_LEN);
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 4242);
        assert_eq!(u64_at(112), 0x15);
        assert_eq!(u64_at(112 + 16 * 8), 0x401000, "rip is register 16");
        assert_eq!(u64_at(112 + 21 * 8), 0xc0ffee, "fs_base is register 21");
        assert_eq!(u64_at(112 + 26 * 8), 0x99, "gs is the last register");
        assert_eq!(u32::from_le_bytes(b[328..332].try_into().unwrap()), 1);
    }

    #[test]
    fn fp_state_rejects_bad_hex() {
        let mut t = rdlv_format::ThreadInfo {
            fpregs_hex: "0aff".into(),
            ..Default::default()
        };
        assert_eq!(fp_state(&t).ok(), Some(vec![0x0a, 0xff]));
        t.fpregs_hex = "0g".into();
        assert!(fp_state(&t).is_err());
        t.fpregs_hex = "abc".into();
        assert!(fp_state(&t).is_err());
    }

    #[test]
    fn jobs_are_split_and_flags_follow_perms() {
        let mut jobs = Vec::new();
        push_jobs(&mut jobs, 4096, COPY_JOB + 10, Source::Snapshot(0x1000));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].file_off, 4096 + COPY_JOB);
        assert!(matches!(jobs[1].source, Source::Snapshot(a) if a == 0x1000 + COPY_JOB));
        assert_eq!(flags_of("r-xp"), PF_R | PF_X);
        assert_eq!(flags_of("rw-p"), PF_R | PF_W);
        assert_eq!(flags_of("---p"), 0);
    }
}
