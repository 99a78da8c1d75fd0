//! [`Runtime`]: one snapshot seen through the Go runtime's eyes.
//!
//! [`RuntimeModel`] is what is computed once per session (layouts, wait
//! reason strings, the per-PC caches the unwinder shares across threads);
//! [`Runtime`] is a cheap `Copy` view joining it with the session, its
//! pclntab and its DWARF index. Build it with [`crate::Session::runtime`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::dwarf::DwarfInfo;
use crate::error::{Result, Unsupported};
use crate::memory::Memory;
use crate::pclntab::Pclntab;
use crate::session::Session;

use super::frame::LogicalFrame;
pub use super::frame::PcInfo;
use super::layout::RuntimeLayout;
use super::tables;

/// Bound on `waitReasonStrings` entries read from memory (Go 1.26 has 47).
const MAX_WAIT_REASONS: u64 = 256;
/// Bound on one wait-reason string.
const MAX_WAIT_REASON_LEN: u64 = 128;
/// Number of shards of the per-PC cache (reduces lock contention under rayon).
const PC_CACHE_SHARDS: usize = 32;
/// Distinct stacks whose logical frames are shared (see [`PcCache::shared_stack`]).
/// Past this, stacks are expanded per goroutine: a hostile snapshot cannot
/// grow the cache without bound.
const MAX_SHARED_STACKS: usize = 65_536;

/// The parts of the runtime model a session computes once.
pub struct RuntimeModel {
    /// Go minor version (1.`minor`).
    pub minor: u32,
    /// Struct layouts.
    pub layout: RuntimeLayout,
    wait_reasons: Vec<String>,
    /// CLOCK_MONOTONIC at capture: the runtime's `nanotime()` at that instant.
    pub now_ns: u64,
    wrapper_func_id: u8,
    pub(crate) pc_cache: PcCache,
}

/// The Go runtime of one snapshot: a view of a session's [`RuntimeModel`].
#[derive(Clone, Copy)]
pub struct Runtime<'t> {
    target: &'t Session,
    tab: &'t Pclntab,
    model: &'t RuntimeModel,
    /// Absent or unusable DWARF (e.g. `-ldflags=-w`): the version tables apply.
    dwarf: Option<&'t DwarfInfo>,
}

impl std::ops::Deref for Runtime<'_> {
    type Target = RuntimeModel;
    fn deref(&self) -> &RuntimeModel {
        self.model
    }
}

