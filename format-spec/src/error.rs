//! Typed errors: each names the section, the file offset and the failed check.

/// Result alias for this crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// I/O error on the underlying file or stream.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with the snapshot magic.
    #[error("not an rdlv snapshot: bad magic at offset 0 (expected \"RDLVSNAP\")")]
    BadMagic,
    /// A major version this reader does not know.
    #[error("unsupported snapshot format version {major}.{minor}: this rdlv reads version {supported}.x; upgrade rdlv")]
    UnsupportedVersion {
        /// Major found.
        major: u16,
        /// Minor found.
        minor: u16,
        /// Major supported.
        supported: u16,
    },
    /// The file ends before a structure it announces.
    #[error("truncated snapshot: {section} at offset {offset} needs {needed} bytes but the file has {available}")]
    Truncated {
        /// Which section.
        section: String,
        /// File offset.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// A checksum or structural check failed.
    #[error("corrupt snapshot: {section} at offset {offset}: {check}")]
    Corrupt {
        /// Which section.
        section: String,
        /// File offset.
        offset: u64,
        /// Which check failed.
        check: String,
    },
    /// An address that was not captured.
    #[error("address 0x{addr:x} (+{len} bytes) is not in the snapshot")]
    Unmapped {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// An address that was captured but removed by `rdlv redact`: reading it
    /// is an error, never zeros, so a redacted value cannot pass for a real one.
    #[error("memory at 0x{addr:x} (+{len} bytes) was redacted from this snapshot")]
    Redacted {
        /// Address of the first redacted byte of the request.
        addr: u64,
        /// Bytes of the request from `addr` on.
        len: u64,
    },
    /// The file is an age-encrypted snapshot and no identity was given.
    #[error("the snapshot is encrypted (an age file, age-encryption.org/v1) to: {recipients}; pass a matching private key with -i/--identity FILE (or RDLV_IDENTITY=FILE)")]
    Encrypted {
        /// The recipient types (and SSH key tags) from the age header.
        recipients: String,
    },
    /// An encrypted snapshot could not be decrypted: no matching key, a
    /// damaged header, a chunk that does not authenticate, a truncated file.
    #[error("cannot decrypt the snapshot: {0}")]
    Decrypt(String),
    /// An identity (private key) file is unusable.
    #[error("identity {path}: {reason}")]
    Identity {
        /// The file given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// API misuse by the writer's caller.
    #[error("snapshot writer: {0}")]
    Usage(String),
}
