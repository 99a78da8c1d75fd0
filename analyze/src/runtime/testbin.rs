//! Test support: builds small Go programs with every supported toolchain
//! (through `rdlv-testkit`) and reads ELF facts with
//! `object` directly, so these tests depend only on the toolchains.

use std::path::PathBuf;

use object::{Object, ObjectSegment, ObjectSymbol};

/// Every supported Go release (the workspace's one list).
pub use rdlv_testkit::GO_VERSIONS as VERSIONS;

/// A tiny program whose runtime has the usual goroutines.
pub const HELLO: &str = r#"package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	c := make(chan int)
	go func() { <-c }()
	fmt.Println("hi", os.Getpid())
	time.Sleep(time.Hour)
}
"#;

/// Builds `source` as `name` with Go `version` and extra `go build` flags;
/// returns the binary path (cached, see `rdlv-testkit`).
pub fn build(version: &str, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    rdlv_testkit::build_program(version, name, source, flags)
}

/// Address and size of a `.symtab` symbol.
pub fn symbol(elf: &[u8], name: &str) -> Option<(u64, u64)> {
    let file = object::File::parse(elf).ok()?;
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| (s.address(), s.size()))
}

/// File-backed bytes at a link-time address.
pub fn read_static(elf: &[u8], addr: u64, len: u64) -> Option<Vec<u8>> {
    let file = object::File::parse(elf).ok()?;
    for seg in file.segments() {
        let (start, size) = (seg.address(), seg.size());
        if addr >= start && addr + len <= start + size {
            let data = seg.data().ok()?;
            let off = (addr - start) as usize;
            return data.get(off..off + len as usize).map(<[u8]>::to_vec);
        }
    }
    None
}

/// Reads the Go `[N]string` array symbol `name` as strings.
pub fn string_array(elf: &[u8], name: &str) -> Option<Vec<String>> {
    let (addr, size) = symbol(elf, name)?;
    let raw = read_static(elf, addr, size)?;
    let mut out = Vec::new();
    for pair in raw.chunks_exact(16) {
        let ptr = u64::from_le_bytes(pair[0..8].try_into().ok()?);
        let len = u64::from_le_bytes(pair[8..16].try_into().ok()?);
        if len == 0 {
            out.push(String::new());
            continue;
        }
        let bytes = read_static(elf, ptr, len)?;
        out.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    Some(out)
}

/// The DWARF index of an ELF file's bytes (as a session would load it).
pub fn dwarf_of(elf: &[u8]) -> crate::dwarf::DwarfInfo {
    let binary =
        crate::binary::Binary::parse(std::sync::Arc::from(elf.to_vec().into_boxed_slice()))
            .expect("parse binary");
    crate::dwarf::DwarfInfo::for_binary(&std::sync::Arc::new(binary)).expect("load DWARF")
}
