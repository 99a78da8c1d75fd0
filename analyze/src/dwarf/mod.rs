//! DWARF: types, package variables, frame locals — one index per
//! executable, shared by the runtime model (struct layouts, constants,
//! runtime globals) and the value code (typed variables, expressions).
//!
//! [`DwarfInfo::load`] reads the `.debug_*` sections of a Go executable
//! (DWARF 4 up to Go 1.24, DWARF 5 from 1.25; the sections arrive already
//! decompressed from [`crate::binary::Binary::section_shared`]), the unit
//! headers, and the `runtime` unit, which holds every type DIE (Go's linker
//! puts them there) for the runtime model's layouts, constants and globals.
//! Only the sections that needs ([`LOAD_SECTIONS`]) are inflated then; the
//! range and location lists ([`LATER_SECTIONS`]) on the first lookup by PC
//! or of a local; `.debug_line` never (the pclntab has the lines). The first
//! value-level lookup scans every unit once, in parallel (generic code keeps
//! its shape types inside its function's DIE, so the full type arena needs
//! every unit), and every type becomes a [`GoType`] in that arena. Locals of
//! one function are parsed on demand ([`DwarfInfo::frame_variables_inlined`]).
//!
//! All addresses here are link-time addresses; callers add the PIE bias.

pub mod location;
pub mod types;

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use gimli::{AttributeValue, DwAt, DwTag, Reader as _};
use rayon::prelude::*;

pub use location::{evaluate_location, Location, Piece, PieceSource, RegisterSet};
pub use types::{Field, GoType, NamedConst, TypeId, TypeKind};

use crate::binary::Binary;

/// The gimli reader used everywhere: shares the section bytes.
pub type Reader = gimli::EndianArcSlice<gimli::LittleEndian>;

const DW_AT_GO_KIND: DwAt = DwAt(0x2900);
const DW_AT_GO_KEY: DwAt = DwAt(0x2901);
const DW_AT_GO_ELEM: DwAt = DwAt(0x2902);
const DW_AT_GO_EMBEDDED_FIELD: DwAt = DwAt(0x2903);
const DW_AT_GO_RUNTIME_TYPE: DwAt = DwAt(0x2904);
const DW_AT_GO_DICT_INDEX: DwAt = DwAt(0x2906);
const DW_AT_GO_CLOSURE_OFFSET: DwAt = DwAt(0x2907);

/// Upper bound on struct fields, array lengths declared in DWARF and similar
/// counts: a corrupt binary must not make us allocate without bound.
const MAX_FIELDS: usize = 1 << 16;

/// Errors while reading DWARF. `Clone` so that a cached failure can be
/// handed to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DwarfError {
    /// The executable has no `.debug_info` (stripped with `-ldflags=-s -w`).
    #[error("the executable has no DWARF debug information (built with -ldflags=-s -w?); typed values need an unstripped binary: pass it with --exe")]
    Missing,
    /// gimli could not parse something.
    #[error("malformed DWARF in {section} at offset 0x{offset:x}: {error}")]
    Malformed {
        /// Section being parsed.
        section: &'static str,
        /// Offset in that section.
        offset: u64,
        /// What gimli said.
        error: gimli::Error,
    },
    /// A unit index past the last compile unit (an internal reference).
    #[error("DWARF has no compile unit #{0}")]
    NoUnit(usize),
    /// A DWARF section of the executable cannot be read (its bytes in the
    /// snapshot are damaged): an error, never "no DWARF".
    #[error("{0}")]
    Section(crate::error::BinaryError),
    /// A DIE refers to a type that does not exist.
    #[error("DWARF type reference 0x{0:x} points at no type DIE")]
    DanglingType(u64),
}

/// A package-level variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// Fully qualified name (`main.cfg`, `net/http.DefaultClient`).
    pub name: String,
    /// Link-time address.
    pub addr: u64,
    /// Type.
    pub ty: TypeId,
}

/// A function with code (a `DW_TAG_subprogram` with a PC range).
#[derive(Debug, Clone)]
pub struct Function {
    /// Name (`main.parkLocals`, `main.main.func1`).
    pub name: String,
    /// First instruction (link-time).
    pub low_pc: u64,
    /// One past the last instruction (link-time).
    pub high_pc: u64,
    unit: usize,
    die: gimli::UnitOffset<usize>,
}

/// A local variable or argument visible at one PC.
#[derive(Debug, Clone)]
pub struct Variable {
    /// Name as written in the source (`x`, `&x` for variables captured by reference).
    pub name: String,
    /// Type.
    pub ty: TypeId,
    /// Whether it is a formal parameter.
    pub is_arg: bool,
    /// Whether it is a function result (`DW_AT_variable_parameter` 1).
    pub is_result: bool,
    /// The location expression valid at the PC; `None` when the variable has
    /// no location there (optimized away or not yet live).
    pub location: Option<gimli::Expression<Reader>>,
    /// Declaration line (for ordering and shadowing).
    pub decl_line: u64,
    /// Lexical nesting depth (deeper shadows shallower with the same name).
    pub scope_depth: u32,
    /// Whether it is a closure's captured variable
    /// (`DW_AT_go_closure_offset`): in scope from its declaration line on.
    pub captured: bool,
}

/// Sections read when DWARF is loaded: DIEs, abbreviations, strings and
/// addresses (DWARF 5 `addrx`), what indexing types and globals needs.
pub const LOAD_SECTIONS: [&str; 6] = [
    ".debug_info",
    ".debug_abbrev",
    ".debug_addr",
    ".debug_str",
    ".debug_str_offsets",
    ".debug_line_str",
];

/// Sections read on the first lookup of PC ranges or location lists
/// (`function_at`, frame variables): the bulk of Go's DWARF after
/// `.debug_info`, which `goroutines`, `bt` and `print` of a global never need.
pub const LATER_SECTIONS: [&str; 4] = [
    ".debug_loclists",
    ".debug_rnglists",
    ".debug_loc",
    ".debug_ranges",
];

/// What fetching one section gives: its decompressed bytes, `None` if the
/// executable has no such section, or why its bytes cannot be read.
pub type Fetched = Result<Option<Arc<[u8]>>, crate::error::BinaryError>;

/// Fetches one section by name.
type SectionFetch = Box<dyn Fn(&str) -> Fetched + Send + Sync>;

