//! Native (C) frames of a thread: cgo code in the executable unwound with
//! its `.eh_frame` CFI, other code (libc, vDSO) by the frame-pointer chain,
//! until a Go PC is reached; the Go unwinder takes over from there.

use std::borrow::Cow;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection,
    X86_64,
};

use crate::binary::Binary;
use crate::memory::Memory;

use super::goroutine::ThreadState;
use super::model::Runtime;
use super::unwind::{PhysFrame, StartRegs};

/// Bound on native frames before giving up on reaching Go code.
const MAX_NATIVE_FRAMES: usize = 128;

/// One frame of a thread's stack.
#[derive(Debug, Clone)]
pub enum ThreadFrame {
    /// A Go function (pclntab).
    Go(PhysFrame),
    /// Native code: PC, SP and the ELF symbol when known.
    Native {
        /// PC.
        pc: u64,
        /// SP.
        sp: u64,
        /// Symbol from `.symtab` (absent for libraries and stripped binaries).
        symbol: Option<String>,
    },
}

/// `.eh_frame` and function symbols of the executable.
pub struct NativeUnwinder<'b> {
    eh_frame: Option<(u64, Cow<'b, [u8]>)>,
    text_addr: u64,
    bias: u64,
    /// (start, end, name), sorted, runtime addresses.
    symbols: Vec<(u64, u64, String)>,
}

impl<'b> NativeUnwinder<'b> {
    /// Collects the CFI and symbols of `binary` loaded at `bias`.
    pub fn new(binary: &'b Binary, bias: u64) -> NativeUnwinder<'b> {
        let mut symbols: Vec<(u64, u64, String)> = binary
            .symbols()
            .iter()
            .filter(|(_, s)| s.size > 0)
            .map(|(n, s)| {
                let start = s.addr.wrapping_add(bias);
                (start, start.wrapping_add(s.size), n.clone())
            })
            .collect();
        symbols.sort_unstable();
        NativeUnwinder {
            eh_frame: binary.section(".eh_frame"),
            text_addr: binary.section(".text").map(|(a, _)| a).unwrap_or(0),
            bias,
            symbols,
        }
    }

    /// The ELF symbol containing `pc`.
    pub fn symbol_at(&self, pc: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.0 <= pc);
        let (start, end, name) = self.symbols.get(i.checked_sub(1)?)?;
        (pc >= *start && pc < *end).then_some(name.as_str())
    }

    /// One CFI step from (pc, sp, bp) to the caller's (pc, sp, bp). `pc` is
    /// a return address unless `innermost`.
    fn cfi_step(
        &self,
        mem: &dyn Memory,
        pc: u64,
        sp: u64,
        bp: u64,
        innermost: bool,
    ) -> Option<(u64, u64, u64)> {
        let (eh_addr, data) = self.eh_frame.as_ref()?;
        let eh = EhFrame::new(data, LittleEndian);
        let bases = BaseAddresses::default()
            .set_eh_frame(*eh_addr)
            .set_text(self.text_addr);
        let mut ctx = UnwindContext::new();
        let link_pc = pc.wrapping_sub(self.bias);
        let lookup = if innermost {
            link_pc
        } else {
            link_pc.wrapping_sub(1)
        };
        let row = eh
            .unwind_info_for_address(&bases, &mut ctx, lookup, EhFrame::cie_from_offset)
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => {
                let base = if *register == X86_64::RSP {
                    sp
                } else if *register == X86_64::RBP {
                    bp
                } else {
                    return None;
                };
                base.checked_add_signed(*offset)?
            }
            CfaRule::Expression(_) => return None,
        };
        let ra = match row.register(X86_64::RA) {
            Some(RegisterRule::Offset(o)) => mem.read_u64(cfa.checked_add_signed(o)?).ok()?,
            _ => return None,
        };
        let new_bp = match row.register(X86_64::RBP) {
            Some(RegisterRule::Offset(o)) => mem.read_u64(cfa.checked_add_signed(o)?).ok()?,
            _ => bp,
        };
        Some((ra, cfa, new_bp))
    }
}

impl Runtime<'_> {
    /// A thread's stack from its registers, native frames included: cgo C
    /// code by `.eh_frame`, other native code by frame pointers, then Go
    /// frames as [`Runtime::thread_frames`] unwinds them.
    pub fn thread_stack(&self, t: &ThreadState) -> Vec<ThreadFrame> {
        let mut out = Vec::new();
        if self.pc_info(t.regs.pc).is_some() || t.m.as_ref().is_some_and(|m| m.vdso_sp != 0) {
            out.extend(self.thread_frames(t).into_iter().map(ThreadFrame::Go));
            return out;
        }
        let native = NativeUnwinder::new(self.target().binary(), self.target().bias());
        let mem = self.mem();
        let (mut pc, mut sp, mut bp) = (t.regs.pc, t.regs.sp, t.regs.bp);
        let mut innermost = true;
        while out.len() < MAX_NATIVE_FRAMES {
            if self.pc_info(pc).is_some() {
                let start = StartRegs {
                    pc,
                    sp,
                    trap: false,
                    syscall: false,
                };
                let on_system_stack =
                    t.m.as_ref()
                        .is_some_and(|m| t.tls_g.is_some_and(|g| g == m.g0 || g == m.gsignal));
                let curg =
                    t.m.as_ref()
                        .filter(|m| m.curg != 0)
                        .and_then(|m| self.read_g(m.curg).ok());
                let frames = match curg {
                    Some(g) if on_system_stack => self.unwind_jumping(start, &g),
                    _ => self.unwind(start, None),
                };
                out.extend(frames.into_iter().map(ThreadFrame::Go));
                break;
            }
            // A return address may be one past its function's last byte.
            let sym_pc = if innermost { pc } else { pc.wrapping_sub(1) };
            out.push(ThreadFrame::Native {
                pc,
                sp,
                symbol: native.symbol_at(sym_pc).map(str::to_string),
            });
            let next = native.cfi_step(mem, pc, sp, bp, innermost).or_else(|| {
                // Frame-pointer step: [bp] = caller's bp, [bp+8] = return address.
                if bp == 0 || bp % 8 != 0 || bp < sp {
                    return None;
                }
                let ra = mem.read_u64(bp.checked_add(8)?).ok()?;
                let caller_bp = mem.read_u64(bp).ok()?;
                Some((ra, bp.checked_add(16)?, caller_bp))
            });
            let Some((npc, nsp, nbp)) = next else { break };
            if npc == 0 || nsp <= sp {
                break;
            }
            (pc, sp, bp) = (npc, nsp, nbp);
            innermost = false;
        }
        out
    }
}
