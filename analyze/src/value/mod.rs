//! Typed Go values, their text and JSON forms, and expressions.
//!
//! [`Program`] ties the indexed DWARF to target memory. A [`Loader`] reads a
//! typed location into a [`Value`] tree under a [`LoadConfig`] (Delve's
//! limits for text, the canonical "complete" limits for JSON). [`json`]
//! renders the canonical JSON of CONTRACT.md, [`text`] Delve's print format,
//! and [`expr`] parses and evaluates the expression subset.

pub mod expr;
pub mod frame;
pub mod gonum;
mod gotime;
pub mod json;
mod load;
mod maps;
pub mod text;

use std::sync::OnceLock;

use crate::dwarf::{DwarfInfo, GoType, TypeId, TypeKind};
use crate::memory::Memory;

pub use load::Loader;

/// Limits applied while loading a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// Whether pointers are dereferenced.
    pub follow_pointers: bool,
    /// How many levels of nested aggregates are loaded (Delve's MaxVariableRecurse).
    pub max_recurse: u32,
    /// Bytes of a string that are loaded.
    pub max_string_len: u64,
    /// Elements of an array, slice, map or channel buffer that are loaded.
    pub max_array_values: u64,
    /// Struct fields loaded (`None` = all).
    pub max_struct_fields: Option<usize>,
    /// Whether a pointer already being loaded on the current path is cut
    /// short as a cycle (canonical JSON); Delve's text relies on the
    /// recursion limit instead and shows the repetition.
    pub detect_cycles: bool,
    /// Most values (nodes of the tree) loaded in total: pointer graphs that
    /// share subtrees (or garbage memory) can otherwise grow exponentially.
    pub max_values: u64,
    /// Whether a channel also loads its `hchan` fields, as Delve's `print`
    /// shows them (with Delve's `print` limits, whatever these are).
    pub hchan_fields: bool,
}

/// Deepest nesting followed even in "complete" mode; beyond it a value is
/// marked unreadable rather than risking the stack.
pub const MAX_DEPTH: u32 = 4096;

impl LoadConfig {
    /// Delve's `print` defaults (`LoadFullValue`): follow pointers, one level
    /// of recursion, 64 string bytes, 64 elements.
    pub fn delve_print() -> Self {
        LoadConfig {
            follow_pointers: true,
            max_recurse: 1,
            max_string_len: 64,
            max_array_values: 64,
            max_struct_fields: None,
            detect_cycles: false,
            max_values: 1_000_000,
            hchan_fields: true,
        }
    }
    /// Delve's `ShortLoadConfig`, used by `locals` and `args`: pointers not
    /// followed, no recursion, 64 string bytes, no elements, 3 struct fields.
    pub fn delve_locals() -> Self {
        LoadConfig {
            follow_pointers: false,
            max_recurse: 0,
            max_string_len: 64,
            max_array_values: 0,
            max_struct_fields: Some(3),
            detect_cycles: false,
            max_values: 1_000_000,
            hchan_fields: false,
        }
    }
    /// Only the top-level scalar or header (lengths), nothing behind it: for
    /// `len()`, indexes and other evaluation steps.
    pub fn canonical_shallow() -> Self {
        LoadConfig {
            follow_pointers: false,
            max_recurse: 0,
            max_string_len: 0,
            max_array_values: 0,
            max_struct_fields: Some(0),
            detect_cycles: true,
            max_values: 5_000_000,
            hchan_fields: false,
        }
    }
    /// The canonical JSON limits: complete up to 1 MiB of string bytes and
    /// 100,000 elements per collection, and nesting up to [`MAX_DEPTH`].
    pub fn canonical() -> Self {
        LoadConfig {
            follow_pointers: true,
            max_recurse: MAX_DEPTH,
            max_string_len: 1 << 20,
            max_array_values: 100_000,
            max_struct_fields: None,
            detect_cycles: true,
            max_values: 5_000_000,
            hchan_fields: false,
        }
    }
}

/// Where a pointer leads.
#[derive(Debug, Clone, PartialEq)]
pub enum Pointee {
    /// The pointer is nil.
    Nil,
    /// Not loaded (limits, or pointers not followed).
    NotLoaded,
    /// The pointee is already being printed on the current path.
    Cycle,
    /// The pointee.
    Loaded(Box<Value>),
}

