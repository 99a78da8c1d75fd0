//! Fixed-size structures of the container (SPEC.md §2–§7): constants, encoding
//! and bounds-checked decoding. Everything is little-endian.

use crate::{FormatError, Result};

/// File magic at offset 0.
pub(crate) const MAGIC: [u8; 8] = *b"RDLVSNAP";
/// Magic at the very end of the file (last 8 bytes of the End block).
pub(crate) const END_MAGIC: [u8; 8] = *b"RDLV_END";

/// Size of the file header.
pub(crate) const FILE_HEADER_LEN: u64 = 32;
/// Size of every block header.
pub(crate) const BLOCK_HEADER_LEN: u64 = 24;
/// Size of the End block payload.
pub(crate) const END_PAYLOAD_LEN: u64 = 32;
/// Size of the footer: the End block, header plus payload.
pub(crate) const FOOTER_LEN: u64 = BLOCK_HEADER_LEN + END_PAYLOAD_LEN;
/// Size of the fixed part at the start of a memory chunk payload.
pub(crate) const CHUNK_HEADER_LEN: u64 = 16;
/// Size of the fixed part at the start of an embedded file payload.
pub(crate) const FILE_HEADER_FIXED_LEN: u64 = 16;
/// Size of the fixed part at the start of the index payload.
pub(crate) const INDEX_HEADER_LEN: u64 = 24;
/// Size of a block entry as written by this version.
pub(crate) const BLOCK_ENTRY_LEN: u64 = 24;
/// Size of a range entry as written by this version.
pub(crate) const RANGE_ENTRY_LEN: u64 = 24;
/// Largest entry size a reader accepts (later minors may append fields).
pub(crate) const MAX_ENTRY_LEN: u64 = 4096;

/// Limit on the metadata JSON.
pub(crate) const MAX_METADATA_LEN: u64 = 64 << 20;
/// Limit on the uncompressed size of one memory chunk.
pub(crate) const MAX_CHUNK_LEN: u64 = 16 << 20;
/// Limit on the index block payload (about 22 million chunks or zero runs).
pub(crate) const MAX_INDEX_LEN: u64 = 1 << 30;
/// Limit on an embedded file's name.
pub(crate) const MAX_FILE_NAME_LEN: u64 = 4096;
/// Limit on an embedded file's uncompressed size.
pub(crate) const MAX_EMBEDDED_FILE_LEN: u64 = 4 << 30;
/// Granularity of zero-page elision.
pub(crate) const PAGE_SIZE: u64 = 4096;

/// Block kind codes (SPEC.md §4).
pub(crate) mod kind {
    /// JSON metadata.
    pub(crate) const METADATA: u16 = 1;
    /// One compressed run of memory.
    pub(crate) const MEMORY_CHUNK: u16 = 2;
    /// A whole compressed file.
    pub(crate) const EMBEDDED_FILE: u16 = 3;
    /// The index.
    pub(crate) const INDEX: u16 = 4;
    /// The footer.
    pub(crate) const END: u16 = 5;
}

/// Range kind codes in the index.
pub(crate) mod range_kind {
    /// Bytes in a memory chunk.
    pub(crate) const DATA: u16 = 1;
    /// All-zero bytes, no payload.
    pub(crate) const ZERO: u16 = 2;
    /// Captured bytes removed by `rdlv redact`, no payload (since 1.1).
    pub(crate) const REDACTED: u16 = 3;
}

/// Block reference of a range without payload.
pub(crate) const NO_BLOCK: u32 = u32::MAX;

/// Embedded file role codes.
pub(crate) mod role {
    /// The main executable.
    pub(crate) const EXECUTABLE: u16 = 1;
    /// Anything else.
    pub(crate) const OTHER: u16 = 2;
}

/// Human name of a block kind, for error messages.
pub(crate) fn kind_name(kind: u16) -> &'static str {
    match kind {
        kind::METADATA => "metadata",
        kind::MEMORY_CHUNK => "memory chunk",
        kind::EMBEDDED_FILE => "embedded file",
        kind::INDEX => "index",
        kind::END => "end",
        _ => "unknown kind",
    }
}

/// Builds a [`FormatError::Corrupt`].
pub(crate) fn corrupt(
    section: impl Into<String>,
    offset: u64,
    check: impl Into<String>,
) -> FormatError {
    FormatError::Corrupt {
        section: section.into(),
        offset,
        check: check.into(),
    }
}

/// A bounds-checked little-endian reader over a byte slice. Running past the
/// end yields `None`, which callers turn into a corruption error naming the structure.
pub(crate) struct LeCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> LeCursor<'a> {
    /// Starts at the beginning of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        LeCursor { bytes, pos: 0 }
    }

    /// Next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Next 2 bytes as u16.
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }

    /// Next 4 bytes as u32.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }

    /// Next 8 bytes as u64.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}

