//! Which pages to copy.
//!
//! Mappings are classified first (skip `[vvar]`, unreadable, `io`/`pf`,
//! MADV_DONTDUMP; read-only mappings of the executable come from the embedded
//! file). Within a captured mapping only pages that exist are copied:
//! present or swapped, and not the shared zero page. They are found with the
//! `PAGEMAP_SCAN` ioctl (Linux 6.7+) or, on older kernels, by reading
//! `/proc/PID/pagemap`. Neither faults anything into the target.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use crate::error::{CaptureError, Result};
use crate::proc::{self, MapsEntry};

/// Page size assumed for pagemap arithmetic (x86-64).
pub const PAGE_SIZE: u64 = 4096;

/// `_IOWR('f', 16, struct pm_scan_arg)` from `<linux/fs.h>`.
const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
/// The mapping is registered for asynchronous userfaultfd write protection.
pub(crate) const PAGE_IS_WPALLOWED: u64 = 1 << 0;
/// Not write-protected by userfaultfd (async mode): written since protected.
pub(crate) const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub(crate) const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub(crate) const PAGE_IS_PFNZERO: u64 = 1 << 5;
/// `PAGEMAP_SCAN` flag: write-protect the matching pages.
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
/// `PAGEMAP_SCAN` flag: fail (EPERM) on ranges without asynchronous protection.
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
/// Regions returned per PAGEMAP_SCAN call.
const SCAN_VEC_LEN: usize = 4096;
/// Pagemap entries read per pread in the fallback path.
const PAGEMAP_BATCH: u64 = 16 * 1024;
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;

/// `struct pm_scan_arg` (linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// `struct page_region` (linux/fs.h).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub(crate) struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// What to do with one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Copy its existing pages.
    Capture,
    /// Read-only mapping of the executable: its bytes come from the embedded file.
    FromExecutable,
    /// Not captured, with the reason recorded in the snapshot.
    Skip(String),
}

/// How to recognise mappings of the main executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeIdentity {
    /// `/proc/PID/exe` link target (as maps prints paths).
    pub path: String,
    /// Device (major, minor).
    pub dev: (u32, u32),
    /// Inode.
    pub inode: u64,
}

impl ExeIdentity {
    /// Reads the identity of `pid`'s executable.
    pub fn of(pid: u32) -> Result<ExeIdentity> {
        let (major, minor, inode) = proc::exe_identity(pid)?;
        Ok(ExeIdentity {
            path: proc::exe_link(pid)?,
            dev: (major, minor),
            inode,
        })
    }

    /// Same file by device and inode, or by the kernel's own path for it
    /// (overlayfs can report different device/inode numbers in maps and stat).
    pub fn matches(&self, entry: &MapsEntry) -> bool {
        entry.inode != 0
            && ((entry.inode == self.inode && proc::parse_dev(&entry.dev) == Some(self.dev))
                || entry.path == self.path)
    }
}

/// Classifies a mapping.
pub fn classify(entry: &MapsEntry, exe: &ExeIdentity) -> Decision {
    if matches!(
        entry.path.as_str(),
        "[vvar]" | "[vvar_vclock]" | "[vsyscall]"
    ) {
        return Decision::Skip(entry.path.clone());
    }
    if !entry.readable() {
        return Decision::Skip("not readable".to_string());
    }
    if entry.has_flag("io") || entry.has_flag("pf") {
        return Decision::Skip("io/pfn map".to_string());
    }
    if entry.has_flag("dd") {
        return Decision::Skip("MADV_DONTDUMP".to_string());
    }
    // Only if no page was written: a RELRO segment is read-only now but holds
    // relocated pointers (PIE), which the file does not have.
    if !entry.writable() && exe.matches(entry) && entry.anonymous_bytes == Some(0) {
        return Decision::FromExecutable;
    }
    Decision::Capture
}

/// A run of pages to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First address (page aligned).
    pub addr: u64,
    /// Length in bytes (whole pages).
    pub len: u64,
}