/// What a value is.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// bool.
    Bool(bool),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer (also uintptr).
    Uint(u64),
    /// float32 (`bits` 32) or float64.
    Float {
        /// The value (float32 widened exactly).
        value: f64,
        /// 32 or 64.
        bits: u8,
    },
    /// complex64 (`bits` 32 per part) or complex128.
    Complex {
        /// Real part.
        re: f64,
        /// Imaginary part.
        im: f64,
        /// Width of each part: 32 or 64.
        bits: u8,
    },
    /// A string; `bytes` may be a prefix of `len` bytes.
    String {
        /// Loaded bytes.
        bytes: Vec<u8>,
        /// Full length.
        len: u64,
    },
    /// `[N]T`; `elems` may be a prefix.
    Array {
        /// Full length.
        len: u64,
        /// Loaded elements.
        elems: Vec<Value>,
    },
    /// `[]T`; `base == 0` is a nil slice.
    Slice {
        /// Length.
        len: u64,
        /// Capacity.
        cap: u64,
        /// Address of the backing array.
        base: u64,
        /// Loaded elements.
        elems: Vec<Value>,
    },
    /// A struct; `fields` is empty when not loaded (recursion limit).
    Struct {
        /// Fields in declaration order (blank `_` fields included).
        fields: Vec<(String, Value)>,
        /// Number of fields in the type.
        total: usize,
    },
    /// `*T`.
    Pointer {
        /// The pointer value.
        addr: u64,
        /// What it points at.
        pointee: Pointee,
    },
    /// A map; `addr == 0` is a nil map.
    Map {
        /// Address of the runtime header.
        addr: u64,
        /// Number of entries the runtime counts.
        len: u64,
        /// Loaded entries.
        entries: Vec<(Value, Value)>,
    },
    /// A channel; `addr == 0` is nil.
    Chan {
        /// Address of the hchan.
        addr: u64,
        /// Element type as reflect prints it.
        elem_type: String,
        /// Queued elements.
        len: u64,
        /// Buffer size.
        cap: u64,
        /// Whether closed.
        closed: bool,
        /// Buffered elements in receive order.
        buffer: Vec<Value>,
        /// Goroutine ids blocked sending.
        senders: Vec<u64>,
        /// Goroutine ids blocked receiving.
        receivers: Vec<u64>,
        /// The runtime's `hchan` fields as Delve prints a channel on
        /// multiple lines (`buf` typed `*[dataqsiz]T`), when the load
        /// configuration asks for them ([`LoadConfig::hchan_fields`]).
        fields: Vec<(String, Value)>,
    },
    /// An interface; `dyn_type == None` is a nil interface.
    Interface {
        /// Dynamic type as reflect prints it.
        dyn_type: Option<String>,
        /// The dynamic value (not loaded beyond the recursion limit).
        value: Option<Box<Value>>,
        /// Whether the dynamic type is a pointer: past the recursion limit
        /// Delve elides such data (`...`) and shows other data by the
        /// interface's own address.
        pointer_data: bool,
    },
    /// A func value; `pc == 0` is nil.
    Func {
        /// Entry PC of the function (runtime address).
        pc: u64,
        /// Function name.
        name: Option<String>,
        /// Captured variables of a closure, when DWARF describes them.
        captured: Vec<(String, Value)>,
    },
    /// unsafe.Pointer.
    UnsafePointer(u64),
    /// Could not be read; the reason.
    Unreadable(String),
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Type name as DWARF spells it (Delve prints these).
    pub type_name: String,
    /// Address, when the value lives in memory.
    pub addr: Option<u64>,
    /// The value.
    pub kind: ValueKind,
    /// A readable form Delve prints before a struct (`time.Time(2024-…)`),
    /// a constant's name before an integer, `&` for an address-of, or the
    /// element type of a nil pointer whose type is named (`type P *T`).
    pub display: Option<String>,
    /// For a pointer: whether its pointee type is an aggregate or a string,
    /// which makes Delve break the enclosing struct over lines even when the
    /// pointee was not loaded.
    pub composite_target: bool,
}

impl Value {
    /// An unreadable value of a type.
    pub fn unreadable(
        type_name: impl Into<String>,
        addr: Option<u64>,
        why: impl Into<String>,
    ) -> Value {
        Value {
            display: None,
            composite_target: false,
            type_name: type_name.into(),
            addr,
            kind: ValueKind::Unreadable(why.into()),
        }
    }
}

