//! [`Session`]: one opened snapshot, the root object every command uses.
//!
//! A session owns the snapshot reader and the executable, and builds each
//! part derived from them at most once, on first use: the pclntab, the one
//! DWARF index ([`DwarfInfo`], shared by the runtime model and the value
//! code) and the runtime model ([`Runtime`]). Each part is cached as a
//! `Result` with a cloneable error, so a failure is computed once too and
//! every later caller gets the same typed error. There is no process-wide
//! cache: two sessions over the same file share nothing, and dropping a
//! session frees everything it built.
//!
//! A command asks only for what it needs: `goroutines` and `bt` build the
//! pclntab and the runtime model, whose DWARF lookups read only the
//! `runtime` compile unit; `print main.cfg` adds the `main` unit.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rdlv_format::{FileImage, FileRole, MappingCapture, Snapshot};

use crate::binary::Binary;
use crate::dwarf::{DwarfError, DwarfInfo};
use crate::error::{AnalyzeError, BinaryError, BuildIdKind, Result};
use crate::memory::{Memory, ReadLog};
use crate::pclntab::Pclntab;
use crate::runtime::model::RuntimeModel;
use crate::runtime::Runtime;

/// auxv tag of the program entry point.
const AT_ENTRY: u64 = 9;

/// A snapshot plus the executable it was taken from, and the parts built
/// from them (see the module docs).
pub struct Session {
    snapshot: Snapshot,
    binary: Arc<Binary>,
    bias: u64,
    pclntab: OnceLock<Result<Pclntab>>,
    dwarf: OnceLock<std::result::Result<Arc<DwarfInfo>, DwarfError>>,
    /// How many times this session loaded DWARF (at most once, see tests).
    dwarf_loads: AtomicUsize,
    runtime: OnceLock<Result<RuntimeModel>>,
    /// Mappings whose bytes come from the executable: (start, end, file offset).
    exe_ranges: Vec<(u64, u64, u64)>,
    /// Captured anonymous mappings, sorted: pages absent from the snapshot were
    /// never touched (or released) and read as zero, as they would in the process.
    zero_fill: Vec<(u64, u64)>,
    /// When set (by [`Session::record_reads`]), every read of target memory
    /// is logged here before it is answered: what `rdlv redact` keeps.
    read_log: Option<ReadLog>,
    /// See [`Session::exe_note`].
    exe_note: Option<String>,
}

