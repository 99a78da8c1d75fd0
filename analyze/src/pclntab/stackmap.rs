//! Stack maps and stack objects: the FUNCDATA the garbage collector reads
//! to scan a frame precisely (Go 1.21–1.27 share these layouts).
//!
//! - `FUNCDATA_ArgsPointerMaps` (0) and `FUNCDATA_LocalsPointerMaps` (1)
//!   each point at a `runtime.stackmap`: `n int32` bitmaps of `nbit int32`
//!   bits, each bitmap starting on a byte boundary (`ceil(nbit/8)` bytes).
//!   Bit `i` of a locals bitmap is the word at `varp - nbit*8 + i*8`, of an
//!   args bitmap the word at `argp + i*8`. Which bitmap applies at a PC is
//!   the value of `PCDATA_StackMapIndex` (1) at that PC.
//! - `FUNCDATA_StackObjects` (2) points at a `uintptr` count followed by
//!   that many 16-byte `runtime.stackObjectRecord`s (`off int32, size
//!   int32, ptrdata int32, gcdataoff uint32`): address-taken variables,
//!   `off` from `varp` when negative, from `argp` otherwise, whose pointer
//!   mask is at `moduledata.rodata + gcdataoff`. Up to Go 1.23 a negative
//!   `ptrdata` means the mask is a GC program (`-ptrdata` bytes of data).
//!
//! Everything is read from the executable and bounded by the constants
//! below; a table that breaks them is a [`StackMapError`], never a panic.

use super::{funcdata, pcdata, Func};

/// Largest number of bitmaps in one stack map (one per safe point; real
/// functions have at most a few thousand).
pub const MAX_STACKMAP_ENTRIES: u32 = 1 << 20;
/// Largest number of bits (words) in one bitmap: a 1 GiB frame, the
/// runtime's maximum stack.
pub const MAX_STACKMAP_BITS: u32 = 1 << 27;
/// Largest number of bytes of bitmaps in one stack map.
pub const MAX_STACKMAP_BYTES: u64 = 64 << 20;
/// Largest number of stack objects in one function.
pub const MAX_STACK_OBJECTS: u64 = 1 << 16;
/// Size of the `stackmap` header (`n`, `nbit`).
const STACKMAP_HEADER_LEN: usize = 8;
/// Size of one `stackObjectRecord`.
const STACK_OBJECT_RECORD_LEN: usize = 16;
/// Size of the count that precedes the stack object records.
const STACK_OBJECT_COUNT_LEN: usize = 8;

/// A stack map or stack object table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StackMapError {
    /// The FUNCDATA points outside the executable's loaded bytes.
    #[error("{what} of {func} is not in the executable")]
    Unreadable {
        /// Which table.
        what: &'static str,
        /// Function name.
        func: String,
    },
    /// The table ends before the lengths it declares.
    #[error("{what} of {func} is truncated: {need} bytes declared, {have} present")]
    Truncated {
        /// Which table.
        what: &'static str,
        /// Function name.
        func: String,
        /// Bytes the header declares.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// A count is negative or above its bound.
    #[error("{what} of {func}: {field} = {value} is out of range (at most {max})")]
    OutOfRange {
        /// Which table.
        what: &'static str,
        /// Function name.
        func: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: i64,
        /// The bound.
        max: u64,
    },
    /// The bitmap index at a PC is outside the map.
    #[error("{what} of {func} has {n} bitmaps, the stack map index at the PC is {index}")]
    BadIndex {
        /// Which table.
        what: &'static str,
        /// Function name.
        func: String,
        /// The index.
        index: i32,
        /// Bitmaps in the map.
        n: u32,
    },
}

/// A decoded `runtime.stackmap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackMap<'a> {
    /// Number of bitmaps.
    pub n: u32,
    /// Bits in each bitmap.
    pub nbit: u32,
    data: &'a [u8],
}

/// One bitmap of a stack map: bit `i` says whether word `i` holds a live pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bitmap<'a> {
    /// Number of words described.
    pub nbit: u32,
    /// The bits, least significant bit of byte 0 first.
    pub bytes: &'a [u8],
}