/// CRC-32 (ISO-HDLC, as zlib's `crc32`) of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Whether a stored checksum matches the computed one. Fuzzing builds
/// (`--cfg fuzzing`, set by cargo-fuzz) accept any checksum so the fuzzer can
/// reach the structural checks behind them; every other build compares.
pub(crate) fn crc_matches(stored: u32, computed: u32) -> bool {
    cfg!(fuzzing) || stored == computed
}

/// The 32-byte file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub(crate) major: u16,
    pub(crate) minor: u16,
    pub(crate) flags: u32,
}

impl FileHeader {
    /// Serializes: magic, major, minor, flags, 12 reserved zero bytes, CRC of bytes 0..28.
    pub(crate) fn encode(&self) -> [u8; FILE_HEADER_LEN as usize] {
        let mut b = [0u8; FILE_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        let crc = crc32(&b[0..28]);
        b[28..32].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks, in this order: magic, major version, header CRC.
    /// The version comes before the CRC so a future major with another header
    /// layout gets the clear "unsupported version" message.
    pub(crate) fn decode(b: &[u8]) -> Result<FileHeader> {
        let mut c = LeCursor::new(b);
        let magic = c.take(8).ok_or(FormatError::BadMagic)?;
        if magic != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let short = || FormatError::Truncated {
            section: "file header".into(),
            offset: 0,
            needed: FILE_HEADER_LEN,
            available: b.len() as u64,
        };
        let major = c.u16().ok_or_else(short)?;
        let minor = c.u16().ok_or_else(short)?;
        if major != crate::FORMAT_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                major,
                minor,
                supported: crate::FORMAT_MAJOR,
            });
        }
        let flags = c.u32().ok_or_else(short)?;
        c.take(12).ok_or_else(short)?;
        let stored_crc = c.u32().ok_or_else(short)?;
        let covered = b.get(0..28).ok_or_else(short)?;
        let actual = crc32(covered);
        if !crc_matches(stored_crc, actual) {
            return Err(corrupt(
                "file header",
                0,
                format!(
                    "header CRC-32 mismatch (stored {stored_crc:#010x}, computed {actual:#010x})"
                ),
            ));
        }
        Ok(FileHeader {
            major,
            minor,
            flags,
        })
    }
}

/// The 24-byte header in front of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) payload_len: u64,
    pub(crate) payload_crc: u32,
}

impl BlockHeader {
    /// Serializes: kind, flags, 4 reserved zero bytes, payload length, payload CRC, CRC of bytes 0..20.
    pub(crate) fn encode(&self) -> [u8; BLOCK_HEADER_LEN as usize] {
        let mut b = [0u8; BLOCK_HEADER_LEN as usize];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.flags.to_le_bytes());
        b[8..16].copy_from_slice(&self.payload_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the header CRC. `section` and `offset` name the block in errors.
    pub(crate) fn decode(b: &[u8], section: &str, offset: u64) -> Result<BlockHeader> {
        let short = || corrupt(section, offset, "block header shorter than 24 bytes");
        let mut c = LeCursor::new(b);
        let kind = c.u16().ok_or_else(short)?;
        let flags = c.u16().ok_or_else(short)?;
        c.u32().ok_or_else(short)?;
        let payload_len = c.u64().ok_or_else(short)?;
        let payload_crc = c.u32().ok_or_else(short)?;
        let stored_crc = c.u32().ok_or_else(short)?;
        let actual = crc32(b.get(0..20).ok_or_else(short)?);
        if !crc_matches(stored_crc, actual) {
            return Err(corrupt(
                section,
                offset,
                format!("block header CRC-32 mismatch (stored {stored_crc:#010x}, computed {actual:#010x})"),
            ));
        }
        Ok(BlockHeader {
            kind,
            flags,
            payload_len,
            payload_crc,
        })
    }
}

/// The End block's payload: where the index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndRecord {
    /// File offset of the index block's header.
    pub(crate) index_offset: u64,
    /// Length of the index block, header included.
    pub(crate) index_len: u64,
    /// CRC-32 of the index payload (same as in the index block header).
    pub(crate) index_crc: u32,
}

impl EndRecord {
    /// Serializes: index offset, index length, index CRC, 4 reserved zero bytes, end magic.
    pub(crate) fn encode(&self) -> [u8; END_PAYLOAD_LEN as usize] {
        let mut b = [0u8; END_PAYLOAD_LEN as usize];
        b[0..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.index_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.index_crc.to_le_bytes());
        b[24..32].copy_from_slice(&END_MAGIC);
        b
    }

    /// Parses; checks the end magic.
    pub(crate) fn decode(b: &[u8], offset: u64) -> Result<EndRecord> {
        let short = || corrupt("footer", offset, "end record shorter than 32 bytes");
        let mut c = LeCursor::new(b);
        let index_offset = c.u64().ok_or_else(short)?;
        let index_len = c.u64().ok_or_else(short)?;
        let index_crc = c.u32().ok_or_else(short)?;
        c.u32().ok_or_else(short)?;
        let magic = c.take(8).ok_or_else(short)?;
        if magic != END_MAGIC {
            return Err(corrupt(
                "footer",
                offset + 24,
                "end magic \"RDLV_END\" missing: the file is truncated or was not finished",
            ));
        }
        Ok(EndRecord {
            index_offset,
            index_len,
            index_crc,
        })
    }
}

