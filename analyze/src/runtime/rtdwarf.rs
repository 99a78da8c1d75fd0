//! The small part of DWARF the runtime model needs: struct layouts,
//! constants and global variable addresses, looked up by name.
//!
//! Only top-level DIEs and the members of top-level structs are indexed,
//! which is enough for the runtime's own types and keeps the scan cheap.

use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, SectionId};
use object::{Object, ObjectSection};

/// Errors while indexing DWARF.
#[derive(Debug, thiserror::Error)]
pub enum DwarfIndexError {
    /// The ELF could not be parsed.
    #[error("cannot parse the executable for DWARF: {0}")]
    Object(#[from] object::Error),
    /// DWARF data is malformed.
    #[error("malformed DWARF: {0}")]
    Gimli(#[from] gimli::Error),
    /// There is no `.debug_info`.
    #[error("the executable has no DWARF (.debug_info)")]
    Absent,
}

/// One struct member.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    type_ref: Option<usize>,
}

/// A type DIE, reduced to what layout resolution needs.
#[derive(Debug, Clone)]
enum TypeNode {
    Struct { size: u64, members: Vec<Member> },
    Typedef(usize),
    Other,
}

/// Index of runtime types, constants and variables from an executable's DWARF.
#[derive(Debug, Default)]
pub struct RuntimeDwarf {
    types_by_name: HashMap<String, usize>,
    nodes: HashMap<usize, TypeNode>,
    constants: HashMap<String, i64>,
    variables: HashMap<String, u64>,
    variable_types: HashMap<String, usize>,
}

/// Upper bound on how many typedef hops a type reference may take.
const MAX_TYPEDEF_HOPS: usize = 16;

impl RuntimeDwarf {
    /// Indexes the DWARF of the ELF file `elf`. Returns [`DwarfIndexError::Absent`]
    /// for binaries built with `-ldflags=-w`.
    pub fn from_elf(elf: &[u8]) -> Result<RuntimeDwarf, DwarfIndexError> {
        let file = object::File::parse(elf)?;
        if file.section_by_name(".debug_info").is_none() {
            return Err(DwarfIndexError::Absent);
        }
        let mut owned: HashMap<SectionId, std::borrow::Cow<'_, [u8]>> = HashMap::new();
        // Unit parsing also reads line, range and address tables.
        for id in [
            SectionId::DebugAbbrev,
            SectionId::DebugInfo,
            SectionId::DebugStr,
            SectionId::DebugStrOffsets,
            SectionId::DebugLineStr,
            SectionId::DebugLine,
            SectionId::DebugAddr,
            SectionId::DebugRanges,
            SectionId::DebugRngLists,
            SectionId::DebugLoc,
            SectionId::DebugLocLists,
        ] {
            if let Some(section) = file.section_by_name(id.name()) {
                // The compressed header's size is untrusted; refuse claims
                // beyond deflate's maximum ratio before anything is allocated.
                let range = section.compressed_file_range()?;
                if range.uncompressed_size
                    > range
                        .compressed_size
                        .saturating_mul(1032)
                        .saturating_add(4096)
                {
                    return Err(DwarfIndexError::Absent);
                }
                owned.insert(id, section.uncompressed_data()?);
            }
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<_, gimli::Error> {
            let data: &[u8] = owned.get(&id).map(|c| c.as_ref()).unwrap_or(&[]);
            Ok(EndianSlice::new(data, LittleEndian))
        })?;
        let mut index = RuntimeDwarf::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let unit = dwarf.unit(header)?;
            let unit_base = match header.offset().to_debug_info_offset(&header) {
                Some(off) => off.0,
                None => continue,
            };
            index.index_unit(&dwarf, &unit, unit_base)?;
        }
        Ok(index)
    }