impl Bitmap<'_> {
    /// Whether word `i` holds a pointer (false past the end).
    pub fn bit(&self, i: u32) -> bool {
        i < self.nbit
            && self
                .bytes
                .get((i / 8) as usize)
                .is_some_and(|b| b >> (i % 8) & 1 != 0)
    }

    /// Indexes of the set bits.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.nbit).filter(|&i| self.bit(i))
    }
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> StackMap<'a> {
    /// Decodes a stack map from the bytes at its address (`bytes` may run
    /// past its end). `what` and `func` name it in errors.
    pub fn parse(bytes: &'a [u8], what: &'static str, func: &str) -> Result<Self, StackMapError> {
        let have = bytes.len() as u64;
        let truncated = |need: u64| StackMapError::Truncated {
            what,
            func: func.to_string(),
            need,
            have,
        };
        let (Some(n), Some(nbit)) = (le_i32(bytes, 0), le_i32(bytes, 4)) else {
            return Err(truncated(STACKMAP_HEADER_LEN as u64));
        };
        let range = |field: &'static str, value: i32, max: u32| {
            u32::try_from(value)
                .ok()
                .filter(|&v| v <= max)
                .ok_or(StackMapError::OutOfRange {
                    what,
                    func: func.to_string(),
                    field,
                    value: i64::from(value),
                    max: u64::from(max),
                })
        };
        let n = range("n", n, MAX_STACKMAP_ENTRIES)?;
        let nbit = range("nbit", nbit, MAX_STACKMAP_BITS)?;
        let total = u64::from(n) * u64::from(nbit.div_ceil(8));
        if total > MAX_STACKMAP_BYTES {
            return Err(StackMapError::OutOfRange {
                what,
                func: func.to_string(),
                field: "n*ceil(nbit/8)",
                value: total as i64,
                max: MAX_STACKMAP_BYTES,
            });
        }
        let need = STACKMAP_HEADER_LEN as u64 + total;
        let data = usize::try_from(need)
            .ok()
            .and_then(|end| bytes.get(STACKMAP_HEADER_LEN..end))
            .ok_or_else(|| truncated(need))?;
        Ok(StackMap { n, nbit, data })
    }

    /// Bitmap `index` (the `PCDATA_StackMapIndex` value at a PC).
    pub fn bitmap(
        &self,
        index: i32,
        what: &'static str,
        func: &str,
    ) -> Result<Bitmap<'a>, StackMapError> {
        let bad = || StackMapError::BadIndex {
            what,
            func: func.to_string(),
            index,
            n: self.n,
        };
        let i = u32::try_from(index)
            .ok()
            .filter(|&i| i < self.n)
            .ok_or_else(bad)?;
        let per = self.nbit.div_ceil(8) as usize;
        let start = (i as usize).checked_mul(per).ok_or_else(bad)?;
        let bytes = self.data.get(start..start + per).ok_or_else(bad)?;
        Ok(Bitmap {
            nbit: self.nbit,
            bytes,
        })
    }
}

/// One `runtime.stackObjectRecord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackObjectRecord {
    /// Offset in the frame: from `varp` when negative, from `argp` otherwise.
    pub off: i32,
    /// Size in bytes.
    pub size: u32,
    /// Bytes from the start that may hold pointers.
    pub ptrdata: u32,
    /// The mask is a GC program (Go ≤ 1.23, large types only).
    pub gc_prog: bool,
    /// Offset of the pointer mask (or GC program) from `moduledata.rodata`.
    pub gcdataoff: u32,
}

impl StackObjectRecord {
    /// Address of the object in a frame with the given `varp` and `argp`.
    pub fn addr(&self, varp: u64, argp: u64) -> Option<u64> {
        let base = if self.off < 0 { varp } else { argp };
        base.checked_add_signed(i64::from(self.off))
    }
}

/// Decodes the stack object table from the bytes at its address.
pub fn parse_stack_objects(
    bytes: &[u8],
    func: &str,
) -> Result<Vec<StackObjectRecord>, StackMapError> {
    const WHAT: &str = "stack objects";
    let have = bytes.len() as u64;
    let count = bytes
        .get(..STACK_OBJECT_COUNT_LEN)
        .map(|b| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        })
        .ok_or_else(|| StackMapError::Truncated {
            what: WHAT,
            func: func.to_string(),
            need: STACK_OBJECT_COUNT_LEN as u64,
            have,
        })?;
    if count > MAX_STACK_OBJECTS {
        return Err(StackMapError::OutOfRange {
            what: WHAT,
            func: func.to_string(),
            field: "count",
            value: i64::try_from(count).unwrap_or(i64::MAX),
            max: MAX_STACK_OBJECTS,
        });
    }
    let need = STACK_OBJECT_COUNT_LEN as u64 + count * STACK_OBJECT_RECORD_LEN as u64;
    let records = usize::try_from(need)
        .ok()
        .and_then(|end| bytes.get(STACK_OBJECT_COUNT_LEN..end))
        .ok_or_else(|| StackMapError::Truncated {
            what: WHAT,
            func: func.to_string(),
            need,
            have,
        })?;
    let mut out = Vec::with_capacity(count as usize);
    for r in records.chunks_exact(STACK_OBJECT_RECORD_LEN) {
        let field = |at: usize| le_i32(r, at).unwrap_or(0);
        let (off, size, ptrdata) = (field(0), field(4), field(8));
        let gcdataoff = field(12) as u32;
        let size = u32::try_from(size).map_err(|_| StackMapError::OutOfRange {
            what: WHAT,
            func: func.to_string(),
            field: "size",
            value: i64::from(size),
            max: u64::from(u32::MAX),
        })?;
        out.push(StackObjectRecord {
            off,
            size,
            ptrdata: ptrdata.unsigned_abs(),
            gc_prog: ptrdata < 0,
            gcdataoff,
        });
    }
    Ok(out)
}

