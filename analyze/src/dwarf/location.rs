//! Evaluating the location expressions the Go compiler emits: a frame-base
//! offset (`DW_OP_call_frame_cfa; DW_OP_consts N; DW_OP_plus` or
//! `DW_OP_fbreg N`), registers, and `DW_OP_piece` compositions of both.

use crate::memory::Memory;

/// DWARF register numbers on amd64 (0 rax … 16 rip), as far as known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterSet {
    values: [Option<u64>; 17],
}

impl RegisterSet {
    /// No register is known (every frame but the innermost of a running goroutine).
    pub fn none() -> Self {
        Self::default()
    }
    /// Sets DWARF register `n`.
    pub fn set(&mut self, n: u16, value: u64) {
        if let Some(slot) = self.values.get_mut(usize::from(n)) {
            *slot = Some(value);
        }
    }
    /// DWARF register `n`, if known.
    pub fn get(&self, n: u16) -> Option<u64> {
        self.values.get(usize::from(n)).copied().flatten()
    }
}

/// Where a piece of a variable lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceSource {
    /// In memory at an address.
    Memory(u64),
    /// In a DWARF register.
    Register(u16),
    /// A computed value (`DW_OP_stack_value`).
    Value(u64),
}

/// One `DW_OP_piece`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Size in bytes (`None` = the rest of the variable).
    pub size: Option<u64>,
    /// Source.
    pub source: PieceSource,
}

/// The result of evaluating a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The whole variable is in memory here.
    Address(u64),
    /// The variable's bytes, assembled from registers and memory.
    Bytes(Vec<u8>),
}

/// Bound on the evaluation stack and on the number of operations.
const MAX_OPS: usize = 256;

/// Evaluates `expr` for a variable of `size` bytes in a frame whose canonical
/// frame address is `cfa` (the frame base of Go functions). Register pieces
/// need `regs`; memory pieces are read through `mem`. Errors say why the
/// variable cannot be located (e.g. a register not saved in this frame).
pub fn evaluate_location(
    expr: &gimli::Expression<super::Reader>,
    encoding: gimli::Encoding,
    cfa: Option<u64>,
    regs: &RegisterSet,
    size: u64,
    mem: &dyn Memory,
) -> Result<Location, String> {
    let mut stack: Vec<u64> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    // A location that is a register (not a value on the stack).
    let mut in_register: Option<u16> = None;
    let mut stack_value = false;
    let mut ops = expr.clone().operations(encoding);
    let mut count = 0;
    let need_cfa = || cfa.ok_or_else(|| "the frame's CFA is unknown".to_string());
    loop {
        let op = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => break,
            Err(e) => return Err(format!("malformed location expression: {e}")),
        };
        count += 1;
        if count > MAX_OPS || stack.len() > MAX_OPS {
            return Err("location expression too long".to_string());
        }
        use gimli::Operation as Op;
        match op {
            Op::Address { address } => stack.push(address),
            Op::CallFrameCFA => stack.push(need_cfa()?),
            Op::FrameOffset { offset } => stack.push(need_cfa()?.wrapping_add_signed(offset)),
            Op::UnsignedConstant { value } => stack.push(value),
            Op::SignedConstant { value } => stack.push(value as u64),
            Op::PlusConstant { value } => {
                let top = stack.pop().ok_or("stack underflow")?;
                stack.push(top.wrapping_add(value));
            }
            Op::Plus => {
                let a = stack.pop().ok_or("stack underflow")?;
                let b = stack.pop().ok_or("stack underflow")?;
                stack.push(a.wrapping_add(b));
            }
            Op::Minus => {
                let a = stack.pop().ok_or("stack underflow")?;
                let b = stack.pop().ok_or("stack underflow")?;
                stack.push(b.wrapping_sub(a));
            }
            Op::Register { register } => in_register = Some(register.0),
            Op::RegisterOffset {
                register, offset, ..
            } => {
                let r = regs
                    .get(register.0)
                    .ok_or_else(|| format!("register {} is not known in this frame", register.0))?;
                stack.push(r.wrapping_add_signed(offset));
            }
            Op::Deref { size: sz, .. } => {
                let a = stack.pop().ok_or("stack underflow")?;
                let mut buf = [0u8; 8];
                let n = usize::from(sz).min(8);
                mem.read(a, &mut buf[..n]).map_err(|e| e.to_string())?;
                stack.push(u64::from_le_bytes(buf));
            }
            Op::StackValue => stack_value = true,
            Op::Piece {
                size_in_bits,
                bit_offset: None,
            } => {
                let bytes = size_in_bits / 8;
                let source = if let Some(r) = in_register.take() {
                    PieceSource::Register(r)
                } else if let Some(v) = stack.pop() {
                    if std::mem::take(&mut stack_value) {
                        PieceSource::Value(v)
                    } else {
                        PieceSource::Memory(v)
                    }
                } else {
                    // An empty piece: that part is optimized away.
                    return Err("part of the variable is optimized away".to_string());
                };
                pieces.push(Piece {
                    size: Some(bytes),
                    source,
                });
            }
            Op::Nop => {}
            other => return Err(format!("unsupported location operation {other:?}")),
        }
    }
    if pieces.is_empty() {
        if let Some(r) = in_register {
            pieces.push(Piece {
                size: Some(size),
                source: PieceSource::Register(r),
            });
        } else if stack_value {
            let v = stack.pop().ok_or("empty location")?;
            pieces.push(Piece {
                size: Some(size),
                source: PieceSource::Value(v),
            });
        } else {
            return stack
                .pop()
                .map(Location::Address)
                .ok_or_else(|| "optimized away".to_string());
        }
    }
    // Assemble the bytes.
    let size_usize = usize::try_from(size).map_err(|_| "variable too large")?;
    if size_usize > 1 << 20 {
        return Err("variable too large to assemble from pieces".to_string());
    }
    let mut out = Vec::with_capacity(size_usize);
    for p in pieces {
        let n = p.size.unwrap_or(size.saturating_sub(out.len() as u64));
        let n = usize::try_from(n).map_err(|_| "piece too large")?;
        if out.len() + n > size_usize {
            return Err("pieces larger than the variable".to_string());
        }
        match p.source {
            PieceSource::Memory(a) => {
                let mut buf = vec![0u8; n];
                mem.read(a, &mut buf).map_err(|e| e.to_string())?;
                out.extend_from_slice(&buf);
            }
            PieceSource::Register(r) => {
                let v = regs.get(r).ok_or_else(|| {
                    format!("in register {} (not saved in this frame)", reg_name(r))
                })?;
                let bytes = v.to_le_bytes();
                out.extend_from_slice(bytes.get(..n.min(8)).unwrap_or(&[]));
                out.resize(out.len() + n.saturating_sub(8), 0);
            }
            PieceSource::Value(v) => {
                let bytes = v.to_le_bytes();
                out.extend_from_slice(bytes.get(..n.min(8)).unwrap_or(&[]));
                out.resize(out.len() + n.saturating_sub(8), 0);
            }
        }
    }
    // Pieces that stop short of the variable by more than trailing padding
    // (less than one word), e.g. only the data word of a slice: the rest is
    // optimized away, and zeros there would be a wrong value.
    if out.len() + 8 <= size_usize || out.is_empty() {
        return Err("part of the variable is optimized away".to_string());
    }
    out.resize(size_usize, 0);
    Ok(Location::Bytes(out))
}