    fn index_unit(
        &mut self,
        dwarf: &gimli::Dwarf<EndianSlice<'_, LittleEndian>>,
        unit: &gimli::Unit<EndianSlice<'_, LittleEndian>>,
        unit_base: usize,
    ) -> Result<(), DwarfIndexError> {
        let mut cursor = unit.entries();
        // The struct whose members are being collected (its global offset).
        let mut open_struct: Option<usize> = None;
        while let Some(entry) = cursor.next_dfs()? {
            let depth = entry.depth();
            let global = unit_base + entry.offset().0;
            let name = entry
                .attr_value(gimli::DW_AT_name)
                .and_then(|v| dwarf.attr_string(unit, v).ok())
                .map(|s| String::from_utf8_lossy(s.slice()).into_owned());
            let type_ref = entry.attr_value(gimli::DW_AT_type).and_then(|v| match v {
                AttributeValue::UnitRef(o) => Some(unit_base + o.0),
                AttributeValue::DebugInfoRef(o) => Some(o.0),
                _ => None,
            });
            if depth == 1 {
                open_struct = None;
                match entry.tag() {
                    gimli::DW_TAG_structure_type => {
                        let size = entry
                            .attr_value(gimli::DW_AT_byte_size)
                            .and_then(|v| v.udata_value())
                            .unwrap_or(0);
                        self.nodes.insert(
                            global,
                            TypeNode::Struct {
                                size,
                                members: Vec::new(),
                            },
                        );
                        if let Some(n) = name {
                            self.types_by_name.entry(n).or_insert(global);
                        }
                        open_struct = Some(global);
                    }
                    gimli::DW_TAG_typedef => {
                        if let Some(t) = type_ref {
                            self.nodes.insert(global, TypeNode::Typedef(t));
                        }
                        if let Some(n) = name {
                            // A struct of the same name wins over its typedef.
                            self.types_by_name.entry(n).or_insert(global);
                        }
                    }
                    gimli::DW_TAG_constant => {
                        if let (Some(n), Some(v)) =
                            (name, entry.attr_value(gimli::DW_AT_const_value))
                        {
                            let value = v
                                .sdata_value()
                                .or_else(|| v.udata_value().map(|u| u as i64));
                            if let Some(value) = value {
                                self.constants.insert(n, value);
                            }
                        }
                    }
                    gimli::DW_TAG_variable => {
                        if let (Some(n), Some(AttributeValue::Exprloc(expr))) =
                            (name, entry.attr_value(gimli::DW_AT_location))
                        {
                            let bytes = expr.0.slice();
                            // DW_OP_addr <8-byte address>
                            if bytes.len() == 9 && bytes.first() == Some(&0x03) {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(&bytes[1..9]);
                                if let Some(t) = type_ref {
                                    self.variable_types.insert(n.clone(), t);
                                }
                                self.variables.insert(n, u64::from_le_bytes(a));
                            }
                        }
                    }
                    _ => {
                        self.nodes.insert(global, TypeNode::Other);
                    }
                }
            } else if depth == 2 && entry.tag() == gimli::DW_TAG_member {
                if let Some(owner) = open_struct {
                    let offset = entry
                        .attr_value(gimli::DW_AT_data_member_location)
                        .and_then(|v| v.udata_value())
                        .unwrap_or(0);
                    if let Some(TypeNode::Struct { members, .. }) = self.nodes.get_mut(&owner) {
                        members.push(Member {
                            name: name.unwrap_or_default(),
                            offset,
                            type_ref,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows typedefs from `offset` to the struct they name.
    fn resolve_struct(&self, mut offset: usize) -> Option<(u64, &[Member])> {
        for _ in 0..MAX_TYPEDEF_HOPS {
            match self.nodes.get(&offset)? {
                TypeNode::Struct { size, members } => return Some((*size, members)),
                TypeNode::Typedef(t) => offset = *t,
                TypeNode::Other => return None,
            }
        }
        None
    }

    /// Size of the struct type `type_name`, if it exists.
    pub fn struct_size(&self, type_name: &str) -> Option<u64> {
        let off = *self.types_by_name.get(type_name)?;
        self.resolve_struct(off).map(|(size, _)| size)
    }

    /// Byte offset of the dotted member path `path` inside the (often
    /// anonymous) struct type of global variable `var` (e.g. `runtime.debug`).
    pub fn variable_field_offset(&self, var: &str, path: &str) -> Option<u64> {
        self.offset_in(*self.variable_types.get(var)?, path)
    }

    /// Byte offset of the dotted member path `path` (e.g. `sched.sp`) inside
    /// the struct `type_name`. Each step may pass through embedded structs
    /// and typedefs (e.g. `atomicstatus` → `atomic.Uint32`).
    pub fn field_offset(&self, type_name: &str, path: &str) -> Option<u64> {
        self.offset_in(*self.types_by_name.get(type_name)?, path)
    }

    fn offset_in(&self, type_offset: usize, path: &str) -> Option<u64> {
        let mut current = type_offset;
        let mut total = 0u64;
        let mut steps = path.split('.').peekable();
        while let Some(step) = steps.next() {
            let (_, members) = self.resolve_struct(current)?;
            let member = members.iter().find(|m| m.name == step)?;
            total = total.checked_add(member.offset)?;
            if steps.peek().is_some() {
                current = member.type_ref?;
            }
        }
        Some(total)
    }

    /// Value of a DWARF constant such as `runtime._Gwaiting`.
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.constants.get(name).copied()
    }

    /// Link-time address of a global variable such as `runtime.allgs`.
    pub fn variable(&self, name: &str) -> Option<u64> {
        self.variables.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(RuntimeDwarf::from_elf(b"not an elf").is_err());
        assert!(RuntimeDwarf::from_elf(&[0x7f, b'E', b'L', b'F', 2, 1, 1]).is_err());
    }

    #[test]
    fn stripped_binary_has_no_dwarf() {
        let bin = crate::runtime::testbin::build(
            "1.26",
            "hello",
            crate::runtime::testbin::HELLO,
            &["-ldflags=-s -w"],
        );
        let elf = std::fs::read(bin).expect("read");
        assert!(matches!(
            RuntimeDwarf::from_elf(&elf),
            Err(DwarfIndexError::Absent)
        ));
    }

    #[test]
    fn nested_paths_and_variables_resolve() {
        let bin =
            crate::runtime::testbin::build("1.26", "hello", crate::runtime::testbin::HELLO, &[]);
        let elf = std::fs::read(bin).expect("read");
        let d = RuntimeDwarf::from_elf(&elf).expect("dwarf");
        // gobuf.sp is the first word of g.sched (offset 56 in every version).
        assert_eq!(d.field_offset("runtime.g", "sched.sp"), Some(56));
        assert_eq!(d.field_offset("runtime.g", "sched.nosuchfield"), None);
        assert_eq!(d.field_offset("runtime.nosuchtype", "x"), None);
        let allgs = d.variable("runtime.allgs").expect("allgs");
        let sym = crate::runtime::testbin::symbol(&elf, "runtime.allgs").expect("symbol");
        assert_eq!(allgs, sym.0);
    }
}
