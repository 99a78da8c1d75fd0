//! One memory-reading trait over every source of target memory.

use crate::error::{AnalyzeError, Result};

/// Reads the target's address space. Implemented by the snapshot (with the
/// executable's file-backed ranges filled from the ELF) and by test fakes.
pub trait Memory: Sync {
    /// Fills `buf` with the bytes at `addr`, or fails with [`AnalyzeError::Unreadable`].
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;

    /// Reads a little-endian u8.
    fn read_u8(&self, addr: u64) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
    /// Reads a little-endian u16.
    fn read_u16(&self, addr: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Reads a little-endian u32.
    fn read_u32(&self, addr: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    /// Reads a little-endian u64.
    fn read_u64(&self, addr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    /// Reads `len` bytes into a new vector; `len` must be bounded by the caller.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }
}

/// A fixed set of byte ranges, for tests and for small synthetic images.
#[derive(Debug, Default, Clone)]
pub struct SliceMemory {
    ranges: Vec<(u64, Vec<u8>)>,
}

impl SliceMemory {
    /// Empty memory.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds bytes at an address (ranges must not overlap).
    pub fn add(&mut self, addr: u64, bytes: Vec<u8>) {
        self.ranges.push((addr, bytes));
        self.ranges.sort_by_key(|r| r.0);
    }
}

impl Memory for SliceMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        let idx = self.ranges.partition_point(|r| r.0 <= addr);
        if idx > 0 {
            let (start, bytes) = &self.ranges[idx - 1];
            let off = addr - start;
            if off
                .checked_add(len)
                .is_some_and(|end| end <= bytes.len() as u64)
            {
                buf.copy_from_slice(&bytes[off as usize..(off + len) as usize]);
                return Ok(());
            }
        }
        Err(AnalyzeError::Unreadable { addr, len })
    }
}

/// Every `(addr, len)` a [`Memory`] was asked for, for `rdlv redact`: the
/// bytes an analysis reads are by definition the bytes it needs, so keeping
/// exactly those (and nothing found by looking at contents) is redaction by
/// construction. Failed reads are logged too; the redactor intersects the
/// log with what was captured, so they add nothing.
#[derive(Debug, Default)]
pub struct ReadLog {
    reads: std::sync::Mutex<Vec<(u64, u64)>>,
}

/// Logged reads above which the log merges itself, bounding its memory by
/// the number of distinct runs rather than the number of reads.
const READ_LOG_COMPACT_AT: usize = 1 << 20;

impl ReadLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Logs a read of `len` bytes at `addr` (empty and wrapping reads are
    /// clipped at the end of the address space).
    pub fn record(&self, addr: u64, len: u64) {
        let end = addr.saturating_add(len);
        if end == addr {
            return;
        }
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        reads.push((addr, end));
        if reads.len() >= READ_LOG_COMPACT_AT {
            let merged = merge_intervals(std::mem::take(&mut *reads));
            *reads = merged;
        }
    }

    /// The logged reads as sorted, disjoint, non-touching `(start, end)` runs.
    pub fn runs(&self) -> Vec<(u64, u64)> {
        let reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        merge_intervals(reads.clone())
    }
}

/// Sorts half-open `(start, end)` intervals and merges those that overlap
/// or touch.
pub fn merge_intervals(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.retain(|r| r.1 > r.0);
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// A [`Memory`] that logs every read into a [`ReadLog`] and then asks the
/// memory it wraps; the answer is unchanged.
pub struct Recording<'a> {
    inner: &'a dyn Memory,
    log: &'a ReadLog,
}

impl<'a> Recording<'a> {
    /// Wraps `inner`, logging into `log`.
    pub fn new(inner: &'a dyn Memory, log: &'a ReadLog) -> Self {
        Recording { inner, log }
    }
}

impl Memory for Recording<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.log.record(addr, buf.len() as u64);
        self.inner.read(addr, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_overlapping_and_touching_runs_only() {
        let v = vec![(10, 20), (0, 5), (5, 8), (15, 30), (40, 41), (9, 9)];
        assert_eq!(merge_intervals(v), vec![(0, 8), (10, 30), (40, 41)]);
        assert!(merge_intervals(Vec::new()).is_empty());
    }

    #[test]
    fn recording_logs_every_read_and_keeps_answers() {
        let mut m = SliceMemory::new();
        m.add(0x1000, (0u8..32).collect());
        let log = ReadLog::new();
        let r = Recording::new(&m, &log);
        assert_eq!(
            r.read_u64(0x1008).ok(),
            Some(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
        assert_eq!(r.read_u8(0x1010).ok(), Some(16));
        // A failed read is logged and still fails.
        assert!(r.read_u64(0x2000).is_err());
        assert_eq!(log.runs(), vec![(0x1008, 0x1011), (0x2000, 0x2008)]);
        // Reads near the top of the address space do not wrap.
        log.record(u64::MAX - 2, 8);
        assert_eq!(log.runs().last(), Some(&(u64::MAX - 2, u64::MAX)));
    }
}
