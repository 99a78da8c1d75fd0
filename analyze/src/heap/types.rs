//! Runtime type descriptors (`internal/abi.Type`) found in the heap: the
//! malloc header of 513 B – 32 KiB objects and `mspan.largeType` (Go
//! 1.22+). A descriptor is trusted only when it lies inside the module's
//! `[types, etypes)`; anything else (a type made by `reflect` at run time,
//! or a damaged header) gives no name and no pointer mask.
//!
//! `abi.Type` layout on 64-bit targets, unchanged in 1.21–1.27: `Size_`
//! @0, `PtrBytes` @8, `TFlag` @20, `Kind_` @23, `GCData` @32, `Str` @40.

use std::collections::HashMap;

use crate::memory::Memory;
use crate::value::read_abi_name;

/// Bytes of `abi.Type` read.
const TYPE_HEADER: usize = 48;
/// Bound on a type name.
const MAX_TYPE_NAME: u64 = 4096;
/// Bound on the pointer mask of one type read eagerly (bytes): 1 MiB of
/// mask covers a 64 MiB pointerful prefix.
pub const MAX_GCMASK_BYTES: u64 = 1 << 20;
/// `abi.TFlagExtraStar`.
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// `abi.TFlagGCMaskOnDemand` (1.24+).
const TFLAG_GCMASK_ON_DEMAND: u8 = 1 << 4;
/// `abi.KindGCProg` (up to 1.23).
const KIND_GCPROG: u8 = 1 << 6;
/// Bits of `Kind_` holding the kind.
const KIND_MASK: u8 = (1 << 5) - 1;
/// `abi.Chan`.
pub const KIND_CHAN: u8 = 18;

/// A runtime type descriptor, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RType {
    /// Address of the descriptor.
    pub addr: u64,
    /// `Size_`.
    pub size: u64,
    /// `PtrBytes`: bytes of the prefix that can hold pointers.
    pub ptrbytes: u64,
    /// `Kind_ & KindMask`.
    pub kind: u8,
    /// Name as reflect prints it.
    pub name: String,
    /// One bit per pointer-sized word of the prefix, when readable: `None`
    /// for a GC program (1.22/1.23) or an on-demand mask not built yet.
    pub mask: Option<Vec<u8>>,
}

/// Reads and caches type descriptors of one module.
pub struct Types<'m> {
    mem: &'m dyn Memory,
    types: u64,
    etypes: u64,
    cache: HashMap<u64, Option<std::sync::Arc<RType>>>,
}

impl<'m> Types<'m> {
    /// Types of the module whose descriptors live in `[types, etypes)`.
    pub fn new(mem: &'m dyn Memory, types: u64, etypes: u64) -> Self {
        Types {
            mem,
            types,
            etypes,
            cache: HashMap::new(),
        }
    }

    /// The descriptor at `addr`, if it is a valid one of this module.
    pub fn get(&mut self, addr: u64) -> Option<std::sync::Arc<RType>> {
        if let Some(hit) = self.cache.get(&addr) {
            return hit.clone();
        }
        let t = self.read(addr).map(std::sync::Arc::new);
        self.cache.insert(addr, t.clone());
        t
    }

    fn read(&self, addr: u64) -> Option<RType> {
        if addr < self.types || addr >= self.etypes || addr % 8 != 0 {
            return None;
        }
        let mut h = [0u8; TYPE_HEADER];
        self.mem.read(addr, &mut h).ok()?;
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let size = u64_at(0);
        let ptrbytes = u64_at(8);
        let tflag = h[20];
        let kind_raw = h[23];
        let gcdata = u64_at(32);
        let name_off = i32::from_le_bytes([h[40], h[41], h[42], h[43]]);
        if ptrbytes > size {
            return None;
        }
        let mut name = read_abi_name(
            self.mem,
            self.types.checked_add_signed(i64::from(name_off))?,
            MAX_TYPE_NAME,
        )?;
        if tflag & TFLAG_EXTRA_STAR != 0 && name.starts_with('*') {
            name.remove(0);
        }
        let mask_len = ptrbytes.div_ceil(64);
        let mask = if ptrbytes == 0 {
            Some(Vec::new())
        } else if kind_raw & KIND_GCPROG != 0 || mask_len > MAX_GCMASK_BYTES {
            None
        } else if tflag & TFLAG_GCMASK_ON_DEMAND != 0 {
            // GCData points at a slot the runtime fills on first use.
            match self.mem.read_u64(gcdata) {
                Ok(p) if p != 0 => self.mem.read_vec(p, mask_len as usize).ok(),
                _ => None,
            }
        } else {
            self.mem.read_vec(gcdata, mask_len as usize).ok()
        };
        Some(RType {
            addr,
            size,
            ptrbytes,
            kind: kind_raw & KIND_MASK,
            name,
            mask,
        })
    }
}

impl RType {
    /// Whether word `w` (counted from the start of one instance) may hold a
    /// pointer; `None` when the mask is unknown.
    pub fn is_pointer_word(&self, w: u64) -> Option<bool> {
        let mask = self.mask.as_ref()?;
        if w * 8 >= self.ptrbytes {
            return Some(false);
        }
        Some(
            mask.get((w / 8) as usize)
                .is_some_and(|b| b >> (w % 8) & 1 != 0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;

    fn image(ptrbytes: u64, tflag: u8, kind: u8) -> SliceMemory {
        let types = 0x1000u64;
        let mut t = vec![0u8; 0x200];
        // abi.Type at types+0x40: size 32, ptrbytes, gcdata at types+0x100, name at types+0x180.
        let at = 0x40usize;
        t[at..at + 8].copy_from_slice(&32u64.to_le_bytes());
        t[at + 8..at + 16].copy_from_slice(&ptrbytes.to_le_bytes());
        t[at + 20] = tflag;
        t[at + 23] = kind;
        t[at + 32..at + 40].copy_from_slice(&(types + 0x100).to_le_bytes());
        t[at + 40..at + 44].copy_from_slice(&0x180i32.to_le_bytes());
        t[0x100] = 0b101;
        let name = b"*main.T";
        t[0x180] = 0;
        t[0x181] = name.len() as u8;
        t[0x182..0x182 + name.len()].copy_from_slice(name);
        let mut m = SliceMemory::new();
        m.add(types, t);
        m
    }

    #[test]
    fn decodes_name_and_mask() {
        let m = image(24, TFLAG_EXTRA_STAR, 25);
        let mut ty = Types::new(&m, 0x1000, 0x1200);
        let t = ty.get(0x1040).expect("type");
        assert_eq!(t.name, "main.T");
        assert_eq!(t.size, 32);
        assert_eq!(
            (0..4).map(|w| t.is_pointer_word(w)).collect::<Vec<_>>(),
            vec![Some(true), Some(false), Some(true), Some(false)]
        );
    }

    #[test]
    fn outside_the_module_or_damaged_gives_nothing() {
        let m = image(24, 0, 25);
        let mut ty = Types::new(&m, 0x1000, 0x1200);
        assert!(ty.get(0x2000).is_none(), "outside [types, etypes)");
        assert!(ty.get(0x1041).is_none(), "misaligned");
        let bad = image(64, 0, 25);
        let mut ty = Types::new(&bad, 0x1000, 0x1200);
        assert!(ty.get(0x1040).is_none(), "ptrbytes beyond size");
        let prog = image(24, 0, 25 | KIND_GCPROG);
        let mut ty = Types::new(&prog, 0x1000, 0x1200);
        assert_eq!(ty.get(0x1040).and_then(|t| t.mask.clone()), None);
    }
}
