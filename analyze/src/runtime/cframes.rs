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

use super::frame::PhysFrame;
use super::goroutine::ThreadState;
use super::model::Runtime;
use super::unwind::StartRegs;

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
            text_addr: binary.section_info(".text").map_or(0, |s| s.addr),
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
        apply_row(row, mem, sp, bp)
    }
}

/// Bound on a library's `.eh_frame_hdr` and `.eh_frame` read from memory or disk.
const MAX_EH_BYTES: u64 = 16 << 20;
/// `PT_NOTE`.
const PT_NOTE: u32 = 4;
/// `PT_DYNAMIC`.
const PT_DYNAMIC: u32 = 2;
/// Most `.dynsym` entries read from one library (libc has about 3,000).
const MAX_DYNSYMS: u64 = 200_000;
/// Most bytes of `.dynstr` read from one library.
const MAX_DYNSTR: u64 = 8 << 20;
/// `PT_GNU_EH_FRAME`.
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;

/// CFI of one shared library, located through its in-memory ELF headers.
struct LibraryCfi {
    /// Runtime address of the library's first mapping (its ELF header).
    base: u64,
    /// Path, for naming frames.
    name: String,
    hdr_addr: u64,
    hdr: Vec<u8>,
    eh_addr: u64,
    eh: Vec<u8>,
    /// Exported functions (`.dynsym`) as (start, end, name), runtime
    /// addresses, sorted; empty when the snapshot lacks those pages.
    symbols: Vec<(u64, u64, String)>,
}

/// Reads `len` bytes at `addr` of a mapped file: from the snapshot, else
/// from the file itself when it exists on this machine at the same path
/// *and* carries `build_id`, the GNU build id of the image in the snapshot
/// (the library on the analysis machine is often another build).
fn read_mapped(
    rt: &Runtime<'_>,
    maps: &[rdlv_format::Mapping],
    addr: u64,
    len: u64,
    build_id: Option<&[u8]>,
) -> Option<Vec<u8>> {
    if len > MAX_EH_BYTES {
        return None;
    }
    if let Ok(v) = rt.mem().read_vec(addr, len as usize) {
        return Some(v);
    }
    let build_id = build_id?;
    let m = maps
        .iter()
        .find(|m| addr >= m.start && addr < m.end && !m.path.is_empty())?;
    let off = m.offset.checked_add(addr - m.start)?;
    let data = std::fs::read(&m.path).ok()?;
    let local_id = object::read::File::parse(&*data)
        .ok()
        .and_then(|file| object::Object::build_id(&file).ok().flatten())?;
    if local_id != build_id {
        return None;
    }
    data.get(off as usize..off.checked_add(len)? as usize)
        .map(<[u8]>::to_vec)
}

/// The GNU build id among ELF notes (`NT_GNU_BUILD_ID` with owner `GNU`).
fn gnu_build_id(notes: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0usize;
    while at.checked_add(12)? <= notes.len() {
        let word = |o: usize| {
            Some(u32::from_le_bytes(notes.get(at + o..at + o + 4)?.try_into().ok()?) as usize)
        };
        let (namesz, descsz, kind) = (word(0)?, word(4)?, word(8)?);
        let name_at = at + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        if kind == 3 && notes.get(name_at..name_at + namesz)? == b"GNU\0" {
            return notes
                .get(desc_at..desc_at.checked_add(descsz)?)
                .map(<[u8]>::to_vec);
        }
        at = next;
    }
    None
}

