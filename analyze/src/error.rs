//! Typed errors of the analyzer library.
//!
//! One tree: [`AnalyzeError`] at the top, one variant per kind of failure,
//! each carrying what a caller can act on (address, length, goroutine id,
//! thread id, section, file offset, symbol) as fields, and the typed errors
//! of the parts below it (DWARF, layouts, expressions, `--keep`) as they
//! are, not flattened to text. Invariants:
//! - the exit code and every other decision come from the variant
//!   ([`AnalyzeError::class`] is an exhaustive match), never from the
//!   message, which is for people and may change;
//! - every error is `Clone`, so a failure cached by the session is handed
//!   to each later caller unchanged;
//! - the enums are `#[non_exhaustive]`: a new variant is not a breaking
//!   change, and it must choose its class in `class`.

use std::sync::Arc;

/// Result alias for the analyzer.
pub type Result<T, E = AnalyzeError> = std::result::Result<T, E>;

/// Errors while analyzing a snapshot. The binary maps them to exit codes by
/// variant ([`AnalyzeError::class`]), never by message. Each variant carries
/// what a caller may want to act on (address, goroutine id, thread, section)
/// as fields; the message is only for people.
/// `Clone` so that a [`crate::Session`] can cache a failure once and hand it
/// to every later caller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    /// The snapshot file itself is unreadable or corrupt.
    #[error(transparent)]
    Snapshot(Arc<rdlv_format::FormatError>),
    /// The executable could not be read or parsed.
    #[error(transparent)]
    Binary(BinaryError),
    /// The executable's DWARF is missing or malformed.
    #[error(transparent)]
    Dwarf(crate::dwarf::DwarfError),
    /// The runtime's struct layout is not known (no DWARF field, no table).
    #[error(transparent)]
    Layout(crate::runtime::layout::LayoutError),
    /// The heap's struct layout is not known.
    #[error(transparent)]
    HeapLayout(crate::heap::layout::HeapLayoutError),
    /// The executable does not belong to the snapshot.
    #[error("{exe} is not the binary this snapshot was taken from: {id} build id {got} != {want} recorded at capture{compared}")]
    Mismatch {
        /// Which executable: a path given with `--exe`, or "the embedded executable".
        exe: String,
        /// Which build id differs.
        id: BuildIdKind,
        /// The executable's build id.
        got: String,
        /// The build id recorded at capture.
        want: String,
        /// What comparing it with the captured executable found (`; …`,
        /// or empty when there was nothing to compare with).
        compared: String,
    },
    /// Memory of the target is inconsistent with what the runtime model expects.
    #[error(transparent)]
    Corrupt(Corrupt),
    /// A memory read outside anything captured.
    #[error("cannot read {len} bytes at 0x{addr:x}: not captured in the snapshot")]
    Unreadable {
        /// Address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// A memory read that reached bytes `rdlv redact` removed. Never
    /// answered with zeros, so a redacted value cannot pass for a real one.
    #[error("memory at 0x{addr:x} (+{len} bytes) was redacted from this snapshot (rdlv redact keeps only what goroutine, stack and scheduler analysis read)")]
    Redacted {
        /// First redacted byte of the read.
        addr: u64,
        /// Bytes of the read from `addr` on.
        len: u64,
    },
    /// No live goroutine has this id.
    #[error("no goroutine {goid} in this snapshot{}", nearest_hint(.nearest))]
    NoGoroutine {
        /// The id asked for.
        goid: u64,
        /// The nearest ids that exist (empty until a caller looks them up).
        nearest: Vec<u64>,
    },
    /// A goroutine has no frame with this index.
    #[error("frame {frame} does not exist: goroutine {goid} has {count} frames{}", frame_range(*.count))]
    NoFrame {
        /// The goroutine.
        goid: u64,
        /// The frame index asked for (0 is the innermost).
        frame: usize,
        /// How many frames the goroutine has.
        count: usize,
    },
    /// An expression does not parse or cannot be evaluated.
    #[error(transparent)]
    Eval(crate::value::expr::EvalError),
    /// A `--keep` value of `rdlv redact` cannot be kept.
    #[error(transparent)]
    Keep(crate::redact::keep::KeepError),
    /// A requested thing does not exist (thread, source line, heap object).
    #[error(transparent)]
    NotFound(NotFound),
    /// Something this version of rdlv cannot do, or cannot do on this input.
    #[error(transparent)]
    Unsupported(Unsupported),
    /// I/O error.
    #[error("I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

/// Which build id of an executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildIdKind {
    /// The Go build id (`.note.go.buildid`).
    Go,
    /// The GNU build id (`.note.gnu.build-id`).
    Gnu,
}

