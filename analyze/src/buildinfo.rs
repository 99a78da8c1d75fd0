//! Go build information as pure functions over bytes: the `.go.buildinfo`
//! blob (Go version and module info), Go version strings, and the ELF notes
//! that carry the Go and GNU build ids.
//!
//! Nothing here knows about ELF files as a whole; [`crate::binary::Binary`]
//! finds the bytes and calls these functions.

use crate::binary::GoVersion;

/// Magic at the start of the `.go.buildinfo` blob.
pub const BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// Size of the `.go.buildinfo` header before the inline strings.
pub const BUILDINFO_HEADER_LEN: usize = 32;

/// Start sentinel framing the module info text (16 bytes).
pub const MODINFO_START: [u8; 16] = [
    0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18, 0xe6,
];

/// End sentinel framing the module info text (16 bytes).
pub const MODINFO_END: [u8; 16] = [
    0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8, 0xf2,
];

/// Upper bound on either build info string; real ones are a few KiB.
pub const MAX_BUILDINFO_STRING: u64 = 1 << 20;

/// ELF note type of the Go build id (`ELF_NOTE_GOBUILDID_TAG`).
pub const NOTE_GO_BUILDID: u32 = 4;

/// ELF note type of the GNU build id (`NT_GNU_BUILD_ID`).
pub const NOTE_GNU_BUILD_ID: u32 = 3;

/// Why a `.go.buildinfo` blob could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildInfoError {
    /// The blob does not start with [`BUILDINFO_MAGIC`].
    #[error("no Go build info magic")]
    NoMagic,
    /// The blob ends before the header or a string is complete.
    #[error("Go build info is truncated")]
    Truncated,
    /// A length prefix is larger than [`MAX_BUILDINFO_STRING`].
    #[error("Go build info string length {0} is implausible")]
    TooLong(u64),
    /// A string is not UTF-8.
    #[error("Go build info string is not UTF-8")]
    NotUtf8,
    /// The blob says pointers are 4 or 8 bytes wide but holds something else.
    #[error("Go build info pointer size {0} is not supported")]
    PointerSize(u8),
}

/// The decoded header of a `.go.buildinfo` blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildInfoLayout {
    /// Go 1.18+: both strings follow the header inline.
    Inline {
        /// Go version string, e.g. `go1.26.8`.
        version: String,
        /// Module info with its sentinels removed (invalid UTF-8 replaced).
        modinfo: String,
    },
    /// Before Go 1.18: the header holds the addresses of two Go string
    /// headers (`{ptr, len}`) in the loaded image.
    Pointers {
        /// Address of the version string header.
        version_addr: u64,
        /// Address of the module info string header.
        modinfo_addr: u64,
        /// Pointer size in bytes (4 or 8).
        ptr_size: u8,
        /// Whether pointers are big-endian.
        big_endian: bool,
    },
}

/// Reads a Go-style unsigned LEB128 varint (at most 10 bytes).
/// Returns the value and the number of bytes consumed.
pub fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let low = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Parses a `.go.buildinfo` blob (the section contents, starting at the magic).
pub fn parse_buildinfo(blob: &[u8]) -> Result<BuildInfoLayout, BuildInfoError> {
    if !blob.starts_with(BUILDINFO_MAGIC) {
        return Err(BuildInfoError::NoMagic);
    }
    let header = blob
        .get(..BUILDINFO_HEADER_LEN)
        .ok_or(BuildInfoError::Truncated)?;
    let ptr_size = header[14];
    let flags = header[15];
    let big_endian = flags & 0x01 != 0;
    if flags & 0x02 != 0 {
        let rest = &blob[BUILDINFO_HEADER_LEN..];
        let (version, used) = read_prefixed_bytes(rest)?;
        let version = std::str::from_utf8(version).map_err(|_| BuildInfoError::NotUtf8)?;
        let rest = rest.get(used..).ok_or(BuildInfoError::Truncated)?;
        let (modinfo, _) = read_prefixed_bytes(rest)?;
        return Ok(BuildInfoLayout::Inline {
            version: version.to_string(),
            modinfo: String::from_utf8_lossy(strip_modinfo_sentinels(modinfo)).into_owned(),
        });
    }
    let width = match ptr_size {
        4 | 8 => usize::from(ptr_size),
        other => return Err(BuildInfoError::PointerSize(other)),
    };
    let version_addr = read_word(&header[16..], width, big_endian)?;
    let modinfo_addr = read_word(&header[16 + width..], width, big_endian)?;
    Ok(BuildInfoLayout::Pointers {
        version_addr,
        modinfo_addr,
        ptr_size,
        big_endian,
    })
}