/// FuncID of `FuncIDWrapper` for a Go minor version (objabi/funcid.go order).
fn wrapper_func_id(minor: u32) -> u8 {
    match minor {
        0..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

impl RuntimeModel {
    /// Builds the runtime model of `session`: layouts from DWARF when the
    /// binary has it, else from the built-in table for its Go version.
    pub(crate) fn build(session: &Session, tab: &Pclntab) -> Result<RuntimeModel> {
        let binary = session.binary();
        let version = binary.go_version().ok_or(Unsupported::NotGo)?;
        let minor = version.minor;
        // No DWARF, or DWARF that does not parse (a bad compression header
        // or deflate stream is the binary's own fault): the built-in
        // layouts. A snapshot whose copy of the DWARF is damaged says so
        // instead.
        let dwarf = match session.dwarf() {
            Ok(d) => Some(&**d),
            Err(
                e @ crate::dwarf::DwarfError::Section(crate::error::BinaryError::Section {
                    detail: crate::error::SectionFault::Snapshot(_),
                    ..
                }),
            ) => return Err(e.into()),
            Err(_) => None,
        };
        let layout = match dwarf.map(RuntimeLayout::from_dwarf) {
            Some(Ok(l)) => l,
            _ => RuntimeLayout::for_version(minor)?,
        };
        let mut model = RuntimeModel {
            minor,
            layout,
            wait_reasons: Vec::new(),
            now_ns: session.snapshot().metadata().capture.clock_monotonic_ns,
            wrapper_func_id: wrapper_func_id(minor),
            pc_cache: PcCache::new(),
        };
        let read = Runtime {
            target: session,
            tab,
            model: &model,
            dwarf,
        }
        .read_wait_reasons();
        model.wait_reasons = read.unwrap_or_else(|| {
            tables::for_minor(minor)
                .map(|t| t.wait_reasons.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default()
        });
        Ok(model)
    }
}

impl<'t> Runtime<'t> {
    /// The runtime model of `target` (built once per session; see
    /// [`Session::runtime`]).
    pub fn new(target: &'t Session) -> Result<Runtime<'t>> {
        target.runtime()
    }

    /// Joins a session's parts into a view.
    pub(crate) fn view(target: &'t Session, tab: &'t Pclntab, model: &'t RuntimeModel) -> Self {
        Runtime {
            target,
            tab,
            model,
            dwarf: target.dwarf().ok().map(|d| &**d),
        }
    }

    /// The target.
    pub fn target(&self) -> &'t Session {
        self.target
    }

    /// Target memory.
    pub fn mem(&self) -> &'t dyn Memory {
        self.target.memory()
    }

    /// The pclntab.
    pub fn tab(&self) -> &'t Pclntab {
        self.tab
    }

    /// Runtime address of a runtime global variable, from DWARF, else from
    /// `.symtab` (a binary stripped of DWARF only). DWARF first: the symbol
    /// table is the larger read (every symbol of the program, for one name).
    pub fn global(&self, name: &str) -> Option<u64> {
        let bias = self.target.bias();
        if let Some(addr) = self.dwarf.and_then(|d| d.runtime_variable(name)) {
            return Some(addr.wrapping_add(bias));
        }
        let sym = self.target.binary().symbol(name)?;
        Some(sym.addr.wrapping_add(bias))
    }

    /// Size in bytes of a runtime global variable, from its DWARF type,
    /// else from its `.symtab` entry.
    fn global_size(&self, name: &str) -> Option<u64> {
        self.dwarf
            .and_then(|d| d.runtime_variable_size(name))
            .filter(|&s| s > 0)
            .or_else(|| self.target.binary().symbol(name).map(|s| s.size))
            .filter(|&s| s > 0)
    }

    /// Whether the process ran with `GODEBUG=tracebacklabels=1` (Go 1.26+),
    /// which adds `labels:{...}` to traceback headers. Needs DWARF to find
    /// the field in `runtime.debug`; false when unknown.
    pub fn traceback_labels(&self) -> bool {
        if self.minor < 26 {
            return false;
        }
        let (Some(addr), Some(off)) = (
            self.global("runtime.debug"),
            self.dwarf
                .and_then(|d| d.variable_field_offset("runtime.debug", "tracebacklabels")),
        ) else {
            return false;
        };
        self.mem()
            .read_u32(addr.wrapping_add(off))
            .is_ok_and(|v| v == 1)
    }

    /// The runtime part of the binary's DWARF, if it has DWARF.
    pub fn dwarf(&self) -> Option<&'t DwarfInfo> {
        self.dwarf
    }

    /// A DWARF constant of the runtime, if DWARF is present.
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.dwarf.and_then(|d| d.constant(name))
    }

    /// Reads the binary's own `runtime.waitReasonStrings`.
    fn read_wait_reasons(&self) -> Option<Vec<String>> {
        let addr = self.global("runtime.waitReasonStrings")?;
        let size = self.global_size("runtime.waitReasonStrings")?;
        let n = (size / 16).min(MAX_WAIT_REASONS);
        let mem = self.mem();
        let mut out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let ptr = mem.read_u64(addr.wrapping_add(i * 16)).ok()?;
            let len = mem
                .read_u64(addr.wrapping_add(i * 16).wrapping_add(8))
                .ok()?;
            if len == 0 {
                out.push(String::new());
                continue;
            }
            if len > MAX_WAIT_REASON_LEN {
                return None;
            }
            let bytes = mem.read_vec(ptr, len as usize).ok()?;
            out.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Some(out)
    }

    /// `waitReason.String()`: the text for a wait reason code.
    pub fn wait_reason_text(&self, code: u8) -> &str {
        self.wait_reasons
            .get(code as usize)
            .map(String::as_str)
            .unwrap_or("unknown wait reason")
    }

    /// Whether a raw `_func.funcID` is `FuncIDWrapper` in this Go version.
    pub fn is_wrapper_func_id(&self, id: u8) -> bool {
        id == self.wrapper_func_id
    }

    /// Status names as `gStatusStrings` of this version (index = status).
    pub fn status_text(&self, status: u32) -> &'static str {
        const BASE: [&str; 10] = [
            "idle",
            "runnable",
            "running",
            "syscall",
            "waiting",
            "",
            "dead",
            "",
            "copystack",
            "preempted",
        ];
        match status {
            0..=9 => BASE[status as usize],
            10 if self.minor >= 26 => "leaked",
            11 if self.minor >= 26 => "waiting for cgo callback",
            _ => "???",
        }
    }
}