impl LibraryCfi {
    fn locate(rt: &Runtime<'_>, pc: u64) -> Option<LibraryCfi> {
        let maps = &rt.target().snapshot().metadata().mappings;
        let m = maps.iter().find(|m| pc >= m.start && pc < m.end)?;
        if m.path.is_empty() || m.path.starts_with('[') {
            return None;
        }
        let base = maps
            .iter()
            .filter(|x| x.path == m.path && x.offset == 0)
            .map(|x| x.start)
            .min()?;
        // Headers and notes only from the snapshot: they say which build of
        // the library the process had.
        let ehdr = read_mapped(rt, maps, base, 64, None)?;
        if ehdr.get(0..4)? != b"\x7fELF" {
            return None;
        }
        let u16_at =
            |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
        let u64_at =
            |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
        let phoff = u64_at(&ehdr, 32)?;
        let phentsize = u64::from(u16_at(&ehdr, 54)?);
        let phnum = u64::from(u16_at(&ehdr, 56)?).min(256);
        let phdrs = read_mapped(rt, maps, base.checked_add(phoff)?, phentsize * phnum, None)?;
        let build_id = (0..phnum).find_map(|i| {
            let p = phdrs.get((i * phentsize) as usize..((i + 1) * phentsize) as usize)?;
            let ty = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
            if ty != PT_NOTE {
                return None;
            }
            let (vaddr, size) = (u64_at(p, 16)?, u64_at(p, 40)?);
            let notes = rt
                .mem()
                .read_vec(base.checked_add(vaddr)?, size.min(64 << 10) as usize)
                .ok()?;
            gnu_build_id(&notes)
        });
        let (hdr_vaddr, hdr_size) = (0..phnum).find_map(|i| {
            let p = phdrs.get((i * phentsize) as usize..((i + 1) * phentsize) as usize)?;
            let ty = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
            (ty == PT_GNU_EH_FRAME).then(|| Some((u64_at(p, 16)?, u64_at(p, 40)?)))?
        })?;
        let hdr_addr = base.checked_add(hdr_vaddr)?;
        let hdr = read_mapped(rt, maps, hdr_addr, hdr_size, build_id.as_deref())?;
        let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_addr);
        let parsed = gimli::EhFrameHdr::new(&hdr, LittleEndian)
            .parse(&bases, 8)
            .ok()?;
        let eh_addr = match parsed.eh_frame_ptr() {
            gimli::Pointer::Direct(a) => a,
            gimli::Pointer::Indirect(_) => return None,
        };
        // .eh_frame runs to the end of its mapping at most.
        let eh_map = maps
            .iter()
            .find(|x| eh_addr >= x.start && eh_addr < x.end)?;
        let eh = read_mapped(
            rt,
            maps,
            eh_addr,
            (eh_map.end - eh_addr).min(MAX_EH_BYTES),
            build_id.as_deref(),
        )?;
        let name = m.path.rsplit('/').next().unwrap_or(&m.path).to_string();
        let dynamic = (0..phnum).find_map(|i| {
            let p = phdrs.get((i * phentsize) as usize..((i + 1) * phentsize) as usize)?;
            let ty = u32::from_le_bytes(p.get(0..4)?.try_into().ok()?);
            (ty == PT_DYNAMIC).then(|| Some((u64_at(p, 16)?, u64_at(p, 40)?)))?
        });
        let symbols = dynamic
            .and_then(|(vaddr, size)| {
                dynamic_symbols(rt.mem(), base, base.checked_add(vaddr)?, size)
            })
            .unwrap_or_default();
        Some(LibraryCfi {
            base,
            name,
            hdr_addr,
            hdr,
            eh_addr,
            eh,
            symbols,
        })
    }

    /// `lib!symbol+0xoff` for a PC in the library, or `lib+0xoff` when no
    /// exported function covers it.
    fn describe(&self, pc: u64) -> String {
        let index = self.symbols.partition_point(|(start, _, _)| *start <= pc);
        match index.checked_sub(1).and_then(|i| self.symbols.get(i)) {
            Some((start, end, symbol)) if pc < *end => {
                format!("{}!{symbol}+{:#x}", self.name, pc - start)
            }
            _ => format!("{}+{:#x}", self.name, pc.wrapping_sub(self.base)),
        }
    }

    fn step(
        &self,
        mem: &dyn Memory,
        pc: u64,
        sp: u64,
        bp: u64,
        innermost: bool,
    ) -> Option<(u64, u64, u64)> {
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(self.hdr_addr)
            .set_eh_frame(self.eh_addr);
        let parsed = gimli::EhFrameHdr::new(&self.hdr, LittleEndian)
            .parse(&bases, 8)
            .ok()?;
        let table = parsed.table()?;
        let eh = EhFrame::new(&self.eh, LittleEndian);
        let mut ctx = UnwindContext::new();
        let lookup = if innermost { pc } else { pc.wrapping_sub(1) };
        let row = table
            .unwind_info_for_address(&eh, &bases, &mut ctx, lookup, EhFrame::cie_from_offset)
            .ok()?;
        apply_row(row, mem, sp, bp)
    }
}

