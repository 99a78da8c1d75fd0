//! Identity of the target's executable: GNU build id, Go build id, and the Go
//! version and module info from `.go.buildinfo`. Read from the ELF bytes only;
//! no DWARF and no knowledge of Go runtime structures.

use object::elf::{FileHeader64, SHT_NOTE};
use object::read::elf::{ElfFile64, FileHeader, NoteIterator, ProgramHeader, SectionHeader};
use object::{Endianness, Object, ObjectSection};

/// The `.go.buildinfo` magic (14 bytes) at a 16-byte-aligned address.
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// Size of the `.go.buildinfo` header before the inline strings.
const BUILDINFO_HEADER: usize = 32;
/// Flag bit: version and modinfo are inline varint-prefixed strings (Go 1.18+).
const BUILDINFO_FLAG_INLINE: u8 = 0x2;
/// Longest version or modinfo string we accept (real modinfo is a few KiB).
const MAX_BUILDINFO_STRING: u64 = 1 << 20;
/// The 16-byte sentinels the linker puts around modinfo.
const MODINFO_SENTINEL_LEN: usize = 16;
/// Note type of the Go build id in a note named "Go".
const NT_GO_BUILD_ID: u32 = 4;
/// Longest build id we accept.
const MAX_BUILD_ID: usize = 4096;

/// What the capture records about the executable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExeInfo {
    /// Lower-case hex of the `.note.gnu.build-id` descriptor.
    pub gnu_build_id: Option<String>,
    /// The Go build id (`action/…/content`).
    pub go_build_id: Option<String>,
    /// The Go version from `.go.buildinfo`, e.g. `go1.26.8`.
    pub go_version: Option<String>,
    /// Module info text from `.go.buildinfo`, sentinels stripped.
    pub go_modinfo: Option<String>,
}

/// Extracts [`ExeInfo`] from ELF bytes. Anything missing or malformed is left
/// `None`: the capture must work on any executable, Go or not.
pub fn inspect(data: &[u8]) -> ExeInfo {
    let mut info = ExeInfo::default();
    if let Ok(elf) = ElfFile64::<Endianness>::parse(data) {
        info.gnu_build_id = elf
            .build_id()
            .ok()
            .flatten()
            .filter(|id| !id.is_empty() && id.len() <= MAX_BUILD_ID)
            .map(hex);
        info.go_build_id = go_build_id(&elf, data);
        if let Some(section) = elf.section_by_name(".go.buildinfo") {
            if let Ok(bytes) = section.data() {
                if let Some((version, modinfo)) = parse_buildinfo(bytes) {
                    info.go_version = Some(version);
                    info.go_modinfo = Some(modinfo);
                }
            }
        }
    }
    if info.go_version.is_none() {
        // Section headers can be stripped (or the file is not an ELF we parse):
        // the header is still in the data at a 16-aligned offset.
        for pos in memchr::memmem::find_iter(data, BUILDINFO_MAGIC) {
            if pos % 16 != 0 {
                continue;
            }
            if let Some((version, modinfo)) = data.get(pos..).and_then(parse_buildinfo) {
                info.go_version = Some(version);
                info.go_modinfo = Some(modinfo);
                break;
            }
        }
    }
    info
}

/// Lower-case hex of `bytes` (build ids, register dumps).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Finds the Go build id note in the note sections, or in PT_NOTE segments
/// when section headers are gone.
fn go_build_id(elf: &ElfFile64<'_, Endianness>, data: &[u8]) -> Option<String> {
    let endian = elf.endian();
    let from_notes = |notes: NoteIterator<'_, FileHeader64<Endianness>>| -> Option<String> {
        for note in notes.flatten() {
            if note.name() == b"Go" && note.n_type(endian).0 == NT_GO_BUILD_ID {
                let desc = note.desc();
                if desc.is_empty() || desc.len() > MAX_BUILD_ID {
                    return None;
                }
                let text = String::from_utf8_lossy(desc);
                return Some(text.trim_end_matches('\0').to_string());
            }
        }
        None
    };
    for section in elf.elf_section_table().iter() {
        if section.sh_type(endian) != SHT_NOTE {
            continue;
        }
        if let Ok(Some(notes)) = section.notes(endian, data) {
            if let Some(id) = from_notes(notes) {
                return Some(id);
            }
        }
    }
    let header = elf.elf_header();
    let segments = header.program_headers(endian, data).ok()?;
    for segment in segments {
        if let Ok(Some(notes)) = segment.notes(endian, data) {
            if let Some(id) = from_notes(notes) {
                return Some(id);
            }
        }
    }
    None
}

/// Reads an unsigned LEB128 varint; returns (value, bytes used).
fn uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// Reads one varint-length-prefixed string at `*pos`, advancing it.
fn read_string<'a>(bytes: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let (len, used) = uvarint(bytes.get(*pos..)?)?;
    if len > MAX_BUILDINFO_STRING {
        return None;
    }
    let start = pos.checked_add(used)?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let out = bytes.get(start..end)?;
    *pos = end;
    Some(out)
}

