//! The Go executable: ELF sections and segments, symbols, build ids and Go
//! build info. Addresses here are link-time addresses; add the load bias
//! (see [`Binary::load_bias`]) for addresses in a PIE process.

use std::sync::Arc;

use crate::error::Result;

/// A Go version, parsed from `.go.buildinfo` (`go1.26.8`, `go1.27rc1`, `devel …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    /// The raw string.
    pub raw: String,
    /// Major (1).
    pub major: u32,
    /// Minor (21..27).
    pub minor: u32,
    /// Patch (0 for rc/beta).
    pub patch: u32,
}

/// A symbol from `.symtab` (absent in stripped binaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    /// Link-time address.
    pub addr: u64,
    /// Size in bytes (0 if unknown).
    pub size: u64,
}

/// A parsed executable. Owns its bytes; cheap to share behind an `Arc`.
pub struct Binary {
    _data: Arc<[u8]>,
}

impl Binary {
    /// Parses an ELF executable.
    pub fn parse(_data: Arc<[u8]>) -> Result<Binary> {
        todo!()
    }
    /// The whole file.
    pub fn data(&self) -> &[u8] {
        todo!()
    }
    /// Whether the ELF type is ET_DYN (PIE).
    pub fn is_pie(&self) -> bool {
        todo!()
    }
    /// `e_entry`.
    pub fn entry(&self) -> u64 {
        todo!()
    }
    /// Load bias for a process whose auxv AT_ENTRY is `at_entry` (0 for non-PIE).
    pub fn load_bias(&self, _at_entry: u64) -> u64 {
        todo!()
    }
    /// Go version from `.go.buildinfo`, if this is a Go binary.
    pub fn go_version(&self) -> Option<&GoVersion> {
        todo!()
    }
    /// Module info text from `.go.buildinfo` (sentinels stripped).
    pub fn go_modinfo(&self) -> Option<&str> {
        todo!()
    }
    /// Lower-case hex of the GNU build id note.
    pub fn gnu_build_id(&self) -> Option<&str> {
        todo!()
    }
    /// The Go build id string.
    pub fn go_build_id(&self) -> Option<&str> {
        todo!()
    }
    /// Looks up a symbol by exact name in `.symtab`.
    pub fn symbol(&self, _name: &str) -> Option<Symbol> {
        todo!()
    }
    /// Section by name: (link-time address, file bytes; decompressed if SHF_COMPRESSED).
    pub fn section(&self, _name: &str) -> Option<(u64, std::borrow::Cow<'_, [u8]>)> {
        todo!()
    }
    /// Bytes of the file-backed part of the loaded image at a link-time address
    /// (from PT_LOAD segments); `None` if not file-backed.
    pub fn read_static(&self, _vaddr: u64, _len: usize) -> Option<&[u8]> {
        todo!()
    }
    /// Whether DWARF sections are present.
    pub fn has_dwarf(&self) -> bool {
        todo!()
    }
}
