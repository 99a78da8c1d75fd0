//! Test support: builds small Go programs with every supported toolchain
//! (cached under `target/runtime-testbin/`) and reads ELF facts with
//! `object` directly, so these tests depend only on the toolchains.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSegment, ObjectSymbol};

/// (version, go binary) for every supported toolchain; 1.26 is the system `go`.
pub const VERSIONS: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26", "1.27.3",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `go` command for `version`; panics with the install command if missing.
pub fn go_command(version: &str) -> PathBuf {
    if version == "1.26" {
        return PathBuf::from("go");
    }
    let p = workspace_root()
        .join(".toolchains")
        .join(format!("go{version}"))
        .join("go/bin/go");
    assert!(
        p.exists(),
        "Go {version} toolchain missing at {}: run .ci/install-toolchains",
        p.display()
    );
    p
}

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
/// returns the binary path. Cached by (version, name, flags).
pub fn build(version: &str, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let tag: String = flags
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = workspace_root()
        .join("target/runtime-testbin")
        .join(version)
        .join(format!("{name}{tag}"));
    let out = dir.join(name);
    let src = dir.join("main.go");
    if out.exists() && std::fs::read_to_string(&src).ok().as_deref() == Some(source) {
        return out;
    }
    std::fs::create_dir_all(&dir).expect("create test build dir");
    std::fs::write(dir.join("go.mod"), "module testprog\n\ngo 1.21\n").expect("write go.mod");
    std::fs::write(&src, source).expect("write main.go");
    let status = Command::new(go_command(version))
        .arg("build")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(".")
        .current_dir(&dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build failed for {version} {name}");
    out
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
    crate::dwarf::DwarfInfo::for_binary(&binary).expect("load DWARF")
}