/// Parses `.go.buildinfo` contents starting at the magic: returns the Go
/// version and the module info with its sentinels stripped. Only the inline
/// string layout (Go 1.18+) is supported; older layouts return `None`.
pub fn parse_buildinfo(bytes: &[u8]) -> Option<(String, String)> {
    let header = bytes.get(..BUILDINFO_HEADER)?;
    if !header.starts_with(BUILDINFO_MAGIC) {
        return None;
    }
    let flags = *header.get(15)?;
    if flags & BUILDINFO_FLAG_INLINE == 0 {
        return None;
    }
    let mut pos = BUILDINFO_HEADER;
    let version = read_string(bytes, &mut pos)?;
    let modinfo = read_string(bytes, &mut pos)?;
    // Guards the fallback scan of raw bytes against a stray copy of the magic.
    if !(version.starts_with(b"go") || version.starts_with(b"devel")) {
        return None;
    }
    // The linker frames modinfo with 16-byte sentinels; the byte before the
    // closing sentinel is a newline (as debug/buildinfo checks).
    let modinfo = if modinfo.len() > 2 * MODINFO_SENTINEL_LEN
        && modinfo.get(modinfo.len() - MODINFO_SENTINEL_LEN - 1) == Some(&b'\n')
    {
        modinfo.get(MODINFO_SENTINEL_LEN..modinfo.len() - MODINFO_SENTINEL_LEN)?
    } else {
        modinfo
    };
    Some((
        String::from_utf8_lossy(version).into_owned(),
        String::from_utf8_lossy(modinfo).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn synthetic(version: &str, modinfo: &[u8], flags: u8) -> Vec<u8> {
        let mut out = BUILDINFO_MAGIC.to_vec();
        out.push(8);
        out.push(flags);
        out.resize(BUILDINFO_HEADER, 0);
        varint(version.len() as u64, &mut out);
        out.extend_from_slice(version.as_bytes());
        varint(modinfo.len() as u64, &mut out);
        out.extend_from_slice(modinfo);
        out
    }

    #[test]
    fn parses_synthetic_buildinfo() {
        let mut modinfo = vec![0xAAu8; 16];
        modinfo.extend_from_slice(b"path\texample.com/x\n");
        modinfo.extend_from_slice(&[0xBBu8; 16]);
        let bytes = synthetic("go1.22.10", &modinfo, 2);
        let (version, info) = parse_buildinfo(&bytes).unwrap();
        assert_eq!(version, "go1.22.10");
        assert_eq!(info, "path\texample.com/x\n");
        // Pre-1.18 pointer layout is not supported.
        assert!(parse_buildinfo(&synthetic("go1.17", b"", 0)).is_none());
        // A length running past the end is refused, not a panic.
        let mut truncated = synthetic("go1.22.10", &modinfo, 2);
        truncated.truncate(40);
        assert!(parse_buildinfo(&truncated).is_none());
        let mut huge = BUILDINFO_MAGIC.to_vec();
        huge.extend_from_slice(&[8, 2]);
        huge.resize(BUILDINFO_HEADER, 0);
        huge.extend_from_slice(&[0xff; 12]);
        assert!(parse_buildinfo(&huge).is_none());
    }

    /// Builds a tiny Go program with the system `go` and checks that what we
    /// extract agrees with `go version -m`.
    #[test]
    fn inspects_a_real_go_binary() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.go"),
            "package main\n\nfunc main() { println(\"hi\") }\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("go.mod"),
            "module example.com/exeinfotest\n\ngo 1.21\n",
        )
        .unwrap();
        let exe = dir.path().join("prog");
        for extra in [&[][..], &["-ldflags=-s -w"][..]] {
            let status = Command::new("go")
                .arg("build")
                .args(extra)
                .arg("-o")
                .arg(&exe)
                .arg(".")
                .current_dir(dir.path())
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "-buildvcs=false")
                .status()
                .expect("system go must be installed to run this test");
            assert!(status.success());
            let info = inspect(&std::fs::read(&exe).unwrap());
            let go_version = Command::new("go")
                .arg("env")
                .arg("GOVERSION")
                .output()
                .unwrap();
            let go_version = String::from_utf8(go_version.stdout).unwrap();
            assert_eq!(info.go_version.as_deref(), Some(go_version.trim()));
            let modinfo = info.go_modinfo.clone().unwrap();
            assert!(
                modinfo.starts_with("path\texample.com/exeinfotest\n"),
                "{modinfo:?}"
            );
            let shown = Command::new("go")
                .args(["version", "-m"])
                .arg(&exe)
                .output()
                .unwrap();
            let shown = String::from_utf8(shown.stdout).unwrap();
            assert!(shown.contains("build\tGOARCH=amd64"));
            assert!(modinfo.contains("build\tGOARCH=amd64"));
            let buildid = Command::new("go")
                .args(["tool", "buildid"])
                .arg(&exe)
                .output()
                .unwrap();
            let buildid = String::from_utf8(buildid.stdout).unwrap();
            assert_eq!(info.go_build_id.as_deref(), Some(buildid.trim()));
        }
    }

    #[test]
    fn non_go_elf_has_no_go_fields() {
        let own = std::fs::read("/proc/self/exe").unwrap();
        let info = inspect(&own);
        assert!(info.go_version.is_none());
        assert!(info.go_build_id.is_none());
        assert!(inspect(b"not an elf").go_version.is_none());
    }
}