/// One block entry of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockEntry {
    /// File offset of the block header.
    pub(crate) offset: u64,
    /// Payload length (header excluded).
    pub(crate) payload_len: u64,
    /// Block kind.
    pub(crate) kind: u16,
    /// Block flags.
    pub(crate) flags: u16,
    /// CRC-32 of the payload.
    pub(crate) payload_crc: u32,
}

impl BlockEntry {
    /// Appends the 24-byte encoding.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.payload_crc.to_le_bytes());
    }

    /// Parses the first 24 bytes of an entry.
    pub(crate) fn decode(b: &[u8]) -> Option<BlockEntry> {
        let mut c = LeCursor::new(b);
        Some(BlockEntry {
            offset: c.u64()?,
            payload_len: c.u64()?,
            kind: c.u16()?,
            flags: c.u16()?,
            payload_crc: c.u32()?,
        })
    }

    /// The header this entry announces.
    pub(crate) fn header(&self) -> BlockHeader {
        BlockHeader {
            kind: self.kind,
            flags: self.flags,
            payload_len: self.payload_len,
            payload_crc: self.payload_crc,
        }
    }
}

/// One memory range entry of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RangeEntry {
    /// First address.
    pub(crate) addr: u64,
    /// Length in bytes.
    pub(crate) len: u64,
    /// Range kind code.
    pub(crate) kind: u16,
    /// Block table index of the chunk, or [`NO_BLOCK`].
    pub(crate) block: u32,
}

impl RangeEntry {
    /// Appends the 24-byte encoding.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.addr.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.block.to_le_bytes());
    }

    /// Parses the first 24 bytes of an entry.
    pub(crate) fn decode(b: &[u8]) -> Option<RangeEntry> {
        let mut c = LeCursor::new(b);
        let addr = c.u64()?;
        let len = c.u64()?;
        let kind = c.u16()?;
        c.u16()?;
        let block = c.u32()?;
        Some(RangeEntry {
            addr,
            len,
            kind,
            block,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_round_trip_and_checks() {
        let h = FileHeader {
            major: 1,
            minor: 3,
            flags: 0,
        };
        let b = h.encode();
        assert_eq!(&b[0..8], b"RDLVSNAP");
        assert_eq!(FileHeader::decode(&b).ok(), Some(h));
        let mut bad = b;
        bad[13] ^= 1;
        assert!(matches!(
            FileHeader::decode(&bad),
            Err(FormatError::Corrupt { .. })
        ));
        let mut v2 = FileHeader {
            major: 2,
            minor: 0,
            flags: 0,
        }
        .encode();
        assert!(matches!(
            FileHeader::decode(&v2),
            Err(FormatError::UnsupportedVersion {
                major: 2,
                minor: 0,
                supported: 1
            })
        ));
        v2[0] = b'X';
        assert!(matches!(
            FileHeader::decode(&v2),
            Err(FormatError::BadMagic)
        ));
        assert!(FileHeader::decode(&b[..20]).is_err());
    }

    #[test]
    fn block_header_round_trip_and_crc() {
        let h = BlockHeader {
            kind: kind::MEMORY_CHUNK,
            flags: 0,
            payload_len: 12345,
            payload_crc: 0xdeadbeef,
        };
        let b = h.encode();
        assert_eq!(BlockHeader::decode(&b, "t", 0).ok(), Some(h));
        for i in 0..b.len() {
            let mut bad = b;
            bad[i] ^= 0x40;
            assert!(
                BlockHeader::decode(&bad, "t", 0).is_err(),
                "flip at {i} undetected"
            );
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = BlockEntry {
            offset: 32,
            payload_len: 99,
            kind: 3,
            flags: 1,
            payload_crc: 7,
        };
        let mut v = Vec::new();
        e.encode_into(&mut v);
        assert_eq!(v.len() as u64, BLOCK_ENTRY_LEN);
        assert_eq!(BlockEntry::decode(&v), Some(e));
        let r = RangeEntry {
            addr: 0xc000000000,
            len: 4096,
            kind: range_kind::ZERO,
            block: NO_BLOCK,
        };
        let mut v = Vec::new();
        r.encode_into(&mut v);
        assert_eq!(v.len() as u64, RANGE_ENTRY_LEN);
        assert_eq!(RangeEntry::decode(&v), Some(r));
        assert_eq!(RangeEntry::decode(&v[..23]), None);
    }

    #[test]
    fn end_record_round_trip() {
        let e = EndRecord {
            index_offset: 1000,
            index_len: 72,
            index_crc: 5,
        };
        let b = e.encode();
        assert_eq!(&b[24..], b"RDLV_END");
        assert_eq!(EndRecord::decode(&b, 0).ok(), Some(e));
        let mut bad = b;
        bad[31] = 0;
        assert!(EndRecord::decode(&bad, 0).is_err());
    }
}
