//! The private keys that open age-encrypted snapshots (`rdlv-snap
//! --encrypt-to`).
//!
//! The command line reads them once (`-i/--identity FILE` or
//! `RDLV_IDENTITY`) and installs them here, so that every way a command opens
//! a snapshot ([`crate::Target::open`], `info`, `verify`, the REPL) decrypts
//! it without each of them carrying the keys along. Decryption happens in
//! memory, chunk by chunk, inside `rdlv_format` (no plaintext file is
//! written). A plain snapshot opens the same with or without keys.
//!
//! Invariant: set at most once per process, before the first open.

use std::path::Path;
use std::sync::OnceLock;

use rdlv_format::{Identities, Snapshot, DEFAULT_CACHE_BYTES};

static IDENTITIES: OnceLock<Identities> = OnceLock::new();

/// Installs the identities every later open uses. Returns them back if some
/// were installed already (they are not replaced).
pub fn set_identities(identities: Identities) -> Result<(), Identities> {
    IDENTITIES.set(identities)
}

/// The installed identities, if any.
pub fn identities() -> Option<&'static Identities> {
    IDENTITIES.get()
}

/// Opens a plain or (with installed identities) an encrypted snapshot. An
/// encrypted snapshot without identities fails with
/// [`rdlv_format::FormatError::Encrypted`], which names its recipient types.
pub fn open_snapshot(path: &Path) -> rdlv_format::Result<Snapshot> {
    Snapshot::open_with_identities(path, identities(), DEFAULT_CACHE_BYTES)
}