/// The amd64 name of DWARF register `n`.
pub fn reg_name(n: u16) -> &'static str {
    const NAMES: [&str; 17] = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip",
    ];
    NAMES.get(usize::from(n)).copied().unwrap_or("xmm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::SliceMemory;
    use std::sync::Arc;

    fn expr(bytes: &[u8]) -> gimli::Expression<super::super::Reader> {
        gimli::Expression(super::super::Reader::new(
            Arc::from(bytes.to_vec().into_boxed_slice()),
            gimli::LittleEndian,
        ))
    }
    fn enc() -> gimli::Encoding {
        gimli::Encoding {
            address_size: 8,
            format: gimli::Format::Dwarf32,
            version: 4,
        }
    }

    #[test]
    fn frame_base_offset() {
        // DW_OP_call_frame_cfa; DW_OP_consts -24 ; DW_OP_plus  → cfa - 24
        let e = expr(&[0x9c, 0x11, 0x68, 0x22]);
        let mem = SliceMemory::new();
        let loc = evaluate_location(&e, enc(), Some(0x1000), &RegisterSet::none(), 8, &mem);
        assert_eq!(loc, Ok(Location::Address(0x1000 - 24)));
        // DW_OP_fbreg -8
        let e = expr(&[0x91, 0x78]);
        let loc = evaluate_location(&e, enc(), Some(0x1000), &RegisterSet::none(), 8, &mem);
        assert_eq!(loc, Ok(Location::Address(0x1000 - 8)));
    }

    #[test]
    fn register_pieces_need_registers() {
        // DW_OP_reg0 DW_OP_piece 8 DW_OP_reg3 DW_OP_piece 8 (a string in rax, rbx)
        let e = expr(&[0x50, 0x93, 0x08, 0x53, 0x93, 0x08]);
        let mem = SliceMemory::new();
        let none = evaluate_location(&e, enc(), Some(0), &RegisterSet::none(), 16, &mem);
        assert!(none.is_err_and(|m| m.contains("rax")));
        let mut regs = RegisterSet::none();
        regs.set(0, 0x1122);
        regs.set(3, 5);
        let got = evaluate_location(&e, enc(), Some(0), &regs, 16, &mem);
        let mut want = 0x1122u64.to_le_bytes().to_vec();
        want.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(got, Ok(Location::Bytes(want)));
    }

    #[test]
    fn a_slice_with_only_its_pointer_described_is_unavailable() {
        // DW_OP_reg0 DW_OP_piece 8 for a 24-byte slice: len and cap are gone.
        let e = expr(&[0x50, 0x93, 0x08]);
        let mut regs = RegisterSet::none();
        regs.set(0, 0x1000);
        let got = evaluate_location(&e, enc(), Some(0), &regs, 24, &SliceMemory::new());
        assert!(got.is_err_and(|m| m.contains("optimized away")));
        // Trailing padding (a 9-byte struct in 16 bytes) is not a missing part.
        let e = expr(&[0x50, 0x93, 0x08, 0x53, 0x93, 0x01]);
        regs.set(3, 1);
        let got = evaluate_location(&e, enc(), Some(0), &regs, 16, &SliceMemory::new());
        assert!(got.is_ok());
    }

    #[test]
    fn mixed_memory_piece() {
        let mut mem = SliceMemory::new();
        mem.add(0x2000, 7u64.to_le_bytes().to_vec());
        // DW_OP_fbreg 0x10 (cfa+16) piece 8; reg0 piece 8
        let e = expr(&[0x91, 0x10, 0x93, 0x08, 0x50, 0x93, 0x08]);
        let mut regs = RegisterSet::none();
        regs.set(0, 9);
        let got = evaluate_location(&e, enc(), Some(0x1ff0), &regs, 16, &mem);
        let mut want = 7u64.to_le_bytes().to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        assert_eq!(got, Ok(Location::Bytes(want)));
    }
}