/// Logical frames at one symbolic PC, computed once.
#[derive(Debug, Clone)]
pub struct SymInfo {
    /// Innermost first, physical last: (name, file, line, inlined).
    pub frames: Vec<(Arc<str>, Arc<str>, u32, bool)>,
}

type Shard<V> = Mutex<HashMap<u64, Option<Arc<V>>>>;

/// (pc, sym_pc) pairs of a stack's physical frames → its logical frames.
type SharedStacks = HashMap<Box<[u64]>, Arc<[LogicalFrame]>>;

/// Sharded caches keyed by PC, shared by the rayon workers.
pub struct PcCache {
    pc: Vec<Shard<PcInfo>>,
    sym: Vec<Shard<SymInfo>>,
    names: Mutex<HashMap<String, Arc<str>>>,
    /// (pc, sym_pc) of every physical frame → the logical frames: goroutines
    /// parked at the same place share one expansion.
    stacks: Mutex<SharedStacks>,
}

impl PcCache {
    fn new() -> PcCache {
        PcCache {
            pc: (0..PC_CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            sym: (0..PC_CACHE_SHARDS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            names: Mutex::new(HashMap::new()),
            stacks: Mutex::new(HashMap::new()),
        }
    }

    /// The shared logical frames of a stack keyed by its (pc, sym_pc)
    /// pairs, computing them with `expand` on a miss.
    pub(crate) fn shared_stack(
        &self,
        key: Box<[u64]>,
        expand: impl FnOnce() -> Vec<LogicalFrame>,
    ) -> Arc<[LogicalFrame]> {
        let lock = || match self.stacks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(hit) = lock().get(&key) {
            return hit.clone();
        }
        let logical: Arc<[LogicalFrame]> = expand().into();
        let mut stacks = lock();
        if stacks.len() < MAX_SHARED_STACKS {
            stacks.insert(key, logical.clone());
        }
        logical
    }

    fn shard_of(pc: u64) -> usize {
        // Mix the bits so nearby return addresses spread over shards.
        ((pc.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize) % PC_CACHE_SHARDS
    }

    fn intern(&self, s: &str) -> Arc<str> {
        let mut names = match self.names.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(a) = names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        names.insert(s.to_string(), a.clone());
        a
    }
}

fn lock<V>(m: &Shard<V>) -> std::sync::MutexGuard<'_, HashMap<u64, Option<Arc<V>>>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Runtime<'_> {
    /// Function facts at `pc` (cached).
    pub fn pc_info(&self, pc: u64) -> Option<Arc<PcInfo>> {
        let shard = &self.pc_cache.pc[PcCache::shard_of(pc)];
        if let Some(v) = lock(shard).get(&pc) {
            return v.clone();
        }
        let info = self.tab.find_func(pc).map(|f| {
            Arc::new(PcInfo {
                entry: f.entry(),
                name: self.pc_cache.intern(f.name()),
                flag: f.flag(),
                func_id: f.func_id(),
                sp_delta: f.sp_delta(pc),
            })
        });
        lock(shard).insert(pc, info.clone());
        info
    }

    /// Logical frames at symbolic PC `sym_pc` (cached).
    pub fn sym_info(&self, sym_pc: u64) -> Option<Arc<SymInfo>> {
        let shard = &self.pc_cache.sym[PcCache::shard_of(sym_pc)];
        if let Some(v) = lock(shard).get(&sym_pc) {
            return v.clone();
        }
        let info = self.tab.find_func(sym_pc).map(|f| {
            let frames = f
                .frames_at(sym_pc)
                .into_iter()
                .map(|fr| {
                    (
                        self.pc_cache.intern(&fr.name),
                        self.pc_cache.intern(&fr.file),
                        fr.line,
                        fr.inlined,
                    )
                })
                .collect();
            Arc::new(SymInfo { frames })
        });
        lock(shard).insert(sym_pc, info.clone());
        info
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{wrapper_func_id, PcCache, MAX_SHARED_STACKS};
    use crate::runtime::LogicalFrame;

    fn one_frame(line: u32) -> Vec<LogicalFrame> {
        vec![LogicalFrame {
            name: Arc::from("main.f"),
            file: Arc::from("/src/main.go"),
            line,
            inlined: false,
            phys: 0,
            func_id: 0,
            inline_depth: 0,
        }]
    }

    #[test]
    fn identical_stacks_share_one_expansion_up_to_the_bound() {
        let cache = PcCache::new();
        let a = cache.shared_stack(Box::new([0x401000, 0x400fff]), || one_frame(1));
        let b = cache.shared_stack(Box::new([0x401000, 0x400fff]), || one_frame(2));
        assert!(
            Arc::ptr_eq(&a, &b),
            "second lookup reuses the first expansion"
        );
        assert_eq!(b.first().map(|f| f.line), Some(1));
        let c = cache.shared_stack(Box::new([0x401000, 0x401000]), || one_frame(3));
        assert_eq!(
            c.first().map(|f| f.line),
            Some(3),
            "a different sym_pc is another stack"
        );
        for k in 0..MAX_SHARED_STACKS as u64 {
            cache.shared_stack(Box::new([k]), Vec::new);
        }
        let len = cache.stacks.lock().map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            len, MAX_SHARED_STACKS,
            "the cache stops growing at its bound"
        );
        let d = cache.shared_stack(Box::new([u64::MAX]), || one_frame(4));
        let e = cache.shared_stack(Box::new([u64::MAX]), || one_frame(5));
        assert_eq!(
            (d[0].line, e[0].line),
            (4, 5),
            "past the bound every stack is expanded"
        );
    }
    use crate::binary::Binary;
    use crate::pclntab::Pclntab;
    use crate::runtime::testbin;

    /// The version table of `FuncIDWrapper` agrees with the binaries: the
    /// linker tags `runtime.deferreturn` as a wrapper, and `main.main` is normal.
    #[test]
    fn wrapper_func_id_matches_every_toolchain() {
        for v in testbin::VERSIONS {
            let bin = testbin::build(v, "hello", testbin::HELLO, &[]);
            let data = std::fs::read(&bin).expect("read binary");
            let binary =
                Binary::parse(std::sync::Arc::from(data.into_boxed_slice())).expect("parse");
            let minor = binary.go_version().expect("go version").minor;
            let tab = Pclntab::new(&binary, 0).expect("pclntab");
            let f = tab
                .func_by_name("runtime.deferreturn")
                .expect("deferreturn");
            assert_eq!(f.func_id(), wrapper_func_id(minor), "Go {v}");
            let main = tab.func_by_name("main.main").expect("main.main");
            assert_ne!(main.func_id(), wrapper_func_id(minor), "Go {v}");
        }
    }
}