/// Appends a range, keeping `out` sorted and non-overlapping: a range that
/// touches or overlaps the previous one extends it, and the part of a range
/// that lies before the previous end is dropped (a scan continuation may
/// report a region again).
pub(crate) fn push_range(out: &mut Vec<PageRange>, addr: u64, len: u64) {
    let end = addr.saturating_add(len);
    if let Some(last) = out.last_mut() {
        let last_end = last.addr + last.len;
        if addr <= last_end {
            if end > last_end {
                last.len = end - last.addr;
            }
            return;
        }
    }
    if len > 0 {
        out.push(PageRange { addr, len });
    }
}

/// Whether any of `ranges` (sorted, non-overlapping) overlaps `[start, end)`.
pub fn overlaps(ranges: &[PageRange], start: u64, end: u64) -> bool {
    let index = ranges.partition_point(|r| r.addr + r.len <= start);
    ranges.get(index).is_some_and(|r| r.addr < end)
}

/// The pages in both `a` and `b` (each sorted and non-overlapping).
pub fn intersect_ranges(a: &[PageRange], b: &[PageRange]) -> Vec<PageRange> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let lo = x.addr.max(y.addr);
        let hi = (x.addr + x.len).min(y.addr + y.len);
        if hi > lo {
            push_range(&mut out, lo, hi - lo);
        }
        if x.addr + x.len <= y.addr + y.len {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The pages of `a` that are not in `b` (each sorted and non-overlapping).
pub fn subtract_ranges(a: &[PageRange], b: &[PageRange]) -> Vec<PageRange> {
    let mut out = Vec::new();
    let mut j = 0;
    for x in a {
        let end = x.addr + x.len;
        let mut cursor = x.addr;
        while b.get(j).is_some_and(|y| y.addr + y.len <= cursor) {
            j += 1;
        }
        let mut k = j;
        while let Some(y) = b.get(k).filter(|y| y.addr < end) {
            if y.addr > cursor {
                push_range(&mut out, cursor, y.addr - cursor);
            }
            cursor = cursor.max(y.addr + y.len);
            k += 1;
        }
        if cursor < end {
            push_range(&mut out, cursor, end - cursor);
        }
    }
    out
}

/// Merges two sorted, non-overlapping range lists into one sorted list where
/// touching or overlapping ranges are joined.
pub fn union_ranges(a: &[PageRange], b: &[PageRange]) -> Vec<PageRange> {
    let mut all: Vec<PageRange> = a.iter().chain(b.iter()).copied().collect();
    all.sort_by_key(|r| r.addr);
    let mut out: Vec<PageRange> = Vec::with_capacity(all.len());
    for range in all {
        if let Some(last) = out.last_mut() {
            let last_end = last.addr + last.len;
            if range.addr <= last_end {
                let end = (range.addr + range.len).max(last_end);
                last.len = end - last.addr;
                continue;
            }
        }
        if range.len > 0 {
            out.push(range);
        }
    }
    out
}

/// Finds existing pages of one process.
pub struct PresenceScanner {
    pagemap: File,
    use_scan_ioctl: bool,
    regions: Vec<PageRegion>,
}

impl PresenceScanner {
    /// Opens `/proc/PID/pagemap` and probes for PAGEMAP_SCAN.
    pub fn open(pid: u32) -> Result<PresenceScanner> {
        let path = proc::proc_dir(pid).join("pagemap");
        let pagemap = File::open(&path).map_err(|source| match source.raw_os_error() {
            Some(libc::EACCES) | Some(libc::EPERM) => {
                crate::freeze::permission_error(pid, "open /proc/PID/pagemap")
            }
            _ => CaptureError::Proc { path, source },
        })?;
        let mut scanner = PresenceScanner {
            pagemap,
            use_scan_ioctl: true,
            regions: scan_vector(),
        };
        // An empty range answers ENOTTY/EINVAL on kernels without the ioctl.
        if scanner.scan_ioctl(0, 0, &mut Vec::new()).is_err() {
            scanner.use_scan_ioctl = false;
        }
        Ok(scanner)
    }

    /// Whether the PAGEMAP_SCAN ioctl is in use.
    pub fn uses_scan_ioctl(&self) -> bool {
        self.use_scan_ioctl
    }

    /// Pages in `[start, end)` that are present or swapped (and not the zero page
    /// when the kernel can tell), as merged ranges appended to `out`.
    pub fn existing_pages(&mut self, start: u64, end: u64, out: &mut Vec<PageRange>) -> Result<()> {
        if self.use_scan_ioctl {
            self.scan_ioctl(start, end, out)
                .map_err(|source| CaptureError::Proc {
                    path: "PAGEMAP_SCAN ioctl on /proc/PID/pagemap".into(),
                    source,
                })
        } else {
            self.scan_pagemap(start, end, out)
        }
    }

    fn scan_ioctl(
        &mut self,
        start: u64,
        end: u64,
        out: &mut Vec<PageRange>,
    ) -> std::io::Result<()> {
        self.scan(start, end, EXISTING, |lo, hi, _| {
            push_range(out, lo, hi - lo)
        })
    }

    /// One [`scan_categories`] pass over `[start, end)` of the target.
    fn scan(
        &mut self,
        start: u64,
        end: u64,
        query: CategoryQuery,
        found: impl FnMut(u64, u64, u64),
    ) -> std::io::Result<()> {
        scan_categories(&self.pagemap, &mut self.regions, (start, end), query, found)
    }

    /// Write-protects, through a userfaultfd registered for asynchronous
    /// write protection on them, the pages in `[start, end)` that exist
    /// (present or swapped; `PM_SCAN_WP_MATCHING`). Fails with EPERM where
    /// the range is not so registered (`PM_SCAN_CHECK_WPASYNC`).
    pub fn write_protect_existing(&mut self, start: u64, end: u64) -> std::io::Result<()> {
        let query = CategoryQuery {
            inverted: 0,
            required: 0,
            any_of: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            also_return: 0,
        };
        self.scan(start, end, query, |_, _, _| {})
    }

    /// Like [`PresenceScanner::existing_pages`], and in the same pass the
    /// present pages not written since userfaultfd write protection was
    /// applied (`PAGE_IS_WRITTEN` clear) go to `unwritten`, but only in
    /// mappings still registered for asynchronous protection
    /// (`PAGE_IS_WPALLOWED`): before Linux 6.12.11 mremap could move a
    /// page's protection bit into an unregistered mapping. Needs the
    /// `PAGEMAP_SCAN` ioctl.
    pub fn existing_and_unwritten_pages(
        &mut self,
        start: u64,
        end: u64,
        existing: &mut Vec<PageRange>,
        unwritten: &mut Vec<PageRange>,
    ) -> Result<()> {
        if !self.use_scan_ioctl {
            return Err(CaptureError::Parse {
                what: "PAGEMAP_SCAN".into(),
                detail: "the kernel has no PAGEMAP_SCAN ioctl (Linux 6.7+)".into(),
            });
        }
        let query = CategoryQuery {
            also_return: PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED,
            ..EXISTING
        };
        self.scan(start, end, query, |lo, hi, categories| {
            push_range(existing, lo, hi - lo);
            let present = categories & PAGE_IS_PRESENT != 0;
            let protected = categories & PAGE_IS_WRITTEN == 0;
            let registered = categories & PAGE_IS_WPALLOWED != 0;
            if present && protected && registered {
                push_range(unwritten, lo, hi - lo);
            }
        })
        .map_err(|source| CaptureError::Proc {
            path: "PAGEMAP_SCAN ioctl on /proc/PID/pagemap".into(),
            source,
        })
    }

    fn scan_pagemap(&mut self, start: u64, end: u64, out: &mut Vec<PageRange>) -> Result<()> {
        let mut entries = vec![0u8; (PAGEMAP_BATCH * 8) as usize];
        let mut page = start / PAGE_SIZE;
        let end_page = end.div_ceil(PAGE_SIZE);
        while page < end_page {
            let count = (end_page - page).min(PAGEMAP_BATCH);
            let want = (count * 8) as usize;
            let buf = entries.get_mut(..want).unwrap_or_default();
            let got = self
                .pagemap
                .read_at(buf, page * 8)
                .map_err(|source| CaptureError::Proc {
                    path: "/proc/PID/pagemap".into(),
                    source,
                })?;
            let got_pages = (got / 8) as u64;
            if got_pages == 0 {
                break;
            }
            for (index, entry) in buf.chunks_exact(8).take(got_pages as usize).enumerate() {
                let value = u64::from_ne_bytes(entry.try_into().unwrap_or([0; 8]));
                if value & (PM_PRESENT | PM_SWAPPED) != 0 {
                    push_range(out, (page + index as u64) * PAGE_SIZE, PAGE_SIZE);
                }
            }
            page += got_pages;
        }
        Ok(())
    }
}

/// Which pages a `PAGEMAP_SCAN` call selects, in the kernel's terms: a page
/// matches when its categories XOR `inverted`, masked by `required`, equal
/// `required`, and it has at least one of `any_of` (when non-zero).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CategoryQuery {
    /// Categories whose sense is inverted (e.g. "not the zero page").
    pub inverted: u64,
    /// Categories that must all hold (after inversion).
    pub required: u64,
    /// Categories of which one must hold (0: no such condition).
    pub any_of: u64,
    /// `PM_SCAN_*` flags (0 for a plain scan).
    pub flags: u64,
    /// Categories reported besides those asked about.
    pub also_return: u64,
}

