//! Reading typed memory into [`Value`] trees.

use crate::dwarf::{TypeId, TypeKind};
use crate::error::{AnalyzeError, Result};
use crate::memory::Memory;

use super::maps;
use super::{LoadConfig, Pointee, Program, Value, ValueKind, MAX_DEPTH};

/// Arrays whose elements are prefetched in one read up to this many bytes.
const PREFETCH_MAX: u64 = 4 << 20;

/// Where values assembled from registers are placed so that the same code
/// reads them: an address no Go heap or stack uses on amd64.
pub(crate) const SYNTHETIC_BASE: u64 = 0xffff_ff00_0000_0000;

/// Bytes at a fixed range in front of another memory (prefetched arrays,
/// variables assembled from registers).
pub(crate) struct Overlay<'m> {
    pub(crate) base: &'m dyn Memory,
    pub(crate) start: u64,
    pub(crate) bytes: Vec<u8>,
}

impl Memory for Overlay<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(off) = addr.checked_sub(self.start) {
            if let (Ok(off), Some(end)) = (
                usize::try_from(off),
                usize::try_from(off)
                    .ok()
                    .and_then(|o| o.checked_add(buf.len())),
            ) {
                if let Some(src) = self.bytes.get(off..end) {
                    buf.copy_from_slice(src);
                    return Ok(());
                }
            }
        }
        self.base.read(addr, buf)
    }
}

/// Loads values under one configuration, tracking the pointer path for cycles.
pub struct Loader<'p, 'a> {
    pub(crate) prog: &'p Program<'a>,
    cfg: LoadConfig,
    path: Vec<(u64, TypeId)>,
    depth: u32,
    loaded: u64,
    /// String bytes read so far: with [`MAX_TOTAL_STRING_BYTES`] this bounds
    /// the output when corrupt headers make many strings claim 1 MiB each.
    string_bytes: std::cell::Cell<u64>,
}

/// Most string bytes one load reads in total. Each string is still complete
/// up to its own limit (1 MiB for canonical JSON) until this is spent.
pub const MAX_TOTAL_STRING_BYTES: u64 = 64 << 20;

/// Linux never maps memory below this address (`vm.mmap_min_addr`).
const MIN_MAPPABLE: u64 = 0x10000;

/// The reason a func value is unreadable when its code pointer `pc` lies
/// in no function (Delve's words): the closure it points at is not one, as
/// when a dead stack slot still holds a pointer to a freed closure.
fn no_function(pc: u64) -> String {
    format!("could not find function for {pc:#x}")
}

/// The reason a read failed. An address no process can have mapped is not
/// a gap in the snapshot: the value leading there is stale (optimized code
/// keeps dead values in registers and slots) or corrupt.
fn err_text(e: &AnalyzeError) -> String {
    match e {
        AnalyzeError::Unreadable { addr, .. } if *addr < MIN_MAPPABLE => format!(
            "address {addr:#x} is below any mapping: a stale value (optimized code) or a corrupt one"
        ),
        other => other.to_string(),
    }
}