/// DWARF plus memory: everything needed to read typed values.
pub struct Program<'a> {
    /// Indexed DWARF.
    pub dwarf: &'a DwarfInfo,
    /// Target memory (runtime addresses).
    pub mem: &'a dyn Memory,
    /// PIE load bias: runtime = link-time + bias.
    pub bias: u64,
    /// Resolves a runtime PC to a function name (pclntab); DWARF is the fallback.
    pub func_name: Option<&'a (dyn Fn(u64) -> Option<String> + Sync)>,
    types_range: OnceLock<Option<(u64, u64)>>,
    constants: OnceLock<std::collections::HashMap<TypeId, Vec<(String, i64)>>>,
}

impl<'a> Program<'a> {
    /// A program over `dwarf` and `mem` with load bias `bias`.
    pub fn new(dwarf: &'a DwarfInfo, mem: &'a dyn Memory, bias: u64) -> Self {
        Program {
            dwarf,
            mem,
            bias,
            func_name: None,
            types_range: OnceLock::new(),
            constants: OnceLock::new(),
        }
    }

    /// The type with this id (a placeholder for a dangling id).
    pub fn ty(&self, id: TypeId) -> &GoType {
        static UNKNOWN: GoType = GoType {
            name: String::new(),
            size: 0,
            kind: TypeKind::Unknown,
            runtime_type: None,
            dict_index: None,
        };
        self.dwarf.ty(id).unwrap_or(&UNKNOWN)
    }

    /// The type that says what a value is, after typedefs.
    pub fn underlying(&self, id: TypeId) -> (TypeId, &GoType) {
        self.dwarf.underlying(id).unwrap_or((id, self.ty(id)))
    }

    /// `[moduledata.types, moduledata.etypes)` at runtime, read from
    /// `runtime.firstmoduledata` once.
    pub fn types_range(&self) -> Option<(u64, u64)> {
        *self.types_range.get_or_init(|| {
            let g = self.dwarf.global("runtime.firstmoduledata")?;
            let (_, t) = self.underlying(g.ty);
            let TypeKind::Struct { fields } = &t.kind else {
                return None;
            };
            let base = g.addr.wrapping_add(self.bias);
            let off = |name: &str| fields.iter().find(|f| f.name == name).map(|f| f.offset);
            let types = self.mem.read_u64(base.wrapping_add(off("types")?)).ok()?;
            let etypes = self.mem.read_u64(base.wrapping_add(off("etypes")?)).ok()?;
            (types != 0 && types <= etypes).then_some((types, etypes))
        })
    }

    /// Delve's description of integer `n` of type `ty` by the type's named
    /// constants: `ByteConst`, or `FlagA|FlagC` when every constant is a
    /// single bit. Only for user-defined types (a name with a package), so
    /// a plain `int` 1 is never "io.SeekCurrent".
    pub fn const_descr(&self, ty: TypeId, n: i64) -> Option<String> {
        let tname = &self.ty(ty).name;
        if !tname.contains('.') || tname.starts_with("C.") {
            return None;
        }
        let vals = self.constants_map().get(&ty)?;
        if let Some((name, _)) = vals.iter().find(|v| v.1 == n) {
            return Some(name.clone());
        }
        if n == 0 {
            return None;
        }
        let mut rest = n;
        let mut parts = Vec::new();
        for (name, v) in vals.iter().filter(|v| v.1.count_ones() == 1) {
            if rest & v != 0 {
                parts.push(name.as_str());
                rest &= !v;
            }
        }
        (rest == 0).then(|| parts.join("|"))
    }

    /// A named constant by full name (`main.ByteConst`) or by a name ending
    /// in `/name`: its type and value.
    pub fn constant(&self, name: &str) -> Option<(TypeId, i64)> {
        self.constants_map().iter().find_map(|(t, vals)| {
            let pkg = package_of_type(&self.ty(*t).name);
            vals.iter().find_map(|(n, v)| {
                let full = format!("{pkg}.{n}");
                (full == name || full.ends_with(&format!("/{name}"))).then_some((*t, *v))
            })
        })
    }

    fn constants_map(&self) -> &std::collections::HashMap<TypeId, Vec<(String, i64)>> {
        self.constants.get_or_init(|| {
            let mut m: std::collections::HashMap<TypeId, Vec<(String, i64)>> =
                std::collections::HashMap::new();
            for c in self.dwarf.named_constants() {
                m.entry(c.ty).or_default().push((c.name.clone(), c.value));
            }
            for (t, vals) in m.iter_mut() {
                let prefix = format!("{}.", package_of_type(&self.ty(*t).name));
                for v in vals.iter_mut() {
                    if let Some(rest) = v.0.strip_prefix(&prefix) {
                        v.0 = rest.to_string();
                    }
                }
                vals.sort_by_key(|v| v.1);
            }
            m
        })
    }