impl std::fmt::Display for BuildIdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildIdKind::Go => "Go",
            BuildIdKind::Gnu => "GNU",
        })
    }
}

/// Why a section of the executable cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SectionFault {
    /// The snapshot's copy of the executable is damaged there.
    #[error("{0}")]
    Snapshot(Arc<rdlv_format::FormatError>),
    /// The `Elf64_Chdr` does not fit, or claims an impossible size.
    #[error("bad compression header")]
    Header,
    /// The compressed bytes do not inflate to the size the header claims.
    #[error("the compressed data is damaged")]
    Inflate,
}

/// The executable cannot be read or parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BinaryError {
    /// The file does not start with the ELF magic.
    #[error("executable: not an ELF file (only Linux ELF executables are supported)")]
    NotElf,
    /// The ELF headers do not parse.
    #[error("executable: {context}: {source}")]
    Elf {
        /// What was being parsed.
        context: &'static str,
        /// What the ELF parser said.
        source: object::read::Error,
    },
    /// The file given with `--exe` cannot be read.
    #[error("executable: cannot read --exe {}: {source}", .path.display())]
    Read {
        /// The path given.
        path: std::path::PathBuf,
        /// The I/O error.
        source: Arc<std::io::Error>,
    },
    /// The snapshot was captured with `--no-exe` and no `--exe` was given.
    #[error("executable: the snapshot has no embedded executable (captured with --no-exe); pass the binary with --exe PATH")]
    NotEmbedded,
    /// No pclntab in any of the places the Go linker puts it.
    #[error("executable: no Go pclntab found (is this a Go 1.21+ executable?)")]
    NoPclntab,
    /// The snapshot maps bytes of the executable past its end (a truncated
    /// or different `--exe`).
    #[error("executable: the snapshot maps {len} bytes at file offset {offset:#x}, past the end of the executable")]
    Truncated {
        /// File offset of the mapped bytes.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// A section's bytes cannot be had: the snapshot's copy of the
    /// executable does not decompress there, or its compression header or
    /// compressed data is damaged.
    #[error("executable: section {name} cannot be read: {detail}")]
    Section {
        /// The section.
        name: String,
        /// What failed.
        detail: SectionFault,
    },
    /// The pclntab is malformed.
    #[error("executable: corrupt pclntab: {detail}")]
    Pclntab {
        /// What is wrong.
        detail: String,
    },
}

/// Target memory that no live Go runtime would hold. Counts read from
/// memory are bounded by named constants; crossing one lands here.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Corrupt {
    /// A count read from target memory is beyond the bound rdlv accepts.
    #[error("{what} = {count} is not plausible (bound {bound}): damaged runtime data")]
    Count {
        /// What was counted, e.g. `runtime.allglen`.
        what: &'static str,
        /// The count read.
        count: u64,
        /// The bound it crossed.
        bound: u64,
    },
    /// More of something than rdlv accepts (counted up to the bound).
    #[error("more than {bound} {what}: damaged runtime data")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// The bound.
        bound: u64,
    },
    /// A linked structure of the runtime loops back on itself.
    #[error("{what} loops back to 0x{addr:x}")]
    Cycle {
        /// The list, e.g. `runtime.mbuckets`.
        what: &'static str,
        /// The element seen twice.
        addr: u64,
    },
    /// A runtime record holds a value the runtime never writes.
    #[error("{what} at 0x{addr:x}: {detail}")]
    Record {
        /// The record's Go type or role, e.g. `runtime.mspan`.
        what: &'static str,
        /// Its address.
        addr: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A thread's saved register state is malformed.
    #[error("thread {tid}: {detail}")]
    Thread {
        /// The thread.
        tid: u32,
        /// What is wrong with its registers.
        detail: String,
    },
    /// A mapping's recorded sizes or offsets do not add up.
    #[error("mapping at 0x{start:x}: {detail}")]
    Mapping {
        /// Start address of the mapping.
        start: u64,
        /// What does not add up.
        detail: String,
    },
}