impl<'p, 'a> Loader<'p, 'a> {
    /// A loader with limits `cfg`.
    pub fn new(prog: &'p Program<'a>, cfg: LoadConfig) -> Self {
        Loader {
            prog,
            cfg,
            path: Vec::new(),
            depth: 0,
            loaded: 0,
            string_bytes: std::cell::Cell::new(0),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &LoadConfig {
        &self.cfg
    }

    /// Loads a value of type `ty` at runtime address `addr`.
    pub fn load(&mut self, ty: TypeId, addr: u64) -> Value {
        let mem = self.prog.mem;
        self.load_at(mem, ty, addr, 0)
    }

    /// Loads a value of type `ty` whose bytes are given (a variable assembled
    /// from registers); pointers inside still lead into target memory.
    pub fn load_bytes(&mut self, ty: TypeId, bytes: Vec<u8>) -> Value {
        let overlay = Overlay {
            base: self.prog.mem,
            start: SYNTHETIC_BASE,
            bytes,
        };
        let mut v = self.load_at(&overlay, ty, SYNTHETIC_BASE, 0);
        v.addr = None;
        v
    }

    pub(crate) fn load_at(
        &mut self,
        mem: &dyn Memory,
        ty: TypeId,
        addr: u64,
        recurse: u32,
    ) -> Value {
        if self.depth >= MAX_DEPTH {
            return Value::unreadable(
                self.prog.ty(ty).name.clone(),
                Some(addr),
                "nesting too deep",
            );
        }
        self.loaded += 1;
        if self.loaded > self.cfg.max_values {
            return Value::unreadable(
                self.prog.ty(ty).name.clone(),
                Some(addr),
                format!(
                    "value too large: more than {} values loaded",
                    self.cfg.max_values
                ),
            );
        }
        self.depth += 1;
        let v = self.load_inner(mem, ty, addr, recurse);
        self.depth -= 1;
        v
    }

    fn load_inner(&mut self, mem: &dyn Memory, ty: TypeId, addr: u64, recurse: u32) -> Value {
        let prog = self.prog;
        let type_name = prog.ty(ty).name.clone();
        let (uid, under) = prog.underlying(ty);
        let size = under.size;
        let mk = |kind| Value {
            display: None,
            composite_target: false,
            type_name: type_name.clone(),
            addr: Some(addr),
            kind,
        };
        let unreadable = |e: AnalyzeError| mk(ValueKind::Unreadable(err_text(&e)));
        match &under.kind {
            TypeKind::Bool
            | TypeKind::Int
            | TypeKind::Uint
            | TypeKind::Uintptr
            | TypeKind::Float
            | TypeKind::Complex
            | TypeKind::UnsafePointer => {
                let n = size.min(16) as usize;
                let mut buf = [0u8; 16];
                match mem.read(addr, &mut buf[..n]) {
                    Ok(()) => {
                        let mut v = mk(decode_scalar(&under.kind, &buf[..n]));
                        v.display = match v.kind {
                            ValueKind::Int(i) => prog.const_descr(ty, i),
                            ValueKind::Uint(u) => prog.const_descr(ty, u as i64),
                            _ => None,
                        };
                        v
                    }
                    Err(e) => unreadable(e),
                }
            }
            TypeKind::String => match self.read_string(mem, addr) {
                Ok((bytes, len)) => mk(ValueKind::String { bytes, len }),
                Err(e) => mk(ValueKind::Unreadable(e)),
            },
            TypeKind::Pointer { elem } => {
                let p = match mem.read_u64(addr) {
                    Ok(p) => p,
                    Err(e) => return unreadable(e),
                };
                let elem = *elem;
                let pointee = self.deref(elem, p, recurse);
                let mut v = mk(ValueKind::Pointer { addr: p, pointee });
                // A nil pointer prints as `*ELEM nil`; a named pointer type
                // (`type P *T`, a shape `go.shape.*uint8`) names no ELEM.
                if let (0, Some(e)) = (p, elem) {
                    if !type_name.starts_with('*') {
                        v.display = Some(prog.ty(e).name.clone());
                    }
                }
                v.composite_target = elem.is_some_and(|e| {
                    matches!(
                        prog.underlying(e).1.kind,
                        TypeKind::Struct { .. }
                            | TypeKind::Array { .. }
                            | TypeKind::Slice { .. }
                            | TypeKind::Map { .. }
                            | TypeKind::Interface { .. }
                            | TypeKind::String
                    )
                });
                v
            }
            TypeKind::Array { elem, len } => {
                let (elem, len) = (*elem, *len);
                // Like Delve, elements are loaded at any level (up to the
                // element limit); only their own children obey the recursion limit.
                let elems = self.load_elems(mem, elem, addr, len, recurse + 1);
                mk(ValueKind::Array { len, elems })
            }
            TypeKind::Slice { elem } => {
                let elem = *elem;
                let mut hdr = [0u8; 24];
                if let Err(e) = mem.read(addr, &mut hdr) {
                    return unreadable(e);
                }
                let word = |i: usize| {
                    u64::from_le_bytes(hdr[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
                };
                let (base, len, cap) = (word(0), word(1), word(2));
                if (len as i64) < 0 || cap < len {
                    return mk(ValueKind::Unreadable(format!(
                        "corrupt slice header: len {len} cap {cap}"
                    )));
                }
                if base == 0 && len > 0 {
                    // Never a plausible slice: show no elements rather than
                    // pretending it is nil or empty.
                    return mk(ValueKind::Unreadable(
                        "non-zero length array with nil base".into(),
                    ));
                }
                let elems = if base == 0 {
                    Vec::new()
                } else {
                    self.load_elems(mem, elem, base, len, recurse + 1)
                };
                mk(ValueKind::Slice {
                    len,
                    cap,
                    base,
                    elems,
                })
            }
            TypeKind::Struct { fields } => {
                let total = fields.len();
                let mut out = Vec::new();
                if recurse <= self.cfg.max_recurse {
                    let limit = self.cfg.max_struct_fields.unwrap_or(usize::MAX);
                    for f in fields.iter().take(limit) {
                        let v = self.load_at(mem, f.ty, addr.wrapping_add(f.offset), recurse + 1);
                        out.push((f.name.clone(), v));
                    }
                }
                let mut v = mk(ValueKind::Struct { fields: out, total });
                if type_name == "time.Time" {
                    v.display = super::gotime::time_display(prog, mem, uid, addr);
                }
                v
            }
            TypeKind::Map { key, elem, header } => {
                let hdr = match mem.read_u64(addr) {
                    Ok(p) => p,
                    Err(e) => return unreadable(e),
                };
                if hdr == 0 {
                    return mk(ValueKind::Map {
                        addr: 0,
                        len: 0,
                        entries: Vec::new(),
                    });
                }
                let (key, elem) = (*key, *elem);
                let Some(header) = *header else {
                    return mk(ValueKind::Unreadable(
                        "map without a DWARF header type".into(),
                    ));
                };
                let limit = if recurse > self.cfg.max_recurse {
                    0
                } else {
                    self.cfg.max_array_values
                };
                match maps::entries(prog, mem, header, hdr, key, elem, limit) {
                    Ok((len, slots)) => {
                        let mut entries = Vec::with_capacity(slots.len());
                        for (ka, ea) in slots {
                            let k = self.load_at(mem, key, ka, recurse + 1);
                            let v = self.load_at(mem, elem, ea, recurse + 1);
                            entries.push((k, v));
                        }
                        mk(ValueKind::Map {
                            addr: hdr,
                            len,
                            entries,
                        })
                    }
                    Err(e) => mk(ValueKind::Unreadable(e)),
                }
            }
            TypeKind::Chan { elem, header } => {
                let (elem, header) = (*elem, *header);
                match self.load_chan(mem, elem, header, addr, recurse) {
                    Ok(k) => mk(k),
                    Err(e) => mk(ValueKind::Unreadable(e)),
                }
            }
            TypeKind::Interface { empty } => {
                let empty = *empty;
                match self.load_interface(mem, empty, addr, recurse) {
                    Ok(k) => mk(k),
                    Err(e) => mk(ValueKind::Unreadable(e)),
                }
            }
            TypeKind::Func => {
                let fv = match mem.read_u64(addr) {
                    Ok(p) => p,
                    Err(e) => return unreadable(e),
                };
                if fv == 0 {
                    return mk(ValueKind::Func {
                        pc: 0,
                        name: None,
                        captured: Vec::new(),
                    });
                }
                match mem.read_u64(fv) {
                    // Code that is no function: a stale closure pointer
                    // (a dead slot whose object was freed), never a value.
                    Ok(pc) => match prog.function_name(pc) {
                        None => mk(ValueKind::Unreadable(no_function(pc))),
                        name => {
                            let captured = self.load_captures(pc, fv, recurse);
                            mk(ValueKind::Func { pc, name, captured })
                        }
                    },
                    Err(e) => unreadable(e),
                }
            }
            TypeKind::Typedef(_) | TypeKind::Unknown => {
                let _ = uid;
                mk(ValueKind::Unreadable(format!(
                    "unsupported type {}",
                    prog.ty(ty).name
                )))
            }
        }
    }

    /// The variables a closure at `fv` (code `pc`) captured, where DWARF
    /// describes them; by-reference captures (`&x`) are shown dereferenced
    /// under their plain name, as Delve does.
    fn load_captures(&mut self, pc: u64, fv: u64, recurse: u32) -> Vec<(String, Value)> {
        if recurse > self.cfg.max_recurse || !self.cfg.follow_pointers {
            return Vec::new();
        }
        let prog = self.prog;
        let caps = prog.dwarf.closure_captures(pc.wrapping_sub(prog.bias));
        let mut out = Vec::with_capacity(caps.len());
        for (name, ty, off) in caps {
            let mem = prog.mem;
            let v = self.load_at(mem, ty, fv.wrapping_add(off), recurse + 1);
            match (name.strip_prefix('&'), v.kind) {
                (
                    Some(plain),
                    ValueKind::Pointer {
                        pointee: Pointee::Loaded(p),
                        ..
                    },
                ) => out.push((plain.to_string(), *p)),
                (_, kind) => out.push((name.clone(), Value { kind, ..v })),
            }
        }
        out
    }

    fn deref(&mut self, elem: Option<TypeId>, p: u64, recurse: u32) -> Pointee {
        if p == 0 {
            return Pointee::Nil;
        }
        let Some(elem) = elem else {
            return Pointee::NotLoaded;
        };
        if !self.cfg.follow_pointers {
            return Pointee::NotLoaded;
        }
        // The oracle's path key: the same address seen with the same pointer type.
        if self.cfg.detect_cycles && self.path.contains(&(p, elem)) {
            return Pointee::Cycle;
        }
        // Delve does not count a dereference as a recursion level, except
        // into an interface or another pointer (which could loop).
        let next = match self.prog.underlying(elem).1.kind {
            TypeKind::Interface { .. } => recurse + 1,
            TypeKind::Pointer { .. } => {
                if recurse > self.cfg.max_recurse {
                    return Pointee::NotLoaded;
                }
                recurse + 1
            }
            _ => recurse,
        };
        self.path.push((p, elem));
        let mem = self.prog.mem;
        let v = self.load_at(mem, elem, p, next);
        self.path.pop();
        Pointee::Loaded(Box::new(v))
    }

    fn load_elems(
        &mut self,
        mem: &dyn Memory,
        elem: TypeId,
        base: u64,
        len: u64,
        recurse: u32,
    ) -> Vec<Value> {
        let esize = self.prog.underlying(elem).1.size;
        let n = len.min(self.cfg.max_array_values);
        let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
        let total = esize.saturating_mul(n);
        // One read for the whole range instead of one per element.
        let overlay = if total > 0 && total <= PREFETCH_MAX {
            let mut bytes = vec![0u8; total as usize];
            mem.read(base, &mut bytes).ok().map(|()| Overlay {
                base: mem,
                start: base,
                bytes,
            })
        } else {
            None
        };
        let m: &dyn Memory = match &overlay {
            Some(o) => o,
            None => mem,
        };
        for i in 0..n {
            let a = base.wrapping_add(i.wrapping_mul(esize));
            out.push(self.load_at(m, elem, a, recurse));
        }
        out
    }

    fn read_string(
        &self,
        mem: &dyn Memory,
        addr: u64,
    ) -> std::result::Result<(Vec<u8>, u64), String> {
        let ptr = mem.read_u64(addr).map_err(|e| err_text(&e))?;
        let len = mem
            .read_u64(addr.wrapping_add(8))
            .map_err(|e| err_text(&e))?;
        if (len as i64) < 0 {
            return Err(format!("corrupt string header: length {}", len as i64));
        }
        let spent = self.string_bytes.get();
        let n = len
            .min(self.cfg.max_string_len)
            .min(MAX_TOTAL_STRING_BYTES.saturating_sub(spent));
        if n == 0 {
            return Ok((Vec::new(), len));
        }
        self.string_bytes.set(spent + n);
        let mut bytes = vec![0u8; n as usize];
        mem.read(ptr, &mut bytes).map_err(|e| err_text(&e))?;
        Ok((bytes, len))
    }

    fn load_interface(
        &mut self,
        mem: &dyn Memory,
        empty: bool,
        addr: u64,
        recurse: u32,
    ) -> std::result::Result<ValueKind, String> {
        let prog = self.prog;
        let word = mem.read_u64(addr).map_err(|e| err_text(&e))?;
        if word == 0 {
            return Ok(ValueKind::Interface {
                dyn_type: None,
                value: None,
                pointer_data: false,
            });
        }
        let rtype = if empty {
            word
        } else {
            // itab: inter @0, type @8 in every supported version.
            mem.read_u64(word.wrapping_add(8))
                .map_err(|e| err_text(&e))?
        };
        let reflect_name = prog
            .rtype_name(rtype)
            .unwrap_or_else(|| format!("<unknown type at 0x{rtype:x}>"));
        // Delve names the dynamic type by its DWARF type (the full package
        // path, `*google.golang.org/protobuf/internal/filedesc.Enum`), where
        // reflect's string has only the package name (`*filedesc.Enum`).
        let dwarf_type = prog.rtype_dwarf(rtype);
        let dyn_name = match dwarf_type {
            Some(dt) => dwarf_or_reflect_name(prog.ty(dt).name.as_str(), &reflect_name),
            None => reflect_name,
        };
        if recurse > self.cfg.max_recurse {
            let pointer_data = match dwarf_type {
                Some(dt) => matches!(prog.underlying(dt).1.kind, TypeKind::Pointer { .. }),
                // abi.Type.Kind_ (low 5 bits) 22 is Pointer.
                None => mem
                    .read_u8(rtype.wrapping_add(23))
                    .is_ok_and(|k| k & 0x1f == 22),
            };
            return Ok(ValueKind::Interface {
                dyn_type: Some(dyn_name),
                value: None,
                pointer_data,
            });
        }
        let direct = self.direct_iface(rtype);
        let data = mem
            .read_u64(addr.wrapping_add(8))
            .map_err(|e| err_text(&e))?;
        let value_addr = if direct { addr.wrapping_add(8) } else { data };
        let value = match dwarf_type {
            Some(dt) => {
                let mut v = self.load_at(mem, dt, value_addr, recurse);
                v.type_name = dyn_name.clone();
                v
            }
            None => self.load_by_rtype(mem, rtype, &dyn_name, value_addr),
        };
        Ok(ValueKind::Interface {
            dyn_type: Some(dyn_name),
            value: Some(Box::new(value)),
            pointer_data: false,
        })
    }

    /// Whether values of this runtime type are stored directly in the
    /// interface's data word.
    pub(crate) fn direct_iface(&self, rtype: u64) -> bool {
        let mem = self.prog.mem;
        let minor = self.prog.dwarf.go_minor().unwrap_or(26);
        if minor >= 26 {
            mem.read_u8(rtype.wrapping_add(20))
                .is_ok_and(|tflag| tflag & 0x20 != 0)
        } else {
            mem.read_u8(rtype.wrapping_add(23))
                .is_ok_and(|kind| kind & 0x20 != 0)
        }
    }

    /// Decodes a value from its runtime `abi.Type` alone, for types DWARF
    /// does not describe (e.g. a generic instance only ever stored in an
    /// interface): scalars, strings, pointers, slices, arrays, structs,
    /// interfaces and funcs. Fields and elements that DWARF does describe
    /// are loaded through DWARF.
    fn load_by_rtype(&mut self, mem: &dyn Memory, rtype: u64, name: &str, addr: u64) -> Value {
        self.load_rtype(mem, rtype, Some(name.to_string()), addr, 0)
    }

    fn load_rtype(
        &mut self,
        mem: &dyn Memory,
        rtype: u64,
        name: Option<String>,
        addr: u64,
        recurse: u32,
    ) -> Value {
        if self.depth >= MAX_DEPTH {
            return Value::unreadable(name.unwrap_or_default(), Some(addr), "nesting too deep");
        }
        self.loaded += 1;
        if self.loaded > self.cfg.max_values {
            return Value::unreadable(name.unwrap_or_default(), Some(addr), "value too large");
        }
        if let Some(dt) = self.prog.rtype_dwarf(rtype) {
            let mut v = self.load_at(mem, dt, addr, recurse);
            if v.type_name.is_empty() {
                v.type_name = name.unwrap_or_default();
            }
            return v;
        }
        self.depth += 1;
        let v = self.load_rtype_inner(mem, rtype, name, addr, recurse);
        self.depth -= 1;
        v
    }

    fn load_rtype_inner(
        &mut self,
        mem: &dyn Memory,
        rtype: u64,
        name: Option<String>,
        addr: u64,
        recurse: u32,
    ) -> Value {
        let prog = self.prog;
        let name = name
            .or_else(|| prog.rtype_name(rtype))
            .unwrap_or_else(|| format!("<type at 0x{rtype:x}>"));
        let mk = |kind| Value {
            display: None,
            composite_target: false,
            type_name: name.clone(),
            addr: Some(addr),
            kind,
        };
        let pm = prog.mem;
        let (Ok(kind), Ok(size)) = (pm.read_u8(rtype.wrapping_add(23)), pm.read_u64(rtype)) else {
            return mk(ValueKind::Unreadable("cannot read the runtime type".into()));
        };
        let word = |off: u64| {
            pm.read_u64(rtype.wrapping_add(off))
                .map_err(|e| err_text(&e))
        };
        let tk = match kind & 0x1f {
            1 => TypeKind::Bool,
            2..=6 => TypeKind::Int,
            7..=11 => TypeKind::Uint,
            12 => TypeKind::Uintptr,
            13 | 14 => TypeKind::Float,
            15 | 16 => TypeKind::Complex,
            26 => TypeKind::UnsafePointer,
            24 => {
                return match self.read_string(mem, addr) {
                    Ok((bytes, len)) => mk(ValueKind::String { bytes, len }),
                    Err(e) => mk(ValueKind::Unreadable(e)),
                }
            }
            22 => {
                // abi.PtrType: Elem *Type @48.
                let p = match mem.read_u64(addr) {
                    Ok(p) => p,
                    Err(e) => return mk(ValueKind::Unreadable(err_text(&e))),
                };
                let Ok(elem) = word(48) else {
                    return mk(ValueKind::Unreadable(
                        "cannot read the pointer's element type".into(),
                    ));
                };
                let pointee = if let Some(dt) = prog.rtype_dwarf(elem) {
                    self.deref(Some(dt), p, recurse)
                } else if p == 0 {
                    Pointee::Nil
                } else if !self.cfg.follow_pointers {
                    Pointee::NotLoaded
                } else {
                    // Without a DWARF id, key the path by the runtime type address.
                    let key = (p, TypeId(u32::MAX - (elem as u32 & 0xffff)));
                    if self.path.contains(&key) {
                        Pointee::Cycle
                    } else {
                        self.path.push(key);
                        let v = self.load_rtype(prog.mem, elem, None, p, recurse);
                        self.path.pop();
                        Pointee::Loaded(Box::new(v))
                    }
                };
                return mk(ValueKind::Pointer { addr: p, pointee });
            }
            17 | 23 => {
                // abi.ArrayType: Elem @48, Slice @56, Len @64; abi.SliceType: Elem @48.
                let Ok(elem) = word(48) else {
                    return mk(ValueKind::Unreadable("cannot read the element type".into()));
                };
                let esize = pm.read_u64(elem).unwrap_or(0);
                let (base, len, cap, is_slice) = if kind & 0x1f == 17 {
                    (addr, word(64).unwrap_or(0), 0, false)
                } else {
                    let mut hdr = [0u8; 24];
                    if let Err(e) = mem.read(addr, &mut hdr) {
                        return mk(ValueKind::Unreadable(err_text(&e)));
                    }
                    let w = |i: usize| {
                        u64::from_le_bytes(hdr[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
                    };
                    (w(0), w(1), w(2), true)
                };
                if (len as i64) < 0 || (is_slice && cap < len) {
                    return mk(ValueKind::Unreadable(format!("corrupt length {len}")));
                }
                let mut elems = Vec::new();
                if base != 0 {
                    for i in 0..len.min(self.cfg.max_array_values) {
                        let a = base.wrapping_add(i.wrapping_mul(esize));
                        elems.push(self.load_rtype(mem, elem, None, a, recurse + 1));
                    }
                }
                return mk(if is_slice {
                    ValueKind::Slice {
                        len,
                        cap,
                        base,
                        elems,
                    }
                } else {
                    ValueKind::Array { len, elems }
                });
            }
            25 => {
                // abi.StructType: PkgPath @48, Fields []StructField @56 (24-byte
                // entries: Name, Typ, Offset).
                let (Ok(fptr), Ok(flen)) = (word(56), word(64)) else {
                    return mk(ValueKind::Unreadable(
                        "cannot read the struct fields".into(),
                    ));
                };
                if flen > 1 << 16 {
                    return mk(ValueKind::Unreadable(format!(
                        "corrupt struct type: {flen} fields"
                    )));
                }
                let mut fields = Vec::new();
                if recurse <= self.cfg.max_recurse {
                    for i in 0..flen {
                        let f = fptr.wrapping_add(i.wrapping_mul(24));
                        let (Ok(fname), Ok(ftyp), Ok(foff)) = (
                            pm.read_u64(f),
                            pm.read_u64(f.wrapping_add(8)),
                            pm.read_u64(f.wrapping_add(16)),
                        ) else {
                            break;
                        };
                        let fname = super::read_abi_name(pm, fname, 4096).unwrap_or_default();
                        let v =
                            self.load_rtype(mem, ftyp, None, addr.wrapping_add(foff), recurse + 1);
                        fields.push((fname, v));
                    }
                }
                return mk(ValueKind::Struct {
                    fields,
                    total: flen as usize,
                });
            }
            20 => {
                // abi.InterfaceType: Methods []Imethod @56; none means `any`.
                let empty = word(64).map(|n| n == 0).unwrap_or(true);
                return match self.load_interface(mem, empty, addr, recurse) {
                    Ok(k) => mk(k),
                    Err(e) => mk(ValueKind::Unreadable(e)),
                };
            }
            19 => {
                return match mem.read_u64(addr) {
                    Ok(0) => mk(ValueKind::Func {
                        pc: 0,
                        name: None,
                        captured: Vec::new(),
                    }),
                    Ok(fv) => match mem.read_u64(fv) {
                        Ok(pc) => match prog.function_name(pc) {
                            None => mk(ValueKind::Unreadable(no_function(pc))),
                            name => mk(ValueKind::Func {
                                pc,
                                name,
                                captured: Vec::new(),
                            }),
                        },
                        Err(e) => mk(ValueKind::Unreadable(err_text(&e))),
                    },
                    Err(e) => mk(ValueKind::Unreadable(err_text(&e))),
                };
            }
            _ => {
                return mk(ValueKind::Unreadable(format!(
                    "type {name} has no DWARF description"
                )))
            }
        };
        let n = size.min(16) as usize;
        let mut buf = [0u8; 16];
        match mem.read(addr, &mut buf[..n]) {
            Ok(()) => mk(decode_scalar(&tk, &buf[..n])),
            Err(e) => mk(ValueKind::Unreadable(err_text(&e))),
        }
    }

    fn load_chan(
        &mut self,
        mem: &dyn Memory,
        elem: TypeId,
        header: Option<TypeId>,
        addr: u64,
        recurse: u32,
    ) -> std::result::Result<ValueKind, String> {
        let prog = self.prog;
        let hchan = mem.read_u64(addr).map_err(|e| err_text(&e))?;
        let elem_type = prog.reflect_name(elem);
        if hchan == 0 {
            return Ok(ValueKind::Chan {
                addr: 0,
                elem_type,
                len: 0,
                cap: 0,
                closed: false,
                buffer: Vec::new(),
                senders: Vec::new(),
                receivers: Vec::new(),
                fields: Vec::new(),
            });
        }
        let st = header
            .and_then(|h| match &prog.underlying(h).1.kind {
                TypeKind::Pointer { elem } => *elem,
                _ => None,
            })
            .ok_or("channel without a DWARF hchan type")?;
        let field = |name: &str| maps::field(prog, st, name);
        let read_field = |name: &str| -> std::result::Result<u64, String> {
            let f = field(name).ok_or_else(|| format!("hchan has no field {name}"))?;
            let size = prog.underlying(f.ty).1.size.min(8) as usize;
            let mut b = [0u8; 8];
            mem.read(hchan.wrapping_add(f.offset), &mut b[..size])
                .map_err(|e| err_text(&e))?;
            Ok(u64::from_le_bytes(b))
        };
        let qcount = read_field("qcount")?;
        let dataqsiz = read_field("dataqsiz")?;
        let buf = read_field("buf")?;
        let closed = read_field("closed")? != 0;
        let recvx = read_field("recvx")?;
        if qcount > dataqsiz || (dataqsiz > 0 && recvx >= dataqsiz) {
            return Err(format!(
                "corrupt channel: qcount {qcount} dataqsiz {dataqsiz} recvx {recvx}"
            ));
        }
        let esize = prog.underlying(elem).1.size;
        let mut buffer = Vec::new();
        if recurse <= self.cfg.max_recurse {
            for i in 0..qcount.min(self.cfg.max_array_values) {
                let idx = recvx.wrapping_add(i) % dataqsiz.max(1);
                let a = buf.wrapping_add(idx.wrapping_mul(esize));
                buffer.push(self.load_at(mem, elem, a, recurse + 1));
            }
        }
        let fields = if self.cfg.hchan_fields {
            self.hchan_fields(mem, st, hchan, elem, dataqsiz, buf)
        } else {
            Vec::new()
        };
        let waiters = |qname: &str| -> Vec<u64> {
            let Some(q) = field(qname) else {
                return Vec::new();
            };
            let Ok(first) = mem.read_u64(hchan.wrapping_add(q.offset)) else {
                return Vec::new();
            };
            sudog_goids(prog, first)
        };
        Ok(ValueKind::Chan {
            addr: hchan,
            elem_type,
            len: qcount,
            cap: dataqsiz,
            closed,
            buffer,
            senders: waiters("sendq"),
            receivers: waiters("recvq"),
            fields,
        })
    }

    /// The fields of the `hchan` at `hchan` (DWARF struct `st`, the
    /// linker's `hchan<T>`) as Delve loads them for `print`: the struct at
    /// level 0 with Delve's `print` limits, `buf` as a pointer to the
    /// `[dataqsiz]T` ring.
    fn hchan_fields(
        &mut self,
        mem: &dyn Memory,
        st: TypeId,
        hchan: u64,
        elem: TypeId,
        dataqsiz: u64,
        buf: u64,
    ) -> Vec<(String, Value)> {
        let prog = self.prog;
        let TypeKind::Struct { fields } = &prog.underlying(st).1.kind else {
            return Vec::new();
        };
        let saved = std::mem::replace(&mut self.cfg, LoadConfig::delve_print());
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let at = hchan.wrapping_add(f.offset);
            let v = if f.name == "buf" {
                let array = format!("[{dataqsiz}]{}", prog.dwarf_type_string(elem));
                let pointee = if buf == 0 {
                    Pointee::Nil
                } else {
                    let elems = self.load_elems(mem, elem, buf, dataqsiz, 2);
                    Pointee::Loaded(Box::new(Value {
                        display: None,
                        composite_target: false,
                        type_name: array.clone(),
                        addr: Some(buf),
                        kind: ValueKind::Array {
                            len: dataqsiz,
                            elems,
                        },
                    }))
                };
                Value {
                    display: None,
                    composite_target: true,
                    type_name: format!("*{array}"),
                    addr: Some(at),
                    kind: ValueKind::Pointer { addr: buf, pointee },
                }
            } else {
                self.load_at(mem, f.ty, at, 1)
            };
            out.push((f.name.clone(), v));
        }
        self.cfg = saved;
        out
    }
}

/// The goroutine ids of a sudog list (`sudog.g.goid` along `sudog.next`).
fn sudog_goids(prog: &Program<'_>, mut sudog: u64) -> Vec<u64> {
    let mem = prog.mem;
    let mut out = Vec::new();
    let goid_off = prog
        .dwarf
        .type_by_name("runtime.g")
        .and_then(|g| maps::field(prog, g, "goid"))
        .map(|f| f.offset);
    let Some(goid_off) = goid_off else {
        return out;
    };
    // sudog: g @0, next @8 in every supported version.
    while sudog != 0 && out.len() < 100_000 {
        let Ok(g) = mem.read_u64(sudog) else { break };
        if let Ok(id) = mem.read_u64(g.wrapping_add(goid_off)) {
            out.push(id);
        }
        match mem.read_u64(sudog.wrapping_add(8)) {
            Ok(n) => sudog = n,
            Err(_) => break,
        }
    }
    out
}

/// The DWARF name of a dynamic type, unless it is empty.
fn dwarf_or_reflect_name(dwarf: &str, reflect: &str) -> String {
    if dwarf.is_empty() {
        reflect.to_string()
    } else {
        dwarf.to_string()
    }
}

/// Decodes a scalar of `kind` from its little-endian bytes.
pub(crate) fn decode_scalar(kind: &TypeKind, b: &[u8]) -> ValueKind {
    let mut w = [0u8; 8];
    let lo = b.len().min(8);
    w[..lo].copy_from_slice(&b[..lo]);
    let u = u64::from_le_bytes(w);
    match kind {
        TypeKind::Bool => ValueKind::Bool(u & 0xff != 0),
        TypeKind::Int => {
            let shift = 64 - 8 * lo as u32;
            let i = if lo == 0 {
                0
            } else {
                ((u << shift) as i64) >> shift
            };
            ValueKind::Int(i)
        }
        TypeKind::Uint | TypeKind::Uintptr => ValueKind::Uint(u),
        TypeKind::Float => match b.len() {
            4 => ValueKind::Float {
                value: f64::from(f32::from_bits(u as u32)),
                bits: 32,
            },
            _ => ValueKind::Float {
                value: f64::from_bits(u),
                bits: 64,
            },
        },
        TypeKind::Complex => match b.len() {
            8 => ValueKind::Complex {
                re: f64::from(f32::from_bits(u as u32)),
                im: f64::from(f32::from_bits((u >> 32) as u32)),
                bits: 32,
            },
            16 => {
                let mut h = [0u8; 8];
                h.copy_from_slice(&b[8..16]);
                ValueKind::Complex {
                    re: f64::from_bits(u),
                    im: f64::from_bits(u64::from_le_bytes(h)),
                    bits: 64,
                }
            }
            n => ValueKind::Unreadable(format!("complex of {n} bytes")),
        },
        TypeKind::UnsafePointer => ValueKind::UnsafePointer(u),
        other => ValueKind::Unreadable(format!("not a scalar: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        assert_eq!(decode_scalar(&TypeKind::Int, &[0xff]), ValueKind::Int(-1));
        assert_eq!(
            decode_scalar(&TypeKind::Int, &(-5i64).to_le_bytes()),
            ValueKind::Int(-5)
        );
        assert_eq!(decode_scalar(&TypeKind::Uint, &[200]), ValueKind::Uint(200));
        assert_eq!(decode_scalar(&TypeKind::Bool, &[1]), ValueKind::Bool(true));
        assert_eq!(
            decode_scalar(&TypeKind::Float, &0.1f32.to_le_bytes()),
            ValueKind::Float {
                value: f64::from(0.1f32),
                bits: 32
            }
        );
        let mut c = 1.5f64.to_le_bytes().to_vec();
        c.extend_from_slice(&(-2.0f64).to_le_bytes());
        assert_eq!(
            decode_scalar(&TypeKind::Complex, &c),
            ValueKind::Complex {
                re: 1.5,
                im: -2.0,
                bits: 64
            }
        );
    }

    #[test]
    fn overlay_serves_its_range_and_delegates_the_rest() {
        let mut base = crate::memory::SliceMemory::new();
        base.add(0x100, vec![9; 16]);
        let o = Overlay {
            base: &base,
            start: 0x1000,
            bytes: vec![1, 2, 3, 4],
        };
        let mut b = [0u8; 2];
        o.read(0x1001, &mut b).expect("overlay");
        assert_eq!(b, [2, 3]);
        o.read(0x104, &mut b).expect("base");
        assert_eq!(b, [9, 9]);
        assert!(o.read(0x1003, &mut b).is_err());
    }
}
