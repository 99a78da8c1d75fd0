//! A minimal x86-64 instruction-length decoder that lists the RIP-relative
//! memory operands of a function's code. Stripped Go binaries have no
//! symbols for `runtime.allgs`, `allglen`, `allm` or `sched`, but the code of
//! functions the pclntab still names (`runtime.allgadd`, `forEachG`, …)
//! addresses them RIP-relative; their targets recover the globals.
//!
//! This is not a disassembler: it decodes prefixes, REX/VEX/EVEX, opcode
//! maps, ModRM/SIB, displacements and immediates just well enough to step
//! from one instruction to the next. On a byte it does not know it stops and
//! returns what it found so far.

/// How an instruction uses its RIP-relative operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RipAccess {
    /// `MOV`/`MOVZX`/`MOVSX`/`MOVSXD reg, [rip+d]`.
    Load,
    /// `MOV [rip+d], reg|imm`.
    Store,
    /// `LEA reg, [rip+d]`.
    Lea,
    /// `CMP`/`TEST` with a memory operand.
    Compare,
    /// Anything else (ALU, atomics, SSE, calls through memory, …).
    Other,
}

/// One RIP-relative memory operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RipRef {
    /// Address of the instruction.
    pub insn_addr: u64,
    /// Length of the instruction in bytes.
    pub insn_len: u8,
    /// The address the operand refers to (end of instruction + disp32).
    pub target: u64,
    /// How the operand is used.
    pub access: RipAccess,
    /// Opcode: the byte for the one-byte map, `0x0f00 | op` for 0F xx,
    /// `0x0f3800 | op` / `0x0f3a00 | op` for the three-byte maps.
    pub opcode: u32,
    /// Whether REX.W (64-bit operand size) was set.
    pub rex_w: bool,
}

/// Result of decoding the rip-relative refs of a code range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    /// RIP-relative operands, in code order.
    pub refs: Vec<RipRef>,
    /// Bytes decoded before stopping (equal to the input length when all
    /// instructions were understood).
    pub decoded_len: usize,
}

/// What follows an opcode byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Not valid (or not supported) in 64-bit mode: stop decoding.
    Invalid,
    /// No operand bytes.
    Plain,
    /// ModRM (+SIB/disp).
    ModRm,
    /// ModRM then an 8-bit immediate.
    ModRmImm8,
    /// ModRM then a 16/32-bit immediate.
    ModRmImmZ,
    /// 8-bit immediate or rel8.
    Imm8,
    /// 16/32-bit immediate.
    ImmZ,
    /// 16-bit immediate.
    Imm16,
    /// ENTER: 16-bit then 8-bit immediate.
    Imm16Imm8,
    /// MOV r, imm: 64-bit with REX.W, else 16/32.
    ImmV,
    /// rel32 branch.
    Rel32,
    /// MOV with a 64-bit absolute address (A0-A3).
    Moffs,
    /// Group 3 (F6/F7): immediate only for /0 and /1.
    Group3 {
        /// 8-bit (F6) or 16/32-bit (F7) immediate.
        wide: bool,
    },
}

fn one_byte_form(op: u8) -> Form {
    use Form::*;
    match op {
        0x00..=0x3f => match op & 7 {
            0..=3 if op != 0x0f => ModRm,
            4 => Imm8,
            5 => ImmZ,
            _ => Invalid,
        },
        0x50..=0x5f => Plain,
        0x63 => ModRm,
        0x68 => ImmZ,
        0x69 => ModRmImmZ,
        0x6a => Imm8,
        0x6b => ModRmImm8,
        0x6c..=0x6f => Plain,
        0x70..=0x7f => Imm8,
        0x80 | 0x83 => ModRmImm8,
        0x81 => ModRmImmZ,
        0x84..=0x8f => ModRm,
        0x90..=0x99 | 0x9b..=0x9f => Plain,
        0xa0..=0xa3 => Moffs,
        0xa4..=0xa7 | 0xaa..=0xaf => Plain,
        0xa8 => Imm8,
        0xa9 => ImmZ,
        0xb0..=0xb7 => Imm8,
        0xb8..=0xbf => ImmV,
        0xc0 | 0xc1 | 0xc6 => ModRmImm8,
        0xc2 | 0xca => Imm16,
        0xc3 | 0xc9 | 0xcb | 0xcc | 0xcf => Plain,
        0xc7 => ModRmImmZ,
        0xc8 => Imm16Imm8,
        0xcd => Imm8,
        0xd0..=0xd3 | 0xd8..=0xdf => ModRm,
        0xd7 => Plain,
        0xe0..=0xe7 | 0xeb => Imm8,
        0xe8 | 0xe9 => Rel32,
        0xec..=0xef | 0xf1 | 0xf4 | 0xf5 | 0xf8..=0xfd => Plain,
        0xf6 => Group3 { wide: false },
        0xf7 => Group3 { wide: true },
        0xfe | 0xff => ModRm,
        _ => Invalid,
    }
}