/// The sections of `names` that exist, fetched in parallel; the first
/// failure if any cannot be read.
fn fetch_all(
    names: &[&'static str],
    section: &(impl Fn(&str) -> Fetched + Sync + ?Sized),
) -> Result<HashMap<&'static str, Arc<[u8]>>, DwarfError> {
    let got: Vec<(&'static str, Fetched)> = names
        .par_iter()
        .map(|&name| (name, section(name)))
        .collect();
    let mut out = HashMap::new();
    for (name, fetched) in got {
        if let Some(bytes) = fetched.map_err(DwarfError::Section)? {
            out.insert(name, bytes);
        }
    }
    Ok(out)
}

/// Whether `entry`'s PC ranges hold `pc`.
fn die_contains(
    lists: &gimli::Dwarf<Reader>,
    unit: &gimli::Unit<Reader>,
    entry: &gimli::DebuggingInformationEntry<Reader>,
    pc: u64,
) -> gimli::Result<bool> {
    let mut ranges = lists.die_ranges(unit, entry)?;
    while let Some(r) = ranges.next()? {
        if r.begin <= pc && pc < r.end {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A gimli `Dwarf` over the sections in `have` (absent ones empty).
fn dwarf_from(have: &HashMap<&'static str, Arc<[u8]>>) -> gimli::Dwarf<Reader> {
    let Ok(dwarf) = gimli::Dwarf::load(
        |id: gimli::SectionId| -> Result<Reader, std::convert::Infallible> {
            let bytes = have
                .get(id.name())
                .cloned()
                .unwrap_or_else(|| Arc::from(&[][..]));
            Ok(Reader::new(bytes, gimli::LittleEndian))
        },
    );
    dwarf
}

/// Parses unit `header` as gimli's `Unit::new` does (abbreviations, name,
/// bases, low pc) except for its line program, which rdlv never reads: so
/// `.debug_line` (the second largest section) is never inflated.
fn parse_unit(
    dwarf: &gimli::Dwarf<Reader>,
    header: gimli::UnitHeader<Reader>,
) -> gimli::Result<gimli::Unit<Reader>> {
    let abbreviations = dwarf.abbreviations(&header)?;
    let encoding = header.encoding();
    let mut unit = gimli::Unit {
        abbreviations,
        name: None,
        comp_dir: None,
        low_pc: 0,
        str_offsets_base: gimli::DebugStrOffsetsBase::default_for_encoding_and_file(
            encoding,
            dwarf.file_type,
        ),
        addr_base: gimli::DebugAddrBase(0),
        loclists_base: gimli::DebugLocListsBase::default_for_encoding_and_file(
            encoding,
            dwarf.file_type,
        ),
        rnglists_base: gimli::DebugRngListsBase::default_for_encoding_and_file(
            encoding,
            dwarf.file_type,
        ),
        line_program: None,
        dwo_id: None,
        header,
    };
    let (mut name, mut comp_dir, mut low_pc) = (None, None, None);
    {
        let mut cursor = unit.header.entries(&unit.abbreviations);
        cursor.next_dfs()?;
        let root = cursor.current().ok_or(gimli::Error::MissingUnitDie)?;
        for attr in root.attrs() {
            match (attr.name(), attr.value()) {
                (gimli::DW_AT_name, v) => name = Some(v),
                (gimli::DW_AT_comp_dir, v) => comp_dir = Some(v),
                (gimli::DW_AT_low_pc, v) => low_pc = Some(v),
                (gimli::DW_AT_str_offsets_base, AttributeValue::DebugStrOffsetsBase(b)) => {
                    unit.str_offsets_base = b
                }
                (
                    gimli::DW_AT_addr_base | gimli::DW_AT_GNU_addr_base,
                    AttributeValue::DebugAddrBase(b),
                ) => unit.addr_base = b,
                (gimli::DW_AT_loclists_base, AttributeValue::DebugLocListsBase(b)) => {
                    unit.loclists_base = b
                }
                (
                    gimli::DW_AT_rnglists_base | gimli::DW_AT_GNU_ranges_base,
                    AttributeValue::DebugRngListsBase(b),
                ) => unit.rnglists_base = b,
                _ => {}
            }
        }
    }
    unit.name = name.and_then(|v| dwarf.attr_string(&unit, v).ok());
    unit.comp_dir = comp_dir.and_then(|v| dwarf.attr_string(&unit, v).ok());
    if let Some(v) = low_pc {
        if let Some(addr) = dwarf.attr_address(&unit, v)? {
            unit.low_pc = addr;
        }
    }
    Ok(unit)
}

/// A unit longer than this is scanned on every core
/// ([`DwarfInfo::scan_unit_in_parallel`]): in practice only Go's types unit.
const PARALLEL_SCAN_BYTES: usize = 1 << 20;

/// Upper bound on compile units (a Go program has one per package; a
/// corrupt `.debug_info` must not make us keep millions of headers).
const MAX_UNITS: usize = 1 << 20;

/// Name of the compile unit that holds every type DIE: Go's linker emits
/// all types, and the runtime's own globals and constants, in the unit of
/// package `runtime`.
const TYPES_UNIT: &str = "runtime";

/// One compile unit: its header and package path read at load, its parsed
/// form and its index built on first use.
struct UnitSlot {
    header: gimli::UnitHeader<Reader>,
    /// `DW_AT_name` of the root DIE: the package path (`main`, `net/http`).
    name: String,
    unit: OnceLock<Result<gimli::Unit<Reader>, DwarfError>>,
    /// Set once the full index resolved this unit against the whole arena.
    index: OnceLock<UnitIndex>,
    /// This unit's globals resolved against the runtime model's arena alone
    /// (a prefix of the full one), built by the first lookup of a global
    /// in it: `print pkg.Var` then scans one unit, not all of them.
    light: OnceLock<Result<LightIndex, DwarfError>>,
    /// Whether this unit's DIEs were read at all.
    scanned: std::sync::atomic::AtomicBool,
}

/// A unit's globals whose types the runtime units' arena holds, and the
/// names of those whose types it does not (looked up in the full arena).
#[derive(Default)]
struct LightIndex {
    globals: BTreeMap<String, Global>,
    unresolved: std::collections::BTreeSet<String>,
}

/// What one unit declares at its top level.
#[derive(Default)]
struct UnitIndex {
    globals: BTreeMap<String, Global>,
    constants: HashMap<String, i64>,
    /// Sorted by `low_pc`.
    functions: Vec<Function>,
}

/// The type arena, built from the types unit(s).
#[derive(Default)]
pub(crate) struct TypeIndex {
    types: Vec<GoType>,
    type_by_die: FxHashMap<u64, TypeId>,
    type_by_name: FxHashMap<String, TypeId>,
    type_by_runtime: FxHashMap<u64, TypeId>,
}

/// DWARF of one executable: the runtime's part at load, the rest on demand.
///
/// Invariants: at load only the unit headers, their root DIEs and the
/// `runtime` units are read (the runtime model's lookups: `struct_size`,
/// `field_offset`, `constant`, `runtime_variable`), so listing goroutines
/// never reads a user package's DIEs. The value-level lookups (`ty`,
/// `global`, `function_at`...) build the full index of every unit once.
/// Every cache is a `OnceLock`: parsed state is shared by all threads and
/// never rebuilt.
pub struct DwarfInfo {
    /// The sections of [`LOAD_SECTIONS`]: enough for DIEs, strings and
    /// addresses; its range and location lists are empty.
    dwarf: gimli::Dwarf<Reader>,
    /// The bytes behind `dwarf`, to build `with_lists` from.
    loaded: HashMap<&'static str, Arc<[u8]>>,
    /// Fetches a section later (the executable's, decompressed).
    later: SectionFetch,
    /// `dwarf` plus [`LATER_SECTIONS`], built on the first lookup of PC
    /// ranges or location lists.
    with_lists: OnceLock<Result<gimli::Dwarf<Reader>, DwarfError>>,
    units: Vec<UnitSlot>,
    /// Package path (and its `%2e`-escaped symbol form) → units.
    by_name: HashMap<String, Vec<usize>>,
    /// The runtime's types, from the `runtime` units alone: enough for the
    /// runtime model's layouts, and built at load.
    rt_types: TypeIndex,
    /// The units `rt_types` was built from (the `runtime` units).
    rt_units: Vec<usize>,
    /// Globals and constants of the `runtime` units, against `rt_types`.
    rt_index: UnitIndex,
    /// Every type of every unit (generic code keeps its shape types inside
    /// its function's DIE, in its package's unit), built on the first
    /// value-level lookup together with every unit's index.
    full: OnceLock<Result<TypeIndex, DwarfError>>,
    /// Every global of every unit, built when all are listed.
    all_globals: OnceLock<BTreeMap<String, Global>>,
    /// Every typed integer constant, read once on first use (each `print`
    /// of a REPL session asks for them).
    constants: OnceLock<Vec<types::NamedConst>>,
    /// (begin, end, unit) of every unit's PC ranges, sorted; built on the
    /// first PC lookup.
    ranges: OnceLock<Vec<(u64, u64, usize)>>,
    producer: Option<String>,
    go_minor: Option<u32>,
    /// Units scanned so far (the types unit included).
    scanned: AtomicUsize,
}

/// A type DIE as read in the first pass, before references are resolved.
struct RawType {
    tag: DwTag,
    name: String,
    size: u64,
    go_kind: u64,
    encoding: u64,
    runtime_type: Option<u64>,
    dict_index: Option<u64>,
    type_ref: Option<u64>,
    key_ref: Option<u64>,
    elem_ref: Option<u64>,
    members: Vec<(String, u64, Option<u64>, bool)>,
    count: Option<u64>,
}

fn malformed(section: &'static str, offset: u64) -> impl Fn(gimli::Error) -> DwarfError {
    move |error| DwarfError::Malformed {
        section,
        offset,
        error,
    }
}

/// Offset of a DIE in `.debug_info`, the key for every cross-reference.
fn die_key(unit: &gimli::Unit<Reader>, off: gimli::UnitOffset<usize>) -> Option<u64> {
    off.to_debug_info_offset(&unit.header).map(|o| o.0 as u64)
}

fn ref_key(unit: &gimli::Unit<Reader>, v: Option<AttributeValue<Reader>>) -> Option<u64> {
    match v? {
        AttributeValue::UnitRef(o) => die_key(unit, o),
        AttributeValue::DebugInfoRef(o) => Some(o.0 as u64),
        _ => None,
    }
}

fn udata(v: Option<AttributeValue<Reader>>) -> Option<u64> {
    match v? {
        AttributeValue::Udata(u) => Some(u),
        AttributeValue::Data1(u) => Some(u.into()),
        AttributeValue::Data2(u) => Some(u.into()),
        AttributeValue::Data4(u) => Some(u.into()),
        AttributeValue::Data8(u) => Some(u),
        AttributeValue::Sdata(s) => u64::try_from(s).ok(),
        AttributeValue::Addr(u) => Some(u),
        _ => None,
    }
}

/// Resolves a scanned unit's type references against an arena.
fn resolve_unit(types: &TypeIndex, raw: RawUnit) -> UnitIndex {
    let mut index = UnitIndex::default();
    for (name, addr, ty_off) in raw.globals {
        let Some(&ty) = types.type_by_die.get(&ty_off) else {
            continue;
        };
        index
            .globals
            .insert(name.clone(), Global { name, addr, ty });
    }
    index.constants = raw.constants.into_iter().collect();
    index.functions = raw.functions;
    index.functions.sort_by_key(|f| f.low_pc);
    index
}

/// Follows typedefs in `types` to the type that says what the value is.
fn underlying_in(types: &TypeIndex, id: TypeId) -> Option<(TypeId, &GoType)> {
    let mut cur = id;
    for _ in 0..types::MAX_TYPEDEF_CHAIN {
        let t = types.types.get(cur.0 as usize)?;
        match t.kind {
            TypeKind::Typedef(next) => cur = next,
            _ => return Some((cur, t)),
        }
    }
    None
}

/// Byte offset of a dotted member path from type `ty` in `types`.
fn offset_in(types: &TypeIndex, ty: TypeId, path: &str) -> Option<u64> {
    let mut current = ty;
    let mut total = 0u64;
    for step in path.split('.') {
        let (_, t) = underlying_in(types, current)?;
        let TypeKind::Struct { fields } = &t.kind else {
            return None;
        };
        let field = fields.iter().find(|f| f.name == step)?;
        total = total.checked_add(field.offset)?;
        current = field.ty;
    }
    Some(total)
}

/// Builds the type arena from raw type DIEs (ids follow their order).
fn build_types(raw_types: &[(u64, RawType)]) -> TypeIndex {
    extend_types(&TypeIndex::default(), raw_types)
}

/// `base` with the raw type DIEs appended: their ids follow `base`'s, in
/// their order, and every entry of `base` is kept as it is, so an id of
/// `base` means the same type in the result (the runtime model's arena is
/// a prefix of the full one, and ids handed out before the full arena
/// existed stay valid).
fn extend_types(base: &TypeIndex, raw_types: &[(u64, RawType)]) -> TypeIndex {
    let n0 = base.types.len();
    let mut ix = TypeIndex {
        types: Vec::new(),
        type_by_die: base.type_by_die.clone(),
        type_by_name: base.type_by_name.clone(),
        type_by_runtime: base.type_by_runtime.clone(),
    };
    for (i, (off, _)) in raw_types.iter().enumerate() {
        ix.type_by_die.insert(*off, TypeId((n0 + i) as u32));
    }
    // The raw DIE of a new id, the built type of a base id.
    let raw_of = |id: TypeId| {
        (id.0 as usize)
            .checked_sub(n0)
            .and_then(|i| raw_types.get(i))
    };
    let base_of = |id: TypeId| base.types.get(id.0 as usize);
    let resolve =
        |r: Option<u64>, map: &FxHashMap<u64, TypeId>| r.and_then(|o| map.get(&o).copied());
    // Each type resolves on its own (the maps are read-only here): in parallel.
    let by_die = &ix.type_by_die;
    let types: Vec<GoType> = raw_types
        .par_iter()
        .map(|(_, raw)| {
            let t = |r| resolve(r, by_die);
            let kind = match raw.tag {
                gimli::DW_TAG_base_type => match (raw.go_kind, raw.encoding) {
                    (types::go_kind::UINTPTR, _) => TypeKind::Uintptr,
                    (types::go_kind::UNSAFE_POINTER, _) => TypeKind::UnsafePointer,
                    (_, 2) => TypeKind::Bool,
                    (_, 4) => TypeKind::Float,
                    (_, 3) => TypeKind::Complex,
                    (_, 5) | (_, 6) => TypeKind::Int,
                    (_, 7) | (_, 8) => TypeKind::Uint,
                    _ => TypeKind::Unknown,
                },
                gimli::DW_TAG_pointer_type => match t(raw.type_ref) {
                    None if raw.name == "unsafe.Pointer" => TypeKind::UnsafePointer,
                    elem => TypeKind::Pointer { elem },
                },
                gimli::DW_TAG_array_type => match t(raw.type_ref) {
                    Some(elem) => TypeKind::Array {
                        elem,
                        len: raw.count.unwrap_or(0),
                    },
                    None => TypeKind::Unknown,
                },
                gimli::DW_TAG_subroutine_type => TypeKind::Func,
                gimli::DW_TAG_structure_type => match raw.go_kind {
                    types::go_kind::STRING => TypeKind::String,
                    types::go_kind::SLICE => {
                        // The element is go_elem, or else the pointee of `array`.
                        let elem = t(raw.elem_ref).or_else(|| {
                            raw.members
                                .iter()
                                .find(|m| m.0 == "array")
                                .and_then(|m| t(m.2))
                                .and_then(|p| match (raw_of(p), base_of(p)) {
                                    (Some((_, r)), _) => t(r.type_ref),
                                    (None, Some(b)) => match b.kind {
                                        TypeKind::Pointer { elem } => elem,
                                        _ => None,
                                    },
                                    (None, None) => None,
                                })
                        });
                        match elem {
                            Some(elem) => TypeKind::Slice { elem },
                            None => TypeKind::Unknown,
                        }
                    }
                    _ => TypeKind::Struct {
                        fields: raw
                            .members
                            .iter()
                            .filter_map(|(name, offset, ty, embedded)| {
                                Some(Field {
                                    name: name.clone(),
                                    offset: *offset,
                                    ty: t(*ty)?,
                                    embedded: *embedded,
                                })
                            })
                            .collect(),
                    },
                },
                gimli::DW_TAG_typedef => match (raw.go_kind, t(raw.type_ref)) {
                    (types::go_kind::MAP, header) => match (t(raw.key_ref), t(raw.elem_ref)) {
                        (Some(key), Some(elem)) => TypeKind::Map { key, elem, header },
                        _ => TypeKind::Unknown,
                    },
                    (types::go_kind::CHAN, header) => match t(raw.elem_ref) {
                        Some(elem) => TypeKind::Chan { elem, header },
                        None => TypeKind::Unknown,
                    },
                    (types::go_kind::INTERFACE, Some(target)) => TypeKind::Interface {
                        empty: raw_of(target)
                            .map(|(_, r)| r.name.as_str())
                            .or_else(|| base_of(target).map(|b| b.name.as_str()))
                            == Some("runtime.eface"),
                    },
                    (_, Some(target)) => TypeKind::Typedef(target),
                    (_, None) => TypeKind::Unknown,
                },
                _ => TypeKind::Unknown,
            };
            // Pointer-shaped DIEs often carry no DW_AT_byte_size.
            let size = match kind {
                TypeKind::Pointer { .. } | TypeKind::UnsafePointer | TypeKind::Func
                    if raw.size == 0 =>
                {
                    8
                }
                _ => raw.size,
            };
            GoType {
                name: raw.name.clone(),
                size,
                kind,
                runtime_type: raw.runtime_type,
                dict_index: raw.dict_index,
            }
        })
        .collect();
    // The base's entries are final; the new ones follow them.
    let mut types: Vec<GoType> = base.types.iter().cloned().chain(types).collect();
    // A typedef's size is its target's size.
    for i in n0..types.len() {
        let mut cur = i;
        for _ in 0..types::MAX_TYPEDEF_CHAIN {
            match types.get(cur).map(|t| &t.kind) {
                Some(TypeKind::Typedef(next)) => cur = next.0 as usize,
                Some(TypeKind::Map { .. } | TypeKind::Chan { .. }) => {
                    // Maps and chans are one pointer.
                    cur = usize::MAX;
                    break;
                }
                Some(TypeKind::Interface { .. }) => {
                    cur = usize::MAX - 1;
                    break;
                }
                _ => break,
            }
        }
        let size = match cur {
            usize::MAX => 8,
            c if c == usize::MAX - 1 => 16,
            c => types.get(c).map_or(0, |t| t.size),
        };
        if let Some(t) = types.get_mut(i) {
            if t.size == 0 {
                t.size = size;
            }
        }
    }
    for (i, ty) in types.iter().enumerate().skip(n0) {
        let id = TypeId(i as u32);
        // Prefer the outermost named DIE (typedef) over its struct twin:
        // typedefs are what variables reference. A later DIE replaces an
        // earlier one of the same key only if it is such an outer DIE.
        let outer = matches!(
            ty.kind,
            TypeKind::Typedef(_)
                | TypeKind::Map { .. }
                | TypeKind::Chan { .. }
                | TypeKind::Interface { .. }
        );
        if !ty.name.is_empty() && (outer || !ix.type_by_name.contains_key(&ty.name)) {
            ix.type_by_name.insert(ty.name.clone(), id);
        }
        if let Some(rt) = ty.runtime_type.filter(|&rt| rt != 0) {
            let outer = outer || matches!(ty.kind, TypeKind::Func);
            if outer || !ix.type_by_runtime.contains_key(&rt) {
                ix.type_by_runtime.insert(rt, id);
            }
        }
    }
    ix.types = types;
    ix
}

/// What a scan of one unit's DIEs found, before type references are resolved.
#[derive(Default)]
struct RawUnit {
    types: Vec<(u64, RawType)>,
    globals: Vec<(String, u64, u64)>,
    constants: Vec<(String, i64)>,
    functions: Vec<Function>,
}

/// The string of a root-DIE attribute in the forms Go emits (inline or
/// `.debug_str`/`.debug_line_str` references), without parsing the unit.
fn root_string(dwarf: &gimli::Dwarf<Reader>, v: AttributeValue<Reader>) -> Option<String> {
    let r = match v {
        AttributeValue::String(r) => r,
        AttributeValue::DebugStrRef(o) => dwarf.debug_str.get_str(o).ok()?,
        AttributeValue::DebugLineStrRef(o) => dwarf.debug_line_str.get_str(o).ok()?,
        _ => return None,
    };
    r.to_string_lossy().ok().map(|c| c.into_owned())
}

/// `gopkg.in/yaml.v3` → `gopkg.in/yaml%2ev3`: the form Go symbol names use
/// for a package path whose last element has dots.
fn escaped_package(path: &str) -> String {
    let (dir, last) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    format!("{dir}{}", last.replace('.', "%2e"))
}

impl DwarfInfo {
    /// The DWARF of `binary` (sections decompressed by [`Binary::section`]),
    /// with its types unit indexed. Every other unit is indexed on demand.
    pub fn for_binary(binary: &Arc<Binary>) -> Result<DwarfInfo, DwarfError> {
        let binary = Arc::clone(binary);
        Self::load(move |name| binary.section_shared(name))
    }

    /// Loads DWARF from named sections (`section(".debug_info")` returns the
    /// decompressed bytes, or `None` if absent), reads the unit headers and
    /// indexes the types unit. Only [`LOAD_SECTIONS`] are fetched now (in
    /// parallel, each inflated on its own thread); [`LATER_SECTIONS`] on the
    /// first PC-range or location-list lookup; `.debug_line` never (line
    /// numbers come from the pclntab), which is why units are parsed by
    /// `parse_unit` rather than gimli's `Unit::new`.
    pub fn load(
        section: impl Fn(&str) -> Fetched + Send + Sync + 'static,
    ) -> Result<DwarfInfo, DwarfError> {
        let fetched = fetch_all(&LOAD_SECTIONS, &section)?;
        let have_info = fetched.get(".debug_info").is_some_and(|b| !b.is_empty());
        let dwarf = dwarf_from(&fetched);
        if !have_info {
            return Err(DwarfError::Missing);
        }
        let mut units = Vec::new();
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        let mut producer = None;
        let mut headers = dwarf.units();
        while let Some(header) = headers.next().map_err(malformed(".debug_info", 0))? {
            if units.len() >= MAX_UNITS {
                break;
            }
            let unit_off = header.offset().0 as u64;
            let abbrevs = dwarf
                .abbreviations(&header)
                .map_err(malformed(".debug_abbrev", unit_off))?;
            let mut cursor = header.entries(&abbrevs);
            let mut name = String::new();
            if let Some(root) = cursor
                .next_dfs()
                .map_err(malformed(".debug_info", unit_off))?
            {
                if let Some(v) = root.attr_value(gimli::DW_AT_name) {
                    name = root_string(&dwarf, v).unwrap_or_default();
                }
                if producer.is_none() {
                    producer = root
                        .attr_value(gimli::DW_AT_producer)
                        .and_then(|v| root_string(&dwarf, v));
                }
            }
            let idx = units.len();
            if !name.is_empty() {
                let escaped = escaped_package(&name);
                if escaped != name {
                    by_name.entry(escaped).or_default().push(idx);
                }
                by_name.entry(name.clone()).or_default().push(idx);
            }
            units.push(UnitSlot {
                header,
                name,
                unit: OnceLock::new(),
                index: OnceLock::new(),
                light: OnceLock::new(),
                scanned: std::sync::atomic::AtomicBool::new(false),
            });
        }
        let go_minor = producer.as_deref().and_then(parse_go_minor);
        let mut info = DwarfInfo {
            dwarf,
            loaded: fetched,
            later: Box::new(section),
            with_lists: OnceLock::new(),
            units,
            by_name,
            rt_types: TypeIndex::default(),
            rt_units: Vec::new(),
            rt_index: UnitIndex::default(),
            full: OnceLock::new(),
            all_globals: OnceLock::new(),
            constants: OnceLock::new(),
            ranges: OnceLock::new(),
            producer,
            go_minor,
            scanned: AtomicUsize::new(0),
        };
        info.index_types()?;
        Ok(info)
    }

    /// Scans the `runtime` unit(s) (every unit when none is named so,
    /// which no Go linker produces) for the runtime model's arena.
    fn index_types(&mut self) -> Result<(), DwarfError> {
        let mut type_units: Vec<usize> = self.by_name.get(TYPES_UNIT).cloned().unwrap_or_default();
        if type_units.is_empty() {
            type_units = (0..self.units.len()).collect();
        }
        let mut raw_types = Vec::new();
        let mut raws = Vec::new();
        for &u in &type_units {
            let unit = self.unit(u)?;
            let unit_off = unit.header.offset().0 as u64;
            let mut raw = self
                .scan_unit(unit, u, true)
                .map_err(malformed(".debug_info", unit_off))?;
            raw_types.append(&mut raw.types);
            raws.push(raw);
        }
        self.rt_types = build_types(&raw_types);
        self.rt_units = type_units;
        let mut rt_index = UnitIndex::default();
        for raw in raws {
            let index = resolve_unit(&self.rt_types, raw);
            rt_index.globals.extend(index.globals);
            rt_index.constants.extend(index.constants);
        }
        self.rt_index = rt_index;
        Ok(())
    }

    /// The whole type arena, scanning every unit (in parallel) on first use
    /// and resolving each unit's index against it.
    ///
    /// Built outside the cell's lock: the build runs rayon tasks, and a
    /// first caller that is itself a rayon task (a goroutine filter, say)
    /// waiting on the lock could steal a task that waits on the same lock.
    /// Two first callers may then both build it; the result is the same
    /// (the build is deterministic) and one is kept.
    fn full_types(&self) -> Result<&TypeIndex, DwarfError> {
        let full = match self.full.get() {
            Some(full) => full,
            None => {
                let built = self.build_full_types();
                self.full.get_or_init(|| built)
            }
        };
        full.as_ref().map_err(Clone::clone)
    }

    fn build_full_types(&self) -> Result<TypeIndex, DwarfError> {
        use rayon::prelude::*;
        // The types units' types are `rt_types` already: the full
        // arena extends it, so its ids stay valid. (A flag per unit:
        // without a `runtime` unit every unit is one of them.)
        let mut in_rt = vec![false; self.units.len()];
        for &u in &self.rt_units {
            if let Some(f) = in_rt.get_mut(u) {
                *f = true;
            }
        }
        let raws: Vec<Result<RawUnit, DwarfError>> = (0..self.units.len())
            .into_par_iter()
            .map(|u| {
                let unit = self.unit(u)?;
                let unit_off = unit.header.offset().0 as u64;
                let want_types = !in_rt[u];
                self.scan_unit(unit, u, want_types)
                    .map_err(malformed(".debug_info", unit_off))
            })
            .collect();
        let mut raw_types = Vec::new();
        let mut units = Vec::with_capacity(raws.len());
        for raw in raws {
            let mut raw = raw?;
            raw_types.append(&mut raw.types);
            units.push(raw);
        }
        let types = extend_types(&self.rt_types, &raw_types);
        for (slot, raw) in self.units.iter().zip(units) {
            let _ = slot.index.set(resolve_unit(&types, raw));
        }
        Ok(types)
    }

    pub(crate) fn types(&self) -> Option<&TypeIndex> {
        self.full_types().ok()
    }

    /// The gimli view with range and location lists, their sections
    /// fetched on first use.
    fn with_lists(&self) -> Result<&gimli::Dwarf<Reader>, DwarfError> {
        self.with_lists
            .get_or_init(|| {
                let mut all = self.loaded.clone();
                all.extend(fetch_all(&LATER_SECTIONS, &*self.later)?);
                Ok(dwarf_from(&all))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The parsed unit `u` (its abbreviations and bases; no line program).
    pub(crate) fn unit(&self, u: usize) -> Result<&gimli::Unit<Reader>, DwarfError> {
        let slot = self.units.get(u).ok_or(DwarfError::NoUnit(u))?;
        slot.unit
            .get_or_init(|| {
                let unit_off = slot.header.offset().0 as u64;
                parse_unit(&self.dwarf, slot.header.clone())
                    .map_err(malformed(".debug_info", unit_off))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The index of unit `u` (built with the whole arena).
    fn unit_index(&self, u: usize) -> Result<&UnitIndex, DwarfError> {
        self.full_types()?;
        self.units
            .get(u)
            .and_then(|slot| slot.index.get())
            .ok_or(DwarfError::NoUnit(u))
    }

    /// Units whose package could declare `name` (`net/http.DefaultClient`,
    /// `main.(*T).m`, `gopkg.in/yaml%2ev3.Marshal`): every prefix ending
    /// before a `.` that names a unit.
    fn units_for_name(&self, name: &str) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, c) in name.char_indices() {
            match c {
                '.' => {
                    if let Some(us) = name.get(..i).and_then(|p| self.by_name.get(p)) {
                        for &u in us {
                            if !out.contains(&u) {
                                out.push(u);
                            }
                        }
                    }
                }
                // Type arguments of generic names may hold package paths too.
                '[' => break,
                _ => {}
            }
        }
        out
    }

    /// How many compile units this index has scanned so far (the types unit
    /// included), out of [`DwarfInfo::unit_count`].
    pub fn units_scanned(&self) -> usize {
        self.scanned.load(Ordering::Relaxed)
    }

    /// Number of compile units.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    /// Package paths of the units scanned so far, in `.debug_info` order.
    pub fn scanned_units(&self) -> Vec<&str> {
        self.units
            .iter()
            .filter(|s| s.scanned.load(Ordering::Relaxed))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Reads the top-level DIEs of one unit (and, with `want_types`, every
    /// type DIE with its members and subranges).
    fn scan_unit(
        &self,
        unit: &gimli::Unit<Reader>,
        unit_idx: usize,
        want_types: bool,
    ) -> gimli::Result<RawUnit> {
        if let Some(slot) = self.units.get(unit_idx) {
            if !slot.scanned.swap(true, Ordering::Relaxed) {
                self.scanned.fetch_add(1, Ordering::Relaxed);
            }
        }
        let big = unit.header.unit_length() > PARALLEL_SCAN_BYTES;
        if big && rayon::current_num_threads() > 1 {
            return self.scan_unit_in_parallel(unit, unit_idx, want_types);
        }
        let mut raw_unit = RawUnit::default();
        self.scan_entries(
            unit,
            unit.entries(),
            None,
            0,
            unit_idx,
            want_types,
            &mut raw_unit,
        )?;
        Ok(raw_unit)
    }

    /// [`DwarfInfo::scan_unit`] of a large unit (Go's types unit: every
    /// type of the program, megabytes of DIEs) on every core: its top-level
    /// DIEs are found by a skim that parses no attribute, cut into runs,
    /// and the runs scanned in parallel and joined in order, so the result
    /// is the serial scan's exactly.
    fn scan_unit_in_parallel(
        &self,
        unit: &gimli::Unit<Reader>,
        unit_idx: usize,
        want_types: bool,
    ) -> gimli::Result<RawUnit> {
        let mut skim = unit.entries_raw(None)?;
        let mut tops = Vec::new();
        while !skim.is_empty() {
            let (depth, off) = (skim.next_depth(), skim.next_offset());
            match skim.read_abbreviation()? {
                Some(abbrev) => {
                    if depth == 1 {
                        tops.push(off);
                    }
                    skim.skip_attributes(abbrev.attributes())?;
                }
                None if skim.next_depth() <= 0 => break,
                None => {}
            }
        }
        let runs = (rayon::current_num_threads() * 4).max(1);
        let per = tops.len().div_ceil(runs).max(1);
        let starts: Vec<usize> = (0..tops.len()).step_by(per).collect();
        let parts: Vec<gimli::Result<RawUnit>> = starts
            .par_iter()
            .map(|&i| {
                let mut part = RawUnit::default();
                let cursor = unit.entries_at_offset(tops[i])?;
                let until = tops.get(i + per).copied();
                self.scan_entries(unit, cursor, until, 1, unit_idx, want_types, &mut part)?;
                Ok(part)
            })
            .collect();
        let mut raw_unit = RawUnit::default();
        // The root's own attributes hold nothing the scan keeps (depth 0).
        for part in parts {
            let mut part = part?;
            raw_unit.types.append(&mut part.types);
            raw_unit.globals.append(&mut part.globals);
            raw_unit.constants.append(&mut part.constants);
            raw_unit.functions.append(&mut part.functions);
        }
        Ok(raw_unit)
    }

    /// Scans the DIEs `cursor` reads, up to the DIE at `until` (the end of
    /// the unit if `None`), into `raw_unit`. `depth_base` is the depth of
    /// the cursor's first DIE in the unit (0: the root).
    #[allow(clippy::too_many_arguments)]
    fn scan_entries(
        &self,
        unit: &gimli::Unit<Reader>,
        mut cursor: gimli::EntriesCursor<'_, Reader>,
        until: Option<gimli::UnitOffset<usize>>,
        depth_base: isize,
        unit_idx: usize,
        want_types: bool,
        raw_unit: &mut RawUnit,
    ) -> gimli::Result<()> {
        let raw_types = &mut raw_unit.types;
        // The type whose children (members, subranges) are being read.
        let mut open_type: Option<(usize, isize)> = None;
        while let Some(entry) = cursor.next_dfs()? {
            if until.is_some_and(|end| entry.offset() >= end) {
                break;
            }
            let depth = entry.depth() + depth_base;
            if let Some((_, d)) = open_type {
                if depth <= d {
                    open_type = None;
                }
            }
            let tag = entry.tag();
            if depth == 0 {
                continue;
            }
            let name = || -> Option<String> {
                let v = entry.attr_value(gimli::DW_AT_name)?;
                let s = self.dwarf.attr_string(unit, v).ok()?;
                s.to_string_lossy().ok().map(|c| c.into_owned())
            };
            match tag {
                gimli::DW_TAG_base_type
                | gimli::DW_TAG_pointer_type
                | gimli::DW_TAG_array_type
                | gimli::DW_TAG_structure_type
                | gimli::DW_TAG_typedef
                | gimli::DW_TAG_subroutine_type
                | gimli::DW_TAG_unspecified_type
                    if want_types =>
                {
                    let Some(off) = die_key(unit, entry.offset()) else {
                        continue;
                    };
                    let raw = RawType {
                        tag,
                        name: name().unwrap_or_default(),
                        size: udata(entry.attr_value(gimli::DW_AT_byte_size)).unwrap_or(0),
                        go_kind: udata(entry.attr_value(DW_AT_GO_KIND)).unwrap_or(0),
                        encoding: match entry.attr_value(gimli::DW_AT_encoding) {
                            Some(AttributeValue::Encoding(e)) => e.0.into(),
                            other => udata(other).unwrap_or(0),
                        },
                        runtime_type: udata(entry.attr_value(DW_AT_GO_RUNTIME_TYPE)),
                        dict_index: udata(entry.attr_value(DW_AT_GO_DICT_INDEX)),
                        type_ref: ref_key(unit, entry.attr_value(gimli::DW_AT_type)),
                        key_ref: ref_key(unit, entry.attr_value(DW_AT_GO_KEY)),
                        elem_ref: ref_key(unit, entry.attr_value(DW_AT_GO_ELEM)),
                        members: Vec::new(),
                        count: None,
                    };
                    raw_types.push((off, raw));
                    open_type = Some((raw_types.len() - 1, depth));
                }
                gimli::DW_TAG_member => {
                    if let Some((idx, d)) = open_type {
                        if depth == d + 1 {
                            if let Some((_, raw)) = raw_types.get_mut(idx) {
                                if raw.members.len() < MAX_FIELDS {
                                    raw.members.push((
                                        name().unwrap_or_default(),
                                        udata(entry.attr_value(gimli::DW_AT_data_member_location))
                                            .unwrap_or(0),
                                        ref_key(unit, entry.attr_value(gimli::DW_AT_type)),
                                        matches!(
                                            entry.attr_value(DW_AT_GO_EMBEDDED_FIELD),
                                            Some(AttributeValue::Flag(true))
                                        ) || udata(entry.attr_value(DW_AT_GO_EMBEDDED_FIELD))
                                            .is_some_and(|v| v != 0),
                                    ));
                                }
                            }
                        }
                    }
                }
                gimli::DW_TAG_subrange_type => {
                    if let Some((idx, d)) = open_type {
                        if depth == d + 1 {
                            let count = udata(entry.attr_value(gimli::DW_AT_count)).or_else(|| {
                                udata(entry.attr_value(gimli::DW_AT_upper_bound)).map(|u| u + 1)
                            });
                            if let Some((_, raw)) = raw_types.get_mut(idx) {
                                raw.count = count;
                            }
                        }
                    }
                }
                gimli::DW_TAG_variable if depth == 1 => {
                    let Some(name) = name() else { continue };
                    let Some(ty) = ref_key(unit, entry.attr_value(gimli::DW_AT_type)) else {
                        continue;
                    };
                    if let Some(AttributeValue::Exprloc(expr)) =
                        entry.attr_value(gimli::DW_AT_location)
                    {
                        if let Some(addr) = self.static_address(unit, expr) {
                            raw_unit.globals.push((name, addr, ty));
                        }
                    }
                }
                gimli::DW_TAG_constant if depth == 1 => {
                    let Some(name) = name() else { continue };
                    let value = entry.attr_value(gimli::DW_AT_const_value).and_then(|v| {
                        v.sdata_value()
                            .or_else(|| v.udata_value().map(|u| u as i64))
                    });
                    if let Some(value) = value {
                        raw_unit.constants.push((name, value));
                    }
                }
                gimli::DW_TAG_subprogram if depth == 1 => {
                    let low = match entry.attr_value(gimli::DW_AT_low_pc) {
                        Some(v) => self.dwarf.attr_address(unit, v)?,
                        None => None,
                    };
                    let Some(low) = low else { continue };
                    let high = match entry.attr_value(gimli::DW_AT_high_pc) {
                        Some(AttributeValue::Addr(a)) => a,
                        other => match udata(other) {
                            Some(len) => low.saturating_add(len),
                            None => continue,
                        },
                    };
                    raw_unit.functions.push(Function {
                        name: name().unwrap_or_default(),
                        low_pc: low,
                        high_pc: high,
                        unit: unit_idx,
                        die: entry.offset(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The address of a `DW_OP_addr`/`DW_OP_addrx` location expression.
    fn static_address(
        &self,
        unit: &gimli::Unit<Reader>,
        expr: gimli::Expression<Reader>,
    ) -> Option<u64> {
        let mut ops = expr.operations(unit.encoding());
        match ops.next().ok()?? {
            gimli::Operation::Address { address } => Some(address),
            gimli::Operation::AddressIndex { index } => self.dwarf.address(unit, index).ok(),
            _ => None,
        }
    }

    /// The type with this id.
    pub fn ty(&self, id: TypeId) -> Option<&GoType> {
        self.arena_for(id)?.types.get(id.0 as usize)
    }

    /// Follows typedefs to the type that says what the value is.
    pub fn underlying(&self, id: TypeId) -> Option<(TypeId, &GoType)> {
        underlying_in(self.arena_for(id)?, id)
    }

    /// The arena that answers for `id`: the runtime units' one for its ids
    /// while the full one is not built (the full one keeps them unchanged,
    /// and their typedef chains stay inside it), else the full one.
    fn arena_for(&self, id: TypeId) -> Option<&TypeIndex> {
        match self.full.get() {
            None if (id.0 as usize) < self.rt_types.types.len() => Some(&self.rt_types),
            _ => self.types(),
        }
    }

    /// Number of types.
    pub fn type_count(&self) -> usize {
        self.types().map_or(0, |t| t.types.len())
    }

    /// A type by its DWARF name (`main.Config`, `*main.Node`, `[]int`).
    pub fn type_by_name(&self, name: &str) -> Option<TypeId> {
        self.types()?.type_by_name.get(name).copied()
    }

    /// The DWARF type of a runtime `abi.Type`, by its offset from `moduledata.types`.
    pub fn type_by_runtime_offset(&self, off: u64) -> Option<TypeId> {
        self.types()?.type_by_runtime.get(&off).copied()
    }

    /// A package variable by fully qualified name; scans only the unit(s)
    /// of its package (see [`DwarfInfo::global_anywhere`] for variables
    /// another unit defines).
    pub fn global(&self, name: &str) -> Option<&Global> {
        let units = self.units_for_name(name);
        if self.full.get().is_none() {
            // Before the full arena exists: the global's own unit(s),
            // against the runtime arena, whose ids the full one keeps.
            for &u in &units {
                let Ok(light) = self.light_index(u) else {
                    break;
                };
                if let Some(g) = light.globals.get(name) {
                    return Some(g);
                }
                if light.unresolved.contains(name) {
                    break;
                }
            }
        }
        units
            .into_iter()
            .find_map(|u| self.unit_index(u).ok()?.globals.get(name))
    }

    /// [`DwarfInfo::global`], then every unit when its package's do not
    /// hold it: a variable defined through another package's unit
    /// (`runtime.iscgo` is in `runtime/cgo`'s, `runtime.zeroVal` in the
    /// linker's). A miss builds the full arena; not for parallel code.
    pub fn global_anywhere(&self, name: &str) -> Option<&Global> {
        self.global(name)
            .or_else(|| self.all_globals_by_name().get(name))
    }

    /// Unit `u`'s globals against `rt_types` (see [`UnitSlot::light`]).
    fn light_index(&self, u: usize) -> Result<&LightIndex, DwarfError> {
        let slot = self.units.get(u).ok_or(DwarfError::NoUnit(u))?;
        slot.light
            .get_or_init(|| {
                let unit = self.unit(u)?;
                let unit_off = unit.header.offset().0 as u64;
                let raw = self
                    .scan_unit(unit, u, false)
                    .map_err(malformed(".debug_info", unit_off))?;
                let mut light = LightIndex::default();
                for (name, addr, ty_off) in raw.globals {
                    match self.rt_types.type_by_die.get(&ty_off) {
                        Some(&ty) => {
                            light
                                .globals
                                .insert(name.clone(), Global { name, addr, ty });
                        }
                        None => {
                            light.unresolved.insert(name);
                        }
                    }
                }
                Ok(light)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// All package variables, sorted by name (scans every unit once).
    pub fn globals(&self) -> impl Iterator<Item = &Global> {
        self.all_globals_by_name().values()
    }

    /// Every unit's package variables by name (built once, with the full
    /// arena).
    fn all_globals_by_name(&self) -> &BTreeMap<String, Global> {
        self.all_globals.get_or_init(|| {
            // Building the full arena (in parallel) resolves every
            // unit's index; from here on they are lookups. (It is not
            // to be first built from inside a rayon task: a worker
            // waiting on its lock could steal a task that waits on the
            // same lock.)
            let _ = self.full_types();
            let mut all = BTreeMap::new();
            for u in 0..self.units.len() {
                if let Ok(index) = self.unit_index(u) {
                    for (name, g) in &index.globals {
                        all.insert(name.clone(), g.clone());
                    }
                }
            }
            all
        })
    }

    /// Value of a runtime constant such as `runtime._Gwaiting` (from the
    /// `runtime` units alone).
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.rt_index.constants.get(name).copied()
    }

    /// Link-time address of a runtime global such as `runtime.allgs` (from
    /// the `runtime` units alone).
    pub fn runtime_variable(&self, name: &str) -> Option<u64> {
        self.rt_index.globals.get(name).map(|g| g.addr)
    }

    /// Size in bytes of a runtime global's type (`runtime.waitReasonStrings`:
    /// the array), from the `runtime` units alone.
    pub fn runtime_variable_size(&self, name: &str) -> Option<u64> {
        let ty = self.rt_index.globals.get(name)?.ty;
        let (_, t) = underlying_in(&self.rt_types, ty)?;
        Some(t.size)
    }

    /// Size of the runtime struct named `type_name` (through typedefs).
    pub fn struct_size(&self, type_name: &str) -> Option<u64> {
        let id = *self.rt_types.type_by_name.get(type_name)?;
        let (_, t) = underlying_in(&self.rt_types, id)?;
        matches!(t.kind, TypeKind::Struct { .. }).then_some(t.size)
    }

    /// Byte offset of the dotted member path `path` (e.g. `sched.sp`) inside
    /// the struct `type_name`. Each step may pass through embedded structs
    /// and typedefs (e.g. `atomicstatus` → `atomic.Uint32`).
    pub fn field_offset(&self, type_name: &str, path: &str) -> Option<u64> {
        offset_in(
            &self.rt_types,
            *self.rt_types.type_by_name.get(type_name)?,
            path,
        )
    }

    /// Byte offset of the dotted member path `path` inside the (often
    /// anonymous) struct type of global variable `var` (e.g. `runtime.debug`).
    pub fn variable_field_offset(&self, var: &str, path: &str) -> Option<u64> {
        offset_in(&self.rt_types, self.rt_index.globals.get(var)?.ty, path)
    }

    /// Every unit's PC ranges, sorted by start.
    fn unit_ranges(&self) -> &[(u64, u64, usize)] {
        self.ranges.get_or_init(|| {
            let mut out = Vec::new();
            for u in 0..self.units.len() {
                let Ok(unit) = self.unit(u) else { continue };
                // Without readable range lists no unit has ranges:
                // `function_at` then looks in every unit.
                let Ok(dwarf) = self.with_lists() else { break };
                let Ok(mut ranges) = dwarf.unit_ranges(unit) else {
                    continue;
                };
                while let Ok(Some(r)) = ranges.next() {
                    if r.begin < r.end {
                        out.push((r.begin, r.end, u));
                    }
                }
            }
            out.sort_unstable();
            out
        })
    }

    /// The function containing a link-time PC: first in the units whose
    /// ranges hold it, then (generic instantiations may sit outside their
    /// unit's ranges) in every unit.
    pub fn function_at(&self, pc: u64) -> Option<&Function> {
        let in_unit = |u: usize| {
            let functions = &self.unit_index(u).ok()?.functions;
            let idx = functions.partition_point(|f| f.low_pc <= pc);
            let f = functions.get(idx.checked_sub(1)?)?;
            (pc < f.high_pc).then_some(f)
        };
        let ranges = self.unit_ranges();
        let end = ranges.partition_point(|r| r.0 <= pc);
        ranges[..end]
            .iter()
            .rev()
            .filter(|r| pc < r.1)
            .find_map(|&(_, _, u)| in_unit(u))
            .or_else(|| {
                let _ = self.globals().next();
                (0..self.units.len()).find_map(in_unit)
            })
    }

    /// A function by exact name (scans only the unit(s) of its package).
    pub fn function_by_name(&self, name: &str) -> Option<&Function> {
        self.units_for_name(name).into_iter().find_map(|u| {
            self.unit_index(u)
                .ok()?
                .functions
                .iter()
                .find(|f| f.name == name)
        })
    }

    /// `DW_AT_producer` of the first unit (`Go cmd/compile go1.26.8; regabi`).
    pub fn producer(&self) -> Option<&str> {
        self.producer.as_deref()
    }

    /// Go minor version from the producer (26 for go1.26.8).
    pub fn go_minor(&self) -> Option<u32> {
        self.go_minor
    }

    /// The DWARF encoding of the unit of `f` (needed to parse its expressions).
    pub fn encoding_of(&self, f: &Function) -> Option<gimli::Encoding> {
        self.unit(f.unit).ok().map(|u| u.encoding())
    }

    /// Arguments and locals of logical frame `inline_depth` of the physical
    /// frame at link-time `scope_pc` (0 is the physical function, 1 the call
    /// inlined directly into it, and so on: the runtime's inline tree order).
    /// Variables of lexical blocks and inlined calls not containing
    /// `scope_pc` are left out. Locations are those valid at `loc_pc`: for a
    /// frame suspended in a call, the return address (what the frame resumes
    /// with; a register there is not recoverable) while `scope_pc` is the
    /// call instruction (`pc-1`), as Delve reads them.
    pub fn frame_variables_inlined(
        &self,
        scope_pc: u64,
        loc_pc: u64,
        inline_depth: u32,
    ) -> Result<Vec<Variable>, DwarfError> {
        let Some(func) = self.function_at(scope_pc) else {
            return Ok(Vec::new());
        };
        let unit = self.unit(func.unit)?;
        let unit_off = unit.header.offset().0 as u64;
        // Locals need the range and location lists: say why if they are
        // unreadable (the scan below then never meets the error).
        let lists = self.with_lists()?;
        // A call that never returns can end the function: its return
        // address is the next function's first byte, where this one has no
        // locations. The frame never resumes, so its state is the call's.
        let loc_pc = if (func.low_pc..func.high_pc).contains(&loc_pc) {
            loc_pc
        } else {
            scope_pc
        };
        self.scan_function(lists, unit, func, (scope_pc, loc_pc), inline_depth)
            .map_err(malformed(".debug_info", unit_off))
    }

    /// The variables a closure captures, for the function whose entry is
    /// link-time `entry`: name (a leading `&` means captured by reference,
    /// the slot holds a pointer), type and offset in the closure object
    /// (`DW_AT_go_closure_offset`, emitted since Go 1.23).
    pub fn closure_captures(&self, entry: u64) -> Vec<(String, TypeId, u64)> {
        let Some(func) = self.function_at(entry).filter(|f| f.low_pc == entry) else {
            return Vec::new();
        };
        let Ok(unit) = self.unit(func.unit) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(mut cursor) = unit.entries_at_offset(func.die) else {
            return out;
        };
        let mut first = true;
        while let Ok(Some(entry)) = cursor.next_dfs() {
            if first {
                first = false;
                continue;
            }
            if entry.depth() <= 0 {
                break;
            }
            if entry.depth() != 1 || entry.tag() != gimli::DW_TAG_variable {
                continue;
            }
            let Some(off) = udata(entry.attr_value(DW_AT_GO_CLOSURE_OFFSET)) else {
                continue;
            };
            if let Ok(Some((name, ty, _))) = self.name_and_type(unit, entry) {
                out.push((name, ty, off));
            }
        }
        out
    }

    /// Name and type of a variable DIE, through `DW_AT_abstract_origin` for
    /// the concrete copies in inlined calls.
    fn name_and_type(
        &self,
        unit: &gimli::Unit<Reader>,
        entry: &gimli::DebuggingInformationEntry<Reader>,
    ) -> gimli::Result<Option<(String, TypeId, u64)>> {
        let name = |e: &gimli::DebuggingInformationEntry<Reader>| {
            e.attr_value(gimli::DW_AT_name)
                .and_then(|v| self.dwarf.attr_string(unit, v).ok())
                .and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned()))
        };
        let ty = |e: &gimli::DebuggingInformationEntry<Reader>| {
            ref_key(unit, e.attr_value(gimli::DW_AT_type))
                .and_then(|o| self.types().and_then(|t| t.type_by_die.get(&o).copied()))
        };
        let line = |e: &gimli::DebuggingInformationEntry<Reader>| {
            udata(e.attr_value(gimli::DW_AT_decl_line))
        };
        let (mut n, mut t, mut l) = (name(entry), ty(entry), line(entry));
        if n.is_none() || t.is_none() {
            let origin = match entry.attr_value(gimli::DW_AT_abstract_origin) {
                Some(AttributeValue::UnitRef(o)) => Some((unit, o)),
                Some(AttributeValue::DebugInfoRef(o)) => self.unit_holding(o),
                _ => None,
            };
            if let Some((ounit, o)) = origin {
                let origin = ounit.entry(o)?;
                // Names and types of the abstract DIE are read in its own unit.
                let oname = origin
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| self.dwarf.attr_string(ounit, v).ok())
                    .and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned()));
                let oty = ref_key(ounit, origin.attr_value(gimli::DW_AT_type))
                    .and_then(|o| self.types().and_then(|t| t.type_by_die.get(&o).copied()));
                n = n.or(oname);
                t = t.or(oty);
                l = l.or_else(|| line(&origin));
            }
        }
        Ok(match (n, t) {
            (Some(n), Some(t)) => Some((n, t, l.unwrap_or(0))),
            _ => None,
        })
    }

    fn scan_function(
        &self,
        lists: &gimli::Dwarf<Reader>,
        unit: &gimli::Unit<Reader>,
        func: &Function,
        (pc, loc_pc): (u64, u64),
        inline_depth: u32,
    ) -> gimli::Result<Vec<Variable>> {
        let mut out = Vec::new();
        let mut cursor = unit.entries_at_offset(func.die)?;
        // Depth of a subtree being skipped (a scope not containing pc).
        let mut skip_below: Option<isize> = None;
        // Depths of the inlined calls containing pc that enclose the current DIE.
        let mut inlines: Vec<isize> = Vec::new();
        let mut first = true;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            if first {
                first = false;
                continue;
            }
            if depth <= 0 {
                break;
            }
            if let Some(d) = skip_below {
                if depth > d {
                    continue;
                }
                skip_below = None;
            }
            while inlines.last().is_some_and(|&d| d >= depth) {
                inlines.pop();
            }
            match entry.tag() {
                gimli::DW_TAG_inlined_subroutine => {
                    if inlines.len() as u32 >= inline_depth
                        || !die_contains(lists, unit, entry, pc)?
                    {
                        skip_below = Some(depth);
                    } else {
                        inlines.push(depth);
                    }
                }
                gimli::DW_TAG_lexical_block if !die_contains(lists, unit, entry, pc)? => {
                    skip_below = Some(depth);
                }
                tag @ (gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable) => {
                    if inlines.len() as u32 != inline_depth {
                        continue;
                    }
                    let Some((name, ty, decl_line)) = self.name_and_type(unit, entry)? else {
                        continue;
                    };
                    let location = match entry.attr_value(gimli::DW_AT_location) {
                        Some(AttributeValue::Exprloc(e)) => Some(e),
                        Some(v) => {
                            let mut found = None;
                            if let Some(mut locs) = lists.attr_locations(unit, v)? {
                                while let Some(l) = locs.next()? {
                                    if l.range.begin <= loc_pc && loc_pc < l.range.end {
                                        found = Some(l.data);
                                        break;
                                    }
                                }
                            }
                            found
                        }
                        None => None,
                    };
                    let location = location.filter(|e| !e.0.is_empty());
                    let captured = entry.attr_value(DW_AT_GO_CLOSURE_OFFSET).is_some();
                    out.push(Variable {
                        name,
                        ty,
                        is_arg: tag == gimli::DW_TAG_formal_parameter,
                        is_result: matches!(
                            entry.attr_value(gimli::DW_AT_variable_parameter),
                            Some(AttributeValue::Flag(true))
                        ) || udata(entry.attr_value(gimli::DW_AT_variable_parameter))
                            .is_some_and(|v| v != 0),
                        location,
                        decl_line,
                        scope_depth: depth.max(0) as u32,
                        captured,
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The unit holding `.debug_info` offset `o`, with `o` inside it.
    fn unit_holding(
        &self,
        o: gimli::DebugInfoOffset<usize>,
    ) -> Option<(&gimli::Unit<Reader>, gimli::UnitOffset<usize>)> {
        let after = self.units.partition_point(|s| s.header.offset().0 <= o.0);
        let u = after.checked_sub(1)?;
        let unit = self.unit(u).ok()?;
        o.to_unit_offset(&unit.header).map(|uo| (unit, uo))
    }
}

/// `go1.26.8` anywhere in `s` → 26.
fn parse_go_minor(s: &str) -> Option<u32> {
    let at = s.find("go1.")?;
    let rest = s.get(at + 4..)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_minor_from_producer() {
        assert_eq!(parse_go_minor("Go cmd/compile go1.26.8; regabi"), Some(26));
        assert_eq!(parse_go_minor("Go cmd/compile go1.21.13"), Some(21));
        assert_eq!(parse_go_minor("Go cmd/compile devel"), None);
    }

    #[test]
    fn missing_dwarf_is_a_clear_error() {
        let err = DwarfInfo::load(|_| Ok(None)).err();
        assert!(matches!(err, Some(DwarfError::Missing)));
    }
}

/// Test support: compile a small Go program with the system toolchain and
/// load its DWARF (the sections read with `object`, decompressed).
#[cfg(test)]
pub(crate) mod testprog {
    use super::DwarfInfo;
    use object::{Object, ObjectSection};
    use std::path::PathBuf;

    /// Builds `main.go` = `src` in a fresh module and returns the executable path.
    pub fn build(src: &str, dir: &std::path::Path) -> PathBuf {
        std::fs::write(dir.join("go.mod"), "module t\ngo 1.21\n").expect("write go.mod");
        std::fs::write(dir.join("main.go"), src).expect("write main.go");
        let out = dir.join("prog");
        let status = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(dir)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .status()
            .expect("run go build (is Go installed?)");
        assert!(status.success(), "go build failed");
        out
    }

    /// Loads the DWARF of an executable file.
    pub fn load(path: &std::path::Path) -> DwarfInfo {
        let data = std::fs::read(path).expect("read executable");
        object::File::parse(&*data).expect("parse ELF");
        DwarfInfo::load(move |name| {
            let section = || {
                let file = object::File::parse(&*data).ok()?;
                let s = file.section_by_name(name)?;
                s.uncompressed_data()
                    .ok()
                    .map(|c| std::sync::Arc::from(&*c))
            };
            Ok(section())
        })
        .expect("load DWARF")
    }
}

#[cfg(test)]
mod program_tests {
    use super::*;

    const SRC: &str = r#"package main

import "fmt"

type Config struct {
	Name string
	Tags []string
	_    int
	N    *Config
}

var (
	cfg  = Config{Name: "x"}
	m    = map[string]int{"a": 1}
	ch   = make(chan int, 2)
	anyv any = 3
	err  error
	fn   = fmt.Sprint
	arr  [3]uint16
)

var keep []any

func main() {
	keep = []any{&cfg, &m, &ch, &anyv, &err, &fn, &arr}
	fmt.Println(len(keep))
}
"#;

    #[test]
    fn indexes_globals_and_go_kinds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = testprog::build(SRC, dir.path());
        let info = testprog::load(&exe);
        assert!(info.go_minor().is_some_and(|m| m >= 21));
        let kind_of = |name: &str| {
            let g = info.global(name).unwrap_or_else(|| panic!("global {name}"));
            let (_, t) = info.underlying(g.ty).expect("type");
            (
                info.ty(g.ty).expect("type").name.clone(),
                t.kind.clone(),
                t.size,
            )
        };
        let (name, kind, size) = kind_of("main.cfg");
        assert_eq!(name, "main.Config");
        assert_eq!(size, 56);
        let TypeKind::Struct { fields } = kind else {
            panic!("struct")
        };
        let names: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["Name", "Tags", "_", "N"]);
        assert!(matches!(kind_of("main.m").1, TypeKind::Map { .. }));
        assert!(matches!(kind_of("main.ch").1, TypeKind::Chan { .. }));
        assert_eq!(kind_of("main.anyv").1, TypeKind::Interface { empty: true });
        assert_eq!(kind_of("main.err").1, TypeKind::Interface { empty: false });
        assert_eq!(kind_of("main.fn").1, TypeKind::Func);
        let (name, kind, size) = kind_of("main.arr");
        assert_eq!((name.as_str(), size), ("[3]uint16", 6));
        assert!(matches!(kind, TypeKind::Array { len: 3, .. }));
        assert!(info.type_by_name("main.Config").is_some());
        assert!(info.function_by_name("main.main").is_some());
        let main = info.function_by_name("main.main").expect("main");
        assert_eq!(
            info.function_at(main.low_pc).map(|f| f.name.as_str()),
            Some("main.main")
        );
    }

    /// The parallel scan of a large unit finds exactly what the serial one
    /// does, in the same order (type ids follow that order).
    #[test]
    fn parallel_scan_of_a_unit_equals_the_serial_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = testprog::build(SRC, dir.path());
        let info = testprog::load(&exe);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let key = |r: &RawUnit| {
            (
                r.types
                    .iter()
                    .map(|(o, t)| {
                        (
                            *o,
                            t.tag,
                            t.name.clone(),
                            t.size,
                            t.members.clone(),
                            t.count,
                        )
                    })
                    .collect::<Vec<_>>(),
                r.globals.clone(),
                r.constants.clone(),
                r.functions
                    .iter()
                    .map(|f| (f.name.clone(), f.low_pc))
                    .collect::<Vec<_>>(),
            )
        };
        for &u in &info.rt_units {
            let unit = info.unit(u).expect("unit");
            let mut serial = RawUnit::default();
            info.scan_entries(unit, unit.entries(), None, 0, u, true, &mut serial)
                .expect("serial");
            let parallel = pool
                .install(|| info.scan_unit_in_parallel(unit, u, true))
                .expect("parallel");
            assert_eq!(key(&serial), key(&parallel), "unit {u}");
            if u == *info.rt_units.last().expect("a runtime unit") {
                assert!(serial.types.len() > 100, "the types unit");
            }
        }
    }

    /// A global looked up before the full arena exists (its unit alone,
    /// against the runtime units' arena) has the id and type it has after:
    /// the full arena extends the runtime one, so an id never changes
    /// meaning within a session. `print pkg.Var` scans one unit.
    #[test]
    fn globals_found_before_the_full_arena_keep_their_types_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = testprog::build(SRC, dir.path());
        let info = testprog::load(&exe);
        let names = [
            "main.cfg",
            "main.m",
            "main.ch",
            "main.anyv",
            "main.err",
            "main.arr",
        ];
        let before: Vec<(Global, GoType, TypeId)> = names
            .iter()
            .map(|n| {
                let g = info.global(n).unwrap_or_else(|| panic!("{n}")).clone();
                let (u, _) = info.underlying(g.ty).expect("underlying");
                (g.clone(), info.ty(g.ty).expect("type").clone(), u)
            })
            .collect();
        assert!(
            info.full.get().is_none(),
            "no lookup above built the full arena"
        );
        let light_units = info.units_scanned();
        assert!(
            light_units < info.unit_count(),
            "{light_units} units scanned"
        );
        // Counting every type builds the full arena.
        assert!(info.type_count() >= info.rt_types.types.len());
        assert!(info.full.get().is_some());
        for (n, (g, t, u)) in names.iter().zip(before) {
            let after = info.global(n).expect("after");
            assert_eq!(after, &g, "{n}");
            assert_eq!(info.ty(g.ty), Some(&t), "{n}");
            assert_eq!(info.underlying(g.ty).map(|(id, _)| id), Some(u), "{n}");
        }
    }
}