/// A requested thing does not exist in this snapshot.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NotFound {
    /// No thread has this id.
    #[error("no thread {tid} in this snapshot; threads: {}", join(.known))]
    Thread {
        /// The id asked for.
        tid: u32,
        /// The threads that exist.
        known: Vec<u32>,
    },
    /// The thread was idle or in the scheduler, not running a goroutine.
    #[error("thread {tid} was not running a goroutine (idle or in the scheduler); see `threads`")]
    NoGoroutineOnThread {
        /// The thread.
        tid: u32,
    },
    /// The goroutine's stack could not be unwound at all.
    #[error("goroutine {goid} has no readable stack")]
    NoStack {
        /// The goroutine.
        goid: u64,
    },
    /// A REPL command needs a selected goroutine and none is.
    #[error("no goroutine selected: select one with `goroutine ID` (list them with `goroutines`)")]
    NoSelectedGoroutine,
    /// `down` past the innermost frame.
    #[error("frame {frame} is the innermost; cannot go down {steps}")]
    BelowInnermost {
        /// The selected frame.
        frame: usize,
        /// How far `down` was asked to go.
        steps: usize,
    },
    /// A source file cannot be shown.
    #[error("cannot show {}:{line}: {why}", .file.display())]
    Source {
        /// The file.
        file: std::path::PathBuf,
        /// The line asked for.
        line: u32,
        /// Why not.
        why: String,
    },
    /// A runtime global an analysis needs is not named by the symbols.
    #[error("{needed_by} needs the runtime global {symbol}, which the executable's symbols do not name (stripped binary?)")]
    Symbol {
        /// The symbol.
        symbol: &'static str,
        /// What needs it.
        needed_by: &'static str,
    },
    /// The process recorded no memory profile.
    #[error("the process has no heap profile: runtime.mbuckets is empty (runtime.MemProfileRate = {rate}{}); set runtime.MemProfileRate > 0 (default 512 KiB) in the process to record one", if *.rate == 0 { ", memory profiling off" } else { ", no allocation sampled yet" })]
    NoHeapProfile {
        /// `runtime.MemProfileRate` at capture.
        rate: i64,
    },
    /// An address outside every allocated heap object.
    #[error("0x{addr:x} is not inside an allocated heap object (rdlv heap --path takes an address in the Go heap)")]
    NotHeapObject {
        /// The address.
        addr: u64,
    },
    /// An allocated object no root reaches: garbage.
    #[error("the object at 0x{addr:x} is allocated but no root reaches it: it is garbage the next GC frees")]
    Unreachable {
        /// The object's address.
        addr: u64,
    },
    /// An expression's value could not be read from target memory.
    #[error("{expr}: {why}")]
    UnreadableValue {
        /// The expression.
        expr: String,
        /// Why (what the value loader said).
        why: String,
    },
    /// An expression's value points at nothing.
    #[error("{expr} ({type_name}) points at nothing: give a pointer, map, channel or slice, or an address")]
    NotPointer {
        /// The expression.
        expr: String,
        /// Its type.
        type_name: String,
    },
}