/// Reads one pointer-sized word.
pub fn read_word(bytes: &[u8], width: usize, big_endian: bool) -> Result<u64, BuildInfoError> {
    let raw = bytes.get(..width).ok_or(BuildInfoError::Truncated)?;
    let mut value = 0u64;
    if big_endian {
        for &b in raw {
            value = (value << 8) | u64::from(b);
        }
    } else {
        for &b in raw.iter().rev() {
            value = (value << 8) | u64::from(b);
        }
    }
    Ok(value)
}

fn read_prefixed_bytes(bytes: &[u8]) -> Result<(&[u8], usize), BuildInfoError> {
    let (len, used) = read_uvarint(bytes).ok_or(BuildInfoError::Truncated)?;
    if len > MAX_BUILDINFO_STRING {
        return Err(BuildInfoError::TooLong(len));
    }
    // `len` is at most MAX_BUILDINFO_STRING, so it fits in usize.
    let end = used + len as usize;
    let raw = bytes.get(used..end).ok_or(BuildInfoError::Truncated)?;
    Ok((raw, end))
}

/// Removes the 16-byte sentinels that frame the module info, if both are
/// there. The sentinels are not UTF-8, so this works on bytes.
pub fn strip_modinfo_sentinels(modinfo: &[u8]) -> &[u8] {
    if modinfo.len() >= 32 && modinfo.starts_with(&MODINFO_START) && modinfo.ends_with(&MODINFO_END)
    {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    }
}

/// Parses a Go version string: `go1.22.0`, `go1.27rc1`, `go1.21`,
/// `go1.26.8 X:nocoverageredesign`, `devel go1.27-abcdef Tue Jan 1 …`.
/// rc and beta releases get patch 0.
pub fn parse_go_version(raw: &str) -> Option<GoVersion> {
    let trimmed = raw.trim();
    let token = trimmed
        .strip_prefix("devel ")
        .unwrap_or(trimmed)
        .split_whitespace()
        .next()?;
    let rest = token.strip_prefix("go")?;
    let (major, rest) = split_number(rest)?;
    let rest = rest.strip_prefix('.')?;
    let (minor, rest) = split_number(rest)?;
    let patch = match rest.strip_prefix('.') {
        Some(tail) => split_number(tail).map(|(p, _)| p).unwrap_or(0),
        None => 0,
    };
    Some(GoVersion {
        raw: raw.to_string(),
        major,
        minor,
        patch,
    })
}

/// Splits leading ASCII digits off `s` and parses them.
fn split_number(s: &str) -> Option<(u32, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value = s[..digits].parse().ok()?;
    Some((value, &s[digits..]))
}

/// One ELF note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    /// Owner name without padding (may include its NUL terminator).
    pub name: &'a [u8],
    /// Note type.
    pub kind: u32,
    /// Descriptor bytes without padding.
    pub desc: &'a [u8],
}

/// Iterates the notes in the contents of a note section or PT_NOTE segment.
/// `align` is the note alignment (4 or 8; anything else is treated as 4).
/// Iteration stops at the first malformed note.
pub fn notes(bytes: &[u8], align: u64) -> impl Iterator<Item = Note<'_>> {
    let align = if align == 8 { 8usize } else { 4usize };
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(pos..pos.checked_add(12)?)?;
        let namesz = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let descsz = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let kind = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let name_start = pos + 12;
        let name = bytes.get(name_start..name_start.checked_add(namesz)?)?;
        let desc_start = align_up(name_start + namesz, align)?;
        let desc = bytes.get(desc_start..desc_start.checked_add(descsz)?)?;
        pos = align_up(desc_start + descsz, align)?;
        Some(Note { name, kind, desc })
    })
}

fn align_up(value: usize, align: usize) -> Option<usize> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

/// The Go build id from note bytes: owner `"Go\0\0"`, type 4, text descriptor.
pub fn go_build_id_from_notes(bytes: &[u8], align: u64) -> Option<String> {
    notes(bytes, align)
        .find(|n| trim_nul(n.name) == b"Go" && n.kind == NOTE_GO_BUILDID)
        .and_then(|n| std::str::from_utf8(trim_nul(n.desc)).ok())
        .map(str::to_string)
}

