//! The Go type model built from DWARF: one arena of [`GoType`]s indexed by
//! [`TypeId`], with the Go-specific kinds (string, slice, map, chan,
//! interface) recognised from the compiler's `DW_AT_go_kind` attribute.

/// Index of a type in [`super::DwarfInfo`]'s arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub u32);

/// `reflect.Kind` numbers, as the compiler writes them in `DW_AT_go_kind`.
pub mod go_kind {
    /// bool
    pub const BOOL: u64 = 1;
    /// uintptr
    pub const UINTPTR: u64 = 12;
    /// array
    pub const ARRAY: u64 = 17;
    /// chan
    pub const CHAN: u64 = 18;
    /// func
    pub const FUNC: u64 = 19;
    /// interface
    pub const INTERFACE: u64 = 20;
    /// map
    pub const MAP: u64 = 21;
    /// pointer
    pub const POINTER: u64 = 22;
    /// slice
    pub const SLICE: u64 = 23;
    /// string
    pub const STRING: u64 = 24;
    /// struct
    pub const STRUCT: u64 = 25;
    /// unsafe.Pointer
    pub const UNSAFE_POINTER: u64 = 26;
}

/// One struct field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name (`_` for blank fields).
    pub name: String,
    /// Byte offset inside the struct.
    pub offset: u64,
    /// Field type.
    pub ty: TypeId,
    /// Whether the field is embedded (`DW_AT_go_embedded_field`).
    pub embedded: bool,
}

/// What a type is, after following the compiler's encoding conventions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// bool.
    Bool,
    /// Signed integer of `size` bytes.
    Int,
    /// Unsigned integer of `size` bytes.
    Uint,
    /// uintptr.
    Uintptr,
    /// float32/float64.
    Float,
    /// complex64/complex128.
    Complex,
    /// string: `{str *uint8, len int}`.
    String,
    /// unsafe.Pointer.
    UnsafePointer,
    /// `*T`; `elem` is `None` when DWARF gives no pointee.
    Pointer {
        /// Pointee type.
        elem: Option<TypeId>,
    },
    /// `[len]T`.
    Array {
        /// Element type.
        elem: TypeId,
        /// Number of elements.
        len: u64,
    },
    /// `[]T`: `{array *T, len, cap}`.
    Slice {
        /// Element type.
        elem: TypeId,
    },
    /// A struct (also the runtime's synthetic ones such as `hchan<T>`).
    Struct {
        /// Fields in declaration order.
        fields: Vec<Field>,
    },
    /// `map[K]V`: a pointer to the runtime header (`*hash<K,V>` or `*map<K,V>`).
    Map {
        /// Key type.
        key: TypeId,
        /// Value type.
        elem: TypeId,
        /// The header pointer type (`*hash<K,V>` / `*map<K,V>`).
        header: Option<TypeId>,
    },
    /// `chan T`: a pointer to `hchan<T>`.
    Chan {
        /// Element type.
        elem: TypeId,
        /// The `*hchan<T>` pointer type.
        header: Option<TypeId>,
    },
    /// An interface; `empty` for `interface{}`/`any` (eface layout).
    Interface {
        /// Whether it has the eface layout (`_type`, `data`) rather than iface (`tab`, `data`).
        empty: bool,
    },
    /// A func value: a pointer to a funcval whose first word is the code pointer.
    Func,
    /// A named alias of another type (DWARF typedef without its own kind).
    Typedef(TypeId),
    /// Anything DWARF describes that Go values never are.
    Unknown,
}

/// One Go type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoType {
    /// Name as DWARF spells it (`main.Config`, `[]int`, `map[string]int`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Kind and structure.
    pub kind: TypeKind,
    /// Offset of the runtime `abi.Type` from `moduledata.types`, if known.
    pub runtime_type: Option<u64>,
    /// For a generic function's type parameter (`.paramN` typedefs): the
    /// index of its concrete `*abi.Type` in the function's dictionary.
    pub dict_index: Option<u64>,
}

/// How many typedefs in a row are followed before giving up (a cycle in a
/// malformed binary must not hang the analyzer).
pub const MAX_TYPEDEF_CHAIN: usize = 32;

/// A named integer constant of a Go type (`DW_TAG_constant`): Delve prints a
/// value of a user-defined type that equals one as `Name (value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedConst {
    /// Full name as DWARF spells it (`main.ByteConst`).
    pub name: String,
    /// The constant's type.
    pub ty: TypeId,
    /// Its value.
    pub value: i64,
}

/// Constants read from DWARF at most (a corrupt binary cannot make the
/// list grow without bound).
const MAX_CONSTANTS: usize = 1 << 20;

use gimli::Reader as _;

impl super::DwarfInfo {
    /// Every typed integer constant of the program (top-level
    /// `DW_TAG_constant` entries with a type and a value), in DWARF order;
    /// read once per session.
    pub fn named_constants(&self) -> &[NamedConst] {
        self.constants.get_or_init(|| self.read_named_constants())
    }

    fn read_named_constants(&self) -> Vec<NamedConst> {
        let mut out = Vec::new();
        let Some(types) = self.types() else {
            return out;
        };
        for u in 0..self.units.len() {
            let Ok(unit) = self.unit(u) else { continue };
            let mut cursor = unit.entries();
            while let Ok(Some(entry)) = cursor.next_dfs() {
                if entry.depth() != 1 || entry.tag() != gimli::DW_TAG_constant {
                    continue;
                }
                if out.len() >= MAX_CONSTANTS {
                    return out;
                }
                let name = entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| self.dwarf.attr_string(unit, v).ok())
                    .and_then(|s| s.to_string_lossy().ok().map(|c| c.into_owned()));
                let ty = super::ref_key(unit, entry.attr_value(gimli::DW_AT_type))
                    .and_then(|o| types.type_by_die.get(&o).copied());
                let value = match entry.attr_value(gimli::DW_AT_const_value) {
                    Some(gimli::AttributeValue::Sdata(v)) => Some(v),
                    Some(gimli::AttributeValue::Udata(v)) => Some(v as i64),
                    Some(gimli::AttributeValue::Data1(v)) => Some(i64::from(v)),
                    Some(gimli::AttributeValue::Data2(v)) => Some(i64::from(v)),
                    Some(gimli::AttributeValue::Data4(v)) => Some(i64::from(v)),
                    Some(gimli::AttributeValue::Data8(v)) => Some(v as i64),
                    _ => None,
                };
                if let (Some(name), Some(ty), Some(value)) = (name, ty, value) {
                    out.push(NamedConst { name, ty, value });
                }
            }
        }
        out
    }
}