/// The exported functions of a library loaded at `base`, from its dynamic
/// section at `dynamic_addr` (`size` bytes): `DT_SYMTAB`, `DT_STRTAB`,
/// `DT_STRSZ` and the symbol count from `DT_HASH` or `DT_GNU_HASH`. Only
/// the snapshot's memory is read: the library on this machine may be
/// another build. Every length is bounded.
fn dynamic_symbols(
    mem: &dyn Memory,
    base: u64,
    dynamic_addr: u64,
    size: u64,
) -> Option<Vec<(u64, u64, String)>> {
    const DT_NULL: u64 = 0;
    const DT_HASH: u64 = 4;
    const DT_STRTAB: u64 = 5;
    const DT_SYMTAB: u64 = 6;
    const DT_STRSZ: u64 = 10;
    const DT_GNU_HASH: u64 = 0x6fff_fef5;
    let dynamic = mem
        .read_vec(dynamic_addr, size.min(64 << 10) as usize)
        .ok()?;
    let (mut symtab, mut strtab, mut strsz, mut hash, mut gnu_hash) = (0, 0, 0, 0, 0);
    for entry in dynamic.chunks_exact(16) {
        let tag = u64::from_le_bytes(entry.get(0..8)?.try_into().ok()?);
        let value = u64::from_le_bytes(entry.get(8..16)?.try_into().ok()?);
        // glibc's loader relocates these in place; musl leaves them relative.
        let absolute = if value < base {
            value.checked_add(base)?
        } else {
            value
        };
        match tag {
            DT_NULL => break,
            DT_SYMTAB => symtab = absolute,
            DT_STRTAB => strtab = absolute,
            DT_STRSZ => strsz = value,
            DT_HASH => hash = absolute,
            DT_GNU_HASH => gnu_hash = absolute,
            _ => {}
        }
    }
    if symtab == 0 || strtab == 0 || strsz == 0 || strsz > MAX_DYNSTR {
        return None;
    }
    let u32_at = |addr: u64| mem.read_u32(addr).ok();
    let count = if hash != 0 {
        // DT_HASH: nbucket, nchain; nchain is the symbol count.
        u64::from(u32_at(hash.checked_add(4)?)?)
    } else if gnu_hash != 0 {
        // DT_GNU_HASH: the highest bucket start, then its chain to the end bit.
        let nbuckets = u64::from(u32_at(gnu_hash)?);
        let symoffset = u64::from(u32_at(gnu_hash.checked_add(4)?)?);
        let bloom_size = u64::from(u32_at(gnu_hash.checked_add(8)?)?);
        if nbuckets > MAX_DYNSYMS || bloom_size > MAX_DYNSYMS {
            return None;
        }
        let buckets = gnu_hash.checked_add(16)?.checked_add(bloom_size * 8)?;
        let chains = buckets.checked_add(nbuckets * 4)?;
        let words = mem.read_vec(buckets, (nbuckets * 4) as usize).ok()?;
        let last = words
            .chunks_exact(4)
            .filter_map(|w| w.try_into().ok().map(u32::from_le_bytes))
            .max()
            .map_or(0, u64::from);
        if last < symoffset {
            symoffset
        } else {
            let mut index = last;
            loop {
                let word = u32_at(chains.checked_add((index - symoffset) * 4)?)?;
                if word & 1 != 0 || index >= MAX_DYNSYMS {
                    break index + 1;
                }
                index += 1;
            }
        }
    } else {
        return None;
    };
    let count = count.min(MAX_DYNSYMS);
    let table = mem.read_vec(symtab, (count * 24) as usize).ok()?;
    let strings = mem.read_vec(strtab, strsz as usize).ok()?;
    let mut symbols: Vec<(u64, u64, String)> = table
        .chunks_exact(24)
        .filter_map(|sym| {
            let name_off = u32::from_le_bytes(sym.get(0..4)?.try_into().ok()?) as usize;
            let kind = sym.get(4)? & 0xf;
            let shndx = u16::from_le_bytes(sym.get(6..8)?.try_into().ok()?);
            let value = u64::from_le_bytes(sym.get(8..16)?.try_into().ok()?);
            let size = u64::from_le_bytes(sym.get(16..24)?.try_into().ok()?);
            // STT_FUNC or STT_GNU_IFUNC, defined, with a size.
            if !(kind == 2 || kind == 10) || shndx == 0 || size == 0 {
                return None;
            }
            let name = strings.get(name_off..)?;
            let name = &name[..name.iter().position(|&b| b == 0)?];
            let start = base.checked_add(value)?;
            Some((
                start,
                start.checked_add(size)?,
                String::from_utf8_lossy(name).into_owned(),
            ))
        })
        .collect();
    // Aliases share an address (`__nanosleep`, `nanosleep`): keep the
    // public-looking name.
    symbols.sort_unstable_by(|a, b| {
        (a.0, a.2.starts_with('_'), a.2.len(), &a.2).cmp(&(
            b.0,
            b.2.starts_with('_'),
            b.2.len(),
            &b.2,
        ))
    });
    symbols.dedup_by_key(|(start, _, _)| *start);
    Some(symbols)
}

