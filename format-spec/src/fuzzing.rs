//! The body of the reader fuzz target, shared with a plain test so CI runs it
//! on every build without a nightly toolchain.

use std::path::Path;

use crate::{FileRole, Snapshot};

/// Opens `path` as a snapshot and exercises every reader entry point on it:
/// metadata, reads at and across range boundaries, the embedded executable and
/// `verify`. Returns whether the file opened. Any panic inside is a bug; errors
/// are the expected outcome for damaged input.
pub fn exercise_reader(path: &Path) -> bool {
    let Ok(snap) = Snapshot::open_with_cache(path, 1 << 20) else {
        return false;
    };
    let _ = snap.metadata().threads.len();
    let _ = snap.version();
    let _ = snap.memory_sizes();
    let mut buf = [0u8; 64];
    // Only a handful of ranges: a damaged index may list millions.
    for r in snap.memory_ranges().iter().take(8) {
        let _ = snap.read_memory(r.addr, &mut buf[..r.len.min(64) as usize]);
        // Straddle the end of the range into whatever follows.
        let _ = snap.read_memory(r.addr.wrapping_add(r.len).wrapping_sub(8), &mut buf[..16]);
        let _ = snap.is_captured(r.addr, r.len.saturating_add(1));
        let _ = snap.is_redacted(r.addr.wrapping_add(r.len));
    }
    let _ = snap.has_redactions();
    let _ = snap.read_memory(u64::MAX - 3, &mut buf[..8]);
    let _ = snap.embedded_files();
    let _ = snap.embedded_file(FileRole::Executable);
    if let Ok(Some(image)) = snap.embedded_image(FileRole::Executable) {
        let mid = image.len() / 2;
        let _ = image.get(mid..mid.saturating_add(64).min(image.len()));
        let _ = image.all();
    }
    let _ = snap.verify();
    true
}