fn two_byte_form(op: u8) -> Form {
    use Form::*;
    match op {
        0x00..=0x03 | 0x0d | 0x10..=0x23 | 0x28..=0x2f | 0x40..=0x6f => ModRm,
        0x05..=0x09 | 0x0b | 0x0e | 0x30..=0x35 | 0x37 | 0x77 | 0xa0..=0xa2 | 0xa8..=0xaa => Plain,
        0x70..=0x73 | 0xa4 | 0xac | 0xba | 0xc2 | 0xc4..=0xc6 => ModRmImm8,
        0x74..=0x76 | 0x78..=0x7f | 0x90..=0x9f | 0xa3 | 0xa5 | 0xab | 0xad..=0xb9 => ModRm,
        0xbb..=0xc1 | 0xc3 | 0xc7 | 0xd0..=0xff => ModRm,
        0x80..=0x8f => Rel32,
        0xc8..=0xcf => Plain,
        _ => Invalid,
    }
}

/// VEX/EVEX map 1 opcodes that carry an 8-bit immediate.
fn vex_map1_has_imm8(op: u8) -> bool {
    matches!(op, 0x70..=0x73 | 0xc2 | 0xc4..=0xc6)
}

fn access_of(opcode: u32, reg: u8) -> RipAccess {
    match opcode {
        0x8a | 0x8b | 0x63 | 0x0fb6 | 0x0fb7 | 0x0fbe | 0x0fbf => RipAccess::Load,
        0x88 | 0x89 | 0xc6 | 0xc7 => RipAccess::Store,
        0x8d => RipAccess::Lea,
        0x38..=0x3b | 0x84 | 0x85 => RipAccess::Compare,
        0x80..=0x83 if reg == 7 => RipAccess::Compare,
        0xf6 | 0xf7 if reg <= 1 => RipAccess::Compare,
        _ => RipAccess::Other,
    }
}

