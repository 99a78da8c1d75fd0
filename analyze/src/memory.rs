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