/// The GNU build id from note bytes (owner `"GNU\0"`, type 3) as lower-case hex.
pub fn gnu_build_id_from_notes(bytes: &[u8], align: u64) -> Option<String> {
    notes(bytes, align)
        .find(|n| trim_nul(n.name) == b"GNU" && n.kind == NOTE_GNU_BUILD_ID)
        .map(|n| hex(n.desc))
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline_blob(version: &str, modinfo: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(BUILDINFO_MAGIC);
        blob.push(8);
        blob.push(2);
        blob.resize(BUILDINFO_HEADER_LEN, 0);
        blob.push(version.len() as u8);
        blob.extend_from_slice(version.as_bytes());
        // A two-byte uvarint length exercises the continuation path.
        let len = modinfo.len();
        assert!((128..16384).contains(&len));
        blob.push((len as u8 & 0x7f) | 0x80);
        blob.push((len >> 7) as u8);
        blob.extend_from_slice(modinfo);
        blob
    }

    fn framed(text: &str) -> Vec<u8> {
        let mut v = MODINFO_START.to_vec();
        v.extend_from_slice(text.as_bytes());
        v.extend_from_slice(&MODINFO_END);
        v
    }

    #[test]
    fn inline_buildinfo_strips_sentinels() {
        let text = format!(
            "path\texample.com/x\nmod\texample.com/x\t(devel)\t\n{}",
            "build\tk=v\n".repeat(12)
        );
        let blob = inline_blob("go1.26.8", &framed(&text));
        match parse_buildinfo(&blob).unwrap() {
            BuildInfoLayout::Inline { version, modinfo } => {
                assert_eq!(version, "go1.26.8");
                assert_eq!(modinfo, text);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_and_garbled_buildinfo_are_errors() {
        let text = "x".repeat(200);
        let blob = inline_blob("go1.22.10", &framed(&text));
        for cut in 0..blob.len() {
            let result = parse_buildinfo(&blob[..cut]);
            assert!(result.is_err(), "cut at {cut} parsed: {result:?}");
        }
        let mut huge = blob.clone();
        huge[BUILDINFO_HEADER_LEN] = 0xff;
        huge[BUILDINFO_HEADER_LEN + 1] = 0xff;
        huge[BUILDINFO_HEADER_LEN + 2] = 0xff;
        huge[BUILDINFO_HEADER_LEN + 3] = 0x7f;
        assert!(matches!(
            parse_buildinfo(&huge),
            Err(BuildInfoError::TooLong(_))
        ));
        assert_eq!(
            parse_buildinfo(b"not a build info blob at all, no"),
            Err(BuildInfoError::NoMagic)
        );
    }

    #[test]
    fn pointer_form_header_is_decoded() {
        let mut blob = BUILDINFO_MAGIC.to_vec();
        blob.push(8);
        blob.push(0);
        blob.extend_from_slice(&0x4c1234u64.to_le_bytes());
        blob.extend_from_slice(&0x4c1244u64.to_le_bytes());
        assert_eq!(
            parse_buildinfo(&blob).unwrap(),
            BuildInfoLayout::Pointers {
                version_addr: 0x4c1234,
                modinfo_addr: 0x4c1244,
                ptr_size: 8,
                big_endian: false
            }
        );
        blob[14] = 3;
        assert_eq!(parse_buildinfo(&blob), Err(BuildInfoError::PointerSize(3)));
    }

    #[test]
    fn go_versions_parse() {
        let cases = [
            ("go1.22.0", (1, 22, 0)),
            ("go1.21.13", (1, 21, 13)),
            ("go1.27rc1", (1, 27, 0)),
            ("go1.23beta2", (1, 23, 0)),
            ("go1.21", (1, 21, 0)),
            ("go1.26.8 X:nocoverageredesign", (1, 26, 8)),
            (
                "devel go1.27-abcdef0123 Tue Mar 3 10:00:00 2026 +0000",
                (1, 27, 0),
            ),
            ("go1.24.11-bigcorp", (1, 24, 11)),
        ];
        for (raw, (major, minor, patch)) in cases {
            let v = parse_go_version(raw).unwrap_or_else(|| panic!("{raw} did not parse"));
            assert_eq!((v.major, v.minor, v.patch), (major, minor, patch), "{raw}");
            assert_eq!(v.raw, raw);
        }
        for bad in ["", "go", "1.22", "gox.1", "go1", "devel", "go1.x"] {
            assert!(parse_go_version(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn uvarint_bounds() {
        assert_eq!(read_uvarint(&[0x05]), Some((5, 1)));
        assert_eq!(read_uvarint(&[0x80, 0x01]), Some((128, 2)));
        assert_eq!(read_uvarint(&[0x80, 0x80]), None);
        assert_eq!(read_uvarint(&[]), None);
        assert_eq!(read_uvarint(&[0xff; 11]), None);
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_uvarint(&max), Some((u64::MAX, 10)));
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn build_id_notes() {
        let mut bytes = note(b"GNU\0", 3, &[0xde, 0xad, 0xbe, 0xef, 0x01]);
        bytes.extend(note(b"Go\0\0", 4, b"abc/def/ghi/jkl"));
        assert_eq!(
            go_build_id_from_notes(&bytes, 4).as_deref(),
            Some("abc/def/ghi/jkl")
        );
        assert_eq!(
            gnu_build_id_from_notes(&bytes, 4).as_deref(),
            Some("deadbeef01")
        );
        // A note that claims more bytes than there are ends the iteration.
        let mut bad = note(b"Go\0\0", 4, b"abc");
        bad[4] = 0xff;
        assert_eq!(go_build_id_from_notes(&bad, 4), None);
        for cut in 0..bytes.len() {
            // Never panics on truncation.
            let _ = notes(&bytes[..cut], 4).count();
        }
    }
}