    /// The function name at a runtime PC.
    pub fn function_name(&self, pc: u64) -> Option<String> {
        if let Some(f) = self.func_name {
            if let Some(n) = f(pc) {
                return Some(n);
            }
        }
        self.dwarf
            .function_at(pc.wrapping_sub(self.bias))
            .map(|f| f.name.clone())
    }

    /// The name of a runtime `abi.Type` as reflect prints it (`*main.Node`,
    /// `map[string]int`), decoded from the type's `Str` name offset.
    pub fn rtype_name(&self, rtype: u64) -> Option<String> {
        let (types, etypes) = self.types_range()?;
        if rtype < types || rtype >= etypes {
            return None;
        }
        let tflag = self.mem.read_u8(rtype.wrapping_add(20)).ok()?;
        let name_off = self.mem.read_u32(rtype.wrapping_add(40)).ok()? as i32;
        let name_addr = types.checked_add_signed(i64::from(name_off))?;
        let mut s = read_abi_name(self.mem, name_addr, 1 << 16)?;
        // TFlagExtraStar: the name is stored with a '*' that belongs to the pointer type.
        if tflag & 0x2 != 0 && s.starts_with('*') {
            s.remove(0);
        }
        Some(s)
    }

    /// The DWARF type of a runtime `abi.Type`.
    pub fn rtype_dwarf(&self, rtype: u64) -> Option<TypeId> {
        let (types, _) = self.types_range()?;
        self.dwarf.type_by_runtime_offset(rtype.checked_sub(types)?)
    }

    /// A type as Delve's DWARF reader spells it inside the types it makes
    /// up (the `*[4]T` of a channel's buffer): `struct main.T` for a
    /// struct, `*` and `[n]` before their element, the name otherwise.
    pub fn dwarf_type_string(&self, id: TypeId) -> String {
        let mut out = String::new();
        let mut id = id;
        // Pointer and array chains are short in real types; a hostile
        // self-referential chain stops at the bound.
        for _ in 0..64 {
            let t = self.ty(id);
            match t.kind {
                crate::dwarf::TypeKind::Pointer { elem: Some(e) } => {
                    out.push('*');
                    id = e;
                }
                crate::dwarf::TypeKind::Array { elem, len } => {
                    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("[{len}]"));
                    id = elem;
                }
                crate::dwarf::TypeKind::Struct { .. } => {
                    out.push_str("struct ");
                    out.push_str(&t.name);
                    return out;
                }
                _ => {
                    out.push_str(&t.name);
                    return out;
                }
            }
        }
        out.push_str("...");
        out
    }

    /// The reflect name of a DWARF type: from its runtime type when the binary
    /// has one, otherwise the DWARF name with package paths shortened.
    pub fn reflect_name(&self, id: TypeId) -> String {
        let t = self.ty(id);
        if let (Some(off), Some((types, _))) =
            (t.runtime_type.filter(|&o| o != 0), self.types_range())
        {
            if let Some(n) = self.rtype_name(types.wrapping_add(off)) {
                return n;
            }
        }
        shorten_package_paths(&t.name)
    }
}

/// The package of a type name: `main.T` → `main`, `a/b.T` → `a/b`.
fn package_of_type(name: &str) -> &str {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].find('.') {
        Some(dot) => &name[..slash + dot],
        None => "",
    }
}

/// `map[net/http.Header]*net/url.URL` → `map[http.Header]*url.URL`, as reflect prints.
pub fn shorten_package_paths(name: &str) -> String {
    map_type_words(name, &['-'], |word| match word.rfind('/') {
        Some(slash) => &word[slash + 1..],
        None => word,
    })
}

/// `name` with each word (a run of alphanumerics, `_`, `.`, `/` and the
/// `extra` characters: a qualified type name such as `net/http.Header`)
/// replaced by what `f` makes of it; brackets, stars and spaces are kept.
pub(crate) fn map_type_words(
    name: &str,
    extra: &[char],
    f: impl for<'w> Fn(&'w str) -> &'w str,
) -> String {
    let mut out = String::with_capacity(name.len());
    let mut word = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || matches!(c, '_' | '.' | '/') || extra.contains(&c) {
            word.push(c);
        } else {
            out.push_str(f(&word));
            word.clear();
            out.push(c);
        }
    }
    out.push_str(f(&word));
    out
}

