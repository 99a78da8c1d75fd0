//! Reading and writing rdlv snapshot files.
//!
//! The byte layout is specified normatively in `format-spec/SPEC.md`; this crate
//! is its reference implementation. A snapshot is a sequence of checksummed
//! blocks (metadata, memory chunks, embedded files) followed by an index and a
//! fixed-size footer, so it can be written as a stream (`-o -`) and read with
//! random access: reading one address decompresses only the chunk that holds it.
//!
//! Writing: [`SnapshotWriter`] (streaming, parallel zstd, zero-page elision).
//! Reading: [`Snapshot`] (positional reads, bounded chunk cache, `Sync`), with
//! [`Snapshot::verify`] for a full check. A snapshot encrypted to age
//! recipients (`rdlv-snap --encrypt-to`) is read through
//! [`encryption::AgeSource`], which decrypts chunks in memory on demand. Every malformed input yields a
//! [`FormatError`] naming the section, file offset and failed check.
#![deny(missing_docs)]

pub mod encryption;
mod error;
pub mod fuzzing;
pub mod image;
mod layout;
pub mod meta;
mod reader;
pub mod source;
mod writer;

pub use encryption::{AgeHeader, AgeSource, FileKeyIdentity, Identities};
pub use error::{FormatError, Result};
pub use image::{FileImage, LoadedRange, EMBEDDED_FRAME_LEN};
pub use meta::*;
pub use reader::{
    EmbeddedFileInfo, MemoryRange, RangeKind, Snapshot, VerifyReport, DEFAULT_CACHE_BYTES,
};
pub use writer::{MemoryRegion, SnapshotWriter, WriteOptions, WriteProgress, WriteStats};

/// Current major format version. Readers reject any other major version.
pub const FORMAT_MAJOR: u16 = 1;
/// Newest minor format version this crate reads and writes. Minor bumps
/// add optional block kinds, range kinds or fields, with one exception
/// (SPEC §1, Evolution): 1.1 adds the Redacted range kind; 1.2 lets an
/// embedded file be several zstd frames with a seek table (so a reader
/// decompresses only the parts of the executable it reads), which a 1.0 or
/// 1.1 reader's `verify` rejects. The writer puts 1.2 in every header it
/// writes.
pub const FORMAT_MINOR: u16 = 2;