/// A cursor over instruction bytes.
struct Cursor<'a> {
    code: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.code.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.code.len()).then(|| self.pos = end)
    }

    fn i32(&mut self) -> Option<i32> {
        let b = self.code.get(self.pos..self.pos.checked_add(4)?)?;
        self.pos += 4;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A RIP-relative operand before its target is computed.
struct RipOperand {
    disp: i32,
    opcode: u32,
    reg: u8,
    rex_w: bool,
}

/// Decodes one instruction at the start of `code`. Returns its length and
/// its RIP-relative operand, if any.
fn decode_one(code: &[u8]) -> Option<(usize, Option<RipOperand>)> {
    let mut c = Cursor { code, pos: 0 };
    let mut opsize16 = false;
    let mut addr32 = false;
    let mut rex_w = false;
    let mut b = c.byte()?;
    // Legacy prefixes, any order, at most 14 (the architectural limit is 15 bytes).
    let mut prefixes = 0;
    while matches!(
        b,
        0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65
    ) {
        opsize16 |= b == 0x66;
        addr32 |= b == 0x67;
        prefixes += 1;
        if prefixes > 14 {
            return None;
        }
        b = c.byte()?;
    }
    if (0x40..=0x4f).contains(&b) {
        rex_w = b & 0x08 != 0;
        b = c.byte()?;
    }
    let (opcode, form) = match b {
        0x0f => {
            let b2 = c.byte()?;
            match b2 {
                0x38 => (0x0f3800 | u32::from(c.byte()?), Form::ModRm),
                0x3a => (0x0f3a00 | u32::from(c.byte()?), Form::ModRmImm8),
                _ => (0x0f00 | u32::from(b2), two_byte_form(b2)),
            }
        }
        0xc4 | 0xc5 | 0x62 => {
            // VEX (2 or 3 bytes) and EVEX (4 bytes) are always that in 64-bit mode.
            let map = match b {
                0xc5 => {
                    c.skip(1)?;
                    1
                }
                0xc4 => {
                    let p0 = c.byte()?;
                    let p1 = c.byte()?;
                    rex_w = p1 & 0x80 != 0;
                    p0 & 0x1f
                }
                _ => {
                    let p0 = c.byte()?;
                    let p1 = c.byte()?;
                    c.skip(1)?;
                    rex_w = p1 & 0x80 != 0;
                    p0 & 0x07
                }
            };
            let op = c.byte()?;
            let form = match map {
                // VZEROUPPER/VZEROALL: the only VEX instruction without ModRM.
                1 if op == 0x77 => Form::Plain,
                1 if vex_map1_has_imm8(op) => Form::ModRmImm8,
                1 | 2 | 5 | 6 => Form::ModRm,
                3 => Form::ModRmImm8,
                _ => return None,
            };
            let prefix = match map {
                1 => 0x0f00,
                2 => 0x0f3800,
                3 => 0x0f3a00,
                other => u32::from(other) << 16,
            };
            (prefix | u32::from(op) | 0x0100_0000, form)
        }
        _ => (u32::from(b), one_byte_form(b)),
    };
    let imm_z = if opsize16 { 2 } else { 4 };
    let mut rip = None;
    let needs_modrm = matches!(
        form,
        Form::ModRm | Form::ModRmImm8 | Form::ModRmImmZ | Form::Group3 { .. }
    );
    let mut reg = 0u8;
    if needs_modrm {
        let modrm = c.byte()?;
        let md = modrm >> 6;
        let rm = modrm & 7;
        reg = (modrm >> 3) & 7;
        if md != 3 {
            if rm == 4 {
                let sib = c.byte()?;
                if md == 0 && sib & 7 == 5 {
                    c.skip(4)?;
                }
            }
            match md {
                0 if rm == 5 => rip = Some(c.i32()?),
                1 => c.skip(1)?,
                2 => c.skip(4)?,
                _ => {}
            }
        }
    }
    let imm = match form {
        Form::Invalid => return None,
        Form::Plain | Form::ModRm => 0,
        Form::ModRmImm8 | Form::Imm8 => 1,
        Form::ModRmImmZ | Form::ImmZ => imm_z,
        Form::Imm16 => 2,
        Form::Imm16Imm8 => 3,
        Form::ImmV => {
            if rex_w {
                8
            } else {
                imm_z
            }
        }
        Form::Rel32 => 4,
        Form::Moffs => {
            if addr32 {
                4
            } else {
                8
            }
        }
        Form::Group3 { wide } => match (reg, wide) {
            (0 | 1, false) => 1,
            (0 | 1, true) => imm_z,
            _ => 0,
        },
    };
    c.skip(imm)?;
    let len = c.pos;
    if len > 15 {
        return None;
    }
    let opcode_for_access = opcode & 0x00ff_ffff;
    let operand = rip.map(|disp| RipOperand {
        disp,
        opcode: opcode_for_access,
        reg,
        rex_w,
    });
    Some((len, operand))
}

/// Lists the RIP-relative memory operands of the code `code` loaded at
/// address `addr`, stopping at the first instruction it cannot decode.
pub fn rip_relative_refs(code: &[u8], addr: u64) -> Decoded {
    let mut out = Decoded::default();
    let mut pos = 0usize;
    while pos < code.len() {
        let Some((len, rip)) = decode_one(&code[pos..]) else {
            break;
        };
        let insn_addr = addr.wrapping_add(pos as u64);
        let next = insn_addr.wrapping_add(len as u64);
        if let Some(op) = rip {
            out.refs.push(RipRef {
                insn_addr,
                insn_len: len as u8,
                target: next.wrapping_add(op.disp as i64 as u64),
                access: access_of(op.opcode, op.reg),
                opcode: op.opcode,
                rex_w: op.rex_w,
            });
        }
        pos += len;
    }
    out.decoded_len = pos;
    out
}

/// The RIP-relative operands in the code of `func` (a function of `tab`),
/// with runtime addresses; `None` if its code is not in the file.
pub fn func_rip_refs(
    binary: &crate::binary::Binary,
    tab: &crate::pclntab::Pclntab,
    func: &crate::pclntab::Func<'_>,
) -> Option<Decoded> {
    let len = usize::try_from(func.size()).ok()?;
    let code = binary.read_static(func.entry().wrapping_sub(tab.bias()), len)?;
    Some(rip_relative_refs(code, func.entry()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_common_rip_relative_forms() {
        let code: &[u8] = &[
            0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00, // mov rax, [rip+0x10]
            0x48, 0x8d, 0x0d, 0xf0, 0xff, 0xff, 0xff, // lea rcx, [rip-0x10]
            0x48, 0x89, 0x15, 0x00, 0x01, 0x00, 0x00, // mov [rip+0x100], rdx
            0x48, 0x83, 0x3d, 0x08, 0x00, 0x00, 0x00, 0x05, // cmp qword [rip+8], 5
            0xc7, 0x05, 0x04, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
            0x00, // mov dword [rip+4], 1
            0xf0, 0x48, 0x0f, 0xb1, 0x0d, 0x20, 0x00, 0x00,
            0x00, // lock cmpxchg [rip+0x20], rcx
            0x0f, 0xb6, 0x05, 0x01, 0x00, 0x00, 0x00, // movzx eax, byte [rip+1]
            0xc3, // ret
        ];
        let base = 0x1000u64;
        let d = rip_relative_refs(code, base);
        assert_eq!(d.decoded_len, code.len());
        let got: Vec<(u64, u64, RipAccess, u8)> = d
            .refs
            .iter()
            .map(|r| (r.insn_addr, r.target, r.access, r.insn_len))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x1000, 0x1007 + 0x10, RipAccess::Load, 7),
                (0x1007, 0x100e - 0x10, RipAccess::Lea, 7),
                (0x100e, 0x1015 + 0x100, RipAccess::Store, 7),
                (0x1015, 0x101d + 8, RipAccess::Compare, 8),
                (0x101d, 0x1027 + 4, RipAccess::Store, 10),
                (0x1027, 0x1030 + 0x20, RipAccess::Other, 9),
                (0x1030, 0x1037 + 1, RipAccess::Load, 7),
            ]
        );
        assert!(d.refs[0].rex_w && !d.refs[4].rex_w);
    }

    #[test]
    fn non_rip_operands_and_immediates_keep_sync() {
        let code: &[u8] = &[
            0x49, 0x3b, 0x66, 0x10, // cmp rsp, [r14+0x10]
            0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, // movabs rax, imm64
            0x48, 0x8b, 0x44, 0x24, 0x08, // mov rax, [rsp+8]
            0xf7, 0x05, 0, 0, 0, 0, 0xff, 0, 0, 0, // test dword [rip+0], 0xff
            0xf7, 0xd8, // neg eax (group 3, no immediate)
            0xe8, 0, 0, 0, 0, // call rel32
            0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00, // nop word [rax+rax]
            0xc5, 0xfe, 0x6f, 0x05, 0x10, 0, 0, 0, // vmovdqu ymm0, [rip+0x10]
            0xc5, 0xf8, 0x77, // vzeroupper (no ModRM)
            0x0f, 0x0b, // ud2
        ];
        let d = rip_relative_refs(code, 0);
        assert_eq!(d.decoded_len, code.len());
        assert_eq!(d.refs.len(), 2);
        assert_eq!(d.refs[0].access, RipAccess::Compare);
        assert_eq!(d.refs[0].target, 29);
        assert_eq!(d.refs[1].target, 50 + 0x10);
    }

    #[test]
    fn stops_on_unknown_or_truncated_bytes() {
        let code: &[u8] = &[
            0x48, 0x8b, 0x05, 0x10, 0, 0, 0, 0x06, 0x48, 0x8b, 0x05, 0, 0, 0, 0,
        ];
        let d = rip_relative_refs(code, 0);
        assert_eq!(d.decoded_len, 7);
        assert_eq!(d.refs.len(), 1);
        for cut in 0..7 {
            let d = rip_relative_refs(&code[..cut], 0);
            assert!(d.refs.is_empty());
            assert_eq!(d.decoded_len, 0);
        }
        // Arbitrary bytes never panic and never report more than they decoded.
        let mut state = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let d = rip_relative_refs(&noise, 0);
        assert!(d.decoded_len <= noise.len());
    }
}