/// Reads an `abi.Name` at `addr`: one flag byte, a uvarint length, then the
/// bytes. `None` when unreadable or longer than `max_len` (corrupt memory).
pub(crate) fn read_abi_name(mem: &dyn Memory, addr: u64, max_len: u64) -> Option<String> {
    let mut hdr = [0u8; 11];
    mem.read(addr, &mut hdr).ok()?;
    let mut len: u64 = 0;
    let mut shift = 0;
    let mut pos = 1;
    loop {
        let b = *hdr.get(pos)?;
        len |= u64::from(b & 0x7f) << shift;
        pos += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
    if len > max_len {
        return None;
    }
    let bytes = mem
        .read_vec(addr.wrapping_add(pos as u64), len as usize)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_paths_like_reflect() {
        assert_eq!(
            shorten_package_paths("map[net/http.Header]*net/url.URL"),
            "map[http.Header]*url.URL"
        );
        assert_eq!(shorten_package_paths("main.Config"), "main.Config");
        assert_eq!(
            shorten_package_paths("chan<- gopkg.in/yaml-v3.Node"),
            "chan<- yaml-v3.Node"
        );
        let canonical = |n| {
            map_type_words(n, &[], |w| match w {
                "byte" => "uint8",
                other => other,
            })
        };
        assert_eq!(canonical("map[byte][]byte"), "map[uint8][]uint8");
        assert_eq!(canonical("main.bytes"), "main.bytes");
        assert_eq!(shorten_package_paths("[]*main.Node"), "[]*main.Node");
    }
}

#[cfg(test)]
mod garbage_tests {
    use super::*;
    use crate::memory::SliceMemory;

    /// Memory full of pseudo-random words, a third of which point back into
    /// the same region: every pointer chase, length and map header is garbage.
    fn garbage(base: u64, len: usize, seed: u64) -> SliceMemory {
        let mut x = seed | 1;
        let mut bytes = Vec::with_capacity(len);
        while bytes.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = match x % 3 {
                0 => base + (x >> 8) % len as u64,
                1 => x >> (x % 64),
                _ => x,
            };
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        let mut m = SliceMemory::new();
        m.add(base, bytes);
        m
    }

    /// Loading, rendering and evaluating every package variable of a real
    /// program over garbage memory neither panics nor runs away.
    #[test]
    fn garbage_memory_never_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = crate::dwarf::testprog::build(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n\nvar m = map[string][]int{}\nvar c = make(chan http.Header, 3)\n\nfunc main() { fmt.Println(m, c, http.DefaultClient) }\n",
            dir.path(),
        );
        let info = crate::dwarf::testprog::load(&exe);
        let globals: Vec<_> = info.globals().cloned().collect();
        let (lo, hi) = globals.iter().fold((u64::MAX, 0), |(lo, hi), g| {
            (lo.min(g.addr), hi.max(g.addr))
        });
        assert!(!globals.is_empty() && lo < hi);
        let started = std::time::Instant::now();
        std::thread::Builder::new()
            .stack_size(512 << 20)
            .spawn(move || {
                for seed in [1u64, 0x9e37_79b9_7f4a_7c15] {
                    let mem = garbage(lo, (hi - lo + 4096) as usize, seed);
                    let prog = Program::new(&info, &mem, 0);
                    for g in &globals {
                        let t0 = std::time::Instant::now();
                        let mut cfg = LoadConfig::canonical();
                        cfg.max_array_values = 1000;
                        cfg.max_string_len = 4096;
                        cfg.max_values = 20_000;
                        let v = Loader::new(&prog, cfg).load(g.ty, g.addr);
                        let _ = json::to_json(&v);
                        let _ = text::render(&v);
                        let mut cfg = LoadConfig::delve_print();
                        cfg.max_values = 20_000;
                        let v = Loader::new(&prog, cfg).load(g.ty, g.addr);
                        let _ = text::render(&v);
                        if t0.elapsed().as_millis() > 500 {
                            eprintln!("slow {} {:?} {}", g.name, t0.elapsed(), prog.ty(g.ty).name);
                        }
                    }
                    let ev = expr::Evaluator::new(&prog, Vec::new());
                    for e in [
                        "main.m[\"x\"]",
                        "len(main.c)",
                        "*main.c",
                        "net/http.DefaultClient.Jar",
                    ] {
                        let _ = ev.eval_str(e, LoadConfig::canonical());
                    }
                }
            })
            .expect("spawn")
            .join()
            .expect("no panic on garbage memory");
        assert!(
            started.elapsed().as_secs() < 120,
            "garbage took {:?}",
            started.elapsed()
        );
    }
}
