//! Metadata blocks of a snapshot: what the capture recorded besides memory.
//!
//! Every type here is serialized as JSON inside its block (SPEC.md §Metadata).
//! Fields are only ever added (with `#[serde(default)]`), never renamed, so a
//! v1 reader accepts files from any v1.x writer.

use serde::{Deserialize, Serialize};

/// Who was captured: identity of the target process and its executable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Process id in the capturing tool's pid namespace.
    pub pid: u32,
    /// Target of `/proc/PID/exe` as the kernel reports it (may end in " (deleted)").
    pub exe_path: String,
    /// Whether the executable on disk was deleted or replaced after start.
    #[serde(default)]
    pub exe_deleted: bool,
    /// `/proc/PID/cmdline`, split at NUL.
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// Lower-case hex of the `.note.gnu.build-id` descriptor, if the ELF has one.
    #[serde(default)]
    pub gnu_build_id: Option<String>,
    /// The Go build id string from `.note.go.buildid` (`action/…/content`), if present.
    #[serde(default)]
    pub go_build_id: Option<String>,
    /// Raw Go version string from `.go.buildinfo` (e.g. `go1.26.8`), if present.
    #[serde(default)]
    pub go_version: Option<String>,
    /// Raw module info text from `.go.buildinfo` with sentinels stripped.
    #[serde(default)]
    pub go_modinfo: Option<String>,
    /// Parent pid, uid and gid of the target at capture (from /proc/PID/status).
    #[serde(default)]
    pub ppid: u32,
    /// Real uid of the target.
    #[serde(default)]
    pub uid: u32,
    /// Real gid of the target.
    #[serde(default)]
    pub gid: u32,
}

/// How and when the capture happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInfo {
    /// Version of the capture tool (`rdlv-snap 0.1.0`).
    pub tool_version: String,
    /// Host name of the machine the target ran on.
    pub hostname: String,
    /// `uname -r` of that machine.
    pub kernel_release: String,
    /// Machine architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// Page size of the target system in bytes.
    pub page_size: u64,
    /// CLOCK_MONOTONIC in nanoseconds, read once every thread was stopped.
    /// Go's `nanotime()` uses this clock, so wait durations are computed against it.
    pub clock_monotonic_ns: u64,
    /// CLOCK_REALTIME in nanoseconds since the Unix epoch, read at the same instant.
    pub clock_realtime_ns: u64,
    /// Microseconds from the first thread stopped to the last thread resumed
    /// (for `precopy`, of both its stops).
    pub pause_us: u64,
    /// Microseconds spent stopping every thread.
    #[serde(default)]
    pub freeze_us: u64,
    /// Microseconds spent copying memory while stopped.
    #[serde(default)]
    pub copy_us: u64,
    /// Capture method: `plain` (copy while stopped), `cow` (forked image) or
    /// `precopy` (copied while running, written pages again while stopped).
    #[serde(default)]
    pub method: String,
    /// For `precopy`: what was copied before the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precopy: Option<PrecopyInfo>,
    /// Bytes of memory copied from the target (before zero elision and compression).
    #[serde(default)]
    pub bytes_captured: u64,
    /// Free-form warnings the capture wants a reader to see (e.g. a region that failed to copy).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What a `precopy` capture copied before its main stop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecopyInfo {
    /// Microseconds of the short stop that set up write tracking (included
    /// in `pause_us`).
    pub setup_pause_us: u64,
    /// Bytes copied while the target ran.
    pub precopy_bytes: u64,
    /// Of `bytes_captured`, bytes taken from that copy (not written since).
    pub reused_bytes: u64,
}