/// Pages that exist: present or swapped, and not the shared zero page.
const EXISTING: CategoryQuery = CategoryQuery {
    inverted: PAGE_IS_PFNZERO,
    required: PAGE_IS_PFNZERO,
    any_of: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
    flags: 0,
    also_return: 0,
};

/// Runs `PAGEMAP_SCAN` on an open `/proc/PID/pagemap` over `[start, end)`
/// and calls `found(lo, hi, categories)` for each run of matching pages
/// (clipped to the range, in address order; `categories` holds the query's
/// categories plus `also_return`), continuing while the kernel fills the
/// whole `regions` vector. `regions` must not be empty.
pub(crate) fn scan_categories(
    pagemap: &File,
    regions: &mut [PageRegion],
    (start, end): (u64, u64),
    query: CategoryQuery,
    mut found: impl FnMut(u64, u64, u64),
) -> std::io::Result<()> {
    if regions.is_empty() {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let mut cursor = start;
    loop {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags: query.flags,
            start: cursor,
            end,
            vec: regions.as_mut_ptr() as u64,
            vec_len: regions.len() as u64,
            category_inverted: query.inverted,
            category_mask: query.required,
            category_anyof_mask: query.any_of,
            return_mask: query.required | query.any_of | query.also_return,
            ..PmScanArg::default()
        };
        // SAFETY: `arg` and the region vector it points to outlive the call;
        // vec_len is the vector's length.
        let ret = unsafe { libc::ioctl(pagemap.as_raw_fd(), PAGEMAP_SCAN as _, &mut arg) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let count = usize::try_from(ret).unwrap_or(0).min(regions.len());
        for region in regions.iter().take(count) {
            let lo = region.start.max(start);
            let hi = region.end.min(end);
            if hi > lo {
                found(lo, hi, region.categories);
            }
        }
        // Only a full vector means the scan stopped early. (walk_end alone
        // is not reliable: 6.18 can report walk_end < end after a complete
        // scan that returned fewer regions than the vector holds.)
        if count < regions.len() {
            return Ok(());
        }
        let last_end = regions.get(count - 1).map_or(cursor, |r| r.end);
        let next = arg.walk_end.max(last_end);
        if next >= end || next <= cursor {
            return Ok(());
        }
        cursor = next;
    }
}

/// A vector for [`scan_categories`] of the usual length.
pub(crate) fn scan_vector() -> Vec<PageRegion> {
    vec![PageRegion::default(); SCAN_VEC_LEN]
}

/// The plan for one mapping.
#[derive(Debug, Clone)]
pub struct MappingPlan {
    /// The mapping.
    pub entry: MapsEntry,
    /// What to do with it.
    pub decision: Decision,
    /// For [`Decision::Capture`]: the existing pages.
    pub ranges: Vec<PageRange>,
}

impl MappingPlan {
    /// Bytes this mapping will copy.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.len).sum()
    }
}