/// Something rdlv cannot do on this input.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// The executable's symbols do not name a runtime global the analysis
    /// needs (usually a binary stripped with `-ldflags=-s`).
    #[error("{symbol} is not known: the executable's symbols do not name it (stripped with -ldflags=-s?) and {tried}; pass the unstripped twin with --exe")]
    Stripped {
        /// The runtime global.
        symbol: &'static str,
        /// What rdlv tried instead.
        tried: &'static str,
    },
    /// The executable has no `.go.buildinfo`.
    #[error("the executable has no Go build info (.go.buildinfo): not a Go program?")]
    NotGo,
    /// A pclntab of a Go release before 1.21.
    #[error("pclntab magic {magic:#x} is from Go 1.19 or older; rdlv supports Go 1.21 and later")]
    OldGo {
        /// The pclntab magic.
        magic: u32,
    },
    /// A Go release whose layout rdlv has no table for (and no DWARF).
    #[error("no {what} for Go 1.{minor} without DWARF (supported: 1.21 to 1.27)")]
    GoVersion {
        /// What is missing, e.g. "heap layout".
        what: &'static str,
        /// The Go minor version.
        minor: u32,
    },
    /// A 32-bit target.
    #[error("pclntab pointer size {size} (only 64-bit targets are supported)")]
    PointerSize {
        /// The pointer size.
        size: u8,
    },
    /// A big-endian executable.
    #[error("big-endian executables are not supported")]
    BigEndian,
    /// An export for another architecture.
    #[error("{what} writes x86-64 {output}; this snapshot is {arch}")]
    Arch {
        /// The command.
        what: &'static str,
        /// What it writes.
        output: &'static str,
        /// The snapshot's architecture.
        arch: String,
    },
    /// More of something than the output format or a bound allows.
    #[error("{count} {what}: more than {limit}")]
    TooMany {
        /// What, e.g. "mappings".
        what: &'static str,
        /// How many there are.
        count: u64,
        /// What is allowed, with the reason.
        limit: String,
    },
    /// A Delve command that needs a live process.
    #[error("a snapshot is read-only: {command} needs a live process; use dlv attach on the running service, or capture again")]
    LiveOnly {
        /// The command.
        command: String,
    },
    /// A Delve command rdlv does not implement yet.
    #[error(
        "{command} is a Delve command rdlv does not implement yet; type help for what it does"
    )]
    NotYet {
        /// The command.
        command: String,
    },
}

impl From<rdlv_format::FormatError> for AnalyzeError {
    fn from(e: rdlv_format::FormatError) -> Self {
        AnalyzeError::Snapshot(Arc::new(e))
    }
}

impl From<std::io::Error> for AnalyzeError {
    fn from(e: std::io::Error) -> Self {
        AnalyzeError::Io(Arc::new(e))
    }
}

macro_rules! from_variant {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for AnalyzeError {
            fn from(e: $ty) -> Self {
                AnalyzeError::$variant(e)
            }
        })*
    };
}

from_variant! {
    BinaryError => Binary,
    crate::dwarf::DwarfError => Dwarf,
    crate::runtime::layout::LayoutError => Layout,
    crate::heap::layout::HeapLayoutError => HeapLayout,
    Corrupt => Corrupt,
    crate::value::expr::EvalError => Eval,
    crate::redact::keep::KeepError => Keep,
    NotFound => NotFound,
    Unsupported => Unsupported,
}

/// What kind of failure an error is, for a caller that maps errors to
/// exit codes or retries: decided by the variant alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input (snapshot, executable, target memory) is unusable.
    Input,
    /// The request cannot be answered from this snapshot.
    Unanswerable,
}

impl AnalyzeError {
    /// The class of this error (an exhaustive match: a new variant must
    /// choose its class here).
    pub fn class(&self) -> ErrorClass {
        use crate::dwarf::DwarfError;
        match self {
            AnalyzeError::Snapshot(_)
            | AnalyzeError::Binary(_)
            | AnalyzeError::Mismatch { .. }
            | AnalyzeError::Corrupt(_)
            | AnalyzeError::Unreadable { .. }
            | AnalyzeError::Io(_) => ErrorClass::Input,
            // No DWARF is a stripped binary: the question needs the twin.
            AnalyzeError::Dwarf(DwarfError::Missing) => ErrorClass::Unanswerable,
            AnalyzeError::Dwarf(_) => ErrorClass::Input,
            AnalyzeError::Layout(_)
            | AnalyzeError::HeapLayout(_)
            | AnalyzeError::NoGoroutine { .. }
            | AnalyzeError::Redacted { .. }
            | AnalyzeError::NoFrame { .. }
            | AnalyzeError::Eval(_)
            | AnalyzeError::Keep(_)
            | AnalyzeError::NotFound(_)
            | AnalyzeError::Unsupported(_) => ErrorClass::Unanswerable,
        }
    }
}

fn join(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn nearest_hint(nearest: &[u64]) -> String {
    if nearest.is_empty() {
        return String::new();
    }
    let ids: Vec<String> = nearest.iter().map(u64::to_string).collect();
    format!(
        "; nearest goroutines: {} (list them with `goroutines`)",
        ids.join(", ")
    )
}

fn frame_range(count: usize) -> String {
    match count {
        0 => String::new(),
        n => format!(" (0..{})", n - 1),
    }
}