/// The stack-scanning facts of a function at one PC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameMaps<'a> {
    /// Live pointer words below `varp` (`None`: the function has no locals map).
    pub locals: Option<Bitmap<'a>>,
    /// Live pointer words from `argp` (`None`: no args map; empty when the
    /// map has no bits).
    pub args: Option<Bitmap<'a>>,
    /// Address-taken variables of the frame.
    pub objects: Vec<StackObjectRecord>,
}

/// `_func.args` of functions whose argument size is unknown (reflect stubs).
pub const ARGS_SIZE_UNKNOWN: i32 = i32::MIN;

impl<'a> Func<'a> {
    /// The `PCDATA_StackMapIndex` the runtime uses for a frame stopped at
    /// `continpc` (a return address, or the entry): the value at
    /// `continpc - 1` (the call instruction), 0 at the entry or where the
    /// table has no value, as `getStackMap` does.
    pub fn stack_map_index(&self, continpc: u64) -> i32 {
        if continpc == self.entry() {
            return 0;
        }
        match self.pcdata(pcdata::STACK_MAP_INDEX, continpc.wrapping_sub(1)) {
            None | Some(-1) => 0,
            Some(v) => v,
        }
    }

    fn stack_map(
        &self,
        index: u32,
        what: &'static str,
    ) -> Result<Option<StackMap<'a>>, StackMapError> {
        if self.funcdata_addr(index).is_none() {
            return Ok(None);
        }
        let max = usize::try_from(MAX_STACKMAP_BYTES).unwrap_or(usize::MAX) + STACKMAP_HEADER_LEN;
        let bytes = self
            .funcdata_bytes(index, max)
            .ok_or_else(|| StackMapError::Unreadable {
                what,
                func: self.name().to_string(),
            })?;
        StackMap::parse(bytes, what, self.name()).map(Some)
    }

    /// `FUNCDATA_LocalsPointerMaps`, if the function has it.
    pub fn locals_pointer_maps(&self) -> Result<Option<StackMap<'a>>, StackMapError> {
        self.stack_map(funcdata::LOCALS_POINTER_MAPS, "locals pointer maps")
    }

    /// `FUNCDATA_ArgsPointerMaps`, if the function has it.
    pub fn args_pointer_maps(&self) -> Result<Option<StackMap<'a>>, StackMapError> {
        self.stack_map(funcdata::ARGS_POINTER_MAPS, "args pointer maps")
    }

    /// `FUNCDATA_StackObjects` (empty when absent).
    pub fn stack_objects(&self) -> Result<Vec<StackObjectRecord>, StackMapError> {
        if self.funcdata_addr(funcdata::STACK_OBJECTS).is_none() {
            return Ok(Vec::new());
        }
        let max = STACK_OBJECT_COUNT_LEN
            + usize::try_from(MAX_STACK_OBJECTS).unwrap_or(usize::MAX) * STACK_OBJECT_RECORD_LEN;
        let bytes = self
            .funcdata_bytes(funcdata::STACK_OBJECTS, max)
            .ok_or_else(|| StackMapError::Unreadable {
                what: "stack objects",
                func: self.name().to_string(),
            })?;
        parse_stack_objects(bytes, self.name())
    }

    /// The maps that apply to a frame of this function whose locals take
    /// `locals_bytes` (`varp - sp`) and which stopped at `continpc`, as
    /// `getStackMap` chooses them: no locals map is needed for an empty
    /// frame, no args map for a function without stack arguments, and a
    /// map without bits describes nothing.
    pub fn frame_maps(
        &self,
        continpc: u64,
        locals_bytes: u64,
    ) -> Result<FrameMaps<'a>, StackMapError> {
        let index = self.stack_map_index(continpc);
        let name = self.name();
        let mut out = FrameMaps::default();
        if locals_bytes > 0 {
            if let Some(m) = self.locals_pointer_maps()? {
                if m.n == 0 {
                    return Err(StackMapError::BadIndex {
                        what: "locals pointer maps",
                        func: name.to_string(),
                        index,
                        n: 0,
                    });
                }
                out.locals = Some(if m.nbit == 0 {
                    Bitmap {
                        nbit: 0,
                        bytes: &[],
                    }
                } else {
                    m.bitmap(index, "locals pointer maps", name)?
                });
            }
        } else {
            out.locals = Some(Bitmap {
                nbit: 0,
                bytes: &[],
            });
        }
        let args = self.args_size();
        if args == 0 {
            out.args = Some(Bitmap {
                nbit: 0,
                bytes: &[],
            });
        } else if args != ARGS_SIZE_UNKNOWN {
            if let Some(m) = self.args_pointer_maps()? {
                if m.n == 0 {
                    return Err(StackMapError::BadIndex {
                        what: "args pointer maps",
                        func: name.to_string(),
                        index,
                        n: 0,
                    });
                }
                out.args = Some(if m.nbit == 0 {
                    Bitmap {
                        nbit: 0,
                        bytes: &[],
                    }
                } else {
                    m.bitmap(index, "args pointer maps", name)?
                });
            }
        }
        out.objects = self.stack_objects()?;
        Ok(out)
    }
}