/// x86-64 general purpose registers, in `struct user_regs_struct` order.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct X86Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// One OS thread of the target at the instant of capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// Kernel thread id.
    pub tid: u32,
    /// Thread name from `/proc/PID/task/TID/comm`.
    #[serde(default)]
    pub name: String,
    /// Kernel state letter before it was stopped (`R`, `S`, `D`, …) from `/proc/PID/task/TID/stat`.
    #[serde(default)]
    pub state: String,
    /// General purpose registers (x86-64).
    pub regs: X86Regs,
    /// Raw NT_X86_XSTATE (or NT_PRFPREG) bytes as PTRACE_GETREGSET returned them, hex encoded.
    #[serde(default)]
    pub fpregs_hex: String,
}

/// How a mapping's bytes were captured, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MappingCapture {
    /// Present pages were copied into memory chunks; pages not present read as zero.
    Captured {
        /// Bytes of pages that were present and copied.
        present_bytes: u64,
        /// Bytes of copied pages that were all zero (stored as zero runs).
        #[serde(default)]
        zero_bytes: u64,
    },
    /// Bytes are those of the embedded executable at the mapping's file offset.
    FromExecutable,
    /// Not captured; the reason says why (`[vvar]`, `MADV_DONTDUMP`, `not readable`, `io/pfn map`, `max-pause`, …).
    Skipped {
        /// Human readable reason.
        reason: String,
    },
}

/// One line of `/proc/PID/maps`, plus `smaps` VmFlags and what was captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions as in maps (`rw-p`).
    pub perms: String,
    /// File offset.
    pub offset: u64,
    /// Device `MAJ:MIN`.
    pub dev: String,
    /// Inode number.
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[stack]`, empty for anonymous).
    pub path: String,
    /// Two-letter VmFlags from smaps (`rd wr mr mw me ac dd …`).
    #[serde(default)]
    pub vm_flags: Vec<String>,
    /// What happened to its bytes.
    pub capture: MappingCapture,
}

/// Everything but memory and embedded files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Process identity.
    pub process: ProcessInfo,
    /// Capture facts.
    pub capture: CaptureInfo,
    /// Threads, in the order they were stopped.
    pub threads: Vec<ThreadInfo>,
    /// Every mapping of the target.
    pub mappings: Vec<Mapping>,
    /// Auxiliary vector as (type, value) pairs, without the terminating AT_NULL.
    pub auxv: Vec<(u64, u64)>,
    /// Present when `rdlv redact` wrote this file (format 1.1): what it kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<Redaction>,
}

/// What `rdlv redact` kept of the original snapshot. The kept memory is
/// exactly what the analyses it names read; every other captured byte is a
/// redacted range of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// The rdlv version that redacted.
    pub tool_version: String,
    /// The analyses whose reads were kept (`goroutines`, `threads`, `sched`).
    pub analyses: Vec<String>,
    /// Kept memory runs and their bytes.
    pub kept_ranges: u64,
    /// Bytes of memory kept.
    pub kept_bytes: u64,
    /// Bytes of captured memory removed.
    pub redacted_bytes: u64,
    /// The `--keep` expressions, as given (a package variable's name in
    /// files written before expressions; [`Redaction::kept_values`] has the
    /// details).
    #[serde(default)]
    pub kept_globals: Vec<String>,
    /// What each `--keep` expression kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_values: Vec<KeptValue>,
}

/// One value `rdlv redact --keep EXPR` kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptValue {
    /// The expression (Delve syntax: `main.cfg.Name`, `main.cache["k"]`).
    pub expr: String,
    /// Its type as DWARF spells it.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Runtime address of its own bytes.
    pub addr: u64,
    /// Whether what it reaches was kept too (`--keep-deep`).
    #[serde(default)]
    pub deep: bool,
    /// Captured bytes kept for it (its own, the headers on the way to it,
    /// and with `deep` what it reaches; shared bytes count for each value).
    pub bytes: u64,
    /// With `deep`: why part of what it reaches was not kept (a load
    /// limit), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

/// What an embedded file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// The target's main executable, as read from `/proc/PID/exe`.
    Executable,
    /// Any other file (reserved for future use).
    Other,
}