impl Session {
    /// Opens `snapshot_path`. The executable is the one embedded in the
    /// snapshot, or `exe` (e.g. an unstripped twin of a stripped binary),
    /// which must have the same build ids or, failing that, the same bytes
    /// in every loaded section but the build metadata as the executable
    /// embedded in the snapshot ([`Session::exe_note`] then says so).
    pub fn open(snapshot_path: &Path, exe: Option<&Path>) -> Result<Session> {
        let snapshot = crate::keys::open_snapshot(snapshot_path)?;
        let image = match exe {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| BinaryError::Read {
                    path: path.to_path_buf(),
                    source: Arc::new(e),
                })?;
                FileImage::from_bytes(&bytes)?
            }
            None => snapshot
                .embedded_image(FileRole::Executable)?
                .ok_or(BinaryError::NotEmbedded)?,
        };
        let image = Arc::new(image);
        let binary = Binary::from_image(Arc::clone(&image))
            .map_err(|e| image.damage().map_or(e, AnalyzeError::from))?;
        let exe_note = Self::check_same_build(&snapshot, &binary, exe)?;
        let at_entry = snapshot
            .metadata()
            .auxv
            .iter()
            .find(|(k, _)| *k == AT_ENTRY)
            .map(|(_, v)| *v)
            .unwrap_or(0);
        let bias = binary.load_bias(at_entry);
        let exe_path = snapshot.metadata().process.exe_path.clone();
        let exe_path = exe_path.trim_end_matches(" (deleted)");
        let exe_ranges = snapshot
            .metadata()
            .mappings
            .iter()
            .filter(|m| {
                matches!(m.capture, MappingCapture::FromExecutable)
                    || (m.path == exe_path && !m.path.is_empty())
            })
            .map(|m| (m.start, m.end, m.offset))
            .collect();
        let mut zero_fill: Vec<(u64, u64)> = snapshot
            .metadata()
            .mappings
            .iter()
            .filter(|m| m.inode == 0 && matches!(m.capture, MappingCapture::Captured { .. }))
            .map(|m| (m.start, m.end))
            .collect();
        zero_fill.sort_unstable();
        Ok(Session {
            snapshot,
            binary: Arc::new(binary),
            bias,
            pclntab: OnceLock::new(),
            dwarf: OnceLock::new(),
            dwarf_loads: AtomicUsize::new(0),
            runtime: OnceLock::new(),
            exe_ranges,
            zero_fill,
            read_log: None,
            exe_note,
        })
    }

    /// Whether `binary` is the executable the snapshot was taken from: its
    /// build ids are the ones recorded at capture, or (an `--exe` whose
    /// build id differs) every loaded section but the build metadata is
    /// byte for byte the captured executable's. Returns what was compared
    /// in the second case; the mismatch error says where the two differ.
    fn check_same_build(
        snapshot: &Snapshot,
        binary: &Binary,
        exe: Option<&Path>,
    ) -> Result<Option<String>> {
        let process = &snapshot.metadata().process;
        let name = exe
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the embedded executable".to_string());
        let ids = [
            (BuildIdKind::Go, &process.go_build_id, binary.go_build_id()),
            (
                BuildIdKind::Gnu,
                &process.gnu_build_id,
                binary.gnu_build_id(),
            ),
        ];
        let Some((id, want, got)) = ids
            .into_iter()
            .find_map(|(id, want, got)| match (want, got) {
                (Some(want), Some(got)) if want != got => Some((id, want.clone(), got.to_string())),
                _ => None,
            })
        else {
            return Ok(None);
        };
        let mismatch = |compared: String| AnalyzeError::Mismatch {
            exe: name.clone(),
            id,
            got: got.clone(),
            want: want.clone(),
            compared,
        };
        // Another build of the same code (another -buildid, VCS stamp)
        // differs only in its build metadata: compare with the captured
        // executable, when the snapshot holds it.
        let captured = match (exe, snapshot.embedded_image(FileRole::Executable)) {
            (Some(_), Ok(Some(image))) => Binary::from_image(Arc::new(image)).ok(),
            _ => None,
        };
        let Some(captured) = captured else {
            return Err(mismatch(String::new()));
        };
        match crate::binary::compare_loaded(&captured, binary) {
            crate::binary::LoadedComparison::Same { sections, bytes } => Ok(Some(format!(
                "{name} has another {id} build id than the captured executable, \
                 but its {sections} loaded sections ({bytes} bytes, all but the build \
                 id notes and .go.buildinfo) are the captured executable's, byte for byte"
            ))),
            crate::binary::LoadedComparison::Differs {
                section,
                addr,
                what,
            } => Err(mismatch(format!(
                "; compared with the executable in the snapshot, the first \
                     difference is at {addr:#x} in {section} ({what}): another build, \
                     not the same code (a build with other -ldflags, such as -s -w, \
                     moves what follows its build settings)"
            ))),
        }
    }

    /// When `--exe` was accepted on a comparison of its contents with the
    /// captured executable (their build ids differ): what was compared.
    pub fn exe_note(&self) -> Option<&str> {
        self.exe_note.as_deref()
    }

    /// The snapshot.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The executable.
    pub fn binary(&self) -> &Arc<Binary> {
        &self.binary
    }

    /// Load bias: runtime address = link-time address + bias.
    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// The pclntab, parsed on first use, its tables decompressed (an error
    /// names the frame of the executable that does not).
    pub fn pclntab(&self) -> Result<&Pclntab> {
        self.pclntab
            .get_or_init(|| {
                // A part of the executable that does not decompress is the
                // cause, whatever the table made of its absence; an error
                // that names its frame already is kept as it is.
                let mut tab = Pclntab::new(&self.binary, self.bias).map_err(|e| match e {
                    e @ AnalyzeError::Snapshot(_) => e,
                    e => self.binary.image().damage().map_or(e, AnalyzeError::from),
                })?;
                tab.load_tables()?;
                Ok(tab)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The DWARF index of the executable, loaded on first use (the unit
    /// headers and the `runtime` unit; other units as they are asked for).
    pub fn dwarf(&self) -> std::result::Result<&Arc<DwarfInfo>, DwarfError> {
        self.dwarf
            .get_or_init(|| {
                self.dwarf_loads.fetch_add(1, Ordering::Relaxed);
                DwarfInfo::for_binary(&self.binary).map(Arc::new)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// How many times this session has loaded DWARF: 0 or 1.
    pub fn dwarf_loads(&self) -> usize {
        self.dwarf_loads.load(Ordering::Relaxed)
    }

    /// The runtime model, built on first use: layouts from DWARF when the
    /// binary has it (else the built-in table for its Go version), wait
    /// reasons, and the per-PC caches the unwinder shares.
    pub fn runtime(&self) -> Result<Runtime<'_>> {
        if self.runtime.get().is_none() && self.binary.has_dwarf() {
            // The model needs both; DWARF's load is mostly one thread
            // (inflating .debug_info), so the pclntab's frames decompress
            // beside it. Errors are taken from the caches below.
            let _ = rayon::join(|| self.pclntab().is_ok(), || self.dwarf().is_ok());
        }
        let tab = self.pclntab()?;
        let model = self
            .runtime
            .get_or_init(|| RuntimeModel::build(self, tab))
            .as_ref()
            .map_err(Clone::clone)?;
        Ok(Runtime::view(self, tab, model))
    }

    /// Starts logging every read of target memory (including those that
    /// build the runtime model, so call it before the first analysis).
    pub fn record_reads(&mut self) {
        self.read_log = Some(ReadLog::new());
    }

    /// The reads logged since [`Session::record_reads`], if it was called.
    pub fn read_log(&self) -> Option<&ReadLog> {
        self.read_log.as_ref()
    }

    /// Target memory: captured pages, then the executable's file-backed mappings.
    pub fn memory(&self) -> &dyn Memory {
        self
    }

    /// Fills `buf` from the executable's file-backed mappings: `Ok(false)`
    /// if no mapping holds it, an error if the executable's bytes there do
    /// not decompress (a damaged snapshot, never "not captured").
    fn read_from_exe(&self, addr: u64, buf: &mut [u8]) -> Result<bool> {
        let len = buf.len() as u64;
        let Some(end) = addr.checked_add(len) else {
            return Ok(false);
        };
        for &(start, map_end, offset) in &self.exe_ranges {
            if addr >= start && end <= map_end {
                // Mapping offsets come from the snapshot: untrusted, so no
                // arithmetic on them may overflow.
                let Some(file_off) = offset.checked_add(addr - start) else {
                    return Ok(false);
                };
                let Some(file_end) = file_off.checked_add(len) else {
                    return Ok(false);
                };
                let (Ok(lo), Ok(hi)) = (usize::try_from(file_off), usize::try_from(file_end))
                else {
                    return Ok(false);
                };
                let image = self.binary.image();
                if hi <= image.len() {
                    buf.copy_from_slice(image.try_get(lo..hi)?);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn in_zero_fill(&self, addr: u64, len: u64) -> bool {
        let idx = self.zero_fill.partition_point(|r| r.0 <= addr);
        idx > 0 && {
            let (_, end) = self.zero_fill[idx - 1];
            addr.checked_add(len).is_some_and(|e| e <= end)
        }
    }

    /// Reads one piece that lies within a single page.
    fn read_piece(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.snapshot.read_memory(addr, buf) {
            Ok(()) => Ok(()),
            Err(rdlv_format::FormatError::Unmapped { .. }) => {
                if self.read_from_exe(addr, buf)? {
                    Ok(())
                } else if self.in_zero_fill(addr, buf.len() as u64) {
                    buf.fill(0);
                    Ok(())
                } else {
                    Err(AnalyzeError::Unreadable {
                        addr,
                        len: buf.len() as u64,
                    })
                }
            }
            Err(e) => Err(session_error(e)),
        }
    }
}

/// A reader error as the analyzer reports it: redacted memory keeps its own
/// variant (an unanswerable request, not a damaged file).
fn session_error(e: rdlv_format::FormatError) -> AnalyzeError {
    match e {
        rdlv_format::FormatError::Redacted { addr, len } => AnalyzeError::Redacted { addr, len },
        e => e.into(),
    }
}

/// Granularity at which a read may switch between sources.
const PAGE: u64 = 4096;

impl Memory for Session {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(log) = &self.read_log {
            log.record(addr, buf.len() as u64);
        }
        self.read_unlogged(addr, buf)
    }
}

/// Target memory of a [`Session`] whose reads are never logged, even while
/// the session records ([`Session::unlogged_memory`]).
pub struct Unlogged<'a>(&'a Session);

impl Memory for Unlogged<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.0.read_unlogged(addr, buf)
    }
}

impl Session {
    /// The same memory as [`Session::memory`] without logging: for the
    /// redactor's own look-ups (finding a `--keep` value reads map entries
    /// that must not be kept just because they were searched).
    pub fn unlogged_memory(&self) -> Unlogged<'_> {
        Unlogged(self)
    }

    fn read_unlogged(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.snapshot.read_memory(addr, buf) {
            Ok(()) => return Ok(()),
            Err(rdlv_format::FormatError::Unmapped { .. }) => {}
            Err(e) => return Err(session_error(e)),
        }
        // Slow path: the range mixes captured pages, executable bytes and
        // untouched anonymous pages; resolve it page by page.
        let total = buf.len() as u64;
        let mut done = 0u64;
        while done < total {
            let cur = addr
                .checked_add(done)
                .ok_or(AnalyzeError::Unreadable { addr, len: total })?;
            let piece = (PAGE - cur % PAGE).min(total - done) as usize;
            let start = done as usize;
            self.read_piece(cur, &mut buf[start..start + piece])
                .map_err(|e| match e {
                    AnalyzeError::Redacted { .. } => e,
                    _ => AnalyzeError::Unreadable { addr, len: total },
                })?;
            done += piece as u64;
        }
        Ok(())
    }
}