/// Applies one CFI row: the caller's (pc, sp, bp).
fn apply_row<S: gimli::UnwindContextStorage<usize>>(
    row: &gimli::UnwindTableRow<usize, S>,
    mem: &dyn Memory,
    sp: u64,
    bp: u64,
) -> Option<(u64, u64, u64)> {
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
        let maps = &self.target().snapshot().metadata().mappings;
        let mut libs: Vec<LibraryCfi> = Vec::new();
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
            let in_exe = native.symbol_at(sym_pc).is_some()
                || native.cfi_step(mem, pc, sp, bp, innermost).is_some();
            let lib = if in_exe {
                None
            } else {
                match libs.iter().position(|l: &LibraryCfi| {
                    maps.iter()
                        .any(|m| pc >= m.start && pc < m.end && m.path.ends_with(&l.name))
                }) {
                    Some(i) => libs.get(i),
                    None => match LibraryCfi::locate(self, pc) {
                        Some(l) => {
                            libs.push(l);
                            libs.last()
                        }
                        None => None,
                    },
                }
            };
            let symbol = match lib {
                Some(l) => Some(l.describe(sym_pc)),
                None => native.symbol_at(sym_pc).map(str::to_string),
            };
            out.push(ThreadFrame::Native { pc, sp, symbol });
            let lib_step = lib.and_then(|l| l.step(mem, pc, sp, bp, innermost));
            let next = lib_step
                .or_else(|| native.cfi_step(mem, pc, sp, bp, innermost))
                .or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::gnu_build_id;

    fn note(owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(owner.len() as u32).to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(owner);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    #[test]
    fn finds_the_gnu_build_id_among_notes() {
        let id = [
            0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ];
        let mut notes = note(
            b"GNU\0",
            1,
            &[0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
        );
        notes.extend(note(b"Go\0\0", 4, b"go build id"));
        notes.extend(note(b"GNU\0", 3, &id));
        assert_eq!(gnu_build_id(&notes), Some(id.to_vec()));
        assert_eq!(gnu_build_id(&notes[..notes.len() - 4]), None);
        assert_eq!(gnu_build_id(&note(b"XYZ\0", 3, &id)), None);
        // A hostile size never panics.
        let mut hostile = note(b"GNU\0", 3, &id);
        hostile[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(gnu_build_id(&hostile), None);
        assert_eq!(gnu_build_id(&[]), None);
    }
}
