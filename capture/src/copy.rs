//! Copying target memory while it is stopped.
//!
//! Present pages are read with batched `process_vm_readv` (one contiguous
//! local buffer, up to 1024 remote iovecs per call) on two threads, into a
//! buffer that was allocated and pre-faulted before the target was stopped
//! (first-touch page faults would otherwise dominate the pause). Pieces that
//! `process_vm_readv` refuses are retried with `pread` on `/proc/PID/mem`,
//! page by page; pages that still fail are reported, not invented.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicI32;
use std::time::Instant;

use nix::errno::Errno;

use crate::error::{CaptureError, Result};
use crate::freeze::check_budget;
use crate::pages::{PageRange, PAGE_SIZE};

/// Most remote iovecs per process_vm_readv call (IOV_MAX).
const MAX_IOVECS: usize = 1024;
/// Most bytes per call, so that the abort flag and deadline are checked often.
const MAX_BATCH_BYTES: u64 = 8 << 20;
/// Reader threads.
const COPY_THREADS: usize = 2;

/// Allocates `len` bytes and touches every page so that copying into it
/// later causes no page faults. Returns `None` if the allocation fails.
pub fn prefaulted_buffer(len: usize) -> Option<Vec<u8>> {
    let mut buffer: Vec<u8> = Vec::new();
    buffer.try_reserve_exact(len).ok()?;
    buffer.resize(len, 0);
    advise_huge_pages(&mut buffer);
    let page = PAGE_SIZE as usize;
    for offset in (0..len).step_by(page) {
        if let Some(byte) = buffer.get_mut(offset) {
            // A volatile write: the zero-filled allocation may be backed by the
            // shared zero page, and a plain store of 0 could be optimised away.
            // SAFETY: `byte` is a valid, exclusive reference into the buffer.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
    Some(buffer)
}

/// Asks for transparent huge pages on the 2 MiB-aligned part of `buffer`,
/// before it is touched: copying into 4 KiB pages costs a TLB miss every
/// 4 KiB on the destination side, which shows in the pause at 1 GiB.
/// Best effort: where THP is off (or `never`) this changes nothing.
fn advise_huge_pages(buffer: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    let start = buffer.as_mut_ptr() as usize;
    let end = start + buffer.len();
    let aligned_start = start.next_multiple_of(HUGE);
    let aligned_end = end - end % HUGE;
    if aligned_end > aligned_start {
        // SAFETY: the range lies inside `buffer`'s allocation; MADV_HUGEPAGE
        // only changes how the kernel backs it, never its contents.
        unsafe {
            libc::madvise(
                aligned_start as *mut libc::c_void,
                aligned_end - aligned_start,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// Result of a copy.
#[derive(Debug, Default)]
pub struct CopyOutcome {
    /// Pages that could not be read by either method (left zero in the buffer).
    pub failed: Vec<PageRange>,
    /// Bytes read through the `/proc/PID/mem` fallback.
    pub fallback_bytes: u64,
}

impl CopyOutcome {
    /// Adds another part's failures and fallback bytes to this one, keeping
    /// the failures sorted by address.
    pub fn absorb(&mut self, part: CopyOutcome) {
        self.failed.extend(part.failed);
        self.failed.sort_by_key(|r| r.addr);
        self.fallback_bytes += part.fallback_bytes;
    }

    /// The outcomes of the parts of one copy (one per reader thread) as one,
    /// or the first error.
    pub fn merged<E>(
        parts: Vec<std::result::Result<CopyOutcome, E>>,
    ) -> std::result::Result<CopyOutcome, E> {
        let mut outcome = CopyOutcome::default();
        for part in parts {
            outcome.absorb(part?);
        }
        Ok(outcome)
    }
}

/// A piece of a range with its offset in the destination buffer.
#[derive(Debug, Clone, Copy)]
struct Piece {
    addr: u64,
    len: u64,
    offset: usize,
}

/// What a copy reads from and when it must stop.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The target.
    pub pid: u32,
    /// Its open `/proc/PID/mem`, for the fallback (`None`: no fallback).
    pub mem: Option<&'a File>,
    /// Set to a signal number when the user asked to stop.
    pub abort: &'a AtomicI32,
    /// The stop's start and `--max-pause` deadline (`None` while it runs).
    pub deadline: Option<(Instant, Instant)>,
}

/// Copies `ranges` (sorted, non-overlapping, page aligned) into `buffer`, laid
/// out back to back in order. `buffer` must be at least the ranges' total size.
pub fn copy_ranges(
    source: &Source<'_>,
    ranges: &[PageRange],
    buffer: &mut [u8],
) -> Result<CopyOutcome> {
    let mut offset = 0usize;
    let placed: Vec<(PageRange, usize)> = ranges
        .iter()
        .map(|range| {
            let at = offset;
            offset += range.len as usize;
            (*range, at)
        })
        .collect();
    copy_placed(source, &placed, buffer)
}

/// Copies each range of `placed` to its own offset in `buffer`. Ranges are
/// sorted by address with increasing, non-overlapping offsets (gaps allowed:
/// `--precopy` re-copies written pages into their slots of the pre-copy).
pub fn copy_placed(
    source: &Source<'_>,
    placed: &[(PageRange, usize)],
    buffer: &mut [u8],
) -> Result<CopyOutcome> {
    let Source {
        pid,
        mem,
        abort,
        deadline,
    } = *source;
    let mut pieces = Vec::new();
    let mut end_offset = 0usize;
    for (range, offset) in placed {
        if *offset < end_offset {
            return Err(CaptureError::copy_plan(format!(
                "range at {:#x} overlaps the previous one in the buffer",
                range.addr
            )));
        }
        let mut addr = range.addr;
        let mut left = range.len;
        let mut offset = *offset;
        while left > 0 {
            let len = left.min(MAX_BATCH_BYTES);
            pieces.push(Piece { addr, len, offset });
            offset += len as usize;
            addr += len;
            left -= len;
        }
        end_offset = offset;
    }
    if end_offset > buffer.len() {
        return Err(CaptureError::copy_plan(format!(
            "{end_offset} bytes to copy but the buffer holds {}",
            buffer.len()
        )));
    }
    let total: usize = pieces.iter().map(|p| p.len as usize).sum();

    // Split the pieces into one run per thread, of roughly equal bytes; each
    // thread gets the part of the buffer from its first piece's offset on.
    let mut splits = vec![0usize];
    let mut acc = 0usize;
    let mut index = 0usize;
    for thread in 1..COPY_THREADS {
        let target = total * thread / COPY_THREADS;
        while index < pieces.len() && acc < target {
            acc += pieces[index].len as usize;
            index += 1;
        }
        splits.push(index);
    }
    splits.push(pieces.len());
    let mut runs: Vec<(&[Piece], &mut [u8], usize)> = Vec::new();
    let mut rest_buffer: &mut [u8] = &mut buffer[..end_offset];
    let mut base = 0usize;
    for bounds in splits.windows(2) {
        let mine = &pieces[bounds[0]..bounds[1]];
        let next_base = pieces.get(bounds[1]).map_or(end_offset, |p| p.offset);
        let (my_buffer, other_buffer) =
            std::mem::take(&mut rest_buffer).split_at_mut(next_base - base);
        runs.push((mine, my_buffer, base));
        base = next_base;
        rest_buffer = other_buffer;
    }

    let results: Vec<Result<CopyOutcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .filter(|(pieces, _, _)| !pieces.is_empty())
            .map(|(pieces, buf, base)| {
                scope.spawn(move || copy_run(pid, pieces, buf, base, mem, abort, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(CaptureError::Parse {
                        what: "copy thread".into(),
                        detail: "panicked".into(),
                    })
                })
            })
            .collect()
    });
    CopyOutcome::merged(results)
}

/// Copies one thread's run of pieces into `buffer`, whose byte 0 is the
/// piece offset `base`.
fn copy_run(
    pid: u32,
    pieces: &[Piece],
    buffer: &mut [u8],
    base: usize,
    mem: Option<&File>,
    abort: &AtomicI32,
    deadline: Option<(Instant, Instant)>,
) -> Result<CopyOutcome> {
    let mut outcome = CopyOutcome::default();
    let mut use_readv = true;
    let mut next = 0usize;
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(MAX_IOVECS);
    while next < pieces.len() {
        check_budget(abort, deadline, "copying memory")?;
        // Build a batch of consecutive pieces (contiguous in the buffer).
        let first = next;
        let mut bytes = 0u64;
        remote.clear();
        while next < pieces.len() && remote.len() < MAX_IOVECS {
            let piece = pieces[next];
            if !remote.is_empty() && bytes + piece.len > MAX_BATCH_BYTES {
                break;
            }
            // One local slice per call: stop at a gap in the buffer.
            if !remote.is_empty() && piece.offset != pieces[first].offset + bytes as usize {
                break;
            }
            remote.push(libc::iovec {
                iov_base: piece.addr as *mut libc::c_void,
                iov_len: piece.len as usize,
            });
            bytes += piece.len;
            next += 1;
        }
        let start = pieces[first].offset - base;
        let local_slice = &mut buffer[start..start + bytes as usize];
        let mut done = 0u64;
        if use_readv {
            let local = libc::iovec {
                iov_base: local_slice.as_mut_ptr().cast(),
                iov_len: local_slice.len(),
            };
            // SAFETY: the local iovec covers an exclusive, live slice; remote
            // iovecs are only addresses in the other process.
            let ret = unsafe {
                libc::process_vm_readv(
                    pid as libc::pid_t,
                    &local,
                    1,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            if ret >= 0 {
                done = ret as u64;
            } else {
                match Errno::last() {
                    Errno::ESRCH => return Err(CaptureError::Exited { pid }),
                    // Seccomp profiles (old Docker) refuse the syscall itself.
                    Errno::EPERM | Errno::ENOSYS => use_readv = false,
                    // EFAULT/ENOMEM/EIO: the first iovec failed; handled below.
                    _ => {}
                }
            }
        }
        if done == bytes {
            continue;
        }
        // Short read: pieces wholly inside `done` are fine; the piece where it
        // stopped gets the fallback, and the batch resumes after it.
        let mut cursor = 0u64;
        let mut resume_at = next;
        for (index, piece) in pieces[first..next].iter().enumerate() {
            if cursor + piece.len <= done {
                cursor += piece.len;
                continue;
            }
            let already = done.saturating_sub(cursor);
            let slice_start = (piece.offset - base) + already as usize;
            let slice = &mut buffer[slice_start..slice_start + (piece.len - already) as usize];
            fallback_read(pid, mem, piece.addr + already, slice, &mut outcome)?;
            resume_at = first + index + 1;
            break;
        }
        next = resume_at;
    }
    Ok(outcome)
}

/// Reads a piece through `/proc/PID/mem`, page by page where whole reads fail.
fn fallback_read(
    pid: u32,
    mem: Option<&File>,
    addr: u64,
    buf: &mut [u8],
    outcome: &mut CopyOutcome,
) -> Result<()> {
    let Some(mem) = mem else {
        outcome.failed.push(PageRange {
            addr,
            len: buf.len() as u64,
        });
        return Ok(());
    };
    match read_pages(mem, addr, buf, outcome, true) {
        Ok(read) => {
            outcome.fallback_bytes += read;
            Ok(())
        }
        Err(_) => Err(CaptureError::Exited { pid }),
    }
}

/// Reads `buf` from `mem` (a `/proc/PID/mem`) at `addr`: whole if it can,
/// else page by page, leaving pages that cannot be read zero and recording
/// them in `outcome.failed` (sorted, merged). Returns the bytes read. With
/// `gone_is_fatal`, a page read failing with ESRCH (the process is gone)
/// ends the read with that error instead.
pub(crate) fn read_pages(
    mem: &File,
    addr: u64,
    buf: &mut [u8],
    outcome: &mut CopyOutcome,
    gone_is_fatal: bool,
) -> std::io::Result<u64> {
    if read_fully(mem, addr, buf).is_ok() {
        return Ok(buf.len() as u64);
    }
    let page = PAGE_SIZE as usize;
    let mut read = 0u64;
    for (index, chunk) in buf.chunks_mut(page).enumerate() {
        let at = addr + (index * page) as u64;
        match read_fully(mem, at, chunk) {
            Ok(()) => read += chunk.len() as u64,
            Err(e) if gone_is_fatal && e.raw_os_error() == Some(libc::ESRCH) => return Err(e),
            Err(_) => {
                chunk.fill(0);
                match outcome.failed.last_mut() {
                    Some(last) if last.addr + last.len == at => last.len += chunk.len() as u64,
                    _ => outcome.failed.push(PageRange {
                        addr: at,
                        len: chunk.len() as u64,
                    }),
                }
            }
        }
    }
    Ok(read)
}

/// `pread` of all of `buf` at `addr` (retried on EINTR and short reads; a
/// read of 0 bytes is EIO).
pub(crate) fn read_fully(file: &File, addr: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], addr + done as u64) {
            Ok(0) => return Err(std::io::Error::from_raw_os_error(libc::EIO)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_self<'a>(
        mem: Option<&'a File>,
        abort: &'a AtomicI32,
        deadline: Option<(Instant, Instant)>,
    ) -> Source<'a> {
        Source {
            pid: std::process::id(),
            mem,
            abort,
            deadline,
        }
    }

    static NO_ABORT: AtomicI32 = AtomicI32::new(0);

    /// Copies ranges of our own memory, including an unreadable page in the
    /// middle of a batch: readable bytes must arrive intact, the PROT_NONE page
    /// is recovered through /proc/self/mem (which may read it), and a range
    /// that is not mapped at all is reported as failed.
    #[test]
    fn copies_own_memory_with_fallback_and_failures() {
        let pages = 600usize;
        let page = PAGE_SIZE as usize;
        // SAFETY: anonymous mapping owned by this test.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                (pages + 1) * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as *mut u8;
        assert_ne!(base as *mut libc::c_void, libc::MAP_FAILED);
        for i in 0..pages * page {
            // SAFETY: inside the mapping.
            unsafe { *base.add(i) = (i % 251) as u8 };
        }
        // Page 300 becomes unreadable for process_vm_readv.
        // SAFETY: inside the mapping.
        assert_eq!(
            unsafe { libc::mprotect(base.add(300 * page).cast(), page, libc::PROT_NONE) },
            0
        );
        // The extra last page is unmapped: nothing can read it.
        // SAFETY: inside the mapping.
        assert_eq!(
            unsafe { libc::munmap(base.add(pages * page).cast(), page) },
            0
        );
        let start = base as u64;
        // Many single-page ranges (more than one batch of iovecs) then the rest.
        let mut ranges: Vec<PageRange> = (0..400u64)
            .filter(|p| p % 2 == 0)
            .map(|p| PageRange {
                addr: start + p * PAGE_SIZE,
                len: PAGE_SIZE,
            })
            .collect();
        ranges.push(PageRange {
            addr: start + 401 * PAGE_SIZE,
            len: (pages as u64 - 401 + 1) * PAGE_SIZE,
        });
        let total: u64 = ranges.iter().map(|r| r.len).sum();
        let mut buffer = prefaulted_buffer(total as usize).unwrap();
        let mem = File::open("/proc/self/mem").unwrap();
        let outcome = copy_ranges(
            &from_self(Some(&mem), &NO_ABORT, None),
            &ranges,
            &mut buffer,
        )
        .unwrap();
        assert_eq!(
            outcome.failed,
            vec![PageRange {
                addr: start + pages as u64 * PAGE_SIZE,
                len: PAGE_SIZE
            }]
        );
        assert!(outcome.fallback_bytes >= PAGE_SIZE);
        let mut offset = 0usize;
        for range in &ranges {
            for i in 0..range.len as usize {
                let addr = range.addr as usize + i;
                let index = addr - start as usize;
                let expected = if index >= pages * page {
                    0
                } else {
                    (index % 251) as u8
                };
                assert_eq!(buffer[offset + i], expected, "byte at 0x{addr:x}");
            }
            offset += range.len as usize;
        }
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(base.cast(), pages * page) };
    }

    #[test]
    fn placed_copy_fills_only_its_slots() {
        let page = PAGE_SIZE as usize;
        let source: Vec<u8> = (0..64 * page).map(|i| (i % 253) as u8).collect();
        let start = source.as_ptr() as u64;
        // Slots with gaps between them; the gaps must keep their 0xEE.
        let placed: Vec<(PageRange, usize)> = (0..20u64)
            .map(|k| {
                (
                    PageRange {
                        addr: start + 3 * k * PAGE_SIZE,
                        len: PAGE_SIZE * (1 + k % 2),
                    },
                    (3 * k as usize + 1) * page,
                )
            })
            .collect();
        let mut buffer = vec![0xEEu8; 64 * page];
        let outcome = copy_placed(&from_self(None, &NO_ABORT, None), &placed, &mut buffer).unwrap();
        assert!(outcome.failed.is_empty());
        let mut expected = vec![0xEEu8; 64 * page];
        for (range, offset) in &placed {
            let from = (range.addr - start) as usize;
            let len = range.len as usize;
            expected[*offset..*offset + len].copy_from_slice(&source[from..from + len]);
        }
        assert!(buffer == expected, "slots or gaps differ");
        // Overlapping slots are refused, not copied over each other.
        let overlapping = [placed[1], (placed[2].0, placed[1].1)];
        assert!(copy_placed(&from_self(None, &NO_ABORT, None), &overlapping, &mut buffer).is_err());
    }

    #[test]
    fn abort_and_deadline_stop_the_copy() {
        let data = vec![7u8; 3 * PAGE_SIZE as usize];
        let ranges = [PageRange {
            addr: data.as_ptr() as u64 & !(PAGE_SIZE - 1),
            len: PAGE_SIZE,
        }];
        let mut buffer = prefaulted_buffer(PAGE_SIZE as usize).unwrap();
        let abort = AtomicI32::new(libc::SIGTERM);
        let err = copy_ranges(&from_self(None, &abort, None), &ranges, &mut buffer).unwrap_err();
        assert!(matches!(err, CaptureError::Interrupted { signal } if signal == libc::SIGTERM));
        let past = Instant::now() - std::time::Duration::from_millis(5);
        let err = copy_ranges(
            &from_self(None, &NO_ABORT, Some((past, past))),
            &ranges,
            &mut buffer,
        )
        .unwrap_err();
        assert!(matches!(err, CaptureError::PauseBudget { .. }), "{err}");
        let mut small = vec![0u8; 10];
        assert!(copy_ranges(&from_self(None, &NO_ABORT, None), &ranges, &mut small).is_err());
    }
}