/// Classifies every mapping and finds the pages to copy.
pub fn plan(
    maps: &[MapsEntry],
    exe: &ExeIdentity,
    scanner: &mut PresenceScanner,
) -> Result<Vec<MappingPlan>> {
    plan_scanning(maps, exe, scanner, None)
}

/// [`plan`], also collecting (in the same scan) the present pages not
/// written since userfaultfd write protection was applied, for `--precopy`.
pub fn plan_with_unwritten(
    maps: &[MapsEntry],
    exe: &ExeIdentity,
    scanner: &mut PresenceScanner,
    unwritten: &mut Vec<PageRange>,
) -> Result<Vec<MappingPlan>> {
    plan_scanning(maps, exe, scanner, Some(unwritten))
}

fn plan_scanning(
    maps: &[MapsEntry],
    exe: &ExeIdentity,
    scanner: &mut PresenceScanner,
    mut unwritten: Option<&mut Vec<PageRange>>,
) -> Result<Vec<MappingPlan>> {
    let mut plans = Vec::with_capacity(maps.len());
    for entry in maps {
        let decision = classify(entry, exe);
        let mut ranges = Vec::new();
        if decision == Decision::Capture {
            match unwritten.as_deref_mut() {
                Some(unwritten) => scanner.existing_and_unwritten_pages(
                    entry.start,
                    entry.end,
                    &mut ranges,
                    unwritten,
                )?,
                None => scanner.existing_pages(entry.start, entry.end, &mut ranges)?,
            }
        }
        plans.push(MappingPlan {
            entry: entry.clone(),
            decision,
            ranges,
        });
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(addr: u64, len: u64) -> PageRange {
        PageRange { addr, len }
    }

    #[test]
    fn unions_sorted_ranges() {
        let a = [range(0x1000, 0x1000), range(0x5000, 0x2000)];
        let b = [
            range(0x2000, 0x1000),
            range(0x6000, 0x3000),
            range(0xa000, 0x1000),
        ];
        assert_eq!(
            union_ranges(&a, &b),
            vec![
                range(0x1000, 0x2000),
                range(0x5000, 0x4000),
                range(0xa000, 0x1000)
            ]
        );
        assert_eq!(union_ranges(&[], &b), b.to_vec());
        assert!(union_ranges(&[], &[]).is_empty());
    }

    fn entry(perms: &str, path: &str, inode: u64, flags: &[&str]) -> MapsEntry {
        MapsEntry {
            start: 0x1000,
            end: 0x3000,
            perms: perms.into(),
            offset: 0,
            dev: "fd:01".into(),
            inode,
            path: path.into(),
            vm_flags: flags.iter().map(|s| s.to_string()).collect(),
            anonymous_bytes: Some(0),
        }
    }

    #[test]
    fn classification_rules() {
        let exe = ExeIdentity {
            path: "/srv/app".into(),
            dev: (0xfd, 1),
            inode: 42,
        };
        assert_eq!(
            classify(&entry("r--p", "[vvar]", 0, &["rd"]), &exe),
            Decision::Skip("[vvar]".into())
        );
        assert_eq!(
            classify(&entry("---p", "", 0, &[]), &exe),
            Decision::Skip("not readable".into())
        );
        assert_eq!(
            classify(&entry("rw-s", "/dev/mem", 9, &["rd", "io"]), &exe),
            Decision::Skip("io/pfn map".into())
        );
        assert_eq!(
            classify(&entry("rw-p", "", 0, &["rd", "wr", "dd"]), &exe),
            Decision::Skip("MADV_DONTDUMP".into())
        );
        assert_eq!(
            classify(&entry("r-xp", "/srv/app", 42, &["rd", "ex"]), &exe),
            Decision::FromExecutable
        );
        assert_eq!(
            classify(&entry("r--p", "/srv/app (deleted)", 42, &["rd"]), &exe),
            Decision::FromExecutable
        );
        // Relocated RELRO of a PIE, or no smaps data: copy it.
        let mut relro = entry("r--p", "/srv/app", 42, &["rd"]);
        relro.anonymous_bytes = Some(4096);
        assert_eq!(classify(&relro, &exe), Decision::Capture);
        relro.anonymous_bytes = None;
        assert_eq!(classify(&relro, &exe), Decision::Capture);
        // Writable data of the exe, other files and anonymous memory are copied.
        assert_eq!(
            classify(&entry("rw-p", "/srv/app", 42, &["rd", "wr"]), &exe),
            Decision::Capture
        );
        assert_eq!(
            classify(&entry("r-xp", "/lib/libc.so.6", 43, &["rd", "ex"]), &exe),
            Decision::Capture
        );
        assert_eq!(
            classify(&entry("rw-p", "[heap]", 0, &["rd", "wr"]), &exe),
            Decision::Capture
        );
    }

    fn ranges(list: &[(u64, u64)]) -> Vec<PageRange> {
        list.iter()
            .map(|&(addr, len)| PageRange { addr, len })
            .collect()
    }

    #[test]
    fn intersects_and_subtracts_range_lists() {
        let a = ranges(&[(0x1000, 0x4000), (0x8000, 0x2000), (0x20000, 0x1000)]);
        let b = ranges(&[(0x2000, 0x1000), (0x4000, 0x5000), (0x30000, 0x1000)]);
        assert_eq!(
            intersect_ranges(&a, &b),
            ranges(&[(0x2000, 0x1000), (0x4000, 0x1000), (0x8000, 0x1000)])
        );
        assert_eq!(
            subtract_ranges(&a, &b),
            ranges(&[
                (0x1000, 0x1000),
                (0x3000, 0x1000),
                (0x9000, 0x1000),
                (0x20000, 0x1000)
            ])
        );
        assert_eq!(subtract_ranges(&a, &[]), a);
        assert_eq!(subtract_ranges(&a, &a), Vec::new());
        assert_eq!(intersect_ranges(&a, &[]), Vec::new());
        assert!(overlaps(&a, 0x4000, 0x5000) && overlaps(&a, 0x0, 0x2000));
        assert!(!overlaps(&a, 0x5000, 0x8000) && !overlaps(&a, 0x21000, 0x30000));
        // Page by page, both agree with a set computation.
        let pages = |list: &[PageRange]| -> std::collections::BTreeSet<u64> {
            list.iter()
                .flat_map(|r| (r.addr..r.addr + r.len).step_by(0x1000))
                .collect()
        };
        let (pa, pb) = (pages(&a), pages(&b));
        assert_eq!(pages(&intersect_ranges(&a, &b)), &pa & &pb);
        assert_eq!(pages(&subtract_ranges(&a, &b)), &pa - &pb);
        assert_eq!(pages(&subtract_ranges(&b, &a)), &pb - &pa);
    }

    #[test]
    fn merges_adjacent_ranges() {
        let mut out = Vec::new();
        push_range(&mut out, 0x1000, 0x1000);
        push_range(&mut out, 0x2000, 0x1000);
        push_range(&mut out, 0x4000, 0x1000);
        push_range(&mut out, 0x5000, 0);
        // Overlap with the previous range (repeated region) merges.
        push_range(&mut out, 0x4000, 0x2000);
        push_range(&mut out, 0x5000, 0x1000);
        assert_eq!(
            out,
            vec![
                PageRange {
                    addr: 0x1000,
                    len: 0x2000
                },
                PageRange {
                    addr: 0x4000,
                    len: 0x2000
                }
            ]
        );
    }

    /// More separate present runs than one PAGEMAP_SCAN vector holds: the
    /// continuation must neither lose nor repeat any page.
    #[test]
    fn scan_continuation_matches_pagemap() {
        let pages = 3 * SCAN_VEC_LEN + 100;
        let size = pages * PAGE_SIZE as usize;
        let base = crate::testutil::map_anonymous(size);
        // Huge pages would make every page present.
        // SAFETY: advice on our own mapping.
        assert_eq!(
            unsafe { libc::madvise(base, size, libc::MADV_NOHUGEPAGE) },
            0
        );
        for page in (0..pages).filter(|p| p % 2 == 0 || p % 7 == 0) {
            // SAFETY: inside the mapping.
            unsafe { *(base as *mut u8).add(page * PAGE_SIZE as usize) = 1 };
        }
        let start = base as u64;
        let end = start + size as u64;
        let mut scanner = PresenceScanner::open(std::process::id()).unwrap();
        let mut by_scan = Vec::new();
        scanner.existing_pages(start, end, &mut by_scan).unwrap();
        scanner.use_scan_ioctl = false;
        let mut by_pagemap = Vec::new();
        scanner.existing_pages(start, end, &mut by_pagemap).unwrap();
        assert!(by_scan.len() > SCAN_VEC_LEN, "{} runs", by_scan.len());
        let first_difference = by_scan.iter().zip(&by_pagemap).position(|(a, b)| a != b);
        assert!(
            by_scan.len() == by_pagemap.len() && first_difference.is_none(),
            "scan {} runs, pagemap {} runs, first difference at {first_difference:?}: {:?} vs {:?}",
            by_scan.len(),
            by_pagemap.len(),
            first_difference.and_then(|i| by_scan.get(i.saturating_sub(1)..i + 2)),
            first_difference.and_then(|i| by_pagemap.get(i.saturating_sub(1)..i + 2)),
        );
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(base, size) };
    }

    /// Maps 64 pages, touches a known pattern of them, and checks that both
    /// PAGEMAP_SCAN and the pagemap fallback report exactly those pages.
    #[test]
    fn finds_exactly_the_touched_pages_in_own_memory() {
        let pages = 64usize;
        let size = pages * PAGE_SIZE as usize;
        let base = crate::testutil::map_anonymous(size);
        let touched = [0usize, 1, 2, 10, 33, 63];
        for page in touched {
            // SAFETY: inside the mapping.
            unsafe { *(base as *mut u8).add(page * PAGE_SIZE as usize) = 0xAB };
        }
        // A read fault maps the shared zero page, which must not be reported.
        // SAFETY: inside the mapping.
        let zero =
            unsafe { std::ptr::read_volatile((base as *const u8).add(20 * PAGE_SIZE as usize)) };
        assert_eq!(zero, 0);
        let start = base as u64;
        let end = start + size as u64;
        let expected = vec![
            PageRange {
                addr: start,
                len: 3 * PAGE_SIZE,
            },
            PageRange {
                addr: start + 10 * PAGE_SIZE,
                len: PAGE_SIZE,
            },
            PageRange {
                addr: start + 33 * PAGE_SIZE,
                len: PAGE_SIZE,
            },
            PageRange {
                addr: start + 63 * PAGE_SIZE,
                len: PAGE_SIZE,
            },
        ];
        let mut scanner = PresenceScanner::open(std::process::id()).unwrap();
        assert!(
            scanner.uses_scan_ioctl(),
            "this test machine's kernel has PAGEMAP_SCAN"
        );
        let mut found = Vec::new();
        scanner.existing_pages(start, end, &mut found).unwrap();
        assert_eq!(found, expected);
        // The fallback cannot see the zero page without CAP_SYS_ADMIN PFNs, so it
        // reports it as present; everything else must agree.
        scanner.use_scan_ioctl = false;
        let mut fallback = Vec::new();
        scanner.existing_pages(start, end, &mut fallback).unwrap();
        let mut with_zero = expected.clone();
        with_zero.insert(
            2,
            PageRange {
                addr: start + 20 * PAGE_SIZE,
                len: PAGE_SIZE,
            },
        );
        assert_eq!(fallback, with_zero);
        // SAFETY: unmapping what we mapped.
        unsafe { libc::munmap(base, size) };
    }
}
